/* fuzz_jsonl.c: libFuzzer target for JSON-lines ingestion (index/ingest.c and
 * the writer behind it, index/writer.c).
 *
 * Each input is used twice:
 *   1. As one line for idx_jsonl_parse, with the fields {"title","text"} and
 *      with eight odd names (including "_id" and ""). On success: the id is
 *      1..255 bytes, NUL-free and NUL-terminated, every value is valid UTF-8
 *      without NUL and NUL-terminated; on failure: LX_E_INPUT and a
 *      non-empty message. The line sits against a PROT_NONE page (jansson is
 *      not ASan-instrumented, so only a guard page shows its over-reads).
 *   2. As a whole JSON-lines stream for a real writer: one index per process
 *      (mkdtemp under /dev/shm, where LMDB's fsync costs nothing, else /tmp),
 *      one writer (1 MiB budget, batch of 5 documents, so an input can commit
 *      several times), input through fmemopen into idx_writer_add_jsonl,
 *      bad lines logged to /dev/null. Checked after every input: rc == 0;
 *      the report's lines/bytes/indexed/skipped equal what splitting the
 *      input and idx_jsonl_parse on each line predict; every id of the input
 *      is found by a fresh reader and its stored fields equal the last copy's
 *      values. When the input size is 3 mod 4, the first good id is then
 *      deleted, flushed, and must be gone.
 *      Every FUZZ_JSONL_CHECK_EVERY (500) writer inputs idx_check runs and
 *      any corruption aborts; every FUZZ_JSONL_RESET_EVERY (2000) the index
 *      is checked, closed, removed and created afresh, so it stays small.
 *      FUZZ_JSONL_WRITER_EVERY=N (1) sends only 1 input in N to the writer.
 *
 * The writer's state carries over between inputs, so a failure may need the
 * inputs before it: on an idx_check failure the inputs since the last reset
 * are written to ./fuzz_jsonl-history-PID/NNNNNN and the message says how to
 * replay them (in order, with FUZZ_JSONL_CHECK_EVERY=1).
 *
 * Build with `make fuzz`; run build/fuzz/fuzz_jsonl -max_len=8192 CORPUS_DIR.
 */
#include "../../index/index_impl.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FZ_CHECK(x) LX_ASSERT(x)
#define FZ_MAXLEN (1u << 20)

/* ---- guarded buffer ---------------------------------------------------------- */

static unsigned char *fz_gbase;
static size_t fz_gcap;

static void fz_guard_init(void)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    fz_gcap = FZ_MAXLEN;
    fz_gbase = mmap(NULL, fz_gcap + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
    FZ_CHECK(fz_gbase != MAP_FAILED);
    FZ_CHECK(mprotect(fz_gbase + fz_gcap, pg, PROT_NONE) == 0);
}

static const char *fz_guard_place(const void *src, size_t len)
{
    FZ_CHECK(len <= fz_gcap);
    unsigned char *p = fz_gbase + fz_gcap - len;
    ASAN_UNPOISON_MEMORY_REGION(fz_gbase, fz_gcap);
    memcpy(p, src, len);
    ASAN_POISON_MEMORY_REGION(fz_gbase, fz_gcap - len);
    return (const char *)p;
}

/* ---- strict UTF-8 (RFC 3629) -------------------------------------------------- */

static int fz_valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (c < 0xC2 || c > 0xF4 || i + k > n)
            return 0;
        uint32_t cp = c & (0xFFu >> (k + 1));
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3Fu);
        }
        if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k;
    }
    return 1;
}

/* ---- part 1: one line --------------------------------------------------------- */

static const char *const fz_names[] = { "title", "text" };
static const char *const fz_odd[IDX_MAX_FIELDS] = { "text", "_id", "", "title", "a\tb",
                                                    "\xc3\xa9", "0", "TITLE" };

