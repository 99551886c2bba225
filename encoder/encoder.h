/* encoder.h: text -> representations. For now, the lexical analyzer.
 *
 * The analyzer turns UTF-8 text into index terms:
 *   1. UTF-8 validation: an invalid byte sequence (and a NUL byte) is a word
 *      separator; it never crashes and never joins two words.
 *   2. Unicode NFKC + case folding (utf8proc); pure-ASCII text takes a fast
 *      path that gives the same result.
 *   3. Word segmentation: a word is a run of Unicode letters (L*), marks (M*)
 *      and digits (N*); an apostrophe (' or U+2019) or a period between two
 *      letters/digits, and a comma between two digits, stay inside the word
 *      ("o'neil", "u.s", "3.14", "1,000"). Han, Hiragana and Katakana
 *      characters are one word each.
 *   4. Possessive stripping: a trailing "'s" is removed ("john's" -> "john").
 *   5. Stop words: Lucene's 33 English words by default; a custom list or none.
 *   6. Snowball stemming (libstemmer): "porter" by default (the original
 *      Porter stemmer, as Lucene's EnglishAnalyzer and Anserini use; it
 *      reproduces their published BM25 numbers), "english" (Porter2) or any
 *      libstemmer language; "none" turns it off.
 *   Words longer than ENC_MAX_TERM_BYTES bytes after folding are dropped.
 *
 * Usage:
 *     enc_analyzer_params p = enc_analyzer_default_params();
 *     enc_analyzer *an;
 *     int rc = enc_analyzer_open(&p, &an);
 *     rc = enc_analyzer_run(an, text, len, on_term, ctx);  // on_term per term
 *     enc_analyzer_close(an);
 *
 * An analyzer is not thread-safe (the stemmer keeps state): one per thread.
 * The settings are described by a short string (enc_analyzer_describe) that
 * an index records so queries are analyzed exactly as documents were.
 */
#ifndef LX_ENCODER_H
#define LX_ENCODER_H

#include "../kernels/kernels.h"

#include <stddef.h>

#define ENC_MAX_TERM_BYTES 128

typedef struct enc_analyzer enc_analyzer;

typedef struct enc_analyzer_params {
    /* Stemmer: "porter" (default), "english", "none", or any libstemmer
     * algorithm name. Borrowed; copied by enc_analyzer_open. */
    const char *stemmer;
    /* Stop words: "lucene" (default: Lucene's 33 English words), "none",
     * or a comma-separated list of words ("a,an,the"). Borrowed; copied. */
    const char *stopwords;
    /* 1 (default): strip a trailing 's / ’s. */
    int strip_possessive;
} enc_analyzer_params;

enc_analyzer_params enc_analyzer_default_params(void);

/* Opens an analyzer. *out is owned by the caller; close it with
 * enc_analyzer_close. Returns LX_E_INVAL for an unknown stemmer. */
int enc_analyzer_open(const enc_analyzer_params *p, enc_analyzer **out);
void enc_analyzer_close(enc_analyzer *an);

/* Called once per term, in text order. `term` is borrowed, valid only
 * during the call; it is not NUL-terminated. `pos` is the word's position
 * (stop words count as positions). Return nonzero to stop: that value
 * becomes enc_analyzer_run's return value. The run cuts words a few ahead
 * of the calls (analyzer.c, ENC_PENDING), so a stop comes after those. */
typedef int (*enc_term_fn)(void *ctx, const char *term, size_t len, uint32_t pos);

/* Analyzes `len` bytes of `text` (any bytes; see the UTF-8 policy above).
 * Returns 0, LX_E_NOMEM, or the callback's nonzero value. */
int enc_analyzer_run(enc_analyzer *an, const char *text, size_t len,
                     enc_term_fn fn, void *ctx);

/* Writes the settings as "stemmer=english;stopwords=lucene;possessive=1"
 * (NUL-terminated) into buf. Returns 0 or LX_E_TOOBIG if cap is too small. */
int enc_analyzer_describe(const enc_analyzer *an, char *buf, size_t cap);

/* Parses a string written by enc_analyzer_describe into params whose string
 * fields point into `storage` (caller-owned, at least strlen(desc)+1 bytes,
 * valid as long as the params are used). Returns 0 or LX_E_INVAL. */
int enc_analyzer_params_parse(const char *desc, enc_analyzer_params *p,
                              char *storage, size_t cap);

#endif
