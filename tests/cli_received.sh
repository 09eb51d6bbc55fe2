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

# what a report carries reaches the terminal made readable: an escape
# sequence, a line feed or a C1 control in a value, or in the report id,
# is shown as \xNN and cannot redraw the screen or forge a row
cat >"$tmp/hostile.jsonl" <<'EOF'
{"delivery": {"report_id": "r-\u001b]0;owned\u0007", "seq": 1}, "report": {"id": "r-\u001b]0;owned\u0007", "category": "feedback", "originator": "hum-bcu-hull", "handling_level": "OFFICIAL", "summary": "a\u001b[2J\nsummary forged\u009b"}}
EOF
run received council="$tmp/hostile.jsonl"
[ "$status" -eq 0 ] || fail "hostile values: exit $status: $(cat "$tmp/err")"
if LC_ALL=C grep -q $'[\x1b\x07]' "$tmp/out" || LC_ALL=C grep -q $'\xc2\x9b' "$tmp/out"; then
    fail "a control character reached the terminal: $(od -c "$tmp/out" | head)"
fi
grep -qF 'report r-\x1b]0;owned\x07  feedback' "$tmp/out" || fail "id not escaped: $(cat "$tmp/out")"
grep -qF 'a\x1b[2J\x0asummary forged\xc2\x9b' "$tmp/out" ||
    fail "summary not escaped: $(cat "$tmp/out")"
if grep -q '^summary forged' "$tmp/out"; then fail "a forged row: $(cat "$tmp/out")"; fi

# feedback on the agency's own report, which subscribe writes beside its
# deliveries, is no report to show: passed over, not an error
{
    line '"r-1"'
    printf '%s\n' '{"delivery": {"report_id": "r-9", "seq": 2}, "report": null, "feedback": {"report_id": "r-9", "from": "hull-cc", "value": "seen"}}'
} >"$tmp/with-feedback.jsonl"
run received council="$tmp/with-feedback.jsonl"
[ "$status" -eq 0 ] || fail "a feedback line: exit $status: $(cat "$tmp/err")"
grep -q '^report r-1  ' "$tmp/out" || fail "with feedback: no table for r-1: $(cat "$tmp/out")"
if grep -q 'r-9' "$tmp/out"; then fail "a table for the feedback: $(cat "$tmp/out")"; fi

# ids are an originator's own: one id from two originators is two reports,
# two tables, never one report's columns
sed 's/"originator": "hum-bcu-hull"/"originator": "hull-cc"/' "$tmp/good.jsonl" >"$tmp/other.jsonl"
run received police="$tmp/good.jsonl" council="$tmp/other.jsonl"
[ "$(grep -c '^report r-1  ' "$tmp/out")" -eq 2 ] || fail "one table for two reports: $(cat "$tmp/out")"
grep -q '^report r-1  feedback from hull-cc at OFFICIAL$' "$tmp/out" ||
    fail "no table for hull-cc's r-1: $(cat "$tmp/out")"

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "cli_received: ok"
