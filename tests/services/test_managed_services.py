"""Prod on AWS: ElastiCache, RDS and the artifact bucket are encrypted, private, backed up and protected."""

from __future__ import annotations

import json

from services.service_lookup import find_object, only

from mlops_infra.tooling.plan import SECRET, Plan, RecordedResource

from plan_support import reference_plan


def prod() -> Plan:
    return reference_plan("prod")


def _by_urn(plan: Plan, urn: str) -> RecordedResource:
    return next(r for r in plan.resources if r.urn == urn)


def _security_group_rules(plan: Plan, group: RecordedResource) -> list[RecordedResource]:
    return [r for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
            if r.parent == group.urn]  # fmt: skip


def _node_only(plan: Plan, group_name: str, port: int) -> None:
    """The group's only ingress: `port` from the cluster's node security group; no CIDR anywhere."""
    group = next(
        r for r in plan.of_type("aws:ec2/securityGroup:SecurityGroup") if r.inputs.get("name") == group_name
    )
    assert not group.inputs.get("ingress") and not group.inputs.get("egress")
    rules = _security_group_rules(plan, group)
    assert len(rules) == 1, [r.inputs for r in rules]
    rule = rules[0].inputs
    assert (rule["fromPort"], rule["toPort"], rule["ipProtocol"]) == (port, port, "tcp")
    assert rule["referencedSecurityGroupId"].startswith("sg-")
    assert "cidrIpv4" not in rule and "cidrIpv6" not in rule and "prefixListId" not in rule


def test_elasticache_is_multi_az_encrypted_authenticated_and_protected() -> None:
    plan = prod()
    group = only(plan, "aws:elasticache/replicationGroup:ReplicationGroup")
    i = group.inputs
    assert i["automaticFailoverEnabled"] is True and i["multiAzEnabled"] is True
    assert i["numCacheClusters"] >= 2
    assert len(set(i["preferredCacheClusterAzs"])) == i["numCacheClusters"], (
        "primary and replica in different zones"
    )
    assert i["atRestEncryptionEnabled"] is True and i["kmsKeyId"].startswith("arn:aws:kms:")
    assert i["transitEncryptionEnabled"] is True and i["transitEncryptionMode"] == "required"
    assert i["authToken"] == SECRET
    assert i["snapshotRetentionLimit"] >= 7 and i["finalSnapshotIdentifier"]
    assert i["nodeType"] == plan.config.services.redis.node_type
    assert group.protect is True
    subnets = only(plan, "aws:elasticache/subnetGroup:SubnetGroup")
    assert len(subnets.inputs["subnetIds"]) == 3 and subnets.inputs["name"] == i["subnetGroupName"]
    _node_only(plan, f"{plan.config.cluster_name}-redis-sg", 6379)


def test_rds_is_encrypted_multi_az_backed_up_private_and_protected() -> None:
    plan = prod()
    db = only(plan, "aws:rds/instance:Instance")
    i = db.inputs
    assert i["engine"] == "postgres"
    assert i["storageEncrypted"] is True and i["kmsKeyId"].startswith("arn:aws:kms:")
    assert i["multiAz"] is True
    assert i["backupRetentionPeriod"] == plan.config.services.mlflow.backup_retention_days >= 7
    assert i["deletionProtection"] is True
    assert i["skipFinalSnapshot"] is False and i["finalSnapshotIdentifier"]
    assert i["publiclyAccessible"] is False
    assert i["performanceInsightsEnabled"] is True
    assert i["password"] == SECRET
    assert db.protect is True
    params = only(plan, "aws:rds/parameterGroup:ParameterGroup")
    assert {"name": "rds.force_ssl", "value": "1"} in [
        {k: p[k] for k in ("name", "value")} for p in params.inputs["parameters"]
    ]
    _node_only(plan, f"{plan.config.cluster_name}-mlflow-sg", 5432)


