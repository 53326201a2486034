/*
 * test_faultio.c — unit tests of tm/faultio.c, the fault-injecting file layer of the
 * decision log, driven through the real declog:
 *   - the torn length is a pure function of (seed, n) and always in [0, n);
 *   - a torn write at the n-th log write kills the process; reopening the log keeps every
 *     record whose flush returned, drops the torn one (torn tail truncated, or nothing to
 *     truncate when the prefix was empty), and appends go on after it — for 48 seeds and
 *     every write index from the segment's creation to the 8th write;
 *   - enospc fails that write and every later one (and file creation), the declog turns it
 *     into its sticky XATM_ENOSPC, and a reopen finds exactly the records flushed before;
 *     at a write that prepares the next segment (1 MiB segments) it is only a warning, and
 *     the next flush's own write makes it the sticky XATM_ENOSPC;
 *   - a torn write over bytes already in the file stores a prefix of its buffer and leaves
 *     the rest of those bytes as they were.
 * The logs use 64 KiB segments: the declog creates such a segment (header and zero fill)
 * with one write.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "declog.h"
#include "fault.h"
#include "faultio.h"
#include "testutil.h"
#include "xatm.h"

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[1024];
    while (d && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static xatm_declog_record r_commit(unsigned i)
{
    xatm_declog_record r = {.type = XATM_DL_COMMIT, .protocol = 2, .n_branches = 2};
    snprintf(r.gtrid, sizeof r.gtrid, "tm1.3.%u", i + 1); /* sequence numbers start at 1 */
    strcpy(r.branches[0].rm, "pg");
    strcpy(r.branches[1].rm, "my");
    r.branches[1].session_id = 40 + i;
    return r;
}

/* Replay collector: the COMMIT sequence numbers seen, in order. */
struct seen {
    unsigned n;         /* COMMITs replayed */
    unsigned seq[64];   /* their i (gtrid "tm1.3.<i + 1>") */
    bool out_of_order;  /* a COMMIT did not follow the previous one */
};

static void collect(const xatm_declog_record *rec, void *arg)
{
    struct seen *s = arg;
    if (rec->type != XATM_DL_COMMIT) return;
    unsigned i = (unsigned)strtoul(rec->gtrid + strlen("tm1.3."), NULL, 10) - 1;
    if (i != s->n) s->out_of_order = true;
    if (s->n < 64) s->seq[s->n] = i;
    s->n++;
}

static void test_torn_length(void)
{
    int out_of_range = 0, differs = 0, zero = 0, last = 0;
    for (uint64_t seed = 0; seed < 200; seed++) {
        for (uint64_t n = 1; n < 300; n += 7) {
            uint64_t k = tm_faultio_torn_length(seed, n);
            if (k >= n) out_of_range++;
            if (k != tm_faultio_torn_length(seed, n)) differs++;
            zero += k == 0;
            last += k == n - 1;
        }
    }
    CHECK_INT(out_of_range, 0);
    CHECK_INT(differs, 0);
    CHECK(zero > 0);  /* an empty prefix happens */
    CHECK(last > 0);  /* and one byte short of whole */
    CHECK_INT(tm_faultio_torn_length(5, 0), 0);
    CHECK_INT(tm_faultio_torn_length(5, 1), 0);
}

/* Child: log in dir through the layer armed to tear write `nth`; one forced COMMIT per
 * flush (write 1 creates the segment, write 1 + i carries COMMIT i). Never returns. */
static const xatm_declog_options small = {.segment_size = 65536};

static void torn_child(const char *dir, unsigned nth, uint64_t seed)
{
    char spec[64];
    snprintf(spec, sizeof spec, "tm.log_write@%u:torn", nth);
    if (xatm_fault_arm(spec, NULL, 0)) _exit(2);
    tm_faultio *f = tm_faultio_new(seed);
    xatm_declog_options o = {.segment_size = 65536, .io = tm_faultio_io(f)};
    xatm_declog *log = NULL;
    char err[512];
    if (xatm_declog_open(dir, &o, NULL, NULL, &log, err, sizeof err) != 0) _exit(3);
    for (unsigned i = 0; i < 16; i++) {
        xatm_declog_record r = r_commit(i);
        if (xatm_declog_append(log, &r, true) != 0) _exit(4);
        if (xatm_declog_flush(log) != 0) _exit(5);
    }
    _exit(0); /* the torn write should have killed us */
}

