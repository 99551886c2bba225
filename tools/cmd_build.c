/* cmd_build.c: `lexis build` and `lexis add`: JSON lines into an index.
 *
 * build creates the index (its analyzer, fields and BM25 settings are fixed
 * then) and adds the corpus; add appends to an existing one. Both commit
 * once per batch (bounded by --mem and --batch-docs), so a crash or kill
 * leaves the documents of every committed batch and nothing half-written.
 * build --force rebuilds an existing index into a new directory first and
 * swaps it in only when complete, by one atomic exchange of the two
 * directories, so a failure or a kill leaves the old index or the new one.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>   /* AT_FDCWD */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>   /* renameat2, RENAME_EXCHANGE (_GNU_SOURCE) */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void build_help(FILE *f, int is_build)
{
    if (is_build)
        fprintf(f,
            "usage: lexis build INDEX --corpus FILE|- [options]\n\n"
            "Creates INDEX (a directory) from JSON lines {\"_id\",\"title\",\"text\",...}.\n\n"
            "  --corpus FILE      JSON-lines corpus; - reads standard input\n"
            "  --fields LIST      fields to index and store (default title,text)\n"
            "  --stemmer NAME     porter (default, as Lucene/Anserini), english (Porter2),\n"
            "                     none, or any Snowball language\n"
            "  --stopwords LIST   lucene (default: Lucene's 33 English words), none, or a,b,c\n"
            "  --keep-possessive  do not strip a trailing 's\n"
            "  --k1 X  --b Y      BM25 parameters recorded as the default (0.9, 0.4)\n"
            "  --force            replace an existing index (the old one is kept, and\n"
            "                     locked against other writers, until the new one is\n"
            "                     complete; then the two are exchanged in one step)\n");
    else
        fprintf(f,
            "usage: lexis add INDEX FILE|- [options]\n\n"
            "Adds JSON-lines documents to INDEX; a document whose _id exists replaces it.\n\n");
    fprintf(f,
            "  --mem MB           memory for a batch before it is committed (default 512)\n"
            "  --batch-docs N     also commit every N documents\n"
            "  --strict           stop at the first bad line (lines before it are kept)\n"
            "  --merge            (add) merge all segments afterwards, as build does\n"
            "  --quiet            no progress bar and no summary\n\n"
            "A bad line is reported with its line number and skipped; the exit status\n"
            "is then 3. Each batch commits atomically: an interrupted run keeps every\n"
            "committed batch intact.\n");
    if (is_build)
        fprintf(f, "At the end the batches are merged into one segment and the file is\n"
                   "rewritten without the free pages that leaves (when they are 10%% of it\n"
                   "or more).\n");
}

typedef struct ingest_opts {
    const char *input;
    size_t mem;
    uint32_t batch_docs;
    int strict, quiet;
    int merge;            /* merge segments at the end (build always) */
    int compact;          /* then drop the free pages (build: a new index) */
} ingest_opts;

/* Opens the input before anything is created, so a wrong path leaves no
 * empty index behind. */
static int open_input(const char *input, FILE **f, uint64_t *total)
{
    *total = 0;
    if (strcmp(input, "-") == 0) {
        *f = stdin;
        return 0;
    }
    struct stat st;
    if (stat(input, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "lexis: %s: is a directory, expected a JSON-lines file\n", input);
        return CLI_ERROR;
    }
    *f = fopen(input, "r");
    if (!*f) {
        fprintf(stderr, "lexis: %s: %s\n", input, strerror(errno));
        return CLI_ERROR;
    }
    if (S_ISREG(st.st_mode))
        *total = (uint64_t)st.st_size;
    return 0;
}

