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
 */
#ifndef XATM_FAULT_H
#define XATM_FAULT_H

/* Reads XATM_FAULT. 0, or XATM_EINVAL with a message in err (unknown point, bad syntax). */
int xatm_fault_init(char *err, unsigned long errlen);

/* Marks that execution reached `point`; fires the armed action when it matches. */
void xatm_fault_hit(const char *point);

/* NULL-terminated list of every known point name (for docs and tests). */
const char *const *xatm_fault_points(void);

#endif
