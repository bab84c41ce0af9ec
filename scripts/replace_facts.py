#!/usr/bin/env python3
"""Regenerate infra/mlops_infra/tooling/replace_facts.json: for each resource type the reference stacks declare,
the input paths whose change makes the provider replace the resource instead of updating it.

The facts come from the providers' own sources, read where they are decided:
- Kubernetes: pulumi-kubernetes `provider/pkg/provider/diff.go` (the `forceNew` table: per group, version and
  kind; metadata name/namespace for every kind; Secret and ConfigMap data while the provider keeps them
  immutable, its default) and `helm_release.go` (a Release's name and namespace).
- GCP and AWS are bridged Terraform providers: a property replaces when its Terraform schema says
  `ForceNew: true` (SDKv2) or carries a `RequiresReplace()` plan modifier (plugin framework).
  `customdiff.ForceNewIf*` rules replace only under a condition: they are kept apart as `conditional`.
  The Pulumi token maps to the Terraform resource by the bridge's naming (snake_case, e.g.
  `gcp:container/nodePool:NodePool` is `google_container_node_pool`; AWS exceptions listed below) and
  Terraform field names to Pulumi's camelCase.

Each source is a git directory with a ref (`DIR@REF`) or a plain directory (a checkout, possibly partial).
Types whose source file is not found are listed under `uncovered`, never guessed. Run with the project's
virtualenv (it evaluates the reference stacks to know which types they use):

    .venv/bin/python scripts/replace_facts.py \
        --kubernetes ~/src/pulumi-kubernetes@v4.32.0 \
        --gcp ~/src/terraform-provider-google-beta@v7.45.0 \
        --aws ~/src/terraform-provider-aws@v6.x.y
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "infra/mlops_infra/tooling/replace_facts.json"

# Pulumi AWS tokens whose Terraform name is not `aws_<module>_<snake kind>` (pulumi-aws resources.go).
AWS_NAMES = {
    "aws:autoscaling/tag:Tag": "aws_autoscaling_group_tag",
    "aws:rds/instance:Instance": "aws_db_instance",
    "aws:rds/parameterGroup:ParameterGroup": "aws_db_parameter_group",
    "aws:rds/subnetGroup:SubnetGroup": "aws_db_subnet_group",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": "aws_iam_openid_connect_provider",
    "aws:s3/bucket:Bucket": "aws_s3_bucket",
}
AWS_MODULES_WITHOUT_PREFIX = {"ec2"}  # aws:ec2/vpc:Vpc is aws_vpc


# ------------------------------------------------------------------------------------------------ sources


@dataclass
class Source:
    """A provider's source tree: a git directory at a ref, or a directory on disk."""

    spec: str
    git_dir: Path | None = None
    ref: str = ""
    directory: Path | None = None
    commit: str = ""
    _cache: dict[str, str | None] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, spec: str) -> Source:
        path, _, ref = spec.partition("@")
        if ref:
            commit = _git(Path(path), "rev-parse", f"{ref}^{{commit}}").strip()
            return cls(spec, git_dir=Path(path), ref=ref, commit=commit)
        return cls(spec, directory=Path(path))

    def read(self, path: str) -> str | None:
        if path not in self._cache:
            self._cache[path] = self._read(path)
        return self._cache[path]

    def _read(self, path: str) -> str | None:
        if self.git_dir is not None:
            try:
                return _git(self.git_dir, "show", f"{self.commit}:{path}")
            except subprocess.CalledProcessError:
                return None
        assert self.directory is not None
        file = self.directory / path
        return file.read_text() if file.is_file() else None

    def files(self, directory: str) -> list[str]:
        if self.git_dir is not None:
            out = _git(self.git_dir, "ls-tree", "--name-only", f"{self.commit}:{directory}")
            return [f"{directory}/{name}" for name in out.split()]
        assert self.directory is not None
        base = self.directory / directory
        return sorted(f"{directory}/{p.name}" for p in base.glob("*")) if base.is_dir() else []

    def all_files(self, under: str) -> list[str]:
        if self.git_dir is not None:
            return _git(self.git_dir, "ls-tree", "-r", "--name-only", self.commit, under).split()
        assert self.directory is not None
        return sorted(str(p.relative_to(self.directory)) for p in (self.directory / under).rglob("*.go"))

    def grep(self, pattern: str, under: str) -> list[str]:
        """Go files under `under` whose text matches `pattern` (extended regex)."""
        if self.git_dir is not None:
            proc = subprocess.run(
                [
                    "git",
                    "--git-dir",
                    str(self.git_dir),
                    "grep",
                    "-l",
                    "-E",
                    pattern,
                    self.commit,
                    "--",
                    under,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            return sorted(line.split(":", 1)[1] for line in proc.stdout.split())
        regex = re.compile(pattern)
        return [
            p
            for p in self.all_files(under)
            if not p.endswith("_test.go") and regex.search(self.read(p) or "")
        ]

    def describe(self, repo: str) -> dict[str, str]:
        return {"repository": repo, "ref": self.ref or "(a local checkout)", "commit": self.commit}


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), *args], capture_output=True, text=True, check=True
    ).stdout


