"""Bad input never yields a 5xx: targeted edge cases plus hypothesis fuzzing against a real server."""

from __future__ import annotations

import json
import math
import os

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_server.validation import MAX_ABS_FLOAT

# Local runs explore new inputs each time; CI replays a fixed sequence so a landing never depends on luck.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=bool(os.environ.get("CI")),
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


BAD_CONTENT_TYPES = [
    "application/json-seq",
    "application/jsonx",
    "application/json; charset=utf-16",
    "application/json-patch+json",
    "text/json",
]


def _obj(items) -> str:
    """JSON object text from (key, JSON text) pairs, duplicates kept as written."""
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in items) + "}"


V2 = "/v2/models/shared-forest/infer"
ROUTES = ("/predict", "/invocations", V2)
# how each route names the one row of the bodies below in its messages
PREFIX = {"/predict": "features: ", "/invocations": "dataframe_records[0]: ", V2: "row 0: "}


def _check(resp: httpx.Response, route: str = "/predict") -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text)
    if resp.status_code >= 400:  # always the protocol's JSON message, never a traceback
        assert ("message" if route == "/invocations" else "error") in resp.json(), resp.text


def _error(resp: httpx.Response, route: str) -> str:
    return resp.json()["message" if route == "/invocations" else "error"]


def _encode(route: str, items, wrap: str | None = None) -> str:
    """One row as each protocol's JSON text, from (feature, JSON text) pairs kept as written (duplicates
    too). wrap="top" repeats the top-level field, wrap="row" a key inside the row's own object."""
    if route == V2:
        tensors = [
            f'{{"name": {json.dumps(k)}, "datatype": "FP64", "shape": [1], "data": [{v}]}}' for k, v in items
        ]
        if wrap == "row":  # a tensor object's own key twice
            tensors[0] = tensors[0][:-1] + ', "shape": [1]}'
        field, value = "inputs", "[" + ", ".join(tensors) + "]"
    elif route == "/invocations":
        field, value = "dataframe_records", "[" + _obj(items) + "]"
    else:
        field, value = "features", _obj(items)
    pairs = [(field, value), (field, value)] if wrap == "top" else [(field, value)]
    return _obj(pairs)


def _post(server, route: str, text: str | bytes) -> httpx.Response:
    return server.client.post(route, content=text, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"features": {}}, 422, "missing feature 'f0'"),
        ({"feature": {}}, 422, "'features'"),
        ({"features": {"f0": 1}, "x": 1}, 422, "'x'"),
        ({"instances": []}, 422, "empty"),
        ({"instances": {}}, 422, "list"),
        ([1, 2], 422, "JSON object"),
        ({"features": "nope"}, 422, "object"),
    ],
)
def test_structural_errors_name_the_problem(forest_server, kit, body, status, needle):
    resp = forest_server.predict(body)
    assert resp.status_code == status and needle in resp.json()["error"]


@pytest.mark.parametrize(
    ("value", "needle"),
    [("1.0", "a string"), (None, "null"), (True, "a boolean"), ([1], "a list"), (10**30, "out of range")],
)
def test_wrong_typed_feature_is_named(forest_server, kit, value, needle):
    features = kit.row(0) | {"f7": value}
    resp = forest_server.predict({"features": features})
    assert resp.status_code == 422
    assert "'f7'" in resp.json()["error"] and needle in resp.json()["error"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values_are_rejected(forest_server, kit, literal):
    text = json.dumps({"features": kit.row(0)}).replace(str(kit.row(0)["f3"]), literal)
    resp = forest_server.client.post("/predict", content=text, headers={"content-type": "application/json"})
    assert resp.status_code == 422 and "'f3'" in resp.json()["error"] and "finite" in resp.json()["error"]


def test_extra_feature_and_instance_index_are_named(forest_server, kit):
    resp = forest_server.predict({"instances": [kit.row(0), kit.row(1) | {"bogus": 1.0}]})
    assert resp.status_code == 422
    assert "instances[1]" in resp.json()["error"] and "'bogus'" in resp.json()["error"]


def test_http_level_errors(forest_server, kit):
    c = forest_server.client
    ok = json.dumps({"features": kit.row(0)})
    assert (
        c.post("/predict", content=b"{not json", headers={"content-type": "application/json"}).status_code
        == 400
    )
    assert c.post("/predict", content=ok, headers={"content-type": "text/plain"}).status_code == 415
    assert c.post("/predict", content=ok).status_code == 415  # no content-type
    resp = c.get("/predict")
    assert resp.status_code == 405 and resp.headers["allow"] == "POST"
    assert c.delete("/metrics").status_code == 405
    assert c.get("/nope").status_code == 404
    deep = "[" * 100_000 + "]" * 100_000
    assert c.post("/predict", content=deep, headers={"content-type": "application/json"}).status_code == 413
    deep = "[" * 30_000 + "]" * 30_000
    assert c.post("/predict", content=deep, headers={"content-type": "application/json"}).status_code == 400
    big = {"features": kit.row(0) | {"pad": "x" * 100_000}}
    assert forest_server.predict(big).status_code == 413
    rows = {"instances": [kit.row(0)] * 33}
    assert forest_server.predict(rows).status_code == 422  # MAX_INSTANCES=32
    bad_utf8 = b'{"features": {"f0": "\xff"}}'
    assert (
        c.post("/predict", content=bad_utf8, headers={"content-type": "application/json"}).status_code == 400
    )
    assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize("route", ROUTES)
@FUZZ
@given(body=json_values)
def test_fuzz_arbitrary_json(forest_server, route, body):
    _check(_post(forest_server, route, json.dumps(body)), route)


@pytest.mark.parametrize("route", ROUTES)
@FUZZ
@given(
    raw=st.binary(max_size=300),
    ctype=st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "",
            "APPLICATION/JSON",
            *BAD_CONTENT_TYPES,
        ]
    ),
)
def test_fuzz_arbitrary_bytes(forest_server, route, raw, ctype):
    headers = {"content-type": ctype} if ctype else {}
    resp = forest_server.client.post(route, content=raw, headers=headers)
    _check(resp, route)
    if ctype in BAD_CONTENT_TYPES:
        assert resp.status_code == 415, resp.text


