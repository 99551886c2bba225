/* merge.c: merging segments into one, dropping deleted postings.
 *
 * A build flushes a run to a new segment whenever its memory budget fills,
 * and every `add` makes one more; queries read all of a term's segments in
 * turn, so many segments cost lookups and block bounds computed with stale
 * averages. Merging rewrites every term's postings as one list in a single
 * new segment: lists are decoded in doc-id order (segments are increasing
 * id ranges, so concatenation keeps order), deleted documents are dropped,
 * and blocks are re-encoded with bounds at the current average length.
 * Internal doc ids do not change, so docs and ids stay as they are; the
 * deleted bitmap empties, because no postings refer to deleted ids any more.
 * Terms left without live postings are removed. All of it is one
 * transaction: a crash leaves the index as it was before the merge.
 */
#include "index_impl.h"

#include <stdlib.h>
#include <string.h>

const idx_segment *idx_reader_segments(const idx_reader *r, uint32_t *n);

typedef struct merge_buf {
    uint32_t *docs, *tfs;
    size_t n, cap;
} merge_buf;

static int merge_buf_reserve(merge_buf *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    uint32_t *d = realloc(b->docs, cap * sizeof *d);
    if (!d)
        return LX_E_NOMEM;
    b->docs = d;
    uint32_t *t = realloc(b->tfs, cap * sizeof *t);
    if (!t)
        return LX_E_NOMEM;
    b->tfs = t;
    b->cap = cap;
    return 0;
}

/* A term of the snapshot: its id and its text (in the snapshot's map). */
typedef struct merge_term {
    uint32_t id, len;
    const char *text;
} merge_term;

static int cmp_term_id(const void *a, const void *b)
{
    uint32_t x = ((const merge_term *)a)->id, y = ((const merge_term *)b)->id;
    return (x > y) - (x < y);
}

/* Reads the live postings of term `tid` from snapshot r into b. */
static int merge_gather(const idx_reader *r, uint32_t tid, idx_plist *pls, int cap, merge_buf *b)
{
    b->n = 0;
    int nl = idx_reader_postings(r, tid, pls, cap);
    if (nl < 0)
        return nl;
    for (int i = 0; i < nl; i++) {
        /* + 3: a block's decode may write up to its count rounded up to 4 */
        int rc = merge_buf_reserve(b, b->n + pls[i].n + 3);
        if (rc)
            return rc;
        for (uint32_t bi = 0; bi < pls[i].nblocks; bi++) {
            int m = idx_block_decode(&pls[i], bi, b->docs + b->n, b->tfs + b->n);
            if (m < 0)
                return m;
            /* keep only live documents, in place */
            size_t out = b->n;
            for (int j = 0; j < m; j++) {
                uint32_t d = b->docs[b->n + j];
                if (!idx_reader_is_deleted(r, d)) {
                    b->docs[out] = d;
                    b->tfs[out] = b->tfs[b->n + j];
                    out++;
                }
            }
            b->n = out;
        }
    }
    return 0;
}

