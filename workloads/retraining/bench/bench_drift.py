"""PSI drift benchmark: 1,000,000 rows x 20 numeric features, ours vs plain numpy vs Evidently.

Run from the repo root:  make bench-drift  (or .venv/bin/python workloads/retraining/bench/bench_drift.py)
Evidently 0.7.x does not import with pandas 3, so it runs in its own virtualenv
(``.venv-evidently/`` at the repo root, created with pip on first use) in a subprocess.
Memory: streaming (chunks read from disk) vs one shot, each measured in a fresh subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "workloads" / "retraining"))

from retrain_job.drift import ReferenceBins, compute_drift  # noqa: E402

EVIDENTLY_VENV = REPO / ".venv-evidently"
# the newest 0.7.x pip found when this was written; 0.7.x needs pandas < 3
EVIDENTLY_VERSION = "0.7.23"
EVIDENTLY_SPEC = [f"evidently=={EVIDENTLY_VERSION}", "pandas<3"]
NAMES = [f"f{i}" for i in range(20)]
BINS = 10


def plain_numpy_psi(ref: np.ndarray, cur: np.ndarray, bins: int = BINS, eps: float = 1e-4) -> np.ndarray:
    """The straightforward version: one column at a time, quantile edges, searchsorted + bincount."""
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    out = np.empty(ref.shape[1])
    for j in range(ref.shape[1]):
        edges = np.quantile(ref[:, j], qs)
        rc = np.bincount(np.searchsorted(edges, ref[:, j], side="left"), minlength=bins)
        cc = np.bincount(np.searchsorted(edges, cur[:, j], side="left"), minlength=bins)
        p = np.where(rc == 0, eps, rc / rc.sum())
        q = np.where(cc == 0, eps, cc / cc.sum())
        out[j] = np.sum((q - p) * np.log(q / p))
    return out


def ours(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    bins = ReferenceBins.fit(ref, NAMES, bins=BINS)  # fitting the frozen bins is part of the timing
    res = compute_drift(bins, cur)
    return np.array([res.features[n].psi for n in NAMES])


def timed(fn, *args, repeat: int = 3):
    """Best and median wall time of ``repeat`` runs, plus CPU seconds of the best run."""
    runs, out = [], None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn(*args)
        runs.append((time.perf_counter() - t0, time.process_time() - c0))
    best = min(runs)
    return best[0], float(np.median([r[0] for r in runs])), best[1], out


# -- memory: streaming vs one shot, each in a fresh process ---------------------------------------
MEM_CHILD = r"""
import json, sys, time, tracemalloc
import numpy as np
sys.path.insert(0, sys.argv[4])
from retrain_job.drift import ReferenceBins
mode, bins_path, data_path, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[5])
ref = ReferenceBins.load(bins_path)
def hwm_mb():
    # VmHWM: peak RSS of this process image (ru_maxrss would carry the parent's peak over fork+exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
base_rss = hwm_mb()
tracemalloc.start()
t0 = time.perf_counter()
acc = ref.accumulator()
if mode == "oneshot":
    acc.update(np.load(data_path))
else:
    with open(data_path, "rb") as f:
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(f)
        rows, cols = shape
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            acc.update(np.fromfile(f, dtype=dtype, count=n * cols).reshape(n, cols))
res = acc.result()
elapsed = time.perf_counter() - t0
_, peak = tracemalloc.get_traced_memory()
print(json.dumps({"mode": mode, "seconds": elapsed, "tracemalloc_peak_mb": peak / 2**20,
                  "maxrss_mb": hwm_mb(), "baseline_rss_mb": base_rss, "overall_psi": res.overall_psi, "rows": acc.rows}))
"""


def memory_runs(bins: ReferenceBins, cur: np.ndarray, tmp: Path, chunk: int) -> list[dict]:
    bins_path, data_path = tmp / "bins.json", tmp / "current.npy"
    bins.save(bins_path)
    np.save(data_path, cur)
    out = []
    for mode in ("oneshot", "stream"):
        proc = subprocess.run(
            [sys.executable, "-c", MEM_CHILD, mode, str(bins_path), str(data_path),
             str(REPO / "workloads" / "retraining"), str(chunk)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        out.append(json.loads(proc.stdout))
    return out


# -- Evidently in its own virtualenv ---------------------------------------------------------------
EVIDENTLY_CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
import evidently
from evidently import Dataset, DataDefinition, Report
from evidently.presets import DataDriftPreset
ref = np.load(sys.argv[1]); cur = np.load(sys.argv[2])
names = [f"f{i}" for i in range(ref.shape[1])]
t0 = time.perf_counter()
rdf, cdf = pd.DataFrame(ref, columns=names), pd.DataFrame(cur, columns=names)
definition = DataDefinition(numerical_columns=names)
report = Report([DataDriftPreset(method="psi")])
snap = report.run(Dataset.from_pandas(cdf, data_definition=definition),
                  Dataset.from_pandas(rdf, data_definition=definition))
values = {}
for m in snap.dict()["metrics"]:
    cfg = m.get("config", {})
    col = cfg.get("column")
    if col in names and "ValueDrift" in str(cfg.get("type", "")):
        values[col] = m["value"]
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "version": evidently.__version__, "psi": [values.get(n) for n in names]}))
"""


