"""mlops-infra: Pulumi components for ML platforms."""
