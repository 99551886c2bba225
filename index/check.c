/* check.c: `lexis check` and `lexis inspect`.
 *
 * check walks every database of one read snapshot and recomputes what the
 * writer promised: each checksum (statistics, segments, dictionaries,
 * postings headers and blocks, stored documents), that each segment's
 * dictionary finds every term it lists by its text, that postings decode
 * to strictly increasing ids inside their segment, that each block's max
 * tf / min length / BM25 bound and each list's k-th best scores equal what
 * its postings give, that every term's df and cf equal its live postings,
 * that docs and ids map to each other, and that the collection statistics
 * add up. Problems are printed naming the term and block or the document;
 * the walk goes on so one run lists them all.
 */
#include "index_impl.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const idx_segment *idx_reader_segments(const idx_reader *r, uint32_t *n);

typedef struct check_ctx {
    FILE *out;
    idx_check_report *rep;
} check_ctx;

__attribute__((format(printf, 2, 3)))
static void check_fail(check_ctx *c, const char *fmt, ...)
{
    va_list ap;
    c->rep->errors++;
    if (c->rep->errors > 1000)
        return;                 /* enough to act on */
    va_start(ap, fmt);
    fprintf(c->out, "check: ");
    vfprintf(c->out, fmt, ap);
    fputc('\n', c->out);
    va_end(ap);
}

/* Verifies one postings list; adds live postings to *df, *cf. */
static void check_plist(check_ctx *c, const idx_reader *r, const char *term, int tlen,
                        const idx_plist *pl, uint64_t *df, uint64_t *cf)
{
    uint32_t docs[IDX_BLOCK_SIZE], tfs[IDX_BLOCK_SIZE];
    uint64_t total = 0;
    idx_kth kth;
    idx_kth_init(&kth);
    for (uint32_t i = 0; i < pl->nblocks; i++) {
        c->rep->blocks++;
        if (idx_block_verify_checksum(pl, i)) {
            check_fail(c, "term '%.*s' segment %u block %u: checksum mismatch", tlen, term,
                       pl->seg, i);
            continue;
        }
        int n = idx_block_decode(pl, i, docs, tfs);
        if (n < 0) {
            check_fail(c, "term '%.*s' segment %u block %u: does not decode", tlen, term,
                       pl->seg, i);
            continue;
        }
        float fmax = 0;
        uint32_t max_tf = 0, min_dl = UINT32_MAX;
        for (int j = 0; j < n; j++) {
            uint32_t dl = idx_plist_doclen(pl, docs[j]);
            float f = idx_bm25_tfnorm(tfs[j], dl, pl->seg_k1, pl->seg_b, pl->seg_avgdl);
            if (f > fmax) fmax = f;
            idx_kth_push(&kth, f);
            if (tfs[j] > max_tf) max_tf = tfs[j];
            if (dl < min_dl) min_dl = dl;
            if (tfs[j] == 0)
                check_fail(c, "term '%.*s' segment %u block %u: zero term frequency", tlen, term,
                           pl->seg, i);
            if (!idx_reader_is_deleted(r, docs[j])) {
                (*df)++;
                *cf += tfs[j];
            }
        }
        if (fmax != idx_block_fmax(pl, i) || max_tf != idx_block_max_tf(pl, i)
            || min_dl != idx_block_min_dl(pl, i))
            check_fail(c, "term '%.*s' segment %u block %u: block maximum does not match postings",
                       tlen, term, pl->seg, i);
        total += (uint64_t)n;
    }
    if (total != pl->n)
        check_fail(c, "term '%.*s' segment %u: header says %u postings, blocks hold %llu", tlen,
                   term, pl->seg, pl->n, (unsigned long long)total);
    float kv[IDX_KTH_COUNT];
    idx_kth_finish(&kth, kv);
    if (total == pl->n && memcmp(kv, pl->kth, sizeof kv) != 0)
        check_fail(c, "term '%.*s' segment %u: k-th best scores do not match postings", tlen,
                   term, pl->seg);
    c->rep->postings += total;
}

/* A segment's dictionary: its checksum, its entries in term id order, and
 * each entry found again by its text (the hash table holds them all). */
static void check_dict(check_ctx *c, const idx_segment *s)
{
    const idx_dict *d = &s->dict;
    if (idx_dict_verify(d)) {
        check_fail(c, "segment %u: dictionary checksum mismatch", s->seg);
        return;
    }
    for (uint32_t e = 0; e < d->nterms; e++) {
        const char *text;
        size_t len;
        uint32_t found;
        if (e && idx_dict_term_id(d, e) <= idx_dict_term_id(d, e - 1))
            check_fail(c, "segment %u: dictionary entry %u out of term id order", s->seg, e);
        if (idx_dict_text(d, e, &text, &len)) {
            check_fail(c, "segment %u: dictionary entry %u: text out of bounds", s->seg, e);
            continue;
        }
        if (idx_dict_find(d, text, len, idx_hash64(text, len), &found) || found != e)
            check_fail(c, "segment %u: dictionary does not find '%.*s' (entry %u)", s->seg, (int)len,
                       text, e);
    }
}

