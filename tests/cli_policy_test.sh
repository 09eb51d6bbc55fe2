#!/usr/bin/env bash
# `caveat policy check` and `caveat policy test` on the example protocol:
# the example cases pass, a wrong expectation fails with its position, bad
# input exits 2 with FILE:LINE:COL, and a broken policy is refused.
# Needs CAVEAT (the built caveat) and CAVEAT_SOURCE_DIR (the repository).
set -euo pipefail

: "${CAVEAT:?set CAVEAT to the caveat binary}"
: "${CAVEAT_SOURCE_DIR:?set CAVEAT_SOURCE_DIR to the repository root}"
EXAMPLES="$CAVEAT_SOURCE_DIR/examples"
POLICY="$EXAMPLES/policy.yaml"
CASES="$EXAMPLES/CASES.yaml"

. "$(dirname "$0")/lib_cli.sh"

# Line and 1-based column of the first occurrence of TEXT in FILE, outside
# comments.
position_of() {
    awk -v text="$2" '!/^ *#/ && index($0, text) { print NR ":" index($0, text); exit }' "$1"
}

# --- the example policy loads, and every example case passes ---------------

run policy check "$POLICY"
expect_status 0 "policy check of the example"
grep -qF "$POLICY: ok: protocol humber-prevent version 7" "$tmp/out" ||
    fail "policy check printed: $(cat "$tmp/out")"

# run from elsewhere: report paths are relative to the cases file
(cd "$tmp" && "$CAVEAT" policy test "$POLICY" "$CASES" >"$tmp/out" 2>"$tmp/err") && status=0 ||
    status=$?
expect_status 0 "policy test of the example cases"
summary=$(tail -n 1 "$tmp/out")
if [[ ! "$summary" =~ ^([0-9]+)\ passed,\ 0\ failed$ ]]; then
    fail "summary line is '$summary'"
    passed=0
else
    passed=${BASH_REMATCH[1]}
fi
[ "$passed" -ge 25 ] || fail "only $passed example cases"
[ ! -s "$tmp/err" ] || fail "policy test wrote to stderr: $(cat "$tmp/err")"

# the number of cases run is the number written
written=$(grep -c '^  - name:' "$CASES")
[ "$passed" -eq "$written" ] || fail "$passed cases passed, $written written"

# the cases hold with the broker's own pseudonymisation key too
mkdir "$tmp/data"
head -c 32 /dev/urandom >"$tmp/data/pseudonym.key"
run policy test "$POLICY" "$CASES" --data "$tmp/data"
expect_status 0 "policy test with --data"
expect_line "$tmp/out" "$passed passed, 0 failed" "summary with --data"

# --- a wrong expectation fails, pointing at itself --------------------------

mkdir "$tmp/wrong"
cp -r "$EXAMPLES/reports" "$tmp/wrong/reports"
wrong="$tmp/wrong/CASES.yaml"
sed 's/subjects.date_of_birth: "2009",/subjects.date_of_birth: "2010",/' "$CASES" >"$wrong"
cmp -s "$CASES" "$wrong" && fail "the edit of the wrong case changed nothing"
at=$(position_of "$wrong" 'subjects.date_of_birth: "2010"')
run policy test "$POLICY" "$wrong"
expect_status 1 "a wrong expectation"
expect_line "$tmp/out" "$wrong:$at: FAIL the council gets a referral with year of birth and postcode district only: subjects.date_of_birth is '2009', expected '2010'" \
    "the FAIL line"
expect_line "$tmp/out" "$((passed - 1)) passed, 1 failed" "summary with one failure"

# a case expecting delivery where the protocol denies it
sed '/^  - name: default deny - no rule gives a college/,/^  - name:/{s/^    delivered: false$/    delivered: true/}' \
    "$CASES" >"$wrong"
cmp -s "$CASES" "$wrong" && fail "the edit of the delivered case changed nothing"
at=$(position_of "$wrong" 'delivered: true')
run policy test "$POLICY" "$wrong"
expect_status 1 "a wrong delivered"
grep -qF -- "$wrong:${at%:*}:$((${at#*:} + 11)): FAIL default deny - no rule gives a college referrals about individuals: not delivered, expected delivered" \
    "$tmp/out" || fail "no FAIL line for the wrong delivered: $(cat "$tmp/out")"

