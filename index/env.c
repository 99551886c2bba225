/* env.c: opening and creating an index, its settings and statistics.
 *
 * An index directory holds LMDB's data.mdb and lock.mdb and our write.lock.
 * Creation writes every setting into `meta` in one transaction, so a crash
 * during creation leaves either no index or a complete empty one. Opening
 * checks the format version first: a newer version is refused (LX_E_VERSION)
 * rather than misread.
 */
#include "index_impl.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

idx_create_params idx_create_default_params(void)
{
    idx_create_params p;
    p.analyzer = enc_analyzer_default_params();
    p.fields = "title,text";
    p.k1 = 0.9f;
    p.b = 0.4f;
    return p;
}

void idx_env_set_error(idx_env *env, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(env->errmsg, sizeof env->errmsg, fmt, ap);
    va_end(ap);
    (void)rc;
}

const char *idx_env_errmsg(const idx_env *env) { return env->errmsg; }
const char *idx_env_analyzer_desc(const idx_env *env) { return env->analyzer_desc; }
const char *idx_env_fields(const idx_env *env) { return env->fields_buf; }
const char *idx_env_path(const idx_env *env) { return env->path; }
void idx_env_bm25(const idx_env *env, float *k1, float *b) { *k1 = env->k1; *b = env->b; }

int idx_stats_read(idx_stxn *t, idx_stats_disk *s)
{
    idx_val v;
    int rc = idx_store_get(t, IDX_DB_META, "stats", 5, &v);
    if (rc)
        return rc == LX_E_NOTFOUND ? LX_E_CORRUPT : rc;
    const unsigned char *p = v.data;
    if (v.size != IDX_STATS_SIZE || lx_ld64(p + 40) != idx_hash64(p, 40))
        return LX_E_CORRUPT;
    s->ndocs = lx_ld64(p);
    s->total_len = lx_ld64(p + 8);
    s->next_docid = lx_ld32(p + 16);
    s->next_segid = lx_ld32(p + 20);
    s->next_termid = lx_ld32(p + 24);
    s->ndeleted = lx_ld64(p + 32);
    return 0;
}

int idx_stats_write(idx_stxn *t, const idx_stats_disk *s)
{
    unsigned char p[IDX_STATS_SIZE] = { 0 };
    lx_st64(p, s->ndocs);
    lx_st64(p + 8, s->total_len);
    lx_st32(p + 16, s->next_docid);
    lx_st32(p + 20, s->next_segid);
    lx_st32(p + 24, s->next_termid);
    lx_st64(p + 32, s->ndeleted);
    lx_st64(p + 40, idx_hash64(p, 40));
    return idx_store_put(t, IDX_DB_META, "stats", 5, p, sizeof p, 0);
}

/* Splits a copy of env->fields_buf (comma-separated) into field_names; the
 * copy (env->field_storage) keeps fields_buf printable. */
static int idx_env_split_fields(idx_env *env)
{
    free(env->field_storage);
    env->field_storage = strdup(env->fields_buf);
    if (!env->field_storage)
        return LX_E_NOMEM;
    env->nfields = 0;
    char *s = env->field_storage;
    for (;;) {
        char *end = s + strcspn(s, ",");
        if (end == s || env->nfields == IDX_MAX_FIELDS)
            return LX_E_INVAL;
        env->field_names[env->nfields++] = s;
        if (*end == '\0')
            return 0;
        *end = '\0';
        s = end + 1;
    }
}

static int idx_meta_get_str(idx_stxn *t, const char *key, char *buf, size_t cap)
{
    idx_val v;
    int rc = idx_store_get(t, IDX_DB_META, key, strlen(key), &v);
    if (rc)
        return rc == LX_E_NOTFOUND ? LX_E_CORRUPT : rc;
    if (v.size >= cap)
        return LX_E_CORRUPT;
    memcpy(buf, v.data, v.size);
    buf[v.size] = '\0';
    return 0;
}

