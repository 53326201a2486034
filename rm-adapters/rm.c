/*
 * rm.c — the RM interface table (one static const row per type, from XATM_RM_TYPES in
 * rm_impl.h), the wrappers of rm.h, the blocking and parallel drivers of the asynchronous
 * operations, and the helpers every implementation shares (messages, xid alphabet).
 *
 * Owns: the busy/op fields of every connection head (see rm_impl.h). The wrappers check
 * arguments and the one-op-in-flight rule before an implementation sees a call, so
 * implementations may assume a valid xid and no overlapping operation. The 3PC marker
 * wrappers also check every gtrid against the xid alphabet and split a delete into
 * batches of XATM_MARKER_BATCH (one implementation call, one statement, each).
 *
 * Abandoning an operation ("closed on the wire"): when xatm_rm_run_parallel's deadline
 * passes, or a connection is closed while an operation is in flight, the socket is shut
 * down (shutdown(2), so the fd number stays owned by the client library) and the
 * operation is continued until the client library notices the loss and the implementation
 * returns a final code. The server sees the connection close: PostgreSQL and MariaDB roll
 * back a branch that was not prepared; a prepared one stays for recovery.
 */
#include "rm_impl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define XATM_RM_ROW_(type, ops) [type] = &ops,
static const xatm_rm_ops *const rm_table[] = {XATM_RM_TYPES(XATM_RM_ROW_)};
#undef XATM_RM_ROW_

/* How many times an abandoned operation is continued before it is given up (each call
 * returns at once: the socket is shut down). */
#define SEVER_MAX_STEPS 64

const xatm_rm_ops *xatm_rm_ops_for(enum xatm_rm_type t)
{
    if ((size_t)t >= sizeof rm_table / sizeof rm_table[0]) return NULL;
    return rm_table[t];
}

/* ---------------------------------------------------------------- shared helpers */

void xatm_rm__head_init(xatm_rm_conn *c, const xatm_rm_ops *ops, const xatm_rm_config *cfg)
{
    memset(c, 0, sizeof *c);
    c->ops = ops;
    c->cfg = cfg;
}

void xatm_rm__describe(const xatm_rm_config *cfg, const char *type_name, char *buf,
                       size_t size)
{
    const char *name = cfg && cfg->name ? cfg->name : "?";
    if (!cfg)
        snprintf(buf, size, "'%s' (%s)", name, type_name);
    else if (cfg->socket && (!cfg->host || !*cfg->host))
        snprintf(buf, size, "'%s' (%s at %s)", name, type_name, cfg->socket);
    else
        snprintf(buf, size, "'%s' (%s at %s:%u)", name, type_name,
                 cfg->host && *cfg->host ? cfg->host : "localhost", (unsigned)cfg->port);
}

static void vmsg(char *buf, size_t size, const xatm_rm_config *cfg, const char *type_name,
                 const char *fmt, va_list ap)
{
    char who[256];
    int n;
    if (!buf || size == 0) return;
    xatm_rm__describe(cfg, type_name, who, sizeof who);
    n = snprintf(buf, size, "rm %s: ", who);
    if (n < 0 || (size_t)n >= size) return;
    vsnprintf(buf + n, size - (size_t)n, fmt, ap);
}

void xatm_rm__msg(char *buf, size_t size, const xatm_rm_config *cfg, const char *type_name,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(buf, size, cfg, type_name, fmt, ap);
    va_end(ap);
}

int xatm_rm__seterr(xatm_rm_conn *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(c->errmsg, sizeof c->errmsg, c->cfg, c->ops ? c->ops->name : "rm", fmt, ap);
    va_end(ap);
    return rc;
}

