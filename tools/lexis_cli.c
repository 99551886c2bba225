/* lexis_cli.c: helpers every subcommand uses: opening an index with a clear
 * message, strict number parsing, JSON string output, the progress bar. */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_fail(int rc, const char *what, const char *detail)
{
    fprintf(stderr, "lexis: %s: %s\n", what, detail && *detail ? detail : lx_strerror(rc));
    return rc == LX_E_BUSY ? CLI_BUSY : CLI_ERROR;
}

int cli_open_index(const char *path, int rdonly, idx_env **out)
{
    char err[512];
    int rc = idx_env_open(path, rdonly ? IDX_RDONLY : 0, NULL, out, err, sizeof err);
    if (rc) {
        fprintf(stderr, "lexis: %s\n", err[0] ? err : lx_strerror(rc));
        return rc == LX_E_BUSY ? CLI_BUSY : CLI_ERROR;
    }
    return 0;
}

int cli_open_writer(const char *path, idx_env **env, idx_writer **w)
{
    int rc = cli_open_index(path, 0, env);
    if (rc)
        return rc;
    if ((rc = idx_writer_open(*env, NULL, w)) != 0) {
        int out = cli_fail(rc, path, idx_env_errmsg(*env));
        idx_env_close(*env);
        *env = NULL;
        return out;
    }
    return 0;
}

int cli_searcher_open(const char *path, cli_searcher *s)
{
    memset(s, 0, sizeof *s);
    int rc = cli_open_index(path, 1, &s->env);
    if (rc)
        return rc;
    if ((rc = qry_engine_open(s->env, &s->q)) || (rc = idx_reader_open(s->env, &s->r))) {
        int out = cli_fail(rc, path, NULL);
        cli_searcher_close(s);
        return out;
    }
    return 0;
}

void cli_searcher_close(cli_searcher *s)
{
    idx_reader_close(s->r);
    qry_engine_close(s->q);
    idx_env_close(s->env);
    memset(s, 0, sizeof *s);
}

int cli_parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > UINT32_MAX || *s == '-')
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int cli_parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return -1;
    *out = (float)v;
    return 0;
}

int cli_parse_size_mb(const char *s, size_t *bytes)
{
    uint32_t mb;
    if (cli_parse_u32(s, &mb) || mb == 0)
        return -1;
    *bytes = (size_t)mb << 20;
    return 0;
}

void cli_json_string(FILE *f, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < len;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f); fputc((int)c, f); i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': fputs("\\n", f); break;
            case '\t': fputs("\\t", f); break;
            case '\r': fputs("\\r", f); break;
            default: fprintf(f, "\\u%04x", c);
            }
            i++;
        } else if (c < 0x80) {
            fputc((int)c, f); i++;
        } else {
            int32_t cp;
            size_t n = lx_utf8_decode(p + i, len - i, &cp);
            if (n) { fwrite(p + i, 1, n, f); i += n; }
            else { fputs("\xEF\xBF\xBD", f); i++; }
        }
    }
    fputc('"', f);
}

const char *cli_doc_field(const idx_doc *d, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < d->nfields; i++) {
        if (d->name_lens[i] == nl && memcmp(d->names[i], name, nl) == 0) {
            *len = d->value_lens[i];
            return d->values[i];
        }
    }
    *len = 0;
    return "";
}

void cli_progress_init(cli_progress *p, int enabled, uint64_t total_bytes)
{
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    p->start = lx_now();
    p->total_bytes = total_bytes;
}

static void cli_progress_draw(cli_progress *p, double now)
{
    double el = now - p->start;
    double rate = el > 0 ? (double)p->docs / el : 0;
    char bar[32] = "";
    char eta[32] = "";
    if (p->total_bytes) {
        double frac = (double)p->bytes / (double)p->total_bytes;
        if (frac > 1) frac = 1;
        int w = (int)(frac * 24);
        for (int i = 0; i < 24; i++) bar[i] = i < w ? '#' : '.';
        bar[24] = '\0';
        if (frac > 0.001) {
            double left = el / frac - el;
            snprintf(eta, sizeof eta, " ETA %d:%02d", (int)left / 60, (int)left % 60);
        }
        fprintf(stderr, "\r[%s] %3.0f%% %llu docs %.0f docs/s%s   ", bar, frac * 100,
                (unsigned long long)p->docs, rate, eta);
    } else {
        fprintf(stderr, "\r%llu docs %.0f docs/s   ", (unsigned long long)p->docs, rate);
    }
    fflush(stderr);
    p->last_draw = now;
}

