"""One stack: its config (validated, with the environment defaults in one place), one backend per cloud
(`AwsPlatform`, `GkePlatform`, a local cluster) and the composition `Platform` that the Pulumi program runs."""

__all__ = ["aws", "config", "gcp", "gcp_services", "services", "stack", "workloads"]
