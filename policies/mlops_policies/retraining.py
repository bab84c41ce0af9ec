"""Rules for retraining settings that validate but defeat their purpose.

- `retraining-schedule-sane`: training CronJobs run at most hourly and drift/volume checks at most every five
  minutes (a training every minute is a budget fire and a queue of never-finishing Jobs).
- `drift-threshold-reachable`: the PSI threshold lies where drift can reach it. PSI above 1 means the two
  distributions barely overlap (0.1 is the usual "moderate" and 0.25 the "major" mark); a threshold of 10
  is only crossed when every row moves to a bin the reference never used, so it never fires on real drift.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from mlops_infra.platform.cron import CronError, min_interval_minutes
from mlops_policies.model import Resource, Rule, as_list, containers, dig, display, k8s_kind, pod_spec

COMPONENT = "app.kubernetes.io/component"
DEFAULT_MIN_MINUTES = {"training": 60, "check": 5}
DEFAULT_MAX_THRESHOLD = 1.0


def _role(r: Resource) -> str | None:
    component = str(dig(r.props, "metadata", "labels", COMPONENT, default=""))
    if component == "training":
        return "training"
    if component.endswith("-check"):
        return "check"
    return None


def retraining_schedule_sane(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    role = _role(r) if k8s_kind(r) == "CronJob" else None
    if role is None:
        return
    floor = int(dict(DEFAULT_MIN_MINUTES, **(config.get("minIntervalMinutes") or {}))[role])
    schedule = str(r.get("spec", "schedule", default=""))
    try:
        every = min_interval_minutes(schedule)
    except CronError as exc:
        yield f"{display(r)}: {exc}"
        return
    if every < floor:
        yield f"{display(r)}: schedule {schedule!r} runs every {every} min; a {role} job may run at most every {floor} min"


def _thresholds(spec: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for where, container in containers(spec):
        args = [str(a) for a in as_list(container.get("args"))]
        for flag, value in itertools.pairwise(args):
            if flag == "--threshold":
                yield f"{where} --threshold", value
        for env in as_list(container.get("env")):
            if isinstance(env, Mapping) and env.get("name") == "DRIFT_THRESHOLD" and "value" in env:
                yield f"{where} env DRIFT_THRESHOLD", str(env["value"])


def drift_threshold_reachable(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    spec = pod_spec(r)
    if spec is None:
        return
    ceiling = float(config.get("maxThreshold", DEFAULT_MAX_THRESHOLD))
    for where, text in _thresholds(spec):
        try:
            value = float(text)
        except ValueError:
            yield f"{display(r)} {where}: {text!r} is not a number"
            continue
        if not 0 < value <= ceiling:
            yield (
                f"{display(r)} {where}: PSI threshold {text} is never reached by real drift; use a value in "
                f"(0, {ceiling:g}] (0.1 moderate, 0.25 major)"
            )


RULES: list[Rule] = [
    Rule(
        "retraining-schedule-sane",
        "cost",
        "Training runs at most hourly, drift and volume checks at most every five minutes.",
        resource_check=retraining_schedule_sane,
        config_schema={"minIntervalMinutes": {"type": "object"}},
    ),
    Rule(
        "drift-threshold-reachable",
        "reliability",
        "The PSI threshold that triggers retraining is one real drift can reach.",
        resource_check=drift_threshold_reachable,
        config_schema={"maxThreshold": {"type": "number", "exclusiveMinimum": 0}},
    ),
]
