"""k8s components."""
