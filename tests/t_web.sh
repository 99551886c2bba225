#!/bin/sh
# t_web.sh: the search page end to end in headless Chromium
# (tests/web/search_page.test.mjs: type a query, see highlighted results,
# screenshots under $BUILD/web/). Skips, saying why, when chromium, node or
# tests/web/node_modules is missing; install them with
#   tools/install-deps.sh --web      (apt: chromium nodejs npm; npm ci in tests/web)
# Environment: LEXIS (binary), BUILD (screenshots go to $BUILD/web;
# default build/release), CHROMIUM (default /usr/bin/chromium),
# LEXIS_REQUIRE_WEB=1 (CI: a missing browser or node fails instead of skipping).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${LEXIS:=$ROOT/build/release/lexis}"
: "${BUILD:=build/release}"
: "${CHROMIUM:=/usr/bin/chromium}"
skip() {
    if [ "${LEXIS_REQUIRE_WEB:-0}" = 1 ]; then
        echo "FAIL: $* and LEXIS_REQUIRE_WEB=1 (tools/install-deps.sh --web installs it)"; exit 1
    fi
    echo "SKIP: $* (tools/install-deps.sh --web installs it)"; echo PASS; exit 0
}
[ -x "$LEXIS" ] || { echo "FAIL: LEXIS=$LEXIS is not an executable"; exit 1; }
[ -x "$CHROMIUM" ] || skip "no $CHROMIUM"
command -v node >/dev/null 2>&1 || skip "no node"
[ -d "$ROOT/tests/web/node_modules/playwright-core" ] || skip "no tests/web/node_modules (npm ci in tests/web)"
case $BUILD in /*) shots=$BUILD/web ;; *) shots=$ROOT/$BUILD/web ;; esac
LEXIS="$LEXIS" SCREENSHOT_DIR="$shots" CHROMIUM="$CHROMIUM" \
    timeout 300 node "$ROOT/tests/web/search_page.test.mjs"
