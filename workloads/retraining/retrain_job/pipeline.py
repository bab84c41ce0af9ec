"""The retraining pipeline: validate -> drift -> train -> evaluate -> register -> gate -> promote."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from . import data as ds
from .drift import DEFAULT_DRIFT_THRESHOLD, ReferenceBins, compute_drift
from .gate import GateConfig, decide
from .metrics import RunMetrics, write_report
from .registry import CHAMPION, Registry, RegistryError
from .training import TrainParams, evaluate, split, train
from .validation import validate

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INVALID_DATA = 2


@dataclass
class RunConfig:
    model: str
    tracking_uri: str
    data: pd.DataFrame
    data_source: str
    holdout: pd.DataFrame | None = None
    holdout_fraction: float = 0.25
    seed: int = 0
    gate: GateConfig = field(default_factory=GateConfig)
    params: TrainParams = field(default_factory=TrainParams)
    report_path: str = "retrain-report.json"
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD
    latency_calls: int = 200
    pushgateway_url: str | None = None


def _reference_columns(frame: pd.DataFrame) -> dict[str, Any]:
    cats = {ds.CATEGORICAL: frame[ds.CATEGORICAL].to_numpy()} if ds.CATEGORICAL in frame else {}
    return {
        "numeric": frame[ds.FEATURES].to_numpy(dtype=float),
        "numeric_names": ds.FEATURES,
        "categorical": cats,
    }


def drift_inputs(frame: pd.DataFrame, reference: ReferenceBins) -> tuple[Any, dict[str, Any]]:
    """The numeric matrix (in the reference's order) and categorical columns a reference needs."""
    missing = [c for c in reference.features if c not in frame.columns]
    if missing:
        raise ValueError(f"data lacks reference features: {missing}")
    num = frame[list(reference.numeric)].to_numpy(dtype=float) if reference.numeric else None
    return num, {c: frame[c].to_numpy() for c in reference.categorical}


def run(cfg: RunConfig) -> int:
    """Returns the process exit code; always writes the JSON report."""
    metrics = RunMetrics(cfg.model)
    metrics.auc_threshold.labels(cfg.model).set(cfg.gate.min_auc)
    report: dict[str, Any] = {"model": cfg.model, "data": cfg.data_source, "started_at": time.time()}

    def finish(code: int, result: str, gate_passed: bool | None = None) -> int:
        report.update(result=result, exit_code=code, finished_at=time.time())
        metrics.record_run(result, gate_passed)
        err = metrics.push(cfg.pushgateway_url)
        if err:
            report["pushgateway_error"] = err
        write_report(cfg.report_path, report)
        print(f"report: {cfg.report_path}", file=sys.stderr)
        return code

    # 1. validation
    val = validate(cfg.data)
    report["validation"] = val.to_dict()
    hold_val = validate(cfg.holdout) if cfg.holdout is not None else None
    if hold_val is not None:
        report["holdout_validation"] = hold_val.to_dict()
    print(val.render(), file=sys.stderr)
    if not val.ok or (hold_val is not None and not hold_val.ok):
        if hold_val is not None and not hold_val.ok:
            print("holdout " + hold_val.render(), file=sys.stderr)
        return finish(EXIT_INVALID_DATA, "failed")

    try:
        registry = Registry(cfg.tracking_uri)
        champion_version = registry.alias_version(cfg.model, CHAMPION)
        report["champion_before"] = champion_version

        # 2. drift of the new data vs the champion's frozen reference bins (informational)
        if champion_version is not None:
            ref = registry.load_reference(cfg.model, champion_version)
            try:
                if ref is None:
                    raise ValueError(f"champion v{champion_version} ships no reference bins")
                num, cat = drift_inputs(cfg.data, ref)
                drift = compute_drift(ref, num, cat, threshold=cfg.drift_threshold)
            except ValueError as exc:  # informational step: note it, keep training
                report["drift_error"] = str(exc)
                print(f"drift check skipped: {exc}", file=sys.stderr)
            else:
                metrics.record_drift(drift)
                report["drift"] = drift.to_dict()
                psi = f"overall PSI {drift.overall_psi:.4f}" if drift.status == "ok" else "insufficient data"
                print(f"drift vs champion v{champion_version}: {psi}", file=sys.stderr)

        # 3. training
        if cfg.holdout is not None:
            train_df, hold_df = cfg.data, cfg.holdout
        else:
            train_df, hold_df = split(cfg.data, cfg.holdout_fraction, cfg.seed)
        train_df = train_df.dropna(subset=ds.FEATURES)
        hold_df = hold_df.dropna(subset=ds.FEATURES)
        reference = ReferenceBins.fit(**_reference_columns(train_df))
        t0 = time.perf_counter()
        model = train(train_df, cfg.params)
        report["train_seconds"] = time.perf_counter() - t0
        report["train_rows"], report["holdout_rows"] = len(train_df), len(hold_df)

        # 4. evaluation, candidate and champion on the same holdout
        cand = evaluate(model, hold_df, calls=cfg.latency_calls)
        report["candidate"] = cand.as_dict()
        champ = None
        if champion_version is not None:
            champ_model = registry.load_model(cfg.model, champion_version)
            champ = evaluate(champ_model, hold_df, calls=cfg.latency_calls)
            report["champion"] = {"version": champion_version, **champ.as_dict()}
        decision = decide(cand, champ, cfg.gate)
        report["gate"] = {**decision.as_dict(), "config": vars(cfg.gate)}

        # 5. register, alias challenger, promote when the gate passes
        metric_values = {
            "holdout_auc": cand.auc,
            "holdout_f1": cand.f1,
            "p99_latency_seconds": cand.p99_latency_s,
            "train_rows": float(len(train_df)),
        }
        if champ is not None:
            metric_values["champion_holdout_auc"] = champ.auc
        reg = registry.log_candidate(
            cfg.model,
            model,
            example=train_df[ds.FEATURES].head(5),
            reference=reference,
            params={
                **cfg.params.as_dict(),
                "data": cfg.data_source,
                "holdout_fraction": cfg.holdout_fraction,
            },
            metrics=metric_values,
            artifacts={"validation.json": val.to_dict(), "gate.json": report["gate"]},
            experiment=f"retraining-{cfg.model}",
            tags={"model": cfg.model, "gate_passed": str(decision.passed).lower()},
        )
        report["candidate_version"] = reg.version
        report["run_id"] = reg.run_id
        registry.tag_version(
            cfg.model,
            reg.version,
            {
                "gate_passed": str(decision.passed).lower(),
                "holdout_auc": f"{cand.auc:.6f}",
                "gate_reasons": "; ".join(decision.reasons) or "all checks passed",
            },
        )
        registry.set_challenger(cfg.model, reg.version)
        if decision.passed:
            previous = registry.promote(cfg.model, reg.version)
            report["previous_champion"] = previous
            metrics.quality_auc.labels(cfg.model, "holdout").set(cand.auc)
            print(f"promoted {cfg.model} v{reg.version} to champion (was {previous})", file=sys.stderr)
            report["champion_after"] = reg.version
            return finish(EXIT_OK, "promoted", True)
        if champ is not None:
            metrics.quality_auc.labels(cfg.model, "holdout").set(champ.auc)
        print(
            f"rejected {cfg.model} v{reg.version} (stays challenger): " + "; ".join(decision.reasons),
            file=sys.stderr,
        )
        report["champion_after"] = champion_version
        return finish(EXIT_OK, "rejected", False)
    except (RegistryError, ValueError) as exc:
        report["error"] = str(exc)
        print(f"error: {exc}", file=sys.stderr)
        return finish(EXIT_ERROR, "failed")
    except Exception as exc:  # MLflow/network errors: clear message, report, non-zero exit
        report["error"] = f"{type(exc).__name__}: {exc}"
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return finish(EXIT_ERROR, "failed")
