/* analyzer.c: UTF-8 text -> index terms (the lexical analyzer of encoder.h).
 *
 * The reference semantics are simple to state. Cut the input at every byte
 * that does not belong to a valid UTF-8 sequence and at every NUL; each
 * valid run is mapped through NFKC_Casefold (utf8proc: NFKC + full case
 * folding + removal of default-ignorable code points); the mapped code
 * points are cut into words (letters, marks and digits, with ' ’ . and ,
 * glued inside as encoder.h says; Han/Hiragana/Katakana one per word); each
 * word takes the next position, then loses a trailing 's, is dropped if
 * longer than ENC_MAX_TERM_BYTES or a stop word, and is stemmed.
 *
 * Doing exactly that would send every byte through utf8proc. Instead the run
 * is cut further into pieces at "safe" points, and a piece made only of
 * ASCII skips utf8proc: its NFKC_Casefold is plain lowercasing. A point is
 * safe when mapping the two sides apart gives the same code points as
 * mapping them together, and no word can span it:
 *   - before and after an ASCII byte other than letters, digits, ' . , and
 *     < = >. Letters and < = > can compose with a following mark (a + U+0301
 *     -> á, = + U+0338 -> ≠); ' . , may glue a word. Every other ASCII byte
 *     is a separator that composes with nothing on either side (checked
 *     against utf8proc for all code points on both sides).
 *   - before a CJK unified ideograph or a Unicode space (U+00A0, U+2000-200A,
 *     U+2028/9, U+202F, U+205F, U+3000), once a piece is longer than
 *     piece_cap: none of them is the second half of a composition, so what
 *     precedes maps the same, and each ends any word. This only bounds the
 *     scratch for long CJK runs; nothing else depends on it.
 * The reference mode (an->reference, for tests) turns both off, and the
 * fuzzer checks that both modes give the same terms on every input.
 *
 * Word rules, after mapping (the ASCII path applies the same rules to bytes):
 *   word char  = L*, M*, N* code point outside the CJK ranges
 *   ' ’ .      = stay inside when preceded by a word char and followed by a
 *                letter or digit ("o'neil", "u.s", "3.14"); ’ is stored as '
 *                so "don’t" and "don't" meet
 *   ,          = stays inside between two digits ("1,000")
 *   CJK        = a Han/Hiragana/Katakana letter or number, plus the marks
 *                that follow it, is one word
 * A word never ends with a glue character, so after "'s" is stripped it ends
 * with a word char. Words with a period (u.s, e.g, 3.14) are not stemmed:
 * Snowball would cut "u.s" to "u.". Words without letters are not stemmed
 * either (Snowball leaves them unchanged anyway; this saves the call).
 *
 * Positions count words as found: stop words and dropped over-long words
 * take a position too, so phrase gaps survive.
 *
 * Memory: the analyzer owns a code point scratch (grown to the largest
 * non-ASCII piece, <= ~18 code points per input byte under NFKC), a word
 * buffer of ENC_WORD_CAP bytes (over-long words are measured, not stored)
 * and a direct-mapped stem cache (~750 KB) in front of Snowball, which
 * otherwise takes ~80% of the time on English text. Nothing is allocated
 * per word or per call once the scratch has grown.
 */
#include "encoder.h"
#include "encoder_impl.h"

#include <libstemmer.h>
#include <utf8proc.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NFKC_Casefold, as utf8proc_NFKC_Casefold spells it (less NULLTERM). */
#define ENC_NFKC_CF (UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | \
                     UTF8PROC_CASEFOLD | UTF8PROC_IGNORE)

// --- character classes -------------------------------------------------------

enum enc_class {
    EC_SEP = 0,    /* ASCII separator: also a safe piece boundary */
    EC_GLUE,       /* < = >: a separator, but not a safe boundary */
    EC_UPPER,
    EC_LOWER,
    EC_DIGIT,
    EC_APOS,       /* ' (and U+2019 on the Unicode path) */
    EC_DOT,
    EC_COMMA,
    EC_MARK,       /* M*: Unicode path only */
    EC_CJK,        /* Han/Hiragana/Katakana letter or number */
    EC_OTHER       /* any other non-ASCII code point: a separator */
};

