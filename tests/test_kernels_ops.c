/* test_kernels_ops.c: every op against its scalar reference (the oracle).
 *
 * For each op and a few shapes (odd sizes included) random inputs are run
 * through (1) the CPU backend's reference, (2) its fast paths, and (3) the
 * CUDA backend when this build has one and a GPU is there, in F32 and in
 * BF16 storage. Results are compared by normalized mean squared error,
 * NMSE = sum (y - ref)^2 / sum ref^2, as ggml's test-backend-ops does:
 *   CPU fast vs reference, F32:             NMSE < 1e-9
 *   CUDA vs reference, F32 tensors:         NMSE < 1e-9
 *   CUDA vs reference, BF16 tensors:        NMSE < 1e-4 (inputs rounded to
 *     BF16 first; the bound covers the output's BF16 rounding, 2^-9 relative)
 * Without CUDA the CUDA cases are skipped and say so; with LX_REQUIRE_CUDA=1
 * in the environment (make test-cuda) a missing GPU fails instead.
 * Also here: dtype conversions and the CPU fallback for ops on BF16 tensors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"

// --- helpers ----------------------------------------------------------------

static uint64_t rng_state = 88172645463325252ull;
static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static float nrand(void) { return (float)(urand() * 2 - 1); }

static double nmse(const float *y, const float *r, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(y[i]))
            return INFINITY;
        num += ((double)y[i] - r[i]) * ((double)y[i] - r[i]);
        den += (double)r[i] * r[i];
    }
    return den > 0 ? num / den : num;
}

static int cuda_required(void)
{
    const char *e = getenv("LX_REQUIRE_CUDA");
    return e && *e == '1';
}

/* The CUDA backend, or NULL after printing why the CUDA cases are skipped. */
static kn_backend *open_cuda(void)
{
    kn_backend *be = NULL;
    int rc = kn_backend_open(&be, KN_BACKEND_CUDA, NULL);
    if (rc != 0) {
        printf("SKIP: CUDA op tests skipped: %s\n",
#ifdef LX_CUDA
               "no usable CUDA device"
#else
               "built without CUDA=1 (make test-cuda on a GPU machine runs them)"
#endif
        );
        if (cuda_required())
            fail_msg("LX_REQUIRE_CUDA=1 but the CUDA backend did not open: %s", lx_strerror(rc));
    }
    return be;
}

// --- op cases ---------------------------------------------------------------

enum { K_NONE, K_MAT, K_VEC, K_IDS, K_POS, K_MASK };

typedef struct tcase {
    const char *name;
    kn_op_args a;              /* op and scalar parameters */
    int kind[4];
    int64_t sh[4][2];          /* rows, cols (cols 0: a vector of rows) */
    int64_t dsh[2];
    int ids_max;
    int n_seq;
    int32_t seq_off[8];
    int qkv_packed;            /* attention: q, k, v are column views of one matrix */
    int dst_init;              /* get_rows accumulate: dst starts random */
} tcase;

typedef struct hostdata {
    float *f[4];
    int32_t *i[4];
    float *packed;             /* qkv */
    float *dst0;
} hostdata;

static int64_t nel(const int64_t s[2]) { return s[1] ? s[0] * s[1] : s[0]; }

static void gen(const tcase *c, hostdata *h, int bf16_inputs)
{
    memset(h, 0, sizeof *h);
    for (int i = 0; i < 4; i++) {
        int64_t n = nel(c->sh[i]);
        switch (c->kind[i]) {
        case K_MAT:
        case K_VEC:
            h->f[i] = malloc((size_t)n * sizeof(float));
            for (int64_t j = 0; j < n; j++) {
                float v = nrand() * (c->kind[i] == K_VEC && c->a.op != KN_OP_MATMUL ? 1.0f : 2.0f);
                if (c->a.op == KN_OP_LAYERNORM || c->a.op == KN_OP_RMSNORM)
                    v += i == 0 ? 0.5f : 0.0f;
                if (bf16_inputs && c->kind[i] == K_MAT)
                    v = kn_bf16_to_f32(kn_f32_to_bf16(v));
                h->f[i][j] = v;
            }
            break;
        case K_MASK:
            h->f[i] = malloc((size_t)n * sizeof(float));
            for (int64_t j = 0; j < n; j++)
                h->f[i][j] = urand() < 0.2 ? 0.0f : 1.0f;
            break;
        case K_IDS:
        case K_POS:
            h->i[i] = malloc((size_t)n * sizeof(int32_t));
            for (int64_t j = 0; j < n; j++)
                h->i[i][j] = c->kind[i] == K_IDS ? (int32_t)(urand() * c->ids_max) : (int32_t)(urand() * 500);
            break;
        }
    }
    if (c->qkv_packed) {
        int64_t T = c->sh[0][0], W = c->sh[0][1] + c->sh[1][1] + c->sh[2][1];
        h->packed = malloc((size_t)(T * W) * sizeof(float));
        for (int64_t j = 0; j < T * W; j++) {
            float v = nrand() * 2;
            h->packed[j] = bf16_inputs ? kn_bf16_to_f32(kn_f32_to_bf16(v)) : v;
        }
    }
    if (c->dst_init) {
        int64_t n = nel(c->dsh);
        h->dst0 = malloc((size_t)n * sizeof(float));
        for (int64_t j = 0; j < n; j++)
            h->dst0[j] = bf16_inputs ? kn_bf16_to_f32(kn_f32_to_bf16(nrand())) : nrand();
    }
}

