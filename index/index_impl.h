/* index_impl.h: private layouts of the index module. Only the .c files of index/ and the
 * index tests include this.
 *
 * On disk: one LMDB environment (INDEX/data.mdb, INDEX/lock.mdb) plus
 * INDEX/write.lock (the writer's flock). Named databases; integers are little
 * endian unless a key says big endian (BE keys sort numerically):
 *
 *   meta      "format"   -> u32 format version (IDX_FORMAT_VERSION)
 *             "analyzer" -> analyzer description string (enc_analyzer_describe)
 *             "fields"   -> comma-separated indexed field names
 *             "bm25"     -> f32 k1, f32 b
 *             "stats"    -> IDX_STATS_* layout below
 *   terms     term bytes -> u32 term_id, u32 df (live), u64 cf (live)
 *   dicts     u32be seg -> the segment's term dictionary: a hash table from
 *                          term text to (term_id, chunk, offset, size) of
 *                          its list (format 5; layout in dict.c)
 *   postings  u32be seg, u32be chunk -> the segment's postings lists back
 *                          to back, in term id order (dict.c)
 *   segments  u32be seg -> u32 base, u32 ndocs, f32 k1, f32 b, f32 avgdl,
 *                          u32 checksum, u16 doclen[ndocs] (0xFFFF: 65,535
 *                          or more, in the table), 0-2 zero bytes to a
 *                          multiple of 4, (u32 offset, u32 doclen) for each
 *                          long one, by offset (format 4; segment.c)
 *             "docdict"  -> zstd dictionary of the stored documents (docstore.c)
 *   docs      u32be docid -> u32 checksum, u32 doclen, u16 id_len, id, u8 codec,
 *                          fields block, raw or zstd-compressed (docstore.c)
 *   ids       external id bytes -> u32 docid
 *   deleted   "bitmap"   -> portable Roaring bitmap of deleted docids
 *
 * Postings list (one per term and segment, in a chunk):
 *   header (24 bytes): u32 n, u32 nblocks, f32 fmax, u32 max_tf, u32 min_dl,
 *                      u32 checksum (low 32 bits of XXH3 of bytes 0..19, and
 *                      with n >= 10 of bytes 24..39 too, seeded by the first)
 *   with n >= 10 (format 3), 16 more bytes: f32 kth[3], u32 0 (reserved):
 *                      the 10th, 100th and 1000th largest tf/(tf + K(dl))
 *                      of the list at the segment's k1, b, avgdl (0 where
 *                      the list is shorter), deleted documents included
 *   nblocks entries of IDX_BLOCK_ENTRY bytes (see index.h)
 *   data: per block, StreamVByte doc-id gaps (differential from the previous
 *         block's last doc; the first block from 0), then StreamVByte tfs.
 *   Each entry's xxh3 covers the entry's first 24 bytes and the block data.
 *
 * Segment: the documents added by one flush, a contiguous range of internal
 * ids [base, base+ndocs). Its postings are written once and never changed;
 * deletions go to the deleted bitmap and the live statistics.
 */
#ifndef LX_INDEX_IMPL_H
#define LX_INDEX_IMPL_H

#include "index.h"

#include <pthread.h>
#include <stdbool.h>

#define IDX_PLIST_HEADER 24
#define IDX_PLIST_HEADER_KTH 40    /* with the k-th values (n >= 10) */
#define IDX_SEG_HEADER 24
#define IDX_DOC_HEADER 8
#define IDX_TERM_VALUE 16
#define IDX_MAX_FIELDS 8

/* stats value: u64 ndocs, u64 total_len, u32 next_docid, u32 next_segid,
 * u32 next_termid, u32 pad, u64 ndeleted, u64 checksum(of bytes 0..39) */
#define IDX_STATS_SIZE 48

/* ---- storage (index/lmdb_store.c is the only caller of mdb_*) ------------- */

enum idx_db {
    IDX_DB_META, IDX_DB_TERMS, IDX_DB_POSTINGS, IDX_DB_SEGMENTS,
    IDX_DB_DOCS, IDX_DB_IDS, IDX_DB_DELETED, IDX_DB_DICTS, IDX_DB_COUNT
};

typedef struct idx_store idx_store;
typedef struct idx_stxn idx_stxn;
typedef struct idx_scur idx_scur;

typedef struct idx_val {
    const void *data;
    size_t size;
} idx_val;

enum { IDX_STORE_RDONLY = 1, IDX_STORE_CREATE = 2 };

int  idx_store_open(const char *path, int flags, idx_store **out, char *err, size_t cap);
void idx_store_close(idx_store *s);
/* Grows the map so that at least `need` more bytes fit. No txn may be open. */
int  idx_store_grow(idx_store *s, size_t need);
int  idx_store_info(idx_store *s, uint64_t *map_bytes, uint64_t *used_bytes);
/* 1 when the file at path (DIR/data.mdb) is the one s has open, 0 when it
 * is another file or none (the directory was replaced or removed). */
