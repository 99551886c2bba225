/* kn_cuda.cu: the CUDA backend (built with CUDA=1 only).
 *
 * The one place that calls CUDA and cuBLAS (STYLE 14). It fills the same
 * backend table as cpu.c; ops it does not take (other dtype mixes, host
 * tensors) go to the CPU through backend.c's fallback.
 *
 * Dtypes: the matrices of an op (dst and its row-major operands) share one
 * storage type, F32, BF16 or F16; vectors (biases, layer-norm parameters,
 * the key mask) are F32; ids, positions and offsets I32. Arithmetic is F32
 * everywhere: cuBLAS GEMMs accumulate in F32 (CUBLAS_COMPUTE_32F, which for
 * F32 inputs is true F32, not TF32), and every kernel widens on load and
 * rounds once on store.
 *
 * Kernels (one switch in cuda_run picks them):
 *   matmul       16-bit types: cuBLASLt (row-major trick: C^T = W X^T), its
 *                descriptors and algorithm cached per shape (lt_plan), the
 *                bias (rounded to the storage type) and relu in its
 *                epilogue, GELU (erf, see erf_rational and gelu_folded) one
 *                vectorized pass after it (k_gelu_vec).
 *                F32, or no cuBLASLt: cublasGemmEx, then a bias + activation
 *                pass.
 *   layernorm    16-bit rows of up to 8192 (multiple of 8): a thread per
 *   rmsnorm      16-byte chunk, the row held in registers; otherwise one
 *                block per row through shared memory. Two-pass
 *                mean/variance, residual fused; dst may alias src0 or the
 *                residual.
 *   softmax      one block per row
 *   elementwise  gelu (+bias), silu (*gate), add (+broadcast row), scale
 *   attention    head_dim 64 in 16-bit types: a flash-attention kernel on
 *                tensor cores, kn_wgmma.cu's on Hopper, else kn_mma.cu's
 *                (LX_CUDA_ATTN picks one). Otherwise flash-style online softmax,
 *                one warp per query row, keys and values staged through
 *                shared memory 32 at a time. Both: packed variable-length
 *                sequences, causal, grouped-query, key mask; never touch
 *                another sequence's tokens.
 *   rope, get_rows
 *   splade_pool  16-bit types: kn_mma.cu's fused decoder GEMM + relu + max
 *                over each sequence's rows (the logits stay in registers),
 *                then log1p of the pooled [S, V]. Otherwise a cuBLAS GEMM
 *                over chunks of 512 token rows whose [512, V] logits stay
 *                in L2, then a max-pool kernel (see run_splade).
 */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <type_traits>

#include "kn_mma.h"

#define _Noreturn [[noreturn]]
extern "C" {
#include "../kernels_impl.h"
}
#undef _Noreturn

/* One cuBLASLt GEMM shape with its descriptors and the algorithm picked for
 * it (see gemm_lt). The key is every field up to align. */
struct lt_plan {
    int M, N, K, epi, st, dt, bias16;
    long long ld_x, ld_w, ld_d;
    unsigned align;            /* bytes every row start of d, x and w is aligned to */
    int used;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
};
enum { LT_PLANS = 64 };

struct cuda_ctx {
    int device;
    cublasHandle_t blas;
    cublasLtHandle_t lt;       /* GEMMs with the bias fused (epilogue) */
    void *lt_ws;               /* cuBLASLt workspace */
    size_t lt_ws_size;
    lt_plan plans[LT_PLANS];   /* a cache; the oldest is replaced when full */
    int n_plans, next_evict;
    int gemm_mode;             /* LX_CUDA_GEMM, for benchmarks: 0 the bias narrowed to 16 bits in
                                * cuBLASLt's epilogue (default), 1 the F32 bias there, 2
                                * cublasGemmEx + bias pass, 3 cuBLASLt + bias pass */
    int splade_variant;        /* LX_CUDA_SPLADE, for benchmarks: 0 = the best kernel there is
                                  (kn_wgmma_splade_max's default where it runs); 1-5
                                  kn_mma_splade_max's variant (5: its default); 10-12
                                  kn_wgmma_splade_max's variant 0-2 */
    int attn_variant;          /* LX_CUDA_ATTN, for benchmarks: 0 = the best kernel there is
                                  (kn_wgmma_attention where it runs, else
                                  kn_mma_attention's variant 1); 1-2 kn_mma_attention's
                                  variant 0-1; 10 kn_wgmma_attention */
    int norm_variant;          /* LX_CUDA_NORM, for benchmarks: 0 k_norm_warp for 16-bit rows of up to
                                  1024 (default), 1 k_norm_vec for them too */
    int gelu_variant;          /* LX_CUDA_GELU, for benchmarks: the GELU pass after a GEMM without
                                  bias: 0 k_gelu_vec (default), 1 k_bias_act_vec (the pass before it) */
    int has_wgmma;             /* kn_wgmma_available: the Hopper kernels run here */
    void *tmap_encode;         /* its cuTensorMapEncodeTiled, or NULL */
    void *b16;                 /* the current matmul's bias narrowed to 16 bits */
    size_t b16_size;
    cudaStream_t stream;
    void *scratch;             /* grow-only device scratch (splade logits, maps) */
    size_t scratch_size;
    int n_sm;                  /* the device's SM count, read once here (persistent grids) */
};

#define CU_TRY(call)                                                                      \
    do {                                                                                  \
        cudaError_t e_ = (call);                                                          \
        if (e_ != cudaSuccess) {                                                          \
            snprintf(err, errlen, "cuda: %s: %s (%s:%d)", #call, cudaGetErrorString(e_),  \
                     __FILE__, __LINE__);                                                 \
            return LX_E_IO;                                                               \
        }                                                                                 \
    } while (0)

#define CU_LAUNCHED() CU_TRY(cudaGetLastError())

// --- loads and stores -------------------------------------------------------

__device__ __forceinline__ float ld(const float *p) { return *p; }
__device__ __forceinline__ float ld(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ float ld(const __half *p) { return __half2float(*p); }
__device__ __forceinline__ void st(float *p, float v) { *p = v; }
__device__ __forceinline__ void st(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void st(__half *p, float v) { *p = __float2half_rn(v); }

/* erf(x) as the CPU backend computes it (cpu.c's ferf, kernels_impl.h's
 * KN_ERF_*): Eigen's rational approximation, odd degree 13 over even
 * degree 8, clamped to where erf is +-1 in F32. Branch-free, 13 FMAs and a
 * division: it costs about half of erff, which made the GELU pass after
 * the FFN-up GEMM compute-bound rather than memory-bound. */
__device__ __forceinline__ float erf_rational(float x)
{
    x = fminf(fmaxf(x, -KN_ERF_CLAMP), KN_ERF_CLAMP);
    float x2 = x * x;
    float p = KN_ERF_P0;
    p = fmaf(p, x2, KN_ERF_P1);
    p = fmaf(p, x2, KN_ERF_P2);
    p = fmaf(p, x2, KN_ERF_P3);
    p = fmaf(p, x2, KN_ERF_P4);
    p = fmaf(p, x2, KN_ERF_P5);
    p = fmaf(p, x2, KN_ERF_P6);
    p = p * x;
    float q = KN_ERF_Q0;
    q = fmaf(q, x2, KN_ERF_Q1);
    q = fmaf(q, x2, KN_ERF_Q2);
    q = fmaf(q, x2, KN_ERF_Q3);
    q = fmaf(q, x2, KN_ERF_Q4);
    return __fdividef(p, q);
}

__device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * (1.0f + erf_rational(x * 0.70710678118654752f)); }

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum (or max) over a block of blockDim.x threads (a multiple of 32). */
__device__ float block_reduce(float v, bool is_max)
{
    __shared__ float part[32];
    __shared__ float result;
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = is_max ? warp_max(v) : warp_sum(v);
    if (lane == 0)
        part[w] = v;
    __syncthreads();
    if (w == 0) {
        float x = lane < nw ? part[lane] : (is_max ? -INFINITY : 0.0f);
        x = is_max ? warp_max(x) : warp_sum(x);
        if (lane == 0)
            result = x;
    }
    __syncthreads();
    float r = result;
    __syncthreads();
    return r;
}

// --- kernels ----------------------------------------------------------------

/* One block per row (grid-strided over rows): no division per element. */
template <typename T>
__global__ void k_bias_act(T *y, long long R, int C, long long ld_y, const float *bias, int act)
{
    for (long long r = blockIdx.x; r < R; r += gridDim.x)
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        T *p = y + r * ld_y + c;
        float v = ld(p) + (bias ? bias[c] : 0.0f);
        if (act == KN_ACT_GELU)
            v = gelu_erf(v);
        else if (act == KN_ACT_RELU)
            v = fmaxf(v, 0.0f);
        st(p, v);
    }
}

