/* wand.c: WAND (Broder et al. 2003), document at a time.
 *
 * Cursors are kept sorted by current doc. The pivot is the first cursor at
 * which the summed term bounds of it and all cursors before it exceed the
 * threshold: no document before the pivot's doc can enter the top k. If the
 * first cursor already sits on the pivot doc, that doc is scored; otherwise a
 * cursor before the pivot jumps to it.
 */
#include "query_impl.h"

/* Restores doc order after cursor i moved forward. */
static void bubble(qry_cursor **cs, uint32_t n, uint32_t i)
{
    while (i + 1 < n && cs[i]->doc > cs[i + 1]->doc) {
        qry_cursor *tmp = cs[i];
        cs[i] = cs[i + 1];
        cs[i + 1] = tmp;
        i++;
    }
}

static void sort_by_doc(qry_cursor **cs, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++) {
        qry_cursor *c = cs[i];
        uint32_t j = i;
        while (j > 0 && cs[j - 1]->doc > c->doc) {
            cs[j] = cs[j - 1];
            j--;
        }
        cs[j] = c;
    }
}

/* Shared with bmw.c through this declaration only. */
int qry_wand_pivot(qry_cursor **cs, uint32_t n, const qry_topk *t, uint32_t *pivot);
void qry_wand_sort(qry_cursor **cs, uint32_t n);
void qry_wand_bubble(qry_cursor **cs, uint32_t n, uint32_t i);

void qry_wand_sort(qry_cursor **cs, uint32_t n) { sort_by_doc(cs, n); }
void qry_wand_bubble(qry_cursor **cs, uint32_t n, uint32_t i) { bubble(cs, n, i); }

int qry_wand_pivot(qry_cursor **cs, uint32_t n, const qry_topk *t, uint32_t *pivot)
{
    double acc = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (cs[i]->doc == QRY_END)
            return 0;
        acc += cs[i]->max_score;
        if (qry_topk_would_enter(t, acc)) {
            /* Cursors on the same doc after the pivot belong with it. */
            while (i + 1 < n && cs[i + 1]->doc == cs[i]->doc)
                i++;
            *pivot = i;
            return 1;
        }
    }
    return 0;
}

uint64_t qry_run_wand(qry_cursor **cs, uint32_t n, qry_topk *t)
{
    uint64_t scored = 0;
    uint32_t p;
    sort_by_doc(cs, n);
    while (qry_wand_pivot(cs, n, t, &p)) {
        uint32_t pd = cs[p]->doc;
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
            sort_by_doc(cs, n);
        } else {
            /* Move the last cursor before the pivot's doc up to it. */
            uint32_t i = p;
            while (cs[i]->doc == pd)
                i--;
            qry_cursor_next_geq(cs[i], pd);
            bubble(cs, n, i);
        }
    }
    return scored;
}
