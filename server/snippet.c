/* snippet.c: a window of a hit's text around the query terms, with the
 * offsets of the words to highlight.
 *
 * A word of the text matches when the index's own analyzer turns it into
 * one of the query's terms, so "parsers" is highlighted for the query
 * "parser" exactly when the index matched them. Words are cut the way the
 * analyzer cuts them, approximately: runs of ASCII letters and digits and
 * of any non-ASCII bytes, with an apostrophe, period or comma kept between
 * two such bytes. Analyzing every word of every hit would cost more than
 * the search, so ASCII words are first filtered by their first two bytes
 * (lowercased): stemming and folding never change the start of an ASCII
 * word, so a word whose prefix starts no query term cannot match. Words
 * passing the filter (and every non-ASCII word) are analyzed for real.
 *
 * Window: among the matches in the first SRV_SNIPPET_SCAN (16 KiB) bytes, the window
 * of `window` bytes holding the most distinct query terms (then the most
 * matches, then the earliest) wins; it starts a few words before its first
 * match and ends at a space, so no word or UTF-8 sequence is cut.
 *
 * Offsets are in Unicode code points of the snippet as returned (the page
 * splits the string with Array.from, which walks code points), [start, end).
 */
#include "server_impl.h"

#include <string.h>

#define SRV_SNIPPET_SCAN (16 * 1024)
#define SRV_MAX_MATCHES 256

/* The word cache: word bytes -> matched term (or -1), so a word that comes
 * back (in one hit or the next) is analyzed once per query. */
typedef struct srv_wc {
    const char *w;             /* arena copy; NULL = empty slot */
    uint64_t h;
    uint16_t len;
    int16_t term;
} srv_wc;

/* ---- query terms -------------------------------------------------------------------- */

typedef struct qt_ctx {
    lx_arena *a;
    srv_qterms *out;
    int rc;
} qt_ctx;

static int srv_qterm_cb(void *ctx, const char *term, size_t len, uint32_t pos)
{
    (void)pos;
    qt_ctx *c = ctx;
    srv_qterms *q = c->out;
    for (size_t i = 0; i < q->n; i++)
        if (q->len[i] == len && memcmp(q->t[i], term, len) == 0)
            return 0;
    if (q->n == SRV_MAX_QTERMS)
        return 1;                          /* enough: stop */
    char *t = lx_arena_strndup(c->a, term, len);
    if (!t) {
        c->rc = LX_E_NOMEM;
        return 1;
    }
    q->t[q->n] = t;
    q->len[q->n] = (uint16_t)len;
    q->n++;
    return 0;
}

int srv_qterms_collect(enc_analyzer *an, lx_arena *a, const char *q, size_t len, srv_qterms *out)
{
    out->n = 0;
    out->a = a;
    out->wc_n = 0;
    out->wc = lx_arena_calloc(a, SRV_WC_SLOTS * sizeof *out->wc);   /* NULL: no cache */
    qt_ctx c = { a, out, 0 };
    int rc = enc_analyzer_run(an, q, len, srv_qterm_cb, &c);
    if (c.rc)
        return c.rc;
    /* The prefilter's sets: first bytes, first two bytes. */
    memset(out->first, 0, sizeof out->first);
    memset(out->pre2, 0, sizeof out->pre2);
    for (size_t i = 0; i < out->n; i++) {
        const unsigned char *t = (const unsigned char *)out->t[i];
        out->first[t[0]] |= out->len[i] == 1 ? 1 : 2;
        if (out->len[i] == 1)
            continue;
        uint16_t key = (uint16_t)(t[0] << 8 | t[1]);
        size_t k = key & (SRV_PRE2_SLOTS - 1);
        while (out->pre2[k] && out->pre2[k] != key)
            k = (k + 1) & (SRV_PRE2_SLOTS - 1);
        out->pre2[k] = key;
    }
    return rc == 1 ? 0 : rc;
}

/* ---- matching ------------------------------------------------------------------------ */

typedef struct match_ctx {
    const srv_qterms *qt;
    int term;                  /* index of the matched query term, -1 */
} match_ctx;

static int srv_match_cb(void *ctx, const char *term, size_t len, uint32_t pos)
{
    (void)pos;
    match_ctx *m = ctx;
    for (size_t i = 0; i < m->qt->n; i++) {
        if (m->qt->len[i] == len && memcmp(m->qt->t[i], term, len) == 0) {
            m->term = (int)i;
            return 1;
        }
    }
    return 0;
}

