"""Data validation: good data passes; each kind of bad data is named in the report; CLI exits 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from retrain_job import data as ds
from retrain_job.validation import validate

RETRAINING_DIR = Path(__file__).resolve().parents[1]


def test_generated_data_is_deterministic_and_valid() -> None:
    a, b = ds.generate(800, seed=4), ds.generate(800, seed=4)
    assert a.equals(b)
    assert not a.equals(ds.generate(800, seed=5))
    assert list(a.columns[:20]) == [f"f{i}" for i in range(20)]
    rep = validate(a)
    assert rep.ok, rep.render()
    assert 0.03 < rep.stats["label"]["positive_fraction"] < 0.2


def test_each_problem_is_reported() -> None:
    frame = ds.generate(1000, seed=1)
    frame["f3"] = frame["f3"].astype(object)
    frame.loc[5, "f3"] = "oops"
    frame.loc[:40, "f0"] = -5.0  # negative amount: out of range
    frame.loc[::10, "f7"] = np.nan  # 10% missing, 1% allowed
    frame.loc[3, "label"] = 2
    frame.loc[:30, "channel"] = "fax"
    frame = frame.drop(columns=["f12"])
    rep = validate(frame)
    assert not rep.ok
    found = {(i.column, i.check) for i in rep.issues}
    assert found == {
        ("f3", "type"),
        ("f0", "range"),
        ("f7", "missing"),
        ("label", "range"),
        ("channel", "category"),
        ("f12", "schema"),
    }
    text = rep.render()
    assert "FAILED" in text and "'oops'" in text and "-5.0" in text and "10.00% missing" in text


def test_too_few_rows_and_single_class() -> None:
    frame = ds.generate(100, seed=2)
    frame["label"] = 0
    found = {(i.column, i.check) for i in validate(frame).issues}
    assert found == {("*", "rows"), ("label", "label")}


def test_cli_stops_on_invalid_data_with_report(tmp_path: Path) -> None:
    """The real entry point: exit 2, readable report on stderr, JSON report, MLflow never contacted."""
    frame = ds.generate(600, seed=3)
    frame.loc[:100, "f5"] = np.nan
    frame.loc[7, "f9"] = 1e9
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(RETRAINING_DIR), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    env.pop("PUSHGATEWAY_URL", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "retrain_job",
            "run",
            "--model",
            "fraud",
            "--data",
            str(path),
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "data validation: FAILED" in proc.stderr
    assert "[missing] f5" in proc.stderr and "[range] f9" in proc.stderr
    assert "Traceback" not in proc.stderr
    rep = json.loads(report.read_text())
    assert rep["result"] == "failed" and rep["exit_code"] == 2
    assert {i["column"] for i in rep["validation"]["issues"]} == {"f5", "f9"}


def test_cli_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    from retrain_job.cli import main

    assert (
        main(["run", "--data", str(tmp_path / "nope.parquet"), "--tracking-uri", "http://127.0.0.1:9"]) == 2
    )
    assert main(["run", "--model", "Bad_Name", "--synthetic-rows", "10"]) == 2
