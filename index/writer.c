/* writer.c: the single writer of an index: batch inversion and commits.
 *
 * Documents accumulate in memory as a batch: each is analyzed once, its terms
 * appended to per-term posting vectors (doc id, tf) in a hash table keyed by
 * the term bytes, and its stored form serialized into one growing buffer.
 * Doc ids are handed out in order from stats.next_docid, so every vector is
 * already sorted. When the batch passes the memory budget (or batch_docs, or
 * at close) it is flushed: one LMDB write transaction writes the batch as a
 * new segment (postings per term, doc lengths), the stored documents, the id
 * map, updated term statistics and collection statistics, and commits.
 * Memory is therefore bounded by the budget, and every commit is a complete
 * index. Nothing in memory changes until the commit succeeds, so a flush that
 * hits a full map is retried after growing it.
 *
 * Replacement and deletion: an id already committed is deleted at flush time
 * (before the batch's documents are written): its docid goes into the
 * deleted bitmap, its stored fields are re-analyzed to take its terms out of
 * df/cf, and its docs/ids records are removed. Its postings stay (segments
 * are immutable); readers skip deleted ids. An id repeated inside one batch
 * drops the earlier copy, which then never reaches the disk.
 *
 * Concurrency: one writer per index, enforced by flock on INDEX/write.lock
 * (and the locked file must still be the one at the path: build --force
 * swaps whole directories under that lock); readers (other processes
 * included) are never blocked (LMDB MVCC).
 */
#include "index_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* ---- batch structures ------------------------------------------------------ */

typedef struct wterm {
    uint64_t hash;
    uint32_t len;
    uint32_t term_id;      /* assigned during flush */
    uint32_t last_doc;     /* last doc appended, for tf accumulation */
    uint32_t n, cap;       /* postings in vec (pairs) */
    uint32_t *vec;         /* malloc'd: doc, tf, doc, tf, ... */
    char text[];           /* term bytes (not NUL-terminated) */
} wterm;

typedef struct wdoc {
    uint32_t docid;
    uint32_t len;          /* number of terms */
    size_t blob_off;       /* stored value in w->blob */
    size_t blob_len;
    int dropped;           /* replaced later in the same batch, or deleted */
} wdoc;

typedef struct pending_del {
    char *id;
    size_t len;
} pending_del;

struct idx_writer {
    idx_env *env;
    idx_writer_params p;
    int lock_fd;
    int compacted;         /* the file was swapped: no more writes (see compact) */
    enc_analyzer *an;

    idx_stats_disk stats;  /* committed statistics (copy) */

    /* term table: open addressing, power of two */
    wterm **tab;
    size_t tab_cap, nterms;
    lx_arena term_arena;

    wdoc *docs;
    size_t ndocs, docs_cap;
    unsigned char *blob;
    size_t blob_len, blob_cap;
    idx_docenc docenc;     /* stored documents: compression (docstore.c) */
    idx_docdec docdec;     /* and reading back replaced ones */
    /* batch ids: open addressing of indexes into docs (+1; 0 empty) */
    uint32_t *idtab;
    size_t idtab_cap;

    pending_del *dels;
    size_t ndels, dels_cap;

    size_t mem_used;       /* postings + blob + term bytes, approximately */
    uint64_t replaced;     /* documents replaced, committed */
    uint64_t commits;

    /* scratch for the current document */
    uint32_t cur_doc, cur_len;
    int oom;
};

idx_writer_params idx_writer_default_params(void)
{
    idx_writer_params p;
    memset(&p, 0, sizeof p);
    p.mem_budget = (size_t)512 << 20;
    p.log = stderr;
    return p;
}

/* ---- open / close ----------------------------------------------------------- */

static int idx_writer_load_stats(idx_writer *w)
{
    idx_stxn *t;
    int rc = idx_store_begin(w->env->store, 0, &t);
    if (rc)
        return rc;
    rc = idx_stats_read(t, &w->stats);
    idx_store_abort(t);
    return rc;
}

