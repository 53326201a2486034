/*
 * rm_mysql.c — the MySQL / MariaDB row of the RM table, on MariaDB Connector/C.
 *
 * Owns one MYSQL handle per connection (handed to the application through native()). The
 * handle is opened with MYSQL_OPT_NONBLOCK so the branch operations can use the
 * non-blocking API (mysql_real_query_start/_cont, mysql_store_result_start/_cont); the
 * blocking API keeps working for the application and for the blocking calls here.
 *
 * A branch is an XA transaction: XA START 'gtrid','bqual',format_id. xatm's ids use only
 * [A-Za-z0-9_.:-] (checked by rm.c before any operation), so writing them inside quotes
 * needs no escaping.
 *
 * The session's XA state as this adapter drove it (MariaDB's own states):
 *
 *      NONE --XA START--> ACTIVE --XA END--> IDLE --XA PREPARE--> PREPARED
 *        ^                  |                 |                     |
 *        +------ XA ROLLBACK / XA COMMIT ONE PHASE / XA COMMIT -----+
 *
 * In IDLE only XA statements are allowed, so everything that needs SQL (the write
 * probe) runs while ACTIVE.
 *
 * Read-only detection. MariaDB has no read-only vote of its own, so the adapter detects a
 * branch that wrote nothing and commits it in one phase at prepare (XA_RDONLY). The probe
 * is the session's row-write counters, Handler_write + Handler_update + Handler_delete
 * (SHOW SESSION STATUS; exact and current; internal temporary tables count in
 * Handler_tmp_* instead, so the probe itself does not move them), read right after XA
 * START and again at prepare: no change = no row written. An UPDATE that matches a row
 * but changes nothing may or may not move Handler_update (test_read_only's `SET v = v`
 * does not and votes read-only; docs/rm-facts.md (g2) saw one that did and prepared):
 * either way the vote is safe, since no row changed. A branch whose baseline could not
 * be read prepares normally.
 * The baseline of a branch is the session's latest reading (the previous branch's probe
 * at prepare) when there is one, so a branch costs one probe, not two. The counters only
 * grow, so an older reading can only be lower than the value at XA START: statements run
 * in between (autocommit work outside a transaction) count as writes of the branch and
 * make it prepare — the safe direction; it can never make a writing branch look
 * read-only. Only a session's first branch reads its baseline after XA START.
 * No probe at all for a branch known to write: on a session whose MYSQL handle was never
 * handed out (native()), every statement ran through exec(), which adds up the rows each
 * one changed (mysql_affected_rows of a statement without a result set). A branch with
 * changed rows > 0 has written (each changed row is at least one Handler_write, _update or
 * _delete, so the probe could only have said the same) and prepares without asking the
 * server. Its writes are then missing from the session's reading, which stays older and
 * lower than the truth: the next branch, if it writes nothing, sees them as its own and
 * prepares (safe; its probe is a fresh reading again, so the branch after it is judged
 * exactly). A statement that changed rows without reporting them (a CALL, a writing
 * function in a SELECT) leaves the count at 0, and the branch is probed as before. Once
 * native() handed the handle out, the application may write behind exec's back, so every
 * branch of that session is probed. The probe is SHOW SESSION STATUS, which makes MariaDB
 * materialise every status variable (~40 % of mariadbd's CPU in the transfer benchmark
 * when it ran for every branch, docs/performance.md).
 * information_schema.innodb_trx.trx_rows_modified is NOT usable: InnoDB serves it from a
 * cache that is refreshed only when nobody has read it for 0.1 s, so under concurrent
 * prepares it shows a stale picture, and a branch with writes would be committed in
 * phase 1 (measured on 10.11; see test_rm_mysql.c).
 *
 * Operations are small state machines of statements:
 *   START             XA START, then the write-counter baseline
 *   PREPARE           failed mark or the session's last statement failed (mysql_errno)
 *                     -> the undo path (below), vote XA_RB*.  Else, while ACTIVE: the
 *                     write probe (none for a branch known to write), XA END and
 *                     either XA PREPARE (-> XA_OK) or, when nothing was written, XA
 *                     COMMIT ONE PHASE (-> XA_RDONLY).
 *   COMMIT_ONE_PHASE  same checks; XA END + XA COMMIT ONE PHASE
 *   CAN_COMMIT        same checks; the 3PC marker insert (INSERT INTO xatm_markers (gtrid,
 *                     rm) VALUES ('gtrid', 'bqual'), escaped with mysql_real_escape_string;
 *                     its failure, e.g. 1146 no such table, is a no vote with a hint; it
 *                     is a row write, so no probe follows), then XA END as the liveness
 *                     check: it
 *                     fails (1399 "ROLLBACK ONLY state") when a deadlock or timeout has
 *                     already doomed the branch, which SELECT 1 or a ping would not show
 *                     (a SELECT still succeeds on a doomed branch), and PREPARE then needs
 *                     no more than XA PREPARE (or XA COMMIT ONE PHASE): 3PC pays no extra
 *                     round trip for the check.
 *   COMMIT_DECIDING   same checks; INSERT INTO xatm_decisions (gtrid, outcome) VALUES
 *                     ('gtrid', 'C') (a duplicate key, 1062, is recovery's abort row: a no
 *                     vote, like any error of it), XA END, XA COMMIT ONE PHASE
 *   COMMIT            XA COMMIT                       (1397 unknown XID -> XAER_NOTA)
 *   ROLLBACK          XA END (errors ignored) if the branch is ACTIVE here, XA ROLLBACK
 *                     (1397 -> XAER_NOTA)
 * The undo path: a vote that fails (any error in the probe, XA END, XA PREPARE or XA
 * COMMIT ONE PHASE, or a failed branch) runs XA END if still ACTIVE (error ignored) and XA
 * ROLLBACK, accepting 1397 (the server may already have dropped the branch; the code for
 * a doomed branch varies across versions), and returns the vote: XA_RBDEADLOCK for
 * 1213/1614, XA_RBTIMEOUT for 1205/1613, XA_RBROLLBACK otherwise. If that XA ROLLBACK
 * fails otherwise the outcome is unknown and the operation returns XAER_RMERR.
 *
 * Marker calls (rm.h, blocking, autocommit sessions without a branch): ensure = CREATE
 * TABLE IF NOT EXISTS (InnoDB, VARBINARY ids); find = a plain SELECT by gtrid, a consistent
 * non-locking read that never waits for a marker of an open or prepared branch; delete =
 * SET TRANSACTION ISOLATION LEVEL READ COMMITTED (the next statement only), then DELETE ...
 * WHERE gtrid IN (...): READ COMMITTED takes no gap locks, so the delete neither waits for
 * nor blocks the marker insert of a neighbouring gtrid (consecutive gtrids sort next to
 * each other); test_rm_mysql.c checks that with a prepared neighbour.
 *
 * Decision calls (rm.h, blocking, autocommit sessions without a branch): ensure = CREATE
 * TABLE IF NOT EXISTS (InnoDB, VARBINARY gtrid primary key); resolve = SET SESSION
 * innodb_lock_wait_timeout (whole seconds, at least 1), INSERT IGNORE (waits for a
 * transaction holding an uncommitted row of the gtrid; 1205 at the limit = busy), on a
 * duplicate a plain SELECT (autocommit: a fresh read view that sees the committed row), then
 * the timeout back to DEFAULT; delete and sweep run under READ COMMITTED like the marker
 * delete; old_commits is a plain SELECT, and so is max_epoch (both tables).
 *
 * Errors: 2002/2003/2006/2013/2055 and 1927 (connection killed) / 1053 (server shutdown)
 * -> XAER_RMFAIL, and the connection is dead for good (reconnect is off: a silent
 * reconnect would lose the branch). 1213 -> XA_RBDEADLOCK, 1205 -> XA_RBTIMEOUT, 1397 ->
 * XAER_NOTA, 1398 -> XAER_INVAL, 1399/1400 -> XAER_PROTO, 1440 -> XAER_DUPID, 1402 ->
 * XA_RBROLLBACK, 1613 -> XA_RBTIMEOUT, 1614 -> XA_RBDEADLOCK, others -> XAER_RMERR.
 * Messages carry the statement, the error number, SQLSTATE and server message.
 *
 * Timeouts: connect from the config. No read timeout: Connector/C applies it to every
 * read, so it would kill an application's legitimately long statement (and its branch);
 * instead TCP keepalive (idle 10 s, interval 5 s) and TCP_USER_TIMEOUT (30 s) notice a
 * dead peer within ~40 s even mid-statement (the same settings as the PostgreSQL row),
 * and callers bound operations with xatm_rm_run_parallel's deadline. Write timeout 60 s (a
 * send blocked that long means the peer is gone). A session opened with a call time limit
 * (xatm_rm_open_options: xatmd's recovery sessions, whose statements are all short) gets
 * it as its read and write timeout, rounded up to whole seconds: a server that stops
 * answering (SIGSTOP, a hung host whose kernel still acknowledges keepalives) then costs
 * XAER_RMFAIL, not a hung caller.
 *
 * Incarnation. The capability query at open also reads the server's start, UNIX_TIMESTAMP()
 * - Uptime (both whole seconds of the same statement's start, so the difference is exact:
 * 200 sessions opened at random sub-second offsets all read the same value), and
 * @@server_id; their hash is caps.incarnation, the high bits of this session's reference
 * (common/proto.h). Connection ids start again at 1 whenever mariadbd starts, so the tag
 * is what tells a recorded AP session from a new, unrelated connection with the same id
 * (rm.c compares it before session_alive and fence see an id).
 *
 * mysql_library_init runs once per process (pthread_once); the program calls
 * mysql_library_end() at exit if it wants every byte freed.
 */
