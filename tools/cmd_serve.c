/* cmd_serve.c: `lexis serve`: the HTTP search service over an index
 * (server/server.h does the work; this file turns options into srv_params).
 *
 * Once listening it prints one line on standard output, flushed:
 *     lexis: listening on http://127.0.0.1:8080
 * (with --port 0 the port is the one the system picked: scripts read it
 * from there). SIGTERM or SIGINT stops it gracefully; exit 0.
 */
#include "cli.h"
#include "../server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum {
    OPT_HOST = 256, OPT_PORT, OPT_THREADS, OPT_API_KEY, OPT_MAX_BODY, OPT_MAX_QUERY, OPT_MAX_K,
    OPT_MAX_CONN, OPT_MAX_QUEUE, OPT_TIMEOUT, OPT_GRACE, OPT_ACCESS_LOG, OPT_SNIPPET,
};

static void serve_help(FILE *f)
{
    srv_params d = srv_default_params();
    fprintf(f,
            "usage: lexis serve INDEX [options]\n\n"
            "Serves INDEX over HTTP: a search page at /, and a JSON API:\n"
            "  GET /health  GET /stats  GET /metrics (Prometheus)  GET /docs/ID\n"
            "  POST /search {\"query\",\"k\",\"algo\",\"and\",\"rm3\",\"snippets\"}\n"
            "  POST /docs (JSON lines or array; api key)  DELETE /docs/ID (api key)\n"
            "Prints \"lexis: listening on http://HOST:PORT\" on stdout when ready;\n"
            "SIGTERM or SIGINT stops it gracefully (requests in flight are answered).\n"
            "While it runs, it is the index's only writer: `lexis add` elsewhere gets\n"
            "exit 5 (busy); send documents to POST /docs instead.\n\n"
            "  --host ADDR          address to bind (default %s: this machine only;\n"
            "                       0.0.0.0 or :: to accept other machines)\n"
            "  --port N             port (default %d); 0 picks a free one\n"
            "  --threads N          worker threads (default: one per CPU)\n"
            "  --api-key KEY        key for POST /docs and DELETE, sent as\n"
            "                       \"Authorization: Bearer KEY\" (default: $LEXIS_API_KEY;\n"
            "                       prefer the variable: arguments show in ps). Without a\n"
            "                       key, writes are refused (403)\n"
            "  --max-body MB        largest request body (default %zu MB; 1-1024) -> 413\n"
            "  --max-query BYTES    longest \"query\" (default %zu) -> 400\n"
            "  --max-k N            largest \"k\" (default %u; at most 100000) -> 400\n"
            "  --max-connections N  open connections (default %u) -> 503 beyond\n"
            "  --max-write-queue N  write requests waiting (default %u) -> 503 beyond\n"
            "  --timeout SECONDS    read, write and keep-alive idle timeout (default %g)\n"
            "  --grace SECONDS      how long shutdown waits for requests in flight\n"
            "                       (default %g)\n"
            "  --snippet BYTES      snippet window (default %zu)\n"
            "  --access-log FILE    one line per request (time, peer, method, path,\n"
            "                       status, bytes, microseconds) appended to FILE;\n"
            "                       - is stderr (the default), off disables it\n",
            d.host, d.port, d.max_body >> 20, d.max_query_bytes, d.max_k, d.max_connections,
            d.max_write_queue, d.timeout_s, d.shutdown_grace_s, d.snippet_bytes);
}

