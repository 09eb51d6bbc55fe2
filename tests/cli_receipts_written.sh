#!/usr/bin/env bash
# What `caveat subscribe --receipts DIR` writes, and where, against a real
# caveatd: with --audit-key (the broker's verifier key) each receipt's
# proof is checked as `caveat audit receipt` checks it before it is
# written, and a receipt another log's key does not hold is not written,
# with why. DIR must be a directory (or a link to one) of this user's that
# no one else may write; a receipt is written 0600 whatever the umask, to
# a temporary file made new, never through a link planted at its name,
# and removed when the receipt cannot be written. One subscriber writes in
# a DIR at a time.
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
umask_was=$(umask)
umask 000
subscribe "$tmp/keyed" --audit-key "$key"
umask "$umask_was"
expect_status 0 "--audit-key, the broker's"
grep -q "note: without --audit-key" "$tmp/err" && fail "--audit-key: the note without it"
[ -f "$tmp/keyed/r-keyed.1.tlog-proof" ] || fail "the broker's key: not written: $(ls -A "$tmp/keyed")"
[ "$(stat -c %a "$tmp/keyed" "$tmp/keyed/r-keyed.1.tlog-proof" | tr '\n' ' ')" = "700 600 " ] ||
    fail "under umask 000: $(stat -c '%a %n' "$tmp/keyed" "$tmp/keyed"/*)"

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

# --- DIR ---------------------------------------------------------------------------
# refused before the session begins: nothing is received, nothing written
refused_dir() { # DIR ERROR WHAT
    subscribe "$1"
    expect_status 1 "$3"
    grep -qF -- "caveat: --receipts $1: $2" "$tmp/err" || fail "$3: $(cat "$tmp/err")"
    [ ! -s "$tmp/out" ] || fail "$3: received: $(cat "$tmp/out")"
}
: >"$tmp/a-file"
refused_dir "$tmp/a-file" "Not a directory" "a file as DIR"
ln -s a-file "$tmp/link-to-a-file"
refused_dir "$tmp/link-to-a-file" "Not a directory" "a link to a file as DIR"
mkdir -m 0770 "$tmp/group-writes"
refused_dir "$tmp/group-writes" "group or others may write in it (mode 0770)" "a DIR group writes"
mkdir -m 0703 "$tmp/others-write"
refused_dir "$tmp/others-write" "group or others may write in it (mode 0703)" "a DIR others write"
if [ "$(id -u)" -eq 0 ]; then
    mkdir -m 0700 "$tmp/nobodys"
    chown nobody "$tmp/nobodys"
    refused_dir "$tmp/nobodys" "the directory is not this user's" "another user's DIR"
else
    echo "cli_receipts_written: another user's DIR not tried (not root: no chown)"
fi

# A receipt for hull-cc's next seq (SEQ), whose temporary file has
# something planted at its name in DIR, is refused; sets status.
planted() { # ID SEQ WHAT
    publish "$1"
    subscribe "$tmp/planted"
    expect_status 1 "$3"
    grep -q "\"seq\":$2" "$tmp/out" || fail "$3: not seq $2: $(cat "$tmp/out")"
    grep -qF "caveat: $tmp/planted/$1.$2.tlog-proof: its temporary file's name is taken" \
        "$tmp/err" || fail "$3: $(cat "$tmp/err")"
    [ ! -e "$tmp/planted/$1.$2.tlog-proof" ] || fail "$3: the receipt was written"
}
mkdir -m 0700 "$tmp/planted"
echo "the subscriber's own file" >"$tmp/own"
ln -s "$tmp/own" "$tmp/planted/r-planted.3.tlog-proof.tmp"
planted r-planted 3 "a link to a file at the temporary name"
[ "$(cat "$tmp/own")" = "the subscriber's own file" ] || fail "written through a link: $(cat "$tmp/own")"
[ -L "$tmp/planted/r-planted.3.tlog-proof.tmp" ] || fail "the planted link was removed"
ln -s "$tmp/made" "$tmp/planted/r-dangling.4.tlog-proof.tmp"
planted r-dangling 4 "a link to nothing at the temporary name"
[ ! -e "$tmp/made" ] || fail "a file made through a link: $(cat "$tmp/made")"
mkdir "$tmp/planted/r-in-the-way.5.tlog-proof.tmp"
planted r-in-the-way 5 "a directory at the temporary name"

# a temporary file a run left is this user's own: replaced; a link to a
# directory of this user's is taken as that directory
mkdir -m 0700 "$tmp/kept"
ln -s kept "$tmp/kept-link"
echo "half a receipt" >"$tmp/kept/r-stale.6.tlog-proof.tmp"
publish r-stale
subscribe "$tmp/kept-link"
expect_status 0 "a stale temporary file"
[ "$(ls -A "$tmp/kept")" = "r-stale.6.tlog-proof" ] || fail "a stale temporary file: $(ls -A "$tmp/kept")"
head -1 "$tmp/kept/r-stale.6.tlog-proof" | grep -qx "c2sp.org/tlog-proof@v1" ||
    fail "a stale temporary file: $(head -c 100 "$tmp/kept/r-stale.6.tlog-proof")"
run audit receipt "$tmp/kept/r-stale.6.tlog-proof" --key "$key"
expect_status 0 "a stale temporary file: the receipt written"

# one writer a directory: a second subscriber on a DIR another is writing
# receipts in is refused before its session begins, and takes nothing
# from the first, which gets its delivery and writes its receipt
mkdir -m 0700 "$tmp/busy"
as hull-cc subscribe --count 1 --timeout 30 --receipts "$tmp/busy" >"$tmp/first.out" \
    2>"$tmp/first.err" &
first=$!
# until the first holds the directory's lock: read from /proc/locks, as
# trying the lock would hold it a moment and could turn the first away
busy_inode=$(stat -c %i "$tmp/busy")
for _ in $(seq 100); do
    grep -q ":$busy_inode " /proc/locks && break
    sleep 0.1
done
refused_dir "$tmp/busy" "another caveat subscribe writes receipts in it" "a DIR in use"
publish r-busy
wait "$first" || fail "the first subscriber: $(cat "$tmp/first.err")"
[ "$(ls -A "$tmp/busy")" = "r-busy.7.tlog-proof" ] || fail "a DIR in use: $(ls -A "$tmp/busy")"
grep -q '"report_id":"r-busy"' "$tmp/first.out" || fail "a DIR in use: $(cat "$tmp/first.out")"

# a receipt that cannot be renamed into place leaves no temporary file
mkdir "$tmp/kept/r-not-renamed.8.tlog-proof"
publish r-not-renamed
subscribe "$tmp/kept"
expect_status 1 "a directory at the receipt's name"
grep -qF "caveat: $tmp/kept/r-not-renamed.8.tlog-proof: Is a directory" "$tmp/err" ||
    fail "a directory at the receipt's name: $(cat "$tmp/err")"
[ ! -e "$tmp/kept/r-not-renamed.8.tlog-proof.tmp" ] || fail "the temporary file was left"

stop_broker
finish cli_receipts_written
