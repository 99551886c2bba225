/* engine.c: from query text to ranked hits.
 *
 * The engine owns what one thread needs to run queries: the index's
 * analyzer and an arena that holds each query's terms, postings views,
 * cursors and heap, reset at the start of the next query (so a steady
 * stream of queries allocates nothing once the arena has grown).
 */
#include "query_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The term cache: what the lookup of a query term found (its df and
 * postings lists), kept for the next query on the same snapshot. A query
 * term costs a probe of each segment's dictionary and a parse of each
 * list's header otherwise, and query streams repeat their terms (with the
 * cache off, SciFact took 4.3% longer, the Debian corpus 5.7% less: kept).
 * Direct-mapped by a hash of the term, so it holds the recent terms of a
 * stream, not a whole vocabulary; an entry is valid for the reader of the
 * engine's env whose serial it holds (idx_reader_serial), whose postings
 * views it borrows (serials repeat across envs, so readers of another env
 * bypass the cache; the env outlives the engine, so no other env takes
 * its address while entries exist). Terms longer than QRY_CACHE_TEXT or
 * with more lists than QRY_CACHE_LISTS are not kept. */
#define QRY_CACHE_SLOTS 1024
#define QRY_CACHE_TEXT 28
#define QRY_CACHE_LISTS 2
typedef struct qry_cached_term {
    uint64_t serial;           /* reader's; 0: empty */
    uint32_t len;
    int nlists;                /* LX_E_NOTFOUND: the term is absent */
    uint32_t df;
    char text[QRY_CACHE_TEXT];
    idx_plist lists[QRY_CACHE_LISTS];
} qry_cached_term;

/* The analyzed query's distinct terms, by hash, while it is analyzed: each
 * word's term is found in the query's terms in one probe or two instead of
 * a scan of them all (a 300-word query compared each word with up to 136
 * terms). Open addressing with linear probing, twice QRY_MAX_TERMS slots;
 * a slot holds a term's index + 1, 0 when empty. */
#define QRY_TERM_SLOTS (2 * QRY_MAX_TERMS)

/* Terms are looked up in groups of this many: each step of
 * idx_reader_prefetch runs over a group's terms, so the group's misses on
 * dictionary slots, entries and list headers overlap, then the group is
 * looked up. Groups, not the whole query, so that a 100-term query's
 * prefetched lines are still cached when it reads them. */
#define QRY_PREFETCH_TERMS 8

struct qry_engine {
    idx_env *env;
    qry_scorer sc;             /* norm table kept while k1, b, avgdl stay */
    int sc_valid;
    enc_analyzer *an;
    lx_arena arena;
    qry_term terms[QRY_MAX_TERMS];
    uint64_t term_hash[QRY_MAX_TERMS];   /* idx_term_hash of each term's text */
    uint16_t term_home[QRY_MAX_TERMS];   /* its slot in term_slot */
    uint16_t term_slot[QRY_TERM_SLOTS];  /* all 0 between searches */
    uint32_t nterms;
    int overflow;
    qry_window win;            /* MaxScore's accumulators, kept zero */
    qry_cached_term cache[QRY_CACHE_SLOTS];
};

static const char *const qry_algo_names[QRY_ALGO_COUNT] = {
    "auto", "exhaustive", "maxscore", "wand", "bmw",
};

qry_params qry_default_params(void)
{
    qry_params p = { .k = 10, .algo = QRY_ALGO_AUTO, .conjunctive = 0, .k1 = -1, .b = -1 };
    return p;
}

int qry_algo_parse(const char *name)
{
    for (int i = 0; i < QRY_ALGO_COUNT; i++)
        if (strcmp(name, qry_algo_names[i]) == 0)
            return i;
    return -1;
}

const char *qry_algo_name(int algo)
{
    return algo >= 0 && algo < QRY_ALGO_COUNT ? qry_algo_names[algo] : "?";
}

