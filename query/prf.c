/* prf.c: RM3 pseudo-relevance feedback (Lavrenko & Croft's relevance model,
 * interpolated with the query, as Anserini's Rm3Reranker does it).
 *
 * 1. First pass: BM25 for the query, top fb_docs documents.
 * 2. Each feedback document is re-analyzed from its stored fields (lexis
 *    keeps no term vectors); terms must be 2-20 bytes of [a-z0-9] and appear
 *    in at most 10% of the documents; the document's vector is cut to its
 *    fb_terms most frequent terms and L1-normalized.
 * 3. The relevance model sums the vectors weighted by first-pass score, is
 *    cut to fb_terms terms and L1-normalized.
 * 4. Final weights: orig_weight * (query, L1-normalized) + (1 - orig_weight)
 *    * model; the weighted query is ranked over the whole index.
 * Cuts keep the larger weight, ties going to the smaller term (bytes), so
 * the expansion is deterministic.
 */
#include "query_impl.h"

#include <stdlib.h>
#include <string.h>

enc_analyzer *qry_engine_analyzer(qry_engine *q);

qry_rm3_params qry_rm3_default_params(void)
{
    qry_rm3_params p = { .fb_docs = 10, .fb_terms = 10, .orig_weight = 0.5f };
    return p;
}

typedef struct wterm {
    char *text;       /* owned */
    size_t len;
    float w;
} wterm;

typedef struct tvec {
    wterm *t;
    size_t n, cap;
} tvec;

static void tvec_free(tvec *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->t[i].text);
    free(v->t);
    v->t = NULL;
    v->n = v->cap = 0;
}

static int tvec_push(tvec *v, const char *s, size_t len, float w)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        wterm *t = realloc(v->t, cap * sizeof *t);
        if (!t)
            return LX_E_NOMEM;
        v->t = t;
        v->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c)
        return LX_E_NOMEM;
    memcpy(c, s, len);
    c[len] = 0;
    v->t[v->n++] = (wterm){ c, len, w };
    return 0;
}

static int cmp_text(const void *a, const void *b)
{
    const wterm *x = a, *y = b;
    int c = memcmp(x->text, y->text, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int cmp_weight(const void *a, const void *b)
{
    const wterm *x = a, *y = b;
    if (x->w != y->w)
        return x->w > y->w ? -1 : 1;
    return cmp_text(a, b);
}

/* Sorts by text and merges duplicates, summing weights. */
static void tvec_merge(tvec *v)
{
    if (v->n == 0)
        return;
    lx_sort(v->t, v->n, sizeof *v->t, cmp_text);
    size_t o = 0;
    for (size_t i = 1; i < v->n; i++) {
        if (cmp_text(&v->t[o], &v->t[i]) == 0) {
            v->t[o].w += v->t[i].w;
            free(v->t[i].text);
        } else {
            v->t[++o] = v->t[i];
        }
    }
    v->n = o + 1;
}

static void tvec_prune(tvec *v, size_t keep)
{
    if (v->n == 0)
        return;                  /* qsort's pointer may not be NULL */
    lx_sort(v->t, v->n, sizeof *v->t, cmp_weight);
    for (size_t i = keep; i < v->n; i++)
        free(v->t[i].text);
    if (v->n > keep)
        v->n = keep;
}

static void tvec_l1(tvec *v)
{
    double s = 0;
    for (size_t i = 0; i < v->n; i++)
        s += v->t[i].w;
    if (s > 0)
        for (size_t i = 0; i < v->n; i++)
            v->t[i].w = (float)(v->t[i].w / s);
}

static float tvec_get(const tvec *v, const char *s, size_t len)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->t[i].len == len && memcmp(v->t[i].text, s, len) == 0)
            return v->t[i].w;
    return 0;
}

typedef struct collect_ctx {
    tvec *v;
    int rc;
} collect_ctx;

