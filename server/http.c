/* http.c: the network side. The one file of lexis that calls libevent.
 *
 * Threads and sockets. srv_http_open binds one listening socket per
 * worker, all on the same address with SO_REUSEPORT: the kernel spreads
 * new connections over them evenly. (With one socket shared by every
 * worker's evhttp, as evhttp_accept_socket allows, the first worker to
 * wake accepts a whole burst of connections in one loop - wrk's 256
 * connections would land on one or two workers.) With port 0 the first
 * socket picks the port and the others bind to it. Where SO_REUSEPORT is
 * missing, the workers share one socket (dup'ed, so each can close its
 * own). srv_http_run starts one thread per worker, each with its own
 * event_base and evhttp, and runs the main thread's base for signals.
 *
 * No libevent call crosses threads (libevent is not built with locking
 * here): the writer thread hands a finished write job to its worker by
 * queueing it under the worker's mutex and writing to the worker's
 * eventfd; srv_server_stop writes to the main eventfd (async-signal-safe).
 *
 * Per request: srv_on_request converts the evhttp request to an
 * srv_request (borrowing the URI, the Authorization header and the body,
 * pulled up into one piece), calls srv_handle, and replies; or, for a
 * write, queues the job and replies when it comes back. Every reply goes
 * through srv_reply, which records metrics and writes the access log line.
 *
 * Replies go out at once. evhttp_send_reply only queues the reply in the
 * connection's bufferevent and asks epoll for writability, so a worker that
 * read 16 requests in one epoll_wait used to send all 16 replies after the
 * 16th search, and paid two epoll_ctl calls per reply (EPOLLOUT on, off).
 * srv_reply runs the bufferevent's write callback right away instead, as
 * if the socket had been reported writable: the reply leaves while the
 * next request is searched, and the EPOLLOUT on/off pair folds away in the
 * change list. (This reaches bufferevent->ev_write through libevent's
 * public but layout-exposing bufferevent_struct.h; evhttp is written for
 * a request being finished inside its callback, and the connection is
 * not touched after the callback returns.) Sockets get TCP_NODELAY: a
 * reply over 16 KiB leaves in several writes, and Nagle would hold each
 * later one until the client's delayed ACK (40 ms).
 *
 * Limits enforced here: evhttp's body and header size caps (a body over
 * max_body gets libevent's own 413 page, after the body has been read and
 * dropped (lingering close) so the client sees the status: libevent 2.1
 * has no hook to write that error as JSON; those requests are not in the
 * metrics or the access log); the read/write/idle timeout (a slow or idle
 * client is disconnected: it never holds a worker, only a connection);
 * and max_connections, counted per connection at its first request (a
 * connection is tracked until evhttp closes it; a request on a connection
 * beyond the limit gets 503 and the connection is closed).
 *
 * Shutdown: stop accepting (close the listening sockets), answer requests
 * already read (writes in the queue are committed and answered), answer
 * any new request on a kept-alive connection with 503 + Connection: close,
 * wait until every reply is written or shutdown_grace_s passes, then leave
 * the loops. srv_http_close frees the bases (closing idle connections).
 */
#include "server_impl.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- connection set (per worker) ------------------------------------------------------- */

#define SRV_TOMB ((void *)1)

typedef struct srv_connset {
    void **slot;
    size_t cap, n, used;       /* used: live + tombstones */
} srv_connset;

static size_t srv_ptrhash(const void *p, size_t mask)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & mask;
}

static int srv_connset_has(const srv_connset *cs, const void *p)
{
    if (!cs->cap)
        return 0;
    for (size_t k = srv_ptrhash(p, cs->cap - 1);; k = (k + 1) & (cs->cap - 1)) {
        if (cs->slot[k] == p)
            return 1;
        if (!cs->slot[k])
            return 0;
    }
}

static int srv_connset_add(srv_connset *cs, void *p)
{
    if ((cs->used + 1) * 2 > cs->cap) {
        size_t cap = 64;
        while (cap < 4 * (cs->n + 1))
            cap *= 2;
        void **slot = calloc(cap, sizeof *slot);
        if (!slot)
            return -1;
        for (size_t i = 0; i < cs->cap; i++) {
            void *e = cs->slot[i];
            if (!e || e == SRV_TOMB)
                continue;
            size_t k = srv_ptrhash(e, cap - 1);
            while (slot[k])
                k = (k + 1) & (cap - 1);
            slot[k] = e;
        }
        free(cs->slot);
        cs->slot = slot;
        cs->cap = cap;
        cs->used = cs->n;
    }
    size_t k = srv_ptrhash(p, cs->cap - 1);
    while (cs->slot[k] && cs->slot[k] != SRV_TOMB)
        k = (k + 1) & (cs->cap - 1);
    if (!cs->slot[k])
        cs->used++;
    cs->slot[k] = p;
    cs->n++;
    return 0;
}

