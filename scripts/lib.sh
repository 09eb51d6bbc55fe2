# Shared by scripts/test and scripts/demo: install what is missing, then
# configure and build with CMake. Sourced, not run.

CAVEAT_PACKAGES="build-essential cmake pkg-config libzmq3-dev libczmq-dev libsodium-dev
libprotobuf-c-dev protobuf-c-compiler libcmocka-dev libfyaml-dev libsqlite3-dev
libmicrohttpd-dev libssl-dev python3-zmq python3-protobuf protobuf-compiler
golang-go golang-golang-x-mod-dev"
# golang-go and golang-golang-x-mod-dev: tests/tlogcheck, the audit log checked
# by Go's golang.org/x/mod (skipped without them)
# scripts/fuzz only: clang and its libFuzzer runtime
CAVEAT_FUZZ_PACKAGES="clang libclang-rt-14-dev"

caveat_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# caveat_install_deps [PACKAGES]: installs those of the Debian packages
# (default: CAVEAT_PACKAGES) that are missing (as root), or prints the exact
# apt-get line and fails.
caveat_install_deps() {
    local missing=()
    for pkg in ${1:-$CAVEAT_PACKAGES}; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "caveat: installing ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                "${missing[@]}" >&2
    else
        echo "caveat: missing packages; run:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        return 1
    fi
}

# caveat_build DIR [cmake options...]: configure (once) and build.
caveat_build() {
    local dir=$1
    shift
    cmake -S "$caveat_root" -B "$dir" "$@" >/dev/null &&
        cmake --build "$dir" -j "$(nproc)" -- --no-print-directory >/dev/null
}
