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
 *   action  "kill" (default: raise SIGKILL, like kill -9), "stop" (raise SIGSTOP)
 *           or "exit" (_exit(99) without cleanup)
 *
 * An unknown point name is an error at init (a typo must not make a test pass silently).
 * Invariants: when XATM_FAULT is unset, xatm_fault_hit() is one predictable branch and
 * never has effects; the state is per process (one armed point), set once before threads.
 *
 * Details: n is canonical decimal 1..1000000000; only the n-th hit fires (later hits pass).
 * Hits are counted atomically, so the point may be reached from several threads. Firing
 * writes one line "xatm fault: <point> hit <n>: <action>" to stderr with write(2) (the
 * one place library code prints: a test needs to see that its fault fired). When armed,
 * hitting a name that is not in the table aborts (a typo at a call site).
 */
#ifndef XATM_FAULT_H
#define XATM_FAULT_H

/* Reads XATM_FAULT. 0, or XATM_EINVAL with a message in err (unknown point, bad syntax).
 * Unset or empty disarms. err may be NULL. May be called again (re-arms, counter reset). */
int xatm_fault_init(char *err, unsigned long errlen);

/* Arms from a spec in the XATM_FAULT syntax (NULL or "" disarms); what init does with the
 * variable's value. On error the previous arming is left as it was. */
int xatm_fault_arm(const char *spec, char *err, unsigned long errlen);

/* Marks that execution reached `point`; fires the armed action when it matches. */
void xatm_fault_hit(const char *point);

/* NULL-terminated list of every known point name (for docs and tests). */
const char *const *xatm_fault_points(void);

#endif
