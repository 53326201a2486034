/*
 * xatm-transfer.c — the showcase of libxatm: money moves between an account in
 * PostgreSQL and an account in MariaDB, atomically, under many concurrent workers; then a
 * check proves that no money was created or lost and that both ledgers agree.
 *
 *   xatm-transfer -c CONFIG [--pg RM] [--my RM] setup --accounts N --balance B
 *   xatm-transfer -c CONFIG [--pg RM] [--my RM] run --workers W --transfers T
 *                 [--seed S] [--abort-percent P] [--progress] [--reconnect-timeout SECS]
 *                 [--committed-log FILE] [--id-prefix P] [--protocol 2pc|3pc]
 *   xatm-transfer -c CONFIG [--pg RM] [--my RM] check [--committed-log FILE]...
 *
 * The data, the same on both sides:
 *   accounts(id INT PRIMARY KEY, balance BIGINT NOT NULL)        N rows of balance B
 *   transfers(id VARCHAR(64) PRIMARY KEY, amount BIGINT NOT NULL) one row per transfer,
 *       with the same id and the same signed amount on both sides: amount > 0 moved money
 *       from PostgreSQL to MariaDB, amount < 0 the other way
 * and, on PostgreSQL only, xatm_demo_meta(accounts, balance) remembering N and B.
 *
 * One transfer is one global transaction (see do_transfer): xatm_begin; the PostgreSQL
 * work through the native PGconn that xatm_pg_conn() hands out (enlisting the branch);
 * the MariaDB work through xatm_exec() (the same, without touching MYSQL *); then
 * xatm_commit, or xatm_rollback for the share of transfers --abort-percent asks to abandon.
 * `--protocol` chooses the commit protocol of every transfer (xatm_begin_options.protocol);
 * without it the config's tm.protocol applies.
 *
 * What a worker does with each result of xatm_commit:
 *   0                 committed on both sides
 *   XATM_EABORTED     rolled back on both sides (a branch voted no, or xatmd aborted it)
 *   XATM_EUNKNOWN     xatmd went away after the votes: it will finish the transaction
 *                     from its log when it is back; the worker reconnects and goes on
 *   XATM_EHEURISTIC   3PC only: libxatm committed on its participant timeout and a branch
 *                     did not commit (xatmd had rolled it back): the sides may disagree,
 *                     and `check` will say so; counted apart, the worker goes on
 *   anything else     counted as an error (for XATM_ETM the worker reconnects; for
 *                     XATM_ERMUNAVAIL, a database down, it pauses 200 ms)
 * So a run survives xatmd being killed and restarted, and `check` afterwards (once xatmd's
 * recovery has finished the in-doubt branches) still finds every transfer on both sides
 * or on neither.
 *
 * The committed log is the application's receipt: with `run --committed-log FILE` a worker
 * appends the transfer id and a line break to FILE (one write(2), O_APPEND) as soon as
 * xatm_commit returned 0, before its next transfer; `check --committed-log FILE` (repeatable)
 * then requires every id in those files on both sides: a commit the application was told
 * about must never be lost, whatever crashed afterwards. A last line without its line break
 * (the writer was killed in the middle of it) is not counted.
 *
 * setup and check use plain sessions from xatm_pg_connect() / xatm_mysql_connect(): they
 * read the same config file as libxatm but need no xatmd and take part in no global
 * transaction.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <mysql.h>
#include <xatm.h>

/* Command line. */
struct options {
    const char *config;        /* -c: the xatm config file */
    const char *pg_rm;         /* --pg: the PostgreSQL RM's name */
    const char *my_rm;         /* --my: the MariaDB RM's name */
    const char *command;       /* setup | run | check */
    long accounts;             /* setup --accounts N */
    long balance;              /* setup --balance B */
    long workers;              /* run --workers W */
    long transfers;            /* run --transfers T (per worker) */
    uint64_t seed;             /* run --seed S */
    long abort_percent;        /* run --abort-percent P: share deliberately rolled back */
    long reconnect_timeout;    /* run --reconnect-timeout SECS: how long to retry xatm_open */
    bool progress;             /* run --progress: a line per second on stderr */
    const char *id_prefix;     /* run --id-prefix P: transfer ids are P-<worker>-<n>
                                  (default: the process id) */
    const char **committed_logs; /* --committed-log FILE: run writes the one, check reads all */
    size_t n_committed_logs;   /* entries in committed_logs */
    enum xatm_protocol protocol; /* run --protocol: 2pc | 3pc (default: the config's) */
};

