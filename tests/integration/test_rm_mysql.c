/*
 * test_rm_mysql.c — the MySQL/MariaDB RM adapter (rm_mysql.c) against the throwaway
 * MariaDB of scripts/servers.sh: every MariaDB fact of ARCHITECTURE.md ("RM facts that
 * shape the adapters") asserted on the real server, and every operation of rm.h, plus
 * one parallel run that mixes a MariaDB and a PostgreSQL branch of one gtrid.
 *
 * The last test kills and restarts the MariaDB server (scripts/servers.sh, as the crash
 * tests do) to show that a session recorded before the restart is never taken for a new
 * connection that got the same id.
 *
 * Isolation: the table is named after this process's pid and every gtrid carries the TM
 * id "t<pid>", so concurrent or repeated runs never see each other's rows or branches.
 * Every branch a test prepares is finished before the test ends, foreign ones included.
 */
#include <mysql.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rm.h"
#include "rm_impl.h"
#include "rmtest.h"
#include "testutil.h"
#include "tmproc.h"
#include "xatm.h"

static xatm_rm_config cfg;    /* the test MariaDB, from XATM_TEST_MY_* */
static xatm_rm_config pg_cfg; /* the test PostgreSQL, for the mixed parallel run */
static char table[64];        /* id int primary key, v int; rows 1..30 with v = 0 */
static MYSQL *admin;          /* a plain Connector/C session for inspection and setup */

/* A fresh xid of this run (bqual "my"). */
static xatm_xid new_xid(void)
{
    return rmt_new_xid("my");
}

static xatm_rm_conn *open_my(void)
{
    return rmt_open(&cfg);
}

static MYSQL *raw_connect(void)
{
    MYSQL *m = mysql_init(NULL);
    if (!m || !mysql_real_connect(m, cfg.host, cfg.user, cfg.password, cfg.database, cfg.port,
                                  NULL, 0)) {
        fprintf(stderr, "FAIL: cannot connect to the test MariaDB: %s\n", m ? mysql_error(m) : "");
        exit(1);
    }
    return m;
}

/* Runs SQL on `m`; returns the first column of the first row (static buffer) or "";
 * exits when it fails (setup must work). */
static const char *raw_q(MYSQL *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *raw_q(MYSQL *m, const char *fmt, ...)
{
    static char out[256];
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    out[0] = '\0';
    if (mysql_query(m, sql) != 0) {
        fprintf(stderr, "FAIL: query failed: %s: %s\n", sql, mysql_error(m));
        exit(1);
    }
    MYSQL_RES *r = mysql_store_result(m);
    if (r) {
        MYSQL_ROW row = mysql_fetch_row(r);
        if (row && row[0]) snprintf(out, sizeof out, "%s", row[0]);
        mysql_free_result(r);
    }
    return out;
}

static int row_v(int id)
{
    return atoi(raw_q(admin, "SELECT COALESCE((SELECT v FROM %s WHERE id = %d), -1)", table, id));
}

/* How many times XA RECOVER lists x (0 or 1). */
static int prepared_count(const xatm_xid *x)
{
    int n = 0;
    char data[200];
    snprintf(data, sizeof data, "%s%s", x->gtrid, x->bqual);
    if (mysql_query(admin, "XA RECOVER") != 0) return -1;
    MYSQL_RES *r = mysql_store_result(admin);
    MYSQL_ROW row;
    while (r && (row = mysql_fetch_row(r)) != NULL)
        if (strtoull(row[0], NULL, 10) == x->format_id &&
            (size_t)atoi(row[1]) == strlen(x->gtrid) && !strcmp(row[3], data))
            n++;
    if (r) mysql_free_result(r);
    return n;
}

static bool is_rb(int rc)
{
    return rc >= XATM_XA_RBROLLBACK && rc <= XATM_XA_RBTIMEOUT;
}

/* Waits until session id is gone from the process list; returns the ms it took, or -1
 * (after printing what the server still shows). */
static long wait_gone(xatm_rm_conn *checker, uint64_t id)
{
    /* INFORMATION_SCHEMA.INNODB_TRX is a cache that InnoDB refreshes only when nobody has
     * read it for 0.1 s: polling faster would keep it stale for ever */
    long ms = rmt_wait_gone(checker, id, 10000, 150);
    if (ms >= 0) return ms;
    MYSQL *diag = raw_connect();
    fprintf(stderr, "session %llu still alive after 10 s: processlist=%s\n", (unsigned long long)id,
            raw_q(diag, "SELECT GROUP_CONCAT(CONCAT(ID, ':', COMMAND, ':', IFNULL(STATE, ''))) FROM information_schema.PROCESSLIST"));
    fprintf(stderr, "  innodb_trx=%s\n",
            raw_q(diag, "SELECT GROUP_CONCAT(CONCAT(trx_id, ':', trx_state, ':', trx_mysql_thread_id)) FROM information_schema.INNODB_TRX"));
    mysql_close(diag);
    return -1;
}

/* ---------------------------------------------------------------- tests */

static void test_open_caps(void)
{
    xatm_rm_conn *c = open_my();
    const xatm_rm_caps *caps = xatm_rm_caps_of(c);
    MYSQL *n = xatm_rm_native(c);
    CHECK_CONTAINS(caps->server_version, "MariaDB");
    CHECK(caps->version_num >= 100500);
    CHECK(!caps->detach_on_prepare); /* MariaDB detaches only at disconnect */
    CHECK_INT(caps->max_prepared, 0);
    CHECK_INT(caps->session_id, mysql_thread_id(n));
    CHECK_STR(raw_q(n, "SELECT @@autocommit"), "1");
    /* the server's run: its start and id, and the tag a session reference carries */
    CHECK(caps->server_started > 1500000000);
    CHECK_INT(caps->server_id, atoll(raw_q(n, "SELECT @@server_id")));
    CHECK_INT(caps->incarnation, xatm_rm__incarnation_tag(caps->server_started, caps->server_id));
    CHECK(caps->incarnation != 0 && caps->incarnation <= XATM_SESSION_TAG_MASK);
    uint64_t ref = xatm_rm_session_ref(c);
    CHECK_INT(xatm_session_ref_id(ref), caps->session_id);
    CHECK_INT(xatm_session_ref_tag(ref), caps->incarnation);
    /* another session of the same run reads the same start (exact, not +-1 s) */
    xatm_rm_conn *o = open_my();
    CHECK_INT(xatm_rm_caps_of(o)->server_started, caps->server_started);
    CHECK_INT(xatm_rm_caps_of(o)->incarnation, caps->incarnation);
    CHECK_INT(xatm_rm_session_alive(o, ref), 1);
    CHECK_INT(xatm_rm_session_alive(o, caps->session_id), 1); /* tag 0: this server */
    /* the checker's own session is never an AP's: not alive, never fenced */
    CHECK_INT(xatm_rm_session_alive(c, ref), 0);
    CHECK_INT(xatm_rm_session_alive(c, caps->session_id), 0);
    CHECK_INT(xatm_rm_fence(c, ref), XATM_XAER_INVAL);
    xatm_rm_close(o);
    CHECK_INT(xatm_rm__incarnation_tag(0, 0), xatm_rm__incarnation_tag(0, 0));
    CHECK(xatm_rm__incarnation_tag(1700000000, 1) != xatm_rm__incarnation_tag(1700000001, 1));
    CHECK(xatm_rm__incarnation_tag(1700000000, 1) != xatm_rm__incarnation_tag(1700000000, 2));
    CHECK(xatm_rm_alive(c));
    CHECK_STR(xatm_rm_ops_for(XATM_RM_MYSQL)->name, "mysql");
    xatm_rm_close(c);
}

static void test_caps_decision(void)
{
    char err[1024];
    bool d = true;
    CHECK_INT(xatm_rm__mysql_check_caps(&cfg, "10.11.19-MariaDB", 101119, "DEFAULT", "InnoDB",
                                        &d, err, sizeof err), XATM_XA_OK);
    CHECK(!d);
    CHECK_INT(xatm_rm__mysql_check_caps(&cfg, "10.4.30-MariaDB", 100430, "DEFAULT", "InnoDB",
                                        &d, err, sizeof err), XATM_XAER_RMERR);
    CHECK_CONTAINS(err, "MariaDB 10.5 or later");
    CHECK_INT(xatm_rm__mysql_check_caps(&cfg, "8.0.36", 80036, "DEFAULT", "InnoDB", &d, err,
                                        sizeof err), XATM_XA_OK);
    CHECK(d);
    CHECK_INT(xatm_rm__mysql_check_caps(&cfg, "8.0.28", 80028, "DEFAULT", "InnoDB", &d, err,
                                        sizeof err), XATM_XA_OK);
    CHECK(!d);
    CHECK_INT(xatm_rm__mysql_check_caps(&cfg, "5.6.51", 50651, "DEFAULT", "InnoDB", &d, err,
                                        sizeof err), XATM_XAER_RMERR);
    CHECK_CONTAINS(err, "MySQL 5.7 or later");
    CHECK_INT(xatm_rm__mysql_check_caps(&cfg, "10.11.19-MariaDB", 101119, NULL, "InnoDB", &d,
                                        err, sizeof err), XATM_XAER_RMERR);
    CHECK_CONTAINS(err, "InnoDB storage engine is not available");
    CHECK_INT(xatm_rm__mysql_check_caps(&cfg, "10.11.19-MariaDB", 101119, "NO", "InnoDB", &d,
                                        err, sizeof err), XATM_XAER_RMERR);
    CHECK_INT(xatm_rm__mysql_check_caps(&cfg, "10.11.19-MariaDB", 101119, "YES", "MyISAM", &d,
                                        err, sizeof err), XATM_XAER_RMERR);
    CHECK_CONTAINS(err, "default_storage_engine=InnoDB");
    CHECK_CONTAINS(err, "'my'");
}

/* Prepare on one session; the probed MariaDB 10.11 behaviour: another session cannot
 * finish the branch while the preparing one is connected (XAER_NOTA), and can once it
 * has gone. */
static void test_two_phase_and_detach(void)
{
    xatm_rm_conn *a = open_my(), *b = open_my();
    xatm_xid x = new_xid();
    uint64_t a_id = xatm_rm_caps_of(a)->session_id;
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 10 WHERE id = 1", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XA_OK);
    CHECK_INT(prepared_count(&x), 1); /* XA RECOVER lists it, attached or not */
    CHECK_INT(row_v(1), 0);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_COMMIT, &x), XATM_XAER_NOTA);
    CHECK_CONTAINS(xatm_rm_errmsg(b), "1397");
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_ROLLBACK, &x), XATM_XAER_NOTA);
    CHECK_INT(prepared_count(&x), 1); /* still there */
    xatm_rm_close(a);
    long ms = wait_gone(b, a_id);
    CHECK(ms >= 0);
    printf("mariadb: closed session left the process list after %ld ms\n", ms);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_COMMIT, &x), XATM_XA_OK);
    CHECK_INT(row_v(1), 10);
    CHECK_INT(prepared_count(&x), 0);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_COMMIT, &x), XATM_XAER_NOTA); /* retried: done */

    /* commit on the preparing session itself */
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(rmt_exec(b, "UPDATE %s SET v = 11 WHERE id = 1", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_PREPARE, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_COMMIT, &y), XATM_XA_OK);
    CHECK_INT(row_v(1), 11);
    /* XA START of an xid that exists elsewhere: XAER_DUPID */
    xatm_rm_conn *c = open_my();
    xatm_xid z = new_xid();
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_START, &z), XATM_XA_OK);
    /* nothing done, but the previous branch wrote through exec, unprobed, so the session's
     * counters moved since its last reading: the empty branch prepares (the safe side) */
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_PREPARE, &z), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_ROLLBACK, &z), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_START, &z), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_PREPARE, &z), XATM_XA_RDONLY); /* now: read-only */
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_START, &z), XATM_XA_OK);
    CHECK_INT(rmt_exec(b, "UPDATE %s SET v = 12 WHERE id = 1", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_PREPARE, &z), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(c, XATM_RM_OP_START, &z), XATM_XAER_DUPID);
    CHECK_CONTAINS(xatm_rm_errmsg(c), "1440");
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_ROLLBACK, &z), XATM_XA_OK);
    CHECK_INT(row_v(1), 11);
    xatm_rm_close(b);
    xatm_rm_close(c);
}

