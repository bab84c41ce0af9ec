"""Serving benchmark: our server (cache off/on/Redis frozen) vs `mlflow models serve` vs a bare ONNX floor.

`mlflow models serve` and our server get the same /invocations body (built by MLflow's own client helper,
`dump_input_data`, from a one-row pandas DataFrame), so that comparison uses MLflow's protocol; our
server's /predict and Open Inference Protocol routes are measured too, with the same rows.

Run from the repo root:  .venv/bin/python workloads/serving/bench/run.py [--duration 15] [--workers 2]
Starts redis-server, an MLflow tracking server and every HTTP server itself on 127.0.0.1, drives
each with wrk (16 connections, POST bodies from a Lua script), prints a table and stops everything.
"Redis frozen" is the cache-on run with redis-server stopped by SIGSTOP after the warm-up: a hung host
that accepts connections and never answers. Also measures the cache crossover with a cheap and an
expensive model, and the per-request cost of the strict JSON parse.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SERVING = HERE.parent
sys.path.insert(0, str(SERVING.parents[1] / "tests"))  # the launchers the workload tests use
from local_servers import VENV_BIN, MlflowServer, Process, free_port, http_ok, wait_until  # noqa: E402

N_FEATURES = 20
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
N_BODIES = 1000  # distinct rows cycled by wrk: cache-on runs are ~100 % hits after the first pass
PROCS: list[Process] = []


def spawn(args, log: Path, env=None, cwd=None) -> Process:
    p = Process(args, log, env=env, cwd=cwd)
    PROCS.append(p)
    return p


def wait_http(url: str, p: Process, timeout: float = 180) -> None:
    wait_until(lambda: http_ok(url), timeout, url, p.proc, p.log)


def data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES))
    y = (x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return pd.DataFrame(x, columns=FEATURES), y


def register(uri: str, name: str, model) -> None:
    import mlflow
    import mlflow.sklearn
    import skops.io
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    x, _ = data(50, 1)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x, model.predict_proba(x)),
            registered_model_name=name,
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
        )
    MlflowClient(uri).set_registered_model_alias(name, "champion", str(info.registered_model_version))


def invocations_bodies(xs: pd.DataFrame) -> list[str]:
    """The bodies MLflow's own client (ScoringServerClient.invoke) posts for one-row DataFrames."""
    from mlflow.utils.proto_json_utils import dump_input_data

    return [dump_input_data(xs.iloc[i : i + 1]) for i in range(len(xs))]


def v2_body(row: dict[str, float]) -> str:
    """An Open Inference Protocol request: one [1, F] FP64 tensor (features in model order), as JSON."""
    values = [row[f] for f in FEATURES]
    return json.dumps(
        {"inputs": [{"name": "input", "shape": [1, N_FEATURES], "datatype": "FP64", "data": values}]}
    )


