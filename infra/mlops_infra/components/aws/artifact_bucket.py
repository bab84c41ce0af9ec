"""The S3 bucket holding MLflow artifacts, and the least-privilege policy the tracking server's role gets."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from mlops_infra.components.aws.kms import kms_key


@dataclass(frozen=True)
class ArtifactBucketArgs:
    bucket_name: pulumi.Input[str]  # globally unique; e.g. <cluster>-mlflow-artifacts-<account id>
    noncurrent_version_days: int = 30
    kms_key_arn: pulumi.Input[str] | None = None  # None: a key of its own
    protect: bool = True
    force_destroy: bool = False
    tags: dict[str, str] = field(default_factory=dict)


def access_policy(bucket_arn: str, key_arn: str) -> str:
    """Read/write objects in this bucket and list it, nothing else; the KMS grants that SSE-KMS needs."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Objects",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": f"{bucket_arn}/*",
                },
                {"Sid": "List", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn},
                {
                    "Sid": "Encryption",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": key_arn,
                },
            ],
        },
        sort_keys=True,
    )


def check_bucket_name(name: str) -> str:
    if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", name) or ".." in name:
        raise ValueError(f"{name!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, '.', '-')")
    return name


def tls_only_policy(bucket_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        },
        sort_keys=True,
    )


class ArtifactBucket(pulumi.ComponentResource):
    """Versioned, SSE-KMS, never public, owner-enforced, TLS-only, old versions expire; protected in prod."""

    def __init__(self, name: str, args: ArtifactBucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:aws:ArtifactBucket", name, None, opts)
        if isinstance(args.bucket_name, str):
            check_bucket_name(args.bucket_name)
        tags = {**args.tags, "Name": name}
        key_arn = args.kms_key_arn
        if key_arn is None:
            key_arn = kms_key(
                f"{name}-key", f"S3 {name} encryption", {**tags, "Name": name}, self, protect=args.protect
            ).arn
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=pulumi.Output.from_input(args.bucket_name).apply(check_bucket_name),
            force_destroy=args.force_destroy,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms", kms_master_key_id=key_arn
                    ),
                    bucket_key_enabled=True,
                )
            ],
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-noncurrent-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=args.noncurrent_version_days
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=7
                    ),
                )
            ],
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=self.bucket.id,
            policy=self.bucket.arn.apply(tls_only_policy),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]),
        )
        self.name = self.bucket.bucket
        self.uri = pulumi.Output.concat("s3://", self.bucket.bucket, "/")
        self.access_policy_json = pulumi.Output.all(self.bucket.arn, key_arn).apply(
            lambda values: access_policy(str(values[0]), str(values[1]))
        )
        self.register_outputs({"bucket": self.name, "uri": self.uri})
