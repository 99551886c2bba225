/* cpu.c: the CPU backend: fast paths over OpenBLAS and a thread pool.
 *
 * The one file that calls cblas (STYLE 14). Matrix products go to
 * cblas_sgemm, single-threaded, split across a small pool of threads owned
 * by the backend (rows_matmul), which also runs every other op as
 * row-parallel loops; workers sleep on a condition variable between ops,
 * and OpenBLAS runs no threads of its own to spin beside them.
 * Attention runs one (sequence, head) pair per task, each with two
 * single-threaded sgemm calls (scores, then probabilities x values) around
 * a fused scale/mask/softmax, so nothing is computed on padding: sequences
 * are packed and each attends only within itself.
 * GELU and softmax use branch-free erf and exp approximations (Eigen's
 * rational erf, a Cody-Waite exp), within a few float ulps of libm, which
 * test_kernels_ops checks; the compiler vectorizes most loops, and the
 * attention softmax and the GEMMs' GELU go to cpu_avx2.c where the CPU has
 * AVX2 and FMA.
 * With params.reference the backend runs cpu_ref.c's scalar loops instead.
 *
 * The backend accepts host F32 tensors (I32 for ids, positions, offsets);
 * other dtypes reach it through backend.c's fallback, widened to F32.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")     /* vectorize the row loops at the default -O2 */
#endif
#include "kernels_impl.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* OpenBLAS's own setter (cblas.h from OpenBLAS declares it; the netlib
 * header does not). */
void openblas_set_num_threads(int n);

// --- thread pool ------------------------------------------------------------

/* fn(arg, w, i0, i1): worker w (0 = the caller) does items [i0, i1). */
typedef void (*pool_fn)(void *arg, int w, int64_t i0, int64_t i1);

typedef struct pool {
    int n;                      /* threads including the caller */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned gen;               /* bumped for each job */
    int pending, stop;
    pool_fn fn;
    void *arg;
    int64_t total;
} pool;

typedef struct worker_arg { pool *p; int idx; } worker_arg;

static void pool_chunk(pool *p, int idx)
{
    int64_t i0 = p->total * idx / p->n, i1 = p->total * (idx + 1) / p->n;
    if (i1 > i0)
        p->fn(p->arg, idx, i0, i1);
}

static void *pool_worker(void *varg)
{
    worker_arg *wa = varg;
    pool *p = wa->p;
    unsigned seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->stop)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        pool_chunk(p, wa->idx);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

static int pool_open(pool *p, int n)
{
    memset(p, 0, sizeof *p);
    p->n = n < 1 ? 1 : n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    if (p->n == 1)
        return 0;
    p->th = calloc((size_t)p->n, sizeof *p->th + sizeof(worker_arg));
    if (!p->th)
        return LX_E_NOMEM;
    worker_arg *wa = (worker_arg *)(p->th + p->n);
    for (int i = 1; i < p->n; i++) {
        wa[i].p = p;
        wa[i].idx = i;
        if (pthread_create(&p->th[i], NULL, pool_worker, &wa[i]) != 0) {
            p->n = i;            /* run with the threads we got */
            break;
        }
    }
    return 0;
}

static void pool_close(pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n && p->th; i++)
        pthread_join(p->th[i], NULL);
    free(p->th);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
}

