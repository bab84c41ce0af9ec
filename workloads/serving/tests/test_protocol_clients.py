"""The server driven by clients nobody here wrote, against a model registered in a real MLflow server.

- MLflow's own scoring client (`ScoringServerClient.invoke`) and the bodies MLflow's helpers build from a
  pandas DataFrame, for /invocations; the same bodies go to MLflow's own scoring server
  (`mlflow.pyfunc.scoring_server.init` over the same model version) as the reference;
- `tritonclient.http` (Triton's HTTP client: binary tensors by default, no Content-Type) and the KServe
  SDK's `InferenceRESTClient` (in its own locked virtualenv) for the Open Inference Protocol.

Every route must give the scores of the model in Python, and the same row must hit the same cache entry
whichever route and encoding it came in.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[3]
KSERVE_VENV = ROOT / ".venv-kserve"
NAME = "clients-forest"
ATOL = 1e-5  # ONNX Runtime scores in float32


@pytest.fixture(scope="module")
def served(mlflow_server, redis_server, tmp_path_factory, kit):
    """(server, the sklearn model, its version): a forest behind our server, cache on."""
    model = kit.train_forest(seed=2)
    version = kit.register_sklearn(mlflow_server.uri, NAME, model, alias="champion")
    srv = kit.ModelServerProcess(
        tmp_path_factory.mktemp("clients-server"),
        # a loaded test machine must not miss the 5 ms look-up budget: the hit counts below rely on it
        kit.server_env(mlflow_server.uri, NAME, redis_server.url, REDIS_BUDGET_SECONDS=0.5, MAX_INSTANCES=64),
    )
    yield srv.wait_ready(), model, version
    srv.stop()


def _frame(kit, n: int, seed: int) -> pd.DataFrame:
    x, _ = kit.make_data(n=n, seed=seed)
    return x


def _expected(model, frame: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(frame[list(model.feature_names_in_)])[:, 1]


# ---------------------------------------------------------------- MLflow
def _mlflow_bodies(frame: pd.DataFrame) -> dict[str, str]:
    """Every JSON body `mlflow models serve` accepts for a DataFrame, built with MLflow's helpers (and
    pandas' own JSON writers for the records form)."""
    from mlflow.models import convert_input_example_to_serving_input
    from mlflow.utils.proto_json_utils import dump_input_data

    columns = {c: frame[c].to_numpy() for c in frame.columns}
    return {
        "dataframe_split (ScoringServerClient)": dump_input_data(frame),
        "dataframe_split (input example)": convert_input_example_to_serving_input(frame),
        "dataframe_records": '{"dataframe_records": '
        + frame.to_json(orient="records", double_precision=15)
        + "}",
        "instances (records)": dump_input_data(frame.to_dict(orient="records"), inputs_key="instances"),
        "inputs (records)": dump_input_data(frame.to_dict(orient="records"), inputs_key="inputs"),
        "inputs (columns)": convert_input_example_to_serving_input(columns),
        "instances (columns)": json.dumps({"instances": {c: v.tolist() for c, v in columns.items()}}),
    }


@pytest.fixture(scope="module")
def mlflow_reference(served, mlflow_server):
    """MLflow's own scoring server (the app `mlflow models serve` runs) over the same model version."""
    import mlflow.pyfunc
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    _, _, version = served
    mlflow.set_tracking_uri(mlflow_server.uri)
    with TestClient(scoring_server.init(mlflow.pyfunc.load_model(f"models:/{NAME}/{version}"))) as client:
        yield client


def test_mlflow_scoring_payloads_give_the_models_scores(served, mlflow_reference, kit):
    srv, model, _ = served
    frame = _frame(kit, 7, seed=31).iloc[:, ::-1]  # columns in another order: matched by name
    expected = _expected(model, frame)
    bodies = _mlflow_bodies(frame)
    assert (
        '"dataframe_split"' in bodies["dataframe_split (ScoringServerClient)"]
    )  # precondition: real formats
    assert '"inputs"' in bodies["inputs (columns)"]
    for label, body in bodies.items():
        ours = srv.client.post("/invocations", content=body, headers={"content-type": "application/json"})
        assert ours.status_code == 200, (label, ours.text)
        assert list(ours.json()) == ["predictions"], label  # MLflow's response shape, nothing else
        np.testing.assert_allclose(ours.json()["predictions"], expected, atol=ATOL, err_msg=label)
        # MLflow's server accepts the very same body; for a classifier its pyfunc answers predict() (labels)
        ref = mlflow_reference.post(
            "/invocations", content=body, headers={"content-type": "application/json"}
        )
        assert ref.status_code == 200, (label, ref.text)
        assert ref.json()["predictions"] == model.predict(frame[list(model.feature_names_in_)]).tolist(), (
            label
        )
        assert (
            ref.json()["predictions"] == (np.asarray(ours.json()["predictions"]) > 0.5).astype(int).tolist()
        )