/* One block per row; the row (x + residual) is read once into shared
 * memory as F32, so dst may alias either input. */
template <typename T>
__global__ void k_norm(T *y, long long ld_y, const T *x, long long ld_x, const T *res, long long ld_r,
                       const float *g, const float *b, int C, float eps, int rms)
{
    extern __shared__ float rowv[];
    long long r = blockIdx.x;
    const T *xr = x + r * ld_x;
    const T *rr = res ? res + r * ld_r : nullptr;
    T *yr = y + r * ld_y;
    float s = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v = ld(xr + c) + (rr ? ld(rr + c) : 0.0f);
        rowv[c] = v;
        s += v;
    }
    float mean = rms ? 0.0f : block_reduce(s, false) / C;
    float q = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v = rowv[c] - mean;
        q += v * v;
    }
    float inv = rsqrtf(block_reduce(q, false) / C + eps);
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        st(yr + c, (rowv[c] - mean) * inv * g[c] + (b ? b[c] : 0.0f));
}

/* The sum of v over the blockDim.x threads of this thread's row
 * (threadIdx.y): a warp sum, then the row's wpr warps through part[], one
 * slot per warp of the block. Every thread of the block must call it. */
__device__ __forceinline__ float row_sum(float v, float *part, int wpr)
{
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0)
        part[threadIdx.y * wpr + (threadIdx.x >> 5)] = v;
    __syncthreads();
    float s = 0;
    for (int i = 0; i < wpr; i++)
        s += part[threadIdx.y * wpr + i];
    return s;
}

/* The normalized chunk of 8: (v - mean) * inv * g (+ b), one 16-byte store
 * (g, b: the chunk's 8 weights, 16-byte aligned; b may be null). */
template <typename T>
__device__ __forceinline__ void norm_store8(T *dst, const float *v, float mean, float inv, const float *g,
                                            const float *b)
{
    float gg[8], bb[8];
    *(float4 *)gg = *(const float4 *)g;
    *(float4 *)(gg + 4) = *(const float4 *)(g + 4);
    if (b) {
        *(float4 *)bb = *(const float4 *)b;
        *(float4 *)(bb + 4) = *(const float4 *)(b + 4);
    }
    uint4 o;
    T *e = (T *)&o;
#pragma unroll
    for (int j = 0; j < 8; j++)
        st(e + j, (v[j] - mean) * inv * gg[j] + (b ? bb[j] : 0.0f));
    *(uint4 *)dst = o;
}

/* Layer / RMS norm with one warp a row, for rows of up to 1024 16-bit
 * values in 16-byte chunks (C % 8 == 0): CPL chunks a lane, all loads issued
 * before the first use, both reductions by shuffles alone. k_norm_vec, with
 * a row over 3 warps at C = 768, joins them through shared memory and two
 * __syncthreads and keeps a third of the loads in flight: 0.052 ms a layer
 * norm at BERT-base's 32,768 x 768 (2.9 TB/s). */
template <typename T, int CPL>
__global__ void __launch_bounds__(256) k_norm_warp(T *y, long long ld_y, const T *x, long long ld_x, const T *res,
                                                   long long ld_r, const float *g, const float *b, int C, float eps,
                                                   int rms, long long R)
{
    long long r = (long long)blockIdx.x * 8 + (threadIdx.x >> 5);
    if (r >= R)
        return;                          /* the whole warp: r is the warp's */
    int lane = threadIdx.x & 31, nc = C >> 3;
    uint4 u[CPL], ur[CPL];
#pragma unroll
    for (int k = 0; k < CPL; k++) {
        int ch = lane + 32 * k;
        u[k] = ur[k] = make_uint4(0, 0, 0, 0);
        if (ch < nc) {
            u[k] = *(const uint4 *)(x + r * ld_x + ch * 8);
            if (res)
                ur[k] = *(const uint4 *)(res + r * ld_r + ch * 8);
        }
    }
    float v[CPL][8], s = 0;
#pragma unroll
    for (int k = 0; k < CPL; k++) {
        const T *e = (const T *)&u[k], *er = (const T *)&ur[k];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            v[k][j] = ld(e + j) + ld(er + j);      /* zero chunks past the row */
            s += v[k][j];
        }
    }
    float mean = rms ? 0.0f : warp_sum(s) / C;
    float q = 0;
#pragma unroll
    for (int k = 0; k < CPL; k++)
        if (lane + 32 * k < nc)
#pragma unroll
            for (int j = 0; j < 8; j++)
                q += (v[k][j] - mean) * (v[k][j] - mean);
    float inv = rsqrtf(warp_sum(q) / C + eps);
#pragma unroll
    for (int k = 0; k < CPL; k++) {
        int ch = lane + 32 * k;
        if (ch >= nc)
            break;
        norm_store8(y + r * ld_y + ch * 8, v[k], mean, inv, g + ch * 8, b ? b + ch * 8 : nullptr);
    }
}

/* Layer norm for 16-bit rows of C <= 8192 (C % 8 == 0): blockDim.x
 * threads (C / 8 rounded up to a warp) per row, one 16-byte chunk of x and
 * one of the residual each, blockDim.y rows a block. Every chunk of a row
 * is loaded at once, so a block keeps several KB in flight: one warp per
 * row looping over its chunks left the kernel latency-bound at a third of
 * the memory bandwidth. The row lives in registers; dst may alias x or res.
 * Two-pass mean and variance, each a warp sum plus one exchange through
 * shared memory. */
template <typename T>
__global__ void k_norm_vec(T *y, long long ld_y, const T *x, long long ld_x, const T *res, long long ld_r,
                           const float *g, const float *b, int C, float eps, int rms, long long R)
{
    __shared__ float part_s[32], part_q[32];
    long long r = (long long)blockIdx.x * blockDim.y + threadIdx.y;
    int c = threadIdx.x, nc = C >> 3, wpr = blockDim.x >> 5;
    bool ok = r < R && c < nc;
    float v[8], s = 0;
    if (ok) {
        uint4 u = *(const uint4 *)(x + r * ld_x + c * 8), ur = make_uint4(0, 0, 0, 0);
        if (res)
            ur = *(const uint4 *)(res + r * ld_r + c * 8);
        const T *e = (const T *)&u, *er = (const T *)&ur;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            v[j] = ld(e + j) + (res ? ld(er + j) : 0.0f);
            s += v[j];
        }
    } else {
#pragma unroll
        for (int j = 0; j < 8; j++)
            v[j] = 0.0f;
    }
    float mean = rms ? 0.0f : row_sum(s, part_s, wpr) / C;
    float q = 0;
    if (ok)
