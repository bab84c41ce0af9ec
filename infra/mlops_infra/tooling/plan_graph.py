"""`plan STACK --graph`: the stack as a picture. Components are clusters (nested as the component tree),
resources are nodes, dependencies are edges from the resource depended on to the one that depends on it.

Kept legible three ways, none of which drops a fact the picture claims:
- a dependency on a whole component (Pulumi expands `depends_on=[component]` to every resource under it) is
  drawn once, from the component's cluster, not once per resource inside it;
- an edge implied by a longer path (A -> B -> C makes A -> C redundant) is left out (transitive reduction);
- three or more resources under one component with the same type and the same dependents (the autoscaler
  tags of a node group, the policy attachments of a role) are one node labelled with their count.
The DOT text is deterministic (same plan, same bytes); SVG comes from Graphviz's `dot`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

COLLAPSE_MIN = 3
NAME_CHARS = 34
DOT_TIMEOUT_S = 120
COLORS = {  # fill per provider (type token prefix); anything else is grey
    "aws": "#fde8cf",
    "gcp": "#d7e6fb",
    "kubernetes": "#dcefe3",
    "random": "#ececec",
    "docker": "#e3e0f5",
    "pulumi": "#f5f0c8",
}


class GraphError(Exception):
    """A graph that cannot be drawn (no Graphviz for SVG, or dot failed): exit code 2."""


@dataclass
class _Node:
    id: str
    urns: list[str]
    type: str
    label: str


@dataclass
class _Cluster:
    id: str
    urn: str
    label: str
    nodes: list[_Node] = field(default_factory=list)
    clusters: list[_Cluster] = field(default_factory=list)


def short_type(type_token: str) -> str:
    """`aws:eks/nodeGroup:NodeGroup` -> `aws eks NodeGroup`; `pulumi:providers:kubernetes` -> provider."""
    if type_token.startswith("pulumi:providers:"):
        return f"{type_token.rsplit(':', 1)[-1]} provider"
    parts = type_token.split(":")
    if len(parts) != 3:
        return type_token
    package, module, kind = parts
    module = module.split("/", 1)[0] if package != "kubernetes" else ""
    return " ".join(p for p in (package, module if module not in ("index", "") else "", kind) if p)


def _clip(text: str, limit: int = NAME_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class _Graph:
    """The plan's resources as nodes, clusters and reduced edges (see the module docstring)."""

    def __init__(self, resources: Iterable[Mapping[str, Any]]):
        self.by_urn = {str(r["urn"]): r for r in resources}
        self.custom = {u for u, r in self.by_urn.items() if r.get("custom")}
        self.children: dict[str | None, list[str]] = defaultdict(list)
        for urn, r in sorted(self.by_urn.items()):
            parent = r.get("parent")
            self.children[parent if parent in self.by_urn else None].append(urn)
        self.components = sorted(u for u in self.by_urn if u not in self.custom)
        self.node_of: dict[str, str] = {}
        self._below: dict[str | None, frozenset[str]] = {}

    def home(self, urn: str) -> str | None:
        """The component a resource is drawn in: its nearest ancestor that is a component (a resource may
        be parented to another resource, e.g. a role's policy attachments), None for the stack itself."""
        parent = self.by_urn[urn].get("parent")
        while parent in self.by_urn and parent in self.custom:
            parent = self.by_urn[parent].get("parent")
        return parent if parent in self.by_urn else None

    def descendants(self, urn: str | None) -> frozenset[str]:
        """The resources a dependency on component `urn` expands to, as the SDK expands it: its resource
        children and, through its child components, theirs (not the children of a resource)."""
        if urn not in self._below:
            found: set[str] = set()
            for child in self.children[urn]:
                if child in self.custom:
                    found.add(child)
                else:
                    found |= self.descendants(child)
            self._below[urn] = frozenset(found)
        return self._below[urn]

    def dependencies(self) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """(resource -> resource, component -> resource) dependency edges, whole components folded."""
        whole = sorted(
            (c for c in self.components if len(self.descendants(c)) >= 2),
            key=lambda c: (-len(self.descendants(c)), c),
        )
        resource_edges: set[tuple[str, str]] = set()
        component_edges: set[tuple[str, str]] = set()
        for urn in sorted(self.custom):
            deps = {d for d in self.by_urn[urn].get("dependencies") or () if d in self.custom and d != urn}
            for component in whole:
                inside = self.descendants(component)
                if urn not in inside and inside <= deps:
                    component_edges.add((component, urn))
                    deps -= inside
            resource_edges |= {(d, urn) for d in deps}
        return resource_edges, component_edges


