/*
 * gtx.h — the global-transaction table and its state machine: every transaction this
 * incarnation of xatmd issued and has not finished. Pure logic: no I/O, no clock (callers
 * pass now_ms, monotonic), no log calls (a transition that needs a record hands it back
 * to the caller). Owns the table, the per-transaction branch lists, the totals and a
 * bounded memory of recently timed-out transactions.
 *
 * Keys: a transaction is keyed by its seq (u64, 1, 2, ...); its gtrid is
 * xatm_gtrid_format(tm_id, epoch, seq). A gtrid of another TM or another epoch is never in
 * the table (lookups by gtrid parse it and compare tm_id and epoch first).
 *
 * States and transitions ("removed" = no longer in the table; presumed abort makes a
 * removed transaction that never reached COMMIT_PENDING, and whose PRECOMMIT (3PC) is
 * superseded by a durable ABORT, an aborted one):
 *
 *                 gtx_begin
 *                     |
 *                     v
 *   +------------- ACTIVE -------------------------+  gtx_enlist adds/updates branches
 *   | NO vote, missing vote,                       |
 *   | ROLLBACK, DONE abort,     (3PC) CANCOMMIT:   |  (2PC) VOTE: every branch
 *   | owner connection lost,    every branch YES   |  YES/READONLY, >= 1 YES
 *   | deadline passed,          (the caller        |  (the caller appends COMMIT,
 *   | (3PC) CANCOMMIT with a    appends PRECOMMIT, |  forced)
 *   | NO/missing vote, VOTE     forced)            |
 *   | before CANCOMMIT,              |             |
 *   | (2PC) CANCOMMIT                v             |
 *   |                       PRECOMMIT_PENDING      |
 *   |                                |  gtx_precommit_durable (the flush returned 0):
 *   |                                v  ack deadline := now + tm.precommit_timeout
 *   |   owner lost: owner := 0, ->PRECOMMITTED -----------------------+
 *   |   recovery adopts it (gtx_take_orphans:        |                |
 *   |   an unresolved PRECOMMIT, termination rule)   |  VOTE (the     |
 *   |                                   NO / missing |  PreCommit ack)|
 *   |                    ack deadline passed, DONE   |  all YES/READ- |
 *   |                    abort, ROLLBACK (the caller |  ONLY, >= 1 YES|
 *   |                    appends ABORT, forced)      |  (caller: COMMIT, forced)
 *   |                                   v            |                |
 *   |                             ABORT_PENDING      +-------+        |
 *   |                                   |                    v        |
 *   |              gtx_abort_durable    |             COMMIT_PENDING -+- owner lost: owner := 0
 *   |              (flush returned 0):  |                    |
 *   |              removed (abort,      |                    |  gtx_commit_durable
 *   |              remembered, held)    v                    v
 *   |   VOTE: all READONLY          removed              COMMITTING ----- owner lost / DONE
 *   |   (or no branch): commit,                              |            reports a failed or
 *   |   nothing logged (after PRECOMMIT: the caller          |            missing branch / DONE
 *   |   appends END)                                         |            abort: owner := 0
 *   v   DONE commit with <= 1 branch: one-phase commit       |            ("orphaned"), stays
 * removed                                                    |
 *                                    +-- DONE commit, every YES branch OK or NOTA:
 *                                    |   removed, the caller appends END
 *                                    +-- owner 0, or past its deadline with its AP still
 *                                        connected (hung): gtx_take_overdue hands it to
 *                                        recovery (recovery.h's registry): removed
 *
 * Transition table (each function asserts the source state of the transitions it makes):
 *
 *   from               event                                  to                 by
 *   -----------------  -------------------------------------  -----------------  ---------------
 *   -                  BEGIN                                  ACTIVE             gtx_begin
 *   ACTIVE             ENLIST                                 ACTIVE             gtx_enlist
 *   ACTIVE             VOTE: a NO/invalid/missing vote,       removed (abort)    gtx_vote
 *                      an unknown RM, too many branches,
 *                      a 3PC transaction (no CANCOMMIT)
 *   ACTIVE             VOTE: all READONLY or no branch        removed (commit)   gtx_vote
 *   ACTIVE             VOTE: all YES/READONLY, >= 1 YES       COMMIT_PENDING     gtx_vote
 *   ACTIVE             CANCOMMIT: a NO/READONLY/invalid/      removed (abort)    gtx_cancommit
 *                      missing vote, an unknown RM, too many
 *                      branches, a 2PC transaction
 *   ACTIVE             CANCOMMIT: no branch                   removed (commit)   gtx_cancommit
 *   ACTIVE             CANCOMMIT: every branch YES            PRECOMMIT_PENDING  gtx_cancommit
 *   PRECOMMIT_PENDING  log flush returned 0                   PRECOMMITTED       gtx_precommit_
 *                                                                                durable
 *   PRECOMMITTED       VOTE: every PRECOMMIT branch YES/      COMMIT_PENDING     gtx_vote
 *                      READONLY, >= 1 YES, no other branch
 *   PRECOMMITTED       VOTE: every branch READONLY            removed (commit,   gtx_vote
 *                                                             caller: END)
 *   PRECOMMITTED       VOTE: a NO/invalid/missing vote, a     ABORT_PENDING      gtx_vote
 *                      branch the PRECOMMIT does not name
 *   PRECOMMITTED       ack deadline passed (owner connected)  ABORT_PENDING      gtx_expire_
 *                                                                                precommits
 *   PRECOMMITTED       DONE abort, ROLLBACK                   ABORT_PENDING      gtx_done,
 *                                                                                gtx_rollback
 *   PRECOMMITTED       owner 0, recovery adopts it            removed            gtx_take_orphans,
 *                                                                                gtx_take_overdue
 *   ABORT_PENDING      log flush returned 0                   removed (abort)    gtx_abort_durable
 *   COMMIT_PENDING     log flush returned 0                   COMMITTING         gtx_commit_durable
 *   COMMITTING         DONE commit, all YES branches OK/NOTA  removed (END)      gtx_done
 *   COMMITTING         DONE commit with a failure, DONE abort COMMITTING, own 0  gtx_done
 *   ACTIVE             DONE commit, <= 1 branch               removed (commit)   gtx_done
 *   ACTIVE (2PC)       DONE commit-decided (decision in a     removed (commit,   gtx_done
 *                      branch, tm.decision_rm)                nothing logged)
 *   ACTIVE             DONE commit, >= 2 branches (no         removed (abort)    gtx_done
 *                      decision)
 *   ACTIVE             DONE abort, ROLLBACK                   removed (abort)    gtx_done,
 *                                                                                gtx_rollback
 *   ACTIVE             owner connection lost                  removed (abort)    gtx_conn_lost
 *   any other state    owner connection lost                  same, owner 0      gtx_conn_lost
 *   ACTIVE             deadline passed                        removed (abort)    gtx_expire,
 *                                                                         gtx_recovery_verdict
 *   COMMITTING         owner 0, recovery adopts it            removed            gtx_take_orphans,
 *                                                                                gtx_take_overdue
 *   COMMITTING         past its deadline (AP connected but    removed            gtx_take_overdue
 *                      silent), recovery adopts it
 *
 * Rejections (state unchanged): VOTE on a transaction that is neither ACTIVE nor
 * PRECOMMITTED, CANCOMMIT on one that is not ACTIVE, either from a connection that does
 * not own it (XATM_ESTATE); ENLIST after ACTIVE or by a non-owner (XATM_ESTATE, counted);
 * ENLIST/DONE/ROLLBACK of an unknown gtrid (XATM_ENOTFOUND, counted); ROLLBACK or DONE
 * abort of a transaction decided commit (never undone), or of one whose PRECOMMIT or
 * ABORT is being flushed; DONE on COMMIT_PENDING, PRECOMMIT_PENDING or ABORT_PENDING (the
 * AP cannot have the decision yet); DONE commit on PRECOMMITTED (no DoCommit was sent);
 * DONE commit-decided on anything but an ACTIVE 2PC transaction.
 *
 * Liveness for recovery (gtx_recovery_verdict): ACTIVE within its deadline, COMMIT_PENDING
 * (the COMMIT record may already be durable: the force precedes any phase-2 call), and
 * COMMITTING whose owner is connected and within its deadline are LIVE: recovery leaves
 * their branches alone. So are PRECOMMIT_PENDING, PRECOMMITTED (within its ack deadline,
 * or past it: the event loop then forces its ABORT at once; an orphaned one is adopted by
 * recovery before it asks) and ABORT_PENDING (no branch is rolled back before the ABORT is
 * durable). ACTIVE past its deadline is removed right there, under the table's mutex, so
 * it can never commit afterwards (ABORTED_NOW). COMMITTING whose owner is gone or past its
 * deadline is COMMIT. Anything else is UNKNOWN (the caller then looks in the decision
 * registry; otherwise presumed abort).
 *
 * Deadlines: an ACTIVE transaction's deadline is begin + timeout; it stays the
 * transaction's deadline through the 3PC states (it is when recovery fences a MariaDB
 * session still holding a branch after an abort). PRECOMMITTED also has an ack deadline
 * (PreCommit durable + tm.precommit_timeout). On reaching COMMITTING it gets a fresh
 * deadline (decision + timeout) for its phase 2.
 *
 * Aborted transactions: every abort of an ACTIVE transaction (timeout, NO vote, ROLLBACK,
 * DONE abort, connection lost), and every 3PC abort after PRECOMMIT once its ABORT is
 * durable (gtx_abort_durable), is remembered twice:
 *   - in a ring of the last GTX_ABORT_MEMORY aborts (cause, timeout, deadline, AP pid), so
 *     that a late VOTE hears "abort" with the reason, and `xatmctl show` names the cause;
 *   - when a branch had a recorded RM session, in the HELD set (cause, deadline, AP pid and
 *     every branch's session), for as long as recovery may need the sessions: it waits
 *     for, or fences, a MariaDB session that still holds a prepared branch of an aborted
 *     transaction, because MariaDB lets no other session finish it while the owner is
 *     attached (docs/rm-facts.md). A held abort is released only once every RM of its
 *     branches has had two consecutive successful scans, both begun after the abort, that
 *     list no branch of it (gtx_aborts_scanned), and, for an abort by disconnect or by a
 *     missing PreCommit acknowledgement, its deadline has passed (its AP may still have
 *     been preparing). So the set is bounded by
 *     the prepared branches actually outstanding plus the aborts of the last two scans
 *     (plus disconnected ones within their timeout), never by a count: no abort whose
 *     branch is still prepared is forgotten.
 *
 * Threads: every function takes the table's mutex; callbacks run with it held and must not
 * call back into the table.
 */