/* Results of `run`, shared by the workers. */
struct tally {
    atomic_long committed; /* xatm_commit returned 0 */
    atomic_long aborted;   /* XATM_EABORTED, or rolled back on purpose */
    atomic_long unknown;   /* XATM_EUNKNOWN */
    atomic_long heuristic; /* XATM_EHEURISTIC (3PC participant-timeout commit, mixed) */
    atomic_long errors;    /* anything else */
    atomic_int running;    /* workers not finished yet */
    atomic_int gave_up;    /* workers that could not reconnect in time */
    int committed_fd;      /* --committed-log, opened O_APPEND; -1 without */
    atomic_int log_failed; /* a write to it failed (reported once) */
};

/* One worker thread. */
struct worker {
    int no;                     /* 0-based worker number, part of every transfer id */
    const struct options *opt;  /* the command line */
    struct tally *tally;        /* where results go */
    long accounts;              /* N, read from xatm_demo_meta */
    const char *id_prefix;      /* first part of every transfer id */
    uint64_t rng;               /* this worker's random state */
    pthread_t thread;           /* its thread */
};

static const char *prog = "xatm-transfer";

/* One line on stderr, written in one piece so that workers' lines do not interleave. */
static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    while (len > 0 && line[len - 1] == '\n') line[--len] = '\0'; /* libpq ends with one */
    fprintf(stderr, "%s: %s\n", prog, line);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* splitmix64: small, fast, good enough to pick accounts. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------- plain SQL helpers */

/* Runs one PostgreSQL command that returns no rows. 0 or -1 (message printed). */
static int pg_do(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok) say("postgresql: %s: %s", sql, PQerrorMessage(pg));
    PQclear(res);
    return ok ? 0 : -1;
}

/* Runs a PostgreSQL query returning one integer (first row, first column) into *out. */
static int pg_int(PGconn *pg, const char *sql, long long *out)
{
    PGresult *res = PQexec(pg, sql);
    int rc = -1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        say("postgresql: %s: %s", sql, PQresultStatus(res) == PGRES_TUPLES_OK
                                           ? "expected one row" : PQerrorMessage(pg));
    else {
        *out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        rc = 0;
    }
    PQclear(res);
    return rc;
}

static int my_do(MYSQL *my, const char *sql)
{
    if (mysql_query(my, sql) == 0) {
        MYSQL_RES *res = mysql_store_result(my); /* statements here return no rows */
        mysql_free_result(res);
        return 0;
    }
    say("mariadb: %s: %s", sql, mysql_error(my));
    return -1;
}

static int my_int(MYSQL *my, const char *sql, long long *out)
{
    if (mysql_query(my, sql) != 0) {
        say("mariadb: %s: %s", sql, mysql_error(my));
        return -1;
    }
    MYSQL_RES *res = mysql_store_result(my);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    int rc = -1;
    if (!row)
        say("mariadb: %s: expected one row", sql);
    else {
        *out = row[0] ? strtoll(row[0], NULL, 10) : 0;
        rc = 0;
    }
    mysql_free_result(res);
    return rc;
}

