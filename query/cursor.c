/* cursor.c: a term's postings as one stream, across segments.
 *
 * A term has one postings list per segment that saw it, and segments cover
 * increasing doc-id ranges, so the lists chain into one increasing stream.
 * The cursor decodes one block of 128 at a time into its own arrays; moving
 * forward skips whole lists by their last doc and whole blocks by the block
 * index (a dense array of last doc ids) without decoding them. Deleted
 * documents are skipped as they are met, so algorithms never see them.
 *
 * Block-max support: a second, "shallow" position walks the block index
 * alone, so Block-Max WAND can ask for the bound of the block holding a doc
 * without decoding anything; MaxScore's accumulation passes over blocks
 * by their bounds as it goes (qry_cursor_accumulate_live).
 *
 * Bounds: a block's bound is the tightest of two valid ones. (1) The writer
 * stored fmax = max tf/(tf + K(dl)) at the segment's k1, b and avgdl; if the
 * query uses those k1 and b, it still bounds the term with the current avgdl
 * after scaling by max(1, avgdl_now / avgdl_segment) (a larger avgdl shrinks
 * K by at most that factor). (2) tfnorm(max_tf, min_dl) bounds it for any
 * k1 and b, since the score grows with tf and shrinks with dl.
 */
#include "query_impl.h"

#include <string.h>

static inline uint32_t list_last(const idx_plist *pl)
{
    return idx_block_last(pl, pl->nblocks - 1);
}

/* Values the writer stored for pl (fmax, the k-th best) hold at the query's
 * k1 and b only; fmax_now scales fmax up to the current avgdl (bound (1)). */
static inline int same_params(const qry_scorer *sc, const idx_plist *pl)
{
    return pl->seg_k1 == sc->k1 && pl->seg_b == sc->b;
}

static inline float fmax_now(const qry_scorer *sc, const idx_plist *pl, float fmax)
{
    return fmax * (sc->avgdl > pl->seg_avgdl ? sc->avgdl / pl->seg_avgdl : 1.0f);
}

static float bound_of(const qry_cursor *c, const idx_plist *pl, float fmax, uint32_t max_tf,
                      uint32_t min_dl)
{
    const qry_scorer *sc = c->sc;
    float f = idx_bm25_tfnorm(max_tf, min_dl, sc->k1, sc->b, sc->avgdl);
    if (same_params(sc, pl)) {
        float g = fmax_now(sc, pl, fmax);
        if (g < f)
            f = g;
    }
    return c->weight * f * QRY_BOUND_SLACK;
}

static void cursor_decode(qry_cursor *c)
{
    int n = idx_block_decode(c->pl, c->bi, c->docs, c->tfs);
    if (n <= 0) {
        c->error = LX_E_CORRUPT;
        c->doc = QRY_END;
        c->cnt = 0;
        return;
    }
    c->cnt = (uint32_t)n;
    c->pos = 0;
    c->doc = c->docs[0];
}

/* Moves to the next block (of this list or the next list) without decoding
 * it. Returns 0, the cursor exhausted (doc QRY_END), after the last one. */
static inline int cursor_step_block(qry_cursor *c)
{
    if (++c->bi == c->pl->nblocks) {
        if (++c->li == c->nlists) {
            c->doc = QRY_END;
            return 0;
        }
        c->pl = &c->lists[c->li];
        c->bi = 0;
    }
    return 1;
}

/* Moves to the next block and decodes it. */
static void cursor_next_block(qry_cursor *c)
{
    if (cursor_step_block(c))
        cursor_decode(c);
}

static inline void cursor_skip_deleted(qry_cursor *c)
{
    while (c->doc != QRY_END && idx_reader_is_deleted(c->r, c->doc)) {
        if (++c->pos == c->cnt)
            cursor_next_block(c);
        else
            c->doc = c->docs[c->pos];
    }
}

void qry_cursor_init(qry_cursor *c, const idx_reader *r, const idx_plist *lists, uint32_t n,
                     float weight, const qry_scorer *sc)
{
    c->lists = lists;
    c->nlists = n;
    c->li = c->bi = c->sli = c->sbi = 0;
    c->weight = weight;
    c->sc = sc;
    c->r = r;
    c->has_deletes = idx_reader_has_deletes(r);
    c->error = 0;
    c->postings = 0;
    c->len = 0;
    c->max_score = 0;
    for (uint32_t i = 0; i < n; i++) {
        c->len += lists[i].n;
        float bnd = bound_of(c, &lists[i], lists[i].fmax, lists[i].max_tf, lists[i].min_dl);
        if (bnd > c->max_score)
            c->max_score = bnd;
    }
    if (n == 0) {
        c->doc = QRY_END;
        c->cnt = 0;
        return;
    }
    c->pl = &lists[0];
    cursor_decode(c);
    if (c->has_deletes)
        cursor_skip_deleted(c);
}