static void test_torn_writes(void)
{
    int not_killed = 0, open_failed = 0, wrong_records = 0, bad_warning = 0, append_failed = 0;
    int truncations = 0, empty_prefixes = 0;
    for (unsigned nth = 1; nth <= 8; nth++) {
        for (uint64_t seed = 0; seed < 48; seed++) {
            char *dir = t_tmpdir("faultio");
            char sub[600], err[512];
            snprintf(sub, sizeof sub, "%s/log", dir);
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0) {
                int devnull = open("/dev/null", O_WRONLY);
                if (devnull >= 0) dup2(devnull, STDERR_FILENO); /* the fault lines */
                torn_child(sub, nth, seed);
            }
            int st = 0;
            waitpid(pid, &st, 0);
            if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) not_killed++;

            /* Every COMMIT whose flush returned (writes 2..nth-1) is there, the torn one
             * (write nth: the COMMIT and the 44-byte FLUSH record that ends its flush) is
             * not -- unless the bytes the torn write missed were zeros anyway (they can only
             * be in the FLUSH record's crc32c, its last 4 bytes) and the segment's zero fill
             * completed it: then it replays, one of the two outcomes of a crash before the
             * fdatasync (docs/durability.md, section 4). */
            unsigned durable = nth >= 2 ? nth - 2 : 0;
            bool maybe_whole = false;
            if (nth >= 2) {
                xatm_declog_record t = r_commit(nth - 2);
                uint64_t len = 24 + 1 + strlen(t.gtrid) + 1 + 1 + 2 * (1 + 2 + 8) + 44;
                maybe_whole = tm_faultio_torn_length(seed, len) >= len - 4;
            }
            struct seen s = {0};
            xatm_declog *log = NULL;
            int rc = xatm_declog_open(sub, &small, collect, &s, &log, err, sizeof err);
            if (rc != 0) {
                open_failed++;
                fprintf(stderr, "nth %u seed %llu: reopen failed: %s\n", nth,
                        (unsigned long long)seed, err);
            } else {
                if (maybe_whole && s.n == durable + 1) durable++;
                if (s.n != durable || s.out_of_order) {
                    wrong_records++;
                    fprintf(stderr, "nth %u seed %llu: %u records replayed, expected %u\n", nth,
                            (unsigned long long)seed, s.n, durable);
                }
                if (err[0]) {
                    truncations++;
                    if (!strstr(err, "torn")) bad_warning++;
                } else {
                    empty_prefixes++;
                }
                /* the log goes on after the cut */
                xatm_declog_record r = r_commit(durable);
                if (xatm_declog_append(log, &r, true) != 0 || xatm_declog_flush(log) != 0)
                    append_failed++;
                xatm_declog_close(log);
                struct seen s2 = {0};
                log = NULL;
                if (xatm_declog_open(sub, &small, collect, &s2, &log, err, sizeof err) != 0 ||
                    s2.n != durable + 1 || s2.out_of_order)
                    append_failed++;
                xatm_declog_close(log);
            }
            rm_rf(sub);
            rm_rf(dir);
            free(dir);
        }
    }
    CHECK_INT(not_killed, 0);
    CHECK_INT(open_failed, 0);
    CHECK_INT(wrong_records, 0);
    CHECK_INT(bad_warning, 0);
    CHECK_INT(append_failed, 0);
    CHECK(truncations > 0);    /* a non-empty prefix was cut at reopen */
    CHECK(empty_prefixes > 0); /* and an empty one left nothing to cut */
}

