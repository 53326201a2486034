/*
 * xatm-bench.c — what xatm costs, measured against the two baselines every XA transaction
 * manager is judged by, in the same run, on the same servers (issue 5, docs/performance.md).
 *
 *   xatm-bench -c CONFIG [--pg RM,...] [--my RM,...] [--branches K] [--rows N]
 *              [--clients N] [--duration S] [--warmup S] [--protocol 2pc|3pc]
 *              (--mode xatm|bare-xa|local | --compare [--modes LIST] [--rounds R])
 *              [--json] [--progress] [--xatmd-pid PID] [--xatmctl PATH] [--no-setup]
 *              [--decider RM]
 *   xatm-bench -c CONFIG --recovery N --xatmd PATH [--recovery-abort-percent P] [--json]
 *   xatm-bench -c CONFIG --rss-live N [--xatmd-pid PID] [--json]
 *
 * The workload is a transfer: K branches (default 2) alternate between the PostgreSQL RMs
 * (--pg, default "pg") and the MariaDB RMs (--my, default "my"); each RM has its own table
 * xbench_<rm>(id INT PRIMARY KEY, balance BIGINT), --rows rows of balance 1000. One global
 * transaction picks a random amount and a random row per branch and runs, on branch k,
 *     UPDATE xbench_<rm> SET balance = balance + <±amount> WHERE id = <row>
 * with the sign alternating, so every PostgreSQL debit has its MariaDB credit (or the other
 * way round) and the sum over all tables never changes. Branches are always worked in the
 * same order, so two transactions can wait for each other's rows but never deadlock.
 *
 * Modes (one thread per client; each client has its own sessions, opened before the clock
 * starts and kept for the whole round):
 *   xatm     through xatmd and libxatm: xatm_begin, xatm_exec on every branch, xatm_commit
 *            (one handle per client). With tm.decision_rm in the config (--decider RM
 *            checks it is RM), libxatm decides in that RM's branch (docs/protocols.md,
 *            "Decision in a branch"): the JSON's "decider" names it.
 *   bare-xa  the same XA statements issued by hand, no TM and no log. PostgreSQL: BEGIN,
 *            UPDATE, PREPARE TRANSACTION, COMMIT PREPARED; MariaDB: XA START, UPDATE,
 *            XA END, XA PREPARE, XA COMMIT. Like libxatm, the statements of phase 1 (all
 *            branches' PREPARE; MariaDB's XA END + XA PREPARE) and then of phase 2 run in
 *            parallel across the branches from the one client thread, with libpq's
 *            asynchronous calls (PQsendQuery/PQconsumeInput) and Connector/C's non-blocking
 *            API (mysql_real_query_start/_cont) under one poll(2); the UPDATEs run one after
 *            the other, as the application's statements do in xatm mode.
 *   local    the same UPDATEs, each committed on its own (autocommit), one after the other:
 *            not atomic, the floor of the work itself.
 *   bare-lr  (not in --compare's default list) the protocol of "Beyond bare XA" by hand:
 *            as bare-xa, but branch 0 (PostgreSQL) is not prepared: once every other
 *            branch is prepared, "INSERT INTO xbench_decisions VALUES ('<gtrid>'); COMMIT"
 *            commits it in one phase with the decision row, then the others are committed;
 *            the rows are deleted in batches of 64 per client. The floor of that protocol.
 * --compare runs the modes interleaved (--rounds rounds; the order rotates every round),
 * checks the totals after every round (and stops with exit 1 if money appeared or
 * vanished), and reports per mode: throughput, p50/p99/p99.9 latency, xatmd's CPU per
 * transaction (utime+stime of all its threads, from /proc/<pid>/task/<tid>/schedstat
 * when the kernel has it, else /proc/<pid>/stat), this process's CPU per transaction
 * (the application side: libxatm or the hand-written XA, plus the client libraries), the
 * whole machine's busy CPU per transaction (/proc/stat; includes the servers, and other
 * load on the machine), and the ratios xatm/bare-xa and xatm/local. A transaction counts
 * when it completes inside the measured window (after --warmup).
 *
 * --recovery N measures xatmd's recovery from restart to zero in-doubt branches. It
 * starts xatmd (--xatmd PATH) once for a genuine boot, kills it (SIGKILL), and then builds
 * exactly what a crash after N commit decisions leaves behind: N global transactions of
 * the incarnation that was killed, each with a PostgreSQL and a MariaDB branch prepared
 * through xatm's own RM adapters (so gids, xids and MariaDB session references are the
 * ones libxatm would have used; the MariaDB sessions are closed, as an AP's are when it
 * dies), and their COMMIT records appended and forced with xatm's own decision-log code
 * (tm/declog.c), the way xatmd forces them. --recovery-abort-percent P leaves P % of them
 * without a COMMIT record (presumed abort; xatm rolls back such MariaDB branches of an
 * earlier incarnation only after tm.transaction_timeout, docs/architecture.md). Then it
 * starts xatmd and measures start -> "ready" and start -> no prepared branch of that
 * incarnation left on either server, checks the totals, and checks every transaction's
 * own rows: committed on both servers when it had a COMMIT record, untouched on both when
 * it had none. --recovery-kill FAULT first starts xatmd with XATM_FAULT=FAULT (e.g.
 * tm.recovery_before_commit@40: killed inside a phase-2 batch), requires that the fault
 * fired and killed it, then measures the restart that follows as above.
 *
 * --rss-live N opens N libxatm handles, begins a global transaction on each (N live
 * transactions at xatmd, no branch enlisted) and reports xatmd's resident memory.
 *
 * Exit status: 0 done; 1 totals not conserved, recovery incomplete, or a mode could not run
 * a single transaction; 2 usage or set-up error.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <mysql.h>
#include <xatm.h>

#include "config.h"
#include "declog.h"
#include "rm.h"
#include "xid.h"

#define MAX_BRANCHES 16
#define MAX_ROUNDS 64
#define MAX_CLIENTS 1024
#define BALANCE 1000

enum mode { MODE_LOCAL = 0, MODE_BARE, MODE_XATM, MODE_BARE_LR, N_MODES };
static const char *const mode_names[N_MODES] = {"local", "bare-xa", "xatm", "bare-lr"};
static const char *const mode_keys[N_MODES] = {"local", "bare_xa", "xatm", "bare_lr"};
#define DECISION_TABLE "xbench_decisions" /* bare-lr's decision rows (on branch 0's RM) */
#define LR_GC_EVERY 64                      /* bare-lr deletes its rows in batches of this */

enum phase { PHASE_WARMUP = 0, PHASE_MEASURE, PHASE_STOP };

/* The command line. */
struct options {
    const char *config;      /* -c */
    const char *pg_list;     /* --pg: comma-separated PostgreSQL RM names */
    const char *my_list;     /* --my: comma-separated MariaDB RM names */
    int branches;            /* --branches K (even, 2..MAX_BRANCHES) */
    long rows;               /* --rows per table */
    int clients;             /* --clients */
    double duration;         /* --duration seconds measured per round and mode */
    double warmup;           /* --warmup seconds before each measured window */
    int rounds;              /* --rounds (compare) */
    int protocol;            /* 2 or 3 */
    bool compare;            /* --compare */
    bool modes[N_MODES];     /* which modes run */
    bool json;               /* --json */
    bool progress;           /* --progress, or stderr is a tty */
    bool progress_tty;       /* the progress line rewrites itself */
    bool setup;              /* false with --no-setup */
    long xatmd_pid;          /* --xatmd-pid, 0 = ask xatmctl */
    const char *xatmctl;     /* --xatmctl */
    const char *xatmd;       /* --xatmd (recovery) */
    long recovery;           /* --recovery N */
    int recovery_abort_pct;  /* --recovery-abort-percent */
    int recovery_threads;    /* --recovery-threads */
    double recovery_timeout; /* --recovery-timeout seconds */
    const char *recovery_kill; /* --recovery-kill FAULT: the first recovering xatmd's XATM_FAULT */
    long rss_live;           /* --rss-live N */
    uint64_t seed;           /* --seed */
    const char *decider;     /* --decider RM: xatm mode decides in RM's branch; the config
                                must say so (tm.decision_rm: RM), as xatmd reads it too */
};

/* One branch of the workload. */
struct branch {
    const xatm_rm_config *rm; /* its RM in the config */
    bool pg;                  /* PostgreSQL (else MariaDB) */
    char table[64];           /* xbench_<rm> */
};

/* What every part of a run shares. */
struct bench {
    struct options o;
    xatm_config *cfg;
    struct branch br[MAX_BRANCHES];
    int nbr;
    pid_t xatmd_pid;          /* 0 unknown */
    unsigned nonce;           /* distinguishes this run's bare-XA ids */
    PGconn *check_pg[MAX_BRANCHES]; /* sessions for setup and the totals check */
    MYSQL *check_my[MAX_BRANCHES];
};

/* One measured round of one mode. */
struct run {
    struct bench *b;
    enum mode mode;
    atomic_int phase;          /* enum phase */
    atomic_long commits;       /* counted commits (for the progress line) */
    atomic_long aborts;
    atomic_long errors;
    atomic_int failed_clients; /* clients that could not connect or gave up */
    pthread_barrier_t ready;   /* all clients connected */
};

/* One client thread. */
struct client {
    struct run *run;
    int no;
    uint64_t rng;
    pthread_t thread;
    xatm_t *h;                      /* xatm mode */
    PGconn *pg[MAX_BRANCHES];       /* bare-xa, local */
    MYSQL *my[MAX_BRANCHES];
    uint64_t txn_no;
    int round;                      /* the round it runs in (0-based) */
    uint64_t lr_collected;          /* bare-lr: decision rows up to this txn_no deleted */
    uint32_t *lat;                  /* latencies of counted commits, microseconds */
    size_t nlat, caplat;
    long commits, aborts, errors;   /* counted (completed inside the window) */
    int consecutive_errors;
    char err[512];                  /* first error seen */
};

/* Per mode, over all rounds. */
struct mode_stats {
    long commits, aborts, errors;
    double secs;
    uint32_t *lat;
    size_t nlat, caplat;
    double round_tps[MAX_ROUNDS];
    int nrounds;
    double xatmd_cpu_s;       /* summed over rounds */
    bool cpu_known;
    double client_cpu_s;
    double machine_cpu_s;
    long xatmd_rss_kb;        /* VmRSS after the mode's rounds (max) */
    long xatmd_hwm_kb;        /* VmHWM */
};

static const char *prog = "xatm-bench";

static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    while (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
    fprintf(stderr, "%s: %s\n", prog, line);
}

/* snprintf that truncates silently: every text here is a message, SQL of known
 * shape, or a path, all far below their buffers. */