int idx_writer_open(idx_env *env, const idx_writer_params *p, idx_writer **out)
{
    int rc;
    idx_writer *w = calloc(1, sizeof *w);
    if (!w)
        return LX_E_NOMEM;
    w->env = env;
    idx_docenc_init(&w->docenc);
    idx_docdec_init(&w->docdec, env);
    w->p = p ? *p : idx_writer_default_params();
    if (!w->p.log)
        w->p.log = stderr;
    if (w->p.mem_budget < ((size_t)1 << 20))
        w->p.mem_budget = (size_t)1 << 20;
    w->lock_fd = -1;
    lx_arena_init(&w->term_arena, 1 << 20);

    char lockpath[4096];
    if ((rc = idx_writer_lock(env->path, &w->lock_fd)) != 0) {
        if (rc == LX_E_BUSY)
            idx_env_set_error(env, rc, "%s: another process is writing to this index", env->path);
        else
            idx_env_set_error(env, rc, "%s/write.lock: %s", env->path, strerror(rc));
        goto out_free;
    }
    /* The index at the path must still be the one env has open: `lexis
     * build --force` exchanges the whole directory for a new index (under
     * the old one's lock) and removes the old one, and a compaction renames
     * a new data.mdb over the old, so an env opened before either would
     * write into a file nobody reads again (while the lock just taken, by
     * path, may be the new index's). */
    snprintf(lockpath, sizeof lockpath, "%s/data.mdb", env->path);
    if (!idx_store_is_file(env->store, lockpath)) {
        rc = LX_E_BUSY;
        idx_env_set_error(env, rc,
                          "%s: the index was replaced since it was opened (by build --force, or a "
                          "compaction); open it again",
                          env->path);
        goto out_free;
    }
    /* Under the lock no compaction runs: a copy left here was interrupted. */
    snprintf(lockpath, sizeof lockpath, "%s/" IDX_COMPACT_FILE, env->path);
    unlink(lockpath);
    enc_analyzer_params ap;
    char storage[256];
    if ((rc = enc_analyzer_params_parse(env->analyzer_desc, &ap, storage, sizeof storage))
        || (rc = enc_analyzer_open(&ap, &w->an))) {
        idx_env_set_error(env, rc, "index analyzer '%s' cannot be opened", env->analyzer_desc);
        goto out_free;
    }
    if ((rc = idx_writer_load_stats(w)) != 0) {
        idx_env_set_error(env, rc, "cannot read index statistics: %s", lx_strerror(rc));
        goto out_free;
    }
    w->tab_cap = 1 << 16;
    w->tab = calloc(w->tab_cap, sizeof *w->tab);
    w->idtab_cap = 1 << 12;
    w->idtab = calloc(w->idtab_cap, sizeof *w->idtab);
    if (!w->tab || !w->idtab) {
        rc = LX_E_NOMEM;
        goto out_free;
    }
    *out = w;
    return 0;

out_free:
    idx_writer_abandon(w);
    return rc;
}

int idx_writer_lock(const char *dir, int *fd)
{
    char lockpath[4096];
    snprintf(lockpath, sizeof lockpath, "%s/write.lock", dir);
    int lfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0)
        return errno;
    if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        int rc = errno == EWOULDBLOCK ? LX_E_BUSY : errno;
        close(lfd);
        return rc;
    }
    *fd = lfd;
    return 0;
}

static void idx_writer_clear_batch(idx_writer *w)
{
    for (size_t i = 0; i < w->tab_cap; i++) {
        if (w->tab[i]) {
            free(w->tab[i]->vec);
            w->tab[i] = NULL;
        }
    }
    w->nterms = 0;
    lx_arena_reset(&w->term_arena);
    w->ndocs = 0;
    w->blob_len = 0;
    memset(w->idtab, 0, w->idtab_cap * sizeof *w->idtab);
    for (size_t i = 0; i < w->ndels; i++)
        free(w->dels[i].id);
    w->ndels = 0;
    w->mem_used = 0;
}

void idx_writer_abandon(idx_writer *w)
{
    if (!w)
        return;
    if (w->tab)
        idx_writer_clear_batch(w);
    free(w->tab);
    free(w->idtab);
    free(w->docs);
    free(w->blob);
    idx_docenc_free(&w->docenc);
    idx_docdec_free(&w->docdec);
    free(w->dels);
    lx_arena_free(&w->term_arena);
    enc_analyzer_close(w->an);
    if (w->lock_fd >= 0)
        close(w->lock_fd);      /* releases the flock */
    free(w);
}

int idx_writer_close(idx_writer *w)
{
    int rc = idx_writer_flush(w);
    idx_writer_abandon(w);
    return rc;
}

/* ---- term table ------------------------------------------------------------- */

static int idx_writer_grow_terms(idx_writer *w)
{
    size_t cap = w->tab_cap * 2;
    wterm **tab = calloc(cap, sizeof *tab);
    if (!tab)
        return LX_E_NOMEM;
    for (size_t i = 0; i < w->tab_cap; i++) {
        wterm *t = w->tab[i];
        if (!t)
            continue;
        size_t j = t->hash & (cap - 1);
        while (tab[j])
            j = (j + 1) & (cap - 1);
        tab[j] = t;
    }
    free(w->tab);
    w->tab = tab;
    w->tab_cap = cap;
    return 0;
}