/* Plain sessions to both RMs (no xatmd involved). 0 or -1 (message printed). */
static int connect_both(const struct options *o, PGconn **pg, MYSQL **my)
{
    char err[1024];
    *pg = NULL;
    *my = NULL;
    if (xatm_pg_connect(o->config, o->pg_rm, pg, err, sizeof err) != 0) {
        say("%s", err);
        return -1;
    }
    if (xatm_mysql_connect(o->config, o->my_rm, my, err, sizeof err) != 0) {
        say("%s", err);
        PQfinish(*pg);
        *pg = NULL;
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- setup */

static int cmd_setup(const struct options *o)
{
    PGconn *pg;
    MYSQL *my;
    char sql[256];
    int rc = 1;

    if (connect_both(o, &pg, &my) != 0) return 2;

    /* A prepared branch left from an earlier run holds locks: fail instead of hanging. */
    if (pg_do(pg, "SET client_min_messages = warning") || pg_do(pg, "SET lock_timeout = '10s'") ||
        pg_do(pg, "BEGIN") ||
        pg_do(pg, "DROP TABLE IF EXISTS accounts, transfers, xatm_demo_meta") ||
        pg_do(pg, "CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL)") ||
        pg_do(pg, "CREATE TABLE transfers (id VARCHAR(64) PRIMARY KEY, amount BIGINT NOT NULL)") ||
        pg_do(pg, "CREATE TABLE xatm_demo_meta (accounts INT NOT NULL, balance BIGINT NOT NULL)"))
        goto close_sessions;
    snprintf(sql, sizeof sql, "INSERT INTO accounts SELECT g, %ld FROM generate_series(1, %ld) g",
             o->balance, o->accounts);
    if (pg_do(pg, sql)) goto close_sessions;
    snprintf(sql, sizeof sql, "INSERT INTO xatm_demo_meta VALUES (%ld, %ld)", o->accounts,
             o->balance);
    if (pg_do(pg, sql) || pg_do(pg, "COMMIT")) goto close_sessions;

    if (my_do(my, "SET SESSION lock_wait_timeout = 10") ||
        my_do(my, "DROP TABLE IF EXISTS accounts, transfers") ||
        my_do(my, "CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) "
                  "ENGINE=InnoDB") ||
        my_do(my, "CREATE TABLE transfers (id VARCHAR(64) PRIMARY KEY, amount BIGINT NOT NULL) "
                  "ENGINE=InnoDB") ||
        my_do(my, "START TRANSACTION"))
        goto close_sessions;
    /* MariaDB has no generate_series: insert in batches of 1000 rows. */
    for (long first = 1; first <= o->accounts; first += 1000) {
        char *batch = malloc(1000 * 48 + 64);
        if (!batch) goto close_sessions;
        size_t len = (size_t)sprintf(batch, "INSERT INTO accounts (id, balance) VALUES ");
        for (long id = first; id < first + 1000 && id <= o->accounts; id++)
            len += (size_t)sprintf(batch + len, "%s(%ld, %ld)", id == first ? "" : ",", id,
                                   o->balance);
        int brc = my_do(my, batch);
        free(batch);
        if (brc) goto close_sessions;
    }
    if (my_do(my, "COMMIT")) goto close_sessions;

    printf("setup: %ld accounts of balance %ld in RM '%s' and RM '%s' (total %lld)\n",
           o->accounts, o->balance, o->pg_rm, o->my_rm, 2LL * o->accounts * o->balance);
    rc = 0;

close_sessions:
    mysql_close(my);
    PQfinish(pg);
    return rc;
}

/* ---------------------------------------------------------------- run */

/* Opens a handle, retrying while xatmd is unreachable for up to --reconnect-timeout. */
static xatm_t *open_handle(const struct worker *w)
{
    double give_up = now_s() + (double)w->opt->reconnect_timeout;
    for (;;) {
        xatm_t *h;
        int rc = xatm_open(w->opt->config, &h);
        if (rc == 0) return h;
        if (rc != XATM_ETM || now_s() >= give_up) {
            say("worker %d: xatm_open: %s: %s", w->no, xatm_errname(rc), xatm_last_error(h));
            xatm_close(h);
            return NULL;
        }
        xatm_close(h);
        sleep_ms(200);
    }
}

/* Reports a failed step of transfer `id` (except expected aborts) and returns rc. */
static int report(const struct worker *w, const char *id, const char *step, xatm_t *h, int rc)
{
    say("worker %d transfer %s: %s: %s: %s", w->no, id, step, xatm_errname(rc),
        xatm_last_error(h));
    return rc;
}

/* One transfer, id `id`, as one global transaction. Returns 0 (committed), XATM_EABORTED
 * (rolled back, on purpose or not), or the code that stopped it. */
static int do_transfer(struct worker *w, xatm_t *h, const char *id)
{
    const struct options *o = w->opt;
    char sql[256], pg_account[24], pg_amount[24];

    long a = 1 + (long)(next_random(&w->rng) % (uint64_t)w->accounts); /* PostgreSQL side */
    long b = 1 + (long)(next_random(&w->rng) % (uint64_t)w->accounts); /* MariaDB side */
    long amount = 1 + (long)(next_random(&w->rng) % 100);
    bool pg_to_my = next_random(&w->rng) & 1;
    long signed_amount = pg_to_my ? amount : -amount;
    bool abandon = (long)(next_random(&w->rng) % 100) < o->abort_percent;

    xatm_begin_options bo = {.protocol = o->protocol};
    int rc = xatm_begin(h, &bo);
    if (rc) return report(w, id, "begin", h, rc);

    /* PostgreSQL: the native session, already inside the branch. */
    PGconn *pg = xatm_pg_conn(h, o->pg_rm);
    if (!pg) {
        rc = report(w, id, "xatm_pg_conn", h, xatm_last_code(h));
        goto roll_back;
    }
    snprintf(pg_account, sizeof pg_account, "%ld", a);
    snprintf(pg_amount, sizeof pg_amount, "%ld", amount);
    const char *update_args[] = {pg_amount, pg_account};
    const char *update = pg_to_my ? "UPDATE accounts SET balance = balance - $1 WHERE id = $2"
                                  : "UPDATE accounts SET balance = balance + $1 WHERE id = $2";
    PGresult *res = PQexecParams(pg, update, 2, NULL, update_args, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    if (ok) {
        snprintf(pg_amount, sizeof pg_amount, "%ld", signed_amount);
        const char *insert_args[] = {id, pg_amount};
        res = PQexecParams(pg, "INSERT INTO transfers (id, amount) VALUES ($1, $2)", 2, NULL,
                           insert_args, NULL, NULL, 0);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    if (!ok) {
        say("worker %d transfer %s: postgresql: %s", w->no, id,
            PQerrorMessage(pg)[0] ? PQerrorMessage(pg) : "account missing");
        rc = XATM_ERMERR;
        goto roll_back;
    }

    /* MariaDB: xatm_exec runs the statement in the branch and marks it failed on error. */
    uint64_t affected = 0;
    snprintf(sql, sizeof sql, "UPDATE accounts SET balance = balance %c %ld WHERE id = %ld",
             pg_to_my ? '+' : '-', amount, b);
    rc = xatm_exec(h, o->my_rm, sql, &affected);
    if (rc) {
        report(w, id, "update", h, rc);
        goto roll_back;
    }
    if (affected != 1) {
        say("worker %d transfer %s: mariadb: account %ld missing", w->no, id, b);
        rc = XATM_ERMERR;
        goto roll_back;
    }
    snprintf(sql, sizeof sql, "INSERT INTO transfers (id, amount) VALUES ('%s', %ld)", id,
             signed_amount);
    rc = xatm_exec(h, o->my_rm, sql, NULL);
    if (rc) {
        report(w, id, "insert", h, rc);
        goto roll_back;
    }

    if (abandon) {
        xatm_rollback(h);
        return XATM_EABORTED;
    }
    rc = xatm_commit(h);
    if (rc) report(w, id, "commit", h, rc);
    return rc;

roll_back:
    xatm_rollback(h);
    return rc;
}

/* The receipt of a committed transfer: "id\n" appended to the committed log in one write. */
static void log_committed(struct worker *w, const char *id)
{
    struct tally *t = w->tally;
    if (t->committed_fd < 0) return;
    char line[80];
    int len = snprintf(line, sizeof line, "%s\n", id);
    if (write(t->committed_fd, line, (size_t)len) != len &&
        atomic_exchange(&t->log_failed, 1) == 0)
        say("worker %d: cannot append to the committed log: %s", w->no, strerror(errno));
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct tally *t = w->tally;
    xatm_t *h = open_handle(w);

    for (long n = 0; h && n < w->opt->transfers; n++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d-%ld", w->id_prefix, w->no, n);
        int rc = do_transfer(w, h, id);
        if (rc == 0) {
            log_committed(w, id);
            atomic_fetch_add(&t->committed, 1);
        } else if (rc == XATM_EABORTED)
            atomic_fetch_add(&t->aborted, 1);
        else if (rc == XATM_EUNKNOWN)
            atomic_fetch_add(&t->unknown, 1);
        else if (rc == XATM_EHEURISTIC)
            atomic_fetch_add(&t->heuristic, 1);
        else
            atomic_fetch_add(&t->errors, 1);

        if (rc == XATM_EUNKNOWN || rc == XATM_ETM) {
            /* xatmd went away: start over with a fresh handle once it is back. */
            xatm_close(h);
            h = open_handle(w);
        }
        if (rc == XATM_ERMUNAVAIL)
            sleep_ms(200); /* a database is down: give it time instead of failing in a loop */
    }
    if (!h) {
        say("worker %d: giving up (no xatm handle)", w->no);
        atomic_fetch_add(&t->gave_up, 1);
    }
    xatm_close(h);
    atomic_fetch_sub(&t->running, 1);
    return NULL;
}

static void print_tally(FILE *f, const char *prefix, struct tally *t, double elapsed)
{
    long c = atomic_load(&t->committed);
    fprintf(f,
            "%s: committed=%ld aborted=%ld unknown=%ld heuristic=%ld errors=%ld elapsed=%.2fs "
            "rate=%.1f/s\n",
            prefix, c, atomic_load(&t->aborted), atomic_load(&t->unknown),
            atomic_load(&t->heuristic), atomic_load(&t->errors), elapsed,
            elapsed > 0 ? (double)c / elapsed : 0.0);
}

static int cmd_run(const struct options *o)
{
    /* The number of accounts comes from setup. */
    PGconn *pg;
    char err[1024];
    long long accounts = 0;
    if (xatm_pg_connect(o->config, o->pg_rm, &pg, err, sizeof err) != 0) {
        say("%s", err);
        return 2;
    }
    int qrc = pg_int(pg, "SELECT accounts FROM xatm_demo_meta", &accounts);
    PQfinish(pg);
    if (qrc || accounts <= 0) {
        say("no accounts: run `%s -c %s setup` first", prog, o->config);
        return 2;
    }

    struct tally t;
    memset(&t, 0, sizeof t);
    atomic_store(&t.running, (int)o->workers);
    t.committed_fd = -1;
    if (o->n_committed_logs > 1) {
        say("run takes one --committed-log");
        return 2;
    }
    if (o->n_committed_logs == 1) {
        t.committed_fd = open(o->committed_logs[0], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                              0644);
        if (t.committed_fd < 0) {
            say("cannot open the committed log %s: %s", o->committed_logs[0], strerror(errno));
            return 2;
        }
    }
    struct worker *ws = calloc((size_t)o->workers, sizeof *ws);
    if (!ws) {
        say("out of memory");
        if (t.committed_fd >= 0) close(t.committed_fd);
        return 2;
    }
    char pid_prefix[24];
    snprintf(pid_prefix, sizeof pid_prefix, "%ld", (long)getpid());
    say("run: %ld workers x %ld transfers, seed %" PRIu64 ", abort-percent %ld, protocol %s",
        o->workers, o->transfers, o->seed, o->abort_percent,
        o->protocol == XATM_PROTOCOL_3PC   ? "3pc"
        : o->protocol == XATM_PROTOCOL_2PC ? "2pc"
                                           : "the config's tm.protocol");

    double start = now_s();
    long started = 0;
    for (; started < o->workers; started++) {
        struct worker *w = &ws[started];
        w->no = (int)started;
        w->opt = o;
        w->tally = &t;
        w->accounts = (long)accounts;
        w->id_prefix = o->id_prefix ? o->id_prefix : pid_prefix;
        w->rng = o->seed * 1000003u + (uint64_t)started;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            say("cannot start worker %ld", started);
            atomic_fetch_sub(&t.running, (int)(o->workers - started));
            break;
        }
    }

    double next_report = start + 1.0;
    while (atomic_load(&t.running) > 0) {
        sleep_ms(50);
        if (o->progress && now_s() >= next_report) {
            print_tally(stderr, "progress", &t, now_s() - start);
            next_report += 1.0;
        }
    }
    for (long i = 0; i < started; i++) pthread_join(ws[i].thread, NULL);
    print_tally(stdout, "transfers", &t, now_s() - start);
    free(ws);
    if (t.committed_fd >= 0) close(t.committed_fd);
    return started < o->workers || atomic_load(&t.gave_up) ? 1 : 0;
}

/* ---------------------------------------------------------------- check */

/* One transfers row. */
struct ledger_row {
    char id[65];   /* transfer id */
    long long amount; /* signed amount */
};

/* All transfers rows of one side, sorted by id. */
struct ledger {
    struct ledger_row *rows; /* n rows, owned */
    size_t n;                /* rows */
    long long sum;           /* sum of amounts */
};

static int ledger_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ledger_row *)a)->id, ((const struct ledger_row *)b)->id);
}

