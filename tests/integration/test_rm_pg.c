/*
 * test_rm_pg.c — the PostgreSQL RM adapter (rm_pg.c) against the throwaway PostgreSQL of
 * scripts/servers.sh: every PostgreSQL fact of ARCHITECTURE.md ("RM facts that shape the
 * adapters") and every operation of rm.h.
 *
 * Isolation: tables are named after this process's pid and every gtrid carries the TM id
 * "t<pid>", so concurrent or repeated runs never see each other's rows or branches. Every
 * branch a test prepares is finished before the test ends, foreign ones included.
 */
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "rm.h"
#include "rm_impl.h"
#include "rmtest.h"
#include "testutil.h"
#include "xatm.h"

static xatm_rm_config cfg;  /* the test server, from XATM_TEST_PG_* */
static char table[64];      /* plain table: id int primary key, v int */
static char dtable[64];     /* table with a deferred unique constraint on k */
static PGconn *admin;       /* a plain libpq session for inspection and setup */

/* A fresh xid of this run (bqual "pg"). */
static xatm_xid new_xid(void)
{
    return rmt_new_xid("pg");
}

static xatm_rm_conn *open_pg(void)
{
    return rmt_open(&cfg);
}

/* Runs SQL on the admin session; returns the first column of the first row (static
 * buffer) or "" ; exits on error (setup must work). */
static const char *admin_q(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *admin_q(const char *fmt, ...)
{
    static char out[256];
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(admin, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "FAIL: admin query failed: %s: %s\n", sql, PQerrorMessage(admin));
        exit(1);
    }
    out[0] = '\0';
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0)
        snprintf(out, sizeof out, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

static int prepared_count(const xatm_xid *x)
{
    char gid[XATM_PG_GID_MAX];
    if (xatm_xid_to_pg_gid(x, gid, sizeof gid) != 0) return -1;
    return atoi(admin_q("SELECT count(*) FROM pg_prepared_xacts WHERE gid = '%s'", gid));
}

static int row_v(int id)
{
    const char *v = admin_q("SELECT coalesce((SELECT v FROM %s WHERE id = %d), -1)", table, id);
    return atoi(v);
}

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* ---------------------------------------------------------------- tests */

static void test_open_caps(void)
{
    xatm_rm_conn *c = open_pg();
    const xatm_rm_caps *caps = xatm_rm_caps_of(c);
    CHECK(caps->version_num >= 100000);
    CHECK(caps->max_prepared > 0);
    CHECK(caps->detach_on_prepare);
    CHECK(caps->server_version[0] != '\0');
    CHECK_INT(caps->session_id, PQbackendPID(xatm_rm_native(c)));
    CHECK(xatm_rm_alive(c));
    CHECK_STR(xatm_rm_errmsg(c), "");
    CHECK(xatm_rm_config_of(c) == &cfg);
    CHECK_STR(xatm_rm_ops_for(XATM_RM_POSTGRESQL)->name, "postgresql");
    CHECK_STR(PQparameterStatus(xatm_rm_native(c), "application_name"), "xatm");
    /* a session reference to the checker itself is never an AP's: not alive */
    CHECK_INT(xatm_rm_session_alive(c, caps->session_id), 0);
    CHECK_INT(caps->incarnation, 0); /* PostgreSQL sessions carry no incarnation */
    CHECK_INT(xatm_rm_session_ref(c), caps->session_id);
    xatm_rm_conn *o = rmt_open(&cfg);
    CHECK_INT(xatm_rm_session_alive(o, xatm_rm_session_ref(c)), 1);
    xatm_rm_close(o);
    xatm_rm_close(c);
}

/* max_prepared_transactions cannot be changed on the shared test server, so the
 * decision taken at open is exercised directly; open's use of it is shown by
 * test_open_caps (max_prepared read from the server). */
static void test_caps_decision(void)
{
    char err[1024];
    CHECK_INT(xatm_rm__pg_check_caps(&cfg, 150000, 0, err, sizeof err), XATM_XAER_RMERR);
    CHECK_CONTAINS(err, "max_prepared_transactions is 0");
    CHECK_CONTAINS(err, "set max_prepared_transactions > 0 in postgresql.conf and restart");
    CHECK_CONTAINS(err, "'pg'");
    CHECK_CONTAINS(err, rmt_where(&cfg));
    CHECK_INT(xatm_rm__pg_check_caps(&cfg, 90600, 10, err, sizeof err), XATM_XAER_RMERR);
    CHECK_CONTAINS(err, "too old");
    CHECK_INT(xatm_rm__pg_check_caps(&cfg, 100000, 1, err, sizeof err), XATM_XA_OK);
}

static void test_two_phase_commit(void)
{
    xatm_rm_conn *a = open_pg(), *b = open_pg();
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (1, 10)", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XA_OK);
    CHECK_INT(prepared_count(&x), 1);
    CHECK_INT(row_v(1), -1); /* not visible before commit */
    CHECK_INT(PQtransactionStatus(xatm_rm_native(a)), PQTRANS_IDLE);
    /* PostgreSQL detaches at prepare: another session commits while `a` is connected */
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_COMMIT, &x), XATM_XA_OK);
    CHECK_INT(row_v(1), 10);
    CHECK_INT(prepared_count(&x), 0);
    /* a retried commit of a finished gid: 42704 -> XAER_NOTA */
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &x), XATM_XAER_NOTA);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "42704");
    /* the session is reusable for the next branch */
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 11 WHERE id = 1", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &y), XATM_XA_OK);
    CHECK_INT(row_v(1), 11);
    xatm_rm_close(a);
    xatm_rm_close(b);
}

/* PREPARE TRANSACTION inside an already-failed transaction answers success with the tag
 * ROLLBACK: a yes vote needs the tag PREPARE TRANSACTION. */
