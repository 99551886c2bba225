/* bert-bench.c: lexis's BERT forward pass, documents per second.
 *
 *   bert-bench [--backend cpu|cuda] [--threads N] [--batch B] [--seqs 128,256,512]
 *              [--iters K] [--paths encoder,splade] [--dtype bf16|f16|f32] [--dir DIR]
 *              [--profile 1]   (per-op times; synchronizes after every op)
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

int main(int argc, char **argv)
{
    const char *backend = "cpu", *seqs = "128,256,512", *paths = "encoder,splade", *dir = "/tmp/lexis-bert-base";
    const char *dts = "bf16";
    int threads = 0, batch = 8, iters = 3, profile = 0;
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
        int32_t *ids = malloc((size_t)T * sizeof *ids), *off = malloc((size_t)(batch + 1) * sizeof *off);
        for (int t = 0; t < T; t++)
            ids[t] = 1000 + (int32_t)((frand() + 1) * 0.5 * (V - 1001));
        for (int b = 0; b <= batch; b++)
            off[b] = b * S;
        float *splade = malloc((size_t)batch * V * sizeof *splade);
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
        free(splade);
    }
    kn_bert_close(m);
    kn_backend_close(be);
    return 0;
}
