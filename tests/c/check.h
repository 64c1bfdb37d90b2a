/* A tiny test framework for the C ABI suite.
 *
 * Each test file lists its tests with TEST_LIST and ends with TEST_MAIN. A test binary
 *   - with no argument runs every test in this process;
 *   - with `--list` prints the test names, one a line;
 *   - with a test name runs only that test.
 * run.sh runs every test in its own process, so that a sanitizer report (which ends
 * the process) or a leak (reported by LeakSanitizer at exit) is charged to one test.
 *
 * CHECK records a failure and goes on; REQUIRE records one and leaves the test (for
 * preconditions whose failure would make the rest meaningless). Both print
 * file:line and the failing expression. */
#ifndef WSQ_CHECK_H
#define WSQ_CHECK_H
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsqueue.h"

extern int check_failures;

#define CHECK(expr)                                                                      \
    do {                                                                                 \
        if (!(expr)) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);     \
            check_failures++;                                                            \
        }                                                                                \
    } while (0)

#define REQUIRE(expr)                                                                    \
    do {                                                                                 \
        if (!(expr)) {                                                                   \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #expr);   \
            check_failures++;                                                            \
            return;                                                                      \
        }                                                                                \
    } while (0)

/* The call must return `want`; on mismatch prints both codes and the detail text. */
#define CHECK_RC(call, want)                                                             \
    do {                                                                                 \
        wsq_result_t rc_ = (call);                                                       \
        if (rc_ != (want)) {                                                             \
            fprintf(stderr, "%s:%d: %s returned %d (%s), wanted %s [last_error: %s]\n",  \
                    __FILE__, __LINE__, #call, (int)rc_, wsq_strerror(rc_), #want,       \
                    wsq_last_error());                                                   \
            check_failures++;                                                            \
        }                                                                                \
    } while (0)

/* The call must fail with `want` AND leave its own detail in wsq_last_error. The
 * detail is never cleared by the library, so a stale message from an earlier failure
 * would pass a plain "non-empty" check: first plant a known sentinel message (from a
 * failing call that is not the one under test) and require that the call replaced it. */
void plant_last_error(int avoid_config_init);
#define CHECK_FAILS(call, want)                                                          \
    do {                                                                                 \
        plant_last_error(strstr(#call, "wsq_config_init") != NULL);                      \
        char sentinel_[128];                                                             \
        snprintf(sentinel_, sizeof sentinel_, "%s", wsq_last_error());                   \
        wsq_result_t rc_ = (call);                                                       \
        const char *detail_ = wsq_last_error();                                          \
        if (rc_ != (want)) {                                                             \
            fprintf(stderr, "%s:%d: %s returned %d (%s), wanted %s [last_error: %s]\n",  \
                    __FILE__, __LINE__, #call, (int)rc_, wsq_strerror(rc_), #want,       \
                    detail_);                                                            \
            check_failures++;                                                            \
        } else if (detail_ == NULL || detail_[0] == 0 || strcmp(detail_, sentinel_) == 0) { \
            fprintf(stderr, "%s:%d: %s left no detail of its own in wsq_last_error "     \
                    "(it reads \"%s\")\n", __FILE__, __LINE__, #call,                     \
                    detail_ ? detail_ : "(null)");                                       \
            check_failures++;                                                            \
        }                                                                                \
    } while (0)

typedef void (*test_fn)(void);
struct test_case {
    const char *name;
    test_fn fn;
};

#define TEST(fn) {#fn, fn}

/* Every test ends by itself; this only turns a hang into a failure with a name. */
#define TEST_HANG_GUARD_SECONDS 60

int run_test_main(int argc, char **argv, const struct test_case *tests, size_t n);

#define TEST_MAIN(...)                                                                   \
    int main(int argc, char **argv)                                                      \
    {                                                                                    \
        static const struct test_case tests_[] = {__VA_ARGS__};                          \
        return run_test_main(argc, argv, tests_, sizeof tests_ / sizeof tests_[0]);      \
    }
#endif
