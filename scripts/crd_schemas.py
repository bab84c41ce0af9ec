#!/usr/bin/env python3
"""Turn a CustomResourceDefinition's openAPIV3Schema into the JSON schema form of tests/schemas/crds/.

Why: `kubernetes-validate` knows only built-in kinds, so tests/test_render.py validates custom resources
against per-group JSON schemas with unknown fields rejected. Upstream projects ship CRDs, not JSON schemas;
this script converts one CRD version the way the datreeio/CRDs-catalog files already in that folder were
made: descriptions removed, `additionalProperties: false` on every object schema that lists its properties
(unless it keeps unknown fields), and `x-kubernetes-int-or-string` spelt as `anyOf: [integer, string]`.
CEL rules (`x-kubernetes-validations`) stay in the file but JSON Schema does not evaluate them.

Usage (from a checkout or bare clone of the project that ships the CRD, at the pinned version):

    scripts/crd_schemas.py --git ~/src/karpenter-provider-aws --ref v1.14.1 \
        --path pkg/apis/crds/karpenter.sh_nodepools.yaml --version v1

or from a file: `scripts/crd_schemas.py CRD.yaml --version v1`. The schema is written to
`tests/schemas/crds/<group>/<kind lowercase>_<version>.json` unless `--out` names another folder; record the
source (repository, ref, path) in that folder's README.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "schemas" / "crds"
DROPPED_KEYS = frozenset({"description"})


class CrdError(Exception):
    """A CRD we cannot read or convert; the message says which and why."""


def structural(schema: Any) -> Any:
    """The schema without prose, closed to unknown fields, with int-or-string as anyOf."""
    if isinstance(schema, list):
        return [structural(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: structural(v) for k, v in schema.items() if k not in DROPPED_KEYS}
    if out.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    keeps_unknown = out.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in out
    if out.get("type") == "object" and "properties" in out and not keeps_unknown:
        out["additionalProperties"] = False
    return out


def crd_version_schema(crd: Any, version: str) -> tuple[str, str, dict[str, Any]]:
    """(group, kind, JSON schema of the object) for one served version of the CRD."""
    if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
        raise CrdError("not a CustomResourceDefinition")
    spec = crd.get("spec") or {}
    group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
    if not isinstance(group, str) or not isinstance(kind, str):
        raise CrdError("the CRD names no spec.group or spec.names.kind")
    for entry in spec.get("versions") or []:
        if entry.get("name") == version:
            schema = ((entry.get("schema") or {}).get("openAPIV3Schema")) or None
            if not isinstance(schema, dict):
                raise CrdError(f"version {version} has no openAPIV3Schema")
            converted = structural(schema)
            # The API server fills and checks these itself; the catalog files keep them loose the same way.
            props = converted.setdefault("properties", {})
            props["apiVersion"] = {"type": "string"}
            props["kind"] = {"type": "string"}
            props["metadata"] = {"type": "object"}
            return group, kind, converted
    served = ", ".join(str(v.get("name")) for v in spec.get("versions") or [])
    raise CrdError(f"no version {version} in the CRD (it has: {served or 'none'})")


def read_crd(path: Path | None, git: Path | None, ref: str | None, inner: str | None) -> Any:
    try:
        if git is not None:
            if not ref or not inner:
                raise CrdError("--git needs --ref and --path")
            text = subprocess.run(
                ["git", "-C", str(git), "show", f"{ref}:{inner}"], capture_output=True, check=True, text=True
            ).stdout
        elif path is not None:
            text = path.read_text(encoding="utf-8")
        else:
            raise CrdError("give a CRD file or --git/--ref/--path")
        return yaml.safe_load(text)
    except subprocess.CalledProcessError as exc:
        raise CrdError(f"git show {ref}:{inner}: {exc.stderr.strip()}") from None
    except OSError as exc:
        raise CrdError(f"{path}: cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CrdError(f"not valid YAML: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("crd", nargs="?", type=Path, help="a CRD YAML file (omit with --git)")
    parser.add_argument("--git", type=Path, help="a git checkout or bare repository holding the CRD")
    parser.add_argument("--ref", help="tag or commit of the pinned version")
    parser.add_argument("--path", help="the CRD file inside the repository")
    parser.add_argument("--version", required=True, help="the CRD version to convert, e.g. v1")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    try:
        group, kind, schema = crd_version_schema(
            read_crd(args.crd, args.git, args.ref, args.path), args.version
        )
    except CrdError as exc:
        print(f"crd_schemas: {exc}", file=sys.stderr)
        return 2
    target = args.out / group / f"{kind.lower()}_{args.version}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")) + "\n", encoding="utf-8")
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
