/* lexis.c: the `lexis` command line: dispatch to one subcommand per file. */
#include "cli.h"

#include <string.h>

static const struct {
    const char *name;
    cli_cmd_fn fn;
    const char *summary;
} commands[] = {
    { "build",   cmd_build,   "create an index from a JSON-lines corpus" },
    { "add",     cmd_add,     "add or replace documents from JSON lines" },
    { "delete",  cmd_delete,  "delete documents by id" },
    { "search",  cmd_search,  "rank documents for a query" },
    { "run",     cmd_run,     "rank a file of queries, print a TREC run" },
    { "eval",    cmd_eval,    "measure rankings against relevance judgments" },
    { "bench",   cmd_bench,   "time queries in process (latency, queries/s)" },
    { "serve",   cmd_serve,   "answer searches over HTTP (JSON API, search page)" },
    { "inspect", cmd_inspect, "print the index's settings and statistics" },
    { "check",   cmd_check,   "verify every checksum and the structure" },
    { "optimize", cmd_optimize, "merge segments, drop deleted postings" },
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lexis COMMAND [ARGS]   (lexis COMMAND --help for details)\n\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "  help     this text\n\n"
            "quick start:\n"
            "  lexis build idx --corpus corpus.jsonl      # {\"_id\",\"title\",\"text\"} per line\n"
            "  lexis search idx \"fast json parser\"\n\n"
            "exit codes: 0 ok, 1 error, 2 usage error, 3 some input skipped,\n"
            "            4 check found damage, 5 index busy (another writer)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        if (argc > 2) {
            for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
                if (!strcmp(argv[2], commands[i].name)) {
                    char *av[] = { argv[2], "--help", NULL };
                    return commands[i].fn(2, av);
                }
            }
        }
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("lexis (index format %d)\n", IDX_FORMAT_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "lexis: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return CLI_USAGE;
}
