"""ECR repositories for workload images: immutable tags, scan on push, KMS encryption, bounded history."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from mlops_infra.components.images import Registry

KEEP_IMAGES = 30


@dataclass(frozen=True)
class EcrRepositoryArgs:
    name: str
    kms_key_arn: pulumi.Input[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    protect: bool = False


class EcrRepository(pulumi.ComponentResource):
    """One repository; `self.registry` carries the push credentials from a short-lived authorization token."""

    def __init__(self, name: str, args: EcrRepositoryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:aws:EcrRepository", name, None, opts)
        encryption = (
            aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS", kms_key=args.kms_key_arn)
            if args.kms_key_arn is not None
            else aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")
        )
        self.repository = aws.ecr.Repository(
            name,
            name=args.name,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[encryption],
            force_delete=False,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=self.repository.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": f"keep the last {KEEP_IMAGES} images",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": KEEP_IMAGES,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                }
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        token = aws.ecr.get_authorization_token_output(registry_id=self.repository.registry_id)
        self.registry = Registry(
            # The registry host from the repository URL: the token's proxy endpoint is the same host, but it
            # arrives inside a secret result and would hide which registry the credentials are for.
            server=self.repository.repository_url.apply(lambda url: url.split("/", 1)[0]),
            repository=self.repository.repository_url,
            username=token.user_name,
            password=pulumi.Output.secret(token.password),
        )
        self.register_outputs({"repositoryUrl": self.repository.repository_url})
