"""/invocations and the Open Inference Protocol at their edges, against uvicorn in-process (ONNX linear model).

The same problem through every route gets the status /predict gives it and the same message (each in its
protocol's error body); the HTTP half of the contract (media type, size, time, encoding) holds on every
route; each protocol's own mistakes are named.
"""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

V2 = "/v2/models/inproc/infer"
ROUTES = ("/predict", "/invocations", V2)


def body_for(route: str, features: dict) -> str:
    """One row in each protocol's JSON."""
    if route == "/predict":
        return json.dumps({"features": features})
    if route == "/invocations":
        return json.dumps({"dataframe_records": [features]})
    inputs = [{"name": k, "datatype": "FP64", "shape": [1], "data": [v]} for k, v in features.items()]
    return json.dumps({"inputs": inputs})


def error_of(route: str, resp) -> str:
    body = resp.json()
    return body["message"] if route == "/invocations" else body["error"]


def score_of(route: str, resp) -> float:
    body = resp.json()
    if route == "/predict":
        return body["prediction"]
    if route == "/invocations":
        return body["predictions"][0]
    return body["outputs"][0]["data"][0]


def post(server, route: str, content, content_type: str | None = "application/json", **headers):
    if content_type is not None:
        headers["content-type"] = content_type
    return server.client.post(route, content=content, headers=headers)


# ---------------------------------------------------------------- one row, three protocols
def test_every_route_gives_the_same_score(inproc_server, kit):
    scores = {r: score_of(r, post(inproc_server, r, body_for(r, kit.row(0)))) for r in ROUTES}
    assert len(set(scores.values())) == 1, scores


@pytest.mark.parametrize(
    ("change", "status", "needle"),
    [
        ({"f7": "1.0"}, 422, "feature 'f7' must be a number, got a string"),
        ({"f7": None}, 422, "feature 'f7' must be a number, got null"),
        ({"f7": True}, 422, "feature 'f7' must be a number, got a boolean"),
        (
            {"f3": 1e39},
            422,
            "feature 'f3' must be a finite number with |value| <= 3.4028234663852886e+38, got 1e+39",
        ),
        ({"f3": 2**60}, 422, "feature 'f3' is out of range: integers must be within +-2**53"),
        (
            {"f0": 3e38},
            422,
            "the model's score for this row is not a finite number; its largest value is feature 'f0'",
        ),
    ],
)
def test_bad_values_get_the_same_4xx_and_message_on_every_route(inproc_server, kit, change, status, needle):
    for route in ROUTES:
        resp = post(inproc_server, route, body_for(route, kit.row(0) | change))
        assert resp.status_code == status, (route, resp.text)
        assert needle in error_of(route, resp), (route, resp.text)


def test_rows_are_named_in_each_protocols_terms(inproc_server, kit):
    rows = [kit.row(0), kit.row(1) | {"f7": "x"}]
    cases = {
        "/predict": {"instances": rows},
        "/invocations": {"dataframe_records": rows},
        V2: {
            "inputs": [
                {"name": "m", "datatype": "FP64", "shape": [2, 20], "data": [list(r.values()) for r in rows]}
            ]
        },
    }
    prefixes = {"/predict": "instances[1]: ", "/invocations": "dataframe_records[1]: ", V2: "row 1: "}
    for route, body in cases.items():
        resp = post(inproc_server, route, json.dumps(body))
        assert resp.status_code == 422 and error_of(route, resp).startswith(prefixes[route]), resp.text


