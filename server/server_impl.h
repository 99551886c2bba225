/* server_impl.h: private layout of the server module (server/ and tests only).
 *
 * Files by concern, each with its one external library at most:
 *   server.c     the srv_server handle: params, open/close, worker contexts,
 *                the map lock; srv_buf
 *   http.c       libevent (evhttp): sockets, worker event loops, signals,
 *                replies, the access log and metrics call sites
 *   routes.c     request -> response: routing and the handlers
 *   json.c       jansson: parsing request bodies; the JSON writer
 *   snippet.c    snippets and highlight offsets
 *   writes.c     the writer thread: queue, group commit
 *   auth.c       the api key check (constant time)
 *   metrics.c    counters and histograms, Prometheus text
 *   accesslog.c  one line per request
 *   page.c       the search page (HTML/CSS/JS as a C string)
 *
 * Threads: N workers (http.c) each own one srv_worker and run requests to
 * completion except writes, which become srv_wjob's queued to the writer
 * thread (writes.c); the writer hands each finished job back to the worker
 * that received it (job->done, called on the writer thread).
 *
 * The map lock (srv_server.map_lock): LMDB must not remap its memory map
 * while any transaction of the process is open (mdb_env_set_mapsize), yet
 * the index layer grows the map inside a writer flush when it predicts the
 * commit may not fit. Every request that holds an idx_reader holds the map
 * lock shared; the writer takes it exclusive around a flush that might grow
 * the map (predicted from the data file size and the batch size, see
 * writes.c), and otherwise commits while searches run.
 */
#ifndef LX_SERVER_IMPL_H
#define LX_SERVER_IMPL_H

#include "server.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>

#define SRV_MAX_FIELDS 8
#define SRV_MAX_WORKERS 64

/* ---- byte buffer (server.c) -------------------------------------------------- */

/* A growable byte buffer. Owns p. After an allocation failure `failed` is
 * set and further appends are dropped (checked once, at the end). */
typedef struct srv_buf {
    char *p;
    size_t len, cap;
    int failed;
} srv_buf;

void srv_buf_init(srv_buf *b);
int srv_buf_reserve(srv_buf *b, size_t n);   /* room for n more bytes + NUL; 0 or -1 */
void srv_buf_free(srv_buf *b);
void srv_buf_reset(srv_buf *b);            /* len = 0, keeps memory */
void srv_buf_add(srv_buf *b, const void *p, size_t n);
void srv_buf_adds(srv_buf *b, const char *s);
void srv_buf_addc(srv_buf *b, char c);
void srv_buf_printf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- requests and responses ---------------------------------------------------- */

enum srv_route {
    SRV_R_PAGE, SRV_R_HEALTH, SRV_R_STATS, SRV_R_METRICS, SRV_R_SEARCH,
    SRV_R_DOCS, SRV_R_DOC, SRV_R_OTHER, SRV_R_COUNT
};
extern const char *const srv_route_names[SRV_R_COUNT];   /* "/", "/docs/{id}", ... */

enum srv_method {
    SRV_M_GET, SRV_M_HEAD, SRV_M_POST, SRV_M_PUT, SRV_M_DELETE, SRV_M_OPTIONS,
    SRV_M_PATCH, SRV_M_OTHER
};
extern const char *const srv_method_names[SRV_M_OTHER + 1];

/* Error codes of {"error":{"code"}}; also a metrics label. */
enum srv_err {
    SRV_E_NONE = -1,
    SRV_E_BAD_REQUEST, SRV_E_BAD_JSON, SRV_E_QUERY_TOO_LONG, SRV_E_UNAUTHORIZED,
    SRV_E_FORBIDDEN, SRV_E_NOT_FOUND, SRV_E_METHOD, SRV_E_TOO_LARGE,
    SRV_E_OVERLOADED, SRV_E_BUSY, SRV_E_INTERNAL, SRV_E_COUNT
};
extern const char *const srv_err_names[SRV_E_COUNT];

/* A request as the handlers see it: everything borrowed from the caller
 * (http.c, a test or the fuzzer) for the duration of srv_handle. */
