# Sourced by the command-line tests (tests/cli_*.sh): a scratch directory
# $tmp removed on exit, a failure count, and checks over one run of caveat.
# Needs CAVEAT (the built caveat).

: "${CAVEAT:?set CAVEAT to the caveat binary}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# Runs caveat with stdout and stderr captured in $tmp/out and $tmp/err;
# sets status to its exit code.
run() {
    status=0
    "$CAVEAT" "$@" >"$tmp/out" 2>"$tmp/err" || status=$?
}

expect_status() { # STATUS WHAT
    if [ "$status" -ne "$1" ]; then
        fail "$2: exit $status, expected $1"
        sed 's/^/  | /' "$tmp/out" "$tmp/err" >&2
    fi
}

expect_line() { # FILE EXACT-LINE WHAT
    if ! grep -qxF -- "$2" "$1"; then
        fail "$3: no line '$2'"
        sed 's/^/  | /' "$1" >&2
    fi
}

# Ends the test: exit 1 when anything failed.
finish() { # NAME
    if [ "$failures" -gt 0 ]; then
        echo "$failures failure(s)" >&2
        exit 1
    fi
    echo "$1: all passed"
}
