/* The runner behind check.h. */
#include "check.h"

int check_failures = 0;

static const char *current_test = "";

void plant_last_error(int avoid_config_init)
{
    if (avoid_config_init)
        (void)wsq_server_port(NULL, NULL);
    else
        (void)wsq_config_init(NULL);
}

static void on_hang(int sig)
{
    (void)sig;
    /* Only async-signal-safe calls here. */
    static const char msg[] = ": HANG GUARD fired (test did not finish in time)\n";
    ssize_t ignored = write(2, current_test, strlen(current_test));
    ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(3);
}

static int run_one(const struct test_case *t)
{
    current_test = t->name;
    int before = check_failures;
    alarm(TEST_HANG_GUARD_SECONDS);
    t->fn();
    alarm(0);
    int ok = check_failures == before;
    printf("%s %s\n", ok ? "ok  " : "FAIL", t->name);
    fflush(stdout);
    return ok;
}

int run_test_main(int argc, char **argv, const struct test_case *tests, size_t n)
{
    signal(SIGALRM, on_hang);
    /* SIGPIPE keeps its default action (terminate) on purpose: the library promises
     * never to raise it, and an embedding program may not ignore it either. */
    signal(SIGPIPE, SIG_DFL);
    setvbuf(stderr, NULL, _IONBF, 0);
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < n; i++) printf("%s\n", tests[i].name);
        return 0;
    }
    if (argc == 2) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(argv[1], tests[i].name) == 0) return run_one(&tests[i]) ? 0 : 1;
        fprintf(stderr, "no test named %s\n", argv[1]);
        return 2;
    }
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (run_one(&tests[i]))
            passed++;
        else
            failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
