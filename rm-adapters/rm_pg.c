/*
 * rm_pg.c — the PostgreSQL row of the RM table, on libpq.
 *
 * Owns one PGconn per connection (handed to the application through native(); libxatm's
 * user runs its SQL on it). A branch is the session's transaction; its xid is spelled as
 * a gid by common/xid.h ("xatm:<format_id hex>:<gtrid>:<bqual>", under 200 bytes).
 *
 * Statements per operation (state = PQtransactionStatus before the operation):
 *   START             BEGIN                                  (state must be IDLE)
 *                     ... deferred (begin_pending) on a session whose PGconn was never
 *                     handed out: the first exec() sends "BEGIN; <its SQL>" as one simple
 *                     query, so a branch costs one round trip less (PostgreSQL parses the
 *                     whole string first: a syntax error runs neither, the session stays
 *                     IDLE, the branch is marked failed and BEGIN stays pending). native()
 *                     runs a pending BEGIN before it hands the PGconn out (NULL, the branch
 *                     failed, when that BEGIN fails), and from then
 *                     on START sends BEGIN itself (the application may use the PGconn at
 *                     any time). A branch still pending at its vote did nothing: PREPARE
 *                     answers XA_RDONLY, COMMIT_ONE_PHASE and ROLLBACK XA_OK, all without a
 *                     statement; CAN_COMMIT prefixes its statements with BEGIN.
 *                     What START no longer sees: a session whose server vanished without
 *                     a word (no FIN: a network cut, a host gone) looks alive until the
 *                     first statement, which then fails the branch (XAER_RMFAIL), where a
 *                     BEGIN at START used to let libxatm reopen the session silently.
 *   PREPARE           PREPARE TRANSACTION 'gid'; yes only with the tag
 *                     "PREPARE TRANSACTION" (a failed transaction answers "ROLLBACK").
 *                     Marked failed or INERROR: ROLLBACK instead, vote XA_RBROLLBACK.
 *   COMMIT            COMMIT PREPARED 'gid'                  (42704 -> XAER_NOTA)
 *   COMMIT_ONE_PHASE  COMMIT, tag must be "COMMIT"; marked failed / INERROR: ROLLBACK
 *   COMMIT_DECIDING   INSERT INTO xatm_decisions (gtrid, outcome) VALUES ('gtrid', 'C');
 *                     COMMIT  in one round trip (prefixed with the deferred BEGIN when the
 *                     branch did nothing yet); the last tag must be "COMMIT". A duplicate
 *                     key (23505: recovery's abort row) or any other error ends the
 *                     transaction: XA_RBROLLBACK. Checks as COMMIT_ONE_PHASE.
 *   ROLLBACK          in a transaction: ROLLBACK; else ROLLBACK PREPARED 'gid' (42704 ->
 *                     XAER_NOTA)
 *   CAN_COMMIT        not marked, not INERROR, then in one round trip
 *                       INSERT INTO xatm_markers (gtrid, rm) VALUES ('gtrid', 'bqual');
 *                       SET CONSTRAINTS ALL IMMEDIATE
 *                     (values escaped with PQescapeStringConn); both must succeed. The
 *                     message of a no names the statement that failed; a missing marker
 *                     table (42P01) gets a hint.
 * A vote (PREPARE, COMMIT_ONE_PHASE, CAN_COMMIT) that answers no always leaves the session
 * outside any transaction: if PostgreSQL has not ended it, a ROLLBACK follows as a second
 * step of the same operation.
 *
 * Asynchronous operations use PQsendQuery in non-blocking mode (restored to the
 * application's setting when the operation ends): op_wait asks for POLLIN, plus POLLOUT
 * while the query is not fully flushed; op_continue consumes input and drains every
 * result until PQgetResult returns NULL, then evaluates.
 *
 * Blocking calls run with PQexec, or, when the session has a call time limit
 * (xatm_rm_open_options), with PQsendQuery and a poll bounded by it: a server that does
 * not answer in time costs XAER_RMFAIL and the session (dead), never a hung caller.
 *
 * Marker calls (rm.h, blocking): ensure = CREATE TABLE IF NOT EXISTS (retried once when a
 * concurrent creator wins the race: 23505 / 42P07); find = a plain SELECT, which under MVCC
 * never waits for an uncommitted or prepared marker; delete = DELETE ... WHERE gtrid IN
 * (...), which skips (does not wait for) rows inserted by transactions still in progress or
 * prepared: they are not visible to it.
 *
 * Decision rows (rm.h, blocking, idle sessions): ensure = CREATE TABLE IF NOT EXISTS;
 * resolve = SET lock_timeout, INSERT ... ON CONFLICT DO NOTHING RETURNING (which waits for a
 * transaction holding an uncommitted row of the same key, 55P03 at the limit = BUSY), a
 * SELECT of the existing row on a duplicate, RESET lock_timeout; delete = DELETE of 'C'
 * rows by gtrid; sweep = DELETE of 'A' rows older than the retention; old_commits = a
 * SELECT of 'C' rows older than it (oldest first, LIMIT). max_epoch (both tables) = max()
 * over the epoch part of a TM's gtrids.
 *
 * Errors: a lost connection anywhere -> XAER_RMFAIL and the connection is dead for good.
 * SQLSTATE 40P01 -> XA_RBDEADLOCK, 57014 / 55P03 -> XA_RBTIMEOUT, 42704 -> XAER_NOTA,
 * 42710 -> XAER_DUPID, class 08 -> XAER_RMFAIL, class 25 -> XAER_PROTO; in a vote any
 * other error (the transaction is over) -> XA_RBROLLBACK, elsewhere -> XAER_RMERR.
 * Messages carry the statement, the SQLSTATE and PostgreSQL's primary message.
 *
 * libpq's default notice processor prints to stderr; a silent notice receiver is installed
 * at open (library code never prints), which only remembers a FATAL the server sent to an
 * idle session (START's liveness check). The application may install its own afterwards
 * (its PGconn is then out, and START no longer relies on that check).
 */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rm_impl.h"

/* PREPARE TRANSACTION needs 10+ (xatm uses nothing newer). */
#define PG_MIN_VERSION 100000
/* How long fence waits for a terminated backend to leave pg_stat_activity. */
#define PG_FENCE_WAIT_MS 5000

/* The statement in flight. */
enum pg_step {
    PG_STEP_NONE = 0,
    PG_STEP_BEGIN,           /* BEGIN */
    PG_STEP_PREPARE,         /* PREPARE TRANSACTION 'gid' */
    PG_STEP_COMMIT_PREPARED, /* COMMIT PREPARED 'gid' */
    PG_STEP_ROLLBACK_PREP,   /* ROLLBACK PREPARED 'gid' */
    PG_STEP_COMMIT,          /* COMMIT (one phase) */
    PG_STEP_ROLLBACK,        /* ROLLBACK of the session's transaction; ends with `vote` */
    PG_STEP_CAN_COMMIT,      /* marker insert; SET CONSTRAINTS ALL IMMEDIATE */
    PG_STEP_COMMIT_DECIDING, /* decision row insert; COMMIT */
};

