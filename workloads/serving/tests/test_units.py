"""In-process tests of the pieces: config, validation, canonical keys, breaker, batcher, metric contract."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from model_server.batching import MicroBatcher, QueueFull
from model_server.cache import RedisCache
from model_server.config import ConfigError, Settings
from model_server.loader import LoadedModel
from model_server.metrics import Metrics
from model_server.validation import Column, RequestError, Validator

METRICS_DOC = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"
BASE_ENV = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "MODEL_NAME": "m"}


# ---------------------------------------------------------------- config
def test_config_defaults_and_parsing(tmp_path):
    s = Settings.from_env(BASE_ENV)
    assert (s.model_alias, s.port, s.cache_active, s.shadow_active) == ("champion", 8080, False, False)
    assert (s.body_timeout_seconds, s.max_drain_bytes, s.redis_budget_seconds) == (10.0, 16 * 2**20, 0.005)
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    s = Settings.from_env(
        BASE_ENV
        | {
            "REDIS_URL": "redis://r:6379/0",
            "REDIS_PASSWORD_FILE": str(pw),
            "SHADOW_ALIAS": "challenger",
            "SHADOW_SAMPLE_RATE": "0.25",
        }
    )
    assert s.cache_active and s.shadow_active and s.redis_password == "s3cret"
    assert "s3cret" not in repr(s)  # the secret never reaches logs through repr


def test_config_reports_every_error_at_once():
    with pytest.raises(ConfigError) as exc:
        Settings.from_env(
            {
                "MAX_BATCH_SIZE": "0",
                "SHADOW_SAMPLE_RATE": "2",
                "PORT": "http",
                "REDIS_URL": "http://x",
                "CACHE_ENABLED": "maybe",
                "FEATURE_BUCKETS": "1,0",
                "BODY_TIMEOUT_SECONDS": "0",
                "MAX_DRAIN_BYTES": "-1",
                "REDIS_BUDGET_SECONDS": "soon",
            }
        )
    msg = str(exc.value)
    for key in (
        "MLFLOW_TRACKING_URI",
        "MODEL_NAME",
        "MAX_BATCH_SIZE",
        "SHADOW_SAMPLE_RATE",
        "PORT",
        "REDIS_URL",
        "CACHE_ENABLED",
        "FEATURE_BUCKETS",
        "BODY_TIMEOUT_SECONDS",
        "MAX_DRAIN_BYTES",
        "REDIS_BUDGET_SECONDS",
    ):
        assert key in msg


def test_python_m_model_server_exits_with_clear_config_error():
    import subprocess
    import sys

    serving = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "model_server"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=serving,
        env={"PATH": "/usr/bin:/bin", "MODEL_NAME": "m"},
    )
    assert proc.returncode == 2
    assert "MLFLOW_TRACKING_URI: required" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- validation
V = Validator([Column("b", "float"), Column("a", "float"), Column("n", "int"), Column("flag", "bool")], 4)


def test_validation_orders_columns_and_coerces():
    rows, single = V.parse({"features": {"a": 1, "b": 2.5, "n": 3, "flag": True}})
    assert single and rows == [[2.5, 1.0, 3, 1]]
    rows, single = V.parse({"instances": [{"a": 0.0, "b": 0, "n": -1, "flag": False}] * 2})
    assert not single and len(rows) == 2


@pytest.mark.parametrize(
    ("features", "needle"),
    [
        ({"a": 1.0, "n": 1, "flag": True}, "missing feature 'b'"),
        ({"a": 1.0, "b": 1.0, "n": 1, "flag": True, "zz": 1}, "unexpected feature 'zz'"),
        ({"a": "1", "b": 1.0, "n": 1, "flag": True}, "'a' must be a number, got a string"),
        ({"a": True, "b": 1.0, "n": 1, "flag": True}, "'a' must be a number, got a boolean"),
        ({"a": 1.0, "b": 1.0, "n": 1.0, "flag": True}, "'n' must be an integer"),
        ({"a": 1.0, "b": 1.0, "n": 1, "flag": 1}, "'flag' must be true or false"),
        ({"a": float("nan"), "b": 1.0, "n": 1, "flag": True}, "'a' must be a finite number"),
        ({"a": 1e39, "b": 1.0, "n": 1, "flag": True}, "'a' must be a finite number with |value| <= 3.40"),
        ({"a": 1.0, "b": -3.5e38, "n": 1, "flag": True}, "'b' must be a finite number"),
        ({"a": 2**60, "b": 1.0, "n": 1, "flag": True}, "'a' is out of range"),
    ],
)
def test_validation_errors_name_the_field(features, needle):
    with pytest.raises(RequestError) as exc:
        V.parse({"features": features})
    assert exc.value.status == 422 and needle in exc.value.message


def test_instances_limit_and_index():
    ok = {"a": 1.0, "b": 1.0, "n": 1, "flag": True}
    with pytest.raises(RequestError, match="limit is 4"):
        V.parse({"instances": [ok] * 5})
    with pytest.raises(RequestError, match=r"instances\[1\]: missing feature 'n'"):
        V.parse({"instances": [ok, {"a": 1.0, "b": 1.0, "flag": True}]})


def test_cache_keys_are_the_row_as_the_runtime_sees_it():
    """Key order, 1 vs 1.0 and the route do not matter; float32 values the ONNX runtime cannot tell apart share
    a key (JSON 0.1 and a binary FP32 tensor's 0.1), the float64 pyfunc runtime keeps them apart."""
    cache = RedisCache("redis://127.0.0.1:1/0", None, 60, 0.05, 0.05, 30, "p")
    r1, _ = V.parse({"features": {"a": 1, "b": 0.1, "n": 2, "flag": False}})
    r2, _ = V.parse({"features": {"flag": False, "n": 2, "b": 0.1, "a": 1.0}})
    r3, _ = V.parse({"features": {"flag": False, "n": 2, "b": 0.1000001, "a": 1.0}})
    f32 = float(np.float32(0.1))  # what a binary FP32 tensor of 0.1 reads as: 0.10000000149011612
    r4 = [[f32, 1.0, 2, 0]]
    k32 = [cache.keys("7", r, np.float32)[0] for r in (r1, r2, r3, r4)]
    assert k32[0] == k32[1] == k32[3] != k32[2]
    assert k32[0].startswith("p:7:") and cache.keys("8", r1, np.float32)[0] != k32[0]  # versions never share
    k64 = [cache.keys("7", r, np.float64)[0] for r in (r1, r2, r4)]
    assert k64[0] == k64[1] != k64[2]


# ---------------------------------------------------------------- cache breaker
def _counting(cache: RedisCache, method: str) -> list[int]:
    """Count calls of one redis-py client method (list of one int, mutated in place)."""
    calls = [0]
    orig = getattr(cache._redis, method)

    async def counted(*a, **kw):
        calls[0] += 1
        return await orig(*a, **kw)

    setattr(cache._redis, method, counted)
    return calls


async def _until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout}s")
        await asyncio.sleep(0.02)


