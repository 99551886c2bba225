/* backend.c: the backend table's dispatch, op validation, CPU fallback.
 *
 * kn_backend_run validates an op once (kn_op_check), then runs it on the
 * backend when its supports_op says yes. Otherwise the op runs on the CPU
 * backend over host float32 copies: every float source is brought to the
 * host and widened to f32, the CPU computes, and dst is narrowed and sent
 * back. That is slow and meant for ops a backend lacks, not for hot paths;
 * it keeps every op available everywhere, which is what lets a model run
 * on a backend that is only partly written.
 */
#include "kernels_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kn_op_names[KN_OP_COUNT] = {
    [KN_OP_MATMUL] = "matmul", [KN_OP_LAYERNORM] = "layernorm", [KN_OP_RMSNORM] = "rmsnorm",
    [KN_OP_GELU] = "gelu", [KN_OP_SILU] = "silu", [KN_OP_SOFTMAX] = "softmax",
    [KN_OP_ATTENTION] = "attention", [KN_OP_ROPE] = "rope", [KN_OP_GET_ROWS] = "get_rows",
    [KN_OP_ADD] = "add", [KN_OP_SCALE] = "scale", [KN_OP_SPLADE_POOL] = "splade_pool",
};

const char *kn_op_name(kn_op op)
{
    return (unsigned)op < KN_OP_COUNT ? kn_op_names[op] : "?";
}

int kn_backend_fail(kn_backend *be, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->err, sizeof be->err, fmt, ap);
    va_end(ap);
    return rc;
}

kn_backend_params kn_backend_default_params(void)
{
    kn_backend_params p = {.n_threads = 0, .reference = 0, .device = 0};
    return p;
}

int kn_backend_open(kn_backend **out, int kind, const kn_backend_params *p)
{
    kn_backend_params dp = kn_backend_default_params();
    if (!p)
        p = &dp;
    *out = NULL;
    kn_backend *be = calloc(1, sizeof *be);
    if (!be)
        return LX_E_NOMEM;
    int rc;
    if (kind == KN_BACKEND_CPU) {
        rc = kn_cpu_backend_init(&be->i, &be->ctx, p);
    } else if (kind == KN_BACKEND_CUDA) {
#ifdef LX_CUDA
        rc = kn_cuda_backend_init(&be->i, &be->ctx, p, be->err, sizeof be->err);
        if (rc == 0) {
            kn_backend_params cp = dp;
            rc = kn_backend_open(&be->cpu, KN_BACKEND_CPU, &cp);
            if (rc != 0)
                be->i.close(be->ctx);
        }
#else
        rc = LX_E_UNSUPPORTED;
#endif
    } else {
        rc = LX_E_INVAL;
    }
    if (rc != 0) {
        free(be);
        return rc;
    }
    be->profile = p->profile;
    *out = be;
    return 0;
}

int kn_backend_profile(const kn_backend *be, double *seconds, long *calls)
{
    if (!be->profile)
        return LX_E_UNSUPPORTED;
    memcpy(seconds, be->prof_sec, sizeof be->prof_sec);
    memcpy(calls, be->prof_calls, sizeof be->prof_calls);
    return 0;
}

void kn_backend_close(kn_backend *be)
{
    if (!be)
        return;
    if (be->cpu)
        kn_backend_close(be->cpu);
    be->i.close(be->ctx);
    free(be);
}

const char *kn_backend_name(const kn_backend *be) { return be->i.name; }
int kn_backend_device(const kn_backend *be) { return be->i.device; }
const char *kn_backend_errmsg(const kn_backend *be) { return be->err; }
int kn_backend_sync(kn_backend *be) { return be->i.sync(be->ctx); }

// --- memory -----------------------------------------------------------------

int kn_tensor_alloc(kn_backend *be, kn_tensor *t, kn_dtype dt, int ndim, const int64_t *shape)
{
    *t = kn_tensor_make(NULL, dt, be->i.device, ndim, shape);
    size_t n = kn_tensor_bytes(t);
    int rc = be->i.alloc(be->ctx, n ? n : 1, &t->data);
    if (rc != 0)
        return kn_backend_fail(be, rc, "cannot allocate %zu bytes on %s", n, be->i.name);
    t->owned = 1;
    return 0;
}

