"""Rule `network-policies-enforced`: NetworkPolicy objects only restrict traffic when the cluster's network
plugin enforces them; otherwise the API server accepts them and nothing changes.

- EKS: the `vpc-cni` managed add-on >= v1.14 with `{"enableNetworkPolicy": "true"}` in its configuration
  values (docs.aws.amazon.com/eks/latest/userguide/cni-network-policy.html); the default is off.
- GKE: Dataplane V2 (`datapathProvider: ADVANCED_DATAPATH`) enforces them; the legacy Calico add-on
  (`networkPolicy.enabled`) does too.
A cluster the plan does not declare (a local one) is not checked: its CNI is unknown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mlops_policies.model import Resource, Rule, k8s_kind, truthy

EKS_CLUSTER = "aws:eks/cluster:Cluster"
EKS_ADDON = "aws:eks/addon:Addon"
GKE_CLUSTER = "gcp:container/cluster:Cluster"
MIN_VPC_CNI = (1, 14)


def _version(text: str) -> tuple[int, int]:
    match = re.match(r"v?(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _eks_problem(resources: Sequence[Resource]) -> tuple[str | None, str] | None:
    cni = next((r for r in resources if r.type == EKS_ADDON and r.get("addonName") == "vpc-cni"), None)
    if cni is None:
        return None, "the EKS cluster has no vpc-cni managed add-on, so nothing enforces NetworkPolicies"
    raw = cni.get("configurationValues", default="{}")
    try:
        values = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (ValueError, TypeError):
        values = {}
    if str(values.get("enableNetworkPolicy", "false")).lower() != "true":
        return cni.urn, (
            'vpc-cni runs without {"enableNetworkPolicy": "true"} in its configuration values: the '
            "NetworkPolicies of this stack are accepted and not enforced"
        )
    if _version(str(cni.get("addonVersion", default=""))) < MIN_VPC_CNI:
        return cni.urn, f"vpc-cni {cni.get('addonVersion')} predates network policy support (v1.14)"
    return None


def _gke_problem(cluster: Resource) -> tuple[str | None, str] | None:
    if cluster.get("datapathProvider") == "ADVANCED_DATAPATH" or truthy(
        cluster.get("networkPolicy", "enabled")
    ):
        return None
    return cluster.urn, (
        "GKE cluster without Dataplane V2 (datapathProvider ADVANCED_DATAPATH) or network policy "
        "enforcement: the NetworkPolicies of this stack are not enforced"
    )


def check_network_policies_enforced(
    resources: Sequence[Resource], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    del config
    if not any(k8s_kind(r) == "NetworkPolicy" for r in resources):
        return
    found: tuple[str | None, str] | None = None
    if any(r.type == EKS_CLUSTER for r in resources):
        found = _eks_problem(resources)
    elif gke := next((r for r in resources if r.type == GKE_CLUSTER), None):
        found = _gke_problem(gke)
    if found is not None:
        yield found


RULES = [
    Rule(
        name="network-policies-enforced",
        category="security",
        description="A stack that declares NetworkPolicies runs a network plugin that enforces them",
        stack_check=check_network_policies_enforced,
    )
]
