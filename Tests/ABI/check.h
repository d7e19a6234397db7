/* The checks the C ABI test programs share: CHECK(cond) and EXPECT(call, status, fragment)
 * (the call fails with `status` and leaves a last-error message containing `fragment`).
 * Each failure prints its line; `passed` and `failed` count the checks. */
#ifndef GRAFT_TEST_CHECK_H
#define GRAFT_TEST_CHECK_H
#include <graft.h>
#include <stdio.h>
#include <string.h>

static int passed, failed;

static void check(int ok, const char *what, int line) {
    if (ok) { passed++; return; }
    failed++;
    printf("FAIL line %d: %s (last error: %s)\n", line, what, graft_last_error());
}
#define CHECK(cond) check((cond) ? 1 : 0, #cond, __LINE__)
#define EXPECT(call, status, fragment)                                                       \
    do {                                                                                     \
        graft_status s_ = (call);                                                            \
        int ok_ = s_ == (status) && strstr(graft_last_error(), (fragment)) != NULL;          \
        if (!ok_) printf("  got %s (%d): %s\n", graft_status_string(s_), (int)s_, graft_last_error()); \
        check(ok_, #call " -> " #status, __LINE__);                                          \
    } while (0)

#endif
