/*
 * xatm.c — libxatm's handle and the AP side of the commit protocol (docs/architecture.md,
 * "Who runs what"). Owns, per handle: the loaded config, the link to xatmd (tmlink.c), one
 * session per RM (opened on first use, kept across transactions, reopened at the next use
 * after it broke) and the state of the open global transaction.
 *
 * Transaction states of a handle:
 *
 *   IDLE --xatm_begin--> ACTIVE --xatm_commit / xatm_rollback / xatm_close--> IDLE
 *
 * Invariants:
 *  - in_txn is true exactly between a successful xatm_begin and the end of the next
 *    xatm_commit / xatm_rollback (whatever they return): the handle is always ready for
 *    the next xatm_begin afterwards.
 *  - A slot is `enlisted` only while in_txn. Its session is never replaced mid-transaction
 *    (a branch lives and dies with the session that started it); it stays open until
 *    commit or rollback either finishes the branch or closes the session to hand the
 *    branch to xatmd (MariaDB detaches a prepared branch only when its session ends).
 *  - libxatm never decides an outcome: after the VOTE has been written it acts only on a
 *    DECISION (or, with a NO vote in it, on the outcome the protocol already fixes). The
 *    one exception is 3PC's participant timeout with tm.participant_timeout_action
 *    "commit" (below), where the protocol itself tells the participant to commit.
 *  - Every failure sets err; nothing prints, nothing exits.
 *
 * Commit, by number of branches:
 *   0  DONE(commit, no entries), one-way.
 *   1  one-phase commit on the branch, then DONE one-way (no VOTE: xatmd's transaction
 *      timeout cannot stop this commit, see xatm.h). DONE's outcome is COMMIT only
 *      when the branch committed; when the connection broke during the commit the outcome
 *      is unknown (XATM_EUNKNOWN) and DONE carries ABORT with xa_rc XAER_RMFAIL, which for
 *      a one-branch transaction (never logged, nothing prepared) only tells xatmd to
 *      forget the gtrid.
 *   2+ 2PC: PREPARE on every branch in parallel, VOTE (a request), wait for DECISION,
 *      phase 2 in parallel, DONE one-way (one entry per branch: the phase-2 result,
 *      XA_RDONLY for a read-only branch, the vote's code for a branch that was already
 *      rolled back).
 *   2+ 2PC with the decision in a branch (tm.decision_rm set and a branch on that RM,
 *      the decider D; docs/protocols.md "Decision in a branch"; commit_in_decider): the
 *      ENLISTs, PREPARE on every branch but D in parallel (any no: roll back, DONE abort);
 *      past the transaction's deadline, or half of tm.decision_retention after BEGIN (an
 *      abort row may be gone by then): roll back (no commit row after it); then on D's
 *      session the commit row and COMMIT in one phase (COMMIT_DECIDING; only COMMIT_ONE_
 *      PHASE when every other branch was read-only), which is the decision: committed ->
 *      phase 2 of the others, DONE(outcome 4, commit decided), the gtrid queued for the
 *      batched delete of commit rows (XATM_DECISION_BATCH, on D's idle session, after
 *      phase 2 finished everywhere; flushed at xatm_close too); a definite no (duplicate
 *      key: recovery's abort row came first) -> roll back, XATM_EABORTED; answer lost ->
 *      XATM_EUNKNOWN, nothing rolled back, link and sessions closed so that xatmd
 *      resolves the gtrid at D. No VOTE, nothing in xatmd's log.
 *   2+ 3PC (docs/protocols.md), three round trips with xatmd:
 *      CanCommit  CAN_COMMIT on every branch in parallel (session alive, no failed
 *                 statement, the branch's marker row inserted, PG deferred constraints
 *                 checked; nothing durable), bounded by what is left of the transaction
 *                 timeout; CANCOMMIT (a request, the body of VOTE) -> DECISION.
 *      PreCommit  on DECISION precommit (xatmd has forced PRECOMMIT): PREPARE on every
 *                 branch in parallel, bounded by tm.precommit_timeout (xatmd aborts after
 *                 that anyway); VOTE = the acknowledgement (a request).
 *      DoCommit   wait for DECISION: commit -> phase 2 and DONE exactly as in 2PC (0);
 *                 abort -> roll back, XATM_EABORTED.
 *      What happens when something goes wrong, by where it happens:
 *        - a branch says no at CanCommit, or DECISION abort / an ERROR, or the link to
 *          xatmd is lost or silent (tm.request_timeout) before DECISION precommit: roll
 *          every branch back, XATM_EABORTED. Nothing is prepared, so xatmd cannot commit
 *          either (its termination rule aborts a transaction not prepared everywhere).
 *        - after precommit, a branch fails to prepare: VOTE with the no; on xatmd's
 *          abort, or when every failed branch is known not to be prepared (its RM rolled
 *          it back), roll every branch back, XATM_EABORTED. A failed branch whose state is
 *          uncertain (its PREPARE was cut at tm.precommit_timeout or its session broke: it
 *          may be prepared all the same) with no abort from xatmd (link lost, silent, or
 *          another answer): the prepared branches are NOT rolled back, since xatmd's
 *          termination rule may find every branch prepared and commit (leave_uncertain):
 *          sessions closed, XATM_EUNKNOWN.
 *        - every branch prepared, and no DECISION comes: the link is lost (also while
 *          writing the VOTE) or, with action "commit", tm.participant_timeout passes
 *          after the VOTE. tm.participant_timeout_action says what libxatm does:
 *            commit  close the link to xatmd, then commit every branch on its own
 *                    session (participant_commit). 0 when every branch committed;
 *                    XATM_EHEURISTIC when one did not: XAER_NOTA is success only when the
 *                    branch's committed marker row proves xatmd committed it, without one
 *                    the branch was rolled back (xatmd aborted meanwhile: the divergence
 *                    3PC permits); any other failure leaves the branch prepared or
 *                    unknown, for xatmd's termination rule. No DONE is sent (the link is
 *                    closed): xatmd sees the AP leave and applies the termination rule,
 *                    which finds the committed markers.
 *            wait    no timeout of its own: the DECISION is awaited for tm.request_timeout
 *                    as in 2PC; a lost link or no answer then gives XATM_EUNKNOWN with the
 *                    link and the sessions closed, and xatmd decides. libxatm never
 *                    commits without DoCommit.
 *        - xatmd answers the acknowledgement with an ERROR other than EABORTED (or with
 *          anything but a DECISION): XATM_EUNKNOWN, sessions closed, as in 2PC; an answer
 *          is not silence, so the participant timeout does not apply.
 *
 * ENLIST is one-way and queued (tmlink.h): it goes out in the same write as the next
 * message (the next ENLISTs wait with it), and at the latest right before phase 1 (2PC:
 * before the first PREPARE; 3PC: with CANCOMMIT, before anything is prepared; one branch:
 * with DONE), so xatmd knows every session that holds a prepared branch before there is
 * one, and a transaction of two branches costs one write for its ENLISTs, not two.
 * ENLIST and VOTE report each branch's session as a session reference
 * (xatm_rm_session_ref: the server's incarnation and the session id, common/proto.h), so
 * xatmd never mistakes it for a connection of a later run of the server.
 *
 * Where the fault points sit (common/fault.c has the table). 3PC reaches them in this order:
 * after_begin, after_start, before_prepare, after_cancommit_checks, after_cancommit_sent,
 * after_precommit, between_prepares, after_prepare, after_vote_sent, then either
 * after_decision, between_commits, after_commits (DoCommit came) or participant_timeout,
 * between_commits, after_commits (action "commit", no DoCommit).
 *   ap.after_begin       BEGIN_OK received, before xatm_begin returns
 *   ap.after_start       a branch was started on its session, before ENLIST is queued
 *   ap.before_prepare    commit of 2+ branches called, nothing prepared (3PC: nothing
 *                        checked either)
 *   ap.after_cancommit_checks  3PC: every branch has answered CAN_COMMIT, CANCOMMIT not
 *                        written
 *   ap.after_cancommit_sent    3PC: CANCOMMIT written, its DECISION not read
 *   ap.after_precommit   3PC: DECISION precommit read, no branch prepared yet
 *   ap.participant_timeout     3PC: no DoCommit (timeout or link lost) with action
 *                        "commit": the link is closed, just before libxatm commits every
 *                        branch on its own
 *   ap.between_prepares  phase 1 runs all branches in parallel, so there is no point
 *                        between two prepares: it sits after the parallel run returned,
 *                        just before ap.after_prepare
 *   ap.after_prepare     every branch has voted, VOTE not written (3PC: the PreCommit
 *                        acknowledgement)
 *   ap.after_vote_sent   VOTE written, DECISION not read
 *   ap.after_decision    DECISION(commit) read, before phase 2 (3PC: DoCommit)
 *   ap.between_commits   likewise after the parallel phase-2 run returned (every commit
 *                        call has answered), just before ap.after_commits
 *   ap.after_commits     phase 2 finished, DONE not written
 *   ap.decider.before_commit  decision in a branch: every other branch prepared and the
 *                        deadline checked, the decider's commit not sent
 *   ap.decider.after_commit   the decider committed (with its row), phase 2 not begun
 *
 * Timeouts: replies from xatmd wait at most tm.request_timeout (3PC's DoCommit with action
 * "commit": tm.participant_timeout); PREPARE (2PC) and CAN_COMMIT (3PC) get what is left
 * of the transaction's timeout (granted in BEGIN_OK), 3PC's PREPARE tm.precommit_timeout;
 * phase-2 calls get the whole transaction timeout. A branch call still pending at its
 * limit is closed on the wire.
 *
 * The protocol of a transaction is chosen at xatm_begin (xatm_begin_options.protocol, or
 * the config's tm.protocol) and must be the one xatmd's BEGIN_OK confirms.
 */