int  idx_store_is_file(idx_store *s, const char *path);
/* When free pages are at least min_free_pct percent of the file, rewrites it
 * without them (LMDB's compacting copy into DIR/data.mdb.compact, synced,
 * renamed over DIR/data.mdb). s stays open on the old file: close it next.
 * Only for an environment no other process has open. *saved: bytes freed. */
int  idx_store_compact(idx_store *s, const char *dir, unsigned min_free_pct, uint64_t *saved);
int  idx_env_compact(idx_env *env, uint64_t *saved);   /* idx_store_compact + message */
const char *idx_store_errmsg(const idx_store *s);

int  idx_store_begin(idx_store *s, int write, idx_stxn **out);
int  idx_store_commit(idx_stxn *t);       /* frees t, also on failure */
void idx_store_abort(idx_stxn *t);        /* frees t */

/* get: v borrows the map, valid until the txn ends. LX_E_NOTFOUND if absent. */
int idx_store_get(idx_stxn *t, int db, const void *key, size_t klen, idx_val *v);
int idx_store_put(idx_stxn *t, int db, const void *key, size_t klen,
                  const void *val, size_t vlen, int append);
/* Reserves vlen bytes for key and returns where to write them (in the map). */
int idx_store_reserve(idx_stxn *t, int db, const void *key, size_t klen,
                      size_t vlen, int append, void **dst);
int idx_store_del(idx_stxn *t, int db, const void *key, size_t klen);
int idx_store_drop_all(idx_stxn *t, int db);   /* empties the database */
int idx_store_count(idx_stxn *t, int db, uint64_t *n, uint64_t *bytes);

/* Cursor: seek to the first key >= key (NULL: first key), then step. Each
 * call fills k and v (borrowed until the txn ends); LX_E_NOTFOUND at end. */
int  idx_scur_open(idx_stxn *t, int db, idx_scur **out);
int  idx_scur_seek(idx_scur *c, const void *key, size_t klen, idx_val *k, idx_val *v);
int  idx_scur_next(idx_scur *c, idx_val *k, idx_val *v);
void idx_scur_close(idx_scur *c);

/* ---- checksums (index/keys.c is the only caller of XXH3) ----------------- */

uint64_t idx_hash64(const void *p, size_t n);
uint64_t idx_hash64_seed(const void *p, size_t n, uint64_t seed);
static inline uint32_t idx_hash32(const void *p, size_t n) { return (uint32_t)idx_hash64(p, n); }

/* ---- postings codec (index/postings.c is the only caller of streamvbyte) - */

/* Encodes n postings (docs increasing, tfs >= 1) into a postings list value.
 * doclens(ctx, doc) gives each document's length; k1, b, avgdl fix fmax.
 * Returns the value size; out must hold idx_plist_max_size(n) bytes. */
size_t idx_plist_max_size(uint32_t n);
/* The header's size for a list of n postings (IDX_PLIST_HEADER or, from
 * 10 postings on, IDX_PLIST_HEADER_KTH). */
size_t idx_plist_header_size(uint32_t n);
size_t idx_plist_encode(const uint32_t *docs, const uint32_t *tfs, uint32_t n,
                        const uint32_t *doclen_by_rel, uint32_t seg_base,
                        float k1, float b, float avgdl, unsigned char *out);

/* The k-th largest of a stream of values, for k in idx_kth_ranks (the
 * writer's kth[] of a list; check recomputes them). */
#define IDX_KTH_MAX 1000
typedef struct idx_kth {
    float h[IDX_KTH_MAX];
    uint32_t m;
} idx_kth;
void idx_kth_init(idx_kth *k);
void idx_kth_push(idx_kth *k, float f);
/* out[i]: the idx_kth_ranks[i]-th largest pushed, 0 if fewer were. */
void idx_kth_finish(idx_kth *k, float out[IDX_KTH_COUNT]);

/* StreamVByte decoding (svb.c): exact encoded size of n values from the
 * control bytes (0 if it exceeds avail); decoders return bytes consumed,
 * may read 16 bytes past the end of the stream, and write out[0..n)
 * and possibly up to n rounded up to a multiple of 4 (out has that room). */
size_t idx_svb_size(const unsigned char *in, size_t avail, uint32_t n);
size_t idx_svb_decode(const unsigned char *in, uint32_t *out, uint32_t n);
/* gaps_or: the OR of (gap - 1) over every gap but the first, so that
 * (*gaps_or >> 25) == 0 says each of them is in [1, 2^25] (a cheap
 * monotonicity check: see idx_block_decode). */
size_t idx_svb_delta_decode(const unsigned char *in, uint32_t *out, uint32_t n, uint32_t prev,
                            uint32_t *gaps_or);

