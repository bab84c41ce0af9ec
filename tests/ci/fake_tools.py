"""Stand-ins for the tools a workflow step reaches the network, a cloud or a long computation with, used by
test_workflow_order.py. Each appends its argv to a log and behaves like the real tool where a *later* step
depends on it: installers create the files the real install would (a venv's `bin/`, `uv`, the Pulumi CLI from
a tarball whose checksum verifies), and each tool fails the way the real one does when a prerequisite an
earlier step should have created is missing (no credentials, no kubeconfig, no `uv` on PATH, no virtualenv,
an unknown module, a missing file, a git ref the checkout did not fetch).

Run as `python fake_tools.py KIND INVOKED-PATH ARGS...` from small wrapper scripts (see `write_wrapper`).
Offline `mlops-infra` subcommands that take about a second (`validate`, `policy-config`, and `pr-comment`, which
reaches GitHub only through the fake `gh`) run the real CLI from the clone; the slow ones (`check`, `plan`, `cost`, `render`, ...) are recorded, and the test
checks their argv against the real parser afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
REAL_PYTHON = sys.executable  # the test run's interpreter: a venv synced from the same uv.lock
PULUMI_TARBALL = re.compile(
    r"^https://get\.pulumi\.com/releases/sdk/pulumi-v(?P<v>[\d.]+)-linux-x64\.tar\.gz$"
)
PULUMI_SUMS = re.compile(
    r"^https://github\.com/pulumi/pulumi/releases/download/v(?P<v>[\d.]+)/pulumi-(?P=v)-checksums\.txt$"
)
PIP_SCRIPTS = {"uv": ["uv"], "checkov": ["checkov"]}  # console scripts of the packages the repo pip-installs


class Fail(Exception):
    """The real tool's failure: message on stderr, its exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------------------------------------ plumbing


def write_wrapper(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nexec "{REAL_PYTHON}" -I -S "{SCRIPT}" {kind} "$0" "$@"\n')
    path.chmod(0o755)


def record(kind: str, invoked: Path, args: list[str]) -> None:
    workspace = Path(os.environ["FAKE_WORKSPACE"])
    shown = str(invoked.relative_to(workspace)) if invoked.is_relative_to(workspace) else invoked.name
    entry = {
        "tool": shown,
        "kind": kind,
        "argv": args,
        "cwd": os.getcwd(),
        "step": os.environ.get("FAKE_STEP"),
    }
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps(entry) + "\n")


def option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def options(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == name]


def on_path(name: str) -> bool:
    return shutil.which(name, path=os.environ.get("PATH", "")) is not None


# ------------------------------------------------------------------------------------------ python, pip, uv


def make_venv(root: Path, project: bool) -> None:
    """A virtualenv as `python -m venv` (bare) or `uv sync` (`project`: every console script of the lock)."""
    bin_dir = root / "bin"
    version = os.environ.get("FAKE_PYTHON_VERSION", "3.12")
    (root / "pyvenv.cfg").parent.mkdir(parents=True, exist_ok=True)
    (root / "pyvenv.cfg").write_text(f"version_info = {version}\n")
    python = "python-project" if project else "python"
    for name in ("python", "python3", f"python{version}"):
        write_wrapper(bin_dir / name, python)
    if not project:
        for name in ("pip", "pip3"):
            write_wrapper(bin_dir / name, "pip")
        return
    real_bin = Path(REAL_PYTHON).parent
    for entry in sorted(real_bin.iterdir()):
        if entry.name.startswith("python") or not os.access(entry, os.X_OK) or entry.suffix:
            continue
        kind = {"mlops-infra": "mlops-infra", "pip": "pip", "pip3": "pip"}.get(entry.name, "recorder")
        write_wrapper(bin_dir / entry.name, kind)


def pip(venv: Path, args: list[str]) -> int:
    state = venv / "fake-installed.json"
    installed: dict[str, str] = json.loads(state.read_text()) if state.exists() else {}
    if args[:1] == ["install"]:
        for req in options(args, "-r"):
            if not Path(req).is_file():
                raise Fail(
                    f"ERROR: Could not open requirements file: [Errno 2] No such file or directory: '{req}'"
                )
        specs = [a for i, a in enumerate(args[1:], 1) if not a.startswith("-") and args[i - 1] != "-r"]
        for spec in specs:
            name = re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower()
            installed[name] = spec.split("==", 1)[1] if "==" in spec else "0"
            for script in PIP_SCRIPTS.get(name, []):
                write_wrapper(venv / "bin" / script, "uv" if script == "uv" else "recorder")
        state.write_text(json.dumps(installed))
        return 0
    if args[:1] == ["show"]:
        name = args[1].lower()
        if name not in installed:
            raise Fail(f"WARNING: Package(s) not found: {args[1]}")
        print(f"Name: {args[1]}\nVersion: {installed[name]}")
    return 0


