/* maxscore.c: MaxScore (Turtle & Flood 1995), in windows of documents.
 *
 * Terms are put in an order, and ub[i] is the sum of the bounds of terms
 * 0..i. Once the top-k threshold reaches ub[i], a document matching only
 * terms 0..i cannot enter, so those terms become "non-essential":
 * candidates come only from the essential terms, and a non-essential term
 * is looked up (qry_cursor_add_matches) only while the candidate's partial
 * score plus the remaining bounds could still beat the threshold. The
 * classic order is by bound, ascending; here it is by bound per posting
 * (ties by bound), the greedy answer to "which terms leave out the most
 * postings for a sum of bounds under the threshold": a term whose bound is
 * like its neighbours' but whose list is longer becomes non-essential
 * first. Every bound below is a sum over a prefix or over all terms, so
 * any order is correct; over the bench's 2,075 queries at k=10 this one
 * examined 3.2% fewer postings on the Debian corpus (CISI's long queries
 * 6.2%), 1.0% on SciFact and 5.5% on synth2m.
 *
 * Candidates are gathered a window of QRY_WINDOW doc ids at a time, term at
 * a time (as Lucene's MaxScore does): each essential term adds its scores
 * into an accumulator array and marks a bitset. The marked documents that
 * could still enter become a candidate list (with a single essential term,
 * its postings become the list as they are read), and the non-essential terms are
 * then looked up a term at a time too, the largest bound first: each pass
 * adds one term's score where it matches and drops the candidates that
 * cannot enter even with every smaller term. A pass scatters the term's
 * tfs over the candidates' range into a byte a document and reads each
 * candidate's there, with no branch on whether it matches (or, where it
 * cannot scatter, walks the cursor forward over the sorted candidates);
 * what it costs is that the threshold does not rise
 * within such a window (its documents enter the top k at its end). While
 * every term is essential there is nothing to look up, and the marked
 * documents go straight to the top k, raising the threshold as they enter
 * (the list cost SciFact's top-1000 6% in time). The partition into
 * essential and non-essential terms is fixed for a window (a term's scores
 * are in the accumulator or looked up, never both) and recomputed between
 * windows as the threshold rises; a window may also take non-essential
 * terms into the accumulator where that costs less than their passes
 * (promote_terms below: any partition with at least the essential terms
 * in the accumulator is correct). A document's score is the double sum of
 * its float term scores, added in an order that depends on the window's
 * partition; a double holds such a sum exactly while the term scores span
 * less than about 2^21 (53 bits against the floats' 24 and a few bits of
 * carries), so the order cannot change it and every algorithm, the
 * exhaustive oracle included, gives the same scores.
 */
#include "query_impl.h"

#include <stdlib.h>

/* Windows start at 512 doc ids and double up to QRY_WINDOW (query_impl.h):
 * the first ones run before the threshold means anything (every term
 * essential), and a threshold from the first 512 documents already prunes
 * the rest (-2.3% instructions at k=10 on the Debian corpus; 256 and 1024
 * did no better). Later windows are large because every window costs
 * each essential term a call and each term a partition check: with 4,096
 * doc ids at most, a 2-million-document corpus ran 490 windows a query
 * (32,768 against 4,096, ab.sh: synth2m -8.6%, debpkgs -2.8%, SciFact
 * -1.4%; 65,536 no better, 131,072 worse on synth2m). */
#define QRY_FIRST_WINDOW 512

