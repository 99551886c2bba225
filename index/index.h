/* index.h: the lexis index, one LMDB environment in one directory.
 *
 * Usage (write):
 *     idx_env *env;
 *     idx_create_params cp = idx_create_default_params();
 *     rc = idx_env_open("myindex", IDX_CREATE, &cp, &env);
 *     idx_writer *w;
 *     rc = idx_writer_open(env, NULL, &w);       // takes the writer lock
 *     rc = idx_writer_add_jsonl(w, stdin, "-", &report);
 *     rc = idx_writer_close(w);                  // flushes and commits
 *     idx_env_close(env);
 *
 * Usage (read):
 *     idx_reader *r;
 *     rc = idx_reader_open(env, &r);       // a snapshot: one LMDB read txn
 *     idx_plist pl[..]; uint32_t df;       // a query's way: dictionaries
 *     n = idx_reader_find(r, "fast", 4, idx_term_hash("fast", 4), &df, pl, cap);
 *     idx_term_info ti;                     // or by term id (merge, check)
 *     rc = idx_reader_term(r, "fast", 4, &ti);
 *     n = idx_reader_postings(r, ti.term_id, pl, cap);
 *     ...
 *     idx_reader_close(r);
 *
 * Errors: functions return 0, a positive errno, or LX_E_*; idx_env_errmsg()
 * gives the detail of the last failure on that environment (per thread is the
 * caller's business: an env shared by threads should be read-only or use
 * per-thread readers, whose errors are returned as codes only).
 *
 * Consistency: every change commits in an LMDB transaction. A crash leaves
 * the last committed state; a writer commits once per flushed batch, and
 * each commit is a complete, searchable index.
 */
#ifndef LX_INDEX_H
#define LX_INDEX_H

#include "../kernels/kernels.h"
#include "../encoder/encoder.h"

#include <stdio.h>
#include <stdint.h>

#define IDX_FORMAT_VERSION 5
#define IDX_BLOCK_SIZE 128
#define IDX_MAX_ID_BYTES 255      /* external document id length limit */
#define IDX_NO_DOC UINT32_MAX

typedef struct idx_env idx_env;
typedef struct idx_writer idx_writer;
typedef struct idx_reader idx_reader;

/* ---- environment ----------------------------------------------------------- */

enum { IDX_RDONLY = 1, IDX_CREATE = 2 };

typedef struct idx_create_params {
    enc_analyzer_params analyzer;  /* recorded in the index */
    const char *fields;            /* indexed + stored fields, comma-separated
                                      ("title,text" by default); borrowed */
    float k1, b;                   /* BM25 defaults recorded (0.9, 0.4) */
} idx_create_params;

idx_create_params idx_create_default_params(void);

/* Opens the index at `path`. With IDX_CREATE, creates a new index with params
 * `cp` (LX_E_EXISTS if `path` already holds one; a non-empty directory that
 * is not an index gives LX_E_NOTINDEX). Without it, `cp` is ignored and the
 * index must exist (LX_E_NOTINDEX otherwise; LX_E_VERSION when written by a
 * newer format). *out is owned by the caller: idx_env_close. On failure a
 * message is written to errbuf (if given). */
int idx_env_open(const char *path, int flags, const idx_create_params *cp,
                 idx_env **out, char *errbuf, size_t errcap);
void idx_env_close(idx_env *env);
const char *idx_env_errmsg(const idx_env *env);   /* borrowed, until next call */

/* Settings recorded in the index; strings borrowed, valid while env is open. */
const char *idx_env_analyzer_desc(const idx_env *env);
const char *idx_env_fields(const idx_env *env);
void idx_env_bm25(const idx_env *env, float *k1, float *b);
const char *idx_env_path(const idx_env *env);

/* 1 for the names of the files an index directory may hold: LMDB's
 * data.mdb and lock.mdb, our write.lock, and IDX_COMPACT_FILE (a compaction
 * a crash interrupted; the next writer removes it). */
