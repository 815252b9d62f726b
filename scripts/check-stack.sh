#!/usr/bin/env bash
# Offline checks of the compose stack: there is no Docker engine on these machines, so nothing is
# pulled or started. Needs docker-compose (Debian's 1.29), promtool and openssl on PATH
# (scripts/test.sh installs them). The structural checks (pinned images, healthchecks, mounted files exist, only UI
# ports, the collector's pipelines, ports and names agreeing across files) are Rust tests:
# tests/it/stack/, run here too.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Values the operator must supply; dummies are enough for validation.
: >"$tmp/pagerduty_routing_key"
export GRAFANA_ADMIN_PASSWORD=check-only
export PAGERDUTY_ROUTING_KEY_FILE="$tmp/pagerduty_routing_key"
export NODE_IMAGE=registry.example/p2p-node:1.0.0
export NODE_HEALTHCHECK=true

echo "-- docker-compose config: docker-compose.yml"
docker-compose -f docker-compose.yml config -q
echo "-- docker-compose config: docker-compose.yml + docker-compose.node.yml"
docker-compose -f docker-compose.yml -f docker-compose.node.yml config -q

for profile in agent central; do
  echo "-- docker-compose config: docker-compose.push.yml --profile $profile"
  docker-compose -f docker-compose.push.yml --profile "$profile" config -q
done

# The same refusals an operator gets, so the required variables stay required.
for var in GRAFANA_ADMIN_PASSWORD PAGERDUTY_ROUTING_KEY_FILE; do
  if (unset "$var"; docker-compose -f docker-compose.yml config -q 2>/dev/null); then
    echo "docker-compose.yml starts without $var: it must be required" >&2
    exit 1
  fi
done

# promtool on the real prometheus.yml, except rule_files: its path exists only inside the
# container (/etc/prometheus/rules, mounted from alerts/rules), so a copy points them at the
# repository's alerts/rules/*.yml and promtool checks those rule files too.
echo "-- promtool check config (rule_files -> alerts/rules/*.yml)"
rules_dir="$(pwd)/alerts/rules"
if ! compgen -G "$rules_dir/*.yml" >/dev/null; then
  echo "no alerts/rules/*.yml: Prometheus would run without rules" >&2
  exit 1
fi
sed "s#/etc/prometheus/rules/#${rules_dir}/#" prometheus/prometheus.yml >"$tmp/prometheus.yml"
grep -q "$rules_dir/\*.yml" "$tmp/prometheus.yml" # the rewrite happened
promtool check config "$tmp/prometheus.yml"

# Push (docs/push.md): the agent's config in agent mode, the central one like prometheus.yml, and
# the central web config with a throwaway certificate at the paths it names.
echo "-- promtool check config --agent prometheus/agent.yml"
promtool check config --agent prometheus/agent.yml
echo "-- promtool check config (central.yml, rule_files -> alerts/rules/*.yml)"
sed "s#/etc/prometheus/rules/#${rules_dir}/#" prometheus/central.yml >"$tmp/central.yml"
grep -q "$rules_dir/\*.yml" "$tmp/central.yml"
promtool check config "$tmp/central.yml"
echo "-- promtool check web-config prometheus/central-web.yml"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=check-only \
  -keyout "$tmp/central.key" -out "$tmp/central.crt" 2>/dev/null
sed "s#/etc/prometheus/secrets/#$tmp/#" prometheus/central-web.yml >"$tmp/central-web.yml"
grep -q "$tmp/central.key" "$tmp/central-web.yml"
promtool check web-config "$tmp/central-web.yml"

echo "-- structural checks (tests/it/stack/)"
cargo test -q -p p2p-observability --test it stack::