static int srv_connset_del(srv_connset *cs, const void *p)
{
    if (!cs->cap)
        return 0;
    for (size_t k = srv_ptrhash(p, cs->cap - 1);; k = (k + 1) & (cs->cap - 1)) {
        if (cs->slot[k] == p) {
            cs->slot[k] = SRV_TOMB;
            cs->n--;
            return 1;
        }
        if (!cs->slot[k])
            return 0;
    }
}

/* ---- state ---------------------------------------------------------------------------------- */

typedef struct srv_hworker {
    struct srv_http *h;
    srv_worker *w;
    pthread_t th;
    int started;
    int listen_fd;                 /* this worker's socket (owned until handed to evhttp) */
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct evbuffer *obuf;         /* reply body staging, reused */
    int efd;                       /* eventfd: job completions and stop */
    struct event *wake_ev;
    struct event *drain_ev;
    pthread_mutex_t mu;
    srv_wjob *done_head, *done_tail;   /* finished write jobs, guarded by mu */
    _Atomic int stop_requested;
    int stopping;
    double deadline, idle_since;
    uint64_t unreplied;            /* requests read, reply not yet sent */
    uint64_t unflushed;            /* replies sent, not yet fully written */
    srv_connset conns;
} srv_hworker;

struct srv_http {
    srv_server *s;
    int nfds;                      /* listening sockets made by open */
    int shared;                    /* 1: one socket dup'ed to every worker */
    struct event_base *main_base;
    int main_efd;
    struct event *main_wake, *sigterm, *sigint;
    srv_hworker hw[SRV_MAX_WORKERS];
};

static const char *srv_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

static int srv_method_of(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return SRV_M_GET;
    case EVHTTP_REQ_HEAD: return SRV_M_HEAD;
    case EVHTTP_REQ_POST: return SRV_M_POST;
    case EVHTTP_REQ_PUT: return SRV_M_PUT;
    case EVHTTP_REQ_DELETE: return SRV_M_DELETE;
    case EVHTTP_REQ_OPTIONS: return SRV_M_OPTIONS;
    case EVHTTP_REQ_PATCH: return SRV_M_PATCH;
    default: return SRV_M_OTHER;
    }
}

/* ---- replies ------------------------------------------------------------------------------------ */

static void srv_check_drain(srv_hworker *hw);

static void srv_on_complete(struct evhttp_request *req, void *arg)
{
    (void)req;
    srv_hworker *hw = arg;
    if (hw->unflushed)
        hw->unflushed--;
    if (hw->stopping)
        srv_check_drain(hw);
}

static void srv_reply(srv_hworker *hw, struct evhttp_request *req, srv_response *resp,
                      double t_start)
{
    srv_server *s = hw->h->s;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    const char *ctype = resp->content_type ? resp->content_type : "application/json";
    evhttp_add_header(out, "Content-Type", ctype);
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(out, "Cache-Control", "no-store");
    if (resp->route == SRV_R_PAGE)
        evhttp_add_header(out, "Content-Security-Policy",
                          "default-src 'none'; script-src 'unsafe-inline'; "
                          "style-src 'unsafe-inline'; connect-src 'self'; img-src data:");
    if (resp->allow)
        evhttp_add_header(out, "Allow", resp->allow);
    if (resp->retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", resp->retry_after);
        evhttp_add_header(out, "Retry-After", v);
    }
    if (resp->status == 401)
        evhttp_add_header(out, "WWW-Authenticate", "Bearer");
    if (resp->close || hw->stopping)
        evhttp_add_header(out, "Connection", "close");
    size_t len = resp->body && !resp->body->failed ? resp->body->len : 0;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        /* The length a GET would get, and no body (libevent 2.1 would send it). */
        char v[24];
        snprintf(v, sizeof v, "%zu", len);
        evhttp_add_header(out, "Content-Length", v);
        len = 0;                          /* bytes sent, for metrics and the log */
    } else if (len) {
        evbuffer_add(hw->obuf, resp->body->p, len);
    }

    double secs = lx_now() - t_start;
    srv_metrics_record(&hw->w->m, resp->route, resp->status, resp->err, secs, len);
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (s->p.access_log_fd >= 0) {
        char *peer = NULL;
        ev_uint16_t pport = 0;
        if (evcon)
            evhttp_connection_get_peer(evcon, &peer, &pport);
        const char *uri = evhttp_request_get_uri(req);
        srv_access_log(s, peer, srv_method_of(evhttp_request_get_command(req)), uri ? uri : "",
                       uri ? strlen(uri) : 0, resp->status, len, secs);
    }
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (evcon) {                          /* else the peer is gone: send frees req */
        hw->unflushed++;
        evhttp_request_set_on_complete_cb(req, srv_on_complete, hw);
    }
    evhttp_send_reply(req, resp->status, srv_reason(resp->status), hw->obuf);
    evbuffer_drain(hw->obuf, evbuffer_get_length(hw->obuf));
    /* Write now (see "Replies go out at once" above). */
    if (bev && evbuffer_get_length(bufferevent_get_output(bev))) {
        struct event *wev = &bev->ev_write;
        event_get_callback(wev)(event_get_fd(wev), EV_WRITE, event_get_callback_arg(wev));
    }
    if (hw->unreplied)
        hw->unreplied--;
}

