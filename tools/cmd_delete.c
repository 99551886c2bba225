/* cmd_delete.c: `lexis delete INDEX ID...`: deletes documents in one commit. */
#include "cli.h"

#include <string.h>

int cmd_delete(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: lexis delete INDEX ID...\n\n"
               "Deletes the documents with these ids, all in one commit. An id that is\n"
               "not in the index is reported and the exit status is 3.\n");
        return CLI_OK;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: lexis delete INDEX ID...\n");
        return CLI_USAGE;
    }
    idx_env *env;
    idx_writer *w;
    int rc = cli_open_writer(argv[1], &env, &w);
    if (rc)
        return rc;
    int missing = 0, deleted = 0;
    for (int i = 2; i < argc; i++) {
        rc = idx_writer_delete(w, argv[i], strlen(argv[i]));
        if (rc == LX_E_NOTFOUND) {
            fprintf(stderr, "lexis: %s: no document with id '%s'\n", argv[1], argv[i]);
            missing++;
        } else if (rc) {
            idx_writer_abandon(w);
            int out = cli_fail(rc, argv[1], NULL);
            idx_env_close(env);
            return out;
        } else {
            deleted++;
        }
    }
    rc = idx_writer_close(w);
    if (rc) {
        int out = cli_fail(rc, argv[1], idx_env_errmsg(env));
        idx_env_close(env);
        return out;
    }
    idx_env_close(env);
    fprintf(stderr, "lexis: %d deleted, %d not found\n", deleted, missing);
    return missing ? CLI_PARTIAL : CLI_OK;
}