static void test_prepare_failed_transaction(void)
{
    /* the raw fact, on a plain session */
    PGresult *r = PQexec(admin, "BEGIN");
    PQclear(r);
    r = PQexec(admin, "SELECT 1/0");
    CHECK_INT(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    r = PQexec(admin, "PREPARE TRANSACTION 'xatm_raw_probe'");
    CHECK_INT(PQresultStatus(r), PGRES_COMMAND_OK);
    CHECK_STR(PQcmdStatus(r), "ROLLBACK");
    PQclear(r);
    CHECK_STR(admin_q("SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'xatm_raw_probe'"), "0");

    /* the adapter: a statement error -> no vote, nothing prepared, session clean */
    xatm_rm_conn *a = open_pg();
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (2, 20)", table), XATM_XA_OK);
    r = PQexec(xatm_rm_native(a), "SELECT 1/0"); /* the application's own failed statement */
    PQclear(r);
    CHECK_INT(PQtransactionStatus(xatm_rm_native(a)), PQTRANS_INERROR);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XA_RBROLLBACK);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "failed state");
    CHECK_INT(prepared_count(&x), 0);
    CHECK_INT(row_v(2), -1);
    CHECK_INT(PQtransactionStatus(xatm_rm_native(a)), PQTRANS_IDLE);
    /* the caller's rollback afterwards: nothing to roll back */
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &x), XATM_XAER_NOTA);

    /* a failed exec marks the branch */
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_exec(a, "SELECT no_such_column", NULL), XATM_XAER_RMERR);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "42703");
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &y), XATM_XA_RBROLLBACK);
    CHECK_INT(prepared_count(&y), 0);

    /* mark_failed on a healthy transaction */
    xatm_xid z = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &z), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (3, 30)", table), XATM_XA_OK);
    xatm_rm_mark_failed(a);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &z), XATM_XA_RBROLLBACK);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "marked failed");
    CHECK_INT(prepared_count(&z), 0);
    CHECK_INT(row_v(3), -1);

    /* the mark does not survive into the next branch */
    xatm_xid w = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &w), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (3, 31)", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &w), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &w), XATM_XA_OK);
    CHECK_INT(row_v(3), 31);

    /* an error raised by PREPARE itself (deferred unique violation): no, nothing prepared */
    xatm_xid v = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &v), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (7), (7)", dtable), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &v), XATM_XA_RBROLLBACK);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "23505");
    CHECK_INT(prepared_count(&v), 0);
    CHECK_INT(PQtransactionStatus(xatm_rm_native(a)), PQTRANS_IDLE);
    xatm_rm_close(a);
}

/* The gid stays under 200 bytes for the longest xid xatm can issue, and PostgreSQL takes it. */
static void test_gid_length(void)
{
    char long_tm[XATM_TM_ID_MAX + 1], g[XATM_GTRID_MAX + 1], gid[XATM_PG_GID_MAX];
    char bq[XATM_RM_NAME_MAX + 1];
    xatm_xid x;
    memset(long_tm, '_', XATM_TM_ID_MAX); /* our TM id padded to the longest TM id */
    memcpy(long_tm, rmt_tm_id, strlen(rmt_tm_id));
    long_tm[XATM_TM_ID_MAX] = '\0';
    memset(bq, 'b', XATM_RM_NAME_MAX);
    bq[XATM_RM_NAME_MAX] = '\0';
    CHECK_INT(xatm_gtrid_format(g, sizeof g, long_tm, UINT32_MAX, UINT64_MAX), 0);
    CHECK_INT(xatm_xid_make(&x, 0xffffffffu, g, bq), 0);
    CHECK_INT(xatm_xid_to_pg_gid(&x, gid, sizeof gid), 0);
    CHECK(strlen(gid) < 200);

    xatm_rm_conn *a = open_pg();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (4, 40)", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XA_OK);
    CHECK_STR(admin_q("SELECT count(*) FROM pg_prepared_xacts WHERE gid = '%s'", gid), "1");
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &x), XATM_XA_OK);
    CHECK_INT(row_v(4), 40);
    xatm_rm_close(a);
}

static void test_unknown_gid(void)
{
    xatm_rm_conn *a = open_pg();
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &x), XATM_XAER_NOTA);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "42704");
    CHECK_CONTAINS(xatm_rm_errmsg(a), "COMMIT PREPARED");
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &x), XATM_XAER_NOTA);
    /* a PREPARE with no transaction open is a protocol error, nothing is sent */
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XAER_PROTO);
    /* an invalid xid never reaches the server */
    xatm_xid bad = x;
    snprintf(bad.gtrid, sizeof bad.gtrid, "a'b");
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &bad), XATM_XAER_INVAL);
    CHECK(xatm_rm_alive(a));
    xatm_rm_close(a);
}

/* recover lists only branches with our format_id and TM id. */
static void test_recover_filters(void)
{
    xatm_rm_conn *a = open_pg(), *b = open_pg();
    xatm_xid ours[2] = {new_xid(), new_xid()};
    xatm_rm_conn *conn[2] = {a, b};
    char foreign_fmt[128], foreign_tm[128], foreign_plain[64];
    for (int i = 0; i < 2; i++) {
        CHECK_INT(xatm_rm_run(conn[i], XATM_RM_OP_START, &ours[i]), XATM_XA_OK);
        CHECK_INT(rmt_exec(conn[i], "INSERT INTO %s VALUES (%d, 1)", table, 100 + i), XATM_XA_OK);
        CHECK_INT(xatm_rm_run(conn[i], XATM_RM_OP_PREPARE, &ours[i]), XATM_XA_OK);
    }
    /* foreign branches: another format id, another TM id, not xatm at all */
    snprintf(foreign_fmt, sizeof foreign_fmt, "xatm:0000abcd:%s.1.1:pg", rmt_tm_id);
    snprintf(foreign_tm, sizeof foreign_tm, "xatm:%08x:o%s.1.1:pg", RMT_FORMAT_ID, rmt_tm_id);
    snprintf(foreign_plain, sizeof foreign_plain, "plain_%s", rmt_tm_id);
    const char *foreign[3] = {foreign_fmt, foreign_tm, foreign_plain};
    for (int i = 0; i < 3; i++) {
        admin_q("BEGIN");
        admin_q("INSERT INTO %s VALUES (%d, 1)", table, 200 + i);
        admin_q("PREPARE TRANSACTION '%s'", foreign[i]);
    }

    RMT_CHECK_RECOVER(a, rmt_tm_id, ours, 2, 2, 2);
    /* another TM id sees none of ours: exactly the foreign_tm branch */
    char other[24];
    snprintf(other, sizeof other, "o%s", rmt_tm_id);
    RMT_CHECK_RECOVER(a, other, ours, 2, 1, 0);

    for (int i = 0; i < 3; i++) admin_q("ROLLBACK PREPARED '%s'", foreign[i]);
    for (int i = 0; i < 2; i++) CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &ours[i]), XATM_XA_OK);
    RMT_CHECK_RECOVER(a, rmt_tm_id, ours, 2, 0, 0);
    xatm_rm_close(a);
    xatm_rm_close(b);
}

