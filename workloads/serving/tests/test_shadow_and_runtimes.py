"""Shadow scoring with a challenger, and the ONNX / pyfunc runtime choice."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from model_server.loader import ModelLoadError, load_model


def _unconvertible_pipeline(kit):
    """skl2onnx has no converter for an arbitrary FunctionTransformer -> pyfunc fallback."""
    x, y = kit.make_data(seed=3)
    # a lambda is pickled by value, so the server process does not need this test module
    pipe = make_pipeline(FunctionTransformer(lambda a: np.tanh(np.asarray(a) * 0.7)), LogisticRegression())
    return pipe.fit(x, y)


def test_shadow_mode_scores_challenger_in_background(mlflow_server, start_server, kit):
    name = "shadow-model"
    champion = kit.train_forest(seed=0)
    challenger = _unconvertible_pipeline(kit)
    v1 = kit.register_sklearn(mlflow_server.uri, name, champion, alias="champion")
    v2 = kit.register_sklearn(
        mlflow_server.uri, name, challenger, alias="challenger", serialization="cloudpickle"
    )
    srv = start_server(
        kit.server_env(mlflow_server.uri, name, SHADOW_ALIAS="challenger", SHADOW_SAMPLE_RATE=1)
    )
    kit.wait_until(
        lambda: srv.metric("model_info", alias="challenger", model_version=v2, runtime="pyfunc") == 1,
        30,
        "challenger load",
    )
    assert srv.metric("model_info", alias="champion", model_version=v1, runtime="onnx") == 1

    rows = [kit.row(i, seed=21) for i in range(40)]
    preds = []
    for i, r in enumerate(rows):  # every route is shadow-scored: /predict, /invocations, the v2 route
        if i % 3 == 0:
            resp = srv.predict({"features": r})
            assert resp.status_code == 200
            body = resp.json()
            assert set(body) == {"model", "model_version", "prediction"}  # nothing from the challenger
            assert body["model_version"] == v1
            preds.append(body["prediction"])
        elif i % 3 == 1:
            resp = srv.client.post("/invocations", json={"dataframe_records": [r]})
            assert resp.status_code == 200 and list(resp.json()) == ["predictions"]
            preds.append(resp.json()["predictions"][0])
        else:
            inputs = [{"name": k, "datatype": "FP64", "shape": [1], "data": [v]} for k, v in r.items()]
            resp = srv.client.post(f"/v2/models/{name}/infer", json={"inputs": inputs})
            assert resp.status_code == 200 and resp.json()["model_version"] == v1
            assert [o["name"] for o in resp.json()["outputs"]] == ["output-0"]
            preds.append(resp.json()["outputs"][0]["data"][0])
    frame = pd.DataFrame(rows)
    np.testing.assert_allclose(preds, champion.predict_proba(frame)[:, 1], atol=1e-5)

    kit.wait_until(lambda: srv.metric("model_shadow_predictions_total") == 40, 20, "shadow scoring")
    c = champion.predict_proba(frame)[:, 1] >= 0.5
    s = challenger.predict_proba(frame)[:, 1] >= 0.5
    assert 0 < int((c == s).sum()) < 40  # precondition (deterministic data): both outcomes occur
    assert srv.metric("model_shadow_predictions_total", agreement="agree") == int((c == s).sum())
    assert srv.metric("model_shadow_predictions_total", agreement="disagree") == int((c != s).sum())
    assert f'"challenger_version": "{v2}"' in srv.log_text()


def test_onnx_runtime_matches_sklearn(mlflow_server, kit, tmp_path):
    name = "onnx-check"
    model = kit.train_forest(seed=4)
    version = kit.register_sklearn(mlflow_server.uri, name, model)
    loaded = load_model(mlflow_server.uri, name, version, "champion", model_dir=str(tmp_path))
    assert loaded.runtime == "onnx"
    x, _ = kit.make_data(n=300, seed=42)
    got = loaded.predict(x.to_numpy(np.float32))
    np.testing.assert_allclose(got, model.predict_proba(x)[:, 1], atol=1e-5)


def test_sklearn_model_skl2onnx_cannot_convert_falls_back_to_pyfunc(mlflow_server, kit, tmp_path):
    name = "pyfunc-fallback"
    model = _unconvertible_pipeline(kit)
    version = kit.register_sklearn(mlflow_server.uri, name, model, serialization="cloudpickle")
    loaded = load_model(mlflow_server.uri, name, version, "champion", model_dir=str(tmp_path))
    assert loaded.runtime == "pyfunc"
    x, _ = kit.make_data(n=50, seed=43)
    np.testing.assert_allclose(loaded.predict(x.to_numpy()), model.predict_proba(x)[:, 1], atol=1e-9)


class _Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return (model_input["a"] * 2 + model_input["n"]).to_numpy(dtype=float)


def test_non_sklearn_pyfunc_model_and_integer_columns(mlflow_server, start_server, kit, tmp_path):
    """A custom python_model is served via pyfunc; 'long' columns accept integers only."""
    from mlflow.models import infer_signature

    name = "custom-pyfunc"
    frame = pd.DataFrame({"a": [0.5, 1.5], "n": [1, 2]})
    mlflow.set_tracking_uri(mlflow_server.uri)
    # Another suite in this process may have left an experiment of another server active.
    mlflow.set_experiment("serving-tests")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=_Doubler(),
            registered_model_name=name,
            signature=infer_signature(frame, np.array([2.0, 5.0])),
        )
    kit.set_alias(mlflow_server.uri, name, "champion", str(info.registered_model_version))
    srv = start_server(kit.server_env(mlflow_server.uri, name))
    assert srv.client.get("/model").json()["runtime"] == "pyfunc"
    resp = srv.predict({"instances": [{"a": 1.25, "n": 3}, {"a": 2, "n": -1}]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"] == [5.5, 3.0]
    bad = srv.predict({"features": {"a": 1.0, "n": 1.5}})
    assert bad.status_code == 422 and "'n'" in bad.json()["error"] and "integer" in bad.json()["error"]


def test_model_without_signature_is_refused_with_a_clear_error(mlflow_server, kit, tmp_path):
    name = "no-signature"
    model = kit.train_forest(seed=5, n_estimators=5)
    mlflow.set_tracking_uri(mlflow_server.uri)
    # Another suite in this process may have left an experiment of another server active.
    mlflow.set_experiment("serving-tests")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=name, serialization_format="cloudpickle"
        )
    with pytest.raises(ModelLoadError, match="signature"):
        load_model(
            mlflow_server.uri, name, str(info.registered_model_version), "champion", model_dir=str(tmp_path)
        )
