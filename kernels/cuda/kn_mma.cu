/* kn_mma.cu: tensor-core kernels written against mma.sync directly.
 *
 * Two kernels where cuBLAS alone cannot do the job:
 *
 *   attention    flash-attention-2 style for head_dim 64. A block of 8 warps
 *                (4 for sequences up to 64) owns 128 query rows of one
 *                (sequence, head), 16 per warp.
 *                K and V tiles of 64 keys stream through shared memory with
 *                cp.async, double-buffered. S = Q K^T, the online softmax,
 *                P (rounded to the storage type) and O += P V all stay in
 *                registers: an m16n8k16 accumulator's layout (row g and
 *                g+8, columns 2t and 2t+1 of each 8-wide tile) is exactly
 *                the A operand's layout of the next product, so P never
 *                touches shared memory. Sequences are packed without
 *                padding; keys past the sequence are zero-filled and masked.
 *                On Hopper kn_wgmma.cu's version of it runs instead.
 *
 *   splade_max   the masked-LM decoder GEMM z = h W^T + b fused with
 *                relu and the max over each sequence's rows: a 128 x 256
 *                tile of z lives only in registers (8 warps of 64 x 64),
 *                is reduced over its rows with shuffles and leaves the SM
 *                as one atomicMax per (sequence, column). The [T, 30522]
 *                logits never reach memory.
 *
 * Fragment layout of mma.m16n8k16 (g = lane / 4, t = lane % 4):
 *   A 16x16: a0 (g, 2t..2t+1)  a1 (g+8, 2t..)  a2 (g, 2t+8..)  a3 (g+8, 2t+8..)
 *   B 16x8:  b0 (k 2t..2t+1, n g)  b1 (k 2t+8.., n g)
 *   C 16x8:  c0 c1 (g, 2t 2t+1)  c2 c3 (g+8, 2t 2t+1)
 * Shared-memory rows are padded by 8 elements (16 bytes) so that the 8 row
 * addresses of an ldmatrix, or the 8 groups of a fragment load, fall in
 * distinct banks.
 */
#include "kn_mma.h"
#include "kn_ptx.cuh"

// --- attention --------------------------------------------------------------

enum { FK = 64, FD = 64, FLD = FD + 8 };

/* NW warps, 16 query rows each: a block owns FQ = 16 NW query rows of one
 * (sequence, head) and streams all its keys; 8 warps (128 queries) halve
 * the K/V traffic from L2 against 4, for sequences long enough to use them.
 * Q's fragments come straight from global memory into registers (each is
 * read once), so shared memory holds only the two K/V buffers (36 KB).
 * FAST: the softmax of kn_ptx.cuh (max of the raw scores, scale and shift
 * in one FFMA, ex2 without the denormal fix-up, tree reductions; needs
 * scale > 0) instead of the first version's, kept for comparison. */
