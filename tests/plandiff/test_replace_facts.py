"""The replace-on-change fact table (tooling/replace_facts.json) and the script that extracts it from the
providers' sources (scripts/replace_facts.py): every type the stacks declare is covered or listed as not,
every AWS/GCP path exists in the pinned SDK, the table holds the facts the providers document, and the
extractor reads the Go constructs it depends on (shown on small sources, no network)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from types import ModuleType
from typing import Any

import pytest

from mlops_infra.tooling.plan_diff import replace_facts, replaces

from plan_support import REFERENCE_STACKS, ROOT, reference_plan


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "replace_facts_script", ROOT / "scripts" / "replace_facts.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_declared_type_is_covered_or_listed_as_uncovered() -> None:
    facts = replace_facts()
    uncovered = {u.split(" ", 1)[0] for u in facts["uncovered"]}
    declared = {r.type for s in REFERENCE_STACKS for r in reference_plan(s).resources if r.custom}
    missing = declared - set(facts["types"]) - uncovered
    assert not missing, f"types without replace facts: {sorted(missing)}; run scripts/replace_facts.py"
    assert {"kubernetes", "gcp", "aws"} <= set(facts["sources"])


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _resolves(token: str, path: str) -> bool:
    """Walk `path` through the pinned SDK: the resource's inputs, then the input types they take."""
    package, module, kind = token.split(":")
    mod = importlib.import_module(f"pulumi_{package}.{module.split('/')[0]}")
    cls: Any = getattr(mod, kind)
    for segment in path.split("."):
        if cls is None:
            return False
        target = getattr(cls, "_internal_init", None) or cls.__init__
        params = inspect.signature(target).parameters
        if _snake(segment) not in params:
            return False
        nested = re.search(r"ForwardRef\('(\w+Args)'\)", repr(params[_snake(segment)].annotation))
        cls = getattr(mod, nested.group(1), None) if nested else None
    return True


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_every_cloud_path_is_an_input_of_the_pinned_sdk(cloud: str) -> None:
    facts = replace_facts()
    wrong = [
        (token, path)
        for table in ("types", "conditional")
        for token, paths in facts[table].items()
        if token.startswith(f"{cloud}:")
        for path in paths
        if not _resolves(token, path)
    ]
    assert not wrong