int xatm_rm__decision_result(xatm_rm_conn *c, const char *gtrid, int rc, bool busy,
                             char outcome, enum xatm_decision *out)
{
    if (busy) {
        c->errmsg[0] = '\0';
        *out = XATM_DECISION_BUSY;
        return XATM_XA_OK;
    }
    if (rc != XATM_XA_OK) return rc;
    if (outcome == 'C') {
        *out = XATM_DECISION_COMMITTED;
        return XATM_XA_OK;
    }
    if (outcome == 'A') {
        *out = XATM_DECISION_ABORTED;
        return XATM_XA_OK;
    }
    if (!outcome)
        return xatm_rm__seterr(c, XATM_XAER_RMERR,
                               "decision resolve: the row of %s was there and is gone (deleted "
                               "meanwhile); try again",
                               gtrid);
    return xatm_rm__seterr(c, XATM_XAER_RMERR,
                           "decision resolve: row of %s has outcome '%c', expected 'C' or 'A'",
                           gtrid, outcome);
}

bool xatm_rm__id_safe(const char *s, size_t max)
{
    size_t n = 0;
    if (!s || !*s) return false;
    for (; s[n]; n++) {
        char ch = s[n];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == ':' || ch == '-';
        if (!ok || n >= max) return false;
    }
    return true;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Abandons c's operation in flight: shuts the socket down and continues the operation
 * until the implementation has seen the loss. Always leaves c not busy and dead. */
static void sever(xatm_rm_conn *c)
{
    int fd = -1;
    short events = 0;
    if (!c->busy) return;
    c->ops->op_wait(c, &fd, &events);
    if (fd >= 0) shutdown(fd, SHUT_RDWR);
    for (int i = 0; i < SEVER_MAX_STEPS && c->busy; i++) {
        int rc = c->ops->op_continue(c, POLLIN | POLLOUT | POLLHUP);
        if (rc != XATM_RM_PENDING) c->busy = false;
    }
    c->busy = false;
    c->dead = true;
}

/* ---------------------------------------------------------------- wrappers */

int xatm_rm_open(const xatm_rm_config *cfg, xatm_rm_conn **out, char *err, size_t errlen)
{
    return xatm_rm_open_ex(cfg, NULL, out, err, errlen);
}

int xatm_rm_open_ex(const xatm_rm_config *cfg, const xatm_rm_open_options *opts,
                    xatm_rm_conn **out, char *err, size_t errlen)
{
    static const xatm_rm_open_options none = {0};
    const xatm_rm_ops *ops;
    if (!opts) opts = &none;
    if (err && errlen) err[0] = '\0';
    if (!out) return XATM_XAER_INVAL;
    *out = NULL;
    if (!cfg) {
        if (err && errlen) snprintf(err, errlen, "rm: no configuration given");
        return XATM_XAER_INVAL;
    }
    ops = xatm_rm_ops_for(cfg->type);
    if (!ops) {
        xatm_rm__msg(err, errlen, cfg, "rm", "unknown RM type %d", (int)cfg->type);
        return XATM_XAER_INVAL;
    }
    return ops->open(cfg, opts, out, err, errlen);
}

void xatm_rm_close(xatm_rm_conn *c)
{
    if (!c) return;
    sever(c);
    c->ops->close(c);
}

const xatm_rm_config *xatm_rm_config_of(const xatm_rm_conn *c)
{
    return c ? c->cfg : NULL;
}

const xatm_rm_caps *xatm_rm_caps_of(const xatm_rm_conn *c)
{
    return c ? &c->caps : NULL;
}

const char *xatm_rm_errmsg(const xatm_rm_conn *c)
{
    return c ? c->errmsg : "";
}

/* The checks every blocking call shares: a connection, and no operation in flight. */
static int check_idle(xatm_rm_conn *c, const char *what)
{
    if (!c) return XATM_XAER_INVAL;
    if (c->busy)
        return xatm_rm__seterr(c, XATM_XAER_PROTO, "%s while an operation is in flight", what);
    c->errmsg[0] = '\0';
    return XATM_XA_OK;
}

int xatm_rm_op_begin(xatm_rm_conn *c, enum xatm_rm_op op, const xatm_xid *xid)
{
    int rc = check_idle(c, "operation begun");
    if (rc != XATM_XA_OK) return rc;
    if (op < XATM_RM_OP_START || op > XATM_RM_OP_COMMIT_DECIDING)
        return xatm_rm__seterr(c, XATM_XAER_INVAL, "unknown operation %d", (int)op);
    if (!xid || !xatm_rm__id_safe(xid->gtrid, XATM_GTRID_MAX) ||
        !xatm_rm__id_safe(xid->bqual, XATM_BQUAL_MAX))
        return xatm_rm__seterr(c, XATM_XAER_INVAL,
                               "invalid xid: gtrid and bqual must be 1..64 characters of "
                               "[A-Za-z0-9_.:-]");
    rc = c->ops->op_begin(c, op, xid);
    if (rc == XATM_RM_PENDING) {
        c->busy = true;
        c->op = op;
    }
    return rc;
}

void xatm_rm_op_wait(xatm_rm_conn *c, int *fd, short *events)
{
    *fd = -1;
    *events = 0;
    if (c && c->busy) c->ops->op_wait(c, fd, events);
}

int xatm_rm_op_continue(xatm_rm_conn *c, short revents)
{
    int rc;
    if (!c) return XATM_XAER_INVAL;
    if (!c->busy)
        return xatm_rm__seterr(c, XATM_XAER_PROTO, "continue without an operation in flight");
    rc = c->ops->op_continue(c, revents);
    if (rc != XATM_RM_PENDING) c->busy = false;
    return rc;
}

int xatm_rm_run(xatm_rm_conn *c, enum xatm_rm_op op, const xatm_xid *xid)
{
    uint64_t deadline = c && c->call_timeout_ms ? now_ms() + c->call_timeout_ms : 0;
    int rc = xatm_rm_op_begin(c, op, xid);
    while (rc == XATM_RM_PENDING) {
        struct pollfd p = {.fd = -1};
        xatm_rm_op_wait(c, &p.fd, &p.events);
        if (p.fd < 0) {
            sever(c);
            return xatm_rm__seterr(c, XATM_XAER_RMFAIL, "operation lost its connection");
        }
        int wait = -1;
        if (deadline) {
            uint64_t now = now_ms();
            if (now >= deadline) {
                sever(c);
                return xatm_rm__seterr(c, XATM_XAER_RMFAIL,
                                       "no answer within %u ms; connection closed",
                                       c->call_timeout_ms);
            }
            wait = (int)(deadline - now);
        }
        int n = poll(&p, 1, wait);
        if (n == 0) continue; /* the deadline check above ends it */
        if (n < 0) {
            if (errno == EINTR) continue;
            sever(c);
            return xatm_rm__seterr(c, XATM_XAER_RMFAIL, "poll failed: %s", strerror(errno));
        }
        rc = xatm_rm_op_continue(c, p.revents);
    }
    return rc;
}

#define RM_PARALLEL_STACK 64

void xatm_rm_run_parallel(xatm_rm_conn **conns, const enum xatm_rm_op *ops, const xatm_xid *xids,
                          int *rc, size_t n, uint32_t timeout_ms)
{
    uint64_t deadline = timeout_ms ? now_ms() + timeout_ms : 0;
    /* a transaction's branches (at most XATM_MAX_BRANCHES) and recovery's batches fit on
     * the stack: no allocation per phase; more than that (a caller's choice) is allocated */
    struct pollfd pfds_stack[RM_PARALLEL_STACK];
    size_t idx_stack[RM_PARALLEL_STACK];
    struct pollfd *pfds = NULL;
    size_t *idx = NULL;
    size_t pending = 0;

    for (size_t i = 0; i < n; i++) {
        if (!conns[i]) continue;
        rc[i] = xatm_rm_op_begin(conns[i], ops[i], &xids[i]);
        if (rc[i] == XATM_RM_PENDING) pending++;
    }
    if (pending == 0) return;

    if (n <= RM_PARALLEL_STACK) {
        pfds = pfds_stack;
        idx = idx_stack;
    } else {
        pfds = calloc(n, sizeof *pfds);
        idx = calloc(n, sizeof *idx);
    }
    if (!pfds || !idx) {
        for (size_t i = 0; i < n; i++) {
            if (!conns[i] || rc[i] != XATM_RM_PENDING) continue;
            sever(conns[i]);
            rc[i] = xatm_rm__seterr(conns[i], XATM_XAER_RMFAIL,
                                    "out of memory while waiting; connection closed");
        }
        goto free_arrays;
    }

    for (;;) {
        size_t np = 0;
        int timeout = -1, prc;
        for (size_t i = 0; i < n; i++) {
            if (!conns[i] || rc[i] != XATM_RM_PENDING) continue;
            pfds[np].fd = -1;
            pfds[np].events = 0;
            pfds[np].revents = 0;
            xatm_rm_op_wait(conns[i], &pfds[np].fd, &pfds[np].events);
            if (pfds[np].fd < 0) {
                sever(conns[i]);
                rc[i] = xatm_rm__seterr(conns[i], XATM_XAER_RMFAIL,
                                        "operation lost its connection");
                continue;
            }
            idx[np++] = i;
        }
        if (np == 0) break;
        if (deadline) {
            uint64_t now = now_ms();
            timeout = now >= deadline ? 0 : (int)(deadline - now);
        }
        prc = poll(pfds, np, timeout);
        if (prc < 0 && errno == EINTR) continue;
        if (prc <= 0) {
            /* deadline passed (or poll itself failed): abandon whatever is still pending */
            int perr = prc < 0 ? errno : 0;
            for (size_t k = 0; k < np; k++) {
                xatm_rm_conn *c = conns[idx[k]];
                sever(c);
                if (perr)
                    rc[idx[k]] = xatm_rm__seterr(c, XATM_XAER_RMFAIL,
                                                 "poll failed: %s; connection closed",
                                                 strerror(perr));
                else
                    rc[idx[k]] = xatm_rm__seterr(c, XATM_XAER_RMFAIL,
                                                 "no answer within %u ms; connection closed",
                                                 (unsigned)timeout_ms);
            }
            break;
        }
        for (size_t k = 0; k < np; k++) {
            if (pfds[k].revents == 0) continue;
            rc[idx[k]] = xatm_rm_op_continue(conns[idx[k]], pfds[k].revents);
        }
    }

free_arrays:
    if (idx != idx_stack) free(idx);
    if (pfds != pfds_stack) free(pfds);
}

int xatm_rm_recover(xatm_rm_conn *c, uint32_t format_id, const char *tm_id,
                    void (*cb)(const xatm_rm_prepared *p, void *arg), void *arg)
{
    int rc = check_idle(c, "recover");
    if (rc != XATM_XA_OK) return rc;
    if (!tm_id || !cb) return xatm_rm__seterr(c, XATM_XAER_INVAL, "recover: no tm id or callback");
    return c->ops->recover(c, format_id, tm_id, cb, arg);
}

uint32_t xatm_rm__incarnation_tag(int64_t started, uint32_t server_id)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a over both, little-endian */
    uint64_t v = (uint64_t)started;
    for (int i = 0; i < 8; i++, v >>= 8) h = (h ^ (v & 0xff)) * 1099511628211ull;
    for (int i = 0; i < 4; i++, server_id >>= 8) h = (h ^ (server_id & 0xff)) * 1099511628211ull;
    uint32_t tag = (uint32_t)(h ^ (h >> 24) ^ (h >> 48)) & XATM_SESSION_TAG_MASK;
    return tag ? tag : 1;
}

