/*
 * main.c — xatmd's entry point: command line, start-up sequence, shutdown. Owns the one
 * struct tm_ctx of the process and everything hung on it; every other module gets it
 * passed down.
 *
 * Start-up, in this order (each step's failure is reported and the process exits 1):
 *   1. XATM_FAULT is parsed (xatm_fault_init): a bad spec refuses to start. Only when it
 *      arms the io point "tm.log_write" is the decision log opened through the
 *      fault-injecting file layer of faultio.h (torn lengths seeded by XATM_FAULT_SEED);
 *   2. the config is loaded (every mistake printed as file:line:column);
 *   3. if another xatmd answers on either socket path, the start is refused before the
 *      log is touched (stale socket files are removed);
 *   4. the decision log is opened and replayed: BOOT/CHECKPOINT epochs give the highest
 *      epoch seen, COMMIT/PRECOMMIT/ABORT/HEURISTIC/END fill the unresolved-decision
 *      registry;
 *      a corrupt log stops the start with its file and offset;
 *   5. epoch = highest seen + 1; a BOOT record is appended, forced and flushed;
 *   6. start-up recovery (two passes) settles what earlier incarnations left prepared
 *      (its first connection to each RM also creates the 3PC marker table there);
 *   7. the sockets are created and one line "xatmd: ready tm=<id> epoch=<n> socket=<path>"
 *      is written to stderr (after the timestamp prefix every daemon line carries);
 *   8. the recovery thread starts, and the event loop runs.
 * SIGTERM/SIGINT are blocked from the start and read through a signalfd by the loop: the
 * loop stops accepting, flushes the log, sends what the last batch decided; then main
 * stops recovery, closes the sockets (unlinking them), closes the log and exits 0. A fatal
 * log failure exits 1.
 *
 * Exit status: 0 clean stop or --check-config ok; 1 any failure (start-up, config, log);
 * 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/fault.h"
#include "faultio.h"
#include "gtx.h"
#include "recovery.h"
#include "server.h"
#include "tm.h"
#include "xatm.h"

#ifndef XATM_VERSION
#define XATM_VERSION "unknown"
#endif

#define DEFAULT_CONFIG "/etc/xatm/xatm.yaml"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xatmd [-c FILE]          run the transaction manager in the foreground\n"
            "       xatmd --check-config FILE  validate a config file and exit\n"
            "       xatmd --version | --help\n"
            "\n"
            "The config file is -c FILE, else $XATM_CONFIG, else " DEFAULT_CONFIG ".\n"
            "Messages go to stderr. SIGTERM or SIGINT stops the daemon cleanly.\n"
            "XATM_FAULT=<point>[@<n>][:kill|stop|exit|enospc|torn|partition] arms a test\n"
            "fault point (XATM_FAULT_SEED=<n> seeds the length of a torn log write).\n");
}

/* Prints every line of a config error text, or a generic line when there is none. */
static void print_config_errors(const char *path, int rc, const char *errors)
{
    if (errors && *errors) {
        fputs(errors, stderr);
        if (errors[strlen(errors) - 1] != '\n') fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: %s\n", path, xatm_strerror(rc));
    }
}

static int check_config(const char *path)
{
    xatm_config *cfg = NULL;
    char *errors = NULL;
    int rc = xatm_config_load(path, &cfg, &errors);
    if (rc != 0) {
        print_config_errors(path, rc, errors);
        free(errors);
        return 1;
    }
    free(errors);
    xatm_config_free(cfg);
    printf("%s: ok\n", path);
    return 0;
}

/* Replay state: the ctx to fill and the first failure. */
typedef struct replay_state {
    struct tm_ctx *ctx; /* receives max_epoch_seen and the registry */
    int rc;             /* first error (out of memory), 0 while fine */
    uint64_t records;   /* records replayed */
} replay_state;

static void replay_record(const xatm_declog_record *rec, void *arg)
{
    replay_state *st = arg;
    st->records++;
    if (rec->type == XATM_DL_BOOT || rec->type == XATM_DL_CHECKPOINT) {
        if (rec->epoch > st->ctx->max_epoch_seen) st->ctx->max_epoch_seen = rec->epoch;
        return;
    }
    int rc = tm_decisions_replay(st->ctx->decisions, rec, tm_now_ms());
    if (rc && !st->rc) st->rc = rc;
}

