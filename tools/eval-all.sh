#!/bin/sh
# eval-all.sh: `make eval`. Builds an index for every collection under
# $LEXIS_DATA (default ../shared/data) that has corpus.jsonl, queries.jsonl
# and qrels.tsv, runs every judged query, prints one table (collection x
# metric) and writes it as JSON to $OUT (default build/eval/results.json).
# CACM is also measured with Anserini's original qrels (cacm-orig), whose 55
# unpadded ids cannot match, as Anserini's published numbers were.
#   tools/eval-all.sh [LEXIS_BINARY] [extra lexis eval options...]
set -eu
cd "$(dirname "$0")/.."
LEXIS=${1:-build/release/lexis}
[ $# -gt 0 ] && shift
DATA=${LEXIS_DATA:-../shared/data}
WORK=${EVAL_DIR:-build/eval}
OUT=${OUT:-$WORK/results.json}
mkdir -p "$WORK"
if [ ! -d "$DATA" ]; then
    echo "eval-all: no test collections at $DATA (set LEXIS_DATA)" >&2
    exit 1
fi
tmp=$WORK/results.tmp
: > "$tmp"
printf '%-12s %8s %8s %8s %8s %10s %11s %6s\n' collection ndcg@10 map mrr@10 p@10 recall@100 recall@1000 queries
for dir in "$DATA"/*/; do
    name=$(basename "$dir")
    [ -f "$dir/corpus.jsonl" ] && [ -f "$dir/queries.jsonl" ] && [ -f "$dir/qrels.tsv" ] || continue
    idx=$WORK/$name.idx
    # Rebuild when the corpus or the binary is newer than the index.
    if [ ! -f "$idx/data.mdb" ] || [ "$dir/corpus.jsonl" -nt "$idx/data.mdb" ] || [ "$LEXIS" -nt "$idx/data.mdb" ]; then
        "$LEXIS" build "$idx" --corpus "$dir/corpus.jsonl" --force --quiet
    fi
    set -- "$@"
    for variant in main orig; do
        qrels=$dir/qrels.tsv
        label=$name
        if [ $variant = orig ]; then
            [ "$name" = cacm ] && [ -f "$dir/orig/qrels.cacm.txt" ] || continue
            qrels=$dir/orig/qrels.cacm.txt
            label=cacm-orig
        fi
        json=$("$LEXIS" eval "$idx" --queries "$dir/queries.jsonl" --qrels "$qrels" --json "$@" 2>/dev/null)
        echo "{\"collection\":\"$label\",\"metrics\":$json}" >> "$tmp"
        echo "$json" | awk -v c="$label" '{
            gsub(/[{}"]/, ""); n = split($0, kv, ",");
            for (i = 1; i <= n; i++) { split(kv[i], p, ":"); v[p[1]] = p[2] }
            printf "%-12s %8.4f %8.4f %8.4f %8.4f %10.4f %11.4f %6d\n", c, v["ndcg@10"], v["map"],
                   v["mrr@10"], v["p@10"], v["recall@100"], v["recall@1000"], v["queries"] }'
    done
done
{ echo "["; sed '$!s/$/,/' "$tmp"; echo "]"; } > "$OUT"
rm -f "$tmp"
echo "(written to $OUT)"