/* ---- connections ------------------------------------------------------------------------------ */

static void srv_on_close(struct evhttp_connection *evcon, void *arg)
{
    srv_hworker *hw = arg;
    if (srv_connset_del(&hw->conns, evcon))
        atomic_fetch_sub_explicit(&hw->h->s->conns, 1, memory_order_relaxed);
}

/* 0: the connection may go on; 1: over the limit. */
static int srv_conn_admit(srv_hworker *hw, struct evhttp_connection *evcon)
{
    srv_server *s = hw->h->s;
    if (!evcon || srv_connset_has(&hw->conns, evcon))
        return 0;
    uint64_t n = atomic_fetch_add_explicit(&s->conns, 1, memory_order_relaxed);
    if (n >= s->p.max_connections || srv_connset_add(&hw->conns, evcon)) {
        atomic_fetch_sub_explicit(&s->conns, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->conns_rejected, 1, memory_order_relaxed);
        return 1;
    }
    evhttp_connection_set_closecb(evcon, srv_on_close, hw);
    /* No Nagle: a reply over 16 KiB leaves in several writes (bufferevent's
     * cap per write), and Nagle would hold each later one until the peer's
     * delayed ACK, 40 ms on Linux. */
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    int one = 1;
    if (bev)
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}

static void srv_on_job_done(srv_wjob *j);

/* ---- requests ---------------------------------------------------------------------------------- */

static void srv_on_request(struct evhttp_request *req, void *arg)
{
    srv_hworker *hw = arg;
    srv_server *s = hw->h->s;
    srv_request r;
    srv_response resp;
    memset(&r, 0, sizeof r);
    r.t_start = lx_now();
    r.method = srv_method_of(evhttp_request_get_command(req));
    r.uri = evhttp_request_get_uri(req);
    r.uri_len = r.uri ? strlen(r.uri) : 0;
    r.authorization = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    r.body_len = evbuffer_get_length(in);
    r.body = r.body_len ? (const char *)evbuffer_pullup(in, -1) : NULL;
    hw->unreplied++;

    if (srv_conn_admit(hw, evhttp_request_get_connection(req))) {
        memset(&resp, 0, sizeof resp);
        resp.body = &hw->w->out;
        resp.route = SRV_R_OTHER;
        srv_error(&resp, 503, SRV_E_OVERLOADED, "too many connections (limit %u); retry later",
                  s->p.max_connections);
        resp.retry_after = 1;
        resp.close = 1;
    } else if (hw->stopping) {
        memset(&resp, 0, sizeof resp);
        resp.body = &hw->w->out;
        resp.route = SRV_R_OTHER;
        srv_error(&resp, 503, SRV_E_OVERLOADED, "the server is shutting down");
        resp.close = 1;
    } else if (r.body_len && !r.body) {
        memset(&resp, 0, sizeof resp);
        resp.body = &hw->w->out;
        resp.route = SRV_R_OTHER;
        srv_error(&resp, 503, SRV_E_OVERLOADED, "out of memory");
    } else {
        srv_handle(hw->w, &r, &resp);
    }
    if (resp.deferred) {
        srv_wjob *j = resp.deferred;
        j->origin = req;
        j->origin_worker = hw;
        j->done = srv_on_job_done;
        int rc = srv_writes_submit(s, j);
        if (rc == 0)
            return;                       /* answered when the job comes back */
        srv_wjob_free(j);
        resp.deferred = NULL;
        if (rc == LX_E_BUSY) {
            atomic_fetch_add_explicit(&s->queue_rejected, 1, memory_order_relaxed);
            srv_error(&resp, 503, SRV_E_OVERLOADED, "too many writes queued (limit %u); retry later",
                      s->p.max_write_queue);
        } else {
            srv_error(&resp, 503, SRV_E_OVERLOADED, "the server is shutting down");
        }
        resp.retry_after = 1;
    }
    srv_reply(hw, req, &resp, r.t_start);
}