#define IDX_COMPACT_FILE "data.mdb.compact"
int idx_is_index_file(const char *name);

/* ---- writing --------------------------------------------------------------- */

typedef struct idx_writer_params {
    size_t mem_budget;      /* bytes of in-memory postings before a flush
                               (default 512 MiB) */
    uint32_t batch_docs;    /* also flush every N documents (0 = no limit) */
    int strict;             /* stop at the first bad input line */
    /* Progress: called after each document and each commit; may be NULL. */
    void (*progress)(void *ctx, uint64_t docs_done, uint64_t bytes_done, int committed);
    void *progress_ctx;
    FILE *log;              /* where bad lines are reported (stderr default) */
} idx_writer_params;

idx_writer_params idx_writer_default_params(void);

typedef struct idx_add_report {
    uint64_t lines;         /* input lines read (blank lines included) */
    uint64_t indexed;       /* documents added */
    uint64_t replaced;      /* of which replaced an existing id */
    uint64_t skipped;       /* bad lines reported and skipped */
    uint64_t commits;       /* transactions committed */
    uint64_t bytes;         /* input bytes read */
} idx_add_report;

/* Opens the single writer of env. Takes an exclusive lock on INDEX/write.lock
 * (LX_E_BUSY if another process holds it, or if the index at env's path has
 * been replaced since env was opened: the directory by `lexis build --force`,
 * or data.mdb by a compaction). *out owned by the caller. */
int idx_writer_open(idx_env *env, const idx_writer_params *p, idx_writer **out);

/* The writer lock alone, of the index directory dir, as idx_writer_open
 * takes it (without waiting): 0 and *fd, whose close releases it;
 * LX_E_BUSY when another process holds it; else the errno of opening
 * DIR/write.lock. For `lexis build --force`, which keeps writers out of an
 * index it is about to replace. */
int idx_writer_lock(const char *dir, int *fd);

/* Adds one document. Fields: parallel arrays of names and UTF-8 values
 * (borrowed, copied). A document whose id exists replaces it. Returns
 * LX_E_INPUT for an empty/too long id; may flush (and commit). */
int idx_writer_add(idx_writer *w, const char *id, size_t id_len,
                   const char *const *names, const char *const *values,
                   const size_t *value_lens, size_t nfields);

/* Reads JSON lines (BEIR layout: "_id" plus the index's fields) from f and
 * adds each. `name` labels messages ("corpus.jsonl:17: ..."). A bad line is
 * reported and skipped (params.strict: reading stops with LX_E_INPUT after
 * committing the good lines before it). Counts go to *rep (accumulated). */
int idx_writer_add_jsonl(idx_writer *w, FILE *f, const char *name, idx_add_report *rep);

/* Marks a document deleted (committed at the next flush/close).
 * LX_E_NOTFOUND if no such id is live. */
int idx_writer_delete(idx_writer *w, const char *id, size_t id_len);

/* Writes everything pending in one transaction. */
int idx_writer_flush(idx_writer *w);

/* Flushes, releases the lock and frees. Returns the flush status. */
int idx_writer_close(idx_writer *w);

/* Flushes, then merges all segments into one, dropping the postings of
 * deleted documents (one transaction; doc ids unchanged). *segments_before
 * gets the number of segments found (1 or 0 with no deletions: no-op). */
int idx_writer_merge(idx_writer *w, uint32_t *segments_before);

/* Flushes, then drops the free pages a build leaves behind (merging runs
 * frees their pages, and LMDB never shrinks its file) by rewriting the file
 * compactly when they are at least IDX_COMPACT_MIN_FREE_PCT percent of it
 * (LMDB's compacting copy, synced, renamed over data.mdb; a crash leaves the
 * old file). Afterwards the writer accepts no more documents: close it and
 * the environment. Only for an index no other process has open, such as a
 * new build's: a reader elsewhere would keep reading the old file. *saved
 * gets the bytes given back (0 when there was too little to gain). */
