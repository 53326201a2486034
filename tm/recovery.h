/*
 * recovery.h — the recovery rule (docs/architecture.md, "Recovery") and the registry of
 * unresolved decisions it works from.
 *
 * Ownership of decisions. A COMMIT decision lives in exactly one of two holders:
 *   - gtx.h's table while its transaction is live in this incarnation (COMMIT_PENDING,
 *     COMMITTING with its AP connected and within its deadline);
 *   - the decision registry (tm_decisions, here) when it came from the log at start-up
 *     (COMMIT added, END removed, HEURISTIC / PRECOMMIT / ABORT recorded; an ABORT
 *     supersedes a PRECOMMIT), or when recovery adopted a COMMITTING transaction from the
 *     gtx table whose AP is gone or past its deadline (gtx_take_overdue), or a PRECOMMITTED
 *     one whose AP is gone (an unresolved PRECOMMIT), or the event loop handed over a 3PC
 *     ABORT once it was durable (gtx_abort_durable's callback).
 * A decision moves from the table to the registry, or leaves the registry (END appended),
 * only with ctx->log_mu held, so the log's rotation callback (recovery_emit_unresolved),
 * which runs inside a flush, sees every unresolved decision exactly once or twice, never
 * zero times. The registry is a hash table keyed by gtrid with its own mutex; each entry also
 * carries recovery's progress on it (consecutive clean scans per branch).
 *
 * Heuristic decisions (an operator's `xatmctl commit|rollback GTRID`, admin.c) are registry
 * entries too. Their HEURISTIC record is appended and the entry updated under log_mu, the
 * record is flushed, and only then does the entry steer recovery (tm_heuristic.durable).
 * They are never removed: when every branch is finished an END is appended and the entry
 * stays, marked finished (`xatmctl list --all`, `show`). The rotation callback carries every
 * heuristic record, finished or not, into each new segment; a CHECKPOINT cannot hold an END,
 * so after a restart a finished heuristic decision is unfinished again until two scans of
 * every RM it names show none of its branches (then its END is appended once more).
 *
 * A recovery pass (recovery_pass), run by one thread at a time:
 *   1. adopt COMMITTING transactions whose AP is gone or past its deadline (a pass that
 *      adopted one is followed by another at once, so their branches, usually seen for
 *      the first time then, get their second scan without waiting for the interval);
 *   2. scan every RM that is not in back-off: xatm_rm_recover lists this TM's prepared
 *      branches; an RM that fails is quarantined (logged once, reconnected after a capped
 *      exponential back-off, 1 s doubling to 60 s) and the others are served; each
 *      successful scan also counts for gtx's held aborts (gtx_aborts_scanned), which
 *      releases those whose branches two scans no longer list;
 *   3. act only on branches present in this AND the previous successful scan of their RM,
 *      grouped by gtrid, in this order:
 *        a durable heuristic decision                     its outcome (the latest one)
 *        gtx verdict LIVE                                 leave it to the AP
 *        gtx verdict ABORTED_NOW (ACTIVE past deadline, removed from the table)  roll back
 *        gtx verdict COMMIT or a registry COMMIT          commit, but only branches on the
 *                                                         RMs the decision names (its YES
 *                                                         branches): a branch of the gtrid
 *                                                         on another RM comes from an
 *                                                         incarnation that reissued the
 *                                                         gtrid; it is left prepared and
 *                                                         reported once as an anomaly
 *        registry PRECOMMIT without COMMIT / ABORT (3PC)  leave (step 3b decides it)
 *        registry ABORT (3PC)                             roll back
 *        anything else (presumed abort)                   roll back
 *      With tm.decision_rm, "ABORTED_NOW" and "presumed abort" first resolve the gtrid at
 *      the decider's RM (xatm_rm_decision_resolve, rec_decider_gate): a commit row ->
 *      a COMMIT record naming every RM but the decider is appended, flushed and enters
 *      the registry, and the branches are committed; an abort row -> roll back; busy ->
 *      leave it, and past its deadline fence the decider session recorded at ENLIST;
 *      the decider's RM unreachable -> leave it in doubt (logged once per gtrid);
 *      Phase-2 calls run in batches: those of up to 16 transactions at once, each call on
 *      a session of its own (rec_finish_batch; an RM gets an extra phase-2 session per 16
 *      branches it lists to act on, up to 15), so that the RMs group-commit them;
 *      XAER_NOTA answers "already done" (logged once per branch). A MariaDB branch is only
 *      touched once the AP session recorded for it (ENLIST/VOTE session reference, from
 *      the gtx table, the registry or gtx's held aborts) is gone and InnoDB has detached
 *      its transaction (xatm_rm_session_alive == 0; a session of an earlier run of
 *      mariadbd is gone): MariaDB 10.11 answers XAER_NOTA to another session while the
 *      owner is connected, and can answer OK and commit nothing while the owner is still
 *      detaching (docs/rm-facts.md, facts 1-2).
 *      UNKNOWN SESSION: a MariaDB branch for which no session is known (a gtrid of an
 *      earlier incarnation without a COMMIT record, a reference without its server's
 *      incarnation, an abort gtx could not hold) is tried only once it has settled: listed
 *      by scans spanning REC_SETTLE_MS (1 s), and for an earlier incarnation's gtrid not
 *      before start-up + tm.transaction_timeout. XAER_NOTA on it then means that a session
 *      still holds it: logged once as "not finished yet: its session may still hold it",
 *      not counted as done, tried again at every pass.
 *      FENCING: while that session is alive and the transaction is past its deadline (for a
 *      heuristic decision: at once), recovery kills it (xatm_rm_fence, KILL CONNECTION, which
 *      waits for the detach) and logs "fenced MariaDB session N of AP pid P holding branch
 *      RM of GTRID: <why>"; the branch is finished by the next pass, which runs right away.
 *      Before the deadline the branch waits (the AP may still finish it);
 *   3b. the termination rule for every registry PRECOMMIT (docs/protocols.md): its deadline
 *      passed (adopted: its ack deadline; replayed: since + tm.transaction_timeout); its
 *      recorded MariaDB sessions gone (a live one is fenced); two consecutive scans of
 *      every RM it names, both begun after the pass that first saw the sessions gone,
 *      agreeing on each branch; the committed marker rows (xatm_rm_markers_find). Then
 *      COMMIT (every branch prepared or marked; heuristic mixed when one is marked and
 *      another neither) or ABORT is appended and flushed under log_mu, re-checked first,
 *      and the next pass, run at once, acts on it as on any decision;
 *   4. resolve: a registry decision whose every branch was absent from two consecutive
 *      successful scans of its RM, of whose gtrid no scan of this pass lists any branch
 *      (a branch on an RM it does not name is an anomaly, above), and whose every recorded
 *      MariaDB session is no longer connected (such a session may still hold its branch,
 *      and a branch caught in the middle of its session's detach can be missing from XA
 *      RECOVER), and, for a 3PC decision, whose marker rows agree with it (COMMIT: every
 *      named branch committed; ABORT: none; else it is marked heuristic mixed, logged once,
 *      and stays until an operator records an outcome), gets its END appended and then
 *      leaves the registry (a heuristic one
 *      stays, finished), both under log_mu; a failed append leaves it in the registry and
 *      sets ctx->fatal before log_mu is released, so no rotation can checkpoint without it.
 *   5. the marker rows of 3PC transactions whose END was appended since the last pass are
 *      deleted on every reachable RM (recovery_markers_ended; best effort), once those
 *      ENDs are durable (xatm_declog_sync: END is not forced, and a COMMIT replayed
 *      without its END needs its markers, or it looks heuristic mixed).
 * Each pass ends with a report (recovery_report): branches committed / rolled back / left,
 * sessions fenced, decisions resolved, RMs unreachable; `xatmctl recover` asks for a pass
 * and waits for its report.
 * Start-up runs two passes back to back before the sockets open (each RM's connect timeout
 * bounds them). Between them, a prepared branch of this TM whose epoch is not below the
 * new one (the log was lost or replaced) raises the epoch past it: a forced BOOT record,
 * ctx->epoch and the (unused) gtx table follow, and a warning is logged. The first
 * connection to each RM also creates the 3PC marker table (xatm_rm_markers_ensure; a
 * failure is a warning naming the RM), and on tm.decision_rm's RM the decision table
 * (xatm_rm_decisions_ensure). Each pass ends, at most once a minute, by sweeping this TM's
 * abort rows older than tm.decision_retention and its commit rows as old whose gtrid no
 * scan of a pass that scanned every RM lists as prepared. Then a thread runs a pass every
 * tm.recovery_interval, earlier when woken
 * (orphaned transaction, `xatmctl recover`, a forced outcome, a fence) or when a
 * quarantined RM's back-off ends, and stops cleanly at shutdown.
 *
 * The latest successful scan of each RM is kept, under recovery's mutex, for the admin
 * commands: the state of a branch "as the RM reports it" (recovery_branch_state) and the
 * prepared branches no live transaction or decision explains (recovery_foreach_prepared).
 *
 * Recovery uses its own RM sessions (xatm_rm_open_ex, blocking calls), never an AP's: one
 * per configured RM for everything (scans, session checks, fences, markers, phase 2), and
 * up to 15 more per RM for phase-2 calls only, opened by a pass with 16 or more branches of
 * that RM to act on (one per 16) and closed once its phase-2 calls are made, or with the
 * others when the RM is quarantined (a failed open is logged once; recovery goes on with
 * the sessions it has). Each call on them is bounded (10 s,
 * xatm_rm_open_options.call_timeout_ms): an RM that hangs without closing its connections
 * (SIGSTOP, a frozen host) is quarantined like an unreachable one instead of holding up
 * the pass, and so the other RMs. Its mutex is a leaf: nothing else is locked while it is
 * held, so the admin code may call the accessors below from inside gtx / registry
 * callbacks.
 */
