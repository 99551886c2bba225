/* test_encoder.c: cmocka suite for the lexical analyzer (encoder/analyzer.c).
 *
 * Most tests run text through an analyzer and compare the terms, joined by
 * spaces (optionally "term@pos"), with a literal. The oracle tests compare
 * the fast path (ASCII pieces without utf8proc, pieces cut at safe points)
 * and the stem cache with the reference mode of encoder_impl.h, which maps
 * every valid run through utf8proc whole and stems without the cache, on
 * generated text.
 */
/* The C headers come before cmocka.h: under UNIT_TESTING it redefines
 * malloc and friends, which must not touch their declarations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../encoder/encoder.h"
#include "../encoder/encoder_impl.h"

// --- helpers -----------------------------------------------------------------

/* Collects terms as "t1 t2 ..." (or "t1@0 t2@1 ..."). Owns buf. */
typedef struct sink {
    char *buf;
    size_t len, cap;
    int with_pos;
    int stop_after;     /* > 0: return 42 from the callback on that term */
    int count;
} sink;

static void sink_put(sink *s, const char *p, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        s->cap = (s->len + n + 1) * 2;
        s->buf = realloc(s->buf, s->cap);
        assert_non_null(s->buf);
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
}

static int sink_term(void *ctx, const char *term, size_t len, uint32_t pos)
{
    sink *s = ctx;
    char num[16];
    assert_true(len > 0 && len <= ENC_MAX_TERM_BYTES);
    if (s->count++)
        sink_put(s, " ", 1);
    sink_put(s, term, len);
    if (s->with_pos) {
        int n = snprintf(num, sizeof num, "@%u", pos);
        sink_put(s, num, (size_t)n);
    }
    if (s->stop_after && s->count == s->stop_after)
        return 42;
    return 0;
}

static void sink_init(sink *s, int with_pos)
{
    memset(s, 0, sizeof *s);
    s->with_pos = with_pos;
    sink_put(s, "", 0);
}

static enc_analyzer *open_an(const char *stem, const char *stop, int poss)
{
    enc_analyzer_params p = enc_analyzer_default_params();
    enc_analyzer *an = NULL;
    p.stemmer = stem;
    p.stopwords = stop;
    p.strip_possessive = poss;
    assert_int_equal(enc_analyzer_open(&p, &an), 0);
    assert_non_null(an);
    return an;
}

/* Runs text (len bytes) and returns the joined terms; caller frees. */
static char *run_an(enc_analyzer *an, const char *text, size_t len, int with_pos)
{
    sink s;
    sink_init(&s, with_pos);
    assert_int_equal(enc_analyzer_run(an, text, len, sink_term, &s), 0);
    return s.buf;
}

static void check_n(const char *stem, const char *stop, int poss, int with_pos,
                    const char *text, size_t len, const char *want)
{
    enc_analyzer *an = open_an(stem, stop, poss);
    char *got = run_an(an, text, len, with_pos);
    assert_string_equal(got, want);
    free(got);
    enc_analyzer_close(an);
}

static void check(const char *stem, const char *stop, int poss, const char *text,
                  const char *want)
{
    check_n(stem, stop, poss, 0, text, strlen(text), want);
}

/* Default settings: english, lucene, possessive=1. */
static void check_def(const char *text, const char *want)
{
    check("english", "lucene", 1, text, want);
}

/* Raw mapping: no stemming, no stop words. */
static void check_raw(const char *text, const char *want)
{
    check("none", "none", 1, text, want);
}

// --- tests -----------------------------------------------------------------

static void test_ascii_basics(void **state)
{
    (void)state;
    check_def("Hello, World! Running quickly.", "hello world run quick");
    check_raw("state-of-the-art (MRI) x_y a/b foo@bar.com", "state of the art mri x y a b foo bar.com");
    check_raw("tab\tnew\nline\r\nend", "tab new line end");
    check_raw("  leading and trailing  ", "leading and trailing");
    check_raw("a<b=c>d", "a b c d");
}

