/*
 * test_tm_decider.c — 2PC with the decision in a branch (tm.decision_rm: pg), end to end:
 * a real xatmd, the throwaway PostgreSQL and MariaDB, and the AP helper (xatm-test-ap)
 * killed or stopped at the decider's steps through XATM_FAULT.
 *
 * Every case inserts row ID into xatm_it on both RMs ("pg" is the decider, "my" is
 * prepared) and checks with plain SQL that the row is on both sides or on neither, that
 * nothing of this TM is left prepared, and where it matters what the decision table
 * (xatm_decisions on "pg") and xatmd's log hold:
 *   commit             committed on both, no record of the gtrid in xatmd's log, the commit
 *                      row deleted by the AP (its batch is flushed at xatm_close)
 *   no vote (my)       a NO from the prepared side: rolled back on both, no decision row
 *   decider fails (pg) a failed statement on the decider: it does not commit, both roll back
 *   AP killed before the decider's commit: recovery writes the abort row, both roll back
 *   AP killed after it: recovery finds the commit row, forces COMMIT, commits "my"
 *   xatmd killed while the AP is stopped before the decider's commit, then restarted
 *                      before the AP resumes: the restarted xatmd resolves abort (row 'A'),
 *                      the AP's commit fails on the duplicate key: EABORTED, both rolled back
 *   xatmd killed while the AP is stopped after the decider's commit: the AP finishes
 *                      phase 2 alone, the restarted xatmd finds nothing to undo: committed;
 *                      restarted before the AP resumes: it finds the commit row and forces
 *                      COMMIT; the AP's own phase 2 (or recovery) commits "my"
 *   xatmd killed at tm.recovery_after_resolve (commit row found, COMMIT not yet
 *                      written), the AP dead after the decider's commit: committed
 *   recovery first     the AP stopped before the decider's commit past its deadline: xatmd
 *                      times it out and writes the abort row; resumed, the AP's commit
 *                      answers EABORTED and everything is rolled back
 *   late DONE          the AP stopped after the decider's commit past its deadline: recovery
 *                      adopts the commit row; the AP's phase 2 and late DONE change nothing
 *   MariaDB decider    tm.decision_rm: my (its own xatmd): commit, NO votes on either side,
 *                      the AP killed before and after the decider's commit; xatmctl commit
 *                      and rollback refused without --force while the decider is down; the
 *                      abort row swept while the AP was stopped (an application whose own
 *                      retention is the default goes by xatmd's, from HELLO_OK)
 *   mismatch           an application whose config lacks tm.decision_rm is refused at
 *                      xatm_open (HELLO_OK carries xatmd's decision_rm)
 *   epoch              a fresh xatmd whose tm id has decision rows of epoch 7 starts at 8
 *   sweep              xatmd restarted with tm.decision_retention 1s deletes the old abort
 *                      rows and the commit row an AP killed after its commit left
 *   busy + fence       the decider's COMMIT held open (a deferred trigger sleeps 30 s) and
 *                      the AP stopped: recovery's resolve answers busy, xatmd fences the
 *                      decider session after the deadline, the outcome is abort
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "apcase.h"
#include "testutil.h"
#include "tmproc.h"

static char tm_id[17];
static char *dir;
static char *cfg;
static t_xatmd d;

#define CONVERGE_MS 30000

/* The decider of the running cases: false "pg" (PostgreSQL), true "my" (MariaDB). */
static bool decider_my;

/* The decision row of gtrid at the decider: 'C', 'A', or 0 when there is none. */
static int decision_of(const char *gtrid)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce((SELECT ascii(outcome) FROM xatm_decisions WHERE gtrid = '%s'), 0)",
             gtrid);
    return (int)(decider_my ? t_my_scalar(sql) : t_pg_scalar(sql));
}

/* Waits up to timeout_ms for gtrid's decision row to be `want`. */
static bool wait_decision(const char *gtrid, int want, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        if (decision_of(gtrid) == want) return true;
        usleep(50000);
    }
    return false;
}

