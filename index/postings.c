/* postings.c: the postings codec. The one file that calls libstreamvbyte
 * (to encode; decoding is ours, SIMD, in svb.c).
 *
 * A postings list (one term in one segment) is a header, a block index and
 * block data (layout in index_impl.h). Blocks hold IDX_BLOCK_SIZE postings;
 * the index entries sit together so block-max skipping walks a dense array
 * without touching the data. Doc ids are stored as gaps with StreamVByte's
 * differential coder (SIMD decode), term frequencies with plain StreamVByte.
 *
 * Safety: StreamVByte's decoder trusts its input, so before decoding we
 * compute the exact encoded length from the control bytes and check it
 * against the block's bounds. Its SIMD loads may read up to 16 bytes past the
 * last encoded byte, so every list ends with IDX_PLIST_PAD zero bytes and the
 * parser insists they exist.
 */
#include "index_impl.h"

#include <streamvbyte.h>
#include <streamvbytedelta.h>

#include <string.h>

#define IDX_PLIST_PAD 16

const uint32_t idx_kth_ranks[IDX_KTH_COUNT] = { 10, 100, 1000 };

size_t idx_plist_header_size(uint32_t n)
{
    return n >= idx_kth_ranks[0] ? IDX_PLIST_HEADER_KTH : IDX_PLIST_HEADER;
}

/* ---- the k-th best tf/(tf + K) of a list ---- */

/* A min-heap of the IDX_KTH_MAX largest values seen: the root is the
 * smallest kept. */
void idx_kth_init(idx_kth *k)
{
    k->m = 0;
}

