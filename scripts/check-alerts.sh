#!/usr/bin/env bash
# Checks of alerts/ with the real tools (promtool 2.42, amtool 0.25), as CI runs them
# (scripts/test.sh runs every scripts/check-*.sh):
#   0. p2p-check rules: alerts/rules/*.yml are, byte for byte, what alerts/thresholds.toml
#      generates (checks/src/rules/);
#   1. promtool check rules, and promtool test rules on alerts/tests/*.test.yml;
#   2. amtool check-config on alerts/alertmanager.yml;
#   3. amtool config routes test: every alert of alerts/rules/alerts.yml, with its severity,
#      reaches exactly the expected receivers (critical: PagerDuty and the page webhook;
#      warning and anything else: the ticket webhook);
#   4. runbook lint: every alert has summary, description and runbook_url, the URL points into
#      alerts/runbook.md ([rules] runbook_url of alerts/thresholds.toml), and its anchor is a
#      heading there (GitHub's anchor rules).
set -euo pipefail
cd "$(dirname "$0")/.."

rules=(alerts/rules/*.yml)
runbook=alerts/runbook.md
am_config=alerts/alertmanager.yml
# The one setting this script needs from thresholds.toml, a single-line string.
runbook_base=$(sed -n 's/^runbook_url = "\(.*\)"$/\1/p' alerts/thresholds.toml)
[ -n "$runbook_base" ] || { echo "alerts/thresholds.toml has no [rules] runbook_url" >&2; exit 1; }
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

echo "-- p2p-check rules"
cargo run -q -p p2p-checks -- rules

echo "-- promtool check rules"
promtool check rules "${rules[@]}"

echo "-- promtool test rules"
promtool test rules alerts/tests/*.test.yml

echo "-- amtool check-config"
# amtool 0.25 does not open routing_key_file (Alertmanager reads it when it sends), so the
# shipped config checks as is, with no secret on this machine.
amtool check-config "$am_config"

# Every alerting rule as "name severity summary? description? runbook_url", one per line. The
# rule files are our own, written one key per line; this reads that shape and fails loudly if an
# alert has no severity, rather than parse YAML in general.
alert_table() {
  awk '
    function flush() {
      if (name != "") print name, (severity == "" ? "-" : severity), summary, description, url
      name = ""; severity = ""; summary = 0; description = 0; url = "-"
    }
    /^[[:space:]]*- (alert|record|name):/ { flush() }
    /^[[:space:]]*- alert:/ { name = $3 }
    name != "" && /^[[:space:]]+severity:/ { severity = $2 }
    name != "" && /^[[:space:]]+summary:/ { summary = 1 }
    name != "" && /^[[:space:]]+description:/ { description = 1 }
    name != "" && /^[[:space:]]+runbook_url:/ { url = $2 }
    END { flush() }
  ' "$@"
}

# GitHub's anchor for a Markdown heading: lower case, drop every character that is not a
# letter, digit, space, hyphen or underscore, spaces become hyphens; a repeated anchor gets -1,
# -2, ... appended.
runbook_anchors() {
  grep -E '^#{1,6} ' "$1" \
    | sed -E 's/^#+ +//; s/ +#* *$//' \
    | tr '[:upper:]' '[:lower:]' \
    | sed -E 's/[^a-z0-9 _-]//g; s/ /-/g' \
    | awk '{ n = seen[$0]++; print (n ? $0 "-" n : $0) }'
}

table=$(alert_table "${rules[@]}")
[ -n "$table" ] || fail "no alerting rules found in ${rules[*]}"
anchors=$(runbook_anchors "$runbook")

echo "-- amtool config routes test, one case per alert"
expected_receivers() {
  case "$1" in
    critical) echo "pagerduty,page-webhook" ;;
    *) echo "ticket" ;;
  esac
}
route_case() {
  local expected=$1
  shift
  local got
  got=$(amtool config routes test --config.file="$am_config" "$@" 2>/dev/null || true)
  if [ "$got" = "$expected" ]; then
    echo "ok   $* -> $got"
  else
    fail "route $*: expected receivers '$expected', got '$got'"
  fi
}
while read -r name severity _ _ _; do
  [ "$severity" != "-" ] || { fail "$name has no severity label"; continue; }
  route_case "$(expected_receivers "$severity")" alertname="$name" severity="$severity" instance=node-1:9730 job=p2p-exporter
done <<<"$table"
# Whatever arrives without a known severity still becomes a ticket: nothing is dropped.
route_case ticket alertname=SomethingElse instance=node-1:9730
route_case ticket alertname=SomethingElse severity=info instance=node-1:9730

echo "-- runbook lint"
while read -r name _ summary description url; do
  [ "$summary" = 1 ] || fail "$name has no summary annotation"
  [ "$description" = 1 ] || fail "$name has no description annotation"
  if [ "$url" = "-" ]; then
    fail "$name has no runbook_url annotation"
    continue
  fi
  case "$url" in
    "$runbook_base#"*) ;;
    *) fail "$name: runbook_url $url does not point into $runbook_base"; continue ;;
  esac
  anchor=${url#*#}
  if grep -qxF -- "$anchor" <<<"$anchors"; then
    echo "ok   $name -> $runbook#$anchor"
  else
    fail "$name: $runbook has no heading whose anchor is #$anchor"
  fi
done <<<"$table"

if [ "$failures" -gt 0 ]; then
  echo "check-alerts: $failures failure(s)" >&2
  exit 1
fi
echo "check-alerts: all checks passed"
