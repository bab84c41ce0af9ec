"""Deploys drift-triggered retraining for one model: the training Job template the triggers create Jobs from,
a scheduled retraining CronJob, drift-monitor and data-volume CronJobs, and the Alertmanager webhook receiver,
with least-privilege RBAC (the triggers may only create and read Jobs) and restricted pods throughout.

The containers run `workloads/retraining` (`python -m retrain_job <command>`, the image's entry point); the
env vars and paths below are the ones `retrain_job.cli` / `retrain_job.k8s` read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from mlops_infra.components.accelerators import accelerator
from mlops_infra.components.k8s.cluster import ClusterHandle
from mlops_infra.components.k8s.security import restricted_container_security, restricted_pod_security

RUN_AS_USER = 10001
WEBHOOK_PORT = 8080
WEBHOOK_SERVICE = "retraining-webhook"  # monitoring posts to http://retraining-webhook.<ns>.svc:8080/alerts
WEBHOOK_PATH = "/alerts"  # the route retrain_job.webhook serves
WEBHOOK_TOKEN_SECRET = "retraining-webhook-token"
TOKEN_MOUNT_SKIP = (
    "CKV_K8S_38=creates retraining Jobs through the Kubernetes API (Role: jobs create/get/list/watch)"
)
WEBHOOK_TOKEN_KEY = "token"
TRIGGER_SA = "retraining-trigger"
TRAINING_SA = "retraining"  # retrain_job.k8s.JobSettings' default service account
JOB_TEMPLATE_CONFIGMAP = "retraining-job-template"
JOB_TEMPLATE_DIR = "/etc/retraining"
JOB_TEMPLATE_FILE = "job-template.yaml"
DATA_MOUNT = "/data"
DATA_CLAIM_LABEL = "mlops.platform/data-claim"  # pods that mount the data claim share a node
# Labels retrain_job.k8s selects running training Jobs by (APP_LABEL=APP, MODEL_LABEL): a scheduled run
# carries them so a trigger does not start a second one; trigger pods must NOT carry them.
APP_LABEL, APP = "app.kubernetes.io/name", "retraining"
MODEL_LABEL, TRIGGER_LABEL = "mlops.dev/model", "mlops.dev/trigger"
# Same rule as retrain_job.k8s.MODEL_NAME_RE (the test checks they agree): a DNS label, at most 40 characters.
MODEL_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
CRON_RE = re.compile(r"^\S+(\s+\S+){4}$")
JOB_ROLE_RULES: list[dict[str, list[str]]] = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch"]}
]


@dataclass(frozen=True)
class RetrainingArgs:
    cluster: ClusterHandle
    model: str
    image: pulumi.Input[str]  # pinned reference (digest), e.g. WorkloadImage.ref
    tracking_uri: pulumi.Input[str]
    pushgateway_url: pulumi.Input[str]
    namespace: str = "retraining"
    schedule: str = "0 3 * * 1"  # scheduled retraining (config workloads.retraining.schedule)
    drift_check_schedule: str = "*/30 * * * *"
    drift_threshold: float = 0.25
    min_new_labelled_rows: int = 50_000
    volume_check_schedule: str = "15 * * * *"
    gpu: bool = False
    gpus: int = 1
    webhook_replicas: int = 1
    # Training pod size and limits.
    cpu: str = "2"
    memory: str = "4Gi"
    active_deadline_seconds: int = 3 * 3600
    backoff_limit: int = 1
    ttl_seconds_after_finished: int = 86_400
    job_bucket_seconds: int = 3600  # one trigger-created Job per model per bucket (deterministic names)
    # Where the CronJobs and training read data: a PersistentVolumeClaim mounted read-only at /data
    # (created here when `data_claim_size` is set, otherwise it must exist), and the paths inside it.
    data_claim: str | None = "retraining-data"
    data_claim_size: str | None = None
    data_storage_class: str | None = None
    protect_data: bool = False  # prod: a mistaken destroy must not delete the training data
    training_data: str = f"{DATA_MOUNT}/training"
    serving_inputs: str = f"{DATA_MOUNT}/serving-inputs"
    labelled_data: str = f"{DATA_MOUNT}/labelled"
    # Bearer token Alertmanager sends; generated when not given. Mirrored into `alertmanager_namespace` (a
    # Secret Alertmanager mounts) unless that is None.
    webhook_token: pulumi.Input[str] | None = None
    alertmanager_namespace: str | None = "monitoring"
    monitoring_namespace: str = "monitoring"  # the only namespace allowed to reach the webhook
    starting_deadline_seconds: int = 600
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if not MODEL_NAME_RE.match(self.model):
            problems.append(f"model {self.model!r}: lowercase DNS label, at most 40 characters")
        for key in ("schedule", "drift_check_schedule", "volume_check_schedule"):
            if not CRON_RE.match(getattr(self, key).strip()):
                problems.append(f"{key} {getattr(self, key)!r}: a cron expression with five fields")
        if not self.drift_threshold > 0:
            problems.append("drift_threshold must be > 0")
        if self.min_new_labelled_rows < 1:
            problems.append("min_new_labelled_rows must be >= 1")
        if self.webhook_replicas < 1 or self.gpus < 1:
            problems.append("webhook_replicas and gpus must be >= 1")
        if self.active_deadline_seconds < 60 or self.backoff_limit < 0:
            problems.append("active_deadline_seconds must be >= 60 and backoff_limit >= 0")
        if problems:
            raise ValueError("invalid RetrainingArgs: " + "; ".join(problems))


def _data_volume(
    args: RetrainingArgs, with_data: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts): a writable /tmp (read-only root), and the data claim read-only when there is one."""
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    if args.data_claim and with_data:
        volumes.append(
            {"name": "data", "persistentVolumeClaim": {"claimName": args.data_claim, "readOnly": True}}
        )
        mounts.append({"name": "data", "mountPath": DATA_MOUNT, "readOnly": True})
    return volumes, mounts