#include <mysql.h>
#include <mysqld_error.h>
#include <errmsg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "rm_impl.h"

/* Oldest servers whose XA implementation xatm relies on. */
#define MY_MIN_MARIADB 100500UL /* 10.5: prepared branches survive disconnect and crash */
#define MY_MIN_MYSQL 50700UL    /* 5.7.7: same */
#define MY_DETACH_MYSQL 80029UL /* MySQL 8.0.29 detaches a branch from its session at prepare */
/* How long fence waits for a killed connection to leave the process list. */
#define MY_FENCE_WAIT_MS 5000
/* Socket-level dead-peer detection (see the file comment). */
#define MY_KEEPIDLE_S 10
#define MY_KEEPINTVL_S 5
#define MY_KEEPCNT 3
#define MY_USER_TIMEOUT_MS 30000
#define MY_WRITE_TIMEOUT_S 60

/* The session's XA state (see the diagram). */
enum my_xa {
    MY_XA_NONE = 0,
    MY_XA_ACTIVE,
    MY_XA_IDLE,
    MY_XA_PREPARED,
};

/* The statement in flight. */
enum my_step {
    MY_STEP_NONE = 0,
    MY_STEP_XA_START,    /* XA START xid */
    MY_STEP_MARKER,      /* INSERT INTO xatm_markers: the 3PC marker row (CAN_COMMIT) */
    MY_STEP_DECISION,    /* INSERT INTO xatm_decisions: the commit row (COMMIT_DECIDING) */
    MY_STEP_COUNT,       /* SHOW SESSION STATUS: the row-write counters */
    MY_STEP_XA_END,      /* XA END xid */
    MY_STEP_XA_PREPARE,  /* XA PREPARE xid */
    MY_STEP_XA_COMMIT1P, /* XA COMMIT xid ONE PHASE */
    MY_STEP_XA_COMMIT,   /* XA COMMIT xid */
    MY_STEP_XA_ROLLBACK, /* XA ROLLBACK xid */
};

/* Which non-blocking call the step is in. */
enum my_phase {
    MY_PHASE_QUERY = 0, /* mysql_real_query_start/_cont */
    MY_PHASE_STORE,     /* mysql_store_result_start/_cont */
};

/* One MySQL / MariaDB session. */
typedef struct my_conn {
    struct xatm_rm_conn head;  /* common head; must stay first */
    MYSQL *my;                 /* the Connector/C handle (owned) */
    enum my_xa xa;             /* XA state of `cur` on this session */
    xatm_xid cur;              /* the branch `xa` refers to (valid unless NONE) */
    bool base_known;           /* base_writes was read after XA START */
    uint64_t base_writes;      /* Handler_write+update+delete right after XA START */
    uint64_t *snap;            /* session snapshot (my_session_alive): sorted ids listed in
                                  PROCESSLIST or owning an InnoDB transaction */
    size_t n_snap;             /* entries in snap */
    uint64_t snap_max;         /* the highest id in snap */
    uint64_t snap_at_ms;       /* when it was taken (monotonic); 0 = no snapshot */
    bool last_known;           /* last_count holds a reading of this session's counters */
    uint64_t last_count;       /* the latest write-counter reading on this session: the
                                  next branch's baseline (see "Read-only detection") */
    bool native_out;           /* native() handed the MYSQL handle to the application:
                                  exec() no longer sees every statement of a branch */
    uint64_t changed;          /* rows the current branch's exec() statements changed */
    bool writes_known;         /* the write probe has run for this branch (it is IDLE) */
    uint64_t writes;           /* ... and counted this many row writes */
    /* the operation in flight */
    enum xatm_rm_op op;        /* which operation */
    xatm_xid xid;              /* its xid */
    enum my_step step;         /* statement in flight */
    enum my_phase phase;       /* query or store-result */
    int wait_status;           /* MYSQL_WAIT_* the library waits for */
    int qerr;                  /* mysql_real_query's return value */
    bool count_ok;             /* the last MY_STEP_COUNT result had its three rows */
    uint64_t count;            /* ... and their sum */
    MYSQL_RES *res;            /* mysql_store_result's return value */
    bool undoing;              /* on the undo path: XA END errors ignored, ends with vote */
    int vote;                  /* what the undo path returns */
    char sql[512];             /* text of the statement in flight */
} my_conn;

static my_conn *myc(xatm_rm_conn *c)
{
    return (my_conn *)c;
}

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_rc; /* mysql_library_init's result */

static void library_init(void)
{
    library_rc = mysql_library_init(0, NULL, NULL);
}

/* ---------------------------------------------------------------- capability decision */

static bool is_mariadb(const char *server_info)
{
    return server_info && strstr(server_info, "MariaDB") != NULL;
}

int xatm_rm__mysql_check_caps(const xatm_rm_config *cfg, const char *server_info,
                              unsigned long version_num, const char *innodb_support,
                              const char *default_engine, bool *detach_on_prepare,
                              char *err, size_t errlen)
{
    bool maria = is_mariadb(server_info);
    const char *info = server_info ? server_info : "?";
    if (maria && version_num < MY_MIN_MARIADB) {
        xatm_rm__msg(err, errlen, cfg, "mysql",
                     "server %s is too old: xatm needs MariaDB 10.5 or later (earlier versions "
                     "lose prepared XA branches at disconnect)",
                     info);
        return XATM_XAER_RMERR;
    }
    if (!maria && version_num < MY_MIN_MYSQL) {
        xatm_rm__msg(err, errlen, cfg, "mysql",
                     "server %s is too old: xatm needs MySQL 5.7 or later", info);
        return XATM_XAER_RMERR;
    }
    if (!innodb_support || (strcasecmp(innodb_support, "YES") != 0 &&
                            strcasecmp(innodb_support, "DEFAULT") != 0)) {
        xatm_rm__msg(err, errlen, cfg, "mysql",
                     "the InnoDB storage engine is not available (hint: XA needs a "
                     "transactional engine; enable InnoDB)");
        return XATM_XAER_RMERR;
    }
    if (!default_engine || strcasecmp(default_engine, "InnoDB") != 0) {
        xatm_rm__msg(err, errlen, cfg, "mysql",
                     "the default storage engine is %s, not InnoDB (hint: set "
                     "default_storage_engine=InnoDB: tables of a non-transactional engine "
                     "ignore rollback)",
                     default_engine ? default_engine : "unknown");
        return XATM_XAER_RMERR;
    }
    *detach_on_prepare = !maria && version_num >= MY_DETACH_MYSQL;
    return XATM_XA_OK;
}

/* ---------------------------------------------------------------- error mapping */

static bool lost_errno(unsigned e)
{
    return e == CR_CONNECTION_ERROR || e == CR_CONN_HOST_ERROR || e == CR_SERVER_GONE_ERROR ||
           e == CR_SERVER_LOST || e == CR_SERVER_LOST_EXTENDED || e == ER_CONNECTION_KILLED ||
           e == ER_SERVER_SHUTDOWN;
}

