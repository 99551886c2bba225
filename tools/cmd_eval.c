/* cmd_eval.c: `lexis eval`: measure a ranking against relevance judgments,
 * either by running the judged queries on an index or from a TREC run file.
 * Measures and their trec_eval semantics are described in query/query.h. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void eval_help(FILE *f)
{
    fprintf(f,
        "usage: lexis eval INDEX --queries Q.jsonl --qrels QRELS [options]\n"
        "       lexis eval --run RUN.trec --qrels QRELS [--json] [--per-query]\n\n"
        "Measures nDCG@10, MAP, MRR@10, P@10, Recall@100 and Recall@1000 as\n"
        "trec_eval does (ndcg_cut.10, map, recip_rank cut at 10, P_10, recall_100,\n"
        "recall_1000): relevance >= 1, gains = judgments, ties ordered by document\n"
        "id descending, averaged over the judged queries (a judged query missing\n"
        "from the run scores 0). QRELS: BEIR tsv with a header, or TREC qrels.\n\n"
        "  --queries FILE     JSON-lines queries {\"_id\",\"text\"}; only judged ones run\n"
        "  --qrels FILE       relevance judgments\n"
        "  --run FILE         evaluate a TREC run file instead of an index\n"
        "  -k N               documents retrieved per query (default 1000)\n"
        "  --json             one JSON object instead of a table\n"
        "  --per-query        one line (or object) per query as well\n"
        "  --algo NAME        as for search (all give the same ranking)\n"
        "  --k1 X  --b Y      BM25 parameters (default: the index's)\n"
        CLI_PRF_HELP);
}

enum { OPT_QUERIES = 256, OPT_QRELS, OPT_RUN, OPT_JSON, OPT_PERQ, OPT_ALGO, OPT_K1, OPT_B };

static const struct option eval_longopts[] = {
    { "queries", required_argument, 0, OPT_QUERIES },
    { "qrels", required_argument, 0, OPT_QRELS },
    { "run", required_argument, 0, OPT_RUN },
    { "json", no_argument, 0, OPT_JSON },
    { "per-query", no_argument, 0, OPT_PERQ },
    { "algo", required_argument, 0, OPT_ALGO },
    { "k1", required_argument, 0, OPT_K1 },
    { "b", required_argument, 0, OPT_B },
    { "k", required_argument, 0, 'k' },
    { "help", no_argument, 0, 'h' },
    CLI_PRF_LONGOPTS,
    { 0, 0, 0, 0 },
};

/* One query's ranking while it is being measured. */
typedef struct ranking {
    qry_ranked *docs;
    char **ids;            /* owned copies */
    size_t n, cap;
} ranking;

static int ranking_add(ranking *r, const char *id, size_t len, double score)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        qry_ranked *d = realloc(r->docs, cap * sizeof *d);
        if (!d) return LX_E_NOMEM;
        r->docs = d;
        char **ids = realloc(r->ids, cap * sizeof *ids);
        if (!ids) return LX_E_NOMEM;
        r->ids = ids;
        r->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return LX_E_NOMEM;
    memcpy(c, id, len);
    c[len] = 0;
    r->ids[r->n] = c;
    r->docs[r->n].docid = c;
    r->docs[r->n].score = score;
    r->n++;
    return 0;
}

static void ranking_clear(ranking *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->ids[i]);
    r->n = 0;
}

static void ranking_free(ranking *r)
{
    ranking_clear(r);
    free(r->docs);
    free(r->ids);
}

typedef struct totals {
    double sum[QRY_M_COUNT];
    size_t n;
    int json, per_query;
    int first_pq;
} totals;