def _mounts_data(args: RetrainingArgs, spec: dict[str, Any]) -> bool:
    claims = {(v.get("persistentVolumeClaim") or {}).get("claimName") for v in spec.get("volumes", [])}
    return bool(args.data_claim) and args.data_claim in claims


def share_data_node(args: RetrainingArgs, spec: dict[str, Any], labels: dict[str, str]) -> None:
    """Keep every pod that mounts the ReadWriteOnce data claim on one node.

    A ReadWriteOnce volume attaches to one node at a time: a second pod on another node stalls on a
    multi-attach error (the drift check and the Monday retrain start at the same minute). Each such pod
    carries DATA_CLAIM_LABEL and requires a node that already runs a pod with it; the first one (no match
    yet, but matching its own term) goes anywhere (kube-scheduler's InterPodAffinity). With GPU training,
    the other pods tolerate the GPU taint so they can join a training node instead of waiting hours."""
    if not _mounts_data(args, spec):
        return
    labels[DATA_CLAIM_LABEL] = str(args.data_claim)
    term = {
        "labelSelector": {"matchLabels": {DATA_CLAIM_LABEL: str(args.data_claim)}},
        "topologyKey": "kubernetes.io/hostname",
    }
    spec["affinity"] = {
        **spec.get("affinity", {}),
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]},
    }
    gpu = accelerator("gpu", args.cluster.cloud) if args.gpu else None
    if gpu is not None and gpu.toleration() not in spec.get("tolerations", []):
        # A CPU pod may join the training node, but prefers any other node when no training runs.
        key, value = gpu.selector
        away = (
            {"key": key, "operator": "NotIn", "values": [value]}
            if value
            else {"key": key, "operator": "DoesNotExist"}
        )
        spec["tolerations"] = [*spec.get("tolerations", []), gpu.toleration()]
        spec["affinity"]["nodeAffinity"] = {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "preference": {"matchExpressions": [away]}}
            ]
        }