static int allowed(const char *s, size_t len)
{
    if (len < 2 || len > 20)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

static int collect_term(void *ctx, const char *term, size_t len, uint32_t pos)
{
    collect_ctx *c = ctx;
    (void)pos;
    if (!allowed(term, len))
        return 0;
    return tvec_push(c->v, term, len, 1.0f);
}

int qry_search_rm3(qry_engine *q, idx_reader *r, const char *text, size_t len,
                   const qry_params *p, const qry_rm3_params *rm, qry_result *res)
{
    int rc;
    qry_params p1 = *p;
    p1.k = rm->fb_docs ? rm->fb_docs : 1;
    p1.conjunctive = 0;
    if ((rc = qry_search(q, r, text, len, &p1, res)) != 0)
        return rc;

    /* Keep what the next searches will overwrite. */
    uint32_t nfb = res->n, nqt;
    qry_hit fb[1024];
    if (nfb > 1024)
        nfb = 1024;
    memcpy(fb, res->hits, nfb * sizeof *fb);
    const qry_term *qt = qry_last_terms(q, &nqt);
    tvec query = { 0 }, model = { 0 }, doc = { 0 };
    for (uint32_t i = 0; i < nqt; i++)
        if ((rc = tvec_push(&query, qt[i].text, qt[i].len, qt[i].weight)) != 0)
            goto out;
    tvec_l1(&query);

    const idx_stats *st = idx_reader_stats(r);
    enc_analyzer *an = qry_engine_analyzer(q);
    for (uint32_t d = 0; d < nfb; d++) {
        idx_doc stored;
        if ((rc = idx_reader_doc(r, fb[d].docid, &stored)) != 0)
            goto out;
        collect_ctx cc = { &doc, 0 };
        for (size_t f = 0; f < stored.nfields; f++)
            if ((rc = enc_analyzer_run(an, stored.values[f], stored.value_lens[f], collect_term, &cc)))
                goto out;
        tvec_merge(&doc);
        /* Drop collection-frequent terms (df > 10% of documents). */
        size_t o = 0;
        for (size_t i = 0; i < doc.n; i++) {
            idx_term_info ti;
            int keep = idx_reader_term(r, doc.t[i].text, doc.t[i].len, &ti) == 0
                       && (float)ti.df / (float)(st->ndocs ? st->ndocs : 1) <= 0.1f;
            if (keep)
                doc.t[o++] = doc.t[i];
            else
                free(doc.t[i].text);
        }
        doc.n = o;
        tvec_prune(&doc, rm->fb_terms);
        tvec_l1(&doc);
        for (size_t i = 0; i < doc.n; i++)
            if ((rc = tvec_push(&model, doc.t[i].text, doc.t[i].len, doc.t[i].w * fb[d].score)))
                goto out;
        tvec_free(&doc);
    }
    tvec_merge(&model);
    tvec_prune(&model, rm->fb_terms);
    tvec_l1(&model);

    /* Interpolate: every term of the query or the model. */
    tvec all = { 0 };
    for (size_t i = 0; i < query.n && rc == 0; i++)
        rc = tvec_push(&all, query.t[i].text, query.t[i].len, 0);
    for (size_t i = 0; i < model.n && rc == 0; i++)
        rc = tvec_push(&all, model.t[i].text, model.t[i].len, 0);
    if (rc == 0) {
        tvec_merge(&all);
        qry_term *terms = malloc((all.n + 1) * sizeof *terms);
        if (!terms) {
            rc = LX_E_NOMEM;
        } else {
            uint32_t n = 0;
            for (size_t i = 0; i < all.n; i++) {
                float w = rm->orig_weight * tvec_get(&query, all.t[i].text, all.t[i].len)
                          + (1.0f - rm->orig_weight) * tvec_get(&model, all.t[i].text, all.t[i].len);
                if (w > 0)
                    terms[n++] = (qry_term){ all.t[i].text, all.t[i].len, w, 0 };
            }
            rc = qry_search_terms(q, r, terms, n, p, res);
            free(terms);
        }
    }
    tvec_free(&all);
out:
    tvec_free(&doc);
    tvec_free(&query);
    tvec_free(&model);
    return rc;
}
