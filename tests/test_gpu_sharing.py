"""GPU sharing (time-slicing, MIG) on EKS and GKE: config, catalog, what nodes advertise, what workloads ask
for, and the mistakes the checks catch (a MIG profile the GPU lacks, more slices than a node offers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws.aws_plan_helpers import asg_tags, node_groups, release
from policy.plan_edits import edit_plan, findings
from test_config import BASE

from mlops_infra.components import accelerators, catalog
from mlops_infra.components.k8s.accelerators import nvidia_device_plugin_values
from mlops_infra.components.node_group import NodeGroupSpec, NodeGroupSpecError
from mlops_infra.platform.config import ConfigError, load_stack
from mlops_infra.tooling import chart_keys
from mlops_infra.tooling.plan import Plan, RecordedResource

from plan_support import load_stack_doc

STACK = "dev-gpu-sharing"
ROLLOUT = "kubernetes:argoproj.io/v1alpha1:Rollout"
GKE_POOL = "gcp:container/nodePool:NodePool"


def _problems(tmp_path: Path, doc: dict[str, Any], name: str = "dev") -> list[str]:
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as info:
        load_stack(path)
    return [str(p) for p in info.value.problems]


def _aws_with(group: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "config": {
            **BASE,
            "mlops-platform:nodeGroups": [BASE["mlops-platform:nodeGroups"][0], group],
            **extra,
        }
    }


def _rollout_pod(plan: Plan) -> dict[str, Any]:
    (rollout,) = plan.of_type(ROLLOUT)
    spec: dict[str, Any] = rollout.inputs["spec"]["template"]["spec"]
    return spec


# ------------------------------------------------------------------------------------------------ catalog


def test_mig_profiles_per_gpu_model_come_from_the_catalog() -> None:
    assert catalog.mig_profiles("p4d.24xlarge") == {
        "1g.5gb": 7,
        "1g.10gb": 4,
        "2g.10gb": 3,
        "3g.20gb": 2,
        "4g.20gb": 1,
        "7g.40gb": 1,
    }
    assert (
        catalog.mig_profiles("a3-highgpu-8g")["1g.10gb"]
        == 7
        == catalog.mig_profiles("p5.48xlarge")["1g.10gb"]
    )
    assert catalog.mig_profiles("a2-highgpu-1g") == catalog.mig_profiles("p4d.24xlarge")  # the same A100 40GB
    assert (
        catalog.mig_profiles("g4dn.xlarge") == {} == catalog.mig_profiles("g2-standard-8")
    )  # T4, L4: no MIG
    model = catalog.gpu_model(catalog.instance("p4d.24xlarge"))
    assert model is not None and "supported-mig-profiles" in model.source


# ------------------------------------------------------------------------------------------------ config


def test_a_mig_profile_the_gpu_does_not_have_is_refused(tmp_path: Path) -> None:
    """Planted mistake: an H100 profile on an A100 group (GCP, where MIG is implemented)."""
    doc = load_stack_doc("prod-gcp")
    doc["config"]["mlops-platform:nodeGroups"][4]["sharing"] = {"mode": "mig", "profile": "1g.20gb"}
    (line,) = _problems(tmp_path, doc, "prod-gcp")
    assert (
        "mlops-platform:nodeGroups[4].sharing.profile: got '1g.20gb': a2-highgpu-1g (nvidia-a100 40 GB) has no "
        in line
    )
    assert "its profiles: 1g.5gb, 1g.10gb, 2g.10gb, 3g.20gb, 4g.20gb, 7g.40gb" in line


def test_mig_on_a_gpu_without_mig(tmp_path: Path) -> None:
    doc = load_stack_doc("prod-gcp")
    doc["config"]["mlops-platform:nodeGroups"][3]["sharing"] = {"mode": "mig", "profile": "1g.5gb"}
    (line,) = _problems(tmp_path, doc, "prod-gcp")
    assert (
        "g2-standard-8 (nvidia-l4 24 GB) has no MIG profile 1g.5gb; its profiles: none: its GPU has no MIG"
        in line
    )


@pytest.mark.parametrize(
    ("sharing", "key", "message"),
    [
        ({"mode": "time-slicing"}, "sharing.replicas", "time-slicing needs replicas"),
        ({"mode": "time-slicing", "replicas": 1}, "sharing.replicas", "greater than or equal to 2"),
        ({"mode": "time-slicing", "replicas": 49}, "sharing.replicas", "less than or equal to 48"),
        ({"mode": "mig"}, "sharing.profile", "mig needs a profile"),
        ({"mode": "mig", "profile": "1g.5gb"}, "sharing.mode", "MIG on EKS needs the NVIDIA MIG manager"),
        ({"mode": "mps", "replicas": 2}, "sharing.mode", "allowed: 'time-slicing' or 'mig'"),
    ],
)
def test_sharing_fields_per_mode(tmp_path: Path, sharing: dict[str, Any], key: str, message: str) -> None:
    group = {
        "name": "gpu",
        "role": "gpu",
        "instanceTypes": ["p4d.24xlarge"],
        "maxSize": 1,
        "sharing": sharing,
    }
    (line,) = _problems(tmp_path, _aws_with(group))
    assert f"mlops-platform:nodeGroups[1].{key}: " in line and message in line


def test_only_gpu_groups_share(tmp_path: Path) -> None:
    group = {"name": "c", "role": "cpu", "instanceTypes": ["m6i.large"], "maxSize": 1,
             "sharing": {"mode": "time-slicing", "replicas": 2}}  # fmt: skip
    (line,) = _problems(tmp_path, _aws_with(group))
    assert "mlops-platform:nodeGroups[1].sharing: got 'time-slicing': only GPU groups share GPUs" in line


def test_shared_gpu_serving_needs_a_sharing_group_and_one_slice(tmp_path: Path) -> None:
    serving = {"serving": {"model": "m", "sharedGpu": True, "gpusPerReplica": 2}}
    lines = _problems(tmp_path, {"config": {**BASE, "mlops-platform:workloads": serving}})
    assert any("workloads.serving.sharedGpu: got true: needs a GPU group with sharing" in x for x in lines)
    assert any("workloads.serving.gpusPerReplica: got 2: a replica takes one slice" in x for x in lines)


def test_the_component_refuses_a_profile_its_gpu_lacks() -> None:
    with pytest.raises(NodeGroupSpecError, match=r"g5\.xlarge .* has no MIG profile 1g\.5gb"):
        NodeGroupSpec(
            "gpu", "gpu", ("g5.xlarge",), 1, sharing=accelerators.GpuSharing("mig", profile="1g.5gb")
        )


# ------------------------------------------------------------------------------------------------ EKS


def test_eks_time_slicing_plugin_config_labels_and_template_tags(stack_plan) -> None:
    plan = stack_plan(STACK)
    values = release(plan, "nvidia-device-plugin").inputs["values"]
    assert values["config"]["default"] == "default"
    configs = {k: yaml.safe_load(v) for k, v in values["config"]["map"].items()}
    assert configs["default"] == {"version": "v1", "flags": {"migStrategy": "none"}}
    assert configs["gpu-t4-shared"]["sharing"] == {
        "timeSlicing": {
            "renameByDefault": True,
            "failRequestsGreaterThanOne": True,
            "resources": [{"name": "nvidia.com/gpu", "replicas": 4}],
        }
    }
    labels = node_groups(plan)["gpu-t4-shared"].inputs["labels"]
    assert {
        k: labels[k] for k in labels if k.startswith("nvidia.com/") and k != "nvidia.com/gpu.present"
    } == {
        "nvidia.com/device-plugin.config": "gpu-t4-shared",
        "nvidia.com/gpu.sharing-strategy": "time-slicing",
        "nvidia.com/gpu.replicas": "4",
    }
    tags = asg_tags(plan, "gpu-t4-shared")
    template = "k8s.io/cluster-autoscaler/node-template/resources/"
    assert tags[f"{template}nvidia.com/gpu.shared"] == "4"  # 1 T4 x 4 slices: what the node will advertise
    assert f"{template}nvidia.com/gpu" not in tags
    # The chart reads `config.map` and `config.default` (chart 0.17.4 key set).
    assert chart_keys.undefined_keys("nvidia-device-plugin", "0.17.4", values) == []


def test_unshared_stacks_keep_the_plugin_values_they_had(stack_plan) -> None:
    assert (
        release(stack_plan("dev"), "nvidia-device-plugin").inputs["values"] == nvidia_device_plugin_values()
    )
    assert "config" not in nvidia_device_plugin_values()


def test_serving_asks_for_one_slice_on_eks(stack_plan) -> None:
    pod = _rollout_pod(stack_plan(STACK))
    resources = pod["containers"][0]["resources"]
    assert (
        resources["requests"]["nvidia.com/gpu.shared"] == "1" == resources["limits"]["nvidia.com/gpu.shared"]
    )
    assert "nvidia.com/gpu" not in resources["requests"]
    assert pod["nodeSelector"] == {
        "nvidia.com/gpu.sharing-strategy": "time-slicing",
        "nvidia.com/gpu.replicas": "4",
    }
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def _requests(amount: str) -> Any:
    def change(inputs: dict[str, Any]) -> None:
        res = inputs["spec"]["template"]["spec"]["containers"][0]["resources"]
        for section in ("requests", "limits"):
            res[section]["nvidia.com/gpu.shared"] = amount

    return change


def test_a_pod_asking_more_slices_than_a_node_offers(stack_plan) -> None:
    """Planted mistake: 5 slices on a T4 node time-sliced 4 ways."""
    plan = edit_plan(stack_plan(STACK), lambda r: r.type == ROLLOUT, _requests("5"))
    (message,) = [v.message for v in findings(plan, "pods-schedulable")]
    assert "gpu-t4-shared: requests nvidia.com/gpu.shared 5, g4dn.xlarge has 4 free" in message
    (fits,) = [v.message for v in findings(plan, "gpu-request-fits-node")]
    assert "requests 5 nvidia.com/gpu.shared" in fits and "(g4dn.xlarge) has 4" in fits


def test_two_slices_fit_but_buy_no_more_gpu(stack_plan) -> None:
    plan = edit_plan(stack_plan(STACK), lambda r: r.type == ROLLOUT, _requests("2"))
    assert findings(plan, "pods-schedulable") == []
    (message,) = [v.message for v in findings(plan, "gpu-request-fits-node")]
    assert "requests 2 nvidia.com/gpu.shared slices of a shared GPU; a pod gets one slice" in message


def test_a_whole_gpu_request_finds_no_whole_gpus_on_shared_nodes(stack_plan) -> None:
    def whole(inputs: dict[str, Any]) -> None:
        res = inputs["spec"]["template"]["spec"]["containers"][0]["resources"]
        for section in ("requests", "limits"):
            res[section]["nvidia.com/gpu"] = res[section].pop("nvidia.com/gpu.shared")

    plan = edit_plan(stack_plan(STACK), lambda r: r.type == ROLLOUT, whole)
    (message,) = [v.message for v in findings(plan, "pods-schedulable")]
    assert "gpu-t4-shared: requests nvidia.com/gpu but nothing on the node advertises it" in message


# ------------------------------------------------------------------------------------------------ Karpenter


def _karpenter_shared(cfg: dict[str, Any]) -> None:
    cfg["mlops-platform:nodeGroups"][2]["sharing"] = {"mode": "time-slicing", "replicas": 4}
    cfg["mlops-platform:workloads"]["serving"]["sharedGpu"] = True


def test_karpenter_learns_the_slices_from_a_node_overlay(mutated_plan) -> None:
    plan = mutated_plan("prod-karpenter", _karpenter_shared)
    (overlay,) = plan.of_type("kubernetes:karpenter.sh/v1alpha1:NodeOverlay")
    assert overlay.inputs["spec"] == {
        "requirements": [
            {"key": "karpenter.sh/nodepool", "operator": "In", "values": ["gpu-a10g"]},
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g5.2xlarge"]},
        ],
        "capacity": {"nvidia.com/gpu.shared": "4"},
    }
    assert release(plan, "karpenter").inputs["values"]["settings"]["featureGates"] == {"nodeOverlay": True}
    assert findings(plan, "pods-schedulable") == []
    from test_render import validate_object

    validate_object({"apiVersion": "karpenter.sh/v1alpha1", "kind": "NodeOverlay", **overlay.inputs}, "1.33")
    # Without the overlay Karpenter never launches a node for a pod that asks for a slice.
    bare = edit_plan(plan, lambda r: r.type == "kubernetes:karpenter.sh/v1alpha1:NodeOverlay", drop=True)
    (message,) = [v.message for v in findings(bare, "pods-schedulable")]
    assert "but Karpenter's view of g5.2xlarge says: requests nvidia.com/gpu.shared but nothing" in message


# ------------------------------------------------------------------------------------------------ GKE


def _gke_shared(cfg: dict[str, Any]) -> None:
    groups = cfg["mlops-platform:nodeGroups"]
    groups[3]["sharing"] = {"mode": "time-slicing", "replicas": 8}
    groups[4]["sharing"] = {"mode": "mig", "profile": "1g.5gb"}
    cfg["mlops-platform:workloads"]["serving"]["sharedGpu"] = True


def _pool(plan: Plan, group: str) -> RecordedResource:
    return next(r for r in plan.of_type(GKE_POOL) if r.inputs["name"] == group)


def test_gke_shares_with_its_own_node_pool_settings(mutated_plan) -> None:
    plan = mutated_plan("prod-gcp", _gke_shared)
    l4 = _pool(plan, "gpu-l4").inputs["nodeConfig"]["guestAccelerators"][0]
    assert l4["gpuSharingConfig"] == {"gpuSharingStrategy": "TIME_SHARING", "maxSharedClientsPerGpu": 8}
    a100 = _pool(plan, "gpu-a100").inputs["nodeConfig"]["guestAccelerators"][0]
    assert a100["gpuPartitionSize"] == "1g.5gb" and "gpuSharingConfig" not in a100
    pod = _rollout_pod(plan)
    # The first sharing group (gpu-l4): GKE keeps the resource name and routes pods by its node labels.
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-gpu-sharing-strategy": "time-sharing",
        "cloud.google.com/gke-max-shared-clients-per-gpu": "8",
    }
    assert pod["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert findings(plan, "pods-schedulable") == []


def test_gke_nodes_advertise_time_slices_and_mig_instances(mutated_plan) -> None:
    from mlops_policies.nodes import cluster_nodes
    from mlops_policies.runner import resources_from_plan

    nodes = {n.group: n for n in cluster_nodes(resources_from_plan(mutated_plan("prod-gcp", _gke_shared)))}
    assert nodes["gpu-l4"].allocatable["nvidia.com/gpu"] == 8  # 1 L4 x 8 clients
    assert nodes["gpu-a100"].allocatable["nvidia.com/gpu"] == 7  # 1 A100 40GB as 7 x 1g.5gb
    assert nodes["gpu-a100"].labels["cloud.google.com/gke-gpu-partition-size"] == "1g.5gb"


# ------------------------------------------------------------------------------------------------ registry


def test_plugin_config_decides_what_a_node_advertises() -> None:
    shared = accelerators.GpuSharing("time-slicing", 3).device_plugin_config()
    assert accelerators.plugin_devices(shared, "g5.12xlarge", {}) == {"nvidia.com/gpu.shared": 12}
    mig = accelerators.GpuSharing("mig", profile="2g.10gb")
    labels = mig.node_labels("aws", "a100")
    assert accelerators.plugin_devices(mig.device_plugin_config(), "p4d.24xlarge", labels) == {
        "nvidia.com/mig-2g.10gb": 24
    }
    assert accelerators.plugin_devices({"version": "v1"}, "g5.12xlarge", {}) == {"nvidia.com/gpu": 4}
    assert accelerators.sharing_from_labels(labels) == mig
    assert accelerators.kind_of_resource("nvidia.com/mig-1g.5gb") == "gpu"
    assert accelerators.devices_per_node("g5.xlarge", "nvidia.com/gpu.shared") == 0  # needs the sharing
    assert json.dumps(shared)  # a plain document: it goes into the chart's config map as YAML
