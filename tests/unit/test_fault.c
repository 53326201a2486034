/*
 * test_fault.c — unit tests of common/fault.c: the point table, XATM_FAULT parsing and
 * its errors, and each action firing in a forked child (exit -> status 99, kill -> SIGKILL,
 * stop -> stopped then resumable, @n -> only the n-th hit), with the stderr line checked;
 * io points: enospc / torn only there, handed back by xatm_fault_io_hit on the n-th hit,
 * and xatm_fault_armed_action; the 3PC action "partition", accepted only at
 * tm.after_precommit_sent and handed back by xatm_fault_hit_cut on the n-th hit.
 * (tests/unit/test_faultio.c tests the layer that acts.)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault.h"
#include "testutil.h"
#include "xatm.h"

/* The points other modules were told to use; the table must hold exactly these. */
static const char *const expected_points[] = {
    "tm.after_begin", "tm.after_enlist", "tm.before_commit_force", "tm.after_commit_force",
    "tm.after_decision_sent", "tm.before_end", "tm.recovery_before_commit",
    "tm.recovery_between_branches", "tm.recovery_after_commit", "tm.recovery_before_rollback",
    "tm.after_precommit_force", "tm.before_log_write", "tm.log_write",
    "tm.before_precommit_force", "tm.after_precommit_sent", "tm.before_abort_force",
    "tm.after_abort_force",
    "ap.after_begin", "ap.after_start", "ap.before_prepare", "ap.between_prepares",
    "ap.after_prepare", "ap.after_vote_sent", "ap.after_decision", "ap.between_commits",
    "ap.after_commits", "ap.after_cancommit_checks", "ap.after_cancommit_sent",
    "ap.after_precommit", "ap.participant_timeout", "ap.decider.before_commit",
    "ap.decider.after_commit", "tm.recovery_after_resolve",
};
#define N_EXPECTED (sizeof expected_points / sizeof expected_points[0])

static void test_table(void)
{
    const char *const *pts = xatm_fault_points();
    size_t n = 0;
    int malformed = 0, dup = 0;
    for (; pts[n]; n++) {
        const char *p = pts[n];
        if (strncmp(p, "tm.", 3) != 0 && strncmp(p, "ap.", 3) != 0) malformed++;
        for (const char *c = p; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '.'))
                malformed++;
        for (size_t k = 0; k < n; k++)
            if (strcmp(pts[k], p) == 0) dup++;
    }
    CHECK_INT(n, N_EXPECTED);
    CHECK_INT(malformed, 0);
    CHECK_INT(dup, 0);
    for (size_t i = 0; i < N_EXPECTED; i++) {
        bool found = false;
        for (size_t k = 0; pts[k]; k++) found |= strcmp(pts[k], expected_points[i]) == 0;
        if (!found) fprintf(stderr, "missing fault point %s\n", expected_points[i]);
        CHECK(found);
    }
}

