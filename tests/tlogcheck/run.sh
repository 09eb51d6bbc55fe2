#!/bin/bash
# tlogcheck as a ctest test: builds the Go program (build.sh) and runs it.
# Exit 77 (skipped) when go or Debian's x/mod source is missing.
set -eu
: "${CAVEAT:?}" "${AUDIT_FIXTURE:?}" "${BUILD_DIR:?}"
status=0
tlogcheck=$(bash "$(dirname "$0")/build.sh") || status=$?
[ "$status" -eq 0 ] || exit "$status"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$tlogcheck" "$CAVEAT" "$AUDIT_FIXTURE" "$scratch"
