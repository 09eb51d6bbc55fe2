#!/usr/bin/env bash
# `caveat audit` on a data directory made by audit_fixture: each command's
# good answer, and each bad argument, missing store or key, and wrong key
# refused with its exit status and a clear `caveat: ...` line. (Tampering
# with the log is test_audit_log's.)
# Needs CAVEAT and AUDIT_FIXTURE (the built programs).
set -euo pipefail
: "${AUDIT_FIXTURE:?set AUDIT_FIXTURE to the audit_fixture binary}"
source "$(dirname "$0")/lib_cli.sh"

expect_err() { # TEXT WHAT: stderr has TEXT
    if ! grep -qF -- "$1" "$tmp/err"; then
        fail "$2: stderr does not say '$1'"
        sed 's/^/  | /' "$tmp/err" >&2
    fi
}

dir="$tmp/data"
"$AUDIT_FIXTURE" "$dir" 10 4 2 >/dev/null

run audit key "$dir"
expect_status 0 "key"
key=$(cat "$tmp/out")
[[ "$key" =~ ^caveat\.test/audit\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}$ ]] || fail "key: '$key'"

run audit verify "$dir"
expect_status 0 "verify"
grep -q '^audit log good: 12 leaves, root .*; 3 checkpoints, the last of caveat.test/audit at size 10; 2 leaves not yet checkpointed$' "$tmp/out" ||
    fail "verify: $(cat "$tmp/out")"
grep -q '^note: checked against DIR/audit.key' "$tmp/out" || fail "verify: no note of whose key"
run audit verify "$dir" --key "$key"
expect_status 0 "verify --key"
grep -q '^note: checked against' "$tmp/out" && fail "verify --key: a note of whose key"
# held to nothing the auditor kept: the signing key is in DIR, so it says so
grep -q '^note: held to no checkpoint you kept' "$tmp/out" || fail "verify: no note of kept"
"$CAVEAT" audit checkpoint "$dir" --size 8 >"$tmp/kept.txt"
run audit verify "$dir" --key "$key" --checkpoint "$tmp/kept.txt"
expect_status 0 "verify --checkpoint"
grep -q '^held to the kept checkpoint of 8 leaves' "$tmp/out" || fail "verify --checkpoint"
grep -q '^note:' "$tmp/out" && fail "verify --key --checkpoint: a note: $(cat "$tmp/out")"

run audit prove "$dir" --index 3
expect_status 0 "prove"
expect_line "$tmp/out" "c2sp.org/tlog-proof@v1" "prove"
expect_line "$tmp/out" "index 3" "prove"
expect_line "$tmp/out" "10" "prove: the latest checkpoint, of 10 leaves"
# a good proof of a leaf that records no delivery, its leaf in an extra
# line as a receipt carries it, is no receipt
python3 - "$dir/caveat.db" "$tmp/out" "$tmp/leaf3.tlog-proof" <<'PY'
import base64, sqlite3, sys
leaf = sqlite3.connect(sys.argv[1]).execute("SELECT data FROM tlog_leaves WHERE idx = 3").fetchone()[0]
lines = open(sys.argv[2]).read().split("\n")
lines.insert(1, "extra " + base64.b64encode(bytes(leaf)).decode())
open(sys.argv[3], "w").write("\n".join(lines))
PY
run audit receipt "$tmp/leaf3.tlog-proof" --key "$key"
expect_status 1 "a proof of a leaf that is no delivery"
grep -q "leaf 3 is in the log, but records no delivery: not a receipt" "$tmp/err" ||
    fail "a proof of a leaf that is no delivery: $(cat "$tmp/err")"
# nor is a FIFO read, or waited on
mkfifo "$tmp/fifo"
run audit receipt "$tmp/fifo" --key "$key"
expect_status 1 "a FIFO for a receipt"
grep -q "fifo: cannot read: not a regular file" "$tmp/err" || fail "a FIFO: $(cat "$tmp/err")"
run audit prove "$dir" --index 3 --checkpoint 4
expect_status 0 "prove --checkpoint"
expect_line "$tmp/out" "4" "prove --checkpoint 4"

run audit consistency "$dir" 4 10
expect_status 0 "consistency"
expect_line "$tmp/out" "caveat/tlog-consistency@v1 4 10" "consistency"
[ "$(wc -l <"$tmp/out")" -eq 3 ] || fail "consistency 4 10: not two hashes"
run audit consistency "$dir" 8 8
expect_status 0 "consistency of a checkpoint with itself"
[ "$(wc -l <"$tmp/out")" -eq 1 ] || fail "consistency 8 8: hashes"

run audit checkpoint "$dir"
expect_status 0 "checkpoint"
expect_line "$tmp/out" "10" "checkpoint: the last"
run audit checkpoint "$dir" --size 8
expect_status 0 "checkpoint --size"
expect_line "$tmp/out" "8" "checkpoint --size 8"

