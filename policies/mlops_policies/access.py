"""Who can reach or act on what: rules against the plan-level tampering a stack config cannot express.

- `k8s-no-host-path`: no pod mounts a node path (a `docker.sock` or `/` mount is a node takeover); node
  agents in exempt namespaces (kube-system by default) may.
- `no-world-open-admin-ports`: no security group rule or firewall opens SSH, RDP or a database port to
  0.0.0.0/0 or ::/0.
- `iam-no-admin-wildcard`: no IAM policy allows `Action: "*"` on `Resource: "*"`, and no role gets
  AdministratorAccess.
- `k8s-no-cluster-admin-binding`: no service account is bound to cluster-admin or to a role whose rules
  allow every verb.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mlops_policies.model import Resource, Rule, as_list, display, k8s_kind, namespace_of, pod_spec

WORLD = {"0.0.0.0/0", "::/0"}
# SSH, RDP, and the database / cache ports the platform's data stores and their usual neighbours use.
ADMIN_PORTS = {22: "SSH", 3389: "RDP", 5432: "PostgreSQL", 3306: "MySQL", 1433: "SQL Server", 6379: "Redis",
               27017: "MongoDB", 9200: "Elasticsearch"}  # fmt: skip
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
StackFindings = Iterator[tuple[str | None, str]]


def _exempt_namespace(resource: Resource, config: Mapping[str, Any]) -> bool:
    return namespace_of(resource) in as_list(config.get("exemptNamespaces"))


def k8s_no_host_path(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    spec = pod_spec(r)
    if spec is None or _exempt_namespace(r, config):
        return
    for volume in as_list(spec.get("volumes")):
        if isinstance(volume, Mapping) and isinstance(volume.get("hostPath"), Mapping):
            path = volume["hostPath"].get("path")
            yield (
                f"{display(r)}: volume {volume.get('name')} mounts the node path {path}; a pod with host files "
                "can take over the node: use a PersistentVolumeClaim, emptyDir or a projected volume"
            )


# ---- network exposure


def _ports(low: Any, high: Any, protocol: Any) -> set[int]:
    """The admin ports a rule's port range covers (all of them for protocol -1/all)."""
    if str(protocol).lower() in {"-1", "all"}:
        return set(ADMIN_PORTS)
    try:
        lo, hi = int(low), int(high)
    except (TypeError, ValueError):
        return set()
    if str(protocol).lower() not in {"tcp", "6", "udp", "17"} and lo == hi == 0:
        return set()
    return {p for p in ADMIN_PORTS if lo <= p <= hi}


def _gcp_ports(allow: Mapping[str, Any]) -> set[int]:
    if str(allow.get("protocol")).lower() in {"all"}:
        return set(ADMIN_PORTS)
    if str(allow.get("protocol")).lower() not in {"tcp", "udp"}:
        return set()
    ranges = as_list(allow.get("ports")) or ["0-65535"]
    found: set[int] = set()
    for text in ranges:
        low, _, high = str(text).partition("-")
        found |= _ports(low, high or low, "tcp")
    return found


def _aws_ingress(r: Resource) -> Iterator[tuple[set[str], set[int]]]:
    """(source CIDRs, admin ports) of each ingress rule a security-group resource declares."""
    if r.type == "aws:ec2/securityGroup:SecurityGroup":
        for rule in as_list(r.get("ingress")):
            if isinstance(rule, Mapping):
                cidrs = {*as_list(rule.get("cidrBlocks")), *as_list(rule.get("ipv6CidrBlocks"))}
                yield cidrs, _ports(rule.get("fromPort"), rule.get("toPort"), rule.get("protocol"))
    elif r.type == "aws:ec2/securityGroupRule:SecurityGroupRule" and r.get("type") == "ingress":
        cidrs = {*as_list(r.get("cidrBlocks")), *as_list(r.get("ipv6CidrBlocks"))}
        yield cidrs, _ports(r.get("fromPort"), r.get("toPort"), r.get("protocol"))
    elif r.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        cidrs = {r.get("cidrIpv4"), r.get("cidrIpv6")} - {None}
        yield cidrs, _ports(r.get("fromPort"), r.get("toPort"), r.get("ipProtocol"))