/* After a statement error (lock wait timeout, innodb_rollback_on_timeout=OFF) MariaDB
 * would prepare and commit the partial work: the adapter must vote no. */
static void test_statement_error_votes_no(void)
{
    MYSQL *holder = raw_connect();
    xatm_rm_conn *a = open_my();
    MYSQL *n = xatm_rm_native(a);
    xatm_xid x = new_xid();
    CHECK_STR(raw_q(admin, "SELECT @@innodb_rollback_on_timeout"), "0");

    /* the raw fact, without the adapter: the partial work prepares and commits */
    MYSQL *r = raw_connect();
    char sql[128], g[64];
    snprintf(g, sizeof g, "raw_%s", rmt_tm_id);
    raw_q(holder, "BEGIN");
    raw_q(holder, "UPDATE %s SET v = 99 WHERE id = 3", table);
    raw_q(r, "SET SESSION innodb_lock_wait_timeout = 1");
    raw_q(r, "XA START '%s','my',7", g);
    raw_q(r, "UPDATE %s SET v = 77 WHERE id = 2", table);
    snprintf(sql, sizeof sql, "UPDATE %s SET v = 78 WHERE id = 3", table);
    CHECK(mysql_query(r, sql) != 0);
    CHECK_INT(mysql_errno(r), 1205);
    raw_q(r, "XA END '%s','my',7", g);
    raw_q(r, "XA PREPARE '%s','my',7", g); /* succeeds */
    raw_q(r, "XA COMMIT '%s','my',7", g);
    raw_q(holder, "ROLLBACK");
    CHECK_INT(row_v(2), 77); /* half of the branch committed */
    CHECK_INT(row_v(3), 0);
    raw_q(admin, "UPDATE %s SET v = 0 WHERE id = 2", table);
    mysql_close(r);

    /* the adapter */
    raw_q(holder, "BEGIN");
    raw_q(holder, "UPDATE %s SET v = 99 WHERE id = 3", table);
    CHECK_INT(rmt_exec(a, "SET SESSION innodb_lock_wait_timeout = 1"), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 20 WHERE id = 2", table), XATM_XA_OK);
    /* the application's own statement, straight on the MYSQL handle */
    snprintf(sql, sizeof sql, "UPDATE %s SET v = 30 WHERE id = 3", table);
    CHECK(mysql_query(n, sql) != 0);
    CHECK_INT(mysql_errno(n), 1205);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XA_RBTIMEOUT);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "1205");
    CHECK_INT(prepared_count(&x), 0);
    raw_q(holder, "ROLLBACK");
    CHECK_INT(row_v(2), 0); /* the partial work is NOT committed */
    CHECK_INT(row_v(3), 0);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &x), XATM_XAER_NOTA);

    /* an error followed by a successful statement: the failed mark (set by exec here;
     * by xatm_branch_failed for a direct MYSQL user) still makes it vote no */
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 21 WHERE id = 2", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_exec(a, "UPDATE no_such_table SET v = 1", NULL), XATM_XAER_RMERR);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "1146");
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 22 WHERE id = 4", table), XATM_XA_OK);
    CHECK_INT(mysql_errno(n), 0);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &y), XATM_XA_RBROLLBACK);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "marked failed");
    CHECK_INT(prepared_count(&y), 0);
    CHECK_INT(row_v(2), 0);
    CHECK_INT(row_v(4), 0);

    /* the mark does not survive into the next branch */
    xatm_xid z = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &z), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 23 WHERE id = 2", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &z), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &z), XATM_XA_OK);
    CHECK_INT(row_v(2), 23);
    xatm_rm_close(a);
    mysql_close(holder);
}

/* MariaDB has no XA_RDONLY: the adapter detects a branch that modified nothing and
 * commits it in one phase at prepare; nothing is left prepared. */