uint64_t xatm_rm_session_ref(const xatm_rm_conn *c)
{
    return c ? xatm_session_ref(c->caps.incarnation, c->caps.session_id) : 0;
}

/* Where a session reference points, seen from connection c (see rm.h). */
enum ref_place { REF_OTHER_RUN, REF_SELF, REF_HERE };

static enum ref_place ref_place(const xatm_rm_conn *c, uint64_t ref)
{
    uint32_t tag = xatm_session_ref_tag(ref);
    if (tag != 0 && c->caps.incarnation != 0 && tag != c->caps.incarnation)
        return REF_OTHER_RUN;
    if (xatm_session_ref_id(ref) == c->caps.session_id) return REF_SELF;
    return REF_HERE;
}

int xatm_rm_session_alive(xatm_rm_conn *c, uint64_t session_ref)
{
    int rc = check_idle(c, "session check");
    if (rc != XATM_XA_OK) return rc;
    if (xatm_session_ref_id(session_ref) == 0) return 0;
    /* another run of the server, or the checker itself: not an AP session that is
     * connected now (an equal id there is an unrelated connection) */
    if (ref_place(c, session_ref) != REF_HERE) return 0;
    return c->ops->session_alive(c, xatm_session_ref_id(session_ref));
}

int xatm_rm_fence(xatm_rm_conn *c, uint64_t session_ref)
{
    int rc = check_idle(c, "fence");
    if (rc != XATM_XA_OK) return rc;
    if (xatm_session_ref_id(session_ref) == 0) return XATM_XA_OK;
    switch (ref_place(c, session_ref)) {
    case REF_OTHER_RUN:
        return XATM_XA_OK; /* that session ended with its server: never kill its namesake */
    case REF_SELF:
        return xatm_rm__seterr(c, XATM_XAER_INVAL, "refusing to fence this very session");
    case REF_HERE:
        break;
    }
    return c->ops->fence(c, xatm_session_ref_id(session_ref));
}