static void report_query(totals *t, const char *qid, const double m[QRY_M_COUNT])
{
    for (int i = 0; i < QRY_M_COUNT; i++)
        t->sum[i] += m[i];
    t->n++;
    if (!t->per_query)
        return;
    if (t->json) {
        printf("%s{\"query\":", t->first_pq ? "" : ",");
        cli_json_string(stdout, qid, strlen(qid));
        for (int i = 0; i < QRY_M_COUNT; i++)
            printf(",\"%s\":%.4f", qry_metric_names[i], m[i]);
        printf("}");
        t->first_pq = 0;
    } else {
        printf("%-12s", qid);
        for (int i = 0; i < QRY_M_COUNT; i++)
            printf(" %11.4f", m[i]);
        printf("\n");
    }
}

static void report_header(totals *t)
{
    if (t->json) {
        printf("{");
        if (t->per_query)
            printf("\"per_query\":[");
        t->first_pq = 1;
        return;
    }
    printf("%-12s", "query");
    for (int i = 0; i < QRY_M_COUNT; i++)
        printf(" %11s", qry_metric_names[i]);
    printf("\n");
}

static void report_summary(totals *t, size_t judged)
{
    double n = judged ? (double)judged : 1;
    if (t->json) {
        if (t->per_query)
            printf("],");
        printf("\"queries\":%zu", judged);
        for (int i = 0; i < QRY_M_COUNT; i++)
            printf(",\"%s\":%.4f", qry_metric_names[i], t->sum[i] / n);
        printf("}\n");
        return;
    }
    printf("%-12s", "all");
    for (int i = 0; i < QRY_M_COUNT; i++)
        printf(" %11.4f", t->sum[i] / n);
    printf("\n(%zu judged queries)\n", judged);
}

static int eval_run_file(const char *path, const qry_qrels *qrels, totals *t)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return CLI_ERROR;
    }
    /* Group the run by query, keeping the order in which queries appear. */
    size_t nq;
    const char *const *judged = qry_qrels_queries(qrels, &nq);
    ranking *per = calloc(nq ? nq : 1, sizeof *per);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long lineno = 0;
    int out = CLI_OK;
    while (per && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *fld[7];
        int nf = 0;
        for (char *s = strtok(line, " \t\r\n"); s && nf < 7; s = strtok(NULL, " \t\r\n"))
            fld[nf++] = s;
        if (nf == 0)
            continue;
        char *end;
        double score = nf == 6 ? strtod(fld[4], &end) : 0;
        if (nf != 6 || *end) {
            fprintf(stderr, "lexis: %s:%lu: expected 'QID Q0 DOCID RANK SCORE TAG'\n", path, lineno);
            out = CLI_ERROR;
            break;
        }
        for (size_t i = 0; i < nq; i++) {
            if (!strcmp(judged[i], fld[0])) {
                if (ranking_add(&per[i], fld[2], strlen(fld[2]), score)) {
                    out = CLI_ERROR;
                }
                break;
            }
        }
    }
    free(line);
    fclose(f);
    if (!per)
        return CLI_ERROR;
    if (out == CLI_OK) {
        report_header(t);
        for (size_t i = 0; i < nq; i++) {
            double m[QRY_M_COUNT];
            qry_eval_query(qrels, judged[i], per[i].docs, per[i].n, m);
            report_query(t, judged[i], m);
        }
        report_summary(t, nq);
    }
    for (size_t i = 0; i < nq; i++)
        ranking_free(&per[i]);
    free(per);
    return out;
}

