"""The MLflow artifact bucket on GCS: private by construction (uniform access, public access prevention),
versioned so an overwritten or deleted model can be recovered, optionally encrypted with a customer key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp


def bucket_name(project: str, cluster: str, purpose: str) -> str:
    """Globally unique, deterministic bucket name (3-63 chars); long names keep a stable hash suffix."""
    name = f"{project}-{cluster}-{purpose}".lower()
    if len(name) > 63:
        name = f"{name[:54].rstrip('-.')}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return name


@dataclass(frozen=True)
class ArtifactBucketArgs:
    project: str
    location: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    # Customer-managed key (projects/.../cryptoKeys/...); the project's GCS service agent needs
    # roles/cloudkms.cryptoKeyEncrypterDecrypter on it. None: Google-managed encryption.
    kms_key_name: pulumi.Input[str] | None = None
    protect: bool = False
    noncurrent_version_days: int = 30
    # What the bucket waits for: the project's enabled APIs (Cloud Storage among them).
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class ArtifactBucket(pulumi.ComponentResource):
    def __init__(self, name: str, args: ArtifactBucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:gcp:ArtifactBucket", name, None, opts)
        self.bucket = gcp.storage.Bucket(
            name,
            name=args.name,
            project=args.project,
            location=args.location.upper(),
            storage_class="STANDARD",
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning=gcp.storage.BucketVersioningArgs(enabled=True),
            lifecycle_rules=[
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        days_since_noncurrent_time=args.noncurrent_version_days, with_state="ARCHIVED"
                    ),
                )
            ],
            encryption=(
                gcp.storage.BucketEncryptionArgs(default_kms_key_name=args.kms_key_name)
                if args.kms_key_name is not None
                else None
            ),
            # Prod keeps its artifacts through a mistaken destroy; other environments clean up fully.
            force_destroy=not args.protect,
            labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=args.depends_on),
        )
        self.url: pulumi.Output[str] = self.bucket.name.apply(lambda n: f"gs://{n}")
        self.register_outputs({"bucket": self.bucket.name, "url": self.url})
