"""The retraining deployer: least-privilege RBAC, never-overlapping CronJobs on the configured schedules,
restricted pods, a Job template the trigger code accepts, the GPU variant, the webhook reachable only from
monitoring on the path Alertmanager posts to, and every object valid against the strict schemas."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_infra.components.k8s.monitoring import RETRAIN_WEBHOOK_URL
from mlops_infra.components.k8s.retraining import MODEL_NAME_RE, Retraining, RetrainingArgs
from mlops_infra.components.local.cluster import LocalCluster, LocalClusterArgs
from mlops_infra.tooling.offline import evaluate
from mlops_infra.tooling.plan import SECRET, Plan, plan_json
from mlops_infra.tooling.render import manifest
from retrain_job import k8s as retrain_k8s
from retrain_job.webhook import create_app

from plan_support import STACKS
from test_render import validate_object

IMAGE = "registry.example/retraining@sha256:" + "b" * 64
TRACKING = "http://mlflow.mlflow.svc:5000"
PUSHGATEWAY = "http://pushgateway.monitoring.svc:9091"


def _plan(cloud: str = "local", **overrides: Any) -> Plan:
    def program() -> dict[str, Any]:
        cluster = LocalCluster("c", LocalClusterArgs())
        args = RetrainingArgs(
            cluster=dataclasses.replace(cluster.handle, cloud=cloud),
            model="fraud",
            image=IMAGE,
            tracking_uri=TRACKING,
            pushgateway_url=PUSHGATEWAY,
            **overrides,
        )
        retraining = Retraining("fraud-retraining", args)
        return {"webhookUrl": retraining.webhook_url, "token": retraining.webhook_token}

    return evaluate(STACKS / "Pulumi.local.yaml", program=program)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return _plan(
        schedule="0 4 * * *",
        drift_check_schedule="*/20 * * * *",
        drift_threshold=0.2,
        min_new_labelled_rows=1234,
        webhook_replicas=2,
    )


@pytest.fixture(scope="module")
def gpu_plan() -> Plan:
    return _plan("aws", gpu=True, gpus=2)


def _objects(plan: Plan, kind: str) -> list[dict[str, Any]]:
    return [manifest(r) for r in plan.k8s_objects() if r.inputs.get("kind") == kind]


def _one(plan: Plan, kind: str) -> dict[str, Any]:
    found = _objects(plan, kind)
    assert len(found) == 1, kind
    return found[0]


def _cron(plan: Plan, name: str) -> dict[str, Any]:
    (found,) = [c for c in _objects(plan, "CronJob") if c["metadata"]["name"] == name]
    return found


def _template(plan: Plan) -> dict[str, Any]:
    data = _one(plan, "ConfigMap")["data"]
    doc = yaml.safe_load(data["job-template.yaml"])
    assert isinstance(doc, dict)
    return doc


def _pod_specs(plan: Plan) -> list[dict[str, Any]]:
    pods = [c["spec"]["jobTemplate"]["spec"]["template"]["spec"] for c in _objects(plan, "CronJob")]
    pods += [d["spec"]["template"]["spec"] for d in _objects(plan, "Deployment")]
    pods.append(_template(plan)["spec"]["template"]["spec"])
    return pods


def test_trigger_role_grants_only_job_creation_and_reads(plan: Plan) -> None:
    role = _one(plan, "Role")
    assert role["metadata"]["namespace"] == "retraining"
    assert role["rules"] == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch"]}
    ]
    binding = _one(plan, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "retraining-trigger", "namespace": "retraining"}
    ]
    assert not _objects(plan, "ClusterRole") and not _objects(plan, "ClusterRoleBinding")
    accounts = {sa["metadata"]["name"]: sa for sa in _objects(plan, "ServiceAccount")}
    assert set(accounts) == {"retraining-trigger", "retraining"}
    assert all(sa["automountServiceAccountToken"] is False for sa in accounts.values())


def test_only_trigger_pods_get_an_api_token(plan: Plan) -> None:
    for pod in _pod_specs(plan):
        token = pod["automountServiceAccountToken"]
        if pod["serviceAccountName"] == "retraining":
            assert token is False
        else:
            assert pod["serviceAccountName"] == "retraining-trigger" and token is True


def test_cronjobs_never_overlap_and_follow_the_args(plan: Plan) -> None:
    crons = {c["metadata"]["name"]: c["spec"] for c in _objects(plan, "CronJob")}
    assert set(crons) == {"fraud-retrain", "fraud-drift", "fraud-volume"}
    for spec in crons.values():
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["timeZone"] == "Etc/UTC"
        assert spec["startingDeadlineSeconds"] > 0
        assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    assert crons["fraud-retrain"]["schedule"] == "0 4 * * *"
    assert crons["fraud-drift"]["schedule"] == "*/20 * * * *"
    drift_args = crons["fraud-drift"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert drift_args[:3] == ["drift-monitor", "--model", "fraud"]
    assert drift_args[drift_args.index("--threshold") + 1] == "0.2"
    volume_args = crons["fraud-volume"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert volume_args[volume_args.index("--min-rows") + 1] == "1234"
    # The CLI parses them: a renamed flag would otherwise only show up as a crash-looping CronJob.
    from retrain_job.cli import build_parser

    parsed = build_parser().parse_args(drift_args)
    assert parsed.threshold == 0.2 and parsed.current == "/data/serving-inputs"
    assert build_parser().parse_args(volume_args).min_rows == 1234


def test_scheduled_runs_count_as_running_for_the_triggers_and_triggers_do_not(plan: Plan) -> None:
    """retrain_job.k8s refuses a new Job while one labelled app=retraining,model=<m> is unfinished: the
    scheduled training must match that selector, the trigger's own Job must not (or it blocks itself)."""
    selector = {retrain_k8s.APP_LABEL: retrain_k8s.APP, retrain_k8s.MODEL_LABEL: "fraud"}

    def matches(cron: dict[str, Any]) -> bool:
        labels = cron["spec"]["jobTemplate"]["metadata"]["labels"]
        return all(labels.get(k) == v for k, v in selector.items())

    assert matches(_cron(plan, "fraud-retrain"))
    assert not matches(_cron(plan, "fraud-drift")) and not matches(_cron(plan, "fraud-volume"))


