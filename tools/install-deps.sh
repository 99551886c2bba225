#!/bin/sh
# install-deps.sh: installs the Debian packages lexis needs to build and test.
# Idempotent: packages already present are skipped; run as root (or via sudo).
# Usage: tools/install-deps.sh [--bench]   (--bench adds the benchmark peers)
set -eu

PKGS="build-essential pkg-config clang libclang-rt-14-dev
liblmdb-dev lmdb-utils libxxhash-dev libopenblas-dev libevent-dev libcmocka-dev
libjansson-dev libutf8proc-dev libstemmer-dev libstreamvbyte-dev libroaring-dev
python3"
if [ "${1:-}" = "--bench" ]; then
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
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
