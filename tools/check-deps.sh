#!/bin/sh
# check-deps.sh: enforces the layer rule of DESIGN.md:
#   kernels <- encoder <- index <- query <- server, tools
# A file may include its own module's headers and the public header of a
# lower layer, never a higher layer's header and never another module's
# private *_impl.h. Exits 1 on the first kind of violation, listing all.
set -u
cd "$(dirname "$0")/.." || exit 2
rank() {
    case "$1" in
        kernels) echo 0 ;; encoder) echo 1 ;; index) echo 2 ;; query) echo 3 ;;
        server) echo 4 ;; tools) echo 5 ;; tests) echo 6 ;; *) echo -1 ;;
    esac
}
bad=0
for f in $(find kernels encoder index query server tools -name '*.[ch]' -o -name '*.cu' 2>/dev/null); do
    mod=${f%%/*}
    r=$(rank "$mod")
    grep -o '#include *"[^"]*"' "$f" | sed 's/.*"\(.*\)"/\1/' | while read -r inc; do
        case "$inc" in
            ../*) target=$(echo "$inc" | sed 's|^\.\./||; s|/.*||') ;;
            */*)  target=${inc%%/*} ;;
            *)    target=$mod ;;
        esac
        [ "$target" = "$mod" ] && continue
        tr=$(rank "$target")
        [ "$tr" -lt 0 ] && continue
        if [ "$tr" -gt "$r" ] || { [ "$mod" = server ] && [ "$target" = tools ]; }; then
            echo "check-deps: $f includes $inc: $mod may not include $target (layer above)"
            echo x
        fi
        case "$inc" in *_impl.h)
            echo "check-deps: $f includes $inc: private header of module $target"
            echo x ;;
        esac
    done
done > build-check-deps.txt
if grep -q '^x$' build-check-deps.txt; then
    grep -v '^x$' build-check-deps.txt
    rm -f build-check-deps.txt
    exit 1
fi
rm -f build-check-deps.txt
echo "check-deps: layering ok"