static int ledger_add(struct ledger *l, size_t *cap, const char *id, const char *amount)
{
    if (l->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 1024;
        struct ledger_row *p = realloc(l->rows, ncap * sizeof *p);
        if (!p) return -1;
        l->rows = p;
        *cap = ncap;
    }
    struct ledger_row *r = &l->rows[l->n++];
    snprintf(r->id, sizeof r->id, "%s", id);
    r->amount = strtoll(amount, NULL, 10);
    l->sum += r->amount;
    return 0;
}

static int ledger_read_pg(PGconn *pg, struct ledger *l)
{
    PGresult *res = PQexec(pg, "SELECT id, amount FROM transfers");
    size_t cap = 0;
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        say("postgresql: reading transfers: %s", PQerrorMessage(pg));
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < PQntuples(res); i++)
        rc = ledger_add(l, &cap, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    PQclear(res);
    if (rc == 0 && l->n > 0) qsort(l->rows, l->n, sizeof *l->rows, ledger_cmp);
    return rc;
}

static int ledger_read_my(MYSQL *my, struct ledger *l)
{
    if (mysql_query(my, "SELECT id, amount FROM transfers") != 0) {
        say("mariadb: reading transfers: %s", mysql_error(my));
        return -1;
    }
    MYSQL_RES *res = mysql_use_result(my);
    size_t cap = 0;
    int rc = res ? 0 : -1;
    MYSQL_ROW row;
    while (res && (row = mysql_fetch_row(res)) != NULL)
        if (rc == 0) rc = ledger_add(l, &cap, row[0], row[1]);
    mysql_free_result(res);
    if (rc == 0 && l->n > 0) qsort(l->rows, l->n, sizeof *l->rows, ledger_cmp);
    return rc;
}

