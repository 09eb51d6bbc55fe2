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

# README.md's tour, the protocol administrator's tools: each line run as
# written, from a copy of the repository's examples (the graph's `dot`, not
# a dependency, left out). Each exits 0 but diff (1: the versions differ),
# and none changes a file of the repository.
mkdir -p "$tmp/tour"
cp -r "$CAVEAT_SOURCE_DIR/examples" "$tmp/tour/"
cp -r "$tmp/tour/examples" "$tmp/as-given"
awk '/^# the protocol administrator.s tools/ {inside=1; next} /^# the broker/ {inside=0} inside' \
    "$CAVEAT_SOURCE_DIR/README.md" | sed -e 's/ *#.*$//' -e 's/ | dot -Tsvg > sharing.svg$//' |
    awk '/\\$/ {sub(/\\$/, ""); line = line $0; next} {print line $0; line = ""}' |
    grep -v '^ *$' >"$tmp/tour.sh"
[ "$(grep -c '^\$B policy' "$tmp/tour.sh")" -ge 7 ] || {
    echo "not ok - the tour's policy lines were not found: $(cat "$tmp/tour.sh")"
    failures=$((failures + 1))
}
while IFS= read -r line; do
    want=0
    case "$line" in *"policy diff "*) want=1 ;; esac
    status=0
    (cd "$tmp/tour" && B=$CAVEAT && eval "$line" >/dev/null 2>"$tmp/tour.err") || status=$?
    if [ "$status" -eq "$want" ]; then
        echo "ok - tour: $line"
    else
        echo "not ok - tour: $line: exit $status, not $want: $(cat "$tmp/tour.err")"
        failures=$((failures + 1))
    fi
done <"$tmp/tour.sh"
if diff -r "$tmp/as-given" "$tmp/tour/examples" >/dev/null; then
    echo "ok - the tour leaves the examples as they are"
else
    echo "not ok - the tour changed $(diff -rq "$tmp/as-given" "$tmp/tour/examples")"
    failures=$((failures + 1))
fi

# the docs cite nothing outside the repository: no link to a web page
# (an address the broker serves, on loopback or an example network, is no
# citation)
links=$(grep -rnoE 'https?://[^ )>`"]+' "$CAVEAT_SOURCE_DIR/README.md" "$CAVEAT_SOURCE_DIR/docs" |
    grep -vE 'https?://(127\.0\.0\.1|0\.0\.0\.0|10\.0\.0\.5)[:/]' || true)
if [ -z "$links" ]; then
    echo "ok - no link out of the repository"
else
    echo "not ok - links out of the repository: $links"
    failures=$((failures + 1))
fi
echo "$failures failed"
[ "$failures" -eq 0 ]