/* Rounding slack for the k-th bound: the float steps between the stored
 * value and a query's score err by a few ulps (1e-7); this is 1e-4. */
#define QRY_KTH_SLACK 0.9999f

float qry_cursor_kth_bound(const qry_cursor *c, uint32_t k)
{
    const qry_scorer *sc = c->sc;
    int ri = 0;
    while (ri < IDX_KTH_COUNT && idx_kth_ranks[ri] < k)
        ri++;
    if (ri == IDX_KTH_COUNT || c->has_deletes || !(c->weight > 0))
        return 0;
    float best = 0;
    for (uint32_t i = 0; i < c->nlists; i++) {
        const idx_plist *pl = &c->lists[i];
        float f = pl->kth[ri];
        if (!same_params(sc, pl) || !(f > 0 && f <= 1))
            continue;
        if (sc->avgdl < pl->seg_avgdl)
            f *= sc->avgdl / pl->seg_avgdl;
        if (f > best)
            best = f;
    }
    return c->weight * best * QRY_KTH_SLACK;
}

void qry_cursor_next(qry_cursor *c)
{
    c->postings++;
    if (++c->pos == c->cnt)
        cursor_next_block(c);
    else
        c->doc = c->docs[c->pos];
    if (c->has_deletes)
        cursor_skip_deleted(c);
}

void qry_cursor_next_geq(qry_cursor *c, uint32_t d)
{
    if (c->doc >= d)
        return;
    c->postings++;
    if (d > c->docs[c->cnt - 1]) {
        /* Leave the decoded block: find the list, then the block. */
        uint32_t b = c->bi + 1;
        if (list_last(c->pl) < d) {
            do {
                if (++c->li == c->nlists) {
                    c->doc = QRY_END;
                    return;
                }
            } while (list_last(&c->lists[c->li]) < d);
            c->pl = &c->lists[c->li];
            b = 0;
        }
        while (idx_block_last(c->pl, b) < d)
            b++;
        c->bi = b;
        cursor_decode(c);
        if (c->doc == QRY_END)
            return;
    }
    uint32_t pos = c->pos;
    while (c->docs[pos] < d)
        pos++;
    c->pos = pos;
    c->doc = c->docs[pos];
    if (c->has_deletes)
        cursor_skip_deleted(c);
}

/* The scatter pass pays a posting of the term where the lookup pays a
 * candidate: it is taken while the blocks covering the candidates hold at
 * most QRY_SCATTER_RATIO postings a candidate. */
#ifndef QRY_SCATTER_RATIO
#define QRY_SCATTER_RATIO 16
#endif

/* Whether add_matches can scatter: the candidates [lo, hi] lie in the
 * segment of the cursor's list (their lengths are read from it, matched or
 * not) and every block of the list that covers them has tfs below 256 (the
 * scatter array is a byte a document) and is not too many. On yes, *b0 and
 * *b1 are the first and last of those blocks. */
static int scatter_plan(const qry_cursor *c, uint32_t lo, uint32_t hi, uint32_t n, uint32_t *b0,
                        uint32_t *b1)
{
    const idx_plist *pl = c->pl;
    if (c->doc == QRY_END || lo < pl->seg_base || hi - pl->seg_base >= pl->seg_ndocs)
        return 0;
    uint32_t b = c->bi, nb = pl->nblocks;
    while (b < nb && idx_block_last(pl, b) < lo)
        b++;
    if (b == nb)
        return 0;
    uint32_t first = b, limit = n * QRY_SCATTER_RATIO / IDX_BLOCK_SIZE;
    for (;;) {
        if (idx_block_max_tf(pl, b) > 255 || b - first > limit)
            return 0;
        if (idx_block_last(pl, b) >= hi || b + 1 == nb)
            break;
        b++;
    }
    *b0 = first;
    *b1 = b;
    return 1;
}

/* add_matches' second half: each candidate's tf from tfwin, its score
 * added (with a branch on the match when sparse, else without), the
 * candidates that can still enter kept. Inlined into two copies. */