def test_every_container_is_restricted(plan: Plan, gpu_plan: Plan) -> None:
    for pods in (_pod_specs(plan), _pod_specs(gpu_plan)):
        assert len(pods) == 5
        for pod in pods:
            sc = pod["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            tmp = [v for v in pod["volumes"] if v["name"] == "tmp"]
            assert tmp and "emptyDir" in tmp[0]
            for c in pod["containers"]:
                csc = c["securityContext"]
                assert csc["runAsNonRoot"] is True and csc["readOnlyRootFilesystem"] is True
                assert csc["allowPrivilegeEscalation"] is False and csc["capabilities"] == {"drop": ["ALL"]}
                assert {"mountPath": "/tmp", "name": "tmp"} in c["volumeMounts"]
                assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]
                assert c["image"] == IMAGE


def test_job_template_is_what_the_trigger_code_builds_jobs_from(plan: Plan, tmp_path: Path) -> None:
    template_file = tmp_path / "job-template.yaml"
    template_file.write_text(_one(plan, "ConfigMap")["data"]["job-template.yaml"])
    # The path the trigger pods are told to read it from is where the ConfigMap is mounted.
    pod = _cron(plan, "fraud-drift")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "job-template")
    volume = next(v for v in pod["volumes"] if v["name"] == "job-template")
    assert env["RETRAIN_JOB_TEMPLATE"] == f"{mount['mountPath']}/job-template.yaml"
    assert volume["configMap"]["name"] == _one(plan, "ConfigMap")["metadata"]["name"]

    settings = retrain_k8s.JobSettings(
        template_path=str(template_file),
        service_account=env["RETRAIN_SERVICE_ACCOUNT"],
        bucket_seconds=int(env["RETRAIN_BUCKET_SECONDS"]),
        env={},
    )
    job = retrain_k8s.build_job("fraud", "drift", "overall PSI 0.31 > 0.2", settings, env["K8S_NAMESPACE"])
    validate_object(job, "1.33")
    spec = job["spec"]
    assert spec["backoffLimit"] == 1 and spec["ttlSecondsAfterFinished"] == 86_400
    assert spec["activeDeadlineSeconds"] == 3 * 3600
    training = spec["template"]["spec"]
    assert (
        training["serviceAccountName"] == "retraining" and training["automountServiceAccountToken"] is False
    )
    (container,) = training["containers"]
    assert container["args"] == ["run", "--model", "fraud"]
    container_env = {e["name"]: e["value"] for e in container["env"]}
    assert container_env["MLFLOW_TRACKING_URI"] == TRACKING
    assert container_env["PUSHGATEWAY_URL"] == PUSHGATEWAY
    assert container_env["MODEL_NAME"] == "fraud"
    assert container_env["RETRAIN_REPORT"].startswith("/tmp/")  # the root filesystem is read-only
    assert "tolerations" not in training and "nvidia.com/gpu" not in container["resources"]["limits"]


