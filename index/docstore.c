/* docstore.c: stored documents, compressed with zstd and a dictionary
 * trained on the corpus (the only caller of zstd).
 *
 * Why: the stored text was two thirds of an index (Debian packages: 38 MB
 * of 58 MB), larger than the text itself, because each LMDB value carries
 * page overhead. Documents are short (400 bytes on average there), too short
 * to compress well one by one, and compressing them in blocks would make
 * reading one hit decompress its neighbours. A dictionary trained on the
 * first batch gives small documents the context of the whole corpus:
 * each one is still read alone, in a few microseconds.
 *
 * Value layout (docs db, key u32be docid), format version 2:
 *   0 u32 checksum    low 32 bits of XXH3 of bytes 4..end (what is stored)
 *   4 u32 doclen      the document's length in terms
 *   8 u16 id_len, id  the external id, never compressed: runs and
 *                     evaluation read ids of 1000 hits without decompressing
 *     u8 codec        IDX_DOC_RAW, IDX_DOC_ZSTD or IDX_DOC_ZSTD_DICT
 *     body            RAW: the fields block; ZSTD*: u32 size of the fields
 *                     block, then one zstd frame of it
 *   fields block: u16 nfields, { u16 name_len, name, u32 len, value }*
 *
 * The dictionary lives in meta "docdict" (zstd's dictionary format). It is
 * written once, by the first flush with enough documents, and never changed:
 * a document compressed with it can always be read. The environment keeps
 * it digested (one ZSTD_DDict, shared by all readers; zstd allows concurrent
 * use) and a small pool of decompression contexts.
 */
#include "index_impl.h"

#include <stdlib.h>
#include <string.h>
#define ZDICT_STATIC_LINKING_ONLY    /* ZDICT_trainFromBuffer_fastCover */
#include <zdict.h>
#include <zstd.h>

#define DOC_LEVEL 3               /* see idx_docenc_encode */
#define DICT_CAPACITY (112 << 10)
#define DICT_MIN_DOCS 256         /* fewer samples train a useless dictionary */
/* Training reads at most this much, spread over the batch: 8 MiB took 0.4 s
 * longer than 1 MiB on the Debian corpus for an index 0.5% smaller. */
#define DICT_SAMPLE_BYTES (1 << 20)
#define DCTX_POOL 16

struct idx_docshared {
    pthread_mutex_t lock;
    ZSTD_DDict *ddict;            /* NULL until the dictionary is seen */
    ZSTD_DCtx *pool[DCTX_POOL];
    int npool;
};

int idx_docshared_new(idx_docshared **out)
{
    idx_docshared *s = calloc(1, sizeof *s);
    if (!s)
        return LX_E_NOMEM;
    pthread_mutex_init(&s->lock, NULL);
    *out = s;
    return 0;
}

