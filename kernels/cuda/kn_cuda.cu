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
 *   matmul       cublasGemmEx (row-major trick: C^T = W X^T), then a fused
 *                bias + activation pass
 *   layernorm    one block per row, two-pass mean/variance, residual fused;
 *   rmsnorm      dst may alias src0 or the residual
 *   softmax      one block per row
 *   elementwise  gelu (+bias), silu (*gate), add (+broadcast row), scale
 *   attention    flash-style online softmax, one warp per query row, keys
 *                and values staged through shared memory 32 at a time;
 *                packed variable-length sequences, causal, grouped-query,
 *                key mask; never touches another sequence's tokens
 *   rope, get_rows
 *   splade_pool  GEMM over chunks of 512 token rows whose [512, V] logits
 *                stay in L2, then a max-pool kernel doing
 *                log1p(relu(z + b)) and an integer atomicMax per
 *                (sequence, term); see splade_pool below
 */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define _Noreturn [[noreturn]]
extern "C" {
#include "../kernels_impl.h"
}
#undef _Noreturn

struct cuda_ctx {
    int device;
    cublasHandle_t blas;
    cublasLtHandle_t lt;       /* GEMMs with the bias fused (epilogue) */
    void *lt_ws;               /* cuBLASLt workspace */
    size_t lt_ws_size;
    cudaStream_t stream;
    void *scratch;             /* grow-only device scratch (splade logits, maps) */
    size_t scratch_size;
    int n_sm;
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

__device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

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

/* Attention on tensor cores for 16-bit types and head_dim 64 (BERT-base,
 * most encoders): flash-attention style. A block of 4 warps takes 64 query
 * rows of one (sequence, head), 16 per warp; K and V pass through shared
 * memory 64 keys at a time. Per tile each warp computes S = Q K^T with WMMA
 * (16x16x16, F32 accumulate), runs the online softmax on S in shared memory
 * (two lanes per row), writes P in the storage type, rescales its O rows and
 * adds P V with WMMA. O lives in shared memory as F32 between tiles since a
 * WMMA fragment's element-to-row map is opaque. */
namespace wm = nvcuda::wmma;
enum { FA_Q = 64, FA_K = 64, FA_D = 64, FA_LDH = FA_D + 8, FA_LDF = FA_K + 4 };

template <typename T>
__global__ void __launch_bounds__(128) k_attention_tc(T *o, long long ld_o, const T *q, long long ld_q, const T *k,
                                                       long long ld_k, const T *v, long long ld_v, const float *mask,
                                                       const int *seq_off, int group, float scale, int causal)
{
    extern __shared__ __align__(16) unsigned char fa_sm[];
    T *Qs = (T *)fa_sm;                               /* [64][LDH] */
    T *Ks = Qs + FA_Q * FA_LDH;                       /* [64][LDH] */
    T *Vs = Ks + FA_K * FA_LDH;                       /* [64][LDH] */
    T *Ps = Vs + FA_K * FA_LDH;                       /* [4][16][LDH] */
    float *Ss = (float *)(Ps + 4 * 16 * FA_LDH);      /* [4][16][LDF] */
    float *Os = Ss + 4 * 16 * FA_LDF;                 /* [4][16][LDF] */
    int s = blockIdx.z, h = blockIdx.y, kh = h / group;
    int b = seq_off[s], L = seq_off[s + 1] - b;
    int i0 = blockIdx.x * FA_Q;
    if (i0 >= L)
        return;
    int tid = threadIdx.x, w = tid >> 5, lane = tid & 31;
    /* Q tile, zero past the sequence; 8 elements (16 bytes) per load */
    for (int e = tid; e < FA_Q * FA_D / 8; e += 128) {
        int r = e / (FA_D / 8), c = (e % (FA_D / 8)) * 8;
        uint4 val = make_uint4(0, 0, 0, 0);
        if (i0 + r < L)
            val = *(const uint4 *)(q + (long long)(b + i0 + r) * ld_q + h * FA_D + c);
        *(uint4 *)(Qs + r * FA_LDH + c) = val;
    }
    float *S = Ss + w * 16 * FA_LDF, *O = Os + w * 16 * FA_LDF;
    T *P = Ps + w * 16 * FA_LDH;
    for (int e = lane; e < 16 * FA_D; e += 32)
        O[(e / FA_D) * FA_LDF + e % FA_D] = 0.0f;
    /* lane owns row lane/2 of the warp's 16, columns (lane%2)*32 .. +32 */
    int row = lane >> 1, c0 = (lane & 1) * 32, qi = i0 + w * 16 + row;
    float m = -INFINITY, l = 0;
    int last = min(L, i0 + FA_Q);
    int jend = causal ? last : L;
    __syncthreads();
    wm::fragment<wm::matrix_a, 16, 16, 16, T, wm::row_major> qf[FA_D / 16];
#pragma unroll
    for (int kk = 0; kk < FA_D / 16; kk++)
        wm::load_matrix_sync(qf[kk], Qs + (w * 16) * FA_LDH + kk * 16, FA_LDH);
    for (int j0 = 0; j0 < jend; j0 += FA_K) {
        __syncthreads();
        for (int e = tid; e < FA_K * FA_D / 8; e += 128) {
            int r = e / (FA_D / 8), c = (e % (FA_D / 8)) * 8;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
            if (j0 + r < L) {
                kv = *(const uint4 *)(k + (long long)(b + j0 + r) * ld_k + kh * FA_D + c);
                vv = *(const uint4 *)(v + (long long)(b + j0 + r) * ld_v + kh * FA_D + c);
            }
            *(uint4 *)(Ks + r * FA_LDH + c) = kv;
            *(uint4 *)(Vs + r * FA_LDH + c) = vv;
        }
        __syncthreads();
        /* S[16, 64] = Q_w K^T */
#pragma unroll
        for (int n = 0; n < FA_K / 16; n++) {
            wm::fragment<wm::accumulator, 16, 16, 16, float> sf;
            wm::fill_fragment(sf, 0.0f);
#pragma unroll
            for (int kk = 0; kk < FA_D / 16; kk++) {
                wm::fragment<wm::matrix_b, 16, 16, 16, T, wm::col_major> kf;
                wm::load_matrix_sync(kf, Ks + (n * 16) * FA_LDH + kk * 16, FA_LDH);
                wm::mma_sync(sf, qf[kk], kf, sf);
            }
            wm::store_matrix_sync(S + n * 16, sf, FA_LDF, wm::mem_row_major);
        }
        __syncwarp();
        /* online softmax on this lane's half row */
        float *sr = S + row * FA_LDF + c0;
        float mt = -INFINITY;
        for (int c = 0; c < 32; c++) {
            int j = j0 + c0 + c;
            bool ok = j < L && (!causal || j <= qi) && (!mask || mask[b + j] != 0.0f);
            float x = ok ? sr[c] * scale : -INFINITY;
            sr[c] = x;
            mt = fmaxf(mt, x);
        }
        mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
        float mn = fmaxf(m, mt);
        float corr = mn == -INFINITY ? 1.0f : __expf(m - mn);
        float ps = 0;
        T *pr = P + row * FA_LDH + c0;
        for (int c = 0; c < 32; c++) {
            float p = mn == -INFINITY || sr[c] == -INFINITY ? 0.0f : __expf(sr[c] - mn);
            st(pr + c, p);
            ps += ld(pr + c);        /* sum what P V will use: the rounded p */
        }
        ps += __shfl_xor_sync(0xffffffffu, ps, 1);
        l = l * corr + ps;
        m = mn;
        float *orow = O + row * FA_LDF + c0;
        for (int c = 0; c < 32; c++)
            orow[c] *= corr;
        __syncwarp();
        /* O[16, 64] += P V */
#pragma unroll
        for (int n = 0; n < FA_D / 16; n++) {
            wm::fragment<wm::accumulator, 16, 16, 16, float> of;
            wm::load_matrix_sync(of, O + n * 16, FA_LDF, wm::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < FA_K / 16; kk++) {
                wm::fragment<wm::matrix_a, 16, 16, 16, T, wm::row_major> pf;
                wm::fragment<wm::matrix_b, 16, 16, 16, T, wm::row_major> vf;
                wm::load_matrix_sync(pf, P + kk * 16, FA_LDH);
                wm::load_matrix_sync(vf, Vs + (kk * 16) * FA_LDH + n * 16, FA_LDH);
                wm::mma_sync(of, pf, vf, of);
            }
            wm::store_matrix_sync(O + n * 16, of, FA_LDF, wm::mem_row_major);
        }
        __syncwarp();
    }
    if (qi < L) {
        float inv = l > 0 ? 1.0f / l : 0.0f;
        const float *orow = O + row * FA_LDF + c0;
        T *dst = o + (long long)(b + qi) * ld_o + h * FA_D + c0;
        for (int c = 0; c < 32; c++)
            st(dst + c, orow[c] * inv);
    }
}

static size_t fa_smem(size_t tsize)
{
    return (size_t)(FA_Q + 2 * FA_K + 4 * 16) * FA_LDH * tsize + (size_t)2 * 4 * 16 * FA_LDF * sizeof(float);
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

/* dst = x w^T + bias (+ relu) in one cuBLASLt call with the bias in the
 * epilogue, saving a read and write of dst. Returns 1 when cuBLASLt has no
 * algorithm for it (the caller then runs gemm + k_bias_act). */
static int gemm_lt_bias(cuda_ctx *cx, void *d, kn_dtype dt, long long ld_d, const void *x, long long ld_x,
                        const void *w, long long ld_w, kn_dtype st_, int M, int N, int K, const float *bias, int relu)
{
    if (!cx->lt)
        return 1;
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    int rc = 1;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtEpilogue_t epi = relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
    cudaDataType bt = CUDA_R_32F;
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    const float one = 1.0f, zero = 0.0f;
    if (cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS)
        goto out;
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt);
    if (cublasLtMatrixLayoutCreate(&la, cuda_type(st_), K, N, ld_w) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&lb, cuda_type(st_), K, M, ld_x) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&lc, cuda_type(dt), N, M, ld_d) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS)
        goto out;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &cx->lt_ws_size,
                                         sizeof cx->lt_ws_size);
    if (cublasLtMatmulAlgoGetHeuristic(cx->lt, op, la, lb, lc, lc, pref, 1, &heur, &found) != CUBLAS_STATUS_SUCCESS ||
        found == 0)
        goto out;
    if (cublasLtMatmul(cx->lt, op, &one, w, la, x, lb, &zero, d, lc, d, lc, &heur.algo, cx->lt_ws, cx->lt_ws_size,
                       cx->stream) == CUBLAS_STATUS_SUCCESS)
        rc = 0;
out:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return rc;
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
        if (s2 && a->act != KN_ACT_GELU && sizeof(T) == 2 &&
            gemm_lt_bias(cx, y, a->dst->dtype, LD(a->dst), s0->data, LD(s0), s1->data, LD(s1), s0->dtype, M, N, K,
                         (const float *)s2->data, a->act == KN_ACT_RELU) == 0) {
            CU_LAUNCHED();
            return 0;
        }
        int rc = gemm(cx, y, a->dst->dtype, LD(a->dst), s0->data, LD(s0), s1->data, LD(s1), s0->dtype, M, N, K, err, errlen);
        if (rc)
            return rc;
        if (s2 || a->act != KN_ACT_NONE) {
            k_bias_act<T><<<(unsigned)(R < 65535 * 16 ? R : 65535 * 16), 256, 0, st_>>>(y, R, C, LD(a->dst), s2 ? (const float *)s2->data : nullptr, a->act);
            CU_LAUNCHED();
        }
        return 0;
    }
    case KN_OP_LAYERNORM:
    case KN_OP_RMSNORM:
        if (R == 0)
            return 0;
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
        if constexpr (sizeof(T) == 2) if (D == FA_D && LD(s0) % 8 == 0 && LD(s1) % 8 == 0 && LD(s2) % 8 == 0 &&
            ((uintptr_t)s0->data | (uintptr_t)s1->data | (uintptr_t)s2->data) % 16 == 0) {
            size_t smem = fa_smem(sizeof(T));
            CU_TRY(cudaFuncSetAttribute(k_attention_tc<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
            dim3 grid((unsigned)((a->max_len + FA_Q - 1) / FA_Q), (unsigned)a->n_head, (unsigned)S);
            k_attention_tc<T><<<grid, 128, smem, st_>>>(y, LD(a->dst), (const T *)s0->data, LD(s0), (const T *)s1->data,
                                                        LD(s1), (const T *)s2->data, LD(s2),
                                                        s3 ? (const float *)s3->data : nullptr,
                                                        (const int *)a->seq_off->data, a->n_head / a->n_kv_head,
                                                        a->scale, a->causal);
            CU_LAUNCHED();
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
    size_t need = (size_t)CH * V * sizeof(T) + (size_t)(T_ + 1) * sizeof(int) + 256;
    int rc = ensure_scratch(cx, need, err, errlen);
    if (rc)
        return rc;
    T *z = (T *)cx->scratch;
    int *row_seq = (int *)((char *)cx->scratch + (((size_t)CH * V * sizeof(T) + 255) & ~(size_t)255));
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
    for (int r0 = off_host[0]; r0 < off_host[1]; r0 += CH) {
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
    if (cx->lt_ws)
        cudaFree(cx->lt_ws);
    if (cx->lt)
        cublasLtDestroy(cx->lt);
    cublasDestroy(cx->blas);
    cudaStreamDestroy(cx->stream);
    free(cx);
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
    i->name = "cuda";
    i->device = KN_DEV_CUDA;
    i->supports_op = cuda_supports_op;
    i->run = cuda_run;
    i->alloc = cuda_alloc;
    i->free = cuda_free;
    i->upload = cuda_upload;
    i->download = cuda_download;
    i->sync = cuda_sync;
    i->close = cuda_close;
    *ctx = cx;
    return 0;
}
