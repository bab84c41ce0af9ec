"""Which Helm value keys each pinned chart defines, and which keys of our values it does not.

Helm silently ignores a value key its chart never reads, so a misspelt or outdated key in a value builder
does nothing at deploy time. The facts live in ``mlops_infra/tooling/chart_key_sets/`` as one JSON file per chart
and version, extracted from the chart's ``values.yaml`` and templates by ``scripts/chart_keys.py`` (each
file names the chart's source repository and commit). A key path is defined when the file lists it; an
"open" path accepts any children (a map the chart renders whole, such as nodeSelector or resources).
Values under a subchart's key (or alias) are checked against that subchart's own file; ``global`` against
the global keys of the chart and all its subcharts.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

_DATA_PACKAGE = "mlops_infra.tooling.chart_key_sets"
FORMAT = 1
GENERATOR = "scripts/chart_keys.py"

KeyPath = tuple[str, ...]


class ChartKeysDataError(ValueError):
    """A packaged fact file is malformed (a bug in the data, not in user input)."""


class MissingKeySet(LookupError):
    """No fact file for a chart version we deploy: the pin changed without regenerating its key set."""

    def __init__(self, chart: str, version: str, via: str | None = None):
        self.chart, self.version, self.via = chart, version, via
        where = f" (subchart under values.{via})" if via else ""
        super().__init__(
            f"no value key set for chart {chart} {version}{where}; regenerate it with {GENERATOR} "
            "from the chart's source at that version"
        )


@dataclass(frozen=True)
class KeySet:
    """The value key paths one chart version defines."""

    chart: str
    version: str
    keys: frozenset[KeyPath]
    open: frozenset[KeyPath]
    subcharts: Mapping[str, tuple[str, str]]  # value key (alias or name) -> (chart, version)
    source: Mapping[str, str]


def chart_name(chart: str) -> str:
    """A release's `chart` as the fact files name it: `oci://host/path/name` and `repo/name` give `name`."""
    return chart.rstrip("/").rsplit("/", 1)[-1]


def _paths(doc: Mapping[str, Any], field: str, name: str) -> frozenset[KeyPath]:
    paths = doc.get(field)
    if not isinstance(paths, list) or not all(
        isinstance(p, list) and p and all(isinstance(s, str) for s in p) for p in paths
    ):
        raise ChartKeysDataError(f"{name}: {field!r} must be a list of key paths (lists of strings)")
    return frozenset(tuple(p) for p in paths)