def test_dead_redis_opens_the_breaker_and_costs_nothing_afterwards():
    async def run():
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # nothing listens here once closed
        cache = RedisCache(f"redis://127.0.0.1:{port}/0", None, 60, 0.05, 0.05, 30, "t")
        mgets, pings = _counting(cache, "mget"), _counting(cache, "ping")
        assert await cache.get_many(["k"]) is None  # failure -> breaker opens
        assert cache.open and cache.trips == 1
        t0 = time.perf_counter()
        for _ in range(1000):
            assert await cache.get_many(["k"]) is None
        elapsed = time.perf_counter() - t0
        assert mgets[0] == 1, "breaker open: requests must not contact Redis again"
        await _until(lambda: pings[0] >= 2, 10, "two background probes")  # after 0.5 s, then 1 s
        assert mgets[0] == 1 and cache.open and cache.trips == 1  # failed probes are not new outages
        await cache.close()
        return elapsed

    assert asyncio.run(run()) < 1.0  # 1000 skipped look-ups: microseconds each, not a timeout each


def test_frozen_redis_costs_a_lookup_its_budget_not_the_socket_timeout(tmp_path, kit):
    """SIGSTOP: the host accepts connections and never answers. Socket timeout 5 s, budget 10 ms."""
    import os
    import signal

    redis = kit.RedisServer(tmp_path / "redis-frozen")
    pid = redis.p.proc.pid

    async def run():
        cache = RedisCache(redis.url, None, 60, 5.0, 0.01, 30, "frozen")
        cache.set_many_background([("frozen:k", b"0.5")])
        await _until(lambda: redis.client().get("frozen:k") == b"0.5", 5, "write-back")
        assert await cache.get_many(["frozen:k"]) == [b"0.5"]
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.perf_counter()
            first = await cache.get_many(["frozen:k"])
            during = await asyncio.gather(*(cache.get_many(["frozen:k"]) for _ in range(5)))
            waited = time.perf_counter() - t0
            assert first is None and during == [None] * 5
            assert waited < 2.5  # the budget (10 ms) with generous slack; the socket timeout is 5 s
            await _until(lambda: cache.open, 10, "breaker opening after the socket timeout")
            mgets = _counting(cache, "mget")
            assert await cache.get_many(["frozen:k"]) is None and mgets[0] == 0
        finally:
            os.kill(pid, signal.SIGCONT)
        await _until(lambda: not cache.open, 15, "recovery after SIGCONT")
        assert await cache.get_many(["frozen:k"]) == [b"0.5"]
        assert cache.trips == 1
        await cache.close()

    try:
        asyncio.run(run())
    finally:
        redis.stop()


