/* tensor.c: tensor views, dtypes and float conversions.
 *
 * A kn_tensor is a plain struct: shape and strides (in elements) over
 * memory it may or may not own. Nothing here allocates; kn_tensor_alloc in
 * backend.c does, in the memory of a backend. The conversions are the
 * scalar definitions every backend agrees on: bf16 rounds to nearest even
 * (as PyTorch's .to(torch.bfloat16)), f16 is IEEE binary16 with subnormals.
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

static const struct { const char *name; size_t size; } kn_dtypes[KN_DTYPE_COUNT] = {
    [KN_F32] = {"F32", 4}, [KN_F16] = {"F16", 2}, [KN_BF16] = {"BF16", 2},
    [KN_I32] = {"I32", 4}, [KN_I64] = {"I64", 8},
};

size_t kn_dtype_size(kn_dtype t)
{
    return (unsigned)t < KN_DTYPE_COUNT ? kn_dtypes[t].size : 0;
}

const char *kn_dtype_name(kn_dtype t)
{
    return (unsigned)t < KN_DTYPE_COUNT ? kn_dtypes[t].name : "?";
}

// --- views ------------------------------------------------------------------

kn_tensor kn_tensor_make(void *data, kn_dtype t, int device, int ndim, const int64_t *shape)
{
    kn_tensor x;
    memset(&x, 0, sizeof x);
    LX_ASSERT(ndim >= 1 && ndim <= KN_MAX_DIMS);
    x.dtype = t;
    x.ndim = ndim;
    x.device = device;
    x.data = data;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        x.ne[i] = shape[i];
        x.nb[i] = s;
        s *= shape[i];
    }
    return x;
}

kn_tensor kn_tensor_1d(void *data, kn_dtype t, int64_t n)
{
    return kn_tensor_make(data, t, KN_DEV_HOST, 1, &n);
}

kn_tensor kn_tensor_2d(void *data, kn_dtype t, int64_t rows, int64_t cols)
{
    int64_t sh[2] = {rows, cols};
    return kn_tensor_make(data, t, KN_DEV_HOST, 2, sh);
}

int64_t kn_tensor_nelem(const kn_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->ne[i];
    return n;
}

int kn_tensor_is_contiguous(const kn_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->ne[i] != 1 && t->nb[i] != s)
            return 0;
        s *= t->ne[i];
    }
    return 1;
}

int64_t kn_tensor_rows(const kn_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim - 1; i++)
        n *= t->ne[i];
    return n;
}

int64_t kn_tensor_cols(const kn_tensor *t) { return t->ne[t->ndim - 1]; }

int64_t kn_tensor_row_stride(const kn_tensor *t)
{
    return t->ndim >= 2 ? t->nb[t->ndim - 2] : t->ne[0];
}

kn_tensor kn_tensor_cols_view(const kn_tensor *t, int64_t c0, int64_t n)
{
    LX_ASSERT(c0 >= 0 && n >= 0 && c0 + n <= kn_tensor_cols(t));
    kn_tensor v = *t;
    v.owned = 0;
    v.ne[v.ndim - 1] = n;
    v.data = (char *)t->data + (size_t)c0 * t->nb[t->ndim - 1] * kn_dtype_size(t->dtype);
    return v;
}

kn_tensor kn_tensor_rows_view(const kn_tensor *t, int64_t r0, int64_t n)
{
    LX_ASSERT(t->ndim == 2 && r0 >= 0 && n >= 0 && r0 + n <= t->ne[0]);
    kn_tensor v = *t;
    v.owned = 0;
    v.ne[0] = n;
    v.data = (char *)t->data + (size_t)(r0 * t->nb[0]) * kn_dtype_size(t->dtype);
    return v;
}

// --- conversions ------------------------------------------------------------

float kn_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t kn_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)          /* NaN: keep it quiet NaN */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float kn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu, u;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 */
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t kn_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return sign | 0x7e00;                      /* NaN */
    if (a >= 0x477ff000u)                          /* >= 65520 rounds to inf */
        return sign | 0x7c00;
    if (a < 0x38800000u) {                         /* below 2^-14: subnormal */
        float v;
        memcpy(&v, &a, 4);
        float q = rintf(v * 16777216.0f);          /* units of 2^-24, ties to even */
        return sign | (uint16_t)q;
    }
    /* normal: round the 23-bit mantissa to 10 bits, ties to even */
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
    return sign | (uint16_t)((r - (112u << 23)) >> 13);
}

static double kn_load(const void *p, kn_dtype t, size_t i)
{
    switch (t) {
    case KN_F32: return ((const float *)p)[i];
    case KN_F16: return kn_f16_to_f32(((const uint16_t *)p)[i]);
    case KN_BF16: return kn_bf16_to_f32(((const uint16_t *)p)[i]);
    case KN_I32: return ((const int32_t *)p)[i];
    case KN_I64: return (double)((const int64_t *)p)[i];
    default: LX_ASSERT(!"bad dtype"); return 0;
    }
}

void kn_convert(void *dst, kn_dtype dt, const void *src, kn_dtype st, size_t n)
{
    if (dt == st) {
        memcpy(dst, src, n * kn_dtype_size(dt));
        return;
    }
    if (dt == KN_F32 && st == KN_BF16) {           /* the hot cases, no switch per element */
        for (size_t i = 0; i < n; i++)
            ((float *)dst)[i] = kn_bf16_to_f32(((const uint16_t *)src)[i]);
        return;
    }
    if (dt == KN_F32 && st == KN_F16) {
        for (size_t i = 0; i < n; i++)
            ((float *)dst)[i] = kn_f16_to_f32(((const uint16_t *)src)[i]);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double v = kn_load(src, st, i);
        switch (dt) {
        case KN_F32: ((float *)dst)[i] = (float)v; break;
        case KN_F16: ((uint16_t *)dst)[i] = kn_f32_to_f16((float)v); break;
        case KN_BF16: ((uint16_t *)dst)[i] = kn_f32_to_bf16((float)v); break;
        case KN_I32: ((int32_t *)dst)[i] = (int32_t)v; break;
        case KN_I64: ((int64_t *)dst)[i] = (int64_t)v; break;
        default: LX_ASSERT(!"bad dtype");
        }
    }
}
