"""Population Stability Index (PSI) drift detection with reference bins frozen at training time.

Bins are fitted once on the training data, serialised to JSON and shipped with the model, so
every later comparison uses exactly the same bins.  Counting is vectorised over the whole
(rows x features) matrix in row chunks; the same chunked counting is the streaming
accumulator, so memory stays bounded for arbitrarily large windows.

Conventions (docs/retraining.md compares them with Evidently's; the tests check them against
a plain-Python loop):

* numeric bin ``k`` holds ``edges[k-1] < x <= edges[k]`` with ``edges[-1] = -inf`` and
  ``edges[K] = +inf``.  A feature with at most 20 distinct reference values gets one bin per
  value plus a bin for every gap between and beyond them; any other gets reference quantile
  edges, plus an edge just below the minimum when the lowest quantile is the minimum (a point
  mass there), so values that move below the training range are seen;
* edges come from finite values only; ``+-inf`` are counted like any value beyond the edges;
* missing values (NaN, None, ``pd.NA``, NaT) are never binned, numeric or categorical;
* proportions that are exactly 0 are replaced by ``epsilon`` (not renormalised);
* ``PSI = sum((p_cur - p_ref) * ln(p_cur / p_ref))``;
* a feature with fewer than ``min_samples`` non-missing values on either side has no PSI
  (status ``insufficient_data``), and a window where no feature has enough is never a trigger.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

DEFAULT_BINS = 10
DEFAULT_EPSILON = 1e-4
DEFAULT_CHUNK_ROWS = 65_536
OTHER = "__other__"
FORMAT_VERSION = 2  # 2: per-feature edge counts may differ (per-value bins); 1 is still read
READABLE_FORMATS = (1, 2)
MAX_DISCRETE_VALUES = 20  # at most this many distinct reference values -> one bin per value (as Evidently)
OK = "ok"
INSUFFICIENT = "insufficient_data"

# Detection defaults (see docs/retraining.md, "Why these thresholds").
DEFAULT_ALPHA = 0.01  # family-wise false-positive rate over all features (Bonferroni)
DEFAULT_MIN_PSI = 0.005  # smallest effect we call drift, whatever the sample size
DEFAULT_DRIFT_THRESHOLD = 0.25  # overall (mean) PSI that triggers retraining
DEFAULT_MIN_SAMPLES = 100  # non-missing values per feature and side below which PSI is noise


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _linear_quantiles(col: np.ndarray, qs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, float]:
    """np.quantile(method="linear") via one partial sort, plus the bin counts when they are free,
    and the minimum (one more order statistic of the same partition: no extra pass over the column).

    After partitioning around the two order statistics each edge interpolates between, every
    element left of ``lo`` is <= the edge and every element right of ``hi`` is >= ``col[hi]``.
    So when the edge is strictly below ``col[hi]`` exactly ``lo + 1`` values are <= it, and the
    reference never needs a counting pass.  Ties at an edge (edge == col[hi]) return None and the
    caller counts the usual way.
    """
    n = col.shape[0]
    h = (n - 1) * qs
    lo = np.floor(h).astype(np.int64)
    hi = np.ceil(h).astype(np.int64)
    work = col.copy()
    work.partition(np.unique(np.concatenate([[0], lo, hi])))
    a, b = work[lo], work[hi]
    edges = a + (b - a) * (h - lo)
    if not np.all(edges < b):
        return edges, None, float(work[0])
    at_or_below = np.concatenate([lo + 1, [n]])  # count(x <= edge_k), then all values
    return edges, np.diff(at_or_below, prepend=0).astype(np.int64), float(work[0])


def _distinct_values(col: np.ndarray, limit: int) -> np.ndarray | None:
    """The sorted distinct values when there are at most ``limit``, else None.

    Continuous data answers from its first few thousand values (more than ``limit`` distinct
    there: no full sort of the column); discrete data needs a few equality passes.
    """
    seen = np.unique(col[:4096])
    rest = col
    while seen.size <= limit:
        rest = rest[~np.isin(rest, seen)]
        if rest.size == 0:
            return seen
        seen = np.union1d(seen, rest[:4096])
    return None


def _value_edges(values: np.ndarray) -> np.ndarray:
    """Edges giving each value its own bin: ``(prev(v), v]`` holds exactly ``v``, and the bins
    between and beyond the values hold anything the reference never had."""
    return np.column_stack([np.nextafter(values, -np.inf), values]).ravel()


def _fit_numeric_column(col: np.ndarray, qs: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Edges of one reference column, plus its bin counts when they come for free."""
    finite = np.isfinite(col)
    clean = bool(finite.all())  # the common case: no copy, and the partition's counts are exact
    values = col if clean else col[finite]
    if values.size == 0:
        raise ValueError(f"feature {name!r} has no finite reference values")
    distinct = _distinct_values(values, MAX_DISCRETE_VALUES)
    if distinct is not None:
        return _value_edges(distinct), None
    edges, counts, lowest = _linear_quantiles(values, qs)
    if edges[0] <= lowest:  # a point mass at the minimum fills bin 0: give "below it" a bin
        return np.concatenate([[np.nextafter(lowest, -np.inf)], edges]), None
    return edges, counts if clean or not np.isinf(col).any() else None


