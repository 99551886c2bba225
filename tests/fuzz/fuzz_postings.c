/* fuzz_postings.c: libFuzzer target for the postings codec (index/postings.c).
 *
 * Promise under test (index.h): idx_plist_parse, idx_block_decode and
 * idx_block_verify_checksum never read out of bounds, whatever the bytes;
 * corrupt data gives LX_E_CORRUPT. A block that does decode holds 1..128
 * strictly increasing ids, after the previous block's last id, inside the
 * segment [seg_base, seg_base + seg_ndocs), ending at the entry's last doc,
 * so callers may index doc lengths by them (idx_plist_doclen).
 *
 * StreamVByte is a system library without ASan instrumentation, so its reads
 * are invisible to ASan. Every value is therefore copied to the end of an
 * mmap'd region followed by a PROT_NONE page (a read past the value's last
 * byte faults), and the region before the value is ASan-poisoned. The decode
 * output arrays sit against guard pages too, and the encoder writes into a
 * buffer of exactly idx_plist_max_size(n) bytes ending at a guard page.
 *
 * Input layout (first byte = mode):
 *   mode bit 7 clear -- arbitrary value:
 *     bit 0: recompute the header checksum (else parse almost always fails)
 *     bit 1: recompute every block checksum whose bounds make sense
 *     bit 2: bytes 1..8 give seg_base (u32) and seg_ndocs (u32 % 65537), and
 *            a doc-length array of exactly seg_ndocs entries is attached and
 *            read for every decoded doc; else parse's defaults (base 0,
 *            ndocs UINT32_MAX, no lengths)
 *     the value is the rest. The whole input is also parsed as-is.
 *   mode bit 7 set -- round trip:
 *     bits 0-3: number of edits E; the last 3*E bytes are edits
 *               (u16 position, u8 xor) applied to the encoded value
 *     bit 4/5: after the edits, fix the header / block checksums
 *     bytes 1..4: seg_base; byte 5: avgdl selector; then LEB128 pairs
 *     (gap, tf) until the edits: docs = seg_base + running sum (first gap
 *     may be 0, later gaps 0 become 1), tf 0 becomes 1. Stops at 4096
 *     postings or when a doc passes seg_base + 2^18.
 *     With E = 0 the list is encoded, parsed, decoded and compared with the
 *     input: ids, tfs, counts, header and block maxima and checksums
 *     (abort on mismatch). With E > 0 the damaged value goes through the
 *     arbitrary-value checks above, with the segment attached.
 *
 * Build with `make fuzz`; run build/fuzz/fuzz_postings -max_len=8192 CORPUS_DIR.
 */
#include "../../index/index_impl.h"
#include "fuzz_guard.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_CHECK(x) LX_ASSERT(x)

#define FZ_MAXP 4096               /* postings in round-trip mode */
#define FZ_MAXREL (1u << 18)       /* docs within seg_base + FZ_MAXREL */
#define FZ_REGION (1u << 20)       /* largest value checked */

static fz_guard fz_val, fz_enc, fz_out_docs, fz_out_tfs;
static uint32_t *fz_docs, *fz_tfs;             /* 128 each, guard after */
static volatile uint32_t fz_sink;

static void fz_init(void)
{
    fz_guard_init(&fz_val, FZ_REGION);
    fz_guard_init(&fz_enc, FZ_REGION);
    fz_guard_init(&fz_out_docs, 4096);
    fz_guard_init(&fz_out_tfs, 4096);
    fz_docs = (uint32_t *)fz_guard_place(&fz_out_docs, NULL, IDX_BLOCK_SIZE * 4);
    fz_tfs = (uint32_t *)fz_guard_place(&fz_out_tfs, NULL, IDX_BLOCK_SIZE * 4);
}

/* ---- fix-ups --------------------------------------------------------------- */

static void fz_fix_header(unsigned char *v, size_t len)
{
    if (len < IDX_PLIST_HEADER)
        return;
    size_t hs = idx_plist_header_size(lx_ld32(v));
    uint64_t h = idx_hash64(v, 20);
    if (hs > IDX_PLIST_HEADER && len >= hs)
        h = idx_hash64_seed(v + IDX_PLIST_HEADER, hs - IDX_PLIST_HEADER, h);
    lx_st32(v + 20, (uint32_t)h);
}