def test_artifact_bucket_is_private_versioned_kms_encrypted_tls_only_and_protected() -> None:
    plan = prod()
    bucket = only(plan, "aws:s3/bucket:Bucket")
    assert bucket.protect is True and bucket.inputs.get("forceDestroy") is False
    name = bucket.inputs["bucket"]
    block = only(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                          "restrictPublicBuckets"))  # fmt: skip
    assert block["bucket"] == name
    owner = only(plan, "aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert owner["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    versioning = only(plan, "aws:s3/bucketVersioning:BucketVersioning").inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    sse = only(plan, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    default = sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
    assert default["sseAlgorithm"] == "aws:kms" and default["kmsMasterKeyId"].startswith("arn:aws:kms:")
    lifecycle = only(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs
    assert lifecycle["rules"][0]["noncurrentVersionExpiration"]["noncurrentDays"] > 0
    policy = json.loads(only(plan, "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    deny = policy["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert f"arn:aws:s3:::{name}/*" in deny["Resource"]


def test_mlflow_role_can_touch_only_its_bucket() -> None:
    plan = prod()
    name = only(plan, "aws:s3/bucket:Bucket").inputs["bucket"]
    policies = [r for r in plan.of_type("aws:iam/rolePolicy:RolePolicy") if "mlflow-artifacts" in r.name]
    assert len(policies) == 1
    statements = json.loads(policies[0].inputs["policy"])["Statement"]
    s3 = {s["Sid"]: s for s in statements if any(a.startswith("s3:") for a in _list(s["Action"]))}
    assert sorted(_list(s3["Objects"]["Action"])) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    assert s3["Objects"]["Resource"] == f"arn:aws:s3:::{name}/*"
    assert (
        _list(s3["List"]["Action"]) == ["s3:ListBucket"] and s3["List"]["Resource"] == f"arn:aws:s3:::{name}"
    )
    for statement in statements:
        assert "*" not in _list(statement["Resource"]) and "*" not in _list(statement["Action"])
    role = _by_urn(plan, policies[0].parent or "")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    subjects = [
        v for s in trust["Statement"] for k, v in s["Condition"]["StringEquals"].items() if k.endswith(":sub")
    ]
    assert subjects == ["system:serviceaccount:mlflow:mlflow"]
    sa = find_object(plan, "ServiceAccount", "mlflow", "mlflow")
    assert sa.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(role.inputs["name"])


def test_workloads_get_the_elasticache_endpoint_with_tls() -> None:
    plan = prod()
    host = only(plan, "aws:elasticache/replicationGroup:ReplicationGroup")
    assert host.protect
    for ns in ("serving", "retraining"):
        data = find_object(plan, "ConfigMap", ns, "redis-connection").inputs["data"]
        assert data["REDIS_HOST"] == plan.outputs["redisHost"] and data["REDIS_HOST"].endswith(
            ".cache.amazonaws.com"
        )
        assert data["REDIS_PORT"] == "6379" and data["REDIS_TLS"] == "true"
        assert find_object(plan, "Secret", ns, "redis-auth").inputs["stringData"] == {"password": SECRET}
    assert not [r for r in plan.k8s_objects() if r.inputs.get("kind") == "StatefulSet"
                and r.inputs["metadata"]["name"] in ("redis", "postgres")]  # fmt: skip


def test_mlflow_on_prod_uses_rds_over_tls_and_s3() -> None:
    plan = prod()
    spec = find_object(plan, "Deployment", "mlflow", "mlflow").inputs["spec"]
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    db = only(plan, "aws:rds/instance:Instance")
    uri = env["MLFLOW_BACKEND_STORE_URI"]["value"]
    assert uri.startswith("postgresql://mlflow:$(DB_PASSWORD)@") and "sslmode=require" in uri
    assert db.inputs["identifier"] in uri
    args = container["args"]
    bucket = only(plan, "aws:s3/bucket:Bucket").inputs["bucket"]
    assert args[args.index("--artifacts-destination") + 1] == f"s3://{bucket}/"
    assert spec["replicas"] == plan.config.services.mlflow.replicas == 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert find_object(plan, "PodDisruptionBudget", "mlflow", "mlflow").inputs["spec"]["minAvailable"] == 1
    assert not [r for r in plan.k8s_objects() if r.inputs.get("kind") == "PersistentVolumeClaim"
                and r.inputs["metadata"].get("namespace") == "mlflow"]  # fmt: skip


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value
