/* fuzz_safetensors.c: libFuzzer target for the safetensors header parser
 * (kernels/safetensors.c).
 *
 * Promise under test (kernels.h): kn_st_open_mem never reads outside the
 * buffer, whatever the bytes; it either fails with LX_E_CORRUPT (or
 * LX_E_NOMEM) or accepts a file whose every tensor lies inside the data
 * area with a byte size equal to its shape times its dtype size. For an
 * accepted file every tensor is looked up by name and its first and last
 * byte are read, so a lying offset would show as an ASan error.
 * The input is copied into a buffer of exactly its size (heap, so ASan
 * redzones sit right after it).
 *
 * Input layout: the raw file. To reach past the JSON check quickly, seed
 * with real files: tests/fixtures/bert/ * /model.safetensors.
 * Build with `make fuzz`; run build/fuzz/fuzz_safetensors -max_len=65536 CORPUS_DIR.
 */
#include "../../kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    kn_st_file *f = NULL;
    char err[256];
    int rc = kn_st_open_mem(&f, buf, size, err, sizeof err);
    if (rc == 0) {
        volatile unsigned sum = 0;
        for (int i = 0; i < kn_st_count(f); i++) {
            kn_tensor t;
            const char *name = kn_st_name(f, i);
            if (!name)
                abort();
            if (kn_st_get(f, name, &t) != 0)
                continue;          /* more than KN_MAX_DIMS dimensions */
            size_t n = (size_t)kn_tensor_nelem(&t) * kn_dtype_size(t.dtype);
            const unsigned char *p = t.data;
            if (p < buf || p + n > buf + size)
                abort();
            if (n) {
                sum += p[0];
                sum += p[n - 1];
            }
        }
        (void)sum;
        kn_st_close(f);
    } else if (rc != LX_E_CORRUPT && rc != LX_E_NOMEM) {
        abort();
    } else if (err[0] == '\0') {
        abort();                   /* every rejection says why */
    }
    free(buf);
    return 0;
}