#pragma unroll
        for (int j = 0; j < 8; j++)
            q += (v[j] - mean) * (v[j] - mean);
    q = row_sum(q, part_q, wpr);
    if (!ok)
        return;
    float inv = rsqrtf(q / C + eps);
    norm_store8(y + r * ld_y + c * 8, v, mean, inv, g + c * 8, b ? b + c * 8 : nullptr);
}

/* In place over 16-bit rows, 8 values (16 bytes) per chunk and BA_U chunks
 * per thread, all loaded before any is computed: + bias (F32, optional),
 * then the activation (exact GELU or relu). n = R * C / 8 chunks < 2^32,
 * so the row of a chunk is a 32-bit division. */
enum { BA_U = 4 };
/* A vectorized pass over n chunks of 8 values in place: thread i0 owns the
 * BA_U chunks i = i0 + k * blockDim.x (row i / nc, columns (i % nc) * 8
 * ..), loads all of those below n before computing any, calls op(e, col)
 * on each (e: its 8 values, col: its first column), and stores it back. */
template <typename T, typename Op>
__device__ __forceinline__ void chunks_map(T *y, unsigned n, unsigned nc, long long ld_y, Op op)
{
    uint4 u[BA_U];
    T *p[BA_U];
    unsigned col[BA_U];
    unsigned i0 = blockIdx.x * (blockDim.x * BA_U) + threadIdx.x;
#pragma unroll
    for (int k = 0; k < BA_U; k++) {
        unsigned i = i0 + k * blockDim.x, r = i / nc;
        col[k] = (i - r * nc) * 8;
        p[k] = y + (long long)r * ld_y + col[k];
        if (i < n)
            u[k] = *(const uint4 *)p[k];
    }
#pragma unroll
    for (int k = 0; k < BA_U; k++) {
        if (i0 + k * blockDim.x >= n)
            break;
        op((T *)&u[k], col[k]);
        *(uint4 *)p[k] = u[k];
    }
}

template <typename T>
__global__ void k_bias_act_vec(T *y, unsigned n, unsigned nc, long long ld_y, const float *bias, int act)
{
    chunks_map(y, n, nc, ld_y, [=](T *e, unsigned col) {
        float bb[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (bias) {
            *(float4 *)bb = *(const float4 *)(bias + col);
            *(float4 *)(bb + 4) = *(const float4 *)(bias + col + 4);
        }
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float v = ld(e + j) + bb[j];
            st(e + j, act == KN_ACT_GELU ? gelu_erf(v) : act == KN_ACT_RELU ? fmaxf(v, 0.0f) : v);
        }
    });
}

/* GELU(x) = x (1/2 + erf(x/sqrt2)/2) with erf_rational's constants
 * folded in: the polynomials taken in x^2 rather than (x/sqrt2)^2 and the
 * 1/(2 sqrt2) in P, so a value costs 2 clamps, 12 FMA or MUL, a
 * reciprocal and one FMA and one MUL (gelu_erf: about 24). Equal to
 * gelu_erf up to F32 rounding. */
__device__ __forceinline__ float gelu_folded(float x)
{
    const float h = 0.5f;
    float t = fminf(fmaxf(x, -KN_ERF_CLAMP * 1.41421356237309505f), KN_ERF_CLAMP * 1.41421356237309505f);
    float t2 = t * t;
    /* P_i (1/2)^(6-i) / (2 sqrt2), Q_i (1/2)^(4-i) */
    float p = KN_ERF_P0 * (h * h * h * h * h * h * 0.35355339059327376f);
    p = fmaf(p, t2, KN_ERF_P1 * (h * h * h * h * h * 0.35355339059327376f));
    p = fmaf(p, t2, KN_ERF_P2 * (h * h * h * h * 0.35355339059327376f));
    p = fmaf(p, t2, KN_ERF_P3 * (h * h * h * 0.35355339059327376f));
    p = fmaf(p, t2, KN_ERF_P4 * (h * h * 0.35355339059327376f));
    p = fmaf(p, t2, KN_ERF_P5 * (h * 0.35355339059327376f));
    p = fmaf(p, t2, KN_ERF_P6 * 0.35355339059327376f);
    p = p * t;
    float q = KN_ERF_Q0 * (h * h * h * h);
    q = fmaf(q, t2, KN_ERF_Q1 * (h * h * h));
    q = fmaf(q, t2, KN_ERF_Q2 * (h * h));
    q = fmaf(q, t2, KN_ERF_Q3 * h);
    q = fmaf(q, t2, KN_ERF_Q4);
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(q));   /* q <= KN_ERF_Q4 < 0: no denormal, no zero */
    return x * fmaf(p, r, 0.5f);
}

/* The GELU pass alone (no bias) over 16-bit rows, after the FFN-up GEMM:
 * k_bias_act_vec with the activation fixed at compile time and
 * gelu_folded. At 32768 tokens FFN up + GELU took 0.365 -> 0.342-0.352 ms. */
template <typename T>
__global__ void k_gelu_vec(T *y, unsigned n, unsigned nc, long long ld_y)
{
    chunks_map(y, n, nc, ld_y, [](T *e, unsigned) {
#pragma unroll
        for (int j = 0; j < 8; j++)
            st(e + j, gelu_folded(ld(e + j)));
    });
}

template <typename T>
__global__ void k_softmax(T *y, long long ld_y, const T *x, long long ld_x, int C, float scale)
{
    long long r = blockIdx.x;
    const T *xr = x + r * ld_x;
    T *yr = y + r * ld_y;
    float m = -INFINITY;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        m = fmaxf(m, scale * ld(xr + c));
    m = block_reduce(m, true);
    float s = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        s += __expf(scale * ld(xr + c) - m);
    float inv = 1.0f / block_reduce(s, false);
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        st(yr + c, __expf(scale * ld(xr + c) - m) * inv);
}

template <typename T>
__global__ void k_eltwise(int op, T *y, long long ld_y, const T *x, long long ld_x, const void *z,
                          long long ld_z, int z_rows, long long R, int C, float scale)
{
    long long n = R * C;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        long long r = i / C;
        int c = (int)(i - r * C);
        float v = ld(x + r * ld_x + c), o;
        switch (op) {
        case KN_OP_GELU:
            o = gelu_erf(v + (z ? ((const float *)z)[c] : 0.0f));
            break;
        case KN_OP_SILU:
            o = v / (1.0f + __expf(-v)) * (z ? ld((const T *)z + r * ld_z + c) : 1.0f);
            break;
        case KN_OP_ADD:
            o = v + ld((const T *)z + (z_rows == 1 ? 0 : r) * ld_z + c);
            break;
        default:
            o = v * scale;
        }
        st(y + r * ld_y + c, o);
    }
}