# ------------------------------------------------------------------------------------------- Go tokens

TOKEN = re.compile(
    r"""(?P<comment>//[^\n]*|/\*.*?\*/)
      |(?P<string>"(?:\\.|[^"\\\n])*"|`[^`]*`)
      |(?P<ident>[A-Za-z_][\w.]*)
      |(?P<number>\d[\w.]*)
      |(?P<punct>\.\.\.|:=|&&|\|\||==|!=|[{}()\[\],:;=+&*!<>|.-])
      |(?P<space>\s+)""",
    re.VERBOSE | re.DOTALL,
)


def tokens(text: str) -> list[str]:
    """Go source as tokens, comments and whitespace dropped (enough for composite literals)."""
    found = []
    for m in TOKEN.finditer(text):
        if m.lastgroup not in ("comment", "space"):
            found.append(m.group())
    return found


def _unquote(token: str) -> str:
    return token[1:-1]


def _is_string(token: str) -> bool:
    return token[:1] in ('"', "`")


def _close(toks: list[str], i: int) -> int:
    """Index of the bracket closing the one at `i`."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    opener, closer, depth = toks[i], pairs[toks[i]], 0
    for j in range(i, len(toks)):
        if toks[j] == opener:
            depth += 1
        elif toks[j] == closer:
            depth -= 1
            if depth == 0:
                return j
    raise ValueError("unbalanced brackets")


def entries(toks: list[str], start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """Top-level `key: value` entries of the literal body toks[start:end] (keys as written)."""
    i = start
    while i < end:
        j, depth = i, 0
        while j < end and not (depth == 0 and toks[j] == ","):
            depth += _depth(toks[j])
            j += 1
        if j > i + 2 and toks[i + 1] == ":":
            yield toks[i], i + 2, j
        i = j + 1


# --------------------------------------------------------------------------------- Kubernetes (diff.go)


class GoTable:
    """Evaluates the composite literals of pulumi-kubernetes' diff.go: the `forceNew` table and the
    property lists and helper functions it is built from."""

    def __init__(self, text: str):
        self.toks = tokens(text)
        self.vars: dict[str, tuple[int, int]] = {}
        self.funcs: dict[str, tuple[list[str], int, int]] = {}
        t = self.toks
        for i, tok in enumerate(t):
            if tok == "var" and t[i + 2] == "=":
                self.vars[t[i + 1]] = (i + 3, self._expr_end(i + 3))
            if tok == "func" and t[i + 1] != "(" and t[i + 2] == "(":
                close = _close(t, i + 2)
                params = [t[k] for k in range(i + 3, close) if t[k + 1] in ("string", "...")]
                body = t.index("{", close)
                self.funcs[t[i + 1]] = (params, body + 1, _close(t, body))

    def _expr_end(self, i: int) -> int:
        """Where the expression starting at `i` ends: the next top-level declaration."""
        depth = 0
        for j in range(i, len(self.toks)):
            tok = self.toks[j]
            depth += _depth(tok)
            if depth == 0 and j > i and tok in ("var", "func", "type", "const"):
                return j
        return len(self.toks)

    def value(self, start: int, end: int, env: dict[str, str]) -> object:
        t = self.toks
        if t[start] in env or _is_string(t[start]):  # "literal" or prefix + ".field"
            return "".join(env[x] if x in env else _unquote(x) for x in t[start:end] if x != "+")
        name = t[start]
        if t[start + 1] == "{":  # a composite literal: a map when it has keys, else a list
            close = _close(t, start + 1)
            items = list(entries(t, start + 2, close))
            if items:
                return {_unquote(k): self.value(a, b, env) for k, a, b in items}
            return self._list(start + 2, close, env)
        if name == "append" and t[start + 1] == "(":
            return self._list(start + 2, _close(t, start + 1), env)
        if t[start + 1] == "(":
            return self.helper(name, [str(a) for a in self._list(start + 2, _close(t, start + 1), env)])
        if name in self.vars:
            return self.value(*self.vars[name], env)
        raise ValueError(f"diff.go: cannot evaluate {' '.join(t[start:end][:8])}")

    def helper(self, name: str, args: list[str]) -> list[object]:
        """A helper such as labelSelectorForceNewProperties(prefix): its `properties{...}` once per argument."""
        params, body_start, body_end = self.funcs[name]
        body = self.toks[body_start:body_end]
        # A variadic helper loops `for _, prefix := range prefixes`: the loop variable is the prefix.
        bound = body[body.index("range") - 2] if "range" in body else params[0]
        literal = next(
            k for k in range(body_start, len(self.toks)) if self.toks[k : k + 2] == ["properties", "{"]
        )
        close = _close(self.toks, literal + 1)
        found: list[object] = []
        for arg in args:
            found += self._list(literal + 2, close, {bound: arg})
        return found

    def _list(self, start: int, end: int, env: dict[str, str]) -> list[object]:
        out: list[object] = []
        i = start
        while i < end:
            j, depth = i, 0
            while j < end and not (depth == 0 and self.toks[j] == ","):
                depth += _depth(self.toks[j])
                j += 1
            if j > i:
                spread = self.toks[j - 1] == "..."
                item = self.value(i, j - 1 if spread else j, env)
                out += item if isinstance(item, list) else [item]
            i = j + 1
        return out


def _depth(token: str) -> int:
    return 1 if token in ("{", "(", "[") else -1 if token in ("}", ")", "]") else 0


def kubernetes_facts(src: Source, types: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    text = src.read("provider/pkg/provider/diff.go")
    helm = src.read("provider/pkg/provider/helm_release.go") or ""
    if text is None:
        raise SystemExit(f"{src.spec}: no provider/pkg/provider/diff.go")
    table = GoTable(text)
    force_new = table.value(*table.vars["forceNew"], {})
    assert isinstance(force_new, dict)
    metadata = [str(p).lstrip(".") for p in table.helper("metadataForceNewProperties", [".metadata"])]
    m = re.search(r"forceNewFields := \[\]string\{([^}]*)\}", helm)
    release = [_unquote(x.strip()).lstrip(".") for x in m.group(1).split(",")] if m else []
    facts: dict[str, list[str]] = {}
    for token in types:
        if token == "kubernetes:helm.sh/v3:Release" and release:
            facts[token] = release
            continue
        group_version, kind = token.removeprefix("kubernetes:").split(":")
        group, version = group_version.split("/") if "/" in group_version else ("core", group_version)
        props = list(metadata)
        kinds = force_new.get(group, {}).get(version, {}) if isinstance(force_new.get(group), dict) else {}
        if kind == "Secret":  # immutable unless the provider sets enableSecretMutable
            props += ["type", "stringData", "data"]
        elif kind in kinds:
            props += [p.lstrip(".") for p in kinds[kind]]
        elif kind == "ConfigMap":  # immutable unless the provider sets enableConfigMapMutable
            props += ["binaryData", "data"]
        facts[token] = _minimal(props)
    return facts, []


def _minimal(paths: list[str]) -> list[str]:
    """Sorted, without a path whose ancestor is listed (a change under the ancestor replaces anyway)."""
    unique = sorted(set(paths))
    return [p for p in unique if not any(p.startswith(q + ".") for q in unique)]


# ------------------------------------------------------------------------------------- Terraform schemas

REQUIRES_REPLACE = (".RequiresReplace", ".RequiresReplaceIfConfigured")  # not RequiresReplaceIf: conditional


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def items(toks: list[str], start: int, end: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each comma-separated item of toks[start:end] at bracket depth 0."""
    i = start
    while i < end:
        j, depth = i, 0
        while j < end and not (depth == 0 and toks[j] == ","):
            depth += _depth(toks[j])
            j += 1
        if j > i:
            yield i, j
        i = j + 1


