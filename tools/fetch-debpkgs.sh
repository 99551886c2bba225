#!/bin/sh
# fetch-debpkgs.sh — build a JSONL corpus from the English descriptions of
# every Debian package this machine's apt sources know about (~64,000 on
# bookworm main).
#
#   tools/fetch-debpkgs.sh [--refresh] OUT.jsonl [BUILD_DIR]
#
# 1. Runs `apt-get update -o Acquire::Languages=en` (as root, or through sudo)
#    when no Translation-en index is in $APT_LISTS (default /var/lib/apt/lists),
#    when one is more than a day old, or always with --refresh. Many images
#    (Debian's docker images among them) set Acquire::Languages "none", and a
#    later plain `apt-get update` deletes the Translation-en files again; the
#    -o option overrides that for this run only.
# 2. Streams every *_i18n_Translation-en[.lz4|.gz|.xz|.zst|.bz2] through the
#    matching decompressor into BUILD_DIR/deb2jsonl (default build/release),
#    which writes one {"_id","title","text"} object per package.
# 3. Writes OUT.jsonl.tmp and renames it to OUT.jsonl only on success.
#
# Files are read in C-locale name order, which on deb.debian.org puts
# "debian-security" and "<suite>-updates" before "<suite>_main"; deb2jsonl
# keeps the first description of a package, so the newer suites win.
#
# "More than a day old" uses the status-change time (find -ctime), not the
# mtime: apt stamps each list file's mtime with the server's date, which for a
# stable release can be weeks old right after a successful update. An update
# that finds nothing new ("Hit") does not touch the files either, so once a
# day has passed every run repeats the (cheap, ~1 s) update until the
# archive changes.
set -eu

usage() {
    cat <<'EOF'
usage: fetch-debpkgs.sh [--refresh] OUT.jsonl [BUILD_DIR]

Write one JSON object per Debian package ({"_id","title","text"} from the
Translation-en indexes in $APT_LISTS, default /var/lib/apt/lists) to OUT.jsonl,
using BUILD_DIR/deb2jsonl (default build/release). Runs
`apt-get update -o Acquire::Languages=en` first when the indexes are missing or
more than a day old, or always with --refresh.
EOF
}

# Prints the command that decompresses file $1 to stdout.
decompressor_for() {
    case $1 in
    *.lz4) echo lz4cat ;;
    *.gz)  echo zcat ;;
    *.xz)  echo xzcat ;;
    *.zst) echo zstdcat ;;
    *.bz2) echo bzcat ;;
    *)     echo cat ;;
    esac
}

refresh=0
while [ $# -gt 0 ]; do
    case $1 in
    --refresh) refresh=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) echo "fetch-debpkgs: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: fetch-debpkgs.sh [--refresh] OUT.jsonl [BUILD_DIR]" >&2
    exit 2
fi
out=$1
build=${2:-build/release}
bin=$build/deb2jsonl
lists=${APT_LISTS:-/var/lib/apt/lists}
LC_ALL=C
export LC_ALL

if [ ! -x "$bin" ]; then
    echo "fetch-debpkgs: $bin not found; build it first (make)" >&2
    exit 1
fi

# Prints the Translation-en index files in C-locale name order, one per line
# (names from apt never contain spaces or newlines). One glob, so the order
# does not depend on which files happen to be compressed.
list_translations() {
    for f in "$lists"/*_i18n_Translation-en*; do
        case $f in
        *_Translation-en|*_Translation-en.lz4|*_Translation-en.gz) ;;
        *_Translation-en.xz|*_Translation-en.zst|*_Translation-en.bz2) ;;
        *) continue ;;      # e.g. Translation-en_GB, Translation-en.diff/
        esac
        [ -f "$f" ] && printf '%s\n' "$f"
    done
    return 0
}

need_update=$refresh
files=$(list_translations)
# $files is split on purpose here and below (one path per line, no blanks).
# shellcheck disable=SC2086
if [ -z "$files" ]; then
    need_update=1
elif [ -n "$(find $files -prune -ctime +0 2>/dev/null)" ]; then
    need_update=1
fi

if [ "$need_update" = 1 ]; then
    if [ "$(id -u)" = 0 ]; then
        sudo=
    elif command -v sudo >/dev/null 2>&1; then
        sudo=sudo
    else
        sudo=none
    fi
    if [ "$sudo" = none ]; then
        echo "fetch-debpkgs: not root and no sudo; using the lists already present" >&2
    else
        echo "fetch-debpkgs: apt-get update -o Acquire::Languages=en" >&2
        if ! $sudo apt-get update -o Acquire::Languages=en >&2; then
            echo "fetch-debpkgs: apt-get update failed; using the lists already present" >&2
        fi
    fi
    files=$(list_translations)
fi
if [ -z "$files" ]; then
    echo "fetch-debpkgs: no Translation-en files in $lists" >&2
    exit 1
fi

tmp=$out.tmp
status=$(mktemp "${TMPDIR:-/tmp}/fetch-debpkgs.XXXXXX")
trap 'rm -f "$tmp" "$status"' EXIT
trap 'exit 130' INT TERM HUP
mkdir -p "$(dirname "$out")"

# POSIX sh has no pipefail: the producer records a failed decompressor in
# $status, deb2jsonl's own status is the pipeline's.
for f in $files; do
    cat=$(decompressor_for "$f")
    if ! command -v "$cat" >/dev/null 2>&1; then
        echo "fetch-debpkgs: $cat is needed for $f" >&2
        exit 1
    fi
done
start=$(date +%s)
for f in $files; do
    cat=$(decompressor_for "$f")
    echo "fetch-debpkgs: reading $f" >&2
    # Each stanza ends with a blank line; add one in case a file does not.
    { "$cat" "$f" && echo; } || echo "$f" >>"$status"
done | "$bin" >"$tmp"
if [ -s "$status" ]; then
    echo "fetch-debpkgs: decompression failed for: $(cat "$status")" >&2
    exit 1
fi
mv "$tmp" "$out"
n=$(wc -l <"$out")
echo "fetch-debpkgs: wrote $((n + 0)) packages to $out ($(wc -c <"$out" | tr -d ' ') bytes, $(($(date +%s) - start)) s)"
