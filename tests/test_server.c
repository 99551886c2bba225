/* test_server.c: the search service over real HTTP on loopback.
 *
 * A group setup builds an index (TS_NDOCS documents, each with a unique
 * token "uniqNNN") in a temporary directory and starts an srv_server on
 * 127.0.0.1 port 0 in a thread, with small limits so each can be hit:
 * 256 KiB bodies, 4 KiB search bodies, 256-byte queries, k <= 100, a 1 s
 * read/idle timeout, an api key. The tests talk to it with plain blocking
 * sockets (one request per connection unless a test says otherwise) and
 * check statuses, headers and JSON (parsed with jansson). Side servers
 * (ts_side_open: their own small index and limits) cover what needs a
 * fresh server: no api key, a full write queue, shutdown. To hold a request
 * in flight, a test takes the server's map lock exclusively: searches and
 * the writer wait for it (ts_wait_writer_took says when a write is inside).
 *
 * Covered: every endpoint's happy path (GET / /health /stats /metrics
 * /docs/{id}, HEAD, POST /search with every option, POST /docs as JSON
 * lines and as an array, DELETE); every error path: malformed JSON,
 * invalid UTF-8 (in a search body, a document line, a percent-encoded id,
 * raw bytes in the target), wrong types, unknown fields, k and query
 * limits (400), missing/wrong/right api key (401), no key configured
 * (403), 404, 405 + Allow on every route and OPTIONS, search body over the
 * limit (JSON 413), document body over the limit (libevent's 413), what
 * libevent refuses itself (a bad request line, huge headers, a bad
 * Content-Length), the connection limit and a full write queue (503 +
 * Retry-After), the writer lock held elsewhere (503); slow clients: half a
 * request, an idle kept-alive connection, a byte-at-a-time dribbler, a
 * pipelining client that never reads (cut at the timeout or served, never
 * holding a worker: others are answered at once meanwhile); a reply over
 * 16 KiB on a kept-alive connection (no 40 ms Nagle stall); the access log
 * (format of every line, one per request, bytes, escaping); concurrent
 * writers and readers followed by a consistency check (every document
 * added is there exactly once with its last version, every deleted one is
 * gone, the count adds up, idx_check passes); the add-to-searchable delay;
 * graceful shutdown with a write and with a search in flight (answered,
 * committed; accepting stops; new requests on kept-alive connections get
 * 503 + close). Internals are unit-tested too: JSON escaping, constant-time
 * compare, percent-decoding, snippet highlight offsets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../server/server_impl.h"

#define TS_NDOCS 200
#define TS_KEY "test-key-0123456789"

typedef struct ts_env {
    char dir[256];
    char logpath[300];
    int logfd;
    idx_env *env;
    srv_server *s;
    pthread_t th;
    int port;
} ts_env;

static ts_env T;

/* ---- helpers --------------------------------------------------------------------- */

