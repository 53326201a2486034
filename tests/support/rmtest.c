/*
 * rmtest.c — implementation of the RM integration-test helpers declared in rmtest.h.
 */
#include "rmtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

char rmt_tm_id[XATM_TM_ID_MAX + 1];
static uint64_t next_seq = 1;

/* One check at the caller's file:line; fmt describes the failure. */
static void check_at(const char *file, int line, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void check_at(const char *file, int line, bool ok, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    t_checks++;
    if (ok) return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    t_fail_(file, line, "%s", msg);
}

void rmt_init(void)
{
    t_require_servers();
    snprintf(rmt_tm_id, sizeof rmt_tm_id, "t%ld", (long)getpid());
}

/* XATM_TEST_<server>_<key>, which must be set. */
static const char *server_env(const char *server, const char *key)
{
    char name[64];
    snprintf(name, sizeof name, "XATM_TEST_%s_%s", server, key);
    return t_env(name);
}

xatm_rm_config rmt_config(enum xatm_rm_type type)
{
    /* one set of strings per server, copied out of the environment */
    static struct {
        char host[256], user[128], password[128], database[128];
    } strs[2];
    const bool pg = type == XATM_RM_POSTGRESQL;
    const char *server = pg ? "PG" : "MY";
    xatm_rm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(strs[pg].host, sizeof strs[pg].host, "%s", server_env(server, "HOST"));
    snprintf(strs[pg].user, sizeof strs[pg].user, "%s", server_env(server, "USER"));
    snprintf(strs[pg].password, sizeof strs[pg].password, "%s", server_env(server, "PASSWORD"));
    snprintf(strs[pg].database, sizeof strs[pg].database, "%s", server_env(server, "DB"));
    cfg.name = pg ? "pg" : "my";
    cfg.type = type;
    cfg.host = strs[pg].host;
    cfg.port = (uint16_t)atoi(server_env(server, "PORT"));
    cfg.user = strs[pg].user;
    cfg.password = strs[pg].password;
    cfg.database = strs[pg].database;
    cfg.connect_timeout_ms = 5000;
    return cfg;
}

const char *rmt_where(const xatm_rm_config *cfg)
{
    static char where[300];
    snprintf(where, sizeof where, "%s:%u", cfg->host, (unsigned)cfg->port);
    return where;
}

xatm_rm_conn *rmt_open(const xatm_rm_config *cfg)
{
    char err[1024];
    xatm_rm_conn *c = NULL;
    int rc = xatm_rm_open(cfg, &c, err, sizeof err);
    CHECK_INT(rc, XATM_XA_OK);
    if (rc != XATM_XA_OK) {
        fprintf(stderr, "open failed: %s\n", err);
        exit(1);
    }
    return c;
}

xatm_xid rmt_new_xid(const char *bqual)
{
    char g[XATM_GTRID_MAX + 1];
    xatm_xid x;
    memset(&x, 0, sizeof x);
    if (xatm_gtrid_format(g, sizeof g, rmt_tm_id, 1, next_seq++) != 0 ||
        xatm_xid_make(&x, RMT_FORMAT_ID, g, bqual) != 0) {
        fprintf(stderr, "FAIL: cannot build an xid\n");
        exit(1);
    }
    return x;
}

int rmt_exec(xatm_rm_conn *c, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    int rc = xatm_rm_exec(c, sql, NULL);
    if (rc != XATM_XA_OK) fprintf(stderr, "exec '%s': %s\n", sql, xatm_rm_errmsg(c));
    return rc;
}

unsigned rmt_closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        fprintf(stderr, "FAIL: cannot find a closed port\n");
        exit(1);
    }
    close(fd);
    return ntohs(a.sin_port);
}

void rmt_collect(const xatm_rm_prepared *p, void *arg)
{
    struct rmt_found *f = arg;
    f->n++;
    for (int i = 0; i < f->n_want; i++)
        if (!strcmp(p->xid.gtrid, f->want[i].gtrid) && !strcmp(p->xid.bqual, f->want[i].bqual) &&
            p->xid.format_id == f->want[i].format_id)
            f->ours_seen++;
}

void rmt_check_recover_(const char *file, int line, xatm_rm_conn *c, const char *tm,
                        const xatm_xid *ours, int n_ours, int want_n, int want_ours)
{
    struct rmt_found f = {.want = ours, .n_want = n_ours};
    int rc = xatm_rm_recover(c, RMT_FORMAT_ID, tm, rmt_collect, &f);
    check_at(file, line, rc == XATM_XA_OK, "recover(%s) == %s, expected XA_OK: %s", tm,
             xatm_xa_rc_name(rc), xatm_rm_errmsg(c));
    check_at(file, line, f.n == want_n, "recover(%s) reported %d branches, expected %d", tm,
             f.n, want_n);
    check_at(file, line, f.ours_seen == want_ours,
             "recover(%s) reported %d of our branches, expected %d", tm, f.ours_seen, want_ours);
}

