/* test_eval.c: trec_eval-exact measures (query/eval.c) on hand-computed
 * cases: graded gains, ties, unjudged and non-relevant documents, empty
 * rankings, queries without relevant judgments, both qrels formats. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../query/query.h"

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/lexis-test-qrels-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static qry_qrels *load(const char *text)
{
    char *path = write_tmp(text);
    qry_qrels *q;
    char err[256];
    int rc = qry_qrels_load(path, &q, err, sizeof err);
    unlink(path);
    free(path);
    if (rc)
        fail_msg("load: %s", err);
    return q;
}

static void test_graded_with_ties(void **state)
{
    (void)state;
    qry_qrels *q = load("q1 0 d1 2\nq1 0 d2 1\nq1 0 d3 0\nq1 0 d4 1\n"
                        "q2 0 d9 1\nq3 0 d5 0\n");
    size_t n;
    const char *const *judged = qry_qrels_queries(q, &n);
    assert_int_equal(n, 2);                 /* q3 has no relevant document */
    assert_string_equal(judged[0], "q1");
    assert_string_equal(judged[1], "q2");
    assert_int_equal(qry_qrels_get(q, "q1", "d1"), 2);
    assert_int_equal(qry_qrels_get(q, "q1", "dX"), 0);

    /* d1 and d2 tie: trec_eval puts the larger id first (d2 at rank 2). */
    qry_ranked run[] = {
        { "d1", 2.0 }, { "d4", 0.5 }, { "dA", 3.0 }, { "d2", 2.0 }, { "d5", 1.0 },
    };
    double m[QRY_M_COUNT];
    assert_int_equal(qry_eval_query(q, "q1", run, 5, m), 0);
    assert_string_equal(run[1].docid, "d2");
    assert_string_equal(run[2].docid, "d1");
    /* ranks: dA(-) d2(1) d1(2) d5(-) d4(1) */
    double dcg = 1 / log2(3) + 2 / log2(4) + 1 / log2(6);
    double idcg = 2 + 1 / log2(3) + 1 / log2(4);
    assert_float_equal(m[QRY_M_NDCG10], dcg / idcg, 1e-12);
    assert_float_equal(m[QRY_M_MAP], (1.0 / 2 + 2.0 / 3 + 3.0 / 5) / 3, 1e-12);
    assert_float_equal(m[QRY_M_MRR10], 0.5, 1e-12);
    assert_float_equal(m[QRY_M_P10], 0.3, 1e-12);
    assert_float_equal(m[QRY_M_R100], 1.0, 1e-12);
    assert_float_equal(m[QRY_M_R1000], 1.0, 1e-12);

    /* An empty ranking scores 0 everywhere. */
    assert_int_equal(qry_eval_query(q, "q2", NULL, 0, m), 0);
    for (int i = 0; i < QRY_M_COUNT; i++)
        assert_float_equal(m[i], 0.0, 0);
    /* No relevant judgment: not a judged query. */
    qry_ranked one[] = { { "d5", 1.0 } };
    assert_int_equal(qry_eval_query(q, "q3", one, 1, m), LX_E_NOTFOUND);
    assert_int_equal(qry_eval_query(q, "nope", one, 1, m), LX_E_NOTFOUND);
    qry_qrels_free(q);
}

static void test_cutoffs(void **state)
{
    (void)state;
    /* 150 relevant documents r0..r149, retrieved at ranks 11..160 after 10
     * non-relevant ones: nothing in the top 10, 90 in the top 100. */
    char *text = malloc(8192);
    size_t off = (size_t)sprintf(text, "query-id\tcorpus-id\tscore\n");
    for (int i = 0; i < 150; i++)
        off += (size_t)sprintf(text + off, "q\tr%03d\t1\n", i);
    qry_qrels *q = load(text);
    free(text);
    qry_ranked run[160];
    char ids[160][8];
    for (int i = 0; i < 160; i++) {
        if (i < 10) snprintf(ids[i], sizeof ids[i], "n%03d", i);
        else snprintf(ids[i], sizeof ids[i], "r%03d", i - 10);
        run[i].docid = ids[i];
        run[i].score = 1000.0 - i;
    }
    double m[QRY_M_COUNT];
    assert_int_equal(qry_eval_query(q, "q", run, 160, m), 0);
    assert_float_equal(m[QRY_M_NDCG10], 0, 0);
    assert_float_equal(m[QRY_M_MRR10], 0, 0);
    assert_float_equal(m[QRY_M_P10], 0, 0);
    assert_float_equal(m[QRY_M_R100], 90.0 / 150, 1e-12);
    assert_float_equal(m[QRY_M_R1000], 1.0, 1e-12);
    double ap = 0;
    for (int k = 1; k <= 150; k++)
        ap += (double)k / (double)(k + 10);
    assert_float_equal(m[QRY_M_MAP], ap / 150, 1e-12);
    qry_qrels_free(q);
}

static void test_bad_qrels(void **state)
{
    (void)state;
    char *path = write_tmp("q 0 d 1\nq d\n");
    qry_qrels *q;
    char err[256];
    assert_int_equal(qry_qrels_load(path, &q, err, sizeof err), LX_E_INPUT);
    assert_non_null(strstr(err, ":2:"));
    unlink(path);
    free(path);
    path = write_tmp("q 0 d high\n");
    assert_int_equal(qry_qrels_load(path, &q, err, sizeof err), LX_E_INPUT);
    assert_non_null(strstr(err, "not an integer"));
    unlink(path);
    free(path);
    assert_int_not_equal(qry_qrels_load("/nonexistent/qrels", &q, err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graded_with_ties),
        cmocka_unit_test(test_cutoffs),
        cmocka_unit_test(test_bad_qrels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
