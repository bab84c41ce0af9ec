#!/usr/bin/env python3
"""Write each workload image's requirements.txt from uv.lock: the packages a workload names in its
requirements.in, pinned to exactly the versions the project's tests run with.

    scripts/image_requirements.py            # rewrite workloads/*/requirements.txt
    scripts/image_requirements.py --check    # exit 1 when one is stale (make test runs this via pytest)
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = (
    "# Generated from uv.lock by scripts/image_requirements.py from requirements.in; do not edit.\n"
    "# Pinned to the versions the project's tests run with; pip resolves their own dependencies at build time.\n"
)


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {p["name"]: p["version"] for p in lock["package"] if "version" in p}


def render(requirements_in: Path, versions: dict[str, str]) -> str:
    lines = [HEADER]
    for raw in requirements_in.read_text().splitlines():
        name = raw.split("#", 1)[0].strip()
        if not name:
            continue
        key = name.lower().replace("_", "-")
        if key not in versions:
            raise SystemExit(
                f"{requirements_in}: {name} is not in uv.lock; add it to pyproject.toml and lock"
            )
        lines.append(f"{name}=={versions[key]}\n")
    return "".join(lines)


def main(argv: list[str]) -> int:
    versions = locked_versions()
    stale = []
    for requirements_in in sorted(ROOT.glob("workloads/*/requirements.in")):
        target = requirements_in.with_suffix(".txt")
        text = render(requirements_in, versions)
        if "--check" in argv:
            if not target.is_file() or target.read_text() != text:
                stale.append(target.relative_to(ROOT))
        else:
            target.write_text(text)
    for path in stale:
        print(f"{path}: stale: regenerate with scripts/image_requirements.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