#define S EC_SEP
#define G EC_GLUE
#define U EC_UPPER
#define L EC_LOWER
#define D EC_DIGIT
#define A EC_APOS
#define P EC_DOT
#define C EC_COMMA
static const unsigned char enc_ascii_class[128] = {
    S, S, S, S, S, S, S, S, S, S, S, S, S, S, S, S,   /* 0x00 controls */
    S, S, S, S, S, S, S, S, S, S, S, S, S, S, S, S,   /* 0x10 controls */
    S, S, S, S, S, S, S, A, S, S, S, S, C, S, P, S,   /*  !"#$%&'()*+,-./ */
    D, D, D, D, D, D, D, D, D, D, S, S, G, G, G, S,   /* 0123456789:;<=>? */
    S, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,   /* @ABCDEFGHIJKLMNO */
    U, U, U, U, U, U, U, U, U, U, U, S, S, S, S, S,   /* PQRSTUVWXYZ[\]^_ */
    S, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L,   /* `abcdefghijklmno */
    L, L, L, L, L, L, L, L, L, L, L, S, S, S, S, S,   /* pqrstuvwxyz{|}~  */
};
#undef S
#undef G
#undef U
#undef L
#undef D
#undef A
#undef P
#undef C

static inline int enc_is_alnum_class(int c)
{
    return c == EC_UPPER || c == EC_LOWER || c == EC_DIGIT;
}

/* Han, Hiragana and Katakana, applied only to L* and N* code points after
 * NFKC (so halfwidth kana and compatibility ideographs arrive mapped). */
static int enc_is_cjk(int32_t c)
{
    if (c < 0x3005)
        return 0;
    if (c <= 0x30FF)   /* 々 〇 Hangzhou numerals, 〸-〻, Hiragana, Katakana */
        return c == 0x3005 || c == 0x3007 || (c >= 0x3021 && c <= 0x3029) ||
               (c >= 0x3038 && c <= 0x303B) || c >= 0x3041;
    return (c >= 0x31F0 && c <= 0x31FF) ||     /* Katakana phonetic ext. */
           (c >= 0x3400 && c <= 0x4DBF) ||     /* CJK ext. A */
           (c >= 0x4E00 && c <= 0x9FFF) ||     /* CJK unified */
           (c >= 0xF900 && c <= 0xFAFF) ||     /* CJK compatibility */
           (c >= 0x1AFF0 && c <= 0x1B16F) ||   /* Kana ext./supplement */
           (c >= 0x20000 && c <= 0x3FFFF);     /* CJK ext. B-H, compat. sup. */
}

/* Class of a code point after NFKC_Casefold. */
static int enc_uclass(int32_t c)
{
    if (c < 0x80)
        return enc_ascii_class[c];
    if (c == 0x2019)
        return EC_APOS;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return enc_is_cjk(c) ? EC_CJK : EC_LOWER;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return enc_is_cjk(c) ? EC_CJK : EC_DIGIT;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
        return EC_MARK;
    default:
        return EC_OTHER;
    }
}

/* Safe piece boundaries among non-ASCII code points (see the top comment). */
static inline int enc_is_safe_starter(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           c == 0x3000 || c == 0xA0 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F;
}

// --- stop words ------------------------------------------------------------

/* Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET. */
static const char *const enc_lucene_stopwords[] = {
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in",
    "into", "is", "it", "no", "not", "of", "on", "or", "such", "that", "the",
    "their", "then", "there", "these", "they", "this", "to", "was", "will",
    "with",
};

/* h is lx_fnv1a32(w, n): the caller's, which the stem cache shares. */
static int enc_stopset_has_h(const enc_stopset *st, const char *w, size_t n, uint32_t h)
{
    if (st->n == 0 || n < st->min_len || n > st->max_len)
        return 0;
    for (uint32_t i = h & st->mask;; i = (i + 1) & st->mask) {
        uint32_t slot = st->slots[i];
        if (slot == 0)
            return 0;
        const char *k = st->pool + st->offs[slot - 1];
        size_t kn = st->offs[slot] - st->offs[slot - 1];
        if (kn == n && memcmp(k, w, n) == 0)
            return 1;
    }
}

