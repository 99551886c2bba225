/* cmd_search.c: `lexis search` (one query, readable or JSON) and `lexis run`
 * (a file of queries, TREC run format for trec_eval). */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

typedef struct search_opts {
    qry_params qp;
    int json;
    const char *tag;
    const char *queries;
    cli_prf prf;
} search_opts;

enum { OPT_ALGO = 256, OPT_AND, OPT_K1, OPT_B, OPT_JSON, OPT_QUERIES, OPT_TAG };

static const struct option search_longopts[] = {
    { "k", required_argument, 0, 'k' },
    { "algo", required_argument, 0, OPT_ALGO },
    { "and", no_argument, 0, OPT_AND },
    { "k1", required_argument, 0, OPT_K1 },
    { "b", required_argument, 0, OPT_B },
    { "json", no_argument, 0, OPT_JSON },
    { "queries", required_argument, 0, OPT_QUERIES },
    { "tag", required_argument, 0, OPT_TAG },
    { "help", no_argument, 0, 'h' },
    CLI_PRF_LONGOPTS,
    { 0, 0, 0, 0 },
};

static const char search_common_help[] =
    "  -k N               number of hits (default %u; at most 100000)\n"
    "  --algo NAME        auto (default: the fastest exact algorithm), exhaustive,\n"
    "                     maxscore, wand, bmw: all return the same exact top k\n"
    "  --and              every query term must match (conjunctive)\n"
    "  --k1 X  --b Y      BM25 parameters for this query (default: the index's)\n"
    CLI_PRF_HELP;

static void search_help(FILE *f, int is_run)
{
    if (is_run) {
        fprintf(f, "usage: lexis run INDEX --queries Q.jsonl [options] > run.trec\n\n"
                   "Ranks each query {\"_id\",\"text\"} of Q.jsonl and prints TREC run lines:\n"
                   "  QID Q0 DOCID RANK SCORE TAG\n\n"
                   "  --queries FILE     JSON-lines queries; - reads standard input\n"
                   "  --tag NAME         run tag (default lexis)\n");
        fprintf(f, search_common_help, 1000u);
    } else {
        fprintf(f, "usage: lexis search INDEX \"QUERY\" [options]\n\n"
                   "Prints the best documents for QUERY with their BM25 scores.\n\n"
                   "  --json             one JSON object: {query, took_ms, hits:[{rank,id,score,title}]}\n");
        fprintf(f, search_common_help, 10u);
    }
}

static int parse_search_opts(int argc, char **argv, int is_run, search_opts *o)
{
    int opt, li;
    o->qp = qry_default_params();
    if (is_run)
        o->qp.k = 1000;
    o->tag = "lexis";
    cli_prf_init(&o->prf);
    optind = 1;
    while ((li = -1, opt = getopt_long(argc, argv, "k:h", search_longopts, &li)) != -1) {
        switch (opt) {
        case 'k':
            if (cli_parse_u32(optarg, &o->qp.k) || o->qp.k == 0 || o->qp.k > 100000)
                goto bad_value;
            break;
        case OPT_ALGO:
            if ((o->qp.algo = qry_algo_parse(optarg)) < 0) goto bad_value;
            break;
        case OPT_AND: o->qp.conjunctive = 1; break;
        case OPT_K1: if (cli_parse_float(optarg, &o->qp.k1) || o->qp.k1 < 0) goto bad_value; break;
        case OPT_B:
            if (cli_parse_float(optarg, &o->qp.b) || o->qp.b < 0 || o->qp.b > 1) goto bad_value;
            break;
        case OPT_JSON: o->json = 1; break;
        case OPT_QUERIES: o->queries = optarg; break;
        case OPT_TAG: o->tag = optarg; break;
        case 'h': search_help(stdout, is_run); return -1;
        default:
            switch (cli_prf_option(&o->prf, opt, optarg)) {
            case 1: continue;
            case -1: goto bad_value;
            }
            search_help(stderr, is_run);
            return CLI_USAGE;
        }
        continue;
    bad_value:
        /* Name the option as typed: argv[optind - 1] is its value when the
         * value is a separate argument. */
        if (li >= 0)
            fprintf(stderr, "lexis: bad value '%s' for --%s\n", optarg, search_longopts[li].name);
        else
            fprintf(stderr, "lexis: bad value '%s' for -%c\n", optarg, opt);
        return CLI_USAGE;
    }
    return 0;
}

