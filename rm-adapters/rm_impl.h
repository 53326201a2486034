/*
 * rm_impl.h — internal to rm-adapters/: what every RM implementation shares with rm.c.
 * Not a public header; xatmd and libxatm use rm.h only (the tests also use this one to
 * reach the pure capability-decision functions).
 *
 * The table. XATM_RM_TYPES lists one row per RM type (like PostgreSQL's rmgrlist.h): the
 * enum value from config.h and the name of the implementation's xatm_rm_ops. rm.c turns
 * the list into its static const table; adding an RM type means one file defining its
 * ops and one row here.
 *
 * The common head. Every implementation's connection struct embeds struct xatm_rm_conn as
 * its FIRST member, so a xatm_rm_conn * and the implementation's pointer convert both
 * ways. rm.c owns the fields marked "(rm.c)"; the implementation owns the others and the
 * rest of its struct.
 *
 * Invariants:
 *   - head.ops and head.cfg are set by the implementation's open before it returns 0 and
 *     never change; cfg is borrowed (the caller keeps the config alive until close);
 *   - busy is true exactly while an asynchronous operation is between op_begin returning
 *     XATM_RM_PENDING and op_continue returning a final code (at most one per connection);
 *   - errmsg always holds a NUL-terminated string; it is cleared when an op begins and
 *     filled whenever a call returns anything but XA_OK / XA_RDONLY / PENDING;
 *   - failed is the branch's "vote no" mark: set by mark_failed or by a failed exec inside
 *     a branch, cleared when the next branch starts; dead is sticky: once the session is
 *     known lost it stays lost (no implementation reconnects behind the caller's back).
 */
#ifndef XATM_RM_IMPL_H
#define XATM_RM_IMPL_H

#include <stdarg.h>
#include <stdbool.h>

#include "rm.h"

/* One row per RM type: X(enum xatm_rm_type value, name of its const xatm_rm_ops). */
#define XATM_RM_TYPES(X)                                                                  \
    X(XATM_RM_POSTGRESQL, xatm_rm__pg_ops)                                                \
    X(XATM_RM_MYSQL, xatm_rm__mysql_ops)

#define XATM_RM_DECLARE_OPS_(type, ops) extern const xatm_rm_ops ops;
XATM_RM_TYPES(XATM_RM_DECLARE_OPS_)
#undef XATM_RM_DECLARE_OPS_

/* Size of the message buffer in every connection. */
#define XATM_RM_ERRMSG_MAX 1024

/* The common head of every connection; embedded first by each implementation. */
struct xatm_rm_conn {
    const xatm_rm_ops *ops;          /* this connection's row of the table */
    const xatm_rm_config *cfg;       /* the RM's configuration (borrowed) */
    xatm_rm_caps caps;               /* what the server reported at open */
    char errmsg[XATM_RM_ERRMSG_MAX]; /* detail of the last failure, "" if none */
    bool failed;                     /* branch marked failed: PREPARE / CAN_COMMIT vote no */
    bool dead;                       /* session known lost (sticky) */
    bool busy;                       /* (rm.c) an async operation is in flight */
    uint32_t call_timeout_ms;        /* xatm_rm_open_options.call_timeout_ms (set by open) */
    enum xatm_rm_op op;              /* (rm.c) the operation in flight, when busy */
};

/* Fills the head at open: ops, cfg, everything else zero. */
void xatm_rm__head_init(xatm_rm_conn *c, const xatm_rm_ops *ops, const xatm_rm_config *cfg);

/* "'name' (postgresql at host:port)" or "... at socket path": how messages name an RM. */
void xatm_rm__describe(const xatm_rm_config *cfg, const char *type_name, char *buf,
                       size_t size);

/* Writes "rm <describe>: <formatted text>" into buf (truncating safely). */
void xatm_rm__msg(char *buf, size_t size, const xatm_rm_config *cfg, const char *type_name,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Same, into c->errmsg, naming c's RM. Returns rc so callers can `return seterr(...)`. */
int xatm_rm__seterr(xatm_rm_conn *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The end of every adapter's decision_resolve: busy (the lock wait timed out; errmsg is
 * cleared) -> XA_OK with BUSY; else rc when it is an error; else the outcome letter of the
 * gtrid's row: 'C' / 'A' -> XA_OK with COMMITTED / ABORTED, 0 (a duplicate whose row was
 * deleted before it could be read) or anything else -> XAER_RMERR (try again). */
int xatm_rm__decision_result(xatm_rm_conn *c, const char *gtrid, int rc, bool busy,
                             char outcome, enum xatm_decision *out);

/* true when s (non-empty, at most max bytes) uses only [A-Za-z0-9_.:-]: the alphabet of
 * every xid xatm issues, so it can be written inside '...' in SQL without escaping. */
bool xatm_rm__id_safe(const char *s, size_t max);
/* "<head>('g1', 'g2', ...)" for the n (>= 1) gtrids of a batched delete, which rm.c has
 * checked against the xid alphabet (no quote can occur, so none is escaped): malloc'd, or
 * NULL with "<what>: out of memory" set on c. */
char *xatm_rm__gtrid_list_sql(xatm_rm_conn *c, const char *what, const char *head,
                              const char *const *gtrids, size_t n);

/* The PostgreSQL capability decision at open, pure so it can be unit-tested: a usable
 * server has server_version_num >= 100000 and max_prepared_transactions > 0. Returns
 * XA_OK, or XAER_RMERR with a message naming the RM and a hint written into err. */
int xatm_rm__pg_check_caps(const xatm_rm_config *cfg, uint32_t version_num,
                           uint32_t max_prepared, char *err, size_t errlen);

/* The MySQL/MariaDB capability decision at open, pure: `server_info` is the server's
 * version string (mysql_get_server_info), `version_num` its number
 * (mysql_get_server_version, e.g. 101119), `innodb_support` InnoDB's row of
 * information_schema.ENGINES ("DEFAULT", "YES", "NO", or NULL when absent),
 * `default_engine` @@default_storage_engine. Usable: MariaDB >= 10.5 or MySQL >= 5.7,
 * InnoDB available and the default engine. On XA_OK sets *detach_on_prepare (MySQL >=
 * 8.0.29 detaches a prepared branch from its session; MariaDB only at disconnect). Else
 * XAER_RMERR with a message and hint in err. */
int xatm_rm__mysql_check_caps(const xatm_rm_config *cfg, const char *server_info,
                              unsigned long version_num, const char *innodb_support,
                              const char *default_engine, bool *detach_on_prepare,
                              char *err, size_t errlen);

/* The 24-bit incarnation tag of a server run (xatm_rm_caps.incarnation): a hash of its
 * start time (Unix seconds) and server id, never 0. Pure, for the tests. */
uint32_t xatm_rm__incarnation_tag(int64_t started, uint32_t server_id);

#endif
