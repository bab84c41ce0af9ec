"""Progressive-delivery rules: a canary's declared weight is the share of traffic it really gets.

Without `trafficRouting`, Argo Rollouts realises a `setWeight` with replica counts, and the Services spread
requests over ready pods: `setWeight: 5` on 3 replicas is one canary pod next to three stable ones, 25 % of the
traffic. The rule runs the controller's arithmetic (ported in `mlops_infra.components.k8s.canary_traffic`, Argo Rollouts
v1.8.3) at the replica count the Rollout runs with at least: its HorizontalPodAutoscaler's `minReplicas`, else
`spec.replicas` (default 1).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mlops_infra.components.k8s import canary_traffic
from mlops_policies.model import Resource, Rule, as_list, display, k8s_kind, namespace_of

StackFindings = Iterator[tuple[str | None, str]]
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


def _minimum_replicas(rollout: Resource, resources: Sequence[Resource]) -> int:
    name = rollout.get("metadata", "name", default=rollout.name)
    for r in resources:
        target = r.get("spec", "scaleTargetRef", default={})
        if (
            r.type == HPA
            and namespace_of(r) == namespace_of(rollout)
            and target.get("kind") == "Rollout"
            and target.get("name") == name
        ):
            return int(r.get("spec", "minReplicas", default=1))
    return int(rollout.get("spec", "replicas", default=1))


def canary_weights_are_shares(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    for r in resources:
        canary = r.get("spec", "strategy", "canary")
        if k8s_kind(r) != "Rollout" or not isinstance(canary, Mapping) or canary.get("trafficRouting"):
            continue
        replicas = _minimum_replicas(r, resources)
        surge = canary.get("maxSurge", canary_traffic.DEFAULT_FENCEPOST)
        unavailable = canary.get("maxUnavailable", canary_traffic.DEFAULT_FENCEPOST)
        for i, step in enumerate(as_list(canary.get("steps"))):
            weight = step.get("setWeight") if isinstance(step, Mapping) else None
            if not isinstance(weight, int | float) or not 0 < weight < canary_traffic.MAX_WEIGHT:
                continue
            actual = canary_traffic.effective_share(replicas, int(weight), surge, unavailable)
            if abs(actual - weight) > canary_traffic.TOLERANCE:
                possible = canary_traffic.realisable_weights(replicas, surge, unavailable)
                yield (
                    r.urn,
                    (
                        f"{display(r)}: steps[{i}] setWeight {int(weight)} gives the canary {actual:.1f} % of "
                        f"the traffic at {replicas} replica(s) (no trafficRouting: its share of the pods); "
                        f"weights that are real at {replicas} replica(s): {', '.join(map(str, possible))}, "
                        "or add replicas"
                    ),
                )


RULES: list[Rule] = [
    Rule(
        "canary-weights-are-shares",
        "reliability",
        "A Rollout without trafficRouting declares only canary weights its minimum replica count realises.",
        stack_check=canary_weights_are_shares,
    ),
]