#include "xatm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <mysql.h>
#include <pthread.h>

#include "config.h"
#include "fault.h"
#include "internal.h"
#include "proto.h"
#include "rm.h"
#include "tmlink.h"
#include "xid.h"

/* Where one branch stands while commit or rollback drives it. */
enum ap_branch_state {
    BR_ACTIVE = 0, /* started, not prepared (or its state is uncertain: roll back) */
    BR_PREPARED,   /* voted yes: prepared on the RM */
    BR_FINISHED,   /* committed, rolled back, or read-only: nothing left to do */
    BR_LOST,       /* its session broke: the RM or xatmd's recovery finishes it */
    BR_DECIDER,    /* decision in a branch: the decider, left out of phase 1 */
};

/* One configured RM as this handle sees it. */
typedef struct ap_rm {
    const xatm_rm_config *cfg;  /* its entry in the handle's config */
    xatm_rm_conn *conn;         /* open session, NULL before first use or after closing */
    bool enlisted;              /* has a branch in the open global transaction */
    enum ap_branch_state state; /* that branch's progress during commit / rollback */
    xatm_xid xid;               /* that branch's xid (valid while enlisted) */
    int rc;                     /* XA code of the latest branch operation */
    bool ran;                   /* the latest parallel run included this branch */
} ap_rm;

struct xatm {
    xatm_config *cfg;                 /* loaded config; NULL when xatm_open failed early */
    bool usable;                      /* xatm_open succeeded */
    xatm__tm tm;                      /* link to xatmd */
    ap_rm *rms;                       /* one slot per configured RM (cfg->n_rms) */
    bool in_txn;                      /* a global transaction is open */
    char gtrid[XATM_GTRID_MAX + 1];   /* open (or last) gtrid, "" when none */
    uint8_t protocol;                 /* the open transaction's protocol (BEGIN_OK): 2 or 3 */
    uint32_t txn_timeout_ms;          /* the transaction timeout granted in BEGIN_OK */
    uint64_t txn_deadline_ms;         /* monotonic ms when xatmd times the transaction out */
    uint64_t txn_begun_ms;            /* monotonic ms when BEGIN_OK arrived (no branch of the
                                         transaction can be prepared before it) */
    size_t order[XATM_MAX_BRANCHES];  /* enlisted slots, in enlistment order */
    size_t n_branches;                /* entries used in order[] */
    ap_rm *decider;                   /* tm.decision_rm's slot, NULL when the option is off */
    char (*decided)[XATM_GTRID_MAX + 1]; /* gtrids decided in the decider branch whose phase 2
                                         finished: their commit rows are deleted in one batch
                                         (XATM_DECISION_BATCH entries, allocated on first use) */
    size_t n_decided;                 /* entries used in decided */
    int err_code;                     /* xatm_last_code(): code of the last failure */
    char err[4096];                   /* xatm_last_error(): its message */
};

/* ---------------------------------------------------------------- process-wide init */

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_init_rc;          /* result of the one initialisation */
static char lib_init_err[256];   /* its message */

static void lib_init_once(void)
{
    lib_init_rc = xatm_fault_init(lib_init_err, sizeof lib_init_err);
    if (mysql_library_init(0, NULL, NULL) != 0 && lib_init_rc == 0) {
        snprintf(lib_init_err, sizeof lib_init_err, "cannot initialise the MariaDB client library");
        lib_init_rc = XATM_ENOMEM;
    }
}

int xatm__lib_init(char *err, size_t errlen)
{
    pthread_once(&lib_once, lib_init_once);
    if (lib_init_rc && err && errlen) snprintf(err, errlen, "%s", lib_init_err);
    return lib_init_rc;
}

/* ---------------------------------------------------------------- helpers */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Sets the handle's message and returns code. */
static int __attribute__((format(printf, 3, 4))) fail(xatm_t *h, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->err, sizeof h->err, fmt, ap);
    va_end(ap);
    h->err_code = code;
    return code;
}

/* Appends to the handle's message. */
static void __attribute__((format(printf, 2, 3))) err_append(xatm_t *h, const char *fmt, ...)
{
    size_t len = strlen(h->err);
    if (len + 1 >= sizeof h->err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->err + len, sizeof h->err - len, fmt, ap);
    va_end(ap);
}

/* Common entry check of every call that works on an opened handle. */
static int enter(xatm_t *h)
{
    if (!h->usable) {
        /* keep the message of the failed xatm_open: it says what is wrong */
        if (!h->err[0]) fail(h, XATM_ESTATE, "xatm_open failed on this handle");
        h->err_code = XATM_ESTATE;
        return XATM_ESTATE;
    }
    h->err[0] = '\0';
    h->err_code = 0;
    return 0;
}

static bool xa_rolled_back(int rc)
{
    return rc >= XATM_XA_RBROLLBACK && rc <= XATM_XA_RBROLLBACK + 7; /* XA_RBBASE..XA_RBEND */
}

/* The slot of RM `name`, checking its type when want != 0. */
static int rm_slot(xatm_t *h, const char *name, enum xatm_rm_type want, ap_rm **out)
{
    if (!name) return fail(h, XATM_EINVAL, "RM name is NULL");
    int i = xatm_config_rm_index(h->cfg, name);
    if (i < 0) return fail(h, XATM_ENOTFOUND, "no RM named '%s' in %s", name, h->cfg->path);
    ap_rm *r = &h->rms[i];
    if (want && r->cfg->type != want)
        return fail(h, XATM_EINVAL, "RM '%s' is %s, not %s", name, xatm_rm_type_name(r->cfg->type),
                    xatm_rm_type_name(want));
    *out = r;
    return 0;
}

static void rm_close(ap_rm *r)
{
    if (r->conn) xatm_rm_close(r->conn);
    r->conn = NULL;
}

/* Makes sure slot r (not enlisted) has a live session; *fresh says it was just opened. */
static int rm_session(xatm_t *h, ap_rm *r, bool *fresh)
{
    *fresh = false;
    if (r->conn && !xatm_rm_alive(r->conn)) rm_close(r);
    if (r->conn) return 0;

    char msg[1024];
    msg[0] = '\0';
    int xrc = xatm_rm_open(r->cfg, &r->conn, msg, sizeof msg);
    if (xrc != XATM_XA_OK) {
        r->conn = NULL;
        return fail(h, xrc == XATM_XAER_RMFAIL ? XATM_ERMUNAVAIL : XATM_ECAPABILITY, "%s",
                    msg[0] ? msg : "cannot open the RM session");
    }
    *fresh = true;
    return 0;
}

