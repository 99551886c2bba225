/* json.c: JSON in and out. The one file of server/ that calls jansson.
 *
 * In: request bodies are parsed with jansson, which enforces RFC 8259 and
 * UTF-8 (invalid byte sequences and NUL characters are rejected with a
 * position). A search body becomes an srv_search_req whose strings borrow
 * the parsed tree (owner, released by srv_json_release). A documents body
 * is a JSON array of objects or JSON lines; each document is checked by the
 * rules of `lexis add` (index/ingest.c): a non-empty "_id" (a string or an
 * integer written in decimal, at most IDX_MAX_ID_BYTES bytes), and for
 * each indexed field a string, null or nothing. A bad item is reported
 * with its line (JSON lines) or index (array) and the others go on.
 *
 * Out: responses are written straight into an srv_buf with srv_jw_str:
 * faster than building a tree per response, and the one place that must
 * get escaping right. Stored text is valid UTF-8 (it came through jansson),
 * but ids from a URL may not be: invalid bytes are written as U+FFFD so
 * every response is valid JSON.
 */
#include "server_impl.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the writer ---------------------------------------------------------------------- */

void srv_jw_str(srv_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    srv_buf_addc(b, '"');
    size_t run = 0;               /* bytes at p + i - run that need no escaping */
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            run++;
            i++;
            continue;
        }
        int32_t cp;
        size_t seq = c >= 0x80 ? lx_utf8_decode(p + i, n - i, &cp) : 0;
        if (seq) {
            run += seq;
            i += seq;
            continue;
        }
        srv_buf_add(b, p + i - run, run);
        run = 0;
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char)c };
            srv_buf_add(b, e, 2);
        } else if (c == '\n') {
            srv_buf_add(b, "\\n", 2);
        } else if (c == '\t') {
            srv_buf_add(b, "\\t", 2);
        } else if (c == '\r') {
            srv_buf_add(b, "\\r", 2);
        } else if (c < 0x20) {
            char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            srv_buf_add(b, e, 6);
        } else {
            srv_buf_add(b, "\xEF\xBF\xBD", 3);      /* invalid byte -> U+FFFD */
        }
        i++;
    }
    srv_buf_add(b, p + n - run, run);
    srv_buf_addc(b, '"');
}

/* ---- search requests ------------------------------------------------------------------ */

static int srv_bad(int *code, int which, char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int srv_bad(int *code, int which, char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    *code = which;
    return which == SRV_E_QUERY_TOO_LONG ? LX_E_TOOBIG : LX_E_INPUT;
}

static int srv_json_u32(json_t *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
    if (!json_is_integer(v))
        return -1;
    json_int_t x = json_integer_value(v);
    if (x < (json_int_t)lo || x > (json_int_t)hi)
        return -1;
    *out = (uint32_t)x;
    return 0;
}

static int srv_json_rm3(json_t *v, srv_search_req *o, int *code, char *err, size_t cap)
{
    o->rm = qry_rm3_default_params();
    if (json_is_boolean(v)) {
        o->rm3 = json_is_true(v);
        return 0;
    }
    if (!json_is_object(v))
        return srv_bad(code, SRV_E_BAD_REQUEST, err, cap,
                       "\"rm3\" must be a boolean or {\"fb_docs\",\"fb_terms\",\"orig_weight\"}");
    o->rm3 = 1;
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x) {
        if (!strcmp(key, "fb_docs")) {
            if (srv_json_u32(x, 1, 1000, &o->rm.fb_docs))
                return srv_bad(code, SRV_E_BAD_REQUEST, err, cap, "\"rm3.fb_docs\" must be an integer 1..1000");
        } else if (!strcmp(key, "fb_terms")) {
            if (srv_json_u32(x, 1, 1000, &o->rm.fb_terms))
                return srv_bad(code, SRV_E_BAD_REQUEST, err, cap, "\"rm3.fb_terms\" must be an integer 1..1000");
        } else if (!strcmp(key, "orig_weight")) {
            double w = json_is_number(x) ? json_number_value(x) : -1;
            if (!(w >= 0 && w <= 1))
                return srv_bad(code, SRV_E_BAD_REQUEST, err, cap, "\"rm3.orig_weight\" must be a number 0..1");
            o->rm.orig_weight = (float)w;
        } else {
            return srv_bad(code, SRV_E_BAD_REQUEST, err, cap, "unknown field \"rm3.%.64s\"", key);
        }
    }
    return 0;
}