void kn_tensor_free(kn_backend *be, kn_tensor *t)
{
    if (t->owned && t->data)
        be->i.free(be->ctx, t->data);
    t->data = NULL;
    t->owned = 0;
}

int kn_tensor_upload(kn_backend *be, kn_tensor *dst, const void *host)
{
    LX_ASSERT(kn_tensor_is_contiguous(dst));
    if (dst->device == KN_DEV_HOST) {
        memcpy(dst->data, host, kn_tensor_bytes(dst));
        return 0;
    }
    return be->i.upload(be->ctx, dst->data, host, kn_tensor_bytes(dst));
}

int kn_tensor_download(kn_backend *be, const kn_tensor *src, void *host)
{
    LX_ASSERT(kn_tensor_is_contiguous(src));
    if (src->device == KN_DEV_HOST) {
        memcpy(host, src->data, kn_tensor_bytes(src));
        return 0;
    }
    return be->i.download(be->ctx, host, src->data, kn_tensor_bytes(src));
}

void *kn_host_alloc(kn_backend *be, size_t n)
{
    return be->i.host_alloc ? be->i.host_alloc(be->ctx, n) : malloc(n);
}

void kn_host_free(kn_backend *be, void *p)
{
    if (!p)
        return;
    if (be->i.host_free)
        be->i.host_free(be->ctx, p);
    else
        free(p);
}

int kn_tensor_download_f32(kn_backend *be, const kn_tensor *src, float *host)
{
    if (src->dtype == KN_F32)
        return kn_tensor_download(be, src, host);
    size_t n = (size_t)kn_tensor_nelem(src);
    void *tmp = malloc(n * kn_dtype_size(src->dtype) + 1);
    if (!tmp)
        return LX_E_NOMEM;
    int rc = kn_tensor_download(be, src, tmp);
    if (rc == 0)
        kn_convert(host, KN_F32, tmp, src->dtype, n);
    free(tmp);
    return rc;
}

// --- validation -------------------------------------------------------------

static int is_float(kn_dtype t) { return t == KN_F32 || t == KN_F16 || t == KN_BF16; }

/* Rows must be uniformly strided and the last dim contiguous. */
static int rows_ok(const kn_tensor *t)
{
    if (t->nb[t->ndim - 1] != 1 && t->ne[t->ndim - 1] > 1)
        return 0;
    for (int i = 0; i + 2 < t->ndim; i++)
        if (t->ne[i] > 1 && t->nb[i] != t->nb[i + 1] * t->ne[i + 1])
            return 0;
    return 1;
}

#define CHECK(cond, ...) do { if (!(cond)) { snprintf(err, errlen, __VA_ARGS__); return LX_E_INVAL; } } while (0)

static int check_vec(const kn_tensor *t, int64_t n, const char *what, char *err, size_t errlen)
{
    CHECK(is_float(t->dtype) && kn_tensor_nelem(t) == n && kn_tensor_is_contiguous(t),
          "%s must be a contiguous float vector of %lld", what, (long long)n);
    return 0;
}