static wterm *idx_writer_term(idx_writer *w, const char *s, size_t len)
{
    uint64_t h = idx_hash64(s, len);
    size_t mask = w->tab_cap - 1, j = h & mask;
    wterm *t;
    while ((t = w->tab[j]) != NULL) {
        if (t->hash == h && t->len == len && memcmp(t->text, s, len) == 0)
            return t;
        j = (j + 1) & mask;
    }
    t = lx_arena_alloc(&w->term_arena, sizeof *t + len);
    if (!t)
        return NULL;
    t->hash = h;
    t->len = (uint32_t)len;
    t->term_id = 0;
    t->last_doc = IDX_NO_DOC;
    t->n = t->cap = 0;
    t->vec = NULL;
    memcpy(t->text, s, len);
    w->tab[j] = t;
    w->mem_used += sizeof *t + len + 16;
    if (++w->nterms * 2 > w->tab_cap && idx_writer_grow_terms(w))
        return NULL;
    return t;
}

static int idx_writer_on_term(void *ctx, const char *term, size_t len, uint32_t pos)
{
    idx_writer *w = ctx;
    (void)pos;
    wterm *t = idx_writer_term(w, term, len);
    if (!t)
        return LX_E_NOMEM;
    w->cur_len++;
    if (t->last_doc == w->cur_doc) {
        t->vec[2 * t->n - 1]++;
        return 0;
    }
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 2;
        uint32_t *v = realloc(t->vec, (size_t)cap * 2 * sizeof *v);
        if (!v)
            return LX_E_NOMEM;
        w->mem_used += (size_t)(cap - t->cap) * 2 * sizeof *v;
        t->vec = v;
        t->cap = cap;
    }
    t->vec[2 * t->n] = w->cur_doc;
    t->vec[2 * t->n + 1] = 1;
    t->n++;
    t->last_doc = w->cur_doc;
    return 0;
}

/* ---- batch ids ---------------------------------------------------------------- */

static const unsigned char *wdoc_id(const idx_writer *w, const wdoc *d, size_t *len)
{
    const unsigned char *v = w->blob + d->blob_off;
    uint16_t l;
    memcpy(&l, v + IDX_DOC_HEADER, 2);
    *len = l;
    return v + IDX_DOC_HEADER + 2;
}

/* Returns the slot for id in idtab (holding 0 or docs index + 1). */
static uint32_t *idx_writer_idslot(idx_writer *w, const char *id, size_t len)
{
    size_t mask = w->idtab_cap - 1, j = idx_hash64(id, len) & mask;
    for (;;) {
        uint32_t *slot = &w->idtab[j];
        if (*slot == 0)
            return slot;
        size_t l;
        const unsigned char *s = wdoc_id(w, &w->docs[*slot - 1], &l);
        if (l == len && memcmp(s, id, len) == 0)
            return slot;
        j = (j + 1) & mask;
    }
}

static int idx_writer_grow_ids(idx_writer *w)
{
    size_t cap = w->idtab_cap * 2;
    uint32_t *old = w->idtab;
    size_t oldcap = w->idtab_cap;
    w->idtab = calloc(cap, sizeof *w->idtab);
    if (!w->idtab) {
        w->idtab = old;
        return LX_E_NOMEM;
    }
    w->idtab_cap = cap;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i])
            continue;
        size_t l;
        const unsigned char *s = wdoc_id(w, &w->docs[old[i] - 1], &l);
        *idx_writer_idslot(w, (const char *)s, l) = old[i];
    }
    free(old);
    return 0;
}

static int idx_writer_reserve_blob(idx_writer *w, size_t n)
{
    return lx_buf_reserve((void **)&w->blob, &w->blob_cap, w->blob_len + n, 1 << 20);
}

/* ---- adding ------------------------------------------------------------------- */

