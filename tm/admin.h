/*
 * admin.h — the admin requests xatmctl sends on the admin socket (ADMIN command/arg ->
 * ADMIN_REPLY code + JSON). Owns the JSON shapes (docs/protocol.md lists them):
 *
 *   status  {"tm_id", "epoch", "pid", "uptime_s",
 *            "log": {"dir", "bytes", "segments"},
 *            "rms": [{"name", "type", "state": "ok"|"quarantined", "last_error",
 *                     "last_scan_age_s" (null before the first scan)}],
 *            "counts": {"active", "commit_pending", "committing", "unresolved_decisions"},
 *            "totals": {"begun", "committed", "aborted"}}
 *   list    {"transactions": [{"gtrid", "state", "protocol", "age_ms", "decision",
 *            "branches": [{"rm", "vote", "session_id"}]}]}
 *           state is active | commit-pending | committing | in-doubt (a decision the
 *           registry holds: replayed from the log, or adopted from an orphaned
 *           transaction); decision is none | commit | precommit | heuristic-commit |
 *           heuristic-rollback; vote is yes | no | readonly | null (not voted yet).
 *
 * An unknown command answers code XATM_EINVAL and {"error": "...", "commands": [...]}.
 * Strings are escaped per RFC 8259 (quote, backslash, control characters as \uXXXX).
 * Runs on the event loop's thread; reads the gtx table, the registry and the recovery
 * state through their thread-safe accessors and the log's counters under ctx->log_mu.
 */
#ifndef XATM_ADMIN_H
#define XATM_ADMIN_H

#include <stdint.h>

#include "../common/buf.h"
#include "tm.h"

/* Answers one request: appends the JSON text to json and sets *code (0 or XATM_E*).
 * Returns 0, or XATM_ENOMEM (json is then incomplete and must not be sent). */
int admin_handle(struct tm_ctx *ctx, const char *command, const char *arg, xatm_buf *json,
                 int32_t *code);

/* Appends s as a JSON string literal (with quotes). 0 or XATM_ENOMEM. */
int admin_json_string(xatm_buf *b, const char *s);

#endif