void idx_kth_push(idx_kth *k, float f)
{
    float *h = k->h;
    uint32_t i;
    if (k->m < IDX_KTH_MAX) {
        i = k->m++;
        while (i > 0 && h[(i - 1) / 2] > f) {
            h[i] = h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h[i] = f;
        return;
    }
    if (!(f > h[0]))
        return;
    i = 0;
    for (;;) {
        uint32_t l = 2 * i + 1, c = l;
        if (l >= k->m)
            break;
        if (l + 1 < k->m && h[l + 1] < h[l])
            c = l + 1;
        if (!(h[c] < f))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = f;
}

static int by_value_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

void idx_kth_finish(idx_kth *k, float out[IDX_KTH_COUNT])
{
    lx_sort(k->h, k->m, sizeof *k->h, by_value_desc);
    for (int i = 0; i < IDX_KTH_COUNT; i++)
        out[i] = k->m >= idx_kth_ranks[i] ? k->h[idx_kth_ranks[i] - 1] : 0.0f;
}

size_t idx_plist_max_size(uint32_t n)
{
    uint32_t nb = (n + IDX_BLOCK_SIZE - 1) / IDX_BLOCK_SIZE;
    return IDX_PLIST_HEADER_KTH + (size_t)nb * IDX_BLOCK_ENTRY
           + 2 * (size_t)nb * streamvbyte_max_compressedbytes(IDX_BLOCK_SIZE) + IDX_PLIST_PAD;
}

size_t idx_plist_encode(const uint32_t *docs, const uint32_t *tfs, uint32_t n,
                        const uint32_t *doclen_by_rel, uint32_t seg_base,
                        float k1, float b, float avgdl, unsigned char *out)
{
    uint32_t nb = (n + IDX_BLOCK_SIZE - 1) / IDX_BLOCK_SIZE;
    size_t hsize = idx_plist_header_size(n);
    unsigned char *entries = out + hsize;
    unsigned char *data = entries + (size_t)nb * IDX_BLOCK_ENTRY;
    size_t off = 0;
    float list_fmax = 0;
    uint32_t list_max_tf = 0, list_min_dl = UINT32_MAX, prev = 0;
    idx_kth kth;
    idx_kth_init(&kth);

    for (uint32_t bi = 0; bi < nb; bi++) {
        uint32_t start = bi * IDX_BLOCK_SIZE;
        uint32_t cnt = n - start < IDX_BLOCK_SIZE ? n - start : IDX_BLOCK_SIZE;
        float fmax = 0;
        uint32_t max_tf = 0, min_dl = UINT32_MAX;
        for (uint32_t i = start; i < start + cnt; i++) {
            uint32_t dl = doclen_by_rel[docs[i] - seg_base];
            float f = idx_bm25_tfnorm(tfs[i], dl, k1, b, avgdl);
            if (f > fmax) fmax = f;
            idx_kth_push(&kth, f);
            if (tfs[i] > max_tf) max_tf = tfs[i];
            if (dl < min_dl) min_dl = dl;
        }
        unsigned char *e = entries + (size_t)bi * IDX_BLOCK_ENTRY;
        size_t dbytes = streamvbyte_delta_encode(docs + start, cnt, data + off, prev);
        size_t tbytes = streamvbyte_encode(tfs + start, cnt, data + off + dbytes);
        lx_st32(e, docs[start + cnt - 1]);
        lx_st32(e + 4, (uint32_t)off);
        lx_stf(e + 8, fmax);
        lx_st32(e + 12, max_tf);
        lx_st32(e + 16, min_dl);
        uint16_t c16 = (uint16_t)cnt, d16 = (uint16_t)dbytes;
        memcpy(e + 20, &c16, 2);
        memcpy(e + 22, &d16, 2);
        uint64_t h = idx_hash64_seed(data + off, dbytes + tbytes, idx_hash64(e, 24));
        lx_st64(e + 24, h);
        off += dbytes + tbytes;
        prev = docs[start + cnt - 1];
        if (fmax > list_fmax) list_fmax = fmax;
        if (max_tf > list_max_tf) list_max_tf = max_tf;
        if (min_dl < list_min_dl) list_min_dl = min_dl;
    }
    memset(data + off, 0, IDX_PLIST_PAD);
    off += IDX_PLIST_PAD;

    lx_st32(out, n);
    lx_st32(out + 4, nb);
    lx_stf(out + 8, list_fmax);
    lx_st32(out + 12, list_max_tf);
    lx_st32(out + 16, list_min_dl);
    uint64_t h = idx_hash64(out, 20);
    if (hsize == IDX_PLIST_HEADER_KTH) {
        float kv[IDX_KTH_COUNT];
        idx_kth_finish(&kth, kv);
        for (int i = 0; i < IDX_KTH_COUNT; i++)
            lx_stf(out + IDX_PLIST_HEADER + 4 * i, kv[i]);
        lx_st32(out + IDX_PLIST_HEADER + 4 * IDX_KTH_COUNT, 0);
        h = idx_hash64_seed(out + IDX_PLIST_HEADER, IDX_PLIST_HEADER_KTH - IDX_PLIST_HEADER, h);
    }
    lx_st32(out + 20, (uint32_t)h);
    return (size_t)(data + off - out);
}

int idx_plist_parse(const void *val, size_t len, idx_plist *out)
{
    const unsigned char *v = val;
    if (len < IDX_PLIST_HEADER + IDX_PLIST_PAD)
        return LX_E_CORRUPT;
    uint32_t n = lx_ld32(v), nb = lx_ld32(v + 4);
    size_t hsize = idx_plist_header_size(n);
    if (len < hsize + IDX_PLIST_PAD)
        return LX_E_CORRUPT;
    uint64_t h = idx_hash64(v, 20);
    if (hsize == IDX_PLIST_HEADER_KTH)
        h = idx_hash64_seed(v + IDX_PLIST_HEADER, IDX_PLIST_HEADER_KTH - IDX_PLIST_HEADER, h);
    if (lx_ld32(v + 20) != (uint32_t)h)
        return LX_E_CORRUPT;
    if (n == 0 || nb != (n + IDX_BLOCK_SIZE - 1) / IDX_BLOCK_SIZE)
        return LX_E_CORRUPT;
    size_t idx_end = hsize + (size_t)nb * IDX_BLOCK_ENTRY;
    if (idx_end + IDX_PLIST_PAD > len)
        return LX_E_CORRUPT;
    out->n = n;
    out->nblocks = nb;
    out->fmax = lx_ldf(v + 8);
    out->max_tf = lx_ld32(v + 12);
    out->min_dl = lx_ld32(v + 16);
    for (int i = 0; i < IDX_KTH_COUNT; i++)
        out->kth[i] = hsize == IDX_PLIST_HEADER_KTH ? lx_ldf(v + IDX_PLIST_HEADER + 4 * i) : 0.0f;
    out->entries = v + hsize;
    out->data = v + idx_end;
    out->data_size = len - idx_end - IDX_PLIST_PAD;  /* padding excluded */
    out->seg = 0;
    out->seg_base = 0;                /* the reader sets the segment fields */
    out->seg_ndocs = UINT32_MAX;
    out->doclens = (idx_doclens){ 0 };
    return 0;
}

/* Bounds of block i's bytes within data, checked. */
static int idx_block_bounds(const idx_plist *p, uint32_t i, size_t *off, size_t *end,
                            uint32_t *cnt, uint32_t *dbytes)
{
    if (i >= p->nblocks)
        return LX_E_CORRUPT;
    const unsigned char *e = p->entries + (size_t)i * IDX_BLOCK_ENTRY;
    uint16_t c16, d16;
    memcpy(&c16, e + 20, 2);
    memcpy(&d16, e + 22, 2);
    *off = lx_ld32(e + 4);
    *end = i + 1 < p->nblocks ? lx_ld32(e + IDX_BLOCK_ENTRY + 4) : p->data_size;
    *cnt = c16;
    *dbytes = d16;
    if (*cnt == 0 || *cnt > IDX_BLOCK_SIZE || *off > *end || *end > p->data_size
        || *dbytes > *end - *off)
        return LX_E_CORRUPT;
    /* Only the last block may be short. */
    if (i + 1 < p->nblocks && *cnt != IDX_BLOCK_SIZE)
        return LX_E_CORRUPT;
    return 0;
}

/* 1 if v[0..n) strictly increases. Written branch-free for the vectorizer
 * (GCC does not vectorize at -O2 unless asked; clang does). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("tree-vectorize")))
#endif
static int strictly_increasing(const uint32_t *v, uint32_t n)
{
    uint32_t bad = 0;
    for (uint32_t j = 1; j < n; j++)
        bad |= v[j] <= v[j - 1];
    return bad == 0;
}

int idx_block_decode(const idx_plist *p, uint32_t i, uint32_t *docs, uint32_t *tfs)
{
    size_t off, end;
    uint32_t cnt, dbytes;
    if (idx_block_bounds(p, i, &off, &end, &cnt, &dbytes))
        return LX_E_CORRUPT;
    const unsigned char *d = p->data + off;
    size_t blen = end - off;
    /* The decoder reads at most ctrl + 4 bytes a value + 16 bytes of slack.
     * Where that much lies inside the value (all but the last blocks), decode
     * first and compare the bytes consumed; near the end, size it first. */
    size_t worst = (cnt + 3) / 4 + 4 * (size_t)cnt;
    uint32_t prev = i ? idx_block_last(p, i - 1) : 0, gor;
    if (off + dbytes + worst > p->data_size) {
        /* idx_svb_size returns 0 for "does not fit", so an empty stream
         * (no doc bytes, or no tf bytes) would match it; with cnt >= 1 a
         * real stream is at least 2 bytes. */
        if (dbytes == 0 || dbytes == blen
            || idx_svb_size(d, dbytes, cnt) != dbytes
            || idx_svb_size(d + dbytes, blen - dbytes, cnt) != blen - dbytes)
            return LX_E_CORRUPT;
        idx_svb_delta_decode(d, docs, cnt, prev, &gor);
        idx_svb_decode(d + dbytes, tfs, cnt);
    } else if (idx_svb_delta_decode(d, docs, cnt, prev, &gor) != dbytes
               || idx_svb_decode(d + dbytes, tfs, cnt) != blen - dbytes) {
        return LX_E_CORRUPT;
    }
    /* Guards that keep a damaged block inside its segment, since callers
     * index doc lengths by these ids: strictly increasing, starting after the
     * previous block, ending at the entry's last doc, inside the segment.
     * The first id is checked against seg_base in every block: the previous
     * entry's last doc is not covered by this block's checksum, so it may be
     * below seg_base (or UINT32_MAX, where prev + 1 would wrap to 0).
     * Increasing: when every gap after the first is in [1, 2^25] (the
     * decoder's gaps_or), their sum is below 2^32, so the ids wrapped past
     * 2^32 exactly when the last is below the first; only otherwise (gaps
     * above 2^25, or damage) is every pair compared. */
    uint32_t bad = (docs[0] < p->seg_base) | (i != 0 && docs[0] <= prev);
    if ((gor >> 25) != 0 || docs[cnt - 1] < docs[0])
        bad |= !strictly_increasing(docs, cnt);
    if (bad || docs[cnt - 1] != idx_block_last(p, i)
        || docs[cnt - 1] - p->seg_base >= p->seg_ndocs)
        return LX_E_CORRUPT;
    return (int)cnt;
}

int idx_block_verify_checksum(const idx_plist *p, uint32_t i)
{
    size_t off, end;
    uint32_t cnt, dbytes;
    if (idx_block_bounds(p, i, &off, &end, &cnt, &dbytes))
        return LX_E_CORRUPT;
    const unsigned char *e = p->entries + (size_t)i * IDX_BLOCK_ENTRY;
    uint64_t h = idx_hash64_seed(p->data + off, end - off, idx_hash64(e, 24));
    return h == lx_ld64(e + 24) ? 0 : LX_E_CORRUPT;
}
