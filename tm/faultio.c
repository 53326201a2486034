/*
 * faultio.c — the fault-injecting decision-log file layer of faultio.h: POSIX calls, plus
 * the "tm.log_write" io fault point (ENOSPC from then on, or a torn write and SIGKILL).
 *
 * State per layer: the seed and the sticky "disk full" flag.
 */
#include "faultio.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/fault.h"

#define FIO_POINT "tm.log_write"

struct tm_faultio {
    xatm_declog_io io;    /* the table handed to the declog; ctx = this */
    xatm_declog_io posix; /* the declog's POSIX calls, which io is otherwise */
    uint64_t seed;     /* picks the torn prefix length */
    bool full;         /* enospc fired: every write / create fails */
};

/* Writes one line to stderr with write(2) (the process may be about to die). */
static void fio_say(const char *line)
{
    ssize_t w = write(STDERR_FILENO, line, strlen(line));
    (void)w;
}

uint64_t tm_faultio_torn_length(uint64_t seed, uint64_t n)
{
    if (n == 0) return 0;
    uint64_t z = seed + n * 0x9e3779b97f4a7c15ull; /* splitmix64 of (seed, n) */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z % n;
}

static int fio_open(void *ctx, const char *path, int flags, int mode)
{
    struct tm_faultio *f = ctx;
    if (f->full && (flags & O_CREAT)) return -ENOSPC;
    return f->posix.open(f->posix.ctx, path, flags, mode);
}

/* Stores buf[0, n) at off, looping on short writes. 0 or -errno. */
static int fio_store(int fd, const uint8_t *p, size_t n, off_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? -errno : -EIO;
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

static ssize_t fio_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off)
{
    struct tm_faultio *f = ctx;
    if (f->full) return -ENOSPC;
    int action = xatm_fault_io_hit(FIO_POINT);
    if (action == XATM_FAULT_ENOSPC) {
        f->full = true;
        return -ENOSPC;
    }
    if (action == XATM_FAULT_TORN) {
        /* a prefix of the buffer; every other byte of the file stays as it was (for the
         * declog's zero-filled segments: the zeros a sync already covered) */
        uint64_t keep = tm_faultio_torn_length(f->seed, n);
        char line[200];
        snprintf(line, sizeof line,
                 "xatm fault: torn write: %llu of %zu bytes stored at offset %lld, then SIGKILL\n",
                 (unsigned long long)keep, n, (long long)off);
        fio_say(line);
        (void)fio_store(fd, buf, (size_t)keep, off);
        raise(SIGKILL);
        _exit(99); /* not reached */
    }
    return f->posix.pwrite(f->posix.ctx, fd, buf, n, off);
}

tm_faultio *tm_faultio_new(uint64_t seed)
{
    struct tm_faultio *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->seed = seed;
    f->posix = xatm_declog_io_complete(NULL);
    f->io = f->posix;
    f->io.open = fio_open;
    f->io.pwrite = fio_pwrite;
    f->io.ctx = f;
    return f;
}

const xatm_declog_io *tm_faultio_io(tm_faultio *f)
{
    return f ? &f->io : NULL;
}

void tm_faultio_free(tm_faultio *f)
{
    free(f);
}
