/* test_bert.c: the BERT encoder against Hugging Face transformers, and the
 * safetensors reader against malformed files.
 *
 * Fixtures (tests/fixtures/bert/<name>/, see its README): tiny random
 * checkpoints from tools/gen-tiny-bert.py and ref.safetensors with the inputs
 * (a right-padded batch and its attention mask) and transformers' outputs:
 * last hidden state, masked-LM logits and the SPLADE max-pool.
 *   CPU model vs transformers:  max abs error <= 1e-4 on every non-padding
 *     position (fast CPU backend and the scalar reference backend).
 *   CUDA model (BF16 weights and activations) vs the CPU model: NMSE < 1e-3
 *     for hidden states and logits, 2e-3 for the SPLADE vector; with F32
 *     weights on CUDA: max abs error <= 1e-4 like the CPU. Skipped (and said
 *     so) without CUDA; LX_REQUIRE_CUDA=1 makes that a failure.
 * Malformed checkpoints (truncated, lying header length or offsets, wrong
 * shapes, unknown dtype, missing tensors, bad config) must fail with a message
 * that names the problem.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kernels/kernels.h"

static const char *const FIXTURES[] = {"tiny-f32", "tiny-odd-bf16", "tiny-f16"};
#define FIXDIR "tests/fixtures/bert/"

typedef struct ref {
    kn_st_file *st;
    int B, L, H, V, S, T;
    int32_t *seq_off, *ids, *types;   /* packed */
    int32_t *row_of;                  /* packed token -> padded row b*L + i */
    const float *hidden, *logits, *splade;
} ref;

static void ref_load(ref *r, const char *name)
{
    char path[512], err[512];
    snprintf(path, sizeof path, FIXDIR "%s/ref.safetensors", name);
    int rc = kn_st_open(&r->st, path, err, sizeof err);
    if (rc != 0)
        fail_msg("%s", err);
    kn_tensor ids, tt, am, hid, lg, sp;
    assert_int_equal(kn_st_get(r->st, "input_ids", &ids), 0);
    assert_int_equal(kn_st_get(r->st, "token_type_ids", &tt), 0);
    assert_int_equal(kn_st_get(r->st, "attention_mask", &am), 0);
    assert_int_equal(kn_st_get(r->st, "hidden", &hid), 0);
    assert_int_equal(kn_st_get(r->st, "logits", &lg), 0);
    assert_int_equal(kn_st_get(r->st, "splade", &sp), 0);
    assert_int_equal(ids.dtype, KN_I32);
    r->B = (int)ids.ne[0];
    r->L = (int)ids.ne[1];
    r->H = (int)hid.ne[2];
    r->V = (int)lg.ne[2];
    r->hidden = hid.data;
    r->logits = lg.data;
    r->splade = sp.data;
    const int32_t *pi = ids.data, *pt = tt.data, *pm = am.data;
    r->seq_off = calloc((size_t)r->B + 1, sizeof(int32_t));
    r->ids = calloc((size_t)(r->B * r->L), sizeof(int32_t));
    r->types = calloc((size_t)(r->B * r->L), sizeof(int32_t));
    r->row_of = calloc((size_t)(r->B * r->L), sizeof(int32_t));
    int t = 0;
    for (int b = 0; b < r->B; b++) {
        for (int i = 0; i < r->L; i++)
            if (pm[b * r->L + i]) {
                r->ids[t] = pi[b * r->L + i];
                r->types[t] = pt[b * r->L + i];
                r->row_of[t] = b * r->L + i;
                t++;
            }
        r->seq_off[b + 1] = t;
    }
    r->T = t;
    r->S = r->B;
}

static void ref_free(ref *r)
{
    free(r->seq_off);
    free(r->ids);
    free(r->types);
    free(r->row_of);
    kn_st_close(r->st);
}

typedef struct outs { float *hidden, *logits, *splade; } outs;

