#!/usr/bin/env bash
# `caveat policy views --format json`: one JSON object, each agency's view
# as `policy explain` gives it; a view that went out on a screening feed
# says so there, and the text table marks its column.
# Needs CAVEAT and CAVEAT_SOURCE_DIR; the JSON is read back with python3.
set -euo pipefail

. "$(dirname "$0")/lib_cli.sh"
: "${CAVEAT_SOURCE_DIR:?set CAVEAT_SOURCE_DIR to the repository root}"
POLICY="$CAVEAT_SOURCE_DIR/examples/policy.yaml"
REPORT="$CAVEAT_SOURCE_DIR/examples/reports/radicalisation_concern.json"

run policy views "$POLICY" --report "$REPORT" --format json
expect_status 0 "views --format json"
[ "$(wc -l <"$tmp/out")" -eq 1 ] || fail "json is not one line when piped"
cp "$tmp/out" "$tmp/views.json"
run policy explain "$POLICY" --report "$REPORT" --to hum-ctio-hull
cp "$tmp/out" "$tmp/explain.json"
if command -v python3 >/dev/null; then
    python3 - "$tmp/views.json" "$tmp/explain.json" <<'PY' || fail "views json: $(cat "$tmp/views.json")"
import json, sys
views = json.load(open(sys.argv[1]))
explain = json.load(open(sys.argv[2]))
assert views["report"]["category"] == "radicalisation_concern", views["report"]
agencies = views["agencies"]
assert len(agencies) == 12, list(agencies)
ctio = agencies["hum-ctio-hull"]
assert ctio["delivered"] and ctio["feed"] == "ctio", ctio
assert ctio == explain, "views and explain differ for hum-ctio-hull"
assert agencies["hull-cc"]["delivered"] and agencies["hull-cc"]["feed"] is None
assert not agencies["hum-bcu-hull"]["delivered"]
assert "report" not in agencies["hum-bcu-hull"]
assert any("screening prevent-screen" in f["why"] for f in ctio["fields"])
PY
fi

COLUMNS=200 run policy views "$POLICY" --report "$REPORT"
expect_status 0 "views as a table"
grep -qE '^field .* hum-ctio-hull\* ' "$tmp/out" || fail "feed column not marked: $(head -2 "$tmp/out")"
grep -qE '^field .* hum-sb ' "$tmp/out" || fail "rule column marked: $(head -2 "$tmp/out")"
expect_line "$tmp/out" "* hum-ctio-hull: through the screening feed 'ctio', not a rule" "feed note"

run policy views "$POLICY" --report "$REPORT" --format xml
expect_status 2 "an unknown format"

finish cli_policy_views
