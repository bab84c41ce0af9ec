"""Real servers on 127.0.0.1 for the workload tests and benchmarks: one launcher each, shared by the serving
and retraining suites and `make bench-serving` (which puts this directory on sys.path).

Every process gets its own process group, so stopping it also ends the children it forks (MLflow's uvicorn
worker) and never touches a process matched by name."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

VENV_BIN = Path(sys.executable).parent
MLFLOW_BIN = VENV_BIN / "mlflow"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> Any:
    """Poll `check` until it returns something truthy; fail early, with the log's tail, if `proc` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail}")
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} not ready after {timeout}s\n{tail}")


def http_ok(url: str) -> bool:
    return httpx.get(url, timeout=1.0).status_code == 200


class Process:
    """A subprocess in its own process group, with its log file; stop() is idempotent."""

    def __init__(
        self, args: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.args, self.log = args, log
        self._fh = open(log, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            args, stdout=self._fh, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)  # the process group we created, not a name match
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        # children may outlive the leader: clear our own process group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(5)
        self._fh.close()


class MlflowServer:
    """`mlflow server` on sqlite + local artifacts under `tmp` (MLflow 3 refuses the file store). Restartable
    on the same port and data, so a test can kill it mid-write and bring the same registry back.

    `start()` launches without waiting, so several servers boot in parallel; `wait()` blocks until /health
    answers."""

    def __init__(self, tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "mlflow.log"
        self.process: Process | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return None if self.process is None else self.process.proc

    def start(self) -> MlflowServer:
        if self.process is None:
            self.process = Process(
                [
                    str(MLFLOW_BIN),
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{self.tmp}/mlflow.db",
                    "--artifacts-destination",
                    str(self.tmp / "artifacts"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                ],
                self.log,
                env={
                    **os.environ,
                    "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                    # no job runner / huey consumers: 8 fewer processes, a much faster start
                    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                },
                cwd=self.tmp,
            )
        return self

    def wait(self, timeout: float = 240) -> MlflowServer:
        self.start()
        wait_until(lambda: http_ok(f"{self.uri}/health"), timeout, "mlflow server", self.proc, self.log)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """End the whole process group (the server forks a uvicorn worker); start() brings it back."""
        if self.process is not None:
            self.process.stop(sig)
            self.process = None
