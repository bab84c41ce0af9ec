#!/usr/bin/env python3
"""Assemble the policy pack as a self-contained directory that `pulumi policy publish` can ship to an
organisation: the pack's entry point, a manifest whose virtualenv Pulumi creates from requirements.txt, and
requirements pinned to the mlops-infra release built next to it (its wheel carries `mlops_policies`) and the
locked pulumi-policy.

    scripts/policy_pack_bundle.py DIST_DIR OUT_DIR
"""

from __future__ import annotations

import re
import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = """description: mlops-platform guardrails - security, reliability and cost rules (same functions as `mlops-infra check`)
runtime:
  name: python
  options:
    virtualenv: venv
version: {version}
"""


def main(dist: Path, out: Path) -> int:
    wheels = sorted(dist.glob("mlops_infra-*.whl"))
    if len(wheels) != 1:
        print(
            f"{dist}: expected one mlops_infra wheel, found {len(wheels)} (run `make dist`)", file=sys.stderr
        )
        return 2
    version = wheels[0].name.split("-")[1]
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    policy = next(p["version"] for p in lock["package"] if p["name"] == "pulumi-policy")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "policies" / "__main__.py", out / "__main__.py")
    pack_version = re.sub(r"[^0-9.].*$", "", version) or "0.0.0"  # the service wants MAJOR.MINOR.PATCH
    (out / "PulumiPolicy.yaml").write_text(MANIFEST.format(version=pack_version))
    (out / "requirements.txt").write_text(f"mlops-infra=={version}\npulumi-policy=={policy}\n")
    print(f"{out}: policy pack for mlops-infra {version} (pulumi-policy {policy})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