@pytest.mark.parametrize("route", ROUTES)
def test_json_and_encoding_errors_are_400_on_every_route(inproc_server, kit, route):
    text = body_for(route, kit.row(0))
    dup = (
        text.replace('"f5"', '"f5": 1.0, "f5"', 1)
        if route != V2
        else text.replace('"name"', '"name": "f5", "name"', 1)
    )
    for content, needle in (
        (b"{not json", "malformed JSON"),
        (dup.encode(), "duplicate key"),
        (text.encode("utf-16"), "not valid UTF-8"),
        (b"\xef\xbb\xbf" + text.encode(), "byte-order mark"),
        (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
    ):
        resp = post(inproc_server, route, content)
        assert resp.status_code == 400 and needle in error_of(route, resp), (route, needle, resp.text)


@pytest.mark.parametrize("route", ROUTES)
def test_http_contract_on_every_route(inproc_server, kit, route):
    ok = body_for(route, kit.row(0))
    assert post(inproc_server, route, ok, "application/json; charset=utf-8").status_code == 200
    for ctype in ("text/plain", "application/json; charset=utf-16", "application/json-seq"):
        resp = post(inproc_server, route, ok, ctype)
        assert resp.status_code == 415 and "Content-Type must be" in error_of(route, resp), (ctype, resp.text)
    resp = post(inproc_server, route, ok, **{"content-encoding": "gzip"})
    assert resp.status_code == 415 and "Content-Encoding" in error_of(route, resp)
    resp = post(inproc_server, route, b"x" * 100_000)
    assert resp.status_code == 413 and resp.headers["connection"] == "close"
    resp = inproc_server.client.get(route)
    assert (
        resp.status_code == 405
        and resp.headers["allow"] == "POST"
        and "accepts POST" in error_of(route, resp)
    )
    # a body that never completes: 408 after the (1 s) body deadline, connection closed
    head = (
        f"POST {route} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with inproc_server.raw(head.encode() + b'{"x', timeout=15) as s, s.makefile("rb") as f:
        t0 = time.monotonic()
        status_line = f.readline()
        assert b" 408 " in status_line and time.monotonic() - t0 < 10


def test_request_metrics_are_labelled_by_route(inproc_server, kit):
    def counts() -> dict[tuple[str, str], float]:
        text = inproc_server.client.get("/metrics").text
        found = re.findall(
            r'^model_requests_total\{code="(\d+)",model="inproc",route="([^"]+)"\} (\S+)$', text, re.M
        )
        return {(r, c): float(v) for c, r, v in found}

    before = counts()
    for route in ROUTES:
        assert post(inproc_server, route, body_for(route, kit.row(2))).status_code == 200
        assert post(inproc_server, route, body_for(route, kit.row(2) | {"f1": "x"})).status_code == 422
    after = counts()
    for label in ("/predict", "/invocations", "/v2/models/{name}/infer"):  # a template, not the model's name
        for code in ("200", "422"):
            assert after.get((label, code), 0) - before.get((label, code), 0) == 1, (label, code)
    text = inproc_server.client.get("/metrics").text
    assert (
        'model_request_duration_seconds_count{model="inproc",model_version="1",route="/invocations"}' in text
    )


# ---------------------------------------------------------------- /invocations
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "exactly one of 'dataframe_split', 'dataframe_records', 'instances', 'inputs'; got nothing"),
        ({"dataframe_records": [], "instances": []}, "exactly one of"),
        ({"dataframe_records": [{}], "extra": 1}, "unexpected top-level field 'extra'"),
        ({"dataframe_records": [{}], "params": {"temperature": 1}}, "'params' are not supported"),
        ({"dataframe_split": {"data": [[1.0] * 20]}}, "'columns' is required"),
        ({"dataframe_split": {"columns": ["f0"] * 20, "data": []}}, "duplicate column 'f0'"),
        ({"dataframe_split": {"columns": [f"f{i}" for i in range(19)], "data": []}}, "missing feature 'f19'"),
        (
            {"dataframe_split": {"columns": [f"f{i}" for i in range(21)], "data": []}},
            "unexpected feature 'f20'",
        ),
        (
            {"dataframe_split": {"columns": [f"f{i}" for i in range(20)], "data": [[1.0] * 19]}},
            "data[0]: must be a list of 20 values",
        ),
        (
            {
                "dataframe_split": {
                    "columns": [f"f{i}" for i in range(20)],
                    "data": [[1.0] * 20],
                    "index": [1, 2],
                }
            },
            "'index'",
        ),
        (
            {"dataframe_split": {"columns": [f"f{i}" for i in range(20)], "data": [[1.0] * 20], "x": 1}},
            "unexpected field 'x'",
        ),
        ({"dataframe_records": {"f0": 1.0}}, "'dataframe_records' must be a list of objects"),
        ({"dataframe_records": []}, "'dataframe_records' must not be empty"),
        ({"instances": [[1.0] * 20]}, "'instances[0]' must be an object"),
        ({"inputs": {"f0": [1.0], "f1": 2.0}}, "missing feature"),
        ({"inputs": "x"}, "'inputs' must be a list of records or an object"),
        ([{"f0": 1.0}], "body must be a JSON object"),
    ],
)
def test_invocations_names_the_problem(inproc_server, body, needle):
    resp = post(inproc_server, "/invocations", json.dumps(body))
    assert resp.status_code == 422, resp.text
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE" and needle in resp.json()["message"], (
        resp.text
    )


