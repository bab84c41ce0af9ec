"""Karpenter rules: what makes NodePools launch nothing, lose pods early or break a PodDisruptionBudget.

- `karpenter-node-class-exists`: every NodePool names an EC2NodeClass of the plan (`nodeClassRef`); without it
  Karpenter launches no node for the pool and its pods stay Pending.
- `karpenter-respects-pdbs`: a NodePool whose nodes may run a pod covered by a PodDisruptionBudget sets no
  `terminationGracePeriod`. Karpenter drains with the Eviction API and waits for PDBs, but once a node's
  terminationGracePeriod elapses it deletes the remaining pods, PDB or not, and with it set drift may disrupt
  nodes whose PDBs block (aws/karpenter-provider-aws v1.14 concepts/disruption.md, "TerminationGracePeriod").
- `karpenter-interruption-queue`: a stack whose NodePools admit spot runs the controller with
  `settings.interruptionQueue` set; without it a spot reclaim kills the node with its pods instead of Karpenter
  draining it in the two minutes' notice (chart 1.14.1 values.yaml: "Interruption handling is disabled if not
  specified").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mlops_infra.components.aws import karpenter_types
from mlops_policies.model import HELM_RELEASE, Resource, Rule, as_list, dig, display, namespace_of
from mlops_policies.nodes import NODE_POOL, cluster_nodes
from mlops_policies.pods import chart_name, pod_templates
from mlops_policies.scheduling import build_cluster, group_problem
from mlops_policies.selectors import selector_matches

StackFindings = Iterator[tuple[str | None, str]]
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"


def _pools(resources: Sequence[Resource]) -> list[Resource]:
    return [r for r in resources if r.type == NODE_POOL]


def _name(r: Resource) -> str:
    return str(r.get("metadata", "name", default=r.name))


def node_class_exists(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    del config
    classes = {_name(r) for r in resources if r.type == NODE_CLASS}
    for pool in _pools(resources):
        ref = pool.get("spec", "template", "spec", "nodeClassRef", default={}) or {}
        if ref.get("kind") != "EC2NodeClass" or ref.get("name") not in classes:
            yield (
                pool.urn,
                f"{display(pool)}: nodeClassRef {ref.get('kind')}/{ref.get('name')} names no EC2NodeClass of this "
                f"stack (it has: {', '.join(sorted(classes)) or 'none'}); Karpenter launches nothing for it",
            )


def respects_pdbs(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    del config
    forcing = [p for p in _pools(resources) if p.get("spec", "template", "spec", "terminationGracePeriod")]
    if not forcing:
        return
    pdbs = [r for r in resources if r.type == PDB]
    pods = pod_templates(resources)
    protected = [
        (pod, pdb)
        for pod in pods
        for pdb in pdbs
        if namespace_of(pdb) == pod.namespace
        and pod.labels
        and selector_matches(pdb.get("spec", "selector"), pod.labels)
    ]
    cluster = build_cluster(cluster_nodes(resources), pods)
    for pool in forcing:
        grace = pool.get("spec", "template", "spec", "terminationGracePeriod")
        landing = sorted(
            {f"{pod.display} ({display(pdb)})" for pod, pdb in protected if group_problem(pod, cluster, _name(pool)) is None}
        )  # fmt: skip
        if landing:
            yield (
                pool.urn,
                f"{display(pool)}: terminationGracePeriod {grace} lets Karpenter delete pods whose PodDisruptionBudget "
                f"blocks eviction once it elapses, and drift disrupt such nodes; it may run {', '.join(landing)}: "
                "remove terminationGracePeriod so draining waits for the budget",
            )


def interruption_queue(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    del config
    spot = [
        p
        for p in _pools(resources)
        if "spot"
        in karpenter_types.capacity_types(
            [q for q in as_list(p.get("spec", "template", "spec", "requirements")) if isinstance(q, Mapping)]
        )
    ]
    if not spot:
        return
    releases = [r for r in resources if r.type == HELM_RELEASE and chart_name(r) == "karpenter"]
    if any(dig(r.get("values", default={}), "settings", "interruptionQueue") for r in releases):
        return
    where = releases[0].urn if releases else spot[0].urn
    yield (
        where,
        f"NodePool(s) {', '.join(sorted(_name(p) for p in spot))} launch spot nodes, but no Karpenter release sets "
        "settings.interruptionQueue: a spot reclaim then takes the node and its pods without a drain; create the "
        "interruption queue (SQS + EventBridge rules) and name it there",
    )


RULES: list[Rule] = [
    Rule(
        "karpenter-node-class-exists",
        "reliability",
        "Every Karpenter NodePool names an EC2NodeClass the stack declares.",
        stack_check=node_class_exists,
    ),
    Rule(
        "karpenter-respects-pdbs",
        "reliability",
        "NodePools that may run PDB-protected pods set no terminationGracePeriod (which overrides PDBs).",
        stack_check=respects_pdbs,
    ),
    Rule(
        "karpenter-interruption-queue",
        "reliability",
        "Spot NodePools come with Karpenter's interruption queue (settings.interruptionQueue).",
        stack_check=interruption_queue,
    ),
]