def _reduce(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Transitive reduction of a DAG: drop a -> c when c is reachable from a through another successor."""
    succ: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        succ[a].add(b)

    @cache
    def reach(a: str) -> frozenset[str]:
        found: set[str] = set()
        for b in succ[a]:
            found |= {b} | reach(b)
        return frozenset(found)

    return {(a, b) for a, b in edges if not any(b in reach(c) for c in succ[a] if c != b)}


def _group_key(graph: _Graph, urn: str, dependents: Mapping[str, frozenset[str]]) -> tuple[Any, ...]:
    return (graph.home(urn), graph.by_urn[urn].get("type"), dependents.get(urn, frozenset()))


def _nodes(graph: _Graph, edges: set[tuple[str, str]]) -> dict[str, _Node]:
    """One node per resource, or per group of COLLAPSE_MIN+ same-type siblings with the same dependents."""
    dependents: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        dependents[a].add(b)
    frozen = {k: frozenset(v) for k, v in dependents.items()}
    groups: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for urn in sorted(graph.custom):
        groups[_group_key(graph, urn, frozen)].append(urn)
    nodes: dict[str, _Node] = {}
    for urns in sorted(groups.values()):
        type_token = str(graph.by_urn[urns[0]].get("type", ""))
        if len(urns) >= COLLAPSE_MIN:
            members = [(urns, f"{len(urns)} x {short_type(type_token)}")]
        else:
            members = [
                (
                    [u],
                    f"{_clip(str(graph.by_urn[u].get('name', u.rsplit('::', 1)[-1])))}\n{short_type(type_token)}",
                )
                for u in urns
            ]
        for member_urns, label in members:
            node = _Node(f"n{len(nodes)}", member_urns, type_token, label)
            nodes[node.id] = node
            graph.node_of.update(dict.fromkeys(member_urns, node.id))
    return nodes


def _clusters(graph: _Graph, nodes: Mapping[str, _Node]) -> _Cluster:
    """The component tree as nested clusters; the root (the stack) is not drawn as a cluster."""
    by_parent: dict[str | None, list[_Node]] = defaultdict(list)
    for node in nodes.values():
        by_parent[graph.home(node.urns[0])].append(node)
    counter = iter(range(len(graph.components) + 1))

    def build(urn: str | None) -> _Cluster:
        if urn is None:
            cluster = _Cluster("root", "", "")
        else:
            r = graph.by_urn[urn]
            cluster = _Cluster(
                f"cluster_c{next(counter)}", urn, f"{r.get('type')}\n{_clip(str(r.get('name')))}"
            )
        cluster.nodes = by_parent[urn]
        cluster.clusters = [build(c) for c in graph.children[urn] if c not in graph.custom]
        cluster.clusters = [c for c in cluster.clusters if c.nodes or c.clusters]
        return cluster

    return build(None)


def _anchor(cluster: _Cluster) -> _Node:
    """A node inside the cluster for `ltail` edges (Graphviz draws cluster edges through one)."""
    if cluster.nodes:
        return cluster.nodes[0]
    return _anchor(cluster.clusters[0])


def to_dot(document: Mapping[str, Any]) -> str:
    """The DOT text of a `plan --json` document's resources."""
    graph = _Graph(document.get("resources") or [])
    resource_edges, component_edges = graph.dependencies()
    nodes = _nodes(graph, _reduce(resource_edges))
    root = _clusters(graph, nodes)
    clusters_by_id: dict[str, _Cluster] = {}
    lines = [
        f"// {document.get('stack', 'stack')}: components (clusters), resources (nodes), dependencies (edges)",
        f"digraph {_quote(str(document.get('stack', 'stack')))} {{",
        "  rankdir=LR; compound=true; newrank=true; nodesep=0.15; ranksep=0.5;",
        '  graph [fontname="Helvetica", fontsize=11, style="rounded", color="#9a9a9a"];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=9, margin="0.08,0.03"];',
        '  edge [color="#7a7a7a", arrowsize=0.6];',
    ]

    def emit(cluster: _Cluster, depth: int) -> None:
        pad = "  " * depth
        for node in cluster.nodes:
            fill = COLORS.get(node.type.split(":", 1)[0], "#f2f2f2")
            lines.append(f'{pad}{node.id} [label={_quote(node.label)}, fillcolor="{fill}"];')
        for child in cluster.clusters:
            clusters_by_id[child.urn] = child
            lines.append(f"{pad}subgraph {child.id} {{")
            lines.append(f"{pad}  label={_quote(child.label)};")
            emit(child, depth + 1)
            lines.append(f"{pad}}}")

    emit(root, 1)
    edges: set[tuple[str, str, str]] = set()
    for a, b in _reduce(resource_edges):
        if graph.node_of[a] != graph.node_of[b]:
            edges.add((graph.node_of[a], graph.node_of[b], ""))
    for component, urn in component_edges:
        cluster = clusters_by_id.get(component)
        if cluster is None:
            continue
        edges.add((_anchor(cluster).id, graph.node_of[urn], f' [ltail="{cluster.id}"]'))
    lines += [f"  {a} -> {b}{attrs};" for a, b, attrs in sorted(edges, key=_edge_order)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _edge_order(edge: tuple[str, str, str]) -> tuple[int, int, str]:
    return int(edge[0][1:]), int(edge[1][1:]), edge[2]


def to_svg(dot: str) -> bytes:
    """Render DOT with Graphviz (Debian package `graphviz`)."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphError(
            "--format svg needs Graphviz's `dot` on PATH (Debian/Ubuntu package graphviz; "
            "scripts/ensure-tools.sh installs it); --format dot needs nothing"
        )
    try:
        proc = subprocess.run(
            [exe, "-Tsvg"], input=dot.encode(), capture_output=True, timeout=DOT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise GraphError(f"dot took over {DOT_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr.decode(errors="replace").strip().splitlines() or ["(no output)"])[-1]
        raise GraphError(f"dot failed (exit {proc.returncode}): {tail}")
    return proc.stdout
