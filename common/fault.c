/*
 * fault.c — the named fault points of fault.h: the table of every point, the XATM_FAULT
 * parser, and the armed state.
 *
 * The armed state below is the one piece of per-process mutable state xatm allows: it is
 * written only by xatm_fault_arm()/xatm_fault_init() before threads start, and read by
 * xatm_fault_hit(); the hit counter is atomic because points are reached from several
 * threads (the TM's event loop and recovery thread, an AP's handles).
 *
 * To add a point: add one line to fault_point_names (with a comment saying exactly where
 * it sits) and call xatm_fault_hit("<name>") there. Names are "<side>.<step>". An io point
 * (fault.h) is also listed in fault_io_points and is reached through xatm_fault_io_hit()
 * by the file layer that carries out its actions.
 */
#include "fault.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xatm.h"

/* Every known point, NULL-terminated. */
static const char *const fault_point_names[] = {
    /* xatmd */
    "tm.after_begin",                /* BEGIN accepted and gtrid assigned, BEGIN_OK not sent */
    "tm.after_enlist",               /* ENLIST recorded */
    "tm.before_commit_force",        /* COMMIT appended to the log, before the flush */
    "tm.after_commit_force",         /* the flush returned, before DECISION is sent */
    "tm.after_decision_sent",        /* DECISION written to the AP's socket */
    "tm.before_end",                 /* all branches acknowledged, END not yet appended */
    "tm.recovery_before_commit",     /* recovery decided to commit a branch, call not made */
    "tm.recovery_between_branches",  /* recovery's phase-2 calls of one round (a batch of
                                        transactions, every branch in flight at once) have
                                        all answered, before their results are recorded */
    "tm.recovery_after_commit",      /* recovery committed a branch, before it records that */
    "tm.recovery_before_rollback",   /* recovery decided to roll back a branch, call not made */
    "tm.before_precommit_force",     /* 3PC: PRECOMMIT appended to the log, before the flush */
    "tm.after_precommit_force",      /* 3PC: PRECOMMIT flushed, before PreCommit is sent */
    "tm.after_precommit_sent",       /* 3PC: DECISION precommit written to the AP's socket; the
                                        only point that takes the action "partition" */
    "tm.before_abort_force",         /* 3PC: ABORT (after PRECOMMIT) appended, before the flush */
    "tm.after_abort_force",          /* 3PC: ABORT flushed, before the abort is answered and the
                                        transaction handed to recovery */
    "tm.before_log_write",           /* declog flush: records buffered, before the write */
    "tm.log_write",                  /* io point: every write of the decision log
                                        (tm/faultio.c; enospc or torn) */
    /* libxatm */
    "ap.after_begin",                /* BEGIN_OK received, xatm_begin about to return */
    "ap.after_start",                /* a branch was started on its session (before ENLIST) */
    "ap.before_prepare",             /* commit called, no branch prepared yet */
    "ap.between_prepares",           /* one branch prepared, the next not yet */
    "ap.after_prepare",              /* every branch prepared, votes not sent */
    "ap.after_vote_sent",            /* VOTE sent, DECISION not yet received */
    "ap.after_decision",             /* DECISION received, before phase 2 */
    "ap.between_commits",            /* one branch committed in phase 2, the next not yet */
    "ap.after_commits",              /* phase 2 finished on every branch, DONE not sent */
    "ap.after_cancommit_checks",     /* 3PC: every branch passed CAN_COMMIT, CANCOMMIT not sent */
    "ap.after_cancommit_sent",       /* 3PC: CANCOMMIT sent, its DECISION not yet received */
    "ap.after_precommit",            /* 3PC: DECISION precommit received, no branch prepared */
    "ap.participant_timeout",        /* 3PC: PreCommit acknowledged, DoCommit did not come
                                        (timeout or link lost); before the participant acts on
                                        tm.participant_timeout_action */
    "ap.decider.before_commit",      /* decision in a branch: every other branch prepared, the
                                        decider's commit (with its decision row) not sent */
    "ap.decider.after_commit",       /* the decider committed (the decision is commit), phase 2
                                        of the other branches not begun */
    "tm.recovery_after_resolve",     /* recovery found the decider committed (commit row), its
                                        COMMIT record not yet appended */
    NULL,
};

