/*
 * tmproc.c — implementation of tmproc.h: process control for xatmd and child programs,
 * and plain-SQL probes of the test servers.
 */
#include "tmproc.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

extern char **environ;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t n;
    while (s && (n = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *p = realloc(s, cap * 2);
            if (!p) {
                free(s);
                s = NULL;
                break;
            }
            s = p;
            cap *= 2;
        }
    }
    fclose(f);
    if (s) s[len] = '\0';
    return s;
}

int t_xatmd_log_count(const t_xatmd *d, const char *text)
{
    char *s = slurp(d->log);
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, text)) != NULL; p += strlen(text)) n++;
    free(s);
    return n;
}

bool t_xatmd_wait_log(const t_xatmd *d, const char *text, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        if (t_xatmd_log_count(d, text) > 0) return true;
        usleep(50000);
    }
    return false;
}

static void print_log(const t_xatmd *d)
{
    char *s = slurp(d->log);
    fprintf(stderr, "---- xatmd log %s ----\n%s\n---- end of log ----\n", d->log, s ? s : "(none)");
    free(s);
}

int t_xatmd_start(t_xatmd *d, const char *config, const char *fault)
{
    const char *bin = t_env("XATMD");
    snprintf(d->config, sizeof d->config, "%s", config);
    if (!d->log[0]) snprintf(d->log, sizeof d->log, "%s.xatmd.log", config);
    int ready_before = t_xatmd_log_count(d, "xatmd: ready");
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
            close(fd);
        }
        if (fault)
            setenv("XATM_FAULT", fault, 1);
        else
            unsetenv("XATM_FAULT");
        execl(bin, bin, "-c", config, (char *)NULL);
        _exit(127);
    }
    d->pid = pid;
    for (int waited = 0; waited < 60000; waited += 20) {
        if (t_xatmd_log_count(d, "xatmd: ready") > ready_before) return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            d->pid = 0;
            fprintf(stderr, "xatmd exited during start-up (status %d)\n", st);
            print_log(d);
            return -1;
        }
        sleep_ms(20);
    }
    fprintf(stderr, "xatmd not ready after 60 s\n");
    print_log(d);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    d->pid = 0;
    return -1;
}

int t_xatmd_stop(t_xatmd *d)
{
    int st = 0;
    if (d->pid <= 0) return 0;
    kill(d->pid, SIGTERM);
    for (int waited = 0; waited < 30000; waited += 20) {
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            return st;
        }
        sleep_ms(20);
    }
    fprintf(stderr, "xatmd did not stop within 30 s of SIGTERM; killing it\n");
    print_log(d);
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &st, 0);
    d->pid = 0;
    return st;
}

bool t_xatmd_wait_killed(t_xatmd *d, int timeout_ms)
{
    int st;
    if (d->pid <= 0) return false;
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
        }
        sleep_ms(10);
    }
    return false;
}

pid_t t_spawn(char *const argv[], char *const extra_env[], const char *out_path)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (out_path) {
            int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
        }
        for (char *const *e = extra_env; e && *e; e++) putenv(*e);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

bool t_wait_stopped(pid_t pid, int timeout_ms)
{
    int st;
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        pid_t r = waitpid(pid, &st, WNOHANG | WUNTRACED);
        if (r == pid && WIFSTOPPED(st)) return true;
        if (r == pid || r < 0) return false; /* it exited instead */
        sleep_ms(10);
    }
    return false;
}

bool t_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) return true;
        if (r < 0 && errno != EINTR) return false;
        sleep_ms(10);
    }
    return false;
}