static void run_model(kn_backend *be, const char *name, const ref *r, outs *o, const kn_bert_params *p)
{
    char dir[512];
    snprintf(dir, sizeof dir, FIXDIR "%s", name);
    kn_bert *m;
    int rc = kn_bert_open(&m, be, dir, p);
    if (rc != 0)
        fail_msg("kn_bert_open %s: %s: %s", dir, lx_strerror(rc), kn_backend_errmsg(be));
    assert_int_equal(kn_bert_config_of(m)->hidden, r->H);
    assert_int_equal(kn_bert_config_of(m)->vocab, r->V);
    assert_true(kn_bert_has_mlm_head(m));
    o->hidden = malloc((size_t)r->T * r->H * sizeof(float));
    o->logits = malloc((size_t)r->T * r->V * sizeof(float));
    o->splade = malloc((size_t)r->S * r->V * sizeof(float));
    kn_bert_batch b = {.n_seq = r->S, .seq_off = r->seq_off, .ids = r->ids, .types = r->types};
    kn_bert_out out = {.hidden = o->hidden, .logits = o->logits, .splade = o->splade};
    rc = kn_bert_forward(m, &b, &out);
    if (rc != 0)
        fail_msg("forward %s: %s: %s", dir, lx_strerror(rc), kn_backend_errmsg(be));
    kn_bert_close(m);
}

static void outs_free(outs *o)
{
    free(o->hidden);
    free(o->logits);
    free(o->splade);
}

/* Max abs error of packed [T, W] y against padded [B*L, W] x. */
static double maxerr_packed(const float *y, const float *x, const ref *r, int W)
{
    double e = 0;
    for (int t = 0; t < r->T; t++)
        for (int c = 0; c < W; c++) {
            double d = fabs((double)y[(size_t)t * W + c] - x[(size_t)r->row_of[t] * W + c]);
            e = isnan(d) ? INFINITY : (d > e ? d : e);
        }
    return e;
}

static double maxerr(const float *y, const float *x, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)y[i] - x[i]);
        e = isnan(d) ? INFINITY : (d > e ? d : e);
    }
    return e;
}

static double nmse(const float *y, const float *x, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(y[i]))
            return INFINITY;
        num += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        den += (double)x[i] * x[i];
    }
    return den > 0 ? num / den : num;
}

static void check_against_fixture(kn_backend *be, const char *what)
{
    int bad = 0;
    for (size_t f = 0; f < sizeof FIXTURES / sizeof FIXTURES[0]; f++) {
        ref r;
        outs o;
        ref_load(&r, FIXTURES[f]);
        run_model(be, FIXTURES[f], &r, &o, NULL);
        double eh = maxerr_packed(o.hidden, r.hidden, &r, r.H);
        double el = maxerr_packed(o.logits, r.logits, &r, r.V);
        double es = maxerr(o.splade, r.splade, (size_t)r.S * r.V);
        printf("  %s %-14s T=%d: max abs err hidden %.2e logits %.2e splade %.2e\n", what, FIXTURES[f], r.T, eh, el, es);
        if (!(eh <= 1e-4 && el <= 1e-4 && es <= 1e-4)) {
            printf("  ^ over the 1e-4 bound\n");
            bad++;
        }
        outs_free(&o);
        ref_free(&r);
    }
    if (bad)
        fail_msg("%s: %d fixture(s) over max abs error 1e-4", what, bad);
}

static void test_cpu_model_equals_transformers(void **state)
{
    (void)state;
    kn_backend *be;
    kn_backend_params p = kn_backend_default_params();
    p.n_threads = 2;
    assert_int_equal(kn_backend_open(&be, KN_BACKEND_CPU, &p), 0);
    check_against_fixture(be, "cpu");
    kn_backend_close(be);
    p.reference = 1;
    assert_int_equal(kn_backend_open(&be, KN_BACKEND_CPU, &p), 0);
    check_against_fixture(be, "cpu-ref");
    kn_backend_close(be);
}

/* The same documents one at a time give the same outputs as the batch:
 * nothing leaks between packed sequences. */
