#!/usr/bin/env bash
# `caveat policy fmt`: the canonical layout on stdout, idempotent, comments
# kept, meaning kept (the example cases pass against the formatted example
# and policy diff finds nothing); --check exits 1 on an unformatted file;
# -i rewrites it in place. Needs CAVEAT and CAVEAT_SOURCE_DIR.
set -euo pipefail

. "$(dirname "$0")/lib_cli.sh"
: "${CAVEAT_SOURCE_DIR:?set CAVEAT_SOURCE_DIR to the repository root}"
POLICY="$CAVEAT_SOURCE_DIR/examples/policy.yaml"
CASES="$CAVEAT_SOURCE_DIR/examples/CASES.yaml"

run policy fmt "$POLICY"
expect_status 0 "fmt of the example"
cp "$tmp/out" "$tmp/formatted.yaml"

# idempotent
run policy fmt "$tmp/formatted.yaml"
cmp -s "$tmp/out" "$tmp/formatted.yaml" || fail "fmt of fmt differs: $(diff "$tmp/formatted.yaml" "$tmp/out")"

# every comment kept, word for word
comments() { grep -o '#[ -].*$' "$1" | sed 's/ *$//' | sort; }
diff <(comments "$POLICY") <(comments "$tmp/formatted.yaml") >"$tmp/comments.diff" ||
    fail "comments differ: $(cat "$tmp/comments.diff")"
expect_line "$tmp/formatted.yaml" "levels: [OFFICIAL, OFFICIAL-SENSITIVE, SECRET]  # lowest first" \
    "a trailing comment stays on its line"

# meaning kept: the cases pass, the diff is empty
run policy test "$tmp/formatted.yaml" "$CASES"
expect_status 0 "the example cases against the formatted example"
run policy diff "$POLICY" "$tmp/formatted.yaml"
expect_status 0 "diff of the example and its formatted self"

# --check
sed 's/^version: 7$/version:   7/' "$tmp/formatted.yaml" >"$tmp/unformatted.yaml"
run policy fmt --check "$tmp/unformatted.yaml"
expect_status 1 "--check of an unformatted file"
expect_line "$tmp/err" "caveat: $tmp/unformatted.yaml: not formatted (caveat policy fmt -i \
$tmp/unformatted.yaml)" "--check says"
[ ! -s "$tmp/out" ] || fail "--check printed the text"
run policy fmt --check "$tmp/formatted.yaml"
expect_status 0 "--check of a formatted file"

# -i rewrites in place, keeping the mode; again changes nothing
cp "$POLICY" "$tmp/inplace.yaml"
chmod 640 "$tmp/inplace.yaml"
run policy fmt -i "$tmp/inplace.yaml"
expect_status 0 "fmt -i"
cmp -s "$tmp/inplace.yaml" "$tmp/formatted.yaml" || fail "fmt -i wrote something else"
[ "$(stat -c %a "$tmp/inplace.yaml")" = 640 ] || fail "fmt -i changed the mode"
run policy fmt --write "$tmp/inplace.yaml"
cmp -s "$tmp/inplace.yaml" "$tmp/formatted.yaml" || fail "fmt --write of a formatted file changed it"
[ "$(ls "$tmp" | grep -c fmt-)" -eq 0 ] || fail "a temporary file was left behind"

# bad input
printf 'a: [b\n' >"$tmp/broken.yaml"
run policy fmt "$tmp/broken.yaml"
expect_status 2 "fmt of broken YAML"
expect_line "$tmp/err" "$tmp/broken.yaml:2:1: error: flow sequence without a closing bracket" \
    "broken YAML's error"
run policy fmt --check -i "$POLICY"
expect_status 2 "--check with -i"

finish cli_policy_fmt