/* ---- deleted documents (index/deleted.c is the only caller of roaring) --- */

typedef struct idx_delset idx_delset;
int  idx_delset_load(const void *data, size_t size, idx_delset **out);  /* empty if size 0 */
int  idx_delset_contains(const idx_delset *d, uint32_t docid);
int  idx_delset_add(idx_delset *d, uint32_t docid);
uint64_t idx_delset_count(const idx_delset *d);
/* Serialized size / serialize into out (size bytes). */
size_t idx_delset_size(idx_delset *d);
void idx_delset_write(const idx_delset *d, void *out);
void idx_delset_free(idx_delset *d);

/* ---- JSON lines (index/ingest.c is the only caller of jansson here) ------ */

typedef struct idx_jsonl_doc {
    const char *id; size_t id_len;
    size_t nfields;
    const char *values[IDX_MAX_FIELDS]; size_t value_lens[IDX_MAX_FIELDS];
} idx_jsonl_doc;

/* Parses one line into doc, taking the fields named in names[] (missing or
 * null -> empty). Strings borrow *owner, which the caller frees with
 * idx_jsonl_doc_release. On error writes a message to err and returns
 * LX_E_INPUT. */
int idx_jsonl_parse(const char *line, size_t len, const char *const *names, size_t nnames,
                    idx_jsonl_doc *doc, void **owner, char *err, size_t errcap);
void idx_jsonl_doc_release(void *owner);

/* ---- environment internals -------------------------------------------------- */

typedef struct idx_stats_disk {
    uint64_t ndocs, total_len;
    uint32_t next_docid, next_segid, next_termid;
    uint64_t ndeleted;
} idx_stats_disk;

typedef struct idx_docshared idx_docshared;    /* docstore.c */

struct idx_env {
    idx_store *store;
    char *path;
    char analyzer_desc[256];
    char fields_buf[256];       /* as recorded: "title,text" */
    char *field_storage;        /* owned: split copy that field_names point into */
    const char *field_names[IDX_MAX_FIELDS];
    size_t nfields;
    float k1, b;
    uint32_t format_version;
    idx_docshared *docs;        /* owned: dictionary and decompression contexts */
    uint64_t readers_opened;    /* idx_reader_serial's counter (atomic adds) */
    char errmsg[512];
};

