#!/usr/bin/env bash
# dist/systemd/caveatd.service: systemd-analyze verify accepts it, warning
# about nothing, with ExecStart pointed at the built caveatd (verify checks
# that the program exists). Skipped where systemd-analyze is missing.
# Needs CAVEATD and CAVEAT_SOURCE_DIR.
set -euo pipefail

: "${CAVEATD:?set CAVEATD to the caveatd binary}"
: "${CAVEAT_SOURCE_DIR:?set CAVEAT_SOURCE_DIR to the source tree}"

if ! command -v systemd-analyze >/dev/null; then
    echo "cli_systemd: skipped: no systemd-analyze here"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unit="$CAVEAT_SOURCE_DIR/dist/systemd/caveatd.service"
sed "s|/usr/local/bin/caveatd|$CAVEATD|" "$unit" >"$tmp/caveatd.service"
status=0
(cd "$tmp" && systemd-analyze verify caveatd.service) >"$tmp/out" 2>&1 || status=$?
if [ "$status" -ne 0 ] || [ -s "$tmp/out" ]; then
    echo "FAIL: systemd-analyze verify (exit $status):" >&2
    cat "$tmp/out" >&2
    exit 1
fi
for setting in NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes \
    "ReadWritePaths=/var/lib/caveat -/var/backups/caveat" "ExecReload=/bin/kill -HUP \$MAINPID"; do
    grep -qxF "$setting" "$unit" || { echo "FAIL: $unit lacks $setting" >&2; exit 1; }
done
echo "cli_systemd: ok"