int kn_op_check(const kn_op_args *a, char *err, size_t errlen)
{
    const kn_tensor *d = a->dst, *s0 = a->src[0], *s1 = a->src[1], *s2 = a->src[2], *s3 = a->src[3];
    const char *on = kn_op_name(a->op);
    CHECK((unsigned)a->op < KN_OP_COUNT, "unknown op %d", (int)a->op);
    CHECK(d && s0, "%s: dst and src0 are required", on);
    CHECK(is_float(d->dtype) && rows_ok(d) && rows_ok(s0), "%s: dst must be float; rows must be strided uniformly with the last dim contiguous", on);
    int64_t R = kn_tensor_rows(d), C = kn_tensor_cols(d);
    int rc;
    switch (a->op) {
    case KN_OP_MATMUL: {
        CHECK(s1 && is_float(s0->dtype) && is_float(s1->dtype), "matmul: x and w must be float");
        CHECK(rows_ok(s1), "matmul: w rows must be strided uniformly");
        int64_t M = kn_tensor_rows(s0), K = kn_tensor_cols(s0), N = kn_tensor_rows(s1);
        CHECK(kn_tensor_cols(s1) == K, "matmul: x is [%lld, %lld] but w is [%lld, %lld] (w must be [N, K])",
              (long long)M, (long long)K, (long long)N, (long long)kn_tensor_cols(s1));
        CHECK(R == M && C == N, "matmul: dst is [%lld, %lld], expected [%lld, %lld]",
              (long long)R, (long long)C, (long long)M, (long long)N);
        if (s2 && (rc = check_vec(s2, N, "matmul: bias", err, errlen)))
            return rc;
        CHECK(a->act >= KN_ACT_NONE && a->act <= KN_ACT_RELU, "matmul: unknown activation %d", a->act);
        return 0;
    }
    case KN_OP_LAYERNORM:
    case KN_OP_RMSNORM:
    case KN_OP_GELU:
    case KN_OP_SILU:
    case KN_OP_SOFTMAX:
    case KN_OP_SCALE:
    case KN_OP_ADD:
        CHECK(is_float(s0->dtype) && kn_tensor_rows(s0) == R && kn_tensor_cols(s0) == C,
              "%s: src0 must be a float tensor of dst's shape [%lld, %lld]", on, (long long)R, (long long)C);
        if (a->op == KN_OP_LAYERNORM || a->op == KN_OP_RMSNORM) {
            CHECK(!s1 || (is_float(s1->dtype) && rows_ok(s1) && kn_tensor_rows(s1) == R && kn_tensor_cols(s1) == C),
                  "%s: residual must have dst's shape", on);
            CHECK(s2, "%s: gamma is required", on);
            if ((rc = check_vec(s2, C, "norm: gamma", err, errlen)))
                return rc;
            if (a->op == KN_OP_LAYERNORM) {
                CHECK(s3, "layernorm: beta is required");
                if ((rc = check_vec(s3, C, "layernorm: beta", err, errlen)))
                    return rc;
            }
            CHECK(a->eps >= 0, "%s: eps must be >= 0", on);
        } else if (a->op == KN_OP_GELU) {
            if (s1 && (rc = check_vec(s1, C, "gelu: bias", err, errlen)))
                return rc;
        } else if (a->op == KN_OP_SILU || a->op == KN_OP_ADD) {
            CHECK(!s1 || (is_float(s1->dtype) && rows_ok(s1) && kn_tensor_cols(s1) == C &&
                          (kn_tensor_rows(s1) == R || (a->op == KN_OP_ADD && kn_tensor_rows(s1) == 1))),
                  "%s: src1 must have dst's shape%s", on, a->op == KN_OP_ADD ? " or be one row" : "");
            CHECK(a->op != KN_OP_ADD || s1, "add: src1 is required");
        }
        return 0;
    case KN_OP_ATTENTION: {
        CHECK(s1 && s2, "attention: q, k and v are required");
        CHECK(is_float(s0->dtype) && is_float(s1->dtype) && is_float(s2->dtype) && rows_ok(s1) && rows_ok(s2),
              "attention: q, k, v must be float with uniformly strided rows");
        CHECK(a->n_head > 0 && a->n_kv_head > 0 && a->n_head % a->n_kv_head == 0,
              "attention: n_head %d must be a positive multiple of n_kv_head %d", a->n_head, a->n_kv_head);
        int64_t T = kn_tensor_rows(s0), D = kn_tensor_cols(s0) / a->n_head;
        CHECK(D > 0 && kn_tensor_cols(s0) == D * a->n_head, "attention: q width %lld is not n_head x head_dim",
              (long long)kn_tensor_cols(s0));
        CHECK(kn_tensor_rows(s1) == T && kn_tensor_rows(s2) == T && kn_tensor_cols(s1) == D * a->n_kv_head &&
              kn_tensor_cols(s2) == D * a->n_kv_head, "attention: k and v must be [%lld, %lld]",
              (long long)T, (long long)(D * a->n_kv_head));
        CHECK(R == T && C == kn_tensor_cols(s0), "attention: dst must have q's shape");
        CHECK(!s3 || (s3->dtype == KN_F32 && kn_tensor_nelem(s3) == T && kn_tensor_is_contiguous(s3)),
              "attention: key mask must be F32 [%lld]", (long long)T);
        const kn_tensor *so = a->seq_off;
        CHECK(so && so->dtype == KN_I32 && so->ndim == 1 && so->ne[0] >= 2 && kn_tensor_is_contiguous(so),
              "attention: seq_off must be I32 [n_seq + 1]");
        CHECK(a->max_len > 0, "attention: max_len must be > 0");
        return 0;
    }
    case KN_OP_ROPE: {
        CHECK(s1 && s1->dtype == KN_I32 && kn_tensor_nelem(s1) == R, "rope: positions must be I32 [%lld]", (long long)R);
        CHECK(is_float(s0->dtype) && kn_tensor_rows(s0) == R && kn_tensor_cols(s0) == C, "rope: src0 must have dst's shape");
        CHECK(a->n_head > 0 && C % a->n_head == 0, "rope: width %lld is not a multiple of n_head %d", (long long)C, a->n_head);
        int64_t D = C / a->n_head;
        CHECK(a->rot_dims > 0 && a->rot_dims % 2 == 0 && a->rot_dims <= D, "rope: rot_dims %d must be even and <= head_dim %lld",
              a->rot_dims, (long long)D);
        CHECK(a->theta > 0, "rope: theta must be > 0");
        return 0;
    }
    case KN_OP_GET_ROWS:
        CHECK(s1 && s1->dtype == KN_I32 && kn_tensor_nelem(s1) == R && kn_tensor_is_contiguous(s1),
              "get_rows: ids must be I32 [%lld]", (long long)R);
        CHECK(is_float(s0->dtype) && kn_tensor_cols(s0) == C, "get_rows: table must be float [V, %lld]", (long long)C);
        return 0;
    case KN_OP_SPLADE_POOL: {
        CHECK(s1 && is_float(s0->dtype) && is_float(s1->dtype) && rows_ok(s1), "splade_pool: h and w must be float");
        int64_t H = kn_tensor_cols(s0), V = kn_tensor_rows(s1);
        CHECK(kn_tensor_cols(s1) == H, "splade_pool: w must be [V, %lld]", (long long)H);
        if (s2 && (rc = check_vec(s2, V, "splade_pool: bias", err, errlen)))
            return rc;
        const kn_tensor *so = a->seq_off;
        CHECK(so && so->dtype == KN_I32 && so->ndim == 1 && so->ne[0] == R + 1 && kn_tensor_is_contiguous(so),
              "splade_pool: seq_off must be I32 [n_seq + 1] with n_seq = dst rows %lld", (long long)R);
        CHECK(C == V, "splade_pool: dst must be [n_seq, %lld]", (long long)V);
        CHECK(a->max_len > 0, "splade_pool: max_len must be > 0");
        return 0;
    }
    default:
        CHECK(0, "unknown op %d", (int)a->op);
    }
    return 0;
}