static void test_one_phase(void)
{
    xatm_rm_conn *a = open_pg();
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (5, 50)", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT_ONE_PHASE, &x), XATM_XA_OK);
    CHECK_INT(row_v(5), 50);
    CHECK_INT(prepared_count(&x), 0);

    /* a failed transaction answers COMMIT with ROLLBACK: XA_RBROLLBACK */
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 51 WHERE id = 5", table), XATM_XA_OK);
    PQclear(PQexec(xatm_rm_native(a), "SELECT 1/0"));
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT_ONE_PHASE, &y), XATM_XA_RBROLLBACK);
    CHECK_INT(row_v(5), 50);
    CHECK_INT(PQtransactionStatus(xatm_rm_native(a)), PQTRANS_IDLE);

    /* a deferred constraint failing at COMMIT */
    xatm_xid z = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &z), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 52 WHERE id = 5", table), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (8), (8)", dtable), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT_ONE_PHASE, &z), XATM_XA_RBROLLBACK);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "23505");
    CHECK_INT(row_v(5), 50);
    xatm_rm_close(a);
}

static void test_rollback(void)
{
    xatm_rm_conn *a = open_pg(), *b = open_pg();
    /* active */
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (6, 60)", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &x), XATM_XA_OK);
    CHECK_INT(row_v(6), -1);
    CHECK_INT(PQtransactionStatus(xatm_rm_native(a)), PQTRANS_IDLE);
    /* prepared, from another session */
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (6, 61)", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_ROLLBACK, &y), XATM_XA_OK);
    CHECK_INT(prepared_count(&y), 0);
    CHECK_INT(row_v(6), -1);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_ROLLBACK, &y), XATM_XAER_NOTA);
    /* START twice is a protocol error */
    xatm_xid z = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &z), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &z), XATM_XAER_PROTO);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &z), XATM_XA_OK);
    xatm_rm_close(a);
    xatm_rm_close(b);
}

static void test_can_commit(void)
{
    xatm_rm_conn *a = open_pg();
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (9, 90)", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &x), XATM_XA_OK);
    CHECK_INT(PQtransactionStatus(xatm_rm_native(a)), PQTRANS_INTRANS); /* nothing durable */
    CHECK_INT(prepared_count(&x), 0);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &x), XATM_XA_OK);
    CHECK_INT(row_v(9), 90);

    /* a deferred constraint violated: CAN_COMMIT says no and the branch is rolled back */
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 91 WHERE id = 9", table), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (9), (9)", dtable), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &y), XATM_XA_RBROLLBACK);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "SET CONSTRAINTS");
    CHECK_INT(PQtransactionStatus(xatm_rm_native(a)), PQTRANS_IDLE);
    CHECK_INT(row_v(9), 90);

    /* marked failed */
    xatm_xid z = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &z), XATM_XA_OK);
    xatm_rm_mark_failed(a);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &z), XATM_XA_RBROLLBACK);

    /* a statement timeout while checking: 57014 -> XA_RBTIMEOUT. The check waits for
     * another transaction holding the same (deferred) unique key. */
    PQclear(PQexec(admin, "BEGIN"));
    admin_q("INSERT INTO %s VALUES (10)", dtable);
    xatm_xid v = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &v), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "SET LOCAL statement_timeout = 300"), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (10)", dtable), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &v), XATM_XA_RBTIMEOUT);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "57014");
    CHECK_INT(PQtransactionStatus(xatm_rm_native(a)), PQTRANS_IDLE);
    PQclear(PQexec(admin, "ROLLBACK"));
    xatm_rm_close(a);
}

/* A session whose blocking calls give up after 3 s: a lookup that waited for a lock
 * would fail (XAER_RMFAIL) instead of hanging the test. */
static xatm_rm_conn *open_bounded(void)
{
    xatm_rm_open_options o = {.call_timeout_ms = 3000};
    xatm_rm_conn *c = NULL;
    char err[1024];
    int rc = xatm_rm_open_ex(&cfg, &o, &c, err, sizeof err);
    CHECK_INT(rc, XATM_XA_OK);
    if (rc != XATM_XA_OK) {
        fprintf(stderr, "FAIL: %s\n", err);
        exit(1);
    }
    return c;
}

static void test_markers(void)
{
    xatm_rm_conn *a = open_pg(), *b = open_bounded();
    uint64_t took = 0;
    CHECK_INT(xatm_rm_markers_ensure(b), XATM_XA_OK); /* idempotent */
    CHECK_INT(xatm_rm_markers_ensure(b), XATM_XA_OK);
    CHECK_STR(admin_q("SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY "
                      "ordinal_position) FROM information_schema.columns WHERE table_name = "
                      "'xatm_markers'"),
              "gtrid:character varying,rm:character varying,created:timestamp with time zone");

    /* the marker of a committed branch: invisible while open and prepared, then visible */
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (30, 30)", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &x), XATM_XA_OK);
    CHECK_INT(rmt_markers(b, x.gtrid, NULL, &took), 0);
    CHECK(took < 1000);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XA_OK);
    CHECK_INT(rmt_markers(b, x.gtrid, NULL, &took), 0); /* prepared: not seen, no wait */
    CHECK(took < 1000);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &x), XATM_XA_OK);
    CHECK_INT(rmt_markers(b, x.gtrid, "pg", NULL), 1);
    CHECK_INT(rmt_markers(b, x.gtrid, "my", NULL), 0);
    CHECK_INT(row_v(30), 30);

    /* rolled back after prepare, and without prepare: no marker */
    xatm_xid y = new_xid(), z = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_ROLLBACK, &y), XATM_XA_OK); /* from another session */
    CHECK_INT(rmt_markers(b, y.gtrid, NULL, NULL), 0);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &z), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &z), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &z), XATM_XA_OK);
    CHECK_INT(rmt_markers(b, z.gtrid, NULL, NULL), 0);

    /* delete: committed markers go; a prepared neighbour neither blocks it nor is lost */
    xatm_xid w = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &w), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &w), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &w), XATM_XA_OK);
    const char *del[] = {x.gtrid, y.gtrid, w.gtrid};
    uint64_t t0 = t_now_ms();
    CHECK_INT(xatm_rm_markers_delete(b, del, 3), XATM_XA_OK);
    CHECK(t_now_ms() - t0 < 1000);
    CHECK_INT(rmt_markers(b, x.gtrid, NULL, NULL), 0);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &w), XATM_XA_OK);
    CHECK_INT(rmt_markers(b, w.gtrid, "pg", NULL), 1);
    CHECK_INT(xatm_rm_markers_delete(b, del + 2, 1), XATM_XA_OK);
    CHECK_INT(rmt_markers(b, w.gtrid, NULL, NULL), 0);

    /* batches: more gtrids than one statement takes */
    enum { MANY = XATM_MARKER_BATCH * 2 + 5 };
    static char many[MANY][XATM_GTRID_MAX + 1];
    const char *manyp[MANY];
    for (int i = 0; i < MANY; i++) {
        snprintf(many[i], sizeof many[i], "%s.1.%d", rmt_tm_id, 900000 + i);
        manyp[i] = many[i];
        admin_q("INSERT INTO xatm_markers (gtrid, rm) VALUES ('%s', 'pg')", many[i]);
    }
    CHECK_STR(admin_q("SELECT count(*) FROM xatm_markers WHERE gtrid LIKE '%s.1.9_____'",
                      rmt_tm_id), "205");
    CHECK_INT(xatm_rm_markers_delete(b, manyp, MANY), XATM_XA_OK);
    CHECK_STR(admin_q("SELECT count(*) FROM xatm_markers WHERE gtrid LIKE '%s.1.9_____'",
                      rmt_tm_id), "0");

    /* arguments: not an id, or a session with a transaction open */
    const char *bad[] = {"x'; DROP TABLE xatm_markers; --"};
    CHECK_INT(xatm_rm_markers_delete(b, bad, 1), XATM_XAER_INVAL);
    CHECK_INT(rmt_markers(b, "", NULL, NULL), -1);
    xatm_xid v = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &v), XATM_XA_OK);
    CHECK_INT(xatm_rm_markers_find(a, v.gtrid, NULL, NULL), XATM_XAER_INVAL);
    CHECK_INT(rmt_markers(a, v.gtrid, NULL, NULL), -1);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "a transaction is open");
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &v), XATM_XA_OK);
    xatm_rm_close(a);
    xatm_rm_close(b);
}

