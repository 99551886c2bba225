/* topk.c: the k best (doc, score) pairs.
 *
 * Order: higher score first, and among equal scores the lower doc id.
 * Documents arrive in increasing id order (every algorithm hands them over
 * that way), so a newcomer needs a strictly higher score than the k-th best
 * kept one: ties resolve to the lower doc id exactly as a full sort would,
 * and every algorithm returns the same result. Scores are kept in double
 * (the exact sum of float term scores).
 *
 * Two structures, chosen by k (measured on the Debian corpus with callgrind):
 *  - k <= QRY_TOPK_HEAP_MAX: a binary min-heap whose root is the worst kept
 *    hit. The threshold rises with every newcomer, which the pruning
 *    algorithms need at small k: a lagging threshold cost more than the
 *    heap's log k moves (instructions, heap vs buffer: k = 10 2.57G vs
 *    2.72G, k = 100 3.70G vs 3.80G, k = 300 4.96G vs 4.81G, for 4,150
 *    queries).
 *  - larger k: a buffer of room 2k + 16. Newcomers above the threshold are
 *    appended; when it is full a selection keeps the k best (select_best,
 *    in their order) and the threshold becomes the k-th best score. At
 *    k = 1000 the heap was half of all query instructions; the buffer
 *    costs O(1) per newcomer amortized (9.56G -> 6.78G instructions in
 *    all).
 */
#include "query_impl.h"

#include <math.h>
#include <string.h>

void qry_topk_init(qry_topk *t, qry_topk_entry *buf, uint32_t k)
{
    t->e = buf;
    t->k = k;
    t->cap = QRY_TOPK_BUFFER(k);
    t->n = 0;
    t->threshold = -1.0;
}

void qry_topk_prime(qry_topk *t, double bound)
{
    /* The largest double below bound: score > it <=> score >= bound. */
    double below = nextafter(bound, -INFINITY);
    if (bound > 0 && below > t->threshold)
        t->threshold = below;
}

/* a ranks before b */
static inline int better(qry_topk_entry a, qry_topk_entry b)
{
    if (a.score != b.score)
        return a.score > b.score;
    return a.docid < b.docid;
}

/* ---- heap (small k) ---- */

/* Places x in i's subtree of the heap e[0..n), moving worse children up:
 * the root is the worst. Moves a hole instead of swapping pairs. */
static inline void sift_down(qry_topk_entry *e, uint32_t i, uint32_t n, qry_topk_entry x)
{
    for (;;) {
        uint32_t l = 2 * i + 1;
        if (l >= n)
            break;
        uint32_t m = l;
        if (l + 1 < n && better(e[l], e[l + 1]))
            m = l + 1;
        if (!better(x, e[m]))
            break;
        e[i] = e[m];
        i = m;
    }
    e[i] = x;
}