class Package:
    """The tokens of some Go files and their top-level `var X = ...` and `func X(...) {...}` declarations,
    enough to follow a Terraform schema through the helpers and shared maps it is assembled from."""

    def __init__(self, consts: dict[str, str]):
        self.toks: list[str] = []
        self.vars: dict[str, int] = {}
        self.funcs: dict[str, int] = {}
        self.consts = consts

    def add(self, text: str) -> tuple[int, int]:
        base = len(self.toks)
        t = tokens(text)
        self.toks += t
        depth = 0
        in_group = False  # inside `var ( a = ...; b = ... )`
        for i, tok in enumerate(t):
            if depth == 0 and tok == "var" and i + 2 < len(t) and t[i + 2] == "=":
                self.vars.setdefault(t[i + 1], base + i + 3)
            elif depth == 0 and tok == "var" and i + 1 < len(t) and t[i + 1] == "(":
                in_group = True
            elif in_group and depth == 1 and i + 2 < len(t) and t[i + 1] == "=":
                self.vars.setdefault(tok, base + i + 2)
            elif depth == 0 and tok == "func" and t[i + 1] != "(" and t[i + 2] == "(":
                self.funcs.setdefault(t[i + 1], base + i + 2)
            depth += _depth(tok)
            in_group = in_group and (depth > 0 or tok == "var")
        return base, len(self.toks)

    def literal(self, i: int, seen: frozenset[str] = frozenset()) -> int | None:
        """The `{` of the composite literal the expression at `i` denotes, following vars and funcs."""
        t = self.toks
        j = i + (t[i] == "&")
        k = j
        while k < len(t) and t[k] not in ("{", "(", ",", ")", "}", ";"):
            k += 1
        if k < len(t) and t[k] == "{":
            return k
        name = t[j]
        if name in seen:
            return None
        if name in self.vars:
            return self.literal(self.vars[name], seen | {name})
        if name in self.funcs:
            body = t.index("{", _close(t, self.funcs[name]))
            return self.literal(t.index("return", body) + 1, seen | {name})
        return None

    def props(self, brace: int) -> dict[str, tuple[int, int]]:
        return {k: (a, b) for k, a, b in entries(self.toks, brace + 1, _close(self.toks, brace))}

    def key(self, token: str) -> str | None:
        if _is_string(token):
            return _unquote(token)
        if token.startswith("names.") and token.removeprefix("names.") in self.consts:
            return self.consts[token.removeprefix("names.")]
        return None

    def schema_map(self, i: int, prefix: str, seen: frozenset[str]) -> list[str]:
        """Replace-on-change paths of a map of field schemas (a literal, a reference, or MergeSchemas(...))."""
        t = self.toks
        if t[i].endswith("MergeSchemas") and t[i + 1] == "(":
            close = _close(t, i + 1)
            return [p for a, _ in items(t, i + 2, close) for p in self.schema_map(a, prefix, seen)]
        brace = self.literal(i, seen)
        if brace is None:
            return []
        found: list[str] = []
        for k, a, _ in entries(t, brace + 1, _close(t, brace)):
            name = self.key(k)
            if name is not None:
                found += self.field(a, f"{prefix}.{camel(name)}" if prefix else camel(name), seen)
        return found

    def field(self, i: int, path: str, seen: frozenset[str]) -> list[str]:
        """One field. SDKv2: `ForceNew` on a primitive (or a list/set/map of them: elements inherit it)
        replaces; on a nested block only adding or removing the block does, so its own fields decide.
        Plugin framework: a `RequiresReplace()` plan modifier replaces on any change of the value."""
        brace = self.literal(i, seen)
        if brace is None:
            return []
        t, props = self.toks, self.props(brace)
        if "PlanModifiers" in props and any(
            x.endswith(REQUIRES_REPLACE) for x in t[slice(*props["PlanModifiers"])]
        ):
            return [path]
        found: list[str] = []
        block = False
        for holder in ("Elem", "NestedObject"):
            inner = self.literal(props[holder][0], seen) if holder in props else None
            if inner is not None:
                for key, (a, _) in self.props(inner).items():
                    if key in ("Schema", "Attributes", "Blocks"):
                        block = True
                        found += self.schema_map(a, path, seen)
        for key in ("Attributes", "Blocks"):
            if key in props:
                block = True
                found += self.schema_map(props[key][0], path, seen)
        if "ForceNew" in props and t[props["ForceNew"][0]] == "true" and not block:
            return [path]
        return found

    def resource(self, text: str, span: tuple[int, int], tf_name: str) -> list[str]:
        """The resource's top-level schema: SDKv2 `&schema.Resource{Schema: ...}` returned by its
        constructor, else a plugin-framework `resp.Schema = schema.Schema{...}` in the file."""
        m = re.search(rf'@(?:SDK|Framework)Resource\("{tf_name}"[^\n]*\n(?://[^\n]*\n)*func (\w+)', text)
        m = m or re.search(r"func (Resource\w+)\(\) \*schema\.Resource\b", text)
        if m and m.group(1) in self.funcs:
            brace = self.literal(self.funcs[m.group(1)] - 1)
            if brace is not None and "Schema" in (props := self.props(brace)):
                return self.schema_map(props["Schema"][0], "", frozenset())
        t = self.toks
        for j in range(*span):
            if t[j].endswith(".Schema") and t[j + 1] == "=":
                brace = self.literal(j + 2)
                if brace is not None:
                    props = self.props(brace)
                    return [
                        p
                        for key in ("Attributes", "Blocks")
                        if key in props
                        for p in self.schema_map(props[key][0], "", frozenset())
                    ]
        return []