def _isna(arr: np.ndarray) -> np.ndarray:
    """None, NaN, ``pd.NA`` and NaT of an object array.  pandas is imported here, on first use:
    numeric float input never needs it, and importing it costs ~60 MiB of resident memory."""
    import pandas as pd

    return np.asarray(pd.isna(arr), dtype=bool)


def _float_matrix(values: Any) -> np.ndarray:
    """float64 view of numeric input; missing markers of object arrays (None, ``pd.NA``) become NaN."""
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = np.where(_isna(arr), np.nan, arr)
    return np.asarray(arr, dtype=np.float64)


@dataclass
class NumericBins:
    """Frozen edges of one numeric feature (quantiles or per-value) plus the reference counts."""

    edges: np.ndarray  # interior edges, ascending, finite; len = bins - 1
    ref_counts: np.ndarray  # len = bins

    def to_json(self) -> dict[str, Any]:
        return {"type": "numeric", "edges": self.edges.tolist(), "ref_counts": self.ref_counts.tolist()}


@dataclass
class CategoricalBins:
    """Reference categories (plus the catch-all ``__other__``) and their counts."""

    categories: list[str]
    ref_counts: np.ndarray  # len = len(categories) + 1, last one is __other__

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "categorical",
            "categories": list(self.categories),
            "ref_counts": self.ref_counts.tolist(),
        }


