/*
 * rmtest.h — what the two RM adapter integration tests (test_rm_pg.c, test_rm_mysql.c)
 * share: the run's identity (TM id "t<pid>", xatm's format id, fresh xids), adapter
 * configs for the throwaway servers of scripts/servers.sh (from XATM_TEST_*), opening an
 * adapter session that must work, formatted SQL through the adapter, collecting and
 * checking what xatm_rm_recover reports, the refused open at a closed port, waiting for
 * a server session to end, driving an asynchronous operation to its end, and a loopback
 * port where nothing listens. Each test keeps its own server-specific SQL (plain admin
 * sessions, tables, counts of prepared branches).
 *
 * Invariants: every xid rmt_new_xid() issues carries RMT_FORMAT_ID and rmt_tm_id with a
 * sequence number never used before in this process, so concurrent or repeated runs never
 * see each other's branches; the RMT_* macros count their checks in t_checks and report a
 * failure at the caller's file:line, like CHECK.
 */
#ifndef XATM_RMTEST_H
#define XATM_RMTEST_H

#include <stdbool.h>
#include <stdint.h>

#include "rm.h"
#include "xatm.h"

#define RMT_FORMAT_ID 0x78614d31u /* the format id of every xid the tests issue */

extern char rmt_tm_id[XATM_TM_ID_MAX + 1]; /* "t<pid>", set by rmt_init() */

/* Skips the test (exit 77) unless the test servers are set, and sets rmt_tm_id. */
void rmt_init(void);

/* The adapter config of the test server of `type`: RM "pg" from XATM_TEST_PG_* or "my"
 * from XATM_TEST_MY_*, connect timeout 5 s. Its strings live as long as the process. */
xatm_rm_config rmt_config(enum xatm_rm_type type);

/* "host:port" of cfg, as the adapters' messages name it (static buffer). */
const char *rmt_where(const xatm_rm_config *cfg);

/* Opens a session that must open: one check; exits with the adapter's message if not. */
xatm_rm_conn *rmt_open(const xatm_rm_config *cfg);

/* A fresh xid of this run: a new gtrid of rmt_tm_id, the given bqual; exits if it cannot
 * be built. */
xatm_xid rmt_new_xid(const char *bqual);

/* Runs formatted SQL through the adapter (xatm_rm_exec); prints the statement and the
 * adapter's message when it fails; returns the adapter's code. */
int rmt_exec(xatm_rm_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A TCP port on 127.0.0.1 where nothing listens. */
unsigned rmt_closed_port(void);

/* What an xatm_rm_recover callback saw. */
struct rmt_found {
    int n;                /* branches reported */
    int ours_seen;        /* of them, ones in `want` */
    const xatm_xid *want; /* our prepared xids */
    int n_want;
};
/* The xatm_rm_recover callback that fills a struct rmt_found (arg). */
void rmt_collect(const xatm_rm_prepared *p, void *arg);

/* Recovers the branches of RMT_FORMAT_ID and TM id `tm` on c, and checks (three checks)
 * that recover succeeds, reports want_n branches, and that want_ours of them are among
 * ours[0..n_ours-1]. */
#define RMT_CHECK_RECOVER(c, tm, ours, n_ours, want_n, want_ours)                        \
    rmt_check_recover_(__FILE__, __LINE__, (c), (tm), (ours), (n_ours), (want_n), (want_ours))
void rmt_check_recover_(const char *file, int line, xatm_rm_conn *c, const char *tm,
                        const xatm_xid *ours, int n_ours, int want_n, int want_ours);

/* Opens cfg at a closed port of 127.0.0.1 and checks (six checks) that the open fails
 * with XAER_RMFAIL, leaves the connection NULL, and that the message names the address,
 * the RM ('name'), says "cannot connect" and contains `detail` (the client library's
 * own words). */
#define RMT_CHECK_OPEN_REFUSED(cfg, detail)                                              \
    rmt_check_open_refused_(__FILE__, __LINE__, (cfg), (detail))
void rmt_check_open_refused_(const char *file, int line, const xatm_rm_config *cfg,
                             const char *detail);

/* Polls checker's xatm_rm_session_alive(id) every poll_ms until the session is gone;
 * returns the milliseconds it took, or -1 on an error or after timeout_ms. */
long rmt_wait_gone(xatm_rm_conn *checker, uint64_t id, int timeout_ms, int poll_ms);

/* The committed 3PC marker rows of gtrid that c sees (xatm_rm_markers_find): their number,
 * or -1 when the lookup fails (its message printed). When rm is not NULL, only rows of
 * that RM count. *took_ms (may be NULL) gets how long the lookup took. */
int rmt_markers(xatm_rm_conn *c, const char *gtrid, const char *rm, uint64_t *took_ms);

/* The highest epoch of a TM's gtrids in table `tname` (xatmd's start-up raises its epoch
 * past it), read on c by `lookup` (xatm_rm_decisions_max_epoch / _markers_max_epoch).
 * admin(sql) runs a statement on the test's own admin session; cols is the column list of
 * the INSERT, e.g. "(gtrid, rm)", and val / top the other column's values. Checks (seven)
 * that no rows give 0; that rows of tm id <rmt_tm_id>E from epochs 3 (val) and 7 (top), a
 * row of another TM from epoch 40 and a malformed one give 7; that an invalid tm id is
 * XAER_INVAL with the result 0. Those rows are deleted afterwards. */
#define RMT_CHECK_MAX_EPOCH(c, lookup, tname, cols, val, top, admin)                     \
    rmt_check_max_epoch_(__FILE__, __LINE__, (c), (lookup), (tname), (cols), (val), (top), \
                         (admin))
void rmt_check_max_epoch_(const char *file, int line, xatm_rm_conn *c,
                          int (*lookup)(xatm_rm_conn *, const char *, uint32_t *),
                          const char *tname, const char *cols, const char *val,
                          const char *top, void (*admin)(const char *sql));

/* Drives c's operation in flight (rc from xatm_rm_op_begin) to its end with op_wait,
 * poll (5 s at most per wait) and op_continue; returns the final code. One check: every
 * wait named a socket and events that include one of `need` (e.g. POLLIN). */
#define RMT_DRIVE(c, rc, need) rmt_drive_(__FILE__, __LINE__, (c), (rc), (need))
int rmt_drive_(const char *file, int line, xatm_rm_conn *c, int rc, short need);

#endif
