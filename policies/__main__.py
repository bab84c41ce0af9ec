"""CrossGuard entry point: builds the policy pack and nothing else (constructing PolicyPack blocks).

`pulumi preview --policy-pack policies --policy-pack-config policies/config/prod.json`
The rules live in `mlops_policies` so `mlops-infra check` runs the very same functions offline.
"""

from pulumi_policy import PolicyPack

from mlops_policies.pack import DEFAULT_ENFORCEMENT, PACK_NAME, policies

PolicyPack(name=PACK_NAME, enforcement_level=DEFAULT_ENFORCEMENT, policies=policies())
