"""Instance prices per region, from the generated tables under ``catalog_data/prices``.

A table (``<cloud>-<region>.json``) is written by ``scripts/build_price_tables.py`` from a named public dataset
at a commit and date; it is never edited by hand. Each figure says whether it was read from the dataset or
derived (scaled, e.g. where a newer source corrects an older snapshot), and a type the dataset does not offer
in a region is listed as absent there, never guessed.

:func:`quote` answers "what does one node of this type cost per hour in this region?" with the figure, the
region the figure is for, its citation and date, and why it is only an estimate (region without a table,
derived figure, flagged figure, team-supplied price) or why there is no price at all (type not offered in
the region, team type without a price). Callers count estimated and unpriced items; nothing is refused.

Platform code (autoscaler priorities), the policy pack and the cost tooling all read prices here, which is why
the tables live with the components' data rather than under tooling.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, cast

from mlops_infra.components import catalog

REFERENCE_REGIONS: dict[str, str] = {"aws": "us-east-1", "gcp": "us-central1"}
_PACKAGE = "mlops_infra.components.catalog_data"
_DIR = "prices"
SCHEMA = 1


class PriceTableError(ValueError):
    """A packaged price table is malformed (a bug in the generated data, not in user input)."""


@dataclass(frozen=True)
class Dataset:
    id: str
    name: str
    repository: str
    path: str
    commit: str
    date: str | None
    date_basis: str
    retrieved: str
    note: str = ""

    def cite(self) -> str:
        when = f"{self.date_basis} {self.date}" if self.date else f"date unknown, retrieved {self.retrieved}"
        return f"{self.name} {self.repository.removeprefix('https://github.com/')} {self.path} @{self.commit[:12]} ({when})"


@dataclass(frozen=True)
class RegionPrice:
    """One machine type's figures in one region (USD per node-hour)."""

    on_demand: float | None
    spot: float | None
    on_demand_basis: str
    spot_basis: str | None
    sources: tuple[str, ...]
    note: str = ""
    check: str = ""


@dataclass(frozen=True)
class PriceTable:
    cloud: str
    region: str
    as_of: str
    retrieved: str
    datasets: Mapping[str, Dataset]
    instances: Mapping[str, RegionPrice]
    absent: Mapping[str, str]
    file: str

    def cite(self, row: RegionPrice) -> str:
        return (
            "; ".join(self.datasets[s].cite() for s in row.sources if s in self.datasets) + f", {self.region}"
        )

    def row_as_of(self, row: RegionPrice) -> str:
        """The oldest date behind a row: its datasets' content dates, or retrieval dates where unknown."""
        return min((d.date or d.retrieved) for s in row.sources if (d := self.datasets.get(s)) is not None)


@dataclass(frozen=True)
class Quote:
    """The hourly price of one node, or why there is none. `region` is the region the figure is for."""

    name: str
    spot: bool
    hourly: float | None
    region: str | None
    source: str = ""
    as_of: str = ""
    estimated: tuple[str, ...] = field(default_factory=tuple)  # reasons the figure is only an estimate
    unpriced: str = ""  # why there is no figure

    @property
    def priced(self) -> bool:
        return self.hourly is not None


# ---------------------------------------------------------------- loading


def _table_files() -> list[str]:
    folder = resources.files(_PACKAGE).joinpath(_DIR)
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))


def _parse(filename: str, doc: Any) -> PriceTable:
    def bad(message: str) -> PriceTableError:
        return PriceTableError(f"{_DIR}/{filename}: {message}")

    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise bad(f"not a price table of schema {SCHEMA}")
    cloud, region = doc.get("cloud"), doc.get("region")
    if cloud not in REFERENCE_REGIONS or not isinstance(region, str) or filename != f"{cloud}-{region}.json":
        raise bad("cloud/region missing or not matching the file name <cloud>-<region>.json")
    if doc.get("currency") != "USD" or doc.get("unit") != "node-hour":
        raise bad("prices must be USD per node-hour")
    try:
        datasets = {
            key: Dataset(
                key,
                str(d["name"]),
                str(d["repository"]),
                str(d["path"]),
                str(d["commit"]),
                d.get("date"),
                str(d["dateBasis"]),
                datetime.date.fromisoformat(str(d["retrieved"])).isoformat(),
                str(d.get("note", "")),
            )
            for key, d in doc["datasets"].items()
        }
        rows: dict[str, RegionPrice] = {}
        for name, row in doc["instances"].items():
            prices = [row.get("onDemand"), row.get("spot")]
            if not all(p is None or (isinstance(p, int | float) and p > 0) for p in prices):
                raise bad(f"{name}: onDemand and spot must be positive numbers or null")
            if row.get("onDemandBasis") not in ("read", "derived"):
                raise bad(f"{name}: onDemandBasis must be read or derived")
            if not set(row["from"]) <= set(datasets):
                raise bad(f"{name}: cites an unknown dataset")
            rows[name] = RegionPrice(
                None if prices[0] is None else float(prices[0]),
                None if prices[1] is None else float(prices[1]),
                str(row["onDemandBasis"]),
                row.get("spotBasis"),
                tuple(row["from"]),
                str(row.get("note", "")),
                str(row.get("check", "")),
            )
        absent = {str(k): str(v) for k, v in doc["absent"].items()}
        as_of = datetime.date.fromisoformat(str(doc["asOf"])).isoformat()
        retrieved = datetime.date.fromisoformat(str(doc["retrieved"])).isoformat()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, PriceTableError):
            raise
        raise bad(f"malformed: {exc!r}") from None
    if set(rows) & set(absent):
        raise bad(f"both priced and absent: {', '.join(sorted(set(rows) & set(absent)))}")
    return PriceTable(cast(str, cloud), region, as_of, retrieved, datasets, rows, absent, filename)