static double ts_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void ts_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static int ts_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = { 15, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int ts_send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

typedef struct ts_resp {
    int status;
    char *raw;            /* whole response */
    size_t raw_len;
    char *headers;        /* points into raw, NUL-terminated */
    char *body;           /* points into raw */
    size_t body_len;
} ts_resp;

static void ts_resp_free(ts_resp *r)
{
    free(r->raw);
    memset(r, 0, sizeof *r);
}

/* Parses a complete response in buf (owned: moved into r). */
static void ts_parse(char *buf, size_t n, ts_resp *r)
{
    memset(r, 0, sizeof *r);
    r->raw = buf;
    r->raw_len = n;
    r->status = -1;
    if (n >= 12 && strncmp(buf, "HTTP/1.", 7) == 0)
        r->status = atoi(buf + 9);
    char *sep = strstr(buf, "\r\n\r\n");
    if (sep) {
        *sep = '\0';
        r->headers = buf;
        r->body = sep + 4;
        r->body_len = n - (size_t)(r->body - buf);
    } else {
        r->headers = buf;
        r->body = buf + n;
    }
}

/* Reads until EOF. */
static char *ts_read_all(int fd, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (cap - n < 4096) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t k = recv(fd, buf + n, cap - n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* One request on a fresh connection (Connection: close). extra: more header
 * lines, each ending in \r\n, or NULL. Returns the status. */
static int ts_http(int port, const char *method, const char *path, const char *extra,
                   const char *body, size_t body_len, ts_resp *r)
{
    int fd = ts_connect(port);
    assert_true(fd >= 0);
    char head[2048];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, extra ? extra : "", body_len);
    int ok = ts_send_all(fd, head, (size_t)hn) == 0 && (!body_len || ts_send_all(fd, body, body_len) == 0);
    (void)ok;                  /* a server may answer (413) before reading it all */
    size_t n;
    char *buf = ts_read_all(fd, &n);
    close(fd);
    ts_parse(buf, n, r);
    return r->status;
}

static int ts_get(const char *path, ts_resp *r)
{
    return ts_http(T.port, "GET", path, NULL, NULL, 0, r);
}

static int ts_post(const char *path, const char *body, const char *extra, ts_resp *r)
{
    return ts_http(T.port, "POST", path, extra, body, strlen(body), r);
}

#define TS_AUTH "Authorization: Bearer " TS_KEY "\r\n"

static json_t *ts_json(const ts_resp *r)
{
    json_error_t je;
    json_t *j = json_loadb(r->body, r->body_len, 0, &je);
    if (!j)
        fail_msg("response is not JSON (%s): status %d, body: %.300s", je.text, r->status, r->body);
    return j;
}

/* Asserts an error response: status and {"error":{"code": code, "message"}}. */
static void ts_assert_error(ts_resp *r, int status, const char *code)
{
    if (r->status != status)
        fail_msg("expected %d, got %d: %.300s", status, r->status, r->body);
    json_t *j = ts_json(r);
    json_t *e = json_object_get(j, "error");
    assert_non_null(e);
    assert_true(json_is_string(json_object_get(e, "message")));
    const char *c = json_string_value(json_object_get(e, "code"));
    assert_non_null(c);
    if (code && strcmp(c, code))
        fail_msg("expected error code %s, got %s", code, c);
    json_decref(j);
    assert_non_null(strstr(r->headers, "Content-Type: application/json"));
}

static int ts_header_has(const ts_resp *r, const char *line)
{
    return strstr(r->headers, line) != NULL;
}

/* Searches q (k hits) and returns the parsed response (caller decrefs). */
static json_t *ts_search(const char *q, int k)
{
    json_t *req = json_pack("{s:s,s:i}", "query", q, "k", k);
    char *body = json_dumps(req, 0);
    ts_resp r;
    int st = ts_post("/search", body, NULL, &r);
    if (st != 200)
        fail_msg("search '%s': %d %.300s", q, st, r.body);
    json_t *j = ts_json(&r);
    ts_resp_free(&r);
    free(body);
    json_decref(req);
    return j;
}

/* ---- fixture ---------------------------------------------------------------------------- */

static void *ts_server_main(void *arg)
{
    srv_server_run(arg);
    return NULL;
}

static int ts_setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    strcpy(T.dir, "/tmp/lexis-test-server-XXXXXX");
    if (!mkdtemp(T.dir))
        return -1;
    char path[300];
    snprintf(path, sizeof path, "%s/idx", T.dir);
    char err[256];
    idx_create_params cp = idx_create_default_params();
    if (idx_env_open(path, IDX_CREATE, &cp, &T.env, err, sizeof err)) {
        fprintf(stderr, "create: %s\n", err);
        return -1;
    }
    idx_writer *w;
    if (idx_writer_open(T.env, NULL, &w))
        return -1;
    const char *names[] = { "title", "text" };
    for (int i = 0; i < TS_NDOCS; i++) {
        char id[32], title[128], text[512];
        snprintf(id, sizeof id, "d%03d", i);
        snprintf(title, sizeof title, "Document %d about %s", i, i % 2 ? "parsers" : "gardens");
        snprintf(text, sizeof text,
                 "Some common words come first, then the unique token uniq%03d, and a few "
                 "more words about %s and ranking and indexes to fill the line.",
                 i, i % 3 ? "compression" : "astronomy");
        const char *vals[] = { title, text };
        size_t lens[] = { strlen(title), strlen(text) };
        if (idx_writer_add(w, id, strlen(id), names, vals, lens, 2))
            return -1;
    }
    if (idx_writer_close(w))
        return -1;
    snprintf(T.logpath, sizeof T.logpath, "%s/access.log", T.dir);
    T.logfd = open(T.logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    srv_params p = srv_default_params();
    p.port = 0;
    p.threads = 4;
    p.api_key = TS_KEY;
    p.max_body = 256 << 10;
    p.max_search_body = 4 << 10;
    p.max_query_bytes = 256;
    p.max_k = 100;
    p.timeout_s = 1.0;
    p.shutdown_grace_s = 5;
    p.access_log_fd = T.logfd;
    if (srv_server_open(T.env, &p, &T.s, err, sizeof err)) {
        fprintf(stderr, "srv_server_open: %s\n", err);
        return -1;
    }
    T.port = srv_server_port(T.s);
    if (pthread_create(&T.th, NULL, ts_server_main, T.s))
        return -1;
    /* Wait until it answers. */
    for (int i = 0; i < 200; i++) {
        int fd = ts_connect(T.port);
        if (fd >= 0) {
            close(fd);
            break;
        }
        ts_sleep_ms(10);
    }
    return 0;
}

static int ts_teardown(void **state)
{
    (void)state;
    srv_server_stop(T.s);
    pthread_join(T.th, NULL);
    srv_server_close(T.s);
    idx_env_close(T.env);
    close(T.logfd);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", T.dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int ts_roundtrip(int fd, const char *req, size_t req_len, ts_resp *r);

/* ---- a side server: its own small index and limits ------------------------------------- */

typedef struct ts_side {
    char dir[256];
    char path[300];
    idx_env *env;
    srv_server *s;
    pthread_t th;
    int port;
    _Atomic int done;            /* srv_server_run returned */
    double t_done;
} ts_side;

static void *ts_side_main(void *arg)
{
    ts_side *x = arg;
    srv_server_run(x->s);
    x->t_done = ts_now();
    atomic_store(&x->done, 1);
    return NULL;
}

/* An index of n documents ("side<i>", token "sidetok<i>") and a server over
 * it with p (port 0 and the access log off are set here), running. */
static void ts_side_open(ts_side *x, srv_params *p, int n)
{
    memset(x, 0, sizeof *x);
    strcpy(x->dir, "/tmp/lexis-test-side-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    snprintf(x->path, sizeof x->path, "%s/idx", x->dir);
    char err[256];
    idx_create_params cp = idx_create_default_params();
    assert_int_equal(idx_env_open(x->path, IDX_CREATE, &cp, &x->env, err, sizeof err), 0);
    idx_writer *w;
    assert_int_equal(idx_writer_open(x->env, NULL, &w), 0);
    const char *names[] = { "title", "text" };
    for (int i = 0; i < n; i++) {
        char id[32], text[64];
        snprintf(id, sizeof id, "side%d", i);
        snprintf(text, sizeof text, "sidetok%d common words", i);
        const char *vals[] = { id, text };
        size_t lens[] = { strlen(id), strlen(text) };
        assert_int_equal(idx_writer_add(w, id, strlen(id), names, vals, lens, 2), 0);
    }
    assert_int_equal(idx_writer_close(w), 0);
    p->port = 0;
    p->access_log_fd = -1;
    if (srv_server_open(x->env, p, &x->s, err, sizeof err))
        fail_msg("side server: %s", err);
    x->port = srv_server_port(x->s);
    assert_int_equal(pthread_create(&x->th, NULL, ts_side_main, x), 0);
}

/* Stops (if still running), joins, closes, removes. */
static void ts_side_close(ts_side *x)
{
    srv_server_stop(x->s);
    pthread_join(x->th, NULL);
    srv_server_close(x->s);
    idx_env_close(x->env);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", x->dir);
    assert_int_equal(system(cmd), 0);
}

/* Write jobs ever queued on s (the writer's counter). */
static uint64_t ts_submitted(srv_server *s)
{
    pthread_mutex_lock(&s->wr.mu);
    uint64_t v = s->wr.submitted;
    pthread_mutex_unlock(&s->wr.mu);
    return v;
}

/* Waits until s has queued `want` write jobs and the writer has taken
 * them all off the queue (with the map lock held by the test, the writer
 * then waits for it inside the group, before committing). */
static void ts_wait_writer_took(srv_server *s, uint64_t want)
{
    double t0 = ts_now();
    for (;;) {
        pthread_mutex_lock(&s->wr.mu);
        int ok = s->wr.submitted >= want && s->wr.queued == 0;
        pthread_mutex_unlock(&s->wr.mu);
        if (ok)
            return;
        if (ts_now() - t0 > 10)
            fail_msg("the writer did not take %llu jobs in 10 s", (unsigned long long)want);
        ts_sleep_ms(2);
    }
}

/* Opens a connection and sends one request without reading the answer. */
static int ts_send_request(int port, const char *method, const char *path, const char *extra,
                           const char *body)
{
    int fd = ts_connect(port);
    assert_true(fd >= 0);
    char head[1024];
    size_t bl = body ? strlen(body) : 0;
    int hn = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %zu\r\n\r\n",
                      method, path, extra ? extra : "", bl);
    assert_int_equal(ts_send_all(fd, head, (size_t)hn), 0);
    if (bl)
        assert_int_equal(ts_send_all(fd, body, bl), 0);
    return fd;
}

/* Reads one response from fd (until Content-Length is complete or EOF). */
static int ts_read_response(int fd, ts_resp *r)
{
    return ts_roundtrip(fd, "", 0, r);
}

/* ---- happy paths ------------------------------------------------------------------------- */

static void test_health(void **state)
{
    (void)state;
    ts_resp r;
    assert_int_equal(ts_get("/health", &r), 200);
    json_t *j = ts_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    assert_true(json_integer_value(json_object_get(j, "documents")) >= TS_NDOCS);
    json_decref(j);
    ts_resp_free(&r);
    /* HEAD: same status, no body. */
    assert_int_equal(ts_http(T.port, "HEAD", "/health", NULL, NULL, 0, &r), 200);
    assert_int_equal(r.body_len, 0);
    ts_resp_free(&r);
    /* The query string is ignored. */
    assert_int_equal(ts_get("/health?verbose=1", &r), 200);
    ts_resp_free(&r);
}

static void test_stats(void **state)
{
    (void)state;
    ts_resp r;
    assert_int_equal(ts_get("/stats", &r), 200);
    json_t *j = ts_json(&r);
    assert_true(json_integer_value(json_object_get(j, "documents")) >= TS_NDOCS);
    assert_true(json_integer_value(json_object_get(j, "index_bytes")) > 0);
    json_t *f = json_object_get(j, "fields");
    assert_int_equal(json_array_size(f), 2);
    assert_string_equal(json_string_value(json_array_get(f, 0)), "title");
    json_t *sv = json_object_get(j, "server");
    assert_int_equal(json_integer_value(json_object_get(sv, "threads")), 4);
    assert_true(json_is_true(json_object_get(sv, "writes")));
    assert_true(json_is_true(json_object_get(sv, "writer_lock")));
    json_decref(j);
    ts_resp_free(&r);
}

static void test_metrics(void **state)
{
    (void)state;
    ts_resp r;
    assert_int_equal(ts_get("/health", &r), 200);
    ts_resp_free(&r);
    assert_int_equal(ts_get("/nowhere", &r), 404);
    ts_resp_free(&r);
    assert_int_equal(ts_get("/metrics", &r), 200);
    assert_true(ts_header_has(&r, "Content-Type: text/plain; version=0.0.4"));
    const char *want[] = {
        "# TYPE lexis_http_requests_total counter",
        "lexis_http_requests_total{route=\"/health\",status=\"200\"} ",
        "lexis_http_requests_total{route=\"other\",status=\"404\"} ",
        "# TYPE lexis_http_request_duration_seconds histogram",
        "lexis_http_request_duration_seconds_bucket{route=\"/health\",le=\"+Inf\"} ",
        "lexis_http_request_duration_seconds_count{route=\"/health\"} ",
        "lexis_http_errors_total{code=\"not_found\"} ",
        "lexis_index_documents ",
        "lexis_index_size_bytes ",
        "lexis_write_visible_seconds_bucket{le=\"0.01\"} ",
        "lexis_http_connections ",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(r.body, want[i]))
            fail_msg("/metrics lacks '%s'", want[i]);
    /* Buckets are cumulative: +Inf equals _count. */
    const char *inf = strstr(r.body, "lexis_http_request_duration_seconds_bucket{route=\"/health\",le=\"+Inf\"} ");
    const char *cnt = strstr(r.body, "lexis_http_request_duration_seconds_count{route=\"/health\"} ");
    assert_int_equal(atol(strchr(inf, '}') + 2), atol(strchr(cnt, '}') + 2));
    assert_true(atol(strchr(cnt, '}') + 2) >= 1);
    ts_resp_free(&r);
}

static void test_page(void **state)
{
    (void)state;
    ts_resp r;
    assert_int_equal(ts_get("/", &r), 200);
    assert_true(ts_header_has(&r, "Content-Type: text/html"));
    assert_true(ts_header_has(&r, "Content-Security-Policy:"));
    assert_non_null(strstr(r.body, "<input id=\"q\""));
    assert_non_null(strstr(r.body, "fetch(\"/search\""));
    ts_resp_free(&r);
    assert_int_equal(ts_http(T.port, "HEAD", "/", NULL, NULL, 0, &r), 200);
    assert_int_equal(r.body_len, 0);
    ts_resp_free(&r);
}

/* The code points [a, b) of s as UTF-8, into out. */
static void ts_cp_slice(const char *s, long a, long b, char *out, size_t cap)
{
    long cp = -1;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xC0) != 0x80)
            cp++;
        if (cp >= a && cp < b && o + 1 < cap)
            out[o++] = (char)*p;
    }
    out[o] = '\0';
}

