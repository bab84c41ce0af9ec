"""The HTTP half of the input contract of every scoring route, enforced before any model code runs.

- media type exactly `application/json` (case-insensitive); a `charset` parameter, if given, must be
  `utf-8`; other parameters are ignored (application/json defines none);
- a body of at most MAX_BODY_BYTES, received completely within BODY_TIMEOUT_SECONDS (408 otherwise:
  a client that announces 100 bytes and sends 6 cannot hold a connection open);
- a body over the limit is read and thrown away (up to MAX_DRAIN_BYTES) before the 413 is sent, so
  a client that writes its whole body before reading gets the answer instead of a connection reset;
- strict UTF-8 without a byte-order mark, then JSON whose objects have unique keys (the standard
  library keeps the last duplicate silently; `{"features": "x", "features": {...}}` must not pass).

Integer literals longer than 20 characters are not converted (Python refuses more than 4300 digits
with a message about its own limit): they parse as a number out of every feature's range, so the
validator rejects them by feature name.
"""

from __future__ import annotations

import asyncio
import json

from .validation import RequestError, short_repr

_JSON = b"application/json"
_MAX_INT_CHARS = 20  # sign + 19 digits: beyond +-2**53 already, so no feature accepts it
_HUGE = 2**64  # stands in for any longer integer; only ever compared against the +-2**53 range


class ClientGone(Exception):
    """The client disconnected before the body was complete."""


def content_length(
    headers: list[tuple[bytes, bytes]], missing_ok: bool = False, binary: bool = False
) -> tuple[int, bool]:
    """Check Content-Type and Content-Encoding; return (announced length or -1, whether 100-continue is
    expected). `missing_ok`: a request without Content-Type is accepted (Triton's HTTP client sends none);
    `binary`: the body is a JSON header followed by raw tensor bytes, sent as application/octet-stream."""
    content_types = []
    length = -1
    expect_continue = False
    for k, v in headers:
        if k == b"content-type":
            content_types.append(v)
        elif k == b"content-length":
            length = int(v) if v.isdigit() else -1
        elif k == b"expect" and v.lower() == b"100-continue":
            expect_continue = True
        elif k == b"content-encoding" and v.strip().lower() != b"identity":
            raise RequestError(
                415, f"Content-Encoding {v.decode('latin-1')[:40]!r} is not supported; send the body as is"
            )
    if missing_ok and not content_types:
        return length, expect_continue
    accepted = _is_octet_stream if binary else _is_json
    if len(content_types) != 1 or not accepted(content_types[0]):
        got = repr(b", ".join(content_types).decode("latin-1")[:80]) if content_types else "none"
        want = "application/octet-stream (binary tensor data)" if binary else "application/json (UTF-8)"
        raise RequestError(415, f"Content-Type must be {want}; got {got}")
    return length, expect_continue


def _is_octet_stream(value: bytes) -> bool:
    return value.partition(b";")[0].strip().lower() == b"application/octet-stream"


def _is_json(value: bytes) -> bool:
    if value == _JSON:
        return True
    media_type, _, params = value.partition(b";")
    if media_type.strip().lower() != _JSON:
        return False
    for param in params.split(b";"):
        name, _, val = param.partition(b"=")
        if name.strip().lower() == b"charset" and val.strip().strip(b'"').lower() != b"utf-8":
            return False
    return True


def expects_continue(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k == b"expect" and v.lower() == b"100-continue" for k, v in headers)


def has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request announces a body (answering without reading it must close the connection)."""
    return any((k == b"content-length" and v != b"0") or k == b"transfer-encoding" for k, v in headers)


async def read_body(
    receive, announced: int, limit: int, drain_limit: int, timeout: float, expect_continue: bool
) -> bytes:
    """The complete body, or RequestError 413 (too large) / 408 (not received within `timeout`)."""
    over = announced > limit
    if over and (expect_continue or announced > drain_limit):
        raise _too_large(limit)  # the client waits for 100-continue, or the body is not worth reading
    body, complete = await _receive(receive, limit, drain_limit, timeout, over)
    if body is None:
        raise _too_large(limit)
    if not complete:
        raise RequestError(408, f"request body not received within {timeout:g} s", close=True)
    return body


async def discard_body(receive, expect_continue: bool, drain_limit: int, timeout: float) -> bool:
    """Read and drop the body of a request answered without it; False if it was not read completely.

    Answering first and leaving the body unread would either reset the connection on close (the
    client loses the answer) or, kept alive, let the server discard body bytes with no limit.
    """
    if expect_continue:
        return False  # the client sends nothing until told to continue: close instead
    return (await _receive(receive, 0, drain_limit, timeout, True))[1]


def _too_large(limit: int) -> RequestError:
    return RequestError(413, f"body larger than {limit} bytes", close=True)


async def _receive(
    receive, limit: int, drain_limit: int, timeout: float, over: bool
) -> tuple[bytes | None, bool]:
    """(body, complete). The body is None once it passed `limit`; from there on it is read and dropped
    up to `drain_limit` bytes in all. Reading stops at `timeout` after the first call (a deadline for
    the whole body, so a client dribbling one byte at a time cannot extend it)."""
    chunks: list[bytes] = []
    size = 0
    # A plain timer that cancels this task: a fifth of asyncio.timeout()'s cost per request here.
    task = asyncio.current_task()
    expired: list[bool] = []
    timer = asyncio.get_running_loop().call_later(timeout, _expire, task, expired)
    try:
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise ClientGone
            chunk = msg.get("body", b"")
            more = msg.get("more_body", False)
            if not more and not chunks and not over and len(chunk) <= limit:
                return chunk, True  # the common case: the whole body in one message
            size += len(chunk)
            if not over and size > limit:
                over, chunks = True, []
            if over:
                if size > drain_limit:
                    return None, False  # not worth reading further
            else:
                chunks.append(chunk)
            if not more:
                return (None if over else b"".join(chunks)), True
    except asyncio.CancelledError:
        if not expired or task.uncancel() > 0:
            raise  # cancelled by someone else (shutdown), not by the deadline
        return (None if over else b""), False
    finally:
        timer.cancel()


def _expire(task: asyncio.Task, expired: list[bool]) -> None:
    expired.append(True)
    task.cancel()


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RequestError(400, f"malformed JSON: duplicate key {short_repr(key)} in an object")
            seen.add(key)
    return obj


def _bounded_int(text: str) -> int:
    if len(text) <= _MAX_INT_CHARS:
        return int(text)
    return -_HUGE if text[0] == "-" else _HUGE


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_int=_bounded_int)


def parse_json(raw: bytes) -> object:
    """Strict UTF-8 JSON with unique keys; RequestError 400 with a short reason otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"body is not valid UTF-8 (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        raise RequestError(400, "body starts with a byte-order mark; send UTF-8 JSON without one")
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise RequestError(
            400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
