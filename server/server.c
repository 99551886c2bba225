/* server.c: the srv_server handle: parameters, opening and closing, the
 * per-thread worker contexts, the map lock around read snapshots, and the
 * growable buffer every response is written into.
 *
 * Lifetime: srv_server_open validates the parameters, opens one worker
 * context per thread (a query engine and an analyzer each: neither is
 * thread-safe), the writer (writes.c, which takes the index's writer lock)
 * and the listening socket (http.c). srv_server_run starts the threads and
 * returns after a graceful shutdown; srv_server_close frees in reverse.
 */
#include "server_impl.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- srv_buf ---------------------------------------------------------------------- */

void srv_buf_init(srv_buf *b) { memset(b, 0, sizeof *b); }

void srv_buf_free(srv_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void srv_buf_reset(srv_buf *b)
{
    b->len = 0;
    b->failed = 0;
    /* A buffer that once held a huge response gives the memory back. */
    if (b->cap > ((size_t)4 << 20)) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

int srv_buf_reserve(srv_buf *b, size_t n)
{
    if (b->failed)
        return -1;
    if (b->cap - b->len > n)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len <= n) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void srv_buf_add(srv_buf *b, const void *p, size_t n)
{
    if (n == 0 || srv_buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void srv_buf_adds(srv_buf *b, const char *s) { srv_buf_add(b, s, strlen(s)); }

void srv_buf_addc(srv_buf *b, char c)
{
    if (srv_buf_reserve(b, 1))
        return;
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

void srv_buf_printf(srv_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        srv_buf_add(b, small, (size_t)n);
        return;
    }
    if (srv_buf_reserve(b, (size_t)n + 1))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ---- params ---------------------------------------------------------------------- */

srv_params srv_default_params(void)
{
    srv_params p;
    memset(&p, 0, sizeof p);
    p.host = "127.0.0.1";
    p.port = 8080;
    p.threads = 0;
    p.api_key = NULL;
    p.max_body = (size_t)16 << 20;
    p.max_search_body = (size_t)64 << 10;
    p.max_query_bytes = 4096;
    p.max_k = 1000;
    p.max_connections = 1024;
    p.max_write_queue = 64;
    p.timeout_s = 10;
    p.shutdown_grace_s = 10;
    p.max_header_bytes = (size_t)16 << 10;
    p.snippet_bytes = 240;
    p.access_log_fd = 2;
    p.handle_signals = 0;
    return p;
}

static int srv_params_check(srv_params *p, char *err, size_t cap)
{
    if (!p->host || !*p->host) {
        snprintf(err, cap, "no host to bind");
        return LX_E_INVAL;
    }
    if (p->port < 0 || p->port > 65535) {
        snprintf(err, cap, "port %d out of range (0-65535)", p->port);
        return LX_E_INVAL;
    }
    if (p->threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        p->threads = n > 0 ? (uint32_t)n : 1;
    }
    if (p->threads > SRV_MAX_WORKERS) {
        snprintf(err, cap, "%u threads: at most %d", p->threads, SRV_MAX_WORKERS);
        return LX_E_INVAL;
    }
    if (p->max_body < 1024 || p->max_search_body < 64 || p->max_query_bytes < 1
        || p->max_k < 1 || p->max_k > 100000 || p->max_connections < 1
        || p->max_write_queue < 1 || !(p->timeout_s > 0) || p->shutdown_grace_s < 0
        || p->max_header_bytes < 1024) {
        snprintf(err, cap, "a limit is out of range (max_body >= 1 KiB, 1 <= max_k <= 100000, "
                           "timeouts > 0, ...)");
        return LX_E_INVAL;
    }
    if (p->max_search_body > p->max_body)
        p->max_search_body = p->max_body;
    return 0;
}

/* ---- workers ----------------------------------------------------------------------- */

int srv_worker_init(srv_server *s, srv_worker *w, uint32_t index)
{
    memset(w, 0, sizeof *w);
    w->s = s;
    w->index = index;
    lx_arena_init(&w->arena, 64 * 1024);
    srv_buf_init(&w->out);
    srv_buf_init(&w->tmp);
    int rc = qry_engine_open(s->env, &w->q);
    if (rc)
        return rc;
    /* The analyzer the index records, for highlighting. */
    enc_analyzer_params ap;
    char storage[256];
    if ((rc = enc_analyzer_params_parse(idx_env_analyzer_desc(s->env), &ap, storage,
                                        sizeof storage)) != 0)
        return rc;
    return enc_analyzer_open(&ap, &w->an);
}

void srv_worker_free(srv_worker *w)
{
    qry_engine_close(w->q);
    enc_analyzer_close(w->an);
    lx_arena_free(&w->arena);
    srv_buf_free(&w->out);
    srv_buf_free(&w->tmp);
    w->q = NULL;
    w->an = NULL;
}

/* ---- the map lock ------------------------------------------------------------------- */

int srv_reader_open(srv_server *s, idx_reader **r)
{
    pthread_rwlock_rdlock(&s->map_lock);
    int rc = idx_reader_open(s->env, r);
    if (rc)
        pthread_rwlock_unlock(&s->map_lock);
    return rc;
}

void srv_reader_close(srv_server *s, idx_reader *r)
{
    if (!r)
        return;
    idx_reader_close(r);
    pthread_rwlock_unlock(&s->map_lock);
}

/* ---- open / close --------------------------------------------------------------------- */

static int srv_fields_parse(srv_server *s)
{
    const char *f = idx_env_fields(s->env);
    if (!f || strlen(f) >= sizeof s->fields_buf)
        return LX_E_INVAL;
    strcpy(s->fields_buf, f);
    s->nfields = 0;
    char *save = NULL;
    for (char *t = strtok_r(s->fields_buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (s->nfields == SRV_MAX_FIELDS)
            return LX_E_INVAL;
        s->fields[s->nfields++] = t;
    }
    return s->nfields ? 0 : LX_E_INVAL;
}

int srv_server_open(idx_env *env, const srv_params *p, srv_server **out, char *err, size_t errcap)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errcap = sizeof dummy;
    }
    err[0] = '\0';
    srv_server *s = calloc(1, sizeof *s);
    if (!s)
        return LX_E_NOMEM;
    s->env = env;
    s->p = p ? *p : srv_default_params();
    s->started = lx_now();
    int rc;
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    /* Writer preference: a waiting exclusive flush is not starved by a
     * stream of searches (it waits only for the searches already running). */
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->map_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&s->wr.mu, NULL);
    pthread_cond_init(&s->wr.cv, NULL);

    if ((rc = srv_params_check(&s->p, err, errcap)) != 0)
        goto out_free;
    if (p && p->api_key && *p->api_key) {
        s->api_key_len = strlen(p->api_key);
        if (!(s->api_key = strdup(p->api_key))) {
            rc = LX_E_NOMEM;
            goto out_free;
        }
    }
    s->p.api_key = NULL;
    if ((rc = srv_fields_parse(s)) != 0) {
        snprintf(err, errcap, "the index's field list '%s' is not usable", idx_env_fields(env));
        goto out_free;
    }
    snprintf(s->data_path, sizeof s->data_path, "%s/data.mdb", idx_env_path(env));
    s->nworkers = s->p.threads;
    for (uint32_t i = 0; i < s->nworkers; i++) {
        if ((rc = srv_worker_init(s, &s->workers[i], i)) != 0) {
            snprintf(err, errcap, "cannot open a query engine: %s", lx_strerror(rc));
            goto out_free;
        }
    }
    if ((rc = srv_writes_open(s, err, errcap)) != 0)
        goto out_free;
    /* A peer that closes its socket while we write must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    rc = srv_http_open(s, err, errcap);
    s->p.host = NULL;      /* borrowed only for the bind */
    if (rc)
        goto out_free;
    *out = s;
    return 0;

out_free:
    srv_server_close(s);
    return rc;
}

int srv_server_port(const srv_server *s) { return s->port; }
const char *srv_server_address(const srv_server *s) { return s->address; }
int srv_server_has_writer_lock(const srv_server *s)
{
    return atomic_load_explicit(&s->wr.held, memory_order_relaxed);
}

int srv_server_run(srv_server *s)
{
    int rc = srv_writes_start(s);
    if (rc)
        return rc;
    rc = srv_http_run(s);
    srv_writes_stop(s);
    return rc;
}

void srv_server_stop(srv_server *s) { srv_http_stop(s); }

int srv_server_call(srv_server *s, unsigned worker, const char *method, const char *target,
                    const char *authorization, const char *body, size_t body_len,
                    char **body_out, size_t *len_out, const char **ctype_out)
{
    if (!s || worker >= s->nworkers || !method || !target || !body_out || !len_out)
        return LX_E_INVAL;
    srv_request req;
    memset(&req, 0, sizeof req);
    req.method = SRV_M_OTHER;
    for (int m = 0; m < SRV_M_OTHER; m++)
        if (!strcmp(method, srv_method_names[m]))
            req.method = m;
    req.uri = target;
    req.uri_len = strlen(target);
    req.authorization = authorization;
    req.body = body;
    req.body_len = body ? body_len : 0;
    req.t_start = lx_now();
    srv_worker *w = &s->workers[worker];
    srv_response resp;
    srv_handle(w, &req, &resp);
    srv_wjob *j = resp.deferred;
    if (j) {
        srv_writes_run_sync(s, j);
        int route = resp.route;
        srv_wjob_response(j, &resp);
        resp.route = route;
    }
    srv_metrics_record(&w->m, resp.route, resp.status, resp.err, lx_now() - req.t_start,
                       resp.body->len);
    int status = resp.status;
    *len_out = resp.body->len;
    *body_out = malloc(resp.body->len + 1);
    if (*body_out) {
        if (resp.body->len)
            memcpy(*body_out, resp.body->p, resp.body->len);
        (*body_out)[resp.body->len] = '\0';
    }
    if (ctype_out)
        *ctype_out = resp.content_type;
    srv_wjob_free(j);
    if (!*body_out)
        return LX_E_NOMEM;
    return status;
}

void srv_server_close(srv_server *s)
{
    if (!s)
        return;
    srv_http_close(s);
    srv_writes_close(s);
    for (uint32_t i = 0; i < SRV_MAX_WORKERS; i++)
        if (s->workers[i].s)
            srv_worker_free(&s->workers[i]);
    pthread_rwlock_destroy(&s->map_lock);
    pthread_mutex_destroy(&s->wr.mu);
    pthread_cond_destroy(&s->wr.cv);
    if (s->api_key) {
        memset(s->api_key, 0, s->api_key_len);
        free(s->api_key);
    }
    free(s);
}
