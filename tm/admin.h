/*
 * admin.h — the admin requests xatmctl sends on the admin socket (ADMIN command/arg ->
 * ADMIN_REPLY code + JSON). Owns the commands, their argument syntax, the operator's forced
 * outcomes (HEURISTIC records) and the JSON shapes; docs/protocol.md lists every key.
 *
 * Who may ask: anyone who can connect to the admin socket, which is mode 0600 and owned by
 * xatmd's user. That file mode IS the permission check: xatmd checks nothing more. It reads
 * the peer's uid and pid (SO_PEERCRED) only to record who forced an outcome.
 *
 * Arguments: `arg` is empty or "key=value" lines separated by '\n' (a value runs to the end
 * of its line; unknown keys are refused):
 *
 *   status                      -
 *   list                        all=1: also heuristic decisions whose branches are finished
 *   show                        gtrid=G (required)
 *   recover                     timeout_ms=N: how long to wait for the pass (default 30000,
 *                               at most 600000)
 *   commit, rollback            gtrid=G (required), force=1, reason=TEXT (<= 255 bytes)
 *
 * Replies: code 0 and the command's JSON object, or a negative XATM_E* code and
 * {"error": "...", "hint": "..."} (hint may be ""). XATM_EINVAL: unknown command, bad
 * argument; XATM_ENOTFOUND: a forced outcome with nothing to act on; XATM_EREFUSED: a
 * forced outcome that contradicts a durable decision without
 * force=1, or one of a transaction that is still live; XATM_ETIMEDOUT: recover did not see
 * its pass end in time; XATM_ELIMIT: too many forced outcomes for one gtrid; XATM_ELOG: the
 * HEURISTIC record could not be made durable (xatmd stops).
 *
 * Forced outcome (commit / rollback of gtrid G), under log_mu from the checks to the flush:
 *   1. G must be a gtrid of this TM (any epoch);
 *   2. refused when G is live: ACTIVE within its deadline, COMMIT_PENDING, or COMMITTING
 *      with its AP connected within its phase-2 deadline (an ACTIVE one past its deadline
 *      is aborted here first, so it can never commit afterwards);
 *   3. the durable decision is the latest durable heuristic outcome if any, else commit
 *      when a COMMIT record exists (registry or COMMITTING), else none for a PRECOMMIT
 *      alone, else abort (presumed: a gtrid of this TM with no COMMIT and not live);
 *      a forced outcome that contradicts it is refused unless force=1; one that repeats a
 *      forced outcome already recorded changes nothing (recorded: false); when xatmd holds
 *      no decision for G and every RM's latest scan shows no branch of G prepared, there
 *      is nothing to decide (XATM_ENOTFOUND: G finished, or never prepared);
 *   4. a HEURISTIC record (who = "<user> (uid U), pid P" of the peer, why = reason) is
 *      appended, the registry entry updated as pending, the record flushed (fdatasync),
 *      and only then the entry steers recovery, which is woken: no branch is touched before
 *      the record is durable.
 *
 * recover is answered later: admin_handle returns ADMIN_DEFERRED with the ticket of the
 * pass it asked for; the server answers with admin_recover_reply once that pass ended
 * (recovery_report_for) or its time is up.
 *
 * Runs on the event loop's thread; reads the gtx table, the registry and the recovery
 * state through their thread-safe accessors and the log's counters under ctx->log_mu.
 * Strings are escaped per RFC 8259 (quote, backslash, control characters as \uXXXX).
 */
#ifndef XATM_ADMIN_H
#define XATM_ADMIN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/buf.h"
#include "tm.h"

/* admin_handle's return when the reply waits for a recovery pass (see above). */
#define ADMIN_DEFERRED 1

/* The peer of an admin connection (SO_PEERCRED). */
typedef struct admin_peer {
    bool known; /* SO_PEERCRED answered */
    pid_t pid;  /* its pid */
    uid_t uid;  /* its uid */
} admin_peer;

/* What a deferred request waits for. */
typedef struct admin_deferred {
    uint64_t ticket;  /* the recovery pass (recovery_request_pass) */
    uint32_t wait_ms; /* answer with XATM_ETIMEDOUT after this long */
} admin_deferred;

/* Answers one request: appends the JSON text to json and sets *code (0 or XATM_E*).
 * Returns 0, ADMIN_DEFERRED (nothing appended; *defer says what to wait for), or
 * XATM_ENOMEM (json is then incomplete and must not be sent). */
int admin_handle(struct tm_ctx *ctx, const admin_peer *peer, const char *command,
                 const char *arg, xatm_buf *json, int32_t *code, admin_deferred *defer);

/* The reply to a deferred recover: the report of pass `ticket` when it ended, else (the
 * time is up) XATM_ETIMEDOUT after waited_ms. 0 or XATM_ENOMEM. */
int admin_recover_reply(struct tm_ctx *ctx, uint64_t ticket, uint32_t waited_ms, xatm_buf *json,
                        int32_t *code);

/* Appends s as a JSON string literal (with quotes). 0 or XATM_ENOMEM. */
int admin_json_string(xatm_buf *b, const char *s);

#endif