@dataclass
class ReferenceBins:
    """All features' frozen bins; serialisable so they ship with the model as an MLflow artifact."""

    numeric: dict[str, NumericBins] = field(default_factory=dict)
    categorical: dict[str, CategoricalBins] = field(default_factory=dict)
    epsilon: float = DEFAULT_EPSILON

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    # -- fitting -----------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        numeric: np.ndarray | None = None,
        numeric_names: Sequence[str] = (),
        categorical: Mapping[str, Sequence[Any] | np.ndarray] | None = None,
        bins: int = DEFAULT_BINS,
        epsilon: float = DEFAULT_EPSILON,
        max_categories: int = 50,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> ReferenceBins:
        """Fit edges (and count the reference into them) from a (rows x features) matrix."""
        if bins < 2:
            raise ValueError("bins must be >= 2")
        ref = cls(epsilon=epsilon)
        if numeric is not None and len(numeric_names):
            x = _float_matrix(numeric)
            if x.ndim != 2 or x.shape[1] != len(numeric_names):
                raise ValueError(f"numeric matrix must be (rows, {len(numeric_names)}), got {x.shape}")
            qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]

            def fit_col(j: int) -> tuple[np.ndarray, np.ndarray | None]:
                return _fit_numeric_column(x[:, j], qs, numeric_names[j])

            with ThreadPoolExecutor(_threads()) as pool:
                fitted = list(pool.map(fit_col, range(x.shape[1])))
            todo = [j for j, (_, c) in enumerate(fitted) if c is None]
            counted = _count_numeric(x[:, todo], [fitted[j][0] for j in todo], chunk_rows) if todo else []
            for j, name in enumerate(numeric_names):
                edges, c = fitted[j]
                ref.numeric[name] = NumericBins(
                    edges=edges, ref_counts=c if c is not None else counted[todo.index(j)]
                )
        for name, values in (categorical or {}).items():
            vals = _clean_categorical(values)
            uniq, cnt = np.unique(vals, return_counts=True)
            order = np.lexsort((uniq, -cnt))[:max_categories]  # most frequent first, ties by name
            cats = [str(u) for u in uniq[order]]
            ref.categorical[name] = CategoricalBins(
                categories=cats, ref_counts=_count_categorical(vals, cats)
            )
        return ref

    # -- serialisation -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "epsilon": self.epsilon,
            "features": {
                **{k: v.to_json() for k, v in self.numeric.items()},
                **{k: v.to_json() for k, v in self.categorical.items()},
            },
        }

    def save(self, path: str | Path) -> None:
        """Strict JSON: a NaN or infinity would make the file unreadable for other parsers."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceBins:
        if data.get("format_version") not in READABLE_FORMATS:
            raise ValueError(f"unsupported reference-bins format_version {data.get('format_version')!r}")
        ref = cls(epsilon=float(data["epsilon"]))
        for name, spec in data["features"].items():
            if spec["type"] == "numeric":
                edges = np.asarray(spec["edges"], dtype=np.float64)
                counts = np.asarray(spec["ref_counts"], dtype=np.int64)
                if not np.all(np.isfinite(edges)):
                    raise ValueError(f"feature {name!r}: edges must be finite numbers")
                if counts.shape[0] != edges.shape[0] + 1 or np.any(np.diff(edges) < 0):
                    raise ValueError(f"feature {name!r}: edges must be ascending and counts = edges + 1")
                ref.numeric[name] = NumericBins(edges=edges, ref_counts=counts)
            elif spec["type"] == "categorical":
                cats = [str(c) for c in spec["categories"]]
                counts = np.asarray(spec["ref_counts"], dtype=np.int64)
                if counts.shape[0] != len(cats) + 1:
                    raise ValueError(f"feature {name!r}: counts must be categories + 1 (__other__)")
                ref.categorical[name] = CategoricalBins(categories=cats, ref_counts=counts)
            else:
                raise ValueError(f"feature {name!r}: unknown bin type {spec['type']!r}")
            if np.any(counts < 0):
                raise ValueError(f"feature {name!r}: reference counts must be >= 0")
        return ref

    @classmethod
    def load(cls, path: str | Path) -> ReferenceBins:
        try:
            data = json.loads(Path(path).read_text(), parse_constant=_reject_constant)
            return cls.from_dict(data)
        except (OSError, KeyError, TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ValueError(f"{path}: not a valid reference-bins file: {detail}") from exc

    def accumulator(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> DriftAccumulator:
        return DriftAccumulator(self, chunk_rows=chunk_rows)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _clean_categorical(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Strings, with missing values (None, NaN, ``pd.NA``, NaT) dropped, not turned into categories."""
    arr = np.asarray(values, dtype=object)
    kept: np.ndarray = arr[~_isna(arr)].astype(str)
    return kept


def _count_categorical(vals: np.ndarray, cats: list[str]) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(cats)}
    uniq, inv = np.unique(vals, return_inverse=True)
    codes = np.array([lookup.get(str(u), len(cats)) for u in uniq], dtype=np.int64)
    return np.bincount(codes[inv], minlength=len(cats) + 1).astype(np.int64)


def _count_numeric(x: np.ndarray, edges: Sequence[np.ndarray], chunk_rows: int) -> list[np.ndarray]:
    """Bin counts per feature of a (rows x features) matrix, in row chunks on a few threads.

    ``count(x > e_k)`` for every interior edge gives cumulative counts; differencing yields the
    bin counts.  Each chunk is transposed once so every comparison and count runs over a
    contiguous row (numpy's fast path: ~5x quicker than reducing a (rows, features) boolean
    matrix along axis 0).  NaN compares False everywhere, so only non-missing values are
    counted; -inf lands in the first bin, +inf in the last.  Features may have different
    numbers of edges.
    """
    n, f = x.shape
    edge_lists = [[float(v) for v in e] for e in edges]
    sizes = [len(e) + 2 for e in edge_lists]  # "above -inf", one per edge, "above +inf" (= 0)

    def chunk(start: int) -> list[np.ndarray]:
        xt = np.ascontiguousarray(x[start : start + chunk_rows].T)  # (features, rows)
        out = []
        for j in range(f):
            row = xt[j]
            above = np.zeros(sizes[j], dtype=np.int64)
            above[0] = row.shape[0] - np.count_nonzero(np.isnan(row))
            for i, e in enumerate(edge_lists[j]):
                above[i + 1] = np.count_nonzero(row > e)
            out.append(above)
        return out

    starts = range(0, n, chunk_rows)
    if n > chunk_rows:
        with ThreadPoolExecutor(_threads()) as pool:
            parts = list(pool.map(chunk, starts))
    else:
        parts = [chunk(s) for s in starts]
    totals = [np.zeros(size, dtype=np.int64) for size in sizes]
    for part in parts:
        for j in range(f):
            totals[j] += part[j]
    return [t[:-1] - t[1:] for t in totals]


