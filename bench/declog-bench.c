/*
 * declog-bench.c — forced decisions per second of xatmd's decision log (tm/declog.c,
 * linked as is) at several numbers of concurrent writers, against the raw fdatasync rate
 * of the same directory's disk measured in the same run (issue 5, docs/performance.md).
 *
 *   declog-bench [--dir DIR] [--writers 1,16,256] [--duration S] [--segment-size BYTES]
 *                [--json]
 *
 * Group commit as xatmd does it (tm/server.c, srv_group_commit): xatmd's event loop takes
 * every request that arrived, appends their COMMIT records (memory only), makes them
 * durable with one xatm_declog_flush (one write, one fdatasync), and only then sends the
 * replies; requests that arrive during the fdatasync wait in their sockets for the next
 * turn. Here each writer thread builds one COMMIT record (a gtrid and two branches, the
 * size of a transfer's), hands it to the one flusher thread and waits (on a semaphore of
 * its own, as an AP waits on its socket) until it is durable; the flusher takes everything
 * handed in so far, appends it, flushes, wakes exactly those writers, and goes round
 * again. Writers that hand in records during a flush wait for the next.
 *
 * Flush latency: the time each xatm_declog_flush takes (write, fdatasync and whatever else
 * the log does in it), p50 / p99 / max over the measured flushes. Two kinds of flush are
 * also counted apart, told from the outside: a rotating flush (its lsns advanced by more
 * than the records handed in: it wrote a CHECKPOINT) and a flush that prepared part of the
 * next segment (it made more than one pwrite: it zero-filled a piece of "xatm-log.next"),
 * counted through the log's io table (plain POSIX calls plus counters).
 * --segment-size (default: the log's 16 MiB) makes rotations happen within a short run.
 *
 * CPU: the process's user + system time (getrusage) over the measured interval, per flush
 * (each forced flush is one fdatasync) and per decision; the writer threads' hand-offs are
 * in it too, so compare it between builds rather than read it as the log's own cost.
 *
 * raw fdatasync: one thread appends 64 bytes to a file in DIR and fdatasyncs, again and
 * again: what one synchronous writer with no group commit gets from this disk. "overwrite"
 * does the same over a file whose blocks were written with zeros and fsync'd first, as the
 * log's segments are: no metadata for fdatasync to commit.
 *
 * DIR (default: a new directory under $TMPDIR or /tmp) must be on the disk under test;
 * the directories made in it are removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "declog.h"
#include "xatm.h"

#define MAX_WRITERS 4096
#define MAX_POINTS 16
#define RAW_FILE_SIZE (16 * 1024 * 1024) /* the zero-filled file of the raw overwrite rate */

/* The log's io table: POSIX pwrite and fdatasync, counted (flusher thread only). */
struct io_count {
    long pwrites;    /* pwrite calls */
    long fdatasyncs; /* fdatasync calls */
};

static ssize_t count_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off)
{
    struct io_count *c = ctx;
    c->pwrites++;
    ssize_t w;
    do w = pwrite(fd, buf, n, off);
    while (w < 0 && errno == EINTR);
    return w < 0 ? -errno : w;
}

