"""Instance catalog (specs) and service prices: sourced, dated facts for AWS and GCP.

The facts live in YAML under ``mlops_infra/components/catalog_data`` (read through ``importlib.resources`` so
the catalog also works from an installed wheel). Every row names where its figures come from and when they
were read. Instance *prices* are not here: they are per region, in the generated tables under
``catalog_data/prices`` that :mod:`mlops_infra.components.pricing` reads. Data is parsed and validated once,
lazily, on first use.

The built-in instance list is a convenience, not an allow-list: a team adds its own machine types (with
their facts and, optionally, per-region prices) from a file with :func:`register_instance_file`; a stack
names such a file with ``instanceCatalog`` and ``mlops-infra cost --catalog FILE`` takes one too.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml

Cloud = Literal["aws", "gcp"]
AcceleratorKind = Literal["gpu", "neuron", "tpu"]
Arch = Literal["x86_64", "arm64"]
PriceUnit = Literal["hour", "gb-month", "gb", "month"]

_CLOUDS: tuple[str, ...] = get_args(Cloud)
_KINDS: tuple[str, ...] = get_args(AcceleratorKind)
_ARCHES: tuple[str, ...] = get_args(Arch)
_UNITS: tuple[str, ...] = get_args(PriceUnit)

_DATA_PACKAGE = "mlops_infra.components.catalog_data"
_INSTANCE_KEYS = {
    "name",
    "cloud",
    "vcpu",
    "memory_gib",
    "arch",
    "accelerator_kind",
    "accelerator",
    "accelerator_count",
    "accelerator_memory_gib",
    "neuron_cores",
    "max_pods",
    "source",
    "as_of",
    "gke_accelerator",
    "tpu_topologies",
}
_INSTANCE_FILES = ("aws_instances.yaml", "gcp_instances.yaml")
_SERVICE_FILES = ("aws_services.yaml", "gcp_services.yaml")
_GPU_MODEL_FILE = "gpu_models.yaml"


@dataclass(frozen=True)
class InstanceType:
    """One machine type and its specs; prices are per region (see :mod:`mlops_infra.components.pricing`).

    `source` cites where the specs were read and `as_of` when; `origin` is "built-in" or the team file that
    registered the type."""

    name: str
    cloud: Cloud
    vcpu: int
    memory_gib: float
    arch: Arch
    accelerator_kind: AcceleratorKind | None
    accelerator: str | None
    accelerator_count: int
    accelerator_memory_gib: float
    neuron_cores: int
    max_pods: int
    source: str
    as_of: str
    gke_accelerator: str | None
    tpu_topologies: tuple[str, ...]
    origin: str = "built-in"


@dataclass(frozen=True)
class TeamPrice:
    """A price a team file states for one of its own machine types in one region (USD per node-hour)."""

    on_demand_hourly: float | None
    spot_hourly: float | None
    source: str
    as_of: str
    origin: str


@dataclass(frozen=True)
class ServicePrice:
    """A managed-service price (per hour, GB-month, GB or month) in the reference region."""

    sku: str
    cloud: Cloud
    unit: PriceUnit
    price: float
    source: str
    as_of: str

    @property
    def estimate_reason(self) -> str:
        """Why the figure is only an estimate (its citation says UNVERIFIED or DERIVED), else ""."""
        if "UNVERIFIED" in self.source:
            return "UNVERIFIED recalled list price"
        if "DERIVED" in self.source:
            return "DERIVED figure, not read as such"
        return ""


@dataclass(frozen=True)
class GpuModel:
    """A GPU model and its MIG profiles: profile name (`1g.5gb`) -> instances of it one GPU holds."""

    accelerator: str
    memory_gib: float
    product: str
    mig_profiles: dict[str, int]
    source: str
    as_of: str


class UnknownInstanceType(KeyError):
    """Raised for a machine type the catalog does not know; the message suggests close names."""

    def __str__(self) -> str:  # KeyError would repr() the message and add quotes
        return str(self.args[0]) if self.args else ""


class UnknownServicePrice(KeyError):
    """Raised for an unknown service SKU; the message suggests close SKUs."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CatalogDataError(ValueError):
    """The packaged YAML data is malformed (a bug in the data files, not in user input)."""