int srv_json_search_parse(const char *body, size_t len, const srv_params *lim,
                          srv_search_req *o, int *code, char *err, size_t cap)
{
    memset(o, 0, sizeof *o);
    o->qp = qry_default_params();
    o->snippets = 1;
    o->rm = qry_rm3_default_params();
    json_error_t je;
    json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return srv_bad(code, SRV_E_BAD_JSON, err, cap, "invalid JSON at line %d, column %d: %s",
                       je.line, je.column, je.text);
    o->owner = root;
    int rc;
    if (!json_is_object(root)) {
        rc = srv_bad(code, SRV_E_BAD_REQUEST, err, cap, "expected a JSON object {\"query\": ...}");
        goto out_bad;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "query")) {
            if (!json_is_string(v)) {
                rc = srv_bad(code, SRV_E_BAD_REQUEST, err, cap, "\"query\" must be a string");
                goto out_bad;
            }
            o->query = json_string_value(v);
            o->query_len = json_string_length(v);
        } else if (!strcmp(key, "k")) {
            if (srv_json_u32(v, 1, lim->max_k, &o->qp.k)) {
                rc = srv_bad(code, SRV_E_BAD_REQUEST, err, cap, "\"k\" must be an integer from 1 to %u",
                             lim->max_k);
                goto out_bad;
            }
        } else if (!strcmp(key, "algo")) {
            if (!json_is_string(v) || (o->qp.algo = qry_algo_parse(json_string_value(v))) < 0) {
                rc = srv_bad(code, SRV_E_BAD_REQUEST, err, cap,
                             "\"algo\" must be one of auto, exhaustive, maxscore, wand, bmw");
                goto out_bad;
            }
        } else if (!strcmp(key, "and")) {
            if (!json_is_boolean(v)) {
                rc = srv_bad(code, SRV_E_BAD_REQUEST, err, cap, "\"and\" must be a boolean");
                goto out_bad;
            }
            o->qp.conjunctive = json_is_true(v);
        } else if (!strcmp(key, "rm3")) {
            if ((rc = srv_json_rm3(v, o, code, err, cap)) != 0)
                goto out_bad;
        } else if (!strcmp(key, "snippets")) {
            if (!json_is_boolean(v)) {
                rc = srv_bad(code, SRV_E_BAD_REQUEST, err, cap, "\"snippets\" must be a boolean");
                goto out_bad;
            }
            o->snippets = json_is_true(v);
        } else if (!strcmp(key, "mode")) {
            if (!json_is_string(v) || strcmp(json_string_value(v), "bm25")) {
                rc = srv_bad(code, SRV_E_BAD_REQUEST, err, cap,
                             "\"mode\": this index supports \"bm25\" only");
                goto out_bad;
            }
        } else if (!strcmp(key, "rerank")) {
            if (!json_is_false(v)) {
                rc = srv_bad(code, SRV_E_BAD_REQUEST, err, cap,
                             "\"rerank\": this index has no multi-vector store (false only)");
                goto out_bad;
            }
        } else if (!strcmp(key, "k1") || !strcmp(key, "b")) {
            double x = json_is_number(v) ? json_number_value(v) : -1;
            int is_b = key[0] == 'b';
            if (!(x >= 0) || (is_b && x > 1) || x > 1000) {
                rc = srv_bad(code, SRV_E_BAD_REQUEST, err, cap, "\"%s\" must be a number %s", key,
                             is_b ? "0..1" : "0..1000");
                goto out_bad;
            }
            if (is_b)
                o->qp.b = (float)x;
            else
                o->qp.k1 = (float)x;
        } else {
            rc = srv_bad(code, SRV_E_BAD_REQUEST, err, cap,
                         "unknown field \"%.64s\" (known: query, k, algo, and, rm3, snippets, "
                         "mode, rerank, k1, b)", key);
            goto out_bad;
        }
    }
    if (!o->query) {
        rc = srv_bad(code, SRV_E_BAD_REQUEST, err, cap, "missing \"query\"");
        goto out_bad;
    }
    if (o->query_len > lim->max_query_bytes) {
        rc = srv_bad(code, SRV_E_QUERY_TOO_LONG, err, cap, "\"query\" is %zu bytes long (limit %zu)",
                     o->query_len, lim->max_query_bytes);
        goto out_bad;
    }
    return 0;

out_bad:
    json_decref(root);
    o->owner = NULL;
    return rc;
}

