/* ingest.c: one JSON line -> one document. The one file of index/ that calls
 * jansson.
 *
 * A line must be a JSON object with a non-empty "_id" (a string, or an
 * integer written in decimal) and, for each indexed field, a string, null or
 * nothing (null and missing mean empty). JSON must be UTF-8 (RFC 8259):
 * jansson rejects invalid UTF-8 and raw or escaped NUL characters, and we
 * report its message with the column. Strings are used where jansson keeps
 * them, so a document is copied once, into the writer's batch.
 */
#include "index_impl.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jsonl_owner {
    json_t *root;
    char id_buf[32];      /* decimal form of an integer id */
} jsonl_owner;

int idx_jsonl_parse(const char *line, size_t len, const char *const *names, size_t nnames,
                    idx_jsonl_doc *doc, void **owner, char *err, size_t errcap)
{
    json_error_t je;
    jsonl_owner *o = calloc(1, sizeof *o);
    if (!o)
        return LX_E_NOMEM;
    o->root = json_loadb(line, len, 0, &je);
    if (!o->root) {
        snprintf(err, errcap, "invalid JSON at column %d: %s", je.column, je.text);
        goto out_bad;
    }
    if (!json_is_object(o->root)) {
        snprintf(err, errcap, "expected a JSON object, found %s",
                 json_is_array(o->root) ? "an array" : "a scalar");
        goto out_bad;
    }
    json_t *id = json_object_get(o->root, "_id");
    if (!id) {
        snprintf(err, errcap, "missing \"_id\"");
        goto out_bad;
    }
    if (json_is_string(id)) {
        doc->id = json_string_value(id);
        doc->id_len = json_string_length(id);
    } else if (json_is_integer(id)) {
        snprintf(o->id_buf, sizeof o->id_buf, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
        doc->id = o->id_buf;
        doc->id_len = strlen(o->id_buf);
    } else {
        snprintf(err, errcap, "\"_id\" must be a string or an integer");
        goto out_bad;
    }
    if (doc->id_len == 0) {
        snprintf(err, errcap, "\"_id\" is empty");
        goto out_bad;
    }
    if (doc->id_len > IDX_MAX_ID_BYTES) {
        snprintf(err, errcap, "\"_id\" is %zu bytes long (limit %d)", doc->id_len, IDX_MAX_ID_BYTES);
        goto out_bad;
    }
    doc->nfields = nnames;
    for (size_t i = 0; i < nnames && i < IDX_MAX_FIELDS; i++) {
        json_t *v = json_object_get(o->root, names[i]);
        if (!v || json_is_null(v)) {
            doc->values[i] = "";
            doc->value_lens[i] = 0;
        } else if (json_is_string(v)) {
            doc->values[i] = json_string_value(v);
            doc->value_lens[i] = json_string_length(v);
        } else {
            snprintf(err, errcap, "field \"%s\" must be a string", names[i]);
            goto out_bad;
        }
    }
    *owner = o;
    return 0;

out_bad:
    if (o->root)
        json_decref(o->root);
    free(o);
    return LX_E_INPUT;
}

void idx_jsonl_doc_release(void *owner)
{
    jsonl_owner *o = owner;
    if (!o)
        return;
    json_decref(o->root);
    free(o);
}