int idx_check(idx_env *env, FILE *out, idx_check_report *rep)
{
    int rc;
    idx_reader *r;
    check_ctx c = { out, rep };
    memset(rep, 0, sizeof *rep);
    if ((rc = idx_reader_open(env, &r)) != 0) {
        check_fail(&c, "cannot open a snapshot: %s (statistics, segments or deleted set damaged)",
                   lx_strerror(rc));
        return rc == LX_E_CORRUPT ? LX_E_CORRUPT : rc;
    }
    idx_stxn *t = idx_reader_txn(r);
    const idx_stats *st = idx_reader_stats(r);
    uint32_t nsegs;
    const idx_segment *segs = idx_reader_segments(r, &nsegs);

    /* Segments: checksums. */
    for (uint32_t i = 0; i < nsegs; i++) {
        unsigned char key[4];
        idx_val v;
        lx_st32be(key, segs[i].seg);
        /* the reader parsed it, so it holds at least its header */
        if (idx_store_get(t, IDX_DB_SEGMENTS, key, 4, &v) == 0
            && idx_segment_checksum(v.data, v.size) != lx_ld32((const char *)v.data + 20))
            check_fail(&c, "segment %u: checksum mismatch", segs[i].seg);
        check_dict(&c, &segs[i]);
    }

    /* Documents and ids. */
    uint64_t live = 0, total_len = 0, nids = 0, bytes;
    idx_scur *cur;
    idx_val k, v;
    idx_docdec dec;
    idx_docdec_init(&dec, env);
    if ((rc = idx_scur_open(t, IDX_DB_DOCS, &cur)) != 0) {
        idx_docdec_free(&dec);
        goto out;
    }
    for (rc = idx_scur_seek(cur, NULL, 0, &k, &v); rc == 0; rc = idx_scur_next(cur, &k, &v)) {
        rep->docs++;
        if (k.size != 4) {
            check_fail(&c, "docs: key of %zu bytes", k.size);
            continue;
        }
        uint32_t docid = lx_ld32be(k.data);
        idx_doc d;
        if (v.size < 8 || lx_ld32(v.data) != idx_hash32((const char *)v.data + 4, v.size - 4)) {
            check_fail(&c, "document %u: checksum mismatch", docid);
            continue;
        }
        if (idx_doc_decode(&dec, t, docid, v.data, v.size, &d)) {
            check_fail(&c, "document %u: stored record does not parse", docid);
            continue;
        }
        if (idx_reader_is_deleted(r, docid))
            check_fail(&c, "document %u ('%.*s'): deleted but still stored", docid, (int)d.id_len, d.id);
        if (idx_reader_doclen(r, docid) != d.len)
            check_fail(&c, "document %u ('%.*s'): length %u, segment says %u", docid,
                       (int)d.id_len, d.id, d.len, idx_reader_doclen(r, docid));
        uint32_t back;
        if (idx_reader_lookup(r, d.id, d.id_len, &back) || back != docid)
            check_fail(&c, "document %u ('%.*s'): id map does not point back", docid,
                       (int)d.id_len, d.id);
        live++;
        total_len += d.len;
    }
    idx_scur_close(cur);
    idx_docdec_free(&dec);
    if (rc != LX_E_NOTFOUND)
        goto out;
    if ((rc = idx_store_count(t, IDX_DB_IDS, &nids, &bytes)) != 0)
        goto out;
    if (nids != live)
        check_fail(&c, "ids: %llu entries for %llu documents", (unsigned long long)nids,
                   (unsigned long long)live);
    if (live != st->ndocs || total_len != st->total_len)
        check_fail(&c, "statistics: %llu documents / %llu terms recorded, %llu / %llu stored",
                   (unsigned long long)st->ndocs, (unsigned long long)st->total_len,
                   (unsigned long long)live, (unsigned long long)total_len);

    /* Terms and their postings. */
    uint32_t nterm_ids = (uint32_t)st->nterms;
    unsigned char *seen = calloc((size_t)nterm_ids + 1, 1);
    idx_plist *pls = malloc(sizeof *pls * 2 * (nsegs + 1)), *fpls = pls + nsegs + 1;
    if (!seen || !pls) {
        free(seen);
        free(pls);
        rc = LX_E_NOMEM;
        goto out;
    }
    if ((rc = idx_scur_open(t, IDX_DB_TERMS, &cur)) != 0) {
        free(seen);
        free(pls);
        goto out;
    }
    for (rc = idx_scur_seek(cur, NULL, 0, &k, &v); rc == 0; rc = idx_scur_next(cur, &k, &v)) {
        rep->terms++;
        const char *term = k.data;
        int tlen = (int)k.size;
        if (v.size != IDX_TERM_VALUE) {
            check_fail(&c, "term '%.*s': bad record size", tlen, term);
            continue;
        }
        uint32_t tid = lx_ld32(v.data), tdf = lx_ld32((const char *)v.data + 4);
        uint64_t tcf = lx_ld64((const char *)v.data + 8);
        if (tid >= nterm_ids || seen[tid]) {
            check_fail(&c, "term '%.*s': id %u out of range or used twice", tlen, term, tid);
            continue;
        }
        seen[tid] = 1;
        int n = idx_reader_postings(r, tid, pls, (int)nsegs + 1);
        if (n < 0) {
            check_fail(&c, "term '%.*s' (id %u): postings header damaged: %s", tlen, term, tid,
                       lx_strerror(n));
            continue;
        }
        uint64_t df = 0, cf = 0;
        for (int i = 0; i < n; i++) {
            rep->lists++;
            check_plist(&c, r, term, tlen, &pls[i], &df, &cf);
        }
        /* the query path finds the lists by text: the same ones */
        uint32_t fdf;
        int fn = idx_reader_find(r, term, (size_t)tlen, idx_term_hash(term, (size_t)tlen), &fdf, fpls,
                                 (int)nsegs + 1);
        int same = fn == n;
        for (int i = 0; same && i < n; i++)
            same = fpls[i].entries == pls[i].entries;
        if (n > 0 && !same)
            check_fail(&c, "term '%.*s': its text does not lead to its postings (%s)", tlen, term,
                       fn < 0 ? lx_strerror(fn) : "other lists");
        if (df != tdf || cf != tcf)
            check_fail(&c, "term '%.*s': df/cf recorded %u/%llu, postings give %llu/%llu", tlen,
                       term, tdf, (unsigned long long)tcf, (unsigned long long)df,
                       (unsigned long long)cf);
    }
    idx_scur_close(cur);
    free(pls);
    if (rc == LX_E_NOTFOUND) {
        /* Lists whose term is unknown; chunks no dictionary counts. */
        uint64_t nchunks = 0, stored;
        for (uint32_t i = 0; i < nsegs; i++) {
            const idx_dict *d = &segs[i].dict;
            nchunks += d->nchunks;
            for (uint32_t e = 0; e < d->nterms; e++) {
                uint32_t tid = idx_dict_term_id(d, e);
                if (tid >= nterm_ids || !seen[tid])
                    check_fail(&c, "segment %u: list for unknown term id %u", segs[i].seg, tid);
            }
        }
        if ((rc = idx_store_count(t, IDX_DB_POSTINGS, &stored, &bytes)) == 0) {
            rc = LX_E_NOTFOUND;
            if (stored != nchunks)
                check_fail(&c, "postings: %llu chunks stored, the dictionaries name %llu",
                           (unsigned long long)stored, (unsigned long long)nchunks);
        }
    }
    free(seen);
    if (rc == LX_E_NOTFOUND)
        rc = 0;
out:
    if (rc && rc != LX_E_CORRUPT)
        check_fail(&c, "stopped: %s", lx_strerror(rc));
    idx_reader_close(r);
    if (rc == 0 && rep->errors)
        rc = LX_E_CORRUPT;
    return rc;
}

