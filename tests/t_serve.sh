#!/bin/sh
# t_serve.sh: `lexis serve` as a process, over real HTTP (curl) on loopback.
#   - starts on --port 0 and prints the bound address; --help; bad options;
#     a second server on the same port fails; `lexis add` while it serves
#     gets exit 5 (busy);
#   - SIGKILL during writes, SERVE_TRIALS times: a client posts batches of
#     BATCH documents (one POST each, unique ids and tokens) and records the
#     batches answered 200; the server is killed at a random moment; then
#     `lexis check` passes, a restarted server serves the index, every
#     acknowledged batch is there in full, and the batch in flight at the
#     kill is all there or not at all (each POST commits atomically);
#   - SIGTERM during writes: the server exits 0 within the grace period,
#     acknowledged batches are there, the one in flight all or nothing.
# Environment: LEXIS (binary); SERVE_TRIALS (default 4); SERVE_SEED
# (random by default; printed, to replay a failure). Needs curl (skips
# without it).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${LEXIS:=$ROOT/build/release/lexis}"
: "${SERVE_TRIALS:=4}"
: "${SERVE_SEED:=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
BATCH=20
KEY=t-serve-key
T=$(mktemp -d "${TMPDIR:-/tmp}/t_serve.XXXXXX") || exit 1
SPID=""
WPID=""
cleanup() {
    [ -n "$WPID" ] && kill "$WPID" 2>/dev/null
    [ -n "$SPID" ] && kill -9 "$SPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

fail() { echo "FAIL: $*"; echo "(replay with SERVE_SEED=$SERVE_SEED)"; [ -f "$T/serve.err" ] && tail -5 "$T/serve.err"; exit 1; }
[ -x "$LEXIS" ] || fail "LEXIS=$LEXIS is not an executable"
if ! command -v curl >/dev/null 2>&1; then
    echo "SKIP: curl is not installed (apt-get install curl)"
    echo PASS
    exit 0
fi
cd "$T" || exit 1
echo "seed $SERVE_SEED, $SERVE_TRIALS kill trials, batches of $BATCH"

# ---- helpers -----------------------------------------------------------------------

# start_server [OPTIONS...]: starts lexis serve on a free port; sets SPID, URL.
start_server() {
    : > serve.out
    "$LEXIS" serve idx --port 0 --threads 2 --api-key "$KEY" --access-log access.log "$@" \
        > serve.out 2> serve.err &
    SPID=$!
    URL=""
    _i=0
    while [ $_i -lt 100 ]; do
        URL=$(sed -n 's/^lexis: listening on //p' serve.out)
        [ -n "$URL" ] && break
        kill -0 "$SPID" 2>/dev/null || { cat serve.err; fail "lexis serve exited at startup"; }
        sleep 0.1
        _i=$((_i + 1))
    done
    [ -n "$URL" ] || fail "lexis serve printed no 'listening on' line in 10 s"
    case $URL in http://127.0.0.1:[0-9]*) ;; *) fail "unexpected address '$URL'" ;; esac
}

# http METHOD PATH [BODYFILE]: prints the status; the body goes to resp.json.
http() {
    if [ $# -ge 3 ]; then
        curl -s -o resp.json -w '%{http_code}' -X "$1" -H "Authorization: Bearer $KEY" \
            --data-binary @"$3" "$URL$2" 2>/dev/null
    else
        curl -s -o resp.json -w '%{http_code}' -X "$1" -H "Authorization: Bearer $KEY" "$URL$2" 2>/dev/null
    fi
}

docs() {
    "$LEXIS" inspect idx --json 2>/dev/null | sed -n 's/.*"documents":\([0-9]*\).*/\1/p'
}

# writer TAG: posts batches 1, 2, ... of BATCH documents until a POST fails;
# appends each batch answered 200 to acked.TAG.
writer() {
    _b=1
    : > "acked.$1"
    while :; do
        awk -v tag="$1" -v b=$_b -v n=$BATCH 'BEGIN {
            for (i = 0; i < n; i++)
                printf "{\"_id\":\"%sb%dd%d\",\"title\":\"batch %d\",\"text\":\"tok%sx%dx%d words about batches\"}\n",
                       tag, b, i, b, tag, b, i }' > "batch.$1"
        _st=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $KEY" \
              --data-binary @"batch.$1" "$URL/docs" 2>/dev/null)
        [ "$_st" = 200 ] || break
        echo $_b >> "acked.$1"
        _b=$((_b + 1))
    done
}

# verify_batches TAG WHAT: every acked batch is complete; the next one is
# complete or absent; none after it exists.
verify_batches() {
    _acked=$(tail -1 "acked.$1" 2>/dev/null)
    [ -n "$_acked" ] || _acked=0
    _upto=$((_acked + 2))
    awk -v tag="$1" -v last=$_upto -v n=$BATCH 'BEGIN {
        for (b = 1; b <= last; b++) for (i = 0; i < n; i++)
            printf "{\"_id\":\"%sb%dd%d\",\"text\":\"tok%sx%dx%d\"}\n", tag, b, i, tag, b, i }' > vq.jsonl
    "$LEXIS" run idx --queries vq.jsonl -k 2 > vrun.txt 2> vrun.err || { cat vrun.err; fail "$2: lexis run failed"; }
    awk -v acked=$_acked -v n=$BATCH -v what="$2" -v tag="$1" '
        $1 == $3 { split(substr($1, length(tag) + 2), p, "d"); have[p[1] + 0]++ }
        $1 != $3 { print what ": query " $1 " found " $3; bad = 1 }
        END {
            for (b = 1; b <= acked + 2; b++) {
                c = have[b] + 0
                if (b <= acked && c != n) { print what ": acknowledged batch " b " has " c " of " n " documents"; bad = 1 }
                if (b == acked + 1 && c != 0 && c != n) { print what ": batch " b " in flight is partial: " c " of " n; bad = 1 }
                if (b == acked + 2 && c != 0) { print what ": batch " b " was never sent but has " c; bad = 1 }
            }
            exit bad
        }' vrun.txt || fail "$2: the index does not hold exactly the committed batches"
    INFLIGHT=$(awk -v b=$((_acked + 1)) -v tag="$1" '$1 == $3 && index($1, tag "b" b "d") == 1 { c++ } END { print c + 0 }' vrun.txt)
}