/* Without the marker table, CAN_COMMIT votes no and says why. Runs in a schema of its
 * own, first on the search path, that holds a table of this name only when asked. */
/* Opens a plain libpq session (for a second, foreign transaction). */
static PGconn *raw_session(void)
{
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "host=%s port=%u user=%s password=%s dbname=%s",
             cfg.host, (unsigned)cfg.port, cfg.user, cfg.password, cfg.database);
    PGconn *h = PQconnectdb(conninfo);
    if (PQstatus(h) != CONNECTION_OK) {
        fprintf(stderr, "FAIL: cannot connect: %s\n", PQerrorMessage(h));
        exit(1);
    }
    PQsetNoticeProcessor(h, quiet, NULL);
    return h;
}

/* The outcome column of gtrid's decision row, "" when there is none. */
static const char *decision_row(const char *gtrid)
{
    return admin_q("SELECT coalesce((SELECT outcome FROM xatm_decisions WHERE gtrid = '%s'), '')",
                   gtrid);
}

/* resolve on b while h holds an uncommitted row of gtrid and ends its transaction with
 * `end` after ~0.5 s: resolve waits for it, then sees its outcome. */
static void resolve_after_wait(xatm_rm_conn *b, const char *gtrid, const char *end,
                               enum xatm_decision want)
{
    PGconn *h = raw_session();
    char sql[256];
    snprintf(sql, sizeof sql, "BEGIN; INSERT INTO xatm_decisions (gtrid, outcome) VALUES ('%s', 'C')",
             gtrid);
    PQclear(PQexec(h, sql));
    snprintf(sql, sizeof sql, "SELECT pg_sleep(0.5); %s", end);
    CHECK(PQsendQuery(h, sql) == 1);
    enum xatm_decision d = 0;
    uint64_t t0 = t_now_ms();
    CHECK_INT(xatm_rm_decision_resolve(b, gtrid, 5000, &d), XATM_XA_OK);
    uint64_t took = t_now_ms() - t0;
    CHECK_INT(d, want);
    CHECK(took >= 300); /* it waited for h's transaction */
    for (PGresult *r; (r = PQgetResult(h));) PQclear(r);
    PQfinish(h);
}

/* Collects gtrids (xatm_rm_decisions_old_commits). */
struct seen_rows {
    char g[64][XATM_GTRID_MAX + 1]; /* the first 64 seen */
    size_t n;                       /* entries used */
};

static void seen_row(const char *gtrid, void *arg)
{
    struct seen_rows *s = arg;
    if (s->n < 64) snprintf(s->g[s->n++], sizeof s->g[0], "%s", gtrid);
}

static bool seen_has(const struct seen_rows *s, const char *gtrid)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->g[i], gtrid)) return true;
    return false;
}

/* RMT_CHECK_MAX_EPOCH's statements, on the admin session. */
static void admin_sql(const char *sql)
{
    admin_q("%s", sql);
}

/* Decision rows: the decider's commit (COMMIT_DECIDING) and recovery's resolve / delete /
 * sweep, including the race the primary key decides (docs/protocols.md). */
