#!/usr/bin/env bash
# Receipts end to end, through the command line against a real caveatd:
# `caveat subscribe --receipts DIR` gets one for every delivery (and checks
# that each names the view it received); each verifies with `caveat audit
# receipt` and the broker's verifier key, and with Go's x/mod when it is
# installed (tests/tlogcheck); a receipt changed in any part, or checked
# with another log's key, fails; a subscriber without --receipts gets
# none; the "delivered" leaves are in `caveat audit trace`, and `caveat
# audit verify` stays good.
# Needs CAVEAT, CAVEATD, CAVEAT_SOURCE_DIR, AUDIT_FIXTURE and BUILD_DIR.
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
source "$(dirname "$0")/lib_broker.sh"
: "${AUDIT_FIXTURE:?}" "${BUILD_DIR:?}"

N=3
start_broker
key=$("$CAVEAT" audit key "$tmp/data")

# both are recipients of the police's vulnerable_individual reports
as hull-cc subscribe --count $N --timeout 15 --receipts "$tmp/receipts" \
    >"$tmp/hull.out" 2>"$tmp/hull.err" &
with=$!
as ne-ctu subscribe --count $N --timeout 15 >"$tmp/ctu.out" 2>"$tmp/ctu.err" &
without=$!
for i in $(seq $N); do
    sed "s/\"id\": *\"[^\"]*\"/\"id\": \"r-receipt-$i\"/" \
        "$CAVEAT_SOURCE_DIR/examples/reports/vulnerable_individual.json" >"$tmp/report$i.json"
    as hum-bcu-hull publish "$tmp/report$i.json" >/dev/null