/* Byte classes: 1 word byte (ASCII letter or digit, any non-ASCII byte),
 * 2 a joiner inside a word (' . ,), 4 white space. */
#define W 1
#define J 2
#define S 4
static const uint8_t srv_cls[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, S, S, S, S, S, 0, 0,          /* \t \n \v \f \r */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    S, 0, 0, 0, 0, 0, 0, J, 0, 0, 0, 0, J, 0, J, 0,          /* space ' , . */
    W, W, W, W, W, W, W, W, W, W, 0, 0, 0, 0, 0, 0,          /* 0-9 */
    0, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W,          /* A-O */
    W, W, W, W, W, W, W, W, W, W, W, 0, 0, 0, 0, 0,          /* P-Z */
    0, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W,          /* a-o */
    W, W, W, W, W, W, W, W, W, W, W, 0, 0, 0, 0, 0,          /* p-z */
    W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W,
    W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W,
    W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W,
    W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W,
};
#undef W
#undef J
#undef S

static inline int srv_wordbyte(unsigned char c) { return srv_cls[c] & 1; }

static inline unsigned char srv_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

/* Could the ASCII word w (n bytes) analyze to one of the terms? Looks up
 * its lowercased first byte and first two bytes in the sets that
 * srv_qterms_collect built from the terms. */
static int srv_prefilter(const srv_qterms *qt, const unsigned char *w, size_t n)
{
    unsigned char c0 = srv_lower(w[0]);
    uint8_t f = qt->first[c0];
    if (!f)
        return 0;
    if ((f & 1) || n == 1)
        return 1;                  /* a one-byte term, or a one-byte word */
    uint16_t key = (uint16_t)(c0 << 8 | srv_lower(w[1]));
    for (size_t k = key & (SRV_PRE2_SLOTS - 1);; k = (k + 1) & (SRV_PRE2_SLOTS - 1)) {
        if (qt->pre2[k] == key)
            return 1;
        if (!qt->pre2[k])
            return 0;
    }
}

typedef struct srv_match {
    uint32_t start, end;       /* byte offsets in the text */
    int term;
} srv_match;

static uint64_t srv_wc_hash(const char *w, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)w[i]) * 1099511628211ULL;
    return h;
}

static int srv_word_term(enc_analyzer *an, srv_qterms *qt, const char *w, size_t n)
{
    srv_wc *slot = NULL;
    uint64_t h = 0;
    if (qt->wc && n <= SRV_WC_MAX_WORD) {
        h = srv_wc_hash(w, n);
        for (size_t k = h & (SRV_WC_SLOTS - 1);; k = (k + 1) & (SRV_WC_SLOTS - 1)) {
            srv_wc *e = &qt->wc[k];
            if (!e->w) {
                slot = qt->wc_n < SRV_WC_SLOTS / 2 ? e : NULL;
                break;
            }
            if (e->h == h && e->len == n && memcmp(e->w, w, n) == 0)
                return e->term;
        }
    }
    match_ctx mc = { qt, -1 };
    int term = enc_analyzer_run(an, w, n, srv_match_cb, &mc) == 1 ? mc.term : -1;
    if (slot) {
        char *copy = lx_arena_strndup(qt->a, w, n);
        if (copy) {
            slot->w = copy;
            slot->h = h;
            slot->len = (uint16_t)n;
            slot->term = (int16_t)term;
            qt->wc_n++;
        }
    }
    return term;
}

/* Do the matches m[first..n) hold every query term within `window` bytes
 * of the last one? Then no later window can hold more distinct terms. */
static int srv_all_terms_near(const srv_qterms *qt, const srv_match *m, size_t n, size_t window)
{
    uint64_t seen = 0, all = qt->n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << qt->n) - 1);
    uint32_t end = m[n - 1].end;
    for (size_t k = n; k-- > 0 && m[k].start + window >= end;)
        seen |= (uint64_t)1 << (m[k].term & 63);
    return seen == all;
}

