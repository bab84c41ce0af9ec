"""Prometheus metrics of drift and gate results (names: docs/metrics.md) and the JSON report.

Batch jobs cannot be scraped, so metrics are pushed to a Pushgateway (job ``retraining``,
grouping key ``model``) when ``PUSHGATEWAY_URL`` is set.  The JSON report is always written.
``retraining_runs_total`` is kept monotonic across runs by reading the value the Pushgateway
already holds before adding this run's increment.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, pushadd_to_gateway
from prometheus_client.metrics_core import Metric

from .drift import DriftResult

JOB = "retraining"


class RunMetrics:
    def __init__(self, model: str) -> None:
        self.model = model
        self.registry = CollectorRegistry()
        r = self.registry
        self.feature_psi = Gauge(
            "model_feature_psi", "PSI per feature vs frozen reference bins", ["model", "feature"], registry=r
        )
        self.drift_psi = Gauge("model_drift_psi", "Overall PSI (mean over features)", ["model"], registry=r)
        self.drift_threshold = Gauge(
            "model_drift_threshold", "PSI threshold of the drift monitor", ["model"], registry=r
        )
        self.quality_auc = Gauge("model_quality_auc", "Champion AUC", ["model", "dataset"], registry=r)
        self.auc_threshold = Gauge(
            "model_quality_threshold_auc", "Business minimum AUC", ["model"], registry=r
        )
        self.gate_passed = Gauge(
            "retraining_gate_passed", "1 if the last candidate passed the gate", ["model"], registry=r
        )
        self.runs = Counter("retraining_runs", "Pipeline runs by result", ["model", "result"], registry=r)
        self.last_success = Gauge(
            "retraining_last_success_timestamp_seconds",
            "Unix time of the last successful pipeline run",
            ["model"],
            registry=r,
        )
        self.new_rows = Gauge(
            "retraining_new_labelled_rows", "Labelled rows since the last training", ["model"], registry=r
        )
        self._runs_used = False

    def record_drift(self, result: DriftResult) -> None:
        for feature, fd in result.features.items():
            self.feature_psi.labels(self.model, feature).set(fd.psi)
        self.drift_psi.labels(self.model).set(result.overall_psi)
        self.drift_threshold.labels(self.model).set(result.threshold)

    def record_run(self, result: str, gate_passed: bool | None = None) -> None:
        """result: promoted | rejected | failed."""
        self._runs_used = True
        self.runs.labels(self.model, result).inc()
        if gate_passed is not None:
            self.gate_passed.labels(self.model).set(1 if gate_passed else 0)
        if result in {"promoted", "rejected"}:
            self.last_success.labels(self.model).set(time.time())

    def push(self, url: str | None = None) -> str | None:
        """Push when a Pushgateway is configured; returns an error message instead of raising."""
        url = url if url is not None else os.environ.get("PUSHGATEWAY_URL", "")
        if not url:
            return None
        try:
            if self._runs_used:
                for (result,), value in _previous_runs(url, self.model).items():
                    self.runs.labels(self.model, result).inc(value)
            pushadd_to_gateway(
                url,
                job=JOB,
                grouping_key={"model": self.model},
                registry=_NonEmpty(self.registry),
                timeout=10,
            )
        except Exception as exc:  # a metrics outage must not fail training
            msg = f"pushgateway {url}: {exc}"
            print(f"warning: {msg}", file=sys.stderr)
            return msg
        return None


class _NonEmpty:
    """Only families with samples: an empty family in a POST would wipe what other commands pushed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        return (m for m in self.registry.collect() if m.samples)


def _previous_runs(url: str, model: str) -> dict[tuple[str], float]:
    """retraining_runs_total values the Pushgateway holds for this model (best effort)."""
    base = url if "://" in url else f"http://{url}"
    try:
        data = httpx.get(f"{base.rstrip('/')}/api/v1/metrics", timeout=5).json().get("data", [])
    except (httpx.HTTPError, ValueError):
        return {}
    out: dict[tuple[str], float] = {}
    for group in data:
        labels = group.get("labels", {})
        if labels.get("job") != JOB or labels.get("model") != model:
            continue
        fam = group.get("retraining_runs_total") or {}
        for m in fam.get("metrics", []):
            result = m.get("labels", {}).get("result")
            try:
                out[(result,)] = float(m.get("value"))
            except (TypeError, ValueError):
                continue
    return out


def write_report(path: str | Path, payload: dict[str, Any]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(payload, indent=2, default=_json_default, allow_nan=True))
    return p


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)