def conditional(text: str) -> list[str]:
    """`customdiff.ForceNewIf("a.0.b", ...)` / `ForceNewIfChange`: replaced only when a condition holds."""
    paths = re.findall(r'ForceNewIf(?:Change)?\(\s*"([^"]+)"', text)
    return sorted({".".join(camel(p) for p in path.split(".") if not p.isdigit()) for path in paths})


def terraform_facts(
    src: Source, types: dict[str, str], locate: dict[str, list[str]], consts: dict[str, str]
) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    """Facts per Pulumi token from its Terraform resource files `locate[token]` (the first defines the
    resource; the rest of its Go package is loaded to resolve shared schemas)."""
    facts: dict[str, list[str]] = {}
    cond: dict[str, list[str]] = {}
    missing: list[str] = []
    for token, tf in sorted(types.items()):
        paths = locate.get(token) or []
        texts = [src.read(p) for p in paths]
        if not paths or texts[0] is None:
            missing.append(f"{token} ({tf})")
            continue
        pkg = Package(consts)
        spans = [pkg.add(text or "") for text in texts]
        for other in src.files(paths[0].rsplit("/", 1)[0]):
            if other not in paths and other.endswith(".go") and not other.endswith("_test.go"):
                pkg.add(src.read(other) or "")
        if tf.endswith("_iam_member"):  # generated: the parent's IAM schema plus the member base schema
            parent = [n for n, i in pkg.vars.items() if spans[0][0] <= i < spans[0][1] and "Iam" in n]
            names = [n for n in parent if n.endswith("Schema")] + ["IamMemberBaseSchema"]
            found = [p for n in names if n in pkg.vars for p in pkg.schema_map(pkg.vars[n], "", frozenset())]
        else:
            found = pkg.resource(texts[0] or "", spans[0], tf)
        facts[token] = _minimal(found)
        if found_cond := conditional(texts[0] or ""):
            cond[token] = found_cond
    return facts, cond, missing


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def tf_name(token: str) -> str:
    package, module, kind = token.split(":")
    module = module.split("/", 1)[0]
    if token in AWS_NAMES:
        return AWS_NAMES[token]
    prefix = {"gcp": "google", "aws": "aws"}[package]
    if package == "aws" and module in AWS_MODULES_WITHOUT_PREFIX:
        return f"aws_{_snake(kind)}"
    return f"{prefix}_{module.lower()}_{_snake(kind)}"