/* Room for the marker insert with both ids escaped (each at most 2 x 64 bytes). */
#define PG_SQL_MAX 640

/* One PostgreSQL session. */
typedef struct pg_conn {
    struct xatm_rm_conn head;   /* common head; must stay first */
    PGconn *pg;                 /* the libpq connection (owned) */
    enum pg_step step;          /* statement in flight */
    bool flushing;              /* query not fully sent: wait for POLLOUT too */
    bool app_nonblocking;       /* the application's PQisnonblocking, restored after an op */
    char gid[XATM_PG_GID_MAX];  /* gid of the operation in flight */
    xatm_xid xid;               /* xid of the operation in flight */
    int vote;                   /* result to return when a PG_STEP_ROLLBACK completes */
    bool native_out;            /* native() handed the PGconn out: BEGIN is never deferred */
    bool begin_pending;         /* START of the current branch deferred (see the top) */
    bool begin_prefixed;        /* the statement in flight starts with that BEGIN */
    bool server_closing;        /* the server sent FATAL / PANIC (receive_notice) */
    /* the statement's outcome, copied out of the PGresult */
    bool got_result;            /* a result (not only NULL) arrived */
    int n_ok;                   /* successful results before the first error */
    bool res_error;             /* it was an error */
    char res_tag[64];           /* PQcmdStatus of a success */
    char res_state[6];          /* SQLSTATE of an error */
    char res_msg[512];          /* primary message of an error (or libpq's text) */
} pg_conn;

static pg_conn *pgc(xatm_rm_conn *c)
{
    return (pg_conn *)c;
}

/* The session's notice receiver: silent (library code never prints), except that it
 * remembers a FATAL or PANIC the server sent while the session was idle (libpq hands
 * those to the notice receiver): the server is closing the session, e.g. terminated. */
static void receive_notice(void *arg, const PGresult *res)
{
    pg_conn *p = arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (sev && (!strcmp(sev, "FATAL") || !strcmp(sev, "PANIC"))) p->server_closing = true;
}

/* ---------------------------------------------------------------- capability decision */

int xatm_rm__pg_check_caps(const xatm_rm_config *cfg, uint32_t version_num,
                           uint32_t max_prepared, char *err, size_t errlen)
{
    if (version_num < PG_MIN_VERSION) {
        xatm_rm__msg(err, errlen, cfg, "postgresql",
                     "server version %u is too old: xatm needs PostgreSQL 10 or later",
                     (unsigned)version_num);
        return XATM_XAER_RMERR;
    }
    if (max_prepared == 0) {
        xatm_rm__msg(err, errlen, cfg, "postgresql",
                     "cannot prepare transactions: max_prepared_transactions is 0 (hint: set "
                     "max_prepared_transactions > 0 in postgresql.conf and restart)");
        return XATM_XAER_RMERR;
    }
    return XATM_XA_OK;
}

/* ---------------------------------------------------------------- error mapping */

static bool conn_lost(pg_conn *p)
{
    if (PQstatus(p->pg) != CONNECTION_OK) p->head.dead = true;
    return p->head.dead;
}

/* The XA code of an error whose SQLSTATE is `state`. `vote`: the error ended a vote
 * (PREPARE, COMMIT, SET CONSTRAINTS), so the transaction is over: rolled back. */
static int map_sqlstate(const char *state, bool vote)
{
    if (!strcmp(state, "40P01")) return XATM_XA_RBDEADLOCK;
    if (!strcmp(state, "57014") || !strcmp(state, "55P03")) return XATM_XA_RBTIMEOUT;
    if (!strcmp(state, "42704")) return XATM_XAER_NOTA;
    if (!strcmp(state, "42710")) return XATM_XAER_DUPID;
    if (!strncmp(state, "08", 2)) return XATM_XAER_RMFAIL;
    if (!strncmp(state, "25", 2)) return XATM_XAER_PROTO;
    return vote ? XATM_XA_RBROLLBACK : XATM_XAER_RMERR;
}

/* Records the connection loss and returns XAER_RMFAIL. */
static int fail_lost(pg_conn *p, const char *what)
{
    char msg[512];
    size_t n;
    p->head.dead = true;
    snprintf(msg, sizeof msg, "%s", PQerrorMessage(p->pg));
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
    return xatm_rm__seterr(&p->head, XATM_XAER_RMFAIL, "%s: connection lost: %s", what,
                           *msg ? msg : "no detail");
}

/* Copies what matters out of one result. The first error wins; else the last success. */
static void keep_result(pg_conn *p, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    if (p->got_result && p->res_error) return;
    p->got_result = true;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
        p->n_ok++;
        p->res_error = false;
        xatm_str_copy(p->res_tag, sizeof p->res_tag, PQcmdStatus(r));
        return;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    p->res_error = true;
    p->res_tag[0] = '\0';
    xatm_str_copy(p->res_state, sizeof p->res_state, state ? state : "");
    xatm_str_copy(p->res_msg, sizeof p->res_msg, msg ? msg : PQresultErrorMessage(r));
    size_t n = strlen(p->res_msg);
    while (n && (p->res_msg[n - 1] == '\n' || p->res_msg[n - 1] == ' ')) p->res_msg[--n] = '\0';
}

/* ---------------------------------------------------------------- the async machinery */

static const char *step_sql_name(enum pg_step s)
{
    switch (s) {
    case PG_STEP_BEGIN: return "BEGIN";
    case PG_STEP_PREPARE: return "PREPARE TRANSACTION";
    case PG_STEP_COMMIT_PREPARED: return "COMMIT PREPARED";
    case PG_STEP_ROLLBACK_PREP: return "ROLLBACK PREPARED";
    case PG_STEP_COMMIT: return "COMMIT";
    case PG_STEP_ROLLBACK: return "ROLLBACK";
    case PG_STEP_CAN_COMMIT: return "CAN_COMMIT";
    case PG_STEP_COMMIT_DECIDING: return "COMMIT_DECIDING";
    default: return "?";
    }
}

/* Ends the operation: restores the application's blocking mode. Returns rc. */
static int finish(pg_conn *p, int rc)
{
    p->step = PG_STEP_NONE;
    p->flushing = false;
    p->begin_prefixed = false;
    if (!p->head.dead && PQstatus(p->pg) == CONNECTION_OK)
        PQsetnonblocking(p->pg, p->app_nonblocking ? 1 : 0);
    return rc;
}

static int then_rollback(pg_conn *p, int vote);

/* sql := "<verb> '<gid>'" (PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED),
 * spelled without snprintf: two per PostgreSQL branch of every transaction. The gid is
 * cut at its limit, so the text always fits PG_SQL_MAX. */
