#!/usr/bin/env bash
# Signed policies from the command line: `caveat policy sign` writes
# FILE.minisig, `caveat policy signer-key` the signers-file line, `caveat
# policy check --signers` verifies before deploying; and caveatd started
# with --policy-signers exits non-zero with one clear line on an unsigned,
# altered or foreign-signed policy, or an empty or malformed signers file.
# Needs CAVEAT, CAVEATD and CAVEAT_SOURCE_DIR.
set -euo pipefail

: "${CAVEAT:?set CAVEAT to the caveat binary}"
: "${CAVEATD:?set CAVEATD to the caveatd binary}"
: "${CAVEAT_SOURCE_DIR:?set CAVEAT_SOURCE_DIR to the repository root}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# Runs a binary in $tmp with stdout and stderr captured; sets status.
run() {
    status=0
    (cd "$tmp" && timeout 10 "$@" >"$tmp/out" 2>"$tmp/err") || status=$?
}

expect() { # STATUS FILE EXACT-LINE
    [ "$status" -eq "$1" ] || fail "$CMD: exit $status, not $1"
    grep -qxF -- "$3" "$tmp/$2" || fail "$CMD: no line '$3' in $2: $(cat "$tmp/$2")"
}

cp "$CAVEAT_SOURCE_DIR"/examples/keys/{caveat-admin,hull-cc,broker}.cert* "$tmp/"
chmod 600 "$tmp"/*.cert_secret
cp "$CAVEAT_SOURCE_DIR/examples/policy.yaml" "$tmp/policy.yaml"

# --- sign, signer-key, check --signers ---------------------------------------

CMD="policy signer-key"
run "$CAVEAT" policy signer-key --key caveat-admin.cert_secret
[ "$status" -eq 0 ] || fail "$CMD: exit $status: $(cat "$tmp/err")"
grep -qE '^caveat-admin RW[A-Za-z0-9+/]{54}$' "$tmp/out" || fail "$CMD printed: $(cat "$tmp/out")"
{ echo "# who may sign the sharing policy"; cat "$tmp/out"; } >"$tmp/signers"
key_id=$(awk '{print $2}' "$tmp/out" | base64 -d | od -An -tx1 -j2 -N8 | tr -d ' \n' |
    sed 's/\(..\)/\1 /g' | awk '{for (i = NF; i > 0; i--) printf "%s", toupper($i)}')

CMD="policy signer-key --name"
run "$CAVEAT" policy signer-key --key hull-cc.cert_secret --name 'not a name'
expect 2 err "caveat: 'not a name' is not a signer's name: give one with --name"

CMD="policy sign"
run "$CAVEAT" policy sign policy.yaml --key caveat-admin.cert_secret
expect 0 out "policy.yaml.minisig: signed protocol humber-prevent version 7 with key ID $key_id"
[ "$(sed -n 3p "$tmp/policy.yaml.minisig")" != "" ] || fail "no trusted comment line"
grep -qF "file:policy.yaml	protocol:humber-prevent	version:7" "$tmp/policy.yaml.minisig" ||
    fail "trusted comment: $(sed -n 3p "$tmp/policy.yaml.minisig")"

CMD="policy check --signers"
run "$CAVEAT" policy check policy.yaml --signers signers
expect 0 out "policy.yaml: ok: protocol humber-prevent version 7, 12 agencies, signed by caveat-admin (key ID $key_id)"

# --strict and --signers together: the signature first, then the warnings
CMD="policy check --signers --strict"
run "$CAVEAT" policy check policy.yaml --signers signers --strict
expect 0 out "policy.yaml: ok: protocol humber-prevent version 7, 12 agencies, signed by caveat-admin (key ID $key_id)"
{ cat "$tmp/policy.yaml"; printf '  - name: nobody\n    to_types: [admin]\n    except_to_types: [admin]\n    fields: {narrative: deny}\n'; } >"$tmp/warns.yaml"
(cd "$tmp" && "$CAVEAT" policy sign warns.yaml --key caveat-admin.cert_secret >/dev/null)
CMD="policy check --signers --strict with a warning"
run "$CAVEAT" policy check warns.yaml --signers signers --strict
expect 1 err "caveat: warns.yaml: --strict: warnings are errors"
grep -qF "warns.yaml:" "$tmp/err" && grep -qF "warning: restriction 'nobody' can never apply" "$tmp/err" ||
    fail "$CMD: no warning: $(cat "$tmp/err")"
expect 1 out "warns.yaml: ok: protocol humber-prevent version 7, 12 agencies, signed by caveat-admin (key ID $key_id), 1 warning"

CMD="policy sign with a public certificate"
run "$CAVEAT" policy sign policy.yaml --key caveat-admin.cert
expect 2 err "caveat: caveat-admin.cert: not a secret certificate (NAME.cert_secret)"

CMD="policy sign of a broken policy"
sed 's/clearance: OFFICIAL-SENSITIVE/clearance: OFFICIAL-SENSATIVE/' "$tmp/policy.yaml" >"$tmp/broken.yaml"
run "$CAVEAT" policy sign broken.yaml --key caveat-admin.cert_secret
[ "$status" -eq 1 ] || fail "$CMD: exit $status, not 1"
grep -qF "unknown level 'OFFICIAL-SENSATIVE'" "$tmp/err" || fail "$CMD: $(cat "$tmp/err")"
[ ! -e "$tmp/broken.yaml.minisig" ] || fail "$CMD wrote a signature"

# the refusals check --signers shares with caveatd
cp "$tmp/policy.yaml" "$tmp/good.yaml"
cp "$tmp/policy.yaml.minisig" "$tmp/good.yaml.minisig"
cp "$tmp/policy.yaml" "$tmp/unsigned.yaml"
{ cat "$tmp/policy.yaml"; echo "# one more line"; } >"$tmp/altered.yaml"
cp "$tmp/policy.yaml.minisig" "$tmp/altered.yaml.minisig"
cp "$tmp/policy.yaml" "$tmp/foreign.yaml"
(cd "$tmp" && "$CAVEAT" policy sign foreign.yaml --key hull-cc.cert_secret >/dev/null)
foreign_id=$(sed -n 's/^untrusted comment: caveat policy signature, key ID //p' "$tmp/foreign.yaml.minisig")
: >"$tmp/empty"
{ cat "$tmp/signers"; echo "second-admin RWQnotakey"; } >"$tmp/malformed"

declare -A refusal=(
    [unsigned]="unsigned.yaml: error: not signed (unsigned.yaml.minisig: cannot open: No such file or directory), and with signers configured only a signed policy loads"
    [altered]="altered.yaml: error: the signature by caveat-admin (key ID $key_id) does not match: the file was changed after it was signed, or the signature is another file's"
    [foreign]="foreign.yaml: error: signed by key ID $foreign_id, which is not a trusted signer"
)
for name in unsigned altered foreign; do
    CMD="policy check $name.yaml --signers"
    run "$CAVEAT" policy check "$name.yaml" --signers signers
    expect 1 err "${refusal[$name]}"
    [ ! -s "$tmp/out" ] || fail "$CMD printed ok: $(cat "$tmp/out")"
done
CMD="policy check --signers empty"
run "$CAVEAT" policy check good.yaml --signers empty
expect 1 err "empty: error: lists no signer: with signers configured only a policy signed by one of them loads, so an empty list is refused (add 'NAME PUBLIC-KEY')"

# --- caveatd refuses to start --------------------------------------------------

# Starts caveatd on a policy and a signers file; sets status (a broker that
# starts is stopped, and counts as exit 0).
start_broker() { # POLICY SIGNERS
    rm -rf "$tmp/data"
    status=0
    (cd "$tmp" && exec "$CAVEATD" --policy "$1" --policy-signers "$2" --cert broker.cert_secret \
        --endpoint 'tcp://127.0.0.1:!' --data data >"$tmp/out" 2>"$tmp/err") &
    local pid=$!
    for _ in $(seq 100); do
        grep -q "^caveatd: ready on" "$tmp/out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if grep -q "^caveatd: ready on" "$tmp/out" 2>/dev/null; then
        kill -TERM "$pid"
    fi
    wait "$pid" || status=$?
}

CMD="caveatd with a signed policy"
start_broker good.yaml signers
[ "$status" -eq 0 ] || fail "$CMD: exit $status: $(cat "$tmp/err")"
grep -qF "policy signed by caveat-admin (key ID $key_id)" "$tmp/err" ||
    fail "$CMD: no signer logged: $(cat "$tmp/err")"

for name in unsigned altered foreign; do
    CMD="caveatd with the $name policy"
    start_broker "$name.yaml" signers
    expect 1 err "caveatd: ${refusal[$name]}"
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$CMD: more than one line: $(cat "$tmp/err")"
done

CMD="caveatd with an empty signers file"
start_broker good.yaml empty
expect 1 err "caveatd: empty: error: lists no signer: with signers configured only a policy signed by one of them loads, so an empty list is refused (add 'NAME PUBLIC-KEY')"

CMD="caveatd with a malformed signers file"
start_broker good.yaml malformed
expect 1 err "caveatd: malformed:3:14: error: expected 'NAME PUBLIC-KEY', the key an Ed25519 public key in minisign's form (caveat policy signer-key)"

CMD="caveatd with a signers file that is not there"
start_broker good.yaml nosuch
expect 1 err "caveatd: nosuch: error: cannot open: No such file or directory"

[ "$failures" -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
echo "ok"
