/* bert-bench.c: lexis's BERT forward pass, documents per second.
 *
 *   bert-bench [--backend cpu|cuda] [--threads N] [--batch B] [--seqs 128,256,512]
 *              [--iters K] [--paths encoder,splade] [--dtype bf16|f16|f32] [--dir DIR]
 *              [--profile 1]   (per-op times; synchronizes after every op)
 *              [--ops 1]       (each op of one layer alone, at the batch's shape)
 *
 * Writes (once) a BERT-base-shaped checkpoint with random weights to DIR
 * (default /tmp/lexis-bert-base: 12 layers, hidden 768, 12 heads,
 * intermediate 3072, vocabulary 30522, 512 positions, F32), opens it on the
 * backend and times kn_bert_forward on a batch of B full-length documents of
 * random token ids: 'encoder' computes the last hidden state and leaves it on
 * the backend (as the peer's bare encoder does); 'splade' adds the MLM head
 * and the SPLADE max-pool and copies the [B, 30522] result to the host.
 * One warm-up, then the median of K runs. Prints
 *   lexis BACKEND PATH seq S batch B: X docs/s (T ms/batch, G TFLOP/s)
 * The peer is tools/bench/bert-hf.py; tools/bench/bert-cpu.sh and
 * bert-gpu.sh run both in one go.
 */
#include "../../kernels/kernels.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { V = 30522, H = 768, NL = 12, NH = 12, I = 3072, P = 512 };

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static float frand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((double)(rs >> 11) / 9007199254740992.0 * 2 - 1);
}

typedef struct ent { char name[96]; int64_t r, c; float mean, sd; } ent;

static int write_checkpoint(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct stat st;
    if (stat(path, &st) == 0)
        return 0;
    mkdir(dir, 0755);
    static ent e[16 * NL + 16];
    int n = 0;
#define ADD(nm, rr, cc, mu, s) do { snprintf(e[n].name, sizeof e[n].name, "%s", nm); e[n].r = rr; e[n].c = cc; e[n].mean = mu; e[n].sd = s; n++; } while (0)
    ADD("bert.embeddings.word_embeddings.weight", V, H, 0, 0.05f);
    ADD("bert.embeddings.position_embeddings.weight", P, H, 0, 0.05f);
    ADD("bert.embeddings.token_type_embeddings.weight", 2, H, 0, 0.05f);
    ADD("bert.embeddings.LayerNorm.weight", H, 0, 1, 0.05f);
    ADD("bert.embeddings.LayerNorm.bias", H, 0, 0, 0.05f);
    for (int l = 0; l < NL; l++) {
        char b[96];
        const char *parts[] = {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"};
        for (int k = 0; k < 4; k++) {
            snprintf(b, sizeof b, "bert.encoder.layer.%d.%s.weight", l, parts[k]); ADD(b, H, H, 0, 0.05f);
            snprintf(b, sizeof b, "bert.encoder.layer.%d.%s.bias", l, parts[k]); ADD(b, H, 0, 0, 0.05f);
        }
        snprintf(b, sizeof b, "bert.encoder.layer.%d.attention.output.LayerNorm.weight", l); ADD(b, H, 0, 1, 0.05f);
        snprintf(b, sizeof b, "bert.encoder.layer.%d.attention.output.LayerNorm.bias", l); ADD(b, H, 0, 0, 0.05f);
        snprintf(b, sizeof b, "bert.encoder.layer.%d.intermediate.dense.weight", l); ADD(b, I, H, 0, 0.05f);
        snprintf(b, sizeof b, "bert.encoder.layer.%d.intermediate.dense.bias", l); ADD(b, I, 0, 0, 0.05f);
        snprintf(b, sizeof b, "bert.encoder.layer.%d.output.dense.weight", l); ADD(b, H, I, 0, 0.03f);
        snprintf(b, sizeof b, "bert.encoder.layer.%d.output.dense.bias", l); ADD(b, H, 0, 0, 0.05f);
        snprintf(b, sizeof b, "bert.encoder.layer.%d.output.LayerNorm.weight", l); ADD(b, H, 0, 1, 0.05f);
        snprintf(b, sizeof b, "bert.encoder.layer.%d.output.LayerNorm.bias", l); ADD(b, H, 0, 0, 0.05f);
    }
    ADD("cls.predictions.transform.dense.weight", H, H, 0, 0.05f);
    ADD("cls.predictions.transform.dense.bias", H, 0, 0, 0.05f);
    ADD("cls.predictions.transform.LayerNorm.weight", H, 0, 1, 0.05f);
    ADD("cls.predictions.transform.LayerNorm.bias", H, 0, 0, 0.05f);
    ADD("cls.predictions.bias", V, 0, 0, 0.05f);
    size_t cap = 64 * 1024, len = 0, off = 0;
    char *hdr = malloc(cap);
    len += (size_t)snprintf(hdr + len, cap - len, "{");
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)(e[i].r * (e[i].c ? e[i].c : 1)) * 4;
        if (e[i].c)
            len += (size_t)snprintf(hdr + len, cap - len, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                                    i ? "," : "", e[i].name, (long long)e[i].r, (long long)e[i].c, off, off + bytes);
        else
            len += (size_t)snprintf(hdr + len, cap - len, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                                    i ? "," : "", e[i].name, (long long)e[i].r, off, off + bytes);
        off += bytes;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while (len % 8)
        hdr[len++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f)
        return errno;
    uint64_t hl = len;
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, len, f);
    float *buf = malloc((size_t)V * H * sizeof *buf);
    for (int i = 0; i < n; i++) {
        size_t cnt = (size_t)(e[i].r * (e[i].c ? e[i].c : 1));
        for (size_t j = 0; j < cnt; j++)
            buf[j] = e[i].mean + e[i].sd * frand();
        fwrite(buf, 4, cnt, f);
    }
    free(buf);
    free(hdr);
    if (fclose(f) != 0)
        return errno;
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "w");
    if (!f)
        return errno;
    fprintf(f, "{\"model_type\":\"bert\",\"vocab_size\":%d,\"hidden_size\":%d,\"num_hidden_layers\":%d,"
               "\"num_attention_heads\":%d,\"intermediate_size\":%d,\"max_position_embeddings\":%d,"
               "\"type_vocab_size\":2,\"hidden_act\":\"gelu\",\"layer_norm_eps\":1e-12}\n", V, H, NL, NH, I, P);
    fclose(f);
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// --- --ops: one layer's ops alone -------------------------------------------