int qry_engine_open(idx_env *env, qry_engine **out)
{
    int rc;
    qry_engine *q = calloc(1, sizeof *q);
    if (!q)
        return LX_E_NOMEM;
    q->env = env;
    enc_analyzer_params ap;
    char storage[256];
    if ((rc = enc_analyzer_params_parse(idx_env_analyzer_desc(env), &ap, storage, sizeof storage))
        || (rc = enc_analyzer_open(&ap, &q->an))) {
        free(q);
        return rc;
    }
    lx_arena_init(&q->arena, 256 * 1024);
    *out = q;
    return 0;
}

void qry_engine_close(qry_engine *q)
{
    if (!q)
        return;
    enc_analyzer_close(q->an);
    lx_arena_free(&q->arena);
    free(q);
}

const qry_term *qry_last_terms(const qry_engine *q, uint32_t *n)
{
    *n = q->nterms;
    return q->terms;
}

static int qry_on_term(void *ctx, const char *term, size_t len, uint32_t pos)
{
    qry_engine *q = ctx;
    (void)pos;
    uint64_t h = idx_term_hash(term, len);
    uint32_t i = (uint32_t)h & (QRY_TERM_SLOTS - 1);
    for (; q->term_slot[i]; i = (i + 1) & (QRY_TERM_SLOTS - 1)) {
        qry_term *t = &q->terms[q->term_slot[i] - 1];
        if (t->len == len && memcmp(t->text, term, len) == 0) {
            t->weight += 1.0f;
            return 0;
        }
    }
    if (q->nterms == QRY_MAX_TERMS) {
        q->overflow = 1;        /* further distinct terms are ignored */
        return 0;
    }
    char *s = lx_arena_strndup(&q->arena, term, len);
    if (!s)
        return LX_E_NOMEM;
    q->term_hash[q->nterms] = h;
    q->term_home[q->nterms] = (uint16_t)i;
    q->terms[q->nterms++] = (qry_term){ s, len, 1.0f, 0 };
    q->term_slot[i] = (uint16_t)q->nterms;
    return 0;
}

static uint32_t cache_slot(uint64_t h)
{
    return (uint32_t)(h >> 32) & (QRY_CACHE_SLOTS - 1);   /* the dictionaries probe from the low bits */
}

/* A query term's df and postings lists (copied into lists, room for
 * nseg) in snapshot r: from the cache when it holds them for r, else from
 * the index (and then kept). Returns the number of lists, LX_E_NOTFOUND,
 * or another error. */
static int lookup_term(qry_engine *q, idx_reader *r, const qry_term *qt, uint64_t hash, uint32_t nseg,
                       uint32_t *df, idx_plist *lists)
{
    uint64_t serial = idx_reader_serial(r);
    qry_cached_term *e = NULL;
    /* serials are unique within an env: another env's reader bypasses it */
    if (qt->len <= QRY_CACHE_TEXT && idx_reader_env(r) == q->env) {
        e = &q->cache[cache_slot(hash)];
        if (e->serial == serial && e->len == qt->len && memcmp(e->text, qt->text, qt->len) == 0) {
            if (e->nlists < 0)
                return e->nlists;
            *df = e->df;
            memcpy(lists, e->lists, (size_t)e->nlists * sizeof *lists);
            return e->nlists;
        }
    }
    int nl = idx_reader_find(r, qt->text, qt->len, hash, df, lists, (int)nseg);
    if (nl < 0 && nl != LX_E_NOTFOUND)
        return nl;
    if (e && nl <= QRY_CACHE_LISTS) {
        e->serial = serial;
        e->len = (uint32_t)qt->len;
        memcpy(e->text, qt->text, qt->len);
        e->nlists = nl;
        if (nl >= 0) {
            e->df = *df;
            memcpy(e->lists, lists, (size_t)nl * sizeof *lists);
        }
    }
    return nl;
}