void srv_json_release(void *owner)
{
    if (owner)
        json_decref((json_t *)owner);
}

/* ---- documents -------------------------------------------------------------------------- */

/* Checks one document object; on success fills d (borrowing obj). */
static int srv_doc_check(json_t *obj, const char *const *fields, size_t nfields, srv_doc *d,
                         char *idbuf, size_t idcap, char *err, size_t cap)
{
    if (!json_is_object(obj)) {
        snprintf(err, cap, "expected a JSON object, found %s",
                 json_is_array(obj) ? "an array" : "a scalar");
        return -1;
    }
    json_t *id = json_object_get(obj, "_id");
    if (!id) {
        snprintf(err, cap, "missing \"_id\"");
        return -1;
    }
    if (json_is_string(id)) {
        d->id = json_string_value(id);
        d->id_len = json_string_length(id);
    } else if (json_is_integer(id)) {
        snprintf(idbuf, idcap, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
        d->id = idbuf;
        d->id_len = strlen(idbuf);
    } else {
        snprintf(err, cap, "\"_id\" must be a string or an integer");
        return -1;
    }
    if (d->id_len == 0) {
        snprintf(err, cap, "\"_id\" is empty");
        return -1;
    }
    if (d->id_len > IDX_MAX_ID_BYTES) {
        snprintf(err, cap, "\"_id\" is %zu bytes long (limit %d)", d->id_len, IDX_MAX_ID_BYTES);
        return -1;
    }
    d->nfields = nfields;
    for (size_t i = 0; i < nfields; i++) {
        json_t *v = json_object_get(obj, fields[i]);
        if (!v || json_is_null(v)) {
            d->values[i] = "";
            d->lens[i] = 0;
        } else if (json_is_string(v)) {
            d->values[i] = json_string_value(v);
            d->lens[i] = json_string_length(v);
        } else {
            snprintf(err, cap, "field \"%s\" must be a string", fields[i]);
            return -1;
        }
    }
    return 0;
}

static int srv_doc_item(json_t *obj, uint64_t item, const char *const *fields, size_t nfields,
                        const srv_docs_cb *cb)
{
    srv_doc d;
    char idbuf[32], msg[200];
    if (srv_doc_check(obj, fields, nfields, &d, idbuf, sizeof idbuf, msg, sizeof msg)) {
        cb->bad(cb->ctx, item, msg);
        return 0;
    }
    return cb->doc(cb->ctx, item, &d);
}

int srv_json_docs_parse(const char *body, size_t len, const char *const *fields, size_t nfields,
                        const srv_docs_cb *cb, int *is_array, uint64_t *items,
                        char *err, size_t errcap)
{
    size_t i = 0;
    *items = 0;
    *is_array = 0;
    if (!body)
        body = "";
    if (len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0)
        i = 3;                                  /* a byte order mark */
    size_t start = i;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i < len && body[i] == '[') {
        *is_array = 1;
        json_error_t je;
        json_t *root = json_loadb(body + start, len - start, 0, &je);
        if (!root) {
            snprintf(err, errcap, "invalid JSON array at line %d, column %d: %s", je.line,
                     je.column, je.text);
            return LX_E_INPUT;
        }
        int rc = 0;
        size_t n = json_array_size(root);
        for (size_t k = 0; k < n && rc == 0; k++) {
            (*items)++;
            rc = srv_doc_item(json_array_get(root, k), k, fields, nfields, cb);
        }
        json_decref(root);
        return rc;
    }
    /* JSON lines. */
    uint64_t lineno = 0;
    for (size_t pos = start; pos < len;) {
        const char *nl = memchr(body + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - body) : len;
        size_t lend = end;
        lineno++;
        if (lend > pos && body[lend - 1] == '\r')
            lend--;
        size_t k = pos;
        while (k < lend && (body[k] == ' ' || body[k] == '\t'))
            k++;
        if (k < lend) {
            (*items)++;
            json_error_t je;
            json_t *obj = json_loadb(body + pos, lend - pos, 0, &je);
            if (!obj) {
                char msg[200];
                snprintf(msg, sizeof msg, "invalid JSON at column %d: %s", je.column, je.text);
                cb->bad(cb->ctx, lineno, msg);
            } else {
                int rc = srv_doc_item(obj, lineno, fields, nfields, cb);
                json_decref(obj);
                if (rc)
                    return rc;
            }
        }
        pos = end + 1;
    }
    return 0;
}
