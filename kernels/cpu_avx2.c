/* cpu_avx2.c: the CPU backend's elementwise hot loops eight floats at a
 * time with AVX2 and FMA, for cpu.c to call when the processor has both
 * (kn_cpu_has_avx2). The polynomials are cpu.c's fexp and ferf, so results
 * differ from the scalar loops only by FMA rounding.
 *
 * Why by hand: the softmax's sum and max are reductions, which the compiler
 * does not vectorize without -ffast-math, and the project builds for plain
 * x86-64 (SSE2), so even the loops it does vectorize ran four wide without
 * FMA. On BERT-base at 512 tokens the attention softmax was a sixth of the
 * CPU forward pass; the GELU after the FFN-up GEMM another few percent.
 *
 * Functions are compiled for AVX2 + FMA through target attributes (nothing
 * in the Makefile changes); elsewhere they are absent and
 * kn_cpu_has_avx2 returns 0.
 */
#include "kernels_impl.h"

#include <math.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

int kn_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#define SET1(c) _mm256_set1_ps(c)

/* e^x, cpu.c's fexp (kernels_impl.h's KN_EXP_*). */
AVX2 static inline __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, SET1(KN_EXP_LO)), SET1(KN_EXP_HI));
    __m256 n = _mm256_sub_ps(_mm256_fmadd_ps(x, SET1(KN_EXP_LOG2E), SET1(KN_EXP_SHIFT)), SET1(KN_EXP_SHIFT));
    __m256 r = _mm256_fnmadd_ps(n, SET1(KN_EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, SET1(KN_EXP_LN2_LO), r);
    __m256 p = SET1(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, SET1(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, SET1(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, SET1(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, SET1(0.5f));
    p = _mm256_fmadd_ps(p, r, SET1(1.0f));
    p = _mm256_fmadd_ps(p, r, SET1(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* erf(x), cpu.c's ferf (kernels_impl.h's KN_ERF_*). */
AVX2 static inline __m256 erf8(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, SET1(-KN_ERF_CLAMP)), SET1(KN_ERF_CLAMP));
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = SET1(KN_ERF_P0);
    p = _mm256_fmadd_ps(p, x2, SET1(KN_ERF_P1));
    p = _mm256_fmadd_ps(p, x2, SET1(KN_ERF_P2));
    p = _mm256_fmadd_ps(p, x2, SET1(KN_ERF_P3));
    p = _mm256_fmadd_ps(p, x2, SET1(KN_ERF_P4));
    p = _mm256_fmadd_ps(p, x2, SET1(KN_ERF_P5));
    p = _mm256_fmadd_ps(p, x2, SET1(KN_ERF_P6));
    p = _mm256_mul_ps(p, x);
    __m256 q = SET1(KN_ERF_Q0);
    q = _mm256_fmadd_ps(q, x2, SET1(KN_ERF_Q1));
    q = _mm256_fmadd_ps(q, x2, SET1(KN_ERF_Q2));
    q = _mm256_fmadd_ps(q, x2, SET1(KN_ERF_Q3));
    q = _mm256_fmadd_ps(q, x2, SET1(KN_ERF_Q4));
    return _mm256_div_ps(p, q);
}

AVX2 static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline float hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The lanes of a partial last group: the first n (0 < n < 8) all-ones. */
AVX2 static inline __m256i tail_mask(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AVX2 void kn_avx2_softmax_row(float *row, int n)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    int full = n & ~7, rest = n - full;
    __m256i tm = tail_mask(rest);
    __m256 m = ninf;
    for (int c = 0; c < full; c += 8)
        m = _mm256_max_ps(m, _mm256_loadu_ps(row + c));
    if (rest)
        m = _mm256_max_ps(m, _mm256_blendv_ps(ninf, _mm256_maskload_ps(row + full, tm), _mm256_castsi256_ps(tm)));
    float mx = hmax8(m);
    if (mx == -INFINITY)
        mx = 0;            /* every key masked: all-zero output */
    __m256 vm = _mm256_set1_ps(mx), sum = _mm256_setzero_ps();
    for (int c = 0; c < n; c += 8) {
        __m256 x = c < full ? _mm256_loadu_ps(row + c) : _mm256_maskload_ps(row + c, tm);
        /* a masked key (-inf) weighs 0, not fexp's clamped e^-87 */
        __m256 e = _mm256_andnot_ps(_mm256_cmp_ps(x, ninf, _CMP_EQ_OQ), exp8(_mm256_sub_ps(x, vm)));
        if (c < full) {
            _mm256_storeu_ps(row + c, e);
        } else {
            e = _mm256_and_ps(e, _mm256_castsi256_ps(tm));      /* lanes past n add nothing */
            _mm256_maskstore_ps(row + c, tm, e);
        }
        sum = _mm256_add_ps(sum, e);
    }
    float s = hsum8(sum);
    __m256 inv = _mm256_set1_ps(s > 0 ? 1.0f / s : 0.0f);
    for (int c = 0; c < full; c += 8)
        _mm256_storeu_ps(row + c, _mm256_mul_ps(_mm256_loadu_ps(row + c), inv));
    if (rest)
        _mm256_maskstore_ps(row + full, tm, _mm256_mul_ps(_mm256_maskload_ps(row + full, tm), inv));
}

/* gelu(x) = x/2 (1 + erf(x / sqrt 2)) */
AVX2 static inline __m256 gelu8(__m256 x)
{
    __m256 e = erf8(_mm256_mul_ps(x, SET1(0.70710678118654752f)));
    return _mm256_mul_ps(_mm256_mul_ps(SET1(0.5f), x), _mm256_add_ps(SET1(1.0f), e));
}

AVX2 void kn_avx2_bias_gelu_row(float *y, const float *b, int64_t n)
{
    int64_t full = n & ~(int64_t)7;
    int rest = (int)(n - full);
    for (int64_t c = 0; c < full; c += 8) {
        __m256 x = _mm256_loadu_ps(y + c);
        if (b)
            x = _mm256_add_ps(x, _mm256_loadu_ps(b + c));
        _mm256_storeu_ps(y + c, gelu8(x));
    }
    if (rest) {
        __m256i tm = tail_mask(rest);
        __m256 x = _mm256_maskload_ps(y + full, tm);
        if (b)
            x = _mm256_add_ps(x, _mm256_maskload_ps(b + full, tm));
        _mm256_maskstore_ps(y + full, tm, gelu8(x));
    }
}

#else

int kn_cpu_has_avx2(void) { return 0; }
void kn_avx2_softmax_row(float *row, int n) { (void)row, (void)n; }
void kn_avx2_bias_gelu_row(float *y, const float *b, int64_t n) { (void)y, (void)b, (void)n; }

#endif