#ifndef XATM_GTX_H
#define XATM_GTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/proto.h"
#include "../common/xid.h"
#include "declog.h"

/* Transaction states (see the diagram above). */
enum gtx_state {
    GTX_ACTIVE = 1,
    GTX_COMMIT_PENDING = 2,
    GTX_COMMITTING = 3,
    GTX_PRECOMMIT_PENDING = 4, /* 3PC: CanCommit all yes, PRECOMMIT being flushed */
    GTX_PRECOMMITTED = 5,      /* 3PC: PreCommit sent, waiting for its acknowledgement */
    GTX_ABORT_PENDING = 6,     /* 3PC: aborted after PRECOMMIT, ABORT being flushed */
};
#define GTX_STATE_MAX GTX_ABORT_PENDING

/* Bounds. */
#define GTX_MAX_LIVE 100000u       /* live transactions before BEGIN answers XATM_ELIMIT */
#define GTX_ABORT_MEMORY 4096u     /* recent aborts whose cause is remembered (the ring) */
#define GTX_LEASE_MAX XATM_LEASE_MAX /* seqs one lease may hold (gtx_reserve) */

/* One branch (one RM) of a transaction. */
typedef struct gtx_branch {
    char rm[XATM_RM_NAME_MAX + 1]; /* RM name (= bqual) */
    uint64_t session_id;           /* AP's RM session (MariaDB connection id), 0 if none */
    uint8_t vote;                  /* enum xatm_vote, 0 until the VOTE */
    bool acked;                    /* DONE reported its phase-2 call finished (OK/NOTA) */
} gtx_branch;