static void set_gid_sql(char *sql, const char *verb, const char *gid)
{
    _Static_assert(PG_SQL_MAX > 32 + XATM_PG_GID_MAX + 2, "a gid statement fits");
    size_t v = strnlen(verb, 32), g = strnlen(gid, XATM_PG_GID_MAX);
    memcpy(sql, verb, v);
    sql[v] = ' ';
    sql[v + 1] = '\'';
    memcpy(sql + v + 2, gid, g);
    sql[v + 2 + g] = '\'';
    sql[v + 3 + g] = '\0';
}

/* Sends the statement of `step` and returns PENDING (or a final code on failure). */
static int send_step(pg_conn *p, enum pg_step step)
{
    char sql[PG_SQL_MAX];
    int r;
    switch (step) {
    case PG_STEP_CAN_COMMIT: {
        char g[2 * XATM_GTRID_MAX + 1], b[2 * XATM_BQUAL_MAX + 1];
        int e1 = 0, e2 = 0;
        PQescapeStringConn(p->pg, g, p->xid.gtrid, strlen(p->xid.gtrid), &e1);
        PQescapeStringConn(p->pg, b, p->xid.bqual, strlen(p->xid.bqual), &e2);
        if (e1 || e2) {
            xatm_rm__seterr(&p->head, XATM_XA_RBROLLBACK,
                            "branch %s votes no: its xid cannot be escaped for the marker "
                            "insert: %s",
                            p->gid, PQerrorMessage(p->pg));
            return then_rollback(p, XATM_XA_RBROLLBACK);
        }
        snprintf(sql, sizeof sql,
                 "%sINSERT INTO " XATM_MARKER_TABLE " (gtrid, rm) VALUES ('%s', '%s'); "
                 "SET CONSTRAINTS ALL IMMEDIATE",
                 p->begin_prefixed ? "BEGIN; " : "", g, b);
        break;
    }
    case PG_STEP_COMMIT_DECIDING:
        /* the gtrid is of the xid alphabet (rm.c checked it): no escaping needed */
        snprintf(sql, sizeof sql,
                 "%sINSERT INTO " XATM_DECISION_TABLE " (gtrid, outcome) VALUES ('%s', 'C'); "
                 "COMMIT",
                 p->begin_prefixed ? "BEGIN; " : "", p->xid.gtrid);
        break;
    case PG_STEP_PREPARE:
        set_gid_sql(sql, "PREPARE TRANSACTION", p->gid);
        break;
    case PG_STEP_COMMIT_PREPARED:
        set_gid_sql(sql, "COMMIT PREPARED", p->gid);
        break;
    case PG_STEP_ROLLBACK_PREP:
        set_gid_sql(sql, "ROLLBACK PREPARED", p->gid);
        break;
    default:
        xatm_str_copy(sql, sizeof sql, step_sql_name(step));
        break;
    }
    p->step = step;
    p->got_result = false;
    p->n_ok = 0;
    p->res_error = false;
    p->res_tag[0] = p->res_state[0] = p->res_msg[0] = '\0';
    if (PQsetnonblocking(p->pg, 1) != 0 || !PQsendQuery(p->pg, sql)) {
        if (conn_lost(p)) return finish(p, fail_lost(p, step_sql_name(step)));
        xatm_rm__seterr(&p->head, XATM_XAER_RMERR, "%s could not be sent: %s",
                        step_sql_name(step), PQerrorMessage(p->pg));
        return finish(p, XATM_XAER_RMERR);
    }
    r = PQflush(p->pg);
    if (r < 0) return finish(p, fail_lost(p, step_sql_name(step)));
    p->flushing = r == 1;
    return XATM_RM_PENDING;
}

/* Rolls back the session's transaction as the next step; the operation then ends with
 * `vote` (the message explaining it is already in errmsg). */
static int then_rollback(pg_conn *p, int vote)
{
    p->vote = vote;
    return send_step(p, PG_STEP_ROLLBACK);
}

/* A vote failed with an error result: PostgreSQL normally ended the transaction; if not,
 * roll it back so the session is clean. */
static int vote_failed(pg_conn *p, int rc)
{
    PGTransactionStatusType ts = PQtransactionStatus(p->pg);
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) return then_rollback(p, rc);
    return finish(p, rc);
}

/* The statement of p->step has produced all its results: decide. */
static int evaluate(pg_conn *p)
{
    const char *what = step_sql_name(p->step);
    bool vote = p->step == PG_STEP_PREPARE || p->step == PG_STEP_COMMIT ||
                p->step == PG_STEP_CAN_COMMIT || p->step == PG_STEP_COMMIT_DECIDING;

    if (conn_lost(p)) return finish(p, fail_lost(p, what));
    if (!p->got_result) {
        xatm_rm__seterr(&p->head, XATM_XAER_RMERR, "%s returned no result", what);
        return finish(p, XATM_XAER_RMERR);
    }
    if (p->res_error) {
        int rc = map_sqlstate(p->res_state, vote);
        if (p->step == PG_STEP_ROLLBACK && p->vote != XATM_XA_OK) {
            /* the rollback that follows a no vote failed: the state is unknown */
            size_t n = strlen(p->head.errmsg);
            snprintf(p->head.errmsg + n, sizeof p->head.errmsg - n,
                     "; then ROLLBACK failed: SQLSTATE %s: %s", p->res_state, p->res_msg);
            return finish(p, rc == XATM_XAER_RMFAIL ? rc : XATM_XAER_RMERR);
        }
        if (p->step == PG_STEP_CAN_COMMIT && p->n_ok == (p->begin_prefixed ? 1 : 0))
            xatm_rm__seterr(&p->head, rc,
                            "branch %s votes no: the 3PC marker insert (INSERT INTO "
                            XATM_MARKER_TABLE ") failed: SQLSTATE %s: %s%s",
                            p->gid, p->res_state, p->res_msg,
                            !strcmp(p->res_state, "42P01")
                                ? " (hint: xatmd creates the table at start-up; start xatmd "
                                  "once against this database, or see docs/protocols.md)"
                                : "");
        else if (p->step == PG_STEP_COMMIT_DECIDING)
            xatm_rm__seterr(&p->head, rc,
                            "decider %s did not commit: %s failed: SQLSTATE %s: %s%s", p->gid,
                            p->n_ok == (p->begin_prefixed ? 1 : 0)
                                ? "the decision row insert (INSERT INTO " XATM_DECISION_TABLE ")"
                                : "COMMIT",
                            p->res_state, p->res_msg,
                            !strcmp(p->res_state, "23505")
                                ? " (recovery had already decided abort for this transaction)"
                            : !strcmp(p->res_state, "42P01")
                                ? " (hint: xatmd creates the table at start-up when "
                                  "tm.decision_rm names this RM)"
                                : "");
        else if (p->step == PG_STEP_CAN_COMMIT)
            xatm_rm__seterr(&p->head, rc,
                            "branch %s votes no: SET CONSTRAINTS ALL IMMEDIATE failed: "
                            "SQLSTATE %s: %s",
                            p->gid, p->res_state, p->res_msg);
        else if (p->step == PG_STEP_PREPARE || p->step == PG_STEP_COMMIT_PREPARED ||
                 p->step == PG_STEP_ROLLBACK_PREP)
            xatm_rm__seterr(&p->head, rc, "%s '%s' failed: SQLSTATE %s: %s", what, p->gid,
                            p->res_state, p->res_msg);
        else
            xatm_rm__seterr(&p->head, rc, "%s failed: SQLSTATE %s: %s", what, p->res_state,
                            p->res_msg);
        if (vote) return vote_failed(p, rc);
        return finish(p, rc);
    }

    switch (p->step) {
    case PG_STEP_BEGIN:
        return finish(p, XATM_XA_OK);
    case PG_STEP_PREPARE:
        if (!strcmp(p->res_tag, "PREPARE TRANSACTION")) return finish(p, XATM_XA_OK);
        xatm_rm__seterr(&p->head, XATM_XA_RBROLLBACK,
                        "PREPARE TRANSACTION '%s' answered \"%s\": the transaction had failed "
                        "and was rolled back, nothing is prepared",
                        p->gid, p->res_tag);
        return vote_failed(p, XATM_XA_RBROLLBACK);
    case PG_STEP_COMMIT:
    case PG_STEP_COMMIT_DECIDING:
        if (!strcmp(p->res_tag, "COMMIT")) return finish(p, XATM_XA_OK);
        xatm_rm__seterr(&p->head, XATM_XA_RBROLLBACK,
                        "COMMIT answered \"%s\": the transaction had failed and was rolled back",
                        p->res_tag);
        return vote_failed(p, XATM_XA_RBROLLBACK);
    case PG_STEP_COMMIT_PREPARED:
    case PG_STEP_ROLLBACK_PREP:
    case PG_STEP_CAN_COMMIT:
        return finish(p, XATM_XA_OK);
    case PG_STEP_ROLLBACK:
        return finish(p, p->vote);
    default:
        xatm_rm__seterr(&p->head, XATM_XAER_PROTO, "result without a statement in flight");
        return finish(p, XATM_XAER_PROTO);
    }
}

