#!/usr/bin/env bash
# `caveat policy diff OLD NEW` exits like diff(1): 0 when nothing differs,
# 1 when anything does (a retention period alone included), 2 for bad
# input; it ends with a summary line and warns when the version was not
# raised. Needs CAVEAT and CAVEAT_SOURCE_DIR.
set -euo pipefail

. "$(dirname "$0")/lib_cli.sh"
: "${CAVEAT_SOURCE_DIR:?set CAVEAT_SOURCE_DIR to the repository root}"
POLICY="$CAVEAT_SOURCE_DIR/examples/policy.yaml"

run policy diff "$POLICY" "$POLICY"
expect_status 0 "identical policies"
[ ! -s "$tmp/out" ] || fail "identical policies printed: $(cat "$tmp/out")"
[ ! -s "$tmp/err" ] || fail "identical policies warned: $(cat "$tmp/err")"

sed 's/^  community_tension: 1y$/  community_tension: 2y/' "$POLICY" >"$tmp/retention.yaml"
run policy diff "$POLICY" "$tmp/retention.yaml"
expect_status 1 "a retention-only change"
expect_line "$tmp/out" "~ retention community_tension: 1y -> 2y" "the retention line"
[ "$(tail -n 1 "$tmp/out")" = "1 change: retention 1" ] ||
    fail "summary line is '$(tail -n 1 "$tmp/out")'"
[ "$(wc -l <"$tmp/out")" -eq 2 ] || fail "more than the change and the summary: $(cat "$tmp/out")"
expect_line "$tmp/err" "caveat: warning: $tmp/retention.yaml: version 7 was not raised \
($POLICY has 7)" "version warning"

sed 's/^version: 7$/version: 8/' "$tmp/retention.yaml" >"$tmp/raised.yaml"
run policy diff "$POLICY" "$tmp/raised.yaml"
expect_status 1 "a change with the version raised"
[ ! -s "$tmp/err" ] || fail "a raised version warned: $(cat "$tmp/err")"
expect_line "$tmp/out" "2 changes: protocol 1, retention 1" "summary with the version"

# a restriction alone: no rule sends to the administrator, so the change
# is the restriction's line, which counts and sets the exit status
sed '/^  - name: administrators-receive-no-reports$/,$s/^    to_types: \[admin\]$/    to_types: [admin, education]/' \
    "$POLICY" >"$tmp/restricted.yaml"
run policy diff "$POLICY" "$tmp/restricted.yaml"
expect_status 1 "a restriction-only change"
expect_line "$tmp/out" "~ restriction administrators-receive-no-reports: to_types [admin] \
to_agencies [] -> to_types [admin, education] to_agencies []" "the restriction line"
[ "$(tail -n 1 "$tmp/out")" = "$(($(wc -l <"$tmp/out") - 1)) changes: restrictions 1, fields \
$(($(wc -l <"$tmp/out") - 2))" ] || fail "summary line is '$(tail -n 1 "$tmp/out")'"

# bad input: 2, whatever differs
printf 'protocol: x\n' >"$tmp/broken.yaml"
run policy diff "$POLICY" "$tmp/broken.yaml"
expect_status 2 "a broken NEW"
run policy diff "$tmp/missing.yaml" "$POLICY"
expect_status 2 "a missing OLD"
run policy diff "$POLICY"
expect_status 2 "one file"

run help policy
grep -q "exit 0 when nothing differs, 1 when anything does" "$tmp/out" ||
    fail "help does not give diff's exit codes"

finish cli_policy_diff
