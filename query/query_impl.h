/* query_impl.h: cursors, the top-k heap and the algorithms (private). */
#ifndef LX_QUERY_IMPL_H
#define LX_QUERY_IMPL_H

#include "query.h"

#include <stddef.h>

#define QRY_END UINT32_MAX
#define QRY_MAX_TERMS 256
/* Upper bounds are inflated by this factor so that float rounding in the
 * score can never push a real score above its bound. */
#define QRY_BOUND_SLACK 1.00001f

/* ---- scoring ----------------------------------------------------------------- */

/* Documents shorter than this take their BM25 length norm from a table
 * computed once per (k1, b, avgdl) with idx_bm25_norm, so scores are
 * bit-identical to computing it each time, with one division fewer. */
#define QRY_NORM_CACHE 1024

typedef struct qry_scorer {
    float k1, b, avgdl;
    float norm[QRY_NORM_CACHE];
} qry_scorer;

void qry_scorer_init(qry_scorer *sc, float k1, float b, float avgdl);

static inline float qry_scorer_norm(const qry_scorer *sc, uint32_t dl)
{
    return dl < QRY_NORM_CACHE ? sc->norm[dl] : idx_bm25_norm(dl, sc->k1, sc->b, sc->avgdl);
}

/* ---- a term's postings, across segments -------------------------------------- */

typedef struct qry_cursor {
    uint32_t doc;             /* current doc, QRY_END when exhausted */
    uint32_t pos, cnt;        /* position in the decoded block */
    uint32_t li, bi;          /* current list and decoded block */
    uint32_t nlists;
    const idx_plist *lists;   /* borrowed from the reader (arena array) */
    const idx_plist *pl;      /* lists + li */
    float weight;             /* qtf * idf * (k1 + 1) */
    float max_score;          /* bound on any score of this term */
    const qry_scorer *sc;
    const idx_reader *r;
    int has_deletes;
    int same_params;          /* segments' k1/b equal the query's */
    int error;                /* LX_E_CORRUPT seen while decoding */
    /* shallow (block-max) position: list and block, not decoded */
    uint32_t sli, sbi;
    uint32_t len;             /* postings in its lists, deleted docs included
                                 (at most one a doc id, so 32 bits hold it) */
    uint64_t postings;        /* positions visited, for statistics */
    uint32_t docs[IDX_BLOCK_SIZE];
    uint32_t tfs[IDX_BLOCK_SIZE];
} qry_cursor;
/* The decoder stores 16 bytes at a time into docs and tfs, and the arena
 * hands out 16-byte-aligned cursors: a misaligned docs would split a
 * quarter of those stores across cache lines. */
_Static_assert(offsetof(qry_cursor, docs) % 16 == 0, "qry_cursor.docs must stay 16-byte aligned");

/* Positions c on its first live posting. */
void qry_cursor_init(qry_cursor *c, const idx_reader *r, const idx_plist *lists, uint32_t n,
                     float weight, const qry_scorer *sc);
void qry_cursor_next(qry_cursor *c);
/* Moves to the first live posting with doc >= d (no move if already there). */
void qry_cursor_next_geq(qry_cursor *c, uint32_t d);

/* A posting's part of a score: weight * tf / (tf + K(dl)), K from sc's
 * norm table. Every scoring loop goes through this one expression, so a
 * posting scores the same, to the bit, whichever path reads it. */
static inline float qry_posting_score(const qry_scorer *sc, float weight, const idx_plist *pl, uint32_t doc,
                                      uint32_t tf)
{
    return weight * idx_bm25_tfnorm_k(tf, qry_scorer_norm(sc, idx_plist_doclen(pl, doc)));
}

static inline float qry_cursor_score(const qry_cursor *c)
{
    return qry_posting_score(c->sc, c->weight, c->pl, c->doc, c->tfs[c->pos]);
}

/* A lower bound on the k-th best score of this term alone (0 when none is
 * known): from the k-th best tf/(tf + K) each list records (index.h
 * idx_kth_ranks; the first rank >= k), at the query's k1 and b only, scaled
 * down by avgdl_now / avgdl_segment when the average has fallen since the
 * segment was written (K grows by at most that factor), and not at all
 * when the snapshot has deleted documents (a deleted posting may be among
 * the k best). Every score is a sum of non-negative term scores, so the
 * query's k-th best score is at least the largest of these. */
float qry_cursor_kth_bound(const qry_cursor *c, uint32_t k);

/* Adds the score of every posting with doc < end into acc[doc - base] and
 * marks bits, leaving the cursor on the first doc >= end; the inner loop
 * runs over the decoded block without a call per posting. Blocks which
 * cannot hold a document of the top k are passed over undecoded: those
 * whose bound plus rest (what the query's other terms can add at most)
 * does not exceed t's threshold. Their documents are left out of acc and
 * bits; no such document can enter t, whatever the other terms give it.
 * With deletions pending it goes posting by posting and passes nothing
 * over. */
struct qry_topk;
void qry_cursor_accumulate_live(qry_cursor *c, uint32_t base, uint32_t end, double *acc, uint64_t *bits,
                                const struct qry_topk *t, double rest);

