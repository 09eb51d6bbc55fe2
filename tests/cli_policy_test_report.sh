#!/usr/bin/env bash
# `caveat policy test --coverage` lists the entries no case exercises,
# and the restrictions that capped no case's field;
# `--format json` writes one JSON object and `--format junit` JUnit XML
# (a testcase per case, failures with their message, markup escaped).
# Needs CAVEAT; the JSON and XML are read back with python3 when present.
set -euo pipefail

. "$(dirname "$0")/lib_cli.sh"

cat >"$tmp/policy.yaml" <<'YAML'
protocol: p
version: 1
levels: [OFFICIAL, SECRET]
agencies:
  police: {organisation: o1, type: police, clearance: SECRET, areas: [hull], key: "0000000000000000000000000000000000000001"}
  ctio: {organisation: o1, type: ctio, clearance: SECRET, areas: [hull], key: "0000000000000000000000000000000000000003"}
  council: {organisation: o2, type: local_authority, clearance: OFFICIAL, areas: [hull], key: "0000000000000000000000000000000000000002"}
rules:
  - name: referral
    categories: [vulnerable_individual]
    from_types: [police]
    to_types: [local_authority]
    fields: {summary: share, grading: share}
  - name: feedback
    categories: [feedback]
    from_types: [local_authority]
    to_types: [police]
    fields: {summary: share}
screening:
  - name: screen
    feed: ctio
    to_types: [ctio]
    match: {keywords: [knife]}
    fields: {summary: share}
restrictions:
  - name: grading-stays-with-police
    from_types: [police]
    to_types: [local_authority]
    fields: {grading: deny}
  - name: ctio-gets-no-narrative
    to_types: [ctio]
    fields: {narrative: deny}
YAML

cat >"$tmp/cases.yaml" <<'YAML'
cases:
  - name: the council gets the summary
    report: &referral {id: r-1, category: vulnerable_individual, originator: police,
                       handling_level: OFFICIAL, area: hull, summary: seen,
                       grading: {handling_code: "1"}}
    to: council
    present: [summary]
  - name: a <wrong> & "odd" 'case'
    report: *referral
    to: council
    absent: [summary]
YAML

run policy test "$tmp/policy.yaml" "$tmp/cases.yaml" --coverage
expect_status 1 "text with a failing case"
expect_line "$tmp/out" "1 passed, 1 failed" "text summary"
expect_line "$tmp/out" "coverage: 1 of 3 entries exercised" "coverage line"
expect_line "$tmp/out" "not exercised: rule 'feedback'" "unexercised rule"
expect_line "$tmp/out" "not exercised: screening 'screen'" "unexercised screening entry"
grep -q "not exercised: rule 'referral'" "$tmp/out" && fail "referral is exercised"
expect_line "$tmp/out" "coverage: 1 of 2 restrictions exercised" "restrictions coverage line"
expect_line "$tmp/out" "not exercised: restriction 'ctio-gets-no-narrative'" \
    "unexercised restriction"
grep -q "not exercised: restriction 'grading-stays-with-police'" "$tmp/out" &&
    fail "grading-stays-with-police capped the council's grading"

run policy test "$tmp/policy.yaml" "$tmp/cases.yaml"
grep -q "coverage" "$tmp/out" && fail "coverage without --coverage"

run policy test "$tmp/policy.yaml" "$tmp/cases.yaml" --coverage --format json
expect_status 1 "json with a failing case"
[ "$(wc -l <"$tmp/out")" -eq 1 ] || fail "json is not one line: $(cat "$tmp/out")"
cp "$tmp/out" "$tmp/report.json"
if command -v python3 >/dev/null; then
    python3 - "$tmp/report.json" <<'PY' || fail "json report: $(cat "$tmp/report.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["passed"] == 1 and r["failed"] == 1, r
assert [c["passed"] for c in r["cases"]] == [True, False], r
assert r["cases"][1]["name"] == "a <wrong> & \"odd\" 'case'", r
assert "summary is present, expected absent" in r["cases"][1]["failures"][0], r
assert r["coverage"] == {"entries": 3, "exercised": 1, "restrictions": 2,
                         "restrictions_exercised": 1, "not_exercised": [
    {"kind": "rule", "name": "feedback"}, {"kind": "screening", "name": "screen"},
    {"kind": "restriction", "name": "ctio-gets-no-narrative"}]}, r
PY
fi

run policy test "$tmp/policy.yaml" "$tmp/cases.yaml" --format junit
expect_status 1 "junit with a failing case"
cp "$tmp/out" "$tmp/report.xml"
run policy test "$tmp/policy.yaml" "$tmp/cases.yaml" --format junit --coverage
grep -qF "not exercised: restriction 'ctio-gets-no-narrative'" "$tmp/out" ||
    fail "junit coverage: $(cat "$tmp/out")"
grep -qF '<testsuites tests="2" failures="1">' "$tmp/report.xml" || fail "junit counts"
grep -qF 'name="a &lt;wrong&gt; &amp; &quot;odd&quot; &apos;case&apos;"' "$tmp/report.xml" ||
    fail "junit escaping: $(cat "$tmp/report.xml")"
if command -v python3 >/dev/null; then
    python3 - "$tmp/report.xml" <<'PY' || fail "junit report: $(cat "$tmp/report.xml")"
import sys, xml.etree.ElementTree as ET
suites = ET.parse(sys.argv[1]).getroot()
suite = suites.find("testsuite")
assert suite.get("tests") == "2" and suite.get("failures") == "1"
cases = suite.findall("testcase")
assert [c.get("name") for c in cases] == ["the council gets the summary",
                                          "a <wrong> & \"odd\" 'case'"]
assert cases[0].find("failure") is None
failure = cases[1].find("failure")
assert "summary is present, expected absent" in failure.get("message")
PY
fi

# every case passing: exit 0 in every format
sed -i '/  - name: a <wrong>/,$d' "$tmp/cases.yaml"
for format in text json junit; do
    run policy test "$tmp/policy.yaml" "$tmp/cases.yaml" --format "$format"
    expect_status 0 "all passing, $format"
done
grep -qF '<testsuites tests="1" failures="0">' "$tmp/out" || fail "junit counts when passing"

run policy test "$tmp/policy.yaml" "$tmp/cases.yaml" --format yaml
expect_status 2 "an unknown format"
grep -q "usage: .*--format text|json|junit" "$tmp/err" || fail "unknown format: $(cat "$tmp/err")"

finish cli_policy_test_report
