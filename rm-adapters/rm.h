/*
 * rm.h — the resource-manager interface ("XA switch" in spirit). One table row per RM type
 * (rm.c holds the table); one file per implementation (rm_pg.c on libpq, rm_mysql.c on the
 * MariaDB Connector/C). Both xatmd and libxatm use it. Adding an RM type means adding one
 * file that fills a struct xatm_rm_ops, and one row in the table.
 *
 * Results are X/Open XA-style codes (enum xatm_xa_rc) so callers reason in XA terms; the
 * human detail of the last failure is in xatm_rm_errmsg(conn).
 *
 * Branch operations are asynchronous so that libxatm runs phase 1 and phase 2 on all
 * branches in parallel in one thread: xatm_rm_op_begin() sends the first statement and
 * returns XATM_RM_PENDING or a final code; while pending, the caller polls the fd/events
 * given by xatm_rm_op_wait() and calls xatm_rm_op_continue() with the poll revents until
 * a final code comes back. xatm_rm_run() is the blocking form; xatm_rm_run_parallel()
 * drives several connections at once. At most one operation is in flight per connection.
 *
 * Operations and what they do (xid = the branch's xatm_xid):
 *   START           PG: BEGIN.  MySQL: XA START xid.
 *   PREPARE         the vote. PG: PREPARE TRANSACTION gid; a yes needs the command tag
 *                   "PREPARE TRANSACTION" (a failed transaction answers "ROLLBACK") ->
 *                   XA_OK, else XA_RBROLLBACK. A transaction in the failed state, or the
 *                   branch marked failed, votes no without preparing (it is rolled back).
 *                   MySQL: the last statement's error or the failed mark -> roll back, vote
 *                   XA_RBROLLBACK; a branch that modified no rows -> XA END + XA COMMIT ONE
 *                   PHASE, vote XA_RDONLY; else XA END + XA PREPARE -> XA_OK.
 *   COMMIT          phase 2 on a prepared branch: PG COMMIT PREPARED / MySQL XA COMMIT.
 *                   "no such xid" answers XAER_NOTA (callers retrying a commit treat it as
 *                   done).
 *   COMMIT_ONE_PHASE  a branch that was never prepared: PG COMMIT (tag must be COMMIT, a
 *                   failed transaction answers ROLLBACK -> XA_RBROLLBACK) / MySQL XA END +
 *                   XA COMMIT xid ONE PHASE.
 *   ROLLBACK        an active branch on this session (PG ROLLBACK / MySQL XA END if needed
 *                   + XA ROLLBACK) or a prepared one from any session (PG ROLLBACK
 *                   PREPARED / MySQL XA ROLLBACK). Unknown xid -> XAER_NOTA, which the
 *                   caller treats as "already rolled back".
 *   CAN_COMMIT      3PC check, nothing durable: session alive, no failed statement or
 *                   failed mark, then the branch's marker row (gtrid = xid gtrid, rm = xid
 *                   bqual, i.e. the RM's name) is inserted into XATM_MARKER_TABLE inside
 *                   the branch, then PG: SET CONSTRAINTS ALL IMMEDIATE; MySQL: the write
 *                   probe and XA END (the branch is IDLE afterwards). XA_OK, or a no vote
 *                   (XA_RB*, the branch rolled back; a failed marker insert, e.g. a missing
 *                   table, says so in the message), or XAER_RMFAIL (session lost). The
 *                   marker is a row write, so a 3PC branch never votes read-only.
 *
 *   COMMIT_DECIDING the decider's commit (2PC "decision in a branch", docs/protocols.md):
 *                   on the branch's own, never-prepared transaction, the row (gtrid, 'C') is
 *                   inserted into XATM_DECISION_TABLE and the transaction committed in one
 *                   phase. PG: "INSERT ...; COMMIT" in one round trip, the last tag must be
 *                   COMMIT. XA_OK = committed (the decision is commit); XA_RB* = rolled back
 *                   (a duplicate key: recovery's abort row was there first; a failed
 *                   statement, failed mark or a ROLLBACK tag); XAER_RMFAIL = the answer was
 *                   lost: the outcome is unknown. MySQL: the row insert, XA END, XA COMMIT
 *                   xid ONE PHASE (a duplicate key or any error: undone, XA_RB*).
 *
 * Decision rows (XATM_DECISION_TABLE, the decider's RM only): gtrid primary key, outcome
 * 'C' (inserted by COMMIT_DECIDING inside the decider's transaction) or 'A' (inserted by
 * xatmd's recovery, xatm_rm_decision_resolve), created. The primary key decides the race
 * between the AP's commit and recovery's abort: whoever inserts first wins, the other
 * waits for the first's transaction and then sees a duplicate. Layout (PostgreSQL):
 *   gtrid varchar(64) primary key, outcome char(1) not null, created timestamptz not null
 *   default now()
 * (MariaDB: gtrid varbinary(64) primary key, outcome char(1), created timestamp default
 * current_timestamp, ENGINE=InnoDB).
 *
 * 3PC marker rows (docs/protocols.md): a row (gtrid, rm) in the table XATM_MARKER_TABLE of
 * the branch's own database, inserted by CAN_COMMIT, visible once the branch commits. So a
 * committed marker proves the branch committed after it left the prepared list. Readers do
 * not block on uncommitted markers (MVCC; MariaDB: a plain SELECT is a consistent,
 * non-locking read). The blocking calls xatm_rm_markers_* below create, look up and
 * delete them (xatmd's recovery sessions, and libxatm after a participant-timeout commit
 * answered "unknown xid"). Table layout:
 *   PostgreSQL  gtrid varchar(64), rm varchar(32), created timestamptz default now(),
 *               primary key (gtrid, rm)
 *   MariaDB     gtrid varbinary(64), rm varbinary(32), created timestamp default
 *               current_timestamp, primary key (gtrid, rm), ENGINE=InnoDB
 */
