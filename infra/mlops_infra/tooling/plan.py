"""The offline plan: every resource a program registers, as the engine would receive it, and the plan's JSON
form (`plan --json`, docs/cli.md). Independent of how it was recorded and of this platform's stack config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops_infra.platform.config import PROJECT, StackConfig

SECRET = "[secret]"
UNKNOWN = "[unknown]"
_ABSENT = object()


@dataclass(frozen=True)
class RecordedResource:
    """One resource registration as the engine would see it."""

    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    protect: bool
    provider: str | None
    inputs: dict[str, Any]
    ignore_changes: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    # What the engine would hold after the step (the mock's answer, masked): computed ARNs, URLs, ids. Policy
    # rules read it to know what the plan declares; `plan --json` carries the part that is not an input.
    outputs: dict[str, Any] = field(default_factory=dict)
    import_id: str | None = None  # the `import_` option: adopt this existing resource instead of creating it
    retain_on_delete: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "custom": self.custom,
            "protect": self.protect,
            "inputs": self.inputs,
            "dependencies": sorted(set(self.depends_on)),
            "outputs": {k: v for k, v in self.outputs.items() if self.inputs.get(k, _ABSENT) != v},
        }


@dataclass
class Plan:
    """What a program would create: every resource and the stack outputs, and the validated stack config
    when the program is this platform's (None for any other program: a team's own)."""

    stack: str
    config: StackConfig | None
    resources: list[RecordedResource]
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def environment(self) -> str | None:
        """dev/test/prod: the stack config's, else the `environment` tag or label the resources carry."""
        if self.config is not None:
            return self.config.environment
        for r in self.resources:
            for key in ("tags", "labels", "resourceLabels"):
                found = (
                    (r.inputs.get(key) or {}).get("environment")
                    if isinstance(r.inputs.get(key), dict)
                    else None
                )
                if isinstance(found, str) and found in ("dev", "test", "prod"):
                    return found
        return None

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str) -> RecordedResource:
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r}")
        return found[0]

    def k8s_objects(self) -> list[RecordedResource]:
        """Custom Kubernetes objects declared directly (not providers, not Helm releases)."""
        return [
            r
            for r in self.resources
            if r.custom
            and r.type.startswith("kubernetes:")
            and not r.type.startswith(("kubernetes:helm.sh/", "pulumi:providers:"))
        ]

    def helm_releases(self) -> list[RecordedResource]:
        return self.of_type("kubernetes:helm.sh/v3:Release")


def plan_json(plan: Plan) -> dict[str, Any]:
    """The `plan --json` object of docs/cli.md (cost and violations are added by their modules)."""
    return {
        "stack": plan.stack,
        "project": PROJECT,
        "environment": plan.environment,
        "resources": [r.to_json() for r in plan.resources],
        "outputs": plan.outputs,
    }