int idx_writer_add(idx_writer *w, const char *id, size_t id_len,
                   const char *const *names, const char *const *values,
                   const size_t *value_lens, size_t nfields)
{
    int rc;
    if (id_len == 0 || id_len > IDX_MAX_ID_BYTES || memchr(id, '\0', id_len)) {
        idx_env_set_error(w->env, LX_E_INPUT, "document id must be 1 to %d bytes without NUL",
                          IDX_MAX_ID_BYTES);
        return LX_E_INPUT;
    }
    if (nfields > IDX_MAX_FIELDS)
        return LX_E_INVAL;
    if (w->stats.next_docid + w->ndocs >= IDX_NO_DOC - 1) {
        idx_env_set_error(w->env, LX_E_TOOBIG, "index is full (2^32 - 2 document ids used)");
        return LX_E_TOOBIG;
    }
    /* Serialize the stored form first; the id table reads ids from it. */
    size_t need = IDX_DOC_HEADER + 2 + id_len + 2;
    for (size_t i = 0; i < nfields; i++)
        need += 2 + strlen(names[i]) + 4 + value_lens[i];
    if (need > IDX_MAX_DOC_BYTES) {
        idx_env_set_error(w->env, LX_E_TOOBIG, "document '%.*s' is larger than %u MiB",
                          (int)(id_len > 64 ? 64 : id_len), id, IDX_MAX_DOC_BYTES >> 20);
        return LX_E_TOOBIG;
    }
    if ((rc = idx_writer_reserve_blob(w, need)) != 0)
        return rc;
    if (w->ndocs == w->docs_cap) {
        size_t cap = w->docs_cap ? w->docs_cap * 2 : 1024;
        wdoc *d = realloc(w->docs, cap * sizeof *d);
        if (!d)
            return LX_E_NOMEM;
        w->docs = d;
        w->docs_cap = cap;
    }
    if ((w->ndocs + 1) * 2 > w->idtab_cap && (rc = idx_writer_grow_ids(w)) != 0)
        return rc;

    unsigned char *v = w->blob + w->blob_len, *p = v + IDX_DOC_HEADER;
    uint16_t l16 = (uint16_t)id_len;
    memcpy(p, &l16, 2); p += 2;
    memcpy(p, id, id_len); p += id_len;
    l16 = (uint16_t)nfields;
    memcpy(p, &l16, 2); p += 2;
    for (size_t i = 0; i < nfields; i++) {
        size_t nl = strlen(names[i]);
        l16 = (uint16_t)nl;
        memcpy(p, &l16, 2); p += 2;
        memcpy(p, names[i], nl); p += nl;
        lx_st32(p, (uint32_t)value_lens[i]); p += 4;
        memcpy(p, values[i], value_lens[i]); p += value_lens[i];
    }

    /* Analyze. */
    w->cur_doc = w->stats.next_docid + (uint32_t)w->ndocs;
    w->cur_len = 0;
    for (size_t i = 0; i < nfields; i++) {
        rc = enc_analyzer_run(w->an, values[i], value_lens[i], idx_writer_on_term, w);
        if (rc) {
            /* Take back the partial postings of this document. */
            for (size_t j = 0; j < w->tab_cap; j++) {
                wterm *t = w->tab[j];
                if (t && t->n && t->vec[2 * (t->n - 1)] == w->cur_doc) {
                    t->n--;
                    t->last_doc = IDX_NO_DOC;
                }
            }
            return rc;
        }
    }
    lx_st32(v + 4, w->cur_len);
    lx_st32(v, idx_hash32(v + 4, need - 4));

    wdoc *d = &w->docs[w->ndocs];
    d->docid = w->cur_doc;
    d->len = w->cur_len;
    d->blob_off = w->blob_len;
    d->blob_len = need;
    d->dropped = 0;
    w->blob_len += need;
    w->mem_used += need + sizeof *d;
    w->ndocs++;

    uint32_t *slot = idx_writer_idslot(w, id, id_len);
    if (*slot) {
        w->docs[*slot - 1].dropped = 1;    /* the newer copy wins */
        w->replaced++;
    }
    *slot = (uint32_t)w->ndocs;

    if (w->mem_used >= w->p.mem_budget || (w->p.batch_docs && w->ndocs >= w->p.batch_docs))
        return idx_writer_flush(w);
    return 0;
}

int idx_writer_delete(idx_writer *w, const char *id, size_t id_len)
{
    if (id_len == 0 || id_len > IDX_MAX_ID_BYTES)
        return LX_E_NOTFOUND;
    int found = 0;
    uint32_t *slot = idx_writer_idslot(w, id, id_len);
    if (*slot) {
        if (!w->docs[*slot - 1].dropped)
            found = 1;
        w->docs[*slot - 1].dropped = 1;
    }
    /* Is it committed (and not already pending deletion)? */
    for (size_t i = 0; i < w->ndels; i++)
        if (w->dels[i].len == id_len && memcmp(w->dels[i].id, id, id_len) == 0)
            return found ? 0 : LX_E_NOTFOUND;
    idx_stxn *t;
    idx_val v;
    int rc = idx_store_begin(w->env->store, 0, &t);
    if (rc)
        return rc;
    rc = idx_store_get(t, IDX_DB_IDS, id, id_len, &v);
    idx_store_abort(t);
    if (rc == LX_E_NOTFOUND)
        return found ? 0 : LX_E_NOTFOUND;
    if (rc)
        return rc;
    if (w->ndels == w->dels_cap) {
        size_t cap = w->dels_cap ? w->dels_cap * 2 : 16;
        pending_del *d = realloc(w->dels, cap * sizeof *d);
        if (!d)
            return LX_E_NOMEM;
        w->dels = d;
        w->dels_cap = cap;
    }
    char *copy = malloc(id_len);
    if (!copy)
        return LX_E_NOMEM;
    memcpy(copy, id, id_len);
    w->dels[w->ndels].id = copy;
    w->dels[w->ndels].len = id_len;
    w->ndels++;
    return 0;
}

