/* reader.c: a read snapshot of the index.
 *
 * A reader is one LMDB read transaction plus what every query needs from it,
 * loaded once: the statistics, the segment table (doc-id ranges, doc lengths
 * read in place) and the deleted set. Everything a reader hands out borrows
 * the map and stays valid until idx_reader_close; the snapshot never changes
 * underneath, whatever writers commit meanwhile.
 */
#include "index_impl.h"

#include <stdlib.h>
#include <string.h>

struct idx_reader {
    idx_env *env;
    idx_stxn *t;
    idx_stats stats;
    idx_segment *segs;
    uint32_t nsegs;
    idx_delset *del;         /* NULL when nothing is deleted */
    idx_val *chunks;         /* every segment's chunk values (dict.chunks) */
    idx_docdec dec;          /* the last decompressed document */
    uint64_t serial;         /* idx_reader_serial */
};

/* Each segment's dictionary, and the values of its chunks: a few gets a
 * segment (a chunk holds IDX_CHUNK_BYTES of postings). */
static int reader_load_dicts(idx_reader *r)
{
    int rc;
    idx_val v;
    size_t nchunks = 0;
    for (uint32_t i = 0; i < r->nsegs; i++) {
        unsigned char key[4];
        lx_st32be(key, r->segs[i].seg);
        if ((rc = idx_store_get(r->t, IDX_DB_DICTS, key, 4, &v)) != 0)
            return rc == LX_E_NOTFOUND ? LX_E_CORRUPT : rc;
        if ((rc = idx_dict_parse(v.data, v.size, &r->segs[i].dict)) != 0)
            return rc;
        nchunks += r->segs[i].dict.nchunks;
    }
    if (nchunks == 0)
        return 0;
    if (!(r->chunks = calloc(nchunks, sizeof *r->chunks)))
        return LX_E_NOMEM;
    idx_val *c = r->chunks;
    for (uint32_t i = 0; i < r->nsegs; i++) {
        idx_dict *d = &r->segs[i].dict;
        d->chunks = c;
        for (uint32_t j = 0; j < d->nchunks; j++, c++) {
            unsigned char key[8];
            lx_st32be(key, r->segs[i].seg);
            lx_st32be(key + 4, j);
            if ((rc = idx_store_get(r->t, IDX_DB_POSTINGS, key, 8, c)) != 0)
                return rc == LX_E_NOTFOUND ? LX_E_CORRUPT : rc;
        }
    }
    return 0;
}

int idx_reader_open(idx_env *env, idx_reader **out)
{
    int rc;
    idx_reader *r = calloc(1, sizeof *r);
    if (!r)
        return LX_E_NOMEM;
    r->env = env;
    r->serial = __atomic_add_fetch(&env->readers_opened, 1, __ATOMIC_RELAXED);
    idx_docdec_init(&r->dec, env);
    if ((rc = idx_store_begin(env->store, 0, &r->t)) != 0)
        goto out_free;
    idx_stats_disk sd;
    if ((rc = idx_stats_read(r->t, &sd)) != 0)
        goto out_free;
    r->stats.ndocs = sd.ndocs;
    r->stats.total_len = sd.total_len;
    r->stats.avgdl = sd.ndocs && sd.total_len ? (double)sd.total_len / (double)sd.ndocs : 1.0;
    r->stats.next_docid = sd.next_docid;
    r->stats.ndeleted = sd.ndeleted;
    r->stats.nterms = sd.next_termid;
    r->stats.k1 = env->k1;
    r->stats.b = env->b;

    /* Segment table. */
    uint32_t cap = sd.next_segid ? sd.next_segid : 1;
    r->segs = calloc(cap, sizeof *r->segs);
    if (!r->segs) { rc = LX_E_NOMEM; goto out_free; }
    idx_scur *c;
    if ((rc = idx_scur_open(r->t, IDX_DB_SEGMENTS, &c)) != 0)
        goto out_free;
    idx_val k, v;
    for (rc = idx_scur_seek(c, NULL, 0, &k, &v); rc == 0; rc = idx_scur_next(c, &k, &v)) {
        if (k.size != 4 || r->nsegs == cap) { rc = LX_E_CORRUPT; break; }
        idx_segment *s = &r->segs[r->nsegs];
        if ((rc = idx_segment_parse(lx_ld32be(k.data), v.data, v.size, s)) != 0)
            break;
        if (r->nsegs && s->base < r->segs[r->nsegs - 1].base + r->segs[r->nsegs - 1].ndocs) {
            rc = LX_E_CORRUPT;
            break;
        }
        r->nsegs++;
    }
    idx_scur_close(c);
    if (rc != LX_E_NOTFOUND)
        goto out_free;
    r->stats.nsegments = r->nsegs;

    if (sd.ndeleted) {
        if ((rc = idx_store_get(r->t, IDX_DB_DELETED, "bitmap", 6, &v)) != 0
            || (rc = idx_delset_load(v.data, v.size, &r->del)) != 0) {
            if (rc == LX_E_NOTFOUND)
                rc = LX_E_CORRUPT;
            goto out_free;
        }
    }
    if ((rc = reader_load_dicts(r)) != 0)
        goto out_free;
    *out = r;
    return 0;

out_free:
    idx_reader_close(r);
    return rc;
}