/* For an idle session: false when the server has closed it (what it sent, FATAL and
 * end of file, is waiting on the socket). Never blocks. */
static bool idle_session_ok(pg_conn *p)
{
    for (int i = 0; i < 4; i++) {
        struct pollfd pf = {.fd = PQsocket(p->pg), .events = POLLIN};
        int n = poll(&pf, 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* nothing waiting: as alive as a round trip would have shown */
        if (!PQconsumeInput(p->pg)) break;
    }
    if (p->server_closing) p->head.dead = true; /* its end of file may still be on its way */
    return !conn_lost(p);
}

static int pg_op_begin(xatm_rm_conn *c, enum xatm_rm_op op, const xatm_xid *xid)
{
    pg_conn *p = pgc(c);
    PGTransactionStatusType ts;

    if (c->dead || PQstatus(p->pg) != CONNECTION_OK)
        return fail_lost(p, "operation refused");
    if (xatm_xid_to_pg_gid(xid, p->gid, sizeof p->gid) != 0)
        return xatm_rm__seterr(c, XATM_XAER_INVAL, "xid %s/%s cannot be spelled as a gid",
                               xid->gtrid, xid->bqual);
    p->app_nonblocking = PQisnonblocking(p->pg) != 0;
    p->vote = XATM_XA_OK;
    p->xid = *xid;
    ts = PQtransactionStatus(p->pg);
    if (ts == PQTRANS_ACTIVE)
        return xatm_rm__seterr(c, XATM_XAER_PROTO,
                               "a command is still in progress on this session");
    if (ts == PQTRANS_UNKNOWN) return fail_lost(p, "operation refused");
    bool in_tx = ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR;

    switch (op) {
    case XATM_RM_OP_START:
        if (ts != PQTRANS_IDLE || p->begin_pending)
            return xatm_rm__seterr(c, XATM_XAER_PROTO,
                                   "START of %s: a transaction is already open on this session",
                                   p->gid);
        c->failed = false;
        if (!p->native_out) {
            /* a session the server closed (restart, termination) says so on its socket:
             * START still fails on it, without a round trip */
            if (!idle_session_ok(p)) return finish(p, fail_lost(p, "START"));
            p->begin_pending = true; /* sent with the first statement */
            return finish(p, XATM_XA_OK);
        }
        return send_step(p, PG_STEP_BEGIN);
    case XATM_RM_OP_PREPARE:
    case XATM_RM_OP_COMMIT_ONE_PHASE:
    case XATM_RM_OP_CAN_COMMIT:
    case XATM_RM_OP_COMMIT_DECIDING:
        if (p->begin_pending && !in_tx) {
            /* the branch never reached the server */
            if (c->failed) {
                p->begin_pending = false;
                xatm_rm__seterr(c, XATM_XA_RBROLLBACK,
                                "branch %s votes no: it was marked failed; nothing of it "
                                "reached the server",
                                p->gid);
                return finish(p, XATM_XA_RBROLLBACK);
            }
            if (op == XATM_RM_OP_CAN_COMMIT || op == XATM_RM_OP_COMMIT_DECIDING) {
                /* the row is the branch's first write: BEGIN goes with it */
                p->begin_pending = false;
                p->begin_prefixed = true;
                return send_step(p, op == XATM_RM_OP_CAN_COMMIT ? PG_STEP_CAN_COMMIT
                                                                : PG_STEP_COMMIT_DECIDING);
            }
            p->begin_pending = false;
            return finish(p, op == XATM_RM_OP_PREPARE ? XATM_XA_RDONLY : XATM_XA_OK);
        }
        if (!in_tx)
            return xatm_rm__seterr(c, XATM_XAER_PROTO,
                                   "%s of %s: no transaction in progress on this session",
                                   op == XATM_RM_OP_PREPARE         ? "PREPARE"
                                   : op == XATM_RM_OP_CAN_COMMIT    ? "CAN_COMMIT"
                                   : op == XATM_RM_OP_COMMIT_DECIDING ? "COMMIT_DECIDING"
                                                                    : "COMMIT_ONE_PHASE",
                                   p->gid);
        if (c->failed || ts == PQTRANS_INERROR) {
            xatm_rm__seterr(c, XATM_XA_RBROLLBACK, "branch %s votes no: %s; rolled back",
                            p->gid,
                            c->failed ? "it was marked failed"
                                      : "the transaction is in the failed state (a statement "
                                        "failed)");
            return then_rollback(p, XATM_XA_RBROLLBACK);
        }
        if (op == XATM_RM_OP_PREPARE) return send_step(p, PG_STEP_PREPARE);
        if (op == XATM_RM_OP_CAN_COMMIT) return send_step(p, PG_STEP_CAN_COMMIT);
        if (op == XATM_RM_OP_COMMIT_DECIDING) return send_step(p, PG_STEP_COMMIT_DECIDING);
        return send_step(p, PG_STEP_COMMIT);
    case XATM_RM_OP_COMMIT:
        if (ts != PQTRANS_IDLE)
            return xatm_rm__seterr(c, XATM_XAER_PROTO,
                                   "COMMIT PREPARED '%s' cannot run inside a transaction",
                                   p->gid);
        return send_step(p, PG_STEP_COMMIT_PREPARED);
    case XATM_RM_OP_ROLLBACK:
        if (p->begin_pending && !in_tx) {
            p->begin_pending = false; /* nothing reached the server */
            return finish(p, XATM_XA_OK);
        }
        p->begin_pending = false;
        if (in_tx) return then_rollback(p, XATM_XA_OK);
        return send_step(p, PG_STEP_ROLLBACK_PREP);
    }
    return xatm_rm__seterr(c, XATM_XAER_INVAL, "unknown operation %d", (int)op);
}

static void pg_op_wait(xatm_rm_conn *c, int *fd, short *events)
{
    pg_conn *p = pgc(c);
    *fd = PQsocket(p->pg);
    *events = (short)(POLLIN | (p->flushing ? POLLOUT : 0));
}

static int pg_op_continue(xatm_rm_conn *c, short revents)
{
    pg_conn *p = pgc(c);
    const char *what = step_sql_name(p->step);

    if (p->flushing) {
        int r;
        if ((revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(p->pg))
            return finish(p, fail_lost(p, what));
        r = PQflush(p->pg);
        if (r < 0) return finish(p, fail_lost(p, what));
        if (r == 1) return XATM_RM_PENDING;
        p->flushing = false;
    }
    if (!PQconsumeInput(p->pg) && PQstatus(p->pg) != CONNECTION_OK) {
        /* drain what libpq synthesised for the loss, then report it */
        for (int i = 0; i < 16; i++) {
            PGresult *r = PQgetResult(p->pg);
            if (!r) break;
            PQclear(r);
        }
        return finish(p, fail_lost(p, what));
    }
    while (!PQisBusy(p->pg)) {
        PGresult *r = PQgetResult(p->pg);
        if (!r) return evaluate(p);
        keep_result(p, r);
        PQclear(r);
    }
    return XATM_RM_PENDING;
}

/* ---------------------------------------------------------------- blocking calls */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* PQexec bounded by the session's call time limit: the last result (an error one wins), or
 * NULL (lost, or *timed_out). */
static PGresult *exec_bounded(pg_conn *p, const char *sql, bool *timed_out)
{
    uint64_t deadline = mono_ms() + p->head.call_timeout_ms;
    PGresult *keep = NULL;
    *timed_out = false;
    if (!PQsendQuery(p->pg, sql)) return NULL;
    for (;;) {
        while (!PQisBusy(p->pg)) {
            PGresult *r = PQgetResult(p->pg);
            if (!r) return keep;
            if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
                PQclear(r);
            } else {
                PQclear(keep);
                keep = r;
            }
        }
        uint64_t now = mono_ms();
        struct pollfd pfd = {.fd = PQsocket(p->pg), .events = POLLIN};
        int n = now < deadline ? poll(&pfd, 1, (int)(deadline - now)) : 0;
        if (n == 0) {
            *timed_out = true;
            PQclear(keep);
            return NULL;
        }
        if ((n < 0 && errno != EINTR) || (n > 0 && !PQconsumeInput(p->pg))) {
            PQclear(keep);
            return NULL;
        }
    }
}

/* Runs one statement (see the file comment). On success *out is the result (caller
 * clears). */
static int exec_sql(pg_conn *p, const char *sql, const char *what, PGresult **out)
{
    PGresult *r;
    ExecStatusType st;
    bool timed_out = false;
    *out = NULL;
    if (p->head.dead || PQstatus(p->pg) != CONNECTION_OK) return fail_lost(p, what);
    r = p->head.call_timeout_ms ? exec_bounded(p, sql, &timed_out) : PQexec(p->pg, sql);
    if (timed_out) {
        p->head.dead = true; /* a late answer would be taken for the next statement's */
        return xatm_rm__seterr(&p->head, XATM_XAER_RMFAIL, "%s: no answer within %u ms",
                               what, p->head.call_timeout_ms);
    }
    if (!r) {
        if (conn_lost(p)) return fail_lost(p, what);
        return xatm_rm__seterr(&p->head, XATM_XAER_RMERR, "%s: %s", what, PQerrorMessage(p->pg));
    }
    st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
        *out = r;
        return XATM_XA_OK;
    }
    if (conn_lost(p)) {
        PQclear(r);
        return fail_lost(p, what);
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    int rc = state && !strncmp(state, "08", 2) ? XATM_XAER_RMFAIL : XATM_XAER_RMERR;
    xatm_rm__seterr(&p->head, rc, "%s failed: SQLSTATE %s: %s", what, state ? state : "?",
                    msg ? msg : PQresultErrorMessage(r));
    PQclear(r);
    return rc;
}

static int pg_recover(xatm_rm_conn *c, uint32_t format_id, const char *tm_id,
                      void (*cb)(const xatm_rm_prepared *p, void *arg), void *arg)
{
    pg_conn *p = pgc(c);
    PGresult *r;
    int rc = exec_sql(p,
                      "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() "
                      "AND gid LIKE '" XATM_PG_GID_PREFIX "%' ORDER BY prepared",
                      "recover (pg_prepared_xacts)", &r);
    if (rc != XATM_XA_OK) return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        xatm_rm_prepared prep;
        xatm_gtrid_parts parts;
        if (xatm_xid_from_pg_gid(PQgetvalue(r, i, 0), &prep.xid) != 0) continue;
        if (prep.xid.format_id != format_id) continue;
        if (xatm_gtrid_parse(prep.xid.gtrid, &parts) != 0) continue;
        if (strcmp(parts.tm_id, tm_id) != 0) continue;
        cb(&prep, arg);
    }
    PQclear(r);
    return XATM_XA_OK;
}