/* A backend tensor of random values (sd 0.05) in dtype dt. */
static int rand_tensor(kn_backend *be, kn_tensor *t, kn_dtype dt, int64_t r, int64_t c)
{
    int64_t sh[2] = {r, c};
    int rc = kn_tensor_alloc(be, t, dt, c ? 2 : 1, sh);
    if (rc)
        return rc;
    size_t n = (size_t)(r * (c ? c : 1));
    float *f = malloc(n * sizeof *f);
    void *d = malloc(n * kn_dtype_size(dt));
    for (size_t i = 0; i < n; i++)
        f[i] = 0.05f * frand();
    kn_convert(d, dt, f, KN_F32, n);
    rc = kn_tensor_upload(be, t, d);
    free(f);
    free(d);
    return rc;
}

enum { OP_QKV, OP_O, OP_FFN1, OP_FFN2, OP_LN, OP_ATT, OP_HEAD, OP_SPLADE, OP_N };

/* Times each op of one encoder layer (and the SPLADE head) at T = batch x
 * seq tokens: median of iters runs, each synchronized. */
static int bench_ops(kn_backend *be, kn_dtype dt, int S, int batch, int iters)
{
    int64_t T = (int64_t)S * batch;
    kn_tensor x, qkv, ctx, tmp, inter, wqkv, wo, wi, wo2, wdec, bqkv, bo, bi, bdec, g, b, so, sp;
    int rc;
    if ((rc = rand_tensor(be, &x, dt, T, H)) || (rc = rand_tensor(be, &qkv, dt, T, 3 * H)) ||
        (rc = rand_tensor(be, &ctx, dt, T, H)) || (rc = rand_tensor(be, &tmp, dt, T, H)) ||
        (rc = rand_tensor(be, &inter, dt, T, I)) || (rc = rand_tensor(be, &wqkv, dt, 3 * H, H)) ||
        (rc = rand_tensor(be, &wo, dt, H, H)) || (rc = rand_tensor(be, &wi, dt, I, H)) ||
        (rc = rand_tensor(be, &wo2, dt, H, I)) || (rc = rand_tensor(be, &wdec, dt, V, H)) ||
        (rc = rand_tensor(be, &bqkv, KN_F32, 3 * H, 0)) || (rc = rand_tensor(be, &bo, KN_F32, H, 0)) ||
        (rc = rand_tensor(be, &bi, KN_F32, I, 0)) || (rc = rand_tensor(be, &bdec, KN_F32, V, 0)) ||
        (rc = rand_tensor(be, &g, KN_F32, H, 0)) || (rc = rand_tensor(be, &b, KN_F32, H, 0)) ||
        (rc = rand_tensor(be, &sp, KN_F32, batch, V)))
        return rc;
    int64_t sh[1] = {batch + 1};
    if ((rc = kn_tensor_alloc(be, &so, KN_I32, 1, sh)))
        return rc;
    int32_t *off = malloc((size_t)(batch + 1) * sizeof *off);
    for (int i = 0; i <= batch; i++)
        off[i] = i * S;
    if ((rc = kn_tensor_upload(be, &so, off)))
        return rc;
    free(off);
    kn_tensor q = kn_tensor_cols_view(&qkv, 0, H), k = kn_tensor_cols_view(&qkv, H, H);
    kn_tensor v = kn_tensor_cols_view(&qkv, 2 * H, H);
    static const char *names[OP_N] = {"qkv+bias", "o+bias", "ffn1+gelu", "ffn2+bias", "ln+residual",
                                      "attention", "head+gelu", "splade_pool"};
    double *ts = malloc((size_t)(iters + 1) * sizeof *ts);
    for (int op = 0; op < OP_N; op++) {
        double fl = 0, bytes = 0;
        for (int k2 = -1; k2 < iters; k2++) {
            double a = lx_now();
            switch (op) {
            case OP_QKV: rc = kn_matmul(be, &qkv, &x, &wqkv, &bqkv, KN_ACT_NONE); fl = 2.0 * T * 3 * H * H; break;
            case OP_O: rc = kn_matmul(be, &tmp, &ctx, &wo, &bo, KN_ACT_NONE); fl = 2.0 * T * H * H; break;
            case OP_FFN1: rc = kn_matmul(be, &inter, &x, &wi, &bi, KN_ACT_GELU); fl = 2.0 * T * H * I; break;
            case OP_FFN2: rc = kn_matmul(be, &tmp, &inter, &wo2, &bo, KN_ACT_NONE); fl = 2.0 * T * H * I; break;
            case OP_LN: rc = kn_layernorm(be, &x, &tmp, &x, &g, &b, 1e-12f); bytes = 3.0 * T * H * kn_dtype_size(dt); break;
            case OP_ATT: rc = kn_attention(be, &ctx, &q, &k, &v, NULL, &so, NH, NH, S, 0.125f, 0); fl = 4.0 * T * S * H; break;
            case OP_HEAD: rc = kn_matmul(be, &tmp, &x, &wo, &bo, KN_ACT_GELU); fl = 2.0 * T * H * H; break;
            case OP_SPLADE: rc = kn_splade_pool(be, &sp, &tmp, &wdec, &bdec, &so, S); fl = 2.0 * T * H * V; break;
            }
            if (rc == 0)
                rc = kn_backend_sync(be);
            if (rc) {
                fprintf(stderr, "bert-bench: op %s: %s: %s\n", names[op], lx_strerror(rc), kn_backend_errmsg(be));
                return rc;
            }
            if (k2 >= 0)
                ts[k2] = lx_now() - a;
        }
        qsort(ts, (size_t)iters, sizeof *ts, cmp_d);
        double t = ts[iters / 2];
        printf("    op %-12s seq %3d T %6lld: %8.3f ms", names[op], S, (long long)T, t * 1e3);
        if (fl > 0)
            printf("  %6.1f TFLOP/s", fl / t / 1e12);
        if (bytes > 0)
            printf("  %6.0f GB/s", bytes / t / 1e9);
        printf("\n");
    }
    fflush(stdout);
    free(ts);
    kn_tensor *all[] = {&x, &qkv, &ctx, &tmp, &inter, &wqkv, &wo, &wi, &wo2, &wdec, &bqkv, &bo, &bi, &bdec, &g, &b, &so, &sp};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kn_tensor_free(be, all[i]);
    return 0;
}