/* A copy of one transaction, as handed to callbacks and returned by lookups. */
typedef struct gtx_info {
    char gtrid[XATM_GTRID_MAX + 1];        /* "<tm_id>.<epoch>.<seq>" */
    uint64_t seq;                          /* table key */
    uint8_t protocol;                      /* 2 or 3 */
    enum gtx_state state;                  /* current state */
    uint64_t begin_ms;                     /* monotonic ms of BEGIN */
    uint64_t deadline_ms;                  /* monotonic ms; see "Deadlines" */
    uint64_t ack_deadline_ms;              /* PRECOMMITTED and later: when xatmd aborts
                                              unless PreCommit is acknowledged (monotonic
                                              ms); 0 before PRECOMMITTED */
    uint32_t timeout_ms;                   /* the transaction's timeout */
    uint64_t owner;                        /* owning connection id, 0 when the AP is gone */
    uint32_t ap_pid;                       /* the AP's pid (SO_PEERCRED at BEGIN), 0 unknown */
    bool overflow;                         /* ENLIST tried more than XATM_MAX_BRANCHES */
    uint8_t abort_cause;                   /* ABORT_PENDING: why (enum gtx_abort_cause) */
    char abort_reason[XATM_REASON_MAX + 1]; /* ABORT_PENDING: the reason the AP hears */
    uint8_t n_branches;                    /* entries in branches */
    gtx_branch branches[XATM_MAX_BRANCHES]; /* in enlistment order */
} gtx_info;

