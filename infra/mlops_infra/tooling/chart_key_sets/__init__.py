"""Value key sets of the pinned Helm charts, one JSON file per chart and version (see mlops_infra.tooling.chart_keys)."""
