/* routes.c: a request in, a response out. No sockets and no libevent here,
 * so tests and the fuzzer call srv_handle directly.
 *
 * Routing is by exact path (the query string is ignored):
 *     /  /index.html   GET HEAD      the search page
 *     /health          GET HEAD
 *     /stats           GET HEAD
 *     /metrics         GET HEAD
 *     /search          POST
 *     /docs            POST          (api key)
 *     /docs/{id}       GET HEAD DELETE (DELETE: api key); {id} is
 *                      percent-decoded and may hold any byte but NUL
 * A known path with another method gets 405 and an Allow header (OPTIONS
 * gets 204 and the Allow header); an unknown path 404.
 *
 * Reads run here, in the worker, each in its own read snapshot (taken
 * with srv_reader_open, under the map lock shared). Writes are checked
 * here (key, size) and handed out as a job in resp->deferred.
 */
#include "server_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const srv_route_names[SRV_R_COUNT] = {
    "/", "/health", "/stats", "/metrics", "/search", "/docs", "/docs/{id}", "other",
};
const char *const srv_method_names[SRV_M_OTHER + 1] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "OTHER",
};
const char *const srv_err_names[SRV_E_COUNT] = {
    "bad_request", "bad_json", "query_too_long", "unauthorized", "forbidden", "not_found",
    "method_not_allowed", "payload_too_large", "overloaded", "index_busy", "internal",
};

static const char srv_json_type[] = "application/json";

/* ---- errors --------------------------------------------------------------------------- */

void srv_error_buf(srv_buf *b, int err, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    srv_buf_reset(b);
    srv_buf_adds(b, "{\"error\":{\"code\":\"");
    srv_buf_adds(b, srv_err_names[err]);
    srv_buf_adds(b, "\",\"message\":");
    srv_jw_str(b, msg, strlen(msg));
    srv_buf_adds(b, "}}\n");
}

void srv_error(srv_response *resp, int status, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    resp->status = status;
    resp->err = err;
    resp->content_type = srv_json_type;
    srv_error_buf(resp->body, err, fmt, ap);
    va_end(ap);
}

/* ---- paths -------------------------------------------------------------------------------- */

