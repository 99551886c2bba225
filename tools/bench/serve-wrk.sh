#!/bin/sh
# serve-wrk.sh: load benchmark of `lexis serve` with wrk on loopback.
#
#   tools/bench/serve-wrk.sh [DURATION_SECONDS]      (default 60)
#
# Index: data-local/debpkgs.jsonl (Debian package descriptions; make it with
# tools/fetch-debpkgs.sh) when present, else $LEXIS_DATA/scifact. Queries:
# every $LEXIS_DATA/*/queries.jsonl, as {"query": text, "k": 10} bodies,
# cycled by tools/bench/queries.lua. Then:
#   1. in-process baselines on the same queries, k=10: `lexis bench` (the
#      engine: analysis and ranking), `lexis run` (plus stored ids, TREC
#      output), and serve-inproc (the server's own handler called directly:
#      JSON in, search, stored fields, snippets, JSON out; no HTTP);
#   2. wrk at 1, 16 and 256 connections, DURATION seconds each, after a
#      10 s warm-up: requests/s, p50, p99, errors (which must be 0);
#      with snippets (the default request) and without ("snippets": false,
#      the same work as `lexis search --json`);
#   3. the ratios: served requests/s / in-process requests/s; and, since a
#      shared machine's other processes move requests/s around, the CPU
#      time per request: the server process's (user + system, from
#      /proc/PID/stat, all threads) against serve-inproc's (thread CPU
#      time): in-process CPU / served CPU is the share of the server's
#      work that is the search itself, whatever else runs;
#   4. the add-to-searchable delay: POST one document, search for it at
#      once (keep-alive client), 100 times, idle and under a 16-connection
#      search load, on a copy of the index.
# The server gets SERVE_THREADS workers (default: half the CPUs) pinned to
# the first half of the CPUs, wrk gets WRK_THREADS (the other half) pinned to
# the rest, so they do not compete; the in-process baselines run on the
# server's CPUs with as many threads. Results: build/bench-serve/results.txt.
# Needs wrk (apt-get install wrk), python3, taskset (util-linux).
# Environment: LEXIS (default build/release/lexis), LEXIS_DATA (default
# ../shared/data), SERVE_THREADS, WRK_THREADS, CONNS ("1 16 256").
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
DURATION=${1:-60}
: "${LEXIS:=$ROOT/build/release/lexis}"
: "${LEXIS_DATA:=$(cd "$ROOT/.." && pwd)/shared/data}"
: "${CONNS:=1 16 256}"
NCPU=$(nproc)
HALF=$(( NCPU / 2 > 0 ? NCPU / 2 : 1 ))
: "${SERVE_THREADS:=$HALF}"
: "${WRK_THREADS:=$HALF}"
W=$ROOT/build/bench-serve
mkdir -p "$W"
OUT=$W/results.txt