#ifndef XATM_RM_H
#define XATM_RM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/proto.h"
#include "../common/xid.h"
#include "../config/config.h"

/* X/Open XA return codes (values as in xa.h), plus XATM_RM_PENDING for async ops. */
enum xatm_xa_rc {
    XATM_XA_OK = 0,
    XATM_XA_RDONLY = 3,       /* read-only branch: already committed, leaves the protocol */
    XATM_XA_RBROLLBACK = 100, /* branch rolled back (no vote, statement error...) */
    XATM_XA_RBDEADLOCK = 102, /* rolled back: deadlock */
    XATM_XA_RBTIMEOUT = 106,  /* rolled back: lock wait / statement timeout */
    XATM_XAER_RMERR = -3,     /* RM error (SQL error, refused command) */
    XATM_XAER_NOTA = -4,      /* unknown xid */
    XATM_XAER_INVAL = -5,     /* invalid arguments */
    XATM_XAER_PROTO = -6,     /* called in the wrong state */
    XATM_XAER_RMFAIL = -7,    /* RM unavailable: connection lost or refused */
    XATM_XAER_DUPID = -8,     /* xid already exists */
    XATM_RM_PENDING = 1000,   /* async op in progress: wait and continue */
};

enum xatm_rm_op {
    XATM_RM_OP_START = 1,
    XATM_RM_OP_PREPARE,
    XATM_RM_OP_COMMIT,
    XATM_RM_OP_COMMIT_ONE_PHASE,
    XATM_RM_OP_ROLLBACK,
    XATM_RM_OP_CAN_COMMIT,
    XATM_RM_OP_COMMIT_DECIDING, /* the decider's commit: decision row + one-phase commit */
};

