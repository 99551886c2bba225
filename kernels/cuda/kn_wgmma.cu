/* kn_wgmma.cu: Hopper (sm_90a) tensor-core kernels on wgmma.
 *
 * A warpgroup (4 warps, 128 threads) issues wgmma.mma_async m64nNk16: its
 * 64 x N accumulator tile lives in registers while A (64 x 16) and B
 * (N x 16) are read straight from shared memory through descriptors, so no
 * thread spends instructions on fragment loads (the mma.sync kernels of
 * kn_mma.cu spend a third of their issue slots on ldmatrix), and the
 * multiply runs asynchronously while the same threads copy the next tiles.
 *
 * Shared-memory layout (what the descriptors describe): both operands are
 * K-major, in tiles of 64 16-bit values of K (128 bytes a row) with the
 * 128-byte swizzle: the 16-byte chunk c of row r sits at chunk c ^ (r % 8)
 * of its row, 8 rows make a 1,024-byte atom, and every tile starts on a
 * 1,024-byte boundary. The swizzle spreads the 8 rows of an atom over all
 * banks for the tensor cores' reads and for the cp.async writes alike.
 *
 * Two ways to fill the stages: TMA (the default: a producer warp issues
 * two tensor-map loads a stage and mbarriers say when they landed and when
 * the consumers are done with them, so the consumer warps issue nothing
 * but wgmma), or cp.async from all 256 threads (where the driver's
 * tensor-map encoder cannot be had). cp.async writes belong to the generic
 * proxy and wgmma reads through the async proxy, hence fence.proxy.async
 * before the barrier that publishes a stage.
 *
 * What runs here: the fused SPLADE head and attention for head_dim 64
 * (kn_mma.h). Attention on an H200, BERT-base shapes (12 heads, 128
 * sequences), per layer against kn_mma.cu's first mma.sync kernel: 128
 * tokens 0.052 ms against 0.061, 256 0.117 against 0.160, 512 0.334-0.344
 * against 0.551. Tried there and not kept, as no faster (ms at 256
 * tokens, each against this kernel in the same run): a persistent grid
 * whose blocks load the next item's Q and tiles while finishing the
 * current one (0.138-0.140 against 0.138 for the same code a block an
 * item); issuing the next tile's S before this tile's P V
 * (FlashAttention-3's intra-warpgroup overlap; 0.119 against 0.116); a
 * lazy rescale of O, only when a row's max grows by more than 2^8 (0.120
 * against 0.116); 128-key tiles with one warpgroup a block (0.130,
 * with that overlap); in an earlier build, 3 stages (0.128 against 0.124)
 * or one warpgroup a block (0.131). Later, timed in one process (9 x 20
 * launches back to back, the variants interleaved): TMA loads from one
 * thread and full/empty mbarriers instead of cp.async and the per-tile
 * __syncthreads, so each warpgroup runs at its own pace, with
 * FlashAttention-3's ping-pong of the two warpgroups on named barriers:
 * 256 tokens 0.1046-0.1059 ms against 0.1079-0.1094 in three runs, 512
 * 0.326-0.342 against 0.334-0.342 (no gain in the last run), 128 slower
 * (0.0444 against 0.0435); end to end within the noise, so not kept.
 * FlashAttention-3's intra-warpgroup overlap done for real (ptxas hoists
 * a wgmma wait above the softmax, as waiting early is always safe, so
 * wait<1> for S then the softmax then wait<0> for P V overlaps nothing
 * unless a branch on the softmax's result holds the second wait down):
 * slower than without it (256 tokens 0.1076 against 0.1088 for this
 * kernel, 512 0.331 against 0.330). A quarter of the exponentials by a
 * cubic on the FMA pipe (FlashAttention-4's trick): slower (512 tokens
 * 0.342 against 0.334), as the kernel is not bound by MUFU; Nsight at 512
 * tokens: issue slots 49% busy, 1.1 eligible warps a scheduler, 333
 * instructions a warp a 64-key tile (190 of them the softmax), stall
 * cycles an instruction: wait 1.5, not selected 1.3, MIO 1.0, barrier
 * 0.6. A GEMM with the bias
 * and exact-erf GELU in its epilogue was built on the same main loops and
 * measured slower than cuBLASLt plus a GELU pass (FFN-up + GELU at 32,768
 * tokens 0.399 ms against 0.370; QKV 0.252 against 0.198), so it was not
 * kept (commit c90ffb9 has it). Nor was a persistent one (commit 3c83174)
 * in which two consumer warpgroups hand each rounded 128 x 192 tile over
 * in shared memory to three epilogue warps that apply the GELU while the
 * next tile multiplies: its main loop alone ran at 0.205-0.209 ms
 * (739-754 TFLOP/s), but with the hand-over and the GELU 0.354 against
 * 0.338 for cuBLASLt and k_gelu_vec (a plain copy in place of the GELU
 * 0.262-0.272): the GELU's ~0.1 ms was added to the wgmmas' time, not
 * hidden under it. The same hand-over for the SPLADE head (consumers
 * writing each 128 x 192 tile of z, rounded to 16 bits, three epilogue
 * warps a column pair a thread walking its rows for the per-sequence max
 * and the atomics): 3.58 ms against this kernel's 2.45 at 32,768 tokens,
 * the SPLADE path 7,636-7,692 against 8,098-8,111 documents/s at 256
 * tokens: handing tiles over through shared memory costs more than the
 * consumers' own epilogue. And the plain GEMMs on the persistent main
 * loop with the consumers writing bias-added 16-bit results straight from
 * the accumulators (4-byte stores, 8 rows of 16 bytes a warp instruction;
 * correct on every matmul case): QKV 0.262 against cuBLASLt's 0.188 ms,
 * output projection 0.101 against 0.076, FFN up + GELU pass 0.428 against
 * 0.338, FFN down 0.246 against 0.212; the SPLADE path 6,959-6,994
 * against 8,184-8,228 documents/s at 256 tokens. The stores are the
 * cost: a tile's 1,536 store instructions touch 8 lines each. With the
 * tile written to shared memory as three 128 x 64 boxes in the 128-byte
 * swizzle and stored by TMA (cp.async.bulk.tensor, one thread, running on
 * while the next tile multiplies): QKV 0.197 against 0.193 ms, output
 * projection 0.076 against 0.079, FFN up (+ pass) 0.354 against 0.345,
 * FFN down 0.224 against 0.222, i.e. cuBLASLt's speed, and the SPLADE path
 * 7,685-7,697 against 8,027-8,114 documents/s, so not kept either.
 *
 * Compiled for real only for sm_90a (wgmma has no PTX for other targets);
 * for other targets the kernels are empty and kn_wgmma_available says no,
 * so the caller keeps to kn_mma.cu.
 */