def with_site_packages() -> None:
    """The fakes start without site-packages (`-S`, fast); a synced project venv has them."""
    import site

    site.main()


def module_found(module: str, project: bool) -> bool:
    """`python -m MODULE` finds it in the cwd, PYTHONPATH, the standard library and (in a synced project venv)
    the locked packages plus the project's own, installed editable from infra/ and policies/."""
    import importlib.machinery

    if project:
        with_site_packages()
    roots = [os.getcwd()]
    roots += [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    roots += sys.path[1:]
    return importlib.machinery.PathFinder.find_spec(module.split(".")[0], roots) is not None


# Standard-library-only scripts the workflows run: executed for real, so their output files exist.
STDLIB_SCRIPTS = {"policy_pack_bundle.py"}


def python(invoked: Path, args: list[str], project: bool) -> int:
    venv = invoked.parent.parent
    rest = list(args)
    while rest and rest[0].startswith("-") and rest[0] not in ("-m", "-c"):
        rest.pop(0)
    if rest[:1] == ["-m"] and len(rest) > 1:
        module, tail = rest[1], rest[2:]
        if module == "venv":
            make_venv(Path(tail[-1]).resolve(), project=False)
            return 0
        if module == "pip":
            return pip(venv, tail)
        if not module_found(module, project):
            raise Fail(f"{invoked}: No module named {module}")
        return 0
    if rest and rest[0] != "-c":
        script = Path(rest[0])
        if not script.is_file():
            raise Fail(f"{invoked}: can't open file '{rest[0]}': [Errno 2] No such file or directory", 2)
        if script.name in STDLIB_SCRIPTS:
            return subprocess.call([sys.executable, str(script), *rest[1:]])
        if script.name == "__main__.py" and (script.parent / "PulumiPolicy.yaml").is_file():
            print(45678, flush=True)  # a policy analyzer's first stdout line: the port it serves on
    return 0


def uv(args: list[str]) -> int:
    if args[:1] == ["--version"]:
        print("uv 0.13.9")
        return 0
    if args[:1] == ["sync"]:
        interpreter = option(args, "--python")
        if interpreter and not (Path(interpreter).is_file() or on_path(interpreter)):
            raise Fail(f"error: No interpreter found for executable name `{interpreter}` in search path", 2)
        if not Path("pyproject.toml").is_file():
            raise Fail("error: No `pyproject.toml` found in current directory or any parent directory", 2)
        if "--frozen" in args and not Path("uv.lock").is_file():
            raise Fail("error: Unable to find lockfile at `uv.lock`", 2)
        make_venv(Path(os.environ.get("UV_PROJECT_ENVIRONMENT", ".venv")).resolve(), project=True)
    elif args[:1] == ["build"]:
        # `uv build [--wheel] --out-dir DIR [PROJECT]`: the wheel (and sdist) a real build writes.
        project = Path(
            next((a for a in args[1:] if not a.startswith("-") and a != option(args, "--out-dir")), ".")
        )
        if not (project / "pyproject.toml").is_file():
            raise Fail(f"error: {project} does not appear to be a Python project (no pyproject.toml)", 2)
        out = Path(option(args, "--out-dir") or project / "dist")
        out.mkdir(parents=True, exist_ok=True)
        (out / "mlops_infra-0.2.0-py3-none-any.whl").write_text("fake wheel")
        if "--wheel" not in args:
            (out / "mlops_infra-0.2.0.tar.gz").write_text("fake sdist")
    elif args[:1] == ["venv"]:
        make_venv(
            Path(next(a for a in args[1:] if not a.startswith("-") and a != option(args, "--python"))),
            project=False,
        )
    elif args[:2] == ["pip", "install"]:
        # `uv pip install --python VENV/bin/python WHEEL`: the wheel's console script in that venv.
        interpreter = Path(option(args, "--python") or "")
        wheels = [a for a in args[2:] if a.endswith(".whl")]
        missing = [w for w in wheels + options(args, "-r") if not Path(w).is_file()]
        if missing:
            raise Fail(f"error: Distribution not found at: {missing[0]}", 2)
        if not interpreter.is_file():
            raise Fail(
                f"error: Failed to inspect Python interpreter from provided path at `{interpreter}`", 2
            )
        if wheels:
            write_wrapper(interpreter.parent / "mlops-infra", "recorder")
    return 0


# -------------------------------------------------------------------------------------------- mlops-infra


def mlops_infra(args: list[str]) -> int:
    if args[:1] in (
        ["validate"],
        ["policy-config"],
        ["pr-comment"],
    ):  # offline (pr-comment: through the fake gh) and about a second: the real CLI, clone's code
        workspace = os.environ["FAKE_WORKSPACE"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([f"{workspace}/infra", f"{workspace}/policies"]))
        return subprocess.run(
            [REAL_PYTHON, "-m", "mlops_infra.tooling.cli", *args], env=env, check=False
        ).returncode
    base = option(args, "--compare")
    if base and not Path(base).is_file():
        rev = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"],
            capture_output=True,
            check=False,
        )
        if rev.returncode != 0:
            raise Fail(f"--compare {base!r}: neither a file nor a commit in this repository", 2)
    out = option(args, "--out")
    if args[:1] == ["render"] and out:
        Path(out).mkdir(parents=True, exist_ok=True)
    if option(args, "--format") == "markdown":
        marker = f"<!-- mlops-infra-{args[0]}:{args[1]} -->"  # the hidden marker the real CLI writes
        print(
            f"{marker}\n### Plan of {args[1]}\n\n| | min | expected | max |\n|---|---:|---:|---:|\n| delta | 0 | 0 | 0 |"
        )
    return 0