static int heap_push(qry_topk *t, qry_topk_entry x)
{
    if (t->n < t->k) {
        uint32_t i = t->n++;
        while (i > 0 && better(t->e[(i - 1) / 2], x)) {
            t->e[i] = t->e[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        t->e[i] = x;
        if (t->n == t->k)
            t->threshold = t->e[0].score;
        return 1;
    }
    sift_down(t->e, 0, t->n, x);
    t->threshold = t->e[0].score;
    return 1;
}

/* ---- buffer (large k) ---- */

static void insertion_sort(qry_topk_entry *e, uint32_t lo, uint32_t hi)
{
    for (uint32_t i = lo + 1; i < hi; i++) {
        qry_topk_entry x = e[i];
        uint32_t j = i;
        while (j > lo && better(x, e[j - 1])) {
            e[j] = e[j - 1];
            j--;
        }
        e[j] = x;
    }
}

/* Moves the values of s[lo..hi) that satisfy pred (of x_) to its front, in
 * a loop with no branch on the values (Lomuto's scheme, swapping
 * unconditionally: s[m..i) all fail the test); m is where they end. */
#define PARTITION_FRONT(s, lo, hi, m, pred)                                 \
    do {                                                                    \
        (m) = (lo);                                                         \
        for (uint32_t i_ = (lo); i_ < (hi); i_++) {                         \
            double x_ = (s)[i_];                                            \
            (s)[i_] = (s)[m];                                               \
            (s)[m] = x_;                                                    \
            (m) += (pred);                                                  \
        }                                                                   \
    } while (0)

/* The k-th largest of s[0..n) (1 <= k <= n), reordering s, and in *above
 * how many values exceed it: a quickselect on bare doubles whose
 * partitions do not branch on the values. Each round takes a
 * median-of-three pivot p, moves the values above p to the front and,
 * when the k-th is not among them, the values equal to p next, so every
 * round either answers p or shrinks the range (ties cannot stall it).
 * Everything left of the range exceeds the answer and everything right of
 * it falls below. */
static double kth_largest(double *s, uint32_t n, uint32_t k, uint32_t *above)
{
    uint32_t lo = 0, hi = n, want = k - 1;      /* want: an index in [lo, hi) */
    while (hi - lo > 16) {
        double a = s[lo], b = s[lo + (hi - lo) / 2], c = s[hi - 1];
        double p = a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
        uint32_t gt, eq;
        PARTITION_FRONT(s, lo, hi, gt, x_ > p);
        if (want < gt) {
            hi = gt;
            continue;
        }
        PARTITION_FRONT(s, gt, hi, eq, x_ == p);
        if (want < eq) {
            *above = gt;
            return p;
        }
        lo = eq;
    }
    for (uint32_t i = lo + 1; i < hi; i++) {    /* descending */
        double x = s[i];
        uint32_t j = i;
        while (j > lo && s[j - 1] < x) {
            s[j] = s[j - 1];
            j--;
        }
        s[j] = x;
    }
    uint32_t first = want;
    while (first > lo && s[first - 1] == s[want])
        first--;
    *above = first;
    return s[want];
}

/* Scores the selection samples to bracket the k-th best, and how far to
 * each side of its rank in the sample the brackets go (about two standard
 * deviations of that rank). */
#define SELECT_SAMPLE 63
#define SELECT_MARGIN 8

/* Keeps the k best of e[0..n) (k < n) in e[0..k), in their order, using
 * scratch (room for n doubles). The k-th best score is found first: two
 * scores of an evenly spread sample bracket it, one pass counts the scores
 * above the bracket and copies those inside it, and a quickselect finds it
 * there (on all the scores when the bracket missed, one time in twenty or
 * so). Then one pass keeps every entry above it and, of those at it, the
 * first ones. Entries stay in arrival order, which is doc-id order (every
 * algorithm hands documents over that way, and this pass keeps the order
 * of what it keeps), so the first at the k-th score are those of lowest
 * doc id, as a full sort by (score desc, doc id asc) would keep. No pass
 * branches on the scores: a quickselect of the entries by better()
 * mispredicted so often that it was 33% of SciFact's top-1000 time
 * (cpu-clock profile); quickselecting a copy of all the scores was 22%. */
static void select_best(qry_topk_entry *e, uint32_t n, uint32_t k, double *scratch)
{
    double sample[SELECT_SAMPLE];
    for (uint32_t j = 0; j < SELECT_SAMPLE; j++)
        sample[j] = e[(uint64_t)j * n / SELECT_SAMPLE].score;
    uint32_t rank = (uint32_t)((uint64_t)k * SELECT_SAMPLE / n), unused;
    uint32_t r_hi = rank > SELECT_MARGIN ? rank - SELECT_MARGIN : 0;
    uint32_t r_lo = rank + SELECT_MARGIN < SELECT_SAMPLE ? rank + SELECT_MARGIN : SELECT_SAMPLE - 1;
    double top = kth_largest(sample, SELECT_SAMPLE, r_hi + 1, &unused);
    double bottom = kth_largest(sample, SELECT_SAMPLE, r_lo + 1, &unused);
    uint32_t over = 0, nb = 0;
    for (uint32_t i = 0; i < n; i++) {
        double x = e[i].score;
        over += x > top;
        scratch[nb] = x;
        nb += (x <= top) & (x >= bottom);
    }
    double kth;
    uint32_t above;
    if (over < k && over + nb >= k) {
        kth = kth_largest(scratch, nb, k - over, &above);
        above += over;
    } else {
        for (uint32_t i = 0; i < n; i++)
            scratch[i] = e[i].score;
        kth = kth_largest(scratch, n, k, &above);
    }
    uint32_t at = k - above, m = 0;             /* how many at kth to keep */
    for (uint32_t i = 0; i < n; i++) {
        qry_topk_entry x = e[i];
        uint32_t is_at = x.score == kth;
        uint32_t keep = (x.score > kth) | (is_at & (at > 0));
        at -= is_at & keep;
        e[m] = x;
        m += keep;
    }
}

/* Sorts e[0..n) into rank order, using tmp (room for 2n entries). The key
 * of an entry is its score placed on 16 bits between the largest and the
 * smallest, (max - score) * 65535 / (max - min) truncated: each step
 * rounds monotonically, so a higher score never gets a larger key, and a
 * smaller key means a higher score. (key, position) pairs are radix sorted
 * (LSD, two byte passes, a pass skipped when every key shares its byte),
 * the entries gathered in that order, and each run of equal keys (near-ties,
 * short: 65,536 keys for at most k entries) put in order by score and doc
 * id. Before, the 16-byte entries themselves went through up to four byte
 * passes on their float-rounded scores: 21% of SciFact's top-1000 time
 * (cpu-clock), the counter of each pass a chain of dependent increments;
 * earlier still, an inlined quicksort was 36% of its instructions. */
static void sort_rank(qry_topk_entry *e, uint32_t n, qry_topk_entry *tmp)
{
    if (n < 2)
        return;
    double lo = e[0].score, hi = lo;
    for (uint32_t i = 1; i < n; i++) {
        double x = e[i].score;
        lo = x < lo ? x : lo;
        hi = x > hi ? x : hi;
    }
    const double scale = hi > lo ? 65535.0 / (hi - lo) : 0.0;
    uint64_t *a = (uint64_t *)(tmp + n), *b = a + n;
    uint32_t count[2][256];
    memset(count, 0, sizeof count);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t key = (uint32_t)((hi - e[i].score) * scale);
        a[i] = (uint64_t)key << 32 | i;
        count[0][key & 255]++;
        count[1][key >> 8]++;
    }
    for (int pass = 0; pass < 2; pass++) {
        uint32_t *c = count[pass], shift = 32 + 8 * (uint32_t)pass;
        if (c[(a[0] >> shift) & 255] == n)
            continue;                   /* every key has this byte */
        uint32_t sum = 0;
        for (int v = 0; v < 256; v++) {
            uint32_t x = c[v];
            c[v] = sum;
            sum += x;
        }
        for (uint32_t i = 0; i < n; i++)
            b[c[(a[i] >> shift) & 255]++] = a[i];
        uint64_t *x = a;
        a = b;
        b = x;
    }
    for (uint32_t i = 0; i < n; i++)
        tmp[i] = e[(uint32_t)a[i]];
    memcpy(e, tmp, n * sizeof *e);
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i + 1, key = (uint32_t)(a[i] >> 32);
        while (j < n && (uint32_t)(a[j] >> 32) == key)
            j++;
        if (j - i > 1)
            insertion_sort(e, i, j);
        i = j;
    }
}

