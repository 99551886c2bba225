/* bmw.c: Block-Max WAND (Ding & Suel 2011).
 *
 * WAND's pivot uses whole-list bounds; BMW then checks the bounds of the
 * blocks that would hold the pivot doc (a shallow move, no decoding). If even
 * those cannot beat the threshold, every doc up to the end of the nearest of
 * those blocks (or the next cursor's doc) is skipped at once.
 */
#include "query_impl.h"

int qry_wand_pivot(qry_cursor **cs, uint32_t n, const qry_topk *t, uint32_t *pivot);
void qry_wand_sort(qry_cursor **cs, uint32_t n);
void qry_wand_bubble(qry_cursor **cs, uint32_t n, uint32_t i);

uint64_t qry_run_bmw(qry_cursor **cs, uint32_t n, qry_topk *t)
{
    uint64_t scored = 0;
    uint32_t p;
    qry_wand_sort(cs, n);
    while (qry_wand_pivot(cs, n, t, &p)) {
        uint32_t pd = cs[p]->doc;
        double bsum = 0;
        for (uint32_t i = 0; i <= p; i++) {
            qry_cursor_shallow_geq(cs[i], pd);
            bsum += qry_cursor_block_bound(cs[i]);
        }
        if (qry_topk_would_enter(t, bsum)) {
            if (cs[0]->doc == pd) {
                double s = 0;
                uint32_t i = 0;
                while (i < n && cs[i]->doc == pd) {
                    s += qry_cursor_score(cs[i]);
                    qry_cursor_next(cs[i]);
                    i++;
                }
                qry_topk_push(t, pd, s);
                scored++;
                qry_wand_sort(cs, n);
            } else {
                uint32_t i = p;
                while (cs[i]->doc == pd)
                    i--;
                qry_cursor_next_geq(cs[i], pd);
                qry_wand_bubble(cs, n, i);
            }
        } else {
            /* No doc before the end of the nearest block can enter. */
            uint32_t next = QRY_END;
            for (uint32_t i = 0; i <= p; i++) {
                uint32_t last = qry_cursor_block_last(cs[i]);
                if (last != QRY_END && last + 1 < next)
                    next = last + 1;
            }
            if (p + 1 < n && cs[p + 1]->doc < next)
                next = cs[p + 1]->doc;
            if (next <= pd)
                next = pd + 1;
            /* Advance the strongest cursor up to the pivot. */
            uint32_t best = 0;
            for (uint32_t i = 1; i <= p; i++)
                if (cs[i]->max_score > cs[best]->max_score)
                    best = i;
            qry_cursor_next_geq(cs[best], next);
            qry_wand_bubble(cs, n, best);
        }
    }
    return scored;
}