static int pg_session_alive(xatm_rm_conn *c, uint64_t session_id)
{
    pg_conn *p = pgc(c);
    char sql[128];
    PGresult *r;
    int rc, alive;
    if (session_id == 0 || session_id > 0x7fffffffu) return 0;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %llu",
             (unsigned long long)session_id);
    rc = exec_sql(p, sql, "session check (pg_stat_activity)", &r);
    if (rc != XATM_XA_OK) return rc;
    alive = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "0") != 0;
    PQclear(r);
    return alive ? 1 : 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int pg_fence(xatm_rm_conn *c, uint64_t session_id)
{
    pg_conn *p = pgc(c);
    char sql[128];
    PGresult *r;
    int rc;
    if (session_id == 0 || session_id > 0x7fffffffu) return XATM_XA_OK;
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%llu)",
             (unsigned long long)session_id);
    rc = exec_sql(p, sql, "fence (pg_terminate_backend)", &r);
    if (rc != XATM_XA_OK) return rc;
    PQclear(r);
    for (unsigned waited = 0;; waited += 10) {
        rc = pg_session_alive(c, session_id);
        if (rc <= 0) return rc; /* 0: gone; <0: error */
        if (waited >= PG_FENCE_WAIT_MS) break;
        sleep_ms(10);
    }
    return xatm_rm__seterr(c, XATM_XAER_RMERR,
                           "fence: backend %llu still connected %u ms after "
                           "pg_terminate_backend",
                           (unsigned long long)session_id, (unsigned)PG_FENCE_WAIT_MS);
}

