"""The ASGI application: raw ASGI on purpose, so the per-request path is only what serving needs.

Scoring routes, one per protocol, all through the same pipeline (`_score`): POST /predict (this server's
own, predict_api.py), POST /invocations (`mlflow models serve`, mlflow_api.py) and POST
/v2/models/{name}[/versions/{v}]/infer (the Open Inference Protocol, oip.py). Other routes: GET /healthz,
/readyz, /metrics, /model; MLflow's /ping, /health, /version; the protocol's /v2, /v2/health/live|ready,
/v2/models/{name}[/versions/{v}][/ready].
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial

from . import oip
from .batching import MicroBatcher, QueueFull
from .cache import RedisCache
from .config import Settings
from .loader import LoadedModel, load_model, registry_error, resolve_alias
from .metrics import CONTENT_TYPE, Metrics
from .mlflow_api import InvocationsRoute
from .predict_api import PredictRoute
from .request import ClientGone, discard_body, expects_continue, has_body, read_body
from .route import Reply, Route
from .validation import RequestError

log = logging.getLogger("model_server")

_JSON = b"application/json"
_RETRY_AFTER = [(b"retry-after", b"1")]
_CLOSE = [(b"connection", b"close")]
_GET_ROUTES = frozenset(("/healthz", "/readyz", "/metrics", "/model", "/ping", "/health", "/version"))
_SCORING_ROUTES = "scoring routes: POST /predict, POST /invocations, POST /v2/models/{name}/infer"


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
        self._routes: dict[str, Route] = {
            "/predict": PredictRoute(settings.model_name),
            "/invocations": InvocationsRoute(),
        }
        self._infer = oip.InferRoute(settings.model_name)
        self._shadow_plan: tuple[tuple[str, str] | None, tuple[int, ...] | None] = (None, None)
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
            route = self._routes.get(path)
            if route is not None:
                await self._score_endpoint(route, scope, receive, send)
                return
            target = oip.match(path) if path.startswith("/v2") else None
            if target is not None and target.kind == "infer":
                await self._score_endpoint(self._infer, scope, receive, send, target)
                return
            if has_body(scope["headers"]):
                send = _closing(send)  # no body is read on these routes: do not wait for one
            if target is not None:
                await self._oip_get(target, scope, send)
            elif path in _GET_ROUTES:
                await self._get_endpoint(path, scope, send)
            else:
                await _send(send, 404, _error_body(f"no route {path[:100]!r}; {_SCORING_ROUTES}"))
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
        m = self.current
        if path == "/healthz":
            await _send(send, 200, b'{"status":"ok"}')
        elif path == "/readyz":
            if m is None:
                await _send(send, 503, b'{"status":"loading"}')
            else:
                await _send(send, 200, json.dumps({"status": "ready", "model_version": m.version}).encode())
        elif path in (
            "/ping",
            "/health",
        ):  # MLflow's scoring server: 200 with a newline once the model is loaded
            await _send(send, 503 if m is None else 200, b"\n")
        elif path == "/version":  # MLflow's scoring server: the MLflow version that loads the models
            await _send(send, 200, _mlflow_version().encode(), content_type=b"text/plain; charset=utf-8")
        elif path == "/metrics":
            await _send(send, 200, self.metrics.render(), content_type=CONTENT_TYPE.encode())
        else:
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

    async def _oip_get(self, target: oip.Target, scope, send) -> None:
        """The Open Inference Protocol's health and metadata endpoints."""
        if scope["method"] not in ("GET", "HEAD"):
            await _send(
                send, 405, oip.error_body(f"{scope['path'][:100]} accepts GET"), [(b"allow", b"GET, HEAD")]
            )
            return
        m = self.current
        if target.kind == "server":
            await _send(send, 200, oip.server_metadata())
        elif target.kind == "live":
            await _send(send, 200, b'{"live":true}')
        elif target.kind == "ready":
            await _send(
                send, 503 if m is None else 200, b'{"ready":%s}' % (b"false" if m is None else b"true")
            )
        else:
            try:
                oip.check_target(target, self.settings.model_name, m)
            except RequestError as exc:
                if target.kind == "model_ready" and exc.status == 503:
                    body = json.dumps({"name": target.name, "ready": False}).encode()
                    await _send(send, 503, body, _RETRY_AFTER)
                else:
                    await _send(send, exc.status, oip.error_body(exc.message))
                return
            if target.kind == "model":
                await _send(send, 200, oip.model_metadata(m))
            else:
                await _send(send, 200, json.dumps({"name": target.name, "ready": True}).encode())

    async def _score_endpoint(
        self, route: Route, scope, receive, send, target: oip.Target | None = None
    ) -> None:
        """Every scoring route: the same limits, validation, cache, batching, metrics and shadow scoring."""
        start = time.perf_counter()
        model = self.current
        version = model.version if model is not None else "none"
        headers: Sequence[tuple[bytes, bytes]] = ()
        content_type = _JSON
        try:
            reply = await self._score(route, scope, receive, model, target)
            status, body, headers, content_type = 200, reply.body, reply.headers, reply.content_type
        except RequestError as exc:
            status, body = exc.status, route.error(exc.status, exc.message)
            if status == 405:
                headers = [(b"allow", b"POST")]
            elif status == 503:
                headers = _RETRY_AFTER
            if exc.close:
                headers = [*headers, *_CLOSE]
        except ClientGone:
            self.metrics.observe_request(route.label, 499, version, time.perf_counter() - start)
            return
        except Exception:
            log.exception("prediction failed")
            status, body = 500, route.error(500, "internal error while scoring; see server logs")
        await _send(send, status, body, headers, content_type)
        self.metrics.observe_request(route.label, status, version, time.perf_counter() - start)

    async def _score(
        self, route: Route, scope, receive, model: LoadedModel | None, target: oip.Target | None
    ) -> Reply:
        s = self.settings
        if scope["method"] != "POST":
            raise await self._unread(
                scope, receive, RequestError(405, f"{route.label} accepts POST with a JSON body")
            )
        try:
            length, expect_continue = route.content_length(scope["headers"])
        except RequestError as exc:
            raise await self._unread(scope, receive, exc) from None
        raw = await read_body(
            receive, length, s.max_body_bytes, s.max_drain_bytes, s.body_timeout_seconds, expect_continue
        )
        if target is not None:
            oip.check_target(target, s.model_name, model)
        if model is None:
            raise RequestError(503, "model not loaded yet")
        scoring = route.parse(raw, scope["headers"], model)
        rows = scoring.rows

        n = len(rows)
        scores: list[float | None] = [None] * n
        cache = self.cache
        keys: list[str] | None = None
        if cache is not None:
            m = self.metrics
            keys = None if cache.open else cache.keys(model.version, rows, model.dtype)
            cached = None if keys is None else await cache.get_many(keys)
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
                raise self._non_finite(model, rows[i], scoring.where(i), route.label)
        self.metrics.observe_inputs(model.validator.names, rows, scores)
        if self.shadow is not None and self._random() < s.shadow_sample_rate:
            self._shadow_score(rows, model, scores)
        return scoring.reply(model, scores)

    async def _unread(self, scope, receive, exc: RequestError) -> RequestError:
        """`exc`, after dropping the request's body (bounded); Connection: close if it was not all read."""
        s = self.settings
        complete = await discard_body(
            receive, expects_continue(scope["headers"]), s.max_drain_bytes, s.body_timeout_seconds
        )
        exc.close = not complete
        return exc

    def _non_finite(self, model: LoadedModel, row: list[float], where: str, route: str) -> RequestError:
        """A 422 for a row the model scores as NaN or infinity (e.g. a float32 overflow of a linear
        model on values near 3e38): the input is the cause, so no 500 and no log line per request."""
        names = model.validator.names
        j = max(range(len(row)), key=lambda k: abs(row[k]))
        self.metrics.invalid_scores.labels(self.settings.model_name, route).inc()
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
    def _shadow_score(self, rows: list[list[float]], champion: LoadedModel, scores: list[float]) -> None:
        """Score the same rows with the challenger in the background; results never reach the client."""
        shadow = self.shadow
        order = self._shadow_order(champion, shadow)
        if order is None:
            return
        try:
            fut = self.shadow_batcher.submit(
                shadow, rows if order == () else [[r[j] for j in order] for r in rows]
            )
        except QueueFull:
            log.debug("shadow scoring skipped: queue full")
            return
        fut.add_done_callback(partial(self._shadow_done, champion.version, shadow.version, scores))

    def _shadow_order(self, champion: LoadedModel, shadow: LoadedModel) -> tuple[int, ...] | None:
        """Positions of the challenger's columns among the champion's (() when identical), or None when the
        two models take different features (then the challenger is not scored); computed once per pair."""
        key = (champion.version, shadow.version)
        if self._shadow_plan[0] != key:
            a = [(c.name, c.kind) for c in champion.validator.columns]
            b = [(c.name, c.kind) for c in shadow.validator.columns]
            order: tuple[int, ...] | None = None
            if a == b:
                order = ()
            elif sorted(a) == sorted(b):
                index = {name: i for i, (name, _) in enumerate(a)}
                order = tuple(index[name] for name, _ in b)
            else:
                log.warning(
                    "challenger v%s takes other features than champion v%s; shadow scoring off for this pair",
                    shadow.version,
                    champion.version,
                )
            self._shadow_plan = (key, order)
        return self._shadow_plan[1]

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


@lru_cache(maxsize=1)
def _mlflow_version() -> str:
    import importlib.metadata

    for dist in ("mlflow-skinny", "mlflow"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


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