#define IDX_COMPACT_MIN_FREE_PCT 10
int idx_writer_compact(idx_writer *w, uint64_t *saved);

/* Frees without committing what is pending (used on errors). */
void idx_writer_abandon(idx_writer *w);

/* ---- reading --------------------------------------------------------------- */

typedef struct idx_stats {
    uint64_t ndocs;         /* live documents */
    uint64_t total_len;     /* sum of live document lengths (terms) */
    double avgdl;           /* total_len / ndocs (1 if empty) */
    uint64_t nterms;        /* distinct terms ever seen */
    uint32_t next_docid;    /* internal ids handed out so far */
    uint32_t nsegments;
    uint64_t ndeleted;      /* deleted documents still in postings */
    float k1, b;            /* recorded BM25 parameters */
} idx_stats;

typedef struct idx_term_info {
    uint32_t term_id;
    uint32_t df;            /* live documents containing the term */
    uint64_t cf;            /* total occurrences in live documents */
} idx_term_info;

/* The ranks k whose k-th best term score a postings list records: a lower
 * bound on a top-k threshold before any document is scored. */
#define IDX_KTH_COUNT 3
extern const uint32_t idx_kth_ranks[IDX_KTH_COUNT];   /* 10, 100, 1000 */

/* A segment's document lengths, read in place (format 4; the layout is in
 * segment.c): a u16 a document, and where that holds IDX_DOCLEN_LONG the
 * length (65,535 terms or more) is in a table of (offset, length) pairs.
 * u32 lengths, as format 3 had them, made MaxScore's windows on a
 * 2-million-document corpus wait on the lengths' cache misses (one read a
 * posting scored, at random within the window): at u16, synth2m's queries
 * took 8-11% less (ab.sh, two runs). Offsets count from the segment's
 * base. */
typedef struct idx_doclens {
    const unsigned char *lens;    /* ndocs u16, unaligned */
    const unsigned char *longs;   /* nlong (u32 offset, u32 length), by offset */
    uint32_t nlong;
} idx_doclens;
#define IDX_DOCLEN_LONG 0xFFFFu
/* The length at offset off that the u16 array marks long; IDX_DOCLEN_LONG
 * when the table lacks it (a damaged segment; idx_check reports it). */
uint32_t idx_doclens_long(const idx_doclens *d, uint32_t off);
static inline uint32_t idx_doclens_get(const idx_doclens *d, uint32_t off)
{
    uint32_t dl = lx_ld16(d->lens + 2 * (size_t)off);
    return __builtin_expect(dl == IDX_DOCLEN_LONG, 0) ? idx_doclens_long(d, off) : dl;
}

/* A read view of one (term, segment) postings list, borrowing LMDB's memory
 * (valid until the reader closes). Block accessors are below. */
typedef struct idx_plist {
    uint32_t seg;           /* segment number */
    uint32_t n;             /* postings in this list (deleted docs included) */
    uint32_t nblocks;
    float fmax;             /* max over postings of tf/(tf + K(dl)) at the
                               segment's k1, b, avgdl */
    uint32_t max_tf, min_dl;
    float kth[IDX_KTH_COUNT];  /* the idx_kth_ranks[i]-th largest
                               tf/(tf + K(dl)) of the list at the segment's
                               k1, b, avgdl, deleted docs included; 0 when
                               the list is shorter than that rank */
    float seg_k1, seg_b, seg_avgdl;
    uint32_t seg_base, seg_ndocs;      /* the segment's doc-id range */
    idx_doclens doclens;               /* the segment's, of docs seg_base..
                                          (idx_plist_doclen) */
    const unsigned char *entries;      /* nblocks * IDX_BLOCK_ENTRY bytes */
    const unsigned char *data;         /* encoded blocks */
    size_t data_size;
} idx_plist;

/* tf/(tf + k1*(1-b+b*dl/avgdl)): the part of BM25 that depends on the
 * document, computed the same way everywhere so bounds hold exactly. */