def locate_gcp(src: Source, tokens_: list[str], aliases: dict[str, str]) -> dict[str, list[str]]:
    """Token -> its google-beta files: `services/*/resource_[google_]<name>.go`; an IAM member is generated
    from its parent's `iam_<parent>.go` and the shared member schema."""
    files = src.all_files("google-beta")
    by_name: dict[str, list[str]] = {}
    for path in files:
        by_name.setdefault(path.rsplit("/", 1)[-1], []).append(path)
    found: dict[str, list[str]] = {}
    for token in tokens_:
        name = aliases.get(token, tf_name(token)).removeprefix("google_")
        if name.endswith("_iam_member"):
            parent = by_name.get(f"iam_{name.removesuffix('_iam_member')}.go")
            if parent:
                found[token] = [parent[0], "google-beta/tpgiamresource/resource_iam_member.go"]
            continue
        for candidate in (f"resource_{name}.go", f"resource_google_{name}.go"):
            if candidate in by_name:
                found[token] = by_name[candidate][:1]
                break
    return found


def locate_aws(src: Source, tokens_: list[str]) -> dict[str, list[str]]:
    """Token -> the file annotated `@SDKResource("aws_x")` or `@FrameworkResource("aws_x")`."""
    found: dict[str, list[str]] = {}
    for token in tokens_:
        hits = src.grep(rf'@(SDK|Framework)Resource\("{tf_name(token)}"', "internal/service")
        if hits:
            found[token] = hits[:1]
    return found


