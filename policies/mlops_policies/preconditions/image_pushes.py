"""Every image the plan pushes goes to a repository the plan declares, with credentials for its registry.

ECR and Artifact Registry refuse a push to a repository that does not exist (ECR `name unknown`, Artifact
Registry `Repository ... not found`), and pulumi-docker pushes with the credentials in the Image's `registry`
argument, falling back to whatever `docker login` left on the machine running `pulumi up`. So a push to a
cloud registry must name its repository's URL (ECR `repositoryUrl`, Artifact Registry
`<location>-docker.pkg.dev/<project>/<repository>/...`), depend on the repository, and carry credentials
for that registry host. Loopback registries (a kind/k3d registry on `localhost`) and registries the stack
names as existing elsewhere (rule config `externalRegistries`, URL prefixes) are outside what a plan proves.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_policies.model import Resource, Rule, as_list, display
from mlops_policies.preconditions.graph import DependencyGraph

NAME = "image-push-targets-declared"
SECRET = "[secret]"
DOCKER_IMAGE = "docker:index/image:Image"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
AR_REPOSITORY = "gcp:artifactregistry/repository:Repository"


@dataclass(frozen=True)
class ImageRef:
    host: str
    path: str  # repository path below the host, without tag or digest

    @property
    def repository(self) -> str:
        return f"{self.host}/{self.path}"


def parse_image(name: str) -> ImageRef:
    """`host[:port]/path[:tag][@digest]`; a first part without `.`/`:` (and not localhost) is Docker Hub."""
    name = name.split("@", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = "docker.io", name
    if ":" in path.rsplit("/", 1)[-1]:
        path = path.rsplit(":", 1)[0]
    return ImageRef(host=host.lower(), path=path)


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def registry_host(server: Any) -> str | None:
    if not isinstance(server, str) or not server:
        return None
    return server.split("://", 1)[-1].rstrip("/").split("/", 1)[0].lower()


def declared_repositories(resources: Sequence[Resource]) -> dict[str, Resource]:
    """Repository URL (no trailing slash) -> the ECR or Artifact Registry repository resource declaring it."""
    found: dict[str, Resource] = {}
    for r in resources:
        url: Any = None
        if r.type == ECR_REPOSITORY:
            url = r.outputs.get("repositoryUrl")
        elif r.type == AR_REPOSITORY and str(r.props.get("format", "")).upper() == "DOCKER":
            url = r.outputs.get("registryUri")
            location, project, repo = (r.props.get(k) for k in ("location", "project", "repositoryId"))
            if not isinstance(url, str) and all(isinstance(v, str) for v in (location, project, repo)):
                url = f"{location}-docker.pkg.dev/{project}/{repo}"
        if isinstance(url, str) and url:
            found[url.rstrip("/").lower()] = r
    return found


def _owner(ref: ImageRef, repositories: Mapping[str, Resource]) -> Resource | None:
    """ECR: the image's repository is exactly the declared one; Artifact Registry: images live below it."""
    target = ref.repository.lower()
    for url, repo in repositories.items():
        if target == url or (repo.type == AR_REPOSITORY and target.startswith(url + "/")):
            return repo
    return None


def image_push_targets_declared(
    resources: Sequence[Resource], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    external = [str(p).rstrip("/").lower() for p in as_list(config.get("externalRegistries"))]
    repositories = declared_repositories(resources)
    graph = DependencyGraph(resources)
    for r in resources:
        name = r.props.get("imageName") if r.type == DOCKER_IMAGE else None
        if not isinstance(name, str) or "[unknown]" in name:
            continue
        ref = parse_image(name)
        target = ref.repository.lower()
        if is_loopback(ref.host) or any(target == p or target.startswith(p + "/") for p in external):
            continue
        owner = _owner(ref, repositories)
        if owner is None:
            yield (
                r.urn,
                f"{display(r)} pushes to {ref.repository}, a repository nothing in this plan declares: the push "
                "fails (name unknown / not found). Declare the ECR or Artifact Registry repository and build the "
                "image name from its URL, or list the registry in externalRegistries if it exists elsewhere",
            )
        elif not graph.waits_for(r.urn, owner.urn):
            yield (
                r.urn,
                f"{display(r)} pushes to {ref.repository} ({display(owner)}) but does not depend on it; build "
                "the image name from the repository's URL output or add dependsOn",
            )
        registry = r.props.get("registry")
        registry = registry if isinstance(registry, Mapping) else {}
        server = registry.get("server")
        # A nested secret (the password) makes the whole `registry` input secret in the recorded plan: its
        # server is then hidden, and a complete block is taken as credentials for the image's host.
        host_ok = server == SECRET or registry_host(server) == ref.host
        if not host_ok or not registry.get("username") or not registry.get("password"):
            yield (
                r.urn,
                f"{display(r)} pushes to {ref.host} without credentials for it (registry.server "
                f"{registry.get('server')!r}, username and password all needed); pulumi-docker would fall back "
                "to whatever docker login left on the machine. Pass the registry's token (ECR: "
                "aws.ecr.get_authorization_token; Artifact Registry: username oauth2accesstoken and an access "
                "token from gcp.organizations.get_client_config) as a secret",
            )


RULE = Rule(
    name=NAME,
    category="reliability",
    description="Images are pushed to repositories the plan declares, with credentials for the registry.",
    stack_check=image_push_targets_declared,
    config_schema={"externalRegistries": {"type": "array", "items": {"type": "string"}}},
)
