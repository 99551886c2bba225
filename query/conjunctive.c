/* conjunctive.c: AND queries. Cursors are ordered by list length so the
 * shortest drives; the others leapfrog to its candidates with next_geq. */
#include "query_impl.h"

#include <stdlib.h>

static int by_len(const void *a, const void *b)
{
    uint32_t x = (*(qry_cursor *const *)a)->len, y = (*(qry_cursor *const *)b)->len;
    return (x > y) - (x < y);
}

uint64_t qry_run_conjunctive(qry_cursor **cs, uint32_t n, qry_topk *t)
{
    uint64_t scored = 0;
    if (n == 0)
        return 0;
    lx_sort(cs, n, sizeof *cs, by_len);
    uint32_t d = cs[0]->doc;
    while (d != QRY_END) {
        uint32_t i;
        for (i = 1; i < n; i++) {
            qry_cursor_next_geq(cs[i], d);
            if (cs[i]->doc != d)
                break;
        }
        if (i < n) {
            qry_cursor_next_geq(cs[0], cs[i]->doc);
            d = cs[0]->doc;
            continue;
        }
        double s = 0;
        for (i = 0; i < n; i++)
            s += qry_cursor_score(cs[i]);
        qry_topk_push(t, d, s);
        scored++;
        qry_cursor_next(cs[0]);
        d = cs[0]->doc;
    }
    return scored;
}
