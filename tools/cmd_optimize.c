/* cmd_optimize.c: `lexis optimize INDEX`: merge all segments into one and
 * drop the postings of deleted documents, in one transaction. */
#include "cli.h"

#include <string.h>

int cmd_optimize(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: lexis optimize INDEX\n\n"
               "Merges every segment into one and drops the postings of deleted\n"
               "documents, in one transaction (a crash leaves the index as it was).\n"
               "Queries then read one list per term with fresh block bounds.\n");
        return CLI_OK;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: lexis optimize INDEX\n");
        return CLI_USAGE;
    }
    idx_env *env;
    idx_writer *w;
    int rc = cli_open_writer(argv[1], &env, &w);
    if (rc)
        return rc;
    uint32_t before = 0;
    double t0 = lx_now();
    rc = idx_writer_merge(w, &before);
    if (rc) {
        idx_writer_abandon(w);
        int out = cli_fail(rc, argv[1], idx_env_errmsg(env));
        idx_env_close(env);
        return out;
    }
    idx_writer_close(w);
    idx_env_close(env);
    fprintf(stderr, "lexis: %u segments merged into one in %.2f s\n", before, lx_now() - t0);
    return CLI_OK;
}
