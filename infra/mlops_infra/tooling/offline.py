"""Evaluate the Pulumi program with no cloud, no cluster and no Pulumi CLI, under Pulumi's mock monitor.

The real program (`mlops_infra.platform.stack.program`) runs against a monitor that records every resource
registration as the engine would receive it: type token, parent, protect flag, provider and inputs
(camelCase, secrets masked). Outputs the engine would compute (ARNs, endpoints, kubeconfigs, generated
passwords) are synthesised per type so that apply chains run and no input silently drops out.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import hashlib
import importlib
import importlib.util
import ipaddress
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pulumi
import yaml

from mlops_infra.platform.config import PROJECT, StackConfig, instance_catalog_path, load_stack, stack_name
from mlops_infra.tooling import sdk
from mlops_infra.tooling.plan import SECRET, UNKNOWN, Plan, RecordedResource

ACCOUNT_ID = "123456789012"


def _mask(value: Any) -> Any:
    """Replace secret values by a marker, recursively, so nothing printed can leak them."""
    if sdk.is_secret(value):
        inner = sdk.unwrap_secret(value)
        # A secret map (a Kubernetes Secret's data/stringData) keeps its keys, which are not secret, so
        # rendered Secrets still validate and show which keys they hold.
        if isinstance(inner, Mapping):
            return {str(k): SECRET for k in sorted(inner)}
        return SECRET
    if isinstance(value, Mapping):
        return {k: _mask(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    if value == sdk.UNKNOWN:
        return UNKNOWN
    if isinstance(value, pulumi.Resource):
        return "[resource]"
    return value


def _role_path(arn: str) -> str:
    """`arn:aws:iam::1:role/aws-service-role/x.amazonaws.com/Name` -> `/aws-service-role/x.amazonaws.com/`."""
    return arn.split(":role", 1)[-1].rsplit("/", 1)[0] + "/"


def _digest(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _fake_kubeconfig(name: str, endpoint: str, ca: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [{"name": name, "user": {"token": "offline"}}],
        }
    )


class OfflineMocks(sdk.Mocks):
    """Return realistic outputs per resource type so that dependent inputs keep their values.

    The account answers look-ups like a FRESH one: no IAM role exists unless `existing_roles` lists its ARN
    (e.g. an account that already had an Auto Scaling group, and so its service-linked role).
    """

    def __init__(
        self, region: str, stack: str, existing_roles: tuple[str, ...] = (), gcp_project: str | None = None
    ):
        self.region = region
        self.stack = stack
        self.existing_roles = existing_roles
        self.gcp_project = gcp_project or "project"
        self._peering_ranges: dict[str, ipaddress.IPv4Network] = {}  # Private Service Access ranges by name

    def _arn(self, service: str, kind: str, name: str, regional: bool = True) -> str:
        region = self.region if regional else ""
        return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{kind}/{name}"

    def new_resource(self, args: sdk.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        typ, name, inputs = args.typ, args.name, dict(args.inputs)
        rid = f"{name}-{_digest(self.stack, typ, name)}"
        if not args.custom:
            return None, inputs
        extra = self._outputs(typ, name, rid, inputs)
        return extra.pop("id", rid), {**inputs, **extra}

    def _outputs(self, typ: str, name: str, rid: str, inputs: dict[str, Any]) -> dict[str, Any]:
        service = typ.split(":")[1].split("/")[0] if typ.startswith("aws:") else ""
        out: dict[str, Any] = {}
        if typ.startswith("aws:"):
            out["arn"] = self._arn(service, typ.split(":")[-1].lower(), inputs.get("name", rid))
            out["tagsAll"] = inputs.get("tags", {})
        match typ:
            case "aws:ec2/vpc:Vpc":
                out |= {
                    "id": f"vpc-{_digest(rid, length=17)}",
                    "defaultSecurityGroupId": f"sg-{_digest(rid, 'd')}",
                }
            case "aws:ec2/subnet:Subnet":
                out |= {"id": f"subnet-{_digest(rid, length=17)}"}
            case "aws:ec2/securityGroup:SecurityGroup":
                out |= {"id": f"sg-{_digest(rid, length=17)}"}
            case "aws:ec2/launchTemplate:LaunchTemplate":
                out |= {"id": f"lt-{_digest(rid, length=17)}", "latestVersion": 1, "defaultVersion": 1}
            case "aws:eks/cluster:Cluster":
                endpoint = f"https://{_digest(rid, length=32).upper()}.gr7.{self.region}.eks.amazonaws.com"
                ca = base64.b64encode(f"offline-ca-{rid}".encode()).decode()
                issuer = f"https://oidc.eks.{self.region}.amazonaws.com/id/{_digest(rid, 'oidc', length=32).upper()}"
                out |= {
                    "id": inputs.get("name", rid),
                    "endpoint": endpoint,
                    "certificateAuthority": {"data": ca},
                    "identities": [{"oidcs": [{"issuer": issuer}]}],
                    "platformVersion": "eks.1",
                    "status": "ACTIVE",
                    "vpcConfig": {
                        **inputs.get("vpcConfig", {}),
                        "clusterSecurityGroupId": f"sg-{_digest(rid, 'c')}",
                    },
                }
            case "aws:eks/nodeGroup:NodeGroup":
                asg = f"eks-{inputs.get('nodeGroupName', name)}-{_digest(rid, length=20)}"
                out |= {
                    "resources": [{"autoscalingGroups": [{"name": asg}], "remoteAccessSecurityGroupId": ""}],
                    "status": "ACTIVE",
                }
            case "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
                url = str(inputs.get("url", "")).removeprefix("https://")
                out |= {"arn": f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{url}"}
            case "aws:iam/serviceLinkedRole:ServiceLinkedRole":
                from mlops_infra.components.aws.service_linked_roles import role_arn

                arn = role_arn(ACCOUNT_ID, "aws", str(inputs["awsServiceName"]))
                out |= {
                    "id": arn,
                    "arn": arn,
                    "name": arn.rsplit("/", 1)[-1],
                    "path": arn.split(":role", 1)[1].rsplit("/", 1)[0] + "/",
                    "uniqueId": _digest(arn, length=21).upper(),
                }
            case "aws:iam/role:Role" | "aws:iam/policy:Policy":
                kind = "role" if typ.endswith("Role") else "policy"
                out |= {
                    "arn": f"arn:aws:iam::{ACCOUNT_ID}:{kind}/{inputs.get('name', rid)}",
                    "uniqueId": _digest(rid, length=21).upper(),
                }
            case "aws:sqs/queue:Queue":
                queue = inputs.get("name", rid)
                url = f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT_ID}/{queue}"
                out |= {"id": url, "url": url, "arn": f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{queue}"}
            case "aws:kms/key:Key":
                out |= {
                    "id": _digest(rid, length=32),
                    "keyId": _digest(rid, length=32),
                    "arn": self._arn("kms", "key", _digest(rid, length=32)),
                }
            case "aws:s3/bucketV2:BucketV2" | "aws:s3/bucket:Bucket":
                bucket = inputs.get("bucket", rid)
                out |= {
                    "id": bucket,
                    "bucket": bucket,
                    "arn": f"arn:aws:s3:::{bucket}",
                    "bucketRegionalDomainName": f"{bucket}.s3.{self.region}.amazonaws.com",
                }
            case "aws:rds/instance:Instance":
                host = f"{inputs.get('identifier', rid)}.{_digest(rid, length=12)}.{self.region}.rds.amazonaws.com"
                out |= {"address": host, "endpoint": f"{host}:5432", "port": inputs.get("port", 5432)}
            case "aws:elasticache/replicationGroup:ReplicationGroup":
                host = f"master.{inputs.get('replicationGroupId', rid)}.{_digest(rid, length=6)}.use1.cache.amazonaws.com"
                out |= {
                    "primaryEndpointAddress": host,
                    "readerEndpointAddress": host.replace("master.", "replica."),
                    "port": inputs.get("port", 6379),
                }
            case "aws:ecr/repository:Repository":
                repo = inputs.get("name", rid)
                out |= {
                    "repositoryUrl": f"{ACCOUNT_ID}.dkr.ecr.{self.region}.amazonaws.com/{repo}",
                    "registryId": ACCOUNT_ID,
                }
            case "docker:index/image:Image":
                image = str(inputs.get("imageName", rid)).rsplit(":", 1)[0]
                out |= {
                    "repoDigest": f"{image}@sha256:{_digest(rid, str(inputs.get('imageName')), length=64)}"
                }
            case "random:index/randomPassword:RandomPassword" | "random:index/randomString:RandomString":
                length = int(inputs.get("length", 32))
                out |= {"result": sdk.secret(_digest(rid, "pw", length=64)[:length])}
            case "gcp:container/cluster:Cluster":
                location = f"projects/{inputs.get('project', 'project')}/locations/{inputs.get('location')}"
                out |= {
                    "id": f"{location}/clusters/{inputs.get('name', rid)}",
                    "endpoint": f"34.{int(_digest(rid, length=2), 16)}.10.1",
                    "masterAuth": {"clusterCaCertificate": base64.b64encode(b"offline-ca").decode()},
                    "selfLink": f"https://container.googleapis.com/v1/{rid}",
                }
            case "gcp:serviceaccount/account:Account":
                email = f"{inputs.get('accountId', name)}@{inputs.get('project', 'project')}.iam.gserviceaccount.com"
                out |= {
                    "email": email,
                    "member": f"serviceAccount:{email}",
                    "name": f"projects/{inputs.get('project', 'project')}/serviceAccounts/{email}",
                }
            case "gcp:storage/bucket:Bucket":
                out |= {"url": f"gs://{inputs.get('name', rid)}"}
            case "gcp:compute/network:Network" | "gcp:compute/subnetwork:Subnetwork":
                project, short = inputs.get("project", "project"), inputs.get("name", rid)
                where = (
                    f"regions/{inputs.get('region')}/subnetworks"
                    if "subnetwork" in typ
                    else "global/networks"
                )
                out |= {
                    "id": f"projects/{project}/{where}/{short}",
                    "selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}/{where}/{short}",
                }
            case "gcp:kms/keyRing:KeyRing":
                location = f"projects/{inputs.get('project', 'project')}/locations/{inputs.get('location')}"
                out |= {"id": f"{location}/keyRings/{inputs.get('name', rid)}"}
            case "gcp:projects/apiKey:ApiKey":
                out |= {"keyString": sdk.secret(f"AIza{_digest(rid, 'key', length=35)}")}
            case "gcp:kms/cryptoKey:CryptoKey":
                out |= {"id": f"{inputs.get('keyRing')}/cryptoKeys/{inputs.get('name', rid)}"}
            case "gcp:projects/service:Service":
                out |= {"id": f"{inputs.get('project', self.gcp_project)}/{inputs.get('service')}"}
            case "gcp:compute/globalAddress:GlobalAddress":
                out |= self._global_address(rid, inputs)
            case "gcp:servicenetworking/connection:Connection":
                network = str(inputs.get("network", ""))
                out |= {
                    "id": f"{network}:{inputs.get('service')}",
                    "peering": str(inputs.get("service", "")).replace(".", "-"),
                }
            case "gcp:sql/databaseInstance:DatabaseInstance":
                out |= self._sql_instance(rid, inputs)
            case "gcp:sql/database:Database":
                sql_project, instance = inputs.get("project", self.gcp_project), inputs.get("instance")
                out |= {
                    "id": f"projects/{sql_project}/instances/{instance}/databases/{inputs.get('name', rid)}",
                    "charset": "UTF8",
                    "collation": "en_US.UTF8",
                }
            case "gcp:sql/user:User":
                out |= {"id": f"{inputs.get('name', rid)}//{inputs.get('instance')}"}
            case "gcp:artifactregistry/repository:Repository":
                ar_project, ar_location = inputs.get("project", self.gcp_project), inputs.get("location")
                repo = str(inputs.get("repositoryId", rid))
                out |= {
                    "id": f"projects/{ar_project}/locations/{ar_location}/repositories/{repo}",
                    "name": repo,
                    "registryUri": f"{ar_location}-docker.pkg.dev/{ar_project}/{repo}",
                }
        return out

    def _global_address(self, rid: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """A reserved range: the given address, or (as Google does when none is given) a free private block,
        here a deterministic one out of 172.16.0.0/12, which the reference VPCs (10.x) never use."""
        name = str(inputs.get("name", rid))
        prefix = int(inputs.get("prefixLength") or 32)
        if inputs.get("address"):
            network = ipaddress.ip_network(f"{inputs['address']}/{prefix}", strict=False)
        else:
            blocks = 2 ** (prefix - 12)
            base = int(ipaddress.IPv4Address("172.16.0.0")) + (int(_digest(rid), 16) % blocks) * 2 ** (
                32 - prefix
            )
            network = ipaddress.ip_network(f"{ipaddress.IPv4Address(base)}/{prefix}")
        self._peering_ranges[name] = ipaddress.IPv4Network(network)
        link = f"projects/{inputs.get('project', self.gcp_project)}/global/addresses/{name}"
        return {
            "id": link,
            "address": str(network.network_address),
            "selfLink": f"https://www.googleapis.com/compute/v1/{link}",
        }

    def _sql_instance(self, rid: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """Cloud SQL outputs: the private IP comes from the first /24 of the instance's allocated range (Cloud
        SQL carves a /24 per region out of it); the connection name is `project:region:instance`."""
        project, region = inputs.get("project", self.gcp_project), inputs.get("region", self.region)
        name = str(inputs.get("name", rid))
        allocated = str(
            ((inputs.get("settings") or {}).get("ipConfiguration") or {}).get("allocatedIpRange", "")
        )
        block = self._peering_ranges.get(allocated, ipaddress.IPv4Network("172.31.255.0/24"))
        private_ip = str(block.network_address + 3)
        return {
            "id": name,
            "privateIpAddress": private_ip,
            "publicIpAddress": "",
            "firstIpAddress": private_ip,
            "ipAddresses": [{"ipAddress": private_ip, "type": "PRIVATE", "timeToRetire": ""}],
            "connectionName": f"{project}:{region}:{name}",
            "selfLink": f"https://sqladmin.googleapis.com/sql/v1beta4/projects/{project}/instances/{name}",
            "serviceAccountEmailAddress": f"p{ACCOUNT_ID}-{_digest(rid, length=6)}@gcp-sa-cloud-sql.iam.gserviceaccount.com",
        }

    def call(self, args: sdk.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        match args.token:
            case "aws:index/getCallerIdentity:getCallerIdentity":
                return {
                    "accountId": ACCOUNT_ID,
                    "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/offline",
                    "userId": "OFFLINE",
                }, []
            case "aws:index/getPartition:getPartition":
                return {"partition": "aws", "dnsSuffix": "amazonaws.com"}, []
            case "aws:ecr/getAuthorizationToken:getAuthorizationToken":
                server = f"{ACCOUNT_ID}.dkr.ecr.{self.region}.amazonaws.com"
                return {
                    "proxyEndpoint": f"https://{server}",
                    "userName": "AWS",
                    "password": _digest(server, "ecr-token", length=64),
                    "authorizationToken": _digest(server, "ecr-auth", length=64),
                    "expiresAt": "2026-01-01T12:00:00Z",
                    "id": self.region,
                }, []
            case "aws:index/getRegion:getRegion":
                return {"name": self.region, "region": self.region}, []
            case "aws:iam/getRoles:getRoles":
                prefix = str(args.args.get("pathPrefix") or "/")
                pattern = re.compile(str(args.args.get("nameRegex") or ""))
                found = [
                    arn
                    for arn in self.existing_roles
                    if _role_path(arn).startswith(prefix) and pattern.search(arn.rsplit("/", 1)[-1])
                ]
                return {"arns": found, "names": [a.rsplit("/", 1)[-1] for a in found], "id": self.region}, []
            case "gcp:organizations/getProject:getProject":
                project = args.args.get("projectId") or "project"
                return {
                    "projectId": project,
                    "number": ACCOUNT_ID,
                    "name": project,
                    "id": f"projects/{project}",
                }, []
            case "gcp:organizations/getClientConfig:getClientConfig":
                return {
                    "accessToken": _digest(self.stack, "gcp-access-token", length=64),
                    "project": self.gcp_project,
                    "region": self.region,
                    "zone": "",
                    "id": f"projects/{self.gcp_project}/regions/{self.region}",
                }, []
            case "gcp:organizations/getClientOpenIdUserInfo:getClientOpenIdUserInfo":
                email = f"deployer@{self.gcp_project}.iam.gserviceaccount.com"
                return {"email": email, "id": email}, []
        raise NotImplementedError(f"offline evaluation has no answer for invoke {args.token}")


class RecordingMonitor(sdk.MockMonitor):
    """A mock monitor that keeps every registration request with its resource options."""

    def __init__(self, mocks: OfflineMocks, project: str):
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []
        self.project = project
        self.stack = mocks.stack

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """URNs with this run's project and stack. The SDK's own version reads them from its settings, which
        older SDKs (seen with 3.231) do not carry into the threads registrations run in ("urn:pulumi:stack::project")."""
        if parent:
            type_ = parent.split("::")[2].split("$")[-1] + "$" + type_
        return f"urn:pulumi:{self.stack}::{self.project}::{type_}::{name}"

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = sdk.deserialize(request.object)
        provider = (
            request.provider.split("::" + request.provider.rsplit("::", 1)[-1])[0]
            if request.provider
            else None
        )
        self.recorded.append(
            RecordedResource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent or None,
                custom=bool(request.custom),
                protect=bool(request.protect),
                provider=provider,
                inputs=_mask(inputs),
                ignore_changes=tuple(request.ignoreChanges),
                depends_on=tuple(request.dependencies),
                outputs=_mask(sdk.deserialize(response.object)),
                import_id=request.importId or None,
                retain_on_delete=bool(request.retainOnDelete),
            )
        )
        return response


def resolve_stack_file(stack: str, stacks_dir: Path = Path("stacks")) -> Path:
    """A stack name (`dev`) or a path to any `Pulumi.<name>.yaml` file."""
    candidate = Path(stack)
    if candidate.suffix in {".yaml", ".yml"} or candidate.exists():
        return candidate
    return stacks_dir / f"Pulumi.{stack}.yaml"


def _engine_config(stack_file: Path) -> tuple[dict[str, str], list[str]]:
    """The stack file's config as the engine hands it to the program: every value a string (structured
    values as JSON), plus the keys that hold `secure:` values."""
    doc = yaml.safe_load(stack_file.read_text()) or {}
    entries = doc.get("config") or {}
    config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in entries.items()}
    secret_keys = [k for k, v in entries.items() if isinstance(v, Mapping) and "secure" in v]
    return config, secret_keys


def evaluate(
    stack_file: Path,
    program: Callable[[], Mapping[str, Any] | None] | None = None,
    existing_roles: tuple[str, ...] = (),
) -> Plan:
    """Run the platform's program (or `program`) for one stack file under mocks and return what it would
    create. The account is a fresh one unless `existing_roles` names IAM role ARNs that already exist in it.
    Raises `ConfigError` before anything is declared when the stack's config is invalid."""
    config = load_stack(stack_file)
    if program is None:
        from mlops_infra.platform.stack import program as platform_program

        program = platform_program
    mocks = OfflineMocks(
        region=config.region or "local",
        stack=stack_name(stack_file),
        existing_roles=existing_roles,
        gcp_project=config.gcp_project,
    )
    engine_config, secret_keys = _engine_config(stack_file)
    if (
        config.instance_catalog
    ):  # the program reads it relative to stacks/; this stack file may live elsewhere
        where = instance_catalog_path(config.instance_catalog, str(stack_file)).resolve()
        engine_config[f"{PROJECT}:instanceCatalog"] = str(where)
    return _record(program, mocks, engine_config, secret_keys, config)