static inline __attribute__((always_inline)) uint32_t
scatter_read(const qry_cursor *c, const idx_plist *pl, uint32_t *docs, double *scores, uint32_t n,
             double threshold, double below, uint32_t base, const uint8_t *tfwin, const int sparse)
{
    const qry_scorer *sc = c->sc;
    const float w = c->weight;
    uint32_t m = 0;
    for (uint32_t j = 0; j < n; j++) {
        uint32_t d = docs[j], tf = tfwin[d - base];
        double s = scores[j];
        if (sparse) {
            if (tf)
                s += qry_posting_score(sc, w, pl, d, tf);
        } else {
            /* qry_posting_score, except that at tf 0 the norm gets 1 more
             * ((tf - 1) >> 31 is 1 there, 0 for tf 1..255), so the score is
             * 0 / (0 + norm + 1) = 0, never 0 / 0 (norm is 0 when k1 is);
             * at tf > 0 the same float steps. Arithmetic on purpose: gcc
             * compiled "tf ? f : 0" and "(float)(tf == 0)" into branches. */
            float norm = qry_scorer_norm(sc, idx_plist_doclen(pl, d)) + (float)((tf - 1) >> 31);
            s += w * idx_bm25_tfnorm_k(tf, norm);
        }
        docs[m] = d;
        scores[m] = s;
        m += s + below > threshold;
    }
    return m;
}

/* add_matches by scattering: the term's tfs from blocks b0..b1 that fall in
 * [docs[0], docs[n - 1]] go into tfwin (indexed by doc - base), then each
 * candidate reads its tf there, 0 where the term lacks it. No branch
 * depends on whether a candidate matches, which the lookup's two did (a
 * cpu-clock profile put 30% of SciFact's top-10 time in the lookup, mostly
 * after those branches). The score is the same float expression as the
 * lookup's, so the sums are bit-identical. tfwin is zero again on return. */
static uint32_t add_matches_scatter(qry_cursor *c, uint32_t b0, uint32_t b1, uint32_t *docs, double *scores,
                                    uint32_t n, double threshold, double below, uint32_t base, uint8_t *tfwin)
{
    const idx_plist *pl = c->pl;
    const uint32_t lo = docs[0], hi = docs[n - 1];
    uint64_t visited = 0;
    for (uint32_t b = b0; b <= b1 && !c->error; b++) {
        if (b != c->bi) {
            c->bi = b;
            cursor_decode(c);
            if (c->error)
                break;
        }
        const uint32_t *bd = c->docs, *bt = c->tfs, cnt = c->cnt;
        uint32_t p = 0;
        if (b == b0)
            while (bd[p] < lo)          /* the block holds a doc >= lo */
                p++;
        uint32_t start = p;
        for (; p < cnt && bd[p] <= hi; p++)
            tfwin[bd[p] - base] = (uint8_t)bt[p];
        visited += p - start;
        c->pos = p;
    }
    c->postings += visited;
    if (!c->error) {
        if (c->pos == c->cnt)
            cursor_next_block(c);
        else
            c->doc = c->docs[c->pos];
    }
    /* Where few candidates can match (the term covers under an eighth of
     * their range) a branch on the match is well predicted and saves the
     * division; elsewhere it is the mispredictions this pass avoids. */
    uint32_t m = visited * 8 < hi - lo + 1U
        ? scatter_read(c, pl, docs, scores, n, threshold, below, base, tfwin, 1)
        : scatter_read(c, pl, docs, scores, n, threshold, below, base, tfwin, 0);
    memset(tfwin + (lo - base), 0, hi - lo + 1);
    return m;
}

