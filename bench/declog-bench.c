/*
 * declog-bench.c — forced decisions per second of xatmd's decision log (tm/declog.c,
 * linked as is) at several numbers of concurrent writers, against the raw fdatasync rate
 * of the same directory's disk measured in the same run (issue 5, docs/performance.md).
 *
 *   declog-bench [--dir DIR] [--writers 1,16,256] [--duration S] [--json]
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
 * raw fdatasync: one thread appends 64 bytes to a file in DIR and fdatasyncs, again and
 * again: what one synchronous writer with no group commit gets from this disk.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "declog.h"
#include "xatm.h"

#define MAX_WRITERS 4096
#define MAX_POINTS 16

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
};

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
        if (rc == 0) rc = xatm_declog_flush(g->log);
        if (atomic_load(&g->measuring)) atomic_fetch_add(&g->counted_flushes, 1);
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

/* One measurement: decisions/s and flushes/s with `writers` writers. */
static int run_point(const char *dir, int writers, double warmup, double duration,
                     double *dps, double *fps)
{
    char err[1024];
    struct group *g = calloc(1, sizeof *g);
    struct writer *ws = calloc((size_t)writers, sizeof *ws);
    if (!g || !ws) return -1;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->work, NULL);
    int rc = xatm_declog_open(dir, NULL, NULL, NULL, &g->log, err, sizeof err);
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
    double t0 = now_s();
    atomic_store(&g->measuring, true);
    ts = (struct timespec){(time_t)duration, (long)((duration - (double)(time_t)duration) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&g->measuring, false);
    double t1 = now_s();
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_broadcast(&g->work);
    pthread_mutex_unlock(&g->mu);
    for (int i = 0; i < writers; i++) pthread_join(ws[i].th, NULL);
    pthread_join(fl, NULL);
    xatm_declog_close(g->log);
    *dps = (double)atomic_load(&g->counted) / (t1 - t0);
    *fps = (double)atomic_load(&g->counted_flushes) / (t1 - t0);
    rc = g->flush_rc;
    if (rc) fprintf(stderr, "declog-bench: flush failed: %s\n", xatm_errname(rc));
    free(ws);
    free(g);
    return rc ? -1 : 0;
}

/* One writer, no group commit: append 64 bytes + fdatasync, as often as possible. */
static double raw_fdatasync_rate(const char *dir, double duration)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/raw-fdatasync", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "declog-bench: %s: %s\n", path, strerror(errno));
        return -1;
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
    bool json = false;
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"writers", required_argument, NULL, 'w'},
        {"duration", required_argument, NULL, 't'},
        {"warmup", required_argument, NULL, 'u'},
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
        case 'j': json = true; break;
        case 'h':
            printf("usage: declog-bench [--dir DIR] [--writers 1,16,256] [--duration S] "
                   "[--warmup S] [--json]\n");
            return 0;
        default: return 2;
        }
    }
    if (duration <= 0 || optind != argc) {
        fprintf(stderr, "usage: declog-bench [--dir DIR] [--writers 1,16,256] [--duration S] "
                        "[--warmup S] [--json]\n");
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

    double raw = raw_fdatasync_rate(base, duration);
    double dps[MAX_POINTS], fps[MAX_POINTS];
    int rc = raw < 0 ? 1 : 0;
    for (int i = 0; i < np && rc == 0; i++) {
        char d[4200];
        snprintf(d, sizeof d, "%s/log-%d", base, writers[i]);
        if (run_point(d, writers[i], warmup, duration, &dps[i], &fps[i]) != 0) rc = 1;
        rm_rf_log(d);
    }
    double raw_after = rc == 0 ? raw_fdatasync_rate(base, duration) : -1;
    rm_rf_log(base);
    if (rc) return rc;

    double single = dps[0];
    for (int i = 0; i < np; i++)
        if (writers[i] == 1) single = dps[i];
    if (json) {
        printf("{\"raw_fdatasync_per_s\":%.1f,\"raw_fdatasync_per_s_after\":%.1f,\"points\":[",
               raw, raw_after);
        for (int i = 0; i < np; i++)
            printf("%s{\"writers\":%d,\"decisions_per_s\":%.1f,\"fdatasyncs_per_s\":%.1f,"
                   "\"records_per_fdatasync\":%.2f,\"x_single_writer\":%.2f,\"x_raw\":%.2f}",
                   i ? "," : "", writers[i], dps[i], fps[i], fps[i] > 0 ? dps[i] / fps[i] : 0,
                   single > 0 ? dps[i] / single : 0, raw > 0 ? dps[i] / raw : 0);
        printf("]}\n");
    } else {
        printf("declog-bench: %.1f s per point; raw fdatasync (64-byte appends, one writer): "
               "%.0f/s before, %.0f/s after\n", duration, raw, raw_after);
        printf("%8s %14s %13s %14s %11s %8s\n", "writers", "decisions/s", "fdatasyncs/s",
               "records/sync", "x 1 writer", "x raw");
        for (int i = 0; i < np; i++)
            printf("%8d %14.0f %13.0f %14.2f %11.2f %8.2f\n", writers[i], dps[i], fps[i],
                   fps[i] > 0 ? dps[i] / fps[i] : 0, single > 0 ? dps[i] / single : 0,
                   raw > 0 ? dps[i] / raw : 0);
    }
    return 0;
}
