/*
 * ap_helper.c — a tiny application (AP) for integration tests, run as its own process so
 * that a test can arm an AP-side fault point (XATM_FAULT) and kill it at an exact step.
 *
 *   xatm-test-ap CONFIG ID ACTION
 *
 * Begins a global transaction, inserts row ID into table xatm_it on RM "pg" and RM "my",
 * then ACTION: commit | rollback | fail-pg (a failing statement on pg, then commit) |
 * fail-my (a failing statement on my, then commit) | fail-my-direct (an error left as the
 * MYSQL session's last result, then commit). Prints "result=<ERRNAME> <detail>" and exits
 * 0 when the call returned 0, 2 otherwise (1 for usage/setup errors).
 */
#include <stdio.h>
#include <string.h>

#include <mysql.h>

#include "xatm.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s CONFIG ID commit|rollback|fail-pg|fail-my|fail-my-direct\n", argv[0]);
        return 1;
    }
    const char *action = argv[3];
    xatm_t *h = NULL;
    int rc = xatm_open(argv[1], &h);
    if (rc) {
        printf("result=%s open: %s\n", xatm_errname(rc), h ? xatm_last_error(h) : "");
        xatm_close(h);
        return 2;
    }
    char sql[256];
    rc = xatm_begin(h, NULL);
    if (rc) goto report;
    snprintf(sql, sizeof sql, "INSERT INTO xatm_it (id, v) VALUES ('%s', 1)", argv[2]);
    if ((rc = xatm_exec(h, "pg", sql, NULL)) != 0) goto report;
    if ((rc = xatm_exec(h, "my", sql, NULL)) != 0) goto report;
    if (strcmp(action, "fail-pg") == 0) {
        (void)xatm_exec(h, "pg", "SELECT * FROM no_such_table_xatm", NULL);
    } else if (strcmp(action, "fail-my") == 0) {
        (void)xatm_exec(h, "my", "SELECT * FROM no_such_table_xatm", NULL);
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