/* Inside a transaction: gives slot r a branch (START on its session, then ENLIST).
 * Outside one: only makes sure the session is open (autocommit). */
static int rm_use(xatm_t *h, ap_rm *r)
{
    bool fresh;
    if (!h->in_txn) return rm_session(h, r, &fresh);

    if (r->enlisted) {
        if (xatm_rm_alive(r->conn)) return 0;
        return fail(h, XATM_ERMUNAVAIL,
                    "the session of RM '%s' broke during global transaction %s: its branch is "
                    "lost and the transaction can only roll back", r->cfg->name, h->gtrid);
    }
    if (h->n_branches >= XATM_MAX_BRANCHES)
        return fail(h, XATM_ELIMIT, "global transaction %s already has %d branches (the most "
                    "one transaction can have)", h->gtrid, XATM_MAX_BRANCHES);
    if (xatm_xid_make(&r->xid, h->cfg->format_id, h->gtrid, r->cfg->name))
        return fail(h, XATM_EINVAL, "cannot build the xid of RM '%s' in %s", r->cfg->name,
                    h->gtrid);

    int rc = rm_session(h, r, &fresh);
    if (rc) return rc;
    int xrc = xatm_rm_run(r->conn, XATM_RM_OP_START, &r->xid);
    if (xrc == XATM_XAER_RMFAIL && !fresh) {
        /* the kept session had died since its last use (server restart, idle timeout):
         * nothing of this branch exists yet, so a new session is safe */
        rm_close(r);
        rc = rm_session(h, r, &fresh);
        if (rc) return rc;
        xrc = xatm_rm_run(r->conn, XATM_RM_OP_START, &r->xid);
    }
    if (xrc != XATM_XA_OK) {
        rc = fail(h, xrc == XATM_XAER_RMFAIL ? XATM_ERMUNAVAIL : XATM_ERMERR,
                  "cannot start the branch of RM '%s' in %s (%s): %s", r->cfg->name, h->gtrid,
                  xatm_xa_rc_name(xrc), xatm_rm_errmsg(r->conn));
        if (!xatm_rm_alive(r->conn)) rm_close(r);
        return rc;
    }
    r->enlisted = true;
    r->state = BR_ACTIVE;
    r->rc = XATM_XA_OK;
    h->order[h->n_branches++] = (size_t)(r - h->rms);
    xatm_fault_hit("ap.after_start");

    xatm_msg m;
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_ENLIST;
    xatm_str_copy(m.u.enlist.gtrid, sizeof m.u.enlist.gtrid, h->gtrid);
    xatm_str_copy(m.u.enlist.rm, sizeof m.u.enlist.rm, r->cfg->name);
    m.u.enlist.session_id = xatm_rm_session_ref(r->conn);
    char msg[1024];
    /* queued: it goes out with the next message, at the latest just before phase 1 */
    rc = xatm__tm_queue(&h->tm, &m, msg, sizeof msg);
    if (rc)
        return fail(h, rc, "cannot enlist RM '%s' in %s with xatmd: %s; the transaction can "
                    "only roll back", r->cfg->name, h->gtrid, msg);
    return 0;
}

/* Runs `op` in parallel on every branch whose state is in `states` (a bit mask of
 * 1 << enum ap_branch_state), within timeout_ms; results in each slot's rc, ran set. */
static void run_branches(xatm_t *h, enum xatm_rm_op op, unsigned states, uint32_t timeout_ms)
{
    xatm_rm_conn *conns[XATM_MAX_BRANCHES];
    enum xatm_rm_op ops[XATM_MAX_BRANCHES];
    xatm_xid xids[XATM_MAX_BRANCHES];
    int rc[XATM_MAX_BRANCHES];
    size_t n = h->n_branches;
    bool any = false;

    for (size_t k = 0; k < n; k++) {
        ap_rm *r = &h->rms[h->order[k]];
        r->ran = r->conn && (states & (1u << r->state));
        conns[k] = r->ran ? r->conn : NULL;
        ops[k] = op;
        xids[k] = r->xid;
        rc[k] = r->rc;
        any = any || r->ran;
    }
    if (!any) return;
    xatm_rm_run_parallel(conns, ops, xids, rc, n, timeout_ms ? timeout_ms : 1);
    for (size_t k = 0; k < n; k++)
        if (conns[k]) h->rms[h->order[k]].rc = rc[k];
}

/* Rolls back every branch not known finished or lost, in parallel. A branch whose
 * rollback failed has its session closed: MariaDB then detaches a prepared branch, and
 * xatmd's recovery rolls it back (its transaction is aborted: presumed abort). */
static void rollback_branches(xatm_t *h)
{
    run_branches(h, XATM_RM_OP_ROLLBACK, (1u << BR_ACTIVE) | (1u << BR_PREPARED),
                 h->txn_timeout_ms);
    for (size_t k = 0; k < h->n_branches; k++) {
        ap_rm *r = &h->rms[h->order[k]];
        if (!r->ran) continue;
        if (r->rc == XATM_XA_OK || r->rc == XATM_XAER_NOTA || xa_rolled_back(r->rc)) {
            r->state = BR_FINISHED;
        } else {
            r->state = BR_LOST;
            rm_close(r);
        }
    }
}

/* Closes the session of every branch (outcome unknown: leave them to xatmd). */
static void close_branch_sessions(xatm_t *h)
{
    for (size_t k = 0; k < h->n_branches; k++) rm_close(&h->rms[h->order[k]]);
}

/* One-way DONE with one entry per branch (its latest rc). Errors only close the link:
 * xatmd treats a vanished AP by the recovery rule, which finds nothing left to do. */
static void send_done(xatm_t *h, uint8_t outcome)
{
    xatm_msg m;
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_DONE;
    xatm_str_copy(m.u.done.gtrid, sizeof m.u.done.gtrid, h->gtrid);
    m.u.done.outcome = outcome;
    m.u.done.n = (uint16_t)h->n_branches;
    for (size_t k = 0; k < h->n_branches; k++) {
        ap_rm *r = &h->rms[h->order[k]];
        xatm_str_copy(m.u.done.e[k].rm, sizeof m.u.done.e[k].rm, r->cfg->name);
        m.u.done.e[k].xa_rc = r->rc;
    }
    char msg[512];
    (void)xatm__tm_send(&h->tm, &m, NULL, msg, sizeof msg);
}

static void send_rollback(xatm_t *h)
{
    xatm_msg m;
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_ROLLBACK;
    xatm_str_copy(m.u.rollback.gtrid, sizeof m.u.rollback.gtrid, h->gtrid);
    char msg[512];
    (void)xatm__tm_send(&h->tm, &m, NULL, msg, sizeof msg);
}

/* Leaves the transaction: the handle is IDLE and ready for xatm_begin. Broken sessions
 * are closed so that the next use opens new ones. */
static void end_txn(xatm_t *h)
{
    for (size_t k = 0; k < h->n_branches; k++) {
        ap_rm *r = &h->rms[h->order[k]];
        r->enlisted = false;
        if (r->conn && !xatm_rm_alive(r->conn)) rm_close(r);
    }
    h->n_branches = 0;
    h->in_txn = false;
}

/* Deletes the commit rows of the gtrids in h->decided on the decider's session, when it is
 * alive and has no branch open (one statement; a failure leaves them to xatmd's sweep).
 * A broken session is not reopened here (that could wait for a connect timeout after a
 * commit that already succeeded): the rows wait for the next flush, and a full batch that
 * still cannot go is left to xatmd's sweep. */
static void flush_decided(xatm_t *h)
{
    const char *g[XATM_DECISION_BATCH];
    ap_rm *d = h->decider;
    if (h->n_decided == 0) return;
    if (d && d->conn && !d->enlisted && xatm_rm_alive(d->conn)) {
        for (size_t i = 0; i < h->n_decided; i++) g[i] = h->decided[i];
        (void)xatm_rm_decisions_delete(d->conn, g, h->n_decided);
        h->n_decided = 0;
    } else if (h->n_decided >= XATM_DECISION_BATCH) {
        h->n_decided = 0;
    }
}