/* true when the sorted ledger l holds transfer id. */
static bool ledger_has(const struct ledger *l, const char *id)
{
    struct ledger_row key;
    snprintf(key.id, sizeof key.id, "%s", id);
    return l->n && bsearch(&key, l->rows, l->n, sizeof *l->rows, ledger_cmp) != NULL;
}

/* What the committed logs say, checked against both ledgers. */
struct receipts {
    long long listed;    /* ids read (complete lines) */
    long long missing;   /* of those, absent from at least one side */
    char first[65];      /* the first missing id, for the report */
};

/* Reads every --committed-log file and looks each id up in both ledgers. 0 or -1. */
static int check_receipts(const struct options *o, const struct ledger *lp,
                          const struct ledger *lm, struct receipts *r)
{
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < o->n_committed_logs; i++) {
        FILE *f = fopen(o->committed_logs[i], "r");
        if (!f) {
            say("cannot read the committed log %s: %s", o->committed_logs[i], strerror(errno));
            return -1;
        }
        char line[128];
        while (fgets(line, sizeof line, f)) {
            size_t len = strlen(line);
            if (len == 0 || line[len - 1] != '\n') continue; /* cut short by a kill */
            line[len - 1] = '\0';
            if (!line[0]) continue;
            r->listed++;
            if (ledger_has(lp, line) && ledger_has(lm, line)) continue;
            if (r->missing++ == 0) snprintf(r->first, sizeof r->first, "%s", line);
        }
        fclose(f);
    }
    return 0;
}