@functools.cache
def _tables() -> dict[tuple[str, str], PriceTable]:
    out: dict[tuple[str, str], PriceTable] = {}
    folder = resources.files(_PACKAGE).joinpath(_DIR)
    for filename in _table_files():
        table = _parse(filename, json.loads(folder.joinpath(filename).read_text(encoding="utf-8")))
        out[(table.cloud, table.region)] = table
    for cloud, region in REFERENCE_REGIONS.items():
        if (cloud, region) not in out:
            raise PriceTableError(f"{_DIR}/{cloud}-{region}.json: the reference region's table is missing")
    return out


# ---------------------------------------------------------------- public API


def tables() -> list[PriceTable]:
    """Every shipped table, by cloud and region."""
    return [t for _, t in sorted(_tables().items())]


def table(cloud: str, region: str) -> PriceTable | None:
    return _tables().get((cloud, region))


def regions(cloud: str) -> list[str]:
    """Regions with a shipped price table for `cloud`."""
    return sorted(r for c, r in _tables() if c == cloud)


def reference_region(cloud: str) -> str:
    return REFERENCE_REGIONS[cloud]


def _team_quote(itype: catalog.InstanceType, spot: bool, region: str, reasons: list[str]) -> Quote:
    capacity = "spot" if spot else "on-demand"
    stated = (catalog.team_prices(itype.name) or {}).get(region)
    value = None if stated is None else (stated.spot_hourly if spot else stated.on_demand_hourly)
    if stated is None or value is None:
        return Quote(
            itype.name,
            spot,
            None,
            region,
            unpriced=f"team type: {itype.origin} gives no {capacity} price for {region}",
        )
    return Quote(
        itype.name,
        spot,
        value,
        region,
        f"{stated.source} (team catalog {itype.origin})",
        stated.as_of,
        (*reasons, f"team-supplied price ({itype.origin})"),
    )


def quote(name: str, *, spot: bool, region: str | None) -> Quote:
    """The price of one node of `name` for one hour in `region` (None: the stack's region is unknown).

    A region without a table is priced with the cloud's reference-region figures, marked estimated."""
    itype = catalog.find_instance(name)
    if itype is None:
        return Quote(
            name, spot, None, region, unpriced="not in the instance catalog or a registered team file"
        )
    reference = REFERENCE_REGIONS[itype.cloud]
    reasons: list[str] = []
    where = region
    if region is None:
        where = reference
        reasons.append(f"stack region unknown: {reference} figures")
    elif table(itype.cloud, region) is None:
        where = reference
        reasons.append(f"no {itype.cloud} price table for {region}: {reference} figures")
    assert where is not None
    if itype.origin != "built-in":
        return _team_quote(itype, spot, where, reasons)
    tab = table(itype.cloud, where)
    assert tab is not None  # the reference tables are checked at load
    capacity = "spot" if spot else "on-demand"
    if name in tab.absent:
        return Quote(
            name, spot, None, where, unpriced=f"not offered in {where} per the dataset ({tab.absent[name]})"
        )
    row = tab.instances.get(name)
    if row is None:
        return Quote(name, spot, None, where, unpriced=f"no {where} price table entry (rebuild the tables)")
    value = row.spot if spot else row.on_demand
    if value is None:
        return Quote(name, spot, None, where, unpriced=f"the dataset has no {capacity} price in {where}")
    basis = row.spot_basis if spot else row.on_demand_basis
    if basis == "derived":
        reasons.append(row.note or f"{capacity} figure derived, not read")
    if row.check:
        reasons.append(f"check: {row.check}")
    return Quote(name, spot, value, where, tab.cite(row), tab.row_as_of(row), tuple(reasons))


def hourly(name: str, *, spot: bool, region: str | None = None) -> float | None:
    """Just the figure of :func:`quote` (reference region when `region` is None); None when unpriced."""
    found = quote(name, spot=spot, region=region or _reference_of(name))
    return found.hourly


def spot_discount(name: str, region: str | None = None) -> float | None:
    """Fraction saved by spot relative to on-demand (0.6 means 60 % cheaper); None without both figures."""
    on_demand, spot = hourly(name, spot=False, region=region), hourly(name, spot=True, region=region)
    if on_demand is None or spot is None:
        return None
    return 1.0 - spot / on_demand


def _reference_of(name: str) -> str | None:
    itype = catalog.find_instance(name)
    return None if itype is None else REFERENCE_REGIONS[itype.cloud]
