/* cmd_inspect.c: `lexis inspect` (settings and statistics) and `lexis check`
 * (verify every checksum and the structure). */
#include "cli.h"

#include <string.h>

int cmd_inspect(int argc, char **argv)
{
    int json = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: lexis inspect INDEX [--json]\n\n"
                   "Prints the index's format, analyzer, fields, BM25 settings and sizes.\n");
            return CLI_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!path && argv[i][0] != '-') {
            path = argv[i];
        } else {
            fprintf(stderr, "usage: lexis inspect INDEX [--json]\n");
            return CLI_USAGE;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: lexis inspect INDEX [--json]\n");
        return CLI_USAGE;
    }
    idx_env *env;
    int rc = cli_open_index(path, 1, &env);
    if (rc)
        return rc;
    idx_inspect_info in;
    if ((rc = idx_inspect(env, &in)) != 0) {
        int out = cli_fail(rc, path, NULL);
        idx_env_close(env);
        return out;
    }
    const idx_stats *s = &in.stats;
    double bpp = in.postings ? (double)in.postings_bytes / (double)in.postings : 0;
    if (json) {
        printf("{\"format_version\":%u,\"analyzer\":", in.format_version);
        cli_json_string(stdout, idx_env_analyzer_desc(env), strlen(idx_env_analyzer_desc(env)));
        printf(",\"fields\":");
        cli_json_string(stdout, idx_env_fields(env), strlen(idx_env_fields(env)));
        printf(",\"k1\":%g,\"b\":%g,\"documents\":%llu,\"deleted\":%llu,\"terms\":%llu,"
               "\"avgdl\":%.4f,\"segments\":%u,\"postings\":%llu,\"postings_bytes\":%llu,"
               "\"docs_bytes\":%llu,\"file_bytes\":%llu}\n",
               s->k1, s->b, (unsigned long long)s->ndocs, (unsigned long long)s->ndeleted,
               (unsigned long long)s->nterms, s->avgdl, s->nsegments,
               (unsigned long long)in.postings, (unsigned long long)in.postings_bytes,
               (unsigned long long)in.docs_bytes, (unsigned long long)in.file_bytes);
    } else {
        printf("index         %s\n", path);
        printf("format        %u\n", in.format_version);
        printf("analyzer      %s\n", idx_env_analyzer_desc(env));
        printf("fields        %s\n", idx_env_fields(env));
        printf("bm25          k1=%g b=%g\n", s->k1, s->b);
        printf("documents     %llu live, %llu deleted\n", (unsigned long long)s->ndocs,
               (unsigned long long)s->ndeleted);
        printf("terms         %llu\n", (unsigned long long)s->nterms);
        printf("avg length    %.2f terms\n", s->avgdl);
        printf("segments      %u\n", s->nsegments);
        printf("postings      %llu in %.1f MB (%.2f bytes/posting with block metadata "
               "and B-tree pages)\n",
               (unsigned long long)in.postings, (double)in.postings_bytes / 1e6, bpp);
        printf("stored docs   %.1f MB\n", (double)in.docs_bytes / 1e6);
        printf("file          %.1f MB (data.mdb)\n", (double)in.file_bytes / 1e6);
    }
    idx_env_close(env);
    return CLI_OK;
}

int cmd_check(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: lexis check INDEX\n\n"
               "Verifies every checksum (statistics, segments, postings blocks, stored\n"
               "documents) and the structure: postings decode in order, block maxima,\n"
               "df/cf per term, id maps, collection statistics. Prints each problem with\n"
               "the term and block or document it is in. Exit status 4 if damaged.\n");
        return CLI_OK;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: lexis check INDEX\n");
        return CLI_USAGE;
    }
    idx_env *env;
    int rc = cli_open_index(argv[1], 1, &env);
    if (rc)
        return rc;
    idx_check_report rep;
    double t0 = lx_now();
    rc = idx_check(env, stdout, &rep);
    idx_env_close(env);
    printf("%s: %llu terms, %llu postings lists, %llu blocks, %llu postings, %llu documents; "
           "%llu problems (%.2f s)\n", rc == 0 ? "ok" : "DAMAGED",
           (unsigned long long)rep.terms, (unsigned long long)rep.lists,
           (unsigned long long)rep.blocks, (unsigned long long)rep.postings,
           (unsigned long long)rep.docs, (unsigned long long)rep.errors, lx_now() - t0);
    if (rc == LX_E_CORRUPT)
        return CLI_DAMAGED;
    return rc ? cli_fail(rc, argv[1], NULL) : CLI_OK;
}