int xatm_rm_exec(xatm_rm_conn *c, const char *sql, uint64_t *affected)
{
    int rc = check_idle(c, "exec");
    if (rc != XATM_XA_OK) return rc;
    if (!sql) return xatm_rm__seterr(c, XATM_XAER_INVAL, "exec: no statement");
    return c->ops->exec(c, sql, affected);
}

void *xatm_rm_native(xatm_rm_conn *c)
{
    return c ? c->ops->native(c) : NULL;
}

bool xatm_rm_alive(xatm_rm_conn *c)
{
    return c && !c->dead && c->ops->alive(c);
}

void xatm_rm_mark_failed(xatm_rm_conn *c)
{
    if (c) c->ops->mark_failed(c);
}

/* Calls del on the n gtrids in batches of at most `batch` (one implementation call, one
 * statement each); stops at the first failure. */
static int in_batches(xatm_rm_conn *c, int (*del)(xatm_rm_conn *, const char *const *, size_t),
                      const char *const *gtrids, size_t n, size_t batch)
{
    for (size_t at = 0; at < n; at += batch) {
        int rc = del(c, gtrids + at, n - at < batch ? n - at : batch);
        if (rc != XATM_XA_OK) return rc;
    }
    return XATM_XA_OK;
}

char *xatm_rm__gtrid_list_sql(xatm_rm_conn *c, const char *what, const char *head,
                              const char *const *gtrids, size_t n)
{
    size_t cap = strlen(head) + 2 + n * (XATM_GTRID_MAX + 4), len;
    char *sql = malloc(cap);
    if (!sql) {
        xatm_rm__seterr(c, XATM_XAER_RMERR, "%s: out of memory", what);
        return NULL;
    }
    len = (size_t)snprintf(sql, cap, "%s(", head);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(sql + len, cap - len, "%s'%s'", i ? ", " : "", gtrids[i]);
    snprintf(sql + len, cap - len, ")");
    return sql;
}