static void hfree(hostdata *h)
{
    for (int i = 0; i < 4; i++) {
        free(h->f[i]);
        free(h->i[i]);
    }
    free(h->packed);
    free(h->dst0);
}

static kn_tensor put(kn_backend *be, const void *host, kn_dtype dt, const int64_t s[2], kn_dtype host_dt)
{
    kn_tensor t;
    int64_t sh[2] = {s[0], s[1]};
    assert_int_equal(kn_tensor_alloc(be, &t, dt, s[1] ? 2 : 1, sh), 0);
    size_t n = (size_t)nel(s);
    void *tmp = malloc(n * kn_dtype_size(dt) + 1);
    kn_convert(tmp, dt, host, host_dt, n);
    assert_int_equal(kn_tensor_upload(be, &t, tmp), 0);
    free(tmp);
    return t;
}

/* Runs case c on be with matrices in dt; returns dst as f32 (malloc'd). */
static float *run_case(kn_backend *be, const tcase *c, const hostdata *h, kn_dtype dt)
{
    kn_tensor ts[4], packed, views[3], dst, so;
    kn_op_args a = c->a;
    memset(ts, 0, sizeof ts);
    for (int i = 0; i < 4; i++) {
        if (c->kind[i] == K_NONE)
            continue;
        if (c->kind[i] == K_IDS || c->kind[i] == K_POS)
            ts[i] = put(be, h->i[i], KN_I32, c->sh[i], KN_I32);
        else
            ts[i] = put(be, h->f[i], c->kind[i] == K_MAT ? dt : KN_F32, c->sh[i], KN_F32);
        a.src[i] = &ts[i];
    }
    if (c->qkv_packed) {
        int64_t T = c->sh[0][0], w0 = c->sh[0][1], w1 = c->sh[1][1];
        int64_t ps[2] = {T, w0 + 2 * w1};
        packed = put(be, h->packed, dt, ps, KN_F32);
        views[0] = kn_tensor_cols_view(&packed, 0, w0);
        views[1] = kn_tensor_cols_view(&packed, w0, w1);
        views[2] = kn_tensor_cols_view(&packed, w0 + w1, w1);
        for (int i = 0; i < 3; i++)
            a.src[i] = &views[i];
    }
    if (c->n_seq) {
        int64_t s[2] = {c->n_seq + 1, 0};
        so = put(be, c->seq_off, KN_I32, s, KN_I32);
        a.seq_off = &so;
    }
    kn_dtype ddt = c->a.op == KN_OP_SPLADE_POOL ? KN_F32 : dt;
    if (h->dst0) {
        dst = put(be, h->dst0, ddt, c->dsh, KN_F32);
    } else {
        int64_t sh[2] = {c->dsh[0], c->dsh[1]};
        assert_int_equal(kn_tensor_alloc(be, &dst, ddt, c->dsh[1] ? 2 : 1, sh), 0);
    }
    a.dst = &dst;
    int rc = kn_backend_run(be, &a);
    if (rc != 0)
        fail_msg("%s on %s: %s: %s", c->name, kn_backend_name(be), lx_strerror(rc), kn_backend_errmsg(be));
    float *out = malloc((size_t)nel(c->dsh) * sizeof(float));
    assert_int_equal(kn_tensor_download_f32(be, &dst, out), 0);
    for (int i = 0; i < 4; i++)
        kn_tensor_free(be, &ts[i]);
    if (c->qkv_packed)
        kn_tensor_free(be, &packed);
    if (c->n_seq)
        kn_tensor_free(be, &so);
    kn_tensor_free(be, &dst);
    return out;
}

