#!/usr/bin/env bash
# Type-checks every dashboard of dashboards/json/ against Grafana's own published dashboard schema
# (npm @grafana/schema, the version of the Grafana image in docker-compose.yml) with `tsc --strict`:
# each dashboard becomes `const d: GrafanaDashboard = <its JSON>;` (checks/schema/dashboard.ts says
# what GrafanaDashboard adds to the schema's Dashboard, and why). A field the schema does not know,
# a missing required field or a value of the wrong type fails. Run by scripts/test.sh.
#
# Needs node and npm (scripts/test.sh installs Debian's nodejs and npm when missing). The exact
# versions of checks/schema/package-lock.json are installed into checks/schema/node_modules when
# they are not there yet.
set -euo pipefail
cd "$(dirname "$0")/../checks/schema"

installed() { # package version
  [ "$(node -p "require('./node_modules/$1/package.json').version" 2>/dev/null)" = "$2" ]
}
pinned() { # package: its version in package.json
  node -p "require('./package.json').devDependencies['$1']"
}
if ! installed typescript "$(pinned typescript)" || ! installed @grafana/schema "$(pinned @grafana/schema)"; then
  echo "-- npm ci (checks/schema)"
  npm ci --no-audit --no-fund --loglevel=error
fi

rm -rf generated
mkdir generated
count=0
for json in ../../dashboards/json/*.json; do
  name=$(basename "$json" .json)
  # The JSON starts on line 2, so line N of the .ts file is line N-1 of the dashboard.
  {
    printf "import type { GrafanaDashboard } from '../dashboard';\nconst d: GrafanaDashboard = "
    cat "$json"
    printf ";\nexport default d;\n"
  } >"generated/$name.ts"
  count=$((count + 1))
done
[ "$count" -gt 0 ] || { echo "no dashboards/json/*.json to check" >&2; exit 1; }

echo "-- tsc --noEmit --strict: $count dashboards against @grafana/schema $(pinned @grafana/schema)"
if ! node_modules/.bin/tsc --noEmit --strict -p tsconfig.json; then
  echo "check-dashboards-schema: a dashboard is not what Grafana's schema accepts (line N of" \
    "checks/schema/generated/<uid>.ts is line N-1 of dashboards/json/<uid>.json); fix" \
    "checks/src/dashboards/ and regenerate" >&2
  exit 1
fi
echo "check-dashboards-schema: all $count dashboards type-check"
