#!/bin/sh
# t_crash.sh: crash consistency of `lexis build` and `lexis add`.
#   A generated corpus (CRASH_DOCS documents, each with a unique token uNNNNNN)
#   is indexed with --batch-docs 500 (a commit every 500 documents) and the
#   process is killed with SIGKILL at a random moment between 0 and 1.1x its
#   normal duration, CRASH_TRIALS times for build and as many for add (onto
#   a base index). After each kill:
#     - lexis check passes (unless the kill came before the index existed);
#     - the index holds exactly a committed state: its document count is a
#       multiple of 500 (or the whole input), the first N documents of the
#       input are found by their unique tokens and the following ones are not;
#     - for add, every document of the base index is still there.
#   A few build --force trials check that the old index survives a kill,
#   and two kills at the swap itself (by strace, where it is installed) that
#   the path holds the old index, then the new one, never none.
# Environment: LEXIS (binary); CRASH_TRIALS (default 20), CRASH_DOCS (default
# 8000), CRASH_SEED (random by default; printed, to replay a failure).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${LEXIS:=$ROOT/build/release/lexis}"
: "${CRASH_TRIALS:=20}"
: "${CRASH_DOCS:=8000}"
: "${CRASH_SEED:=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
BATCH=500
BASE=2000                      # documents of the base index for add trials
T=$(mktemp -d "${TMPDIR:-/tmp}/t_crash.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM

fail() { echo "FAIL: $*"; echo "(replay with CRASH_SEED=$CRASH_SEED)"; exit 1; }
[ -x "$LEXIS" ] || fail "LEXIS=$LEXIS is not an executable"
[ "$CRASH_DOCS" -gt $((BASE + 2 * BATCH)) ] || fail "CRASH_DOCS must exceed $((BASE + 2 * BATCH))"
cd "$T" || exit 1
echo "seed $CRASH_SEED, $CRASH_DOCS documents, batches of $BATCH, $CRASH_TRIALS trials each"

now_ms() {
    _t=$(date +%s%N 2>/dev/null)
    case $_t in *N|'') echo $(($(date +%s) * 1000)) ;; *) echo $((_t / 1000000)) ;; esac
}
docs() {
    "$LEXIS" inspect "$1" --json 2>/dev/null | sed -n 's/.*"documents":\([0-9]*\).*/\1/p'
}

# ---- corpus: documents FIRST..LAST, 60 random words + a unique token --------------
gen() {
    awk -v first="$1" -v last="$2" 'BEGIN {
        srand(first)
        split("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike " \
              "november oscar papa quebec romeo sierra tango uniform victor whiskey xray " \
              "yankee zulu river stone cloud paper light music water green", w, " ")
        for (i = first; i <= last; i++) {
            t = ""
            for (j = 0; j < 60; j++) t = t " " w[int(rand() * 34) + 1] int(rand() * 50)
            printf "{\"_id\":\"d%06d\",\"title\":\"doc u%06d\",\"text\":\"%s u%06d\"}\n", i, i, t, i
        }
    }'
}
gen 1 "$CRASH_DOCS" > all.jsonl
gen 1 "$BASE" > base.jsonl
gen $((BASE + 1)) "$CRASH_DOCS" > more.jsonl

# verify INDEX FIRST LAST EXPECTED_PRESENT_THROUGH: documents FIRST..P must be
# found (each by its token, as the best hit) and P+1..LAST must not. Samples:
# both ends, both sides of P, and 12 random ones.
verify() {
    _first=$1 _last=$2 _p=$3
    awk -v f="$_first" -v l="$_last" -v p="$_p" -v seed=$(((CRASH_SEED + _first * 31 + _p) % 2147483647)) 'BEGIN {
        srand(seed)
        n = split(f " " l " " p " " (p + 1) " " (p - 1) " " (p + 2), s, " ")
        for (i = 0; i < 12; i++) s[++n] = f + int(rand() * (l - f + 1))
        for (i = 1; i <= n; i++) if (s[i] >= f && s[i] <= l && !(s[i] in seen)) {
            seen[s[i]] = 1
            printf "{\"_id\":\"%06d\",\"text\":\"u%06d\"}\n", s[i], s[i]
        }
    }' > vq.jsonl
    "$LEXIS" run "$4" --queries vq.jsonl -k 1 > vrun.txt 2> vrun.err \
        || { cat vrun.err; fail "$5: lexis run failed"; }
    awk -v p="$_p" -v what="$5" '
        NR == FNR { want[substr($0, 9, 6) + 0] = 1; next }
        { got[$1 + 0] = $3 }
        END {
            for (k in want) {
                q = k + 0      # keys are strings: compare as numbers
                id = sprintf("d%06d", q)
                if (q <= p && got[q] != id) { print what ": document " id " missing (expected the first " p ")"; bad = 1 }
                if (q > p && (q in got)) { print what ": document " id " present (expected only the first " p ")"; bad = 1 }
            }
            exit bad
        }' vq.jsonl vrun.txt || fail "$5: index does not hold exactly a committed state"
}