static int idx_env_create_meta(idx_env *env, const idx_create_params *cp)
{
    int rc;
    enc_analyzer *an = NULL;
    if ((rc = enc_analyzer_open(&cp->analyzer, &an)) != 0) {
        idx_env_set_error(env, rc, "bad analyzer settings (stemmer '%s')",
                          cp->analyzer.stemmer ? cp->analyzer.stemmer : "?");
        return rc;
    }
    rc = enc_analyzer_describe(an, env->analyzer_desc, sizeof env->analyzer_desc);
    enc_analyzer_close(an);
    if (rc)
        return rc;
    if (!cp->fields || strlen(cp->fields) >= sizeof env->fields_buf) {
        idx_env_set_error(env, LX_E_INVAL, "bad field list");
        return LX_E_INVAL;
    }
    snprintf(env->fields_buf, sizeof env->fields_buf, "%s", cp->fields);
    if (idx_env_split_fields(env)) {
        idx_env_set_error(env, LX_E_INVAL, "bad field list '%s' (1 to %d names, comma-separated)",
                          cp->fields, IDX_MAX_FIELDS);
        return LX_E_INVAL;
    }
    if (!(cp->k1 >= 0 && cp->k1 < 100 && cp->b >= 0 && cp->b <= 1)) {
        idx_env_set_error(env, LX_E_INVAL, "bad BM25 parameters k1=%g b=%g", cp->k1, cp->b);
        return LX_E_INVAL;
    }
    env->k1 = cp->k1;
    env->b = cp->b;
    env->format_version = IDX_FORMAT_VERSION;

    idx_stxn *t;
    if ((rc = idx_store_begin(env->store, 1, &t)) != 0)
        return rc;
    uint32_t ver = IDX_FORMAT_VERSION;
    unsigned char bm25[8];
    lx_stf(bm25, env->k1);
    lx_stf(bm25 + 4, env->b);
    idx_stats_disk st = { 0 };
    if ((rc = idx_store_put(t, IDX_DB_META, "format", 6, &ver, 4, 0))
        || (rc = idx_store_put(t, IDX_DB_META, "analyzer", 8, env->analyzer_desc,
                               strlen(env->analyzer_desc), 0))
        || (rc = idx_store_put(t, IDX_DB_META, "fields", 6, env->fields_buf, strlen(env->fields_buf), 0))
        || (rc = idx_store_put(t, IDX_DB_META, "bm25", 4, bm25, 8, 0))
        || (rc = idx_stats_write(t, &st))) {
        idx_store_abort(t);
        return rc;
    }
    return idx_store_commit(t);
}

static int idx_env_load_meta(idx_env *env)
{
    idx_stxn *t;
    idx_val v;
    int rc = idx_store_begin(env->store, 0, &t);
    if (rc)
        return rc;
    rc = idx_store_get(t, IDX_DB_META, "format", 6, &v);
    if (rc == LX_E_NOTFOUND || (rc == 0 && v.size != 4)) {
        idx_env_set_error(env, LX_E_NOTINDEX, "%s: not a lexis index (no format version)", env->path);
        rc = LX_E_NOTINDEX;
        goto out_abort;
    }
    if (rc)
        goto out_abort;
    env->format_version = lx_ld32(v.data);
    if (env->format_version > IDX_FORMAT_VERSION) {
        idx_env_set_error(env, LX_E_VERSION,
                          "%s: index format version %u is newer than this lexis reads (%u); "
                          "upgrade lexis", env->path, env->format_version, IDX_FORMAT_VERSION);
        rc = LX_E_VERSION;
        goto out_abort;
    }
    if (env->format_version < IDX_FORMAT_VERSION) {
        /* Version 1 stored documents uncompressed, without a codec byte;
         * version 2 postings headers lack the k-th best values; version 3
         * segments hold u32 document lengths; version 4 keys postings by
         * term id and has no segment dictionaries. */
        idx_env_set_error(env, LX_E_VERSION,
                          "%s: index format version %u is older than this lexis reads (%u); "
                          "rebuild it (lexis build --force)", env->path, env->format_version,
                          IDX_FORMAT_VERSION);
        rc = LX_E_VERSION;
        goto out_abort;
    }
    if ((rc = idx_meta_get_str(t, "analyzer", env->analyzer_desc, sizeof env->analyzer_desc))
        || (rc = idx_meta_get_str(t, "fields", env->fields_buf, sizeof env->fields_buf)))
        goto out_corrupt;
    if ((rc = idx_store_get(t, IDX_DB_META, "bm25", 4, &v)) || v.size != 8)
        goto out_corrupt;
    env->k1 = lx_ldf(v.data);
    env->b = lx_ldf((const char *)v.data + 4);
    if (idx_env_split_fields(env))
        goto out_corrupt;
    idx_store_abort(t);
    return 0;

out_corrupt:
    if (rc == 0 || rc == LX_E_NOTFOUND)
        rc = LX_E_CORRUPT;
    idx_env_set_error(env, rc, "%s: index metadata is damaged", env->path);
out_abort:
    idx_store_abort(t);
    return rc;
}

