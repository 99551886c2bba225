/* cli.h: shared pieces of the `lexis` command line (tools/ only).
 *
 * Exit codes (documented in `lexis help` and the README):
 *   0  success
 *   1  error (I/O, damaged index, out of memory, ...)
 *   2  usage error (unknown command or option, bad value)
 *   3  finished, but some input was skipped (bad lines; ids not found)
 *   4  `lexis check` found damage
 *   5  the index is busy (another process is writing to it)
 */
#ifndef LX_CLI_H
#define LX_CLI_H

#include "../query/query.h"

#include <stdio.h>

enum {
    CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2, CLI_PARTIAL = 3, CLI_DAMAGED = 4, CLI_BUSY = 5
};

typedef int (*cli_cmd_fn)(int argc, char **argv);

int cmd_build(int argc, char **argv);
int cmd_add(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_optimize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Prints "lexis: <what>: <message>" to stderr and returns the exit code
 * that fits rc (busy -> 5, else 1). */
int cli_fail(int rc, const char *what, const char *detail);

/* Opens an existing index (read-only when rdonly), printing a clear message
 * on failure. Returns 0 or an exit code. */
int cli_open_index(const char *path, int rdonly, idx_env **out);

/* Opens an existing index and its writer (taking the write lock). On
 * failure prints why, leaves nothing open and returns an exit code. */
int cli_open_writer(const char *path, idx_env **env, idx_writer **w);

/* An index opened read-only with a query engine and one snapshot. */
typedef struct cli_searcher {
    idx_env *env;
    qry_engine *q;
    idx_reader *r;
} cli_searcher;
/* On failure prints why, leaves nothing open and returns an exit code. */
int cli_searcher_open(const char *path, cli_searcher *s);
void cli_searcher_close(cli_searcher *s);       /* safe on a zeroed one */

/* Parses numbers strictly (whole string). Return 0 or -1. */
int cli_parse_u32(const char *s, uint32_t *out);
int cli_parse_float(const char *s, float *out);
int cli_parse_size_mb(const char *s, size_t *bytes);

/* Writes s as a JSON string literal (quotes included). Invalid UTF-8 bytes
 * become U+FFFD so the output is always valid JSON. */
void cli_json_string(FILE *f, const char *s, size_t len);

/* A field of a stored document by name; "" if absent. */
const char *cli_doc_field(const idx_doc *d, const char *name, size_t *len);

/* Queries from a JSON-lines file {"_id","text"} (- for stdin). A bad line
 * is reported and skipped (counted in *skipped). Owned by the caller:
 * cli_queries_free. */
typedef struct cli_query {
    char *id;
    char *text;
    size_t text_len;
} cli_query;
int cli_queries_load(const char *path, cli_query **out, size_t *n, size_t *skipped);
void cli_queries_free(cli_query *q, size_t n);

/* Pseudo-relevance feedback options shared by search, run and eval:
 * --rm3, --fb-docs N, --fb-terms N, --orig-weight X. Returns 1 if opt was
 * one of them (consumed), 0 if not, -1 on a bad value. */
typedef struct cli_prf {
    int on;
    qry_rm3_params p;
} cli_prf;
enum { CLI_OPT_RM3 = 1000, CLI_OPT_FB_DOCS, CLI_OPT_FB_TERMS, CLI_OPT_ORIG_WEIGHT };
#define CLI_PRF_LONGOPTS \
    { "rm3", no_argument, 0, CLI_OPT_RM3 }, \
    { "fb-docs", required_argument, 0, CLI_OPT_FB_DOCS }, \
    { "fb-terms", required_argument, 0, CLI_OPT_FB_TERMS }, \
    { "orig-weight", required_argument, 0, CLI_OPT_ORIG_WEIGHT }
#define CLI_PRF_HELP \
    "  --rm3              RM3 pseudo-relevance feedback (as Anserini): expand the\n" \
    "                     query from the top documents of a first pass\n" \
    "  --fb-docs N        feedback documents (default 10)\n" \
    "  --fb-terms N       expansion terms (default 10)\n" \
    "  --orig-weight X    weight of the original query, 0..1 (default 0.5)\n"
void cli_prf_init(cli_prf *p);
int cli_prf_option(cli_prf *p, int opt, const char *arg);
/* Runs the query with or without feedback. */
int cli_prf_search(const cli_prf *prf, qry_engine *q, idx_reader *r, const char *text, size_t len,
                   const qry_params *p, qry_result *res);

/* Progress bar on a terminal: call often; draws at most 10 times a second. */
typedef struct cli_progress {
    int enabled;
    double start, last_draw;
    uint64_t total_bytes;    /* 0 if unknown */
    uint64_t docs, bytes;
    uint64_t commits;
} cli_progress;
void cli_progress_init(cli_progress *p, int enabled, uint64_t total_bytes);
void cli_progress_cb(void *ctx, uint64_t docs, uint64_t bytes, int committed);
void cli_progress_done(cli_progress *p);

#endif
