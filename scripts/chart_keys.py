#!/usr/bin/env python3
"""Record which value key paths a pinned Helm chart defines, as a small JSON fact file per chart + version.

Why: Helm ignores a value key the chart never reads, so a misspelt or outdated key in our value builders
silently does nothing. The policy rule `helm-values-known` compares every release's values with these facts.

What counts as defined: every key path of the chart's `values.yaml` (nested maps), every `.Values` path its
templates read, and each dependency's `condition`/`tags` path. "Open" paths accept any children: a
`values.yaml` leaf that defaults to `{}`, `[]` or null, and a value the templates render wholesale
(`toYaml`, `tpl`, `range`, passed to `include`, ...). Subcharts get their own file; the parent's file says
which value key (alias) routes to which subchart and version. Subcharts vendored under the chart's
`charts/` directory are extracted in the same run.

Usage (one command per chart, from a checkout of the chart's repository at the pinned tag):

    scripts/chart_keys.py --git ~/src/helm-charts --ref prometheus-pushgateway-3.8.0 \
        --path charts/prometheus-pushgateway --source https://github.com/prometheus-community/helm-charts

or from an unpacked chart (`helm pull --untar`): `scripts/chart_keys.py DIR --source URL [--commit SHA]`.
Files are written to infra/mlops_infra/data/chart_keys/ unless `--out` says otherwise.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FORMAT = 1
GENERATED_BY = "scripts/chart_keys.py"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "infra" / "mlops_infra" / "data" / "chart_keys"

Path_ = tuple[str, ...]


class ChartError(Exception):
    """A chart directory or git reference we cannot read; the message says which and why."""


# ------------------------------------------------------------------------------------------ values.yaml


def _key(k: Any) -> str:
    # Helm converts YAML to JSON: boolean keys become "true"/"false".
    return str(k).lower() if isinstance(k, bool) else str(k)


def values_paths(doc: Any, prefix: Path_ = ()) -> Iterator[tuple[Path_, bool]]:
    """(path, open) for every key of a values document; open when the default leaves its shape free."""
    if not isinstance(doc, Mapping):
        return
    for k, v in doc.items():
        path = (*prefix, _key(k))
        free = v is None or (isinstance(v, Mapping | list) and not v)
        yield path, free
        if isinstance(v, Mapping):
            yield from values_paths(v, path)


# ------------------------------------------------------------------------------------------ templates

_ACTION_RE = re.compile(r"\{\{-?(.*?)-?\}\}", re.S)
_TOKEN_RE = re.compile(
    r"""(?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
      |(?P<char>'(?:[^'\\]|\\.)*')
      |(?P<lp>\()|(?P<rp>\))|(?P<pipe>\|)|(?P<decl>:=)|(?P<assign>=)|(?P<comma>,)
      |(?P<word>[^\s()|,"`'=:]+)
      |(?P<other>\S)""",
    re.X,
)
# Functions whose argument is used whole: its children are the user's to choose.
_WHOLE = {
    "toYaml", "toJson", "toPrettyJson", "toRawJson", "toToml", "mustToJson", "mustToPrettyJson",
    "mustToRawJson", "tpl", "include", "template", "keys", "values", "merge", "mergeOverwrite", "mustMerge",
    "mustMergeOverwrite", "deepCopy", "mustDeepCopy", "pick", "omit", "fromYaml", "toString",
}  # fmt: skip
# Functions whose result is (the path of) their last argument: `default x .Values.a`, `required "m" .Values.a`.
_PASS_LAST = {"default", "required", "coalesce"}


@dataclass(frozen=True)
class Ref:
    """What `.` or a variable stands for: the root context, a path inside .Values, or unknown (None)."""

    values: Path_ | None = None
    root: bool = False


ROOT = Ref(root=True)
UNKNOWN = Ref()


@dataclass
class Token:
    kind: str
    text: str
    start: int
    end: int


@dataclass
class Frame:
    dot: Ref
    outer: Ref
    vars: dict[str, Ref] = field(default_factory=dict)


@dataclass
class TemplateFacts:
    read: set[Path_] = field(default_factory=set)
    open: set[Path_] = field(default_factory=set)
    defines: dict[str, list[str]] = field(default_factory=dict)  # named template -> its actions
    expanded: set[tuple[str, Path_]] = field(default_factory=set)  # (define, .Values path) already read


def _tokens(text: str) -> list[Token]:
    return [Token(m.lastgroup or "other", m.group(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    try:
        return str(json.loads(text))
    except json.JSONDecodeError:
        return text[1:-1]


# An argument is a token or a parenthesised pipeline (optionally followed by `.field.chain`).
Arg = Token | tuple[list[list[Any]], str]


def _parse_pipeline(toks: list[Token], i: int) -> tuple[list[list[Arg]], int]:
    """Commands separated by `|` until `)` or the end; returns (commands, index after)."""
    commands: list[list[Arg]] = [[]]
    while i < len(toks):
        t = toks[i]
        if t.kind == "rp":
            return commands, i + 1
        if t.kind == "pipe":
            commands.append([])
            i += 1
        elif t.kind == "lp":
            inner, j = _parse_pipeline(toks, i + 1)
            chain = ""
            if (
                j < len(toks)
                and toks[j].kind == "word"
                and toks[j].text.startswith(".")
                and toks[j].start == toks[j - 1].end
            ):
                chain = toks[j].text
                j += 1
            commands[-1].append((inner, chain))
            i = j
        else:
            commands[-1].append(t)
            i += 1
    return commands, i


class TemplateReader:
    """Walks the actions of one template file, tracking what `.` and `$vars` stand for."""

    def __init__(self, facts: TemplateFacts, dot: Ref = ROOT):
        self.facts = facts
        self.frames = [Frame(dot, dot)]

    # -- references

    def _var(self, name: str) -> Ref:
        if name == "$":  # the data the template (or named template) was called with
            return self.frames[0].dot
        for frame in reversed(self.frames):
            if name in frame.vars:
                return frame.vars[name]
        return UNKNOWN

    def _chain(self, base: Ref, fields: list[str]) -> Ref:
        if base.values is not None:
            return Ref(values=(*base.values, *fields))
        if "Values" in fields:  # .Values.x, and helpers' `.root.Values.x` / `$ctx.Values.x`
            return Ref(values=tuple(fields[fields.index("Values") + 1 :]))
        return base if not fields else UNKNOWN

    def _word(self, text: str) -> Ref | None:
        """The reference a word names, or None for a function name or literal."""
        if text.startswith("$"):
            name, *fields = text.split(".")
            return self._chain(self._var(name), [f for f in fields if f])
        if text.startswith("."):
            return self._chain(self.frames[-1].dot, [f for f in text.split(".") if f])
        return None

    def _note(self, ref: Ref, whole: bool = False) -> Ref:
        if ref.values:
            self.facts.read.add(ref.values)
            if whole:
                self.facts.open.add(ref.values)
        return ref

    # -- evaluation

    def _refs_in(self, arg: Arg) -> Iterator[Ref]:
        if isinstance(arg, Token):
            if arg.kind == "word":
                ref = self._word(arg.text)
                if ref is not None:
                    yield ref
            return
        commands, chain = arg
        for cmd in commands:
            for sub in cmd:
                yield from self._refs_in(sub)
        value = self._pipeline(commands)
        if chain:
            yield self._chain(value, [f for f in chain.split(".") if f])

    def _arg(self, arg: Arg) -> Ref:
        if isinstance(arg, Token):
            ref = self._word(arg.text) if arg.kind == "word" else None
            return self._note(ref) if ref is not None else UNKNOWN
        commands, chain = arg
        value = self._pipeline(commands)
        return self._note(self._chain(value, [f for f in chain.split(".") if f])) if chain else value

    def _command(self, cmd: list[Arg], piped: Ref | None) -> Ref:
        if not cmd:
            return piped or UNKNOWN
        head, args = cmd[0], cmd[1:]
        fn = (
            head.text
            if isinstance(head, Token) and head.kind == "word" and self._word(head.text) is None
            else None
        )
        if fn is None:  # a reference or a parenthesised pipeline, possibly called with arguments
            value = self._arg(head)
            for a in args:
                self._arg(a)
            return value
        if fn in ("include", "template") and len(args) == 2 and self._expand(args[0], args[1]):
            return UNKNOWN
        if fn in _WHOLE:
            for a in args:
                for ref in self._refs_in(a):
                    self._note(ref, whole=True)
            if piped is not None:
                self._note(piped, whole=True)
            return UNKNOWN
        if fn in ("index", "get", "hasKey", "dig"):
            return self._lookup(fn, args, piped)
        values = [self._arg(a) for a in args]
        if piped is not None:
            values.append(piped)
        if fn in _PASS_LAST and values:
            return values[-1]
        return UNKNOWN

    def _expand(self, name: Arg, arg: Arg) -> bool:
        """`include "helper" .Values.a`: read the helper's body with `.` = .Values.a, so its reads count as
        paths under `a` instead of leaving all of `a` open. False when that does not apply."""
        if not isinstance(name, Token) or name.kind != "str" or _unquote(name.text) not in self.facts.defines:
            return False
        ref = self._arg(arg)
        if ref.root:
            return True  # read once with the root context already
        if not ref.values:
            return False
        key = (_unquote(name.text), ref.values)
        if key not in self.facts.expanded:
            self.facts.expanded.add(key)
            reader = TemplateReader(self.facts, ref)
            for action in self.facts.defines[key[0]]:
                reader.action(action)
        return True

    def _lookup(self, fn: str, args: list[Arg], piped: Ref | None) -> Ref:
        """`index .Values "a" "b"`, `get .Values.a "b"`, `hasKey .Values.a "b"`, `dig "a" "b" default .Values`."""
        if fn == "dig":
            base = self._arg(args[-1]) if args else (piped or UNKNOWN)
            keys, rest = args[:-2], args[-2:-1]
        else:
            base = self._arg(args[0]) if args else UNKNOWN
            keys, rest = args[1:], []
        for a in rest:
            self._arg(a)
        if base.values is None and not base.root:
            for a in keys:
                self._arg(a)
            return UNKNOWN
        literal = [_unquote(a.text) for a in keys if isinstance(a, Token) and a.kind == "str"]
        if len(literal) != len(keys):  # a computed key: any child may be read
            for a in keys:
                self._arg(a)
            if base.values:
                self._note(base, whole=True)
            return UNKNOWN
        if base.root:
            path = tuple(literal[1:]) if literal[:1] == ["Values"] else None
            return self._note(Ref(values=path)) if path is not None else UNKNOWN
        return self._note(Ref(values=(*(base.values or ()), *literal)))

    def _pipeline(self, commands: list[list[Arg]]) -> Ref:
        value: Ref | None = None
        for cmd in commands:
            value = self._command(cmd, value)
        return value or UNKNOWN

    def _decl(self, toks: list[Token]) -> tuple[list[str], str | None, list[Token]]:
        """Split `$a, $b := pipeline` into (variables, ':=' or '=' or None, pipeline tokens)."""
        for i, t in enumerate(toks):
            if t.kind in ("decl", "assign"):
                names = [x.text for x in toks[:i] if x.kind == "word"]
                if names and all(n.startswith("$") for n in names):
                    return names, t.text, toks[i + 1 :]
                break
        return [], None, toks

    def _eval(self, toks: list[Token]) -> tuple[Ref, list[str], str | None]:
        names, op, rest = self._decl(toks)
        commands, _ = _parse_pipeline(rest, 0)
        return self._pipeline(commands), names, op

    # -- actions

    def action(self, text: str) -> None:
        text = text.strip()
        if not text or text.startswith("/*"):
            return
        toks = _tokens(text)
        word = toks[0].text if toks[0].kind == "word" else ""
        top = self.frames[-1]
        if word == "end":
            if len(self.frames) > 1:
                self.frames.pop()
        elif word in ("if", "with", "range"):
            value, names, _ = self._eval(toks[1:])
            frame = Frame(top.dot, top.dot)
            if word == "with":
                frame.dot = value
            elif word == "range":
                self._note(value, whole=True)
                frame.dot = UNKNOWN
            for n in names:
                frame.vars[n] = value if word == "with" else UNKNOWN
            self.frames.append(frame)
        elif word == "else":
            rest = toks[1:]
            top.dot = top.outer
            if rest and rest[0].text in ("if", "with"):
                value, names, _ = self._eval(rest[1:])
                if rest[0].text == "with":
                    top.dot = value
                    top.vars.update(dict.fromkeys(names, value))
        elif word in ("define", "block"):
            if word == "block":
                self._eval(toks[2:])
            self.frames.append(Frame(ROOT, ROOT))
        elif word == "template":
            commands, _ = _parse_pipeline(toks[1:], 0)
            self._command([Token("word", "template", 0, 0), *commands[0]], None)
        elif word in ("break", "continue"):
            return
        else:
            value, names, op = self._eval(toks)
            for n in names:
                if op == "=":
                    for frame in reversed(self.frames):
                        if n in frame.vars:
                            frame.vars[n] = value
                            break
                else:
                    top.vars[n] = value


_DEFINE_RE = re.compile(r'^(?:define|block)\s+("(?:[^"\\]|\\.)*"|`[^`]*`)')
_OPENS_RE = re.compile(r"^(?:if|with|range|define|block)\b")


def _defines(actions: list[str]) -> dict[str, list[str]]:
    """Named templates (`define "x"` ... `end`) and the actions of their bodies."""
    found: dict[str, list[str]] = {}
    stack: list[str | None] = []
    for action in actions:
        text = action.strip()
        if stack and stack[0] is not None and not (text == "end" and len(stack) == 1):
            found[stack[0]].append(action)
        match = _DEFINE_RE.match(text)
        if match and not stack:
            name = _unquote(match.group(1))
            found[name] = []
            stack.append(name)
        elif _OPENS_RE.match(text):
            stack.append(None)
        elif text == "end" and stack:
            stack.pop()
    return found


def template_facts(texts: list[str]) -> TemplateFacts:
    """The .Values paths a chart's templates read, and those they use whole."""
    facts = TemplateFacts()
    files = [[m.group(1) for m in _ACTION_RE.finditer(text)] for text in texts]
    for actions in files:
        facts.defines.update(_defines(actions))
    for actions in files:
        reader = TemplateReader(facts)
        for action in actions:
            reader.action(action)
    return facts


# ------------------------------------------------------------------------------------------ charts


@dataclass
class ChartFacts:
    chart: str
    version: str
    app_version: str | None
    keys: set[Path_]
    open: set[Path_]
    subcharts: list[dict[str, Any]]
    templates: int
    vendored: list[tuple[str, Path]]  # (subchart id, directory) extracted in the same run


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ChartError(f"{path}: cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ChartError(f"{path}: not valid YAML: {exc}") from None


def _with_prefixes(paths: set[Path_]) -> set[Path_]:
    return {p[:i] for p in paths for i in range(1, len(p) + 1)}


def _vendored(chart_dir: Path, name: str, scratch: Path) -> Path | None:
    """The directory of a subchart shipped inside the chart (`charts/<name>/` or `charts/<name>-<v>.tgz`)."""
    charts = chart_dir / "charts"
    if (charts / name / "Chart.yaml").is_file():
        return charts / name
    for tgz in sorted(charts.glob(f"{name}-*.tgz")):
        target = scratch / tgz.stem
        with tarfile.open(tgz) as archive:
            archive.extractall(target, filter="data")
        found = [p.parent for p in target.glob("*/Chart.yaml")]
        if found:
            return found[0]
    return None


def chart_facts(chart_dir: Path, scratch: Path, chart_id: str | None = None) -> ChartFacts:
    """Facts of the chart in `chart_dir`. `chart_id` names a local subchart (`parent/name`)."""
    meta = _load_yaml(chart_dir / "Chart.yaml")
    if not isinstance(meta, Mapping) or not meta.get("name") or not meta.get("version"):
        raise ChartError(f"{chart_dir}: Chart.yaml has no name and version; is this a chart directory?")
    name, version = str(meta["name"]), str(meta["version"])
    values_file = chart_dir / "values.yaml"
    values = _load_yaml(values_file) if values_file.is_file() else {}
    keys: set[Path_] = set()
    open_: set[Path_] = set()
    for path, free in values_paths(values or {}):
        keys.add(path)
        if free:
            open_.add(path)
    templates = sorted(p for p in (chart_dir / "templates").rglob("*") if p.is_file())
    tfacts = template_facts([t.read_text(encoding="utf-8", errors="replace") for t in templates])
    keys |= {p for p in tfacts.read if p}
    open_ |= {p for p in tfacts.open if p}
    subcharts: list[dict[str, Any]] = []
    vendored: list[tuple[str, Path]] = []
    for dep in meta.get("dependencies") or []:
        dep_name = str(dep["name"])
        key = str(dep.get("alias") or dep_name)
        repo = str(dep.get("repository") or "")
        dep_id = f"{chart_id or name}/{dep_name}" if not repo or repo.startswith("file://") else dep_name
        conditions = [c.strip() for c in str(dep.get("condition") or "").split(",") if c.strip()]
        keys |= {tuple(c.split(".")) for c in conditions}
        keys |= {("tags", str(t)) for t in dep.get("tags") or []}
        entry = {"key": key, "chart": dep_id, "version": str(dep.get("version", ""))}
        if conditions:
            entry["condition"] = ",".join(conditions)
        subcharts.append(entry)
        sub_dir = _vendored(chart_dir, dep_name, scratch)
        if sub_dir is not None:
            vendored.append((dep_id, sub_dir))
    return ChartFacts(
        chart=chart_id or name,
        version=version,
        app_version=str(meta["appVersion"]) if meta.get("appVersion") is not None else None,
        keys=_with_prefixes(keys),
        open=open_,
        subcharts=sorted(subcharts, key=lambda s: s["key"]),
        templates=len(templates),
        vendored=vendored,
    )


def fact_document(facts: ChartFacts, source: Mapping[str, str]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "chart": facts.chart,
        "version": facts.version,
        "appVersion": facts.app_version,
        "source": dict(source),
        "generatedBy": GENERATED_BY,
        "templatesScanned": facts.templates,
        "subcharts": facts.subcharts,
        "keys": sorted(list(p) for p in facts.keys),
        "open": sorted(list(p) for p in facts.open),
    }


def render(doc: Mapping[str, Any]) -> str:
    """JSON with one key path per line, so a regenerated file diffs line by line."""
    lines = ["{"]
    items = list(doc.items())
    for n, (k, v) in enumerate(items):
        comma = "," if n < len(items) - 1 else ""
        if k in ("keys", "open", "subcharts") and v:
            inner = ",\n".join(f"    {json.dumps(x, ensure_ascii=False)}" for x in v)
            lines.append(f"  {json.dumps(k)}: [\n{inner}\n  ]{comma}")
        else:
            lines.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def file_name(chart: str, version: str) -> str:
    return f"{chart.replace('/', '.')}-{version}.json"


def write_facts(chart_dir: Path, source: Mapping[str, str], out: Path) -> list[Path]:
    """Write the chart's fact file and those of its vendored subcharts; returns the files written."""
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        todo: list[tuple[Path, str | None, str]] = [(chart_dir, None, source.get("path", ""))]
        while todo:
            directory, chart_id, rel = todo.pop(0)
            facts = chart_facts(directory, Path(tmp), chart_id)
            doc = fact_document(facts, {**source, "path": rel} if rel else source)
            target = out / file_name(facts.chart, facts.version)
            out.mkdir(parents=True, exist_ok=True)
            target.write_text(render(doc), encoding="utf-8")
            written.append(target)
            for dep_id, sub_dir in facts.vendored:
                sub_rel = f"{rel}/charts/{sub_dir.name}" if rel else f"charts/{sub_dir.name}"
                if sub_dir.parent.parent != directory:  # unpacked from a .tgz
                    sub_rel = (
                        f"{rel}/charts/{sub_dir.parent.name}.tgz"
                        if rel
                        else f"charts/{sub_dir.parent.name}.tgz"
                    )
                todo.append((sub_dir, dep_id if "/" in dep_id else None, sub_rel))
    return written


# ------------------------------------------------------------------------------------------ git


def _git(gitdir: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(gitdir), *args], capture_output=True, check=False)
    except OSError as exc:
        raise ChartError(f"cannot run git: {exc.strerror}") from None
    if done.returncode != 0:
        raise ChartError(f"git {' '.join(args)} in {gitdir}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def checkout(gitdir: Path, ref: str, path: str, into: Path) -> tuple[Path, str]:
    """Unpack `path` of `ref` (no work tree needed); returns (chart directory, commit)."""
    commit = _git(gitdir, "rev-parse", "--verify", f"{ref}^{{commit}}").decode().strip()
    data = _git(gitdir, "archive", "--format=tar", commit, path)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(into, filter="data")
    return into / path, commit


# ------------------------------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chart_dir", nargs="?", type=Path, help="an unpacked chart (omit with --git)")
    parser.add_argument("--git", type=Path, help="a git checkout or bare repository holding the chart")
    parser.add_argument("--ref", help="tag (or commit) of the pinned chart version")
    parser.add_argument("--path", help="the chart's directory inside the repository, e.g. charts/grafana")
    parser.add_argument("--source", required=True, help="where the chart comes from (repository URL)")
    parser.add_argument("--commit", help="commit of an unpacked chart, when known")
    parser.add_argument("--note", help="a caveat to record with the source (e.g. what was not available)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if args.git:
                if not args.ref or not args.path or args.chart_dir:
                    parser.error("--git needs --ref and --path, and no chart directory")
                chart_dir, commit = checkout(args.git, args.ref, args.path.strip("/"), Path(tmp))
                source = {
                    "repo": args.source,
                    "ref": args.ref,
                    "commit": commit,
                    "path": args.path.strip("/"),
                }
            else:
                if args.chart_dir is None:
                    parser.error("give a chart directory or --git/--ref/--path")
                chart_dir = args.chart_dir
                source = {"repo": args.source}
                for key in ("ref", "commit", "path"):
                    if getattr(args, key):
                        source[key] = getattr(args, key)
            if args.note:
                source["note"] = args.note
            for written in write_facts(chart_dir, source, args.out):
                print(written)
    except ChartError as exc:
        print(f"chart_keys: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