/* What xatm_rm_decision_resolve found. */
enum xatm_decision {
    XATM_DECISION_COMMITTED = 1, /* a commit row: the decider committed */
    XATM_DECISION_ABORTED = 2,   /* an abort row (inserted now or earlier): it never will */
    XATM_DECISION_BUSY = 3,      /* the lock wait timed out: an open transaction (the AP's
                                    decider) holds an uncommitted row of the gtrid */
};

/* What an RM reported at open. */
typedef struct xatm_rm_caps {
    char server_version[64];       /* e.g. "15.18" / "10.11.19-MariaDB" */
    uint32_t version_num;          /* PG server_version_num / MySQL mysql_get_server_version */
    uint32_t max_prepared;         /* PG max_prepared_transactions; MySQL: 0 (no limit) */
    bool detach_on_prepare;        /* prepared branches are finishable from other sessions
                                      while the preparing session is connected */
    uint64_t session_id;           /* this session's id (MySQL CONNECTION_ID(), PG backend pid) */
    int64_t server_started;        /* MySQL: the server's start, Unix seconds (UNIX_TIMESTAMP()
                                      - Uptime in one statement: exact); 0 unknown, PG */
    uint32_t server_id;            /* MySQL @@server_id; 0 for PG */
    uint32_t incarnation;          /* 24-bit tag of this run of the server (a hash of
                                      server_started and server_id, never 0 when known;
                                      0 unknown, and always 0 for PG): the high bits of
                                      a session reference (proto.h) */
} xatm_rm_caps;

/* One prepared branch found by recover. */
typedef struct xatm_rm_prepared {
    xatm_xid xid; /* the branch's xid (ours: format_id and tm_id match) */
} xatm_rm_prepared;

typedef struct xatm_rm_conn xatm_rm_conn; /* one session to one RM; opaque */

/* Options of xatm_rm_open_ex (NULL: all zero). */
typedef struct xatm_rm_open_options {
    uint32_t call_timeout_ms; /* a call the server has not answered within this long fails
                                 with XATM_XAER_RMFAIL and the session is lost (a hung
                                 server, SIGSTOPped or cut off, cannot hold the caller);
                                 applies to the blocking calls and to xatm_rm_run. 0 = no
                                 limit: an AP's statements may run as long as they like */
} xatm_rm_open_options;

