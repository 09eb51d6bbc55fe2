#!/usr/bin/env bash
# --help, help COMMAND and --version for caveat and caveatd: usage on
# stdout and exit 0, never the command itself (keygen --help once wrote
# files named --help.cert); a missing caveatd option is named.
# Needs CAVEAT and CAVEATD (the built binaries).
set -euo pipefail

: "${CAVEAT:?set CAVEAT to the caveat binary}"
: "${CAVEATD:?set CAVEATD to the caveatd binary}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
checks=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# Runs a binary in $tmp with stdout and stderr captured; sets status.
run() {
    status=0
    (cd "$tmp" && timeout 10 "$@" >"$tmp/out" 2>"$tmp/err") || status=$?
    checks=$((checks + 1))
}

expect() { # STATUS FILE TEXT
    [ "$status" -eq "$1" ] || fail "$CMD: exit $status, not $1"
    grep -qF -- "$3" "$tmp/$2" || fail "$CMD: no '$3' in $2: $(cat "$tmp/$2")"
}

CMD="caveat keygen --help"; run "$CAVEAT" keygen --help
expect 0 out "keygen NAME"
[ -z "$(ls "$tmp" | grep -v '^out$\|^err$')" ] || fail "$CMD wrote files: $(ls "$tmp")"

CMD="caveat help admin"; run "$CAVEAT" help admin
expect 0 out "admin stats|sessions|reload|quarantined"
CMD="caveat policy --help"; run "$CAVEAT" policy --help
expect 0 out "policy explain FILE"
# the administrator's tools describe their options
for option in "check FILE [--strict]" "--coverage" "--format text (default), json (one object) or junit" \
    "exit 0 when nothing differs, 1 when anything does" "policy fmt FILE [--check | -i]" \
    "[--format text|json]"; do
    CMD="caveat policy fmt --help"; run "$CAVEAT" policy fmt --help
    expect 0 out "$option"
done
CMD="caveat help"; run "$CAVEAT" help
expect 0 out "usage: caveat COMMAND"
# every command answers --help, help itself too
CMD="caveat help --help"; run "$CAVEAT" help --help
expect 0 out "usage: caveat COMMAND"
# admin's --timeout (docs/operations.md, "Backups") is in its part of the usage
CMD="caveat help admin"; run "$CAVEAT" help admin
expect 0 out "--cert ADMIN.cert_secret [--timeout S]"
CMD="caveat help nosuch"; run "$CAVEAT" help nosuch
expect 2 err "caveat: help: no command 'nosuch'"
CMD="caveat --version"; run "$CAVEAT" --version
expect 0 out "caveat "
CMD="caveat keygen -x"; run "$CAVEAT" keygen -x
expect 2 err "must not be empty or start with '-'"

CMD="caveatd --version"; run "$CAVEATD" --version
expect 0 out "caveatd "
CMD="caveatd --help"; run "$CAVEATD" --help
expect 0 out "usage: caveatd --policy FILE"
# a number with anything after it is refused, not read as its digits
# ("--clock-skew 1d" was once taken as 1 second)
CMD="caveatd --clock-skew 1d"; run "$CAVEATD" --clock-skew 1d
expect 2 err "caveatd: --clock-skew: from 1 second to a year, not '1d'"
CMD="caveatd --disk-reserve 64MB"; run "$CAVEATD" --disk-reserve 64MB
expect 2 err "caveatd: --disk-reserve: from 1 to 65536 (MB), not '64MB'"
CMD="caveatd --backup-rate 256MB"; run "$CAVEATD" --backup-rate 256MB
expect 2 err "caveatd: --backup-rate: from 0 (no limit) to 65536 (MB a second), not '256MB'"
CMD="caveatd --ack-timeout 30s"; run "$CAVEATD" --ack-timeout 30s
expect 2 err "caveatd: --ack-timeout: at least 0.1 seconds, not '30s'"
CMD="caveatd --max-reports 500x"; run "$CAVEATD" --max-reports 500x
expect 2 err "caveatd: --max-reports: from 1 to 100000, not '500x'"
CMD="caveatd --ack-timeout 0.05"; run "$CAVEATD" --ack-timeout 0.05
expect 2 err "caveatd: --ack-timeout: at least 0.1 seconds, not '0.05'"
# caveat's seconds are read as caveatd's are (cv_seconds_parse)
CMD="caveat admin --timeout 5s"
run "$CAVEAT" admin stats --broker tcp://127.0.0.1:1 --server-key x --cert y --timeout 5s
expect 2 err "caveat: --timeout 5s: not a number of seconds"
CMD="caveat admin --timeout 0"
run "$CAVEAT" admin stats --broker tcp://127.0.0.1:1 --server-key x --cert y --timeout 0
expect 2 err "caveat: --timeout 0: not a number of seconds"
CMD="caveatd --policy x"; run "$CAVEATD" --policy x
expect 2 err "caveatd: missing --endpoint EP"
grep -qF "caveatd: missing --data DIR" "$tmp/err" || fail "$CMD: --data not named"

if [ "$failures" -ne 0 ]; then
    echo "$failures of $checks check(s) failed" >&2
    exit 1
fi
echo "cli_help: ok ($checks checks)"