def _parse(name: str, text: str) -> KeySet:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChartKeysDataError(f"{name}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ChartKeysDataError(f"{name}: not a format-{FORMAT} chart key file")
    chart, version, source = doc.get("chart"), doc.get("version"), doc.get("source")
    if not isinstance(chart, str) or not isinstance(version, str) or not chart or not version:
        raise ChartKeysDataError(f"{name}: needs string 'chart' and 'version'")
    if not isinstance(source, dict) or not isinstance(source.get("repo"), str):
        raise ChartKeysDataError(f"{name}: needs a 'source' object naming the chart's repo")
    subcharts: dict[str, tuple[str, str]] = {}
    for sub in doc.get("subcharts") or []:
        if not isinstance(sub, dict) or not all(
            isinstance(sub.get(k), str) for k in ("key", "chart", "version")
        ):
            raise ChartKeysDataError(f"{name}: each subchart needs string 'key', 'chart' and 'version'")
        subcharts[sub["key"]] = (sub["chart"], sub["version"])
    keys, open_ = _paths(doc, "keys", name), _paths(doc, "open", name)
    if not open_ <= keys:
        raise ChartKeysDataError(f"{name}: every open path must also be a key")
    return KeySet(chart, version, keys, open_, subcharts, source)


@functools.cache
def key_sets() -> dict[tuple[str, str], KeySet]:
    """Every packaged key set by (chart, version); read once."""
    found: dict[tuple[str, str], KeySet] = {}
    for entry in sorted(resources.files(_DATA_PACKAGE).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            ks = _parse(entry.name, entry.read_text(encoding="utf-8"))
            if (ks.chart, ks.version) in found:
                raise ChartKeysDataError(f"{entry.name}: a second file for {ks.chart} {ks.version}")
            found[(ks.chart, ks.version)] = ks
    return found


def key_set(chart: str, version: str) -> KeySet | None:
    sets = key_sets()
    for name in (chart, chart_name(chart)):  # subcharts of a parent's own tree are named `parent/name`
        for v in (version, version.removeprefix("v")):
            if (name, v) in sets:
                return sets[(name, v)]
    return None


def format_path(path: KeyPath) -> str:
    """`grafana."grafana.ini".analytics`: dotted, with segments that hold dots or spaces quoted."""
    return ".".join(json.dumps(s) if not s or any(c in s for c in '. "') else s for s in path)


def _under(paths: frozenset[KeyPath], key: str) -> frozenset[KeyPath]:
    return frozenset(p[1:] for p in paths if len(p) > 1 and p[0] == key)


def _globals(ks: KeySet, seen: frozenset[tuple[str, str]] = frozenset()) -> tuple[set[KeyPath], set[KeyPath]]:
    """Keys and open paths under `global` of a chart and every subchart we have a key set for."""
    keys = {p for p in ks.keys if p[0] == "global"}
    open_ = {p for p in ks.open if p[0] == "global"}
    for chart, version in ks.subcharts.values():
        sub = key_set(chart, version)
        if sub is not None and (chart, version) not in seen:
            more_keys, more_open = _globals(sub, seen | {(ks.chart, ks.version)})
            keys |= more_keys
            open_ |= more_open
    return keys, open_


def _walk(
    values: Mapping[str, Any],
    keys: frozenset[KeyPath] | set[KeyPath],
    open_: frozenset[KeyPath] | set[KeyPath],
    path: KeyPath,
    found: list[KeyPath],
) -> None:
    for k, v in values.items():
        here = (*path, str(k))
        if here not in keys:
            found.append(here)
        elif here not in open_ and isinstance(v, Mapping):
            _walk(v, keys, open_, here, found)


def _check(
    ks: KeySet,
    values: Mapping[str, Any],
    where: KeyPath,
    globals_: tuple[set[KeyPath], set[KeyPath]],
    found: list[KeyPath],
) -> None:
    for k, v in values.items():
        key = str(k)
        if key == "global" and isinstance(v, Mapping):
            found.extend((*where, *p) for p in _undefined(v, *globals_, ("global",)))
        elif key in ks.subcharts and isinstance(v, Mapping):
            chart, version = ks.subcharts[key]
            sub = key_set(chart, version)
            if sub is None:
                raise MissingKeySet(chart, version, via=format_path((*where, key)))
            merged = KeySet(
                chart=sub.chart,
                version=sub.version,
                keys=_under(ks.keys, key) | sub.keys,  # the parent may read keys under the subchart's too
                open=_under(ks.open, key) | sub.open,
                subcharts=sub.subcharts,
                source=sub.source,
            )
            _check(merged, v, (*where, key), globals_, found)
        else:
            found.extend((*where, *p) for p in _undefined({key: v}, ks.keys, ks.open, ()))


def _undefined(
    values: Mapping[str, Any],
    keys: frozenset[KeyPath] | set[KeyPath],
    open_: frozenset[KeyPath] | set[KeyPath],
    path: KeyPath,
) -> list[KeyPath]:
    found: list[KeyPath] = []
    _walk(values, keys, open_, path, found)
    return found


def undefined_keys(chart: str, version: str, values: Mapping[str, Any]) -> list[str]:
    """Key paths of `values` that chart `version` does not define, formatted like `a.b.c`.

    Raises MissingKeySet when there is no key set for the chart or for a subchart our values configure.
    """
    ks = key_set(chart, version)
    if ks is None:
        raise MissingKeySet(chart_name(chart), version)
    found: list[KeyPath] = []
    _check(ks, values, (), _globals(ks), found)
    return [format_path(p) for p in found]
