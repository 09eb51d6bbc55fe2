#!/usr/bin/env bash
# `caveat policy check`: every error of a policy in one run, each naming
# its entry; the warnings (an entry that only denies, a shadowed entry,
# levels that look reversed) with exit 0; --strict turns them into exit 1.
# Needs CAVEAT (the built caveat).
set -euo pipefail

. "$(dirname "$0")/lib_cli.sh"

# Lines 1-7: a header and two agencies; policies append rules from line 8.
header() {
    cat <<'YAML'
protocol: p
version: 1
levels: [OFFICIAL, OFFICIAL-SENSITIVE, SECRET]
agencies:
  police: {organisation: o1, type: police, clearance: SECRET, areas: [hull], key: "0000000000000000000000000000000000000001"}
  council: {organisation: o2, type: local_authority, clearance: OFFICIAL, areas: [hull], key: "0000000000000000000000000000000000000002"}
rules:
YAML
}

# --- every error in one run ------------------------------------------------

bad="$tmp/bad.yaml"
{
    header
    cat <<'YAML'
  - name: r1
    categories: [vulnerable_individual]
    to_types: [local_authority]
    max_level: TOP
    fields: {summary: share}
  - name: r2
    categories: [vulnerable_individual]
    to_types: [local_authority]
    fields: {subjects.nmae: share}
  - name: r3
    categories: [feedback]
    to_types: [local_authority]
    colour: red
    fields: {summary: share}
YAML
} >"$bad"
run policy check "$bad"
expect_status 1 "a policy with three errors"
expect_line "$tmp/err" "$bad:11:16: error: rule 'r1': max_level: unknown level 'TOP'" "first error"
expect_line "$tmp/err" "$bad:16:14: error: rule 'r2': fields: unknown field path 'subjects.nmae'" \
    "second error"
expect_line "$tmp/err" "$bad:20:5: error: rule 'r3': unknown key 'colour'" "third error"
expect_line "$tmp/err" "caveat: $bad: 3 errors" "error count"
[ "$(grep -c ': error: ' "$tmp/err")" -eq 3 ] || fail "not exactly three errors: $(cat "$tmp/err")"
[ ! -s "$tmp/out" ] || fail "a refused policy printed: $(cat "$tmp/out")"

# a duplicate key says which
{
    header
    cat <<'YAML'
  - name: r1
    categories: [vulnerable_individual]
    to_types: [local_authority]
    fields: {summary: share}
    fields: {narrative: share}
YAML
} >"$tmp/dup.yaml"
run policy check "$tmp/dup.yaml"
expect_status 1 "a duplicate key"
expect_line "$tmp/err" "$tmp/dup.yaml:12:5: error: duplicate key 'fields'" "duplicate key"

# --- warnings ----------------------------------------------------------------

clean="$tmp/clean.yaml"
{
    header
    cat <<'YAML'
  - name: referral
    categories: [vulnerable_individual]
    from_types: [police]
    to_types: [local_authority]
    fields: {summary: share, subjects.name: {mask: initials}}
YAML
} >"$clean"
run policy check --strict "$clean"
expect_status 0 "a clean policy with --strict"
expect_line "$tmp/out" "$clean: ok: protocol p version 1, 2 agencies" "clean summary"
[ ! -s "$tmp/err" ] || fail "a clean policy warned: $(cat "$tmp/err")"

# POLICY-FILE WARNING-LINE WHAT: the warning, exit 0; with --strict exit 1
expect_warning() {
    run policy check "$1"
    expect_status 0 "$3"
    expect_line "$tmp/err" "$2" "$3"
    expect_line "$tmp/out" "$1: ok: protocol p version 1, 2 agencies, 1 warning" "$3: summary"
    run policy check "$1" --strict
    expect_status 1 "$3 with --strict"
    expect_line "$tmp/err" "$2" "$3 with --strict"
    expect_line "$tmp/err" "caveat: $1: --strict: warnings are errors" "$3 with --strict"
}

{
    cat "$clean"
    cat <<'YAML'
  - name: only-denies
    categories: [feedback]
    to_types: [police]
    fields: {summary: deny}
YAML
} >"$tmp/deny.yaml"
expect_warning "$tmp/deny.yaml" "$tmp/deny.yaml:13:5: warning: rule 'only-denies': every field is \
deny: it can never deliver a report, only withhold fields that other entries grant" "all deny"

{
    cat "$clean"
    cat <<'YAML'
  - name: narrower
    categories: [vulnerable_individual]
    from_types: [police]
    to_types: [local_authority]
    same_area: true
    fields: {summary: share}
YAML
} >"$tmp/shadow.yaml"
expect_warning "$tmp/shadow.yaml" "$tmp/shadow.yaml:13:5: warning: rule 'narrower' is shadowed by \
rule 'referral': that one matches every delivery this one matches and already gives each field \
as much protection" "shadowed"

sed 's/^levels: .*/levels: [SECRET, OFFICIAL-SENSITIVE, OFFICIAL]/' "$clean" >"$tmp/levels.yaml"
expect_warning "$tmp/levels.yaml" "$tmp/levels.yaml:3:10: warning: levels: 'SECRET' is listed \
before 'OFFICIAL-SENSITIVE', but levels are listed lowest first" "reversed levels"

{
    cat "$clean"
    cat <<'YAML'
restrictions:
  - name: all-excepted
    to_types: [local_authority]
    except_to_agencies: [council]
    fields: {narrative: deny}
YAML
} >"$tmp/restriction.yaml"
expect_warning "$tmp/restriction.yaml" "$tmp/restriction.yaml:14:5: warning: restriction \
'all-excepted' can never apply: its to_* and except_to_* leave no recipient" "a restriction \
that never applies"

# the example says what never happens with restrictions, not with rules that
# only deny: it checks clean, even with --strict
: "${CAVEAT_SOURCE_DIR:?set CAVEAT_SOURCE_DIR to the repository root}"
run policy check --strict "$CAVEAT_SOURCE_DIR/examples/policy.yaml"
expect_status 0 "the example with --strict"
[ ! -s "$tmp/err" ] || fail "the example warned: $(cat "$tmp/err")"

run policy check --help
expect_status 0 "check --help"
grep -q -- "--strict" "$tmp/out" || fail "check --help does not describe --strict"

finish cli_policy_check