int idx_inspect(idx_env *env, idx_inspect_info *info)
{
    int rc;
    idx_reader *r;
    memset(info, 0, sizeof *info);
    if ((rc = idx_reader_open(env, &r)) != 0)
        return rc;
    info->stats = *idx_reader_stats(r);
    info->format_version = env->format_version;
    idx_stxn *t = idx_reader_txn(r);
    uint64_t n, bytes, used;
    if ((rc = idx_store_count(t, IDX_DB_POSTINGS, &n, &info->postings_bytes)) == 0
        && (rc = idx_store_count(t, IDX_DB_DICTS, &n, &bytes)) == 0
        && (rc = idx_store_count(t, IDX_DB_DOCS, &n, &info->docs_bytes)) == 0) {
        info->postings_bytes += bytes;     /* the dictionaries belong to them */
        uint32_t nsegs;
        const idx_segment *segs = idx_reader_segments(r, &nsegs);
        for (uint32_t i = 0; i < nsegs; i++)
            for (uint32_t e = 0; e < segs[i].dict.nterms; e++) {
                const void *list;
                size_t size;
                if (idx_dict_list(&segs[i].dict, e, &list, &size) == 0 && size >= 4)
                    info->postings += lx_ld32(list);
            }
    }
    idx_store_info(env->store, &info->map_bytes, &used);
    char file[4096];
    struct stat sb;
    snprintf(file, sizeof file, "%s/data.mdb", env->path);
    if (stat(file, &sb) == 0)
        info->file_bytes = (uint64_t)sb.st_size;
    idx_reader_close(r);
    return rc;
}