/* Writer thread: hand a finished job to its worker. */
static void srv_on_job_done(srv_wjob *j)
{
    srv_hworker *hw = j->origin_worker;
    pthread_mutex_lock(&hw->mu);
    j->next = NULL;
    if (hw->done_tail)
        hw->done_tail->next = j;
    else
        hw->done_head = j;
    hw->done_tail = j;
    pthread_mutex_unlock(&hw->mu);
    uint64_t one = 1;
    ssize_t n = write(hw->efd, &one, sizeof one);
    (void)n;                              /* the counter cannot overflow here */
}

/* ---- the worker loop --------------------------------------------------------------------------- */

static void srv_check_drain(srv_hworker *hw)
{
    double now = lx_now();
    if (hw->unreplied == 0 && hw->idle_since == 0)
        hw->idle_since = now;
    /* Replies whose connection died never complete: give the others 1 s. */
    if ((hw->unreplied == 0 && (hw->unflushed == 0 || now - hw->idle_since > 1.0))
        || now > hw->deadline)
        event_base_loopbreak(hw->base);
}

static void srv_on_drain_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    srv_check_drain(arg);
}

static void srv_begin_stop(srv_hworker *hw)
{
    if (hw->stopping)
        return;
    hw->stopping = 1;
    hw->deadline = lx_now() + hw->h->s->p.shutdown_grace_s;
    if (hw->bound) {
        evhttp_del_accept_socket(hw->http, hw->bound);    /* closes the socket */
        hw->bound = NULL;
    }
    struct timeval tv = { 0, 20 * 1000 };
    hw->drain_ev = event_new(hw->base, -1, EV_PERSIST, srv_on_drain_timer, hw);
    if (hw->drain_ev)
        event_add(hw->drain_ev, &tv);
    srv_check_drain(hw);
}

static void srv_on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    srv_hworker *hw = arg;
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof v);
    (void)n;
    pthread_mutex_lock(&hw->mu);
    srv_wjob *j = hw->done_head;
    hw->done_head = hw->done_tail = NULL;
    pthread_mutex_unlock(&hw->mu);
    while (j) {
        srv_wjob *next = j->next;
        srv_response resp;
        memset(&resp, 0, sizeof resp);
        srv_wjob_response(j, &resp);
        resp.route = j->kind == SRV_WJOB_ADD ? SRV_R_DOCS : SRV_R_DOC;
        srv_reply(hw, j->origin, &resp, j->t_start);
        srv_wjob_free(j);
        j = next;
    }
    if (atomic_load(&hw->stop_requested))
        srv_begin_stop(hw);
    else if (hw->stopping)
        srv_check_drain(hw);
}

static void *srv_worker_main(void *arg)
{
    srv_hworker *hw = arg;
    event_base_dispatch(hw->base);
    return NULL;
}