#include <cuda.h> /* CUtensorMap */

#include "kn_mma.h"
#include "kn_ptx.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define KN_WGMMA 1
#endif

// --- wgmma primitives -------------------------------------------------------

enum { WBM = 128, WBK = 64, WROW = WBK * 2 /* bytes a tile row */ };

/* Descriptor of a K-major 128-byte-swizzled operand at shared address s:
 * start >> 4, leading offset 16 bytes (unused with this swizzle), stride
 * 1,024 bytes between 8-row atoms, swizzle mode 1 (128 bytes). */
__device__ __forceinline__ uint64_t wg_desc(uint32_t s)
{
    return (uint64_t)((s & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

/* Keeps the compiler from moving an accumulator register across a point
 * where an asynchronous wgmma may still be writing it. */
template <int N>
__device__ __forceinline__ void wg_pin(float *d)
{
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+f"(d[i])::"memory");
}

#define WG_F8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
                 "+f"(d[i + 6]), "+f"(d[i + 7])
#define WG_F64(i) WG_F8(i), WG_F8(i + 8), WG_F8(i + 16), WG_F8(i + 24), WG_F8(i + 32), WG_F8(i + 40), \
                  WG_F8(i + 48), WG_F8(i + 56)
#define WG_R64 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
               "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
               "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define WG_R128 WG_R64 ", " \
                "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
                "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
                "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
                "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"

/* d[N/2] += A(64 x 16) B(N x 16)^T for one warpgroup. Accumulator layout
 * (warp w of the group, g = lane / 4, t = lane % 4): d[4j + e] is row
 * 16w + g, column 8j + 2t + e; d[4j + 2 + e] is row 16w + g + 8. */
template <typename T, int N>
__device__ __forceinline__ void wg_mma(float *d, uint64_t da, uint64_t db)
{
#ifdef KN_WGMMA
    constexpr bool bf = std::is_same<T, __nv_bfloat16>::value;
    if constexpr (N == 128 && bf)
        asm volatile("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" WG_R64 "}, %64, %65, 1, 1, 1, 0, 0;\n"
                     : WG_F64(0) : "l"(da), "l"(db));
    else if constexpr (N == 128)
        asm volatile("wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {" WG_R64 "}, %64, %65, 1, 1, 1, 0, 0;\n"
                     : WG_F64(0) : "l"(da), "l"(db));
    else if constexpr (bf)
        asm volatile("wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {" WG_R128 "}, %128, %129, 1, 1, 1, 0, 0;\n"
                     : WG_F64(0), WG_F64(64) : "l"(da), "l"(db));
    else
        asm volatile("wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 {" WG_R128 "}, %128, %129, 1, 1, 1, 0, 0;\n"
                     : WG_F64(0), WG_F64(64) : "l"(da), "l"(db));
#endif
}

/* Descriptor of an N-major (transposed) 128-byte-swizzled B operand at s:
 * rows of 64 16-bit values of N (128 bytes), one row a k, 8 rows an atom;
 * the stride between atoms along k is 1,024 bytes. With N = 64 there is
 * one atom along N, so the other offset is never used; both are set to
 * 1,024 so that the layout does not hang on which field names which. */
__device__ __forceinline__ uint64_t wg_desc_t(uint32_t s)
{
    return (uint64_t)((s & 0x3FFFF) >> 4) | ((uint64_t)(1024 >> 4) << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}

/* A descriptor for an address off16 x 16 bytes further: the start
 * address sits in the low word and never carries out of it (shared
 * memory is < 256 KB), so a 32-bit add does. */
__device__ __forceinline__ uint64_t wg_desc_add(uint64_t d, uint32_t off16)
{
    return (d & 0xFFFFFFFF00000000ull) | (uint32_t)((uint32_t)d + off16);
}

#define WG_F32(i) WG_F8(i), WG_F8(i + 8), WG_F8(i + 16), WG_F8(i + 24)
#define WG_R32 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"

/* d[32] = A(64 x 16) B(64 x 16)^T, both K-major in shared memory, plus d
 * itself when acc != 0 (attention's S = Q K^T: the first k step starts
 * the tile afresh instead of zeroing 32 registers). */
template <typename T>
__device__ __forceinline__ void wg_mma_ss64(float *d, uint64_t da, uint64_t db, int acc)
{
#ifdef KN_WGMMA
    if constexpr (std::is_same<T, __nv_bfloat16>::value)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" WG_R32 "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
                     : WG_F32(0) : "l"(da), "l"(db), "r"(acc));
    else
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {" WG_R32 "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
                     : WG_F32(0) : "l"(da), "l"(db), "r"(acc));
#endif
}

/* d[32] += A(64 x 16) B(16 x 64) with A in registers (a[4]: each warp's
 * 16 rows in mma.sync's A fragment layout) and B N-major in shared memory
 * (wg_desc_t): attention's O += P V, V's rows being the k of B. */
template <typename T>
__device__ __forceinline__ void wg_mma_rs_t(float *d, const uint32_t *a, uint64_t db)
{
#ifdef KN_WGMMA
    if constexpr (std::is_same<T, __nv_bfloat16>::value)
        asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" WG_R32 "}, {%32, %33, %34, %35}, %36, "
                     "1, 1, 1, 1;\n"
                     : WG_F32(0) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
    else
        asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {" WG_R32 "}, {%32, %33, %34, %35}, %36, "
                     "1, 1, 1, 1;\n"
                     : WG_F32(0) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
#endif
}

// --- TMA and mbarriers ----------------------------------------------------

__device__ __forceinline__ void mbar_init(uint64_t *b, int count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(b)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_init_fence()
{
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
/* arrive and announce the bytes the barrier's phase still waits for */
__device__ __forceinline__ void mbar_expect_tx(uint64_t *b, uint32_t bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(b)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t *b)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(b)) : "memory");
}
/* until the phase of the given parity has completed */
__device__ __forceinline__ void mbar_wait(uint64_t *b, int parity)
{
    uint32_t done;
    do {
        asm volatile("{\n.reg .pred p;\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(smem_addr(b)), "r"(parity) : "memory");
    } while (!done);
}
/* box (x = k, y = row) of a 2-D tensor map into shared memory; completes
 * its bytes on the barrier */
__device__ __forceinline__ void tma_load(void *dst, const CUtensorMap *map, int x, int y, uint64_t *bar)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%2, %3}], [%4];\n"
                 ::"r"(smem_addr(dst)), "l"((uint64_t)map), "r"(x), "r"(y), "r"(smem_addr(bar)) : "memory");
}

