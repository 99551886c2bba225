/* maxscore.c: MaxScore (Turtle & Flood 1995), in windows of documents.
 *
 * Terms are ordered by their score bound, ascending; ub[i] is the sum of the
 * bounds of terms 0..i. Once the top-k threshold reaches ub[i], a document
 * matching only terms 0..i cannot enter, so those terms become
 * "non-essential": candidates come only from the essential terms, and a
 * non-essential term is looked up (next_geq) only while the candidate's
 * partial score plus the remaining bounds could still beat the threshold.
 *
 * Candidates are gathered a window of QRY_WINDOW doc ids at a time, term at
 * a time (as Lucene's MaxScore does): each essential term adds its scores
 * into an accumulator array and marks a bitset, then the marked documents
 * are finished in id order. Per posting that is one add, instead of a scan
 * over every essential cursor per candidate; long queries gain most. The
 * partition into essential and non-essential terms is fixed for a window
 * (a term's scores are in the accumulator or looked up, never both) and
 * recomputed between windows as the threshold rises. Accumulating in double
 * keeps each document's score the exact sum of its float term scores, so the
 * order of additions cannot change a score.
 */
#include "query_impl.h"

#include <stdlib.h>

/* Windows are QRY_WINDOW (query_impl.h) doc ids, but the first ones run
 * before the threshold means anything (every term essential): 512, 1024,
 * 2048 doc ids, then QRY_WINDOW. A threshold from the first 512 documents
 * already prunes the rest: -2.3% instructions at k=10 on the Debian corpus
 * (256 and 1024 did no better; k=1000 and the synthetic 2M corpus
 * unchanged within 0.1%). */
#define QRY_FIRST_WINDOW 512

static int by_bound(const void *a, const void *b)
{
    float x = (*(qry_cursor *const *)a)->max_score, y = (*(qry_cursor *const *)b)->max_score;
    return (x > y) - (x < y);
}

uint64_t qry_run_maxscore(qry_cursor **cs, uint32_t n, qry_topk *t, qry_window *wd)
{
    double ub[QRY_MAX_TERMS];
    double *acc = wd->acc;           /* zero on entry, zero on return */
    uint64_t *bits = wd->bits;
    uint64_t scored = 0;
    lx_sort(cs, n, sizeof *cs, by_bound);
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        sum += cs[i]->max_score;
        ub[i] = sum;
    }
    uint32_t first_ess = 0;
    uint32_t win = QRY_FIRST_WINDOW;
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

        /* Essential terms, term at a time, into the window; a block of
         * term i is passed over when its bound plus every other term's
         * can not beat the threshold (ub[n - 1] - max_i: the others' sum). */
        for (uint32_t i = first_ess; i < n; i++)
            qry_cursor_accumulate_live(cs[i], base, end, acc, bits, t, ub[n - 1] - cs[i]->max_score);

        /* Candidates in id order: add what non-essential terms can give. */
        const uint32_t ess = first_ess;
        const uint32_t nwords = (end - base + 63) / 64;    /* words the window can mark */
        for (uint32_t w = 0; w < nwords; w++) {
            uint64_t word = bits[w];
            bits[w] = 0;
            while (word) {
                uint32_t d = w * 64 + (uint32_t)__builtin_ctzll(word);
                word &= word - 1;
                double s = acc[d];
                acc[d] = 0;
                uint32_t doc = base + d;
                int complete = 1;
                for (uint32_t i = ess; i-- > 0;) {
                    if (!qry_topk_would_enter(t, s + ub[i])) {
                        complete = 0;
                        break;
                    }
                    qry_cursor_next_geq(cs[i], doc);
                    if (cs[i]->doc == doc)
                        s += qry_cursor_score(cs[i]);
                }
                if (complete) {
                    scored++;
                    qry_topk_push(t, doc, s);
                }
            }
        }
    }
    return scored;
}
