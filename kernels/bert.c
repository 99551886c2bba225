/* bert.c: a Hugging Face BERT checkpoint and its forward pass.
 *
 * Loading: config.json (jansson) gives the shapes; model.safetensors gives
 * the weights by their HF names, each checked for presence, dtype and exact
 * shape before use. Matrices live on the backend in its weight dtype (the
 * CPU: F32, borrowed from the mmap when the file stores F32, else widened
 * once; CUDA: uploaded as BF16 by default); vectors (biases, layer-norm
 * parameters) are F32 everywhere. On CUDA the query/key/value matrices are
 * stacked into one [3H, H] matrix so each layer does one QKV product; on the
 * CPU they stay three borrowed matrices writing three column slices of one
 * [T, 3H] buffer.
 *
 * Forward, for T tokens of S sequences packed without padding (llama2.c
 * style, top to bottom; shapes on every tensor):
 *   x[T,H]   = LN(word[ids] + pos[t - start(seq)] + type[types])
 *   per layer:
 *     qkv[T,3H] = x Wqkv^T + bqkv
 *     ctx[T,H]  = attention within each sequence (scale 1/sqrt(D))
 *     x[T,H]    = LN(ctx Wo^T + bo + x)
 *     inter[T,I]= gelu(x Wi^T + bi)
 *     x[T,H]    = LN(inter Wo2^T + bo2 + x)
 *   hidden = x
 *   MLM head: t[T,H] = LN(gelu(x Wt^T + bt)); logits[T,V] = t Wdec^T + bdec
 *   SPLADE:   splade[S,V] = max over a sequence's t of log1p(relu(logits))
 *             (kn_splade_pool: the logits are never stored whole)
 * Padding is never computed: each sequence attends to itself only.
 * Scratch tensors are allocated on the backend for the largest batch seen and
 * reused (one free covers them all at close).
 */
#include "kernels_impl.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bert_layer {
    kn_tensor wq, wk, wv, wqkv;  /* [H,H] x3 (CPU) or wqkv [3H,H] (stacked) */
    kn_tensor bqkv;              /* [3H] */
    kn_tensor wo, bo, ln1_g, ln1_b;
    kn_tensor wi, bi, wo2, bo2, ln2_g, ln2_b;
} bert_layer;

typedef struct bert_scratch {
    int64_t cap_t, cap_s, cap_vt;          /* tokens, sequences, logits rows */
    kn_tensor ids, pos, types, seq_off;    /* I32 [T], [T], [T], [S+1] */
    kn_tensor x, qkv, ctx, tmp, inter;     /* [T,H] [T,3H] [T,H] [T,H] [T,I] */
    kn_tensor logits, splade;              /* [T,V] (when asked), [S,V] */
} bert_scratch;

struct kn_bert {
    kn_backend *be;
    kn_bert_config cfg;
    kn_dtype wdt;                 /* matrices and activations on the backend */
    int stacked_qkv;
    int has_head;
    kn_tensor word, pos, type, eln_g, eln_b;
    bert_layer *layers;
    kn_tensor t_w, t_b, t_ln_g, t_ln_b, dec_w, dec_b;   /* MLM head */
    kn_tensor **owned;            /* every tensor we allocated, to free */
    int n_owned, cap_owned;
    kn_st_file *st;               /* kept open on the CPU: weights borrow its map */
    bert_scratch sc;
};

kn_bert_params kn_bert_default_params(void)
{
    kn_bert_params p = {.weight_dtype = KN_BF16, .load_mlm_head = 1};
    return p;
}

const kn_bert_config *kn_bert_config_of(const kn_bert *m) { return &m->cfg; }
int kn_bert_has_mlm_head(const kn_bert *m) { return m->has_head; }

// --- config.json ------------------------------------------------------------