def lua_script(path: Path, bodies: list[str], uri: str) -> None:
    quoted = ",\n".join("[==[" + b + "]==]" for b in bodies)
    path.write_text(f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {{
{quoted}
}}
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "{uri}", nil, bodies[i])
end
""")


def wrk(url: str, script: Path, duration: int, connections: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=duration + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {q: _ms(v, u) for q, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": lat.get("50"),
        "p99": lat.get("99"),
        "non2xx": int(errs.group(1)) if errs else 0,
        "socket_errors": sock.group(1) if sock else "",
    }


def _ms(v: str, unit: str) -> float:
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


class Bench:
    def __init__(self, args, tmp: Path):
        self.args, self.tmp = args, tmp

    def measure(self, label: str, url: str, script: Path, during=None) -> dict:
        wrk(url, script, 2, self.args.connections)  # warm-up: JIT-free, but fills caches/pools
        with during or contextlib.nullcontext():
            res = wrk(url, script, self.args.duration, self.args.connections)
        res["label"] = label
        print(
            f"  {label:<34} {res['rps']:>9.0f} req/s  p50 {res['p50']:>7.2f} ms  p99 {res['p99']:>7.2f} ms"
            + (f"  non-2xx {res['non2xx']}" if res["non2xx"] else ""),
            flush=True,
        )
        return res

    @contextlib.contextmanager
    def server(self, mlflow_uri: str, name: str, redis_url: str):
        """Our server with every worker's model loaded; yields (base URL, log file)."""
        port = free_port()
        log = self.tmp / f"ours-{port}.log"
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": mlflow_uri,
            "MODEL_NAME": name,
            "REDIS_URL": redis_url,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WORKERS": str(self.args.workers),
            "LOG_LEVEL": "info",
            "MODEL_DIR": str(self.tmp),
            "PYTHONPATH": str(SERVING),
        }
        p = spawn([sys.executable, "-m", "model_server"], log, env=env)
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz", p)
            # /readyz reaches whichever worker accepts; wait until every worker logged its model load
            deadline = time.monotonic() + 180
            while log.read_text().count("now serving") < self.args.workers:
                if time.monotonic() > deadline or p.proc.poll() is not None:
                    raise RuntimeError(f"not all workers loaded the model:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}", log
        finally:
            p.stop()

    def ours(self, label, mlflow_uri, name, redis_url, script) -> dict:
        with self.server(mlflow_uri, name, redis_url) as (url, _):
            res = self.measure(label, url, script)
            res["mean_batch"] = _mean_batch(httpx.get(f"{url}/metrics").text)
            return res

    def freeze_pair(self, mlflow_uri, name, redis_url, redis_proc, script, i: int) -> dict:
        """One server: a run with Redis answering, then a run with it frozen from the first request."""
        with self.server(mlflow_uri, name, redis_url) as (url, log):
            running = self.measure(f"pair {i}: Redis running", url, script)
            running["breaker_openings"] = log.read_text().count("redis unavailable")
            running["cache"] = _cache_results(httpx.get(f"{url}/metrics").text)
            frozen_ = self.measure(f"pair {i}: Redis frozen", url, script, during=frozen(redis_proc))
            frozen_["breaker_openings"] = (
                log.read_text().count("redis unavailable") - running["breaker_openings"]
            )
            return {"running": running, "frozen": frozen_, "ratio": frozen_["p99"] / running["p99"]}


@contextlib.contextmanager
def frozen(p: Process):
    """redis-server stopped (SIGSTOP): its socket still accepts connections, nothing answers."""
    os.kill(p.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(p.proc.pid, signal.SIGCONT)


def _cache_results(text: str) -> dict[str, float]:
    """model_cache_requests_total by result (summed over worker processes' scrapes seen)."""
    out: dict[str, float] = {}
    for result, value in re.findall(
        r'^model_cache_requests_total\{[^}]*result="(\w+)"[^}]*\} ([\d.e+]+)', text, re.M
    ):
        out[result] = out.get(result, 0.0) + float(value)
    return out


def _mean_batch(text: str) -> float | None:
    s = re.search(r"^model_batch_size_sum\{[^}]*\} ([\d.e+]+)", text, re.M)
    c = re.search(r"^model_batch_size_count\{[^}]*\} ([\d.e+]+)", text, re.M)
    return float(s.group(1)) / float(c.group(1)) if s and c and float(c.group(1)) else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=int, default=15, help="seconds per wrk run (default 15)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="server processes (default: cores)"
    )
    ap.add_argument("--skip-mlflow-serve", action="store_true")
    ap.add_argument("--skip-crossover", action="store_true")
    ap.add_argument("--skip-floor", action="store_true")
    ap.add_argument(
        "--freeze-pairs", type=int, default=3, help="running/frozen run pairs, one server each (default 3)"
    )
    ap.add_argument("--json", type=Path, help="also write results as JSON here")
    args = ap.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            print(f"{tool} not found on PATH", file=sys.stderr)
            return 2
    os.environ["PATH"] = f"{VENV_BIN}:{os.environ.get('PATH', '')}"  # mlflow models serve needs uvicorn
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    tmp = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    mlflow = MlflowServer(tmp / "mlflow")
    bench = Bench(args, tmp)
    results: dict[str, dict] = {}
    try:
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start", flush=True)
        redis_port = free_port()
        rp = spawn(
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp),
            ],
            tmp / "redis.log",
        )
        mlflow.start()  # boots while the models train
        mlflow_uri = mlflow.uri
        redis_url = f"redis://127.0.0.1:{redis_port}/0"

        from sklearn.ensemble import RandomForestClassifier

        x, y = data(5000, 0)
        small = RandomForestClassifier(n_estimators=50, max_depth=12, random_state=0, n_jobs=1).fit(x, y)
        big = RandomForestClassifier(n_estimators=500, max_depth=None, random_state=0, n_jobs=-1).fit(x, y)
        mlflow.wait()
        register(mlflow_uri, "bench-forest", small)
        if not args.skip_crossover:
            register(mlflow_uri, "bench-forest-big", big)

        xs, _ = data(N_BODIES, 123)
        rows = [{k: float(v) for k, v in r.items()} for r in xs.to_dict("records")]
        ours_lua, mlflow_lua, v2_lua = tmp / "ours.lua", tmp / "mlflow.lua", tmp / "v2.lua"
        lua_script(ours_lua, [json.dumps({"features": r}) for r in rows], "/predict")
        lua_script(mlflow_lua, invocations_bodies(xs), "/invocations")
        lua_script(v2_lua, [v2_body(r) for r in rows], "/v2/models/bench-forest/infer")

        print(
            f"wrk: {args.connections} connections, {args.duration} s per run, {N_BODIES} distinct bodies; "
            f"our server and the floor with {args.workers} worker process(es)",
            flush=True,
        )
        results["ours_nocache"] = bench.ours("ours, cache off", mlflow_uri, "bench-forest", "", ours_lua)
        results["ours_invocations"] = bench.ours(
            "ours /invocations, cache off", mlflow_uri, "bench-forest", "", mlflow_lua
        )
        results["ours_v2"] = bench.ours("ours /v2 infer, cache off", mlflow_uri, "bench-forest", "", v2_lua)
        results["ours_cache"] = bench.ours(
            "ours, cache on (Redis)", mlflow_uri, "bench-forest", redis_url, ours_lua
        )
        results["freeze"] = [
            bench.freeze_pair(mlflow_uri, "bench-forest", redis_url, rp, ours_lua, i + 1)
            for i in range(args.freeze_pairs)
        ]

        if not args.skip_floor:
            results["floor"] = _floor(bench, small, rows[0], ours_lua, tmp)

        if not args.skip_mlflow_serve:
            port = free_port()
            log = tmp / "mlflow-serve.log"
            sp = spawn(
                [
                    str(VENV_BIN / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    "models:/bench-forest@champion",
                    "--workers",
                    "2",
                    "--env-manager",
                    "local",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                ],
                log,
                env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri},
            )
            try:
                wait_http(f"http://127.0.0.1:{port}/ping", sp)
                results["mlflow"] = bench.measure(
                    "mlflow models serve (2 workers)", f"http://127.0.0.1:{port}", mlflow_lua
                )
            finally:
                sp.stop()

        if not args.skip_crossover:
            results["big_nocache"] = bench.ours(
                "500-tree forest, cache off", mlflow_uri, "bench-forest-big", "", ours_lua
            )
            results["big_cache"] = bench.ours(
                "500-tree forest, cache on", mlflow_uri, "bench-forest-big", redis_url, ours_lua
            )
            results["inference_cost_us"] = {
                "small_1row": _inference_us(small, xs),
                "big_1row": _inference_us(big, xs),
                "redis_get_us": _redis_rtt_us(redis_port),
            }
        results["parse_us"] = _parse_overhead(rows)
        _report(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return 0
    finally:
        mlflow.stop()
        for p in PROCS:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _floor(bench: Bench, model, row: dict, script: Path, tmp: Path) -> dict:
    """The same model converted the same way behind a minimal ASGI app."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, N_FEATURES]))],
        options={type(model): {"zipmap": False}},
    )
    onnx_path = tmp / "forest.onnx"
    onnx_path.write_bytes(onx.SerializeToString())
    port = free_port()
    log = tmp / "floor.log"
    fp = spawn(
        [
            str(VENV_BIN / "uvicorn"),
            "floor_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(bench.args.workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        log,
        cwd=HERE,
        env={**os.environ, "BENCH_ONNX_PATH": str(onnx_path), "BENCH_FEATURES": ",".join(FEATURES)},
    )
    try:
        body = json.dumps({"features": row})
        ok = lambda: httpx.post(f"http://127.0.0.1:{port}/", content=body, timeout=1).status_code == 200  # noqa: E731
        wait_until(ok, 60, "bare ONNX floor", fp.proc, log)
        return bench.measure("bare ONNX floor", f"http://127.0.0.1:{port}", script)
    finally:
        fp.stop()


def _inference_us(model, xs: pd.DataFrame) -> float:
    """ONNX Runtime cost of one single-row call (what a cache hit saves), in microseconds."""
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, N_FEATURES]))],
        options={type(model): {"zipmap": False}},
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = xs.to_numpy(np.float32)
    for i in range(50):
        sess.run(None, {"input": x[i : i + 1]})
    t = time.perf_counter()
    for i in range(500):
        sess.run(None, {"input": x[i : i + 1]})
    return (time.perf_counter() - t) / 500 * 1e6


def _redis_rtt_us(port: int) -> float:
    import asyncio

    from redis.asyncio import Redis

    async def run():
        r = Redis(host="127.0.0.1", port=port)
        await r.set("bench:k", b"0.5")
        for _ in range(100):
            await r.get("bench:k")
        t = time.perf_counter()
        for _ in range(1000):
            await r.get("bench:k")
        dt = (time.perf_counter() - t) / 1000 * 1e6
        await r.aclose()
        return dt

    return asyncio.run(run())


def _parse_overhead(rows: list[dict]) -> dict[str, float]:
    """Microseconds per body: json.loads vs the server's strict parse (UTF-8, unique keys, bounded ints),
    and the body read with its deadline vs a bare receive(), for the benchmark's own bodies.

    CPU time of this process (other load on the machine does not count), the two variants
    interleaved, best of 15 rounds.
    """
    import asyncio
    import timeit

    import uvloop

    sys.path.insert(0, str(SERVING))
    from model_server.request import content_length, parse_json, read_body

    singles = [json.dumps({"features": r}).encode() for r in rows]
    batch = [json.dumps({"instances": rows[:256]}).encode()]
    headers = [(b"content-type", b"application/json"), (b"content-length", b"400")]
    message = {"type": "http.request", "body": singles[0], "more_body": False}

    async def receive():
        return message

    async def reads(n: int, deadline: bool) -> float:
        t = time.process_time()
        for _ in range(n):
            if deadline:
                length, expect = content_length(headers)
                await read_body(receive, length, 1 << 20, 16 << 20, 10.0, expect)
            else:
                await receive()
            await asyncio.sleep(0)  # one loop iteration per request, as in the server
        return (time.process_time() - t) / n * 1e6

    async def read_rounds() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"receive_bare": [], "receive_with_deadline": []}
        for _ in range(15):
            out["receive_bare"].append(await reads(2000, False))
            out["receive_with_deadline"].append(await reads(2000, True))
        return out

    def per_body(fn, bodies: list[bytes], repeat: int) -> float:
        return timeit.timeit(lambda: [fn(b) for b in bodies], number=repeat, timer=time.process_time) / (
            repeat * len(bodies)
        )

    times: dict[str, list[float]] = uvloop.run(read_rounds())
    for _ in range(15):
        for name, fn in (("json_loads", json.loads), ("strict", parse_json)):
            times.setdefault(f"{name}_single", []).append(per_body(fn, singles, 2) * 1e6)
            times.setdefault(f"{name}_256", []).append(per_body(fn, batch, 10) * 1e6)
    return {k: min(v) for k, v in times.items()}


def _report(r: dict) -> None:
    mlflow, floor = r.get("mlflow"), r.get("floor")
    print("\n| server | req/s | p50 ms | p99 ms | x mlflow | / floor | mean batch | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    keys = (
        "ours_nocache",
        "ours_invocations",
        "ours_v2",
        "ours_cache",
        "floor",
        "mlflow",
        "big_nocache",
        "big_cache",
    )
    for key in keys:
        if key not in r:
            continue
        x = r[key]
        vs_m = f"{x['rps'] / mlflow['rps']:.1f}x" if mlflow and key != "mlflow" else "-"
        vs_f = f"{x['rps'] / floor['rps']:.2f}" if floor and not key.startswith("big") else "-"
        mb = f"{x['mean_batch']:.1f}" if x.get("mean_batch") else "-"
        print(
            f"| {x['label']} | {x['rps']:.0f} | {x['p50']:.2f} | {x['p99']:.2f} | {vs_m} | {vs_f} | {mb} | {x['non2xx']} |"
        )
    if r.get("freeze"):
        print("\nRedis frozen (SIGSTOP after the warm-up) vs running, same server per pair:")
        print(
            "| pair | running p99 ms | frozen p99 ms | frozen / running | running p50 | frozen p50 | req/s running / frozen | breaker openings (frozen) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for i, pair in enumerate(r["freeze"], 1):
            a, b = pair["running"], pair["frozen"]
            print(
                f"| {i} | {a['p99']:.2f} | {b['p99']:.2f} | {pair['ratio']:.2f}x | {a['p50']:.2f} | {b['p50']:.2f} "
                f"| {a['rps']:.0f} / {b['rps']:.0f} | {b['breaker_openings']} |"
            )
        ratios = sorted(pair["ratio"] for pair in r["freeze"])
        print(f"median frozen/running p99: {ratios[len(ratios) // 2]:.2f}x (target <= 2x)")
        print(
            f"cache look-ups in one worker by the end of the running run of pair 1: {r['freeze'][0]['running']['cache']}"
        )
    if "parse_us" in r:
        p = r["parse_us"]
        print(
            f"\nstrict JSON parse per body: 1 row {p['strict_single']:.1f} us vs json.loads "
            f"{p['json_loads_single']:.1f} us (+{p['strict_single'] - p['json_loads_single']:.1f} us); "
            f"256 rows {p['strict_256']:.0f} us vs {p['json_loads_256']:.0f} us "
            f"(+{p['strict_256'] - p['json_loads_256']:.0f} us)"
        )
        print(
            f"body read with its deadline: {p['receive_with_deadline']:.2f} us vs a bare receive() "
            f"{p['receive_bare']:.2f} us"
        )
    if "inference_cost_us" in r:
        c = r["inference_cost_us"]
        print(
            f"\nsingle-row ONNX inference: 50 trees {c['small_1row']:.0f} us, 500 trees {c['big_1row']:.0f} us; "
            f"Redis GET round trip (redis-py asyncio) {c['redis_get_us']:.0f} us"
        )
        gain_small = r["ours_cache"]["rps"] / r["ours_nocache"]["rps"]
        gain_big = r["big_cache"]["rps"] / r["big_nocache"]["rps"]
        print(
            f"cache on/off throughput: 50 trees {gain_small:.2f}x, 500 trees {gain_big:.2f}x "
            "(> 1 means the cache pays)"
        )


if __name__ == "__main__":
    sys.exit(main())
