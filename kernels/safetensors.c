/* safetensors.c: a validating safetensors reader over a read-only mmap.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [r, c], "data_offsets": [b, e]}, ...,
 *    "__metadata__": {"k": "v"}}
 * then the data area; offsets are relative to its start.
 * Everything is checked at open, before any tensor byte is touched: N fits
 * the file, the JSON is one object without duplicate keys, every entry has a
 * dtype we know, a shape of non-negative integers whose byte size (computed
 * without overflow) equals e - b, 0 <= b <= e <= data length, and no two
 * spans overlap. After that kn_st_get hands out pointers into the map with
 * no further checks needed. The JSON goes through jansson (this module's one
 * jansson caller besides the config reader in bert.c).
 */
#include "kernels_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { ST_MAX_DIMS = 8 };
#define ST_MAX_HEADER (100u << 20)   /* the reference implementation's limit */

typedef struct st_entry {
    char *name;
    kn_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;       /* within the data area */
} st_entry;

struct kn_st_file {
    const unsigned char *base; /* the whole file */
    size_t size;
    int mapped;
    const unsigned char *data; /* base + 8 + N */
    uint64_t data_len;
    st_entry *e;
    int n;
};

static int st_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        int k = snprintf(err, errlen, "%s: ", path);
        va_start(ap, fmt);
        if (k >= 0 && (size_t)k < errlen)
            vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return LX_E_CORRUPT;
}

static int parse_dtype(const char *s, kn_dtype *out)
{
    static const struct { const char *n; kn_dtype t; } tab[] = {
        {"F32", KN_F32}, {"F16", KN_F16}, {"BF16", KN_BF16}, {"I32", KN_I32}, {"I64", KN_I64},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(s, tab[i].n) == 0) {
            *out = tab[i].t;
            return 0;
        }
    return -1;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

static int cmp_begin(const void *a, const void *b)
{
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Parses one entry's value into e; returns 0 or writes a message. */
static int parse_entry(const char *name, json_t *v, st_entry *e, uint64_t data_len,
                       const char *path, char *err, size_t errlen)
{
    if (!json_is_object(v))
        return st_fail(err, errlen, path, "tensor \"%s\": entry is not an object", name);
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *of = json_object_get(v, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(sh) || !json_is_array(of))
        return st_fail(err, errlen, path, "tensor \"%s\": needs string \"dtype\", array \"shape\" and array \"data_offsets\"", name);
    if (json_object_size(v) != 3)
        return st_fail(err, errlen, path, "tensor \"%s\": unexpected keys besides dtype, shape, data_offsets", name);
    if (parse_dtype(json_string_value(dt), &e->dtype) != 0)
        return st_fail(err, errlen, path, "tensor \"%s\": unknown or unsupported dtype \"%.32s\" (F32, F16, BF16, I32, I64 are read)",
                       name, json_string_value(dt));
    size_t nd = json_array_size(sh);
    if (nd > ST_MAX_DIMS)
        return st_fail(err, errlen, path, "tensor \"%s\": %zu dimensions (at most %d)", name, nd, ST_MAX_DIMS);
    e->ndim = (int)nd;
    uint64_t bytes = kn_dtype_size(e->dtype);
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(sh, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return st_fail(err, errlen, path, "tensor \"%s\": shape[%zu] is not a non-negative integer", name, i);
        uint64_t x = (uint64_t)json_integer_value(d);
        e->shape[i] = (int64_t)x;
        if (x != 0 && bytes > UINT64_MAX / x)
            return st_fail(err, errlen, path, "tensor \"%s\": shape overflows", name);
        bytes *= x;
    }
    if (json_array_size(of) != 2 || !json_is_integer(json_array_get(of, 0)) || !json_is_integer(json_array_get(of, 1)))
        return st_fail(err, errlen, path, "tensor \"%s\": data_offsets must be [begin, end]", name);
    json_int_t b = json_integer_value(json_array_get(of, 0)), en = json_integer_value(json_array_get(of, 1));
    if (b < 0 || en < b)
        return st_fail(err, errlen, path, "tensor \"%s\": data_offsets [%lld, %lld] are not 0 <= begin <= end",
                       name, (long long)b, (long long)en);
    if ((uint64_t)en > data_len)
        return st_fail(err, errlen, path, "tensor \"%s\": data_offsets [%lld, %lld] run past the end of the data (%llu bytes; file truncated?)",
                       name, (long long)b, (long long)en, (unsigned long long)data_len);
    if ((uint64_t)(en - b) != bytes)
        return st_fail(err, errlen, path, "tensor \"%s\": shape and dtype need %llu bytes but data_offsets span %llu",
                       name, (unsigned long long)bytes, (unsigned long long)(en - b));
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    return 0;
}

static void st_free_entries(kn_st_file *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->e[i].name);
    free(f->e);
    f->e = NULL;
    f->n = 0;
}

static int st_parse(kn_st_file *f, const char *path, char *err, size_t errlen)
{
    if (f->size < 8)
        return st_fail(err, errlen, path, "file is %zu bytes, shorter than the 8-byte header length", f->size);
    uint64_t n = lx_ld64(f->base);
    if (n > f->size - 8)
        return st_fail(err, errlen, path, "header length %llu runs past the end of the file (%zu bytes; truncated?)",
                       (unsigned long long)n, f->size);
    if (n > ST_MAX_HEADER)
        return st_fail(err, errlen, path, "header length %llu is over the %u-byte limit", (unsigned long long)n, ST_MAX_HEADER);
    if (n < 2 || f->base[8] != '{')
        return st_fail(err, errlen, path, "header does not start with a JSON object");
    f->data = f->base + 8 + n;
    f->data_len = f->size - 8 - n;
    json_error_t je;
    json_t *root = json_loadb((const char *)f->base + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return st_fail(err, errlen, path, "header JSON: %s (at byte %d)", je.text, je.position);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = st_fail(err, errlen, path, "header is not a JSON object");
        goto out_root;
    }
    size_t cap = json_object_size(root);
    f->e = calloc(cap ? cap : 1, sizeof *f->e);
    if (!f->e) {
        rc = LX_E_NOMEM;
        goto out_root;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                rc = st_fail(err, errlen, path, "__metadata__ is not an object");
                goto out_root;
            }
            continue;
        }
        st_entry *e = &f->e[f->n];
        if ((rc = parse_entry(key, val, e, f->data_len, path, err, errlen)) != 0)
            goto out_root;
        if (!(e->name = strdup(key))) {
            rc = LX_E_NOMEM;
            goto out_root;
        }
        f->n++;
    }
    /* No two tensors may share bytes. */
    st_entry **by = malloc((size_t)(f->n ? f->n : 1) * sizeof *by);
    if (!by) {
        rc = LX_E_NOMEM;
        goto out_root;
    }
    for (int i = 0; i < f->n; i++)
        by[i] = &f->e[i];
    lx_sort(by, (size_t)f->n, sizeof *by, cmp_begin);
    for (int i = 1; i < f->n && rc == 0; i++)
        if (by[i]->begin < by[i - 1]->end && by[i]->begin != by[i]->end && by[i - 1]->begin != by[i - 1]->end)
            rc = st_fail(err, errlen, path, "tensors \"%s\" and \"%s\" overlap in the data area",
                         by[i - 1]->name, by[i]->name);
    free(by);
    if (rc == 0)
        lx_sort(f->e, (size_t)f->n, sizeof *f->e, cmp_name);