typedef struct srv_request {
    int method;                  /* enum srv_method */
    const char *uri;             /* request target as sent ("/docs/a%20b?x") */
    size_t uri_len;
    const char *authorization;   /* header value or NULL */
    const char *body;            /* may be NULL when body_len is 0 */
    size_t body_len;
    double t_start;              /* lx_now() when the request arrived */
} srv_request;

typedef struct srv_wjob srv_wjob;

typedef struct srv_response {
    int status;
    int route;                   /* enum srv_route */
    int err;                     /* enum srv_err, SRV_E_NONE if none */
    const char *content_type;    /* static string */
    srv_buf *body;               /* borrowed: the worker's or the job's buffer */
    const char *allow;           /* Allow header (405), static or NULL */
    int retry_after;             /* seconds; 0 = no header */
    int close;                   /* 1: Connection: close */
    srv_wjob *deferred;          /* non-NULL: a write job to submit (the
                                    response comes when it is done); owned
                                    by the caller from then on */
} srv_response;

/* ---- metrics (metrics.c) ------------------------------------------------------------- */

#define SRV_NSTATUS 12           /* 200 400 401 403 404 405 413 429 500 503 + other 2xx/other */
#define SRV_NBUCKETS 17          /* 16 bounds + Inf */
extern const double srv_bucket_bounds[SRV_NBUCKETS - 1];   /* seconds */

typedef struct srv_hist {
    _Atomic uint64_t b[SRV_NBUCKETS];      /* per bucket, not cumulative */
    _Atomic uint64_t sum_us;
} srv_hist;

/* One worker's counters: written by that worker only, read by /metrics
 * (relaxed atomics: no locks on the request path). */
typedef struct srv_metrics {
    _Atomic uint64_t requests[SRV_R_COUNT][SRV_NSTATUS];
    srv_hist latency[SRV_R_COUNT];
    _Atomic uint64_t errors[SRV_E_COUNT];
    _Atomic uint64_t bytes_out;
} srv_metrics;

/* Counters of the writer thread (written by it only). */
typedef struct srv_write_metrics {
    _Atomic uint64_t commits, failed_commits;
    _Atomic uint64_t indexed, replaced, skipped, deleted;
    _Atomic uint64_t exclusive_flushes;    /* flushes under the exclusive map lock */
    srv_hist commit;                       /* flush + commit duration */
    srv_hist visible;                      /* request arrival -> committed */
} srv_write_metrics;

void srv_hist_add(srv_hist *h, double seconds);
void srv_metrics_record(srv_metrics *m, int route, int status, int err, double seconds,
                        size_t bytes);
void srv_metrics_render(srv_server *s, srv_buf *out);

/* ---- workers ------------------------------------------------------------------------------ */

/* What one thread needs to answer requests. Used by one thread at a time. */
typedef struct srv_worker {
    srv_server *s;
    uint32_t index;
    qry_engine *q;               /* owned; engines are not thread-safe */
    enc_analyzer *an;            /* owned; for snippets */
    lx_arena arena;              /* per-request scratch, reset after each */
    srv_buf out;                 /* response body, reused */
    srv_buf tmp;                 /* snippet scratch */
    srv_metrics m;
} srv_worker;

/* ---- write jobs (writes.c) ---------------------------------------------------------------- */

enum { SRV_WJOB_ADD, SRV_WJOB_DELETE };

struct srv_wjob {
    srv_wjob *next;
    int kind;
    char *data;                  /* owned: the body (ADD) or the id (DELETE) */
    size_t len;
    double t_start;              /* request arrival */
    /* result, filled by the writer */
    int status;
    int err;                     /* enum srv_err */
    int retry_after;
    srv_buf out;                 /* owned: response body */
    /* completion: called on the writer thread when the result is ready;
     * the callee owns the job from then on (srv_wjob_free). */
    void (*done)(srv_wjob *j);
    void *origin;                /* http.c's request */
    void *origin_worker;         /* http.c's worker */
    /* bookkeeping of one group commit */
    uint64_t n_indexed, n_replaced, n_skipped;
    int changed;                 /* added or deleted something */
    int truncated;               /* more item errors than listed */
};