static int srv_worker_setup(struct srv_http *h, srv_hworker *hw, char *err, size_t errcap)
{
    srv_server *s = h->s;
    /* epoll's change list folds the add/remove of the write event that
     * every reply causes into the next epoll_wait: fewer system calls per
     * request. Unsafe with dup'ed descriptors in one epoll set, so not in
     * the shared-socket fallback. */
    struct event_config *cfg = event_config_new();
    if (cfg && !h->shared)
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    hw->base = cfg ? event_base_new_with_config(cfg) : NULL;
    if (cfg)
        event_config_free(cfg);
    hw->http = hw->base ? evhttp_new(hw->base) : NULL;
    hw->obuf = evbuffer_new();
    if (!hw->base || !hw->http || !hw->obuf) {
        snprintf(err, errcap, "cannot create an event loop");
        return LX_E_NOMEM;
    }
    struct timeval tv;
    tv.tv_sec = (time_t)s->p.timeout_s;
    tv.tv_usec = (suseconds_t)((s->p.timeout_s - (double)tv.tv_sec) * 1e6);
    evhttp_set_timeout_tv(hw->http, &tv);
    evhttp_set_max_body_size(hw->http, (ev_ssize_t)s->p.max_body);
    evhttp_set_max_headers_size(hw->http, (ev_ssize_t)s->p.max_header_bytes);
    evhttp_set_allowed_methods(hw->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD
                                             | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE
                                             | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH
                                             | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
    evhttp_set_flags(hw->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_gencb(hw->http, srv_on_request, hw);
    hw->bound = evhttp_accept_socket_with_handle(hw->http, hw->listen_fd);
    if (!hw->bound) {
        snprintf(err, errcap, "cannot accept on the listening socket");
        return LX_E_IO;
    }
    hw->listen_fd = -1;                   /* evhttp owns it now */
    hw->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (hw->efd < 0) {
        snprintf(err, errcap, "eventfd: %s", strerror(errno));
        return errno;
    }
    hw->wake_ev = event_new(hw->base, hw->efd, EV_READ | EV_PERSIST, srv_on_wake, hw);
    if (!hw->wake_ev || event_add(hw->wake_ev, NULL)) {
        snprintf(err, errcap, "cannot watch the wakeup descriptor");
        return LX_E_NOMEM;
    }
    return 0;
}

/* ---- main thread -------------------------------------------------------------------------------- */

static void srv_on_main_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct srv_http *h = arg;
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof v);
    (void)n;
    event_base_loopbreak(h->main_base);
}

static void srv_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct srv_http *h = arg;
    event_base_loopbreak(h->main_base);
}

int srv_http_run(srv_server *s)
{
    struct srv_http *h = s->http;
    char err[256];
    int rc = 0;
    uint32_t started = 0;
    h->main_base = event_base_new();
    if (!h->main_base)
        return LX_E_NOMEM;
    h->main_wake = event_new(h->main_base, h->main_efd, EV_READ | EV_PERSIST, srv_on_main_wake, h);
    if (!h->main_wake || event_add(h->main_wake, NULL))
        return LX_E_NOMEM;
    if (s->p.handle_signals) {
        h->sigterm = evsignal_new(h->main_base, SIGTERM, srv_on_signal, h);
        h->sigint = evsignal_new(h->main_base, SIGINT, srv_on_signal, h);
        if (!h->sigterm || !h->sigint || evsignal_add(h->sigterm, NULL) || evsignal_add(h->sigint, NULL))
            return LX_E_NOMEM;
    }
    for (uint32_t i = 0; i < s->nworkers; i++) {
        srv_hworker *hw = &h->hw[i];
        if ((rc = srv_worker_setup(h, hw, err, sizeof err)) != 0)
            break;
        if ((rc = pthread_create(&hw->th, NULL, srv_worker_main, hw)) != 0)
            break;
        hw->started = 1;
        started++;
    }
    if (rc == 0)
        event_base_dispatch(h->main_base);     /* until a signal or srv_server_stop */

    /* Graceful stop: each worker stops accepting and drains. */
    for (uint32_t i = 0; i < started; i++) {
        srv_hworker *hw = &h->hw[i];
        atomic_store(&hw->stop_requested, 1);
        uint64_t one = 1;
        ssize_t n = write(hw->efd, &one, sizeof one);
        (void)n;
    }
    for (uint32_t i = 0; i < started; i++) {
        pthread_join(h->hw[i].th, NULL);
        h->hw[i].started = 0;
    }
    return rc;
}

void srv_http_stop(srv_server *s)
{
    if (!s || !s->http || s->http->main_efd < 0)
        return;
    uint64_t one = 1;
    ssize_t n = write(s->http->main_efd, &one, sizeof one);
    (void)n;
}

/* ---- sockets ------------------------------------------------------------------------------------ */

/* A socket bound to ai (listening unless probe). Returns the fd or -errno. */
static int srv_listen_one(const struct addrinfo *ai, int reuseport, int probe, char *err,
                          size_t errcap)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        snprintf(err, errcap, "socket: %s", strerror(errno));
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
#ifdef SO_REUSEPORT
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
#else
    (void)reuseport;
