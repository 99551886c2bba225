#!/bin/sh
# quality-gate.sh: compares build/eval/results.json (from tools/eval-all.sh)
# with tests/quality-floors.tsv; prints every check and exits 1 if any
# measured value is below its floor or missing.
#   tools/quality-gate.sh [RESULTS.json] [FLOORS.tsv]
set -eu
cd "$(dirname "$0")/.."
RES=${1:-build/eval/results.json}
FLOORS=${2:-tests/quality-floors.tsv}
[ -f "$RES" ] || { echo "quality-gate: $RES missing (run make eval)" >&2; exit 1; }
awk -F'\t' -v res="$RES" '
BEGIN {
    while ((getline line < res) > 0) {
        if (line !~ /"collection"/) continue
        c = line; sub(/.*"collection":"/, "", c); sub(/".*/, "", c)
        m = line; sub(/.*"metrics":\{/, "", m); sub(/\}.*/, "", m)
        n = split(m, kv, ",")
        for (i = 1; i <= n; i++) {
            split(kv[i], p, ":"); k = p[1]; gsub(/"/, "", k)
            val[c "|" k] = p[2] + 0; have[c "|" k] = 1
        }
    }
}
/^#/ || NF < 3 { next }
{
    key = $1 "|" $2
    if (!(key in have)) { printf "  MISSING %-10s %-12s floor %.4f\n", $1, $2, $3; bad++; next }
    ok = val[key] >= $3 - 1e-9
    printf "  %-7s %-10s %-12s %.4f (floor %.4f)\n", ok ? "ok" : "BELOW", $1, $2, val[key], $3
    if (!ok) bad++
}
END { if (bad) { print "quality-gate: " bad " check(s) failed"; exit 1 } print "quality-gate: all floors met" }
' "$FLOORS"