def aws_constants(src: Source) -> dict[str, str]:
    text = src.read("internal/names/attr_consts_gen.go") or ""
    return dict(re.findall(r"\b(Attr\w+)\s*=\s*\"([^\"]+)\"", text))


def gcp_aliases(bridge: Source | None) -> dict[str, str]:
    """Pulumi token -> Terraform name from pulumi-gcp's bridge-metadata.json, when given."""
    if bridge is None:
        return {}
    text = bridge.read("provider/cmd/pulumi-resource-gcp/bridge-metadata.json") or "{}"
    resources = json.loads(text).get("auto-aliasing", {}).get("resources", {})
    return {entry["current"]: name for name, entry in resources.items() if "current" in entry}


# ------------------------------------------------------------------------------------ Pulumi's names


def _plural(name: str) -> str:
    if name.endswith("s"):
        return name
    if name.endswith("y") and name[-2:-1] not in "aeiou":
        return name[:-1] + "ies"
    return name + ("es" if name.endswith(("x", "z", "ch", "sh")) else "s")


def _fields(cls: type) -> dict[str, str]:
    """snake_case input name -> the annotation text, from a resource's `_internal_init` or an input type."""
    import inspect

    target = getattr(cls, "_internal_init", None) or cls.__init__  # type: ignore[misc]
    return {k: repr(v.annotation) for k, v in inspect.signature(target).parameters.items()}


def pulumi_path(token: str, tf_path: str) -> str | None:
    """A Terraform field path in Pulumi's names, checked against the pinned Python SDK: the bridge
    pluralises list fields (`node_pool` is `nodePools`); a field the SDK does not have is dropped (None)."""
    import importlib

    package, module, kind = token.split(":")
    mod = importlib.import_module(f"pulumi_{package}.{module.split('/')[0]}")
    cls: type | None = getattr(mod, kind, None)
    found: list[str] = []
    for segment in tf_path.split("."):
        if cls is None:
            return None
        fields = _fields(cls)
        snake = _snake(segment)
        name = next((n for n in (snake, _snake(_plural(segment))) if n in fields), None)
        if name is None:
            return None
        found.append(camel(name))
        nested = re.search(r"ForwardRef\('(\w+Args)'\)", fields[name])
        cls = getattr(mod, nested.group(1), None) if nested else None
    return ".".join(found)