def training_pod_spec(
    args: RetrainingArgs, image: str, tracking_uri: str, pushgateway_url: str, model: str
) -> dict[str, Any]:
    """The training pod: `python -m retrain_job run`, no Kubernetes API token, optionally on a GPU node."""
    volumes, mounts = _data_volume(args)
    resources: dict[str, Any] = {
        "requests": {"cpu": args.cpu, "memory": args.memory},
        "limits": {"memory": args.memory},
    }
    spec: dict[str, Any] = {
        "serviceAccountName": TRAINING_SA,
        "automountServiceAccountToken": False,  # training needs no Kubernetes API access
        "restartPolicy": "Never",
        "securityContext": restricted_pod_security(RUN_AS_USER),
        "containers": [
            {
                "name": "retrain",
                "image": image,
                "args": ["run", "--model", model],
                "env": [
                    {"name": "MLFLOW_TRACKING_URI", "value": tracking_uri},
                    {"name": "MODEL_NAME", "value": model},
                    {"name": "PUSHGATEWAY_URL", "value": pushgateway_url},
                    {"name": "RETRAIN_DATA", "value": args.training_data},
                    {"name": "DRIFT_THRESHOLD", "value": str(args.drift_threshold)},
                    # The report and MLflow's temporary files go to the writable /tmp, not the read-only root.
                    {"name": "RETRAIN_REPORT", "value": "/tmp/retrain-report.json"},
                    {"name": "HOME", "value": "/tmp"},
                ],
                "resources": resources,
                "securityContext": restricted_container_security(),
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }
    if args.gpu:
        accelerator("gpu", args.cluster.cloud).place(spec, resources, args.gpus)
    return spec


def _job_spec(args: RetrainingArgs, pod: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    pod_labels = dict(labels)
    share_data_node(args, pod, pod_labels)
    return {
        "backoffLimit": args.backoff_limit,
        "activeDeadlineSeconds": args.active_deadline_seconds,
        "ttlSecondsAfterFinished": args.ttl_seconds_after_finished,
        "template": {"metadata": {"labels": pod_labels}, "spec": pod},
    }


def job_template(args: RetrainingArgs, image: str, tracking_uri: str, pushgateway_url: str) -> dict[str, Any]:
    """The Job body the triggers create (RETRAIN_JOB_TEMPLATE): `{model}` is substituted by retrain_job.k8s,
    which also sets the name, namespace and the concurrency labels."""
    labels = {"app.kubernetes.io/component": "training", "app.kubernetes.io/part-of": "mlops-platform"}
    pod = training_pod_spec(args, image, tracking_uri, pushgateway_url, "{model}")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"labels": labels},
        "spec": _job_spec(args, pod, labels),
    }


def trigger_pod_spec(
    args: RetrainingArgs,
    container: dict[str, Any],
    extra_volumes: list[dict[str, Any]] | None = None,
    with_data: bool = True,
) -> dict[str, Any]:
    """Pods that create Jobs: the trigger service account and its token, the Job template mounted."""
    volumes, mounts = _data_volume(args, with_data)
    volumes += [
        {"name": "job-template", "configMap": {"name": JOB_TEMPLATE_CONFIGMAP}},
        *(extra_volumes or []),
    ]
    mounts.append({"name": "job-template", "mountPath": JOB_TEMPLATE_DIR, "readOnly": True})
    env: list[dict[str, Any]] = [
        {"name": "MLFLOW_TRACKING_URI", "value": args.tracking_uri},
        {"name": "MODEL_NAME", "value": args.model},
        {"name": "PUSHGATEWAY_URL", "value": args.pushgateway_url},
        {"name": "K8S_NAMESPACE", "value": args.namespace},
        {"name": "RETRAIN_JOB_TEMPLATE", "value": f"{JOB_TEMPLATE_DIR}/{JOB_TEMPLATE_FILE}"},
        {"name": "RETRAIN_SERVICE_ACCOUNT", "value": TRAINING_SA},
        {"name": "RETRAIN_BUCKET_SECONDS", "value": str(args.job_bucket_seconds)},
        {"name": "HOME", "value": "/tmp"},
    ]
    main = {
        **container,
        "image": args.image,
        "env": env + container.get("env", []),
        "securityContext": restricted_container_security(),
        "volumeMounts": mounts + container.get("volumeMounts", []),
    }
    return {
        "serviceAccountName": TRIGGER_SA,
        "automountServiceAccountToken": True,  # creates Jobs through the API (Role: jobs create/get/list/watch)
        "securityContext": restricted_pod_security(RUN_AS_USER),
        "containers": [main],
        "volumes": volumes,
    }


def cron_spec(
    args: RetrainingArgs,
    schedule: str,
    pod: dict[str, Any],
    job_labels: dict[str, str],
    job_spec: dict[str, Any],
) -> dict[str, Any]:
    """Never two runs at once, missed runs older than the deadline skipped, a short history kept."""
    job_labels = dict(job_labels)
    share_data_node(args, pod, job_labels)
    return {
        "schedule": schedule,
        "timeZone": "Etc/UTC",
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": args.starting_deadline_seconds,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {
            "metadata": {"labels": job_labels},
            "spec": {**job_spec, "template": {"metadata": {"labels": job_labels}, "spec": pod}},
        },
    }


def _trigger_container(name: str, command: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "args": command,
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
    }


