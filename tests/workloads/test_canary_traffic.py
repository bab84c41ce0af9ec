"""The port of Argo Rollouts' basic-canary arithmetic reproduces the controller's own test expectations, and
shows the shares the old 5 -> 25 -> 50 steps really gave.

Expected values are the tables of `utils/replicaset/canary_test.go` at argoproj/argo-rollouts v1.8.3
(TestApproximateWeightedNewStableReplicaCounts, and the cases of TestCalculateReplicaCountsForCanary without
traffic routing, setCanaryScale, older ReplicaSets, promoteFull or abort)."""

from __future__ import annotations

import pytest

from mlops_infra.components.k8s.canary_traffic import (
    Fenceposts,
    IntOrPercent,
    ReplicaSet,
    approximate_counts,
    basic_canary_counts,
    default_weights,
    realisable_weights,
    rollout_shares,
)

# (replicas, weight, maxSurge, expected canary, expected stable); maxWeight 100
APPROXIMATE = [
    (0, 0, 0, 0, 0), (0, 50, 0, 0, 0), (0, 100, 0, 0, 0), (0, 0, 1, 0, 0), (0, 50, 1, 0, 0), (0, 100, 1, 0, 0),
    (1, 0, 0, 0, 1), (1, 1, 0, 0, 1), (1, 49, 0, 0, 1), (1, 50, 0, 1, 0), (1, 99, 0, 1, 0), (1, 100, 0, 1, 0),
    (1, 0, 1, 0, 1), (1, 1, 1, 1, 1), (1, 49, 1, 1, 1), (1, 50, 1, 1, 1), (1, 99, 1, 1, 1), (1, 100, 1, 1, 0),
    (2, 0, 0, 0, 2), (2, 1, 0, 1, 1), (2, 50, 0, 1, 1), (2, 99, 0, 1, 1), (2, 100, 0, 2, 0), (2, 0, 1, 0, 2),
    (2, 1, 1, 1, 2), (2, 50, 1, 1, 1), (2, 99, 1, 2, 1), (2, 100, 1, 2, 0), (3, 10, 0, 1, 2), (3, 25, 0, 1, 2),
    (3, 33, 0, 1, 2), (3, 34, 0, 1, 2), (3, 49, 0, 1, 2), (3, 50, 0, 2, 1), (3, 10, 1, 1, 3), (3, 25, 1, 1, 3),
    (3, 33, 1, 1, 2), (3, 34, 1, 1, 2), (3, 49, 1, 2, 2), (3, 50, 1, 2, 2), (10, 0, 1, 0, 10), (10, 1, 0, 1, 9),
    (10, 14, 0, 1, 9), (10, 15, 0, 2, 8), (10, 16, 0, 2, 8), (10, 99, 0, 9, 1), (10, 100, 1, 10, 0),
    (10, 1, 1, 1, 10), (10, 18, 1, 2, 9), (10, 19, 1, 2, 9), (10, 20, 1, 2, 8), (10, 23, 1, 2, 8),
    (10, 24, 1, 3, 8), (10, 25, 1, 3, 8), (10, 99, 1, 10, 1),
]  # fmt: skip

# (replicas, weight, maxSurge, maxUnavailable, canary (spec, available), stable (spec, available),
#  expected (canary, stable))
CALCULATE: list[
    tuple[int, int, IntOrPercent, IntOrPercent, tuple[int, int], tuple[int, int], tuple[int, int]]
] = [
    (10, 100, 3, 0, (6, 3), (7, 8), (6, 7)),
    (10, 20, 2, 0, (0, 0), (10, 10), (2, 10)),
    (10, 20, "20%", 0, (0, 0), (10, 10), (2, 10)),
    (10, 20, "20%", 0, (2, 2), (10, 10), (2, 8)),
    (10, 30, 2, 0, (0, 0), (10, 10), (2, 10)),
    (10, 20, 0, 2, (0, 0), (10, 10), (0, 8)),
    (10, 20, 0, "20%", (0, 0), (10, 10), (0, 8)),
    (10, 30, 0, 2, (0, 0), (10, 10), (0, 8)),
    (10, 50, 2, 1, (0, 0), (10, 10), (2, 9)),
    (10, 0, 1, 1, (1, 1), (10, 10), (0, 10)),
    (10, 100, 1, 1, (10, 10), (1, 1), (10, 0)),
    (1, 20, 1, 0, (0, 0), (1, 1), (1, 1)),
    (1, 90, 1, 0, (0, 0), (1, 1), (1, 1)),
    (1, 49, 0, 1, (0, 0), (1, 1), (0, 1)),
    (1, 51, 0, 1, (0, 0), (1, 1), (0, 0)),
    (1, 51, 0, 1, (0, 0), (0, 0), (1, 0)),
    (10, 30, 0, 3, (4, 4), (8, 5), (3, 7)),
    (10, 100, 1, 0, (10, 8), (10, 2), (9, 2)),
    (10, 5, 0, 1, (0, 0), (10, 10), (0, 9)),
    (10, 5, 0, 1, (0, 0), (9, 9), (1, 9)),
    (10, 10, "0%", "0%", (0, 0), (10, 10), (0, 9)),
    (4, 100, 1, 0, (0, 0), (4, 1), (1, 4)),
    (3, 99, 0, 2, (0, 0), (3, 3), (0, 1)),
    (3, 99, 0, 2, (0, 0), (1, 1), (2, 1)),
    (4, 100, 1, 0, (1, 1), (4, 1), (1, 3)),
    (4, 0, 1, 0, (4, 4), (0, 0), (4, 1)),
    (4, 0, 1, 0, (4, 4), (1, 0), (4, 1)),
    (4, 0, 1, 0, (4, 4), (1, 1), (3, 1)),
]


