"""Every rule passes on the reference stacks and fires - with a message saying what to change - on a real
offline plan that has the mistake: a mutated stack config, or one resource edited the way a component
regression would declare it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from policy.plan_edits import edit_plan, findings

from mlops_infra.tooling.offline import evaluate
from mlops_infra.tooling.plan import Plan, RecordedResource
from mlops_policies.model import Resource
from mlops_policies.runner import ALL_RULES, check_plan
from mlops_policies.security import k8s_no_privileged, k8s_run_as_non_root
from mlops_policies.settings import default_config

from plan_support import REFERENCE_STACKS, load_stack_doc

CLUSTER = "aws:eks/cluster:Cluster"
GKE = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def of_type(token: str, name: str | None = None) -> Callable[[RecordedResource], bool]:
    return lambda r: r.type == token and (name is None or r.name == name)


MLFLOW = of_type(DEPLOYMENT, "mlflow-deployment")


def container(inputs: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = inputs["spec"]["template"]["spec"]["containers"][0]
    return first


def group(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(g for g in cfg["mlops-platform:nodeGroups"] if g["name"] == name)
    return found


def _lax(stack: str, mutate: Callable[[dict[str, Any]], None], tmp: Path) -> Plan:
    doc = load_stack_doc(stack)
    mutate(doc["config"])
    path = tmp / f"Pulumi.{stack}-lax.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return evaluate(path)


@pytest.fixture(scope="module")
def lax_prod(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """prod with several config mistakes at once (one evaluation for many tests)."""

    def mutate(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:cluster"]["endpoint"] = {"private": False, "publicCidrs": ["203.0.113.0/24"]}
        cfg["mlops-platform:cluster"]["logging"] = ["api"]
        cfg["mlops-platform:network"]["natGateways"] = "single"
        cfg["mlops-platform:budget"] = {"monthlyUsd": 5000, "basis": "max"}
        group(cfg, "gpu-a10g").update(minSize=1)

    return _lax("prod", mutate, tmp_path_factory.mktemp("prod"))


@pytest.fixture(scope="module")
def lax_dev(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    def mutate(cfg: dict[str, Any]) -> None:
        group(cfg, "gpu-a10g").update(minSize=1, capacity="on-demand", maxSize=6)
        group(cfg, "gpu-l4").update(instanceTypes=["p4d.24xlarge"])
        cfg["mlops-platform:budget"] = {"monthlyUsd": 10}

    return _lax("dev", mutate, tmp_path_factory.mktemp("dev"))


def test_rule_names_are_unique_and_cover_the_contract() -> None:
    names = [r.name for r in ALL_RULES]
    assert len(names) == len(set(names))
    assert set(names) >= {
        "eks-endpoint-private",
        "eks-secrets-encrypted",
        "eks-control-plane-logging",
        "imdsv2-required",
        "s3-no-public-access",
        "s3-encrypted",
        "rds-encrypted",
        "rds-not-public",
        "elasticache-encrypted",
        "k8s-no-privileged",
        "k8s-run-as-non-root",
        "k8s-resources-set",
        "k8s-image-pinned",
        "no-plaintext-secrets",
        "prod-multi-az",
        "prod-stateful-protected",
        "prod-serving-replicas-and-pdb",
        "k8s-probes-set",
        "budget-within-limit",
        "accelerators-scale-to-zero-nonprod",
        "spot-for-nonprod-accelerators",
        "node-group-max-bounded",
        "allowed-instance-types",
        "gpu-request-fits-node",
        "no-duplicate-scrape",
        "canary-weights-are-shares",
    }


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_reference_stacks_have_no_mandatory_violation(stack_plan: Callable[[str], Plan], stack: str) -> None:
    blocking = [v for v in check_plan(stack_plan(stack)) if v.enforcement == "mandatory"]
    assert blocking == []


# ---------------------------------------------------------------------------------------------- security


def test_endpoint_public_in_prod_is_mandatory_violation(lax_prod: Plan) -> None:
    found = findings(lax_prod, "eks-endpoint-private")
    assert [v.enforcement for v in found] == ["mandatory"]
    assert "endpointPublicAccess=false" in found[0].message


def test_endpoint_public_to_listed_cidrs_is_fine_in_dev_but_not_open_to_all(
    stack_plan: Callable[[str], Plan],
) -> None:
    dev = stack_plan("dev")
    assert findings(dev, "eks-endpoint-private") == []
    opened = edit_plan(
        dev, of_type(CLUSTER), lambda i: i["vpcConfig"].update(publicAccessCidrs=["0.0.0.0/0"])
    )
    found = findings(opened, "eks-endpoint-private")
    assert len(found) == 1 and "0.0.0.0/0" in found[0].message and "publicAccessCidrs" in found[0].message


def test_gke_public_endpoint(stack_plan: Callable[[str], Plan]) -> None:
    plan = stack_plan("prod-gcp")
    assert findings(plan, "eks-endpoint-private") == []
    opened = edit_plan(
        plan, of_type(GKE), lambda i: i["privateClusterConfig"].update(enablePrivateEndpoint=False)
    )
    assert "enablePrivateEndpoint=true" in findings(opened, "eks-endpoint-private")[0].message


def test_secrets_encryption(stack_plan: Callable[[str], Plan]) -> None:
    assert findings(stack_plan("prod"), "eks-secrets-encrypted") == []
    plain = edit_plan(stack_plan("prod"), of_type(CLUSTER), lambda i: i.pop("encryptionConfig"))
    assert "encryptionConfig" in findings(plain, "eks-secrets-encrypted")[0].message
    gke = edit_plan(
        stack_plan("prod-gcp"), of_type(GKE), lambda i: i.update(databaseEncryption={"state": "DECRYPTED"})
    )
    assert "databaseEncryption" in findings(gke, "eks-secrets-encrypted")[0].message


def test_control_plane_logging(lax_prod: Plan, stack_plan: Callable[[str], Plan]) -> None:
    assert findings(stack_plan("prod"), "eks-control-plane-logging") == []
    [v] = findings(lax_prod, "eks-control-plane-logging")
    assert "audit, authenticator" in v.message and v.enforcement == "mandatory"


def test_imdsv2(stack_plan: Callable[[str], Plan]) -> None:
    prod = stack_plan("prod")
    assert findings(prod, "imdsv2-required") == []
    v1 = edit_plan(
        prod,
        of_type(LAUNCH_TEMPLATE, "mlops-prod-gpu-a10g"),
        lambda i: i["metadataOptions"].update(httpTokens="optional", httpPutResponseHopLimit=2),
    )
    messages = [v.message for v in findings(v1, "imdsv2-required")]
    assert len(messages) == 2
    assert any("httpTokens=required" in m for m in messages) and any("HopLimit=2" in m for m in messages)
    gke = edit_plan(
        stack_plan("prod-gcp"),
        lambda r: r.type == NODE_POOL and r.name.startswith("gpu-l4"),
        lambda i: i["nodeConfig"].pop("workloadMetadataConfig", None),
    )
    assert "GKE_METADATA" in findings(gke, "imdsv2-required")[0].message
    assert findings(stack_plan("prod-gcp"), "imdsv2-required") == []


def test_s3_public_access_and_encryption(stack_plan: Callable[[str], Plan]) -> None:
    prod = stack_plan("prod")
    assert findings(prod, "s3-no-public-access") == [] and findings(prod, "s3-encrypted") == []
    no_block = edit_plan(prod, lambda r: r.type.endswith("BucketPublicAccessBlock"), drop=True)
    assert "BucketPublicAccessBlock" in findings(no_block, "s3-no-public-access")[0].message
    half = edit_plan(
        prod,
        lambda r: r.type.endswith("BucketPublicAccessBlock"),
        lambda i: i.update(blockPublicPolicy=False),
    )
    assert "blockPublicPolicy" in findings(half, "s3-no-public-access")[0].message
    no_sse = edit_plan(prod, lambda r: "ServerSideEncryption" in r.type, drop=True)
    assert "sseAlgorithm=aws:kms" in findings(no_sse, "s3-encrypted")[0].message


def test_rds_and_elasticache(stack_plan: Callable[[str], Plan]) -> None:
    prod = stack_plan("prod")
    for rule in ("rds-encrypted", "rds-not-public", "elasticache-encrypted"):
        assert findings(prod, rule) == []
    rds = of_type("aws:rds/instance:Instance")
    bad = edit_plan(prod, rds, lambda i: i.update(storageEncrypted=False, publiclyAccessible=True))
    assert "storageEncrypted=true" in findings(bad, "rds-encrypted")[0].message
    assert "publiclyAccessible" in findings(bad, "rds-not-public")[0].message
    cache = edit_plan(
        prod,
        of_type("aws:elasticache/replicationGroup:ReplicationGroup"),
        lambda i: i.update(transitEncryptionEnabled=False),
    )
    [v] = findings(cache, "elasticache-encrypted")
    assert "transitEncryptionEnabled=true" in v.message


def test_pod_hardening_rules(stack_plan: Callable[[str], Plan]) -> None:
    prod = stack_plan("prod")
    for rule in (
        "k8s-no-privileged",
        "k8s-run-as-non-root",
        "k8s-resources-set",
        "k8s-image-pinned",
        "k8s-probes-set",
    ):
        assert findings(prod, rule) == [], rule

    def loosen(inputs: dict[str, Any]) -> None:
        c = container(inputs)
        c["securityContext"] = {"privileged": True, "runAsUser": 0}
        c["resources"] = {"requests": {"cpu": "250m"}}
        c["image"] = "ghcr.io/mlflow/mlflow:latest"
        c.pop("readinessProbe")
        inputs["spec"]["template"]["spec"]["hostNetwork"] = True

    bad = edit_plan(prod, MLFLOW, loosen)
    privileged = " ".join(v.message for v in findings(bad, "k8s-no-privileged"))
    assert (
        "privileged=true" in privileged
        and "hostNetwork" in privileged
        and "allowPrivilegeEscalation" in privileged
    )
    assert "runAsNonRoot=true" in findings(bad, "k8s-run-as-non-root")[0].message
    assert "requests.memory, limits.memory" in findings(bad, "k8s-resources-set")[0].message
    assert "moving tag" in findings(bad, "k8s-image-pinned")[0].message
    assert "readinessProbe" in findings(bad, "k8s-probes-set")[0].message


def test_helm_chart_must_be_pinned(stack_plan: Callable[[str], Plan]) -> None:
    bad = edit_plan(
        stack_plan("prod"),
        of_type("kubernetes:helm.sh/v3:Release", "cluster-autoscaler"),
        lambda i: i.update(version="^9"),
    )
    [v] = findings(bad, "k8s-image-pinned")
    assert "exact chart version" in v.message


def test_no_plaintext_secrets(stack_plan: Callable[[str], Plan]) -> None:
    prod = stack_plan("prod")
    assert findings(prod, "no-plaintext-secrets") == []
    env = edit_plan(
        prod, MLFLOW, lambda i: container(i)["env"].append({"name": "API_TOKEN", "value": "abc123"})
    )
    [v] = findings(env, "no-plaintext-secrets")
    assert "API_TOKEN" in v.message and "secretKeyRef" in v.message
    assert "abc123" not in v.message  # findings name the key, never echo the secret
    values = edit_plan(
        prod,
        of_type("kubernetes:helm.sh/v3:Release", "monitoring-kube-prometheus-stack"),
        lambda i: (
            i["values"]
            .setdefault("grafana", {})
            .update(adminPassword="hunter2", existingSecret="grafana-admin")
        ),
    )
    [v] = findings(values, "no-plaintext-secrets")
    assert "grafana.adminPassword" in v.message  # the secret's *name* in existingSecret is not flagged
    assert "hunter2" not in v.message


# ---------------------------------------------------------------------------------------------- reliability


def test_prod_multi_az(lax_prod: Plan, stack_plan: Callable[[str], Plan]) -> None:
    assert findings(stack_plan("prod"), "prod-multi-az") == []
    assert findings(stack_plan("dev"), "prod-multi-az") == []  # one NAT is the dev default, not a finding
    [nat] = findings(lax_prod, "prod-multi-az")
    assert "one per zone" in nat.message
    single_cache = edit_plan(
        stack_plan("prod"),
        of_type("aws:elasticache/replicationGroup:ReplicationGroup"),
        lambda i: i.update(numCacheClusters=1, automaticFailoverEnabled=False),
    )
    assert "automaticFailoverEnabled" in findings(single_cache, "prod-multi-az")[0].message


def test_prod_stateful_protected(stack_plan: Callable[[str], Plan]) -> None:
    prod = stack_plan("prod")
    assert findings(prod, "prod-stateful-protected") == []
    unprotected = edit_plan(prod, of_type("aws:s3/bucket:Bucket"), protect=False)
    [v] = findings(unprotected, "prod-stateful-protected")
    assert "protect=True" in v.message
    careless = edit_plan(
        prod,
        of_type("aws:rds/instance:Instance"),
        lambda i: i.update(skipFinalSnapshot=True, deletionProtection=False),
    )
    assert len(findings(careless, "prod-stateful-protected")) == 2


def test_prod_serving_replicas_and_pdb(stack_plan: Callable[[str], Plan]) -> None:
    # The rule looks at the serving namespaces; point it at MLflow (2 replicas + a PDB in prod).
    as_serving = {"prod-serving-replicas-and-pdb": {"servingNamespaces": ["mlflow"]}}
    prod = stack_plan("prod")
    assert findings(prod, "prod-serving-replicas-and-pdb", as_serving) == []
    single = edit_plan(prod, MLFLOW, lambda i: i["spec"].update(replicas=1))
    assert "at least 2" in findings(single, "prod-serving-replicas-and-pdb", as_serving)[0].message
    no_pdb = edit_plan(prod, of_type("kubernetes:policy/v1:PodDisruptionBudget"), drop=True)
    assert "PodDisruptionBudget" in findings(no_pdb, "prod-serving-replicas-and-pdb", as_serving)[0].message


# ---------------------------------------------------------------------------------------------- cost


def test_budget(lax_prod: Plan, lax_dev: Plan, stack_plan: Callable[[str], Plan]) -> None:
    assert findings(stack_plan("prod"), "budget-within-limit") == []
    [v] = findings(lax_prod, "budget-within-limit")
    assert v.enforcement == "mandatory" and "exceeds the budget of 5,000.00 USD" in v.message
    assert [v.enforcement for v in findings(lax_dev, "budget-within-limit")] == ["advisory"]


def test_accelerators_scale_to_zero_and_spot_outside_prod(
    lax_dev: Plan, lax_prod: Plan, stack_plan: Callable[[str], Plan]
) -> None:
    dev = stack_plan("dev")
    assert findings(dev, "accelerators-scale-to-zero-nonprod") == []
    assert findings(dev, "spot-for-nonprod-accelerators") == []
    [zero] = findings(lax_dev, "accelerators-scale-to-zero-nonprod")
    assert zero.enforcement == "mandatory" and "minSize: 0" in zero.message
    [spot] = findings(lax_dev, "spot-for-nonprod-accelerators")
    assert spot.enforcement == "advisory" and "capacity: spot" in spot.message
    # prod keeps on-demand accelerators and may keep them warm: neither rule applies there
    assert findings(lax_prod, "accelerators-scale-to-zero-nonprod") == []
    assert findings(lax_prod, "spot-for-nonprod-accelerators") == []


def test_node_group_max_bounded(lax_dev: Plan, stack_plan: Callable[[str], Plan]) -> None:
    assert findings(stack_plan("test"), "node-group-max-bounded") == []
    [v] = findings(lax_dev, "node-group-max-bounded")
    assert v.enforcement == "advisory" and "limit of 4 nodes" in v.message
    # test and prod enforce it: the same finding under test's level blocks
    assert default_config("test")["node-group-max-bounded"]["enforcementLevel"] == "mandatory"
    [v] = findings(
        lax_dev, "node-group-max-bounded", {"node-group-max-bounded": {"enforcementLevel": "mandatory"}}
    )
    assert v.enforcement == "mandatory"


def test_allowed_instance_types(lax_dev: Plan, stack_plan: Callable[[str], Plan]) -> None:
    assert findings(stack_plan("dev"), "allowed-instance-types") == []
    [v] = findings(lax_dev, "allowed-instance-types")
    assert "p4d.24xlarge is not allowed" in v.message and v.enforcement == "mandatory"
    unknown = edit_plan(
        stack_plan("dev"),
        of_type("aws:eks/nodeGroup:NodeGroup", "mlops-dev-cpu"),
        lambda i: i.update(instanceTypes=["x9.mega"]),
    )
    assert "neither in the instance catalog nor in" in findings(unknown, "allowed-instance-types")[0].message


def test_gpu_request_fits_node(stack_plan: Callable[[str], Plan]) -> None:
    prod = stack_plan("prod")
    assert findings(prod, "gpu-request-fits-node") == []

    def gpus(n: int) -> Callable[[dict[str, Any]], None]:
        return lambda i: container(i)["resources"].update(limits={"memory": "2Gi", "nvidia.com/gpu": str(n)})

    assert findings(edit_plan(prod, MLFLOW, gpus(1)), "gpu-request-fits-node") == []
    [v] = findings(edit_plan(prod, MLFLOW, gpus(8)), "gpu-request-fits-node")
    assert "g5.2xlarge" in v.message and "Pending" in v.message
    [v] = findings(
        edit_plan(stack_plan("local"), lambda r: r.type == DEPLOYMENT and "mlflow" in r.name, gpus(1)),
        "gpu-request-fits-node",
    )
    assert "no gpu node group" in v.message


@pytest.mark.parametrize(
    ("token", "path"),
    [
        ("kubernetes:core/v1:Pod", ()),
        ("kubernetes:apps/v1:DaemonSet", ("spec", "template")),
        ("kubernetes:apps/v1:StatefulSet", ("spec", "template")),
        ("kubernetes:batch/v1:Job", ("spec", "template")),
        ("kubernetes:batch/v1:CronJob", ("spec", "jobTemplate", "spec", "template")),
        ("kubernetes:argoproj.io/v1alpha1:Rollout", ("spec", "template")),
    ],
)
def test_pod_rules_find_the_pod_spec_of_every_workload_kind(token: str, path: tuple[str, ...]) -> None:
    pod: dict[str, Any] = {
        "spec": {"containers": [{"name": "c", "image": "x:1", "securityContext": {"privileged": True}}]}
    }
    props: dict[str, Any] = {"metadata": {"name": "w", "namespace": "ns"}}
    node = props
    for key in path:
        node = node.setdefault(key, {})
    node.update(pod)
    r = Resource(urn=f"urn:{token}", type=token, name="w", props=props)
    assert any("privileged=true" in m for m in k8s_no_privileged(r, {}))
    assert any("runAsNonRoot" in m for m in k8s_run_as_non_root(r, {}))
    assert list(k8s_no_privileged(r, {"exemptNamespaces": ["ns"]})) == []


def test_exemptions_need_a_reason_and_name_the_rule(stack_plan: Callable[[str], Plan]) -> None:
    prod = stack_plan("prod")

    def privileged(annotations: dict[str, str]) -> Callable[[dict[str, Any]], None]:
        def change(inputs: dict[str, Any]) -> None:
            container(inputs)["securityContext"]["privileged"] = True
            inputs["metadata"]["annotations"] = annotations

        return change

    rule = "k8s-no-privileged"
    exempted = {
        "policies.mlops-platform/exempt": f"{rule},k8s-probes-set",
        "policies.mlops-platform/exempt-reason": "reads /dev for device metrics",
    }
    assert findings(edit_plan(prod, MLFLOW, privileged(exempted)), rule) == []
    no_reason = {"policies.mlops-platform/exempt": rule}
    assert findings(edit_plan(prod, MLFLOW, privileged(no_reason)), rule)
    other_rule = {**exempted, "policies.mlops-platform/exempt": "k8s-probes-set"}
    assert findings(edit_plan(prod, MLFLOW, privileged(other_rule)), rule)


def test_node_agents_in_kube_system_are_exempt_from_pod_privilege_rules_only(
    stack_plan: Callable[[str], Plan],
) -> None:
    prod = stack_plan("prod")
    agents = [r for r in prod.k8s_objects() if r.inputs.get("metadata", {}).get("namespace") == "kube-system"]
    assert agents, "the prod plan has node agents in kube-system"
    assert findings(prod, "k8s-no-privileged") == []
    strict = {"k8s-no-privileged": {"exemptNamespaces": []}}
    assert {v.urn for v in findings(prod, "k8s-no-privileged", strict)} <= {r.urn for r in agents}