def test_mlflow_scoring_client_works_unchanged(served, kit):
    """ScoringServerClient is what MLflow's own tooling uses against `mlflow models serve`."""
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    srv, model, _ = served
    client = ScoringServerClient("127.0.0.1", srv.port)
    client.wait_server_ready(timeout=10)  # GET /ping
    frame = _frame(kit, 5, seed=32)
    result = client.invoke(frame)
    np.testing.assert_allclose(
        result.get_predictions(predictions_format="ndarray"), _expected(model, frame), atol=ATOL
    )
    bad = frame.assign(f7="x")
    with pytest.raises(
        Exception, match=r"error code 422.*INVALID_PARAMETER_VALUE.*'f7' must be a number, got a string"
    ):
        client.invoke(bad)
    assert client.get_version()  # GET /version


def test_regressor_scores_match_mlflow_models_serve(mlflow_server, start_server, kit):
    """For a regressor the two servers' answers are the same numbers (ours via ONNX Runtime in float32)."""
    import mlflow.pyfunc
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server
    from sklearn.linear_model import Ridge

    x, y = kit.make_data(n=400, seed=5)
    model = Ridge(alpha=0.5).fit(x, x["f0"] * 3 - x["f5"] + y)
    name = "clients-ridge"
    mlflow.set_tracking_uri(mlflow_server.uri)
    mlflow.set_experiment("serving-tests")
    from mlflow.models import infer_signature

    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x, model.predict(x)),
            registered_model_name=name,
            serialization_format="cloudpickle",
        )
    version = str(info.registered_model_version)
    kit.set_alias(mlflow_server.uri, name, "champion", version)
    srv = start_server(kit.server_env(mlflow_server.uri, name))
    frame = _frame(kit, 9, seed=33)
    with TestClient(scoring_server.init(mlflow.pyfunc.load_model(f"models:/{name}/{version}"))) as reference:
        for label, body in _mlflow_bodies(frame).items():
            ours = srv.client.post("/invocations", content=body, headers={"content-type": "application/json"})
            ref = reference.post("/invocations", content=body, headers={"content-type": "application/json"})
            assert ours.status_code == ref.status_code == 200, (label, ours.text, ref.text)
            np.testing.assert_allclose(
                ours.json()["predictions"], ref.json()["predictions"], rtol=1e-5, atol=1e-5
            )
    np.testing.assert_allclose(ref.json()["predictions"], model.predict(frame))


# ---------------------------------------------------------------- Triton's client
def test_tritonclient_http(served, kit):
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    srv, model, version = served
    client = triton.InferenceServerClient(f"127.0.0.1:{srv.port}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(NAME) and client.is_model_ready(NAME, version)
    assert not client.is_model_ready("other-model") and not client.is_model_ready(NAME, "999")
    meta = client.get_model_metadata(NAME)
    assert [i["name"] for i in meta["inputs"]] == kit.FEATURES
    assert {(i["datatype"], tuple(i["shape"])) for i in meta["inputs"]} == {("FP64", (-1, 1))}
    assert meta["outputs"] == [{"name": "output-0", "datatype": "FP64", "shape": [-1]}]
    assert meta["versions"] == [version] and meta["platform"] == "onnx_onnxv1"
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]

    frame = _frame(kit, 6, seed=34)
    expected = _expected(model, frame)
    x = frame.to_numpy()
    # one input per feature, binary tensors both ways (tritonclient's defaults)
    inputs = []
    for j, feature in enumerate(kit.FEATURES):
        inp = triton.InferInput(feature, [len(x), 1], "FP64")
        inp.set_data_from_numpy(x[:, j : j + 1])
        inputs.append(inp)
    result = client.infer(NAME, inputs, request_id="t-1")
    assert result.get_response()["id"] == "t-1" and result.get_response()["model_version"] == version
    np.testing.assert_allclose(result.as_numpy("output-0"), expected, atol=ATOL)
    # one [N, F] FP32 tensor as JSON, a JSON output requested by name, the versioned route
    matrix = triton.InferInput("input", list(x.shape), "FP32")
    matrix.set_data_from_numpy(x.astype(np.float32), binary_data=False)
    output = triton.InferRequestedOutput("output-0", binary_data=False)
    result = client.infer(NAME, [matrix], model_version=version, outputs=[output])
    assert result.get_response()["outputs"][0]["data"] == pytest.approx(expected.tolist(), abs=ATOL)
    # errors: the protocol's {"error": ...} with the status /predict gives
    with pytest.raises(InferenceServerException) as exc:
        client.infer(NAME, [matrix], model_version="999")
    assert exc.value.status() == "404" and f"serves version '{version}'" in exc.value.message()
    bad = triton.InferInput("input", list(x.shape), "FP64")
    bad.set_data_from_numpy(np.where(np.arange(x.size).reshape(x.shape) == 3, 1e39, x))
    with pytest.raises(InferenceServerException) as exc:
        client.infer(NAME, [bad])
    assert exc.value.status() == "422"
    assert exc.value.message().startswith(
        "row 0: feature 'f3' must be a finite number with |value| <= 3.4028"
    )
    client.close()


