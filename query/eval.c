/* eval.c: retrieval measures with trec_eval's semantics.
 *
 * Judgments are kept as one array of (qid, docid, rel) sorted by qid then
 * docid, so a lookup is a binary search and a query's judgments are a run of
 * the array. The measures (trec_eval names in brackets):
 *   nDCG@10 [ndcg_cut.10]  sum_{i<=10} rel_i / log2(i+1), divided by the same
 *                          for the judgments sorted by rel (gain = rel)
 *   MAP     [map]          mean over relevant docs of precision at their rank,
 *                          unretrieved ones counting 0
 *   MRR@10  [recip_rank, cut at 10]
 *   P@10    [P_10]         relevant in the first 10 / 10
 *   R@100, R@1000 [recall_100, recall_1000]
 */
#include "query_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const qry_metric_names[QRY_M_COUNT] = {
    "ndcg@10", "map", "mrr@10", "p@10", "recall@100", "recall@1000",
};

typedef struct judgment {
    char *qid, *docid;
    int rel;
} judgment;

struct qry_qrels {
    judgment *j;
    size_t n, cap;
    char **queries;          /* judged qids in file order */
    size_t nq;
};

static int cmp_judgment(const void *a, const void *b)
{
    const judgment *x = a, *y = b;
    int c = strcmp(x->qid, y->qid);
    return c ? c : strcmp(x->docid, y->docid);
}

void qry_qrels_free(qry_qrels *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++) {
        free(q->j[i].qid);
        free(q->j[i].docid);
    }
    free(q->j);
    free(q->queries);      /* entries point into j[].qid */
    free(q);
}

static int qrels_add(qry_qrels *q, const char *qid, const char *docid, int rel)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 1024;
        judgment *j = realloc(q->j, cap * sizeof *j);
        if (!j)
            return LX_E_NOMEM;
        q->j = j;
        q->cap = cap;
    }
    judgment *j = &q->j[q->n];
    j->qid = strdup(qid);
    j->docid = strdup(docid);
    j->rel = rel;
    if (!j->qid || !j->docid) {
        free(j->qid);
        free(j->docid);
        return LX_E_NOMEM;
    }
    q->n++;
    return 0;
}

int qry_qrels_load(const char *path, qry_qrels **out, char *err, size_t errcap)
{
    int rc = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        rc = errno;
        snprintf(err, errcap, "%s: %s", path, strerror(rc));
        return rc;
    }
    qry_qrels *q = calloc(1, sizeof *q);
    if (!q) {
        fclose(f);
        return LX_E_NOMEM;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long lineno = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *fields[5];
        int nf = 0;
        for (char *s = strtok(line, " \t\r\n"); s && nf < 5; s = strtok(NULL, " \t\r\n"))
            fields[nf++] = s;
        if (nf == 0)
            continue;
        if (lineno == 1 && nf == 3 && !strcmp(fields[0], "query-id"))
            continue;                               /* BEIR header */
        const char *qid, *docid, *relstr;
        if (nf == 3) {
            qid = fields[0]; docid = fields[1]; relstr = fields[2];
        } else if (nf == 4) {
            qid = fields[0]; docid = fields[2]; relstr = fields[3];
        } else {
            snprintf(err, errcap, "%s:%lu: expected 3 (BEIR) or 4 (TREC) columns, found %d",
                     path, lineno, nf);
            rc = LX_E_INPUT;
            break;
        }
        char *end;
        long rel = strtol(relstr, &end, 10);
        if (*end || end == relstr) {
            snprintf(err, errcap, "%s:%lu: relevance '%s' is not an integer", path, lineno, relstr);
            rc = LX_E_INPUT;
            break;
        }
        if ((rc = qrels_add(q, qid, docid, (int)rel)) != 0)
            break;
    }
    free(line);
    fclose(f);
    if (rc) {
        qry_qrels_free(q);
        return rc;
    }
    /* Judged queries in file order, before sorting. */
    q->queries = malloc((q->n + 1) * sizeof *q->queries);
    if (!q->queries) {
        qry_qrels_free(q);
        return LX_E_NOMEM;
    }
    for (size_t i = 0; i < q->n; i++) {
        if (q->j[i].rel < 1)
            continue;
        /* Judgments come grouped by query: compare with the last one first. */
        int seen = q->nq && !strcmp(q->queries[q->nq - 1], q->j[i].qid);
        for (size_t k = q->nq; k-- > 0 && !seen;)
            seen = !strcmp(q->queries[k], q->j[i].qid);
        if (!seen)
            q->queries[q->nq++] = q->j[i].qid;
    }
    lx_sort(q->j, q->n, sizeof *q->j, cmp_judgment);
    /* queries[] stays valid: sorting moves the structs, not the strings. */
    *out = q;
    return 0;
}

