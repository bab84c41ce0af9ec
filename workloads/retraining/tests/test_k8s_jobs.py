"""Job creation through the Kubernetes REST API (a recording fake on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from retrain_job.k8s import JobLauncher, JobSettings, K8sConfig, K8sError, build_job, job_name

NOW = 1_767_225_600.0 + 3 * 3600 + 125  # 2026-01-01 03:02:05 UTC


def launcher() -> JobLauncher:
    return JobLauncher(K8sConfig.from_env(), JobSettings())


def test_creates_job_with_secure_body(fake_k8s, monkeypatch) -> None:
    monkeypatch.setenv("RETRAIN_DATA", "/data/fraud/train.parquet")
    monkeypatch.setenv("UNRELATED_SECRET", "must-not-leak")
    res = launcher().launch("fraud", "drift", "overall PSI 0.31 > 0.25", now=NOW)
    assert res.status == "created" and res.job_name == "retrain-fraud-202601010300"

    (listing,) = fake_k8s.of("GET")
    assert listing.path == "/apis/batch/v1/namespaces/ml/jobs"
    assert listing.query["labelSelector"] == ["app.kubernetes.io/name=retraining,mlops.dev/model=fraud"]
    assert listing.headers["Authorization"] == "Bearer test-sa-token"
    (post,) = fake_k8s.of("POST")
    assert post.headers["Authorization"] == "Bearer test-sa-token"
    job = post.json()
    labels = {
        "app.kubernetes.io/name": "retraining",
        "app.kubernetes.io/component": "training",
        "app.kubernetes.io/managed-by": "retrain-job",
        "mlops.dev/model": "fraud",
        "mlops.dev/trigger": "drift",
    }
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"] == {
        "name": "retrain-fraud-202601010300",
        "namespace": "ml",
        "labels": labels,
        "annotations": {"mlops.dev/reason": "overall PSI 0.31 > 0.25"},
    }
    spec = job["spec"]
    assert spec["backoffLimit"] == 1 and spec["activeDeadlineSeconds"] == 3600
    assert spec["ttlSecondsAfterFinished"] == 86400
    assert spec["template"]["metadata"]["labels"] == labels
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "retraining"
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }  # fmt: skip
    (c,) = pod["containers"]
    assert c["image"] == "registry.example/retraining:1.2.3"
    assert c["args"] == ["run", "--model", "fraud"]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
    }  # fmt: skip
    assert c["env"] == [
        {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.mlops.svc:5000"},
        {"name": "RETRAIN_DATA", "value": "/data/fraud/train.parquet"},
    ]
    assert c["resources"]["limits"]["memory"] == "4Gi"


def test_active_job_blocks_creation(fake_k8s) -> None:
    fake_k8s.jobs = [
        {"metadata": {"name": "retrain-fraud-old"}, "status": {"succeeded": 1, "completionTime": "2026-01-01T00:00:00Z",
                                                              "conditions": [{"type": "Complete", "status": "True"}]}},
        {"metadata": {"name": "retrain-fraud-202601010200"}, "status": {"active": 1}},
    ]  # fmt: skip
    res = launcher().launch("fraud", "alert", "x", now=NOW)
    assert res.status == "already-running" and res.job_name == "retrain-fraud-202601010200"
    assert fake_k8s.of("POST") == []


def test_finished_jobs_do_not_block(fake_k8s) -> None:
    fake_k8s.jobs = [{"metadata": {"name": "retrain-fraud-a"},
                      "status": {"failed": 2, "conditions": [{"type": "Failed", "status": "True"}]}}]  # fmt: skip
    assert launcher().launch("fraud", "volume", "x", now=NOW).status == "created"


def test_conflict_means_already_running_and_names_are_per_bucket(fake_k8s) -> None:
    fake_k8s.create_status = 409
    res = launcher().launch("fraud", "drift", "x", now=NOW)
    assert res.status == "already-running" and "time bucket" in res.detail
    assert job_name("fraud", 3600, NOW) == job_name("fraud", 3600, NOW + 3000)
    assert job_name("fraud", 3600, NOW) != job_name("fraud", 3600, NOW + 3600)


def test_api_errors_are_reported_not_raised(fake_k8s) -> None:
    fake_k8s.create_status = 403
    res = launcher().launch("fraud", "drift", "x", now=NOW)
    assert res.status == "error" and "HTTP 403" in res.detail
    assert launcher().launch("Bad/Name", "drift", "x").status == "error"


def test_template_file_is_used_but_root_is_refused(fake_k8s, tmp_path: Path, monkeypatch) -> None:
    tpl = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"labels": {"team": "ml"}},
           "spec": {"backoffLimit": 3, "template": {"spec": {"serviceAccountName": "trainer", "containers": [
               {"name": "t", "image": "img:2", "args": ["run", "--model", "{model}", "--data", "s3://b/{model}.parquet"]}]}}}}  # fmt: skip
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(tpl))
    monkeypatch.setenv("RETRAIN_JOB_TEMPLATE", str(path))
    assert launcher().launch("churn", "alert", "x", now=NOW).status == "created"
    job = fake_k8s.of("POST")[0].json()
    assert (
        job["metadata"]["labels"]["team"] == "ml" and job["metadata"]["labels"]["mlops.dev/model"] == "churn"
    )
    assert job["spec"]["backoffLimit"] == 3 and job["spec"]["activeDeadlineSeconds"] == 3600
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "trainer" and pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["args"][-1] == "s3://b/churn.parquet"

    tpl["spec"]["template"]["spec"]["securityContext"] = {"runAsUser": 0}
    path.write_text(yaml.safe_dump(tpl))
    with pytest.raises(K8sError, match="root"):
        build_job("churn", "alert", "x", JobSettings(), "ml")


def test_plain_http_only_to_loopback(monkeypatch) -> None:
    monkeypatch.setenv("K8S_NAMESPACE", "ml")
    with pytest.raises(K8sError, match="plain-HTTP"):
        K8sConfig.from_env(api_url="http://10.0.0.1:8080")
    monkeypatch.delenv("K8S_API_URL", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(K8sError, match="not in a cluster"):
        K8sConfig.from_env()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert K8sConfig.from_env().api_url == "https://10.96.0.1:443"


def test_broken_template_is_an_error_result(fake_k8s, tmp_path: Path, monkeypatch) -> None:
    bad = tmp_path / "job.yaml"
    bad.write_text("kind: Job\nspec: [unclosed\n")
    monkeypatch.setenv("RETRAIN_JOB_TEMPLATE", str(bad))
    res = launcher().launch("fraud", "drift", "x")
    assert res.status == "error" and "job template" in res.detail
    monkeypatch.setenv("RETRAIN_JOB_TEMPLATE", str(tmp_path / "missing.yaml"))
    assert launcher().launch("fraud", "drift", "x").status == "error"
    assert fake_k8s.of("POST") == []
