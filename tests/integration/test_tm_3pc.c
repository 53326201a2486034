/*
 * test_tm_3pc.c — three-phase commit end to end (docs/protocols.md): a real xatmd, real
 * PostgreSQL and MariaDB servers, and an application process (xatm-test-ap, linked with
 * libxatm, protocol 3pc from its config) that the test can kill or stop at an exact
 * protocol step through XATM_FAULT, as test_tm_2pc.c does for 2PC.
 *
 * Every case inserts one row with a unique id into table xatm_it on both RMs and then
 * checks with plain SQL that the row is on both sides or on neither (except the one case
 * that shows the divergence 3PC permits), that the outcome is the one docs/protocols.md
 * states, and that no prepared branch of this TM is left once recovery has run.
 *
 * Settings (tm section): precommit_timeout 2s (xatmd's wait for the PreCommit
 * acknowledgement), participant_timeout 4s (libxatm's wait for DoCommit), request_timeout
 * 6s, transaction_timeout 10s, recovery every 200 ms. The application's config differs
 * from xatmd's only where a case says so: participant_timeout_action wait, or the socket
 * of a partition proxy.
 *
 * The cases:
 *   commit / rollback     the plain paths; the marker rows of a committed transaction are
 *                         deleted by xatmd afterwards
 *   no at CanCommit       a failed statement on either RM: rolled back, nothing prepared
 *   no at PreCommit       the "pg" branch used a temporary table: it passes CanCommit and
 *                         PostgreSQL refuses PREPARE; rolled back
 *   AP killed at each ap.* point: before PreCommit nothing was prepared -> neither side;
 *                         once every branch is prepared (after_prepare on) -> both sides:
 *                         xatmd's termination rule finds every branch prepared or marked
 *   xatmd killed at tm.before_precommit_force / after_precommit_force (the AP loses the
 *                         link before PreCommit: rolls back, EABORTED) and
 *                         before_commit_force / after_commit_force (every branch prepared:
 *                         with action commit the AP commits on its own and returns 0; with
 *                         action wait it returns EUNKNOWN and the restarted xatmd's
 *                         termination rule commits), then restarted: consistent
 *   participant timeout   xatmd stopped right after sending PreCommit
 *                         (tm.after_precommit_sent:stop): action commit commits at the
 *                         participant timeout while xatmd is still stopped; action wait
 *                         commits nothing until xatmd resumes and decides
 *   partition             a proxy between the AP and xatmd swallows the acknowledgement
 *                         and everything after it, keeping both connections open: with
 *                         action commit xatmd aborts at its ack deadline (PostgreSQL
 *                         rolled back) and the AP commits at its participant timeout
 *                         (MariaDB committed): XATM_EHEURISTIC, the divergence, reported by
 *                         xatmd as heuristic mixed; with action wait nothing diverges
 *   epoch                 a second xatmd (fresh log) whose tm id has marker rows of epochs
 *                         5 and 7 starts at epoch 8; with a marker of epoch UINT32_MAX it
 *                         refuses to start
 *   uncertain prepare     (action wait, RMs "pg" and "pg2", a second PostgreSQL database)
 *                         the PREPARE of "pg2" outlives the AP's precommit_timeout (its
 *                         backend stopped) and completes after the AP closed the session,
 *                         while xatmd died after sending PreCommit; the AP, stopped before
 *                         its VOTE, resumes only once the restarted xatmd's termination
 *                         rule has decided commit (every branch prepared). The AP must not
 *                         roll "pg" back on its own (EUNKNOWN, not EABORTED): both commit
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "apcase.h"
#include "testutil.h"
#include "tmproc.h"

static char tm_id[17];
static char *dir;
static char *cfg;      /* xatmd's config, and the AP's with action commit */
static char *cfg_wait; /* the AP's with participant_timeout_action: wait */
static t_xatmd d;

#define CONVERGE_MS 40000
#define PARTICIPANT_TIMEOUT_MS 4000
#define REQUEST_TIMEOUT_MS 6000

/* ---------------------------------------------------------------- helpers */

/* Marker rows of gtrid on both servers. */
static long long markers(const char *gtrid)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM xatm_markers WHERE gtrid = '%s'", gtrid);
    long long p = t_pg_scalar(sql), m = t_my_scalar(sql);
    return p < 0 || m < 0 ? -1 : p + m;
}

