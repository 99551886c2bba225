/* test_query.c: the query module against oracles.
 *
 * Two oracles, per STYLE practice 11(b):
 *   1. QRY_ALGO_EXHAUSTIVE is the reference for every pruned algorithm
 *      (MaxScore, WAND, Block-Max WAND, AUTO): same hits, same order, same
 *      scores, on every query.
 *   2. The exhaustive result is itself checked against a brute-force scorer
 *      written here from the documents the test generated: its own term
 *      counts, document lengths, live N and avgdl, and the BM25 formula of
 *      query.h. It keeps two sums per document: one in double (independent
 *      arithmetic: scores must agree to 1e-4 relative) and one that follows
 *      query.h's stated rounding (each term's part in float, summed in
 *      double), whose ranking must agree id for id, so near-ties cannot make
 *      the test flaky and real tie-breaking (score desc, internal id asc) is
 *      checked exactly.
 *
 * Everything runs on real LMDB indexes built through the public writer in
 * temporary directories: random Zipfian corpora (one or many segments,
 * deletions, replacements, duplicates for exact ties, the default English
 * analyzer and a plain one), then the real collections under LEXIS_DATA.
 *
 * Knobs (environment): LEXIS_TEST_SEED (decimal or 0x hex) changes the PRNG
 * seed, printed with every failure; LEXIS_TEST_QUICK=1 scales the work down
 * to about a quarter; LEXIS_DATA points at the data. The full run takes
 * about 30 s of CPU in the release build and about 60 s under ASan, so the
 * sanitizer builds run it whole.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../query/query.h"

#define TQ_DEFAULT_SEED 0x5eed1e515ULL

static const int tq_algos[] = { QRY_ALGO_MAXSCORE, QRY_ALGO_WAND, QRY_ALGO_BMW, QRY_ALGO_AUTO };
#define TQ_NALGOS (sizeof tq_algos / sizeof tq_algos[0])

/* ---- small helpers --------------------------------------------------------------- */

