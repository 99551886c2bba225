/* writes.c: the writer thread. Every change to the index goes through here.
 *
 * Workers turn POST /docs and DELETE /docs/{id} into jobs (srv_wjob: the
 * body or the id, copied) and queue them; the queue is bounded
 * (max_write_queue, 503 beyond) so a flood of writes cannot eat the memory.
 * The writer thread takes every job queued (a group, up to
 * SRV_GROUP_BYTES of bodies), applies them in order to the one idx_writer,
 * and commits once: group commit, so N concurrent writers cost one LMDB
 * commit (one fsync), not N. Then it hands each job back (job->done) to the
 * worker that answers it. A document is searchable from the commit on, so
 * by the time its POST is answered, every later search sees it; the delay
 * from arrival to commit is the `lexis_write_visible_seconds` histogram.
 *
 * The index writer is opened once, at startup, and kept: the server is the
 * index's one writer while it runs (another process trying gets "busy"),
 * which also means no other process can grow the LMDB map under our
 * readers (see the map lock in server_impl.h). If the lock is held by
 * someone else at startup, each write group tries again (briefly), and
 * answers 503 while it cannot get it.
 *
 * Map growth: idx_writer_flush grows the LMDB map when used + 1.5 * need >
 * map, need = 2 * batch memory + 16 MiB. We predict it from above: the
 * data file's size bounds `used`, and the batch memory is bounded by
 * 64 bytes per input byte + 1 MiB (terms, postings vectors and the stored
 * copy; generous). When growth is possible the flush runs under the
 * exclusive map lock (searches wait for it); otherwise it commits while
 * searches run. After an exclusive flush the map size is measured again.
 *
 * A failed commit (I/O error, full disk) fails every job of the group with
 * 500; the writer is then dropped (its pending batch with it) and reopened.
 */
#include "server_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SRV_GROUP_BYTES ((size_t)16 << 20)
#define SRV_GROUP_JOBS 256
#define SRV_MAX_ERRORS 100          /* per-item errors listed in one response */

/* ---- jobs -------------------------------------------------------------------------- */

srv_wjob *srv_wjob_new(int kind, const char *data, size_t len, double t_start)
{
    srv_wjob *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->kind = kind;
    j->t_start = t_start;
    j->data = malloc(len + 1);
    if (!j->data) {
        free(j);
        return NULL;
    }
    if (len)
        memcpy(j->data, data, len);
    j->data[len] = '\0';
    j->len = len;
    j->err = SRV_E_NONE;
    srv_buf_init(&j->out);
    return j;
}

void srv_wjob_free(srv_wjob *j)
{
    if (!j)
        return;
    free(j->data);
    srv_buf_free(&j->out);
    free(j);
}

void srv_wjob_response(srv_wjob *j, srv_response *resp)
{
    resp->status = j->status;
    resp->err = j->err;
    resp->retry_after = j->retry_after;
    resp->content_type = "application/json";
    resp->body = &j->out;
    if (j->out.failed) {
        srv_buf_reset(&j->out);
        srv_error(resp, 500, SRV_E_INTERNAL, "out of memory");
    }
}

