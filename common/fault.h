/*
 * fault.h — named fault points: places in xatmd and libxatm where a test can make the
 * process die (or stop) exactly between two protocol steps. Inert unless armed.
 *
 * Arming: the environment variable XATM_FAULT, read once by xatm_fault_init():
 *
 *     XATM_FAULT=<point>[@<n>][:<action>]
 *
 *   point   a name from the table in fault.c (e.g. "tm.after_commit_force")
 *   n       trigger on the n-th time the point is reached (default 1)
 *   action  at a step point: "kill" (default: raise SIGKILL, like kill -9), "stop" (raise
 *           SIGSTOP) or "exit" (_exit(99) without cleanup); at tm.after_precommit_sent also
 *           "partition": xatmd cuts the connection it just sent PreCommit on, both ends
 *           staying alive (it no longer reads from or writes to it; its input is discarded,
 *           its fd stays open and is never closed by xatmd until shutdown; every other
 *           connection is served normally), for the 3PC partition trial;
 *           at an io point: "enospc" (that I/O call and every later one fails with ENOSPC,
 *           as on a full disk) or "torn" (that write stores only a prefix of its buffer,
 *           then the process is killed); an io point has no default action.
 *
 * Two kinds of point. A step point sits between two protocol steps and the process calls
 * xatm_fault_hit() there; firing acts at once. An io point sits inside a file layer (for
 * now "tm.log_write": every write of xatmd's decision log, see tm/faultio.h): the layer
 * calls xatm_fault_io_hit() for each operation and carries out the action itself, because
 * only it knows the buffer and the file. enospc and torn are refused at a step point, kill,
 * stop and exit at an io point (tm.before_log_write is the step point just before a
 * flush's write).
 *
 * An unknown point name is an error at init (a typo must not make a test pass silently).
 * Invariants: when XATM_FAULT is unset, xatm_fault_hit() is one predictable branch and
 * never has effects; the state is per process (one armed point), set once before threads.
 *
 * A point that may take "partition" is reached through xatm_fault_hit_cut(), which says
 * whether it fired; the caller carries it out. "partition" is refused at any other point.
 *
 * Details: n is canonical decimal 1..1000000000; only the n-th hit fires (later hits pass).
 * Hits are counted atomically, so the point may be reached from several threads. Firing
 * writes one line "xatm fault: <point> hit <n>: <action>" to stderr with write(2) (the
 * one place library code prints: a test needs to see that its fault fired). When armed,
 * hitting a name that is not in the table aborts (a typo at a call site).
 */
#ifndef XATM_FAULT_H
#define XATM_FAULT_H

#include <stdbool.h>

/* Reads XATM_FAULT. 0, or XATM_EINVAL with a message in err (unknown point, bad syntax).
 * Unset or empty disarms. err may be NULL. May be called again (re-arms, counter reset). */
int xatm_fault_init(char *err, unsigned long errlen);

/* What an armed point does when it fires (the order is the spelling table's in fault.c). */
enum xatm_fault_action {
    XATM_FAULT_KILL = 0, /* raise(SIGKILL): like kill -9 */
    XATM_FAULT_STOP,     /* raise(SIGSTOP): the test resumes it with SIGCONT */
    XATM_FAULT_EXIT,     /* _exit(99): no atexit handlers, no buffers flushed */
    XATM_FAULT_ENOSPC,   /* io points: the operation and all later ones fail with ENOSPC */
    XATM_FAULT_TORN,     /* io points: the write stores a prefix only, then SIGKILL */
    XATM_FAULT_PARTITION, /* tm.after_precommit_sent only: the caller cuts the connection
                             (xatm_fault_hit_cut returns true) */
};

/* Arms from a spec in the XATM_FAULT syntax (NULL or "" disarms); what init does with the
 * variable's value. On error the previous arming is left as it was. */
int xatm_fault_arm(const char *spec, char *err, unsigned long errlen);

/* Marks that execution reached step point `point`; fires the armed action when it
 * matches. */
void xatm_fault_hit(const char *point);

/* xatm_fault_hit() for a point that may take the action partition: true when that action
 * fired on this hit (the fault line is written; the caller cuts its connection). Any
 * other armed action acts as in xatm_fault_hit(). */
bool xatm_fault_hit_cut(const char *point);

/* Marks one operation at io point `point`. On the armed hit it writes the "xatm fault:"
 * line and returns the action (XATM_FAULT_ENOSPC or XATM_FAULT_TORN) for the caller to
 * carry out; otherwise -1. Counted like xatm_fault_hit (only the n-th hit fires). */
int xatm_fault_io_hit(const char *point);

/* The action armed at `point`, or -1 when `point` is not the armed point. */
int xatm_fault_armed_action(const char *point);

/* true when `name` is an io point of the table. */
bool xatm_fault_is_io_point(const char *name);

/* NULL-terminated list of every known point name (for docs and tests). */
const char *const *xatm_fault_points(void);

#endif