#ifndef XATM_RECOVERY_H
#define XATM_RECOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "declog.h"
#include "gtx.h"
#include "tm.h"

/* ------------------------------------------------------------------ decision registry */

/* What the registry knows about a gtrid. */
enum tm_decision_kind {
    TM_DEC_NONE = 0,      /* not in the registry */
    TM_DEC_COMMIT,        /* a COMMIT record (or an adopted COMMITTING transaction) */
    TM_DEC_PRECOMMIT,     /* a 3PC PRECOMMIT without COMMIT or ABORT: the termination rule */
    TM_DEC_HEUR_COMMIT,   /* an operator's heuristic commit (the latest durable one wins) */
    TM_DEC_HEUR_ROLLBACK, /* an operator's heuristic rollback */
    TM_DEC_ABORT,         /* a 3PC ABORT record (aborted after PRECOMMIT): roll back */
};

/* Where the termination rule stands on a PRECOMMIT decision (set by each pass). */
enum tm_term_step {
    TM_TERM_NONE = 0,      /* not looked at yet */
    TM_TERM_WAIT_DEADLINE, /* waiting for its deadline */
    TM_TERM_WAIT_SESSIONS, /* waiting for its recorded MariaDB sessions to end (fenced) */
    TM_TERM_WAIT_SCANS,    /* waiting for two consecutive scans, both after the sessions
                              ended, of every RM it names */
    TM_TERM_WAIT_MARKERS,  /* a marker lookup failed (or an RM is unreachable): retried */
};

