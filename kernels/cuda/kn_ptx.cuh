/* kn_ptx.cuh: private to kernels/cuda/: the PTX primitives the tensor-core
 * kernels share (kn_mma.cu's mma.sync kernels, kn_wgmma.cu's Hopper ones):
 * mma.sync m16n8k16, ldmatrix, cp.async, packing two floats into one
 * register of 16-bit values, the grouped tile order and the online softmax
 * of the attention kernels. Device functions only; nothing here owns
 * memory.
 */
#ifndef KN_PTX_CUH
#define KN_PTX_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include <type_traits>


template <typename T>
__device__ __forceinline__ void mma16816(float *c, const uint32_t *a, const uint32_t *b)
{
    if constexpr (std::is_same<T, __half>::value)
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    else
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* Two floats as one register of two 16-bit values, the first in the low half. */
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi)
{
    if constexpr (std::is_same<T, __half>::value) {
        __half2 v = __floats2half2_rn(lo, hi);
        return *(uint32_t *)&v;
    } else {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *(uint32_t *)&v;
    }
}

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void ldsm_x4(uint32_t *r, const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t *r, const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

/* 16 bytes global -> shared, asynchronously; zero-filled when !ok (src is
 * then not read but must still be a valid address). */
__device__ __forceinline__ void cp16(void *dst, const void *src, bool ok)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(ok ? 16 : 0));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* The grouped tile order of the GEMM-shaped kernels (tile id -> row tile
 * *rt, column tile *ct of an n_rt x n_ct grid): GR = 16 consecutive row
 * tiles sweep the columns side by side, so a column tile (of the weights)
 * is read from memory once per 16 row tiles and the rest of its reads hit
 * L2. */
__device__ __forceinline__ void grouped_tile(int id, int n_rt, int n_ct, int *rt, int *ct)
{
    const int GR = 16;
    int first = id / (GR * n_ct) * GR, gsz = min(n_rt - first, GR);
    *rt = first + (id % (GR * n_ct)) % gsz;
    *ct = (id % (GR * n_ct)) / gsz;
}

/* 2^x in one MUFU instruction (exp2f adds a denormal fix-up around it);
 * results below 2^-126 flush to 0 and ex2(-inf) is 0. */
