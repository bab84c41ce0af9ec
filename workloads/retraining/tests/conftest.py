"""Fixtures: a real MLflow tracking server (session), a crash proxy in front of it, and small
recording HTTP fakes on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from local_servers import MLFLOW_BIN, MlflowServer, free_port


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server for the session; killed at teardown."""
    if not MLFLOW_BIN.exists():
        pytest.skip(f"{MLFLOW_BIN} not found")
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    try:
        yield server.wait().uri
    finally:
        server.stop()


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[Recorded], tuple[int, Any]]


@dataclass
class FakeServer:
    """Records every request; ``routes[(METHOD, path_prefix)]`` decides the response."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    routes: dict[tuple[str, str], Responder] = field(default_factory=dict)

    def of(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]


def _serve(fake: FakeServer) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            u = urlparse(self.path)
            rec = Recorded(
                self.command, u.path, parse_qs(u.query), dict(self.headers), self.rfile.read(length)
            )
            fake.requests.append(rec)
            status, payload = 404, {"message": "no route"}
            for (m, prefix), fn in fake.routes.items():
                if m == self.command and u.path.startswith(prefix):
                    status, payload = fn(rec)
                    break
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{srv.server_address[1]}"
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv, t


@pytest.fixture
def fake_k8s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    """The two Job endpoints; ``fake.jobs`` are listed, POST answers ``fake.create_status``."""
    fake = FakeServer()
    fake.jobs = []  # type: ignore[attr-defined]
    fake.create_status = 201  # type: ignore[attr-defined]
    jobs_path = "/apis/batch/v1/namespaces/ml/jobs"
    fake.routes[("GET", jobs_path)] = lambda r: (200, {"kind": "JobList", "items": fake.jobs})  # type: ignore[attr-defined]

    def create(r: Recorded) -> tuple[int, Any]:
        status = fake.create_status  # type: ignore[attr-defined]
        return status, (r.json() if status == 201 else {"kind": "Status", "message": f"status {status}"})

    fake.routes[("POST", jobs_path)] = create
    srv, _ = _serve(fake)
    token = tmp_path / "token"
    token.write_text("test-sa-token\n")
    monkeypatch.setenv("K8S_API_URL", fake.url)
    monkeypatch.setenv("K8S_NAMESPACE", "ml")
    monkeypatch.setenv("K8S_TOKEN_FILE", str(token))
    monkeypatch.setenv("K8S_CA_FILE", str(tmp_path / "no-ca.crt"))
    monkeypatch.setenv("RETRAIN_IMAGE", "registry.example/retraining:1.2.3")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.mlops.svc:5000")
    for var in (
        "PUSHGATEWAY_URL",
        "RETRAIN_DATA",
        "RETRAIN_HOLDOUT",
        "GATE_MIN_AUC",
        "GATE_MAX_LATENCY_MS",
        "GATE_MIN_IMPROVEMENT",
        "DRIFT_THRESHOLD",
        "RETRAIN_THREADS",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("RETRAIN_JOB_TEMPLATE", raising=False)
    yield fake
    srv.shutdown()


@pytest.fixture
def fake_pushgateway() -> Iterator[FakeServer]:
    """Accepts pushes; ``GET /api/v1/metrics`` returns ``fake.groups`` (previous counter values)."""
    fake = FakeServer()
    fake.groups = []  # type: ignore[attr-defined]
    fake.routes[("GET", "/api/v1/metrics")] = lambda r: (200, {"status": "success", "data": fake.groups})  # type: ignore[attr-defined]
    fake.routes[("POST", "/metrics/")] = lambda r: (200, b"")
    fake.routes[("PUT", "/metrics/")] = lambda r: (200, b"")
    srv, _ = _serve(fake)
    yield fake
    srv.shutdown()


class CrashProxy:
    """An HTTP front of the real MLflow server that dies at a chosen registry write, like a killed server.

    ``arm(n, mode)`` picks the n-th write (POST/PATCH/DELETE to the registry API) from now on:
    ``before`` dies without forwarding it (the server went down before the write), ``after``
    forwards it and dies before answering (the write happened, the client never heard back),
    ``lie`` answers 200 without forwarding (a write the server acknowledged but did not keep).
    Dying closes the listening socket (new connections are refused) and drops every open
    connection; ``restart()`` listens again on the same port.  The registry state is the real
    server's, so what a crash leaves behind is exactly what the next client sees.
    """

    WRITE_METHODS = {"POST", "PATCH", "DELETE"}

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=30)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.writes: list[str] = []  # every registry write that reached the proxy, as "METHOD /path"
        self.crashed_on: str | None = None
        self._target: int | None = None
        self._when: Callable[[str, bytes], bool] | None = None
        self._mode = "before"
        self._on_crash: Callable[[], None] | None = None
        self._generation = 0
        self._server: ThreadingHTTPServer | None = None
        self._stopping: threading.Thread | None = None
        self.restart()

    def arm(
        self,
        n: int | None = None,
        mode: str = "before",
        when: Callable[[str, bytes], bool] | None = None,
        on_crash: Callable[[], None] | None = None,
    ) -> None:
        """Die at the n-th write from now (or the first one ``when(path, body)`` picks);
        ``on_crash`` runs first, e.g. to SIGKILL the real server."""
        assert mode in {"before", "after", "lie"}
        self._target = len(self.writes) + n if n is not None else None
        self._when, self._mode, self._on_crash, self.crashed_on = when, mode, on_crash, None

    @property
    def down(self) -> bool:
        return self._server is None

    def restart(self) -> None:
        if self._stopping is not None:
            self._stopping.join()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = (
                "HTTP/1.1"  # keep-alive, as the real server: a crash must drop pooled connections
            )

            def setup(self) -> None:
                super().setup()
                self.generation = proxy._generation

            def _handle(self) -> None:
                if proxy.down or self.generation != proxy._generation:
                    self.close_connection = True  # a dead server: no answer
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                action = proxy._decide(self.command, self.path, body)
                if action == "lie":
                    return self._reply(200, b"{}", "application/json")
                if action == "before":
                    return proxy._die(self)
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() in {"content-type", "authorization"}
                }
                resp = proxy.upstream.request(self.command, self.path, content=body, headers=headers)
                if action == "after":
                    return proxy._die(self)
                self._reply(
                    resp.status_code, resp.content, resp.headers.get("content-type", "application/json")
                )

            def _reply(self, status: int, data: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _decide(self, method: str, path: str, body: bytes) -> str:
        if method not in self.WRITE_METHODS or (
            "/mlflow/registered-models/" not in path and "/mlflow/model-versions/" not in path
        ):
            return "forward"
        self.writes.append(f"{method} {path.split('?')[0]}")
        hit = (
            len(self.writes) == self._target
            if self._target is not None
            else bool(self._when and self._when(path, body))
        )
        if not hit:
            return "forward"
        self._target, self._when = None, None
        self.crashed_on = self.writes[-1] + " " + body.decode()
        return self._mode

    def _die(self, handler: BaseHTTPRequestHandler) -> None:
        if self._on_crash is not None:
            self._on_crash()
        handler.close_connection = True
        server, self._server = self._server, None
        self._generation += 1
        if server is not None:
            self._stopping = threading.Thread(target=lambda: (server.shutdown(), server.server_close()))
            self._stopping.start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        elif self._stopping is not None:
            self._stopping.join()
        self.upstream.close()


@pytest.fixture
def make_crash_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], CrashProxy]]:
    """CrashProxy factory (closed at teardown); the MLflow client does not retry, so it fails fast."""
    import mlflow

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    previous_uri = mlflow.get_tracking_uri()
    proxies: list[CrashProxy] = []

    def make(upstream: str) -> CrashProxy:
        proxies.append(CrashProxy(upstream))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()
    mlflow.set_tracking_uri(previous_uri)


@pytest.fixture
def crash_proxy(mlflow_server: str, make_crash_proxy: Callable[[str], CrashProxy]) -> CrashProxy:
    """A CrashProxy in front of the session's MLflow server."""
    return make_crash_proxy(mlflow_server)


@pytest.fixture
def own_mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """A started MLflow server of this test alone, which it may kill and restart."""
    if not MLFLOW_BIN.exists():
        pytest.skip(f"{MLFLOW_BIN} not found")
    server = MlflowServer(tmp_path)
    try:
        yield server.wait()
    finally:
        server.stop()
