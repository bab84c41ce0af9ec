"""Service-linked roles this platform's key policies name, declared so a fresh account works on first apply.

AWS creates a service-linked role the first time its service needs it (Auto Scaling: with the account's
first Auto Scaling group). A KMS key policy may only name principals that already exist, so an EBS key that
grants `AWSServiceRoleForAutoScaling` fails with `MalformedPolicyDocumentException` ("invalid principals")
in an account that never had an Auto Scaling group (terraform-aws-modules/terraform-aws-eks#3013).

The role is account-wide, shared by every stack and tool in the account, so it is declared here and never
owned: if it already exists it is adopted (`import_`), and a destroy leaves it in place (`retain_on_delete`).
The key names the role's `arn` output, so the engine creates the key only after the role exists.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

# Service principal -> the name AWS gives its service-linked role (IAM User Guide, "AWS services that work with
# IAM"; EC2 Auto Scaling User Guide, "Service-linked roles for Amazon EC2 Auto Scaling").
ROLE_NAMES: dict[str, str] = {
    "autoscaling.amazonaws.com": "AWSServiceRoleForAutoScaling",
    "spot.amazonaws.com": "AWSServiceRoleForEC2Spot",  # EC2 User Guide, "Service-linked role for Spot Instance requests"
}
AUTOSCALING = "autoscaling.amazonaws.com"
SPOT = "spot.amazonaws.com"


def role_path(service: str) -> str:
    """Every service-linked role lives under `/aws-service-role/<service principal>/`."""
    return f"/aws-service-role/{service}/"


def role_arn(account_id: str, partition: str, service: str) -> str:
    if service not in ROLE_NAMES:
        raise ValueError(f"no service-linked role name known for {service}; known: {', '.join(ROLE_NAMES)}")
    return f"arn:{partition}:iam::{account_id}:role{role_path(service)}{ROLE_NAMES[service]}"


def existing_role_arn(service: str, parent: pulumi.Resource) -> str | None:
    """The ARN of the service's default service-linked role if the account already has it, else None.

    A plain value (a blocking look-up) because `import_` takes no Output. Needs `iam:ListRoles`.
    """
    found = aws.iam.get_roles(
        path_prefix=role_path(service),
        name_regex=f"^{ROLE_NAMES[service]}$",
        opts=pulumi.InvokeOptions(parent=parent),
    )
    arns = sorted(found.arns or [])
    return arns[0] if arns else None


def service_linked_role(name: str, service: str, parent: pulumi.Resource) -> aws.iam.ServiceLinkedRole:
    """Declare the service's default service-linked role: created in a fresh account, adopted otherwise.

    Inputs stay minimal so an import matches the existing role; its description and tags belong to whoever
    made it (AWS sets them) and are ignored, so adopting never fails on a diff and never rewrites them.
    """
    existing = existing_role_arn(service, parent)
    return aws.iam.ServiceLinkedRole(
        name,
        aws_service_name=service,
        opts=pulumi.ResourceOptions(
            parent=parent,
            import_=existing,
            retain_on_delete=True,
            ignore_changes=["description", "tags"],
        ),
    )