static int pg_exec(xatm_rm_conn *c, const char *sql, uint64_t *affected)
{
    pg_conn *p = pgc(c);
    PGresult *r;
    int rc;
    bool prefixed = p->begin_pending;
    if (affected) *affected = 0;
    if (prefixed) {
        /* the branch's deferred BEGIN, in the same round trip (see the top) */
        char small[1024]; /* a usual statement: no allocation */
        size_t n = strlen(sql);
        char *both = n + sizeof "BEGIN; " <= sizeof small ? small : malloc(n + sizeof "BEGIN; ");
        if (!both) {
            c->failed = true;
            return xatm_rm__seterr(c, XATM_XAER_RMERR, "statement: out of memory");
        }
        memcpy(both, "BEGIN; ", sizeof "BEGIN; " - 1);
        memcpy(both + sizeof "BEGIN; " - 1, sql, n + 1);
        rc = exec_sql(p, both, "statement", &r);
        if (both != small) free(both);
    } else {
        rc = exec_sql(p, sql, "statement", &r);
    }
    PGTransactionStatusType ts = PQtransactionStatus(p->pg);
    bool in_tx = ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR;
    if (prefixed && (rc == XATM_XA_OK || in_tx)) p->begin_pending = false;
    if (rc != XATM_XA_OK) {
        /* in a branch; or its BEGIN did not run (a syntax error stops the whole string) */
        if (in_tx || prefixed) c->failed = true;
        return rc;
    }
    if (affected) {
        const char *t = PQcmdTuples(r);
        if (t && *t)
            *affected = strtoull(t, NULL, 10);
        else if (PQresultStatus(r) == PGRES_TUPLES_OK)
            *affected = (uint64_t)PQntuples(r);
    }
    PQclear(r);
    return XATM_XA_OK;
}

/* ---------------------------------------------------------------- 3PC markers */

/* Refuses a blocking marker call while this session has a transaction open (its
 * statements would become part of the branch). */
static int pg_markers_idle(pg_conn *p, const char *what)
{
    if (p->head.dead || PQstatus(p->pg) != CONNECTION_OK) return fail_lost(p, what);
    if (PQtransactionStatus(p->pg) == PQTRANS_IDLE && !p->begin_pending) return XATM_XA_OK;
    return xatm_rm__seterr(&p->head, XATM_XAER_PROTO,
                           "%s: a transaction is open on this session", what);
}

/* CREATE TABLE IF NOT EXISTS `sql` (`what` names it in messages), retried once when a
 * concurrent creator wins the race (23505 / 42P07 from the catalog). */
static int pg_create_table(pg_conn *p, const char *check, const char *sql, const char *what)
{
    PGresult *r;
    int rc = pg_markers_idle(p, check);
    if (rc != XATM_XA_OK) return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = exec_sql(p, sql, what, &r);
        if (rc == XATM_XA_OK) {
            PQclear(r);
            return XATM_XA_OK;
        }
        if (!strstr(p->head.errmsg, "SQLSTATE 23505") && !strstr(p->head.errmsg, "SQLSTATE 42P07"))
            break;
    }
    return rc;
}

static int pg_markers_ensure(xatm_rm_conn *c)
{
    return pg_create_table(pgc(c), "marker table check",
                           "CREATE TABLE IF NOT EXISTS " XATM_MARKER_TABLE
                           " (gtrid varchar(64) NOT NULL, rm varchar(32) NOT NULL,"
                           " created timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (gtrid, rm))",
                           "CREATE TABLE IF NOT EXISTS " XATM_MARKER_TABLE);
}

/* Escapes s into a literal body (no quotes) of buf; false on failure (message set). */
static bool pg_escape(pg_conn *p, char *buf, const char *s)
{
    int e = 0;
    PQescapeStringConn(p->pg, buf, s, strlen(s), &e);
    if (e)
        xatm_rm__seterr(&p->head, XATM_XAER_INVAL, "cannot escape '%s': %s", s,
                        PQerrorMessage(p->pg));
    return !e;
}

static int pg_markers_find(xatm_rm_conn *c, const char *gtrid,
                           void (*cb)(const char *rm, void *arg), void *arg)
{
    pg_conn *p = pgc(c);
    char g[2 * XATM_GTRID_MAX + 1], sql[PG_SQL_MAX];
    PGresult *r;
    int rc = pg_markers_idle(p, "marker lookup");
    if (rc != XATM_XA_OK) return rc;
    if (!pg_escape(p, g, gtrid)) return XATM_XAER_INVAL;
    snprintf(sql, sizeof sql, "SELECT rm FROM " XATM_MARKER_TABLE " WHERE gtrid = '%s'", g);
    rc = exec_sql(p, sql, "marker lookup (SELECT FROM " XATM_MARKER_TABLE ")", &r);
    if (rc != XATM_XA_OK) return rc;
    for (int i = 0; i < PQntuples(r); i++) cb(PQgetvalue(r, i, 0), arg);
    PQclear(r);
    return XATM_XA_OK;
}

/* The batched delete of markers or decision rows: `head` ("DELETE FROM t WHERE ... IN ")
 * and the n gtrids' list (xatm_rm__gtrid_list_sql). what names it in errors. */
static int pg_delete_gtrids(xatm_rm_conn *c, const char *what, const char *head,
                            const char *const *gtrids, size_t n)
{
    pg_conn *p = pgc(c);
    PGresult *r;
    int rc = pg_markers_idle(p, what);
    if (rc != XATM_XA_OK) return rc;
    char *sql = xatm_rm__gtrid_list_sql(c, what, head, gtrids, n);
    if (!sql) return XATM_XAER_RMERR;
    rc = exec_sql(p, sql, what, &r);
    free(sql);
    if (rc == XATM_XA_OK) PQclear(r);
    return rc;
}