static int cfg_int(kn_backend *be, json_t *root, const char *path, const char *key, int def, int *out)
{
    json_t *v = json_object_get(root, key);
    if (!v) {
        if (def < 0)
            return kn_backend_fail(be, LX_E_INPUT, "%s: missing \"%s\"", path, key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > (1 << 24))
        return kn_backend_fail(be, LX_E_INPUT, "%s: \"%s\" must be a positive integer below 2^24", path, key);
    *out = (int)json_integer_value(v);
    return 0;
}

static int read_config(kn_backend *be, const char *dir, kn_bert_config *c, int *tied)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return kn_backend_fail(be, LX_E_INPUT, "%s: %s (line %d)", path, je.text, je.line);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = kn_backend_fail(be, LX_E_INPUT, "%s: not a JSON object", path);
        goto out;
    }
    json_t *mt = json_object_get(root, "model_type");
    if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), "bert") != 0)) {
        rc = kn_backend_fail(be, LX_E_UNSUPPORTED, "%s: model_type \"%s\" is not \"bert\"", path,
                             json_is_string(mt) ? json_string_value(mt) : "?");
        goto out;
    }
    if ((rc = cfg_int(be, root, path, "vocab_size", -1, &c->vocab)) ||
        (rc = cfg_int(be, root, path, "hidden_size", -1, &c->hidden)) ||
        (rc = cfg_int(be, root, path, "num_hidden_layers", -1, &c->n_layer)) ||
        (rc = cfg_int(be, root, path, "num_attention_heads", -1, &c->n_head)) ||
        (rc = cfg_int(be, root, path, "intermediate_size", -1, &c->inter)) ||
        (rc = cfg_int(be, root, path, "max_position_embeddings", -1, &c->max_pos)) ||
        (rc = cfg_int(be, root, path, "type_vocab_size", 2, &c->type_vocab)))
        goto out;
    if (c->hidden % c->n_head != 0 || c->n_layer > 1024) {
        rc = kn_backend_fail(be, LX_E_INPUT, "%s: hidden_size %d is not a multiple of num_attention_heads %d (or too many layers)",
                             path, c->hidden, c->n_head);
        goto out;
    }
    json_t *eps = json_object_get(root, "layer_norm_eps");
    c->ln_eps = 1e-12f;
    if (eps) {
        if (!json_is_number(eps) || json_number_value(eps) < 0) {
            rc = kn_backend_fail(be, LX_E_INPUT, "%s: layer_norm_eps must be a non-negative number", path);
            goto out;
        }
        c->ln_eps = (float)json_number_value(eps);
    }
    json_t *act = json_object_get(root, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "gelu") != 0)) {
        rc = kn_backend_fail(be, LX_E_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (only \"gelu\", the exact erf form)",
                             path, json_is_string(act) ? json_string_value(act) : "?");
        goto out;
    }
    json_t *pet = json_object_get(root, "position_embedding_type");
    if (pet && (!json_is_string(pet) || strcmp(json_string_value(pet), "absolute") != 0)) {
        rc = kn_backend_fail(be, LX_E_UNSUPPORTED, "%s: position_embedding_type must be \"absolute\"", path);
        goto out;
    }
    json_t *tw = json_object_get(root, "tie_word_embeddings");
    *tied = tw ? json_is_true(tw) : 1;
out:
    json_decref(root);
    return rc;
}

// --- weights ----------------------------------------------------------------

typedef struct loader {
    kn_bert *m;
    kn_st_file *st;
    const char *prefix;          /* "bert." or "" */
    const char *file;
} loader;

static int track(kn_bert *m, kn_tensor *t)
{
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        kn_tensor **o = realloc(m->owned, (size_t)cap * sizeof *o);
        if (!o) {
            kn_tensor_free(m->be, t);
            return LX_E_NOMEM;
        }
        m->owned = o;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = t;
    return 0;
}