static void test_search(void **state)
{
    (void)state;
    json_t *j = ts_search("uniq042", 5);
    json_t *hits = json_object_get(j, "hits");
    assert_int_equal(json_array_size(hits), 1);
    json_t *h = json_array_get(hits, 0);
    assert_string_equal(json_string_value(json_object_get(h, "id")), "d042");
    assert_true(json_real_value(json_object_get(h, "score")) > 0);
    assert_string_equal(json_string_value(json_object_get(h, "title")), "Document 42 about gardens");
    assert_true(json_is_number(json_object_get(j, "took_ms")));
    /* The snippet's highlight covers exactly the token. */
    const char *sn = json_string_value(json_object_get(h, "snippet"));
    json_t *hl = json_object_get(h, "highlights");
    assert_int_equal(json_array_size(hl), 1);
    char word[64];
    ts_cp_slice(sn, json_integer_value(json_array_get(json_array_get(hl, 0), 0)),
                json_integer_value(json_array_get(json_array_get(hl, 0), 1)), word, sizeof word);
    assert_string_equal(word, "uniq042");
    json_decref(j);

    /* Stemming: "parser" highlights "parsers" in titles; k is honoured. */
    j = ts_search("parser", 3);
    hits = json_object_get(j, "hits");
    assert_int_equal(json_array_size(hits), 3);
    h = json_array_get(hits, 0);
    const char *title = json_string_value(json_object_get(h, "title"));
    hl = json_object_get(h, "title_highlights");
    assert_int_equal(json_array_size(hl), 1);
    ts_cp_slice(title, json_integer_value(json_array_get(json_array_get(hl, 0), 0)),
                json_integer_value(json_array_get(json_array_get(hl, 0), 1)), word, sizeof word);
    assert_string_equal(word, "parsers");
    json_decref(j);

    /* Every option, and no snippets. */
    ts_resp r;
    assert_int_equal(ts_post("/search",
                             "{\"query\":\"compression ranking\",\"k\":7,\"algo\":\"bmw\","
                             "\"rm3\":{\"fb_docs\":5,\"fb_terms\":5,\"orig_weight\":0.6},"
                             "\"snippets\":false,\"mode\":\"bm25\",\"rerank\":false,\"k1\":1.2,\"b\":0.75}",
                             NULL, &r), 200);
    j = ts_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "hits")), 7);
    assert_null(json_object_get(json_array_get(json_object_get(j, "hits"), 0), "snippet"));
    json_decref(j);
    ts_resp_free(&r);

    /* Conjunctive: every hit has both terms. */
    assert_int_equal(ts_post("/search", "{\"query\":\"uniq005 compression\",\"and\":true}", NULL, &r), 200);
    j = ts_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "hits")), 1);
    json_decref(j);
    ts_resp_free(&r);
    assert_int_equal(ts_post("/search", "{\"query\":\"uniq006 compression\",\"and\":true}", NULL, &r), 200);
    j = ts_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "hits")), 0);   /* 6 % 3 == 0: astronomy */
    json_decref(j);
    ts_resp_free(&r);

    /* Nothing matches: 0 hits, not an error. */
    j = ts_search("zzzzqqqq", 10);
    assert_int_equal(json_array_size(json_object_get(j, "hits")), 0);
    json_decref(j);
}

static void test_doc_get(void **state)
{
    (void)state;
    ts_resp r;
    assert_int_equal(ts_get("/docs/d007", &r), 200);
    json_t *j = ts_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "_id")), "d007");
    assert_string_equal(json_string_value(json_object_get(j, "title")), "Document 7 about parsers");
    assert_non_null(strstr(json_string_value(json_object_get(j, "text")), "uniq007"));
    json_decref(j);
    ts_resp_free(&r);

    assert_int_equal(ts_get("/docs/nope", &r), 404);
    ts_assert_error(&r, 404, "not_found");
    ts_resp_free(&r);
    /* Invalid UTF-8 in the id: still a clean JSON 404. */
    assert_int_equal(ts_get("/docs/%FF%FE", &r), 404);
    ts_assert_error(&r, 404, "not_found");
    ts_resp_free(&r);
    /* Malformed percent-encoding, an encoded NUL, an empty id. */
    assert_int_equal(ts_get("/docs/%zz", &r), 400);
    ts_assert_error(&r, 400, "bad_request");
    ts_resp_free(&r);
    assert_int_equal(ts_get("/docs/a%00b", &r), 400);
    ts_resp_free(&r);
    assert_int_equal(ts_get("/docs/", &r), 404);
    ts_resp_free(&r);
}

/* ---- error paths ----------------------------------------------------------------------------- */

static void test_search_errors(void **state)
{
    (void)state;
    static const struct { const char *body; int status; const char *code; } cases[] = {
        { "{\"query\": \"abc\"", 400, "bad_json" },                   /* truncated */
        { "not json at all", 400, "bad_json" },
        { "", 400, "bad_json" },
        { "{\"query\": \"caf\xff\"}", 400, "bad_json" },             /* invalid UTF-8 */
        { "{\"query\": \"a\\u0000b\"}", 400, "bad_json" },            /* NUL */
        { "{\"query\": \"a\", \"query\": \"b\"}", 400, "bad_json" },  /* duplicate key */
        { "[\"query\"]", 400, "bad_request" },
        { "{}", 400, "bad_request" },
        { "{\"query\": 5}", 400, "bad_request" },
        { "{\"query\": \"a\", \"k\": 0}", 400, "bad_request" },
        { "{\"query\": \"a\", \"k\": 101}", 400, "bad_request" },
        { "{\"query\": \"a\", \"k\": \"10\"}", 400, "bad_request" },
        { "{\"query\": \"a\", \"k\": 2.5}", 400, "bad_request" },
        { "{\"query\": \"a\", \"algo\": \"fast\"}", 400, "bad_request" },
        { "{\"query\": \"a\", \"and\": 1}", 400, "bad_request" },
        { "{\"query\": \"a\", \"rm3\": \"yes\"}", 400, "bad_request" },
        { "{\"query\": \"a\", \"rm3\": {\"fb_docs\": 0}}", 400, "bad_request" },
        { "{\"query\": \"a\", \"mode\": \"sparse\"}", 400, "bad_request" },
        { "{\"query\": \"a\", \"rerank\": true}", 400, "bad_request" },
        { "{\"query\": \"a\", \"b\": 2}", 400, "bad_request" },
        { "{\"query\": \"a\", \"kk\": 3}", 400, "bad_request" },       /* unknown field */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ts_resp r;
        ts_http(T.port, "POST", "/search", NULL, cases[i].body, strlen(cases[i].body), &r);
        if (r.status != cases[i].status)
            fail_msg("case %zu (%s): expected %d, got %d", i, cases[i].body, cases[i].status, r.status);
        ts_assert_error(&r, cases[i].status, cases[i].code);
        ts_resp_free(&r);
    }
    /* A query over 256 bytes. */
    char body[600];
    char q[300];
    memset(q, 'a', 257);
    q[257] = '\0';
    snprintf(body, sizeof body, "{\"query\":\"%s\"}", q);
    ts_resp r;
    ts_post("/search", body, NULL, &r);
    ts_assert_error(&r, 400, "query_too_long");
    ts_resp_free(&r);
    /* A search body over 4 KiB: JSON 413. */
    char *big = malloc(8192);
    memset(big, ' ', 8191);
    big[8191] = '\0';
    memcpy(big, "{\"query\":\"a\"", 12);
    big[8190] = '}';
    ts_post("/search", big, NULL, &r);
    ts_assert_error(&r, 413, "payload_too_large");
    ts_resp_free(&r);
    free(big);
    /* Wrong method. */
    assert_int_equal(ts_get("/search", &r), 405);
    ts_assert_error(&r, 405, "method_not_allowed");
    assert_true(ts_header_has(&r, "Allow: POST"));
    ts_resp_free(&r);
}

static void test_routes_errors(void **state)
{
    (void)state;
    ts_resp r;
    assert_int_equal(ts_get("/no/such/thing", &r), 404);
    ts_assert_error(&r, 404, "not_found");
    ts_resp_free(&r);
    assert_int_equal(ts_http(T.port, "DELETE", "/health", NULL, NULL, 0, &r), 405);
    ts_assert_error(&r, 405, "method_not_allowed");
    assert_true(ts_header_has(&r, "Allow: GET, HEAD"));
    ts_resp_free(&r);
    assert_int_equal(ts_get("/docs", &r), 405);
    assert_true(ts_header_has(&r, "Allow: POST"));
    ts_resp_free(&r);
    assert_int_equal(ts_http(T.port, "PUT", "/docs/d001", NULL, "{}", 2, &r), 405);
    assert_true(ts_header_has(&r, "Allow: GET, HEAD, DELETE"));
    ts_resp_free(&r);
    assert_int_equal(ts_http(T.port, "PATCH", "/stats", NULL, "{}", 2, &r), 405);
    ts_resp_free(&r);
    assert_int_equal(ts_http(T.port, "OPTIONS", "/search", NULL, NULL, 0, &r), 204);
    assert_true(ts_header_has(&r, "Allow: POST"));
    ts_resp_free(&r);
    /* Every route refuses the methods it does not serve. */
    static const struct { const char *method, *path, *allow; } wrong[] = {
        { "POST", "/", "GET, HEAD" },           { "PUT", "/index.html", "GET, HEAD" },
        { "POST", "/health", "GET, HEAD" },     { "DELETE", "/stats", "GET, HEAD" },
        { "POST", "/metrics", "GET, HEAD" },    { "PUT", "/search", "POST" },
        { "DELETE", "/docs", "POST" },          { "POST", "/docs/d001", "GET, HEAD, DELETE" },
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        ts_http(T.port, wrong[i].method, wrong[i].path, TS_AUTH, "{}", 2, &r);
        if (r.status != 405)
            fail_msg("%s %s: %d, want 405", wrong[i].method, wrong[i].path, r.status);
        ts_assert_error(&r, 405, "method_not_allowed");
        char allow[64];
        snprintf(allow, sizeof allow, "Allow: %s\r", wrong[i].allow);
        if (!ts_header_has(&r, allow))
            fail_msg("%s %s: no '%s' header", wrong[i].method, wrong[i].path, wrong[i].allow);
        ts_resp_free(&r);
    }
    /* An unknown method. */
    ts_http(T.port, "TRACE", "/health", NULL, NULL, 0, &r);
    ts_assert_error(&r, 405, "method_not_allowed");
    ts_resp_free(&r);
}

