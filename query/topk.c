/* topk.c: the k best (doc, score) pairs, a binary min-heap.
 *
 * The root is the worst kept hit: lowest score, and among equal scores the
 * highest doc id. Documents arrive in increasing id order (all algorithms are
 * document-at-a-time), so a newcomer enters only with a strictly higher
 * score than the root; that makes ties resolve to the lower doc id exactly
 * as a full sort would, and gives every algorithm the same result.
 * Scores are kept in double (the exact sum of float term scores).
 */
#include "query_impl.h"

void qry_topk_init(qry_topk *t, qry_hit *heap, double *scores, uint32_t k)
{
    t->heap = heap;
    t->scores = scores;
    t->k = k;
    t->n = 0;
    t->threshold = -1.0;
}

/* a is worse than b */
static inline int worse(const qry_topk *t, uint32_t a, uint32_t b)
{
    if (t->scores[a] != t->scores[b])
        return t->scores[a] < t->scores[b];
    return t->heap[a].docid > t->heap[b].docid;
}

static inline void swap(qry_topk *t, uint32_t a, uint32_t b)
{
    qry_hit h = t->heap[a];
    double s = t->scores[a];
    t->heap[a] = t->heap[b];
    t->scores[a] = t->scores[b];
    t->heap[b] = h;
    t->scores[b] = s;
}

static void sift_down(qry_topk *t, uint32_t i, uint32_t n)
{
    for (;;) {
        uint32_t l = 2 * i + 1, m = i;
        if (l < n && worse(t, l, m)) m = l;
        if (l + 1 < n && worse(t, l + 1, m)) m = l + 1;
        if (m == i)
            return;
        swap(t, i, m);
        i = m;
    }
}

int qry_topk_push(qry_topk *t, uint32_t doc, double score)
{
    if (t->n < t->k) {
        uint32_t i = t->n++;
        t->heap[i].docid = doc;
        t->heap[i].score = (float)score;
        t->scores[i] = score;
        while (i > 0 && worse(t, i, (i - 1) / 2)) {
            swap(t, i, (i - 1) / 2);
            i = (i - 1) / 2;
        }
        if (t->n == t->k)
            t->threshold = t->scores[0];
        return 1;
    }
    if (!(score > t->threshold))
        return 0;
    t->heap[0].docid = doc;
    t->heap[0].score = (float)score;
    t->scores[0] = score;
    sift_down(t, 0, t->n);
    t->threshold = t->scores[0];
    return 1;
}

uint32_t qry_topk_finish(qry_topk *t)
{
    /* Heap sort: repeatedly move the worst to the end. */
    for (uint32_t n = t->n; n > 1; n--) {
        swap(t, 0, n - 1);
        sift_down(t, 0, n - 1);
    }
    return t->n;
}