/* Recomputes each block checksum whose byte range lies in the data (the
 * range rule of idx_block_bounds; counts are not required to hold). v is the
 * writable value that pl was parsed from. */
static void fz_fix_blocks(unsigned char *v, const idx_plist *pl)
{
    unsigned char *entries = v + idx_plist_header_size(pl->n);
    for (uint32_t i = 0; i < pl->nblocks; i++) {
        unsigned char *e = entries + (size_t)i * IDX_BLOCK_ENTRY;
        size_t off = lx_ld32(e + 4);
        size_t end = i + 1 < pl->nblocks ? lx_ld32(e + IDX_BLOCK_ENTRY + 4) : pl->data_size;
        if (off > end || end > pl->data_size)
            continue;
        const unsigned char *data = pl->data;      /* points into v */
        lx_st64(e + 24, idx_hash64_seed(data + off, end - off, idx_hash64(e, 24)));
    }
}

/* ---- checks on an arbitrary value ------------------------------------------ */

typedef struct fz_seg {
    int set;
    uint32_t base, ndocs;
    idx_doclens doclens;           /* lens: ndocs u16, exactly allocated, or NULL */
} fz_seg;

/* Parses and decodes value (already placed against the guard page) and
 * checks every promise of index.h about what comes back. */
static void fz_check_value(const unsigned char *val, size_t len, const fz_seg *seg)
{
    idx_plist p;
    int rc = idx_plist_parse(val, len, &p);
    if (rc != 0) {
        FZ_CHECK(rc == LX_E_CORRUPT);
        return;
    }
    FZ_CHECK(p.n > 0 && p.nblocks == (p.n + IDX_BLOCK_SIZE - 1) / IDX_BLOCK_SIZE);
    FZ_CHECK(p.entries == val + idx_plist_header_size(p.n));
    FZ_CHECK(p.data == p.entries + (size_t)p.nblocks * IDX_BLOCK_ENTRY);
    FZ_CHECK(p.data + p.data_size + 16 == val + len);
    if (seg->set) {
        p.seg_base = seg->base;
        p.seg_ndocs = seg->ndocs;
        p.doclens = seg->doclens;
    }
    uint64_t total = 0;
    for (uint32_t i = 0; i < p.nblocks; i++) {
        rc = idx_block_verify_checksum(&p, i);
        FZ_CHECK(rc == 0 || rc == LX_E_CORRUPT);
        /* Poison the outputs' stale contents: decode must fill what it returns. */
        memset(fz_docs, 0xA5, IDX_BLOCK_SIZE * 4);
        memset(fz_tfs, 0xA5, IDX_BLOCK_SIZE * 4);
        int n = idx_block_decode(&p, i, fz_docs, fz_tfs);
        if (n < 0) {
            FZ_CHECK(n == LX_E_CORRUPT);
            continue;
        }
        FZ_CHECK(n >= 1 && n <= IDX_BLOCK_SIZE);
        FZ_CHECK(i + 1 == p.nblocks || n == IDX_BLOCK_SIZE);
        FZ_CHECK(fz_docs[0] >= p.seg_base);
        if (i > 0)
            FZ_CHECK(fz_docs[0] > idx_block_last(&p, i - 1));
        for (int j = 1; j < n; j++)
            FZ_CHECK(fz_docs[j] > fz_docs[j - 1]);
        FZ_CHECK(fz_docs[n - 1] == idx_block_last(&p, i));
        FZ_CHECK(fz_docs[n - 1] - p.seg_base < p.seg_ndocs);
        if (p.doclens.lens) {
            /* What check.c and the cursors do with decoded ids. */
            uint32_t s = 0;
            for (int j = 0; j < n; j++)
                s += idx_plist_doclen(&p, fz_docs[j]);
            fz_sink = s;
        }
        total += (uint64_t)n;
    }
    /* Not checked: total == p.n. Decode does not tie the last block's count
     * to the header's n (idx_check reports that mismatch); it is not a
     * bounds matter. */
    (void)total;
    /* Out-of-range block numbers. */
    static const uint32_t bad[] = { 0, 1, 2, UINT32_MAX, UINT32_MAX - 1, 0x80000000u };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        uint32_t i = k < 3 ? p.nblocks + bad[k] : bad[k];
        if (i < p.nblocks)
            continue;
        FZ_CHECK(idx_block_decode(&p, i, fz_docs, fz_tfs) == LX_E_CORRUPT);
        FZ_CHECK(idx_block_verify_checksum(&p, i) == LX_E_CORRUPT);
    }
}

