/*
 * gen-corpus — a deterministic synthetic JSONL corpus from the term
 * statistics of real ones.
 *
 *     gen-corpus [--docs N] [--seed S] [--out FILE] [--max-title W]
 *                [--id-prefix P] CORPUS.jsonl...
 *
 * 1. Reads every CORPUS ({"_id","title","text"} per line, as BEIR), splits
 *    title and text into words (ASCII letters and digits, lowercased; every
 *    other byte separates words) and counts
 *      - the frequency of each word in texts, and separately in titles;
 *      - the (title length, text length) pair of every document, in words.
 * 2. Writes N documents {"_id","title","text"}: each takes the length pair
 *    of a real document picked uniformly at random (so lengths follow the
 *    pooled empirical distribution, jointly), its title words are drawn
 *    from the title frequency table (the text table when no corpus has
 *    titles) and its text words from the text table. Both tables are the
 *    empirical unigram distributions, Zipfian as real text is; draws use
 *    Walker's alias method (O(1) each). Titles are cut to --max-title words
 *    (default 12).
 *
 * The output depends only on the inputs (their order included), N and the
 * seed: the random source is xoshiro256** seeded by splitmix64, and the
 * vocabulary is sorted by (count descending, word) before the tables are
 * built, so hash-table order never leaks into the output.
 *
 * Words are [a-z0-9]+, so the output needs no JSON escaping. Bad input
 * lines (not JSON, or without title/text strings) are counted and skipped.
 *
 * Exit status: 0 ok, 1 an input could not be read or the output could not be
 * written (or the inputs hold no words), 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WORD 64            /* longer runs are cut (they are rare: hashes, base64) */

/* ---- random numbers: xoshiro256** seeded with splitmix64 ------------------------- */

typedef struct rng { uint64_t s[4]; } rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return res;
}

/* Uniform in [0, n) (Lemire's multiply-shift; the bias is < n / 2^64). */
static inline uint64_t rng_below(rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* ---- vocabulary: open addressing, words in one byte pool -------------------------- */

typedef struct word {
    uint64_t off;            /* into vocab.pool */
    uint32_t len;
    uint64_t text_n, title_n;
} word;

typedef struct vocab {
    char *pool; size_t pool_len, pool_cap;
    word *w; size_t n, cap;
    uint32_t *slot; size_t nslot;   /* index + 1 into w; 0 empty */
} vocab;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;          /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "gen-corpus: out of memory\n");
        exit(1);
    }
    return q;
}

static void vocab_grow(vocab *v)
{
    size_t ns = v->nslot ? v->nslot * 2 : 1 << 16;
    uint32_t *slot = calloc(ns, sizeof *slot);
    if (!slot) {
        fprintf(stderr, "gen-corpus: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < v->n; i++) {
        size_t h = hash_bytes(v->pool + v->w[i].off, v->w[i].len) & (ns - 1);
        while (slot[h])
            h = (h + 1) & (ns - 1);
        slot[h] = (uint32_t)i + 1;
    }
    free(v->slot);
    v->slot = slot;
    v->nslot = ns;
}

static word *vocab_get(vocab *v, const char *s, size_t n)
{
    if (2 * (v->n + 1) > v->nslot)
        vocab_grow(v);
    size_t h = hash_bytes(s, n) & (v->nslot - 1);
    for (; v->slot[h]; h = (h + 1) & (v->nslot - 1)) {
        word *w = &v->w[v->slot[h] - 1];
        if (w->len == n && memcmp(v->pool + w->off, s, n) == 0)
            return w;
    }
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 1 << 15;
        v->w = xrealloc(v->w, v->cap * sizeof *v->w);
    }
    if (v->pool_len + n > v->pool_cap) {
        v->pool_cap = v->pool_cap ? v->pool_cap * 2 : 1 << 20;
        while (v->pool_len + n > v->pool_cap)
            v->pool_cap *= 2;
        v->pool = xrealloc(v->pool, v->pool_cap);
    }
    memcpy(v->pool + v->pool_len, s, n);
    word *w = &v->w[v->n];
    *w = (word){ v->pool_len, (uint32_t)n, 0, 0 };
    v->pool_len += n;
    v->slot[h] = (uint32_t)++v->n;
    return w;
}

