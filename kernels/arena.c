/* arena.c: bump allocator for scratch memory.
 *
 * Blocks form a singly linked list, newest first. An allocation that does
 * not fit the head block gets a new block of max(block_size, n). Reset frees
 * every block but the oldest, which is kept so that steady-state requests
 * allocate nothing. */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

struct lx_arena_block {
    lx_arena_block *next;
    size_t cap;
    size_t used;
    _Alignas(16) unsigned char data[];
};

void lx_arena_init(lx_arena *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : 64 * 1024;
    a->used_total = 0;
}

void *lx_arena_alloc(lx_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    lx_arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > a->block_size ? n : a->block_size;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->cap = cap;
        b->used = 0;
        /* Keep a partly used head in front when the new block is a one-off
         * big allocation, so small allocations keep filling the old one. */
        if (a->head && cap > a->block_size) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = b->data + b->used;
    b->used += n;
    a->used_total += n;
    return p;
}

void *lx_arena_calloc(lx_arena *a, size_t n)
{
    void *p = lx_arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *lx_arena_strndup(lx_arena *a, const char *s, size_t n)
{
    char *p = lx_arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void lx_arena_reset(lx_arena *a)
{
    lx_arena_block *b = a->head, *keep = NULL;
    while (b) {
        lx_arena_block *next = b->next;
        if (!next && b->cap == a->block_size) {
            keep = b;
        } else {
            free(b);
        }
        b = next;
    }
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
    a->head = keep;
    a->used_total = 0;
}

void lx_arena_free(lx_arena *a)
{
    lx_arena_block *b = a->head;
    while (b) {
        lx_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used_total = 0;
}

int lx_buf_reserve(void **buf, size_t *cap, size_t need, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : first ? first : 64;
    while (c < need)
        c *= 2;
    void *b = realloc(*buf, c);
    if (!b)
        return LX_E_NOMEM;
    *buf = b;
    *cap = c;
    return 0;
}
