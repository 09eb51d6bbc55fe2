# Sourced after lib_cli.sh by the command-line tests that run caveatd: the
# example keys and policy copied into $tmp (a new broker key, and a
# "stranger" key the policy does not list), start_broker, stop_broker, and
# `as AGENCY CAVEAT-ARGS...` to run caveat against it with an agency's key.
# Needs CAVEATD and CAVEAT_SOURCE_DIR.

: "${CAVEATD:?set CAVEATD to the caveatd binary}"
: "${CAVEAT_SOURCE_DIR:?set CAVEAT_SOURCE_DIR to the source tree}"

broker_pid=
cleanup() {
    [ -z "$broker_pid" ] || kill -KILL "$broker_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT # lib_cli.sh's, and the broker's if one runs

cp "$CAVEAT_SOURCE_DIR"/examples/keys/*.cert* "$CAVEAT_SOURCE_DIR"/examples/policy.yaml "$tmp/"
chmod 600 "$tmp"/*.cert_secret
rm -f "$tmp"/broker.cert*
(cd "$tmp" && "$CAVEAT" keygen broker >/dev/null && "$CAVEAT" keygen stranger >/dev/null)

# Starts caveatd with extra arguments; waits for "ready"; sets endpoint.
start_broker() {
    (cd "$tmp" && exec "$CAVEATD" --policy policy.yaml --cert broker.cert_secret \
        --endpoint 'tcp://127.0.0.1:*' --data data "$@" >"$tmp/out" 2>"$tmp/log") &
    broker_pid=$!
    for _ in $(seq 200); do
        grep -q "^caveatd: ready on" "$tmp/out" 2>/dev/null && break
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.05
    done
    endpoint=$(sed -n 's/^caveatd: ready on //p' "$tmp/out")
    [ -n "$endpoint" ] || { echo "caveatd did not start: $(cat "$tmp/log")" >&2; exit 1; }
}

stop_broker() {
    kill -TERM "$broker_pid"
    wait "$broker_pid" || true
    broker_pid=
}

as() { # AGENCY CAVEAT-ARGS...
    local agency=$1 status=0
    shift
    (cd "$tmp" && timeout 20 "$CAVEAT" "$@" --broker "$endpoint" --server-key broker.cert \
        --cert "$agency.cert_secret") || status=$?
    # a command killed by the timeout says nothing itself: under set -e the
    # script would end with no word of why
    [ "$status" -ne 124 ] || echo "lib_broker: caveat $1 as $agency: killed after 20 s" >&2
    return "$status"
}