static void test_decisions(void)
{
    xatm_rm_conn *a = open_pg(), *b = open_bounded();
    CHECK_INT(xatm_rm_decisions_ensure(b), XATM_XA_OK);
    CHECK_INT(xatm_rm_decisions_ensure(b), XATM_XA_OK); /* idempotent */

    /* the decider commits: its work and its commit row, in one transaction */
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (70, 700)", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT_DECIDING, &x), XATM_XA_OK);
    CHECK_INT(row_v(70), 700);
    CHECK_STR(decision_row(x.gtrid), "C");
    enum xatm_decision d = 0;
    CHECK_INT(xatm_rm_decision_resolve(b, x.gtrid, 500, &d), XATM_XA_OK);
    CHECK_INT(d, XATM_DECISION_COMMITTED);
    CHECK_STR(decision_row(x.gtrid), "C"); /* resolve never overwrites */

    /* a decider that did nothing yet (deferred BEGIN): the row is its only write */
    xatm_xid e = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &e), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT_DECIDING, &e), XATM_XA_OK);
    CHECK_STR(decision_row(e.gtrid), "C");

    /* recovery first: no row -> the abort row is inserted; the decider's commit then
     * fails on the duplicate key and rolls its work back */
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_decision_resolve(b, y.gtrid, 500, &d), XATM_XA_OK);
    CHECK_INT(d, XATM_DECISION_ABORTED);
    CHECK_STR(decision_row(y.gtrid), "A");
    CHECK_INT(xatm_rm_decision_resolve(b, y.gtrid, 500, &d), XATM_XA_OK); /* again: same */
    CHECK_INT(d, XATM_DECISION_ABORTED);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (71, 710)", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT_DECIDING, &y), XATM_XA_RBROLLBACK);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "23505");
    CHECK_CONTAINS(xatm_rm_errmsg(a), "recovery had already decided abort");
    CHECK_INT(row_v(71), -1);
    CHECK_INT(PQtransactionStatus(xatm_rm_native(a)), PQTRANS_IDLE);
    CHECK_STR(decision_row(y.gtrid), "A");

    /* a failed transaction never inserts its row */
    xatm_xid f = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &f), XATM_XA_OK);
    PQclear(PQexec(xatm_rm_native(a), "SELECT 1/0"));
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT_DECIDING, &f), XATM_XA_RBROLLBACK);
    CHECK_STR(decision_row(f.gtrid), "");

    /* an uncommitted row held by another transaction: BUSY at the lock timeout, and the
     * wait-then-see behaviour when that transaction ends (committed / rolled back) */
    xatm_xid g = new_xid();
    PGconn *h = raw_session();
    char sql[256];
    snprintf(sql, sizeof sql, "BEGIN; INSERT INTO xatm_decisions (gtrid, outcome) VALUES ('%s', 'C')",
             g.gtrid);
    PQclear(PQexec(h, sql));
    uint64_t t0 = t_now_ms();
    CHECK_INT(xatm_rm_decision_resolve(b, g.gtrid, 300, &d), XATM_XA_OK);
    CHECK_INT(d, XATM_DECISION_BUSY);
    CHECK(t_now_ms() - t0 >= 250);
    CHECK(xatm_rm_alive(b));
    /* the lock timeout was only for that statement */
    CHECK_STR(xatm_rm_exec(b, "SELECT 1", NULL) == XATM_XA_OK ? "ok" : "failed", "ok");
    PQclear(PQexec(h, "ROLLBACK"));
    PQfinish(h);
    CHECK_INT(xatm_rm_decision_resolve(b, g.gtrid, 300, &d), XATM_XA_OK);
    CHECK_INT(d, XATM_DECISION_ABORTED);
    xatm_xid w1 = new_xid(), w2 = new_xid();
    resolve_after_wait(b, w1.gtrid, "COMMIT", XATM_DECISION_COMMITTED);
    resolve_after_wait(b, w2.gtrid, "ROLLBACK", XATM_DECISION_ABORTED);
    CHECK_STR(decision_row(w1.gtrid), "C");
    CHECK_STR(decision_row(w2.gtrid), "A");

    /* delete removes commit rows only; sweep removes abort rows past the retention */
    const char *del[] = {x.gtrid, e.gtrid, y.gtrid, w1.gtrid};
    CHECK_INT(xatm_rm_decisions_delete(b, del, 4), XATM_XA_OK);
    CHECK_STR(decision_row(x.gtrid), "");
    CHECK_STR(decision_row(e.gtrid), "");
    CHECK_STR(decision_row(w1.gtrid), "");
    CHECK_STR(decision_row(y.gtrid), "A");
    CHECK_INT(xatm_rm_decisions_delete(b, del, 0), XATM_XA_OK);
    const char *bad[] = {"x'; DROP TABLE xatm_decisions; --"};
    CHECK_INT(xatm_rm_decisions_delete(b, bad, 1), XATM_XAER_INVAL);
    CHECK_INT(xatm_rm_decision_resolve(b, bad[0], 100, &d), XATM_XAER_INVAL);
    uint64_t n = 99;
    admin_q("UPDATE xatm_decisions SET created = now() - interval '2 hours' WHERE gtrid = '%s'",
            y.gtrid);
    char own[32], other[32];
    snprintf(own, sizeof own, "%s.", rmt_tm_id);
    snprintf(other, sizeof other, "%s_x.", rmt_tm_id);
    CHECK_INT(xatm_rm_decisions_sweep(b, other, 3600, &n), XATM_XA_OK); /* another TM's */
    CHECK_INT(n, 0);
    CHECK_STR(decision_row(y.gtrid), "A");
    CHECK_INT(xatm_rm_decisions_sweep(b, own, 3600, &n), XATM_XA_OK);
    CHECK(n >= 1);
    CHECK_STR(decision_row(y.gtrid), "");
    CHECK_STR(decision_row(w2.gtrid), "A"); /* young: kept */
    /* old commit rows are listed (for xatmd's sweep), young ones and abort rows are not */
    xatm_xid o1 = new_xid(), o2 = new_xid();
    admin_q("INSERT INTO xatm_decisions (gtrid, outcome, created) VALUES ('%s', 'C', now() - "
            "interval '3 hours'), ('%s', 'C', now())", o1.gtrid, o2.gtrid);
    admin_q("UPDATE xatm_decisions SET created = now() - interval '3 hours' WHERE gtrid = '%s'",
            w2.gtrid);
    struct seen_rows sr = {0};
    CHECK_INT(xatm_rm_decisions_old_commits(b, other, 3600, 1000, seen_row, &sr), XATM_XA_OK);
    CHECK(!seen_has(&sr, o1.gtrid));
    CHECK_INT(xatm_rm_decisions_old_commits(b, own, 3600, 1000, seen_row, &sr), XATM_XA_OK);
    CHECK(seen_has(&sr, o1.gtrid));
    CHECK(!seen_has(&sr, o2.gtrid));
    CHECK(!seen_has(&sr, w2.gtrid));

    /* the highest epoch of a TM's decision rows (of either outcome) and marker rows */
    RMT_CHECK_MAX_EPOCH(b, xatm_rm_decisions_max_epoch, "xatm_decisions", "(gtrid, outcome)",
                        "'C'", "'A'", admin_sql);
    CHECK_INT(xatm_rm_markers_ensure(b), XATM_XA_OK);
    RMT_CHECK_MAX_EPOCH(b, xatm_rm_markers_max_epoch, "xatm_markers", "(gtrid, rm)", "'pg'",
                        "'my'", admin_sql);

    /* blocking calls refuse a session with a branch open */
    xatm_xid v = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &v), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "SELECT 1"), XATM_XA_OK);
    CHECK_INT(xatm_rm_decision_resolve(a, v.gtrid, 100, &d), XATM_XAER_PROTO);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &v), XATM_XA_OK);

    admin_q("DELETE FROM xatm_decisions WHERE gtrid LIKE '%s.%%'", rmt_tm_id);
    admin_q("DELETE FROM %s WHERE id IN (70, 71)", table);
    xatm_rm_close(a);
    xatm_rm_close(b);
}

