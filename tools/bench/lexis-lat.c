/*
 * lexis-lat — per-query latencies of lexis, for the latency plot of
 * tools/bench (`lexis bench` prints only the summary).
 *
 *     lexis-lat INDEX QUERIES.jsonl [-k K] [--algo NAME] [--stats]
 *     lexis-lat INDEX QUERIES.jsonl [-k K] [--algo NAME] --ab ROUNDS
 *
 * Same measurement as `lexis bench` (tools/cmd_bench.c): one engine and one
 * reader, a warm-up pass over every query, then a timed pass in which each
 * query is timed around qry_search only (analysis and ranking). Prints one
 * line per query, in file order: "<query id>\t<microseconds>\t<hits>";
 * --stats appends the query's terms found, postings examined and documents
 * fully scored and term-windows promoted (qry_result's counters), to see where
 * a query's time goes.
 *
 * --ab ROUNDS is an A/B of two code paths in one process, for a host whose
 * speed moves from one second to the next (tools/bench/README.md, Noise):
 * the experimenter defines `int lx_ab_flag;` in the library for the time
 * of the experiment and reads it (once, outside the loops) to choose the
 * old path (0) or the new one (1). The flag alternates from one query
 * to the next, and each pass over the queries starts with the other one,
 * so both paths see the same moments of the host; each query keeps its
 * fastest of ROUNDS runs with each flag. Prints "<id>\t<us with 0>\t<us
 * with 1>" per query, and the means per query class (the id's text before
 * ':') on stderr. Without the symbol it refuses (the weak reference below
 * stays null). A class beyond the 32nd is counted in the last one.
 * Uses only the public API (query/query.h, index/index.h).
 */
#include "../../query/query.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct q { char *id, *text; size_t len; } q;

extern int lx_ab_flag __attribute__((weak));

#define LAT_USAGE "usage: lexis-lat INDEX QUERIES.jsonl [-k K] [--algo NAME] [--stats | --ab ROUNDS]\n"

/* The --ab summary: each class's mean with the flag 0 and 1. */
static void ab_summary(const q *qs, size_t nq, const double (*best)[2])
{
    enum { MAXCLS = 32 };
    char cls[MAXCLS][32];
    double sum[MAXCLS + 1][2] = { { 0 } };
    size_t ncls = 0;
    for (size_t i = 0; i < nq; i++) {
        size_t n = strcspn(qs[i].id, ":");
        if (n > 31)
            n = 31;
        size_t c = 0;
        while (c < ncls && (strlen(cls[c]) != n || strncmp(cls[c], qs[i].id, n)))
            c++;
        if (c == ncls && ncls == MAXCLS)
            c = MAXCLS - 1;
        else if (c == ncls) {
            memcpy(cls[c], qs[i].id, n);
            cls[c][n] = 0;
            ncls++;
        }
        for (int f = 0; f < 2; f++) {
            sum[c][f] += best[i][f];
            sum[MAXCLS][f] += best[i][f];
        }
    }
    fprintf(stderr, "all: %.2f -> %.2f us (%+.1f%%)", sum[MAXCLS][0] / nq, sum[MAXCLS][1] / nq,
            100 * (sum[MAXCLS][1] / sum[MAXCLS][0] - 1));
    for (size_t c = 0; c < ncls; c++)
        fprintf(stderr, " | %s %+.1f%%", cls[c], 100 * (sum[c][1] / sum[c][0] - 1));
    fprintf(stderr, "\n");
}

/* One query timed around qry_search; its latency in microseconds, or -1
 * after printing why it failed. */
static double timed_search(qry_engine *e, idx_reader *r, const q *qq, const qry_params *p, qry_result *res)
{
    double t0 = lx_now();
    int rc = qry_search(e, r, qq->text, qq->len, p, res);
    double t = (lx_now() - t0) * 1e6;
    if (rc) {
        fprintf(stderr, "lexis-lat: query %s: %s\n", qq->id, lx_strerror(rc));
        return -1;
    }
    return t;
}

/* --ab: pass 0 is the warm-up. Then in pass r query i runs with the flag
 * (i + r) & 1: the flags alternate from one query to the next, as the
 * host's moments pass, while each query still follows another query as in
 * the bench (back to back with itself, the second run would find the
 * first's data in the caches). Returns the exit status. */
static int ab_run(qry_engine *e, idx_reader *r, const qry_params *p, const q *qs, size_t nq, long rounds)
{
    double (*best)[2] = malloc((nq + 1) * sizeof *best);
    if (!best) {
        fprintf(stderr, "lexis-lat: out of memory\n");
        return 1;
    }
    for (long pass = 0; pass <= 2 * rounds; pass++)
        for (size_t i = 0; i < nq; i++) {
            int flag = (int)((pass + (long)i) & 1);
            qry_result res;
            lx_ab_flag = flag;
            double t = timed_search(e, r, &qs[i], p, &res);
            if (t < 0) {
                free(best);
                return 1;
            }
            if (pass == 1 || pass == 2 || t < best[i][flag])
                best[i][flag] = t;
        }
    for (size_t i = 0; i < nq; i++)
        printf("%s\t%.3f\t%.3f\n", qs[i].id, best[i][0], best[i][1]);
    ab_summary(qs, nq, (const double(*)[2])best);
    free(best);
    return 0;
}