void idx_reader_close(idx_reader *r)
{
    if (!r)
        return;
    idx_store_abort(r->t);
    free(r->chunks);
    idx_delset_free(r->del);
    idx_docdec_free(&r->dec);
    free(r->segs);
    free(r);
}

const idx_stats *idx_reader_stats(const idx_reader *r) { return &r->stats; }
uint64_t idx_reader_serial(const idx_reader *r) { return r->serial; }
const idx_env *idx_reader_env(const idx_reader *r) { return r->env; }

int idx_reader_term(const idx_reader *r, const char *term, size_t len, idx_term_info *out)
{
    idx_val v;
    if (len == 0 || len > 511)
        return LX_E_NOTFOUND;
    int rc = idx_store_get(r->t, IDX_DB_TERMS, term, len, &v);
    if (rc)
        return rc;
    if (v.size != IDX_TERM_VALUE)
        return LX_E_CORRUPT;
    out->term_id = lx_ld32(v.data);
    out->df = lx_ld32((const char *)v.data + 4);
    out->cf = lx_ld64((const char *)v.data + 8);
    return 0;
}

/* Segment s's list of dictionary entry e, with the segment's fields. */
static int reader_list(const idx_segment *s, uint32_t e, idx_plist *out)
{
    const void *list;
    size_t size;
    int rc = idx_dict_list(&s->dict, e, &list, &size);
    if (rc || (rc = idx_plist_parse(list, size, out)) != 0)
        return LX_E_CORRUPT;
    out->seg = s->seg;
    out->seg_k1 = s->k1;
    out->seg_b = s->b;
    out->seg_avgdl = s->avgdl;
    out->seg_base = s->base;
    out->seg_ndocs = s->ndocs;
    out->doclens = s->doclens;
    /* Every posting must fall inside its segment: checked once here so
     * the query loop can index doclens without a test. */
    uint32_t last = idx_block_last(out, out->nblocks - 1);
    if (last < s->base || last - s->base >= s->ndocs)
        return LX_E_CORRUPT;
    return 0;
}

/* One term's lists, in segment order: each segment's entry found by text
 * (term not NULL, hash its idx_term_hash) or else by term_id. *postings:
 * the sum of their lengths. */
static int reader_lists(const idx_reader *r, const char *term, size_t len, uint64_t hash, uint32_t term_id,
                        idx_plist *out, int cap, uint64_t *postings)
{
    int n = 0, rc;
    *postings = 0;
    for (uint32_t i = 0; i < r->nsegs; i++) {
        const idx_dict *d = &r->segs[i].dict;
        uint32_t e;
        rc = term ? idx_dict_find(d, term, len, hash, &e) : idx_dict_find_id(d, term_id, &e);
        if (rc == LX_E_NOTFOUND)
            continue;
        if (n == cap)
            return LX_E_TOOBIG;
        if (rc || (rc = reader_list(&r->segs[i], e, &out[n])) != 0)
            return rc;
        *postings += out[n++].n;
    }
    return n;
}

