/* fuzz_analyzer.c: libFuzzer target for the lexical analyzer.
 *
 * Runs arbitrary bytes through analyzers with different settings and aborts
 * when an invariant breaks:
 *   - every term is non-empty, at most ENC_MAX_TERM_BYTES, valid UTF-8 (the
 *     strict decoder below, independent of the analyzer's) and NUL-free;
 *   - positions strictly increase within a run;
 *   - the fast path (ASCII pieces, pieces cut at safe points, also with a
 *     1-byte piece cap so every cut is taken, and the stem cache) gives
 *     exactly the terms of the reference mode, which maps each valid run
 *     through utf8proc whole and stems without the cache;
 *   - a callback that stops early makes run return its value.
 * The analyzers live for the whole process, as an indexer's would, so state
 * carried from one input to the next (scratch growth) is exercised too.
 *
 * Build with `make fuzz` (clang, -fsanitize=fuzzer,address,undefined) and run
 * build/fuzz/fuzz_analyzer -max_len=4096 CORPUS_DIR.
 */
#include "../../encoder/encoder.h"
#include "../../encoder/encoder_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FZ_CHECK(x) LX_ASSERT(x)

/* Terms of one run, serialized as (pos, len, bytes) records. Owns buf. */
typedef struct fz_sink {
    unsigned char *buf;
    size_t len, cap;
    uint32_t last_pos;
    size_t count;
    size_t stop_after;     /* > 0: return 7 on that term */
} fz_sink;

static int fz_valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (c < 0xC2 || c > 0xF4 || i + k > n)
            return 0;
        uint32_t cp = c & (0xFFu >> (k + 1));
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3Fu);
        }
        if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k;
    }
    return 1;
}

static int fz_term(void *ctx, const char *term, size_t len, uint32_t pos)
{
    fz_sink *s = ctx;
    FZ_CHECK(term != NULL && len > 0 && len <= ENC_MAX_TERM_BYTES);
    FZ_CHECK(fz_valid_utf8((const unsigned char *)term, len));
    FZ_CHECK(s->count == 0 || pos > s->last_pos);
    s->last_pos = pos;
    s->count++;
    size_t need = s->len + 8 + len;
    if (need > s->cap) {
        s->cap = need * 2;
        s->buf = realloc(s->buf, s->cap);
        FZ_CHECK(s->buf != NULL);
    }
    uint32_t l32 = (uint32_t)len;
    memcpy(s->buf + s->len, &pos, 4);
    memcpy(s->buf + s->len + 4, &l32, 4);
    memcpy(s->buf + s->len + 8, term, len);
    s->len = need;
    if (s->stop_after && s->count == s->stop_after)
        return 7;
    return 0;
}

enum { FZ_DEFAULT, FZ_DEFAULT_REF, FZ_DEFAULT_TINY, FZ_PORTER, FZ_PORTER_REF,
       FZ_CUSTOM, FZ_N };

static enc_analyzer *fz_an[FZ_N];   /* fuzzer-process state: opened once */

static void fz_open(void)
{
    static const struct { const char *stem, *stop; int poss, ref; size_t cap; } cfg[FZ_N] = {
        [FZ_DEFAULT] = { "english", "lucene", 1, 0, 0 },
        [FZ_DEFAULT_REF] = { "english", "lucene", 1, 1, 0 },
        [FZ_DEFAULT_TINY] = { "english", "lucene", 1, 0, 1 },
        [FZ_PORTER] = { "porter", "none", 0, 0, 0 },
        [FZ_PORTER_REF] = { "porter", "none", 0, 1, 0 },
        [FZ_CUSTOM] = { "none", "x,ÿ, é ,ｆｏｏ,1,000", 1, 0, 0 },
    };
    for (int i = 0; i < FZ_N; i++) {
        enc_analyzer_params p = enc_analyzer_default_params();
        p.stemmer = cfg[i].stem;
        p.stopwords = cfg[i].stop;
        p.strip_possessive = cfg[i].poss;
        FZ_CHECK(enc_analyzer_open(&p, &fz_an[i]) == 0);
        fz_an[i]->reference = cfg[i].ref;
        if (cfg[i].ref) {       /* the oracle asks Snowball every time */
            free(fz_an[i]->stem_cache);
            fz_an[i]->stem_cache = NULL;
        }
        if (cfg[i].cap)
            fz_an[i]->piece_cap = cfg[i].cap;
    }
}

static void fz_run(int which, const uint8_t *data, size_t size, fz_sink *s)
{
    memset(s, 0, sizeof *s);
    FZ_CHECK(enc_analyzer_run(fz_an[which], (const char *)data, size, fz_term, s) == 0);
}

static void fz_same(const fz_sink *a, const fz_sink *b)
{
    FZ_CHECK(a->len == b->len && a->count == b->count);
    FZ_CHECK(a->len == 0 || memcmp(a->buf, b->buf, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_sink d, dref, dtiny, p, pref, c;

    if (!fz_an[0])
        fz_open();

    fz_run(FZ_DEFAULT, data, size, &d);
    fz_run(FZ_DEFAULT_REF, data, size, &dref);
    fz_run(FZ_DEFAULT_TINY, data, size, &dtiny);
    fz_same(&d, &dref);
    fz_same(&d, &dtiny);
    fz_run(FZ_PORTER, data, size, &p);
    fz_run(FZ_PORTER_REF, data, size, &pref);
    fz_same(&p, &pref);
    fz_run(FZ_CUSTOM, data, size, &c);

    /* Early stop: halfway through the terms, the callback's value comes back
     * and exactly that many terms were delivered. */
    if (d.count > 0) {
        fz_sink e;
        memset(&e, 0, sizeof e);
        e.stop_after = (d.count + 1) / 2;
        FZ_CHECK(enc_analyzer_run(fz_an[FZ_DEFAULT], (const char *)data, size, fz_term, &e) == 7);
        FZ_CHECK(e.count == e.stop_after);
        FZ_CHECK(memcmp(e.buf, d.buf, e.len) == 0);
        free(e.buf);
    }

    free(d.buf);
    free(dref.buf);
    free(dtiny.buf);
    free(p.buf);
    free(pref.buf);
    free(c.buf);
    return 0;
}