done
status=0
wait "$with" || status=$?
[ "$status" -eq 0 ] || fail "subscribe --receipts: exit $status: $(cat "$tmp/hull.err")"
[ "$(grep -c "^caveat: note: without --audit-key a receipt's leaf is checked, not its proof" \
    "$tmp/hull.err")" -eq 1 ] || fail "subscribe --receipts: no note, once: $(cat "$tmp/hull.err")"
status=0
wait "$without" || status=$?
[ "$status" -eq 0 ] || fail "subscribe: exit $status: $(cat "$tmp/ctu.err")"

# one receipt a delivery, named by report id and seq, each good
ids=$(grep -o '"report_id":"[^"]*"' "$tmp/hull.out" | cut -d'"' -f4 | sort -u)
[ "$(echo "$ids" | wc -l)" -eq $N ] || fail "hull-cc got $(echo "$ids" | wc -l) reports"
[ "$(ls "$tmp/receipts" | wc -l)" -eq $N ] || fail "receipts: $(ls "$tmp/receipts")"
seq=0
for id in $ids; do
    seq=$((seq + 1))
    file="$tmp/receipts/$id.$seq.tlog-proof"
    [ -f "$file" ] || { fail "no receipt $file: $(ls "$tmp/receipts")"; continue; }
    run audit receipt "$file" --key "$key"
    expect_status 0 "audit receipt $id"
    grep -q '^receipt good: leaf [0-9]* of caveat/[0-9a-f]* at size [0-9]*$' "$tmp/out" ||
        fail "receipt $id: $(cat "$tmp/out")"
    grep -q "\"event\":\"delivered\",\"time\":[0-9]*,\"salt\":\"[0-9a-f]\{32\}\",\"agency\":\"hull-cc\",\"feed\":null,\"deliveries\":\[.*{\"report\":\"$id\",\"seq\":$seq,\"view\":\"[0-9a-f]\{64\}\"}" \
        "$tmp/out" || fail "receipt $id: the leaf: $(cat "$tmp/out")"
done

# a receipt changed anywhere, or read with another log's key, fails
one=$(ls "$tmp/receipts"/*.tlog-proof | head -1)
tamper() { # WHAT SED-SCRIPT
    sed "$2" "$one" >"$tmp/bad.tlog-proof"
    cmp -s "$one" "$tmp/bad.tlog-proof" && fail "$1: the sed changed nothing"
    run audit receipt "$tmp/bad.tlog-proof" --key "$key"
    expect_status 1 "$1"
    grep -q '^caveat: ' "$tmp/err" || fail "$1: no 'caveat: ' line"
}
# a character becomes A, or B where it was A (any base64 may begin with A)
tamper "a proof hash changed" '4{/^A/{s/^A/B/;b};s/^./A/}'
tamper "the leaf changed" '2{/^extra .A/{s/^\(extra .\)A/\1B/;b};s/^\(extra .\)./\1A/}'
tamper "the index changed" 's/^index \([0-9]*\)$/index 1\1/'
tamper "the checkpoint changed" '/^[0-9][0-9]*$/s/$/1/'
"$AUDIT_FIXTURE" "$tmp/other" 2 1 >/dev/null
run audit receipt "$one" --key "$("$CAVEAT" audit key "$tmp/other")"
expect_status 1 "another log's key"
run audit receipt "$one"
expect_status 2 "no --key"

# without --receipts: none asked for, none written, deliveries as ever
[ "$(grep -c '"delivery"' "$tmp/ctu.out")" -eq $N ] || fail "ne-ctu: $(cat "$tmp/ctu.out")"

# x/mod takes them too (and not with a hash changed)
status=0
tlogcheck=$(BUILD_DIR="$BUILD_DIR" bash "$CAVEAT_SOURCE_DIR/tests/tlogcheck/build.sh") || status=$?
if [ "$status" -eq 0 ]; then
    "$tlogcheck" receipts "$key" "$tmp/receipts"/*.tlog-proof >"$tmp/go" 2>&1 ||
        fail "tlogcheck receipts: $(cat "$tmp/go")"
    cat "$tmp/go"
elif [ "$status" -eq 77 ]; then
    echo "cli_receipts: the x/mod check skipped (no go or x/mod source)"
else
    fail "tlogcheck would not build"
fi

# a report id whose escaped form is longer than a file name may be (the
# publisher's choice: a dot takes three bytes) is written under the first
# 120 bytes of that form, "~" and a hash, in a DIR deep enough that only
# the name relative to it could be used; it does not stop the subscriber
# (exactly 3,950 bytes whatever $TMPDIR is: a path of PATH_MAX or more
# cannot be made at all)
long="$tmp"
while [ ${#long} -lt 3750 ]; do long="$long/$(printf 'd%.0s' $(seq 190))"; done
long="$long/$(printf 'd%.0s' $(seq $((3950 - ${#long} - 1))))"
[ ${#long} -eq 3950 ] || fail "the deep DIR is ${#long} bytes"
mkdir -p "$long"
as hull-cc subscribe --count 1 --timeout 15 --receipts "$long" >"$tmp/long.out" \
    2>"$tmp/long.err" &
longsub=$!
longid="r-$(printf '.%.0s' $(seq 100))" # 102 bytes, 302 in a file name
sed "1a\\  \"id\": \"$longid\"," \
    "$CAVEAT_SOURCE_DIR/examples/reports/vulnerable_individual.json" >"$tmp/long.json"
as hum-bcu-hull publish "$tmp/long.json" >/dev/null
status=0
wait "$longsub" || status=$?
[ "$status" -eq 0 ] || fail "a long report id: exit $status: $(cat "$tmp/long.err")"
short="r-$(printf '%%2E%.0s' $(seq 39))"
written=$(cd "$long" && ls -A)
[[ "$written" =~ ^${short}~[0-9a-f]{32}\.[0-9]+\.tlog-proof$ ]] ||
    fail "a long report id: written: $written"
(cd "$long" && cat -- "$written") >"$tmp/long.tlog-proof" # the whole path is over PATH_MAX
run audit receipt "$tmp/long.tlog-proof" --key "$key"
expect_status 0 "audit receipt of a long report id"

# the log: a delivered leaf for each recipient, and still good
first=$(echo "$ids" | head -1)
stop_broker
run audit trace "$tmp/data" "$first"
expect_status 0 "trace"
grep -q "\"event\":\"delivered\".*\"agency\":\"hull-cc\"" "$tmp/out" || fail "trace: no hull-cc leaf"
grep -q "\"event\":\"delivered\".*\"agency\":\"ne-ctu\"" "$tmp/out" || fail "trace: no ne-ctu leaf"
run audit verify "$tmp/data" --key "$key"
expect_status 0 "verify"
finish cli_receipts
