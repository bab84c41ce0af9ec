#!/usr/bin/env bash
# The package as another repo gets it: build the wheel, install it into a fresh virtualenv in a temporary
# directory OUTSIDE this checkout, then plan every example (as the team's own program) and every reference
# stack, and run the policy pack, from there. Nothing may look for this checkout.
# Usage: scripts/wheel_test.sh [UV] [PYTHON]     (the Makefile passes its pinned uv and python)
set -euo pipefail
uv=${1:-uv}
python=${2:-python3.11}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/mlops-infra-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$uv" build --quiet --wheel --out-dir "$work/dist" "$repo"
"$uv" venv --quiet --python "$python" "$work/venv"
"$uv" pip install --quiet --python "$work/venv/bin/python" "$work"/dist/*.whl
cli="$work/venv/bin/mlops-infra"
"$cli" --version

for example in "$repo"/examples/*/; do
  name=$(basename "$example")
  cp -r "$example" "$work/$name"
  stack=$(ls "$work/$name"/Pulumi.*.yaml 2>/dev/null | grep -v '/Pulumi.yaml$' | head -n 1 || true)
  (cd "$work/$name" && "$cli" plan --program __main__.py:main ${stack:+"$stack"} --json > plan.json)
  echo "example $name: $(python3 -c "import json; print(len(json.load(open('$work/$name/plan.json'))['resources']))" ) resources"
done

mkdir -p "$work/stacks-only/stacks"
cp "$repo"/stacks/Pulumi.*.yaml "$work/stacks-only/stacks/"
cd "$work/stacks-only"
for file in stacks/Pulumi.*.yaml; do
  stack=$(basename "$file" .yaml); stack=${stack#Pulumi.}
  "$cli" plan "$stack" --json > "$stack.json"
  echo "stack $stack: $(python3 -c "import json; print(len(json.load(open('$stack.json'))['resources']))") resources"
done
"$cli" check
echo "wheel test passed: $(ls "$work"/dist)"