/* The io points among fault_point_names (fault.h: only enospc and torn arm them). */
static const char *const fault_io_points[] = {
    "tm.log_write",
    NULL,
};

/* The step points that take the action "partition" (fault.h): the caller cuts the
 * connection it just wrote to when xatm_fault_hit_cut() says so. */
static const char *const fault_partition_points[] = {
    "tm.after_precommit_sent",
    NULL,
};

/* Spelling of each enum xatm_fault_action, in enum order. */
static const char *const fault_action_names[] = {"kill", "stop", "exit", "enospc", "torn",
                                                 "partition"};
#define N_ACTIONS (sizeof fault_action_names / sizeof fault_action_names[0])

/* The armed point of this process (the one allowed piece of per-process state). */
static struct {
    bool armed;                 /* false: xatm_fault_hit returns at once */
    const char *point;          /* the armed entry of fault_point_names */
    unsigned long nth;          /* fire on this hit (1-based) */
    enum xatm_fault_action action; /* what firing does */
    atomic_ulong hits;          /* times the armed point has been reached */
} fault;

const char *const *xatm_fault_points(void)
{
    return fault_point_names;
}

/* The table entry named by s[0..len), or NULL. */
static const char *point_lookup(const char *s, size_t len)
{
    for (const char *const *p = fault_point_names; *p; p++)
        if (strlen(*p) == len && memcmp(*p, s, len) == 0) return *p;
    return NULL;
}

bool xatm_fault_is_io_point(const char *name)
{
    for (const char *const *p = fault_io_points; name && *p; p++)
        if (strcmp(*p, name) == 0) return true;
    return false;
}

static bool is_partition_point(const char *name)
{
    for (const char *const *p = fault_partition_points; name && *p; p++)
        if (strcmp(*p, name) == 0) return true;
    return false;
}

static int arm_error(char *err, unsigned long errlen, const char *what, const char *spec)
{
    if (err && errlen) snprintf(err, errlen, "XATM_FAULT=\"%s\": %s", spec, what);
    return XATM_EINVAL;
}

int xatm_fault_arm(const char *spec, char *err, unsigned long errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!spec || !*spec) {
        fault.armed = false;
        fault.point = NULL;
        return 0;
    }

    size_t name_len = strcspn(spec, "@:");
    const char *point = point_lookup(spec, name_len);
    if (!point)
        return arm_error(err, errlen,
                         "unknown fault point (see the table in common/fault.c)", spec);

    const char *p = spec + name_len;
    unsigned long nth = 1;
    if (*p == '@') {
        p++;
        if (*p < '1' || *p > '9')
            return arm_error(err, errlen, "count after '@' must be a number >= 1", spec);
        nth = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            nth = nth * 10 + (unsigned long)(*p - '0');
            if (nth > 1000000000ul)
                return arm_error(err, errlen, "count after '@' is above 1000000000", spec);
        }
    }

    bool io = xatm_fault_is_io_point(point);
    enum xatm_fault_action action = XATM_FAULT_KILL;
    bool explicit_action = false;
    if (*p == ':') {
        p++;
        size_t i = 0;
        while (i < N_ACTIONS && strcmp(p, fault_action_names[i]) != 0) i++;
        if (i == N_ACTIONS)
            return arm_error(err, errlen,
                             "action must be kill, stop, exit, enospc, torn or partition", spec);
        action = (enum xatm_fault_action)i;
        explicit_action = true;
        p += strlen(p);
    }
    if (*p != '\0')
        return arm_error(err, errlen,
                         "expected <point>[@<n>][:kill|stop|exit|enospc|torn|partition]", spec);
    bool io_action = action == XATM_FAULT_ENOSPC || action == XATM_FAULT_TORN;
    if (io && !io_action)
        return arm_error(err, errlen,
                         explicit_action
                             ? "an io point takes the action enospc or torn (to kill just "
                               "before a log write, arm tm.before_log_write)"
                             : "an io point needs an action: :enospc or :torn",
                         spec);
    if (!io && io_action)
        return arm_error(err, errlen,
                         "enospc and torn are actions of io points only (tm.log_write)", spec);
    if (action == XATM_FAULT_PARTITION && !is_partition_point(point))
        return arm_error(err, errlen,
                         "partition is an action of tm.after_precommit_sent only", spec);

    fault.point = point;
    fault.nth = nth;
    fault.action = action;
    atomic_store(&fault.hits, 0);
    fault.armed = true;
    return 0;
}