# kill_at SECONDS CMD...: runs CMD in the background, SIGKILLs it after
# SECONDS; sets KILLED=1 if it was still running.
kill_at() {
    _s=$1; shift
    "$@" > /dev/null 2> run.err &
    _pid=$!
    sleep "$_s"
    kill -9 "$_pid" 2>/dev/null
    wait "$_pid" 2>/dev/null
    _rc=$?
    if [ $_rc -eq 137 ] || [ $_rc -eq $((128 + 9)) ]; then
        KILLED=1
    elif [ $_rc -eq 0 ]; then
        KILLED=0
    else
        cat run.err
        fail "$* exited $_rc without being killed"
    fi
}

# Normal durations (one untimed warm-up run each).
rm -rf ref && "$LEXIS" build ref --corpus all.jsonl --batch-docs $BATCH --quiet || fail "reference build failed"
rm -rf ref
t0=$(now_ms)
"$LEXIS" build ref --corpus all.jsonl --batch-docs $BATCH --quiet || fail "reference build failed"
build_ms=$(($(now_ms) - t0))
[ "$(docs ref)" = "$CRASH_DOCS" ] || fail "reference build: $(docs ref) documents"
verify 1 "$CRASH_DOCS" "$CRASH_DOCS" ref "reference build"
"$LEXIS" build base --corpus base.jsonl --batch-docs $BATCH --quiet || fail "base build failed"
cp -R base aref
t0=$(now_ms)
"$LEXIS" add aref more.jsonl --batch-docs $BATCH --quiet || fail "reference add failed"
add_ms=$(($(now_ms) - t0))
[ "$(docs aref)" = "$CRASH_DOCS" ] || fail "reference add: $(docs aref) documents"
rm -rf ref aref
echo "normal durations: build ${build_ms} ms, add ${add_ms} ms"

# delays N MAX_MS: N random delays in seconds, uniform in [0, 1.1 * MAX_MS].
delays() {
    awk -v n="$1" -v max="$2" -v seed=$(((CRASH_SEED + $3 * 7919) % 2147483647)) 'BEGIN {
        srand(seed); for (i = 0; i < n; i++) printf "%.3f\n", rand() * max * 1.1 / 1000 }'
}

# ---- build trials ----------------------------------------------------------------------
trials=0 killed=0 precreate=0 seen=""
for d in $(delays "$CRASH_TRIALS" "$build_ms" 1); do
    trials=$((trials + 1))
    rm -rf idx
    kill_at "$d" "$LEXIS" build idx --corpus all.jsonl --batch-docs $BATCH --quiet
    killed=$((killed + KILLED))
    what="build trial $trials (killed after ${d}s)"
    if [ ! -f idx/data.mdb ]; then
        precreate=$((precreate + 1)); seen="$seen none"; continue
    fi
    "$LEXIS" check idx > check.out 2> check.err
    rc=$?
    if [ $rc -eq 1 ] && grep -q 'not a lexis index' check.err; then
        # Killed while the empty index was being created (before its one commit).
        precreate=$((precreate + 1)); seen="$seen none"; continue
    fi
    [ $rc -eq 0 ] || { cat check.out check.err; fail "$what: lexis check exited $rc"; }
    n=$(docs idx)
    [ -n "$n" ] || fail "$what: inspect failed"
    [ $((n % BATCH)) -eq 0 ] || [ "$n" -eq "$CRASH_DOCS" ] \
        || fail "$what: $n documents is not a committed state (batches of $BATCH)"
    [ "$KILLED" -eq 1 ] || [ "$n" -eq "$CRASH_DOCS" ] || fail "$what: completed with $n documents"
    verify 1 "$CRASH_DOCS" "$n" idx "$what"
    echo "  build killed after ${d}s: $n documents"
    seen="$seen $n"
done
distinct=$(echo "$seen" | tr ' ' '\n' | grep . | sort -u | wc -l)
echo "build: $trials trials, $killed killed ($precreate before the index existed), " \
     "$((trials - killed)) completed; $distinct distinct states (documents):" \
     "$(echo "$seen" | tr ' ' '\n' | grep . | sort -n | uniq -c | awk '{printf "%s%sx%s", s, $1, $2; s=" "}')"
build_trials=$trials build_distinct=$distinct