// --- dispatch and fallback --------------------------------------------------

bool kn_backend_supports_op(const kn_backend *be, const kn_op_args *a)
{
    char err[256];
    if (kn_op_check(a, err, sizeof err) != 0)
        return false;
    return be->i.supports_op(be->ctx, a);
}

/* A host f32 copy of t (same rows x cols, contiguous), or t itself if it
 * already is one. *buf gets what to free. I32 tensors keep their dtype. */
static int to_host(kn_backend *be, const kn_tensor *t, kn_tensor *out, void **buf)
{
    *buf = NULL;
    int wide = (t->dtype == KN_F32 || t->dtype == KN_I32);
    if (t->device == KN_DEV_HOST && wide) {
        *out = *t;
        return 0;
    }
    int64_t R = kn_tensor_rows(t), C = kn_tensor_cols(t), S = kn_tensor_row_stride(t);
    size_t es = kn_dtype_size(t->dtype);
    size_t span = R ? (size_t)((R - 1) * S + C) : 0;
    kn_dtype odt = t->dtype == KN_I32 ? KN_I32 : KN_F32;
    char *raw = malloc(span * es + 1);
    float *conv = malloc((size_t)(R * C) * kn_dtype_size(odt) + 1);
    if (!raw || !conv) {
        free(raw);
        free(conv);
        return LX_E_NOMEM;
    }
    int rc = 0;
    if (t->device == KN_DEV_HOST)
        memcpy(raw, t->data, span * es);
    else
        rc = be->i.download(be->ctx, raw, t->data, span * es);
    if (rc == 0)
        for (int64_t r = 0; r < R; r++)
            kn_convert((char *)conv + (size_t)(r * C) * kn_dtype_size(odt), odt, raw + (size_t)(r * S) * es, t->dtype, (size_t)C);
    free(raw);
    if (rc != 0) {
        free(conv);
        return rc;
    }
    *out = kn_tensor_make(conv, odt, KN_DEV_HOST, t->ndim, t->ne);
    *buf = conv;
    return 0;
}

