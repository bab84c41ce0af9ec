"""Cloud preconditions of a first `pulumi up`: what the cloud must already hold for a resource to be created.

Mocks accept any reference, a fresh account or project does not: a key policy naming a role that does not
exist yet, a resource whose API is not enabled, an image pushed to a repository nothing creates. Each rule
checks that the plan itself declares the thing (or that it is one the cloud always has) and that the resource
needing it is ordered after it.
"""

from __future__ import annotations

from mlops_policies.model import Rule
from mlops_policies.preconditions.gcp_apis import RULE as GCP_APIS
from mlops_policies.preconditions.image_pushes import RULE as IMAGE_PUSHES
from mlops_policies.preconditions.principals import RULE as PRINCIPALS

RULES: list[Rule] = [PRINCIPALS, GCP_APIS, IMAGE_PUSHES]