/* The interface table, one row per RM type. Implementations never print or exit. */
typedef struct xatm_rm_ops {
    enum xatm_rm_type type;
    const char *name; /* "postgresql" | "mysql" */
    /* Connects and checks capabilities. On failure returns XATM_XAER_RMFAIL (unreachable)
     * or XATM_XAER_RMERR (reachable but unusable, e.g. max_prepared_transactions = 0), and
     * writes a complete message (naming the RM, host:port and a hint) into err. opts is
     * never NULL here. */
    int (*open)(const xatm_rm_config *cfg, const xatm_rm_open_options *opts,
                xatm_rm_conn **out, char *err, size_t errlen);
    void (*close)(xatm_rm_conn *c);
    /* Async branch operation; see the file comment. */
    int (*op_begin)(xatm_rm_conn *c, enum xatm_rm_op op, const xatm_xid *xid);
    void (*op_wait)(xatm_rm_conn *c, int *fd, short *events);
    int (*op_continue)(xatm_rm_conn *c, short revents);
    /* Blocking: lists prepared branches with this format_id whose gtrid belongs to tm_id.
     * Calls cb once per branch; returns XA_OK or an error (RMFAIL when unreachable). */
    int (*recover)(xatm_rm_conn *c, uint32_t format_id, const char *tm_id,
                   void (*cb)(const xatm_rm_prepared *p, void *arg), void *arg);
    /* Blocking: is session `session_id` (a plain id of this server, never this session's
     * own; rm.c has unpacked the reference) still connected? 1 yes, 0 no, <0 XA error. */
    int (*session_alive)(xatm_rm_conn *c, uint64_t session_id);
    /* Blocking: terminate session `session_id` (plain id, as above; MySQL KILL
     * CONNECTION). XA_OK or error. */
    int (*fence)(xatm_rm_conn *c, uint64_t session_id);
    /* Blocking: runs one SQL statement, discarding rows. XA_OK / RMERR / RMFAIL. */
    int (*exec)(xatm_rm_conn *c, const char *sql, uint64_t *affected);
    /* The native handle (PGconn * / MYSQL *), owned by the connection. */
    void *(*native)(xatm_rm_conn *c);
    /* false once the session is known broken. */
    bool (*alive)(xatm_rm_conn *c);
    /* Marks the current branch failed: PREPARE / CAN_COMMIT will vote no. */
    void (*mark_failed)(xatm_rm_conn *c);
    /* Blocking, 3PC marker rows (see xatm_rm_markers_* below; rm.c has checked the
     * arguments: gtrids are 1..64 characters of the xid alphabet, n >= 1). */
    int (*markers_ensure)(xatm_rm_conn *c);
    int (*markers_find)(xatm_rm_conn *c, const char *gtrid,
                        void (*cb)(const char *rm, void *arg), void *arg);
    int (*markers_delete)(xatm_rm_conn *c, const char *const *gtrids, size_t n);
    /* Blocking, decision rows (see xatm_rm_decision* below; rm.c checked the arguments).
     * NULL in a row whose RM cannot be a decider (rm.c answers XAER_RMERR). */
    int (*decisions_ensure)(xatm_rm_conn *c);
    int (*decision_resolve)(xatm_rm_conn *c, const char *gtrid, uint32_t lock_timeout_ms,
                            enum xatm_decision *out);
    int (*decisions_delete)(xatm_rm_conn *c, const char *const *gtrids, size_t n);
    int (*decisions_sweep)(xatm_rm_conn *c, const char *prefix, uint32_t older_than_s,
                           uint64_t *deleted);
    int (*decisions_old_commits)(xatm_rm_conn *c, const char *prefix, uint32_t older_than_s,
                                 unsigned limit, void (*cb)(const char *gtrid, void *arg),
                                 void *arg);
    /* Blocking, both tables (xatm_rm_decisions_max_epoch, xatm_rm_markers_max_epoch; rm.c
     * checked the arguments: table is exactly XATM_DECISION_TABLE or XATM_MARKER_TABLE,
     * the only names that reach the SQL, and tm_id is valid). Never NULL. */
    int (*max_epoch)(xatm_rm_conn *c, const char *table, const char *tm_id,
                     uint32_t *max_epoch);
} xatm_rm_ops;

/* The row for type t (never NULL for a valid enum value). */
const xatm_rm_ops *xatm_rm_ops_for(enum xatm_rm_type t);

/* Convenience wrappers over the table; every xatm_rm_conn remembers its ops and config. */
int xatm_rm_open(const xatm_rm_config *cfg, xatm_rm_conn **out, char *err, size_t errlen);
/* Same with options (xatm_rm_open is this with opts NULL). */
int xatm_rm_open_ex(const xatm_rm_config *cfg, const xatm_rm_open_options *opts,
                    xatm_rm_conn **out, char *err, size_t errlen);
void xatm_rm_close(xatm_rm_conn *c);
const xatm_rm_config *xatm_rm_config_of(const xatm_rm_conn *c);
const xatm_rm_caps *xatm_rm_caps_of(const xatm_rm_conn *c);
const char *xatm_rm_errmsg(const xatm_rm_conn *c); /* detail of the last failure, "" if none */
int xatm_rm_op_begin(xatm_rm_conn *c, enum xatm_rm_op op, const xatm_xid *xid);
void xatm_rm_op_wait(xatm_rm_conn *c, int *fd, short *events);
int xatm_rm_op_continue(xatm_rm_conn *c, short revents);
/* Blocking form of one op: begin, then poll/continue until final (at most the session's
 * call_timeout_ms: then XATM_XAER_RMFAIL, the session lost). */