template <typename T, int NW, bool FAST>
__global__ void __launch_bounds__(NW * 32, 16 / NW) k_attn_mma(T *o, long long ld_o, const T *q, long long ld_q, const T *k,
                                                       long long ld_k, const T *v, long long ld_v, const float *mask,
                                                       const int *seq_off, int group, float scale_log2, int causal)
{
    constexpr int FQ = 16 * NW, NT = 32 * NW;
    __shared__ __align__(16) T Ks[2][FK * FLD];       /* [2 buffers][64 keys][64 + 8] */
    __shared__ __align__(16) T Vs[2][FK * FLD];
    int s = blockIdx.z, h = blockIdx.y, kh = h / group;
    int b = seq_off[s], L = seq_off[s + 1] - b;
    int i0 = blockIdx.x * FQ;
    if (i0 >= L)
        return;
    int tid = threadIdx.x, w = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const T *qb = q + (long long)b * ld_q + h * FD;
    const T *kb = k + (long long)b * ld_k + kh * FD;
    const T *vb = v + (long long)b * ld_v + kh * FD;
    /* 64 rows x 8 chunks of 16 bytes per tile: this thread's rows cr + RS i, chunk cc */
    constexpr int RS = NT / 8;
    const int cr = tid >> 3, cc = (tid & 7) * 8;
    int jend = causal ? min(L, i0 + FQ) : L;
    int n_tiles = (jend + FK - 1) / FK;
    auto load_kv = [&](int tile, int buf) {
        int j0 = tile * FK;
#pragma unroll
        for (int i = 0; i < FK / RS; i++) {
            int r = cr + RS * i;
            bool ok = j0 + r < L;
            cp16(&Ks[buf][r * FLD + cc], ok ? kb + (long long)(j0 + r) * ld_k + cc : kb, ok);
            cp16(&Vs[buf][r * FLD + cc], ok ? vb + (long long)(j0 + r) * ld_v + cc : vb, ok);
        }
        cp_commit();
    };
    load_kv(0, 0);
    int qi0 = i0 + w * 16 + g, qi1 = qi0 + 8;      /* this thread's two query rows */
    /* a warp whose 16 rows are all past the sequence only helps load K/V */
    bool active = i0 + w * 16 < L;
    /* causal: this warp's last query row bounds the keys it needs */
    int wend = causal ? min(L, i0 + w * 16 + 16) : L;
    uint32_t qa[FD / 16][4];
    {
        const T *q0 = qb + (long long)min(qi0, L - 1) * ld_q + 2 * t;
        const T *q1 = qb + (long long)min(qi1, L - 1) * ld_q + 2 * t;
#pragma unroll
        for (int kk = 0; kk < FD / 16; kk++) {
            qa[kk][0] = *(const uint32_t *)(q0 + kk * 16);
            qa[kk][1] = *(const uint32_t *)(q1 + kk * 16);
            qa[kk][2] = *(const uint32_t *)(q0 + kk * 16 + 8);
            qa[kk][3] = *(const uint32_t *)(q1 + kk * 16 + 8);
        }
    }
    float oacc[FD / 8][4];
#pragma unroll
    for (int n = 0; n < FD / 8; n++)
        oacc[n][0] = oacc[n][1] = oacc[n][2] = oacc[n][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0, 0};
    for (int it = 0; it < n_tiles; it++) {
        int buf = it & 1;
        if (it + 1 < n_tiles) {
            load_kv(it + 1, buf ^ 1);
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        int j0 = it * FK;
        if (active && j0 < wend) {
            const T *K_ = Ks[buf], *V_ = Vs[buf];
            /* S[16 x 64] = Q K^T: 8 tiles of 8 keys. K's B fragments by
             * ldmatrix, two 16-wide k steps per x4: lane l addresses row
             * l % 8 of matrix l / 8 = (k step, low or high 8 columns). */
            float sc[FK / 8][4];
            const T *kl = K_ + (lane & 7) * FLD + (lane >> 4) * 16 + ((lane >> 3) & 1) * 8;
#pragma unroll
            for (int n = 0; n < FK / 8; n++) {
                sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
#pragma unroll
                for (int kk = 0; kk < FD / 16; kk += 2) {
                    uint32_t kb4[4];
                    ldsm_x4(kb4, kl + n * 8 * FLD + kk * 16);
                    mma16816<T>(sc[n], qa[kk], kb4);
                    mma16816<T>(sc[n], qa[kk + 1], kb4 + 2);
                }
            }
            uint32_t pa[FK / 16][4];
            if constexpr (FAST) {
                /* a tile wholly inside the sequence, unmasked and not causal
                 * needs no checks */
                if (mask || causal || j0 + FK > L)
                    attn_mask<FK>(&sc[0][0], j0, L, mask ? mask + b : nullptr, causal, qi0, qi1, t);
                attn_softmax<T, FK>(&sc[0][0], pa, m, l, &oacc[0][0], scale_log2);
            } else {
                /* mask, scale (log2 domain), row max over the quad; a tile wholly
                 * inside the sequence, unmasked and not causal needs no checks */
                float mt0 = -INFINITY, mt1 = -INFINITY;
                if (!mask && !causal && j0 + FK <= L) {
#pragma unroll
                    for (int n = 0; n < FK / 8; n++)
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            sc[n][e] *= scale_log2;
                            sc[n][2 + e] *= scale_log2;
                            mt0 = fmaxf(mt0, sc[n][e]);
                            mt1 = fmaxf(mt1, sc[n][2 + e]);
                        }
                } else {
#pragma unroll
                    for (int n = 0; n < FK / 8; n++) {
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            int j = j0 + n * 8 + 2 * t + e;
                            bool ok = j < L && (!mask || mask[b + j] != 0.0f);
                            bool ok0 = ok && (!causal || j <= qi0), ok1 = ok && (!causal || j <= qi1);
                            sc[n][e] = ok0 ? sc[n][e] * scale_log2 : -INFINITY;
                            sc[n][2 + e] = ok1 ? sc[n][2 + e] * scale_log2 : -INFINITY;
                            mt0 = fmaxf(mt0, sc[n][e]);
                            mt1 = fmaxf(mt1, sc[n][2 + e]);
                        }
                    }
                }
                mt0 = fmaxf(mt0, __shfl_xor_sync(0xffffffffu, mt0, 1));
                mt0 = fmaxf(mt0, __shfl_xor_sync(0xffffffffu, mt0, 2));
                mt1 = fmaxf(mt1, __shfl_xor_sync(0xffffffffu, mt1, 1));
                mt1 = fmaxf(mt1, __shfl_xor_sync(0xffffffffu, mt1, 2));
                float mn0 = fmaxf(m[0], mt0), mn1 = fmaxf(m[1], mt1);
                /* a row with nothing valid yet keeps max -inf: use 0 so exp2 gives 0s */
                float base0 = mn0 == -INFINITY ? 0.0f : mn0, base1 = mn1 == -INFINITY ? 0.0f : mn1;
                float corr0 = exp2f(m[0] - base0), corr1 = exp2f(m[1] - base1);
                m[0] = mn0;
                m[1] = mn1;
                float ps0 = 0, ps1 = 0;
#pragma unroll
                for (int n = 0; n < FK / 8; n++) {
                    float p0 = exp2f(sc[n][0] - base0), p1 = exp2f(sc[n][1] - base0);
                    float p2 = exp2f(sc[n][2] - base1), p3 = exp2f(sc[n][3] - base1);
                    ps0 += p0 + p1;
                    ps1 += p2 + p3;
                    pa[n >> 1][(n & 1) * 2 + 0] = pack2<T>(p0, p1);
                    pa[n >> 1][(n & 1) * 2 + 1] = pack2<T>(p2, p3);
                }
                l[0] = l[0] * corr0 + ps0;
                l[1] = l[1] * corr1 + ps1;
#pragma unroll
                for (int n = 0; n < FD / 8; n++) {
                    oacc[n][0] *= corr0;
                    oacc[n][1] *= corr0;
                    oacc[n][2] *= corr1;
                    oacc[n][3] *= corr1;
                }
            }
            /* O[16 x 64] += P V: V's B fragments through ldmatrix.trans, two
             * 8-wide d tiles per x4 */
#pragma unroll
            for (int kk = 0; kk < FK / 16; kk++) {
#pragma unroll
                for (int dn = 0; dn < FD / 8; dn += 2) {
                    uint32_t vb2[4];
                    int r = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, c = dn * 8 + (lane >> 4) * 8;
                    ldsm_x4_t(vb2, V_ + r * FLD + c);
                    mma16816<T>(oacc[dn], pa[kk], vb2);
                    mma16816<T>(oacc[dn + 1], pa[kk], vb2 + 2);
                }
            }
        }
        __syncthreads();       /* this buffer is refilled two tiles on */
    }
    attn_store<T>(o + (long long)b * ld_o + h * FD + 2 * t, ld_o, &oacc[0][0], l, qi0, qi1, L);
}