static int parse_seconds(const char *s, double *out)
{
    float f;
    if (cli_parse_float(s, &f) || !(f > 0) || f > 86400)
        return -1;
    *out = f;
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "host", required_argument, 0, OPT_HOST },
        { "port", required_argument, 0, OPT_PORT },
        { "threads", required_argument, 0, OPT_THREADS },
        { "api-key", required_argument, 0, OPT_API_KEY },
        { "max-body", required_argument, 0, OPT_MAX_BODY },
        { "max-query", required_argument, 0, OPT_MAX_QUERY },
        { "max-k", required_argument, 0, OPT_MAX_K },
        { "max-connections", required_argument, 0, OPT_MAX_CONN },
        { "max-write-queue", required_argument, 0, OPT_MAX_QUEUE },
        { "timeout", required_argument, 0, OPT_TIMEOUT },
        { "grace", required_argument, 0, OPT_GRACE },
        { "snippet", required_argument, 0, OPT_SNIPPET },
        { "access-log", required_argument, 0, OPT_ACCESS_LOG },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    srv_params p = srv_default_params();
    p.handle_signals = 1;
    const char *access_log = "-";
    const char *api_key = NULL;
    int opt, li;
    uint32_t u;
    double secs;
    optind = 1;
    while ((li = -1, opt = getopt_long(argc, argv, "h", longopts, &li)) != -1) {
        switch (opt) {
        case OPT_HOST: p.host = optarg; break;
        case OPT_PORT:
            if (cli_parse_u32(optarg, &u) || u > 65535) goto bad_value;
            p.port = (int)u;
            break;
        case OPT_THREADS:
            if (cli_parse_u32(optarg, &u) || u == 0 || u > 64) goto bad_value;
            p.threads = u;
            break;
        case OPT_API_KEY: api_key = optarg; break;
        case OPT_MAX_BODY:
            if (cli_parse_u32(optarg, &u) || u == 0 || u > 1024) goto bad_value;
            p.max_body = (size_t)u << 20;
            break;
        case OPT_MAX_QUERY:
            if (cli_parse_u32(optarg, &u) || u == 0 || u > (1u << 20)) goto bad_value;
            p.max_query_bytes = u;
            break;
        case OPT_MAX_K:
            if (cli_parse_u32(optarg, &u) || u == 0 || u > 100000) goto bad_value;
            p.max_k = u;
            break;
        case OPT_MAX_CONN:
            if (cli_parse_u32(optarg, &u) || u == 0) goto bad_value;
            p.max_connections = u;
            break;
        case OPT_MAX_QUEUE:
            if (cli_parse_u32(optarg, &u) || u == 0) goto bad_value;
            p.max_write_queue = u;
            break;
        case OPT_TIMEOUT:
            if (parse_seconds(optarg, &secs)) goto bad_value;
            p.timeout_s = secs;
            break;
        case OPT_GRACE:
            if (parse_seconds(optarg, &secs)) goto bad_value;
            p.shutdown_grace_s = secs;
            break;
        case OPT_SNIPPET:
            if (cli_parse_u32(optarg, &u) || u < 16 || u > 65536) goto bad_value;
            p.snippet_bytes = u;
            break;
        case OPT_ACCESS_LOG: access_log = optarg; break;
        case 'h': serve_help(stdout); return CLI_OK;
        default: serve_help(stderr); return CLI_USAGE;
        }
        continue;
    bad_value:
        fprintf(stderr, "lexis: bad value '%s' for --%s\n", optarg, longopts[li].name);
        return CLI_USAGE;
    }
    if (argc - optind != 1) {
        serve_help(stderr);
        return CLI_USAGE;
    }
    if (!api_key)
        api_key = getenv("LEXIS_API_KEY");
    p.api_key = api_key;

    int log_fd = -1;
    if (!strcmp(access_log, "-")) {
        p.access_log_fd = 2;
    } else if (!strcmp(access_log, "off")) {
        p.access_log_fd = -1;
    } else {
        log_fd = open(access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0) {
            fprintf(stderr, "lexis: %s: %s\n", access_log, strerror(errno));
            return CLI_ERROR;
        }
        p.access_log_fd = log_fd;
    }

    /* Each connection is a descriptor: take the hard limit, and say so
     * when even that is below the connection limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)p.max_connections + 64)
            fprintf(stderr, "lexis: warning: %llu open files allowed (ulimit -n), fewer than "
                            "--max-connections %u needs\n",
                    (unsigned long long)rl.rlim_cur, p.max_connections);
    }

    idx_env *env;
    int rc = cli_open_index(argv[optind], 0, &env);
    if (rc) {
        if (log_fd >= 0)
            close(log_fd);
        return rc;
    }
    srv_server *s;
    char err[512];
    int out = CLI_OK;
    if ((rc = srv_server_open(env, &p, &s, err, sizeof err)) != 0) {
        out = cli_fail(rc, "serve", err);
        goto out_env;
    }
    if (!srv_server_has_writer_lock(s))
        fprintf(stderr, "lexis: warning: another process is writing to %s; writes answer 503 "
                        "until it is done\n", argv[optind]);
    if (!api_key || !*api_key)
        fprintf(stderr, "lexis: no api key (--api-key or LEXIS_API_KEY): POST /docs and "
                        "DELETE answer 403\n");
    printf("lexis: listening on http://%s\n", srv_server_address(s));
    fflush(stdout);
    if ((rc = srv_server_run(s)) != 0)
        out = cli_fail(rc, "serve", NULL);
    srv_server_close(s);
    fprintf(stderr, "lexis: stopped\n");
out_env:
    idx_env_close(env);
    if (log_fd >= 0)
        close(log_fd);
    return out;
}
