"""Every principal a key policy, trust policy or resource policy names must exist when the policy is written.

AWS validates principals when a policy is set: KMS `CreateKey`/`PutKeyPolicy` and IAM `CreateRole` reject a
policy naming a role, user or identity provider that does not exist (`MalformedPolicyDocumentException`:
"invalid principals"). What always exists: the account (`123456789012`, `arn:aws:iam::123456789012:root`),
service principals (`eks.amazonaws.com`), public web identity providers (`accounts.google.com`) and `*`
(IAM User Guide, "AWS JSON policy elements: Principal"). Anything else must be declared in this plan, or
exist outside it (rule config `externalPrincipals`), and the resource naming it must wait for it.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mlops_policies.model import Resource, Rule, as_list, display
from mlops_policies.preconditions.graph import DependencyGraph

NAME = "policy-principals-exist"

# Type token -> the input holding a policy document with principals.
POLICY_INPUTS: dict[str, str] = {
    "aws:kms/key:Key": "policy",
    "aws:kms/keyPolicy:KeyPolicy": "policy",
    "aws:iam/role:Role": "assumeRolePolicy",
    "aws:s3/bucketPolicy:BucketPolicy": "policy",
    "aws:ecr/repositoryPolicy:RepositoryPolicy": "policy",
}
# Principal kinds that name resources of an account; `Service` and `CanonicalUser` principals always exist.
ACCOUNT_KINDS = ("AWS", "Federated")
_ACCOUNT = re.compile(r"^(\d{12}|arn:aws[a-z-]*:iam::\d{12}:root)$")


def _document(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return value if isinstance(value, Mapping) else None


def principals(document: Mapping[str, Any]) -> Iterator[str]:
    """AWS and Federated principals named by `Principal`/`NotPrincipal` of every statement."""
    for statement in as_list(document.get("Statement")):
        if not isinstance(statement, Mapping):
            continue
        for key in ("Principal", "NotPrincipal"):
            principal = statement.get(key)
            if not isinstance(principal, Mapping):
                continue  # "*" (everyone) or absent
            for kind in ACCOUNT_KINDS:
                for value in as_list(principal.get(kind)):
                    if isinstance(value, str):
                        yield value


def always_exists(principal: str) -> bool:
    """The account itself, everyone, or a public web identity provider (any non-ARN federated name)."""
    return principal == "*" or bool(_ACCOUNT.match(principal)) or not principal.startswith("arn:")


def declared_arns(resources: Sequence[Resource]) -> dict[str, Resource]:
    """ARN -> the resource of this plan that has it (from its outputs, or its inputs where the ARN is set)."""
    found: dict[str, Resource] = {}
    for r in resources:
        for source in (r.outputs, r.props):
            arn = source.get("arn")
            if isinstance(arn, str) and arn.startswith("arn:"):
                found.setdefault(arn, r)
    return found


def policy_principals_exist(
    resources: Sequence[Resource], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    external = [str(p) for p in as_list(config.get("externalPrincipals"))]
    arns = declared_arns(resources)
    graph = DependencyGraph(resources)
    for r in resources:
        key = POLICY_INPUTS.get(r.type)
        document = _document(r.props.get(key)) if key else None
        if document is None:
            continue
        for principal in dict.fromkeys(principals(document)):
            if "[unknown]" in principal or always_exists(principal):
                continue
            if any(fnmatch.fnmatchcase(principal, pattern) for pattern in external):
                continue
            owner = arns.get(principal)
            if owner is None:
                yield (
                    r.urn,
                    f"{display(r)}: {key} names {principal}, which no resource of this plan declares and AWS "
                    "does not create by itself: the first apply in a fresh account fails with "
                    "MalformedPolicyDocumentException (invalid principals). Declare it (a service-linked role "
                    "with aws.iam.ServiceLinkedRole) and name its arn output, or list it in "
                    "externalPrincipals if it exists outside this stack",
                )
            elif not graph.waits_for(r.urn, owner.urn):
                yield (
                    r.urn,
                    f"{display(r)}: {key} names {principal} ({display(owner)}) but does not depend on it, so "
                    "the engine may write the policy before the principal exists; build the policy from its "
                    "arn output or add dependsOn",
                )


RULE = Rule(
    name=NAME,
    category="reliability",
    description="Principals named in key, trust and resource policies exist before the policy is written.",
    stack_check=policy_principals_exist,
    config_schema={"externalPrincipals": {"type": "array", "items": {"type": "string"}}},
)
