/* cpu_ref.c: the scalar reference of every op: the oracle.
 *
 * Plain loops over host F32 tensors (I32 for ids, positions and sequence
 * offsets), written to be obviously right rather than fast: sums and
 * statistics accumulate in double, GELU uses libm's erf, softmax subtracts
 * the row max. Every fast path (cpu.c) and every CUDA kernel is tested
 * against these. The CPU backend runs them when opened with reference = 1.
 * Shapes and dtypes were checked by kn_op_check before we get here; only
 * data-dependent errors (an id past the table) are found here.
 */
#include "kernels_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Element (r, c) of a host f32 tensor read as rows x cols. */
#define AT(t, r, c) (((float *)(t)->data)[(int64_t)(r) * kn_tensor_row_stride(t) + (c)])
#define I32(t) ((const int32_t *)(t)->data)

static double act(int a, double x)
{
    switch (a) {
    case KN_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case KN_ACT_RELU: return x > 0 ? x : 0;
    default: return x;
    }
}

static void ref_matmul(const kn_op_args *a)
{
    const kn_tensor *x = a->src[0], *w = a->src[1], *b = a->src[2];
    int64_t M = kn_tensor_rows(x), K = kn_tensor_cols(x), N = kn_tensor_rows(w);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = b ? ((const float *)b->data)[n] : 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)AT(x, m, k) * AT(w, n, k);
            AT(a->dst, m, n) = (float)act(a->act, s);
        }
}

static void ref_norm(const kn_op_args *a, int rms)
{
    const kn_tensor *x = a->src[0], *res = a->src[1];
    const float *g = a->src[2]->data, *be = rms ? NULL : a->src[3]->data;
    int64_t R = kn_tensor_rows(x), C = kn_tensor_cols(x);
    double *v = malloc((size_t)C * sizeof *v);
    LX_ASSERT(v);
    for (int64_t r = 0; r < R; r++) {
        double mean = 0, var = 0;
        for (int64_t c = 0; c < C; c++) {
            v[c] = AT(x, r, c) + (res ? AT(res, r, c) : 0.0f);
            mean += v[c];
        }
        mean = rms ? 0 : mean / (double)C;
        for (int64_t c = 0; c < C; c++)
            var += (v[c] - mean) * (v[c] - mean);
        double inv = 1.0 / sqrt(var / (double)C + a->eps);
        for (int64_t c = 0; c < C; c++)
            AT(a->dst, r, c) = (float)((v[c] - mean) * inv * g[c] + (be ? be[c] : 0));
    }
    free(v);
}

static void ref_unary(const kn_op_args *a)
{
    const kn_tensor *x = a->src[0], *y = a->src[1];
    int64_t R = kn_tensor_rows(x), C = kn_tensor_cols(x);
    int64_t yr = y ? kn_tensor_rows(y) : 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) {
            double v = AT(x, r, c), o;
            switch (a->op) {
            case KN_OP_GELU:
                o = act(KN_ACT_GELU, v + (y ? ((const float *)y->data)[c] : 0));
                break;
            case KN_OP_SILU:
                o = v / (1.0 + exp(-v)) * (y ? AT(y, r, c) : 1.0f);
                break;
            case KN_OP_ADD:
                o = v + AT(y, yr == 1 ? 0 : r, c);
                break;
            default: /* KN_OP_SCALE */
                o = v * a->scale;
                break;
            }
            AT(a->dst, r, c) = (float)o;
        }
}

static void ref_softmax(const kn_op_args *a)
{
    const kn_tensor *x = a->src[0];
    int64_t R = kn_tensor_rows(x), C = kn_tensor_cols(x);
    for (int64_t r = 0; r < R; r++) {
        double mx = -INFINITY, s = 0;
        for (int64_t c = 0; c < C; c++)
            mx = fmax(mx, (double)a->scale * AT(x, r, c));
        for (int64_t c = 0; c < C; c++)
            s += exp((double)a->scale * AT(x, r, c) - mx);
        for (int64_t c = 0; c < C; c++)
            AT(a->dst, r, c) = (float)(exp((double)a->scale * AT(x, r, c) - mx) / s);
    }
}

static int ref_attention(const kn_op_args *a, char *err, size_t errlen)
{
    const kn_tensor *q = a->src[0], *k = a->src[1], *v = a->src[2], *mask = a->src[3];
    const int32_t *off = I32(a->seq_off);
    int S = (int)a->seq_off->ne[0] - 1, Hq = a->n_head, G = a->n_head / a->n_kv_head;
    int64_t T = kn_tensor_rows(q), D = kn_tensor_cols(q) / Hq;
    double *p = malloc((size_t)a->max_len * sizeof *p);
    LX_ASSERT(p);
    for (int s = 0; s < S; s++) {
        int64_t b = off[s], e = off[s + 1];
        if (b < 0 || e < b || e > T || e - b > a->max_len) {
            free(p);
            snprintf(err, errlen, "attention: sequence %d spans [%lld, %lld): outside [0, %lld) or longer than max_len %d",
                     s, (long long)b, (long long)e, (long long)T, a->max_len);
            return LX_E_INVAL;
        }
        for (int h = 0; h < Hq; h++) {
            int64_t kh = h / G;
            for (int64_t i = b; i < e; i++) {
                double mx = -INFINITY, sum = 0;
                int64_t jend = a->causal ? i + 1 : e;
                for (int64_t j = b; j < jend; j++) {
                    if (mask && ((const float *)mask->data)[j] == 0) {
                        p[j - b] = -INFINITY;
                        continue;
                    }
                    double d = 0;
                    for (int64_t c = 0; c < D; c++)
                        d += (double)AT(q, i, h * D + c) * AT(k, j, kh * D + c);
                    p[j - b] = d * a->scale;
                    mx = fmax(mx, p[j - b]);
                }
                for (int64_t j = b; j < jend; j++) {
                    p[j - b] = mx == -INFINITY ? 0 : exp(p[j - b] - mx);
                    sum += p[j - b];
                }
                for (int64_t c = 0; c < D; c++) {
                    double o = 0;
                    for (int64_t j = b; j < jend; j++)
                        o += p[j - b] * AT(v, j, kh * D + c);
                    AT(a->dst, i, h * D + c) = sum > 0 ? (float)(o / sum) : 0.0f;
                }
            }
        }
    }
    free(p);
    return 0;
}