/* Checks n gtrids against the xid alphabet. */
static int check_gtrids(xatm_rm_conn *c, const char *what, const char *const *gtrids, size_t n)
{
    if (!gtrids) return xatm_rm__seterr(c, XATM_XAER_INVAL, "%s: no gtrids", what);
    for (size_t i = 0; i < n; i++)
        if (!xatm_rm__id_safe(gtrids[i], XATM_GTRID_MAX))
            return xatm_rm__seterr(c, XATM_XAER_INVAL,
                                   "%s: gtrid %zu is not 1..64 characters of "
                                   "[A-Za-z0-9_.:-]; nothing done",
                                   what, i);
    return XATM_XA_OK;
}

int xatm_rm_markers_ensure(xatm_rm_conn *c)
{
    int rc = check_idle(c, "marker table check");
    if (rc != XATM_XA_OK) return rc;
    return c->ops->markers_ensure(c);
}

int xatm_rm_markers_find(xatm_rm_conn *c, const char *gtrid,
                         void (*cb)(const char *rm, void *arg), void *arg)
{
    int rc = check_idle(c, "marker lookup");
    if (rc != XATM_XA_OK) return rc;
    if (!cb) return xatm_rm__seterr(c, XATM_XAER_INVAL, "marker lookup: no callback");
    if (!xatm_rm__id_safe(gtrid, XATM_GTRID_MAX))
        return xatm_rm__seterr(c, XATM_XAER_INVAL,
                               "marker lookup: the gtrid must be 1..64 characters of "
                               "[A-Za-z0-9_.:-]");
    return c->ops->markers_find(c, gtrid, cb, arg);
}

