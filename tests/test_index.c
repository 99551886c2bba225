/* test_index.c: the index module: postings codec, environment, writer and
 * reader, replacement and deletion, segments, the writer lock, check. Uses
 * real LMDB environments in temporary directories. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../index/index_impl.h"

/* ---- helpers ------------------------------------------------------------------ */

static char *make_tmpdir(void)
{
    char *t = strdup("/tmp/lexis-test-index-XXXXXX");
    assert_non_null(mkdtemp(t));
    return t;
}

static void remove_tmpdir(char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
}

static idx_env *create_index(const char *dir, const char *sub)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    idx_env *env;
    char err[256];
    idx_create_params cp = idx_create_default_params();
    int rc = idx_env_open(path, IDX_CREATE, &cp, &env, err, sizeof err);
    if (rc)
        fail_msg("create %s: %s", path, err);
    return env;
}

static void add_doc(idx_writer *w, const char *id, const char *title, const char *text)
{
    const char *names[] = { "title", "text" };
    const char *vals[] = { title, text };
    size_t lens[] = { strlen(title), strlen(text) };
    assert_int_equal(idx_writer_add(w, id, strlen(id), names, vals, lens, 2), 0);
}

/* Documents d0..d(n-1), "common grp<i % 4> uniq<i>", in batches of 3: a
 * segment each batch. */
static void add_grouped_docs(idx_env *env, int n)
{
    idx_writer *w;
    idx_writer_params wp = idx_writer_default_params();
    wp.batch_docs = 3;
    assert_int_equal(idx_writer_open(env, &wp, &w), 0);
    char id[16], text[64];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "d%d", i);
        snprintf(text, sizeof text, "common grp%d uniq%d", i % 4, i);
        add_doc(w, id, "t", text);
    }
    assert_int_equal(idx_writer_close(w), 0);
}

static uint32_t term_df(idx_reader *r, const char *t)
{
    idx_term_info ti;
    if (idx_reader_term(r, t, strlen(t), &ti))
        return 0;
    return ti.df;
}

static void assert_check_clean(idx_env *env)
{
    idx_check_report rep;
    FILE *out = tmpfile();
    int rc = idx_check(env, out, &rep);
    if (rc) {
        char buf[2048] = "";
        rewind(out);
        size_t n = fread(buf, 1, sizeof buf - 1, out);
        buf[n] = 0;
        fail_msg("check failed (%s): %s", lx_strerror(rc), buf);
    }
    fclose(out);
    assert_int_equal(rep.errors, 0);
}

/* ---- postings codec --------------------------------------------------------------- */

static int cmp_float_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static void roundtrip(uint32_t n, uint32_t gap_max, uint32_t tf_max, unsigned seed)
{
    uint32_t *docs = malloc(n * sizeof *docs), *tfs = malloc(n * sizeof *tfs);
    uint32_t ndocs_seg = 0;
    srand(seed);
    uint32_t d = (uint32_t)rand() % 5;
    for (uint32_t i = 0; i < n; i++) {
        docs[i] = d;
        tfs[i] = 1 + (uint32_t)rand() % tf_max;
        d += 1 + (uint32_t)rand() % gap_max;
    }
    ndocs_seg = docs[n - 1] + 1;
    uint32_t *lens = malloc(ndocs_seg * sizeof *lens);
    for (uint32_t i = 0; i < ndocs_seg; i++)
        lens[i] = 1 + (i * 7919u + seed) % 500;    /* cheap: big gaps make this long */
    unsigned char *buf = malloc(idx_plist_max_size(n));
    size_t sz = idx_plist_encode(docs, tfs, n, lens, 0, 0.9f, 0.4f, 100.0f, buf);
    assert_true(sz <= idx_plist_max_size(n));
    idx_plist pl;
    assert_int_equal(idx_plist_parse(buf, sz, &pl), 0);
    pl.seg_base = 0;
    pl.seg_ndocs = ndocs_seg;
    assert_int_equal(pl.n, n);
    assert_int_equal(pl.nblocks, (n + 127) / 128);
    uint32_t od[IDX_BLOCK_SIZE], ot[IDX_BLOCK_SIZE], k = 0;
    float fmax = 0;
    for (uint32_t b = 0; b < pl.nblocks; b++) {
        assert_int_equal(idx_block_verify_checksum(&pl, b), 0);
        int m = idx_block_decode(&pl, b, od, ot);
        assert_true(m > 0);
        float bf = 0;
        for (int j = 0; j < m; j++, k++) {
            assert_int_equal(od[j], docs[k]);
            assert_int_equal(ot[j], tfs[k]);
            float f = idx_bm25_tfnorm(ot[j], lens[od[j]], 0.9f, 0.4f, 100.0f);
            if (f > bf) bf = f;
        }
        assert_true(idx_block_fmax(&pl, b) == bf);
        assert_int_equal(idx_block_last(&pl, b), docs[k - 1]);
        if (bf > fmax) fmax = bf;
    }
    assert_int_equal(k, n);
    assert_true(pl.fmax == fmax);
    /* kth[i]: the 10th / 100th / 1000th largest tf/(tf + K), 0 when shorter;
     * the header grows by 16 bytes from 10 postings on. */
    float *fs = malloc(n * sizeof *fs);
    for (uint32_t i = 0; i < n; i++)
        fs[i] = idx_bm25_tfnorm(tfs[i], lens[docs[i]], 0.9f, 0.4f, 100.0f);
    qsort(fs, n, sizeof *fs, cmp_float_desc);
    for (int i = 0; i < IDX_KTH_COUNT; i++) {
        uint32_t rank = idx_kth_ranks[i];
        assert_true(pl.kth[i] == (n >= rank ? fs[rank - 1] : 0.0f));
    }
    assert_true(pl.entries == buf + (n >= 10 ? IDX_PLIST_HEADER_KTH : IDX_PLIST_HEADER));
    free(fs);
    /* Every single flipped byte is caught by a checksum or a structure check. */
    for (size_t i = 0; i < sz - 16; i += 1 + sz / 300) {
        buf[i] ^= 0x5A;
        idx_plist bad;
        int caught = idx_plist_parse(buf, sz, &bad) != 0;
        if (!caught) {
            bad.seg_base = 0;
            bad.seg_ndocs = ndocs_seg;
            for (uint32_t b = 0; b < bad.nblocks && !caught; b++)
                caught = idx_block_verify_checksum(&bad, b) != 0;
        }
        assert_true(caught);
        buf[i] ^= 0x5A;
    }
    free(docs); free(tfs); free(lens); free(buf);
}