/* true when some file of xatmd's log directory holds the bytes of gtrid (a record of it). */
static bool in_tm_log(const char *gtrid)
{
    char path[700];
    snprintf(path, sizeof path, "%s/log", dir);
    DIR *dd = opendir(path);
    bool found = false;
    if (!dd) return false;
    for (struct dirent *e; !found && (e = readdir(dd));) {
        if (e->d_name[0] == '.') continue;
        char file[1000];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        FILE *f = fopen(file, "rb");
        if (!f) continue;
        size_t cap = 1 << 22, n;
        char *buf = malloc(cap);
        n = buf ? fread(buf, 1, cap, f) : 0;
        fclose(f);
        size_t gl = strlen(gtrid);
        for (size_t i = 0; buf && i + gl <= n && !found; i++)
            found = memcmp(buf + i, gtrid, gl) == 0 &&
                    (i + gl == n || buf[i + gl] < '0' || buf[i + gl] > '9');
        free(buf);
    }
    closedir(dd);
    return found;
}

static void case_commit(const char *id)
{
    char out[4096], gtrid[80];
    printf("case: commit decided in the decider branch\n");
    CHECK_INT(t_ap_run(cfg, id, "commit", NULL, out, sizeof out), 0);
    CHECK_CONTAINS(out, "result=OK");
    t_ap_gtrid(out, gtrid, sizeof gtrid);
    CHECK(gtrid[0] != '\0');
    t_expect_rows(id, 1);
    CHECK_INT(t_pg_prepared(tm_id), 0);
    CHECK_INT(t_my_prepared(tm_id), 0);
    /* nothing of it in xatmd's log (no COMMIT, no END), and its commit row is gone (the
     * AP deleted it at xatm_close, after phase 2) */
    usleep(300 * 1000); /* past xatmd's lazy write of unforced records */
    CHECK(!in_tm_log(gtrid));
    CHECK_INT(decision_of(gtrid), 0);
}

static void case_no_vote(const char *id, const char *action)
{
    char out[4096], gtrid[80];
    printf("case: %s: no commit, both rolled back\n", action);
    CHECK_INT(t_ap_run(cfg, id, action, NULL, out, sizeof out), 2);
    CHECK_CONTAINS(out, "result=EABORTED");
    t_ap_gtrid(out, gtrid, sizeof gtrid);
    t_expect_rows(id, 0);
    CHECK_INT(decision_of(gtrid), 0);
    CHECK_INT(t_pg_prepared(tm_id), 0);
    CHECK_INT(t_my_prepared(tm_id), 0);
}

/* The AP killed at fault: recovery converges to `expect` (row 'A' or 'C' at the decider). */
/* gtrids of the AP-killed cases, for the sweep at the end. */
static char killed_gtrid[2][80];

static void case_ap_killed(const char *id, const char *fault, long long expect, int row)
{
    char out[4096], gtrid[80];
    printf("case: AP killed at %s\n", fault);
    CHECK_INT(t_ap_run(cfg, id, "commit", fault, out, sizeof out), 128 + SIGKILL);
    t_ap_gtrid(out, gtrid, sizeof gtrid);
    t_expect_converged(CONVERGE_MS);
    t_expect_rows(id, expect);
    CHECK_INT(decision_of(gtrid), row);
    snprintf(killed_gtrid[expect ? 1 : 0], sizeof killed_gtrid[0], "%s", gtrid);
    if (expect) {
        /* recovery adopted the commit as a forced COMMIT record */
        char line[200];
        snprintf(line, sizeof line, "transaction %s: decider RM %s committed it", gtrid,
                 decider_my ? "my" : "pg");
        CHECK_INT(t_xatmd_log_count(&d, line), 1);
        CHECK(in_tm_log(gtrid));
    }
}

