/*
 * testutil.c — implementation of the test kit declared in testutil.h.
 */
#include "testutil.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int t_checks;
int t_failures;

void t_fail_(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    t_failures++;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

int t_finish(const char *name)
{
    if (t_checks == 0) {
        fprintf(stderr, "%s: no checks ran: a test that asserts nothing is a defect\n", name);
        return 1;
    }
    printf("%s: %d checks, %d failed\n", name, t_checks, t_failures);
    return t_failures ? 1 : 0;
}

static const char *const server_vars[] = {
    "XATM_TEST_PG_HOST", "XATM_TEST_PG_PORT", "XATM_TEST_PG_USER", "XATM_TEST_PG_PASSWORD",
    "XATM_TEST_PG_DB",   "XATM_TEST_MY_HOST", "XATM_TEST_MY_PORT", "XATM_TEST_MY_USER",
    "XATM_TEST_MY_PASSWORD", "XATM_TEST_MY_DB", NULL,
};

void t_require_servers(void)
{
    for (const char *const *v = server_vars; *v; v++) {
        if (!getenv(*v)) {
            fprintf(stderr,
                    "SKIPPED: %s is not set: this test needs the throwaway PostgreSQL and "
                    "MariaDB servers that scripts/test.sh starts (scripts/servers.sh start DIR; "
                    ". DIR/env)\n",
                    *v);
            exit(77);
        }
    }
}

const char *t_env(const char *name)
{
    const char *v = getenv(name);
    if (!v) {
        fprintf(stderr, "FAIL: environment variable %s is not set\n", name);
        exit(1);
    }
    return v;
}

char *t_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/xatm-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        exit(1);
    }
    return strdup(path);
}

char *t_write_config(const char *dir, const char *tm_id, const char *extra_tm)
{
    char path[600];
    snprintf(path, sizeof path, "%s/xatm.yaml", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fprintf(f,
            "tm:\n"
            "  id: %s\n"
            "  socket: %s/xatmd.sock\n"
            "  admin_socket: %s/xatmd-admin.sock\n"
            "  log_dir: %s/log\n"
            "%s"
            "rms:\n"
            "  - name: pg\n"
            "    type: postgresql\n"
            "    host: %s\n"
            "    port: %s\n"
            "    user: %s\n"
            "    password: %s\n"
            "    database: %s\n"
            "  - name: my\n"
            "    type: mysql\n"
            "    host: %s\n"
            "    port: %s\n"
            "    user: %s\n"
            "    password: %s\n"
            "    database: %s\n",
            tm_id, dir, dir, dir, extra_tm ? extra_tm : "", t_env("XATM_TEST_PG_HOST"),
            t_env("XATM_TEST_PG_PORT"), t_env("XATM_TEST_PG_USER"),
            t_env("XATM_TEST_PG_PASSWORD"), t_env("XATM_TEST_PG_DB"),
            t_env("XATM_TEST_MY_HOST"), t_env("XATM_TEST_MY_PORT"),
            t_env("XATM_TEST_MY_USER"), t_env("XATM_TEST_MY_PASSWORD"),
            t_env("XATM_TEST_MY_DB"));
    fclose(f);
    return strdup(path);
}

uint64_t t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
