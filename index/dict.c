/* dict.c: a segment's term dictionary and its postings (format 5).
 *
 * A query term cost two B-tree searches in format 4: its text in the terms
 * database (term id, df), then (term id, segment) in the postings
 * database, each with LMDB's key compares: 15-20% of a top-10 query's time
 * on SciFact (cpu-clock), and a query term's lookups all hit the cache of
 * the engine, 24% less time there (the bound of this change). Each segment
 * now has a dictionary of its own, a hash table from a term's text to
 * where its list lies, and its lists lie back to back in a few large
 * values (chunks): finding a term's list is a hash, a probe or two and a
 * bounds check. The terms database stays, for term ids, live df and cf:
 * the writer, the merge, `lexis check` and snapshots with deletions use it.
 *
 * Dictionary (dicts database, key u32be seg; little endian):
 *   header (24 bytes): u32 nterms, u32 nslots (a power of two > nterms),
 *                      u32 nchunks, u32 strings_size,
 *                      u64 checksum: XXH3 of every byte after the header
 *   slots[nslots]:     u32 tag (the high 32 bits of XXH3 of the text),
 *                      u32 entry number + 1 (0: empty); linear probing
 *                      from (XXH3 of the text) & (nslots - 1)
 *   entries[nterms]:   u32 term_id, u32 chunk, u32 offset, u32 size,
 *                      u32 text_offset, u32 text_len; term ids increasing
 *   strings:           the texts, back to back
 * Chunks (postings database, key u32be seg, u32be chunk): the segment's
 * postings list values back to back, in term id order, a list within one
 * chunk. A chunk is closed when the next list would take it past
 * IDX_CHUNK_BYTES (a larger list gets a chunk of its own), so a writer
 * holds one chunk in memory, not the segment's postings.
 *
 * Reading trusts no offset: every probe checks the entry, the text and the
 * list against their value's bounds. The checksum costs a pass over the
 * dictionary, too much for every snapshot a query opens: `lexis check`
 * verifies it.
 */
#include "index_impl.h"

#include <stdlib.h>
#include <string.h>

#define DICT_HEADER 24
#define DICT_SLOT 8
#define DICT_ENTRY 24
/* an entry's fields, by byte offset */
enum { E_TERM_ID = 0, E_CHUNK = 4, E_OFFSET = 8, E_SIZE = 12, E_TEXT_OFF = 16, E_TEXT_LEN = 20 };

/* ---- writing ------------------------------------------------------------------ */

void idx_dict_builder_init(idx_dict_builder *b, idx_stxn *t, uint32_t seg, size_t chunk_bytes)
{
    memset(b, 0, sizeof *b);
    b->t = t;
    b->seg = seg;
    b->chunk_bytes = chunk_bytes;
}

void idx_dict_builder_free(idx_dict_builder *b)
{
    free(b->chunk);
    free(b->entries);
    free(b->strings);
    memset(b, 0, sizeof *b);
}

static int close_chunk(idx_dict_builder *b)
{
    unsigned char key[8];
    lx_st32be(key, b->seg);
    lx_st32be(key + 4, b->nchunks);
    /* (seg, chunk) only grows within a segment and segments only grow: append */
    int rc = idx_store_put(b->t, IDX_DB_POSTINGS, key, 8, b->chunk, b->chunk_len, 1);
    if (rc == 0) {
        b->nchunks++;
        b->chunk_len = 0;
    }
    return rc;
}