/* Counts the words of s into v (title or text counter); returns how many. */
static uint32_t count_words(vocab *v, const char *s, size_t n, int title)
{
    char buf[MAX_WORD];
    uint32_t words = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum) {
            i++;
            continue;
        }
        size_t len = 0;
        for (; i < n; i++) {
            c = (unsigned char)s[i];
            if (c >= 'A' && c <= 'Z')
                c = (unsigned char)(c - 'A' + 'a');
            else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
                break;
            if (len < MAX_WORD)
                buf[len++] = (char)c;
        }
        word *w = vocab_get(v, buf, len);
        if (title)
            w->title_n++;
        else
            w->text_n++;
        words++;
    }
    return words;
}

/* ---- document lengths ------------------------------------------------------------- */

typedef struct lens { uint32_t *title, *text; size_t n, cap; } lens;

static void lens_push(lens *l, uint32_t title, uint32_t text)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1 << 16;
        l->title = xrealloc(l->title, l->cap * sizeof *l->title);
        l->text = xrealloc(l->text, l->cap * sizeof *l->text);
    }
    l->title[l->n] = title;
    l->text[l->n++] = text;
}

static const char *json_str(json_t *o, const char *k, size_t *len)
{
    json_t *s = json_object_get(o, k);
    if (!s || !json_is_string(s)) {
        *len = 0;
        return NULL;
    }
    *len = json_string_length(s);
    return json_string_value(s);
}

/* Reads one corpus; returns 0 or -1 (message printed). */
static int read_corpus(const char *path, vocab *v, lens *l, uint64_t *skipped)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        fprintf(stderr, "gen-corpus: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned long lineno = 0, bad = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)n)
            continue;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)n, 0, &je);
        size_t tl = 0, xl = 0;
        const char *t = o && json_is_object(o) ? json_str(o, "title", &tl) : NULL;
        const char *x = o && json_is_object(o) ? json_str(o, "text", &xl) : NULL;
        if (!t && !x) {
            if (bad++ < 5)
                fprintf(stderr, "gen-corpus: %s:%lu: %s (skipped)\n", path, lineno,
                        o ? "no \"title\" or \"text\" string" : je.text);
            json_decref(o);
            continue;
        }
        uint32_t tw = t ? count_words(v, t, tl, 1) : 0;
        uint32_t xw = x ? count_words(v, x, xl, 0) : 0;
        lens_push(l, tw, xw);
        json_decref(o);
    }
    free(line);
    int err = ferror(f);
    if (f != stdin)
        fclose(f);
    if (err) {
        fprintf(stderr, "gen-corpus: %s: read error\n", path);
        return -1;
    }
    *skipped += bad;
    return 0;
}

/* ---- alias tables (Vose) ---------------------------------------------------------- */

typedef struct alias {
    uint32_t *word;      /* vocabulary index of column i */
    uint32_t *alias;     /* the other word of column i */
    uint64_t *thresh;    /* take word[i] when a 64-bit draw is below this */
    size_t n;
} alias;

/* Builds the table over the words with count > 0 (counts from cnt[]). */
static int alias_build(alias *a, const uint64_t *cnt, const uint32_t *order, size_t nv)
{
    size_t n = 0;
    long double total = 0;
    for (size_t i = 0; i < nv; i++)
        if (cnt[order[i]]) {
            n++;
            total += (long double)cnt[order[i]];
        }
    a->n = n;
    if (!n)
        return -1;
    a->word = xrealloc(NULL, n * sizeof *a->word);
    a->alias = xrealloc(NULL, n * sizeof *a->alias);
    a->thresh = xrealloc(NULL, n * sizeof *a->thresh);
    long double *p = xrealloc(NULL, n * sizeof *p);
    uint32_t *small = xrealloc(NULL, n * sizeof *small), *large = xrealloc(NULL, n * sizeof *large);
    size_t j = 0, ns = 0, nl = 0;
    for (size_t i = 0; i < nv; i++)
        if (cnt[order[i]]) {
            a->word[j] = order[i];
            a->alias[j] = order[i];
            p[j] = (long double)cnt[order[i]] * (long double)n / total;
            j++;
        }
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 1)
            small[ns++] = (uint32_t)i;
        else
            large[nl++] = (uint32_t)i;
    }
    while (ns && nl) {
        uint32_t s = small[--ns], g = large[nl - 1];
        a->thresh[s] = p[s] >= 1 ? UINT64_MAX : (uint64_t)(p[s] * 18446744073709551616.0L);
        a->alias[s] = a->word[g];
        p[g] = (p[g] + p[s]) - 1;
        if (p[g] < 1) {
            nl--;
            small[ns++] = g;
        }
    }
    while (nl)
        a->thresh[large[--nl]] = UINT64_MAX;
    while (ns)                      /* rounding leftovers: probability ~1 */
        a->thresh[small[--ns]] = UINT64_MAX;
    free(p);
    free(small);
    free(large);
    return 0;
}