static int pg_markers_delete(xatm_rm_conn *c, const char *const *gtrids, size_t n)
{
    return pg_delete_gtrids(c, "marker delete (DELETE FROM " XATM_MARKER_TABLE ")",
                            "DELETE FROM " XATM_MARKER_TABLE " WHERE gtrid IN ", gtrids, n);
}

/* ---------------------------------------------------------------- decision rows */

static int pg_decisions_ensure(xatm_rm_conn *c)
{
    return pg_create_table(pgc(c), "decision table check",
                           "CREATE TABLE IF NOT EXISTS " XATM_DECISION_TABLE
                           " (gtrid varchar(64) PRIMARY KEY, outcome char(1) NOT NULL"
                           " CHECK (outcome IN ('C', 'A')),"
                           " created timestamptz NOT NULL DEFAULT now())",
                           "CREATE TABLE IF NOT EXISTS " XATM_DECISION_TABLE);
}

/* Runs sql on p and returns its first value as outcome ('C' / 'A') in *outcome, or 0 when
 * it returned no row. */
static int pg_outcome_query(pg_conn *p, const char *sql, const char *what, char *outcome)
{
    PGresult *r;
    int rc = exec_sql(p, sql, what, &r);
    if (rc != XATM_XA_OK) return rc;
    *outcome = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0)[0] : 0;
    PQclear(r);
    return XATM_XA_OK;
}

static int pg_decision_resolve(xatm_rm_conn *c, const char *gtrid, uint32_t lock_timeout_ms,
                               enum xatm_decision *out)
{
    pg_conn *p = pgc(c);
    char sql[PG_SQL_MAX], outcome = 0;
    PGresult *r;
    int rc = pg_markers_idle(p, "decision resolve");
    if (rc != XATM_XA_OK) return rc;
    snprintf(sql, sizeof sql, "SET lock_timeout = %u", (unsigned)lock_timeout_ms);
    rc = exec_sql(p, sql, "decision resolve (SET lock_timeout)", &r);
    if (rc != XATM_XA_OK) return rc;
    PQclear(r);
    /* waits for a transaction holding an uncommitted row of gtrid, then: inserted (no
     * row was there, or that transaction rolled back) or nothing (a duplicate) */
    snprintf(sql, sizeof sql,
             "INSERT INTO " XATM_DECISION_TABLE " (gtrid, outcome) VALUES ('%s', 'A') "
             "ON CONFLICT DO NOTHING RETURNING outcome",
             gtrid);
    rc = pg_outcome_query(p, sql, "decision resolve (INSERT INTO " XATM_DECISION_TABLE ")",
                          &outcome);
    bool busy = rc == XATM_XAER_RMERR && strstr(c->errmsg, "SQLSTATE 55P03");
    if (rc == XATM_XA_OK && !outcome) {
        snprintf(sql, sizeof sql,
                 "SELECT outcome FROM " XATM_DECISION_TABLE " WHERE gtrid = '%s'", gtrid);
        rc = pg_outcome_query(p, sql, "decision resolve (SELECT FROM " XATM_DECISION_TABLE ")",
                              &outcome);
    }
    if (!c->dead) {
        /* the session's other statements (phase 2, scans) never wait on this limit */
        int rrc = exec_sql(p, "RESET lock_timeout", "decision resolve (RESET lock_timeout)", &r);
        if (rrc == XATM_XA_OK) PQclear(r);
        else if (rc == XATM_XA_OK || busy) return rrc;
    }
    return xatm_rm__decision_result(c, gtrid, rc, busy, outcome, out);
}

static int pg_decisions_delete(xatm_rm_conn *c, const char *const *gtrids, size_t n)
{
    /* only commit rows: an abort row must outlive the decider's session (docs/protocols.md) */
    return pg_delete_gtrids(
        c, "decision delete (DELETE FROM " XATM_DECISION_TABLE ")",
        "DELETE FROM " XATM_DECISION_TABLE " WHERE outcome = 'C' AND gtrid IN ", gtrids, n);
}

static int pg_decisions_sweep(xatm_rm_conn *c, const char *prefix, uint32_t older_than_s,
                              uint64_t *deleted)
{
    pg_conn *p = pgc(c);
    char sql[PG_SQL_MAX];
    PGresult *r;
    int rc = pg_markers_idle(p, "decision sweep");
    if (rc != XATM_XA_OK) return rc;
    /* left(): the prefix may hold '_', a LIKE wildcard */
    snprintf(sql, sizeof sql,
             "DELETE FROM " XATM_DECISION_TABLE " WHERE outcome = 'A' AND left(gtrid, %zu) = "
             "'%s' AND created < now() - make_interval(secs => %u)",
             strlen(prefix), prefix, (unsigned)older_than_s);
    rc = exec_sql(p, sql, "decision sweep (DELETE FROM " XATM_DECISION_TABLE ")", &r);
    if (rc != XATM_XA_OK) return rc;
    const char *t = PQcmdTuples(r);
    if (deleted && t && *t) *deleted = strtoull(t, NULL, 10);
    PQclear(r);
    return XATM_XA_OK;
}

static int pg_decisions_old_commits(xatm_rm_conn *c, const char *prefix, uint32_t older_than_s,
                                    unsigned limit, void (*cb)(const char *gtrid, void *arg),
                                    void *arg)
{
    pg_conn *p = pgc(c);
    char sql[PG_SQL_MAX];
    PGresult *r;
    int rc = pg_markers_idle(p, "decision listing");
    if (rc != XATM_XA_OK) return rc;
    snprintf(sql, sizeof sql,
             "SELECT gtrid FROM " XATM_DECISION_TABLE " WHERE outcome = 'C' AND left(gtrid, %zu) "
             "= '%s' AND created < now() - make_interval(secs => %u) ORDER BY created LIMIT %u",
             strlen(prefix), prefix, (unsigned)older_than_s, limit);
    rc = exec_sql(p, sql, "decision listing (SELECT FROM " XATM_DECISION_TABLE ")", &r);
    if (rc != XATM_XA_OK) return rc;
    for (int i = 0; i < PQntuples(r); i++) cb(PQgetvalue(r, i, 0), arg);
    PQclear(r);
    return XATM_XA_OK;
}

/* The highest epoch of tm_id's gtrids in `table` (rm.c checked: the decision or the marker
 * table, so it is spliced into the SQL as it is). */
