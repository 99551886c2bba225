#!/bin/sh
# t_bad_input.sh: bad input and damaged or foreign indexes.
#   Each bad corpus is fed to `lexis add` on an index holding three base
#   documents: the stderr message must be clear (line number, a meaningful
#   word), the exit status the documented one, the good lines indexed, and
#   nothing committed lost (`lexis check` passes, base documents found).
#   Then: a directory that is not an index, a plain file, an index of a newer
#   format (meta patched with mdb_dump/mdb_load), a flipped byte in a postings
#   block and in a stored document (`lexis check` exits 4 naming them).
# Environment: LEXIS (binary). mdb_dump/mdb_load (lmdb-utils) for the last
# three parts; skipped without them.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${LEXIS:=$ROOT/build/release/lexis}"
T=$(mktemp -d "${TMPDIR:-/tmp}/t_bad_input.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM

fail() { echo "FAIL: $*"; exit 1; }
# expect RC CMD...: stdout -> $T/out, stderr -> $T/err; fails unless exit RC.
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
# stderr_has ERE WHAT: the last command's stderr matches ERE (case-insensitive).
stderr_has() {
    grep -Eiq -- "$1" "$T/err" || { cat "$T/err"; fail "$2: stderr does not match /$1/"; }
}
docs() {
    "$LEXIS" inspect "$1" --json 2>/dev/null | sed -n 's/.*"documents":\([0-9]*\).*/\1/p'
}
# ids INDEX QUERY: ids of all hits, one a line.
ids() {
    printf '{"_id":"q","text":"%s"}\n' "$2" | "$LEXIS" run "$1" --queries - -k 1000 2>/dev/null |
        awk '{print $3}'
}
found() { ids "$1" "$2" | grep -qx -e "$3"; }
absent() { [ -z "$(ids "$1" "$2")" ]; }
# intact INDEX: check passes and the base documents are all found.
intact() {
    "$LEXIS" check "$1" >"$T/check.out" 2>&1 || { cat "$T/check.out"; fail "$2: lexis check failed"; }
    found "$1" aardvark b1 && found "$1" buffalo b2 && found "$1" chinchilla b3 \
        || fail "$2: a base document is no longer found"
}
# add_case NAME RC ERE FILE [options]: lexis add idx FILE; exit RC; stderr ~ ERE.
add_case() {
    _name=$1 _rc=$2 _re=$3 _file=$4; shift 4
    expect "$_rc" "$LEXIS" add idx "$_file" "$@"
    [ -n "$_re" ] && stderr_has "$_re" "$_name"
    intact idx "$_name"
}

[ -x "$LEXIS" ] || fail "LEXIS=$LEXIS is not an executable"
cd "$T" || exit 1

cat > base.jsonl <<'EOF'
{"_id":"b1","title":"Base one","text":"aardvark"}
{"_id":"b2","title":"Base two","text":"buffalo"}
{"_id":"b3","title":"Base three","text":"chinchilla"}
EOF
expect 0 "$LEXIS" build idx --corpus base.jsonl --quiet
intact idx "base index"
n=3

# ---- malformed JSON lines: reported with the line number, skipped, exit 3 ------
cat > malformed.jsonl <<'EOF'
{"_id":"m1","title":"ok","text":"malgoodone"}
{"_id":"m2","title":"missing comma" "text":"malbadtwo"}
{"_id":"m3","title":"ok","text":"malgoodthree"}
{"_id":"m4","title":"unterminated string

not json at all malbadfive
[1, 2, "an array malbadseven"]
{"_id":"m8","title":"ok","text":"malgoodeight"}
{"_id":"m9","text":"trailing garbage malbadnine"} xyz
EOF
add_case malformed 3 'malformed\.jsonl:2:.*invalid JSON' malformed.jsonl
for l in 4 6 7 9; do
    grep -q "malformed.jsonl:$l:" "$T/err" || { cat "$T/err"; fail "malformed: line $l not reported"; }
done
grep -q 'malformed.jsonl:5:' "$T/err" && fail "malformed: blank line 5 reported as bad"
stderr_has 'skipped' malformed
stderr_has '5 lines skipped' "malformed summary"
for w in malgoodone:m1 malgoodthree:m3 malgoodeight:m8; do
    found idx "${w%:*}" "${w#*:}" || fail "malformed: good line ${w#*:} not indexed"
done
for w in malbadtwo malbadfive malbadseven malbadnine; do
    absent idx "$w" || fail "malformed: bad line with '$w' indexed"
done
n=$((n + 3)); [ "$(docs idx)" = $n ] || fail "malformed: expected $n documents, got $(docs idx)"

# ---- --strict: stops at the bad line, exit 3, lines before it kept -------------
cat > strict.jsonl <<'EOF'
{"_id":"s1","text":"strictone"}
{"_id":"s2","text":"stricttwo"}
{"_id":"s3","text":"strictthree"
{"_id":"s4","text":"strictfour"}
EOF
add_case strict 3 'strict\.jsonl:3:' strict.jsonl --strict
stderr_has 'strict|stopped' "strict"
found idx strictone s1 && found idx stricttwo s2 || fail "--strict: lines before the bad one lost"
absent idx strictfour || fail "--strict: the line after the bad one was indexed"
n=$((n + 2)); [ "$(docs idx)" = $n ] || fail "strict: expected $n documents, got $(docs idx)"
# The same with a commit before the bad line and with build.
add_case "strict batch" 3 'strict\.jsonl:3:' strict.jsonl --strict --batch-docs 1
[ "$(docs idx)" = $n ] || fail "strict (again): expected $n documents, got $(docs idx)"
expect 3 "$LEXIS" build sidx --corpus strict.jsonl --strict
stderr_has 'strict\.jsonl:3:' "build --strict"
[ "$(docs sidx)" = 2 ] || fail "build --strict: expected 2 documents, got $(docs sidx)"
"$LEXIS" check sidx >/dev/null 2>&1 || fail "build --strict: check failed"
found sidx stricttwo s2 || fail "build --strict: s2 missing"

# ---- invalid UTF-8 (raw bytes) ---------------------------------------------------
{
    echo '{"_id":"u1","text":"utfgoodone"}'
    printf '{"_id":"u2","title":"bad \377 byte","text":"utfbadtwo"}\n'
    printf '{"_id":"u3","title":"overlong \300\257","text":"utfbadthree"}\n'
    printf '{"_id":"u4","title":"surrogate \355\240\200","text":"utfbadfour"}\n'
    printf '{"_id":"u5\377","text":"utfbadfive"}\n'
    printf '{"_id":"u6","text":"truncated \342\202"}\n'
    printf '{"_id":"u7","text":"escaped lone surrogate \\ud800 utfbadseven"}\n'
    echo '{"_id":"u8","text":"utfgoodeight caf\u00e9 ok"}'
} > utf8.jsonl
add_case "invalid UTF-8" 3 'utf8\.jsonl:2:.*(0xff|utf|decode)' utf8.jsonl
for l in 3 4 5 6 7; do
    grep -q "utf8.jsonl:$l:" "$T/err" || { cat "$T/err"; fail "invalid UTF-8: line $l not reported"; }
done
found idx utfgoodone u1 && found idx utfgoodeight u8 || fail "invalid UTF-8: good lines lost"
for w in utfbadtwo utfbadthree utfbadfour utfbadfive utfbadseven; do
    absent idx "$w" || fail "invalid UTF-8: bad line with '$w' indexed"
done
n=$((n + 2))

# ---- NUL bytes -------------------------------------------------------------------------
{
    printf '{"_id":"z1","title":"nul \000 inside","text":"nulbadone"}\n'
    echo '{"_id":"z2","text":"nulgoodtwo"}'
    printf '{"_id":"z3",\000"text":"nulbadthree"}\n'
    printf '{"_id":"z4","text":"nulbadfour"}\000trailing\n'
    printf '{"_id":"z5","text":"escaped \\u0000 nulbadfive"}\n'
} > nul.jsonl
add_case "NUL byte" 3 'nul\.jsonl:1:.*(0x0|nul|control)' nul.jsonl
for l in 3 4 5; do
    grep -q "nul.jsonl:$l:.*invalid JSON" "$T/err" || { cat "$T/err"; fail "NUL: line $l not reported"; }
done
stderr_has 'nul\.jsonl:5:.*(0000|nul)' "escaped NUL"
found idx nulgoodtwo z2 || fail "NUL: good line lost"
for w in nulbadone nulbadthree nulbadfour nulbadfive; do
    absent idx "$w" || fail "NUL: bad line with '$w' indexed"
done
n=$((n + 1)); [ "$(docs idx)" = $n ] || fail "after NUL: expected $n documents, got $(docs idx)"

# ---- empty documents and missing fields: indexed, exit 0 ------------------------------
cat > empty.jsonl <<'EOF'
{"_id":"e1","title":"","text":""}
{"_id":"e2"}
{"_id":"e3","title":null,"text":null}
{"_id":"e4","title":"the","text":"and of a"}
{"_id":"e5","text":"notitleword only text"}
{"_id":"e6","title":"titleonlyword","other":"ignoredfieldword"}
EOF
add_case "empty documents" 0 '' empty.jsonl
n=$((n + 6)); [ "$(docs idx)" = $n ] || fail "empty documents: expected $n documents, got $(docs idx)"
found idx notitleword e5 || fail "missing title: e5 not found by its text"
found idx titleonlyword e6 || fail "missing text: e6 not found by its title"
absent idx ignoredfieldword || fail "a field that is not indexed was indexed"
expect 0 "$LEXIS" search idx notitleword --json
grep -q '"id":"e5","score":[0-9.]*,"title":""' "$T/out" || fail "missing title: JSON title not \"\": $(cat "$T/out")"
# An index of empty documents only.
printf '{"_id":"x1"}\n{"_id":"x2","title":"","text":""}\n' > onlyempty.jsonl
expect 0 "$LEXIS" build eidx --corpus onlyempty.jsonl --quiet
[ "$(docs eidx)" = 2 ] || fail "empty-only index: expected 2 documents"
expect 0 "$LEXIS" check eidx
expect 0 "$LEXIS" search eidx "anything at all"
grep -q 'no documents match' "$T/out" || fail "empty-only index: search matched something"

# ---- _id problems: missing, not a string, empty, too long -> exit 3 -----------------
long=$(awk 'BEGIN { while (n++ < 300) printf "x" }')
{
    echo '{"title":"no id","text":"idbadone"}'
    echo '{"_id":{"nested":1},"text":"idbadtwo"}'
    echo '{"_id":["a"],"text":"idbadthree"}'
    echo '{"_id":1.5,"text":"idbadfour"}'
    echo '{"_id":true,"text":"idbadfive"}'
    echo '{"_id":null,"text":"idbadsix"}'
    echo '{"_id":"","text":"idbadseven"}'
    echo "{\"_id\":\"$long\",\"text\":\"idbadeight\"}"
    echo '{"_id":"i9","title":42,"text":"idbadnine"}'
    echo '{"_id":"i10","text":{"nested":"idbadten"}}'
    echo '{"_id":"i11","text":"idgoodeleven"}'
} > ids.jsonl
add_case "bad ids" 3 'ids\.jsonl:1:.*_id' ids.jsonl
for l in 2 3 4 5 6; do
    grep -q "ids.jsonl:$l:.*_id.*string or an integer" "$T/err" \
        || { cat "$T/err"; fail "non-string _id: line $l not reported"; }
done
stderr_has 'ids\.jsonl:7:.*_id.*empty' "empty _id"
stderr_has 'ids\.jsonl:8:.*_id.*(long|limit)' "long _id"
stderr_has 'ids\.jsonl:9:.*title.*string' "non-string title"
stderr_has 'ids\.jsonl:10:.*text.*string' "non-string text"
stderr_has '10 lines skipped' "bad ids summary"
found idx idgoodeleven i11 || fail "bad ids: good line lost"
for w in idbadone idbadtwo idbadthree idbadfour idbadfive idbadsix idbadseven idbadeight idbadnine idbadten; do
    absent idx "$w" || fail "bad ids: line with '$w' indexed"
done
n=$((n + 1)); [ "$(docs idx)" = $n ] || fail "after bad ids: expected $n documents, got $(docs idx)"

# ---- integer _id: accepted as its decimal string ------------------------------------
printf '{"_id":12345,"text":"integeridword"}\n{"_id":-7,"text":"negativeidword"}\n' > intid.jsonl
add_case "integer _id" 0 '' intid.jsonl
found idx integeridword 12345 || fail "integer _id: not found as '12345'"
found idx negativeidword -7 || fail "integer _id: not found as '-7'"
expect 0 "$LEXIS" delete idx 12345
absent idx integeridword || fail "integer _id: delete 12345 did not delete it"
n=$((n + 1)); [ "$(docs idx)" = $n ] || fail "integer ids: expected $n documents, got $(docs idx)"

# ---- duplicate ids in one file: the last wins ---------------------------------------
cat > dup.jsonl <<'EOF'
{"_id":"dup","text":"dupversionone"}
{"_id":"other","text":"dupother"}
{"_id":"dup","text":"dupversiontwo"}
{"_id":"dup","text":"dupversionthree"}
EOF
add_case "duplicate ids" 0 '2 replaced' dup.jsonl
found idx dupversionthree dup || fail "duplicates: last version not found"
absent idx dupversionone && absent idx dupversiontwo || fail "duplicates: an earlier version still matches"
n=$((n + 2)); [ "$(docs idx)" = $n ] || fail "duplicates: expected $n documents, got $(docs idx)"
# Across commits (one document per batch), and replacing what is committed.
sed 's/version/again/' dup.jsonl > dup2.jsonl
add_case "duplicate ids across commits" 0 '4 replaced' dup2.jsonl --batch-docs 1
found idx dupagainthree dup || fail "duplicates across commits: last version not found"
absent idx dupversionthree && absent idx dupagainone && absent idx dupagaintwo \
    || fail "duplicates across commits: an earlier version still matches"
[ "$(docs idx)" = $n ] || fail "duplicates across commits: expected $n documents, got $(docs idx)"

# ---- a 10 MB document ----------------------------------------------------------------
awk 'BEGIN { srand(11); printf "{\"_id\":\"huge\",\"title\":\"huge document\",\"text\":\"";
             while (n < 10485760) { w = "w" int(rand() * 100000); printf "%s ", w; n += length(w) + 1
                                    if (!done && n > 5000000) { printf "needlehaystack "; done = 1 } }
             printf "hugeendword\"}\n" }' > huge.jsonl
[ "$(wc -c < huge.jsonl)" -gt 10485760 ] || fail "could not generate a 10 MB document"
add_case "10 MB document" 0 '' huge.jsonl
found idx needlehaystack huge || fail "10 MB document: not found by a word in its middle"
found idx hugeendword huge || fail "10 MB document: not found by its last word"
n=$((n + 1)); [ "$(docs idx)" = $n ] || fail "10 MB document: expected $n documents, got $(docs idx)"
echo '{"_id":"huge","text":"smallagain"}' > unhuge.jsonl
add_case "replacing the 10 MB document" 0 '1 replaced' unhuge.jsonl
absent idx needlehaystack || fail "replaced 10 MB document still matches"
found idx smallagain huge || fail "replacement of the 10 MB document not found"
rm -f huge.jsonl

# ---- a directory that is not a lexis index ---------------------------------------------
mkdir foreign && echo "precious data" > foreign/notes.txt
cksum foreign/notes.txt > sum-foreign
printf '{"_id":"q","text":"x"}\n' > q.jsonl
for c in "search foreign x" "add foreign base.jsonl" "check foreign" "inspect foreign" \
         "delete foreign b1" "run foreign --queries q.jsonl"; do
    # shellcheck disable=SC2086
    expect 1 "$LEXIS" $c
    stderr_has 'not a lexis index' "lexis $c"
done
expect 1 "$LEXIS" build foreign --corpus base.jsonl
stderr_has 'not a lexis index' "build into a foreign directory"
expect 1 "$LEXIS" build foreign --corpus base.jsonl --force
stderr_has 'not a lexis index' "build --force over a foreign directory"
[ "$(ls -A foreign)" = notes.txt ] || fail "foreign directory changed: $(ls -A foreign)"
cksum foreign/notes.txt | cmp -s - sum-foreign || fail "foreign file modified"
ls -d foreign?* 2>/dev/null && fail "build left foreign.* directories behind"

# ---- a compaction a crash interrupted ---------------------------------------------------------
# build rewrites data.mdb into data.mdb.compact and renames it; a kill in
# between leaves the copy. The index is intact and still an index (build
# --force replaces it); the next writer removes the copy.
awk 'BEGIN { for (i = 1; i <= 600; i++) printf "{\"_id\":\"c%d\",\"text\":\"compact word%d filler%d\"}\n", i, i, i % 9 }' > c.jsonl
expect 0 "$LEXIS" build cidx --corpus c.jsonl --batch-docs 20 --quiet
printf 'half a copy' > cidx/data.mdb.compact
expect 0 "$LEXIS" check cidx
[ "$(docs cidx)" = 600 ] || fail "interrupted compaction: $(docs cidx) documents"
expect 0 "$LEXIS" build cidx --corpus c.jsonl --batch-docs 20 --quiet --force
[ -e cidx/data.mdb.compact ] && fail "build --force kept the interrupted copy"
printf 'half a copy' > cidx/data.mdb.compact
printf '{"_id":"c601","text":"compact"}\n' > c1.jsonl
expect 0 "$LEXIS" add cidx c1.jsonl --quiet
[ -e cidx/data.mdb.compact ] && fail "the next writer kept the interrupted copy"
[ "$(docs cidx)" = 601 ] || fail "after add: $(docs cidx) documents"

# ---- a plain file as the index path ------------------------------------------------------
echo "just a file" > plain
cksum plain > sum-plain
for c in "search plain x" "add plain base.jsonl" "check plain" "inspect plain" \
         "delete plain b1" "run plain --queries q.jsonl" "build plain --corpus base.jsonl" \
         "build plain --corpus base.jsonl --force"; do
    # shellcheck disable=SC2086
    expect 1 "$LEXIS" $c
    stderr_has 'not a (directory|lexis index)' "lexis $c (plain file)"
done
[ -f plain ] && cksum plain | cmp -s - sum-plain || fail "plain file modified"
ls -d plain?* 2>/dev/null && fail "build left plain.* files behind"

if ! command -v mdb_dump >/dev/null 2>&1 || ! command -v mdb_load >/dev/null 2>&1; then
    echo "skip: mdb_dump/mdb_load (lmdb-utils) not found: newer format, flipped bytes"
    echo PASS
    exit 0
fi

# Awk helpers for mdb_dump's bytevalue format (one hex line per key or value).
HEXAWK='
function hx(c) { return index("0123456789abcdef", c) - 1 }
function le32(s, o,   i, v) { v = 0; for (i = 3; i >= 0; i--) v = v * 256 + hx(substr(s, 2*(o+i)+1, 1)) * 16 + hx(substr(s, 2*(o+i)+2, 1)); return v }
function be32(s, o,   i, v) { v = 0; for (i = 0; i < 4; i++) v = v * 256 + hx(substr(s, 2*(o+i)+1, 1)) * 16 + hx(substr(s, 2*(o+i)+2, 1)); return v }
function flip(s, o,   p, a, b) { p = 2*o + 1; a = substr("fedcba9876543210", hx(substr(s, p, 1)) + 1, 1)
    b = substr("fedcba9876543210", hx(substr(s, p+1, 1)) + 1, 1); return substr(s, 1, p-1) a b substr(s, p+2) }
'
tohex() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; }
# value_of DUMPFILE KEYHEX: the hex value stored under KEYHEX.
value_of() { awk -v k=" $2" 'f { print substr($0, 2); exit } $0 == k { f = 1 }' "$1"; }

# ---- an index of a newer format version ---------------------------------------------------
expect 0 "$LEXIS" build vidx --corpus base.jsonl --quiet
mdb_dump -s meta vidx > meta.dump || fail "mdb_dump -s meta failed"
fmt=$(tohex format)
[ "$(value_of meta.dump "$fmt")" = 05000000 ] || fail "meta 'format' is not u32 5: $(value_of meta.dump "$fmt")"
awk -v k=" $fmt" 'f { $0 = " 63000000"; f = 0 } $0 == k { f = 1 } { print }' meta.dump > meta99.dump
mdb_load -s meta -f meta99.dump vidx 2>/dev/null || fail "mdb_load -s meta failed"
mdb_dump -s meta vidx > meta.check
[ "$(value_of meta.check "$fmt")" = 63000000 ] || fail "could not patch the format version"
for c in "search vidx x" "add vidx base.jsonl" "check vidx" "inspect vidx" "inspect vidx --json" \
         "delete vidx b1" "run vidx --queries q.jsonl"; do
    # shellcheck disable=SC2086
    expect 1 "$LEXIS" $c
    stderr_has 'version 99.*newer' "lexis $c (format 99)"
done
expect 1 "$LEXIS" build vidx --corpus base.jsonl
mdb_dump -s meta vidx | cmp -s - meta.check || fail "a command modified the newer-format index"
# Older formats (1: documents stored raw; 2: postings headers without the
# k-th best scores; 3: segments with u32 document lengths; 4: postings keyed
# by term, no segment dictionaries) are refused too, not misread.
for v in 1 2 3 4; do
    awk -v k=" $fmt" -v old=" 0${v}000000" 'f { $0 = old; f = 0 } $0 == k { f = 1 } { print }' meta.dump > "meta$v.dump"
    mdb_load -s meta -f "meta$v.dump" vidx 2>/dev/null || fail "mdb_load -s meta (version $v) failed"
    for c in "search vidx x" "check vidx" "add vidx base.jsonl"; do
        # shellcheck disable=SC2086
        expect 1 "$LEXIS" $c
        stderr_has "version $v is older.*rebuild" "lexis $c (format $v)"
    done
done

# ---- a format-4 index as it lies on disk: no 'dicts' database ---------------------------------
# Every database but dicts, copied into a new environment (mdb_dump -a, that
# one left out), the format patched to 4: the version message, not "not a
# lexis index", and nothing written to it.
expect 0 "$LEXIS" build v5idx --corpus base.jsonl --quiet
mdb_dump -a v5idx | awk -v fk=" $fmt" '
    hdr == 0 && /^VERSION=/ { hdr = 1; n = 0; skip = 0 }
    hdr { h[++n] = $0; if ($0 == "database=dicts") skip = 1
          if ($0 == "HEADER=END") { hdr = 0; if (!skip) for (i = 1; i <= n; i++) print h[i] }
          next }
    skip { next }
    patch { $0 = " 04000000"; patch = 0 }
    $0 == fk { patch = 1 }
    { print }' > v4.dump
grep -q "database=dicts" v4.dump && fail "the dump still holds dicts"
mkdir v4idx && mdb_load -f v4.dump v4idx 2>/dev/null || fail "mdb_load of the format-4 copy failed"
: > v4idx/write.lock
cksum v4idx/data.mdb > v4.sum
for c in "search v4idx x" "check v4idx" "add v4idx base.jsonl" "inspect v4idx"; do
    # shellcheck disable=SC2086
    expect 1 "$LEXIS" $c
    stderr_has "version 4 is older.*rebuild" "lexis $c (format 4, no dicts database)"
done
cksum v4idx/data.mdb | cmp -s - v4.sum || fail "a command modified the format-4 index"

# ---- a flipped byte in a postings block ----------------------------------------------------
# "commonword" in 300 documents: three blocks of 128. Flip a byte of block 0's data.
awk 'BEGIN { for (i = 1; i <= 300; i++) printf "{\"_id\":\"p%d\",\"title\":\"t\",\"text\":\"commonword filler%d\"}\n", i, i % 7 }' > p.jsonl
expect 0 "$LEXIS" build pidx --corpus p.jsonl --quiet
expect 0 "$LEXIS" check pidx
mdb_dump -s terms pidx > terms.dump
tv=$(value_of terms.dump "$(tohex commonword)")
[ -n "$tv" ] || fail "term 'commonword' not in the terms database"
tid=$(echo "$tv" | awk "$HEXAWK"'{ print le32($0, 0) }')
# The segment's dictionary (dict.c) says where the list lies: entries of 24
# bytes (term id, chunk, offset, size, ...) after a 24-byte header and
# nslots slots of 8 bytes.
mdb_dump -s dicts pidx | awk -v tid="$tid" "$HEXAWK"'
    BEGIN { hdr = 1 }
    hdr { if ($0 == "HEADER=END") hdr = 0; next }
    key != "" { v = substr($0, 2); nt = le32(v, 0); at = 24 + 8 * le32(v, 4)
                for (i = 0; i < nt; i++)
                    if (le32(v, at + 24 * i) == tid) {
                        printf "%08x%08x %d\n", be32(key, 0), le32(v, at + 24 * i + 4), le32(v, at + 24 * i + 8)
                        printf "%d\n", be32(key, 0) > "seg.txt" }
                exit }
    length($0) == 9 { key = substr($0, 2) }' > where.txt
read -r ckey loff < where.txt || fail "no dictionary entry for 'commonword'"
mdb_dump -s postings pidx | awk -v ckey=" $ckey" -v o="$loff" "$HEXAWK"'
    BEGIN { hdr = 1 }
    hdr { print; if ($0 == "HEADER=END") hdr = 0; next }
    key != "" { v = substr($0, 2); nb = le32(v, o + 4)
                hs = le32(v, o) >= 10 ? 40 : 24                # header: 40 bytes from 10 postings
                off = le32(v, o + hs + 4)                      # block 0 data_off
                print key; print " " flip(v, o + hs + nb * 32 + off + 1); print "DATA=END"
                printf "%d\n", nb > "nblocks.txt"; exit }
    $0 == ckey { key = $0 }' > flip.dump
read -r seg < seg.txt || fail "no postings list for 'commonword'"
read -r nblocks < nblocks.txt || fail "no chunk $ckey for 'commonword'"
[ "$nblocks" -ge 2 ] || fail "expected several blocks for 'commonword', got $nblocks"
mdb_load -s postings -f flip.dump pidx 2>/dev/null || fail "mdb_load -s postings failed"
expect 4 "$LEXIS" check pidx
grep -q "term 'commonword' segment $seg block 0: checksum mismatch" "$T/out" \
    || { cat "$T/out"; fail "check does not name term 'commonword' segment $seg block 0"; }
grep -q '^DAMAGED' "$T/out" || fail "check: no DAMAGED summary"
grep -q 'block [1-9]' "$T/out" && { cat "$T/out"; fail "check blames an intact block"; }
# Queries touching the damaged block fail cleanly or answer; they never crash.
"$LEXIS" search pidx commonword > /dev/null 2> "$T/err"
rc=$?
[ $rc -le 1 ] || { cat "$T/err"; fail "search over a damaged block: exit $rc"; }
[ $rc -eq 0 ] || stderr_has 'corrupt|damaged|check' "search over a damaged block"
"$LEXIS" search pidx filler3 > /dev/null 2>&1 || fail "search of an undamaged term failed"

# ---- a flipped byte in a stored document ------------------------------------------------------
expect 0 "$LEXIS" build didx --corpus base.jsonl --quiet
mdb_dump -s ids didx > ids.dump
docid=$(value_of ids.dump "$(tohex b2)" | awk "$HEXAWK"'{ print le32($0, 0) }')
[ -n "$docid" ] || fail "id b2 not in the ids database"
key=$(printf '%08x' "$docid")
mdb_dump -s docs didx | awk -v key=" $key" "$HEXAWK"'
    BEGIN { hdr = 1 }
    hdr { print; if ($0 == "HEADER=END") hdr = 0; next }
    k { v = substr($0, 2); print key; print " " flip(v, length(v) / 2 - 2); print "DATA=END"; exit }
    $0 == key { k = 1 }' > docflip.dump
grep -q DATA=END docflip.dump || fail "document $docid not in the docs database"
mdb_load -s docs -f docflip.dump didx 2>/dev/null || fail "mdb_load -s docs failed"
expect 4 "$LEXIS" check didx
grep -q "document $docid.*checksum mismatch" "$T/out" \
    || { cat "$T/out"; fail "check does not name document $docid"; }
grep '^check: document' "$T/out" | grep -v "document $docid:" | grep -q . \
    && { cat "$T/out"; fail "check blames an intact document"; }

echo PASS