int idx_stats_read(idx_stxn *t, idx_stats_disk *s);
int idx_stats_write(idx_stxn *t, const idx_stats_disk *s);
void idx_env_set_error(idx_env *env, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- segment dictionaries (dict.c) ------------------------------------------ */

/* A chunk of postings is closed when the next list would take it past
 * this (the writer's flush and the merge). */
#define IDX_CHUNK_BYTES (16u << 20)

/* A dictionary read in place (zero copy); chunks is the reader's array of
 * the segment's nchunks chunk values (NULL until it has fetched them). */
typedef struct idx_dict {
    uint32_t nterms, nslots, nchunks;
    const unsigned char *slots, *entries;
    const char *strings;
    uint32_t strings_size;
    const unsigned char *value;      /* the whole value, for the checksum */
    size_t size;
    const idx_val *chunks;
} idx_dict;

/* Checks the header and that the sizes add up to len. */
int idx_dict_parse(const void *val, size_t len, idx_dict *out);
/* The checksum over the whole value (lexis check; queries do not pay it). */
int idx_dict_verify(const idx_dict *d);
/* The entry of a term: by text (hash = idx_hash64 of it), or by term id
 * (binary search). 0, LX_E_NOTFOUND, or LX_E_CORRUPT for a slot that
 * points outside the value. */
int idx_dict_find(const idx_dict *d, const char *text, size_t len, uint64_t hash, uint32_t *entry);
int idx_dict_find_id(const idx_dict *d, uint32_t term_id, uint32_t *entry);
/* idx_reader_prefetch's step for the term of this hash. */
void idx_dict_prefetch(const idx_dict *d, uint64_t hash, int step);
/* An entry's parts, entry < nterms; text and list borrow the values, their
 * bounds checked (LX_E_CORRUPT). */
uint32_t idx_dict_term_id(const idx_dict *d, uint32_t entry);
int idx_dict_text(const idx_dict *d, uint32_t entry, const char **text, size_t *len);
int idx_dict_list(const idx_dict *d, uint32_t entry, const void **list, size_t *size);

/* Writes one segment's chunks and dictionary in t: lists are added in
 * increasing term id order (copied into the open chunk, which goes to the
 * postings database once full), then finish writes the last chunk and the
 * dictionary. The builder owns its buffers: free it in any case. */
typedef struct idx_dict_builder {
    idx_stxn *t;
    uint32_t seg, nchunks, last_term_id;
    size_t chunk_bytes;
    unsigned char *chunk, *entries;
    char *strings;
    size_t chunk_len, chunk_cap, nterms, entries_cap, strings_len, strings_cap;
} idx_dict_builder;
void idx_dict_builder_init(idx_dict_builder *b, idx_stxn *t, uint32_t seg, size_t chunk_bytes);
int idx_dict_builder_add(idx_dict_builder *b, uint32_t term_id, const char *text, size_t len,
                         const void *list, size_t size);
int idx_dict_builder_finish(idx_dict_builder *b);
void idx_dict_builder_free(idx_dict_builder *b);

/* Segment header parse (zero copy). */
typedef struct idx_segment {
    uint32_t seg, base, ndocs;
    float k1, b, avgdl;
    idx_doclens doclens;             /* borrowed from the value */
    idx_dict dict;                   /* the reader's: its terms and lists */
} idx_segment;
/* Reads a segments value in place (segment.c): LX_E_CORRUPT when its sizes
 * or its table of long lengths do not hold together. */
int idx_segment_parse(uint32_t seg, const void *val, size_t len, idx_segment *out);
/* Bytes of the value for ndocs documents of lengths lens. */
size_t idx_segment_size(const uint32_t *lens, uint32_t ndocs);
/* Writes the value (size bytes, from idx_segment_size) into sv, checksum
 * included. */
void idx_segment_write(unsigned char *sv, size_t size, uint32_t base, uint32_t ndocs, float k1, float b,
                       float avgdl, const uint32_t *lens);
/* The checksum a segments value of size bytes (>= IDX_SEG_HEADER) holds
 * at byte 20: written by idx_segment_write, verified by check. */
uint32_t idx_segment_checksum(const void *val, size_t size);
/* Stores segment seg's value in t (the writer's flush and the merge):
 * sized, reserved in the segments database and written in place. */
int idx_segment_put(idx_stxn *t, uint32_t seg, uint32_t base, uint32_t ndocs, float k1, float b, float avgdl,
                    const uint32_t *lens);

/* Merges every segment into one and drops deleted postings, in one
 * transaction (merge.c). The caller holds the writer lock. */
int idx_merge_segments(idx_env *env, uint32_t *segments_before);

/* The read transaction of a reader (reader.c), for check.c and merge.c. */
idx_stxn *idx_reader_txn(const idx_reader *r);

/* ---- stored documents (docstore.c, the only caller of zstd) ------------------ */

/* A fields block larger than this is refused (and never decompressed). */
#define IDX_MAX_DOC_BYTES (256u << 20)

enum { IDX_DOC_RAW = 0, IDX_DOC_ZSTD = 1, IDX_DOC_ZSTD_DICT = 2 };

/* Per environment: the digested dictionary and a pool of decompression
 * contexts, shared by all threads (locked inside). Owned by the env. */
int idx_docshared_new(idx_docshared **out);
void idx_docshared_free(idx_docshared *s);

/* Decoding state of one reader (or writer, or check): a decompression
 * context borrowed from the env's pool and a buffer that holds the last
 * decompressed document. Not thread-safe. */
typedef struct idx_docdec {
    idx_docshared *shared;
    void *dctx;
    const void *ddict;    /* the shared dictionary once seen (it never changes) */
    unsigned char *buf;
    size_t cap;
} idx_docdec;
void idx_docdec_init(idx_docdec *d, idx_env *env);
void idx_docdec_free(idx_docdec *d);
/* Parses a docs value. id points into val; the fields point into val (raw)
 * or into d's buffer, valid until the next decode with d. t: the
 * transaction to read the dictionary from, the first time it is needed. */
int idx_doc_decode(idx_docdec *d, idx_stxn *t, uint32_t docid, const void *val, size_t len,
                   idx_doc *out);
/* Only the header and the id (nfields = 0); never decompresses. */
int idx_doc_decode_id(uint32_t docid, const void *val, size_t len, idx_doc *out);

/* Encoding state of a writer: compression context, dictionary, buffer. */
typedef struct idx_docenc {
    void *cctx, *cdict;
    unsigned char *buf;
    size_t cap;
} idx_docenc;
void idx_docenc_init(idx_docenc *e);
void idx_docenc_free(idx_docenc *e);
/* Before a flush's documents, in its transaction: loads the dictionary, or,
 * if the index has none yet and this batch is large enough, trains one on
 * the batch's raw records and stores it in meta. */
int idx_docenc_begin(idx_docenc *e, idx_stxn *t, const unsigned char *const *recs,
                     const size_t *rec_lens, size_t n);
/* Turns a raw record (the writer's layout: u32 checksum, u32 doclen, u16
 * id_len, id, fields block) into a docs value; *out is valid until the next
 * call. */
int idx_docenc_encode(idx_docenc *e, const unsigned char *rec, size_t rec_len,
                      const unsigned char **out, size_t *out_len);

#endif
