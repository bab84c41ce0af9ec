#!/usr/bin/env bash
# Print the CHANGELOG.md section of one version (`## 0.2.0 ...` up to the next `## `); fail if there is none.
set -euo pipefail
version=${1:?usage: scripts/release_notes.sh VERSION}
notes=$(awk -v v="$version" '$0 ~ "^## "v"( |$)" {on=1; next} /^## / {on=0} on' "$(dirname "$0")/../CHANGELOG.md")
if [ -z "$notes" ]; then
  echo "CHANGELOG.md has no section for $version" >&2
  exit 1
fi
printf '%s\n' "$notes"
