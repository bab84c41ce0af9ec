"""Chart rules: every Helm release's values use only keys its pinned chart version defines.

Helm ignores a value key the chart never reads, so a misspelt or outdated key (after a chart upgrade
renamed it) silently does nothing. The key sets come from the chart sources at each pinned version
(`mlops_infra.tooling.chart_keys`); a pin without a key set is itself a finding, so a version bump cannot skip
regenerating them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from mlops_infra.tooling import chart_keys
from mlops_policies.model import HELM_RELEASE, Resource, Rule


def helm_values_known(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if r.type != HELM_RELEASE:
        return
    chart, version = r.get("chart"), r.get("version")
    values = r.get("values", default={})
    if not isinstance(chart, str) or not isinstance(version, str) or not isinstance(values, Mapping):
        return  # an unpinned chart is k8s-image-pinned's finding
    name = chart_keys.chart_name(chart)
    try:
        undefined = chart_keys.undefined_keys(chart, version, values)
    except chart_keys.MissingKeySet as exc:
        yield f"Helm release {r.name}: {exc}"
        return
    for path in undefined:
        yield (
            f"Helm release {r.name}: values.{path} is not a value chart {name} {version} defines "
            "(neither its values.yaml nor its templates); Helm would ignore it - fix the key or the chart pin"
        )


RULES: list[Rule] = [
    Rule(
        "helm-values-known",
        "reliability",
        "Helm release values use only keys the pinned chart version defines (values.yaml or templates).",
        resource_check=helm_values_known,
    ),
]
