"""Real servers for the model-server tests: redis-server, MLflow tracking server, the model server.

Everything listens on 127.0.0.1 on free ports and is killed at teardown. MLflow takes ~15 s to
start on 2 cores, so the shared tracking server is session-scoped; the end-to-end test, which
kills its tracking server on purpose, gets a private one started in parallel with the shared one.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from local_servers import MlflowServer, Process, free_port, wait_until

SERVING_DIR = Path(__file__).resolve().parents[1]

# keep the test process's MLflow client from retrying for minutes against a stopped server
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


class RedisServer:
    def __init__(self, tmp: Path, port: int | None = None):
        self.port = port or free_port()
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server not installed")
        self.p = Process(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            self.tmp / f"redis-{self.port}.log",
        )
        wait_until(self.ping, 10, "redis-server", self.p.proc, self.p.log)

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port)

    def stop(self) -> None:
        self.p.stop(signal.SIGKILL)


class ModelServerProcess:
    """`python -m model_server` as a real uvicorn process."""

    def __init__(self, tmp: Path, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "POLL_INTERVAL_SECONDS": "0.5",
            "MODEL_DIR": str(tmp),
            "PYTHONPATH": str(SERVING_DIR),
            **env,
        }
        self.p = Process([sys.executable, "-m", "model_server"], tmp / f"server-{self.port}.log", env=full)
        self.client = httpx.Client(base_url=self.url, timeout=10.0)

    def wait_ready(self, timeout: float = 90) -> ModelServerProcess:
        wait_until(
            lambda: self.client.get("/readyz").status_code == 200,
            timeout,
            "model server",
            self.p.proc,
            self.p.log,
        )
        return self

    def predict(self, body, **kw) -> httpx.Response:
        return self.client.post("/predict", json=body, **kw)

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """Samples as {(name, sorted labels): value}."""
        from prometheus_client.parser import text_string_to_metric_families

        out = {}
        for fam in text_string_to_metric_families(self.client.get("/metrics").text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def metric(self, name: str, **labels) -> float:
        """Sum of samples of `name` whose labels include `labels`."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.metrics().items() if n == name and want <= set(ls))

    def log_text(self) -> str:
        return self.p.log.read_text()

    def stop(self) -> None:
        self.client.close()
        self.p.stop()


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def _mlflow_servers(request, tmp_path_factory):
    names = [getattr(i, "fixturenames", ()) for i in request.session.items]
    need_shared = any("mlflow_server" in n for n in names)
    need_private = any("mlflow_server_private" in n for n in names)
    shared = MlflowServer(tmp_path_factory.mktemp("mlflow-shared")).start() if need_shared else None
    private = MlflowServer(tmp_path_factory.mktemp("mlflow-private")).start() if need_private else None
    yield shared, private
    for s in (shared, private):
        if s is not None:
            s.stop()


@pytest.fixture(scope="session")
def mlflow_server(_mlflow_servers) -> MlflowServer:
    return _mlflow_servers[0].wait()  # started in _mlflow_servers, alongside the private one


@pytest.fixture(scope="session")
def mlflow_server_private(_mlflow_servers) -> MlflowServer:
    """A tracking server the test may kill."""
    return _mlflow_servers[1].wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    r = RedisServer(tmp_path_factory.mktemp("redis"))
    yield r
    r.stop()


@pytest.fixture
def start_server(tmp_path):
    servers = []

    def _start(env: dict[str, str], ready: bool = True) -> ModelServerProcess:
        s = ModelServerProcess(tmp_path, env)
        servers.append(s)
        return s.wait_ready() if ready else s

    yield _start
    for s in servers:
        s.stop()


