"""Policy configuration: enforcement per rule and environment, in CrossGuard's `--policy-pack-config` format.

`{"all": "mandatory", "<rule>": "advisory" | {"enforcementLevel": "...", <rule properties>}}`. The defaults
per environment below are the base of every stack's config (`runner.stack_policy_config` adds the stack's
budget); `mlops-infra policy-config` writes that to `policies/config/<stack>.json`, the file `make preview`
and `make deploy` pass as `--policy-pack-config`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_policies.model import ENFORCEMENT_LEVELS, Rule

# Types too large for a dev/test stack; prod may still use them.
NONPROD_DENIED = ["p4d.*", "p5.*", "trn1.32xlarge", "inf2.48xlarge", "g5.48xlarge", "ct5p-*"]

# kube-system holds only node agents (device plugins, device monitors) that need host access by design;
# the pod-privilege rules skip it. Everything else there is still checked (images, resources, secrets).
_NODE_AGENTS = {"enforcementLevel": "mandatory", "exemptNamespaces": ["kube-system"]}
_BASE: dict[str, Any] = {
    "all": "mandatory",
    "k8s-no-privileged": _NODE_AGENTS,
    "k8s-run-as-non-root": _NODE_AGENTS,
    "k8s-no-host-path": _NODE_AGENTS,
}

DEFAULT_CONFIGS: dict[str, dict[str, Any]] = {
    "dev": {
        **_BASE,
        "eks-endpoint-private": {"enforcementLevel": "mandatory", "requirePrivate": False},
        "eks-control-plane-logging": "advisory",
        "k8s-probes-set": "advisory",
        "budget-within-limit": "advisory",
        "node-group-max-bounded": {"enforcementLevel": "advisory", "maxNodes": 20, "maxAcceleratorNodes": 4},
        "allowed-instance-types": {"enforcementLevel": "mandatory", "denied": NONPROD_DENIED},
        "spot-for-nonprod-accelerators": "advisory",
    },
    "test": {
        **_BASE,
        "eks-endpoint-private": {"enforcementLevel": "mandatory", "requirePrivate": False},
        "node-group-max-bounded": {"enforcementLevel": "mandatory", "maxNodes": 30, "maxAcceleratorNodes": 8},
        "allowed-instance-types": {"enforcementLevel": "mandatory", "denied": NONPROD_DENIED},
        "spot-for-nonprod-accelerators": "advisory",
    },
    "prod": {
        **_BASE,
        "eks-endpoint-private": {"enforcementLevel": "mandatory", "requirePrivate": True},
        "node-group-max-bounded": {
            "enforcementLevel": "mandatory",
            "maxNodes": 100,
            "maxAcceleratorNodes": 32,
        },
    },
}
ENVIRONMENT_RULES = (
    "prod-multi-az",
    "prod-stateful-protected",
    "prod-serving-replicas-and-pdb",
    "accelerators-scale-to-zero-nonprod",
    "spot-for-nonprod-accelerators",
)


class PolicyConfigError(ValueError):
    """A policy config that names an unknown rule or level; the message says what is allowed."""


def default_config(environment: str) -> dict[str, Any]:
    """The environment's defaults, with `environment` set for the rules that depend on it."""
    if environment not in DEFAULT_CONFIGS:
        raise PolicyConfigError(
            f"no policy defaults for environment {environment!r}; allowed: dev, test, prod"
        )
    config = copy.deepcopy(DEFAULT_CONFIGS[environment])
    for rule in ENVIRONMENT_RULES:
        entry = config.get(rule, {})
        entry = {"enforcementLevel": entry} if isinstance(entry, str) else dict(entry)
        entry["environment"] = environment
        config[rule] = entry
    return config


def load_config(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise PolicyConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise PolicyConfigError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PolicyConfigError(f'{path}: expected an object such as {{"all": "mandatory"}}')
    return doc


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Override entries win; rule property objects are merged key by key."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        old = out.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            out[key] = {**old, **value}
        elif isinstance(value, Mapping) and isinstance(old, str):
            out[key] = {"enforcementLevel": old, **value}
        elif isinstance(value, str) and isinstance(old, Mapping):
            out[key] = {**old, "enforcementLevel": value}  # a level alone keeps the rule's properties
        else:
            out[key] = copy.deepcopy(value)
    return out


def _level(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if value not in ENFORCEMENT_LEVELS:
        raise PolicyConfigError(
            f"{where}: enforcement level {value!r}; allowed: {', '.join(ENFORCEMENT_LEVELS)}"
        )
    return str(value)


def resolve(config: Mapping[str, Any], rules: list[Rule]) -> dict[str, tuple[str, dict[str, Any]]]:
    """rule name -> (enforcement level, rule properties), validating names and levels."""
    names = {r.name for r in rules}
    unknown = sorted(set(config) - names - {"all"})
    if unknown:
        raise PolicyConfigError(
            f"policy config names unknown rules {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        )
    all_entry = config.get("all", "advisory")
    default = _level(
        all_entry.get("enforcementLevel") if isinstance(all_entry, Mapping) else all_entry, "all"
    )
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for rule in rules:
        entry = config.get(rule.name)
        props: dict[str, Any] = {}
        level = None
        if isinstance(entry, Mapping):
            props = {k: v for k, v in entry.items() if k != "enforcementLevel"}
            level = _level(entry.get("enforcementLevel"), rule.name)
        elif entry is not None:
            level = _level(entry, rule.name)
        out[rule.name] = (level or default or "advisory", props)
    return out