static int map_errno(unsigned e)
{
    if (lost_errno(e)) return XATM_XAER_RMFAIL;
    switch (e) {
    case ER_LOCK_DEADLOCK: return XATM_XA_RBDEADLOCK;
    case ER_LOCK_WAIT_TIMEOUT: return XATM_XA_RBTIMEOUT;
    case ER_XAER_NOTA: return XATM_XAER_NOTA;
    case ER_XAER_INVAL: return XATM_XAER_INVAL;
    case ER_XAER_RMFAIL: return XATM_XAER_PROTO; /* "command cannot be executed in state" */
    case ER_XAER_OUTSIDE: return XATM_XAER_PROTO;
    case ER_XAER_DUPID: return XATM_XAER_DUPID;
    case ER_XA_RBROLLBACK: return XATM_XA_RBROLLBACK;
    case ER_XA_RBTIMEOUT: return XATM_XA_RBTIMEOUT;
    case ER_XA_RBDEADLOCK: return XATM_XA_RBDEADLOCK;
    default: return XATM_XAER_RMERR;
    }
}

/* The vote of a branch that failed with error e (0: marked failed). */
static int rb_of(unsigned e)
{
    if (e == ER_LOCK_DEADLOCK || e == ER_XA_RBDEADLOCK) return XATM_XA_RBDEADLOCK;
    if (e == ER_LOCK_WAIT_TIMEOUT || e == ER_XA_RBTIMEOUT) return XATM_XA_RBTIMEOUT;
    return XATM_XA_RBROLLBACK;
}

/* Writes "<what> failed: error N (STATE): message" into errmsg, or appends it after "; "
 * when `append` (the undo path keeps the first cause). Returns rc. */
static int my_err(my_conn *m, int rc, bool append, const char *what)
{
    unsigned e = mysql_errno(m->my);
    if (lost_errno(e)) m->head.dead = true;
    if (append && m->head.errmsg[0]) {
        size_t n = strlen(m->head.errmsg);
        snprintf(m->head.errmsg + n, sizeof m->head.errmsg - n,
                 "; then %s failed: error %u (%s): %s", what, e, mysql_sqlstate(m->my),
                 mysql_error(m->my));
        return rc;
    }
    return xatm_rm__seterr(&m->head, rc, "%s failed: error %u (%s): %s", what, e,
                           mysql_sqlstate(m->my), mysql_error(m->my));
}

/* ---------------------------------------------------------------- the async machinery */

static bool xid_eq(const xatm_xid *a, const xatm_xid *b)
{
    return a->format_id == b->format_id && !strcmp(a->gtrid, b->gtrid) &&
           !strcmp(a->bqual, b->bqual);
}

/* Appends the string s (at most max bytes of it) at p; returns the end. */
static char *sql_put(char *p, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    memcpy(p, s, n);
    return p + n;
}

/* m->sql := "XA <verb> '<gtrid>','<bqual>',<formatID><tail>", spelled without snprintf
 * (four of these per MariaDB branch of every transaction). verb and tail are this file's
 * constants; gtrid and bqual are cut at their limits, so the text always fits. */
static void set_xa_sql(my_conn *m, const char *verb, const char *tail)
{
    _Static_assert(sizeof m->sql > 3 + 8 + 2 + XATM_GTRID_MAX + 3 + XATM_BQUAL_MAX + 2 + 10 + 10,
                   "an XA statement always fits in my_conn.sql");
    const xatm_xid *x = &m->xid;
    char *p = sql_put(m->sql, "XA ", 3);
    p = sql_put(p, verb, 8);
    p = sql_put(p, " '", 2);
    p = sql_put(p, x->gtrid, XATM_GTRID_MAX);
    p = sql_put(p, "','", 3);
    p = sql_put(p, x->bqual, XATM_BQUAL_MAX);
    p = sql_put(p, "',", 2);
    p += xatm_put_decimal(p, x->format_id);
    p = sql_put(p, tail, 10);
    *p = '\0';
}

static void set_sql(my_conn *m, enum my_step step)
{
    const xatm_xid *x = &m->xid;
    switch (step) {
    case MY_STEP_XA_START:
        set_xa_sql(m, "START", "");
        break;
    case MY_STEP_MARKER: {
        char g[2 * XATM_GTRID_MAX + 1], b[2 * XATM_BQUAL_MAX + 1];
        mysql_real_escape_string(m->my, g, x->gtrid, (unsigned long)strlen(x->gtrid));
        mysql_real_escape_string(m->my, b, x->bqual, (unsigned long)strlen(x->bqual));
        snprintf(m->sql, sizeof m->sql,
                 "INSERT INTO " XATM_MARKER_TABLE " (gtrid, rm) VALUES ('%s', '%s')", g, b);
        break;
    }
    case MY_STEP_DECISION:
        /* the gtrid is of the xid alphabet (rm.c checked it): no escaping needed */
        snprintf(m->sql, sizeof m->sql,
                 "INSERT INTO " XATM_DECISION_TABLE " (gtrid, outcome) VALUES ('%s', 'C')",
                 x->gtrid);
        break;
    case MY_STEP_COUNT:
        snprintf(m->sql, sizeof m->sql,
                 "SHOW SESSION STATUS WHERE Variable_name IN "
                 "('Handler_write', 'Handler_update', 'Handler_delete')");
        break;
    case MY_STEP_XA_END:
        set_xa_sql(m, "END", "");
        break;
    case MY_STEP_XA_PREPARE:
        set_xa_sql(m, "PREPARE", "");
        break;
    case MY_STEP_XA_COMMIT1P:
        set_xa_sql(m, "COMMIT", " ONE PHASE");
        break;
    case MY_STEP_XA_COMMIT:
        set_xa_sql(m, "COMMIT", "");
        break;
    case MY_STEP_XA_ROLLBACK:
        set_xa_sql(m, "ROLLBACK", "");
        break;
    default:
        m->sql[0] = '\0';
        break;
    }
}

static int finish(my_conn *m, int rc)
{
    m->step = MY_STEP_NONE;
    m->wait_status = 0;
    if (m->res) {
        mysql_free_result(m->res);
        m->res = NULL;
    }
    return rc;
}

static int query_done(my_conn *m);
static int store_done(my_conn *m);

/* Sends the statement of `step`; returns PENDING or, if it completed at once, whatever
 * the state machine decides next. */
static int start_step(my_conn *m, enum my_step step)
{
    int status;
    m->step = step;
    m->phase = MY_PHASE_QUERY;
    m->qerr = 0;
    m->res = NULL;
    m->count_ok = false;
    m->count = 0;
    set_sql(m, step);
    status = mysql_real_query_start(&m->qerr, m->my, m->sql, (unsigned long)strlen(m->sql));
    if (status) {
        m->wait_status = status;
        return XATM_RM_PENDING;
    }
    return query_done(m);
}

/* The XA END of the vote path is needed first when the branch is still ACTIVE here. */
static bool active_here(const my_conn *m)
{
    return m->xa == MY_XA_ACTIVE && xid_eq(&m->cur, &m->xid);
}

/* Enters the undo path with `vote` (the reason is already in errmsg). */
static int undo(my_conn *m, int vote)
{
    m->undoing = true;
    m->vote = vote;
    if (active_here(m)) return start_step(m, MY_STEP_XA_END);
    return start_step(m, MY_STEP_XA_ROLLBACK);
}

/* The branch's fate once the write probe (or CAN_COMMIT) has answered and it is IDLE. */
static int after_idle(my_conn *m)
{
    if (m->op == XATM_RM_OP_CAN_COMMIT) return finish(m, XATM_XA_OK);
    if (m->op == XATM_RM_OP_COMMIT_ONE_PHASE || m->op == XATM_RM_OP_COMMIT_DECIDING)
        return start_step(m, MY_STEP_XA_COMMIT1P);
    /* PREPARE; without a probe (IDLE before we could ask) prepare: a safe yes */
    if (m->writes_known && m->writes == 0) return start_step(m, MY_STEP_XA_COMMIT1P);
    return start_step(m, MY_STEP_XA_PREPARE);
}

