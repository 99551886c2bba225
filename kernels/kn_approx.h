/* kn_approx.h: private to kernels/: the constants of the erf and exp
 * approximations, alone so that the CUDA sources (C++) can take them
 * without kernels_impl.h. Macros only.
 */
#ifndef KN_APPROX_H
#define KN_APPROX_H

/* The erf and exp approximations, one set of constants for cpu.c's scalar
 * loops, cpu_avx2.c's vectors and the CUDA GELU (kn_cuda.cu, kn_ptx.cuh), so the three agree.
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

#endif
