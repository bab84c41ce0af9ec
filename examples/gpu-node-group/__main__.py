"""Add a scale-from-zero GPU node group, with the NVIDIA device plugin, to an EKS cluster that already exists.

A team's own Pulumi program: only the installed `mlops_infra` package is imported. The cluster is named in
config (`team:clusterName`, `team:subnetIds`); the node group gets the accelerator registry's taint and labels,
IMDSv2-only launch template and the Auto Scaling group tags cluster-autoscaler needs to start it from zero.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlops_infra.components.aws.node_groups import GpuNodeGroup, NodeGroupArgs
from mlops_infra.components.k8s.accelerators import AcceleratorDevicePlugins, AcceleratorDevicePluginsArgs
from mlops_infra.components.k8s.cluster import ClusterHandle
from mlops_infra.components.node_group import NodeGroupSpec


def main() -> dict[str, Any]:
    config = pulumi.Config("team")
    cluster_name = config.require("clusterName")
    version = config.get("clusterVersion") or "1.33"
    spec = NodeGroupSpec(
        name="gpu-l4",
        role="gpu",
        instance_types=("g6.xlarge", "g6.2xlarge"),  # one GPU model, two sizes for spot availability
        capacity="spot",
        min_size=0,
        max_size=4,
    )
    group = GpuNodeGroup(
        f"{cluster_name}-gpu-l4",
        NodeGroupArgs(
            cluster_name=cluster_name,
            cluster_version=version,
            group=spec,
            subnet_ids=config.require_object("subnetIds"),
            tags={"team": "fraud", "costCenter": "4711"},
        ),
    )
    # Kubernetes objects go through an explicit provider for that cluster (e.g. a kubeconfig context written
    # by `aws eks update-kubeconfig`), never an ambient default one.
    provider = k8s.Provider("team-cluster", context=config.get("kubeContext"))
    cluster = ClusterHandle(
        name=cluster_name, cloud="aws", version=version, provider=provider, node_groups=[spec]
    )
    AcceleratorDevicePlugins(
        "team-device-plugins",
        AcceleratorDevicePluginsArgs(cluster=cluster),
        opts=pulumi.ResourceOptions(depends_on=[group]),
    )
    outputs = {"nodeGroup": group.node_group.node_group_name, "asgName": group.asg_name}
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs


if __name__ == "__main__":  # the Pulumi engine runs this file as __main__
    main()