/* gtrid's phase 2 finished everywhere: its commit row may go (with the next batch; when
 * the batch is full and could not be deleted, the row is left to xatmd's sweep). */
static void note_decided(xatm_t *h)
{
    if (!h->decided) {
        h->decided = calloc(XATM_DECISION_BATCH, sizeof *h->decided);
        if (!h->decided) return;
    }
    if (h->n_decided >= XATM_DECISION_BATCH) return;
    snprintf(h->decided[h->n_decided++], sizeof h->decided[0], "%s", h->gtrid);
}

/* ---------------------------------------------------------------- open / close */

XATM_EXPORT int xatm_open(const char *config_path, xatm_t **out)
{
    if (!out) return XATM_EINVAL;
    *out = NULL;
    xatm_t *h = calloc(1, sizeof *h);
    if (!h) return XATM_ENOMEM;
    *out = h;
    h->tm.fd = -1;
    if (!config_path) return fail(h, XATM_EINVAL, "config path is NULL");

    char msg[1024];
    int rc = xatm__lib_init(msg, sizeof msg);
    if (rc) return fail(h, rc, "%s", msg);

    char *errors = NULL;
    rc = xatm_config_load(config_path, &h->cfg, &errors);
    if (rc) {
        if (errors) {
            size_t len = strlen(errors);
            while (len > 0 && errors[len - 1] == '\n') errors[--len] = '\0';
        }
        fail(h, rc, "%s", errors && *errors ? errors : xatm_strerror(rc));
        free(errors);
        h->cfg = NULL;
        return rc;
    }
    free(errors);

    h->rms = calloc(h->cfg->n_rms ? h->cfg->n_rms : 1, sizeof *h->rms);
    if (!h->rms) return fail(h, XATM_ENOMEM, "out of memory");
    for (size_t i = 0; i < h->cfg->n_rms; i++) h->rms[i].cfg = &h->cfg->rms[i];
    if (h->cfg->decision_rm) h->decider = &h->rms[xatm_config_rm_index(h->cfg, h->cfg->decision_rm)];

    xatm__tm_init(&h->tm, h->cfg);
    rc = xatm__tm_connect(&h->tm, h->cfg, h->err, sizeof h->err);
    if (rc) return h->err_code = rc;
    h->usable = true;
    return 0;
}

XATM_EXPORT void xatm_close(xatm_t *h)
{
    if (!h) return;
    if (h->usable && h->in_txn) (void)xatm_rollback(h);
    if (h->usable) flush_decided(h);
    free(h->decided);
    if (h->rms && h->cfg)
        for (size_t i = 0; i < h->cfg->n_rms; i++) rm_close(&h->rms[i]);
    free(h->rms);
    xatm__tm_free(&h->tm);
    xatm_config_free(h->cfg);
    free(h);
}

/* ---------------------------------------------------------------- begin */

XATM_EXPORT int xatm_begin(xatm_t *h, const xatm_begin_options *opts)
{
    if (!h) return XATM_EINVAL;
    int rc = enter(h);
    if (rc) return rc;
    if (h->in_txn)
        return fail(h, XATM_ESTATE, "global transaction %s is still open on this handle; "
                    "commit or roll it back first", h->gtrid);

    unsigned protocol = opts ? (unsigned)opts->protocol : 0;
    if (protocol != XATM_PROTOCOL_DEFAULT && protocol != XATM_PROTOCOL_2PC &&
        protocol != XATM_PROTOCOL_3PC)
        return fail(h, XATM_EINVAL, "unknown protocol %u (expected 0, 2 or 3)", protocol);
    if (protocol == XATM_PROTOCOL_DEFAULT) protocol = h->cfg->default_protocol;

    xatm_msg m, reply;
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_BEGIN;
    m.u.begin.protocol = (uint8_t)protocol;
    m.u.begin.timeout_ms = opts ? opts->timeout_ms : 0;

    /* A link that died while idle (xatmd restarted) is replaced here, once. */
    xatm__tm_check_idle(&h->tm);
    /* The next gtrid of the lease an earlier xatm_begin asked for, when it was asked for
     * with the same protocol and timeout: no round trip (docs/protocol.md, "Gtrid
     * leases"). */
    bool reserved = xatm__tm_take_reservation(&h->tm, m.u.begin.protocol, m.u.begin.timeout_ms,
                                              reply.u.begin_ok.gtrid,
                                              &reply.u.begin_ok.protocol,
                                              &reply.u.begin_ok.timeout_ms);
    if (reserved) {
        reply.type = XATM_MSG_BEGIN_OK;
        rc = 0;
    } else {
        bool connected_now = false;
        for (;;) {
            if (h->tm.fd < 0) {
                rc = xatm__tm_connect(&h->tm, h->cfg, h->err, sizeof h->err);
                if (rc) return h->err_code = rc;
                connected_now = true;
            }
            rc = xatm__tm_call(&h->tm, &m, XATM_MSG_BEGIN_OK, &reply, h->err, sizeof h->err);
            if (rc == XATM_ETM && !connected_now) continue; /* link was stale: reconnect once */
            break;
        }
        if (rc == XATM_ETIMEDOUT) rc = XATM_ETM;
        if (rc) return h->err_code = rc;
    }
    /* when the lease is used up, the next transactions' gtrids are asked for now: the
     * request goes out behind this one's VOTE, CANCOMMIT, DONE or ROLLBACK, and its answer
     * comes with the answer to that (or is read when the next xatm_begin takes it) */
    xatm__tm_reserve(&h->tm, m.u.begin.protocol, m.u.begin.timeout_ms);

    xatm_str_copy(h->gtrid, sizeof h->gtrid, reply.u.begin_ok.gtrid);
    if (reply.u.begin_ok.protocol != protocol) {
        /* the codec admits 2 or 3 only; a TM that resolved another protocol than the one
         * asked for is not the TM this library speaks to */
        send_rollback(h);
        return fail(h, XATM_EPROTO, "xatmd started %s with protocol %u, not the %u asked for; "
                    "rolled it back", h->gtrid, (unsigned)reply.u.begin_ok.protocol, protocol);
    }
    h->protocol = reply.u.begin_ok.protocol;
    h->txn_timeout_ms = reply.u.begin_ok.timeout_ms ? reply.u.begin_ok.timeout_ms
                                                    : h->cfg->transaction_timeout_ms;
    h->txn_begun_ms = now_ms();
    h->txn_deadline_ms = h->txn_begun_ms + h->txn_timeout_ms;
    h->n_branches = 0;
    h->in_txn = true;
    xatm_fault_hit("ap.after_begin");
    return 0;
}

/* ---------------------------------------------------------------- sessions and SQL */

static void *rm_native(xatm_t *h, const char *rm, enum xatm_rm_type type)
{
    if (!h || enter(h)) return NULL;
    ap_rm *r = NULL;
    if (rm_slot(h, rm, type, &r)) return NULL;
    if (rm_use(h, r)) return NULL;
    void *n = xatm_rm_native(r->conn);
    if (!n)
        fail(h, XATM_ERMERR, "cannot hand out the session of RM '%s' in %s: %s; the "
             "transaction can only roll back", r->cfg->name, h->in_txn ? h->gtrid : "-",
             xatm_rm_errmsg(r->conn));
    return n;
}

XATM_EXPORT struct pg_conn *xatm_pg_conn(xatm_t *h, const char *rm)
{
    return rm_native(h, rm, XATM_RM_POSTGRESQL);
}

XATM_EXPORT struct st_mysql *xatm_mysql_conn(xatm_t *h, const char *rm)
{
    return rm_native(h, rm, XATM_RM_MYSQL);
}