def test_invocations_accepts_every_mlflow_format(inproc_server, kit):
    rows = [kit.row(0), kit.row(1)]
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    names = list(rows[0])[::-1]
    bodies = [
        {
            "dataframe_split": {
                "columns": names,
                "data": [[r[k] for k in names] for r in rows],
                "index": [4, 9],
            }
        },
        {"dataframe_records": rows},
        {"instances": rows},
        {"instances": columns},
        {"inputs": columns},
        {"inputs": rows},
        {"dataframe_records": rows, "params": {}},
    ]
    expected = post(inproc_server, "/predict", json.dumps({"instances": rows})).json()["predictions"]
    for body in bodies:
        resp = post(inproc_server, "/invocations", json.dumps(body))
        assert resp.status_code == 200 and resp.json() == {"predictions": expected}, (body, resp.text)
    one = post(inproc_server, "/invocations", json.dumps({"inputs": rows[0]}))
    assert one.json() == {"predictions": expected[:1]}
    resp = post(inproc_server, "/invocations", "a,b\n1,2", "text/csv")
    assert resp.status_code == 415 and "CSV and Parquet" in resp.json()["message"]
    assert resp.json()["error_code"] == "BAD_REQUEST"


def test_mlflow_health_and_version_endpoints(inproc_server):
    for path in ("/ping", "/health"):
        resp = inproc_server.client.get(path)
        assert resp.status_code == 200 and resp.text == "\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", inproc_server.client.get("/version").text)


# ---------------------------------------------------------------- Open Inference Protocol
def _tensor(name="m", shape=(1, 20), datatype="FP64", data=None, **extra) -> dict:
    t = {"name": name, "shape": list(shape), "datatype": datatype}
    if data is not None:
        t["data"] = data
    return t | extra


ROW = [0.1 * i for i in range(20)]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"inputs": []}, 422, "'inputs' must be a non-empty list"),
        ({"inputs": [_tensor(data=ROW)], "foo": 1}, 422, "unexpected field 'foo'"),
        ({"inputs": [_tensor(data=ROW)], "id": 7}, 422, "'id' must be a string"),
        ({"inputs": [_tensor(data=ROW)], "model_name": "other"}, 422, "not the model in the path"),
        (
            {"inputs": [_tensor(data=ROW)], "outputs": [{"name": "probabilities"}]},
            422,
            "unknown output 'probabilities'",
        ),
        (
            {
                "inputs": [_tensor(data=ROW)],
                "outputs": [{"name": "output-0", "parameters": {"classification": 2}}],
            },
            422,
            "output parameter 'classification' is not supported",
        ),
        ({"inputs": [_tensor(data=ROW, datatype="FP16")]}, 422, "datatype 'FP16' is not served"),
        ({"inputs": [_tensor(data=[1] * 20, datatype="INT64")]}, 422, "must be FP32 or FP64"),
        ({"inputs": [_tensor(data=ROW[:19], shape=(1, 19))]}, 422, "must have shape [N, 20]"),
        ({"inputs": [_tensor(data=ROW, shape=(2, 20))]}, 422, "20 values for shape [2, 20] (40)"),
        (
            {"inputs": [_tensor(data=[ROW[:10], ROW[10:]], shape=(1, 20))]},
            422,
            "nested 'data' does not match shape",
        ),
        ({"inputs": [_tensor(shape=(1, 20))]}, 422, "'data' is missing"),
        ({"inputs": [_tensor(data=ROW, shape=(1, 20, 1))]}, 422, "'shape' must be [N] or [N, F]"),
        ({"inputs": [_tensor(data=ROW, bogus=1)]}, 422, "unexpected field 'bogus'"),
        ({"inputs": [_tensor(data=[], shape=(0, 20))]}, 422, "'inputs' must not be empty"),
        (
            {"inputs": [_tensor("f0", (1,), data=[1.5]), _tensor("f0", (1,), data=[1.5])]},
            422,
            "input 'f0' given twice",
        ),
        (
            {"inputs": [_tensor("f0", (1,), data=[1.5]), _tensor("zz", (1,), data=[1.5])]},
            422,
            "unexpected input 'zz'",
        ),
        (
            {"inputs": [_tensor("f0", (1,), data=[1.5]), _tensor("f1", (1,), data=[1.5])]},
            422,
            "inputs: missing feature 'f2'",
        ),
        (
            {"inputs": [_tensor("f0", (1,), "BOOL", data=[True])]},
            422,
            "datatype BOOL cannot carry the double feature 'f0'",
        ),
        ({"inputs": [_tensor("f0", (1,), "INT64", data=[1.5])]}, 422, "datatype INT64 holds integers only"),
        ({"inputs": [_tensor("f0", (1, 2), data=[1.5, 2.5])]}, 422, "a feature's input is [N] or [N, 1]"),
    ],
)
def test_infer_names_the_problem(inproc_server, body, status, needle):
    resp = post(inproc_server, V2, json.dumps(body))
    assert resp.status_code == status and needle in resp.json()["error"], resp.text