/* Puts host tensor src (any float dtype) on the backend as dtype dt. */
static int place(kn_bert *m, const kn_tensor *src, kn_dtype dt, kn_tensor *out)
{
    kn_backend *be = m->be;
    size_t n = (size_t)kn_tensor_nelem(src);
    int aligned = ((uintptr_t)src->data % kn_dtype_size(src->dtype)) == 0;
    if (be->i.device == KN_DEV_HOST && src->dtype == dt && aligned) {
        *out = *src;                /* borrow the map */
        out->owned = 0;
        return 0;
    }
    int rc = kn_tensor_alloc(be, out, dt, src->ndim, src->ne);
    if (rc == 0)
        rc = track(m, out);
    if (rc != 0)
        return rc;
    if (be->i.device == KN_DEV_HOST) {
        /* kn_convert reads element by element; an unaligned F32 source is copied first */
        if (!aligned) {
            void *tmp = malloc(n * kn_dtype_size(src->dtype));
            if (!tmp)
                return LX_E_NOMEM;
            memcpy(tmp, src->data, n * kn_dtype_size(src->dtype));
            kn_convert(out->data, dt, tmp, src->dtype, n);
            free(tmp);
        } else {
            kn_convert(out->data, dt, src->data, src->dtype, n);
        }
        return 0;
    }
    void *tmp = malloc(n * kn_dtype_size(dt) + 1), *in = NULL;
    if (!tmp)
        return LX_E_NOMEM;
    const void *s = src->data;
    if (!aligned) {
        in = malloc(n * kn_dtype_size(src->dtype) + 1);
        if (!in) {
            free(tmp);
            return LX_E_NOMEM;
        }
        memcpy(in, src->data, n * kn_dtype_size(src->dtype));
        s = in;
    }
    kn_convert(tmp, dt, s, src->dtype, n);
    rc = kn_tensor_upload(be, out, tmp);
    free(tmp);
    free(in);
    return rc;
}

/* Finds name (under the prefix), checks it is a float tensor of the given
 * shape (rows, cols; cols 0 for a vector). */
static int find(loader *L, const char *name, const char *alt, int64_t rows, int64_t cols, kn_tensor *t)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", L->prefix, name);
    int rc = kn_st_get(L->st, full, t);
    if (rc == LX_E_NOTFOUND && alt) {
        char a2[512];
        snprintf(a2, sizeof a2, "%s%s", L->prefix, alt);
        rc = kn_st_get(L->st, a2, t);
    }
    if (rc == LX_E_NOTFOUND)
        return kn_backend_fail(L->m->be, LX_E_NOTFOUND, "%s: missing tensor \"%s\"", L->file, full);
    if (rc != 0)
        return kn_backend_fail(L->m->be, rc, "%s: tensor \"%s\": %s", L->file, full, lx_strerror(rc));
    if (t->dtype != KN_F32 && t->dtype != KN_F16 && t->dtype != KN_BF16)
        return kn_backend_fail(L->m->be, LX_E_INPUT, "%s: tensor \"%s\" has dtype %s, expected F32, F16 or BF16",
                               L->file, full, kn_dtype_name(t->dtype));
    int ok = cols ? (t->ndim == 2 && t->ne[0] == rows && t->ne[1] == cols) : (t->ndim == 1 && t->ne[0] == rows);
    if (!ok) {
        char got[96] = "";
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t->ne[i]);
        if (cols)
            return kn_backend_fail(L->m->be, LX_E_INPUT, "%s: tensor \"%s\" has shape [%s], expected [%lld, %lld]",
                                   L->file, full, got, (long long)rows, (long long)cols);
        return kn_backend_fail(L->m->be, LX_E_INPUT, "%s: tensor \"%s\" has shape [%s], expected [%lld]",
                               L->file, full, got, (long long)rows);
    }
    return 0;
}

static int load_mat(loader *L, const char *name, int64_t rows, int64_t cols, kn_tensor *out)
{
    kn_tensor t;
    int rc = find(L, name, NULL, rows, cols, &t);
    return rc ? rc : place(L->m, &t, L->m->wdt, out);
}

static int load_vec(loader *L, const char *name, const char *alt, int64_t n, kn_tensor *out)
{
    kn_tensor t;
    int rc = find(L, name, alt, n, 0, &t);
    return rc ? rc : place(L->m, &t, KN_F32, out);
}

