/* query.h: ranked retrieval over a lexis index.
 *
 * Usage:
 *     qry_engine *q;
 *     rc = qry_engine_open(env, &q);            // one per thread
 *     idx_reader *r;
 *     rc = idx_reader_open(env, &r);            // the snapshot to search
 *     qry_params p = qry_default_params();      // k=10, fastest exact algorithm
 *     qry_result res;
 *     rc = qry_search(q, r, "fast json parser", 16, &p, &res);
 *     for (uint32_t i = 0; i < res.n; i++) use(res.hits[i].docid, res.hits[i].score);
 *     idx_reader_close(r);                      // res.hits lives until the next search
 *     qry_engine_close(q);
 *
 * Scoring is BM25: sum over query terms t of
 *     qtf(t) * idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)),
 *     idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))
 * with exact document lengths and live-document statistics. Each term's part
 * is computed in float by one function and the parts are summed in double,
 * where the sum of a few floats of similar magnitude is exact, so every
 * algorithm gives a document bit-identical scores. Ranking: score descending,
 * then internal doc id ascending (earlier-added documents first).
 *
 * Every algorithm returns exactly the exhaustive top-k: the pruned ones
 * (MaxScore, WAND, Block-Max WAND) skip only documents whose upper bound
 * cannot beat the k-th score.
 */
#ifndef LX_QUERY_H
#define LX_QUERY_H

#include "../index/index.h"

typedef struct qry_engine qry_engine;

enum qry_algo {
    QRY_ALGO_AUTO,         /* the fastest exact algorithm for the query */
    QRY_ALGO_EXHAUSTIVE,   /* ranked OR over every posting: the oracle */
    QRY_ALGO_MAXSCORE,
    QRY_ALGO_WAND,
    QRY_ALGO_BMW,          /* Block-Max WAND */
    QRY_ALGO_COUNT
};

typedef struct qry_params {
    uint32_t k;            /* hits wanted (default 10) */
    int algo;              /* enum qry_algo */
    int conjunctive;       /* 1: every query term must match (AND) */
    float k1, b;           /* < 0: the index's recorded values */
} qry_params;

qry_params qry_default_params(void);

/* Name <-> algorithm ("auto", "exhaustive", "maxscore", "wand", "bmw").
 * Returns -1 for an unknown name. */
int qry_algo_parse(const char *name);
const char *qry_algo_name(int algo);

typedef struct qry_hit {
    uint32_t docid;
    float score;
} qry_hit;

typedef struct qry_result {
    qry_hit *hits;         /* borrowed from the engine: valid until the next
                              qry_search on it or qry_engine_close */
    uint32_t n;
    uint32_t nterms;       /* query terms found in the index */
    uint64_t scored;       /* documents fully scored */
    uint64_t postings;     /* postings examined (decoded positions visited) */
    int algo;              /* the algorithm that ran */
} qry_result;

/* Opens an engine for env: its analyzer (as the index records it) and
 * scratch memory. Not thread-safe; one per thread. Owned by the caller. */
int qry_engine_open(idx_env *env, qry_engine **out);
void qry_engine_close(qry_engine *q);

/* Analyzes `text` and ranks documents of snapshot r. An empty query (or one
 * whose terms are all unknown or stop words) gives 0 hits, not an error.
 * Returns 0, LX_E_INVAL (k = 0 or > 100000, bad k1/b), LX_E_CORRUPT,
 * LX_E_NOMEM. */
int qry_search(qry_engine *q, idx_reader *r, const char *text, size_t len,
               const qry_params *p, qry_result *res);

/* The analyzed terms of the last query with their weights, for callers that
 * highlight or explain. Borrowed until the next search. */
typedef struct qry_term {
    const char *text; size_t len;
    uint32_t qtf;           /* times in the query */
    uint32_t df;            /* 0 if absent from the index */
} qry_term;
const qry_term *qry_last_terms(const qry_engine *q, uint32_t *n);

#endif