/* Parses line; on success fills doc/owner (caller releases) and returns 1. */
static int fz_parse(const char *line, size_t len, const char *const *names, size_t nnames,
                    idx_jsonl_doc *doc, void **owner)
{
    char err[256];
    memset(err, 'X', sizeof err);
    *owner = NULL;
    int rc = idx_jsonl_parse(line, len, names, nnames, doc, owner, err, sizeof err);
    if (rc != 0) {
        FZ_CHECK(rc == LX_E_INPUT);
        FZ_CHECK(*owner == NULL);
        FZ_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        return 0;
    }
    FZ_CHECK(*owner != NULL);
    FZ_CHECK(doc->id != NULL && doc->id_len >= 1 && doc->id_len <= IDX_MAX_ID_BYTES);
    FZ_CHECK(memchr(doc->id, '\0', doc->id_len) == NULL && doc->id[doc->id_len] == '\0');
    FZ_CHECK(fz_valid_utf8((const unsigned char *)doc->id, doc->id_len));
    FZ_CHECK(doc->nfields == nnames);
    for (size_t i = 0; i < nnames; i++) {
        FZ_CHECK(doc->values[i] != NULL);
        FZ_CHECK(doc->values[i][doc->value_lens[i]] == '\0');
        FZ_CHECK(fz_valid_utf8((const unsigned char *)doc->values[i], doc->value_lens[i]));
    }
    return 1;
}

static void fz_one_line(const uint8_t *data, size_t size)
{
    const char *line = fz_guard_place(data, size);
    idx_jsonl_doc doc;
    void *owner;
    if (fz_parse(line, size, fz_names, 2, &doc, &owner))
        idx_jsonl_doc_release(owner);
    if (fz_parse(line, size, fz_odd, IDX_MAX_FIELDS, &doc, &owner))
        idx_jsonl_doc_release(owner);
}

/* ---- part 2: the writer ------------------------------------------------------- */

static char fz_dir[512], fz_path[600];
static idx_env *fz_env;
static idx_writer *fz_w;
static FILE *fz_log;
static unsigned long fz_check_every = 500, fz_reset_every = 2000, fz_writer_every = 1;
static unsigned long fz_seen, fz_since_reset;

/* Inputs since the last reset, for a replay after a failure: records of
 * (size_t length, bytes) in an mmap'd region. Not malloc: libFuzzer runs its
 * (slow) leak check after every input that mallocs more than it frees. */
#define FZ_HIST_CAP ((size_t)256 << 20)
static unsigned char *fz_hist;
static size_t fz_hist_used, fz_nhist;
static int fz_hist_lost;

static void fz_hist_clear(void)
{
    if (fz_hist && fz_hist_used)
        madvise(fz_hist, fz_hist_used, MADV_DONTNEED);
    fz_hist_used = fz_nhist = 0;
    fz_hist_lost = 0;
}

static void fz_hist_add(const uint8_t *data, size_t size)
{
    if (!fz_hist) {
        fz_hist = mmap(NULL, FZ_HIST_CAP, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        FZ_CHECK(fz_hist != MAP_FAILED);
    }
    if (fz_hist_used + sizeof size + size > FZ_HIST_CAP) {
        fz_hist_lost = 1;
        return;
    }
    memcpy(fz_hist + fz_hist_used, &size, sizeof size);
    memcpy(fz_hist + fz_hist_used + sizeof size, data, size);
    fz_hist_used += sizeof size + size;
    fz_nhist++;
}

static void fz_hist_dump(void)
{
    char dir[64], file[96];
    snprintf(dir, sizeof dir, "fuzz_jsonl-history-%d", (int)getpid());
    mkdir(dir, 0755);
    size_t off = 0;
    for (size_t i = 0; i < fz_nhist; i++) {
        size_t len;
        memcpy(&len, fz_hist + off, sizeof len);
        snprintf(file, sizeof file, "%s/%06zu", dir, i);
        FILE *f = fopen(file, "wb");
        if (f) {
            fwrite(fz_hist + off + sizeof len, 1, len, f);
            fclose(f);
        }
        off += sizeof len + len;
    }
    fprintf(stderr, "fuzz_jsonl: %zu inputs since the index was created are in %s/%s; replay:\n"
            "  FUZZ_JSONL_CHECK_EVERY=1 build/fuzz/fuzz_jsonl %s/*\n", fz_nhist, dir,
            fz_hist_lost ? " (incomplete: history full)" : "", dir);
}

static void fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_jsonl: %s (%s)\n", what, fz_env ? idx_env_errmsg(fz_env) : "");
    fz_hist_dump();
    abort();
}

static void fz_rmdir_contents(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    char f[1024];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(f, sizeof f, "%s/%s", path, e->d_name);
        unlink(f);
    }
    closedir(d);
}