class Retraining(pulumi.ComponentResource):
    """Retraining of one model. One per namespace: the webhook Service name is fixed (`retraining-webhook`).

    `self.webhook_url` is what Alertmanager posts to; `self.webhook_token` the bearer token it must send.
    """

    def __init__(self, name: str, args: RetrainingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:k8s:Retraining", name, None, opts)
        ns = args.namespace
        part_of = {"app.kubernetes.io/part-of": "mlops-platform", MODEL_LABEL: args.model, **args.labels}
        child = args.cluster.opts(self)

        def meta(
            obj_name: str, component: str, namespace: str = ns, api_client: bool = False
        ) -> dict[str, Any]:
            metadata: dict[str, Any] = {
                "name": obj_name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/component": component, **part_of},
            }
            if api_client:  # these pods create Jobs through the API, so they mount their token on purpose
                metadata["annotations"] = {"checkov.io/skip1": TOKEN_MOUNT_SKIP}
            return metadata

        # Identities and RBAC: the triggers may create and read Jobs in this namespace, nothing else.
        self.trigger_account = k8s.core.v1.ServiceAccount(
            f"{name}-trigger-sa",
            metadata=meta(TRIGGER_SA, "trigger"),
            automount_service_account_token=False,
            opts=child,
        )
        self.training_account = k8s.core.v1.ServiceAccount(
            f"{name}-training-sa",
            metadata=meta(TRAINING_SA, "training"),
            automount_service_account_token=False,
            opts=child,
        )
        self.role = k8s.rbac.v1.Role(
            f"{name}-job-launcher",
            metadata=meta("retraining-job-launcher", "trigger"),
            rules=JOB_ROLE_RULES,
            opts=child,
        )
        self.role_binding = k8s.rbac.v1.RoleBinding(
            f"{name}-job-launcher-binding",
            metadata=meta("retraining-job-launcher", "trigger"),
            role_ref={
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "retraining-job-launcher",
            },
            subjects=[{"kind": "ServiceAccount", "name": TRIGGER_SA, "namespace": ns}],
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.role])),
        )

        if args.data_claim and args.data_claim_size:
            self.data_claim: k8s.core.v1.PersistentVolumeClaim | None = k8s.core.v1.PersistentVolumeClaim(
                f"{name}-data",
                metadata=meta(args.data_claim, "data"),
                spec={
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": args.data_claim_size}},
                    **({"storageClassName": args.data_storage_class} if args.data_storage_class else {}),
                },
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=args.protect_data)),
            )
        else:
            self.data_claim = None

        template = pulumi.Output.all(args.image, args.tracking_uri, args.pushgateway_url).apply(
            lambda v: yaml.safe_dump(job_template(args, str(v[0]), str(v[1]), str(v[2])), sort_keys=False)
        )
        self.job_template = k8s.core.v1.ConfigMap(
            f"{name}-job-template",
            metadata=meta(JOB_TEMPLATE_CONFIGMAP, "training"),
            data={JOB_TEMPLATE_FILE: template},
            opts=child,
        )

        # Scheduled retraining runs the training pod directly; its Jobs carry the labels the triggers look for,
        # so a drift or volume trigger does not start a second training of the same model meanwhile.
        scheduled_labels = {
            APP_LABEL: APP,
            "app.kubernetes.io/component": "training",
            MODEL_LABEL: args.model,
            TRIGGER_LABEL: "schedule",
        }
        training_pod = pulumi.Output.all(args.image, args.tracking_uri, args.pushgateway_url).apply(
            lambda v: training_pod_spec(args, str(v[0]), str(v[1]), str(v[2]), args.model)
        )
        self.scheduled = k8s.batch.v1.CronJob(
            f"{name}-scheduled",
            metadata=meta(f"{args.model}-retrain", "training"),
            spec=training_pod.apply(
                lambda pod: cron_spec(args, args.schedule, pod, scheduled_labels, _job_spec(args, pod, {}))
            ),
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=[self.training_account])
            ),
        )

        trigger_job = {"backoffLimit": 0, "activeDeadlineSeconds": 1800, "ttlSecondsAfterFinished": 86_400}
        triggers = {
            "drift": (
                args.drift_check_schedule,
                [
                    "drift-monitor",
                    "--model",
                    args.model,
                    "--current",
                    args.serving_inputs,
                    "--threshold",
                    str(args.drift_threshold),
                    "--report",
                    "/tmp/drift-report.json",
                ],
            ),
            "volume": (
                args.volume_check_schedule,
                [
                    "volume-check",
                    "--model",
                    args.model,
                    "--labelled",
                    args.labelled_data,
                    "--min-rows",
                    str(args.min_new_labelled_rows),
                    "--report",
                    "/tmp/volume-report.json",
                ],
            ),
        }
        self.trigger_cronjobs: dict[str, k8s.batch.v1.CronJob] = {}
        for kind, (schedule, command) in triggers.items():
            # Not APP_LABEL=retraining: the trigger's own Job must not count as a running training.
            labels = {
                APP_LABEL: "retraining-trigger",
                "app.kubernetes.io/component": f"{kind}-check",
                MODEL_LABEL: args.model,
            }
            pod = trigger_pod_spec(args, _trigger_container(kind, command))
            pod["restartPolicy"] = "Never"
            self.trigger_cronjobs[kind] = k8s.batch.v1.CronJob(
                f"{name}-{kind}",
                metadata=meta(f"{args.model}-{kind}", f"{kind}-check", api_client=True),
                spec=cron_spec(args, schedule, pod, labels, trigger_job),
                opts=pulumi.ResourceOptions.merge(
                    child,
                    pulumi.ResourceOptions(
                        depends_on=[self.role_binding, self.job_template, self.trigger_account]
                    ),
                ),
            )

        # The Alertmanager webhook receiver.
        token: pulumi.Input[str] = (
            args.webhook_token
            if args.webhook_token is not None
            else random.RandomPassword(
                f"{name}-webhook-token",
                length=48,
                special=False,
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["result"]),
            ).result
        )
        self.webhook_token = pulumi.Output.secret(token)
        self.token_secrets = [
            k8s.core.v1.Secret(
                f"{name}-webhook-token-{where}",
                metadata=meta(WEBHOOK_TOKEN_SECRET, "webhook", target),
                type="Opaque",
                string_data={WEBHOOK_TOKEN_KEY: self.webhook_token},
                opts=child,
            )
            for where, target in (("local", ns), ("alertmanager", args.alertmanager_namespace))
            if target
        ]
        webhook_labels = {
            APP_LABEL: "retraining-webhook",
            "app.kubernetes.io/instance": f"{args.model}-webhook",
        }
        container = _trigger_container(
            "webhook", ["webhook", "--port", str(WEBHOOK_PORT), "--models", args.model]
        )
        container["resources"] = {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        }
        container["ports"] = [{"name": "http", "containerPort": WEBHOOK_PORT, "protocol": "TCP"}]
        container["env"] = [
            {"name": "WEBHOOK_TOKEN_FILE", "value": f"/etc/retraining-webhook/{WEBHOOK_TOKEN_KEY}"}
        ]
        container["volumeMounts"] = [
            {"name": "webhook-token", "mountPath": "/etc/retraining-webhook", "readOnly": True}
        ]
        container["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5}
        container["livenessProbe"] = {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        }
        token_volume = {"name": "webhook-token", "secret": {"secretName": WEBHOOK_TOKEN_SECRET}}
        pod = trigger_pod_spec(args, container, [token_volume], with_data=False)
        pod["terminationGracePeriodSeconds"] = 30
        pod["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": webhook_labels},
            }
        ]
        self.webhook = k8s.apps.v1.Deployment(
            f"{name}-webhook",
            metadata=meta(WEBHOOK_SERVICE, "webhook", api_client=True),
            spec={
                "replicas": args.webhook_replicas,
                "revisionHistoryLimit": 3,
                "selector": {"matchLabels": webhook_labels},
                "template": {
                    "metadata": {"labels": {**webhook_labels, MODEL_LABEL: args.model}},
                    "spec": pod,
                },
            },
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    depends_on=[
                        self.role_binding,
                        self.job_template,
                        self.trigger_account,
                        *self.token_secrets,
                    ]
                ),
            ),
        )
        self.webhook_service = k8s.core.v1.Service(
            f"{name}-webhook-svc",
            metadata=meta(WEBHOOK_SERVICE, "webhook"),
            spec={
                "type": "ClusterIP",
                "selector": webhook_labels,
                "ports": [{"name": "http", "port": WEBHOOK_PORT, "targetPort": "http", "protocol": "TCP"}],
            },
            opts=child,
        )
        self.webhook_pdb = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-webhook-pdb",
            metadata=meta(WEBHOOK_SERVICE, "webhook"),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": webhook_labels}},
            opts=child,
        )
        self.webhook_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-webhook-ingress",
            metadata=meta(f"{WEBHOOK_SERVICE}-ingress", "webhook"),
            spec={
                "podSelector": {"matchLabels": webhook_labels},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": args.monitoring_namespace}
                                }
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": WEBHOOK_PORT}],
                    }
                ],
            },
            opts=child,
        )
        self.webhook_url = f"http://{WEBHOOK_SERVICE}.{ns}.svc:{WEBHOOK_PORT}{WEBHOOK_PATH}"
        self.register_outputs({"webhookUrl": self.webhook_url, "webhookToken": self.webhook_token})