static int ingest(idx_env *env, const ingest_opts *o, FILE *f, uint64_t total)
{
    const char *name = f == stdin ? "stdin" : o->input;
    cli_progress prog;
    cli_progress_init(&prog, !o->quiet && isatty(2), total);
    idx_writer_params wp = idx_writer_default_params();
    if (o->mem)
        wp.mem_budget = o->mem;
    wp.batch_docs = o->batch_docs;
    wp.strict = o->strict;
    wp.progress = cli_progress_cb;
    wp.progress_ctx = &prog;

    idx_writer *w;
    int rc = idx_writer_open(env, &wp, &w);
    if (rc) {
        return cli_fail(rc, idx_env_path(env), idx_env_errmsg(env));
    }
    idx_add_report rep = { 0 };
    double t0 = lx_now();
    rc = idx_writer_add_jsonl(w, f, name, &rep);
    uint32_t nseg = 0;
    if ((rc == 0 || rc == LX_E_INPUT) && o->merge) {
        int mrc = idx_writer_merge(w, &nseg);
        if (mrc)
            rc = mrc;
    }
    uint64_t freed = 0;
    if ((rc == 0 || rc == LX_E_INPUT) && o->compact) {
        int mrc = idx_writer_compact(w, &freed);
        if (mrc)
            rc = mrc;
    }
    int crc = idx_writer_close(w);
    if (!rc)
        rc = crc;
    double el = lx_now() - t0;
    cli_progress_done(&prog);
    if (rc && rc != LX_E_INPUT)
        return cli_fail(rc, idx_env_path(env), idx_env_errmsg(env));
    if (!o->quiet) {
        fprintf(stderr,
                "lexis: %llu documents indexed (%llu replaced), %llu lines skipped, "
                "%llu commits%s%s, %.2f s, %.0f docs/s\n",
                (unsigned long long)rep.indexed, (unsigned long long)rep.replaced,
                (unsigned long long)rep.skipped, (unsigned long long)rep.commits,
                nseg > 1 ? " (runs merged into one segment)" : "",
                freed ? ", free pages dropped" : "", el,
                el > 0 ? (double)rep.indexed / el : 0.0);
    }
    if (rc == LX_E_INPUT) {
        fprintf(stderr, "lexis: stopped at the first bad line (--strict); the lines before it "
                        "were committed\n");
        return CLI_PARTIAL;
    }
    return rep.skipped ? CLI_PARTIAL : CLI_OK;
}

enum { OPT_FIELDS = 256, OPT_STEMMER, OPT_STOPWORDS, OPT_KEEP_POSS, OPT_K1, OPT_B, OPT_FORCE,
       OPT_MEM, OPT_BATCH, OPT_STRICT, OPT_QUIET, OPT_CORPUS, OPT_MERGE };

static const struct option ingest_longopts[] = {
    { "corpus", required_argument, 0, OPT_CORPUS },
    { "fields", required_argument, 0, OPT_FIELDS },
    { "stemmer", required_argument, 0, OPT_STEMMER },
    { "stopwords", required_argument, 0, OPT_STOPWORDS },
    { "keep-possessive", no_argument, 0, OPT_KEEP_POSS },
    { "k1", required_argument, 0, OPT_K1 },
    { "b", required_argument, 0, OPT_B },
    { "force", no_argument, 0, OPT_FORCE },
    { "mem", required_argument, 0, OPT_MEM },
    { "batch-docs", required_argument, 0, OPT_BATCH },
    { "strict", no_argument, 0, OPT_STRICT },
    { "quiet", no_argument, 0, OPT_QUIET },
    { "merge", no_argument, 0, OPT_MERGE },
    { "help", no_argument, 0, 'h' },
    { 0, 0, 0, 0 },
};

/* Removes an index directory we created (its known files only). */
/* 1 if dir is a directory holding only the files of an index (or nothing):
 * what build --force may replace. */
static int is_index_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    int ok = 1;
    while (ok && (e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        ok = !strcmp(n, ".") || !strcmp(n, "..") || idx_is_index_file(n);
    }
    closedir(d);
    return ok;
}

/* Removes the index files in dir, then dir itself if that left it empty. */
static void remove_index_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4400];
        while ((e = readdir(d)) != NULL) {
            /* a path too long for p is left alone: its cut-off form
             * would name another file */
            if (idx_is_index_file(e->d_name)
                && (size_t)snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < sizeof p)
                unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Removes PATH.building-PID directories left by killed `build --force` runs
 * (their process is gone); a running build's directory is left alone. */
static void remove_stale_builds(const char *path)
{
    char dir[4096], prefix[512];
    const char *slash = strrchr(path, '/');
    if (slash) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        if (!dir[0]) snprintf(dir, sizeof dir, "/");
        snprintf(prefix, sizeof prefix, "%s.building-", slash + 1);
    } else {
        snprintf(dir, sizeof dir, ".");
        snprintf(prefix, sizeof prefix, "%s.building-", path);
    }
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t pl = strlen(prefix);
        if (strncmp(e->d_name, prefix, pl) != 0)
            continue;
        char *end;
        long pid = strtol(e->d_name + pl, &end, 10);
        if (*end || pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
            char full[4600];
            snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
            if (*end == '\0' && pid > 0)
                remove_index_dir(full);
        }
    }
    closedir(d);
}

