#!/bin/sh
# run-all.sh: runs every test binary given as an argument (cmocka suites),
# then every tests/t_*.sh script with $LEXIS pointing at the lexis binary.
# Prints one line per suite and a summary; exits 1 if any failed.
# Environment: LEXIS (binary), BUILD (build dir), LEXIS_DATA (defaults to
# ../shared/data beside the checkout; suites that need it skip without it).
set -u
cd "$(dirname "$0")/.." || exit 2
: "${LEXIS_DATA:=$(cd .. && pwd)/shared/data}"
export LEXIS_DATA
LEXIS=$(cd "$(dirname "$LEXIS")" && pwd)/$(basename "$LEXIS")
export LEXIS BUILD
failed=""
total=0
for t in "$@" tests/t_*.sh; do
    [ -e "$t" ] || continue
    total=$((total + 1))
    name=$(basename "$t")
    log="$BUILD/test-logs/$name.log"
    mkdir -p "$BUILD/test-logs"
    start=$(date +%s)
    if [ "${t%.sh}" != "$t" ]; then
        sh "$t" > "$log" 2>&1
    else
        "$t" > "$log" 2>&1
    fi
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ $rc -eq 0 ]; then
        printf '  pass  %-28s %4ss  %s\n' "$name" "$secs" "$(grep -aE '^\[  PASSED  \]|^ok:|^PASS' "$log" | tail -1)"
    else
        printf '  FAIL  %-28s %4ss  (log: %s)\n' "$name" "$secs" "$log"
        tail -20 "$log" | sed 's/^/        /'
        failed="$failed $name"
    fi
done
if [ -n "$failed" ]; then
    echo "make test: FAILED:$failed"
    exit 1
fi
echo "make test: all $total suites passed"
