"""`mlops-infra pr-comment`: one comment per stack, edited in place on the next push (found by the marker on
its first line and written by the workflow's bot), other people's comments never touched, through `gh api`
(the recording fake of tests/ci/fake_tools.py, which keeps the PR's comments in a file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ci.fake_tools import write_wrapper

from mlops_infra.tooling.cli import main

REPO, PR = "example-org/mlops-infra", "42"


@pytest.fixture
def github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake `gh` first on PATH; returns the file holding the PR's comments."""
    write_wrapper(tmp_path / "bin" / "gh", "gh")
    state = tmp_path / "comments.json"
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("FAKE_GH_STATE", str(state))
    monkeypatch.setenv("FAKE_GH_PAGE_SIZE", "2")  # several pages: `--paginate` output is parsed whole
    monkeypatch.setenv("GH_TOKEN", "ghs_fake")
    return state


def _files(tmp_path: Path, push: int) -> list[str]:
    paths = []
    for stack in ("dev", "prod", "prod-gcp"):
        path = tmp_path / f"plan-{stack}.md"
        path.write_text(f"<!-- mlops-infra-plan:{stack} -->\n### Plan of `{stack}` (push {push})\n")
        paths.append(str(path))
    return paths


def _comments(state: Path) -> list[dict[str, Any]]:
    return list(json.loads(state.read_text()))


def _post(*files: str) -> int:
    return main(["pr-comment", "--repo", REPO, "--pr", PR, *files])


def test_second_push_edits_the_same_comments(
    github: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Comments already on the PR: a person quoting the marker, and the bot's old single cost comment.
    monkeypatch.setenv("FAKE_GH_LOGIN", "a-reviewer")
    Path(tmp_path / "human.md").write_text("<!-- mlops-infra-plan:prod -->\nI disagree with this diff\n")
    assert _post(str(tmp_path / "human.md")) == 0
    monkeypatch.setenv("FAKE_GH_LOGIN", "github-actions[bot]")
    Path(tmp_path / "old.md").write_text("<!-- mlops-infra-cost -->\nold cost comment\n")
    assert _post(str(tmp_path / "old.md")) == 0
    capsys.readouterr()

    assert _post(*_files(tmp_path, 1)) == 0
    first = {c["id"]: c["body"] for c in _comments(github)}
    assert "created comment" in capsys.readouterr().out
    assert _post(*_files(tmp_path, 2)) == 0
    out = capsys.readouterr().out
    second = {c["id"]: c["body"] for c in _comments(github)}

    assert set(second) == set(first)  # nothing added on the second push
    assert out.count("updated comment") == 3
    ours = {body.splitlines()[0]: body for body in second.values() if "(push" in body}
    assert set(ours) == {f"<!-- mlops-infra-plan:{s} -->" for s in ("dev", "prod", "prod-gcp")}
    assert all("(push 2)" in body for body in ours.values())
    assert "I disagree with this diff" in second[1000] and "old cost comment" in second[1001]


@pytest.mark.parametrize(
    ("content", "argv", "message"),
    [
        ("### no marker\n", [], "the first line must be a marker"),
        ("<!-- mlops-infra-plan:dev -->\n", ["--pr", "x42"], "expected a pull-request number"),
        ("<!-- mlops-infra-plan:dev -->\n", ["--repo", "not a repo"], "expected OWNER/NAME"),
        ("<!-- mlops-infra-plan:dev -->\n" + "x" * 70_000, [], "GitHub takes at most 65536"),
    ],
)
def test_bad_input_exits_2_before_anything_is_posted(
    github: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    argv: list[str],
    message: str,
) -> None:
    body = tmp_path / "plan-dev.md"
    body.write_text(content)
    args = {"--repo": REPO, "--pr": PR}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        args[flag] = value
    code = main(["pr-comment", *(x for kv in args.items() for x in kv), str(body)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not github.exists()  # no comment listed, created or edited


def test_two_files_for_one_stack_and_a_missing_file_are_refused(
    github: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text("<!-- mlops-infra-plan:dev -->\n")
    b.write_text("<!-- mlops-infra-plan:dev -->\n")
    assert _post(str(a), str(b)) == 2
    assert "same marker" in capsys.readouterr().err
    assert _post(str(a), str(tmp_path / "missing.md")) == 2
    assert "missing.md: cannot read" in capsys.readouterr().err
    assert not github.exists()


def test_gh_failure_is_one_line(
    github: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GH_TOKEN")
    assert _post(*_files(tmp_path, 1)) == 2
    err = capsys.readouterr().err
    assert "gh api --paginate" in err and "GH_TOKEN" in err and len(err.strip().splitlines()) == 1
