#!/usr/bin/env bash
# loop_instructions.sh BUILD_DIR [REPORTS]: the instructions caveatd spends
# on each report of workload 1, counted by valgrind's callgrind.
#
# A change of a few hundred nanoseconds a report is lost in the run-to-run
# spread of broker_bench on a shared machine (tens of percent); an
# instruction count is the same from one run to the next. So a small change
# is measured here, and a large one in broker_bench. The broker runs under
# callgrind with broker_bench's workload-1 policy (bench/data/throughput.yaml,
# fresh keys), `caveat publish` sends REPORTS (default 3000) copies of the
# example vulnerable_individual report, `caveat subscribe` takes and
# acknowledges them, twice: with the audit log on and off. It prints the
# instructions a report of the broker's loop thread (cv_broker_run) and of
# each of the audit log's parts on it. SHA-256 is counted apart and left
# out of the loop's figure: under valgrind libcrypto has no SHA
# instructions, and the threads run one at a time, so the loop takes
# hashes a worker would take beside it.
set -euo pipefail
build=${1:?usage: loop_instructions.sh BUILD_DIR [REPORTS]}
reports=${2:-3000}
source_dir=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
caveatd=$build/broker/caveatd caveat=$build/client/caveat
for tool in valgrind callgrind_annotate python3; do
    command -v "$tool" >/dev/null || {
        echo "loop_instructions: $tool not found; apt-get install -y valgrind python3" >&2
        exit 1
    }
done
[ -x "$caveatd" ] && [ -x "$caveat" ] || {
    echo "loop_instructions: build caveatd and caveat in $build first" >&2
    exit 1
}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
for name in broker bench-publisher bench-subscriber; do
    "$caveat" keygen "$name" >"$name.public"
done
python3 - "$source_dir" "$reports" <<'PY'
import json, sys
source, reports = sys.argv[1], int(sys.argv[2])
policy = open(source + "/bench/data/throughput.yaml").read()
for name in ("bench-publisher", "bench-subscriber"):
    policy = policy.replace("${%s}" % name, open(name + ".public").read().split()[-1])
open("policy.yaml", "w").write(policy.replace("${more-agencies}", "").replace("${more-rules}", ""))
report = json.load(open(source + "/examples/reports/vulnerable_individual.json"))
report["originator"] = "bench-publisher"
with open("reports.jsonl", "w") as out:
    for i in range(reports):
        report["id"] = "li-%08d" % i
        out.write(json.dumps(report) + "\n")
PY

# One run: the broker under callgrind, every report published and received.
run() {
    local log=$1 port
    rm -rf data && mkdir -m 700 data
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$work/$log.out" \
        "$caveatd" \
        --policy policy.yaml --endpoint 'tcp://127.0.0.1:*' --cert broker.cert_secret \
        --data data --sync full --audit-log "$log" >ready 2>broker.log &
    local broker=$!
    for _ in $(seq 300); do
        grep -q ready ready 2>/dev/null && break
        kill -0 $broker 2>/dev/null || { cat broker.log >&2; exit 1; }
        sleep 0.2
    done
    port=$(grep -o 'tcp://127.0.0.1:[0-9]*' ready)
    local client=(--broker "$port" --server-key broker.cert)
    "$caveat" subscribe "${client[@]}" --cert bench-subscriber.cert_secret --count "$reports" \
        --timeout 600 >received &
    local subscriber=$!
    "$caveat" publish "${client[@]}" --cert bench-publisher.cert_secret reports.jsonl >published
    wait $subscriber
    kill -TERM $broker && wait $broker || true
    [ "$(wc -l <received)" -eq "$reports" ] || { echo "loop_instructions: a report was lost" >&2; exit 1; }
}
run on
run off
"$source_dir/bench/callgrind_parts.py" "$work/on.out" "$work/off.out" "$reports" \
    "instructions a report on the loop's thread ($reports reports), audit log on and off" \
    cv_record_accepted_begin cv_record_recipient cv_decision_outcomes cv_record_accepted_end \
    cv_record_delivered cv_record_flush cv_tlog_append_many sqlite3_step