/* 8 warps (128 queries a block) once sequences pass 64 tokens, else 4. */
template <typename T, bool FAST>
static cudaError_t attn_launch(T *o, long long ld_o, const T *q, long long ld_q, const T *k, long long ld_k,
                               const T *v, long long ld_v, const float *mask, const int *seq_off, int n_seq,
                               int n_head, int group, int max_len, float sl2, int causal, cudaStream_t st)
{
    if (max_len > 64) {
        dim3 grid((unsigned)((max_len + 127) / 128), (unsigned)n_head, (unsigned)n_seq);
        k_attn_mma<T, 8, FAST><<<grid, 256, 0, st>>>(o, ld_o, q, ld_q, k, ld_k, v, ld_v, mask, seq_off, group, sl2,
                                                     causal);
    } else {
        dim3 grid((unsigned)((max_len + 63) / 64), (unsigned)n_head, (unsigned)n_seq);
        k_attn_mma<T, 4, FAST><<<grid, 128, 0, st>>>(o, ld_o, q, ld_q, k, ld_k, v, ld_v, mask, seq_off, group, sl2,
                                                     causal);
    }
    return cudaGetLastError();
}

template <typename T>
static cudaError_t attn_variant(int variant, T *o, long long ld_o, const T *q, long long ld_q, const T *k,
                                long long ld_k, const T *v, long long ld_v, const float *mask, const int *seq_off,
                                int n_seq, int n_head, int group, int max_len, float sl2, int causal, cudaStream_t st)
{
    if (variant == 1 && sl2 > 0)
        return attn_launch<T, true>(o, ld_o, q, ld_q, k, ld_k, v, ld_v, mask, seq_off, n_seq, n_head, group, max_len,
                                    sl2, causal, st);
    return attn_launch<T, false>(o, ld_o, q, ld_q, k, ld_k, v, ld_v, mask, seq_off, n_seq, n_head, group, max_len,
                                 sl2, causal, st);
}