static void test_parse(void)
{
    char err[256];
    static const char *const good[] = {
        "tm.after_begin", "tm.after_begin@3", "tm.after_begin:exit", "tm.after_begin@2:stop",
        "ap.after_commits:kill", "tm.before_log_write@1000000000", "tm.log_write:enospc",
        "tm.log_write@7:torn", "tm.log_write@1000000000:enospc", "", NULL,
        "tm.after_precommit_sent:partition", "tm.after_precommit_sent@3:partition",
        "tm.after_precommit_sent", "tm.after_precommit_sent:stop",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int rc = xatm_fault_arm(good[i], err, sizeof err);
        if (rc) fprintf(stderr, "refused \"%s\": %s\n", good[i] ? good[i] : "(null)", err);
        CHECK_INT(rc, 0);
        CHECK_STR(err, "");
    }

    static const char *const bad[] = {
        "tm.nope", "tm.after_begin@0", "@1", ":exit", "tm.after_begin@", "tm.after_begin@x",
        "tm.after_begin@01", "tm.after_begin@-1", "tm.after_begin:boom", "tm.after_begin:",
        "tm.after_begin@1:exit:x", "tm.after_begin@2000000000", "tm.after_begin@1x",
        "TM.AFTER_BEGIN", " tm.after_begin", "tm.after_begin ", "tm.after_begi",
        "tm.after_beginx", "tm.after_begin:EXIT", "tm.after_begin@1@2",
        /* io actions only at io points, and io points take only io actions */
        "tm.after_begin:enospc", "ap.after_prepare@2:torn", "tm.log_write", "tm.log_write@3",
        "tm.log_write:kill", "tm.log_write@2:stop", "tm.log_write:exit", "tm.log_write:ENOSPC",
        "tm.log_write:tornx",
        /* partition only at tm.after_precommit_sent */
        "tm.after_begin:partition", "tm.after_precommit_force:partition",
        "ap.participant_timeout:partition", "tm.log_write:partition",
        "tm.after_precommit_sent:PARTITION", "tm.after_precommit_sent:partitio",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        int rc = xatm_fault_arm(bad[i], err, sizeof err);
        if (rc != XATM_EINVAL) fprintf(stderr, "accepted \"%s\"\n", bad[i]);
        CHECK_INT(rc, XATM_EINVAL);
        CHECK_CONTAINS(err, "XATM_FAULT=");
    }
    CHECK_INT(xatm_fault_arm("tm.nope", err, sizeof err), XATM_EINVAL);
    CHECK_CONTAINS(err, "unknown fault point");
    CHECK_CONTAINS(err, "tm.nope");
    CHECK_INT(xatm_fault_arm("tm.after_begin:boom", err, sizeof err), XATM_EINVAL);
    CHECK_CONTAINS(err, "kill, stop, exit, enospc, torn or partition");
    CHECK_INT(xatm_fault_arm("tm.after_precommit_force:partition", err, sizeof err), XATM_EINVAL);
    CHECK_CONTAINS(err, "partition is an action of tm.after_precommit_sent only");
    CHECK_INT(xatm_fault_arm("tm.log_write:partition", err, sizeof err), XATM_EINVAL);
    CHECK_INT(xatm_fault_arm("tm.after_precommit_sent@2:partition", err, sizeof err), 0);
    CHECK_INT(xatm_fault_armed_action("tm.after_precommit_sent"), XATM_FAULT_PARTITION);
    CHECK_INT(xatm_fault_arm("tm.after_begin:torn", err, sizeof err), XATM_EINVAL);
    CHECK_CONTAINS(err, "io points only");
    CHECK_INT(xatm_fault_arm("tm.log_write", err, sizeof err), XATM_EINVAL);
    CHECK_CONTAINS(err, "needs an action");
    CHECK_INT(xatm_fault_arm("tm.log_write:kill", err, sizeof err), XATM_EINVAL);
    CHECK_CONTAINS(err, "tm.before_log_write");

    /* which point and action are armed */
    CHECK(xatm_fault_is_io_point("tm.log_write"));
    CHECK(!xatm_fault_is_io_point("tm.before_log_write"));
    CHECK(!xatm_fault_is_io_point(NULL));
    CHECK_INT(xatm_fault_arm("tm.log_write@4:torn", err, sizeof err), 0);
    CHECK_INT(xatm_fault_armed_action("tm.log_write"), XATM_FAULT_TORN);
    CHECK_INT(xatm_fault_armed_action("tm.before_log_write"), -1);
    CHECK_INT(xatm_fault_arm("tm.log_write:enospc", err, sizeof err), 0);
    CHECK_INT(xatm_fault_armed_action("tm.log_write"), XATM_FAULT_ENOSPC);
    CHECK_INT(xatm_fault_arm("ap.after_begin", err, sizeof err), 0);
    CHECK_INT(xatm_fault_armed_action("ap.after_begin"), XATM_FAULT_KILL);
    CHECK_INT(xatm_fault_arm("ap.after_begin@2:stop", err, sizeof err), 0);
    CHECK_INT(xatm_fault_armed_action("ap.after_begin"), XATM_FAULT_STOP);
    CHECK_INT(xatm_fault_armed_action(NULL), -1);
    CHECK_INT(xatm_fault_arm(NULL, err, sizeof err), 0);
    CHECK_INT(xatm_fault_armed_action("ap.after_begin"), -1);
    CHECK_INT(xatm_fault_io_hit("tm.log_write"), -1); /* disarmed: nothing */
    CHECK_INT(xatm_fault_arm("tm.nope", NULL, 0), XATM_EINVAL); /* err may be NULL */
    char tiny[4];
    CHECK_INT(xatm_fault_arm("tm.nope", tiny, sizeof tiny), XATM_EINVAL);
    CHECK_INT((long long)strlen(tiny), 3);

    /* through the environment */
    setenv("XATM_FAULT", "bogus.point", 1);
    CHECK_INT(xatm_fault_init(err, sizeof err), XATM_EINVAL);
    CHECK_CONTAINS(err, "bogus.point");
    setenv("XATM_FAULT", "", 1);
    CHECK_INT(xatm_fault_init(err, sizeof err), 0);
    unsetenv("XATM_FAULT");
    CHECK_INT(xatm_fault_init(err, sizeof err), 0);
    xatm_fault_hit("tm.after_begin"); /* disarmed: nothing happens */
    CHECK(true);
}