static void test_read_only(void)
{
    xatm_rm_conn *a = open_my();
    MYSQL *n = xatm_rm_native(a);
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_STR(raw_q(n, "SELECT v FROM %s WHERE id = 5", table), "0");
    /* an UPDATE that changes nothing modifies no rows either */
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = v WHERE id = 5", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XA_RDONLY);
    CHECK_INT(prepared_count(&x), 0);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &x), XATM_XAER_NOTA);
    /* the session is free for the next branch at once */
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &y), XATM_XA_RDONLY);
    CHECK_INT(prepared_count(&y), 0);
    /* every kind of row write makes a real vote */
    for (int i = 0; i < 3; i++) {
        char sql[128];
        xatm_xid w = new_xid();
        if (i == 0) snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (31, 1)", table);
        if (i == 1) snprintf(sql, sizeof sql, "DELETE FROM %s WHERE id = 30", table);
        if (i == 2) snprintf(sql, sizeof sql, "UPDATE %s SET v = 5 WHERE id = 29", table);
        CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &w), XATM_XA_OK);
        CHECK_INT(xatm_rm_exec(a, sql, NULL), XATM_XA_OK);
        CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &w), XATM_XA_OK);
        CHECK_INT(prepared_count(&w), 1);
        CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &w), XATM_XA_OK);
    }
    CHECK_INT(row_v(31), -1);
    CHECK_INT(row_v(30), 0);
    CHECK_INT(row_v(29), 0);
    /* a branch's baseline is the previous branch's reading: after the writing branches
     * above, a branch that writes nothing is still read-only ... */
    xatm_xid r = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &r), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &r), XATM_XA_RDONLY);
    /* ... and a write on the session between two branches (autocommit, outside any
     * branch) is counted for the next branch: it prepares (safe), never the reverse */
    CHECK_STR(raw_q(n, "INSERT INTO %s VALUES (9999, 1)", table), "");
    CHECK_STR(raw_q(n, "DELETE FROM %s WHERE id = 9999", table), "");
    xatm_xid q = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &q), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &q), XATM_XA_OK);
    CHECK_INT(prepared_count(&q), 1);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &q), XATM_XA_OK);
    xatm_rm_close(a);
}

/* A session whose handle was never handed out: a branch whose exec() statements changed
 * rows prepares without the write probe; its writes are then missing from the session's
 * counter reading, so the next branch, if read-only, prepares (the safe direction) and
 * reads the counters afresh; the one after it is judged exactly again. A statement that
 * changes nothing leaves the branch to the probe. */
static void test_read_only_without_native(void)
{
    xatm_rm_conn *a = open_my();
    raw_q(admin, "INSERT INTO %s VALUES (40, 0)", table);
    xatm_xid w = new_xid();
    uint64_t n = 0;
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &w), XATM_XA_OK);
    CHECK_INT(xatm_rm_exec(a, "SELECT 1", NULL), XATM_XA_OK); /* a result set: no count */
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 7 WHERE id = 40", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &w), XATM_XA_OK);
    CHECK_INT(prepared_count(&w), 1);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &w), XATM_XA_OK);
    CHECK_INT(row_v(40), 7);
    /* read-only right after it: prepares, since the counters moved since the last reading */
    xatm_xid r1 = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &r1), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = v WHERE id = 40", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &r1), XATM_XA_OK);
    CHECK_INT(prepared_count(&r1), 1);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &r1), XATM_XA_OK);
    /* the next read-only branch is read-only again */
    xatm_xid r2 = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &r2), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = v WHERE id = 40", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &r2), XATM_XA_RDONLY);
    CHECK_INT(prepared_count(&r2), 0);
    /* a writing branch whose later statement failed votes no, probe or not */
    xatm_xid w2 = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &w2), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 9 WHERE id = 40", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_exec(a, "DELETE FROM xatm_no_such_table", &n) != XATM_XA_OK, 1);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &w2), XATM_XA_RBROLLBACK);
    CHECK_INT(prepared_count(&w2), 0);
    xatm_xid w3 = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &w3), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 8 WHERE id = 40", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &w3), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &w3), XATM_XA_OK);
    CHECK_INT(row_v(40), 7);
    raw_q(admin, "DELETE FROM %s WHERE id = 40", table);
    xatm_rm_close(a);
}

/* Why the adapter does not ask information_schema.innodb_trx whether a branch wrote:
 * InnoDB serves it from a cache refreshed only when it has not been read for 0.1 s, so a
 * reader right after another one sees a stale picture (here: a writing branch missing). */
static void test_innodb_trx_is_stale(void)
{
    MYSQL *r = raw_connect(), *w = raw_connect();
    char g[64], q[256];
    snprintf(g, sizeof g, "stale_%s", rmt_tm_id);
    snprintf(q, sizeof q,
             "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = %lu",
             mysql_thread_id(w));
    usleep(150000);
    raw_q(r, "SELECT COUNT(*) FROM information_schema.innodb_trx"); /* refreshes the cache */
    raw_q(w, "XA START '%s','my',7", g);
    raw_q(w, "UPDATE %s SET v = 1 WHERE id = 28", table);
    CHECK_STR(raw_q(r, "%s", q), "0"); /* read within 0.1 s: the branch is not there */
    usleep(150000);
    CHECK_STR(raw_q(r, "%s", q), "1"); /* now it is */
    raw_q(w, "XA END '%s','my',7", g);
    raw_q(w, "XA ROLLBACK '%s','my',7", g);
    mysql_close(w);
    mysql_close(r);
}

/* Drives a statement started with mysql_real_query_start to its end. */
static int finish_async(MYSQL *m, int status, int *err)
{
    while (status) {
        struct pollfd p = {.fd = mysql_get_socket(m)};
        if (status & MYSQL_WAIT_READ) p.events |= POLLIN;
        if (status & MYSQL_WAIT_WRITE) p.events |= POLLOUT;
        int pr = poll(&p, 1, 20000);
        int got = 0;
        if (pr > 0) {
            if (p.revents & (POLLIN | POLLERR | POLLHUP)) got |= MYSQL_WAIT_READ;
            if (p.revents & POLLOUT) got |= MYSQL_WAIT_WRITE;
        } else {
            got = MYSQL_WAIT_TIMEOUT;
        }
        status = mysql_real_query_cont(err, m, got);
    }
    return *err;
}

/* Waits until session id's statement is blocked on an InnoDB row lock (not on a metadata
 * lock, e.g. another run's global read lock). PROCESSLIST is live, unlike innodb_trx. */
static bool wait_row_lock(uint64_t id)
{
    uint64_t t0 = t_now_ms();
    while (t_now_ms() - t0 < 20000) {
        const char *st = raw_q(admin,
                               "SELECT COALESCE((SELECT STATE FROM information_schema.PROCESSLIST "
                               "WHERE ID = %llu AND COMMAND = 'Query' AND TIME_MS > 50), '')",
                               (unsigned long long)id);
        if (!strcmp(st, "Updating")) return true;
        usleep(5000);
    }
    return false;
}

/* A deadlock inside XA: the victim's branch is rolled back whatever code the server
 * gives; XA ROLLBACK is attempted and "unknown XID" accepted; nothing is prepared. */
static void test_deadlock(void)
{
    xatm_rm_conn *a = open_my(), *b = open_my();
    MYSQL *na = xatm_rm_native(a), *nb = xatm_rm_native(b);
    xatm_xid xa = new_xid(), xb = new_xid();
    char sql[128];
    int err = 0;
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &xa), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_START, &xb), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 1 WHERE id = 6", table), XATM_XA_OK);
    CHECK_INT(rmt_exec(b, "UPDATE %s SET v = 2 WHERE id = 7", table), XATM_XA_OK);
    snprintf(sql, sizeof sql, "UPDATE %s SET v = 1 WHERE id = 7", table);
    int status = mysql_real_query_start(&err, na, sql, (unsigned long)strlen(sql));
    CHECK(wait_row_lock(xatm_rm_caps_of(a)->session_id)); /* a waits for b's row */
    snprintf(sql, sizeof sql, "UPDATE %s SET v = 2 WHERE id = 6", table);
    int berr = mysql_query(nb, sql) ? (int)mysql_errno(nb) : 0;
    int aerr = finish_async(na, status, &err) ? (int)mysql_errno(na) : 0;
    if ((aerr == 1213) == (berr == 1213)) fprintf(stderr, "deadlock: a %d, b %d\n", aerr, berr);
    CHECK((aerr == 1213) != (berr == 1213)); /* exactly one victim */
    CHECK(aerr == 0 || aerr == 1213);
    CHECK(berr == 0 || berr == 1213);
    xatm_rm_conn *victim = aerr ? a : b, *winner = aerr ? b : a;
    xatm_xid *vx = aerr ? &xa : &xb, *wx = aerr ? &xb : &xa;
    MYSQL *nv = xatm_rm_native(victim);

    /* the raw fact: a SELECT still works on the doomed branch and clears mysql_errno */
    CHECK_STR(raw_q(nv, "SELECT 1"), "1");
    CHECK_INT(mysql_errno(nv), 0);
    /* so only the next write (CAN_COMMIT's marker insert) or XA END reveals it:
     * CAN_COMMIT says no and rolls the branch back */
    CHECK(is_rb(xatm_rm_run(victim, XATM_RM_OP_CAN_COMMIT, vx)));
    printf("mariadb deadlock victim, CAN_COMMIT: %s\n", xatm_rm_errmsg(victim));
    CHECK_CONTAINS(xatm_rm_errmsg(victim), "ROLLBACK ONLY");
    CHECK_INT(prepared_count(vx), 0);
    CHECK_INT(xatm_rm_run(victim, XATM_RM_OP_ROLLBACK, vx), XATM_XAER_NOTA);

    CHECK_INT(xatm_rm_run(winner, XATM_RM_OP_PREPARE, wx), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(winner, XATM_RM_OP_COMMIT, wx), XATM_XA_OK);
    CHECK_INT(row_v(6), aerr ? 2 : 1);
    CHECK_INT(row_v(7), aerr ? 2 : 1);

    /* the same on PREPARE, with the deadlock error still the last one: RBDEADLOCK */
    xatm_xid ya = new_xid(), yb = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &ya), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_START, &yb), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 3 WHERE id = 8", table), XATM_XA_OK);
    CHECK_INT(rmt_exec(b, "UPDATE %s SET v = 4 WHERE id = 9", table), XATM_XA_OK);
    snprintf(sql, sizeof sql, "UPDATE %s SET v = 3 WHERE id = 9", table);
    status = mysql_real_query_start(&err, na, sql, (unsigned long)strlen(sql));
    CHECK(wait_row_lock(xatm_rm_caps_of(a)->session_id));
    snprintf(sql, sizeof sql, "UPDATE %s SET v = 4 WHERE id = 8", table);
    berr = mysql_query(nb, sql) ? (int)mysql_errno(nb) : 0;
    aerr = finish_async(na, status, &err) ? (int)mysql_errno(na) : 0;
    if ((aerr == 1213) == (berr == 1213)) fprintf(stderr, "deadlock: a %d, b %d\n", aerr, berr);
    CHECK((aerr == 1213) != (berr == 1213));
    victim = aerr ? a : b;
    winner = aerr ? b : a;
    vx = aerr ? &ya : &yb;
    wx = aerr ? &yb : &ya;
    CHECK_INT(xatm_rm_run(victim, XATM_RM_OP_PREPARE, vx), XATM_XA_RBDEADLOCK);
    CHECK_INT(prepared_count(vx), 0);
    CHECK_INT(xatm_rm_run(winner, XATM_RM_OP_PREPARE, wx), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(winner, XATM_RM_OP_ROLLBACK, wx), XATM_XA_OK);
    CHECK_INT(prepared_count(wx), 0);
    CHECK_INT(row_v(8), 0);
    CHECK_INT(row_v(9), 0);
    xatm_rm_close(a);
    xatm_rm_close(b);
}