static void test_marker_table_missing(void)
{
    xatm_rm_conn *a = open_pg();
    char schema[64];
    snprintf(schema, sizeof schema, "xatm_nomark_%ld", (long)getpid());
    admin_q("DROP SCHEMA IF EXISTS %s CASCADE", schema);
    admin_q("CREATE SCHEMA %s", schema);
    admin_q("CREATE TABLE %s.xatm_markers (gtrid int)", schema); /* the wrong shape */
    xatm_xid x = new_xid();
    CHECK_INT(rmt_exec(a, "SET search_path = %s", schema), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "INSERT INTO public.%s VALUES (31, 31)", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &x), XATM_XA_RBROLLBACK);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "3PC marker insert (INSERT INTO xatm_markers) failed");
    CHECK_INT(PQtransactionStatus(xatm_rm_native(a)), PQTRANS_IDLE);
    admin_q("DROP TABLE %s.xatm_markers", schema);
    /* no table at all on the path: 42P01 and the hint */
    CHECK_INT(rmt_exec(a, "SET search_path = %s", schema), XATM_XA_OK);
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &y), XATM_XA_RBROLLBACK);
    printf("pg CAN_COMMIT without the marker table: %s\n", xatm_rm_errmsg(a));
    CHECK_CONTAINS(xatm_rm_errmsg(a), "SQLSTATE 42P01");
    CHECK_CONTAINS(xatm_rm_errmsg(a), "hint: xatmd creates the table at start-up");
    CHECK_INT(row_v(31), -1);
    admin_q("DROP SCHEMA %s CASCADE", schema);
    xatm_rm_close(a);
}

static void test_parallel(void)
{
    xatm_rm_conn *c[3] = {open_pg(), open_pg(), NULL};
    xatm_xid x[3] = {new_xid(), new_xid(), new_xid()};
    enum xatm_rm_op ops[3] = {XATM_RM_OP_PREPARE, XATM_RM_OP_PREPARE, XATM_RM_OP_PREPARE};
    int rc[3] = {-99, -99, -99};
    for (int i = 0; i < 2; i++) {
        CHECK_INT(xatm_rm_run(c[i], XATM_RM_OP_START, &x[i]), XATM_XA_OK);
        CHECK_INT(rmt_exec(c[i], "INSERT INTO %s VALUES (%d, %d)", table, 20 + i, 20 + i), XATM_XA_OK);
    }
    xatm_rm_run_parallel(c, ops, x, rc, 3, 10000);
    CHECK_INT(rc[0], XATM_XA_OK);
    CHECK_INT(rc[1], XATM_XA_OK);
    CHECK_INT(rc[2], -99); /* NULL connection skipped */
    CHECK_INT(prepared_count(&x[0]), 1);
    CHECK_INT(prepared_count(&x[1]), 1);
    ops[0] = ops[1] = XATM_RM_OP_COMMIT;
    xatm_rm_run_parallel(c, ops, x, rc, 3, 0);
    CHECK_INT(rc[0], XATM_XA_OK);
    CHECK_INT(rc[1], XATM_XA_OK);
    CHECK_INT(row_v(20), 20);
    CHECK_INT(row_v(21), 21);

    /* the deadline: c[0]'s check waits on a key another transaction holds; it is
     * abandoned with XAER_RMFAIL and its connection closed; c[1] is unaffected */
    xatm_xid y[2] = {new_xid(), new_xid()};
    PQclear(PQexec(admin, "BEGIN"));
    admin_q("INSERT INTO %s VALUES (11)", dtable);
    for (int i = 0; i < 2; i++) CHECK_INT(xatm_rm_run(c[i], XATM_RM_OP_START, &y[i]), XATM_XA_OK);
    CHECK_INT(rmt_exec(c[0], "INSERT INTO %s VALUES (11)", dtable), XATM_XA_OK);
    CHECK_INT(rmt_exec(c[1], "INSERT INTO %s VALUES (22, 22)", table), XATM_XA_OK);
    uint64_t pid0 = xatm_rm_caps_of(c[0])->session_id;
    ops[0] = XATM_RM_OP_CAN_COMMIT;
    ops[1] = XATM_RM_OP_PREPARE;
    uint64_t t0 = t_now_ms();
    xatm_rm_run_parallel(c, ops, y, rc, 2, 300);
    uint64_t took = t_now_ms() - t0;
    CHECK_INT(rc[0], XATM_XAER_RMFAIL);
    CHECK_CONTAINS(xatm_rm_errmsg(c[0]), "no answer within 300 ms");
    CHECK_INT(rc[1], XATM_XA_OK);
    CHECK(took >= 290 && took < 3000);
    CHECK(!xatm_rm_alive(c[0]));
    CHECK_INT(xatm_rm_run(c[0], XATM_RM_OP_ROLLBACK, &y[0]), XATM_XAER_RMFAIL);
    PQclear(PQexec(admin, "ROLLBACK"));
    /* the server ended the abandoned session, and its transaction with it */
    CHECK(rmt_wait_gone(c[1], pid0, 5000, 10) >= 0);
    CHECK_INT(xatm_rm_run(c[1], XATM_RM_OP_COMMIT, &y[1]), XATM_XA_OK);
    CHECK_INT(row_v(22), 22);
    xatm_rm_close(c[0]);
    xatm_rm_close(c[1]);
}