int t_servers_sh(const char *action, const char *rm, const char *out_path)
{
    char script[600], act[16], name[16], sdir[600];
    snprintf(script, sizeof script, "%s/scripts/servers.sh", t_env("XATM_SOURCE_ROOT"));
    snprintf(act, sizeof act, "%s", action);
    snprintf(name, sizeof name, "%s", rm);
    snprintf(sdir, sizeof sdir, "%s", t_env("XATM_TEST_SERVERS_DIR"));
    char *argv[] = {script, act, name, sdir, NULL};
    int st = t_run(argv, NULL, out_path);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int t_run(char *const argv[], char *const extra_env[], const char *out_path)
{
    pid_t pid = t_spawn(argv, extra_env, out_path);
    if (pid < 0) return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return st;
}

static PGconn *pg_connect(void)
{
    const char *keys[] = {"host", "port", "user", "password", "dbname", NULL};
    const char *vals[] = {t_env("XATM_TEST_PG_HOST"), t_env("XATM_TEST_PG_PORT"),
                          t_env("XATM_TEST_PG_USER"), t_env("XATM_TEST_PG_PASSWORD"),
                          t_env("XATM_TEST_PG_DB"), NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "t_pg: connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

static MYSQL *my_connect(void)
{
    MYSQL *m = mysql_init(NULL);
    if (!m) return NULL;
    if (!mysql_real_connect(m, t_env("XATM_TEST_MY_HOST"), t_env("XATM_TEST_MY_USER"),
                            t_env("XATM_TEST_MY_PASSWORD"), t_env("XATM_TEST_MY_DB"),
                            (unsigned)atoi(t_env("XATM_TEST_MY_PORT")), NULL, 0)) {
        fprintf(stderr, "t_my: connect: %s\n", mysql_error(m));
        mysql_close(m);
        return NULL;
    }
    return m;
}

long long t_pg_scalar(const char *sql)
{
    PGconn *c = pg_connect();
    if (!c) return -1;
    long long v = -1;
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
        v = PQgetisnull(r, 0, 0) ? 0 : atoll(PQgetvalue(r, 0, 0));
    else
        fprintf(stderr, "t_pg_scalar(%s): %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return v;
}

int t_pg_exec(const char *sql)
{
    PGconn *c = pg_connect();
    if (!c) return -1;
    PGresult *r = PQexec(c, sql);
    int rc = (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK) ? 0 : -1;
    if (rc) fprintf(stderr, "t_pg_exec(%s): %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return rc;
}

static long long my_query_count(MYSQL *m, const char *sql, bool first_col)
{
    if (mysql_query(m, sql)) {
        fprintf(stderr, "t_my(%s): %s\n", sql, mysql_error(m));
        return -1;
    }
    MYSQL_RES *res = mysql_store_result(m);
    if (!res) return mysql_field_count(m) == 0 ? 0 : -1;
    long long v;
    if (first_col) {
        MYSQL_ROW row = mysql_fetch_row(res);
        v = row ? (row[0] ? atoll(row[0]) : 0) : -1;
    } else {
        v = (long long)mysql_num_rows(res);
    }
    mysql_free_result(res);
    return v;
}

long long t_my_scalar(const char *sql)
{
    MYSQL *m = my_connect();
    if (!m) return -1;
    long long v = my_query_count(m, sql, true);
    mysql_close(m);
    return v;
}

int t_my_exec(const char *sql)
{
    MYSQL *m = my_connect();
    if (!m) return -1;
    int rc = 0;
    if (mysql_query(m, sql)) {
        fprintf(stderr, "t_my_exec(%s): %s\n", sql, mysql_error(m));
        rc = -1;
    } else {
        MYSQL_RES *res = mysql_store_result(m);
        if (res) mysql_free_result(res);
    }
    mysql_close(m);
    return rc;
}

long long t_pg_prepared(const char *tm_id)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'xatm:%%:%s.%%'", tm_id);
    return t_pg_scalar(sql);
}

long long t_my_prepared(const char *tm_id)
{
    MYSQL *m = my_connect();
    if (!m) return -1;
    long long n = -1;
    if (mysql_query(m, "XA RECOVER") == 0) {
        MYSQL_RES *res = mysql_store_result(m);
        if (res) {
            MYSQL_ROW row;
            size_t plen = strlen(tm_id);
            n = 0;
            /* columns: formatID, gtrid_length, bqual_length, data */
            while ((row = mysql_fetch_row(res)) != NULL) {
                if (row[3] && strncmp(row[3], tm_id, plen) == 0 && row[3][plen] == '.') n++;
            }
            mysql_free_result(res);
        }
    } else {
        fprintf(stderr, "t_my_prepared: %s\n", mysql_error(m));
    }
    mysql_close(m);
    return n;
}

long long t_wait_no_prepared(const char *tm_id, int timeout_ms)
{
    uint64_t start = t_now_ms();
    for (;;) {
        long long p = t_pg_prepared(tm_id), m = t_my_prepared(tm_id);
        if (p == 0 && m == 0) return (long long)(t_now_ms() - start);
        if (t_now_ms() - start > (uint64_t)timeout_ms) {
            fprintf(stderr, "still prepared after %d ms: pg=%lld my=%lld\n", timeout_ms, p, m);
            return -1;
        }
        sleep_ms(50);
    }
}
