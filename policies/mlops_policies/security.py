"""Security rules: cluster API exposure and encryption, node metadata, data stores, pod hardening, secrets.

Names match what AWSGuard / compliance-policies check where they overlap (public endpoint, encryption,
public databases, S3 public access, IMDSv2) so findings read familiar. Each message says what to change.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from mlops_policies.model import (
    HELM_RELEASE,
    Resource,
    Rule,
    as_list,
    containers,
    dig,
    display,
    is_seq,
    k8s_kind,
    namespace_of,
    pod_spec,
    truthy,
)

EKS_CLUSTER = "aws:eks/cluster:Cluster"
GKE_CLUSTER = "gcp:container/cluster:Cluster"
GKE_NODE_POOL = "gcp:container/nodePool:NodePool"
EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
EC2_NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
EC2_INSTANCE = "aws:ec2/instance:Instance"
S3_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
S3_SSE = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
GCS_BUCKET = "gcp:storage/bucket:Bucket"
RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
ELASTICACHE_RG = "aws:elasticache/replicationGroup:ReplicationGroup"
ELASTICACHE_CLUSTER = "aws:elasticache/cluster:Cluster"
CLOUD_SQL = "gcp:sql/databaseInstance:DatabaseInstance"
# Cloud SQL sslMode values that refuse plaintext (the API default ALLOW_UNENCRYPTED_AND_ENCRYPTED does not).
CLOUD_SQL_TLS_MODES = frozenset({"ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"})
OPEN_CIDRS = {"0.0.0.0/0", "::/0"}


def _exempt(resource: Resource, config: Mapping[str, Any]) -> bool:
    ns = namespace_of(resource)
    return ns is not None and ns in as_list(config.get("exemptNamespaces"))


# ------------------------------------------------------------------------------------------ cluster API


def eks_endpoint_private(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    require_private = truthy(config.get("requirePrivate", True))
    if r.type == EKS_CLUSTER:
        vpc = r.get("vpcConfig", default={})
        public = truthy(vpc.get("endpointPublicAccess", True))  # AWS default: public on
        private = truthy(vpc.get("endpointPrivateAccess", False))
        cidrs = as_list(vpc.get("publicAccessCidrs")) or ["0.0.0.0/0"]  # AWS default when unset
        if public and require_private:
            yield (
                f"EKS cluster {r.name}: the API endpoint is public; set vpcConfig.endpointPublicAccess=false "
                "and endpointPrivateAccess=true (config: cluster.endpoint.private: true) and reach it via VPN"
            )
        elif public and OPEN_CIDRS & set(cidrs):
            yield (
                f"EKS cluster {r.name}: the public API endpoint is open to {', '.join(sorted(OPEN_CIDRS & set(cidrs)))}; "
                "list office/VPN CIDRs in vpcConfig.publicAccessCidrs (config: cluster.endpoint.publicCidrs)"
            )
        if not private:
            yield (
                f"EKS cluster {r.name}: nodes reach the API over the internet; set "
                "vpcConfig.endpointPrivateAccess=true"
            )
    elif r.type == GKE_CLUSTER:
        private_cfg = r.get("privateClusterConfig", default={})
        if not truthy(private_cfg.get("enablePrivateNodes", False)):
            yield f"GKE cluster {r.name}: nodes have public IPs; set privateClusterConfig.enablePrivateNodes=true"
        if require_private and not truthy(private_cfg.get("enablePrivateEndpoint", False)):
            yield (
                f"GKE cluster {r.name}: the control plane has a public endpoint; set "
                "privateClusterConfig.enablePrivateEndpoint=true"
            )
        elif not require_private and not truthy(private_cfg.get("enablePrivateEndpoint", False)):
            blocks = as_list(r.get("masterAuthorizedNetworksConfig", "cidrBlocks"))
            listed = {b.get("cidrBlock") for b in blocks if isinstance(b, Mapping)}
            if not blocks or listed & OPEN_CIDRS:
                yield (
                    f"GKE cluster {r.name}: the public endpoint accepts any address; list office/VPN CIDRs "
                    "in masterAuthorizedNetworksConfig.cidrBlocks"
                )


def eks_secrets_encrypted(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if r.type == EKS_CLUSTER:
        encrypted = any(
            "secrets" in as_list(dig(c, "resources")) and dig(c, "provider", "keyArn")
            for c in as_list(r.get("encryptionConfig"))
        )
        if not encrypted:
            yield (
                f"EKS cluster {r.name}: Kubernetes Secrets are not envelope-encrypted with a customer KMS key; "
                'set encryptionConfig = {resources: ["secrets"], provider: {keyArn: <aws.kms.Key arn>}}'
            )
    elif r.type == GKE_CLUSTER and r.get("databaseEncryption", "state") != "ENCRYPTED":
        yield (
            f"GKE cluster {r.name}: application-layer Secrets encryption is off; set "
            'databaseEncryption = {state: "ENCRYPTED", keyName: <Cloud KMS key>}'
        )


def eks_control_plane_logging(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if r.type == EKS_CLUSTER:
        required = as_list(config.get("requiredLogTypes")) or ["api", "audit", "authenticator"]
        enabled = set(as_list(r.get("enabledClusterLogTypes")))
        missing = [t for t in required if t not in enabled]
        if missing:
            yield (
                f"EKS cluster {r.name}: control-plane log types {', '.join(missing)} are off; add them to "
                "enabledClusterLogTypes (config: cluster.logging)"
            )
    elif r.type == GKE_CLUSTER:
        if r.get("loggingService") == "none":
            yield f"GKE cluster {r.name}: logging is disabled; remove loggingService=none"
        components = r.get("loggingConfig", "enableComponents")
        if components is not None and "SYSTEM_COMPONENTS" not in as_list(components):
            yield (
                f"GKE cluster {r.name}: system-component logs are off; add SYSTEM_COMPONENTS (and APISERVER) to "
                "loggingConfig.enableComponents"
            )


# ------------------------------------------------------------------------------------------ node metadata


def _metadata_problems(where: str, options: Any, max_hop: int) -> Iterator[str]:
    tokens = dig(options, "httpTokens")
    if tokens != "required":
        yield (
            f"{where}: IMDSv1 is allowed (httpTokens={tokens or 'unset'}); set "
            "metadataOptions.httpTokens=required so a pod cannot steal the node role with a plain GET"
        )
    hop = dig(options, "httpPutResponseHopLimit")
    if isinstance(hop, int | float) and hop > max_hop:
        yield (
            f"{where}: metadataOptions.httpPutResponseHopLimit={int(hop)} lets pods reach the node's metadata; "
            f"use {max_hop} and give pods their own role (IRSA / Pod Identity)"
        )


def imdsv2_required(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    max_hop = int(config.get("maxHopLimit", 1))
    if r.type in (LAUNCH_TEMPLATE, EC2_INSTANCE):
        yield from _metadata_problems(display(r), r.get("metadataOptions", default={}), max_hop)
    elif r.type == EKS_NODE_GROUP and not r.get("launchTemplate"):
        yield (
            f"EKS node group {r.name}: no launch template, so IMDS settings are the AMI's; attach a launch "
            "template with metadataOptions.httpTokens=required and httpPutResponseHopLimit=1"
        )
    elif r.type == EC2_NODE_CLASS and r.get("spec", "metadataOptions") is not None:
        # Karpenter's default without metadataOptions is httpTokens=required, hop limit 1 (concepts/nodeclasses.md).
        yield from _metadata_problems(
            display(r), {"httpTokens": "required", **r.get("spec", "metadataOptions")}, max_hop
        )
    elif r.type == GKE_NODE_POOL:
        mode = r.get("nodeConfig", "workloadMetadataConfig", "mode")
        if mode != "GKE_METADATA":
            yield (
                f"GKE node pool {r.name}: pods can read the node's metadata server (mode={mode or 'unset'}); "
                "set nodeConfig.workloadMetadataConfig.mode=GKE_METADATA (Workload Identity)"
            )


# ------------------------------------------------------------------------------------------ data stores


def _refers_to(r: Resource, target: Resource, *keys: str) -> bool:
    """Does `r` point at `target` (by dependency, or by the target's name/bucket appearing in `keys`)?"""
    if target.urn in r.dependencies:
        return True
    names = {target.name, target.get("bucket"), target.get("id")} - {None}
    return any(r.get(k) in names for k in keys)


def s3_no_public_access(
    resources: Sequence[Resource], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    blocks = [r for r in resources if r.type == S3_PUBLIC_ACCESS_BLOCK]
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for bucket in (r for r in resources if r.type in S3_BUCKETS):
        if bucket.get("acl") in {"public-read", "public-read-write", "website"}:
            yield bucket.urn, f"S3 bucket {bucket.name}: acl={bucket.get('acl')}; remove the public ACL"
        mine = [b for b in blocks if _refers_to(b, bucket, "bucket")]
        if not mine:
            yield (
                bucket.urn,
                (
                    f"S3 bucket {bucket.name}: no BucketPublicAccessBlock; add one with "
                    + ", ".join(f"{f}=true" for f in flags)
                ),
            )
            continue
        off = [f for f in flags if not any(truthy(b.get(f)) for b in mine)]
        if off:
            yield (
                mine[0].urn,
                f"S3 bucket {bucket.name}: public access block leaves {', '.join(off)} off; set them true",
            )
    for bucket in (r for r in resources if r.type == GCS_BUCKET):
        if bucket.get("publicAccessPrevention") != "enforced":
            yield bucket.urn, f"GCS bucket {bucket.name}: set publicAccessPrevention=enforced"
        if not truthy(bucket.get("uniformBucketLevelAccess")):
            yield (
                bucket.urn,
                f"GCS bucket {bucket.name}: set uniformBucketLevelAccess=true (no per-object ACLs)",
            )


def s3_encrypted(
    resources: Sequence[Resource], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    sse = [r for r in resources if r.type in S3_SSE]
    for bucket in (r for r in resources if r.type in S3_BUCKETS):
        inline = bucket.get("serverSideEncryptionConfiguration", "rule", "applyServerSideEncryptionByDefault")
        mine = [s for s in sse if _refers_to(s, bucket, "bucket")]
        algorithms = [
            dig(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
            for s in mine
            for rule in as_list(s.get("rules"))
        ]
        if inline is None and not any(a in {"aws:kms", "aws:kms:dsse", "AES256"} for a in algorithms):
            yield (
                bucket.urn,
                (
                    f"S3 bucket {bucket.name}: no default encryption declared; add a "
                    "BucketServerSideEncryptionConfiguration with sseAlgorithm=aws:kms (bucketKeyEnabled=true)"
                ),
            )


def rds_encrypted(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if r.type in (RDS_INSTANCE, RDS_CLUSTER) and not truthy(r.get("storageEncrypted", default=False)):
        yield f"{display(r)}: storage is not encrypted; set storageEncrypted=true (optionally kmsKeyId)"
    elif r.type == CLOUD_SQL:
        # Cloud SQL storage is always encrypted at rest; what a config can leave open is plaintext connections.
        mode = r.get("settings", "ipConfiguration", "sslMode")
        legacy = mode is None and truthy(r.get("settings", "ipConfiguration", "requireSsl", default=False))
        if mode not in CLOUD_SQL_TLS_MODES and not legacy:
            yield (
                f"{display(r)}: accepts unencrypted connections (sslMode {mode or 'unset'}); set "
                "settings.ipConfiguration.sslMode=ENCRYPTED_ONLY"
            )


def rds_not_public(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if r.type == RDS_INSTANCE and truthy(r.get("publiclyAccessible", default=False)):
        yield f"{display(r)}: publiclyAccessible=true; set it false and reach the database from the VPC"
    # Cloud SQL assigns a public IPv4 address unless told not to (ipv4Enabled defaults to true).
    elif r.type == CLOUD_SQL and truthy(r.get("settings", "ipConfiguration", "ipv4Enabled", default=True)):
        opened = [
            str(n.get("value"))
            for n in as_list(r.get("settings", "ipConfiguration", "authorizedNetworks"))
            if isinstance(n, Mapping) and n.get("value") in OPEN_CIDRS
        ]
        extra = f", authorized for {', '.join(opened)}" if opened else ""
        yield (
            f"{display(r)}: has a public IP address{extra}; set settings.ipConfiguration.ipv4Enabled=false and "
            "reach it over privateNetwork (Private Service Access)"
        )


def elasticache_encrypted(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if r.type == ELASTICACHE_RG:
        if not truthy(r.get("atRestEncryptionEnabled", default=False)):
            yield f"{display(r)}: set atRestEncryptionEnabled=true"
        if not truthy(r.get("transitEncryptionEnabled", default=False)):
            yield f"{display(r)}: set transitEncryptionEnabled=true (clients connect with TLS)"
    elif (
        r.type == ELASTICACHE_CLUSTER
        and r.get("engine") in {"redis", "valkey"}
        and not r.get("replicationGroupId")
    ):
        yield f"{display(r)}: a standalone cache cluster cannot encrypt; use a ReplicationGroup with encryption on"


# ------------------------------------------------------------------------------------------ pods


def k8s_no_privileged(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    spec = pod_spec(r)
    if spec is None or _exempt(r, config):
        return
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if truthy(spec.get(field, False)):
            yield f"{display(r)}: {field}=true shares the node's namespaces; remove it"
    allowed_caps = set(as_list(config.get("allowedCapabilities"))) | {"NET_BIND_SERVICE"}
    for where, c in containers(spec):
        sc = c.get("securityContext") or {}
        if truthy(sc.get("privileged", False)):
            yield f"{display(r)} {where}: privileged=true; remove it and grant only needed capabilities"
        if sc.get("allowPrivilegeEscalation") is not False:
            yield f"{display(r)} {where}: set securityContext.allowPrivilegeEscalation=false"
        added = set(as_list(dig(sc, "capabilities", "add"))) - allowed_caps
        if added:
            yield f"{display(r)} {where}: drop added capabilities {', '.join(sorted(added))}"
        if "ALL" not in as_list(dig(sc, "capabilities", "drop")):
            yield f'{display(r)} {where}: set securityContext.capabilities.drop=["ALL"]'


def k8s_run_as_non_root(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    spec = pod_spec(r)
    if spec is None or _exempt(r, config):
        return
    pod_sc = spec.get("securityContext") or {}
    pod_non_root = truthy(pod_sc.get("runAsNonRoot", False)) or (pod_sc.get("runAsUser") or 0) > 0
    if pod_sc.get("runAsUser") == 0:
        yield f"{display(r)}: pod securityContext.runAsUser=0 runs as root; use a non-zero UID"
    for where, c in containers(spec):
        sc = c.get("securityContext") or {}
        if sc.get("runAsUser") == 0 or sc.get("runAsNonRoot") is False:
            yield f"{display(r)} {where}: runs as root; set runAsNonRoot=true and a non-zero runAsUser"
        elif not (pod_non_root or truthy(sc.get("runAsNonRoot", False)) or (sc.get("runAsUser") or 0) > 0):
            yield f"{display(r)} {where}: set securityContext.runAsNonRoot=true (pod or container level)"


def k8s_resources_set(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    spec = pod_spec(r)
    if spec is None or _exempt(r, config):
        return
    for where, c in containers(spec):
        requests = dig(c, "resources", "requests", default={})
        limits = dig(c, "resources", "limits", default={})
        missing = [f"requests.{k}" for k in ("cpu", "memory") if k not in requests]
        if "memory" not in limits:
            missing.append("limits.memory")
        if missing:
            yield (
                f"{display(r)} {where}: set resources {', '.join(missing)} so the scheduler and autoscaler "
                "can place it and a leak cannot starve the node"
            )


_DIGEST_RE = re.compile(r"@sha256:[0-9a-f]{64}$")
_CHART_PINNED_RE = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$")


def _image_problem(image: Any, require_digest: bool) -> str | None:
    if not isinstance(image, str) or not image:
        return "has no image"
    if _DIGEST_RE.search(image):
        return None
    if require_digest:
        return f"image {image} is not pinned by digest; use <image>@sha256:<digest>"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image} has no tag (pulls :latest); pin a version tag or a digest"
    if last.rsplit(":", 1)[-1] in {"latest", "stable", "main", "master", "edge"}:
        return f"image {image} uses a moving tag; pin a version tag or a digest"
    return None


def _values_images(values: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(`path`, image) for `image: repo:tag` strings and `{repository, tag}` maps in Helm values."""
    if isinstance(values, Mapping):
        repo, tag = values.get("repository"), values.get("tag")
        moving = str(tag) in {"latest", "stable", "main", "master", "edge"}
        if isinstance(repo, str) and isinstance(tag, str | int | float) and moving:
            yield path or "image", f"{repo}:{tag}"
        for key, value in values.items():
            sub = f"{path}.{key}" if path else str(key)
            if key == "image" and isinstance(value, str):
                yield sub, value
            else:
                yield from _values_images(value, sub)
    elif is_seq(values):
        for i, item in enumerate(values):
            yield from _values_images(item, f"{path}[{i}]")


def k8s_image_pinned(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    require_digest = truthy(config.get("requireDigest", False))
    if r.type == HELM_RELEASE:
        version = r.get("version")
        if not isinstance(version, str) or not _CHART_PINNED_RE.match(version):
            yield (
                f"Helm release {r.name}: chart {r.get('chart')} is not pinned (version={version!r}); "
                "set an exact chart version such as 1.2.3"
            )
        for path, image in _values_images(r.get("values", default={})):
            problem = _image_problem(image, False)
            if problem and "no tag" not in problem:
                yield f"Helm release {r.name}: values.{path}: {problem}"
        return
    spec = pod_spec(r)
    if spec is None or _exempt(r, config):
        return
    for where, c in containers(spec):
        problem = _image_problem(c.get("image"), require_digest)
        if problem:
            yield f"{display(r)} {where}: {problem}"


# ------------------------------------------------------------------------------------------ secrets

SECRET_KEY_RE = re.compile(r"(pass(word|wd)?|token|secret|api[-_]?key|credential|private[-_]?key)", re.I)
# Keys that name a secret rather than hold one (`existingSecret: mlflow-db`, `passwordKey: password`).
REFERENCE_KEY_RE = re.compile(
    r"(existing|ref|name|key(s)?$|file|path|mount|enabled|create|annotations|secretkeyref|_from$|from$)", re.I
)
SAFE_VALUES = {"", "[secret]", "[unknown]"}


def _literal_secret(key: str, value: Any) -> bool:
    return (
        isinstance(value, str)
        and value not in SAFE_VALUES
        and SECRET_KEY_RE.search(key) is not None
        and REFERENCE_KEY_RE.search(key) is None
        and not value.startswith(("$(", "${", "{{"))
    )


def _values_secrets(values: Any, path: str = "") -> Iterator[str]:
    if isinstance(values, Mapping):
        for key, value in values.items():
            sub = f"{path}.{key}" if path else str(key)
            if _literal_secret(str(key), value):
                yield sub
            elif isinstance(key, str) and key.lower() in {"env", "extraenv", "extraenvs"} and is_seq(value):
                for i, item in enumerate(value):
                    if isinstance(item, Mapping) and _literal_secret(
                        str(item.get("name", "")), item.get("value")
                    ):
                        yield f"{sub}[{i}] ({item.get('name')})"
            else:
                yield from _values_secrets(value, sub)
    elif is_seq(values):
        for i, item in enumerate(values):
            yield from _values_secrets(item, f"{path}[{i}]")


def no_plaintext_secrets(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if r.type == HELM_RELEASE:
        for path in _values_secrets(r.get("values", default={})):
            yield (
                f"Helm release {r.name}: values.{path} holds a literal secret; put it in a Kubernetes Secret "
                "and reference it (existingSecret / secretKeyRef), fed from a Pulumi secret"
            )
        return
    if k8s_kind(r) == "ConfigMap":
        for key, value in (r.get("data", default={}) or {}).items():
            if _literal_secret(str(key), value):
                yield f"{display(r)}: data.{key} looks like a secret; move it to a Secret and mount that instead"
        return
    spec = pod_spec(r)
    if spec is None:
        return
    for where, c in containers(spec):
        for env in as_list(c.get("env")):
            if isinstance(env, Mapping) and _literal_secret(str(env.get("name", "")), env.get("value")):
                yield (
                    f"{display(r)} {where}: env {env.get('name')} has a literal value; use "
                    "valueFrom.secretKeyRef pointing at a Kubernetes Secret"
                )


# ------------------------------------------------------------------------------------------ registry

_NS_SCHEMA = {"exemptNamespaces": {"type": "array", "items": {"type": "string"}}}

RULES: list[Rule] = [
    Rule(
        "eks-endpoint-private",
        "security",
        "The cluster API endpoint is private, or public only to listed CIDRs.",
        resource_check=eks_endpoint_private,
        config_schema={"requirePrivate": {"type": "boolean"}},
    ),
    Rule(
        "eks-secrets-encrypted",
        "security",
        "Kubernetes Secrets are envelope-encrypted with a customer KMS key.",
        resource_check=eks_secrets_encrypted,
    ),
    Rule(
        "eks-control-plane-logging",
        "security",
        "Control-plane API, audit and authenticator logs are enabled.",
        resource_check=eks_control_plane_logging,
        config_schema={"requiredLogTypes": {"type": "array", "items": {"type": "string"}}},
    ),
    Rule(
        "imdsv2-required",
        "security",
        "Nodes require IMDSv2 with hop limit 1 (GKE: metadata concealment).",
        resource_check=imdsv2_required,
        config_schema={"maxHopLimit": {"type": "integer", "minimum": 1}},
    ),
    Rule(
        "s3-no-public-access",
        "security",
        "Buckets block every form of public access.",
        stack_check=s3_no_public_access,
    ),
    Rule(
        "s3-encrypted",
        "security",
        "Buckets declare default server-side encryption.",
        stack_check=s3_encrypted,
    ),
    Rule(
        "rds-encrypted",
        "security",
        "Database storage is encrypted; Cloud SQL (always encrypted at rest) refuses plaintext connections.",
        resource_check=rds_encrypted,
    ),
    Rule(
        "rds-not-public",
        "security",
        "Databases are not publicly accessible (RDS publiclyAccessible, Cloud SQL public IP).",
        resource_check=rds_not_public,
    ),
    Rule(
        "elasticache-encrypted",
        "security",
        "Redis encrypts at rest and in transit.",
        resource_check=elasticache_encrypted,
    ),
    Rule(
        "k8s-no-privileged",
        "security",
        "Pods run unprivileged, without host namespaces or added capabilities.",
        resource_check=k8s_no_privileged,
        config_schema={**_NS_SCHEMA, "allowedCapabilities": {"type": "array", "items": {"type": "string"}}},
    ),
    Rule(
        "k8s-run-as-non-root",
        "security",
        "Containers run as a non-root user.",
        resource_check=k8s_run_as_non_root,
        config_schema=_NS_SCHEMA,
    ),
    Rule(
        "k8s-resources-set",
        "security",
        "Containers set CPU/memory requests and a memory limit.",
        resource_check=k8s_resources_set,
        config_schema=_NS_SCHEMA,
    ),
    Rule(
        "k8s-image-pinned",
        "security",
        "Images are pinned by tag or digest; Helm charts by exact version.",
        resource_check=k8s_image_pinned,
        config_schema={**_NS_SCHEMA, "requireDigest": {"type": "boolean"}},
    ),
    Rule(
        "no-plaintext-secrets",
        "security",
        "No literal passwords, tokens or keys in env vars or Helm values.",
        resource_check=no_plaintext_secrets,
    ),
]


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)