static int count_fdatasync(void *ctx, int fd)
{
    struct io_count *c = ctx;
    c->fdatasyncs++;
    int rc;
    do rc = fdatasync(fd);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The hand-over between writers and the flusher. */
struct group {
    pthread_mutex_t mu;
    pthread_cond_t work;      /* a record was handed in */
    const xatm_declog_record *queue[MAX_WRITERS]; /* handed in, not yet taken */
    sem_t *wake[MAX_WRITERS];                       /* ...and how to tell each writer */
    size_t nq;
    bool stop;
    int flush_rc;             /* first failed flush */
    xatm_declog *log;
    long flushes;             /* fdatasyncs (flushes with records) */
    atomic_bool measuring;
    atomic_long counted;      /* decisions made durable while measuring */
    atomic_long counted_flushes;
    /* flusher thread only: */
    struct io_count io;       /* calls through the log's io table */
    long counted_fdatasyncs;  /* fdatasyncs of the measured flushes */
    double *lat;              /* latency of each measured flush, seconds */
    size_t n_lat, cap_lat;
    long rotations;           /* measured flushes that rotated */
    double rot_sum, rot_max;  /* their total and slowest latency */
    long preps;               /* measured flushes that zero-filled part of the next segment */
    double prep_sum, prep_max; /* their total and slowest latency */
};

/* Latency figures of one point (seconds). */
struct lat_stats {
    double open;                  /* xatm_declog_open of a new log (creates its first segment) */
    double p50, p99, max;         /* every measured flush */
    long rotations, preps;        /* see struct group */
    double rot_mean, rot_max;     /* rotating flushes */
    double prep_mean, prep_max;   /* flushes that prepared part of the next segment */
    double cpu;                   /* process CPU seconds over the measured interval */
    long fdatasyncs;              /* fdatasyncs made by the measured flushes */
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct writer {
    struct group *g;
    int no;
    pthread_t th;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct group *g = w->g;
    xatm_declog_record rec;
    memset(&rec, 0, sizeof rec);
    rec.type = XATM_DL_COMMIT;
    rec.protocol = 2;
    rec.n_branches = 2;
    snprintf(rec.branches[0].rm, sizeof rec.branches[0].rm, "pg");
    snprintf(rec.branches[1].rm, sizeof rec.branches[1].rm, "my");
    uint64_t seq = 0;
    sem_t done;
    sem_init(&done, 0, 0);
    for (;;) {
        snprintf(rec.gtrid, sizeof rec.gtrid, "bench.1.%d%06llu", w->no + 1,
                 (unsigned long long)++seq % 1000000ull);
        rec.branches[1].session_id = seq;
        pthread_mutex_lock(&g->mu);
        if (g->stop) {
            pthread_mutex_unlock(&g->mu);
            break;
        }
        g->wake[g->nq] = &done;
        g->queue[g->nq++] = &rec;
        pthread_cond_signal(&g->work);
        pthread_mutex_unlock(&g->mu);
        /* woken by the flusher once the record is durable (or the flush failed); even
         * when stopping, since the flusher may still be reading this record */
        while (sem_wait(&done) != 0) {}
        if (atomic_load(&g->measuring)) atomic_fetch_add(&g->counted, 1);
    }
    sem_destroy(&done);
    return NULL;
}

static void *flusher_main(void *arg)
{
    struct group *g = arg;
    const xatm_declog_record *batch[MAX_WRITERS];
    sem_t *wake[MAX_WRITERS];
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (g->nq == 0 && !g->stop) pthread_cond_wait(&g->work, &g->mu);
        if (g->nq == 0) break; /* stopping, and everything handed in is done */
        size_t n = g->nq;
        memcpy(batch, g->queue, n * sizeof *batch);
        memcpy(wake, g->wake, n * sizeof *wake);
        g->nq = 0;
        pthread_mutex_unlock(&g->mu);
        /* the writers of this batch wait for their wake-up: their records stay valid;
         * new ones queue up meanwhile */
        int rc = g->flush_rc;
        for (size_t i = 0; i < n && rc == 0; i++) rc = xatm_declog_append(g->log, batch[i], true);
        uint64_t lsn0 = xatm_declog_last_lsn(g->log);
        long pw0 = g->io.pwrites, fs0 = g->io.fdatasyncs;
        double t0 = now_s();
        if (rc == 0) rc = xatm_declog_flush(g->log);
        double dt = now_s() - t0;
        if (atomic_load(&g->measuring)) {
            atomic_fetch_add(&g->counted_flushes, 1);
            g->counted_fdatasyncs += g->io.fdatasyncs - fs0;
            if (g->n_lat == g->cap_lat) {
                size_t cap = g->cap_lat ? g->cap_lat * 2 : 4096;
                double *p = realloc(g->lat, cap * sizeof *p);
                if (p) {
                    g->lat = p;
                    g->cap_lat = cap;
                }
            }
            if (g->n_lat < g->cap_lat) g->lat[g->n_lat++] = dt;
            if (xatm_declog_last_lsn(g->log) > lsn0) { /* a CHECKPOINT: it rotated */
                g->rotations++;
                g->rot_sum += dt;
                if (dt > g->rot_max) g->rot_max = dt;
            } else if (g->io.pwrites - pw0 > 1) {
                g->preps++; /* also zero-filled a piece of the next segment */
                g->prep_sum += dt;
                if (dt > g->prep_max) g->prep_max = dt;
            }
        }
        for (size_t i = 0; i < n; i++) sem_post(wake[i]);
        pthread_mutex_lock(&g->mu);
        if (rc && !g->flush_rc) {
            g->flush_rc = rc;
            g->stop = true;
        }
        g->flushes++;
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* One measurement: decisions/s and flushes/s with `writers` writers, and flush latency. */
static int run_point(const char *dir, int writers, uint64_t segment_size, double warmup,
                     double duration, double *dps, double *fps, struct lat_stats *ls)
{
    char err[1024];
    struct group *g = calloc(1, sizeof *g);
    struct writer *ws = calloc((size_t)writers, sizeof *ws);
    if (!g || !ws) return -1;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->work, NULL);
    xatm_declog_io io = {.pwrite = count_pwrite, .fdatasync = count_fdatasync, .ctx = &g->io};
    xatm_declog_options opts = {.segment_size = segment_size, .io = &io};
    double t_open = now_s();
    int rc = xatm_declog_open(dir, &opts, NULL, NULL, &g->log, err, sizeof err);
    t_open = now_s() - t_open;
    if (rc) {
        fprintf(stderr, "declog-bench: cannot open a log in %s: %s: %s\n", dir,
                xatm_errname(rc), err);
        free(g);
        free(ws);
        return -1;
    }
    pthread_t fl;
    pthread_create(&fl, NULL, flusher_main, g);
    for (int i = 0; i < writers; i++) {
        ws[i].g = g;
        ws[i].no = i;
        if (pthread_create(&ws[i].th, NULL, writer_main, &ws[i]) != 0) {
            fprintf(stderr, "declog-bench: cannot start writer %d\n", i);
            exit(2);
        }
    }
    struct timespec ts = {(time_t)warmup, (long)((warmup - (double)(time_t)warmup) * 1e9)};
    nanosleep(&ts, NULL);
    double t0 = now_s(), cpu0 = cpu_s();
    atomic_store(&g->measuring, true);
    ts = (struct timespec){(time_t)duration, (long)((duration - (double)(time_t)duration) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&g->measuring, false);
    double t1 = now_s(), cpu1 = cpu_s();
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_broadcast(&g->work);
    pthread_mutex_unlock(&g->mu);
    for (int i = 0; i < writers; i++) pthread_join(ws[i].th, NULL);
    pthread_join(fl, NULL);
    xatm_declog_close(g->log);
    *dps = (double)atomic_load(&g->counted) / (t1 - t0);
    *fps = (double)atomic_load(&g->counted_flushes) / (t1 - t0);
    memset(ls, 0, sizeof *ls);
    ls->open = t_open;
    ls->cpu = cpu1 - cpu0;
    ls->fdatasyncs = g->counted_fdatasyncs;
    if (g->n_lat) {
        qsort(g->lat, g->n_lat, sizeof *g->lat, cmp_double);
        ls->p50 = g->lat[g->n_lat / 2];
        ls->p99 = g->lat[(size_t)((double)(g->n_lat - 1) * 0.99)];
        ls->max = g->lat[g->n_lat - 1];
    }
    ls->rotations = g->rotations;
    ls->rot_mean = g->rotations ? g->rot_sum / (double)g->rotations : 0;
    ls->rot_max = g->rot_max;
    ls->preps = g->preps;
    ls->prep_mean = g->preps ? g->prep_sum / (double)g->preps : 0;
    ls->prep_max = g->prep_max;
    rc = g->flush_rc;
    if (rc) fprintf(stderr, "declog-bench: flush failed: %s\n", xatm_errname(rc));
    free(g->lat);
    free(ws);
    free(g);
    return rc ? -1 : 0;
}

/* One writer, no group commit: write 64 bytes + fdatasync, as often as possible; appending
 * to an empty file, or with overwrite over a file zero-filled and fsync'd first. */
static double raw_fdatasync_rate(const char *dir, double duration, bool overwrite)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/raw-fdatasync", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "declog-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (overwrite) {
        static const char zeros[65536];
        for (off_t o = 0; o < RAW_FILE_SIZE; o += (off_t)sizeof zeros)
            if (pwrite(fd, zeros, sizeof zeros, o) != (ssize_t)sizeof zeros) {
                fprintf(stderr, "declog-bench: %s: %s\n", path, strerror(errno));
                close(fd);
                return -1;
            }
        if (fsync(fd) != 0) {
            fprintf(stderr, "declog-bench: %s: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    char buf[64];
    memset(buf, 'x', sizeof buf);
    long n = 0;
    off_t off = 0;
    double t0 = now_s(), t;
    while ((t = now_s()) - t0 < duration) {
        if (pwrite(fd, buf, sizeof buf, off) != (ssize_t)sizeof buf || fdatasync(fd) != 0) {
            fprintf(stderr, "declog-bench: %s: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
        off += (off_t)sizeof buf;
        if (overwrite && off + (off_t)sizeof buf > RAW_FILE_SIZE) off = 0;
        n++;
    }
    close(fd);
    unlink(path);
    return (double)n / (t - t0);
}

static void rm_rf_log(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "declog-bench: could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *list = "1,16,256";
    double duration = 3, warmup = 0.5;
    uint64_t segment_size = 0;
    bool json = false;
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"writers", required_argument, NULL, 'w'},
        {"duration", required_argument, NULL, 't'},
        {"warmup", required_argument, NULL, 'u'},
        {"segment-size", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd': dir = optarg; break;
        case 'w': list = optarg; break;
        case 't': duration = atof(optarg); break;
        case 'u': warmup = atof(optarg); break;
        case 's': segment_size = strtoull(optarg, NULL, 10); break;
        case 'j': json = true; break;
        case 'h':
            printf("usage: declog-bench [--dir DIR] [--writers 1,16,256] [--duration S] "
                   "[--warmup S] [--segment-size BYTES] [--json]\n");
            return 0;
        default: return 2;
        }
    }
    if (duration <= 0 || optind != argc) {
        fprintf(stderr, "usage: declog-bench [--dir DIR] [--writers 1,16,256] [--duration S] "
                        "[--warmup S] [--segment-size BYTES] [--json]\n");
        return 2;
    }
    int writers[MAX_POINTS], np = 0;
    char *copy = strdup(list);
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t && np < MAX_POINTS;
         t = strtok_r(NULL, ",", &save)) {
        int w = atoi(t);
        if (w < 1 || w > MAX_WRITERS) {
            fprintf(stderr, "declog-bench: writers must be 1..%d: %s\n", MAX_WRITERS, t);
            return 2;
        }
        writers[np++] = w;
    }
    free(copy);

    char base[4096];
    if (dir) {
        snprintf(base, sizeof base, "%s/declog-bench.XXXXXX", dir);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(base, sizeof base, "%s/declog-bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    }
    if (!mkdtemp(base)) {
        fprintf(stderr, "declog-bench: cannot create a directory like %s: %s\n", base,
                strerror(errno));
        return 2;
    }

    double raw = raw_fdatasync_rate(base, duration, false);
    double raw_ow = raw < 0 ? -1 : raw_fdatasync_rate(base, duration, true);
    double dps[MAX_POINTS], fps[MAX_POINTS];
    struct lat_stats ls[MAX_POINTS];
    int rc = raw < 0 || raw_ow < 0 ? 1 : 0;
    for (int i = 0; i < np && rc == 0; i++) {
        char d[4200];
        snprintf(d, sizeof d, "%s/log-%d", base, writers[i]);
        if (run_point(d, writers[i], segment_size, warmup, duration, &dps[i], &fps[i], &ls[i]) != 0)
            rc = 1;
        rm_rf_log(d);
    }
    double raw_after = rc == 0 ? raw_fdatasync_rate(base, duration, false) : -1;
    double raw_ow_after = rc == 0 ? raw_fdatasync_rate(base, duration, true) : -1;
    rm_rf_log(base);
    if (rc) return rc;

    double single = dps[0];
    for (int i = 0; i < np; i++)
        if (writers[i] == 1) single = dps[i];
    if (json) {
        printf("{\"raw_fdatasync_per_s\":%.1f,\"raw_fdatasync_per_s_after\":%.1f,"
               "\"raw_overwrite_fdatasync_per_s\":%.1f,\"raw_overwrite_fdatasync_per_s_after\":%.1f,"
               "\"segment_size\":%llu,\"points\":[",
               raw, raw_after, raw_ow, raw_ow_after, (unsigned long long)segment_size);
        for (int i = 0; i < np; i++)
            printf("%s{\"writers\":%d,\"decisions_per_s\":%.1f,\"fdatasyncs_per_s\":%.1f,"
                   "\"records_per_fdatasync\":%.2f,\"x_single_writer\":%.2f,\"x_raw\":%.2f,"
                   "\"open_ms\":%.1f,\"flush_p50_us\":%.0f,\"flush_p99_us\":%.0f,"
                   "\"flush_max_us\":%.0f,\"rotations\":%ld,\"rotation_mean_us\":%.0f,"
                   "\"rotation_max_us\":%.0f,\"prepare_flushes\":%ld,\"prepare_mean_us\":%.0f,"
                   "\"prepare_max_us\":%.0f,\"fdatasyncs\":%ld,\"cpu_us_per_flush\":%.1f,"
                   "\"cpu_us_per_decision\":%.2f}",
                   i ? "," : "", writers[i], dps[i], fps[i], fps[i] > 0 ? dps[i] / fps[i] : 0,
                   single > 0 ? dps[i] / single : 0, raw > 0 ? dps[i] / raw : 0,
                   ls[i].open * 1e3, ls[i].p50 * 1e6, ls[i].p99 * 1e6, ls[i].max * 1e6,
                   ls[i].rotations, ls[i].rot_mean * 1e6, ls[i].rot_max * 1e6, ls[i].preps,
                   ls[i].prep_mean * 1e6, ls[i].prep_max * 1e6, ls[i].fdatasyncs,
                   fps[i] > 0 ? ls[i].cpu * 1e6 / (fps[i] * duration) : 0,
                   dps[i] > 0 ? ls[i].cpu * 1e6 / (dps[i] * duration) : 0);
        printf("]}\n");
    } else {
        printf("declog-bench: %.1f s per point; raw fdatasync (64-byte writes, one writer): "
               "appending %.0f/s before, %.0f/s after; overwriting a zero-filled file %.0f/s "
               "before, %.0f/s after\n", duration, raw, raw_after, raw_ow, raw_ow_after);
        printf("%8s %12s %13s %13s %11s %7s %10s %10s\n", "writers", "decisions/s",
               "flushes/s", "records/sync", "x 1 writer", "x raw", "cpu us/fl", "cpu us/dec");
        for (int i = 0; i < np; i++)
            printf("%8d %12.0f %13.0f %13.2f %11.2f %7.2f %10.1f %10.2f\n", writers[i], dps[i],
                   fps[i], fps[i] > 0 ? dps[i] / fps[i] : 0, single > 0 ? dps[i] / single : 0,
                   raw > 0 ? dps[i] / raw : 0,
                   fps[i] > 0 ? ls[i].cpu * 1e6 / (fps[i] * duration) : 0,
                   dps[i] > 0 ? ls[i].cpu * 1e6 / (dps[i] * duration) : 0);
        printf("flush latency in us (rotating flushes, and flushes that prepared part of the next "
               "segment, apart); open = opening a new log, ms\n");
        printf("%8s %8s %7s %7s %8s %6s %8s %8s %6s %8s %8s\n", "writers", "open ms", "p50",
               "p99", "max", "rot n", "rot mean", "rot max", "prep n", "prep mean", "prep max");
        for (int i = 0; i < np; i++)
            printf("%8d %8.1f %7.0f %7.0f %8.0f %6ld %8.0f %8.0f %6ld %8.0f %8.0f\n", writers[i],
                   ls[i].open * 1e3, ls[i].p50 * 1e6, ls[i].p99 * 1e6, ls[i].max * 1e6,
                   ls[i].rotations, ls[i].rot_mean * 1e6, ls[i].rot_max * 1e6, ls[i].preps,
                   ls[i].prep_mean * 1e6, ls[i].prep_max * 1e6);
    }
    return 0;
}