def test_gpu_variant_tolerates_selects_and_requests(gpu_plan: Plan) -> None:
    training_pods = [_template(gpu_plan)["spec"]["template"]["spec"]]
    training_pods.append(_cron(gpu_plan, "fraud-retrain")["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    for pod in training_pods:
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"] == [
            {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}
        ]
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    # Triggers are small: they prefer non-GPU nodes, and tolerate the GPU taint only to join a running
    # training pod on the node that holds the data volume.
    for name in ("fraud-drift", "fraud-volume"):
        pod = _cron(gpu_plan, name)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert "resources" not in pod or "nvidia.com/gpu" not in str(pod["containers"][0]["resources"])
        preferred = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert preferred == [
            {
                "weight": 100,
                "preference": {
                    "matchExpressions": [
                        {"key": "nvidia.com/gpu.present", "operator": "NotIn", "values": ["true"]}
                    ]
                },
            }
        ]
    webhook = _one(gpu_plan, "Deployment")["spec"]["template"]["spec"]
    assert "tolerations" not in webhook  # it does not mount the data claim


def test_webhook_serves_the_url_alertmanager_posts_to(plan: Plan) -> None:
    assert plan.outputs["webhookUrl"] == RETRAIN_WEBHOOK_URL
    service = _one(plan, "Service")
    assert service["metadata"]["name"] == "retraining-webhook"
    (port,) = service["spec"]["ports"]
    assert port["port"] == 8080 and port["targetPort"] == "http"
    path = RETRAIN_WEBHOOK_URL.split(":8080", 1)[1]

    def never(model: str, trigger: str, reason: str) -> retrain_k8s.LaunchResult:
        raise AssertionError("no request is made")

    routes = {getattr(r, "path", None) for r in create_app(never, token="t").routes}
    assert path in routes
    deployment = _one(plan, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    args = container["args"]
    assert args[0] == "webhook" and args[args.index("--models") + 1] == "fraud"
    assert "--allow-unauthenticated" not in args
    # Only the checks read the data claim; the webhook does not mount it.
    assert "/data" not in {m["mountPath"] for m in container["volumeMounts"]}
    drift = _cron(plan, "fraud-drift")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "data", "mountPath": "/data", "readOnly": True} in drift["volumeMounts"]
    pdb = _one(plan, "PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_webhook_token_is_a_secret_mounted_from_a_secret(plan: Plan) -> None:
    secrets = {s["metadata"]["namespace"]: s for s in _objects(plan, "Secret")}
    assert set(secrets) == {"retraining", "monitoring"}
    for secret in secrets.values():
        assert secret["metadata"]["name"] == "retraining-webhook-token"
        assert secret["stringData"] == {"token": SECRET}
    assert plan.outputs["token"] == SECRET
    pod = _one(plan, "Deployment")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    volume = next(v for v in pod["volumes"] if v["name"] == "webhook-token")
    assert volume["secret"]["secretName"] == "retraining-webhook-token"
    assert env["WEBHOOK_TOKEN_FILE"] == "/etc/retraining-webhook/token"
    password = next(r for r in plan.resources if r.type == "random:index/randomPassword:RandomPassword")
    assert password.inputs["length"] == 48 and password.inputs["special"] is False
    # The offline mock's generated value (a hex digest) appears nowhere in the plan in plain text.
    assert not re.search(r"\b[0-9a-f]{48}\b", json.dumps(plan_json(plan)))


def test_webhook_ingress_only_from_monitoring(plan: Plan) -> None:
    policy = _one(plan, "NetworkPolicy")["spec"]
    assert policy["podSelector"] == {
        "matchLabels": _one(plan, "Deployment")["spec"]["selector"]["matchLabels"]
    }
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [
        {
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            "ports": [{"protocol": "TCP", "port": 8080}],
        }
    ]


def test_every_object_is_namespaced_named_and_validates_strictly(plan: Plan, gpu_plan: Plan) -> None:
    for p in (plan, gpu_plan):
        objects = p.k8s_objects()
        assert len(objects) >= 14
        for resource in objects:
            obj = manifest(resource)
            assert obj["metadata"]["name"] and obj["metadata"]["namespace"] in {"retraining", "monitoring"}
            assert resource.provider, f"{resource.name} uses the default provider"
            validate_object(obj, "1.33")


def test_model_name_rule_matches_the_trigger_code() -> None:
    for name in ("fraud", "a", "churn-v2", "x" * 40, "x" * 41, "Fraud", "-a", "a-", "a_b", ""):
        assert bool(MODEL_NAME_RE.match(name)) == retrain_k8s.valid_model_name(name), name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model": "Fraud_1"}, "model"),
        ({"schedule": "daily"}, "schedule"),
        ({"drift_threshold": 0.0}, "drift_threshold"),
        ({"min_new_labelled_rows": 0}, "min_new_labelled_rows"),
    ],
)
def test_bad_args_are_refused_with_a_clear_message(overrides: dict[str, Any], message: str) -> None:
    cluster = object()
    base: dict[str, Any] = {
        "cluster": cluster,
        "model": "fraud",
        "image": IMAGE,
        "tracking_uri": TRACKING,
        "pushgateway_url": PUSHGATEWAY,
    }
    with pytest.raises(ValueError, match=re.escape(message)):
        RetrainingArgs(**{**base, **overrides})