cudaError_t kn_mma_attention(int is_bf16, void *o, long long ld_o, const void *q, long long ld_q,
                             const void *k, long long ld_k, const void *v, long long ld_v, const float *mask,
                             const int *seq_off, int n_seq, int n_head, int group, int max_len, float scale,
                             int causal, int variant, cudaStream_t st)
{
    float sl2 = scale * 1.4426950408889634f;
    if (is_bf16)
        return attn_variant<__nv_bfloat16>(variant, (__nv_bfloat16 *)o, ld_o, (const __nv_bfloat16 *)q, ld_q,
                                           (const __nv_bfloat16 *)k, ld_k, (const __nv_bfloat16 *)v, ld_v, mask,
                                           seq_off, n_seq, n_head, group, max_len, sl2, causal, st);
    return attn_variant<__half>(variant, (__half *)o, ld_o, (const __half *)q, ld_q, (const __half *)k, ld_k,
                                (const __half *)v, ld_v, mask, seq_off, n_seq, n_head, group, max_len, sl2, causal,
                                st);
}

// --- fused SPLADE head ------------------------------------------------------

/* Block tile SM token rows x SN vocabulary columns, SK of the hidden size
 * per stage, NST stages in flight. 8 warps: 2 along the rows x 4 along
 * the columns, each a 64 x 64 tile (4 x 8 mma tiles, 128 F32 accumulators
 * per thread). The next 16-wide k step's fragments are loaded from shared
 * memory while the current step's 32 mma run. */
enum { SM = 128 };
template <int SN, int SK, int NST>
constexpr size_t splade_smem() { return (size_t)NST * (SM + SN) * (SK + 8) * 2; }