static void fz_index_open(void)
{
    char err[512];
    idx_create_params cp = idx_create_default_params();
    int rc = idx_env_open(fz_path, IDX_CREATE, &cp, &fz_env, err, sizeof err);
    if (rc) {
        fprintf(stderr, "fuzz_jsonl: %s: %s\n", fz_path, err);
        abort();
    }
    idx_writer_params wp = idx_writer_default_params();
    wp.mem_budget = 1;          /* raised to the 1 MiB minimum */
    wp.batch_docs = 5;
    wp.log = fz_log;
    if ((rc = idx_writer_open(fz_env, &wp, &fz_w)) != 0) {
        fprintf(stderr, "fuzz_jsonl: writer: %s\n", idx_env_errmsg(fz_env));
        abort();
    }
    fz_since_reset = 0;
    fz_hist_clear();
}

static void fz_index_close(void)
{
    if (fz_w)
        FZ_CHECK(idx_writer_close(fz_w) == 0);
    fz_w = NULL;
    idx_env_close(fz_env);
    fz_env = NULL;
    fz_rmdir_contents(fz_path);
    rmdir(fz_path);
}

static void fz_cleanup(void)
{
    if (fz_env)
        fz_index_close();
    rmdir(fz_dir);
}

/* A sanitizer report ends the process without atexit: remove the index only
 * (the history dump, if any, is already written). */
static void fz_cleanup_on_death(void)
{
    if (fz_path[0]) {
        fz_rmdir_contents(fz_path);
        rmdir(fz_path);
        rmdir(fz_dir);
    }
}

static void fz_check_index(void)
{
    idx_check_report rep;
    int rc = idx_check(fz_env, stderr, &rep);
    if (rc != 0 || rep.errors != 0)
        fz_fail("idx_check reports a damaged index");
}

/* Directories left by fuzz_jsonl processes that died (a crash skips atexit):
 * DIR/fuzz_jsonl.PID.XXXXXX whose PID no longer exists. */
static void fz_remove_stale(const char *tmp)
{
    DIR *d = opendir(tmp);
    if (!d)
        return;
    struct dirent *e;
    char path[1024], idx[1100];
    while ((e = readdir(d)) != NULL) {
        int pid;
        if (sscanf(e->d_name, "fuzz_jsonl.%d.", &pid) != 1 || pid <= 0)
            continue;
        if (kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof path, "%s/%s", tmp, e->d_name);
        snprintf(idx, sizeof idx, "%s/idx", path);
        fz_rmdir_contents(idx);
        rmdir(idx);
        rmdir(path);
    }
    closedir(d);
}

static unsigned long fz_env_num(const char *name, unsigned long def)
{
    const char *s = getenv(name);
    return s && *s ? strtoul(s, NULL, 10) : def;
}

static void fz_writer_init(void)
{
    fz_check_every = fz_env_num("FUZZ_JSONL_CHECK_EVERY", fz_check_every);
    fz_reset_every = fz_env_num("FUZZ_JSONL_RESET_EVERY", fz_reset_every);
    fz_writer_every = fz_env_num("FUZZ_JSONL_WRITER_EVERY", fz_writer_every);
    if (!fz_check_every) fz_check_every = 1;
    if (!fz_reset_every) fz_reset_every = 1;
    if (!fz_writer_every) fz_writer_every = 1;
    struct stat st;
    const char *tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    fz_remove_stale(tmp);
    snprintf(fz_dir, sizeof fz_dir, "%s/fuzz_jsonl.%d.XXXXXX", tmp, (int)getpid());
    FZ_CHECK(mkdtemp(fz_dir) != NULL);
    snprintf(fz_path, sizeof fz_path, "%s/idx", fz_dir);
    fz_log = fopen("/dev/null", "w");
    FZ_CHECK(fz_log != NULL);
    atexit(fz_cleanup);
    __sanitizer_set_death_callback(fz_cleanup_on_death);
    fz_index_open();
}

/* One line of the stream as the writer sees it. */
typedef struct fz_line {
    idx_jsonl_doc doc;
    void *owner;
} fz_line;