/* Result of running fn in a child whose stderr is captured. */
struct child {
    int status;       /* from waitpid */
    char err_text[512]; /* what it wrote to stderr */
};

/* Forks, runs fn in the child (which must _exit), and waits. With stop_then_cont, expects
 * the child to stop first, records that in *stopped, and resumes it. */
static void run_child(void (*fn)(void), struct child *c, bool stop_then_cont, bool *stopped)
{
    int fds[2];
    memset(c, 0, sizeof *c);
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        fn();
        _exit(0);
    }
    close(fds[1]);
    if (stop_then_cont) {
        int st;
        waitpid(pid, &st, WUNTRACED);
        *stopped = WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP;
        kill(pid, SIGCONT);
    }
    waitpid(pid, &c->status, 0);
    size_t n = 0;
    ssize_t r;
    while (n < sizeof c->err_text - 1 && (r = read(fds[0], c->err_text + n, sizeof c->err_text - 1 - n)) > 0)
        n += (size_t)r;
    c->err_text[n] = '\0';
    close(fds[0]);
}

static void child_exit(void)
{
    if (xatm_fault_arm("ap.after_prepare:exit", NULL, 0)) _exit(2);
    xatm_fault_hit("ap.before_prepare"); /* another point: no effect */
    xatm_fault_hit("ap.after_prepare");
    _exit(0);
}

static void child_kill(void)
{
    if (xatm_fault_arm("tm.after_commit_force", NULL, 0)) _exit(2); /* kill is the default */
    xatm_fault_hit("tm.after_commit_force");
    _exit(0);
}

static void child_nth_not_reached(void)
{
    if (xatm_fault_arm("tm.recovery_between_branches@3:exit", NULL, 0)) _exit(2);
    xatm_fault_hit("tm.recovery_between_branches");
    xatm_fault_hit("tm.recovery_between_branches");
    _exit(7);
}

static void child_nth_reached(void)
{
    if (xatm_fault_arm("tm.recovery_between_branches@3:exit", NULL, 0)) _exit(2);
    for (int i = 0; i < 3; i++) xatm_fault_hit("tm.recovery_between_branches");
    _exit(7);
}

static void child_stop(void)
{
    if (xatm_fault_arm("ap.between_commits:stop", NULL, 0)) _exit(2);
    xatm_fault_hit("ap.between_commits"); /* stops here until SIGCONT */
    xatm_fault_hit("ap.between_commits"); /* second hit: passes */
    _exit(5);
}

static void child_unarmed(void)
{
    if (xatm_fault_arm(NULL, NULL, 0)) _exit(2);
    for (const char *const *p = xatm_fault_points(); *p; p++) xatm_fault_hit(*p);
    xatm_fault_hit("not.a.point"); /* unarmed: not even checked */
    _exit(0);
}

static void child_env(void)
{
    setenv("XATM_FAULT", "ap.after_vote_sent@2:exit", 1);
    if (xatm_fault_init(NULL, 0)) _exit(2);
    xatm_fault_hit("ap.after_vote_sent");
    xatm_fault_hit("ap.after_vote_sent");
    _exit(0);
}

static void child_bad_rearm_keeps_old(void)
{
    if (xatm_fault_arm("ap.after_begin:exit", NULL, 0)) _exit(2);
    if (xatm_fault_arm("ap.after_begin:nonsense", NULL, 0) != XATM_EINVAL) _exit(3);
    xatm_fault_hit("ap.after_begin");
    _exit(0);
}

static void child_partition(void)
{
    if (xatm_fault_arm("tm.after_precommit_sent@2:partition", NULL, 0)) _exit(2);
    xatm_fault_hit("tm.after_precommit_force"); /* another point: no effect */
    if (xatm_fault_hit_cut("tm.after_precommit_sent")) _exit(3); /* hit 1: not yet */
    if (!xatm_fault_hit_cut("tm.after_precommit_sent")) _exit(4); /* hit 2: fires */
    if (xatm_fault_hit_cut("tm.after_precommit_sent")) _exit(5); /* later hits pass */
    _exit(0);
}

static void child_cut_point_other_action(void)
{
    /* a cut point armed with kill acts as usual through xatm_fault_hit_cut */
    if (xatm_fault_arm("tm.after_precommit_sent:exit", NULL, 0)) _exit(2);
    (void)xatm_fault_hit_cut("tm.after_precommit_sent");
    _exit(0);
}

