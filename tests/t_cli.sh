#!/bin/sh
# t_cli.sh: end-to-end happy paths and usage errors of the lexis command line.
#   build/search/run/add/replace/delete/inspect/check on a small corpus written
#   here; help and every COMMAND --help; unknown commands, options and bad
#   values (exit 2); build --force and build over an existing index; a build
#   whose corpus is missing leaves nothing behind; every --algo gives the same
#   `lexis run` output on scifact (skipped without $LEXIS_DATA/scifact).
# Environment: LEXIS (binary), LEXIS_DATA (BEIR collections; optional).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${LEXIS:=$ROOT/build/release/lexis}"
: "${LEXIS_DATA:=$(cd "$ROOT/.." && pwd)/shared/data}"
T=$(mktemp -d "${TMPDIR:-/tmp}/t_cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM

fail() { echo "FAIL: $*"; exit 1; }
# expect RC CMD...: runs CMD (stdout -> $T/out, stderr -> $T/err); fails unless
# its exit status is RC.
expect() {
    _want=$1; shift
    "$@" >"$T/out" 2>"$T/err"
    _got=$?
    if [ "$_got" -ne "$_want" ]; then
        echo "--- stdout:"; head -c 2000 "$T/out"
        echo "--- stderr:"; head -c 2000 "$T/err"
        fail "expected exit $_want, got $_got: $*"
    fi
}
# json_ok FILE: FILE holds valid JSON.
json_ok() {
    if command -v jq >/dev/null 2>&1; then
        jq -e . "$1" >/dev/null 2>&1 || { cat "$1"; fail "invalid JSON (jq): $1"; }
    elif command -v python3 >/dev/null 2>&1; then
        python3 -m json.tool "$1" >/dev/null 2>&1 || { cat "$1"; fail "invalid JSON: $1"; }
    fi
}
# docs INDEX: prints the live document count from inspect --json.
docs() {
    "$LEXIS" inspect "$1" --json 2>/dev/null | sed -n 's/.*"documents":\([0-9]*\).*/\1/p'
}
# hits INDEX QUERY: prints the ids of the hits (one a line), best first.
hits() {
    "$LEXIS" run "$1" --queries - -k 100 2>/dev/null <<EOF | awk '{print $3}'
{"_id":"q","text":"$2"}
EOF
}
has_hit() { hits "$1" "$2" | grep -qx "$3"; }

[ -x "$LEXIS" ] || fail "LEXIS=$LEXIS is not an executable"
cd "$T" || exit 1

# ---- a small corpus ------------------------------------------------------------
cat > corpus.jsonl <<'EOF'
{"_id":"d1","title":"Fast JSON parser","text":"A fast parser for json documents written in portable C."}
{"_id":"d2","title":"Slow XML parser","text":"Parsing xml slowly with many allocations and a parser generator."}
{"_id":"d3","title":"Search engines","text":"BM25 ranking with inverted indexes and compressed postings."}
{"_id":"d4","title":"Gardening","text":"Tomatoes need sun, water and patience; basil likes the same."}
{"_id":"d5","title":"Astronomy","text":"Jupiter has many moons; Europa may hide an ocean under its ice."}
{"_id":"d6","title":"Cooking","text":"A tomato sauce with basil, garlic and olive oil."}
EOF

expect 0 "$LEXIS" build idx --corpus corpus.jsonl
[ -f idx/data.mdb ] || fail "build did not create idx/data.mdb"
[ "$(docs idx)" = 6 ] || fail "inspect: expected 6 documents, got '$(docs idx)'"

# ---- search --------------------------------------------------------------------
expect 0 "$LEXIS" search idx "json parser"
head -1 "$T/out" | grep -q ' d1 ' || { cat "$T/out"; fail "search 'json parser': d1 is not first"; }
grep -q 'd2' "$T/out" || fail "search 'json parser': d2 missing"
grep -q 'd4' "$T/out" && fail "search 'json parser': unrelated d4 returned"
expect 0 "$LEXIS" search idx "json parser" --json
json_ok "$T/out"
grep -q '"id":"d1"' "$T/out" || fail "search --json: no hit d1: $(cat "$T/out")"
grep -q '"rank":1,' "$T/out" || fail "search --json: no rank 1"
expect 0 "$LEXIS" search idx "zzzunknownword" --json
json_ok "$T/out"
grep -q '"hits":\[\]' "$T/out" || fail "search --json with no match: hits not empty: $(cat "$T/out")"
expect 0 "$LEXIS" search idx "zzzunknownword"
grep -q 'no documents match' "$T/out" || fail "search with no match: no 'no documents match'"
expect 0 "$LEXIS" search idx "tomato basil" -k 1
[ "$(grep -c '^ *[0-9]*\. ' "$T/out")" = 1 ] || { cat "$T/out"; fail "search -k 1 printed more than one hit"; }
expect 0 "$LEXIS" search idx "tomato basil" --and --json
json_ok "$T/out"

# ---- run (TREC format) ---------------------------------------------------------
cat > queries.jsonl <<'EOF'
{"_id":"q1","text":"parser"}
{"_id":"q2","text":"tomato basil sauce"}
{"_id":3,"text":"moons of jupiter"}
{"_id":"q4","text":"nothingmatchesthis"}
EOF
expect 0 "$LEXIS" run idx --queries queries.jsonl -k 2 --tag mytag
awk -v k=2 '
    NF != 6 { print "line " NR ": " NF " fields: " $0; bad = 1; next }
    $2 != "Q0" || $6 != "mytag" { print "line " NR ": bad Q0/tag: " $0; bad = 1 }
    {
        if ($1 != q) { q = $1; r = 0; prev = "" }
        r++
        if ($4 != r || r > k) { print "line " NR ": rank " $4 ", expected " r " (k=" k ")"; bad = 1 }
        if (prev != "" && $5 + 0 > prev + 0) { print "line " NR ": score increases"; bad = 1 }
        prev = $5; seen[$1] = 1
    }
    END { if (!("q1" in seen) || !("q2" in seen) || !("3" in seen)) { print "missing a query"; bad = 1 }
          if ("q4" in seen) { print "q4 should have no hits"; bad = 1 }
          exit bad }' "$T/out" || fail "run: bad TREC output"
[ "$(grep -c '^q1 ' "$T/out")" = 2 ] || fail "run -k 2: q1 should have 2 hits"
grep -q '^3 Q0 d5 1 ' "$T/out" || fail "run: integer query id 3 should rank d5 first"
expect 0 "$LEXIS" run idx --queries - < queries.jsonl
[ "$(grep -c '^q1 Q0 d[12] ' "$T/out")" = 2 ] || fail "run --queries -: q1 hits"
grep -q ' lexis$' "$T/out" || fail "run: default tag is not lexis"

# ---- add, replace, delete ------------------------------------------------------
cat > more.jsonl <<'EOF'
{"_id":"d7","title":"Volcanoes","text":"Magma chambers feed eruptions of the volcano."}
{"_id":"d8","title":"Sailing","text":"Trimming a spinnaker in light wind."}
EOF
expect 0 "$LEXIS" add idx more.jsonl
[ "$(docs idx)" = 8 ] || fail "add: expected 8 documents, got $(docs idx)"
has_hit idx magma d7 || fail "add: d7 not found by 'magma'"
has_hit idx spinnaker d8 || fail "add: d8 not found by 'spinnaker'"
has_hit idx parser d1 || fail "add: old d1 no longer found"

echo '{"_id":"d4","title":"Knitting","text":"Wool socks on circular needles."}' > repl.jsonl
expect 0 "$LEXIS" add idx repl.jsonl
grep -q '1 replaced' "$T/err" || fail "add of an existing id: summary does not say 1 replaced: $(cat "$T/err")"
[ "$(docs idx)" = 8 ] || fail "replace: document count changed to $(docs idx)"
has_hit idx knitting d4 || fail "replace: new text of d4 not found"
has_hit idx patience d4 && fail "replace: old text of d4 still matches"
has_hit idx tomatoes d6 || fail "replace: d6 (shares words with old d4) lost"
[ "$(hits idx tomatoes | grep -c .)" = 1 ] || fail "replace: 'tomatoes' should match only d6 now"

echo '{"_id":"d9","title":"Chess","text":"Opening theory."}' | "$LEXIS" add idx - >/dev/null 2>&1 \
    || fail "add from stdin failed"
has_hit idx chess d9 || fail "add -: d9 not found"

expect 0 "$LEXIS" delete idx d7 d9
has_hit idx magma d7 && fail "delete: d7 still found"
has_hit idx chess d9 && fail "delete: d9 still found"
[ "$(docs idx)" = 7 ] || fail "delete: expected 7 documents, got $(docs idx)"
expect 3 "$LEXIS" delete idx nosuchid
grep -q "nosuchid" "$T/err" || fail "delete of unknown id: message does not name it"
expect 3 "$LEXIS" delete idx d8 nosuchid
has_hit idx spinnaker d8 && fail "delete d8 (with an unknown id beside it) did not delete d8"
[ "$(docs idx)" = 6 ] || fail "delete: expected 6 documents, got $(docs idx)"
expect 3 "$LEXIS" delete idx d8
has_hit idx parser d1 || fail "after deletes: d1 lost"

# ---- inspect, check --------------------------------------------------------------
expect 0 "$LEXIS" inspect idx --json
json_ok "$T/out"
for key in format_version analyzer fields k1 b documents deleted terms avgdl segments; do
    grep -q "\"$key\":" "$T/out" || fail "inspect --json: no \"$key\""
done
grep -q '"deleted":[1-9]' "$T/out" || fail "inspect --json: deleted count should be > 0"
expect 0 "$LEXIS" inspect idx
grep -q '^documents *6 live' "$T/out" || { cat "$T/out"; fail "inspect: expected '6 live'"; }
expect 0 "$LEXIS" check idx
grep -q '^ok: ' "$T/out" || fail "check: no 'ok:' line: $(cat "$T/out")"

# ---- help ------------------------------------------------------------------------
expect 0 "$LEXIS" help
grep -q '^usage: lexis COMMAND' "$T/out" || fail "help: no usage line on stdout"
grep -q 'exit codes' "$T/out" || fail "help: no exit codes"
expect 0 "$LEXIS" --help
for c in build add delete search run inspect check; do
    expect 0 "$LEXIS" "$c" --help
    grep -q "^usage: lexis $c" "$T/out" || fail "$c --help: no usage on stdout"
    expect 0 "$LEXIS" help "$c"
    grep -q "^usage: lexis $c" "$T/out" || fail "help $c: no usage on stdout"
    "$LEXIS" help | grep -q "^  $c " || fail "help does not list $c"
done

# ---- usage errors: exit 2 ---------------------------------------------------------
expect 2 "$LEXIS"
expect 2 "$LEXIS" frobnicate
grep -q "unknown command 'frobnicate'" "$T/err" || fail "unknown command: unclear message"
expect 2 "$LEXIS" search idx parser --bogus
expect 2 "$LEXIS" run idx --queries queries.jsonl --bogus
expect 2 "$LEXIS" build idx2 --corpus corpus.jsonl --bogus
[ -e idx2 ] && fail "build with an unknown option created idx2"
expect 2 "$LEXIS" add idx more.jsonl --bogus
expect 2 "$LEXIS" add idx more.jsonl --k1 3
grep -q -- '--k1' "$T/err" || fail "add --k1: message does not name --k1: $(cat "$T/err")"
expect 2 "$LEXIS" inspect idx --bogus
expect 2 "$LEXIS" check
expect 2 "$LEXIS" check idx extra
expect 2 "$LEXIS" delete idx
expect 2 "$LEXIS" search idx
expect 2 "$LEXIS" run idx
expect 2 "$LEXIS" build idx2
for bad in "-k 0" "-k abc" "-k -3" "-k 100001" "--algo nope" "--b 2" "--b -0.1" "--k1 -1" "--k1 nan"; do
    # shellcheck disable=SC2086
    expect 2 "$LEXIS" search idx parser $bad
    opt=${bad%% *}; val=${bad#* }
    grep -q "bad value '$val'" "$T/err" || fail "search $bad: message does not show the value: $(cat "$T/err")"
    grep -q -- "for $opt" "$T/err" || fail "search $bad: message does not name $opt: $(cat "$T/err")"
    # shellcheck disable=SC2086
    expect 2 "$LEXIS" run idx --queries queries.jsonl $bad
done
expect 2 "$LEXIS" build idx2 --corpus corpus.jsonl --b 2
expect 2 "$LEXIS" build idx2 --corpus corpus.jsonl --batch-docs x
expect 2 "$LEXIS" build idx2 --corpus corpus.jsonl --mem 0
[ -e idx2 ] && fail "build with a bad value created idx2"
expect 2 "$LEXIS" build idx2 --corpus corpus.jsonl --stemmer nosuchlanguage
[ -e idx2 ] && fail "build with a bad stemmer left idx2 behind"
mkdir emptydir
expect 2 "$LEXIS" build emptydir --corpus corpus.jsonl --fields ,
[ -d emptydir ] && [ -z "$(ls -A emptydir)" ] || fail "failed build into an empty directory left files: $(ls -A emptydir)"
expect 0 "$LEXIS" build emptydir --corpus corpus.jsonl --quiet
[ "$(docs emptydir)" = 6 ] || fail "build into an empty directory: expected 6 documents"

# ---- build over an existing index ------------------------------------------------
cksum idx/data.mdb > before.sum
expect 1 "$LEXIS" build idx --corpus more.jsonl
grep -q 'already exists' "$T/err" || fail "build over an index: unclear message: $(cat "$T/err")"
cksum idx/data.mdb | cmp -s - before.sum || fail "build without --force modified the index"
[ "$(docs idx)" = 6 ] || fail "build without --force changed the document count"
has_hit idx parser d1 || fail "build without --force: d1 lost"
expect 0 "$LEXIS" build idx --corpus more.jsonl --force
[ "$(docs idx)" = 2 ] || fail "build --force: expected 2 documents, got $(docs idx)"
has_hit idx magma d7 || fail "build --force: d7 missing"
has_hit idx parser d1 && fail "build --force: old d1 still there"
for f in idx.building-* idx.old-*; do
    [ -e "$f" ] && fail "build --force left a temporary directory behind: $f"
done
expect 0 "$LEXIS" check idx
expect 1 "$LEXIS" build idx --corpus nosuch.jsonl --force
[ "$(docs idx)" = 2 ] || fail "build --force with a missing corpus damaged the index"
# build --force holds the old index's writer lock from before it builds
# until the swap: with another writer holding it for a moment (flock(1)
# standing in for a `lexis add`), it waits, then goes on
if command -v flock > /dev/null 2>&1; then
    inode=$(ls -i idx/data.mdb | cut -d' ' -f1)
    flock idx/write.lock sleep 1 &
    holder=$!
    sleep 0.3
    start=$(date +%s%N)
    expect 0 "$LEXIS" build idx --corpus more.jsonl --force --quiet
    waited=$(( ($(date +%s%N) - start) / 1000000 ))
    wait $holder
    grep -q 'waiting for the process writing' "$T/err" || fail "build --force under a held writer lock: no message: $(cat "$T/err")"
    [ "$waited" -ge 400 ] || fail "build --force did not wait for the writer lock (${waited} ms)"
    [ "$(ls -i idx/data.mdb | cut -d' ' -f1)" != "$inode" ] || fail "build --force after waiting: the index was not replaced"
    [ "$(docs idx)" = 2 ] || fail "build --force after waiting: expected 2 documents, got $(docs idx)"
    # a writer holding the lock for longer than build --force waits (3 s):
    # refused before building (exit 5, busy), the index untouched
    flock idx/write.lock sleep 4 &
    holder=$!
    sleep 0.3
    cksum idx/data.mdb > before.sum
    expect 5 "$LEXIS" build idx --corpus corpus.jsonl --force --quiet
    grep -q 'another process is writing' "$T/err" || fail "build --force while locked: unclear message: $(cat "$T/err")"
    kill $holder 2> /dev/null; wait $holder 2> /dev/null
    cksum idx/data.mdb | cmp -s - before.sum || fail "build --force while locked changed the index"
    for f in idx.building-* idx.old-*; do
        [ -e "$f" ] && fail "build --force while locked left $f behind"
    done
fi

# ---- a missing corpus leaves no index behind ----------------------------------------
expect 1 "$LEXIS" build newidx --corpus does-not-exist.jsonl
grep -q 'does-not-exist.jsonl' "$T/err" || fail "missing corpus: message does not name it"
[ -e newidx ] && fail "build with a missing corpus left newidx behind"
expect 1 "$LEXIS" build newidx --corpus "$T"
[ -e newidx ] && fail "build with a directory as corpus left newidx behind"
expect 1 "$LEXIS" add idx does-not-exist.jsonl
[ "$(docs idx)" = 2 ] || fail "add with a missing file changed the index"

# ---- every algorithm gives the same run (scifact) ---------------------------------
SF=$LEXIS_DATA/scifact
if [ -f "$SF/corpus.jsonl" ] && [ -f "$SF/queries.jsonl" ]; then
    # Several segments and some deletions, so the algorithms see skips.
    expect 0 "$LEXIS" build sf --corpus "$SF/corpus.jsonl" --batch-docs 1000 --quiet
    ids=$(awk -F'"' 'NR % 97 == 0 { print $4 }' "$SF/corpus.jsonl" | head -40)
    # shellcheck disable=SC2086
    expect 0 "$LEXIS" delete sf $ids
    head -300 "$SF/queries.jsonl" > sfq.jsonl
    for opts in "-k 10" "-k 1000" "-k 10 --and" "-k 100 --k1 1.2 --b 0.75"; do
        ref=""
        for a in exhaustive maxscore wand bmw auto; do
            # shellcheck disable=SC2086
            expect 0 "$LEXIS" run sf --queries sfq.jsonl --algo "$a" $opts
            cp "$T/out" "run.$a"
            [ -s "run.$a" ] || [ "$opts" = "-k 10 --and" ] || fail "run --algo $a $opts: empty output"
            if [ -z "$ref" ]; then
                ref=$a
            elif ! cmp -s "run.$ref" "run.$a"; then
                diff "run.$ref" "run.$a" | head -10
                fail "run $opts: --algo $a differs from --algo $ref"
            fi
        done
        echo "scifact run $opts: $(wc -l < run.auto) lines identical for all algorithms"
    done
    for id in $ids; do
        grep -q " $id " run.auto && fail "deleted scifact document $id returned by run"
    done
    expect 0 "$LEXIS" check sf
else
    echo "skip: $SF not found (algorithm comparison)"
fi

echo PASS
