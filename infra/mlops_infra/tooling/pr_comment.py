"""`mlops-infra pr-comment --repo OWNER/NAME --pr N FILE...`: each FILE becomes one comment on the pull request,
and a later run edits that comment instead of adding another, so a PR keeps one current comment per stack.

A FILE starts with a hidden marker line (`<!-- mlops-infra-plan:prod -->`, as `plan --compare --format
markdown` writes it). The earlier comment is the one whose first line is the same marker and whose author is
`--author` (the workflow token's identity, `github-actions[bot]`): a comment anybody else wrote is never
edited, even with the marker in it. Everything goes through the GitHub CLI (`gh api`, authenticated by
GH_TOKEN): list the PR's comments, then PATCH the one found or POST a new one.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # building the parser does not need it
    from rich.console import Console

MARKER = re.compile(r"<!-- mlops-infra[\w:.@/-]* -->")
REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
MAX_BODY = 65_536  # GitHub refuses longer comment bodies
GH_TIMEOUT_S = 120


class CommentError(Exception):
    """A file that cannot be posted, or `gh` failing: one line on stderr, exit code 2."""


def marker_of(body: str, where: str) -> str:
    first = body.split("\n", 1)[0].strip()
    if not MARKER.fullmatch(first):
        raise CommentError(
            f"{where}: the first line must be a marker like `<!-- mlops-infra-plan:STACK -->` "
            "(`plan STACK --compare BASE --format markdown` writes one)"
        )
    return first


def gh(args: Sequence[str], stdin: str | None = None) -> str:
    """Run `gh`; its failure becomes a CommentError with gh's own last line."""
    try:
        proc = subprocess.run(
            ["gh", *args], input=stdin, capture_output=True, text=True, timeout=GH_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise CommentError("the GitHub CLI `gh` is not installed") from None
    except subprocess.TimeoutExpired:
        raise CommentError(f"gh {' '.join(args[:3])}: no answer in {GH_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise CommentError(f"gh {' '.join(args[:3])} failed (exit {proc.returncode}): {tail}")
    return proc.stdout


def _json_stream(text: str) -> list[Any]:
    """`gh api --paginate` prints one JSON array per page, back to back: their items, in order."""
    decoder, items, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        try:
            page, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise CommentError(f"gh api printed something that is not JSON ({exc})") from None
        items.extend(page if isinstance(page, list) else [page])
    return items


def existing_comments(run: Callable[..., str], repo: str, pr: int) -> list[dict[str, Any]]:
    text = run(["api", "--paginate", f"repos/{repo}/issues/{pr}/comments?per_page=100"])
    return [c for c in _json_stream(text) if isinstance(c, dict)]


def upsert(
    run: Callable[..., str], repo: str, pr: int, body: str, author: str, comments: list[dict[str, Any]]
) -> tuple[str, int]:
    """Edit the author's comment that starts with the body's marker (the oldest, when several), else create
    one. Returns ("updated" or "created", comment id)."""
    marker = marker_of(body, "comment body")
    own = [
        c
        for c in comments
        if (c.get("user") or {}).get("login") == author and str(c.get("body", "")).startswith(marker)
    ]
    payload = json.dumps({"body": body})
    if own:
        target = min(own, key=lambda c: int(c["id"]))
        run(
            ["api", "--method", "PATCH", f"repos/{repo}/issues/comments/{target['id']}", "--input", "-"],
            payload,
        )
        return "updated", int(target["id"])
    created = json.loads(
        run(["api", "--method", "POST", f"repos/{repo}/issues/{pr}/comments", "--input", "-"], payload)
        or "{}"
    )
    return "created", int(created.get("id", 0))


def _read(path: Path) -> str:
    try:
        body = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommentError(
            f"{path}: cannot read ({exc.strerror if isinstance(exc, OSError) else exc})"
        ) from None
    if len(body) > MAX_BODY:
        raise CommentError(f"{path}: {len(body)} characters; GitHub takes at most {MAX_BODY} in a comment")
    marker_of(body, str(path))
    return body


def cmd_pr_comment(args: argparse.Namespace, out: Console, run: Callable[..., str] = gh) -> int:
    if not REPO.fullmatch(args.repo):
        raise CommentError(f"--repo {args.repo!r}: expected OWNER/NAME")
    if not str(args.pr).isdigit() or int(args.pr) <= 0:
        raise CommentError(f"--pr {args.pr!r}: expected a pull-request number")
    pr = int(args.pr)
    bodies = [(Path(f), _read(Path(f))) for f in args.files]  # every file checked before anything is posted
    markers = [marker_of(body, str(path)) for path, body in bodies]
    if len(set(markers)) != len(markers):
        raise CommentError("two files carry the same marker: they would overwrite each other's comment")
    comments = existing_comments(run, args.repo, pr)
    for path, body in bodies:
        action, comment_id = upsert(run, args.repo, pr, body, args.author, comments)
        out.print(f"{path}: {action} comment {comment_id} on {args.repo}#{pr}")
    return 0


def add_parser(sub: Any, handler: Callable[[argparse.Namespace, Console], int]) -> None:
    p = sub.add_parser("pr-comment", help="post each FILE as one PR comment, edited in place on later runs")
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="markdown starting with a `<!-- mlops-infra... -->` line"
    )
    p.add_argument("--repo", required=True, metavar="OWNER/NAME")
    p.add_argument("--pr", required=True, metavar="N", help="the pull request's number")
    p.add_argument(
        "--author",
        default="github-actions[bot]",
        help="only this account's comments are edited (default: the Actions token's bot)",
    )
    p.set_defaults(func=handler)