static void ref_rope(const kn_op_args *a)
{
    const kn_tensor *x = a->src[0];
    const int32_t *pos = I32(a->src[1]);
    int64_t R = kn_tensor_rows(x), C = kn_tensor_cols(x), D = C / a->n_head;
    int half = a->rot_dims / 2;
    for (int64_t r = 0; r < R; r++)
        for (int h = 0; h < a->n_head; h++) {
            int64_t o = h * D;
            for (int i = 0; i < half; i++) {
                double f = pow((double)a->theta, -2.0 * i / a->rot_dims), ang = pos[r] * f;
                double x0 = AT(x, r, o + i), x1 = AT(x, r, o + i + half);
                AT(a->dst, r, o + i) = (float)(x0 * cos(ang) - x1 * sin(ang));
                AT(a->dst, r, o + i + half) = (float)(x0 * sin(ang) + x1 * cos(ang));
            }
            for (int64_t i = a->rot_dims; i < D; i++)
                AT(a->dst, r, o + i) = AT(x, r, o + i);
        }
}

static int ref_get_rows(const kn_op_args *a, char *err, size_t errlen)
{
    const kn_tensor *tab = a->src[0];
    const int32_t *ids = I32(a->src[1]);
    int64_t R = kn_tensor_rows(a->dst), C = kn_tensor_cols(a->dst), V = kn_tensor_rows(tab);
    for (int64_t r = 0; r < R; r++) {
        if (ids[r] < 0 || ids[r] >= V) {
            snprintf(err, errlen, "get_rows: id %d at row %lld is outside the table [0, %lld)",
                     ids[r], (long long)r, (long long)V);
            return LX_E_INVAL;
        }
        /* row pointers, not AT(): its stride call per element made this
         * gather 2.5% of the CPU encoder's time at 256 tokens */
        float *d = &AT(a->dst, r, 0);
        const float *t = &AT(tab, ids[r], 0);
        for (int64_t c = 0; c < C; c++)
            d[c] = t[c] + (a->accumulate ? d[c] : 0.0f);
    }
    return 0;
}

static int ref_splade(const kn_op_args *a, char *err, size_t errlen)
{
    const kn_tensor *h = a->src[0], *w = a->src[1], *b = a->src[2];
    const int32_t *off = I32(a->seq_off);
    int64_t S = kn_tensor_rows(a->dst), V = kn_tensor_rows(w), H = kn_tensor_cols(h), T = kn_tensor_rows(h);
    for (int64_t s = 0; s < S; s++) {
        if (off[s] < 0 || off[s + 1] < off[s] || off[s + 1] > T) {
            snprintf(err, errlen, "splade_pool: sequence %lld spans [%d, %d) outside [0, %lld)",
                     (long long)s, off[s], off[s + 1], (long long)T);
            return LX_E_INVAL;
        }
        for (int64_t vv = 0; vv < V; vv++) {
            double best = 0;
            for (int64_t t = off[s]; t < off[s + 1]; t++) {
                double z = b ? ((const float *)b->data)[vv] : 0;
                for (int64_t c = 0; c < H; c++)
                    z += (double)AT(h, t, c) * AT(w, vv, c);
                double y = log1p(z > 0 ? z : 0);
                best = y > best ? y : best;
            }
            AT(a->dst, s, vv) = (float)best;
        }
    }
    return 0;
}

int kn_ref_run(const kn_op_args *a, char *err, size_t errlen)
{
    switch (a->op) {
    case KN_OP_MATMUL: ref_matmul(a); return 0;
    case KN_OP_LAYERNORM: ref_norm(a, 0); return 0;
    case KN_OP_RMSNORM: ref_norm(a, 1); return 0;
    case KN_OP_GELU:
    case KN_OP_SILU:
    case KN_OP_ADD:
    case KN_OP_SCALE: ref_unary(a); return 0;
    case KN_OP_SOFTMAX: ref_softmax(a); return 0;
    case KN_OP_ATTENTION: return ref_attention(a, err, errlen);
    case KN_OP_ROPE: ref_rope(a); return 0;
    case KN_OP_GET_ROWS: return ref_get_rows(a, err, errlen);
    case KN_OP_SPLADE_POOL: return ref_splade(a, err, errlen);
    default:
        snprintf(err, errlen, "reference: unknown op %d", (int)a->op);
        return LX_E_UNSUPPORTED;
    }
}