template <typename T>
__global__ void k_rope(T *y, long long ld_y, const T *x, long long ld_x, const int *pos, long long R,
                       int n_head, int D, int rot, float theta)
{
    int half = rot / 2;
    long long n = R * n_head * D;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        long long r = i / (n_head * D);
        int hc = (int)(i - r * n_head * D), h = hc / D, c = hc - h * D;
        const T *xr = x + r * ld_x + h * D;
        float o;
        if (c >= rot) {
            o = ld(xr + c);
        } else {
            int j = c < half ? c : c - half;
            float f = powf(theta, -2.0f * j / rot), ang = pos[r] * f, sn, cs;
            sincosf(ang, &sn, &cs);
            float x0 = ld(xr + j), x1 = ld(xr + j + half);
            o = c < half ? x0 * cs - x1 * sn : x0 * sn + x1 * cs;
        }
        st(y + r * ld_y + h * D + c, o);
    }
}

template <typename T>
__global__ void k_get_rows(T *y, long long ld_y, const T *tab, long long ld_t, long long V, const int *ids,
                           long long R, int C, int acc)
{
    long long n = R * C;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        long long r = i / C;
        int c = (int)(i - r * C);
        int id = ids[r];
        float v = (id >= 0 && id < V) ? ld(tab + (long long)id * ld_t + c) : 0.0f;
        T *p = y + r * ld_y + c;
        st(p, v + (acc ? ld(p) : 0.0f));
    }
}

/* Attention, one warp per query row: for each block of 32 keys, lane j scores
 * key j against q (both from shared memory), the warp updates a running max
 * and sum (online softmax), and each lane accumulates output columns
 * lane, lane+32, ... (head_dim <= 32 * AD). The block's warps take
 * consecutive query rows of one (sequence, head); K and V tiles are staged
 * in shared memory as F32 once per block. */
enum { AW = 4, AD = 8 };   /* warps per block; head_dim up to 256 */

template <typename T>
__global__ void k_attention(T *o, long long ld_o, const T *q, long long ld_q, const T *k, long long ld_k,
                            const T *v, long long ld_v, const float *mask, const int *seq_off,
                            int n_head, int group, int D, float scale, int causal)
{
    extern __shared__ float sm[];
    float *ks = sm;                       /* [32][D+1] */
    float *vs = ks + 32 * (D + 1);        /* [32][D] */
    float *qs = vs + 32 * D;              /* [AW][D] */
    int s = blockIdx.z, h = blockIdx.y, kh = h / group;
    int b = seq_off[s], L = seq_off[s + 1] - b;
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int i0 = blockIdx.x * AW;             /* first query row of this block */
    if (i0 >= L)
        return;
    int i = i0 + w;                       /* this warp's query (may be past L) */
    bool live = i < L;
    for (int c = lane; c < D; c += 32)
        qs[w * D + c] = live ? ld(q + (long long)(b + i) * ld_q + h * D + c) : 0.0f;
    float m = -INFINITY, l = 0, acc[AD];
#pragma unroll
    for (int a = 0; a < AD; a++)
        acc[a] = 0;
    int last = i0 + AW - 1 < L - 1 ? i0 + AW - 1 : L - 1;   /* the block's last query */
    int jend = causal ? last + 1 : L;
    for (int j0 = 0; j0 < jend; j0 += 32) {
        __syncthreads();
        for (int e = threadIdx.x; e < 32 * D; e += blockDim.x) {
            int jj = e / D, c = e - jj * D, j = j0 + jj;
            bool in = j < L;
            ks[jj * (D + 1) + c] = in ? ld(k + (long long)(b + j) * ld_k + kh * D + c) : 0.0f;
            vs[jj * D + c] = in ? ld(v + (long long)(b + j) * ld_v + kh * D + c) : 0.0f;
        }
        __syncthreads();
        if (!live)
            continue;
        int j = j0 + lane;
        bool ok = j < L && (!causal || j <= i) && (!mask || mask[b + j] != 0.0f);
        float sc = -INFINITY;
        if (ok) {
            float d = 0;
            for (int c = 0; c < D; c++)
                d += qs[w * D + c] * ks[lane * (D + 1) + c];
            sc = d * scale;
        }
        float mt = warp_max(sc);
        float mn = fmaxf(m, mt);
        if (mn == -INFINITY)
            continue;                     /* nothing valid yet */
        float p = ok ? __expf(sc - mn) : 0.0f;
        float corr = __expf(m - mn);      /* m = -inf -> 0 */
        l = l * corr + warp_sum(p);
        m = mn;
#pragma unroll
        for (int a = 0; a < AD; a++)
            acc[a] *= corr;
        for (int jj = 0; jj < 32; jj++) {
            float pj = __shfl_sync(0xffffffffu, p, jj);
            if (pj == 0.0f)
                continue;
#pragma unroll
            for (int a = 0; a < AD; a++) {
                int c = lane + 32 * a;
                if (c < D)
                    acc[a] += pj * vs[jj * D + c];
            }
        }
    }
    if (!live)
        return;
    float inv = l > 0 ? 1.0f / l : 0.0f;
#pragma unroll
    for (int a = 0; a < AD; a++) {
        int c = lane + 32 * a;
        if (c < D)
            st(o + (long long)(b + i) * ld_o + h * D + c, acc[a] * inv);
    }
}

/* Sequence of each token row: row_seq[t] = s for t in [off[s], off[s+1]). */
__global__ void k_row_seq(int *row_seq, const int *off, int S)
{
    int s = blockIdx.x;
    if (s >= S)
        return;
    for (int t = off[s] + threadIdx.x; t < off[s + 1]; t += blockDim.x)
        row_seq[t] = s;
}

/* Max-pool of one chunk of logits z [n, V] (rows r0..r0+n of the batch):
 * each thread owns one term v and walks a group of rows, keeping the max of
 * log1p(relu(z + b)) per run of equal sequence and flushing it with an
 * integer atomicMax (values are >= 0, so their bit patterns order like
 * the floats). */
template <typename T>
__global__ void k_splade_max(float *dst, long long ld_d, const T *z, int V, int n, int r0, const int *row_seq,
                             const float *bias, int rows_per)
{
    int v = blockIdx.x * blockDim.x + threadIdx.x;
    if (v >= V)
        return;
    int a = blockIdx.y * rows_per, e = min(n, a + rows_per);
    float bv = bias ? bias[v] : 0.0f, best = 0;
    int cur = -1;
    for (int r = a; r < e; r++) {
        int s = row_seq[r0 + r];
        if (s != cur) {
            if (cur >= 0 && best > 0)
                atomicMax((int *)(dst + (long long)cur * ld_d + v), __float_as_int(best));
            cur = s;
            best = 0;
        }
        float y = ld(z + (long long)r * V + v) + bv;
        best = fmaxf(best, y);
    }
    if (cur >= 0 && best > 0)
        atomicMax((int *)(dst + (long long)cur * ld_d + v), __float_as_int(best));
}

/* dst = log1p(dst): the pool above keeps max relu(z + b); log1p is monotone. */
__global__ void k_log1p(float *dst, long long ld_d, long long R, int V)
{
    long long n = R * V;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        long long r = i / V;
        int c = (int)(i - r * V);
        float *p = dst + r * ld_d + c;
        *p = log1pf(*p);
    }
}

// --- host side --------------------------------------------------------------

static int grid_for(long long n, int threads)
{
    long long g = (n + threads - 1) / threads;
    return (int)(g < 1 ? 1 : (g > 65535 * 8 ? 65535 * 8 : g));
}

static int ensure_scratch(cuda_ctx *cx, size_t n, char *err, size_t errlen)
{
    if (n <= cx->scratch_size)
        return 0;
    if (cx->scratch)
        cudaFree(cx->scratch);
    cx->scratch = nullptr;
    cx->scratch_size = 0;
    CU_TRY(cudaMalloc(&cx->scratch, n));
    cx->scratch_size = n;
    return 0;
}