die() { echo "serve-wrk: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
command -v python3 >/dev/null || die "python3 is needed"
[ -x "$LEXIS" ] || die "no $LEXIS (run make)"
if command -v taskset >/dev/null && [ "$NCPU" -ge 2 ]; then
    SRV_CPUS="0-$((HALF - 1))"
    WRK_CPUS="$HALF-$((NCPU - 1))"
    PIN_SRV="taskset -c $SRV_CPUS"
    PIN_WRK="taskset -c $WRK_CPUS"
else
    SRV_CPUS=all WRK_CPUS=all PIN_SRV="" PIN_WRK=""
fi

# ---- index and queries ---------------------------------------------------------------
if [ -f data-local/debpkgs.jsonl ]; then
    CORPUS=data-local/debpkgs.jsonl NAME=debpkgs
else
    CORPUS=$LEXIS_DATA/scifact/corpus.jsonl NAME=scifact
fi
[ -f "$CORPUS" ] || die "no corpus ($CORPUS)"
IDX=$W/$NAME.idx
if [ ! -f "$IDX/data.mdb" ] || [ "$CORPUS" -nt "$IDX/data.mdb" ]; then
    rm -rf "$IDX"
    "$LEXIS" build "$IDX" --corpus "$CORPUS" --quiet
fi
cat "$LEXIS_DATA"/*/queries.jsonl > "$W/queries.jsonl"
python3 - "$W/queries.jsonl" "$W" <<'EOF'
import json, sys
src, w = sys.argv[1], sys.argv[2]
with open(src) as f, open(w + "/bodies.jsonl", "w") as a, open(w + "/bodies-nosnip.jsonl", "w") as b:
    for line in f:
        line = line.strip()
        if not line:
            continue
        q = json.loads(line)["text"]
        a.write(json.dumps({"query": q, "k": 10}) + "\n")
        b.write(json.dumps({"query": q, "k": 10, "snippets": False}) + "\n")
EOF
NQ=$(wc -l < "$W/bodies.jsonl" | tr -d ' ')
NDOCS=$("$LEXIS" inspect "$IDX" --json | sed -n 's/.*"documents":\([0-9]*\).*/\1/p')

# ---- the in-process baseline tool ------------------------------------------------------
LIBS=$(sed -n 's/^LDLIBS *:= //p' Makefile)
cc -std=c11 -D_GNU_SOURCE -O2 -o "$W/serve-inproc" tools/bench/serve-inproc.c \
    build/release/liblexis.a $LIBS -lpthread

{
echo "lexis serve benchmark: $NAME ($NDOCS documents), $NQ queries from $LEXIS_DATA/*/queries.jsonl, k=10"
echo "machine: $NCPU CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)); server: $SERVE_THREADS threads on CPUs $SRV_CPUS; wrk: $WRK_THREADS threads on CPUs $WRK_CPUS; ${DURATION}s per run"
} | tee "$OUT"

# ---- 1. in process --------------------------------------------------------------------------
bench_line=$($PIN_SRV "$LEXIS" bench "$IDX" --queries "$W/queries.jsonl" -k 10 --repeat 3 --threads "$SERVE_THREADS" 2>&1 | tail -2 | tr '\n' ' ')
ENGINE_QPS=$(echo "$bench_line" | sed -n 's/.*(\([0-9.]*\) queries\/s on one thread).*/\1/p')
ENGINE_QPS_T=$(echo "$bench_line" | sed -n 's/.*threads: \([0-9.]*\) queries\/s.*/\1/p')
[ -n "$ENGINE_QPS_T" ] || ENGINE_QPS_T=$ENGINE_QPS
$PIN_SRV "$LEXIS" run "$IDX" --queries "$W/queries.jsonl" -k 10 > /dev/null 2>&1   # warm
t0=$(date +%s.%N)
$PIN_SRV "$LEXIS" run "$IDX" --queries "$W/queries.jsonl" -k 10 > /dev/null 2>&1
t1=$(date +%s.%N)
RUN_QPS=$(echo "$NQ $t0 $t1" | awk '{ printf "%.0f", $1 / ($3 - $2) }')
IP1=$($PIN_SRV "$W/serve-inproc" "$IDX" "$W/bodies.jsonl" 20 "$SERVE_THREADS")
IP2=$($PIN_SRV "$W/serve-inproc" "$IDX" "$W/bodies-nosnip.jsonl" 20 "$SERVE_THREADS")
INPROC_QPS=$(echo "$IP1" | sed -n 's/.*rps=\([0-9.]*\).*/\1/p')
INPROC_NS_QPS=$(echo "$IP2" | sed -n 's/.*rps=\([0-9.]*\).*/\1/p')
INPROC_CPU=$(echo "$IP1" | sed -n 's/.*cpu_us=\([0-9.]*\).*/\1/p')
INPROC_NS_CPU=$(echo "$IP2" | sed -n 's/.*cpu_us=\([0-9.]*\).*/\1/p')
{
echo "in process: lexis bench (engine) ${ENGINE_QPS} q/s on 1 thread, ${ENGINE_QPS_T} q/s on $SERVE_THREADS;" \
     "lexis run -k 10 (1 thread) ${RUN_QPS} q/s;"
echo "            server handler without HTTP (serve-inproc, $SERVE_THREADS threads): ${INPROC_QPS} req/s with snippets, ${INPROC_NS_QPS} without;"
echo "            CPU per request in process: ${INPROC_CPU} us with snippets, ${INPROC_NS_CPU} us without"
} | tee -a "$OUT"

# ---- 2. wrk ---------------------------------------------------------------------------------------
$PIN_SRV "$LEXIS" serve "$IDX" --port 0 --threads "$SERVE_THREADS" --access-log off \
    > "$W/serve.out" 2> "$W/serve.err" &
SPID=$!
trap 'kill "$SPID" 2>/dev/null || true; [ -z "${LPID:-}" ] || kill "$LPID" 2>/dev/null || true' EXIT
i=0
URL=""
while [ $i -lt 100 ] && [ -z "$URL" ]; do
    sleep 0.1
    URL=$(sed -n 's/^lexis: listening on //p' "$W/serve.out")
    i=$((i + 1))
done
[ -n "$URL" ] || die "lexis serve did not start: $(cat "$W/serve.err")"

TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SPID/stat"; }
run_wrk() {   # CONNS DURATION BODIES -> RESULT line + server_cpu_s=
    _t=$WRK_THREADS
    [ "$1" -lt "$_t" ] && _t=$1
    _c0=$(cpu_ticks)
    _r=$($PIN_WRK wrk -t "$_t" -c "$1" -d "${2}s" --timeout 10s --latency -s tools/bench/queries.lua "$URL" -- "$3" \
        | grep '^RESULT')
    _c1=$(cpu_ticks)
    echo "$_r server_cpu_s=$(echo "$_c0 $_c1 $TCK" | awk '{ printf "%.2f", ($2 - $1) / $3 }')"
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
run_wrk 16 10 "$W/bodies.jsonl" > /dev/null      # warm-up

printf '%-9s %-5s %8s %8s %8s %8s %6s %6s %7s %8s\n' variant conns "req/s" "p50 ms" "p99 ms" "max ms" errors ratio "cpu us" "cpu rat" | tee -a "$OUT"
for variant in snippets plain; do
    if [ $variant = snippets ]; then B=$W/bodies.jsonl BASE=$INPROC_QPS BCPU=$INPROC_CPU
    else B=$W/bodies-nosnip.jsonl BASE=$INPROC_NS_QPS BCPU=$INPROC_NS_CPU; fi
    for c in $CONNS; do
        r=$(run_wrk "$c" "$DURATION" "$B")
        rps=$(field "$r" rps)
        ratio=$(echo "$rps $BASE" | awk '{ printf "%.2f", $1 / $2 }')
        cpu=$(echo "$(field "$r" server_cpu_s) $(field "$r" requests)" | awk '{ printf "%.1f", $1 * 1e6 / $2 }')
        cratio=$(echo "$BCPU $cpu" | awk '{ printf "%.2f", $1 / $2 }')
        printf '%-9s %-5s %8.0f %8s %8s %8s %6s %6s %7s %8s\n' $variant "$c" "$rps" "$(field "$r" p50_ms)" \
            "$(field "$r" p99_ms)" "$(field "$r" max_ms)" "$(field "$r" errors)" "$ratio" "$cpu" "$cratio" | tee -a "$OUT"
        echo "  $variant c=$c: $r" >> "$W/wrk-raw.txt"
    done
done
echo "ratio = served req/s / in-process req/s of the same handler (serve-inproc, $SERVE_THREADS threads);" | tee -a "$OUT"
echo "cpu us = the server's CPU time per request; cpu rat = in-process CPU per request / served" | tee -a "$OUT"
echo "plain (no snippets) vs lexis bench (engine only, $SERVE_THREADS threads) at 16 connections: see below" >> "$OUT"
plain16=$(grep '^plain *16 ' "$OUT" | awk '{ print $3 }')
[ -n "$plain16" ] && echo "plain c=16 / engine: $(echo "$plain16 $ENGINE_QPS_T" | awk '{ printf "%.2f", $1 / $2 }');" \
    "plain c=16 / lexis run: $(echo "$plain16 $RUN_QPS" | awk '{ printf "%.2f", $1 / $2 }') (run is 1 thread)" | tee -a "$OUT"
kill -TERM "$SPID"
wait "$SPID" || true

# ---- 4. add-to-searchable ------------------------------------------------------------------
rm -rf "$W/delay.idx"
cp -R "$IDX" "$W/delay.idx"
$PIN_SRV "$LEXIS" serve "$W/delay.idx" --port 0 --threads "$SERVE_THREADS" --access-log off --api-key bench \
    > "$W/serve.out" 2> "$W/serve.err" &
SPID=$!
URL=""
i=0
while [ $i -lt 100 ] && [ -z "$URL" ]; do
    sleep 0.1
    URL=$(sed -n 's/^lexis: listening on //p' "$W/serve.out")
    i=$((i + 1))
done
delay() {   # LABEL
    python3 - "$URL" "$1" <<'EOF'
import http.client, json, sys, time, urllib.parse
url, label = sys.argv[1], sys.argv[2]
u = urllib.parse.urlparse(url)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
lat, misses = [], 0
for i in range(100):
    tok = "delaytok%s%d" % (label, i)
    body = json.dumps({"_id": "delay-%s-%d" % (label, i), "title": "delay", "text": tok})
    t0 = time.perf_counter()
    c.request("POST", "/docs", body, {"Authorization": "Bearer bench"})
    r = c.getresponse(); r.read()
    t1 = time.perf_counter()
    assert r.status == 200, r.status
    c.request("POST", "/search", json.dumps({"query": tok, "k": 1}))
    r = c.getresponse(); hits = json.loads(r.read())["hits"]
    if not hits:
        misses += 1
    lat.append((t1 - t0) * 1000)
lat.sort()
print("add-to-searchable (%s): POST answered = committed = searchable: p50 %.2f ms, p99 %.2f ms, max %.2f ms; "
      "searched right after the answer: %d of 100 found" % (label, lat[50], lat[98], lat[99], 100 - misses))
EOF
}
delay idle | tee -a "$OUT"
$PIN_WRK wrk -t "$WRK_THREADS" -c 16 -d 30s -s tools/bench/queries.lua "$URL" -- "$W/bodies.jsonl" > "$W/wrk-load.txt" &
LPID=$!
sleep 2
delay load16 | tee -a "$OUT"
wait "$LPID" || true
LPID=""
echo "search load meanwhile: $(grep '^RESULT' "$W/wrk-load.txt" | tr ' ' '\n' | grep -E '^(rps|p99_ms|errors)=' | tr '\n' ' ')" | tee -a "$OUT"
kill -TERM "$SPID"
wait "$SPID" || true
rm -rf "$W/delay.idx"
echo "results in $OUT"
