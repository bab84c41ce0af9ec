#!/usr/bin/env bash
# Scan the Kubernetes manifests every stack renders with Checkov, a second opinion next to our own
# policy pack. Checkov runs from its own pinned virtualenv (.venv-checkov/) so its many dependencies never
# touch the project's locked environment. Skips, each with its reason: policies/checkov.yaml.
# Exit code: Checkov's (non-zero when a check fails), or the render's on invalid config.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION="3.3.30"
VENV=".venv-checkov"
PYTHON="${PYTHON:-python3}"

if [[ ! -x "$VENV/bin/checkov" ]] || ! "$VENV/bin/python" -m pip show checkov 2>/dev/null | grep -qx "Version: $CHECKOV_VERSION"; then
  echo "checkov: installing checkov==$CHECKOV_VERSION into $VENV" >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for file in stacks/Pulumi.*.yaml; do
  stack="$(basename "$file" .yaml)"
  stack="${stack#Pulumi.}"
  .venv/bin/mlops-infra render "$stack" --out "$out/$stack" >/dev/null
done

LOG_LEVEL=ERROR "$VENV/bin/checkov" -d "$out" --framework kubernetes --compact --quiet \
  --config-file policies/checkov.yaml --skip-download