/* For a window whose only essential term is c (no deletions pending): each
 * posting in [base, end), blocks passed over as accumulate_live does, goes
 * to cand and cscore (room for end - base, the caller's) with its score s,
 * and stays there when s + rest could enter t. Returns how many stayed, in
 * doc order: the candidates maxscore.c would have taken from acc and bits. */
uint32_t qry_cursor_collect(qry_cursor *c, uint32_t base, uint32_t end, uint32_t *cand, double *cscore,
                            const struct qry_topk *t, double rest);

/* For each docs[j] (increasing, and none below the docs of earlier calls:
 * the cursor only moves forward), adds this term's score to scores[j] where
 * the term has that doc, and keeps the candidates whose score plus below
 * could still enter t, in order (docs and scores, borrowed from the caller,
 * compacted in place). Returns how many were kept. The docs lie in
 * [base, base + QRY_WINDOW); tfwin (QRY_WINDOW bytes, the caller's, zero on
 * entry and on return) is where the term's tfs are scattered when its
 * blocks allow (cursor.c), else the cursor moves as next_geq would. */
uint32_t qry_cursor_add_matches(qry_cursor *c, uint32_t *docs, double *scores, uint32_t n,
                                const struct qry_topk *t, double below, uint32_t base, uint8_t *tfwin);

/* Block-max: moves the shallow position to the block that could hold d
 * (never backwards) without decoding; then block_last / block_bound describe
 * it. After the last block, block_last is QRY_END and the bound 0. */
void qry_cursor_shallow_geq(qry_cursor *c, uint32_t d);
uint32_t qry_cursor_block_last(const qry_cursor *c);
float qry_cursor_block_bound(const qry_cursor *c);

/* ---- top k ---------------------------------------------------------------------- */

typedef struct qry_topk_entry {
    double score;             /* exact: the double sum of float term parts */
    uint32_t docid;
} qry_topk_entry;

/* Up to this k a heap, above it a buffer with selection (topk.c). */
#define QRY_TOPK_HEAP_MAX 128
/* Entries a top-k of k needs room for: a buffer of QRY_TOPK_BUFFER(k)
 * candidates, then room for as many doubles (the selection's scratch). */
#define QRY_TOPK_BUFFER(k) (2 * (k) + 16)
#define QRY_TOPK_ROOM(k) (QRY_TOPK_BUFFER(k) + ((k) + 8))

typedef struct qry_topk {
    qry_topk_entry *e;        /* candidates, QRY_TOPK_ROOM(k); caller's memory */
    uint32_t k, cap, n;
    double threshold;         /* a score must exceed it to enter: the k-th
                                 best when full, else -1 or a primed bound */
} qry_topk;

/* buf: room for QRY_TOPK_ROOM(k) entries, owned by the caller. */
void qry_topk_init(qry_topk *t, qry_topk_entry *heap, uint32_t k);
/* Primes the threshold with a lower bound on the final k-th best score
 * (qry_cursor_kth_bound): documents scoring below `bound` are refused from
 * the start; a document scoring exactly `bound` may still enter, so ties
 * resolve as without the bound. Only for ranked OR (a conjunctive top k
 * can score lower than one term's k-th best). */
void qry_topk_prime(qry_topk *t, double bound);
/* Offers (doc, score); docs arrive in increasing id order, so an equal score
 * never displaces an earlier document. Returns 1 if it entered. */
int qry_topk_push(qry_topk *t, uint32_t doc, double score);
/* Writes the hits in rank order (score desc, docid asc) to out (room for k);
 * returns the count. */
uint32_t qry_topk_finish(qry_topk *t, qry_hit *out);

static inline int qry_topk_would_enter(const qry_topk *t, double score)
{
    return score > t->threshold;
}

/* ---- algorithms (one file each) ------------------------------------------------- */

/* Each runs over cursors[0..n) (positioned on their first postings) and
 * fills t. Returns documents fully scored. */
uint64_t qry_run_exhaustive(qry_cursor **cs, uint32_t n, qry_topk *t);
/* MaxScore's window accumulators (maxscore.c), 676 KB. Owned by the
 * engine and all zero between runs: a run clears every entry it touched,
 * so no query pays for clearing what it does not use. */
#define QRY_WINDOW 32768
typedef struct qry_window {
    double acc[QRY_WINDOW];
    uint64_t bits[QRY_WINDOW / 64];
    uint32_t cand[QRY_WINDOW];       /* a window's candidates (scratch) */
    double cscore[QRY_WINDOW];
    uint8_t tf[QRY_WINDOW];          /* add_matches' scatter array */
} qry_window;
/* *promoted: windows' non-essential terms scored into the accumulator
 * (maxscore.c's promote_terms). */
uint64_t qry_run_maxscore(qry_cursor **cs, uint32_t n, qry_topk *t, qry_window *win, uint64_t *promoted);
uint64_t qry_run_wand(qry_cursor **cs, uint32_t n, qry_topk *t);
uint64_t qry_run_bmw(qry_cursor **cs, uint32_t n, qry_topk *t);
uint64_t qry_run_conjunctive(qry_cursor **cs, uint32_t n, qry_topk *t);

#endif