def evaluate_program(
    program: Callable[[], Mapping[str, Any] | None], stack_file: Path | None = None, project: str = "program"
) -> Plan:
    """Record any Pulumi program (a team's own, using our components or not) under mocks. A stack file, if
    given, supplies the config values the program reads (any namespace) and the stack name; it is not
    validated as this platform's stack config."""
    engine_config: dict[str, str] = {}
    secret_keys: list[str] = []
    name = "program"
    if stack_file is not None:
        engine_config, secret_keys = _engine_config(stack_file)
        name = stack_name(stack_file)
    region = engine_config.get("aws:region") or engine_config.get("gcp:region") or "us-east-1"
    mocks = OfflineMocks(region=region, stack=name, gcp_project=engine_config.get("gcp:project"))
    return _record(program, mocks, engine_config, secret_keys, None, project)


# Collect the young generations every 50,000 allocations and put full collections off (see _few_collections).
EVALUATION_GC_THRESHOLD = (50_000, 50, 100)


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """An evaluation imports the provider modules (tens of thousands of long-lived objects) and allocates
    millions of short-lived ones. At the default thresholds the collector walks the whole heap, provider
    classes included, a dozen times per stack: a third of the evaluation. Cycles are still collected, the
    old generation only after the evaluation, when the default thresholds are back."""
    previous = gc.get_threshold()
    gc.set_threshold(*EVALUATION_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def _record(
    program: Callable[[], Mapping[str, Any] | None],
    mocks: OfflineMocks,
    engine_config: Mapping[str, str],
    secret_keys: list[str],
    config: StackConfig | None,
    project: str = PROJECT,
) -> Plan:
    monitor = RecordingMonitor(mocks, project)
    exported: dict[str, Any] = {}

    def keep(key: str, value: Any, is_secret: bool) -> None:
        exported[key] = SECRET if is_secret else _mask(value)

    with _few_collections(), sdk.no_stack_traces():
        sdk.run_program(
            program,
            mocks,
            monitor,
            project=project,
            stack=mocks.stack,
            config=engine_config,
            secret_keys=secret_keys,
            on_output=keep,
        )
    # Registrations arrive from a thread pool in varying order; sort so the same stack gives the same plan.
    resources = sorted(monitor.recorded, key=lambda r: r.urn)
    return Plan(stack=mocks.stack, config=config, resources=resources, outputs=dict(sorted(exported.items())))


def load_program(target: str) -> Callable[[], Mapping[str, Any] | None]:
    """`package.module:function`, or `path/to/__main__.py:function` (a Pulumi project's program file), ->
    the function. Modules are imported from the working directory too."""
    source, _, function = target.rpartition(":")
    if not source or not function:
        raise ProgramError(f"{target!r}: name a program as module:function or file.py:function")
    if source.endswith(".py"):
        path = Path(source)
        if not path.is_file():
            raise ProgramError(f"{target}: no such file {source}")
        spec = importlib.util.spec_from_file_location(f"mlops_program_{path.parent.name}", path)
        if spec is None or spec.loader is None:
            raise ProgramError(f"{target}: cannot load {source}")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.parent.resolve()))  # the program's own modules beside it
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ProgramError(f"{target}: loading {source} raised {type(exc).__name__}: {exc}") from None
    else:
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(source)
        except ImportError as exc:
            raise ProgramError(f"{target}: cannot import {source}: {exc}") from None
    found = getattr(module, function, None)
    if not callable(found):
        raise ProgramError(f"{target}: {source} has no function {function!r}")
    return cast(Callable[[], Mapping[str, Any] | None], found)


class ProgramError(ValueError):
    """A `--program` that cannot be loaded; the message says why."""