/* A hung AP's session is fenced with KILL CONNECTION; its prepared branch becomes
 * finishable from another session. */
static void test_fence(void)
{
    xatm_rm_conn *a = open_my(), *b = open_my();
    uint64_t a_id = xatm_rm_caps_of(a)->session_id;
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 13 WHERE id = 13", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_COMMIT, &x), XATM_XAER_NOTA); /* attached to a */
    CHECK_INT(xatm_rm_fence(b, xatm_rm_caps_of(b)->session_id), XATM_XAER_INVAL);
    uint64_t t0 = t_now_ms();
    CHECK_INT(xatm_rm_fence(b, a_id), XATM_XA_OK);
    uint64_t took = t_now_ms() - t0;
    printf("mariadb fence: KILL CONNECTION + gone from PROCESSLIST in %llu ms\n",
           (unsigned long long)took);
    CHECK(took < 5000);
    CHECK_INT(xatm_rm_session_alive(b, a_id), 0);
    CHECK_INT(prepared_count(&x), 1); /* the branch survives the kill, detached */
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_COMMIT, &x), XATM_XA_OK);
    CHECK_INT(row_v(13), 13);
    /* the fenced session learns at its next statement */
    xatm_xid y = new_xid();
    CHECK(xatm_rm_alive(a));
    CHECK_INT(xatm_rm_exec(a, "SELECT 1", NULL), XATM_XAER_RMFAIL);
    CHECK(!xatm_rm_alive(a));
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XAER_RMFAIL);
    /* fencing a session that is gone is fine */
    CHECK_INT(xatm_rm_fence(b, a_id), XATM_XA_OK);
    xatm_rm_close(a);
    xatm_rm_close(b);
}

static void test_parallel(void)
{
    /* two MariaDB branches and a PostgreSQL one, prepared then committed in parallel */
    xatm_rm_conn *c[3] = {open_my(), open_my(), rmt_open(&pg_cfg)};
    xatm_xid x[3];
    x[0] = new_xid();
    x[1] = new_xid();
    if (xatm_xid_make(&x[2], RMT_FORMAT_ID, x[1].gtrid, "pg") != 0) exit(1);
    enum xatm_rm_op ops[3] = {XATM_RM_OP_PREPARE, XATM_RM_OP_PREPARE, XATM_RM_OP_PREPARE};
    int rc[3] = {-99, -99, -99};
    char pgtable[64];
    snprintf(pgtable, sizeof pgtable, "xatm_rmmy_pg_%ld", (long)getpid());
    CHECK_INT(rmt_exec(c[2], "CREATE TABLE %s (id int PRIMARY KEY)", pgtable), XATM_XA_OK);
    for (int i = 0; i < 3; i++) CHECK_INT(xatm_rm_run(c[i], XATM_RM_OP_START, &x[i]), XATM_XA_OK);
    CHECK_INT(rmt_exec(c[0], "UPDATE %s SET v = 14 WHERE id = 14", table), XATM_XA_OK);
    CHECK_INT(rmt_exec(c[1], "UPDATE %s SET v = 15 WHERE id = 15", table), XATM_XA_OK);
    CHECK_INT(rmt_exec(c[2], "INSERT INTO %s VALUES (1)", pgtable), XATM_XA_OK);
    xatm_rm_run_parallel(c, ops, x, rc, 3, 10000);
    for (int i = 0; i < 3; i++) CHECK_INT(rc[i], XATM_XA_OK);
    CHECK_INT(prepared_count(&x[0]), 1);
    CHECK_INT(prepared_count(&x[1]), 1);
    for (int i = 0; i < 3; i++) ops[i] = XATM_RM_OP_COMMIT;
    xatm_rm_run_parallel(c, ops, x, rc, 3, 10000);
    for (int i = 0; i < 3; i++) CHECK_INT(rc[i], XATM_XA_OK);
    CHECK_INT(row_v(14), 14);
    CHECK_INT(row_v(15), 15);
    uint64_t one = 0;
    char q[128];
    snprintf(q, sizeof q, "SELECT * FROM %s", pgtable);
    CHECK_INT(xatm_rm_exec(c[2], q, &one), XATM_XA_OK);
    CHECK_INT(one, 1);
    CHECK_INT(rmt_exec(c[2], "DROP TABLE %s", pgtable), XATM_XA_OK);

    /* the deadline: a global read lock holds c[0]'s XA PREPARE; it is abandoned with
     * XAER_RMFAIL and its connection closed, c[1] is unaffected */
    MYSQL *locker = raw_connect();
    /* c[1]'s last branch wrote through exec, unprobed: one empty branch (it prepares)
     * brings the session's counter reading up to date, so the next one is read-only */
    xatm_xid fresh = new_xid();
    CHECK_INT(xatm_rm_run(c[1], XATM_RM_OP_START, &fresh), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(c[1], XATM_RM_OP_PREPARE, &fresh), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(c[1], XATM_RM_OP_COMMIT, &fresh), XATM_XA_OK);
    xatm_xid y[2] = {new_xid(), new_xid()};
    uint64_t id0 = xatm_rm_caps_of(c[0])->session_id;
    for (int i = 0; i < 2; i++) CHECK_INT(xatm_rm_run(c[i], XATM_RM_OP_START, &y[i]), XATM_XA_OK);
    CHECK_INT(rmt_exec(c[0], "UPDATE %s SET v = 16 WHERE id = 16", table), XATM_XA_OK);
    raw_q(locker, "FLUSH TABLES WITH READ LOCK");
    ops[0] = XATM_RM_OP_PREPARE;
    ops[1] = XATM_RM_OP_PREPARE; /* c[1] modified nothing: read-only, no commit to block */
    uint64_t t0 = t_now_ms();
    xatm_rm_run_parallel(c, ops, y, rc, 2, 300);
    uint64_t took = t_now_ms() - t0;
    CHECK_INT(rc[0], XATM_XAER_RMFAIL);
    CHECK_CONTAINS(xatm_rm_errmsg(c[0]), "no answer within 300 ms");
    CHECK_INT(rc[1], XATM_XA_RDONLY);
    CHECK(took >= 290 && took < 3000);
    CHECK(!xatm_rm_alive(c[0]));
    raw_q(locker, "UNLOCK TABLES");
    long gone = wait_gone(c[1], id0);
    CHECK(gone >= 0);
    /* the server finishes the XA PREPARE it was waiting to run and only then sees the
     * connection closed: the branch is left prepared and detached, for recovery to roll
     * back (presumed abort) */
    CHECK_INT(prepared_count(&y[0]), 1);
    CHECK_INT(xatm_rm_run(c[1], XATM_RM_OP_ROLLBACK, &y[0]), XATM_XA_OK);
    CHECK_INT(prepared_count(&y[0]), 0);
    CHECK_INT(row_v(16), 0);
    mysql_close(locker);
    for (int i = 0; i < 3; i++) xatm_rm_close(c[i]);
}