srv_wjob *srv_wjob_new(int kind, const char *data, size_t len, double t_start);
void srv_wjob_free(srv_wjob *j);
/* Fills resp from a finished job (body borrowed from the job). */
void srv_wjob_response(srv_wjob *j, srv_response *resp);

typedef struct srv_writes {
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    srv_wjob *head, *tail;       /* the queue, guarded by mu */
    uint32_t queued;
    uint64_t submitted;          /* jobs ever queued, guarded by mu */
    int stopping;
    idx_writer *w;               /* the index writer (lock held) or NULL;
                                    touched by the writer thread only */
    _Atomic int held;            /* w != NULL, for other threads (/stats) */
    uint64_t map_bytes;          /* LMDB map size as last measured */
    srv_write_metrics m;
} srv_writes;

int srv_writes_open(srv_server *s, char *err, size_t errcap);
int srv_writes_start(srv_server *s);
/* Queues j. 0, or LX_E_BUSY (queue full) / LX_E_INVAL (stopping): the
 * caller keeps j and answers 503. */
int srv_writes_submit(srv_server *s, srv_wjob *j);
/* Applies j now on the calling thread (tests, fuzzing; the writer thread
 * must not be running). j->done is not called. */
void srv_writes_run_sync(srv_server *s, srv_wjob *j);
/* Lets the queue drain, then joins the thread. */
void srv_writes_stop(srv_server *s);
void srv_writes_close(srv_server *s);

/* ---- the handle ------------------------------------------------------------------------------ */

struct srv_http;

struct srv_server {
    idx_env *env;                /* borrowed */
    srv_params p;
    char *api_key;               /* owned copy, NULL when writes are disabled */
    size_t api_key_len;
    const char *fields[SRV_MAX_FIELDS];   /* point into fields_buf */
    size_t nfields;
    char fields_buf[256];
    char data_path[4096];        /* INDEX/data.mdb, for the size */
    srv_worker workers[SRV_MAX_WORKERS];
    uint32_t nworkers;
    pthread_rwlock_t map_lock;
    srv_writes wr;
    _Atomic uint64_t conns;              /* open connections (tracked ones) */
    _Atomic uint64_t conns_rejected;
    _Atomic uint64_t queue_rejected;
    double started;
    int port;
    char address[96];
    struct srv_http *http;       /* owned by http.c */
};

/* Worker contexts (server.c). */
int srv_worker_init(srv_server *s, srv_worker *w, uint32_t index);
void srv_worker_free(srv_worker *w);

/* Map lock around a read snapshot. */
int srv_reader_open(srv_server *s, idx_reader **r);      /* takes the lock shared */
void srv_reader_close(srv_server *s, idx_reader *r);     /* releases it */

/* ---- handlers (routes.c) ------------------------------------------------------------------- */

/* Answers req on worker w: fills resp (body in w->out) or, for a write,
 * resp->deferred. Never fails: errors become error responses. */