# --- bad input: exit 2 with FILE:LINE:COL -----------------------------------

bad="$tmp/wrong/bad.yaml"
cat >"$bad" <<'EOF'
cases:
  - name: an unknown key is an error, not an ignored expectation
    report: reports/vulnerable_individual.json
    to: hull-cc
    presnt: [summary]
EOF
run policy test "$POLICY" "$bad"
expect_status 2 "a case with an unknown key"
expect_line "$tmp/err" "$bad:5:5: error: unknown key 'presnt' in a case" "unknown key error"
[ ! -s "$tmp/out" ] || fail "bad input still ran cases: $(cat "$tmp/out")"

cat >"$bad" <<'EOF'
cases:
  - name: a misspelt path cannot pass by accident
    report: reports/vulnerable_individual.json
    to: hull-cc
    absent: [source, sumary]
EOF
run policy test "$POLICY" "$bad"
expect_status 2 "an unknown field path"
expect_line "$tmp/err" "$bad:5:22: error: unknown field path 'sumary'" "unknown path error"

cat >"$bad" <<'EOF'
cases:
  - name: an inline report is checked like a published one
    report:
      originator: hum-bcu-hull
      category: community_tension
      tension: {level: high}
    to: hull-college
EOF
run policy test "$POLICY" "$bad"
expect_status 2 "a malformed inline report"
grep -q "^$bad:6:24: error: tension.level: " "$tmp/err" ||
    fail "no position for the bad inline report: $(cat "$tmp/err")"

cat >"$bad" <<'EOF'
cases:
  - name: a recipient must be an agency
    report: reports/vulnerable_individual.json
    to: hull-council
EOF
run policy test "$POLICY" "$bad"
expect_status 2 "an unknown recipient"
expect_line "$tmp/err" "$bad:4:9: error: to: 'hull-council' is not an agency of the policy" \
    "unknown recipient error"

run policy test "$POLICY"
expect_status 2 "a missing argument"

# Invalid UTF-8 is refused before libfyaml sees it: 0.7 loops forever on
# "%\xff" and ends the document silently at a stray byte in a comment,
# which ran only the cases before it and reported success.
printf '%%\xff\n' >"$bad"
status=0
timeout 10 "$CAVEAT" policy test "$POLICY" "$bad" >"$tmp/out" 2>"$tmp/err" || status=$?
expect_status 2 "a cases file of %\\xff"
expect_line "$tmp/err" "$bad:1:2: error: invalid UTF-8" "the %\\xff error"

printf '%s\n' 'cases:' '  - name: passes' '    report: reports/vulnerable_individual.json' \
    '    to: hull-cc' '# a stray byte: ?' '  - name: would fail' \
    '    report: reports/vulnerable_individual.json' '    to: hull-cc' \
    '    delivered: false' | sed 's/?$/\xff/' >"$bad"
status=0
timeout 10 "$CAVEAT" policy test "$POLICY" "$bad" >"$tmp/out" 2>"$tmp/err" || status=$?
expect_status 2 "a cases file with a stray byte in a comment"
expect_line "$tmp/err" "$bad:5:17: error: invalid UTF-8" "the stray byte's error"
[ ! -s "$tmp/out" ] || fail "a stray byte still ran cases: $(cat "$tmp/out")"

# --- a broken policy is refused with its position ---------------------------

broken="$tmp/policy.yaml"
sed '0,/clearance: OFFICIAL-SENSITIVE/s//clearance: RESTRICTED/' "$POLICY" >"$broken"
at=$(position_of "$broken" 'RESTRICTED')
[ -n "$at" ] || fail "the broken policy has no RESTRICTED"
run policy check "$broken"
[ "$status" -ne 0 ] || fail "policy check accepted an unknown level"
grep -qE "^$broken:$at: error: .*unknown level 'RESTRICTED'$" "$tmp/err" ||
    fail "no FILE:LINE:COL error for the broken policy: $(cat "$tmp/err")"
run policy test "$broken" "$CASES"
expect_status 2 "policy test of a broken policy"

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "cli_policy_test: ok ($passed example cases)"