static cudaError_t ensure_buf(void **p, size_t *size, size_t n)
{
    if (n <= *size)
        return cudaSuccess;
    if (*p)
        cudaFree(*p);
    *p = nullptr;
    *size = 0;
    cudaError_t e = cudaMalloc(p, n);
    if (e == cudaSuccess)
        *size = n;
    return e;
}

template <typename T>
__global__ void k_narrow(T *y, const float *x, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        st(y + i, x[i]);
}

static cudaDataType cuda_type(kn_dtype t)
{
    return t == KN_BF16 ? CUDA_R_16BF : t == KN_F16 ? CUDA_R_16F : CUDA_R_32F;
}

#define LD(t) ((long long)kn_tensor_row_stride(t))

/* dst[M,N] (row-major, ld_d) = x[M,K] (ld_x) . w[N,K]^T (ld_w), in column-major
 * terms dst^T = w^T' x^T: op(A) = A^T with A = w (K x N, ld_w). */
static int gemm(cuda_ctx *cx, void *d, kn_dtype dt, long long ld_d, const void *x, long long ld_x,
                const void *w, long long ld_w, kn_dtype st_, int M, int N, int K, char *err, size_t errlen)
{
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t s = cublasGemmEx(cx->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w, cuda_type(st_), (int)ld_w,
                                    x, cuda_type(st_), (int)ld_x, &zero, d, cuda_type(dt), (int)ld_d,
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errlen, "cublasGemmEx(%d x %d x %d): status %d", M, N, K, (int)s);
        return LX_E_IO;
    }
    return 0;
}

static void lt_plan_drop(lt_plan *p)
{
    if (p->lc) cublasLtMatrixLayoutDestroy(p->lc);
    if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
    if (p->la) cublasLtMatrixLayoutDestroy(p->la);
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    memset(p, 0, sizeof *p);
}

/* Largest power of two (up to 256) dividing the address and the row pitch. */
static unsigned align_of(const void *p, long long ld, size_t esize)
{
    uintptr_t v = (uintptr_t)p | (uintptr_t)(ld * (long long)esize) | 256;
    return (unsigned)(v & (~v + 1));
}

/* Builds the plan for one shape: descriptors and the algorithm cuBLASLt's
 * heuristic ranks first (timing its other candidates gained nothing
 * measurable on BERT's shapes). Returns 0, or 1 when cuBLASLt has none. */
static int lt_plan_make(cuda_ctx *cx, lt_plan *p, const void *bias)
{
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtEpilogue_t epi = (cublasLtEpilogue_t)p->epi;
    cudaDataType st_ = cuda_type((kn_dtype)p->st), dt = cuda_type((kn_dtype)p->dt);
    cudaDataType bt = p->bias16 ? st_ : CUDA_R_32F;
    cublasLtMatmulPreference_t pref = nullptr;
    cublasLtMatmulHeuristicResult_t heur[1];
    int found = 0, rc = 1;
    uint32_t al = p->align;
    if (cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS)
        goto out;
    cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    if (bias) {
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt);
    }
    if (cublasLtMatrixLayoutCreate(&p->la, st_, p->K, p->N, p->ld_w) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&p->lb, st_, p->K, p->M, p->ld_x) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&p->lc, dt, p->N, p->M, p->ld_d) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS)
        goto out;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &cx->lt_ws_size,
                                         sizeof cx->lt_ws_size);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof al);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al, sizeof al);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al, sizeof al);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al, sizeof al);
    if (cublasLtMatmulAlgoGetHeuristic(cx->lt, p->op, p->la, p->lb, p->lc, p->lc, pref, 1, heur, &found) !=
            CUBLAS_STATUS_SUCCESS || found == 0)
        goto out;
    p->algo = heur[0].algo;
    rc = 0;
out:
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    return rc;
}

/* dst = x w^T (+ bias) (relu) in one cuBLASLt call, the bias and relu in the
 * epilogue. Returns 1 when cuBLASLt cannot do it (the caller then runs
 * gemm + k_bias_act). */
static int gemm_lt(cuda_ctx *cx, void *d, kn_dtype dt, long long ld_d, const void *x, long long ld_x,
                   const void *w, long long ld_w, kn_dtype st_, int M, int N, int K, const void *bias, int bias16,
                   int relu)
{
    if (!cx->lt)
        return 1;
    bias16 = bias && bias16;
    int epi = bias ? (relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS)
                   : (relu ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_DEFAULT);
    unsigned al = align_of(d, ld_d, kn_dtype_size(dt));
    unsigned ax = align_of(x, ld_x, kn_dtype_size(st_)), aw = align_of(w, ld_w, kn_dtype_size(st_));
    al = al < ax ? al : ax;
    al = al < aw ? al : aw;
    lt_plan *p = nullptr;
    for (int i = 0; i < cx->n_plans && !p; i++) {
        lt_plan *c = &cx->plans[i];
        if (c->M == M && c->N == N && c->K == K && c->epi == epi && c->st == st_ && c->dt == dt &&
            c->bias16 == bias16 && c->ld_x == ld_x &&
            c->ld_w == ld_w && c->ld_d == ld_d && c->align == al)
            p = c;
    }
    if (!p) {
        if (cx->n_plans < LT_PLANS) {
            p = &cx->plans[cx->n_plans++];
        } else {
            p = &cx->plans[cx->next_evict];
            cx->next_evict = (cx->next_evict + 1) % LT_PLANS;
            lt_plan_drop(p);
        }
        memset(p, 0, sizeof *p);
        p->M = M; p->N = N; p->K = K; p->epi = epi; p->st = st_; p->dt = dt; p->bias16 = bias16;
        p->ld_x = ld_x; p->ld_w = ld_w; p->ld_d = ld_d; p->align = al;
        p->used = lt_plan_make(cx, p, bias) == 0 ? 1 : -1;
    }
    if (p->used < 0)
        return 1;
    if (bias)
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    const float one = 1.0f, zero = 0.0f;
    return cublasLtMatmul(cx->lt, p->op, &one, w, p->la, x, p->lb, &zero, d, p->lc, d, p->lc, &p->algo, cx->lt_ws,
                          cx->lt_ws_size, cx->stream) == CUBLAS_STATUS_SUCCESS ? 0 : 1;
}

static bool aligned16(const void *p, long long ld, size_t esize)
{
    return ((uintptr_t)p % 16) == 0 && (ld * (long long)esize) % 16 == 0;
}