static void test_auth(void **state)
{
    (void)state;
    const char *doc = "{\"_id\":\"auth1\",\"title\":\"t\",\"text\":\"x\"}\n";
    ts_resp r;
    ts_post("/docs", doc, NULL, &r);
    ts_assert_error(&r, 401, "unauthorized");
    assert_true(ts_header_has(&r, "WWW-Authenticate: Bearer"));
    ts_resp_free(&r);
    ts_post("/docs", doc, "Authorization: Bearer wrong-key\r\n", &r);
    ts_assert_error(&r, 401, "unauthorized");
    ts_resp_free(&r);
    ts_post("/docs", doc, "Authorization: Bearer " TS_KEY "x\r\n", &r);   /* a prefix matches */
    ts_assert_error(&r, 401, "unauthorized");
    ts_resp_free(&r);
    ts_post("/docs", doc, "Authorization: Basic " TS_KEY "\r\n", &r);
    ts_assert_error(&r, 401, "unauthorized");
    ts_resp_free(&r);
    ts_http(T.port, "DELETE", "/docs/d001", NULL, NULL, 0, &r);
    ts_assert_error(&r, 401, "unauthorized");
    ts_resp_free(&r);
    /* Nothing was written. */
    assert_int_equal(ts_get("/docs/auth1", &r), 404);
    ts_resp_free(&r);
    assert_int_equal(ts_get("/docs/d001", &r), 200);
    ts_resp_free(&r);
    /* The right key (scheme in any case). */
    assert_int_equal(ts_post("/docs", doc, "Authorization: bearer " TS_KEY "\r\n", &r), 200);
    ts_resp_free(&r);
    assert_int_equal(ts_get("/docs/auth1", &r), 200);
    ts_resp_free(&r);
}

static void test_docs_write(void **state)
{
    (void)state;
    ts_resp r;
    /* JSON lines: good lines, a bad line, invalid UTF-8, a blank line, CRLF. */
    const char *body =
        "{\"_id\":\"w1\",\"title\":\"Walrus notes\",\"text\":\"the walrus token wtoka\"}\n"
        "{\"_id\":\"w2\",\"title\":\"Second\",\"text\":\"wtokb here\"}\r\n"
        "\n"
        "{\"_id\":\"w3\",\"title\":5}\n"
        "{\"title\":\"no id\"}\n"
        "{\"_id\":\"w4\",\"text\":\"bad \xc3\x28 byte\"}\n"
        "{\"_id\":\"w5\",\"text\":\"wtokc\"}";
    assert_int_equal(ts_post("/docs", body, TS_AUTH, &r), 200);
    json_t *j = ts_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "indexed")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "replaced")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "skipped")), 3);
    json_t *errs = json_object_get(j, "errors");
    assert_int_equal(json_array_size(errs), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(errs, 0), "line")), 4);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(errs, 1), "line")), 5);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(errs, 2), "line")), 6);
    json_decref(j);
    ts_resp_free(&r);
    /* Searchable as soon as answered. */
    j = ts_search("wtoka", 10);
    assert_int_equal(json_array_size(json_object_get(j, "hits")), 1);
    json_decref(j);

    /* A JSON array; replacing w1; an integer id. */
    body = "[{\"_id\":\"w1\",\"title\":\"Walrus again\",\"text\":\"replaced wtokd\"},"
           " {\"_id\":77,\"text\":\"wtoke\"}, [1], {\"_id\":\"\"}]";
    assert_int_equal(ts_post("/docs", body, TS_AUTH, &r), 200);
    j = ts_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "indexed")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "replaced")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "skipped")), 2);
    errs = json_object_get(j, "errors");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(errs, 0), "index")), 2);
    json_decref(j);
    ts_resp_free(&r);
    j = ts_search("wtoka", 10);
    assert_int_equal(json_array_size(json_object_get(j, "hits")), 0);   /* the old w1 is gone */
    json_decref(j);
    assert_int_equal(ts_get("/docs/77", &r), 200);
    ts_resp_free(&r);

    /* Whole-request errors. */
    ts_post("/docs", "[{\"_id\":\"x\"}", TS_AUTH, &r);                 /* broken array */
    ts_assert_error(&r, 400, "bad_json");
    ts_resp_free(&r);
    ts_post("/docs", "", TS_AUTH, &r);
    ts_assert_error(&r, 400, "bad_request");
    ts_resp_free(&r);
    ts_post("/docs", "\n  \n", TS_AUTH, &r);
    ts_assert_error(&r, 400, "bad_request");
    ts_resp_free(&r);
    ts_post("/docs", "{\"nope\":1}\n{bad\n", TS_AUTH, &r);              /* nothing valid */
    ts_assert_error(&r, 400, "bad_request");
    j = ts_json(&r);
    assert_int_equal(json_array_size(json_object_get(json_object_get(j, "error"), "errors")), 2);
    json_decref(j);
    ts_resp_free(&r);

    /* Delete. */
    assert_int_equal(ts_http(T.port, "DELETE", "/docs/w2", TS_AUTH, NULL, 0, &r), 200);
    j = ts_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "deleted")), "w2");
    json_decref(j);
    ts_resp_free(&r);
    assert_int_equal(ts_get("/docs/w2", &r), 404);
    ts_resp_free(&r);
    ts_http(T.port, "DELETE", "/docs/w2", TS_AUTH, NULL, 0, &r);
    ts_assert_error(&r, 404, "not_found");
    ts_resp_free(&r);
    /* An id with a space and a slash, percent-encoded. */
    assert_int_equal(ts_post("/docs", "{\"_id\":\"a b/c\",\"text\":\"slashy\"}", TS_AUTH, &r), 200);
    ts_resp_free(&r);
    assert_int_equal(ts_get("/docs/a%20b%2Fc", &r), 200);
    ts_resp_free(&r);
    assert_int_equal(ts_http(T.port, "DELETE", "/docs/a%20b%2fc", TS_AUTH, NULL, 0, &r), 200);
    ts_resp_free(&r);
}

static void test_body_limit(void **state)
{
    (void)state;
    /* 300 KiB of documents: over max_body (256 KiB). libevent answers 413
     * itself (after reading and dropping the body). */
    size_t n = 300 << 10;
    char *body = malloc(n + 1);
    size_t o = 0;
    for (int i = 0; o + 200 < n; i++)
        o += (size_t)snprintf(body + o, n - o, "{\"_id\":\"big%d\",\"text\":\"%0100d\"}\n", i, i);
    body[o] = '\0';
    ts_resp r;
    ts_http(T.port, "POST", "/docs", TS_AUTH, body, o, &r);
    assert_int_equal(r.status, 413);
    ts_resp_free(&r);
    free(body);
    assert_int_equal(ts_get("/docs/big1", &r), 404);
    ts_resp_free(&r);
    /* The server is fine afterwards. */
    assert_int_equal(ts_get("/health", &r), 200);
    ts_resp_free(&r);
}

/* What libevent refuses before the server sees it (a malformed request
 * line, headers over max_header_bytes, a bad Content-Length) gets its
 * status and a closed connection, and the server goes on. A chunked body
 * is read like any other. */
static void test_http_garbage(void **state)
{
    (void)state;
    static const struct { const char *req; int status; } cases[] = {
        { "GARBAGE\r\n\r\n", 400 },
        { "GET /health HTTP/9.9\r\n\r\n", 400 },
        { "POST /docs HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400 },
        { "POST /docs HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400 },
    };
    ts_resp r;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = ts_connect(T.port);
        assert_int_equal(ts_send_all(fd, cases[i].req, strlen(cases[i].req)), 0);
        size_t n;
        char *all = ts_read_all(fd, &n);            /* answered, then closed */
        close(fd);
        ts_parse(all, n, &r);
        if (r.status != cases[i].status)
            fail_msg("case %zu: expected %d, got %d", i, cases[i].status, r.status);
        ts_resp_free(&r);
    }
    /* Headers over 16 KiB. */
    size_t big = 20000;
    char *req = malloc(big + 100);
    int o = sprintf(req, "GET /health HTTP/1.1\r\nX-Big: ");
    memset(req + o, 'a', big);
    strcpy(req + o + big, "\r\n\r\n");
    int fd = ts_connect(T.port);
    ts_send_all(fd, req, strlen(req));
    size_t n;
    char *all = ts_read_all(fd, &n);
    close(fd);
    free(req);
    ts_parse(all, n, &r);
    assert_true(r.status == 400 || r.status == 413);
    ts_resp_free(&r);
    /* A chunked search body. */
    const char *c1 = "{\"que", *c2 = "ry\":\"uniq002\",\"k\":1}";
    char chunked[256];
    int cn = snprintf(chunked, sizeof chunked,
                      "POST /search HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      "Connection: close\r\n\r\n%zx\r\n%s\r\n%zx\r\n%s\r\n0\r\n\r\n",
                      strlen(c1), c1, strlen(c2), c2);
    fd = ts_connect(T.port);
    assert_int_equal(ts_send_all(fd, chunked, (size_t)cn), 0);
    all = ts_read_all(fd, &n);
    close(fd);
    ts_parse(all, n, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"d002\""));
    ts_resp_free(&r);
    /* An id that is invalid UTF-8 once decoded: DELETE answers a JSON 404. */
    ts_http(T.port, "DELETE", "/docs/%FF%FEx", TS_AUTH, NULL, 0, &r);
    ts_assert_error(&r, 404, "not_found");
    ts_resp_free(&r);
    /* The server is fine. */
    assert_int_equal(ts_get("/health", &r), 200);
    ts_resp_free(&r);
}

