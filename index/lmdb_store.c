/* lmdb_store.c: the one file that calls LMDB.
 *
 * Everything else in index/ sees named databases as idx_db numbers, values as
 * borrowed (pointer, size) pairs, and errors as lexis codes. LMDB's own codes
 * are translated here; the LMDB text is kept in the store's errmsg.
 *
 * The map: LMDB needs a fixed map size. We start at max(file size * 2,
 * 64 MiB) and grow between transactions when a writer asks (idx_store_grow)
 * or when a commit fails with MDB_MAP_FULL (the writer then retries its batch).
 * Environment flags: MDB_NOTLS so a read transaction may move between threads
 * (server workers), MDB_NORDAHEAD because queries touch scattered pages.
 */
#include "index_impl.h"

#include <lmdb.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct idx_store {
    MDB_env *env;
    MDB_dbi dbi[IDX_DB_COUNT];
    unsigned missing;         /* bit db: absent from an older index (the
                                 format check refuses it next), reads as empty */
    int rdonly;
    size_t map_size;
    char errmsg[256];
};

struct idx_stxn {
    idx_store *s;
    MDB_txn *txn;
};

struct idx_scur {
    idx_stxn *t;
    MDB_cursor *cur;
};

static const char *const idx_db_names[IDX_DB_COUNT] = {
    "meta", "terms", "postings", "segments", "docs", "ids", "deleted", "dicts",
};

/* A database an older index lacks: reads find nothing in it, writes are
 * refused (the format check refuses the index before any write). */
static int db_missing(const idx_store *s, int db)
{
    return (s->missing >> db) & 1;
}

static int idx_store_rc(idx_store *s, int mrc)
{
    if (mrc == 0)
        return 0;
    if (s)
        snprintf(s->errmsg, sizeof s->errmsg, "lmdb: %s", mdb_strerror(mrc));
    switch (mrc) {
    case MDB_NOTFOUND: return LX_E_NOTFOUND;
    case MDB_MAP_FULL: return LX_E_MAPFULL;
    case MDB_TXN_FULL: return LX_E_MAPFULL;
    case MDB_INVALID: return LX_E_NOTINDEX;
    case MDB_VERSION_MISMATCH: return LX_E_VERSION;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND: return LX_E_CORRUPT;
    case MDB_READERS_FULL: return LX_E_BUSY;
    case MDB_KEYEXIST: return LX_E_EXISTS;
    case MDB_BAD_VALSIZE: return LX_E_TOOBIG;
    default: break;
    }
    if (mrc > 0)
        return mrc;          /* an errno from the OS */
    return LX_E_STORE;
}

const char *idx_store_errmsg(const idx_store *s) { return s->errmsg; }

int idx_store_open(const char *path, int flags, idx_store **out, char *err, size_t cap)
{
    int rc, mrc;
    idx_store *s = calloc(1, sizeof *s);
    if (!s)
        return LX_E_NOMEM;
    s->rdonly = (flags & IDX_STORE_RDONLY) != 0;

    char file[4096];
    struct stat st;
    snprintf(file, sizeof file, "%s/data.mdb", path);
    size_t file_size = stat(file, &st) == 0 ? (size_t)st.st_size : 0;
    s->map_size = file_size * 2;
    if (s->map_size < ((size_t)64 << 20))
        s->map_size = (size_t)64 << 20;

    if ((mrc = mdb_env_create(&s->env)) != 0)
        goto out_lmdb;
    if ((mrc = mdb_env_set_maxdbs(s->env, IDX_DB_COUNT + 4)) != 0)
        goto out_lmdb;
    if ((mrc = mdb_env_set_maxreaders(s->env, 1024)) != 0)
        goto out_lmdb;
    if ((mrc = mdb_env_set_mapsize(s->env, s->map_size)) != 0)
        goto out_lmdb;
    unsigned eflags = MDB_NOTLS | MDB_NORDAHEAD | (s->rdonly ? MDB_RDONLY : 0);
    if ((mrc = mdb_env_open(s->env, path, eflags, 0644)) != 0)
        goto out_lmdb;
    /* Another process may have grown the file: adopt its size. */
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    s->map_size = info.me_mapsize;

    MDB_txn *txn;
    if ((mrc = mdb_txn_begin(s->env, NULL, s->rdonly ? MDB_RDONLY : 0, &txn)) != 0)
        goto out_lmdb;
    for (int i = 0; i < IDX_DB_COUNT; i++) {
        unsigned dflags = (flags & IDX_STORE_CREATE) ? MDB_CREATE : 0;
        if ((mrc = mdb_dbi_open(txn, idx_db_names[i], dflags, &s->dbi[i])) != 0) {
            if (mrc == MDB_NOTFOUND && i != IDX_DB_META) {
                s->missing |= 1u << i;
                continue;
            }
            mdb_txn_abort(txn);
            if (mrc == MDB_NOTFOUND) {
                snprintf(err, cap, "%s: no '%s' database inside (not a lexis index)", path,
                         idx_db_names[i]);
                rc = LX_E_NOTINDEX;
                goto out_close;
            }
            goto out_lmdb;
        }
    }
    if ((mrc = mdb_txn_commit(txn)) != 0)
        goto out_lmdb;
    *out = s;
    return 0;

out_lmdb:
    rc = idx_store_rc(s, mrc);
    if (err)
        snprintf(err, cap, "%s: %s", path, mdb_strerror(mrc));
out_close:
    if (s->env)
        mdb_env_close(s->env);
    free(s);
    return rc;
}