/* A non-essential term's pass reads every candidate of the window; taking
 * the term into the accumulator instead reads its postings there, and each
 * that falls on an unmarked document adds one more to take and look up.
 * So the largest non-essential terms are promoted, for one window, while
 * a term's postings in the window are fewer than QRY_PROMOTE_RATIO times
 * the candidates expected, times the share of documents marked (both as
 * the last window had them; the window's length cancels out), and never
 * the last one: a window with every term in the accumulator sends every
 * marked document to the top k, where one term left out lets the
 * extraction drop most of them. On real text a long query's words
 * co-occur: CISI's queries on the Debian corpus mark most of a window, and
 * their passes read tens of thousands of candidates for terms of a few
 * thousand postings. Measured with one binary, the rule switched by the
 * environment (code layout alone moves two builds by a few percent),
 * fastest of 11-15 interleaved rounds a query: CISI's queries on the
 * Debian corpus -7.7%, its whole query set -1.6% in mean and -9.2% in
 * p99, SciFact's corpus -4.2% (its keyword queries, which promote
 * nothing, -3.2%: the noise); ratio 0.25 and 1 gained less on CISI
 * (-4.2%, -5.1%), and promoting down to no term left out gained less
 * (-5.4%) and cost ADI's and CACM's queries on SciFact a third. In one
 * process (bench-lexis-lat --ab, which later showed separate processes
 * to exaggerate): the Debian corpus -1.6% and -0.9% (CISI's queries -5.2%
 * and -2.2%), at k=1000 -1.9% (CISI's -6.6%), SciFact -0.9%. With the
 * ratio alone, without the marked share, synth2m's partitions changed for
 * nothing; with it, about a twentieth of a synth2m window is marked (words
 * drawn independently) and no term is promoted there. */
#define QRY_PROMOTE_RATIO 0.5

/* The number of non-essential terms, first_ess or fewer but at least 1
 * (unless first_ess is 0), once the largest are promoted for the window
 * starting at base (see above); promoted cursors are moved to base (the
 * documents before it match no essential term, so they cannot enter).
 * `expect` is the candidates a doc id times the share marked; span is the
 * doc ids the lists cover, over which a term's postings are taken to be
 * spread evenly. */
static uint32_t promote_terms(qry_cursor **cs, uint32_t first_ess, double expect, uint32_t span,
                              uint32_t base)
{
    const double limit = QRY_PROMOTE_RATIO * expect * span;
    uint32_t fe = first_ess;
    while (fe > 1 && (double)cs[fe - 1]->len < limit) {
        fe--;
        qry_cursor_next_geq(cs[fe], base);
    }
    return fe;
}

static int by_bound(const void *a, const void *b)
{
    float x = (*(qry_cursor *const *)a)->max_score, y = (*(qry_cursor *const *)b)->max_score;
    return (x > y) - (x < y);
}

/* The order of the terms (see the top of the file): bound per posting,
 * ascending, ties by bound. */
static int by_bound_per_posting(const void *a, const void *b)
{
    const qry_cursor *x = *(qry_cursor *const *)a, *y = *(qry_cursor *const *)b;
    double rx = x->max_score / ((double)x->len + 1), ry = y->max_score / ((double)y->len + 1);
    if (rx != ry)
        return (rx > ry) - (rx < ry);
    return by_bound(a, b);
}

/* Accumulates the essential terms cs[first_ess..n) over [base, end), term
 * at a time, into wd's acc and bits; a block of term i is passed over when
 * its bound plus every other term's can not beat the threshold
 * (ub[n - 1] - max_i: the others' sum). Then takes the marked documents in
 * id order. With every term essential they are complete and go straight
 * to t, raising its threshold as they enter (counted in *scored), and 0 is
 * returned; otherwise those that could enter with rest added (every
 * non-essential term's bound, ub[first_ess - 1]) become the candidates
 * (kept without a branch), and their count is returned. The score goes
 * through a register: storing it into cscore[nc] and reading it back for
 * the test cost 18% of debpkgs' top-10 time (measured; the likely cause,
 * not measured here: a store-to-load forward on the loop's carried
 * dependency, nc). *marked gets the number of marked documents, counted
 * one a document in the loop: __builtin_popcountll is a call into libgcc
 * in the default build (no -mpopcnt), 3.4% of synth2m's samples. In one
 * process (bench-lexis-lat --ab 7, two runs each): synth2m's first 300
 * SciFact queries -3.5% and -3.7%, debpkgs -3.2%, SciFact -0.9%. */
