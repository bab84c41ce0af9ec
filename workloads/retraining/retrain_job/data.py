"""Deterministic fraud-like tabular dataset, its schema, and file I/O.

The model features are ``f0``..``f19`` (the names the serving workload sends).  The data also
carries a categorical ``channel`` (used by validation and drift, not by the default model), an
``event_time`` (for the data-volume trigger) and the binary ``label``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

N_FEATURES = 20
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
CATEGORICAL = "channel"
CHANNELS = ["web", "app", "pos", "atm"]
LABEL = "label"
EVENT_TIME = "event_time"


@dataclass(frozen=True)
class ColumnSpec:
    """What a column must look like; ``min``/``max`` are sanity bounds, not distribution limits."""

    name: str
    kind: str  # "numeric" | "categorical" | "binary" | "timestamp"
    min: float | None = None
    max: float | None = None
    max_missing: float = 0.0  # allowed fraction of missing values
    allowed: tuple[str, ...] = ()
    required: bool = True


@dataclass(frozen=True)
class Schema:
    columns: tuple[ColumnSpec, ...]
    min_rows: int = 200
    min_positive_fraction: float = 0.005
    max_out_of_range_fraction: float = 0.0
    max_unknown_category_fraction: float = 0.01
    label: str = LABEL
    features: tuple[str, ...] = field(default=tuple(FEATURES))


def default_schema() -> Schema:
    cols = [ColumnSpec("f0", "numeric", min=0.0, max=1e6, max_missing=0.01)]  # amount-like, non-negative
    cols += [ColumnSpec(f, "numeric", min=-100.0, max=100.0, max_missing=0.01) for f in FEATURES[1:]]
    cols += [
        ColumnSpec(CATEGORICAL, "categorical", allowed=tuple(CHANNELS), max_missing=0.05, required=False),
        ColumnSpec(EVENT_TIME, "timestamp", required=False),
        ColumnSpec(LABEL, "binary"),
    ]
    return Schema(columns=tuple(cols))


def generate(
    rows: int,
    seed: int = 0,
    shift: float = 0.0,
    start: str = "2025-01-01",
    positive_rate: float = 0.08,
) -> pd.DataFrame:
    """Fraud-like binary classification data; same (rows, seed, shift) -> same frame.

    The label depends non-linearly on the features (interactions, thresholds), so more training
    data gives a measurably better model: that is what the promotion tests rely on.  ``shift``
    moves every numeric feature's mean by ``shift`` standard deviations (drift experiments).
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows, N_FEATURES))
    z[:, 1:6] += 0.5 * z[:, [0]]  # some correlation, like real transaction features
    z += shift
    amount = np.exp(3.5 + 0.9 * z[:, 0])  # lognormal "amount", positive
    channel = rng.choice(CHANNELS, size=rows, p=[0.45, 0.3, 0.2, 0.05])
    logit = (
        1.1 * z[:, 0]
        - 0.9 * z[:, 1]
        + 1.4 * z[:, 2] * z[:, 3]
        + 1.2 * (z[:, 4] > 1.0)
        + 0.8 * np.sin(2.0 * z[:, 5])
        + 0.7 * np.abs(z[:, 6])
        - 0.6 * z[:, 7] * z[:, 8]
        + 0.5 * (channel == "atm")
    )
    # calibrate the intercept so the positive rate is roughly `positive_rate`
    intercept = -np.quantile(logit, 1.0 - positive_rate) if rows else 0.0
    p = 1.0 / (1.0 + np.exp(-(1.8 * (logit + intercept))))
    label = (rng.random(rows) < p).astype(np.int64)
    frame = pd.DataFrame(z, columns=FEATURES)
    frame["f0"] = amount
    frame[CATEGORICAL] = channel
    frame[EVENT_TIME] = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(
        np.sort(rng.integers(0, 7 * 24 * 3600, rows)), unit="s"
    )
    frame[LABEL] = label
    return frame


def read_table(path: str | Path) -> pd.DataFrame:
    """CSV or Parquet by suffix; a clear ValueError on anything else."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"data file not found: {p}")
    suffix = p.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return pd.read_parquet(p)
    if suffix in {".csv", ".gz"}:
        return pd.read_csv(p, low_memory=False)
    raise ValueError(f"unsupported data file type {suffix!r} (use .csv or .parquet): {p}")


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() in {".parquet", ".pq"}:
        frame.to_parquet(p, index=False)
    elif p.suffix.lower() == ".csv":
        frame.to_csv(p, index=False)
    else:
        raise ValueError(f"unsupported output type {p.suffix!r} (use .csv or .parquet)")
