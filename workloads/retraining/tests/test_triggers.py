"""drift-monitor and volume-check entry points: decide, report, push metrics, create the Job."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from retrain_job import data as ds
from retrain_job.cli import main


def _reference(tmp: Path) -> Path:
    train = tmp / "train.parquet"
    ds.write_table(ds.generate(20_000, seed=1), train)
    ref = tmp / "reference_bins.json"
    assert main(["fit-reference", "--data", str(train), "--out", str(ref)]) == 0
    return ref


def test_drift_above_threshold_creates_job_and_pushes(tmp_path: Path, fake_k8s, fake_pushgateway) -> None:
    ref = _reference(tmp_path)
    window = tmp_path / "window"
    window.mkdir()
    shifted = ds.generate(30_000, seed=2, shift=0.8)  # a big shift: PSI well above 0.25
    ds.write_table(shifted.iloc[:15_000], window / "part-0.parquet")
    ds.write_table(shifted.iloc[15_000:], window / "part-1.csv")  # mixed sources are fine
    report = tmp_path / "drift.json"
    code = main(["drift-monitor", "--model", "fraud", "--reference", str(ref), "--current", str(window),
                 "--report", str(report), "--pushgateway-url", fake_pushgateway.url])  # fmt: skip
    assert code == 0
    rep = json.loads(report.read_text())
    assert rep["triggered"] and rep["drift"]["overall_psi"] > 0.25
    assert rep["drift"]["n_current"] == 30_000
    assert rep["job"]["status"] == "created"
    (post,) = fake_k8s.of("POST")
    assert post.json()["metadata"]["labels"]["mlops.dev/trigger"] == "drift"
    body = fake_pushgateway.of("POST")[0].body.decode()
    assert 'model_drift_threshold{model="fraud"} 0.25' in body
    assert 'model_feature_psi{feature="channel",model="fraud"}' in body
    assert "retraining_runs_total" not in body  # the monitor is not a pipeline run


def test_no_drift_no_job(tmp_path: Path, fake_k8s) -> None:
    ref = _reference(tmp_path)
    cur = tmp_path / "cur.parquet"
    ds.write_table(ds.generate(20_000, seed=3), cur)
    report = tmp_path / "drift.json"
    assert (
        main(["drift-monitor", "--reference", str(ref), "--current", str(cur), "--report", str(report)]) == 0
    )
    rep = json.loads(report.read_text())
    assert not rep["triggered"] and rep["drift"]["overall_psi"] < 0.01 and "job" not in rep
    assert fake_k8s.requests == []


def test_feature_threshold_and_dry_run(tmp_path: Path, fake_k8s) -> None:
    ref = _reference(tmp_path)
    frame = ds.generate(20_000, seed=4)
    frame["f3"] += 1.0  # one feature drifts hard; the 20-feature mean stays low
    cur = tmp_path / "cur.csv"
    ds.write_table(frame, cur)
    report = tmp_path / "drift.json"
    args = ["drift-monitor", "--reference", str(ref), "--current", str(cur), "--report", str(report)]
    assert main([*args, "--dry-run"]) == 0
    assert not json.loads(report.read_text())["triggered"]
    assert main([*args, "--feature-threshold", "0.25", "--dry-run"]) == 0
    rep = json.loads(report.read_text())
    assert rep["triggered"] and "feature f3" in rep["reason"] and rep["job"]["status"] == "dry-run"
    assert rep["drift"]["drifted_features"] == ["f3"]
    assert fake_k8s.requests == []


def test_drift_monitor_bad_input_is_a_clear_error(tmp_path: Path, capsys, fake_k8s) -> None:
    ref = _reference(tmp_path)
    cur = tmp_path / "cur.csv"
    pd.DataFrame({"f0": [1.0, 2.0]}).to_csv(cur, index=False)
    assert main(["drift-monitor", "--reference", str(ref), "--current", str(cur)]) == 2
    assert "missing columns" in capsys.readouterr().err
    assert main(["drift-monitor", "--reference", str(ref), "--current", str(tmp_path / "none.parquet")]) == 2


def test_volume_check(tmp_path: Path, fake_k8s) -> None:
    labelled = tmp_path / "labelled.parquet"
    frame = ds.generate(5000, seed=5, start="2026-01-01")  # event_time spread over one week
    frame.loc[:999, "label"] = None  # not labelled yet
    ds.write_table(frame, labelled)
    report = tmp_path / "volume.json"
    since = "2026-01-04T12:00:00"
    args = [
        "volume-check",
        "--model",
        "fraud",
        "--labelled",
        str(labelled),
        "--since",
        since,
        "--report",
        str(report),
    ]
    expected = int(((frame["event_time"] > pd.Timestamp(since, tz="UTC")) & frame["label"].notna()).sum())
    assert 1000 < expected < 4000
    assert main([*args, "--min-rows", str(expected + 1)]) == 0
    rep = json.loads(report.read_text())
    assert rep["new_labelled_rows"] == expected and not rep["triggered"]
    assert fake_k8s.requests == []
    assert main([*args, "--min-rows", str(expected)]) == 0
    rep = json.loads(report.read_text())
    assert rep["triggered"] and rep["job"]["status"] == "created"
    assert fake_k8s.of("POST")[0].json()["metadata"]["labels"]["mlops.dev/trigger"] == "volume"