int idx_reader_postings(const idx_reader *r, uint32_t term_id, idx_plist *out, int cap)
{
    uint64_t postings;
    return reader_lists(r, NULL, 0, 0, term_id, out, cap, &postings);
}

uint64_t idx_term_hash(const char *term, size_t len) { return idx_hash64(term, len); }

void idx_reader_prefetch(const idx_reader *r, uint64_t hash, int step)
{
    for (uint32_t i = 0; i < r->nsegs; i++)
        idx_dict_prefetch(&r->segs[i].dict, hash, step);
}

int idx_reader_find(const idx_reader *r, const char *term, size_t len, uint64_t h, uint32_t *df,
                    idx_plist *out, int cap)
{
    uint64_t sum;
    int rc, n = reader_lists(r, term, len, h, 0, out, cap, &sum);
    if (n < 0)
        return n;
    if (n == 0)
        return LX_E_NOTFOUND;
    if (r->del) {
        /* the lists still hold deleted documents; df counts live ones */
        idx_term_info ti;
        rc = idx_reader_term(r, term, len, &ti);
        if (rc)
            return rc == LX_E_NOTFOUND ? LX_E_CORRUPT : rc;
        sum = ti.df;
    }
    *df = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
    return n;
}

uint32_t idx_reader_doclen(const idx_reader *r, uint32_t docid)
{
    /* Usually the last segment holds most documents: check from the end. */
    for (uint32_t i = r->nsegs; i-- > 0;) {
        const idx_segment *s = &r->segs[i];
        if (docid >= s->base) {
            if (docid - s->base < s->ndocs)
                return idx_doclens_get(&s->doclens, docid - s->base);
            return 0;
        }
    }
    return 0;
}

int idx_reader_has_deletes(const idx_reader *r) { return r->del != NULL; }

int idx_reader_is_deleted(const idx_reader *r, uint32_t docid)
{
    return r->del ? idx_delset_contains(r->del, docid) : 0;
}

static int doc_value(const idx_reader *r, uint32_t docid, idx_val *v)
{
    unsigned char key[4];
    lx_st32be(key, docid);
    return idx_store_get(r->t, IDX_DB_DOCS, key, 4, v);
}

int idx_reader_doc(idx_reader *r, uint32_t docid, idx_doc *out)
{
    idx_val v;
    int rc = doc_value(r, docid, &v);
    if (rc)
        return rc;
    return idx_doc_decode(&r->dec, r->t, docid, v.data, v.size, out);
}

int idx_reader_doc_id(const idx_reader *r, uint32_t docid, const char **id, size_t *id_len)
{
    idx_val v;
    idx_doc d;
    int rc = doc_value(r, docid, &v);
    if (rc || (rc = idx_doc_decode_id(docid, v.data, v.size, &d)))
        return rc;
    *id = d.id;
    *id_len = d.id_len;
    return 0;
}

int idx_reader_lookup(const idx_reader *r, const char *id, size_t id_len, uint32_t *docid)
{
    idx_val v;
    if (id_len == 0 || id_len > IDX_MAX_ID_BYTES)
        return LX_E_NOTFOUND;
    int rc = idx_store_get(r->t, IDX_DB_IDS, id, id_len, &v);
    if (rc)
        return rc;
    if (v.size != 4)
        return LX_E_CORRUPT;
    *docid = lx_ld32(v.data);
    return 0;
}

/* For check.c and the query layer's cursors. */
const idx_segment *idx_reader_segments(const idx_reader *r, uint32_t *n);
const idx_segment *idx_reader_segments(const idx_reader *r, uint32_t *n)
{
    *n = r->nsegs;
    return r->segs;
}
idx_stxn *idx_reader_txn(const idx_reader *r) { return r->t; }