static int srv_hex(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long srv_path_decode(const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = srv_hex((unsigned char)in[i + 1]), lo = srv_hex((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '\0') {
            return -1;
        }
        out[o++] = c;
    }
    return (long)o;
}

/* ---- handlers ------------------------------------------------------------------------------- */

static void srv_ok_json(srv_response *resp)
{
    resp->status = 200;
    resp->content_type = srv_json_type;
}

static uint64_t srv_file_bytes(const srv_server *s)
{
    struct stat st;
    return stat(s->data_path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void srv_h_health(srv_worker *w, srv_response *resp)
{
    idx_reader *r;
    int rc = srv_reader_open(w->s, &r);
    if (rc) {
        srv_error(resp, 503, SRV_E_OVERLOADED, "cannot read the index: %s", lx_strerror(rc));
        return;
    }
    uint64_t n = idx_reader_stats(r)->ndocs;
    srv_reader_close(w->s, r);
    srv_ok_json(resp);
    srv_buf_printf(resp->body, "{\"status\":\"ok\",\"documents\":%llu}\n", (unsigned long long)n);
}

static void srv_h_stats(srv_worker *w, srv_response *resp)
{
    srv_server *s = w->s;
    idx_reader *r;
    int rc = srv_reader_open(s, &r);
    if (rc) {
        srv_error(resp, 503, SRV_E_OVERLOADED, "cannot read the index: %s", lx_strerror(rc));
        return;
    }
    idx_stats st = *idx_reader_stats(r);
    srv_reader_close(s, r);
    srv_buf *b = resp->body;
    srv_ok_json(resp);
    srv_buf_printf(b,
                   "{\"documents\":%llu,\"terms\":%llu,\"total_length\":%llu,\"avgdl\":%.4f,"
                   "\"segments\":%u,\"deleted\":%llu,\"next_docid\":%u,\"index_bytes\":%llu,"
                   "\"bm25\":{\"k1\":%g,\"b\":%g},\"analyzer\":",
                   (unsigned long long)st.ndocs, (unsigned long long)st.nterms,
                   (unsigned long long)st.total_len, st.avgdl, st.nsegments,
                   (unsigned long long)st.ndeleted, st.next_docid,
                   (unsigned long long)srv_file_bytes(s), st.k1, st.b);
    const char *an = idx_env_analyzer_desc(s->env);
    srv_jw_str(b, an, strlen(an));
    srv_buf_adds(b, ",\"fields\":[");
    for (size_t i = 0; i < s->nfields; i++) {
        if (i)
            srv_buf_addc(b, ',');
        srv_jw_str(b, s->fields[i], strlen(s->fields[i]));
    }
    srv_buf_printf(b,
                   "],\"server\":{\"threads\":%u,\"uptime_s\":%.1f,\"writes\":%s,"
                   "\"writer_lock\":%s,\"limits\":{\"max_body\":%zu,\"max_search_body\":%zu,"
                   "\"max_query_bytes\":%zu,\"max_k\":%u,\"max_connections\":%u,"
                   "\"max_write_queue\":%u,\"timeout_s\":%g}}}\n",
                   s->nworkers, lx_now() - s->started, s->api_key ? "true" : "false",
                   srv_server_has_writer_lock(s) ? "true" : "false", s->p.max_body, s->p.max_search_body,
                   s->p.max_query_bytes, s->p.max_k, s->p.max_connections, s->p.max_write_queue,
                   s->p.timeout_s);
}

static void srv_h_metrics(srv_worker *w, srv_response *resp)
{
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    srv_metrics_render(w->s, resp->body);
}

static void srv_h_page(srv_response *resp)
{
    resp->status = 200;
    resp->content_type = "text/html; charset=utf-8";
    srv_buf_add(resp->body, srv_page_html, srv_page_html_len);
}

static void srv_write_highlights(srv_buf *b, const srv_snippet *sn)
{
    srv_buf_addc(b, '[');
    for (size_t i = 0; i < sn->nhl; i++)
        srv_buf_printf(b, "%s[%u,%u]", i ? "," : "", sn->hl[i][0], sn->hl[i][1]);
    srv_buf_addc(b, ']');
}

static const char *srv_field(const idx_doc *d, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < d->nfields; i++) {
        if (d->name_lens[i] == nl && memcmp(d->names[i], name, nl) == 0) {
            *len = d->value_lens[i];
            return d->values[i];
        }
    }
    *len = 0;
    return "";
}

static void srv_h_search(srv_worker *w, const srv_request *req, srv_response *resp)
{
    srv_server *s = w->s;
    if (req->body_len > s->p.max_search_body) {
        srv_error(resp, 413, SRV_E_TOO_LARGE, "search body is %zu bytes (limit %zu)", req->body_len,
                  s->p.max_search_body);
        return;
    }
    srv_search_req sr;
    int code = SRV_E_BAD_REQUEST;
    char err[256];
    if (srv_json_search_parse(req->body, req->body_len, &s->p, &sr, &code, err, sizeof err)) {
        srv_error(resp, 400, code, "%s", err);
        return;
    }
    double t0 = lx_now();
    srv_qterms qt;
    int rc = 0;
    if (sr.snippets)
        rc = srv_qterms_collect(w->an, &w->arena, sr.query, sr.query_len, &qt);
    idx_reader *r = NULL;
    if (rc == 0)
        rc = srv_reader_open(s, &r);
    if (rc) {
        srv_json_release(sr.owner);
        srv_error(resp, 503, SRV_E_OVERLOADED, "cannot search now: %s", lx_strerror(rc));
        return;
    }
    qry_result res;
    if (sr.rm3)
        rc = qry_search_rm3(w->q, r, sr.query, sr.query_len, &sr.qp, &sr.rm, &res);
    else
        rc = qry_search(w->q, r, sr.query, sr.query_len, &sr.qp, &res);
    if (rc) {
        srv_reader_close(s, r);
        srv_json_release(sr.owner);
        if (rc == LX_E_INVAL)
            srv_error(resp, 400, SRV_E_BAD_REQUEST, "bad search parameters");
        else
            srv_error(resp, 500, SRV_E_INTERNAL, "search failed: %s", lx_strerror(rc));
        return;
    }
    srv_buf *b = resp->body;
    srv_buf_adds(b, "{\"query\":");
    srv_jw_str(b, sr.query, sr.query_len);
    srv_buf_printf(b, ",\"algo\":\"%s\",\"hits\":[", qry_algo_name(res.algo));
    for (uint32_t i = 0; i < res.n; i++) {
        idx_doc d;
        if ((rc = idx_reader_doc(r, res.hits[i].docid, &d)) != 0)
            break;
        srv_buf_adds(b, i ? ",{\"id\":" : "{\"id\":");
        srv_jw_str(b, d.id, d.id_len);
        srv_buf_printf(b, ",\"score\":%.6f,\"title\":", res.hits[i].score);
        size_t tl, xl;
        const char *title = srv_field(&d, "title", &tl);
        const char *text = srv_field(&d, "text", &xl);
        if (!xl && s->nfields && strcmp(s->fields[s->nfields - 1], "title"))
            text = srv_field(&d, s->fields[s->nfields - 1], &xl);   /* another body field */
        if (!sr.snippets) {
            srv_jw_str(b, title, tl);
            srv_buf_addc(b, '}');
            continue;
        }
        srv_snippet sn;
        if ((rc = srv_snippet_make(w->an, &qt, title, tl, 0, &w->tmp, &sn)) != 0)
            break;
        srv_jw_str(b, w->tmp.p ? w->tmp.p : "", w->tmp.len);
        srv_buf_adds(b, ",\"title_highlights\":");
        srv_write_highlights(b, &sn);
        if ((rc = srv_snippet_make(w->an, &qt, text, xl, s->p.snippet_bytes, &w->tmp, &sn)) != 0)
            break;
        srv_buf_adds(b, ",\"snippet\":");
        srv_jw_str(b, w->tmp.p ? w->tmp.p : "", w->tmp.len);
        srv_buf_adds(b, ",\"highlights\":");
        srv_write_highlights(b, &sn);
        srv_buf_addc(b, '}');
    }
    srv_reader_close(s, r);
    srv_json_release(sr.owner);
    if (rc) {
        srv_error(resp, 500, SRV_E_INTERNAL, "reading a hit failed: %s", lx_strerror(rc));
        return;
    }
    srv_buf_printf(b, "],\"took_ms\":%.3f}\n", (lx_now() - t0) * 1000);
    srv_ok_json(resp);
}

static void srv_h_doc_get(srv_worker *w, const char *id, size_t id_len, srv_response *resp)
{
    idx_reader *r;
    int rc = srv_reader_open(w->s, &r);
    if (rc) {
        srv_error(resp, 503, SRV_E_OVERLOADED, "cannot read the index: %s", lx_strerror(rc));
        return;
    }
    uint32_t docid;
    idx_doc d;
    rc = idx_reader_lookup(r, id, id_len, &docid);
    if (rc == 0)
        rc = idx_reader_doc(r, docid, &d);
    if (rc == LX_E_NOTFOUND) {
        srv_reader_close(w->s, r);
        resp->status = 404;
        resp->err = SRV_E_NOT_FOUND;
        resp->content_type = srv_json_type;
        srv_buf_adds(resp->body, "{\"error\":{\"code\":\"not_found\",\"message\":");
        srv_buf_reset(&w->tmp);
        srv_buf_adds(&w->tmp, "no document with id ");
        srv_buf_add(&w->tmp, id, id_len > 200 ? 200 : id_len);
        srv_jw_str(resp->body, w->tmp.p, w->tmp.len);
        srv_buf_adds(resp->body, "}}\n");
        return;
    }
    if (rc) {
        srv_reader_close(w->s, r);
        srv_error(resp, 500, SRV_E_INTERNAL, "reading the document failed: %s", lx_strerror(rc));
        return;
    }
    srv_buf *b = resp->body;
    srv_buf_adds(b, "{\"_id\":");
    srv_jw_str(b, d.id, d.id_len);
    for (size_t i = 0; i < d.nfields; i++) {
        srv_buf_addc(b, ',');
        srv_jw_str(b, d.names[i], d.name_lens[i]);
        srv_buf_addc(b, ':');
        srv_jw_str(b, d.values[i], d.value_lens[i]);
    }
    srv_buf_adds(b, "}\n");
    srv_reader_close(w->s, r);
    srv_ok_json(resp);
}

static void srv_h_write(srv_worker *w, const srv_request *req, srv_response *resp, int kind,
                        const char *data, size_t len)
{
    if (srv_auth_check(w->s, req->authorization, resp))
        return;
    if (kind == SRV_WJOB_ADD) {
        if (req->body_len > w->s->p.max_body) {
            srv_error(resp, 413, SRV_E_TOO_LARGE, "body is %zu bytes (limit %zu)", req->body_len,
                      w->s->p.max_body);
            return;
        }
        if (req->body_len == 0) {
            srv_error(resp, 400, SRV_E_BAD_REQUEST,
                      "empty body: send JSON lines or a JSON array of documents");
            return;
        }
    }
    srv_wjob *j = srv_wjob_new(kind, data, len, req->t_start);
    if (!j) {
        srv_error(resp, 503, SRV_E_OVERLOADED, "out of memory");
        return;
    }
    resp->deferred = j;
}

/* ---- dispatch ---------------------------------------------------------------------------------- */

static void srv_method_not_allowed(srv_response *resp, int method, const char *allow)
{
    resp->allow = allow;
    if (method == SRV_M_OPTIONS) {
        resp->status = 204;
        resp->content_type = "text/plain";
        return;
    }
    srv_error(resp, 405, SRV_E_METHOD, "method not allowed here (allowed: %s)", allow);
}

void srv_handle(srv_worker *w, const srv_request *req, srv_response *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->body = &w->out;
    resp->err = SRV_E_NONE;
    resp->route = SRV_R_OTHER;
    srv_buf_reset(&w->out);
    lx_arena_reset(&w->arena);

    const char *uri = req->uri ? req->uri : "";
    size_t n = req->uri_len, plen = 0;
    while (plen < n && uri[plen] != '?' && uri[plen] != '#')
        plen++;
    int m = req->method;
    int get = m == SRV_M_GET || m == SRV_M_HEAD;
#define SRV_IS(lit) (plen == sizeof(lit) - 1 && memcmp(uri, lit, plen) == 0)
    if (SRV_IS("/") || SRV_IS("/index.html")) {
        resp->route = SRV_R_PAGE;
        if (get) srv_h_page(resp);
        else srv_method_not_allowed(resp, m, "GET, HEAD");
    } else if (SRV_IS("/health")) {
        resp->route = SRV_R_HEALTH;
        if (get) srv_h_health(w, resp);
        else srv_method_not_allowed(resp, m, "GET, HEAD");
    } else if (SRV_IS("/stats")) {
        resp->route = SRV_R_STATS;
        if (get) srv_h_stats(w, resp);
        else srv_method_not_allowed(resp, m, "GET, HEAD");
    } else if (SRV_IS("/metrics")) {
        resp->route = SRV_R_METRICS;
        if (get) srv_h_metrics(w, resp);
        else srv_method_not_allowed(resp, m, "GET, HEAD");
    } else if (SRV_IS("/search")) {
        resp->route = SRV_R_SEARCH;
        if (m == SRV_M_POST) srv_h_search(w, req, resp);
        else srv_method_not_allowed(resp, m, "POST");
    } else if (SRV_IS("/docs")) {
        resp->route = SRV_R_DOCS;
        if (m == SRV_M_POST) srv_h_write(w, req, resp, SRV_WJOB_ADD, req->body, req->body_len);
        else srv_method_not_allowed(resp, m, "POST");
    } else if (plen > 6 && memcmp(uri, "/docs/", 6) == 0) {
        resp->route = SRV_R_DOC;
        if (!get && m != SRV_M_DELETE) {
            srv_method_not_allowed(resp, m, "GET, HEAD, DELETE");
            return;
        }
        char *id = lx_arena_alloc(&w->arena, plen);
        long id_len = id ? srv_path_decode(uri + 6, plen - 6, id) : -1;
        if (id_len <= 0 || id_len > IDX_MAX_ID_BYTES) {
            srv_error(resp, id ? 400 : 503, id ? SRV_E_BAD_REQUEST : SRV_E_OVERLOADED,
                      "bad document id in the path (percent-encoded, 1 to %d bytes, no NUL)",
                      IDX_MAX_ID_BYTES);
            return;
        }
        if (get)
            srv_h_doc_get(w, id, (size_t)id_len, resp);
        else
            srv_h_write(w, req, resp, SRV_WJOB_DELETE, id, (size_t)id_len);
    } else {
        srv_error(resp, 404, SRV_E_NOT_FOUND,
                  "no such endpoint (try GET /, /health, /stats, /metrics, /docs/{id}; "
                  "POST /search, /docs; DELETE /docs/{id})");
    }
#undef SRV_IS
    if (resp->body->failed) {
        srv_buf_reset(resp->body);
        srv_error(resp, 500, SRV_E_INTERNAL, "out of memory");
    }
}