/* The statement of m->step has completed with error e (0 = success): next step or end. */
static int step_done(my_conn *m, unsigned e)
{
    bool ours = xid_eq(&m->cur, &m->xid);

    if (e && lost_errno(e)) {
        /* the server rolls back an unprepared branch when the session goes; a prepared
         * one stays for recovery. Either way nothing more can be done here. */
        int rc = my_err(m, XATM_XAER_RMFAIL, m->undoing, m->sql);
        m->head.dead = true;
        m->xa = MY_XA_NONE;
        return finish(m, rc);
    }

    switch (m->step) {
    case MY_STEP_XA_START:
        if (e) return finish(m, my_err(m, map_errno(e), false, m->sql));
        m->xa = MY_XA_ACTIVE;
        m->cur = m->xid;
        m->writes_known = false;
        m->changed = 0;
        if (m->last_known) {
            /* an older reading is a safe baseline (see "Read-only detection") */
            m->base_known = true;
            m->base_writes = m->last_count;
            return finish(m, XATM_XA_OK);
        }
        m->base_known = false;
        return start_step(m, MY_STEP_COUNT);

    case MY_STEP_MARKER:
        if (e) {
            int rc = my_err(m, rb_of(e), false, m->sql);
            size_t n = strlen(m->head.errmsg);
            snprintf(m->head.errmsg + n, sizeof m->head.errmsg - n,
                     "; branch %s votes no: the 3PC marker row could not be inserted%s",
                     m->xid.gtrid,
                     e == ER_NO_SUCH_TABLE
                         ? " (hint: xatmd creates the table at start-up; start xatmd once "
                           "against this database, or see docs/protocols.md)"
                         : "");
            return undo(m, rc);
        }
        /* the marker is a row write: no probe needed, the branch is not read-only */
        m->writes_known = true;
        m->writes = 1;
        return start_step(m, MY_STEP_XA_END);

    case MY_STEP_DECISION:
        if (e) {
            int rc = my_err(m, rb_of(e), false, m->sql);
            size_t n = strlen(m->head.errmsg);
            snprintf(m->head.errmsg + n, sizeof m->head.errmsg - n,
                     "; decider %s does not commit%s", m->xid.gtrid,
                     e == ER_DUP_ENTRY ? " (recovery had already decided abort for this "
                                         "transaction)"
                     : e == ER_NO_SUCH_TABLE
                         ? " (hint: xatmd creates the table at start-up when tm.decision_rm "
                           "names this RM)"
                         : "");
            return undo(m, rc);
        }
        m->writes_known = true; /* the row is a write */
        m->writes = 1;
        return start_step(m, MY_STEP_XA_END);

    case MY_STEP_COUNT:
        m->last_known = !e && m->count_ok;
        m->last_count = m->count;
        if (m->op == XATM_RM_OP_START) {
            /* the branch is started; without a baseline it will simply prepare */
            m->base_known = !e && m->count_ok;
            m->base_writes = m->count;
            return finish(m, XATM_XA_OK);
        }
        if (e) return undo(m, my_err(m, rb_of(e), false, m->sql));
        m->writes_known = m->base_known && m->count_ok && m->count >= m->base_writes;
        m->writes = m->writes_known ? m->count - m->base_writes : 0;
        return start_step(m, MY_STEP_XA_END);

    case MY_STEP_XA_END:
        if (m->undoing) return start_step(m, MY_STEP_XA_ROLLBACK);
        if (e) return undo(m, my_err(m, rb_of(e), false, m->sql));
        m->xa = MY_XA_IDLE;
        return after_idle(m);

    case MY_STEP_XA_PREPARE:
        if (e) return undo(m, my_err(m, rb_of(e), false, m->sql));
        m->xa = MY_XA_PREPARED;
        return finish(m, XATM_XA_OK);

    case MY_STEP_XA_COMMIT1P:
        if (e) return undo(m, my_err(m, rb_of(e), false, m->sql));
        m->xa = MY_XA_NONE;
        return finish(m, m->op == XATM_RM_OP_PREPARE ? XATM_XA_RDONLY : XATM_XA_OK);

    case MY_STEP_XA_COMMIT:
        if (e) {
            /* unknown xid: the branch is gone from this session too (MySQL 8.0.29+ lets
             * another session finish it while this one is connected) */
            if (e == ER_XAER_NOTA && ours) m->xa = MY_XA_NONE;
            return finish(m, my_err(m, map_errno(e), false, m->sql));
        }
        if (ours) m->xa = MY_XA_NONE;
        return finish(m, XATM_XA_OK);

    case MY_STEP_XA_ROLLBACK:
        if (m->undoing && m->op != XATM_RM_OP_ROLLBACK) {
            if (e && e != ER_XAER_NOTA) {
                /* the branch may still exist: the caller must roll it back again */
                return finish(m, my_err(m, XATM_XAER_RMERR, true, m->sql));
            }
            if (ours) m->xa = MY_XA_NONE;
            return finish(m, m->vote);
        }
        if (e) {
            if (e == ER_XAER_NOTA && ours) m->xa = MY_XA_NONE;
            return finish(m, my_err(m, map_errno(e), false, m->sql));
        }
        if (ours) m->xa = MY_XA_NONE;
        return finish(m, XATM_XA_OK);

    default:
        return finish(m, xatm_rm__seterr(&m->head, XATM_XAER_PROTO,
                                         "result without a statement in flight"));
    }
}

static int query_done(my_conn *m)
{
    int status;
    if (m->qerr != 0) return step_done(m, mysql_errno(m->my));
    if (mysql_field_count(m->my) == 0) return step_done(m, 0);
    m->phase = MY_PHASE_STORE;
    status = mysql_store_result_start(&m->res, m->my);
    if (status) {
        m->wait_status = status;
        return XATM_RM_PENDING;
    }
    return store_done(m);
}

static int store_done(my_conn *m)
{
    unsigned e;
    if (!m->res) {
        e = mysql_errno(m->my);
        return step_done(m, e ? e : CR_SERVER_LOST);
    }
    if (m->step == MY_STEP_COUNT) {
        MYSQL_ROW row;
        unsigned n = 0;
        m->count = 0;
        while ((row = mysql_fetch_row(m->res)) != NULL) {
            if (mysql_num_fields(m->res) < 2 || !row[1]) break;
            m->count += strtoull(row[1], NULL, 10);
            n++;
        }
        m->count_ok = n == 3;
    }
    mysql_free_result(m->res);
    m->res = NULL;
    return step_done(m, 0);
}

/* A branch that must vote no before any statement: marked failed, or the last statement
 * of the session failed. Returns the reason's error number (0 for the mark) via *e. */
static bool doomed(my_conn *m, unsigned *e)
{
    *e = mysql_errno(m->my);
    return m->head.failed || *e != 0;
}