static void test_postings_roundtrip(void **state)
{
    (void)state;
    roundtrip(9, 10, 3, 7);
    roundtrip(10, 10, 3, 8);
    roundtrip(1000, 2, 40, 9);
    roundtrip(1, 10, 3, 1);
    roundtrip(127, 10, 3, 2);
    roundtrip(128, 1, 1, 3);
    roundtrip(129, 1000, 50, 4);
    roundtrip(5000, 3, 1000000, 5);
    roundtrip(300, 150000, 2, 6);        /* gaps needing 3 bytes */
}

/* The delta decoder's gap summary: OR of (gap - 1) over every gap but the
 * first, for SIMD quads and the scalar tail alike. */
static void test_svb_gaps_or(void **state)
{
    (void)state;
    static const uint32_t cases[][9] = {
        { 7, 1, 2, 3, 1, 5, 1, 1, 9 },
        { 1u << 30, 1, 1, 1, 1, 1, 1, 1, 1 },          /* the first gap is not checked */
        { 7, 1, (1u << 25) + 1, 3, 1, 1, 1, 1, 1 },    /* too large, in a quad */
        { 7, 1, 1, 3, 1, 1, 1, 1, (1u << 25) + 1 },    /* too large, in the tail */
        { 7, 1, 1, 0, 1, 1, 1, 1, 1 },                 /* zero, in a quad */
        { 7, 1, 1, 1, 1, 1, 1, 1, 0 },                 /* zero, in the tail */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        unsigned char buf[3 + 9 * 4 + 16] = { 0xFF, 0xFF, 0x03 };   /* 4-byte codes */
        uint32_t expect_or = 0, prev = 100, sum = prev, out[12];   /* 9 rounded up to 4 */
        for (int j = 0; j < 9; j++) {
            lx_st32(buf + 3 + 4 * j, cases[c][j]);
            if (j)
                expect_or |= cases[c][j] - 1;
        }
        uint32_t gor = 12345;
        assert_int_equal(idx_svb_delta_decode(buf, out, 9, prev, &gor), 3 + 9 * 4);
        assert_int_equal(gor, expect_or);
        for (int j = 0; j < 9; j++) {
            sum += cases[c][j];
            assert_int_equal(out[j], sum);
        }
        assert_int_equal((gor >> 25) == 0, c < 2);
    }
}

static void test_postings_rejects_garbage(void **state)
{
    (void)state;
    unsigned char buf[64] = { 0 };
    idx_plist pl;
    assert_int_equal(idx_plist_parse(buf, 10, &pl), LX_E_CORRUPT);
    assert_int_equal(idx_plist_parse(buf, sizeof buf, &pl), LX_E_CORRUPT);
    /* A valid list whose block entry lies about its length. */
    uint32_t docs[3] = { 1, 5, 9 }, tfs[3] = { 1, 2, 3 }, lens[10] = { 5, 5, 5, 5, 5, 5, 5, 5, 5, 5 };
    unsigned char enc[256];
    size_t sz = idx_plist_encode(docs, tfs, 3, lens, 0, 0.9f, 0.4f, 5.0f, enc);
    assert_int_equal(idx_plist_parse(enc, sz, &pl), 0);
    pl.seg_ndocs = 10;
    uint32_t od[128], ot[128];
    assert_int_equal(idx_block_decode(&pl, 0, od, ot), 3);
    assert_int_equal(idx_block_decode(&pl, 1, od, ot), LX_E_CORRUPT);   /* no such block */
    unsigned char *e = enc + IDX_PLIST_HEADER;
    e[22] = 200;                                  /* doc_bytes beyond the block */
    assert_int_equal(idx_block_decode(&pl, 0, od, ot), LX_E_CORRUPT);
    assert_int_equal(idx_block_verify_checksum(&pl, 0), LX_E_CORRUPT);
    /* Outside the segment: a doc past seg_ndocs. */
    sz = idx_plist_encode(docs, tfs, 3, lens, 0, 0.9f, 0.4f, 5.0f, enc);
    assert_int_equal(idx_plist_parse(enc, sz, &pl), 0);
    pl.seg_ndocs = 9;
    assert_int_equal(idx_block_decode(&pl, 0, od, ot), LX_E_CORRUPT);
}

/* ---- environment ------------------------------------------------------------------- */

