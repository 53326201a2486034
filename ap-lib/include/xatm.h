/*
 * xatm.h — the whole public contract of libxatm, the application side of xatm.
 *
 * An application (the X/Open "AP") links libxatm to run global transactions that span
 * several databases (resource managers, RMs) named in one YAML config file. The TM daemon
 * xatmd hands out transaction ids and decides every outcome; libxatm runs the branches on
 * the application's own RM sessions and executes the protocol steps the TM orders.
 *
 *   xatm_t *h;
 *   xatm_open("/etc/xatm/xatm.yaml", &h);
 *   xatm_begin(h, NULL);
 *   PGconn *pg = xatm_pg_conn(h, "ledger_pg");        // enlists the branch
 *   MYSQL  *my = xatm_mysql_conn(h, "ledger_my");
 *   ... SQL on pg and my, or xatm_exec(h, "ledger_my", "UPDATE ...", NULL) ...
 *   int rc = xatm_commit(h);                           // 0, XATM_EABORTED, XATM_EUNKNOWN...
 *   xatm_close(h);
 *
 * Threads: a handle is used by one thread at a time (one handle per thread is the intended
 * model); distinct handles are fully independent and may be used concurrently.
 *
 * Errors: every call returns 0 on success or a negative XATM_E* code; xatm_strerror() and
 * xatm_errname() name it, xatm_last_error() gives the detailed message of the handle's last
 * failure. The library never prints and never exits.
 *
 * Statement errors: any error of a statement run through xatm_exec(), any error left as
 * the session's last result when commit starts, a PostgreSQL transaction in the failed
 * state, or a branch marked with xatm_branch_failed() makes that branch vote NO, and the
 * whole global transaction rolls back. An application that runs statements directly on a
 * MYSQL * and ignores an error in the middle of a branch must call xatm_branch_failed():
 * MariaDB keeps the partial work of a failed statement and would otherwise commit it.
 */
#ifndef XATM_H
#define XATM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(XATM_BUILDING_LIBRARY) && defined(__GNUC__)
#define XATM_EXPORT __attribute__((visibility("default")))
#else
#define XATM_EXPORT
#endif

/* Error codes: 0 is success, every error is negative. One table yields name and message.
 * Append only: the numbers are part of the ABI and of the wire protocol. */
#define XATM_ERRNO_MAP(X)                                                                      \
    X(EINVAL, -1, "invalid argument")                                                        \
    X(ENOMEM, -2, "out of memory")                                                           \
    X(ECONFIG, -3, "configuration error")                                                    \
    X(ETM, -4, "transaction manager unreachable")                                            \
    X(EPROTO, -5, "protocol error")                                                          \
    X(ERMUNAVAIL, -6, "resource manager unreachable")                                        \
    X(ERMERR, -7, "resource manager error")                                                  \
    X(ESTATE, -8, "call not valid in the current transaction state")                         \
    X(EABORTED, -9, "global transaction rolled back")                                        \
    X(EUNKNOWN, -10, "outcome unknown; the transaction manager will resolve it")             \
    X(EHEURISTIC, -11, "heuristic outcome: branches may have ended differently")             \
    X(ETIMEDOUT, -12, "timed out")                                                           \
    X(ENOTFOUND, -13, "not found")                                                           \
    X(ELOG, -14, "decision log failure")                                                     \
    X(EIO, -15, "input/output error")                                                        \
    X(ECORRUPT, -16, "corrupt data")                                                         \
    X(ENOSPC, -17, "no space left on device")                                                \
    X(EREFUSED, -18, "refused: contradicts a durable decision")                              \
    X(ECAPABILITY, -19, "resource manager cannot run XA transactions as configured")        \
    X(ELIMIT, -20, "limit exceeded")                                                         \
    X(EBUSY, -21, "busy")                                                                    \
    X(ESHUTDOWN, -22, "transaction manager is shutting down")

enum xatm_error {
    XATM_OK = 0,
#define XATM_ERR_ENUM_(name, value, msg) XATM_##name = (value),
    XATM_ERRNO_MAP(XATM_ERR_ENUM_)
#undef XATM_ERR_ENUM_
};