/* Case c on be with storage dt against ref in F32, inputs drawn for
 * gen_pass; fails unless the NMSE is below bound. label names the run in
 * the line printed and in the failure. */
static void check_case(kn_backend *ref, kn_backend *be, tcase *c, int gen_pass, kn_dtype dt, double bound,
                       const char *label)
{
    hostdata h;
    gen(c, &h, gen_pass);
    float *r = run_case(ref, c, &h, KN_F32);
    float *y = run_case(be, c, &h, dt);
    double e = nmse(y, r, (size_t)nel(c->dsh));
    printf("  %s %-22s NMSE %.2e\n", label, c->name, e);
    if (!(e < bound))
        fail_msg("%s %s: NMSE %g >= %g", label, c->name, e, bound);
    free(r);
    free(y);
    hfree(&h);
}

#define T_ 37     /* odd token count */

static tcase *make_cases(int *n)
{
    static tcase cs[48];
    int k = 0;
    memset(cs, 0, sizeof cs);
    /* matmul [37,45] x [29,45]^T + bias, each activation */
    for (int act = KN_ACT_NONE; act <= KN_ACT_RELU; act++) {
        tcase *c = &cs[k++];
        c->name = act == 0 ? "matmul" : act == 1 ? "matmul+gelu" : "matmul+relu";
        c->a = (kn_op_args){.op = KN_OP_MATMUL, .act = act};
        c->kind[0] = K_MAT; c->sh[0][0] = T_; c->sh[0][1] = 45;
        c->kind[1] = K_MAT; c->sh[1][0] = 29; c->sh[1][1] = 45;
        c->kind[2] = K_VEC; c->sh[2][0] = 29;
        c->dsh[0] = T_; c->dsh[1] = 29;
    }
    {   /* a bigger matmul, K multiple of 64 */
        tcase *c = &cs[k++];
        c->name = "matmul-256";
        c->a = (kn_op_args){.op = KN_OP_MATMUL};
        c->kind[0] = K_MAT; c->sh[0][0] = 200; c->sh[0][1] = 256;
        c->kind[1] = K_MAT; c->sh[1][0] = 300; c->sh[1][1] = 256;
        c->dsh[0] = 200; c->dsh[1] = 300;
    }
    for (int act = KN_ACT_NONE; act <= KN_ACT_RELU; act += 2) {   /* aligned rows: cuBLASLt bias epilogue */
        tcase *c = &cs[k++];
        c->name = act ? "matmul-64+bias+relu" : "matmul-64+bias";
        c->a = (kn_op_args){.op = KN_OP_MATMUL, .act = act};
        c->kind[0] = K_MAT; c->sh[0][0] = 77; c->sh[0][1] = 64;
        c->kind[1] = K_MAT; c->sh[1][0] = 136; c->sh[1][1] = 64;
        c->kind[2] = K_VEC; c->sh[2][0] = 136;
        c->dsh[0] = 77; c->dsh[1] = 136;
    }
    {   /* aligned rows, GELU: the cuBLASLt bias epilogue then the vectorized GELU */
        tcase *c = &cs[k++];
        c->name = "matmul-64+bias+gelu";
        c->a = (kn_op_args){.op = KN_OP_MATMUL, .act = KN_ACT_GELU};
        c->kind[0] = K_MAT; c->sh[0][0] = 77; c->sh[0][1] = 64;
        c->kind[1] = K_MAT; c->sh[1][0] = 136; c->sh[1][1] = 64;
        c->kind[2] = K_VEC; c->sh[2][0] = 136;
        c->dsh[0] = 77; c->dsh[1] = 136;
    }
    for (int act = KN_ACT_NONE; act <= KN_ACT_RELU; act++) {
        /* partial row, column and k tiles for 128- and 256-wide GEMM tiles */
        tcase *c = &cs[k++];
        c->name = act == 0 ? "matmul-392+bias" : act == 1 ? "matmul-392+bias+gelu" : "matmul-392+bias+relu";
        c->a = (kn_op_args){.op = KN_OP_MATMUL, .act = act};
        c->kind[0] = K_MAT; c->sh[0][0] = 300; c->sh[0][1] = 200;
        c->kind[1] = K_MAT; c->sh[1][0] = 392; c->sh[1][1] = 200;
        c->kind[2] = K_VEC; c->sh[2][0] = 392;
        c->dsh[0] = 300; c->dsh[1] = 392;
    }
    {   /* BERT's width: the vectorized layer norm on CUDA (16-bit) */
        tcase *c = &cs[k++];
        c->name = "layernorm-768+residual";
        c->a = (kn_op_args){.op = KN_OP_LAYERNORM, .eps = 1e-12f};
        c->kind[0] = K_MAT; c->sh[0][0] = T_; c->sh[0][1] = 768;
        c->kind[1] = K_MAT; c->sh[1][0] = T_; c->sh[1][1] = 768;
        c->kind[2] = K_VEC; c->sh[2][0] = 768;
        c->kind[3] = K_VEC; c->sh[3][0] = 768;
        c->dsh[0] = T_; c->dsh[1] = 768;
    }
    /* the CUDA 16-bit layer norm's block shapes: 8 rows of one chunk each
     * (most threads idle), and 257 chunks (one row a block, 9 warps) */
    for (int wide = 0; wide < 2; wide++) {
        int C = wide ? 2056 : 8;
        tcase *c = &cs[k++];
        c->name = wide ? "layernorm-2056+residual" : "rmsnorm-8+residual";
        c->a = (kn_op_args){.op = wide ? KN_OP_LAYERNORM : KN_OP_RMSNORM, .eps = 1e-6f};
        c->kind[0] = K_MAT; c->sh[0][0] = T_; c->sh[0][1] = C;
        c->kind[1] = K_MAT; c->sh[1][0] = T_; c->sh[1][1] = C;
        c->kind[2] = K_VEC; c->sh[2][0] = C;
        if (wide) { c->kind[3] = K_VEC; c->sh[3][0] = C; }
        c->dsh[0] = T_; c->dsh[1] = C;
    }
    {   /* the warp-a-row CUDA norm at four chunks a lane, the last partly
         * past the row (125 chunks), and no residual */
        tcase *c = &cs[k++];
        c->name = "layernorm-1000";
        c->a = (kn_op_args){.op = KN_OP_LAYERNORM, .eps = 1e-12f};
        c->kind[0] = K_MAT; c->sh[0][0] = T_; c->sh[0][1] = 1000;
        c->kind[2] = K_VEC; c->sh[2][0] = 1000;
        c->kind[3] = K_VEC; c->sh[3][0] = 1000;
        c->dsh[0] = T_; c->dsh[1] = 1000;
    }
    for (int res = 0; res < 2; res++) {
        tcase *c = &cs[k++];
        c->name = res ? "layernorm+residual" : "layernorm";
        c->a = (kn_op_args){.op = KN_OP_LAYERNORM, .eps = 1e-12f};
        c->kind[0] = K_MAT; c->sh[0][0] = T_; c->sh[0][1] = 771;
        if (res) { c->kind[1] = K_MAT; c->sh[1][0] = T_; c->sh[1][1] = 771; }
        c->kind[2] = K_VEC; c->sh[2][0] = 771;
        c->kind[3] = K_VEC; c->sh[3][0] = 771;
        c->dsh[0] = T_; c->dsh[1] = 771;
    }
    {
        tcase *c = &cs[k++];
        c->name = "rmsnorm+residual";
        c->a = (kn_op_args){.op = KN_OP_RMSNORM, .eps = 1e-6f};
        c->kind[0] = K_MAT; c->sh[0][0] = T_; c->sh[0][1] = 130;
        c->kind[1] = K_MAT; c->sh[1][0] = T_; c->sh[1][1] = 130;
        c->kind[2] = K_VEC; c->sh[2][0] = 130;
        c->dsh[0] = T_; c->dsh[1] = 130;
    }
    {
        tcase *c = &cs[k++];
        c->name = "gelu+bias";
        c->a = (kn_op_args){.op = KN_OP_GELU};
        c->kind[0] = K_MAT; c->sh[0][0] = T_; c->sh[0][1] = 301;
        c->kind[1] = K_VEC; c->sh[1][0] = 301;
        c->dsh[0] = T_; c->dsh[1] = 301;
    }
    for (int gate = 0; gate < 2; gate++) {
        tcase *c = &cs[k++];
        c->name = gate ? "silu*gate" : "silu";
        c->a = (kn_op_args){.op = KN_OP_SILU};
        c->kind[0] = K_MAT; c->sh[0][0] = T_; c->sh[0][1] = 99;
        if (gate) { c->kind[1] = K_MAT; c->sh[1][0] = T_; c->sh[1][1] = 99; }
        c->dsh[0] = T_; c->dsh[1] = 99;
    }
    {
        tcase *c = &cs[k++];
        c->name = "softmax";
        c->a = (kn_op_args){.op = KN_OP_SOFTMAX, .scale = 0.7f};
        c->kind[0] = K_MAT; c->sh[0][0] = T_; c->sh[0][1] = 1000;
        c->dsh[0] = T_; c->dsh[1] = 1000;
    }
    /* attention: 3 sequences (one empty, one of length 1), packed q/k/v */
    struct { const char *n; int hq, hkv, d, causal, mask; } at[] = {
        {"attention", 4, 4, 16, 0, 0},
        {"attention-odd-d", 3, 3, 20, 0, 1},
        {"attention-causal-gqa", 8, 2, 64, 1, 0},
        {"attention-d64-mask", 12, 12, 64, 0, 1},
    };
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        tcase *c = &cs[k++];
        c->name = at[i].n;
        int32_t off[5] = {0, 20, 20, 21, 150};
        int T = 150;
        c->a = (kn_op_args){.op = KN_OP_ATTENTION, .n_head = at[i].hq, .n_kv_head = at[i].hkv,
                            .max_len = 129, .scale = 1.0f / sqrtf((float)at[i].d), .causal = at[i].causal};
        c->n_seq = 4;
        memcpy(c->seq_off, off, sizeof off);
        c->qkv_packed = 1;
        c->sh[0][0] = T; c->sh[0][1] = at[i].hq * at[i].d;
        c->sh[1][0] = T; c->sh[1][1] = at[i].hkv * at[i].d;
        c->sh[2][0] = T; c->sh[2][1] = at[i].hkv * at[i].d;
        if (at[i].mask) { c->kind[3] = K_MASK; c->sh[3][0] = T; }
        c->dsh[0] = T; c->dsh[1] = at[i].hq * at[i].d;
    }
    /* head_dim 64 over sequences longer than one 64-key tile (the tensor-core
     * kernel's double-buffered loop, partial last tiles) */
    for (int causal = 0; causal < 2; causal++) {
        tcase *c = &cs[k++];
        c->name = causal ? "attention-d64-long-causal" : "attention-d64-long-mask";
        int32_t off[5] = {0, 200, 200, 201, 330};
        int T = 330;
        c->a = (kn_op_args){.op = KN_OP_ATTENTION, .n_head = 4, .n_kv_head = causal ? 2 : 4,
                            .max_len = 200, .scale = 0.125f, .causal = causal};
        c->n_seq = 4;
        memcpy(c->seq_off, off, sizeof off);
        c->qkv_packed = 1;
        c->sh[0][0] = T; c->sh[0][1] = 4 * 64;
        c->sh[1][0] = T; c->sh[1][1] = c->a.n_kv_head * 64;
        c->sh[2][0] = T; c->sh[2][1] = c->a.n_kv_head * 64;
        if (!causal) { c->kind[3] = K_MASK; c->sh[3][0] = T; }
        c->dsh[0] = T; c->dsh[1] = 4 * 64;
    }
    {   /* head_dim 64, BERT-like lengths: nine 64-key tiles (more than the
         * wgmma kernel's 4 stages), a partial last 128-row query block */
        tcase *c = &cs[k++];
        c->name = "attention-d64-520-mask";
        int32_t off[3] = {0, 520, 777};
        int T = 777;
        c->a = (kn_op_args){.op = KN_OP_ATTENTION, .n_head = 2, .n_kv_head = 2, .max_len = 520, .scale = 0.125f};
        c->n_seq = 2;
        memcpy(c->seq_off, off, sizeof off);
        c->qkv_packed = 1;
        c->sh[0][0] = T; c->sh[0][1] = 128;
        c->sh[1][0] = T; c->sh[1][1] = 128;
        c->sh[2][0] = T; c->sh[2][1] = 128;
        c->kind[3] = K_MASK; c->sh[3][0] = T;
        c->dsh[0] = T; c->dsh[1] = 128;
    }
    {   /* head_dim 64, short sequences: one partial query tile, one of 1 token */
        tcase *c = &cs[k++];
        c->name = "attention-d64-short";
        int32_t off[4] = {0, 40, 41, 64};
        c->a = (kn_op_args){.op = KN_OP_ATTENTION, .n_head = 2, .n_kv_head = 2, .max_len = 40, .scale = 0.125f};
        c->n_seq = 3;
        memcpy(c->seq_off, off, sizeof off);
        c->qkv_packed = 1;
        c->sh[0][0] = 64; c->sh[0][1] = 128;
        c->sh[1][0] = 64; c->sh[1][1] = 128;
        c->sh[2][0] = 64; c->sh[2][1] = 128;
        c->dsh[0] = 64; c->dsh[1] = 128;
    }
    {
        tcase *c = &cs[k++];
        c->name = "rope";
        c->a = (kn_op_args){.op = KN_OP_ROPE, .n_head = 3, .rot_dims = 16, .theta = 10000.0f};
        c->kind[0] = K_MAT; c->sh[0][0] = T_; c->sh[0][1] = 3 * 24;
        c->kind[1] = K_POS; c->sh[1][0] = T_;
        c->dsh[0] = T_; c->dsh[1] = 72;
    }
    for (int acc = 0; acc < 2; acc++) {
        tcase *c = &cs[k++];
        c->name = acc ? "get_rows+accumulate" : "get_rows";
        c->a = (kn_op_args){.op = KN_OP_GET_ROWS, .accumulate = acc};
        c->kind[0] = K_MAT; c->sh[0][0] = 50; c->sh[0][1] = 33;
        c->kind[1] = K_IDS; c->sh[1][0] = T_; c->ids_max = 50;
        c->dsh[0] = T_; c->dsh[1] = 33;
        c->dst_init = acc;
    }
    for (int bc = 0; bc < 2; bc++) {
        tcase *c = &cs[k++];
        c->name = bc ? "add-broadcast" : "add";
        c->a = (kn_op_args){.op = KN_OP_ADD};
        c->kind[0] = K_MAT; c->sh[0][0] = T_; c->sh[0][1] = 65;
        c->kind[1] = K_MAT; c->sh[1][0] = bc ? 1 : T_; c->sh[1][1] = 65;
        c->dsh[0] = T_; c->dsh[1] = 65;
    }
    {
        tcase *c = &cs[k++];
        c->name = "scale";
        c->a = (kn_op_args){.op = KN_OP_SCALE, .scale = -1.5f};
        c->kind[0] = K_MAT; c->sh[0][0] = T_; c->sh[0][1] = 65;
        c->dsh[0] = T_; c->dsh[1] = 65;
    }
    {
        tcase *c = &cs[k++];
        c->name = "splade_pool";
        int32_t off[5] = {0, 30, 30, 31, 100};
        c->a = (kn_op_args){.op = KN_OP_SPLADE_POOL, .max_len = 69};
        c->n_seq = 4;
        memcpy(c->seq_off, off, sizeof off);
        c->kind[0] = K_MAT; c->sh[0][0] = 100; c->sh[0][1] = 72;
        c->kind[1] = K_MAT; c->sh[1][0] = 1003; c->sh[1][1] = 72;
        c->kind[2] = K_VEC; c->sh[2][0] = 1003;
        c->dsh[0] = 4; c->dsh[1] = 1003;
    }
    {   /* the fused kernel's cases: tiles inside one sequence, tiles across
         * several, a partial last tile, an empty sequence */
        tcase *c = &cs[k++];
        c->name = "splade_pool-tiles";
        int32_t off[6] = {0, 300, 301, 301, 340, 400};
        c->a = (kn_op_args){.op = KN_OP_SPLADE_POOL, .max_len = 300};
        c->n_seq = 5;
        memcpy(c->seq_off, off, sizeof off);
        c->kind[0] = K_MAT; c->sh[0][0] = 400; c->sh[0][1] = 256;
        c->kind[1] = K_MAT; c->sh[1][0] = 1003; c->sh[1][1] = 256;
        c->kind[2] = K_VEC; c->sh[2][0] = 1003;
        c->dsh[0] = 5; c->dsh[1] = 1003;
    }
    {   /* more 128 x 256 tiles (480) than an H200 has SMs, so each
         * persistent block of the wgmma head takes several and its stage
         * barriers turn phase; an odd vocabulary, one-row sequences */
        tcase *c = &cs[k++];
        c->name = "splade_pool-many";
        int32_t off[7] = {0, 700, 1500, 1501, 2999, 3000, 3000};
        c->a = (kn_op_args){.op = KN_OP_SPLADE_POOL, .max_len = 1498};
        c->n_seq = 6;
        memcpy(c->seq_off, off, sizeof off);
        c->kind[0] = K_MAT; c->sh[0][0] = 3000; c->sh[0][1] = 16;
        c->kind[1] = K_MAT; c->sh[1][0] = 5003; c->sh[1][1] = 16;
        c->kind[2] = K_VEC; c->sh[2][0] = 5003;
        c->dsh[0] = 6; c->dsh[1] = 5003;
    }
    LX_ASSERT(k <= 48);
    *n = k;
    return cs;
}