static uint32_t gather_window(qry_cursor **cs, uint32_t first_ess, uint32_t n, const double *ub, double rest,
                              uint32_t base, uint32_t end, qry_topk *t, qry_window *wd, uint64_t *scored,
                              uint32_t *marked)
{
    double *acc = wd->acc, *cscore = wd->cscore;
    uint64_t *bits = wd->bits;
    uint32_t *cand = wd->cand;
    for (uint32_t i = first_ess; i < n; i++)
        qry_cursor_accumulate_live(cs[i], base, end, acc, bits, t, ub[n - 1] - cs[i]->max_score);
    const int complete = first_ess == 0;
    const uint32_t nwords = (end - base + 63) / 64;    /* words the window can mark */
    uint32_t nc = 0, nmarked = 0;
    for (uint32_t w = 0; w < nwords; w++) {
        uint64_t word = bits[w];
        bits[w] = 0;
        while (word) {
            nmarked++;
            uint32_t d = w * 64 + (uint32_t)__builtin_ctzll(word);
            word &= word - 1;
            double sc = acc[d];
            acc[d] = 0;
            if (complete) {
                qry_topk_push(t, base + d, sc);
                ++*scored;
                continue;
            }
            cand[nc] = base + d;
            cscore[nc] = sc;
            nc += qry_topk_would_enter(t, sc + rest);
        }
    }
    *marked = nmarked;
    return nc;
}

uint64_t qry_run_maxscore(qry_cursor **cs, uint32_t n, qry_topk *t, qry_window *wd, uint64_t *promoted)
{
    double ub[QRY_MAX_TERMS];
    uint32_t *cand = wd->cand;       /* wd's acc and bits: zero on entry and return */
    double *cscore = wd->cscore;
    uint64_t scored = 0;
    lx_sort(cs, n, sizeof *cs, by_bound_per_posting);
    double sum = 0;
    uint32_t span = 1;         /* the doc ids the lists cover */
    for (uint32_t i = 0; i < n; i++) {
        sum += cs[i]->max_score;
        ub[i] = sum;
        /* a cursor's lists are in segment order, and segments in doc id
         * order: its last list ends furthest */
        if (cs[i]->nlists) {
            const idx_plist *pl = &cs[i]->lists[cs[i]->nlists - 1];
            if (pl->seg_base + pl->seg_ndocs > span)
                span = pl->seg_base + pl->seg_ndocs;
        }
    }
    double expect = 0;         /* the last window's candidates a doc id x share marked */
    uint32_t first_ess = 0;
    uint32_t win = QRY_FIRST_WINDOW;
    *promoted = 0;
    for (;;) {
        while (first_ess < n && !qry_topk_would_enter(t, ub[first_ess]))
            first_ess++;
        if (first_ess == n)
            break;
        uint32_t base = QRY_END;
        for (uint32_t i = first_ess; i < n; i++)
            if (cs[i]->doc < base)
                base = cs[i]->doc;
        if (base == QRY_END)
            break;
        uint32_t end = base <= QRY_END - win ? base + win : QRY_END;
        if (win < QRY_WINDOW)
            win *= 2;
        const uint32_t fe = promote_terms(cs, first_ess, expect, span, base);
        *promoted += first_ess - fe;

        /* The window's candidates, each with its essential terms' score.
         * With one essential term they are its postings, taken as it is
         * read, with nothing through acc and bits (ab.sh: 2-word queries
         * on synth2m -26%); no marks are counted then, and nothing is
         * promoted in the next window. */
        const int complete = fe == 0;
        const double rest = complete ? 0 : ub[fe - 1];
        uint32_t nc, marked;
        if (fe == n - 1 && !complete && !cs[fe]->has_deletes) {
            nc = qry_cursor_collect(cs[fe], base, end, cand, cscore, t, rest);
            expect = 0;
        } else {
            nc = gather_window(cs, fe, n, ub, rest, base, end, t, wd, &scored, &marked);
            expect = (double)nc * marked / ((double)(end - base) * (end - base));
        }

        /* Non-essential terms, largest bound first, a term at a time; the
         * candidates that reach the last pass are fully scored, whether or
         * not they then enter t. */
        for (uint32_t i = fe; i-- > 0 && nc;) {
            if (i == 0)
                scored += nc;
            nc = qry_cursor_add_matches(cs[i], cand, cscore, nc, t, i ? ub[i - 1] : 0, base, wd->tf);
        }
        for (uint32_t j = 0; j < nc; j++)
            qry_topk_push(t, cand[j], cscore[j]);
    }
    return scored;
}
