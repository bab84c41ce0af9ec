"""Workload Identity for GKE: a Google service account per Kubernetes service account, impersonable only by
that KSA, with exactly the roles its policy lists. Pods get short-lived tokens from the GKE metadata server;
no JSON key is ever created.

The policy argument of `bind` (the 4th argument of `ClusterHandle.bind_workload_identity`) is JSON text:

- a list of IAM roles granted on the project: `["roles/monitoring.viewer"]`
- a bucket binding: `{"bucket": "my-bucket", "role": "roles/storage.objectUser"}` (role defaults to
  `roles/storage.objectViewer`)
- a list mixing both, or `[]` / `""` for an identity with no roles.

Basic roles (owner/editor/viewer) are refused, and so is an AWS IAM policy document, with a message saying
what to pass instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from mlops_infra.components.gcp.apis import IAM, STORAGE, ProjectApis, after
from mlops_infra.components.gcp.labels import account_id

ANNOTATION = "iam.gke.io/gcp-service-account"
DEFAULT_BUCKET_ROLE = "roles/storage.objectViewer"
_ROLE_RE = re.compile(
    r"^(roles|projects/[a-z][-a-z0-9]{4,28}[a-z0-9]/roles|organizations/\d+/roles)/[A-Za-z0-9_.]+$"
)
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_BASIC_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}


class PolicyError(ValueError):
    """A workload identity policy that cannot be granted; the message says what is accepted."""


@dataclass(frozen=True)
class Grant:
    """One role for a workload: on the project (bucket None) or on one bucket."""

    role: str
    bucket: str | None = None


def workload_identity_member(project: str, namespace: str, service_account: str) -> str:
    """The IAM principal of a Kubernetes service account in the project's workload pool."""
    return f"serviceAccount:{project}.svc.id.goog[{namespace}/{service_account}]"


def parse_policy(text: str) -> list[Grant]:
    """Turn policy JSON into grants; raises PolicyError with the accepted forms on anything else."""
    if not text.strip():
        return []
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"workload identity policy is not valid JSON: {exc.msg}") from None
    items = doc if isinstance(doc, list) else [doc]
    return [_grant(item) for item in items]


def _grant(item: Any) -> Grant:
    if isinstance(item, str):
        _check_role(item)
        if item.startswith("roles/storage.object"):
            raise PolicyError(
                f"{item} on the whole project is too broad; bind it to a bucket: "
                '{"bucket": "<name>", "role": "' + item + '"}'
            )
        return Grant(role=item)
    if isinstance(item, Mapping):
        if "Statement" in item or "Version" in item:
            raise PolicyError(
                "this is an AWS IAM policy document; on GCP pass a JSON list of roles or "
                '{"bucket": "<name>", "role": "roles/storage.objectUser"}'
            )
        unknown = set(item) - {"bucket", "role"}
        if unknown or "bucket" not in item:
            raise PolicyError(
                f"a bucket binding has the keys bucket and role (got {sorted(item)}); "
                'e.g. {"bucket": "<name>", "role": "roles/storage.objectUser"}'
            )
        bucket, role = item["bucket"], item.get("role", DEFAULT_BUCKET_ROLE)
        if not isinstance(bucket, str) or not _BUCKET_RE.match(bucket):
            raise PolicyError(f"{bucket!r} is not a GCS bucket name")
        _check_role(role)
        return Grant(role=role, bucket=bucket)
    raise PolicyError(f"a policy entry is a role string or a bucket binding, got {type(item).__name__}")


def _check_role(role: Any) -> None:
    if not isinstance(role, str) or not _ROLE_RE.match(role):
        raise PolicyError(f"{role!r} is not an IAM role such as roles/monitoring.viewer")
    if role in _BASIC_ROLES:
        raise PolicyError(f"{role} is a basic role with project-wide access; grant a predefined role instead")


@dataclass(frozen=True)
class WorkloadIdentityArgs:
    project: str
    cluster_name: str
    apis: ProjectApis | None = None  # the stack's enabled APIs (IAM for accounts, Cloud Storage for buckets)


class WorkloadIdentity(pulumi.ComponentResource):
    """Creates Google service accounts for Kubernetes service accounts on request (`bind`)."""

    def __init__(self, name: str, args: WorkloadIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:gcp:WorkloadIdentity", name, None, opts)
        self.args = args
        self.workload_pool = f"{args.project}.svc.id.goog"
        self.accounts: dict[tuple[str, str], gcp.serviceaccount.Account] = {}
        self.grants: list[pulumi.CustomResource] = []
        self.register_outputs({"workloadPool": self.workload_pool})

    def bind(
        self, name: str, namespace: str, service_account: str, policy: pulumi.Input[str]
    ) -> dict[str, pulumi.Input[str]]:
        """Give `namespace/service_account` a Google identity with the policy's roles; returns the KSA annotation.

        Binding the same KSA again reuses its Google service account and adds the new grants.
        """
        gsa = self._account(namespace, service_account)
        if isinstance(policy, str):
            self._grant_all(name, gsa, parse_policy(policy))
        else:  # an Output: grants are declared once its value is known
            pulumi.Output.from_input(policy).apply(  # type: ignore[arg-type]
                lambda text: self._grant_all(name, gsa, parse_policy(text))
            )
        return {ANNOTATION: gsa.email}

    def _account(self, namespace: str, service_account: str) -> gcp.serviceaccount.Account:
        key = (namespace, service_account)
        if key not in self.accounts:
            base = f"wi-{namespace}-{service_account}"
            gsa = gcp.serviceaccount.Account(
                base,
                account_id=account_id(f"{self.args.cluster_name}-{namespace}-{service_account}"),
                display_name=f"{namespace}/{service_account} on {self.args.cluster_name}",
                project=self.args.project,
                opts=pulumi.ResourceOptions(parent=self, depends_on=after(self.args.apis, IAM)),
            )
            gcp.serviceaccount.IAMMember(
                f"{base}-wi-user",
                service_account_id=gsa.name,
                role="roles/iam.workloadIdentityUser",
                member=workload_identity_member(self.args.project, namespace, service_account),
                opts=pulumi.ResourceOptions(parent=self, depends_on=after(self.args.apis, IAM)),
            )
            self.accounts[key] = gsa
        return self.accounts[key]

    def _grant_all(self, name: str, gsa: gcp.serviceaccount.Account, grants: list[Grant]) -> None:
        for i, grant in enumerate(grants):
            resource_name = f"wi-{name}-{i}-{grant.role.rsplit('/', 1)[-1].replace('.', '-').lower()}"
            resource: pulumi.CustomResource
            if grant.bucket is None:
                resource = gcp.projects.IAMMember(
                    resource_name,
                    project=self.args.project,
                    role=grant.role,
                    member=gsa.member,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            else:
                resource = gcp.storage.BucketIAMMember(
                    resource_name,
                    bucket=grant.bucket,
                    role=grant.role,
                    member=gsa.member,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=after(self.args.apis, STORAGE)),
                )
            self.grants.append(resource)