int idx_dict_builder_add(idx_dict_builder *b, uint32_t term_id, const char *text, size_t len,
                         const void *list, size_t size)
{
    int rc;
    if ((b->nterms && term_id <= b->last_term_id) || len > UINT32_MAX || size > UINT32_MAX
        || b->nterms >= UINT32_MAX / 4)
        return LX_E_INVAL;
    if (b->chunk_len && b->chunk_len + size > b->chunk_bytes && (rc = close_chunk(b)) != 0)
        return rc;
    if (b->strings_len + len > UINT32_MAX)
        return LX_E_TOOBIG;
    if ((rc = lx_buf_reserve((void **)&b->chunk, &b->chunk_cap, b->chunk_len + size, 1 << 16))
        || (rc = lx_buf_reserve((void **)&b->entries, &b->entries_cap, (b->nterms + 1) * DICT_ENTRY, 1 << 12))
        || (rc = lx_buf_reserve((void **)&b->strings, &b->strings_cap, b->strings_len + len, 1 << 12)))
        return rc;
    unsigned char *e = b->entries + b->nterms * DICT_ENTRY;
    lx_st32(e + E_TERM_ID, term_id);
    lx_st32(e + E_CHUNK, b->nchunks);
    lx_st32(e + E_OFFSET, (uint32_t)b->chunk_len);
    lx_st32(e + E_SIZE, (uint32_t)size);
    lx_st32(e + E_TEXT_OFF, (uint32_t)b->strings_len);
    lx_st32(e + E_TEXT_LEN, (uint32_t)len);
    memcpy(b->chunk + b->chunk_len, list, size);
    memcpy(b->strings + b->strings_len, text, len);
    b->chunk_len += size;
    b->strings_len += len;
    b->nterms++;
    b->last_term_id = term_id;
    return 0;
}

int idx_dict_builder_finish(idx_dict_builder *b)
{
    int rc;
    if (b->chunk_len && (rc = close_chunk(b)) != 0)
        return rc;
    uint32_t nslots = 1;
    while (nslots < 2 * b->nterms)
        nslots *= 2;
    if (nslots <= b->nterms)
        nslots *= 2;            /* a probe must reach an empty slot */
    size_t slots_at = DICT_HEADER, entries_at = slots_at + (size_t)nslots * DICT_SLOT,
           strings_at = entries_at + b->nterms * DICT_ENTRY, size = strings_at + b->strings_len;
    unsigned char key[4], *v;
    lx_st32be(key, b->seg);
    if ((rc = idx_store_reserve(b->t, IDX_DB_DICTS, key, 4, size, 1, (void **)&v)) != 0)
        return rc;
    lx_st32(v, (uint32_t)b->nterms);
    lx_st32(v + 4, nslots);
    lx_st32(v + 8, b->nchunks);
    lx_st32(v + 12, (uint32_t)b->strings_len);
    memset(v + slots_at, 0, (size_t)nslots * DICT_SLOT);
    if (b->nterms)
        memcpy(v + entries_at, b->entries, b->nterms * DICT_ENTRY);
    if (b->strings_len)
        memcpy(v + strings_at, b->strings, b->strings_len);
    for (size_t i = 0; i < b->nterms; i++) {
        const unsigned char *e = b->entries + i * DICT_ENTRY;
        uint64_t h = idx_hash64(b->strings + lx_ld32(e + E_TEXT_OFF), lx_ld32(e + E_TEXT_LEN));
        uint32_t s = (uint32_t)h & (nslots - 1);
        while (lx_ld32(v + slots_at + (size_t)s * DICT_SLOT + 4))
            s = (s + 1) & (nslots - 1);
        lx_st32(v + slots_at + (size_t)s * DICT_SLOT, (uint32_t)(h >> 32));
        lx_st32(v + slots_at + (size_t)s * DICT_SLOT + 4, (uint32_t)i + 1);
    }
    lx_st64(v + 16, idx_hash64(v + DICT_HEADER, size - DICT_HEADER));
    return 0;
}

/* ---- reading ------------------------------------------------------------------ */

int idx_dict_parse(const void *val, size_t len, idx_dict *out)
{
    const unsigned char *v = val;
    memset(out, 0, sizeof *out);
    if (len < DICT_HEADER)
        return LX_E_CORRUPT;
    uint32_t nterms = lx_ld32(v), nslots = lx_ld32(v + 4), strings = lx_ld32(v + 12);
    if (nslots == 0 || (nslots & (nslots - 1)) || nslots <= nterms)
        return LX_E_CORRUPT;
    uint64_t need = DICT_HEADER + (uint64_t)nslots * DICT_SLOT + (uint64_t)nterms * DICT_ENTRY + strings;
    if (need != len)
        return LX_E_CORRUPT;
    out->nterms = nterms;
    out->nslots = nslots;
    out->nchunks = lx_ld32(v + 8);
    out->slots = v + DICT_HEADER;
    out->entries = out->slots + (size_t)nslots * DICT_SLOT;
    out->strings = (const char *)out->entries + (size_t)nterms * DICT_ENTRY;
    out->strings_size = strings;
    out->value = v;
    out->size = len;
    return 0;
}