XATM_EXPORT int xatm_exec(xatm_t *h, const char *rm, const char *sql, uint64_t *affected)
{
    if (!h) return XATM_EINVAL;
    int rc = enter(h);
    if (rc) return rc;
    if (!sql) return fail(h, XATM_EINVAL, "SQL text is NULL");
    ap_rm *r = NULL;
    rc = rm_slot(h, rm, 0, &r);
    if (rc) return rc;
    rc = rm_use(h, r);
    if (rc) return rc;
    int xrc = xatm_rm_exec(r->conn, sql, affected);
    if (xrc == XATM_XA_OK) return 0;
    if (h->in_txn) xatm_rm_mark_failed(r->conn);
    rc = fail(h, xrc == XATM_XAER_RMFAIL ? XATM_ERMUNAVAIL : XATM_ERMERR, "%s",
              xatm_rm_errmsg(r->conn));
    if (h->in_txn) err_append(h, " (branch of %s marked failed: it will roll back)", h->gtrid);
    return rc;
}

XATM_EXPORT int xatm_branch_failed(xatm_t *h, const char *rm)
{
    if (!h) return XATM_EINVAL;
    int rc = enter(h);
    if (rc) return rc;
    if (!h->in_txn) return fail(h, XATM_ESTATE, "no global transaction is open");
    ap_rm *r = NULL;
    rc = rm_slot(h, rm, 0, &r);
    if (rc) return rc;
    if (!r->enlisted)
        return fail(h, XATM_ESTATE, "RM '%s' has no branch in %s", r->cfg->name, h->gtrid);
    xatm_rm_mark_failed(r->conn);
    return 0;
}

/* ---------------------------------------------------------------- commit */

static int commit_one_phase(xatm_t *h)
{
    ap_rm *r = &h->rms[h->order[0]];
    if (!xatm_rm_alive(r->conn)) {
        r->rc = XATM_XAER_RMFAIL;
        send_done(h, XATM_OUTCOME_ABORT);
        return fail(h, XATM_EABORTED, "global transaction %s rolled back: the session of RM "
                    "'%s' broke before the commit, and the RM rolls back an uncommitted "
                    "branch when its session ends", h->gtrid, r->cfg->name);
    }
    r->rc = xatm_rm_run(r->conn, XATM_RM_OP_COMMIT_ONE_PHASE, &r->xid);
    if (r->rc == XATM_XA_OK) {
        send_done(h, XATM_OUTCOME_COMMIT);
        return 0;
    }
    if (r->rc == XATM_XAER_RMFAIL) {
        int rc = fail(h, XATM_EUNKNOWN,
                      "outcome of %s unknown: the connection to RM '%s' broke during its "
                      "one-phase commit (%s); only that RM knows whether the branch committed "
                      "(nothing was prepared, so xatmd has nothing to resolve)",
                      h->gtrid, r->cfg->name, xatm_rm_errmsg(r->conn));
        send_done(h, XATM_OUTCOME_ABORT);
        rm_close(r);
        return rc;
    }
    int rc = fail(h, XATM_EABORTED, "global transaction %s rolled back: the one-phase commit "
                  "of RM '%s' answered %s: %s", h->gtrid, r->cfg->name, xatm_xa_rc_name(r->rc),
                  xatm_rm_errmsg(r->conn));
    if (!xa_rolled_back(r->rc)) {
        /* the branch may still be open on the session: make sure it ends */
        int code = r->rc;
        r->state = BR_ACTIVE;
        rollback_branches(h);
        r->rc = code;
    }
    send_done(h, XATM_OUTCOME_ABORT);
    return rc;
}

/* Writes "; branch 'x' <what> (CODE: detail)" for every NO vote into buf. Called right
 * after a vote: the adapters' messages are replaced by the next operation. */
static void describe_no_votes(xatm_t *h, const char *what, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < h->n_branches && len + 1 < size; k++) {
        ap_rm *r = &h->rms[h->order[k]];
        if (r->rc == XATM_XA_OK || r->rc == XATM_XA_RDONLY) continue;
        const char *detail = xatm_rm_errmsg(r->conn);
        int n = snprintf(buf + len, size - len, "; branch '%s' %s (%s%s%s)", r->cfg->name, what,
                         xatm_xa_rc_name(r->rc), detail[0] ? ": " : "", detail);
        if (n < 0) break;
        len += (size_t)n;
    }
}

/* What is left of the transaction's timeout (at least 1 ms): the bound of phase 1. */
static uint32_t time_left(const xatm_t *h)
{
    uint64_t now = now_ms();
    return h->txn_deadline_ms > now ? (uint32_t)(h->txn_deadline_ms - now) : 1;
}

/* Moves branch r on after its vote (its latest rc): a yes to `yes_state`, a read-only
 * branch to FINISHED, a no to FINISHED (the RM rolled it back), LOST (its session is gone:
 * the RM or xatmd's recovery ends it) or ACTIVE (uncertain: roll back). A branch that was
 * not run (no session) votes no. Returns the vote. */
static uint8_t settle_vote(ap_rm *r, enum ap_branch_state yes_state)
{
    if (!r->ran) r->rc = XATM_XAER_RMFAIL; /* no session: cannot have prepared */
    if (r->rc == XATM_XA_OK) {
        r->state = yes_state;
        return XATM_VOTE_YES;
    }
    if (r->rc == XATM_XA_RDONLY) {
        r->state = BR_FINISHED;
        return XATM_VOTE_READONLY;
    }
    if (xa_rolled_back(r->rc))
        r->state = BR_FINISHED;
    else if (r->rc == XATM_XAER_RMFAIL)
        r->state = BR_LOST; /* dead or closed at the deadline: RM / recovery end it */
    else
        r->state = BR_ACTIVE; /* uncertain: try a rollback */
    return XATM_VOTE_NO;
}

/* Fills m as a vote message of `type` (VOTE, or CANCOMMIT with the same body) with one
 * entry per branch from its latest rc, and moves each branch on: a yes to `yes_state`, a
 * read-only branch to FINISHED, a no to FINISHED (the RM rolled it back), LOST (its
 * session is gone: the RM or xatmd's recovery ends it) or ACTIVE (uncertain: roll back).
 * A branch that was not run (no session) votes no. Returns true when any branch said no. */
static bool build_votes(xatm_t *h, xatm_msg *m, uint8_t type, enum ap_branch_state yes_state)
{
    bool any_no = false;
    memset(m, 0, sizeof *m);
    m->type = type;
    xatm_str_copy(m->u.vote.gtrid, sizeof m->u.vote.gtrid, h->gtrid);
    m->u.vote.n = (uint16_t)h->n_branches;
    for (size_t k = 0; k < h->n_branches; k++) {
        ap_rm *r = &h->rms[h->order[k]];
        xatm_msg_vote_entry *e = &m->u.vote.e[k];
        xatm_str_copy(e->rm, sizeof e->rm, r->cfg->name);
        e->session_id = xatm_rm_session_ref(r->conn);
        e->vote = settle_vote(r, yes_state);
        any_no = any_no || e->vote == XATM_VOTE_NO;
    }
    return any_no;
}

/* Phase 2 on xatmd's commit decision (2PC, and 3PC's DoCommit): commits every prepared
 * branch in parallel and reports DONE. Always 0: the decision is durable at xatmd, which
 * finishes a branch whose commit failed (its session is closed to let it). */
static bool phase_two(xatm_t *h);

static int commit_decided(xatm_t *h)
{
    xatm_fault_hit("ap.after_decision");
    (void)phase_two(h);
    send_done(h, XATM_OUTCOME_COMMIT);
    return 0;
}

/* Phase 2 once the decision is commit: commits every prepared branch in parallel. A
 * branch whose commit failed has its session closed (MariaDB then detaches it) and is left
 * to xatmd; the message says so. true when every prepared branch committed. */
static bool phase_two(xatm_t *h)
{
    bool all = true;
    run_branches(h, XATM_RM_OP_COMMIT, 1u << BR_PREPARED, h->txn_timeout_ms);
    xatm_fault_hit("ap.between_commits");
    xatm_fault_hit("ap.after_commits");
    for (size_t k = 0; k < h->n_branches; k++) {
        ap_rm *r = &h->rms[h->order[k]];
        if (!r->ran) continue;
        if (r->rc == XATM_XA_OK) {
            r->state = BR_FINISHED;
            continue;
        }
        if (!h->err[0]) fail(h, 0, "global transaction %s committed", h->gtrid);
        err_append(h, "; phase-2 commit of branch '%s' failed (%s: %s), xatmd will finish it",
                   r->cfg->name, xatm_xa_rc_name(r->rc), xatm_rm_errmsg(r->conn));
        r->state = BR_LOST;
        all = false;
        rm_close(r); /* lets MariaDB detach the prepared branch for xatmd */
    }
    return all;
}

