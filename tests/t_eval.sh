#!/bin/sh
# t_eval.sh: `lexis eval` from an index equals `lexis eval --run` on the run
# file `lexis run` writes (the trec_eval path), with and without RM3; bad
# inputs give clear errors.
set -u
D=${LEXIS_DATA:-../shared/data}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
if [ ! -f "$D/scifact/corpus.jsonl" ]; then
    echo "skip: no scifact under $D"
    echo PASS
    exit 0
fi
C=$D/scifact
"$LEXIS" build "$T/sf" --corpus "$C/corpus.jsonl" --quiet || fail build
for opt in "" "--rm3"; do
    # shellcheck disable=SC2086
    "$LEXIS" eval "$T/sf" --queries "$C/queries.jsonl" --qrels "$C/qrels.tsv" --json $opt > "$T/a.json" || fail "eval $opt"
    # shellcheck disable=SC2086
    "$LEXIS" run "$T/sf" --queries "$C/queries.jsonl" $opt > "$T/run.trec" 2>/dev/null || fail "run $opt"
    "$LEXIS" eval --run "$T/run.trec" --qrels "$C/qrels.tsv" --json > "$T/b.json" || fail "eval --run $opt"
    cmp -s "$T/a.json" "$T/b.json" || fail "eval INDEX and eval --run differ ($opt): $(cat "$T/a.json") vs $(cat "$T/b.json")"
    grep -q '"queries":300' "$T/a.json" || fail "expected 300 judged queries: $(cat "$T/a.json")"
done
# Per-query lines: one per judged query plus the header and summary.
n=$("$LEXIS" eval "$T/sf" --queries "$C/queries.jsonl" --qrels "$C/qrels.tsv" --per-query | wc -l)
[ "$n" -eq 303 ] || fail "per-query lines: $n"
# Errors.
"$LEXIS" eval "$T/sf" --queries "$C/queries.jsonl" --qrels "$T/missing.tsv" 2> "$T/err"
[ $? -eq 1 ] && grep -q "missing.tsv" "$T/err" || fail "missing qrels"
printf 'q 0 d\n' > "$T/bad.tsv"
"$LEXIS" eval --run "$T/run.trec" --qrels "$T/bad.tsv" 2> "$T/err"
[ $? -eq 1 ] && grep -q "bad.tsv:1" "$T/err" || fail "bad qrels: $(cat "$T/err")"
"$LEXIS" eval "$T/sf" --qrels "$C/qrels.tsv" 2>/dev/null
[ $? -eq 2 ] || fail "missing --queries should be a usage error"
echo PASS