# ---------------------------------------------------------------------------------------------- pulumi


def pulumi_tarball(version: str) -> bytes:
    """Same bytes every time, so the checksum file written for it verifies."""
    import gzip
    import io
    import tarfile

    wrapper = f'#!/bin/sh\nexec "{REAL_PYTHON}" -I -S "{SCRIPT}" pulumi "$0" "$@"\n'.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("pulumi/pulumi")
        info.size, info.mode, info.mtime = len(wrapper), 0o755, 0
        tar.addfile(info, io.BytesIO(wrapper))
    return gzip.compress(raw.getvalue(), mtime=0)


def curl(args: list[str]) -> int:
    url = next((a for a in reversed(args) if a.startswith("http")), "")
    out = option(args, "-o")
    if m := PULUMI_TARBALL.match(url):
        body = pulumi_tarball(m["v"])
    elif m := PULUMI_SUMS.match(url):
        import hashlib

        digest = hashlib.sha256(pulumi_tarball(m["v"])).hexdigest()
        body = f"{digest}  pulumi-v{m['v']}-linux-x64.tar.gz\n".encode()
    else:
        raise Fail(f"curl: no model for {url!r} in tests/ci/fake_tools.py", 22)
    if out:
        Path(out).write_bytes(body)
    else:
        sys.stdout.buffer.write(body)
    return 0


def _logged_in() -> None:
    if os.environ.get("PULUMI_BACKEND_URL") or os.environ.get("PULUMI_ACCESS_TOKEN"):
        return
    if (Path.home() / ".pulumi" / "credentials.json").is_file():
        return
    raise Fail("error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions", 255)


def _stack_file(stack: str | None) -> dict[str, Any]:
    with_site_packages()
    import yaml

    if not stack:
        raise Fail("error: --stack is required: no stack is selected in a non-interactive session", 255)
    project = yaml.safe_load(Path("Pulumi.yaml").read_text())
    path = Path(project.get("stackConfigDir", ".")) / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise Fail(f"error: no stack named '{stack}' found (no {path})", 255)
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def _cloud_credentials(config: dict[str, Any]) -> None:
    cloud = config.get("mlops-platform:cloud", "aws")
    env = os.environ
    aws_keys = env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")
    if cloud == "aws" and not (aws_keys or env.get("AWS_PROFILE")):
        raise Fail("error: aws: No valid credential sources found (NoCredentialProviders)", 255)
    if cloud == "gcp" and not (env.get("GOOGLE_APPLICATION_CREDENTIALS") or env.get("GOOGLE_CREDENTIALS")):
        raise Fail("error: gcp: could not find default credentials", 255)
    if cloud == "local" and not _kubeconfig([]):
        raise Fail("error: kubernetes: no kubeconfig for the local stack's provider", 255)