/* Rolls every branch back, reports DONE(abort) and returns XATM_EABORTED with the
 * message "global transaction <gtrid> rolled back<detail>". */
static int __attribute__((format(printf, 2, 3))) abort_all(xatm_t *h, const char *fmt, ...)
{
    char detail[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    rollback_branches(h);
    send_done(h, XATM_OUTCOME_ABORT); /* no-op when the link is gone */
    return fail(h, XATM_EABORTED, "global transaction %s rolled back%s", h->gtrid, detail);
}

/* The votes were sent, every branch is prepared, and xatmd's answer is not a decision (an
 * ERROR other than EABORTED, another message) or never came: xatmd decides, by its log
 * or (3PC) by its termination rule. The link and the sessions are closed so that it can
 * finish the branches (MariaDB detaches a prepared branch only when its session ends). */
static int leave_to_xatmd(xatm_t *h, int rc, const xatm_msg *reply, const char *what,
                          char *msg, size_t msglen)
{
    if (rc == 0 && reply->type == XATM_MSG_ERROR)
        snprintf(msg, msglen, "xatmd answered %s with %s: %s", what,
                 xatm_errname(reply->u.error.code), reply->u.error.message);
    else if (rc == 0)
        snprintf(msg, msglen, "xatmd answered %s with %s", what, xatm_msg_type_name(reply->type));
    xatm__tm_close(&h->tm);
    close_branch_sessions(h);
    return fail(h, XATM_EUNKNOWN,
                "outcome of global transaction %s unknown: every branch is prepared, but "
                "no decision arrived (%s); the RM sessions are closed and xatmd's recovery "
                "will finish the branches%s",
                h->gtrid, msg,
                h->protocol == XATM_PROTOCOL_3PC ? " (its log, or the 3PC termination rule)"
                                                 : " by its log");
}

/* The decider of the open transaction: tm.decision_rm's branch when the option is on, the
 * protocol is 2PC and there are at least two branches; else NULL. */
static ap_rm *decider_of(xatm_t *h)
{
    if (!h->decider || h->protocol != XATM_PROTOCOL_2PC || h->n_branches < 2) return NULL;
    return h->decider->enlisted ? h->decider : NULL;
}

/* 2PC with the decision in a branch (docs/protocols.md, "Decision in a branch"): every
 * branch but the decider d prepares; then d inserts the commit row and commits in one
 * phase, which IS the commit decision; then phase 2 of the others. xatmd logs nothing and
 * hears DONE(commit-decided). */
static int commit_in_decider(xatm_t *h, ap_rm *d)
{
    char msg[2048], no_votes[2048];
    /* the ENLISTs first, as in 2PC: fencing needs them before anything is prepared */
    int rc = xatm__tm_flush(&h->tm, msg, sizeof msg);
    if (rc) return abort_all(h, ": xatmd unreachable before phase 1 (%s)", msg);

    xatm_fault_hit("ap.before_prepare");
    d->state = BR_DECIDER;
    run_branches(h, XATM_RM_OP_PREPARE, 1u << BR_ACTIVE, time_left(h));
    xatm_fault_hit("ap.between_prepares");
    xatm_fault_hit("ap.after_prepare");
    bool any_no = false, any_prepared = false;
    for (size_t k = 0; k < h->n_branches; k++) {
        ap_rm *r = &h->rms[h->order[k]];
        if (r == d) continue;
        uint8_t v = settle_vote(r, BR_PREPARED);
        any_no = any_no || v == XATM_VOTE_NO;
        any_prepared = any_prepared || v == XATM_VOTE_YES;
    }
    describe_no_votes(h, "voted no", no_votes, sizeof no_votes);
    d->state = BR_ACTIVE; /* from here on rolled back with the others, unless it commits */
    if (any_no) return abort_all(h, "%s", no_votes);
    if (!xatm_rm_alive(d->conn))
        return abort_all(h, ": the session of decider RM '%s' broke before its commit, and "
                         "the RM rolls back an uncommitted transaction when its session ends",
                         d->cfg->name);
    /* never a commit row after the deadline: xatmd's recovery may be deciding abort */
    if (now_ms() >= h->txn_deadline_ms)
        return abort_all(h, ": the transaction timeout (%u ms) passed before the decider's "
                         "commit", h->txn_timeout_ms);
    /* nor once half of tm.decision_retention has passed since BEGIN: recovery may have
     * written the abort row as soon as a branch was prepared (xatmd restarted, or this AP's
     * link to it dropped), and xatmd deletes it once it is older than the retention, which
     * nothing ties to the transaction's timeout (a BEGIN may ask for any); the other half
     * is the margin for the commit's way to the decider and for clock skew. xatmd's
     * retention (HELLO_OK) is the one its sweep uses; the shorter of it and ours counts */
    uint32_t retention = h->cfg->decision_retention_ms;
    if (h->tm.decision_retention_ms && h->tm.decision_retention_ms < retention)
        retention = h->tm.decision_retention_ms;
    if (now_ms() - h->txn_begun_ms >= retention / 2)
        return abort_all(h, ": half of tm.decision_retention (%u ms) passed since the "
                         "transaction began, before the decider's commit: an abort row of it "
                         "may already be gone",
                         retention);

    xatm_fault_hit("ap.decider.before_commit");
    d->state = BR_DECIDER;
    /* every other branch read-only: nothing is prepared, so no decision row is needed */
    run_branches(h, any_prepared ? XATM_RM_OP_COMMIT_DECIDING : XATM_RM_OP_COMMIT_ONE_PHASE,
                 1u << BR_DECIDER, h->txn_timeout_ms);
    if (d->rc == XATM_XAER_RMFAIL) {
        /* the answer is lost: d may have committed. Nothing is rolled back; xatmd sees this
         * AP leave and resolves the gtrid at the decider (its decision row) */
        snprintf(msg, sizeof msg, "%s", xatm_rm_errmsg(d->conn));
        d->state = BR_LOST;
        xatm__tm_close(&h->tm);
        close_branch_sessions(h);
        return fail(h, XATM_EUNKNOWN,
                    "outcome of global transaction %s unknown: the connection to decider RM "
                    "'%s' broke during its commit (%s); the other branches stay prepared and "
                    "xatmd's recovery finishes them by the decider's decision row",
                    h->gtrid, d->cfg->name, msg);
    }
    if (d->rc != XATM_XA_OK) {
        /* a definite no (recovery's abort row came first, a failed statement...): the
         * decider did not commit, so nothing did */
        snprintf(msg, sizeof msg, "; decider '%s' did not commit (%s: %s)", d->cfg->name,
                 xatm_xa_rc_name(d->rc), xatm_rm_errmsg(d->conn));
        int code = d->rc;
        d->state = xa_rolled_back(code) ? BR_FINISHED : BR_ACTIVE;
        rc = abort_all(h, "%s", msg);
        d->rc = code;
        return rc;
    }
    d->state = BR_FINISHED;
    xatm_fault_hit("ap.decider.after_commit");
    bool all = phase_two(h);
    send_done(h, XATM_OUTCOME_COMMIT_DECIDED);
    if (all && any_prepared) note_decided(h);
    return 0;
}

static int commit_two_phase(xatm_t *h)
{
    /* The ENLISTs are on their way to xatmd before anything is prepared: a branch
     * prepared on a session xatmd does not know could not be fenced if this process
     * hung from here on. */
    char msg[2048];
    int rc = xatm__tm_flush(&h->tm, msg, sizeof msg);
    if (rc) return abort_all(h, ": xatmd unreachable before phase 1 (%s)", msg);

    /* Phase 1: every branch votes. */
    xatm_fault_hit("ap.before_prepare");
    run_branches(h, XATM_RM_OP_PREPARE, 1u << BR_ACTIVE, time_left(h));
    xatm_fault_hit("ap.between_prepares");
    xatm_fault_hit("ap.after_prepare");

    xatm_msg m;
    bool any_no = build_votes(h, &m, XATM_MSG_VOTE, BR_PREPARED);
    char no_votes[2048];
    describe_no_votes(h, "voted no", no_votes, sizeof no_votes);

    /* The votes go to xatmd; until they are fully written nothing can be decided. */
    uint32_t req_id;
    rc = xatm__tm_send(&h->tm, &m, &req_id, msg, sizeof msg);
    if (rc)
        return abort_all(h, ": xatmd unreachable before the decision (%s)%s", msg, no_votes);
    xatm_fault_hit("ap.after_vote_sent");

    xatm_msg reply;
    rc = xatm__tm_recv(&h->tm, req_id, "VOTE", &reply, msg, sizeof msg);
    bool decided_commit = rc == 0 && reply.type == XATM_MSG_DECISION &&
                          reply.u.decision.outcome == XATM_OUTCOME_COMMIT;
    bool decided_abort = rc == 0 && ((reply.type == XATM_MSG_DECISION &&
                                      reply.u.decision.outcome == XATM_OUTCOME_ABORT) ||
                                     (reply.type == XATM_MSG_ERROR &&
                                      reply.u.error.code == XATM_EABORTED));

    if (any_no && !decided_commit) {
        /* A NO vote fixes the outcome: abort, whatever became of the answer. */
        return abort_all(h, "%s", no_votes);
    }
    if (decided_commit && any_no) {
        close_branch_sessions(h);
        return fail(h, XATM_EPROTO, "xatmd decided COMMIT for %s although a branch voted no; "
                    "its prepared branches are left to xatmd (this is a bug in xatmd)%s",
                    h->gtrid, no_votes);
    }
    if (decided_abort) {
        const char *why = reply.type == XATM_MSG_DECISION ? reply.u.decision.reason
                                                          : reply.u.error.message;
        return abort_all(h, " by xatmd: %s", why[0] ? why : "no reason given");
    }
    /* The votes were sent and no decision came: xatmd may have committed. */
    if (!decided_commit) return leave_to_xatmd(h, rc, &reply, "VOTE", msg, sizeof msg);

    /* Phase 2: the commit decision is durable at xatmd. */
    return commit_decided(h);
}

/* Collects marker rows for participant_commit (arg: bool *found). */
static void marker_seen(const char *rm, void *arg)
{
    (void)rm;
    *(bool *)arg = true;
}

/* 3PC participant timeout with action "commit": every branch is prepared and
 * acknowledged, and DoCommit did not come (`why`). Commits every branch on its own
 * session. A commit answered "unknown xid" is success only when the branch's committed
 * marker row proves it (xatmd finished it); without one the branch was rolled back. */
static int participant_commit(xatm_t *h, const char *why)
{
    /* a late DECISION must never be read as the answer to a later request; xatmd sees
     * this AP leave and applies its termination rule */
    xatm__tm_close(&h->tm);
    xatm_fault_hit("ap.participant_timeout");
    run_branches(h, XATM_RM_OP_COMMIT, 1u << BR_PREPARED, h->txn_timeout_ms);
    xatm_fault_hit("ap.between_commits");
    xatm_fault_hit("ap.after_commits");

    char report[3072];
    size_t len = 0;
    int not_committed = 0;
    report[0] = '\0';
    for (size_t k = 0; k < h->n_branches; k++) {
        ap_rm *r = &h->rms[h->order[k]];
        const char *state = NULL;
        char detail[1400];
        detail[0] = '\0';
        if (!r->ran) continue;
        if (r->rc == XATM_XA_OK) {
            r->state = BR_FINISHED;
            continue;
        }
        snprintf(detail, sizeof detail, "%s: %s", xatm_xa_rc_name(r->rc),
                 xatm_rm_errmsg(r->conn));
        if (r->rc == XATM_XAER_NOTA) {
            bool found = false;
            int frc = xatm_rm_markers_find(r->conn, h->gtrid, marker_seen, &found);
            if (frc == XATM_XA_OK && found) {
                r->state = BR_FINISHED; /* committed by xatmd meanwhile */
                continue;
            }
            if (frc == XATM_XA_OK) {
                r->state = BR_FINISHED;
                state = "ROLLED BACK (no committed marker row)";
            } else {
                r->state = BR_LOST;
                state = "unknown (its marker row could not be read)";
                snprintf(detail + strlen(detail), sizeof detail - strlen(detail),
                         "; marker lookup: %s", xatm_rm_errmsg(r->conn));
            }
        } else {
            r->state = BR_LOST;
            state = "still prepared or unknown: xatmd's termination rule finishes it";
        }
        not_committed++;
        int n = snprintf(report + len, sizeof report - len, "; branch '%s' %s (%s)",
                         r->cfg->name, state, detail);
        if (n > 0 && (size_t)n < sizeof report - len) len += (size_t)n;
        if (r->state == BR_LOST) rm_close(r); /* lets MariaDB detach it for xatmd */
    }
    if (not_committed == 0) {
        fail(h, 0, "global transaction %s committed by libxatm at the 3PC participant "
             "timeout, without xatmd's DoCommit (%s)", h->gtrid, why);
        return 0;
    }
    return fail(h, XATM_EHEURISTIC,
                "global transaction %s: heuristic outcome; libxatm committed at the 3PC "
                "participant timeout (tm.participant_timeout_action: commit) without xatmd's "
                "DoCommit (%s), and not every branch committed%s",
                h->gtrid, why, report);
}

/* 3PC, after PreCommit: true when a branch that did not prepare may be prepared all the
 * same (build_votes left it LOST: its PREPARE was cut on the wire or its session broke;
 * or ACTIVE: an unexpected answer). A branch its RM rolled back (FINISHED) is certain. */
static bool failed_prepare_uncertain(const xatm_t *h)
{
    for (size_t k = 0; k < h->n_branches; k++) {
        const ap_rm *r = &h->rms[h->order[k]];
        if (r->state == BR_LOST || r->state == BR_ACTIVE) return true;
    }
    return false;
}

/* 3PC, after PreCommit: a branch failed to prepare with an uncertain outcome and xatmd's
 * abort did not arrive (`why`). Rolling the prepared branches back here could contradict
 * xatmd: its termination rule (after a restart, or once this AP's link is gone) commits
 * when it finds every branch prepared, which the uncertain one may be. So every branch
 * is left to xatmd, as prepared as it is: the link and the sessions are closed (MariaDB
 * detaches a prepared branch only when its session ends; an unprepared one rolls back). */
static int leave_uncertain(xatm_t *h, const char *why, const char *no_votes)
{
    xatm__tm_close(&h->tm);
    close_branch_sessions(h);
    return fail(h, XATM_EUNKNOWN,
                "outcome of global transaction %s unknown: after PreCommit a branch failed "
                "to prepare with an uncertain outcome (it may be prepared all the same) and "
                "no abort came from xatmd (%s); the prepared branches are not rolled back "
                "(xatmd's termination rule may find every branch prepared and commit): the "
                "RM sessions are closed and xatmd finishes every branch%s",
                h->gtrid, why, no_votes);
}

/* 3PC (docs/protocols.md): CanCommit, PreCommit (prepare + acknowledge), DoCommit. */
static int commit_three_phase(xatm_t *h)
{
    char msg[2048], no_votes[2048];
    xatm_msg m, reply;
    uint32_t req_id;

    /* CanCommit: every branch checks itself and inserts its marker row. */
    xatm_fault_hit("ap.before_prepare");
    run_branches(h, XATM_RM_OP_CAN_COMMIT, 1u << BR_ACTIVE, time_left(h));
    xatm_fault_hit("ap.after_cancommit_checks");
    bool any_no = build_votes(h, &m, XATM_MSG_CANCOMMIT, BR_ACTIVE);
    describe_no_votes(h, "answered CanCommit no", no_votes, sizeof no_votes);
    int rc = xatm__tm_send(&h->tm, &m, &req_id, msg, sizeof msg);
    if (rc)
        return abort_all(h, ": xatmd unreachable before PreCommit (%s)%s", msg, no_votes);
    xatm_fault_hit("ap.after_cancommit_sent");
    rc = xatm__tm_recv(&h->tm, req_id, "CANCOMMIT", &reply, msg, sizeof msg);
    bool precommit = rc == 0 && reply.type == XATM_MSG_DECISION &&
                     reply.u.decision.outcome == XATM_OUTCOME_PRECOMMIT;
    /* Nothing is prepared: whatever went wrong, rolling back is the only outcome xatmd
     * can reach too (its termination rule aborts a transaction not prepared everywhere). */
    if (any_no) return abort_all(h, "%s", no_votes);
    if (rc) {
        /* xatmd may hold a durable PRECOMMIT whose answer was lost: its termination rule
         * then waits for these sessions and fences (KILLs) a MariaDB one still connected
         * at the deadline. Ending them here keeps it from killing whatever this handle
         * would run on them next; they reopen on next use. */
        rc = abort_all(h, ": no PreCommit from xatmd (%s)", msg);
        close_branch_sessions(h);
        return rc;
    }
    if (!precommit) {
        if (reply.type == XATM_MSG_DECISION && reply.u.decision.outcome == XATM_OUTCOME_ABORT)
            return abort_all(h, " by xatmd: %s",
                             reply.u.decision.reason[0] ? reply.u.decision.reason
                                                        : "no reason given");
        if (reply.type == XATM_MSG_ERROR)
            return abort_all(h, ": xatmd answered CANCOMMIT with %s: %s",
                             xatm_errname(reply.u.error.code), reply.u.error.message);
        return abort_all(h, ": xatmd answered CANCOMMIT with %s outcome %u (expected "
                         "precommit or abort)", xatm_msg_type_name(reply.type),
                         reply.type == XATM_MSG_DECISION ? (unsigned)reply.u.decision.outcome
                                                         : 0u);
    }

    /* PreCommit (PRECOMMIT is durable at xatmd): every branch prepares, within the time
     * xatmd waits for the acknowledgement. */
    xatm_fault_hit("ap.after_precommit");
    run_branches(h, XATM_RM_OP_PREPARE, 1u << BR_ACTIVE, h->cfg->precommit_timeout_ms);
    xatm_fault_hit("ap.between_prepares");
    xatm_fault_hit("ap.after_prepare");
    any_no = build_votes(h, &m, XATM_MSG_VOTE, BR_PREPARED);
    describe_no_votes(h, "failed to prepare", no_votes, sizeof no_votes);
    rc = xatm__tm_send(&h->tm, &m, &req_id, msg, sizeof msg);
    if (rc && any_no) {
        if (failed_prepare_uncertain(h)) return leave_uncertain(h, msg, no_votes);
        return abort_all(h, ": xatmd unreachable after PreCommit (%s)%s", msg, no_votes);
    }
    if (rc) {
        /* every branch is prepared and xatmd is gone: the participant timeout's case */
        if (h->cfg->participant_timeout_action == XATM_PARTICIPANT_COMMIT)
            return participant_commit(h, msg);
        return leave_to_xatmd(h, rc, &reply, "the PreCommit acknowledgement (VOTE)", msg,
                              sizeof msg);
    }
    xatm_fault_hit("ap.after_vote_sent");

    if (any_no) {
        /* a branch is not prepared: xatmd can only abort */
        rc = xatm__tm_recv(&h->tm, req_id, "VOTE", &reply, msg, sizeof msg);
        if (rc == 0 && reply.type == XATM_MSG_DECISION &&
            reply.u.decision.outcome == XATM_OUTCOME_COMMIT) {
            close_branch_sessions(h);
            return fail(h, XATM_EPROTO, "xatmd decided COMMIT for %s although a branch "
                        "failed to prepare; its prepared branches are left to xatmd (this is "
                        "a bug in xatmd)%s", h->gtrid, no_votes);
        }
        bool aborted = rc == 0 && ((reply.type == XATM_MSG_DECISION &&
                                    reply.u.decision.outcome == XATM_OUTCOME_ABORT) ||
                                   (reply.type == XATM_MSG_ERROR &&
                                    reply.u.error.code == XATM_EABORTED));
        if (!aborted && failed_prepare_uncertain(h)) {
            if (rc == 0 && reply.type == XATM_MSG_ERROR)
                snprintf(msg, sizeof msg, "xatmd answered the VOTE with %s: %s",
                         xatm_errname(reply.u.error.code), reply.u.error.message);
            else if (rc == 0)
                snprintf(msg, sizeof msg, "xatmd answered the VOTE with %s",
                         xatm_msg_type_name(reply.type));
            return leave_uncertain(h, msg, no_votes);
        }
        return abort_all(h, "%s", no_votes);
    }

    /* DoCommit: wait for xatmd's decision, at most the participant timeout. */
    bool wait = h->cfg->participant_timeout_action == XATM_PARTICIPANT_WAIT;
    if (wait)
        rc = xatm__tm_recv(&h->tm, req_id, "VOTE (PreCommit acknowledgement)", &reply, msg,
                           sizeof msg);
    else
        rc = xatm__tm_recv_within(&h->tm, req_id, "VOTE (PreCommit acknowledgement)",
                                  h->cfg->participant_timeout_ms, "tm.participant_timeout",
                                  &reply, msg, sizeof msg);
    if (rc == 0 && reply.type == XATM_MSG_DECISION &&
        reply.u.decision.outcome == XATM_OUTCOME_COMMIT)
        return commit_decided(h);
    if (rc == 0 && ((reply.type == XATM_MSG_DECISION &&
                     reply.u.decision.outcome == XATM_OUTCOME_ABORT) ||
                    (reply.type == XATM_MSG_ERROR && reply.u.error.code == XATM_EABORTED))) {
        const char *why = reply.type == XATM_MSG_DECISION ? reply.u.decision.reason
                                                          : reply.u.error.message;
        return abort_all(h, " by xatmd: %s", why[0] ? why : "no reason given");
    }
    if (rc != 0 && !wait) return participant_commit(h, msg);
    return leave_to_xatmd(h, rc, &reply, "the PreCommit acknowledgement (VOTE)", msg,
                          sizeof msg);
}

XATM_EXPORT int xatm_commit(xatm_t *h)
{
    if (!h) return XATM_EINVAL;
    int rc = enter(h);
    if (rc) return rc;
    if (!h->in_txn) return fail(h, XATM_ESTATE, "no global transaction is open");

    if (h->n_branches == 0) {
        send_done(h, XATM_OUTCOME_COMMIT);
        rc = 0;
    } else if (h->n_branches == 1) {
        rc = commit_one_phase(h);
    } else if (h->protocol == XATM_PROTOCOL_3PC) {
        rc = commit_three_phase(h);
    } else if (decider_of(h)) {
        rc = commit_in_decider(h, decider_of(h));
    } else {
        rc = commit_two_phase(h);
    }
    end_txn(h);
    /* the commit rows of finished transactions go in batches (outside any branch) */
    if (h->n_decided >= XATM_DECISION_BATCH) flush_decided(h);
    return rc;
}

XATM_EXPORT int xatm_rollback(xatm_t *h)
{
    if (!h) return XATM_EINVAL;
    int rc = enter(h);
    if (rc) return rc;
    if (!h->in_txn) return fail(h, XATM_ESTATE, "no global transaction is open");
    rollback_branches(h);
    send_rollback(h);
    end_txn(h);
    return 0;
}

/* ---------------------------------------------------------------- accessors */

XATM_EXPORT const char *xatm_gtrid(const xatm_t *h)
{
    return h ? h->gtrid : "";
}

XATM_EXPORT const char *xatm_last_error(const xatm_t *h)
{
    return h ? h->err : "invalid handle (NULL)";
}

XATM_EXPORT int xatm_last_code(const xatm_t *h)
{
    return h ? h->err_code : XATM_EINVAL;
}