static inline uint32_t alias_draw(const alias *a, rng *r)
{
    size_t i = rng_below(r, a->n);
    return rng_next(r) < a->thresh[i] || a->thresh[i] == UINT64_MAX ? a->word[i] : a->alias[i];
}

/* ---- output ----------------------------------------------------------------------- */

typedef struct obuf { char *b; size_t n, cap; FILE *f; int err; } obuf;

static void ob_flush(obuf *o)
{
    if (o->n && fwrite(o->b, 1, o->n, o->f) != o->n)
        o->err = 1;
    o->n = 0;
}

static inline void ob_put(obuf *o, const char *s, size_t n)
{
    if (o->n + n > o->cap)
        ob_flush(o);
    memcpy(o->b + o->n, s, n);
    o->n += n;
}

static void ob_words(obuf *o, const vocab *v, const alias *a, uint32_t k, rng *r)
{
    for (uint32_t i = 0; i < k; i++) {
        const word *w = &v->w[alias_draw(a, r)];
        if (o->n + w->len + 1 > o->cap)
            ob_flush(o);
        if (i)
            o->b[o->n++] = ' ';
        memcpy(o->b + o->n, v->pool + w->off, w->len);
        o->n += w->len;
    }
}

/* ---- main ------------------------------------------------------------------------- */

