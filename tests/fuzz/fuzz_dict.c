/* fuzz_dict.c: libFuzzer target for the segment dictionaries (index/dict.c).
 *
 * Promise under test (index_impl.h): idx_dict_parse accepts only a value
 * whose sizes add up, and then idx_dict_find, idx_dict_find_id,
 * idx_dict_text and idx_dict_list never read outside the dictionary or
 * its chunks, whatever the bytes; damage gives LX_E_CORRUPT or
 * LX_E_NOTFOUND. What they return holds: a text found is the text asked
 * for, an entry is below nterms, a list lies inside its chunk.
 *
 * Input layout: byte 0 selects; bytes 1-2 (u16) give the dictionary
 * value's length (at most the rest); the rest is that value and one chunk, each copied
 * against a PROT_NONE page (a read past its last byte faults) with the
 * bytes before it poisoned (every chunk the dictionary names is that one;
 * more than 64 and the input is skipped). Byte 0 bit 0: recompute nslots as the
 * smallest power of two above nterms and fix the value's length by
 * truncating the strings, so that inputs get past parse more often.
 * Then every entry's text is looked up by text (the entry found must hold
 * that text) and its id by binary search, its list bounds are taken (and
 * parsed as a postings list), and a few fixed texts are looked up.
 *
 * Build with `make fuzz`; run build/fuzz/fuzz_dict -max_len=4096 CORPUS_DIR.
 */
#include "../../index/index_impl.h"
#include "fuzz_guard.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FZ_CHECK(x) LX_ASSERT(x)
#define FZ_REGION (1u << 16)

static fz_guard fz_dict, fz_chunk;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        fz_guard_init(&fz_dict, FZ_REGION);
        fz_guard_init(&fz_chunk, FZ_REGION);
        init = 1;
    }
    if (size < 3 || size - 3 > FZ_REGION)
        return 0;
    const uint8_t mode = data[0];
    size_t rest = size - 3, dlen = lx_ld16(data + 1);
    if (dlen > rest)
        dlen = rest;
    unsigned char tmp[FZ_REGION];
    memcpy(tmp, data + 3, dlen);
    if ((mode & 1) && dlen >= 24) {
        uint32_t nterms = lx_ld32(tmp) % 4096, nslots = 1;
        while (nslots <= nterms)
            nslots *= 2;
        lx_st32(tmp, nterms);
        lx_st32(tmp + 4, nslots);
        uint64_t fixed = 24 + (uint64_t)nslots * 8 + (uint64_t)nterms * 24;
        if (fixed <= dlen) {
            lx_st32(tmp + 12, (uint32_t)(dlen - fixed));
        }
    }
    unsigned char *dv = fz_guard_place(&fz_dict, tmp, dlen);
    unsigned char *cv = fz_guard_place(&fz_chunk, data + 3 + dlen, rest - dlen);
    idx_val chunk = { cv, rest - dlen }, chunks[64];
    idx_dict d;
    if (idx_dict_parse(dv, dlen, &d) != 0)
        return 0;
    FZ_CHECK(d.nslots > d.nterms && (d.nslots & (d.nslots - 1)) == 0);
    /* the reader fetches nchunks values (a missing one is damage): here
     * every chunk is the input's one */
    if (d.nchunks > 64)
        return 0;
    for (uint32_t i = 0; i < d.nchunks; i++)
        chunks[i] = chunk;
    d.chunks = chunks;
    (void)idx_dict_verify(&d);
    for (uint32_t e = 0; e < d.nterms; e++) {
        const char *text;
        size_t len;
        uint32_t found, by_id;
        if (idx_dict_text(&d, e, &text, &len) == 0) {
            FZ_CHECK(text >= d.strings && text + len <= d.strings + d.strings_size);
            int rc = idx_dict_find(&d, text, len, idx_hash64(text, len), &found);
            FZ_CHECK(rc == 0 || rc == LX_E_NOTFOUND || rc == LX_E_CORRUPT);
            if (rc == 0) {
                const char *t2;
                size_t l2;
                FZ_CHECK(found < d.nterms);
                FZ_CHECK(idx_dict_text(&d, found, &t2, &l2) == 0 && l2 == len && !memcmp(t2, text, len));
            }
        }
        if (idx_dict_find_id(&d, idx_dict_term_id(&d, e), &by_id) == 0)
            FZ_CHECK(by_id < d.nterms && idx_dict_term_id(&d, by_id) == idx_dict_term_id(&d, e));
        const void *list;
        size_t lsize;
        if (idx_dict_list(&d, e, &list, &lsize) == 0) {
            FZ_CHECK((const unsigned char *)list >= cv && (const unsigned char *)list + lsize <= cv + chunk.size);
            idx_plist pl;
            (void)idx_plist_parse(list, lsize, &pl);
        }
    }
    static const char *const probes[] = { "", "a", "the", "t1", "zzzzzzzzzzzzzzzzzzzzzzzz" };
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++) {
        uint32_t found;
        size_t len = strlen(probes[i]);
        if (idx_dict_find(&d, probes[i], len, idx_hash64(probes[i], len), &found) == 0)
            FZ_CHECK(found < d.nterms);
    }
    return 0;
}