def test_redis_restart_opens_the_breaker_once_despite_stale_pooled_connections(tmp_path, kit, caplog):
    """Eight pooled connections die with the old process; only the first failure may count."""
    redis = kit.RedisServer(tmp_path / "redis-restart")
    caplog.set_level(logging.INFO, logger="model_server.cache")

    async def run():
        cache = RedisCache(redis.url, None, 60, 0.5, 0.5, 30, "restart")
        await asyncio.gather(*(cache._redis.ping() for _ in range(8)))  # eight idle pooled connections
        redis.stop()
        redis.start()  # same port, empty
        value = None
        for i in range(600):  # a request stream: a look-up, then write-backs over a few ticks
            got = await cache.get_many(["restart:k"])
            value = got and got[0]
            if value == b"0.25" and i > 100:
                break
            for j in range(4):  # concurrent writes, as under load: several pooled connections in use
                cache.set_many_background([(f"restart:{i}:{j}", b"1"), ("restart:k", b"0.25")])
                await asyncio.sleep(0)
            await asyncio.sleep(0.01)
        assert value == b"0.25", "cache never recovered"
        await cache.close()

    try:
        asyncio.run(run())
    finally:
        redis.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "model_server.cache"]
    assert sum("redis unavailable" in m for m in messages) == 1, messages
    assert sum("reachable again" in m for m in messages) == 1, messages


# ---------------------------------------------------------------- micro-batcher
def _model(fn, version="1") -> LoadedModel:
    return LoadedModel("m", version, "champion", "onnx", V, fn)


def test_batcher_flushes_immediately_when_idle_and_batches_while_busy():
    sizes: list[int] = []

    def slow_sum(x: np.ndarray) -> np.ndarray:
        time.sleep(0.05)
        return x.sum(axis=1)

    async def run():
        with ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(max_batch=8, max_queue_rows=100, executor=ex, on_batch=sizes.append)
            m = _model(slow_sum)
            first = b.submit(m, [[1.0, 1.0]])
            await asyncio.sleep(0.01)  # first batch is running alone
            rest = [b.submit(m, [[float(i), 0.0]]) for i in range(12)]
            out = await asyncio.gather(first, *rest)
        return [float(o[0]) for o in out]

    results = asyncio.run(run())
    assert results == [2.0] + [float(i) for i in range(12)]
    assert sizes == [1, 8, 4]  # idle -> alone; busy -> accumulated, capped at max_batch


def test_batcher_bounded_queue_and_errors_propagate():
    def boom(x):
        raise ValueError("bad model")

    async def run():
        with ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(max_batch=4, max_queue_rows=3, executor=ex)
            m = _model(boom)
            futs = [b.submit(m, [[0.0]]) for _ in range(3)]
            with pytest.raises(QueueFull):
                b.submit(m, [[0.0]])
            results = await asyncio.gather(*futs, return_exceptions=True)
        return results

    assert all(isinstance(r, ValueError) for r in asyncio.run(run()))


def test_batcher_runs_cheap_batches_inline_and_dear_ones_on_the_thread():
    """After the first batch (always on the thread, to learn the cost), a model whose batch costs under
    INLINE_BELOW_SECONDS is scored on the event loop's thread; a slow one stays on the inference thread;
    errors reach the callers either way."""
    import threading

    where: dict[str, list[str]] = {"cheap": [], "dear": []}

    def make(tag, seconds):
        def f(x):
            where[tag].append(threading.current_thread().name)
            time.sleep(seconds)
            if x[0][0] < 0:
                raise ValueError("bad row")
            return x.sum(axis=1)

        return f

    async def run():
        loop_thread = threading.current_thread().name
        with ThreadPoolExecutor(1, thread_name_prefix="inference") as ex:
            b = MicroBatcher(max_batch=8, max_queue_rows=100, executor=ex)
            cheap, dear = _model(make("cheap", 0), "1"), _model(make("dear", 0.01), "2")
            for _ in range(3):
                assert list(await b.submit(cheap, [[1.0, 2.0]])) == [3.0]
                assert list(await b.submit(dear, [[1.0, 2.0]])) == [3.0]
            with pytest.raises(ValueError, match="bad row"):
                await b.submit(cheap, [[-1.0, 0.0]])
        return loop_thread

    loop_thread = asyncio.run(run())
    assert where["cheap"][0].startswith("inference")  # learning its cost
    assert where["cheap"][1:] == [loop_thread] * 3
    assert all(name.startswith("inference") for name in where["dear"])