/* A LayerNorm's weight and bias, under either spelling (weight/bias or gamma/beta). */
static int load_ln(loader *L, const char *base, int64_t n, kn_tensor *g, kn_tensor *b)
{
    char w[256], wa[256], bb[256], ba[256];
    snprintf(w, sizeof w, "%s.weight", base);
    snprintf(wa, sizeof wa, "%s.gamma", base);
    snprintf(bb, sizeof bb, "%s.bias", base);
    snprintf(ba, sizeof ba, "%s.beta", base);
    int rc = load_vec(L, w, wa, n, g);
    return rc ? rc : load_vec(L, bb, ba, n, b);
}

/* Stacks q, k, v ([H,H] each, any float dtype) into one [3H, H] matrix and
 * their biases into [3H], on the backend. */
static int load_qkv_stacked(loader *L, const char *p, bert_layer *ly)
{
    kn_bert *m = L->m;
    int64_t H = m->cfg.hidden;
    const char *parts[3] = {"query", "key", "value"};
    float *w = malloc((size_t)(3 * H * H) * sizeof *w), *b = malloc((size_t)(3 * H) * sizeof *b);
    int rc = (!w || !b) ? LX_E_NOMEM : 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        char n[256];
        kn_tensor t;
        snprintf(n, sizeof n, "%sattention.self.%s.weight", p, parts[i]);
        if ((rc = find(L, n, NULL, H, H, &t)) != 0)
            break;
        kn_convert(w + i * H * H, KN_F32, t.data, t.dtype, (size_t)(H * H));
        snprintf(n, sizeof n, "%sattention.self.%s.bias", p, parts[i]);
        if ((rc = find(L, n, NULL, H, 0, &t)) != 0)
            break;
        kn_convert(b + i * H, KN_F32, t.data, t.dtype, (size_t)H);
    }
    if (rc == 0) {
        kn_tensor tw = kn_tensor_2d(w, KN_F32, 3 * H, H), tb = kn_tensor_1d(b, KN_F32, 3 * H);
        rc = place(m, &tw, m->wdt, &ly->wqkv);
        if (rc == 0)
            rc = place(m, &tb, KN_F32, &ly->bqkv);
    }
    free(w);
    free(b);
    return rc;
}

static int load_qkv_split(loader *L, const char *p, bert_layer *ly)
{
    kn_bert *m = L->m;
    int64_t H = m->cfg.hidden;
    char n[256];
    int rc;
    snprintf(n, sizeof n, "%sattention.self.query.weight", p);
    if ((rc = load_mat(L, n, H, H, &ly->wq)))
        return rc;
    snprintf(n, sizeof n, "%sattention.self.key.weight", p);
    if ((rc = load_mat(L, n, H, H, &ly->wk)))
        return rc;
    snprintf(n, sizeof n, "%sattention.self.value.weight", p);
    if ((rc = load_mat(L, n, H, H, &ly->wv)))
        return rc;
    /* biases: one [3H] F32 vector */
    float *b = malloc((size_t)(3 * H) * sizeof *b);
    if (!b)
        return LX_E_NOMEM;
    const char *parts[3] = {"query", "key", "value"};
    for (int i = 0; i < 3 && rc == 0; i++) {
        kn_tensor t;
        snprintf(n, sizeof n, "%sattention.self.%s.bias", p, parts[i]);
        if ((rc = find(L, n, NULL, H, 0, &t)) == 0)
            kn_convert(b + i * H, KN_F32, t.data, t.dtype, (size_t)H);
    }
    if (rc == 0) {
        kn_tensor tb = kn_tensor_1d(b, KN_F32, 3 * H);
        rc = kn_tensor_alloc(m->be, &ly->bqkv, KN_F32, 1, tb.ne);
        if (rc == 0 && (rc = track(m, &ly->bqkv)) == 0)
            rc = kn_tensor_upload(m->be, &ly->bqkv, b);
    }
    free(b);
    return rc;
}