class InProcessServer:
    """uvicorn (httptools, as in production) on 127.0.0.1 in a thread, serving one fixed model.

    For the HTTP edge cases that need raw sockets: no MLflow, starts in well under a second.
    """

    def __init__(self, model, **settings):
        import threading

        import uvicorn

        from model_server.app import ModelServer
        from model_server.config import Settings

        class FixedModelServer(ModelServer):
            async def refresh(self) -> None:  # the poller installs the fixed model instead of asking MLflow
                if self.current is None:
                    self.current = model

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = FixedModelServer(
            Settings(mlflow_tracking_uri="http://127.0.0.1:1", model_name="inproc", **settings)
        )
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=False,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.client = httpx.Client(base_url=self.url, timeout=10.0)
        wait_until(lambda: self.client.get("/readyz").status_code == 200, 30, "in-process server")

    def post(self, content: bytes | str, content_type: str = "application/json") -> httpx.Response:
        return self.client.post("/predict", content=content, headers={"content-type": content_type})

    def raw(self, data: bytes, timeout: float = 20.0) -> socket.socket:
        """A raw client socket that has sent `data` (the caller reads and closes it)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.sendall(data)
        return s

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(15)


def onnx_linear_model(version: str = "1", max_instances: int = 32):
    """A LoadedModel around a real ONNX Runtime session of a LinearRegression (score = 10*f0 + ...).

    float32, like every ONNX model the server loads: values near the float32 limit overflow its score.
    """
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LinearRegression

    from model_server.loader import LoadedModel
    from model_server.validation import Column, Validator

    x, _ = make_data(n=200, seed=4)
    y = 10 * x["f0"] - x["f1"] + 0.5
    reg = LinearRegression().fit(x.to_numpy(), y.to_numpy())
    onx = convert_sklearn(reg, initial_types=[("input", FloatTensorType([None, N_FEATURES]))])
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])

    def predict(a: np.ndarray) -> np.ndarray:
        return sess.run(None, {"input": a.astype(np.float32, copy=False)})[0].astype(np.float64).ravel()

    validator = Validator([Column(f, "float") for f in FEATURES], max_instances)
    return LoadedModel("inproc", version, "champion", "onnx", validator, predict, dtype=np.float32)


@pytest.fixture(scope="module")
def inproc_server():
    srv = InProcessServer(
        onnx_linear_model(), max_body_bytes=65536, body_timeout_seconds=1.0, max_instances=32
    )
    yield srv
    srv.stop()


# ---------------------------------------------------------------- model helpers
N_FEATURES = 20
FEATURES = [f"f{i}" for i in range(N_FEATURES)]


def make_data(n: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Deterministic binary task on 20 standard-normal features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES))
    logits = x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + 0.3 * rng.normal(size=n)
    return pd.DataFrame(x, columns=FEATURES), (logits > 0).astype(int)


def train_forest(n_estimators: int = 50, seed: int = 0, max_depth: int | None = 8):
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_data(seed=seed)
    return RandomForestClassifier(
        n_estimators=n_estimators, max_depth=max_depth, random_state=seed, n_jobs=1
    ).fit(x, y)


def register_sklearn(
    tracking_uri: str, name: str, model, alias: str | None = None, serialization: str = "skops"
) -> str:
    """Log + register; skops with the model's own types trusted (the producer vouches for them)."""
    import mlflow
    import mlflow.sklearn
    import skops.io
    from mlflow.models import infer_signature

    x, _ = make_data(n=50, seed=99)
    mlflow.set_tracking_uri(tracking_uri)
    # Another suite in this process may have left an experiment of another server active.
    mlflow.set_experiment("serving-tests")
    mlflow.set_registry_uri(tracking_uri)
    kwargs = {}
    if serialization == "skops":
        kwargs["skops_trusted_types"] = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x, model.predict_proba(x)),
            registered_model_name=name,
            serialization_format=serialization,
            **kwargs,
        )
    version = str(info.registered_model_version)
    if alias:
        set_alias(tracking_uri, name, alias, version)
    return version


def set_alias(tracking_uri: str, name: str, alias: str, version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).set_registered_model_alias(
        name, alias, version
    )


def row(i: int = 0, seed: int = 7) -> dict[str, float]:
    x, _ = make_data(n=i + 1, seed=seed)
    return {k: float(v) for k, v in x.iloc[i].items()}


def server_env(mlflow_uri: str, name: str, redis_url: str = "", **extra) -> dict[str, str]:
    env = {"MLFLOW_TRACKING_URI": mlflow_uri, "MODEL_NAME": name, "REDIS_URL": redis_url, "LOG_LEVEL": "info"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="session")
def kit():
    """Helpers for test modules (with --import-mode=importlib they cannot import conftest by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        FEATURES=FEATURES,
        N_FEATURES=N_FEATURES,
        RedisServer=RedisServer,
        ModelServerProcess=ModelServerProcess,
        make_data=make_data,
        train_forest=train_forest,
        register_sklearn=register_sklearn,
        set_alias=set_alias,
        row=row,
        server_env=server_env,
        InProcessServer=InProcessServer,
        onnx_linear_model=onnx_linear_model,
        wait_until=wait_until,
    )


@pytest.fixture(scope="session")
def forest_server(mlflow_server, redis_server, tmp_path_factory):
    """One long-lived server (RF champion, cache on) for fuzzing, HTTP edge cases and metrics."""
    name = "shared-forest"
    register_sklearn(mlflow_server.uri, name, train_forest(seed=0), alias="champion")
    srv = ModelServerProcess(
        tmp_path_factory.mktemp("forest-server"),
        server_env(mlflow_server.uri, name, redis_server.url, MAX_BODY_BYTES=65536, MAX_INSTANCES=32),
    )
    yield srv.wait_ready()
    srv.stop()