template <typename T>
static int run_typed(cuda_ctx *cx, const kn_op_args *a, char *err, size_t errlen)
{
    cudaStream_t st_ = cx->stream;
    T *y = (T *)a->dst->data;
    long long R = kn_tensor_rows(a->dst);
    int C = (int)kn_tensor_cols(a->dst);
    const kn_tensor *s0 = a->src[0], *s1 = a->src[1], *s2 = a->src[2], *s3 = a->src[3];
    switch (a->op) {
    case KN_OP_MATMUL: {
        int M = (int)kn_tensor_rows(s0), K = (int)kn_tensor_cols(s0), N = (int)kn_tensor_rows(s1);
        if (M == 0 || N == 0)
            return 0;
        const float *bias = s2 ? (const float *)s2->data : nullptr;
        /* the bias / activation pass after a GEMM without them: 16 bytes a step when rows allow */
        auto bias_act = [&](const float *bb, int act) {
            long long n = R * C / 8;
            bool vec = sizeof(T) == 2 && C % 8 == 0 && n < (1ll << 32) - 256 * BA_U && aligned16(y, LD(a->dst), sizeof(T));
            unsigned blocks = (unsigned)((n + 256 * BA_U - 1) / (256 * BA_U));
            if (vec && !bb && act == KN_ACT_GELU && cx->gelu_variant != 1)
                k_gelu_vec<T><<<blocks, 256, 0, st_>>>(y, (unsigned)n, (unsigned)(C / 8), LD(a->dst));
            else if (vec && (!bb || aligned16(bb, 0, 4)))
                k_bias_act_vec<T><<<blocks, 256, 0, st_>>>(y, (unsigned)n, (unsigned)(C / 8), LD(a->dst), bb, act);
            else
                k_bias_act<T><<<(unsigned)(R < 65535 * 16 ? R : 65535 * 16), 256, 0, st_>>>(y, R, C, LD(a->dst), bb, act);
        };
        /* cuBLASLt with the bias in its epilogue, the bias first rounded to
         * the storage type (as a 16-bit checkpoint's own bias is, and as
         * PyTorch's bf16 Linear does): measured on H100 at 32768 tokens,
         * QKV 0.19 ms with a BF16 bias, 0.30 ms with the F32 bias in the
         * epilogue, 0.27 ms with a separate bias pass. GELU stays a pass
         * (cuBLASLt's GELU epilogue is the tanh approximation).
         * LX_CUDA_GEMM (a benchmarking knob): 1 the F32 bias in the
         * epilogue, 2 cublasGemmEx and a bias pass, 3 cuBLASLt and a bias pass. */
        bool epi_bias = bias && (cx->gemm_mode == 0 || cx->gemm_mode == 1);
        bool narrow = epi_bias && cx->gemm_mode == 0;
        const void *ebias = bias;
        if (narrow && sizeof(T) == 2) {
            CU_TRY(ensure_buf(&cx->b16, &cx->b16_size, (size_t)N * sizeof(T)));
            k_narrow<T><<<(N + 255) / 256, 256, 0, st_>>>((T *)cx->b16, bias, N);
            ebias = cx->b16;
        }
        if (sizeof(T) == 2 && cx->gemm_mode != 2 &&
            gemm_lt(cx, y, a->dst->dtype, LD(a->dst), s0->data, LD(s0), s1->data, LD(s1), s0->dtype, M, N, K,
                    epi_bias ? ebias : nullptr, narrow, epi_bias && a->act == KN_ACT_RELU) == 0) {
            if (a->act == KN_ACT_GELU || (!epi_bias && (bias || a->act == KN_ACT_RELU)))
                bias_act(epi_bias ? nullptr : bias, a->act);
            CU_LAUNCHED();
            return 0;
        }
        int rc = gemm(cx, y, a->dst->dtype, LD(a->dst), s0->data, LD(s0), s1->data, LD(s1), s0->dtype, M, N, K, err, errlen);
        if (rc)
            return rc;
        if (bias || a->act != KN_ACT_NONE) {
            bias_act(bias, a->act);
            CU_LAUNCHED();
        }
        return 0;
    }
    case KN_OP_LAYERNORM:
    case KN_OP_RMSNORM:
        if (R == 0)
            return 0;
        if (sizeof(T) == 2 && C % 8 == 0 && C <= 8192 && aligned16(y, LD(a->dst), sizeof(T)) &&
            aligned16(s0->data, LD(s0), sizeof(T)) && (!s1 || aligned16(s1->data, LD(s1), sizeof(T))) &&
            aligned16(s2->data, 0, 4) && (a->op == KN_OP_RMSNORM || aligned16(s3->data, 0, 4))) {
            const float *gp = (const float *)s2->data;
            const float *bp = a->op == KN_OP_LAYERNORM ? (const float *)s3->data : nullptr;
            const T *rp = s1 ? (const T *)s1->data : nullptr;
            int cpl = (C / 8 + 31) / 32, rms = a->op == KN_OP_RMSNORM;
            unsigned grid = (unsigned)((R + 7) / 8);
            if (cpl <= 4 && cx->norm_variant == 0 && R < (1ll << 34)) {
#define NORM_WARP(n) k_norm_warp<T, n><<<grid, 256, 0, st_>>>(y, LD(a->dst), (const T *)s0->data, LD(s0), rp, \
                                                              s1 ? LD(s1) : 0, gp, bp, C, a->eps, rms, R)
                switch (cpl) {
                case 1: NORM_WARP(1); break;
                case 2: NORM_WARP(2); break;
                case 3: NORM_WARP(3); break;
                default: NORM_WARP(4); break;
                }
#undef NORM_WARP
                CU_LAUNCHED();
                return 0;
            }
            int nx = (C / 8 + 31) / 32 * 32, ny = nx >= 256 ? 1 : 256 / nx;
            k_norm_vec<T><<<(unsigned)((R + ny - 1) / ny), dim3(nx, ny), 0, st_>>>(y, LD(a->dst), (const T *)s0->data, LD(s0),
                                                                 s1 ? (const T *)s1->data : nullptr, s1 ? LD(s1) : 0,
                                                                 (const float *)s2->data,
                                                                 a->op == KN_OP_LAYERNORM ? (const float *)s3->data : nullptr,
                                                                 C, a->eps, a->op == KN_OP_RMSNORM, R);
            CU_LAUNCHED();
            return 0;
        }
        if ((size_t)C * 4 > 48 * 1024)
            CU_TRY(cudaFuncSetAttribute(k_norm<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, C * 4));
        k_norm<T><<<(unsigned)R, C >= 512 ? 256 : 128, (size_t)C * 4, st_>>>(y, LD(a->dst), (const T *)s0->data, LD(s0),
                                                                 s1 ? (const T *)s1->data : nullptr, s1 ? LD(s1) : 0,
                                                                 (const float *)s2->data,
                                                                 a->op == KN_OP_LAYERNORM ? (const float *)s3->data : nullptr,
                                                                 C, a->eps, a->op == KN_OP_RMSNORM);
        CU_LAUNCHED();
        return 0;
    case KN_OP_SOFTMAX:
        if (R == 0)
            return 0;
        k_softmax<T><<<(unsigned)R, 256, 0, st_>>>(y, LD(a->dst), (const T *)s0->data, LD(s0), C, a->scale);
        CU_LAUNCHED();
        return 0;
    case KN_OP_GELU:
    case KN_OP_SILU:
    case KN_OP_ADD:
    case KN_OP_SCALE:
        if (R * C == 0)
            return 0;
        k_eltwise<T><<<grid_for(R * C, 256), 256, 0, st_>>>(a->op, y, LD(a->dst), (const T *)s0->data, LD(s0),
                                                             s1 ? s1->data : nullptr, s1 ? LD(s1) : 0,
                                                             s1 ? (int)kn_tensor_rows(s1) : 0, R, C, a->scale);
        CU_LAUNCHED();
        return 0;
    case KN_OP_ROPE:
        if (R == 0)
            return 0;
        k_rope<T><<<grid_for(R * C, 256), 256, 0, st_>>>(y, LD(a->dst), (const T *)s0->data, LD(s0), (const int *)s1->data,
                                                          R, a->n_head, C / a->n_head, a->rot_dims, a->theta);
        CU_LAUNCHED();
        return 0;
    case KN_OP_GET_ROWS:
        if (R == 0)
            return 0;
        k_get_rows<T><<<grid_for(R * C, 256), 256, 0, st_>>>(y, LD(a->dst), (const T *)s0->data, LD(s0), kn_tensor_rows(s0),
                                                              (const int *)s1->data, R, C, a->accumulate);
        CU_LAUNCHED();
        return 0;
    case KN_OP_ATTENTION: {
        int S = (int)a->seq_off->ne[0] - 1, D = C / a->n_head;
        if (R == 0 || S == 0)
            return 0;
        if constexpr (sizeof(T) == 2) if (D == 64 && aligned16(s0->data, LD(s0), 2) && aligned16(s1->data, LD(s1), 2) &&
                                          aligned16(s2->data, LD(s2), 2) && LD(a->dst) % 2 == 0 &&
                                          (uintptr_t)y % 4 == 0) {
            /* LX_CUDA_ATTN (cuda_ctx): the wgmma kernel where it runs, unless
             * a mma.sync one is asked for */
            int av = cx->attn_variant, bf = std::is_same<T, __nv_bfloat16>::value;
            const float *mk = s3 ? (const float *)s3->data : nullptr;
            const int *so = (const int *)a->seq_off->data;
            if (cx->has_wgmma && a->scale > 0 && (av == 0 || av == 10))
                CU_TRY(kn_wgmma_attention(bf, y, LD(a->dst), s0->data, LD(s0), s1->data, LD(s1), s2->data, LD(s2), mk,
                                          so, S, a->n_head, a->n_head / a->n_kv_head, a->max_len, a->scale,
                                          a->causal, st_));
            else
                CU_TRY(kn_mma_attention(bf, y, LD(a->dst), s0->data, LD(s0), s1->data, LD(s1), s2->data, LD(s2), mk,
                                        so, S, a->n_head, a->n_head / a->n_kv_head, a->max_len, a->scale, a->causal,
                                        av == 1 ? 0 : 1, st_));
            return 0;
        }
        size_t smem = (size_t)(32 * (D + 1) + 32 * D + AW * D) * sizeof(float);
        dim3 grid((unsigned)((a->max_len + AW - 1) / AW), (unsigned)a->n_head, (unsigned)S);
        if (smem > 48 * 1024)
            CU_TRY(cudaFuncSetAttribute(k_attention<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        k_attention<T><<<grid, AW * 32, smem, st_>>>(y, LD(a->dst), (const T *)s0->data, LD(s0), (const T *)s1->data, LD(s1),
                                                     (const T *)s2->data, LD(s2), s3 ? (const float *)s3->data : nullptr,
                                                     (const int *)a->seq_off->data, a->n_head, a->n_head / a->n_kv_head, D,
                                                     a->scale, a->causal);
        CU_LAUNCHED();
        return 0;
    }
    default:
        snprintf(err, errlen, "cuda: op %s not handled", kn_op_name(a->op));
        return LX_E_UNSUPPORTED;
    }
}

/* splade_pool: dst F32 [S, V]; h [T, H] and w [V, H] of one type T. */
template <typename T>
static int run_splade(cuda_ctx *cx, const kn_op_args *a, char *err, size_t errlen)
{
    const kn_tensor *h = a->src[0], *w = a->src[1], *b = a->src[2];
    int S = (int)kn_tensor_rows(a->dst), V = (int)kn_tensor_rows(w), H = (int)kn_tensor_cols(h);
    int T_ = (int)kn_tensor_rows(h);
    const int CH = 512;
    /* 16-bit operands with 16-byte rows: the fused kernel, no logits at all */
    bool fused = sizeof(T) == 2 && H % 8 == 0 && aligned16(h->data, LD(h), 2) && aligned16(w->data, LD(w), 2);
    size_t zbytes = fused ? 0 : (((size_t)CH * V * sizeof(T) + 255) & ~(size_t)255);
    int rc = ensure_scratch(cx, zbytes + (size_t)(T_ + 1) * sizeof(int), err, errlen);
    if (rc)
        return rc;
    T *z = (T *)cx->scratch;                                 /* [CH, V] logits of one chunk (unfused) */
    int *row_seq = (int *)((char *)cx->scratch + zbytes);    /* [T] sequence of each row */
    const int *off = (const int *)a->seq_off->data;
    int off_host[2];
    CU_TRY(cudaMemcpyAsync(&off_host[0], off, sizeof(int), cudaMemcpyDeviceToHost, cx->stream));
    CU_TRY(cudaMemcpyAsync(&off_host[1], off + S, sizeof(int), cudaMemcpyDeviceToHost, cx->stream));
    CU_TRY(cudaStreamSynchronize(cx->stream));
    if (off_host[0] < 0 || off_host[1] < off_host[0] || off_host[1] > T_) {
        snprintf(err, errlen, "splade_pool: offsets [%d, %d] outside the %d rows", off_host[0], off_host[1], T_);
        return LX_E_INVAL;
    }
    long long ld_d = LD(a->dst);
    CU_TRY(cudaMemset2DAsync(a->dst->data, (size_t)ld_d * 4, 0, (size_t)V * 4, (size_t)S, cx->stream));
    k_row_seq<<<S, 128, 0, cx->stream>>>(row_seq, off, S);
    CU_LAUNCHED();
    int sv = cx->splade_variant;
    if (fused && cx->has_wgmma && (sv == 0 || sv >= 10))
        CU_TRY(kn_wgmma_splade_max(std::is_same<T, __nv_bfloat16>::value, (float *)a->dst->data, ld_d, h->data,
                                   LD(h), w->data, LD(w), b ? (const float *)b->data : nullptr, row_seq,
                                   off_host[0], off_host[1], V, H, sv >= 10 ? sv - 10 : 0, cx->tmap_encode,
                                   cx->n_sm, cx->stream));
    else if (fused)
        CU_TRY(kn_mma_splade_max(std::is_same<T, __nv_bfloat16>::value, (float *)a->dst->data, ld_d, h->data, LD(h),
                                 w->data, LD(w), b ? (const float *)b->data : nullptr, row_seq, off_host[0],
                                 off_host[1], V, H, sv < 10 ? sv : 0, cx->stream));
    for (int r0 = off_host[0]; !fused && r0 < off_host[1]; r0 += CH) {
        int n = off_host[1] - r0 < CH ? off_host[1] - r0 : CH;
        rc = gemm(cx, z, w->dtype, V, (const char *)h->data + (size_t)r0 * LD(h) * kn_dtype_size(h->dtype), LD(h),
                  w->data, LD(w), w->dtype, n, V, H, err, errlen);
        if (rc)
            return rc;
        const int rows_per = 64;
        dim3 grid((unsigned)((V + 255) / 256), (unsigned)((n + rows_per - 1) / rows_per));
        k_splade_max<T><<<grid, 256, 0, cx->stream>>>((float *)a->dst->data, ld_d, z, V, n, r0, row_seq,
                                                       b ? (const float *)b->data : nullptr, rows_per);
        CU_LAUNCHED();
    }
    k_log1p<<<grid_for((long long)S * V, 256), 256, 0, cx->stream>>>((float *)a->dst->data, ld_d, S, V);
    CU_LAUNCHED();
    return 0;
}

static bool is_vec_ok(const kn_tensor *t) { return !t || (t->dtype == KN_F32 && t->device == KN_DEV_CUDA); }

static bool cuda_supports_op(void *ctx, const kn_op_args *a)
{
    (void)ctx;
    const kn_tensor *d = a->dst, *s0 = a->src[0], *s1 = a->src[1], *s2 = a->src[2], *s3 = a->src[3];
    kn_dtype t = s0->dtype;
    if (t != KN_F32 && t != KN_BF16 && t != KN_F16)
        return false;
    const kn_tensor *all[6] = {d, s0, s1, s2, s3, a->seq_off};
    for (int i = 0; i < 6; i++)
        if (all[i] && all[i]->device != KN_DEV_CUDA)
            return false;
    if (a->op != KN_OP_SPLADE_POOL && d->dtype != t)
        return false;
    switch (a->op) {
    case KN_OP_MATMUL:
        return s1->dtype == t && is_vec_ok(s2) && kn_tensor_row_stride(s0) % 8 == 0 && kn_tensor_row_stride(s1) % 8 == 0;
    case KN_OP_LAYERNORM:
    case KN_OP_RMSNORM:
        return (!s1 || s1->dtype == t) && is_vec_ok(s2) && is_vec_ok(s3);
    case KN_OP_GELU:
        return is_vec_ok(s1);
    case KN_OP_SILU:
    case KN_OP_ADD:
        return !s1 || s1->dtype == t;
    case KN_OP_SOFTMAX:
    case KN_OP_SCALE:
    case KN_OP_ROPE:
    case KN_OP_GET_ROWS:
        return true;
    case KN_OP_ATTENTION:
        return s1->dtype == t && s2->dtype == t && is_vec_ok(s3) && kn_tensor_cols(s0) / a->n_head <= 32 * AD;
    case KN_OP_SPLADE_POOL:
        return d->dtype == KN_F32 && s1->dtype == t && is_vec_ok(s2) && kn_tensor_row_stride(s0) % 8 == 0;
    default:
        return false;
    }
}

static int cuda_run(void *ctx, const kn_op_args *a, char *err, size_t errlen)
{
    cuda_ctx *cx = (cuda_ctx *)ctx;
    kn_dtype t = a->src[0]->dtype;
    if (a->op == KN_OP_SPLADE_POOL) {
        if (t == KN_BF16)
            return run_splade<__nv_bfloat16>(cx, a, err, errlen);
        if (t == KN_F16)
            return run_splade<__half>(cx, a, err, errlen);
        return run_splade<float>(cx, a, err, errlen);
    }
    if (t == KN_BF16)
        return run_typed<__nv_bfloat16>(cx, a, err, errlen);
    if (t == KN_F16)
        return run_typed<__half>(cx, a, err, errlen);
    return run_typed<float>(cx, a, err, errlen);
}

static int cuda_alloc(void *ctx, size_t n, void **p)
{
    (void)ctx;
    return cudaMalloc(p, n) == cudaSuccess ? 0 : LX_E_NOMEM;
}

static void cuda_free(void *ctx, void *p)
{
    (void)ctx;
    cudaFree(p);
}

static int cuda_upload(void *ctx, void *dst, const void *src, size_t n)
{
    cuda_ctx *cx = (cuda_ctx *)ctx;
    if (cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, cx->stream) != cudaSuccess ||
        cudaStreamSynchronize(cx->stream) != cudaSuccess)
        return LX_E_IO;
    return 0;
}

