/* kernels_impl.h: private to kernels/ (and its tests): the backend table.
 *
 * A backend is a vtable plus a context pointer (ggml-backend-impl.h's
 * ggml_backend_i is the model). backend.c owns dispatch: it asks the
 * backend's supports_op, runs the op there, and otherwise runs the CPU
 * backend on host copies. Each backend dispatches through one switch.
 */
#ifndef KN_KERNELS_IMPL_H
#define KN_KERNELS_IMPL_H

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kn_backend_i {
    const char *name;
    int device;                                          /* enum kn_device */
    bool (*supports_op)(void *ctx, const kn_op_args *a);
    int  (*run)(void *ctx, const kn_op_args *a, char *err, size_t errlen);
    int  (*alloc)(void *ctx, size_t n, void **p);
    void (*free)(void *ctx, void *p);
    int  (*upload)(void *ctx, void *dst, const void *src, size_t n);
    int  (*download)(void *ctx, void *dst, const void *src, size_t n);
    void *(*host_alloc)(void *ctx, size_t n);      /* optional: NULL = malloc */
    void (*host_free)(void *ctx, void *p);         /* with host_alloc */
    int  (*sync)(void *ctx);
    void (*close)(void *ctx);
};

struct kn_backend {
    struct kn_backend_i i;
    void *ctx;
    struct kn_backend *cpu;      /* fallback (NULL for the CPU backend itself) */
    int profile;
    double prof_sec[KN_OP_COUNT];
    long prof_calls[KN_OP_COUNT];
    char err[512];
};

/* Sets be->err (printf style) and returns rc. */
int kn_backend_fail(kn_backend *be, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* cpu_ref.c: the scalar reference of every op, over host F32/I32 tensors. */
int kn_ref_run(const kn_op_args *a, char *err, size_t errlen);

/* cpu.c */
int kn_cpu_backend_init(struct kn_backend_i *i, void **ctx, const kn_backend_params *p);
/* Checks an op's shapes and dtypes the way every backend expects them;
 * writes a message and returns LX_E_INVAL when they do not fit. */
int kn_op_check(const kn_op_args *a, char *err, size_t errlen);

#include "kn_approx.h"   /* the erf and exp constants, shared with kn_cuda.cu and kn_ptx.cuh */

/* cpu_avx2.c: cpu.c's hot row loops with AVX2 + FMA. Call the two row
 * functions only when kn_cpu_has_avx2() (elsewhere they do nothing).
 *   softmax_row    in place over n scores; -inf (a masked key) weighs 0,
 *                  a row of nothing but -inf becomes zeros
 *   bias_gelu_row  y = gelu(y + b) (exact-erf GELU), b may be NULL */
int kn_cpu_has_avx2(void);
void kn_avx2_softmax_row(float *row, int n);
void kn_avx2_bias_gelu_row(float *y, const float *b, int64_t n);

/* cuda/kn_cuda.cu (CUDA=1 only) */
int kn_cuda_backend_init(struct kn_backend_i *i, void **ctx, const kn_backend_params *p,
                         char *err, size_t errlen);

/* Bytes of a contiguous tensor. */
static inline size_t kn_tensor_bytes(const kn_tensor *t)
{
    return (size_t)kn_tensor_nelem(t) * kn_dtype_size(t->dtype);
}

#ifdef __cplusplus
}
#endif
#endif
