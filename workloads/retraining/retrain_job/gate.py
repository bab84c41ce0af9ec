"""The promotion gate: business thresholds plus "must beat the champion by a margin"."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .training import Evaluation


@dataclass(frozen=True)
class GateConfig:
    min_auc: float = 0.75
    max_p99_latency_s: float = 0.05  # the serving SLO (model_latency_slo_seconds default)
    min_improvement: float = 0.002  # AUC points over the champion on the same holdout


@dataclass
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(candidate: Evaluation, champion: Evaluation | None, cfg: GateConfig) -> GateDecision:
    """Every check must pass; reasons say which did not (and by how much)."""
    d = GateDecision(passed=True)

    def check(name: str, ok: bool, why: str) -> None:
        d.checks[name] = ok
        if not ok:
            d.passed = False
            d.reasons.append(why)

    check(
        "min_auc",
        not math.isnan(candidate.auc) and candidate.auc >= cfg.min_auc,
        f"candidate AUC {candidate.auc:.4f} < minimum {cfg.min_auc:.4f}",
    )
    check(
        "max_latency",
        candidate.p99_latency_s <= cfg.max_p99_latency_s,
        f"candidate p99 latency {candidate.p99_latency_s * 1e3:.2f} ms"
        f" > {cfg.max_p99_latency_s * 1e3:.2f} ms",
    )
    if champion is not None:
        gain = candidate.auc - champion.auc
        check(
            "min_improvement",
            gain >= cfg.min_improvement,
            f"candidate AUC {candidate.auc:.4f} vs champion {champion.auc:.4f}: "
            f"gain {gain:+.4f} < required {cfg.min_improvement:+.4f}",
        )
    return d
