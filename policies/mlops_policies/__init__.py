"""The mlops-platform guardrails: security, reliability and cost rules as plain functions.

The same functions run under the Pulumi engine (wrapped by :mod:`mlops_policies.pack` into a CrossGuard
policy pack) and offline over a recorded plan (:mod:`mlops_policies.runner`, used by `mlops-infra check`).
"""

from mlops_policies.model import ENFORCEMENT_LEVELS, Resource, Rule, Violation

__all__ = ["ENFORCEMENT_LEVELS", "Resource", "Rule", "Violation"]
