"""mlops-infra: Pulumi components for ML platforms."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlops-infra")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