/* A client that sends half a request and stalls is disconnected after the
 * timeout (1 s here); meanwhile everyone else is served at once. */
static void test_slow_client(void **state)
{
    (void)state;
    int slow[8];
    for (int i = 0; i < 8; i++) {
        slow[i] = ts_connect(T.port);
        assert_true(slow[i] >= 0);
        const char *part = i % 2 ? "GET /health HTTP/1.1\r\nHost: x\r\n"
                                 : "POST /search HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"que";
        assert_int_equal(ts_send_all(slow[i], part, strlen(part)), 0);
    }
    double t0 = ts_now(), slowest = 0;
    for (int i = 0; i < 20; i++) {
        ts_resp r;
        double t1 = ts_now();
        assert_int_equal(ts_get("/health", &r), 200);
        ts_resp_free(&r);
        if (ts_now() - t1 > slowest)
            slowest = ts_now() - t1;
    }
    /* Had the stalled clients held workers, a request would wait for the
     * 1 s timeout. */
    if (slowest > 0.5)
        fail_msg("a request took %.3f s while slow clients stalled", slowest);
    /* Each slow socket gets closed (EOF, or an error response then EOF). */
    for (int i = 0; i < 8; i++) {
        struct pollfd pf = { slow[i], POLLIN, 0 };
        double ts = ts_now();
        int closed = 0;
        while (!closed && ts_now() - ts < 5) {
            if (poll(&pf, 1, 5000) <= 0)
                break;
            char buf[4096];
            ssize_t k = recv(slow[i], buf, sizeof buf, 0);
            if (k <= 0)
                closed = 1;
        }
        if (!closed)
            fail_msg("slow client %d still connected %.1f s after the timeout", i, ts_now() - t0);
        close(slow[i]);
    }
    assert_true(ts_now() - t0 < 4.5);
    /* An idle kept-alive connection is closed too. */
    int fd = ts_connect(T.port);
    const char *req = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(ts_send_all(fd, req, strlen(req)), 0);
    char buf[4096];
    ssize_t k = recv(fd, buf, sizeof buf, 0);
    assert_true(k > 0);
    assert_int_equal(strncmp(buf, "HTTP/1.1 200", 12), 0);
    t0 = ts_now();
    struct pollfd pf = { fd, POLLIN, 0 };
    assert_int_equal(poll(&pf, 1, 5000), 1);
    assert_true(recv(fd, buf, sizeof buf, 0) <= 0);
    double idle = ts_now() - t0;
    assert_true(idle > 0.5 && idle < 3.5);
    close(fd);
}

/* Sends req on a kept-alive connection and reads one response (headers
 * and Content-Length bytes) into r. Returns the status, -1 on EOF. */
static int ts_roundtrip(int fd, const char *req, size_t req_len, ts_resp *r)
{
    memset(r, 0, sizeof *r);
    if (ts_send_all(fd, req, req_len))
        return -1;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    long want = -1;
    while (want < 0 || n < (size_t)want) {
        if (cap - n < 4096) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t k = recv(fd, buf + n, cap - n, 0);
        if (k <= 0) {
            free(buf);
            return -1;
        }
        n += (size_t)k;
        buf[n] = '\0';
        char *sep = strstr(buf, "\r\n\r\n");
        char *cl = strstr(buf, "Content-Length: ");
        if (sep && cl && cl < sep)
            want = (long)(sep + 4 - buf) + atol(cl + 16);
        else if (sep)
            want = (long)(sep + 4 - buf);
    }
    ts_parse(buf, n, r);
    return r->status;
}

static void test_keepalive(void **state)
{
    (void)state;
    /* Several requests on one connection. */
    int fd = ts_connect(T.port);
    const char *req = "POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: 19\r\n\r\n{\"query\":\"uniq001\"}";
    for (int i = 0; i < 5; i++) {
        ts_resp r;
        assert_int_equal(ts_roundtrip(fd, req, strlen(req), &r), 200);
        assert_non_null(strstr(r.body, "\"d001\""));
        ts_resp_free(&r);
    }
    close(fd);
}

/* A reply over 16 KiB leaves in several writes; with Nagle on the server's
 * socket each later write waited for the client's delayed ACK (40 ms). */
static void test_large_reply_latency(void **state)
{
    (void)state;
    int fd = ts_connect(T.port);
    int one = 0;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);   /* a plain client */
    const char *body = "{\"query\":\"common words ranking\",\"k\":100}";
    char req[256];
    int n = snprintf(req, sizeof req, "POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    double lat[7];
    for (int i = 0; i < 7; i++) {
        ts_resp r;
        double t0 = ts_now();
        assert_int_equal(ts_roundtrip(fd, req, (size_t)n, &r), 200);
        lat[i] = ts_now() - t0;
        if (r.body_len <= 16384)
            fail_msg("reply of %zu bytes: want more than one write (16 KiB)", r.body_len);
        ts_resp_free(&r);
    }
    close(fd);
    for (int i = 1; i < 7; i++)
        for (int k = i; k > 0 && lat[k] < lat[k - 1]; k--) {
            double t = lat[k];
            lat[k] = lat[k - 1];
            lat[k - 1] = t;
        }
    print_message("large reply (k=100, > 16 KiB) on a kept-alive connection: median %.2f ms\n",
                  lat[3] * 1e3);
    if (lat[3] > 0.030)
        fail_msg("median %.1f ms for a large reply: Nagle + delayed ACK?", lat[3] * 1e3);
}

/* Sends a search body one byte every 150 ms (each gap under the 1 s
 * timeout, the whole well over it). */
typedef struct ts_dribble {
    int status;
    int found;
} ts_dribble;

static void *ts_dribbler(void *arg)
{
    ts_dribble *d = arg;
    const char *body = "{\"query\":\"uniq004\"}";
    char head[128];
    snprintf(head, sizeof head, "POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             strlen(body));
    int fd = ts_connect(T.port);
    d->status = -1;
    if (fd < 0 || ts_send_all(fd, head, strlen(head)))
        return NULL;
    for (const char *c = body; *c; c++) {
        ts_sleep_ms(150);
        if (ts_send_all(fd, c, 1))
            return NULL;
    }
    ts_resp r;
    d->status = ts_read_response(fd, &r);
    d->found = d->status == 200 && strstr(r.body, "\"d004\"") != NULL;
    ts_resp_free(&r);
    close(fd);
    return NULL;
}

/* Slow clients of two more kinds. A dribbler, sending a byte at a time
 * under the timeout, is served in the end and holds no worker meanwhile
 * (it holds a connection: max_connections bounds those). A reader that
 * pipelines requests for large replies and never reads: once the socket
 * buffers are full the server's write makes no progress, and after the
 * timeout the server drops the connection; others are served meanwhile. */
static void test_slow_dribbler_and_reader(void **state)
{
    (void)state;
    ts_dribble d = { 0, 0 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, ts_dribbler, &d), 0);

    int fd = ts_connect(T.port);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const char *body = "{\"query\":\"common words ranking\",\"k\":100}";
    char req[256];
    int n = snprintf(req, sizeof req, "POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    int sent = 0;
    for (int i = 0; i < 400; i++, sent++)
        if (send(fd, req, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
            break;                               /* the server stopped reading */
    double t0 = ts_now(), slowest = 0;
    while (ts_now() - t0 < 2.5) {
        ts_resp r;
        double t1 = ts_now();
        assert_int_equal(ts_get("/health", &r), 200);
        ts_resp_free(&r);
        if (ts_now() - t1 > slowest)
            slowest = ts_now() - t1;
        ts_sleep_ms(50);
    }
    if (slowest > 0.5)
        fail_msg("a request took %.3f s while slow clients were connected", slowest);
    /* Dropped by the server: its connection count falls to zero while the
     * client still holds the socket open (the kernel would go on delivering
     * what was queued before the close, at the pace of a 4 KiB window). */
    pthread_join(th, NULL);
    double t2 = ts_now();
    while (atomic_load(&T.s->conns) != 0 && ts_now() - t2 < 5)
        ts_sleep_ms(20);
    if (atomic_load(&T.s->conns) != 0)
        fail_msg("the non-reading client was not dropped (%llu connections open)",
                 (unsigned long long)atomic_load(&T.s->conns));
    print_message("slow reader: %d requests pipelined, never read; dropped %.1f s after the "
                  "others' check began\n", sent, ts_now() - t0);
    close(fd);
    assert_int_equal(d.status, 200);
    assert_true(d.found);
}

/* Every line of the access log has the documented format:
 *   2025-11-25T09:17:03.512Z 127.0.0.1 POST /search 200 1432 187us
 * one line per request (deferred writes included), the bytes are the body
 * sent (0 for HEAD), and bytes outside printable ASCII in the target are
 * written as \xHH. */
static void test_access_log(void **state)
{
    (void)state;
    ts_resp r;
    size_t health_len = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ts_get("/health?from=access-log-test", &r), 200);
        health_len = r.body_len;
        ts_resp_free(&r);
    }
    assert_int_equal(ts_http(T.port, "HEAD", "/health?from=access-log-head", NULL, NULL, 0, &r), 200);
    ts_resp_free(&r);
    const char *doc = "{\"_id\":\"logged1\",\"text\":\"logtok\"}";
    assert_int_equal(ts_post("/docs?from=access-log-write", doc, TS_AUTH, &r), 200);
    size_t write_len = r.body_len;
    ts_resp_free(&r);
    /* Raw bytes in the target: a control byte, DEL, invalid UTF-8, a backslash. */
    int fd = ts_connect(T.port);
    const char raw[] = "GET /docs/lg\x01\x7f\xff\\x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(ts_send_all(fd, raw, sizeof raw - 1), 0);
    size_t n;
    char *all = ts_read_all(fd, &n);
    close(fd);
    ts_parse(all, n, &r);
    ts_assert_error(&r, 404, "not_found");        /* valid JSON despite the bytes */
    ts_resp_free(&r);

    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                             "(127\\.0\\.0\\.1|-) (GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|OTHER) "
                             "[!-~]+ [0-9]{3} ([0-9]+) [0-9]+us\n$",
                             REG_EXTENDED), 0);
    FILE *f = fopen(T.logpath, "r");
    assert_non_null(f);
    char line[4096];
    int lines = 0, gets = 0, heads = 0, writes = 0, rawline = 0;
    while (fgets(line, sizeof line, f)) {
        lines++;
        regmatch_t m[4];            /* the line, the peer, the method, the bytes */
        if (regexec(&re, line, 4, m, 0) != 0)
            fail_msg("access log line %d does not match the format: %s", lines, line);
        long bytes = atol(line + m[3].rm_so);
        if (strstr(line, " GET /health?from=access-log-test 200 ")) {
            gets++;
            assert_int_equal(bytes, (long)health_len);
        } else if (strstr(line, " HEAD /health?from=access-log-head 200 ")) {
            heads++;
            assert_int_equal(bytes, 0);
        } else if (strstr(line, " POST /docs?from=access-log-write 200 ")) {
            writes++;
            assert_int_equal(bytes, (long)write_len);
        } else if (strstr(line, " GET /docs/lg\\x01\\x7f\\xff\\x5cx 404 ")) {
            rawline++;
        }
    }
    fclose(f);
    regfree(&re);
    assert_true(lines > 10);
    assert_int_equal(gets, 3);
    assert_int_equal(heads, 1);
    assert_int_equal(writes, 1);
    assert_int_equal(rawline, 1);
}