/* Counters for status. Totals count since start. */
typedef struct gtx_counts {
    uint64_t active, commit_pending, committing; /* live transactions by state */
    uint64_t precommit_pending, precommitted;    /* ... (3PC) */
    uint64_t abort_pending;                      /* ... (3PC: ABORT being flushed) */
    uint64_t orphaned;                           /* decided (not ACTIVE) with owner 0 */
    uint64_t begun;                              /* BEGINs accepted */
    uint64_t committed;                          /* commit decisions made */
    uint64_t aborted;                            /* transactions removed as aborted */
    uint64_t timed_out;                          /* of which by deadline */
    uint64_t unknown_msgs;                       /* ENLIST/DONE/ROLLBACK of unknown gtrids */
    uint64_t rejected_msgs;                      /* one-way messages rejected by state/owner */
    uint64_t held_aborts;                        /* aborts whose sessions are held for
                                                    recovery (see "Aborted transactions") */
} gtx_counts;

/* What gtx_vote knows of a gtrid that is not a live transaction of this incarnation. */
enum gtx_vote_unknown {
    GTX_UNK_NONE = 0,      /* live here: decided by the votes */
    GTX_UNK_FOREIGN,       /* another TM's, malformed, or of an epoch after ours: abort */
    GTX_UNK_NEVER_ISSUED,  /* our epoch, a seq this incarnation never issued: abort */
    GTX_UNK_ABORTED,       /* remembered as aborted (ring or held set): abort */
    GTX_UNK_FINISHED,      /* our epoch, issued, not live, not remembered: its outcome is
                              not known here (committed and ended, or an abort forgotten) */
    GTX_UNK_EARLIER_EPOCH, /* an earlier incarnation of this TM: outcome not known here */
};

/* What gtx_vote decided. */
typedef struct gtx_vote_result {
    uint8_t outcome;                   /* XATM_OUTCOME_COMMIT, _ABORT or (CANCOMMIT)
                                          _PRECOMMIT; 0 when `error` is set */
    int error;                         /* 0, or the code of an ERROR to answer instead of a
                                          DECISION (XATM_EUNKNOWN); reason is its message */
    enum gtx_vote_unknown unknown;     /* why the gtrid is not live (GTX_UNK_NONE if it is):
                                          the caller asks the decision registry first */
    bool must_log;                     /* a forced record (rec) must be appended and the
                                          answer sent only after its flush: COMMIT (now
                                          COMMIT_PENDING), PRECOMMIT (now PRECOMMIT_PENDING)
                                          or ABORT (now ABORT_PENDING) */
    bool must_end;                     /* (PreCommit ack, every branch read-only) the
                                          transaction ended: the caller appends END */
    uint8_t protocol;                  /* the transaction's protocol (0 when unknown) */
    uint64_t seq;                      /* the transaction's seq (0 when unknown) */
    char reason[XATM_REASON_MAX + 1];  /* for an abort: why; "" for a commit */
    xatm_declog_record rec;            /* the record when must_log */
} gtx_vote_result;

