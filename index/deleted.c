/* deleted.c: the set of deleted documents, a Roaring bitmap. The one file
 * that calls CRoaring. Stored in `deleted` under "bitmap" in the portable
 * serialization, so other Roaring implementations can read it. */
#include "index_impl.h"

#include <roaring/roaring.h>

struct idx_delset {
    roaring_bitmap_t *bm;
};

int idx_delset_load(const void *data, size_t size, idx_delset **out)
{
    idx_delset *d = malloc(sizeof *d);
    if (!d)
        return LX_E_NOMEM;
    if (size == 0) {
        d->bm = roaring_bitmap_create();
    } else {
        /* The safe variant checks every length against `size`. */
        d->bm = roaring_bitmap_portable_deserialize_safe(data, size);
        if (!d->bm) {
            free(d);
            return LX_E_CORRUPT;
        }
    }
    if (!d->bm) {
        free(d);
        return LX_E_NOMEM;
    }
    *out = d;
    return 0;
}

int idx_delset_contains(const idx_delset *d, uint32_t docid)
{
    return roaring_bitmap_contains(d->bm, docid);
}

int idx_delset_add(idx_delset *d, uint32_t docid)
{
    roaring_bitmap_add(d->bm, docid);
    return 0;
}

uint64_t idx_delset_count(const idx_delset *d)
{
    return roaring_bitmap_get_cardinality(d->bm);
}

size_t idx_delset_size(idx_delset *d)
{
    roaring_bitmap_run_optimize(d->bm);
    return roaring_bitmap_portable_size_in_bytes(d->bm);
}

void idx_delset_write(const idx_delset *d, void *out)
{
    roaring_bitmap_portable_serialize(d->bm, out);
}

void idx_delset_free(idx_delset *d)
{
    if (!d)
        return;
    roaring_bitmap_free(d->bm);
    free(d);
}
