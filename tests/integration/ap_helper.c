/*
 * ap_helper.c — a tiny application (AP) for integration tests, run as its own process so
 * that a test can arm an AP-side fault point (XATM_FAULT) and kill or stop it at an exact
 * step.
 *
 *   xatm-test-ap CONFIG ID ACTION
 *
 * Begins a global transaction, inserts row ID into table xatm_it on RM "pg" and RM "my",
 * then ACTION: commit | rollback | fail-pg (a failing statement on pg, then commit) |
 * fail-my (a failing statement on my, then commit) | fail-my-direct (an error left as the
 * MYSQL session's last result, then commit) | pg-only (the row on "pg" only, then commit:
 * a one-branch transaction that never touches "my") | my-readonly (the row on "pg", only a
 * read on "my", then commit: "my" votes read-only, so the COMMIT names only "pg") | pg-temp (the
 * "pg" branch also touches a temporary table, then commit: PostgreSQL refuses to PREPARE
 * such a transaction, while every check before it passes, so in 3PC the branch answers
 * CanCommit yes and fails at PreCommit) | pg-pg2 (the row on "pg" and on a second
 * PostgreSQL RM "pg2" instead of "my", then commit) | loop:N (N transactions, rows
 * ID-1..ID-N on both RMs, each committed; stops at the first failure) | idle:MS (rows ID-1
 * committed, then MS milliseconds without a transaction, then ID-2: the link to xatmd
 * stays open and idle, holding the gtrid lease its first transaction asked for) | pg-slow (as
 * commit, plus a row in table xatm_slow on "pg", whose deferred constraint trigger the
 * decider test makes sleep at COMMIT: the "pg" commit then holds its locks, the decision
 * row's included, for that long).
 * Prints "gtrid=<gtrid>" once the transaction has begun (flushed, so a test can read it
 * while the process is stopped at a fault point), then "result=<ERRNAME> <detail>", and
 * exits 0 when the call returned 0, 2 otherwise (1 for usage/setup errors).
 *
 * XATM_TEST_AP_TIMEOUT_MS, when set, is the transaction timeout asked for at BEGIN.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mysql.h>

#include "xatm.h"

/* One transaction: begin, insert row id on pg (and my unless pg_only), commit. */
static int one_commit(xatm_t *h, const xatm_begin_options *opts, const char *id, bool pg_only)
{
    char sql[256];
    int rc = xatm_begin(h, opts);
    if (rc) return rc;
    snprintf(sql, sizeof sql, "INSERT INTO xatm_it (id, v) VALUES ('%s', 1)", id);
    if ((rc = xatm_exec(h, "pg", sql, NULL)) != 0) return rc;
    if (!pg_only && (rc = xatm_exec(h, "my", sql, NULL)) != 0) return rc;
    return xatm_commit(h);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr,
                "usage: %s CONFIG ID commit|rollback|fail-pg|fail-my|fail-my-direct|pg-only|"
                "my-readonly|pg-temp|pg-pg2|pg-slow|loop:N|idle:MS\n",
                argv[0]);
        return 1;
    }
    const char *action = argv[3];
    xatm_begin_options opts = {XATM_PROTOCOL_DEFAULT, 0};
    const char *t = getenv("XATM_TEST_AP_TIMEOUT_MS");
    if (t && *t) opts.timeout_ms = (uint32_t)strtoul(t, NULL, 10);
    xatm_t *h = NULL;
    int rc = xatm_open(argv[1], &h);
    if (rc) {
        printf("result=%s open: %s\n", xatm_errname(rc), h ? xatm_last_error(h) : "");
        xatm_close(h);
        return 2;
    }
    if (strncmp(action, "loop:", 5) == 0) {
        long n = strtol(action + 5, NULL, 10);
        char id[128];
        for (long i = 1; i <= n && rc == 0; i++) {
            snprintf(id, sizeof id, "%s-%ld", argv[2], i);
            rc = one_commit(h, &opts, id, false);
        }
        goto report;
    }
    if (strncmp(action, "idle:", 5) == 0) {
        long ms = strtol(action + 5, NULL, 10);
        char id[128];
        snprintf(id, sizeof id, "%s-1", argv[2]);
        rc = one_commit(h, &opts, id, false);
        if (rc == 0) {
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0) {
            }
            snprintf(id, sizeof id, "%s-2", argv[2]);
            rc = one_commit(h, &opts, id, false);
        }
        goto report;
    }
    if (strcmp(action, "pg-only") == 0) {
        rc = one_commit(h, &opts, argv[2], true);
        goto report;
    }
    char sql[256];
    rc = xatm_begin(h, &opts);
    if (rc) goto report;
    printf("gtrid=%s\n", xatm_gtrid(h));
    fflush(stdout);
    snprintf(sql, sizeof sql, "INSERT INTO xatm_it (id, v) VALUES ('%s', 1)", argv[2]);
    if ((rc = xatm_exec(h, "pg", sql, NULL)) != 0) goto report;
    if (strcmp(action, "pg-pg2") == 0) {
        if ((rc = xatm_exec(h, "pg2", sql, NULL)) != 0) goto report;
        rc = xatm_commit(h);
        goto report;
    }
    if (strcmp(action, "my-readonly") == 0) {
        if ((rc = xatm_exec(h, "my", "SELECT COUNT(*) FROM xatm_it", NULL)) != 0) goto report;
        rc = xatm_commit(h);
        goto report;
    }
    if ((rc = xatm_exec(h, "my", sql, NULL)) != 0) goto report;
    if (strcmp(action, "fail-pg") == 0) {
        (void)xatm_exec(h, "pg", "SELECT * FROM no_such_table_xatm", NULL);
    } else if (strcmp(action, "fail-my") == 0) {
        (void)xatm_exec(h, "my", "SELECT * FROM no_such_table_xatm", NULL);
    } else if (strcmp(action, "pg-slow") == 0) {
        snprintf(sql, sizeof sql, "INSERT INTO xatm_slow (id) VALUES ('%s')", argv[2]);
        if ((rc = xatm_exec(h, "pg", sql, NULL)) != 0) goto report;
    } else if (strcmp(action, "pg-temp") == 0) {
        if ((rc = xatm_exec(h, "pg", "CREATE TEMP TABLE xatm_it_tmp (a int)", NULL)) != 0)
            goto report;
    } else if (strcmp(action, "fail-my-direct") == 0) {
        MYSQL *m = xatm_mysql_conn(h, "my");
        if (m && mysql_query(m, "INSERT INTO no_such_table_xatm VALUES (1)") == 0) {
            printf("result=EINVAL the failing statement succeeded\n");
            return 1;
        }
    }
    rc = strcmp(action, "rollback") == 0 ? xatm_rollback(h) : xatm_commit(h);
report:
    printf("result=%s %s\n", xatm_errname(rc), xatm_last_error(h));
    fflush(stdout);
    xatm_close(h);
    return rc == 0 ? 0 : 2;
}
