"""PSI drift: exact agreement with a plain loop, streaming == one shot, detection power, no false alarm."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from retrain_job.drift import OTHER, ReferenceBins, compute_drift, drift_from_chunks

EPS = 1e-4


def loop_psi_numeric(ref: list[float], cur: list[float], edges: list[float], eps: float = EPS) -> float:
    """Textbook PSI: right-closed bins between open-ended edges, zero proportions -> eps."""

    def counts(values: list[float]) -> list[int]:
        c = [0] * (len(edges) + 1)
        for v in values:
            if v != v:  # NaN is not binned
                continue
            k = 0
            while k < len(edges) and v > edges[k]:
                k += 1
            c[k] += 1
        return c

    return _loop_psi(counts(ref), counts(cur), eps)


def loop_psi_categorical(ref: list, cur: list, categories: list[str], eps: float = EPS) -> float:
    def counts(values: list) -> list[int]:
        c = [0] * (len(categories) + 1)
        for v in values:
            if v is None:
                continue
            c[categories.index(v) if v in categories else len(categories)] += 1
        return c

    return _loop_psi(counts(ref), counts(cur), eps)


def _loop_psi(rc: list[int], cc: list[int], eps: float) -> float:
    total = 0.0
    for r, c in zip(rc, cc, strict=True):
        p = r / sum(rc) or eps
        q = c / sum(cc) or eps
        total += (q - p) * math.log(q / p)
    return total


def test_numeric_and_categorical_match_plain_loop() -> None:
    rng = np.random.default_rng(7)
    n = 5000
    ref = np.column_stack(
        [
            rng.standard_normal(n),
            rng.exponential(2.0, n),
            rng.integers(0, 4, n).astype(float),  # heavy ties -> duplicate edges, empty bins
        ]
    )
    cur = np.column_stack(
        [
            rng.standard_normal(3000) * 1.3 + 0.2,
            rng.exponential(2.5, 3000),
            rng.integers(0, 6, 3000).astype(float),  # values beyond the reference range
        ]
    )
    cur[::37, 0] = np.nan
    ref_cat = list(rng.choice(["web", "app", "pos"], n, p=[0.6, 0.3, 0.1]))
    cur_cat = list(rng.choice(["web", "app", "pos", "kiosk"], 3000, p=[0.4, 0.3, 0.2, 0.1]))
    cur_cat[::50] = [None] * len(cur_cat[::50])
    names = ["a", "b", "c"]
    bins = ReferenceBins.fit(ref, names, {"channel": ref_cat}, bins=10, chunk_rows=1024)
    res = compute_drift(bins, cur, {"channel": cur_cat}, chunk_rows=700)
    for j, name in enumerate(names):
        edges = np.quantile(ref[:, j], np.linspace(0, 1, 11)[1:-1])  # numpy's own quantiles
        np.testing.assert_allclose(bins.numeric[name].edges, edges, rtol=0, atol=1e-12)
        expected = loop_psi_numeric(ref[:, j].tolist(), cur[:, j].tolist(), edges.tolist())
        assert abs(res.features[name].psi - expected) < 1e-9, name
    cats = bins.categorical["channel"].categories
    assert cats == ["web", "app", "pos"]  # most frequent first
    expected = loop_psi_categorical(ref_cat, cur_cat, cats)
    assert abs(res.features["channel"].psi - expected) < 1e-9
    assert bins.categorical["channel"].ref_counts[-1] == 0  # nothing in __other__ for the reference
    assert res.overall_psi == pytest.approx(np.mean([f.psi for f in res.features.values()]), abs=1e-15)
    assert OTHER == "__other__"


def test_streaming_chunks_equal_one_shot() -> None:
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((20_000, 5))
    cur = rng.standard_normal((17_001, 5)) + np.array([0, 0.1, 0.3, 0, -0.2])
    cat_ref = rng.choice(["x", "y", "z"], 20_000)
    cat_cur = rng.choice(["x", "y", "w"], 17_001)
    names = [f"f{i}" for i in range(5)]
    bins = ReferenceBins.fit(ref, names, {"c": cat_ref})
    one = compute_drift(bins, cur, {"c": cat_cur})
    chunks = [(cur[i : i + 1234], {"c": cat_cur[i : i + 1234]}) for i in range(0, len(cur), 1234)]
    streamed = drift_from_chunks(bins, chunks)
    assert streamed.n_current == one.n_current == 17_001
    for name in [*names, "c"]:
        assert streamed.features[name].psi == pytest.approx(one.features[name].psi, abs=1e-12)
        assert streamed.features[name].n_current == one.features[name].n_current


def test_json_roundtrip_keeps_bins_frozen(tmp_path) -> None:
    rng = np.random.default_rng(11)
    ref = rng.standard_normal((4000, 3))
    bins = ReferenceBins.fit(ref, ["a", "b", "c"], {"ch": rng.choice(["p", "q"], 4000)})
    path = tmp_path / "bins.json"
    bins.save(path)
    data = json.loads(path.read_text())
    assert data["features"]["a"]["type"] == "numeric" and len(data["features"]["a"]["edges"]) == 9
    loaded = ReferenceBins.load(path)
    cur = rng.standard_normal((3000, 3)) + 0.3
    cat = {"ch": rng.choice(["p", "q", "r"], 3000)}
    a, b = compute_drift(bins, cur, cat), compute_drift(loaded, cur, cat)
    assert a.to_dict() == b.to_dict()


def test_malformed_reference_is_rejected() -> None:
    with pytest.raises(ValueError, match="format_version"):
        ReferenceBins.from_dict({"format_version": 99, "epsilon": 1e-4, "features": {}})
    bad = {
        "format_version": 1,
        "epsilon": 1e-4,
        "features": {"a": {"type": "numeric", "edges": [2, 1], "ref_counts": [1, 1, 1]}},
    }
    with pytest.raises(ValueError, match="ascending"):
        ReferenceBins.from_dict(bad)


def test_small_mean_shift_detected_at_100k_rows() -> None:
    """0.1 sigma shift: PSI ~0.01 per feature, far below the 0.25 action threshold but detected.

    Detection = chi-square test of PSI (PSI * n*m/(n+m) ~ chi2(bins-1) under no drift), Bonferroni
    over features, plus the 0.005 minimum effect.  Under no drift PSI ~ (bins-1)(1/n+1/m) = 1.8e-4.
    """
    rng = np.random.default_rng(2024)
    n, f = 100_000, 20
    names = [f"f{i}" for i in range(f)]
    ref = rng.standard_normal((n, f))
    cur = rng.standard_normal((n, f))
    cur[:, :5] += 0.1
    res = compute_drift(ReferenceBins.fit(ref, names), cur)
    assert res.drifted_features == names[:5]
    for name in names[:5]:
        assert 0.007 < res.features[name].psi < 0.014
        assert res.features[name].psi_pvalue < 1e-20
        assert res.features[name].ks_pvalue < 1e-10
    for name in names[5:]:
        assert res.features[name].psi < 0.001
    assert not res.above_threshold  # small shifts are reported, not acted on


def test_identical_distributions_not_flagged() -> None:
    rng = np.random.default_rng(99)
    names = [f"f{i}" for i in range(20)]
    ref = rng.standard_normal((100_000, 20))
    cur = rng.standard_normal((100_000, 20))
    res = compute_drift(ReferenceBins.fit(ref, names), cur)
    assert res.drifted_features == []
    assert res.overall_psi < 0.001
    assert min(f.psi_pvalue for f in res.features.values()) > 0.01 / 20
    # the same window as reference: exactly zero
    same = compute_drift(ReferenceBins.fit(ref[:5000, :3], names[:3]), ref[:5000, :3])
    assert all(f.psi == 0.0 and f.js_distance == 0.0 and f.ks_stat == 0.0 for f in same.features.values())


def test_small_windows_do_not_false_alarm_but_large_shifts_trigger() -> None:
    rng = np.random.default_rng(5)
    names = [f"f{i}" for i in range(4)]
    bins = ReferenceBins.fit(rng.standard_normal((50_000, 4)), names)
    small = compute_drift(bins, rng.standard_normal((300, 4)))  # noise PSI ~ 0.03: not drift
    assert small.drifted_features == []
    big = compute_drift(bins, rng.standard_normal((5000, 4)) * 1.5 + 1.0, threshold=0.25)
    assert big.above_threshold and big.drifted_features == names
    assert all(0 < f.js_distance <= 1 for f in big.features.values())