static const vocab *sort_v;
static int by_count(const void *x, const void *y)
{
    const word *a = &sort_v->w[*(const uint32_t *)x], *b = &sort_v->w[*(const uint32_t *)y];
    uint64_t ca = a->text_n + a->title_n, cb = b->text_n + b->title_n;
    if (ca != cb)
        return ca > cb ? -1 : 1;
    size_t m = a->len < b->len ? a->len : b->len;
    int c = memcmp(sort_v->pool + a->off, sort_v->pool + b->off, m);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: gen-corpus [options] CORPUS.jsonl...\n\n"
        "Writes a deterministic synthetic JSON-lines corpus {\"_id\",\"title\",\"text\"}\n"
        "whose words follow the word frequencies of the CORPUS files (titles and\n"
        "texts counted separately; words are lowercase ASCII letters and digits)\n"
        "and whose (title, text) lengths are those of randomly chosen real documents.\n\n"
        "  --docs N        documents to write (default 2000000)\n"
        "  --seed S        random seed (default 42); same inputs + seed = same output\n"
        "  --out FILE      output file (default standard output)\n"
        "  --max-title W   cut titles to W words (default 12)\n"
        "  --id-prefix P   document ids are P followed by a number (default \"s\")\n"
        "  --quiet         no summary on standard error\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-')
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "docs", required_argument, 0, 'n' }, { "seed", required_argument, 0, 's' },
        { "out", required_argument, 0, 'o' }, { "max-title", required_argument, 0, 't' },
        { "id-prefix", required_argument, 0, 'p' }, { "quiet", no_argument, 0, 'q' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    uint64_t ndocs = 2000000, seed = 42, max_title = 12;
    const char *out = NULL, *prefix = "s";
    int quiet = 0, opt;
    while ((opt = getopt_long(argc, argv, "n:s:o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n': if (parse_u64(optarg, &ndocs) || ndocs > 4000000000ULL) goto bad; break;
        case 's': if (parse_u64(optarg, &seed)) goto bad; break;
        case 't': if (parse_u64(optarg, &max_title) || max_title > 1000) goto bad; break;
        case 'o': out = optarg; break;
        case 'p':
            prefix = optarg;
            if (strlen(prefix) > 32 || strpbrk(prefix, "\"\\")) goto bad;
            break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        continue;
    bad:
        for (int i = 0; longopts[i].name; i++)
            if (longopts[i].val == opt)
                fprintf(stderr, "gen-corpus: bad value '%s' for --%s\n", optarg, longopts[i].name);
        return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "gen-corpus: no input corpus given (gen-corpus --help)\n");
        return 2;
    }
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    struct timespec ts0, ts1;
    clock_gettime(CLOCK_MONOTONIC, &ts0);

    vocab v = { 0 };
    lens l = { 0 };
    uint64_t skipped = 0;
    for (int i = optind; i < argc; i++)
        if (read_corpus(argv[i], &v, &l, &skipped))
            return 1;
    if (!l.n || !v.n) {
        fprintf(stderr, "gen-corpus: the inputs hold no words\n");
        return 1;
    }

    /* Deterministic vocabulary order, then the two alias tables. */
    uint32_t *order = xrealloc(NULL, v.n * sizeof *order);
    for (size_t i = 0; i < v.n; i++)
        order[i] = (uint32_t)i;
    sort_v = &v;
    qsort(order, v.n, sizeof *order, by_count);
    uint64_t *cnt = xrealloc(NULL, v.n * sizeof *cnt);
    uint64_t text_tokens = 0, title_tokens = 0;
    for (size_t i = 0; i < v.n; i++) {
        cnt[i] = v.w[i].text_n;
        text_tokens += v.w[i].text_n;
        title_tokens += v.w[i].title_n;
    }
    alias text_a = { 0 }, title_a = { 0 };
    int have_text = alias_build(&text_a, cnt, order, v.n) == 0;
    for (size_t i = 0; i < v.n; i++)
        cnt[i] = v.w[i].title_n;
    int have_title = alias_build(&title_a, cnt, order, v.n) == 0;
    free(cnt);
    if (!have_text)
        text_a = title_a;
    if (!have_title)
        title_a = text_a;

    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        fprintf(stderr, "gen-corpus: %s: %s\n", out, strerror(errno));
        return 1;
    }
    obuf o = { xrealloc(NULL, 1 << 22), 0, 1 << 22, f, 0 };
    rng r;
    rng_seed(&r, seed);
    uint64_t words = 0;
    char head[96];
    for (uint64_t d = 0; d < ndocs && !o.err; d++) {
        size_t pick = rng_below(&r, l.n);
        uint32_t tw = l.title[pick], xw = l.text[pick];
        if (tw > max_title)
            tw = (uint32_t)max_title;
        int hn = snprintf(head, sizeof head, "{\"_id\":\"%s%07llu\",\"title\":\"", prefix,
                          (unsigned long long)d);
        ob_put(&o, head, (size_t)hn);
        ob_words(&o, &v, &title_a, tw, &r);
        ob_put(&o, "\",\"text\":\"", 10);
        ob_words(&o, &v, &text_a, xw, &r);
        ob_put(&o, "\"}\n", 3);
        words += tw + xw;
    }
    ob_flush(&o);
    if (fflush(f) || ferror(f))
        o.err = 1;
    if (f != stdout && fclose(f))
        o.err = 1;
    if (o.err) {
        fprintf(stderr, "gen-corpus: %s: write error: %s\n", out ? out : "stdout", strerror(errno));
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts1);
    if (!quiet)
        fprintf(stderr,
                "gen-corpus: %zu input documents (%llu lines skipped), vocabulary %zu words "
                "(%llu text, %llu title tokens); wrote %llu documents, %llu words, in %.1f s "
                "(%.1f s CPU)\n",
                l.n, (unsigned long long)skipped, v.n, (unsigned long long)text_tokens,
                (unsigned long long)title_tokens, (unsigned long long)ndocs,
                (unsigned long long)words,
                (double)(ts1.tv_sec - ts0.tv_sec) + (double)(ts1.tv_nsec - ts0.tv_nsec) * 1e-9,
                (double)clock() / CLOCKS_PER_SEC - t0);
    free(o.b);
    return 0;
}