/* Heuristic records kept per gtrid. A forced outcome beyond this is refused (ELIMIT). */
#define TM_HEUR_MAX 8

/* One operator's forced outcome (a HEURISTIC record). */
typedef struct tm_heuristic {
    uint8_t outcome; /* XATM_OUTCOME_COMMIT or XATM_OUTCOME_ABORT (rollback) */
    bool durable;    /* its record is flushed; a pending one does not steer recovery yet */
    char who[64];    /* the record's who: "<user> (uid N), pid P" */
    char why[256];   /* the record's why: the operator's reason */
} tm_heuristic;

/* One branch of a registry decision, with recovery's progress on it. */
typedef struct tm_decision_branch {
    char rm[XATM_RM_NAME_MAX + 1]; /* RM name (= bqual) */
    uint64_t session_id;           /* AP's session at prepare (MariaDB connection id) or 0 */
    unsigned clean_scans;          /* consecutive successful scans of rm without this branch */
    bool nota_logged;              /* "already finished" reported once */
} tm_decision_branch;

/* A copy of one registry entry. */
typedef struct tm_decision_info {
    char gtrid[XATM_GTRID_MAX + 1];   /* the transaction */
    enum tm_decision_kind kind;       /* what to do with its branches */
    uint8_t protocol;                 /* 2 or 3 */
    bool has_commit;                  /* a COMMIT record exists (emitted at rotation) */
    bool has_precommit;               /* a PRECOMMIT record exists */
    bool has_abort;                   /* an ABORT record exists (supersedes the PRECOMMIT) */
    bool heuristic_mixed;             /* (3PC) some branch committed and another rolled back
                                         or was lost; kept unresolved (and visible) until an
                                         operator records an outcome */
    char mixed[256];                  /* heuristic_mixed: "committed: my; rolled back: pg" */
    enum tm_term_step term;           /* PRECOMMIT: the termination rule's last step */
    uint64_t term_gone_pass;          /* PRECOMMIT: the pass that first saw every recorded
                                         MariaDB session gone (0: not yet) */
    uint8_t n_heur;                   /* heuristic records, oldest first (0: none) */
    tm_heuristic heur[TM_HEUR_MAX];   /* every forced outcome of this gtrid, never dropped */
    bool finished;                    /* (heuristic entries only) every branch is finished and
                                         END was written; kept so it is never hidden */
    uint64_t since_ms;                /* monotonic ms when this TM learnt of it */
    bool from_log;                    /* replayed (true) or adopted from the gtx table */
    uint32_t ap_pid;                  /* its AP's pid when known (adopted), else 0 */
    uint64_t deadline_ms;             /* monotonic ms after which a MariaDB session of its AP
                                         that still holds a branch is fenced; 0 = since_ms +
                                         tm.transaction_timeout (replayed from the log) */
    uint8_t n_branches;               /* entries in branches */
    tm_decision_branch branches[XATM_MAX_BRANCHES]; /* the branches to finish */
} tm_decision_info;

