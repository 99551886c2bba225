/*
 * deb2jsonl — turn Debian "Translation-en" indexes into a JSONL corpus.
 *
 *     deb2jsonl [FILE...] > out.jsonl      (no FILE, or "-": read stdin)
 *
 * Input format. apt-get update -o Acquire::Languages=en stores one
 * Translation-en file per suite/component in /var/lib/apt/lists/ (often
 * compressed; tools/fetch-debpkgs.sh decompresses and pipes it here). Each
 * file is a sequence of RFC822-style stanzas separated by blank lines:
 *
 *     Package: ripgrep
 *     Description-md5: 0c7c0f9a2f7c5f1e...
 *     Description-en: Recursively searches directories for a regex pattern
 *      ripgrep (rg) recursively searches your current directory for a regex
 *      pattern. ...
 *      .
 *      Second paragraph.
 *
 * A field starts in column 0 as "Name: value"; field names are matched
 * case-insensitively (deb822). A line starting with a space or tab continues
 * the previous field. In a description the first line is the short synopsis
 * and the continuation lines are the long text: one leading space is
 * stripped, and a line that is exactly " ." is a paragraph break. Lines with
 * two or more leading spaces are "verbatim" in Debian policy; we do not
 * treat them specially (they are joined like any other line), and neither is
 * "  ." — only the exact " ." separates paragraphs.
 *
 * Output. One JSON object per package and line:
 *
 *     {"_id":"ripgrep","title":"<synopsis>","text":"<para 1>\n<para 2>"}
 *
 * Lines inside a paragraph are joined with one space, paragraphs with "\n",
 * trailing blanks of each line are dropped, and empty paragraphs vanish.
 *
 * Invariants.
 *   - Each package name is written at most once: the first stanza seen wins,
 *     later ones (the same package in another suite, or a second stanza for
 *     another Description-md5) are counted as duplicates and skipped. The
 *     names seen live in an open-addressing hash set (linear probing, load
 *     factor <= 1/2, power-of-two capacity).
 *   - Output is always valid UTF-8 JSON: '"', '\\' and C0 controls are
 *     escaped, and every byte that does not start a well-formed UTF-8
 *     sequence (overlong forms, surrogates, > U+10FFFF, truncated sequences)
 *     becomes U+FFFD.
 *   - A stanza never spans two input files: the pending stanza is flushed at
 *     the end of each file even without a trailing blank line.
 *   - Stanzas without a Package field or without a description are skipped
 *     and counted ("malformed" in the summary).
 *
 * Exit status: 0 ok, 1 an input could not be opened or read, or the output
 * could not be written (all inputs are opened before anything is written, so
 * a bad path produces no partial output), 2 usage error.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// --- growable byte buffer -------------------------------------------------

struct d2j_buf {
    char *p;    // owns; NUL-terminated when len > 0 or cap > 0
    size_t len;
    size_t cap;
};

static int d2j_buf_reserve(struct d2j_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int d2j_buf_append(struct d2j_buf *b, const char *s, size_t n)
{
    int rc = d2j_buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static void d2j_buf_clear(struct d2j_buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

static void d2j_buf_free(struct d2j_buf *b)
{
    free(b->p);
    *b = (struct d2j_buf){0};
}

// --- set of package names ---------------------------------------------------

struct d2j_set {
    char **slots;   // owns each non-NULL string; NULL = empty slot
    size_t cap;     // power of two
    size_t count;
};

static uint64_t d2j_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;    // FNV-1a 64
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static int d2j_set_grow(struct d2j_set *set)
{
    size_t cap = set->cap ? set->cap * 2 : 1024;
    char **slots = calloc(cap, sizeof *slots);
    if (!slots)
        return ENOMEM;
    for (size_t i = 0; i < set->cap; i++) {
        char *s = set->slots[i];
        if (!s)
            continue;
        size_t j = d2j_hash(s) & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = s;
    }
    free(set->slots);
    set->slots = slots;
    set->cap = cap;
    return 0;
}

// Adds a copy of `name` (borrowed). *added = 1 if new, 0 if already present.
static int d2j_set_add(struct d2j_set *set, const char *name, int *added)
{
    if ((set->count + 1) * 2 > set->cap) {
        int rc = d2j_set_grow(set);
        if (rc)
            return rc;
    }
    size_t j = d2j_hash(name) & (set->cap - 1);
    while (set->slots[j]) {
        if (strcmp(set->slots[j], name) == 0) {
            *added = 0;
            return 0;
        }
        j = (j + 1) & (set->cap - 1);
    }
    char *copy = strdup(name);
    if (!copy)
        return ENOMEM;
    set->slots[j] = copy;
    set->count++;
    *added = 1;
    return 0;
}

static void d2j_set_free(struct d2j_set *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slots[i]);
    free(set->slots);
    *set = (struct d2j_set){0};
}

// --- JSON string output -------------------------------------------------------

// Length of the well-formed UTF-8 sequence at s[0..n), or 0 if it is not one
// (RFC 3629 table: no overlongs, no surrogates, nothing above U+10FFFF).
static size_t d2j_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;     // allowed range of s[1]
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

// Appends s[0..n) to out as a quoted JSON string.
static int d2j_json_string(struct d2j_buf *out, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    int rc = d2j_buf_append(out, "\"", 1);
    size_t i = 0;
    while (!rc && i < n) {
        // Copy the longest run that needs no escaping in one go.
        size_t run = 0;
        while (i + run < n && s[i + run] >= 0x20 && s[i + run] < 0x80 &&
               s[i + run] != '"' && s[i + run] != '\\')
            run++;
        if (run) {
            rc = d2j_buf_append(out, str + i, run);
            i += run;
            continue;
        }
        unsigned char c = s[i];
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            rc = d2j_buf_append(out, esc, 2);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': esc[1] = 'n'; break;
            case '\t': esc[1] = 't'; break;
            case '\r': esc[1] = 'r'; break;
            case '\b': esc[1] = 'b'; break;
            case '\f': esc[1] = 'f'; break;
            default:   esc[1] = 'u'; break;
            }
            if (esc[1] == 'u') {
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                rc = d2j_buf_append(out, esc, 6);
            } else
                rc = d2j_buf_append(out, esc, 2);
            i++;
        } else {
            size_t len = d2j_utf8_len(s + i, n - i);
            if (len) {
                rc = d2j_buf_append(out, str + i, len);
                i += len;
            } else {
                rc = d2j_buf_append(out, "\xEF\xBF\xBD", 3);   // U+FFFD
                i++;
            }
        }
    }
    if (!rc)
        rc = d2j_buf_append(out, "\"", 1);
    return rc;
}

// --- stanza parser --------------------------------------------------------------

enum d2j_field {
    D2J_FIELD_OTHER,    // continuation lines are ignored
    D2J_FIELD_DESC,     // continuation lines are the long description
};

struct d2j_ctx {
    FILE *out;              // borrows
    struct d2j_set names;   // owns: package names already written
    struct d2j_buf line;    // owns: getline buffer (p/cap only)
    struct d2j_buf pkg;     // owns: current stanza's Package
    struct d2j_buf title;   // owns: current stanza's synopsis
    struct d2j_buf text;    // owns: current stanza's long description
    struct d2j_buf json;    // owns: scratch for one output line
    enum d2j_field field;   // field the next continuation line belongs to
    int have_desc;          // current stanza had a description field
    int para_break;         // a " ." is pending before the next text line
    int in_stanza;          // saw any field since the last blank line
    unsigned long written, duplicates, malformed;
};

static size_t d2j_rstrip(const char *s, size_t n)
{
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    return n;
}

static void d2j_stanza_reset(struct d2j_ctx *ctx)
{
    d2j_buf_clear(&ctx->pkg);
    d2j_buf_clear(&ctx->title);
    d2j_buf_clear(&ctx->text);
    ctx->field = D2J_FIELD_OTHER;
    ctx->have_desc = 0;
    ctx->para_break = 0;
    ctx->in_stanza = 0;
}

// Writes the pending stanza (if complete and new) and starts a fresh one.
static int d2j_stanza_flush(struct d2j_ctx *ctx)
{
    int rc = 0;
    if (!ctx->in_stanza)
        goto out_reset;
    if (ctx->pkg.len == 0 || !ctx->have_desc) {
        ctx->malformed++;
        goto out_reset;
    }
    int added;
    rc = d2j_set_add(&ctx->names, ctx->pkg.p, &added);
    if (rc)
        goto out_reset;
    if (!added) {
        ctx->duplicates++;
        goto out_reset;
    }
    struct d2j_buf *j = &ctx->json;
    d2j_buf_clear(j);
    if ((rc = d2j_buf_append(j, "{\"_id\":", 7)) ||
        (rc = d2j_json_string(j, ctx->pkg.p, ctx->pkg.len)) ||
        (rc = d2j_buf_append(j, ",\"title\":", 9)) ||
        (rc = d2j_json_string(j, ctx->title.p ? ctx->title.p : "", ctx->title.len)) ||
        (rc = d2j_buf_append(j, ",\"text\":", 8)) ||
        (rc = d2j_json_string(j, ctx->text.p ? ctx->text.p : "", ctx->text.len)) ||
        (rc = d2j_buf_append(j, "}\n", 2)))
        goto out_reset;
    if (fwrite(j->p, 1, j->len, ctx->out) != j->len) {
        rc = errno ? errno : EIO;
        goto out_reset;
    }
    ctx->written++;
out_reset:
    d2j_stanza_reset(ctx);
    return rc;
}

// One continuation line of the description, without its newline.
static int d2j_desc_line(struct d2j_ctx *ctx, const char *s, size_t n)
{
    if (n == 2 && s[0] == ' ' && s[1] == '.') {    // exactly " ."
        ctx->para_break = ctx->text.len > 0;
        return 0;
    }
    s++, n--;                           // the one leading space (or tab)
    n = d2j_rstrip(s, n);
    if (n == 0)
        return 0;
    int rc = 0;
    if (ctx->para_break)
        rc = d2j_buf_append(&ctx->text, "\n", 1);
    else if (ctx->text.len)
        rc = d2j_buf_append(&ctx->text, " ", 1);
    ctx->para_break = 0;
    return rc ? rc : d2j_buf_append(&ctx->text, s, n);
}

// "Name: value" in column 0.
static int d2j_field_line(struct d2j_ctx *ctx, const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    ctx->field = D2J_FIELD_OTHER;
    ctx->in_stanza = 1;
    if (!colon)
        return 0;                       // not a field; ignored
    size_t name_len = (size_t)(colon - s);
    const char *v = colon + 1;
    size_t vn = n - name_len - 1;
    while (vn && (*v == ' ' || *v == '\t'))
        v++, vn--;
    vn = d2j_rstrip(v, vn);

#define D2J_IS(lit) (name_len == sizeof(lit) - 1 && strncasecmp(s, lit, name_len) == 0)
    if (D2J_IS("Package")) {
        d2j_buf_clear(&ctx->pkg);
        return d2j_buf_append(&ctx->pkg, v, vn);
    }
    // "Description" too, so a Packages file with inline descriptions works.
    if (D2J_IS("Description-en") || D2J_IS("Description")) {
        if (ctx->have_desc)
            return 0;                   // keep the first description
        ctx->have_desc = 1;
        ctx->field = D2J_FIELD_DESC;
        d2j_buf_clear(&ctx->title);
        return d2j_buf_append(&ctx->title, v, vn);
    }
#undef D2J_IS
    return 0;
}

// Parses one input stream to the end. Returns 0 or an errno value.
static int d2j_parse(struct d2j_ctx *ctx, FILE *in)
{
    int rc = 0;
    ssize_t got;
    d2j_stanza_reset(ctx);
    errno = 0;
    while ((got = getline(&ctx->line.p, &ctx->line.cap, in)) >= 0) {
        const char *s = ctx->line.p;
        size_t n = (size_t)got;
        if (n && s[n - 1] == '\n')
            n--;
        if (n && s[n - 1] == '\r')
            n--;
        if (d2j_rstrip(s, n) == 0)
            rc = d2j_stanza_flush(ctx);         // blank (or all-blanks) line ends a stanza
        else if (s[0] == ' ' || s[0] == '\t')
            rc = ctx->field == D2J_FIELD_DESC ? d2j_desc_line(ctx, s, n) : 0;
        else
            rc = d2j_field_line(ctx, s, n);
        if (rc)
            return rc;
        errno = 0;
    }
    if (ferror(in))
        return errno ? errno : EIO;
    return d2j_stanza_flush(ctx);
}

static void d2j_ctx_free(struct d2j_ctx *ctx)
{
    d2j_set_free(&ctx->names);
    d2j_buf_free(&ctx->line);
    d2j_buf_free(&ctx->pkg);
    d2j_buf_free(&ctx->title);
    d2j_buf_free(&ctx->text);
    d2j_buf_free(&ctx->json);
}

// --- main -------------------------------------------------------------------------

static void d2j_usage(FILE *f)
{
    fputs("usage: deb2jsonl [FILE...]\n"
          "\n"
          "Convert Debian Translation-en indexes (uncompressed; see\n"
          "tools/fetch-debpkgs.sh) to JSON lines on stdout:\n"
          "  {\"_id\": package, \"title\": synopsis, \"text\": long description}\n"
          "Reads stdin when no FILE is given or FILE is \"-\". A package seen\n"
          "more than once is written once (first wins). Summary on stderr.\n",
          f);
}

int main(int argc, char **argv)
{
    int rc = 1;
    int first = 1;
    while (first < argc && argv[first][0] == '-' && argv[first][1] != '\0') {
        if (strcmp(argv[first], "--") == 0) {
            first++;
            break;
        }
        if (strcmp(argv[first], "--help") == 0 || strcmp(argv[first], "-h") == 0) {
            d2j_usage(stdout);
            return 0;
        }
        fprintf(stderr, "deb2jsonl: unknown option '%s'\n", argv[first]);
        d2j_usage(stderr);
        return 2;
    }

    // Open everything first so a bad path fails before any output.
    int nin = argc - first;
    const char **paths = calloc(nin ? (size_t)nin : 1, sizeof *paths);
    FILE **ins = calloc(nin ? (size_t)nin : 1, sizeof *ins);
    struct d2j_ctx ctx = {.out = stdout};
    if (!paths || !ins) {
        fprintf(stderr, "deb2jsonl: %s\n", strerror(ENOMEM));
        goto out_free;
    }
    if (nin == 0) {
        nin = 1;
        paths[0] = "-";
    } else {
        for (int i = 0; i < nin; i++)
            paths[i] = argv[first + i];
    }
    int open_failed = 0;
    for (int i = 0; i < nin; i++) {
        ins[i] = strcmp(paths[i], "-") == 0 ? stdin : fopen(paths[i], "r");
        if (!ins[i]) {
            fprintf(stderr, "deb2jsonl: cannot open %s: %s\n", paths[i], strerror(errno));
            open_failed = 1;
        }
    }
    if (open_failed)
        goto out_close;

    for (int i = 0; i < nin; i++) {
        int err = d2j_parse(&ctx, ins[i]);
        if (err == ENOMEM) {
            fprintf(stderr, "deb2jsonl: %s\n", strerror(err));
            goto out_close;
        } else if (err && ferror(ctx.out)) {
            fprintf(stderr, "deb2jsonl: write error: %s\n", strerror(err));
            goto out_close;
        } else if (err) {
            fprintf(stderr, "deb2jsonl: cannot read %s: %s\n",
                    strcmp(paths[i], "-") == 0 ? "stdin" : paths[i], strerror(err));
            goto out_close;
        }
    }
    if (fflush(ctx.out) != 0 || ferror(ctx.out)) {
        fprintf(stderr, "deb2jsonl: write error: %s\n", strerror(errno));
        goto out_close;
    }
    fprintf(stderr, "deb2jsonl: %lu packages, %lu duplicates skipped", ctx.written,
            ctx.duplicates);
    if (ctx.malformed)
        fprintf(stderr, ", %lu malformed stanzas skipped", ctx.malformed);
    fputc('\n', stderr);
    rc = 0;

out_close:
    for (int i = 0; i < nin; i++)
        if (ins[i] && ins[i] != stdin)
            fclose(ins[i]);
out_free:
    d2j_ctx_free(&ctx);
    free(ins);
    free(paths);
    return rc;
}