__device__ __forceinline__ float ex2_ftz(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// --- attention's online softmax ---------------------------------------------

/* Both attention kernels (kn_mma.cu's mma.sync one, kn_wgmma.cu's) hold a
 * warp's 16 query rows x N keys of S = Q K^T in the accumulator layout of
 * m16n8 tiles, which is wgmma's too: s[4n + e] is row g, key 8n + 2t + e,
 * s[4n + 2 + e] row g + 8 (g = lane / 4, t = lane % 4). The helpers below
 * work on that layout. */

/* Keys that may not be attended to -inf: at or past L, masked (mask[j] == 0,
 * mask already offset to the sequence) or, causal, after the query row
 * (qi0 for row g, qi1 for row g + 8). j0: the tile's first key. */
template <int N>
__device__ __forceinline__ void attn_mask(float *s, int j0, int L, const float *mask, int causal, int qi0, int qi1,
                                          int t)
{
#pragma unroll
    for (int n = 0; n < N / 8; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            int j = j0 + n * 8 + 2 * t + e;
            bool ok = j < L && (!mask || mask[j] != 0.0f);
            if (!(ok && (!causal || j <= qi0)))
                s[4 * n + e] = -INFINITY;
            if (!(ok && (!causal || j <= qi1)))
                s[4 * n + 2 + e] = -INFINITY;
        }
}

/* The largest of v[0..K) (K a power of two) by a tree: log2 K dependent
 * steps instead of K. */
template <int K>
__device__ __forceinline__ float tree_max(const float *v)
{
    if constexpr (K == 1)
        return v[0];
    else
        return fmaxf(tree_max<K / 2>(v), tree_max<K / 2>(v + K / 2));
}
template <int K>
__device__ __forceinline__ float tree_sum(const float *v)
{
    if constexpr (K == 1)
        return v[0];
    else
        return tree_sum<K / 2>(v) + tree_sum<K / 2>(v + K / 2);
}

/* One step of the online softmax over an S tile s (raw Q K^T, forbidden
 * keys at -inf) of N keys: updates the running row maxima m[2] (raw
 * units), this thread's share of the row sums l[2] (the quad's four shares
 * are added at the end), rescales the output accumulator o[32] (the same
 * layout, 64 columns) and leaves P = 2^(sl2 (s - m)), rounded to T, in pa
 * as the A fragments of the P V product (pa[kk]: keys 16 kk ..). sl2 =
 * scale log2(e) must be > 0, so the max of the raw scores is the max of
 * the scaled ones and scaling and shifting are one FFMA. */
template <typename T, int N>
__device__ __forceinline__ void attn_softmax(const float *s, uint32_t (*pa)[4], float *m, float *l, float *o,
                                             float sl2)
{
    float v0[N / 4], v1[N / 4];
#pragma unroll
    for (int n = 0; n < N / 8; n++) {
        v0[2 * n] = s[4 * n];
        v0[2 * n + 1] = s[4 * n + 1];
        v1[2 * n] = s[4 * n + 2];
        v1[2 * n + 1] = s[4 * n + 3];
    }
    float mt0 = tree_max<N / 4>(v0), mt1 = tree_max<N / 4>(v1);
    mt0 = fmaxf(mt0, __shfl_xor_sync(0xffffffffu, mt0, 1));
    mt1 = fmaxf(mt1, __shfl_xor_sync(0xffffffffu, mt1, 1));
    mt0 = fmaxf(mt0, __shfl_xor_sync(0xffffffffu, mt0, 2));
    mt1 = fmaxf(mt1, __shfl_xor_sync(0xffffffffu, mt1, 2));
    float mn0 = fmaxf(m[0], mt0), mn1 = fmaxf(m[1], mt1);
    /* a row with nothing valid yet keeps max -inf: shift by 0 so all its
     * p (and corr) are 0 */
    float sh0 = mn0 == -INFINITY ? 0.0f : mn0 * sl2, sh1 = mn1 == -INFINITY ? 0.0f : mn1 * sl2;
    float corr0 = ex2_ftz(m[0] * sl2 - sh0), corr1 = ex2_ftz(m[1] * sl2 - sh1);
    m[0] = mn0;
    m[1] = mn1;
#pragma unroll
    for (int n = 0; n < N / 8; n++) {
        float p0 = ex2_ftz(fmaf(s[4 * n], sl2, -sh0)), p1 = ex2_ftz(fmaf(s[4 * n + 1], sl2, -sh0));
        float p2 = ex2_ftz(fmaf(s[4 * n + 2], sl2, -sh1)), p3 = ex2_ftz(fmaf(s[4 * n + 3], sl2, -sh1));
        v0[2 * n] = p0;
        v0[2 * n + 1] = p1;
        v1[2 * n] = p2;
        v1[2 * n + 1] = p3;
        pa[n >> 1][(n & 1) * 2 + 0] = pack2<T>(p0, p1);
        pa[n >> 1][(n & 1) * 2 + 1] = pack2<T>(p2, p3);
    }
    l[0] = l[0] * corr0 + tree_sum<N / 4>(v0);
    l[1] = l[1] * corr1 + tree_sum<N / 4>(v1);
#pragma unroll
    for (int n = 0; n < 8; n++) {
        o[4 * n] *= corr0;
        o[4 * n + 1] *= corr0;
        o[4 * n + 2] *= corr1;
        o[4 * n + 3] *= corr1;
    }
}

/* The end of the online softmax: o / l for this thread's two rows (qi0,
 * qi1; written when < L) into orow (row 0 of the output at this thread's
 * first column, 2t), ld_o elements apart. */
template <typename T>
__device__ __forceinline__ void attn_store(T *orow, long long ld_o, const float *o, float *l, int qi0, int qi1,
                                           int L)
{
    l[0] += __shfl_xor_sync(0xffffffffu, l[0], 1);
    l[0] += __shfl_xor_sync(0xffffffffu, l[0], 2);
    l[1] += __shfl_xor_sync(0xffffffffu, l[1], 1);
    l[1] += __shfl_xor_sync(0xffffffffu, l[1], 2);
    float inv0 = l[0] > 0 ? 1.0f / l[0] : 0.0f, inv1 = l[1] > 0 ? 1.0f / l[1] : 0.0f;
#pragma unroll
    for (int n = 0; n < 8; n++) {
        if (qi0 < L)
            *(uint32_t *)(orow + (long long)qi0 * ld_o + n * 8) = pack2<T>(o[4 * n] * inv0, o[4 * n + 1] * inv0);
        if (qi1 < L)
            *(uint32_t *)(orow + (long long)qi1 * ld_o + n * 8) = pack2<T>(o[4 * n + 2] * inv1, o[4 * n + 3] * inv1);
    }
}

#endif