# bad usage: exit 2
for args in "" "frob $dir" "key" "verify" "verify $dir extra" "prove $dir" "prove $dir --index" \
    "prove $dir --index x" "prove $dir --index -1" "prove $dir --index 1 --checkpoint 0" \
    "consistency $dir 4" "consistency $dir four 10" "checkpoint $dir --size 0" \
    "checkpoint $dir --size"; do
    # shellcheck disable=SC2086
    run audit $args
    expect_status 2 "audit $args"
    grep -q '^caveat: ' "$tmp/err" || fail "audit $args: no 'caveat: ' line"
done

# what the log cannot prove: exit 1
run audit prove "$dir" --index 10
expect_status 1 "prove a leaf no checkpoint covers"
expect_err "no checkpoint covers leaf 10 yet" "prove --index 10"
run audit consistency "$dir" 4 9
expect_status 1 "consistency to a size with no checkpoint"
expect_err "no checkpoint of size 9" "consistency 4 9"
run audit consistency "$dir" 10 4
expect_status 1 "consistency backwards"
expect_err "the old size must be at least 1 and at most the new" "consistency 10 4"

# another log's key: the checkpoints are not its
other="$tmp/other"
"$AUDIT_FIXTURE" "$other" 1 >/dev/null
run audit key "$other"
run audit verify "$dir" --key "$(cat "$tmp/out")"
expect_status 1 "verify with another key"
expect_err "checkpoint at size 4: note: not signed by caveat.test/audit (key ID" "verify --key other"
run audit verify "$dir" --key "caveat.test/audit+00000000+AAAA"
expect_status 2 "verify with a malformed key"
expect_err "--key: " "verify --key malformed"

# the key file: readable by others, or absent
chmod 644 "$dir/audit.key"
run audit key "$dir"
expect_status 2 "key readable by others"
expect_err "audit.key: audit key file must give group and others no access (0600 and 0400 do; it is 0644)" \
    "key 0644"
run audit verify "$dir"
expect_status 2 "verify with a key readable by others"
chmod 600 "$dir/audit.key"
run audit key "$tmp/nowhere"
expect_status 2 "key of no directory"
expect_err "nowhere/audit.key: No such file or directory" "key of no directory"

# no store, or a store with no log
run audit verify "$tmp/nowhere" --key "$key"
expect_status 2 "verify no store"
expect_err "nowhere/caveat.db: cannot open" "verify no store"
mkdir -m 700 "$tmp/empty"
run audit prove "$tmp/empty" --index 0
expect_status 2 "prove without a store"
expect_err "caveat.db: cannot open" "prove without a store"
: >"$tmp/empty/caveat.db" # an empty SQLite database
run audit prove "$tmp/empty" --index 0
expect_status 1 "prove from a store with no log"
expect_err "audit log: this store has none" "prove from a store with no log"

# a data directory whose name a URI would misread
weird="$tmp/a?b#c%d"
"$AUDIT_FIXTURE" "$weird" 3 >/dev/null
run audit verify "$weird"
expect_status 0 "verify in a directory named with ? # %"

# what an edited store says never drives the terminal
esc=$(printf '\033')
run audit verify "$tmp/x${esc}[31m"
expect_status 2 "verify a directory named with an escape"
expect_err 'x\x1b[31m/audit.key: No such file' "an error's control characters escaped"
grep -q "$esc" "$tmp/err" && fail "an error message carried an escape character"
if command -v python3 >/dev/null; then
    edited="$tmp/edited"
    "$AUDIT_FIXTURE" "$edited" 10 4 2 >/dev/null
    # a checkpoint with a C1 control (U+009B, a terminal's escape), and a
    # leaf nested deeper than the JSON writer goes
    python3 - "$edited/caveat.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE tlog_checkpoints SET note = replace(note, 'caveat.test/audit' || char(10) || '10',"
           " 'caveat.test/audit' || char(155) || '2J' || char(10) || '10') WHERE size = 10")
deep = '{"event":"accepted","time":1,"report":"R-deep","originator":"agency-0","to":' + \
    '[' * 30 + ']' * 30 + '}'
db.execute("UPDATE tlog_leaves SET data = CAST(? AS BLOB) WHERE idx = 1", (deep,))
db.commit()
PY
    run audit checkpoint "$edited"
    expect_status 1 "checkpoint holding a C1 control"
    expect_err "note: a control character" "checkpoint with C1"
    [ -s "$tmp/out" ] && fail "checkpoint with C1: printed"
    # leaf 1 edited: no sample is drawn from a tree its seed does not sign
    # (whoever edits a store could choose what is drawn), whatever the seed
    for seed in 4 8; do
        run audit sample "$edited" --count 12 --seed $seed --format json
        expect_status 1 "a sample of an edited log, seed $seed"
        expect_err "the leaves are not the tree the seed checkpoint of $seed leaves signs" \
            "sample of an edited log, seed $seed"
        [ -s "$tmp/out" ] && fail "sample of an edited log, seed $seed: printed"
    done
fi

finish cli_audit