# ---------------------------------------------------------------- loading


def _read_yaml(filename: str) -> dict[str, Any]:
    text = resources.files(_DATA_PACKAGE).joinpath(filename).read_text(encoding="utf-8")
    loaded = yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise CatalogDataError(f"{filename}: top level must be a mapping")
    return cast(dict[str, Any], loaded)


def _resolve_sources(filename: str, refs: Any, sources: dict[str, str], field: str) -> str:
    """Turn a source id, free text, or a list of either into one citation string."""
    items = refs if isinstance(refs, list) else [refs]
    if not items or not all(isinstance(i, str) and i.strip() for i in items):
        raise CatalogDataError(f"{filename}: {field} must be a non-empty string or list of strings")
    return "; ".join(str(sources.get(i, i)) for i in items)


def _str(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value:
        raise CatalogDataError(f"{where}: {key} must be a non-empty string")
    return value


def _opt_str(row: dict[str, Any], key: str, where: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise CatalogDataError(f"{where}: {key} must be a string or absent")
    return value


def _num(row: dict[str, Any], key: str, where: str, default: float | None = None) -> float:
    value = row.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CatalogDataError(f"{where}: {key} must be a number")
    if value < 0:
        raise CatalogDataError(f"{where}: {key} must be >= 0")
    return float(value)


def _int(row: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = row.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CatalogDataError(f"{where}: {key} must be a non-negative integer")
    return value


def _choice(value: Any, allowed: tuple[str, ...], where: str, key: str) -> str:
    if value not in allowed:
        raise CatalogDataError(f"{where}: {key} must be one of {allowed}, got {value!r}")
    return cast(str, value)


def _as_of(row: dict[str, Any], defaults: dict[str, Any], where: str) -> str:
    value = row.get("as_of", defaults.get("as_of"))
    if isinstance(value, datetime.date):  # PyYAML turns bare ISO dates into datetime.date
        return value.isoformat()
    try:
        return datetime.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise CatalogDataError(f"{where}: as_of must be an ISO date (YYYY-MM-DD), got {value!r}") from None


def _parse_instance(
    filename: str, raw: Any, defaults: dict[str, Any], sources: dict[str, str], origin: str = "built-in"
) -> InstanceType:
    if not isinstance(raw, dict):
        raise CatalogDataError(f"{filename}: every instance row must be a mapping")
    row = {**defaults, **raw}
    if origin != "built-in":
        row.pop("prices", None)  # a team file's own prices; register_instance_types reads them
    name = _str(row, "name", filename)
    where = f"{filename}:{name}"
    kind = row.get("accelerator_kind")
    if kind is not None:
        _choice(kind, _KINDS, where, "accelerator_kind")
    topologies = row.get("tpu_topologies", [])
    if not isinstance(topologies, list) or not all(isinstance(t, str) for t in topologies):
        raise CatalogDataError(f"{where}: tpu_topologies must be a list of strings")
    for topo in topologies:
        topology_chips(topo)  # validates the shape
    item = InstanceType(
        name=name,
        cloud=cast(Cloud, _choice(row.get("cloud"), _CLOUDS, where, "cloud")),
        vcpu=_int(row, "vcpu", where),
        memory_gib=_num(row, "memory_gib", where),
        arch=cast(Arch, _choice(row.get("arch", "x86_64"), _ARCHES, where, "arch")),
        accelerator_kind=cast(AcceleratorKind | None, kind),
        accelerator=_opt_str(row, "accelerator", where),
        accelerator_count=_int(row, "accelerator_count", where, 0),
        accelerator_memory_gib=_num(row, "accelerator_memory_gib", where, 0.0),
        neuron_cores=_int(row, "neuron_cores", where, 0),
        max_pods=_int(row, "max_pods", where),
        source=_resolve_sources(where, row.get("source"), sources, "source"),
        as_of=_as_of(row, defaults, where),
        gke_accelerator=_opt_str(row, "gke_accelerator", where),
        tpu_topologies=tuple(topologies),
        origin=origin,
    )
    unknown = set(row) - _INSTANCE_KEYS
    if unknown:
        raise CatalogDataError(
            f"{where}: unknown keys {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_INSTANCE_KEYS))}"
        )
    _check_instance(item, where)
    return item


def _check_instance(item: InstanceType, where: str) -> None:
    """Catch internally inconsistent rows at load time rather than in a cost estimate."""
    has_accel = item.accelerator_kind is not None
    if has_accel != (item.accelerator is not None) or has_accel != (item.accelerator_count > 0):
        raise CatalogDataError(f"{where}: accelerator_kind, accelerator and accelerator_count disagree")
    if (item.neuron_cores > 0) != (item.accelerator_kind == "neuron"):
        raise CatalogDataError(f"{where}: neuron_cores is set exactly for neuron instances")
    if (item.accelerator_kind == "tpu") != bool(item.tpu_topologies):
        raise CatalogDataError(f"{where}: tpu_topologies is set exactly for TPU machine types")
    if item.cloud == "aws" and item.gke_accelerator is not None:
        raise CatalogDataError(f"{where}: gke_accelerator is GCP-only")
    if item.vcpu == 0 or item.memory_gib == 0 or item.max_pods == 0:
        raise CatalogDataError(f"{where}: vcpu, memory_gib and max_pods must be > 0")


def _parse_service(
    filename: str, raw: Any, defaults: dict[str, Any], sources: dict[str, str]
) -> ServicePrice:
    if not isinstance(raw, dict):
        raise CatalogDataError(f"{filename}: every service row must be a mapping")
    row = {**defaults, **raw}
    sku = _str(row, "sku", filename)
    where = f"{filename}:{sku}"
    return ServicePrice(
        sku=sku,
        cloud=cast(Cloud, _choice(row.get("cloud"), _CLOUDS, where, "cloud")),
        unit=cast(PriceUnit, _choice(row.get("unit"), _UNITS, where, "unit")),
        price=_num(row, "price", where),
        source=_resolve_sources(where, row.get("source"), sources, "source"),
        as_of=_as_of(row, defaults, where),
    )


def _load_rows(files: tuple[str, ...], key: str) -> list[tuple[str, Any, dict[str, Any], dict[str, str]]]:
    out: list[tuple[str, Any, dict[str, Any], dict[str, str]]] = []
    for filename in files:
        doc = _read_yaml(filename)
        sources = doc.get("sources", {})
        defaults = doc.get("defaults", {})
        rows = doc.get(key, [])
        if not isinstance(sources, dict) or not isinstance(defaults, dict) or not isinstance(rows, list):
            raise CatalogDataError(f"{filename}: sources/defaults must be mappings and {key} a list")
        out.extend((filename, raw, defaults, sources) for raw in rows)
    return out


@functools.cache
def _instances() -> dict[str, InstanceType]:
    table: dict[str, InstanceType] = {}
    for filename, raw, defaults, sources in _load_rows(_INSTANCE_FILES, "instances"):
        item = _parse_instance(filename, raw, defaults, sources)
        if item.name in table:
            raise CatalogDataError(f"{filename}: duplicate instance type {item.name}")
        table[item.name] = item
    return table


@functools.cache
def _services() -> dict[str, ServicePrice]:
    table: dict[str, ServicePrice] = {}
    for filename, raw, defaults, sources in _load_rows(_SERVICE_FILES, "services"):
        item = _parse_service(filename, raw, defaults, sources)
        if item.sku in table:
            raise CatalogDataError(f"{filename}: duplicate service sku {item.sku}")
        table[item.sku] = item
    return table


# ---------------------------------------------------------------- team catalog files

# Machine types a team registered from its own file, and the prices that file states for them (by region).
_team: dict[str, InstanceType] = {}
_team_prices: dict[str, dict[str, TeamPrice]] = {}


def _price_or_none(row: dict[str, Any], key: str, where: str) -> float | None:
    if row.get(key) is None:
        return None
    value = _num(row, key, where)
    if value == 0:
        raise CatalogDataError(f"{where}: {key} must be > 0 (leave it out when there is no price)")
    return value


def _parse_team_prices(
    where: str, raw: Any, item: InstanceType, sources: dict[str, str]
) -> dict[str, TeamPrice]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CatalogDataError(f"{where}: prices must map a region to {{on_demand_hourly, spot_hourly}}")
    out: dict[str, TeamPrice] = {}
    for region, row in raw.items():
        at = f"{where}: prices.{region}"
        if not isinstance(row, dict):
            raise CatalogDataError(f"{at}: must be a mapping with on_demand_hourly and/or spot_hourly")
        unknown = set(row) - {"on_demand_hourly", "spot_hourly", "source", "as_of"}
        if unknown:
            raise CatalogDataError(f"{at}: unknown keys {', '.join(sorted(unknown))}")
        on_demand, spot = _price_or_none(row, "on_demand_hourly", at), _price_or_none(row, "spot_hourly", at)
        if on_demand is None and spot is None:
            raise CatalogDataError(f"{at}: give on_demand_hourly and/or spot_hourly")
        source = _resolve_sources(at, row["source"], sources, "source") if "source" in row else item.source
        out[str(region)] = TeamPrice(
            on_demand, spot, source, _as_of(row, {"as_of": item.as_of}, at), item.origin
        )
    return out


def register_instance_types(
    rows: list[Any],
    origin: str,
    *,
    sources: dict[str, str] | None = None,
    defaults: dict[str, Any] | None = None,
) -> list[InstanceType]:
    """Add a team's machine types (same row schema as ``catalog_data/*_instances.yaml``, plus an optional
    ``prices: {<region>: {on_demand_hourly, spot_hourly, source}}``). A name the built-in catalog already has,
    or another team file registered with other facts, raises :class:`CatalogDataError`; registering the same
    file again is a no-op. A row without ``source`` cites the file; without ``as_of``, today."""
    sources = sources or {}
    base = {"arch": "x86_64", "as_of": datetime.date.today().isoformat(), "source": f"team catalog {origin}"}
    base.update(defaults or {})
    parsed: list[tuple[InstanceType, dict[str, TeamPrice]]] = []
    seen: set[str] = set()
    for raw in rows:
        item = _parse_instance(origin, raw, base, sources, origin=origin)
        where = f"{origin}:{item.name}"
        if item.name in _instances():
            raise CatalogDataError(
                f"{where}: {item.name} is already in the built-in catalog; remove it from the team file"
            )
        if item.name in seen:
            raise CatalogDataError(f"{origin}: duplicate instance type {item.name}")
        seen.add(item.name)
        prior = _team.get(item.name)
        if prior is not None and prior != item:
            raise CatalogDataError(
                f"{where}: {item.name} is also registered from {prior.origin} with other facts"
            )
        parsed.append((item, _parse_team_prices(where, raw.get("prices"), item, sources)))
    for item, prices in parsed:
        _team[item.name] = item
        _team_prices[item.name] = prices
    return [item for item, _ in parsed]


def register_instance_file(path: Path) -> list[InstanceType]:
    """Register the machine types of a team catalog file (YAML or JSON): ``{sources?, defaults?, instances}``.

    Raises :class:`CatalogDataError` naming the file and row for anything malformed or unreadable."""
    origin = str(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogDataError(f"{origin}: cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CatalogDataError(f"{origin}: not valid YAML/JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list):
        raise CatalogDataError(f"{origin}: expected a mapping with an `instances` list (docs/catalog.md)")
    sources, defaults = doc.get("sources", {}) or {}, doc.get("defaults", {}) or {}
    if not isinstance(sources, dict) or not isinstance(defaults, dict):
        raise CatalogDataError(f"{origin}: sources and defaults must be mappings")
    unknown = set(doc) - {"sources", "defaults", "instances"}
    if unknown:
        raise CatalogDataError(f"{origin}: unknown keys {', '.join(sorted(unknown))}")
    return register_instance_types(doc["instances"], origin, sources=sources, defaults=defaults)


def team_prices(name: str) -> dict[str, TeamPrice] | None:
    """The per-region prices a team file states for its machine type ``name``; None for built-in types."""
    return dict(_team_prices[name]) if name in _team else None


def forget_team_types() -> None:
    """Drop every registered team type (tests; a long-lived process switching stacks)."""
    _team.clear()
    _team_prices.clear()


def _all_instances() -> dict[str, InstanceType]:
    return {**_instances(), **_team} if _team else _instances()


@functools.cache
def _gpu_models() -> dict[tuple[str, float], GpuModel]:
    doc = _read_yaml(_GPU_MODEL_FILE)
    sources, defaults = doc.get("sources", {}), doc.get("defaults", {})
    table: dict[tuple[str, float], GpuModel] = {}
    for raw in doc.get("gpu_models", []):
        if not isinstance(raw, dict):
            raise CatalogDataError(f"{_GPU_MODEL_FILE}: every GPU model row must be a mapping")
        row = {**defaults, **raw}
        where = f"{_GPU_MODEL_FILE}:{row.get('accelerator')}"
        profiles = row.get("mig_profiles")
        if not isinstance(profiles, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and 1 <= v <= 7 for k, v in profiles.items()
        ):
            raise CatalogDataError(f"{where}: mig_profiles maps profile names to 1-7 instances")
        model = GpuModel(
            accelerator=_str(row, "accelerator", where),
            memory_gib=_num(row, "memory_gib", where),
            product=_str(row, "product", where),
            mig_profiles=dict(profiles),
            source=_resolve_sources(where, row.get("source"), sources, "source"),
            as_of=_as_of(row, defaults, where),
        )
        table[(model.accelerator, model.memory_gib)] = model
    return table


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


# ---------------------------------------------------------------- public API


def instance(name: str) -> InstanceType:
    """Look up a machine type (built-in or registered by a team file); raises :class:`UnknownInstanceType`
    with close-match suggestions."""
    table = _all_instances()
    try:
        return table[name]
    except KeyError:
        raise UnknownInstanceType(
            f"unknown instance type {name!r}{_suggest(name, list(table))} (a type of your own goes in a team "
            "catalog file: instanceCatalog, docs/catalog.md)"
        ) from None


def find_instance(name: str) -> InstanceType | None:
    """Like :func:`instance` but returns ``None`` for unknown names."""
    return _all_instances().get(name)


def instances(
    cloud: Cloud | None = None,
    accelerator_kind: AcceleratorKind | None = None,
    *,
    builtin_only: bool = False,
) -> list[InstanceType]:
    """All catalog rows (with registered team types unless `builtin_only`), optionally filtered by cloud and
    accelerator kind, sorted by name."""
    return sorted(
        (
            i
            for i in (_instances() if builtin_only else _all_instances()).values()
            if (cloud is None or i.cloud == cloud)
            and (accelerator_kind is None or i.accelerator_kind == accelerator_kind)
        ),
        key=lambda i: (i.cloud, i.name),
    )


def service_price(sku: str) -> ServicePrice:
    """Look up a service price by SKU; raises :class:`UnknownServicePrice` (a KeyError) with suggestions."""
    table = _services()
    try:
        return table[sku]
    except KeyError:
        raise UnknownServicePrice(f"unknown service sku {sku!r}{_suggest(sku, list(table))}") from None


def services(cloud: Cloud | None = None) -> list[ServicePrice]:
    """All service prices, optionally for one cloud, sorted by SKU."""
    return sorted(
        (s for s in _services().values() if cloud is None or s.cloud == cloud),
        key=lambda s: (s.cloud, s.sku),
    )


def topology_chips(topology: str) -> int:
    """Number of TPU chips in a topology string: ``"2x2"`` -> 4, ``"2x2x2"`` -> 8."""
    parts = topology.strip().lower().split("x")
    if len(parts) not in (2, 3) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"invalid TPU topology {topology!r}: expected AxB or AxBxC with positive integers")
    return math.prod(int(p) for p in parts)


def tpu_hosts(machine_type: str, topology: str) -> int:
    """Hosts (GKE nodes) in one slice of ``topology`` built from ``machine_type``.

    A multi-host slice scales as a whole, so this is also the node count of one slice's node pool.
    """
    item = instance(machine_type)
    if item.accelerator_kind != "tpu":
        raise ValueError(f"{machine_type} is not a TPU machine type")
    norm = topology.strip().lower()
    chips = topology_chips(norm)
    if norm not in item.tpu_topologies:
        raise ValueError(
            f"topology {topology!r} is not supported by {machine_type}; "
            f"supported: {', '.join(item.tpu_topologies)}"
        )
    if chips % item.accelerator_count:
        raise CatalogDataError(f"{machine_type}: topology {norm} is not a whole number of hosts")
    return max(1, chips // item.accelerator_count)


def gpu_model(itype: InstanceType) -> GpuModel | None:
    """The MIG facts of an instance type's GPU, or None (no GPU, or a GPU without MIG)."""
    if itype.accelerator_kind != "gpu" or itype.accelerator is None:
        return None
    return _gpu_models().get((itype.accelerator, itype.accelerator_memory_gib))


def mig_profiles(instance_type: str) -> dict[str, int]:
    """MIG profile -> instances per GPU for this instance type's GPU; empty when it has no MIG."""
    model = gpu_model(instance(instance_type))
    return dict(model.mig_profiles) if model else {}


@dataclass(frozen=True)
class CloudSqlTier:
    """A Cloud SQL custom machine type: `db-custom-<vCPUs>-<memory MB>` (memory priced per GB of 1,024 MB)."""

    name: str
    vcpu: int
    memory_mb: int

    @property
    def memory_gb(self) -> float:
        return self.memory_mb / 1024


def cloud_sql_tier(name: str) -> CloudSqlTier:
    """Parse and check a Cloud SQL custom tier against Google's rules ("About instance settings", Cloud SQL
    for PostgreSQL: 1 or an even number of vCPUs up to 96; memory 0.9-6.5 GB per vCPU, a multiple of 256 MB
    and at least 3.75 GB). Raises ValueError saying which rule fails."""
    parts = name.split("-")
    if len(parts) != 4 or parts[:2] != ["db", "custom"] or not all(p.isdigit() for p in parts[2:]):
        raise ValueError("must be a custom machine type db-custom-<vCPUs>-<memory MB>, e.g. db-custom-2-7680")
    vcpu, memory_mb = int(parts[2]), int(parts[3])
    if not (vcpu == 1 or (vcpu % 2 == 0 and 2 <= vcpu <= 96)):
        raise ValueError(f"{vcpu} vCPUs: Cloud SQL takes 1 or an even number up to 96")
    if memory_mb % 256:
        raise ValueError(f"{memory_mb} MB: memory must be a multiple of 256 MB")
    low, high = max(3840, math.ceil(0.9 * 1024 * vcpu)), int(6.5 * 1024 * vcpu)
    if not low <= memory_mb <= high:
        raise ValueError(
            f"{memory_mb} MB for {vcpu} vCPU(s): memory must be 0.9-6.5 GB per vCPU and at least 3.75 GB "
            f"({low}-{high} MB here)"
        )
    return CloudSqlTier(name=name, vcpu=vcpu, memory_mb=memory_mb)
