/*
 * tmproc.h — test helpers that run the real programs: start and stop xatmd (optionally
 * with a fault point armed), run a child program with a given environment, and query the
 * throwaway servers with plain SQL (their own connections, never libxatm's), so that
 * integration tests check outcomes exactly as an operator would.
 *
 * Invariant: every process started here is waited for; t_xatmd_stop() never leaves a
 * daemon behind, and a test that fails to start xatmd reports its log.
 */
#ifndef XATM_TMPROC_H
#define XATM_TMPROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* A running (or dead) xatmd. */
typedef struct t_xatmd {
    pid_t pid;        /* 0 when not running */
    char config[512]; /* config path */
    char log[600];    /* its stderr, appended across restarts */
} t_xatmd;

/* Starts xatmd -c config with XATM_FAULT=fault (NULL: none) and waits up to 60 s for its
 * "xatmd: ready" line. Returns 0, or -1 (the log is printed) if it died or timed out. */
int t_xatmd_start(t_xatmd *d, const char *config, const char *fault);
/* SIGTERM and wait; returns the exit status as waitpid gives it. */
int t_xatmd_stop(t_xatmd *d);
/* Waits up to timeout_ms for the daemon to exit by itself; true when it was killed by
 * SIGKILL (what an armed fault point does). */
bool t_xatmd_wait_killed(t_xatmd *d, int timeout_ms);
/* Counts occurrences of text in the daemon's log so far. */
int t_xatmd_log_count(const t_xatmd *d, const char *text);
/* Polls (every 50 ms) up to timeout_ms for text in the daemon's log; true once it is there. */
bool t_xatmd_wait_log(const t_xatmd *d, const char *text, int timeout_ms);

/* Runs argv with extra environment entries ("NAME=value", NULL-terminated; may be NULL),
 * waits, returns the waitpid status. stdout/stderr go to out_path if not NULL. */
int t_run(char *const argv[], char *const extra_env[], const char *out_path);

/* scripts/servers.sh ACTION RM (e.g. "kill" "my", "restart" "my") on the test servers
 * (XATM_TEST_SERVERS_DIR); its output goes to out_path. 0 on success, -1 otherwise. */
int t_servers_sh(const char *action, const char *rm, const char *out_path);

/* Same, in the background: returns the child's pid (or -1). */
pid_t t_spawn(char *const argv[], char *const extra_env[], const char *out_path);
/* Waits up to timeout_ms for child pid to stop (SIGSTOP, e.g. a fault point's "stop"):
 * true when it did. */
bool t_wait_stopped(pid_t pid, int timeout_ms);
/* Waits up to timeout_ms for child pid to exit; true and *status (waitpid's) when it did. */
bool t_wait_exit(pid_t pid, int timeout_ms, int *status);

/* Plain-SQL checks against the test servers (XATM_TEST_* variables). Each returns the
 * first column of the first row as an integer, or -1 on error (the error is printed). */
long long t_pg_scalar(const char *sql);
long long t_my_scalar(const char *sql);
/* Runs a statement; 0 or -1 (printed). */
int t_pg_exec(const char *sql);
int t_my_exec(const char *sql);
/* Prepared branches left by TM `tm_id` on each server. */
long long t_pg_prepared(const char *tm_id);
long long t_my_prepared(const char *tm_id);
/* Polls until both servers hold no prepared branch of tm_id, up to timeout_ms; returns the
 * milliseconds it took, or -1 on timeout. */
long long t_wait_no_prepared(const char *tm_id, int timeout_ms);

#endif
