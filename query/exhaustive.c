/* exhaustive.c: ranked OR over every posting, document at a time. The oracle
 * every pruning algorithm is tested against: it scores every document that
 * contains any query term. */
#include "query_impl.h"

uint64_t qry_run_exhaustive(qry_cursor **cs, uint32_t n, qry_topk *t)
{
    uint64_t scored = 0;
    for (;;) {
        uint32_t d = QRY_END;
        for (uint32_t i = 0; i < n; i++)
            if (cs[i]->doc < d)
                d = cs[i]->doc;
        if (d == QRY_END)
            return scored;
        double s = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (cs[i]->doc == d) {
                s += qry_cursor_score(cs[i]);
                qry_cursor_next(cs[i]);
            }
        }
        qry_topk_push(t, d, s);
        scored++;
    }
}
