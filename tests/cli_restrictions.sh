#!/usr/bin/env bash
# Restrictions through the real `caveat` binary, on the example policy:
# policy explain and policy views name the restriction that capped a field,
# a delivery restrictions empty is not made and the reason says which, and
# a restriction that would share is refused at load with its position.
set -euo pipefail
: "${CAVEAT:?}" "${CAVEAT_SOURCE_DIR:?}"
cd "$CAVEAT_SOURCE_DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
policy=examples/policy.yaml
failures=0
check() { # check NAME COMMAND...: run, count a failure with its name
    if "${@:2}"; then echo "ok - $1"; else echo "not ok - $1"; failures=$((failures + 1)); fi
}
has() { grep -qF -- "$2" <<<"$1"; }
lacks() { ! grep -qF -- "$2" <<<"$1"; }

# health's feedback to the police: the rule shares everything, the
# restriction keeps the NHS number in health
cat >"$tmp/feedback.json" <<'JSON'
{"originator": "hull-nhs", "created": "2026-11-29T11:20:00Z", "category": "feedback",
 "handling_level": "OFFICIAL-SENSITIVE", "grading": {"handling_code": "2"}, "area": "hull",
 "subjects": [{"name": "Aisha Bennett", "identifiers": {"nhs_number": "943 476 5919"}}],
 "summary": "Patient discharged to the community mental health team."}
JSON
out=$("$CAVEAT" policy explain $policy --report "$tmp/feedback.json" --to hum-bcu-hull)
check "explain: delivered by the rule" has "$out" '{"delivered":true,"feed":null,"rules":["feedback-to-police"]'
check "explain: field names the restriction" has "$out" \
    '{"path":"subjects.identifiers","decision":"withheld","why":"denied by restriction health-identifiers-stay-in-health"}'
check "explain: reason names the restriction" has "$out" \
    '"subjects.identifiers: denied by restriction health-identifiers-stay-in-health"'
check "explain: no NHS number anywhere" lacks "$out" '943 476 5919'
check "explain: the rest goes" has "$out" '"name":"Aisha Bennett"'

# a restriction that removes every field a rule grants: nothing is sent
cp $policy "$tmp/tight.yaml"
cat >>"$tmp/tight.yaml" <<'YAML'

  - name: colleges-hear-no-incidents
    categories: [critical_incident]
    to_types: [education]
    fields: {summary: deny, location: deny, priority: deny}
YAML
"$CAVEAT" policy check "$tmp/tight.yaml" >/dev/null
out=$("$CAVEAT" policy explain "$tmp/tight.yaml" --report examples/reports/critical_incident.json --to hull-college)
check "explain: emptied delivery not made" has "$out" '{"delivered":false,"feed":null,"rules":[]'
check "explain: emptied delivery names the restriction" has "$out" \
    'restriction colleges-hear-no-incidents removes every field the matching rules and screening entries grant here'
out=$("$CAVEAT" policy explain "$tmp/tight.yaml" --report examples/reports/critical_incident.json --to hull-cc)
check "explain: other recipients unaffected" has "$out" '"delivered":true'

# policy views: one line per capped field, naming the restriction
out=$(COLUMNS=200 "$CAVEAT" policy views $policy --report examples/reports/radicalisation_concern.json)
check "views: capped field listed" grep -qE '^  uk-bf-humber +grading.handling_code: denied by restriction sources-stay-in-policing$' <<<"$out"
check "views: police column keeps the grading" grep -qE '^grading.handling_code +2 ' <<<"$out"

# share in a restriction is refused, naming it, at the value
cp $policy "$tmp/share.yaml"
printf '\n  - name: leaky\n    fields: {summary: share}\n' >>"$tmp/share.yaml"
line=$(grep -n 'fields: {summary: share}' "$tmp/share.yaml" | tail -1 | cut -d: -f1)
rc=0
err=$("$CAVEAT" policy check "$tmp/share.yaml" 2>&1 >/dev/null) || rc=$?
check "share refused: exit 1" test "$rc" -eq 1
check "share refused: position and text" has "$err" \
    "$tmp/share.yaml:$line:23: error: restriction 'leaky': summary: share is not allowed in a restriction: it only denies or masks"

# loading goes on past a bad restriction: the one after it is checked too
printf '  - name: mistyped\n    to_types: [polise]\n    fields: {summary: deny}\n' >>"$tmp/share.yaml"
rc=0
err=$("$CAVEAT" policy check "$tmp/share.yaml" 2>&1 >/dev/null) || rc=$?
check "two bad restrictions: exit 1" test "$rc" -eq 1
check "two bad restrictions: the first" has "$err" "error: restriction 'leaky': summary: share"
check "two bad restrictions: the second" has "$err" \
    "error: restriction 'mistyped': to_types: no agency has type 'polise'"
check "two bad restrictions: counted" has "$err" "share.yaml: 2 errors"

echo "$failures failed"
[ "$failures" -eq 0 ]
