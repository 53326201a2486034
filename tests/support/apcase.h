/*
 * apcase.h — what the end-to-end tests (tm_2pc, tm_3pc, tm_decider) do with the AP helper
 * (xatm-test-ap, tests/integration/ap_helper.c) and with the row it writes: run or spawn it
 * with a fault point armed, read what it printed, count its row (table xatm_it, column id)
 * on both servers with plain SQL, and wait until recovery leaves no prepared branch.
 *
 * State: one work directory (the AP's output files go there as ap-<id>.out) and one TM id
 * per test process, set by t_ap_init() before any other call.
 */
#ifndef XATM_APCASE_H
#define XATM_APCASE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The test's work directory and xatmd's tm id (both copied). */
void t_ap_init(const char *dir, const char *tm_id);

/* Spawns the AP helper (config cfg, row id, action) with XATM_FAULT=fault (NULL: none);
 * its output goes to the file it names in outfile. Its pid, or -1. */
pid_t t_ap_spawn(const char *cfg, const char *id, const char *action, const char *fault,
                 char *outfile, size_t outlen);
/* The same with XATM_TEST_AP_TIMEOUT_MS=timeout_ms (the transaction timeout the AP asks
 * for at BEGIN; NULL: its config's). */
pid_t t_ap_spawn_timed(const char *cfg, const char *id, const char *action, const char *fault,
                       const char *timeout_ms, char *outfile, size_t outlen);
/* Runs it to its end (at most 120 s, then killed): its exit code or 128 + the signal that
 * ended it (-1 when it could not run or timed out); what it printed in out. */
int t_ap_run(const char *cfg, const char *id, const char *action, const char *fault, char *out,
             size_t outlen);
/* Spawns the AP (t_ap_spawn_timed) with a fault point whose action is "stop", CHECKs that it
 * stops there within 20 s and has printed its gtrid (into gtrid, size bytes); its pid. */
pid_t t_ap_stopped(const char *cfg, const char *id, const char *action, const char *stop_fault,
                   const char *timeout_ms, char *outfile, size_t outlen, char *gtrid,
                   size_t size);
/* SIGCONT to a stopped AP, CHECKs that it ends within 30 s; what it printed in out. */
void t_ap_resume(pid_t ap, const char *outfile, char *out, size_t outlen);

/* The gtrid an AP printed ("gtrid=..."), "" if none. */
void t_ap_gtrid(const char *out, char *gtrid, size_t size);
/* The same, read from the output file of an AP (running or not). */
void t_ap_gtrid_file(const char *outfile, char *gtrid, size_t size);

/* The whole of a (small) file into buf, "" when it cannot be read. */
void t_read_file(const char *path, char *buf, size_t size);
/* Writes a copy of config file `base` as <dir>/<name> with the text `from` replaced by
 * `to`; its path (caller frees). A `from` that is not in the file ends the test (exit 1). */
char *t_config_variant(const char *base, const char *name, const char *from, const char *to);

/* Rows with this id in xatm_it on PostgreSQL (pg) or MariaDB (-1 on error). */
long long t_rows(bool pg, const char *id);
/* CHECKs that both servers hold n rows with this id. */
void t_expect_rows(const char *id, long long n);
/* CHECKs that both sides agree (0 or 1 each); returns the count. */
long long t_expect_consistent(const char *id);
/* CHECKs that no prepared branch of the TM is left within timeout_ms; prints how long. */
void t_expect_converged(int timeout_ms);

#endif