static void test_env_create_open_errors(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[512], err[256];
    idx_env *env = create_index(dir, "a");
    idx_env_close(env);
    snprintf(path, sizeof path, "%s/a", dir);
    assert_int_equal(idx_env_open(path, IDX_CREATE, NULL, &env, err, sizeof err), LX_E_EXISTS);
    assert_int_equal(idx_env_open(path, IDX_RDONLY, NULL, &env, err, sizeof err), 0);
    assert_string_equal(idx_env_fields(env), "title,text");
    assert_string_equal(idx_env_analyzer_desc(env), "stemmer=porter;stopwords=lucene;possessive=1");
    idx_env_close(env);

    /* A directory with other files is not an index and is left alone. */
    snprintf(path, sizeof path, "%s/other", dir);
    assert_int_equal(system("true"), 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && echo keep > '%s/notes.txt'", path, path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(idx_env_open(path, 0, NULL, &env, err, sizeof err), LX_E_NOTINDEX);
    assert_non_null(strstr(err, "not a lexis index"));
    assert_int_equal(idx_env_open(path, IDX_CREATE, NULL, &env, err, sizeof err), LX_E_NOTINDEX);
    snprintf(cmd, sizeof cmd, "test \"$(cat '%s/notes.txt')\" = keep", path);
    assert_int_equal(system(cmd), 0);

    /* A data.mdb that is not LMDB. */
    snprintf(path, sizeof path, "%s/fake", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && head -c 8192 /dev/zero > '%s/data.mdb'", path, path);
    assert_int_equal(system(cmd), 0);
    assert_int_not_equal(idx_env_open(path, 0, NULL, &env, err, sizeof err), 0);

    /* Missing path. */
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(idx_env_open(path, 0, NULL, &env, err, sizeof err), LX_E_NOTFOUND);

    /* Bad settings. */
    idx_create_params cp = idx_create_default_params();
    cp.analyzer.stemmer = "klingon";
    snprintf(path, sizeof path, "%s/bad", dir);
    assert_int_not_equal(idx_env_open(path, IDX_CREATE, &cp, &env, err, sizeof err), 0);
    cp = idx_create_default_params();
    cp.b = 2;
    snprintf(path, sizeof path, "%s/bad2", dir);
    assert_int_equal(idx_env_open(path, IDX_CREATE, &cp, &env, err, sizeof err), LX_E_INVAL);
    remove_tmpdir(dir);
}

/* ---- writer and reader ---------------------------------------------------------------- */

/* An env opened on a directory that `lexis build --force` has since
 * replaced (the two directories exchanged, the old one removed) must not
 * get a writer: its commits would go to files nobody reads again. */
static void test_writer_refuses_replaced_index(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[512], fresh[512], cmd[2700], err[256];
    idx_env *old_env = create_index(dir, "idx");
    idx_env *other = create_index(dir, "new");
    idx_env_close(other);
    snprintf(path, sizeof path, "%s/idx", dir);
    snprintf(fresh, sizeof fresh, "%s/new", dir);
    /* as build --force swaps: path gets the new index, the old one goes */
    snprintf(cmd, sizeof cmd, "mv '%s' '%s.old' && mv '%s' '%s' && rm -r '%s.old'", path, path, fresh, path, path);
    assert_int_equal(system(cmd), 0);
    idx_writer *w = NULL;
    assert_int_equal(idx_writer_open(old_env, NULL, &w), LX_E_BUSY);
    assert_null(w);
    assert_non_null(strstr(idx_env_errmsg(old_env), "replaced"));
    idx_env_close(old_env);
    /* opened again, the index at the path takes a writer */
    idx_env *env;
    assert_int_equal(idx_env_open(path, 0, NULL, &env, err, sizeof err), 0);
    assert_int_equal(idx_writer_open(env, NULL, &w), 0);
    add_doc(w, "d1", "title", "text after the swap");
    assert_int_equal(idx_writer_close(w), 0);
    idx_env_close(env);
    remove_tmpdir(dir);
}

static void test_write_read_replace_delete(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    idx_env *env = create_index(dir, "i");
    idx_writer *w;
    idx_writer_params wp = idx_writer_default_params();
    wp.batch_docs = 2;                    /* several segments */
    assert_int_equal(idx_writer_open(env, &wp, &w), 0);
    add_doc(w, "d1", "Fast JSON parser", "A parser for JSON written in C.");
    add_doc(w, "d2", "HTTP server", "A small web server.");
    add_doc(w, "d3", "Parsers", "Parsing JSON and XML quickly; parsers everywhere.");
    add_doc(w, "d4", "", "");
    /* A second writer is refused while this one holds the lock. */
    idx_writer *w2;
    assert_int_equal(idx_writer_open(env, NULL, &w2), LX_E_BUSY);
    assert_int_equal(idx_writer_close(w), 0);

    idx_reader *r;
    assert_int_equal(idx_reader_open(env, &r), 0);
    const idx_stats *st = idx_reader_stats(r);
    assert_int_equal(st->ndocs, 4);
    assert_int_equal(st->nsegments, 2);
    assert_int_equal(term_df(r, "json"), 2);
    assert_int_equal(term_df(r, "parser"), 2);   /* d1 + d3 (parsers -> parser) */
    assert_int_equal(term_df(r, "the"), 0);
    uint32_t id;
    assert_int_equal(idx_reader_lookup(r, "d3", 2, &id), 0);
    idx_doc d;
    assert_int_equal(idx_reader_doc(r, id, &d), 0);
    assert_int_equal(d.id_len, 2);
    assert_memory_equal(d.id, "d3", 2);
    assert_int_equal(d.nfields, 2);
    assert_int_equal(d.value_lens[0], strlen("Parsers"));
    assert_int_equal(idx_reader_doclen(r, id), d.len);
    assert_int_equal(idx_reader_lookup(r, "nope", 4, &id), LX_E_NOTFOUND);
    idx_reader_close(r);
    assert_check_clean(env);

    /* Replace d1 (committed) and d5 twice in one batch; delete d2. */
    assert_int_equal(idx_writer_open(env, NULL, &w), 0);
    add_doc(w, "d1", "Slow YAML parser", "Now about YAML.");
    add_doc(w, "d5", "first", "zebra");
    add_doc(w, "d5", "second", "giraffe");
    assert_int_equal(idx_writer_delete(w, "d2", 2), 0);
    assert_int_equal(idx_writer_delete(w, "zz", 2), LX_E_NOTFOUND);
    assert_int_equal(idx_writer_close(w), 0);
    assert_int_equal(idx_reader_open(env, &r), 0);
    st = idx_reader_stats(r);
    assert_int_equal(st->ndocs, 4);          /* d1 d3 d4 d5 */
    assert_int_equal(st->ndeleted, 2);       /* old d1, d2 */
    assert_int_equal(term_df(r, "json"), 1);
    assert_int_equal(term_df(r, "yaml"), 1);
    assert_int_equal(term_df(r, "zebra"), 0);
    assert_int_equal(term_df(r, "giraff"), 1);
    assert_int_equal(term_df(r, "server"), 0);
    assert_int_equal(idx_reader_lookup(r, "d2", 2, &id), LX_E_NOTFOUND);
    assert_int_equal(idx_reader_lookup(r, "d1", 2, &id), 0);
    assert_true(id >= 4);
    assert_true(idx_reader_is_deleted(r, 0));
    idx_reader_close(r);
    assert_check_clean(env);
    idx_env_close(env);
    remove_tmpdir(dir);
}

/* Segment values (format 4): u16 lengths, the long ones in a table. */
static void test_segment_lengths(void **state)
{
    (void)state;
    const uint32_t lens[] = { 0, 1, 65534, 65535, 65536, 7, UINT32_MAX, 300 };
    for (uint32_t n = 0; n <= 8; n++) {           /* odd and even counts: padding */
        size_t size = idx_segment_size(lens, n);
        unsigned char *v = malloc(size + 8);
        idx_segment_write(v, size, 100, n, 0.9f, 0.4f, 12.5f, lens);
        idx_segment s;
        assert_int_equal(idx_segment_parse(7, v, size, &s), 0);
        assert_int_equal(s.seg, 7);
        assert_int_equal(s.base, 100);
        assert_int_equal(s.ndocs, n);
        assert_true(s.avgdl == 12.5f);
        assert_int_equal(s.doclens.nlong, (n > 3) + (n > 4) + (n > 6));
        for (uint32_t i = 0; i < n; i++)
            assert_int_equal(idx_doclens_get(&s.doclens, i), lens[i]);
        /* The checksum covers the lengths, padding and table. */
        uint64_t h = idx_hash64_seed(v + IDX_SEG_HEADER, size - IDX_SEG_HEADER, idx_hash64(v, 20));
        assert_int_equal((uint32_t)h, lx_ld32(v + 20));
        /* Sizes that do not hold together. */
        assert_int_equal(idx_segment_parse(7, v, size - 1, &s), LX_E_CORRUPT);
        assert_int_equal(idx_segment_parse(7, v, size + 4, &s), LX_E_CORRUPT);
        if (size >= 8)
            assert_int_equal(idx_segment_parse(7, v, size - 8, &s), n > 3 ? 0 : LX_E_CORRUPT);
        free(v);
    }
    /* A damaged table: out of order, past ndocs, or a short "long" length. */
    size_t size = idx_segment_size(lens, 8);
    unsigned char *v = malloc(size);
    unsigned char *table = v + size - 24;         /* offsets 3, 4, 6 */
    idx_segment s;
    idx_segment_write(v, size, 0, 8, 0.9f, 0.4f, 10, lens);
    lx_st32(table + 8, 3);
    assert_int_equal(idx_segment_parse(0, v, size, &s), LX_E_CORRUPT);
    idx_segment_write(v, size, 0, 8, 0.9f, 0.4f, 10, lens);
    lx_st32(table + 16, 8);
    assert_int_equal(idx_segment_parse(0, v, size, &s), LX_E_CORRUPT);
    idx_segment_write(v, size, 0, 8, 0.9f, 0.4f, 10, lens);
    lx_st32(table + 4, 65534);
    assert_int_equal(idx_segment_parse(0, v, size, &s), LX_E_CORRUPT);
    /* A length marked long that the table lacks reads as 65,535, no
     * further (idx_check compares every length with its document's). */
    idx_segment_write(v, size, 0, 8, 0.9f, 0.4f, 10, lens);
    lx_st16(v + IDX_SEG_HEADER + 2 * 7, IDX_DOCLEN_LONG);
    assert_int_equal(idx_segment_parse(0, v, size, &s), 0);
    assert_int_equal(idx_doclens_get(&s.doclens, 7), IDX_DOCLEN_LONG);
    free(v);
}

/* Documents of 65,535 terms and more keep their exact length through the
 * writer, a merge and the checker. */
static void test_long_documents(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    idx_env *env = create_index(dir, "l");
    idx_writer *w;
    idx_writer_params wp = idx_writer_default_params();
    wp.batch_docs = 2;
    assert_int_equal(idx_writer_open(env, &wp, &w), 0);
    const uint32_t words[] = { 3, 65534, 65535, 65536, 70001 };
    const char *ids[] = { "s", "a", "b", "c", "d" };
    char *text = malloc(6 * 70001 + 1);
    for (int i = 0; i < 5; i++) {
        char *p = text;
        for (uint32_t j = 0; j < words[i]; j++)
            p += sprintf(p, "%s ", j % 2 ? "kiwi" : "mango");
        add_doc(w, ids[i], "", text);
    }
    free(text);
    assert_int_equal(idx_writer_close(w), 0);
    for (int pass = 0; pass < 2; pass++) {
        if (pass) {
            assert_int_equal(idx_writer_open(env, NULL, &w), 0);
            uint32_t before;
            assert_int_equal(idx_writer_merge(w, &before), 0);
            assert_int_equal(before, 3);
            assert_int_equal(idx_writer_close(w), 0);
        }
        idx_reader *r;
        assert_int_equal(idx_reader_open(env, &r), 0);
        assert_int_equal(idx_reader_stats(r)->nsegments, pass ? 1 : 3);
        for (int i = 0; i < 5; i++) {
            uint32_t id;
            idx_doc d;
            assert_int_equal(idx_reader_lookup(r, ids[i], 1, &id), 0);
            assert_int_equal(idx_reader_doc(r, id, &d), 0);
            assert_int_equal(d.len, words[i]);
            assert_int_equal(idx_reader_doclen(r, id), words[i]);
        }
        idx_reader_close(r);
        assert_check_clean(env);
    }
    idx_env_close(env);
    remove_tmpdir(dir);
}

/* A segment's dictionary, built with small chunks: every term found by its
 * text and by its id, with its own list; absent ones not; damage refused. */
static void test_segment_dictionary(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    idx_env *env = create_index(dir, "d");
    enum { NT = 3000 };
    uint32_t lens[64], docs[8], tfs[8];
    for (int i = 0; i < 64; i++)
        lens[i] = 10 + (uint32_t)i;
    unsigned char *enc = malloc(idx_plist_max_size(8));
    idx_stxn *t;
    assert_int_equal(idx_store_begin(env->store, 1, &t), 0);
    idx_dict_builder b;
    idx_dict_builder_init(&b, t, 42, 512);
    char text[32];
    for (uint32_t i = 0; i < NT; i++) {
        uint32_t n = i % 5 + 1;
        for (uint32_t j = 0; j < n; j++) {
            docs[j] = 100 + (i + 7 * j) % 60 / 5 * 5 + j;   /* increasing */
            tfs[j] = j + 1;
        }
        for (uint32_t j = 1; j < n; j++)
            if (docs[j] <= docs[j - 1])
                docs[j] = docs[j - 1] + 1;
        size_t sz = idx_plist_encode(docs, tfs, n, lens, 100, 0.9f, 0.4f, 20.0f, enc);
        int len = snprintf(text, sizeof text, "t%u%s", i, i % 3 ? "" : "-longer-text");
        assert_int_equal(idx_dict_builder_add(&b, 2 * i + 1, text, (size_t)len, enc, sz), 0);
    }
    /* ids must increase */
    assert_int_equal(idx_dict_builder_add(&b, 5, "late", 4, enc, 30), LX_E_INVAL);
    assert_int_equal(idx_dict_builder_finish(&b), 0);
    idx_dict_builder_free(&b);
    assert_int_equal(idx_store_commit(t), 0);

    assert_int_equal(idx_store_begin(env->store, 0, &t), 0);
    unsigned char key[8];
    idx_val v;
    lx_st32be(key, 42);
    assert_int_equal(idx_store_get(t, IDX_DB_DICTS, key, 4, &v), 0);
    idx_dict d;
    assert_int_equal(idx_dict_parse(v.data, v.size, &d), 0);
    assert_int_equal(d.nterms, NT);
    assert_true(d.nchunks > 10);                 /* 512-byte chunks */
    idx_val *chunks = calloc(d.nchunks, sizeof *chunks);
    for (uint32_t c = 0; c < d.nchunks; c++) {
        lx_st32be(key + 4, c);
        assert_int_equal(idx_store_get(t, IDX_DB_POSTINGS, key, 8, &chunks[c]), 0);
    }
    d.chunks = chunks;
    assert_int_equal(idx_dict_verify(&d), 0);
    for (uint32_t i = 0; i < NT; i++) {
        int len = snprintf(text, sizeof text, "t%u%s", i, i % 3 ? "" : "-longer-text");
        uint32_t e, e2;
        assert_int_equal(idx_dict_find(&d, text, (size_t)len, idx_hash64(text, (size_t)len), &e), 0);
        assert_int_equal(idx_dict_term_id(&d, e), 2 * i + 1);
        assert_int_equal(idx_dict_find_id(&d, 2 * i + 1, &e2), 0);
        assert_int_equal(e2, e);
        assert_int_equal(idx_dict_find_id(&d, 2 * i, &e2), LX_E_NOTFOUND);
        const void *list;
        size_t size;
        idx_plist pl;
        assert_int_equal(idx_dict_list(&d, e, &list, &size), 0);
        assert_int_equal(idx_plist_parse(list, size, &pl), 0);
        assert_int_equal(pl.n, i % 5 + 1);
        snprintf(text, sizeof text, "x%u", i);
        assert_int_equal(idx_dict_find(&d, text, strlen(text), idx_hash64(text, strlen(text)), &e2),
                         LX_E_NOTFOUND);
    }

    /* Damage: sizes, the table's size, a slot past the entries, a byte of
     * a text (the checksum), a list past its chunk. */
    unsigned char *copy = malloc(v.size);
    memcpy(copy, v.data, v.size);
    idx_dict dc;
    assert_int_equal(idx_dict_parse(copy, v.size - 1, &dc), LX_E_CORRUPT);
    assert_int_equal(idx_dict_parse(copy, 10, &dc), LX_E_CORRUPT);
    lx_st32(copy + 4, d.nslots - 1);
    assert_int_equal(idx_dict_parse(copy, v.size, &dc), LX_E_CORRUPT);
    lx_st32(copy + 4, d.nslots);
    assert_int_equal(idx_dict_parse(copy, v.size, &dc), 0);
    dc.chunks = chunks;
    uint64_t h = idx_hash64("t1", 2);
    uint32_t e, s = (uint32_t)h & (d.nslots - 1);
    assert_int_equal(idx_dict_find(&dc, "t1", 2, h, &e), 0);
    while (lx_ld32(copy + 24 + 8 * (size_t)s + 4) != e + 1)
        s = (s + 1) & (d.nslots - 1);
    lx_st32(copy + 24 + 8 * (size_t)s + 4, d.nterms + 1);
    assert_int_equal(idx_dict_find(&dc, "t1", 2, h, &e), LX_E_CORRUPT);
    assert_int_equal(idx_dict_verify(&dc), LX_E_CORRUPT);
    memcpy(copy, v.data, v.size);
    copy[v.size - 1] ^= 1;
    assert_int_equal(idx_dict_verify(&dc), LX_E_CORRUPT);
    memcpy(copy, v.data, v.size);
    unsigned char *entry = (unsigned char *)dc.entries + 24 * (size_t)e;
    lx_st32(entry + 8, (uint32_t)chunks[lx_ld32(entry + 4)].size);     /* offset at the end */
    const void *list;
    size_t size;
    assert_int_equal(idx_dict_list(&dc, e, &list, &size), LX_E_CORRUPT);
    lx_st32(entry + 4, d.nchunks);                                    /* no such chunk */
    assert_int_equal(idx_dict_list(&dc, e, &list, &size), LX_E_CORRUPT);
    free(copy);
    free(chunks);
    free(enc);
    idx_store_abort(t);
    idx_env_close(env);
    remove_tmpdir(dir);
}

/* idx_reader_find over several segments: the lists idx_reader_postings
 * gives, and the live df (from the terms database once documents are
 * deleted). */
static void test_find_by_text(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    idx_env *env = create_index(dir, "f");
    idx_writer *w;
    add_grouped_docs(env, 9);
    for (int pass = 0; pass < 2; pass++) {
        idx_reader *r;
        assert_int_equal(idx_reader_open(env, &r), 0);
        idx_plist a[4], b[4];
        idx_term_info ti;
        uint32_t df;
        assert_int_equal(idx_reader_term(r, "common", 6, &ti), 0);
        assert_int_equal(idx_reader_find(r, "common", 6, idx_term_hash("common", 6), &df, a, 4), 3);
        assert_int_equal(idx_reader_postings(r, ti.term_id, b, 4), 3);
        for (int i = 0; i < 3; i++) {
            assert_ptr_equal(a[i].entries, b[i].entries);
            assert_int_equal(a[i].seg_base, 3 * (uint32_t)i);
        }
        assert_int_equal(df, pass ? 8 : 9);
        assert_int_equal(idx_reader_find(r, "common", 6, idx_term_hash("common", 6), &df, a, 2), LX_E_TOOBIG);
        assert_int_equal(idx_reader_find(r, "grp1", 4, idx_term_hash("grp1", 4), &df, a, 4), 2);    /* docs 1 and 5 */
        assert_int_equal(df, 2);
        assert_int_equal(idx_reader_find(r, "uniq4", 5, idx_term_hash("uniq4", 5), &df, a, 4), 1);
        assert_int_equal(df, pass ? 0 : 1);           /* deleted: its list stays */
        assert_int_equal(idx_reader_find(r, "absent", 6, idx_term_hash("absent", 6), &df, a, 4), LX_E_NOTFOUND);
        assert_int_equal(idx_reader_find(r, "commo", 5, idx_term_hash("commo", 5), &df, a, 4), LX_E_NOTFOUND);
        idx_reader_close(r);
        if (pass == 0) {
            assert_int_equal(idx_writer_open(env, NULL, &w), 0);
            assert_int_equal(idx_writer_delete(w, "d4", 2), 0);
            assert_int_equal(idx_writer_close(w), 0);
        }
    }
    assert_check_clean(env);
    idx_env_close(env);
    remove_tmpdir(dir);
}

static void test_merge_segments(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    idx_env *env = create_index(dir, "m");
    idx_writer *w;
    add_grouped_docs(env, 20);
    assert_int_equal(idx_writer_open(env, NULL, &w), 0);
    assert_int_equal(idx_writer_delete(w, "d3", 2), 0);
    assert_int_equal(idx_writer_delete(w, "d7", 2), 0);
    add_doc(w, "d4", "t", "replaced text");
    uint32_t before;
    assert_int_equal(idx_writer_merge(w, &before), 0);
    assert_int_equal(before, 8);       /* 7 from the batches of 3, 1 from the add */
    assert_int_equal(idx_writer_close(w), 0);
    assert_check_clean(env);
    idx_reader *r;
    assert_int_equal(idx_reader_open(env, &r), 0);
    const idx_stats *st = idx_reader_stats(r);
    assert_int_equal(st->nsegments, 1);
    assert_int_equal(st->ndocs, 18);
    assert_int_equal(st->ndeleted, 0);
    assert_int_equal(term_df(r, "common"), 17);
    assert_int_equal(term_df(r, "uniq3"), 0);   /* only in d3, deleted: term removed */
    assert_int_equal(term_df(r, "replac"), 1);
    idx_term_info ti;
    assert_int_equal(idx_reader_term(r, "uniq3", 5, &ti), LX_E_NOTFOUND);
    idx_reader_close(r);
    idx_env_close(env);
    remove_tmpdir(dir);
}

static void test_writer_rejects_bad_ids(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    idx_env *env = create_index(dir, "i");
    idx_writer *w;
    assert_int_equal(idx_writer_open(env, NULL, &w), 0);
    const char *names[] = { "title" };
    const char *vals[] = { "x" };
    size_t lens[] = { 1 };
    char longid[300];
    memset(longid, 'a', sizeof longid);
    assert_int_equal(idx_writer_add(w, "", 0, names, vals, lens, 1), LX_E_INPUT);
    assert_int_equal(idx_writer_add(w, longid, sizeof longid, names, vals, lens, 1), LX_E_INPUT);
    assert_int_equal(idx_writer_add(w, "a\0b", 3, names, vals, lens, 1), LX_E_INPUT);
    assert_int_equal(idx_writer_add(w, "ok", 2, names, vals, lens, 1), 0);
    assert_int_equal(idx_writer_close(w), 0);
    assert_check_clean(env);
    idx_env_close(env);
    remove_tmpdir(dir);
}

static void test_jsonl_ingest_reports(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    idx_env *env = create_index(dir, "i");
    const char input[] =
        "{\"_id\":\"a\",\"title\":\"one\",\"text\":\"alpha\"}\n"
        "\n"
        "{\"_id\":\"b\",\"title\":\"two\"\n"                     /* malformed */
        "{\"_id\":7,\"text\":\"integer id\"}\n"
        "[1,2]\n"
        "{\"title\":\"no id\"}\n"
        "{\"_id\":\"c\",\"title\":3}\n"                          /* non-string field */
        "{\"_id\":\"a\",\"title\":\"one again\",\"text\":null}\r\n";
    FILE *f = fmemopen((void *)input, sizeof input - 1, "r");
    FILE *log = tmpfile();
    idx_writer_params wp = idx_writer_default_params();
    wp.log = log;
    idx_writer *w;
    assert_int_equal(idx_writer_open(env, &wp, &w), 0);
    idx_add_report rep = { 0 };
    assert_int_equal(idx_writer_add_jsonl(w, f, "in.jsonl", &rep), 0);
    assert_int_equal(idx_writer_close(w), 0);
    fclose(f);
    assert_int_equal(rep.lines, 8);
    assert_int_equal(rep.indexed, 3);
    assert_int_equal(rep.skipped, 4);
    assert_int_equal(rep.replaced, 1);
    char buf[2048];
    rewind(log);
    size_t n = fread(buf, 1, sizeof buf - 1, log);
    buf[n] = 0;
    fclose(log);
    assert_non_null(strstr(buf, "in.jsonl:3:"));
    assert_non_null(strstr(buf, "in.jsonl:5:"));
    assert_non_null(strstr(buf, "in.jsonl:6: missing \"_id\""));
    assert_non_null(strstr(buf, "in.jsonl:7: field \"title\" must be a string"));
    idx_reader *r;
    assert_int_equal(idx_reader_open(env, &r), 0);
    assert_int_equal(idx_reader_stats(r)->ndocs, 2);
    uint32_t id;
    assert_int_equal(idx_reader_lookup(r, "7", 1, &id), 0);
    idx_reader_close(r);

    /* --strict: stops at the first bad line, keeping the ones before. */
    const char strict_in[] =
        "{\"_id\":\"s1\",\"text\":\"kept\"}\n"
        "not json\n"
        "{\"_id\":\"s2\",\"text\":\"never read\"}\n";
    f = fmemopen((void *)strict_in, sizeof strict_in - 1, "r");
    wp.strict = 1;
    wp.log = fopen("/dev/null", "w");
    assert_int_equal(idx_writer_open(env, &wp, &w), 0);
    memset(&rep, 0, sizeof rep);
    assert_int_equal(idx_writer_add_jsonl(w, f, "s.jsonl", &rep), LX_E_INPUT);
    assert_int_equal(idx_writer_close(w), 0);
    fclose(f);
    fclose(wp.log);
    assert_int_equal(idx_reader_open(env, &r), 0);
    assert_int_equal(idx_reader_lookup(r, "s1", 2, &id), 0);
    assert_int_equal(idx_reader_lookup(r, "s2", 2, &id), LX_E_NOTFOUND);
    idx_reader_close(r);
    assert_check_clean(env);
    idx_env_close(env);
    remove_tmpdir(dir);
}

static void test_map_grows_on_demand(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    idx_env *env = create_index(dir, "big");
    idx_writer *w;
    idx_writer_params wp = idx_writer_default_params();
    wp.mem_budget = (size_t)24 << 20;     /* a few commits, each growing the map */
    assert_int_equal(idx_writer_open(env, &wp, &w), 0);
    /* ~120 MB of stored text that zstd cannot shrink much (random
     * punctuation, 5 bits a byte, with a word now and then): past the
     * initial 64 MiB map even compressed. */
    size_t len = 1 << 20;
    char *text = malloc(len + 1);
    static const char punct[] = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        text[i] = (i % 64 < 5) ? "word "[i % 64] : punct[x % 32];
    }
    text[len] = 0;
    char id[16];
    for (int i = 0; i < 120; i++) {
        snprintf(id, sizeof id, "doc%d", i);
        add_doc(w, id, "big", text);
    }
    assert_int_equal(idx_writer_close(w), 0);
    free(text);
    idx_reader *r;
    assert_int_equal(idx_reader_open(env, &r), 0);
    assert_int_equal(idx_reader_stats(r)->ndocs, 120);
    idx_reader_close(r);
    idx_env_close(env);
    remove_tmpdir(dir);
}

/* Stored documents: compressed with a dictionary trained on the first large
 * batch, read back exactly (also by a fresh environment), replaced and
 * deleted through the compressed form, and a damaged value is an error. */
static void make_text(char *buf, size_t cap, unsigned i)
{
    static const char *words[] = { "parser", "library", "json", "server", "fast", "small",
                                   "tool", "network", "data", "format", "python", "module" };
    size_t n = 0;
    unsigned x = i * 2654435761u + 1;
    for (unsigned k = 0; k < 20 + i % 30 && n + 32 < cap; k++) {
        x = x * 1103515245u + 12345u;
        n += (size_t)snprintf(buf + n, cap - n, "%s%s %u", k ? " " : "", words[(x >> 16) % 12],
                              (x >> 8) % 100);
    }
}

static uint8_t doc_codec(idx_reader *r, uint32_t docid)
{
    unsigned char key[4];
    idx_val v;
    lx_st32be(key, docid);
    assert_int_equal(idx_store_get(idx_reader_txn(r), IDX_DB_DOCS, key, 4, &v), 0);
    uint16_t l;
    memcpy(&l, (const char *)v.data + IDX_DOC_HEADER, 2);
    return ((const uint8_t *)v.data)[IDX_DOC_HEADER + 2 + l];
}

static void test_stored_documents_compressed(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    idx_env *env = create_index(dir, "z");
    idx_writer *w;
    char id[16], title[32], text[1024];
    assert_int_equal(idx_writer_open(env, NULL, &w), 0);
    for (unsigned i = 0; i < 600; i++) {
        snprintf(id, sizeof id, "doc%u", i);
        snprintf(title, sizeof title, "title %u", i);
        make_text(text, sizeof text, i);
        add_doc(w, id, title, text);
    }
    assert_int_equal(idx_writer_close(w), 0);
    /* Replace and delete documents compressed with the dictionary: the
     * writer reads them back to take their terms out of the statistics. */
    assert_int_equal(idx_writer_open(env, NULL, &w), 0);
    for (unsigned i = 0; i < 600; i += 7) {
        snprintf(id, sizeof id, "doc%u", i);
        make_text(text, sizeof text, i + 1000);
        add_doc(w, id, "replaced", text);
    }
    assert_int_equal(idx_writer_delete(w, "doc5", 4), 0);
    assert_int_equal(idx_writer_close(w), 0);
    assert_check_clean(env);
    idx_env_close(env);

    char path[512];
    snprintf(path, sizeof path, "%s/z", dir);
    assert_int_equal(idx_env_open(path, IDX_RDONLY, NULL, &env, NULL, 0), 0);
    idx_reader *r;
    assert_int_equal(idx_reader_open(env, &r), 0);
    assert_int_equal(idx_reader_stats(r)->ndocs, 599);
    int dict_docs = 0;
    for (unsigned i = 0; i < 600; i++) {
        uint32_t docid;
        snprintf(id, sizeof id, "doc%u", i);
        int rc = idx_reader_lookup(r, id, strlen(id), &docid);
        if (i == 5) {
            assert_int_equal(rc, LX_E_NOTFOUND);
            continue;
        }
        assert_int_equal(rc, 0);
        idx_doc d;
        assert_int_equal(idx_reader_doc(r, docid, &d), 0);
        assert_int_equal(d.nfields, 2);
        make_text(text, sizeof text, i % 7 ? i : i + 1000);
        snprintf(title, sizeof title, "title %u", i);
        const char *want_title = i % 7 ? title : "replaced";
        assert_int_equal(d.value_lens[0], strlen(want_title));
        assert_memory_equal(d.values[0], want_title, d.value_lens[0]);
        assert_int_equal(d.value_lens[1], strlen(text));
        assert_memory_equal(d.values[1], text, d.value_lens[1]);
        const char *xid;
        size_t xl;
        assert_int_equal(idx_reader_doc_id(r, docid, &xid, &xl), 0);
        assert_int_equal(xl, strlen(id));
        assert_memory_equal(xid, id, xl);
        dict_docs += doc_codec(r, docid) == IDX_DOC_ZSTD_DICT;
    }
    assert_true(dict_docs >= 500);        /* the first batch trained a dictionary */

    /* Every flipped byte of a compressed value decodes to an error or to
     * some document, never past its bounds (ASan watches). */
    uint32_t docid;
    assert_int_equal(idx_reader_lookup(r, "doc3", 4, &docid), 0);
    unsigned char key[4];
    idx_val v;
    lx_st32be(key, docid);
    assert_int_equal(idx_store_get(idx_reader_txn(r), IDX_DB_DOCS, key, 4, &v), 0);
    unsigned char *copy = malloc(v.size);
    memcpy(copy, v.data, v.size);
    idx_docdec dec;
    idx_docdec_init(&dec, env);
    int rejected = 0;
    for (size_t i = 4; i < v.size; i++) {
        for (int bit = 0; bit < 8; bit++) {
            copy[i] ^= (unsigned char)(1 << bit);
            idx_doc d;
            rejected += idx_doc_decode(&dec, idx_reader_txn(r), docid, copy, v.size, &d) != 0;
            copy[i] ^= (unsigned char)(1 << bit);
        }
        /* truncated */
        idx_doc d;
        assert_int_not_equal(idx_doc_decode(&dec, idx_reader_txn(r), docid, copy, i, &d), 0);
    }
    assert_true(rejected > 0);
    idx_docdec_free(&dec);
    free(copy);
    idx_reader_close(r);
    idx_env_close(env);
    remove_tmpdir(dir);
}

static long file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* A build in many batches, merged: the runs' pages are free and the file
 * keeps them until idx_writer_compact rewrites it. Everything committed
 * reads back the same; the writer refuses documents afterwards (they would
 * go to the replaced file); a second compaction finds nothing to gain. */
static void test_compact_after_merge(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    idx_env *env = create_index(dir, "c");
    idx_writer *w;
    idx_writer_params wp = idx_writer_default_params();
    wp.batch_docs = 40;
    char id[16], text[1024], path[512];
    assert_int_equal(idx_writer_open(env, &wp, &w), 0);
    for (unsigned i = 0; i < 2000; i++) {
        snprintf(id, sizeof id, "doc%u", i);
        make_text(text, sizeof text, i);
        add_doc(w, id, "t", text);
    }
    uint32_t before;
    assert_int_equal(idx_writer_merge(w, &before), 0);
    assert_true(before > 40);
    snprintf(path, sizeof path, "%s/c/data.mdb", dir);
    long size0 = file_size(path);
    uint64_t saved = 0;
    assert_int_equal(idx_writer_compact(w, &saved), 0);
    assert_true(saved > 0);
    assert_int_equal(file_size(path), size0 - (long)saved);
    add_doc(w, "late", "t", "too late");
    assert_int_equal(idx_writer_close(w), LX_E_INVAL);
    idx_env_close(env);

    snprintf(path, sizeof path, "%s/c", dir);
    char err[256];
    assert_int_equal(idx_env_open(path, 0, NULL, &env, err, sizeof err), 0);
    assert_check_clean(env);
    idx_reader *r;
    assert_int_equal(idx_reader_open(env, &r), 0);
    assert_int_equal(idx_reader_stats(r)->ndocs, 2000);
    assert_int_equal(idx_reader_stats(r)->nsegments, 1);
    uint32_t docid;
    assert_int_equal(idx_reader_lookup(r, "late", 4, &docid), LX_E_NOTFOUND);
    for (unsigned i = 0; i < 2000; i += 97) {
        snprintf(id, sizeof id, "doc%u", i);
        assert_int_equal(idx_reader_lookup(r, id, strlen(id), &docid), 0);
        idx_doc d;
        assert_int_equal(idx_reader_doc(r, docid, &d), 0);
        make_text(text, sizeof text, i);
        int found = 0;
        for (uint32_t f = 0; f < d.nfields; f++)
            if (d.value_lens[f] == strlen(text) && memcmp(d.values[f], text, strlen(text)) == 0)
                found = 1;
        assert_true(found);
    }
    idx_reader_close(r);
    assert_int_equal(idx_writer_open(env, NULL, &w), 0);
    assert_int_equal(idx_writer_compact(w, &saved), 0);
    assert_int_equal(saved, 0);
    assert_int_equal(idx_writer_close(w), 0);
    idx_env_close(env);
    remove_tmpdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_postings_roundtrip),
        cmocka_unit_test(test_svb_gaps_or),
        cmocka_unit_test(test_postings_rejects_garbage),
        cmocka_unit_test(test_env_create_open_errors),
        cmocka_unit_test(test_writer_refuses_replaced_index),
        cmocka_unit_test(test_write_read_replace_delete),
        cmocka_unit_test(test_segment_lengths),
        cmocka_unit_test(test_long_documents),
        cmocka_unit_test(test_segment_dictionary),
        cmocka_unit_test(test_find_by_text),
        cmocka_unit_test(test_merge_segments),
        cmocka_unit_test(test_writer_rejects_bad_ids),
        cmocka_unit_test(test_jsonl_ingest_reports),
        cmocka_unit_test(test_map_grows_on_demand),
        cmocka_unit_test(test_stored_documents_compressed),
        cmocka_unit_test(test_compact_after_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