static int pg_max_epoch(xatm_rm_conn *c, const char *table, const char *tm_id,
                        uint32_t *max_epoch)
{
    pg_conn *p = pgc(c);
    char sql[PG_SQL_MAX], what[64];
    PGresult *r;
    snprintf(what, sizeof what, "epoch lookup (SELECT FROM %s)", table);
    int rc = pg_markers_idle(p, what);
    if (rc != XATM_XA_OK) return rc;
    /* tm ids hold no '.', so the epoch is the second part; only well-formed ones count */
    snprintf(sql, sizeof sql,
             "SELECT coalesce(max(split_part(gtrid, '.', 2)::bigint), 0) FROM %s WHERE "
             "left(gtrid, %zu) = '%s.' AND split_part(gtrid, '.', 2) ~ '^[0-9]{1,10}$'",
             table, strlen(tm_id) + 1, tm_id);
    rc = exec_sql(p, sql, what, &r);
    if (rc != XATM_XA_OK) return rc;
    unsigned long long v = PQntuples(r) ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    *max_epoch = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    PQclear(r);
    return XATM_XA_OK;
}

/* ---------------------------------------------------------------- open / close */

static int pg_open(const xatm_rm_config *cfg, const xatm_rm_open_options *opts,
                   xatm_rm_conn **out, char *err, size_t errlen)
{
    char port[16], timeout[16];
    const char *keys[16], *vals[16];
    int k = 0, rc;
    pg_conn *p;
    PGresult *r = NULL;
    unsigned secs = cfg->connect_timeout_ms ? (cfg->connect_timeout_ms + 999) / 1000 : 5;

    p = calloc(1, sizeof *p);
    if (!p) {
        xatm_rm__msg(err, errlen, cfg, "postgresql", "out of memory");
        return XATM_XAER_RMERR;
    }
    xatm_rm__head_init(&p->head, &xatm_rm__pg_ops, cfg);
    p->head.call_timeout_ms = opts->call_timeout_ms;

    snprintf(port, sizeof port, "%u", (unsigned)(cfg->port ? cfg->port : 5432));
    snprintf(timeout, sizeof timeout, "%u", secs < 2 ? 2 : secs);
    keys[k] = "host", vals[k++] = cfg->host && *cfg->host ? cfg->host : cfg->socket;
    keys[k] = "port", vals[k++] = port;
    keys[k] = "user", vals[k++] = cfg->user;
    keys[k] = "password", vals[k++] = cfg->password;
    keys[k] = "dbname", vals[k++] = cfg->database;
    keys[k] = "connect_timeout", vals[k++] = timeout;
    keys[k] = "application_name", vals[k++] = "xatm";
    /* a dead peer is noticed within ~40 s even in the middle of a long statement (no
     * statement timeout: the application's statements may legitimately run long) */
    keys[k] = "keepalives", vals[k++] = "1";
    keys[k] = "keepalives_idle", vals[k++] = "10";
    keys[k] = "keepalives_interval", vals[k++] = "5";
    keys[k] = "keepalives_count", vals[k++] = "3";
    keys[k] = "tcp_user_timeout", vals[k++] = "30000";
    keys[k] = NULL, vals[k] = NULL;

    p->pg = PQconnectdbParams(keys, vals, 0);
    if (!p->pg) {
        xatm_rm__msg(err, errlen, cfg, "postgresql", "out of memory");
        rc = XATM_XAER_RMERR;
        goto free_conn;
    }
    PQsetNoticeReceiver(p->pg, receive_notice, p);
    if (PQstatus(p->pg) != CONNECTION_OK) {
        char msg[768];
        size_t n;
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(p->pg));
        n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
        if (PQconnectionUsedPassword(p->pg)) {
            /* the server answered and asked for a password, then refused the login */
            xatm_rm__msg(err, errlen, cfg, "postgresql",
                         "login as user '%s' failed: %s (hint: check user and password of "
                         "this RM in the configuration)",
                         cfg->user ? cfg->user : "", msg);
            rc = XATM_XAER_RMERR;
        } else {
            xatm_rm__msg(err, errlen, cfg, "postgresql", "cannot connect: %s", msg);
            rc = XATM_XAER_RMFAIL;
        }
        goto finish_pg;
    }

    rc = exec_sql(p, "SELECT current_setting('max_prepared_transactions')::int8",
                  "capability check", &r);
    if (rc != XATM_XA_OK) {
        snprintf(err, errlen, "%s", p->head.errmsg);
        goto finish_pg;
    }
    long long maxp = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    p->head.caps.version_num = (uint32_t)PQserverVersion(p->pg);
    p->head.caps.max_prepared = maxp > 0 && maxp <= 0xffffffffLL ? (uint32_t)maxp : 0;
    rc = xatm_rm__pg_check_caps(cfg, p->head.caps.version_num, p->head.caps.max_prepared, err,
                                errlen);
    if (rc != XATM_XA_OK) goto finish_pg;
    const char *ver = PQparameterStatus(p->pg, "server_version");
    snprintf(p->head.caps.server_version, sizeof p->head.caps.server_version, "%s",
             ver ? ver : "");
    p->head.caps.detach_on_prepare = true;
    p->head.caps.session_id = (uint64_t)PQbackendPID(p->pg);
    *out = &p->head;
    return XATM_XA_OK;

finish_pg:
    PQfinish(p->pg);
free_conn:
    free(p);
    return rc;
}

static void pg_close(xatm_rm_conn *c)
{
    pg_conn *p = pgc(c);
    PQfinish(p->pg);
    free(p);
}

static void *pg_native(xatm_rm_conn *c)
{
    pg_conn *p = pgc(c);
    p->native_out = true;
    if (p->begin_pending) {
        /* the application may run SQL on the PGconn: the branch must be open first */
        PGresult *r;
        p->begin_pending = false;
        if (exec_sql(p, "BEGIN", "BEGIN", &r) != XATM_XA_OK) {
            /* no transaction is open: the application must not get a session whose
             * statements would autocommit; the branch votes no, errmsg says why */
            c->failed = true;
            return NULL;
        }
        PQclear(r);
    }
    return p->pg;
}

static bool pg_alive(xatm_rm_conn *c)
{
    return !c->dead && PQstatus(pgc(c)->pg) == CONNECTION_OK;
}

static void pg_mark_failed(xatm_rm_conn *c)
{
    c->failed = true;
}

const xatm_rm_ops xatm_rm__pg_ops = {
    .type = XATM_RM_POSTGRESQL,
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .op_begin = pg_op_begin,
    .op_wait = pg_op_wait,
    .op_continue = pg_op_continue,
    .recover = pg_recover,
    .session_alive = pg_session_alive,
    .fence = pg_fence,
    .exec = pg_exec,
    .native = pg_native,
    .alive = pg_alive,
    .mark_failed = pg_mark_failed,
    .markers_ensure = pg_markers_ensure,
    .markers_find = pg_markers_find,
    .markers_delete = pg_markers_delete,
    .decisions_ensure = pg_decisions_ensure,
    .decision_resolve = pg_decision_resolve,
    .decisions_delete = pg_decisions_delete,
    .decisions_sweep = pg_decisions_sweep,
    .decisions_old_commits = pg_decisions_old_commits,
    .max_epoch = pg_max_epoch,
};