out_root:
    json_decref(root);
    if (rc != 0)
        st_free_entries(f);
    return rc;
}

int kn_st_open_mem(kn_st_file **out, const void *buf, size_t len, char *err, size_t errlen)
{
    *out = NULL;
    kn_st_file *f = calloc(1, sizeof *f);
    if (!f)
        return LX_E_NOMEM;
    f->base = buf;
    f->size = len;
    int rc = st_parse(f, "<memory>", err, errlen);
    if (rc != 0) {
        free(f);
        return rc;
    }
    *out = f;
    return 0;
}

int kn_st_open(kn_st_file **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, strerror(e));
        return e;
    }
    struct stat st;
    int rc = 0;
    kn_st_file *f = calloc(1, sizeof *f);
    if (!f) {
        rc = LX_E_NOMEM;
        goto out_close;
    }
    if (fstat(fd, &st) != 0) {
        rc = errno;
        goto out_free;
    }
    f->size = (size_t)st.st_size;
    if (f->size > 0) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            rc = errno;
            if (err && errlen)
                snprintf(err, errlen, "%s: mmap: %s", path, strerror(rc));
            goto out_free;
        }
        f->base = m;
        f->mapped = 1;
    }
    rc = st_parse(f, path, err, errlen);
    if (rc == 0) {
        *out = f;
        f = NULL;
    }
out_free:
    if (f) {
        if (f->mapped)
            munmap((void *)f->base, f->size);
        free(f);
    }
out_close:
    close(fd);
    return rc;
}

void kn_st_close(kn_st_file *f)
{
    if (!f)
        return;
    st_free_entries(f);
    if (f->mapped)
        munmap((void *)f->base, f->size);
    free(f);
}

int kn_st_count(const kn_st_file *f) { return f->n; }

const char *kn_st_name(const kn_st_file *f, int i)
{
    return i >= 0 && i < f->n ? f->e[i].name : NULL;
}

int kn_st_get(const kn_st_file *f, const char *name, kn_tensor *out)
{
    st_entry key = {.name = (char *)name};
    const st_entry *e = bsearch(&key, f->e, (size_t)f->n, sizeof *f->e, cmp_name);
    if (!e)
        return LX_E_NOTFOUND;
    if (e->ndim > KN_MAX_DIMS)
        return LX_E_UNSUPPORTED;
    int64_t one = 1;
    *out = kn_tensor_make((void *)(f->data + e->begin), e->dtype, KN_DEV_HOST,
                          e->ndim ? e->ndim : 1, e->ndim ? e->shape : &one);
    return 0;
}