static void test_one_phase(void)
{
    xatm_rm_conn *a = open_my();
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 17 WHERE id = 17", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT_ONE_PHASE, &x), XATM_XA_OK);
    CHECK_INT(row_v(17), 17);
    CHECK_INT(prepared_count(&x), 0);
    /* marked failed: rolled back instead */
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 18 WHERE id = 17", table), XATM_XA_OK);
    xatm_rm_mark_failed(a);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT_ONE_PHASE, &y), XATM_XA_RBROLLBACK);
    CHECK_INT(row_v(17), 17);
    /* a one-phase commit of a branch not open here is a protocol error */
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT_ONE_PHASE, &y), XATM_XAER_PROTO);
    xatm_rm_close(a);
}

static void test_rollback(void)
{
    xatm_rm_conn *a = open_my(), *b = open_my();
    /* active */
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 18 WHERE id = 18", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &x), XATM_XA_OK);
    CHECK_INT(row_v(18), 0);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK); /* session is free again */
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XAER_PROTO); /* already open */
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &x), XATM_XA_OK);
    /* prepared, on the preparing session */
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 19 WHERE id = 18", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &y), XATM_XA_OK);
    CHECK_INT(prepared_count(&y), 0);
    CHECK_INT(row_v(18), 0);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &y), XATM_XAER_NOTA);
    /* prepared, from another session after the preparing one closed */
    xatm_rm_conn *c = open_my();
    uint64_t c_id = xatm_rm_caps_of(c)->session_id;
    xatm_xid z = new_xid();
    CHECK_INT(xatm_rm_run(c, XATM_RM_OP_START, &z), XATM_XA_OK);
    CHECK_INT(rmt_exec(c, "UPDATE %s SET v = 20 WHERE id = 18", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(c, XATM_RM_OP_PREPARE, &z), XATM_XA_OK);
    xatm_rm_close(c);
    CHECK(wait_gone(b, c_id) >= 0);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_ROLLBACK, &z), XATM_XA_OK);
    CHECK_INT(prepared_count(&z), 0);
    CHECK_INT(row_v(18), 0);
    /* unknown */
    xatm_xid u = new_xid();
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_ROLLBACK, &u), XATM_XAER_NOTA);
    CHECK_INT(xatm_rm_run(b, XATM_RM_OP_COMMIT, &u), XATM_XAER_NOTA);
    CHECK_CONTAINS(xatm_rm_errmsg(b), "Unknown XID");
    xatm_rm_close(a);
    xatm_rm_close(b);
}

static void test_can_commit(void)
{
    xatm_rm_conn *a = open_my();
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 21 WHERE id = 21", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &x), XATM_XA_OK);
    CHECK_INT(prepared_count(&x), 0); /* nothing durable */
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &x), XATM_XA_OK);
    CHECK_INT(row_v(21), 21);
    /* a branch that wrote nothing else still wrote its 3PC marker: it prepares (a 3PC
     * branch never votes read-only) */
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &y), XATM_XA_OK);
    CHECK_INT(prepared_count(&y), 1);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &y), XATM_XA_OK);
    /* rolled back after a yes */
    xatm_xid z = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &z), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 22 WHERE id = 21", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &z), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &z), XATM_XA_OK);
    CHECK_INT(row_v(21), 21);
    /* marked failed: no, rolled back */
    xatm_xid w = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &w), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 23 WHERE id = 21", table), XATM_XA_OK);
    xatm_rm_mark_failed(a);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &w), XATM_XA_RBROLLBACK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &w), XATM_XAER_NOTA);
    CHECK_INT(row_v(21), 21);
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
    xatm_rm_conn *a = open_my(), *b = open_bounded();
    uint64_t took = 0;
    CHECK_INT(xatm_rm_markers_ensure(b), XATM_XA_OK); /* idempotent */
    CHECK_INT(xatm_rm_markers_ensure(b), XATM_XA_OK);
    CHECK_STR(raw_q(admin, "SELECT CONCAT(ENGINE, ':', (SELECT GROUP_CONCAT(CONCAT(COLUMN_NAME, "
                           "'=', DATA_TYPE) ORDER BY ORDINAL_POSITION) FROM "
                           "information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = DATABASE() AND "
                           "c.TABLE_NAME = 'xatm_markers')) FROM information_schema.TABLES t "
                           "WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_NAME = 'xatm_markers'"),
              "InnoDB:gtrid=varbinary,rm=varbinary,created=timestamp");

    /* the marker of a committed branch: invisible while open and prepared, then visible */
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 21 WHERE id = 21", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &x), XATM_XA_OK);
    CHECK_INT(rmt_markers(b, x.gtrid, NULL, &took), 0); /* open (IDLE): not seen, no wait */
    CHECK(took < 1000);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XA_OK);
    CHECK_INT(rmt_markers(b, x.gtrid, NULL, &took), 0); /* prepared: not seen, no wait */
    CHECK(took < 1000);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &x), XATM_XA_OK);
    CHECK_INT(rmt_markers(b, x.gtrid, "my", NULL), 1);
    CHECK_INT(rmt_markers(b, x.gtrid, "pg", NULL), 0);
    CHECK_INT(row_v(21), 21); /* test_can_commit left it so: rows 22..30 belong to others */

    /* rolled back after prepare (the owner's XA ROLLBACK), and without prepare */
    xatm_xid y = new_xid(), z = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &y), XATM_XA_OK);
    CHECK_INT(rmt_markers(b, y.gtrid, NULL, NULL), 0);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &z), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &z), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &z), XATM_XA_OK);
    CHECK_INT(rmt_markers(b, z.gtrid, NULL, NULL), 0);

    /* delete: committed markers go; a prepared marker of the next gtrid (its neighbour
     * in the primary key) neither blocks it nor is lost */
    xatm_xid w = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &w), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &w), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &w), XATM_XA_OK);
    const char *del[] = {x.gtrid, y.gtrid, z.gtrid};
    uint64_t t0 = t_now_ms();
    int rc = xatm_rm_markers_delete(b, del, 3);
    CHECK_INT(rc, XATM_XA_OK);
    if (rc != XATM_XA_OK) fprintf(stderr, "marker delete: %s\n", xatm_rm_errmsg(b));
    CHECK(t_now_ms() - t0 < 1000);
    CHECK_INT(rmt_markers(b, x.gtrid, NULL, NULL), 0);
    /* and an AP's marker insert next to rows being deleted is not held up either */
    xatm_xid u = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &w), XATM_XA_OK);
    CHECK_INT(rmt_markers(b, w.gtrid, "my", NULL), 1);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &u), XATM_XA_OK);
    t0 = t_now_ms();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &u), XATM_XA_OK);
    const char *del2[] = {w.gtrid};
    CHECK_INT(xatm_rm_markers_delete(b, del2, 1), XATM_XA_OK);
    CHECK(t_now_ms() - t0 < 1000);
    CHECK_INT(rmt_markers(b, w.gtrid, NULL, NULL), 0);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &u), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT, &u), XATM_XA_OK);
    CHECK_INT(rmt_markers(b, u.gtrid, "my", NULL), 1);

    /* batches: more gtrids than one statement takes */
    enum { MANY = XATM_MARKER_BATCH * 2 + 5 };
    static char many[MANY][XATM_GTRID_MAX + 1];
    const char *manyp[MANY];
    for (int i = 0; i < MANY; i++) {
        snprintf(many[i], sizeof many[i], "%s.1.%d", rmt_tm_id, 900000 + i);
        manyp[i] = many[i];
        raw_q(admin, "INSERT INTO xatm_markers (gtrid, rm) VALUES ('%s', 'my')", many[i]);
    }
    CHECK_STR(raw_q(admin, "SELECT COUNT(*) FROM xatm_markers WHERE gtrid LIKE '%s.1.9_____'",
                    rmt_tm_id), "205");
    CHECK_INT(xatm_rm_markers_delete(b, manyp, MANY), XATM_XA_OK);
    CHECK_STR(raw_q(admin, "SELECT COUNT(*) FROM xatm_markers WHERE gtrid LIKE '%s.1.9_____'",
                    rmt_tm_id), "0");

    /* arguments: not an id, or a session with a branch open */
    const char *bad[] = {"x'; DROP TABLE xatm_markers; --"};
    CHECK_INT(xatm_rm_markers_delete(b, bad, 1), XATM_XAER_INVAL);
    xatm_xid v = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &v), XATM_XA_OK);
    CHECK_INT(rmt_markers(a, v.gtrid, NULL, NULL), -1);
    CHECK_CONTAINS(xatm_rm_errmsg(a), "is open on this session");
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &v), XATM_XA_OK);
    xatm_rm_close(a);
    xatm_rm_close(b);
}