def _policy_packs(args: list[str]) -> None:
    """`pulumi up/preview --policy-pack DIR [--policy-pack-config FILE]`: what the CLI needs before it runs."""
    with_site_packages()
    import yaml

    packs, configs = options(args, "--policy-pack"), options(args, "--policy-pack-config")
    if configs and len(configs) != len(packs):
        raise Fail(
            'error: the number of "--policy-pack-config" flags must match the number of "--policy-pack" flags'
        )
    for pack in packs:
        manifest = Path(pack) / "PulumiPolicy.yaml"
        if not manifest.is_file():
            raise Fail(f"error: {pack}: no PulumiPolicy.yaml", 255)
        venv = yaml.safe_load(manifest.read_text()).get("runtime", {}).get("options", {}).get("virtualenv")
        if venv and not (Path(pack) / venv / "bin" / "python").exists():
            raise Fail(f"error: policy pack {pack}: virtualenv {venv} does not exist; create it first", 255)
    for config in configs:
        try:
            doc = json.loads(Path(config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise Fail(f"error: {config}: {exc}", 255) from None
        if not isinstance(doc, dict):
            raise Fail(f"error: {config}: not a JSON object", 255)


def pulumi(args: list[str]) -> int:
    command = [a for a in args if not a.startswith("-")][:2]
    if command[:1] in (["up"], ["preview"]):
        _logged_in()
        project = Path("Pulumi.yaml")
        if not project.is_file():
            raise Fail("error: no Pulumi.yaml project file found", 255)
        config = _stack_file(option(args, "--stack") or option(args, "-s")).get("config", {})
        import yaml

        runtime = json.dumps(yaml.safe_load(project.read_text()).get("runtime"))
        if '"toolchain": "uv"' in runtime and not on_path("uv"):
            raise Fail("Could not find `uv` executable.\nInstall uv and make sure is is in your PATH.", 255)
        _policy_packs(args)
        _cloud_credentials(config)
        if command[:1] == ["preview"]:
            print(f"Previewing update ({option(args, '--stack') or option(args, '-s')}):")
        return 0
    if command == ["stack", "select"]:
        # The Automation API's selectStack (pulumi/actions): a project here and a backend to look the stack up in.
        _logged_in()
        if not Path("Pulumi.yaml").is_file():
            raise Fail("error: no Pulumi.yaml project file found", 255)
        return 0
    if command == ["stack", "output"]:
        _logged_in()
        stack = option(args, "--stack")
        _stack_file(stack)
        name = [a for a in args if not a.startswith("-") and a != stack][2]
        print(f"{stack}-{name}")  # the test checks afterwards that the program exports `name`
    return 0


# ------------------------------------------------------------------------------------------ cloud CLIs


def _kubeconfig(args: list[str]) -> Path | None:
    explicit = option(args, "--kubeconfig")
    candidates = [explicit] if explicit else os.environ.get("KUBECONFIG", "").split(os.pathsep)
    candidates = [c for c in candidates if c] or [str(Path.home() / ".kube" / "config")]
    return next((Path(c) for c in candidates if Path(c).is_file()), None)


def aws(args: list[str]) -> int:
    env = os.environ
    if not (env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")) and not env.get("AWS_PROFILE"):
        raise Fail(
            'Unable to locate credentials. You can configure credentials by running "aws configure".', 253
        )
    region = option(args, "--region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise Fail(
            'You must specify a region. You can also configure your region by running "aws configure".', 253
        )
    if args[:2] == ["eks", "update-kubeconfig"]:
        name = option(args, "--name")
        if not name:
            raise Fail("aws: error: argument --name: expected one argument", 252)
        path = Path(option(args, "--kubeconfig") or Path.home() / ".kube" / "config")
        path.parent.mkdir(parents=True, exist_ok=True)
        arn = f"arn:aws:eks:{region}:123456789012:cluster/{name}"
        path.write_text(
            f"apiVersion: v1\nkind: Config\ncurrent-context: {arn}\n"
            f"clusters: [{{name: {arn}, cluster: {{server: 'https://{name}.eks.amazonaws.com'}}}}]\n"
            f"contexts: [{{name: {arn}, context: {{cluster: {arn}, user: {arn}}}}}]\n"
            f"users: [{{name: {arn}, user: {{exec: {{command: aws, args: [eks, get-token, --cluster-name, {name}]}}}}}}]\n"
        )
        print(f"Added new context {arn} to {path}")
    return 0


def kubectl(args: list[str]) -> int:
    if not _kubeconfig(args):
        raise Fail(
            "The connection to the server localhost:8080 was refused - did you specify the right host or port?"
        )
    if args[:1] == ["wait"]:
        print("condition met")
    return 0


def gcloud(args: list[str]) -> int:
    if not (
        os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        or os.environ.get("CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE")
    ):
        raise Fail("ERROR: (gcloud) You do not currently have an active account selected.")
    return 0


def gh(args: list[str]) -> int:
    if not (os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN")):
        raise Fail(
            "To use GitHub CLI in a GitHub Actions workflow, set the GH_TOKEN environment variable.", 4
        )
    body = option(args, "--body-file")
    if body and body != "-" and not Path(body).is_file():
        raise Fail(f"open {body}: no such file or directory")
    if args[:1] == ["api"]:
        return gh_api(args[1:])
    return 0


def gh_api(args: list[str]) -> int:
    """`gh api` on a PR's issue comments, kept in a JSON file beside the call log: list (one JSON array per
    page, back to back, as `--paginate` prints them), create and edit. Comments are written by FAKE_GH_LOGIN
    (default: the Actions token's bot); FAKE_GH_PAGE_SIZE sets the page size."""
    state_file = Path(
        os.environ.get("FAKE_GH_STATE") or Path(os.environ["FAKE_LOG"]).parent / "gh-comments.json"
    )
    comments: list[dict[str, Any]] = json.loads(state_file.read_text()) if state_file.is_file() else []
    method = option(args, "--method") or option(args, "-X") or "GET"
    endpoint = next(a for a in args if a.startswith("repos/"))
    path = endpoint.split("?", 1)[0]
    if m := re.fullmatch(r"repos/[^/]+/[^/]+/issues/(\d+)/comments", path):
        issue = int(m.group(1))
        if method == "GET":
            mine = [c for c in comments if c["issue"] == issue]
            size = int(os.environ.get("FAKE_GH_PAGE_SIZE", "100"))
            pages = [mine[i : i + size] for i in range(0, len(mine), size)] or [[]]
            sys.stdout.write("".join(json.dumps(page) for page in pages))
            return 0
        if method == "POST":
            body = json.loads(sys.stdin.read())["body"]
            login = os.environ.get("FAKE_GH_LOGIN", "github-actions[bot]")
            comment = {"id": 1000 + len(comments), "issue": issue, "body": body, "user": {"login": login}}
            comments.append(comment)
            state_file.write_text(json.dumps(comments))
            print(json.dumps(comment))
            return 0
    if (m := re.fullmatch(r"repos/[^/]+/[^/]+/issues/comments/(\d+)", path)) and method == "PATCH":
        target = next((c for c in comments if c["id"] == int(m.group(1))), None)
        if target is None:
            raise Fail("gh: Not Found (HTTP 404)")
        target["body"] = json.loads(sys.stdin.read())["body"]
        state_file.write_text(json.dumps(comments))
        print(json.dumps(target))
        return 0
    raise Fail(f"gh api: no model for {method} {endpoint} in tests/ci/fake_tools.py")


def sudo(args: list[str]) -> int:
    os.execvp(args[0], args)


def main(argv: list[str]) -> int:
    kind, invoked, args = argv[1], Path(os.path.abspath(argv[2])), argv[3:]
    record(kind, invoked, args)
    handlers = {
        "python": lambda: python(invoked, args, project=False),
        "python-project": lambda: python(invoked, args, project=True),
        "pip": lambda: pip(invoked.parent.parent, args),
        "uv": lambda: uv(args),
        "mlops-infra": lambda: mlops_infra(args),
        "pulumi": lambda: pulumi(args),
        "curl": lambda: curl(args),
        "aws": lambda: aws(args),
        "kubectl": lambda: kubectl(args),
        "gcloud": lambda: gcloud(args),
        "gh": lambda: gh(args),
        "sudo": lambda: sudo(args),
    }
    try:
        return handlers.get(kind, lambda: 0)()
    except Fail as exc:
        print(exc, file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
