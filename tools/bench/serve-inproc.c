/* serve-inproc.c: the service's request handling measured in process, with
 * no HTTP: each thread calls srv_server_call (the same handler a worker
 * runs: JSON parse, read snapshot, search, stored fields, snippets, JSON
 * out) on the request bodies of a file, cycling, for a fixed time. This is
 * the baseline serve-wrk.sh divides wrk's requests/s by, so the ratio is
 * what HTTP (libevent, sockets, the kernel) costs.
 *
 *   serve-inproc INDEX BODIES [SECONDS] [THREADS]
 *
 * BODIES holds one POST /search body per line. Prints one line:
 *   inproc threads=1 seconds=10.0 requests=N rps=R p50_ms=X p99_ms=Y cpu_us=C errors=E
 * cpu_us is the CPU time of the measuring threads per request: unlike rps,
 * it does not move when other processes take the CPU away.
 * Built by tools/bench/serve-wrk.sh against build/release/liblexis.a.
 */
#include "../../server/server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct job {
    srv_server *s;
    unsigned worker;
    char **bodies;
    size_t *lens;
    size_t n;
    double seconds;
    double *lat;
    size_t nlat, cap;
    uint64_t errors;
    double cpu;              /* seconds of this thread's CPU time */
} job;

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *run(void *arg)
{
    job *j = arg;
    size_t i = j->n * j->worker / 4;     /* threads start apart */
    double t_end = lx_now() + j->seconds;
    double c0 = thread_cpu();
    while (lx_now() < t_end) {
        for (int k = 0; k < 16; k++) {
            char *out;
            size_t len;
            double t0 = lx_now();
            int st = srv_server_call(j->s, j->worker, "POST", "/search", NULL, j->bodies[i],
                                     j->lens[i], &out, &len, NULL);
            double dt = lx_now() - t0;
            if (st != 200)
                j->errors++;
            if (st >= 0)
                free(out);
            if (j->nlat == j->cap) {
                j->cap = j->cap ? j->cap * 2 : 65536;
                j->lat = realloc(j->lat, j->cap * sizeof *j->lat);
            }
            j->lat[j->nlat++] = dt;
            i = (i + 1) % j->n;
        }
    }
    j->cpu = thread_cpu() - c0;
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: serve-inproc INDEX BODIES [SECONDS] [THREADS]\n");
        return 2;
    }
    double seconds = argc > 3 ? atof(argv[3]) : 10;
    unsigned threads = argc > 4 ? (unsigned)atoi(argv[4]) : 1;
    if (threads < 1 || threads > 64 || !(seconds > 0)) {
        fprintf(stderr, "serve-inproc: bad SECONDS or THREADS\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    char **bodies = NULL;
    size_t *lens = NULL, n = 0, cap = 0, lcap = 0;
    char *line = NULL;
    ssize_t l;
    while ((l = getline(&line, &lcap, f)) > 0) {
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
            line[--l] = '\0';
        if (!l)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            bodies = realloc(bodies, cap * sizeof *bodies);
            lens = realloc(lens, cap * sizeof *lens);
        }
        bodies[n] = strdup(line);
        lens[n++] = (size_t)l;
    }
    free(line);
    fclose(f);
    if (!n) {
        fprintf(stderr, "serve-inproc: no bodies in %s\n", argv[2]);
        return 1;
    }
    idx_env *env;
    char err[512];
    if (idx_env_open(argv[1], 0, NULL, &env, err, sizeof err)) {
        fprintf(stderr, "serve-inproc: %s\n", err);
        return 1;
    }
    srv_params p = srv_default_params();
    p.port = 0;
    p.threads = threads;
    p.access_log_fd = -1;
    srv_server *s;
    if (srv_server_open(env, &p, &s, err, sizeof err)) {
        fprintf(stderr, "serve-inproc: %s\n", err);
        return 1;
    }
    /* Warm-up: one pass over the bodies. */
    for (size_t i = 0; i < n; i++) {
        char *out;
        size_t len;
        if (srv_server_call(s, 0, "POST", "/search", NULL, bodies[i], lens[i], &out, &len, NULL) >= 0)
            free(out);
    }
    job *jobs = calloc(threads, sizeof *jobs);
    pthread_t *th = calloc(threads, sizeof *th);
    double t0 = lx_now();
    for (unsigned t = 0; t < threads; t++) {
        jobs[t] = (job){ s, t, bodies, lens, n, seconds, NULL, 0, 0, 0, 0 };
        pthread_create(&th[t], NULL, run, &jobs[t]);
    }
    size_t total = 0;
    uint64_t errors = 0;
    double cpu = 0;
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        total += jobs[t].nlat;
        errors += jobs[t].errors;
        cpu += jobs[t].cpu;
    }
    double el = lx_now() - t0;
    double *all = malloc(total * sizeof *all);
    size_t k = 0;
    for (unsigned t = 0; t < threads; t++) {
        memcpy(all + k, jobs[t].lat, jobs[t].nlat * sizeof *all);
        k += jobs[t].nlat;
        free(jobs[t].lat);
    }
    qsort(all, total, sizeof *all, cmp);
    printf("inproc threads=%u seconds=%.1f requests=%zu rps=%.0f p50_ms=%.3f p99_ms=%.3f cpu_us=%.1f "
           "errors=%llu\n",
           threads, el, total, (double)total / el, all[total / 2] * 1e3, all[total * 99 / 100] * 1e3,
           cpu * 1e6 / (double)total, (unsigned long long)errors);
    free(all);
    free(jobs);
    free(th);
    srv_server_close(s);
    idx_env_close(env);
    for (size_t i = 0; i < n; i++)
        free(bodies[i]);
    free(bodies);
    free(lens);
    return errors ? 1 : 0;
}