# ---- add trials ------------------------------------------------------------------------------
trials=0 killed=0 seen=""
for d in $(delays "$CRASH_TRIALS" "$add_ms" 2); do
    trials=$((trials + 1))
    rm -rf idx
    cp -R base idx
    kill_at "$d" "$LEXIS" add idx more.jsonl --batch-docs $BATCH --quiet
    killed=$((killed + KILLED))
    what="add trial $trials (killed after ${d}s)"
    "$LEXIS" check idx > check.out 2>&1 || { cat check.out; fail "$what: lexis check failed"; }
    n=$(docs idx)
    [ -n "$n" ] || fail "$what: inspect failed"
    added=$((n - BASE))
    [ $added -ge 0 ] || fail "$what: $n documents, fewer than the base $BASE"
    [ $((added % BATCH)) -eq 0 ] || [ "$n" -eq "$CRASH_DOCS" ] \
        || fail "$what: $added documents added is not a committed state (batches of $BATCH)"
    [ "$KILLED" -eq 1 ] || [ "$n" -eq "$CRASH_DOCS" ] || fail "$what: completed with $n documents"
    verify 1 "$BASE" "$BASE" idx "$what (base documents)"
    verify $((BASE + 1)) "$CRASH_DOCS" "$n" idx "$what"
    echo "  add killed after ${d}s: $added documents added"
    seen="$seen $added"
done
distinct=$(echo "$seen" | tr ' ' '\n' | grep . | sort -u | wc -l)
echo "add: $trials trials, $killed killed, $((trials - killed)) completed;" \
     "$distinct distinct states (documents added):" \
     "$(echo "$seen" | tr ' ' '\n' | grep . | sort -n | uniq -c | awk '{printf "%s%sx%s", s, $1, $2; s=" "}')"

# ---- build --force: the old index survives a kill ------------------------------------
forced=0 leftover=0
for d in $(delays 6 "$build_ms" 3); do
    forced=$((forced + 1))
    rm -rf idx idx.*
    cp -R base idx
    kill_at "$d" "$LEXIS" build idx --corpus all.jsonl --batch-docs $BATCH --quiet --force
    what="build --force trial $forced (killed after ${d}s)"
    [ -f idx/data.mdb ] || fail "$what: no index left at the path"
    ls -d idx.building-* > /dev/null 2>&1 && leftover=$((leftover + 1))
    "$LEXIS" check idx > check.out 2>&1 || { cat check.out; fail "$what: lexis check failed"; }
    n=$(docs idx)
    if [ "$KILLED" -eq 0 ] || [ "$n" != "$BASE" ]; then
        [ "$n" = "$CRASH_DOCS" ] || fail "$what: $n documents: neither the old index nor the new one"
        verify 1 "$CRASH_DOCS" "$CRASH_DOCS" idx "$what"
    else
        verify 1 "$CRASH_DOCS" "$BASE" idx "$what (old index)"
    fi
done
echo "build --force: $forced trials, the old or the new complete index each time" \
     "($leftover left an INDEX.building-PID directory behind)"

# ---- build --force killed at the swap itself -----------------------------------------
# The random kills above rarely land on the swap, a few microseconds; strace
# kills the process exactly there (SIGKILL injected at the system call's
# entry): at the exchange of the two directories (renameat2), so the old
# index must still be at the path, and at the rmdir that ends the removal
# of the old one, after the exchange, so the new one must be there. (Before
# the exchange, two renames, the old index aside and the new one in, left a
# moment with no index at the path; a kill at the second one showed it.)
if command -v strace > /dev/null 2>&1; then
    for at in renameat2 rmdir; do
        rm -rf idx idx.*
        cp -R base idx
        strace -f -o /dev/null -e trace=$at -e inject=$at:signal=KILL \
            "$LEXIS" build idx --corpus all.jsonl --batch-docs $BATCH --quiet --force 2> /dev/null
        what="build --force killed at $at"
        [ -f idx/data.mdb ] || fail "$what: no index left at the path"
        "$LEXIS" check idx > check.out 2>&1 || { cat check.out; fail "$what: lexis check failed"; }
        if [ $at = renameat2 ]; then
            verify 1 "$CRASH_DOCS" "$BASE" idx "$what (old index)"
        else
            verify 1 "$CRASH_DOCS" "$CRASH_DOCS" idx "$what (new index)"
        fi
    done
    echo "build --force killed at the exchange: the old index; after it: the new one"
else
    echo "note: no strace here, so the kills at the swap itself were skipped"
fi

total=$((build_trials + trials))
[ "$total" -ge 40 ] || [ "$CRASH_TRIALS" -lt 20 ] || fail "only $total trials"
[ "$build_distinct" -ge 2 ] && [ "$distinct" -ge 2 ] \
    || echo "note: few distinct kill moments (timing); the checks above still hold"
echo PASS