/* Appends word w to the pool (duplicates are kept; the table skips them). */
static int enc_stopset_push(enc_stopset *st, size_t *pool_cap, size_t *offs_cap,
                            const char *w, size_t n)
{
    size_t used = st->offs ? st->offs[st->n] : 0;
    if (used + n > UINT32_MAX - 1)
        return LX_E_TOOBIG;
    if (used + n > *pool_cap) {
        size_t cap = (used + n) * 2 + 64;
        char *p = realloc(st->pool, cap);
        if (!p)
            return LX_E_NOMEM;
        st->pool = p;
        *pool_cap = cap;
    }
    if (st->n + 2 > *offs_cap) {
        size_t cap = *offs_cap * 2 + 16;
        uint32_t *o = realloc(st->offs, cap * sizeof *o);
        if (!o)
            return LX_E_NOMEM;
        if (!st->offs)
            o[0] = 0;
        st->offs = o;
        *offs_cap = cap;
    }
    memcpy(st->pool + used, w, n);
    st->offs[st->n + 1] = (uint32_t)(used + n);
    st->n++;
    if (st->n == 1 || n < st->min_len)
        st->min_len = n;
    if (n > st->max_len)
        st->max_len = n;
    return 0;
}

/* Builds the hash table over the pooled words; a duplicate takes no slot. */
static int enc_stopset_index(enc_stopset *st)
{
    uint32_t cap = 8;
    while (cap < 2 * (uint64_t)st->n)
        cap *= 2;
    st->slots = calloc(cap, sizeof *st->slots);
    if (!st->slots)
        return LX_E_NOMEM;
    st->mask = cap - 1;
    for (uint32_t w = 0; w < st->n; w++) {
        const char *k = st->pool + st->offs[w];
        size_t kn = st->offs[w + 1] - st->offs[w];
        uint32_t h = lx_fnv1a32(k, kn), i = h & st->mask;
        if (enc_stopset_has_h(st, k, kn, h))
            continue;
        while (st->slots[i])
            i = (i + 1) & st->mask;
        st->slots[i] = w + 1;
    }
    return 0;
}

/* Maps one custom stop word the way text is mapped (NFKC_Casefold, ’ -> ')
 * and pools it. Returns LX_E_INVAL for invalid UTF-8. */
static int enc_stopset_push_custom(enc_stopset *st, size_t *pool_cap, size_t *offs_cap,
                                   const char *w, size_t n)
{
    utf8proc_uint8_t *m = NULL;   /* owns: utf8proc's malloc'd result */
    utf8proc_ssize_t mn = utf8proc_map((const utf8proc_uint8_t *)w, (utf8proc_ssize_t)n,
                                       &m, ENC_NFKC_CF);
    if (mn < 0)
        return mn == UTF8PROC_ERROR_NOMEM ? LX_E_NOMEM : LX_E_INVAL;
    size_t o = 0;
    for (size_t i = 0; i < (size_t)mn; i++) {     /* ’ (E2 80 99) -> ' */
        if (i + 2 < (size_t)mn && m[i] == 0xE2 && m[i + 1] == 0x80 && m[i + 2] == 0x99) {
            m[o++] = '\'';
            i += 2;
        } else {
            m[o++] = m[i];
        }
    }
    int rc = o ? enc_stopset_push(st, pool_cap, offs_cap, (const char *)m, o) : 0;
    free(m);
    return rc;
}

/* spec: "lucene", "none" or a comma-separated list (entries trimmed of
 * ASCII blanks; empty entries ignored). */
static int enc_stopset_build(enc_stopset *st, const char *spec)
{
    size_t pool_cap = 0, offs_cap = 0;
    int rc = 0;
    memset(st, 0, sizeof *st);
    if (strcmp(spec, "none") == 0)
        return 0;
    if (strcmp(spec, "lucene") == 0) {
        size_t n = sizeof enc_lucene_stopwords / sizeof enc_lucene_stopwords[0];
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = enc_stopset_push(st, &pool_cap, &offs_cap, enc_lucene_stopwords[i],
                                  strlen(enc_lucene_stopwords[i]));
    } else {
        const char *s = spec;
        while (rc == 0 && *s) {
            const char *e = strchr(s, ',');
            if (!e)
                e = s + strlen(s);
            const char *b = s, *t = e;
            while (b < t && (*b == ' ' || *b == '\t'))
                b++;
            while (t > b && (t[-1] == ' ' || t[-1] == '\t'))
                t--;
            if (t > b)
                rc = enc_stopset_push_custom(st, &pool_cap, &offs_cap, b, (size_t)(t - b));
            s = *e ? e + 1 : e;
        }
    }
    if (rc == 0 && st->n)
        rc = enc_stopset_index(st);
    return rc;
}

static void enc_stopset_free(enc_stopset *st)
{
    free(st->pool);
    free(st->offs);
    free(st->slots);
    memset(st, 0, sizeof *st);
}

