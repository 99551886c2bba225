#!/bin/sh
# demo.sh: the README's first command, after the build: fetches the English
# descriptions of every Debian package (~64,000, via apt), indexes them into
# data-local/debpkgs.idx and runs a few searches.
#   tools/demo.sh [BUILD_DIR]     (default build/release)
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build/release}
mkdir -p data-local
tools/fetch-debpkgs.sh data-local/debpkgs.jsonl "$BUILD"
"$BUILD/lexis" build data-local/debpkgs.idx --corpus data-local/debpkgs.jsonl --force
"$BUILD/lexis" inspect data-local/debpkgs.idx
for q in "fast json parser for c" "lightweight http server" "pdf viewer" \
         "full text search engine"; do
    echo
    echo "\$ lexis search data-local/debpkgs.idx \"$q\" -k 5"
    "$BUILD/lexis" search data-local/debpkgs.idx "$q" -k 5
done