int xatm_rm_run(xatm_rm_conn *c, enum xatm_rm_op op, const xatm_xid *xid);
/* Runs op i on conns[i] with xids[i] for i < n, concurrently; results in rc[i]. A NULL
 * conns[i] is skipped (rc[i] untouched). timeout_ms 0 = no limit; a connection still
 * pending at the deadline gets XATM_XAER_RMFAIL and is closed on the wire. */
void xatm_rm_run_parallel(xatm_rm_conn **conns, const enum xatm_rm_op *ops, const xatm_xid *xids,
                          int *rc, size_t n, uint32_t timeout_ms);
int xatm_rm_recover(xatm_rm_conn *c, uint32_t format_id, const char *tm_id,
                    void (*cb)(const xatm_rm_prepared *p, void *arg), void *arg);
/* Session references (common/proto.h): what an AP reports to xatmd for its session, and
 * what xatmd checks and fences. xatm_rm_session_ref() is this session's reference (0 when
 * its id does not fit in 40 bits). The two calls below take a reference:
 *   - a reference of another incarnation of the server (its tag is not 0 and differs
 *     from this connection's caps.incarnation, when that is known) names a session that
 *     no longer exists: session_alive answers 0 and fence does nothing (XA_OK), so an
 *     unrelated connection that now has the same id is never reported alive nor killed;
 *   - a reference to this very session (same id, same or unknown incarnation) is not an
 *     AP's: session_alive answers 0 and fence refuses (XAER_INVAL);
 *   - tag 0 means "incarnation not stated": the id is taken as one of the current server
 *     (tools and tests; xatmd never passes such a reference for MySQL, it treats the
 *     session as unknown).
 * session_alive: 1 connected, 0 gone, <0 an XA error. MySQL counts a session alive until
 * it has left PROCESSLIST and InnoDB has detached its transaction (docs/rm-facts.md). */
uint64_t xatm_rm_session_ref(const xatm_rm_conn *c);
int xatm_rm_session_alive(xatm_rm_conn *c, uint64_t session_ref);
int xatm_rm_fence(xatm_rm_conn *c, uint64_t session_ref);
int xatm_rm_exec(xatm_rm_conn *c, const char *sql, uint64_t *affected);
void *xatm_rm_native(xatm_rm_conn *c);
bool xatm_rm_alive(xatm_rm_conn *c);
void xatm_rm_mark_failed(xatm_rm_conn *c);

/* 3PC markers (see the file comment). All blocking, bounded like the other calls, and
 * only on a session that has no branch open (a recovery session, or an AP session between
 * branches). gtrids must be 1..64 characters of the xid alphabet [A-Za-z0-9_.:-]
 * (XAER_INVAL otherwise); they are escaped by the client library all the same.
 *   ensure: CREATE TABLE IF NOT EXISTS XATM_MARKER_TABLE (layout above). XA_OK or an XA
 *           error (errmsg names the RM and the cause).
 *   find:   calls cb(rm) for every committed marker row of gtrid; never waits for an
 *           uncommitted or prepared marker (it is simply not seen). XA_OK or an XA error
 *           (a missing table is XAER_RMERR: xatmd ensures it at start-up).
 *   delete: deletes every committed marker row of the n gtrids, one statement per batch
 *           of at most XATM_MARKER_BATCH gtrids. XA_OK (also for n == 0) or an XA error
 *           (the batches before the failing one are deleted).
 *   max_epoch: the highest epoch of a gtrid of TM tm_id ("<tm_id>.<epoch>.<seq>") among
 *           the committed marker rows, 0 when there is none (XAER_INVAL for an invalid
 *           tm_id): xatmd's start-up raises its epoch past it, so that a gtrid with a
 *           marker is never issued again (a marker whose deletion was lost would otherwise
 *           prove to recovery that a branch of the new transaction committed). */
