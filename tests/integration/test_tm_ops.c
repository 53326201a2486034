/*
 * test_tm_ops.c — recovery under failure and the operator's tool, end to end: a real
 * xatmd, real PostgreSQL and MariaDB servers, AP processes (xatm-test-ap) stopped or
 * killed at exact protocol steps through XATM_FAULT, MariaDB killed and restarted with
 * scripts/servers.sh, and xatmctl run as an operator would.
 *
 * Cases:
 *   hung AP, phase 1   an AP stopped (SIGSTOP) with both branches prepared, past its
 *                      timeout: list/show show it live with both branches "prepared", a
 *                      forced outcome is refused while it is live, xatmd times it out,
 *                      fences its MariaDB session and rolls both back; its late VOTE (after
 *                      SIGCONT) is answered abort;
 *   hung AP, phase 2   an AP stopped after the commit decision: after its deadline xatmd
 *                      fences its MariaDB session and commits both branches; a VOTE sent
 *                      again for it once its END is written is answered ERROR XATM_EUNKNOWN
 *                      (outcome not remembered), never abort;
 *   unknown owner      an AP stopped with both branches prepared while xatmd restarts: the
 *                      new incarnation knows no session for its MariaDB branch, waits the
 *                      transaction timeout since its start, and then reports XAER_NOTA as
 *                      "not finished yet: its session may still hold it" (never "already
 *                      rolled back") until the AP dies; then it rolls the branch back;
 *   one branch         a one-branch transaction stopped past its timeout: xatmd says it
 *                      timed out there but may still commit, and it does commit;
 *   recover            `xatmctl recover` runs a pass and reports it;
 *   presumed abort     a forced commit of an aborted gtrid is refused;
 *   RM outage          MariaDB killed for XATM_TEST_RM_OUTAGE_S seconds (default 5) while
 *                      two decided transactions wait for it: one-branch PostgreSQL
 *                      transactions keep committing through xatmd, `list --json` shows the
 *                      in-doubt ones with MariaDB "unknown (RM unreachable)", a VOTE sent
 *                      again for one of them is answered commit (the decision recovery
 *                      holds), one for a gtrid never issued abort, a forced
 *                      rollback of a COMMIT decision is refused without --force and recorded
 *                      as a HEURISTIC with it (visible in list, show and `log dump`); once
 *                      MariaDB is back, recovery converges: nothing in doubt, the plain one
 *                      committed on both RMs, the forced one rolled back on MariaDB (a mixed,
 *                      heuristic outcome), the heuristic still listed by `list --all`;
 *   log rotation       2000 two-branch transactions with 64 KiB segments: the log stays
 *                      within a few segments on disk, and the heuristic decision is carried
 *                      across rotation and a restart of xatmd.
 *
 * A MariaDB this test killed is always restarted, also when a check fails (atexit).
 */
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "testutil.h"
#include "tmproc.h"
#include "xatm.h"

static char tm_id[17];
static char *dir;
static char *cfg;
static t_xatmd d;
static bool my_killed; /* MariaDB is down because of us: restart it at exit */

#define CONVERGE_MS 30000

/* ------------------------------------------------------------------ helpers */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    size_t cap = 1 << 16, len = 0, n;
    char *s = malloc(cap);
    while (s && (n = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *x = realloc(s, cap * 2);
            if (!x) break;
            s = x;
            cap *= 2;
        }
    }
    fclose(f);
    if (s) s[len] = '\0';
    return s;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* scripts/servers.sh ACTION my: 0 on success. */
static int servers_my(const char *action)
{
    char out[700];
    snprintf(out, sizeof out, "%s/servers-%s.out", dir, action);
    return t_servers_sh(action, "my", out);
}

static void restart_my_if_killed(void)
{
    if (!my_killed) return;
    if (servers_my("restart") == 0)
        my_killed = false;
    else
        fprintf(stderr, "FAIL: could not restart MariaDB (scripts/servers.sh restart my)\n");
}

/* Runs xatmctl -c cfg ARGS... (NULL-terminated); returns its exit code; *out (malloc'd)
 * gets its output. */