static void test_enospc(void)
{
    char *dir = t_tmpdir("faultio");
    char sub[600], err[512], path[700];
    snprintf(sub, sizeof sub, "%s/log", dir);
    /* write 1 creates the segment, write 2 is COMMIT 0, write 3 fails */
    CHECK_INT(xatm_fault_arm("tm.log_write@3:enospc", err, sizeof err), 0);
    tm_faultio *f = tm_faultio_new(1);
    CHECK(f != NULL);
    xatm_declog_options o = {.segment_size = 65536, .io = tm_faultio_io(f)};
    xatm_declog *log = NULL;
    CHECK_INT(xatm_declog_open(sub, &o, NULL, NULL, &log, err, sizeof err), 0);
    xatm_declog_record r0 = r_commit(0), r1 = r_commit(1), r2 = r_commit(2);
    CHECK_INT(xatm_declog_append(log, &r0, true), 0);
    CHECK_INT(xatm_declog_flush(log), 0);
    CHECK_INT(xatm_declog_append(log, &r1, true), 0);
    CHECK_INT(xatm_declog_flush(log), XATM_ENOSPC);
    CHECK_CONTAINS(xatm_declog_errmsg(log), "No space left on device");
    CHECK_INT(xatm_declog_append(log, &r2, true), XATM_ENOSPC); /* sticky */
    CHECK_INT(xatm_declog_flush(log), XATM_ENOSPC);

    /* the layer itself stays full: writes and creation fail, plain opens do not */
    const xatm_declog_io *io = tm_faultio_io(f);
    snprintf(path, sizeof path, "%s/other", dir);
    CHECK_INT(io->open(io->ctx, path, O_RDWR | O_CREAT, 0600), -ENOSPC);
    snprintf(path, sizeof path, "%s/xatm-log.0000000000000001", sub);
    int fd = io->open(io->ctx, path, O_RDWR, 0);
    CHECK(fd >= 0);
    CHECK_INT(io->pwrite(io->ctx, fd, "x", 1, 0), -ENOSPC);
    CHECK_INT(io->close(io->ctx, fd), 0);
    xatm_declog_close(log);
    tm_faultio_free(f);
    CHECK_INT(xatm_fault_arm(NULL, err, sizeof err), 0);

    /* with space again: exactly what was flushed before the disk filled */
    struct seen s = {0};
    log = NULL;
    CHECK_INT(xatm_declog_open(sub, &small, collect, &s, &log, err, sizeof err), 0);
    CHECK_STR(err, "");
    CHECK_INT(s.n, 1);
    CHECK(!s.out_of_order);
    xatm_declog_close(log);
    rm_rf(sub);
    rm_rf(dir);
    free(dir);
}

/* Counts the writes through a faultio table and notes the index of the first one into
 * "xatm-log.next" (found through /proc/self/fd) once the log is open (the open creates the
 * first segment as "xatm-log.next" too). */
struct counting {
    xatm_declog_io io;          /* the table handed to the declog; ctx = this */
    const xatm_declog_io *in;   /* the faultio table underneath */
    unsigned writes;            /* pwrite calls so far */
    unsigned first_spare;       /* index (1-based) of the first write into the spare after
                                   the open, 0 none */
    bool opened;                /* the log is open: writes into the spare count */
};

static ssize_t counting_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off)
{
    struct counting *c = ctx;
    c->writes++;
    if (c->opened && !c->first_spare) {
        char link[64], target[1024];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t k = readlink(link, target, sizeof target - 1);
        if (k > 0) {
            target[k] = '\0';
            if (strstr(target, "/xatm-log.next")) c->first_spare = c->writes;
        }
    }
    return c->in->pwrite(c->in->ctx, fd, buf, n, off);
}

static int counting_fdatasync(void *ctx, int fd)
{
    struct counting *c = ctx;
    return c->in->fdatasync(c->in->ctx, fd);
}

static int counting_open(void *ctx, const char *path, int flags, int mode)
{
    struct counting *c = ctx;
    return c->in->open(c->in->ctx, path, flags, mode);
}

/* Segments of 1 MiB are prepared ahead: enospc at the first write into "xatm-log.next"
 * (from half-way through segment 1) does not fail the flush that makes it (its records
 * were written and synced before; the log warns and retries); this layer keeps every later
 * write failing, so the next flush's own write fails and the log stops with XATM_ENOSPC.
 * A reopen replays every record flushed before it, the warning flush's included. (On a
 * real disk, records keep landing on the current segment's zeros until the flush that runs
 * past its full length: test_declog's test_prepare_failures.) */
