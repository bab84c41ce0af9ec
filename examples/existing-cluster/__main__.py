"""Use two mlops-infra components from another infra repo: wrap an existing cluster, add the namespaces.

Only the installed `mlops_infra` package is imported, exactly as a team's own Pulumi program would.
"""

from __future__ import annotations

import pulumi

from mlops_infra.components.k8s.namespaces import Namespaces, NamespacesArgs
from mlops_infra.components.local.cluster import LocalCluster, LocalClusterArgs


def main() -> dict[str, pulumi.Output[str]]:
    config = pulumi.Config()
    cluster = LocalCluster(
        "team-cluster", LocalClusterArgs(version="1.33", context=config.get("kubeContext"))
    )
    namespaces = Namespaces(
        "team-namespaces",
        NamespacesArgs(
            cluster=cluster.handle, namespaces={"fraud-serving": "restricted"}, labels={"team": "fraud"}
        ),
    )
    outputs = {"namespace": namespaces.names["fraud-serving"]}
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs


if __name__ == "__main__":  # the Pulumi engine runs this file as __main__
    main()