int xatm_fault_init(char *err, unsigned long errlen)
{
    return xatm_fault_arm(getenv("XATM_FAULT"), err, errlen);
}

/* Writes one line to stderr without stdio (its buffers may be in any state). */
static void say(const char *point, unsigned long n, const char *what)
{
    char line[160];
    int len = snprintf(line, sizeof line, "xatm fault: %s hit %lu: %s\n", point, n, what);
    if (len < 0) return;
    if ((size_t)len >= sizeof line) len = (int)sizeof line - 1;
    ssize_t w = write(STDERR_FILENO, line, (size_t)len);
    (void)w; /* nothing useful to do when stderr is gone */
}

/* The armed-only path, kept out of line so the inert path stays one branch. Returns true
 * when the action partition fired (the caller carries it out). */
static bool __attribute__((noinline)) fault_hit_armed(const char *point)
{
    if (!point || !point_lookup(point, strlen(point))) {
        say(point ? point : "(null)", 0, "not in the fault point table: fix the call site");
        abort();
    }
    if (strcmp(point, fault.point) != 0) return false;
    if (xatm_fault_is_io_point(point)) {
        say(point, 0, "an io point reached through xatm_fault_hit: fix the call site");
        abort();
    }
    unsigned long n = atomic_fetch_add(&fault.hits, 1) + 1;
    if (n != fault.nth) return false;

    say(point, n, fault_action_names[fault.action]);
    switch (fault.action) {
    case XATM_FAULT_KILL:
        raise(SIGKILL);
        _exit(99); /* not reached */
    case XATM_FAULT_STOP:
        raise(SIGSTOP);
        return false;
    case XATM_FAULT_EXIT:
        _exit(99);
    case XATM_FAULT_PARTITION: /* armed only at a partition point: the caller cuts */
        return true;
    case XATM_FAULT_ENOSPC: /* refused at a step point by xatm_fault_arm */
    case XATM_FAULT_TORN:
        return false;
    }
    return false;
}

void xatm_fault_hit(const char *point)
{
    if (__builtin_expect(!fault.armed, 1)) return;
    (void)fault_hit_armed(point);
}

bool xatm_fault_hit_cut(const char *point)
{
    if (__builtin_expect(!fault.armed, 1)) return false;
    return fault_hit_armed(point);
}

int xatm_fault_io_hit(const char *point)
{
    if (__builtin_expect(!fault.armed, 1)) return -1;
    if (!point || !xatm_fault_is_io_point(point)) {
        say(point ? point : "(null)", 0, "not an io point of the fault table: fix the call site");
        abort();
    }
    if (strcmp(point, fault.point) != 0) return -1;
    unsigned long n = atomic_fetch_add(&fault.hits, 1) + 1;
    if (n != fault.nth) return -1;
    say(point, n, fault_action_names[fault.action]);
    return (int)fault.action;
}

int xatm_fault_armed_action(const char *point)
{
    if (!fault.armed || !point || strcmp(point, fault.point) != 0) return -1;
    return (int)fault.action;
}
