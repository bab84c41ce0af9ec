"""Command line: run | rollback | drift-monitor | webhook | volume-check | generate | fit-reference.

Exit codes: 0 ok (including "candidate rejected", "job already running", "insufficient data for a
drift decision" and "rollback --from V already happened"), 1 error (also a refused rollback),
2 invalid input data or arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from . import data as ds
from .drift import DEFAULT_BINS, DEFAULT_DRIFT_THRESHOLD, DEFAULT_MIN_SAMPLES, ReferenceBins
from .gate import GateConfig
from .k8s import JobLauncher, JobSettings, K8sConfig, K8sError, valid_model_name
from .training import TrainParams

EXIT_USAGE = 2


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default=_env("MODEL_NAME", "fraud"), help="registered model name (default $MODEL_NAME)"
    )
    p.add_argument("--tracking-uri", default=_env("MLFLOW_TRACKING_URI"), help="default $MLFLOW_TRACKING_URI")
    p.add_argument("--report", default=_env("RETRAIN_REPORT", "retrain-report.json"), help="JSON report path")
    p.add_argument("--pushgateway-url", default=None, help="default $PUSHGATEWAY_URL (unset: no push)")


def _add_k8s(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="decide and report, create no Job")
    p.add_argument(
        "--k8s-api", default=None, help="default: in-cluster ($KUBERNETES_SERVICE_HOST) or $K8S_API_URL"
    )
    p.add_argument("--namespace", default=None, help="default: the pod's namespace or $K8S_NAMESPACE")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m retrain_job", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="validate, check drift, train, evaluate, register, gate, promote")
    _add_common(r)
    src = r.add_mutually_exclusive_group()
    src.add_argument("--data", help="training data (.csv/.parquet), default $RETRAIN_DATA")
    src.add_argument("--synthetic-rows", type=int, help="generate this many rows instead of reading --data")
    r.add_argument("--seed", type=int, default=0, help="seed for synthetic data and the holdout split")
    r.add_argument(
        "--holdout",
        default=_env("RETRAIN_HOLDOUT") or None,
        help="fixed evaluation set (.csv/.parquet), default $RETRAIN_HOLDOUT; else a split of --data",
    )
    r.add_argument("--holdout-fraction", type=float, default=0.25)
    r.add_argument("--min-auc", type=float, default=float(_env("GATE_MIN_AUC", "0.75")))
    r.add_argument("--max-latency-ms", type=float, default=float(_env("GATE_MAX_LATENCY_MS", "50")))
    r.add_argument("--min-improvement", type=float, default=float(_env("GATE_MIN_IMPROVEMENT", "0.002")))
    r.add_argument(
        "--drift-threshold", type=float, default=float(_env("DRIFT_THRESHOLD", str(DEFAULT_DRIFT_THRESHOLD)))
    )
    r.add_argument("--max-iter", type=int, default=150)
    r.add_argument("--learning-rate", type=float, default=0.1)
    r.add_argument(
        "--threads", type=int, default=0, help="training threads (default: $RETRAIN_THREADS or CPU quota)"
    )
    r.add_argument("--latency-calls", type=int, default=200, help="single-row calls timed for the p99")

    rb = sub.add_parser("rollback", help="re-point champion to the previous champion version")
    rb.add_argument("--model", default=_env("MODEL_NAME", "fraud"))
    rb.add_argument("--tracking-uri", default=_env("MLFLOW_TRACKING_URI"))
    rb.add_argument(
        "--from",
        dest="source",
        metavar="VERSION",
        help="roll back only if VERSION is the champion; if its rollback already happened, exit 0 (safe retry)",
    )

    dm = sub.add_parser("drift-monitor", help="serving inputs vs frozen bins; create a Job above threshold")
    _add_common(dm)
    _add_k8s(dm)
    dm.add_argument("--current", required=True, help="recent serving inputs: .csv/.parquet file or directory")
    dm.add_argument("--reference", help="reference_bins.json; default: the champion's bins from MLflow")
    dm.add_argument(
        "--threshold", type=float, default=float(_env("DRIFT_THRESHOLD", str(DEFAULT_DRIFT_THRESHOLD)))
    )
    dm.add_argument(
        "--feature-threshold",
        type=float,
        default=None,
        help="also trigger when one feature's PSI exceeds this",
    )
    dm.add_argument(
        "--min-samples",
        type=int,
        default=int(_env("DRIFT_MIN_SAMPLES", str(DEFAULT_MIN_SAMPLES))),
        help="non-missing values a feature needs (window and reference) to get a PSI; fewer: insufficient data",
    )

    vc = sub.add_parser("volume-check", help="enough new labelled rows since the last training -> Job")
    _add_common(vc)
    _add_k8s(vc)
    vc.add_argument(
        "--labelled", required=True, help="labelled rows (.csv/.parquet file or dir) with event_time"
    )
    vc.add_argument("--since", help="ISO timestamp; default: creation time of the champion version")
    vc.add_argument("--min-rows", type=int, default=int(_env("RETRAIN_MIN_NEW_ROWS", "10000")))

    wh = sub.add_parser("webhook", help="Alertmanager webhook receiver (HTTP)")
    _add_k8s(wh)
    wh.add_argument("--host", default="0.0.0.0")
    wh.add_argument("--port", type=int, default=8080)
    wh.add_argument(
        "--token-file",
        default=_env("WEBHOOK_TOKEN_FILE"),
        help="bearer token file ($WEBHOOK_TOKEN also works)",
    )
    wh.add_argument("--allow-unauthenticated", action="store_true", help="accept requests without a token")
    wh.add_argument("--models", default=_env("WEBHOOK_MODELS"), help="comma-separated allow-list of models")

    g = sub.add_parser("generate", help="write the deterministic synthetic dataset")
    g.add_argument("--rows", type=int, required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--shift", type=float, default=0.0, help="mean shift in standard deviations")
    g.add_argument("--out", required=True, help=".csv or .parquet")

    fr = sub.add_parser("fit-reference", help="fit reference bins from a dataset and write JSON")
    fr.add_argument("--data", required=True)
    fr.add_argument("--bins", type=int, default=DEFAULT_BINS)
    fr.add_argument("--out", required=True)
    return parser


def _launcher(args: argparse.Namespace) -> JobLauncher | None:
    if args.dry_run:
        return None
    return JobLauncher(K8sConfig.from_env(api_url=args.k8s_api, namespace=args.namespace), JobSettings())


def _check_model(model: str) -> None:
    if not valid_model_name(model):
        raise ValueError(f"invalid --model {model!r}: lowercase letters, digits and '-', max 40 characters")


def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import RunConfig, run

    data_path = args.data or _env("RETRAIN_DATA")
    if args.synthetic_rows:
        frame, source = (
            ds.generate(args.synthetic_rows, seed=args.seed),
            f"synthetic(rows={args.synthetic_rows},seed={args.seed})",
        )
    elif data_path:
        frame, source = ds.read_table(data_path), data_path
    else:
        raise ValueError("no training data: pass --data PATH (or $RETRAIN_DATA) or --synthetic-rows N")
    holdout = ds.read_table(args.holdout) if args.holdout else None
    cfg = RunConfig(
        model=args.model,
        tracking_uri=args.tracking_uri,
        data=frame,
        data_source=source,
        holdout=holdout,
        holdout_fraction=args.holdout_fraction,
        seed=args.seed,
        gate=GateConfig(args.min_auc, args.max_latency_ms / 1000.0, args.min_improvement),
        params=TrainParams(
            max_iter=args.max_iter,
            learning_rate=args.learning_rate,
            random_state=args.seed,
            threads=args.threads,
        ),
        report_path=args.report,
        drift_threshold=args.drift_threshold,
        latency_calls=args.latency_calls,
        pushgateway_url=args.pushgateway_url,
    )
    return run(cfg)


def cmd_rollback(args: argparse.Namespace) -> int:
    from .registry import CHAMPION, Registry, RegistryError

    if args.source is not None and not args.source.isdigit():
        raise ValueError(f"--from takes a version number, e.g. 3; got {args.source!r}")
    reg = Registry(args.tracking_uri)
    expect = args.source or reg.alias_version(args.model, CHAMPION)
    try:
        res = reg.rollback(args.model, expect=args.source)
    except RegistryError:
        raise
    except Exception as exc:  # the registry failed midway: say how to retry without rolling back twice
        print(f"error ({type(exc).__name__}): {exc}", file=sys.stderr)
        if expect is not None:
            print(
                f"the rollback of champion v{expect} may or may not have happened; retry with"
                f" `rollback --model {args.model} --from {expect}`: it finishes or skips it, never rolls back twice",
                file=sys.stderr,
            )
        return 1
    if res.status == "already_done":
        print(f"{args.model}: champion v{res.source} -> v{res.to} was already rolled back; nothing to do")
    elif res.status == "finished":
        print(f"finished the interrupted rollback of {args.model}: champion v{res.source} -> v{res.to}")
    else:
        print(f"rolled back {args.model}: champion v{res.source} -> v{res.to}")
    return 0


def _champion_reference(args: argparse.Namespace) -> ReferenceBins:
    from .registry import CHAMPION, Registry

    reg = Registry(args.tracking_uri)
    version = reg.alias_version(args.model, CHAMPION)
    if version is None:
        raise ValueError(f"model {args.model!r} has no champion; pass --reference")
    ref = reg.load_reference(args.model, version)
    if ref is None:
        raise ValueError(f"{args.model} v{version} ships no reference bins; pass --reference")
    return ref


def cmd_drift_monitor(args: argparse.Namespace) -> int:
    from .triggers import drift_monitor

    if args.min_samples < 1:
        raise ValueError(f"--min-samples must be >= 1, got {args.min_samples}")
    ref = ReferenceBins.load(args.reference) if args.reference else _champion_reference(args)
    code, _ = drift_monitor(
        args.model,
        ref,
        args.current,
        args.threshold,
        args.feature_threshold,
        _launcher(args),
        args.report,
        args.pushgateway_url,
        min_samples=args.min_samples,
    )
    return code


def cmd_volume_check(args: argparse.Namespace) -> int:
    from .triggers import volume_check

    if args.since:
        since = pd.Timestamp(args.since)
        since = since.tz_localize("UTC") if since.tzinfo is None else since
    else:
        from .registry import CHAMPION, Registry

        reg = Registry(args.tracking_uri)
        version = reg.alias_version(args.model, CHAMPION)
        if version is None:
            since = pd.Timestamp(0, tz="UTC")  # never trained: every labelled row is new
        else:
            mv = reg.client.get_model_version(args.model, version)
            since = pd.Timestamp(int(mv.creation_timestamp), unit="ms", tz="UTC")
    code, _ = volume_check(
        args.model, args.labelled, since, args.min_rows, _launcher(args), args.report, args.pushgateway_url
    )
    return code


def cmd_webhook(args: argparse.Namespace) -> int:
    import uvicorn

    from .webhook import create_app

    token = _env("WEBHOOK_TOKEN") or None
    if args.token_file:
        token = Path(args.token_file).read_text().strip() or None
    if token is None and not args.allow_unauthenticated:
        raise ValueError("no webhook token: set --token-file/$WEBHOOK_TOKEN, or pass --allow-unauthenticated")
    launcher = JobLauncher(K8sConfig.from_env(api_url=args.k8s_api, namespace=args.namespace), JobSettings())
    models = {m.strip() for m in args.models.split(",") if m.strip()} if args.models else None
    app = create_app(launcher.launch, token=token, allowed_models=models)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    ds.write_table(ds.generate(args.rows, seed=args.seed, shift=args.shift), args.out)
    print(f"wrote {args.rows} rows to {args.out}")
    return 0


def cmd_fit_reference(args: argparse.Namespace) -> int:
    frame = ds.read_table(args.data)
    cats = {ds.CATEGORICAL: frame[ds.CATEGORICAL].to_numpy()} if ds.CATEGORICAL in frame else {}
    ref = ReferenceBins.fit(frame[ds.FEATURES].to_numpy(dtype=float), ds.FEATURES, cats, bins=args.bins)
    ref.save(args.out)
    print(f"wrote reference bins for {len(ref.features)} features to {args.out}")
    return 0


COMMANDS = {
    "run": cmd_run,
    "rollback": cmd_rollback,
    "drift-monitor": cmd_drift_monitor,
    "volume-check": cmd_volume_check,
    "webhook": cmd_webhook,
    "generate": cmd_generate,
    "fit-reference": cmd_fit_reference,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "model"):
            _check_model(args.model)
        return COMMANDS[args.command](args)
    except (ValueError, K8sError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # registry/network failures: one clear line, no traceback
        from .registry import RegistryError

        kind = "error" if isinstance(exc, RegistryError) else f"error ({type(exc).__name__})"
        print(f"{kind}: {exc}", file=sys.stderr)
        return 1