static int my_op_begin(xatm_rm_conn *c, enum xatm_rm_op op, const xatm_xid *xid)
{
    my_conn *m = myc(c);
    unsigned e = 0;
    bool ours = m->xa != MY_XA_NONE && xid_eq(&m->cur, xid);

    if (c->dead)
        return xatm_rm__seterr(c, XATM_XAER_RMFAIL, "operation refused: connection lost");
    m->op = op;
    m->xid = *xid;
    m->undoing = false;
    m->vote = XATM_XA_OK;

    switch (op) {
    case XATM_RM_OP_START:
        if (m->xa != MY_XA_NONE)
            return xatm_rm__seterr(c, XATM_XAER_PROTO,
                                   "START of %s: branch %s is still open on this session",
                                   xid->gtrid, m->cur.gtrid);
        c->failed = false;
        return start_step(m, MY_STEP_XA_START);

    case XATM_RM_OP_PREPARE:
    case XATM_RM_OP_COMMIT_ONE_PHASE:
    case XATM_RM_OP_CAN_COMMIT:
    case XATM_RM_OP_COMMIT_DECIDING:
        if (!ours || (m->xa != MY_XA_ACTIVE && m->xa != MY_XA_IDLE) ||
            (op == XATM_RM_OP_COMMIT_DECIDING && m->xa != MY_XA_ACTIVE))
            return xatm_rm__seterr(c, XATM_XAER_PROTO,
                                   "%s: branch %s is not active on this session",
                                   op == XATM_RM_OP_PREPARE           ? "PREPARE"
                                   : op == XATM_RM_OP_CAN_COMMIT      ? "CAN_COMMIT"
                                   : op == XATM_RM_OP_COMMIT_DECIDING ? "COMMIT_DECIDING"
                                                                      : "COMMIT_ONE_PHASE",
                                   xid->gtrid);
        if (doomed(m, &e)) {
            if (lost_errno(e)) {
                c->dead = true;
                m->xa = MY_XA_NONE;
                return xatm_rm__seterr(c, XATM_XAER_RMFAIL,
                                       "branch %s: connection lost: error %u: %s", xid->gtrid,
                                       e, mysql_error(m->my));
            }
            if (e)
                xatm_rm__seterr(c, rb_of(e),
                                "branch %s votes no: its last statement failed with error %u "
                                "(%s): %s; rolled back",
                                xid->gtrid, e, mysql_sqlstate(m->my), mysql_error(m->my));
            else
                xatm_rm__seterr(c, XATM_XA_RBROLLBACK,
                                "branch %s votes no: it was marked failed; rolled back",
                                xid->gtrid);
            return undo(m, rb_of(e));
        }
        if (m->xa == MY_XA_ACTIVE) {
            if (op == XATM_RM_OP_COMMIT_ONE_PHASE) return start_step(m, MY_STEP_XA_END);
            if (op == XATM_RM_OP_CAN_COMMIT) return start_step(m, MY_STEP_MARKER);
            if (op == XATM_RM_OP_COMMIT_DECIDING) return start_step(m, MY_STEP_DECISION);
            if (!m->native_out && m->changed > 0) {
                /* known to write (see "Read-only detection"): no probe */
                m->writes_known = true;
                m->writes = m->changed;
                return start_step(m, MY_STEP_XA_END);
            }
            return start_step(m, MY_STEP_COUNT);
        }
        return after_idle(m); /* IDLE: CAN_COMMIT already ran */

    case XATM_RM_OP_COMMIT:
        return start_step(m, MY_STEP_XA_COMMIT);

    case XATM_RM_OP_ROLLBACK:
        if (active_here(m)) {
            m->undoing = true; /* XA END errors ignored; ends with vote = XA_OK */
            m->vote = XATM_XA_OK;
            return start_step(m, MY_STEP_XA_END);
        }
        return start_step(m, MY_STEP_XA_ROLLBACK);

    }
    return xatm_rm__seterr(c, XATM_XAER_INVAL, "unknown operation %d", (int)op);
}

static void my_op_wait(xatm_rm_conn *c, int *fd, short *events)
{
    my_conn *m = myc(c);
    short ev = 0;
    *fd = (int)mysql_get_socket(m->my);
    if (m->wait_status & MYSQL_WAIT_READ) ev |= POLLIN;
    if (m->wait_status & MYSQL_WAIT_WRITE) ev |= POLLOUT;
    if (m->wait_status & MYSQL_WAIT_EXCEPT) ev |= POLLPRI;
    *events = ev;
}

static int my_op_continue(xatm_rm_conn *c, short revents)
{
    my_conn *m = myc(c);
    int want = m->wait_status, got = 0, status;
    if ((want & MYSQL_WAIT_READ) && (revents & (POLLIN | POLLERR | POLLHUP)))
        got |= MYSQL_WAIT_READ;
    if ((want & MYSQL_WAIT_WRITE) && (revents & (POLLOUT | POLLERR | POLLHUP)))
        got |= MYSQL_WAIT_WRITE;
    if ((want & MYSQL_WAIT_EXCEPT) && (revents & POLLPRI)) got |= MYSQL_WAIT_EXCEPT;
    if (!got) got = want & ~MYSQL_WAIT_TIMEOUT; /* spurious call: let the library retry */

    if (m->phase == MY_PHASE_QUERY) {
        status = mysql_real_query_cont(&m->qerr, m->my, got);
        if (status) {
            m->wait_status = status;
            return XATM_RM_PENDING;
        }
        return query_done(m);
    }
    status = mysql_store_result_cont(&m->res, m->my, got);
    if (status) {
        m->wait_status = status;
        return XATM_RM_PENDING;
    }
    return store_done(m);
}

/* ---------------------------------------------------------------- blocking calls */

/* Runs one statement (blocking). *out gets the stored result, if any (caller frees). */
static int run_sql(my_conn *m, const char *sql, const char *what, MYSQL_RES **out,
                   uint64_t *affected)
{
    MYSQL_RES *r;
    if (out) *out = NULL;
    if (affected) *affected = 0;
    if (m->head.dead)
        return xatm_rm__seterr(&m->head, XATM_XAER_RMFAIL, "%s refused: connection lost", what);
    if (mysql_real_query(m->my, sql, (unsigned long)strlen(sql)) != 0)
        return my_err(m, lost_errno(mysql_errno(m->my)) ? XATM_XAER_RMFAIL : XATM_XAER_RMERR,
                      false, what);
    if (mysql_field_count(m->my) == 0) {
        if (affected) *affected = (uint64_t)mysql_affected_rows(m->my);
        return XATM_XA_OK;
    }
    r = mysql_store_result(m->my);
    if (!r)
        return my_err(m, lost_errno(mysql_errno(m->my)) ? XATM_XAER_RMFAIL : XATM_XAER_RMERR,
                      false, what);
    if (affected) *affected = (uint64_t)mysql_num_rows(r);
    if (out)
        *out = r;
    else
        mysql_free_result(r);
    return XATM_XA_OK;
}

/* Copies len bytes of s into a NUL-terminated dst if they form a safe id. */
static bool copy_id(char *dst, size_t size, const char *s, size_t len)
{
    if (len == 0 || len >= size) return false;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return xatm_rm__id_safe(dst, size - 1);
}

static int my_recover(xatm_rm_conn *c, uint32_t format_id, const char *tm_id,
                      void (*cb)(const xatm_rm_prepared *p, void *arg), void *arg)
{
    my_conn *m = myc(c);
    MYSQL_RES *r;
    MYSQL_ROW row;
    m->snap_at_ms = 0; /* a new scan: the next session check takes a new snapshot */
    int rc = run_sql(m, "XA RECOVER", "XA RECOVER", &r, NULL);
    if (rc != XATM_XA_OK) return rc;
    if (!r || mysql_num_fields(r) < 4) {
        if (r) mysql_free_result(r);
        return xatm_rm__seterr(c, XATM_XAER_RMERR, "XA RECOVER: unexpected result shape");
    }
    while ((row = mysql_fetch_row(r)) != NULL) {
        unsigned long *len = mysql_fetch_lengths(r);
        char gtrid[XATM_GTRID_MAX + 1], bqual[XATM_BQUAL_MAX + 1];
        xatm_rm_prepared prep;
        xatm_gtrid_parts parts;
        long long fid;
        unsigned long gl, bl;
        if (!row[0] || !row[1] || !row[2] || !row[3] || !len) continue;
        fid = strtoll(row[0], NULL, 10);
        gl = strtoul(row[1], NULL, 10);
        bl = strtoul(row[2], NULL, 10);
        if (fid != (long long)format_id) continue;
        if (gl + bl > len[3] || gl > XATM_GTRID_MAX || bl > XATM_BQUAL_MAX) continue;
        if (!copy_id(gtrid, sizeof gtrid, row[3], gl)) continue;
        if (!copy_id(bqual, sizeof bqual, row[3] + gl, bl)) continue;
        if (xatm_gtrid_parse(gtrid, &parts) != 0 || strcmp(parts.tm_id, tm_id) != 0) continue;
        if (xatm_xid_make(&prep.xid, format_id, gtrid, bqual) != 0) continue;
        cb(&prep, arg);
    }
    mysql_free_result(r);
    return XATM_XA_OK;
}

/* session_id is a plain connection id of this server, never this session's (rm.c has
 * unpacked the reference and ruled out other runs of the server and this session). */
/* Is session_id alive right now? One query (PROCESSLIST + INNODB_TRX). A session counts
 * as alive until it has left the process list AND InnoDB has detached its transaction:
 * MariaDB 10.11 frees the xid for other sessions before InnoDB detaches it, and an XA
 * COMMIT landing in between answers OK and does nothing (docs/rm-facts.md, fact b).
 * INNODB_TRX may lag by up to 0.1 s, which only makes this answer "alive" a little longer. */
static int my_session_alive_now(my_conn *m, uint64_t session_id)
{
    char sql[320];
    MYSQL_RES *r;
    MYSQL_ROW row;
    snprintf(sql, sizeof sql,
             "SELECT (SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %llu)"
             " + (SELECT COUNT(*) FROM information_schema.INNODB_TRX"
             " WHERE trx_mysql_thread_id = %llu)",
             (unsigned long long)session_id, (unsigned long long)session_id);
    int rc = run_sql(m, sql, "session check (PROCESSLIST, INNODB_TRX)", &r, NULL);
    if (rc != XATM_XA_OK) return rc;
    row = r ? mysql_fetch_row(r) : NULL;
    int alive = row && row[0] && strcmp(row[0], "0") != 0;
    if (r) mysql_free_result(r);
    return alive ? 1 : 0;
}