uint32_t qry_cursor_add_matches(qry_cursor *c, uint32_t *docs, double *scores, uint32_t n,
                                const qry_topk *t, double below, uint32_t base, uint8_t *tfwin)
{
    uint32_t m = 0, b0, b1;
    if (n && !c->has_deletes && scatter_plan(c, docs[0], docs[n - 1], n, &b0, &b1))
        return add_matches_scatter(c, b0, b1, docs, scores, n, t->threshold, below, base, tfwin);
    if (c->has_deletes) {
        for (uint32_t j = 0; j < n; j++) {
            uint32_t d = docs[j];
            double s = scores[j];
            qry_cursor_next_geq(c, d);
            if (c->doc == d)
                s += qry_cursor_score(c);
            docs[m] = d;
            scores[m] = s;
            m += qry_topk_would_enter(t, s + below);
        }
        return m;
    }
    /* The cursor's state in locals: the stores into docs and scores could
     * otherwise alias it and force reloads. No document enters t during a
     * pass, so its threshold is read once. */
    const double threshold = t->threshold;
    uint32_t cur = c->doc, pos = c->pos;
    uint32_t last = cur == QRY_END ? QRY_END : c->docs[c->cnt - 1];
    uint64_t visited = 0;
    for (uint32_t j = 0; j < n; j++) {
        uint32_t d = docs[j];
        double s = scores[j];
        if (cur < d) {
            if (d > last) {
                c->pos = pos;
                c->doc = cur;
                qry_cursor_next_geq(c, d);
                cur = c->doc;
                pos = c->pos;
                last = cur == QRY_END ? QRY_END : c->docs[c->cnt - 1];
            } else {                  /* inside the decoded block */
                while (c->docs[pos] < d)
                    pos++;
                cur = c->docs[pos];
                visited++;
            }
        }
        if (cur == d)
            s += qry_posting_score(c->sc, c->weight, c->pl, d, c->tfs[pos]);
        docs[m] = d;
        scores[m] = s;
        m += s + below > threshold;
    }
    c->pos = pos;
    c->doc = cur;
    c->postings += visited;
    return m;
}

/* Where a window pass's postings go: into acc and bits (accumulate), or,
 * where the window has one essential term, straight into the candidate
 * list (collect: each score s kept when s + rest could enter t, as
 * maxscore.c's extraction would keep it). */
typedef struct window_sink {
    double *acc;
    uint64_t *bits;
    uint32_t *cand;
    double *cscore;
    uint32_t n;
    double rest, threshold;
} window_sink;

/* Passes the decoded block's postings below end to the sink, in one tight
 * loop. Returns 1 when the block is used up (the caller moves on), else
 * leaves the cursor on the first doc >= end and returns 0. Inlined into
 * one copy a sink. */
static inline __attribute__((always_inline)) int pass_block(qry_cursor *c, uint32_t base, uint32_t end,
                                                            window_sink *k, const int collect)
{
    const qry_scorer *sc = c->sc;
    float w = c->weight;
    uint32_t pos = c->pos, cnt = c->cnt;
    const uint32_t *docs = c->docs, *tfs = c->tfs;
    const idx_plist *pl = c->pl;
    /* Where the window ends in this block, found first (a binary search
     * when it ends inside), so the loop below tests one counter. */
    uint32_t stop = cnt;
    if (docs[cnt - 1] >= end) {
        uint32_t lo = pos, hi = cnt - 1;         /* docs[hi] >= end */
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (docs[mid] < end)
                lo = mid + 1;
            else
                hi = mid;
        }
        stop = lo;
    }
    if (collect) {
        uint32_t m = k->n;
        const double rest = k->rest, threshold = k->threshold;
        for (; pos < stop; pos++) {
            uint32_t doc = docs[pos];
            double sc_ = qry_posting_score(sc, w, pl, doc, tfs[pos]);
            k->cand[m] = doc;
            k->cscore[m] = sc_;
            m += sc_ + rest > threshold;
        }
        k->n = m;
    } else {
        double *acc = k->acc;
        uint64_t *bits = k->bits;
        for (; pos < stop; pos++) {
            uint32_t doc = docs[pos], d = doc - base;
            acc[d] += qry_posting_score(sc, w, pl, doc, tfs[pos]);
            bits[d >> 6] |= (uint64_t)1 << (d & 63);
        }
    }
    c->postings += pos - c->pos;
    c->pos = pos;
    if (pos == cnt)
        return 1;
    c->doc = docs[pos];
    return 0;
}

/* accumulate_live with deletions pending: posting by posting, the deleted
 * ones skipped by qry_cursor_next, no block passed over. */
static void accumulate_each(qry_cursor *c, uint32_t base, uint32_t end, double *acc, uint64_t *bits)
{
    while (c->doc < end) {
        uint32_t d = c->doc - base;
        acc[d] += qry_cursor_score(c);
        bits[d >> 6] |= (uint64_t)1 << (d & 63);
        qry_cursor_next(c);
    }
}

static inline float block_bound_at(const qry_cursor *c, const idx_plist *pl, uint32_t b)
{
    return bound_of(c, pl, idx_block_fmax(pl, b), idx_block_max_tf(pl, b), idx_block_min_dl(pl, b));
}