/* What gtx_done did. */
enum gtx_done_action {
    GTX_DONE_IGNORED = 0, /* nothing changed (see note) */
    GTX_DONE_REMOVED,     /* removed; nothing to log */
    GTX_DONE_ENDED,       /* removed after a durable commit: the caller appends END */
    GTX_DONE_ORPHANED,    /* decided commit, not finished: owner := 0, recovery finishes */
    GTX_DONE_ABORT_LOG,   /* (3PC, PRECOMMITTED) DONE abort: now ABORT_PENDING; the caller
                             appends rec (forced) and calls gtx_abort_durable after the flush */
};
typedef struct gtx_done_result {
    enum gtx_done_action action; /* see above */
    const char *note;            /* static text saying why, for the log ("" when normal) */
    uint8_t protocol;            /* the transaction's protocol (0 when not found) */
    uint64_t seq;                /* the transaction's seq (0 when not found) */
    xatm_declog_record rec;      /* GTX_DONE_ABORT_LOG: the ABORT record */
    bool wake_recovery;          /* DONE commit-decided reported a branch not finished:
                                    recovery should look at the gtrid now */
} gtx_done_result;

/* Why an ACTIVE transaction was aborted. */
enum gtx_abort_cause {
    GTX_ABORT_TIMEOUT = 1, /* its deadline passed */
    GTX_ABORT_VOTE,        /* its VOTE decided abort (a NO, missing or invalid vote...) */
    GTX_ABORT_ROLLBACK,    /* its AP rolled it back (ROLLBACK, DONE abort) */
    GTX_ABORT_DISCONNECT,  /* its AP's connection to xatmd closed */
    GTX_ABORT_ACK_TIMEOUT, /* (3PC) PreCommit not acknowledged within tm.precommit_timeout */
};

/* What the table remembers of a recently aborted transaction (gtx_recent_abort). */
typedef struct gtx_abort_info {
    char gtrid[XATM_GTRID_MAX + 1];         /* the transaction */
    enum gtx_abort_cause cause;             /* why it was aborted */
    uint32_t timeout_ms;                    /* its timeout */
    uint64_t deadline_ms;                   /* its deadline (monotonic ms) */
    uint32_t ap_pid;                        /* its AP's pid, 0 unknown */
    uint8_t n_branches;                     /* entries in branches */
    gtx_branch branches[XATM_MAX_BRANCHES]; /* its branches with a recorded session */
} gtx_abort_info;

/* Recovery's view of one gtrid. */
enum gtx_verdict {
    GTX_V_UNKNOWN = 0, /* not a live transaction of this incarnation */
    GTX_V_LIVE,        /* leave its branches to the AP */
    GTX_V_ABORTED_NOW, /* was ACTIVE past its deadline: removed now, roll back */
    GTX_V_COMMIT,      /* decided commit and its AP is gone or late: commit */
};

typedef struct gtx_table gtx_table; /* opaque */

/* A new, empty table. rm_names (n_rms entries) are the RMs a branch may name; NULL/0 means
 * any valid RM name. NULL on out of memory or an invalid tm_id/epoch. */
gtx_table *gtx_table_new(const char *tm_id, uint32_t epoch, const char *const *rm_names,
                         size_t n_rms);
void gtx_table_free(gtx_table *t);

