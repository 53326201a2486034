/*
 * tm.h — xatmd's internal context: the one struct tm_ctx that main.c builds and passes
 * down to every module of the daemon (server, gtx, recovery, admin). There is no
 * daemon-wide global: a module reaches the config, the log or the transaction table only
 * through the ctx it was given.
 *
 * Threads: two. The event loop (server.c) owns the sockets and is the only thread that
 * creates or finishes live transactions; the recovery thread (recovery.c) works prepared
 * branches through its own RM sessions. They share the ctx, with these locks:
 *
 *   log_mu        xatm_declog_append / xatm_declog_flush / the log's size counters
 *   decisions mu  the unresolved-decision registry (recovery.h, tm_decisions)
 *   gtx mu        the live transaction table (gtx.h), taken inside every gtx_* call
 *   recovery mu   recovery's state shown by admin (RM health, latest scans, reports):
 *                 a leaf, taken last and never held while taking another lock
 *
 * Lock order: log_mu -> gtx -> decisions -> recovery mu. A thread never takes log_mu while
 * holding one of the others; the only nesting of gtx and registry is the registry's mutex
 * inside the gtx table's (recovery adopting overdue transactions through
 * gtx_take_overdue's callback). Nothing ever takes the gtx mutex while holding the
 * registry's (the rotation callback walks the registry and the table one after the other,
 * not nested). The admin code takes recovery's mutex inside gtx and registry callbacks
 * (a branch's state as its RM reports it); recovery never takes another lock under it.
 *
 * The declog's rotation callback runs inside xatm_declog_flush (so with log_mu held) and
 * reads the registry and the gtx table; that is why a COMMIT decision only ever moves
 * between the two holders (or leaves them) while log_mu is held: a rotation can never
 * miss it.
 *
 * Messages: tm_log() writes one message to stderr, PostgreSQL style: a short factual line,
 * then an optional DETAIL line and an optional HINT line, every line prefixed with an ISO
 * UTC timestamp and "xatmd: ". The whole message is one write(2), so the two threads never
 * interleave lines.
 */
#ifndef XATM_TM_H
#define XATM_TM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "../config/config.h"
#include "declog.h"

struct gtx_table;
struct tm_decisions;
struct recovery;
struct server;

/* Everything the daemon's modules share. Built by main.c, freed by main.c. */
struct tm_ctx {
    const xatm_config *cfg;          /* the loaded config (owned by main.c) */
    xatm_declog *log;                /* the decision log; append/flush only under log_mu */
    pthread_mutex_t log_mu;          /* guards every use of log (see lock order above) */
    struct tm_decisions *decisions;  /* unresolved decisions replayed or adopted (recovery.h) */
    struct gtx_table *gtx;           /* live transactions of this incarnation (gtx.h) */
    struct recovery *rec;            /* recovery state and thread (recovery.h) */
    struct server *srv;              /* the event loop (server.h); NULL before it is built */
    uint32_t epoch;                  /* this incarnation's boot epoch (>= 1); start-up
                                        recovery may raise it above the prepared branches'
                                        epochs (recovery.h) before the sockets open */
    uint32_t max_epoch_seen;         /* highest BOOT/CHECKPOINT epoch replayed from the log */
    pid_t pid;                       /* our pid, for status */
    uint64_t start_mono_ms;          /* monotonic ms at start, for uptime */
    atomic_bool fatal;               /* set by any thread when the log failed: the loop
                                        stops and the daemon exits non-zero */
};

/* Monotonic milliseconds (deadlines, ages). */
static inline uint64_t tm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Writes one daemon message (see the file comment). detail and hint may be NULL. The
 * message is printf-formatted; detail and hint are plain text. */
void tm_log(const char *detail, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The log under log_mu: append one record, or flush. Same returns as the declog calls.
 * tm_log_flush sets ctx->fatal on failure (a failed flush is fatal and sticky), and once
 * ctx->fatal is set it flushes nothing and returns XATM_ELOG: a flush may rotate, and a
 * rotation must not checkpoint tables that a failure has left incomplete. Whoever finds
 * the log failed sets ctx->fatal before releasing log_mu. */
int tm_log_append(struct tm_ctx *ctx, const xatm_declog_record *rec, bool force);
int tm_log_flush(struct tm_ctx *ctx);

#endif