static uint64_t my_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Takes the session snapshot: every id in PROCESSLIST or owning an InnoDB transaction. */
static int my_snapshot(my_conn *m)
{
    MYSQL_RES *r;
    MYSQL_ROW row;
    int rc = run_sql(m,
                     "SELECT ID FROM information_schema.PROCESSLIST UNION "
                     "SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX",
                     "session snapshot (PROCESSLIST, INNODB_TRX)", &r, NULL);
    if (rc != XATM_XA_OK) return rc;
    size_t n = r ? (size_t)mysql_num_rows(r) : 0;
    uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) {
        if (r) mysql_free_result(r);
        return xatm_rm__seterr(&m->head, XATM_XAER_RMERR, "session snapshot: out of memory");
    }
    size_t k = 0;
    while (r && k < n && (row = mysql_fetch_row(r)))
        if (row[0]) ids[k++] = strtoull(row[0], NULL, 10);
    if (r) mysql_free_result(r);
    qsort(ids, k, sizeof *ids, u64_cmp);
    free(m->snap);
    m->snap = ids;
    m->n_snap = k;
    m->snap_max = k ? ids[k - 1] : 0;
    m->snap_at_ms = my_now_ms();
    return XATM_XA_OK;
}

/* Recovery asks this for every MariaDB branch it may finish, so one query per call made
 * recovery quadratic in the branches in doubt (INNODB_TRX lists every prepared one). It
 * answers from a snapshot instead, taken at the first call after a scan (XA RECOVER) and
 * renewed after MY_SNAPSHOT_MS. Safe because a session never comes back: an id that the
 * snapshot does not list and that is not above its highest id had ended when the snapshot
 * was taken (connection ids only grow within one run of the server; references to another
 * run never reach here, rm.c answers them). An id above the highest asks the server. The
 * snapshot can only be older than the truth, so at worst a session that ended since is
 * still "alive" until the next one: recovery waits a little longer, never too little.
 * Renewed no more often than INNODB_TRX's 0.1 s cache, which refreshes only when not read
 * for that long. fence waits for a detach with direct queries. */