static int __attribute__((format(printf, 3, 4))) bfmt(char *buf, size_t size, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(buf, size, f, ap);
    va_end(ap);
    return n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------- a growable string */

struct sbuf {
    char *p;
    size_t len, cap;
};

static void __attribute__((format(printf, 2, 3))) sb_printf(struct sbuf *s, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(s->p ? s->p + s->len : NULL, s->p ? s->cap - s->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (s->p && s->len + (size_t)n < s->cap) {
            s->len += (size_t)n;
            return;
        }
        size_t ncap = (s->cap ? s->cap * 2 : 1024) + (size_t)n;
        char *q = realloc(s->p, ncap);
        if (!q) return;
        s->p = q;
        s->cap = ncap;
    }
}

/* ---------------------------------------------------------------- sessions */

static PGconn *pg_open(const xatm_rm_config *r, char *err, size_t errlen)
{
    char port[16];
    bfmt(port, sizeof port, "%u", (unsigned)(r->port ? r->port : 5432));
    const char *keys[] = {"host", "port", "user", "password", "dbname", "application_name",
                          NULL};
    const char *vals[] = {r->host && *r->host ? r->host : r->socket, port, r->user,
                          r->password, r->database, "xatm-bench", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        bfmt(err, errlen, "cannot connect to RM '%s' (postgresql): %s", r->name,
                 c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return NULL;
    }
    return c;
}

static MYSQL *my_open(const xatm_rm_config *r, char *err, size_t errlen)
{
    MYSQL *c = mysql_init(NULL);
    if (!c) {
        bfmt(err, errlen, "out of memory");
        return NULL;
    }
    mysql_options(c, MYSQL_OPT_NONBLOCK, 0);
    if (!mysql_real_connect(c, r->host, r->user, r->password, r->database,
                            r->port ? r->port : 3306, r->host ? NULL : r->socket, 0)) {
        bfmt(err, errlen, "cannot connect to RM '%s' (mysql): %s", r->name, mysql_error(c));
        mysql_close(c);
        return NULL;
    }
    return c;
}

/* One statement, blocking. For PostgreSQL, want_tag (may be NULL) is the command tag a
 * success must carry; *rows (may be NULL) gets the affected rows. 0 or -1 with err set. */
static int pg_run(PGconn *pg, const char *sql, const char *want_tag, long *rows, char *err,
                  size_t errlen)
{
    PGresult *r = PQexec(pg, sql);
    int st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        bfmt(err, errlen, "postgresql: %s: %s", sql, PQerrorMessage(pg));
        rc = -1;
    } else if (want_tag && strcmp(PQcmdStatus(r), want_tag) != 0) {
        bfmt(err, errlen, "postgresql: %s answered %s", sql, PQcmdStatus(r));
        rc = -1;
    } else if (rows) {
        *rows = atol(PQcmdTuples(r));
    }
    PQclear(r);
    return rc;
}

static int my_run(MYSQL *my, const char *sql, long *rows, char *err, size_t errlen)
{
    if (mysql_real_query(my, sql, (unsigned long)strlen(sql)) != 0) {
        bfmt(err, errlen, "mariadb: %s: error %u: %s", sql, mysql_errno(my), mysql_error(my));
        return -1;
    }
    if (rows) *rows = (long)mysql_affected_rows(my);
    if (mysql_field_count(my) > 0) mysql_free_result(mysql_store_result(my));
    return 0;
}

/* A query returning one integer. */
static int pg_int(PGconn *pg, const char *sql, long long *out, char *err, size_t errlen)
{
    PGresult *r = PQexec(pg, sql);
    int rc = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        *out = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        rc = 0;
    } else {
        bfmt(err, errlen, "postgresql: %s: %s", sql, PQerrorMessage(pg));
    }
    PQclear(r);
    return rc;
}

static int my_int(MYSQL *my, const char *sql, long long *out, char *err, size_t errlen)
{
    if (mysql_real_query(my, sql, (unsigned long)strlen(sql)) != 0) {
        bfmt(err, errlen, "mariadb: %s: %s", sql, mysql_error(my));
        return -1;
    }
    MYSQL_RES *res = mysql_store_result(my);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    int rc = -1;
    if (row) {
        *out = row[0] ? strtoll(row[0], NULL, 10) : 0;
        rc = 0;
    } else {
        bfmt(err, errlen, "mariadb: %s: no row", sql);
    }
    mysql_free_result(res);
    return rc;
}

/* ---------------------------------------------------------------- parallel statements */

/* A short sequence of statements on one session, run alongside others (bare-xa phase 1
 * and phase 2). */
struct astmt {
    PGconn *pg;           /* exactly one of pg / my */
    MYSQL *my;
    const char *sql[2];   /* statements, in order */
    int n;                /* how many */
    const char *want_tag; /* PostgreSQL: the tag the last one must answer, or NULL */
    int cur;              /* statement in flight */
    int my_status;        /* MariaDB: what the non-blocking call waits for */
    bool done, failed;
    char err[256];
};

static void astmt_fail(struct astmt *a, const char *what)
{
    a->failed = a->done = true;
    bfmt(a->err, sizeof a->err, "%s: %s", a->sql[a->cur], what);
}

/* Starts statement a->cur. */
static void astmt_start(struct astmt *a)
{
    if (a->pg) {
        if (!PQsendQuery(a->pg, a->sql[a->cur])) astmt_fail(a, PQerrorMessage(a->pg));
        return;
    }
    int qerr = 0;
    a->my_status = mysql_real_query_start(&qerr, a->my, a->sql[a->cur],
                                          (unsigned long)strlen(a->sql[a->cur]));
    if (a->my_status != 0) return;
    if (qerr) {
        astmt_fail(a, mysql_error(a->my));
        return;
    }
    if (++a->cur == a->n)
        a->done = true;
    else
        astmt_start(a);
}

/* Makes progress on a after its socket reported revents. */
static void astmt_step(struct astmt *a, short revents)
{
    if (a->pg) {
        if (!PQconsumeInput(a->pg)) {
            astmt_fail(a, PQerrorMessage(a->pg));
            return;
        }
        while (!PQisBusy(a->pg)) {
            PGresult *r = PQgetResult(a->pg);
            if (!r) {
                if (a->failed) {
                    a->done = true;
                    return;
                }
                if (++a->cur == a->n) {
                    a->done = true;
                    return;
                }
                astmt_start(a);
                return;
            }
            if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                bfmt(a->err, sizeof a->err, "%s: %s", a->sql[a->cur],
                         PQresultErrorMessage(r));
                a->failed = true;
            } else if (a->cur == a->n - 1 && a->want_tag &&
                       strcmp(PQcmdStatus(r), a->want_tag) != 0) {
                bfmt(a->err, sizeof a->err, "%s answered %s", a->sql[a->cur],
                         PQcmdStatus(r));
                a->failed = true;
            }
            PQclear(r);
        }
        return;
    }
    int ready = 0;
    if (revents & (POLLIN | POLLHUP | POLLERR)) ready |= MYSQL_WAIT_READ;
    if (revents & POLLOUT) ready |= MYSQL_WAIT_WRITE;
    if (revents & POLLPRI) ready |= MYSQL_WAIT_EXCEPT;
    int qerr = 0;
    a->my_status = mysql_real_query_cont(&qerr, a->my, ready);
    if (a->my_status != 0) return;
    if (qerr) {
        astmt_fail(a, mysql_error(a->my));
        return;
    }
    if (++a->cur == a->n)
        a->done = true;
    else
        astmt_start(a);
}

/* Runs every sequence concurrently; 0 when all succeeded. */
static int astmt_run(struct astmt *a, int n, double timeout_s)
{
    struct pollfd pfd[MAX_BRANCHES];
    int idx[MAX_BRANCHES];
    double deadline = now_s() + timeout_s;
    for (int i = 0; i < n; i++) {
        a[i].cur = 0;
        a[i].done = a[i].failed = false;
        a[i].err[0] = '\0';
        astmt_start(&a[i]);
    }
    for (;;) {
        int np = 0;
        for (int i = 0; i < n; i++) {
            if (a[i].done) continue;
            if (a[i].pg) {
                pfd[np].fd = PQsocket(a[i].pg);
                pfd[np].events = POLLIN;
            } else {
                pfd[np].fd = mysql_get_socket(a[i].my);
                pfd[np].events = (short)(((a[i].my_status & MYSQL_WAIT_READ) ? POLLIN : 0) |
                                         ((a[i].my_status & MYSQL_WAIT_WRITE) ? POLLOUT : 0) |
                                         ((a[i].my_status & MYSQL_WAIT_EXCEPT) ? POLLPRI : 0));
            }
            pfd[np].revents = 0;
            idx[np++] = i;
        }
        if (np == 0) break;
        double left = deadline - now_s();
        if (left <= 0) {
            for (int k = 0; k < np; k++) astmt_fail(&a[idx[k]], "timed out");
            break;
        }
        int prc = poll(pfd, (nfds_t)np, (int)(left * 1000) + 1);
        if (prc < 0 && errno != EINTR) {
            for (int k = 0; k < np; k++) astmt_fail(&a[idx[k]], strerror(errno));
            break;
        }
        for (int k = 0; k < np; k++)
            if (pfd[k].revents) astmt_step(&a[idx[k]], pfd[k].revents);
    }
    for (int i = 0; i < n; i++)
        if (a[i].failed) return -1;
    return 0;
}

/* ---------------------------------------------------------------- the transactions */

/* Amount and rows of one transfer; the SQL of branch k into sql[k]. */
static void make_updates(struct client *c, char sql[][160])
{
    struct bench *b = c->run->b;
    long amount = 1 + (long)(next_random(&c->rng) % 100);
    long dir = (next_random(&c->rng) & 1) ? 1 : -1;
    for (int k = 0; k < b->nbr; k++) {
        long row = 1 + (long)(next_random(&c->rng) % (uint64_t)b->o.rows);
        long delta = (k % 2 == 0 ? -amount : amount) * dir;
        bfmt(sql[k], 160, "UPDATE %s SET balance = balance + %ld WHERE id = %ld",
                 b->br[k].table, delta, row);
    }
}