static int load_weights(kn_bert *m, loader *L, int tied, int want_head)
{
    const kn_bert_config *c = &m->cfg;
    int64_t H = c->hidden, I = c->inter, V = c->vocab;
    int rc;
    if ((rc = load_mat(L, "embeddings.word_embeddings.weight", V, H, &m->word)) ||
        (rc = load_mat(L, "embeddings.position_embeddings.weight", c->max_pos, H, &m->pos)) ||
        (rc = load_mat(L, "embeddings.token_type_embeddings.weight", c->type_vocab, H, &m->type)) ||
        (rc = load_ln(L, "embeddings.LayerNorm", H, &m->eln_g, &m->eln_b)))
        return rc;
    for (int l = 0; l < c->n_layer; l++) {
        bert_layer *ly = &m->layers[l];
        char p[64], n[256];
        snprintf(p, sizeof p, "encoder.layer.%d.", l);
        rc = m->stacked_qkv ? load_qkv_stacked(L, p, ly) : load_qkv_split(L, p, ly);
        if (rc)
            return rc;
#define NM(s) (snprintf(n, sizeof n, "%s%s", p, s), n)
        if ((rc = load_mat(L, NM("attention.output.dense.weight"), H, H, &ly->wo)) ||
            (rc = load_vec(L, NM("attention.output.dense.bias"), NULL, H, &ly->bo)) ||
            (rc = load_ln(L, NM("attention.output.LayerNorm"), H, &ly->ln1_g, &ly->ln1_b)) ||
            (rc = load_mat(L, NM("intermediate.dense.weight"), I, H, &ly->wi)) ||
            (rc = load_vec(L, NM("intermediate.dense.bias"), NULL, I, &ly->bi)) ||
            (rc = load_mat(L, NM("output.dense.weight"), H, I, &ly->wo2)) ||
            (rc = load_vec(L, NM("output.dense.bias"), NULL, H, &ly->bo2)) ||
            (rc = load_ln(L, NM("output.LayerNorm"), H, &ly->ln2_g, &ly->ln2_b)))
            return rc;
#undef NM
    }
    if (!want_head)
        return 0;
    /* The MLM head sits outside the "bert." prefix. */
    kn_tensor probe;
    if (kn_st_get(L->st, "cls.predictions.transform.dense.weight", &probe) != 0)
        return 0;                 /* a bare encoder checkpoint: no head */
    loader HL = *L;
    HL.prefix = "";
    if ((rc = load_mat(&HL, "cls.predictions.transform.dense.weight", H, H, &m->t_w)) ||
        (rc = load_vec(&HL, "cls.predictions.transform.dense.bias", NULL, H, &m->t_b)) ||
        (rc = load_ln(&HL, "cls.predictions.transform.LayerNorm", H, &m->t_ln_g, &m->t_ln_b)) ||
        (rc = load_vec(&HL, "cls.predictions.decoder.bias", "cls.predictions.bias", V, &m->dec_b)))
        return rc;
    if (kn_st_get(L->st, "cls.predictions.decoder.weight", &probe) == 0) {
        if ((rc = load_mat(&HL, "cls.predictions.decoder.weight", V, H, &m->dec_w)))
            return rc;
    } else if (tied) {
        m->dec_w = m->word;       /* tied: a view of the word embeddings */
        m->dec_w.owned = 0;
    } else {
        return kn_backend_fail(m->be, LX_E_NOTFOUND,
                               "%s: missing tensor \"cls.predictions.decoder.weight\" and tie_word_embeddings is false", L->file);
    }
    m->has_head = 1;
    return 0;
}