/* Runs fn over [0, total) split evenly across the pool; returns when done. */
static void pool_for(pool *p, int64_t total, pool_fn fn, void *arg)
{
    if (p->n == 1 || total < 2) {
        if (total > 0)
            fn(arg, 0, 0, total);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->total = total;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    pool_chunk(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

typedef struct cpu_ctx {
    int n_threads;
    int reference;
    int avx2;                  /* kn_cpu_has_avx2(): the softmax and GELU rows go to cpu_avx2.c */
    pool pool;
} cpu_ctx;

// --- vectorizable math ------------------------------------------------------

/* e^x (kernels_impl.h's KN_EXP_*): n = round(x / ln2), r = x - n ln2
 * (two-part ln2), degree-6 polynomial on [-ln2/2, ln2/2], times 2^n built
 * in the exponent bits. About 2 ulp. */
static inline float fexp(float x)
{
    x = x < KN_EXP_LO ? KN_EXP_LO : (x > KN_EXP_HI ? KN_EXP_HI : x);
    float n = (x * KN_EXP_LOG2E + KN_EXP_SHIFT) - KN_EXP_SHIFT;
    float r = x - n * KN_EXP_LN2_HI - n * KN_EXP_LN2_LO;
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &bits, 4);
    return p * s;
}

/* erf(x): Eigen's rational approximation (odd degree-13 over even degree-8,
 * kernels_impl.h's KN_ERF_*), clamped to where erf is +-1 in float. */
static inline float ferf(float x)
{
    x = x < -KN_ERF_CLAMP ? -KN_ERF_CLAMP : (x > KN_ERF_CLAMP ? KN_ERF_CLAMP : x);
    float x2 = x * x;
    float p = KN_ERF_P0;
    p = p * x2 + KN_ERF_P1;
    p = p * x2 + KN_ERF_P2;
    p = p * x2 + KN_ERF_P3;
    p = p * x2 + KN_ERF_P4;
    p = p * x2 + KN_ERF_P5;
    p = p * x2 + KN_ERF_P6;
    p = p * x;
    float q = KN_ERF_Q0;
    q = q * x2 + KN_ERF_Q1;
    q = q * x2 + KN_ERF_Q2;
    q = q * x2 + KN_ERF_Q3;
    q = q * x2 + KN_ERF_Q4;
    return p / q;
}

static inline float fgelu(float x) { return 0.5f * x * (1.0f + ferf(x * 0.70710678118654752f)); }

// --- row ops ----------------------------------------------------------------

#define ROW(t, r) ((float *)(t)->data + (int64_t)(r) * kn_tensor_row_stride(t))

typedef struct bias_act_job {
    const kn_op_args *a;
    int avx2;
} bias_act_job;

static void rows_bias_act(void *arg, int w, int64_t r0, int64_t r1)
{
    const bias_act_job *j = arg;
    const kn_op_args *a = j->a;
    int64_t N = kn_tensor_cols(a->dst);
    const float *b = a->src[2] ? a->src[2]->data : NULL;
    for (int64_t r = r0; r < r1; r++) {
        float *y = ROW(a->dst, r);
        if (j->avx2 && a->act == KN_ACT_GELU) {
            kn_avx2_bias_gelu_row(y, b, N);
            continue;
        }
        if (b)
            for (int64_t n = 0; n < N; n++)
                y[n] += b[n];
        if (a->act == KN_ACT_GELU)
            for (int64_t n = 0; n < N; n++)
                y[n] = fgelu(y[n]);
        else if (a->act == KN_ACT_RELU)
            for (int64_t n = 0; n < N; n++)
                y[n] = y[n] > 0 ? y[n] : 0;
    }
}

static void rows_norm(void *arg, int w, int64_t r0, int64_t r1)
{
    const kn_op_args *a = arg;
    int rms = a->op == KN_OP_RMSNORM;
    int64_t C = kn_tensor_cols(a->dst);
    const float *g = a->src[2]->data, *be = rms ? NULL : a->src[3]->data;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = ROW(a->src[0], r), *res = a->src[1] ? ROW(a->src[1], r) : NULL;
        float *y = ROW(a->dst, r);
        /* y may alias x or res: sum into y first, then normalize in place */
        float mean = 0;
        for (int64_t c = 0; c < C; c++) {
            float v = x[c] + (res ? res[c] : 0.0f);
            y[c] = v;
            mean += v;
        }
        mean = rms ? 0.0f : mean / (float)C;
        float var = 0;
        for (int64_t c = 0; c < C; c++)
            var += (y[c] - mean) * (y[c] - mean);
        float inv = 1.0f / sqrtf(var / (float)C + a->eps);
        if (be)
            for (int64_t c = 0; c < C; c++)
                y[c] = (y[c] - mean) * inv * g[c] + be[c];
        else
            for (int64_t c = 0; c < C; c++)
                y[c] = y[c] * inv * g[c];
    }
}

static void rows_elementwise(void *arg, int w, int64_t r0, int64_t r1)
{
    const kn_op_args *a = arg;
    int64_t C = kn_tensor_cols(a->dst);
    const kn_tensor *ys = a->src[1];
    for (int64_t r = r0; r < r1; r++) {
        const float *x = ROW(a->src[0], r);
        float *o = ROW(a->dst, r);
        switch (a->op) {
        case KN_OP_GELU: {
            const float *b = ys ? ys->data : NULL;
            if (b)
                for (int64_t c = 0; c < C; c++)
                    o[c] = fgelu(x[c] + b[c]);
            else
                for (int64_t c = 0; c < C; c++)
                    o[c] = fgelu(x[c]);
            break;
        }
        case KN_OP_SILU: {
            const float *gm = ys ? ROW(ys, r) : NULL;
            for (int64_t c = 0; c < C; c++)
                o[c] = x[c] / (1.0f + fexp(-x[c])) * (gm ? gm[c] : 1.0f);
            break;
        }
        case KN_OP_ADD: {
            const float *y = ROW(ys, kn_tensor_rows(ys) == 1 ? 0 : r);
            for (int64_t c = 0; c < C; c++)
                o[c] = x[c] + y[c];
            break;
        }
        case KN_OP_SCALE:
            for (int64_t c = 0; c < C; c++)
                o[c] = x[c] * a->scale;
            break;
        default: /* KN_OP_SOFTMAX */ {
            float mx = -INFINITY, s = 0;
            for (int64_t c = 0; c < C; c++)
                mx = fmaxf(mx, a->scale * x[c]);
            for (int64_t c = 0; c < C; c++) {
                o[c] = fexp(a->scale * x[c] - mx);
                s += o[c];
            }
            float inv = 1.0f / s;
            for (int64_t c = 0; c < C; c++)
                o[c] *= inv;
        }
        }
    }
}

// --- matmul, attention, splade ----------------------------------------------

/* GEMMs run on the pool, OpenBLAS single-threaded in each worker (set at
 * init): OpenBLAS's own threads spin-wait for a while after each call, and
 * on the two-CPU machine here that spin competed with the next op's workers
 * (with OPENBLAS_THREAD_TIMEOUT=4, the shortest spin, attention took 171
 * against 273 ms a batch at 256 tokens and layernorm 41 against 70). A
 * matmul is split by rows of x; each worker then adds the bias and the
 * activation to its own rows while they are still in cache. */
/* y = x[r0, r0 + m) . w[c0, c0 + n)^T, y's rows ldy floats apart: the
 * product both pool splits run, a worker's rows (rows_matmul) or its
 * vocabulary columns (splade_max), single-threaded. */
static void gemm_xwt(const kn_tensor *x, int64_t r0, int64_t m, const kn_tensor *w, int64_t c0, int64_t n,
                     float *y, int64_t ldy)
{
    if (m > 0 && n > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)kn_tensor_cols(x), 1.0f,
                    ROW(x, r0), (int)kn_tensor_row_stride(x), ROW(w, c0), (int)kn_tensor_row_stride(w), 0.0f,
                    y, (int)ldy);
}