static int cuda_download(void *ctx, void *dst, const void *src, size_t n)
{
    cuda_ctx *cx = (cuda_ctx *)ctx;
    if (cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, cx->stream) != cudaSuccess ||
        cudaStreamSynchronize(cx->stream) != cudaSuccess)
        return LX_E_IO;
    return 0;
}

static void *cuda_host_alloc(void *ctx, size_t n)
{
    void *p = nullptr;
    return cudaHostAlloc(&p, n ? n : 1, cudaHostAllocDefault) == cudaSuccess ? p : nullptr;
}

static void cuda_host_free(void *ctx, void *p) { cudaFreeHost(p); }

static int cuda_sync(void *ctx)
{
    cuda_ctx *cx = (cuda_ctx *)ctx;
    return cudaStreamSynchronize(cx->stream) == cudaSuccess ? 0 : LX_E_IO;
}

static void cuda_close(void *ctx)
{
    cuda_ctx *cx = (cuda_ctx *)ctx;
    if (cx->scratch)
        cudaFree(cx->scratch);
    if (cx->b16)
        cudaFree(cx->b16);
    for (int i = 0; i < cx->n_plans; i++)
        lt_plan_drop(&cx->plans[i]);
    if (cx->lt_ws)
        cudaFree(cx->lt_ws);
    if (cx->lt)
        cublasLtDestroy(cx->lt);
    cublasDestroy(cx->blas);
    cudaStreamDestroy(cx->stream);
    free(cx);
}