/* ---- flushing ------------------------------------------------------------------ */

typedef struct flush_state {
    idx_writer *w;
    idx_stxn *t;
    idx_stats_disk st;       /* statistics being built */
    idx_delset *del;         /* loaded lazily */
    int del_dirty;
    /* unaccount scratch: the terms of one document */
    char **terms; size_t nterms, terms_cap;
    lx_arena scratch;
} flush_state;

static int flush_collect_term(void *ctx, const char *term, size_t len, uint32_t pos)
{
    flush_state *fs = ctx;
    (void)pos;
    if (fs->nterms == fs->terms_cap) {
        size_t cap = fs->terms_cap ? fs->terms_cap * 2 : 256;
        char **n = realloc(fs->terms, cap * sizeof *n);
        if (!n)
            return LX_E_NOMEM;
        fs->terms = n;
        fs->terms_cap = cap;
    }
    /* length-prefixed copy: 2 bytes of length, then the bytes */
    char *s = lx_arena_alloc(&fs->scratch, len + 2);
    if (!s)
        return LX_E_NOMEM;
    uint16_t l = (uint16_t)len;
    memcpy(s, &l, 2);
    memcpy(s + 2, term, len);
    fs->terms[fs->nterms++] = s;
    return 0;
}

static int cmp_lterm(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    uint16_t lx, ly;
    memcpy(&lx, x, 2);
    memcpy(&ly, y, 2);
    int c = memcmp(x + 2, y + 2, lx < ly ? lx : ly);
    return c ? c : (int)lx - (int)ly;
}

static int flush_load_deleted(flush_state *fs)
{
    if (fs->del)
        return 0;
    idx_val v;
    int rc = idx_store_get(fs->t, IDX_DB_DELETED, "bitmap", 6, &v);
    if (rc == LX_E_NOTFOUND) {
        v.data = NULL;
        v.size = 0;
    } else if (rc) {
        return rc;
    }
    return idx_delset_load(v.data, v.size, &fs->del);
}

/* Removes committed document `docid` (value in docs db) from the live index. */
static int flush_delete_committed(flush_state *fs, uint32_t docid)
{
    int rc;
    unsigned char key[4];
    idx_val v;
    idx_doc doc;
    lx_st32be(key, docid);
    if ((rc = idx_store_get(fs->t, IDX_DB_DOCS, key, 4, &v)) != 0)
        return rc == LX_E_NOTFOUND ? LX_E_CORRUPT : rc;
    if ((rc = idx_doc_decode(&fs->w->docdec, fs->t, docid, v.data, v.size, &doc)) != 0)
        return rc;
    /* Terms of the document, counted. */
    fs->nterms = 0;
    lx_arena_reset(&fs->scratch);
    for (size_t i = 0; i < doc.nfields; i++) {
        if ((rc = enc_analyzer_run(fs->w->an, doc.values[i], doc.value_lens[i],
                                   flush_collect_term, fs)) != 0)
            return rc;
    }
    if (fs->nterms > 1)
        lx_sort(fs->terms, fs->nterms, sizeof *fs->terms, cmp_lterm);
    for (size_t i = 0; i < fs->nterms;) {
        size_t j = i + 1;
        while (j < fs->nterms && cmp_lterm(&fs->terms[i], &fs->terms[j]) == 0)
            j++;
        uint16_t len;
        memcpy(&len, fs->terms[i], 2);
        idx_val tv;
        if ((rc = idx_store_get(fs->t, IDX_DB_TERMS, fs->terms[i] + 2, len, &tv)) != 0)
            return rc == LX_E_NOTFOUND ? LX_E_CORRUPT : rc;
        if (tv.size != IDX_TERM_VALUE)
            return LX_E_CORRUPT;
        unsigned char nv[IDX_TERM_VALUE];
        memcpy(nv, tv.data, IDX_TERM_VALUE);
        uint32_t df = lx_ld32(nv + 4);
        uint64_t cf = lx_ld64(nv + 8);
        if (df < 1 || cf < j - i)
            return LX_E_CORRUPT;
        lx_st32(nv + 4, df - 1);
        lx_st64(nv + 8, cf - (j - i));
        if ((rc = idx_store_put(fs->t, IDX_DB_TERMS, fs->terms[i] + 2, len, nv, sizeof nv, 0)))
            return rc;
        i = j;
    }
    if (fs->st.ndocs < 1 || fs->st.total_len < doc.len)
        return LX_E_CORRUPT;
    fs->st.ndocs--;
    fs->st.total_len -= doc.len;
    fs->st.ndeleted++;
    if ((rc = flush_load_deleted(fs)) != 0)
        return rc;
    idx_delset_add(fs->del, docid);
    fs->del_dirty = 1;
    if ((rc = idx_store_del(fs->t, IDX_DB_IDS, doc.id, doc.id_len)) != 0)
        return rc;
    return idx_store_del(fs->t, IDX_DB_DOCS, key, 4);
}

