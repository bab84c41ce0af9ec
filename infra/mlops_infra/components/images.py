"""Workload images built from this repository's Dockerfiles and pushed with pulumi-docker.

Tags are a content hash of the build context, so an unchanged workload never rebuilds or rolls out, and
pods reference the pushed image by digest (`repoDigest`), never by a mutable tag.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import pulumi
import pulumi_docker as docker

IGNORED_PARTS = {"__pycache__", "tests", "bench", ".pytest_cache"}


@dataclass(frozen=True)
class Registry:
    """Where images go: ECR on AWS, Artifact Registry on GCP (short-lived tokens), any registry locally."""

    server: pulumi.Input[str]
    repository: pulumi.Input[str]
    username: pulumi.Input[str] | None = None
    password: pulumi.Input[str] | None = None
    # What must exist before a push beyond the repository itself (e.g. the pusher's grant on it).
    ready: tuple[pulumi.Resource, ...] = ()

    def for_workload(self, workload: str) -> Registry:
        """The same registry with one workload's repository below this one's (`.../mlops` -> `.../mlops/serving`)."""
        return dataclasses.replace(self, repository=pulumi.Output.concat(self.repository, "/", workload))


def context_hash(context: Path) -> str:
    """A stable digest of the files that go into the image."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        rel = path.relative_to(context)
        if IGNORED_PARTS.intersection(rel.parts) or path.suffix == ".pyc":
            continue
        digest.update(str(rel).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def bundled_contexts() -> Path:
    """The workloads' build contexts (Dockerfile, requirements, sources): shipped in the wheel as
    `mlops_infra/workload_contexts/<workload>`; in an editable install of a checkout, where the package is the
    source tree, the repository's `workloads/` folder the wheel copies them from (same files, same tags)."""
    packaged = Path(str(files("mlops_infra") / "workload_contexts"))
    if packaged.is_dir():
        return packaged
    return Path(str(files("mlops_infra"))).parents[1] / "workloads"


@dataclass(frozen=True)
class WorkloadImageArgs:
    workload: str  # a folder of the build contexts, e.g. "serving"
    registry: Registry
    platform: str = "linux/amd64"
    context_root: Path = field(default_factory=bundled_contexts)


class WorkloadImage(pulumi.ComponentResource):
    """Builds `workloads/<workload>/Dockerfile` and pushes it; `self.ref` is the digest-pinned reference."""

    def __init__(self, name: str, args: WorkloadImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:images:WorkloadImage", name, None, opts)
        context = args.context_root / args.workload
        if not (context / "Dockerfile").is_file():
            raise ValueError(f"{context}: no Dockerfile to build the {args.workload!r} image from")
        tag = context_hash(context)
        registry = None
        if args.registry.username is not None:
            registry = docker.RegistryArgs(
                server=args.registry.server,
                username=args.registry.username,
                password=pulumi.Output.secret(args.registry.password or ""),
            )
        self.image = docker.Image(
            name,
            image_name=pulumi.Output.concat(args.registry.repository, ":", tag),
            build=docker.DockerBuildArgs(
                context=str(context), dockerfile=str(context / "Dockerfile"), platform=args.platform
            ),
            registry=registry,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.registry.ready)),
        )
        self.ref: pulumi.Output[str] = self.image.repo_digest
        self.register_outputs({"ref": self.ref})
