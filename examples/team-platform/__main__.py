"""The whole platform from a team's own stack config: the same program this repository runs, fed by the
`mlops-platform:*` keys of the team's `Pulumi.<stack>.yaml` (validated before anything is declared)."""

from __future__ import annotations

from mlops_infra.platform.stack import program as main

if __name__ == "__main__":  # the Pulumi engine runs this file as __main__
    main()