static void test_cpu_batch_equals_single(void **state)
{
    (void)state;
    kn_backend *be;
    assert_int_equal(kn_backend_open(&be, KN_BACKEND_CPU, NULL), 0);
    ref r;
    ref_load(&r, "tiny-f32");
    kn_bert *m;
    assert_int_equal(kn_bert_open(&m, be, FIXDIR "tiny-f32", NULL), 0);
    float *all = malloc((size_t)r.S * r.V * sizeof(float)), *one = malloc((size_t)r.V * sizeof(float));
    kn_bert_batch b = {.n_seq = r.S, .seq_off = r.seq_off, .ids = r.ids, .types = r.types};
    assert_int_equal(kn_bert_forward(m, &b, &(kn_bert_out){.splade = all}), 0);
    for (int s = 0; s < r.S; s++) {
        int32_t off[2] = {0, r.seq_off[s + 1] - r.seq_off[s]};
        kn_bert_batch b1 = {.n_seq = 1, .seq_off = off, .ids = r.ids + r.seq_off[s], .types = r.types + r.seq_off[s]};
        assert_int_equal(kn_bert_forward(m, &b1, &(kn_bert_out){.splade = one}), 0);
        assert_true(maxerr(one, all + (size_t)s * r.V, (size_t)r.V) < 1e-5);
    }
    /* bad input is refused, not read */
    int32_t bad_ids[2] = {1, 100000}, off2[2] = {0, 2};
    kn_bert_batch bb = {.n_seq = 1, .seq_off = off2, .ids = bad_ids};
    assert_int_equal(kn_bert_forward(m, &bb, &(kn_bert_out){.splade = one}), LX_E_INVAL);
    assert_non_null(strstr(kn_backend_errmsg(be), "outside the vocabulary"));
    free(all);
    free(one);
    kn_bert_close(m);
    ref_free(&r);
    kn_backend_close(be);
}

static void test_cuda_model_equals_cpu(void **state)
{
    (void)state;
    kn_backend *gpu = NULL;
    int rc = kn_backend_open(&gpu, KN_BACKEND_CUDA, NULL);
    if (rc != 0) {
#ifdef LX_CUDA
        printf("SKIP: CUDA model tests skipped: no usable CUDA device\n");
#else
        printf("SKIP: CUDA model tests skipped: built without CUDA=1 (make test-cuda on a GPU machine runs them)\n");
#endif
        const char *req = getenv("LX_REQUIRE_CUDA");
        if (req && *req == '1')
            fail_msg("LX_REQUIRE_CUDA=1 but the CUDA backend did not open");
        skip();
        return;
    }
    /* F32 weights on CUDA: same bound as the CPU against transformers */
    kn_bert_params p32 = kn_bert_default_params();
    p32.weight_dtype = KN_F32;
    for (size_t f = 0; f < sizeof FIXTURES / sizeof FIXTURES[0]; f++) {
        ref r;
        outs o;
        ref_load(&r, FIXTURES[f]);
        run_model(gpu, FIXTURES[f], &r, &o, &p32);
        double eh = maxerr_packed(o.hidden, r.hidden, &r, r.H), el = maxerr_packed(o.logits, r.logits, &r, r.V);
        double es = maxerr(o.splade, r.splade, (size_t)r.S * r.V);
        printf("  cuda-f32 %-14s max abs err hidden %.2e logits %.2e splade %.2e\n", FIXTURES[f], eh, el, es);
        if (!(eh <= 1e-4 && el <= 1e-4 && es <= 1e-4))
            fail_msg("cuda f32 %s: max abs error over 1e-4", FIXTURES[f]);
        outs_free(&o);
        ref_free(&r);
    }
    kn_backend *cpu;
    assert_int_equal(kn_backend_open(&cpu, KN_BACKEND_CPU, NULL), 0);
    kn_dtype dts[2] = {KN_BF16, KN_F16};
    for (int d = 0; d < 2; d++) {
        kn_bert_params p = kn_bert_default_params();
        p.weight_dtype = dts[d];
        for (size_t f = 0; f < sizeof FIXTURES / sizeof FIXTURES[0]; f++) {
            ref r;
            outs oc, og;
            ref_load(&r, FIXTURES[f]);
            run_model(cpu, FIXTURES[f], &r, &oc, NULL);
            run_model(gpu, FIXTURES[f], &r, &og, &p);
            double nh = nmse(og.hidden, oc.hidden, (size_t)r.T * r.H);
            double nl = nmse(og.logits, oc.logits, (size_t)r.T * r.V);
            double ns = nmse(og.splade, oc.splade, (size_t)r.S * r.V);
            printf("  cuda-%s %-14s vs cpu NMSE hidden %.2e logits %.2e splade %.2e\n", kn_dtype_name(dts[d]),
                   FIXTURES[f], nh, nl, ns);
            if (!(nh < 1e-3 && nl < 1e-3 && ns < 2e-3))
                fail_msg("cuda %s %s: NMSE over the bound", kn_dtype_name(dts[d]), FIXTURES[f]);
            outs_free(&oc);
            outs_free(&og);
            ref_free(&r);
        }
    }
    kn_backend_close(cpu);
    kn_backend_close(gpu);
}