/* Restarts xatmd with fault (NULL: none); resumes it first if it is stopped. */
static void restart_xatmd(const char *fault)
{
    if (d.pid > 0) kill(d.pid, SIGCONT);
    t_xatmd_stop(&d);
    CHECK_INT(t_xatmd_start(&d, cfg, fault), 0);
}

/* ---------------------------------------------------------------- the partition proxy */

/* A Unix-socket relay between the AP and xatmd that can swallow the AP's first VOTE and
 * everything after it in both directions, without closing either connection: to both
 * ends it looks like a network partition. One AP connection at a time. */
struct proxy {
    char listen_path[700];  /* where the AP connects (its config's tm.socket) */
    char target_path[700];  /* xatmd's socket */
    int lfd;                /* listening socket */
    pthread_t thread;       /* the relay */
    atomic_bool stop;       /* set to end the relay */
    atomic_int swallowed;   /* frames dropped from the AP so far */
};

/* Fills sa with path; false when it does not fit. */
static bool set_sun_path(struct sockaddr_un *sa, const char *path)
{
    size_t n = strlen(path);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (n >= sizeof sa->sun_path) {
        fprintf(stderr, "socket path too long: %s\n", path);
        return false;
    }
    memcpy(sa->sun_path, path, n + 1);
    return true;
}

