/* fuzz_guard.h: buffers that end at a PROT_NONE page, for the fuzz targets.
 *
 * StreamVByte and other system libraries are not ASan-instrumented, so a
 * read past a value's end inside them is invisible to ASan. A value placed
 * with fz_guard_place ends exactly at a guard page (such a read faults),
 * and the bytes before it are ASan-poisoned. Include after index_impl.h
 * (LX_ASSERT); one region per buffer, reused for every input.
 */
#ifndef LX_FUZZ_GUARD_H
#define LX_FUZZ_GUARD_H

#include <sanitizer/asan_interface.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct fz_guard {
    unsigned char *base;
    size_t cap;                    /* usable bytes; the guard page follows */
} fz_guard;

static void fz_guard_init(fz_guard *g, size_t cap)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    cap = (cap + pg - 1) / pg * pg;
    g->base = mmap(NULL, cap + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    LX_ASSERT(g->base != MAP_FAILED);
    LX_ASSERT(mprotect(g->base + cap, pg, PROT_NONE) == 0);
    g->cap = cap;
}

/* The last len bytes before the guard page, holding a copy of src (if
 * given); everything before them is poisoned. */
static unsigned char *fz_guard_place(fz_guard *g, const void *src, size_t len)
{
    LX_ASSERT(len <= g->cap);
    unsigned char *p = g->base + g->cap - len;
    ASAN_UNPOISON_MEMORY_REGION(g->base, g->cap);
    if (src && len)
        memcpy(p, src, len);
    ASAN_POISON_MEMORY_REGION(g->base, g->cap - len);
    return p;
}

#endif