/* ---- arbitrary-value mode ---------------------------------------------------- */

static void fz_raw(const uint8_t *data, size_t size)
{
    unsigned mode = data[0];
    size_t pos = 1;
    fz_seg seg = { 0 };
    unsigned char *doclens = NULL;
    if (mode & 4) {
        if (size < 9)
            return;
        seg.set = 1;
        seg.base = lx_ld32(data + 1);
        seg.ndocs = lx_ld32(data + 5) % 65537;
        pos = 9;
        doclens = malloc(seg.ndocs ? (size_t)seg.ndocs * 2 : 1);
        FZ_CHECK(doclens != NULL);
        for (uint32_t i = 0; i < seg.ndocs; i++)
            lx_st16(doclens + 2 * (size_t)i, (uint16_t)(i * 7 + 1));
        seg.doclens.lens = doclens;
    }
    size_t len = size - pos;
    if (len > FZ_REGION) {
        free(doclens);
        return;
    }
    unsigned char *v = malloc(len ? len : 1);
    FZ_CHECK(v != NULL);
    memcpy(v, data + pos, len);
    if (mode & 1)
        fz_fix_header(v, len);
    if (mode & 2) {
        idx_plist p;
        if (idx_plist_parse(v, len, &p) == 0)
            fz_fix_blocks(v, &p);
    }
    fz_check_value(fz_guard_place(&fz_val, v, len), len, &seg);
    free(v);
    free(doclens);
}

/* ---- round-trip mode ------------------------------------------------------- */

static int fz_leb(const uint8_t *d, size_t end, size_t *pos, uint32_t *out)
{
    uint32_t v = 0;
    for (int k = 0; k < 5; k++) {
        if (*pos >= end)
            return 0;
        uint8_t b = d[(*pos)++];
        v |= (uint32_t)(b & 0x7F) << (7 * k);
        if (!(b & 0x80))
            break;
    }
    *out = v;
    return 1;
}