# ---------------------------------------------------------------- KServe's client
def _kserve_python() -> Path:
    """.venv-kserve/bin/python, created from uv.lock's kserve-client group when missing (one process at a
    time: xdist workers share the checkout)."""
    python = KSERVE_VENV / "bin" / "python"
    with open(ROOT / ".venv-kserve.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ok = (
            python.exists()
            and subprocess.run([python, "-c", "import kserve"], capture_output=True).returncode == 0
        )
        if not ok:
            uv = ROOT / ".venv-tools" / "bin" / "uv"
            uv_cmd = str(uv) if uv.exists() else shutil.which("uv")
            if uv_cmd is None:
                pytest.fail("uv not found: run `make setup` (it installs .venv-tools/bin/uv)")
            proc = subprocess.run(
                [
                    uv_cmd,
                    "sync",
                    "--frozen",
                    "--only-group",
                    "kserve-client",
                    "--python",
                    sys.executable,
                    "--quiet",
                ],
                cwd=ROOT,
                env={
                    **os.environ,
                    "UV_PROJECT_ENVIRONMENT": str(KSERVE_VENV),
                    "UV_PYTHON_DOWNLOADS": "never",
                },
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert proc.returncode == 0, (
                f"cannot create {KSERVE_VENV.name} (make kserve-client):\n{proc.stderr}"
            )
    return python


def test_kserve_rest_client(served, kit):
    srv, model, _ = served
    frame = _frame(kit, 5, seed=35)
    job = {
        "url": srv.url,
        "model": NAME,
        "features": kit.FEATURES,
        "rows": frame.to_numpy().tolist(),
        "bad_row": [1e39 if j == 3 else 0.0 for j in range(kit.N_FEATURES)],
    }
    proc = subprocess.run(
        [_kserve_python(), Path(__file__).with_name("kserve_rest_client.py")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert (out["live"], out["ready"], out["model_ready"], out["other_model_ready"]) == (
        True,
        True,
        True,
        False,
    )
    expected = _expected(model, frame)
    for key, request_id in (("per_feature", "kserve-1"), ("matrix_binary", "kserve-2")):
        res = out[key]  # (the SDK's from_bytes() drops model_version: not checked here)
        assert (res["id"], res["name"], res["datatype"]) == (request_id, "output-0", "FP64")
        assert res["shape"] == [len(frame)]
        np.testing.assert_allclose(res["scores"], expected, atol=ATOL, err_msg=key)
    assert (
        out["bad"]["status"] == 422 and "row 0: feature 'f3' must be a finite number" in out["bad"]["message"]
    )


# ---------------------------------------------------------------- one pipeline
def test_the_same_row_hits_one_cache_entry_through_every_route(served, redis_server, kit):
    """/predict JSON, /invocations dataframe_split, v2 JSON per feature and Triton's binary FP32 tensor:
    one Redis entry, three hits, and the requests counted under their routes."""
    import tritonclient.http as triton

    srv, model, version = served
    row = kit.row(0, seed=77)
    before = {r: srv.metric("model_requests_total", route=r, code="200") for r in _ROUTES}
    hits0 = srv.metric("model_cache_requests_total", result="hit")
    first = srv.predict({"features": row})
    assert first.status_code == 200
    score = first.json()["prediction"]
    pattern = f"model_server:{NAME}:{version}:*"
    kit.wait_until(lambda: len(list(redis_server.client().scan_iter(pattern))) >= 1, 10, "write-back")
    keys_before = set(redis_server.client().scan_iter(pattern))

    from mlflow.utils.proto_json_utils import dump_input_data

    split = dump_input_data(pd.DataFrame([row]).iloc[:, ::-1])
    resp = srv.client.post("/invocations", content=split, headers={"content-type": "application/json"})
    assert resp.json()["predictions"] == [score]
    per_feature = {
        "inputs": [{"name": k, "datatype": "FP64", "shape": [1], "data": [v]} for k, v in row.items()]
    }
    resp = srv.client.post(f"/v2/models/{NAME}/infer", json=per_feature)
    assert resp.json()["outputs"][0]["data"] == [score]
    client = triton.InferenceServerClient(f"127.0.0.1:{srv.port}")
    matrix = triton.InferInput("input", [1, kit.N_FEATURES], "FP32")
    matrix.set_data_from_numpy(np.asarray([[row[f] for f in kit.FEATURES]], dtype=np.float32))
    assert client.infer(NAME, [matrix]).as_numpy("output-0").tolist() == [score]
    client.close()

    assert srv.metric("model_cache_requests_total", result="hit") - hits0 == 3
    assert set(redis_server.client().scan_iter(pattern)) == keys_before  # no second entry for the row
    after = {r: srv.metric("model_requests_total", route=r, code="200") for r in _ROUTES}
    assert {r: after[r] - before[r] for r in _ROUTES} == {r: 1 if r != _V2 else 2 for r in _ROUTES}
    assert abs(score - _expected(model, pd.DataFrame([row]))[0]) < ATOL


_V2 = "/v2/models/{name}/infer"
_ROUTES = ("/predict", "/invocations", _V2)