/* A kernel-choice variable (cuda_ctx's *_mode / *_variant): 0 when unset. */
static int env_int(const char *name)
{
    const char *v = getenv(name);
    return v ? atoi(v) : 0;
}

extern "C" int kn_cuda_backend_init(struct kn_backend_i *i, void **ctx, const kn_backend_params *p,
                                    char *err, size_t errlen)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n <= p->device) {
        cudaGetLastError();
        snprintf(err, errlen, "cuda: no usable CUDA device (%d found)", n);
        return LX_E_UNSUPPORTED;
    }
    cuda_ctx *cx = (cuda_ctx *)calloc(1, sizeof *cx);
    if (!cx)
        return LX_E_NOMEM;
    cx->device = p->device;
    if (cudaSetDevice(p->device) != cudaSuccess || cudaStreamCreateWithFlags(&cx->stream, cudaStreamNonBlocking) != cudaSuccess) {
        snprintf(err, errlen, "cuda: cannot use device %d", p->device);
        free(cx);
        return LX_E_UNSUPPORTED;
    }
    if (cublasCreate(&cx->blas) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errlen, "cuda: cublasCreate failed");
        cudaStreamDestroy(cx->stream);
        free(cx);
        return LX_E_UNSUPPORTED;
    }
    cublasSetStream(cx->blas, cx->stream);
    /* cuBLASLt for bias epilogues; without it matmul still works (gemm + k_bias_act) */
    cx->lt_ws_size = 32u << 20;
    if (cublasLtCreate(&cx->lt) != CUBLAS_STATUS_SUCCESS || cudaMalloc(&cx->lt_ws, cx->lt_ws_size) != cudaSuccess) {
        if (cx->lt)
            cublasLtDestroy(cx->lt);
        cx->lt = nullptr;
        cx->lt_ws = nullptr;
        cudaGetLastError();
    }
    cudaDeviceGetAttribute(&cx->n_sm, cudaDevAttrMultiProcessorCount, p->device);
    cx->gemm_mode = env_int("LX_CUDA_GEMM");
    cx->splade_variant = env_int("LX_CUDA_SPLADE");
    cx->attn_variant = env_int("LX_CUDA_ATTN");
    cx->norm_variant = env_int("LX_CUDA_NORM");
    cx->gelu_variant = env_int("LX_CUDA_GELU");
    cx->has_wgmma = kn_wgmma_available(cx->stream, &cx->tmap_encode);
    i->name = "cuda";
    i->device = KN_DEV_CUDA;
    i->supports_op = cuda_supports_op;
    i->run = cuda_run;
    i->alloc = cuda_alloc;
    i->free = cuda_free;
    i->upload = cuda_upload;
    i->download = cuda_download;
    i->host_alloc = cuda_host_alloc;
    i->host_free = cuda_host_free;
    i->sync = cuda_sync;
    i->close = cuda_close;
    *ctx = cx;
    return 0;
}