/* xatmd killed (SIGKILL) while the AP is stopped at fault; restarted before the AP resumes
 * when restart_first. The AP's result is `want`, the rows `expect`. */
static void case_tm_killed(const char *id, const char *fault, bool restart_first, const char *want,
                           long long expect)
{
    char outfile[600], gtrid[80], out[4096], armed[128];
    printf("case: xatmd killed while the AP is stopped at %s%s\n", fault,
           restart_first ? " (restarted before the AP resumes)" : "");
    snprintf(armed, sizeof armed, "%s:stop", fault);
    pid_t ap = t_ap_stopped(cfg, id, "commit", armed, NULL, outfile, sizeof outfile,
                            gtrid, sizeof gtrid);
    kill(d.pid, SIGKILL);
    CHECK(t_xatmd_wait_killed(&d, 10000));
    if (restart_first) {
        CHECK_INT(t_xatmd_start(&d, cfg, NULL), 0);
        /* start-up recovery resolves the gtrid of the earlier incarnation at the decider */
        if (strcmp(fault, "ap.decider.before_commit") == 0) {
            CHECK(wait_decision(gtrid, 'A', 10000));
        } else {
            /* the commit row is found and adopted; the MariaDB branch is still held by
             * the stopped AP's session, so it is left to it (or to a later pass) */
            char line[200];
            snprintf(line, sizeof line, "transaction %s: decider RM pg committed it", gtrid);
            CHECK(t_xatmd_wait_log(&d, line, 10000));
        }
    }
    t_ap_resume(ap, outfile, out, sizeof out);
    CHECK_CONTAINS(out, want);
    if (!restart_first) CHECK_INT(t_xatmd_start(&d, cfg, NULL), 0);
    t_expect_converged(CONVERGE_MS);
    t_expect_rows(id, expect);
}

/* xatmd killed in recovery right after it found the decider's commit row, before the COMMIT
 * record (tm.recovery_after_resolve), for a transaction whose AP died after the decider's
 * commit: the restarted xatmd resolves it again and commits. */
static void case_tm_killed_after_resolve(void)
{
    char out[4096];
    printf("case: xatmd killed at tm.recovery_after_resolve\n");
    CHECK_INT(t_xatmd_stop(&d), 0);
    CHECK_INT(t_xatmd_start(&d, cfg, "tm.recovery_after_resolve"), 0);
    CHECK_INT(t_ap_run(cfg, "tmr1", "commit", "ap.decider.after_commit", out, sizeof out),
              128 + SIGKILL);
    CHECK(t_xatmd_wait_killed(&d, 15000));
    CHECK_INT(t_my_prepared(tm_id), 1); /* nobody may finish it but xatmd */
    CHECK_INT(t_xatmd_start(&d, cfg, NULL), 0);
    t_expect_converged(CONVERGE_MS);
    t_expect_rows("tmr1", 1);
}

/* The AP (transaction timeout 1 s) stopped before the decider's commit until xatmd has
 * timed it out and written the abort row: its commit then fails on the duplicate key. */
static void case_recovery_first(void)
{
    char outfile[600], gtrid[80], out[4096];
    printf("case: recovery's abort row first, the AP's commit after it\n");
    pid_t ap = t_ap_stopped(cfg, "rf1", "commit", "ap.decider.before_commit:stop", "1000",
                            outfile, sizeof outfile, gtrid, sizeof gtrid);
    CHECK(wait_decision(gtrid, 'A', 15000));
    t_ap_resume(ap, outfile, out, sizeof out);
    CHECK_CONTAINS(out, "result=EABORTED");
    CHECK_CONTAINS(out, "recovery had already decided abort");
    t_expect_converged(CONVERGE_MS);
    t_expect_rows("rf1", 0);
    CHECK_INT(decision_of(gtrid), 'A');
}

