"""The ASGI application: raw ASGI on purpose, so the per-request path is only what serving needs.

Routes: POST /predict, GET /healthz, GET /readyz, GET /metrics, GET /model.
Request bodies: {"features": {name: value, ...}} for one row, or {"instances": [{...}, ...]} for
several. Responses: {"model", "model_version", "prediction"} or {..., "predictions": [...]}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from .batching import MicroBatcher, QueueFull
from .cache import RedisCache
from .config import Settings
from .loader import LoadedModel, load_model, registry_error, resolve_alias
from .metrics import CONTENT_TYPE, Metrics
from .request import (
    ClientGone,
    content_length,
    discard_body,
    expects_continue,
    has_body,
    parse_json,
    read_body,
)
from .validation import RequestError

log = logging.getLogger("model_server")

_JSON = b"application/json"
_RETRY_AFTER = [(b"retry-after", b"1")]
_CLOSE = [(b"connection", b"close")]


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class ModelServer:
    """Holds the loaded model(s), batchers, cache and metrics; is itself the ASGI callable."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics(settings.model_name, settings.feature_buckets)
        self.metrics.slo.labels(settings.model_name).set(settings.latency_slo_seconds)
        self.current: LoadedModel | None = None
        self.shadow: LoadedModel | None = None
        self.cache: RedisCache | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._shadow_executor: ThreadPoolExecutor | None = None
        self.batcher: MicroBatcher | None = None
        self.shadow_batcher: MicroBatcher | None = None
        self._poller: asyncio.Task | None = None
        self._prefixes: dict[str, bytes] = {}
        self._registry_ok = True
        self._retry_after: dict[str, tuple[str, float]] = {}  # alias -> (failed version, next attempt)
        self._non_finite_logged: set[str] = set()  # versions whose non-finite score was logged once
        self._random = random.random

    # ---------------------------------------------------------------- lifecycle
    async def startup(self) -> None:
        s = self.settings
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="inference")
        batch_metric = self.metrics.batch_child.observe
        self.batcher = MicroBatcher(s.max_batch_size, s.max_queue_rows, self._executor, batch_metric)
        if s.shadow_active:
            self._shadow_executor = ThreadPoolExecutor(1, thread_name_prefix="shadow")
            self.shadow_batcher = MicroBatcher(s.max_batch_size, s.max_queue_rows, self._shadow_executor)
        if s.cache_active:
            self.cache = RedisCache(
                s.redis_url,
                s.redis_password,
                s.cache_ttl_seconds,
                s.redis_timeout_seconds,
                s.redis_budget_seconds,
                s.redis_backoff_max_seconds,
                prefix=f"model_server:{s.model_name}",
            )
            self.cache.start()
        self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def shutdown(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.cache is not None:
            await self.cache.close()
        for ex in (self._executor, self._shadow_executor):
            if ex is not None:
                ex.shutdown(wait=False, cancel_futures=True)
        for m in (self.current, self.shadow):
            if m is not None:
                m.release()

    # ---------------------------------------------------------------- model refresh
    async def _poll_forever(self) -> None:
        interval = self.settings.poll_interval_seconds
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("model refresh failed")
            await asyncio.sleep(interval if self.current is not None else min(interval, 2.0))

    async def refresh(self) -> None:
        """Resolve the aliases; load and atomically swap in any new version (work off the loop)."""
        s = self.settings
        targets = [(s.model_alias, "current")]
        if s.shadow_active:
            targets.append((s.shadow_alias, "shadow"))
        for alias, attr in targets:
            try:
                version, run_id = await asyncio.to_thread(
                    resolve_alias, s.mlflow_tracking_uri, s.model_name, alias
                )
            except Exception as exc:
                code = str(getattr(exc, "error_code", ""))
                if attr == "shadow" and ("NOT_EXIST" in code or "INVALID_PARAMETER" in code):
                    if self.shadow is not None:
                        log.info("alias %s removed; shadow scoring off", alias)
                        self.metrics.clear_model(alias)
                        self.shadow = None
                    continue
                if self._registry_ok:
                    log.warning(
                        "registry unreachable at %s (%s); keeping %s and polling every %gs; "
                        "logged again when it is back",
                        s.mlflow_tracking_uri,
                        registry_error(exc),
                        _describe(getattr(self, attr)),
                        s.poll_interval_seconds,
                    )
                self._registry_ok = False
                continue
            if not self._registry_ok:
                log.info("registry reachable again")
                self._registry_ok = True
            cur: LoadedModel | None = getattr(self, attr)
            if cur is not None and cur.version == version:
                continue
            failed = self._retry_after.get(alias)
            if failed and failed[0] == version and time.monotonic() < failed[1]:
                continue
            try:
                loaded = await asyncio.to_thread(
                    load_model,
                    s.mlflow_tracking_uri,
                    s.model_name,
                    version,
                    alias,
                    run_id=run_id,
                    onnx_enabled=s.onnx_enabled,
                    onnx_tolerance=s.onnx_tolerance,
                    ort_threads=s.ort_threads,
                    max_instances=s.max_instances,
                    model_dir=s.model_dir,
                )
            except Exception as exc:
                log.error(
                    "cannot load %s v%s (%s): %s: %s",
                    s.model_name,
                    version,
                    alias,
                    type(exc).__name__,
                    str(exc)[:500],
                )
                self._retry_after[alias] = (version, time.monotonic() + 5 * s.poll_interval_seconds)
                continue
            self._retry_after.pop(alias, None)
            setattr(self, attr, loaded)  # atomic swap: in-flight requests keep their reference
            self.metrics.set_model(alias, version, loaded.runtime)
            log.info("now serving %s v%s as %s via %s", s.model_name, version, alias, loaded.runtime)
            if cur is not None:
                asyncio.get_running_loop().call_later(60, cur.release)

    # ---------------------------------------------------------------- ASGI
    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path == "/predict":
                await self._predict_endpoint(scope, receive, send)
            else:
                if has_body(scope["headers"]):
                    send = _closing(send)  # no body is read on these routes: do not wait for one
                if path in ("/healthz", "/readyz", "/metrics", "/model"):
                    await self._get_endpoint(path, scope, send)
                else:
                    await _send(send, 404, _error_body(f"no route {path[:100]!r}; use POST /predict"))
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _get_endpoint(self, path: str, scope, send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _send(send, 405, _error_body(f"{path} accepts GET"), [(b"allow", b"GET, HEAD")])
            return
        if path == "/healthz":
            await _send(send, 200, b'{"status":"ok"}')
        elif path == "/readyz":
            m = self.current
            if m is None:
                await _send(send, 503, b'{"status":"loading"}')
            else:
                await _send(send, 200, json.dumps({"status": "ready", "model_version": m.version}).encode())
        elif path == "/metrics":
            await _send(send, 200, self.metrics.render(), content_type=CONTENT_TYPE.encode())
        else:
            m = self.current
            info = {"model": self.settings.model_name, "alias": self.settings.model_alias}
            if m is not None:
                info |= {
                    "model_version": m.version,
                    "runtime": m.runtime,
                    "run_id": m.run_id,
                    "features": [{"name": c.name, "type": c.kind} for c in m.validator.columns],
                }
            if self.shadow is not None:
                info["shadow"] = {
                    "alias": self.shadow.alias,
                    "model_version": self.shadow.version,
                    "runtime": self.shadow.runtime,
                }
            await _send(send, 503 if m is None else 200, json.dumps(info).encode())

    async def _predict_endpoint(self, scope, receive, send) -> None:
        start = time.perf_counter()
        model = self.current
        version = model.version if model is not None else "none"
        headers = ()
        try:
            body = await self._predict(scope, receive, model)
            status = 200
        except RequestError as exc:
            status, body = exc.status, _error_body(exc.message)
            if status == 405:
                headers = [(b"allow", b"POST")]
            elif status == 503:
                headers = _RETRY_AFTER
            if exc.close:
                headers = [*headers, *_CLOSE]
        except ClientGone:
            self.metrics.observe_request(499, version, time.perf_counter() - start)
            return
        except Exception:
            log.exception("prediction failed")
            status, body = 500, _error_body("internal error while scoring; see server logs")
        await _send(send, status, body, headers)
        self.metrics.observe_request(status, version, time.perf_counter() - start)

    async def _predict(self, scope, receive, model: LoadedModel | None) -> bytes:
        s = self.settings
        if scope["method"] != "POST":
            raise await self._unread(
                scope, receive, RequestError(405, "/predict accepts POST with a JSON body")
            )
        try:
            length, expect_continue = content_length(scope["headers"])
        except RequestError as exc:
            raise await self._unread(scope, receive, exc) from None
        raw = await read_body(
            receive, length, s.max_body_bytes, s.max_drain_bytes, s.body_timeout_seconds, expect_continue
        )
        if model is None:
            raise RequestError(503, "model not loaded yet")
        payload = parse_json(raw)
        validator = model.validator
        rows, single = validator.parse(payload)

        n = len(rows)
        scores: list[float | None] = [None] * n
        cache = self.cache
        keys: list[str] | None = None
        if cache is not None:
            m = self.metrics
            keys = [cache.key(model.version, validator.canonical(r)) for r in rows]
            cached = await cache.get_many(keys)
            if cached is None:
                m.cache_error.inc(n)
                keys = None  # do not try to write back either
            else:
                hits = 0
                for i, value in enumerate(cached):
                    if value is not None:
                        try:
                            scores[i] = float(value)
                            hits += 1
                        except ValueError:
                            pass
                if hits:
                    m.cache_hit.inc(hits)
                if hits != n:
                    m.cache_miss.inc(n - hits)
        missing = [i for i in range(n) if scores[i] is None] if keys is not None else range(n)
        if missing:
            try:
                fut = self.batcher.submit(model, rows if len(missing) == n else [rows[i] for i in missing])
            except QueueFull:
                raise RequestError(503, "server overloaded; retry shortly") from None
            result = await fut
            writes = []
            isfinite = math.isfinite
            for j, i in enumerate(missing):
                score = float(result[j])
                scores[i] = score
                if keys is not None and isfinite(score):
                    writes.append((keys[i], repr(score).encode()))
            if writes:
                cache.set_many_background(writes)

        for i, score in enumerate(scores):
            if not math.isfinite(score):
                raise self._non_finite(model, rows[i], "features" if single else f"instances[{i}]")
        self.metrics.observe_inputs(validator.names, rows, scores)
        if self.shadow is not None and self._random() < s.shadow_sample_rate:
            self._shadow_score(payload, model, scores)

        prefix = self._prefixes.get(model.version)
        if prefix is None:
            prefix = self._prefixes[model.version] = (
                '{"model":' + json.dumps(s.model_name) + ',"model_version":' + json.dumps(model.version)
            ).encode()
        if single:
            return prefix + b',"prediction":' + repr(scores[0]).encode() + b"}"
        return prefix + b',"predictions":[' + ",".join(map(repr, scores)).encode() + b"]}"

    async def _unread(self, scope, receive, exc: RequestError) -> RequestError:
        """`exc`, after dropping the request's body (bounded); Connection: close if it was not all read."""
        s = self.settings
        complete = await discard_body(
            receive, expects_continue(scope["headers"]), s.max_drain_bytes, s.body_timeout_seconds
        )
        exc.close = not complete
        return exc

    def _non_finite(self, model: LoadedModel, row: list[float], where: str) -> RequestError:
        """A 422 for a row the model scores as NaN or infinity (e.g. a float32 overflow of a linear
        model on values near 3e38): the input is the cause, so no 500 and no log line per request."""
        names = model.validator.names
        j = max(range(len(row)), key=lambda k: abs(row[k]))
        self.metrics.invalid_scores.labels(self.settings.model_name).inc()
        if model.version not in self._non_finite_logged:
            self._non_finite_logged.add(model.version)
            log.warning(
                "model %s v%s gave a non-finite score (answered 422); not logged again for this version",
                self.settings.model_name,
                model.version,
            )
        return RequestError(
            422,
            f"{where}: the model's score for this row is not a finite number; "
            f"its largest value is feature {names[j]!r} = {row[j]!r}",
        )

    # ---------------------------------------------------------------- shadow
    def _shadow_score(self, payload, champion: LoadedModel, scores: list[float]) -> None:
        """Score the same rows with the challenger in the background; results never reach the client."""
        shadow = self.shadow
        try:
            rows, _ = shadow.validator.parse(payload)
            fut = self.shadow_batcher.submit(shadow, rows)
        except (RequestError, QueueFull) as exc:
            log.debug("shadow scoring skipped: %s", exc)
            return
        fut.add_done_callback(partial(self._shadow_done, champion.version, shadow.version, scores))

    def _shadow_done(self, champion_version: str, shadow_version: str, scores: list[float], fut) -> None:
        if fut.cancelled() or fut.exception() is not None:
            log.warning("shadow scoring failed: %r", None if fut.cancelled() else fut.exception())
            return
        th = self.settings.shadow_agreement_threshold
        challenger = [float(x) for x in fut.result()]
        agree = sum((a >= th) == (b >= th) for a, b in zip(scores, challenger, strict=True))
        if agree:
            self.metrics.shadow_agree.inc(agree)
        if agree != len(scores):
            self.metrics.shadow_disagree.inc(len(scores) - agree)
        log.info(
            "shadow %s",
            json.dumps(
                {
                    "model": self.settings.model_name,
                    "champion_version": champion_version,
                    "challenger_version": shadow_version,
                    "champion": scores[:8],
                    "challenger": challenger[:8],
                    "rows": len(scores),
                    "agree": agree,
                }
            ),
        )


def _describe(m: LoadedModel | None) -> str:
    return f"v{m.version}" if m is not None else "no model loaded"


def _closing(send):
    """`send` that adds Connection: close to the response."""

    async def send_and_close(message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message["headers"], *_CLOSE]}
        await send(message)

    return send_and_close


async def _send(send, status: int, body: bytes, headers=(), content_type: bytes = _JSON) -> None:
    hdrs = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        hdrs.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


def configure_logging(level: str) -> None:
    """Plain one-line logs to stdout; idempotent (worker processes call it again)."""
    import sys

    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level.upper(), stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    root.setLevel(level.upper())
    # MLflow's HTTP client retries through urllib3, which logs every retry as a warning: while the
    # registry is down that is one line per poll. The poller reports an outage once, with its cause.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def create_app(settings: Settings | None = None) -> ModelServer:
    """Factory for uvicorn (`--factory`, used per worker process); reads the environment by default."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    return ModelServer(settings)