static void fz_roundtrip(const uint8_t *data, size_t size)
{
    unsigned mode = data[0];
    unsigned nedits = mode & 15;
    if (size < 6 + 3 * (size_t)nedits)
        return;
    size_t end = size - 3 * (size_t)nedits;
    uint32_t base = lx_ld32(data + 1);
    static const float avgdls[] = { 1.0f, 0.5f, 7.25f, 100.0f, 1e-3f, 3e6f, 42.0f, 1.5f };
    float avgdl = avgdls[data[5] & 7];
    float k1 = (data[5] & 8) ? 1.2f : 0.9f, b = (data[5] & 16) ? 0.75f : 0.4f;
    size_t pos = 6;

    static uint32_t docs[FZ_MAXP], tfs[FZ_MAXP];
    uint32_t n = 0, rel = 0;
    while (n < FZ_MAXP) {
        uint32_t gap, tf;
        if (!fz_leb(data, end, &pos, &gap) || !fz_leb(data, end, &pos, &tf))
            break;
        if (n > 0 && gap == 0)
            gap = 1;
        if (gap >= FZ_MAXREL || (n > 0 ? rel : 0) + (uint64_t)gap >= FZ_MAXREL)
            break;
        rel = n > 0 ? rel + gap : gap;
        if ((uint64_t)base + rel > UINT32_MAX)
            break;
        docs[n] = base + rel;
        tfs[n] = tf ? tf : 1;
        n++;
    }
    if (n == 0)
        return;
    uint32_t ndocs = rel + 1;
    uint32_t *dl = malloc((size_t)ndocs * 4);
    FZ_CHECK(dl != NULL);
    for (uint32_t r = 0; r < ndocs; r++)
        dl[r] = 1 + ((r * 2654435761u) >> 22);
    for (uint32_t i = 0; i < n; i++)
        if (dl[docs[i] - base] < tfs[i])
            dl[docs[i] - base] = tfs[i];

    /* Encode into exactly idx_plist_max_size(n) bytes. */
    size_t max = idx_plist_max_size(n);
    FZ_CHECK(max <= FZ_REGION);
    unsigned char *out = fz_guard_place(&fz_enc, NULL, max);
    size_t sz = idx_plist_encode(docs, tfs, n, dl, base, k1, b, avgdl, out);
    FZ_CHECK(sz > 0 && sz <= max);
    unsigned char *v = malloc(sz);
    FZ_CHECK(v != NULL);
    memcpy(v, out, sz);

    /* The lengths as a segment value stores them (lengths of 65,535 or
     * more, from large tfs, go through its table of long ones). */
    size_t segsz = idx_segment_size(dl, ndocs);
    unsigned char *segv = malloc(segsz);
    FZ_CHECK(segv != NULL);
    idx_segment_write(segv, segsz, base, ndocs, k1, b, avgdl, dl);
    idx_segment sgm;
    FZ_CHECK(idx_segment_parse(0, segv, segsz, &sgm) == 0);
    FZ_CHECK(sgm.base == base && sgm.ndocs == ndocs);
    fz_seg seg = { 1, base, ndocs, sgm.doclens };
    if (nedits == 0) {
        const unsigned char *val = fz_guard_place(&fz_val, v, sz);
        idx_plist p;
        FZ_CHECK(idx_plist_parse(val, sz, &p) == 0);
        FZ_CHECK(p.n == n && p.nblocks == (n + IDX_BLOCK_SIZE - 1) / IDX_BLOCK_SIZE);
        p.seg_base = base;
        p.seg_ndocs = ndocs;
        p.doclens = seg.doclens;
        float lfmax = 0;
        uint32_t lmax_tf = 0, lmin_dl = UINT32_MAX;
        for (uint32_t i = 0; i < p.nblocks; i++) {
            uint32_t start = i * IDX_BLOCK_SIZE;
            uint32_t cnt = n - start < IDX_BLOCK_SIZE ? n - start : IDX_BLOCK_SIZE;
            FZ_CHECK(idx_block_verify_checksum(&p, i) == 0);
            FZ_CHECK(idx_block_decode(&p, i, fz_docs, fz_tfs) == (int)cnt);
            FZ_CHECK(memcmp(fz_docs, docs + start, cnt * 4) == 0);
            FZ_CHECK(memcmp(fz_tfs, tfs + start, cnt * 4) == 0);
            FZ_CHECK(idx_block_last(&p, i) == docs[start + cnt - 1]);
            float fmax = 0;
            uint32_t max_tf = 0, min_dl = UINT32_MAX;
            for (uint32_t j = 0; j < cnt; j++) {
                uint32_t d = idx_plist_doclen(&p, fz_docs[j]);
                FZ_CHECK(d == dl[docs[start + j] - base]);
                float f = idx_bm25_tfnorm(fz_tfs[j], d, k1, b, avgdl);
                if (f > fmax) fmax = f;
                if (fz_tfs[j] > max_tf) max_tf = fz_tfs[j];
                if (d < min_dl) min_dl = d;
            }
            FZ_CHECK(idx_block_fmax(&p, i) == fmax);
            FZ_CHECK(idx_block_max_tf(&p, i) == max_tf);
            FZ_CHECK(idx_block_min_dl(&p, i) == min_dl);
            if (fmax > lfmax) lfmax = fmax;
            if (max_tf > lmax_tf) lmax_tf = max_tf;
            if (min_dl < lmin_dl) lmin_dl = min_dl;
        }
        FZ_CHECK(p.fmax == lfmax && p.max_tf == lmax_tf && p.min_dl == lmin_dl);
        /* And the generic checks hold for a valid list too. */
        fz_check_value(val, sz, &seg);
    } else {
        for (unsigned k = 0; k < nedits; k++) {
            const uint8_t *e = data + end + 3 * k;
            size_t at = ((size_t)e[0] | (size_t)e[1] << 8) % sz;
            v[at] ^= e[2] ? e[2] : 0xFF;
        }
        if (mode & 16)
            fz_fix_header(v, sz);
        if (mode & 32) {
            idx_plist p;
            if (idx_plist_parse(v, sz, &p) == 0)
                fz_fix_blocks(v, &p);
        }
        fz_check_value(fz_guard_place(&fz_val, v, sz), sz, &seg);
    }
    free(v);
    free(segv);
    free(dl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fz_val.base)
        fz_init();
    if (size == 0)
        return 0;
    /* The literal input, as a value. */
    if (size <= FZ_REGION) {
        static const fz_seg none = { 0 };
        fz_check_value(fz_guard_place(&fz_val, data, size), size, &none);
    }
    if (data[0] & 0x80)
        fz_roundtrip(data, size);
    else
        fz_raw(data, size);
    return 0;
}
