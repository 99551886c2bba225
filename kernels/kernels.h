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

/* ---- small helpers shared by all layers --------------------------------- */

/* Unaligned little-endian loads and stores: LMDB values are only 2-byte
 * aligned, so every read of an on-disk integer goes through these. */
static inline uint32_t lx_ld32(const void *p) { uint32_t v; __builtin_memcpy(&v, p, 4); return v; }
static inline uint64_t lx_ld64(const void *p) { uint64_t v; __builtin_memcpy(&v, p, 8); return v; }
static inline float    lx_ldf(const void *p)  { float v;    __builtin_memcpy(&v, p, 4); return v; }
static inline void lx_st32(void *p, uint32_t v) { __builtin_memcpy(p, &v, 4); }
static inline void lx_st64(void *p, uint64_t v) { __builtin_memcpy(p, &v, 8); }
static inline void lx_stf(void *p, float v)     { __builtin_memcpy(p, &v, 4); }

/* Big-endian u32, for LMDB keys that must sort numerically. */
static inline void lx_st32be(void *p, uint32_t v) {
    unsigned char *b = p;
    b[0] = (unsigned char)(v >> 24); b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);  b[3] = (unsigned char)v;
}
static inline uint32_t lx_ld32be(const void *p) {
    const unsigned char *b = p;
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

/* Monotonic clock in seconds. */
double lx_now(void);

#endif
