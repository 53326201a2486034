/*
 * server.h — xatmd's event loop: one thread, epoll, non-blocking Unix stream sockets.
 * Owns the AP socket (tm.socket, mode tm.socket_mode) and the admin socket
 * (tm.admin_socket, mode 0600: only the daemon's user may run admin commands), every
 * client connection with its read and write buffers, the signalfd for SIGTERM/SIGINT, an
 * eventfd other threads use to wake the loop, and the group-commit point.
 *
 * One iteration of the loop:
 *
 *   epoll_wait (timeout = the nearest transaction deadline, deferred admin reply, or due
 *               write of held-back END records)
 *     -> for each ready fd: accept / read frames / dispatch / write
 *        (a VOTE that decides commit appends its COMMIT, forced, and parks its DECISION;
 *        a DONE that ends a transaction appends its END, not forced)
 *   -> once the nearest transaction deadline has come: expire ACTIVE transactions whose
 *      deadline passed (aborted), and 3PC PRECOMMITTED ones whose ack is late (ABORT)
 *   -> group commit: one xatm_declog_flush for everything appended, when it holds a forced
 *      record (see "Unforced records")
 *   -> only if it returned 0: COMMIT_PENDING -> COMMITTING and send the parked DECISIONs
 *
 * Unforced records (END) are not written on their own at once: they wait in the log's
 * memory buffer for the next flush of a forced record, and are flushed without one only
 * when 100 ms have passed since the loop first saw them waiting (the loop wakes for it),
 * when 64 KiB are buffered, or in the turn that handles SIGTERM/SIGINT (main's final flush
 * and xatm_declog_close write anything appended later). So an END can be lost with the
 * process, not only with the machine; that only makes recovery check its transaction
 * again after the restart (its COMMIT replays as unresolved; recovery finds no branch of
 * it prepared and writes the END: docs/durability.md, section 4).
 *
 * Input: connections are registered level-triggered. Every recv lands in one loop-wide
 * 64 KiB buffer and whole frames are dispatched straight from it; a connection keeps only
 * the bytes of an incomplete frame (an idle one holds no receive buffer). A recv that
 * returns fewer bytes than asked ends that connection's turn (no recv only to hear EAGAIN).
 *
 * A failed flush is fatal: no parked DECISION is sent (the record may or may not be
 * durable), every AP connection is closed (their applications see "outcome unknown") and
 * server_run returns XATM_ELOG; recovery after a restart resolves everything by the log.
 *
 * Connections: the first frame must be HELLO with the socket's role (AP on tm.socket, admin
 * on tm.admin_socket). A malformed frame, a reply type, or a message the role may not send
 * closes that connection only, after one log line naming the peer's pid (SO_PEERCRED).
 *
 * Also implements tm.h's message and log helpers (tm_log, tm_log_append, tm_log_flush).
 */
#ifndef XATM_SERVER_H
#define XATM_SERVER_H

#include "tm.h"

struct server; /* opaque */

/* Before anything touches the decision log: refuses (XATM_EBUSY, logged) when another
 * xatmd answers on either socket path, and removes stale socket files. A second daemon must
 * never replay, append to or recover from a log a live one is using. */
int server_preflight(const xatm_config *cfg);

/* Creates the sockets (refusing when another xatmd answers on a path; removing a stale
 * socket file) and the signalfd. SIGTERM and SIGINT must already be blocked in every
 * thread. Failures are logged. 0, or a negative XATM_E* code. */
int server_open(struct tm_ctx *ctx, struct server **out);

/* Runs the loop until SIGTERM/SIGINT (returns 0) or a fatal log failure (XATM_ELOG). */
int server_run(struct server *s);

/* Wakes the loop from another thread (e.g. recovery set ctx->fatal). Async-signal-safe. */
void server_wake(struct server *s);

/* Closes every connection and socket and unlinks the socket files. NULL accepted. */
void server_close(struct server *s);

#endif