static void set_threshold(qry_topk *t)
{
    double m = t->e[0].score;
    for (uint32_t i = 1; i < t->k; i++)
        if (t->e[i].score < m)
            m = t->e[i].score;
    if (m > t->threshold)
        t->threshold = m;
}

int qry_topk_push(qry_topk *t, uint32_t doc, double score)
{
    if (!(score > t->threshold))
        return 0;
    if (t->k <= QRY_TOPK_HEAP_MAX)
        return heap_push(t, (qry_topk_entry){ score, doc });
    t->e[t->n].score = score;
    t->e[t->n].docid = doc;
    if (++t->n == t->k) {
        set_threshold(t);               /* the first k: a threshold at once */
    } else if (t->n == t->cap) {
        select_best(t->e, t->n, t->k, (double *)(t->e + t->cap));
        t->n = t->k;
        set_threshold(t);
    }
    return 1;
}

uint32_t qry_topk_finish(qry_topk *t, qry_hit *out)
{
    if (t->k <= QRY_TOPK_HEAP_MAX) {
        /* heap sort: repeatedly move the worst to the end */
        for (uint32_t n = t->n; n > 1; n--) {
            qry_topk_entry worst = t->e[0];
            sift_down(t->e, 0, n - 1, t->e[n - 1]);
            t->e[n - 1] = worst;
        }
    } else {
        if (t->n > t->k) {
            select_best(t->e, t->n, t->k, (double *)(t->e + t->cap));
            t->n = t->k;
        }
        sort_rank(t->e, t->n, t->e + t->k);         /* room: 2k + 24 */
    }
    for (uint32_t i = 0; i < t->n; i++) {
        out[i].docid = t->e[i].docid;
        out[i].score = (float)t->e[i].score;
    }
    return t->n;
}