void srv_handle(srv_worker *w, const srv_request *req, srv_response *resp);
/* Writes {"error":{"code","message"}} into resp->body and sets the status. */
void srv_error(srv_response *resp, int status, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void srv_error_buf(srv_buf *b, int err, const char *fmt, va_list ap);
/* Percent-decodes a path segment. Returns the length, or -1 if malformed
 * (bad %XX or an encoded NUL). out must hold n bytes. */
long srv_path_decode(const char *in, size_t n, char *out);

/* ---- json.c ------------------------------------------------------------------------------------ */

/* Appends s as a JSON string literal; invalid UTF-8 becomes U+FFFD. */
void srv_jw_str(srv_buf *b, const char *s, size_t n);

typedef struct srv_search_req {
    const char *query;           /* borrowed from owner */
    size_t query_len;
    qry_params qp;
    int rm3;
    qry_rm3_params rm;
    int snippets;
    void *owner;                 /* srv_json_release */
} srv_search_req;

/* Parses a POST /search body. 0, or LX_E_INPUT (400: message in err) or
 * LX_E_TOOBIG (the query is longer than the limit). */
int srv_json_search_parse(const char *body, size_t len, const srv_params *lim,
                          srv_search_req *out, int *err_code, char *err, size_t errcap);
void srv_json_release(void *owner);

typedef struct srv_doc {
    const char *id;              /* borrowed for the callback */
    size_t id_len;
    const char *values[SRV_MAX_FIELDS];
    size_t lens[SRV_MAX_FIELDS];
    size_t nfields;
} srv_doc;

typedef struct srv_docs_cb {
    /* A valid document. Nonzero stops the parse; that value is returned. */
    int (*doc)(void *ctx, uint64_t item, const srv_doc *d);
    /* A bad item (line number for JSON lines, 0-based index for arrays). */
    void (*bad)(void *ctx, uint64_t item, const char *msg);
    void *ctx;
} srv_docs_cb;

/* Parses a POST /docs body: a JSON array of objects, or JSON lines (one
 * object a line; blank lines skipped). *is_array tells which. Returns 0
 * (bad items reported through cb->bad), LX_E_INPUT for an array that is not
 * valid JSON as a whole (message in err), or the doc callback's value. */
int srv_json_docs_parse(const char *body, size_t len, const char *const *fields, size_t nfields,
                        const srv_docs_cb *cb, int *is_array, uint64_t *items,
                        char *err, size_t errcap);

/* ---- snippet.c ----------------------------------------------------------------------------------- */

#define SRV_MAX_QTERMS 64
#define SRV_MAX_HL 32

#define SRV_WC_SLOTS 1024
#define SRV_PRE2_SLOTS 256              /* > 2 * SRV_MAX_QTERMS */
#define SRV_WC_MAX_WORD 64

struct srv_wc;
typedef struct srv_qterms {
    const char *t[SRV_MAX_QTERMS];    /* arena copies */
    uint16_t len[SRV_MAX_QTERMS];
    size_t n;
    uint8_t first[256];               /* first byte of a term: 1 one-byte term, 2 longer */
    uint16_t pre2[SRV_PRE2_SLOTS];    /* first two bytes of the terms (0 = empty) */
    lx_arena *a;                      /* borrowed: where the cache lives */
    struct srv_wc *wc;                /* word -> term cache (SRV_WC_SLOTS), or NULL */
    size_t wc_n;
} srv_qterms;

/* The distinct analyzed terms of a query (the first SRV_MAX_QTERMS), and
 * an empty word cache, both in the arena (valid until it is reset). */
int srv_qterms_collect(enc_analyzer *an, lx_arena *a, const char *q, size_t len, srv_qterms *out);

typedef struct srv_snippet {
    size_t nhl;
    uint32_t hl[SRV_MAX_HL][2];        /* [start, end) in code points of out */
} srv_snippet;

/* Writes into out (reset first) a snippet of text: a window of about
 * `window` bytes around the densest run of query terms (the whole text if
 * window is 0), whitespace runs collapsed, "…" where cut; and the
 * highlighted words' offsets, in Unicode code points of the snippet. */
int srv_snippet_make(enc_analyzer *an, srv_qterms *qt, const char *text, size_t len,
                     size_t window, srv_buf *out, srv_snippet *sn);

/* ---- auth.c, accesslog.c, page.c -------------------------------------------------------- */

/* Constant-time comparison (time depends on the lengths only). 1 if equal. */
int srv_ct_equal(const char *a, size_t alen, const char *b, size_t blen);
/* 0 when the request may write; else the status (401 or 403) with a
 * message in resp. */
int srv_auth_check(const srv_server *s, const char *authorization, srv_response *resp);

void srv_access_log(const srv_server *s, const char *peer, int method, const char *uri,
                    size_t uri_len, int status, size_t bytes, double seconds);

extern const char srv_page_html[];
extern const size_t srv_page_html_len;

/* ---- http.c -------------------------------------------------------------------------------------- */

int srv_http_open(srv_server *s, char *err, size_t errcap);   /* bind + listen */
int srv_http_run(srv_server *s);
void srv_http_stop(srv_server *s);
void srv_http_close(srv_server *s);

#endif