// --- the main loop: a 128 x BN tile of A B^T --------------------------------

/* Shared memory of one pipeline: NST stages of [128 rows of A][BN rows of
 * B], each row 64 values of K; plus 1 KB to align the first tile. */
template <int BN, int NST>
constexpr size_t wg_smem() { return (size_t)NST * (WBM + BN) * WROW + 1024; }

/* acc (BN / 2 floats a thread, zeroed here) = a[m0.., :K] b[n0.., :K]^T for
 * the block's 128 x BN tile; 256 threads, warpgroup wg owns rows 64 wg ..
 * 64 wg + 63. Rows at or past m_end (a) or n_end (b), and K past K, are
 * zero-filled. Pipeline: NST stages; INF = 1 keeps one k-step's wgmmas in
 * flight while the next is issued (needs NST >= 3), copies run
 * NST - 1 - INF steps ahead. Returns with every copy and wgmma done and
 * the stages free for reuse after a __syncthreads. */
template <typename T, int BN, int NST, int INF>
__device__ __forceinline__ void wg_mainloop(float *acc, unsigned char *smem, const T *a, long long ld_a, int m0,
                                            int m_end, const T *b, long long ld_b, int n0, int n_end, int K)
{
    constexpr int D = NST - 1 - INF, STAGE = (WBM + BN) * WROW;
    static_assert(D >= 1, "pipeline needs a copy in flight");
    const int tid = threadIdx.x, wg = tid >> 7;
    /* thread tid copies chunk c of rows r, r + 32, ...: the swizzled chunk
     * is the same for all of them (r % 8 does not change) */
    const int c = tid & 7, r = tid >> 3, sw = (c ^ (r & 7)) * 16;
    const T *ap = a + (long long)(m0 + r) * ld_a + c * 8, *bp = b + (long long)(n0 + r) * ld_b + c * 8;
    const uint32_t base = smem_addr(smem);
    auto load = [&](int kt, int stage) {
        unsigned char *A = smem + stage * STAGE + r * WROW + sw, *B = A + WBM * WROW;
        int k0 = kt * WBK;
        bool kin = k0 + c * 8 < K;
#pragma unroll
        for (int i = 0; i < WBM / 32; i++) {
            bool ok = kin && m0 + r + 32 * i < m_end;
            cp16(A + i * 32 * WROW, ok ? ap + 32LL * i * ld_a + k0 : a, ok);
        }
#pragma unroll
        for (int i = 0; i < BN / 32; i++) {
            bool ok = kin && n0 + r + 32 * i < n_end;
            cp16(B + i * 32 * WROW, ok ? bp + 32LL * i * ld_b + k0 : b, ok);
        }
    };
#pragma unroll
    for (int i = 0; i < BN / 2; i++)
        acc[i] = 0.0f;
    const int n_k = (K + WBK - 1) / WBK;
#pragma unroll
    for (int s = 0; s < D; s++) {
        if (s < n_k)
            load(s, s);
        cp_commit();
    }
    for (int kt = 0; kt < n_k; kt++) {
        cp_wait<D - 1>();
        fence_proxy_async();
        /* every copy of step kt has landed; every wgmma of step kt - 1 - INF
         * is done, so its stage may be refilled */
        __syncthreads();
        if (kt + D < n_k)
            load(kt + D, (kt + D) % NST);
        cp_commit();
        uint32_t sa = base + (kt % NST) * STAGE + wg * 64 * WROW, sb = base + (kt % NST) * STAGE + WBM * WROW;
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < WBK / 16; kk++)
            wg_mma<T, BN>(acc, wg_desc(sa + kk * 32), wg_desc(sb + kk * 32));
        wg_commit();
        wg_wait<INF>();
        wg_pin<BN / 2>(acc);
    }
    wg_wait<0>();
    wg_pin<BN / 2>(acc);
    cp_wait<0>();
}

