"""Reusable Pulumi components: each a `pulumi.ComponentResource` with type `mlops:<module>:<Name>`, signature
`(name, args, opts=None)` and typed args, usable without the rest of the platform. They never read a stack's
config; `platform` turns a stack config into their args."""

__all__ = ["accelerators", "aws", "catalog", "gcp", "images", "k8s", "local", "node_group"]
