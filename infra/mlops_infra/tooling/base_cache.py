"""A cache of the base documents `plan --compare REF` / `cost --compare REF` evaluate (tooling/base_plan.py).

Evaluating a git ref with its own code costs a fresh process and a full plan; the same ref is compared against
again and again (every save, every push of a pull request). The document depends only on what is hashed into
the key, so a cached one is reused exactly:

- the content of the base revision: the git object ids of its top-level entries, all but documentation and CI
  workflows (`IGNORED`), so a change to any code, stack, workload or data file in the base is a new key;
- the stack argument and the working directory relative to the checkout, and the checkout's path (documents
  name paths under it);
- the interpreter and the installed distributions with their versions (the base runs on this environment's
  Pulumi SDK and providers);
- `FORMAT`, raised whenever what is stored or how it is produced changes.

Entries live in `.mlops-infra-cache/base-plans/` at the top of the checkout (git-ignored), one JSON file per
key, written atomically. An entry is used only when it parses, names its own key and its document matches the
stored digest; anything else is ignored and replaced. `MLOPS_INFRA_NO_CACHE=1` turns the cache off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 1
DIRECTORY = ".mlops-infra-cache"
KEEP = 64  # entries kept; the oldest beyond that are removed when a new one is written
# Top-level entries of the base tree that no evaluation reads.
IGNORED = frozenset({".github", "docs", "LICENSE"})


@dataclass(frozen=True)
class Entry:
    """A cached base: its `plan --json` document, or None when the stack does not exist at the base."""

    document: dict[str, Any] | None


def enabled() -> bool:
    return os.environ.get("MLOPS_INFRA_NO_CACHE", "") in ("", "0")


def relevant_entries(ls_tree: str) -> list[str]:
    """`git ls-tree REF` output -> `id name` of every top-level entry an evaluation may read, sorted."""
    found = []
    for line in ls_tree.splitlines():
        meta, _, name = line.partition("\t")
        if name in IGNORED or name.endswith(".md"):
            continue
        found.append(f"{meta.split()[-1]} {name}")
    return sorted(found)


def _environment() -> list[str]:
    """The interpreter and every installed distribution (`name-version.dist-info` directory names)."""
    dists: set[str] = set()
    for entry in sys.path:
        with contextlib.suppress(OSError):
            dists.update(n for n in os.listdir(entry or ".") if n.endswith((".dist-info", ".egg-info")))
    return [sys.version, *sorted(dists)]


def key(tree: list[str], stack_arg: str, relative_cwd: str, top: Path) -> str:
    material = {
        "format": FORMAT,
        "tree": tree,
        "stack": stack_arg,
        "cwd": relative_cwd,
        "top": str(top),
        "environment": _environment(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _digest(document: dict[str, Any] | None) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _path(top: Path, cache_key: str) -> Path:
    return top / DIRECTORY / "base-plans" / f"{cache_key}.json"


def load(top: Path, cache_key: str) -> Entry | None:
    """The entry stored under `cache_key`, or None when there is none or it cannot be trusted."""
    try:
        stored = json.loads(_path(top, cache_key).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("format") != FORMAT or stored.get("key") != cache_key:
        return None
    document = stored.get("document")
    if not (document is None or isinstance(document, dict)) or stored.get("digest") != _digest(document):
        return None
    return Entry(document)


def store(top: Path, cache_key: str, document: dict[str, Any] | None) -> None:
    """Write the entry atomically (a reader sees the old file or the new one, never half of one); a checkout
    that cannot be written to just goes without a cache."""
    path = _path(top, cache_key)
    record = {"format": FORMAT, "key": cache_key, "digest": _digest(document), "document": document}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ignore = (
            top / DIRECTORY / ".gitignore"
        )  # ignored wherever the checkout's own .gitignore does not say so
        if not ignore.exists():
            ignore.write_text("*\n")
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
            json.dump(record, tmp)
        os.replace(tmp.name, path)
        _prune(path.parent)
    except OSError:
        return


def _prune(directory: Path) -> None:
    entries = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        with contextlib.suppress(OSError):
            old.unlink()
