"""Fixtures: a real MLflow tracking server (session), and small recording HTTP fakes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

MLFLOW_BIN = Path("/work/main/.venv/bin/mlflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on sqlite + local artifacts; killed at teardown."""
    if not MLFLOW_BIN.exists():
        pytest.skip(f"{MLFLOW_BIN} not found")
    tmp = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no huey workers: faster start
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(MLFLOW_BIN),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp}/mlflow.db",
            "--artifacts-destination",
            str(tmp / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(tmp / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not become ready in 240 s")
            time.sleep(0.5)
        yield url
    finally:
        # the server forks a uvicorn worker: end the whole process group we created
        try:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, 9)
        log.close()


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
