/* auth.c: the api key that write endpoints need.
 *
 * The key travels as `Authorization: Bearer KEY` (scheme case-insensitive,
 * as RFC 7235 says). It is compared in constant time: the loop runs over
 * the configured key's length whatever the candidate is, and differences
 * are OR-ed together, so the time taken says nothing about how many leading
 * bytes matched. No key configured means writes are disabled (403): an
 * open write endpoint is never the default.
 */
#include "server_impl.h"

#include <string.h>
#include <strings.h>

int srv_ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    /* Iterate over b (the secret): the time depends on blen only. */
    volatile unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++) {
        unsigned char x = i < alen ? (unsigned char)a[i] : 0;
        diff |= (unsigned char)(x ^ (unsigned char)b[i]);
    }
    return diff == 0;
}

int srv_auth_check(const srv_server *s, const char *authorization, srv_response *resp)
{
    if (!s->api_key) {
        srv_error(resp, 403, SRV_E_FORBIDDEN,
                  "writes are disabled: start lexis serve with --api-key or LEXIS_API_KEY");
        return 403;
    }
    if (!authorization || !*authorization) {
        srv_error(resp, 401, SRV_E_UNAUTHORIZED, "missing api key (Authorization: Bearer KEY)");
        return 401;
    }
    const char *p = authorization;
    while (*p == ' ')
        p++;
    if (strncasecmp(p, "Bearer ", 7) != 0) {
        srv_error(resp, 401, SRV_E_UNAUTHORIZED, "the Authorization header must be \"Bearer KEY\"");
        return 401;
    }
    p += 7;
    while (*p == ' ')
        p++;
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (!srv_ct_equal(p, n, s->api_key, s->api_key_len)) {
        srv_error(resp, 401, SRV_E_UNAUTHORIZED, "wrong api key");
        return 401;
    }
    return 0;
}