static void test_case_folding(void **state)
{
    (void)state;
    check_raw("HELLO hello HeLLo", "hello hello hello");
    check_raw("ΣΊΣΥΦΟΣ", "σίσυφοσ");               /* final sigma folds to σ */
    check_raw("Straße STRASSE", "strasse strasse"); /* full folding */
    check_raw("ÉCOLE École", "école école");
    check_raw("\xE2\x84\xAA" "elvin", "kelvin");   /* U+212A KELVIN SIGN */
}

static void test_nfkc(void **state)
{
    (void)state;
    check_def("Ｌｅｘｉｓ", "lexi");
    check_raw("Ｌｅｘｉｓ", "lexis");
    check_raw("ﬁnance ﬂow", "finance flow");       /* ligatures */
    check_raw("x² H₂O", "x2 h2o");
    check_raw("½", "1 2");                          /* 1 U+2044 2: slash splits */
    check_raw("cafe\xCC\x81 caf\xC3\xA9", "caf\xC3\xA9 caf\xC3\xA9");  /* NFC */
    check_raw("Ⅻ", "xii");
    check_raw("soft\xC2\xADhyphen", "softhyphen");  /* default-ignorable removed */
    check_raw("ａｂｃ，ｄｅｆ", "abc def");           /* fullwidth comma splits */
    check_raw("１，０００ ３．１４", "1,000 3.14");     /* ...but glues digits */
}

static void test_accented(void **state)
{
    (void)state;
    check_raw("naïve café résumé Ångström", "naïve café résumé ångström");
    check_def("naïve cafés résumé", "naïv café résumé");
    check_raw("Ελληνικά русский ⅰ", "ελληνικά русский i");
    check("russian", "none", 1, "книги", "книг");
}

static void test_possessive(void **state)
{
    (void)state;
    check_raw("John's JOHN’S james' o'neil's", "john john james o'neil");
    check_raw("it's", "it");
    check_def("it's the dog's bone", "dog bone");   /* "it" then is a stop word */
    check("none", "none", 0, "john's o’neil", "john's o'neil");
    check("porter", "none", 0, "john's", "john'");   /* porter keeps the ' */
    check("porter", "none", 1, "john's", "john");
    check_raw("u.s's", "u.s");
    check_raw("'s s's", "s s");
}

static void test_stopwords(void **state)
{
    (void)state;
    check_n("none", "lucene", 1, 1, "The cat is on the mat", 21, "cat@1 mat@5");
    check_n("none", "none", 1, 1, "The cat is on the mat", 21,
            "the@0 cat@1 is@2 on@3 the@4 mat@5");
    check("none", "cat,MAT", 1, "The cat is on the mat", "the is on the");
    check("none", "  Cat , ｍａｔ ,,", 1, "The cat is on the mat", "the is on the");
    check("none", "don’t", 1, "I don't know", "i know");
    check("none", "", 1, "the cat", "the cat");
    /* All 33 Lucene words go; their neighbours stay. */
    check_def("a an and are as at be but by for if in into is it no not of on or "
              "such that the their then there these they this to was will with "
              "zebra", "zebra");
    /* Stop words are checked before stemming: "ands" stems to "and". */
    check_def("ands and", "and");
}

static void test_stemmers(void **state)
{
    (void)state;
    const char *t = "generously dying skies news";
    check("english", "none", 1, t, "generous die sky news");
    check("porter", "none", 1, t, "gener dy ski new");
    check("none", "none", 1, t, "generously dying skies news");
    check("french", "none", 1, "continuellement", "continuel");
    /* Numbers and dotted words are not stemmed. */
    check("english", "none", 1, "u.s e.g 1,000s 3.14", "u.s e.g 1,000s 3.14");
}

