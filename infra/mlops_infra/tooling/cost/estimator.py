"""Monthly cost of a stack, min / expected / max, computed from the resources it declares.

The estimator reads resources (type token + camelCase inputs), not the stack config, so the very same code
prices an offline plan (`mlops-infra cost`) and the resources the Pulumi engine hands the policy pack
(`budget-within-limit`). Conventions follow Infracost: 730 hours a month, usage-based charges (NAT GB
processed, S3/GCS GB stored, log GB ingested) only from a usage file, never guessed.

Prices: instances in the stack's region (`aws:region` / `gcp:region`) from the generated tables
(components/pricing.py); a region without a table is priced with the cloud's reference-region figures and
every such item is marked estimated (with a warning). Managed services carry reference-region figures only
(us-east-1 / us-central1), marked estimated in any other region. An item is *estimated* when its figure is
not a dataset figure for its own region (fallback region, derived, flagged, UNVERIFIED, team-supplied), and
*unpriced* when there is no figure at all (type not offered in the region, team type without a price, a SKU
the catalog lacks): unpriced items keep their quantities, count 0 in the totals and are counted, never dropped.

Quantities:
- node groups: min / desired / max nodes. `desired` is the creation size; with a `scaleDownSchedule` on the
  group's config, expected = min + (active - min) x active share of the week, where active is the
  schedule's `activeNodes` (default: desired).
- several instance types in one group: on-demand uses the first (EKS managed groups allocate on-demand with
  the `prioritized` strategy), spot the cheapest spot price (`price-capacity-optimized` favours it).
- TPU multi-host node pools count whole slices: node counts are rounded up to a multiple of hosts per slice.
- Karpenter NodePools: min 0 (Karpenter keeps no idle nodes), expected the `mlops.platform/expected-nodes`
  annotation (the group's desired size), max the most nodes `spec.limits` allow. A pool may launch any type its
  requirements admit, so it is priced at the admitted type (and capacity type) with the highest ceiling; a pool
  without limits has no ceiling and its max is reported as its expected, with a note (the policy
  `node-group-max-bounded` rejects it). Root volumes come from the EC2NodeClass it references.
- RDS multi-AZ bills two instances and twice the storage (catalog `rds-multi-az-factor`).
- Cloud SQL custom tiers (`db-custom-<vCPUs>-<MB>`, Enterprise edition) bill vCPUs, memory and SSD storage;
  REGIONAL (HA) availability doubles each (catalog `cloudsql-ha-factor`). Backups are usage-based and not
  estimated; other tiers and editions carry no catalog price.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from mlops_infra.components import catalog, pricing
from mlops_infra.components.aws import karpenter_types
from mlops_infra.components.k8s.objects import dig, quantity

if TYPE_CHECKING:
    from mlops_infra.platform.config import BudgetConfig, StackConfig
    from mlops_infra.tooling.plan import Plan

HOURS_PER_MONTH = 730.0
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
EXPECTED_NODES_ANNOTATION = "mlops.platform/expected-nodes"
KARPENTER_DEFAULT_DISK_GB = 20  # AL2023 default block device mapping (concepts/nodeclasses.md)
CURRENCY = "USD"
EKS_DEFAULT_DISK_GB = 20  # EKS managed node groups without diskSize or launch template
GKE_DEFAULT_DISK_GB = 100


class PricedResource(Protocol):
    """What the estimator needs of a resource; `mlops_policies.model.Resource` fits."""

    @property
    def urn(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def props(self) -> Mapping[str, Any]: ...
    @property
    def dependencies(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class _Res:
    urn: str
    type: str
    name: str
    props: Mapping[str, Any]
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Range:
    min: float
    expected: float
    max: float

    def scale(self, factor: float) -> Range:
        return Range(self.min * factor, self.expected * factor, self.max * factor)

    def to_json(self, digits: int = 2) -> dict[str, float]:
        return {
            "min": round(self.min, digits),
            "expected": round(self.expected, digits),
            "max": round(self.max, digits),
        }


@dataclass(frozen=True)
class CostItem:
    """One priced line: `monthly = quantity x hourly x 730` (hourly is the price of one unit for one hour)."""

    urn: str
    type: str
    sku: str
    quantity: Range
    hourly: float
    source: str
    unit: str = "hour"
    note: str = ""
    region: str | None = None  # region the price is for
    estimated: tuple[str, ...] = ()  # why the figure is only an estimate
    unpriced: str = ""  # why there is no figure (hourly is then 0)

    @property
    def monthly(self) -> Range:
        return Range(
            *(
                round(q * self.hourly * HOURS_PER_MONTH, 2)
                for q in (self.quantity.min, self.quantity.expected, self.quantity.max)
            )
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "urn": self.urn,
            "type": self.type,
            "sku": self.sku,
            "quantity": self.quantity.to_json(6),
            "hourly": round(self.hourly, 10),
            "unitPrice": round(self.hourly * (1.0 if self.unit == "hour" else HOURS_PER_MONTH), 6),
            "monthly": self.monthly.to_json(),
            "unit": self.unit,
            "source": self.source,
            "region": self.region,
            "estimated": bool(self.estimated) and not self.unpriced,
            "unpriced": bool(self.unpriced),
        }
        if self.unpriced or self.estimated:
            doc["reason"] = self.unpriced or "; ".join(self.estimated)
        if self.note:
            doc["note"] = self.note
        return doc


@dataclass(frozen=True)
class Estimate:
    items: list[CostItem]
    budget: dict[str, Any] | None = None
    region: str | None = None  # the stack's region
    warnings: list[str] = field(default_factory=list)
    tables: list[pricing.PriceTable] = field(default_factory=list)  # price tables the items used

    @property
    def monthly(self) -> Range:
        totals = [item.monthly for item in self.items]
        return Range(
            *(round(sum((getattr(t, k) for t in totals), 0.0), 2) for k in ("min", "expected", "max"))
        )

    @property
    def estimated_count(self) -> int:
        return sum(1 for i in self.items if i.estimated and not i.unpriced)

    @property
    def unpriced_count(self) -> int:
        return sum(1 for i in self.items if i.unpriced)

    def to_json(self) -> dict[str, Any]:
        return {
            "currency": CURRENCY,
            "budget": self.budget,
            "monthly": self.monthly.to_json(),
            "items": [i.to_json() for i in self.items],
            "region": self.region,
            "summary": {
                "items": len(self.items),
                "estimated": self.estimated_count,
                "unpriced": self.unpriced_count,
            },
            "priceTables": [
                {
                    "table": t.file,
                    "asOf": t.as_of,
                    "datasets": [d.cite() for d in t.datasets.values()],
                }
                for t in self.tables
            ],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Schedule:
    """Active share of the week for a group that scales down outside working hours."""

    hours_per_day_active: float
    days_per_week: float
    active_nodes: int | None = None  # nodes while active; None: the group's desired size

    @property
    def active_fraction(self) -> float:
        return min(1.0, self.hours_per_day_active * self.days_per_week / 168.0)


@dataclass(frozen=True)
class Usage:
    """Usage-based quantities per month (Infracost-style usage file)."""

    nat_gateway_gb: float = 0.0
    logs_gb: float = 0.0
    bucket_gb: Mapping[str, float] = field(default_factory=dict)  # resource name or "*" -> GB stored


class UsageError(ValueError):
    """A usage file that cannot be read; the message names the file and key."""


def load_usage(path: Path) -> Usage:
    """Read `{natGatewayGb: 500, logsGb: 20, bucketGb: {"*": 100, mlflow-artifacts: 800}}` (YAML or JSON)."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML/JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: expected a mapping with natGatewayGb, logsGb, bucketGb, workloads")
    allowed = {"natGatewayGb", "logsGb", "bucketGb", "workloads"}
    unknown = set(doc) - allowed
    if unknown:
        raise UsageError(
            f"{path}: unknown keys {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}"
        )

    def number(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise UsageError(f"{path}: {key}: got {value!r}: must be a number >= 0 (GB per month)")
        return float(value)

    buckets = doc.get("bucketGb", {}) or {}
    if not isinstance(buckets, dict):
        raise UsageError(f'{path}: bucketGb: must map bucket resource names (or "*") to GB stored')
    return Usage(
        nat_gateway_gb=number("natGatewayGb", doc.get("natGatewayGb", 0)),
        logs_gb=number("logsGb", doc.get("logsGb", 0)),
        bucket_gb={str(k): number(f"bucketGb.{k}", v) for k, v in buckets.items()},
    )


# ---------------------------------------------------------------------------------------------------------


def _int(value: Any, default: int = 0) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


class _Pricer:
    """Prices for one estimate in the stack's region; remembers the tables used and what to warn about."""

    def __init__(self, region: str | None) -> None:
        self.region = region
        self.warnings: list[str] = []
        self.tables: dict[str, pricing.PriceTable] = {}

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def instance(self, name: str, spot: bool) -> pricing.Quote:
        found = pricing.quote(name, spot=spot, region=self.region)
        itype = catalog.find_instance(name)
        if itype is not None:
            reference = pricing.reference_region(itype.cloud)
            if self.region is None:
                self.warn(f"the stack names no region: instances priced with {reference} figures (estimated)")
            elif pricing.table(itype.cloud, self.region) is None:
                self.warn(
                    f"no {itype.cloud} price table for region {self.region} (tables: "
                    f"{', '.join(pricing.regions(itype.cloud))}): instances priced with {reference} figures, "
                    "every one marked estimated"
                )
            if found.region is not None and itype.origin == "built-in":
                tab = pricing.table(itype.cloud, found.region)
                if tab is not None:
                    self.tables.setdefault(tab.file, tab)
        return found

    def service(self, price: catalog.ServicePrice) -> tuple[str, tuple[str, ...]]:
        """(region the figure is for, why it is an estimate)."""
        reference = pricing.reference_region(price.cloud)
        reasons = [price.estimate_reason] if price.estimate_reason else []
        if self.region is None:
            reasons.append(f"stack region unknown: {reference} service price")
        elif self.region != reference:
            reasons.append(f"{reference} service price: no per-region service prices are shipped")
        return reference, tuple(reasons)


def _service(sku: str) -> catalog.ServicePrice | None:
    try:
        return catalog.service_price(sku)
    except KeyError:
        return None


def _hourly(price: catalog.ServicePrice) -> float:
    """Price of one unit for one hour: per-month units are spread over 730 hours."""
    return price.price if price.unit == "hour" else price.price / HOURS_PER_MONTH


def _unpriced(
    r: PricedResource, sku: str, quantity: Range, why: str, unit: str = "hour", note: str = ""
) -> CostItem:
    return CostItem(r.urn, r.type, sku, quantity, 0.0, "", unit, note, unpriced=why)


def _service_item(r: PricedResource, sku: str, quantity: Range, pricer: _Pricer, note: str = "") -> CostItem:
    price = _service(sku)
    if price is None:
        return _unpriced(r, sku, quantity, f"no catalog price for {sku}", note=note)
    region, reasons = pricer.service(price)
    return CostItem(
        r.urn,
        r.type,
        sku,
        quantity,
        _hourly(price),
        f"{price.source} (as of {price.as_of})",
        price.unit,
        note,
        region,
        reasons,
    )


def _pick_instance(names: Sequence[str], spot: bool, pricer: _Pricer) -> pricing.Quote | None:
    """On-demand: the first type (EKS launches it first); spot: the cheapest priced type."""
    quotes = [pricer.instance(n, spot) for n in names]
    if not quotes:
        return None
    priced = [q for q in quotes if q.hourly is not None]
    if spot and priced:
        return min(priced, key=lambda q: q.hourly or 0.0)
    return quotes[0]


def _instance_item(r: PricedResource, found: pricing.Quote, nodes: Range, note: str) -> CostItem:
    itype = catalog.find_instance(found.name)
    cloud = itype.cloud if itype is not None else r.type.split(":", 1)[0]  # a NodePool is a kubernetes type
    sku = f"{cloud}:{found.name}:{'spot' if found.spot else 'on-demand'}"
    if found.hourly is None:
        return _unpriced(r, sku, nodes, found.unpriced, note=note)
    return CostItem(
        r.urn,
        r.type,
        sku,
        nodes,
        found.hourly,
        f"{found.source} (as of {found.as_of})",
        "hour",
        note,
        found.region,
        found.estimated,
    )


def _schedule_for(schedules: Mapping[str, Schedule], *names: str) -> tuple[Schedule | None, int | None]:
    """A group's schedule by its config name, and the slice index for GKE slice pools (`<group>-s<i>`)."""
    for name in names:
        if name in schedules:
            return schedules[name], None
    for name in names:
        base, _, suffix = name.rpartition("-s")
        if base in schedules and suffix.isdigit():
            return schedules[base], int(suffix)
    return None, None


def _node_range(min_n: int, desired: int, max_n: int, schedule: Schedule | None) -> tuple[Range, str]:
    expected = float(desired)
    note = ""
    if schedule is not None:
        active = desired if schedule.active_nodes is None else schedule.active_nodes
        active = max(min_n, min(max_n, active))
        if active > min_n:
            expected = min_n + (active - min_n) * schedule.active_fraction
            note = (
                f"expected: {active} node(s) {schedule.hours_per_day_active:g} h/day x "
                f"{schedule.days_per_week:g} days/week, {min_n} otherwise"
            )
    return Range(float(min_n), expected, float(max_n)), note


def _launch_template_disk(r: PricedResource, by_urn: Mapping[str, PricedResource]) -> int | None:
    for dep in r.dependencies:
        lt = by_urn.get(dep)
        if lt is not None and lt.type == "aws:ec2/launchTemplate:LaunchTemplate":
            for mapping in lt.props.get("blockDeviceMappings") or []:
                size = dig(mapping, "ebs", "volumeSize")
                if isinstance(size, int | float):
                    return int(size)
    return None


def _eks_node_group(
    r: PricedResource,
    by_urn: Mapping[str, PricedResource],
    schedules: Mapping[str, Schedule],
    pricer: _Pricer,
) -> list[CostItem]:
    p = r.props
    spot = str(p.get("capacityType", "ON_DEMAND")).upper() == "SPOT"
    found = _pick_instance([str(n) for n in p.get("instanceTypes") or []], spot, pricer)
    if found is None:
        return []
    scaling = p.get("scalingConfig") or {}
    min_n, max_n = _int(scaling.get("minSize")), _int(scaling.get("maxSize"))
    desired = _int(scaling.get("desiredSize"), min_n)
    group = str(p.get("nodeGroupName") or r.name)
    nodes, note = _node_range(min_n, desired, max_n, _schedule_for(schedules, group, r.name)[0])
    disk = _int(p.get("diskSize"), 0) or _launch_template_disk(r, by_urn) or EKS_DEFAULT_DISK_GB
    return [
        _instance_item(r, found, nodes, note),
        _service_item(r, "ebs-gp3-gb-month", nodes.scale(disk), pricer, f"{disk} GB root volume per node"),
    ]


def _node_class_disk(node_class: PricedResource | None) -> int:
    """The root volume of an EC2NodeClass: the mapping marked rootVolume, or its only mapping (on AL2023 the
    default device /dev/xvda); without one, the AMI family's default size."""
    found = dig(node_class.props, "spec", "blockDeviceMappings") if node_class is not None else None
    mappings = [m for m in found or [] if isinstance(m, Mapping)]
    root = next((m for m in mappings if m.get("rootVolume")), mappings[0] if len(mappings) == 1 else None)
    size = quantity(dig(root, "ebs", "volumeSize")) if root is not None else None
    return int(size / 2**30) if size else KARPENTER_DEFAULT_DISK_GB


def _karpenter_node_pool(
    r: PricedResource,
    node_classes: Mapping[str, PricedResource],
    schedules: Mapping[str, Schedule],
    pricer: _Pricer,
) -> list[CostItem]:
    spec = r.props.get("spec") or {}
    requirements = [q for q in dig(spec, "template", "spec", "requirements") or [] if isinstance(q, Mapping)]
    limits = spec.get("limits") or {}
    options = [
        (itype, capacity, karpenter_types.nodes_within_limits(itype, limits))
        for itype in karpenter_types.admitted_types(requirements)
        for capacity in karpenter_types.capacity_types(requirements)
    ]
    if not options:
        return []

    def price(itype: catalog.InstanceType, capacity: str) -> float:
        return pricer.instance(itype.name, capacity == "spot").hourly or 0.0

    itype, capacity, ceiling = max(
        options, key=lambda o: ((o[2] or 0) * price(o[0], o[1]), price(o[0], o[1]))
    )
    name = str(dig(r.props, "metadata", "name") or r.name)
    expected = _int(quantity(dig(r.props, "metadata", "annotations", EXPECTED_NODES_ANNOTATION)), 0)
    notes = [
        f"a NodePool may launch any admitted type: priced at {itype.name} ({capacity}), the highest ceiling"
    ]
    if ceiling is None:
        ceiling = expected
        notes.append("no limits: the pool has no ceiling, max shown as expected")
    nodes, note = _node_range(0, expected, max(ceiling, expected), _schedule_for(schedules, name, r.name)[0])
    if note:
        notes.append(note)
    disk = _node_class_disk(node_classes.get(str(dig(spec, "template", "spec", "nodeClassRef", "name"))))
    return [
        _instance_item(r, pricer.instance(itype.name, capacity == "spot"), nodes, "; ".join(notes)),
        _service_item(r, "ebs-gp3-gb-month", nodes.scale(disk), pricer, f"{disk} GB root volume per node"),
    ]


def _gke_node_pool(r: PricedResource, schedules: Mapping[str, Schedule], pricer: _Pricer) -> list[CostItem]:
    p = r.props
    node_config = p.get("nodeConfig") or {}
    spot = bool(node_config.get("spot") or node_config.get("preemptible"))
    machine = str(node_config.get("machineType", ""))
    if not machine:
        return []
    itype = catalog.find_instance(machine)
    zones = max(1, len(p.get("nodeLocations") or []))
    auto = p.get("autoscaling") or {}
    fixed = _int(p.get("nodeCount"), _int(p.get("initialNodeCount"), 0))
    if "totalMinNodeCount" in auto or "totalMaxNodeCount" in auto:
        min_n, max_n = _int(auto.get("totalMinNodeCount")), _int(auto.get("totalMaxNodeCount"))
    elif auto:
        min_n, max_n = _int(auto.get("minNodeCount")) * zones, _int(auto.get("maxNodeCount")) * zones
    else:
        min_n = max_n = fixed * zones
    desired = max(
        min_n,
        min(
            max_n, _int(p.get("initialNodeCount"), min_n) * (zones if auto and "minNodeCount" in auto else 1)
        ),
    )
    note_parts = []
    topology = dig(p, "placementPolicy", "tpuTopology")
    if itype is not None and itype.accelerator_kind == "tpu" and isinstance(topology, str):
        try:
            hosts = catalog.tpu_hosts(itype.name, topology)
        except (ValueError, KeyError):
            hosts = 1
        if hosts > 1:
            min_n, desired, max_n = (hosts * math.ceil(n / hosts) for n in (min_n, desired, max_n))
            note_parts.append(f"{topology} slice = {hosts} hosts; counted in whole slices")
    schedule, index = _schedule_for(schedules, str(p.get("name") or r.name))
    if schedule is not None and index is not None and schedule.active_nodes is not None:
        # a group's active nodes fill its slice pools in order (each pool holds max_n nodes)
        share = max(0, min(max_n, schedule.active_nodes - index * max_n))
        schedule = dataclasses.replace(schedule, active_nodes=share)
    nodes, note = _node_range(min_n, desired, max_n, schedule)
    if note:
        note_parts.append(note)
    disk = _int(node_config.get("diskSizeGb"), GKE_DEFAULT_DISK_GB)
    return [
        _instance_item(r, pricer.instance(machine, spot), nodes, "; ".join(note_parts)),
        _service_item(
            r, "gce-pd-balanced-gb-month", nodes.scale(disk), pricer, f"{disk} GB boot disk per node"
        ),
    ]


def _cloud_sql_instance(r: PricedResource, pricer: _Pricer) -> list[CostItem]:
    settings = r.props.get("settings") or {}
    edition = settings.get("edition", "ENTERPRISE")
    tier_name = str(settings.get("tier", ""))
    if edition != "ENTERPRISE":
        return [
            _unpriced(
                r, f"cloudsql:{edition}:{tier_name}", _one(), f"Cloud SQL {edition} edition is not priced"
            )
        ]
    try:
        tier = catalog.cloud_sql_tier(tier_name)
    except ValueError:
        return [
            _unpriced(
                r, f"cloudsql:{tier_name}", _one(), "only custom tiers db-custom-<vCPUs>-<MB> are priced"
            )
        ]
    factor_row = _service("cloudsql-ha-factor")
    factor = factor_row.price if (factor_row and settings.get("availabilityType") == "REGIONAL") else 1.0
    note = "REGIONAL (HA): primary and standby billed" if factor > 1 else ""
    disk = _int(settings.get("diskSize"), 10)
    return [
        _service_item(r, "cloudsql-enterprise-vcpu", _one(tier.vcpu * factor), pricer, note),
        _service_item(r, "cloudsql-enterprise-memory-gb", _one(tier.memory_gb * factor), pricer, note),
        _service_item(r, "cloudsql-ssd-gb-month", _one(disk * factor), pricer, note),
    ]


def _one(n: float = 1.0) -> Range:
    return Range(n, n, n)


def _resource_items(
    r: PricedResource,
    by_urn: Mapping[str, PricedResource],
    schedules: Mapping[str, Schedule],
    usage: Usage,
    nat_count: int,
    pricer: _Pricer,
    node_classes: Mapping[str, PricedResource],
) -> list[CostItem] | None:
    """Priced lines for one resource; None when the type carries no price of its own."""
    p = r.props
    items: list[CostItem]
    match r.type:
        case "aws:eks/cluster:Cluster":
            extended = dig(p, "upgradePolicy", "supportType") == "EXTENDED"
            sku = "eks-control-plane-extended-support" if extended else "eks-control-plane"
            items = [_service_item(r, sku, _one(), pricer)]
        case "gcp:container/cluster:Cluster":
            items = [_service_item(r, "gke-cluster-management", _one(), pricer)]
        case "aws:eks/nodeGroup:NodeGroup":
            return _eks_node_group(r, by_urn, schedules, pricer)
        case "gcp:container/nodePool:NodePool":
            return _gke_node_pool(r, schedules, pricer)
        case "kubernetes:karpenter.sh/v1:NodePool":
            return _karpenter_node_pool(r, node_classes, schedules, pricer)
        case "aws:ec2/natGateway:NatGateway":
            items = [_service_item(r, "nat-gateway-hour", _one(), pricer)]
            if usage.nat_gateway_gb and nat_count:
                share = usage.nat_gateway_gb / nat_count
                items.append(_service_item(r, "nat-gateway-gb", _one(share), pricer, "from the usage file"))
        case "aws:elasticache/replicationGroup:ReplicationGroup":
            shards = _int(p.get("numNodeGroups"), 1)
            nodes = _int(p.get("numCacheClusters"), 0) or shards * (
                1 + _int(p.get("replicasPerNodeGroup"), 0)
            )
            items = [_service_item(r, f"elasticache:{p.get('nodeType')}", _one(nodes), pricer)]
        case "aws:elasticache/cluster:Cluster":
            if p.get("replicationGroupId"):
                return None
            count = _one(_int(p.get("numCacheNodes"), 1))
            items = [_service_item(r, f"elasticache:{p.get('nodeType')}", count, pricer)]
        case "aws:rds/instance:Instance":
            factor_row = _service("rds-multi-az-factor")
            factor = factor_row.price if (factor_row and p.get("multiAz") is True) else 1.0
            note = "multi-AZ: standby billed as a second instance" if factor > 1 else ""
            storage = _one(_int(p.get("allocatedStorage"), 20) * factor)
            items = [
                _service_item(r, f"rds:{p.get('instanceClass')}", _one(factor), pricer, note),
                _service_item(r, "rds-storage-gp3-gb-month", storage, pricer, note),
            ]
        case "gcp:sql/databaseInstance:DatabaseInstance":
            return _cloud_sql_instance(r, pricer)
        case "aws:kms/key:Key":
            items = [_service_item(r, "kms-key-month", _one(), pricer)]
        case "aws:s3/bucket:Bucket" | "aws:s3/bucketV2:BucketV2" | "gcp:storage/bucket:Bucket":
            gb = usage.bucket_gb.get(r.name, usage.bucket_gb.get("*", 0.0))
            if not gb:
                return None
            sku = "gcs-standard-gb-month" if r.type.startswith("gcp:") else "s3-standard-gb-month"
            items = [_service_item(r, sku, _one(gb), pricer, "from the usage file")]
        case _:
            return None
    return items


def estimate(
    resources: Iterable[PricedResource],
    *,
    schedules: Mapping[str, Schedule] | None = None,
    usage: Usage | None = None,
    budget: Mapping[str, Any] | None = None,
    region: str | None = None,
) -> Estimate:
    """Price every resource in `region` (the stack's); `schedules` maps node-group names to scale-down
    schedules. Nothing is refused: figures that are not the region's own are marked estimated, missing ones
    unpriced, and a region without a price table adds a warning."""
    res = list(resources)
    by_urn = {r.urn: r for r in res}
    usage = usage or Usage()
    pricer = _Pricer(region)
    nat_count = sum(1 for r in res if r.type == "aws:ec2/natGateway:NatGateway")
    node_classes = {str(dig(r.props, "metadata", "name")): r for r in res if r.type == NODE_CLASS}
    items: list[CostItem] = []
    for r in res:
        found = _resource_items(r, by_urn, schedules or {}, usage, nat_count, pricer, node_classes)
        if found:
            items.extend(found)
    if usage.logs_gb:
        anchor = next(
            (r for r in res if r.type in ("aws:eks/cluster:Cluster", "gcp:container/cluster:Cluster")), None
        )
        if anchor is not None and anchor.type.startswith("aws:"):
            logs = _one(usage.logs_gb)
            items.append(
                _service_item(anchor, "cloudwatch-logs-ingest-gb", logs, pricer, "from the usage file")
            )
    return Estimate(
        items=items,
        budget=dict(budget) if budget else None,
        region=region,
        warnings=pricer.warnings,
        tables=[pricer.tables[k] for k in sorted(pricer.tables)],
    )


def budget_json(budget: BudgetConfig | None) -> dict[str, Any] | None:
    if budget is None:
        return None
    return {"monthlyUsd": budget.monthly_usd, "basis": budget.basis}


def schedules_from_config(config: StackConfig) -> dict[str, Schedule]:
    out: dict[str, Schedule] = {}
    for group in config.node_groups:
        sched = getattr(group, "scale_down_schedule", None)
        if sched is not None:
            out[group.name] = Schedule(
                sched.hours_per_day_active, sched.days_per_week, getattr(sched, "active_nodes", None)
            )
    return out


def plan_resources(plan: Plan) -> list[PricedResource]:
    """The plan's custom resources in the estimator's shape."""
    return [_Res(r.urn, r.type, r.name, r.inputs, r.depends_on) for r in plan.resources if r.custom]


def estimate_plan(plan: Plan, usage: Usage | None = None) -> Estimate:
    """The `cost --json` estimate of an offline plan, with the stack's region, schedules and budget."""
    config = plan.config
    return estimate(
        plan_resources(plan),
        schedules=schedules_from_config(config) if config is not None else {},
        usage=usage,
        budget=budget_json(config.budget) if config is not None else None,
        region=config.region if config is not None else None,
    )
