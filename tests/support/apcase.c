/*
 * apcase.c — the AP-helper runs and row checks of the end-to-end tests (apcase.h).
 */
#include "apcase.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"
#include "tmproc.h"

static char work_dir[512];
static char tm[17];

void t_ap_init(const char *dir, const char *tm_id)
{
    snprintf(work_dir, sizeof work_dir, "%s", dir);
    snprintf(tm, sizeof tm, "%s", tm_id);
}

pid_t t_ap_spawn_timed(const char *cfg, const char *id, const char *action, const char *fault,
                       const char *timeout_ms, char *outfile, size_t outlen)
{
    char bin[512], cfgbuf[700], idbuf[64], actbuf[64], faultenv[128], tenv[64];
    snprintf(outfile, outlen, "%s/ap-%s.out", work_dir, id);
    snprintf(bin, sizeof bin, "%s", t_env("XATM_TEST_AP"));
    snprintf(cfgbuf, sizeof cfgbuf, "%s", cfg);
    snprintf(idbuf, sizeof idbuf, "%s", id);
    snprintf(actbuf, sizeof actbuf, "%s", action);
    char *argv[] = {bin, cfgbuf, idbuf, actbuf, NULL};
    char *env[3] = {NULL, NULL, NULL};
    size_t n = 0;
    if (fault) {
        snprintf(faultenv, sizeof faultenv, "XATM_FAULT=%s", fault);
        env[n++] = faultenv;
    }
    if (timeout_ms) {
        snprintf(tenv, sizeof tenv, "XATM_TEST_AP_TIMEOUT_MS=%s", timeout_ms);
        env[n++] = tenv;
    }
    return t_spawn(argv, env, outfile);
}

pid_t t_ap_spawn(const char *cfg, const char *id, const char *action, const char *fault,
                 char *outfile, size_t outlen)
{
    return t_ap_spawn_timed(cfg, id, action, fault, NULL, outfile, outlen);
}

int t_ap_run(const char *cfg, const char *id, const char *action, const char *fault, char *out,
             size_t outlen)
{
    char outfile[700];
    int st = 0;
    out[0] = '\0';
    pid_t pid = t_ap_spawn(cfg, id, action, fault, outfile, sizeof outfile);
    if (pid <= 0) return -1;
    if (!t_wait_exit(pid, 120000, &st)) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        fprintf(stderr, "  AP %s (%s) still ran after 120 s: killed\n", id, action);
        return -1;
    }
    t_read_file(outfile, out, outlen);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

void t_ap_gtrid(const char *out, char *gtrid, size_t size)
{
    const char *g = strstr(out, "gtrid=");
    gtrid[0] = '\0';
    if (g) snprintf(gtrid, size, "%.*s", (int)strcspn(g + 6, " \n"), g + 6);
}

pid_t t_ap_stopped(const char *cfg, const char *id, const char *action, const char *stop_fault,
                   const char *timeout_ms, char *outfile, size_t outlen, char *gtrid,
                   size_t size)
{
    pid_t ap = t_ap_spawn_timed(cfg, id, action, stop_fault, timeout_ms, outfile, outlen);
    CHECK(ap > 0 && t_wait_stopped(ap, 20000));
    t_ap_gtrid_file(outfile, gtrid, size);
    CHECK(gtrid[0] != '\0');
    return ap;
}

void t_ap_resume(pid_t ap, const char *outfile, char *out, size_t outlen)
{
    kill(ap, SIGCONT);
    int st = 0;
    CHECK(t_wait_exit(ap, 30000, &st));
    t_read_file(outfile, out, outlen);
}

void t_ap_gtrid_file(const char *outfile, char *gtrid, size_t size)
{
    char buf[4096];
    t_read_file(outfile, buf, sizeof buf);
    t_ap_gtrid(buf, gtrid, size);
}

void t_read_file(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

char *t_config_variant(const char *base, const char *name, const char *from, const char *to)
{
    static char text[1 << 16];
    char path[700];
    t_read_file(base, text, sizeof text);
    char *at = strstr(text, from);
    if (!at) {
        fprintf(stderr, "FAIL: '%s' not in %s\n", from, base);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s", work_dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(text, 1, (size_t)(at - text), f);
    fputs(to, f);
    fputs(at + strlen(from), f);
    fclose(f);
    return strdup(path);
}

long long t_rows(bool pg, const char *id)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM xatm_it WHERE id = '%s'", id);
    return pg ? t_pg_scalar(sql) : t_my_scalar(sql);
}

void t_expect_rows(const char *id, long long n)
{
    long long p = t_rows(true, id), m = t_rows(false, id);
    if (p != n || m != n) fprintf(stderr, "  id %s: pg=%lld my=%lld expected %lld\n", id, p, m, n);
    CHECK_INT(p, n);
    CHECK_INT(m, n);
}

long long t_expect_consistent(const char *id)
{
    long long p = t_rows(true, id), m = t_rows(false, id);
    if (p != m) fprintf(stderr, "  id %s: pg=%lld my=%lld: DIVERGED\n", id, p, m);
    CHECK_INT(p, m);
    CHECK(p == 0 || p == 1);
    return p;
}

void t_expect_converged(int timeout_ms)
{
    long long ms = t_wait_no_prepared(tm, timeout_ms);
    CHECK(ms >= 0);
    printf("  converged in %lld ms\n", ms);
}
