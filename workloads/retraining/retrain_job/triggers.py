"""Trigger entry points: drift monitor and data-volume check (each may create a training Job).

The serving-input source is a CSV/Parquet file or a directory of them (e.g. the serving
workload's request log sink); it is read in chunks into the streaming drift accumulator, so
a window of any length needs bounded memory.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from . import data as ds
from .drift import DEFAULT_MIN_SAMPLES, OK, DriftResult, ReferenceBins
from .k8s import JobLauncher, LaunchResult
from .metrics import RunMetrics, write_report

TABLE_SUFFIXES = {".csv", ".parquet", ".pq"}


def table_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in TABLE_SUFFIXES)
        if not files:
            raise ValueError(f"no .csv/.parquet files in {p}")
        return files
    if not p.is_file():
        raise ValueError(f"input not found: {p}")
    if p.suffix.lower() not in TABLE_SUFFIXES:
        raise ValueError(f"unsupported input {p} (use .csv or .parquet)")
    return [p]


def iter_frames(path: str | Path, columns: list[str], chunk_rows: int = 200_000) -> Iterator[pd.DataFrame]:
    for f in table_files(path):
        if f.suffix.lower() == ".csv":
            header = pd.read_csv(f, nrows=0).columns
            missing = [c for c in columns if c not in header]
            if missing:
                raise ValueError(f"{f}: missing columns {missing}")
            yield from pd.read_csv(f, usecols=columns, chunksize=chunk_rows)
        else:
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(f)
            missing = [c for c in columns if c not in pf.schema_arrow.names]
            if missing:
                raise ValueError(f"{f}: missing columns {missing}")
            for batch in pf.iter_batches(batch_size=chunk_rows, columns=columns):
                yield batch.to_pandas()


def drift_of_source(reference: ReferenceBins, source: str | Path, **kwargs: Any) -> DriftResult:
    """Streamed drift of a file or directory; an empty window is "insufficient data", not an error."""
    acc = reference.accumulator()
    num_cols, cat_cols = list(reference.numeric), list(reference.categorical)
    for frame in iter_frames(source, num_cols + cat_cols):
        num = frame[num_cols].to_numpy(dtype=float) if num_cols else None
        acc.update(num, {c: frame[c].to_numpy() for c in cat_cols})
    return acc.result(**kwargs)


def drift_monitor(
    model: str,
    reference: ReferenceBins,
    source: str | Path,
    threshold: float,
    feature_threshold: float | None,
    launcher: JobLauncher | None,
    report_path: str,
    pushgateway_url: str | None = None,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> tuple[int, dict[str, Any]]:
    """Compare the window with the frozen bins; above the threshold, create a training Job.

    Features with fewer than ``min_samples`` values have no PSI and take no part in the
    decision; when no feature has enough, the result is "insufficient data" and never a trigger.
    """
    result = drift_of_source(reference, source, threshold=threshold, min_samples=min_samples)
    metrics = RunMetrics(model)
    metrics.record_drift(result)
    scored = {k: v for k, v in result.features.items() if v.status == OK}
    reasons = []
    if result.above_threshold:
        reasons.append(f"overall PSI {result.overall_psi:.4f} > {threshold}")
    worst = max(scored.items(), key=lambda kv: kv[1].psi) if scored else None
    if feature_threshold is not None and worst is not None and worst[1].psi > feature_threshold:
        reasons.append(f"feature {worst[0]} PSI {worst[1].psi:.4f} > {feature_threshold}")
    report: dict[str, Any] = {
        "model": model,
        "source": str(source),
        "status": result.status,
        "drift": result.to_dict(),
        "triggered": bool(reasons),
    }
    code = 0
    if reasons:
        report["reason"] = "; ".join(reasons)
        code = _launch(launcher, model, "drift", report["reason"], report)
    if worst is None:
        print(
            f"drift {model}: insufficient data ({result.n_current} rows; every feature has fewer than "
            f"{min_samples} values in the window or the reference): no PSI, no trigger",
            file=sys.stderr,
        )
    else:
        short = (
            f", too few values (< {min_samples}): {result.insufficient_features}"
            if result.insufficient_features
            else ""
        )
        print(
            f"drift {model}: overall PSI {result.overall_psi:.4f} (threshold {threshold}), worst {worst[0]}="
            f"{worst[1].psi:.4f}, statistically drifted: {result.drifted_features or 'none'}{short}",
            file=sys.stderr,
        )
    err = metrics.push(pushgateway_url)
    if err:
        report["pushgateway_error"] = err
    write_report(report_path, report)
    return code, report


def count_new_labelled(source: str | Path, since: pd.Timestamp) -> int:
    n = 0
    for frame in iter_frames(source, [ds.EVENT_TIME, ds.LABEL]):
        ts = pd.to_datetime(frame[ds.EVENT_TIME], errors="coerce", utc=True)
        n += int(((ts > since) & frame[ds.LABEL].notna()).sum())
    return n


def volume_check(
    model: str,
    source: str | Path,
    since: pd.Timestamp,
    min_rows: int,
    launcher: JobLauncher | None,
    report_path: str,
    pushgateway_url: str | None = None,
) -> tuple[int, dict[str, Any]]:
    rows = count_new_labelled(source, since)
    metrics = RunMetrics(model)
    metrics.new_rows.labels(model).set(rows)
    report: dict[str, Any] = {
        "model": model,
        "source": str(source),
        "since": since.isoformat(),
        "new_labelled_rows": rows,
        "min_rows": min_rows,
        "triggered": rows >= min_rows,
    }
    code = 0
    if rows >= min_rows:
        report["reason"] = f"{rows} new labelled rows since {since.isoformat()} >= {min_rows}"
        code = _launch(launcher, model, "volume", report["reason"], report)
    print(
        f"volume {model}: {rows} new labelled rows since {since.isoformat()} (min {min_rows})",
        file=sys.stderr,
    )
    err = metrics.push(pushgateway_url)
    if err:
        report["pushgateway_error"] = err
    write_report(report_path, report)
    return code, report


def _launch(
    launcher: JobLauncher | None, model: str, trigger: str, reason: str, report: dict[str, Any]
) -> int:
    if launcher is None:
        report["job"] = {"status": "dry-run", "job": None, "detail": "no Job created (--dry-run)"}
        return 0
    res: LaunchResult = launcher.launch(model, trigger, reason)
    report["job"] = res.as_dict()
    print(f"job: {res.status} {res.job_name or ''} - {res.detail}", file=sys.stderr)
    return 1 if res.status == "error" else 0
