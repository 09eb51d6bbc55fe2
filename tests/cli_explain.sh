#!/usr/bin/env bash
# policy explain, views, check and keygen through the real `caveat` binary:
# the shape of explain's JSON, that withheld values never appear in it, and
# every refusal path (bad report, unknown agency, bad policy) with its exit
# status and one-line error.
set -euo pipefail
: "${CAVEAT:?}" "${CAVEAT_SOURCE_DIR:?}"
cd "$CAVEAT_SOURCE_DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
policy=examples/policy.yaml
referral=examples/reports/vulnerable_individual.json
failures=0
check() { # check NAME COMMAND...: run, count a failure with its name
    if "${@:2}"; then echo "ok - $1"; else echo "not ok - $1"; failures=$((failures + 1)); fi
}
has() { grep -qF -- "$2" <<<"$1"; }
lacks() { ! grep -qF -- "$2" <<<"$1"; }

out=$("$CAVEAT" policy explain $policy --report $referral --to hull-cc)
check "explain: delivered" has "$out" '{"delivered":true,"feed":null,"rules":["safeguarding-referral"],"report":{'
check "explain: year of birth only" has "$out" '"date_of_birth":"2009"'
check "explain: postcode district" has "$out" '"postcode":"HU3"'
check "explain: field decision" has "$out" '{"path":"subjects.date_of_birth","decision":"mask:year","why":"rule safeguarding-referral"}'
check "explain: withheld address" has "$out" '{"path":"subjects.address","decision":"withheld"'
check "explain: no full date of birth" lacks "$out" '2009-04-01'
check "explain: no address anywhere" lacks "$out" 'Example Street'
check "explain: no source anywhere" lacks "$out" 'SR/2026/0441'
check "explain: one line when piped" test "$(wc -l <<<"$out")" -eq 1
if command -v script >/dev/null; then # a terminal on stdout: indented, a key per line
    tty_out=$(script -qec "'$CAVEAT' policy explain $policy --report $referral --to hull-cc" /dev/null)
    check "explain: pretty on a terminal" test "$(wc -l <<<"$tty_out")" -gt 20
    check "explain: indented on a terminal" has "$tty_out" '  "delivered": true,'
fi

out=$("$CAVEAT" policy explain $policy --report $referral --to hull-college)
check "explain: not delivered has no report" has "$out" '{"delivered":false,"feed":null,"rules":[],"fields":['
check "explain: reason given" has "$out" 'above the recipient'"'"'s clearance OFFICIAL'
check "explain: nothing leaks when not delivered" lacks "$out" 'Jordan'

out=$("$CAVEAT" policy explain $policy --report $referral --to hum-bcu-hull)
check "explain: no echo to the originator" has "$out" 'the originator never receives its own report back'

expect_error() { # expect_error NAME STATUS PATTERN COMMAND...
    local name=$1 status=$2 pattern=$3 rc=0
    shift 3
    err=$("$@" 2>&1 >/dev/null) || rc=$?
    check "$name: exit $status" test "$rc" -eq "$status"
    check "$name: error" has "$err" "$pattern"
    check "$name: one line" test "$(wc -l <<<"$err")" -eq 1
}
expect_error "unknown agency" 2 "caveat: $policy: no agency 'nobody' in the policy" \
    "$CAVEAT" policy explain $policy --report $referral --to nobody
sed 's/"date_of_birth": "2009-04-01"/"date_of_birth": "2009-02-30"/' $referral >"$tmp/bad-date.json"
expect_error "bad date" 2 "$tmp/bad-date.json:" \
    "$CAVEAT" policy explain $policy --report "$tmp/bad-date.json" --to hull-cc
check "bad date: names the field" has "$err" "subjects[0].date_of_birth"
sed 's/"category": "vulnerable_individual"/"category": "gossip"/' $referral >"$tmp/bad-cat.json"
expect_error "unknown category" 2 "unknown category 'gossip'" \
    "$CAVEAT" policy explain $policy --report "$tmp/bad-cat.json" --to hull-cc
expect_error "missing report" 2 "caveat: $tmp/none.json: cannot read" \
    "$CAVEAT" policy explain $policy --report "$tmp/none.json" --to hull-cc
expect_error "usage" 2 "usage: caveat policy explain" "$CAVEAT" policy explain $policy

sed '0,/clearance: OFFICIAL-SENSITIVE/s//clearance: OFFICIAL-SENSTIVE/' $policy >"$tmp/bad.yaml"
line=$(grep -n 'OFFICIAL-SENSTIVE' "$tmp/bad.yaml" | head -1 | cut -d: -f1)
expect_error "bad policy" 1 "$tmp/bad.yaml:$line:" "$CAVEAT" policy check "$tmp/bad.yaml"
check "bad policy: says what" has "$err" "error: agency 'hull-cc': clearance: "
check "bad policy: says what" has "$err" "unknown level 'OFFICIAL-SENSTIVE'"
printf 'protocol: x\nversion: 1\nlevels: [A]\n\xff: 1\n' >"$tmp/utf8.yaml"
expect_error "invalid UTF-8 policy" 1 "$tmp/utf8.yaml:4:1: error: invalid UTF-8" \
    "$CAVEAT" policy check "$tmp/utf8.yaml"

out=$(COLUMNS=200 "$CAVEAT" policy views $policy --report $referral)
check "views: header" has "$out" "vulnerable_individual from hum-bcu-hull"
check "views: masked column" grep -qE '^subjects.date_of_birth +2009-04-01 .* 2009 ' <<<"$out"
check "views: refusals listed" has "$out" "hull-college       not delivered: handling level"

(cd "$tmp" && "$CAVEAT" keygen agency >/dev/null)
check "keygen: secret is 0600" test "$(stat -c %a "$tmp/agency.cert_secret")" = 600
check "keygen: public is 0644" test "$(stat -c %a "$tmp/agency.cert")" = 644
expect_error "keygen refuses to overwrite" 2 "exists" bash -c "cd '$tmp' && '$CAVEAT' keygen agency"

echo "$failures failed"
[ "$failures" -eq 0 ]