static int run_fallback(kn_backend *be, const kn_op_args *a)
{
    kn_backend *cpu = be->cpu ? be->cpu : be;
    kn_tensor hs[4], hso, hd;
    void *bufs[6] = {0};
    kn_op_args h = *a;
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++)
        if (a->src[i]) {
            rc = to_host(be, a->src[i], &hs[i], &bufs[i]);
            h.src[i] = &hs[i];
        }
    if (rc == 0 && a->seq_off) {
        rc = to_host(be, a->seq_off, &hso, &bufs[4]);
        h.seq_off = &hso;
    }
    int in_place = a->dst->device == KN_DEV_HOST && a->dst->dtype == KN_F32;
    if (rc == 0) {
        if (in_place) {
            hd = *a->dst;
        } else if (a->op == KN_OP_GET_ROWS && a->accumulate) {
            rc = to_host(be, a->dst, &hd, &bufs[5]);
        } else {
            LX_ASSERT(kn_tensor_is_contiguous(a->dst));
            bufs[5] = malloc((size_t)kn_tensor_nelem(a->dst) * 4 + 1);
            if (!bufs[5])
                rc = LX_E_NOMEM;
            hd = kn_tensor_make(bufs[5], KN_F32, KN_DEV_HOST, a->dst->ndim, a->dst->ne);
        }
    }
    if (rc == 0) {
        h.dst = &hd;
        rc = cpu->i.run(cpu->ctx, &h, be->err, sizeof be->err);
    }
    if (rc == 0 && !in_place) {
        size_t n = (size_t)kn_tensor_nelem(a->dst);
        size_t es = kn_dtype_size(a->dst->dtype);
        void *tmp = malloc(n * es + 1);
        if (!tmp) {
            rc = LX_E_NOMEM;
        } else {
            LX_ASSERT(kn_tensor_is_contiguous(a->dst));
            kn_convert(tmp, a->dst->dtype, hd.data, KN_F32, n);
            if (a->dst->device == KN_DEV_HOST)
                memcpy(a->dst->data, tmp, n * es);
            else
                rc = be->i.upload(be->ctx, a->dst->data, tmp, n * es);
            free(tmp);
        }
    }
    for (int i = 0; i < 6; i++)
        free(bufs[i]);
    return rc;
}

int kn_backend_run(kn_backend *be, const kn_op_args *a)
{
    int rc = kn_op_check(a, be->err, sizeof be->err);
    if (rc != 0)
        return rc;
    double t0 = 0;
    if (be->profile) {
        be->i.sync(be->ctx);
        t0 = lx_now();
    }
    if (be->i.supports_op(be->ctx, a))
        rc = be->i.run(be->ctx, a, be->err, sizeof be->err);
    else
        rc = run_fallback(be, a);
    if (be->profile) {
        be->i.sync(be->ctx);
        be->prof_sec[a->op] += lx_now() - t0;
        be->prof_calls[a->op]++;
    }
    return rc;
}

// --- typed wrappers ---------------------------------------------------------

