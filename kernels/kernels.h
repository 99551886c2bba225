/* kernels.h: the base of lexis (lx_) and, later, its math kernels (kn_).
 *
 * Everything above this layer includes this header for three things:
 *   - status codes: every function returns int; 0 is success, a positive
 *     value is an errno passed through, a negative value is an LX_E_* code.
 *     lx_strerror(rc) names them all.
 *   - LX_ASSERT: a bug aborts with file and line; runtime failures never do.
 *   - lx_arena: bump allocation for scratch that dies together.
 *
 * Usage:
 *     lx_arena a;
 *     lx_arena_init(&a, 64 * 1024);
 *     uint32_t *buf = lx_arena_alloc(&a, n * sizeof *buf);   // NULL on OOM
 *     ...
 *     lx_arena_reset(&a);        // reuse for the next request
 *     lx_arena_free(&a);
 *
 * The kn_ part (below the base) is the math: tensors, a backend table with
 * a CPU backend (scalar reference + OpenBLAS fast paths) and an optional
 * CUDA backend (built with CUDA=1), safetensors weights and a BERT encoder:
 *
 *     kn_backend *be;
 *     kn_backend_open(&be, KN_BACKEND_CPU, NULL);      // or KN_BACKEND_CUDA
 *     kn_bert *m;
 *     if (kn_bert_open(&m, be, "models/splade-v3", NULL) != 0)
 *         fprintf(stderr, "%s\n", kn_backend_errmsg(be));
 *     kn_bert_batch b = { .n_seq = 2, .seq_off = (int32_t[]){0, 5, 12},
 *                         .ids = ids, .types = NULL };       // 12 tokens packed
 *     float *splade = malloc(2 * kn_bert_config_of(m)->vocab * sizeof(float));
 *     kn_bert_forward(m, &b, &(kn_bert_out){ .splade = splade });
 *     kn_bert_close(m);
 *     kn_backend_close(be);
 */
#ifndef LX_KERNELS_H
#define LX_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- status codes ------------------------------------------------------- */

enum lx_status {
    LX_OK = 0,
    LX_E_FIRST = -30900,
    LX_E_INVAL = LX_E_FIRST,   /* bad argument or option value */
    LX_E_NOMEM,                /* allocation failed */
    LX_E_IO,                   /* read or write failed */
    LX_E_NOTFOUND,             /* no such document, term or key */
    LX_E_EXISTS,               /* target already exists */
    LX_E_CORRUPT,              /* a checksum or structural check failed */
    LX_E_VERSION,              /* index written by a newer format version */
    LX_E_NOTINDEX,             /* directory is not a lexis index */
    LX_E_INPUT,                /* malformed input (JSON, fields, encoding) */
    LX_E_TOOBIG,               /* input exceeds a limit */
    LX_E_MAPFULL,              /* storage map full and could not grow */
    LX_E_UNSUPPORTED,          /* operation not supported by this build/backend */
    LX_E_STORE,                /* storage engine error (detail in errmsg) */
    LX_E_BUSY,                 /* resource locked by another writer */
    LX_E_LAST
};

/* Name of a status code: errno text for positive values, lexis text for
 * LX_E_*, "success" for 0. Returns a static string (never NULL). */
const char *lx_strerror(int rc);

/* ---- assertions --------------------------------------------------------- */

/* Called before abort() on a failed LX_ASSERT; a server can set one to log.
 * The hook is per process by nature (abort is); it is the one settable
 * function pointer lexis keeps, and it never carries state. */
typedef void (*lx_abort_fn)(const char *file, int line, const char *expr);
void lx_set_abort_hook(lx_abort_fn fn);
_Noreturn void lx_assert_fail(const char *file, int line, const char *expr);