static void test_cpu_fast_equals_reference(void **state)
{
    (void)state;
    kn_backend *ref, *cpu;
    kn_backend_params p = kn_backend_default_params();
    p.reference = 1;
    assert_int_equal(kn_backend_open(&ref, KN_BACKEND_CPU, &p), 0);
    p.reference = 0;
    /* the AVX2 row loops (where the CPU has them) and the portable ones on
     * two threads, and on three, so that the pool's split of a GEMM's rows
     * (and of the SPLADE head's vocabulary) is uneven and some shapes have
     * fewer rows than workers */
    static const struct { int no_avx2, threads; const char *label; } variants[] = {
        {0, 2, "cpu"}, {1, 2, "cpu-portable"}, {0, 3, "cpu-3-threads"},
    };
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        p.no_avx2 = variants[v].no_avx2;
        p.n_threads = variants[v].threads;
        assert_int_equal(kn_backend_open(&cpu, KN_BACKEND_CPU, &p), 0);
        int n;
        tcase *cs = make_cases(&n);
        for (int i = 0; i < n; i++)
            check_case(ref, cpu, &cs[i], 0, KN_F32, 1e-9, variants[v].label);
        kn_backend_close(cpu);
    }
    kn_backend_close(ref);
}

static void test_cuda_equals_reference(void **state)
{
    (void)state;
    kn_backend *gpu = open_cuda();
    if (!gpu) {
        skip();
        return;
    }
    kn_backend *ref;
    kn_backend_params p = kn_backend_default_params();
    p.reference = 1;
    assert_int_equal(kn_backend_open(&ref, KN_BACKEND_CPU, &p), 0);
    int n;
    tcase *cs = make_cases(&n);
    for (int pass = 0; pass < 2; pass++) {
        kn_dtype dt = pass ? KN_BF16 : KN_F32;
        double bound = pass ? 1e-4 : 1e-9;
        for (int i = 0; i < n; i++)
            check_case(ref, gpu, &cs[i], pass, dt, bound, pass ? "cuda BF16" : "cuda F32 ");
    }
    /* every fused SPLADE kernel and every head_dim-64 attention kernel, not
     * only the ones the device picks: kn_mma.cu's mma.sync ones (SPLADE 5,
     * 1; attention 1, 2) and kn_wgmma.cu's (SPLADE 10-12, attention 10),
     * which fall back to mma.sync where the device has no wgmma; and the
     * norms' block-a-row kernel (LX_CUDA_NORM=1) where the warp-a-row one
     * is the default */
    static const struct { const char *var, *val; kn_op op; } kernel_choice[] = {
        {"LX_CUDA_SPLADE", "5", KN_OP_SPLADE_POOL},  {"LX_CUDA_SPLADE", "1", KN_OP_SPLADE_POOL},
        {"LX_CUDA_SPLADE", "10", KN_OP_SPLADE_POOL}, {"LX_CUDA_SPLADE", "11", KN_OP_SPLADE_POOL},
        {"LX_CUDA_SPLADE", "12", KN_OP_SPLADE_POOL}, {"LX_CUDA_ATTN", "1", KN_OP_ATTENTION},
        {"LX_CUDA_ATTN", "2", KN_OP_ATTENTION},      {"LX_CUDA_ATTN", "10", KN_OP_ATTENTION},
        {"LX_CUDA_NORM", "1", KN_OP_LAYERNORM},      {"LX_CUDA_NORM", "1", KN_OP_RMSNORM},
    };
    for (size_t v = 0; v < sizeof kernel_choice / sizeof *kernel_choice; v++) {
        kn_backend *g2;
        setenv(kernel_choice[v].var, kernel_choice[v].val, 1);
        int rc = kn_backend_open(&g2, KN_BACKEND_CUDA, NULL);
        unsetenv(kernel_choice[v].var);
        assert_int_equal(rc, 0);
        char label[64];
        snprintf(label, sizeof label, "cuda BF16 %s=%s", kernel_choice[v].var, kernel_choice[v].val);
        for (int i = 0; i < n; i++)
            if (cs[i].a.op == kernel_choice[v].op)
                check_case(ref, g2, &cs[i], 1, KN_BF16, 1e-4, label);
        kn_backend_close(g2);
    }
    kn_backend_close(ref);
    kn_backend_close(gpu);
}