/* 1 when block b of pl may hold a document of the top k: its bound plus
 * rest exceeds the threshold. At the segment's k1 and b the stored fmax
 * alone gives a valid bound, a multiplication where bound_of also divides
 * twice for the (max_tf, min_dl) one; that one is used only for the other
 * segments. A block checked once a 128 postings must stay cheap: with
 * bound_of throughout, top-1000 on the Debian corpus ran 0.9% more
 * instructions than without the checks. */
static inline int block_live(const qry_cursor *c, const idx_plist *pl, uint32_t b, const qry_topk *t,
                             double rest)
{
    float bound = same_params(c->sc, pl) ? c->weight * fmax_now(c->sc, pl, idx_block_fmax(pl, b)) * QRY_BOUND_SLACK
                                          : block_bound_at(c, pl, b);
    return qry_topk_would_enter(t, bound + rest);
}

/* Moves to the next block that could hold a document of the top k or that
 * starts at or past end, passing the others over undecoded, and decodes
 * it. */
static void cursor_next_live_block(qry_cursor *c, uint32_t end, const qry_topk *t, double rest)
{
    for (;;) {
        if (!cursor_step_block(c))
            return;
        uint32_t first = c->bi ? idx_block_last(c->pl, c->bi - 1) + 1 : c->pl->seg_base;
        if (first >= end || block_live(c, c->pl, c->bi, t, rest))
            break;
    }
    cursor_decode(c);
}

/* The window's postings of c to the sink, passing over the blocks that
 * can not hold a document of the top k (bound + rest not above t's
 * threshold). No deletions pending (the caller checks). */
static inline __attribute__((always_inline)) void pass_live(qry_cursor *c, uint32_t base, uint32_t end,
                                                            const qry_topk *t, double rest, window_sink *k,
                                                            const int collect)
{
    /* bounds are >= 0: below rest no block can be passed over */
    if (qry_topk_would_enter(t, rest)) {
        while (c->doc < end)
            if (pass_block(c, base, end, k, collect))
                cursor_next_block(c);
        return;
    }
    while (c->doc < end) {
        if (!block_live(c, c->pl, c->bi, t, rest)) {
            cursor_next_live_block(c, end, t, rest);
            continue;
        }
        if (!pass_block(c, base, end, k, collect))
            return;
        cursor_next_live_block(c, end, t, rest);
    }
}

void qry_cursor_accumulate_live(qry_cursor *c, uint32_t base, uint32_t end, double *acc, uint64_t *bits,
                                const qry_topk *t, double rest)
{
    if (c->has_deletes) {
        accumulate_each(c, base, end, acc, bits);
        return;
    }
    window_sink k = { .acc = acc, .bits = bits };
    pass_live(c, base, end, t, rest, &k, 0);
}

uint32_t qry_cursor_collect(qry_cursor *c, uint32_t base, uint32_t end, uint32_t *cand, double *cscore,
                            const qry_topk *t, double rest)
{
    window_sink k = { .cand = cand, .cscore = cscore, .rest = rest, .threshold = t->threshold };
    pass_live(c, base, end, t, rest, &k, 1);
    return k.n;
}

void qry_cursor_shallow_geq(qry_cursor *c, uint32_t d)
{
    if (c->sli < c->nlists) {
        const idx_plist *pl = &c->lists[c->sli];
        uint32_t start = c->sbi ? idx_block_last(pl, c->sbi - 1) + 1 : pl->seg_base;
        if (d < start) {              /* asked for an earlier doc: restart here */
            c->sli = c->li;
            c->sbi = c->bi;
        }
    }
    while (c->sli < c->nlists && list_last(&c->lists[c->sli]) < d) {
        c->sli++;
        c->sbi = 0;
    }
    if (c->sli == c->nlists)
        return;
    const idx_plist *pl = &c->lists[c->sli];
    while (idx_block_last(pl, c->sbi) < d)
        c->sbi++;
}

uint32_t qry_cursor_block_last(const qry_cursor *c)
{
    if (c->sli >= c->nlists)
        return QRY_END;
    return idx_block_last(&c->lists[c->sli], c->sbi);
}

float qry_cursor_block_bound(const qry_cursor *c)
{
    if (c->sli >= c->nlists)
        return 0;
    return block_bound_at(c, &c->lists[c->sli], c->sbi);
}