#define MY_SNAPSHOT_MS 1000u
static int my_session_alive(xatm_rm_conn *c, uint64_t session_id)
{
    my_conn *m = myc(c);
    uint64_t now = my_now_ms();
    if (m->snap_at_ms == 0 || now - m->snap_at_ms >= MY_SNAPSHOT_MS) {
        int rc = my_snapshot(m);
        if (rc != XATM_XA_OK) return rc;
    }
    if (session_id > m->snap_max) return my_session_alive_now(m, session_id);
    return bsearch(&session_id, m->snap, m->n_snap, sizeof *m->snap, u64_cmp) ? 1 : 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int my_fence(xatm_rm_conn *c, uint64_t session_id)
{
    my_conn *m = myc(c);
    char sql[64];
    int rc;
    snprintf(sql, sizeof sql, "KILL CONNECTION %llu", (unsigned long long)session_id);
    rc = run_sql(m, sql, "fence (KILL CONNECTION)", NULL, NULL);
    if (rc != XATM_XA_OK && mysql_errno(m->my) != ER_NO_SUCH_THREAD) return rc;
    m->head.errmsg[0] = '\0';
    /* KILL returns before the victim has disconnected; its prepared branch stays attached
     * until the session is gone from the process list */
    for (unsigned waited = 0;; waited += 120) {
        rc = my_session_alive_now(m, session_id);
        if (rc <= 0) {
            m->snap_at_ms = 0; /* the snapshot still lists the fenced session */
            return rc;     /* 0: gone; <0: error */
        }
        if (waited >= MY_FENCE_WAIT_MS) break;
        /* INNODB_TRX (read by the session check) is refreshed only after 0.1 s without
         * readers: poll slower than that or the answer stays stale */
        sleep_ms(120);
    }
    return xatm_rm__seterr(c, XATM_XAER_RMERR,
                           "fence: connection %llu still listed %u ms after KILL CONNECTION",
                           (unsigned long long)session_id, (unsigned)MY_FENCE_WAIT_MS);
}

static int my_exec(xatm_rm_conn *c, const char *sql, uint64_t *affected)
{
    my_conn *m = myc(c);
    int rc = run_sql(m, sql, "statement", NULL, affected);
    if (rc != XATM_XA_OK && m->xa == MY_XA_ACTIVE) c->failed = true;
    if (rc == XATM_XA_OK && m->xa == MY_XA_ACTIVE && mysql_field_count(m->my) == 0) {
        my_ulonglong n = mysql_affected_rows(m->my);
        if (n != (my_ulonglong)-1) m->changed += (uint64_t)n;
    }
    return rc;
}

/* ---------------------------------------------------------------- 3PC markers */

static int my_markers_idle(my_conn *m, const char *what);

static int my_markers_ensure(xatm_rm_conn *c)
{
    int rc = my_markers_idle(myc(c), "marker table check");
    if (rc != XATM_XA_OK) return rc;
    return run_sql(myc(c),
                   "CREATE TABLE IF NOT EXISTS " XATM_MARKER_TABLE
                   " (gtrid VARBINARY(64) NOT NULL, rm VARBINARY(32) NOT NULL,"
                   " created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
                   " PRIMARY KEY (gtrid, rm)) ENGINE=InnoDB",
                   "CREATE TABLE IF NOT EXISTS " XATM_MARKER_TABLE, NULL, NULL);
}

/* Refuses a blocking marker call while this session has a branch open (its statements
 * would become part of the branch). */
static int my_markers_idle(my_conn *m, const char *what)
{
    if (m->xa == MY_XA_NONE) return XATM_XA_OK;
    return xatm_rm__seterr(&m->head, XATM_XAER_PROTO, "%s: branch %s is open on this session",
                           what, m->cur.gtrid);
}

static int my_markers_find(xatm_rm_conn *c, const char *gtrid,
                           void (*cb)(const char *rm, void *arg), void *arg)
{
    my_conn *m = myc(c);
    char g[2 * XATM_GTRID_MAX + 1], sql[256];
    MYSQL_RES *r;
    MYSQL_ROW row;
    int rc = my_markers_idle(m, "marker lookup");
    if (rc != XATM_XA_OK) return rc;
    mysql_real_escape_string(m->my, g, gtrid, (unsigned long)strlen(gtrid));
    snprintf(sql, sizeof sql, "SELECT rm FROM " XATM_MARKER_TABLE " WHERE gtrid = '%s'", g);
    rc = run_sql(m, sql, "marker lookup (SELECT FROM " XATM_MARKER_TABLE ")", &r, NULL);
    if (rc != XATM_XA_OK) return rc;
    while (r && (row = mysql_fetch_row(r)) != NULL) {
        unsigned long *len = mysql_fetch_lengths(r);
        char rm[XATM_RM_NAME_MAX + 1];
        if (!row[0] || !len || len[0] > XATM_RM_NAME_MAX) continue;
        memcpy(rm, row[0], len[0]);
        rm[len[0]] = '\0';
        cb(rm, arg);
    }
    if (r) mysql_free_result(r);
    return XATM_XA_OK;
}

/* Runs a DELETE of marker or decision rows under READ COMMITTED (the next statement only):
 * no gap locks, so it never waits for nor blocks an application's insert of a neighbouring
 * gtrid (consecutive gtrids sort next to each other). `what` and `table` name it in errors. */
static int my_delete_read_committed(my_conn *m, const char *sql, const char *what,
                                    const char *table, uint64_t *deleted)
{
    char set_what[128];
    snprintf(set_what, sizeof set_what, "%s (SET TRANSACTION ISOLATION LEVEL READ COMMITTED)",
             what);
    int rc = run_sql(m, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", set_what, NULL, NULL);
    if (rc != XATM_XA_OK) return rc;
    char del_what[128];
    snprintf(del_what, sizeof del_what, "%s (DELETE FROM %s)", what, table);
    return run_sql(m, sql, del_what, NULL, deleted);
}

static int my_markers_delete(xatm_rm_conn *c, const char *const *gtrids, size_t n)
{
    my_conn *m = myc(c);
    int rc = my_markers_idle(m, "marker delete");
    if (rc != XATM_XA_OK) return rc;
    char *sql = xatm_rm__gtrid_list_sql(c, "marker delete",
                                        "DELETE FROM " XATM_MARKER_TABLE " WHERE gtrid IN ", gtrids, n);
    if (!sql) return XATM_XAER_RMERR;
    rc = my_delete_read_committed(m, sql, "marker delete", XATM_MARKER_TABLE, NULL);
    free(sql);
    return rc;
}

/* ---------------------------------------------------------------- decision rows */

static int my_decisions_ensure(xatm_rm_conn *c)
{
    int rc = my_markers_idle(myc(c), "decision table check");
    if (rc != XATM_XA_OK) return rc;
    return run_sql(myc(c),
                   "CREATE TABLE IF NOT EXISTS " XATM_DECISION_TABLE
                   " (gtrid VARBINARY(64) NOT NULL PRIMARY KEY, outcome CHAR(1) NOT NULL,"
                   " created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB",
                   "CREATE TABLE IF NOT EXISTS " XATM_DECISION_TABLE, NULL, NULL);
}

/* The outcome letter of gtrid's row ('C' / 'A'), 0 when there is none. */
static int my_outcome_of(my_conn *m, const char *gtrid, char *outcome)
{
    char sql[256];
    MYSQL_RES *r;
    MYSQL_ROW row;
    /* autocommit: a fresh consistent read, which sees the row a waited-for transaction
     * committed */
    snprintf(sql, sizeof sql, "SELECT outcome FROM " XATM_DECISION_TABLE " WHERE gtrid = '%s'",
             gtrid);
    int rc = run_sql(m, sql, "decision resolve (SELECT FROM " XATM_DECISION_TABLE ")", &r, NULL);
    if (rc != XATM_XA_OK) return rc;
    *outcome = 0;
    if (r && (row = mysql_fetch_row(r)) != NULL && row[0]) *outcome = row[0][0];
    if (r) mysql_free_result(r);
    return XATM_XA_OK;
}

static int my_decision_resolve(xatm_rm_conn *c, const char *gtrid, uint32_t lock_timeout_ms,
                               enum xatm_decision *out)
{
    my_conn *m = myc(c);
    char sql[256], outcome = 0;
    uint64_t inserted = 0;
    int rc = my_markers_idle(m, "decision resolve");
    if (rc != XATM_XA_OK) return rc;
    /* whole seconds, at least 1: InnoDB's unit */
    snprintf(sql, sizeof sql, "SET SESSION innodb_lock_wait_timeout = %u",
             (unsigned)((lock_timeout_ms + 999) / 1000));
    rc = run_sql(m, sql, "decision resolve (SET innodb_lock_wait_timeout)", NULL, NULL);
    if (rc != XATM_XA_OK) return rc;
    /* waits for a transaction holding an uncommitted row of gtrid; then 1 row (inserted:
     * no row was there, or that transaction rolled back) or 0 (a duplicate) */
    snprintf(sql, sizeof sql,
             "INSERT IGNORE INTO " XATM_DECISION_TABLE " (gtrid, outcome) VALUES ('%s', 'A')",
             gtrid);
    rc = run_sql(m, sql, "decision resolve (INSERT IGNORE INTO " XATM_DECISION_TABLE ")", NULL,
                 &inserted);
    bool busy = rc != XATM_XA_OK && mysql_errno(m->my) == ER_LOCK_WAIT_TIMEOUT;
    if (rc == XATM_XA_OK && inserted == 0) {
        rc = my_outcome_of(m, gtrid, &outcome);
    } else if (rc == XATM_XA_OK) {
        outcome = 'A';
    }
    if (!c->dead) {
        int rrc = run_sql(m, "SET SESSION innodb_lock_wait_timeout = DEFAULT",
                          "decision resolve (SET innodb_lock_wait_timeout = DEFAULT)", NULL,
                          NULL);
        if (rrc != XATM_XA_OK && (rc == XATM_XA_OK || busy)) return rrc;
    }
    return xatm_rm__decision_result(c, gtrid, rc, busy, outcome, out);
}

static int my_decisions_delete(xatm_rm_conn *c, const char *const *gtrids, size_t n)
{
    my_conn *m = myc(c);
    int rc = my_markers_idle(m, "decision delete");
    if (rc != XATM_XA_OK) return rc;
    /* only commit rows: an abort row must outlive the decider's session */
    char *sql = xatm_rm__gtrid_list_sql(
        c, "decision delete",
        "DELETE FROM " XATM_DECISION_TABLE " WHERE outcome = 'C' AND gtrid IN ", gtrids, n);
    if (!sql) return XATM_XAER_RMERR;
    rc = my_delete_read_committed(m, sql, "decision delete", XATM_DECISION_TABLE, NULL);
    free(sql);
    return rc;
}

static int my_decisions_sweep(xatm_rm_conn *c, const char *prefix, uint32_t older_than_s,
                              uint64_t *deleted)
{
    my_conn *m = myc(c);
    char sql[512];
    int rc = my_markers_idle(m, "decision sweep");
    if (rc != XATM_XA_OK) return rc;
    snprintf(sql, sizeof sql,
             "DELETE FROM " XATM_DECISION_TABLE " WHERE outcome = 'A' AND LEFT(gtrid, %zu) = "
             "'%s' AND created < NOW() - INTERVAL %u SECOND",
             strlen(prefix), prefix, (unsigned)older_than_s);
    return my_delete_read_committed(m, sql, "decision sweep", XATM_DECISION_TABLE, deleted);
}

static int my_decisions_old_commits(xatm_rm_conn *c, const char *prefix, uint32_t older_than_s,
                                    unsigned limit, void (*cb)(const char *gtrid, void *arg),
                                    void *arg)
{
    my_conn *m = myc(c);
    char sql[512];
    MYSQL_RES *r;
    MYSQL_ROW row;
    int rc = my_markers_idle(m, "decision listing");
    if (rc != XATM_XA_OK) return rc;
    snprintf(sql, sizeof sql,
             "SELECT gtrid FROM " XATM_DECISION_TABLE " WHERE outcome = 'C' AND LEFT(gtrid, %zu) "
             "= '%s' AND created < NOW() - INTERVAL %u SECOND ORDER BY created LIMIT %u",
             strlen(prefix), prefix, (unsigned)older_than_s, limit);
    rc = run_sql(m, sql, "decision listing (SELECT FROM " XATM_DECISION_TABLE ")", &r, NULL);
    if (rc != XATM_XA_OK) return rc;
    while (r && (row = mysql_fetch_row(r)) != NULL) {
        unsigned long *len = mysql_fetch_lengths(r);
        char g[XATM_GTRID_MAX + 1];
        if (!row[0] || !len || len[0] > XATM_GTRID_MAX) continue;
        memcpy(g, row[0], len[0]);
        g[len[0]] = '\0';
        cb(g, arg);
    }
    if (r) mysql_free_result(r);
    return XATM_XA_OK;
}

/* The highest epoch of tm_id's gtrids in `table` (rm.c checked: the decision or the marker
 * table, so it is spliced into the SQL as it is). */
static int my_max_epoch(xatm_rm_conn *c, const char *table, const char *tm_id,
                        uint32_t *max_epoch)
{
    my_conn *m = myc(c);
    char sql[640], what[64];
    MYSQL_RES *r;
    MYSQL_ROW row;
    snprintf(what, sizeof what, "epoch lookup (SELECT FROM %s)", table);
    int rc = my_markers_idle(m, what);
    if (rc != XATM_XA_OK) return rc;
    /* tm ids hold no '.', so the epoch is the second part; only well-formed ones count */
    snprintf(sql, sizeof sql,
             "SELECT COALESCE(MAX(CAST(SUBSTRING_INDEX(SUBSTRING_INDEX(gtrid, '.', 2), '.', -1) "
             "AS UNSIGNED)), 0) FROM %s WHERE LEFT(gtrid, %zu) = '%s.' AND "
             "CONVERT(SUBSTRING_INDEX(SUBSTRING_INDEX(gtrid, '.', 2), '.', -1) USING latin1) "
             "REGEXP '^[0-9]{1,10}$'",
             table, strlen(tm_id) + 1, tm_id);
    rc = run_sql(m, sql, what, &r, NULL);
    if (rc != XATM_XA_OK) return rc;
    unsigned long long v = 0;
    if (r && (row = mysql_fetch_row(r)) != NULL && row[0]) v = strtoull(row[0], NULL, 10);
    if (r) mysql_free_result(r);
    *max_epoch = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    return XATM_XA_OK;
}

/* ---------------------------------------------------------------- open / close */

static void tune_socket(MYSQL *my)
{
    int fd = (int)mysql_get_socket(my), on = 1, idle = MY_KEEPIDLE_S,
        intvl = MY_KEEPINTVL_S, cnt = MY_KEEPCNT;
    unsigned ut = MY_USER_TIMEOUT_MS;
    if (fd < 0) return;
    /* on a Unix socket these fail harmlessly */
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof ut);
}

static int my_open(const xatm_rm_config *cfg, const xatm_rm_open_options *opts,
                   xatm_rm_conn **out, char *err, size_t errlen)
{
    my_conn *m;
    MYSQL_RES *r = NULL;
    MYSQL_ROW row;
    unsigned int secs = cfg->connect_timeout_ms ? (cfg->connect_timeout_ms + 999) / 1000 : 5;
    unsigned int wsecs = MY_WRITE_TIMEOUT_S;
    /* a call time limit bounds every read and write of the session (the client library
     * gives up with CR_SERVER_LOST: XAER_RMFAIL, session lost) */
    unsigned int csecs = opts->call_timeout_ms ? (opts->call_timeout_ms + 999) / 1000 : 0;
    my_bool no = 0;
    int rc;
    const char *host = cfg->host && *cfg->host ? cfg->host : NULL;

    pthread_once(&library_once, library_init);
    if (library_rc != 0) {
        xatm_rm__msg(err, errlen, cfg, "mysql", "mysql_library_init failed");
        return XATM_XAER_RMERR;
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        xatm_rm__msg(err, errlen, cfg, "mysql", "out of memory");
        return XATM_XAER_RMERR;
    }
    xatm_rm__head_init(&m->head, &xatm_rm__mysql_ops, cfg);
    m->head.call_timeout_ms = opts->call_timeout_ms;
    if (csecs && csecs < wsecs) wsecs = csecs;
    m->my = mysql_init(NULL);
    if (!m->my) {
        xatm_rm__msg(err, errlen, cfg, "mysql", "out of memory");
        rc = XATM_XAER_RMERR;
        goto free_conn;
    }
    if (mysql_options(m->my, MYSQL_OPT_NONBLOCK, 0) != 0 ||
        mysql_options(m->my, MYSQL_OPT_CONNECT_TIMEOUT, &secs) != 0 ||
        mysql_options(m->my, MYSQL_OPT_WRITE_TIMEOUT, &wsecs) != 0 ||
        (csecs && mysql_options(m->my, MYSQL_OPT_READ_TIMEOUT, &csecs) != 0) ||
        mysql_options(m->my, MYSQL_OPT_RECONNECT, &no) != 0 ||
        mysql_options(m->my, MYSQL_SET_CHARSET_NAME, "utf8mb4") != 0) {
        xatm_rm__msg(err, errlen, cfg, "mysql", "setting client options failed: %s",
                     mysql_error(m->my));
        rc = XATM_XAER_RMERR;
        goto close_my;
    }
    if (!mysql_real_connect(m->my, host, cfg->user, cfg->password, cfg->database,
                            cfg->port ? cfg->port : 3306, host ? NULL : cfg->socket, 0)) {
        unsigned e = mysql_errno(m->my);
        if (lost_errno(e)) {
            xatm_rm__msg(err, errlen, cfg, "mysql", "cannot connect: error %u: %s", e,
                         mysql_error(m->my));
            rc = XATM_XAER_RMFAIL;
        } else if (e == ER_ACCESS_DENIED_ERROR || e == ER_DBACCESS_DENIED_ERROR) {
            xatm_rm__msg(err, errlen, cfg, "mysql",
                         "login as user '%s' failed: error %u: %s (hint: check user and "
                         "password of this RM in the configuration)",
                         cfg->user ? cfg->user : "", e, mysql_error(m->my));
            rc = XATM_XAER_RMERR;
        } else {
            xatm_rm__msg(err, errlen, cfg, "mysql", "cannot connect: error %u (%s): %s", e,
                         mysql_sqlstate(m->my), mysql_error(m->my));
            rc = XATM_XAER_RMERR;
        }
        goto close_my;
    }
    tune_socket(m->my);
    if (mysql_autocommit(m->my, 1) != 0) {
        rc = my_err(m, XATM_XAER_RMERR, false, "SET autocommit = 1");
        snprintf(err, errlen, "%s", m->head.errmsg);
        goto close_my;
    }
    /* the server's start: UNIX_TIMESTAMP() and Uptime are both whole seconds of the same
     * statement's start, so their difference is the same for every session of one run */
    rc = run_sql(m,
                 "SELECT @@default_storage_engine, (SELECT SUPPORT FROM "
                 "information_schema.ENGINES WHERE ENGINE = 'InnoDB'), CONNECTION_ID(), "
                 "UNIX_TIMESTAMP() - (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                 "WHERE VARIABLE_NAME = 'UPTIME'), @@server_id",
                 "capability check", &r, NULL);
    if (rc != XATM_XA_OK) {
        snprintf(err, errlen, "%s", m->head.errmsg);
        goto close_my;
    }
    row = r ? mysql_fetch_row(r) : NULL;
    if (!row) {
        xatm_rm__msg(err, errlen, cfg, "mysql", "capability check returned no row");
        rc = XATM_XAER_RMERR;
        goto free_res;
    }
    m->head.caps.version_num = (uint32_t)mysql_get_server_version(m->my);
    snprintf(m->head.caps.server_version, sizeof m->head.caps.server_version, "%s",
             mysql_get_server_info(m->my));
    m->head.caps.max_prepared = 0;
    m->head.caps.session_id = row[2] ? strtoull(row[2], NULL, 10) : mysql_thread_id(m->my);
    if (mysql_num_fields(r) >= 5 && row[3] && row[4]) {
        m->head.caps.server_started = strtoll(row[3], NULL, 10);
        m->head.caps.server_id = (uint32_t)strtoul(row[4], NULL, 10);
        m->head.caps.incarnation =
            xatm_rm__incarnation_tag(m->head.caps.server_started, m->head.caps.server_id);
    }
    rc = xatm_rm__mysql_check_caps(cfg, mysql_get_server_info(m->my),
                                   mysql_get_server_version(m->my), row[1], row[0],
                                   &m->head.caps.detach_on_prepare, err, errlen);
    if (rc != XATM_XA_OK) goto free_res;
    mysql_free_result(r);
    *out = &m->head;
    return XATM_XA_OK;

free_res:
    if (r) mysql_free_result(r);
close_my:
    mysql_close(m->my);
free_conn:
    free(m);
    return rc;
}