# ---- an index --------------------------------------------------------------------------
awk 'BEGIN { for (i = 0; i < 300; i++)
    printf "{\"_id\":\"base%d\",\"title\":\"Base document %d\",\"text\":\"basetok%d fast json parser and gardens\"}\n", i, i, i }' > base.jsonl
"$LEXIS" build idx --corpus base.jsonl --quiet || fail "build failed"

# ---- usage ---------------------------------------------------------------------------------
"$LEXIS" serve --help > help.out 2>&1 || fail "serve --help exited $?"
grep -q -- '--port' help.out && grep -q -- '--api-key' help.out && grep -q LEXIS_API_KEY help.out \
    || fail "serve --help lacks options"
"$LEXIS" serve idx --port 70000 > /dev/null 2>&1; [ $? -eq 2 ] || fail "bad --port not a usage error"
"$LEXIS" serve idx --bogus > /dev/null 2>&1; [ $? -eq 2 ] || fail "unknown option not a usage error"
"$LEXIS" serve > /dev/null 2>&1; [ $? -eq 2 ] || fail "missing INDEX not a usage error"
"$LEXIS" serve nonexistent-index --port 0 > /dev/null 2>&1; [ $? -eq 1 ] || fail "missing index not an error"

# ---- basics over a real process --------------------------------------------------------------
start_server
st=$(http GET /health); [ "$st" = 200 ] || fail "GET /health: $st"
grep -q '"documents":300' resp.json || fail "health: $(cat resp.json)"
printf '{"query":"basetok7 parser","k":3}' > q.json
st=$(http POST /search q.json); [ "$st" = 200 ] || fail "POST /search: $st"
grep -q '"id":"base7"' resp.json || fail "search: $(cat resp.json)"
st=$(http GET /docs/base9); [ "$st" = 200 ] || fail "GET /docs: $st"
st=$(http GET /metrics); [ "$st" = 200 ] || fail "GET /metrics: $st"
grep -q '^lexis_http_requests_total{route="/search",status="200"} 1$' resp.json || fail "metrics: no search count"
st=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @base.jsonl "$URL/docs"); [ "$st" = 401 ] \
    || fail "POST /docs without a key: $st"