/* Where a forced outcome's branches come from when the registry has none yet. */
typedef struct tm_force_origin {
    bool exact;                               /* branches are the transaction's branches
                                                 (a COMMIT names them); false: look on every
                                                 configured RM, with these sessions */
    uint8_t n_branches;                       /* entries in branches */
    xatm_declog_branch branches[XATM_MAX_BRANCHES]; /* RM and AP session of known branches */
    uint32_t ap_pid;                          /* its AP's pid, 0 unknown */
    uint64_t deadline_ms;                     /* its deadline when known, else 0 */
} tm_force_origin;

typedef struct tm_decisions tm_decisions; /* opaque, thread-safe */

/* rm_names (n_rms) are the configured RMs: a HEURISTIC for a gtrid with no COMMIT names
 * them all. NULL on out of memory. */
tm_decisions *tm_decisions_new(const char *const *rm_names, size_t n_rms);
void tm_decisions_free(tm_decisions *d);

/* Applies one replayed log record (BOOT/CHECKPOINT are ignored). 0 or XATM_ENOMEM.
 * Idempotent, as declog.h requires: a HEURISTIC identical to one already recorded for its
 * gtrid is not added twice. An END removes a decision, except one with heuristic records,
 * which stays as finished. */
int tm_decisions_replay(tm_decisions *d, const xatm_declog_record *rec, uint64_t now_ms);