static void rows_matmul(void *arg, int w, int64_t r0, int64_t r1)
{
    const bias_act_job *j = arg;
    const kn_op_args *a = j->a;
    gemm_xwt(a->src[0], r0, r1 - r0, a->src[1], 0, kn_tensor_rows(a->src[1]), ROW(a->dst, r0),
             kn_tensor_row_stride(a->dst));
    if (a->src[2] || a->act != KN_ACT_NONE)
        rows_bias_act(arg, w, r0, r1);
}

static void fast_matmul(cpu_ctx *cx, const kn_op_args *a)
{
    bias_act_job j = {.a = a, .avx2 = cx->avx2};
    pool_for(&cx->pool, kn_tensor_rows(a->src[0]), rows_matmul, &j);
}

typedef struct attn_job {
    const kn_op_args *a;
    int avx2;
    float *scratch;            /* per worker: max_len x max_len scores */
    int bad_seq;               /* 1 + a sequence whose offsets are wrong */
} attn_job;

/* One (sequence, head) pair per item: S = scale Q K^T (sgemm), masked
 * softmax in place, O = P V (sgemm) written straight into dst's columns. */
static void attn_tasks(void *arg, int w, int64_t i0, int64_t i1)
{
    attn_job *j = arg;
    const kn_op_args *a = j->a;
    const kn_tensor *q = a->src[0], *k = a->src[1], *v = a->src[2], *mask = a->src[3];
    const int32_t *off = a->seq_off->data;
    int Hq = a->n_head, G = a->n_head / a->n_kv_head;
    int64_t T = kn_tensor_rows(q), D = kn_tensor_cols(q) / Hq;
    int ldq = (int)kn_tensor_row_stride(q), ldk = (int)kn_tensor_row_stride(k);
    int ldv = (int)kn_tensor_row_stride(v), ldo = (int)kn_tensor_row_stride(a->dst);
    float *S = j->scratch + (size_t)w * a->max_len * a->max_len;
    const float *mk = mask ? mask->data : NULL;
    for (int64_t t = i0; t < i1; t++) {
        int s = (int)(t / Hq), h = (int)(t % Hq), kh = h / G;
        int64_t b = off[s], e = off[s + 1];
        int L = (int)(e - b);
        if (b < 0 || e < b || e > T || L > a->max_len) {
            j->bad_seq = s + 1;
            continue;
        }
        if (L == 0)
            continue;
        const float *qp = (const float *)q->data + b * ldq + h * D;
        const float *kp = (const float *)k->data + b * ldk + kh * D;
        const float *vp = (const float *)v->data + b * ldv + kh * D;
        float *op = (float *)a->dst->data + b * ldo + h * D;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, (int)D, a->scale, qp, ldq, kp, ldk,
                    0.0f, S, L);
        for (int i = 0; i < L; i++) {
            float *row = S + (size_t)i * L;
            int n = a->causal ? i + 1 : L;
            float mx = -INFINITY, sum = 0;
            if (mk)
                for (int c = 0; c < n; c++)
                    row[c] = mk[b + c] == 0 ? -INFINITY : row[c];
            for (int c = n; c < L; c++)
                row[c] = 0;
            if (j->avx2) {
                kn_avx2_softmax_row(row, n);
                continue;
            }
            for (int c = 0; c < n; c++)
                mx = fmaxf(mx, row[c]);
            if (mx == -INFINITY)
                mx = 0;            /* every key masked: all-zero output */
            for (int c = 0; c < n; c++) {
                float ev = row[c] == -INFINITY ? 0.0f : fexp(row[c] - mx);
                row[c] = ev;
                sum += ev;
            }
            float inv = sum > 0 ? 1.0f / sum : 0.0f;
            for (int c = 0; c < n; c++)
                row[c] *= inv;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, (int)D, L, 1.0f, S, L, vp, ldv,
                    0.0f, op, ldo);
    }
}

