/*
 * recovery.h — the recovery rule (docs/architecture.md, "Recovery") and the registry of
 * unresolved decisions it works from.
 *
 * Ownership of decisions. A COMMIT decision lives in exactly one of two holders:
 *   - gtx.h's table while its transaction is live in this incarnation (COMMIT_PENDING,
 *     COMMITTING with or without an owner);
 *   - the decision registry (tm_decisions, here) when it came from the log at start-up
 *     (COMMIT added, END removed, HEURISTIC / PRECOMMIT recorded), or when recovery adopted
 *     an orphaned COMMITTING transaction from the gtx table (gtx_take_orphans).
 * A decision moves from the table to the registry, or leaves the registry (END appended),
 * only with ctx->log_mu held, so the log's rotation callback (recovery_emit_unresolved),
 * which runs inside a flush, sees every unresolved decision exactly once or twice, never
 * zero times. The registry is a hash table keyed by gtrid with its own mutex; each entry also
 * carries recovery's progress on it (consecutive clean scans per branch).
 *
 * A recovery pass (recovery_pass), run by one thread at a time:
 *   1. adopt orphaned COMMITTING transactions into the registry;
 *   2. scan every RM that is not in back-off: xatm_rm_recover lists this TM's prepared
 *      branches; an RM that fails is quarantined (logged once, reconnected after a capped
 *      exponential back-off, 1 s doubling to 60 s) and the others are served;
 *   3. act only on branches present in this AND the previous successful scan of their RM,
 *      grouped by gtrid:
 *        gtx verdict LIVE         leave it to the AP
 *        gtx verdict ABORTED_NOW  (ACTIVE past deadline, removed from the table) roll back
 *        gtx verdict COMMIT or a registry COMMIT (or heuristic commit)       commit
 *        registry PRECOMMIT without COMMIT (3PC, no termination rule here)   leave, warn
 *        anything else (presumed abort, or heuristic rollback)               roll back
 *      XAER_NOTA answers "already done" (logged once per branch). A MariaDB branch is only
 *      touched once the AP session recorded for it (ENLIST/VOTE session id) is gone and
 *      InnoDB has detached its transaction (xatm_rm_session_alive == 0): MariaDB 10.11 can
 *      answer OK to an XA COMMIT from another session and commit nothing while the owner is
 *      still detaching (docs/rm-facts.md, fact 2). Until then the branch waits for the
 *      next pass;
 *   4. resolve: a registry decision whose every branch was absent from two consecutive
 *      successful scans of its RM, and whose every recorded MariaDB session is no longer
 *      connected (such a session may still hold its branch, and a branch caught in the
 *      middle of its session's detach can be missing from XA RECOVER), gets its END
 *      appended and leaves the registry.
 * Start-up runs two passes back to back before the sockets open (each RM's connect timeout
 * bounds them); then a thread runs a pass every tm.recovery_interval, earlier when woken
 * or when a quarantined RM's back-off ends, and stops cleanly at shutdown.
 *
 * Recovery uses its own RM sessions (xatm_rm_open per configured RM, blocking calls),
 * never an AP's.
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
    TM_DEC_PRECOMMIT,     /* a 3PC PRECOMMIT without a COMMIT: left alone */
    TM_DEC_HEUR_COMMIT,   /* an operator's heuristic commit */
    TM_DEC_HEUR_ROLLBACK, /* an operator's heuristic rollback */
};

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
    bool has_heuristic;               /* a HEURISTIC record exists */
    uint8_t heur_outcome;             /* its enum xatm_outcome */
    char who[64], why[256];           /* its who / why */
    uint64_t since_ms;                /* monotonic ms when this TM learnt of it */
    bool from_log;                    /* replayed (true) or adopted from the gtx table */
    uint8_t n_branches;               /* entries in branches */
    tm_decision_branch branches[XATM_MAX_BRANCHES]; /* the branches to finish */
} tm_decision_info;

typedef struct tm_decisions tm_decisions; /* opaque, thread-safe */

/* rm_names (n_rms) are the configured RMs: a HEURISTIC for a gtrid with no COMMIT names
 * them all. NULL on out of memory. */
tm_decisions *tm_decisions_new(const char *const *rm_names, size_t n_rms);
void tm_decisions_free(tm_decisions *d);

/* Applies one replayed log record (BOOT/CHECKPOINT are ignored). 0 or XATM_ENOMEM. */
int tm_decisions_replay(tm_decisions *d, const xatm_declog_record *rec, uint64_t now_ms);

/* Adds a COMMIT decision taken over from the gtx table. 0 or XATM_ENOMEM. */
int tm_decisions_adopt(tm_decisions *d, const gtx_info *g, uint64_t now_ms);

/* The kind of gtrid's decision (TM_DEC_NONE when absent). */
enum tm_decision_kind tm_decisions_kind(tm_decisions *d, const char *gtrid);

/* Same, and a copy of the entry in *out (may be NULL) when there is one. */
enum tm_decision_kind tm_decisions_get(tm_decisions *d, const char *gtrid, tm_decision_info *out);

/* After a successful scan of RM `rm`: every decision branch on rm that `present(gtrid,
 * rm, arg)` says is still prepared gets clean_scans = 0, the others clean_scans + 1. */
void tm_decisions_scanned(tm_decisions *d, const char *rm,
                          bool (*present)(const char *gtrid, const char *rm, void *arg),
                          void *arg);

/* Marks that "already finished" was reported for (gtrid, rm); returns true the first time. */
bool tm_decisions_note_nota(tm_decisions *d, const char *gtrid, const char *rm);

/* Removes gtrid. 0 or XATM_ENOTFOUND. */
int tm_decisions_remove(tm_decisions *d, const char *gtrid);

/* Calls cb with a copy of every entry (under the registry's mutex). */
void tm_decisions_foreach(tm_decisions *d, void (*cb)(const tm_decision_info *e, void *arg),
                          void *arg);
size_t tm_decisions_count(tm_decisions *d);

/* "commit", "precommit", "heuristic-commit", "heuristic-rollback", "none". */
const char *tm_decision_kind_name(enum tm_decision_kind k);

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
} recovery_rm_status;

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

/* Stops the thread if running, closes the RM sessions and frees. NULL accepted. */
void recovery_free(struct recovery *r);

/* Copies the state of every configured RM into out (n = cfg->n_rms entries). */
void recovery_rm_statuses(struct recovery *r, recovery_rm_status *out, size_t n);

/* The declog rotation callback (xatm_declog_options.unresolved); arg is the tm_ctx. Emits
 * every registry decision and every COMMIT_PENDING / COMMITTING transaction. */
void recovery_emit_unresolved(void *arg, void (*emit)(const xatm_declog_record *rec, void *ea),
                              void *emit_arg);

#endif
