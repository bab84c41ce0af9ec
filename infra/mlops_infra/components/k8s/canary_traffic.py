"""The traffic share an Argo Rollouts canary without a traffic router really gets.

Without `trafficRouting` the controller turns each `setWeight` into replica counts, and a Service that selects
every pod of the Rollout spreads requests evenly over its ready endpoints, so the canary's share is
canary pods / all ready pods. A weight of 5 % with 3 replicas is therefore not 5 %.

The arithmetic below is a port of the controller at v1.8.3, the appVersion of chart argo-rollouts 2.40.1
(`k8s/argo_rollouts.py`), from github.com/argoproj/argo-rollouts:

- `utils/replicaset/canary.go`: CalculateReplicaCountsForBasicCanary, approximateWeightedCanaryStableReplicaCounts,
  floorCeilingTied, weightDelta, GetReplicasForScaleDown, calculateScaleDownReplicaCount,
  adjustReplicaWithinLimits;
- `utils/replicaset/replicaset.go`: resolveFenceposts, MaxSurge, MaxUnavailable;
- `utils/defaults/defaults.go`: maxSurge and maxUnavailable default to the string "25", which
  apimachinery's (deprecated) GetValueFromIntOrPercent reads as 25 %.

Facts that shape the platform's choice (`pkg/apis/rollouts/validation/validation.go`, same tag):
`setCanaryScale` is rejected without `trafficRouting` ("SetCanaryScale requires TrafficRouting to be set"),
so without a router the only honest canary is one whose weights are shares the replica counts produce.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MAX_WEIGHT = 100  # weightutil.MaxTrafficWeight without trafficRouting
DEFAULT_FENCEPOST = "25"  # defaults.DefaultMaxSurge / DefaultMaxUnavailable

# The model server's Rollout: one extra pod at a time and never fewer ready pods than the replica count (the
# HPA's minimum), so a canary step adds capacity instead of taking it from the stable pods.
MAX_SURGE = 1
MAX_UNAVAILABLE = 0
# A weight is "realised" when the share the controller produces is within half a percentage point of it
# (setWeight is an integer; 1 of 3 pods is 33.3 %).
TOLERANCE = 0.5

IntOrPercent = int | float | str


def _scaled(value: IntOrPercent, total: int, round_up: bool) -> int:
    """intstr.GetValueFromIntOrPercent: an int is a count; any string, with or without '%', a percentage."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a JSON number, as plans carry every number
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"maxSurge/maxUnavailable: {value!r} is neither a count nor a percentage")
    if isinstance(value, int):
        return value
    try:
        percent = int(value.replace("%", ""))
    except ValueError:
        raise ValueError(f"maxSurge/maxUnavailable: {value!r} is neither a count nor a percentage") from None
    scaled = percent * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