/* ---- concurrency -------------------------------------------------------------------------------- */

#define TC_WRITERS 4
#define TC_ROUNDS 25
#define TC_PER 4
#define TC_READERS 4

typedef struct tc_arg {
    int id;
    int errors;
    int searches;
    _Atomic int *stop;
    char msg[256];
} tc_arg;

/* Writer w, round r adds documents cw<w>_<r>_<i> (i < TC_PER), each with the
 * token "cwtok<w>x<r>x<i>"; every 5th round it re-posts the previous round
 * (replacements) and deletes document 0 of the round before that. */
static void *tc_writer(void *p)
{
    tc_arg *a = p;
    char body[4096];
    for (int r = 0; r < TC_ROUNDS; r++) {
        size_t o = 0;
        for (int i = 0; i < TC_PER; i++)
            o += (size_t)snprintf(body + o, sizeof body - o,
                                  "{\"_id\":\"cw%d_%d_%d\",\"title\":\"writer %d\",\"text\":\"cwtok%dx%dx%d common\"}\n",
                                  a->id, r, i, a->id, a->id, r, i);
        if (r % 5 == 4)
            for (int i = 0; i < TC_PER; i++)
                o += (size_t)snprintf(body + o, sizeof body - o,
                                      "{\"_id\":\"cw%d_%d_%d\",\"title\":\"writer %d again\",\"text\":\"cwtok%dx%dx%d common\"}\n",
                                      a->id, r - 1, i, a->id, a->id, r - 1, i);
        ts_resp resp;
        int st = ts_http(T.port, "POST", "/docs", TS_AUTH, body, o, &resp);
        if (st != 200) {
            snprintf(a->msg, sizeof a->msg, "POST /docs: %d %.150s", st, resp.body);
            a->errors++;
        }
        ts_resp_free(&resp);
        if (r % 5 == 4) {
            char path[64];
            snprintf(path, sizeof path, "/docs/cw%d_%d_0", a->id, r - 2);
            st = ts_http(T.port, "DELETE", path, TS_AUTH, NULL, 0, &resp);
            if (st != 200) {
                snprintf(a->msg, sizeof a->msg, "DELETE: %d %.150s", st, resp.body);
                a->errors++;
            }
            ts_resp_free(&resp);
        }
    }
    return NULL;
}

static void *tc_reader(void *p)
{
    tc_arg *a = p;
    const char *qs[] = { "common writer", "compression ranking", "uniq010", "parsers gardens", "cwtok1x3x2" };
    int i = 0;
    while (!atomic_load(a->stop)) {
        const char *q = qs[i++ % 5];
        char body[128];
        int n = snprintf(body, sizeof body, "{\"query\":\"%s\",\"k\":20}", q);
        ts_resp r;
        int st = ts_http(T.port, "POST", "/search", NULL, body, (size_t)n, &r);
        json_error_t je;
        json_t *j = st == 200 ? json_loadb(r.body, r.body_len, 0, &je) : NULL;
        if (!j || !json_is_array(json_object_get(j, "hits"))) {
            snprintf(a->msg, sizeof a->msg, "search: %d %.150s", st, r.body);
            a->errors++;
        } else {
            /* No document twice in one result. */
            json_t *hits = json_object_get(j, "hits");
            for (size_t x = 0; x < json_array_size(hits); x++)
                for (size_t y = x + 1; y < json_array_size(hits); y++)
                    if (!strcmp(json_string_value(json_object_get(json_array_get(hits, x), "id")),
                                json_string_value(json_object_get(json_array_get(hits, y), "id")))) {
                        snprintf(a->msg, sizeof a->msg, "duplicate hit");
                        a->errors++;
                    }
        }
        json_decref(j);
        ts_resp_free(&r);
        a->searches++;
    }
    return NULL;
}

static long ts_documents(void)
{
    ts_resp r;
    assert_int_equal(ts_get("/stats", &r), 200);
    json_t *j = ts_json(&r);
    long n = (long)json_integer_value(json_object_get(j, "documents"));
    json_decref(j);
    ts_resp_free(&r);
    return n;
}

static void test_concurrent(void **state)
{
    (void)state;
    long before = ts_documents();
    _Atomic int stop = 0;
    pthread_t wt[TC_WRITERS], rt[TC_READERS];
    tc_arg wa[TC_WRITERS], ra[TC_READERS];
    double t0 = ts_now();
    for (int i = 0; i < TC_READERS; i++) {
        memset(&ra[i], 0, sizeof ra[i]);
        ra[i].id = i;
        ra[i].stop = &stop;
        pthread_create(&rt[i], NULL, tc_reader, &ra[i]);
    }
    for (int i = 0; i < TC_WRITERS; i++) {
        memset(&wa[i], 0, sizeof wa[i]);
        wa[i].id = i;
        pthread_create(&wt[i], NULL, tc_writer, &wa[i]);
    }
    for (int i = 0; i < TC_WRITERS; i++)
        pthread_join(wt[i], NULL);
    double wtime = ts_now() - t0;
    atomic_store(&stop, 1);
    int searches = 0;
    for (int i = 0; i < TC_READERS; i++) {
        pthread_join(rt[i], NULL);
        searches += ra[i].searches;
        if (ra[i].errors)
            fail_msg("reader %d: %d errors, last: %s", i, ra[i].errors, ra[i].msg);
    }
    for (int i = 0; i < TC_WRITERS; i++)
        if (wa[i].errors)
            fail_msg("writer %d: %d errors, last: %s", i, wa[i].errors, wa[i].msg);
    print_message("concurrent: %d writers x %d requests in %.2f s, %d searches meanwhile\n",
                  TC_WRITERS, TC_ROUNDS, wtime, searches);

    /* Consistency: each document exactly once, deleted ones gone. */
    long live = 0;
    for (int w = 0; w < TC_WRITERS; w++) {
        for (int r = 0; r < TC_ROUNDS; r++) {
            for (int i = 0; i < TC_PER; i++) {
                int deleted = i == 0 && (r + 2) % 5 == 4 && r + 2 < TC_ROUNDS;
                char q[64], id[64];
                snprintf(q, sizeof q, "cwtok%dx%dx%d", w, r, i);
                snprintf(id, sizeof id, "cw%d_%d_%d", w, r, i);
                json_t *j = ts_search(q, 10);
                json_t *hits = json_object_get(j, "hits");
                if (deleted) {
                    if (json_array_size(hits) != 0)
                        fail_msg("%s was deleted but is found", id);
                } else {
                    if (json_array_size(hits) != 1)
                        fail_msg("%s: %zu hits (want exactly 1)", id, json_array_size(hits));
                    json_t *h = json_array_get(hits, 0);
                    assert_string_equal(json_string_value(json_object_get(h, "id")), id);
                    /* The last write wins: re-posted documents carry the new title. */
                    int reposted = (r + 1) % 5 == 4 && r + 1 < TC_ROUNDS;
                    char title[64];
                    snprintf(title, sizeof title, reposted ? "writer %d again" : "writer %d", w);
                    assert_string_equal(json_string_value(json_object_get(h, "title")), title);
                    live++;
                }
                json_decref(j);
            }
        }
    }
    assert_int_equal(ts_documents(), before + live);
    /* The index on disk is sound. */
    idx_check_report rep;
    FILE *out = tmpfile();
    int rc = idx_check(T.env, out, &rep);
    fclose(out);
    assert_int_equal(rc, 0);
}