/* kn_host_alloc's memory round-trips through a backend tensor: malloc on
 * the CPU, page-locked memory on CUDA (when a GPU is there). */
static void host_roundtrip(kn_backend *be)
{
    const int64_t sh[2] = {37, 1001};
    size_t n = 37 * 1001;
    float *src = kn_host_alloc(be, n * sizeof *src), *dst = kn_host_alloc(be, n * sizeof *dst);
    assert_non_null(src);
    assert_non_null(dst);
    for (size_t i = 0; i < n; i++)
        src[i] = (float)i * 0.5f - 7.0f;
    kn_tensor t;
    assert_int_equal(kn_tensor_alloc(be, &t, KN_F32, 2, sh), 0);
    assert_int_equal(kn_tensor_upload(be, &t, src), 0);
    memset(dst, 0, n * sizeof *dst);
    assert_int_equal(kn_tensor_download(be, &t, dst), 0);
    assert_memory_equal(src, dst, n * sizeof *dst);
    kn_tensor_free(be, &t);
    kn_host_free(be, src);
    kn_host_free(be, dst);
    kn_host_free(be, NULL);
}

static void test_host_alloc_roundtrip(void **state)
{
    (void)state;
    kn_backend *cpu;
    assert_int_equal(kn_backend_open(&cpu, KN_BACKEND_CPU, NULL), 0);
    host_roundtrip(cpu);
    kn_backend_close(cpu);
    kn_backend *gpu = open_cuda();
    if (gpu) {
        host_roundtrip(gpu);
        kn_backend_close(gpu);
    }
}

