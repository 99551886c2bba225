/* maxscore.c: MaxScore (Turtle & Flood 1995), document at a time.
 *
 * Terms are ordered by their score bound, ascending; ub[i] is the sum of the
 * bounds of terms 0..i. Once the top-k threshold reaches ub[i], a document
 * matching only terms 0..i cannot enter, so those terms become
 * "non-essential": candidates come only from the essential terms, and a
 * non-essential term is looked up (next_geq) only while the candidate's
 * partial score plus the remaining bounds could still beat the threshold.
 */
#include "query_impl.h"

#include <stdlib.h>

static int by_bound(const void *a, const void *b)
{
    float x = (*(qry_cursor *const *)a)->max_score, y = (*(qry_cursor *const *)b)->max_score;
    return (x > y) - (x < y);
}

uint64_t qry_run_maxscore(qry_cursor **cs, uint32_t n, qry_topk *t)
{
    double ub[QRY_MAX_TERMS];
    uint64_t scored = 0;
    qsort(cs, n, sizeof *cs, by_bound);
    double acc = 0;
    for (uint32_t i = 0; i < n; i++) {
        acc += cs[i]->max_score;
        ub[i] = acc;
    }
    uint32_t first_ess = 0;
    while (first_ess < n && !qry_topk_would_enter(t, ub[first_ess]))
        first_ess++;
    uint32_t cur = QRY_END;
    for (uint32_t i = first_ess; i < n; i++)
        if (cs[i]->doc < cur)
            cur = cs[i]->doc;

    while (first_ess < n && cur != QRY_END) {
        double s = 0;
        uint32_t next = QRY_END;
        for (uint32_t i = first_ess; i < n; i++) {
            if (cs[i]->doc == cur) {
                s += qry_cursor_score(cs[i]);
                qry_cursor_next(cs[i]);
            }
            if (cs[i]->doc < next)
                next = cs[i]->doc;
        }
        int complete = 1;
        for (uint32_t i = first_ess; i-- > 0;) {
            if (!qry_topk_would_enter(t, s + ub[i])) {
                complete = 0;
                break;
            }
            qry_cursor_next_geq(cs[i], cur);
            if (cs[i]->doc == cur)
                s += qry_cursor_score(cs[i]);
        }
        if (complete) {
            scored++;
            if (qry_topk_push(t, cur, s)) {
                while (first_ess < n && !qry_topk_would_enter(t, ub[first_ess]))
                    first_ess++;
            }
        }
        cur = next;
    }
    return scored;
}