def no_world_open_admin_ports(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    del config
    exposed: set[int] = set()
    for cidrs, ports in _aws_ingress(r):
        if cidrs & WORLD:
            exposed |= ports
    ingress = r.type == "gcp:compute/firewall:Firewall" and r.get("direction", default="INGRESS") == "INGRESS"
    if ingress and set(as_list(r.get("sourceRanges"))) & WORLD:
        for allow in as_list(r.get("allows")):
            if isinstance(allow, Mapping):
                exposed |= _gcp_ports(allow)
    if exposed:
        names = ", ".join(f"{port} ({ADMIN_PORTS[port]})" for port in sorted(exposed))
        yield f"{display(r)}: opens {names} to the whole internet; allow only the VPC, a bastion or a VPN range"


# ---- IAM


def _documents(r: Resource) -> Iterator[tuple[str, Any]]:
    if r.type in {"aws:iam/policy:Policy", "aws:iam/rolePolicy:RolePolicy", "aws:iam/userPolicy:UserPolicy",
                  "aws:iam/groupPolicy:GroupPolicy"}:  # fmt: skip
        yield "policy", r.get("policy")
    if r.type == "aws:iam/role:Role":
        for inline in as_list(r.get("inlinePolicies")):
            if isinstance(inline, Mapping):
                yield f"inline policy {inline.get('name')}", inline.get("policy")


def _statements(document: Any) -> list[Mapping[str, Any]]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return []
    statements = document.get("Statement") if isinstance(document, Mapping) else None
    return [s for s in as_list(statements) if isinstance(s, Mapping)]


def iam_no_admin_wildcard(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    del config
    for where, document in _documents(r):
        for statement in _statements(document):
            actions = {str(a) for a in as_list(statement.get("Action"))}
            resources = {str(x) for x in as_list(statement.get("Resource"))}
            if statement.get("Effect") == "Allow" and actions & {"*", "*:*"} and "*" in resources:
                yield f"{display(r)}: {where} allows every action on every resource; grant the actions it needs"
    arns = [r.get("policyArn")] if r.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment" else []
    arns += as_list(r.get("managedPolicyArns")) if r.type == "aws:iam/role:Role" else []
    if ADMIN_POLICY in arns:
        yield f"{display(r)}: attaches AdministratorAccess; grant the actions it needs"


# ---- Kubernetes RBAC


def _roles_with_every_verb(resources: Sequence[Resource]) -> set[tuple[str, str | None, str]]:
    found = set()
    for r in resources:
        kind = k8s_kind(r)
        if kind in ("ClusterRole", "Role") and any(
            isinstance(rule, Mapping) and "*" in as_list(rule.get("verbs"))
            for rule in as_list(r.get("rules"))
        ):
            name = str(r.get("metadata", "name", default=r.name))
            found.add((kind, namespace_of(r) if kind == "Role" else None, name))
    return found


def k8s_no_cluster_admin_binding(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    del config
    wildcard = _roles_with_every_verb(resources)
    for r in resources:
        kind = k8s_kind(r)
        if kind not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        ref = r.get("roleRef", default={}) or {}
        role_kind, role_name = str(ref.get("kind")), str(ref.get("name"))
        role_ns = namespace_of(r) if role_kind == "Role" else None
        too_much = role_name == "cluster-admin" or (role_kind, role_ns, role_name) in wildcard
        accounts = [
            f"{s.get('namespace') or namespace_of(r)}/{s.get('name')}"
            for s in as_list(r.get("subjects"))
            if isinstance(s, Mapping) and s.get("kind") == "ServiceAccount"
        ]
        if too_much and accounts:
            what = "cluster-admin" if role_name == "cluster-admin" else f"{role_kind} {role_name} (verbs: *)"
            yield (
                r.urn,
                (
                    f"{display(r)} grants {what} to service account {', '.join(accounts)}: a compromised pod owns the "
                    "cluster; bind a Role with the verbs and resources it needs"
                ),
            )


_NS_SCHEMA = {"exemptNamespaces": {"type": "array", "items": {"type": "string"}}}
RULES: list[Rule] = [
    Rule(
        "k8s-no-host-path",
        "security",
        "No pod mounts a path of its node (node agents in exempt namespaces aside).",
        resource_check=k8s_no_host_path,
        config_schema=_NS_SCHEMA,
    ),
    Rule(
        "no-world-open-admin-ports",
        "security",
        "No security group or firewall opens SSH, RDP or a database port to 0.0.0.0/0.",
        resource_check=no_world_open_admin_ports,
    ),
    Rule(
        "iam-no-admin-wildcard",
        "security",
        'No IAM policy allows Action "*" on Resource "*"; no AdministratorAccess.',
        resource_check=iam_no_admin_wildcard,
    ),
    Rule(
        "k8s-no-cluster-admin-binding",
        "security",
        "No service account is bound to cluster-admin or to a role allowing every verb.",
        stack_check=k8s_no_cluster_admin_binding,
    ),
]