def test_infer_per_feature_shapes_and_rows_disagreeing(inproc_server):
    inputs = [_tensor(f"f{i}", (1 if i else 2,), data=[1.0] * (1 if i else 2)) for i in range(20)]
    resp = post(inproc_server, V2, json.dumps({"inputs": inputs}))
    assert resp.status_code == 422 and "different numbers of rows" in resp.json()["error"]
    inputs = [_tensor(f"f{i}", (2, 1), data=[[1.0], [2.0]]) for i in range(20)]  # nested [N, 1] is fine
    assert post(inproc_server, V2, json.dumps({"inputs": inputs})).json()["outputs"][0]["shape"] == [2]


def _binary(header: dict, *tensors: np.ndarray) -> tuple[bytes, dict]:
    head = json.dumps(header).encode()
    return head + b"".join(t.tobytes() for t in tensors), {"inference-header-content-length": str(len(head))}


def test_infer_binary_tensors(inproc_server, kit):
    x = np.asarray([list(kit.row(0).values()), list(kit.row(1).values())], dtype="<f4")
    expected = post(inproc_server, "/predict", json.dumps({"instances": [kit.row(0), kit.row(1)]})).json()
    header = {
        "id": "b1",
        "inputs": [_tensor("m", x.shape, "FP32", parameters={"binary_data_size": x.nbytes})],
        "parameters": {"binary_data_output": True},
    }
    body, headers = _binary(header, x)
    resp = post(inproc_server, V2, body, None, **headers)  # Triton's client sends no Content-Type
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/octet-stream", resp.text
    n = int(resp.headers["inference-header-content-length"])
    head = json.loads(resp.content[:n])
    assert head["id"] == "b1" and head["outputs"][0]["parameters"] == {"binary_data_size": 16}
    np.testing.assert_allclose(np.frombuffer(resp.content[n:], "<f8"), expected["predictions"], atol=1e-6)
    assert (
        post(inproc_server, V2, body, "application/octet-stream", **headers).status_code == 200
    )  # KServe's SDK
    # the binary format's own mistakes
    for content, ctype, hdrs, status, needle in (
        (body, "application/json", headers, 415, "application/octet-stream"),
        (body + b"\0" * 8, None, headers, 400, "8 bytes after the last input"),
        (body[:-8], None, headers, 400, "binary tensor data ends after"),
        (body, None, {"inference-header-content-length": str(len(body) + 1)}, 400, "beyond the body"),
        (body, None, {"inference-header-content-length": "x"}, 400, "must be a byte count"),
    ):
        resp = post(inproc_server, V2, content, ctype, **hdrs)
        assert resp.status_code == status and needle in resp.json()["error"], (needle, resp.text)
    wrong = json.loads(json.dumps(header))
    wrong["inputs"][0]["parameters"]["binary_data_size"] = 12
    body2, headers2 = _binary(wrong, x)
    resp = post(inproc_server, V2, body2, None, **headers2)
    assert (
        resp.status_code == 422 and "binary_data_size 12 is not 40 x 4 bytes of FP32" in resp.json()["error"]
    )
    nan = x.copy()
    nan[1, 4] = np.nan
    body3, headers3 = _binary(header, nan)
    resp = post(inproc_server, V2, body3, None, **headers3)
    assert resp.status_code == 422 and resp.json()["error"].startswith(
        "row 1: feature 'f4' must be a finite number"
    )


def test_oip_health_metadata_and_versions(inproc_server):
    c = inproc_server.client
    assert c.get("/v2/health/live").json() == {"live": True}
    assert c.get("/v2/health/ready").json() == {"ready": True}
    assert c.get("/v2").json()["extensions"] == ["binary_tensor_data"]
    meta = c.get("/v2/models/inproc").json()
    assert meta["name"] == "inproc" and meta["versions"] == ["1"] and len(meta["inputs"]) == 20
    assert c.get("/v2/models/inproc/versions/1").json() == meta
    assert c.get("/v2/models/inproc/versions/1/ready").json() == {"name": "inproc", "ready": True}
    for path in (
        "/v2/models/inproc/versions/2",
        "/v2/models/inproc/versions/2/ready",
        "/v2/models/other/ready",
    ):
        resp = c.get(path)
        assert resp.status_code == 404 and "error" in resp.json(), path
    resp = post(inproc_server, "/v2/models/inproc/versions/2/infer", body_for(V2, {"f0": 1.0}))
    assert resp.status_code == 404 and "serves version '1'" in resp.json()["error"]
    resp = post(inproc_server, "/v2/models/other/infer", body_for(V2, {"f0": 1.0}))
    assert resp.status_code == 404 and "unknown model 'other'" in resp.json()["error"]
    assert c.post("/v2/health/ready").status_code == 405
    assert c.get("/v2/models/inproc/nope").status_code == 404