static void client_error(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void client_error(struct client *c, const char *fmt, ...)
{
    if (c->err[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
}

/* Results of one transaction. */
enum txn_result { TXN_COMMIT, TXN_ABORT, TXN_ERROR };

static enum txn_result txn_xatm(struct client *c)
{
    struct bench *b = c->run->b;
    char sql[MAX_BRANCHES][160];
    make_updates(c, sql);
    xatm_begin_options bo = {.protocol = (enum xatm_protocol)b->o.protocol, .timeout_ms = 0};
    int rc = xatm_begin(c->h, &bo);
    if (rc) {
        client_error(c, "xatm_begin: %s: %s", xatm_errname(rc), xatm_last_error(c->h));
        return TXN_ERROR;
    }
    for (int k = 0; k < b->nbr; k++) {
        uint64_t affected = 0;
        rc = xatm_exec(c->h, b->br[k].rm->name, sql[k], &affected);
        if (rc || affected != 1) {
            if (rc) client_error(c, "xatm_exec: %s: %s", xatm_errname(rc), xatm_last_error(c->h));
            else client_error(c, "%s changed %" PRIu64 " rows", sql[k], affected);
            xatm_rollback(c->h);
            return TXN_ERROR;
        }
    }
    rc = xatm_commit(c->h);
    if (rc == 0) return TXN_COMMIT;
    if (rc == XATM_EABORTED) return TXN_ABORT;
    client_error(c, "xatm_commit: %s: %s", xatm_errname(rc), xatm_last_error(c->h));
    return TXN_ERROR;
}

/* Where a bare-XA branch stands, for the rollback after a failure. */
enum bare_state { BS_NONE, BS_ACTIVE, BS_IDLE, BS_PREPARED };

/* Deletes bare-lr's decision rows of this client's transactions after the last batch, up
 * to txn_no, in one statement (the garbage collection a TM would do after phase 2). */
static int lr_collect(struct client *c, char *err, size_t errlen)
{
    struct bench *b = c->run->b;
    struct sbuf s = {0};
    sb_printf(&s, "DELETE FROM " DECISION_TABLE " WHERE g IN (");
    for (uint64_t t = c->lr_collected + 1; t <= c->txn_no; t++)
        sb_printf(&s, "%s'b%u.%d.%d.%" PRIu64 "'", t == c->lr_collected + 1 ? "" : ",",
                  b->nonce, c->round, c->no, t);
    sb_printf(&s, ")");
    int rc = s.p ? pg_run(c->pg[0], s.p, NULL, NULL, err, errlen) : -1;
    free(s.p);
    if (rc == 0) c->lr_collected = c->txn_no;
    return rc;
}

/* bare-xa, and with lr bare-lr: the decision is a row inserted in branch 0's (PostgreSQL)
 * own transaction, which commits in one phase after every other branch is prepared and
 * before any is committed (docs/performance.md, "Beyond bare XA"). */
static enum txn_result txn_bare_mode(struct client *c, bool lr)
{
    struct bench *b = c->run->b;
    char sql[MAX_BRANCHES][160], xid[MAX_BRANCHES][96];
    char p1a[MAX_BRANCHES][128], p1b[MAX_BRANCHES][128], p2[MAX_BRANCHES][128];
    enum bare_state st[MAX_BRANCHES] = {BS_NONE};
    struct astmt a[MAX_BRANCHES];
    char err[512];
    int n = b->nbr;
    int first = lr ? 1 : 0; /* branches from here on go through the two phases */
    make_updates(c, sql);
    c->txn_no++;

    for (int k = 0; k < n; k++) {
        long rows = 0;
        if (b->br[k].pg) {
            /* a gid of the same shape and length as xatm's */
            bfmt(xid[k], sizeof xid[k], "xbench:%08x:b%u.%d.%" PRIu64 ":%s", b->nonce,
                     b->nonce, c->no, c->txn_no, b->br[k].rm->name);
            if (pg_run(c->pg[k], "BEGIN", NULL, NULL, err, sizeof err)) goto fail;
            st[k] = BS_ACTIVE;
            if (pg_run(c->pg[k], sql[k], NULL, &rows, err, sizeof err)) goto fail;
            bfmt(p1a[k], sizeof p1a[k], "PREPARE TRANSACTION '%s'", xid[k]);
            bfmt(p2[k], sizeof p2[k], "COMMIT PREPARED '%s'", xid[k]);
            a[k] = (struct astmt){.pg = c->pg[k], .sql = {p1a[k]}, .n = 1,
                                  .want_tag = "PREPARE TRANSACTION"};
        } else {
            bfmt(xid[k], sizeof xid[k], "'b%u.%d.%" PRIu64 "','%s',%u", b->nonce, c->no,
                     c->txn_no, b->br[k].rm->name, 0x78624231u);
            char start[128];
            bfmt(start, sizeof start, "XA START %s", xid[k]);
            if (my_run(c->my[k], start, NULL, err, sizeof err)) goto fail;
            st[k] = BS_ACTIVE;
            if (my_run(c->my[k], sql[k], &rows, err, sizeof err)) goto fail;
            bfmt(p1a[k], sizeof p1a[k], "XA END %s", xid[k]);
            bfmt(p1b[k], sizeof p1b[k], "XA PREPARE %s", xid[k]);
            bfmt(p2[k], sizeof p2[k], "XA COMMIT %s", xid[k]);
            a[k] = (struct astmt){.my = c->my[k], .sql = {p1a[k], p1b[k]}, .n = 2};
        }
        if (rows != 1) {
            bfmt(err, sizeof err, "%s changed %ld rows", sql[k], rows);
            goto fail;
        }
    }
    /* phase 1, in parallel */
    if (astmt_run(a + first, n - first, 60) != 0) {
        for (int k = first; k < n; k++) {
            if (a[k].failed) bfmt(err, sizeof err, "phase 1: %s", a[k].err);
            /* a PG branch whose PREPARE failed is gone; a prepared one needs ROLLBACK PREPARED */
            if (b->br[k].pg) st[k] = a[k].failed ? BS_ACTIVE : BS_PREPARED;
            else st[k] = a[k].failed ? (a[k].cur == 0 ? BS_ACTIVE : BS_IDLE) : BS_PREPARED;
        }
        goto fail;
    }
    for (int k = first; k < n; k++) st[k] = BS_PREPARED;
    if (lr) {
        /* the decision: its row and branch 0's work commit together, in one phase */
        char q[256];
        bfmt(q, sizeof q, "INSERT INTO " DECISION_TABLE " VALUES ('b%u.%d.%d.%" PRIu64 "'); COMMIT",
             b->nonce, c->round, c->no, c->txn_no);
        if (pg_run(c->pg[0], q, "COMMIT", NULL, err, sizeof err)) {
            st[0] = BS_NONE; /* rolled back by the failed COMMIT */
            goto fail;
        }
    }
    /* phase 2, in parallel */
    for (int k = first; k < n; k++) {
        a[k] = (struct astmt){.pg = b->br[k].pg ? c->pg[k] : NULL,
                              .my = b->br[k].pg ? NULL : c->my[k], .sql = {p2[k]}, .n = 1};
    }
    if (astmt_run(a + first, n - first, 60) != 0) {
        for (int k = first; k < n; k++)
            if (a[k].failed) client_error(c, "phase 2: %s", a[k].err);
        return TXN_ERROR; /* committed or not: the totals check will tell */
    }
    /* rows go only once every branch of theirs is committed (a deleted row would let a
     * recovery's abort row win for a transaction still in doubt) */
    if (lr && c->txn_no - c->lr_collected >= LR_GC_EVERY && lr_collect(c, err, sizeof err))
        client_error(c, "bare-lr: deleting decision rows: %s", err); /* committed all the same */
    return TXN_COMMIT;

fail:
    client_error(c, "%s: %s", lr ? "bare-lr" : "bare-xa", err);
    for (int k = 0; k < n; k++) {
        char q[160], e2[256];
        if (st[k] == BS_NONE) continue;
        if (b->br[k].pg) {
            if (st[k] == BS_PREPARED) bfmt(q, sizeof q, "ROLLBACK PREPARED '%s'", xid[k]);
            else bfmt(q, sizeof q, "ROLLBACK");
            (void)pg_run(c->pg[k], q, NULL, NULL, e2, sizeof e2);
        } else {
            if (st[k] == BS_ACTIVE) {
                bfmt(q, sizeof q, "XA END %s", xid[k]);
                (void)my_run(c->my[k], q, NULL, e2, sizeof e2);
            }
            bfmt(q, sizeof q, "XA ROLLBACK %s", xid[k]);
            (void)my_run(c->my[k], q, NULL, e2, sizeof e2);
        }
    }
    return TXN_ERROR;
}

static enum txn_result txn_local(struct client *c)
{
    struct bench *b = c->run->b;
    char sql[MAX_BRANCHES][160], err[512];
    make_updates(c, sql);
    for (int k = 0; k < b->nbr; k++) {
        long rows = 0;
        int rc = b->br[k].pg ? pg_run(c->pg[k], sql[k], NULL, &rows, err, sizeof err)
                             : my_run(c->my[k], sql[k], &rows, err, sizeof err);
        if (rc || rows != 1) {
            /* the earlier branches are committed: the totals will not match */
            if (rc) client_error(c, "local: %s", err);
            else client_error(c, "local: %s changed %ld rows", sql[k], rows);
            return TXN_ERROR;
        }
    }
    return TXN_COMMIT;
}

/* ---------------------------------------------------------------- client threads */

static int client_connect(struct client *c)
{
    struct bench *b = c->run->b;
    char err[1024];
    if (c->run->mode == MODE_XATM) {
        int rc = xatm_open(b->o.config, &c->h);
        if (rc) {
            client_error(c, "xatm_open: %s: %s", xatm_errname(rc), xatm_last_error(c->h));
            return -1;
        }
        return 0;
    }
    for (int k = 0; k < b->nbr; k++) {
        if (b->br[k].pg)
            c->pg[k] = pg_open(b->br[k].rm, err, sizeof err);
        else
            c->my[k] = my_open(b->br[k].rm, err, sizeof err);
        if (!c->pg[k] && !c->my[k]) {
            client_error(c, "%s", err);
            return -1;
        }
    }
    return 0;
}

static void client_disconnect(struct client *c)
{
    xatm_close(c->h);
    c->h = NULL;
    for (int k = 0; k < MAX_BRANCHES; k++) {
        if (c->pg[k]) PQfinish(c->pg[k]);
        if (c->my[k]) mysql_close(c->my[k]);
        c->pg[k] = NULL;
        c->my[k] = NULL;
    }
}

static void record_latency(struct client *c, double secs)
{
    if (c->nlat == c->caplat) {
        size_t ncap = c->caplat ? c->caplat * 2 : 4096;
        uint32_t *p = realloc(c->lat, ncap * sizeof *p);
        if (!p) return;
        c->lat = p;
        c->caplat = ncap;
    }
    double us = secs * 1e6;
    c->lat[c->nlat++] = us > 4e9 ? UINT32_MAX : (uint32_t)us;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    struct run *r = c->run;
    mysql_thread_init();
    int ok = client_connect(c) == 0;
    if (!ok) atomic_fetch_add(&r->failed_clients, 1);
    pthread_barrier_wait(&r->ready);
    while (ok && atomic_load(&r->phase) != PHASE_STOP) {
        double t0 = now_s();
        enum txn_result res = r->mode == MODE_XATM   ? txn_xatm(c)
                              : r->mode == MODE_BARE ? txn_bare_mode(c, false)
                              : r->mode == MODE_BARE_LR ? txn_bare_mode(c, true)
                                                     : txn_local(c);
        double t1 = now_s();
        bool counted = atomic_load(&r->phase) == PHASE_MEASURE;
        if (res == TXN_COMMIT) {
            c->consecutive_errors = 0;
            if (counted) {
                c->commits++;
                record_latency(c, t1 - t0);
                atomic_fetch_add(&r->commits, 1);
            }
        } else if (res == TXN_ABORT) {
            c->consecutive_errors = 0;
            if (counted) {
                c->aborts++;
                atomic_fetch_add(&r->aborts, 1);
            }
        } else {
            if (counted) {
                c->errors++;
                atomic_fetch_add(&r->errors, 1);
            }
            if (++c->consecutive_errors >= 50) {
                atomic_fetch_add(&r->failed_clients, 1);
                break;
            }
            sleep_s(0.01);
        }
    }
    client_disconnect(c);
    mysql_thread_end();
    return NULL;
}

/* ---------------------------------------------------------------- /proc */

/* CPU time of every thread of pid, in seconds. */
static int proc_cpu(pid_t pid, double *out)
{
    char path[64];
    bfmt(path, sizeof path, "/proc/%ld/task", (long)pid);
    DIR *d = opendir(path);
    if (d) {
        double sum = 0;
        bool any = false;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char p2[128];
            bfmt(p2, sizeof p2, "/proc/%ld/task/%s/schedstat", (long)pid, e->d_name);
            FILE *f = fopen(p2, "r");
            if (!f) continue;
            unsigned long long ns;
            if (fscanf(f, "%llu", &ns) == 1) {
                sum += (double)ns / 1e9;
                any = true;
            }
            fclose(f);
        }
        closedir(d);
        if (any) {
            *out = sum;
            return 0;
        }
    }
    bfmt(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[2048];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long long ut = 0, stt = 0;
    /* after ")": state(3) ... utime is field 14, stime 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
        return -1;
    *out = (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
    return 0;
}

/* VmRSS and VmHWM of pid, in KiB. */
static int proc_rss(pid_t pid, long *rss, long *hwm)
{
    char path[64], line[256];
    bfmt(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    *rss = *hwm = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "VmRSS:", 6)) *rss = atol(line + 6);
        if (!strncmp(line, "VmHWM:", 6)) *hwm = atol(line + 6);
    }
    fclose(f);
    return *rss >= 0 ? 0 : -1;
}

/* Busy CPU seconds of the whole machine (all but idle and iowait). */
static double machine_busy_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    unsigned long long v[10] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8) return 0;
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* xatmd's pid from `xatmctl status --json`, 0 if that does not work. */
static pid_t xatmd_pid_from_xatmctl(const struct options *o)
{
    const char *ctl = o->xatmctl ? o->xatmctl : getenv("XATMCTL");
    if (!ctl) ctl = "xatmctl";
    char cmd[2048];
    bfmt(cmd, sizeof cmd, "'%s' -c '%s' status --json 2>/dev/null", ctl, o->config);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    pclose(p);
    char *k = strstr(buf, "\"pid\":");
    return k ? (pid_t)atol(k + 6) : 0;
}

/* ---------------------------------------------------------------- set-up and check */

static int setup_tables(struct bench *b)
{
    char err[1024], sql[256];
    long rows = b->o.rows;
    if (b->o.modes[MODE_BARE_LR] &&
        (pg_run(b->check_pg[0], "SET client_min_messages = warning", NULL, NULL, err, sizeof err) ||
         pg_run(b->check_pg[0], "DROP TABLE IF EXISTS " DECISION_TABLE, NULL, NULL, err,
                sizeof err) ||
         pg_run(b->check_pg[0], "CREATE TABLE " DECISION_TABLE " (g varchar(64) PRIMARY KEY)",
                NULL, NULL, err, sizeof err)))
        goto fail;
    for (int k = 0; k < b->nbr; k++) {
        const char *t = b->br[k].table;
        if (b->br[k].pg) {
            PGconn *pg = b->check_pg[k];
            bfmt(sql, sizeof sql, "DROP TABLE IF EXISTS %s", t);
            if (pg_run(pg, "SET client_min_messages = warning", NULL, NULL, err, sizeof err) ||
                pg_run(pg, sql, NULL, NULL, err, sizeof err))
                goto fail;
            bfmt(sql, sizeof sql,
                     "CREATE TABLE %s (id INT PRIMARY KEY, balance BIGINT NOT NULL)", t);
            if (pg_run(pg, sql, NULL, NULL, err, sizeof err)) goto fail;
            bfmt(sql, sizeof sql,
                     "INSERT INTO %s SELECT g, %d FROM generate_series(1, %ld) g", t, BALANCE,
                     rows);
            if (pg_run(pg, sql, NULL, NULL, err, sizeof err)) goto fail;
            bfmt(sql, sizeof sql, "VACUUM ANALYZE %s", t);
            if (pg_run(pg, sql, NULL, NULL, err, sizeof err)) goto fail;
        } else {
            MYSQL *my = b->check_my[k];
            bfmt(sql, sizeof sql, "DROP TABLE IF EXISTS %s", t);
            if (my_run(my, sql, NULL, err, sizeof err)) goto fail;
            bfmt(sql, sizeof sql,
                     "CREATE TABLE %s (id INT PRIMARY KEY, balance BIGINT NOT NULL) "
                     "ENGINE=InnoDB", t);
            if (my_run(my, sql, NULL, err, sizeof err)) goto fail;
            if (my_run(my, "START TRANSACTION", NULL, err, sizeof err)) goto fail;
            struct sbuf s = {0};
            for (long first = 1; first <= rows; first += 1000) {
                s.len = 0;
                sb_printf(&s, "INSERT INTO %s (id, balance) VALUES ", t);
                for (long id = first; id < first + 1000 && id <= rows; id++)
                    sb_printf(&s, "%s(%ld,%d)", id == first ? "" : ",", id, BALANCE);
                if (!s.p || my_run(my, s.p, NULL, err, sizeof err)) {
                    free(s.p);
                    goto fail;
                }
            }
            free(s.p);
            if (my_run(my, "COMMIT", NULL, err, sizeof err)) goto fail;
        }
    }
    return 0;
fail:
    say("set-up failed: %s", err);
    return -1;
}

/* Sum of all balances over every branch table, and rows. */
static int sum_totals(struct bench *b, long long *sum, char *err, size_t errlen)
{
    char sql[160];
    *sum = 0;
    for (int k = 0; k < b->nbr; k++) {
        long long v = 0;
        bfmt(sql, sizeof sql, "SELECT COALESCE(SUM(balance), 0) FROM %s", b->br[k].table);
        int rc = b->br[k].pg ? pg_int(b->check_pg[k], sql, &v, err, errlen)
                             : my_int(b->check_my[k], sql, &v, err, errlen);
        if (rc) return -1;
        *sum += v;
    }
    return 0;
}

/* The money check after a round: waits up to 30 s for stragglers (a transaction that
 * xatmd's recovery finishes), then fails loudly. */
static int check_totals(struct bench *b, const char *what)
{
    long long expected = (long long)b->nbr * b->o.rows * BALANCE, got = 0;
    char err[1024];
    double give_up = now_s() + 30;
    for (;;) {
        if (sum_totals(b, &got, err, sizeof err) != 0) {
            say("TOTALS CHECK FAILED after %s: %s", what, err);
            return -1;
        }
        if (got == expected) return 0;
        if (now_s() >= give_up) break;
        sleep_s(0.5);
    }
    say("TOTALS NOT CONSERVED after %s: the balances sum to %lld, expected %lld "
        "(difference %+lld)", what, got, expected, got - expected);
    return -1;
}

/* ---------------------------------------------------------------- one round */

static void progress_line(const struct bench *b, const char *label, double elapsed,
                          double total, long commits, long aborts, long errors, double tps,
                          bool final)
{
    if (!b->o.progress) return;
    char line[256];
    bfmt(line, sizeof line, "%s  %4.1f/%.1f s  %8.0f txn/s  commits %ld  aborts %ld  errors %ld",
             label, elapsed, total, tps, commits, aborts, errors);
    if (b->o.progress_tty)
        fprintf(stderr, "\r\033[K%s%s", line, final ? "\r\033[K" : "");
    else if (!final)
        fprintf(stderr, "%s: %s\n", prog, line);
    fflush(stderr);
}

static int latcmp(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, c = *(const uint32_t *)y;
    return a < c ? -1 : a > c;
}

/* Runs one mode for warmup + duration; adds to st. 0, or -1 when no client could run. */
static int run_round(struct bench *b, enum mode m, int round_no, struct mode_stats *st)
{
    struct run r;
    memset(&r, 0, sizeof r);
    r.b = b;
    r.mode = m;
    atomic_init(&r.phase, PHASE_WARMUP);
    int n = b->o.clients;
    struct client *cs = calloc((size_t)n, sizeof *cs);
    if (!cs) return -1;
    pthread_barrier_init(&r.ready, NULL, (unsigned)n + 1);
    int started = 0;
    for (int i = 0; i < n; i++) {
        cs[i].run = &r;
        cs[i].no = i;
        cs[i].round = round_no;
        cs[i].rng = b->o.seed ^ ((uint64_t)(round_no * 7919 + (int)m) << 32) ^ (uint64_t)i * 0x9e37u;
        if (pthread_create(&cs[i].thread, NULL, client_main, &cs[i]) != 0) {
            /* the others wait at a barrier that counts every client: nothing to recover */
            say("cannot start client thread %d of %d: %s", i + 1, n, strerror(errno));
            exit(2);
        }
        started++;
    }
    pthread_barrier_wait(&r.ready);

    char label[64];
    bfmt(label, sizeof label, "round %d/%d %-7s", round_no + 1, b->o.rounds, mode_names[m]);
    double t0 = now_s();
    double cpu0 = 0, cpu1 = 0;
    bool cpu_ok = false;
    double self0 = self_cpu_s(), mach0 = machine_busy_s();
    double tm0 = 0;
    if (atomic_load(&r.failed_clients) == 0) {
        while (now_s() - t0 < b->o.warmup) sleep_s(0.02);
        cpu_ok = b->xatmd_pid > 0 && proc_cpu(b->xatmd_pid, &cpu0) == 0;
        self0 = self_cpu_s();
        mach0 = machine_busy_s();
        tm0 = now_s();
        atomic_store(&r.phase, PHASE_MEASURE);
        double next = tm0 + 0.5;
        while (now_s() - tm0 < b->o.duration && atomic_load(&r.failed_clients) == 0) {
            sleep_s(0.02);
            if (now_s() >= next) {
                double el = now_s() - tm0;
                long cm = atomic_load(&r.commits);
                progress_line(b, label, el, b->o.duration, cm, atomic_load(&r.aborts),
                              atomic_load(&r.errors), (double)cm / el, false);
                next += b->o.progress_tty ? 0.5 : 1.0;
            }
        }
    }
    double tm1 = now_s();
    atomic_store(&r.phase, PHASE_STOP);
    cpu_ok = cpu_ok && proc_cpu(b->xatmd_pid, &cpu1) == 0;
    double self1 = self_cpu_s(), mach1 = machine_busy_s();
    for (int i = 0; i < started; i++) pthread_join(cs[i].thread, NULL);
    progress_line(b, label, 0, 0, 0, 0, 0, 0, true);

    long commits = 0, aborts = 0, errors = 0;
    for (int i = 0; i < n; i++) {
        commits += cs[i].commits;
        aborts += cs[i].aborts;
        errors += cs[i].errors;
        if (cs[i].nlat) {
            if (st->nlat + cs[i].nlat > st->caplat) {
                size_t ncap = (st->nlat + cs[i].nlat) * 2;
                uint32_t *p = realloc(st->lat, ncap * sizeof *p);
                if (p) {
                    st->lat = p;
                    st->caplat = ncap;
                }
            }
            if (st->nlat + cs[i].nlat <= st->caplat) {
                memcpy(st->lat + st->nlat, cs[i].lat, cs[i].nlat * sizeof *cs[i].lat);
                st->nlat += cs[i].nlat;
            }
        }
    }
    int printed = 0;
    for (int i = 0; i < n && printed < 3; i++)
        if (cs[i].err[0]) {
            say("%s client %d: %s", mode_names[m], i, cs[i].err);
            printed++;
        }
    double secs = tm0 > 0 ? tm1 - tm0 : 0;
    st->commits += commits;
    st->aborts += aborts;
    st->errors += errors;
    st->secs += secs;
    if (st->nrounds < MAX_ROUNDS) st->round_tps[st->nrounds++] = secs > 0 ? (double)commits / secs : 0;
    if (cpu_ok) {
        st->xatmd_cpu_s += cpu1 - cpu0;
        st->cpu_known = true;
    }
    st->client_cpu_s += self1 - self0;
    st->machine_cpu_s += mach1 - mach0;
    if (m == MODE_XATM && b->xatmd_pid > 0) {
        long rss, hwm;
        if (proc_rss(b->xatmd_pid, &rss, &hwm) == 0) {
            if (rss > st->xatmd_rss_kb) st->xatmd_rss_kb = rss;
            if (hwm > st->xatmd_hwm_kb) st->xatmd_hwm_kb = hwm;
        }
    }
    int failed = atomic_load(&r.failed_clients);
    for (int i = 0; i < n; i++) free(cs[i].lat);
    free(cs);
    pthread_barrier_destroy(&r.ready);
    if (failed) {
        say("%s: %d of %d clients could not run (first errors above)", mode_names[m], failed, n);
        return -1;
    }
    if (commits == 0) {
        say("%s: no transaction committed in round %d", mode_names[m], round_no + 1);
        return -1;
    }
    return 0;
}

static double pct(const struct mode_stats *st, double q)
{
    if (st->nlat == 0) return 0;
    size_t i = (size_t)(q * (double)(st->nlat - 1) + 0.5);
    return (double)st->lat[i] / 1000.0; /* ms */
}

static double tps_of(const struct mode_stats *st)
{
    return st->secs > 0 ? (double)st->commits / st->secs : 0;
}

/* ---------------------------------------------------------------- reports */

static void report(struct bench *b, struct mode_stats *st, int checks)
{
    const struct options *o = &b->o;
    for (int m = 0; m < N_MODES; m++)
        if (o->modes[m] && st[m].nlat) qsort(st[m].lat, st[m].nlat, sizeof *st[m].lat, latcmp);
    double rb = o->modes[MODE_XATM] && o->modes[MODE_BARE] && tps_of(&st[MODE_BARE]) > 0
                    ? tps_of(&st[MODE_XATM]) / tps_of(&st[MODE_BARE]) : -1;
    double rl = o->modes[MODE_XATM] && o->modes[MODE_LOCAL] && tps_of(&st[MODE_LOCAL]) > 0
                    ? tps_of(&st[MODE_XATM]) / tps_of(&st[MODE_LOCAL]) : -1;
    if (o->json) {
        struct sbuf s = {0};
        sb_printf(&s, "{\"protocol\":\"%dpc\",\"clients\":%d,\"branches\":%d,\"rows\":%ld,"
                      "\"duration_s\":%.3f,\"warmup_s\":%.3f,\"rounds\":%d,\"xatmd_pid\":%ld,"
                      "\"nproc\":%ld,\"decider\":%s%s%s,\"modes\":{",
                  o->protocol, o->clients, b->nbr, o->rows, o->duration, o->warmup, o->rounds,
                  (long)b->xatmd_pid, sysconf(_SC_NPROCESSORS_ONLN), o->decider ? "\"" : "",
                  o->decider ? o->decider : "null", o->decider ? "\"" : "");
        bool first = true;
        for (int m = 0; m < N_MODES; m++) {
            if (!o->modes[m]) continue;
            const struct mode_stats *x = &st[m];
            double c = x->commits > 0 ? (double)x->commits : 1;
            sb_printf(&s, "%s\"%s\":{\"transactions\":%ld,\"aborts\":%ld,\"errors\":%ld,"
                          "\"seconds\":%.3f,\"tps\":%.1f,\"round_tps\":[",
                      first ? "" : ",", mode_keys[m], x->commits, x->aborts, x->errors, x->secs,
                      tps_of(x));
            for (int i = 0; i < x->nrounds; i++)
                sb_printf(&s, "%s%.1f", i ? "," : "", x->round_tps[i]);
            sb_printf(&s, "],\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,", pct(x, 0.5),
                      pct(x, 0.99), pct(x, 0.999));
            if (x->cpu_known)
                sb_printf(&s, "\"xatmd_cpu_us_per_txn\":%.2f,", x->xatmd_cpu_s * 1e6 / c);
            else
                sb_printf(&s, "\"xatmd_cpu_us_per_txn\":null,");
            sb_printf(&s, "\"client_cpu_us_per_txn\":%.1f,\"machine_cpu_us_per_txn\":%.1f",
                      x->client_cpu_s * 1e6 / c, x->machine_cpu_s * 1e6 / c);
            if (m == MODE_XATM && x->xatmd_rss_kb > 0)
                sb_printf(&s, ",\"xatmd_rss_kib\":%ld,\"xatmd_hwm_kib\":%ld", x->xatmd_rss_kb,
                          x->xatmd_hwm_kb);
            sb_printf(&s, "}");
            first = false;
        }
        sb_printf(&s, "},\"totals_checks\":%d,\"totals_ok\":true", checks);
        if (rb >= 0) sb_printf(&s, ",\"ratio_xatm_bare_xa\":%.4f", rb);
        else sb_printf(&s, ",\"ratio_xatm_bare_xa\":null");
        if (rl >= 0) sb_printf(&s, ",\"ratio_xatm_local\":%.4f", rl);
        else sb_printf(&s, ",\"ratio_xatm_local\":null");
        sb_printf(&s, "}\n");
        if (s.p) fputs(s.p, stdout);
        free(s.p);
        return;
    }
    printf("xatm-bench: %dpc, %d clients, %d branches, %ld rows per table, %d round%s x "
           "%.1f s per mode (after %.1f s warm-up), nproc %ld, xatmd pid %ld\n",
           o->protocol, o->clients, b->nbr, o->rows, o->rounds, o->rounds == 1 ? "" : "s",
           o->duration, o->warmup, sysconf(_SC_NPROCESSORS_ONLN), (long)b->xatmd_pid);
    printf("%-8s %9s %8s %8s %9s %7s %7s %11s %11s %11s  %s\n", "mode", "txn/s", "p50 ms",
           "p99 ms", "p99.9 ms", "aborts", "errors", "xatmd us/tx", "client us/tx",
           "machine us/tx", "txn/s per round");
    for (int m = 0; m < N_MODES; m++) {
        if (!o->modes[m]) continue;
        const struct mode_stats *x = &st[m];
        double c = x->commits > 0 ? (double)x->commits : 1;
        char cpu[32], rounds[512];
        if (x->cpu_known) bfmt(cpu, sizeof cpu, "%.1f", x->xatmd_cpu_s * 1e6 / c);
        else bfmt(cpu, sizeof cpu, "-");
        size_t len = 0;
        rounds[0] = '\0';
        for (int i = 0; i < x->nrounds && len + 16 < sizeof rounds; i++)
            len += (size_t)bfmt(rounds + len, sizeof rounds - len, "%s%.0f", i ? " " : "",
                                    x->round_tps[i]);
        printf("%-8s %9.1f %8.2f %8.2f %9.2f %7ld %7ld %11s %11.1f %11.1f  %s\n", mode_names[m],
               tps_of(x), pct(x, 0.5), pct(x, 0.99), pct(x, 0.999), x->aborts, x->errors, cpu,
               x->client_cpu_s * 1e6 / c, x->machine_cpu_s * 1e6 / c, rounds);
    }
    if (rb >= 0) printf("ratio xatm/bare-xa: %.3f\n", rb);
    if (o->modes[MODE_BARE_LR] && o->modes[MODE_BARE] && tps_of(&st[MODE_BARE]) > 0)
        printf("ratio bare-lr/bare-xa: %.3f\n", tps_of(&st[MODE_BARE_LR]) / tps_of(&st[MODE_BARE]));
    if (rl >= 0) printf("ratio xatm/local:   %.3f\n", rl);
    if (o->modes[MODE_XATM] && st[MODE_XATM].xatmd_rss_kb > 0)
        printf("xatmd memory: VmRSS %ld KiB, VmHWM %ld KiB\n", st[MODE_XATM].xatmd_rss_kb,
               st[MODE_XATM].xatmd_hwm_kb);
    printf("totals conserved after every round (%d checks)\n", checks);
}

/* ---------------------------------------------------------------- --rss-live */

static int cmd_rss_live(struct bench *b)
{
    long n = b->o.rss_live;
    if (b->xatmd_pid <= 0) {
        say("--rss-live needs xatmd's pid (--xatmd-pid, or --xatmctl for `status --json`)");
        return 2;
    }
    xatm_t **hs = calloc((size_t)n, sizeof *hs);
    if (!hs) return 2;
    long rss0 = 0, hwm0 = 0, rss1 = 0, hwm1 = 0, live = 0;
    proc_rss(b->xatmd_pid, &rss0, &hwm0);
    int rc = 0;
    for (long i = 0; i < n; i++) {
        int orc = xatm_open(b->o.config, &hs[i]);
        if (orc == 0) orc = xatm_begin(hs[i], NULL);
        if (orc) {
            say("handle %ld: %s: %s", i, xatm_errname(orc), xatm_last_error(hs[i]));
            rc = 1;
            break;
        }
        live++;
    }
    sleep_s(0.3);
    proc_rss(b->xatmd_pid, &rss1, &hwm1);
    for (long i = 0; i < n; i++) xatm_close(hs[i]); /* rolls back the open transaction */
    free(hs);
    if (b->o.json)
        printf("{\"live_transactions\":%ld,\"xatmd_rss_kib_before\":%ld,\"xatmd_rss_kib\":%ld,"
               "\"xatmd_hwm_kib\":%ld}\n", live, rss0, rss1, hwm1);
    else
        printf("xatmd with %ld live transactions (one AP connection each, no branch "
               "enlisted): VmRSS %ld KiB (before: %ld KiB), VmHWM %ld KiB\n",
               live, rss1, rss0, hwm1);
    return rc;
}

/* ---------------------------------------------------------------- --recovery */

/* Starts xatmd with its output appended to logpath, armed with XATM_FAULT=fault when
 * fault is not NULL (disarmed otherwise). */
static pid_t start_xatmd(const struct options *o, const char *logpath, const char *fault)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (fault) setenv("XATM_FAULT", fault, 1);
        else unsetenv("XATM_FAULT");
        execl(o->xatmd, "xatmd", "-c", o->config, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Bytes of logpath from offset `from`; true when a line contains `needle`. */
static bool log_has(const char *logpath, long from, const char *needle)
{
    FILE *f = fopen(logpath, "r");
    if (!f) return false;
    fseek(f, from, SEEK_SET);
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static bool log_says_ready(const char *logpath, long from)
{
    return log_has(logpath, from, "xatmd: ready");
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : 0;
}

/* Waits until xatmd logs ready (or exits). Returns seconds, or -1. */
static double wait_ready(pid_t pid, const char *logpath, long from, double t0, double limit)
{
    while (now_s() - t0 < limit) {
        if (log_says_ready(logpath, from)) return now_s() - t0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) return -1;
        sleep_s(0.01);
    }
    return -1;
}

/* The replay callback: the highest boot epoch. */
static void epoch_of(const xatm_declog_record *rec, void *arg)
{
    uint32_t *e = arg;
    if ((rec->type == XATM_DL_BOOT || rec->type == XATM_DL_CHECKPOINT) && rec->epoch > *e)
        *e = rec->epoch;
}

/* What the preparing threads share. */
struct rec_job {
    struct bench *b;
    uint32_t epoch;
    long n;
    int nthreads;
    uint64_t base_seq;
    uint64_t *pg_ref, *my_ref;  /* session references per transaction */
    atomic_long done;
    atomic_int failed;
    atomic_int running;         /* threads not finished */
    char err[1024];
    pthread_mutex_t mu;
};

struct rec_thread {
    struct rec_job *j;
    int no;
    pthread_t th;
};

static void rec_fail(struct rec_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rec_fail(struct rec_job *j, const char *fmt, ...)
{
    pthread_mutex_lock(&j->mu);
    if (!j->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->err, sizeof j->err, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&j->mu);
    atomic_store(&j->failed, 1);
}

/* Prepares transactions no, no + nthreads, ... : PostgreSQL debit on row i+1 through one
 * kept session, MariaDB credit on row i+1 through a session of its own, closed after the
 * prepare (that is what detaches a MariaDB branch, as an AP's death does). */
static void *rec_thread_main(void *arg)
{
    struct rec_thread *t = arg;
    struct rec_job *j = t->j;
    struct bench *b = j->b;
    const xatm_rm_config *pgc = b->br[0].rm, *myc = b->br[1].rm;
    char err[1024], gtrid[XATM_GTRID_MAX + 1], sql[200];
    xatm_rm_conn *pg = NULL;
    mysql_thread_init();
    if (xatm_rm_open(pgc, &pg, err, sizeof err) != XATM_XA_OK) {
        rec_fail(j, "%s", err);
        goto out;
    }
    for (long i = t->no; i < j->n && !atomic_load(&j->failed); i += j->nthreads) {
        xatm_xid xp, xm;
        long amount = 1 + i % 97;
        if (xatm_gtrid_format(gtrid, sizeof gtrid, b->cfg->tm_id, j->epoch,
                              j->base_seq + (uint64_t)i) ||
            xatm_xid_make(&xp, b->cfg->format_id, gtrid, pgc->name) ||
            xatm_xid_make(&xm, b->cfg->format_id, gtrid, myc->name)) {
            rec_fail(j, "cannot build the xids of %s", gtrid);
            break;
        }
        bfmt(sql, sizeof sql, "UPDATE %s SET balance = balance - %ld WHERE id = %ld",
                 b->br[0].table, amount, i + 1);
        int x = xatm_rm_run(pg, XATM_RM_OP_START, &xp);
        if (x == XATM_XA_OK) x = xatm_rm_exec(pg, sql, NULL);
        if (x == XATM_XA_OK) x = xatm_rm_run(pg, XATM_RM_OP_PREPARE, &xp);
        if (x != XATM_XA_OK) {
            rec_fail(j, "postgresql branch of %s: %s: %s", gtrid, xatm_xa_rc_name(x),
                     xatm_rm_errmsg(pg));
            break;
        }
        j->pg_ref[i] = xatm_rm_session_ref(pg);
        xatm_rm_conn *my = NULL;
        if (xatm_rm_open(myc, &my, err, sizeof err) != XATM_XA_OK) {
            rec_fail(j, "%s", err);
            break;
        }
        bfmt(sql, sizeof sql, "UPDATE %s SET balance = balance + %ld WHERE id = %ld",
                 b->br[1].table, amount, i + 1);
        x = xatm_rm_run(my, XATM_RM_OP_START, &xm);
        if (x == XATM_XA_OK) x = xatm_rm_exec(my, sql, NULL);
        if (x == XATM_XA_OK) x = xatm_rm_run(my, XATM_RM_OP_PREPARE, &xm);
        if (x != XATM_XA_OK) {
            rec_fail(j, "mariadb branch of %s: %s: %s", gtrid, xatm_xa_rc_name(x),
                     xatm_rm_errmsg(my));
            xatm_rm_close(my);
            break;
        }
        j->my_ref[i] = xatm_rm_session_ref(my);
        xatm_rm_close(my);
        atomic_fetch_add(&j->done, 1);
    }
out:
    if (pg) xatm_rm_close(pg);
    mysql_thread_end();
    atomic_fetch_sub(&j->running, 1);
    return NULL;
}

/* Every in-doubt transaction's own rows after recovery: transaction i (row i + 1 on both
 * servers) moved 1 + i % 97 from PostgreSQL to MariaDB when it had a COMMIT record
 * (i * 100 / n >= pct, as cmd_recovery writes them) and left both rows at BALANCE when it
 * had none; rows beyond n stay at BALANCE. 0 when every row agrees; -1 (said) otherwise. */
static int check_outcomes(struct bench *b, long n, int pct)
{
    char sql[512], err[1024];
    long long bad_pg = 0, bad_my = 0;
    bfmt(sql, sizeof sql,
         "SELECT count(*) FROM %s WHERE balance <> %d - CASE WHEN id > %ld OR "
         "((id - 1) * 100) / %ld < %d THEN 0 ELSE 1 + (id - 1) %% 97 END",
         b->br[0].table, BALANCE, n, n, pct);
    if (pg_int(b->check_pg[0], sql, &bad_pg, err, sizeof err)) {
        say("%s", err);
        return -1;
    }
    bfmt(sql, sizeof sql,
         "SELECT count(*) FROM %s WHERE balance <> %d + CASE WHEN id > %ld OR "
         "((id - 1) * 100) DIV %ld < %d THEN 0 ELSE 1 + (id - 1) %% 97 END",
         b->br[1].table, BALANCE, n, n, pct);
    if (my_int(b->check_my[1], sql, &bad_my, err, sizeof err)) {
        say("%s", err);
        return -1;
    }
    if (bad_pg == 0 && bad_my == 0) return 0;
    say("OUTCOMES WRONG after recovery: %lld PostgreSQL and %lld MariaDB rows differ from "
        "their transaction's decision (commit with a COMMIT record, rollback without)",
        bad_pg, bad_my);
    return -1;
}

/* Prepared branches of epoch `epoch` still on the servers. */
static int count_in_doubt(struct bench *b, uint32_t epoch, long long *pgn, long long *myn)
{
    char sql[256], err[1024], prefix[64];
    bfmt(prefix, sizeof prefix, "%s.%u.", b->cfg->tm_id, epoch);
    bfmt(sql, sizeof sql,
             "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'xatm:%08x:%s%%'",
             b->cfg->format_id, prefix);
    if (pg_int(b->check_pg[0], sql, pgn, err, sizeof err)) {
        say("%s", err);
        return -1;
    }
    MYSQL *my = b->check_my[1];
    if (mysql_query(my, "XA RECOVER") != 0) {
        say("XA RECOVER: %s", mysql_error(my));
        return -1;
    }
    MYSQL_RES *res = mysql_store_result(my);
    MYSQL_ROW row;
    size_t plen = strlen(prefix);
    *myn = 0;
    while (res && (row = mysql_fetch_row(res)) != NULL)
        if (row[0] && strtoul(row[0], NULL, 10) == b->cfg->format_id && row[3] &&
            !strncmp(row[3], prefix, plen))
            (*myn)++;
    mysql_free_result(res);
    return 0;
}

static int cmd_recovery(struct bench *b)
{
    const struct options *o = &b->o;
    long n = o->recovery;
    char err[1024], logpath[4096];
    if (!o->xatmd) {
        say("--recovery needs --xatmd PATH (it restarts xatmd itself; do not start one)");
        return 2;
    }
    if (!b->br[0].pg || b->br[1].pg) {
        say("--recovery uses the first PostgreSQL and the first MariaDB RM");
        return 2;
    }
    long long maxprep = 0;
    if (pg_int(b->check_pg[0], "SELECT setting::bigint FROM pg_settings WHERE name = "
               "'max_prepared_transactions'", &maxprep, err, sizeof err)) {
        say("%s", err);
        return 2;
    }
    if (maxprep < n) {
        say("PostgreSQL RM '%s' has max_prepared_transactions = %lld, fewer than %ld",
            b->br[0].rm->name, maxprep, n);
        say("HINT: ALTER SYSTEM SET max_prepared_transactions = %ld; then restart it "
            "(scripts/bench.sh does this)", n + 300);
        return 2;
    }
    bfmt(logpath, sizeof logpath, "%s/xatmd-bench-recovery.log", b->cfg->log_dir);
    mkdir(b->cfg->log_dir, 0700);

    /* 1. a genuine boot of xatmd, then a crash */
    long off = file_size(logpath);
    double t0 = now_s();
    pid_t pid = start_xatmd(o, logpath, NULL);
    if (pid < 0 || wait_ready(pid, logpath, off, t0, 60) < 0) {
        say("xatmd did not start; see %s", logpath);
        if (pid > 0) kill(pid, SIGKILL);
        return 2;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);

    /* 2. its epoch, from its own log */
    uint32_t epoch = 0;
    xatm_declog *log = NULL;
    int rc = xatm_declog_open(b->cfg->log_dir, NULL, epoch_of, &epoch, &log, err, sizeof err);
    if (rc) {
        say("cannot open the decision log %s: %s: %s", b->cfg->log_dir, xatm_errname(rc), err);
        return 2;
    }
    if (epoch == 0) {
        say("no BOOT record in %s", b->cfg->log_dir);
        xatm_declog_close(log);
        return 2;
    }

    /* 3. N transactions of that epoch, prepared on both RMs */
    struct rec_job j;
    memset(&j, 0, sizeof j);
    j.b = b;
    j.epoch = epoch;
    j.n = n;
    j.nthreads = o->recovery_threads;
    j.base_seq = 1000000000ull;
    j.pg_ref = calloc((size_t)n, sizeof *j.pg_ref);
    j.my_ref = calloc((size_t)n, sizeof *j.my_ref);
    pthread_mutex_init(&j.mu, NULL);
    struct rec_thread *ts = calloc((size_t)j.nthreads, sizeof *ts);
    if (!j.pg_ref || !j.my_ref || !ts) {
        say("out of memory");
        return 2;
    }
    double tp0 = now_s();
    atomic_init(&j.running, j.nthreads);
    for (int i = 0; i < j.nthreads; i++) {
        ts[i].j = &j;
        ts[i].no = i;
        pthread_create(&ts[i].th, NULL, rec_thread_main, &ts[i]);
    }
    double next = tp0 + 1;
    while (atomic_load(&j.done) < n && !atomic_load(&j.failed)) {
        sleep_s(0.05);
        if (o->progress && now_s() >= next) {
            if (o->progress_tty)
                fprintf(stderr, "\r\033[Kpreparing in-doubt transactions: %ld/%ld",
                        atomic_load(&j.done), n);
            else
                say("preparing in-doubt transactions: %ld/%ld", atomic_load(&j.done), n);
            next += 1;
        }
        if (atomic_load(&j.running) == 0) break;
    }
    for (int i = 0; i < j.nthreads; i++) pthread_join(ts[i].th, NULL);
    if (o->progress && o->progress_tty) fprintf(stderr, "\r\033[K");
    double tprep = now_s() - tp0;
    if (atomic_load(&j.failed) || atomic_load(&j.done) < n) {
        say("preparing failed after %ld transactions: %s", atomic_load(&j.done), j.err);
        say("the prepared ones are left for xatmd's recovery: start xatmd to finish them");
        xatm_declog_close(log);
        return 2;
    }

    /* 4. their COMMIT records, forced, as xatmd forces them (all but the presumed aborts) */
    long decided = 0;
    for (long i = 0; i < n; i++) {
        if ((i * 100) / n < o->recovery_abort_pct) continue; /* the first P %: no record */
        xatm_declog_record r;
        memset(&r, 0, sizeof r);
        r.type = XATM_DL_COMMIT;
        r.protocol = 2;
        xatm_gtrid_format(r.gtrid, sizeof r.gtrid, b->cfg->tm_id, epoch, j.base_seq + (uint64_t)i);
        r.n_branches = 2;
        bfmt(r.branches[0].rm, sizeof r.branches[0].rm, "%s", b->br[0].rm->name);
        r.branches[0].session_id = j.pg_ref[i];
        bfmt(r.branches[1].rm, sizeof r.branches[1].rm, "%s", b->br[1].rm->name);
        r.branches[1].session_id = j.my_ref[i];
        rc = xatm_declog_append(log, &r, true);
        if (rc) {
            say("decision log append: %s", xatm_errname(rc));
            xatm_declog_close(log);
            return 2;
        }
        decided++;
    }
    rc = xatm_declog_flush(log);
    xatm_declog_close(log);
    if (rc) {
        say("decision log flush: %s", xatm_errname(rc));
        return 2;
    }
    long long pgn = 0, myn = 0;
    if (count_in_doubt(b, epoch, &pgn, &myn)) return 2;
    if (pgn != n || myn != n) {
        say("expected %ld prepared branches on each RM, found pg=%lld my=%lld", n, pgn, myn);
        return 2;
    }

    /* 5. (--recovery-kill) a recovering xatmd killed by its armed fault */
    double t_kill = -1;
    long long kill_pg = -1, kill_my = -1;
    if (o->recovery_kill) {
        off = file_size(logpath);
        t0 = now_s();
        pid = start_xatmd(o, logpath, o->recovery_kill);
        int status = 0;
        pid_t w = 0;
        while ((w = waitpid(pid, &status, WNOHANG)) == 0 && now_s() - t0 < o->recovery_timeout)
            sleep_s(0.02);
        if (w != pid) {
            say("--recovery-kill %s: xatmd still runs after %.0f s: the fault never fired "
                "(see %s)", o->recovery_kill, now_s() - t0, logpath);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return 1;
        }
        bool killed = (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
                      (WIFEXITED(status) && WEXITSTATUS(status) == 99);
        if (!killed || !log_has(logpath, off, "xatm fault: ")) {
            say("--recovery-kill %s: xatmd ended without its fault firing (status 0x%x); "
                "see %s", o->recovery_kill, (unsigned)status, logpath);
            return 1;
        }
        t_kill = now_s() - t0;
        if (count_in_doubt(b, epoch, &kill_pg, &kill_my)) return 2;
    }

    /* 6. restart xatmd: from its start to no branch of that incarnation in doubt */
    off = file_size(logpath);
    t0 = now_s();
    pid = start_xatmd(o, logpath, NULL);
    double t_ready = -1, t_zero = -1, t_half = -1;
    while (now_s() - t0 < o->recovery_timeout) {
        if (t_ready < 0 && log_says_ready(logpath, off)) t_ready = now_s() - t0;
        if (count_in_doubt(b, epoch, &pgn, &myn)) break;
        if (t_half < 0 && pgn + myn <= n) t_half = now_s() - t0;
        if (pgn == 0 && myn == 0) {
            t_zero = now_s() - t0;
            break;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            say("xatmd exited during recovery; see %s", logpath);
            pid = 0;
            break;
        }
        if (o->progress) {
            if (o->progress_tty)
                fprintf(stderr, "\r\033[Krecovery: %5.1f s  in doubt pg=%lld my=%lld",
                        now_s() - t0, pgn, myn);
        }
        sleep_s(0.05);
    }
    if (o->progress && o->progress_tty) fprintf(stderr, "\r\033[K");
    if (t_ready < 0 && log_says_ready(logpath, off)) t_ready = now_s() - t0;
    int status_rc = 0;
    if (t_zero < 0) {
        say("RECOVERY INCOMPLETE after %.1f s: in doubt pg=%lld my=%lld; see %s",
            now_s() - t0, pgn, myn, logpath);
        status_rc = 1;
    } else if (check_totals(b, "recovery") != 0 ||
               check_outcomes(b, n, o->recovery_abort_pct) != 0) {
        status_rc = 1;
    }
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    if (o->json)
        printf("{\"recovery_in_doubt\":%ld,\"decided_commit\":%ld,\"presumed_abort\":%ld,"
               "\"rms\":2,\"prepare_s\":%.3f,\"killed_after_s\":%.3f,"
               "\"in_doubt_at_kill\":%lld,\"xatmd_ready_s\":%.3f,\"half_s\":%.3f,"
               "\"zero_in_doubt_s\":%.3f,\"totals_ok\":%s}\n",
               n, decided, n - decided, tprep, t_kill,
               kill_pg < 0 ? -1 : kill_pg + kill_my, t_ready, t_half, t_zero,
               status_rc == 0 ? "true" : "false");
    else {
        printf("recovery: %ld in-doubt global transactions (%ld with a COMMIT record, %ld "
               "presumed abort), %ld prepared branches on each of 2 RMs (built in %.1f s)\n",
               n, decided, n - decided, n, tprep);
        if (o->recovery_kill)
            printf("  xatmd armed with %s: killed after %.2f s with %lld branches still in "
                   "doubt\n", o->recovery_kill, t_kill, kill_pg + kill_my);
        printf("  xatmd start -> ready: %.2f s; -> half the branches finished: %.2f s; "
               "-> zero in doubt: %.2f s%s\n",
               t_ready, t_half, t_zero,
               status_rc == 0 ? "; totals conserved, every transaction's rows as decided" : "");
    }
    free(j.pg_ref);
    free(j.my_ref);
    free(ts);
    return status_rc;
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s -c CONFIG [options]\n"
            "  --pg RM[,RM...]        PostgreSQL RMs (default pg)\n"
            "  --my RM[,RM...]        MariaDB RMs (default my)\n"
            "  --branches K           branches per transaction, even, 2..%d (default 2);\n"
            "                         takes K/2 RMs from each list, alternating\n"
            "  --rows N               rows per table (default 10000)\n"
            "  --clients N            client threads (default 4)\n"
            "  --duration S           measured seconds per round and mode (default 5)\n"
            "  --warmup S             seconds run before measuring (default 1)\n"
            "  --protocol 2pc|3pc     xatm mode's protocol (default 2pc)\n"
            "  --mode xatm|bare-xa|local|bare-lr   run one mode (default xatm)\n"
            "  --decider RM           xatm mode with the decision in RM's branch: the config\n"
            "                         must set tm.decision_rm: RM (xatmd reads it too)\n"
            "  --compare              run the modes interleaved, --rounds each (default 3)\n"
            "  --modes LIST           modes of --compare (default local,bare-xa,xatm)\n"
            "  --json                 one JSON object on stdout\n"
            "  --progress             progress on stderr even when it is not a terminal\n"
            "  --xatmd-pid PID        xatmd's pid (default: from xatmctl status --json)\n"
            "  --xatmctl PATH         xatmctl to ask (default $XATMCTL, then PATH)\n"
            "  --no-setup             keep the tables of an earlier run\n"
            "  --seed S               random seed\n"
            "  --recovery N           measure xatmd's recovery of N in-doubt transactions\n"
            "    --xatmd PATH         the xatmd to restart (must not be running)\n"
            "    --recovery-abort-percent P   P %% of them presumed abort (default 0)\n"
            "    --recovery-threads T, --recovery-timeout S\n"
            "    --recovery-kill FAULT  first run a recovering xatmd with XATM_FAULT=FAULT\n"
            "                         (it must fire and kill it), then measure the restart\n"
            "  --rss-live N           xatmd's memory with N live transactions\n",
            prog, MAX_BRANCHES);
}

static bool parse_long(const char *s, long *out, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out, double min)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < min) return false;
    *out = v;
    return true;
}

/* Splits a comma list into at most max names (the strings point into a copy). */
static int split(const char *list, char **copy, const char **out, int max)
{
    *copy = strdup(list);
    if (!*copy) return -1;
    int n = 0;
    for (char *save = NULL, *t = strtok_r(*copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == max) return -1;
        out[n++] = t;
    }
    return n;
}

/* Fills b->br from the RM lists. */
static int resolve_branches(struct bench *b)
{
    const char *pgs[MAX_BRANCHES], *mys[MAX_BRANCHES];
    char *c1 = NULL, *c2 = NULL;
    int npg = split(b->o.pg_list, &c1, pgs, MAX_BRANCHES);
    int nmy = split(b->o.my_list, &c2, mys, MAX_BRANCHES);
    int half = b->o.branches / 2, rc = -1;
    if (npg < half || nmy < half) {
        say("--branches %d needs %d PostgreSQL RMs (--pg a,b,...) and %d MariaDB RMs "
            "(--my c,d,...); given %d and %d", b->o.branches, half, half, npg, nmy);
        goto out;
    }
    for (int k = 0; k < b->o.branches; k++) {
        const char *name = k % 2 == 0 ? pgs[k / 2] : mys[k / 2];
        const xatm_rm_config *r = xatm_config_rm(b->cfg, name);
        if (!r) {
            say("no RM named '%s' in %s", name, b->o.config);
            goto out;
        }
        if ((r->type == XATM_RM_POSTGRESQL) != (k % 2 == 0)) {
            say("RM '%s' is %s: --pg takes PostgreSQL RMs, --my MariaDB ones", name,
                xatm_rm_type_name(r->type));
            goto out;
        }
        b->br[k].rm = r;
        b->br[k].pg = r->type == XATM_RM_POSTGRESQL;
        bfmt(b->br[k].table, sizeof b->br[k].table, "xbench_%s", name);
        for (char *p = b->br[k].table; *p; p++)
            if (*p == '-') *p = '_';
        for (int j = 0; j < k; j++)
            if (b->br[j].rm == r) {
                say("RM '%s' is named twice", name);
                goto out;
            }
    }
    b->nbr = b->o.branches;
    rc = 0;
out:
    free(c1);
    free(c2);
    return rc;
}

static int parse_modes(const char *list, bool *modes)
{
    char *copy = NULL;
    const char *names[8];
    int n = split(list, &copy, names, 8);
    memset(modes, 0, N_MODES * sizeof *modes);
    int rc = n > 0 ? 0 : -1;
    for (int i = 0; i < n; i++) {
        int m;
        for (m = 0; m < N_MODES; m++)
            if (!strcmp(names[i], mode_names[m])) break;
        if (m == N_MODES) rc = -1;
        else modes[m] = true;
    }
    free(copy);
    return rc;
}

int main(int argc, char **argv)
{
    static struct bench b;
    struct options *o = &b.o;
    *o = (struct options){.pg_list = "pg", .my_list = "my", .branches = 2, .rows = 10000,
                          .clients = 4, .duration = 5, .warmup = 1, .rounds = 3,
                          .protocol = 2, .setup = true, .recovery_threads = 8,
                          .recovery_timeout = 600,
                          .seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16)};
    o->modes[MODE_XATM] = true;
    const char *mode_list = NULL;
    bool mode_given = false;
    enum { O_PG = 256, O_MY, O_BRANCHES, O_ROWS, O_CLIENTS, O_DURATION, O_WARMUP, O_PROTOCOL,
           O_MODE, O_COMPARE, O_MODES, O_ROUNDS, O_JSON, O_PROGRESS, O_PID, O_XATMCTL,
           O_NOSETUP, O_SEED, O_RECOVERY, O_XATMD, O_RABORT, O_RTHREADS, O_RTIMEOUT, O_RKILL,
           O_RSS, O_DECIDER };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"pg", required_argument, NULL, O_PG},
        {"my", required_argument, NULL, O_MY},
        {"branches", required_argument, NULL, O_BRANCHES},
        {"rows", required_argument, NULL, O_ROWS},
        {"clients", required_argument, NULL, O_CLIENTS},
        {"duration", required_argument, NULL, O_DURATION},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"protocol", required_argument, NULL, O_PROTOCOL},
        {"mode", required_argument, NULL, O_MODE},
        {"compare", no_argument, NULL, O_COMPARE},
        {"modes", required_argument, NULL, O_MODES},
        {"rounds", required_argument, NULL, O_ROUNDS},
        {"json", no_argument, NULL, O_JSON},
        {"progress", no_argument, NULL, O_PROGRESS},
        {"xatmd-pid", required_argument, NULL, O_PID},
        {"xatmctl", required_argument, NULL, O_XATMCTL},
        {"no-setup", no_argument, NULL, O_NOSETUP},
        {"decider", required_argument, NULL, O_DECIDER},
        {"seed", required_argument, NULL, O_SEED},
        {"recovery", required_argument, NULL, O_RECOVERY},
        {"xatmd", required_argument, NULL, O_XATMD},
        {"recovery-abort-percent", required_argument, NULL, O_RABORT},
        {"recovery-threads", required_argument, NULL, O_RTHREADS},
        {"recovery-timeout", required_argument, NULL, O_RTIMEOUT},
        {"recovery-kill", required_argument, NULL, O_RKILL},
        {"rss-live", required_argument, NULL, O_RSS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    long v;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (ch) {
        case 'c': o->config = optarg; break;
        case O_PG: o->pg_list = optarg; break;
        case O_MY: o->my_list = optarg; break;
        case O_BRANCHES:
            ok = parse_long(optarg, &v, 2, MAX_BRANCHES) && v % 2 == 0;
            o->branches = (int)v;
            break;
        case O_ROWS: ok = parse_long(optarg, &o->rows, 1, 100000000); break;
        case O_CLIENTS:
            ok = parse_long(optarg, &v, 1, MAX_CLIENTS);
            o->clients = (int)v;
            break;
        case O_DURATION: ok = parse_double(optarg, &o->duration, 0.05); break;
        case O_WARMUP: ok = parse_double(optarg, &o->warmup, 0); break;
        case O_PROTOCOL:
            ok = !strcmp(optarg, "2pc") || !strcmp(optarg, "3pc");
            o->protocol = optarg[0] - '0';
            break;
        case O_MODE: mode_list = optarg; mode_given = true; break;
        case O_COMPARE: o->compare = true; break;
        case O_MODES: mode_list = optarg; break;
        case O_ROUNDS:
            ok = parse_long(optarg, &v, 1, MAX_ROUNDS);
            o->rounds = (int)v;
            break;
        case O_JSON: o->json = true; break;
        case O_PROGRESS: o->progress = true; break;
        case O_PID: ok = parse_long(optarg, &o->xatmd_pid, 1, 1L << 30); break;
        case O_XATMCTL: o->xatmctl = optarg; break;
        case O_NOSETUP: o->setup = false; break;
        case O_DECIDER: o->decider = optarg; break;
        case O_SEED: ok = parse_long(optarg, &v, 0, LONG_MAX); o->seed = (uint64_t)v; break;
        case O_RECOVERY: ok = parse_long(optarg, &o->recovery, 1, 1000000); break;
        case O_XATMD: o->xatmd = optarg; break;
        case O_RABORT:
            ok = parse_long(optarg, &v, 0, 100);
            o->recovery_abort_pct = (int)v;
            break;
        case O_RTHREADS:
            ok = parse_long(optarg, &v, 1, 64);
            o->recovery_threads = (int)v;
            break;
        case O_RTIMEOUT: ok = parse_double(optarg, &o->recovery_timeout, 1); break;
        case O_RKILL: o->recovery_kill = optarg; break;
        case O_RSS: ok = parse_long(optarg, &o->rss_live, 1, 100000); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (!ok) {
            const struct option *lo = longopts;
            while (lo->name && lo->val != ch) lo++;
            say("bad value for --%s: %s", lo->name ? lo->name : "?", optarg);
            return 2;
        }
    }
    if (!o->config || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (o->compare && mode_given) {
        say("--compare runs several modes: choose them with --modes, not --mode");
        return 2;
    }
    if (mode_list && parse_modes(mode_list, o->modes) != 0) {
        say("bad mode list '%s' (modes: xatm, bare-xa, local, bare-lr)", mode_list);
        return 2;
    }
    if (o->compare && !mode_list) {
        for (int m = 0; m < N_MODES; m++) o->modes[m] = m != MODE_BARE_LR;
    }
    if (!o->compare) o->rounds = 1;
    if (isatty(STDERR_FILENO)) o->progress = o->progress_tty = true;
    if (o->recovery && o->rows < o->recovery) o->rows = o->recovery;

    /* many clients: a socket each to xatmd and to every RM */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    if (mysql_library_init(0, NULL, NULL) != 0) {
        say("cannot initialise the MariaDB client library");
        return 2;
    }

    char *errors = NULL;
    if (xatm_config_load(o->config, &b.cfg, &errors) != 0) {
        say("%s", errors ? errors : "cannot load the config");
        free(errors);
        return 2;
    }
    free(errors);
    int rc = 2;
    /* the decider is the config's (libxatm and xatmd both read tm.decision_rm): --decider
     * only states which run this is, and refuses a config that says otherwise */
    if (o->decider && (!b.cfg->decision_rm || strcmp(b.cfg->decision_rm, o->decider) != 0)) {
        say("--decider %s: the config %s must set tm.decision_rm: %s (xatmd must run with "
            "that config too); it has %s",
            o->decider, o->config, o->decider,
            b.cfg->decision_rm ? b.cfg->decision_rm : "no tm.decision_rm");
        goto out;
    }
    if (!o->decider && b.cfg->decision_rm) o->decider = b.cfg->decision_rm;
    if (resolve_branches(&b) != 0) goto out;
    b.nonce = (unsigned)(getpid() ^ (unsigned)time(NULL)) & 0xffffffu;

    char err[1024];
    for (int k = 0; k < b.nbr; k++) {
        if (b.br[k].pg) b.check_pg[k] = pg_open(b.br[k].rm, err, sizeof err);
        else b.check_my[k] = my_open(b.br[k].rm, err, sizeof err);
        if (!b.check_pg[k] && !b.check_my[k]) {
            say("%s", err);
            goto out;
        }
    }
    if (o->modes[MODE_BARE_LR] && !b.br[0].pg) {
        say("bare-lr commits its decision in branch 0, which must be a PostgreSQL RM (--pg)");
        goto out;
    }
    if (o->setup || o->recovery) {
        if (setup_tables(&b) != 0) goto out;
    }
    if (o->recovery) {
        rc = cmd_recovery(&b);
        goto out;
    }
    if (o->modes[MODE_XATM] || o->rss_live) {
        b.xatmd_pid = o->xatmd_pid ? (pid_t)o->xatmd_pid : xatmd_pid_from_xatmctl(o);
        if (b.xatmd_pid <= 0)
            say("xatmd's pid is unknown (give --xatmd-pid or --xatmctl): its CPU is not "
                "reported");
    }
    if (o->rss_live) {
        rc = cmd_rss_live(&b);
        goto out;
    }

    static struct mode_stats st[N_MODES];
    int checks = 0;
    rc = 1;
    for (int round = 0; round < o->rounds; round++) {
        for (int i = 0; i < N_MODES; i++) {
            enum mode m = (enum mode)((i + round) % N_MODES);
            if (!o->modes[m]) continue;
            if (run_round(&b, m, round, &st[m]) != 0) goto out;
            char what[64];
            bfmt(what, sizeof what, "round %d of %s", round + 1, mode_names[m]);
            if (check_totals(&b, what) != 0) goto out;
            checks++;
        }
    }
    report(&b, st, checks);
    rc = 0;
    for (int m = 0; m < N_MODES; m++) free(st[m].lat);

out:
    for (int k = 0; k < MAX_BRANCHES; k++) {
        if (b.check_pg[k]) PQfinish(b.check_pg[k]);
        if (b.check_my[k]) mysql_close(b.check_my[k]);
    }
    xatm_config_free(b.cfg);
    mysql_library_end();
    return rc;
}