enum { LOCK_WAIT_MS = 3000 };    /* how long build --force waits for another writer */

/* Takes the writer lock of the index at path (idx_writer_lock), waiting
 * up to wait_ms for another writer to finish. Returns the locked
 * descriptor, or CLI_BUSY or CLI_ERROR negated (message written). A
 * running `lexis serve` holds the lock while it runs. */
static int lock_index(const char *path, int wait_ms)
{
    int fd, rc;
    for (int waited = 0;; waited += 50) {
        if ((rc = idx_writer_lock(path, &fd)) == 0)
            return fd;
        if (rc != LX_E_BUSY || waited >= wait_ms)
            break;
        if (waited == 0)
            fprintf(stderr, "lexis: waiting for the process writing to %s to finish\n", path);
        usleep(50 * 1000);
    }
    if (rc == LX_E_BUSY)
        fprintf(stderr, "lexis: %s: another process is writing to this index (a lexis add, or a lexis serve, "
                "which holds it while it runs); replacing it would lose its writes\n", path);
    else
        fprintf(stderr, "lexis: %s/write.lock: %s\n", path, strerror(rc));
    return rc == LX_E_BUSY ? -CLI_BUSY : -CLI_ERROR;
}

/* Puts the complete new index at target in the place of the old one at
 * path, so that a kill at any moment leaves an index at path, the old or
 * the new: one atomic exchange of the two directories (renameat2's
 * RENAME_EXCHANGE), after which the old index, now at target, is removed
 * (a kill before that leaves it there as PATH.building-PID, which the next
 * build --force removes). Two renames, path aside and target in, had a
 * moment with no index at path, which a kill found (t_crash.sh). Where
 * the filesystem or kernel cannot exchange (EINVAL, ENOSYS), the two
 * renames remain; if the second fails the old index is put back, and the
 * message says where each index is. The caller holds the old index's
 * writer lock. 0 or -1 (message written). */
static int swap_in(const char *path, const char *target)
{
    if (renameat2(AT_FDCWD, target, AT_FDCWD, path, RENAME_EXCHANGE) == 0) {
        remove_index_dir(target);
        return 0;
    }
    if (errno != EINVAL && errno != ENOSYS) {
        fprintf(stderr, "lexis: swapping in the new index (%s): %s; the old index is still at %s\n",
                target, strerror(errno), path);
        return -1;
    }
    char old[4200];
    snprintf(old, sizeof old, "%s.old-%ld", path, (long)getpid());
    if (rename(path, old) != 0) {
        fprintf(stderr, "lexis: moving the old index aside: %s; it is still at %s (the new one at %s)\n",
                strerror(errno), path, target);
        return -1;
    }
    if (rename(target, path) != 0) {
        int e = errno;
        if (rename(old, path) == 0) /* the old one back, so that path still holds an index */
            fprintf(stderr, "lexis: moving the new index in: %s; the old index is still at %s\n", strerror(e),
                    path);
        else
            fprintf(stderr, "lexis: moving the new index in: %s; the old index is at %s, the new at %s\n",
                    strerror(e), old, target);
        return -1;
    }
    remove_index_dir(old);
    return 0;
}

