"""Pinned versions per EKS minor: managed add-ons and the cluster-autoscaler image.

Pure data (no Pulumi import) so config validation can reject a cluster version this release has no
pins for. Before bumping, list what EKS offers for a minor with
`aws eks describe-addon-versions --kubernetes-version 1.33 --addon-name <name>` and take the default.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AddonPins:
    vpc_cni: str
    coredns: str
    kube_proxy: str
    ebs_csi_driver: str
    pod_identity_agent: str

    def by_name(self) -> dict[str, str]:
        """EKS add-on name -> pinned version."""
        return {
            "vpc-cni": self.vpc_cni,
            "coredns": self.coredns,
            "kube-proxy": self.kube_proxy,
            "aws-ebs-csi-driver": self.ebs_csi_driver,
            "eks-pod-identity-agent": self.pod_identity_agent,
        }


# Versions EKS lists for each minor (describe-addon-versions, us-east-1). kube-proxy follows the minor.
EKS_ADDON_VERSIONS: dict[str, AddonPins] = {
    "1.31": AddonPins(
        vpc_cni="v1.19.2-eksbuild.5",
        coredns="v1.11.4-eksbuild.2",
        kube_proxy="v1.31.3-eksbuild.2",
        ebs_csi_driver="v1.38.1-eksbuild.1",
        pod_identity_agent="v1.3.4-eksbuild.1",
    ),
    "1.32": AddonPins(
        vpc_cni="v1.19.2-eksbuild.5",
        coredns="v1.11.4-eksbuild.10",
        kube_proxy="v1.32.0-eksbuild.2",
        ebs_csi_driver="v1.39.0-eksbuild.1",
        pod_identity_agent="v1.3.5-eksbuild.2",
    ),
    "1.33": AddonPins(
        vpc_cni="v1.20.1-eksbuild.3",
        coredns="v1.11.4-eksbuild.22",
        kube_proxy="v1.33.0-eksbuild.2",
        ebs_csi_driver="v1.48.0-eksbuild.2",
        pod_identity_agent="v1.3.8-eksbuild.2",
    ),
    "1.34": AddonPins(
        vpc_cni="v1.20.4-eksbuild.1",
        coredns="v1.12.4-eksbuild.1",
        kube_proxy="v1.34.0-eksbuild.2",
        ebs_csi_driver="v1.50.1-eksbuild.1",
        pod_identity_agent="v1.3.9-eksbuild.3",
    ),
}

# cluster-autoscaler image per cluster minor (registry.k8s.io/autoscaling/cluster-autoscaler). The
# autoscaler's minor must match the cluster's: it vendors that minor's scheduler code.
CLUSTER_AUTOSCALER_IMAGE_TAGS: dict[str, str] = {
    "1.31": "v1.31.0",
    "1.32": "v1.32.5",
    "1.33": "v1.33.3",
    "1.34": "v1.34.2",
}

SUPPORTED_EKS_VERSIONS: tuple[str, ...] = tuple(
    sorted(set(EKS_ADDON_VERSIONS) & set(CLUSTER_AUTOSCALER_IMAGE_TAGS))
)


def addon_pins(version: str) -> AddonPins:
    """Pinned add-on versions for a cluster minor; a clear error for a minor without pins."""
    try:
        return EKS_ADDON_VERSIONS[version]
    except KeyError:
        raise ValueError(
            f"no EKS add-on pins for Kubernetes {version}; supported: {', '.join(SUPPORTED_EKS_VERSIONS)}"
        ) from None


def autoscaler_image_tag(version: str) -> str:
    try:
        return CLUSTER_AUTOSCALER_IMAGE_TAGS[version]
    except KeyError:
        raise ValueError(
            f"no cluster-autoscaler image pinned for Kubernetes {version}; "
            f"supported: {', '.join(SUPPORTED_EKS_VERSIONS)}"
        ) from None