static void test_fence(void)
{
    xatm_rm_conn *a = open_pg(), *b = open_pg();
    uint64_t pid = xatm_rm_caps_of(a)->session_id;
    CHECK_INT(xatm_rm_session_alive(b, pid), 1);
    CHECK_INT(xatm_rm_fence(b, xatm_rm_caps_of(b)->session_id), XATM_XAER_INVAL);
    uint64_t t0 = t_now_ms();
    CHECK_INT(xatm_rm_fence(b, pid), XATM_XA_OK);
    printf("pg fence: backend gone %llu ms after pg_terminate_backend\n",
           (unsigned long long)(t_now_ms() - t0));
    CHECK_INT(xatm_rm_session_alive(b, pid), 0);
    /* the fenced session notices at its next operation. START of a session whose PGconn
     * was never handed out sends nothing (BEGIN waits for the first statement): it looks
     * at what the server left on the socket, its FATAL and end of file. Those are written
     * when the backend closes its socket, a moment after it left pg_stat_activity, so the
     * test gives them up to 5 s to arrive (an application racing this moment gets the
     * loss at its first statement instead) */
    xatm_xid x = new_xid();
    int rc = XATM_XA_OK;
    for (int i = 0; i < 500 && rc == XATM_XA_OK; i++) {
        rc = xatm_rm_run(a, XATM_RM_OP_START, &x);
        if (rc != XATM_XA_OK) break;
        CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &x), XATM_XA_OK); /* nothing sent */
        poll(NULL, 0, 10);
    }
    CHECK_INT(rc, XATM_XAER_RMFAIL);
    CHECK(!xatm_rm_alive(a));
    CHECK_INT(xatm_rm_exec(a, "SELECT 1", NULL), XATM_XAER_RMFAIL);
    /* fencing a session that is already gone is fine */
    CHECK_INT(xatm_rm_fence(b, pid), XATM_XA_OK);
    xatm_rm_close(a);
    xatm_rm_close(b);
}

static void test_open_failures(void)
{
    char err[1024];
    xatm_rm_conn *c = (xatm_rm_conn *)(uintptr_t)1; /* open must reset it to NULL */
    RMT_CHECK_OPEN_REFUSED(&cfg, "Connection refused");

    /* the test server trusts every local login (initdb --auth=trust), so a wrong
     * password cannot be refused there; an unknown role is, with the server's reason */
    char user[64];
    snprintf(user, sizeof user, "nosuch_%s", rmt_tm_id);
    xatm_rm_config bad = cfg;
    bad.user = user;
    CHECK_INT(xatm_rm_open(&bad, &c, err, sizeof err), XATM_XAER_RMFAIL);
    CHECK(c == NULL);
    CHECK_CONTAINS(err, "does not exist");
    CHECK_CONTAINS(err, user);
    CHECK_CONTAINS(err, rmt_where(&cfg));

    /* a config of no known type */
    bad = cfg;
    bad.type = (enum xatm_rm_type)9;
    CHECK_INT(xatm_rm_open(&bad, &c, err, sizeof err), XATM_XAER_INVAL);
    CHECK_CONTAINS(err, "unknown RM type");
}

static void test_async_api(void)
{
    /* the raw async API: begin, wait, continue; misuse is refused (the PGconn is out
     * first, so START sends its BEGIN at once instead of deferring it) */
    xatm_rm_conn *a = open_pg();
    CHECK(xatm_rm_native(a) != NULL);
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_op_continue(a, POLLIN), XATM_XAER_PROTO);
    int rc = xatm_rm_op_begin(a, XATM_RM_OP_START, &x);
    CHECK_INT(rc, XATM_RM_PENDING);
    CHECK_INT(xatm_rm_op_begin(a, XATM_RM_OP_START, &x), XATM_XAER_PROTO);
    CHECK_INT(xatm_rm_exec(a, "SELECT 1", NULL), XATM_XAER_PROTO);
    rc = RMT_DRIVE(a, rc, POLLIN); /* every wait named the socket, for reading */
    CHECK_INT(rc, XATM_XA_OK);
    CHECK_INT(PQtransactionStatus(xatm_rm_native(a)), PQTRANS_INTRANS);
    CHECK(!PQisnonblocking(xatm_rm_native(a))); /* the application's mode is restored */
    /* closing with an operation in flight is safe */
    CHECK_INT(xatm_rm_op_begin(a, XATM_RM_OP_ROLLBACK, &x), XATM_RM_PENDING);
    xatm_rm_close(a);
    CHECK_STR(xatm_xa_rc_name(XATM_XAER_NOTA), "XAER_NOTA");
    CHECK_STR(xatm_xa_rc_name(XATM_XA_RDONLY), "XA_RDONLY");
    CHECK_STR(xatm_xa_rc_name(12345), "XA_UNKNOWN");
    CHECK_STR(xatm_rm_errmsg(NULL), "");
}

/* A session with a call time limit (xatmd's recovery sessions) never waits longer than it
 * for an answer: a slow statement, or a backend that is stopped outright (SIGSTOP: the
 * kernel still keeps the connection up), ends with XAER_RMFAIL and the session lost. */
static void test_call_timeout(void)
{
    char err[1024];
    xatm_rm_conn *c = NULL;
    xatm_rm_open_options opts = {.call_timeout_ms = 1000};
    CHECK_INT(xatm_rm_open_ex(&cfg, &opts, &c, err, sizeof err), XATM_XA_OK);
    if (!c) return;
    CHECK_INT(xatm_rm_exec(c, "SELECT 1", NULL), XATM_XA_OK);
    uint64_t t0 = t_now_ms();
    CHECK_INT(xatm_rm_exec(c, "SELECT pg_sleep(5)", NULL), XATM_XAER_RMFAIL);
    uint64_t took = t_now_ms() - t0;
    CHECK(took >= 900 && took < 3000);
    CHECK_CONTAINS(xatm_rm_errmsg(c), "no answer within 1000 ms");
    CHECK(!xatm_rm_alive(c));
    xatm_rm_close(c);

    c = NULL;
    CHECK_INT(xatm_rm_open_ex(&cfg, &opts, &c, err, sizeof err), XATM_XA_OK);
    if (!c) return;
    pid_t backend = (pid_t)xatm_rm_caps_of(c)->session_id;
    CHECK(backend > 0 && kill(backend, SIGSTOP) == 0);
    t0 = t_now_ms();
    CHECK_INT(xatm_rm_recover(c, RMT_FORMAT_ID, rmt_tm_id, rmt_collect, NULL), XATM_XAER_RMFAIL);
    took = t_now_ms() - t0;
    kill(backend, SIGCONT);
    printf("postgresql call timeout of 1000 ms: recover on a stopped backend gave up after "
           "%llu ms\n",
           (unsigned long long)took);
    CHECK(took >= 900 && took < 3000);
    xatm_rm_close(c);
}

/* The backend's state in pg_stat_activity ("idle", "idle in transaction", ...). */
static const char *backend_state(xatm_rm_conn *c)
{
    return admin_q("SELECT state FROM pg_stat_activity WHERE pid = %llu",
                   (unsigned long long)xatm_rm_caps_of(c)->session_id);
}