int main(int argc, char **argv)
{
    const char *backend = "cpu", *seqs = "128,256,512", *paths = "encoder,splade", *dir = "/tmp/lexis-bert-base";
    const char *dts = "bf16";
    int threads = 0, batch = 8, iters = 3, profile = 0, ops = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bert-bench: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--seqs")) seqs = v;
        else if (!strcmp(a, "--iters")) iters = atoi(v);
        else if (!strcmp(a, "--paths")) paths = v;
        else if (!strcmp(a, "--dir")) dir = v;
        else if (!strcmp(a, "--dtype")) dts = v;
        else if (!strcmp(a, "--profile")) profile = atoi(v);
        else if (!strcmp(a, "--ops")) ops = atoi(v);
        else {
            fprintf(stderr, "usage: bert-bench [--backend cpu|cuda] [--threads N] [--batch B] [--seqs 128,256] "
                            "[--iters K] [--paths encoder,splade] [--dtype bf16|f16|f32] [--dir DIR]\n");
            return 2;
        }
        i++;
    }
    int rc = write_checkpoint(dir);
    if (rc) {
        fprintf(stderr, "bert-bench: writing %s: %s\n", dir, lx_strerror(rc));
        return 1;
    }
    kn_backend_params bp = kn_backend_default_params();
    bp.n_threads = threads;
    bp.profile = profile;
    kn_backend *be;
    rc = kn_backend_open(&be, strcmp(backend, "cuda") == 0 ? KN_BACKEND_CUDA : KN_BACKEND_CPU, &bp);
    if (rc) {
        fprintf(stderr, "bert-bench: backend %s: %s\n", backend, lx_strerror(rc));
        return 1;
    }
    kn_bert_params mp = kn_bert_default_params();
    mp.weight_dtype = !strcmp(dts, "f32") ? KN_F32 : !strcmp(dts, "f16") ? KN_F16 : KN_BF16;
    kn_bert *m;
    double t0 = lx_now();
    rc = kn_bert_open(&m, be, dir, &mp);
    if (rc) {
        fprintf(stderr, "bert-bench: %s: %s\n", lx_strerror(rc), kn_backend_errmsg(be));
        return 1;
    }
    fprintf(stderr, "bert-bench: loaded %s on %s in %.2f s\n", dir, kn_backend_name(be), lx_now() - t0);
    char sbuf[256];
    snprintf(sbuf, sizeof sbuf, "%s", seqs);
    for (char *tok = strtok(sbuf, ","); tok; tok = strtok(NULL, ",")) {
        int S = atoi(tok);
        int T = S * batch;
        if (ops && (rc = bench_ops(be, mp.weight_dtype, S, batch, iters > 0 ? iters : 1)))
            return 1;
        int32_t *ids = malloc((size_t)T * sizeof *ids), *off = malloc((size_t)(batch + 1) * sizeof *off);
        for (int t = 0; t < T; t++)
            ids[t] = 1000 + (int32_t)((frand() + 1) * 0.5 * (V - 1001));
        for (int b = 0; b <= batch; b++)
            off[b] = b * S;
        /* page-locked on CUDA, as a pipeline feeding an index would hold it */
        float *splade = kn_host_alloc(be, (size_t)batch * V * sizeof *splade);
        if (!splade) {
            fprintf(stderr, "bert-bench: no memory for the [%d, %d] output\n", batch, V);
            return 1;
        }
        kn_bert_batch bt = {.n_seq = batch, .seq_off = off, .ids = ids, .types = NULL};
        char pbuf[64];
        snprintf(pbuf, sizeof pbuf, "%s", paths);
        char *save;
        for (char *p = strtok_r(pbuf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
            int spl = !strcmp(p, "splade");
            kn_bert_out out = {.splade = spl ? splade : NULL};
            double *ts = malloc((size_t)(iters > 0 ? iters : 1) * sizeof *ts);
            rc = kn_bert_forward(m, &bt, &out);   /* warm-up */
            for (int k = 0; k < iters && rc == 0; k++) {
                double a = lx_now();
                rc = kn_bert_forward(m, &bt, &out);
                ts[k] = lx_now() - a;
            }
            if (rc) {
                fprintf(stderr, "bert-bench: forward: %s: %s\n", lx_strerror(rc), kn_backend_errmsg(be));
                return 1;
            }
            qsort(ts, (size_t)iters, sizeof *ts, cmp_d);
            double t = ts[iters / 2];
            /* FLOPs: 2 per multiply-add of the layer GEMMs and attention, plus the MLM head */
            double fl = (double)T * NL * (2.0 * (4.0 * H * H + 2.0 * H * I) + 4.0 * S * H);
            if (spl)
                fl += (double)T * (2.0 * H * H + 2.0 * H * V);
            printf("lexis %-4s %-7s seq %3d batch %d: %8.2f docs/s (%.2f ms/batch, %.1f TFLOP/s)\n", backend, p, S, batch,
                   batch / t, t * 1e3, fl / t / 1e12);
            fflush(stdout);
            free(ts);
            double sec[KN_OP_COUNT];
            long calls[KN_OP_COUNT];
            static double prev[KN_OP_COUNT];   /* totals printed so far */
            static long prevc[KN_OP_COUNT];
            if (kn_backend_profile(be, sec, calls) == 0) {
                double tot = 0;
                for (int o = 0; o < KN_OP_COUNT; o++)
                    tot += sec[o] - prev[o];
                for (int o = 0; o < KN_OP_COUNT; o++) {
                    if (calls[o] > prevc[o])
                        printf("    %-12s %7.2f ms/batch %5.1f%%\n", kn_op_name((kn_op)o),
                               (sec[o] - prev[o]) * 1e3 / (iters + 1), 100 * (sec[o] - prev[o]) / tot);
                    prev[o] = sec[o];
                    prevc[o] = calls[o];
                }
            }
        }
        free(ids);
        free(off);
        kn_host_free(be, splade);
    }
    kn_bert_close(m);
    kn_backend_close(be);
    return 0;
}