int idx_merge_segments(idx_env *env, uint32_t *segments_before)
{
    int rc;
    idx_reader *r = NULL;
    idx_stxn *w = NULL;
    merge_buf b = { 0 };
    idx_plist *pls = NULL;
    uint32_t *lens = NULL;
    unsigned char *enc = NULL;
    size_t enc_cap = 0;
    idx_scur *cur = NULL;

    /* Room for a second copy of the postings, generously. */
    uint64_t map, used;
    idx_store_info(env->store, &map, &used);
    if ((rc = idx_store_grow(env->store, (size_t)used + ((size_t)64 << 20))) != 0)
        return rc;
    /* The snapshot we read from and the write txn live side by side: LMDB
     * allows one read txn and the write txn in the same process. */
    if ((rc = idx_reader_open(env, &r)) != 0)
        return rc;
    uint32_t nsegs;
    const idx_segment *segs = idx_reader_segments(r, &nsegs);
    const idx_stats *st = idx_reader_stats(r);
    *segments_before = nsegs;
    if (nsegs <= 1 && st->ndeleted == 0) {
        idx_reader_close(r);
        return 0;                       /* nothing to do */
    }
    if ((rc = idx_store_begin(env->store, 1, &w)) != 0)
        goto out;
    idx_stats_disk sd;
    if ((rc = idx_stats_read(w, &sd)) != 0)
        goto out;

    /* The merged segment: every id from the first base to the last end. */
    uint32_t base = nsegs ? segs[0].base : sd.next_docid;
    uint32_t ndocs = sd.next_docid - base;
    lens = calloc(ndocs ? ndocs : 1, sizeof *lens);
    pls = malloc(sizeof *pls * (nsegs + 1));
    if (!lens || !pls) {
        rc = LX_E_NOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < nsegs; i++)
        for (uint32_t j = 0; j < segs[i].ndocs; j++)
            lens[segs[i].base - base + j] = idx_doclens_get(&segs[i].doclens, j);
    float avgdl = sd.ndocs ? (float)((double)sd.total_len / (double)sd.ndocs) : 1.0f;
    if (!(avgdl > 0))
        avgdl = 1.0f;
    uint32_t newseg = sd.next_segid++;

    /* Rewrite each term's postings in term id order into an emptied
     * postings database, appending, so pages come out full. The snapshot
     * still sees the old lists, and the texts the terms cursor hands out. */
    merge_term *tids = NULL;
    size_t ntids = 0, tcap = 0;
    idx_val k, v;
    if ((rc = idx_scur_open(idx_reader_txn(r), IDX_DB_TERMS, &cur)) != 0)
        goto out;
    for (rc = idx_scur_seek(cur, NULL, 0, &k, &v); rc == 0; rc = idx_scur_next(cur, &k, &v)) {
        if (v.size != IDX_TERM_VALUE) {
            rc = LX_E_CORRUPT;
            break;
        }
        if (ntids == tcap) {
            tcap = tcap ? tcap * 2 : 4096;
            merge_term *t = realloc(tids, tcap * sizeof *t);
            if (!t) {
                rc = LX_E_NOMEM;
                break;
            }
            tids = t;
        }
        tids[ntids++] = (merge_term){ lx_ld32(v.data), (uint32_t)k.size, k.data };
        if (lx_ld32((const char *)v.data + 4) == 0) {
            /* no live document has this term any more */
            if ((rc = idx_store_del(w, IDX_DB_TERMS, k.data, k.size)) != 0)
                break;
        }
    }
    idx_scur_close(cur);
    cur = NULL;
    if (rc != LX_E_NOTFOUND) {
        free(tids);
        goto out;
    }
    lx_sort(tids, ntids, sizeof *tids, cmp_term_id);
    if ((rc = idx_store_drop_all(w, IDX_DB_POSTINGS)) != 0
        || (rc = idx_store_drop_all(w, IDX_DB_DICTS)) != 0) {
        free(tids);
        goto out;
    }
    idx_dict_builder db;
    idx_dict_builder_init(&db, w, newseg, IDX_CHUNK_BYTES);
    for (size_t ti = 0; ti < ntids; ti++) {
        if ((rc = merge_gather(r, tids[ti].id, pls, (int)nsegs + 1, &b)) != 0)
            break;
        if (b.n == 0)
            continue;
        size_t need = idx_plist_max_size((uint32_t)b.n);
        if (need > enc_cap) {
            unsigned char *e = realloc(enc, need);
            if (!e) {
                rc = LX_E_NOMEM;
                break;
            }
            enc = e;
            enc_cap = need;
        }
        size_t sz = idx_plist_encode(b.docs, b.tfs, (uint32_t)b.n, lens, base, env->k1, env->b,
                                     avgdl, enc);
        if ((rc = idx_dict_builder_add(&db, tids[ti].id, tids[ti].text, tids[ti].len, enc, sz)) != 0)
            break;
    }
    /* a merge of no documents leaves no segment, so no dictionary */
    if (rc == 0 && ndocs)
        rc = idx_dict_builder_finish(&db);
    idx_dict_builder_free(&db);
    free(tids);
    if (rc)
        goto out;

    /* Segments: the old ones go, the merged one comes. */
    for (uint32_t i = 0; i < nsegs; i++) {
        unsigned char key[4];
        lx_st32be(key, segs[i].seg);
        if ((rc = idx_store_del(w, IDX_DB_SEGMENTS, key, 4)) != 0)
            goto out;
    }
    if (ndocs && (rc = idx_segment_put(w, newseg, base, ndocs, env->k1, env->b, avgdl, lens)) != 0)
        goto out;
    rc = idx_store_del(w, IDX_DB_DELETED, "bitmap", 6);
    if (rc && rc != LX_E_NOTFOUND)
        goto out;
    sd.ndeleted = 0;
    if ((rc = idx_stats_write(w, &sd)) != 0)
        goto out;
    rc = idx_store_commit(w);
    w = NULL;
out:
    idx_scur_close(cur);
    if (w)
        idx_store_abort(w);
    idx_reader_close(r);
    free(b.docs);
    free(b.tfs);
    free(pls);
    free(lens);
    free(enc);
    return rc;
}
