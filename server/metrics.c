/* metrics.c: counters and latency histograms, rendered as Prometheus text.
 *
 * Each worker counts into its own srv_metrics (no sharing, no locks on the
 * request path); the writer thread into srv_write_metrics. Counters are
 * relaxed atomics: /metrics sums the shards while they move, which is what
 * a scrape means anyway. Histograms keep per-bucket counts (not cumulative)
 * and the sum in microseconds; rendering makes them cumulative.
 *
 * Exported (all prefixed lexis_):
 *   http_requests_total{route,status}             counter
 *   http_request_duration_seconds{route}          histogram (handler time)
 *   http_errors_total{code}                       counter, by error code
 *   http_response_bytes_total                     counter
 *   http_connections, http_connections_rejected_total,
 *   write_queue_rejected_total
 *   writes_commits_total, writes_failed_commits_total,
 *   writes_exclusive_flushes_total, documents_{indexed,replaced,skipped,deleted}_total
 *   write_commit_seconds                          histogram (flush + commit)
 *   write_visible_seconds                         histogram (request arrival ->
 *                                                 committed = searchable)
 *   index_documents, index_deleted_documents, index_segments, index_terms,
 *   index_size_bytes (data.mdb), uptime_seconds
 */
#include "server_impl.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

const double srv_bucket_bounds[SRV_NBUCKETS - 1] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

static const int srv_status_codes[SRV_NSTATUS - 1] = {
    200, 204, 400, 401, 403, 404, 405, 413, 429, 500, 503,
};

static int srv_status_index(int status)
{
    for (int i = 0; i < SRV_NSTATUS - 1; i++)
        if (srv_status_codes[i] == status)
            return i;
    return SRV_NSTATUS - 1;                    /* "other" */
}

#define RLX memory_order_relaxed

void srv_hist_add(srv_hist *h, double seconds)
{
    int i = 0;
    while (i < SRV_NBUCKETS - 1 && seconds > srv_bucket_bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->b[i], 1, RLX);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)(seconds * 1e6 + 0.5), RLX);
}

void srv_metrics_record(srv_metrics *m, int route, int status, int err, double seconds,
                        size_t bytes)
{
    if (route < 0 || route >= SRV_R_COUNT)
        route = SRV_R_OTHER;
    atomic_fetch_add_explicit(&m->requests[route][srv_status_index(status)], 1, RLX);
    srv_hist_add(&m->latency[route], seconds);
    if (err >= 0 && err < SRV_E_COUNT)
        atomic_fetch_add_explicit(&m->errors[err], 1, RLX);
    atomic_fetch_add_explicit(&m->bytes_out, bytes, RLX);
}

static void srv_hist_render(srv_buf *b, const char *name, const char *labels, const srv_hist *const *hs,
                            size_t nh)
{
    uint64_t cum = 0, sum = 0;
    const char *sep = labels[0] ? "," : "";
    for (int i = 0; i < SRV_NBUCKETS; i++) {
        for (size_t k = 0; k < nh; k++)
            cum += atomic_load_explicit(&hs[k]->b[i], RLX);
        if (i < SRV_NBUCKETS - 1)
            srv_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                           srv_bucket_bounds[i], (unsigned long long)cum);
        else
            srv_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                           (unsigned long long)cum);
    }
    for (size_t k = 0; k < nh; k++)
        sum += atomic_load_explicit(&hs[k]->sum_us, RLX);
    srv_buf_printf(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, (double)sum / 1e6, name,
                   labels, (unsigned long long)cum);
}

static void srv_counter(srv_buf *b, const char *name, const char *help, uint64_t v)
{
    srv_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                   (unsigned long long)v);
}

