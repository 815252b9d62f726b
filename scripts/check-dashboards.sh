#!/usr/bin/env bash
# Structural check of the Grafana dashboards (dashboards/): valid JSON, stable uids, datasource
# variable, layout, descriptions, units, and every PromQL metric known to the exporter's METRICS
# or the recording rules in alerts/rules. The live-query test is tests/it/dashboards.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run -q -p p2p-checks -- dashboards
