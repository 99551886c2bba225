/* kn_mma.h: private to kernels/cuda/: the tensor-core kernels of kn_mma.cu
 * (mma.sync, any GPU from sm_80) and kn_wgmma.cu (wgmma, Hopper), launched
 * by kn_cuda.cu's op switch.
 *
 * All take 16-bit storage (is_bf16: BF16, else F16), accumulate in F32 on
 * the tensor cores and need every matrix row
 * 16-byte aligned (row strides a multiple of 8 elements, pointers 16-byte
 * aligned); the caller checks that and otherwise runs the generic kernels.
 * Every pointer is device memory borrowed for the call; launches are
 * asynchronous on the given stream. Each returns the launch's cudaError_t.
 */
#ifndef KN_MMA_H
#define KN_MMA_H

#include <cuda_runtime.h>

/* Attention for head_dim 64: o[T, Hq*64] = softmax(scale q k^T) v within
 * each sequence of seq_off[S+1]; mask F32 [T] or NULL (0 = never attended);
 * group = Hq / Hkv. max_len >= the longest sequence. variant: 0 = the
 * first version; 1 = its softmax rewritten (kn_ptx.cuh's attn_softmax;
 * needs scale > 0, else variant 0 runs; H200, BERT-base shapes, 128
 * sequences of 256 tokens: 0.151 ms a layer against 0.160, of 512: 0.460
 * against 0.551). */
cudaError_t kn_mma_attention(int is_bf16, void *o, long long ld_o, const void *q, long long ld_q,
                             const void *k, long long ld_k, const void *v, long long ld_v, const float *mask,
                             const int *seq_off, int n_seq, int n_head, int group, int max_len, float scale,
                             int causal, int variant, cudaStream_t st);

/* The same attention on Hopper's wgmma (kn_wgmma.cu): same arguments and
 * contract, but scale must be > 0. Only where kn_wgmma_available said
 * yes. */
cudaError_t kn_wgmma_attention(int is_bf16, void *o, long long ld_o, const void *q, long long ld_q, const void *k,
                               long long ld_k, const void *v, long long ld_v, const float *mask, const int *seq_off,
                               int n_seq, int n_head, int group, int max_len, float scale, int causal,
                               cudaStream_t st);

/* The SPLADE head, fused: for token rows [r0, r1) of h [*, K] and the
 * vocabulary rows of w [V, K], z = h w^T + bias is computed a 128 x 256
 * tile at a time in registers, and max(relu(z)) over the rows of each
 * sequence (row_seq[t]: the sequence of row t) is merged into dst[S, V]
 * with an integer atomicMax (values >= 0 order like their bit patterns).
 * dst must hold zeros (or earlier maxima) before the call; log1p is left to
 * the caller (it is monotone, so max and log1p commute). K % 8 == 0.
 * variant (benchmarking): 0 = 64-wide k stages x 3, 1 = 32-wide x 4. */
cudaError_t kn_mma_splade_max(int is_bf16, float *dst, long long ld_d, const void *h, long long ld_h,
                              const void *w, long long ld_w, const float *bias, const int *row_seq, int r0,
                              int r1, int V, int K, int variant, cudaStream_t st);

/* The same head on Hopper's wgmma (kn_wgmma.cu): same arguments and
 * contract. variant (benchmarking; H200, 32,768 tokens, against
 * kn_mma_splade_max's 4.62 ms): 0 = 128 x 256 tiles by TMA with a producer
 * warp, 4 stages, persistent (min(tiles, n_sm) blocks, n_sm the
 * device's SM count; the next tile loads while the last one is reduced),
 * 2.45 ms (needs tmap_encode, the driver's cuTensorMapEncodeTiled from
 * kn_wgmma_available; without it variant 1 runs); 1 = the same tiles by
 * cp.async from all threads, 2.94-2.98 ms; 2 = 128 x 128, 3 stages, two
 * blocks an SM, 3.03 ms. Only where kn_wgmma_available said yes. */
cudaError_t kn_wgmma_splade_max(int is_bf16, float *dst, long long ld_d, const void *h, long long ld_h,
                                const void *w, long long ld_w, const float *bias, const int *row_seq, int r0,
                                int r1, int V, int K, int variant, void *tmap_encode, int n_sm, cudaStream_t st);

/* 1 when the current device runs kn_wgmma.cu's kernels (the build holds
 * sm_90a code and the device is a Hopper), else 0. Runs a one-thread probe
 * kernel on st and waits for it. *tmap_encode: the driver's
 * cuTensorMapEncodeTiled for the TMA variants, or NULL. */
int kn_wgmma_available(cudaStream_t st, void **tmap_encode);

#endif