static int run_ingest_cmd(int argc, char **argv, int is_build)
{
    idx_create_params cp = idx_create_default_params();
    ingest_opts o = { 0 };
    int force = 0, opt, li;
    optind = 1;
    while ((li = -1, opt = getopt_long(argc, argv, "h", ingest_longopts, &li)) != -1) {
        int build_only = 0;
        switch (opt) {
        case OPT_CORPUS: o.input = optarg; build_only = 1; break;
        case OPT_FIELDS: cp.fields = optarg; build_only = 1; break;
        case OPT_STEMMER: cp.analyzer.stemmer = optarg; build_only = 1; break;
        case OPT_STOPWORDS: cp.analyzer.stopwords = optarg; build_only = 1; break;
        case OPT_KEEP_POSS: cp.analyzer.strip_possessive = 0; build_only = 1; break;
        case OPT_K1:
            build_only = 1;
            if (cli_parse_float(optarg, &cp.k1) || cp.k1 < 0) goto bad_value;
            break;
        case OPT_B:
            build_only = 1;
            if (cli_parse_float(optarg, &cp.b) || cp.b < 0 || cp.b > 1) goto bad_value;
            break;
        case OPT_FORCE: force = 1; build_only = 1; break;
        case OPT_MEM: if (cli_parse_size_mb(optarg, &o.mem)) goto bad_value; break;
        case OPT_BATCH: if (cli_parse_u32(optarg, &o.batch_docs)) goto bad_value; break;
        case OPT_STRICT: o.strict = 1; break;
        case OPT_QUIET: o.quiet = 1; break;
        case OPT_MERGE: o.merge = 1; break;
        case 'h': build_help(stdout, is_build); return CLI_OK;
        default: build_help(stderr, is_build); return CLI_USAGE;
        }
        if (build_only && !is_build) {
            fprintf(stderr, "lexis add: option --%s is only for lexis build (settings are fixed "
                            "when an index is built)\n", ingest_longopts[li].name);
            return CLI_USAGE;
        }
        continue;
    bad_value:
        fprintf(stderr, "lexis: bad value '%s' for --%s\n", optarg, ingest_longopts[li].name);
        return CLI_USAGE;
    }
    int npos = argc - optind;
    if (is_build ? npos != 1 || !o.input : npos != 2) {
        build_help(stderr, is_build);
        return CLI_USAGE;
    }
    const char *path = argv[optind];
    if (is_build)
        o.merge = o.compact = 1;
    else
        o.input = argv[optind + 1];

    idx_env *env;
    FILE *f;
    uint64_t total;
    int rc;
    if ((rc = open_input(o.input, &f, &total)) != 0)
        return rc;
    if (!is_build) {
        if ((rc = cli_open_index(path, 0, &env)) == 0) {
            rc = ingest(env, &o, f, total);
            idx_env_close(env);
        }
        if (f != stdin)
            fclose(f);
        return rc;
    }

    char target[4096];
    struct stat st;
    int replace = force && stat(path, &st) == 0;
    if (replace && !is_index_dir(path)) {
        /* --force replaces an index, never a file or someone's directory. */
        fprintf(stderr, "lexis: %s: not a lexis index (build --force replaces only an index)\n",
                path);
        if (f != stdin)
            fclose(f);
        return CLI_ERROR;
    }
    /* build --force holds the old index's writer lock from here to the
     * swap: whatever another writer committed to the old index meanwhile
     * would be removed with it, so other writers are kept out (they get
     * "busy"), and one at work now is waited for a while, else refused
     * before anything is built. A writer that opened the old index before
     * and locks after the swap finds it gone from the path and refuses
     * (idx_writer_open). */
    int old_lock = -1;
    if (replace) {
        if ((old_lock = lock_index(path, LOCK_WAIT_MS)) < 0) {
            if (f != stdin)
                fclose(f);
            return -old_lock;
        }
        remove_stale_builds(path);
        snprintf(target, sizeof target, "%s.building-%ld", path, (long)getpid());
    }
    else
        snprintf(target, sizeof target, "%s", path);
    char err[512];
    int target_existed = stat(target, &st) == 0;
    rc = idx_env_open(target, IDX_CREATE, &cp, &env, err, sizeof err);
    if (rc) {
        fprintf(stderr, "lexis: %s%s\n", err,
                rc == LX_E_EXISTS ? " (use lexis add to extend it, or build --force)" : "");
        /* Creation failed after the directory or LMDB's files may have been
         * made (e.g. a bad --stemmer): take them away, so that a retry does
         * not find a half-made "index". EXISTS/NOTINDEX touched nothing. */
        if (!target_existed) {
            remove_index_dir(target);
        } else if (rc != LX_E_EXISTS && rc != LX_E_NOTINDEX) {
            char p[4200];
            snprintf(p, sizeof p, "%s/data.mdb", target);
            unlink(p);
            snprintf(p, sizeof p, "%s/lock.mdb", target);
            unlink(p);
        }
        if (f != stdin)
            fclose(f);
        if (old_lock >= 0)
            close(old_lock);
        return rc == LX_E_INVAL ? CLI_USAGE : CLI_ERROR;
    }
    rc = ingest(env, &o, f, total);
    idx_env_close(env);
    if (f != stdin)
        fclose(f);
    if (replace) {
        if (rc != CLI_OK && rc != CLI_PARTIAL) {
            remove_index_dir(target);
            fprintf(stderr, "lexis: %s left unchanged\n", path);
        } else if (swap_in(path, target) != 0) {
            rc = CLI_ERROR;
        }
        close(old_lock);
    }
    return rc;
}

int cmd_build(int argc, char **argv) { return run_ingest_cmd(argc, argv, 1); }
int cmd_add(int argc, char **argv) { return run_ingest_cmd(argc, argv, 0); }
