#!/usr/bin/env bash
# The package as another repo gets it: build the wheel, install it into a fresh virtualenv in a temporary
# directory OUTSIDE this checkout, then plan every example (as the team's own program) and every reference
# stack, and run the policy pack, from there. Nothing may look for this checkout.
# Usage: scripts/wheel_test.sh [UV] [PYTHON]     (the Makefile passes its pinned uv and python)
set -euo pipefail
uv=${1:-uv}
python=${2:-python3.11}
case "$uv" in */*) uv=$(cd "$(dirname "$uv")" && pwd)/$(basename "$uv") ;; esac  # steps below change directory
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

# Workload images build from the Dockerfiles and sources inside the installed package, tagged with the same
# content hash as this checkout's workloads/ (the wheel carries the same files).
"$work/venv/bin/python" -c '
import json, sys
from pathlib import Path
from mlops_infra.components.images import context_hash
images = [r for r in json.load(open("prod.json"))["resources"] if r["type"] == "docker:index/image:Image"]
assert images, "prod plans no workload image"
for r in images:
    context = Path(r["inputs"]["build"]["context"])
    assert context.is_relative_to(sys.prefix), f"{context}: not inside the installed package"
    want = context_hash(Path(sys.argv[1]) / "workloads" / context.name)
    got = r["inputs"]["imageName"].rsplit(":", 1)[1]
    assert got == want, f"{context.name}: tag {got} from the wheel, {want} from the checkout"
    print(f"image {context.name}: built from the installed package, tag {got} as in the checkout")
' "$repo"

# The policy pack as an organisation publishes it: its own directory and virtualenv, the wheel from PyPI's
# place (here: the dist directory), started the way the Pulumi engine starts it (first stdout line: a port).
"$python" "$repo/scripts/policy_pack_bundle.py" "$work/dist" "$work/policy-pack"
"$uv" venv --quiet --python "$python" "$work/policy-pack/venv"
"$uv" pip install --quiet --python "$work/policy-pack/venv/bin/python" --find-links "$work/dist" \
  -r "$work/policy-pack/requirements.txt"
cd "$work/policy-pack"
port=$(timeout 60 venv/bin/python __main__.py | head -n 1 || true)
case "$port" in
  ''|*[!0-9]*) echo "the published policy pack did not start (got: $port)" >&2; exit 1 ;;
esac
echo "policy pack served on port $port from its own virtualenv"
echo "wheel test passed: $(ls "$work"/dist)"