static int cmp_wterm_text(const void *a, const void *b)
{
    const wterm *x = *(wterm *const *)a, *y = *(wterm *const *)b;
    int c = memcmp(x->text, y->text, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int cmp_wterm_id(const void *a, const void *b)
{
    const wterm *x = *(wterm *const *)a, *y = *(wterm *const *)b;
    return (x->term_id > y->term_id) - (x->term_id < y->term_id);
}

/* Copies the live postings of t into docs/tfs (dropped documents removed). */
static uint32_t flush_live_postings(const idx_writer *w, const wterm *t,
                                    uint32_t *docs, uint32_t *tfs, uint64_t *cf)
{
    uint32_t n = 0;
    uint64_t sum = 0;
    uint32_t base = w->stats.next_docid;
    for (uint32_t i = 0; i < t->n; i++) {
        uint32_t d = t->vec[2 * i];
        if (w->docs[d - base].dropped)
            continue;
        docs[n] = d;
        tfs[n] = t->vec[2 * i + 1];
        sum += tfs[n];
        n++;
    }
    *cf = sum;
    return n;
}

static int idx_writer_flush_once(idx_writer *w, flush_state *fs, wterm **terms, size_t nterms)
{
    int rc;
    idx_stxn *t = fs->t;
    fs->st = w->stats;

    /* 1. Deletions asked for explicitly. */
    for (size_t i = 0; i < w->ndels; i++) {
        idx_val v;
        rc = idx_store_get(t, IDX_DB_IDS, w->dels[i].id, w->dels[i].len, &v);
        if (rc == LX_E_NOTFOUND)
            continue;
        if (rc)
            return rc;
        if (v.size != 4)
            return LX_E_CORRUPT;
        if ((rc = flush_delete_committed(fs, lx_ld32(v.data))) != 0)
            return rc;
    }

    /* 2. Documents: replace committed ids, write docs and ids. */
    uint64_t replaced = 0;
    uint32_t *lens = calloc(w->ndocs ? w->ndocs : 1, sizeof *lens);
    const unsigned char **recs = malloc((w->ndocs ? w->ndocs : 1) * sizeof *recs);
    size_t *rec_lens = malloc((w->ndocs ? w->ndocs : 1) * sizeof *rec_lens);
    size_t nrecs = 0;
    if (!lens || !recs || !rec_lens) {
        free(recs);
        free(rec_lens);
        free(lens);
        return LX_E_NOMEM;
    }
    for (size_t i = 0; i < w->ndocs; i++)
        if (!w->docs[i].dropped) {
            recs[nrecs] = w->blob + w->docs[i].blob_off;
            rec_lens[nrecs++] = w->docs[i].blob_len;
        }
    rc = idx_docenc_begin(&w->docenc, t, recs, rec_lens, nrecs);
    free(recs);
    free(rec_lens);
    if (rc)
        goto out_lens;
    for (size_t i = 0; i < w->ndocs; i++) {
        wdoc *d = &w->docs[i];
        if (d->dropped)
            continue;
        size_t idl;
        const unsigned char *id = wdoc_id(w, d, &idl);
        idx_val v;
        rc = idx_store_get(t, IDX_DB_IDS, id, idl, &v);
        if (rc == 0) {
            if (v.size != 4) { rc = LX_E_CORRUPT; goto out_lens; }
            if ((rc = flush_delete_committed(fs, lx_ld32(v.data))) != 0)
                goto out_lens;
            replaced++;
        } else if (rc != LX_E_NOTFOUND) {
            goto out_lens;
        }
        unsigned char key[4], dv[4];
        lx_st32be(key, d->docid);
        lx_st32(dv, d->docid);
        const unsigned char *sv;
        size_t svl;
        /* Doc ids only grow, so docs are appended (LMDB fills pages). */
        if ((rc = idx_docenc_encode(&w->docenc, w->blob + d->blob_off, d->blob_len, &sv, &svl))
            || (rc = idx_store_put(t, IDX_DB_DOCS, key, 4, sv, svl, 1))
            || (rc = idx_store_put(t, IDX_DB_IDS, id, idl, dv, 4, 0)))
            goto out_lens;
        lens[i] = d->len;
        fs->st.ndocs++;
        fs->st.total_len += d->len;
    }

    /* 3. Terms: statistics and ids, in term order (LMDB likes sorted puts). */
    lx_sort(terms, nterms, sizeof *terms, cmp_wterm_text);
    uint32_t maxn = 0;
    for (size_t i = 0; i < nterms; i++)
        if (terms[i]->n > maxn)
            maxn = terms[i]->n;
    uint32_t *pdocs = malloc(((size_t)maxn + 1) * sizeof *pdocs);
    uint32_t *ptfs = malloc(((size_t)maxn + 1) * sizeof *ptfs);
    unsigned char *enc = malloc(idx_plist_max_size(maxn ? maxn : 1));
    if (!pdocs || !ptfs || !enc) {
        rc = LX_E_NOMEM;
        goto out_bufs;
    }
    for (size_t i = 0; i < nterms; i++) {
        wterm *wt = terms[i];
        uint64_t cf;
        uint32_t n = flush_live_postings(w, wt, pdocs, ptfs, &cf);
        wt->term_id = UINT32_MAX;      /* no postings this batch */
        if (n == 0)
            continue;
        idx_val v;
        unsigned char tv[IDX_TERM_VALUE];
        rc = idx_store_get(t, IDX_DB_TERMS, wt->text, wt->len, &v);
        if (rc == 0) {
            if (v.size != IDX_TERM_VALUE) { rc = LX_E_CORRUPT; goto out_bufs; }
            memcpy(tv, v.data, IDX_TERM_VALUE);
            lx_st32(tv + 4, lx_ld32(tv + 4) + n);
            lx_st64(tv + 8, lx_ld64(tv + 8) + cf);
        } else if (rc == LX_E_NOTFOUND) {
            lx_st32(tv, fs->st.next_termid++);
            lx_st32(tv + 4, n);
            lx_st64(tv + 8, cf);
        } else {
            goto out_bufs;
        }
        wt->term_id = lx_ld32(tv);
        if ((rc = idx_store_put(t, IDX_DB_TERMS, wt->text, wt->len, tv, sizeof tv, 0)))
            goto out_bufs;
    }

    /* 4. The segment: doc lengths and the BM25 setting its bounds used. */
    uint32_t seg = fs->st.next_segid++;
    float avgdl = fs->st.ndocs ? (float)((double)fs->st.total_len / (double)fs->st.ndocs) : 1.0f;
    if (avgdl <= 0)
        avgdl = 1.0f;
    if (w->ndocs) {
        if ((rc = idx_segment_put(t, seg, w->stats.next_docid, (uint32_t)w->ndocs, w->env->k1, w->env->b,
                                  avgdl, lens)))
            goto out_bufs;

        /* 5. Postings, in term id order, and the segment's dictionary. */
        lx_sort(terms, nterms, sizeof *terms, cmp_wterm_id);
        idx_dict_builder db;
        idx_dict_builder_init(&db, t, seg, IDX_CHUNK_BYTES);
        for (size_t i = 0; i < nterms && rc == 0; i++) {
            wterm *wt = terms[i];
            if (wt->term_id == UINT32_MAX)
                continue;
            uint64_t cf;
            uint32_t n = flush_live_postings(w, wt, pdocs, ptfs, &cf);
            size_t sz = idx_plist_encode(pdocs, ptfs, n, lens, w->stats.next_docid,
                                         w->env->k1, w->env->b, avgdl, enc);
            rc = idx_dict_builder_add(&db, wt->term_id, wt->text, wt->len, enc, sz);
        }
        if (rc == 0)
            rc = idx_dict_builder_finish(&db);
        idx_dict_builder_free(&db);
        if (rc)
            goto out_bufs;
        fs->st.next_docid += (uint32_t)w->ndocs;
    } else {
        fs->st.next_segid--;     /* nothing to segment: deletions only */
    }

    /* 6. Deleted bitmap and statistics. */
    if (fs->del_dirty) {
        void *dst;
        size_t sz = idx_delset_size(fs->del);
        if ((rc = idx_store_reserve(t, IDX_DB_DELETED, "bitmap", 6, sz, 0, &dst)))
            goto out_bufs;
        idx_delset_write(fs->del, dst);
    }
    rc = idx_stats_write(t, &fs->st);
    if (rc == 0)
        w->replaced += replaced;      /* undone below if the commit fails */
out_bufs:
    free(pdocs);
    free(ptfs);
    free(enc);
out_lens:
    free(lens);
    return rc;
}

int idx_writer_flush(idx_writer *w)
{
    if (w->ndocs == 0 && w->ndels == 0)
        return 0;
    if (w->compacted) {
        /* Writes now would go to the replaced file and be lost. */
        idx_env_set_error(w->env, LX_E_INVAL, "writer used after idx_writer_compact");
        return LX_E_INVAL;
    }
    int rc;
    wterm **terms = malloc((w->nterms + 1) * sizeof *terms);
    if (!terms)
        return LX_E_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < w->tab_cap; i++)
        if (w->tab[i])
            terms[n++] = w->tab[i];

    /* Make room up front: postings + stored docs, generously. */
    idx_store_grow(w->env->store, w->mem_used * 2 + ((size_t)16 << 20));
    for (int attempt = 0;; attempt++) {
        flush_state fs;
        memset(&fs, 0, sizeof fs);
        fs.w = w;
        lx_arena_init(&fs.scratch, 64 * 1024);
        uint64_t replaced_before = w->replaced;
        rc = idx_store_begin(w->env->store, 1, &fs.t);
        if (rc == 0) {
            rc = idx_writer_flush_once(w, &fs, terms, n);
            if (rc == 0) {
                rc = idx_store_commit(fs.t);
            } else {
                idx_store_abort(fs.t);
            }
        }
        idx_delset_free(fs.del);
        free(fs.terms);
        lx_arena_free(&fs.scratch);
        if (rc == 0) {
            w->stats = fs.st;
            w->commits++;
            break;
        }
        w->replaced = replaced_before;
        if (rc == LX_E_MAPFULL && attempt < 8) {
            uint64_t map, used;
            idx_store_info(w->env->store, &map, &used);
            if ((rc = idx_store_grow(w->env->store, (size_t)map)) != 0)
                break;
            continue;
        }
        if (rc == LX_E_CORRUPT)
            idx_env_set_error(w->env, rc, "index data is inconsistent; run lexis check");
        else
            idx_env_set_error(w->env, rc, "commit failed: %s%s%s", lx_strerror(rc),
                              rc == LX_E_STORE ? ": " : "",
                              rc == LX_E_STORE ? idx_store_errmsg(w->env->store) : "");
        break;
    }
    free(terms);
    if (rc == 0) {
        idx_writer_clear_batch(w);
        if (w->p.progress)
            w->p.progress(w->p.progress_ctx, 0, 0, 1);
    }
    return rc;
}

int idx_writer_merge(idx_writer *w, uint32_t *segments_before)
{
    int rc = idx_writer_flush(w);
    if (rc)
        return rc;
    *segments_before = 0;
    rc = idx_merge_segments(w->env, segments_before);
    if (rc) {
        idx_env_set_error(w->env, rc, "merge failed: %s", lx_strerror(rc));
        return rc;
    }
    return idx_writer_load_stats(w);
}

int idx_writer_compact(idx_writer *w, uint64_t *saved)
{
    *saved = 0;
    int rc = idx_writer_flush(w);
    if (rc)
        return rc;
    /* Under the writer lock, so no other writer commits to the file being
     * replaced. The environment stays mapped on the old file until closed. */
    rc = idx_env_compact(w->env, saved);
    if (rc == 0 && *saved)
        w->compacted = 1;
    return rc;
}

/* ---- JSON lines ------------------------------------------------------------------ */

int idx_writer_add_jsonl(idx_writer *w, FILE *f, const char *name, idx_add_report *rep)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    uint64_t replaced0 = w->replaced, commits0 = w->commits;
    char err[256];
    while ((len = getline(&line, &cap, f)) >= 0) {
        rep->lines++;
        rep->bytes += (uint64_t)len;
        size_t n = (size_t)len;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t'))
            k++;
        if (k == n)
            continue;                       /* blank line */
        idx_jsonl_doc doc;
        void *owner = NULL;
        rc = idx_jsonl_parse(line, n, w->env->field_names, w->env->nfields, &doc, &owner,
                             err, sizeof err);
        if (rc == 0) {
            rc = idx_writer_add(w, doc.id, doc.id_len, w->env->field_names, doc.values,
                                doc.value_lens, doc.nfields);
            idx_jsonl_doc_release(owner);
            if (rc == LX_E_INPUT)
                snprintf(err, sizeof err, "%s", idx_env_errmsg(w->env));
        }
        if (rc == LX_E_INPUT) {
            fprintf(w->p.log, "lexis: %s:%llu: %s%s\n", name, (unsigned long long)rep->lines, err,
                    w->p.strict ? "" : " (line skipped)");
            rep->skipped++;
            if (w->p.strict)
                break;
            rc = 0;
            continue;
        }
        if (rc)
            break;
        rep->indexed++;
        if (w->p.progress)
            w->p.progress(w->p.progress_ctx, rep->indexed, rep->bytes, 0);
    }
    if (rc == 0 && ferror(f)) {
        rc = errno ? errno : LX_E_IO;
        idx_env_set_error(w->env, rc, "%s: read error", name);
    }
    free(line);
    /* Commit the good lines read so far, also when stopping on a bad one. */
    if (rc == 0 || rc == LX_E_INPUT) {
        int frc = idx_writer_flush(w);
        if (frc)
            rc = frc;
    }
    rep->replaced += w->replaced - replaced0;
    rep->commits += w->commits - commits0;
    return rc;
}
