#!/usr/bin/env bash
# What `caveat subscribe --receipts DIR` writes, against a real caveatd:
# with --audit-key (the broker's verifier key) each receipt's proof is
# checked as `caveat audit receipt` checks it before it is written, and a
# receipt another log's key does not hold is not written, with why.
# (The leaf against the delivery, and the proof against the leaf, are
# test_receipt_check.c's.)
# Needs CAVEAT, CAVEATD, CAVEAT_SOURCE_DIR and AUDIT_FIXTURE.
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
source "$(dirname "$0")/lib_broker.sh"
: "${AUDIT_FIXTURE:?}"

start_broker
key=$("$CAVEAT" audit key "$tmp/data")
"$AUDIT_FIXTURE" "$tmp/other" 2 1 >/dev/null
other_key=$("$CAVEAT" audit key "$tmp/other")

# A report for hull-cc with id ID: hull-cc's next seq.
publish() { # ID
    sed "1a\\  \"id\": \"$1\"," \
        "$CAVEAT_SOURCE_DIR/examples/reports/vulnerable_individual.json" >"$tmp/$1.json"
    as hum-bcu-hull publish "$tmp/$1.json" >/dev/null
}

# hull-cc's next delivery and its receipt, into DIR; sets status.
subscribe() { # DIR SUBSCRIBE-ARGS...
    local dir=$1
    shift
    status=0
    as hull-cc subscribe --count 1 --timeout 15 --receipts "$dir" "$@" >"$tmp/out" \
        2>"$tmp/err" || status=$?
}

# --- --audit-key -------------------------------------------------------------------
publish r-keyed
subscribe "$tmp/keyed" --audit-key "$key"
expect_status 0 "--audit-key, the broker's"
[ -f "$tmp/keyed/r-keyed.1.tlog-proof" ] || fail "the broker's key: not written: $(ls -A "$tmp/keyed")"

publish r-other-key
subscribe "$tmp/other-keyed" --audit-key "$other_key"
expect_status 1 "--audit-key, another log's"
grep -q "^caveat: the receipt of seq 2: its proof does not hold: " "$tmp/err" ||
    fail "another log's key: $(cat "$tmp/err")"
[ -z "$(ls -A "$tmp/other-keyed")" ] || fail "another log's key: written: $(ls -A "$tmp/other-keyed")"

status=0
as hull-cc subscribe --count 1 --audit-key "$key" >"$tmp/out" 2>"$tmp/err" || status=$?
expect_status 2 "--audit-key without --receipts"
subscribe "$tmp/bad-key" --audit-key "caveat/0+nothex+AAAA"
expect_status 2 "--audit-key, not a key"
grep -q "^caveat: --audit-key: " "$tmp/err" || fail "not a key: $(cat "$tmp/err")"

stop_broker
finish cli_receipts_written