/* The AP (transaction timeout 1 s) stopped right after the decider's commit, past its
 * deadline: xatmd times it out, and recovery's resolve finds the commit row (COMMIT record,
 * PostgreSQL's branch committed; MariaDB's is still attached to the stopped AP's session).
 * The AP then resumes: its phase 2 and its late DONE(commit-decided), for a transaction
 * xatmd no longer has, change nothing: committed on both sides. */
static void case_late_done(void)
{
    char outfile[600], gtrid[80], out[4096], line[200];
    printf("case: the AP stopped after the decider's commit past its deadline, a late DONE\n");
    pid_t ap = t_ap_stopped(cfg, "ld1", "commit", "ap.decider.after_commit:stop", "1000",
                            outfile, sizeof outfile, gtrid, sizeof gtrid);
    snprintf(line, sizeof line, "transaction %s: decider RM pg committed it", gtrid);
    CHECK(t_xatmd_wait_log(&d, line, 15000));
    t_ap_resume(ap, outfile, out, sizeof out);
    CHECK_CONTAINS(out, "result=OK");
    t_expect_converged(CONVERGE_MS);
    t_expect_rows("ld1", 1);
    /* 'C' when the AP's phase 2 met the branch recovery had committed (the row is left to
     * the sweep), none when the AP committed it first and deleted the row; never 'A' */
    CHECK(decision_of(gtrid) != 'A');
}

/* The decider's COMMIT holds the decision row uncommitted (a deferred trigger sleeps) and
 * the AP is stopped: recovery's resolve is busy; after the deadline xatmd fences the
 * decider session and the transaction aborts. */