static void test_enospc_preparing(void)
{
    char *dir = t_tmpdir("faultio");
    char sub[600], err[512];
    snprintf(sub, sizeof sub, "%s/log", dir);
    unsigned k = 0;
    for (int armed = 0; armed < 2; armed++) {
        if (armed) {
            char spec[64];
            snprintf(spec, sizeof spec, "tm.log_write@%u:enospc", k);
            CHECK_INT(xatm_fault_arm(spec, err, sizeof err), 0);
        }
        tm_faultio *f = tm_faultio_new(1);
        struct counting c = {.in = tm_faultio_io(f)};
        c.io = (xatm_declog_io){.open = counting_open, .pwrite = counting_pwrite,
                                .fdatasync = counting_fdatasync, .ctx = &c};
        xatm_declog_options o = {.segment_size = 1024 * 1024, .io = &c.io};
        xatm_declog *log = NULL;
        CHECK_INT(xatm_declog_open(sub, &o, NULL, NULL, &log, err, sizeof err), 0);
        c.opened = true;
        unsigned flushed = 0, warned_at = 0;
        int rc = 0;
        for (unsigned i = 0; i < 2000 && rc == 0; i++) {
            xatm_declog_record r = r_commit(i);
            r.n_branches = 32; /* ~1.3 KiB: half a segment in ~400 flushes */
            for (unsigned b = 0; b < 32; b++) snprintf(r.branches[b].rm, sizeof r.branches[b].rm, "rm%u", b);
            CHECK_INT(xatm_declog_append(log, &r, true), 0);
            rc = xatm_declog_flush(log);
            if (rc == 0) flushed = i + 1;
            const char *w = xatm_declog_take_warning(log);
            if (w) {
                warned_at = i + 1;
                CHECK_CONTAINS(w, "xatm-log.next: preparing the next segment: write at offset 0: No space left on device");
            }
            if (!armed && c.first_spare) break;
        }
        if (!armed) {
            k = c.first_spare;
            CHECK(k > 200);
            CHECK_INT(rc, 0);
        } else {
            CHECK_INT(rc, XATM_ENOSPC);
            CHECK(warned_at > 0 && flushed == warned_at); /* the next flush failed */
            CHECK_CONTAINS(xatm_declog_errmsg(log), "xatm-log.0000000000000001: write at offset");
        }
        xatm_declog_close(log);
        tm_faultio_free(f);
        if (armed) {
            CHECK_INT(xatm_fault_arm(NULL, err, sizeof err), 0);
            struct seen s = {0};
            log = NULL;
            o.io = NULL; /* the layer is freed */
            CHECK_INT(xatm_declog_open(sub, &o, collect, &s, &log, err, sizeof err), 0);
            CHECK_STR(err, "");
            CHECK_INT(s.n, flushed);
            CHECK(!s.out_of_order);
            xatm_declog_close(log);
        }
        rm_rf(sub);
    }
    rm_rf(dir);
    free(dir);
}

/* Child: 100 bytes 'a' at 0, fdatasync, then 200 bytes 'b' at 40 torn with `seed`. */
static void synced_child(const char *path, uint64_t seed)
{
    if (xatm_fault_arm("tm.log_write@2:torn", NULL, 0)) _exit(2);
    tm_faultio *f = tm_faultio_new(seed);
    const xatm_declog_io *io = tm_faultio_io(f);
    char a[100], b[200];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    int fd = io->open(io->ctx, path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) _exit(3);
    if (io->pwrite(io->ctx, fd, a, sizeof a, 0) != (ssize_t)sizeof a) _exit(4);
    if (io->fdatasync(io->ctx, fd) != 0) _exit(5);
    (void)io->pwrite(io->ctx, fd, b, sizeof b, 40);
    _exit(0);
}

static void test_never_cuts_synced(void)
{
    /* a seed whose prefix of a 200-byte write ends inside the synced 100 bytes */
    uint64_t seed = 0;
    while (tm_faultio_torn_length(seed, 200) >= 60) seed++;
    char *dir = t_tmpdir("faultio");
    char path[700];
    snprintf(path, sizeof path, "%s/file", dir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, STDERR_FILENO);
        synced_child(path, seed);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    struct stat sb;
    CHECK_INT(stat(path, &sb), 0);
    CHECK_INT(sb.st_size, 100); /* the synced length stands; nothing past it was stored */
    char got[100];
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0 && read(fd, got, sizeof got) == (ssize_t)sizeof got);
    if (fd >= 0) close(fd);
    /* the prefix was stored over the synced bytes, which keep their content after it */
    uint64_t keep = tm_faultio_torn_length(seed, 200);
    int bad = 0;
    for (int i = 0; i < 100; i++) bad += got[i] != (i >= 40 && (uint64_t)i < 40 + keep ? 'b' : 'a');
    CHECK_INT(bad, 0);
    unlink(path);
    rmdir(dir);
    free(dir);
}

int main(void)
{
    test_torn_length();
    test_torn_writes();
    test_enospc();
    test_enospc_preparing();
    test_never_cuts_synced();
    return t_finish("faultio");
}