// --- open / close / describe -------------------------------------------------

enc_analyzer_params enc_analyzer_default_params(void)
{
    enc_analyzer_params p = { .stemmer = "porter", .stopwords = "lucene",
                              .strip_possessive = 1 };
    return p;
}

/* A setting must survive enc_analyzer_describe's "k=v;k=v" form. */
static int enc_setting_ok(const char *v)
{
    return strchr(v, ';') == NULL && strchr(v, '=') == NULL;
}

static char *enc_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

int enc_analyzer_open(const enc_analyzer_params *p, enc_analyzer **out)
{
    enc_analyzer_params defaults = enc_analyzer_default_params();
    enc_analyzer *an = NULL;
    int rc;

    if (!out)
        return LX_E_INVAL;
    *out = NULL;
    if (!p)
        p = &defaults;
    const char *stem = p->stemmer ? p->stemmer : defaults.stemmer;
    const char *stop = p->stopwords ? p->stopwords : defaults.stopwords;
    if (!*stem || !enc_setting_ok(stem) || !enc_setting_ok(stop))
        return LX_E_INVAL;

    an = calloc(1, sizeof *an);
    if (!an)
        return LX_E_NOMEM;
    an->strip_possessive = p->strip_possessive != 0;
    an->piece_cap = ENC_PIECE_CAP;
    an->stemmer_name = enc_strdup(stem);
    an->stopwords_spec = enc_strdup(stop);
    if (!an->stemmer_name || !an->stopwords_spec) {
        rc = LX_E_NOMEM;
        goto out_close;
    }
    if (strcmp(stem, "none") != 0) {
        an->stemmer = sb_stemmer_new(stem, "UTF_8");
        if (!an->stemmer) {
            /* NULL means unknown name or no memory; the list tells which. */
            rc = LX_E_INVAL;
            for (const char **l = sb_stemmer_list(); *l; l++)
                if (strcmp(*l, stem) == 0)
                    rc = LX_E_NOMEM;
            goto out_close;
        }
    }
    if (an->stemmer) {
        an->stem_cache = calloc(ENC_STEM_CACHE, sizeof *an->stem_cache);
        if (!an->stem_cache) {
            rc = LX_E_NOMEM;
            goto out_close;
        }
    }
    rc = enc_stopset_build(&an->stop, stop);
    if (rc)
        goto out_close;
    an->cps_cap = 256;
    an->cps = malloc(an->cps_cap * sizeof *an->cps);
    if (!an->cps) {
        rc = LX_E_NOMEM;
        goto out_close;
    }
    *out = an;
    return 0;

out_close:
    enc_analyzer_close(an);
    return rc;
}

void enc_analyzer_close(enc_analyzer *an)
{
    if (!an)
        return;
    if (an->stemmer)
        sb_stemmer_delete(an->stemmer);
    enc_stopset_free(&an->stop);
    free(an->stem_cache);
    free(an->cps);
    free(an->stemmer_name);
    free(an->stopwords_spec);
    free(an);
}

int enc_analyzer_describe(const enc_analyzer *an, char *buf, size_t cap)
{
    LX_ASSERT(an != NULL);
    if (!buf || cap == 0)
        return LX_E_TOOBIG;
    int n = snprintf(buf, cap, "stemmer=%s;stopwords=%s;possessive=%d",
                     an->stemmer_name, an->stopwords_spec, an->strip_possessive);
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0';      /* no truncated description that parses */
        return LX_E_TOOBIG;
    }
    return 0;
}