def test_batcher_never_mixes_model_versions():
    seen: list[tuple[str, int]] = []

    def make(tag):
        def f(x):
            seen.append((tag, len(x)))
            return np.zeros(len(x))

        return f

    async def run():
        with ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(max_batch=64, max_queue_rows=100, executor=ex)
            m1, m2 = _model(make("v1")), _model(make("v2"), "2")
            futs = [
                b.submit(m1, [[0.0]]),
                b.submit(m1, [[0.0]]),
                b.submit(m2, [[0.0]]),
                b.submit(m1, [[0.0]]),
            ]
            await asyncio.gather(*futs)

    asyncio.run(run())
    assert seen == [("v1", 2), ("v2", 1), ("v1", 1)]


# ---------------------------------------------------------------- metric contract
def _contract() -> dict[str, tuple[str, set[str]]]:
    """Model-server rows of docs/metrics.md: name -> (type, labels)."""
    text = METRICS_DOC.read_text()
    section = text.split("## Model server", 1)[1].split("\n## ", 1)[0]
    out = {}
    for m in re.finditer(r"^\| `(\w+)` \| ([\w ()0-9]+?) \| ([^|]*) \|", section, re.M):
        labels = set(re.findall(r"`(\w+)`", m.group(3)))
        out[m.group(1)] = (m.group(2).split()[0], labels)
    return out


def test_exported_metrics_match_the_contract_exactly():
    contract = _contract()
    assert len(contract) == 10
    m = Metrics("m", (0.0, 1.0))
    m.observe_request("/invocations", 200, "3", 0.002)
    m.invalid_scores.labels("m", "/predict").inc()
    m.observe_inputs(("f0", "f1"), [[0.5, 2.0], [-1.0, 0.0]], [0.2, 0.9])
    m.cache_hit.inc()
    m.batch_child.observe(2)
    m.shadow_agree.inc()
    m.set_model("champion", "3", "onnx")
    m.slo.labels("m").set(0.05)
    families = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    exported = {n for n in families if n.startswith("model_")}
    assert {n.removesuffix("_total") for n in contract} == exported  # parser strips _total off counters
    for name, (kind, labels) in contract.items():
        fam = families[name.removesuffix("_total")]
        assert fam.type == kind, name
        sample_labels = {k for s in fam.samples for k in s.labels if k not in ("le",)}
        assert sample_labels == labels, (name, sample_labels, labels)


def test_buffered_histograms_have_prometheus_semantics():
    m = Metrics("m", (0.0, 1.0))
    m.observe_inputs(("f0",), [[-0.5], [0.0], [0.5], [1.0], [7.0]], [0.0, 0.05, 0.5, 0.95, 1.0])
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(m.render().decode())
        for s in f.samples
    }
    f = (("feature", "f0"), ("model", "m"))
    assert samples[("model_feature_value_bucket", (*f[:1], ("le", "0.0"), *f[1:]))] == 2  # le is inclusive
    assert samples[("model_feature_value_bucket", (*f[:1], ("le", "1.0"), *f[1:]))] == 4
    assert samples[("model_feature_value_bucket", (*f[:1], ("le", "+Inf"), *f[1:]))] == 5
    assert samples[("model_feature_value_count", f)] == 5 and samples[("model_feature_value_sum", f)] == 8.0
    assert samples[("model_prediction_value_count", (("model", "m"),))] == 5


def test_concurrent_lookups_are_coalesced_into_one_mget(redis_server):
    async def run():
        cache = RedisCache(redis_server.url, None, 60, 0.5, 0.5, 30, "coalesce")
        cache.set_many_background([(f"coalesce:{i}", str(i).encode()) for i in range(3)])
        await asyncio.sleep(0.05)
        calls = []
        orig = cache._redis.mget

        async def counting_mget(keys):
            calls.append(len(keys))
            return await orig(keys)

        cache._redis.mget = counting_mget
        results = await asyncio.gather(*(cache.get_many([f"coalesce:{i}"]) for i in range(5)))
        await cache.close()
        return calls, results

    calls, results = asyncio.run(run())
    assert calls == [5]
    assert results == [[b"0"], [b"1"], [b"2"], [None], [None]]
