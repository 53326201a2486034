/*
 * testutil.h — the minimal test kit every xatm test uses: CHECK macros that record a
 * failure with file:line and go on, a summary at the end, the exit code Meson expects
 * (0 pass, 1 fail, 77 skipped), and access to the throwaway servers that
 * scripts/servers.sh started (their coordinates come in XATM_TEST_* environment variables).
 *
 * Invariant: a test that checked nothing fails (t_finish() treats zero checks as failure),
 * so a test cannot pass by asserting nothing.
 */
#ifndef XATM_TESTUTIL_H
#define XATM_TESTUTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

extern int t_checks;   /* checks run */
extern int t_failures; /* checks failed */

void t_fail_(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        t_checks++;                                                                      \
        if (!(cond)) t_fail_(__FILE__, __LINE__, "CHECK(%s)", #cond);                    \
    } while (0)

#define CHECK_INT(a, b)                                                                  \
    do {                                                                                 \
        long long a_ = (long long)(a), b_ = (long long)(b);                              \
        t_checks++;                                                                      \
        if (a_ != b_) t_fail_(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, a_, #b, b_); \
    } while (0)

#define CHECK_STR(a, b)                                                                  \
    do {                                                                                 \
        const char *a_ = (a), *b_ = (b);                                                 \
        t_checks++;                                                                      \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                           \
            t_fail_(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
    } while (0)

/* true when haystack contains needle */
#define CHECK_CONTAINS(haystack, needle)                                                 \
    do {                                                                                 \
        const char *h_ = (haystack), *n_ = (needle);                                     \
        t_checks++;                                                                      \
        if (!h_ || !strstr(h_, n_))                                                      \
            t_fail_(__FILE__, __LINE__, "%s does not contain \"%s\": \"%s\"", #haystack, n_, h_ ? h_ : "(null)"); \
    } while (0)

/* Prints "name: N checks, F failed" and returns the process exit code (0 or 1). */
int t_finish(const char *name);

/* Exits 77 (skipped) with a loud reason unless the servers' XATM_TEST_* variables are set. */
void t_require_servers(void);

/* getenv that aborts the test with a message when the variable is missing. */
const char *t_env(const char *name);

/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp); caller frees the string. */
char *t_tmpdir(const char *tag);

/* Writes an xatm YAML config into dir/xatm.yaml for the test servers: RMs "pg"
 * (postgresql) and "my" (mysql), tm id `tm_id`, sockets and log under dir, plus `extra_tm`
 * lines appended to the tm: section (may be NULL, e.g. "  transaction_timeout: 2s\n").
 * Returns the malloc'd config path. */
char *t_write_config(const char *dir, const char *tm_id, const char *extra_tm);

/* Monotonic milliseconds. */
uint64_t t_now_ms(void);

#endif
