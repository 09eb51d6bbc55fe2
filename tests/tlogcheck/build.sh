#!/bin/bash
# Builds tlogcheck offline, against Debian's golang.org/x/mod source, into
# $BUILD_DIR/tlogcheck/tlogcheck and prints that path. Exit 77 (skipped)
# when go or that source is missing (Debian packages golang-go and
# golang-golang-x-mod-dev).
set -eu
: "${BUILD_DIR:?}"
x_mod=/usr/share/gocode/src/golang.org/x/mod
if ! command -v go >/dev/null || [ ! -f "$x_mod/sumdb/tlog/tlog.go" ]; then
    echo "tlogcheck: skipped: needs go and $x_mod (golang-go golang-golang-x-mod-dev)" >&2
    exit 77
fi
here=$(cd "$(dirname "$0")" && pwd)
out="$BUILD_DIR/tlogcheck"
mkdir -p "$out"
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOCACHE="$out/cache" GOPATH="$out/gopath"
(cd "$here" && go build -o "$out/tlogcheck" .) >&2
echo "$out/tlogcheck"