static int ctl(char **out, ...) __attribute__((sentinel));
static int ctl(char **out, ...)
{
    char bin[512], c[] = "-c", file[600];
    snprintf(bin, sizeof bin, "%s", t_env("XATMCTL"));
    snprintf(file, sizeof file, "%s/ctl.out", dir);
    char *argv[16] = {bin, c, cfg};
    int n = 3;
    va_list ap;
    va_start(ap, out);
    const char *x;
    while (n < 15 && (x = va_arg(ap, const char *)) != NULL) argv[n++] = (char *)(uintptr_t)x;
    va_end(ap);
    argv[n] = NULL;
    int st = t_run(argv, NULL, file);
    *out = slurp(file);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* The JSON object of transaction gtrid inside a list reply (malloc'd), or "" */
static char *tx_of(const char *list, const char *gtrid)
{
    char key[128];
    snprintf(key, sizeof key, "{\"gtrid\":\"%s\"", gtrid);
    const char *p = strstr(list, key);
    if (!p) return strdup("");
    const char *end = strstr(p + 1, "{\"gtrid\":");
    size_t n = end ? (size_t)(end - p) : strlen(p);
    return strndup(p, n);
}

/* An AP helper in the background. */
typedef struct ap {
    pid_t pid;        /* its pid */
    char out[600];    /* its output file */
    char gtrid[80];   /* its gtrid, once printed */
} ap;

static void ap_start(ap *a, const char *id, const char *action, const char *fault,
                     const char *timeout_ms)
{
    char bin[512], cfgbuf[600], idbuf[64], actbuf[64], faultenv[128], tenv[64];
    snprintf(bin, sizeof bin, "%s", t_env("XATM_TEST_AP"));
    snprintf(cfgbuf, sizeof cfgbuf, "%s", cfg);
    snprintf(idbuf, sizeof idbuf, "%s", id);
    snprintf(actbuf, sizeof actbuf, "%s", action);
    snprintf(a->out, sizeof a->out, "%s/ap-%s.out", dir, id);
    char *argv[] = {bin, cfgbuf, idbuf, actbuf, NULL};
    char *env[3] = {NULL, NULL, NULL};
    int k = 0;
    if (fault) {
        snprintf(faultenv, sizeof faultenv, "XATM_FAULT=%s", fault);
        env[k++] = faultenv;
    }
    if (timeout_ms) {
        snprintf(tenv, sizeof tenv, "XATM_TEST_AP_TIMEOUT_MS=%s", timeout_ms);
        env[k++] = tenv;
    }
    a->gtrid[0] = '\0';
    a->pid = t_spawn(argv, env, a->out);
}

/* Reads the gtrid the AP printed. */
static void ap_gtrid(ap *a)
{
    char *s = slurp(a->out);
    const char *g = strstr(s, "gtrid=");
    if (g) sscanf(g + 6, "%79s", a->gtrid);
    free(s);
}

/* Runs an AP to completion; returns its exit code, *out its output. */
static int ap_run(const char *id, const char *action, char **out)
{
    ap a;
    int st = 0;
    ap_start(&a, id, action, NULL, NULL);
    if (a.pid <= 0 || !t_wait_exit(a.pid, 60000, &st)) {
        if (a.pid > 0) {
            kill(a.pid, SIGKILL);
            waitpid(a.pid, &st, 0);
        }
        *out = strdup("");
        return -1;
    }
    *out = slurp(a.out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static long long rows(bool pg, const char *id)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM xatm_it WHERE id = '%s'", id);
    return pg ? t_pg_scalar(sql) : t_my_scalar(sql);
}

/* Waits up to timeout_ms for `text` to appear in xatmd's log at least n times. */
static bool wait_log(const char *text, int n, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        if (t_xatmd_log_count(&d, text) >= n) return true;
        sleep_ms(50);
    }
    return false;
}

/* Waits until `list --json` shows gtrid with `needle` in its object. */
static bool wait_list(const char *gtrid, const char *needle, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        char *out;
        ctl(&out, "--json", "list", NULL, NULL, NULL, NULL);
        char *tx = tx_of(out, gtrid);
        bool ok = strstr(tx, needle) != NULL;
        free(tx);
        free(out);
        if (ok) return true;
        sleep_ms(100);
    }
    return false;
}

/* Waits until `list --json` has no transaction at all. */
static long long wait_list_empty(int timeout_ms)
{
    uint64_t t0 = t_now_ms();
    for (;;) {
        char *out;
        ctl(&out, "--json", "list", NULL, NULL, NULL, NULL);
        bool empty = strstr(out, "{\"transactions\":[]") != NULL;
        free(out);
        if (empty) return (long long)(t_now_ms() - t0);
        if (t_now_ms() - t0 > (uint64_t)timeout_ms) return -1;
        sleep_ms(100);
    }
}

/* Writes all of buf to fd. */
static bool write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool read_all(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/* Sends m on fd and reads one reply into *out (body kept in *body). */
static bool raw_call(int fd, const xatm_msg *m, uint32_t req_id, xatm_msg *out, uint8_t **body)
{
    xatm_buf b = {0};
    bool ok = xatm_msg_encode(m, req_id, &b) == 0 && write_all(fd, b.data, b.len);
    xatm_buf_free(&b);
    uint8_t hdr[XATM_FRAME_HEADER_SIZE];
    xatm_frame_header h;
    if (!ok || !read_all(fd, hdr, sizeof hdr) ||
        xatm_frame_header_decode(hdr, XATM_FRAME_MAX_REPLY, &h) != 0)
        return false;
    free(*body);
    *body = malloc(h.body_len ? h.body_len : 1);
    return *body && read_all(fd, *body, h.body_len) && xatm_msg_decode(&h, *body, out) == 0 &&
           h.req_id == req_id;
}

/* A raw AP connection to xatmd, greeted (HELLO answered by HELLO_OK) as `name`; -1 on
 * failure. *body is raw_call's reply buffer (the caller frees it). */
static int raw_connect_ap(const char *name, uint8_t **body)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/xatmd.sock", dir);
    if (fd < 0) return -1;
    xatm_msg m, r;
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_HELLO;
    m.u.hello.role = XATM_ROLE_AP;
    m.u.hello.pid = (uint32_t)getpid();
    snprintf(m.u.hello.client_name, sizeof m.u.hello.client_name, "%s", name);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || !raw_call(fd, &m, 1, &r, body) ||
        r.type != XATM_MSG_HELLO_OK) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A raw AP connection (as raw_connect_ap) with a transaction begun by BEGIN (req_id 2);
 * its gtrid in gtrid (XATM_GTRID_MAX + 1 bytes). -1 on failure. */
static int raw_connect_begun(const char *name, uint8_t **body, char *gtrid)
{
    int fd = raw_connect_ap(name, body);
    if (fd < 0) return -1;
    xatm_msg m, r;
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_BEGIN;
    if (!raw_call(fd, &m, 2, &r, body) || r.type != XATM_MSG_BEGIN_OK) {
        close(fd);
        return -1;
    }
    snprintf(gtrid, XATM_GTRID_MAX + 1, "%s", r.u.begin_ok.gtrid);
    return fd;
}

/* A VOTE (no entries) for gtrid on a connection of its own, as an application that sends
 * its vote again would. Returns the reply's type (0 on failure); *code and text get the
 * DECISION's outcome and reason, or the ERROR's code and message. */
static int raw_vote(const char *gtrid, int *code, char *text, size_t size)
{
    int type = 0;
    uint8_t *body = NULL;
    int fd = raw_connect_ap("test-raw-vote", &body);
    if (fd < 0) goto out_close;
    xatm_msg m, r;
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_VOTE;
    snprintf(m.u.vote.gtrid, sizeof m.u.vote.gtrid, "%s", gtrid);
    if (!raw_call(fd, &m, 2, &r, &body)) goto out_close;
    type = r.type;
    if (type == XATM_MSG_DECISION) {
        *code = r.u.decision.outcome;
        snprintf(text, size, "%s", r.u.decision.reason);
    } else if (type == XATM_MSG_ERROR) {
        *code = r.u.error.code;
        snprintf(text, size, "%s", r.u.error.message);
    }
out_close:
    free(body);
    if (fd >= 0) close(fd);
    return type;
}

/* ------------------------------------------------------------------ cases */

static void case_hung_ap_phase1(void)
{
    printf("case: hung AP with both branches prepared, past its timeout\n");
    ap a;
    ap_start(&a, "hang1", "commit", "ap.after_prepare:stop", "3000");
    CHECK(a.pid > 0 && t_wait_stopped(a.pid, 20000));
    ap_gtrid(&a);
    CHECK(a.gtrid[0] != '\0');
    char *out, *tx;
    /* live, both branches prepared as the RMs report them */
    CHECK(wait_list(a.gtrid, "\"rm\":\"my\",\"vote\":null", 5000));
    CHECK(wait_list(a.gtrid, "\"rm_state\":\"prepared\"", 5000));
    CHECK_INT(ctl(&out, "--json", "list", NULL, NULL, NULL, NULL), 0);
    tx = tx_of(out, a.gtrid);
    CHECK_CONTAINS(tx, "\"state\":\"active\"");
    CHECK_CONTAINS(tx, "\"decision\":\"none\"");
    CHECK_CONTAINS(tx, "{\"rm\":\"pg\",\"vote\":null,");
    CHECK_CONTAINS(tx, "\"rm_state\":\"prepared\",\"waiting\":null},{\"rm\":\"my\"");
    free(tx);
    free(out);
    CHECK_INT(ctl(&out, "--json", "show", a.gtrid, NULL, NULL, NULL), 0);
    char pid[64];
    snprintf(pid, sizeof pid, "\"ap_pid\":%ld", (long)a.pid);
    CHECK_CONTAINS(out, "{\"transaction\":{\"gtrid\":");
    CHECK_CONTAINS(out, pid);
    CHECK_CONTAINS(out, "\"timeout_ms\":3000");
    CHECK_CONTAINS(out, "its application is working it");
    free(out);
    /* the operator may not force the outcome of a live transaction */
    CHECK_INT(ctl(&out, "rollback", a.gtrid, NULL, NULL, NULL, NULL), 1);
    CHECK_CONTAINS(out, "the transaction is live");
    CHECK_CONTAINS(out, "EREFUSED");
    free(out);

    /* xatmd times it out, fences the session, and rolls both branches back */
    char fence[200];
    snprintf(fence, sizeof fence, "holding branch my of %s: transaction timed out after 3000 ms",
             a.gtrid);
    CHECK(wait_log(fence, 1, 20000));
    char gone[200];
    snprintf(gone, sizeof gone, "of AP pid %ld holding branch my", (long)a.pid);
    CHECK_INT(t_xatmd_log_count(&d, gone), 1);
    long long ms = t_wait_no_prepared(tm_id, CONVERGE_MS);
    CHECK(ms >= 0);
    printf("  fenced and rolled back; nothing prepared %lld ms later\n", ms);
    CHECK_INT(rows(true, "hang1"), 0);
    CHECK_INT(rows(false, "hang1"), 0);

    /* its late VOTE is answered abort */
    kill(a.pid, SIGCONT);
    int st = 0;
    CHECK(t_wait_exit(a.pid, 30000, &st));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    out = slurp(a.out);
    CHECK_CONTAINS(out, "result=EABORTED");
    CHECK_CONTAINS(out, "transaction timed out");
    free(out);
    CHECK_INT(rows(true, "hang1"), 0);
    CHECK_INT(rows(false, "hang1"), 0);
    CHECK_INT(ctl(&out, "--json", "status", NULL, NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, "\"timed_out\":1,\"fenced\":1}");
    free(out);
}

static void case_hung_ap_phase2(void)
{
    printf("case: hung AP after the commit decision, past its phase-2 deadline\n");
    ap a;
    ap_start(&a, "hang2", "commit", "ap.after_decision:stop", "3000");
    CHECK(a.pid > 0 && t_wait_stopped(a.pid, 20000));
    ap_gtrid(&a);
    char *out;
    CHECK_INT(ctl(&out, "--json", "show", a.gtrid, NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, "\"state\":\"committing\"");
    CHECK_CONTAINS(out, "\"decision\":\"commit\"");
    free(out);
    char fence[200];
    snprintf(fence, sizeof fence, "holding branch my of %s: commit decided", a.gtrid);
    CHECK(wait_log(fence, 1, 20000));
    long long ms = t_wait_no_prepared(tm_id, CONVERGE_MS);
    CHECK(ms >= 0);
    CHECK_INT(rows(true, "hang2"), 1);
    CHECK_INT(rows(false, "hang2"), 1);
    kill(a.pid, SIGCONT);
    int st = 0;
    CHECK(t_wait_exit(a.pid, 30000, &st));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0); /* the decision was commit */
    CHECK(wait_list_empty(10000) >= 0);
    /* ended (END written, forgotten): a VOTE sent again hears "outcome not remembered",
     * never abort (it committed) */
    char resolved[200];
    snprintf(resolved, sizeof resolved, "decision %s resolved", a.gtrid);
    CHECK(wait_log(resolved, 1, 10000));
    int code = 0;
    char text[1100] = "";
    CHECK_INT(raw_vote(a.gtrid, &code, text, sizeof text), XATM_MSG_ERROR);
    CHECK_INT(code, XATM_EUNKNOWN);
    CHECK_STR(text, "transaction already finished; outcome not remembered");
}

/* An AP of the previous incarnation holds its prepared MariaDB branch across a restart of
 * xatmd: the new xatmd knows no session for it. */
static void case_unknown_owner(void)
{
    printf("case: a MariaDB branch whose session is unknown (previous incarnation)\n");
    ap a;
    ap_start(&a, "uo1", "commit", "ap.after_prepare:stop", NULL);
    CHECK(a.pid > 0 && t_wait_stopped(a.pid, 20000));
    ap_gtrid(&a);
    CHECK(a.gtrid[0] != '\0');
    CHECK_INT(t_xatmd_stop(&d), 0);
    uint64_t started = t_now_ms();
    CHECK_INT(t_xatmd_start(&d, cfg, NULL), 0);
    char line[300];
    /* PostgreSQL needs no session: rolled back at start-up */
    snprintf(line, sizeof line, "rolled back prepared branch pg of %s (presumed abort)", a.gtrid);
    CHECK(wait_log(line, 1, 5000));
    /* MariaDB: waits the transaction timeout (10 s) since the start, then tries; the
     * AP's session still holds the branch, so XA ROLLBACK answers XAER_NOTA */
    char *out;
    CHECK_INT(ctl(&out, "--json", "show", a.gtrid, NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, "\"owner_unknown\":true");
    free(out);
    snprintf(line, sizeof line,
             "recovery: branch my of %s not finished yet: its session may still hold it",
             a.gtrid);
    CHECK(wait_log(line, 1, 30000));
    uint64_t tried = t_now_ms() - started;
    printf("  first XA ROLLBACK of the MariaDB branch %llu ms after the restart\n",
           (unsigned long long)tried);
    CHECK(tried >= 10000);
    CHECK_INT(t_my_prepared(tm_id), 1);
    sleep_ms(1500); /* several passes: reported once, never counted as done */
    CHECK_INT(t_xatmd_log_count(&d, line), 1);
    snprintf(line, sizeof line, "branch my of %s was already rolled back", a.gtrid);
    CHECK_INT(t_xatmd_log_count(&d, line), 0);
    CHECK_INT(t_my_prepared(tm_id), 1);
    /* the AP dies: its session ends, the branch is rolled back */
    kill(a.pid, SIGKILL);
    int st;
    waitpid(a.pid, &st, 0);
    snprintf(line, sizeof line, "rolled back prepared branch my of %s (presumed abort)", a.gtrid);
    CHECK(wait_log(line, 1, 10000));
    CHECK(t_wait_no_prepared(tm_id, CONVERGE_MS) >= 0);
    CHECK_INT(rows(true, "uo1"), 0);
    CHECK_INT(rows(false, "uo1"), 0);
}

/* A transaction of one branch commits in one phase at the application: xatmd's timeout
 * does not stop it, and xatmd says so. */
static void case_one_branch_timeout(void)
{
    printf("case: a one-branch transaction past xatmd's timeout still commits\n");
    ap a;
    ap_start(&a, "ob1", "pg-only", "ap.after_start:stop", "1000");
    CHECK(a.pid > 0 && t_wait_stopped(a.pid, 20000));
    CHECK(wait_log("timed out at xatmd; a one-branch transaction commits in one phase at "
                   "the application and may still commit",
                   1, 10000));
    kill(a.pid, SIGCONT);
    int st = 0;
    CHECK(t_wait_exit(a.pid, 30000, &st));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char *out = slurp(a.out);
    CHECK_CONTAINS(out, "result=OK");
    free(out);
    CHECK_INT(rows(true, "ob1"), 1);
}

static void case_recover(void)
{
    printf("case: xatmctl recover runs a pass and reports it\n");
    char *out;
    CHECK_INT(ctl(&out, "--json", "recover", NULL, NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, "{\"report\":{\"pass\":");
    CHECK_CONTAINS(out, "\"unreachable_rms\":[]}");
    CHECK_CONTAINS(out, "\"unresolved_decisions\":0}");
    free(out);
    CHECK_INT(ctl(&out, "recover", "--timeout", "20", NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, "recovery pass #");
    CHECK_CONTAINS(out, "RMs unreachable: none");
    free(out);
}

/* An application that writes its last frames and closes at once: xatmd's reply to an
 * earlier frame of the same write (here a BEGIN_OK) fails with EPIPE, and
 * the ROLLBACK behind it must still be acted on. xatmd is stopped while the application
 * writes and leaves, so the order is certain. */
static void case_reply_to_a_gone_peer(void)
{
    printf("case: frames written just before the application left are still acted on\n");
    uint8_t *body = NULL;
    char gtrid[XATM_GTRID_MAX + 1] = "";
    int fd = raw_connect_begun("test-gone-peer", &body, gtrid);
    CHECK(fd >= 0);
    xatm_msg m;
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_BEGIN;
    xatm_buf b = {0};
    /* a second BEGIN, answered at once: the reply that will fail (a lease's answer
     * would be held to the end of the turn, after the ROLLBACK is read) */
    CHECK_INT(xatm_msg_encode(&m, 3, &b), 0);
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_ROLLBACK;
    snprintf(m.u.rollback.gtrid, sizeof m.u.rollback.gtrid, "%s", gtrid);
    CHECK_INT(xatm_msg_encode(&m, 4, &b), 0);
    CHECK(kill(d.pid, SIGSTOP) == 0);
    CHECK(t_wait_stopped(d.pid, 10000));
    CHECK(write_all(fd, b.data, b.len));
    close(fd);
    CHECK(kill(d.pid, SIGCONT) == 0);
    xatm_buf_free(&b);
    free(body);
    char *out = NULL, want[] = "\"abort_cause\":\"rolled back by its AP\"";
    bool seen = false;
    for (int i = 0; i < 100 && !seen; i++) {
        free(out);
        out = NULL;
        CHECK_INT(ctl(&out, "--json", "show", gtrid, NULL, NULL, NULL), 0);
        seen = out && strstr(out, want) != NULL;
        if (!seen) poll(NULL, 0, 20); /* xatmd acts on it right after SIGCONT */
    }
    CHECK_CONTAINS(out, want);
    free(out);
}

/* Splits the frames in p[0..n) into out[] (at most max); returns how many whole frames. */
static int raw_frames(const uint8_t *p, size_t n, xatm_frame_header *h, xatm_msg *out, int max)
{
    int k = 0;
    while (k < max && n >= XATM_FRAME_HEADER_SIZE &&
           xatm_frame_header_decode(p, XATM_FRAME_MAX_REPLY, &h[k]) == 0 &&
           n >= XATM_FRAME_HEADER_SIZE + (size_t)h[k].body_len &&
           xatm_msg_decode(&h[k], p + XATM_FRAME_HEADER_SIZE, &out[k]) == 0) {
        p += XATM_FRAME_HEADER_SIZE + h[k].body_len;
        n -= XATM_FRAME_HEADER_SIZE + h[k].body_len;
        k++;
    }
    return n == 0 ? k : -1;
}

static void case_lease_request_rides_with_decision(void)
{
    printf("case: a lease request written behind a VOTE is answered in the DECISION's write\n");
    uint8_t *body = NULL;
    char gtrid[XATM_GTRID_MAX + 1] = "";
    int fd = raw_connect_begun("test-resv-decision", &body, gtrid);
    CHECK(fd >= 0);
    xatm_msg m;
    /* VOTE (both branches yes: a forced COMMIT, answered after the flush) and the
     * lease request behind it, in one write, as libxatm writes them */
    xatm_buf b = {0};
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_VOTE;
    snprintf(m.u.vote.gtrid, sizeof m.u.vote.gtrid, "%s", gtrid);
    m.u.vote.n = 2;
    snprintf(m.u.vote.e[0].rm, sizeof m.u.vote.e[0].rm, "pg");
    snprintf(m.u.vote.e[1].rm, sizeof m.u.vote.e[1].rm, "my");
    m.u.vote.e[0].vote = m.u.vote.e[1].vote = XATM_VOTE_YES;
    CHECK_INT(xatm_msg_encode(&m, 3, &b), 0);
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_BEGIN;
    m.u.begin.flags = XATM_BEGIN_RESERVE;
    m.u.begin.count = 1;
    CHECK_INT(xatm_msg_encode(&m, 4, &b), 0);
    CHECK(write_all(fd, b.data, b.len));
    /* both answers arrive in one read: xatmd wrote them with one send */
    uint8_t in[4096];
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    CHECK_INT(poll(&pf, 1, 10000), 1);
    ssize_t got = read(fd, in, sizeof in);
    xatm_frame_header h[3];
    xatm_msg f[3];
    int k = got > 0 ? raw_frames(in, (size_t)got, h, f, 3) : -1;
    CHECK_INT(k, 2);
    if (k == 2) {
        CHECK_INT(f[0].type, XATM_MSG_BEGIN_OK);
        CHECK_INT((int)h[0].req_id, 4);
        CHECK_INT(f[1].type, XATM_MSG_DECISION);
        CHECK_INT((int)h[1].req_id, 3);
        CHECK_INT(f[1].u.decision.outcome, XATM_OUTCOME_COMMIT);
        CHECK(strcmp(f[0].u.begin_ok.gtrid, gtrid) != 0);
        CHECK_INT(f[0].u.begin_ok.count, 1);
    }
    /* the branches do not exist at the RMs: DONE reports them committed all the same */
    b.len = 0;
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_DONE;
    snprintf(m.u.done.gtrid, sizeof m.u.done.gtrid, "%s", gtrid);
    m.u.done.outcome = XATM_OUTCOME_COMMIT;
    m.u.done.n = 2;
    snprintf(m.u.done.e[0].rm, sizeof m.u.done.e[0].rm, "pg");
    snprintf(m.u.done.e[1].rm, sizeof m.u.done.e[1].rm, "my");
    CHECK_INT(xatm_msg_encode(&m, 5, &b), 0);
    CHECK(write_all(fd, b.data, b.len));
    xatm_buf_free(&b);
    close(fd); /* the lease dies with the connection */
    free(body);
    CHECK(wait_list_empty(10000) >= 0);
}

/* Sends m (one-way) on fd. */
static bool raw_send(int fd, const xatm_msg *m, uint32_t req_id)
{
    xatm_buf b = {0};
    bool ok = xatm_msg_encode(m, req_id, &b) == 0 && write_all(fd, b.data, b.len);
    xatm_buf_free(&b);
    return ok;
}

/* A VOTE without entries for gtrid on fd; the reply's type (0 on failure), *code the
 * DECISION's outcome or the ERROR's code, text its reason or message. */
static int raw_vote_on(int fd, const char *gtrid, uint32_t req_id, uint8_t **body, int *code,
                       char *text, size_t size)
{
    xatm_msg m, r;
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_VOTE;
    snprintf(m.u.vote.gtrid, sizeof m.u.vote.gtrid, "%s", gtrid);
    if (!raw_call(fd, &m, req_id, &r, body)) return 0;
    *code = r.type == XATM_MSG_DECISION ? r.u.decision.outcome : r.u.error.code;
    snprintf(text, size, "%s",
             r.type == XATM_MSG_DECISION ? r.u.decision.reason : r.u.error.message);
    return r.type;
}

/* A reserving BEGIN asking for count gtrids on fd; the BEGIN_OK in *r (false when none). */
static bool raw_lease(int fd, uint16_t count, uint32_t req_id, xatm_msg *r, uint8_t **body)
{
    xatm_msg m;
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_BEGIN;
    m.u.begin.flags = XATM_BEGIN_RESERVE;
    m.u.begin.count = count;
    return raw_call(fd, &m, req_id, r, body) && r->type == XATM_MSG_BEGIN_OK;
}

/* Gtrid leases (docs/protocol.md): a reserving BEGIN with count 4 leases four consecutive
 * gtrids; the first message naming one begins it and uses up the ones before it; a new
 * lease replaces what is left of the old one. */
static void case_lease(void)
{
    printf("case: a lease of four gtrids, used out of order and replaced\n");
    uint8_t *body = NULL;
    int fd = raw_connect_ap("test-lease", &body);
    CHECK(fd >= 0);
    if (fd < 0) return;
    xatm_msg m, r;
    CHECK(raw_lease(fd, 4, 2, &r, &body));
    CHECK_INT(r.u.begin_ok.count, 4);
    xatm_gtrid_parts p;
    CHECK_INT(xatm_gtrid_parse(r.u.begin_ok.gtrid, &p), 0);
    char g[6][XATM_GTRID_MAX + 1];
    for (int k = 0; k < 6; k++)
        CHECK_INT(xatm_gtrid_format(g[k], sizeof g[k], p.tm_id, p.epoch, p.seq + (uint64_t)k), 0);
    /* leased, not begun: nothing to list */
    char *out = NULL;
    CHECK_INT(ctl(&out, "--json", "list", NULL, NULL, NULL, NULL), 0);
    CHECK(out && !strstr(out, g[2]));
    free(out);
    /* an ENLIST of the third begins it; the first two are used up */
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_ENLIST;
    snprintf(m.u.enlist.gtrid, sizeof m.u.enlist.gtrid, "%s", g[2]);
    snprintf(m.u.enlist.rm, sizeof m.u.enlist.rm, "pg");
    CHECK(raw_send(fd, &m, 3));
    int code = 0;
    char text[1100] = "";
    CHECK_INT(raw_vote_on(fd, g[1], 4, &body, &code, text, sizeof text), XATM_MSG_ERROR);
    CHECK_INT(code, XATM_EUNKNOWN);
    CHECK_CONTAINS(text, "already finished");
    CHECK_INT(ctl(&out, "--json", "show", g[2], NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, "\"state\":\"active\"");
    free(out);
    /* past the lease: never issued */
    CHECK_INT(raw_vote_on(fd, g[4], 5, &body, &code, text, sizeof text), XATM_MSG_DECISION);
    CHECK_INT(code, XATM_OUTCOME_ABORT);
    CHECK_STR(text, "unknown transaction: never issued");
    /* a new lease starts after the old one and replaces its unused fourth gtrid */
    CHECK(raw_lease(fd, 2, 6, &r, &body));
    CHECK_STR(r.u.begin_ok.gtrid, g[4]);
    CHECK_INT(r.u.begin_ok.count, 2);
    CHECK_INT(raw_vote_on(fd, g[3], 7, &body, &code, text, sizeof text), XATM_MSG_ERROR);
    CHECK_INT(code, XATM_EUNKNOWN);
    /* the second gtrid of the new lease begins with its ROLLBACK, which then ends it */
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_ROLLBACK;
    snprintf(m.u.rollback.gtrid, sizeof m.u.rollback.gtrid, "%s", g[5]);
    CHECK(raw_send(fd, &m, 8));
    CHECK_INT(raw_vote_on(fd, g[5], 9, &body, &code, text, sizeof text), XATM_MSG_DECISION);
    CHECK_INT(code, XATM_OUTCOME_ABORT);
    CHECK_STR(text, "transaction rolled back by its AP");
    close(fd); /* the begun third gtrid aborts with the connection */
    free(body);
    CHECK(wait_list_empty(10000) >= 0);
}

static void case_presumed_abort(void)
{
    printf("case: a forced commit of a presumed-aborted gtrid is refused\n");
    char *out, gtrid[80] = "";
    CHECK_INT(ap_run("pa1", "rollback", &out), 0);
    const char *g = strstr(out, "gtrid=");
    if (g) sscanf(g + 6, "%79s", gtrid);
    free(out);
    CHECK(gtrid[0] != '\0');
    CHECK_INT(ctl(&out, "commit", gtrid, "--reason", "test", NULL, NULL), 1);
    CHECK_CONTAINS(out, "refused");
    CHECK_CONTAINS(out, "presumed aborted");
    CHECK_CONTAINS(out, "--force");
    free(out);
    CHECK_INT(ctl(&out, "--json", "show", gtrid, NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, "\"state\":\"aborted\"");
    CHECK_CONTAINS(out, "\"abort_cause\":\"rolled back by its AP\"");
    free(out);
    /* nothing of it is prepared anywhere: even a rollback has nothing to decide */
    CHECK_INT(ctl(&out, "rollback", gtrid, "--force", NULL), 1);
    CHECK_CONTAINS(out, "nothing to decide");
    CHECK_CONTAINS(out, "ENOTFOUND");
    free(out);
    /* nothing was recorded */
    CHECK_INT(ctl(&out, "--json", "status", NULL, NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, "\"heuristic\":0,");
    free(out);
}

/* Two decided transactions wait for MariaDB; one gets a forced rollback. */
static void case_rm_outage(void)
{
    const char *env = getenv("XATM_TEST_RM_OUTAGE_S");
    int outage_s = env && *env ? atoi(env) : 5;
    if (outage_s < 1) outage_s = 1;
    printf("case: MariaDB down for %d s\n", outage_s);
    ap a1, a2;
    ap_start(&a1, "out1", "commit", "ap.after_decision:stop", NULL);
    ap_start(&a2, "out2", "commit", "ap.after_decision:stop", NULL);
    CHECK(a1.pid > 0 && t_wait_stopped(a1.pid, 20000));
    CHECK(a2.pid > 0 && t_wait_stopped(a2.pid, 20000));
    ap_gtrid(&a1);
    ap_gtrid(&a2);

    CHECK_INT(servers_my("kill"), 0);
    my_killed = true;
    uint64_t down_at = t_now_ms();
    int st;
    kill(a1.pid, SIGKILL);
    kill(a2.pid, SIGKILL);
    waitpid(a1.pid, &st, 0);
    waitpid(a2.pid, &st, 0);

    /* while MariaDB is down: in doubt, MariaDB's branches unknown */
    CHECK(wait_list(a1.gtrid, "\"rm_state\":\"unknown (RM unreachable)\"", 10000));
    char *out, *tx;
    CHECK_INT(ctl(&out, "--json", "list", NULL, NULL, NULL, NULL), 0);
    tx = tx_of(out, a2.gtrid);
    CHECK_CONTAINS(tx, "\"state\":\"in-doubt\"");
    CHECK_CONTAINS(tx, "\"decision\":\"commit\"");
    CHECK_CONTAINS(tx, "{\"rm\":\"my\",\"vote\":\"yes\"");
    CHECK_CONTAINS(tx, "\"rm_state\":\"unknown (RM unreachable)\"");
    CHECK_CONTAINS(tx, "waits for RM my to be reachable");
    free(tx);
    free(out);
    CHECK_INT(ctl(&out, "--json", "status", NULL, NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, "{\"name\":\"pg\",\"type\":\"postgresql\",\"state\":\"ok\"");
    CHECK_CONTAINS(out, "{\"name\":\"my\",\"type\":\"mysql\",\"state\":\"quarantined\"");
    CHECK_CONTAINS(out, "\"unresolved_decisions\":2,");
    free(out);

    /* a VOTE sent again for a decided transaction recovery holds: commit */
    int code = 0;
    char text[1100] = "", never[80];
    CHECK_INT(raw_vote(a2.gtrid, &code, text, sizeof text), XATM_MSG_DECISION);
    CHECK_INT(code, XATM_OUTCOME_COMMIT);
    /* ...for a gtrid of this incarnation never issued: abort */
    snprintf(never, sizeof never, "%.*s.999999", (int)(strrchr(a2.gtrid, '.') - a2.gtrid),
             a2.gtrid);
    CHECK_INT(raw_vote(never, &code, text, sizeof text), XATM_MSG_DECISION);
    CHECK_INT(code, XATM_OUTCOME_ABORT);
    CHECK_STR(text, "unknown transaction: never issued");

    /* the operator's forced rollback of a COMMIT decision */
    CHECK_INT(ctl(&out, "rollback", a1.gtrid, "--reason", "ops test: cancel", NULL, NULL), 1);
    CHECK_CONTAINS(out, "refused: it contradicts xatmd's COMMIT decision");
    free(out);
    CHECK_INT(ctl(&out, "--json", "rollback", a1.gtrid, "--force", "--reason",
                  "ops test: cancel", NULL),
              0);
    CHECK_CONTAINS(out, "\"recorded\":true,\"overrides\":\"commit\"");
    CHECK_CONTAINS(out, "\"why\":\"ops test: cancel\"");
    free(out);
    CHECK_INT(ctl(&out, "list", NULL, NULL, NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, "heuristic-rollback");
    CHECK_CONTAINS(out, "heuristic rollback by ");
    CHECK_CONTAINS(out, "\"ops test: cancel\"");
    free(out);
    CHECK_INT(ctl(&out, "--json", "show", a1.gtrid, NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, "\"decision\":\"heuristic-rollback\"");
    CHECK_CONTAINS(out, "\"heuristics\":[{\"outcome\":\"rollback\",\"who\":\"");
    free(out);
    CHECK_INT(ctl(&out, "log", "dump", NULL, NULL, NULL, NULL), 0);
    char rec[200];
    snprintf(rec, sizeof rec, "HEURISTIC gtrid=%s outcome=rollback who=\"", a1.gtrid);
    CHECK_CONTAINS(out, rec);
    CHECK_CONTAINS(out, "why=\"ops test: cancel\"");
    free(out);

    /* one-branch PostgreSQL transactions keep committing through xatmd */
    int ok = 0, failed = 0;
    while (t_now_ms() - down_at < (uint64_t)outage_s * 1000) {
        char id[32];
        snprintf(id, sizeof id, "pgo%d", ok + failed);
        if (ap_run(id, "pg-only", &out) == 0 && rows(true, id) == 1)
            ok++;
        else
            failed++;
        free(out);
    }
    CHECK(ok > 0);
    CHECK_INT(failed, 0);

    uint64_t up_at = t_now_ms();
    int restart_rc = servers_my("restart");
    CHECK_INT(restart_rc, 0);
    if (restart_rc == 0) my_killed = false;
    uint64_t restarted = t_now_ms();
    long long ms = wait_list_empty(90000);
    CHECK(ms >= 0);
    long long prep = t_wait_no_prepared(tm_id, CONVERGE_MS);
    CHECK(prep >= 0);
    printf("  outage %.1f s: %d one-branch PostgreSQL commits through xatmd, %d failed; "
           "MariaDB restart took %llu ms; in-doubt list empty %lld ms after it was back\n",
           (double)(up_at - down_at) / 1000.0, ok, failed,
           (unsigned long long)(restarted - up_at), ms);
    /* the plain one committed on both; the forced one is a mixed, heuristic outcome */
    CHECK_INT(rows(true, "out2"), 1);
    CHECK_INT(rows(false, "out2"), 1);
    CHECK_INT(rows(true, "out1"), 1);  /* committed before the operator stepped in */
    CHECK_INT(rows(false, "out1"), 0); /* rolled back by the heuristic decision */
    CHECK_INT(ctl(&out, "list", NULL, NULL, NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, "1 finished heuristic decision not shown: xatmctl list --all");
    free(out);
    CHECK_INT(ctl(&out, "--json", "list", "--all", NULL, NULL, NULL), 0);
    tx = tx_of(out, a1.gtrid);
    CHECK_CONTAINS(tx, "\"state\":\"finished\"");
    CHECK_CONTAINS(tx, "\"why\":\"ops test: cancel\"");
    free(tx);
    free(out);
}

/* Many transactions with small segments: disk use stays bounded; the heuristic decision
 * is carried into every new segment and survives a restart. */
static void case_rotation(const char *heuristic_gtrid)
{
    printf("case: log rotation keeps disk use bounded\n");
    char *out;
    CHECK_INT(ap_run("rot", "loop:2000", &out), 0);
    CHECK_CONTAINS(out, "result=OK");
    free(out);
    CHECK_INT(ctl(&out, "--json", "status", NULL, NULL, NULL, NULL), 0);
    const char *b = strstr(out, "\"bytes\":");
    const char *s = strstr(out, "\"segments\":");
    long long bytes = b ? atoll(b + 8) : -1, segs = s ? atoll(s + 11) : -1;
    printf("  after 2000 two-branch commits: %lld bytes in %lld segment(s), segment size "
           "65536\n",
           bytes, segs);
    CHECK(bytes > 0 && bytes <= 3 * 65536);
    CHECK(segs >= 1 && segs <= 3);
    free(out);
    CHECK_INT(ctl(&out, "log", "dump", NULL, NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, "CHECKPOINT");
    char rec[200];
    snprintf(rec, sizeof rec, "HEURISTIC gtrid=%s outcome=rollback", heuristic_gtrid);
    CHECK_CONTAINS(out, rec); /* carried by the CHECKPOINT of the current segment */
    free(out);

    /* a restart replays it: still on record */
    CHECK_INT(t_xatmd_stop(&d), 0);
    CHECK_INT(t_xatmd_start(&d, cfg, NULL), 0);
    CHECK_INT(ctl(&out, "--json", "show", heuristic_gtrid, NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, "\"decision\":\"heuristic-rollback\"");
    CHECK_CONTAINS(out, "\"why\":\"ops test: cancel\"");
    free(out);
    CHECK_INT(ctl(&out, "--json", "list", "--all", NULL, NULL, NULL), 0);
    CHECK_CONTAINS(out, heuristic_gtrid);
    free(out);
    /* log dump works without the daemon */
    CHECK_INT(t_xatmd_stop(&d), 0);
    char logdir[700];
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    CHECK_INT(ctl(&out, "--json", "log", "dump", "--dir", logdir, NULL), 0);
    CHECK_CONTAINS(out, "\"type\":\"HEURISTIC\"");
    CHECK_CONTAINS(out, "\"code\":0,");
    free(out);
    CHECK_INT(t_xatmd_start(&d, cfg, NULL), 0);
}

int main(void)
{
    t_require_servers();
    (void)t_env("XATM_TEST_SERVERS_DIR");
    atexit(restart_my_if_killed);
    snprintf(tm_id, sizeof tm_id, "op%d", (int)(getpid() % 100000));
    dir = t_tmpdir("tmops");
    cfg = t_write_config(dir, tm_id,
                         "  transaction_timeout: 10s\n"
                         "  request_timeout: 10s\n"
                         "  recovery_interval: 200ms\n"
                         "  log_segment_size: 64KiB\n");
    CHECK_INT(t_pg_exec("CREATE TABLE IF NOT EXISTS xatm_it (id varchar(64) PRIMARY KEY, v int)"), 0);
    CHECK_INT(t_my_exec("CREATE TABLE IF NOT EXISTS xatm_it (id varchar(64) PRIMARY KEY, v int) ENGINE=InnoDB"), 0);
    CHECK_INT(t_pg_exec("DELETE FROM xatm_it"), 0);
    CHECK_INT(t_my_exec("DELETE FROM xatm_it"), 0);
    if (t_xatmd_start(&d, cfg, NULL) != 0) {
        CHECK(!"xatmd starts");
        return t_finish("tm_ops");
    }
    uint64_t t0 = t_now_ms();
    case_hung_ap_phase1();
    case_hung_ap_phase2();
    case_recover();
    case_presumed_abort();
    case_reply_to_a_gone_peer();
    case_lease_request_rides_with_decision();
    case_lease();
    case_one_branch_timeout();
    case_unknown_owner();
    case_rm_outage();
    /* the forced one, for the rotation case */
    char *out, heur[80] = "";
    ctl(&out, "--json", "list", "--all", NULL, NULL, NULL);
    const char *g = strstr(out, "{\"gtrid\":\"");
    if (g) sscanf(g + 10, "%79[^\"]", heur);
    free(out);
    CHECK(heur[0] != '\0');
    case_rotation(heur);
    CHECK_INT(t_xatmd_stop(&d), 0);
    CHECK_INT(t_pg_prepared(tm_id), 0);
    CHECK_INT(t_my_prepared(tm_id), 0);
    printf("tm_ops ran in %llu ms\n", (unsigned long long)(t_now_ms() - t0));
    free(cfg);
    free(dir);
    return t_finish("tm_ops");
}
