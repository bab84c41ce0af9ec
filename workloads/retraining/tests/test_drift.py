"""PSI drift: exact agreement with a plain loop, streaming == one shot, detection power, no false alarm."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
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


def loop_edges(values: list[float], bins: int = 10) -> list[float]:
    """The binning convention spelled out: per-value bins for <= 20 distinct finite values, else
    reference quantiles plus an edge just below the minimum when the lowest quantile is the minimum."""
    finite = [v for v in values if math.isfinite(v)]
    distinct = sorted(set(finite))
    if len(distinct) <= 20:
        return [e for v in distinct for e in (math.nextafter(v, -math.inf), v)]
    edges = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]).tolist()
    if edges[0] == min(finite):
        edges.insert(0, math.nextafter(min(finite), -math.inf))
    return edges


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
        edges = loop_edges(ref[:, j].tolist())
        np.testing.assert_allclose(bins.numeric[name].edges, edges, rtol=0, atol=1e-12)
        expected = loop_psi_numeric(ref[:, j].tolist(), cur[:, j].tolist(), edges)
        assert abs(res.features[name].psi - expected) < 1e-9, name
    assert len(bins.numeric["a"].edges) == 9  # continuous: 10 quantile bins
    assert len(bins.numeric["c"].edges) == 8  # 4 distinct values: one bin each, plus 5 gap bins
    cats = bins.categorical["channel"].categories
    assert cats == ["web", "app", "pos"]  # most frequent first
    expected = loop_psi_categorical(ref_cat, cur_cat, cats)
    assert abs(res.features["channel"].psi - expected) < 1e-9
    assert bins.categorical["channel"].ref_counts[-1] == 0  # nothing in __other__ for the reference
    assert res.overall_psi == pytest.approx(np.mean([f.psi for f in res.features.values()]), abs=1e-15)
    assert OTHER == "__other__"


def test_streaming_chunks_equal_one_shot() -> None:
    """Bit-identical, also with per-value bins, a below-minimum edge, NaN and infinities."""
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((20_000, 5))
    cur = rng.standard_normal((17_001, 5)) + np.array([0, 0.1, 0.3, 0, -0.2])
    ref[:, 3] = rng.integers(0, 5, 20_000)  # discrete: per-value bins (more edges than the others)
    cur[:, 3] = rng.integers(-1, 6, 17_001)
    ref[:, 4] = np.maximum(ref[:, 4], 0.0)  # half zeros: edge below the minimum
    cur[::13, 4] = -np.inf
    cur[::17, 2] = np.inf
    cur[::19, 1] = np.nan
    cat_ref = rng.choice(["x", "y", "z"], 20_000)
    cat_cur = rng.choice(["x", "y", "w"], 17_001)
    names = [f"f{i}" for i in range(5)]
    bins = ReferenceBins.fit(ref, names, {"c": cat_ref})
    one = compute_drift(bins, cur, {"c": cat_cur})
    chunks = [(cur[i : i + 1234], {"c": cat_cur[i : i + 1234]}) for i in range(0, len(cur), 1234)]
    streamed = drift_from_chunks(bins, chunks)
    assert streamed.n_current == one.n_current == 17_001
    assert len(bins.numeric["f3"].edges) == 10 and len(bins.numeric["f4"].edges) == 10
    assert streamed.to_dict() == one.to_dict()
    assert all(f.status == "ok" for f in one.features.values())


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


# -- edge cases (issue 13): each of these gave a wrong PSI before ------------------------------------


def test_constant_feature_moving_down_is_seen_like_moving_up() -> None:
    """Reference always 3.0: a window at 2.0 used to give PSI 0 (bin 0 was x <= 3), at 4.0 18.4."""
    bins = ReferenceBins.fit(np.full((1000, 1), 3.0), ["a"])
    down = compute_drift(bins, np.full((1000, 1), 2.0))
    up = compute_drift(bins, np.full((1000, 1), 4.0))
    same = compute_drift(bins, np.full((1000, 1), 3.0))
    assert down.features["a"].psi == pytest.approx(up.features["a"].psi) == pytest.approx(18.42, abs=0.01)
    assert down.above_threshold and up.above_threshold and down.drifted_features == ["a"]
    assert same.features["a"].psi == 0.0 and not same.above_threshold


@pytest.mark.parametrize("high", [10, 200])  # per-value bins (<= 20 values) and quantile bins
def test_sentinel_replacing_the_minimum_is_seen(high: int) -> None:
    """An integer column, 40 % zeros; upstream starts writing -1 ("unknown") instead of 0.

    Before, -1 and 0 shared bin 0 (x <= 0) and PSI moved by 0; now -1 is below the training
    range and gets its own bin.  The bins stay quiet when nothing changed.
    """
    rng = np.random.default_rng(1)

    def column(n: int) -> np.ndarray:
        return np.where(rng.random(n) < 0.4, 0, rng.integers(1, high, n)).astype(float)[:, None]

    bins = ReferenceBins.fit(column(20_000), ["count"])
    window = column(20_000)
    baseline = compute_drift(bins, window)
    window[window == 0] = -1
    sentinel = compute_drift(bins, window)
    assert baseline.features["count"].psi < 0.005 and baseline.drifted_features == []
    assert sentinel.features["count"].psi > 5 and sentinel.drifted_features == ["count"]
    assert sentinel.above_threshold


def test_discrete_features_do_not_false_alarm() -> None:
    """Per-value bins on identical distributions: the chi-square p-value stays calibrated."""
    rng = np.random.default_rng(8)
    names = [f"d{i}" for i in range(10)]
    ref = rng.poisson(np.arange(1, 11), (100_000, 10)).astype(float)
    cur = rng.poisson(np.arange(1, 11), (100_000, 10)).astype(float)
    res = compute_drift(ReferenceBins.fit(ref, names), cur)
    assert res.drifted_features == [] and res.overall_psi < 0.001


def test_pd_na_is_missing_not_a_category() -> None:
    ref = pd.array(["web", "app", pd.NA, "web", None] * 100, dtype="string")
    bins = ReferenceBins.fit(categorical={"channel": ref})
    assert bins.categorical["channel"].categories == ["web", "app"]
    assert bins.categorical["channel"].ref_counts.tolist() == [200, 100, 0]
    obj = np.array(["web", pd.NA, "app", np.nan, None, pd.NaT] * 100, dtype=object)
    res = compute_drift(bins, categorical={"channel": obj})
    assert res.features["channel"].n_current == 200
    clean = compute_drift(bins, categorical={"channel": np.array(["web", "app"] * 100, dtype=object)})
    assert res.features["channel"].psi == clean.features["channel"].psi
    # numeric: an object column holding pd.NA counts as missing, like NaN
    num = ReferenceBins.fit(np.arange(200.0)[:, None], ["x"])
    with_na = np.array([*range(150), *[pd.NA] * 50], dtype=object)[:, None]
    with_nan = np.array([*range(150), *[np.nan] * 50], dtype=float)[:, None]
    assert compute_drift(num, with_na).to_dict() == compute_drift(num, with_nan).to_dict()


@pytest.mark.parametrize(
    ("label", "rows"),
    [("one row", 1), ("30 rows", 30), ("empty", 0), ("all NaN", -100)],
)
def test_windows_below_min_samples_are_insufficient_never_a_trigger(label: str, rows: int) -> None:
    """Before: 1 row gave PSI 8.3 (a trigger), 30 reference-like rows ~0.5, an empty window 6.9."""
    rng = np.random.default_rng(5)
    names = ["a", "b"]
    bins = ReferenceBins.fit(rng.standard_normal((10_000, 2)), names, {"c": rng.choice(["x", "y"], 10_000)})
    cur = np.full((100, 2), np.nan) if rows < 0 else rng.standard_normal((rows, 2))
    cats = {"c": np.array([None] * len(cur) if rows < 0 else rng.choice(["x", "y"], len(cur)), dtype=object)}
    res = compute_drift(bins, cur, cats, threshold=0.25)
    assert not res.above_threshold and res.drifted_features == [], label
    assert res.status == "insufficient_data"
    assert res.insufficient_features == ["a", "b", "c"]
    out = json.loads(json.dumps(res.to_dict(), allow_nan=False))  # strict JSON
    assert out["overall_psi"] is None and out["status"] == "insufficient_data"
    assert out["features"]["a"]["psi"] is None and out["features"]["a"]["status"] == "insufficient_data"


def test_min_samples_is_per_feature_and_inclusive() -> None:
    rng = np.random.default_rng(6)
    bins = ReferenceBins.fit(rng.standard_normal((10_000, 3)), ["a", "b", "gone"])
    cur = rng.standard_normal((100, 3))
    cur[:, 2] = np.nan  # a broken upstream column: no values at all
    res = compute_drift(bins, cur, min_samples=100)
    assert res.status == "ok" and res.insufficient_features == ["gone"]
    assert res.features["gone"].n_current == 0 and math.isnan(res.features["gone"].psi)
    assert res.overall_psi == pytest.approx((res.features["a"].psi + res.features["b"].psi) / 2)
    assert compute_drift(bins, cur[:99]).status == "insufficient_data"
    with pytest.raises(ValueError, match="min_samples"):
        compute_drift(bins, cur, min_samples=0)


def test_infinite_reference_values_give_finite_edges_and_strict_json(tmp_path) -> None:
    """Before: NaN edges, negative counts and a reference file with NaN in it."""
    rng = np.random.default_rng(4)
    col = rng.standard_normal(1000)
    with_inf = col.copy()
    with_inf[:200], with_inf[200:400] = np.inf, -np.inf
    with_inf[400:410] = np.nan
    bins = ReferenceBins.fit(with_inf[:, None], ["a"])
    a = bins.numeric["a"]
    finite = with_inf[np.isfinite(with_inf)]
    np.testing.assert_array_equal(a.edges, np.quantile(finite, np.linspace(0, 1, 11)[1:-1]))
    assert a.ref_counts.min() >= 0 and a.ref_counts.sum() == 990  # NaN not binned, infinities are
    assert a.ref_counts[0] == 200 + np.sum(finite <= a.edges[0])  # -inf: first bin
    assert a.ref_counts[-1] == 200 + np.sum(finite > a.edges[-1])  # +inf: last bin
    path = tmp_path / "bins.json"
    bins.save(path)
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in reference file"))
    with pytest.raises(ValueError, match="no finite reference values"):
        ReferenceBins.fit(np.array([[np.inf], [-np.inf], [np.nan]]), ["a"])


def test_reference_file_with_nan_is_rejected(tmp_path) -> None:
    path = tmp_path / "bins.json"
    path.write_text('{"format_version": 1, "epsilon": 1e-4, "features": {"a": {"type": "numeric",'
                    ' "edges": [NaN, 0.5], "ref_counts": [1, 2, 3]}}}')  # fmt: skip
    with pytest.raises(ValueError, match="not a valid reference-bins file: NaN is not a JSON number"):
        ReferenceBins.load(path)
    path.write_text('{"format_version": 2, "epsilon": 1e-4, "features": {"a": {"type": "numeric",'
                    ' "edges": [0.5], "ref_counts": [3, -1]}}}')  # fmt: skip
    with pytest.raises(ValueError, match="counts must be >= 0"):
        ReferenceBins.load(path)