/* Without the marker table, CAN_COMMIT votes no and says why (a database of its own). */
/* Keeps the first gtrid listed (xatm_rm_decisions_old_commits). */
static void seen_one(const char *gtrid, void *arg)
{
    char *out = arg;
    if (!out[0]) snprintf(out, XATM_GTRID_MAX + 1, "%s", gtrid);
}

/* The outcome of gtrid's decision row, "" when there is none. */
static const char *decision_row(const char *gtrid)
{
    return raw_q(admin, "SELECT COALESCE((SELECT outcome FROM xatm_decisions WHERE gtrid = '%s'), '')",
                 gtrid);
}

/* A child process holds an uncommitted row (gtrid, 'C') for ~0.5 s, then ends its
 * transaction with `end`; resolve on b meanwhile waits for it and sees its outcome. */
static void resolve_after_wait(xatm_rm_conn *b, const char *gtrid, const char *end,
                               enum xatm_decision want)
{
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        MYSQL *h = raw_connect();
        char sql[256];
        snprintf(sql, sizeof sql, "INSERT INTO xatm_decisions (gtrid, outcome) VALUES ('%s', 'C')",
                 gtrid);
        int ok = mysql_query(h, "BEGIN") == 0 && mysql_query(h, sql) == 0;
        char c = ok ? 'y' : 'n';
        if (write(fds[1], &c, 1) != 1) _exit(2);
        usleep(500 * 1000);
        ok = ok && mysql_query(h, end) == 0;
        mysql_close(h);
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    char c = 0;
    CHECK_INT(read(fds[0], &c, 1), 1);
    CHECK(c == 'y');
    close(fds[0]);
    enum xatm_decision d = 0;
    uint64_t t0 = t_now_ms();
    CHECK_INT(xatm_rm_decision_resolve(b, gtrid, 5000, &d), XATM_XA_OK);
    CHECK_INT(d, want);
    CHECK(t_now_ms() - t0 >= 300); /* it waited for the child's transaction */
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* RMT_CHECK_MAX_EPOCH's statements, on the admin session. */
static void admin_sql(const char *sql)
{
    raw_q(admin, "%s", sql);
}

/* Decision rows on MariaDB: the decider's commit (COMMIT_DECIDING: row, XA END, XA COMMIT
 * ONE PHASE) and recovery's resolve / delete / sweep / listing / epoch lookup. */
static void test_decisions(void)
{
    xatm_rm_conn *a = open_my(), *b = open_bounded();
    CHECK_INT(xatm_rm_decisions_ensure(b), XATM_XA_OK);
    CHECK_INT(xatm_rm_decisions_ensure(b), XATM_XA_OK);

    /* the decider commits: its work and its commit row in one local transaction */
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 70 WHERE id = 7", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_COMMIT_DECIDING, &x), XATM_XA_OK);
    CHECK_INT(row_v(7), 70);
    CHECK_STR(decision_row(x.gtrid), "C");
    CHECK_INT(prepared_count(&x), 0);
    enum xatm_decision d = 0;
    CHECK_INT(xatm_rm_decision_resolve(b, x.gtrid, 500, &d), XATM_XA_OK);
    CHECK_INT(d, XATM_DECISION_COMMITTED);

    /* recovery first: the abort row; the decider's commit then fails on the duplicate
     * key and its work is rolled back */
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_decision_resolve(b, y.gtrid, 500, &d), XATM_XA_OK);
    CHECK_INT(d, XATM_DECISION_ABORTED);
    CHECK_STR(decision_row(y.gtrid), "A");
    CHECK_INT(xatm_rm_decision_resolve(b, y.gtrid, 500, &d), XATM_XA_OK);
    CHECK_INT(d, XATM_DECISION_ABORTED);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 71 WHERE id = 7", table), XATM_XA_OK);
    CHECK(is_rb(xatm_rm_run(a, XATM_RM_OP_COMMIT_DECIDING, &y)));
    CHECK_CONTAINS(xatm_rm_errmsg(a), "1062");
    CHECK_CONTAINS(xatm_rm_errmsg(a), "recovery had already decided abort");
    CHECK_INT(row_v(7), 70);
    CHECK_INT(prepared_count(&y), 0);
    CHECK_STR(decision_row(y.gtrid), "A");
    /* the session is usable for the next branch */
    xatm_xid z = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &z), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &z), XATM_XA_OK);

    /* a branch marked failed never inserts its row */
    xatm_xid f = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &f), XATM_XA_OK);
    xatm_rm_mark_failed(a);
    CHECK(is_rb(xatm_rm_run(a, XATM_RM_OP_COMMIT_DECIDING, &f)));
    CHECK_STR(decision_row(f.gtrid), "");

    /* an uncommitted row held by another session: busy at the lock wait timeout (whole
     * seconds on MariaDB), then wait-then-see */
    xatm_xid g = new_xid();
    MYSQL *h = raw_connect();
    raw_q(h, "BEGIN");
    raw_q(h, "INSERT INTO xatm_decisions (gtrid, outcome) VALUES ('%s', 'C')", g.gtrid);
    uint64_t t0 = t_now_ms();
    CHECK_INT(xatm_rm_decision_resolve(b, g.gtrid, 500, &d), XATM_XA_OK);
    CHECK_INT(d, XATM_DECISION_BUSY);
    CHECK(t_now_ms() - t0 >= 900);
    CHECK(xatm_rm_alive(b));
    raw_q(h, "ROLLBACK");
    mysql_close(h);
    CHECK_INT(xatm_rm_decision_resolve(b, g.gtrid, 500, &d), XATM_XA_OK);
    CHECK_INT(d, XATM_DECISION_ABORTED);
    xatm_xid w1 = new_xid(), w2 = new_xid();
    resolve_after_wait(b, w1.gtrid, "COMMIT", XATM_DECISION_COMMITTED);
    resolve_after_wait(b, w2.gtrid, "ROLLBACK", XATM_DECISION_ABORTED);

    /* delete: commit rows only; sweep: this TM's old abort rows only */
    const char *del[] = {x.gtrid, y.gtrid, w1.gtrid};
    CHECK_INT(xatm_rm_decisions_delete(b, del, 3), XATM_XA_OK);
    CHECK_STR(decision_row(x.gtrid), "");
    CHECK_STR(decision_row(w1.gtrid), "");
    CHECK_STR(decision_row(y.gtrid), "A");
    char own[32], other[32];
    snprintf(own, sizeof own, "%s.", rmt_tm_id);
    snprintf(other, sizeof other, "%s_x.", rmt_tm_id);
    raw_q(admin, "UPDATE xatm_decisions SET created = NOW() - INTERVAL 2 HOUR WHERE gtrid = '%s'",
          y.gtrid);
    uint64_t n = 99;
    CHECK_INT(xatm_rm_decisions_sweep(b, other, 3600, &n), XATM_XA_OK);
    CHECK_INT(n, 0);
    CHECK_INT(xatm_rm_decisions_sweep(b, own, 3600, &n), XATM_XA_OK);
    CHECK_INT(n, 1);
    CHECK_STR(decision_row(y.gtrid), "");
    CHECK_STR(decision_row(w2.gtrid), "A");

    /* old commit rows are listed */
    xatm_xid o1 = new_xid();
    raw_q(admin, "INSERT INTO xatm_decisions (gtrid, outcome, created) VALUES ('%s', 'C', "
          "NOW() - INTERVAL 3 HOUR)", o1.gtrid);
    char seen[XATM_GTRID_MAX + 1] = "";
    CHECK_INT(xatm_rm_decisions_old_commits(b, own, 3600, 10, seen_one, seen), XATM_XA_OK);
    CHECK_STR(seen, o1.gtrid);
    /* the highest epoch of a TM's decision rows (of either outcome) and marker rows */
    RMT_CHECK_MAX_EPOCH(b, xatm_rm_decisions_max_epoch, "xatm_decisions", "(gtrid, outcome)",
                        "'C'", "'A'", admin_sql);
    CHECK_INT(xatm_rm_markers_ensure(b), XATM_XA_OK);
    RMT_CHECK_MAX_EPOCH(b, xatm_rm_markers_max_epoch, "xatm_markers", "(gtrid, rm)", "'my'",
                        "'pg'", admin_sql);

    raw_q(admin, "DELETE FROM xatm_decisions WHERE gtrid LIKE '%s%%'", rmt_tm_id);
    raw_q(admin, "UPDATE %s SET v = 0 WHERE id = 7", table);
    xatm_rm_close(a);
    xatm_rm_close(b);
}