int xatm_rm_markers_delete(xatm_rm_conn *c, const char *const *gtrids, size_t n)
{
    int rc = check_idle(c, "marker delete");
    if (rc != XATM_XA_OK) return rc;
    if (n == 0) return XATM_XA_OK;
    rc = check_gtrids(c, "marker delete", gtrids, n);
    if (rc != XATM_XA_OK) return rc;
    return in_batches(c, c->ops->markers_delete, gtrids, n, XATM_MARKER_BATCH);
}

/* The checks of the blocking decision-row calls: idle, and an RM type that has them. */
static int check_decisions(xatm_rm_conn *c, const char *what)
{
    int rc = check_idle(c, what);
    if (rc != XATM_XA_OK) return rc;
    if (!c->ops->decision_resolve)
        return xatm_rm__seterr(c, XATM_XAER_RMERR,
                               "%s: %s cannot hold decision rows",
                               what, c->ops->name);
    return XATM_XA_OK;
}

int xatm_rm_decisions_ensure(xatm_rm_conn *c)
{
    int rc = check_decisions(c, "decision table check");
    if (rc != XATM_XA_OK) return rc;
    return c->ops->decisions_ensure(c);
}

int xatm_rm_decision_resolve(xatm_rm_conn *c, const char *gtrid, uint32_t lock_timeout_ms,
                             enum xatm_decision *out)
{
    int rc = check_decisions(c, "decision resolve");
    if (rc != XATM_XA_OK) return rc;
    if (!out) return xatm_rm__seterr(c, XATM_XAER_INVAL, "decision resolve: no result");
    rc = check_gtrids(c, "decision resolve", &gtrid, 1);
    if (rc != XATM_XA_OK) return rc;
    if (lock_timeout_ms == 0) lock_timeout_ms = 1;
    return c->ops->decision_resolve(c, gtrid, lock_timeout_ms, out);
}

int xatm_rm_decisions_delete(xatm_rm_conn *c, const char *const *gtrids, size_t n)
{
    int rc = check_decisions(c, "decision delete");
    if (rc != XATM_XA_OK || n == 0) return rc;
    rc = check_gtrids(c, "decision delete", gtrids, n);
    if (rc != XATM_XA_OK) return rc;
    return in_batches(c, c->ops->decisions_delete, gtrids, n, XATM_DECISION_BATCH);
}

int xatm_rm_decisions_sweep(xatm_rm_conn *c, const char *prefix, uint32_t older_than_s,
                            uint64_t *deleted)
{
    if (deleted) *deleted = 0;
    int rc = check_decisions(c, "decision sweep");
    if (rc != XATM_XA_OK) return rc;
    rc = check_gtrids(c, "decision sweep", &prefix, 1);
    if (rc != XATM_XA_OK) return rc;
    return c->ops->decisions_sweep(c, prefix, older_than_s, deleted);
}