/* The same tile with TMA and warp specialization: 288 threads, two
 * consumer warpgroups (rows 0-63 and 64-127) that only issue wgmma, and a
 * producer warp (one thread issues each stage's two tensor-map loads).
 * ptxas gives the block 168 registers a thread; the 128 accumulators fit
 * (24 bytes spilled), where a producer warpgroup with setmaxnreg spilled
 * 3 KB. full[s] completes when a stage's bytes have landed (TMA counts a
 * whole box, the zeros past the tensor's edge too); empty[s] when all 256
 * consumer threads are done reading it. One k step's wgmmas stay in
 * flight. */

template <int BN, int NST>
__device__ __forceinline__ void wg_produce(unsigned char *smem, uint64_t *full, uint64_t *empty, const CUtensorMap *ta,
                                           const CUtensorMap *tb, int m0, int n0, int K, int *it)
{
    constexpr int STAGE = (WBM + BN) * WROW;
    const int n_k = (K + WBK - 1) / WBK;
    for (int kt = 0; kt < n_k; kt++, (*it)++) {
        int s = *it % NST;
        mbar_wait(&empty[s], ((*it / NST) & 1) ^ 1); /* a fresh barrier passes parity 1 */
        mbar_expect_tx(&full[s], STAGE);
        tma_load(smem + s * STAGE, ta, kt * WBK, m0, &full[s]);
        tma_load(smem + s * STAGE + WBM * WROW, tb, kt * WBK, n0, &full[s]);
    }
}

/* *it counts stage uses over the block's tiles, the producer's and the
 * consumers' alike, so that stage and phase follow from it. Every stage
 * is given back, the tile's last one too: the producer is already
 * filling stages for the next tile. */
template <typename T, int BN, int NST>
__device__ __forceinline__ void wg_consume(float *acc, unsigned char *smem, uint64_t *full, uint64_t *empty, int cwg,
                                           int K, int *it)
{
    constexpr int STAGE = (WBM + BN) * WROW;
    const uint32_t base = smem_addr(smem);
    const int n_k = (K + WBK - 1) / WBK;
#pragma unroll
    for (int i = 0; i < BN / 2; i++)
        acc[i] = 0.0f;
    for (int kt = 0; kt < n_k; kt++, (*it)++) {
        int s = *it % NST;
        mbar_wait(&full[s], (*it / NST) & 1);
        uint32_t sa = base + s * STAGE + cwg * 64 * WROW, sb = base + s * STAGE + WBM * WROW;
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < WBK / 16; kk++)
            wg_mma<T, BN>(acc, wg_desc(sa + kk * 32), wg_desc(sb + kk * 32));
        wg_commit();
        wg_wait<1>();
        wg_pin<BN / 2>(acc);
        if (kt > 0)
            mbar_arrive(&empty[(*it - 1) % NST]);
    }
    wg_wait<0>();
    wg_pin<BN / 2>(acc);
    mbar_arrive(&empty[(*it - 1) % NST]);
}

/* A barrier of the 256 consumer threads (the TMA producer warp has left). */
template <bool TMA>
__device__ __forceinline__ void wg_sync()
{
    if constexpr (TMA)
        asm volatile("bar.sync 1, 256;\n" ::: "memory");
    else
        __syncthreads();
}