@dataclass
class FeatureDrift:
    """One feature's statistics; NaN (None in JSON) where undefined or the sample is too small."""

    psi: float
    psi_pvalue: float
    ks_stat: float
    ks_pvalue: float
    js_distance: float
    n_current: int  # non-missing values in the window
    drifted: bool
    n_reference: int = 0
    status: str = OK  # OK | INSUFFICIENT


@dataclass
class DriftResult:
    features: dict[str, FeatureDrift]
    overall_psi: float  # mean PSI over the features with enough data; NaN when none has
    threshold: float
    n_current: int
    min_samples: int = DEFAULT_MIN_SAMPLES

    @property
    def drifted_features(self) -> list[str]:
        return [k for k, v in self.features.items() if v.drifted]

    @property
    def insufficient_features(self) -> list[str]:
        return [k for k, v in self.features.items() if v.status == INSUFFICIENT]

    @property
    def status(self) -> str:
        """``insufficient_data`` when no feature has ``min_samples`` values: no decision at all."""
        return OK if any(v.status == OK for v in self.features.values()) else INSUFFICIENT

    @property
    def above_threshold(self) -> bool:
        return self.status == OK and self.overall_psi > self.threshold

    def to_dict(self) -> dict[str, Any]:
        return _nan_to_none(
            {
                "status": self.status,
                "overall_psi": self.overall_psi,
                "threshold": self.threshold,
                "above_threshold": self.above_threshold,
                "n_current": self.n_current,
                "min_samples": self.min_samples,
                "drifted_features": self.drifted_features,
                "insufficient_features": self.insufficient_features,
                "features": {k: _nan_to_none(vars(v)) for k, v in self.features.items()},
            }
        )