static void test_marker_table_missing(void)
{
    char db[64];
    snprintf(db, sizeof db, "xatm_nomark_%ld", (long)getpid());
    raw_q(admin, "DROP DATABASE IF EXISTS %s", db);
    raw_q(admin, "CREATE DATABASE %s", db);
    xatm_rm_config c2 = cfg;
    c2.database = db;
    xatm_rm_conn *a = rmt_open(&c2);
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s.%s SET v = 25 WHERE id = 25", cfg.database, table),
              XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_CAN_COMMIT, &x), XATM_XA_RBROLLBACK);
    printf("mariadb CAN_COMMIT without the marker table: %s\n", xatm_rm_errmsg(a));
    CHECK_CONTAINS(xatm_rm_errmsg(a), "error 1146");
    CHECK_CONTAINS(xatm_rm_errmsg(a), "the 3PC marker row could not be inserted");
    CHECK_CONTAINS(xatm_rm_errmsg(a), "hint: xatmd creates the table at start-up");
    CHECK_INT(prepared_count(&x), 0);
    CHECK_INT(row_v(25), 0);
    /* the session is usable again: the branch was rolled back */
    xatm_xid y = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &y), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_ROLLBACK, &y), XATM_XA_OK);
    xatm_rm_close(a);
    raw_q(admin, "DROP DATABASE %s", db);
}

static void test_recover_filters(void)
{
    xatm_rm_conn *a = open_my(), *b = open_my();
    xatm_xid ours[2] = {new_xid(), new_xid()};
    xatm_rm_conn *conn[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        CHECK_INT(xatm_rm_run(conn[i], XATM_RM_OP_START, &ours[i]), XATM_XA_OK);
        CHECK_INT(rmt_exec(conn[i], "UPDATE %s SET v = 1 WHERE id = %d", table, 22 + i), XATM_XA_OK);
        CHECK_INT(xatm_rm_run(conn[i], XATM_RM_OP_PREPARE, &ours[i]), XATM_XA_OK);
    }
    /* foreign: MySQL's default format id 1, another TM id, a gtrid that is not xatm's */
    MYSQL *f[3] = {raw_connect(), raw_connect(), raw_connect()};
    char gf[3][64];
    unsigned fmt[3] = {1, RMT_FORMAT_ID, RMT_FORMAT_ID};
    snprintf(gf[0], sizeof gf[0], "%s.1.1", rmt_tm_id);
    snprintf(gf[1], sizeof gf[1], "o%s.1.1", rmt_tm_id);
    snprintf(gf[2], sizeof gf[2], "plain_%s", rmt_tm_id);
    for (int i = 0; i < 3; i++) {
        raw_q(f[i], "XA START '%s','my',%u", gf[i], fmt[i]);
        raw_q(f[i], "UPDATE %s SET v = 1 WHERE id = %d", table, 25 + i);
        raw_q(f[i], "XA END '%s','my',%u", gf[i], fmt[i]);
        raw_q(f[i], "XA PREPARE '%s','my',%u", gf[i], fmt[i]);
    }
    RMT_CHECK_RECOVER(a, rmt_tm_id, ours, 2, 2, 2);
    /* another TM id sees none of ours: exactly the gf[1] branch */
    char other[24];
    snprintf(other, sizeof other, "o%s", rmt_tm_id);
    RMT_CHECK_RECOVER(a, other, ours, 2, 1, 0);
    for (int i = 0; i < 3; i++) {
        raw_q(f[i], "XA ROLLBACK '%s','my',%u", gf[i], fmt[i]);
        mysql_close(f[i]);
    }
    for (int i = 0; i < 2; i++)
        CHECK_INT(xatm_rm_run(conn[i], XATM_RM_OP_ROLLBACK, &ours[i]), XATM_XA_OK);
    RMT_CHECK_RECOVER(a, rmt_tm_id, ours, 2, 0, 0);
    for (int i = 0; i < 5; i++) CHECK_INT(row_v(22 + i), 0);
    xatm_rm_close(a);
    xatm_rm_close(b);
}

static void test_open_failures(void)
{
    char err[1024];
    xatm_rm_conn *c = (xatm_rm_conn *)(uintptr_t)1; /* open must reset it to NULL */
    RMT_CHECK_OPEN_REFUSED(&cfg, "2002");

    static char wrong[] = "wrong-password";
    xatm_rm_config bad = cfg;
    bad.password = wrong;
    CHECK_INT(xatm_rm_open(&bad, &c, err, sizeof err), XATM_XAER_RMERR);
    CHECK(c == NULL);
    CHECK_CONTAINS(err, "Access denied for user");
    CHECK_CONTAINS(err, "1045");
    CHECK_CONTAINS(err, "check user and password");
    CHECK_CONTAINS(err, rmt_where(&cfg));
}

static void test_async_api(void)
{
    xatm_rm_conn *a = open_my(), *b = open_my();
    MYSQL *locker = raw_connect();
    uint64_t a_id = xatm_rm_caps_of(a)->session_id;
    xatm_xid x = new_xid();
    /* a fast server may answer within op_begin itself: both forms are valid */
    /* every wait names a socket and events (MariaDB may wait to write, or for urgent data) */
    CHECK_INT(RMT_DRIVE(a, xatm_rm_op_begin(a, XATM_RM_OP_START, &x), POLLIN | POLLOUT | POLLPRI),
              XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = 1 WHERE id = 27", table), XATM_XA_OK);
    /* blocking use of the handle by the application still works */
    CHECK_STR(raw_q(xatm_rm_native(a), "SELECT 41 + 1"), "42");
    /* an operation held in flight by a global read lock */
    raw_q(locker, "FLUSH TABLES WITH READ LOCK");
    CHECK_INT(xatm_rm_op_continue(b, POLLIN), XATM_XAER_PROTO); /* nothing in flight */
    int rc = xatm_rm_op_begin(a, XATM_RM_OP_PREPARE, &x);
    for (int i = 0; i < 3 && rc == XATM_RM_PENDING; i++) {
        int fd;
        short ev;
        xatm_rm_op_wait(a, &fd, &ev);
        struct pollfd p = {.fd = fd, .events = ev};
        if (poll(&p, 1, 200) > 0) rc = xatm_rm_op_continue(a, p.revents);
    }
    CHECK_INT(rc, XATM_RM_PENDING);
    CHECK_INT(xatm_rm_op_begin(a, XATM_RM_OP_ROLLBACK, &x), XATM_XAER_PROTO);
    CHECK_INT(xatm_rm_recover(a, RMT_FORMAT_ID, rmt_tm_id, rmt_collect, NULL), XATM_XAER_PROTO);
    CHECK_INT(xatm_rm_exec(a, "SELECT 1", NULL), XATM_XAER_PROTO);
    /* closing with an operation in flight is safe */
    xatm_rm_close(a);
    raw_q(locker, "UNLOCK TABLES");
    CHECK(wait_gone(b, a_id) >= 0);
    rc = xatm_rm_run(b, XATM_RM_OP_ROLLBACK, &x);
    CHECK(rc == XATM_XA_OK || rc == XATM_XAER_NOTA);
    CHECK_INT(prepared_count(&x), 0);
    CHECK_INT(row_v(27), 0);
    mysql_close(locker);
    xatm_rm_close(b);
}

/* A session with a call time limit (xatmd's recovery sessions) never waits longer than it
 * for an answer: a statement the server sits on ends with XAER_RMFAIL, the session lost. */
static void test_call_timeout(void)
{
    char err[1024];
    xatm_rm_conn *c = NULL, *b = open_my();
    MYSQL *locker = raw_connect();
    xatm_rm_open_options opts = {.call_timeout_ms = 1000};
    CHECK_INT(xatm_rm_open_ex(&cfg, &opts, &c, err, sizeof err), XATM_XA_OK);
    if (!c) return;
    CHECK_INT(xatm_rm_exec(c, "SELECT 1", NULL), XATM_XA_OK);
    uint64_t t0 = t_now_ms();
    CHECK_INT(xatm_rm_exec(c, "SELECT SLEEP(5)", NULL), XATM_XAER_RMFAIL);
    uint64_t took = t_now_ms() - t0;
    printf("mariadb call timeout of 1000 ms: a blocking call gave up after %llu ms\n",
           (unsigned long long)took);
    CHECK(took >= 900 && took < 4500);
    CHECK(!xatm_rm_alive(c));
    xatm_rm_close(c);
    /* an asynchronous operation run with xatm_rm_run: held by a global read lock */
    c = NULL;
    CHECK_INT(xatm_rm_open_ex(&cfg, &opts, &c, err, sizeof err), XATM_XA_OK);
    if (!c) return;
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(c, XATM_RM_OP_START, &x), XATM_XA_OK);
    uint64_t c_id = xatm_rm_caps_of(c)->session_id;
    CHECK_INT(rmt_exec(c, "UPDATE %s SET v = 1 WHERE id = 26", table), XATM_XA_OK);
    raw_q(locker, "FLUSH TABLES WITH READ LOCK");
    t0 = t_now_ms();
    CHECK_INT(xatm_rm_run(c, XATM_RM_OP_PREPARE, &x), XATM_XAER_RMFAIL);
    took = t_now_ms() - t0;
    CHECK(took >= 900 && took < 4500);
    CHECK_CONTAINS(xatm_rm_errmsg(c), "no answer within 1000 ms");
    xatm_rm_close(c);
    raw_q(locker, "UNLOCK TABLES");
    CHECK(wait_gone(b, c_id) >= 0);
    int rc = xatm_rm_run(b, XATM_RM_OP_ROLLBACK, &x);
    CHECK(rc == XATM_XA_OK || rc == XATM_XAER_NOTA);
    CHECK_INT(prepared_count(&x), 0);
    CHECK_INT(row_v(26), 0);
    mysql_close(locker);
    xatm_rm_close(b);
}

