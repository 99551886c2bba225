#!/bin/sh
# run.sh: the lexis / Xapian / SQLite FTS5 benchmark (make bench).
#
#   tools/bench/run.sh            (make bench builds the binaries and calls this)
#
# Prepares the corpora and the query set, then runs tools/bench/bench.py on
# each corpus; writes $BENCH_OUT/report.json, table.md and latency.png.
# Knobs (environment):
#   BENCH_CORPORA        corpora, in order (default "debpkgs scifact synth2m");
#                        debpkgs = data-local/debpkgs.jsonl (fetched with
#                        tools/fetch-debpkgs.sh when missing), scifact and any
#                        other name = $LEXIS_DATA/NAME/corpus.jsonl,
#                        synth<N>[k|m] = N documents from tools/gen-corpus
#   BENCH_SYSTEMS        lexis,xapian,fts5 (default all three)
#   BENCH_PEER_CORPORA   corpora on which Xapian and FTS5 run (default: all)
#   BENCH_XAPIAN_POSITIONS  1 (default): also build Xapian with positions, for its size
#                        (on corpora of at most 1,000,000 documents)
#   BENCH_ROUNDS         timed rounds, the systems interleaved; each figure is the
#                        median over the rounds (default 3)
#   BENCH_PEER_BUDGET_S  a peer whose warm-up pass projects all its query passes on a
#                        corpus to take longer than this is not queried there (900)
#   BENCH_THREADS        threads / processes for queries/s (default: nproc)
#   BENCH_KEYWORD_QUERIES  keyword queries from package titles (default 500)
#   BENCH_SEED           seed of the keyword queries and the synthetic corpus (42)
#   BENCH_OUT            output directory (default build/bench)
#   BENCH_MERGE          1: add to an existing report.json instead of starting anew
#   LEXIS_DATA           the shared collections (default ../shared/data)
#   LEXIS, BUILD         the lexis binary and its build directory (build/release)
#   PYTHON               a python3 with xapian and sqlite3/FTS5 (default /usr/bin/python3,
#                        where Debian's python3-xapian lives)
set -eu

BUILD=${BUILD:-build/release}
LEXIS=${LEXIS:-$BUILD/lexis}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=${BENCH_OUT:-build/bench}
DATA=${LEXIS_DATA:-../shared/data}
CORPORA=${BENCH_CORPORA:-debpkgs scifact synth2m}
SYSTEMS=${BENCH_SYSTEMS:-lexis,xapian,fts5}
THREADS=${BENCH_THREADS:-$(nproc)}
SEED=${BENCH_SEED:-42}
NKW=${BENCH_KEYWORD_QUERIES:-500}
here=$(dirname "$0")

die() { echo "bench: $*" >&2; exit 1; }

for b in "$LEXIS" "$BUILD/gen-corpus" "$BUILD/deb2jsonl" "$BUILD/bench-lexis-lat"; do
    [ -x "$b" ] || die "$b not found: run 'make bench' (or make && make $BUILD/bench-lexis-lat)"
done
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON=)"
case $SYSTEMS in *xapian*)
    "$PYTHON" -c 'import xapian' 2>/dev/null ||
        die "$PYTHON has no xapian module: apt-get install -y python3-xapian (or BENCH_SYSTEMS=lexis,fts5)" ;;
esac
case $SYSTEMS in *fts5*)
    "$PYTHON" -c 'import sqlite3; sqlite3.connect(":memory:").execute("create virtual table t using fts5(x)")' 2>/dev/null ||
        die "$PYTHON's sqlite3 has no FTS5 (or BENCH_SYSTEMS=lexis,xapian)" ;;
esac
command -v gnuplot >/dev/null 2>&1 || echo "bench: gnuplot not found (apt-get install -y gnuplot): no plot" >&2

mkdir -p "$OUT/data"

# The debpkgs corpus is also where the keyword queries come from.
debpkgs=data-local/debpkgs.jsonl
if [ ! -s "$debpkgs" ]; then
    echo "bench: $debpkgs missing: tools/fetch-debpkgs.sh" >&2
    tools/fetch-debpkgs.sh "$debpkgs" "$BUILD"
fi

queries=$OUT/data/queries.jsonl
"$PYTHON" "$here/make-queries.py" --data "$DATA" --titles "$debpkgs" \
    --keyword-queries "$NKW" --seed "$SEED" >"$queries.tmp"
mv "$queries.tmp" "$queries"

args=
for c in $CORPORA; do
    case $c in
    debpkgs) file=$debpkgs ;;
    synth*)
        n=${c#synth}
        case $n in
        *[kK]) n=$(( ${n%?} * 1000 )) ;;
        *[mM]) n=$(( ${n%?} * 1000000 )) ;;
        esac
        case $n in ''|*[!0-9]*) die "bad synthetic corpus name $c (synth<N>[k|m])" ;; esac
        file=$OUT/data/$c.jsonl
        stamp="gen-corpus --docs $n --seed $SEED $debpkgs $DATA/scifact/corpus.jsonl"
        if [ ! -s "$file" ] || [ "$(cat "$file.cmd" 2>/dev/null)" != "$stamp" ] ||
           [ -n "$(find "$BUILD/gen-corpus" -newer "$file")" ]; then
            echo "bench: $stamp" >&2
            "$BUILD/gen-corpus" --docs "$n" --seed "$SEED" --out "$file.tmp" \
                "$debpkgs" "$DATA/scifact/corpus.jsonl"
            mv "$file.tmp" "$file"
            echo "$stamp" >"$file.cmd"
        fi ;;
    *) file=$DATA/$c/corpus.jsonl ;;
    esac
    [ -s "$file" ] || die "corpus $c: $file not found"
    args="$args --corpus $c=$file"
done

set -- --lexis "$LEXIS" --lexis-lat "$BUILD/bench-lexis-lat" --queries "$queries" \
    --out "$OUT" --systems "$SYSTEMS" --threads "$THREADS"
[ -n "${BENCH_PEER_CORPORA:-}" ] && set -- "$@" --peer-corpora "$(echo "$BENCH_PEER_CORPORA" | tr ' ' ,)"
[ "${BENCH_XAPIAN_POSITIONS:-1}" = 0 ] && set -- "$@" --no-xapian-positions
[ "${BENCH_MERGE:-0}" = 1 ] && set -- "$@" --merge
set -- "$@" --rounds "${BENCH_ROUNDS:-3}" --peer-budget-s "${BENCH_PEER_BUDGET_S:-900}"
cmd="make bench BENCH_CORPORA=\"$CORPORA\""
[ -n "${BENCH_PEER_CORPORA:-}" ] && cmd="$cmd BENCH_PEER_CORPORA=\"$BENCH_PEER_CORPORA\""
# $args holds no spaces inside an item (corpus names and paths), split on purpose.
# shellcheck disable=SC2086
exec "$PYTHON" "$here/bench.py" "$@" $args --command "$cmd"