static int fast_attention(cpu_ctx *cx, const kn_op_args *a, char *err, size_t errlen)
{
    int n_seq = (int)a->seq_off->ne[0] - 1;
    attn_job j = {.a = a, .avx2 = cx->avx2, .bad_seq = 0};
    j.scratch = malloc((size_t)cx->pool.n * a->max_len * a->max_len * sizeof(float));
    if (!j.scratch)
        return LX_E_NOMEM;
    pool_for(&cx->pool, (int64_t)n_seq * a->n_head, attn_tasks, &j);
    free(j.scratch);
    if (j.bad_seq) {
        const int32_t *off = a->seq_off->data;
        snprintf(err, errlen, "attention: sequence %d spans [%d, %d): outside the %lld rows or longer than max_len %d",
                 j.bad_seq - 1, off[j.bad_seq - 1], off[j.bad_seq], (long long)kn_tensor_rows(a->src[0]), a->max_len);
        return LX_E_INVAL;
    }
    return 0;
}

typedef struct splade_job {
    const kn_op_args *a;
    float *z;                  /* [rows, V] logits of rows r0.. (each worker writes its columns) */
    int64_t r0, nrows;
    const int32_t *seq_of;     /* sequence of each row */
} splade_job;

/* Vocabulary slices in parallel: z[r, v] = h_r . w_v for the chunk's rows
 * (a worker's columns of z), then dst[s, v] = max(dst[s, v], z[r, v]). */