def ensure_evidently() -> Path:
    """The Evidently virtualenv, created (or repaired) with pip on first use."""
    py = EVIDENTLY_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {EVIDENTLY_VENV} (first use) ...", file=sys.stderr)
        subprocess.run(["python3", "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    probe = subprocess.run([str(py), "-c", "import evidently; print(evidently.__version__)"],
                           capture_output=True, text=True)  # fmt: skip
    if probe.stdout.strip() != EVIDENTLY_VERSION:
        subprocess.run([str(py), "-m", "pip", "install", "-q", *EVIDENTLY_SPEC], check=True)
    return py


def run_evidently(ref: np.ndarray, cur: np.ndarray, tmp: Path) -> dict:
    py = ensure_evidently()
    np.save(tmp / "ref.npy", ref)
    np.save(tmp / "cur.npy", cur)
    proc = subprocess.run([str(py), "-c", EVIDENTLY_CHILD, str(tmp / "ref.npy"), str(tmp / "cur.npy")],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"evidently failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--skip-evidently", action="store_true")
    ap.add_argument("--chunk-rows", type=int, default=100_000, help="streaming chunk for the memory run")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    rng = np.random.default_rng(42)
    ref = rng.standard_normal((args.rows, 20))
    cur = rng.standard_normal((args.rows, 20))
    cur[:, :5] += 0.1  # a small shift on 5 features, so the numbers are not all ~0
    print(f"data: reference {ref.shape} + current {cur.shape} float64, {BINS} quantile bins, "
          f"{os.cpu_count()} CPUs, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}")  # fmt: skip

    load = os.getloadavg()[0]
    t_ours, t_ours_med, cpu_ours, psi_ours = timed(ours, ref, cur)
    t_np, t_np_med, cpu_np, psi_np = timed(plain_numpy_psi, ref, cur)
    figures: dict = {
        "rows": args.rows, "features": 20, "bins": BINS,
        "load_avg_1m": load, "ours_cpu_s": cpu_ours, "numpy_cpu_s": cpu_np,
        "ours_s": t_ours, "ours_median_s": t_ours_med, "numpy_s": t_np, "numpy_median_s": t_np_med,
        "max_abs_diff_vs_numpy": float(np.max(np.abs(psi_ours - psi_np))),
    }  # fmt: skip
    print(f"load average before timing: {load:.1f}")
    print(
        f"ours (fit bins + PSI, best of 3):   {t_ours:7.3f} s  (median {t_ours_med:.3f} s, cpu {cpu_ours:.2f} s)"
    )
    print(f"plain numpy per column (best of 3): {t_np:7.3f} s  (median {t_np_med:.3f} s, cpu {cpu_np:.2f} s)  "
          f"-> ours is {t_np / t_ours:.1f}x faster; max |PSI diff| {figures['max_abs_diff_vs_numpy']:.2e}")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if not args.skip_evidently:
            ev = run_evidently(ref, cur, tmp)
            figures.update(evidently_s=ev["seconds"], evidently_version=ev["version"])
            print(f"evidently {ev['version']} DataDriftPreset(method='psi'): {ev['seconds']:7.3f} s  "
                  f"-> ours is {ev['seconds'] / t_ours:.0f}x faster")  # fmt: skip
            ev_psi = [v for v in ev["psi"] if v is not None]
            if ev_psi:
                print(f"  evidently PSI f0..f4 {np.round(ev['psi'][:5], 4).tolist()} vs ours "
                      f"{np.round(psi_ours[:5], 4).tolist()} (different bins: equal-width over ref+cur)")  # fmt: skip
        bins = ReferenceBins.fit(ref, NAMES, bins=BINS)
        mem = memory_runs(bins, cur, tmp, args.chunk_rows)
        for m in mem:
            print(f"memory {m['mode']:>7}: tracemalloc peak {m['tracemalloc_peak_mb']:7.1f} MiB, "
                  f"peak RSS {m['maxrss_mb']:6.0f} MiB (after imports {m['baseline_rss_mb']:.0f} MiB), "
                  f"{m['seconds']:.3f} s, overall PSI {m['overall_psi']:.6f}")  # fmt: skip
        figures["memory"] = mem
        if abs(mem[0]["overall_psi"] - mem[1]["overall_psi"]) > 1e-12:
            print("ERROR: streaming and one-shot results differ", file=sys.stderr)
            return 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["bench_process_maxrss_mb"] = peak
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
