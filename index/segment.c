/* segment.c: a segment's value in the segments database, written and read.
 *
 * Layout (format 4, little endian; index_impl.h has the whole picture):
 *
 *   u32 base, u32 ndocs, f32 k1, f32 b, f32 avgdl, u32 checksum   (24 bytes)
 *   u16 doclen[ndocs]           IDX_DOCLEN_LONG: 65,535 terms or more,
 *                               the length is in the table below
 *   0 or 2 zero bytes           so that the table starts 4-byte aligned
 *   nlong x (u32 offset, u32 length), strictly increasing offsets
 *
 * The checksum is the low 32 bits of XXH3 over everything after the header,
 * seeded by XXH3 of its first 20 bytes. Lengths were u32 in format 3;
 * halving them halves the bytes MaxScore's windows read at random, one
 * length a posting scored (index.h, idx_doclens).
 */
#include "index_impl.h"

#include <string.h>

static size_t lens_end(uint32_t ndocs)
{
    size_t end = IDX_SEG_HEADER + 2 * (size_t)ndocs;
    return (end + 3) & ~(size_t)3;
}

size_t idx_segment_size(const uint32_t *lens, uint32_t ndocs)
{
    size_t nlong = 0;
    for (uint32_t i = 0; i < ndocs; i++)
        nlong += lens[i] >= IDX_DOCLEN_LONG;
    return lens_end(ndocs) + 8 * nlong;
}

void idx_segment_write(unsigned char *sv, size_t size, uint32_t base, uint32_t ndocs, float k1, float b,
                       float avgdl, const uint32_t *lens)
{
    lx_st32(sv, base);
    lx_st32(sv + 4, ndocs);
    lx_stf(sv + 8, k1);
    lx_stf(sv + 12, b);
    lx_stf(sv + 16, avgdl);
    unsigned char *p = sv + IDX_SEG_HEADER, *lp = sv + lens_end(ndocs);
    memset(p + 2 * (size_t)ndocs, 0, (size_t)(lp - p) - 2 * (size_t)ndocs);   /* the padding */
    for (uint32_t i = 0; i < ndocs; i++, p += 2) {
        uint32_t dl = lens[i];
        if (dl >= IDX_DOCLEN_LONG) {
            lx_st32(lp, i);
            lx_st32(lp + 4, dl);
            lp += 8;
            dl = IDX_DOCLEN_LONG;
        }
        lx_st16(p, (uint16_t)dl);
    }
    LX_ASSERT(lp == sv + size);         /* size came from idx_segment_size */
    lx_st32(sv + 20, idx_segment_checksum(sv, size));
}

uint32_t idx_segment_checksum(const void *val, size_t size)
{
    const unsigned char *v = val;
    return (uint32_t)idx_hash64_seed(v + IDX_SEG_HEADER, size - IDX_SEG_HEADER, idx_hash64(v, 20));
}

int idx_segment_put(idx_stxn *t, uint32_t seg, uint32_t base, uint32_t ndocs, float k1, float b, float avgdl,
                    const uint32_t *lens)
{
    unsigned char key[4];
    void *dst;
    size_t size = idx_segment_size(lens, ndocs);
    lx_st32be(key, seg);
    int rc = idx_store_reserve(t, IDX_DB_SEGMENTS, key, 4, size, 0, &dst);
    if (rc == 0)
        idx_segment_write(dst, size, base, ndocs, k1, b, avgdl, lens);
    return rc;
}

int idx_segment_parse(uint32_t seg, const void *val, size_t len, idx_segment *out)
{
    const unsigned char *v = val;
    if (len < IDX_SEG_HEADER)
        return LX_E_CORRUPT;
    out->seg = seg;
    out->base = lx_ld32(v);
    out->ndocs = lx_ld32(v + 4);
    out->k1 = lx_ldf(v + 8);
    out->b = lx_ldf(v + 12);
    out->avgdl = lx_ldf(v + 16);
    size_t end = lens_end(out->ndocs);
    if (len < end || (len - end) % 8 || !(out->avgdl > 0))
        return LX_E_CORRUPT;
    idx_doclens *d = &out->doclens;
    d->lens = v + IDX_SEG_HEADER;
    d->longs = v + end;
    d->nlong = (uint32_t)((len - end) / 8);
    /* The table is looked up by binary search: its order is checked once
     * here (it is a few entries; ndocs is not scanned). */
    for (uint32_t i = 0; i < d->nlong; i++) {
        uint32_t off = lx_ld32(d->longs + 8 * (size_t)i);
        if (off >= out->ndocs || lx_ld32(d->longs + 8 * (size_t)i + 4) < IDX_DOCLEN_LONG
            || (i && off <= lx_ld32(d->longs + 8 * (size_t)(i - 1))))
            return LX_E_CORRUPT;
    }
    return 0;
}

uint32_t idx_doclens_long(const idx_doclens *d, uint32_t off)
{
    uint32_t lo = 0, hi = d->nlong;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2, o = lx_ld32(d->longs + 8 * (size_t)mid);
        if (o == off)
            return lx_ld32(d->longs + 8 * (size_t)mid + 4);
        if (o < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return IDX_DOCLEN_LONG;     /* damaged: idx_check reports the mismatch */
}
