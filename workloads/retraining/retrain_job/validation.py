"""Data validation before training: schema, types, ranges, missing values, label sanity.

Returns a report (never raises on bad data) so the pipeline can print every problem at once
and stop with a non-zero exit code instead of training on garbage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .data import Schema, default_schema


@dataclass
class Issue:
    column: str
    check: str
    message: str


@dataclass
class ValidationReport:
    rows: int
    issues: list[Issue] = field(default_factory=list)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.issues

    def add(self, column: str, check: str, message: str) -> None:
        self.issues.append(Issue(column, check, message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "issues": [asdict(i) for i in self.issues],
            "stats": self.stats,
        }

    def render(self) -> str:
        verdict = "PASSED" if self.ok else "FAILED"
        head = f"data validation: {verdict} ({self.rows} rows, {len(self.issues)} issues)"
        lines = [head]
        lines += [f"  - [{i.check}] {i.column}: {i.message}" for i in self.issues]
        return "\n".join(lines)


def _examples(values: pd.Series, n: int = 3) -> str:
    return ", ".join(repr(v) for v in values.head(n).tolist())


def validate(frame: pd.DataFrame, schema: Schema | None = None) -> ValidationReport:
    schema = schema or default_schema()
    rep = ValidationReport(rows=len(frame))
    if len(frame) < schema.min_rows:
        rep.add("*", "rows", f"{len(frame)} rows, need at least {schema.min_rows}")
    for spec in schema.columns:
        if spec.name not in frame.columns:
            if spec.required:
                rep.add(spec.name, "schema", "required column is missing")
            continue
        col = frame[spec.name]
        n = max(len(col), 1)
        missing = col.isna()
        miss_frac = float(missing.sum()) / n
        rep.stats[spec.name] = {"missing_fraction": miss_frac}
        if miss_frac > spec.max_missing:
            rep.add(
                spec.name,
                "missing",
                f"{miss_frac:.2%} missing, allowed {spec.max_missing:.2%}",
            )
        present = col[~missing]
        if spec.kind in {"numeric", "binary"}:
            if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
                coerced = pd.to_numeric(present, errors="coerce")
                bad = present[coerced.isna()]
                rep.add(
                    spec.name,
                    "type",
                    f"expected numbers, got dtype {col.dtype}"
                    f" ({len(bad)} non-numeric values, e.g. {_examples(bad)})",
                )
                continue
            values = present.to_numpy(dtype=np.float64)
            if not np.isfinite(values).all():
                rep.add(spec.name, "range", f"{int((~np.isfinite(values)).sum())} infinite values")
                values = values[np.isfinite(values)]
            if spec.kind == "binary":
                bad = present[~present.isin([0, 1])]
                if len(bad):
                    rep.add(spec.name, "range", f"{len(bad)} values not in {{0, 1}}, e.g. {_examples(bad)}")
                elif len(present):
                    pos = float(present.mean())
                    rep.stats[spec.name]["positive_fraction"] = pos
                    if pos < schema.min_positive_fraction or pos > 1 - schema.min_positive_fraction:
                        rep.add(
                            spec.name,
                            "label",
                            f"positive fraction {pos:.4f}:"
                            f" both classes need >= {schema.min_positive_fraction}",
                        )
                continue
            if values.size:
                rep.stats[spec.name].update(min=float(values.min()), max=float(values.max()))
            out = np.zeros(values.shape, dtype=bool)
            if spec.min is not None:
                out |= values < spec.min
            if spec.max is not None:
                out |= values > spec.max
            frac = float(out.sum()) / n
            if frac > schema.max_out_of_range_fraction:
                rep.add(
                    spec.name,
                    "range",
                    f"{int(out.sum())} values outside [{spec.min}, {spec.max}] ({frac:.2%}), "
                    f"e.g. {', '.join(repr(float(v)) for v in values[out][:3])}",
                )
        elif spec.kind == "categorical":
            unknown = present[~present.astype(str).isin(spec.allowed)]
            frac = len(unknown) / n
            if spec.allowed and frac > schema.max_unknown_category_fraction:
                rep.add(
                    spec.name,
                    "category",
                    f"{frac:.2%} unknown categories (allowed {list(spec.allowed)}),"
                    f" e.g. {_examples(unknown)}",
                )
        elif spec.kind == "timestamp":
            parsed = pd.to_datetime(present, errors="coerce", utc=True)
            if parsed.isna().any():
                rep.add(spec.name, "type", f"{int(parsed.isna().sum())} unparsable timestamps")
    return rep