#endif
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || (!probe && listen(fd, 1024) != 0)) {
        int e = errno;
        snprintf(err, errcap, "cannot listen: %s", strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

int srv_http_open(srv_server *s, char *err, size_t errcap)
{
    struct srv_http *h = calloc(1, sizeof *h);
    if (!h)
        return LX_E_NOMEM;
    s->http = h;
    h->s = s;
    h->main_efd = -1;
    for (uint32_t i = 0; i < SRV_MAX_WORKERS; i++) {
        h->hw[i].h = h;
        h->hw[i].w = &s->workers[i];
        h->hw[i].listen_fd = -1;
        h->hw[i].efd = -1;
        pthread_mutex_init(&h->hw[i].mu, NULL);
    }
    h->main_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->main_efd < 0) {
        snprintf(err, errcap, "eventfd: %s", strerror(errno));
        return errno;
    }

    char port[16];
    snprintf(port, sizeof port, "%d", s->p.port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int grc = getaddrinfo(s->p.host, port, &hints, &res);
    if (grc) {
        snprintf(err, errcap, "%s: %s", s->p.host, gai_strerror(grc));
        return LX_E_INVAL;
    }
    int fd = -1;
    const struct addrinfo *ai;
    for (ai = res; ai; ai = ai->ai_next) {
        /* SO_REUSEPORT would let a second server join our port silently:
         * first make sure the port is free with a plain bind. */
        if (s->nworkers > 1 && s->p.port != 0) {
            int probe = srv_listen_one(ai, 0, 1, err, errcap);
            if (probe < 0)
                continue;
            close(probe);
        }
        fd = srv_listen_one(ai, s->nworkers > 1, 0, err, errcap);
        if (fd == -ENOPROTOOPT || fd == -EINVAL) {
            fd = srv_listen_one(ai, 0, 0, err, errcap);   /* no SO_REUSEPORT: share */
            h->shared = 1;
        }
        if (fd >= 0)
            break;
    }
    if (fd < 0) {
        freeaddrinfo(res);
        if (!err[0])
            snprintf(err, errcap, "cannot listen on %s:%d", s->p.host, s->p.port);
        return LX_E_IO;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char host[INET6_ADDRSTRLEN + 2];
    char serv[16];
    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, serv, sizeof serv,
                NI_NUMERICHOST | NI_NUMERICSERV);
    s->port = atoi(serv);
    if (ss.ss_family == AF_INET6)
        snprintf(s->address, sizeof s->address, "[%s]:%d", host, s->port);
    else
        snprintf(s->address, sizeof s->address, "%s:%d", host, s->port);
    h->hw[0].listen_fd = fd;
    h->nfds = 1;
    /* One socket per worker on the same address (or dups of the one). */
    for (uint32_t i = 1; i < s->nworkers; i++) {
        int f;
        if (h->shared) {
            f = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        } else {
            struct addrinfo one = *ai;
            one.ai_addr = (struct sockaddr *)&ss;
            one.ai_addrlen = sl;
            f = srv_listen_one(&one, 1, 0, err, errcap);
        }
        if (f < 0) {
            freeaddrinfo(res);
            if (!err[0])
                snprintf(err, errcap, "cannot open listening socket %u: %s", i, strerror(errno));
            return LX_E_IO;
        }
        h->hw[i].listen_fd = f;
        h->nfds++;
    }
    freeaddrinfo(res);
    return 0;
}

void srv_http_close(srv_server *s)
{
    struct srv_http *h = s->http;
    if (!h)
        return;
    for (uint32_t i = 0; i < SRV_MAX_WORKERS; i++) {
        srv_hworker *hw = &h->hw[i];
        /* Jobs finished after the loop ended: their requests go with evhttp. */
        while (hw->done_head) {
            srv_wjob *j = hw->done_head;
            hw->done_head = j->next;
            srv_wjob_free(j);
        }
        if (hw->drain_ev)
            event_free(hw->drain_ev);
        if (hw->wake_ev)
            event_free(hw->wake_ev);
        if (hw->http)
            evhttp_free(hw->http);          /* closes connections and the socket */
        if (hw->obuf)
            evbuffer_free(hw->obuf);
        if (hw->base)
            event_base_free(hw->base);
        if (hw->listen_fd >= 0)
            close(hw->listen_fd);
        if (hw->efd >= 0)
            close(hw->efd);
        free(hw->conns.slot);
        pthread_mutex_destroy(&hw->mu);
    }
    if (h->sigterm)
        event_free(h->sigterm);
    if (h->sigint)
        event_free(h->sigint);
    if (h->main_wake)
        event_free(h->main_wake);
    if (h->main_base)
        event_base_free(h->main_base);
    if (h->main_efd >= 0)
        close(h->main_efd);
    free(h);
    s->http = NULL;
}