const char *const *qry_qrels_queries(const qry_qrels *q, size_t *n)
{
    *n = q->nq;
    return (const char *const *)q->queries;
}

static const judgment *qrels_find(const qry_qrels *q, const char *qid, const char *docid)
{
    judgment key = { (char *)qid, (char *)docid, 0 };
    return bsearch(&key, q->j, q->n, sizeof *q->j, cmp_judgment);
}

int qry_qrels_get(const qry_qrels *q, const char *qid, const char *docid)
{
    const judgment *j = qrels_find(q, qid, docid);
    return j ? j->rel : 0;
}

/* trec_eval's order: score descending, then docid descending. */
static int cmp_ranked(const void *a, const void *b)
{
    const qry_ranked *x = a, *y = b;
    if (x->score > y->score) return -1;
    if (x->score < y->score) return 1;
    return strcmp(y->docid, x->docid);
}

static int cmp_int_desc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

int qry_eval_query(const qry_qrels *q, const char *qid, qry_ranked *docs, size_t n,
                   double m[QRY_M_COUNT])
{
    /* The query's judgments: a run of the sorted array. */
    size_t lo = 0, hi = q->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(q->j[mid].qid, qid) < 0) lo = mid + 1; else hi = mid;
    }
    size_t first = lo, last = lo;
    while (last < q->n && !strcmp(q->j[last].qid, qid))
        last++;
    int gains[10];
    size_t ngains = 0, num_rel = 0;
    for (size_t i = first; i < last; i++) {
        if (q->j[i].rel >= 1) {
            num_rel++;
        }
    }
    for (size_t i = 0; i < QRY_M_COUNT; i++)
        m[i] = 0;
    if (num_rel == 0)
        return LX_E_NOTFOUND;
    /* Ideal gains: the 10 largest judgments. */
    int *all = malloc((last - first) * sizeof *all);
    if (!all)
        return LX_E_NOMEM;
    size_t na = 0;
    for (size_t i = first; i < last; i++)
        if (q->j[i].rel > 0)
            all[na++] = q->j[i].rel;
    lx_sort(all, na, sizeof *all, cmp_int_desc);
    for (size_t i = 0; i < na && i < 10; i++)
        gains[ngains++] = all[i];
    free(all);
    double idcg = 0;
    for (size_t i = 0; i < ngains; i++)
        idcg += gains[i] / log2((double)i + 2);

    lx_sort(docs, n, sizeof *docs, cmp_ranked);
    double dcg = 0, sum_prec = 0;
    size_t rel_seen = 0, rel10 = 0, rel100 = 0, rel1000 = 0;
    for (size_t i = 0; i < n; i++) {
        const judgment *j = qrels_find(q, qid, docs[i].docid);
        int rel = j ? j->rel : 0;
        if (i < 10 && rel > 0)
            dcg += rel / log2((double)i + 2);
        if (rel >= 1) {
            rel_seen++;
            sum_prec += (double)rel_seen / (double)(i + 1);
            if (i < 10) {
                rel10++;
                if (m[QRY_M_MRR10] == 0)
                    m[QRY_M_MRR10] = 1.0 / (double)(i + 1);
            }
            if (i < 100) rel100++;
            if (i < 1000) rel1000++;
        }
    }
    m[QRY_M_NDCG10] = idcg > 0 ? dcg / idcg : 0;
    m[QRY_M_MAP] = sum_prec / (double)num_rel;
    m[QRY_M_P10] = (double)rel10 / 10.0;
    m[QRY_M_R100] = (double)rel100 / (double)num_rel;
    m[QRY_M_R1000] = (double)rel1000 / (double)num_rel;
    return 0;
}
