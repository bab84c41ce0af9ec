"""Registry -> server -> cache -> Redis outage -> alias flip -> MLflow outage, against real servers."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

NAME = "e2e-forest"


def _expected(model, rows: list[dict]) -> np.ndarray:
    return model.predict_proba(pd.DataFrame(rows))[:, 1]


def test_end_to_end(mlflow_server_private, start_server, tmp_path, kit):
    mlflow = mlflow_server_private
    redis = kit.RedisServer(tmp_path / "redis-e2e")
    try:
        v1_model = kit.train_forest(seed=0)
        v1 = kit.register_sklearn(mlflow.uri, NAME, v1_model, alias="champion")
        # the hit/miss accounting below must not depend on a loaded test machine meeting the 5 ms budget
        srv = start_server(
            kit.server_env(mlflow.uri, NAME, redis.url, REDIS_BACKOFF_MAX_SECONDS=1, REDIS_BUDGET_SECONDS=0.5)
        )

        info = srv.client.get("/model").json()
        assert info["model_version"] == v1 and info["runtime"] == "onnx"
        assert [f["name"] for f in info["features"]] == kit.FEATURES

        # --- predict; ONNX score matches sklearn
        r0 = kit.row(0)
        resp = srv.predict({"features": r0})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert set(body) == {"model", "model_version", "prediction"}
        assert body["model_version"] == v1
        assert abs(body["prediction"] - _expected(v1_model, [r0])[0]) < 1e-5

        # --- identical request (keys reordered, int-valued float as int) is a cache hit
        assert srv.metric("model_cache_requests_total", result="hit") == 0
        reordered = dict(reversed(list(r0.items())))
        for _ in range(50):  # the write-back is asynchronous
            if any(True for _ in redis.client().scan_iter(f"model_server:{NAME}:{v1}:*")):
                break
            time.sleep(0.05)
        resp2 = srv.predict({"features": reordered})
        assert resp2.status_code == 200 and resp2.json() == body
        assert srv.metric("model_cache_requests_total", result="hit") == 1
        assert srv.metric("model_cache_requests_total", result="miss") == 1
        assert len(list(redis.client().scan_iter(f"model_server:{NAME}:{v1}:*"))) == 1

        # --- batch form
        rows = [kit.row(i) for i in range(6)]
        resp = srv.predict({"instances": rows})
        assert resp.status_code == 200
        np.testing.assert_allclose(resp.json()["predictions"], _expected(v1_model, rows), atol=1e-5)

        # --- Redis dies: still 200, look-ups counted as errors, no latency cliff
        redis.stop()
        before_err = srv.metric("model_cache_requests_total", result="error")
        codes = [srv.predict({"features": kit.row(i, seed=11)}).status_code for i in range(30)]
        assert codes == [200] * 30
        assert srv.metric("model_cache_requests_total", result="error") >= before_err + 30

        # --- Redis comes back on the same port: the breaker closes and hits resume
        redis.start()
        deadline = time.monotonic() + 15
        hits0 = srv.metric("model_cache_requests_total", result="hit")
        while time.monotonic() < deadline:
            assert srv.predict({"features": r0}).status_code == 200
            if srv.metric("model_cache_requests_total", result="hit") > hits0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("cache never recovered after Redis restart")

        # --- new version + alias flip: served without restart, no failed request meanwhile
        v2_model = kit.train_forest(seed=1, n_estimators=30)
        v2 = kit.register_sklearn(mlflow.uri, NAME, v2_model)
        assert v2 != v1
        kit.set_alias(mlflow.uri, NAME, "champion", v2)
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            resp = srv.predict({"features": kit.row(3)})
            assert resp.status_code == 200, resp.text
            seen.append(resp.json()["model_version"])
            if seen[-1] == v2:
                break
            time.sleep(0.05)
        assert seen[-1] == v2, f"alias flip not picked up: {seen[-5:]}"
        body = srv.predict({"features": r0}).json()
        assert body["model_version"] == v2
        assert abs(body["prediction"] - _expected(v2_model, [r0])[0]) < 1e-5  # not the v1 cache entry
        assert srv.metric("model_info", model_version=v2, alias="champion", runtime="onnx") == 1
        assert srv.metric("model_info", model_version=v1) == 0

        # --- MLflow dies: keep serving the loaded version; one warning for the outage, with its cause
        mark = len(srv.log_text())
        mlflow.stop()
        time.sleep(2.0)  # several poll intervals
        for i in range(20):
            resp = srv.predict({"features": kit.row(i, seed=5)})
            assert resp.status_code == 200 and resp.json()["model_version"] == v2
        assert srv.client.get("/readyz").status_code == 200
        warnings = [line for line in srv.log_text()[mark:].splitlines() if " WARNING " in line]
        assert len(warnings) == 1, warnings
        assert "registry unreachable" in warnings[0] and "Connection refused" in warnings[0]
        assert f"keeping v{v2}" in warnings[0]
        assert srv.client.get("/healthz").status_code == 200
    finally:
        redis.stop()


def test_registry_outage_is_one_warning_that_names_its_cause(start_server, kit):
    """A registry that refuses connections, polled every 0.5 s: one warning, cause included."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nothing listens here once closed
    srv = start_server(kit.server_env(f"http://127.0.0.1:{dead}", "nowhere"), ready=False)
    kit.wait_until(lambda: "registry unreachable" in srv.log_text(), 60, "outage warning", srv.p.proc)
    time.sleep(3.0)  # six more polls
    assert srv.client.get("/readyz").status_code == 503
    warnings = [line for line in srv.log_text().splitlines() if " WARNING " in line]
    assert len(warnings) == 1, warnings
    assert f"http://127.0.0.1:{dead}" in warnings[0]
    assert "ConnectionRefusedError" in warnings[0] and "Connection refused" in warnings[0]