/* 1 if dir exists and holds nothing but . and .. */
static int dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            empty = 0;
            break;
        }
    }
    closedir(d);
    return empty;
}

int idx_is_index_file(const char *name)
{
    return !strcmp(name, "data.mdb") || !strcmp(name, "lock.mdb") || !strcmp(name, "write.lock")
           || !strcmp(name, IDX_COMPACT_FILE);
}

/* What a directory with a data.mdb holds:
 *   PROBE_INDEX      a lexis index (a format version is recorded)
 *   PROBE_ABANDONED  what a creation killed before committing its settings
 *                    leaves: an LMDB file with no committed page (two meta
 *                    pages only), or our named databases, all empty
 *   PROBE_FOREIGN    anything else (never touched)
 * A directory holding files other than LMDB's and ours is foreign. */
enum { PROBE_FOREIGN, PROBE_ABANDONED, PROBE_INDEX };

static int idx_env_probe(const char *path, uint64_t data_size)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *e;
    int other = 0;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (strcmp(n, ".") && strcmp(n, "..") && !idx_is_index_file(n))
            other = 1;
    }
    closedir(d);
    idx_store *s;
    char err[64];
    if (idx_store_open(path, IDX_STORE_RDONLY, &s, err, sizeof err) != 0)
        return !other && data_size <= 2 * 4096 ? PROBE_ABANDONED : PROBE_FOREIGN;
    int kind = PROBE_FOREIGN;
    idx_stxn *t;
    if (idx_store_begin(s, 0, &t) == 0) {
        idx_val v;
        if (idx_store_get(t, IDX_DB_META, "format", 6, &v) == 0) {
            kind = PROBE_INDEX;
        } else if (!other) {
            int empty = 1;
            for (int db = 0; db < IDX_DB_COUNT && empty; db++) {
                uint64_t n, bytes;
                empty = idx_store_count(t, db, &n, &bytes) == 0 && n == 0;
            }
            kind = empty ? PROBE_ABANDONED : PROBE_FOREIGN;
        }
        idx_store_abort(t);
    }
    idx_store_close(s);
    return kind;
}