@pytest.mark.parametrize("route", ROUTES)
@FUZZ
@given(data=st.data())
def test_fuzz_duplicate_keys(forest_server, kit, route, data):
    """A key repeated in any object - top level, the row, a nested value - is a 400 on every route."""
    items = [(k, json.dumps(v)) for k, v in kit.row(0).items()]
    where = data.draw(st.sampled_from(["top", "row", "nested"]))
    dup = json.dumps(data.draw(json_values))
    if where == "row" and route != V2:
        items.append((data.draw(st.sampled_from(kit.FEATURES)), dup))
        body = _encode(route, items)
    elif where == "nested":
        key = data.draw(st.text(max_size=6))
        items[4] = ("f4", _obj([(key, "1"), (key, dup)]))
        body = _encode(route, items)
    else:
        body = _encode(route, items, wrap=where)
    resp = _post(forest_server, route, body)
    assert resp.status_code == 400, (body[:300], resp.text)
    assert "duplicate key" in _error(resp, route)


@pytest.mark.parametrize("route", ROUTES)
@FUZZ
@given(
    encoding=st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"]),
    seed=st.integers(0, 50),
)
def test_fuzz_non_utf8_encodings_are_400(forest_server, kit, route, encoding, seed):
    text = _encode(route, [(k, json.dumps(v)) for k, v in kit.row(0, seed=seed).items()])
    resp = _post(forest_server, route, text.encode(encoding))
    assert resp.status_code == 400, resp.text


@pytest.mark.parametrize("route", ROUTES)
@FUZZ
@given(
    name=st.sampled_from(["f0", "f7", "f19"]),
    literal=st.one_of(
        st.integers(21, 6000).map(lambda n: "9" * n),
        st.integers(21, 6000).map(lambda n: "-" + "1" * n),
        st.floats(min_value=3.41e38, allow_infinity=False).map(repr),
        st.floats(max_value=-3.41e38, allow_infinity=False).map(repr),
        st.integers(39, 400).map(lambda e: f"1e{e}"),
    ),
)
def test_fuzz_out_of_range_numbers_are_named(forest_server, kit, route, name, literal):
    """Finite JSON numbers no model input can hold: a 422 naming the feature, never a 500, on every route."""
    features = {k: json.dumps(v) for k, v in kit.row(0).items()} | {name: literal}
    resp = _post(forest_server, route, _encode(route, features.items()))
    assert resp.status_code == 422, resp.text
    err = _error(resp, route)
    assert repr(name) in err and ("out of range" in err or "|value| <=" in err)
    assert "(4300 digits)" not in err and "set_int_max_str_digits" not in err


@FUZZ
@given(data=st.data())
def test_fuzz_feature_values(forest_server, kit, data):
    """Valid shape, arbitrary values: finite numbers give 200, anything else a named 422."""
    features = kit.row(0)
    for name in data.draw(st.lists(st.sampled_from(kit.FEATURES), max_size=4, unique=True)):
        features[name] = data.draw(json_values)
    if data.draw(st.booleans()):
        features[data.draw(st.text(max_size=6))] = data.draw(json_values)
    items = [(k, json.dumps(v)) for k, v in features.items()]
    resp = _post(forest_server, "/predict", _encode("/predict", items))
    _check(resp)
    valid = set(features) == set(kit.FEATURES) and all(
        (type(v) is float and math.isfinite(v) and abs(v) <= MAX_ABS_FLOAT)
        or (type(v) is int and abs(v) <= 2**53)
        for v in features.values()
    )
    assert (resp.status_code == 200) == valid, resp.text
    if resp.status_code == 200:
        assert 0.0 <= resp.json()["prediction"] <= 1.0
    # the same row through the other routes: the same status and, for a value, the same message
    for route in ROUTES[1:]:
        other = _post(forest_server, route, _encode(route, items))
        _check(other, route)
        assert other.status_code == resp.status_code, (route, resp.text, other.text)
        if resp.status_code == 200:
            assert other.json() == (
                {"predictions": [resp.json()["prediction"]]}
                if route == "/invocations"
                else other.json()
                | {"outputs": [other.json()["outputs"][0] | {"data": [resp.json()["prediction"]]}]}
            )
        elif set(features) == set(kit.FEATURES) and not any(type(v) is list for v in features.values()):
            assert _error(other, route).removeprefix(PREFIX[route]) == resp.json()["error"].removeprefix(
                PREFIX["/predict"]
            ), route


@FUZZ
@given(
    method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]),
    path=st.sampled_from(
        [
            "/predict",
            "/metrics",
            "/healthz",
            "/readyz",
            "/model",
            "/",
            "/x/../predict",
            "/invocations",
            "/ping",
            "/version",
            "/v2",
            "/v2/health/ready",
            "/v2/models/shared-forest",
            V2,
            "/v2/models/shared-forest/versions/1/ready",
            "/v2/models/x/versions/",
        ]
    ),
)
def test_fuzz_methods_and_paths(forest_server, method, path):
    resp = forest_server.client.request(method, path)
    assert resp.status_code < 500


def test_server_survived_fuzzing(forest_server, kit):
    assert forest_server.p.proc.poll() is None
    assert forest_server.predict({"features": kit.row(1)}).status_code == 200
    assert forest_server.metric("model_requests_total", code="500") == 0