/* Names of the configured RMs, for the gtx table and the registry (points into cfg). */
static const char **rm_names(const xatm_config *cfg)
{
    const char **v = calloc(cfg->n_rms ? cfg->n_rms : 1, sizeof *v);
    if (!v) return NULL;
    for (size_t i = 0; i < cfg->n_rms; i++) v[i] = cfg->rms[i].name;
    return v;
}

/* Opens and replays the log (through io; NULL = POSIX), then appends the forced BOOT
 * record. 0 or 1 (logged). */
static int open_log(struct tm_ctx *ctx, const xatm_declog_io *io)
{
    const xatm_config *cfg = ctx->cfg;
    xatm_declog_options opts = {
        .segment_size = cfg->log_segment_size,
        .io = io,
        .unresolved = recovery_emit_unresolved,
        .unresolved_arg = ctx,
    };
    replay_state st = {ctx, 0, 0};
    char err[1024] = "";
    int rc = xatm_declog_open(cfg->log_dir, &opts, replay_record, &st, &ctx->log, err, sizeof err);
    if (rc == XATM_ECORRUPT) {
        tm_log(err[0] ? err : "no detail",
               "xatmd never skips a damaged record (a lost COMMIT would roll back committed "
               "work): restore the log directory from a backup, or inspect the named segment "
               "at that offset.",
               "decision log is corrupt");
        return 1;
    }
    if (rc != 0) {
        tm_log(err[0] ? err : xatm_strerror(rc),
               "Check that the directory exists or can be created, and is writable by "
               "xatmd's user.",
               "cannot open the decision log in %s", cfg->log_dir);
        return 1;
    }
    if (err[0]) tm_log(err, NULL, "decision log repaired at open");
    if (st.rc != 0) {
        tm_log(xatm_strerror(st.rc), NULL, "cannot replay the decision log in %s", cfg->log_dir);
        return 1;
    }
    if (ctx->max_epoch_seen == UINT32_MAX) {
        tm_log("The epoch counter would wrap.", "Start with a fresh log directory.",
               "cannot start a new epoch");
        return 1;
    }
    ctx->epoch = ctx->max_epoch_seen + 1;
    xatm_declog_record boot;
    memset(&boot, 0, sizeof boot);
    boot.type = XATM_DL_BOOT;
    boot.epoch = ctx->epoch;
    rc = tm_log_append(ctx, &boot, true);
    if (rc == 0) rc = tm_log_flush(ctx);
    if (rc != 0) {
        tm_log(xatm_strerror(rc), "Check the disk of the log directory (space, permissions).",
               "cannot write the BOOT record to the decision log in %s", cfg->log_dir);
        return 1;
    }
    size_t unresolved = tm_decisions_count(ctx->decisions);
    tm_log(NULL, NULL,
           "decision log %s: %llu record%s replayed, %zu unresolved decision%s, epoch %u",
           cfg->log_dir, (unsigned long long)st.records, st.records == 1 ? "" : "s", unresolved,
           unresolved == 1 ? "" : "s", ctx->epoch);
    return 0;
}

/* The fault-injecting log layer when XATM_FAULT arms "tm.log_write", else NULL in *out.
 * 0, or 1 (logged) on a bad XATM_FAULT_SEED or out of memory. */
static int make_faultio(tm_faultio **out)
{
    *out = NULL;
    if (xatm_fault_armed_action("tm.log_write") < 0) return 0;
    uint64_t seed = 0;
    const char *s = getenv("XATM_FAULT_SEED");
    if (s && *s) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || *s < '0' || *s > '9') {
            tm_log(NULL, "Use a decimal number.", "invalid XATM_FAULT_SEED \"%s\"; refusing to start",
                   s);
            return 1;
        }
        seed = v;
    }
    *out = tm_faultio_new(seed);
    if (!*out) {
        tm_log(NULL, NULL, "out of memory at start-up");
        return 1;
    }
    tm_log(NULL, NULL, "decision log writes go through the fault-injecting layer "
           "(XATM_FAULT=%s, XATM_FAULT_SEED=%llu)", getenv("XATM_FAULT"),
           (unsigned long long)seed);
    return 0;
}