static double tq_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int tq_quick(void)
{
    const char *q = getenv("LEXIS_TEST_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

static uint64_t tq_seed(void)
{
    const char *s = getenv("LEXIS_TEST_SEED");
    return s && *s ? strtoull(s, NULL, 0) : TQ_DEFAULT_SEED;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    assert_non_null(p);
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    assert_non_null(p);
    return p;
}

static int rel_close(double a, double b, double tol)
{
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) <= tol * (m > 1e-30 ? m : 1e-30);
}

/* splitmix64: small, seedable, good enough for test data. */
typedef struct tq_rng {
    uint64_t s;
} tq_rng;

static uint64_t rng_next(tq_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_unif(tq_rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }
static uint32_t rng_below(tq_rng *r, uint32_t n) { return (uint32_t)(rng_unif(r) * n) % n; }
static uint32_t rng_range(tq_rng *r, uint32_t lo, uint32_t hi) { return lo + rng_below(r, hi - lo + 1); }

/* A growable string. */
typedef struct tq_buf {
    char *s;
    size_t n, cap;
} tq_buf;

static void buf_put(tq_buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void buf_puts(tq_buf *b, const char *s) { buf_put(b, s, strlen(s)); }

/* ---- fixture: one temporary directory per test -------------------------------------- */

typedef struct tq_fixture {
    char dir[64];
} tq_fixture;

static int fixture_setup(void **state)
{
    tq_fixture *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/lexis-test-query-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    tq_fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static idx_env *create_index(const char *dir, const char *sub, const enc_analyzer_params *ap)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    idx_create_params cp = idx_create_default_params();
    if (ap)
        cp.analyzer = *ap;
    idx_env *env;
    char err[256] = "";
    int rc = idx_env_open(path, IDX_CREATE, &cp, &env, err, sizeof err);
    if (rc)
        fail_msg("create %s: %s (%s)", path, lx_strerror(rc), err);
    return env;
}

/* ---- comparing result lists ------------------------------------------------------------ */

typedef struct tq_hits {
    uint32_t n, cap;
    qry_hit *h;
    uint32_t nterms;
} tq_hits;

typedef struct tq_counters {
    uint64_t queries;        /* distinct query texts run */
    uint64_t searches;       /* qry_search calls */
    uint64_t compared;       /* (pruned algo, exhaustive) result lists compared */
    uint64_t brute;          /* exhaustive result lists checked by brute force */
    uint64_t hits;           /* hits compared */
    uint64_t scored[QRY_ALGO_COUNT];   /* documents fully scored, per algorithm */
    uint64_t promoted;       /* MaxScore's term-windows promoted (maxscore.c) */
} tq_counters;

/* What to search: query text (qry_search, or qry_search_rm3 when rm3 is
 * set) or weighted terms (qry_search_terms). */
typedef struct tq_query {
    const char *text;
    const qry_term *terms;
    uint32_t nterms;
    const qry_rm3_params *rm3;
    const char *label;       /* the text, or a rendering of the terms */
} tq_query;

#define TQ_TEXT(t) (&(tq_query){ .text = (t), .label = (t) })

static void search_into(qry_engine *q, idx_reader *r, const tq_query *qq, const qry_params *p,
                        tq_hits *out, tq_counters *cnt)
{
    qry_result res;
    int rc;
    if (qq->terms)
        rc = qry_search_terms(q, r, qq->terms, qq->nterms, p, &res);
    else if (qq->rm3)
        rc = qry_search_rm3(q, r, qq->text, strlen(qq->text), p, qq->rm3, &res);
    else
        rc = qry_search(q, r, qq->text, strlen(qq->text), p, &res);
    if (rc)
        fail_msg("search%s(\"%.200s\", k=%u, algo=%s, conj=%d): %s",
                 qq->terms ? "_terms" : qq->rm3 ? "_rm3" : "", qq->label, p->k,
                 qry_algo_name(p->algo), p->conjunctive, lx_strerror(rc));
    if (res.n > p->k)
        fail_msg("search returned %u hits for k=%u", res.n, p->k);
    if (out->cap < res.n) {
        out->cap = res.n;
        out->h = xrealloc(out->h, res.n * sizeof *out->h);
    }
    if (res.n)
        memcpy(out->h, res.hits, res.n * sizeof *out->h);
    out->n = res.n;
    out->nterms = res.nterms;
    cnt->searches++;
    if (p->algo >= 0 && p->algo < QRY_ALGO_COUNT)
        cnt->scored[p->algo] += res.scored;
    cnt->promoted += res.promoted;
}

/* Exhaustive vs a pruned algorithm: identical ids in identical order,
 * scores equal within 1e-6 relative. */
static void compare_lists(const tq_hits *ref, const tq_hits *got, const char *what,
                          const char *text, const qry_params *p, uint64_t seed)
{
    if (ref->n != got->n)
        fail_msg("[seed 0x%llx] %s: query \"%.300s\" k=%u k1=%g b=%g conj=%d: %s gave %u hits, "
                 "exhaustive %u", (unsigned long long)seed, what, text, p->k, p->k1, p->b,
                 p->conjunctive, qry_algo_name(p->algo), got->n, ref->n);
    if (ref->nterms != got->nterms)
        fail_msg("[seed 0x%llx] %s: query \"%.300s\": nterms %u vs %u", (unsigned long long)seed,
                 what, text, got->nterms, ref->nterms);
    for (uint32_t i = 0; i < ref->n; i++) {
        if (ref->h[i].docid != got->h[i].docid
            || !rel_close(ref->h[i].score, got->h[i].score, 1e-6))
            fail_msg("[seed 0x%llx] %s: query \"%.300s\" k=%u k1=%g b=%g conj=%d: %s rank %u: "
                     "doc %u score %.9g, exhaustive doc %u score %.9g",
                     (unsigned long long)seed, what, text, p->k, p->k1, p->b, p->conjunctive,
                     qry_algo_name(p->algo), i, got->h[i].docid, got->h[i].score,
                     ref->h[i].docid, ref->h[i].score);
    }
}

/* How much the pruned algorithms skipped: documents scored relative to
 * exhaustive (a suite where nothing is pruned would prove little). */
static void print_pruning(const char *what, const tq_counters *cnt)
{
    double ex = (double)cnt->scored[QRY_ALGO_EXHAUSTIVE];
    if (ex <= 0)
        return;
    print_message("%-18s docs scored vs exhaustive: maxscore %.1f%%, wand %.1f%%, bmw %.1f%%, "
                  "auto %.1f%%; term-windows promoted %llu\n", what,
                  100.0 * cnt->scored[QRY_ALGO_MAXSCORE] / ex, 100.0 * cnt->scored[QRY_ALGO_WAND] / ex,
                  100.0 * cnt->scored[QRY_ALGO_BMW] / ex, 100.0 * cnt->scored[QRY_ALGO_AUTO] / ex,
                  (unsigned long long)cnt->promoted);
}

/* Runs exhaustive, then every other algorithm, comparing each to it. The
 * exhaustive result stays in *ex. */
static void run_all_algos(qry_engine *q, idx_reader *r, const tq_query *qq, qry_params p,
                          tq_hits *ex, tq_hits *tmp, tq_counters *cnt, const char *what,
                          uint64_t seed)
{
    p.algo = QRY_ALGO_EXHAUSTIVE;
    search_into(q, r, qq, &p, ex, cnt);
    for (size_t a = 0; a < TQ_NALGOS; a++) {
        p.algo = tq_algos[a];
        search_into(q, r, qq, &p, tmp, cnt);
        compare_lists(ex, tmp, what, qq->label, &p, seed);
        cnt->compared++;
        cnt->hits += tmp->n;
    }
}

/* ---- random corpora -------------------------------------------------------------------- */

static const char *const tq_stopwords[] = { "the", "of", "and", "a", "to", "in", "is", "it",
                                            "that", "for" };
#define TQ_NSTOP (sizeof tq_stopwords / sizeof tq_stopwords[0])

typedef struct corpus_cfg {
    const char *name;
    uint32_t ndocs;           /* documents added (replacements included) */
    uint32_t vocab;           /* base words */
    double zipf_s;
    int default_analyzer;     /* 1: English stemmer + stop words, mixed case */
    uint32_t batch_docs;      /* 0: one segment */
    double p_replace;         /* re-add an existing external id */
    double p_delete;          /* after an add, delete a random id */
    double p_duplicate;       /* copy an earlier document's words (exact ties) */
    double p_stop;            /* a token is a stop-list word */
    uint32_t len_scale;       /* percent scaling of document lengths */
    double drift;             /* lengths scale from 1x (first doc) to drift x
                                 (last): avgdl moves between segments */
    uint32_t nqueries;
    double k1_override[3], b_override[3];   /* query-time k1/b sets */
    int merge;                /* merge all segments after the build */
    int kth_ks;               /* k around the ranks of the stored k-th
                                 best scores (9..11, 99..101, 999..1001) */
} corpus_cfg;

typedef struct corpus {
    const corpus_cfg *cfg;
    uint64_t seed;
    tq_rng rng;
    /* word list: base words [0, vocab), variants, stop words, unknown words */
    char **words;
    uint32_t nwords, nbase, stop0, unk0, nunk, var0, nvar;
    int32_t *canon;           /* word -> analyzed term id, -1 if none (stop word) */
    uint32_t ncanon;
    char **canon_text;        /* term id -> analyzed term */
    double *zipf_cdf;         /* over base words */
    /* documents by internal id */
    uint32_t ndocs_total;
    uint32_t **doc_words;     /* word indexes, owned */
    uint32_t *doc_nwords;
    uint32_t *doc_ext;        /* external id number */
    uint8_t *live;
    uint8_t *batch_dropped;   /* died before its batch was committed */
    uint32_t batch_dropped_unmarked;  /* of those, not in the deleted set */
    uint32_t *ext_to_int;     /* UINT32_MAX: deleted */
    uint32_t next_ext;
    /* brute-force index over live documents */
    uint32_t *dl;
    uint64_t nlive, total_len;
    uint32_t *df;             /* per canon term */
    uint32_t **post_doc, **post_tf;   /* per canon term: live postings */
    /* per-query scratch */
    double *acc_d, *acc_r;
    uint32_t *touched;
    uint8_t *seen;
    uint32_t *mcount;         /* terms matched per doc */
} corpus;

static char *make_word(uint32_t i, const char *prefix)
{
    static const char cons[] = "bcdfghjklmnprstvwz";   /* 18 */
    static const char vow[] = "aeiou";                  /* 5 */
    char tmp[32];
    size_t n = 0;
    for (const char *p = prefix; *p; p++)
        tmp[n++] = *p;
    uint32_t syl = 3 + i % 3, v = i;
    for (uint32_t s = 0; s < syl; s++) {
        uint32_t d = v % 90;
        v /= 90;
        tmp[n++] = cons[d / 5];
        tmp[n++] = vow[d % 5];
    }
    tmp[n] = 0;
    return strdup(tmp);
}

typedef struct one_term {
    int n;
    char t[ENC_MAX_TERM_BYTES + 1];
} one_term;

static int collect_one(void *ctx, const char *term, size_t len, uint32_t pos)
{
    one_term *o = ctx;
    (void)pos;
    if (o->n++ == 0) {
        memcpy(o->t, term, len);
        o->t[len] = 0;
    }
    return 0;
}

static const char *const *sort_terms_base;
static int cmp_word_by_term(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    const char *s = sort_terms_base[x], *t = sort_terms_base[y];
    if (!s || !t)
        return (s != NULL) - (t != NULL);
    return strcmp(s, t);
}

/* The word list and its analyzed form, through an analyzer configured
 * exactly as the index records it. */
static void corpus_words(corpus *c, idx_env *env)
{
    const corpus_cfg *cfg = c->cfg;
    c->nbase = cfg->vocab;
    c->var0 = c->nbase;
    c->nvar = cfg->default_analyzer ? c->nbase * 3 : 0;
    c->stop0 = c->var0 + c->nvar;
    c->unk0 = c->stop0 + (uint32_t)TQ_NSTOP;
    c->nunk = 200;
    c->nwords = c->unk0 + c->nunk;
    c->words = xcalloc(c->nwords, sizeof *c->words);
    for (uint32_t i = 0; i < c->nbase; i++)
        c->words[i] = make_word(i, "");
    static const char *const suf[3] = { "s", "ing", "ed" };
    for (uint32_t i = 0; i < c->nvar; i++) {
        const char *b = c->words[i / 3];
        size_t n = strlen(b);
        char *w = xmalloc(n + 4);
        memcpy(w, b, n);
        strcpy(w + n, suf[i % 3]);
        c->words[c->var0 + i] = w;
    }
    for (uint32_t i = 0; i < TQ_NSTOP; i++)
        c->words[c->stop0 + i] = strdup(tq_stopwords[i]);
    for (uint32_t i = 0; i < c->nunk; i++)
        c->words[c->unk0 + i] = make_word(i * 7919u + 13u, "q");

    enc_analyzer_params ap;
    char storage[256];
    enc_analyzer *an;
    assert_int_equal(enc_analyzer_params_parse(idx_env_analyzer_desc(env), &ap, storage,
                                               sizeof storage), 0);
    assert_int_equal(enc_analyzer_open(&ap, &an), 0);
    char **terms = xcalloc(c->nwords, sizeof *terms);
    for (uint32_t i = 0; i < c->nwords; i++) {
        one_term o = { 0, "" };
        assert_int_equal(enc_analyzer_run(an, c->words[i], strlen(c->words[i]), collect_one, &o), 0);
        if (o.n > 1)
            fail_msg("word '%s' analyzed into %d terms", c->words[i], o.n);
        terms[i] = o.n ? strdup(o.t) : NULL;
    }
    enc_analyzer_close(an);
    uint32_t *ord = xmalloc(c->nwords * sizeof *ord);
    for (uint32_t i = 0; i < c->nwords; i++)
        ord[i] = i;
    sort_terms_base = (const char *const *)terms;
    qsort(ord, c->nwords, sizeof *ord, cmp_word_by_term);
    c->canon = xmalloc(c->nwords * sizeof *c->canon);
    c->ncanon = 0;
    for (uint32_t i = 0; i < c->nwords; i++) {
        uint32_t w = ord[i];
        if (!terms[w]) {
            c->canon[w] = -1;
            continue;
        }
        if (i > 0 && terms[ord[i - 1]] && strcmp(terms[ord[i - 1]], terms[w]) == 0)
            c->canon[w] = c->canon[ord[i - 1]];
        else
            c->canon[w] = (int32_t)c->ncanon++;
    }
    c->canon_text = xcalloc(c->ncanon, sizeof *c->canon_text);
    for (uint32_t i = 0; i < c->nwords; i++) {
        if (c->canon[i] >= 0 && !c->canon_text[c->canon[i]]) {
            c->canon_text[c->canon[i]] = terms[i];
            terms[i] = NULL;
        }
        free(terms[i]);
    }
    free(terms);
    free(ord);
    /* Unknown words must stay unknown: no base word may share their term. */
    for (uint32_t i = 0; i < c->nunk; i++)
        for (uint32_t j = 0; j < c->stop0; j++)
            if (c->canon[c->unk0 + i] >= 0 && c->canon[c->unk0 + i] == c->canon[j])
                fail_msg("unknown word %s collides with %s", c->words[c->unk0 + i], c->words[j]);

    c->zipf_cdf = xmalloc(c->nbase * sizeof *c->zipf_cdf);
    double acc = 0;
    for (uint32_t i = 0; i < c->nbase; i++) {
        acc += 1.0 / pow((double)i + 1.0, cfg->zipf_s);
        c->zipf_cdf[i] = acc;
    }
    for (uint32_t i = 0; i < c->nbase; i++)
        c->zipf_cdf[i] /= acc;
}

static uint32_t zipf_word(corpus *c)
{
    double u = rng_unif(&c->rng);
    uint32_t lo = 0, hi = c->nbase - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (c->zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* A base word, or (default analyzer) sometimes an inflected variant. */
static uint32_t pick_content_word(corpus *c, uint32_t base)
{
    if (c->nvar && rng_unif(&c->rng) < 0.15)
        return c->var0 + base * 3 + rng_below(&c->rng, 3);
    return base;
}

static uint32_t doc_length(corpus *c)
{
    double u = rng_unif(&c->rng);
    uint32_t n;
    if (u < 0.01)
        n = 0;
    else if (u < 0.21)
        n = rng_range(&c->rng, 1, 5);
    else if (u < 0.76)
        n = rng_range(&c->rng, 6, 120);
    else if (u < 0.96)
        n = rng_range(&c->rng, 121, 600);
    else
        n = rng_range(&c->rng, 601, 2500);
    double scale = c->cfg->len_scale / 100.0;
    if (c->cfg->drift > 0)
        scale *= 1.0 + (c->cfg->drift - 1.0) * c->ndocs_total / (double)c->cfg->ndocs;
    return (uint32_t)(n * scale);
}

static void gen_doc(corpus *c, uint32_t **words_out, uint32_t *n_out)
{
    uint32_t n = doc_length(c);
    uint32_t *w = xmalloc(n * sizeof *w);
    for (uint32_t i = 0; i < n; i++) {
        double u = rng_unif(&c->rng);
        if (i > 0 && u < 0.12)
            w[i] = w[rng_below(&c->rng, i)];                   /* burst: tf > 1 */
        else if (u < 0.12 + c->cfg->p_stop)
            w[i] = c->stop0 + rng_below(&c->rng, (uint32_t)TQ_NSTOP);
        else
            w[i] = pick_content_word(c, zipf_word(c));
    }
    *words_out = w;
    *n_out = n;
}

/* Writes word i to b, in mixed case and with punctuation for the default
 * analyzer (which folds case and splits on punctuation). */
static void put_word(corpus *c, tq_buf *b, uint32_t wi, tq_rng *rng)
{
    const char *w = c->words[wi];
    if (!c->cfg->default_analyzer) {
        buf_puts(b, w);
        return;
    }
    double u = rng_unif(rng);
    char tmp[64];
    size_t n = strlen(w);
    memcpy(tmp, w, n + 1);
    if (u < 0.1)
        tmp[0] = (char)(tmp[0] - 'a' + 'A');
    else if (u < 0.13)
        for (size_t i = 0; i < n; i++)
            tmp[i] = (char)(tmp[i] - 'a' + 'A');
    buf_put(b, tmp, n);
    u = rng_unif(rng);
    if (u < 0.05)
        buf_puts(b, ",");
    else if (u < 0.08)
        buf_puts(b, ".");
}

static void words_to_text(corpus *c, tq_buf *b, const uint32_t *w, uint32_t n, tq_rng *rng)
{
    b->n = 0;
    buf_put(b, "", 0);
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            buf_puts(b, c->cfg->default_analyzer && rng_unif(rng) < 0.05 ? "\n  " : " ");
        put_word(c, b, w[i], rng);
    }
}

static void ext_id(uint32_t e, char *buf, size_t cap) { snprintf(buf, cap, "doc-%u", e); }

static void corpus_track_doc(corpus *c, uint32_t *w, uint32_t n, uint32_t ext)
{
    uint32_t id = c->ndocs_total++;
    c->doc_words = xrealloc(c->doc_words, c->ndocs_total * sizeof *c->doc_words);
    c->doc_nwords = xrealloc(c->doc_nwords, c->ndocs_total * sizeof *c->doc_nwords);
    c->doc_ext = xrealloc(c->doc_ext, c->ndocs_total * sizeof *c->doc_ext);
    c->live = xrealloc(c->live, c->ndocs_total);
    c->doc_words[id] = w;
    c->doc_nwords[id] = n;
    c->doc_ext[id] = ext;
    c->batch_dropped = xrealloc(c->batch_dropped, c->ndocs_total);
    c->live[id] = 1;
    c->batch_dropped[id] = 0;
    if (c->ext_to_int[ext] != UINT32_MAX) {
        uint32_t old = c->ext_to_int[ext], bd = c->cfg->batch_docs;
        c->live[old] = 0;                     /* replaced: the old copy dies */
        c->batch_dropped[old] = bd == 0 || old / bd == id / bd;
    }
    c->ext_to_int[ext] = id;
}

static void corpus_build(corpus *c, idx_env *env)
{
    const corpus_cfg *cfg = c->cfg;
    idx_writer_params wp = idx_writer_default_params();
    wp.batch_docs = cfg->batch_docs;
    idx_writer *w;
    assert_int_equal(idx_writer_open(env, &wp, &w), 0);
    c->ext_to_int = xmalloc(cfg->ndocs * sizeof *c->ext_to_int);
    for (uint32_t i = 0; i < cfg->ndocs; i++)
        c->ext_to_int[i] = UINT32_MAX;
    tq_buf title = { 0 }, text = { 0 };
    tq_rng trng = { c->seed ^ 0x7e47ULL };
    const char *names[2] = { "title", "text" };
    char idbuf[32];
    for (uint32_t i = 0; i < cfg->ndocs; i++) {
        uint32_t *words, n;
        if (c->ndocs_total > 0 && rng_unif(&c->rng) < cfg->p_duplicate) {
            uint32_t src = rng_below(&c->rng, c->ndocs_total);
            n = c->doc_nwords[src];
            words = xmalloc(n * sizeof *words);
            if (n)
                memcpy(words, c->doc_words[src], n * sizeof *words);
        } else {
            gen_doc(c, &words, &n);
        }
        uint32_t ext;
        if (c->next_ext > 0 && rng_unif(&c->rng) < cfg->p_replace)
            ext = rng_below(&c->rng, c->next_ext);
        else
            ext = c->next_ext++;
        uint32_t nt = n < 4 ? n : rng_below(&c->rng, 5);
        words_to_text(c, &title, words, nt, &trng);
        words_to_text(c, &text, words + nt, n - nt, &trng);
        const char *vals[2] = { title.s, text.s };
        size_t lens[2] = { title.n, text.n };
        ext_id(ext, idbuf, sizeof idbuf);
        int rc = idx_writer_add(w, idbuf, strlen(idbuf), names, vals, lens, 2);
        if (rc)
            fail_msg("[seed 0x%llx] %s: add %s: %s", (unsigned long long)c->seed, cfg->name, idbuf,
                     lx_strerror(rc));
        corpus_track_doc(c, words, n, ext);

        if (c->next_ext > 0 && rng_unif(&c->rng) < cfg->p_delete) {
            uint32_t e = rng_below(&c->rng, c->next_ext);
            ext_id(e, idbuf, sizeof idbuf);
            rc = idx_writer_delete(w, idbuf, strlen(idbuf));
            if (c->ext_to_int[e] != UINT32_MAX) {
                if (rc)
                    fail_msg("[seed 0x%llx] %s: delete live %s: %s", (unsigned long long)c->seed,
                             cfg->name, idbuf, lx_strerror(rc));
                uint32_t old = c->ext_to_int[e], bd = cfg->batch_docs;
                c->live[old] = 0;
                c->batch_dropped[old] = bd == 0 || old / bd == c->ndocs_total / bd;
                c->ext_to_int[e] = UINT32_MAX;
            } else if (rc != LX_E_NOTFOUND) {
                fail_msg("[seed 0x%llx] %s: delete dead %s gave %s, want NOTFOUND",
                         (unsigned long long)c->seed, cfg->name, idbuf, lx_strerror(rc));
            }
        }
    }
    assert_int_equal(idx_writer_close(w), 0);
    if (cfg->merge) {
        uint32_t before;
        assert_int_equal(idx_writer_open(env, &wp, &w), 0);
        assert_int_equal(idx_writer_merge(w, &before), 0);
        assert_int_equal(idx_writer_close(w), 0);
    }
    free(title.s);
    free(text.s);
}

/* The brute-force index: live documents only, from the words we generated. */
static void corpus_invert(corpus *c)
{
    c->dl = xcalloc(c->ndocs_total, sizeof *c->dl);
    c->df = xcalloc(c->ncanon, sizeof *c->df);
    uint32_t *cap = xcalloc(c->ncanon, sizeof *cap);
    c->post_doc = xcalloc(c->ncanon, sizeof *c->post_doc);
    c->post_tf = xcalloc(c->ncanon, sizeof *c->post_tf);
    uint32_t *cnt = xcalloc(c->ncanon, sizeof *cnt);
    uint32_t *list = xmalloc(4096 * sizeof *list);
    size_t list_cap = 4096;
    c->nlive = c->total_len = 0;
    for (uint32_t d = 0; d < c->ndocs_total; d++) {
        if (!c->live[d])
            continue;
        c->nlive++;
        uint32_t nl = 0;
        if (c->doc_nwords[d] > list_cap) {
            list_cap = c->doc_nwords[d];
            list = xrealloc(list, list_cap * sizeof *list);
        }
        for (uint32_t i = 0; i < c->doc_nwords[d]; i++) {
            int32_t t = c->canon[c->doc_words[d][i]];
            if (t < 0)
                continue;
            c->dl[d]++;
            if (cnt[t]++ == 0)
                list[nl++] = (uint32_t)t;
        }
        c->total_len += c->dl[d];
        for (uint32_t i = 0; i < nl; i++) {
            uint32_t t = list[i];
            if (c->df[t] == cap[t]) {
                cap[t] = cap[t] ? cap[t] * 2 : 4;
                c->post_doc[t] = xrealloc(c->post_doc[t], cap[t] * sizeof **c->post_doc);
                c->post_tf[t] = xrealloc(c->post_tf[t], cap[t] * sizeof **c->post_tf);
            }
            c->post_doc[t][c->df[t]] = d;
            c->post_tf[t][c->df[t]] = cnt[t];
            c->df[t]++;
            cnt[t] = 0;
        }
    }
    free(list);
    free(cnt);
    free(cap);
    c->acc_d = xcalloc(c->ndocs_total, sizeof *c->acc_d);
    c->acc_r = xcalloc(c->ndocs_total, sizeof *c->acc_r);
    c->touched = xmalloc(c->ndocs_total * sizeof *c->touched);
    c->seen = xcalloc(c->ndocs_total, 1);
    c->mcount = xcalloc(c->ndocs_total, sizeof *c->mcount);
}

static void corpus_free(corpus *c)
{
    for (uint32_t i = 0; i < c->nwords; i++)
        free(c->words[i]);
    free(c->words);
    for (uint32_t t = 0; t < c->ncanon; t++)
        free(c->canon_text[t]);
    free(c->canon_text);
    free(c->canon);
    free(c->zipf_cdf);
    for (uint32_t d = 0; d < c->ndocs_total; d++)
        free(c->doc_words[d]);
    free(c->doc_words);
    free(c->doc_nwords);
    free(c->doc_ext);
    free(c->live);
    free(c->batch_dropped);
    free(c->ext_to_int);
    free(c->dl);
    for (uint32_t t = 0; t < c->ncanon; t++) {
        if (c->post_doc) free(c->post_doc[t]);
        if (c->post_tf) free(c->post_tf[t]);
    }
    free(c->post_doc);
    free(c->post_tf);
    free(c->df);
    free(c->acc_d);
    free(c->acc_r);
    free(c->touched);
    free(c->seen);
    free(c->mcount);
}

/* The index must agree with what we generated: statistics, ids, deletions. */
static void corpus_check_index(corpus *c, idx_reader *r)
{
    const idx_stats *st = idx_reader_stats(r);
    assert_int_equal(st->ndocs, c->nlive);
    assert_int_equal(st->total_len, c->total_len);
    assert_int_equal(st->next_docid, c->ndocs_total);
    if (c->cfg->merge) {
        /* One segment; deleted postings dropped, the deleted set emptied. */
        assert_int_equal(st->nsegments, 1);
        assert_int_equal(st->ndeleted, 0);
    } else if (c->cfg->batch_docs && c->cfg->ndocs > c->cfg->batch_docs)
        assert_true(st->nsegments > 1);
    char idbuf[32];
    for (uint32_t e = 0; e < c->next_ext; e++) {
        uint32_t id;
        ext_id(e, idbuf, sizeof idbuf);
        int rc = idx_reader_lookup(r, idbuf, strlen(idbuf), &id);
        if (c->ext_to_int[e] == UINT32_MAX) {
            assert_int_equal(rc, LX_E_NOTFOUND);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(id, c->ext_to_int[e]);
        }
    }
    /* KNOWN INDEX ISSUE (reported, not a query bug): an id whose document
     * was dropped before its batch committed (replaced or deleted within the
     * same batch) never enters the deleted bitmap, so idx_reader_is_deleted
     * answers 0 for it although index.h promises 1 for ids "never a live
     * document". Such ids have no postings and no stored document, so
     * queries cannot return them; we check that instead and count them. */
    uint32_t batch_dropped_live = 0;
    for (uint32_t d = 0; d < c->ndocs_total; d++) {
        int del = idx_reader_is_deleted(r, d);
        if (del != !c->live[d] && !c->cfg->merge) {
            if (!c->live[d] && c->batch_dropped[d]) {
                idx_doc doc;
                assert_int_equal(idx_reader_doc(r, d, &doc), LX_E_NOTFOUND);
                assert_int_equal(idx_reader_doclen(r, d), 0);
                batch_dropped_live++;
                continue;
            }
            fail_msg("[seed 0x%llx] %s: internal id %u (%s%s): is_deleted %d",
                     (unsigned long long)c->seed, c->cfg->name, d, c->live[d] ? "live" : "dead",
                     c->batch_dropped[d] ? ", dropped before its batch committed" : "", del);
        }
        if (c->live[d])
            assert_int_equal(idx_reader_doclen(r, d), c->dl[d]);
    }
    c->batch_dropped_unmarked = batch_dropped_live;
}

/* ---- brute force ------------------------------------------------------------------------- */

typedef struct bf_qterm {
    int32_t canon;
    float weight;    /* qtf for text queries */
} bf_qterm;

typedef struct bf_hit {
    uint32_t doc;
    double rep;      /* float parts (as query.h states), summed in double */
    double dbl;      /* all in double */
} bf_hit;

typedef struct bf_result {
    bf_hit *h;       /* every matching doc, ranked by rep desc, doc asc */
    double *dsorted; /* the double scores, sorted desc */
    uint32_t n, cap;
    uint32_t nfound; /* distinct query terms with df > 0 */
} bf_result;

static int cmp_bf_rep(const void *a, const void *b)
{
    const bf_hit *x = a, *y = b;
    if (x->rep != y->rep)
        return x->rep < y->rep ? 1 : -1;
    return (x->doc > y->doc) - (x->doc < y->doc);
}

static int cmp_double_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Query words -> distinct terms with qtf, in order of first appearance,
 * at most 256 distinct terms (the engine ignores further distinct ones;
 * repeats of kept terms still count). */
static uint32_t bf_query_terms(const corpus *c, const uint32_t *qw, uint32_t nq, bf_qterm *out)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < nq; i++) {
        int32_t t = c->canon[qw[i]];
        if (t < 0)
            continue;
        uint32_t j;
        for (j = 0; j < n; j++)
            if (out[j].canon == t)
                break;
        if (j < n)
            out[j].weight += 1.0f;
        else if (n < 256)
            out[n++] = (bf_qterm){ t, 1.0f };
    }
    return n;
}

static void brute_force(corpus *c, const bf_qterm *qt, uint32_t nqt, float k1, float b,
                        int conjunctive, bf_result *res)
{
    double N = (double)c->nlive;
    double avgdl_d = c->nlive && c->total_len ? (double)c->total_len / N : 1.0;
    float avgdl_f = (float)avgdl_d;
    uint32_t nt = 0;
    res->n = 0;
    res->nfound = 0;
    for (uint32_t i = 0; i < nqt; i++)
        if (c->df[qt[i].canon] > 0)
            res->nfound++;
    if (conjunctive && (res->nfound < nqt || nqt == 0))
        return;
    for (uint32_t i = 0; i < nqt; i++) {
        uint32_t t = (uint32_t)qt[i].canon;
        double df = c->df[t];
        if (c->df[t] == 0)
            continue;
        double idf_d = log(1.0 + (N - df + 0.5) / (df + 0.5));
        float w_f = qt[i].weight * (float)idf_d * (k1 + 1.0f);
        double w_d = (double)qt[i].weight * idf_d * ((double)k1 + 1.0);
        for (uint32_t j = 0; j < c->df[t]; j++) {
            uint32_t d = c->post_doc[t][j], tf = c->post_tf[t][j];
            float tff = (float)tf;
            float part = w_f * (tff / (tff + k1 * (1.0f - b + b * ((float)c->dl[d] / avgdl_f))));
            double norm_d = (double)tf / (tf + (double)k1 * (1.0 - (double)b
                                                             + (double)b * c->dl[d] / avgdl_d));
            if (!c->seen[d]) {
                c->seen[d] = 1;
                c->touched[nt++] = d;
                c->acc_r[d] = 0;
                c->acc_d[d] = 0;
            }
            c->acc_r[d] += part;
            c->acc_d[d] += w_d * norm_d;
            c->mcount[d]++;
        }
    }
    if (conjunctive) {
        /* Each term's postings hold a doc once: a doc matched every term
         * when its count equals the number of distinct terms. */
        uint32_t keep = 0;
        for (uint32_t i = 0; i < nt; i++) {
            uint32_t d = c->touched[i];
            if (c->mcount[d] == nqt)
                c->touched[keep++] = d;
            else
                c->seen[d] = c->mcount[d] = 0;
        }
        nt = keep;
    }
    if (res->cap < nt) {
        res->cap = nt;
        res->h = xrealloc(res->h, nt * sizeof *res->h);
        res->dsorted = xrealloc(res->dsorted, nt * sizeof *res->dsorted);
    }
    for (uint32_t i = 0; i < nt; i++) {
        uint32_t d = c->touched[i];
        c->seen[d] = 0;
        c->mcount[d] = 0;
        res->h[i] = (bf_hit){ d, c->acc_r[d], c->acc_d[d] };
        res->dsorted[i] = c->acc_d[d];
    }
    res->n = nt;
    if (nt) {
        qsort(res->h, nt, sizeof *res->h, cmp_bf_rep);
        qsort(res->dsorted, nt, sizeof *res->dsorted, cmp_double_desc);
    }
}

static void compare_brute(const bf_result *bf, const tq_hits *ex, const char *what,
                          const char *text, const qry_params *p, uint64_t seed)
{
    uint32_t want = bf->n < p->k ? bf->n : p->k;
    if (ex->n != want)
        fail_msg("[seed 0x%llx] %s: query \"%.300s\" k=%u k1=%g b=%g conj=%d: exhaustive gave %u "
                 "hits, brute force %u", (unsigned long long)seed, what, text, p->k, p->k1, p->b,
                 p->conjunctive, ex->n, want);
    if (ex->nterms != bf->nfound && !p->conjunctive)
        fail_msg("[seed 0x%llx] %s: query \"%.300s\": %u terms found, brute force %u",
                 (unsigned long long)seed, what, text, ex->nterms, bf->nfound);
    for (uint32_t i = 0; i < want; i++) {
        if (ex->h[i].docid != bf->h[i].doc || !rel_close(ex->h[i].score, bf->h[i].rep, 1e-6)
            || !rel_close(ex->h[i].score, bf->dsorted[i], 1e-4)
            || !rel_close(ex->h[i].score, bf->h[i].dbl, 1e-4)) {
            /* where the brute force put the engine's document */
            uint32_t j = 0;
            while (j < bf->n && bf->h[j].doc != ex->h[i].docid)
                j++;
            fail_msg("[seed 0x%llx] %s: query \"%.300s\" k=%u k1=%g b=%g conj=%d: rank %u: "
                     "exhaustive doc %u score %.9g; brute force doc %u score %.9g (double %.9g, "
                     "double rank %u: %.9g); brute force has doc %u at rank %d, score %.9g",
                     (unsigned long long)seed, what, text, p->k, p->k1, p->b, p->conjunctive, i,
                     ex->h[i].docid, ex->h[i].score, bf->h[i].doc, bf->h[i].rep, bf->h[i].dbl, i,
                     bf->dsorted[i], ex->h[i].docid, j < bf->n ? (int)j : -1,
                     j < bf->n ? bf->h[j].rep : 0.0);
        }
    }
}

/* ---- random queries ------------------------------------------------------------------------ */

static uint32_t gen_query(corpus *c, tq_rng *rng, uint32_t *qw, uint32_t maxn)
{
    uint32_t n = rng_range(rng, 1, maxn);
    for (uint32_t i = 0; i < n; i++) {
        double u = rng_unif(rng);
        if (u < 0.33) {
            /* frequent: Zipf */
            double z = rng_unif(rng);
            uint32_t lo = 0, hi = c->nbase - 1;
            while (lo < hi) {
                uint32_t mid = (lo + hi) / 2;
                if (c->zipf_cdf[mid] < z) lo = mid + 1; else hi = mid;
            }
            qw[i] = lo;
        } else if (u < 0.58) {
            qw[i] = rng_below(rng, c->nbase);                  /* mostly rare */
        } else if (u < 0.68 && i > 0) {
            qw[i] = qw[rng_below(rng, i)];                     /* repeated term */
        } else if (u < 0.76) {
            qw[i] = c->unk0 + rng_below(rng, c->nunk);         /* unknown */
        } else if (u < 0.83) {
            qw[i] = c->stop0 + rng_below(rng, (uint32_t)TQ_NSTOP);
        } else {
            /* a word of some document, so the query matches */
            uint32_t d = rng_below(rng, c->ndocs_total), tries = 0;
            while (c->doc_nwords[d] == 0 && tries++ < 20)
                d = rng_below(rng, c->ndocs_total);
            qw[i] = c->doc_nwords[d] ? c->doc_words[d][rng_below(rng, c->doc_nwords[d])]
                                     : rng_below(rng, c->nbase);
        }
        if (c->nvar && qw[i] < c->nbase && rng_unif(rng) < 0.2)
            qw[i] = c->var0 + qw[i] * 3 + rng_below(rng, 3);
    }
    return n;
}

/* One query through every check: brute force vs exhaustive, each algorithm
 * vs exhaustive, for each k. */
static void check_core(corpus *c, qry_engine *q, idx_reader *r, const tq_query *qq,
                       const bf_qterm *qt, uint32_t nqt, qry_params base, const uint32_t *ks,
                       size_t nks, tq_hits *ex, tq_hits *tmp, bf_result *bf, tq_counters *cnt)
{
    float k1 = base.k1 >= 0 ? base.k1 : 0.9f, b = base.b >= 0 ? base.b : 0.4f;
    brute_force(c, qt, nqt, k1, b, base.conjunctive, bf);
    cnt->queries++;
    for (size_t ki = 0; ki < nks; ki++) {
        qry_params p = base;
        p.k = ks[ki];
        run_all_algos(q, r, qq, p, ex, tmp, cnt, c->cfg->name, c->seed);
        p.algo = QRY_ALGO_EXHAUSTIVE;
        compare_brute(bf, ex, c->cfg->name, qq->label, &p, c->seed);
        cnt->brute++;
    }
}

static void check_query(corpus *c, qry_engine *q, idx_reader *r, const char *text,
                        const uint32_t *qw, uint32_t nq, qry_params base, const uint32_t *ks,
                        size_t nks, tq_hits *ex, tq_hits *tmp, bf_result *bf, tq_counters *cnt)
{
    bf_qterm qt[256];
    uint32_t nqt = bf_query_terms(c, qw, nq, qt);
    check_core(c, q, r, TQ_TEXT(text), qt, nqt, base, ks, nks, ex, tmp, bf, cnt);
}

/* qry_search_terms: the query words' analyzed terms with float weights
 * (each entry its own part, duplicates included), at most 256 entries. */
static void check_weighted(corpus *c, qry_engine *q, idx_reader *r, const uint32_t *qw,
                           uint32_t nq, const float *weights, qry_params base, const uint32_t *ks,
                           size_t nks, tq_hits *ex, tq_hits *tmp, bf_result *bf, tq_counters *cnt)
{
    qry_term *terms = xmalloc(nq * sizeof *terms);
    bf_qterm *qt = xmalloc(nq * sizeof *qt);
    uint32_t n = 0;
    tq_buf label = { 0 };
    buf_puts(&label, "weighted:");
    for (uint32_t i = 0; i < nq; i++) {
        int32_t t = c->canon[qw[i]];
        if (t < 0)
            continue;
        terms[n] = (qry_term){ c->canon_text[t], strlen(c->canon_text[t]), weights[i], 0 };
        if (n < 256)
            qt[n] = (bf_qterm){ t, weights[i] };
        n++;
        char tmpb[160];
        snprintf(tmpb, sizeof tmpb, " %s^%g", c->canon_text[t], weights[i]);
        buf_puts(&label, tmpb);
    }
    tq_query qq = { .terms = terms, .nterms = n, .label = label.s };
    check_core(c, q, r, &qq, qt, n < 256 ? n : 256, base, ks, nks, ex, tmp, bf, cnt);
    free(label.s);
    free(qt);
    free(terms);
}

static float random_weight(tq_rng *rng)
{
    static const float fixed[] = { 0.25f, 0.5f, 1.0f, 1.5f, 3.0f, 0.0371f };
    if (rng_unif(rng) < 0.5)
        return fixed[rng_below(rng, 6)];
    return (float)(0.01 + 4.0 * rng_unif(rng));
}

static void run_random_corpus(void **state, const corpus_cfg *cfg0)
{
    tq_fixture *f = *state;
    corpus_cfg cfg = *cfg0;
    if (tq_quick()) {
        cfg.ndocs = cfg.ndocs / 4 + 100;
        cfg.nqueries = cfg.nqueries / 4 + 20;
    }
    double t0 = tq_now();
    corpus c;
    memset(&c, 0, sizeof c);
    c.cfg = &cfg;
    c.seed = tq_seed() ^ (uint64_t)cfg.ndocs * 0x100000001b3ULL ^ (uint64_t)cfg.vocab;
    c.rng.s = c.seed;

    enc_analyzer_params ap = enc_analyzer_default_params();
    if (!cfg.default_analyzer) {
        ap.stemmer = "none";
        ap.stopwords = "none";
    }
    idx_env *env = create_index(f->dir, cfg.name, &ap);
    corpus_words(&c, env);
    corpus_build(&c, env);
    corpus_invert(&c);
    double t_build = tq_now() - t0;

    idx_reader *r;
    qry_engine *q;
    assert_int_equal(idx_reader_open(env, &r), 0);
    assert_int_equal(qry_engine_open(env, &q), 0);
    corpus_check_index(&c, r);

    tq_hits ex = { 0 }, tmp = { 0 };
    bf_result bf = { 0 };
    tq_counters cnt = { 0 };
    static const uint32_t ks_plain[] = { 1, 10, 100, 1000 };
    static const uint32_t ks_kth[] = { 1, 9, 10, 11, 99, 100, 101, 999, 1000, 1001 };
    const uint32_t *ks = cfg.kth_ks ? ks_kth : ks_plain;
    size_t nks = cfg.kth_ks ? sizeof ks_kth / sizeof *ks_kth : 4;
    tq_rng qrng = { c.seed ^ 0x9e7ULL };
    tq_buf text = { 0 };
    uint32_t qw[16];
    uint64_t ranked = 0, overrides = 0, conj = 0, weighted = 0;
    for (uint32_t i = 0; i < cfg.nqueries; i++) {
        uint32_t nq = gen_query(&c, &qrng, qw, 8);
        words_to_text(&c, &text, qw, nq, &qrng);
        qry_params p = qry_default_params();
        check_query(&c, q, r, text.s, qw, nq, p, ks, nks, &ex, &tmp, &bf, &cnt);
        ranked++;
        /* query-time k1/b: other bounds (the stored fmax no longer applies) */
        if (i % 3 == 0) {
            uint32_t s = (i / 3) % 3;
            p.k1 = (float)cfg.k1_override[s];
            p.b = (float)cfg.b_override[s];
            check_query(&c, q, r, text.s, qw, nq, p, ks, nks, &ex, &tmp, &bf, &cnt);
            overrides++;
        }
        /* weighted terms (qry_search_terms), duplicates allowed */
        if (i % 3 == 1) {
            float wts[16];
            for (uint32_t j = 0; j < nq; j++)
                wts[j] = random_weight(&qrng);
            p = qry_default_params();
            if (i % 2)
                p.k1 = 1.2f, p.b = 0.75f;
            check_weighted(&c, q, r, qw, nq, wts, p, ks, nks, &ex, &tmp, &bf, &cnt);
            weighted++;
        }
        /* conjunctive: at most 4 terms so that ANDs still match something */
        if (i % 2 == 0) {
            uint32_t nc = nq < 4 ? nq : 4;
            words_to_text(&c, &text, qw, nc, &qrng);
            p = qry_default_params();
            p.conjunctive = 1;
            static const uint32_t kc[] = { 1, 10, 1000 };
            check_query(&c, q, r, text.s, qw, nc, p, kc, 3, &ex, &tmp, &bf, &cnt);
            conj++;
        }
    }
    double t_total = tq_now() - t0;
    print_message("%-18s docs %u (live %llu, ids %u), segments %u, seed 0x%llx: %llu ranked + %llu "
                  "k1/b + %llu weighted + %llu AND queries, %llu searches, %llu lists compared, %llu brute-force "
                  "checks; %u ids dropped in-batch not marked deleted; build %.2fs, total %.2fs\n",
                  cfg.name, cfg.ndocs, (unsigned long long)c.nlive, c.ndocs_total,
                  idx_reader_stats(r)->nsegments, (unsigned long long)c.seed,
                  (unsigned long long)ranked, (unsigned long long)overrides,
                  (unsigned long long)weighted, (unsigned long long)conj, (unsigned long long)cnt.searches,
                  (unsigned long long)cnt.compared, (unsigned long long)cnt.brute,
                  c.batch_dropped_unmarked, t_build, t_total);
    print_pruning(cfg.name, &cnt);

    free(text.s);
    free(ex.h);
    free(tmp.h);
    free(bf.h);
    free(bf.dsorted);
    qry_engine_close(q);
    idx_reader_close(r);
    idx_env_close(env);
    corpus_free(&c);
}

/* One segment, no deletions, large collection. */
static void test_random_single_segment(void **state)
{
    static const corpus_cfg cfg = {
        .name = "single-segment", .ndocs = 20000, .vocab = 6000, .zipf_s = 1.0,
        .batch_docs = 0, .p_replace = 0, .p_delete = 0, .p_duplicate = 0.02, .p_stop = 0.05,
        .len_scale = 100, .nqueries = 300,
        .k1_override = { 1.2, 2.0, 0.5 }, .b_override = { 0.75, 1.0, 0.0 },
    };
    run_random_corpus(state, &cfg);
}

/* Many segments (700 docs each), deletions and replacements. */
static void test_random_segments_deletes(void **state)
{
    static const corpus_cfg cfg = {
        .name = "segments-deletes", .ndocs = 12000, .vocab = 4000, .zipf_s = 1.05,
        .batch_docs = 700, .p_replace = 0.05, .p_delete = 0.04, .p_duplicate = 0.03,
        .p_stop = 0.05, .len_scale = 100, .nqueries = 300,
        .k1_override = { 1.2, 0.0, 3.0 }, .b_override = { 0.75, 0.5, 0.2 },
    };
    run_random_corpus(state, &cfg);
}

/* The default analyzer: English stemmer, stop words, mixed case, inflections. */
static void test_random_default_analyzer(void **state)
{
    static const corpus_cfg cfg = {
        .name = "default-analyzer", .ndocs = 8000, .vocab = 3000, .zipf_s = 1.0,
        .default_analyzer = 1, .batch_docs = 1500, .p_replace = 0.03, .p_delete = 0.02,
        .p_duplicate = 0.02, .p_stop = 0.15, .len_scale = 100, .nqueries = 250,
        .k1_override = { 1.2, 1.5, 0.9 }, .b_override = { 0.75, 0.3, 1.0 },
    };
    run_random_corpus(state, &cfg);
}

/* Tiny vocabulary and short documents: long lists, many exact score ties
 * (decided by doc id), tiny segments (97 docs), heavy replacement. */
static void test_random_ties_tiny_segments(void **state)
{
    static const corpus_cfg cfg = {
        .name = "ties-tiny-segments", .ndocs = 4000, .vocab = 150, .zipf_s = 0.8,
        .batch_docs = 97, .p_replace = 0.2, .p_delete = 0.05, .p_duplicate = 0.1,
        .p_stop = 0.0, .len_scale = 8, .nqueries = 250,
        .k1_override = { 1.2, 0.3, 5.0 }, .b_override = { 0.75, 0.9, 0.0 },
    };
    run_random_corpus(state, &cfg);
}

/* Long documents over a large, flat vocabulary: many rare terms, high tf. */
static void test_random_long_docs(void **state)
{
    static const corpus_cfg cfg = {
        .name = "long-docs", .ndocs = 2000, .vocab = 40000, .zipf_s = 1.2,
        .batch_docs = 450, .p_replace = 0.02, .p_delete = 0.02, .p_duplicate = 0.01,
        .p_stop = 0.02, .len_scale = 400, .nqueries = 200,
        .k1_override = { 1.2, 2.5, 0.7 }, .b_override = { 0.75, 0.1, 0.9 },
    };
    run_random_corpus(state, &cfg);
}

/* Documents grow 6x over the corpus (avgdl rises after every segment, so
 * each older segment's stored bounds were computed at a smaller avgdl). */
static void test_random_avgdl_growing(void **state)
{
    static const corpus_cfg cfg = {
        .name = "avgdl-growing", .ndocs = 5000, .vocab = 2500, .zipf_s = 1.0,
        .batch_docs = 500, .p_replace = 0.03, .p_delete = 0.03, .p_duplicate = 0.02,
        .p_stop = 0.03, .len_scale = 60, .drift = 6.0, .nqueries = 150,
        .k1_override = { 1.2, 0.9, 2.0 }, .b_override = { 0.75, 0.4, 1.0 },
    };
    run_random_corpus(state, &cfg);
}

/* Documents shrink to a sixth: avgdl falls after every segment. */
static void test_random_avgdl_shrinking(void **state)
{
    static const corpus_cfg cfg = {
        .name = "avgdl-shrinking", .ndocs = 5000, .vocab = 2500, .zipf_s = 1.0,
        .batch_docs = 500, .p_replace = 0.03, .p_delete = 0.03, .p_duplicate = 0.02,
        .p_stop = 0.03, .len_scale = 200, .drift = 1.0 / 6.0, .nqueries = 150,
        .k1_override = { 1.2, 0.9, 2.0 }, .b_override = { 0.75, 0.4, 1.0 },
    };
    run_random_corpus(state, &cfg);
}

/* The stored k-th best scores prime the pruning threshold only where they
 * hold: no deleted documents, the segment's k1 and b. These corpora have
 * no deletions (or lose them to a merge), so the bound is in force, and
 * k sits on either side of each stored rank. */

/* Segments written as avgdl falls (each older segment's k-th values were
 * computed at a larger avgdl and must be scaled down), no deletions. */
static void test_random_kth_segments_shrinking(void **state)
{
    static const corpus_cfg cfg = {
        .name = "kth-shrinking", .ndocs = 6000, .vocab = 800, .zipf_s = 1.0,
        .batch_docs = 600, .p_replace = 0, .p_delete = 0, .p_duplicate = 0.05,
        .p_stop = 0.03, .len_scale = 150, .drift = 1.0 / 6.0, .nqueries = 120,
        .k1_override = { 1.2, 0.9, 2.0 }, .b_override = { 0.75, 0.4, 1.0 },
        .kth_ks = 1,
    };
    run_random_corpus(state, &cfg);
}

/* Exact ties at the k-th score: tiny vocabulary, short and duplicated
 * documents, so the k-th best single-term score is shared by many
 * documents, which must still resolve by doc id as without the bound. */
static void test_random_kth_ties(void **state)
{
    static const corpus_cfg cfg = {
        .name = "kth-ties", .ndocs = 5000, .vocab = 120, .zipf_s = 0.8,
        .batch_docs = 1300, .p_replace = 0, .p_delete = 0, .p_duplicate = 0.3,
        .p_stop = 0.0, .len_scale = 6, .nqueries = 120,
        .k1_override = { 1.2, 0.3, 5.0 }, .b_override = { 0.75, 0.9, 0.0 },
        .kth_ks = 1,
    };
    run_random_corpus(state, &cfg);
}

/* Deletions and replacements, then a merge: the merged lists' k-th values
 * are recomputed without the deleted postings, at the live avgdl, and the
 * deleted set is empty, so the bound applies again. */
static void test_random_kth_merged(void **state)
{
    static const corpus_cfg cfg = {
        .name = "kth-merged", .ndocs = 6000, .vocab = 800, .zipf_s = 1.0,
        .batch_docs = 700, .p_replace = 0.1, .p_delete = 0.08, .p_duplicate = 0.05,
        .p_stop = 0.03, .len_scale = 100, .drift = 3.0, .nqueries = 120,
        .k1_override = { 1.2, 0.0, 3.0 }, .b_override = { 0.75, 0.5, 0.2 },
        .merge = 1, .kth_ks = 1,
    };
    run_random_corpus(state, &cfg);
}

/* A document with an empty title and the given text, added by w. */
static void add_text(idx_writer *w, const char *id, const char *text)
{
    const char *names[2] = { "title", "text" };
    const char *vals[2] = { "", text };
    size_t lens[2] = { 0, strlen(text) };
    assert_int_equal(idx_writer_add(w, id, strlen(id), names, vals, lens, 2), 0);
}

/* The number of hits of text, top 10, in snapshot r. */
static uint32_t hits_of(qry_engine *q, idx_reader *r, const char *text)
{
    qry_params p = qry_default_params();
    qry_result res;
    assert_int_equal(qry_search(q, r, text, strlen(text), &p, &res), 0);
    return res.n;
}

/* A deleted document among a term's 10 best postings: the list's stored
 * 10th best score is then above the live 10th best, so the bound must not
 * be used while the deletion is pending; after a merge it holds again.
 * Ten documents "apple" (short, high score), one long with "apple" once
 * (low score); deleting a short one makes the long one the 10th hit. */
static void test_kth_deleted_among_best(void **state)
{
    tq_fixture *f = *state;
    idx_env *env = create_index(f->dir, "kth-deleted", NULL);
    idx_writer_params wp = idx_writer_default_params();
    idx_writer *w;
    assert_int_equal(idx_writer_open(env, &wp, &w), 0);
    char id[16];
    for (int i = 0; i < 11; i++) {
        snprintf(id, sizeof id, "d%d", i);
        add_text(w, id, i < 10 ? "apple" : "apple pear plum fig kiwi lime date sloe yuzu");
    }
    assert_int_equal(idx_writer_close(w), 0);
    assert_int_equal(idx_writer_open(env, &wp, &w), 0);
    assert_int_equal(idx_writer_delete(w, "d3", 2), 0);
    assert_int_equal(idx_writer_close(w), 0);

    qry_engine *q;
    assert_int_equal(qry_engine_open(env, &q), 0);
    for (int merged = 0; merged < 2; merged++) {
        if (merged) {
            uint32_t before;
            assert_int_equal(idx_writer_open(env, &wp, &w), 0);
            assert_int_equal(idx_writer_merge(w, &before), 0);
            assert_int_equal(idx_writer_close(w), 0);
        }
        idx_reader *r;
        assert_int_equal(idx_reader_open(env, &r), 0);
        for (int a = 0; a < QRY_ALGO_COUNT; a++) {
            qry_params p = qry_default_params();
            p.algo = a;
            qry_result res;
            assert_int_equal(qry_search(q, r, "apple", 5, &p, &res), 0);
            if (res.n != 10)
                fail_msg("%s, algo %s: %u hits, want 10", merged ? "merged" : "pending delete",
                         qry_algo_name(a), res.n);
            assert_int_equal(res.hits[9].docid, 10);     /* the long document */
        }
        idx_reader_close(r);
    }
    qry_engine_close(q);
    idx_env_close(env);
}

/* The engine's term cache keeps what a term's lookups found for one
 * snapshot: one engine searching two snapshots in turn, the newer with a
 * term the older lacks and a document more for another, must answer each
 * from its own. */
static void test_term_cache_snapshots(void **state)
{
    tq_fixture *f = *state;
    idx_env *env = create_index(f->dir, "term-cache", NULL);
    idx_writer_params wp = idx_writer_default_params();
    idx_writer *w;
    assert_int_equal(idx_writer_open(env, &wp, &w), 0);
    add_text(w, "d0", "apple");
    add_text(w, "d1", "apple fig");
    assert_int_equal(idx_writer_close(w), 0);
    qry_engine *q;
    idx_reader *old, *cur;
    assert_int_equal(qry_engine_open(env, &q), 0);
    assert_int_equal(idx_reader_open(env, &old), 0);
    assert_int_equal(hits_of(q, old, "apple"), 2);
    assert_int_equal(hits_of(q, old, "pear"), 0);
    assert_int_equal(idx_writer_open(env, &wp, &w), 0);
    add_text(w, "d2", "apple pear");
    assert_int_equal(idx_writer_close(w), 0);
    assert_int_equal(idx_reader_open(env, &cur), 0);
    assert_true(idx_reader_serial(cur) != idx_reader_serial(old));
    for (int round = 0; round < 2; round++) {
        assert_int_equal(hits_of(q, cur, "pear"), 1);
        assert_int_equal(hits_of(q, cur, "apple"), 3);
        assert_int_equal(hits_of(q, old, "pear"), 0);
        assert_int_equal(hits_of(q, old, "apple"), 2);
    }
    idx_reader_close(old);
    idx_reader_close(cur);
    /* after a merge the old lists' pages may be reused: a new reader */
    uint32_t before;
    assert_int_equal(idx_writer_open(env, &wp, &w), 0);
    assert_int_equal(idx_writer_delete(w, "d0", 2), 0);
    assert_int_equal(idx_writer_merge(w, &before), 0);
    assert_int_equal(idx_writer_close(w), 0);
    assert_int_equal(idx_reader_open(env, &cur), 0);
    assert_int_equal(hits_of(q, cur, "apple"), 2);
    assert_int_equal(hits_of(q, cur, "pear fig"), 2);
    /* another env's reader with the same serial: not served from this
     * env's entries (B has no apple) */
    idx_env *envb = create_index(f->dir, "term-cache-b", NULL);
    assert_int_equal(idx_writer_open(envb, &wp, &w), 0);
    add_text(w, "b0", "pear plum");
    assert_int_equal(idx_writer_close(w), 0);
    idx_reader *rb = NULL;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(idx_reader_open(envb, &rb), 0);
        if (idx_reader_serial(rb) == idx_reader_serial(cur))
            break;
        idx_reader_close(rb);
        rb = NULL;
    }
    assert_non_null(rb);
    assert_int_equal(hits_of(q, rb, "apple"), 0);
    assert_int_equal(hits_of(q, rb, "pear"), 1);
    assert_int_equal(hits_of(q, cur, "apple"), 2);
    idx_reader_close(rb);
    idx_env_close(envb);
    idx_reader_close(cur);
    qry_engine_close(q);
    idx_env_close(env);
}

/* ---- edge cases -------------------------------------------------------------------------- */

static void test_edge_cases(void **state)
{
    tq_fixture *f = *state;
    static const corpus_cfg cfg = {
        .name = "edge", .ndocs = 1500, .vocab = 1200, .zipf_s = 0.9, .default_analyzer = 1,
        .batch_docs = 400, .p_replace = 0.02, .p_delete = 0.02, .p_duplicate = 0.02,
        .p_stop = 0.1, .len_scale = 100, .nqueries = 0,
    };
    corpus c;
    memset(&c, 0, sizeof c);
    c.cfg = &cfg;
    c.seed = tq_seed() ^ 0xed6eULL;
    c.rng.s = c.seed;
    enc_analyzer_params ap = enc_analyzer_default_params();
    idx_env *env = create_index(f->dir, "edge", &ap);
    corpus_words(&c, env);
    corpus_build(&c, env);
    corpus_invert(&c);
    idx_reader *r;
    qry_engine *q;
    assert_int_equal(idx_reader_open(env, &r), 0);
    assert_int_equal(qry_engine_open(env, &q), 0);
    corpus_check_index(&c, r);

    qry_params p = qry_default_params();
    qry_result res;
    tq_hits ex = { 0 }, tmp = { 0 };
    bf_result bf = { 0 };
    tq_counters cnt = { 0 };

    /* Empty, blank, stop words only, unknown only, punctuation only: 0 hits, rc 0. */
    static const char *const empty_queries[] = {
        "", "   ", "the", "The of AND a to", "qzzzqx", "qzzzqx quuuuq the", "!!! ,,, ...",
    };
    for (size_t i = 0; i < sizeof empty_queries / sizeof *empty_queries; i++) {
        for (int a = 0; a < QRY_ALGO_COUNT; a++) {
            for (int conj = 0; conj < 2; conj++) {
                p = qry_default_params();
                p.algo = a;
                p.conjunctive = conj;
                memset(&res, 0xab, sizeof res);
                int rc = qry_search(q, r, empty_queries[i], strlen(empty_queries[i]), &p, &res);
                if (rc != 0 || res.n != 0 || res.nterms != 0)
                    fail_msg("query \"%s\" algo %s conj %d: rc %s, %u hits, %u terms",
                             empty_queries[i], qry_algo_name(a), conj, lx_strerror(rc), res.n,
                             res.nterms);
            }
        }
    }
    /* Zero-length text (non-NULL pointer) is an empty query too. */
    p = qry_default_params();
    assert_int_equal(qry_search(q, r, "anything", 0, &p, &res), 0);
    assert_int_equal(res.n, 0);

    /* Invalid parameters. */
    const char *w0 = c.words[0];
    p = qry_default_params();
    p.k = 0;
    assert_int_equal(qry_search(q, r, w0, strlen(w0), &p, &res), LX_E_INVAL);
    p.k = 100001;
    assert_int_equal(qry_search(q, r, w0, strlen(w0), &p, &res), LX_E_INVAL);
    p = qry_default_params();
    p.algo = QRY_ALGO_COUNT;
    assert_int_equal(qry_search(q, r, w0, strlen(w0), &p, &res), LX_E_INVAL);
    p.algo = -1;
    assert_int_equal(qry_search(q, r, w0, strlen(w0), &p, &res), LX_E_INVAL);
    p = qry_default_params();
    p.b = 1.5f;
    assert_int_equal(qry_search(q, r, w0, strlen(w0), &p, &res), LX_E_INVAL);
    p = qry_default_params();
    p.k1 = 1000.0f;
    assert_int_equal(qry_search(q, r, w0, strlen(w0), &p, &res), LX_E_INVAL);
    p = qry_default_params();
    p.k = 100000;                     /* the largest allowed k */
    assert_int_equal(qry_search(q, r, w0, strlen(w0), &p, &res), 0);

    /* Algorithm names. */
    for (int a = 0; a < QRY_ALGO_COUNT; a++)
        assert_int_equal(qry_algo_parse(qry_algo_name(a)), a);
    assert_int_equal(qry_algo_parse("nope"), -1);

    /* A single-term query for the most frequent term and for a rare one,
     * with k far above the number of matching documents. */
    static const uint32_t kbig[] = { 1, 7, 1000, 50000 };
    uint32_t qw[300];
    for (uint32_t wi = 0; wi < 3; wi++) {
        uint32_t w = wi == 0 ? 0 : wi == 1 ? c.nbase / 2 : c.nbase - 1;
        qw[0] = w;
        check_query(&c, q, r, c.words[w], qw, 1, qry_default_params(), kbig, 4, &ex, &tmp, &bf,
                    &cnt);
        uint32_t nt;
        const qry_term *terms = qry_last_terms(q, &nt);
        assert_int_equal(nt, 1);
        assert_true(terms[0].weight == 1.0f);
        assert_int_equal(terms[0].df, c.df[c.canon[w]]);
    }
    /* k larger than the matches: every matching doc comes back. */
    {
        uint32_t w = c.nbase - 1;
        p = qry_default_params();
        p.k = 50000;
        assert_int_equal(qry_search(q, r, c.words[w], strlen(c.words[w]), &p, &res), 0);
        assert_int_equal(res.n, c.df[c.canon[w]]);
    }
    /* Repeated terms: qtf counts them, stop words are not terms. */
    {
        tq_buf b = { 0 };
        buf_puts(&b, c.words[3]);
        buf_puts(&b, " the ");
        buf_puts(&b, c.words[3]);
        buf_puts(&b, " ");
        buf_puts(&b, c.words[5]);
        qw[0] = 3; qw[1] = c.stop0; qw[2] = 3; qw[3] = 5;
        static const uint32_t k10[] = { 10, 1000 };
        check_query(&c, q, r, b.s, qw, 4, qry_default_params(), k10, 2, &ex, &tmp, &bf, &cnt);
        uint32_t nt;
        const qry_term *terms = qry_last_terms(q, &nt);
        assert_int_equal(nt, c.canon[3] == c.canon[5] ? 1 : 2);
        assert_true(terms[0].weight == (c.canon[3] == c.canon[5] ? 3.0f : 2.0f));
        free(b.s);
    }
    /* Long queries: 220 distinct terms (all kept), and 300 distinct terms
     * plus repeats (the engine keeps the first 256 distinct ones). */
    {
        tq_buf b = { 0 };
        tq_rng qr = { c.seed ^ 0x10f6ULL };
        static const uint32_t kl[] = { 1, 10, 100, 1000 };
        for (int round = 0; round < 2; round++) {
            uint32_t nd = round == 0 ? 220 : 300, nq = 0;
            for (uint32_t i = 0; i < nd; i++)
                qw[nq++] = (i * 37u + 11u) % c.nbase;
            if (round == 1) {
                /* unknown words, stop words and repeats mixed in */
                for (uint32_t i = 0; i < 20 && nq < 300; i++)
                    qw[rng_below(&qr, nq)] = c.unk0 + i;
                qw[5] = c.stop0;
                qw[299] = qw[0];
            }
            words_to_text(&c, &b, qw, nq, &qr);
            check_query(&c, q, r, b.s, qw, nq, qry_default_params(), kl, 4, &ex, &tmp, &bf, &cnt);
            qry_params po = qry_default_params();
            po.k1 = 1.2f;
            po.b = 0.75f;
            check_query(&c, q, r, b.s, qw, nq, po, kl, 4, &ex, &tmp, &bf, &cnt);
            uint32_t nt;
            qry_last_terms(q, &nt);
            assert_true(nt <= 256);
        }
        free(b.s);
    }
    /* Weighted terms: 300 entries with duplicates (the engine keeps 256). */
    {
        tq_rng qr = { c.seed ^ 0x3e16ULL };
        float wts[300];
        uint32_t nq = 0;
        for (uint32_t i = 0; i < 300; i++) {
            qw[nq] = i % 7 == 3 && nq ? qw[rng_below(&qr, nq)] : rng_below(&qr, c.nbase);
            wts[nq++] = random_weight(&qr);
        }
        static const uint32_t kw[] = { 1, 10, 1000 };
        check_weighted(&c, q, r, qw, nq, wts, qry_default_params(), kw, 3, &ex, &tmp, &bf, &cnt);
        check_weighted(&c, q, r, qw, 5, wts, qry_default_params(), kw, 3, &ex, &tmp, &bf, &cnt);
    }
    /* The engine is reusable after an error, and hits stay valid until the
     * next search. */
    p = qry_default_params();
    p.k = 0;
    assert_int_equal(qry_search(q, r, w0, strlen(w0), &p, &res), LX_E_INVAL);
    p.k = 10;
    assert_int_equal(qry_search(q, r, w0, strlen(w0), &p, &res), 0);
    assert_true(res.n > 0);

    /* An index with no documents at all. */
    {
        idx_env *e2 = create_index(f->dir, "empty", NULL);
        idx_reader *r2;
        qry_engine *q2;
        assert_int_equal(idx_reader_open(e2, &r2), 0);
        assert_int_equal(qry_engine_open(e2, &q2), 0);
        for (int a = 0; a < QRY_ALGO_COUNT; a++) {
            p = qry_default_params();
            p.algo = a;
            assert_int_equal(qry_search(q2, r2, "hello world", 11, &p, &res), 0);
            assert_int_equal(res.n, 0);
        }
        qry_engine_close(q2);
        idx_reader_close(r2);
        idx_env_close(e2);
    }
    /* An index whose only documents were all deleted: terms exist with df 0. */
    {
        idx_env *e3 = create_index(f->dir, "alldeleted", NULL);
        idx_writer *w;
        assert_int_equal(idx_writer_open(e3, NULL, &w), 0);
        const char *names[2] = { "title", "text" };
        const char *vals[2] = { "alpha beta", "gamma alpha" };
        size_t lens[2] = { 10, 11 };
        assert_int_equal(idx_writer_add(w, "x", 1, names, vals, lens, 2), 0);
        assert_int_equal(idx_writer_add(w, "y", 1, names, vals, lens, 2), 0);
        assert_int_equal(idx_writer_flush(w), 0);
        assert_int_equal(idx_writer_delete(w, "x", 1), 0);
        assert_int_equal(idx_writer_delete(w, "y", 1), 0);
        assert_int_equal(idx_writer_close(w), 0);
        idx_reader *r3;
        qry_engine *q3;
        assert_int_equal(idx_reader_open(e3, &r3), 0);
        assert_int_equal(qry_engine_open(e3, &q3), 0);
        for (int a = 0; a < QRY_ALGO_COUNT; a++) {
            for (int conj = 0; conj < 2; conj++) {
                p = qry_default_params();
                p.algo = a;
                p.conjunctive = conj;
                assert_int_equal(qry_search(q3, r3, "alpha gamma", 11, &p, &res), 0);
                assert_int_equal(res.n, 0);
            }
        }
        qry_engine_close(q3);
        idx_reader_close(r3);
        idx_env_close(e3);
    }
    print_message("edge cases: %llu searches, %llu lists compared\n",
                  (unsigned long long)cnt.searches, (unsigned long long)cnt.compared);

    free(ex.h);
    free(tmp.h);
    free(bf.h);
    free(bf.dsorted);
    qry_engine_close(q);
    idx_reader_close(r);
    idx_env_close(env);
    corpus_free(&c);
}

/* ---- real collections ---------------------------------------------------------------------- */

static const char *data_dir(void)
{
    const char *d = getenv("LEXIS_DATA");
    return d && *d ? d : "../shared/data";
}

static char **load_queries(const char *path, uint32_t *n_out)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    char **qs = NULL;
    uint32_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, fp)) >= 0) {
        json_error_t err;
        json_t *o = json_loadb(line, (size_t)len, 0, &err);
        if (!o)
            continue;
        json_t *t = json_object_get(o, "text");
        if (json_is_string(t)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                qs = xrealloc(qs, cap * sizeof *qs);
            }
            qs[n++] = strdup(json_string_value(t));
        }
        json_decref(o);
    }
    free(line);
    fclose(fp);
    *n_out = n;
    return qs;
}