static void my_close(xatm_rm_conn *c)
{
    my_conn *m = myc(c);
    if (m->res) mysql_free_result(m->res);
    mysql_close(m->my);
    free(m->snap);
    free(m);
}

static void *my_native(xatm_rm_conn *c)
{
    myc(c)->native_out = true;
    return myc(c)->my;
}

static bool my_alive(xatm_rm_conn *c)
{
    return !c->dead;
}

static void my_mark_failed(xatm_rm_conn *c)
{
    c->failed = true;
}

const xatm_rm_ops xatm_rm__mysql_ops = {
    .type = XATM_RM_MYSQL,
    .name = "mysql",
    .open = my_open,
    .close = my_close,
    .op_begin = my_op_begin,
    .op_wait = my_op_wait,
    .op_continue = my_op_continue,
    .recover = my_recover,
    .session_alive = my_session_alive,
    .fence = my_fence,
    .exec = my_exec,
    .native = my_native,
    .alive = my_alive,
    .mark_failed = my_mark_failed,
    .markers_ensure = my_markers_ensure,
    .markers_find = my_markers_find,
    .markers_delete = my_markers_delete,
    .decisions_ensure = my_decisions_ensure,
    .decision_resolve = my_decision_resolve,
    .decisions_delete = my_decisions_delete,
    .decisions_sweep = my_decisions_sweep,
    .decisions_old_commits = my_decisions_old_commits,
    .max_epoch = my_max_epoch,
};
