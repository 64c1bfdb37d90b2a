/* A tiny test framework: CHECK prints file:line and the failing expression. */
#ifndef WSQ_CHECK_H
#define WSQ_CHECK_H
#include <stdio.h>
#include <stdlib.h>

static int check_failures = 0;

#define CHECK(expr)                                                                  \
    do {                                                                             \
        if (!(expr)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
            check_failures++;                                                        \
        }                                                                            \
    } while (0)

/* Aborts the current test function on failure (for preconditions). */
#define REQUIRE(expr)                                                                \
    do {                                                                             \
        if (!(expr)) {                                                               \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #expr); \
            check_failures++;                                                        \
            return;                                                                  \
        }                                                                            \
    } while (0)

#define CHECK_RC(call, want)                                                         \
    do {                                                                             \
        wsq_result_t rc_ = (call);                                                   \
        if (rc_ != (want)) {                                                         \
            fprintf(stderr, "%s:%d: %s returned %d (%s), wanted %s [%s]\n", __FILE__, \
                    __LINE__, #call, (int)rc_, wsq_strerror(rc_), #want,             \
                    wsq_last_error());                                               \
            check_failures++;                                                        \
        }                                                                            \
    } while (0)

typedef void (*test_fn)(void);
struct test_case { const char *name; test_fn fn; };

/* Runs every test, prints one line each and "N passed, M failed". */
static int run_tests(const struct test_case *tests, size_t n)
{
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        int before = check_failures;
        tests[i].fn();
        if (check_failures == before) {
            printf("ok   %s\n", tests[i].name);
            passed++;
        } else {
            printf("FAIL %s\n", tests[i].name);
            failed++;
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
#endif