int idx_env_open(const char *path, int flags, const idx_create_params *cp,
                 idx_env **out, char *errbuf, size_t errcap)
{
    int rc;
    char tmp[64];
    if (!errbuf) { errbuf = tmp; errcap = sizeof tmp; }
    errbuf[0] = '\0';
    idx_env *env = calloc(1, sizeof *env);
    if (!env)
        return LX_E_NOMEM;
    env->path = strdup(path);
    if (!env->path || idx_docshared_new(&env->docs)) {
        free(env->path);
        free(env);
        return LX_E_NOMEM;
    }

    struct stat st;
    char datafile[4096];
    snprintf(datafile, sizeof datafile, "%s/data.mdb", path);
    int exists = stat(path, &st) == 0;
    if (exists && !S_ISDIR(st.st_mode)) {
        snprintf(errbuf, errcap, "%s: not a directory (an index is a directory)", path);
        rc = LX_E_NOTINDEX;
        goto out_free;
    }
    int has_data = stat(datafile, &st) == 0;
    int create = 0;
    int probe = (flags & IDX_CREATE) && has_data ? idx_env_probe(path, (uint64_t)st.st_size)
                                                 : PROBE_INDEX;
    if ((flags & IDX_CREATE) && has_data && probe == PROBE_ABANDONED) {
        /* A creation killed before its first commit: nothing to lose. */
        char f[4200];
        snprintf(f, sizeof f, "%s/data.mdb", path);
        unlink(f);
        snprintf(f, sizeof f, "%s/lock.mdb", path);
        unlink(f);
        snprintf(f, sizeof f, "%s/write.lock", path);
        unlink(f);
        has_data = 0;
    }
    if (flags & IDX_CREATE) {
        if (has_data && probe == PROBE_INDEX) {
            snprintf(errbuf, errcap, "%s: an index already exists there", path);
            rc = LX_E_EXISTS;
            goto out_free;
        }
        if (has_data) {
            snprintf(errbuf, errcap, "%s: directory holds an LMDB file that is not a lexis index",
                     path);
            rc = LX_E_NOTINDEX;
            goto out_free;
        }
        if (exists && !dir_is_empty(path)) {
            snprintf(errbuf, errcap, "%s: directory is not empty and is not a lexis index", path);
            rc = LX_E_NOTINDEX;
            goto out_free;
        }
        if (!exists && mkdir(path, 0755) != 0) {
            rc = errno;
            snprintf(errbuf, errcap, "%s: cannot create directory: %s", path, strerror(rc));
            goto out_free;
        }
        create = 1;
    } else {
        if (!exists) {
            snprintf(errbuf, errcap, "%s: no such index", path);
            rc = LX_E_NOTFOUND;
            goto out_free;
        }
        if (!has_data) {
            snprintf(errbuf, errcap, "%s: not a lexis index (no data.mdb)", path);
            rc = LX_E_NOTINDEX;
            goto out_free;
        }
    }

    int sflags = (flags & IDX_RDONLY) ? IDX_STORE_RDONLY : 0;
    if (create)
        sflags |= IDX_STORE_CREATE;
    if ((rc = idx_store_open(path, sflags, &env->store, errbuf, errcap)) != 0) {
        if (rc == LX_E_NOTINDEX && !errbuf[0])
            snprintf(errbuf, errcap, "%s: not a lexis index", path);
        if (rc == LX_E_NOTINDEX && strstr(errbuf, "MDB_INVALID"))
            snprintf(errbuf, errcap, "%s: not a lexis index (data.mdb is not an LMDB file)", path);
        goto out_free;
    }
    if (create) {
        const idx_create_params def = idx_create_default_params();
        rc = idx_env_create_meta(env, cp ? cp : &def);
        if (rc) {
            snprintf(errbuf, errcap, "%s", env->errmsg[0] ? env->errmsg : lx_strerror(rc));
            goto out_close;
        }
    }
    if ((rc = idx_env_load_meta(env)) != 0) {
        snprintf(errbuf, errcap, "%s", env->errmsg[0] ? env->errmsg : lx_strerror(rc));
        goto out_close;
    }
    *out = env;
    return 0;

out_close:
    idx_store_close(env->store);
out_free:
    idx_docshared_free(env->docs);
    free(env->field_storage);
    free(env->path);
    free(env);
    return rc;
}

int idx_env_compact(idx_env *env, uint64_t *saved)
{
    int rc = idx_store_compact(env->store, env->path, IDX_COMPACT_MIN_FREE_PCT, saved);
    if (rc)
        idx_env_set_error(env, rc, "compacting %s: %s", env->path,
                          idx_store_errmsg(env->store));
    return rc;
}

void idx_env_close(idx_env *env)
{
    if (!env)
        return;
    idx_store_close(env->store);
    idx_docshared_free(env->docs);
    free(env->field_storage);
    free(env->path);
    free(env);
}
