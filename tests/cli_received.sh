#!/usr/bin/env bash
# `caveat received` on delivery lines as `caveat subscribe` writes them:
# good lines make one table per report; a line that is not a delivery is
# refused with exit 2 and a clear error, never a crash.
# Needs CAVEAT (the built caveat).
set -euo pipefail

: "${CAVEAT:?set CAVEAT to the caveat binary}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# Runs caveat with stdout and stderr captured; sets status to its exit code.
run() {
    status=0
    COLUMNS=100 timeout 10 "$CAVEAT" "$@" >"$tmp/out" 2>"$tmp/err" || status=$?
}

report='{"id": "r-1", "category": "feedback", "originator": "hum-bcu-hull",
 "handling_level": "OFFICIAL", "summary": "seen"}'
line() { # REPORT-ID-JSON
    printf '{"delivery": {"report_id": %s, "seq": 1}, "report": %s}\n' "$1" \
        "$(tr -d '\n' <<<"$report")"
}

line '"r-1"' >"$tmp/good.jsonl"
run received council="$tmp/good.jsonl" school="$tmp/good.jsonl"
[ "$status" -eq 0 ] || fail "good lines: exit $status: $(cat "$tmp/err")"
grep -q '^report r-1  feedback from hum-bcu-hull at OFFICIAL$' "$tmp/out" ||
    fail "no table header for r-1: $(cat "$tmp/out")"
grep -qE '^summary +seen +seen' "$tmp/out" || fail "no summary row: $(cat "$tmp/out")"

# a delivery on a screening feed is marked as such
printf '{"delivery": {"report_id": "r-2", "seq": 2, "feed": "ctio"}, "report": %s}\n' \
    "$(tr -d '\n' <<<"$report")" >"$tmp/feed.jsonl"
run received ctio="$tmp/feed.jsonl" council="$tmp/good.jsonl"
grep -qE '^field +ctio\* +$' "$tmp/out" || fail "feed column not marked: $(cat "$tmp/out")"
grep -qxF "* ctio: through the screening feed 'ctio', not a rule" "$tmp/out" ||
    fail "no feed note: $(cat "$tmp/out")"

# a report_id that is not a string crashed on strdup(NULL)
for id in '[1]' '{"a": 1}' 'null' '7'; do
    line "$id" >"$tmp/bad.jsonl"
    run received council="$tmp/bad.jsonl"
    [ "$status" -eq 2 ] || fail "report_id $id: exit $status, expected 2"
    grep -qF "caveat: $tmp/bad.jsonl: not a delivery line: $tmp/bad.jsonl:1:" "$tmp/err" &&
        grep -qF "error: delivery.report_id: expected a string" "$tmp/err" ||
        fail "report_id $id: error was '$(cat "$tmp/err")'"
done

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "cli_received: ok"