/* The daemon proper. Returns the exit status. */
static int run(const char *config_path)
{
    int status = 1;
    const char **names = NULL;
    tm_faultio *fio = NULL;
    char ferr[256] = "";
    if (xatm_fault_init(ferr, sizeof ferr) != 0) {
        tm_log(ferr,
               "Unset XATM_FAULT, or use "
               "<point>[@<n>][:kill|stop|exit|enospc|torn|partition] with a point name that "
               "exists.",
               "invalid XATM_FAULT; refusing to start");
        return 1;
    }
    if (make_faultio(&fio) != 0) return 1;

    struct tm_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.pid = getpid();
    ctx.start_mono_ms = tm_now_ms();
    atomic_init(&ctx.fatal, false);
    if (pthread_mutex_init(&ctx.log_mu, NULL) != 0) goto out_free_faultio;

    xatm_config *cfg = NULL;
    char *errors = NULL;
    int rc = xatm_config_load(config_path, &cfg, &errors);
    if (rc != 0) {
        tm_log(NULL, "Run xatmd --check-config FILE after fixing it.",
               "configuration file %s is not valid", config_path);
        print_config_errors(config_path, rc, errors);
        free(errors);
        goto out_destroy_mutex;
    }
    free(errors);
    ctx.cfg = cfg;
    tm_log(NULL, NULL, "starting: pid %ld, config %s, tm %s", (long)ctx.pid, config_path,
           cfg->tm_id);

    if (server_preflight(cfg) != 0) goto out_free_config;
    names = rm_names(cfg);
    if (!names) goto out_free_config;
    ctx.decisions = tm_decisions_new(names, cfg->n_rms);
    if (!ctx.decisions) goto out_free_names;
    if (open_log(&ctx, tm_faultio_io(fio)) != 0) goto out_close_log;

    ctx.gtx = gtx_table_new(cfg->tm_id, ctx.epoch, names, cfg->n_rms);
    ctx.rec = ctx.gtx ? recovery_new(&ctx) : NULL;
    if (!ctx.rec) {
        tm_log(NULL, NULL, "out of memory at start-up");
        goto out_free_tables;
    }
    recovery_startup(ctx.rec);
    if (atomic_load(&ctx.fatal)) goto out_free_tables;

    if (server_open(&ctx, &ctx.srv) != 0) goto out_free_tables;
    tm_log(NULL, NULL, "ready tm=%s epoch=%u socket=%s", cfg->tm_id, ctx.epoch, cfg->socket_path);
    if (recovery_start(ctx.rec) != 0) {
        tm_log(NULL, NULL, "cannot start the recovery thread");
        goto out_close_server;
    }

    rc = server_run(ctx.srv);
    recovery_stop(ctx.rec);
    if (rc == 0) {
        rc = tm_log_flush(&ctx);
        if (rc != 0) tm_log(xatm_strerror(rc), NULL, "final flush of the decision log failed");
    }
    status = rc == 0 ? 0 : 1;

out_close_server:
    server_close(ctx.srv);
    ctx.srv = NULL;
out_free_tables:
    recovery_free(ctx.rec);
    ctx.rec = NULL;
out_close_log:
    /* the log first: its close may rotate, which reads the tables */
    pthread_mutex_lock(&ctx.log_mu);
    xatm_declog_close(ctx.log);
    ctx.log = NULL;
    pthread_mutex_unlock(&ctx.log_mu);
    gtx_table_free(ctx.gtx);
    tm_decisions_free(ctx.decisions);
out_free_names:
    free(names);
out_free_config:
    if (status == 0) tm_log(NULL, NULL, "stopped");
    xatm_config_free(cfg);
out_destroy_mutex:
    pthread_mutex_destroy(&ctx.log_mu);
out_free_faultio:
    tm_faultio_free(fio); /* after the log that used it is closed */
    return status;
}

int main(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_VERSION };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, OPT_CHECK},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case OPT_CHECK:
            return check_config(optarg);
        case OPT_VERSION:
            printf("xatmd (xatm) %s\n", XATM_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "xatmd: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!config) config = getenv("XATM_CONFIG");
    if (!config || !*config) config = DEFAULT_CONFIG;

    /* SIGTERM/SIGINT are read by the loop's signalfd; block them in every thread. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    return run(config);
}