void idx_store_close(idx_store *s)
{
    if (!s)
        return;
    mdb_env_close(s->env);
    free(s);
}

int idx_store_grow(idx_store *s, size_t need)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    size_t used = (size_t)(info.me_last_pgno + 1) * st.ms_psize;
    size_t want = info.me_mapsize;
    while (want < used + need + (need >> 1))
        want *= 2;
    if (want == info.me_mapsize)
        return 0;
    int mrc = mdb_env_set_mapsize(s->env, want);
    if (mrc)
        return idx_store_rc(s, mrc);
    s->map_size = want;
    return 0;
}

int idx_store_info(idx_store *s, uint64_t *map_bytes, uint64_t *used_bytes)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    *map_bytes = info.me_mapsize;
    *used_bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
    return 0;
}

int idx_store_is_file(idx_store *s, const char *path)
{
    mdb_filehandle_t fd;
    struct stat held, now;
    return mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &held) == 0 && stat(path, &now) == 0 &&
           held.st_ino == now.st_ino && held.st_dev == now.st_dev;
}

/* Pages in use: every named database's, the main database's and the two
 * meta pages; the rest of the file up to last_pgno is free (LMDB reuses free
 * pages for later writes but never gives them back to the file system). */
static int store_used_pages(idx_store *s, uint64_t *used, uint64_t *total)
{
    MDB_envinfo info;
    MDB_stat st;
    MDB_txn *txn;
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    *total = (uint64_t)info.me_last_pgno + 1;
    *used = 2 + st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (mrc)
        return idx_store_rc(s, mrc);
    for (int i = 0; i < IDX_DB_COUNT; i++) {
        if (db_missing(s, i))
            continue;
        if ((mrc = mdb_stat(txn, s->dbi[i], &st)) != 0)
            break;
        *used += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    }
    mdb_txn_abort(txn);
    return idx_store_rc(s, mrc);
}

int idx_store_compact(idx_store *s, const char *dir, unsigned min_free_pct, uint64_t *saved)
{
    *saved = 0;
    uint64_t used, total;
    int rc = store_used_pages(s, &used, &total);
    if (rc)
        return rc;
    if (used >= total || (total - used) * 100 < (uint64_t)min_free_pct * total)
        return 0;
    char tmp[4200], dst[4200];
    snprintf(tmp, sizeof tmp, "%s/" IDX_COMPACT_FILE, dir);
    snprintf(dst, sizeof dst, "%s/data.mdb", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        snprintf(s->errmsg, sizeof s->errmsg, "data.mdb.compact: %s", strerror(e));
        return e;
    }
    struct stat before, after;
    int mrc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    if (mrc == 0 && (fsync(fd) != 0 || fstat(fd, &after) != 0))
        mrc = errno;
    close(fd);
    if (mrc == 0 && (stat(dst, &before) != 0 || rename(tmp, dst) != 0))
        mrc = errno;
    if (mrc) {
        rc = idx_store_rc(s, mrc);
        unlink(tmp);
        return rc;
    }
    /* The rename itself must reach the disk before we say it is done. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    if (before.st_size > after.st_size)
        *saved = (uint64_t)(before.st_size - after.st_size);
    return 0;
}

int idx_store_begin(idx_store *s, int write, idx_stxn **out)
{
    idx_stxn *t = malloc(sizeof *t);
    if (!t)
        return LX_E_NOMEM;
    t->s = s;
    int mrc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    if (mrc == MDB_MAP_RESIZED) {
        /* Another process grew the map: adopt the new size and retry. */
        mdb_env_set_mapsize(s->env, 0);
        mrc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    }
    if (mrc) {
        free(t);
        return idx_store_rc(s, mrc);
    }
    *out = t;
    return 0;
}

