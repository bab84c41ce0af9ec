"""The /predict input contract at its edges, over real sockets against uvicorn (httptools) in-process.

The model is a real ONNX Runtime session (float32) of a linear regressor, so a value near the float32
limit really overflows its score. Raw sockets play the clients an HTTP library hides: one that
writes a 10 MB body before reading, one that waits for 100-continue, one that stops sending.
"""

from __future__ import annotations

import json
import logging
import re
import select
import time

import numpy as np
import pytest

from model_server.validation import MAX_ABS_FLOAT


def _read_response(f) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (status, lower-cased headers, body) from a socket's buffered reader
    (buffered, so a pipelined second response is not lost with the first)."""
    status_line = f.readline()
    if not status_line:
        raise ConnectionError("closed before a response")
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, f.read(int(headers.get("content-length", "0")))


def _closed_by_server(f) -> bool:
    try:
        return f.read(1) == b""
    except ConnectionResetError:
        return True


def _head(length: int | None, extra: str = "") -> bytes:
    cl = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return f"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{cl}{extra}\r\n".encode()


def _body(features: dict) -> str:
    return json.dumps({"features": features})


# ---------------------------------------------------------------- numbers
def test_a_value_beyond_float32_is_a_named_422(inproc_server, kit):
    for value in (1e39, -1e39, 3.5e38):
        resp = inproc_server.post(_body(kit.row(0) | {"f3": value}))
        assert resp.status_code == 422, resp.text
        err = resp.json()["error"]
        assert "'f3'" in err and "3.4028234663852886e+38" in err and repr(value) in err
    # the bound itself is in range: float32 represents it exactly
    assert float(np.finfo(np.float32).max) == MAX_ABS_FLOAT
    resp = inproc_server.post(_body(kit.row(0) | {"f3": MAX_ABS_FLOAT}))
    assert resp.status_code == 200, resp.text


def _invalid_scores(server) -> float:
    text = server.client.get("/metrics").text
    found = re.search(r'^model_invalid_scores_total\{model="inproc",route="/predict"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_score_that_overflows_is_a_named_422_not_a_500(inproc_server, kit, caplog):
    """score = 10*f0 + ...: in range for f0 = 3e38, but infinite in float32."""
    caplog.set_level(logging.INFO)
    before = _invalid_scores(inproc_server)
    resp = inproc_server.post(_body(kit.row(0) | {"f0": 3e38}))
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err.startswith("features: ") and "not a finite number" in err and "'f0' = 3e+38" in err
    rows = [kit.row(0), kit.row(1) | {"f0": -3e38}]
    resp = inproc_server.post(json.dumps({"instances": rows}))
    assert resp.status_code == 422 and resp.json()["error"].startswith("instances[1]: ")
    for _ in range(20):
        assert inproc_server.post(_body(kit.row(2) | {"f0": 3e38})).status_code == 422
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a client's input"
    assert sum("non-finite score" in r.getMessage() for r in caplog.records) == 1  # once per version
    # ... and counted, so the canary analysis fails a model that scores NaN whatever the input
    assert _invalid_scores(inproc_server) - before == 22


@pytest.mark.parametrize("digits", [21, 5000])
def test_a_huge_integer_literal_is_out_of_range_by_name(inproc_server, kit, digits):
    text = _body(kit.row(0)).replace(repr(kit.row(0)["f7"]), "9" * digits)
    resp = inproc_server.post(text)
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert "'f7'" in err and "out of range" in err
    # nothing about the interpreter's own limit
    assert "(4300 digits)" not in err and "set_int_max_str_digits" not in err
    resp = inproc_server.post(text.replace("9" * digits, "-" + "9" * digits))
    assert resp.status_code == 422 and "'f7'" in resp.json()["error"]


# ---------------------------------------------------------------- JSON text
@pytest.mark.parametrize(
    "template",
    [
        '{"features": "garbage", "features": %s}',
        '{"features": %s, "features": %s}',
        '{"instances": [%s], "instances": [%s]}',
    ],
)
def test_duplicate_top_level_keys_are_400(inproc_server, kit, template):
    row = json.dumps(kit.row(0))
    resp = inproc_server.post(template.replace("%s", row))
    assert resp.status_code == 400, resp.text
    assert (
        "duplicate key 'features'" in resp.json()["error"]
        or "duplicate key 'instances'" in resp.json()["error"]
    )


def test_duplicate_feature_keys_are_400(inproc_server, kit):
    row = json.dumps(kit.row(0))
    dup = row[:-1] + ', "f5": 1.0}'
    for body in (f'{{"features": {dup}}}', f'{{"instances": [{row}, {dup}]}}'):
        resp = inproc_server.post(body)
        assert resp.status_code == 400 and "duplicate key 'f5'" in resp.json()["error"], resp.text


@pytest.mark.parametrize(
    ("encode", "needle"),
    [
        (lambda t: t.encode("utf-16"), "not valid UTF-8"),  # with its byte-order mark
        (lambda t: t.encode("utf-16-le"), "malformed JSON"),  # NUL bytes are valid UTF-8, not JSON
        (lambda t: t.encode("utf-32"), "not valid UTF-8"),
        (lambda t: b"\xef\xbb\xbf" + t.encode(), "byte-order mark"),
        (lambda t: t.replace('"f0"', '"f\xe9"').encode("latin-1"), "not valid UTF-8"),
        (lambda t: t.replace('"f0"', '"f\\ud800"').encode().replace(b"\\ud800", b"\xed\xa0\x80"), "UTF-8"),
    ],
)
def test_only_utf8_bodies_are_read(inproc_server, kit, encode, needle):
    resp = inproc_server.post(encode(_body(kit.row(0))))
    assert resp.status_code == 400 and needle in resp.json()["error"], resp.text


def test_utf8_text_is_read(inproc_server, kit):
    resp = inproc_server.post(_body(kit.row(0) | {"größe": 1.0}).encode())
    assert resp.status_code == 422 and "unexpected feature 'größe'" in resp.json()["error"]


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("APPLICATION/JSON", 200),
        ("application/json; charset=utf-8", 200),
        ('application/json;charset="UTF-8"', 200),
        ("application/json ; version=1", 200),
        ("application/json-seq", 415),
        ("application/jsonx", 415),
        ("application/json-patch+json", 415),
        ("application/json; charset=utf-16", 415),
        ("application/json; charset=latin-1", 415),
        ("text/json", 415),
        ("json", 415),
    ],
)
def test_content_type_is_the_exact_media_type(inproc_server, kit, content_type, status):
    resp = inproc_server.post(_body(kit.row(0)), content_type=content_type)
    assert resp.status_code == status, resp.text


def test_two_content_type_headers_are_415(inproc_server, kit):
    body = _body(kit.row(0)).encode()
    head = _head(len(body)).replace(b"Content-Type:", b"Content-Type: text/plain\r\nContent-Type:")
    with inproc_server.raw(head + body) as s, s.makefile("rb") as f:
        assert _read_response(f)[0] == 415


# ---------------------------------------------------------------- body size and time
def test_oversized_body_is_answered_to_a_client_that_sends_it_all_first(inproc_server):
    body = b"x" * 10_000_000
    with (
        inproc_server.raw(_head(len(body)) + body) as s,
        s.makefile("rb") as f,
    ):  # sendall completes: the server reads it
        status, headers, payload = _read_response(f)
        assert status == 413 and "65536" in json.loads(payload)["error"]
        assert headers["connection"] == "close" and _closed_by_server(f)


def test_oversized_chunked_body_is_answered_too(inproc_server):
    chunk = b"y" * 100_000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(100)) + b"0\r\n\r\n"
    with inproc_server.raw(_head(None) + body) as s, s.makefile("rb") as f:
        assert _read_response(f)[0] == 413


def test_expect_100_continue_gets_413_before_sending_the_body(inproc_server):
    with inproc_server.raw(_head(10_000_000, "Expect: 100-continue\r\n")) as s, s.makefile("rb") as f:
        status, headers, _ = _read_response(f)  # the first response is the final one, not "100 Continue"
        assert status == 413 and headers["connection"] == "close"


def test_a_body_that_never_completes_gets_408_and_the_connection_is_closed(inproc_server):
    """Announces 100 bytes, sends 6: answered once the body deadline (1 s here) passes."""
    with inproc_server.raw(_head(100) + b'{"feat', timeout=15) as s, s.makefile("rb") as f:
        t0 = time.monotonic()
        status, headers, payload = _read_response(f)
        assert status == 408 and "1 s" in json.loads(payload)["error"]
        assert headers["connection"] == "close" and _closed_by_server(f)
        assert time.monotonic() - t0 < 10  # the deadline, not the client, ends the request


def test_a_dribbling_client_cannot_extend_the_deadline(inproc_server, kit):
    """One byte every 0.2 s keeps every read short but the whole body late: still 408."""
    body = _body(kit.row(0)).encode()
    with inproc_server.raw(_head(len(body)), timeout=15) as s, s.makefile("rb") as f:
        for byte in body:
            if select.select([s], [], [], 0.2)[0]:
                break  # the server answered
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
        assert _read_response(f)[0] == 408


def test_an_early_answer_still_reads_the_body_or_closes(inproc_server, kit):
    """415 and 404 are answered without using the body; it is read and dropped within the deadline,
    or the connection is closed: a client cannot keep one open by dribbling a body nobody reads."""
    body = _body(kit.row(0)).encode()
    head = _head(len(body)).replace(b"application/json", b"text/plain")
    with (
        inproc_server.raw(head + body + _head(len(body)) + body) as s,
        s.makefile("rb") as f,
    ):  # two requests, one connection
        status, headers, _ = _read_response(f)
        assert status == 415 and headers.get("connection") != "close"
        assert _read_response(f)[0] == 200  # the dropped body did not corrupt the next request
    with (
        inproc_server.raw(head[: -len(b"\r\n")].replace(str(len(body)).encode(), b"100") + b'\r\n{"f') as s,
        s.makefile("rb") as f,
    ):
        status, headers, _ = _read_response(f)  # after the 1 s body deadline
        assert status == 415 and headers["connection"] == "close" and _closed_by_server(f)
    with (
        inproc_server.raw(b"POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{") as s,
        s.makefile("rb") as f,
    ):
        status, headers, _ = _read_response(f)
        assert status == 404 and headers["connection"] == "close" and _closed_by_server(f)
    with inproc_server.raw(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n") as s, s.makefile("rb") as f:
        status, headers, _ = _read_response(f)
        assert status == 200 and "connection" not in headers  # no body: kept alive


def test_server_is_healthy_after_the_edge_cases(inproc_server, kit):
    resp = inproc_server.post(_body(kit.row(3)))
    assert resp.status_code == 200 and np.isfinite(resp.json()["prediction"])
    assert 'code="500"' not in inproc_server.client.get("/metrics").text