/* "EABORTED" etc.; "EUNKNOWNCODE" for a value outside the table. */
XATM_EXPORT const char *xatm_errname(int err);
/* Short English description of a code. */
XATM_EXPORT const char *xatm_strerror(int err);

/* Commit protocols. */
enum xatm_protocol {
    XATM_PROTOCOL_DEFAULT = 0, /* whatever the config file's tm.protocol says */
    XATM_PROTOCOL_2PC = 2,
    XATM_PROTOCOL_3PC = 3,
};

typedef struct xatm xatm_t; /* opaque; one per thread */

/* Options for xatm_begin(); NULL means all defaults. Zero fields mean "default". */
typedef struct xatm_begin_options {
    enum xatm_protocol protocol; /* default: the config's tm.protocol. 3PC: see xatm_commit */
    uint32_t timeout_ms;         /* default: the config's tm.transaction_timeout. xatmd
                                    aborts the transaction if it has not voted by then;
                                    exception: a transaction of at most one branch never
                                    votes (see xatm_commit), so the timeout cannot stop
                                    its commit */
} xatm_begin_options;

/* Reads the config file and connects to xatmd. RM sessions are opened on first use.
 * On failure *out is still set (unless out is NULL or the handle itself could not be
 * allocated: XATM_ENOMEM with *out NULL) to a handle that only carries the reason in
 * xatm_last_error(); every other call on it returns XATM_ESTATE, and the caller frees it
 * with xatm_close(). Codes: XATM_ECONFIG (the loader's "file:line:column: ..." lines in
 * xatm_last_error), XATM_ETM (xatmd not reachable), XATM_EPROTO (xatmd is not the TM the
 * config names), XATM_EINVAL (a malformed XATM_FAULT). */
XATM_EXPORT int xatm_open(const char *config_path, xatm_t **out);
/* Rolls back a transaction still open, closes every session. NULL is accepted. */
XATM_EXPORT void xatm_close(xatm_t *h);

/* Starts a global transaction. XATM_ESTATE if one is already open on this handle. Only a
 * connection's first transaction (and one with other options than the connection's lease)
 * asks xatmd and waits for it; the others start on the next gtrid of the lease of 64 the
 * connection holds (docs/protocol.md, "Gtrid leases"), so xatmd's timeout counts from the
 * transaction's first message to xatmd. */
XATM_EXPORT int xatm_begin(xatm_t *h, const xatm_begin_options *opts);

/* The session of RM `rm` (a name from the config), opened if needed. Inside a global
 * transaction the first call enlists the RM: its branch is started on this session.
 * Outside one, the session is in autocommit mode. NULL on error (see xatm_last_error),
 * including when the RM's type does not match the call. */
XATM_EXPORT struct pg_conn *xatm_pg_conn(xatm_t *h, const char *rm);
XATM_EXPORT struct st_mysql *xatm_mysql_conn(xatm_t *h, const char *rm);

/* Runs one statement on RM `rm`'s branch (enlisting it), discarding any rows. On failure
 * the branch is marked failed (it will vote NO). `affected` may be NULL. Cheaper than the
 * same statement on the session from xatm_pg_conn / xatm_mysql_conn: on a session never
 * handed out, PostgreSQL's BEGIN goes with the branch's first statement, and a MariaDB
 * branch whose statements changed rows needs no read-only check at prepare. */
XATM_EXPORT int xatm_exec(xatm_t *h, const char *rm, const char *sql, uint64_t *affected);

/* Marks RM `rm`'s branch failed: it will vote NO, so the transaction will roll back. */
XATM_EXPORT int xatm_branch_failed(xatm_t *h, const char *rm);