int idx_store_commit(idx_stxn *t)
{
    int mrc = mdb_txn_commit(t->txn);
    int rc = idx_store_rc(t->s, mrc);
    free(t);
    return rc;
}

void idx_store_abort(idx_stxn *t)
{
    if (!t)
        return;
    mdb_txn_abort(t->txn);
    free(t);
}

int idx_store_get(idx_stxn *t, int db, const void *key, size_t klen, idx_val *v)
{
    MDB_val k = { klen, (void *)key }, d;
    if (db_missing(t->s, db))
        return LX_E_NOTFOUND;
    int mrc = mdb_get(t->txn, t->s->dbi[db], &k, &d);
    if (mrc == MDB_NOTFOUND)
        return LX_E_NOTFOUND;
    if (mrc)
        return idx_store_rc(t->s, mrc);
    v->data = d.mv_data;
    v->size = d.mv_size;
    return 0;
}

int idx_store_put(idx_stxn *t, int db, const void *key, size_t klen,
                  const void *val, size_t vlen, int append)
{
    MDB_val k = { klen, (void *)key }, d = { vlen, (void *)val };
    if (db_missing(t->s, db))
        return LX_E_NOTINDEX;
    return idx_store_rc(t->s, mdb_put(t->txn, t->s->dbi[db], &k, &d, append ? MDB_APPEND : 0));
}

int idx_store_reserve(idx_stxn *t, int db, const void *key, size_t klen,
                      size_t vlen, int append, void **dst)
{
    MDB_val k = { klen, (void *)key }, d = { vlen, NULL };
    if (db_missing(t->s, db))
        return LX_E_NOTINDEX;
    int mrc = mdb_put(t->txn, t->s->dbi[db], &k, &d, MDB_RESERVE | (append ? MDB_APPEND : 0));
    if (mrc)
        return idx_store_rc(t->s, mrc);
    *dst = d.mv_data;
    return 0;
}

int idx_store_del(idx_stxn *t, int db, const void *key, size_t klen)
{
    MDB_val k = { klen, (void *)key };
    if (db_missing(t->s, db))
        return LX_E_NOTFOUND;
    int mrc = mdb_del(t->txn, t->s->dbi[db], &k, NULL);
    if (mrc == MDB_NOTFOUND)
        return LX_E_NOTFOUND;
    return idx_store_rc(t->s, mrc);
}

int idx_store_drop_all(idx_stxn *t, int db)
{
    if (db_missing(t->s, db))
        return LX_E_NOTINDEX;
    return idx_store_rc(t->s, mdb_drop(t->txn, t->s->dbi[db], 0));
}

int idx_store_count(idx_stxn *t, int db, uint64_t *n, uint64_t *bytes)
{
    MDB_stat st;
    if (db_missing(t->s, db)) {
        *n = *bytes = 0;
        return 0;
    }
    int mrc = mdb_stat(t->txn, t->s->dbi[db], &st);
    if (mrc)
        return idx_store_rc(t->s, mrc);
    *n = st.ms_entries;
    *bytes = (uint64_t)(st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) * st.ms_psize;
    return 0;
}

int idx_scur_open(idx_stxn *t, int db, idx_scur **out)
{
    idx_scur *c = malloc(sizeof *c);
    if (!c)
        return LX_E_NOMEM;
    c->t = t;
    if (db_missing(t->s, db)) {
        free(c);
        return LX_E_NOTINDEX;
    }
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[db], &c->cur);
    if (mrc) {
        free(c);
        return idx_store_rc(t->s, mrc);
    }
    *out = c;
    return 0;
}

static int idx_scur_get(idx_scur *c, MDB_val *k, MDB_cursor_op op, idx_val *ko, idx_val *vo)
{
    MDB_val d;
    int mrc = mdb_cursor_get(c->cur, k, &d, op);
    if (mrc == MDB_NOTFOUND)
        return LX_E_NOTFOUND;
    if (mrc)
        return idx_store_rc(c->t->s, mrc);
    if (ko) { ko->data = k->mv_data; ko->size = k->mv_size; }
    if (vo) { vo->data = d.mv_data; vo->size = d.mv_size; }
    return 0;
}

int idx_scur_seek(idx_scur *c, const void *key, size_t klen, idx_val *k, idx_val *v)
{
    MDB_val mk = { klen, (void *)key };
    return idx_scur_get(c, &mk, key ? MDB_SET_RANGE : MDB_FIRST, k, v);
}

int idx_scur_next(idx_scur *c, idx_val *k, idx_val *v)
{
    MDB_val mk;
    return idx_scur_get(c, &mk, MDB_NEXT, k, v);
}

void idx_scur_close(idx_scur *c)
{
    if (!c)
        return;
    mdb_cursor_close(c->cur);
    free(c);
}
