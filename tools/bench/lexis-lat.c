/*
 * lexis-lat — per-query latencies of lexis, for the latency plot of
 * tools/bench (`lexis bench` prints only the summary).
 *
 *     lexis-lat INDEX QUERIES.jsonl [-k K] [--algo NAME] [--stats]
 *
 * Same measurement as `lexis bench` (tools/cmd_bench.c): one engine and one
 * reader, a warm-up pass over every query, then a timed pass in which each
 * query is timed around qry_search only (analysis and ranking). Prints one
 * line per query, in file order: "<query id>\t<microseconds>\t<hits>";
 * --stats appends the query's terms found, postings examined and documents
 * fully scored and term-windows promoted (qry_result's counters), to see where
 * a query's time goes.
 * Uses only the public API (query/query.h, index/index.h).
 */
#include "../../query/query.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct q { char *id, *text; size_t len; } q;

int main(int argc, char **argv)
{
    const char *index = NULL, *queries = NULL;
    qry_params p = qry_default_params();
    int stats = 0;
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
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: lexis-lat INDEX QUERIES.jsonl [-k K] [--algo NAME] [--stats]\n"
                   "Prints \"<id>\\t<microseconds>\\t<hits>\" per query (timed pass after a warm-up);\n"
                   "--stats adds \"\\t<terms>\\t<postings>\\t<scored>\\t<promoted>\".\n");
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
    if (!index || !queries) {
        fprintf(stderr, "usage: lexis-lat INDEX QUERIES.jsonl [-k K] [--algo NAME] [--stats]\n");
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
    double *lat = malloc((nq + 1) * sizeof *lat);
    qry_result *last = malloc((nq + 1) * sizeof *last);   /* counters only: hits dangle */
    if (!lat || !last) {
        fprintf(stderr, "lexis-lat: out of memory\n");
        return 1;
    }
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < nq; i++) {
            qry_result res;
            double t0 = lx_now();
            rc = qry_search(e, r, qs[i].text, qs[i].len, &p, &res);
            double t = lx_now() - t0;
            if (rc) {
                fprintf(stderr, "lexis-lat: query %s: %s\n", qs[i].id, lx_strerror(rc));
                return 1;
            }
            lat[i] = t * 1e6;
            last[i] = res;
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