/* Adds a decision taken over from the gtx table: a COMMIT for a COMMITTING transaction,
 * an unresolved PRECOMMIT (every branch, deadline = its ack deadline) for a PRECOMMITTED
 * one whose AP is gone. 0 or XATM_ENOMEM. */
int tm_decisions_adopt(tm_decisions *d, const gtx_info *g, uint64_t now_ms);

/* Adds the ABORT decision of a 3PC transaction whose ABORT record is durable (from
 * gtx_abort_durable's callback, log_mu held): every branch with its session, its AP pid,
 * deadline = the later of its deadline and its ack deadline. 0 or XATM_ENOMEM. */
int tm_decisions_adopt_abort(tm_decisions *d, const gtx_info *g, uint64_t now_ms);

/* The termination rule decided a PRECOMMIT (type XATM_DL_COMMIT or XATM_DL_ABORT), whose
 * record the caller has just appended under log_mu; mixed (may be NULL) marks a heuristic
 * mixed outcome with its text. 0 or XATM_ENOTFOUND. */
int tm_decisions_decide(tm_decisions *d, const char *gtrid, uint8_t type, const char *mixed);

/* Marks gtrid's decision heuristic mixed with text (see tm_decision_info.mixed); true the
 * first time (the caller logs it once). */
bool tm_decisions_set_mixed(tm_decisions *d, const char *gtrid, const char *text);

/* Records the termination rule's step for gtrid; with TM_TERM_WAIT_SCANS and no pass
 * recorded yet, `pass` becomes term_gone_pass (WAIT_DEADLINE and WAIT_SESSIONS clear
 * it). Returns term_gone_pass (0: none). */
uint64_t tm_decisions_term_step(tm_decisions *d, const char *gtrid, enum tm_term_step step,
                                uint64_t pass);

/* Records an operator's forced outcome for gtrid as PENDING (it does not steer recovery
 * until tm_decisions_force_durable): call it with log_mu held, right after appending the
 * HEURISTIC record and before flushing it. Branches come from `origin` when the entry has
 * none. 0, XATM_ENOMEM, or XATM_ELIMIT (TM_HEUR_MAX records already). */
int tm_decisions_force(tm_decisions *d, const char *gtrid, uint8_t outcome, const char *who,
                       const char *why, const tm_force_origin *origin, uint64_t now_ms);

/* The HEURISTIC records of gtrid are flushed: they now steer recovery. */
void tm_decisions_force_durable(tm_decisions *d, const char *gtrid);

/* The kind of gtrid's decision (TM_DEC_NONE when absent). */
enum tm_decision_kind tm_decisions_kind(tm_decisions *d, const char *gtrid);

/* Same, and a copy of the entry in *out (may be NULL) when there is one. */
enum tm_decision_kind tm_decisions_get(tm_decisions *d, const char *gtrid, tm_decision_info *out);

/* After a successful scan of RM `rm`: every decision branch on rm that `present(gtrid,
 * rm, arg)` says is still prepared gets clean_scans = 0 (and its entry is no longer
 * finished), the others clean_scans + 1. */
void tm_decisions_scanned(tm_decisions *d, const char *rm,
                          bool (*present)(const char *gtrid, const char *rm, void *arg),
                          void *arg);

/* Marks that "already finished" was reported for (gtrid, rm); returns true the first time. */
bool tm_decisions_note_nota(tm_decisions *d, const char *gtrid, const char *rm);

/* Every branch of gtrid is finished and its END is being appended (log_mu held): a
 * decision without heuristic records leaves the registry; one with them stays, finished.
 * 0 or XATM_ENOTFOUND. */
int tm_decisions_resolve(tm_decisions *d, const char *gtrid);

/* Removes gtrid. 0 or XATM_ENOTFOUND. */
int tm_decisions_remove(tm_decisions *d, const char *gtrid);

/* Calls cb with a copy of every entry (under the registry's mutex). */
void tm_decisions_foreach(tm_decisions *d, void (*cb)(const tm_decision_info *e, void *arg),
                          void *arg);