/* Ends the global transaction. Returns 0 when it committed (every branch committed, or the
 * TM holds the durable commit decision and will finish a branch whose session broke);
 * XATM_EABORTED when it rolled back; XATM_EUNKNOWN when the TM became unreachable after
 * the branches were prepared (xatmd resolves it; the sessions are closed so it can), or
 * xatmd answered the vote with an error (e.g. the transaction already finished there and
 * its outcome is no longer remembered).
 *
 * A transaction with one branch (or none) is committed in one phase on that branch's
 * session, without a vote: xatmd only hears of it afterwards (DONE). So xatmd's
 * transaction timeout does not apply to it: if the timeout passed before xatm_commit
 * (xatmd logs "timed out at xatmd; a one-branch transaction commits in one phase at the
 * application and may still commit"), the branch still commits and xatm_commit returns 0.
 * Bound such a transaction with the RM's own limits (statement or idle timeouts) if it
 * must not commit late. */
/*
 * Three-phase commit (a transaction begun with XATM_PROTOCOL_3PC, 2+ branches; see
 * docs/protocols.md): every branch also writes a marker row into the table xatm_markers
 * of its database (xatmd creates it), and the codes mean:
 *   0                 committed: on xatmd's DoCommit, or, with tm.participant_timeout_action
 *                     "commit", by libxatm itself when DoCommit did not come within
 *                     tm.participant_timeout (or xatmd was lost) after every branch had
 *                     prepared, and every branch then committed (xatm_last_error says so);
 *   XATM_EABORTED     rolled back: a branch answered CanCommit no or failed to prepare,
 *                     xatmd aborted, or xatmd was lost before PreCommit;
 *   XATM_EHEURISTIC   action "commit" only: libxatm committed without DoCommit and at least
 *                     one branch did not commit (xatmd had rolled it back meanwhile, or its
 *                     state is unknown); xatm_last_error names each such branch. The
 *                     databases may now disagree: this is the divergence 3PC permits, and
 *                     xatmd reports it too ("heuristic mixed");
 *   XATM_EUNKNOWN     action "wait": every branch prepared and xatmd did not decide within
 *                     tm.request_timeout (or was lost); the sessions are closed and xatmd
 *                     decides. Also, with either action, when xatmd answered the
 *                     acknowledgement with an error, and when a branch failed to prepare
 *                     with an uncertain outcome (its PREPARE cut at tm.precommit_timeout or
 *                     its session lost: it may be prepared all the same) and xatmd's abort
 *                     did not arrive: libxatm then rolls nothing back, since xatmd's
 *                     termination rule may find every branch prepared and commit.
 */
XATM_EXPORT int xatm_commit(xatm_t *h);
XATM_EXPORT int xatm_rollback(xatm_t *h);

/* The global transaction id of the open (or last) transaction, "" when none. */
XATM_EXPORT const char *xatm_gtrid(const xatm_t *h);

/* Detailed message of this handle's last failure ("" if none). Valid until the next call. */
XATM_EXPORT const char *xatm_last_error(const xatm_t *h);
/* The code of this handle's last failure (0 if none; XATM_EINVAL for a NULL handle): what
 * the calls that return a pointer (xatm_pg_conn, xatm_mysql_conn) failed with. */
XATM_EXPORT int xatm_last_code(const xatm_t *h);

/* Tools beside xatmd (setup scripts, consistency checks, monitoring): these read the same
 * config file as the application but need neither xatmd nor a handle, and never take part
 * in a global transaction. Each loads `config_path`, and on failure returns a negative
 * code with a message in err (errlen bytes, may be 0). Safe from any thread. */

/* A plain session to PostgreSQL RM `rm`, in autocommit mode. The caller owns it and ends
 * it with PQfinish(). XATM_ENOTFOUND (no such RM), XATM_EINVAL (not postgresql),
 * XATM_ERMUNAVAIL (cannot connect), XATM_ECONFIG... */
XATM_EXPORT int xatm_pg_connect(const char *config_path, const char *rm, struct pg_conn **out,
                                char *err, size_t errlen);
/* Same for a MySQL/MariaDB RM; the caller ends it with mysql_close(). */
XATM_EXPORT int xatm_mysql_connect(const char *config_path, const char *rm,
                                   struct st_mysql **out, char *err, size_t errlen);
/* The config's XA formatID (tm.format_id), e.g. to pick xatm's rows out of XA RECOVER. */
XATM_EXPORT int xatm_config_format_id(const char *config_path, uint32_t *format_id, char *err,
                                      size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* XATM_H */