#define LX_ASSERT(x) \
    do { if (!(x)) lx_assert_fail(__FILE__, __LINE__, #x); } while (0)

/* ---- arenas ------------------------------------------------------------- */

/* A chain of blocks; allocations are 16-byte aligned and live until
 * lx_arena_reset or lx_arena_free. The arena owns every block. */
typedef struct lx_arena_block lx_arena_block;
typedef struct lx_arena {
    lx_arena_block *head;     /* current block, newest first */
    size_t block_size;        /* default size of a new block */
    size_t used_total;        /* bytes handed out since the last reset */
} lx_arena;

void  lx_arena_init(lx_arena *a, size_t block_size);
void *lx_arena_alloc(lx_arena *a, size_t n);              /* NULL on OOM */
void *lx_arena_calloc(lx_arena *a, size_t n);             /* zeroed */
char *lx_arena_strndup(lx_arena *a, const char *s, size_t n);
void  lx_arena_reset(lx_arena *a);   /* keeps the first block, frees others */
void  lx_arena_free(lx_arena *a);

/* A growable buffer owned by the caller: makes *buf (of *cap bytes, NULL/0
 * at first) hold at least `need` bytes, doubling from `first` (or from *cap),
 * keeping the contents. LX_E_NOMEM leaves *buf and *cap as they were. */
int   lx_buf_reserve(void **buf, size_t *cap, size_t need, size_t first);

/* ---- small helpers shared by all layers --------------------------------- */

/* Unaligned little-endian loads and stores: LMDB values are only 2-byte
 * aligned, so every read of an on-disk integer goes through these. */
static inline uint16_t lx_ld16(const void *p) { uint16_t v; __builtin_memcpy(&v, p, 2); return v; }
static inline uint32_t lx_ld32(const void *p) { uint32_t v; __builtin_memcpy(&v, p, 4); return v; }
static inline uint64_t lx_ld64(const void *p) { uint64_t v; __builtin_memcpy(&v, p, 8); return v; }
static inline float    lx_ldf(const void *p)  { float v;    __builtin_memcpy(&v, p, 4); return v; }
static inline void lx_st16(void *p, uint16_t v) { __builtin_memcpy(p, &v, 2); }
static inline void lx_st32(void *p, uint32_t v) { __builtin_memcpy(p, &v, 4); }
static inline void lx_st64(void *p, uint64_t v) { __builtin_memcpy(p, &v, 8); }

/* qsort that accepts an empty array. C says qsort's pointer must be valid
 * even when n is 0, and an empty vector here is often NULL (UBSan flags
 * it); every sort in the project goes through this one. */
#include <stdlib.h>
static inline void lx_sort(void *base, size_t n, size_t size,
                           int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}
static inline void lx_stf(void *p, float v)     { __builtin_memcpy(p, &v, 4); }

/* FNV-1a of n bytes: the hash of the analyzer's stop set and stem cache and
 * of the query engine's term tables (words are short, where it is fast). */
static inline uint32_t lx_fnv1a32(const void *s, size_t n)
{
    const unsigned char *b = (const unsigned char *)s;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

/* Big-endian u32, for LMDB keys that must sort numerically. */
static inline void lx_st32be(void *p, uint32_t v) {
    unsigned char *b = (unsigned char *)p;
    b[0] = (unsigned char)(v >> 24); b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);  b[3] = (unsigned char)v;
}
static inline uint32_t lx_ld32be(const void *p) {
    const unsigned char *b = (const unsigned char *)p;
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

/* UTF-8: length (1..4) of the valid sequence at s and its code point in
 * *cp; 0 when s starts none: a stray continuation byte, an overlong form, a
 * surrogate, a value above U+10FFFF, C0/C1/F5-FF, or a sequence cut by the
 * end of the input. Reads at most `avail` (>= 1) bytes. The one UTF-8
 * decoder of the project: the analyzer, the CLI and the server use it. */
static inline size_t lx_utf8_decode(const unsigned char *s, size_t avail, int32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = (int32_t)c;
        return 1;
    }
    if (c < 0xC2)
        return 0;
    if (c < 0xE0) {
        if (avail < 2 || (s[1] & 0xC0) != 0x80)
            return 0;
        *cp = (int32_t)(((c & 0x1Fu) << 6) | (s[1] & 0x3Fu));
        return 2;
    }
    if (c < 0xF0) {
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80;     /* E0: no overlongs */
        unsigned hi = c == 0xED ? 0x9F : 0xBF;     /* ED: no surrogates */
        if (avail < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80)
            return 0;
        *cp = (int32_t)(((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu));
        return 3;
    }
    if (c < 0xF5) {
        unsigned lo = c == 0xF0 ? 0x90 : 0x80;     /* F0: no overlongs */
        unsigned hi = c == 0xF4 ? 0x8F : 0xBF;     /* F4: <= U+10FFFF */
        if (avail < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 ||
            (s[3] & 0xC0) != 0x80)
            return 0;
        *cp = (int32_t)(((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) |
                        ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu));
        return 4;
    }
    return 0;
}

/* Monotonic clock in seconds. */
double lx_now(void);

/* ======================================================================== */
/* kn_: tensors, backends, ops                                              */
/* ======================================================================== */

#include <stdbool.h>

/* ---- tensors ------------------------------------------------------------ */

typedef enum kn_dtype {
    KN_F32, KN_F16, KN_BF16, KN_I32, KN_I64, KN_DTYPE_COUNT
} kn_dtype;

size_t      kn_dtype_size(kn_dtype t);           /* bytes per element */
const char *kn_dtype_name(kn_dtype t);           /* "F32", ... as safetensors spells it */

enum { KN_MAX_DIMS = 4 };
enum kn_device { KN_DEV_HOST = 0, KN_DEV_CUDA = 1 };

/* A strided view of numbers. Shapes are row-major, outermost first, as in
 * PyTorch: a [T, H] tensor has ne = {T, H} and, when contiguous,
 * nb = {H, 1}. Strides are in elements. Ops need the last dimension
 * contiguous (nb[ndim-1] == 1) and read a tensor as rows x cols with one
 * row stride (nb[ndim-2]); a column slice of a wider matrix (the Q part of
 * a fused QKV output) is such a view.
 * The tensor owns `data` only when `owned` is set (kn_tensor_alloc); views
 * and mmap'd weights borrow it. `device` says whose memory `data` is. */
typedef struct kn_tensor {
    kn_dtype dtype;
    int ndim;
    int device;                 /* enum kn_device */
    int owned;
    int64_t ne[KN_MAX_DIMS];
    int64_t nb[KN_MAX_DIMS];
    void *data;
} kn_tensor;

/* A contiguous tensor over borrowed memory (host or device). */
kn_tensor kn_tensor_make(void *data, kn_dtype t, int device, int ndim, const int64_t *shape);
/* Shorthands: a 1-D or 2-D contiguous host tensor over borrowed memory. */
kn_tensor kn_tensor_1d(void *data, kn_dtype t, int64_t n);
kn_tensor kn_tensor_2d(void *data, kn_dtype t, int64_t rows, int64_t cols);
int64_t   kn_tensor_nelem(const kn_tensor *t);
int       kn_tensor_is_contiguous(const kn_tensor *t);
int64_t   kn_tensor_rows(const kn_tensor *t);    /* product of all but the last dim */
int64_t   kn_tensor_cols(const kn_tensor *t);    /* the last dim */
int64_t   kn_tensor_row_stride(const kn_tensor *t);
/* A view of columns [c0, c0+n) of every row (borrows t's memory). */
kn_tensor kn_tensor_cols_view(const kn_tensor *t, int64_t c0, int64_t n);
/* A view of rows [r0, r0+n) of a 2-D tensor (borrows t's memory). */
kn_tensor kn_tensor_rows_view(const kn_tensor *t, int64_t r0, int64_t n);

/* Conversions between host arrays (n elements; src and dst may not overlap). */
void  kn_convert(void *dst, kn_dtype dt, const void *src, kn_dtype st, size_t n);
float kn_f16_to_f32(uint16_t h);
float kn_bf16_to_f32(uint16_t h);
uint16_t kn_f32_to_f16(float f);
uint16_t kn_f32_to_bf16(float f);    /* round to nearest even; NaN stays NaN */

/* ---- backends ----------------------------------------------------------- */

/* A backend runs ops on tensors in its memory. The CPU backend is always
 * built; the CUDA one with CUDA=1. Every op has a plain scalar reference on
 * the CPU; an op a backend cannot run (kn_backend_supports_op false) runs on
 * the CPU instead, copying through host memory (slow but right). */
typedef struct kn_backend kn_backend;

enum kn_backend_kind { KN_BACKEND_CPU, KN_BACKEND_CUDA };

typedef struct kn_backend_params {
    int n_threads;      /* CPU: threads for ops and OpenBLAS; 0 = all cores */
    int reference;      /* CPU: 1 = run every op by its scalar reference (slow; the oracle) */
    int no_avx2;        /* CPU: 1 = the portable loops even where AVX2 + FMA exist (tests) */
    int device;         /* CUDA: device ordinal */
    int profile;        /* 1: time every op (synchronizing after each); see kn_backend_profile */
} kn_backend_params;
kn_backend_params kn_backend_default_params(void);

/* Opens a backend (params may be NULL for the defaults). KN_BACKEND_CUDA
 * returns LX_E_UNSUPPORTED in a build without CUDA=1 and when no GPU is
 * usable; *out is NULL then. The caller owns *out: kn_backend_close. */
int  kn_backend_open(kn_backend **out, int kind, const kn_backend_params *p);
void kn_backend_close(kn_backend *be);
const char *kn_backend_name(const kn_backend *be);
int  kn_backend_device(const kn_backend *be);       /* enum kn_device of its memory */
/* The last error's detail ("model.safetensors: tensor x: offsets past end
 * of file"); borrowed, valid until the next call on be. */
const char *kn_backend_errmsg(const kn_backend *be);
int  kn_backend_sync(kn_backend *be);              /* wait for queued work */
/* With params.profile: seconds spent and calls made per op since open
 * (arrays of KN_OP_COUNT, filled); returns LX_E_UNSUPPORTED otherwise. */
int  kn_backend_profile(const kn_backend *be, double *seconds, long *calls);

/* Memory in the backend's space. kn_tensor_alloc gives a contiguous tensor
 * that owns its memory (free with kn_tensor_free; a tensor that does not
 * own its memory is left alone). Copies are synchronous. */
int  kn_tensor_alloc(kn_backend *be, kn_tensor *t, kn_dtype dt, int ndim, const int64_t *shape);
void kn_tensor_free(kn_backend *be, kn_tensor *t);
int  kn_tensor_upload(kn_backend *be, kn_tensor *dst, const void *host);   /* contiguous dst */
int  kn_tensor_download(kn_backend *be, const kn_tensor *src, void *host); /* contiguous src */
/* Download converting to f32 (any float dtype). */
int  kn_tensor_download_f32(kn_backend *be, const kn_tensor *src, float *host);
/* Host memory that downloads into and uploads from run fastest: page-locked
 * on CUDA (a copy then goes at the bus's speed instead of through the
 * driver's staging buffer), plain malloc on the CPU. NULL when it cannot
 * be had. Free it with kn_host_free on the same backend. */
void *kn_host_alloc(kn_backend *be, size_t n);
void  kn_host_free(kn_backend *be, void *p);

/* ---- ops ---------------------------------------------------------------- */

typedef enum kn_op {
    KN_OP_MATMUL,       /* dst[M,N] = act(src0[M,K] . src1[N,K]^T + src2[N]) */
    KN_OP_LAYERNORM,    /* dst = (x - mean)/sqrt(var + eps) * src2 + src3, x = src0 (+ src1) */
    KN_OP_RMSNORM,      /* dst = x / sqrt(mean(x^2) + eps) * src2, x = src0 (+ src1) */
    KN_OP_GELU,         /* dst = gelu(src0 (+ src1[cols])), exact erf form */
    KN_OP_SILU,         /* dst = silu(src0) (* src1 when given: the SwiGLU gate) */
    KN_OP_SOFTMAX,      /* dst = softmax(scale * src0) over each row */
    KN_OP_ATTENTION,    /* dst[T, Hq*D] = softmax(scale q k^T + mask) v per sequence */
    KN_OP_ROPE,         /* dst[T, H*D] = src0 rotated by position src1[T] (NeoX halves) */
    KN_OP_GET_ROWS,     /* dst[T, D] = src0[src1[t], :] (+ dst when accumulate) */
    KN_OP_ADD,          /* dst = src0 + src1 (src1 one row: broadcast) */
    KN_OP_SCALE,        /* dst = scale * src0 */
    KN_OP_SPLADE_POOL,  /* dst[S, V] = max_t log1p(relu(src0[t] . src1[v] + src2[v])) per sequence */
    KN_OP_COUNT
} kn_op;

enum kn_act { KN_ACT_NONE, KN_ACT_GELU, KN_ACT_RELU };

/* One op call. Tensors are borrowed for the call. Float parameters:
 * eps (norms), scale (softmax, attention, scale), theta (rope).
 * Integer parameters: act (matmul), n_head / n_kv_head / causal / max_len
 * (attention), rot_dims (rope), accumulate (get_rows).
 * seq_off: I32 [n_seq + 1] token offsets of the sequences packed in the rows
 * (attention, splade): sequence s is rows [seq_off[s], seq_off[s+1]). It lives
 * in the backend's memory like every other tensor. */
typedef struct kn_op_args {
    kn_op op;
    kn_tensor *dst;
    const kn_tensor *src[4];
    const kn_tensor *seq_off;
    float eps, scale, theta;
    int act, n_head, n_kv_head, causal, max_len, rot_dims, accumulate;
} kn_op_args;

const char *kn_op_name(kn_op op);
bool kn_backend_supports_op(const kn_backend *be, const kn_op_args *a);
/* Runs one op on be, or on the CPU when be does not support it. Returns 0,
 * LX_E_INVAL for shapes or dtypes that do not fit (detail in errmsg). */
int  kn_backend_run(kn_backend *be, const kn_op_args *a);

/* Typed wrappers over kn_backend_run; NULL means "not given". */
int kn_matmul(kn_backend *be, kn_tensor *dst, const kn_tensor *x, const kn_tensor *w,
              const kn_tensor *bias, int act);
int kn_layernorm(kn_backend *be, kn_tensor *dst, const kn_tensor *x, const kn_tensor *residual,
                 const kn_tensor *gamma, const kn_tensor *beta, float eps);
int kn_rmsnorm(kn_backend *be, kn_tensor *dst, const kn_tensor *x, const kn_tensor *residual,
               const kn_tensor *gamma, float eps);
int kn_gelu(kn_backend *be, kn_tensor *dst, const kn_tensor *x, const kn_tensor *bias);
int kn_silu(kn_backend *be, kn_tensor *dst, const kn_tensor *x, const kn_tensor *gate_mul);
int kn_softmax(kn_backend *be, kn_tensor *dst, const kn_tensor *x, float scale);
/* q [T, Hq*D], k and v [T, Hkv*D] (row-strided views allowed), key_mask
 * optional F32 [T] (0 = padding: never attended), seq_off I32 [S+1];
 * max_len >= the longest sequence. Hq % Hkv == 0 (grouped-query). */
int kn_attention(kn_backend *be, kn_tensor *dst, const kn_tensor *q, const kn_tensor *k,
                 const kn_tensor *v, const kn_tensor *key_mask, const kn_tensor *seq_off,
                 int n_head, int n_kv_head, int max_len, float scale, int causal);
int kn_rope(kn_backend *be, kn_tensor *dst, const kn_tensor *x, const kn_tensor *pos,
            int n_head, int rot_dims, float theta);
int kn_get_rows(kn_backend *be, kn_tensor *dst, const kn_tensor *table, const kn_tensor *ids,
                int accumulate);
int kn_add(kn_backend *be, kn_tensor *dst, const kn_tensor *a, const kn_tensor *b);
int kn_scale(kn_backend *be, kn_tensor *dst, const kn_tensor *x, float s);
int kn_splade_pool(kn_backend *be, kn_tensor *dst, const kn_tensor *h, const kn_tensor *w,
                   const kn_tensor *bias, const kn_tensor *seq_off, int max_len);

/* ---- safetensors -------------------------------------------------------- */

/* A safetensors file, mmap'd read-only. The header is validated whole at
 * open: 8-byte length within the file, JSON object, every entry a known
 * dtype with a shape whose byte size equals its data_offsets span, spans
 * inside the file and not overlapping. Tensors point into the map. */
typedef struct kn_st_file kn_st_file;

/* errbuf (may be NULL) receives a message naming the file and the problem.
 * Returns LX_E_CORRUPT for a malformed file, errno for I/O. */
int  kn_st_open(kn_st_file **out, const char *path, char *errbuf, size_t errlen);
/* The same checks over bytes in memory (borrowed until kn_st_close). */
int  kn_st_open_mem(kn_st_file **out, const void *buf, size_t len, char *errbuf, size_t errlen);
void kn_st_close(kn_st_file *f);
int  kn_st_count(const kn_st_file *f);
const char *kn_st_name(const kn_st_file *f, int i);
/* Looks a tensor up: a host tensor borrowing the map (valid until
 * kn_st_close). LX_E_NOTFOUND if absent. */
int  kn_st_get(const kn_st_file *f, const char *name, kn_tensor *out);

/* ---- BERT --------------------------------------------------------------- */

typedef struct kn_bert_config {
    int vocab, hidden, n_layer, n_head, inter, max_pos, type_vocab;
    float ln_eps;
} kn_bert_config;

typedef struct kn_bert kn_bert;

typedef struct kn_bert_params {
    kn_dtype weight_dtype;   /* CUDA: weights and activations (KN_BF16 default, KN_F16, KN_F32) */
    int load_mlm_head;       /* 1 (default): load cls.predictions.* when present */
} kn_bert_params;
kn_bert_params kn_bert_default_params(void);

/* Opens a Hugging Face BERT checkpoint directory: config.json and
 * model.safetensors (tensor names bert.embeddings.*, bert.encoder.layer.N.*,
 * cls.predictions.*; the "bert." prefix may be absent; LayerNorm
 * gamma/beta spellings accepted; a missing decoder weight is tied to the
 * word embeddings). Weights are checked for presence, dtype and shape.
 * On the CPU, F32 weights are used in place from the map; F16/BF16 are
 * converted once. On CUDA they are uploaded in params->weight_dtype.
 * The model borrows be (which must outlive it); details of a failure are in
 * kn_backend_errmsg(be). */
int  kn_bert_open(kn_bert **out, kn_backend *be, const char *dir, const kn_bert_params *p);
void kn_bert_close(kn_bert *m);
const kn_bert_config *kn_bert_config_of(const kn_bert *m);
int  kn_bert_has_mlm_head(const kn_bert *m);

/* A batch of sequences packed without padding: sequence s is tokens
 * [seq_off[s], seq_off[s+1]) of ids/types (host arrays, borrowed for the
 * call; types may be NULL for all zeros). Positions restart at 0 for each
 * sequence. */
typedef struct kn_bert_batch {
    int n_seq;
    const int32_t *seq_off;   /* [n_seq + 1], seq_off[0] == 0 */
    const int32_t *ids;       /* [T] */
    const int32_t *types;     /* [T] or NULL */
} kn_bert_batch;

/* What to compute; each non-NULL host buffer is filled (the caller owns them). */
typedef struct kn_bert_out {
    float *hidden;      /* [T, hidden]  last hidden state */
    float *logits;      /* [T, vocab]   masked-LM logits */
    float *splade;      /* [n_seq, vocab] max over positions of log1p(relu(logits)) */
} kn_bert_out;

int kn_bert_forward(kn_bert *m, const kn_bert_batch *b, const kn_bert_out *out);

#endif