@dataclass(frozen=True)
class Fenceposts:
    """maxSurge and maxUnavailable resolved against spec.replicas (resolveFenceposts, MaxSurge, MaxUnavailable)."""

    surge: int
    unavailable: int

    @classmethod
    def resolve(
        cls,
        replicas: int,
        max_surge: IntOrPercent = DEFAULT_FENCEPOST,
        max_unavailable: IntOrPercent = DEFAULT_FENCEPOST,
    ) -> Fenceposts:
        surge = _scaled(max_surge, replicas, round_up=True)
        unavailable = _scaled(max_unavailable, replicas, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1  # "on the theory that surge might not work due to quota"
        if replicas == 0:
            unavailable = 0
        return cls(surge, min(unavailable, replicas))


def _tied(weight: int, max_weight: int, total: int) -> bool:
    """floorCeilingTied: the float expression is the controller's own, so .5 ties land the same way."""
    return math.modf(float(total) * (float(weight) / float(max_weight)))[0] == 0.5


def _delta(weight: int, max_weight: int, canary: int, total: int) -> float:
    return abs(float(canary * max_weight) / float(total) - float(weight))


def approximate_counts(
    replicas: int, weight: int, surge: int, max_weight: int = MAX_WEIGHT
) -> tuple[int, int]:
    """approximateWeightedCanaryStableReplicaCounts: the (canary, stable) pair closest to the weight, using
    spec.replicas or, when surge is allowed, spec.replicas + 1 pods."""
    if replicas == 0:
        return 0, 0
    ceil_count = math.ceil(float(replicas * weight) / float(max_weight))
    floor_count = math.floor(float(replicas * weight) / float(max_weight))
    zero_allowed = weight in (max_weight, 0) or (replicas == 1 and surge == 0)
    options: list[tuple[int, int]] = []
    if ceil_count < replicas or zero_allowed:
        options.append((ceil_count, replicas))
    if not _tied(weight, max_weight, replicas) and (floor_count != 0 or zero_allowed):
        options.append((floor_count, replicas))
    if surge > 0:
        options.append((ceil_count, replicas + 1))
        if not _tied(weight, max_weight, replicas + 1) and (floor_count != 0 or zero_allowed):
            options.append((floor_count, replicas + 1))
    if not options:
        return 0, replicas  # "should not get here"
    best = options[0]
    for option in options[1:]:  # strictly smaller delta wins: the first of equals stays
        if _delta(weight, max_weight, *option) < _delta(weight, max_weight, *best):
            best = option
    return best[0], best[1] - best[0]


@dataclass(frozen=True)
class ReplicaSet:
    """What the controller reads of a ReplicaSet: spec.replicas and status.availableReplicas."""

    spec: int
    available: int


def _for_scale_down(rs: ReplicaSet | None, ignore_availability: bool) -> int:
    """GetReplicasForScaleDown."""
    if rs is None:
        return 0
    if rs.spec < rs.available or ignore_availability:
        return rs.spec
    return rs.available


def _scale_down_count(drain: ReplicaSet | None, desired: int, scale_down: int, count: int) -> int:
    """calculateScaleDownReplicaCount."""
    if drain is not None and drain.spec > desired:
        return max(desired, drain.spec - scale_down)
    return count


def _within_limits(
    drain: ReplicaSet | None,
    adjust: ReplicaSet | None,
    drain_count: int,
    adjust_count: int,
    max_allowed: int,
    min_available: int,
) -> tuple[int, int]:
    """adjustReplicaWithinLimits: keep the pair under maxSurge without breaking maxUnavailable."""
    over = max(0, adjust_count + drain_count - max_allowed)
    available = min(drain.available, drain_count) if drain is not None else 0
    if adjust is not None:
        adjust_count -= over
        available += min(adjust.available, adjust_count)
        extra = max(0, adjust.available - adjust_count)
        needed = max(0, min_available - available)
        adjust_count += min(extra, needed)
        over = max(0, adjust_count + drain_count - max_allowed)
        drain_count -= over
    return drain_count, adjust_count


def basic_canary_counts(
    replicas: int,
    weight: int,
    new: ReplicaSet | None,
    stable: ReplicaSet | None,
    fences: Fenceposts,
    older: int = 0,
) -> tuple[int, int]:
    """CalculateReplicaCountsForBasicCanary: the (canary, stable) spec.replicas the controller sets next.

    `stable` is None when no stable ReplicaSet other than the new one exists (then the controller drives the new
    one to 100 %); `older` is the spec.replicas sum of any other ReplicaSets still scaled up.
    """
    desired_new, desired_stable = approximate_counts(replicas, weight, fences.surge)
    new_count = new.spec if new is not None else 0
    stable_count = 0
    if stable is not None:
        stable_count = stable.spec
    else:
        desired_new, desired_stable = replicas, 0
    max_allowed = replicas + fences.surge
    total = older + (new.spec if new is not None else 0) + (stable.spec if stable is not None else 0)
    scale_up = max_allowed - total
    if stable is not None and stable.spec < desired_stable and scale_up > 0:
        if stable.spec + scale_up < desired_stable:
            stable_count, scale_up = stable.spec + scale_up, 0
        else:
            stable_count = desired_stable
            scale_up -= desired_stable - stable.spec
    if new is not None and new.spec < desired_new and scale_up > 0:
        new_count = min(new.spec + scale_up, desired_new)
    if older > 0:
        return new_count, stable_count
    min_available = replicas - fences.unavailable
    increasing = new is None or desired_new >= new.spec
    to_scale_down = _for_scale_down(new, not increasing) + _for_scale_down(stable, increasing)
    if to_scale_down <= min_available:
        return new_count, stable_count
    scale_down = to_scale_down - min_available
    if not increasing:
        new_count = _scale_down_count(new, desired_new, scale_down, new_count)
        new_count, stable_count = _within_limits(
            new, stable, new_count, stable_count, max_allowed, min_available
        )
    elif stable is not None:
        stable_count = _scale_down_count(stable, desired_stable, scale_down, stable_count)
        stable_count, new_count = _within_limits(
            stable, new, stable_count, new_count, max_allowed, min_available
        )
    return new_count, stable_count


# ---------------------------------------------------------------------------------------------------------
# From replica counts to traffic: a Service spreads requests evenly over its ready endpoints.


def share(canary_ready: int, stable_ready: int) -> float:
    """Percent of requests the canary pods get from a Service that selects both ReplicaSets."""
    total = canary_ready + stable_ready
    return 100.0 * canary_ready / total if total else 0.0


@dataclass(frozen=True)
class StepShare:
    """One setWeight step once the controller has settled, and the range the share passed through on the way."""

    weight: int
    canary: int
    stable: int
    share: float
    lowest: float
    highest: float
    min_ready: int  # fewest ready pods (canary + stable) at any moment of the transition


def settle(
    replicas: int, weight: int, new: ReplicaSet, stable: ReplicaSet, fences: Fenceposts
) -> tuple[ReplicaSet, ReplicaSet, StepShare]:
    """Reconcile until the counts stop changing. Each round the controller sets spec.replicas; pods it removes
    leave the endpoints at once, pods it adds become ready before the next round (the fastest, not the worst,
    startup: the share range is what ready endpoints pass through, whatever the startup time)."""
    seen = [(new.available, stable.available)]
    for _ in range(4 * (replicas + fences.surge) + 8):
        new_spec, stable_spec = basic_canary_counts(replicas, weight, new, stable, fences)
        # the scale-down takes effect first: removed pods leave the endpoints before new ones are ready
        seen.append((min(new.available, new_spec), min(stable.available, stable_spec)))
        settled = new_spec == new.spec and stable_spec == stable.spec
        new, stable = ReplicaSet(new_spec, new_spec), ReplicaSet(stable_spec, stable_spec)
        seen.append((new.available, stable.available))
        if settled:
            shares = [share(c, s) for c, s in seen if c + s]
            step = StepShare(
                weight=weight,
                canary=new.spec,
                stable=stable.spec,
                share=share(new.spec, stable.spec),
                lowest=min(shares),
                highest=max(shares),
                min_ready=min(c + s for c, s in seen),
            )
            return new, stable, step
    raise RuntimeError(f"the controller model did not settle: {replicas} replicas, weight {weight}")


def rollout_shares(
    replicas: int,
    weights: Sequence[int],
    max_surge: IntOrPercent = DEFAULT_FENCEPOST,
    max_unavailable: IntOrPercent = DEFAULT_FENCEPOST,
) -> list[StepShare]:
    """Walk a settled Rollout (all pods stable) through its setWeight steps, in order."""
    fences = Fenceposts.resolve(replicas, max_surge, max_unavailable)
    new, stable = ReplicaSet(0, 0), ReplicaSet(replicas, replicas)
    steps = []
    for weight in weights:
        new, stable, step = settle(replicas, weight, new, stable, fences)
        steps.append(step)
    return steps


def effective_share(
    replicas: int,
    weight: int,
    max_surge: IntOrPercent = MAX_SURGE,
    max_unavailable: IntOrPercent = MAX_UNAVAILABLE,
) -> float:
    """The settled share of one setWeight step (the model server's fenceposts unless told otherwise)."""
    return rollout_shares(replicas, [weight], max_surge, max_unavailable)[0].share


def realised(
    replicas: int,
    weight: int,
    max_surge: IntOrPercent = MAX_SURGE,
    max_unavailable: IntOrPercent = MAX_UNAVAILABLE,
) -> bool:
    return abs(effective_share(replicas, weight, max_surge, max_unavailable) - weight) <= TOLERANCE


def realisable_weights(
    replicas: int, max_surge: IntOrPercent = MAX_SURGE, max_unavailable: IntOrPercent = MAX_UNAVAILABLE
) -> list[int]:
    """Every canary weight (1-99) that a Rollout with these fenceposts turns into that very share of traffic
    (the model server's fenceposts unless told otherwise)."""
    return [w for w in range(1, MAX_WEIGHT) if realised(replicas, w, max_surge, max_unavailable)]


# The platform's intent: a small canary first, then about a quarter, then about half of the traffic. A step is
# kept only when it raises the share by half again (with 5 replicas 1 of 6 pods, 17 %, and 1 of 5, 20 %, are
# the same canary).
_TARGETS = (0, 25, 50)
_GROWTH = 1.5


def default_weights(replicas: int) -> tuple[int, ...]:
    """Canary weights derived from the replica count: the smallest realisable share (one canary pod up to 100
    replicas), then the realisable shares nearest 25 % and 50 %. 19 or 20 replicas give exactly 5 -> 25 -> 50."""
    choices = realisable_weights(replicas)
    weights: list[int] = []
    for target in _TARGETS:
        nearest = min(choices, key=lambda w: (abs(w - target), w))
        if not weights or nearest >= _GROWTH * weights[-1]:
            weights.append(nearest)
    return tuple(weights)