int cmd_eval(int argc, char **argv)
{
    const char *queries = NULL, *qrels_path = NULL, *run = NULL;
    qry_params qp = qry_default_params();
    qp.k = 1000;
    totals t = { 0 };
    cli_prf prf;
    cli_prf_init(&prf);
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "k:h", eval_longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_QUERIES: queries = optarg; break;
        case OPT_QRELS: qrels_path = optarg; break;
        case OPT_RUN: run = optarg; break;
        case OPT_JSON: t.json = 1; break;
        case OPT_PERQ: t.per_query = 1; break;
        case OPT_ALGO: if ((qp.algo = qry_algo_parse(optarg)) < 0) goto bad_value; break;
        case OPT_K1: if (cli_parse_float(optarg, &qp.k1) || qp.k1 < 0) goto bad_value; break;
        case OPT_B: if (cli_parse_float(optarg, &qp.b) || qp.b < 0 || qp.b > 1) goto bad_value; break;
        case 'k': if (cli_parse_u32(optarg, &qp.k) || !qp.k || qp.k > 100000) goto bad_value; break;
        case 'h': eval_help(stdout); return CLI_OK;
        default:
            switch (cli_prf_option(&prf, opt, optarg)) {
            case 1: continue;
            case -1: goto bad_value;
            }
            eval_help(stderr);
            return CLI_USAGE;
        }
        continue;
    bad_value:
        fprintf(stderr, "lexis: bad value '%s' for %s\n", optarg, argv[optind - 1]);
        return CLI_USAGE;
    }
    int npos = argc - optind;
    if (!qrels_path || (run ? npos != 0 : npos != 1 || !queries)) {
        eval_help(stderr);
        return CLI_USAGE;
    }
    char err[512];
    qry_qrels *qrels;
    int rc = qry_qrels_load(qrels_path, &qrels, err, sizeof err);
    if (rc) {
        fprintf(stderr, "lexis: %s\n", rc == LX_E_INPUT || rc > 0 ? err : lx_strerror(rc));
        return CLI_ERROR;
    }
    if (run) {
        rc = eval_run_file(run, qrels, &t);
        qry_qrels_free(qrels);
        return rc;
    }

    cli_query *qs = NULL;
    size_t nq = 0, skipped;
    cli_searcher se = { 0 };
    ranking rk = { 0 };
    int out = CLI_OK;
    if ((rc = cli_queries_load(queries, &qs, &nq, &skipped)) != 0) {
        qry_qrels_free(qrels);
        return rc;
    }
    if ((out = cli_searcher_open(argv[optind], &se)) != 0)
        goto out_free;
    qry_engine *q = se.q;
    idx_reader *r = se.r;
    size_t njudged;
    const char *const *judged = qry_qrels_queries(qrels, &njudged);
    report_header(&t);
    for (size_t j = 0; j < njudged; j++) {
        const cli_query *cq = NULL;
        for (size_t i = 0; i < nq && !cq; i++)
            if (!strcmp(qs[i].id, judged[j]))
                cq = &qs[i];
        double m[QRY_M_COUNT];
        ranking_clear(&rk);
        if (cq) {
            qry_result res;
            if ((rc = cli_prf_search(&prf, q, r, cq->text, cq->text_len, &qp, &res)) != 0) {
                out = cli_fail(rc, "search", NULL);
                goto out_free;
            }
            for (uint32_t h = 0; h < res.n; h++) {
                const char *id;
                size_t id_len;
                if ((rc = idx_reader_doc_id(r, res.hits[h].docid, &id, &id_len)) != 0) {
                    out = cli_fail(rc, "reading a hit", NULL);
                    goto out_free;
                }
                /* The score a TREC run would carry (printed with 6 decimals),
                 * so that ties resolve exactly as trec_eval would see them. */
                char buf[32];
                snprintf(buf, sizeof buf, "%.6f", res.hits[h].score);
                if (ranking_add(&rk, id, id_len, strtod(buf, NULL))) {
                    out = cli_fail(LX_E_NOMEM, "eval", NULL);
                    goto out_free;
                }
            }
        } else {
            fprintf(stderr, "lexis: judged query '%s' is not in %s (scores 0)\n", judged[j], queries);
        }
        qry_eval_query(qrels, judged[j], rk.docs, rk.n, m);
        report_query(&t, judged[j], m);
    }
    report_summary(&t, njudged);
out_free:
    ranking_free(&rk);
    cli_searcher_close(&se);
    cli_queries_free(qs, nq);
    qry_qrels_free(qrels);
    return out;
}