int main(int argc, char **argv)
{
    const char *index = NULL, *queries = NULL;
    qry_params p = qry_default_params();
    int stats = 0;
    long ab_rounds = 0;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-k") || !strcmp(argv[i], "--algo")) && i + 1 < argc) {
            if (argv[i][1] == 'k') {
                char *end;
                unsigned long k = strtoul(argv[++i], &end, 10);
                if (*end || !k || k > 100000) {
                    fprintf(stderr, "lexis-lat: bad -k %s\n", argv[i]);
                    return 2;
                }
                p.k = (uint32_t)k;
            } else if ((p.algo = qry_algo_parse(argv[++i])) < 0) {
                fprintf(stderr, "lexis-lat: unknown algorithm %s\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--stats")) {
            stats = 1;
        } else if (!strcmp(argv[i], "--ab") && i + 1 < argc) {
            char *end;
            ab_rounds = strtol(argv[++i], &end, 10);
            if (*end || ab_rounds < 1 || ab_rounds > 1000) {
                fprintf(stderr, "lexis-lat: bad --ab %s (rounds, 1 to 1000)\n", argv[i]);
                return 2;
            }
            if (!&lx_ab_flag) {
                fprintf(stderr, "lexis-lat: --ab needs `int lx_ab_flag;` defined in the library "
                                "(an experiment's switch; see the top of lexis-lat.c)\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf(LAT_USAGE
                   "Prints \"<id>\\t<microseconds>\\t<hits>\" per query (timed pass after a warm-up);\n"
                   "--stats adds \"\\t<terms>\\t<postings>\\t<scored>\\t<promoted>\".\n"
                   "--ab ROUNDS: 2 x ROUNDS passes, the library's lx_ab_flag alternating 0 and 1\n"
                   "from query to query, the fastest of ROUNDS each; prints \"<id>\\t<us with 0>\\t<us with 1>\".\n");
            return 0;
        } else if (!index)
            index = argv[i];
        else if (!queries)
            queries = argv[i];
        else {
            fprintf(stderr, "lexis-lat: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    if (stats && ab_rounds) {
        fprintf(stderr, "lexis-lat: --stats and --ab do not go together\n");
        return 2;
    }
    if (!index || !queries) {
        fprintf(stderr, LAT_USAGE);
        return 2;
    }
    FILE *f = fopen(queries, "r");
    if (!f) {
        perror(queries);
        return 1;
    }
    q *qs = NULL;
    size_t nq = 0, cap = 0, lcap = 0;
    char *line = NULL;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        json_t *o = json_loadb(line, (size_t)len, 0, NULL);
        json_t *id = o ? json_object_get(o, "_id") : NULL, *t = o ? json_object_get(o, "text") : NULL;
        if (id && t && json_is_string(t)) {
            if (nq == cap) {
                cap = cap ? 2 * cap : 1024;
                qs = realloc(qs, cap * sizeof *qs);
                if (!qs)
                    return 1;
            }
            char buf[32];
            if (json_is_integer(id))
                snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
            qs[nq].id = strdup(json_is_string(id) ? json_string_value(id) : buf);
            qs[nq].len = json_string_length(t);
            qs[nq].text = malloc(qs[nq].len + 1);
            memcpy(qs[nq].text, json_string_value(t), qs[nq].len + 1);
            nq++;
        }
        json_decref(o);
    }
    free(line);
    fclose(f);

    char err[512] = "";
    idx_env *env;
    int rc = idx_env_open(index, IDX_RDONLY, NULL, &env, err, sizeof err);
    if (rc) {
        fprintf(stderr, "lexis-lat: %s: %s\n", index, err[0] ? err : lx_strerror(rc));
        return 1;
    }
    qry_engine *e;
    idx_reader *r;
    if ((rc = qry_engine_open(env, &e)) || (rc = idx_reader_open(env, &r))) {
        fprintf(stderr, "lexis-lat: %s\n", lx_strerror(rc));
        return 1;
    }
    if (ab_rounds) {
        rc = ab_run(e, r, &p, qs, nq, ab_rounds);
        idx_reader_close(r);
        qry_engine_close(e);
        idx_env_close(env);
        return rc;
    }
    double *lat = malloc((nq + 1) * sizeof *lat);
    qry_result *last = malloc((nq + 1) * sizeof *last);   /* counters only: hits dangle */
    if (!lat || !last) {
        fprintf(stderr, "lexis-lat: out of memory\n");
        return 1;
    }
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < nq; i++) {
            if ((lat[i] = timed_search(e, r, &qs[i], &p, &last[i])) < 0)
                return 1;
        }
    for (size_t i = 0; i < nq; i++)
        if (stats)
            printf("%s\t%.3f\t%u\t%u\t%llu\t%llu\t%llu\n", qs[i].id, lat[i], last[i].n, last[i].nterms,
                   (unsigned long long)last[i].postings, (unsigned long long)last[i].scored,
                   (unsigned long long)last[i].promoted);
        else
            printf("%s\t%.3f\t%u\n", qs[i].id, lat[i], last[i].n);
    idx_reader_close(r);
    qry_engine_close(e);
    idx_env_close(env);
    return 0;
}
