#!/bin/sh
# install-deps.sh: installs the Debian packages lexis needs to build and test.
# Idempotent: packages already present are skipped; run as root (or via sudo).
# Usage: tools/install-deps.sh [--bench] [--web]
#   --bench  adds the benchmark peers (wrk for tools/bench/serve-wrk.sh, ...)
#   --web    adds chromium, node and npm, and installs tests/web's
#            playwright-core (npm ci) for tests/t_web.sh
set -eu
BENCH=0 WEB=0
for a in "$@"; do
    case $a in
        --bench) BENCH=1 ;;
        --web) WEB=1 ;;
        *) echo "usage: tools/install-deps.sh [--bench] [--web]" >&2; exit 2 ;;
    esac
done

PKGS="build-essential pkg-config clang libclang-rt-14-dev
liblmdb-dev lmdb-utils libxxhash-dev libopenblas-dev libopenblas0-pthread libevent-dev libcmocka-dev
libjansson-dev libutf8proc-dev libstemmer-dev libstreamvbyte-dev libroaring-dev libzstd-dev
python3 strace"
if [ $WEB = 1 ]; then
    PKGS="$PKGS chromium"
    # A Node.js already on the machine (nodesource's, say) conflicts with
    # Debian's npm package: use it when it has npm, install Debian's otherwise.
    if ! command -v npm >/dev/null 2>&1; then PKGS="$PKGS nodejs npm"; fi
fi
if [ $BENCH = 1 ]; then
    PKGS="$PKGS libxapian-dev python3-xapian sqlite3 libsqlite3-dev gnuplot wrk hyperfine"
fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "install-deps: installing$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

if [ $WEB = 1 ]; then
    echo "install-deps: npm ci in tests/web (playwright-core; the browser is Debian's chromium)"
    (cd "$(dirname "$0")/../tests/web" && npm ci --no-audit --no-fund)
fi