int enc_analyzer_params_parse(const char *desc, enc_analyzer_params *p,
                              char *storage, size_t cap)
{
    enum { SEEN_STEM = 1, SEEN_STOP = 2, SEEN_POSS = 4 };
    enc_analyzer_params q = enc_analyzer_default_params();
    unsigned seen = 0;

    if (!desc || !p || !storage)
        return LX_E_INVAL;
    size_t n = strlen(desc);
    if (cap < n + 1)
        return LX_E_INVAL;
    memcpy(storage, desc, n + 1);

    /* Every key exactly once: a description is written whole by describe,
     * so a missing key means a damaged string, not a default. */
    for (char *s = storage; s;) {
        char *end = strchr(s, ';');
        if (end)
            *end = '\0';
        char *eq = strchr(s, '=');
        if (!eq)
            return LX_E_INVAL;
        *eq = '\0';
        const char *key = s, *val = eq + 1;
        unsigned bit;
        if (strcmp(key, "stemmer") == 0) {
            bit = SEEN_STEM;
            if (!*val)
                return LX_E_INVAL;
            q.stemmer = val;
        } else if (strcmp(key, "stopwords") == 0) {
            bit = SEEN_STOP;
            q.stopwords = val;
        } else if (strcmp(key, "possessive") == 0) {
            bit = SEEN_POSS;
            if (strcmp(val, "0") != 0 && strcmp(val, "1") != 0)
                return LX_E_INVAL;
            q.strip_possessive = val[0] == '1';
        } else {
            return LX_E_INVAL;
        }
        if (seen & bit)
            return LX_E_INVAL;
        seen |= bit;
        s = end ? end + 1 : NULL;
    }
    if (seen != (SEEN_STEM | SEEN_STOP | SEEN_POSS))
        return LX_E_INVAL;
    *p = q;
    return 0;
}

// --- analysis ---------------------------------------------------------------

/* Words wait in a ring of ENC_PENDING before they are stemmed and emitted,
 * so that the stem cache's entry for each (750 KB of entries: outside the
 * L2 cache once a query has run) is prefetched while the next words are
 * cut, instead of being waited for one word at a time. A cpu-clock profile
 * of SciFact's queries put 4% of the time on that load; with the ring
 * (bench-lexis-lat --ab 7): SciFact -2.8% and -1.3%, the Debian corpus
 * -1.1%; building the Debian corpus: no change (12 alternating runs). */
#define ENC_PENDING 8
typedef struct enc_pending {
    uint32_t pos, h;    /* the word's position and lx_fnv1a32 */
    uint8_t len, stem;  /* bytes in word; 1: to be stemmed */
    char word[ENC_MAX_TERM_BYTES];
} enc_pending;

/* State of one enc_analyzer_run call. */
typedef struct enc_run {
    enc_analyzer *an;
    enc_term_fn fn;
    void *ctx;
    uint32_t pos;       /* position of the next word */
    uint32_t head, tail;               /* pend[head % N .. tail % N) wait */
    enc_pending pend[ENC_PENDING];
} enc_run;

enum {
    EW_LETTER = 1,      /* has a letter: worth stemming */
    EW_DOT = 2,         /* has a period: an acronym or number, not stemmed */
    EW_CJK = 4          /* one CJK character: not stemmed */
};

/* Stems *term (*len bytes, whose lx_fnv1a32 is h) through the cache. On
 * return *term borrows the cache entry or the stemmer's buffer, valid until
 * the next stem. */
static int enc_stem(enc_analyzer *an, const char **term, size_t *len, uint32_t h)
{
    enc_stem_entry *e = NULL;
    size_t n = *len;
    if (an->stem_cache && n <= ENC_STEM_KEY) {
        e = &an->stem_cache[h & (ENC_STEM_CACHE - 1)];
        if (e->wlen == n && memcmp(e->word, *term, n) == 0) {
            *term = e->stem;
            *len = e->slen;
            return 0;
        }
    }
    const sb_symbol *s = sb_stemmer_stem(an->stemmer, (const sb_symbol *)*term, (int)n);
    if (!s)
        return LX_E_NOMEM;
    int sn = sb_stemmer_length(an->stemmer);
    if (sn < 0)
        sn = 0;
    if (e && sn > 0 && sn <= ENC_STEM_KEY) {
        e->wlen = (unsigned char)n;
        e->slen = (unsigned char)sn;
        memcpy(e->word, *term, n);
        memcpy(e->stem, s, (size_t)sn);
    }
    *term = (const char *)s;
    *len = (size_t)sn;
    return 0;
}

/* Stems the oldest waiting word if it needs it and emits its term. */
static int enc_flush_one(enc_run *r)
{
    enc_pending *q = &r->pend[r->head++ % ENC_PENDING];
    const char *term = q->word;
    size_t wlen = q->len;
    if (q->stem) {
        int rc = enc_stem(r->an, &term, &wlen, q->h);
        if (rc)
            return rc;
        if (wlen == 0 || wlen > ENC_MAX_TERM_BYTES)
            return 0;
    }
    return r->fn(r->ctx, term, wlen, q->pos);
}

/* The word an->word[0, wlen) is complete (wlen may exceed ENC_WORD_CAP: then
 * only its length was kept). Gives it a position and, unless it is dropped,
 * puts it in the ring; the oldest word is emitted once the ring is full. */