int idx_dict_verify(const idx_dict *d)
{
    return lx_ld64(d->value + 16) == idx_hash64(d->value + DICT_HEADER, d->size - DICT_HEADER) ? 0
                                                                                            : LX_E_CORRUPT;
}

static const unsigned char *entry_at(const idx_dict *d, uint32_t i)
{
    return d->entries + (size_t)i * DICT_ENTRY;
}

int idx_dict_find(const idx_dict *d, const char *text, size_t len, uint64_t hash, uint32_t *entry)
{
    uint32_t mask = d->nslots - 1, tag = (uint32_t)(hash >> 32);
    uint32_t s = (uint32_t)hash & mask;
    /* nslots > nterms, so an intact table has an empty slot; a damaged
     * one still ends after nslots probes */
    for (uint32_t step = 0; step < d->nslots; step++, s = (s + 1) & mask) {
        const unsigned char *slot = d->slots + (size_t)s * DICT_SLOT;
        uint32_t e1 = lx_ld32(slot + 4);
        if (e1 == 0)
            return LX_E_NOTFOUND;
        if (lx_ld32(slot) != tag)
            continue;
        const char *et;
        size_t tl;
        if (e1 > d->nterms || idx_dict_text(d, e1 - 1, &et, &tl))
            return LX_E_CORRUPT;
        if (tl == len && memcmp(et, text, len) == 0) {
            *entry = e1 - 1;
            return 0;
        }
    }
    return LX_E_NOTFOUND;
}

void idx_dict_prefetch(const idx_dict *d, uint64_t hash, int step)
{
    const unsigned char *slot = d->slots + (size_t)((uint32_t)hash & (d->nslots - 1)) * DICT_SLOT;
    if (step == 0) {
        __builtin_prefetch(slot);
        return;
    }
    /* the first slot only: the term is there unless it collided */
    uint32_t e1 = lx_ld32(slot + 4);
    if (e1 == 0 || e1 > d->nterms || lx_ld32(slot) != (uint32_t)(hash >> 32))
        return;
    const unsigned char *e = entry_at(d, e1 - 1);
    if (step == 1) {
        __builtin_prefetch(e);
        __builtin_prefetch(e + DICT_ENTRY - 1);
        return;
    }
    uint32_t toff = lx_ld32(e + E_TEXT_OFF), chunk = lx_ld32(e + E_CHUNK), off = lx_ld32(e + E_OFFSET);
    if (toff < d->strings_size)
        __builtin_prefetch(d->strings + toff);
    if (d->chunks && chunk < d->nchunks && off < d->chunks[chunk].size)
        __builtin_prefetch((const unsigned char *)d->chunks[chunk].data + off);
}

int idx_dict_find_id(const idx_dict *d, uint32_t term_id, uint32_t *entry)
{
    uint32_t lo = 0, hi = d->nterms;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2, id = lx_ld32(entry_at(d, mid) + E_TERM_ID);
        if (id == term_id) {
            *entry = mid;
            return 0;
        }
        if (id < term_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return LX_E_NOTFOUND;
}

uint32_t idx_dict_term_id(const idx_dict *d, uint32_t entry)
{
    return lx_ld32(entry_at(d, entry) + E_TERM_ID);
}

int idx_dict_text(const idx_dict *d, uint32_t entry, const char **text, size_t *len)
{
    const unsigned char *e = entry_at(d, entry);
    uint32_t off = lx_ld32(e + E_TEXT_OFF), tl = lx_ld32(e + E_TEXT_LEN);
    if (off > d->strings_size || tl > d->strings_size - off)
        return LX_E_CORRUPT;
    *text = d->strings + off;
    *len = tl;
    return 0;
}

int idx_dict_list(const idx_dict *d, uint32_t entry, const void **list, size_t *size)
{
    const unsigned char *e = entry_at(d, entry);
    uint32_t chunk = lx_ld32(e + E_CHUNK), off = lx_ld32(e + E_OFFSET), sz = lx_ld32(e + E_SIZE);
    if (chunk >= d->nchunks || !d->chunks)
        return LX_E_CORRUPT;
    const idx_val *c = &d->chunks[chunk];
    if (off > c->size || sz > c->size - off)
        return LX_E_CORRUPT;
    *list = (const unsigned char *)c->data + off;
    *size = sz;
    return 0;
}