static void run_collection(tq_fixture *f, const char *name, uint32_t batch_docs,
                           tq_counters *total)
{
    char corpus_path[512], queries_path[512], sub[64];
    snprintf(corpus_path, sizeof corpus_path, "%s/%s/corpus.jsonl", data_dir(), name);
    snprintf(queries_path, sizeof queries_path, "%s/%s/queries.jsonl", data_dir(), name);
    FILE *fp = fopen(corpus_path, "r");
    if (!fp)
        return;
    uint32_t nq = 0;
    char **qs = load_queries(queries_path, &nq);
    if (!qs) {
        fclose(fp);
        return;
    }
    double t0 = tq_now();
    snprintf(sub, sizeof sub, "%s-%u", name, batch_docs);
    idx_env *env = create_index(f->dir, sub, NULL);
    idx_writer_params wp = idx_writer_default_params();
    wp.batch_docs = batch_docs;
    idx_writer *w;
    assert_int_equal(idx_writer_open(env, &wp, &w), 0);
    idx_add_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = idx_writer_add_jsonl(w, fp, corpus_path, &rep);
    fclose(fp);
    if (rc)
        fail_msg("%s: ingest: %s (%s)", name, lx_strerror(rc), idx_env_errmsg(env));
    assert_int_equal(idx_writer_close(w), 0);
    assert_true(rep.indexed > 0);
    double t_build = tq_now() - t0;

    idx_reader *r;
    qry_engine *q;
    assert_int_equal(idx_reader_open(env, &r), 0);
    assert_int_equal(qry_engine_open(env, &q), 0);
    tq_hits ex = { 0 }, tmp = { 0 };
    tq_counters cnt = { 0 };
    uint32_t step = tq_quick() ? 3 : 1;
    uint64_t rm3 = 0;
    for (uint32_t i = 0; i < nq; i += step) {
        static const uint32_t ks_all[] = { 10, 1000 }, ks_sub[] = { 1, 100 };
        qry_params p = qry_default_params();
        for (int j = 0; j < 2; j++) {
            p.k = ks_all[j];
            run_all_algos(q, r, TQ_TEXT(qs[i]), p, &ex, &tmp, &cnt, name, 0);
        }
        if (i % 3 == 0) {
            for (int j = 0; j < 2; j++) {
                p.k = ks_sub[j];
                run_all_algos(q, r, TQ_TEXT(qs[i]), p, &ex, &tmp, &cnt, name, 0);
            }
        }
        if (i % 5 == 0) {
            p = qry_default_params();
            p.k1 = 1.2f;
            p.b = 0.75f;
            p.k = 100;
            run_all_algos(q, r, TQ_TEXT(qs[i]), p, &ex, &tmp, &cnt, name, 0);
        }
        /* RM3: float weights from the feedback model; every algorithm must
         * expand identically (same first pass) and rank identically. */
        if (i % 4 == 1) {
            qry_rm3_params rm = qry_rm3_default_params();
            tq_query qq = { .text = qs[i], .rm3 = &rm, .label = qs[i] };
            p = qry_default_params();
            p.k = i % 8 == 1 ? 1000 : 10;
            run_all_algos(q, r, &qq, p, &ex, &tmp, &cnt, name, 0);
            rm3++;
        }
        cnt.queries++;
    }
    print_message("%-10s %s: %llu docs, %u segments, %llu queries (%llu also RM3), %llu searches, "
                  "%llu lists compared; build %.2fs, total %.2fs\n", name,
                  batch_docs ? "multi-seg " : "one seg   ", (unsigned long long)rep.indexed,
                  idx_reader_stats(r)->nsegments, (unsigned long long)cnt.queries,
                  (unsigned long long)rm3,
                  (unsigned long long)cnt.searches, (unsigned long long)cnt.compared, t_build,
                  tq_now() - t0);
    print_pruning(name, &cnt);
    total->queries += cnt.queries;
    total->promoted += cnt.promoted;
    total->searches += cnt.searches;
    total->compared += cnt.compared;
    free(ex.h);
    free(tmp.h);
    qry_engine_close(q);
    idx_reader_close(r);
    idx_env_close(env);
    for (uint32_t i = 0; i < nq; i++)
        free(qs[i]);
    free(qs);
}

