"""The cluster's default StorageClass: encrypted gp3 through the EBS CSI driver.

New EKS clusters no longer mark any StorageClass as default, so a PersistentVolumeClaim without
`storageClassName` (Prometheus, in-cluster Redis/MLflow) would stay Pending without this.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlops_infra.components.k8s.cluster import ClusterHandle

DEFAULT_STORAGE_CLASS = "gp3"


@dataclass(frozen=True)
class EbsStorageClassArgs:
    cluster: ClusterHandle
    kms_key_arn: pulumi.Input[str] | None = None
    retain: bool = False  # prod keeps a volume whose claim was deleted by mistake
    name: str = DEFAULT_STORAGE_CLASS


class EbsStorageClass(pulumi.ComponentResource):
    def __init__(self, name: str, args: EbsStorageClassArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:aws:EbsStorageClass", name, None, opts)
        parameters: dict[str, pulumi.Input[str]] = {"type": "gp3", "encrypted": "true", "fsType": "ext4"}
        if args.kms_key_arn is not None:
            parameters["kmsKeyId"] = args.kms_key_arn
        self.storage_class = k8s.storage.v1.StorageClass(
            args.name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.name, annotations={"storageclass.kubernetes.io/is-default-class": "true"}
            ),
            provisioner="ebs.csi.aws.com",
            parameters=parameters,
            reclaim_policy="Retain" if args.retain else "Delete",
            volume_binding_mode="WaitForFirstConsumer",  # create the volume in the zone the pod lands in
            allow_volume_expansion=True,
            opts=args.cluster.opts(self),
        )
        self.register_outputs({"name": args.name})