template <typename T, int SN, int SK, int NST>
__global__ void __launch_bounds__(SN, 256 / SN) k_splade_mma(float *dst, long long ld_d, const T *h, long long ld_h,
                                                       const T *w, long long ld_w, const float *bias,
                                                       const int *row_seq, int r0, int r1, int V, int K)
{
    constexpr int SLD = SK + 8, CPR = SK / 8;     /* row pitch; 16-byte chunks per row */
    constexpr int NT = SN;                        /* threads: 2 x SN/64 warps */
    extern __shared__ __align__(16) unsigned char sm_raw[];
    T *sm = (T *)sm_raw;         /* [NST][SM + SN][SLD]: rows of h, then rows of w */
    int tid = threadIdx.x, wid = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    int wm = wid / (SN / 64), wn = wid % (SN / 64);
    /* grouped order (kn_ptx.cuh): a tile of w is fetched from memory once
     * per 16 row tiles */
    int n_ct = (V + SN - 1) / SN, n_rt = (r1 - r0 + SM - 1) / SM, rt, ct;
    grouped_tile(blockIdx.x, n_rt, n_ct, &rt, &ct);
    int m0 = r0 + rt * SM, n0 = ct * SN;
    int n_k = (K + SK - 1) / SK;
    /* Each thread copies the same 16-byte column chunk cc of rows cr,
     * cr + RSTEP, ... in every stage: pointers advance by a constant. */
    constexpr int RSTEP = NT / CPR;
    const int cr = tid / CPR, cc = (tid % CPR) * 8;
    const T *hp = h + (long long)(m0 + cr) * ld_h + cc, *wp = w + (long long)(n0 + cr) * ld_w + cc;
    const long long hstep = (long long)RSTEP * ld_h, wstep = (long long)RSTEP * ld_w;
    auto load = [&](int kt, int stage) {
        T *A = sm + (size_t)stage * (SM + SN) * SLD + cr * SLD + cc, *B = A + SM * SLD;
        int k0 = kt * SK;
        bool kin = k0 + cc < K;
#pragma unroll
        for (int i = 0; i < SM / RSTEP; i++) {
            bool ok = kin && m0 + cr + i * RSTEP < r1;
            cp16(A + i * RSTEP * SLD, ok ? hp + i * hstep + k0 : h, ok);
        }
#pragma unroll
        for (int i = 0; i < SN / RSTEP; i++) {
            bool ok = kin && n0 + cr + i * RSTEP < V;
            cp16(B + i * RSTEP * SLD, ok ? wp + i * wstep + k0 : w, ok);
        }
    };
    float acc[4][8][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 8; j++)
            acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;
#pragma unroll
    for (int st = 0; st < NST - 1; st++) {
        if (st < n_k)
            load(st, st);
        cp_commit();
    }
    /* per-lane ldmatrix offsets (elements) inside a stage */
    const int a_off = (wm * 64 + (lane & 15)) * SLD + (lane >> 4) * 8;
    const int b_off = SM * SLD + (wn * 64 + (lane & 7) + ((lane >> 4) << 3)) * SLD + ((lane >> 3) & 1) * 8;
    uint32_t af[2][4][4], bf[2][8][2];
    auto frags = [&](const T *S, int kk, int buf) {
#pragma unroll
        for (int mt = 0; mt < 4; mt++)
            ldsm_x4(af[buf][mt], S + a_off + mt * 16 * SLD + kk * 16);
#pragma unroll
        for (int nt = 0; nt < 8; nt += 2) {
            uint32_t r[4];
            ldsm_x4(r, S + b_off + nt * 8 * SLD + kk * 16);
            bf[buf][nt][0] = r[0];
            bf[buf][nt][1] = r[1];
            bf[buf][nt + 1][0] = r[2];
            bf[buf][nt + 1][1] = r[3];
        }
    };
    for (int kt = 0; kt < n_k; kt++) {
        cp_wait<NST - 2>();
        __syncthreads();
        /* refill the stage consumed one iteration ago */
        if (kt + NST - 1 < n_k)
            load(kt + NST - 1, (kt + NST - 1) % NST);
        cp_commit();
        const T *S = sm + (size_t)(kt % NST) * (SM + SN) * SLD;
        frags(S, 0, 0);
#pragma unroll
        for (int kk = 0; kk < SK / 16; kk++) {
            if (kk + 1 < SK / 16)
                frags(S, kk + 1, (kk + 1) & 1);
#pragma unroll
            for (int mt = 0; mt < 4; mt++)
#pragma unroll
                for (int nt = 0; nt < 8; nt++)
                    mma16816<T>(acc[mt][nt], af[kk & 1][mt], bf[kk & 1][nt]);
        }
    }
    cp_wait<0>();
    /* epilogue: relu(z + b), max over rows per sequence */
    int wr0 = m0 + wm * 64, wr1 = min(wr0 + 63, r1 - 1);
    if (wr0 >= r1)
        return;
    int s_first = row_seq[wr0], s_last = row_seq[wr1];
    float bv[8][2];
#pragma unroll
    for (int nt = 0; nt < 8; nt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            int col = n0 + wn * 64 + nt * 8 + 2 * t + e;
            bv[nt][e] = col < V && bias ? bias[col] : 0.0f;
        }
    if (s_first == s_last) {
        /* the warp's rows are one sequence: reduce over rows in registers.
         * Rows past r1 (zero-filled, so z = b there) must not count. */
        float lo[4], hi[4];
#pragma unroll
        for (int mt = 0; mt < 4; mt++) {
            lo[mt] = wr0 + mt * 16 + g < r1 ? 0.0f : -INFINITY;
            hi[mt] = wr0 + mt * 16 + g + 8 < r1 ? 0.0f : -INFINITY;
        }
        float mx[8][2];
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                float x = 0.0f;
#pragma unroll
                for (int mt = 0; mt < 4; mt++)
                    x = fmaxf(x, fmaxf(acc[mt][nt][e] + lo[mt], acc[mt][nt][2 + e] + hi[mt]) + bv[nt][e]);
                x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 4));
                x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 8));
                x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 16));
                mx[nt][e] = x;
            }
        /* every lane now holds all 16 column maxima: lane (g, t) writes tile g */
        float v0 = 0, v1 = 0;
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
            if (nt == g) {
                v0 = mx[nt][0];
                v1 = mx[nt][1];
            }
        int col = n0 + wn * 64 + g * 8 + 2 * t;
        float *d = dst + (long long)s_first * ld_d + col;
        if (v0 > 0 && col < V)
            atomicMax((int *)d, __float_as_int(v0));
        if (v1 > 0 && col + 1 < V)
            atomicMax((int *)(d + 1), __float_as_int(v1));
        return;
    }
    /* rows of several sequences (short ones): one atomic per positive value */