static void child_cut_unarmed(void)
{
    if (xatm_fault_arm(NULL, NULL, 0)) _exit(2);
    _exit(xatm_fault_hit_cut("tm.after_precommit_sent") ? 3 : 0);
}

static void child_typo_at_call_site(void)
{
    if (xatm_fault_arm("ap.after_begin:exit", NULL, 0)) _exit(2);
    xatm_fault_hit("ap.after_begn");
    _exit(0);
}

static void child_io_enospc(void)
{
    if (xatm_fault_arm("tm.log_write@3:enospc", NULL, 0)) _exit(2);
    xatm_fault_hit("tm.before_log_write"); /* another point: no effect */
    if (xatm_fault_io_hit("tm.log_write") != -1) _exit(3);
    if (xatm_fault_io_hit("tm.log_write") != -1) _exit(4);
    if (xatm_fault_io_hit("tm.log_write") != XATM_FAULT_ENOSPC) _exit(5);
    if (xatm_fault_io_hit("tm.log_write") != -1) _exit(6); /* stickiness is the layer's */
    _exit(0);
}

static void child_io_torn(void)
{
    if (xatm_fault_arm("tm.log_write:torn", NULL, 0)) _exit(2);
    _exit(xatm_fault_io_hit("tm.log_write") == XATM_FAULT_TORN ? 0 : 3);
}

static void child_io_point_as_step(void)
{
    if (xatm_fault_arm("tm.log_write:torn", NULL, 0)) _exit(2);
    xatm_fault_hit("tm.log_write");
    _exit(0);
}

static void child_step_point_as_io(void)
{
    if (xatm_fault_arm("tm.after_begin", NULL, 0)) _exit(2);
    (void)xatm_fault_io_hit("tm.after_begin");
    _exit(0);
}

static void test_firing(void)
{
    struct child c;
    bool stopped = false;

    run_child(child_exit, &c, false, NULL);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 99);
    CHECK_CONTAINS(c.err_text, "xatm fault: ap.after_prepare hit 1: exit");

    run_child(child_kill, &c, false, NULL);
    CHECK(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGKILL);
    CHECK_CONTAINS(c.err_text, "xatm fault: tm.after_commit_force hit 1: kill");

    run_child(child_nth_not_reached, &c, false, NULL);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 7);
    CHECK_STR(c.err_text, "");

    run_child(child_nth_reached, &c, false, NULL);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 99);
    CHECK_CONTAINS(c.err_text, "tm.recovery_between_branches hit 3: exit");

    run_child(child_stop, &c, true, &stopped);
    CHECK(stopped);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 5);
    CHECK_CONTAINS(c.err_text, "ap.between_commits hit 1: stop");

    run_child(child_unarmed, &c, false, NULL);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK_STR(c.err_text, "");

    run_child(child_env, &c, false, NULL);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 99);
    CHECK_CONTAINS(c.err_text, "ap.after_vote_sent hit 2: exit");

    run_child(child_bad_rearm_keeps_old, &c, false, NULL);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 99);

    run_child(child_io_enospc, &c, false, NULL);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK_CONTAINS(c.err_text, "xatm fault: tm.log_write hit 3: enospc");

    run_child(child_io_torn, &c, false, NULL);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK_CONTAINS(c.err_text, "xatm fault: tm.log_write hit 1: torn");

    run_child(child_io_point_as_step, &c, false, NULL);
    CHECK(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT);
    CHECK_CONTAINS(c.err_text, "io point reached through xatm_fault_hit");

    run_child(child_step_point_as_io, &c, false, NULL);
    CHECK(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT);
    CHECK_CONTAINS(c.err_text, "not an io point");

    run_child(child_partition, &c, false, NULL);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK_CONTAINS(c.err_text, "xatm fault: tm.after_precommit_sent hit 2: partition");

    run_child(child_cut_point_other_action, &c, false, NULL);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 99);
    CHECK_CONTAINS(c.err_text, "tm.after_precommit_sent hit 1: exit");

    run_child(child_cut_unarmed, &c, false, NULL);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK_STR(c.err_text, "");

    run_child(child_typo_at_call_site, &c, false, NULL);
    CHECK(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT);
    CHECK_CONTAINS(c.err_text, "ap.after_begn");
    CHECK_CONTAINS(c.err_text, "not in the fault point table");
}

int main(void)
{
    test_table();
    test_parse();
    test_firing();
    return t_finish("fault");
}
