"""Offline tooling: record any Pulumi program under mocks (`offline`, `plan`, `sdk`), render its manifests,
estimate and compare its cost, right-size it, check it with the policy pack, and the `mlops-infra` CLI."""

__all__ = [
    "chart_keys",
    "cli",
    "cost",
    "guardrails",
    "offline",
    "plan",
    "plan_view",
    "policy_files",
    "project",
    "render",
    "sdk",
]
