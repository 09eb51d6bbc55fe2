#!/bin/bash
# tlogcheck as a ctest test: builds the Go program offline, against
# Debian's golang.org/x/mod source, in the build directory, and runs it.
# Exit 77 (skipped) when go or that source is missing (Debian packages
# golang-go and golang-golang-x-mod-dev).
set -eu
: "${CAVEAT:?}" "${AUDIT_FIXTURE:?}" "${BUILD_DIR:?}"
x_mod=/usr/share/gocode/src/golang.org/x/mod
if ! command -v go >/dev/null || [ ! -f "$x_mod/sumdb/tlog/tlog.go" ]; then
    echo "tlogcheck: skipped: needs go and $x_mod (golang-go golang-golang-x-mod-dev)"
    exit 77
fi
here=$(cd "$(dirname "$0")" && pwd)
out="$BUILD_DIR/tlogcheck"
mkdir -p "$out"
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOCACHE="$out/cache" GOPATH="$out/gopath"
(cd "$here" && go build -o "$out/tlogcheck" .)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$out/tlogcheck" "$CAVEAT" "$AUDIT_FIXTURE" "$scratch"
