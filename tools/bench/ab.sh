#!/bin/sh
# ab.sh: wall-clock A/B of two lexis-lat binaries on one index and query set.
#
#   tools/bench/ab.sh [-r ROUNDS] [-k K] [-i NEW_INDEX] BASE_LAT NEW_LAT INDEX QUERIES.jsonl
#
# BASE_LAT and NEW_LAT are bench-lexis-lat binaries (make bench builds one as
# build/release/bench-lexis-lat; for the base, build a worktree of the old
# commit:  git worktree add /tmp/base OLD && make -C /tmp/base
# build/release/bench-lexis-lat). The two run in turn, ROUNDS times each
# (default 5; which goes first alternates), and each query's fastest time is
# kept per binary: on a virtual machine whose speed moves by tens of percent
# from minute to minute, the minimum over interleaved rounds is what stays
# put (back-to-back means of one binary differed by up to 25% here; this
# tool run on one binary against itself gave -0.5%, -0.3% and +0.1%, and one
# change measured -1.3% and +1.4% in two calls: take under 2% as noise).
# Prints the mean of the minima for each binary and NEW's change against
# BASE. Both must answer the same query ids. With -i, NEW runs on NEW_INDEX
# (the same corpus built by NEW's lexis) instead of INDEX: for a change of
# the format on disk, which the two binaries cannot both read.
set -eu
usage() {
    echo "usage: ab.sh [-r ROUNDS] [-k K] [-i NEW_INDEX] BASE_LAT NEW_LAT INDEX QUERIES.jsonl" >&2
    exit 2
}
rounds=5 k=10 new_index=
while [ $# -gt 0 ]; do
    case "$1" in
    -i)
        [ $# -ge 2 ] && [ -n "$2" ] || usage
        new_index=$2
        shift 2 ;;
    -r|-k)
        [ $# -ge 2 ] || usage
        case "$2" in
        ''|*[!0-9]*|0) echo "ab.sh: $1 wants a positive integer, not '$2'" >&2; exit 2 ;;
        esac
        if [ "$1" = -r ]; then rounds=$2; else k=$2; fi
        shift 2 ;;
    -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) usage ;;
    *) break ;;
    esac
done
[ $# -eq 4 ] || usage
# a bare name would be looked up on PATH when run, not in this folder
case "$1" in */*) base=$1 ;; *) base=./$1 ;; esac
case "$2" in */*) new=$2 ;; *) new=./$2 ;; esac
index=$3 queries=$4
[ -n "$new_index" ] || new_index=$index
for f in "$base" "$new"; do
    [ -x "$f" ] || { echo "ab.sh: $f is not an executable" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: > "$tmp/base"
: > "$tmp/new"
i=0
while [ $i -lt "$rounds" ]; do
    if [ $((i % 2)) -eq 0 ]; then
        "$base" "$index" "$queries" -k "$k" >> "$tmp/base"
        "$new" "$new_index" "$queries" -k "$k" >> "$tmp/new"
    else
        "$new" "$new_index" "$queries" -k "$k" >> "$tmp/new"
        "$base" "$index" "$queries" -k "$k" >> "$tmp/base"
    fi
    i=$((i + 1))
done
# lexis-lat prints: id <TAB> microseconds <TAB> hits
awk -F'\t' -v k="$k" -v r="$rounds" '
    { f = FILENAME == ARGV[1] ? 1 : 2; key = f SUBSEP $1
      if (!(key in m) || $2 + 0 < m[key]) m[key] = $2 + 0 }
    END {
        for (key in m) { split(key, p, SUBSEP); s[p[1]] += m[key]; n[p[1]]++; has[p[1], p[2]] = 1 }
        if (n[1] == 0) { print "ab.sh: the binaries printed no timings" > "/dev/stderr"; exit 1 }
        for (key in m) {
            split(key, p, SUBSEP)
            if (!((3 - p[1], p[2]) in has)) { print "ab.sh: the two runs answered different query sets" > "/dev/stderr"; exit 1 }
        }
        printf "k=%d, %d queries, fastest of %d rounds each: base %.2f us, new %.2f us (%+.1f%%)\n",
               k, n[1], r, s[1] / n[1], s[2] / n[2], 100 * (s[2] / s[1] - 1)
    }' "$tmp/base" "$tmp/new"