/* BEGIN with XATM_BEGIN_RESERVE: leases connection `owner` (!= 0) the next `count` seqs
 * (1..GTX_LEASE_MAX) for its later transactions, the first one's gtrid into gtrid
 * (gtrid_size bytes) and its seq into *first_seq (if not NULL), and creates nothing. A
 * connection holds at most one lease: a new one
 * replaces what is left of the old. A leased seq begins with gtx_begin_reserved, which
 * also uses up the lease's seqs before it; the lease ends when its last seq is used or the
 * connection is lost (gtx_conn_lost). While it lasts, recovery's verdict on a gtrid of one
 * of its unused seqs is LIVE (with *out zeroed but for gtrid, seq and state ACTIVE): the
 * AP's message that begins it may be on its way while a branch of it is already prepared.
 * A lease counts as one against GTX_MAX_LIVE with the live transactions, and a transaction
 * begun from it takes that slot while it lives (for good when it was the lease's last seq),
 * so beginning one fails only on ENOMEM when each connection runs one transaction at a
 * time; a second live one on the same lease needs a slot of its own. 0, XATM_EINVAL, XATM_ELIMIT or XATM_ENOMEM. */
int gtx_reserve(gtx_table *t, uint64_t owner, unsigned count, char *gtrid, size_t gtrid_size,
                uint64_t *first_seq);

/* true when gtrid is an unused seq of owner's lease. */
bool gtx_is_reserved(gtx_table *t, uint64_t owner, const char *gtrid);

/* Begins gtrid, an unused seq of owner's lease, as a new ACTIVE transaction (deadline now +
 * timeout), as gtx_begin would; that seq and the lease's seqs before it are used up
 * whatever the result. 0 and *out; XATM_ENOTFOUND (not an unused seq of owner's lease),
 * XATM_EINVAL, XATM_ELIMIT, XATM_ENOMEM. */
int gtx_begin_reserved(gtx_table *t, uint64_t owner, uint32_t ap_pid, const char *gtrid,
                       uint8_t protocol, uint32_t timeout_ms, uint64_t now_ms, gtx_info *out);

/* BEGIN: a new ACTIVE transaction owned by connection `owner` (!= 0), whose AP process is
 * ap_pid (0 unknown). protocol 2 or 3, timeout_ms > 0. 0 and *out, XATM_EINVAL or
 * XATM_ELIMIT (too many live transactions). */
int gtx_begin(gtx_table *t, uint64_t owner, uint32_t ap_pid, uint8_t protocol,
              uint32_t timeout_ms, uint64_t now_ms, gtx_info *out);

/* ENLIST: records (or updates the session id of) branch rm. 0, XATM_ENOTFOUND, XATM_ESTATE
 * (not ACTIVE or not the owner), XATM_EINVAL (RM not configured), XATM_ELIMIT (too many
 * branches: the transaction will abort at its VOTE). Failures are counted. */
int gtx_enlist(gtx_table *t, uint64_t owner, const char *gtrid, const char *rm,
               uint64_t session_id);

/* VOTE: decides (2PC; or, on a PRECOMMITTED transaction, the PreCommit acknowledgement:
 * see the transition table). 0 with *out filled, or XATM_ESTATE when the transaction is
 * neither ACTIVE nor PRECOMMITTED or `owner` does not own it (nothing changed). A gtrid
 * that is not live here gets out->unknown and a provisional answer, which the caller replaces by what the decision
 * registry knows (tm_decisions_answer_vote, recovery.h): abort for FOREIGN ("unknown
 * transaction: not issued by this xatmd"), NEVER_ISSUED ("unknown transaction: never
 * issued") and ABORTED ("transaction timed out", "transaction already aborted at its
 * vote", "transaction rolled back by its AP", "transaction aborted: its AP
 * disconnected"); error XATM_EUNKNOWN for FINISHED and EARLIER_EPOCH (it may have
 * committed: a COMMIT whose END was written is forgotten). */
int gtx_vote(gtx_table *t, uint64_t owner, const char *gtrid, const xatm_msg_vote_entry *e,
             size_t n, gtx_vote_result *out);

/* CANCOMMIT (3PC): the CanCommit answers of an ACTIVE transaction. Every branch YES ->
 * PRECOMMIT_PENDING, out->outcome XATM_OUTCOME_PRECOMMIT, must_log with the PRECOMMIT
 * record (every branch with its session); no branch -> commit, removed; anything else
 * (a NO, READONLY, invalid or missing vote, an unknown RM, too many branches, a protocol-2
 * transaction) -> abort, removed, nothing logged. Unknown gtrids, XATM_ESTATE: as
 * gtx_vote. */
