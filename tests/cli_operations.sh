#!/usr/bin/env bash
# caveatd for an operator: log lines with an RFC 3339 time and a level, or
# JSON; a refused handshake logged with the peer's address and key; the
# pid file; the endpoint actually bound; `caveat admin sessions`; a
# backup path the broker would resolve in its own directory refused.
# Needs CAVEAT and CAVEATD (the built binaries) and CAVEAT_SOURCE_DIR.
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"

source "$(dirname "$0")/lib_broker.sh"
checks=0

check() { # DESCRIPTION COMMAND...
    local what=$1
    shift
    checks=$((checks + 1))
    "$@" || fail "$what"
}

# --- a port libzmq would wrap ---------------------------------------------------
status=0
(cd "$tmp" && timeout 10 "$CAVEATD" --policy policy.yaml --cert broker.cert_secret \
    --endpoint tcp://127.0.0.1:99999 --data data >"$tmp/out" 2>"$tmp/err") || status=$?
check "port 99999: exit $status, not 1" [ "$status" -eq 1 ]
check "port 99999: $(cat "$tmp/err")" \
    grep -qF "cannot bind tcp://127.0.0.1:99999: the port is not from 0 to 65535" "$tmp/err"
check "port 99999: printed ready" [ ! -s "$tmp/out" ]

# --- a secret certificate group or others may use: any bit of 077, read or not -----
for mode in 640 620; do
    chmod "$mode" "$tmp/broker.cert_secret"
    status=0
    (cd "$tmp" && timeout 10 "$CAVEATD" --policy policy.yaml --cert broker.cert_secret \
        --endpoint 'tcp://127.0.0.1:*' --data data >"$tmp/out" 2>"$tmp/err") || status=$?
    check "a secret certificate of mode $mode: exit $status, not 1" [ "$status" -eq 1 ]
    check "a secret certificate of mode $mode: $(cat "$tmp/err")" \
        grep -qxF "caveatd: broker.cert_secret: secret key file must give group and others no access (0600 and 0400 do; it is 0$mode)" "$tmp/err"
done
chmod 600 "$tmp/broker.cert_secret"

# --- JSON lines, the pid file, sessions, a refused handshake ----------------------
start_broker --log-format json --pid-file "$tmp/caveatd.pid" --monitor 0
check "pid file holds $(cat "$tmp/caveatd.pid"), not $broker_pid" \
    [ "$(cat "$tmp/caveatd.pid")" = "$broker_pid" ]
port=${endpoint##*:}
if command -v ss >/dev/null; then
    check "ready on $endpoint: the port bound is not it" \
        grep -q "127.0.0.1:$port " <(ss -ltnp | grep "pid=$broker_pid,")
fi

as hull-cc subscribe --count 1 --timeout 15 >"$tmp/received" 2>&1 &
subscriber=$!
for _ in $(seq 100); do
    as caveat-admin admin sessions >"$tmp/sessions" 2>&1 || true
    grep -q '"agency":"hull-cc"' "$tmp/sessions" && break
    sleep 0.1
done
check "admin sessions: no hull-cc: $(cat "$tmp/sessions")" \
    grep -qE '\{"agency":"hull-cc","feed":"","kind":"delivery","peer":"127\.0\.0\.1","since":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z","in_flight":0,"queued":0\}' \
    "$tmp/sessions"
as hum-bcu-hull publish "$CAVEAT_SOURCE_DIR/examples/reports/vulnerable_individual.json" \
    >/dev/null
wait "$subscriber"
check "the subscriber got nothing" grep -q '"delivery"' "$tmp/received"

# --- the monitoring listener: loopback, /metrics and /healthz ----------------------
# the threads docs/operations.md ("Which thread is which") names
for name in caveatd cv-signals cv-sync MHD-single; do
    check "no thread $name: $(cat /proc/"$broker_pid"/task/*/comm | tr '\n' ' ')" \
        grep -qxF "$name" <(cat /proc/"$broker_pid"/task/*/comm)
done
http_get() { # PATH: the whole answer, headers too (HTTP/1.0, bash's /dev/tcp)
    exec 3<>"/dev/tcp/$monitor_host/$monitor_port"
    printf 'GET %s HTTP/1.0\r\n\r\n' "$1" >&3
    cat <&3
    exec 3<&-
}
monitor=$(sed -n 's/.*monitoring on http:\/\/\([0-9.]*:[0-9]*\) .*/\1/p' "$tmp/log")
monitor_host=${monitor%:*}
monitor_port=${monitor##*:}
check "monitor on $monitor, not on loopback" [ "$monitor_host" = 127.0.0.1 ]
sleep 1.2 # a fresh snapshot, taken every second
http_get /metrics >"$tmp/metrics"
check "/metrics: $(head -3 "$tmp/metrics")" grep -q '^HTTP/1.[01] 200' "$tmp/metrics"
check "/metrics: no published count" grep -qx 'caveat_published_total 1' <(tr -d '\r' <"$tmp/metrics")
check "/metrics: no TYPE line" grep -qx '# TYPE caveat_published_total counter' "$tmp/metrics"
check "/metrics: no policy" grep -q '^caveat_policy_info{protocol="humber-prevent",hash="' \
    "$tmp/metrics"
http_get /healthz >"$tmp/health"
check "/healthz: $(cat "$tmp/health")" grep -q '^HTTP/1.[01] 200' "$tmp/health"
check "/healthz: no ok" grep -qx 'ok' <(tr -d '\r' <"$tmp/health")
http_get /reports >"$tmp/other"
check "/reports: $(head -1 "$tmp/other")" grep -q '^HTTP/1.[01] 404' "$tmp/other"

status=0
as stranger publish "$CAVEAT_SOURCE_DIR/examples/reports/vulnerable_individual.json" \
    >/dev/null 2>&1 || status=$?
check "a stranger's publish: exit $status" [ "$status" -ne 0 ]
stranger_key=$(sed -n 's/^ *public-key = "\(.*\)"$/\1/p' "$tmp/stranger.cert")
check "no refused handshake logged for $stranger_key: $(cat "$tmp/log")" \
    grep -qF "handshake refused: key $stranger_key from 127.0.0.1" "$tmp/log"

status=0
as caveat-admin admin backup relative/dir >"$tmp/backup" 2>&1 || status=$?
check "a relative backup path: exit $status" [ "$status" -ne 0 ]
check "a relative backup path: $(cat "$tmp/backup")" \
    grep -qF "relative/dir: not an absolute path" "$tmp/backup"
check "a relative backup path was made" [ ! -e "$tmp/relative" ]
status=0
as caveat-admin admin backup "$tmp/no-parent/backup" >"$tmp/backup" 2>&1 || status=$?
check "a backup under a missing directory: exit $status" [ "$status" -eq 1 ]
check "a backup under a missing directory: $(cat "$tmp/backup")" \
    grep -qF "$tmp/no-parent/backup: cannot create: No such file or directory" "$tmp/backup"

# every line a JSON object with a time, a level and a message
check "log lines not JSON: $(grep -v '^{"time":"[0-9-]*T[0-9:.]*Z","level":"\(debug\|info\|warning\|error\)",' "$tmp/log")" \
    [ -z "$(grep -v '^{"time":"[0-9-]*T[0-9:.]*Z","level":"\(debug\|info\|warning\|error\)",' "$tmp/log")" ]
if command -v python3 >/dev/null; then
    check "a log line does not parse as JSON" \
        python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$tmp/log"
fi

# a second broker may not take over the pid file of one that runs
status=0
(cd "$tmp" && timeout 10 "$CAVEATD" --policy policy.yaml --cert broker.cert_secret \
    --endpoint 'tcp://127.0.0.1:*' --data data2 --pid-file "$tmp/caveatd.pid" \
    >/dev/null 2>"$tmp/err2") || status=$?
check "a second broker on the pid file: exit $status" [ "$status" -eq 1 ]
check "a second broker: $(cat "$tmp/err2")" \
    grep -qF "caveatd.pid: names process $broker_pid, which is running" "$tmp/err2"

stop_broker
check "pid file left behind" [ ! -e "$tmp/caveatd.pid" ]

# --- text lines: TIME LEVEL caveatd: MESSAGE -------------------------------------
# with a link left where the pid file is written beside: the file it points
# at is not touched; and a pid file that is no longer this broker's stays
echo victim >"$tmp/victim"
ln -s "$tmp/victim" "$tmp/caveatd.pid.new"
start_broker --pid-file "$tmp/caveatd.pid"
check "the link's file was written through: $(cat "$tmp/victim")" \
    [ "$(cat "$tmp/victim")" = victim ]
check "pid file holds $(cat "$tmp/caveatd.pid"), not $broker_pid" \
    [ "$(cat "$tmp/caveatd.pid")" = "$broker_pid" ]
# caveat.reserve is safe to delete: the running broker makes it again
# when there is room, at its next look at the disk (a turn at least 100 ms
# after the last look; it once went on counting a reserve no longer there)
check "no caveat.reserve at start" [ -f "$tmp/data/caveat.reserve" ]
rm "$tmp/data/caveat.reserve"
for _ in $(seq 20); do
    sleep 0.15
    as caveat-admin admin stats >/dev/null
    [ -f "$tmp/data/caveat.reserve" ] && break
done
check "caveat.reserve deleted was not made again" [ -f "$tmp/data/caveat.reserve" ]
echo 1 >"$tmp/caveatd.pid" # as if another broker had it now
stop_broker
check "another's pid file removed" [ "$(cat "$tmp/caveatd.pid" 2>/dev/null)" = 1 ]
check "text lines without time and level: $(cat "$tmp/log")" \
    [ -z "$(grep -vE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z (debug|info|warning|error) caveatd: ' "$tmp/log")" ]
check "no 'serving' line" grep -qE ' info caveatd: serving tcp://127\.0\.0\.1:' "$tmp/log"

if [ "$failures" -ne 0 ]; then
    echo "$failures of $checks check(s) failed" >&2
    exit 1
fi
echo "cli_operations: ok ($checks checks)"
