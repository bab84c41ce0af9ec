"""What keeps the repository usable from any clone: no path of one machine or file outside the repo in tracked
files, and Pulumi's private runtime reached through one adapter only."""

from __future__ import annotations

import re
import subprocess
import sys

from plan_support import ROOT

MACHINE_PATHS = re.compile(r"(/work/|/root/|/home/[A-Za-z0-9_-]+/|\.\./shared|DESIGN\.md|FIELD-NOTES)")


def _tracked() -> list[str]:
    return subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()


def test_no_tracked_file_names_a_path_of_one_machine() -> None:
    offenders = []
    for name in _tracked():
        if name == "uv.lock" or name.startswith("tests/schemas/"):
            continue
        try:
            text = (ROOT / name).read_text()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        offenders += [
            f"{name}:{n}: {line.strip()}"
            for n, line in enumerate(text.splitlines(), 1)
            if MACHINE_PATHS.search(line)
        ]
    # This file names the patterns it looks for.
    offenders = [o for o in offenders if not o.startswith("tests/test_repo_hygiene.py")]
    assert offenders == []


def test_only_the_sdk_adapter_imports_pulumis_private_runtime() -> None:
    runtime = re.compile(r"^\s*(from pulumi\.runtime\b|import pulumi\.runtime\b)", re.M)
    offenders = [
        name
        for name in _tracked()
        if name.endswith(".py")
        and name.startswith(("infra/", "policies/"))
        and name != "infra/mlops_infra/tooling/sdk.py"
        and runtime.search((ROOT / name).read_text())
    ]
    assert offenders == []


def test_image_requirements_match_the_lock() -> None:
    """The images install what the tests ran with: requirements.txt is generated from uv.lock."""
    result = subprocess.run(
        [sys.executable, "scripts/image_requirements.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