static void srv_wjob_error(srv_wjob *j, int status, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void srv_wjob_error(srv_wjob *j, int status, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    j->status = status;
    j->err = err;
    srv_error_buf(&j->out, err, fmt, ap);
    va_end(ap);
}

/* ---- ids added in this group (for "replaced") ---------------------------------------- */

typedef struct srv_idset {
    char **slot;              /* arena strings: 2-byte length + bytes */
    size_t cap, n;
    lx_arena a;
} srv_idset;

static uint64_t srv_idhash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* Inserts; returns 1 if it was there, 0 if new, -1 on OOM. */
static int srv_idset_add(srv_idset *set, const char *id, size_t len)
{
    if (set->n * 2 >= set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 256;
        char **slot = calloc(cap, sizeof *slot);
        if (!slot)
            return -1;
        for (size_t i = 0; i < set->cap; i++) {
            char *e = set->slot[i];
            if (!e)
                continue;
            size_t el = (unsigned char)e[0] | (size_t)(unsigned char)e[1] << 8;
            size_t k = srv_idhash(e + 2, el) & (cap - 1);
            while (slot[k])
                k = (k + 1) & (cap - 1);
            slot[k] = e;
        }
        free(set->slot);
        set->slot = slot;
        set->cap = cap;
    }
    size_t k = srv_idhash(id, len) & (set->cap - 1);
    for (char *e; (e = set->slot[k]) != NULL; k = (k + 1) & (set->cap - 1)) {
        size_t el = (unsigned char)e[0] | (size_t)(unsigned char)e[1] << 8;
        if (el == len && memcmp(e + 2, id, len) == 0)
            return 1;
    }
    char *e = lx_arena_alloc(&set->a, len + 2);
    if (!e)
        return -1;
    e[0] = (char)(len & 0xFF);
    e[1] = (char)(len >> 8);
    memcpy(e + 2, id, len);
    set->slot[k] = e;
    set->n++;
    return 0;
}

static void srv_idset_free(srv_idset *set)
{
    free(set->slot);
    lx_arena_free(&set->a);
}

/* ---- applying one job ------------------------------------------------------------------ */

typedef struct add_ctx {
    srv_server *s;
    srv_wjob *j;
    idx_reader *r;
    srv_idset *ids;
    srv_buf *errs;           /* JSON items of the errors list */
    const char *item_key;    /* "line" or "index" */
    uint64_t nerrs;
    int fatal;               /* a code that fails the whole group */
} add_ctx;

static void srv_add_bad(void *ctx, uint64_t item, const char *msg)
{
    add_ctx *c = ctx;
    c->j->n_skipped++;
    if (c->nerrs++ >= SRV_MAX_ERRORS)
        return;
    srv_buf_printf(c->errs, "%s{\"%s\":%llu,\"message\":", c->errs->len ? "," : "", c->item_key,
                   (unsigned long long)item);
    srv_jw_str(c->errs, msg, strlen(msg));
    srv_buf_addc(c->errs, '}');
}

static int srv_add_doc(void *ctx, uint64_t item, const srv_doc *d)
{
    add_ctx *c = ctx;
    int seen = srv_idset_add(c->ids, d->id, d->id_len);
    if (seen < 0) {
        c->fatal = LX_E_NOMEM;
        return LX_E_NOMEM;
    }
    uint32_t docid;
    int replaced = seen || (c->r && idx_reader_lookup(c->r, d->id, d->id_len, &docid) == 0);
    const char *const *names = c->s->fields;
    int rc = idx_writer_add(c->s->wr.w, d->id, d->id_len, names, d->values, d->lens, d->nfields);
    if (rc == LX_E_INPUT || rc == LX_E_TOOBIG) {
        char msg[128];
        snprintf(msg, sizeof msg, "document rejected: %s", lx_strerror(rc));
        srv_add_bad(ctx, item, msg);
        return 0;
    }
    if (rc) {
        c->fatal = rc;
        return rc;
    }
    c->j->n_indexed++;
    c->j->n_replaced += (uint64_t)replaced;
    c->j->changed = 1;
    return 0;
}

static void srv_apply_add(srv_server *s, srv_wjob *j, idx_reader *r, srv_idset *ids, int *fatal)
{
    srv_buf errs;
    srv_buf_init(&errs);
    add_ctx c = { s, j, r, ids, &errs, "line", 0, 0 };
    /* Which key numbers the items is known once the format is: parse into
     * errs with "line" and fix the key for arrays below. */
    int is_array = 0;
    uint64_t items = 0;
    char err[256] = "";
    srv_docs_cb cb = { srv_add_doc, srv_add_bad, &c };
    const char *body = j->data;
    size_t len = j->len;
    /* Peek at the format to pick the item key first. */
    for (size_t i = 0; i < len; i++) {
        char ch = body[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || (unsigned char)ch >= 0x80)
            continue;
        if (ch == '[')
            c.item_key = "index";
        break;
    }
    int rc = srv_json_docs_parse(body, len, s->fields, s->nfields, &cb, &is_array, &items, err,
                                 sizeof err);
    if (c.fatal) {
        *fatal = c.fatal;
        srv_wjob_error(j, 500, SRV_E_INTERNAL, "indexing failed: %s", lx_strerror(c.fatal));
    } else if (rc == LX_E_INPUT) {
        srv_wjob_error(j, 400, SRV_E_BAD_JSON, "%s", err);
    } else if (items == 0) {
        srv_wjob_error(j, 400, SRV_E_BAD_REQUEST,
                       "no documents in the body (JSON lines or a JSON array of "
                       "{\"_id\", \"%s\", ...})", s->fields[0]);
    } else if (j->n_indexed == 0) {
        j->status = 400;
        j->err = SRV_E_BAD_REQUEST;
        srv_buf_reset(&j->out);
        srv_buf_printf(&j->out,
                       "{\"error\":{\"code\":\"bad_request\",\"message\":\"no valid document "
                       "(%llu skipped)\",\"skipped\":%llu,\"errors\":[",
                       (unsigned long long)j->n_skipped, (unsigned long long)j->n_skipped);
        srv_buf_add(&j->out, errs.p, errs.len);
        srv_buf_adds(&j->out, "]}}\n");
    } else {
        /* Provisional: completed after the commit. Keep the errors list. */
        j->status = 200;
        srv_buf_reset(&j->out);
        srv_buf_add(&j->out, errs.p, errs.len);
        j->truncated = c.nerrs > SRV_MAX_ERRORS;
    }
    srv_buf_free(&errs);
}

static void srv_apply_delete(srv_server *s, srv_wjob *j, int *fatal)
{
    int rc = idx_writer_delete(s->wr.w, j->data, j->len);
    if (rc == LX_E_NOTFOUND) {
        /* Built by hand: the id may hold invalid UTF-8 (srv_jw_str fixes it). */
        j->status = 404;
        j->err = SRV_E_NOT_FOUND;
        srv_buf m;
        srv_buf_init(&m);
        srv_buf_adds(&m, "no document with id ");
        srv_buf_add(&m, j->data, j->len > 200 ? 200 : j->len);
        srv_buf_reset(&j->out);
        srv_buf_adds(&j->out, "{\"error\":{\"code\":\"not_found\",\"message\":");
        srv_jw_str(&j->out, m.p ? m.p : "", m.len);
        srv_buf_adds(&j->out, "}}\n");
        srv_buf_free(&m);
        return;
    }
    if (rc) {
        *fatal = rc;
        srv_wjob_error(j, 500, SRV_E_INTERNAL, "delete failed: %s", lx_strerror(rc));
        return;
    }
    j->status = 200;
    j->changed = 1;
}

/* ---- the group ------------------------------------------------------------------------- */

static int srv_writer_acquire(srv_server *s)
{
    if (s->wr.w)
        return 0;
    idx_writer_params wp = idx_writer_default_params();
    wp.mem_budget = (size_t)4 << 30;   /* never flush inside a group */
    int rc = LX_E_BUSY;
    for (int attempt = 0; attempt < 10 && rc == LX_E_BUSY; attempt++) {
        if (attempt) {
            struct timespec ts = { 0, 50 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
        rc = idx_writer_open(s->env, &wp, &s->wr.w);
    }
    if (rc)
        s->wr.w = NULL;
    atomic_store(&s->wr.held, rc == 0);
    return rc;
}

static void srv_measure_map(srv_server *s)
{
    idx_inspect_info info;
    if (idx_inspect(s->env, &info) == 0)
        s->wr.map_bytes = info.map_bytes;
    else
        s->wr.map_bytes = 0;             /* unknown: every flush exclusive */
}

static void srv_finish(srv_wjob *j, double commit_done)
{
    if (j->status != 200)
        return;
    double took = (commit_done - j->t_start) * 1000;
    if (j->kind == SRV_WJOB_DELETE) {
        srv_buf_reset(&j->out);
        srv_buf_adds(&j->out, "{\"deleted\":");
        srv_jw_str(&j->out, j->data, j->len);
        srv_buf_printf(&j->out, ",\"took_ms\":%.3f}\n", took);
        return;
    }
    srv_buf errs = j->out;              /* take the errors list */
    srv_buf_init(&j->out);
    srv_buf_printf(&j->out, "{\"indexed\":%llu,\"replaced\":%llu,\"skipped\":%llu,\"errors\":[",
                   (unsigned long long)j->n_indexed, (unsigned long long)j->n_replaced,
                   (unsigned long long)j->n_skipped);
    srv_buf_add(&j->out, errs.p, errs.len);
    srv_buf_printf(&j->out, "],%s\"took_ms\":%.3f}\n",
                   j->truncated ? "\"errors_truncated\":true," : "", took);
    srv_buf_free(&errs);
}

static void srv_group_fail(srv_wjob *group, int status, int err, int retry, const char *msg)
{
    for (srv_wjob *j = group; j; j = j->next) {
        if (j->status != 200)
            continue;
        srv_buf_reset(&j->out);
        srv_wjob_error(j, status, err, "%s", msg);
        j->retry_after = retry;
    }
}

static void srv_group_apply(srv_server *s, srv_wjob *group)
{
    srv_write_metrics *m = &s->wr.m;
    for (srv_wjob *j = group; j; j = j->next)
        j->status = 200;
    int rc = srv_writer_acquire(s);
    if (rc == LX_E_BUSY) {
        srv_group_fail(group, 503, SRV_E_BUSY, 1,
                       "the index is locked by another writer (another lexis process); "
                       "retry later");
        return;
    }
    if (rc) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot open the index writer: %s", idx_env_errmsg(s->env));
        srv_group_fail(group, 500, SRV_E_INTERNAL, 0, msg);
        return;
    }

    /* Apply every job, reading "does this id exist" from a snapshot. */
    srv_idset ids;
    memset(&ids, 0, sizeof ids);
    lx_arena_init(&ids.a, 64 * 1024);
    idx_reader *r = NULL;
    int fatal = srv_reader_open(s, &r);
    size_t bytes = 0;
    int changed = 0;
    for (srv_wjob *j = group; j && !fatal; j = j->next) {
        bytes += j->len;
        if (j->kind == SRV_WJOB_ADD)
            srv_apply_add(s, j, r, &ids, &fatal);
        else
            srv_apply_delete(s, j, &fatal);
        changed |= j->changed;
    }
    if (r)
        srv_reader_close(s, r);
    srv_idset_free(&ids);
    if (fatal) {
        idx_writer_abandon(s->wr.w);
        s->wr.w = NULL;
        atomic_store(&s->wr.held, 0);
        atomic_fetch_add_explicit(&m->failed_commits, 1, memory_order_relaxed);
        char msg[300];
        snprintf(msg, sizeof msg, "write failed: %s", lx_strerror(fatal));
        srv_group_fail(group, 500, SRV_E_INTERNAL, 0, msg);
        return;
    }
    if (!changed)
        return;

    /* Commit: exclusive when the map might grow. */
    struct stat st;
    uint64_t file = stat(s->data_path, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX / 4;
    uint64_t need = 2 * (64 * (uint64_t)bytes + (1u << 20)) + (16u << 20);
    int exclusive = s->wr.map_bytes == 0 || file + need + need / 2 > s->wr.map_bytes;
    double t0 = lx_now();
    if (exclusive)
        pthread_rwlock_wrlock(&s->map_lock);
    rc = idx_writer_flush(s->wr.w);
    if (exclusive)
        pthread_rwlock_unlock(&s->map_lock);
    double t1 = lx_now();
    srv_hist_add(&m->commit, t1 - t0);
    if (exclusive) {
        atomic_fetch_add_explicit(&m->exclusive_flushes, 1, memory_order_relaxed);
        srv_measure_map(s);
    }
    if (rc) {
        char msg[400];
        snprintf(msg, sizeof msg, "commit failed: %s", idx_env_errmsg(s->env));
        idx_writer_abandon(s->wr.w);
        s->wr.w = NULL;
        atomic_store(&s->wr.held, 0);
        atomic_fetch_add_explicit(&m->failed_commits, 1, memory_order_relaxed);
        srv_group_fail(group, rc == LX_E_MAPFULL ? 503 : 500,
                       rc == LX_E_MAPFULL ? SRV_E_OVERLOADED : SRV_E_INTERNAL, 0, msg);
        return;
    }
    atomic_fetch_add_explicit(&m->commits, 1, memory_order_relaxed);
    for (srv_wjob *j = group; j; j = j->next) {
        if (j->status != 200)
            continue;
        srv_hist_add(&m->visible, t1 - j->t_start);
        atomic_fetch_add_explicit(&m->indexed, j->n_indexed, memory_order_relaxed);
        atomic_fetch_add_explicit(&m->replaced, j->n_replaced, memory_order_relaxed);
        atomic_fetch_add_explicit(&m->skipped, j->n_skipped, memory_order_relaxed);
        if (j->kind == SRV_WJOB_DELETE)
            atomic_fetch_add_explicit(&m->deleted, 1, memory_order_relaxed);
    }
}

static void srv_group_run(srv_server *s, srv_wjob *group)
{
    srv_group_apply(s, group);
    double done = lx_now();
    for (srv_wjob *j = group; j; j = j->next)
        srv_finish(j, done);
}

/* ---- the thread -------------------------------------------------------------------------- */

static void *srv_writer_main(void *arg)
{
    srv_server *s = arg;
    srv_writes *wr = &s->wr;
    pthread_mutex_lock(&wr->mu);
    for (;;) {
        while (!wr->head && !wr->stopping)
            pthread_cond_wait(&wr->cv, &wr->mu);
        if (!wr->head)
            break;                          /* stopping and drained */
        /* Take a group: the queued jobs, up to the byte and count caps. */
        srv_wjob *group = wr->head, *last = group;
        size_t bytes = group->len, n = 1;
        while (last->next && n < SRV_GROUP_JOBS && bytes + last->next->len <= SRV_GROUP_BYTES) {
            last = last->next;
            bytes += last->len;
            n++;
        }
        wr->head = last->next;
        if (!wr->head)
            wr->tail = NULL;
        last->next = NULL;
        wr->queued -= (uint32_t)n;
        pthread_mutex_unlock(&wr->mu);

        srv_group_run(s, group);
        while (group) {
            srv_wjob *next = group->next;
            group->next = NULL;
            group->done(group);             /* the worker owns it now */
            group = next;
        }
        pthread_mutex_lock(&wr->mu);
    }
    pthread_mutex_unlock(&wr->mu);
    return NULL;
}

int srv_writes_open(srv_server *s, char *err, size_t errcap)
{
    int rc = srv_writer_acquire(s);
    if (rc && rc != LX_E_BUSY) {
        snprintf(err, errcap, "cannot open the index writer: %s", idx_env_errmsg(s->env));
        return rc;
    }
    srv_measure_map(s);
    return 0;
}

int srv_writes_start(srv_server *s)
{
    if (s->wr.started)
        return 0;
    int rc = pthread_create(&s->wr.th, NULL, srv_writer_main, s);
    if (rc)
        return rc;
    s->wr.started = 1;
    return 0;
}

int srv_writes_submit(srv_server *s, srv_wjob *j)
{
    srv_writes *wr = &s->wr;
    int rc = 0;
    pthread_mutex_lock(&wr->mu);
    if (wr->stopping || !wr->started) {
        rc = LX_E_INVAL;
    } else if (wr->queued >= s->p.max_write_queue) {
        rc = LX_E_BUSY;
    } else {
        j->next = NULL;
        if (wr->tail)
            wr->tail->next = j;
        else
            wr->head = j;
        wr->tail = j;
        wr->queued++;
        wr->submitted++;
        pthread_cond_signal(&wr->cv);
    }
    pthread_mutex_unlock(&wr->mu);
    return rc;
}

void srv_writes_run_sync(srv_server *s, srv_wjob *j)
{
    j->next = NULL;
    srv_group_run(s, j);
}

void srv_writes_stop(srv_server *s)
{
    srv_writes *wr = &s->wr;
    if (!wr->started)
        return;
    pthread_mutex_lock(&wr->mu);
    wr->stopping = 1;
    pthread_cond_broadcast(&wr->cv);
    pthread_mutex_unlock(&wr->mu);
    pthread_join(wr->th, NULL);
    wr->started = 0;
}

void srv_writes_close(srv_server *s)
{
    srv_writes_stop(s);
    if (s->wr.w) {
        idx_writer_close(s->wr.w);        /* nothing pending: releases the lock */
        s->wr.w = NULL;
    }
    while (s->wr.head) {
        srv_wjob *j = s->wr.head;
        s->wr.head = j->next;
        srv_wjob_free(j);
    }
    s->wr.tail = NULL;
}