static bool write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Relays one AP connection until either side closes (or stop). */
static void proxy_relay(struct proxy *px, int ap)
{
    int tm = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa;
    if (tm < 0 || !set_sun_path(&sa, px->target_path) || connect(tm, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (tm >= 0) close(tm);
        return;
    }
    static unsigned char buf[1 << 16]; /* AP -> TM bytes not yet forwarded */
    size_t have = 0;
    bool cut = false;
    while (!atomic_load(&px->stop)) {
        struct pollfd p[2] = {{.fd = ap, .events = POLLIN}, {.fd = tm, .events = POLLIN}};
        int n = poll(p, 2, 100);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        if (p[1].revents) {
            unsigned char tbuf[4096];
            ssize_t r = read(tm, tbuf, sizeof tbuf);
            if (r <= 0) break;
            if (!cut && !write_all(ap, tbuf, (size_t)r)) break;
        }
        if (p[0].revents) {
            ssize_t r = read(ap, buf + have, sizeof buf - have);
            if (r <= 0) break;
            have += (size_t)r;
            /* whole frames: 12-byte header, body_len big-endian at 0, type at 5 */
            while (have >= 12) {
                size_t len = 12 + ((size_t)buf[0] << 24 | (size_t)buf[1] << 16 |
                                   (size_t)buf[2] << 8 | (size_t)buf[3]);
                if (len > sizeof buf) goto done;
                if (have < len) break;
                if (buf[5] == 4 /* XATM_MSG_VOTE */) cut = true;
                if (cut)
                    atomic_fetch_add(&px->swallowed, 1);
                else if (!write_all(tm, buf, len))
                    goto done;
                memmove(buf, buf + len, have - len);
                have -= len;
            }
        }
    }
done:
    close(tm);
}

static void *proxy_main(void *arg)
{
    struct proxy *px = arg;
    while (!atomic_load(&px->stop)) {
        struct pollfd p = {.fd = px->lfd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0) continue;
        int ap = accept(px->lfd, NULL, NULL);
        if (ap < 0) continue;
        proxy_relay(px, ap);
        close(ap);
    }
    return NULL;
}

static int proxy_start(struct proxy *px, const char *listen_path, const char *target_path)
{
    memset(px, 0, sizeof *px);
    snprintf(px->listen_path, sizeof px->listen_path, "%s", listen_path);
    snprintf(px->target_path, sizeof px->target_path, "%s", target_path);
    unlink(listen_path);
    px->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa;
    if (px->lfd < 0 || !set_sun_path(&sa, listen_path) || bind(px->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(px->lfd, 4) != 0) {
        perror("proxy");
        return -1;
    }
    return pthread_create(&px->thread, NULL, proxy_main, px) == 0 ? 0 : -1;
}

static void proxy_stop(struct proxy *px)
{
    atomic_store(&px->stop, true);
    pthread_join(px->thread, NULL);
    close(px->lfd);
    unlink(px->listen_path);
}

/* ---------------------------------------------------------------- cases */

/* The first 3PC transaction; false when it did not run at all (xatmd refused 3PC). */
static bool case_commit(void)
{
    char out[4096], gtrid[80];
    printf("case: commit on both\n");
    int rc = t_ap_run(cfg, "c1", "commit", NULL, out, sizeof out);
    CHECK_INT(rc, 0);
    if (rc != 0) return false;
    CHECK_CONTAINS(out, "result=OK");
    t_expect_rows("c1", 1);
    CHECK_INT(t_pg_prepared(tm_id), 0);
    CHECK_INT(t_my_prepared(tm_id), 0);
    t_ap_gtrid(out, gtrid, sizeof gtrid);
    CHECK(gtrid[0] != '\0');
    /* the markers of an ended transaction are deleted by xatmd's recovery passes */
    long long m = -1;
    for (int i = 0; i < 200 && (m = markers(gtrid)) != 0; i++) usleep(50000);
    CHECK_INT(m, 0);
    return true;
}

static void case_rollback(void)
{
    char out[4096];
    printf("case: rollback on both\n");
    CHECK_INT(t_ap_run(cfg, "rb1", "rollback", NULL, out, sizeof out), 0);
    t_expect_rows("rb1", 0);
}

static void case_no_cancommit(const char *id, const char *action)
{
    char out[4096], gtrid[80];
    printf("case: NO at CanCommit (%s) aborts both\n", action);
    CHECK_INT(t_ap_run(cfg, id, action, NULL, out, sizeof out), 2);
    CHECK_CONTAINS(out, "result=EABORTED");
    t_expect_rows(id, 0);
    CHECK_INT(t_pg_prepared(tm_id), 0);
    CHECK_INT(t_my_prepared(tm_id), 0);
    t_ap_gtrid(out, gtrid, sizeof gtrid);
    CHECK_INT(markers(gtrid), 0);
}

static void case_no_prepare(void)
{
    char out[4096];
    printf("case: NO at PreCommit (PostgreSQL refuses PREPARE) aborts both\n");
    CHECK_INT(t_ap_run(cfg, "npp", "pg-temp", NULL, out, sizeof out), 2);
    CHECK_CONTAINS(out, "result=EABORTED");
    CHECK_CONTAINS(out, "failed to prepare");
    t_expect_converged(CONVERGE_MS);
    t_expect_rows("npp", 0);
}

static void case_ap_killed(const char *id, const char *fault, long long expect)
{
    char out[4096];
    printf("case: AP killed at %s\n", fault);
    int rc = t_ap_run(cfg, id, "commit", fault, out, sizeof out);
    CHECK_INT(rc, 128 + SIGKILL);
    if (rc != 128 + SIGKILL) fprintf(stderr, "  AP output: %s\n", out);
    t_expect_converged(CONVERGE_MS);
    t_expect_rows(id, expect);
}

/* The same on a leased transaction: the AP's second one, which began on a gtrid of the
 * lease its first one asked for behind its CanCommit request (no BEGIN round trip), killed at its
 * second hit of fault. The first transaction is committed; the second's rows are where
 * expect says. */
static void case_ap_killed_leased(const char *id, const char *fault, long long expect)
{
    char out[4096], armed[128], first[80], second[80];
    printf("case: AP killed at %s of a transaction on a leased gtrid\n", fault);
    snprintf(armed, sizeof armed, "%s@2", fault);
    int rc = t_ap_run(cfg, id, "loop:2", armed, out, sizeof out);
    CHECK_INT(rc, 128 + SIGKILL);
    if (rc != 128 + SIGKILL) fprintf(stderr, "  AP output: %s\n", out);
    t_expect_converged(CONVERGE_MS);
    snprintf(first, sizeof first, "%s-1", id);
    snprintf(second, sizeof second, "%s-2", id);
    t_expect_rows(first, 1);
    t_expect_rows(second, expect);
}

/* xatmd killed at `fault` while the AP (config ap_cfg) runs `action`; the AP ends with
 * `result`; rows_down is what the servers hold while xatmd is down (-1: not checked);
 * expect after the restart. */
static void case_tm_killed_doing(const char *id, const char *action, const char *fault,
                                 const char *ap_cfg, const char *result, long long rows_down,
                                 long long prepared_down, long long expect)
{
    char out[4096];
    printf("case: xatmd killed at %s (AP %s, action %s)\n", fault, action,
           ap_cfg == cfg_wait ? "wait" : "commit");
    restart_xatmd(fault);
    int rc = t_ap_run(ap_cfg, id, action, NULL, out, sizeof out);
    CHECK_CONTAINS(out, result);
    if (!strstr(out, result)) fprintf(stderr, "  AP rc %d output: %s\n", rc, out);
    CHECK(t_xatmd_wait_killed(&d, 10000));
    if (rows_down >= 0) t_expect_rows(id, rows_down);
    CHECK_INT(t_pg_prepared(tm_id), prepared_down);
    CHECK_INT(t_xatmd_start(&d, cfg, NULL), 0);
    t_expect_converged(CONVERGE_MS);
    t_expect_rows(id, expect);
}

static void case_tm_killed(const char *id, const char *fault, const char *ap_cfg,
                           const char *result, long long rows_down, long long prepared_down,
                           long long expect)
{
    case_tm_killed_doing(id, "commit", fault, ap_cfg, result, rows_down, prepared_down, expect);
}

/* xatmd killed at the second hit of `fault`: during the AP's second transaction, begun
 * on a gtrid of the lease its first one asked for (the request rode behind the first one's
 * CanCommit request; the first committed). The AP ends with `result`; after the restart
 * the second transaction's rows are where expect says. */
static void case_tm_killed_leased(const char *id, const char *fault, const char *result,
                                    long long expect)
{
    char out[4096], armed[128], first[80], second[80];
    printf("case: xatmd killed at %s of a transaction on a leased gtrid\n", fault);
    snprintf(armed, sizeof armed, "%s@2", fault);
    restart_xatmd(armed);
    int rc = t_ap_run(cfg, id, "loop:2", NULL, out, sizeof out);
    CHECK_CONTAINS(out, result);
    if (!strstr(out, result)) fprintf(stderr, "  AP rc %d output: %s\n", rc, out);
    CHECK(t_xatmd_wait_killed(&d, 10000));
    CHECK_INT(t_xatmd_start(&d, cfg, NULL), 0);
    t_expect_converged(CONVERGE_MS);
    snprintf(first, sizeof first, "%s-1", id);
    snprintf(second, sizeof second, "%s-2", id);
    t_expect_rows(first, 1);
    t_expect_rows(second, expect);
}

/* xatmd stopped right after sending PreCommit; the AP waits for DoCommit. */
static void case_participant_timeout_commit(void)
{
    char out[4096];
    printf("case: participant timeout, action commit, xatmd stopped after PreCommit\n");
    restart_xatmd("tm.after_precommit_sent:stop");
    uint64_t t0 = t_now_ms();
    int rc = t_ap_run(cfg, "ptc", "commit", NULL, out, sizeof out);
    uint64_t took = t_now_ms() - t0;
    printf("  AP returned after %llu ms: %s", (unsigned long long)took, out);
    CHECK_INT(rc, 0);
    CHECK_CONTAINS(out, "result=OK");
    CHECK_CONTAINS(out, "participant timeout");
    CHECK(took >= PARTICIPANT_TIMEOUT_MS && took < PARTICIPANT_TIMEOUT_MS + 4000);
    CHECK(t_wait_stopped(d.pid, 1000)); /* still stopped: the AP committed on its own */
    t_expect_rows("ptc", 1);
    CHECK_INT(t_pg_prepared(tm_id), 0);
    CHECK_INT(t_my_prepared(tm_id), 0);
    kill(d.pid, SIGCONT); /* it decides late: nothing is left to undo or redo */
    t_expect_converged(CONVERGE_MS);
    t_expect_rows("ptc", 1);
    restart_xatmd(NULL);
}

static void case_participant_timeout_wait(void)
{
    char out[4096], outfile[700];
    printf("case: participant timeout, action wait, xatmd stopped after PreCommit\n");
    restart_xatmd("tm.after_precommit_sent:stop");
    pid_t ap = t_ap_spawn(cfg_wait, "ptw", "commit", NULL, outfile, sizeof outfile);
    CHECK(ap > 0 && t_wait_stopped(d.pid, 20000));
    usleep((PARTICIPANT_TIMEOUT_MS + 500) * 1000);
    /* past the participant timeout: the AP still waits, nothing committed, both prepared */
    int st = 0;
    CHECK(!t_wait_exit(ap, 10, &st));
    t_expect_rows("ptw", 0);
    CHECK_INT(t_pg_prepared(tm_id), 1);
    CHECK_INT(t_my_prepared(tm_id), 1);
    kill(d.pid, SIGCONT); /* xatmd decides; the AP obeys its decision */
    CHECK(t_wait_exit(ap, 30000, &st));
    t_read_file(outfile, out, sizeof out);
    printf("  AP: %s", out);
    t_expect_converged(CONVERGE_MS);
    long long n = t_expect_consistent("ptw");
    if (strstr(out, "result=OK")) CHECK_INT(n, 1);
    else CHECK_CONTAINS(out, "result=EABORTED");
    restart_xatmd(NULL);
}

/* The AP and xatmd cut apart right after PreCommit; ap_cfg's action decides. */
static void case_partition(const char *id, bool commit_action)
{
    char out[4096], listen_path[700], target[700], name[64];
    printf("case: partition after PreCommit, action %s\n", commit_action ? "commit" : "wait");
    snprintf(listen_path, sizeof listen_path, "%s/proxy-%s.sock", dir, id);
    snprintf(target, sizeof target, "%s/xatmd.sock", dir);
    char from[800], to[800];
    snprintf(from, sizeof from, "  socket: %s/xatmd.sock\n", dir);
    snprintf(to, sizeof to, "  socket: %s\n", listen_path);
    snprintf(name, sizeof name, "xatm-proxy-%s.yaml", id);
    char *pcfg = t_config_variant(commit_action ? cfg : cfg_wait, name, from, to);
    struct proxy px;
    CHECK_INT(proxy_start(&px, listen_path, target), 0);
    int rc = t_ap_run(pcfg, id, "commit", NULL, out, sizeof out);
    printf("  AP: %s", out);
    CHECK(atomic_load(&px.swallowed) >= 1);
    if (commit_action) {
        /* xatmd aborted at its ack deadline and rolled PostgreSQL back; the AP committed
         * at its participant timeout and MariaDB, still attached to it, committed */
        CHECK_INT(rc, 2);
        CHECK_CONTAINS(out, "result=EHEURISTIC");
        CHECK_CONTAINS(out, "branch 'pg' ROLLED BACK");
        CHECK_INT(t_rows(true, id), 0);
        CHECK_INT(t_rows(false, id), 1);
        CHECK(t_xatmd_wait_log(&d, "heuristic mixed", 30000));
    } else {
        CHECK_INT(rc, 2);
        CHECK_CONTAINS(out, "result=EUNKNOWN");
    }
    proxy_stop(&px);
    t_expect_converged(CONVERGE_MS);
    if (commit_action) {
        CHECK_INT(t_rows(true, id), 0);
        CHECK_INT(t_rows(false, id), 1);
    } else {
        t_expect_rows(id, 0);
    }
    free(pcfg);
}

/* ---------------------------------------------------------------- uncertain prepare */

#define PG2_DB "xatm_it2"

/* Runs sql on the second PostgreSQL database; the first column of the first row as an
 * integer (0 when there is none), or -1 on error. */
static long long pg2_scalar(const char *sql)
{
    const char *keys[] = {"host", "port", "user", "password", "dbname", NULL};
    const char *vals[] = {t_env("XATM_TEST_PG_HOST"), t_env("XATM_TEST_PG_PORT"),
                          t_env("XATM_TEST_PG_USER"), t_env("XATM_TEST_PG_PASSWORD"), PG2_DB,
                          NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    long long v = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_TUPLES_OK)
            v = PQntuples(r) > 0 ? atoll(PQgetvalue(r, 0, 0)) : 0;
        else if (st == PGRES_COMMAND_OK)
            v = 0;
        else
            fprintf(stderr, "pg2: %s: %s", sql, PQerrorMessage(c));
        PQclear(r);
    } else {
        fprintf(stderr, "pg2: connect: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return v;
}

/* A copy of config base with a third RM "pg2" (the database PG2_DB); caller frees. */
static char *with_pg2(const char *base, const char *name)
{
    static char text[1 << 16];
    char path[700];
    t_read_file(base, text, sizeof text);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fprintf(f, "%s  - name: pg2\n    type: postgresql\n    host: %s\n    port: %s\n"
               "    user: %s\n    password: %s\n    database: %s\n",
            text, t_env("XATM_TEST_PG_HOST"), t_env("XATM_TEST_PG_PORT"),
            t_env("XATM_TEST_PG_USER"), t_env("XATM_TEST_PG_PASSWORD"), PG2_DB);
    fclose(f);
    return strdup(path);
}

/* A second xatmd (its own tm id, a fresh log) starting while the marker tables hold rows
 * of its tm id from epochs 5 ("pg") and 7 ("my"), as a lost log and a lost marker deletion
 * leave them: it raises its epoch to 8, so no gtrid with a marker is issued again (a stale
 * marker would prove to recovery that a branch of the new transaction committed). Started
 * again with a marker of epoch UINT32_MAX, it refuses to start. */
static void case_epoch_markers(void)
{
    printf("case: start-up epoch above the marker rows' (fresh log)\n");
    char tm2[17], *dir2, *cfg2, sql[300], line[200];
    snprintf(tm2, sizeof tm2, "me%d", (int)(getpid() % 100000));
    dir2 = t_tmpdir("tm3pc-e");
    cfg2 = t_write_config(dir2, tm2,
                          "  protocol: 3pc\n"
                          "  transaction_timeout: 10s\n"
                          "  recovery_interval: 30s\n");
    snprintf(sql, sizeof sql, "INSERT INTO xatm_markers (gtrid, rm) VALUES ('%s.5.1', 'pg')", tm2);
    CHECK_INT(t_pg_exec(sql), 0);
    snprintf(sql, sizeof sql, "INSERT INTO xatm_markers (gtrid, rm) VALUES ('%s.7.3', 'my')", tm2);
    CHECK_INT(t_my_exec(sql), 0);
    t_xatmd d2;
    memset(&d2, 0, sizeof d2);
    CHECK_INT(t_xatmd_start(&d2, cfg2, NULL), 0);
    CHECK_INT(t_xatmd_log_count(&d2, "start-up: epoch raised from 1 to 8: the marker table "
                                      "holds rows of this TM from epoch 7"), 1);
    CHECK_INT(t_xatmd_log_count(&d2, "The marker table xatm_markers on RM my holds rows of "
                                      "this TM from epoch 7"), 1);
    snprintf(line, sizeof line, "ready tm=%s epoch=8 ", tm2);
    CHECK_INT(t_xatmd_log_count(&d2, line), 1);
    CHECK_INT(t_xatmd_stop(&d2), 0);

    /* a marker of the last possible epoch: there is no epoch to move to */
    snprintf(sql, sizeof sql,
             "INSERT INTO xatm_markers (gtrid, rm) VALUES ('%s.4294967295.1', 'pg')", tm2);
    CHECK_INT(t_pg_exec(sql), 0);
    printf("  (xatmd is expected to refuse to start; its log follows)\n");
    CHECK(t_xatmd_start(&d2, cfg2, NULL) != 0);
    CHECK_INT(t_xatmd_log_count(&d2, "start-up: cannot choose an epoch: the marker table holds "
                                      "rows of this TM from epoch 4294967295"), 1);
    t_xatmd_stop(&d2);
    snprintf(sql, sizeof sql, "DELETE FROM xatm_markers WHERE gtrid LIKE '%s.%%'", tm2);
    CHECK_INT(t_pg_exec(sql), 0);
    CHECK_INT(t_my_exec(sql), 0);
    free(cfg2);
    free(dir2);
}

/* A PostgreSQL branch whose PREPARE the AP saw fail (its call outlived precommit_timeout
 * and was closed on the wire) but which prepared all the same, xatmd gone at the VOTE:
 * the AP may not roll back the other (prepared) branch, because xatmd's termination rule
 * may find every branch prepared and commit. The AP is stopped before its VOTE and
 * resumed once the restarted xatmd has forced that COMMIT and stopped right before its
 * first phase-2 call; then xatmd goes on. Both branches must end committed. */
static void case_uncertain_prepare(void)
{
    char out[4096], outfile[700], sql[256];
    const char *id = "up1";
    printf("case: uncertain PREPARE after PreCommit, xatmd lost (action wait)\n");
    if (t_pg_scalar("SELECT count(*) FROM pg_database WHERE datname = '" PG2_DB "'") == 0)
        CHECK_INT(t_pg_exec("CREATE DATABASE " PG2_DB), 0);
    CHECK(pg2_scalar("CREATE TABLE IF NOT EXISTS xatm_it (id varchar(64) PRIMARY KEY, v int)") == 0);
    CHECK(pg2_scalar("DELETE FROM xatm_it") == 0);
    char *cfg2 = with_pg2(cfg, "xatm-pg2.yaml");
    char *cfg2_wait = with_pg2(cfg_wait, "xatm-pg2-wait.yaml");
    int rule_before = t_xatmd_log_count(&d, "termination rule: 3PC transaction");

    /* xatmd (knowing pg2: it creates the marker table there) stops once PRECOMMIT is durable */
    if (d.pid > 0) kill(d.pid, SIGCONT);
    t_xatmd_stop(&d);
    CHECK_INT(t_xatmd_start(&d, cfg2, "tm.after_precommit_force:stop"), 0);
    pid_t ap = t_ap_spawn(cfg2_wait, id, "pg-pg2", "ap.after_prepare:stop", outfile, sizeof outfile);
    CHECK(ap > 0 && t_wait_stopped(d.pid, 20000));

    /* stop the AP's pg2 backend (it ran the CanCommit: marker insert, SET CONSTRAINTS) */
    long long backend = t_pg_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = '" PG2_DB "' AND state = "
        "'idle in transaction' AND query LIKE 'INSERT INTO xatm_markers%'");
    CHECK(backend > 0);
    if (backend > 0) kill((pid_t)backend, SIGSTOP);

    /* xatmd sends PreCommit, then dies before any acknowledgement */
    kill(d.pid, SIGCONT);
    usleep(500000);
    kill(d.pid, SIGKILL);
    CHECK(t_xatmd_wait_killed(&d, 10000));

    /* pg prepares; pg2's PREPARE outlives precommit_timeout: the AP closes that session
     * (branch lost: a no) and stops at ap.after_prepare, before its VOTE */
    CHECK(t_wait_stopped(ap, 20000));
    if (backend > 0) kill((pid_t)backend, SIGCONT); /* runs the PREPARE it had received */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'xatm:%%:%s.%%'", tm_id);
    long long prepared = -1;
    for (int i = 0; i < 100 && (prepared = t_pg_scalar(sql)) != 2; i++) usleep(50000);
    CHECK_INT(prepared, 2); /* both branches prepared, pg2 unknown to the AP */

    /* the restarted xatmd: PRECOMMIT without outcome, every branch prepared -> COMMIT;
     * it stops before its first phase-2 call */
    CHECK_INT(t_xatmd_start(&d, cfg2, "tm.recovery_before_commit:stop"), 0);
    CHECK(t_wait_stopped(d.pid, 40000));
    CHECK(t_xatmd_log_count(&d, "termination rule: 3PC transaction") > rule_before);

    /* the AP resumes: no xatmd to vote to */
    kill(ap, SIGCONT);
    int st = 0;
    CHECK(t_wait_exit(ap, 30000, &st));
    t_read_file(outfile, out, sizeof out);
    printf("  AP: %s", out);
    CHECK_CONTAINS(out, "result=EUNKNOWN");

    kill(d.pid, SIGCONT);
    t_expect_converged(CONVERGE_MS);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM xatm_it WHERE id = '%s'", id);
    long long p = t_rows(true, id), p2 = pg2_scalar(sql);
    if (p != p2) fprintf(stderr, "  id %s: pg=%lld pg2=%lld: DIVERGED\n", id, p, p2);
    CHECK_INT(p, 1);
    CHECK_INT(p2, 1);
    /* a few recovery passes: a mixed outcome would be reported by now (the partition
     * case's stays reported, and is logged again at each restart: only this gtrid counts) */
    char gtrid[80], mixed[200];
    t_ap_gtrid(out, gtrid, sizeof gtrid);
    CHECK(gtrid[0] != '\0');
    snprintf(mixed, sizeof mixed, "heuristic mixed outcome of 3PC transaction %s:", gtrid);
    usleep(2000000);
    CHECK_INT(t_xatmd_log_count(&d, mixed), 0);
    restart_xatmd(NULL);
    free(cfg2_wait);
    free(cfg2);
}

int main(void)
{
    t_require_servers();
    snprintf(tm_id, sizeof tm_id, "i3%d", (int)(getpid() % 100000));
    dir = t_tmpdir("tm3pc");
    t_ap_init(dir, tm_id);
    cfg = t_write_config(dir, tm_id,
                         "  protocol: 3pc\n"
                         "  transaction_timeout: 10s\n"
                         "  request_timeout: 6s\n"
                         "  recovery_interval: 200ms\n"
                         "  precommit_timeout: 2s\n"
                         "  participant_timeout: 4s\n"
                         "  participant_timeout_action: commit\n");
    cfg_wait = t_config_variant(cfg, "xatm-wait.yaml", "participant_timeout_action: commit",
                       "participant_timeout_action: wait");
    CHECK_INT(t_pg_exec("CREATE TABLE IF NOT EXISTS xatm_it (id varchar(64) PRIMARY KEY, v int)"), 0);
    CHECK_INT(t_my_exec("CREATE TABLE IF NOT EXISTS xatm_it (id varchar(64) PRIMARY KEY, v int) ENGINE=InnoDB"), 0);
    /* the ids are fixed: rows of an earlier run on the same servers would collide */
    CHECK_INT(t_pg_exec("DELETE FROM xatm_it"), 0);
    CHECK_INT(t_my_exec("DELETE FROM xatm_it"), 0);
    if (t_xatmd_start(&d, cfg, NULL) != 0) {
        CHECK(!"xatmd starts");
        return t_finish("tm_3pc");
    }
    if (!case_commit()) {
        printf("FAIL: a plain 3PC commit failed; the other cases would only repeat it\n");
        t_xatmd_stop(&d);
        return t_finish("tm_3pc");
    }
    case_rollback();
    case_epoch_markers();
    case_no_cancommit("ncpg", "fail-pg");
    case_no_cancommit("ncmy", "fail-my");
    case_no_cancommit("ncmyd", "fail-my-direct");
    case_no_prepare();

    /* before PreCommit nothing is prepared: neither side */
    case_ap_killed("k1", "ap.after_start", 0);
    case_ap_killed("k2", "ap.before_prepare", 0);
    case_ap_killed("k3", "ap.after_cancommit_checks", 0);
    case_ap_killed("k4", "ap.after_cancommit_sent", 0);
    case_ap_killed("k5", "ap.after_precommit", 0);
    /* every branch prepared after PreCommit: the termination rule commits */
    case_ap_killed("k6", "ap.between_prepares", 1);
    case_ap_killed("k7", "ap.after_prepare", 1);
    case_ap_killed("k8", "ap.after_vote_sent", 1);
    case_ap_killed("k9", "ap.after_decision", 1);
    case_ap_killed("k10", "ap.between_commits", 1);
    case_ap_killed("k11", "ap.after_commits", 1);
    {
        /* killed just before committing on its own: xatmd (stopped at PreCommit) decides
         * when it resumes, either way, for both */
        char out[4096];
        printf("case: AP killed at ap.participant_timeout\n");
        restart_xatmd("tm.after_precommit_sent:stop");
        int rc = t_ap_run(cfg, "k12", "commit", "ap.participant_timeout", out, sizeof out);
        CHECK_INT(rc, 128 + SIGKILL);
        CHECK_INT(t_pg_prepared(tm_id), 1); /* nothing committed yet */
        kill(d.pid, SIGCONT);
        t_expect_converged(CONVERGE_MS);
        printf("  outcome: %lld\n", t_expect_consistent("k12"));
        restart_xatmd(NULL);
    }

    case_tm_killed("t1", "tm.before_precommit_force", cfg, "result=EABORTED", 0, 0, 0);
    case_tm_killed("t2", "tm.after_precommit_force", cfg, "result=EABORTED", 0, 0, 0);
    case_tm_killed("t3", "tm.before_commit_force", cfg, "result=OK", 1, 0, 1);
    case_tm_killed("t4", "tm.after_commit_force", cfg, "result=OK", 1, 0, 1);
    case_tm_killed("t5", "tm.after_precommit_force", cfg_wait, "result=EABORTED", 0, 0, 0);
    case_tm_killed("t6", "tm.before_commit_force", cfg_wait, "result=EUNKNOWN", 0, 1, 1);
    case_tm_killed("t7", "tm.after_commit_force", cfg_wait, "result=EUNKNOWN", 0, 1, 1);
    /* the forced ABORT after PreCommit (PostgreSQL refuses PREPARE: a NO in the
     * acknowledgement): killed before it is durable (the restarted xatmd's termination
     * rule finds a branch not prepared: abort) and after (the ABORT decides) */
    case_tm_killed_doing("t8", "pg-temp", "tm.before_abort_force", cfg, "result=EABORTED", 0,
                         0, 0);
    case_tm_killed_doing("t9", "pg-temp", "tm.after_abort_force", cfg, "result=EABORTED", 0, 0,
                         0);

    /* the same on a transaction begun on a leased gtrid */
    case_ap_killed_leased("kr1", "ap.after_cancommit_sent", 0);
    case_ap_killed_leased("kr2", "ap.after_precommit", 0);
    case_ap_killed_leased("kr3", "ap.after_vote_sent", 1);
    case_tm_killed_leased("tr1", "tm.after_precommit_force", "result=EABORTED", 0);
    case_tm_killed_leased("tr2", "tm.after_commit_force", "result=OK", 1);

    case_participant_timeout_commit();
    case_participant_timeout_wait();
    case_partition("pc", true);
    case_partition("pw", false);
    case_uncertain_prepare();

    CHECK_INT(t_xatmd_stop(&d), 0);
    CHECK_INT(t_pg_prepared(tm_id), 0);
    CHECK_INT(t_my_prepared(tm_id), 0);
    free(cfg_wait);
    free(cfg);
    free(dir);
    return t_finish("tm_3pc");
}