static void case_busy_fenced(void)
{
    char outfile[600], gtrid[80], out[4096], line[300];
    printf("case: the decision row held by a stopped AP: busy, fenced, aborted\n");
    pid_t ap = t_ap_spawn_timed(cfg, "bz1", "pg-slow", NULL, "2000", outfile, sizeof outfile);
    CHECK(ap > 0);
    /* the decider's COMMIT is running its deferred trigger */
    long long running = 0;
    for (int i = 0; i < 200 && running <= 0; i++) {
        running = t_pg_scalar("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                              "AND query LIKE 'INSERT INTO xatm_decisions%'");
        if (running <= 0) usleep(50000);
    }
    CHECK(running > 0);
    kill(ap, SIGSTOP);
    CHECK(t_wait_stopped(ap, 5000));
    t_ap_gtrid_file(outfile, gtrid, sizeof gtrid);
    CHECK(gtrid[0] != '\0');
    /* the fence follows a busy resolve (only a held row answers busy) */
    snprintf(line, sizeof line, "on decider RM pg holding the decision row of %s", gtrid);
    CHECK(t_xatmd_wait_log(&d, line, 20000));
    CHECK(wait_decision(gtrid, 'A', 15000));
    t_ap_resume(ap, outfile, out, sizeof out);
    CHECK_CONTAINS(out, "result=EUNKNOWN"); /* its decider connection was terminated */
    t_expect_converged(CONVERGE_MS);
    t_expect_rows("bz1", 0);
    CHECK_INT(t_pg_scalar("SELECT count(*) FROM xatm_slow WHERE id = 'bz1'"), 0);
}

/* An application whose config has no tm.decision_rm (same TM, same socket) is refused at
 * xatm_open: its transactions would not be resolved the way xatmd resolves them. */
static void case_mismatch(void)
{
    printf("case: an application without tm.decision_rm is refused\n");
    char path[700], out[4096], *text = malloc(1 << 16);
    FILE *f = fopen(cfg, "r");
    size_t n = f && text ? fread(text, 1, (1 << 16) - 1, f) : 0;
    if (f) fclose(f);
    if (!text) return;
    text[n] = '\0';
    char *at = strstr(text, "  decision_rm: pg\n");
    CHECK(at != NULL);
    if (at) memmove(at, at + strlen("  decision_rm: pg\n"), strlen(at + strlen("  decision_rm: pg\n")) + 1);
    snprintf(path, sizeof path, "%s/nodecider.yaml", dir);
    f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    free(text);
    char *saved = cfg;
    cfg = path;
    CHECK_INT(t_ap_run(cfg, "mm1", "commit", NULL, out, sizeof out), 2);
    cfg = saved;
    CHECK_CONTAINS(out, "result=EPROTO open:");
    CHECK_CONTAINS(out, "runs with tm.decision_rm 'pg', but");
    t_expect_rows("mm1", 0);
}

/* xatmd restarted with tm.decision_retention: 1s: its first recovery pass deletes the
 * abort rows older than that, and the commit row the AP killed after its decider's commit
 * left behind (no branch of it is prepared any more). */
static void case_sweep(void)
{
    printf("case: old decision rows swept (tm.decision_retention: 1s)\n");
    CHECK_INT(decision_of(killed_gtrid[0]), 'A');
    CHECK_INT(decision_of(killed_gtrid[1]), 'C');
    CHECK_INT(t_xatmd_stop(&d), 0);
    free(cfg);
    cfg = t_write_config(dir, tm_id,
                         "  transaction_timeout: 10s\n"
                         "  request_timeout: 10s\n"
                         "  recovery_interval: 200ms\n"
                         "  decision_rm: pg\n"
                         "  decision_retention: 1s\n");
    usleep(2100 * 1000); /* every row of this run is older than 1 s, and than 1 s plus the
                          * first pass (the commit-row sweep counts the pass in) */
    CHECK_INT(t_xatmd_start(&d, cfg, NULL), 0);
    CHECK(wait_decision(killed_gtrid[0], 0, 10000));
    CHECK(wait_decision(killed_gtrid[1], 0, 10000));
    CHECK(t_xatmd_wait_log(&d, "older than tm.decision_retention, of transactions with no prepared branch left", 5000));
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM xatm_decisions WHERE gtrid LIKE '%s.%%'", tm_id);
    CHECK_INT(t_pg_scalar(sql), 0);
}

/* A second xatmd (its own tm id, a fresh log) starting while the decision table holds a
 * row of its tm id from epoch 7 (as a lost log leaves it): it raises its epoch to 8, so no
 * gtrid with a row is issued again (a stale commit row would decide a new transaction). */
static void case_epoch_rows(void)
{
    printf("case: start-up epoch above the decision rows' (fresh log)\n");
    char tm2[17], *dir2, *cfg2, sql[300], line[200];
    snprintf(tm2, sizeof tm2, "de%d", (int)(getpid() % 100000));
    dir2 = t_tmpdir("tmdec-e");
    cfg2 = t_write_config(dir2, tm2,
                          "  transaction_timeout: 10s\n"
                          "  recovery_interval: 30s\n"
                          "  decision_rm: pg\n");
    snprintf(sql, sizeof sql, "INSERT INTO xatm_decisions (gtrid, outcome) VALUES ('%s.7.3', 'C')",
             tm2);
    CHECK_INT(t_pg_exec(sql), 0);
    t_xatmd d2;
    memset(&d2, 0, sizeof d2);
    CHECK_INT(t_xatmd_start(&d2, cfg2, NULL), 0);
    CHECK_INT(t_xatmd_log_count(&d2, "start-up: epoch raised from 1 to 8: the decision table "
                                      "holds rows of this TM from epoch 7"), 1);
    snprintf(line, sizeof line, "ready tm=%s epoch=8 ", tm2);
    CHECK_INT(t_xatmd_log_count(&d2, line), 1);
    CHECK_INT(t_xatmd_stop(&d2), 0);
    snprintf(sql, sizeof sql, "DELETE FROM xatm_decisions WHERE gtrid LIKE '%s.%%'", tm2);
    CHECK_INT(t_pg_exec(sql), 0);
    free(cfg2);
    free(dir2);
}

/* tm.decision_retention (1 s) shorter than the transaction's timeout (20 s, asked for at
 * BEGIN): the AP is stopped once its other branch is prepared, before its checks for the
 * decider's commit (ap.after_prepare); a restarted xatmd presumes abort
 * (abort row, PostgreSQL's prepared branch rolled back); a second restart, past the
 * retention, sweeps the abort row. The AP, resumed well within its timeout, must not commit
 * the decider now: its branch elsewhere is gone (without libxatm's retention check it
 * inserted the commit row and committed MariaDB alone), although its own config keeps the
 * default retention: xatmd's, from HELLO_OK, counts. Runs with the decider "my". */
static void case_abort_row_swept(void)
{
    char outfile[600], gtrid[80], out[4096];
    printf("case: the abort row swept while the AP may still commit (retention < timeout)\n");
    CHECK_INT(t_xatmd_stop(&d), 0);
    free(cfg);
    cfg = t_write_config(dir, tm_id,
                         "  transaction_timeout: 10s\n"
                         "  request_timeout: 10s\n"
                         "  recovery_interval: 200ms\n"
                         "  decision_rm: my\n"
                         "  decision_retention: 1s\n");
    CHECK_INT(t_xatmd_start(&d, cfg, NULL), 0);
    /* the application's config keeps the default retention (24 h): libxatm must go by
     * xatmd's (HELLO_OK), which its sweep uses */
    char *apcfg = t_config_variant(cfg, "xatm-app.yaml", "  decision_retention: 1s\n", "");
    pid_t ap = t_ap_stopped(apcfg, "mswp", "commit", "ap.after_prepare:stop", "20000",
                            outfile, sizeof outfile, gtrid, sizeof gtrid);
    kill(d.pid, SIGKILL);
    CHECK(t_xatmd_wait_killed(&d, 10000));
    CHECK_INT(t_xatmd_start(&d, cfg, NULL), 0);
    CHECK(wait_decision(gtrid, 'A', 10000));
    CHECK(t_wait_no_prepared(tm_id, CONVERGE_MS) >= 0); /* pg's branch rolled back */
    usleep(2500 * 1000); /* the abort row is older than 1 s (MariaDB: whole seconds) */
    CHECK_INT(t_xatmd_stop(&d), 0);
    CHECK_INT(t_xatmd_start(&d, cfg, NULL), 0);         /* its first pass sweeps */
    CHECK(wait_decision(gtrid, 0, 10000));
    t_ap_resume(ap, outfile, out, sizeof out);
    CHECK_CONTAINS(out, "result=EABORTED");
    CHECK_CONTAINS(out, "half of tm.decision_retention");
    t_expect_converged(CONVERGE_MS);
    t_expect_rows("mswp", 0);
    CHECK_INT(decision_of(gtrid), 0);
    free(apcfg);
}

/* The same protocol with MariaDB as the decider (tm.decision_rm: my; "pg" is the prepared
 * branch): its own xatmd, tm id and directory; commit, a NO on the prepared side, a failed
 * statement on the decider, the AP killed before and after the decider's commit. */
/* xatmctl -c cfg --json VERB GTRID [--force] --reason test: its exit code, its output in out. */
static int ctl_force(const char *verb, const char *gtrid, bool force, char *out, size_t size)
{
    char bin[512], c[] = "-c", cfgbuf[600], json[] = "--json", v[16], g[80], f[] = "--force",
         r[] = "--reason", why[] = "decider test", file[700];
    snprintf(bin, sizeof bin, "%s", t_env("XATMCTL"));
    snprintf(cfgbuf, sizeof cfgbuf, "%s", cfg);
    snprintf(v, sizeof v, "%s", verb);
    snprintf(g, sizeof g, "%s", gtrid);
    snprintf(file, sizeof file, "%s/ctl-%s.out", dir, verb);
    char *argv[] = {bin, c, cfgbuf, json, v, g, r, why, force ? f : NULL, NULL};
    int st = t_run(argv, NULL, file);
    t_read_file(file, out, size);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The operator and the decider (decider my): an AP stopped before its decider commit with
 * its PostgreSQL branch prepared, MariaDB (the decider) killed, so recovery cannot read the
 * decision. xatmctl commit and rollback are refused without --force (the outcome is the
 * decider's, which xatmd has not read); with --force the rollback is recorded as forced
 * over the decider, and recovery carries it out once MariaDB is back. */
static void case_operator_vs_decider(void)
{
    char outfile[600], gtrid[80], out[4096], line[200], srv[700];
    printf("case: xatmctl commit/rollback while the decider cannot be read\n");
    pid_t ap = t_ap_stopped(cfg, "mop", "commit", "ap.decider.before_commit:stop", "1000",
                            outfile, sizeof outfile, gtrid, sizeof gtrid);
    snprintf(srv, sizeof srv, "%s/servers-kill.out", dir);
    CHECK_INT(t_servers_sh("kill", "my", srv), 0);
    snprintf(line, sizeof line, "cannot resolve %s at decider RM my", gtrid);
    CHECK(t_xatmd_wait_log(&d, line, CONVERGE_MS));
    CHECK_INT(ctl_force("rollback", gtrid, false, out, sizeof out), 1);
    CHECK_CONTAINS(out, "its outcome is decided at decider RM my (tm.decision_rm)");
    CHECK_CONTAINS(out, "SELECT outcome FROM xatm_decisions");
    CHECK_INT(ctl_force("commit", gtrid, false, out, sizeof out), 1);
    CHECK_CONTAINS(out, "refused");
    CHECK_INT(ctl_force("rollback", gtrid, true, out, sizeof out), 0);
    CHECK_CONTAINS(out, "\"recorded\":true,\"overrides\":\"decider\"");
    snprintf(srv, sizeof srv, "%s/servers-restart.out", dir);
    CHECK_INT(t_servers_sh("restart", "my", srv), 0);
    kill(ap, SIGKILL);
    int st = 0;
    CHECK(t_wait_exit(ap, 10000, &st));
    CHECK(t_wait_no_prepared(tm_id, CONVERGE_MS) >= 0);
    t_expect_rows("mop", 0);
    CHECK_INT(decision_of(gtrid), 0); /* the forced outcome needs no abort row */
    CHECK_INT(t_xatmd_log_count(&d, "is forced over the decision at decider RM my"), 1);
}

static void cases_mariadb_decider(void)
{
    printf("-- MariaDB as the decider\n");
    char *saved_dir = dir, *saved_cfg = cfg, saved_tm[17];
    t_xatmd saved_d = d;
    snprintf(saved_tm, sizeof saved_tm, "%s", tm_id);
    snprintf(tm_id, sizeof tm_id, "dm%d", (int)(getpid() % 100000));
    dir = t_tmpdir("tmdec-my");
    t_ap_init(dir, tm_id);
    cfg = t_write_config(dir, tm_id,
                         "  transaction_timeout: 10s\n"
                         "  request_timeout: 10s\n"
                         "  recovery_interval: 200ms\n"
                         "  decision_rm: my\n");
    decider_my = true;
    memset(&d, 0, sizeof d);
    if (t_xatmd_start(&d, cfg, NULL) == 0) {
        CHECK_INT(t_my_scalar("SELECT count(*) FROM information_schema.tables WHERE "
                              "table_schema = DATABASE() AND table_name = 'xatm_decisions'"),
                  1);
        case_commit("mc1");
        case_no_vote("mnopg", "fail-pg");
        case_no_vote("mnomy", "fail-my");
        case_ap_killed("mapk1", "ap.decider.before_commit", 0, 'A');
        case_ap_killed("mapk2", "ap.decider.after_commit", 1, 'C');
        case_operator_vs_decider();
        case_abort_row_swept();
        CHECK_INT(t_xatmd_stop(&d), 0);
    } else {
        CHECK(!"xatmd (decider my) starts");
    }
    char sql[200];
    snprintf(sql, sizeof sql, "DELETE FROM xatm_decisions WHERE gtrid LIKE '%s.%%'", tm_id);
    CHECK_INT(t_my_exec(sql), 0);
    CHECK_INT(t_pg_prepared(tm_id), 0);
    CHECK_INT(t_my_prepared(tm_id), 0);
    decider_my = false;
    free(cfg);
    free(dir);
    dir = saved_dir;
    cfg = saved_cfg;
    d = saved_d;
    snprintf(tm_id, sizeof tm_id, "%s", saved_tm);
    t_ap_init(dir, tm_id);
}

int main(void)
{
    t_require_servers();
    snprintf(tm_id, sizeof tm_id, "dc%d", (int)(getpid() % 100000));
    dir = t_tmpdir("tmdec");
    t_ap_init(dir, tm_id);
    cfg = t_write_config(dir, tm_id,
                         "  transaction_timeout: 10s\n"
                         "  request_timeout: 10s\n"
                         "  recovery_interval: 200ms\n"
                         "  decision_rm: pg\n");
    CHECK_INT(t_pg_exec("CREATE TABLE IF NOT EXISTS xatm_it (id varchar(64) PRIMARY KEY, v int)"), 0);
    CHECK_INT(t_my_exec("CREATE TABLE IF NOT EXISTS xatm_it (id varchar(64) PRIMARY KEY, v int) ENGINE=InnoDB"), 0);
    CHECK_INT(t_pg_exec("DELETE FROM xatm_it"), 0);
    CHECK_INT(t_my_exec("DELETE FROM xatm_it"), 0);
    /* a table whose rows make COMMIT sleep (a deferred constraint trigger) */
    CHECK_INT(t_pg_exec("CREATE TABLE IF NOT EXISTS xatm_slow (id varchar(64))"), 0);
    CHECK_INT(t_pg_exec("CREATE OR REPLACE FUNCTION xatm_slow_fn() RETURNS trigger "
                        "LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$"),
              0);
    CHECK_INT(t_pg_exec("DROP TRIGGER IF EXISTS xatm_slow_t ON xatm_slow"), 0);
    CHECK_INT(t_pg_exec("CREATE CONSTRAINT TRIGGER xatm_slow_t AFTER INSERT ON xatm_slow "
                        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "
                        "xatm_slow_fn()"),
              0);
    CHECK_INT(t_pg_exec("DELETE FROM xatm_slow"), 0);
    if (t_xatmd_start(&d, cfg, NULL) != 0) {
        CHECK(!"xatmd starts");
        return t_finish("tm_decider");
    }
    /* xatmd created the decision table at start-up */
    CHECK_INT(t_pg_scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = "
                          "'xatm_decisions'"),
              1);
    case_commit("c1");
    case_no_vote("nomy", "fail-my");
    case_no_vote("nopg", "fail-pg");
    case_ap_killed("apk1", "ap.decider.before_commit", 0, 'A');
    case_ap_killed("apk2", "ap.decider.after_commit", 1, 'C');
    case_tm_killed("tmk1", "ap.decider.before_commit", true, "result=EABORTED", 0);
    case_tm_killed("tmk2", "ap.decider.after_commit", false, "result=OK", 1);
    case_tm_killed("tmk3", "ap.decider.after_commit", true, "result=OK", 1);
    case_tm_killed_after_resolve();
    case_recovery_first();
    case_late_done();
    case_busy_fenced();
    case_mismatch();
    case_epoch_rows();
    case_sweep();
    CHECK_INT(t_xatmd_stop(&d), 0);
    cases_mariadb_decider();
    CHECK_INT(t_pg_prepared(tm_id), 0);
    CHECK_INT(t_my_prepared(tm_id), 0);
    free(cfg);
    free(dir);
    return t_finish("tm_decider");
}
