/* status.c: status code names, the assertion path and the clock.
 *
 * Codes: 0 success, >0 errno, <0 LX_E_* (a reserved range far from errno
 * and from LMDB's own negative codes, which index/ translates). */
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const lx_error_names[] = {
    [LX_E_INVAL - LX_E_FIRST] = "invalid argument",
    [LX_E_NOMEM - LX_E_FIRST] = "out of memory",
    [LX_E_IO - LX_E_FIRST] = "I/O error",
    [LX_E_NOTFOUND - LX_E_FIRST] = "not found",
    [LX_E_EXISTS - LX_E_FIRST] = "already exists",
    [LX_E_CORRUPT - LX_E_FIRST] = "index is corrupt (checksum or structure check failed)",
    [LX_E_VERSION - LX_E_FIRST] = "index format is newer than this lexis understands",
    [LX_E_NOTINDEX - LX_E_FIRST] = "not a lexis index",
    [LX_E_INPUT - LX_E_FIRST] = "malformed input",
    [LX_E_TOOBIG - LX_E_FIRST] = "input exceeds a limit",
    [LX_E_MAPFULL - LX_E_FIRST] = "storage map is full",
    [LX_E_UNSUPPORTED - LX_E_FIRST] = "not supported",
    [LX_E_STORE - LX_E_FIRST] = "storage engine error",
    [LX_E_BUSY - LX_E_FIRST] = "index is busy",
};

const char *lx_strerror(int rc)
{
    if (rc == 0)
        return "success";
    if (rc > 0)
        return strerror(rc);
    if (rc >= LX_E_FIRST && rc < LX_E_LAST && lx_error_names[rc - LX_E_FIRST])
        return lx_error_names[rc - LX_E_FIRST];
    return "unknown error";
}

/* The one process-wide setting: where a dying process reports. Written once
 * at start-up by a server; a plain pointer is enough. */
static lx_abort_fn lx_abort_hook;

void lx_set_abort_hook(lx_abort_fn fn) { lx_abort_hook = fn; }

void lx_assert_fail(const char *file, int line, const char *expr)
{
    if (lx_abort_hook)
        lx_abort_hook(file, line, expr);
    fprintf(stderr, "lexis: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

double lx_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
