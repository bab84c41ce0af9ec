"""Alertmanager webhook: payload validation (4xx with reasons), auth, and Job creation."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from retrain_job.k8s import JobLauncher, JobSettings, K8sConfig
from retrain_job.webhook import create_app

TOKEN = "s3cret-token"


def payload(*alerts: dict, version: str = "4") -> dict:
    return {
        "version": version, "groupKey": "{}:{alertname=\"ModelDrift\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "retraining", "groupLabels": {"alertname": "ModelDrift"},
        "commonLabels": {"alertname": "ModelDrift"}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "alerts": list(alerts),
    }  # fmt: skip


def alert(model: str | None = "fraud", status: str = "firing", name: str = "ModelDrift") -> dict:
    labels = {"alertname": name, "severity": "warning"}
    if model is not None:
        labels["model"] = model
    return {"status": status, "labels": labels, "annotations": {"summary": "drift"},
            "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph", "fingerprint": "abc"}  # fmt: skip


@pytest.fixture
def client(fake_k8s):
    launcher = JobLauncher(K8sConfig.from_env(), JobSettings())
    app = create_app(launcher.launch, token=TOKEN, allowed_models={"fraud", "churn"})
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def test_firing_alert_creates_one_job_per_model(client, fake_k8s) -> None:
    body = payload(alert("fraud"), alert("fraud", name="ModelQualityLow"), alert("churn", status="resolved"),
                   alert(None, name="Other"))  # fmt: skip
    r = client.post("/alerts", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [(j["model"], j["status"]) for j in out["jobs"]] == [("fraud", "created")]
    reasons = sorted(i["reason"] for i in out["ignored"])
    assert reasons == ["alert is resolved", "model 'fraud' already handled", "no 'model' label"]
    (post,) = fake_k8s.of("POST")
    job = post.json()
    assert job["metadata"]["labels"]["mlops.dev/trigger"] == "alert"
    assert job["metadata"]["annotations"]["mlops.dev/reason"] == "alertmanager: ModelDrift"


def test_second_alert_while_running_creates_nothing(client, fake_k8s) -> None:
    fake_k8s.jobs = [{"metadata": {"name": "retrain-fraud-x"}, "status": {"active": 1}}]
    r = client.post("/alerts", json=payload(alert("fraud")))
    assert r.status_code == 200 and r.json()["jobs"][0]["status"] == "already-running"
    assert fake_k8s.of("POST") == []


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "invalid JSON"),
        (json.dumps(payload(alert(), version="3")).encode(), 422, 'version must be \\"4\\"'),
        (json.dumps({**payload(alert()), "alerts": []}).encode(), 422, "non-empty list"),
        (json.dumps(payload({**alert(), "status": "weird"})).encode(), 422, "alerts[0].status"),
        (json.dumps(payload({**alert(), "labels": {"model": 1}})).encode(), 422, "object of strings"),
        (json.dumps([1, 2]).encode(), 422, "JSON object"),
    ],
)
def test_bad_payloads_get_4xx_with_reason(client, fake_k8s, body: bytes, status: int, fragment: str) -> None:
    r = client.post("/alerts", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status
    assert fragment in r.text
    assert fake_k8s.requests == []


def test_auth_size_type_and_allow_list(client, fake_k8s) -> None:
    assert (
        client.post("/alerts", json=payload(alert()), headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    assert client.post("/alerts", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
    big = b'{"pad": "' + b"x" * (1 << 20) + b'"}'
    assert (
        client.post("/alerts", content=big, headers={"Content-Type": "application/json"}).status_code == 413
    )
    r = client.post("/alerts", json=payload(alert("payments"), alert("Evil;rm")))
    assert r.status_code == 200 and r.json()["jobs"] == []
    assert sorted(i["reason"] for i in r.json()["ignored"]) == [
        "invalid model name 'Evil;rm'", "model 'payments' not in the allow-list"]  # fmt: skip
    assert client.get("/alerts").status_code == 405
    assert client.get("/healthz").json() == {"status": "ok"}
    assert fake_k8s.of("POST") == []


def test_kubernetes_failure_is_502_so_alertmanager_retries(client, fake_k8s) -> None:
    fake_k8s.create_status = 500
    r = client.post("/alerts", json=payload(alert("fraud")))
    assert r.status_code == 502 and r.json()["jobs"][0]["status"] == "error"


def test_webhook_refuses_to_start_without_token(monkeypatch, capsys) -> None:
    from retrain_job.cli import main

    monkeypatch.delenv("WEBHOOK_TOKEN", raising=False)
    monkeypatch.delenv("WEBHOOK_TOKEN_FILE", raising=False)
    assert main(["webhook", "--k8s-api", "http://127.0.0.1:9", "--namespace", "ml"]) == 2
    assert "no webhook token" in capsys.readouterr().err


def test_unexpected_launch_failure_is_502_not_500() -> None:
    def boom(model: str, trigger: str, reason: str):
        raise RuntimeError("surprise")

    app = create_app(boom, token=None)
    with TestClient(app) as c:
        r = c.post("/alerts", json=payload(alert("fraud")))
    assert r.status_code == 502 and "RuntimeError: surprise" in r.json()["jobs"][0]["detail"]