int kn_matmul(kn_backend *be, kn_tensor *dst, const kn_tensor *x, const kn_tensor *w,
              const kn_tensor *bias, int act)
{
    kn_op_args a = {.op = KN_OP_MATMUL, .dst = dst, .src = {x, w, bias}, .act = act};
    return kn_backend_run(be, &a);
}

int kn_layernorm(kn_backend *be, kn_tensor *dst, const kn_tensor *x, const kn_tensor *residual,
                 const kn_tensor *gamma, const kn_tensor *beta, float eps)
{
    kn_op_args a = {.op = KN_OP_LAYERNORM, .dst = dst, .src = {x, residual, gamma, beta}, .eps = eps};
    return kn_backend_run(be, &a);
}

int kn_rmsnorm(kn_backend *be, kn_tensor *dst, const kn_tensor *x, const kn_tensor *residual,
               const kn_tensor *gamma, float eps)
{
    kn_op_args a = {.op = KN_OP_RMSNORM, .dst = dst, .src = {x, residual, gamma}, .eps = eps};
    return kn_backend_run(be, &a);
}

int kn_gelu(kn_backend *be, kn_tensor *dst, const kn_tensor *x, const kn_tensor *bias)
{
    kn_op_args a = {.op = KN_OP_GELU, .dst = dst, .src = {x, bias}};
    return kn_backend_run(be, &a);
}

int kn_silu(kn_backend *be, kn_tensor *dst, const kn_tensor *x, const kn_tensor *gate_mul)
{
    kn_op_args a = {.op = KN_OP_SILU, .dst = dst, .src = {x, gate_mul}};
    return kn_backend_run(be, &a);
}

int kn_softmax(kn_backend *be, kn_tensor *dst, const kn_tensor *x, float scale)
{
    kn_op_args a = {.op = KN_OP_SOFTMAX, .dst = dst, .src = {x}, .scale = scale};
    return kn_backend_run(be, &a);
}

int kn_attention(kn_backend *be, kn_tensor *dst, const kn_tensor *q, const kn_tensor *k,
                 const kn_tensor *v, const kn_tensor *key_mask, const kn_tensor *seq_off,
                 int n_head, int n_kv_head, int max_len, float scale, int causal)
{
    kn_op_args a = {.op = KN_OP_ATTENTION, .dst = dst, .src = {q, k, v, key_mask}, .seq_off = seq_off,
                    .n_head = n_head, .n_kv_head = n_kv_head, .max_len = max_len, .scale = scale,
                    .causal = causal};
    return kn_backend_run(be, &a);
}

int kn_rope(kn_backend *be, kn_tensor *dst, const kn_tensor *x, const kn_tensor *pos,
            int n_head, int rot_dims, float theta)
{
    kn_op_args a = {.op = KN_OP_ROPE, .dst = dst, .src = {x, pos}, .n_head = n_head,
                    .rot_dims = rot_dims, .theta = theta};
    return kn_backend_run(be, &a);
}

int kn_get_rows(kn_backend *be, kn_tensor *dst, const kn_tensor *table, const kn_tensor *ids,
                int accumulate)
{
    kn_op_args a = {.op = KN_OP_GET_ROWS, .dst = dst, .src = {table, ids}, .accumulate = accumulate};
    return kn_backend_run(be, &a);
}

int kn_add(kn_backend *be, kn_tensor *dst, const kn_tensor *x, const kn_tensor *y)
{
    kn_op_args a = {.op = KN_OP_ADD, .dst = dst, .src = {x, y}};
    return kn_backend_run(be, &a);
}

int kn_scale(kn_backend *be, kn_tensor *dst, const kn_tensor *x, float s)
{
    kn_op_args a = {.op = KN_OP_SCALE, .dst = dst, .src = {x}, .scale = s};
    return kn_backend_run(be, &a);
}

int kn_splade_pool(kn_backend *be, kn_tensor *dst, const kn_tensor *h, const kn_tensor *w,
                   const kn_tensor *bias, const kn_tensor *seq_off, int max_len)
{
    kn_op_args a = {.op = KN_OP_SPLADE_POOL, .dst = dst, .src = {h, w, bias}, .seq_off = seq_off,
                    .max_len = max_len};
    return kn_backend_run(be, &a);
}
