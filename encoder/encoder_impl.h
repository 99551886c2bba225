/* encoder_impl.h: private layouts of the encoder module.
 *
 * Only the encoder's .c files and the tests include this header. It shows
 * the analyzer's fields so tests can switch on the reference mode (the
 * oracle that the fast path is checked against) and shrink the piece cap to
 * exercise its splits.
 */
#ifndef LX_ENCODER_IMPL_H
#define LX_ENCODER_IMPL_H

#include "encoder.h"

#include <stddef.h>
#include <stdint.h>

struct sb_stemmer;

/* A word being built may hold two bytes more than a term: a trailing "'s"
 * can still be stripped from it. Longer words are counted, not stored. */
#define ENC_WORD_CAP (ENC_MAX_TERM_BYTES + 2)

/* Pieces of non-ASCII text are cut at a safe code point once they exceed
 * this many bytes, so the code point scratch stays bounded for long runs of
 * CJK text without ASCII separators (see analyzer.c). */
#define ENC_PIECE_CAP 8192

/* Stem cache: direct-mapped, keyed by the word. Word frequencies are
 * Zipfian, so a few thousand entries answer most lookups and save the
 * Snowball call, which is most of the analyzer's time. Words or stems longer
 * than ENC_STEM_KEY bytes bypass it. */
#define ENC_STEM_CACHE 16384          /* entries, a power of two */
#define ENC_STEM_KEY 22
typedef struct enc_stem_entry {
    unsigned char wlen, slen;         /* wlen 0: empty */
    char word[ENC_STEM_KEY];
    char stem[ENC_STEM_KEY];
} enc_stem_entry;

/* A set of stop words: open addressing over one string pool, built at open
 * and read-only afterwards. */
typedef struct enc_stopset {
    char *pool;          /* owns: the words back to back, not terminated */
    uint32_t *offs;      /* owns: n + 1 offsets; word i = pool[offs[i], offs[i+1]) */
    uint32_t *slots;     /* owns: mask + 1 slots; 0 empty, else 1 + word index */
    uint32_t n;          /* number of words */
    uint32_t mask;       /* slot count - 1 (a power of two minus one) */
    size_t min_len;      /* shortest and longest word: a cheap first reject */
    size_t max_len;
} enc_stopset;

struct enc_analyzer {
    char *stemmer_name;            /* owns: params.stemmer as given */
    char *stopwords_spec;          /* owns: params.stopwords as given */
    int strip_possessive;          /* 0 or 1 */
    struct sb_stemmer *stemmer;    /* owns; NULL when stemmer=none */
    enc_stem_entry *stem_cache;    /* owns: ENC_STEM_CACHE entries; NULL when
                                    * stemmer=none (tests may free it: then
                                    * every word goes to Snowball) */
    enc_stopset stop;              /* owns */
    int32_t *cps;                  /* owns: code points of one normalized piece */
    size_t cps_cap;                /* entries allocated in cps */
    char word[ENC_WORD_CAP];       /* the word being built; terms borrow it */

    /* Test knobs, set only by tests and the fuzzer. */
    int reference;                 /* 1: no ASCII fast path; pieces end only at
                                    * invalid bytes and NULs (the oracle) */
    size_t piece_cap;              /* ENC_PIECE_CAP unless a test shrinks it */
};

#endif