static void print_snippet(const char *s, size_t len, size_t max)
{
    size_t n = len < max ? len : max;
    /* Do not cut a UTF-8 sequence in half. */
    while (n < len && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    for (size_t i = 0; i < n; i++)
        putchar(s[i] == '\n' || s[i] == '\t' ? ' ' : s[i]);
    if (n < len)
        fputs("...", stdout);
}

int cmd_search(int argc, char **argv)
{
    search_opts o = { 0 };
    int rc = parse_search_opts(argc, argv, 0, &o);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    if (argc - optind != 2) {
        search_help(stderr, 0);
        return CLI_USAGE;
    }
    const char *query = argv[optind + 1];
    cli_searcher se;
    if ((rc = cli_searcher_open(argv[optind], &se)) != 0)
        return rc;
    qry_engine *q = se.q;
    idx_reader *r = se.r;
    qry_result res;
    int out = CLI_OK;
    double t0 = lx_now();
    rc = cli_prf_search(&o.prf, q, r, query, strlen(query), &o.qp, &res);
    double took = (lx_now() - t0) * 1000;
    if (rc) {
        out = cli_fail(rc, "search", NULL);
        goto out_close;
    }
    if (o.json) {
        printf("{\"query\":");
        cli_json_string(stdout, query, strlen(query));
        printf(",\"took_ms\":%.3f,\"algo\":\"%s\",\"hits\":[", took, qry_algo_name(res.algo));
    }
    for (uint32_t i = 0; i < res.n; i++) {
        idx_doc d;
        if ((rc = idx_reader_doc(r, res.hits[i].docid, &d)) != 0) {
            out = cli_fail(rc, "reading a hit", NULL);
            goto out_close;
        }
        size_t tl, xl;
        const char *title = cli_doc_field(&d, "title", &tl);
        const char *text = cli_doc_field(&d, "text", &xl);
        if (o.json) {
            printf("%s{\"rank\":%u,\"id\":", i ? "," : "", i + 1);
            cli_json_string(stdout, d.id, d.id_len);
            printf(",\"score\":%.6f,\"title\":", res.hits[i].score);
            cli_json_string(stdout, title, tl);
            printf("}");
        } else {
            printf("%2u. %.*s  %.4f", i + 1, (int)d.id_len, d.id, res.hits[i].score);
            if (tl) {
                fputs("  ", stdout);
                print_snippet(title, tl, 100);
            }
            putchar('\n');
            if (xl) {
                fputs("    ", stdout);
                print_snippet(text, xl, 160);
                putchar('\n');
            }
        }
    }
    if (o.json)
        printf("]}\n");
    else if (res.n == 0)
        printf("no documents match\n");
    else
        printf("(%u hits in %.3f ms)\n", res.n, took);
out_close:
    cli_searcher_close(&se);
    return out;
}

int cmd_run(int argc, char **argv)
{
    search_opts o = { 0 };
    int rc = parse_search_opts(argc, argv, 1, &o);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    if (argc - optind != 1 || !o.queries) {
        search_help(stderr, 1);
        return CLI_USAGE;
    }
    cli_query *qs;
    size_t nq, skipped;
    if ((rc = cli_queries_load(o.queries, &qs, &nq, &skipped)) != 0)
        return rc;
    cli_searcher se;
    if ((rc = cli_searcher_open(argv[optind], &se)) != 0) {
        cli_queries_free(qs, nq);
        return rc;
    }
    qry_engine *q = se.q;
    idx_reader *r = se.r;
    int out = CLI_OK;
    double t0 = lx_now();
    for (size_t i = 0; i < nq; i++) {
        qry_result res;
        rc = cli_prf_search(&o.prf, q, r, qs[i].text, qs[i].text_len, &o.qp, &res);
        if (rc) {
            out = cli_fail(rc, "search", NULL);
            goto out_close;
        }
        for (uint32_t h = 0; h < res.n; h++) {
            const char *id;
            size_t id_len;
            if ((rc = idx_reader_doc_id(r, res.hits[h].docid, &id, &id_len)) != 0) {
                out = cli_fail(rc, "reading a hit", NULL);
                goto out_close;
            }
            printf("%s Q0 %.*s %u %.6f %s\n", qs[i].id, (int)id_len, id, h + 1,
                   res.hits[h].score, o.tag);
        }
    }
    fprintf(stderr, "lexis: %zu queries in %.2f s\n", nq, lx_now() - t0);
    if (skipped)
        out = CLI_PARTIAL;
out_close:
    cli_queries_free(qs, nq);
    cli_searcher_close(&se);
    return out;
}