int xatm_rm_decisions_old_commits(xatm_rm_conn *c, const char *prefix, uint32_t older_than_s,
                                  unsigned limit, void (*cb)(const char *gtrid, void *arg),
                                  void *arg)
{
    int rc = check_decisions(c, "decision listing");
    if (rc != XATM_XA_OK) return rc;
    if (!cb) return xatm_rm__seterr(c, XATM_XAER_INVAL, "decision listing: no callback");
    rc = check_gtrids(c, "decision listing", &prefix, 1);
    if (rc != XATM_XA_OK) return rc;
    return c->ops->decisions_old_commits(c, prefix, older_than_s, limit, cb, arg);
}

/* The epoch lookup of both tables, once the caller's own checks passed. table must be
 * XATM_DECISION_TABLE or XATM_MARKER_TABLE: no other name reaches the adapters' SQL. */
static int max_epoch_of(xatm_rm_conn *c, const char *what, const char *table,
                        const char *tm_id, uint32_t *max_epoch)
{
    if (!max_epoch) return xatm_rm__seterr(c, XATM_XAER_INVAL, "%s: no result", what);
    *max_epoch = 0;
    if (!table || (strcmp(table, XATM_DECISION_TABLE) != 0 &&
                   strcmp(table, XATM_MARKER_TABLE) != 0))
        return xatm_rm__seterr(c, XATM_XAER_INVAL, "%s: not a table of xatm", what);
    if (!tm_id || !xatm_tm_id_valid(tm_id))
        return xatm_rm__seterr(c, XATM_XAER_INVAL, "%s: invalid tm id", what);
    return c->ops->max_epoch(c, table, tm_id, max_epoch);
}

int xatm_rm_decisions_max_epoch(xatm_rm_conn *c, const char *tm_id, uint32_t *max_epoch)
{
    int rc = check_decisions(c, "decision epoch lookup");
    if (rc != XATM_XA_OK) return rc;
    return max_epoch_of(c, "decision epoch lookup", XATM_DECISION_TABLE, tm_id, max_epoch);
}

int xatm_rm_markers_max_epoch(xatm_rm_conn *c, const char *tm_id, uint32_t *max_epoch)
{
    int rc = check_idle(c, "marker epoch lookup");
    if (rc != XATM_XA_OK) return rc;
    return max_epoch_of(c, "marker epoch lookup", XATM_MARKER_TABLE, tm_id, max_epoch);
}

const char *xatm_decision_name(enum xatm_decision d)
{
    switch (d) {
    case XATM_DECISION_COMMITTED: return "committed";
    case XATM_DECISION_ABORTED: return "aborted";
    case XATM_DECISION_BUSY: return "busy";
    }
    return "?";
}

const char *xatm_xa_rc_name(int rc)
{
    switch (rc) {
    case XATM_XA_OK: return "XA_OK";
    case XATM_XA_RDONLY: return "XA_RDONLY";
    case XATM_XA_RBROLLBACK: return "XA_RBROLLBACK";
    case XATM_XA_RBDEADLOCK: return "XA_RBDEADLOCK";
    case XATM_XA_RBTIMEOUT: return "XA_RBTIMEOUT";
    case XATM_XAER_RMERR: return "XAER_RMERR";
    case XATM_XAER_NOTA: return "XAER_NOTA";
    case XATM_XAER_INVAL: return "XAER_INVAL";
    case XATM_XAER_PROTO: return "XAER_PROTO";
    case XATM_XAER_RMFAIL: return "XAER_RMFAIL";
    case XATM_XAER_DUPID: return "XAER_DUPID";
    case XATM_RM_PENDING: return "XATM_RM_PENDING";
    default: return "XA_UNKNOWN";
    }
}