@pytest.mark.parametrize(("replicas", "weight", "surge", "canary", "stable"), APPROXIMATE)
def test_approximation_matches_the_controller(
    replicas: int, weight: int, surge: int, canary: int, stable: int
) -> None:
    assert approximate_counts(replicas, weight, surge) == (canary, stable)


@pytest.mark.parametrize(
    ("replicas", "weight", "surge", "unavailable", "new", "stable", "expected"), CALCULATE
)
def test_replica_counts_match_the_controller(
    replicas: int,
    weight: int,
    surge: IntOrPercent,
    unavailable: IntOrPercent,
    new: tuple[int, int],
    stable: tuple[int, int],
    expected: tuple[int, int],
) -> None:
    fences = Fenceposts.resolve(replicas, surge, unavailable)
    assert basic_canary_counts(replicas, weight, ReplicaSet(*new), ReplicaSet(*stable), fences) == expected


def test_default_fenceposts_are_25_percent_surge_up_unavailable_down() -> None:
    """defaults.go says "25" (no %); GetValueFromIntOrPercent reads any string as a percentage."""
    assert Fenceposts.resolve(1) == Fenceposts(surge=1, unavailable=0)
    assert Fenceposts.resolve(3) == Fenceposts(surge=1, unavailable=0)
    assert Fenceposts.resolve(4) == Fenceposts(surge=1, unavailable=1)
    assert Fenceposts.resolve(10) == Fenceposts(surge=3, unavailable=2)
    assert Fenceposts.resolve(10, 0, 0) == Fenceposts(surge=0, unavailable=1)
    with pytest.raises(ValueError, match="neither a count nor a percentage"):
        Fenceposts.resolve(3, "a lot")


@pytest.mark.parametrize(
    ("replicas", "shares"),
    [(1, [50.0, 50.0, 50.0, 100.0]), (2, [33.3, 33.3, 50.0, 100.0]), (3, [25.0, 25.0, 50.0, 100.0])],
)
def test_the_old_steps_were_not_the_shares_they_declared(replicas: int, shares: list[float]) -> None:
    """Finding 6: setWeight 5 with the chart's default fenceposts is 1 canary pod next to the stable ones."""
    steps = rollout_shares(replicas, [5, 25, 50, 100])
    assert [round(s.share, 1) for s in steps] == shares


def test_the_model_settles_on_the_controller_target_and_keeps_capacity() -> None:
    """Walking every weight from a settled stable ReplicaSet ends at approximate_counts' pair, and with
    maxUnavailable 0 no moment has fewer ready pods than spec.replicas."""
    for replicas in range(1, 13):
        for weight in range(0, 101):
            (step,) = rollout_shares(replicas, [weight], 1, 0)
            assert (step.canary, step.stable) == approximate_counts(replicas, weight, 1)
            assert step.min_ready >= replicas
            assert step.lowest <= step.share <= step.highest


@pytest.mark.parametrize(
    ("replicas", "weights"),
    [(1, (50,)), (2, (33, 50)), (3, (25, 50)), (4, (20, 50)), (10, (9, 27, 50)), (20, (5, 25, 50))],
)
def test_derived_weights_are_realisable_and_reach_the_classic_steps_at_20_replicas(
    replicas: int, weights: tuple[int, ...]
) -> None:
    assert default_weights(replicas) == weights
    assert set(weights) <= set(realisable_weights(replicas))
    for step in rollout_shares(replicas, [*weights, 100], 1, 0):
        assert abs(step.share - step.weight) <= 0.5
        assert step.highest <= step.weight + 0.5  # never more canary traffic than declared, even mid-step