static void test_glue(void **state)
{
    (void)state;
    check_raw("o'neil u.s.a. 3.14 1,000,000 a,b 1,a a.1 x'y 'quoted' end. .start",
              "o'neil u.s.a 3.14 1,000,000 a b 1 a a.1 x'y quoted end start");
    check_raw("rock'n'roll don’t it''s a..b 1,,2 1, 2 x.'y", "rock'n'roll don't it s a b 1 2 1 2 x y");
    check_raw("v1.2.3 ipv4:10.0.0.1", "v1.2.3 ipv4 10.0.0.1");
}

static void test_cjk(void **state)
{
    (void)state;
    check_n("english", "lucene", 1, 1, "漢字テスト", strlen("漢字テスト"),
            "漢@0 字@1 テ@2 ス@3 ト@4");
    check_raw("abc漢字def", "abc 漢 字 def");
    check_raw("ひらがな", "ひ ら が な");
    check_raw("ｶﾀｶﾅ ｶﾞ", "カ タ カ ナ ガ");            /* halfwidth -> full, voiced */
    check_raw("か\xE3\x82\x99", "が");                   /* NFC composes kana */
    check_raw("한국어 텍스트", "한국어 텍스트");            /* Hangul: runs stay words */
    check_raw("東京2020", "東 京 2020");
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    static const struct { const char *in; size_t n; const char *want; } cases[] = {
        { "abc\x80" "def", 7, "abc def" },                  /* lone continuation */
        { "abc\xC3", 4, "abc" },                            /* truncated at end */
        { "ab\xE2\x82" "cd", 6, "ab cd" },                  /* truncated inside */
        { "a\xC0\xAF" "b", 4, "a b" },                      /* overlong '/' */
        { "a\xE0\x80\xAF" "b", 5, "a b" },                  /* overlong, 3 bytes */
        { "a\xF0\x80\x80\xAF" "b", 6, "a b" },              /* overlong, 4 bytes */
        { "a\xED\xA0\x80" "b", 5, "a b" },                  /* surrogate U+D800 */
        { "a\xED\xBF\xBF" "b", 5, "a b" },                  /* surrogate U+DFFF */
        { "x\xF4\x90\x80\x80" "y", 6, "x y" },              /* > U+10FFFF */
        { "\xFF", 1, "" },
        { "\xFE\xFF\xC0\xC1\xF5\xF8", 6, "" },
        { "foo\0bar", 7, "foo bar" },                       /* NUL */
        { "caf\xC3\xA9\0caf\xC3\xA9", 11, "café café" },
        { "caf\xC3\xA9\x80" "ok", 8, "café ok" },
        { "1\xFF,000", 6, "1 000" },                        /* never joins */
        { "o\x80'neil", 7, "o neil" },
        { "\xC3\xA9\xE2\x82", 4, "é" },
        { "\xF0\x9F\x98", 3, "" },                          /* truncated emoji */
        { "\xF0\x9F\x98\x80" "smile", 9, "smile" },         /* valid emoji: So */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_n("none", "none", 1, 0, cases[i].in, cases[i].n, cases[i].want);
}

static void test_long_words(void **state)
{
    (void)state;
    char buf[1024], want[1024];
    /* 128 bytes are kept, 129 dropped; the dropped word keeps its position. */
    memset(buf, 'a', 128);
    memcpy(want, buf, 128);
    strcpy(want + 128, "@0");
    check_n("none", "none", 1, 1, buf, 128, want);
    memcpy(buf, "x ", 2);
    memset(buf + 2, 'a', 129);
    memcpy(buf + 131, " y", 3);
    check_n("none", "none", 1, 1, buf, strlen(buf), "x@0 y@2");
    /* The limit applies after the possessive strip. */
    memset(buf, 'b', 128);
    memcpy(buf + 128, "'s", 2);
    memcpy(want, buf, 128);
    want[128] = '\0';
    check_n("none", "none", 1, 0, buf, 130, want);
    memset(buf, 'b', 129);
    memcpy(buf + 129, "'s", 2);
    check_n("none", "none", 1, 0, buf, 131, "");
    /* Multi-byte: 64 x é = 128 bytes kept, 65 dropped. */
    size_t n = 0;
    for (int i = 0; i < 64; i++, n += 2)
        memcpy(buf + n, "\xC3\xA9", 2);
    memcpy(want, buf, n);
    want[n] = '\0';
    check_n("none", "none", 1, 0, buf, n, want);
    memcpy(buf + n, "\xC3\xA9", 2);
    check_n("none", "none", 1, 0, buf, n + 2, "");
    /* Measured after folding: 100 fullwidth a (300 bytes) fold to 100. */
    n = 0;
    for (int i = 0; i < 100; i++, n += 3)
        memcpy(buf + n, "\xEF\xBD\x81", 3);
    memset(want, 'a', 100);
    want[100] = '\0';
    check_n("none", "none", 1, 0, buf, n, want);
    /* A very long word is skipped without harm. */
    char *big = malloc(1 << 20);
    assert_non_null(big);
    memset(big, 'z', 1 << 20);
    memcpy(big + (1 << 20) - 4, " end", 4);
    check_n("none", "none", 1, 1, big, 1 << 20, "end@1");
    free(big);
}

static void test_empty(void **state)
{
    (void)state;
    enc_analyzer *an = open_an("english", "lucene", 1);
    sink s;
    sink_init(&s, 0);
    assert_int_equal(enc_analyzer_run(an, NULL, 0, sink_term, &s), 0);
    assert_int_equal(enc_analyzer_run(an, "", 0, sink_term, &s), 0);
    assert_int_equal(enc_analyzer_run(an, "  \t\n.,;'", 8, sink_term, &s), 0);
    assert_int_equal(enc_analyzer_run(an, "the a of", 8, sink_term, &s), 0);
    assert_int_equal(s.count, 0);
    free(s.buf);
    enc_analyzer_close(an);
    enc_analyzer_close(NULL);
}

static void test_positions(void **state)
{
    (void)state;
    const char *t = "the quick brown fox, jumps over the lazy dog's back";
    check_n("english", "lucene", 1, 1, t, strlen(t),
            "quick@1 brown@2 fox@3 jump@4 over@5 lazi@7 dog@8 back@9");
    /* Positions restart with each run; CJK and Unicode words count alike. */
    t = "é 漢 x";
    check_n("none", "none", 1, 1, t, strlen(t), "é@0 漢@1 x@2");
    /* More words than the run keeps waiting (ENC_PENDING), ASCII and
     * Unicode pieces mixed: order and positions hold across the ring. */
    t = "a1 b2 c3 d4 the e5 f6 g7 ünï h8 i9 j10 k11 running l12 m13 n14 o15 p16";
    check_n("english", "lucene", 1, 1, t, strlen(t),
            "a1@0 b2@1 c3@2 d4@3 e5@5 f6@6 g7@7 ünï@8 h8@9 i9@10 j10@11 k11@12 run@13 "
            "l12@14 m13@15 n14@16 o15@17 p16@18");
}

static void test_early_stop(void **state)
{
    (void)state;
    enc_analyzer *an = open_an("english", "lucene", 1);
    const char *texts[] = { "one two three four", "ün zwö drëi vïer", "漢字テスト" };
    for (size_t i = 0; i < 3; i++) {
        sink s;
        sink_init(&s, 0);
        s.stop_after = 2;
        assert_int_equal(enc_analyzer_run(an, texts[i], strlen(texts[i]), sink_term, &s), 42);
        assert_int_equal(s.count, 2);
        free(s.buf);
    }
    /* A stop past the ring's first fill: no call after it. */
    const char *t = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20";
    sink s;
    sink_init(&s, 0);
    s.stop_after = 11;
    assert_int_equal(enc_analyzer_run(an, t, strlen(t), sink_term, &s), 42);
    assert_int_equal(s.count, 11);
    assert_string_equal(s.buf, "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11");
    free(s.buf);
    enc_analyzer_close(an);
}

static void test_describe_parse(void **state)
{
    (void)state;
    char d1[256], d2[256], storage[256];
    enc_analyzer *an = NULL, *an2 = NULL;
    enc_analyzer_params p = enc_analyzer_default_params();

    assert_int_equal(enc_analyzer_open(&p, &an), 0);
    assert_int_equal(enc_analyzer_describe(an, d1, sizeof d1), 0);
    assert_string_equal(d1, "stemmer=porter;stopwords=lucene;possessive=1");
    enc_analyzer_close(an);

    /* NULL params and NULL fields take the defaults. */
    assert_int_equal(enc_analyzer_open(NULL, &an), 0);
    assert_int_equal(enc_analyzer_describe(an, d2, sizeof d2), 0);
    assert_string_equal(d1, d2);
    enc_analyzer_close(an);

    p.stemmer = "porter";
    p.stopwords = "a, the ,Über";
    p.strip_possessive = 0;
    assert_int_equal(enc_analyzer_open(&p, &an), 0);
    assert_int_equal(enc_analyzer_describe(an, d1, sizeof d1), 0);
    assert_string_equal(d1, "stemmer=porter;stopwords=a, the ,Über;possessive=0");
    assert_int_equal(enc_analyzer_params_parse(d1, &p, storage, sizeof storage), 0);
    assert_string_equal(p.stemmer, "porter");
    assert_string_equal(p.stopwords, "a, the ,Über");
    assert_int_equal(p.strip_possessive, 0);
    assert_int_equal(enc_analyzer_open(&p, &an2), 0);
    assert_int_equal(enc_analyzer_describe(an2, d2, sizeof d2), 0);
    assert_string_equal(d1, d2);
    /* ...and the reopened analyzer analyzes alike. */
    const char *t = "The dog's UBER über generously";
    char *a = run_an(an, t, strlen(t), 1), *b = run_an(an2, t, strlen(t), 1);
    assert_string_equal(a, b);
    assert_string_equal(a, "dog'@1 uber@2 gener@4");
    free(a);
    free(b);
    enc_analyzer_close(an2);

    /* Too small a buffer: LX_E_TOOBIG and an empty string. */
    size_t need = strlen(d1) + 1;
    assert_int_equal(enc_analyzer_describe(an, d2, need), 0);
    assert_int_equal(enc_analyzer_describe(an, d2, need - 1), LX_E_TOOBIG);
    assert_string_equal(d2, "");
    assert_int_equal(enc_analyzer_describe(an, d2, 0), LX_E_TOOBIG);
    enc_analyzer_close(an);

    /* Keys in any order; empty stop list allowed. */
    assert_int_equal(enc_analyzer_params_parse("possessive=1;stopwords=;stemmer=none",
                                               &p, storage, sizeof storage), 0);
    assert_string_equal(p.stemmer, "none");
    assert_string_equal(p.stopwords, "");
    assert_int_equal(p.strip_possessive, 1);

    static const char *const bad[] = {
        "", "stemmer=english", "stemmer=english;stopwords=lucene",
        "stemmer=english;stopwords=lucene;possessive=2",
        "stemmer=english;stopwords=lucene;possessive=",
        "stemmer=english;stopwords=lucene;possessive=1;",
        "stemmer=english;stopwords=lucene;possessive=1;foo=bar",
        "stemmer=english;stemmer=porter;stopwords=lucene;possessive=1",
        "stemmer;stopwords=lucene;possessive=1",
        "stemmer=;stopwords=lucene;possessive=1",
        "Stemmer=english;stopwords=lucene;possessive=1",
        "stemmer=english;;stopwords=lucene;possessive=1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(enc_analyzer_params_parse(bad[i], &p, storage, sizeof storage),
                         LX_E_INVAL);
    const char *good = "stemmer=english;stopwords=lucene;possessive=1";
    assert_int_equal(enc_analyzer_params_parse(good, &p, storage, strlen(good)), LX_E_INVAL);
    assert_int_equal(enc_analyzer_params_parse(good, &p, storage, strlen(good) + 1), 0);
    assert_int_equal(enc_analyzer_params_parse(NULL, &p, storage, sizeof storage), LX_E_INVAL);
}

static void test_open_errors(void **state)
{
    (void)state;
    enc_analyzer_params p = enc_analyzer_default_params();
    enc_analyzer *an = (enc_analyzer *)&p;   /* must be reset to NULL */
    p.stemmer = "klingon";
    assert_int_equal(enc_analyzer_open(&p, &an), LX_E_INVAL);
    assert_null(an);
    p.stemmer = "";
    assert_int_equal(enc_analyzer_open(&p, &an), LX_E_INVAL);
    p.stemmer = "english;x=1";
    assert_int_equal(enc_analyzer_open(&p, &an), LX_E_INVAL);
    p.stemmer = "english";
    p.stopwords = "a;b";
    assert_int_equal(enc_analyzer_open(&p, &an), LX_E_INVAL);
    p.stopwords = "a=b";
    assert_int_equal(enc_analyzer_open(&p, &an), LX_E_INVAL);
    p.stopwords = "ok,\xFF\xFE";                /* invalid UTF-8 stop word */
    assert_int_equal(enc_analyzer_open(&p, &an), LX_E_INVAL);
    assert_int_equal(enc_analyzer_open(NULL, NULL), LX_E_INVAL);
}

// --- oracle tests: fast path vs reference mode ------------------------------

static char *run_mode(const char *stem, const char *stop, int reference, size_t piece_cap,
                      const char *text, size_t len)
{
    enc_analyzer *an = open_an(stem, stop, 1);
    enc_stem_entry *cache = an->stem_cache;   /* the library's; it frees it */
    an->reference = reference;
    if (reference)              /* the oracle asks Snowball every time */
        an->stem_cache = NULL;
    if (piece_cap)
        an->piece_cap = piece_cap;
    char *got = run_an(an, text, len, 1);
    an->stem_cache = cache;
    enc_analyzer_close(an);
    return got;
}

static void expect_same_modes(const char *text, size_t len)
{
    char *ref = run_mode("english", "lucene", 1, 0, text, len);
    char *fast = run_mode("english", "lucene", 0, 0, text, len);
    char *tiny = run_mode("english", "lucene", 0, 1, text, len);
    if (strcmp(ref, fast) != 0 || strcmp(ref, tiny) != 0)
        fail_msg("modes differ on [%.*s]:\n ref  %s\n fast %s\n tiny %s", (int)len, text,
                 ref, fast, tiny);
    free(ref);
    free(fast);
    free(tiny);
}

/* xorshift: a fixed sequence, so failures reproduce. */
static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void test_fast_path_equals_unicode(void **state)
{
    (void)state;
    /* An ASCII word analyzed alone (fast path) and glued by '<' to a
     * non-ASCII word (one piece: Unicode path) gives the same term. */
    static const char *const words[] = {
        "Running", "JOHN's", "o'neil", "U.S.A.", "3.14", "1,000,000", "generously",
        "x'y", "a.1", "The", "it's", "HTTP2", "rock'n'roll",
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        char glued[64];
        snprintf(glued, sizeof glued, "%s<\xC3\xA9t\xC3\xA9", words[i]);
        enc_analyzer *an = open_an("english", "lucene", 1);
        char *alone = run_an(an, words[i], strlen(words[i]), 1);
        char *mixed = run_an(an, glued, strlen(glued), 1);
        enc_analyzer_close(an);
        /* mixed = alone + " été@N" (or just "été@0" for a stop word) */
        size_t an_len = strlen(alone);
        if (an_len)
            assert_memory_equal(mixed, alone, an_len);
        assert_non_null(strstr(mixed + an_len, "\xC3\xA9t\xC3\xA9@"));
        free(alone);
        free(mixed);
        expect_same_modes(glued, strlen(glued));
        expect_same_modes(words[i], strlen(words[i]));
    }

    /* Random text over a small alphabet with the interesting characters. */
    static const char *const atoms[] = {
        "a", "B", "s", "z", "0", "7", "'", ".", ",", " ", "-", "<", "=", ">", "\t", "\0",
        "\xC3\xA9",          /* é */
        "\xCC\x81",          /* combining acute */
        "\xCC\xB8",          /* combining long solidus: = + it -> ≠ */
        "\xE2\x80\x99",      /* ’ */
        "\xE6\xBC\xA2",      /* 漢 */
        "\xE3\x80\x80",      /* ideographic space */
        "\xEF\xBD\xB6", "\xEF\xBE\x9E",   /* halfwidth ka, voiced mark */
        "\xEF\xAC\x81",      /* ﬁ */
        "\xC2\xAD",          /* soft hyphen */
        "\xEF\xBC\x8C",      /* fullwidth comma */
        "\xC2\xA0",          /* no-break space */
        "\x80", "\xFF", "\xE2\x82",       /* invalid */
    };
    uint32_t seed = 0x9E3779B9u;
    char buf[256];
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = 0, atoms_n = 1 + rnd(&seed) % 40;
        for (size_t k = 0; k < atoms_n; k++) {
            const char *a = atoms[rnd(&seed) % (sizeof atoms / sizeof atoms[0])];
            size_t al = a[0] ? strlen(a) : 1;
            memcpy(buf + n, a, al);
            n += al;
        }
        expect_same_modes(buf, n);
    }
}

