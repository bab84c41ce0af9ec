"""mlops-infra: Pulumi components for ML platforms, in three layers (each imports only the ones below it):

- `mlops_infra.components`: reusable components with plain typed args (clusters, node groups, Redis, MLflow,
  monitoring, workloads), the accelerator registry and the instance catalog;
- `mlops_infra.platform`: one stack's config, environment defaults, one backend per cloud, the composition;
- `mlops_infra.tooling`: the offline engine (plan), render, cost and right-sizing, the `mlops-infra` CLI.
"""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__", "components", "platform", "tooling"]

try:
    __version__ = version("mlops-infra")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