// --- fused SPLADE head ------------------------------------------------------

/* z = h w^T + bias over a 128 x BN tile; max(relu(z)) over each sequence's
 * rows merged into dst with atomicMax. A warp's 16 rows of one sequence
 * are reduced with shuffles to BN column maxima in shared memory; one
 * thread a column then folds the 8 warps (consecutive warps of the same
 * sequence together) into one atomic per (sequence, column). A warp whose
 * rows span sequences (short ones) sends one atomic per positive value. */
template <typename T, int BN, int NST, int INF, bool TMA>
__global__ void __launch_bounds__(TMA ? 288 : 256, BN == 128 ? 2 : 1)
    k_splade_wgmma(float *dst, long long ld_d, const T *h, long long ld_h, const T *w, long long ld_w,
                   const float *bias, const int *row_seq, int r0, int r1, int V, int K,
                   const __grid_constant__ CUtensorMap th, const __grid_constant__ CUtensorMap tw)
{
#ifdef KN_WGMMA
    extern __shared__ unsigned char wg_raw[];
    __shared__ int warp_seq[8];
    __shared__ __align__(8) uint64_t bars[2 * NST];
    unsigned char *smem = (unsigned char *)(((uintptr_t)wg_raw + 1023) & ~(uintptr_t)1023);
    /* the warps' column maxima [8][BN]: over the stages after a cp.async
     * tile; beside them with TMA, whose producer runs a tile ahead */
    float *red = (float *)(smem + (TMA ? (size_t)NST * (WBM + BN) * WROW : 0));
    const int n_ct = (V + BN - 1) / BN, n_rt = (r1 - r0 + WBM - 1) / WBM;
    if constexpr (TMA) {
        if (threadIdx.x == 0) {
            for (int s = 0; s < NST; s++) {
                mbar_init(&bars[s], 1);
                mbar_init(&bars[NST + s], 256);
            }
            mbar_init_fence();
        }
        __syncthreads();
    }
    /* TMA: persistent, a block an SM takes tiles blockIdx.x, + gridDim.x, ...
     * (the producer warp loads the next tile's stages while the consumers
     * reduce); cp.async: a block a tile */
    int it = 0;
    if (TMA && threadIdx.x >= 256) {
        if (threadIdx.x == 256)
            for (int id = blockIdx.x; id < n_ct * n_rt; id += gridDim.x) {
                int rt, ct;
                grouped_tile(id, n_rt, n_ct, &rt, &ct);
                wg_produce<BN, NST>(smem, bars, bars + NST, &th, &tw, r0 + rt * WBM, ct * BN, K, &it);
            }
        return;
    }
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    for (int id = blockIdx.x; id < n_ct * n_rt; id += gridDim.x) {
        /* the grouped tile order of kn_ptx.cuh, the producer's too */
        int rt, ct;
        grouped_tile(id, n_rt, n_ct, &rt, &ct);
        int m0 = r0 + rt * WBM, n0 = ct * BN;
        float acc[BN / 2];
        if constexpr (TMA)
            wg_consume<T, BN, NST>(acc, smem, bars, bars + NST, tid >> 7, K, &it);
        else
            wg_mainloop<T, BN, NST, INF>(acc, smem, h, ld_h, m0, r1, w, ld_w, n0, V, K);
        wg_sync<TMA>(); /* every warp is past its wgmmas (red may be the stages) */
        int wr0 = m0 + warp * 16, wr1 = min(wr0 + 15, r1 - 1);
        int s_first = wr0 < r1 ? row_seq[wr0] : -1, s_last = wr0 < r1 ? row_seq[wr1] : -1;
        if (lane == 0)
            warp_seq[warp] = s_first == s_last ? s_first : -1;
        if (wr0 < r1 && s_first == s_last) {
            /* rows past r1 are zero-filled (z = 0 there) and must not count */
            float lo = wr0 + g < r1 ? 0.0f : -INFINITY, hi = wr0 + g + 8 < r1 ? 0.0f : -INFINITY;
#pragma unroll
            for (int j = 0; j < BN / 8; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    float x = fmaxf(acc[4 * j + e] + lo, acc[4 * j + 2 + e] + hi);
                    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 4));
                    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 8));
                    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 16));
                    if ((j & 7) == g)
                        red[warp * BN + 8 * j + 2 * t + e] = x;
                }
        } else if (wr0 < r1) {
#pragma unroll
            for (int hi = 0; hi < 2; hi++) {
                int row = wr0 + g + 8 * hi;
                if (row >= r1)
                    continue;
                float *d = dst + (long long)row_seq[row] * ld_d;
#pragma unroll
                for (int j = 0; j < BN / 8; j++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        int col = n0 + 8 * j + 2 * t + e;
                        if (col < V) {
                            float x = acc[4 * j + 2 * hi + e] + (bias ? bias[col] : 0.0f);
                            if (x > 0)
                                atomicMax((int *)(d + col), __float_as_int(x));
                        }
                    }
            }
        }
        wg_sync<TMA>();
        for (int cc = tid; cc < BN; cc += 256) {
            int col = n0 + cc;
            if (col >= V)
                break;
            float bv = bias ? bias[col] : 0.0f, m = -INFINITY;
            int cur = -1;
            for (int wi = 0; wi < 8; wi++) {
                int s = warp_seq[wi];
                if (s < 0)
                    continue;
                if (s != cur) {
                    if (cur >= 0 && m + bv > 0)
                        atomicMax((int *)(dst + (long long)cur * ld_d + col), __float_as_int(m + bv));
                    cur = s;
                    m = red[wi * BN + cc];
                } else {
                    m = fmaxf(m, red[wi * BN + cc]);
                }
            }
            if (cur >= 0 && m + bv > 0)
                atomicMax((int *)(dst + (long long)cur * ld_d + col), __float_as_int(m + bv));
        }
        wg_sync<TMA>(); /* red and warp_seq are read before the next tile writes them */
    }
