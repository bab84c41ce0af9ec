"""End to end against a real MLflow server: promotion gate, challenger/champion aliases, rollback."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from retrain_job import data as ds
from retrain_job.cli import main
from retrain_job.drift import ReferenceBins
from retrain_job.gate import GateConfig, decide
from retrain_job.training import Evaluation


def _run(tmp: Path, uri: str, model: str, rows: int, seed: int, holdout: Path, *extra: str) -> dict:
    data = tmp / f"train-{rows}-{seed}.parquet"
    ds.write_table(ds.generate(rows, seed=seed), data)
    report = tmp / f"report-{rows}-{seed}.json"
    code = main([
        "run", "--model", model, "--tracking-uri", uri, "--data", str(data), "--holdout", str(holdout),
        "--seed", str(seed), "--report", str(report), "--min-auc", "0.75",
        # latency is gated in test_gate_rejects_slow_or_weak_candidates; a loaded CI box must not flake
        "--max-latency-ms", "1000", "--latency-calls", "50", *extra,
    ])  # fmt: skip
    rep = json.loads(report.read_text())
    assert code == 0, rep
    return rep


@pytest.fixture(scope="module")
def holdout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("holdout") / "holdout.parquet"
    ds.write_table(ds.generate(4000, seed=999), path)
    return path


def test_promotion_gate_and_rollback(
    mlflow_server: str, holdout: Path, tmp_path: Path, fake_pushgateway, monkeypatch
) -> None:
    # one OpenMP thread: a shared 2-core CI box is oversubscribed and OpenMP spin-waits (10x slower)
    monkeypatch.setenv("RETRAIN_THREADS", "1")
    model = "fraud-seq"
    client = MlflowClient(mlflow_server)

    # 1. first model: no champion yet, business thresholds only -> champion
    r1 = _run(tmp_path, mlflow_server, model, 1500, 10, holdout)
    assert r1["result"] == "promoted" and r1["candidate_version"] == "1"
    assert client.get_model_version_by_alias(model, "champion").version == "1"

    # 2. more data -> clearly better on the same holdout -> champion, v1 remembered
    fake_pushgateway.groups = [{
        "labels": {"job": "retraining", "model": model},
        "retraining_runs_total": {"type": "COUNTER", "metrics": [
            {"labels": {"model": model, "result": "promoted", "job": "retraining"}, "value": "3"}]},
    }]  # fmt: skip
    r2 = _run(tmp_path, mlflow_server, model, 12000, 11, holdout, "--pushgateway-url", fake_pushgateway.url)
    assert r2["result"] == "promoted", r2["gate"]
    assert r2["candidate"]["auc"] > r2["champion"]["auc"] + 0.002
    assert r2["champion"]["version"] == "1" and r2["previous_champion"] == "1"
    assert client.get_model_version_by_alias(model, "champion").version == "2"
    tags = client.get_registered_model(model).tags
    assert tags["previous_champion"] == "1" and json.loads(tags["champion_history"]) == ["1"]
    assert "drift" in r2 and r2["drift"]["overall_psi"] < 0.05  # same generator: little drift

    pushes = [r for r in fake_pushgateway.requests if r.method == "POST"]
    assert len(pushes) == 1 and pushes[0].path == f"/metrics/job/retraining/model/{model}"
    body = pushes[0].body.decode()
    assert f'retraining_runs_total{{model="{model}",result="promoted"}} 4.0' in body  # 3 before + this run
    assert f'retraining_gate_passed{{model="{model}"}} 1.0' in body
    assert f'model_quality_auc{{dataset="holdout",model="{model}"}}' in body
    assert f'model_quality_threshold_auc{{model="{model}"}} 0.75' in body
    assert f'model_feature_psi{{feature="f0",model="{model}"}}' in body
    assert "retraining_last_success_timestamp_seconds" in body

    # 3. little data -> worse than the champion -> rejected, stays challenger
    r3 = _run(tmp_path, mlflow_server, model, 400, 12, holdout)
    assert r3["result"] == "rejected"
    assert r3["gate"]["checks"]["min_improvement"] is False
    assert any("champion" in reason for reason in r3["gate"]["reasons"])
    assert client.get_model_version_by_alias(model, "champion").version == "2"
    assert client.get_model_version_by_alias(model, "challenger").version == "3"
    v3 = client.get_model_version(model, "3")
    assert v3.tags["gate_passed"] == "false"

    # what the registry holds for a candidate: metrics, signature, input example, drift bins
    run = client.get_run(r3["run_id"])
    assert run.data.metrics["holdout_auc"] == pytest.approx(r3["candidate"]["auc"])
    assert "p99_latency_seconds" in run.data.metrics
    local = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{model}/3", tracking_uri=mlflow_server, dst_path=str(tmp_path / "v3")
        )
    )
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert mlmodel["flavors"]["sklearn"]["serialization_format"] == "skops"
    assert all(
        t.startswith(("sklearn.", "numpy.", "scipy."))
        for t in mlmodel["flavors"]["sklearn"]["skops_trusted_types"]
    )
    inputs = json.loads(mlmodel["signature"]["inputs"])
    assert [c["name"] for c in inputs] == [f"f{i}" for i in range(20)]
    assert (local / "input_example.json").exists() or "saved_input_example_info" in mlmodel
    ref = ReferenceBins.load(local / "extra_files" / "reference_bins.json")
    assert ref.features == [*ds.FEATURES, ds.CATEGORICAL]
    assert sum(ref.numeric["f1"].ref_counts) == 400

    # the champion loads through pyfunc the way a server would, with the serving feature names
    pyf = mlflow.pyfunc.load_model(f"models:/{model}@champion")
    frame = ds.generate(3, seed=1)[ds.FEATURES]
    assert pyf.predict(frame).shape[0] == 3

    # 4. rollback: champion back to v1 (the champion before v2), history consumed
    assert main(["rollback", "--model", model, "--tracking-uri", mlflow_server]) == 0
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    tags = client.get_registered_model(model).tags
    assert json.loads(tags["champion_history"]) == []
    assert client.get_model_version(model, "2").tags["rolled_back"] == "true"
    # nothing left to roll back to: clear error, non-zero exit, champion untouched
    assert main(["rollback", "--model", model, "--tracking-uri", mlflow_server]) == 1
    assert client.get_model_version_by_alias(model, "champion").version == "1"


def test_rollback_without_champion_fails_clearly(mlflow_server: str, capsys) -> None:
    assert main(["rollback", "--model", "never-trained", "--tracking-uri", mlflow_server]) == 1
    assert "no champion" in capsys.readouterr().err


def test_gate_rejects_slow_or_weak_candidates() -> None:
    cfg = GateConfig(min_auc=0.8, max_p99_latency_s=0.01, min_improvement=0.005)
    good = Evaluation(auc=0.9, f1=0.5, p99_latency_s=0.002, rows=100)
    assert decide(good, None, cfg).passed
    slow = decide(Evaluation(0.95, 0.5, 0.02, 100), None, cfg)
    assert not slow.passed and slow.checks == {"min_auc": True, "max_latency": False}
    weak = decide(Evaluation(0.7, 0.5, 0.002, 100), None, cfg)
    assert not weak.passed and "0.7000 < minimum 0.8000" in weak.reasons[0]
    marginal = decide(good, Evaluation(0.897, 0.5, 0.002, 100), cfg)  # +0.003 < +0.005
    assert not marginal.passed and marginal.checks["min_improvement"] is False
    assert decide(good, Evaluation(0.89, 0.5, 0.002, 100), cfg).passed