/* Ranks q->terms[0..nterms) (analyzed, weighted) in snapshot r. The arena
 * has been reset by the caller and may already hold the terms. */
static int qry_rank(qry_engine *q, idx_reader *r, const qry_params *p, qry_result *res)
{
    const idx_stats *st = idx_reader_stats(r);
    qry_scorer *sc = &q->sc;
    float k1 = p->k1 >= 0 ? p->k1 : st->k1, b = p->b >= 0 ? p->b : st->b;
    float avgdl = (float)st->avgdl;
    if (!(k1 < 100) || !(b <= 1))
        return LX_E_INVAL;
    if (!q->sc_valid || sc->k1 != k1 || sc->b != b || sc->avgdl != avgdl) {
        qry_scorer_init(sc, k1, b, avgdl);
        q->sc_valid = 1;
    }

    qry_cursor **cs = lx_arena_alloc(&q->arena, (q->nterms + 1) * sizeof *cs);
    uint32_t nseg = st->nsegments ? st->nsegments : 1;
    if (!cs)
        return LX_E_NOMEM;
    uint32_t n = 0;
    double N = (double)st->ndocs;
    idx_plist *lists = NULL;
    for (uint32_t i = 0; i < q->nterms; i++) {
        qry_term *qt = &q->terms[i];
        if (i % QRY_PREFETCH_TERMS == 0) {
            uint32_t end = i + QRY_PREFETCH_TERMS < q->nterms ? i + QRY_PREFETCH_TERMS : q->nterms;
            for (int step = 0; step < 3; step++)
                for (uint32_t j = i; j < end; j++)
                    idx_reader_prefetch(r, q->term_hash[j], step);
        }
        uint32_t tdf;
        qt->df = 0;
        if (!lists && !(lists = lx_arena_alloc(&q->arena, nseg * sizeof *lists)))
            return LX_E_NOMEM;
        int nl = lookup_term(q, r, qt, q->term_hash[i], nseg, &tdf, lists);
        if (nl == LX_E_NOTFOUND)
            continue;
        if (nl < 0)
            return nl;
        qt->df = tdf;
        if (tdf == 0 || !(qt->weight > 0))
            continue;
        qry_cursor *c = lx_arena_alloc(&q->arena, sizeof *c);
        if (!c)
            return LX_E_NOMEM;
        double df = tdf;
        float idf = (float)log(1.0 + (N - df + 0.5) / (df + 0.5));
        float weight = qt->weight * idf * (sc->k1 + 1.0f);
        /* Every term is looked up before any cursor decodes its first
         * block, and each list's block index and first bytes are fetched
         * as it is found: the lookups of the next terms hide the cache
         * misses that the decode would otherwise wait on (ab.sh: debpkgs
         * -4.6%, synth2m -2.4%, top-1000 -1.6%; SciFact, whose index stays
         * in cache, the same). The cursor holds its lists and weight until
         * it is initialized below. */
        c->lists = lists;
        c->nlists = (uint32_t)nl;
        c->weight = weight;
        for (int j = 0; j < nl; j++) {
            __builtin_prefetch(lists[j].entries);
            for (size_t x = 0; x < 256 && x < lists[j].data_size; x += 64)
                __builtin_prefetch(lists[j].data + x);
        }
        cs[n++] = c;
        lists = NULL;                /* the cursor keeps them */
    }
    for (uint32_t i = 0; i < n; i++)
        qry_cursor_init(cs[i], r, cs[i]->lists, cs[i]->nlists, cs[i]->weight, sc);
    res->nterms = n;

    qry_topk_entry *heap = lx_arena_alloc(&q->arena, QRY_TOPK_ROOM(p->k) * sizeof *heap);
    qry_hit *hits = lx_arena_alloc(&q->arena, p->k * sizeof *hits);
    if (!heap || !hits)
        return LX_E_NOMEM;
    qry_topk t;
    qry_topk_init(&t, heap, p->k);

    int algo = p->algo;
    if (p->conjunctive) {
        if (n < q->nterms)
            n = 0;      /* a term is missing: no document has them all */
        res->scored = qry_run_conjunctive(cs, n, &t);
        algo = QRY_ALGO_EXHAUSTIVE;
    } else {
        if (algo == QRY_ALGO_AUTO)
            algo = QRY_ALGO_MAXSCORE;
        if (algo != QRY_ALGO_EXHAUSTIVE) {
            /* Pruning starts from the best single-term k-th score; the
             * exhaustive oracle stays unprimed, so tests compare the two. */
            float bound = 0;
            for (uint32_t i = 0; i < n; i++) {
                float kb = qry_cursor_kth_bound(cs[i], p->k);
                if (kb > bound)
                    bound = kb;
            }
            qry_topk_prime(&t, bound);
        }
        switch (algo) {
        case QRY_ALGO_EXHAUSTIVE: res->scored = qry_run_exhaustive(cs, n, &t); break;
        case QRY_ALGO_MAXSCORE:   res->scored = qry_run_maxscore(cs, n, &t, &q->win, &res->promoted); break;
        case QRY_ALGO_WAND:       res->scored = qry_run_wand(cs, n, &t); break;
        case QRY_ALGO_BMW:        res->scored = qry_run_bmw(cs, n, &t); break;
        default: LX_ASSERT(0);
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (cs[i]->error)
            return cs[i]->error;
        res->postings += cs[i]->postings;
    }
    res->algo = algo;
    res->n = qry_topk_finish(&t, hits);
    res->hits = hits;
    return 0;
}

void qry_scorer_init(qry_scorer *sc, float k1, float b, float avgdl)
{
    sc->k1 = k1;
    sc->b = b;
    sc->avgdl = avgdl;
    for (uint32_t dl = 0; dl < QRY_NORM_CACHE; dl++)
        sc->norm[dl] = idx_bm25_norm(dl, k1, b, avgdl);
}

static int qry_check_params(const qry_params *p)
{
    if (p->k == 0 || p->k > 100000 || p->algo < 0 || p->algo >= QRY_ALGO_COUNT)
        return LX_E_INVAL;
    return 0;
}

int qry_search(qry_engine *q, idx_reader *r, const char *text, size_t len,
               const qry_params *p, qry_result *res)
{
    int rc;
    memset(res, 0, sizeof *res);
    if ((rc = qry_check_params(p)) != 0)
        return rc;
    lx_arena_reset(&q->arena);
    q->nterms = 0;
    q->overflow = 0;
    rc = enc_analyzer_run(q->an, text, len, qry_on_term, q);
    for (uint32_t i = 0; i < q->nterms; i++)
        q->term_slot[q->term_home[i]] = 0;
    if (rc)
        return rc;
    return qry_rank(q, r, p, res);
}

int qry_search_terms(qry_engine *q, idx_reader *r, const qry_term *terms, uint32_t n,
                     const qry_params *p, qry_result *res)
{
    int rc;
    memset(res, 0, sizeof *res);
    if ((rc = qry_check_params(p)) != 0)
        return rc;
    if (n > QRY_MAX_TERMS)
        n = QRY_MAX_TERMS;
    lx_arena_reset(&q->arena);
    q->nterms = 0;
    for (uint32_t i = 0; i < n; i++) {
        char *s = lx_arena_strndup(&q->arena, terms[i].text, terms[i].len);
        if (!s)
            return LX_E_NOMEM;
        q->term_hash[q->nterms] = idx_term_hash(s, terms[i].len);
        q->terms[q->nterms++] = (qry_term){ s, terms[i].len, terms[i].weight, 0 };
    }
    return qry_rank(q, r, p, res);
}

/* For prf.c: the engine's analyzer. */
enc_analyzer *qry_engine_analyzer(qry_engine *q);
enc_analyzer *qry_engine_analyzer(qry_engine *q) { return q->an; }