static inline float idx_bm25_norm(uint32_t dl, float k1, float b, float avgdl)
{
    return k1 * (1.0f - b + b * ((float)dl / avgdl));
}
/* The same value as idx_bm25_tfnorm when norm = idx_bm25_norm(dl, ...):
 * queries look norms up in a table computed with that function. */
static inline float idx_bm25_tfnorm_k(uint32_t tf, float norm)
{
    float t = (float)tf;
    return t / (t + norm);
}
static inline float idx_bm25_tfnorm(uint32_t tf, uint32_t dl, float k1, float b, float avgdl)
{
    return idx_bm25_tfnorm_k(tf, idx_bm25_norm(dl, k1, b, avgdl));
}

#define IDX_BLOCK_ENTRY 32
/* Block entry layout (little endian), read in place:
 *   0 u32 last_doc   4 u32 data_off   8 f32 fmax   12 u32 max_tf
 *  16 u32 min_dl    20 u16 count     22 u16 doc_bytes  24 u64 xxh3 */
static inline uint32_t idx_block_last(const idx_plist *p, uint32_t i)
{ return lx_ld32(p->entries + (size_t)i * IDX_BLOCK_ENTRY); }
static inline float idx_block_fmax(const idx_plist *p, uint32_t i)
{ return lx_ldf(p->entries + (size_t)i * IDX_BLOCK_ENTRY + 8); }
static inline uint32_t idx_block_max_tf(const idx_plist *p, uint32_t i)
{ return lx_ld32(p->entries + (size_t)i * IDX_BLOCK_ENTRY + 12); }
static inline uint32_t idx_block_min_dl(const idx_plist *p, uint32_t i)
{ return lx_ld32(p->entries + (size_t)i * IDX_BLOCK_ENTRY + 16); }

static inline uint32_t idx_plist_doclen(const idx_plist *p, uint32_t doc)
{ return idx_doclens_get(&p->doclens, doc - p->seg_base); }

/* Decodes block i into docs[] (absolute ids) and tfs[] (each >= 1), both at
 * least IDX_BLOCK_SIZE long. Every length is bounds-checked first: corrupt
 * data gives LX_E_CORRUPT, never an out-of-bounds read. Returns the number of
 * postings (> 0) or a negative LX_E_* code. Checksums are not verified here
 * (idx_plist_verify does that). */
int idx_block_decode(const idx_plist *p, uint32_t i, uint32_t *docs, uint32_t *tfs);

/* Parses a postings value (zero-copy) into *out. LX_E_CORRUPT when the
 * header's checksum or sizes do not hold. */
int idx_plist_parse(const void *val, size_t len, idx_plist *out);

/* Verifies the checksum of block i (entry and data). 0 or LX_E_CORRUPT. */
int idx_block_verify_checksum(const idx_plist *p, uint32_t i);

/* Opens a read snapshot. Several readers may exist at once, in any threads
 * (each one is used by one thread at a time). *out owned by the caller. */
int idx_reader_open(idx_env *env, idx_reader **out);
void idx_reader_close(idx_reader *r);

const idx_stats *idx_reader_stats(const idx_reader *r);   /* borrowed */

/* A number no other reader of this environment has had while it is open
 * (from 1): what a cache of one snapshot's lookups is keyed by, since a
 * closed reader's address may come back for the next one. Readers of two
 * environments may share a serial: such a cache also checks the env. */
uint64_t idx_reader_serial(const idx_reader *r);
const idx_env *idx_reader_env(const idx_reader *r);   /* the one it was opened on */

/* Looks up an analyzed term. LX_E_NOTFOUND if absent. */
int idx_reader_term(const idx_reader *r, const char *term, size_t len, idx_term_info *out);

/* Fills up to cap postings lists of term_id, in segment (= doc id) order.
 * Returns the count (>= 0) or a negative code. Borrowed until reader closes. */
