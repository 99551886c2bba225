/* server.h: the lexis search service, HTTP + JSON over an open index.
 *
 * Usage:
 *     idx_env *env;                                   // opened read-write
 *     rc = idx_env_open("myindex", 0, NULL, &env, err, sizeof err);
 *     srv_params p = srv_default_params();
 *     p.port = 0;                                     // any free port
 *     p.api_key = getenv("LEXIS_API_KEY");            // NULL: writes refused
 *     srv_server *s;
 *     rc = srv_server_open(env, &p, &s, err, sizeof err);   // binds and listens
 *     printf("listening on http://127.0.0.1:%d\n", srv_server_port(s));
 *     rc = srv_server_run(s);      // serves until srv_server_stop or SIGTERM/SIGINT
 *     srv_server_close(s);
 *     idx_env_close(env);
 *
 * The API (JSON in and out; errors are {"error":{"code","message"}}):
 *     GET  /              the search page (HTML, no build step)
 *     GET  /health        {"status":"ok","documents":N}
 *     GET  /stats         index statistics and settings
 *     GET  /metrics       Prometheus text: requests by route and status,
 *                         latency histograms, writes, index size
 *     POST /search        {"query","k"?,"algo"?,"and"?,"rm3"?,"snippets"?}
 *                         -> {"hits":[{"id","score","title","snippet",
 *                             "highlights","title_highlights"}],"took_ms"}
 *     GET  /docs/{id}     the stored document
 *     POST /docs          JSON lines or a JSON array of {"_id",...}; api key
 *     DELETE /docs/{id}   api key
 * The api key travels as `Authorization: Bearer KEY` and is compared in
 * constant time. Without a configured key the write endpoints answer 403.
 *
 * Threads: `threads` workers, each with its own event loop and query engine,
 * accept on one listening socket; every search runs in its own read
 * snapshot (LMDB read transaction), so a search never waits for a write.
 * Writes go through one writer thread: requests queue (bounded; 503 when
 * full), and the writer applies all queued requests in one commit (group
 * commit). A document is searchable as soon as the POST that added it has
 * been answered. The server holds the index's writer lock while it runs,
 * so `lexis add` from another process gets "busy" (exit 5).
 *
 * No global state: everything lives in the srv_server handle. The only
 * process-wide effect is ignoring SIGPIPE (a peer closing a socket must
 * not kill the server).
 */
#ifndef LX_SERVER_H
#define LX_SERVER_H

#include "../query/query.h"

#include <stddef.h>
#include <stdint.h>

typedef struct srv_server srv_server;

typedef struct srv_params {
    const char *host;          /* address to bind ("127.0.0.1"; "::1", "0.0.0.0"
                                  or a name). Borrowed for srv_server_open. */
    int port;                  /* 8080; 0 picks a free port (srv_server_port) */
    uint32_t threads;          /* worker threads; 0 = one per online CPU (max 64) */
    const char *api_key;       /* required for POST /docs and DELETE; NULL or ""
                                  disables writes (403). Borrowed; copied. */
    size_t max_body;           /* bytes of a request body (16 MiB); larger -> 413 */
    size_t max_search_body;    /* bytes of a POST /search body (64 KiB) -> 413 */
    size_t max_query_bytes;    /* bytes of "query" (4096) -> 400 */
    uint32_t max_k;            /* largest "k" (1000) -> 400 */
    uint32_t max_connections;  /* open connections, all workers (1024); a
                                  request on a connection beyond -> 503 */
    uint32_t max_write_queue;  /* write requests waiting (64); beyond -> 503 */
    double timeout_s;          /* read, write and keep-alive idle timeout (10 s) */
    double shutdown_grace_s;   /* how long shutdown waits for in-flight
                                  requests to finish (10 s) */
    size_t max_header_bytes;   /* request line + headers (16 KiB) */
    size_t snippet_bytes;      /* snippet window (240 bytes) */
    int access_log_fd;         /* one line per request; -1 = none, default 2
                                  (stderr). Borrowed: stays open until close. */
    int handle_signals;        /* 1: srv_server_run stops gracefully on
                                  SIGTERM/SIGINT (default 0) */
} srv_params;

srv_params srv_default_params(void);

/* Opens the service over env (borrowed: must stay open until
 * srv_server_close) and binds and listens on host:port, so the port is
 * known before srv_server_run. Takes the index's writer lock if it can (if
 * another process holds it, the server starts anyway and tries again at
 * each write). *out owned by the caller: srv_server_close. On failure
 * returns a code and writes a message into err. */
int srv_server_open(idx_env *env, const srv_params *p, srv_server **out,
                    char *err, size_t errcap);

/* The bound port (useful with port 0) and address, as "host:port" with
 * brackets around an IPv6 host. Borrowed, valid until close. */
int srv_server_port(const srv_server *s);
const char *srv_server_address(const srv_server *s);

/* 1 if the server holds the index's writer lock (writes can be applied);
 * 0 if another process held it at open (writes retry it and answer 503
 * while it is taken). */
int srv_server_has_writer_lock(const srv_server *s);

/* Runs the workers and the writer, and blocks until srv_server_stop (or a
 * signal when handle_signals) has been honored: accepting stops, requests
 * in flight are answered (up to shutdown_grace_s), writes are committed.
 * Returns 0, or a code if the threads could not start. Call once. */
int srv_server_run(srv_server *s);

/* Asks srv_server_run to shut down gracefully and returns at once. Safe
 * from any thread and from a signal handler (it writes to an eventfd). */
void srv_server_stop(srv_server *s);

/* Answers one request on the calling thread, without sockets: what the
 * server would answer to METHOD TARGET (e.g. "POST", "/search") with this
 * Authorization value (or NULL) and body. For embedding, tests and for
 * measuring what HTTP adds. `worker` (< threads) picks the worker context
 * (query engine, buffers): one thread per worker at a time. A write is
 * applied synchronously, so this must not be called while srv_server_run
 * runs. *body_out (malloc'd, NUL-terminated; owned by the caller: free)
 * and *len_out get the response body, *ctype_out its content type
 * (static). Returns the HTTP status, or a negative code on bad arguments. */
int srv_server_call(srv_server *s, unsigned worker, const char *method, const char *target,
                    const char *authorization, const char *body, size_t body_len,
                    char **body_out, size_t *len_out, const char **ctype_out);

/* Frees everything; releases the writer lock. Does not close env. */
void srv_server_close(srv_server *s);

#endif
