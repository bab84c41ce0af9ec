"""Ordering in a plan: does one resource (transitively) wait for another?"""

from __future__ import annotations

from collections.abc import Sequence

from mlops_policies.model import Resource


class DependencyGraph:
    """The `dependsOn` edges of a plan (explicit options and inputs taken from other resources' outputs)."""

    def __init__(self, resources: Sequence[Resource]):
        self._deps = {r.urn: r.dependencies for r in resources}
        self._closure: dict[str, frozenset[str]] = {}

    def upstream(self, urn: str) -> frozenset[str]:
        """Every resource `urn` waits for, directly or through others."""
        if urn not in self._closure:
            seen: set[str] = set()
            todo = list(self._deps.get(urn, ()))
            while todo:
                dep = todo.pop()
                if dep not in seen:
                    seen.add(dep)
                    todo.extend(self._deps.get(dep, ()))
            self._closure[urn] = frozenset(seen)
        return self._closure[urn]

    def waits_for(self, urn: str, other: str) -> bool:
        return other in self.upstream(urn)
