/* accesslog.c: one line per request, written with a single write(2).
 *
 *   2025-11-25T09:17:03.512Z 127.0.0.1 POST /search 200 1432 187us
 *
 * Fields: UTC time (ms), peer address, method, request target, status,
 * response body bytes sent (0 for HEAD), microseconds from the request's
 * arrival to the reply. The target is cut at 512 bytes and every byte
 * outside printable ASCII (the space and the backslash too) is written as
 * \xHH, so a line is always one line and a client cannot forge entries.
 * Each line goes out in one write() on a descriptor the caller opened
 * (O_APPEND for a file): lines from several workers never interleave, and
 * no lock is taken. Requests libevent refuses itself (a malformed request
 * line, headers or body over the limits) never reach the server and have
 * no line.
 */
#include "server_impl.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void srv_access_log(const srv_server *s, const char *peer, int method, const char *uri,
                    size_t uri_len, int status, size_t bytes, double seconds)
{
    int fd = s->p.access_log_fd;
    if (fd < 0)
        return;
    char line[1024 + 4 * 512];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, peer && *peer ? peer : "-",
                     srv_method_names[method < 0 || method > SRV_M_OTHER ? SRV_M_OTHER : method]);
    size_t o = (size_t)n;
    size_t cut = uri_len > 512 ? 512 : uri_len;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < cut; i++) {
        unsigned char c = (unsigned char)uri[i];
        if (c > 0x20 && c < 0x7F && c != '\\') {
            line[o++] = (char)c;
        } else {
            line[o++] = '\\';
            line[o++] = 'x';
            line[o++] = hex[c >> 4];
            line[o++] = hex[c & 15];
        }
    }
    if (cut < uri_len)
        o += (size_t)snprintf(line + o, sizeof line - o, "...");
    if (!uri_len)
        line[o++] = '-';
    o += (size_t)snprintf(line + o, sizeof line - o, " %d %zu %.0fus\n", status, bytes,
                          seconds * 1e6);
    ssize_t w = write(fd, line, o);
    (void)w;                 /* a full disk must not stop the service */
}