// --- malformed checkpoints --------------------------------------------------

static char tmpdir[256];

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void spit(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* Writes tmpdir/{config.json, model.safetensors}: the tiny-f32 checkpoint
 * with its header edited by edit() (or its bytes cut to keep bytes). */
static void write_variant(void (*edit)(json_t *hdr), long keep, const char *config_patch)
{
    size_t n;
    char *file = slurp(FIXDIR "tiny-f32/model.safetensors", &n);
    uint64_t hl = lx_ld64(file);
    json_t *hdr = json_loadb(file + 8, (size_t)hl, 0, NULL);
    assert_non_null(hdr);
    if (edit)
        edit(hdr);
    char *hs = json_dumps(hdr, JSON_COMPACT);
    size_t hn = strlen(hs);
    size_t data = n - 8 - (size_t)hl;
    char *out = malloc(8 + hn + data);
    lx_st64(out, hn);
    memcpy(out + 8, hs, hn);
    memcpy(out + 8 + hn, file + 8 + hl, data);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", tmpdir);
    spit(path, out, keep >= 0 ? (size_t)keep : 8 + hn + data);
    size_t cn;
    char *cfg = slurp(FIXDIR "tiny-f32/config.json", &cn);
    snprintf(path, sizeof path, "%s/config.json", tmpdir);
    if (config_patch) {
        json_t *c = json_loadb(cfg, cn, 0, NULL);
        json_t *p = json_loads(config_patch, 0, NULL);
        json_object_update(c, p);
        char *cs = json_dumps(c, 0);
        spit(path, cs, strlen(cs));
        free(cs);
        json_decref(c);
        json_decref(p);
    } else {
        spit(path, cfg, cn);
    }
    free(cfg);
    free(hs);
    free(out);
    free(file);
    json_decref(hdr);
}

static void expect_fail(const char *what, const char *needle)
{
    kn_backend *be;
    assert_int_equal(kn_backend_open(&be, KN_BACKEND_CPU, NULL), 0);
    kn_bert *m = NULL;
    int rc = kn_bert_open(&m, be, tmpdir, NULL);
    printf("  %-22s -> %s: %s\n", what, lx_strerror(rc), kn_backend_errmsg(be));
    if (rc == 0)
        fail_msg("%s: a malformed checkpoint was accepted", what);
    assert_null(m);
    if (!strstr(kn_backend_errmsg(be), needle))
        fail_msg("%s: message \"%s\" does not say \"%s\"", what, kn_backend_errmsg(be), needle);
    kn_backend_close(be);
}

#define WORD "bert.embeddings.word_embeddings.weight"
static void ed_offsets_past_end(json_t *h)
{
    json_t *o = json_object_get(json_object_get(h, WORD), "data_offsets");
    json_array_set_new(o, 1, json_integer(json_integer_value(json_array_get(o, 1)) + 1000000));
}
static void ed_offsets_overlap(json_t *h)
{
    /* point the word embeddings at the bytes of another tensor of the same size */
    const char *key;
    json_t *v;
    json_t *w = json_object_get(h, WORD);
    json_object_foreach(h, key, v) {
        if (strcmp(key, WORD) != 0 && strstr(key, "LayerNorm.weight")) {
            json_t *o = json_object_get(v, "data_offsets");
            json_int_t b = json_integer_value(json_array_get(o, 0));
            json_t *wo = json_object_get(w, "data_offsets");
            json_int_t wl = json_integer_value(json_array_get(wo, 1)) - json_integer_value(json_array_get(wo, 0));
            json_array_set_new(wo, 0, json_integer(b));
            json_array_set_new(wo, 1, json_integer(b + wl));
            return;
        }
    }
}
static void ed_shape_lies(json_t *h)
{
    json_t *s = json_object_get(json_object_get(h, WORD), "shape");
    json_array_set_new(s, 0, json_integer(json_integer_value(json_array_get(s, 0)) + 1));
}
static void ed_wrong_shape(json_t *h)
{
    /* a consistent entry, but [H*2, H/2] where the model needs [H, H] */
    json_t *s = json_object_get(json_object_get(h, "bert.encoder.layer.1.attention.self.key.weight"), "shape");
    json_array_set_new(s, 0, json_integer(64));
    json_array_set_new(s, 1, json_integer(16));
}
static void ed_unknown_dtype(json_t *h)
{
    json_object_set_new(json_object_get(h, WORD), "dtype", json_string("F8_E4M3"));
}
static void ed_int_dtype(json_t *h)
{
    /* I32 has the same size as F32: readable, but not a float weight */
    json_object_set_new(json_object_get(h, "bert.encoder.layer.0.output.dense.bias"), "dtype", json_string("I32"));
}
static void ed_missing(json_t *h)
{
    json_object_del(h, "bert.encoder.layer.1.intermediate.dense.weight");
}
static void ed_not_object(json_t *h)
{
    json_object_set_new(h, "cls.predictions.bias", json_string("oops"));
}

static void test_malformed_checkpoints(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lexis-test-bert-%d", (int)getpid());
    mkdir(tmpdir, 0700);
    size_t n;
    free(slurp(FIXDIR "tiny-f32/model.safetensors", &n));

    write_variant(NULL, -1, NULL);
    {   /* the unedited copy loads */
        kn_backend *be;
        kn_bert *m;
        assert_int_equal(kn_backend_open(&be, KN_BACKEND_CPU, NULL), 0);
        assert_int_equal(kn_bert_open(&m, be, tmpdir, NULL), 0);
        kn_bert_close(m);
        kn_backend_close(be);
    }
    write_variant(NULL, (long)n - 100, NULL);
    expect_fail("truncated data", "run past the end");
    write_variant(NULL, 4, NULL);
    expect_fail("truncated to 4 bytes", "shorter than");
    write_variant(NULL, 200, NULL);
    expect_fail("truncated header", "header length");
    write_variant(ed_offsets_past_end, -1, NULL);
    expect_fail("offsets past the end", "data_offsets");
    write_variant(ed_offsets_overlap, -1, NULL);
    expect_fail("overlapping offsets", "overlap");
    write_variant(ed_shape_lies, -1, NULL);
    expect_fail("shape vs offsets", "bytes but data_offsets span");
    write_variant(ed_wrong_shape, -1, NULL);
    expect_fail("wrong shape", "expected [32, 32]");
    write_variant(ed_unknown_dtype, -1, NULL);
    expect_fail("unknown dtype", "unknown or unsupported dtype \"F8_E4M3\"");
    write_variant(ed_int_dtype, -1, NULL);
    expect_fail("integer weight", "has dtype I32");
    write_variant(ed_missing, -1, NULL);
    expect_fail("missing tensor", "missing tensor \"bert.encoder.layer.1.intermediate.dense.weight\"");
    write_variant(ed_not_object, -1, NULL);
    expect_fail("entry not an object", "not an object");
    write_variant(NULL, -1, "{\"hidden_size\": 36}");
    expect_fail("config vs weights", "expected [99, 36]");
    write_variant(NULL, -1, "{\"hidden_act\": \"relu\"}");
    expect_fail("unsupported activation", "hidden_act");
    write_variant(NULL, -1, "{\"vocab_size\": -3}");
    expect_fail("bad config value", "vocab_size");

    /* a header that is not JSON, and a lying header length, in memory */
    char err[256];
    kn_st_file *f;
    unsigned char junk[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', 'x', 'x', 'x', 'x', 'x', 'x', '}'};
    assert_int_equal(kn_st_open_mem(&f, junk, sizeof junk, err, sizeof err), LX_E_CORRUPT);
    assert_non_null(strstr(err, "header JSON"));
    lx_st64(junk, 1ull << 62);
    assert_int_equal(kn_st_open_mem(&f, junk, sizeof junk, err, sizeof err), LX_E_CORRUPT);
    assert_non_null(strstr(err, "runs past the end of the file"));
    /* a missing file */
    assert_int_equal(kn_st_open(&f, "/nonexistent/model.safetensors", err, sizeof err), ENOENT);

    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", tmpdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", tmpdir);
    unlink(path);
    rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_model_equals_transformers),
        cmocka_unit_test(test_cpu_batch_equals_single),
        cmocka_unit_test(test_malformed_checkpoints),
        cmocka_unit_test(test_cuda_model_equals_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