/* Counts prepared branches with our formatID in XA RECOVER. */
static int my_prepared(MYSQL *my, uint32_t format_id, long long *out)
{
    if (mysql_query(my, "XA RECOVER") != 0) {
        say("mariadb: XA RECOVER: %s", mysql_error(my));
        return -1;
    }
    MYSQL_RES *res = mysql_store_result(my);
    MYSQL_ROW row;
    *out = 0;
    while (res && (row = mysql_fetch_row(res)) != NULL)
        if (row[0] && strtoll(row[0], NULL, 10) == (long long)format_id) (*out)++;
    mysql_free_result(res);
    return 0;
}

/* Appends one reason to the INCONSISTENT line. */
static void __attribute__((format(printf, 2, 3))) why(char *buf, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 3 >= 1024) return;
    if (len) {
        memcpy(buf + len, "; ", 3);
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, 1024 - len, fmt, ap);
    va_end(ap);
}

static int cmd_check(const struct options *o)
{
    PGconn *pg;
    MYSQL *my;
    char err[1024];
    uint32_t format_id;
    struct ledger lp = {0}, lm = {0};
    long long accounts = 0, balance = 0, pg_total = 0, my_total = 0, pg_rows = 0, my_rows = 0;
    long long prepared_pg = 0, prepared_my = 0;
    struct receipts receipts;
    char pg_prepared_sql[128];
    int rc = 2;

    if (xatm_config_format_id(o->config, &format_id, err, sizeof err) != 0) {
        say("%s", err);
        return 2;
    }
    if (connect_both(o, &pg, &my) != 0) return 2;

    /* xatm's gids carry the formatID: count only this TM configuration's branches */
    snprintf(pg_prepared_sql, sizeof pg_prepared_sql,
             "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'xatm:%08lx:%%'",
             (unsigned long)format_id);
    if (pg_int(pg, "SELECT accounts FROM xatm_demo_meta", &accounts) ||
        pg_int(pg, "SELECT balance FROM xatm_demo_meta", &balance) ||
        pg_int(pg, "SELECT COALESCE(SUM(balance), 0) FROM accounts", &pg_total) ||
        pg_int(pg, "SELECT count(*) FROM accounts", &pg_rows) ||
        pg_int(pg, pg_prepared_sql, &prepared_pg) ||
        my_int(my, "SELECT COALESCE(SUM(balance), 0) FROM accounts", &my_total) ||
        my_int(my, "SELECT count(*) FROM accounts", &my_rows) ||
        my_prepared(my, format_id, &prepared_my) || ledger_read_pg(pg, &lp) ||
        ledger_read_my(my, &lm) || check_receipts(o, &lp, &lm, &receipts))
        goto free_all;

    /* Compare the two sorted id lists. */
    long long only_pg = 0, only_my = 0, differ = 0;
    size_t i = 0, j = 0;
    while (i < lp.n || j < lm.n) {
        int c = i == lp.n ? 1 : j == lm.n ? -1 : strcmp(lp.rows[i].id, lm.rows[j].id);
        if (c < 0) {
            only_pg++;
            i++;
        } else if (c > 0) {
            only_my++;
            j++;
        } else {
            differ += lp.rows[i].amount != lm.rows[j].amount;
            i++;
            j++;
        }
    }

    long long expected = 2 * accounts * balance, total = pg_total + my_total;
    printf("pg_total=%lld my_total=%lld total=%lld expected=%lld ledger_pg=%zu ledger_my=%zu "
           "only_pg=%lld only_my=%lld prepared_pg=%lld prepared_my=%lld",
           pg_total, my_total, total, expected, lp.n, lm.n, only_pg, only_my, prepared_pg,
           prepared_my);
    if (o->n_committed_logs)
        printf(" committed_listed=%lld committed_missing=%lld", receipts.listed,
               receipts.missing);
    printf("\n");

    char reasons[1024] = "";
    if (total != expected) why(reasons, "total %lld != expected %lld", total, expected);
    if (pg_rows != accounts || my_rows != accounts)
        why(reasons, "account rows pg=%lld my=%lld, expected %lld each", pg_rows, my_rows,
            accounts);
    /* Each side's balances must agree with its own ledger (amount > 0 left PostgreSQL). */
    if (pg_total != accounts * balance - lp.sum)
        why(reasons, "pg balances %lld do not match its ledger (%lld)", pg_total,
            accounts * balance - lp.sum);
    if (my_total != accounts * balance + lm.sum)
        why(reasons, "my balances %lld do not match its ledger (%lld)", my_total,
            accounts * balance + lm.sum);
    if (only_pg) why(reasons, "%lld transfers only in '%s'", only_pg, o->pg_rm);
    if (only_my) why(reasons, "%lld transfers only in '%s'", only_my, o->my_rm);
    if (differ) why(reasons, "%lld transfers with different amounts on the two sides", differ);
    if (receipts.missing)
        why(reasons, "%lld transfers reported committed are missing from a side (first: %s)",
            receipts.missing, receipts.first);
    if (prepared_pg || prepared_my)
        why(reasons, "prepared xatm branches left (pg=%lld my=%lld): in doubt until xatmd's "
            "recovery finishes them", prepared_pg, prepared_my);
    if (reasons[0]) {
        printf("INCONSISTENT: %s\n", reasons);
        rc = 1;
    } else {
        printf("CONSISTENT\n");
        rc = 0;
    }

free_all:
    free(lp.rows);
    free(lm.rows);
    mysql_close(my);
    PQfinish(pg);
    return rc;
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *f);

