"""The cache of `--compare REF` base documents: a hit returns exactly what the evaluation returned, any change
to the base revision's code or stacks is a miss, and an entry that cannot be trusted is ignored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlops_infra.tooling import base_cache, base_plan

from plan_support import git

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def _commit(repo: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository whose base "evaluation" reports what it read from the exported revision, counting runs."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    _commit(
        root,
        {
            "stacks/Pulumi.dev.yaml": "config: {replicas: 1}\n",
            "infra/program.py": "VERSION = 1\n",
            "README.md": "# base\n",
            "docs/index.md": "docs\n",
        },
        "base",
    )
    monkeypatch.chdir(root)
    monkeypatch.delenv("MLOPS_INFRA_NO_CACHE", raising=False)

    def fake_plan(base: str, arg: str, export: Path, work: Path) -> dict[str, Any]:
        return {
            "stack": arg,
            "stackFile": (work / "stacks" / f"Pulumi.{arg}.yaml").read_text(),
            "program": (export / "infra" / "program.py").read_text(),
            "context": str(export / "workloads" / "serving"),
            "cost": {"items": [], "monthly": {}},
        }

    _RUNS.clear()
    monkeypatch.setattr(base_plan, "_run_base_plan", lambda *a: (_RUNS.append(a[0]), fake_plan(*a))[1])
    return root


_RUNS: list[str] = []  # bases the fake evaluation ran for, in the current test


def _runs() -> list[str]:
    return _RUNS


def _entries(repo: Path) -> list[Path]:
    return sorted((repo / base_cache.DIRECTORY / "base-plans").glob("*.json"))


def test_a_hit_returns_the_evaluated_document_without_evaluating(repo: Path) -> None:
    first = base_plan.load_base("HEAD", "dev")
    second = base_plan.load_base("HEAD", "dev")
    assert _runs() == ["HEAD"], "the second look-up is served from the cache"
    assert second == first
    assert first.document is not None and first.document["program"] == "VERSION = 1\n"
    # Stored with the checkout's paths (the temporary export's are relocated before caching).
    assert first.document["context"] == str(repo.resolve() / "workloads" / "serving")
    assert len(_entries(repo)) == 1
    assert (repo / base_cache.DIRECTORY / ".gitignore").read_text() == "*\n"
    assert "cache" not in git(repo, "status", "--porcelain", "--untracked-files=all")
    # Another stack, or the same stack by another ref naming the same commit, is its own / the same entry.
    base_plan.load_base("HEAD", "prod")
    assert base_plan.load_base("HEAD", "prod").label == "HEAD (no such stack)"
    head = git(repo, "rev-parse", "HEAD").strip()
    assert base_plan.load_base(head, "dev").document == first.document
    assert _runs() == ["HEAD"] and len(_entries(repo)) == 2, "a stack the base lacks is cached as such"


@pytest.mark.parametrize(
    ("changed", "fresh"),
    [
        ({"stacks/Pulumi.dev.yaml": "config: {replicas: 2}\n"}, True),
        ({"infra/program.py": "VERSION = 2\n"}, True),
        ({"workloads/serving/app.py": "print()\n"}, True),
        ({"README.md": "# edited\n", "docs/index.md": "more docs\n"}, False),
    ],
)
def test_a_changed_base_is_evaluated_afresh(repo: Path, changed: dict[str, str], fresh: bool) -> None:
    before = base_plan.load_base("HEAD", "dev").document
    _commit(repo, changed, "change")
    after = base_plan.load_base("HEAD", "dev").document
    assert len(_runs()) == (2 if fresh else 1)
    assert before is not None and after is not None
    if "stacks/Pulumi.dev.yaml" in changed:
        assert after["stackFile"] == changed["stacks/Pulumi.dev.yaml"]
    if "infra/program.py" in changed:
        assert after["program"] == "VERSION = 2\n"
    # The older revision is still cached under its own key.
    assert base_plan.load_base("HEAD~1", "dev").document == before
    assert len(_runs()) == (2 if fresh else 1)


def test_another_environment_is_a_miss(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base_plan.load_base("HEAD", "dev")
    monkeypatch.setattr(base_cache, "_environment", lambda: ["3.11", "pulumi-9.9.9.dist-info"])
    base_plan.load_base("HEAD", "dev")
    assert len(_runs()) == 2


def _corrupt_text(entry: Path) -> None:
    entry.write_text(entry.read_text()[:100])


def _tampered_document(entry: Path) -> None:
    record = json.loads(entry.read_text())
    record["document"]["program"] = "VERSION = 666\n"
    entry.write_text(json.dumps(record))


def _other_key(entry: Path) -> None:
    record = json.loads(entry.read_text())
    record["key"] = "0" * 64
    entry.write_text(json.dumps(record))


def _other_format(entry: Path) -> None:
    record = json.loads(entry.read_text())
    record["format"] = base_cache.FORMAT + 1
    entry.write_text(json.dumps(record))


@pytest.mark.parametrize("damage", [_corrupt_text, _tampered_document, _other_key, _other_format])
def test_an_entry_that_cannot_be_trusted_is_ignored_and_replaced(repo: Path, damage: Any) -> None:
    first = base_plan.load_base("HEAD", "dev")
    [entry] = _entries(repo)
    damage(entry)
    again = base_plan.load_base("HEAD", "dev")
    assert len(_runs()) == 2, "re-evaluated"
    assert again == first and again.document is not None and again.document["program"] == "VERSION = 1\n"
    assert base_cache.load(repo.resolve(), entry.stem) == base_cache.Entry(first.document), "rewritten"


def test_the_cache_can_be_turned_off(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_INFRA_NO_CACHE", "1")
    base_plan.load_base("HEAD", "dev")
    base_plan.load_base("HEAD", "dev")
    assert len(_runs()) == 2 and not _entries(repo)


def test_a_failed_evaluation_is_not_cached(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*_: Any) -> dict[str, Any]:
        raise base_plan.BaseError("plan of dev at HEAD failed (exit 1): boom")

    monkeypatch.setattr(base_plan, "_run_base_plan", failing)
    with pytest.raises(base_plan.BaseError, match="boom"):
        base_plan.load_base("HEAD", "dev")
    assert not _entries(repo)


def test_only_documentation_and_ci_entries_are_left_out_of_the_key() -> None:
    listing = "\n".join(
        f"100644 blob {n:040x}\t{name}"
        for n, name in enumerate(
            ["README.md", "CHANGELOG.md", "LICENSE", "Makefile", "pyproject.toml", "uv.lock", "Pulumi.yaml"]
        )
    )
    listing += "\n" + "\n".join(
        f"040000 tree {n:040x}\t{name}"
        for n, name in enumerate([".github", "docs", "infra", "policies", "stacks", "workloads", "tests"], 10)
    )
    names = [e.split(" ", 1)[1] for e in base_cache.relevant_entries(listing)]
    assert sorted(names) == sorted(
        [
            "Makefile",
            "pyproject.toml",
            "uv.lock",
            "Pulumi.yaml",
            "infra",
            "policies",
            "stacks",
            "workloads",
            "tests",
        ]
    )
