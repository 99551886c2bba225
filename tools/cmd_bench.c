/* cmd_bench.c: `lexis bench`: query latency and throughput measured in
 * process, around the engine call only (analysis + ranking; not the lookup
 * of stored fields or printing), after a warm-up pass. Used by
 * tools/bench/ to compare with other engines. */
#include "cli.h"

#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench_job {
    idx_env *env;
    const cli_query *qs;
    size_t nq;
    qry_params qp;
    size_t next;                 /* shared cursor (threads mode) */
    pthread_mutex_t mu;
    int rc;
    uint64_t hits;
} bench_job;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *bench_worker(void *arg)
{
    bench_job *j = arg;
    qry_engine *q;
    idx_reader *r;
    int rc = qry_engine_open(j->env, &q);
    if (rc == 0 && (rc = idx_reader_open(j->env, &r)) != 0)
        qry_engine_close(q);
    if (rc) {
        j->rc = rc;
        return NULL;
    }
    uint64_t hits = 0;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        size_t i = j->next++;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->nq)
            break;
        qry_result res;
        if ((rc = qry_search(q, r, j->qs[i].text, j->qs[i].text_len, &j->qp, &res)) != 0) {
            j->rc = rc;
            break;
        }
        hits += res.n;
    }
    pthread_mutex_lock(&j->mu);
    j->hits += hits;
    pthread_mutex_unlock(&j->mu);
    idx_reader_close(r);
    qry_engine_close(q);
    return NULL;
}

int cmd_bench(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "queries", required_argument, 0, 'q' }, { "algo", required_argument, 0, 'a' },
        { "threads", required_argument, 0, 't' }, { "json", no_argument, 0, 'j' },
        { "repeat", required_argument, 0, 'r' }, { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    const char *queries = NULL;
    uint32_t threads = 0, repeat = 1;
    int json = 0, opt;
    qry_params qp = qry_default_params();
    optind = 1;
    while ((opt = getopt_long(argc, argv, "k:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'k': if (cli_parse_u32(optarg, &qp.k) || !qp.k || qp.k > 100000) goto bad; break;
        case 'q': queries = optarg; break;
        case 'a': if ((qp.algo = qry_algo_parse(optarg)) < 0) goto bad; break;
        case 't': if (cli_parse_u32(optarg, &threads) || threads > 256) goto bad; break;
        case 'r': if (cli_parse_u32(optarg, &repeat) || !repeat) goto bad; break;
        case 'j': json = 1; break;
        case 'h':
            printf("usage: lexis bench INDEX --queries Q.jsonl [-k 10] [--algo NAME] [--repeat N]\n"
                   "                   [--threads N] [--json]\n\n"
                   "Times each query around the engine call only (analysis and ranking),\n"
                   "single thread, after one warm-up pass; prints mean, p50, p99 and max in\n"
                   "microseconds. With --threads N it also runs all queries on N threads and\n"
                   "reports queries/s. --repeat runs the timed pass N times.\n");
            return CLI_OK;
        default: return CLI_USAGE;
        }
        continue;
    bad:
        fprintf(stderr, "lexis: bad value '%s' for %s\n", optarg, argv[optind - 1]);
        return CLI_USAGE;
    }
    if (argc - optind != 1 || !queries) {
        fprintf(stderr, "usage: lexis bench INDEX --queries Q.jsonl [options]\n");
        return CLI_USAGE;
    }
    cli_query *qs;
    size_t nq, skipped;
    int rc = cli_queries_load(queries, &qs, &nq, &skipped);
    if (rc)
        return rc;
    cli_searcher se;
    if ((rc = cli_searcher_open(argv[optind], &se)) != 0) {
        cli_queries_free(qs, nq);
        return rc;
    }
    idx_env *env = se.env;
    qry_engine *q = se.q;
    idx_reader *r = se.r;
    double *lat = malloc((nq * repeat + 1) * sizeof *lat);
    int out = CLI_OK;
    if (!lat) {
        out = cli_fail(LX_E_NOMEM, argv[optind], NULL);
        goto out_free;
    }
    uint64_t hits = 0, scored = 0;
    for (int pass = -1; pass < (int)repeat; pass++) {
        for (size_t i = 0; i < nq; i++) {
            qry_result res;
            double t0 = lx_now();
            rc = qry_search(q, r, qs[i].text, qs[i].text_len, &qp, &res);
            double t = lx_now() - t0;
            if (rc) {
                out = cli_fail(rc, "search", NULL);
                goto out_free;
            }
            if (pass >= 0) {
                lat[(size_t)pass * nq + i] = t * 1e6;
                hits += res.n;
                scored += res.scored;
            }
        }
    }
    size_t n = nq * repeat;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += lat[i];
    lx_sort(lat, n, sizeof *lat, cmp_double);
    double mean = n ? sum / (double)n : 0;
    double p50 = n ? lat[n / 2] : 0, p99 = n ? lat[(size_t)((double)(n - 1) * 0.99)] : 0;
    double mx = n ? lat[n - 1] : 0;

    double qps = 0;
    if (threads) {
        bench_job job = { env, qs, nq, qp, 0, PTHREAD_MUTEX_INITIALIZER, 0, 0 };
        pthread_t *th = malloc(threads * sizeof *th);
        double t0 = lx_now();
        for (uint32_t i = 0; i < threads; i++)
            pthread_create(&th[i], NULL, bench_worker, &job);
        for (uint32_t i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
        double el = lx_now() - t0;
        free(th);
        if (job.rc) {
            out = cli_fail(job.rc, "threads", NULL);
            goto out_free;
        }
        qps = (double)nq / el;
    }
    if (json)
        printf("{\"queries\":%zu,\"k\":%u,\"algo\":\"%s\",\"mean_us\":%.2f,\"p50_us\":%.2f,"
               "\"p99_us\":%.2f,\"max_us\":%.2f,\"qps_1thread\":%.1f,\"threads\":%u,\"qps\":%.1f,"
               "\"avg_hits\":%.2f,\"avg_scored\":%.1f}\n",
               nq, qp.k, qry_algo_name(qp.algo), mean, p50, p99, mx, mean > 0 ? 1e6 / mean : 0,
               threads, qps, n ? (double)hits / (double)n : 0, n ? (double)scored / (double)n : 0);
    else {
        printf("%zu queries x %u, k=%u, algo=%s: mean %.1f us, p50 %.1f us, p99 %.1f us, max %.1f us"
               " (%.0f queries/s on one thread); %.1f documents scored per query\n",
               nq, repeat, qp.k, qry_algo_name(qp.algo), mean, p50, p99, mx,
               mean > 0 ? 1e6 / mean : 0, n ? (double)scored / (double)n : 0);
        if (threads)
            printf("%u threads: %.0f queries/s\n", threads, qps);
    }
out_free:
    free(lat);
    cli_searcher_close(&se);
    cli_queries_free(qs, nq);
    return out;
}
