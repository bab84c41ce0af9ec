"""drift-monitor and volume-check entry points: decide, report, push metrics, create the Job."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

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


def test_tiny_or_empty_window_is_insufficient_data_not_a_trigger(
    tmp_path: Path, capsys, fake_k8s, fake_pushgateway
) -> None:
    """Before: one row gave PSI ~8 and created a training Job; an empty file exited 2."""
    ref = _reference(tmp_path)
    one = tmp_path / "one.csv"
    ds.write_table(ds.generate(1, seed=6), one)
    empty = tmp_path / "empty.csv"
    ds.generate(5, seed=6).iloc[:0].to_csv(empty, index=False)
    report = tmp_path / "drift.json"
    for window in (one, empty):
        args = ["drift-monitor", "--reference", str(ref), "--current", str(window), "--report", str(report)]
        assert main([*args, "--feature-threshold", "0.1", "--pushgateway-url", fake_pushgateway.url]) == 0
        rep = json.loads(report.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in report"))
        assert rep["triggered"] is False and rep["status"] == "insufficient_data" and "job" not in rep
        assert rep["drift"]["overall_psi"] is None and rep["drift"]["above_threshold"] is False
        assert "insufficient data" in capsys.readouterr().err
    assert fake_k8s.requests == []
    body = fake_pushgateway.of("POST")[-1].body.decode()
    assert 'model_drift_psi{model="fraud"} NaN' in body  # "no value", never above a threshold
    # the same window passes with a smaller minimum (explicitly asked for)
    assert (
        main([*args[:-2], "--current", str(one), "--min-samples", "1", "--dry-run", "--report", str(report)])
        == 0
    )
    assert json.loads(report.read_text())["status"] == "ok"
    assert main([*args, "--min-samples", "0"]) == 2
    assert "--min-samples must be >= 1" in capsys.readouterr().err


def test_fit_reference_with_infinities_writes_strict_json(tmp_path: Path, capsys, fake_k8s) -> None:
    """Before: NaN edges and negative counts in the file, exit 0."""
    frame = ds.generate(2000, seed=7)
    frame.loc[:299, "f1"] = float("inf")
    frame.loc[300:599, "f1"] = float("-inf")
    data = tmp_path / "train.csv"
    ds.write_table(frame, data)
    out = tmp_path / "ref.json"
    assert main(["fit-reference", "--data", str(data), "--out", str(out)]) == 0
    spec = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in reference file"))
    f1 = spec["features"]["f1"]
    assert min(f1["ref_counts"]) >= 0 and sum(f1["ref_counts"]) == 2000
    # a reference file that is not strict JSON is refused with a clear message, exit 2
    out.write_text(out.read_text().replace(str(f1["edges"][0]), "NaN", 1))
    cur = tmp_path / "cur.csv"
    ds.write_table(ds.generate(500, seed=8), cur)
    assert main(["drift-monitor", "--reference", str(out), "--current", str(cur), "--dry-run"]) == 2
    assert "not a valid reference-bins file: NaN is not a JSON number" in capsys.readouterr().err