/* Unresolved decisions: every entry but the finished heuristic ones. */
size_t tm_decisions_count(tm_decisions *d);

/* Entries with heuristic records; *unfinished (may be NULL) gets those not finished. */
size_t tm_decisions_count_heuristic(tm_decisions *d, size_t *unfinished);

/* Entries marked heuristic mixed for which no operator has recorded an outcome yet. */
size_t tm_decisions_count_mixed(tm_decisions *d);

/* "commit", "precommit", "abort", "heuristic-commit", "heuristic-rollback", "none". */
const char *tm_decision_kind_name(enum tm_decision_kind k);

/* The answer to a VOTE for a gtrid that is not live (v->unknown != GTX_UNK_NONE, filled by
 * gtx_vote): a COMMIT or heuristic commit in the registry answers commit, a heuristic
 * rollback or a 3PC ABORT answers abort; otherwise gtx_vote's provisional answer stands
 * (abort for a gtrid
 * known aborted or never issued, ERROR XATM_EUNKNOWN for one that finished with an outcome
 * no longer remembered). Call it after gtx_vote: a decision leaves the gtx table only
 * after it entered the registry, so the two lookups in this order never miss it. */
void tm_decisions_answer_vote(tm_decisions *d, const char *gtrid, gtx_vote_result *v);

/* ------------------------------------------------------------------ recovery */

struct recovery; /* opaque */

/* One RM's state as shown by `xatmctl status`. */
typedef struct recovery_rm_status {
    char name[XATM_RM_NAME_MAX + 1]; /* RM name */
    const char *type;                /* "postgresql" | "mysql" */
    bool quarantined;                /* unreachable, in back-off */
    char last_error[512];            /* last failure message, "" if none since it recovered */
    int64_t last_scan_age_s;         /* seconds since the last successful scan, -1 if never */
    uint32_t backoff_ms;             /* current back-off while quarantined */
    uint32_t retry_in_ms;            /* time left until the next reconnect attempt */
    int64_t prepared;                /* this TM's prepared branches in the last scan, -1
                                        when unknown (never scanned, or quarantined) */
} recovery_rm_status;

/* What one pass did (xatmctl recover, status). */
typedef struct recovery_report {
    uint64_t pass;            /* pass number since start (start-up passes are 1 and 2) */
    uint64_t ended_ms;        /* monotonic ms when it ended */
    uint32_t duration_ms;     /* how long it ran */
    unsigned committed;       /* branches committed by this pass */
    unsigned rolled_back;     /* branches rolled back by this pass */
    unsigned already_done;    /* branches found already finished (XAER_NOTA) */
    unsigned left;            /* prepared branches seen and left (live, first sighting,
                                 waiting for an AP session, failed, RM lost mid-pass) */
    unsigned fenced;          /* AP sessions killed (KILL CONNECTION) by this pass */
    unsigned resolved;        /* decisions whose END this pass appended */
    unsigned unreachable;     /* RMs this pass could not scan */
    char unreachable_rms[256]; /* their names, comma-separated */
} recovery_report;

/* A branch's state as its RM last reported it. */
enum recovery_branch_state {
    REC_BRANCH_UNKNOWN_UNSCANNED = 0, /* no successful scan of that RM yet */
    REC_BRANCH_UNKNOWN_UNREACHABLE,   /* the RM is quarantined: its last scan is void */
    REC_BRANCH_PREPARED,              /* listed by the latest scan */
    REC_BRANCH_NOT_PREPARED,          /* absent from the latest scan */
};

/* What recovery is waiting for on one branch (recovery_branch_wait). */
typedef struct recovery_wait {
    uint64_t session_id;   /* the AP's MariaDB session reference that still holds the
                              branch (proto.h); 0 when owner_unknown */
    uint32_t ap_pid;       /* its AP's pid, 0 unknown */
    bool fenced;           /* recovery has killed that session (KILL CONNECTION) */
    uint64_t fence_at_ms;  /* monotonic ms from which it is fenced (0: never: no deadline) */
    bool owner_unknown;    /* no session is known for the branch: recovery waits for it to
                              settle, then tries; XAER_NOTA then means "still held" */
    uint64_t settle_at_ms; /* owner_unknown: monotonic ms from which recovery tries */
} recovery_wait;