static void splade_max(void *arg, int w, int64_t v0, int64_t v1)
{
    splade_job *j = arg;
    int64_t V = kn_tensor_cols(j->a->dst);
    gemm_xwt(j->a->src[0], j->r0, j->nrows, j->a->src[1], v0, v1 - v0, j->z + v0, V);
    for (int64_t r = 0; r < j->nrows; r++) {
        float *d = ROW(j->a->dst, j->seq_of[j->r0 + r]);
        const float *z = j->z + r * V;
        for (int64_t vv = v0; vv < v1; vv++)
            d[vv] = z[vv] > d[vv] ? z[vv] : d[vv];
    }
}

static void splade_finish(void *arg, int w, int64_t r0, int64_t r1)
{
    const kn_op_args *a = arg;
    int64_t V = kn_tensor_cols(a->dst);
    const float *b = a->src[2] ? a->src[2]->data : NULL;
    for (int64_t s = r0; s < r1; s++) {
        float *d = ROW(a->dst, s);
        for (int64_t vv = 0; vv < V; vv++) {
            float z = d[vv] + (b ? b[vv] : 0.0f);
            d[vv] = z > 0 ? log1pf(z) : 0.0f;
        }
    }
}

/* max_t log1p(relu(z_t)) = log1p(relu(max_t z_t)), and the bias is the
 * same for every t: take the max of the raw products over positions,
 * 256 rows of logits at a time, then add the bias and apply log1p(relu)
 * once per (sequence, term). The full [T, V] logits never exist. */
static int fast_splade(cpu_ctx *cx, const kn_op_args *a, char *err, size_t errlen)
{
    const kn_tensor *h = a->src[0], *w = a->src[1];
    const int32_t *off = a->seq_off->data;
    int64_t S = kn_tensor_rows(a->dst), V = kn_tensor_rows(w), T = kn_tensor_rows(h);
    for (int64_t s = 0; s < S; s++)
        if (off[s] < 0 || off[s + 1] < off[s] || off[s + 1] > T) {
            snprintf(err, errlen, "splade_pool: sequence %lld spans [%d, %d) outside [0, %lld)",
                     (long long)s, off[s], off[s + 1], (long long)T);
            return LX_E_INVAL;
        }
    const int64_t CH = 256;
    float *z = malloc((size_t)(CH * V) * sizeof *z);
    int32_t *seq_of = malloc((size_t)(T + 1) * sizeof *seq_of);
    if (!z || !seq_of) {
        free(z);
        free(seq_of);
        return LX_E_NOMEM;
    }
    for (int64_t s = 0; s < S; s++) {
        for (int32_t t = off[s]; t < off[s + 1]; t++)
            seq_of[t] = (int32_t)s;
        float *d = ROW(a->dst, s);
        for (int64_t vv = 0; vv < V; vv++)
            d[vv] = -INFINITY;     /* stays so for an empty sequence: -inf + b gives 0 */
    }
    for (int64_t r0 = off[0]; r0 < off[S]; r0 += CH) {
        int64_t n = off[S] - r0 < CH ? off[S] - r0 : CH;
        splade_job j = {.a = a, .z = z, .r0 = r0, .nrows = n, .seq_of = seq_of};
        pool_for(&cx->pool, V, splade_max, &j);
    }
    pool_for(&cx->pool, S, splade_finish, (void *)a);
    free(z);
    free(seq_of);
    return 0;
}