static void test_stem_cache(void **state)
{
    (void)state;
    /* Many distinct words, repeated, through a cache far smaller than the
     * vocabulary: every collision and refill must give Snowball's answer. */
    static const char *const stems[] = { "run", "generous", "connect", "sky", "nation" };
    static const char *const ends[] = { "", "s", "ing", "ed", "ly", "ation", "ies", "ness" };
    size_t cap = 1 << 20, n = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    uint32_t seed = 12345;
    while (n + 64 < cap) {
        uint32_t r = rnd(&seed);
        n += (size_t)snprintf(t + n, 64, "%s%u%s ", stems[r % 5], (r >> 8) % 3000,
                              ends[(r >> 4) % 8]);
    }
    expect_same_modes(t, n);
    free(t);
}

static void test_piece_cap(void **state)
{
    (void)state;
    /* 20000 ideographs (60 KB) with no ASCII: cut at the piece cap. */
    size_t n = 20000, len = 0;
    char *t = malloc(n * 3 + 8);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++, len += 3) {
        uint32_t c = 0x4E00 + (uint32_t)(i % 0x5000);
        t[len] = (char)(0xE0 | (c >> 12));
        t[len + 1] = (char)(0x80 | ((c >> 6) & 0x3F));
        t[len + 2] = (char)(0x80 | (c & 0x3F));
    }
    enc_analyzer *an = open_an("none", "none", 1);
    sink s;
    sink_init(&s, 0);
    assert_int_equal(enc_analyzer_run(an, t, len, sink_term, &s), 0);
    assert_int_equal(s.count, (int)n);
    assert_true(an->cps_cap < n);    /* the scratch stayed below the whole */
    free(s.buf);
    enc_analyzer_close(an);
    expect_same_modes(t, len);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii_basics),
        cmocka_unit_test(test_case_folding),
        cmocka_unit_test(test_nfkc),
        cmocka_unit_test(test_accented),
        cmocka_unit_test(test_possessive),
        cmocka_unit_test(test_stopwords),
        cmocka_unit_test(test_stemmers),
        cmocka_unit_test(test_glue),
        cmocka_unit_test(test_cjk),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_long_words),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_early_stop),
        cmocka_unit_test(test_describe_parse),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_fast_path_equals_unicode),
        cmocka_unit_test(test_stem_cache),
        cmocka_unit_test(test_piece_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