/* Ops on BF16 host tensors reach the CPU through the fallback: same result
 * as F32 on the rounded inputs, up to the output's BF16 rounding. */
static void test_cpu_fallback_bf16(void **state)
{
    (void)state;
    kn_backend *cpu;
    assert_int_equal(kn_backend_open(&cpu, KN_BACKEND_CPU, NULL), 0);
    int n;
    tcase *cs = make_cases(&n);
    for (int i = 0; i < n; i++)
        check_case(cpu, cpu, &cs[i], 1, KN_BF16, 1e-4, "cpu fallback BF16");
    kn_backend_close(cpu);
}

static void test_op_check_rejects_bad_shapes(void **state)
{
    (void)state;
    kn_backend *cpu;
    assert_int_equal(kn_backend_open(&cpu, KN_BACKEND_CPU, NULL), 0);
    float x[12], w[12], d[16];
    kn_tensor tx = kn_tensor_2d(x, KN_F32, 3, 4), tw = kn_tensor_2d(w, KN_F32, 4, 3);
    kn_tensor td = kn_tensor_2d(d, KN_F32, 3, 4);
    assert_int_equal(kn_matmul(cpu, &td, &tx, &tw, NULL, 0), LX_E_INVAL);
    assert_non_null(strstr(kn_backend_errmsg(cpu), "matmul"));
    /* get_rows with an id past the table */
    int32_t ids[3] = {0, 1, 7};
    kn_tensor ti = kn_tensor_1d(ids, KN_I32, 3);
    assert_int_equal(kn_get_rows(cpu, &td, &tx, &ti, 0), LX_E_INVAL);
    assert_non_null(strstr(kn_backend_errmsg(cpu), "outside the table"));
    kn_backend_close(cpu);
}

