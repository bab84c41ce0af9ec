"""Offline plan of the prod-gcp stack: GKE cluster security, TPU and GPU pools from zero, Workload Identity."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from mlops_infra.components import catalog
from mlops_infra.components.accelerators import GKE_GPU_LABEL as GPU_ACCELERATOR_LABEL
from mlops_infra.components.accelerators import GKE_TPU_LABEL as TPU_ACCELERATOR_LABEL
from mlops_infra.components.accelerators import GKE_TPU_TOPOLOGY_LABEL as TPU_TOPOLOGY_LABEL
from mlops_infra.components.gcp.cluster import NODE_SA_ROLES
from mlops_infra.components.gcp.labels import account_id
from mlops_infra.components.gcp.node_pools import gke_added_labels, tpu_workload_placement
from mlops_infra.platform.config import ConfigError
from mlops_infra.tooling.plan import Plan, RecordedResource

STACK = "prod-gcp"
PROJECT_ID = "acme-mlops-prod"
NODE_POOL = "gcp:container/nodePool:NodePool"


@pytest.fixture(scope="module")
def plan() -> Plan:
    from plan_support import reference_plan

    return reference_plan(STACK)


def pools_of(plan: Plan, group: str) -> list[RecordedResource]:
    """The GKE node pools declared by one node group component."""
    component = next(r for r in plan.of_type("mlops:gcp:NodePool") if r.name == group)
    return sorted((r for r in plan.of_type(NODE_POOL) if r.parent == component.urn), key=lambda r: r.name)


def only(plan: Plan, type_token: str) -> RecordedResource:
    found = plan.of_type(type_token)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def group_config(plan: Plan, name: str) -> Any:
    return next(g for g in plan.config.node_groups if g.name == name)


# ----------------------------------------------------------------------------------------------- TPU pools


def test_single_host_tpu_pool_scales_from_zero_in_one_zone(plan: Plan) -> None:
    (pool,) = pools_of(plan, "tpu-v5e-2x2")
    inputs = pool.inputs
    assert inputs["nodeConfig"]["machineType"] == "ct5lp-hightpu-4t"
    assert inputs["autoscaling"] == {"minNodeCount": 0, "maxNodeCount": 4}
    assert inputs["initialNodeCount"] == 0
    assert len(inputs["nodeLocations"]) == 1 and inputs["nodeLocations"][0] in plan.config.zones
    # One host per slice: no compact placement, every node is its own 2x2 slice.
    assert "placementPolicy" not in inputs
    assert catalog.tpu_hosts("ct5lp-hightpu-4t", "2x2") == 1


def test_multi_host_tpu_group_is_one_atomic_pool_per_slice(plan: Plan) -> None:
    group = group_config(plan, "tpu-v5e-4x4")
    hosts = catalog.tpu_hosts(group.instance_types[0], group.tpu_topology)
    assert hosts == 4
    pools = pools_of(plan, "tpu-v5e-4x4")
    assert len(pools) == group.max_size // hosts == 2
    zones = {tuple(p.inputs["nodeLocations"]) for p in pools}
    assert len(zones) == 1 and len(next(iter(zones))) == 1, "a slice lives in one zone"
    for pool in pools:
        inputs = pool.inputs
        assert inputs["placementPolicy"] == {"type": "COMPACT", "tpuTopology": "4x4"}
        # A pool holds exactly one slice: it scales 0 <-> hosts, never to a partial slice.
        assert inputs["autoscaling"] == {"minNodeCount": 0, "maxNodeCount": hosts}
        assert inputs["initialNodeCount"] in (0, hosts)
        assert inputs["nodeConfig"]["spot"] is True
        assert inputs["nodeConfig"]["reservationAffinity"] == {"consumeReservationType": "NO_RESERVATION"}
        assert "initialNodeCount" in pool.ignore_changes


def test_workload_selectors_match_what_tpu_pools_get(plan: Plan) -> None:
    """The nodeSelector a workload uses (docs/gcp.md) must name labels GKE puts on the pool's nodes."""
    for group in (g for g in plan.config.node_groups if g.role == "tpu"):
        placement = tpu_workload_placement(group.instance_types[0], group.tpu_topology)
        assert placement.node_selector[TPU_ACCELERATOR_LABEL] == "tpu-v5-lite-podslice"
        assert placement.node_selector == {
            k: v for k, v in gke_added_labels(group).items() if k.startswith("cloud.google.com/gke-tpu")
        }
        for pool in pools_of(plan, group.name):
            itype = catalog.instance(pool.inputs["nodeConfig"]["machineType"])
            assert itype.gke_accelerator == placement.node_selector[TPU_ACCELERATOR_LABEL]
            assert placement.chips_per_host == itype.accelerator_count
            topology = placement.node_selector[TPU_TOPOLOGY_LABEL]
            if placement.hosts > 1:
                assert pool.inputs["placementPolicy"]["tpuTopology"] == topology
                assert pool.inputs["autoscaling"]["maxNodeCount"] == placement.hosts
            else:  # GKE labels a single-host node with its machine's own topology
                assert catalog.topology_chips(topology) == itype.accelerator_count
        # GKE taints TPU nodes itself; a workload tolerates google.com/tpu and requests the host's chips.
        assert placement.tolerations == [
            {"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
        assert placement.resources["limits"] == {"google.com/tpu": "4"}


@pytest.mark.parametrize(
    ("edit", "path", "fragment"),
    [
        ({"maxSize": 6}, "nodeGroups[2].maxSize", "spans 4 hosts"),
        ({"minSize": 2}, "nodeGroups[2].minSize", "provisioned atomically (0 or 4 nodes)"),
        ({"tpuTopology": "3x3"}, "nodeGroups[2].tpuTopology", "not supported by ct5lp-hightpu-4t"),
        ({"zones": ["us-central1-a", "us-central1-b"]}, "nodeGroups[2].zones", "lives in one zone"),
        ({"instanceTypes": ["g2-standard-8"]}, "nodeGroups[2].instanceTypes[0]", "group's role is tpu"),
    ],
)
def test_inconsistent_tpu_group_fails_validation(
    mutated_plan: Callable[..., Plan], edit: dict[str, Any], path: str, fragment: str
) -> None:
    def mutate(cfg: dict[str, Any]) -> None:
        group = cfg["mlops-platform:nodeGroups"][2]
        assert group["name"] == "tpu-v5e-4x4"
        group.update(edit)

    with pytest.raises(ConfigError) as err:
        mutated_plan(STACK, mutate, name="bad-tpu")
    messages = [str(p) for p in err.value.problems if p.path == f"mlops-platform:{path}"]
    assert messages and fragment in messages[0], str(err.value)


# ----------------------------------------------------------------------------------------------- GPU pools


@pytest.mark.parametrize(("group", "driver"), [("gpu-l4", "LATEST"), ("gpu-a100", "DEFAULT")])
def test_gpu_pools_attach_accelerators_install_drivers_and_start_empty(
    plan: Plan, group: str, driver: str
) -> None:
    (pool,) = pools_of(plan, group)
    config = group_config(plan, group)
    itype = catalog.instance(config.instance_types[0])
    node = pool.inputs["nodeConfig"]
    assert node["guestAccelerators"] == [
        {
            "type": itype.gke_accelerator,
            "count": itype.accelerator_count,
            "gpuDriverInstallationConfig": {"gpuDriverVersion": driver},
        }
    ]
    assert pool.inputs["autoscaling"]["totalMinNodeCount"] == 0
    assert pool.inputs["autoscaling"]["totalMaxNodeCount"] == config.max_size
    assert pool.inputs["initialNodeCount"] == 0
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in node["taints"]
    assert node["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
    assert node["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert node["gcfsConfig"] == {"enabled": True}
    assert node["spot"] is False  # prod: on-demand accelerators
    assert gke_added_labels(config)[GPU_ACCELERATOR_LABEL] == itype.gke_accelerator
    # No surge node on upgrade: an extra GPU may not be available or within quota.
    assert pool.inputs["upgradeSettings"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_every_pool_uses_the_least_privilege_node_account(plan: Plan) -> None:
    node_sa = next(r for r in plan.of_type("gcp:serviceaccount/account:Account") if r.name.endswith("-nodes"))
    email = f"{node_sa.inputs['accountId']}@{PROJECT_ID}.iam.gserviceaccount.com"
    for pool in plan.of_type(NODE_POOL):
        assert pool.inputs["nodeConfig"]["serviceAccount"] == email
    roles = {
        r.inputs["role"]
        for r in plan.of_type("gcp:projects/iAMMember:IAMMember")
        if r.inputs["member"] == f"serviceAccount:{email}"
    }
    assert roles == set(NODE_SA_ROLES)
    assert not roles & {"roles/owner", "roles/editor", "roles/viewer"}


# ----------------------------------------------------------------------------------------------- cluster


def test_prod_cluster_is_regional_private_and_protected(plan: Plan) -> None:
    cluster = only(plan, "gcp:container/cluster:Cluster")
    inputs = cluster.inputs
    assert inputs["location"] == "us-central1" == plan.config.region
    assert inputs["nodeLocations"] == plan.config.zones
    assert inputs["privateClusterConfig"] == {"enablePrivateNodes": True, "enablePrivateEndpoint": True}
    blocks = inputs["masterAuthorizedNetworksConfig"]["cidrBlocks"]
    assert [b["cidrBlock"] for b in blocks] == ["10.20.0.0/18"]  # the node subnet only
    assert inputs["masterAuthorizedNetworksConfig"]["gcpPublicCidrsAccessEnabled"] is False
    assert inputs["removeDefaultNodePool"] is True and inputs["initialNodeCount"] == 1
    assert inputs["datapathProvider"] == "ADVANCED_DATAPATH"
    assert inputs["enableShieldedNodes"] is True
    assert inputs["releaseChannel"] == {"channel": "REGULAR"}
    assert inputs["clusterAutoscaling"] == {"enabled": False, "autoscalingProfile": "BALANCED"}
    assert inputs["deletionProtection"] is True and cluster.protect
    assert inputs["workloadIdentityConfig"] == {"workloadPool": f"{PROJECT_ID}.svc.id.goog"}
    assert set(inputs["loggingConfig"]["enableComponents"]) >= {"SYSTEM_COMPONENTS", "WORKLOADS", "APISERVER"}
    assert inputs["resourceLabels"]["cost_center"] == "4711"
    assert all(k == k.lower() and v == v.lower() for k, v in inputs["resourceLabels"].items())


def test_cluster_secrets_are_encrypted_with_a_rotating_kms_key(plan: Plan) -> None:
    cluster = only(plan, "gcp:container/cluster:Cluster")
    key = only(plan, "gcp:kms/cryptoKey:CryptoKey")
    ring = only(plan, "gcp:kms/keyRing:KeyRing")
    assert key.inputs["rotationPeriod"] == "7776000s"
    assert (
        key.inputs["keyRing"] == f"projects/{PROJECT_ID}/locations/us-central1/keyRings/{ring.inputs['name']}"
    )
    assert cluster.inputs["databaseEncryption"] == {
        "state": "ENCRYPTED",
        "keyName": f"{key.inputs['keyRing']}/cryptoKeys/{key.inputs['name']}",
    }
    grant = only(plan, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
    assert grant.inputs["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert (
        grant.inputs["member"]
        == "serviceAccount:service-123456789012@container-engine-robot.iam.gserviceaccount.com"
    )
    assert grant.urn in cluster.depends_on  # the GKE agent can use the key before the cluster is created
    assert key.protect and ring.protect


def test_network_has_private_egress_and_flow_logs(plan: Plan) -> None:
    network = only(plan, "gcp:compute/network:Network")
    subnet = only(plan, "gcp:compute/subnetwork:Subnetwork")
    nat = only(plan, "gcp:compute/routerNat:RouterNat")
    router = only(plan, "gcp:compute/router:Router")
    assert network.inputs["autoCreateSubnetworks"] is False
    assert subnet.inputs["privateIpGoogleAccess"] is True
    assert {r["rangeName"]: r["ipCidrRange"] for r in subnet.inputs["secondaryIpRanges"]} == {
        "pods": "10.20.128.0/17",
        "services": "10.20.64.0/20",
    }
    assert subnet.inputs["logConfig"]["metadata"] == "INCLUDE_ALL_METADATA"  # prod: flow logs on
    assert nat.inputs["router"] == router.inputs["name"]
    assert nat.inputs["sourceSubnetworkIpRangesToNat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES"


def test_in_cluster_platform_uses_the_gke_provider(plan: Plan) -> None:
    provider = only(plan, "pulumi:providers:kubernetes")
    gke = only(plan, "mlops:gcp:GkeCluster")
    assert provider.parent == gke.urn
    objects = plan.k8s_objects()
    assert {o.inputs["metadata"]["name"] for o in objects if o.type == "kubernetes:core/v1:Namespace"} >= {
        "mlflow",
        "serving",
        "retraining",
    }
    assert objects and all(o.provider == provider.urn for o in objects)
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    (user,) = kubeconfig["users"]
    assert user["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert "token" not in user["user"]
    assert kubeconfig["clusters"][0]["cluster"]["server"].startswith("https://")


# ----------------------------------------------------------------------------------------------- identity


@pytest.fixture(scope="module")
def bound_plan() -> Plan:
    """prod-gcp plus one more workload identity, requested the way in-cluster components do (through the handle)."""
    from mlops_infra.platform.stack import Platform, config_from_pulumi
    from mlops_infra.tooling.offline import evaluate

    from plan_support import STACKS

    def program() -> dict[str, Any]:
        platform = Platform("mlops-platform", config_from_pulumi())
        binder = platform.cluster.bind_workload_identity
        assert binder is not None
        serving = binder("serving", "serving", "model-server", '["roles/monitoring.viewer"]')
        return {"serving": serving["iam.gke.io/gcp-service-account"]}

    return evaluate(STACKS / f"Pulumi.{STACK}.yaml", program=program)


def test_mlflow_reaches_its_bucket_through_workload_identity(plan: Plan) -> None:
    bucket = only(plan, "gcp:storage/bucket:Bucket")
    assert bucket.inputs["uniformBucketLevelAccess"] is True
    assert bucket.inputs["publicAccessPrevention"] == "enforced"
    assert bucket.inputs["versioning"] == {"enabled": True}
    assert bucket.protect and bucket.inputs["forceDestroy"] is False
    gsa = next(r for r in plan.of_type("gcp:serviceaccount/account:Account") if r.name == "wi-mlflow-mlflow")
    email = f"{gsa.inputs['accountId']}@{PROJECT_ID}.iam.gserviceaccount.com"
    wi_user = next(
        r
        for r in plan.of_type("gcp:serviceaccount/iAMMember:IAMMember")
        if r.name == "wi-mlflow-mlflow-wi-user"
    )
    assert wi_user.inputs == {
        "serviceAccountId": f"projects/{PROJECT_ID}/serviceAccounts/{email}",
        "role": "roles/iam.workloadIdentityUser",
        "member": "serviceAccount:acme-mlops-prod.svc.id.goog[mlflow/mlflow]",
    }
    (grant,) = plan.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert grant.inputs == {
        "bucket": bucket.inputs["name"],
        "role": "roles/storage.objectUser",
        "member": f"serviceAccount:{email}",
    }
    mlflow_sa = next(
        o
        for o in plan.k8s_objects()
        if o.type == "kubernetes:core/v1:ServiceAccount" and o.inputs["metadata"]["namespace"] == "mlflow"
    )
    assert mlflow_sa.inputs["metadata"]["name"] == "mlflow"
    assert mlflow_sa.inputs["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == email


def test_cluster_handle_binds_other_workloads(bound_plan: Plan) -> None:
    """ClusterHandle.bind_workload_identity: a GSA per KSA, the exact member binding, the policy's roles."""
    plan = bound_plan
    expected_id = account_id("mlops-prod-serving-model-server")  # 31 chars: shortened with a stable hash
    assert len(expected_id) <= 30
    assert plan.outputs["serving"] == f"{expected_id}@{PROJECT_ID}.iam.gserviceaccount.com"
    members = {r.inputs["member"] for r in plan.of_type("gcp:serviceaccount/iAMMember:IAMMember")}
    assert members == {
        "serviceAccount:acme-mlops-prod.svc.id.goog[mlflow/mlflow]",
        "serviceAccount:acme-mlops-prod.svc.id.goog[serving/model-server]",
    }
    viewer = [
        r
        for r in plan.of_type("gcp:projects/iAMMember:IAMMember")
        if r.inputs["role"] == "roles/monitoring.viewer"
    ]
    assert f"serviceAccount:{plan.outputs['serving']}" in {r.inputs["member"] for r in viewer}


# ----------------------------------------------------------------------------------------------- other stacks


def test_non_prod_is_zonal_spot_and_unprotected(mutated_plan: Callable[..., Plan]) -> None:
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:environment"] = "dev"
        cfg["mlops-platform:cluster"].pop("endpoint")  # let the environment default (public, no CIDRs) apply
        for group in cfg["mlops-platform:nodeGroups"]:
            group.pop("capacity", None)  # let the environment default (spot for accelerators) apply

    plan = mutated_plan(STACK, mutate, name="dev-gcp")
    cluster = only(plan, "gcp:container/cluster:Cluster")
    assert cluster.inputs["location"] == "us-central1-a"
    assert "nodeLocations" not in cluster.inputs
    assert cluster.inputs["clusterAutoscaling"]["autoscalingProfile"] == "OPTIMIZE_UTILIZATION"
    assert cluster.inputs["deletionProtection"] is False and not cluster.protect
    assert cluster.inputs["privateClusterConfig"]["enablePrivateEndpoint"] is False
    for pool in plan.of_type(NODE_POOL):
        accelerated = pool.inputs["nodeConfig"]["machineType"].startswith(("g2-", "a2-", "ct5lp-"))
        assert pool.inputs["nodeConfig"]["spot"] is accelerated
        assert pool.inputs["nodeLocations"] == ["us-central1-a"]


def test_reservation_is_consumed_by_name(mutated_plan: Callable[..., Plan]) -> None:
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:nodeGroups"][4]["reservation"] = "a100-reserved"

    plan = mutated_plan(STACK, mutate, name="reserved-gcp")
    (pool,) = pools_of(plan, "gpu-a100")
    assert pool.inputs["nodeConfig"]["reservationAffinity"] == {
        "consumeReservationType": "SPECIFIC_RESERVATION",
        "key": "compute.googleapis.com/reservation-name",
        "values": ["a100-reserved"],
    }


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (
            lambda c: c["mlops-platform:nodeGroups"][2].update(reservation="r1"),
            "nodeGroups[2].reservation",
            "Spot",
        ),
        (lambda c: c.pop("mlops-platform:zones"), "zones", "lists its zones"),
        (
            lambda c: c["mlops-platform:network"].update(cidr="10.20.0.0/20"),
            "network.cidr",
            "room for 8 nodes",
        ),
        (
            lambda c: c["mlops-platform:nodeGroups"][0].update(
                instanceTypes=["e2-standard-4", "e2-standard-8"]
            ),
            "nodeGroups[0].instanceTypes",
            "exactly one machine type",
        ),
        (
            lambda c: c["mlops-platform:nodeGroups"][0].update(gpuDriverVersion="LATEST"),
            "nodeGroups[0].gpuDriverVersion",
            "only GPU groups",
        ),
    ],
)
def test_gcp_config_rules(
    mutated_plan: Callable[..., Plan], mutate: Callable[[dict[str, Any]], None], path: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as err:
        mutated_plan(STACK, mutate, name="bad-gcp")
    messages = [str(p) for p in err.value.problems if p.path == f"mlops-platform:{path}"]
    assert messages and fragment in messages[0], str(err.value)