int kn_bert_open(kn_bert **out, kn_backend *be, const char *dir, const kn_bert_params *p)
{
    kn_bert_params dp = kn_bert_default_params();
    if (!p)
        p = &dp;
    *out = NULL;
    kn_bert *m = calloc(1, sizeof *m);
    if (!m)
        return LX_E_NOMEM;
    m->be = be;
    int tied = 1;
    int rc = read_config(be, dir, &m->cfg, &tied);
    if (rc != 0)
        goto out_fail;
    m->wdt = be->i.device == KN_DEV_HOST ? KN_F32 : p->weight_dtype;
    if (m->wdt != KN_F32 && m->wdt != KN_F16 && m->wdt != KN_BF16) {
        rc = kn_backend_fail(be, LX_E_INVAL, "weight_dtype must be F32, F16 or BF16");
        goto out_fail;
    }
    m->stacked_qkv = be->i.device != KN_DEV_HOST;
    m->layers = calloc((size_t)m->cfg.n_layer, sizeof *m->layers);
    if (!m->layers) {
        rc = LX_E_NOMEM;
        goto out_fail;
    }
    char path[4096], err[512] = "";
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    loader L = {.m = m, .file = path};
    rc = kn_st_open(&L.st, path, err, sizeof err);
    if (rc != 0) {
        rc = kn_backend_fail(be, rc, "%s", err[0] ? err : lx_strerror(rc));
        goto out_fail;
    }
    kn_tensor probe;
    L.prefix = kn_st_get(L.st, "bert.embeddings.word_embeddings.weight", &probe) == 0 ? "bert." : "";
    rc = load_weights(m, &L, tied, p->load_mlm_head);
    /* CPU weights may borrow the map: keep it open for the model's life. */
    if (rc == 0 && be->i.device == KN_DEV_HOST)
        m->st = L.st;
    else
        kn_st_close(L.st);
    if (rc != 0)
        goto out_fail;
    *out = m;
    return 0;
out_fail:
    kn_bert_close(m);
    return rc;
}

static void scratch_free(kn_bert *m)
{
    bert_scratch *s = &m->sc;
    kn_tensor *ts[] = {&s->ids, &s->pos, &s->types, &s->seq_off, &s->x, &s->qkv, &s->ctx,
                       &s->tmp, &s->inter, &s->logits, &s->splade};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        kn_tensor_free(m->be, ts[i]);
    s->cap_t = s->cap_s = s->cap_vt = 0;
}

void kn_bert_close(kn_bert *m)
{
    if (!m)
        return;
    scratch_free(m);
    for (int i = 0; i < m->n_owned; i++)
        kn_tensor_free(m->be, m->owned[i]);
    free(m->owned);
    kn_st_close(m->st);
    free(m->layers);
    free(m);
}

// --- forward ----------------------------------------------------------------

static int scratch_ensure(kn_bert *m, int64_t T, int64_t S, int64_t VT)
{
    bert_scratch *s = &m->sc;
    if (T <= s->cap_t && S <= s->cap_s && VT <= s->cap_vt)
        return 0;
    int64_t ct = T > s->cap_t ? T : s->cap_t, cs = S > s->cap_s ? S : s->cap_s;
    int64_t cv = VT > s->cap_vt ? VT : s->cap_vt;
    scratch_free(m);
    const kn_bert_config *c = &m->cfg;
    kn_backend *be = m->be;
    int64_t sh_t[1] = {ct}, sh_s[1] = {cs + 1};
    int64_t sh_x[2] = {ct, c->hidden}, sh_qkv[2] = {ct, 3 * (int64_t)c->hidden};
    int64_t sh_i[2] = {ct, c->inter}, sh_l[2] = {cv > 0 ? cv : 1, c->vocab}, sh_sp[2] = {cs, c->vocab};
    int rc;
    if ((rc = kn_tensor_alloc(be, &s->ids, KN_I32, 1, sh_t)) ||
        (rc = kn_tensor_alloc(be, &s->pos, KN_I32, 1, sh_t)) ||
        (rc = kn_tensor_alloc(be, &s->types, KN_I32, 1, sh_t)) ||
        (rc = kn_tensor_alloc(be, &s->seq_off, KN_I32, 1, sh_s)) ||
        (rc = kn_tensor_alloc(be, &s->x, m->wdt, 2, sh_x)) ||
        (rc = kn_tensor_alloc(be, &s->qkv, m->wdt, 2, sh_qkv)) ||
        (rc = kn_tensor_alloc(be, &s->ctx, m->wdt, 2, sh_x)) ||
        (rc = kn_tensor_alloc(be, &s->tmp, m->wdt, 2, sh_x)) ||
        (rc = kn_tensor_alloc(be, &s->inter, m->wdt, 2, sh_i)) ||
        (m->has_head && (rc = kn_tensor_alloc(be, &s->splade, KN_F32, 2, sh_sp))) ||
        (m->has_head && cv > 0 && (rc = kn_tensor_alloc(be, &s->logits, KN_F32, 2, sh_l)))) {
        scratch_free(m);
        return rc;
    }
    s->cap_t = ct;
    s->cap_s = cs;
    s->cap_vt = cv;
    return 0;
}