void cli_progress_cb(void *ctx, uint64_t docs, uint64_t bytes, int committed)
{
    cli_progress *p = ctx;
    if (committed) {
        p->commits++;
        return;
    }
    p->docs = docs;
    p->bytes = bytes;
    if (!p->enabled || (docs & 63))
        return;
    double now = lx_now();
    if (now - p->last_draw >= 0.1)
        cli_progress_draw(p, now);
}

void cli_progress_done(cli_progress *p)
{
    if (!p->enabled)
        return;
    cli_progress_draw(p, lx_now());
    fputc('\n', stderr);
}

void cli_queries_free(cli_query *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(q[i].id);
        free(q[i].text);
    }
    free(q);
}

int cli_queries_load(const char *path, cli_query **out, size_t *n, size_t *skipped)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        fprintf(stderr, "lexis: %s: %s\n", path, strerror(errno));
        return CLI_ERROR;
    }
    cli_query *qs = NULL;
    size_t nq = 0, cap = 0, lcap = 0;
    char *line = NULL;
    ssize_t len;
    unsigned long lineno = 0;
    *skipped = 0;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)len)
            continue;
        json_error_t je;
        json_t *root = json_loadb(line, (size_t)len, 0, &je);
        json_t *id = root ? json_object_get(root, "_id") : NULL;
        json_t *text = root ? json_object_get(root, "text") : NULL;
        if (!id || !text || !json_is_string(text) || !(json_is_string(id) || json_is_integer(id))) {
            fprintf(stderr, "lexis: %s:%lu: expected {\"_id\",\"text\"}%s%s (skipped)\n", path,
                    lineno, root ? "" : ": ", root ? "" : je.text);
            (*skipped)++;
            json_decref(root);
            continue;
        }
        if (nq == cap) {
            cap = cap ? cap * 2 : 256;
            cli_query *nqs = realloc(qs, cap * sizeof *nqs);
            if (!nqs) {
                json_decref(root);
                break;
            }
            qs = nqs;
        }
        char idbuf[32];
        if (json_is_string(id))
            qs[nq].id = strdup(json_string_value(id));
        else {
            snprintf(idbuf, sizeof idbuf, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
            qs[nq].id = strdup(idbuf);
        }
        qs[nq].text_len = json_string_length(text);
        qs[nq].text = malloc(qs[nq].text_len + 1);
        if (qs[nq].text)
            memcpy(qs[nq].text, json_string_value(text), qs[nq].text_len + 1);
        json_decref(root);
        if (!qs[nq].id || !qs[nq].text) {
            free(qs[nq].id);
            free(qs[nq].text);
            break;
        }
        nq++;
    }
    free(line);
    int err = ferror(f);
    if (f != stdin)
        fclose(f);
    if (err) {
        fprintf(stderr, "lexis: %s: read error\n", path);
        cli_queries_free(qs, nq);
        return CLI_ERROR;
    }
    *out = qs;
    *n = nq;
    return 0;
}

void cli_prf_init(cli_prf *p)
{
    p->on = 0;
    p->p = qry_rm3_default_params();
}

int cli_prf_option(cli_prf *p, int opt, const char *arg)
{
    switch (opt) {
    case CLI_OPT_RM3: p->on = 1; return 1;
    case CLI_OPT_FB_DOCS:
        p->on = 1;
        return cli_parse_u32(arg, &p->p.fb_docs) || p->p.fb_docs == 0 || p->p.fb_docs > 1000 ? -1 : 1;
    case CLI_OPT_FB_TERMS:
        p->on = 1;
        return cli_parse_u32(arg, &p->p.fb_terms) || p->p.fb_terms == 0 || p->p.fb_terms > 200 ? -1 : 1;
    case CLI_OPT_ORIG_WEIGHT:
        p->on = 1;
        return cli_parse_float(arg, &p->p.orig_weight) || p->p.orig_weight < 0
               || p->p.orig_weight > 1 ? -1 : 1;
    default: return 0;
    }
}

int cli_prf_search(const cli_prf *prf, qry_engine *q, idx_reader *r, const char *text, size_t len,
                   const qry_params *p, qry_result *res)
{
    if (prf->on)
        return qry_search_rm3(q, r, text, len, p, &prf->p, res);
    return qry_search(q, r, text, len, p, res);
}