/* Runs the command named on the command line; returns the exit status. */
static int run_command(const struct options *o)
{
    if (strcmp(o->command, "setup") == 0) {
        if (o->accounts <= 0 || o->balance < 0) {
            say("setup needs --accounts N and --balance B");
            return 2;
        }
        return cmd_setup(o);
    }
    if (strcmp(o->command, "run") == 0) return cmd_run(o);
    if (strcmp(o->command, "check") == 0) return cmd_check(o);
    say("unknown command '%s'", o->command);
    usage(stderr);
    return 2;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s -c CONFIG [--pg RM] [--my RM] COMMAND [options]\n"
            "  setup --accounts N --balance B    (re)create the tables on both RMs\n"
            "  run --workers W --transfers T [--seed S] [--abort-percent P] [--progress]\n"
            "      [--reconnect-timeout SECS]    W threads x T transfers, one global\n"
            "      [--committed-log FILE]        transaction each; FILE gets the id of\n"
            "                                    every transfer whose commit returned 0\n"
            "      [--id-prefix P]               ids are P-<worker>-<n> (default: the pid)\n"
            "      [--protocol 2pc|3pc]          commit protocol (default: tm.protocol)\n"
            "  check [--committed-log FILE]...   verify both sides agree (and hold every\n"
            "                                    id the files list); exit 0 if so\n"
            "RM names default to \"pg\" and \"my\".\n",
            prog);
}