/* The first n rows (or elements) of a scratch tensor. */
static kn_tensor first(const kn_tensor *t, int64_t n)
{
    kn_tensor v = *t;
    v.owned = 0;
    v.ne[0] = n;
    return v;
}

int kn_bert_forward(kn_bert *m, const kn_bert_batch *b, const kn_bert_out *out)
{
    const kn_bert_config *c = &m->cfg;
    kn_backend *be = m->be;
    if (b->n_seq <= 0 || !b->seq_off || !b->ids || b->seq_off[0] != 0)
        return kn_backend_fail(be, LX_E_INVAL, "bert: a batch needs n_seq > 0, ids and seq_off starting at 0");
    if ((out->logits || out->splade) && !m->has_head)
        return kn_backend_fail(be, LX_E_UNSUPPORTED, "bert: the checkpoint has no masked-LM head (cls.predictions.*)");
    int S = b->n_seq, max_len = 1;
    for (int s = 0; s < S; s++) {
        int L = b->seq_off[s + 1] - b->seq_off[s];
        if (L < 0 || L > c->max_pos)
            return kn_backend_fail(be, LX_E_INVAL, "bert: sequence %d has %d tokens; the model takes 0..%d",
                                   s, L, c->max_pos);
        max_len = L > max_len ? L : max_len;
    }
    int64_t T = b->seq_off[S];
    if (T == 0)
        return 0;
    for (int64_t t = 0; t < T; t++) {
        if (b->ids[t] < 0 || b->ids[t] >= c->vocab)
            return kn_backend_fail(be, LX_E_INVAL, "bert: token %lld has id %d outside the vocabulary [0, %d)",
                                   (long long)t, b->ids[t], c->vocab);
        if (b->types && (b->types[t] < 0 || b->types[t] >= c->type_vocab))
            return kn_backend_fail(be, LX_E_INVAL, "bert: token %lld has type %d outside [0, %d)",
                                   (long long)t, b->types[t], c->type_vocab);
    }
    int rc = scratch_ensure(m, T, S, out->logits ? T : 0);
    if (rc != 0)
        return rc;
    bert_scratch *sc = &m->sc;
    int32_t *host = malloc((size_t)(2 * T + S + 1) * sizeof *host);
    if (!host)
        return LX_E_NOMEM;
    int32_t *pos = host, *types = host + T, *off = host + 2 * T;
    for (int s = 0; s < S; s++)
        for (int32_t t = b->seq_off[s]; t < b->seq_off[s + 1]; t++)
            pos[t] = t - b->seq_off[s];
    for (int64_t t = 0; t < T; t++)
        types[t] = b->types ? b->types[t] : 0;
    memcpy(off, b->seq_off, (size_t)(S + 1) * sizeof *off);
    kn_tensor ids = first(&sc->ids, T), tpos = first(&sc->pos, T), ttypes = first(&sc->types, T);
    kn_tensor seq_off = first(&sc->seq_off, S + 1);
    if ((rc = kn_tensor_upload(be, &ids, b->ids)) || (rc = kn_tensor_upload(be, &tpos, pos)) ||
        (rc = kn_tensor_upload(be, &ttypes, types)) || (rc = kn_tensor_upload(be, &seq_off, off))) {
        free(host);
        return rc;
    }
    free(host);

    int64_t H = c->hidden;
    kn_tensor x = first(&sc->x, T);          /* [T, H] residual stream */
    kn_tensor qkv = first(&sc->qkv, T);      /* [T, 3H] */
    kn_tensor ctx = first(&sc->ctx, T);      /* [T, H] attention output */
    kn_tensor tmp = first(&sc->tmp, T);      /* [T, H] */
    kn_tensor inter = first(&sc->inter, T);  /* [T, I] */
    kn_tensor q = kn_tensor_cols_view(&qkv, 0, H);      /* [T, H] views, row stride 3H */
    kn_tensor k = kn_tensor_cols_view(&qkv, H, H);
    kn_tensor v = kn_tensor_cols_view(&qkv, 2 * H, H);
    float scale = 1.0f / sqrtf((float)(H / c->n_head));

    // embeddings: x = LN(word[ids] + pos[p] + type[types])
    if ((rc = kn_get_rows(be, &x, &m->word, &ids, 0)) ||
        (rc = kn_get_rows(be, &x, &m->pos, &tpos, 1)) ||
        (rc = kn_get_rows(be, &x, &m->type, &ttypes, 1)) ||
        (rc = kn_layernorm(be, &x, &x, NULL, &m->eln_g, &m->eln_b, c->ln_eps)))
        return rc;
    for (int l = 0; l < c->n_layer; l++) {
        bert_layer *ly = &m->layers[l];
        if (m->stacked_qkv) {
            rc = kn_matmul(be, &qkv, &x, &ly->wqkv, &ly->bqkv, KN_ACT_NONE);
        } else {
            kn_tensor bq = first(&ly->bqkv, H), bk = ly->bqkv, bv = ly->bqkv;
            bk.ne[0] = H;
            bk.data = (float *)ly->bqkv.data + H;
            bv.ne[0] = H;
            bv.data = (float *)ly->bqkv.data + 2 * H;
            if ((rc = kn_matmul(be, &q, &x, &ly->wq, &bq, KN_ACT_NONE)) == 0 &&
                (rc = kn_matmul(be, &k, &x, &ly->wk, &bk, KN_ACT_NONE)) == 0)
                rc = kn_matmul(be, &v, &x, &ly->wv, &bv, KN_ACT_NONE);
        }
        if (rc ||
            (rc = kn_attention(be, &ctx, &q, &k, &v, NULL, &seq_off, c->n_head, c->n_head, max_len, scale, 0)) ||
            (rc = kn_matmul(be, &tmp, &ctx, &ly->wo, &ly->bo, KN_ACT_NONE)) ||
            (rc = kn_layernorm(be, &x, &tmp, &x, &ly->ln1_g, &ly->ln1_b, c->ln_eps)) ||
            (rc = kn_matmul(be, &inter, &x, &ly->wi, &ly->bi, KN_ACT_GELU)) ||
            (rc = kn_matmul(be, &tmp, &inter, &ly->wo2, &ly->bo2, KN_ACT_NONE)) ||
            (rc = kn_layernorm(be, &x, &tmp, &x, &ly->ln2_g, &ly->ln2_b, c->ln_eps)))
            return rc;
    }
    if (out->hidden && (rc = kn_tensor_download_f32(be, &x, out->hidden)))
        return rc;
    if (!out->logits && !out->splade)
        return kn_backend_sync(be);
    // MLM head transform: tmp = LN(gelu(x Wt^T + bt))
    if ((rc = kn_matmul(be, &tmp, &x, &m->t_w, &m->t_b, KN_ACT_GELU)) ||
        (rc = kn_layernorm(be, &tmp, &tmp, NULL, &m->t_ln_g, &m->t_ln_b, c->ln_eps)))
        return rc;
    if (out->logits) {
        kn_tensor lg = first(&sc->logits, T);                /* [T, V] */
        if ((rc = kn_matmul(be, &lg, &tmp, &m->dec_w, &m->dec_b, KN_ACT_NONE)) ||
            (rc = kn_tensor_download_f32(be, &lg, out->logits)))
            return rc;
    }
    if (out->splade) {
        kn_tensor sp = first(&sc->splade, S);                /* [S, V] */
        if ((rc = kn_splade_pool(be, &sp, &tmp, &m->dec_w, &m->dec_b, &seq_off, max_len)) ||
            (rc = kn_tensor_download_f32(be, &sp, out->splade)))
            return rc;
    }
    return kn_backend_sync(be);
}