grep -q 'POST /search 200 ' access.log || fail "access log: $(cat access.log)"
# Busy: the server holds the writer lock.
"$LEXIS" add idx base.jsonl > add.out 2>&1; rc=$?
[ $rc -eq 5 ] || { cat add.out; fail "lexis add while serving exited $rc (want 5: busy)"; }
# Another server on the same port fails.
port=${URL##*:}
"$LEXIS" serve idx --port "$port" --threads 2 > dup.out 2>&1; rc=$?
[ $rc -eq 1 ] || { cat dup.out; fail "a second server on port $port exited $rc (want 1)"; }
grep -qi 'in use' dup.out || fail "second server: $(cat dup.out)"
kill -TERM "$SPID"; wait "$SPID"; rc=$?; SPID=""
[ $rc -eq 0 ] || fail "SIGTERM: exit $rc"
grep -q 'lexis: stopped' serve.err || fail "no 'stopped' message"

# ---- SIGKILL during writes --------------------------------------------------------------------
trial=0
inflight_seen=""
while [ $trial -lt "$SERVE_TRIALS" ]; do
    trial=$((trial + 1))
    tag="k$trial"
    delay=$(awk -v s=$((SERVE_SEED + trial)) 'BEGIN { srand(s); printf "%.2f", 0.3 + rand() * 1.2 }')
    start_server
    writer "$tag" &
    WPID=$!
    sleep "$delay"
    kill -9 "$SPID"
    wait "$SPID" 2>/dev/null
    SPID=""
    wait "$WPID" 2>/dev/null
    WPID=""
    acked=$(wc -l < "acked.$tag" | tr -d ' ')
    "$LEXIS" check idx > check.out 2>&1 || { cat check.out; fail "trial $trial: lexis check after SIGKILL"; }
    verify_batches "$tag" "kill trial $trial (after ${delay}s)"
    inflight_seen="$inflight_seen $INFLIGHT"
    # A restarted server serves it, writes included.
    start_server
    st=$(http GET "/docs/${tag}b1d0"); [ "$acked" -eq 0 ] || [ "$st" = 200 ] || fail "trial $trial: restarted server: $st"
    printf '{"_id":"after%s","text":"aftertok%s"}' "$trial" "$trial" > one.json
    st=$(http POST /docs one.json); [ "$st" = 200 ] || fail "trial $trial: POST after restart: $st $(cat resp.json)"
    kill -TERM "$SPID"; wait "$SPID"; rc=$?; SPID=""
    [ $rc -eq 0 ] || fail "trial $trial: SIGTERM after restart: exit $rc"
    echo "  kill trial $trial after ${delay}s: $acked batches acknowledged, in flight: $INFLIGHT documents, intact"
done

# ---- SIGTERM during writes ---------------------------------------------------------------------
start_server --grace 5
writer term &
WPID=$!
sleep 0.7
t0=$(date +%s)
kill -TERM "$SPID"
wait "$SPID"; rc=$?
SPID=""
wait "$WPID" 2>/dev/null
WPID=""
secs=$(( $(date +%s) - t0 ))
[ $rc -eq 0 ] || { tail -5 serve.err; fail "SIGTERM during writes: exit $rc"; }
[ $secs -le 6 ] || fail "SIGTERM: took ${secs}s to exit"
"$LEXIS" check idx > check.out 2>&1 || { cat check.out; fail "lexis check after SIGTERM"; }
verify_batches term "SIGTERM during writes"
echo "  SIGTERM during writes: exit 0 in ${secs}s, $(wc -l < acked.term | tr -d ' ') batches acknowledged, all there"

n=$(docs)
echo "final index: $n documents"
echo PASS