static int enc_emit(enc_run *r, size_t wlen, unsigned flags)
{
    enc_analyzer *an = r->an;
    uint32_t pos = r->pos;
    if (r->pos < UINT32_MAX)
        r->pos++;
    if (wlen > ENC_WORD_CAP)
        return 0;
    if (an->strip_possessive && wlen >= 2 && an->word[wlen - 1] == 's' &&
        an->word[wlen - 2] == '\'')
        wlen -= 2;
    if (wlen > ENC_MAX_TERM_BYTES)
        return 0;
    /* one hash for the stop set and the stem cache: the same bytes */
    uint32_t h = lx_fnv1a32(an->word, wlen);
    if (enc_stopset_has_h(&an->stop, an->word, wlen, h))
        return 0;
    int stem = an->stemmer && (flags & (EW_LETTER | EW_DOT | EW_CJK)) == EW_LETTER;
    enc_pending *q = &r->pend[r->tail++ % ENC_PENDING];
    q->pos = pos;
    q->h = h;
    q->len = (uint8_t)wlen;
    q->stem = (uint8_t)stem;
    memcpy(q->word, an->word, wlen);
    if (stem && an->stem_cache)
        __builtin_prefetch(&an->stem_cache[h & (ENC_STEM_CACHE - 1)]);
    return r->tail - r->head == ENC_PENDING ? enc_flush_one(r) : 0;
}

/* A piece of ASCII bytes other than EC_SEP: lowercase and cut into words. */
static int enc_piece_ascii(enc_run *r, const unsigned char *p, size_t n)
{
    char *w = r->an->word;
    size_t i = 0;
    while (i < n) {
        if (!enc_is_alnum_class(enc_ascii_class[p[i]])) {
            i++;
            continue;
        }
        size_t wlen = 0;
        unsigned flags = 0;
        int prev_digit = 0;
        while (i < n) {
            unsigned char c = p[i];
            int cls = enc_ascii_class[c];
            if (cls == EC_LOWER || cls == EC_UPPER) {
                c |= 0x20;
                flags |= EW_LETTER;
                prev_digit = 0;
            } else if (cls == EC_DIGIT) {
                prev_digit = 1;
            } else if (cls == EC_APOS || cls == EC_DOT) {
                if (i + 1 >= n || !enc_is_alnum_class(enc_ascii_class[p[i + 1]]))
                    break;
                if (cls == EC_DOT)
                    flags |= EW_DOT;
            } else if (cls == EC_COMMA) {
                if (!prev_digit || i + 1 >= n || enc_ascii_class[p[i + 1]] != EC_DIGIT)
                    break;
            } else {
                break;
            }
            if (wlen < ENC_WORD_CAP)
                w[wlen] = (char)c;
            wlen++;
            i++;
        }
        int rc = enc_emit(r, wlen, flags);
        if (rc)
            return rc;
    }
    return 0;
}

/* Appends code point c as UTF-8; past ENC_WORD_CAP only counts its bytes. */
static inline size_t enc_word_put(char *w, size_t wlen, int32_t c)
{
    utf8proc_uint8_t b[4];
    size_t k = (size_t)utf8proc_encode_char(c, b);
    if (wlen + k <= ENC_WORD_CAP)
        memcpy(w + wlen, b, k);
    return wlen + k;
}

/* Grows the code point scratch to hold n entries. */
static int enc_cps_reserve(enc_analyzer *an, size_t n)
{
    if (n <= an->cps_cap)
        return 0;
    size_t cap = an->cps_cap * 2 > n ? an->cps_cap * 2 : n;
    if (cap > SIZE_MAX / sizeof *an->cps)
        return LX_E_NOMEM;
    int32_t *c = realloc(an->cps, cap * sizeof *c);
    if (!c)
        return LX_E_NOMEM;
    an->cps = c;
    an->cps_cap = cap;
    return 0;
}

