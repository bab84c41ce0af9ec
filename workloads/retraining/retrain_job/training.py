"""Train the candidate and evaluate any model on a holdout: AUC, F1 and p99 single-row latency."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from .data import FEATURES, LABEL


def effective_threads() -> int:
    """Threads for training: $RETRAIN_THREADS, else the cgroup CPU quota, else the CPUs we may use.

    OpenMP sizes its pool by the node's cores, not the pod's CPU limit; oversubscribed OpenMP
    threads spin and throttle (measured here: 12 s instead of 0.8 s for one fit on a busy node).
    """
    env = os.environ.get("RETRAIN_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


@dataclass(frozen=True)
class TrainParams:
    max_iter: int = 150
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    random_state: int = 0
    threads: int = 0  # 0: effective_threads()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Evaluation:
    auc: float
    f1: float
    p99_latency_s: float
    rows: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def split(frame: pd.DataFrame, holdout_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified, seeded split so reruns on the same data evaluate on the same rows."""
    train, hold = train_test_split(
        frame, test_size=holdout_fraction, random_state=seed, stratify=frame[LABEL]
    )
    return train.reset_index(drop=True), hold.reset_index(drop=True)


def train(frame: pd.DataFrame, params: TrainParams, features: list[str] = FEATURES) -> Any:
    """Gradient-boosted trees: strong on tabular data, sub-millisecond single-row scoring."""
    model = HistGradientBoostingClassifier(
        max_iter=params.max_iter,
        learning_rate=params.learning_rate,
        max_leaf_nodes=params.max_leaf_nodes,
        random_state=params.random_state,
    )
    with threadpool_limits(limits=params.threads or effective_threads()):
        model.fit(frame[features], frame[LABEL].astype(int))
    return model


def p99_single_row_latency(model: Any, rows: pd.DataFrame, calls: int = 200, warmup: int = 20) -> float:
    """p99 wall time of predict_proba on one row, the way an online server calls it.

    Single-threaded (OpenMP limited to 1): waking a thread pool for one row costs more than it
    saves, and on a busy node the spin-up dominates the tail; servers pin 1 thread per worker.
    """
    n = len(rows)
    if n == 0:
        return float("nan")
    timings = np.empty(calls)
    with threadpool_limits(limits=1):
        for i in range(warmup):
            model.predict_proba(rows.iloc[[i % n]])
        for i in range(calls):
            one = rows.iloc[[i % n]]
            t0 = time.perf_counter()
            model.predict_proba(one)
            timings[i] = time.perf_counter() - t0
    return float(np.percentile(timings, 99))


def evaluate(
    model: Any, holdout: pd.DataFrame, features: list[str] = FEATURES, calls: int = 200
) -> Evaluation:
    y = holdout[LABEL].astype(int).to_numpy()
    x = holdout[features]
    with threadpool_limits(limits=effective_threads()):
        proba = model.predict_proba(x)[:, 1]
    auc = float(roc_auc_score(y, proba)) if len(np.unique(y)) == 2 else float("nan")
    f1 = float(f1_score(y, (proba >= 0.5).astype(int), zero_division=0))
    return Evaluation(
        auc=auc, f1=f1, p99_latency_s=p99_single_row_latency(model, x, calls=calls), rows=len(y)
    )
