#!/usr/bin/env bash
# fanout_instructions.sh BUILD_DIR [REPORTS]: the instructions caveatd's
# loop spends on each report of workload 2 (the fan-out: 21 of 50
# subscribers a report, six different views), counted by valgrind's
# callgrind, with the audit log on and off.
#
# broker_bench's fan-out p99 moves by milliseconds from one run to the
# next on a busy 2-core machine; an instruction count does not. The
# broker runs under callgrind (through the test harness's
# CAVEAT_BROKER_TOOL) while broker_bench's fan-out phase publishes
# REPORTS reports (default 200) at 20 a second, slow enough for the
# broker under valgrind to keep up. At that rate each report is a turn of
# its own (one commit, one sync, one save of acknowledgements a turn), so
# what a turn costs weighs more here than at 1,000 reports a second, where
# a turn takes about four. SHA-256 is counted apart and left out of the
# loop's figure (as in loop_instructions.sh: under valgrind the threads
# run one at a time, so the loop takes hashes a worker would take).
set -euo pipefail
build=${1:?usage: fanout_instructions.sh BUILD_DIR [REPORTS]}
reports=${2:-200}
build=$(cd "$build" && pwd)
source_dir=$(cd "$(dirname "$0")/.." && pwd)
bench=$build/bench/broker_bench
for tool in valgrind callgrind_annotate python3; do
    command -v "$tool" >/dev/null || {
        echo "fanout_instructions: $tool not found; apt-get install -y valgrind python3" >&2
        exit 1
    }
done
[ -x "$bench" ] || { echo "fanout_instructions: build broker_bench in $build first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rate=20
seconds=$(python3 -c "print($reports / $rate)")

# One run: broker_bench's fan-out phase, the broker under callgrind.
run() {
    local log=$1 phase=$2
    CAVEAT_BROKER_TOOL="valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file=$work/$log.out" \
        "$bench" --only "$phase" --rate "$rate" --seconds "$seconds" >"$work/$log.txt" 2>&1 || {
        cat "$work/$log.txt" >&2
        exit 1
    }
    local received released
    received=$(awk '/deliveries received/ {for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+$/) {print $i; exit}}' "$work/$log.txt")
    released=$(awk '/deliveries the policy releases/ {for (i = 5; i <= NF; i++) if ($i ~ /^[0-9]+$/) {print $i; exit}}' "$work/$log.txt")
    echo "$received" >"$work/$log.deliveries"
    [ -n "$received" ] && [ "$received" = "$released" ] || {
        echo "fanout_instructions: the $phase phase lost or added a delivery" >&2
        cat "$work/$log.txt" >&2
        exit 1
    }
}
run on fanout-full
run off fanout-nolog
"$source_dir/bench/callgrind_parts.py" "$work/on.out" "$work/off.out" "$reports" \
    "instructions a report on the loop's thread ($reports reports, $(cat "$work/on.deliveries") deliveries), audit log on and off" \
    broker_handle_message store_report cv_record_recipient broker_pump pack_delivery \
    cv_store_sent broker_message_to cv_router_save_all cv_record_delivered cv_record_flush \
    cv_store_commit release_synced sqlite3_step