/* scripts/servers.sh ACTION my DIR: true on success. */
static bool servers_my(const char *action)
{
    char script[600], act[16], rm[] = "my", sdir[600], out[700];
    snprintf(script, sizeof script, "%s/scripts/servers.sh", t_env("XATM_SOURCE_ROOT"));
    snprintf(act, sizeof act, "%s", action);
    snprintf(sdir, sizeof sdir, "%s", t_env("XATM_TEST_SERVERS_DIR"));
    snprintf(out, sizeof out, "/tmp/xatm-rm-mysql-%ld-servers.out", (long)getpid());
    char *argv[] = {script, act, rm, sdir, NULL};
    int st = t_run(argv, NULL, out);
    unlink(out);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* A MariaDB restart starts connection ids over: a session recorded before it (as xatmd
 * records an AP's in its table and COMMIT records) must read as gone even when a new
 * connection, recovery's own included, now has the same id, and fencing it must not kill
 * that connection. */
static void test_incarnation_restart(void)
{
    (void)t_env("XATM_SOURCE_ROOT"); /* exits now, before anything is prepared */
    (void)t_env("XATM_TEST_SERVERS_DIR");
    xatm_rm_conn *a = open_my();
    uint32_t old_tag = xatm_rm_caps_of(a)->incarnation;
    int64_t old_start = xatm_rm_caps_of(a)->server_started;
    xatm_xid x = new_xid();
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_START, &x), XATM_XA_OK);
    CHECK_INT(rmt_exec(a, "UPDATE %s SET v = v + 1 WHERE id = 29", table), XATM_XA_OK);
    CHECK_INT(xatm_rm_run(a, XATM_RM_OP_PREPARE, &x), XATM_XA_OK);
    uint64_t recorded = xatm_rm_session_ref(a); /* what libxatm sends in its VOTE */

    mysql_close(admin);
    CHECK(servers_my("kill"));
    sleep(1); /* a restart within the same second would reuse the start time */
    bool up = servers_my("restart");
    CHECK(up);
    admin = raw_connect();
    if (!up) {
        xatm_rm_close(a);
        return;
    }
    xatm_rm_conn *checker = open_my(), *victim = open_my();
    const xatm_rm_caps *cc = xatm_rm_caps_of(checker), *vc = xatm_rm_caps_of(victim);
    printf("mariadb restart: start %lld -> %lld, incarnation %06x -> %06x; recorded session "
           "%llu, new connections %llu and %llu\n",
           (long long)old_start, (long long)cc->server_started, old_tag, cc->incarnation,
           (unsigned long long)xatm_session_ref_id(recorded),
           (unsigned long long)cc->session_id, (unsigned long long)vc->session_id);
    CHECK(cc->server_started > old_start);
    CHECK(cc->incarnation != old_tag);
    CHECK_INT(vc->incarnation, cc->incarnation);

    /* the recorded session of the old run: gone */
    CHECK_INT(xatm_rm_session_alive(checker, recorded), 0);
    /* an old-run reference whose id is a live connection's now, the victim's and the
     * checker's own: gone, and fencing it kills nobody */
    uint64_t same_as_victim = xatm_session_ref(old_tag, vc->session_id);
    uint64_t same_as_checker = xatm_session_ref(old_tag, cc->session_id);
    CHECK_INT(xatm_rm_session_alive(checker, same_as_victim), 0);
    CHECK_INT(xatm_rm_session_alive(checker, same_as_checker), 0);
    CHECK_INT(xatm_rm_fence(checker, same_as_victim), XATM_XA_OK);
    CHECK_INT(xatm_rm_fence(checker, same_as_checker), XATM_XA_OK);
    CHECK_INT(xatm_rm_session_alive(checker, xatm_rm_session_ref(victim)), 1);
    CHECK_INT(xatm_rm_exec(victim, "SELECT 1", NULL), XATM_XA_OK);
    CHECK_INT(xatm_rm_exec(checker, "SELECT 1", NULL), XATM_XA_OK);
    CHECK(xatm_rm_alive(victim) && xatm_rm_alive(checker));
    /* without the incarnation (tag 0) the same id reads as the live connection: what the
     * tag is for */
    CHECK_INT(xatm_rm_session_alive(checker, vc->session_id), 1);

    /* the prepared branch survived the crash, detached: finishable from the checker */
    CHECK_INT(prepared_count(&x), 1);
    CHECK_INT(xatm_rm_run(checker, XATM_RM_OP_ROLLBACK, &x), XATM_XA_OK);
    CHECK_INT(prepared_count(&x), 0);
    CHECK_INT(row_v(29), 0);
    xatm_rm_close(victim);
    xatm_rm_close(checker);
    xatm_rm_close(a); /* its connection died with the old server */
}

int main(void)
{
    rmt_init();
    cfg = rmt_config(XATM_RM_MYSQL);
    pg_cfg = rmt_config(XATM_RM_POSTGRESQL);
    snprintf(table, sizeof table, "xatm_rmmy_%ld", (long)getpid());

    if (mysql_library_init(0, NULL, NULL) != 0) {
        fprintf(stderr, "FAIL: mysql_library_init\n");
        return 1;
    }
    admin = raw_connect();
    raw_q(admin, "DROP TABLE IF EXISTS %s", table);
    raw_q(admin, "CREATE TABLE %s (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB", table);
    raw_q(admin, "INSERT INTO %s SELECT seq, 0 FROM seq_1_to_30", table);
    /* the 3PC marker table, as xatmd creates it at start-up (CAN_COMMIT needs it) */
    xatm_rm_conn *setup = open_my();
    CHECK_INT(xatm_rm_markers_ensure(setup), XATM_XA_OK);
    xatm_rm_close(setup);

    test_open_caps();
    test_caps_decision();
    test_two_phase_and_detach();
    test_statement_error_votes_no();
    test_read_only();
    test_read_only_without_native();
    test_innodb_trx_is_stale();
    test_deadlock();
    test_fence();
    test_parallel();
    test_one_phase();
    test_rollback();
    test_can_commit();
    test_markers();
    test_marker_table_missing();
    test_decisions();
    test_recover_filters();
    test_open_failures();
    test_async_api();
    test_call_timeout();
    test_incarnation_restart();

    /* nothing of this run may be left prepared */
    xatm_rm_conn *c = open_my();
    RMT_CHECK_RECOVER(c, rmt_tm_id, NULL, 0, 0, 0);
    xatm_rm_close(c);
    raw_q(admin, "DROP TABLE IF EXISTS %s", table);
    raw_q(admin, "DELETE FROM xatm_markers WHERE gtrid LIKE '%s.%%'", rmt_tm_id);
    mysql_close(admin);
    mysql_library_end();
    return t_finish("rm_mysql");
}