#endif
}

/* A 2-D tensor map over rows x K 16-bit values (row pitch ld) in boxes of
 * 64 x box_rows with the 128-byte swizzle the descriptors expect; rows and
 * K past the ends read as zeros. */
typedef CUresult (*tmap_encode_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *,
                                   const cuuint64_t *, const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
static bool make_tmap(void *encode, CUtensorMap *m, int is_bf16, const void *p, int rows, int K, long long ld,
                      int box_rows)
{
    cuuint64_t dim[2] = {(cuuint64_t)K, (cuuint64_t)rows};
    cuuint64_t pitch[1] = {(cuuint64_t)ld * 2};
    cuuint32_t box[2] = {WBK, (cuuint32_t)box_rows}, step[2] = {1, 1};
    CUtensorMapDataType dt = is_bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
    return encode && ((tmap_encode_fn)encode)(m, dt, 2, (void *)p, dim, pitch, box, step,
                                              CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                              CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                              CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <typename T, int BN, int NST, int INF, bool TMA>
static cudaError_t splade_launch(float *dst, long long ld_d, const void *h, long long ld_h, const void *w,
                                 long long ld_w, const float *bias, const int *row_seq, int r0, int r1, int V, int K,
                                 void *encode, int n_sm, cudaStream_t st)
{
    CUtensorMap th = {}, tw = {};
    const int is_bf16 = std::is_same<T, __nv_bfloat16>::value;
    if (TMA && (!make_tmap(encode, &th, is_bf16, h, r1, K, ld_h, WBM) ||
                !make_tmap(encode, &tw, is_bf16, w, V, K, ld_w, BN)))
        return cudaErrorNotSupported;
    unsigned grid = (unsigned)((V + BN - 1) / BN) * (unsigned)((r1 - r0 + WBM - 1) / WBM);
    /* persistent: a block an SM (the tile loop takes any grid, so an
     * unknown n_sm <= 0 just leaves a block a tile) */
    if (TMA && n_sm > 0 && grid > (unsigned)n_sm)
        grid = (unsigned)n_sm;
    auto kern = k_splade_wgmma<T, BN, NST, INF, TMA>;
    size_t smem = wg_smem<BN, NST>() + (TMA ? 8 * BN * sizeof(float) : 0); /* red beside the stages */
    cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess)
        return e;
    kern<<<grid, TMA ? 288 : 256, smem, st>>>(dst, ld_d, (const T *)h, ld_h, (const T *)w, ld_w, bias, row_seq, r0,
                                               r1, V, K, th, tw);
    return cudaGetLastError();
}

template <typename T>
static cudaError_t splade_variant(int variant, float *dst, long long ld_d, const void *h, long long ld_h,
                                  const void *w, long long ld_w, const float *bias, const int *row_seq, int r0, int r1,
                                  int V, int K, void *enc, int n_sm, cudaStream_t st)
{
    if (variant == 0 && enc)
        return splade_launch<T, 256, 4, 1, true>(dst, ld_d, h, ld_h, w, ld_w, bias, row_seq, r0, r1, V, K, enc, n_sm,
                                                 st);
    if (variant == 2)
        return splade_launch<T, 128, 3, 0, false>(dst, ld_d, h, ld_h, w, ld_w, bias, row_seq, r0, r1, V, K, enc, n_sm,
                                                  st);
    /* 1, or 0 without tensor maps: the best cp.async variant */
    return splade_launch<T, 256, 4, 1, false>(dst, ld_d, h, ld_h, w, ld_w, bias, row_seq, r0, r1, V, K, enc, n_sm, st);
}

cudaError_t kn_wgmma_splade_max(int is_bf16, float *dst, long long ld_d, const void *h, long long ld_h,
                                const void *w, long long ld_w, const float *bias, const int *row_seq, int r0,
                                int r1, int V, int K, int variant, void *tmap_encode, int n_sm, cudaStream_t st)
{
    if (r1 <= r0 || V <= 0)
        return cudaSuccess;
    if (is_bf16)
        return splade_variant<__nv_bfloat16>(variant, dst, ld_d, h, ld_h, w, ld_w, bias, row_seq, r0, r1, V, K,
                                             tmap_encode, n_sm, st);
    return splade_variant<__half>(variant, dst, ld_d, h, ld_h, w, ld_w, bias, row_seq, r0, r1, V, K, tmap_encode,
                                  n_sm, st);
}

// --- attention ----------------------------------------------------------------

/* Tiles of k_attn_wgmma: 128 query rows a block (two warpgroups of 64),
 * 64 keys a tile, 4 stages. */
enum { ABM = 128, ABN = 64, ANST = 4, AKV = ABN * WROW /* bytes of K (or V) a stage */ };

/* Shared memory of k_attn_wgmma: Q's 128 rows, then the stages of [K's 64
 * rows][V's 64 rows], every row one head (64 values, 128 bytes) in the
 * 128-byte swizzle; plus 1 KB to align the first row. 81 KB: two blocks
 * an SM, as the registers (about 120 a thread) allow. */
constexpr size_t attn_wg_smem() { return (size_t)(ABM + 2 * ANST * ABN) * WROW + 1024; }

/* Attention for head_dim 64 (kn_mma.h's kn_mma_attention contract) on
 * wgmma. A block owns 128 query rows of one (sequence, head), 64 a
 * warpgroup, and streams the sequence's keys in tiles of 64 through 4
 * stages filled by cp.async from all threads. Each tile: S = Q K^T (4
 * wgmma k steps, Q and K read from shared memory), the online softmax of
 * kn_ptx.cuh on S in registers (wgmma's accumulator layout is mma.sync's,
 * so it is the mma.sync kernel's code), then O += P V with P as the A
 * operand straight from registers and V read transposed (N-major) from
 * the stage it landed in. The P V wgmmas of a tile run on while the next
 * tile's S is issued, so a stage is refilled only a tile after its P V:
 * copies run two tiles ahead. */
template <typename T>
__global__ void __launch_bounds__(256, 2)
    k_attn_wgmma(T *o, long long ld_o, const T *q, long long ld_q, const T *k, long long ld_k, const T *v,
                 long long ld_v, const float *mask, const int *seq_off, int group, float sl2, int causal)
{
#ifdef KN_WGMMA
    constexpr int D = ANST - 2, RS = 256 / 8;  /* tiles loaded ahead; rows between a thread's copies */
    extern __shared__ unsigned char wg_raw[];
    unsigned char *Qs = (unsigned char *)(((uintptr_t)wg_raw + 1023) & ~(uintptr_t)1023), *KVs = Qs + ABM * WROW;
    int s = blockIdx.z, h = blockIdx.y, kh = h / group;
    int b = seq_off[s], L = seq_off[s + 1] - b;
    int i0 = blockIdx.x * ABM;
    if (i0 >= L)
        return;
    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const T *qb = q + (long long)b * ld_q + h * 64, *kb = k + (long long)b * ld_k + kh * 64;
    const T *vb = v + (long long)b * ld_v + kh * 64;
    /* thread tid copies 16-byte chunk c of rows r, r + RS, ... of Q and of
     * each K and V tile, swizzled (chunk c of row r at c ^ (r % 8)), the
     * same chunk for all of them; rows past the sequence are zero-filled */
    const int c = tid & 7, r = tid >> 3, so = r * WROW + (c ^ (r & 7)) * 16;
#pragma unroll
    for (int i = 0; i < ABM / RS; i++) {
        bool ok = i0 + r + RS * i < L;
        cp16(Qs + so + i * RS * WROW, ok ? qb + (long long)(i0 + r + RS * i) * ld_q + c * 8 : qb, ok);
    }
    int jend = causal ? min(L, i0 + ABM) : L, n_tiles = (jend + ABN - 1) / ABN;
    /* one cp.async group a tile, empty past the last; called in tile
     * order, so the source pointers (row r of the next tile) just advance */
    const T *kp = kb + (long long)r * ld_k + c * 8, *vp = vb + (long long)r * ld_v + c * 8;
    const long long kstep = (long long)RS * ld_k, vstep = (long long)RS * ld_v;
    auto load_kv = [&](int tile) {
        if (tile < n_tiles) {
            unsigned char *st = KVs + (tile % ANST) * 2 * AKV + so;
#pragma unroll
            for (int i = 0; i < ABN / RS; i++) {
                bool ok = tile * ABN + r + RS * i < L;
                cp16(st + i * RS * WROW, ok ? kp + i * kstep : kb, ok);
                cp16(st + AKV + i * RS * WROW, ok ? vp + i * vstep : vb, ok);
            }
            kp += ABN / RS * kstep;
            vp += ABN / RS * vstep;
        }
        cp_commit();
    };
#pragma unroll
    for (int i = 0; i < D; i++)
        load_kv(i);
    int qi0 = i0 + wg * 64 + warp * 16 + g, qi1 = qi0 + 8;     /* this thread's two query rows */
    /* a warpgroup whose rows are all past the sequence only helps load;
     * causal: its last row bounds the keys it needs */
    bool active = i0 + wg * 64 < L;
    int wend = causal ? min(L, i0 + wg * 64 + 64) : L;
    const float *mk = mask ? mask + b : nullptr;
    float acc[32], m[2] = {-INFINITY, -INFINITY}, l[2] = {0, 0};
#pragma unroll
    for (int i = 0; i < 32; i++)
        acc[i] = 0.0f;
    /* the zeros in acc's own registers before the first wgmma: left to
     * itself the compiler defines them later, inside the loop, and ptxas
     * then serializes every wgmma (C7515) */
    wg_pin<32>(acc);
    uint32_t pa[ABN / 16][4];
    /* the descriptors, made once: another stage or k step is an offset in
     * 16-byte units in the start-address field */
    const uint64_t dq = wg_desc(smem_addr(Qs) + wg * 64 * WROW), dk = wg_desc(smem_addr(KVs));
    const uint64_t dv = wg_desc_t(smem_addr(KVs) + AKV);
    for (int it = 0; it < n_tiles; it++) {
        cp_wait<D - 1>();
        fence_proxy_async();
        /* tile it has landed, for every thread; every warpgroup has waited
         * for its wgmmas of tile it - 2, whose stage this refills */
        __syncthreads();
        load_kv(it + D);
        int j0 = it * ABN;
        if (active && j0 < wend) {
            uint32_t st = (uint32_t)((it % ANST) * (2 * AKV / 16));
            float sc[ABN / 2];
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
                wg_mma_ss64<T>(sc, wg_desc_add(dq, 2 * kk), wg_desc_add(dk, st + 2 * kk), kk);
            wg_commit();
            wg_wait<0>(); /* S, and the last tile's P V */
            wg_pin<ABN / 2>(sc);
            wg_pin<32>(acc);
            if (mk || causal || j0 + ABN > L)
                attn_mask<ABN>(sc, j0, L, mk, causal, qi0, qi1, t);
            attn_softmax<T, ABN>(sc, pa, m, l, acc, sl2);
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < ABN / 16; kk++)
                wg_mma_rs_t<T>(acc, pa[kk], wg_desc_add(dv, st + kk * (16 * WROW / 16)));
            wg_commit();
        }
    }
    wg_wait<0>();
    wg_pin<32>(acc);
    cp_wait<0>();
    attn_store<T>(o + (long long)b * ld_o + h * 64 + 2 * t, ld_o, acc, l, qi0, qi1, L);
#endif
}

template <typename T>
static cudaError_t attn_launch(void *o, long long ld_o, const void *q, long long ld_q, const void *k,
                               long long ld_k, const void *v, long long ld_v, const float *mask, const int *seq_off,
                               int n_seq, int n_head, int group, int max_len, float sl2, int causal, cudaStream_t st)
{
    size_t smem = attn_wg_smem();
    cudaError_t e = cudaFuncSetAttribute(k_attn_wgmma<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess)
        return e;
    dim3 grid((unsigned)((max_len + ABM - 1) / ABM), (unsigned)n_head, (unsigned)n_seq);
    k_attn_wgmma<T><<<grid, 256, smem, st>>>((T *)o, ld_o, (const T *)q, ld_q, (const T *)k, ld_k, (const T *)v,
                                             ld_v, mask, seq_off, group, sl2, causal);
    return cudaGetLastError();
}

cudaError_t kn_wgmma_attention(int is_bf16, void *o, long long ld_o, const void *q, long long ld_q, const void *k,
                               long long ld_k, const void *v, long long ld_v, const float *mask, const int *seq_off,
                               int n_seq, int n_head, int group, int max_len, float scale, int causal,
                               cudaStream_t st)
{
    float sl2 = scale * 1.4426950408889634f;
    if (is_bf16)
        return attn_launch<__nv_bfloat16>(o, ld_o, q, ld_q, k, ld_k, v, ld_v, mask, seq_off, n_seq, n_head, group,
                                          max_len, sl2, causal, st);
    return attn_launch<__half>(o, ld_o, q, ld_q, k, ld_k, v, ld_v, mask, seq_off, n_seq, n_head, group, max_len, sl2,
                               causal, st);
}

// --- availability -----------------------------------------------------------

__global__ void k_wgmma_probe(int *out)
{
#ifdef KN_WGMMA
    *out = 1;
#else
    *out = 0;
#endif
}

int kn_wgmma_available(cudaStream_t st, void **tmap_encode)
{
    int *d = nullptr, h = 0;
    *tmap_encode = nullptr;
    if (cudaMalloc(&d, sizeof *d) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    k_wgmma_probe<<<1, 1, 0, st>>>(d);
    if (cudaMemcpyAsync(&h, d, sizeof h, cudaMemcpyDeviceToHost, st) != cudaSuccess ||
        cudaStreamSynchronize(st) != cudaSuccess) {
        cudaGetLastError();
        h = 0;
    }
    cudaFree(d);
    /* the driver's tensor-map encoder, without linking the driver library */
    cudaDriverEntryPointQueryResult q;
    if (h && (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", tmap_encode, 12000, cudaEnableDefault, &q) !=
                  cudaSuccess || q != cudaDriverEntryPointSuccess)) {
        cudaGetLastError();
        *tmap_encode = nullptr;
    }
    return h;
}