/* On a session whose PGconn was never handed out, START sends nothing: BEGIN goes with
 * the branch's first statement ("BEGIN; <sql>", one round trip). */
static void test_deferred_begin(void)
{
    xatm_rm_conn *a = open_pg();
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_STR(backend_state(a), "idle"); /* nothing sent yet */
    CHECK_INT(rmt_exec(a, "INSERT INTO %s VALUES (60, 1)", table), XATM_XA_OK);
    CHECK_STR(backend_state(a), "idle in transaction");
    CHECK_INT(row_v(60), -1); /* inside the branch, not committed */
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 2 WHERE id = 60", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &x), XATM_XA_OK);
    /* a first statement longer than the adapter's stack buffer for "BEGIN; <sql>" */
    char *big = malloc(3000);
    CHECK(big != NULL);
    if (big) {
        int k = snprintf(big, 3000, "UPDATE %s SET v = 2 WHERE id = 60 /* ", table);
        memset(big + k, 'x', 2900 - (size_t)k);
        memcpy(big + 2900, " */", 4);
        x = new_xid();
        CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
        CHECK_INT(xatm_rm_exec(a, big, NULL), XATM_XA_OK);
        CHECK_STR(backend_state(a), "idle in transaction");
        free(big);
    }
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XA_OK);
    CHECK_INT(prepared_count(&x), 1);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &x), XATM_XA_OK);
    CHECK_INT(row_v(60), 2);

    /* a branch with no statement never reached the server: read-only, nothing prepared */
    xatm_xid e = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &e), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &e), XATM_XA_RDONLY);
    CHECK_INT(prepared_count(&e), 0);
    xatm_xid e1 = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &e1), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT_ONE_PHASE, &e1), XATM_XA_OK);
    xatm_xid e2 = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &e2), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &e2), XATM_XA_OK);
    CHECK_STR(backend_state(a), "idle");

    /* a syntax error: PostgreSQL parses the whole string first, so neither BEGIN nor the
     * statement ran; the branch is failed and votes no, the next one is clean */
    xatm_xid s = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &s), XATM_XA_OK);
    CHECK(rmt_exec(a, "UPDAT %s SET v = 3 WHERE id = 60", table) != XATM_XA_OK);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "42601");
    CHECK_STR(backend_state(a), "idle");
    /* a later statement of the failed branch runs in it, and is rolled back with it */
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 4 WHERE id = 60", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &s), XATM_XA_RBROLLBACK);
    CHECK_INT(prepared_count(&s), 0);
    CHECK_INT(row_v(60), 2);
    CHECK_STR(backend_state(a), "idle");
    xatm_xid s2 = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &s2), XATM_XA_OK);
    CHECK(rmt_exec(a, "UPDAT %s SET v = 3 WHERE id = 60", table) != XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &s2), XATM_XA_RBROLLBACK); /* nothing ran */
    CHECK_STR(backend_state(a), "idle");

    /* 3PC: CAN_COMMIT of an empty branch opens it with its marker insert */
    xatm_xid m = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &m), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &m), XATM_XA_OK);
    CHECK_STR(backend_state(a), "idle in transaction");
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &m), XATM_XA_OK);
    CHECK_INT(prepared_count(&m), 1);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &m), XATM_XA_OK);
    CHECK_INT(prepared_count(&m), 0);

    /* native() opens a deferred branch before handing the PGconn out; from then on START
     * sends BEGIN itself */
    xatm_xid n = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &n), XATM_XA_OK);
    PGconn *pg = xatm_rm_native(a);
    CHECK_INT(PQtransactionStatus(pg), PQTRANS_INTRANS);
    PQclear(PQexec(pg, "UPDATE xatm_no_op_check SET v = 0 WHERE false")); /* fails: no table */
    CHECK_INT(PQtransactionStatus(pg), PQTRANS_INERROR); /* it ran inside the branch */
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &n), XATM_XA_RBROLLBACK);
    xatm_xid n2 = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &n2), XATM_XA_OK);
    CHECK_INT(PQtransactionStatus(pg), PQTRANS_INTRANS);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &n2), XATM_XA_OK);
    admin_q("DELETE FROM %s WHERE id = 60", table);
    xatm_rm_close(a);
}

int main(void)
{
    rmt_init();
    cfg = rmt_config(XATM_RM_POSTGRESQL);
    snprintf(table, sizeof table, "xatm_rmpg_%ld", (long)getpid());
    snprintf(dtable, sizeof dtable, "xatm_rmpgd_%ld", (long)getpid());

    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "host=%s port=%u user=%s password=%s dbname=%s",
             cfg.host, (unsigned)cfg.port, cfg.user, cfg.password, cfg.database);
    admin = PQconnectdb(conninfo);
    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "FAIL: cannot connect to the test PostgreSQL: %s\n", PQerrorMessage(admin));
        PQfinish(admin);
        return 1;
    }
    PQsetNoticeProcessor(admin, quiet, NULL);
    admin_q("SET client_min_messages = error");
    admin_q("DROP TABLE IF EXISTS %s, %s", table, dtable);
    admin_q("CREATE TABLE %s (id int PRIMARY KEY, v int)", table);
    admin_q("CREATE TABLE %s (k int, UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)", dtable);
    /* the 3PC marker table, as xatmd creates it at start-up (CAN_COMMIT needs it) */
    xatm_rm_conn *setup = open_pg();
    CHECK_INT(xatm_rm_markers_ensure(setup), XATM_XA_OK);
    xatm_rm_close(setup);

    test_open_caps();
    test_caps_decision();
    test_two_phase_commit();
    test_prepare_failed_transaction();
    test_gid_length();
    test_unknown_gid();
    test_recover_filters();
    test_one_phase();
    test_rollback();
    test_can_commit();
    test_deferred_begin();
    test_markers();
    test_marker_table_missing();
    test_decisions();
    test_parallel();
    test_fence();
    test_open_failures();
    test_async_api();
    test_call_timeout();

    /* nothing of this run may be left prepared */
    CHECK_STR(admin_q("SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE '%%:%s.%%'", rmt_tm_id), "0");
    admin_q("DELETE FROM xatm_markers WHERE gtrid LIKE '%s.%%'", rmt_tm_id);
    admin_q("DROP TABLE IF EXISTS %s, %s", table, dtable);
    PQfinish(admin);
    return t_finish("rm_pg");
}