int idx_reader_postings(const idx_reader *r, uint32_t term_id, idx_plist *out, int cap);

/* The hash the segments' dictionaries key a term by (XXH3, 64 bits). */
uint64_t idx_term_hash(const char *term, size_t len);

/* What a query needs of an analyzed term (hash: idx_term_hash of it),
 * from the segments' dictionaries (no B-tree search unless documents are
 * deleted, when *df comes from the terms database): its lists as
 * idx_reader_postings fills them, and *df, the live documents that have
 * it. Returns the count of lists (>= 1), LX_E_NOTFOUND when no segment has
 * the term, or a negative code. */
int idx_reader_find(const idx_reader *r, const char *term, size_t len, uint64_t hash, uint32_t *df,
                    idx_plist *out, int cap);

/* Starts the loads a find of term will wait on, one step at a time: step 0
 * the dictionaries' slots, step 1 (once 0 has had time) the entries they
 * point to, step 2 the texts and the lists' first bytes. A query runs
 * each step over all its terms before it finds any, so their cache misses
 * overlap instead of following one another. Reads nothing it could fault
 * on: a damaged slot or entry is left for the find to report. */
void idx_reader_prefetch(const idx_reader *r, uint64_t hash, int step);

/* Exact length of a document (0 for ids never used). */
uint32_t idx_reader_doclen(const idx_reader *r, uint32_t docid);

/* 1 if the internal id belongs to a deleted document. (An id handed out to
 * a document replaced within its own batch never reaches the disk: it has
 * no postings and no stored record, and this returns 0 for it.) */
int idx_reader_is_deleted(const idx_reader *r, uint32_t docid);
/* 1 when no document is deleted: cursors skip the check entirely. */
int idx_reader_has_deletes(const idx_reader *r);

/* A stored document (see idx_reader_doc for how long it is valid). */
typedef struct idx_doc {
    uint32_t docid;
    uint32_t len;
    const char *id; size_t id_len;
    size_t nfields;
    const char *names[8]; size_t name_lens[8];
    const char *values[8]; size_t value_lens[8];
} idx_doc;

/* LX_E_NOTFOUND for a deleted or unknown docid. The id borrows LMDB memory
 * until the reader closes; the fields may live in the reader's buffer for a
 * decompressed document, valid until the next idx_reader_doc on r. */
int idx_reader_doc(idx_reader *r, uint32_t docid, idx_doc *out);
/* The external id alone (no decompression), borrowing LMDB memory until the
 * reader closes. LX_E_NOTFOUND for a deleted or unknown docid. */
int idx_reader_doc_id(const idx_reader *r, uint32_t docid, const char **id, size_t *id_len);
/* External id -> internal id. LX_E_NOTFOUND if absent. */
int idx_reader_lookup(const idx_reader *r, const char *id, size_t id_len, uint32_t *docid);

/* ---- checking -------------------------------------------------------------- */

typedef struct idx_check_report {
    uint64_t terms, lists, blocks, postings, docs;
    uint64_t errors;
} idx_check_report;

/* Verifies every checksum and the structure: postings decode, ids increase,
 * block metadata holds, term df/cf match the postings minus deletions, docs
 * and ids agree, statistics add up. Each problem is printed to `out` naming
 * the term and block (or document). Returns 0 if clean, LX_E_CORRUPT if not. */
int idx_check(idx_env *env, FILE *out, idx_check_report *rep);

/* ---- inspection ------------------------------------------------------------ */

typedef struct idx_inspect_info {
    idx_stats stats;
    uint32_t format_version;
    uint64_t file_bytes;        /* size of data.mdb */
    uint64_t map_bytes;
    uint64_t postings_bytes;    /* bytes of postings values */
    uint64_t postings;          /* postings stored */
    uint64_t docs_bytes;        /* bytes of stored documents */
} idx_inspect_info;

int idx_inspect(idx_env *env, idx_inspect_info *info);

#endif