void idx_docshared_free(idx_docshared *s)
{
    if (!s)
        return;
    ZSTD_freeDDict(s->ddict);
    for (int i = 0; i < s->npool; i++)
        ZSTD_freeDCtx(s->pool[i]);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* The digested dictionary, loaded from t's meta on first need. NULL with
 * rc 0 when the index has none. Only a document compressed with it asks
 * for it, so the dictionary seen is a committed one (documents of the
 * writer's own open transaction are never read back). */
static int shared_ddict(idx_docshared *s, idx_stxn *t, ZSTD_DDict **out)
{
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    if (!s->ddict) {
        idx_val v;
        rc = idx_store_get(t, IDX_DB_META, "docdict", 7, &v);
        if (rc == 0) {
            s->ddict = ZSTD_createDDict(v.data, v.size);
            if (!s->ddict)
                rc = LX_E_CORRUPT;
        } else if (rc == LX_E_NOTFOUND) {
            rc = 0;
        }
    }
    *out = s->ddict;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- decoding ------------------------------------------------------------- */

void idx_docdec_init(idx_docdec *d, idx_env *env)
{
    memset(d, 0, sizeof *d);
    d->shared = env->docs;
}

void idx_docdec_free(idx_docdec *d)
{
    if (d->dctx) {
        idx_docshared *s = d->shared;
        pthread_mutex_lock(&s->lock);
        if (s->npool < DCTX_POOL) {
            s->pool[s->npool++] = d->dctx;
            d->dctx = NULL;
        }
        pthread_mutex_unlock(&s->lock);
        ZSTD_freeDCtx(d->dctx);
    }
    free(d->buf);
    memset(d, 0, sizeof *d);
}

static int docdec_ctx(idx_docdec *d)
{
    if (d->dctx)
        return 0;
    idx_docshared *s = d->shared;
    pthread_mutex_lock(&s->lock);
    if (s->npool)
        d->dctx = s->pool[--s->npool];
    pthread_mutex_unlock(&s->lock);
    if (!d->dctx && !(d->dctx = ZSTD_createDCtx()))
        return LX_E_NOMEM;
    return 0;
}

/* Parses a fields block into out (pointers into p). */
static int parse_fields(const unsigned char *p, const unsigned char *end, idx_doc *out)
{
    uint16_t l;
    if (end - p < 2)
        return LX_E_CORRUPT;
    memcpy(&l, p, 2); p += 2;
    if (l > IDX_MAX_FIELDS)
        return LX_E_CORRUPT;
    out->nfields = l;
    for (size_t i = 0; i < out->nfields; i++) {
        if (end - p < 2) return LX_E_CORRUPT;
        memcpy(&l, p, 2); p += 2;
        if ((size_t)(end - p) < (size_t)l + 4) return LX_E_CORRUPT;
        out->names[i] = (const char *)p;
        out->name_lens[i] = l;
        p += l;
        uint32_t vl = lx_ld32(p); p += 4;
        if ((size_t)(end - p) < vl) return LX_E_CORRUPT;
        out->values[i] = (const char *)p;
        out->value_lens[i] = vl;
        p += vl;
    }
    return p == end ? 0 : LX_E_CORRUPT;
}

/* Header and id, zero copy; *body points at the codec byte. */
static int parse_head(uint32_t docid, const unsigned char *v, size_t len, idx_doc *out,
                      const unsigned char **body)
{
    if (len < IDX_DOC_HEADER + 3)
        return LX_E_CORRUPT;
    out->docid = docid;
    out->len = lx_ld32(v + 4);
    uint16_t l;
    memcpy(&l, v + IDX_DOC_HEADER, 2);
    if (len - IDX_DOC_HEADER - 2 < (size_t)l + 1)
        return LX_E_CORRUPT;
    out->id = (const char *)v + IDX_DOC_HEADER + 2;
    out->id_len = l;
    out->nfields = 0;
    *body = v + IDX_DOC_HEADER + 2 + l;
    return 0;
}

int idx_doc_decode_id(uint32_t docid, const void *val, size_t len, idx_doc *out)
{
    const unsigned char *body;
    return parse_head(docid, val, len, out, &body);
}

int idx_doc_decode(idx_docdec *d, idx_stxn *t, uint32_t docid, const void *val, size_t len,
                   idx_doc *out)
{
    const unsigned char *v = val, *end = v + len, *body;
    int rc = parse_head(docid, v, len, out, &body);
    if (rc)
        return rc;
    unsigned codec = *body++;
    if (codec == IDX_DOC_RAW)
        return parse_fields(body, end, out);
    if ((codec != IDX_DOC_ZSTD && codec != IDX_DOC_ZSTD_DICT) || end - body < 4)
        return LX_E_CORRUPT;
    uint32_t size = lx_ld32(body);
    body += 4;
    if (size > IDX_MAX_DOC_BYTES)
        return LX_E_CORRUPT;
    if ((rc = lx_buf_reserve((void **)&d->buf, &d->cap, size, 4096)) != 0)
        return rc;
    if ((rc = docdec_ctx(d)) != 0)
        return rc;
    size_t got;
    if (codec == IDX_DOC_ZSTD_DICT) {
        /* Once seen, kept: the shared lock is taken once per decoder, not
         * once per document. */
        if (!d->ddict) {
            ZSTD_DDict *dd;
            if ((rc = shared_ddict(d->shared, t, &dd)) != 0)
                return rc;
            if (!dd)
                return LX_E_CORRUPT;      /* compressed with a dictionary that is not there */
            d->ddict = dd;
        }
        got = ZSTD_decompress_usingDDict(d->dctx, d->buf, size, body, (size_t)(end - body),
                                         d->ddict);
    } else {
        got = ZSTD_decompressDCtx(d->dctx, d->buf, size, body, (size_t)(end - body));
    }
    if (ZSTD_isError(got) || got != size)
        return LX_E_CORRUPT;
    return parse_fields(d->buf, d->buf + size, out);
}

/* ---- encoding ------------------------------------------------------------- */

void idx_docenc_init(idx_docenc *e)
{
    memset(e, 0, sizeof *e);
}

void idx_docenc_free(idx_docenc *e)
{
    ZSTD_freeCCtx(e->cctx);
    ZSTD_freeCDict(e->cdict);
    free(e->buf);
    memset(e, 0, sizeof *e);
}

/* The fields block of a raw record (the writer's in-memory layout: the
 * value layout above without codec byte, fields block inline). */
static const unsigned char *raw_fields(const unsigned char *rec, size_t *len, size_t rec_len)
{
    uint16_t l;
    memcpy(&l, rec + IDX_DOC_HEADER, 2);
    size_t off = IDX_DOC_HEADER + 2 + l;
    *len = rec_len - off;
    return rec + off;
}

int idx_docenc_begin(idx_docenc *e, idx_stxn *t, const unsigned char *const *recs,
                     const size_t *rec_lens, size_t n)
{
    if (!e->cctx && !(e->cctx = ZSTD_createCCtx()))
        return LX_E_NOMEM;
    /* Asked every flush: a dictionary trained in a transaction that was
     * then aborted (the map grew, the batch was retried) must not be used. */
    idx_val v;
    int rc = idx_store_get(t, IDX_DB_META, "docdict", 7, &v);
    if (rc == 0) {
        if (!e->cdict)
            e->cdict = ZSTD_createCDict(v.data, v.size, DOC_LEVEL);
        return e->cdict ? 0 : LX_E_NOMEM;
    }
    if (rc != LX_E_NOTFOUND)
        return rc;
    ZSTD_freeCDict(e->cdict);
    e->cdict = NULL;
    if (n < DICT_MIN_DOCS)
        return 0;                          /* plain zstd until a batch is large enough */

    /* Train on the batch's fields blocks, spread evenly over it. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t fl;
        raw_fields(recs[i], &fl, rec_lens[i]);
        total += fl;
    }
    size_t step = total > DICT_SAMPLE_BYTES ? total / DICT_SAMPLE_BYTES + 1 : 1;
    size_t ns = 0, cap = 0;
    for (size_t i = 0; i < n; i += step) {
        size_t fl;
        raw_fields(recs[i], &fl, rec_lens[i]);
        cap += fl;
        ns++;
    }
    unsigned char *samples = malloc(cap ? cap : 1), *dict = malloc(DICT_CAPACITY);
    size_t *sizes = malloc(ns * sizeof *sizes);
    if (!samples || !dict || !sizes) {
        rc = LX_E_NOMEM;
        goto out;
    }
    size_t off = 0, k = 0;
    for (size_t i = 0; i < n; i += step) {
        size_t fl;
        const unsigned char *f = raw_fields(recs[i], &fl, rec_lens[i]);
        memcpy(samples + off, f, fl);
        off += fl;
        sizes[k++] = fl;
    }
    /* fastCover with its parameters fixed: ZDICT_trainFromBuffer runs the
     * same trainer for four segment sizes and keeps the best, 0.13-0.19 s
     * a build (a sixth of SciFact's); k = 200 took 0.04-0.05 s and gave
     * indexes of the same size (the Debian corpus 34.8 MB, SciFact 9.2
     * MB). The function is in zstd's static-linking section, exported by
     * the shared library since 1.3.6. */
    ZDICT_fastCover_params_t fp = { .k = 200, .d = 8, .f = 20, .accel = 1 };
    fp.zParams.compressionLevel = DOC_LEVEL;
    size_t dl = ZDICT_trainFromBuffer_fastCover(dict, DICT_CAPACITY, samples, sizes, (unsigned)ns, fp);
    if (ZDICT_isError(dl)) {
        rc = 0;                            /* too little to learn from: no dictionary yet */
        goto out;
    }
    if ((rc = idx_store_put(t, IDX_DB_META, "docdict", 7, dict, dl, 0)) != 0)
        goto out;
    e->cdict = ZSTD_createCDict(dict, dl, DOC_LEVEL);
    rc = e->cdict ? 0 : LX_E_NOMEM;
out:
    free(samples);
    free(dict);
    free(sizes);
    return rc;
}

int idx_docenc_encode(idx_docenc *e, const unsigned char *rec, size_t rec_len,
                      const unsigned char **out, size_t *out_len)
{
    size_t fl;
    const unsigned char *f = raw_fields(rec, &fl, rec_len);
    size_t head = (size_t)(f - rec);
    size_t bound = head + 1 + 4 + ZSTD_compressBound(fl);
    int rc = lx_buf_reserve((void **)&e->buf, &e->cap, bound, 4096);
    if (rc)
        return rc;
    unsigned char *p = e->buf;
    memcpy(p, rec, head);
    /* Level 3 (DOC_LEVEL): on the Debian corpus level 9 saved 1.5% of the
     * index and cost 75% more build time. */
    size_t z = e->cdict
        ? ZSTD_compress_usingCDict(e->cctx, p + head + 5, bound - head - 5, f, fl, e->cdict)
        : ZSTD_compressCCtx(e->cctx, p + head + 5, bound - head - 5, f, fl, DOC_LEVEL);
    size_t len;
    if (!ZSTD_isError(z) && z + 4 < fl) {
        p[head] = e->cdict ? IDX_DOC_ZSTD_DICT : IDX_DOC_ZSTD;
        lx_st32(p + head + 1, (uint32_t)fl);
        len = head + 5 + z;
    } else {
        p[head] = IDX_DOC_RAW;
        memcpy(p + head + 1, f, fl);
        len = head + 1 + fl;
    }
    lx_st32(p, idx_hash32(p + 4, len - 4));
    *out = p;
    *out_len = len;
    return 0;
}