/* A piece of valid UTF-8 without NULs: NFKC_Casefold it, then cut words. */
static int enc_piece_unicode(enc_run *r, const unsigned char *p, size_t n)
{
    enc_analyzer *an = r->an;
    utf8proc_ssize_t m;
    int rc;

    if (n > (size_t)PTRDIFF_MAX / 32)     /* utf8proc counts in ssize_t */
        return LX_E_NOMEM;
    for (;;) {
        m = utf8proc_decompose_custom(p, (utf8proc_ssize_t)n, an->cps,
                                      (utf8proc_ssize_t)an->cps_cap, ENC_NFKC_CF,
                                      NULL, NULL);
        if (m == UTF8PROC_ERROR_NOMEM || m == UTF8PROC_ERROR_OVERFLOW)
            return LX_E_NOMEM;
        LX_ASSERT(m >= 0);      /* the piece was validated: utf8proc agrees */
        if ((size_t)m <= an->cps_cap)
            break;
        if ((rc = enc_cps_reserve(an, (size_t)m)))
            return rc;
    }
    m = utf8proc_normalize_utf32(an->cps, m, ENC_NFKC_CF);
    LX_ASSERT(m >= 0);

    const int32_t *c = an->cps;   /* (m) code points, NFKC_Casefold */
    size_t k = (size_t)m, i = 0;
    char *w = an->word;
    while (i < k) {
        int cls = enc_uclass(c[i]);
        size_t wlen = 0;
        unsigned flags = 0;
        if (cls == EC_CJK) {
            wlen = enc_word_put(w, 0, c[i++]);
            while (i < k && enc_uclass(c[i]) == EC_MARK)
                wlen = enc_word_put(w, wlen, c[i++]);
            flags = EW_CJK;
        } else if (enc_is_alnum_class(cls) || cls == EC_MARK) {
            int prev_digit = 0;
            while (i < k) {
                int32_t ch = c[i];
                cls = enc_uclass(ch);
                if (cls == EC_LOWER || cls == EC_UPPER || cls == EC_MARK) {
                    if (cls != EC_MARK)
                        flags |= EW_LETTER;
                    prev_digit = 0;
                } else if (cls == EC_DIGIT) {
                    prev_digit = 1;
                } else if (cls == EC_APOS || cls == EC_DOT) {
                    if (i + 1 >= k || !enc_is_alnum_class(enc_uclass(c[i + 1])))
                        break;
                    if (cls == EC_DOT)
                        flags |= EW_DOT;
                    ch = cls == EC_APOS ? '\'' : ch;    /* ’ -> ' */
                } else if (cls == EC_COMMA) {
                    if (!prev_digit || i + 1 >= k || enc_uclass(c[i + 1]) != EC_DIGIT)
                        break;
                } else {
                    break;
                }
                wlen = enc_word_put(w, wlen, ch);
                i++;
            }
        } else {
            i++;
            continue;
        }
        if ((rc = enc_emit(r, wlen, flags)))
            return rc;
    }
    return 0;
}

int enc_analyzer_run(enc_analyzer *an, const char *text, size_t len,
                     enc_term_fn fn, void *ctx)
{
    LX_ASSERT(an != NULL && fn != NULL);
    LX_ASSERT(text != NULL || len == 0);
    enc_run r;           /* not zeroed whole: pend is written before read */
    r.an = an;
    r.fn = fn;
    r.ctx = ctx;
    r.pos = 0;
    r.head = r.tail = 0;
    const unsigned char *s = (const unsigned char *)text;
    int fast = !an->reference;
    size_t i = 0;
    int32_t cp;

    while (i < len) {
        /* Between pieces: skip separators and invalid bytes one at a time. */
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c == 0 || (fast && enc_ascii_class[c] == EC_SEP)) {
                i++;
                continue;
            }
        } else if (lx_utf8_decode(s + i, len - i, &cp) == 0) {
            i++;
            continue;
        }
        /* A piece: up to a hard break (invalid byte, NUL) or a safe point. */
        size_t start = i;
        int ascii = 1;
        while (i < len) {
            c = s[i];
            if (c < 0x80) {
                if (c == 0 || (fast && enc_ascii_class[c] == EC_SEP))
                    break;
                i++;
                continue;
            }
            size_t k = lx_utf8_decode(s + i, len - i, &cp);
            if (k == 0)
                break;
            if (fast && i - start >= an->piece_cap && i > start && enc_is_safe_starter(cp))
                break;
            ascii = 0;
            i += k;
        }
        int rc = ascii && fast ? enc_piece_ascii(&r, s + start, i - start)
                               : enc_piece_unicode(&r, s + start, i - start);
        if (rc)
            return rc;
    }
    while (r.head != r.tail) {          /* the words still in the ring */
        int rc = enc_flush_one(&r);
        if (rc)
            return rc;
    }
    return 0;
}