#pragma unroll
    for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int hi = 0; hi < 2; hi++) {
            int row = wr0 + mt * 16 + g + hi * 8;
            if (row >= r1)
                continue;
            float *d = dst + (long long)row_seq[row] * ld_d;
#pragma unroll
            for (int nt = 0; nt < 8; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    int col = n0 + wn * 64 + nt * 8 + 2 * t + e;
                    float x = acc[mt][nt][hi * 2 + e] + bv[nt][e];
                    if (x > 0 && col < V)
                        atomicMax((int *)(d + col), __float_as_int(x));
                }
        }
}

template <typename T, int SN, int SK, int NST>
static cudaError_t splade_launch(float *dst, long long ld_d, const void *h, long long ld_h, const void *w,
                                 long long ld_w, const float *bias, const int *row_seq, int r0, int r1, int V, int K,
                                 cudaStream_t st)
{
    unsigned grid = (unsigned)((V + SN - 1) / SN) * (unsigned)((r1 - r0 + SM - 1) / SM);
    size_t smem = splade_smem<SN, SK, NST>();
    cudaError_t e = cudaFuncSetAttribute(k_splade_mma<T, SN, SK, NST>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)smem);
    if (e != cudaSuccess)
        return e;
    k_splade_mma<T, SN, SK, NST><<<grid, SN, smem, st>>>(dst, ld_d, (const T *)h, ld_h, (const T *)w, ld_w, bias,
                                                         row_seq, r0, r1, V, K);
    return cudaGetLastError();
}

template <typename T>
static cudaError_t splade_variant(int variant, float *dst, long long ld_d, const void *h, long long ld_h,
                                  const void *w, long long ld_w, const float *bias, const int *row_seq, int r0, int r1,
                                  int V, int K, cudaStream_t st)
{
    switch (variant) {
    case 1: return splade_launch<T, 256, 32, 4>(dst, ld_d, h, ld_h, w, ld_w, bias, row_seq, r0, r1, V, K, st);
    case 2: return splade_launch<T, 128, 64, 3>(dst, ld_d, h, ld_h, w, ld_w, bias, row_seq, r0, r1, V, K, st);
    case 3: return splade_launch<T, 128, 32, 4>(dst, ld_d, h, ld_h, w, ld_w, bias, row_seq, r0, r1, V, K, st);
    case 4: return splade_launch<T, 256, 64, 4>(dst, ld_d, h, ld_h, w, ld_w, bias, row_seq, r0, r1, V, K, st);
    default: return splade_launch<T, 256, 64, 3>(dst, ld_d, h, ld_h, w, ld_w, bias, row_seq, r0, r1, V, K, st);
    }
}

cudaError_t kn_mma_splade_max(int is_bf16, float *dst, long long ld_d, const void *h, long long ld_h,
                              const void *w, long long ld_w, const float *bias, const int *row_seq, int r0,
                              int r1, int V, int K, int variant, cudaStream_t st)
{
    if (r1 <= r0 || V <= 0)
        return cudaSuccess;
    if (is_bf16)
        return splade_variant<__nv_bfloat16>(variant, dst, ld_d, h, ld_h, w, ld_w, bias, row_seq, r0, r1, V, K, st);
    return splade_variant<__half>(variant, dst, ld_d, h, ld_h, w, ld_w, bias, row_seq, r0, r1, V, K, st);
}
