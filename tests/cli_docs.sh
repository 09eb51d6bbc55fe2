#!/usr/bin/env bash
# The first policy in docs/policy.md is what a reader copies: it must load,
# and do what the text under it says (a referral reaches the council with
# the name, year of birth and postcode district, and nothing else of the
# subject).
set -euo pipefail
: "${CAVEAT:?}" "${CAVEAT_SOURCE_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '/^```yaml$/ && !done {inside=1; next} /^```$/ && inside {inside=0; done=1} inside' \
    "$CAVEAT_SOURCE_DIR/docs/policy.md" >"$tmp/first.yaml"
grep -q '^protocol: humber-prevent' "$tmp/first.yaml" || { echo "not ok - the first example was not found"; exit 1; }
"$CAVEAT" policy check "$tmp/first.yaml"
out=$("$CAVEAT" policy explain "$tmp/first.yaml" \
    --report "$CAVEAT_SOURCE_DIR/examples/reports/vulnerable_individual.json" --to hull-cc)
failures=0
for want in '"delivered":true' '"subjects":[{"name":"Jordan Ellis","date_of_birth":"2009","postcode":"HU3"}]'; do
    if grep -qF -- "$want" <<<"$out"; then echo "ok - $want"; else echo "not ok - $want"; failures=$((failures + 1)); fi
done
# withheld values: the address, the narrative's text, the source reference
for unwanted in 'Example Street' 'Mother called 101' 'SR/2026/0441'; do
    if grep -qF -- "$unwanted" <<<"$out"; then
        echo "not ok - $unwanted leaked"; failures=$((failures + 1))
    else
        echo "ok - no $unwanted"
    fi
done
echo "$failures failed"
[ "$failures" -eq 0 ]