#define XATM_MARKER_TABLE "xatm_markers"
#define XATM_MARKER_BATCH 100
int xatm_rm_markers_ensure(xatm_rm_conn *c);
int xatm_rm_markers_find(xatm_rm_conn *c, const char *gtrid,
                         void (*cb)(const char *rm, void *arg), void *arg);
int xatm_rm_markers_delete(xatm_rm_conn *c, const char *const *gtrids, size_t n);
int xatm_rm_markers_max_epoch(xatm_rm_conn *c, const char *tm_id, uint32_t *max_epoch);

/* Decision rows (see the file comment). Blocking, bounded like the other calls, only on a
 * session with no branch open; gtrids as for the markers. An RM type whose row has no
 * decision calls answers XAER_RMERR (both current types have them).
 *   ensure:  CREATE TABLE IF NOT EXISTS XATM_DECISION_TABLE. XA_OK or an XA error.
 *   resolve: what the decider of gtrid did, making sure it can no longer commit: inserts
 *            (gtrid, 'A') unless a row exists, waiting at most lock_timeout_ms for a
 *            transaction that holds an uncommitted row of gtrid (PG: SET lock_timeout;
 *            INSERT ... ON CONFLICT DO NOTHING RETURNING; MariaDB: innodb_lock_wait_timeout
 *            in whole seconds, at least 1, and INSERT IGNORE; on a duplicate a SELECT reads
 *            the row). XA_OK with *out COMMITTED / ABORTED / BUSY, or an XA error (e.g.
 *            XAER_RMFAIL, RM unreachable; XAER_RMERR when a duplicate's row is gone by
 *            the time it is read: retry).
 *   delete:  deletes the COMMIT rows ('C') of the n gtrids, one statement per batch of
 *            XATM_DECISION_BATCH; abort rows are never deleted by it. XA_OK (n == 0 too).
 *   sweep:   deletes the abort rows ('A') whose gtrid starts with `prefix` (a TM's
 *            "<tm_id>.": never another TM's rows, whose retention and branches this one
 *            does not know) created more than older_than_s seconds ago; *deleted (may be
 *            NULL) gets how many.
 *   old_commits: calls cb(gtrid) for at most `limit` commit rows ('C') of gtrids starting
 *            with `prefix`, created more than older_than_s seconds ago (those an AP that
 *            died after phase 2 left; xatmd deletes the ones whose gtrid no RM lists as
 *            prepared). prefix: 1..64 characters of the xid alphabet.
 *   max_epoch: the highest epoch of a gtrid of TM tm_id ("<tm_id>.<epoch>.<seq>") in the
 *            table, rows of either outcome, 0 when there is none (XAER_INVAL for an
 *            invalid tm_id): xatmd's start-up raises
 *            its epoch past it, so that a gtrid with a row is never issued again (a stale
 *            commit row would otherwise decide a new transaction of the same gtrid). */
#define XATM_DECISION_TABLE "xatm_decisions"
#define XATM_DECISION_BATCH 64
int xatm_rm_decisions_ensure(xatm_rm_conn *c);
int xatm_rm_decision_resolve(xatm_rm_conn *c, const char *gtrid, uint32_t lock_timeout_ms,
                             enum xatm_decision *out);
int xatm_rm_decisions_delete(xatm_rm_conn *c, const char *const *gtrids, size_t n);
int xatm_rm_decisions_sweep(xatm_rm_conn *c, const char *prefix, uint32_t older_than_s,
                            uint64_t *deleted);
int xatm_rm_decisions_old_commits(xatm_rm_conn *c, const char *prefix, uint32_t older_than_s,
                                  unsigned limit, void (*cb)(const char *gtrid, void *arg),
                                  void *arg);
int xatm_rm_decisions_max_epoch(xatm_rm_conn *c, const char *tm_id, uint32_t *max_epoch);
/* "committed", "aborted", "busy", "?" */
const char *xatm_decision_name(enum xatm_decision d);

/* "XA_OK", "XAER_NOTA"... */
const char *xatm_xa_rc_name(int rc);

#endif
