#!/usr/bin/env bash
# libcaveat as an agency's developer gets it: `cmake --install` into a
# temporary prefix, then the examples of examples/libcaveat built against
# the installed tree only, once through pkg-config and once through
# find_package(caveat), and run against a real caveatd: a report published
# by the police reaches the council. Also checks what the installed library
# shows: its SONAME, no internal symbols, no internal headers.
# Needs BUILD_DIR, CAVEATD and CAVEAT_SOURCE_DIR.
set -euo pipefail
: "${BUILD_DIR:?}" "${CAVEATD:?}" "${CAVEAT_SOURCE_DIR:?}"
CMAKE=${CMAKE:-cmake}
CC=${CC:-cc}

tmp=$(mktemp -d)
broker_pid=
cleanup() {
    [ -z "$broker_pid" ] || kill -TERM "$broker_pid" 2>/dev/null || true
    [ -z "$broker_pid" ] || wait "$broker_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
ok() { echo "ok - $*"; }
fail() { echo "not ok - $*"; failures=$((failures + 1)); }

prefix=$tmp/prefix
"$CMAKE" --install "$BUILD_DIR" --prefix "$prefix" >"$tmp/install.log"
libdir=$(dirname "$(find "$prefix" -name caveat.pc)")/..
libdir=$(cd "$libdir" && pwd)
export PKG_CONFIG_PATH=$libdir/pkgconfig

# --- what is installed ---------------------------------------------------------
for file in include/caveat.h include/caveat/error.h include/caveat/report.pb-c.h; do
    [ -f "$prefix/$file" ] && ok "$file" || fail "$file not installed"
done
extra=$(cd "$prefix/include" && find . -type f | sort | grep -v -x -e ./caveat.h \
    -e ./caveat/error.h -e ./caveat/report.pb-c.h || true)
[ -z "$extra" ] && ok "no other header" || fail "internal headers installed: $extra"
soname=$(readelf -d "$libdir/libcaveat.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libcaveat.so.0 ] && ok "SONAME $soname" || fail "SONAME '$soname'"
[ -f "$libdir/libcaveat.a" ] && ok "libcaveat.a" || fail "no libcaveat.a"
# exported: the API (cv_client_*, cv_*_name, ...) and the report schema only
internal=$(nm -D --defined-only "$libdir/libcaveat.so" | awk '{print $3}' |
    grep -v -E '^(cv_client_|cv_publish_results_clear$|cv_approval_result_clear$|cv_status_name$|cv_error_code_name$|cv_code_name$|caveat_version$|caveat__)' || true)
[ -z "$internal" ] && ok "only the API exported" || fail "internal symbols exported: $internal"
version=$(pkg-config --modversion caveat)
grep -q "#define CAVEAT_VERSION_STRING \"$version\"" "$prefix/include/caveat.h" &&
    ok "caveat.pc version $version is caveat.h's" || fail "caveat.pc says $version"

# --- building against it ------------------------------------------------------
examples=$CAVEAT_SOURCE_DIR/examples/libcaveat
# shellcheck disable=SC2046 # pkg-config's output is words
if "$CC" -Wall -Wextra -Werror $(pkg-config --cflags caveat) -o "$tmp/publish" \
    "$examples/publish.c" $(pkg-config --libs caveat) -Wl,-rpath,"$libdir" 2>"$tmp/cc.err"; then
    ok "publish.c through pkg-config"
else
    fail "publish.c through pkg-config: $(cat "$tmp/cc.err")"
fi
# README.md's example, as a reader copies it
awk '/^## Using libcaveat/ {section=1} section && /^```c$/ {inside=1; next}
     inside && /^```$/ {exit} inside' "$CAVEAT_SOURCE_DIR/README.md" >"$tmp/readme.c"
# shellcheck disable=SC2046
if grep -q cv_client_publish "$tmp/readme.c" && "$CC" -Wall -Wextra -Werror \
    $(pkg-config --cflags caveat) -o "$tmp/readme" "$tmp/readme.c" $(pkg-config --libs caveat) \
    2>"$tmp/cc.err"; then
    ok "README.md's example through pkg-config"
else
    fail "README.md's example: $(cat "$tmp/cc.err")"
fi
# a C++ program includes it too
if command -v "${CXX:-c++}" >/dev/null; then
    printf '#include <caveat.h>\nint main() { return caveat_version() == nullptr; }\n' >"$tmp/app.cc"
    # shellcheck disable=SC2046
    if "${CXX:-c++}" -Wall -Wextra -Werror $(pkg-config --cflags caveat) -o "$tmp/app" \
        "$tmp/app.cc" $(pkg-config --libs caveat) -Wl,-rpath,"$libdir" 2>"$tmp/cc.err" &&
        "$tmp/app"; then
        ok "a C++ program"
    else
        fail "a C++ program: $(cat "$tmp/cc.err")"
    fi
fi
# the static library, with the shared libraries of what caveat.pc requires
# (pkg-config --static would also ask for their own static dependencies,
# and Debian's libzmq names some that are not there)
requires=$(pkg-config --print-requires caveat --print-requires-private caveat | awk '{print $1}')
# shellcheck disable=SC2046,SC2086
if "$CC" $(pkg-config --cflags caveat) -o "$tmp/publish-static" "$examples/publish.c" \
    "$libdir/libcaveat.a" $(pkg-config --libs $requires) -lpthread \
    2>"$tmp/cc.err" && ! ldd "$tmp/publish-static" | grep -q libcaveat; then
    ok "publish.c with libcaveat.a"
else
    fail "publish.c with libcaveat.a: $(cat "$tmp/cc.err")"
fi
if "$CMAKE" -S "$examples" -B "$tmp/example-build" -DCMAKE_PREFIX_PATH="$prefix" \
    >"$tmp/cmake.log" 2>&1 && "$CMAKE" --build "$tmp/example-build" >>"$tmp/cmake.log" 2>&1; then
    ok "examples through find_package(caveat)"
else
    fail "examples through find_package(caveat): $(tail -20 "$tmp/cmake.log")"
fi
[ "$failures" -eq 0 ] || { echo "$failures failed"; exit 1; }

# --- running it ----------------------------------------------------------------
for key in broker.cert broker.cert_secret hum-bcu-hull.cert_secret hull-cc.cert_secret; do
    install -m 600 "$CAVEAT_SOURCE_DIR/examples/keys/$key" "$tmp/$key"
done
(cd "$tmp" && exec "$CAVEATD" --policy "$CAVEAT_SOURCE_DIR/examples/policy.yaml" \
    --cert broker.cert_secret --endpoint 'tcp://127.0.0.1:!' --data data \
    >"$tmp/broker.out" 2>"$tmp/broker.err") &
broker_pid=$!
for _ in $(seq 200); do
    grep -q "^caveatd: ready on" "$tmp/broker.out" 2>/dev/null && break
    sleep 0.05
done
endpoint=$(sed -n 's/^caveatd: ready on //p' "$tmp/broker.out")
[ -n "$endpoint" ] || { echo "not ok - caveatd did not start: $(cat "$tmp/broker.err")"; exit 1; }

"$tmp/example-build/subscribe" "$endpoint" "$tmp/broker.cert" "$tmp/hull-cc.cert_secret" 1 \
    >"$tmp/subscribe.out" 2>"$tmp/subscribe.err" &
subscriber=$!
sleep 0.5 # its session is open before the report is published
if id=$("$tmp/publish" "$endpoint" "$tmp/broker.cert" "$tmp/hum-bcu-hull.cert_secret" hull \
    "installed libcaveat" 2>"$tmp/publish.err"); then
    ok "published $id"
else
    fail "publish: $(cat "$tmp/publish.err")"
fi
if wait "$subscriber" && grep -qxF "$id installed libcaveat" "$tmp/subscribe.out"; then
    ok "delivered to hull-cc"
else
    fail "not delivered: $(cat "$tmp/subscribe.out" "$tmp/subscribe.err")"
fi
grep -qx "subscribe: connected" "$tmp/subscribe.err" && ok "state callback" ||
    fail "no state callback: $(cat "$tmp/subscribe.err")"

# the static build, and an error code for a broker that is not there
"$tmp/publish-static" "$endpoint" "$tmp/broker.cert" "$tmp/hum-bcu-hull.cert_secret" hull \
    "static" >/dev/null 2>"$tmp/publish.err" && ok "libcaveat.a publishes" ||
    fail "libcaveat.a: $(cat "$tmp/publish.err")"
kill -TERM "$broker_pid" && wait "$broker_pid" || true
broker_pid=
status=0
"$tmp/publish" "$endpoint" "$tmp/broker.cert" "$tmp/hum-bcu-hull.cert_secret" hull "gone" \
    2>"$tmp/publish.err" || status=$?
[ "$status" -eq 1 ] && grep -q "(UNREACHABLE)$" "$tmp/publish.err" &&
    ok "broker down: $(cat "$tmp/publish.err")" || fail "broker down: $(cat "$tmp/publish.err")"

echo "$failures failed"
[ "$failures" -eq 0 ]