def in_pulumi_names(facts: dict[str, list[str]], dropped: list[str]) -> dict[str, list[str]]:
    renamed: dict[str, list[str]] = {}
    for token, paths in facts.items():
        mapped = []
        for path in paths:
            name = pulumi_path(token, path)
            if name is None:
                dropped.append(f"{token}: {path}")
            else:
                mapped.append(name)
        renamed[token] = _minimal(mapped)
    return renamed


# ------------------------------------------------------------------------------------------------ main


def plan_types() -> list[str]:
    sys.path[:0] = [str(ROOT / "infra"), str(ROOT / "tests")]
    from plan_support import REFERENCE_STACKS, reference_plan

    return sorted({r.type for s in REFERENCE_STACKS for r in reference_plan(s).resources if r.custom})


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubernetes", required=True, metavar="SRC", help="pulumi-kubernetes sources")
    parser.add_argument("--gcp", metavar="SRC", help="terraform-provider-google-beta sources")
    parser.add_argument("--gcp-bridge", metavar="SRC", help="pulumi-gcp sources (token -> Terraform names)")
    parser.add_argument("--aws", metavar="SRC", help="terraform-provider-aws sources (may be partial)")
    parser.add_argument(
        "--aws-repository",
        default="hashicorp/terraform-provider-aws",
        help="where --aws comes from (a fork?)",
    )
    parser.add_argument("--note", action="append", default=[], help="a line for the table's notes")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    types = plan_types()
    k8s = Source.parse(args.kubernetes)
    facts, _ = kubernetes_facts(k8s, [t for t in types if t.startswith("kubernetes:")])
    sources = {"kubernetes": k8s.describe("pulumi/pulumi-kubernetes")}
    conditional_facts: dict[str, list[str]] = {}
    dropped: list[str] = []
    uncovered: list[str] = [t for t in types if t.startswith(("pulumi:", "random:", "docker:"))]
    if args.gcp:
        gcp = Source.parse(args.gcp)
        bridge = Source.parse(args.gcp_bridge) if args.gcp_bridge else None
        aliases = gcp_aliases(bridge)
        gcp_types = {t: aliases.get(t, tf_name(t)) for t in types if t.startswith("gcp:")}
        found, cond, missing = terraform_facts(gcp, gcp_types, locate_gcp(gcp, list(gcp_types), aliases), {})
        facts |= in_pulumi_names(found, dropped)
        conditional_facts |= in_pulumi_names(cond, dropped)
        uncovered += missing
        sources["gcp"] = gcp.describe("hashicorp/terraform-provider-google-beta")
        if bridge:
            sources["gcp-bridge"] = bridge.describe("pulumi/pulumi-gcp")
    if args.aws:
        aws = Source.parse(args.aws)
        aws_types = {t: tf_name(t) for t in types if t.startswith("aws:")}
        found, cond, missing = terraform_facts(
            aws, aws_types, locate_aws(aws, list(aws_types)), aws_constants(aws)
        )
        facts |= in_pulumi_names(found, dropped)
        conditional_facts |= in_pulumi_names(cond, dropped)
        uncovered += missing
        sources["aws"] = aws.describe(args.aws_repository)
    document = {
        "generatedBy": "scripts/replace_facts.py",
        "sources": sources,
        "notes": args.note,
        "types": dict(sorted(facts.items())),
        "conditional": dict(sorted(conditional_facts.items())),
        "uncovered": sorted(uncovered),
        "notInPinnedSdk": sorted(dropped),
    }
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(
        f"{args.out}: {len(facts)} types ({sum(map(len, facts.values()))} paths), {len(uncovered)} uncovered"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