void rmt_check_open_refused_(const char *file, int line, const xatm_rm_config *cfg,
                             const char *detail)
{
    char err[1024], where[64], name[80];
    xatm_rm_conn *c = (xatm_rm_conn *)(uintptr_t)1; /* open must reset it to NULL */
    xatm_rm_config bad = *cfg;
    bad.port = (uint16_t)rmt_closed_port();
    bad.connect_timeout_ms = 2000;
    snprintf(where, sizeof where, "127.0.0.1:%u", (unsigned)bad.port);
    snprintf(name, sizeof name, "'%s'", cfg->name);
    int rc = xatm_rm_open(&bad, &c, err, sizeof err);
    check_at(file, line, rc == XATM_XAER_RMFAIL, "open at a closed port == %s, expected XAER_RMFAIL",
             xatm_xa_rc_name(rc));
    check_at(file, line, c == NULL, "open at a closed port left the connection set");
    const char *want[4] = {where, name, "cannot connect", detail};
    for (int i = 0; i < 4; i++)
        check_at(file, line, strstr(err, want[i]) != NULL, "open error does not contain \"%s\": \"%s\"",
                 want[i], err);
}

long rmt_wait_gone(xatm_rm_conn *checker, uint64_t id, int timeout_ms, int poll_ms)
{
    uint64_t t0 = t_now_ms();
    while (t_now_ms() - t0 < (uint64_t)timeout_ms) {
        int a = xatm_rm_session_alive(checker, id);
        if (a == 0) return (long)(t_now_ms() - t0);
        if (a < 0) return -1;
        usleep((useconds_t)poll_ms * 1000u);
    }
    return -1;
}

int rmt_drive_(const char *file, int line, xatm_rm_conn *c, int rc, short need)
{
    bool waits_ok = true;
    while (rc == XATM_RM_PENDING) {
        int fd;
        short ev;
        xatm_rm_op_wait(c, &fd, &ev);
        struct pollfd p = {.fd = fd, .events = ev};
        waits_ok = waits_ok && fd >= 0 && (ev & need);
        if (poll(&p, 1, 5000) <= 0) break;
        rc = xatm_rm_op_continue(c, p.revents);
    }
    check_at(file, line, waits_ok, "a wait did not name a socket and one of events 0x%x", need);
    return rc;
}

/* What rmt_markers' callback counts. */
struct marker_count {
    const char *rm; /* only this RM, or NULL for all */
    int n;          /* rows seen */
};

static void marker_cb(const char *rm, void *arg)
{
    struct marker_count *m = arg;
    if (!m->rm || !strcmp(m->rm, rm)) m->n++;
}

int rmt_markers(xatm_rm_conn *c, const char *gtrid, const char *rm, uint64_t *took_ms)
{
    struct marker_count m = {rm, 0};
    uint64_t t0 = t_now_ms();
    int rc = xatm_rm_markers_find(c, gtrid, marker_cb, &m);
    if (took_ms) *took_ms = t_now_ms() - t0;
    if (rc != XATM_XA_OK) {
        fprintf(stderr, "marker lookup of %s failed: %s: %s\n", gtrid, xatm_xa_rc_name(rc),
                xatm_rm_errmsg(c));
        return -1;
    }
    return m.n;
}

void rmt_check_max_epoch_(const char *file, int line, xatm_rm_conn *c,
                          int (*lookup)(xatm_rm_conn *, const char *, uint32_t *),
                          const char *tname, const char *cols, const char *val,
                          const char *top, void (*admin)(const char *sql))
{
    char tmx[XATM_TM_ID_MAX + 2], sql[512];
    uint32_t ep = 99;
    snprintf(tmx, sizeof tmx, "%sE", rmt_tm_id);
    int rc = lookup(c, tmx, &ep);
    check_at(file, line, rc == XATM_XA_OK && ep == 0, "%s: epoch lookup with no rows == %s, "
             "epoch %u, expected XA_OK, 0: %s", tname, xatm_xa_rc_name(rc), ep,
             xatm_rm_errmsg(c));
    snprintf(sql, sizeof sql, "INSERT INTO %s %s VALUES ('%s.3.1', %s), ('%s.7.2', %s), "
             "('%sF.40.1', %s), ('%s.x.1', %s)", tname, cols, tmx, val, tmx, top, tmx, val, tmx,
             val);
    admin(sql);
    rc = lookup(c, tmx, &ep);
    check_at(file, line, rc == XATM_XA_OK, "%s: epoch lookup == %s, expected XA_OK: %s", tname,
             xatm_xa_rc_name(rc), xatm_rm_errmsg(c));
    check_at(file, line, ep == 7, "%s: epoch %u, expected 7 (not another TM's 40, not a "
             "malformed one)", tname, ep);
    ep = 99;
    rc = lookup(c, "bad.id", &ep);
    check_at(file, line, rc == XATM_XAER_INVAL && ep == 0, "%s: epoch lookup of an invalid "
             "tm id == %s, epoch %u, expected XAER_INVAL, 0", tname, xatm_xa_rc_name(rc), ep);
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE gtrid LIKE '%s%%'", tname, tmx);
    admin(sql);
}
