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
    uint64_t promoted;     /* MaxScore: terms taken into a window's
                              accumulator although not essential there,
                              as cheaper than looking them up (a count of
                              term-windows) */
    int algo;              /* the algorithm that ran */
} qry_result;

/* Opens an engine for env: its analyzer (as the index records it),
 * scratch memory, and a cache of term lookups for searches of env's
 * snapshots (readers of another env are searched without it). Not
 * thread-safe; one per thread. Owned by the caller; env must outlive it. */
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
    float weight;           /* times in the query, or an expansion weight */
    uint32_t df;            /* 0 if absent from the index */
} qry_term;
/* Ranks with already-analyzed, weighted terms: each term's BM25 part is
 * multiplied by its weight (> 0). Terms are borrowed for the call. */
int qry_search_terms(qry_engine *q, idx_reader *r, const qry_term *terms, uint32_t n,
                     const qry_params *p, qry_result *res);

/* Pseudo-relevance feedback, RM3 as Anserini implements it: the top fb_docs
 * documents of a first BM25 pass are re-analyzed; in each, terms of 2-20
 * characters [a-z0-9] whose df is at most 10% of the collection are kept
 * and cut to the fb_terms most frequent; each document's vector is
 * L1-normalized and weighted by its first-pass score; the summed model is
 * cut to fb_terms terms and L1-normalized, then interpolated with the
 * L1-normalized query: w = orig_weight * q + (1 - orig_weight) * rm. The
 * expanded query is run over the whole index. */
typedef struct qry_rm3_params {
    uint32_t fb_docs;       /* 10 */
    uint32_t fb_terms;      /* 10 */
    float orig_weight;      /* 0.5 */
} qry_rm3_params;

qry_rm3_params qry_rm3_default_params(void);
int qry_search_rm3(qry_engine *q, idx_reader *r, const char *text, size_t len,
                   const qry_params *p, const qry_rm3_params *rm, qry_result *res);

const qry_term *qry_last_terms(const qry_engine *q, uint32_t *n);

/* ---- evaluation (eval.c) ---------------------------------------------------------
 *
 * trec_eval semantics: a document is relevant when its judgment is >= 1;
 * nDCG uses the judgment as the gain (as trec_eval's ndcg_cut); a run's
 * documents are ordered by score descending, ties by document id descending
 * (trec_eval's order, whatever ranks the run file claims); a query's
 * measures average over the judged queries (those with a relevant document),
 * and a judged query absent from the run scores 0 (trec_eval -c). */

typedef struct qry_qrels qry_qrels;

/* Loads judgments: BEIR tsv ("query-id<TAB>corpus-id<TAB>score" with a
 * header) or TREC qrels ("qid iter docid rel"). Owned by the caller. On
 * error writes "FILE:LINE: what" into err. */
int qry_qrels_load(const char *path, qry_qrels **out, char *err, size_t errcap);
void qry_qrels_free(qry_qrels *q);
/* The judged query ids (with >= 1 relevant document), in file order.
 * Borrowed until qry_qrels_free. */
const char *const *qry_qrels_queries(const qry_qrels *q, size_t *n);
/* Judgment of (qid, docid), 0 when unjudged. */
int qry_qrels_get(const qry_qrels *q, const char *qid, const char *docid);

typedef struct qry_ranked {
    const char *docid;     /* borrowed */
    double score;
} qry_ranked;

enum { QRY_M_NDCG10, QRY_M_MAP, QRY_M_MRR10, QRY_M_P10, QRY_M_R100, QRY_M_R1000, QRY_M_COUNT };
extern const char *const qry_metric_names[QRY_M_COUNT];   /* "ndcg@10", ... */

/* Measures one query's ranking (sorted in place into trec_eval's order).
 * Returns LX_E_NOTFOUND if qid has no relevant judgment. */
int qry_eval_query(const qry_qrels *q, const char *qid, qry_ranked *docs, size_t n,
                   double m[QRY_M_COUNT]);

#endif