int gtx_cancommit(gtx_table *t, uint64_t owner, const char *gtrid,
                  const xatm_msg_vote_entry *e, size_t n, gtx_vote_result *out);

/* The PRECOMMIT record of seq is durable: PRECOMMIT_PENDING -> PRECOMMITTED, ack deadline
 * now_ms + ack_timeout_ms. 0, XATM_ENOTFOUND or XATM_ESTATE (not PRECOMMIT_PENDING). */
int gtx_precommit_durable(gtx_table *t, uint64_t seq, uint64_t now_ms, uint32_t ack_timeout_ms);

/* The ABORT record of seq is durable: ABORT_PENDING -> removed, remembered as aborted
 * (ring and held set, gtx.h "Aborted transactions") with its cause. cb (may be NULL) sees
 * it first, under the table's mutex (recovery's registry takes it over). 0, XATM_ENOTFOUND
 * or XATM_ESTATE (not ABORT_PENDING). */
int gtx_abort_durable(gtx_table *t, uint64_t seq, void (*cb)(const gtx_info *g, void *arg),
                      void *arg);

/* The COMMIT record of seq is durable: COMMIT_PENDING -> COMMITTING, deadline renewed.
 * 0, or XATM_ENOTFOUND (not in the table) / XATM_ESTATE (not COMMIT_PENDING). */
int gtx_commit_durable(gtx_table *t, uint64_t seq, uint64_t now_ms);

/* DONE from `owner`: see the transition table. 0 with *out, XATM_ENOTFOUND (unknown, counted)
 * or XATM_ESTATE (not the owner, counted). *out->note says why for unusual cases. */
int gtx_done(gtx_table *t, uint64_t owner, const char *gtrid, uint8_t outcome,
             const xatm_msg_done_entry *e, size_t n, gtx_done_result *out);

/* ROLLBACK from `owner`: ACTIVE -> removed; PRECOMMITTED -> ABORT_PENDING, its ABORT
 * record in *abort_rec (the caller appends it, forced, and calls gtx_abort_durable after
 * the flush); otherwise abort_rec->type is 0. 0, XATM_ENOTFOUND, XATM_ESTATE (not the
 * owner, decided commit, a PRECOMMIT or ABORT being flushed, or PRECOMMITTED with a NULL
 * abort_rec: nothing changed). */
int gtx_rollback(gtx_table *t, uint64_t owner, const char *gtrid, xatm_declog_record *abort_rec);

/* Connection `owner` closed: its ACTIVE transactions are removed (aborted), the others
 * (decided, or in a 3PC state) get owner 0. Returns how many were aborted; *orphaned (if
 * not NULL) gets how many decided ones were orphaned. */
size_t gtx_conn_lost(gtx_table *t, uint64_t owner, size_t *orphaned);

/* Removes every ACTIVE transaction whose deadline is <= now_ms (aborted, remembered as
 * timed out); cb (may be NULL) sees each before removal. Returns how many. */
size_t gtx_expire(gtx_table *t, uint64_t now_ms, void (*cb)(const gtx_info *g, void *arg),
                  void *arg);

/* (3PC) Every PRECOMMITTED transaction with an owner whose ack deadline is <= now_ms goes
 * to ABORT_PENDING (cause GTX_ABORT_ACK_TIMEOUT); cb sees it with its ABORT record, under
 * the table's mutex, and must append that record (forced) and arrange gtx_abort_durable
 * after the flush. Returns how many. */
size_t gtx_expire_precommits(gtx_table *t, uint64_t now_ms,
                             void (*cb)(const gtx_info *g, const xatm_declog_record *rec,
                                        void *arg),
                             void *arg);

/* The earliest deadline of an ACTIVE transaction or ack deadline of a PRECOMMITTED one
 * (monotonic ms), or UINT64_MAX if none. */
uint64_t gtx_next_deadline(gtx_table *t);

