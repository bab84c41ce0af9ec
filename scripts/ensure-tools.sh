#!/usr/bin/env bash
# Installs the system tools the tests and `make graphs` run for real (promtool, redis-server, wrk, Graphviz's
# dot) when they are missing.
# Needs root or sudo with apt (Debian/Ubuntu); elsewhere it says what to install and stops.
set -euo pipefail
need=()
for pair in promtool:prometheus redis-server:redis-server wrk:wrk dot:graphviz; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing tools: install the packages ${need[*]} (Debian names) and rerun" >&2
  exit 1
fi
echo "installing ${need[*]} (Debian packages) ..." >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