/* An id prefix goes into SQL text and a 64-character id: 1..40 of [A-Za-z0-9.]. */
static bool valid_id_prefix(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 40) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.'))
            return false;
    return true;
}

/* Parses a whole non-negative number. */
static bool parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0) return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    struct options o = {
        .pg_rm = "pg", .my_rm = "my", .accounts = -1, .balance = -1, .workers = 4,
        .transfers = 100, .abort_percent = 0, .reconnect_timeout = 30,
        .seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16),
    };
    enum { OPT_PG = 256, OPT_MY, OPT_ACCOUNTS, OPT_BALANCE, OPT_WORKERS, OPT_TRANSFERS,
           OPT_SEED, OPT_ABORT, OPT_PROGRESS, OPT_RECONNECT, OPT_COMMITTED_LOG,
           OPT_ID_PREFIX, OPT_PROTOCOL };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"pg", required_argument, NULL, OPT_PG},
        {"my", required_argument, NULL, OPT_MY},
        {"accounts", required_argument, NULL, OPT_ACCOUNTS},
        {"balance", required_argument, NULL, OPT_BALANCE},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"transfers", required_argument, NULL, OPT_TRANSFERS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"abort-percent", required_argument, NULL, OPT_ABORT},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"reconnect-timeout", required_argument, NULL, OPT_RECONNECT},
        {"committed-log", required_argument, NULL, OPT_COMMITTED_LOG},
        {"id-prefix", required_argument, NULL, OPT_ID_PREFIX},
        {"protocol", required_argument, NULL, OPT_PROTOCOL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    long v;
    /* at most one --committed-log per argument: the list can never be longer than argc */
    o.committed_logs = calloc((size_t)argc, sizeof *o.committed_logs);
    if (!o.committed_logs) {
        say("out of memory");
        return 2;
    }
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (ch) {
        case 'c': o.config = optarg; break;
        case OPT_PG: o.pg_rm = optarg; break;
        case OPT_MY: o.my_rm = optarg; break;
        case OPT_ACCOUNTS: ok = parse_long(optarg, &o.accounts) && o.accounts > 0; break;
        case OPT_BALANCE: ok = parse_long(optarg, &o.balance); break;
        case OPT_WORKERS:
            ok = parse_long(optarg, &o.workers) && o.workers > 0 && o.workers <= 1024;
            break;
        case OPT_TRANSFERS: ok = parse_long(optarg, &o.transfers); break;
        case OPT_SEED: ok = parse_long(optarg, &v); o.seed = (uint64_t)v; break;
        case OPT_ABORT: ok = parse_long(optarg, &o.abort_percent) && o.abort_percent <= 100; break;
        case OPT_PROGRESS: o.progress = true; break;
        case OPT_RECONNECT: ok = parse_long(optarg, &o.reconnect_timeout); break;
        case OPT_COMMITTED_LOG: o.committed_logs[o.n_committed_logs++] = optarg; break;
        case OPT_ID_PREFIX: o.id_prefix = optarg; ok = valid_id_prefix(optarg); break;
        case OPT_PROTOCOL:
            ok = !strcmp(optarg, "2pc") || !strcmp(optarg, "3pc");
            o.protocol = !strcmp(optarg, "3pc") ? XATM_PROTOCOL_3PC : XATM_PROTOCOL_2PC;
            break;
        case 'h': usage(stdout); free(o.committed_logs); return 0;
        default: usage(stderr); free(o.committed_logs); return 2;
        }
        if (!ok) {
            const struct option *lo = longopts;
            while (lo->name && lo->val != ch) lo++;
            say("bad value for --%s: %s", lo->name ? lo->name : "?", optarg);
            free(o.committed_logs);
            return 2;
        }
    }
    if (!o.config || optind != argc - 1) {
        usage(stderr);
        free(o.committed_logs);
        return 2;
    }
    o.command = argv[optind];
    int rc = run_command(&o);
    free(o.committed_logs);
    return rc;
}