// --- the table --------------------------------------------------------------

static bool cpu_supports_op(void *ctx, const kn_op_args *a)
{
    const kn_tensor *ts[6] = {a->dst, a->src[0], a->src[1], a->src[2], a->src[3], a->seq_off};
    for (int i = 0; i < 6; i++) {
        if (!ts[i])
            continue;
        if (ts[i]->device != KN_DEV_HOST || (ts[i]->dtype != KN_F32 && ts[i]->dtype != KN_I32))
            return false;
    }
    return true;
}

static int cpu_run(void *ctx, const kn_op_args *a, char *err, size_t errlen)
{
    cpu_ctx *cx = ctx;
    if (cx->reference)
        return kn_ref_run(a, err, errlen);
    switch (a->op) {
    case KN_OP_MATMUL:
        fast_matmul(cx, a);
        return 0;
    case KN_OP_LAYERNORM:
    case KN_OP_RMSNORM:
        pool_for(&cx->pool, kn_tensor_rows(a->dst), rows_norm, (void *)a);
        return 0;
    case KN_OP_GELU:
    case KN_OP_SILU:
    case KN_OP_ADD:
    case KN_OP_SCALE:
    case KN_OP_SOFTMAX:
        pool_for(&cx->pool, kn_tensor_rows(a->dst), rows_elementwise, (void *)a);
        return 0;
    case KN_OP_ATTENTION:
        return fast_attention(cx, a, err, errlen);
    case KN_OP_SPLADE_POOL:
        return fast_splade(cx, a, err, errlen);
    case KN_OP_ROPE:
    case KN_OP_GET_ROWS:
        return kn_ref_run(a, err, errlen);   /* memory-bound gathers: the reference is the fast path */
    default:
        snprintf(err, errlen, "cpu: unknown op %d", (int)a->op);
        return LX_E_UNSUPPORTED;
    }
}

static int cpu_alloc(void *ctx, size_t n, void **p)
{
    *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    return *p ? 0 : LX_E_NOMEM;
}

static void cpu_free(void *ctx, void *p) { free(p); }

static int cpu_copy(void *ctx, void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
    return 0;
}

static int cpu_sync(void *ctx) { return 0; }

static void cpu_close(void *ctx)
{
    cpu_ctx *cx = ctx;
    pool_close(&cx->pool);
    free(cx);
}

int kn_cpu_backend_init(struct kn_backend_i *i, void **ctx, const kn_backend_params *p)
{
    cpu_ctx *cx = calloc(1, sizeof *cx);
    if (!cx)
        return LX_E_NOMEM;
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    cx->n_threads = p->n_threads > 0 ? p->n_threads : (nc > 0 ? (int)nc : 1);
    cx->reference = p->reference;
    cx->avx2 = !p->no_avx2 && kn_cpu_has_avx2();
    int rc = pool_open(&cx->pool, cx->n_threads);
    if (rc != 0) {
        free(cx);
        return rc;
    }
    /* The pool splits every GEMM (rows_matmul); OpenBLAS's thread count is
     * per process, and one thread is right for every backend. */
    openblas_set_num_threads(1);
    *i = (struct kn_backend_i){
        .name = cx->reference ? "cpu-reference" : "cpu",
        .device = KN_DEV_HOST,
        .supports_op = cpu_supports_op,
        .run = cpu_run,
        .alloc = cpu_alloc,
        .free = cpu_free,
        .upload = cpu_copy,
        .download = cpu_copy,
        .sync = cpu_sync,
        .close = cpu_close,
    };
    *ctx = cx;
    return 0;
}
