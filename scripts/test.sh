#!/usr/bin/env bash
# Every check and test of the repository, as CI runs them. Installs what the tests need when it is
# missing (Prometheus, promtool, Alertmanager, amtool, docker-compose, openssl, and node and npm
# for the dashboards' schema check, from Debian's packages).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pair in promtool:prometheus prometheus:prometheus amtool:prometheus-alertmanager \
  prometheus-alertmanager:prometheus-alertmanager docker-compose:docker-compose \
  openssl:openssl node:nodejs npm:npm; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${missing[@]}" | sort -u)
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
for check in scripts/check-*.sh; do
  [ -e "$check" ] || continue
  echo "== $check"
  bash "$check"
done
# The last crate cargo tests is a doc-test run with no tests; close on one line that counts them all.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace 2>&1 | tee "$log" || status=$?
awk '/^test result:/ {
  for (i = 2; i <= NF; i++) {
    if ($i ~ /^passed;?$/) passed += $(i - 1)
    if ($i ~ /^failed;?$/) failed += $(i - 1)
  }
} END { printf "%d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