static void test_real_collections(void **state)
{
    tq_fixture *f = *state;
    static const char *const names[] = { "scifact", "cacm", "cranfield", "cisi", "medline", "adi" };
    tq_counters total = { 0 };
    int found = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s/corpus.jsonl", data_dir(), names[i]);
        if (access(path, R_OK) != 0)
            continue;
        found++;
        run_collection(f, names[i], 0, &total);
        /* the two largest once more, built in many segments */
        if (i < 2 && !tq_quick())
            run_collection(f, names[i], 700, &total);
    }
    if (!found) {
        print_message("real collections: no data under %s (set LEXIS_DATA); skipped\n", data_dir());
        return;
    }
    print_message("real collections: %d found, %llu queries, %llu searches, %llu lists compared\n",
                  found, (unsigned long long)total.queries, (unsigned long long)total.searches,
                  (unsigned long long)total.compared);
    /* The long queries of CISI and Cranfield take MaxScore's promotion
     * path (maxscore.c); the comparisons above must have covered it. */
    if (total.promoted == 0)
        fail_msg("real collections: no MaxScore window promoted a term; the oracle did not "
                 "cover promote_terms");
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_edge_cases, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_random_single_segment, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_random_segments_deletes, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_random_default_analyzer, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_random_ties_tiny_segments, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_random_long_docs, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_random_avgdl_growing, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_random_avgdl_shrinking, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_random_kth_segments_shrinking, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_random_kth_ties, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_random_kth_merged, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_term_cache_snapshots, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_kth_deleted_among_best, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_real_collections, fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
