"""Create retraining Jobs through the Kubernetes REST API (httpx, in-cluster service account).

No Kubernetes client library: two endpoints are enough (list Jobs by label, create a Job).
Concurrency guard, twice over: (1) refuse while an unfinished retraining Job for the model
exists (label-selector query), (2) name Jobs deterministically per time bucket, so a second
trigger in the same bucket gets 409 Conflict, which means "already running", not an error.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import yaml

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
APP_LABEL = "app.kubernetes.io/name"
APP = "retraining"
MODEL_LABEL = "mlops.dev/model"
TRIGGER_LABEL = "mlops.dev/trigger"
# the trigger's settings the training Job inherits (data location, gate, registry, metrics)
PASS_THROUGH_ENV = (
    "MLFLOW_TRACKING_URI",
    "PUSHGATEWAY_URL",
    "RETRAIN_DATA",
    "RETRAIN_HOLDOUT",
    "GATE_MIN_AUC",
    "GATE_MAX_LATENCY_MS",
    "GATE_MIN_IMPROVEMENT",
    "DRIFT_THRESHOLD",
    "RETRAIN_THREADS",
)
MODEL_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")


class K8sError(RuntimeError):
    """Kubernetes API problem with a user-facing message."""


def valid_model_name(name: str) -> bool:
    """Model names become label values and Job names: DNS-1123 label, at most 40 characters."""
    return bool(MODEL_NAME_RE.match(name))


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class K8sConfig:
    api_url: str
    token: str | None
    verify: str | bool
    namespace: str

    @classmethod
    def from_env(cls, api_url: str | None = None, namespace: str | None = None) -> K8sConfig:
        """In-cluster defaults; K8S_API_URL / K8S_TOKEN_FILE / K8S_CA_FILE / K8S_NAMESPACE override."""
        env = os.environ
        url = api_url or env.get("K8S_API_URL")
        if not url:
            host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise K8sError("no Kubernetes API: not in a cluster and K8S_API_URL is not set")
            url = f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
        token_file = Path(env.get("K8S_TOKEN_FILE", SA_DIR / "token"))
        token = token_file.read_text().strip() if token_file.is_file() else None
        ca = Path(env.get("K8S_CA_FILE", SA_DIR / "ca.crt"))
        ns_file = SA_DIR / "namespace"
        ns = (
            namespace
            or env.get("K8S_NAMESPACE")
            or (ns_file.read_text().strip() if ns_file.is_file() else "")
        )
        if not ns:
            raise K8sError("no namespace: set K8S_NAMESPACE or run in a pod with a service account")
        if url.startswith("http://") and not _is_loopback(url):
            raise K8sError(f"refusing plain-HTTP Kubernetes API {url}: only loopback may skip TLS")
        return cls(
            api_url=url.rstrip("/"), token=token, verify=str(ca) if ca.is_file() else True, namespace=ns
        )


@dataclass
class JobSettings:
    """What the created Job runs; defaults are the secure ones (non-root, no API token mounted)."""

    image: str = field(default_factory=lambda: os.environ.get("RETRAIN_IMAGE", "mlops/retraining:latest"))
    service_account: str = field(
        default_factory=lambda: os.environ.get("RETRAIN_SERVICE_ACCOUNT", "retraining")
    )
    active_deadline_seconds: int = field(
        default_factory=lambda: int(os.environ.get("RETRAIN_ACTIVE_DEADLINE_SECONDS", "3600"))
    )
    backoff_limit: int = field(default_factory=lambda: int(os.environ.get("RETRAIN_BACKOFF_LIMIT", "1")))
    ttl_seconds_after_finished: int = 86_400
    bucket_seconds: int = field(default_factory=lambda: int(os.environ.get("RETRAIN_BUCKET_SECONDS", "3600")))
    run_as_user: int = 10001
    env: dict[str, str] = field(
        default_factory=lambda: {k: os.environ[k] for k in PASS_THROUGH_ENV if os.environ.get(k)}
    )
    template_path: str | None = field(default_factory=lambda: os.environ.get("RETRAIN_JOB_TEMPLATE") or None)


def job_name(model: str, bucket_seconds: int, now: float | None = None) -> str:
    """``retrain-<model>-<UTC start of the bucket>``: same bucket -> same name -> 409 on duplicates."""
    now = time.time() if now is None else now
    start = int(now // bucket_seconds) * bucket_seconds
    return f"retrain-{model}-{time.strftime('%Y%m%d%H%M', time.gmtime(start))}"


def default_template(s: JobSettings) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {},
        "spec": {
            "template": {
                "metadata": {},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,  # training needs no Kubernetes API access
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": s.run_as_user,
                        "runAsGroup": s.run_as_user,
                        "fsGroup": s.run_as_user,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "retrain",
                            "image": s.image,
                            "args": ["run", "--model", "{model}"],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "resources": {
                                "requests": {"cpu": "1", "memory": "2Gi"},
                                "limits": {"memory": "4Gi"},
                            },
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            }
        },
    }


def _substitute(obj: Any, model: str) -> Any:
    if isinstance(obj, str):
        return obj.replace("{model}", model)
    if isinstance(obj, list):
        return [_substitute(v, model) for v in obj]
    if isinstance(obj, dict):
        return {k: _substitute(v, model) for k, v in obj.items()}
    return obj


def build_job(
    model: str, trigger: str, reason: str, settings: JobSettings, namespace: str, now: float | None = None
) -> dict[str, Any]:
    """The Job body: template (file or built-in) + enforced name, labels, limits and non-root."""
    if not valid_model_name(model):
        raise K8sError(f"invalid model name {model!r}: lowercase DNS label, max 40 characters")
    if settings.template_path:
        text = Path(settings.template_path).read_text()
        template = yaml.safe_load(text)
        if not isinstance(template, dict) or template.get("kind") != "Job":
            raise K8sError(f"job template {settings.template_path} is not a Kubernetes Job")
    else:
        template = default_template(settings)
    job = _substitute(copy.deepcopy(template), model)
    labels = {
        APP_LABEL: APP,
        "app.kubernetes.io/component": "training",
        "app.kubernetes.io/managed-by": "retrain-job",
        MODEL_LABEL: model,
        TRIGGER_LABEL: trigger,
    }
    meta = job.setdefault("metadata", {})
    meta["name"] = job_name(model, settings.bucket_seconds, now)
    meta["namespace"] = namespace
    meta.setdefault("labels", {}).update(labels)
    meta.setdefault("annotations", {})["mlops.dev/reason"] = reason[:1000]
    spec = job.setdefault("spec", {})
    spec.setdefault("backoffLimit", settings.backoff_limit)
    spec.setdefault("activeDeadlineSeconds", settings.active_deadline_seconds)
    spec.setdefault("ttlSecondsAfterFinished", settings.ttl_seconds_after_finished)
    pod_tpl = spec.setdefault("template", {})
    pod_tpl.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    pod = pod_tpl.setdefault("spec", {})
    pod.setdefault("serviceAccountName", settings.service_account)
    pod.setdefault("restartPolicy", "Never")
    sc = pod.setdefault("securityContext", {})
    if sc.get("runAsNonRoot") is False or sc.get("runAsUser") == 0:
        raise K8sError("job template runs as root; retraining Jobs must run as non-root")
    sc["runAsNonRoot"] = True
    for c in pod.get("containers", []):
        csc = c.get("securityContext", {})
        if csc.get("runAsUser") == 0 or csc.get("privileged") or csc.get("runAsNonRoot") is False:
            raise K8sError(f"job template container {c.get('name')!r} runs as root or privileged")
        env = c.setdefault("env", [])
        present = {e.get("name") for e in env}
        env += [{"name": k, "value": v} for k, v in sorted(settings.env.items()) if k not in present]
    if not pod.get("containers"):
        raise K8sError("job template has no containers")
    return job


@dataclass
class LaunchResult:
    status: str  # created | already-running | error
    job_name: str | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "job": self.job_name, "detail": self.detail}


def _job_active(job: dict[str, Any]) -> bool:
    status = job.get("status") or {}
    if status.get("active"):
        return True
    for cond in status.get("conditions") or []:
        if cond.get("type") in {"Complete", "Failed"} and cond.get("status") == "True":
            return False
    return not status.get("completionTime")  # just created / pending: counts as running


class JobLauncher:
    def __init__(self, config: K8sConfig, settings: JobSettings | None = None, timeout: float = 10.0) -> None:
        self.config = config
        self.settings = settings or JobSettings()
        headers = {"Accept": "application/json"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._http = httpx.Client(
            base_url=config.api_url, headers=headers, verify=config.verify, timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    @property
    def _jobs_path(self) -> str:
        return f"/apis/batch/v1/namespaces/{self.config.namespace}/jobs"

    def active_jobs(self, model: str) -> list[str]:
        params = {"labelSelector": f"{APP_LABEL}={APP},{MODEL_LABEL}={model}"}
        resp = self._http.get(self._jobs_path, params=params)
        if resp.status_code != 200:
            raise K8sError(f"listing jobs failed: HTTP {resp.status_code}: {_reason(resp)}")
        return [j["metadata"]["name"] for j in resp.json().get("items", []) if _job_active(j)]

    def launch(self, model: str, trigger: str, reason: str, now: float | None = None) -> LaunchResult:
        """Create the retraining Job unless one is already running for this model."""
        try:
            job = build_job(model, trigger, reason, self.settings, self.config.namespace, now)
            active = self.active_jobs(model)
            if active:
                return LaunchResult(
                    "already-running", active[0], f"active retraining job(s): {', '.join(active)}"
                )
            resp = self._http.post(
                self._jobs_path, content=json.dumps(job), headers={"Content-Type": "application/json"}
            )
        except K8sError as exc:
            return LaunchResult("error", None, str(exc))
        except (OSError, yaml.YAMLError) as exc:  # unreadable / malformed template
            return LaunchResult("error", None, f"job template: {exc}")
        except httpx.HTTPError as exc:
            return LaunchResult("error", None, f"Kubernetes API unreachable: {exc}")
        name = job["metadata"]["name"]
        if resp.status_code in (200, 201, 202):
            return LaunchResult("created", name, f"created job {name} ({trigger}: {reason})")
        if resp.status_code == 409:
            return LaunchResult("already-running", name, f"job {name} already exists for this time bucket")
        return LaunchResult("error", name, f"creating job failed: HTTP {resp.status_code}: {_reason(resp)}")


def _reason(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("message", resp.text[:200]))
    except ValueError:
        return resp.text[:200]
