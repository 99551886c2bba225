/* test_kernels.c: the base layer: status names, arenas. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "../kernels/kernels.h"

static void test_strerror_names_every_code(void **state)
{
    (void)state;
    assert_string_equal(lx_strerror(0), "success");
    for (int rc = LX_E_FIRST; rc < LX_E_LAST; rc++) {
        const char *s = lx_strerror(rc);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown error");
    }
    assert_string_equal(lx_strerror(ENOENT), strerror(ENOENT));
    assert_string_equal(lx_strerror(LX_E_LAST), "unknown error");
    assert_string_equal(lx_strerror(-1), "unknown error");
}

static void test_arena_alignment_and_reuse(void **state)
{
    (void)state;
    lx_arena a;
    lx_arena_init(&a, 1024);
    for (int i = 1; i < 200; i++) {
        unsigned char *p = lx_arena_alloc(&a, (size_t)i);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 0xAB, (size_t)i);
    }
    /* A block larger than the default size. */
    unsigned char *big = lx_arena_calloc(&a, 100000);
    assert_non_null(big);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(big[i], 0);
    char *s = lx_arena_strndup(&a, "lexis rocks", 5);
    assert_string_equal(s, "lexis");
    lx_arena_reset(&a);
    assert_int_equal(a.used_total, 0);
    void *p = lx_arena_alloc(&a, 64);
    assert_non_null(p);
    lx_arena_free(&a);
    assert_null(a.head);
}

static void test_endian_helpers(void **state)
{
    (void)state;
    unsigned char b[8];
    lx_st32be(b, 0x01020304u);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[3], 4);
    assert_int_equal(lx_ld32be(b), 0x01020304u);
    lx_st64(b, 0x1122334455667788ull);
    assert_true(lx_ld64(b) == 0x1122334455667788ull);
    lx_stf(b + 1, 3.5f);
    assert_true(lx_ldf(b + 1) == 3.5f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_names_every_code),
        cmocka_unit_test(test_arena_alignment_and_reuse),
        cmocka_unit_test(test_endian_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