/* Creates recovery state for ctx (uses ctx->cfg, ->gtx, ->decisions, ->log). No I/O. */
struct recovery *recovery_new(struct tm_ctx *ctx);

/* One pass (see the file comment). Returns how many branches it finished. */
size_t recovery_pass(struct recovery *r);

/* Start-up recovery: two passes back to back. */
void recovery_startup(struct recovery *r);

/* Starts / wakes / stops the periodic thread. 0 or XATM_ENOMEM. */
int recovery_start(struct recovery *r);
void recovery_wake(struct recovery *r);
void recovery_stop(struct recovery *r);

/* Asks for a pass (waking the thread) and returns its ticket: the number of the first
 * pass that starts after this call. recovery_report_for(ticket) is true once it ended.
 * That pass reconnects quarantined RMs at once, whatever their back-off (an operator who
 * asks usually knows the RM is back). */
uint64_t recovery_request_pass(struct recovery *r);

/* true when pass `ticket` (or a later one) has ended; *out gets the latest report. */
bool recovery_report_for(struct recovery *r, uint64_t ticket, recovery_report *out);

/* The latest report; false when no pass has ended yet. */
bool recovery_last_report(struct recovery *r, recovery_report *out);

/* gtrid, a 3PC transaction, ended (its END was appended): the next pass deletes its marker
 * rows on every RM (best effort; bounded queue). Thread-safe; NULL r accepted. */
void recovery_markers_ended(struct recovery *r, const char *gtrid);

/* Transaction gtrid has ended (END appended after its AP reported every branch finished):
 * drops its branches from the published scans, which would otherwise show them
 * "prepared" (and `xatmctl list` the transaction "in-doubt") until the next scan. Best
 * effort: a scan taken before the END and published after it still lists them, until
 * the scan after. Takes recovery's mutex (a leaf). NULL r is accepted. */
void recovery_forget_finished(struct recovery *r, const char *gtrid);

/* Total AP sessions fenced since start. */
uint64_t recovery_fenced_total(struct recovery *r);

/* Stops the thread if running, closes the RM sessions and frees. NULL accepted. */
void recovery_free(struct recovery *r);

/* Copies the state of every configured RM into out (n = cfg->n_rms entries). */
void recovery_rm_statuses(struct recovery *r, recovery_rm_status *out, size_t n);

/* Branch (gtrid, rm) as RM `rm` last reported it. An RM not in the config is
 * REC_BRANCH_UNKNOWN_UNSCANNED. */
enum recovery_branch_state recovery_branch_state(struct recovery *r, const char *gtrid,
                                                 const char *rm);

/* "prepared", "not prepared", "unknown (RM unreachable)", "unknown (not scanned yet)". */
const char *recovery_branch_state_name(enum recovery_branch_state s);

/* true when the last pass left branch (gtrid, rm) waiting for its AP's session; *out gets
 * what it waits for. */
bool recovery_branch_wait(struct recovery *r, const char *gtrid, const char *rm,
                          recovery_wait *out);

/* Calls cb(gtrid, rm, arg) for every branch in the latest scans of the RMs that are not
 * quarantined (from a copy: cb runs with no lock held). 0 or XATM_ENOMEM (cb not called). */
int recovery_foreach_prepared(struct recovery *r,
                              void (*cb)(const char *gtrid, const char *rm, void *arg), void *arg);

/* The declog rotation callback (xatm_declog_options.unresolved); arg is the tm_ctx. Emits
 * every registry decision and every COMMIT_PENDING / COMMITTING transaction. */
void recovery_emit_unresolved(void *arg, void (*emit)(const xatm_declog_record *rec, void *ea),
                              void *emit_arg);

#endif
