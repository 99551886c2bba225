/* keys.c: checksums. The one file that calls xxHash (XXH3, 64-bit). */
#include "index_impl.h"

#include <xxhash.h>

uint64_t idx_hash64(const void *p, size_t n) { return XXH3_64bits(p, n); }

uint64_t idx_hash64_seed(const void *p, size_t n, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, n, seed);
}
