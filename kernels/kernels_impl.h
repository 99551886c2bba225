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

/* The erf and exp approximations, one set of constants for cpu.c's scalar
 * loops, cpu_avx2.c's vectors and kn_cuda.cu's GELU, so the three agree.
 * erf: Eigen's rational approximation, x clamped to [-KN_ERF_CLAMP,
 * KN_ERF_CLAMP] (erf is +-1 in float beyond), x2 = x*x,
 *   p = ((((((P0 x2 + P1) x2 + P2) x2 + P3) x2 + P4) x2 + P5) x2 + P6) x
 *   q = (((Q0 x2 + Q1) x2 + Q2) x2 + Q3) x2 + Q4,   erf = p / q.
 * exp: x clamped to [KN_EXP_LO, KN_EXP_HI], n = round(x log2 e) by the
 * 1.5 * 2^23 shift, r = x - n LN2_HI - n LN2_LO, a degree-6 Taylor
 * polynomial of r, times 2^n built in the exponent bits (about 2 ulp). */
#define KN_ERF_CLAMP 4.0f
#define KN_ERF_P0 -2.72614225801306e-10f
#define KN_ERF_P1 2.77068142495902e-08f
#define KN_ERF_P2 -2.10102402082508e-06f
#define KN_ERF_P3 -5.69250639462346e-05f
#define KN_ERF_P4 -7.34990630326855e-04f
#define KN_ERF_P5 -2.95459980854025e-03f
#define KN_ERF_P6 -1.60960333262415e-02f
#define KN_ERF_Q0 -1.45660718464996e-05f
#define KN_ERF_Q1 -2.13374055278905e-04f
#define KN_ERF_Q2 -1.68282697438203e-03f
#define KN_ERF_Q3 -7.37332916720468e-03f
#define KN_ERF_Q4 -1.42647390514189e-02f
#define KN_EXP_LO -87.0f
#define KN_EXP_HI 88.0f
#define KN_EXP_LOG2E 1.44269504088896341f
#define KN_EXP_SHIFT 12582912.0f
#define KN_EXP_LN2_HI 0.693145751953125f
#define KN_EXP_LN2_LO 1.42860682030941723212e-6f

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