static void test_dtype_conversions(void **state)
{
    (void)state;
    /* bf16 rounds to nearest even */
    assert_int_equal(kn_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(kn_f32_to_bf16(1.00390625f), 0x3f80);     /* tie -> even */
    assert_int_equal(kn_f32_to_bf16(1.01171875f), 0x3f82);     /* tie -> even (up) */
    assert_true(isnan(kn_bf16_to_f32(kn_f32_to_bf16(NAN))));
    /* every finite f16 value round-trips through f32 */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00)
            continue;
        float f = kn_f16_to_f32((uint16_t)h);
        assert_int_equal(kn_f32_to_f16(f), h);
    }
    assert_true(kn_f16_to_f32(0x3c00) == 1.0f);
    assert_true(kn_f16_to_f32(0x0001) == ldexpf(1, -24));
    assert_int_equal(kn_f32_to_f16(70000.0f), 0x7c00);
    assert_int_equal(kn_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00);   /* tie -> even */
    assert_string_equal(kn_dtype_name(KN_BF16), "BF16");
    assert_int_equal(kn_dtype_size(KN_I64), 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_conversions),
        cmocka_unit_test(test_op_check_rejects_bad_shapes),
        cmocka_unit_test(test_cpu_fast_equals_reference),
        cmocka_unit_test(test_cpu_fallback_bf16),
        cmocka_unit_test(test_host_alloc_roundtrip),
        cmocka_unit_test(test_cuda_equals_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