/* A document is searchable once its POST has been answered: measure the
 * POST latency (= arrival to commit, plus the round trip) and check. */
static void test_add_to_searchable(void **state)
{
    (void)state;
    enum { N = 40 };
    double lat[N];
    for (int i = 0; i < N; i++) {
        char body[256], q[64];
        snprintf(body, sizeof body, "{\"_id\":\"vis%d\",\"text\":\"vistok%d\"}", i, i);
        snprintf(q, sizeof q, "vistok%d", i);
        ts_resp r;
        double t0 = ts_now();
        assert_int_equal(ts_post("/docs", body, TS_AUTH, &r), 200);
        lat[i] = ts_now() - t0;
        ts_resp_free(&r);
        json_t *j = ts_search(q, 1);
        assert_int_equal(json_array_size(json_object_get(j, "hits")), 1);
        json_decref(j);
    }
    for (int i = 1; i < N; i++)
        for (int k = i; k > 0 && lat[k] < lat[k - 1]; k--) {
            double t = lat[k];
            lat[k] = lat[k - 1];
            lat[k - 1] = t;
        }
    print_message("add-to-searchable (POST answered = committed = visible): p50 %.2f ms, "
                  "p90 %.2f ms, max %.2f ms over %d documents\n",
                  lat[N / 2] * 1e3, lat[N * 9 / 10] * 1e3, lat[N - 1] * 1e3, N);
}

/* A second server on the same index: the first holds the writer lock, so
 * the second's writes answer 503 (after a short retry); its reads work.
 * It also has max_connections = 2. */
static void test_busy_and_connection_limit(void **state)
{
    (void)state;
    srv_params p = srv_default_params();
    p.port = 0;
    p.threads = 1;
    p.api_key = TS_KEY;
    p.max_connections = 2;
    p.timeout_s = 2;
    p.access_log_fd = -1;
    srv_server *s2;
    char err[256];
    assert_int_equal(srv_server_open(T.env, &p, &s2, err, sizeof err), 0);
    assert_int_equal(srv_server_has_writer_lock(s2), 0);
    pthread_t th;
    pthread_create(&th, NULL, ts_server_main, s2);
    int port = srv_server_port(s2);
    ts_resp r;
    assert_int_equal(ts_http(port, "GET", "/docs/d003", NULL, NULL, 0, &r), 200);
    ts_resp_free(&r);
    const char *doc = "{\"_id\":\"busy1\",\"text\":\"x\"}";
    ts_http(port, "POST", "/docs", TS_AUTH, doc, strlen(doc), &r);
    ts_assert_error(&r, 503, "index_busy");
    assert_true(ts_header_has(&r, "Retry-After: 1"));
    ts_resp_free(&r);

    /* Two kept-alive connections with a request each hold both slots. */
    int c[3];
    char buf[4096];
    const char *req = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < 2; i++) {
        c[i] = ts_connect(port);
        assert_int_equal(ts_send_all(c[i], req, strlen(req)), 0);
        ssize_t k = recv(c[i], buf, sizeof buf - 1, 0);
        assert_true(k > 0);
        assert_int_equal(strncmp(buf, "HTTP/1.1 200", 12), 0);
    }
    c[2] = ts_connect(port);
    assert_int_equal(ts_send_all(c[2], req, strlen(req)), 0);
    size_t n;
    char *all = ts_read_all(c[2], &n);             /* answered, then closed */
    ts_parse(all, n, &r);
    ts_assert_error(&r, 503, "overloaded");
    ts_resp_free(&r);
    close(c[2]);
    /* Closing one frees a slot. */
    close(c[0]);
    int ok = 0;
    for (int i = 0; i < 50 && !ok; i++) {
        ts_sleep_ms(20);
        ts_http(port, "GET", "/health", NULL, NULL, 0, &r);
        ok = r.status == 200;
        ts_resp_free(&r);
    }
    assert_true(ok);
    close(c[1]);
    srv_server_stop(s2);
    pthread_join(th, NULL);
    srv_server_close(s2);
}

/* ---- side servers: no key, a full write queue, graceful shutdown ------------------------------- */

/* No api key configured: writes answer 403 whatever the client sends. */
static void test_no_api_key(void **state)
{
    (void)state;
    srv_params p = srv_default_params();
    p.threads = 1;
    p.api_key = NULL;
    ts_side x;
    ts_side_open(&x, &p, 10);
    ts_resp r;
    const char *doc = "{\"_id\":\"nk\",\"text\":\"x\"}";
    ts_http(x.port, "POST", "/docs", TS_AUTH, doc, strlen(doc), &r);
    ts_assert_error(&r, 403, "forbidden");
    ts_resp_free(&r);
    ts_http(x.port, "POST", "/docs", NULL, doc, strlen(doc), &r);
    ts_assert_error(&r, 403, "forbidden");
    ts_resp_free(&r);
    ts_http(x.port, "DELETE", "/docs/side1", TS_AUTH, NULL, 0, &r);
    ts_assert_error(&r, 403, "forbidden");
    ts_resp_free(&r);
    assert_int_equal(ts_http(x.port, "GET", "/docs/side1", NULL, NULL, 0, &r), 200);
    ts_resp_free(&r);
    assert_int_equal(ts_http(x.port, "GET", "/stats", NULL, NULL, 0, &r), 200);
    json_t *j = ts_json(&r);
    assert_true(json_is_false(json_object_get(json_object_get(j, "server"), "writes")));
    json_decref(j);
    ts_resp_free(&r);
    ts_side_close(&x);
}

static void ts_wait_submitted(srv_server *s, uint64_t want)
{
    double t0 = ts_now();
    while (ts_submitted(s) < want) {
        if (ts_now() - t0 > 10)
            fail_msg("%llu write jobs queued after 10 s, want %llu",
                     (unsigned long long)ts_submitted(s), (unsigned long long)want);
        ts_sleep_ms(2);
    }
}

/* max_write_queue = 2: while the writer is held up (the test holds the map
 * lock it needs), one job is in the writer, two wait, and the next write is
 * refused at once with 503 + Retry-After; pages that need no index are
 * still served; once the writer goes on, the three are committed. */
static void test_write_queue_full(void **state)
{
    (void)state;
    srv_params p = srv_default_params();
    p.threads = 1;
    p.api_key = TS_KEY;
    p.max_write_queue = 2;
    ts_side x;
    ts_side_open(&x, &p, 10);
    pthread_rwlock_wrlock(&x.s->map_lock);
    int fa = ts_send_request(x.port, "POST", "/docs", TS_AUTH, "{\"_id\":\"qa\",\"text\":\"qtok\"}");
    ts_wait_writer_took(x.s, 1);
    int fb = ts_send_request(x.port, "POST", "/docs", TS_AUTH, "{\"_id\":\"qb\",\"text\":\"qtok\"}");
    int fc = ts_send_request(x.port, "DELETE", "/docs/side1", TS_AUTH, NULL);
    ts_wait_submitted(x.s, 3);
    ts_resp r;
    const char *doc = "{\"_id\":\"qd\",\"text\":\"qtok\"}";
    ts_http(x.port, "POST", "/docs", TS_AUTH, doc, strlen(doc), &r);
    ts_assert_error(&r, 503, "overloaded");
    assert_true(ts_header_has(&r, "Retry-After: 1"));
    ts_resp_free(&r);
    assert_int_equal(ts_http(x.port, "GET", "/", NULL, NULL, 0, &r), 200);
    ts_resp_free(&r);
    pthread_rwlock_unlock(&x.s->map_lock);
    int fds[3] = { fa, fb, fc };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ts_read_response(fds[i], &r), 200);
        ts_resp_free(&r);
        close(fds[i]);
    }
    assert_int_equal(ts_http(x.port, "GET", "/docs/qa", NULL, NULL, 0, &r), 200);
    ts_resp_free(&r);
    assert_int_equal(ts_http(x.port, "GET", "/docs/qb", NULL, NULL, 0, &r), 200);
    ts_resp_free(&r);
    assert_int_equal(ts_http(x.port, "GET", "/docs/side1", NULL, NULL, 0, &r), 404);
    ts_resp_free(&r);
    assert_int_equal(ts_http(x.port, "GET", "/docs/qd", NULL, NULL, 0, &r), 404);
    ts_resp_free(&r);
    assert_int_equal(ts_http(x.port, "GET", "/metrics", NULL, NULL, 0, &r), 200);
    assert_non_null(strstr(r.body, "\nlexis_write_queue_rejected_total 1\n"));
    assert_non_null(strstr(r.body, "\nlexis_write_requests_total 3\n"));
    assert_non_null(strstr(r.body, "\nlexis_write_queue_depth 0\n"));
    ts_resp_free(&r);
    ts_side_close(&x);
}

static int ts_wait_done(ts_side *x, double seconds)
{
    double t0 = ts_now();
    while (!atomic_load(&x->done) && ts_now() - t0 < seconds)
        ts_sleep_ms(5);
    return atomic_load(&x->done);
}