/* Recovery's question about a prepared branch of gtrid (see "Liveness"). *out (may be
 * NULL) gets a copy when the transaction is in the table (also for ABORTED_NOW). */
enum gtx_verdict gtx_recovery_verdict(gtx_table *t, const char *gtrid, uint64_t now_ms,
                                      gtx_info *out);

/* Hands every orphaned COMMITTING or PRECOMMITTED transaction (owner 0) to cb and removes
 * it from the table (cb tells them apart by state). cb returns 0 to accept; a nonzero
 * return keeps that transaction in the table (e.g. out of memory in the receiver).
 * Returns how many were taken. */
size_t gtx_take_orphans(gtx_table *t, int (*cb)(const gtx_info *g, void *arg), void *arg);

/* Same, and also every COMMITTING transaction whose deadline is <= now_ms although its AP
 * is still connected (a hung or silent AP: recovery finishes its phase 2; a DONE it sends
 * later finds nothing and is ignored). */
size_t gtx_take_overdue(gtx_table *t, uint64_t now_ms, int (*cb)(const gtx_info *g, void *arg),
                        void *arg);

/* What the table remembers of an aborted transaction gtrid (see "Aborted transactions"):
 * the held set's entry (with the branch sessions), else the ring's (no branches). 0 and
 * *out, or XATM_ENOTFOUND (never aborted here, or forgotten). */
int gtx_recent_abort(gtx_table *t, const char *gtrid, gtx_abort_info *out);

/* The abort counter: call right before a scan starts and pass the value to
 * gtx_aborts_scanned, so only aborts older than the scan count it. */
uint64_t gtx_abort_mark(gtx_table *t);

/* After a successful scan of RM rm that began at `mark` (gtx_abort_mark): each held abort
 * from before the mark with a branch on rm counts the scan as clean (present(gtrid, rm,
 * arg) false) or resets its count (true). Held aborts whose every branch has two clean
 * scans (and, for a disconnect, whose deadline is <= now_ms) are released. Returns how
 * many were released. */
size_t gtx_aborts_scanned(gtx_table *t, const char *rm, uint64_t mark, uint64_t now_ms,
                          bool (*present)(const char *gtrid, const char *rm, void *arg),
                          void *arg);

/* Moves an unused table to another epoch (start-up: recovery found branches of this TM
 * with an epoch >= ours, docs/architecture.md "Identifiers"). 0, XATM_EINVAL (epoch 0),
 * or XATM_ESTATE when a transaction was already begun. */
int gtx_table_set_epoch(gtx_table *t, uint32_t epoch);

/* The table's epoch. */
uint32_t gtx_table_epoch(gtx_table *t);

/* "timed out", "aborted at its vote", "rolled back by its AP", "its AP disconnected",
 * "PreCommit not acknowledged in time". */
const char *gtx_abort_cause_name(enum gtx_abort_cause c);

/* Looks up one transaction by gtrid. 0 and *out, or XATM_ENOTFOUND. */
int gtx_lookup(gtx_table *t, const char *gtrid, gtx_info *out);

/* Calls cb for every live transaction (in no particular order). */
void gtx_foreach(gtx_table *t, void (*cb)(const gtx_info *g, void *arg), void *arg);

/* Fills the COMMIT record of a transaction (for the rotation callback and gtx_vote): its
 * YES branches. */
void gtx_commit_record(const gtx_info *g, xatm_declog_record *rec);

/* Fills the record of type XATM_DL_PRECOMMIT or XATM_DL_ABORT (protocol 3, every branch
 * with its session) or XATM_DL_COMMIT (as gtx_commit_record). */
void gtx_decision_record(const gtx_info *g, uint8_t type, xatm_declog_record *rec);

/* The record the rotation callback carries for a transaction in state g->state, or
 * false (ACTIVE: nothing decided). */
bool gtx_unresolved_record(const gtx_info *g, xatm_declog_record *rec);

void gtx_get_counts(gtx_table *t, gtx_counts *out);

/* "active", "commit-pending", "committing", "precommit-pending", "precommitted",
 * "abort-pending". */
const char *gtx_state_name(enum gtx_state s);

#endif