static void fz_writer(const uint8_t *data, size_t size)
{
    fz_hist_add(data, size);

    /* Predict the report by splitting the input the way getline does. */
    size_t cap = 16, ngood = 0;
    fz_line *good = malloc(cap * sizeof *good);
    FZ_CHECK(good != NULL);
    uint64_t lines = 0, skipped = 0;
    for (size_t s = 0; s < size;) {
        const uint8_t *nl = memchr(data + s, '\n', size - s);
        size_t e = nl ? (size_t)(nl - data) + 1 : size;
        lines++;
        size_t n = e - s;
        while (n && (data[s + n - 1] == '\n' || data[s + n - 1] == '\r'))
            n--;
        size_t k = 0;
        while (k < n && (data[s + k] == ' ' || data[s + k] == '\t'))
            k++;
        if (k < n) {
            if (ngood == cap) {
                cap *= 2;
                good = realloc(good, cap * sizeof *good);
                FZ_CHECK(good != NULL);
            }
            if (fz_parse((const char *)data + s, n, fz_names, 2, &good[ngood].doc,
                         &good[ngood].owner))
                ngood++;
            else
                skipped++;
        }
        s = e;
    }

    FILE *f = fmemopen((void *)data, size, "r");
    FZ_CHECK(f != NULL);
    idx_add_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = idx_writer_add_jsonl(fz_w, f, "fuzz", &rep);
    fclose(f);
    if (rc != 0)
        fz_fail("idx_writer_add_jsonl failed");
    FZ_CHECK(rep.lines == lines && rep.bytes == size);
    FZ_CHECK(rep.indexed == ngood && rep.skipped == skipped);
    FZ_CHECK(rep.replaced <= rep.indexed);

    /* Every id is live and holds its last copy's fields. */
    idx_reader *r;
    FZ_CHECK(idx_reader_open(fz_env, &r) == 0);
    for (size_t i = 0; i < ngood; i++) {
        const idx_jsonl_doc *d = &good[i].doc;
        size_t j;
        for (j = i + 1; j < ngood; j++)
            if (good[j].doc.id_len == d->id_len && memcmp(good[j].doc.id, d->id, d->id_len) == 0)
                break;
        if (j < ngood)
            continue;               /* a later copy replaced it */
        uint32_t docid;
        idx_doc sd;
        if (idx_reader_lookup(r, d->id, d->id_len, &docid) != 0
            || idx_reader_doc(r, docid, &sd) != 0)
            fz_fail("an added document is missing");
        FZ_CHECK(sd.id_len == d->id_len && memcmp(sd.id, d->id, d->id_len) == 0);
        FZ_CHECK(sd.nfields == 2);
        for (size_t k = 0; k < 2; k++) {
            FZ_CHECK(sd.name_lens[k] == strlen(fz_names[k])
                     && memcmp(sd.names[k], fz_names[k], sd.name_lens[k]) == 0);
            FZ_CHECK(sd.value_lens[k] == d->value_lens[k]
                     && memcmp(sd.values[k], d->values[k], d->value_lens[k]) == 0);
        }
        FZ_CHECK(!idx_reader_is_deleted(r, docid));
    }
    idx_reader_close(r);

    if (ngood > 0 && (size & 3) == 3) {
        const idx_jsonl_doc *d = &good[0].doc;
        if ((rc = idx_writer_delete(fz_w, d->id, d->id_len)) != 0)
            fz_fail("idx_writer_delete of a live id failed");
        if ((rc = idx_writer_flush(fz_w)) != 0)
            fz_fail("flush after delete failed");
        uint32_t docid;
        FZ_CHECK(idx_reader_open(fz_env, &r) == 0);
        FZ_CHECK(idx_reader_lookup(r, d->id, d->id_len, &docid) == LX_E_NOTFOUND);
        idx_reader_close(r);
        FZ_CHECK(idx_writer_delete(fz_w, d->id, d->id_len) == LX_E_NOTFOUND);
    }
    for (size_t i = 0; i < ngood; i++)
        idx_jsonl_doc_release(good[i].owner);
    free(good);

    fz_since_reset++;
    if (fz_since_reset % fz_check_every == 0)
        fz_check_index();
    if (fz_since_reset >= fz_reset_every) {
        fz_check_index();
        fz_index_close();
        fz_index_open();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fz_gbase) {
        fz_guard_init();
        fz_writer_init();
    }
    if (size > FZ_MAXLEN)
        return 0;
    fz_one_line(data, size);
    if (size > 0 && fz_seen++ % fz_writer_every == 0)
        fz_writer(data, size);
    return 0;
}