static size_t srv_find_matches(enc_analyzer *an, srv_qterms *qt, const char *text, size_t len,
                               size_t window, srv_match *m, size_t cap)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n = 0, i = 0;
    if (len > SRV_SNIPPET_SCAN)
        len = SRV_SNIPPET_SCAN;
    while (i < len && n < cap) {
        while (i < len && !srv_wordbyte(s[i]))
            i++;
        if (i >= len)
            break;
        size_t start = i;
        int ascii = 1;
        while (i < len) {
            if (srv_wordbyte(s[i])) {
                ascii &= s[i] < 0x80;
                i++;
            } else if ((srv_cls[s[i]] & 2) && i + 1 < len && srv_wordbyte(s[i + 1])) {
                i++;
            } else {
                break;
            }
        }
        /* Do not end inside a UTF-8 sequence cut by the scan limit. */
        size_t end = i;
        while (end > start && end == len && (s[end - 1] & 0xC0) == 0x80)
            end--;
        if (end == start)
            continue;
        if (ascii && !srv_prefilter(qt, s + start, end - start))
            continue;
        int term = srv_word_term(an, qt, text + start, end - start);
        if (term >= 0) {
            m[n].start = (uint32_t)start;
            m[n].end = (uint32_t)end;
            m[n].term = term;
            n++;
            if (window && srv_all_terms_near(qt, m, n, window))
                break;                 /* the best window is found */
        }
    }
    return n;
}

static inline int srv_space(unsigned char c) { return srv_cls[c] & 4; }

int srv_snippet_make(enc_analyzer *an, srv_qterms *qt, const char *text, size_t len,
                     size_t window, srv_buf *out, srv_snippet *sn)
{
    srv_match m[SRV_MAX_MATCHES];
    const unsigned char *s = (const unsigned char *)text;
    srv_buf_reset(out);
    sn->nhl = 0;
    size_t nm = qt->n ? srv_find_matches(an, qt, text, len, window && len > window ? window : 0,
                                         m, SRV_MAX_MATCHES) : 0;

    /* The window [ws, we). */
    size_t ws = 0, we = len;
    if (window && len > window) {
        size_t best = 0;
        int best_distinct = -1, best_count = -1;
        for (size_t j = 0; j < nm; j++) {
            uint64_t seen = 0;
            int distinct = 0, count = 0;
            for (size_t k = j; k < nm && m[k].end <= m[j].start + window; k++) {
                uint64_t bit = (uint64_t)1 << (m[k].term & 63);
                if (!(seen & bit)) {
                    seen |= bit;
                    distinct++;
                }
                count++;
            }
            if (distinct > best_distinct || (distinct == best_distinct && count > best_count)) {
                best = j;
                best_distinct = distinct;
                best_count = count;
            }
        }
        if (nm) {
            /* Some context before the first match: up to a fifth of the window,
             * starting after a space. */
            size_t anchor = m[best].start, back = window / 5;
            ws = anchor > back ? anchor - back : 0;
            if (ws > 0) {
                size_t k = ws;
                while (k < anchor && !srv_space(s[k - 1]))
                    k++;
                ws = k;
            }
        }
        we = ws + window;
        if (we >= len) {
            we = len;
        } else {
            /* End at a space, unless the word is longer than the window. */
            size_t k = we;
            while (k > ws && !srv_space(s[k]))
                k--;
            if (k > ws)
                we = k;
            else
                while (we > ws && (s[we] & 0xC0) == 0x80)
                    we--;
        }
    }

    /* Emit [ws, we): collapse whitespace, count code points, record
     * matches. The output is never longer than the input plus two "…". */
    if (srv_buf_reserve(out, we - ws + 8))
        return LX_E_NOMEM;
    char *o = out->p;
    uint32_t cp = 0;
    size_t mi = 0;
    while (mi < nm && m[mi].start < ws)
        mi++;
    if (ws > 0) {
        memcpy(o, "\xE2\x80\xA6", 3);     /* … */
        o += 3;
        cp++;
    }
    int pending_space = 0, any = 0;
    long open = -1;                              /* start cp of the match being emitted */
    for (size_t i = ws; i < we; i++) {
        unsigned char c = s[i];
        if (srv_space(c)) {
            pending_space = any;
            continue;
        }
        if (pending_space) {
            *o++ = ' ';
            cp++;
            pending_space = 0;
        }
        if (mi < nm && i == m[mi].start && m[mi].end <= we)
            open = cp;
        *o++ = (char)c;
        any = 1;
        cp += (c & 0xC0) != 0x80;
        if (mi < nm && i + 1 == m[mi].end) {
            if (open >= 0 && sn->nhl < SRV_MAX_HL) {
                sn->hl[sn->nhl][0] = (uint32_t)open;
                sn->hl[sn->nhl][1] = cp;
                sn->nhl++;
            }
            open = -1;
            mi++;
        }
    }
    if (we < len) {
        memcpy(o, "\xE2\x80\xA6", 3);
        o += 3;
    }
    out->len = (size_t)(o - out->p);
    out->p[out->len] = '\0';
    return out->failed ? LX_E_NOMEM : 0;
}
