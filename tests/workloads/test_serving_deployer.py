"""The model server's deployer: canary steps whose weights are the real traffic shares, automated-rollback
analysis, one scrape per pod, autoscaling, disruption budget, restricted pods and the GPU variant, checked on the
offline plan and against the strict schemas."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_infra.components.k8s import canary_traffic
from mlops_infra.components.k8s.serving import ModelServing, ModelServingArgs, RedisRef
from mlops_infra.components.local.cluster import LocalCluster, LocalClusterArgs
from mlops_infra.tooling.offline import evaluate
from mlops_infra.tooling.plan import Plan
from mlops_infra.tooling.render import manifest

from plan_support import MONITORING_FILES, REFERENCE_STACKS, ROOT, STACKS, load_stack_doc, reference_plan
from test_render import validate_object

IMAGE = "registry.example/serving@sha256:" + "a" * 64


def _plan(cloud: str = "local", **overrides: Any) -> Plan:
    def program() -> dict[str, Any]:
        cluster = LocalCluster("c", LocalClusterArgs())
        args = ModelServingArgs(
            cluster=dataclasses.replace(cluster.handle, cloud=cloud),
            model="fraud",
            image=IMAGE,
            tracking_uri="http://mlflow.mlflow.svc:5000",
            redis=RedisRef(host="redis.redis.svc", tls=True),
            **overrides,
        )
        serving = ModelServing("fraud", args)
        return {"url": serving.service_url}

    return evaluate(STACKS / "Pulumi.local.yaml", program=program)


@pytest.fixture(scope="module")
def cpu_plan() -> Plan:
    return _plan(replicas=3, latency_slo_ms=40)


def _kind(plan: Plan, kind: str) -> dict[str, Any]:
    found = [r.inputs for r in plan.k8s_objects() if r.inputs.get("kind") == kind]
    assert len(found) == 1, kind
    return found[0]


def test_canary_steps_and_background_analysis(cpu_plan: Plan) -> None:
    canary = _kind(cpu_plan, "Rollout")["spec"]["strategy"]["canary"]
    weights = [s["setWeight"] for s in canary["steps"] if "setWeight" in s]
    assert weights == [25, 50, 100]  # 1 and 2 canary pods next to 3 stable ones, then all
    assert (canary["maxSurge"], canary["maxUnavailable"]) == (1, 0)
    assert canary["analysis"]["templates"] == [{"templateName": "fraud-server-slo"}]
    assert (
        canary["stableService"] == "fraud-server-stable" and canary["canaryService"] == "fraud-server-canary"
    )


def test_analysis_queries_recording_rules_that_exist(cpu_plan: Plan) -> None:
    metrics = {m["name"]: m for m in _kind(cpu_plan, "AnalysisTemplate")["spec"]["metrics"]}
    recorded = {
        rule["record"]
        for group in yaml.safe_load((MONITORING_FILES / "rules/canary.yaml").read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    for name, limit in (("p99-latency", "0.04"), ("error-ratio", "0.01")):
        metric = metrics[name]
        query = metric["provider"]["prometheus"]["query"]
        assert re.match(r"^[a-z_:0-9]+\{", query) and query.split("{")[0] in recorded
        assert 'pod_template_hash="{{args.canary-hash}}"' in query and 'model="fraud"' in query
        assert metric["failureCondition"] == f"len(result) > 0 && result[0] > {limit}"
        assert metric["failureLimit"] == 1


def test_autoscaling_and_disruption_budget(cpu_plan: Plan) -> None:
    hpa = _kind(cpu_plan, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "name": "fraud-server",
    }
    assert hpa["minReplicas"] == 3
    pdb = _kind(cpu_plan, "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1
    rollout = next(r for r in cpu_plan.k8s_objects() if r.inputs.get("kind") == "Rollout")
    assert "spec.replicas" in rollout.ignore_changes


def test_pod_is_restricted_probed_and_keeps_secrets_out(cpu_plan: Plan) -> None:
    pod = _kind(cpu_plan, "Rollout")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"readinessProbe", "livenessProbe", "startupProbe"} <= set(container)
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_URL"]["value"] == "rediss://redis.redis.svc:6379/0"
    assert env["REDIS_PASSWORD"] == {
        "name": "REDIS_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "password"}},
    }
    assert env["LATENCY_SLO_SECONDS"]["value"] == "0.04"
    assert "nvidia.com/gpu" not in container["resources"]["limits"] and "tolerations" not in pod


def _get(app: Any, path: str) -> int:
    """The status the model server's ASGI app answers a GET with (what the kubelet's httpGet probe sees)."""
    import asyncio

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": [(b"host", b"pod")]}
    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"])


def test_probes_ask_the_server_what_kubernetes_needs(cpu_plan: Plan) -> None:
    """The probe paths are routes the model server answers: startup and readiness fail (503) until a model
    is loaded and pass after, liveness passes meanwhile (a probe on an unknown path would 404 forever)."""
    import numpy as np

    from model_server.app import ModelServer
    from model_server.config import Settings
    from model_server.loader import LoadedModel
    from model_server.validation import Column, Validator

    (container,) = _kind(cpu_plan, "Rollout")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["ports"] == [{"name": "http", "containerPort": int(env["PORT"]), "protocol": "TCP"}]
    probes = {
        kind: container[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert {p["port"] for p in probes.values()} == {"http"}
    server = ModelServer(Settings(mlflow_tracking_uri="http://127.0.0.1:1", model_name=env["MODEL_NAME"]))
    loading = {kind: _get(server, p["path"]) for kind, p in probes.items()}
    assert loading == {"startupProbe": 503, "readinessProbe": 503, "livenessProbe": 200}
    validator = Validator([Column("f0", "float")], 4)
    server.current = LoadedModel(
        env["MODEL_NAME"], "1", "champion", "onnx", validator, lambda x: np.zeros(len(x))
    )
    assert {kind: _get(server, p["path"]) for kind, p in probes.items()} == dict.fromkeys(probes, 200)


def test_service_monitor_relabels_the_rollout_hash(cpu_plan: Plan) -> None:
    (endpoint,) = _kind(cpu_plan, "ServiceMonitor")["spec"]["endpoints"]
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_label_rollouts_pod_template_hash"],
        "targetLabel": "pod_template_hash",
    } in endpoint["relabelings"]


@pytest.mark.parametrize(
    ("cloud", "node_label"),
    [
        ("aws", {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}),
        # GKE labels its GPU nodes itself; the AWS-only `nvidia.com/gpu.present` label never exists there.
        ("gcp", {"key": "cloud.google.com/gke-accelerator", "operator": "Exists"}),
        # A local cluster's GPU operator (GPU feature discovery) sets the same label the AWS groups set.
        ("local", {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}),
    ],
)
def test_gpu_variant_tolerates_selects_and_requests(cloud: str, node_label: dict[str, Any]) -> None:
    pod = _kind(_plan(cloud, gpus=1), "Rollout")["spec"]["template"]["spec"]
    # Tolerated by key (operator Exists), whatever value each cloud's taint carries.
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [{"matchExpressions": [node_label]}]
    assert "nodeSelector" not in pod
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_every_object_validates_strictly(cpu_plan: Plan, tmp_path: Path) -> None:
    for resource in cpu_plan.k8s_objects():
        validate_object(manifest(resource), "1.33")


# ------------------------------------------------------------------------------------------ canary shares


def _rollout_and_hpa(plan: Plan) -> tuple[dict[str, Any], dict[str, Any]]:
    return _kind(plan, "Rollout")["spec"], _kind(plan, "HorizontalPodAutoscaler")["spec"]


def _declared_shares(plan: Plan, replicas: int | None = None) -> list[canary_traffic.StepShare]:
    """What the controller makes of the plan's Rollout at `replicas` (default: the HPA's minimum)."""
    rollout, hpa = _rollout_and_hpa(plan)
    canary = rollout["strategy"]["canary"]
    assert (
        "trafficRouting" not in canary
    )  # otherwise weights are router weights and this model does not apply
    return canary_traffic.rollout_shares(
        replicas or int(hpa["minReplicas"]),
        [int(s["setWeight"]) for s in canary["steps"] if "setWeight" in s],
        canary.get("maxSurge", canary_traffic.DEFAULT_FENCEPOST),
        canary.get("maxUnavailable", canary_traffic.DEFAULT_FENCEPOST),
    )


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_every_declared_weight_is_the_real_traffic_share(stack: str) -> None:
    """The main Service spreads requests over the ready pods of both ReplicaSets, so the canary's share is its
    share of pods; at the HPA minimum (the Rollout's replicas) each setWeight must be exactly that share, the
    share must never run above it while the step scales, and capacity must never drop below the minimum."""
    plan = reference_plan(stack)
    minimum = _rollout_and_hpa(plan)[1]["minReplicas"]
    for step in _declared_shares(plan):
        assert abs(step.share - step.weight) <= canary_traffic.TOLERANCE, (stack, step)
        assert step.highest <= step.weight + canary_traffic.TOLERANCE, (stack, step)
        assert step.min_ready >= minimum, (stack, step)


def _documented_shares() -> dict[str, list[str]]:
    text = (ROOT / "docs/serving.md").read_text()
    table = text.split("<!-- canary-shares -->")[1]
    rows = [line.strip("|").split("|") for line in table.strip().splitlines() if line.startswith("| `")]
    return {cells[0].strip().strip("`"): [c.strip() for c in cells[1:]] for cells in rows}


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_docs_state_the_shares_each_stack_really_gets(stack: str) -> None:
    """docs/serving.md lists, per stack, the steps, the share at the HPA minimum and the range the HPA can move
    each step's share through (min..max replicas): the docs say what the controller does."""
    plan = reference_plan(stack)
    hpa = _rollout_and_hpa(plan)[1]
    low, high = int(hpa["minReplicas"]), int(hpa["maxReplicas"])
    at_min = _declared_shares(plan)[:-1]
    across = [_declared_shares(plan, n)[:-1] for n in range(low, high + 1)]
    ranges = [
        f"{min(s[i].share for s in across):.0f}-{max(s[i].share for s in across):.0f}"
        for i in range(len(at_min))
    ]
    assert _documented_shares()[stack] == [
        f"{low}-{high}",
        " -> ".join(f"{s.weight}" for s in at_min) + " -> 100",
        ", ".join(f"{s.canary} of {s.canary + s.stable}" for s in at_min),
        ", ".join(ranges),
    ]


def _validate(tmp_path: Path, serving: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    doc = load_stack_doc("prod")
    doc["config"]["mlops-platform:workloads"]["serving"].update(serving)
    path = tmp_path / "Pulumi.canary.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return subprocess.run(
        [sys.executable, "-m", "mlops_infra.tooling.cli", "validate", str(path)],
        capture_output=True,
        text=True,
    )


def test_a_weight_the_replicas_cannot_realise_is_a_config_error(tmp_path: Path) -> None:
    result = _validate(tmp_path, {"canaryWeights": [5, 25, 50]})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert "mlops-platform:workloads.serving.canaryWeights[0]: got 5:" in line
    assert "25.0 % of the traffic" in line and "realisable with 3 replica(s): 25, 33, 50, 67, 75" in line
    assert _validate(tmp_path, {"canaryWeights": [50, 25]}).returncode == 2
    assert _validate(tmp_path, {"canaryWeights": [33, 67]}).returncode == 0
    # 20 replicas make the classic 5 % canary real
    assert (
        _validate(tmp_path, {"replicas": 20, "maxReplicas": 40, "canaryWeights": [5, 25, 50]}).returncode == 0
    )


def test_configured_weights_reach_the_rollout() -> None:
    canary = _kind(_plan(replicas=3, canary_weights=(33, 67)), "Rollout")["spec"]["strategy"]["canary"]
    assert [s["setWeight"] for s in canary["steps"] if "setWeight" in s] == [33, 67, 100]
    with pytest.raises(ValueError, match=r"canary weights \[5\] with 3 replicas"):
        _plan(replicas=3, canary_weights=(5,))