/* 1 if the peer closed fd (EOF or reset) within `seconds`. */
static int ts_closed_within(int fd, double seconds)
{
    double t0 = ts_now();
    char buf[4096];
    while (ts_now() - t0 < seconds) {
        struct pollfd pf = { fd, POLLIN, 0 };
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k <= 0)
            return 1;
    }
    return 0;
}

/* srv_server_stop (what SIGTERM does) while a write is in flight (read,
 * queued and taken by the writer, which the test holds up): the server
 * stops accepting at once, answers a new request on a kept-alive
 * connection with 503 + Connection: close, waits for the write, answers
 * it 200, and only then returns; the write is committed. */
static void test_shutdown_write_in_flight(void **state)
{
    (void)state;
    srv_params p = srv_default_params();
    p.threads = 1;
    p.api_key = TS_KEY;
    p.shutdown_grace_s = 10;
    ts_side x;
    ts_side_open(&x, &p, 10);
    ts_resp r;
    int k2 = ts_connect(x.port);                 /* kept alive, known to the worker */
    const char *health = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(ts_roundtrip(k2, health, strlen(health), &r), 200);
    ts_resp_free(&r);

    pthread_rwlock_wrlock(&x.s->map_lock);
    int fw = ts_send_request(x.port, "POST", "/docs", TS_AUTH, "{\"_id\":\"late\",\"text\":\"latetok\"}");
    ts_wait_writer_took(x.s, 1);
    double t_stop = ts_now();
    srv_server_stop(x.s);
    /* Accepting stops: new connections are refused. */
    int refused = 0;
    while (!refused && ts_now() - t_stop < 5) {
        int fd = ts_connect(x.port);
        if (fd < 0)
            refused = 1;
        else
            close(fd);
        ts_sleep_ms(10);
    }
    assert_true(refused);
    /* A new request on a kept-alive connection: 503, and the connection closes. */
    assert_int_equal(ts_roundtrip(k2, health, strlen(health), &r), 503);
    assert_true(ts_header_has(&r, "Connection: close"));
    ts_assert_error(&r, 503, "overloaded");
    ts_resp_free(&r);
    assert_true(ts_closed_within(k2, 3));
    close(k2);
    /* Still waiting for the write. */
    ts_sleep_ms(200);
    assert_false(atomic_load(&x.done));
    pthread_rwlock_unlock(&x.s->map_lock);
    assert_int_equal(ts_read_response(fw, &r), 200);
    json_t *j = ts_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "indexed")), 1);
    json_decref(j);
    ts_resp_free(&r);
    close(fw);
    assert_true(ts_wait_done(&x, 5));
    print_message("shutdown with a write in flight: returned %.0f ms after the stop "
                  "(the write was held %.0f+ ms)\n", (x.t_done - t_stop) * 1e3, 200.0);
    /* Committed. */
    idx_reader *rd;
    uint32_t docid;
    assert_int_equal(idx_reader_open(x.env, &rd), 0);
    assert_int_equal(idx_reader_lookup(rd, "late", 4, &docid), 0);
    idx_reader_close(rd);
    ts_side_close(&x);
}

/* srv_server_stop while a search is being answered (the worker waits in
 * it for the map lock the test holds): it is answered 200 with its hits,
 * then the server returns, well before the grace period. */
static void test_shutdown_search_in_flight(void **state)
{
    (void)state;
    srv_params p = srv_default_params();
    p.threads = 1;
    p.shutdown_grace_s = 10;
    ts_side x;
    ts_side_open(&x, &p, 10);
    ts_resp r;
    int k = ts_connect(x.port);
    const char *health = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(ts_roundtrip(k, health, strlen(health), &r), 200);
    ts_resp_free(&r);
    pthread_rwlock_wrlock(&x.s->map_lock);
    const char *search = "POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n"
                         "{\"query\":\"sidetok3\"}";
    assert_int_equal(ts_send_all(k, search, strlen(search)), 0);
    ts_sleep_ms(300);                            /* the worker is in the search */
    double t_stop = ts_now();
    srv_server_stop(x.s);
    ts_sleep_ms(300);
    assert_false(atomic_load(&x.done));
    pthread_rwlock_unlock(&x.s->map_lock);
    assert_int_equal(ts_read_response(k, &r), 200);
    assert_non_null(strstr(r.body, "\"side3\""));
    ts_resp_free(&r);
    close(k);
    assert_true(ts_wait_done(&x, 5));
    assert_true(x.t_done - t_stop < 3);
    ts_side_close(&x);
}

/* ---- internals ------------------------------------------------------------------------------------ */

static void test_json_writer(void **state)
{
    (void)state;
    srv_buf b;
    srv_buf_init(&b);
    const char in[] = "a\"b\\c\n\t\x01 caf\xc3\xa9 \xff\xfe end \xe2\x82";
    srv_jw_str(&b, in, sizeof in - 1);
    json_error_t je;
    char *wrapped = malloc(b.len + 3);
    sprintf(wrapped, "[%s]", b.p);
    json_t *j = json_loads(wrapped, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_array_get(j, 0)),
                        "a\"b\\c\n\t\x01 caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd end \xef\xbf\xbd\xef\xbf\xbd");
    json_decref(j);
    free(wrapped);
    srv_buf_free(&b);
}

static void test_ct_equal_and_decode(void **state)
{
    (void)state;
    assert_true(srv_ct_equal("abc", 3, "abc", 3));
    assert_false(srv_ct_equal("abd", 3, "abc", 3));
    assert_false(srv_ct_equal("ab", 2, "abc", 3));
    assert_false(srv_ct_equal("abcd", 4, "abc", 3));
    assert_false(srv_ct_equal("", 0, "abc", 3));
    char out[64];
    assert_int_equal(srv_path_decode("a%20b%2fc", 9, out), 5);
    assert_memory_equal(out, "a b/c", 5);
    assert_int_equal(srv_path_decode("%4", 2, out), -1);
    assert_int_equal(srv_path_decode("%", 1, out), -1);
    assert_int_equal(srv_path_decode("%g0", 3, out), -1);
    assert_int_equal(srv_path_decode("%00", 3, out), -1);
    assert_int_equal(srv_path_decode("%ff", 3, out), 1);
    assert_int_equal((unsigned char)out[0], 0xff);
}

static void test_snippet(void **state)
{
    (void)state;
    enc_analyzer_params ap = enc_analyzer_default_params();
    enc_analyzer *an;
    assert_int_equal(enc_analyzer_open(&ap, &an), 0);
    lx_arena a;
    lx_arena_init(&a, 4096);
    srv_qterms qt;
    assert_int_equal(srv_qterms_collect(an, &a, "Running parsers, the Café", strlen("Running parsers, the Café"), &qt), 0);
    assert_int_equal(qt.n, 3);              /* run, parser, café ("the" is a stop word) */
    srv_buf out;
    srv_buf_init(&out);
    srv_snippet sn;
    const char *text = "Un café\tau lait.  The   RUNNER runs; a parser's job:\nparsing.";
    assert_int_equal(srv_snippet_make(an, &qt, text, strlen(text), 0, &out, &sn), 0);
    assert_string_equal(out.p, "Un café au lait. The RUNNER runs; a parser's job: parsing.");
    /* café [3,7), runs [28,32) ("runner" stems to "runner"), parser's [35,43) */
    assert_int_equal(sn.nhl, 3);
    char w[64];
    const char *want[] = { "café", "runs", "parser's" };
    for (int i = 0; i < 3; i++) {
        ts_cp_slice(out.p, sn.hl[i][0], sn.hl[i][1], w, sizeof w);
        assert_string_equal(w, want[i]);
    }
    /* A window: cut at spaces, ellipses, the densest part chosen. */
    char longtext[4000];
    size_t o = 0;
    for (int i = 0; i < 60; i++)
        o += (size_t)snprintf(longtext + o, sizeof longtext - o, "filler%d ", i);
    o += (size_t)snprintf(longtext + o, sizeof longtext - o, "the café runs a parser ");
    for (int i = 0; i < 60; i++)
        o += (size_t)snprintf(longtext + o, sizeof longtext - o, "tail%d ", i);
    assert_int_equal(srv_snippet_make(an, &qt, longtext, o, 80, &out, &sn), 0);
    assert_int_equal(strncmp(out.p, "\xe2\x80\xa6", 3), 0);
    assert_int_equal(strcmp(out.p + out.len - 3, "\xe2\x80\xa6"), 0);
    assert_true(out.len <= 80 + 6);
    assert_int_equal(sn.nhl, 3);
    ts_cp_slice(out.p, sn.hl[2][0], sn.hl[2][1], w, sizeof w);
    assert_string_equal(w, "parser");
    srv_buf_free(&out);
    lx_arena_free(&a);
    enc_analyzer_close(an);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_writer),
        cmocka_unit_test(test_ct_equal_and_decode),
        cmocka_unit_test(test_snippet),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_page),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_doc_get),
        cmocka_unit_test(test_search_errors),
        cmocka_unit_test(test_routes_errors),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_docs_write),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_large_reply_latency),
        cmocka_unit_test(test_slow_client),
        cmocka_unit_test(test_slow_dribbler_and_reader),
        cmocka_unit_test(test_http_garbage),
        cmocka_unit_test(test_access_log),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_add_to_searchable),
        cmocka_unit_test(test_busy_and_connection_limit),
        cmocka_unit_test(test_no_api_key),
        cmocka_unit_test(test_write_queue_full),
        cmocka_unit_test(test_shutdown_write_in_flight),
        cmocka_unit_test(test_shutdown_search_in_flight),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, ts_setup, ts_teardown);
}