static void srv_gauge(srv_buf *b, const char *name, const char *help, double v)
{
    srv_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

void srv_metrics_render(srv_server *s, srv_buf *b)
{
    const srv_metrics *ms[SRV_MAX_WORKERS];
    uint32_t nw = s->nworkers;
    for (uint32_t i = 0; i < nw; i++)
        ms[i] = &s->workers[i].m;

    srv_buf_adds(b, "# HELP lexis_http_requests_total HTTP requests answered, by route and status.\n"
                    "# TYPE lexis_http_requests_total counter\n");
    for (int r = 0; r < SRV_R_COUNT; r++) {
        for (int st = 0; st < SRV_NSTATUS; st++) {
            uint64_t v = 0;
            for (uint32_t i = 0; i < nw; i++)
                v += atomic_load_explicit(&ms[i]->requests[r][st], RLX);
            if (!v)
                continue;
            if (st < SRV_NSTATUS - 1)
                srv_buf_printf(b, "lexis_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                               srv_route_names[r], srv_status_codes[st], (unsigned long long)v);
            else
                srv_buf_printf(b, "lexis_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                               srv_route_names[r], (unsigned long long)v);
        }
    }
    srv_buf_adds(b, "# HELP lexis_http_request_duration_seconds Time from request arrival to the reply, by route.\n"
                    "# TYPE lexis_http_request_duration_seconds histogram\n");
    for (int r = 0; r < SRV_R_COUNT; r++) {
        const srv_hist *hs[SRV_MAX_WORKERS];
        for (uint32_t i = 0; i < nw; i++)
            hs[i] = &ms[i]->latency[r];
        char labels[64];
        snprintf(labels, sizeof labels, "route=\"%s\"", srv_route_names[r]);
        srv_hist_render(b, "lexis_http_request_duration_seconds", labels, hs, nw);
    }
    srv_buf_adds(b, "# HELP lexis_http_errors_total Error responses, by error code.\n"
                    "# TYPE lexis_http_errors_total counter\n");
    for (int e = 0; e < SRV_E_COUNT; e++) {
        uint64_t v = 0;
        for (uint32_t i = 0; i < nw; i++)
            v += atomic_load_explicit(&ms[i]->errors[e], RLX);
        srv_buf_printf(b, "lexis_http_errors_total{code=\"%s\"} %llu\n", srv_err_names[e],
                       (unsigned long long)v);
    }
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < nw; i++)
        bytes += atomic_load_explicit(&ms[i]->bytes_out, RLX);
    srv_counter(b, "lexis_http_response_bytes_total", "Bytes of response bodies.", bytes);
    srv_gauge(b, "lexis_http_connections", "Open client connections.",
              (double)atomic_load_explicit(&s->conns, RLX));
    srv_counter(b, "lexis_http_connections_rejected_total",
                "Requests refused because max_connections was reached.",
                atomic_load_explicit(&s->conns_rejected, RLX));
    srv_counter(b, "lexis_write_queue_rejected_total", "Writes refused because the queue was full.",
                atomic_load_explicit(&s->queue_rejected, RLX));

    pthread_mutex_lock(&s->wr.mu);
    uint64_t submitted = s->wr.submitted, queued = s->wr.queued;
    pthread_mutex_unlock(&s->wr.mu);
    srv_counter(b, "lexis_write_requests_total", "Write requests queued to the writer.", submitted);
    srv_gauge(b, "lexis_write_queue_depth", "Write requests waiting for the writer now.",
              (double)queued);

    const srv_write_metrics *wm = &s->wr.m;
    srv_counter(b, "lexis_writes_commits_total", "Write groups committed.",
                atomic_load_explicit(&wm->commits, RLX));
    srv_counter(b, "lexis_writes_failed_commits_total", "Write groups that failed.",
                atomic_load_explicit(&wm->failed_commits, RLX));
    srv_counter(b, "lexis_writes_exclusive_flushes_total",
                "Commits that held searches back because the map might grow.",
                atomic_load_explicit(&wm->exclusive_flushes, RLX));
    srv_counter(b, "lexis_documents_indexed_total", "Documents added or replaced.",
                atomic_load_explicit(&wm->indexed, RLX));
    srv_counter(b, "lexis_documents_replaced_total", "Documents that replaced one with the same id.",
                atomic_load_explicit(&wm->replaced, RLX));
    srv_counter(b, "lexis_documents_skipped_total", "Bad documents skipped.",
                atomic_load_explicit(&wm->skipped, RLX));
    srv_counter(b, "lexis_documents_deleted_total", "Documents deleted.",
                atomic_load_explicit(&wm->deleted, RLX));
    const srv_hist *h1 = &wm->commit, *h2 = &wm->visible;
    srv_buf_adds(b, "# HELP lexis_write_commit_seconds Flush and commit of one write group.\n"
                    "# TYPE lexis_write_commit_seconds histogram\n");
    srv_hist_render(b, "lexis_write_commit_seconds", "", &h1, 1);
    srv_buf_adds(b, "# HELP lexis_write_visible_seconds From a write request's arrival to its commit "
                    "(from then on, searches see it).\n"
                    "# TYPE lexis_write_visible_seconds histogram\n");
    srv_hist_render(b, "lexis_write_visible_seconds", "", &h2, 1);

    idx_reader *r;
    if (srv_reader_open(s, &r) == 0) {
        idx_stats st = *idx_reader_stats(r);
        srv_reader_close(s, r);
        srv_gauge(b, "lexis_index_documents", "Live documents.", (double)st.ndocs);
        srv_gauge(b, "lexis_index_deleted_documents", "Deleted documents still in postings.",
                  (double)st.ndeleted);
        srv_gauge(b, "lexis_index_segments", "Segments.", (double)st.nsegments);
        srv_gauge(b, "lexis_index_terms", "Distinct terms.", (double)st.nterms);
    }
    struct stat fst;
    srv_gauge(b, "lexis_index_size_bytes", "Size of the index's data file (data.mdb).",
              stat(s->data_path, &fst) == 0 ? (double)fst.st_size : 0);
    srv_gauge(b, "lexis_uptime_seconds", "Seconds since the server started.", lx_now() - s->started);
}