@pytest.mark.parametrize(
    ("type_", "path", "expected"),
    [
        ("kubernetes:apps/v1:Deployment", "spec.selector.matchLabels.app", True),
        ("kubernetes:apps/v1:Deployment", "spec.template.spec.containers[0].image", False),
        ("kubernetes:apps/v1:Deployment", "metadata.name", True),
        ("kubernetes:core/v1:Service", "spec.clusterIP", True),
        ("kubernetes:core/v1:Service", "spec.ports[0].port", False),
        ("kubernetes:core/v1:PersistentVolumeClaim", "spec.storageClassName", True),
        ("kubernetes:core/v1:PersistentVolumeClaim", "spec.resources.requests.storage", False),
        ("kubernetes:apps/v1:StatefulSet", "spec.volumeClaimTemplates[0].spec", True),
        ("kubernetes:core/v1:ConfigMap", "data.rules.yaml", True),
        ("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "roleRef.name", True),
        ("kubernetes:argoproj.io/v1alpha1:Rollout", "spec.replicas", False),
        ("kubernetes:helm.sh/v3:Release", "values.replicaCount", False),
        ("kubernetes:helm.sh/v3:Release", "name", True),
        ("aws:eks/nodeGroup:NodeGroup", "instanceTypes[0]", True),
        ("aws:eks/nodeGroup:NodeGroup", "scalingConfig.maxSize", False),
        ("aws:ec2/subnet:Subnet", "cidrBlock", True),
        ("aws:ec2/launchTemplate:LaunchTemplate", "instanceType", False),
        ("aws:rds/instance:Instance", "instanceClass", False),
        ("aws:rds/instance:Instance", "storageEncrypted", True),
        ("gcp:container/nodePool:NodePool", "nodeConfig.spot", True),
        ("gcp:container/nodePool:NodePool", "nodeConfig.machineType", False),
        ("gcp:container/nodePool:NodePool", "autoscaling.maxNodeCount", False),
        ("gcp:container/cluster:Cluster", "nodePools[0].name", True),
        ("gcp:sql/databaseInstance:DatabaseInstance", "settings.tier", False),
        ("aws:sqs/queue:Queue", "name", True),  # schema in a `var ( ... )` group
        ("aws:sqs/queue:Queue", "messageRetentionSeconds", False),
    ],
)
def test_the_table_holds_the_providers_facts(type_: str, path: str, expected: bool) -> None:
    assert replaces(type_, path) is expected


def test_the_kubernetes_providers_keep_configmaps_and_secrets_immutable() -> None:
    """The ConfigMap/Secret data facts hold under the provider's defaults: no provider here changes them."""
    for stack in REFERENCE_STACKS:
        for provider in reference_plan(stack).of_type("pulumi:providers:kubernetes"):
            assert not {"enableConfigMapMutable", "enableSecretMutable"} & set(provider.inputs), stack


DIFF_GO = """
package provider
var forceNew = _groups{
    "apps": _versions{"v1": _kinds{"Deployment": deployment}},
    "core": core,
}
var core = _versions{"v1": _kinds{"Service": properties{".spec.clusterIP"}, "Pod": append(properties{".spec.nodeName"}, containerForceNewProperties(".spec.containers[*]")...)}}
var deployment = append(properties{".spec.selector"}, labelSelectorForceNewProperties(".spec.selector")...)
func metadataForceNewProperties(prefix string) properties { return properties{prefix + ".name", prefix + ".namespace"} }
func containerForceNewProperties(prefixes ...string) properties {
    var props properties
    for _, prefix := range prefixes {
        props = append(props, properties{prefix + ".image"}...)
    }
    return props
}
func labelSelectorForceNewProperties(prefix string) properties { return properties{prefix + ".matchLabels"} }
"""


def test_the_kubernetes_table_is_evaluated_from_diff_go() -> None:
    script = _script()
    table = script.GoTable(DIFF_GO)
    force_new = table.value(*table.vars["forceNew"], {})
    assert force_new["apps"]["v1"]["Deployment"] == [".spec.selector", ".spec.selector.matchLabels"]
    assert force_new["core"]["v1"]["Pod"] == [".spec.nodeName", ".spec.containers[*].image"]
    assert table.helper("metadataForceNewProperties", [".metadata"]) == [
        ".metadata.name",
        ".metadata.namespace",
    ]


TF_GO = """
package things
// @SDKResource("aws_thing", name="Thing")
func resourceThing() *schema.Resource {
    return &schema.Resource{
        Schema: map[string]*schema.Schema{
            names.AttrName: {Type: schema.TypeString, Required: true, ForceNew: true},
            "size": {Type: schema.TypeInt, Optional: true},
            "zones": {Type: schema.TypeList, ForceNew: true, Elem: &schema.Schema{Type: schema.TypeString}},
            "config": {
                Type: schema.TypeList, MaxItems: 1, ForceNew: true,
                Elem: &schema.Resource{Schema: map[string]*schema.Schema{
                    "image_type": {Type: schema.TypeString, Optional: true},
                    "spot": {Type: schema.TypeBool, Optional: true, ForceNew: true},
                }},
            },
            "shared": sharedSchema(),
            "policy": policySchema,
        },
    }
}
func sharedSchema() *schema.Schema {
    return &schema.Schema{Type: schema.TypeString, Optional: true, ForceNew: true}
}
var policySchema = &schema.Schema{Type: schema.TypeString, Optional: true}
"""

FRAMEWORK_GO = """
package things
func (r *ruleResource) Schema(ctx context.Context, req resource.SchemaRequest, response *resource.SchemaResponse) {
    response.Schema = schema.Schema{
        Attributes: map[string]schema.Attribute{
            "group_id": schema.StringAttribute{Required: true, PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
            "cidr": schema.StringAttribute{Optional: true, PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplaceIf(f, "", "")}},
            "description": schema.StringAttribute{Optional: true},
        },
    }
}
"""


def test_terraform_schemas_sdkv2_and_framework() -> None:
    script = _script()
    pkg = script.Package({"AttrName": "name"})
    span = pkg.add(TF_GO)
    # A ForceNew block replaces only when added or removed: its own ForceNew fields are the facts.
    assert sorted(pkg.resource(TF_GO, span, "aws_thing")) == ["config.spot", "name", "shared", "zones"]
    pkg = script.Package({})
    span = pkg.add(FRAMEWORK_GO)
    # RequiresReplaceIf depends on the values: not a fact of the table.
    assert pkg.resource(FRAMEWORK_GO, span, "aws_rule") == ["groupId"]
    assert script.conditional('customdiff.ForceNewIfChange("ip_cidr_range", f)') == ["ipCidrRange"]


def test_a_schema_declared_in_a_var_group_is_followed() -> None:
    """terraform-provider-aws declares some schemas in `var ( x = map[...]{...} )` (sqs queueSchema)."""
    script = _script()
    go = """
package sqs
var (
\tqueueSchema = map[string]*schema.Schema{
\t\t"fifo_queue": {Type: schema.TypeBool, ForceNew: true},
\t\t"delay_seconds": {Type: schema.TypeInt, Optional: true},
\t}
\tother = 1
)
// @SDKResource("aws_sqs_queue", name="Queue")
func ResourceQueue() *schema.Resource {
\treturn &schema.Resource{Schema: queueSchema}
}
"""
    pkg = script.Package({})
    span = pkg.add(go)
    assert pkg.resource(go, span, "aws_sqs_queue") == ["fifoQueue"]
    assert set(pkg.vars) == {"queueSchema", "other"}