def _nan_to_none(d: dict[str, Any]) -> dict[str, Any]:
    """Strict JSON has no NaN (KS is undefined for categorical features, PSI without data)."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in d.items()}


def psi_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray, epsilon: float) -> float:
    p = ref_counts / max(ref_counts.sum(), 1)
    q = cur_counts / max(cur_counts.sum(), 1)
    p = np.where(p == 0, epsilon, p)
    q = np.where(q == 0, epsilon, q)
    return float(np.sum((q - p) * np.log(q / p)))


def _feature_stats(
    ref_counts: np.ndarray, cur_counts: np.ndarray, epsilon: float, ordered: bool
) -> tuple[float, float, float, float, float]:
    """PSI, its chi-square p-value, binned KS (numeric only) and Jensen-Shannon distance."""
    n, m = int(ref_counts.sum()), int(cur_counts.sum())
    psi = psi_from_counts(ref_counts, cur_counts, epsilon)
    if n == 0 or m == 0:
        return psi, float("nan"), float("nan"), float("nan"), float("nan")
    # PSI is the symmetric KL divergence; to second order it is the chi-square distance, so
    # PSI * n*m/(n+m) ~ chi2(bins-1) when both samples come from one distribution.
    used = int(np.count_nonzero((ref_counts + cur_counts) > 0))
    n_eff = n * m / (n + m)
    psi_p = float(stats.chi2.sf(psi * n_eff, max(used - 1, 1)))
    p, q = ref_counts / n, cur_counts / m
    if ordered:
        # KS evaluated at the frozen edges: a lower bound of the raw-data KS, valid p-value (conservative).
        d = float(np.max(np.abs(np.cumsum(p) - np.cumsum(q))))
        ks_p = float(stats.kstwobign.sf(d * math.sqrt(n_eff)))
    else:
        d, ks_p = float("nan"), float("nan")
    mid = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / mid), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / mid), 0.0).sum()
    js = float(math.sqrt(max(0.5 * (kl_p + kl_q), 0.0)))
    return psi, psi_p, d, ks_p, js


class DriftAccumulator:
    """Streaming drift: feed chunks with :meth:`update`, read the result with :meth:`result`.

    Memory is the counts table (features x bins) plus one chunk, whatever the window length.
    """

    def __init__(self, reference: ReferenceBins, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        self.reference = reference
        self.chunk_rows = chunk_rows
        self._num_names = list(reference.numeric)
        self._edges = [reference.numeric[n].edges for n in self._num_names]
        self._num_counts = {n: np.zeros_like(b.ref_counts) for n, b in reference.numeric.items()}
        self._cat_counts = {n: np.zeros_like(b.ref_counts) for n, b in reference.categorical.items()}
        self.rows = 0

    @property
    def numeric_names(self) -> list[str]:
        return list(self._num_names)

    def update(
        self,
        numeric: np.ndarray | None = None,
        categorical: Mapping[str, Sequence[Any] | np.ndarray] | None = None,
    ) -> None:
        """Add one chunk: ``numeric`` columns in the reference's numeric feature order."""
        rows = 0
        if self._num_names:
            if numeric is None:
                raise ValueError("numeric chunk required: " + ", ".join(self._num_names))
            x = _float_matrix(numeric)
            if x.ndim != 2 or x.shape[1] != len(self._num_names):
                raise ValueError(f"numeric chunk must be (rows, {len(self._num_names)}), got {x.shape}")
            counts = _count_numeric(x, self._edges, self.chunk_rows)
            for j, name in enumerate(self._num_names):
                self._num_counts[name] += counts[j]
            rows = x.shape[0]
        for name, bins in self.reference.categorical.items():
            if categorical is None or name not in categorical:
                raise ValueError(f"categorical chunk for {name!r} required")
            vals = _clean_categorical(categorical[name])
            self._cat_counts[name] += _count_categorical(vals, bins.categories)
            rows = max(rows, len(categorical[name]))
        self.rows += rows

    def counts(self) -> dict[str, np.ndarray]:
        return {**self._num_counts, **self._cat_counts}

    def result(
        self,
        threshold: float = DEFAULT_DRIFT_THRESHOLD,
        alpha: float = DEFAULT_ALPHA,
        min_psi: float = DEFAULT_MIN_PSI,
        min_samples: int = DEFAULT_MIN_SAMPLES,
    ) -> DriftResult:
        """Per-feature statistics; features under ``min_samples`` values on either side get none."""
        if min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {min_samples}")
        ref = self.reference
        per: dict[str, FeatureDrift] = {}
        n_features = max(len(ref.features), 1)
        for name, cur in self.counts().items():
            ordered = name in ref.numeric
            rc = ref.numeric[name].ref_counts if ordered else ref.categorical[name].ref_counts
            n_ref, n_cur = int(rc.sum()), int(cur.sum())
            if min(n_ref, n_cur) < min_samples:
                nan = float("nan")
                per[name] = FeatureDrift(nan, nan, nan, nan, nan, n_cur, False, n_ref, INSUFFICIENT)
                continue
            psi, psi_p, ks, ks_p, js = _feature_stats(rc, cur, ref.epsilon, ordered)
            drifted = bool(psi_p < alpha / n_features and psi >= min_psi) if not math.isnan(psi_p) else False
            per[name] = FeatureDrift(psi, psi_p, ks, ks_p, js, n_cur, drifted, n_ref)
        scored = [v.psi for v in per.values() if v.status == OK]
        overall = float(np.mean(scored)) if scored else float("nan")
        return DriftResult(
            features=per,
            overall_psi=overall,
            threshold=threshold,
            n_current=self.rows,
            min_samples=min_samples,
        )


def compute_drift(
    reference: ReferenceBins,
    numeric: np.ndarray | None = None,
    categorical: Mapping[str, Sequence[Any] | np.ndarray] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    **kwargs: Any,
) -> DriftResult:
    """One-shot drift of a whole window (internally the same chunked counting as streaming)."""
    acc = reference.accumulator(chunk_rows=chunk_rows)
    acc.update(numeric, categorical)
    return acc.result(**kwargs)


def drift_from_chunks(
    reference: ReferenceBins,
    chunks: Iterable[tuple[np.ndarray | None, Mapping[str, Sequence[Any]] | None]],
    **kwargs: Any,
) -> DriftResult:
    acc = reference.accumulator()
    for num, cat in chunks:
        acc.update(num, cat)
    return acc.result(**kwargs)
