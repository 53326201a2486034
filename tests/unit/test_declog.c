/*
 * test_declog.c — unit tests of the decision log (tm/declog.c) and of CRC-32C.
 *
 * Covers: append / flush / reopen / replay of every record type; lsn continuity; group
 * commit (N appends + 1 flush = 1 pwrite + 1 fdatasync, counted through the io table); torn
 * tails (truncation at every length, every byte of the last record garbled, zero fill, torn
 * segment header) truncated with appends continuing afterwards; corruption in the middle,
 * in an older segment, lsn gaps and bad types with valid CRCs, missing segments -> CORRUPT
 * with file and offset; rotation carrying unresolved decisions forward (also past one 64 KiB
 * CHECKPOINT) with disk use bounded; sticky fdatasync failure; ENOSPC; BOOT epochs; dump
 * and describe. Zero-filled segments: zeros after the records are the end of the log; a
 * torn record followed by zeros is a torn tail (zeroed); non-zero bytes after the zeros are
 * a torn tail or corruption by the same rules; a crash during a zero fill (short file, torn
 * or missing header, leftover "xatm-log.next"); write / fdatasync / rename failures of the
 * zero fill and of the next segment prepared ahead (ENOSPC found there); the prepared
 * segment's syscalls at rotation; a log written before FLUSH records (version 1 segments,
 * not zero-filled). The tests share a fixture (struct fx): a log directory, its options, a
 * counting and failing file layer, the caller's unresolved set and the open log.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "declog.h"
#include "testutil.h"
#include "xatm.h"

static uint64_t rng_state = 0x13198a2e03707344ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* ---- a counting, failing file layer ---- */

struct fio {
    int pwrites;        /* pwrite calls */
    int fdatasyncs;     /* fdatasync calls */
    int fsyncs;         /* fsync calls (directories) */
    int unlinks;        /* unlink calls */
    int fail_pwrite;    /* -errno returned by pwrite when nonzero... */
    int pwrite_ok;      /* ...once this many pwrite calls have succeeded */
    int fail_fdatasync; /* -errno returned by fdatasync when nonzero... */
    int fdatasync_ok;   /* ...once this many fdatasync calls have succeeded */
    int fail_unlink;    /* -errno returned by unlink when nonzero */
    int renames;        /* rename calls */
    int fail_rename;    /* -errno returned by rename when nonzero */
    bool no_sync;       /* count syncs but skip the syscall (speed) */
    bool disk_full;     /* a full disk: a pwrite that would extend its file fails with
                           ENOSPC (one over bytes the file has passes, as on ext4) */
    int ftruncates;     /* ftruncate calls */
    bool renamed_unsynced; /* a segment was renamed to "xatm-log.next" and no directory
                              fsync has followed yet */
    int early_cuts;     /* ftruncate calls made while renamed_unsynced */
};

static ssize_t f_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off)
{
    struct fio *f = ctx;
    if (f->fail_pwrite && f->pwrites >= f->pwrite_ok) {
        f->pwrites++;
        return f->fail_pwrite;
    }
    f->pwrites++;
    struct stat st;
    if (f->disk_full && (fstat(fd, &st) != 0 || off + (off_t)n > st.st_size)) return -ENOSPC;
    ssize_t w = pwrite(fd, buf, n, off);
    return w < 0 ? -errno : w;
}

static int f_fdatasync(void *ctx, int fd)
{
    struct fio *f = ctx;
    if (f->fail_fdatasync && f->fdatasyncs >= f->fdatasync_ok) {
        f->fdatasyncs++;
        return f->fail_fdatasync;
    }
    f->fdatasyncs++;
    if (f->no_sync) return 0;
    return fdatasync(fd) < 0 ? -errno : 0;
}

static int f_fsync(void *ctx, int fd)
{
    struct fio *f = ctx;
    f->fsyncs++;
    f->renamed_unsynced = false; /* only directories are fsync'd */
    if (f->no_sync) return 0;
    return fsync(fd) < 0 ? -errno : 0;
}

static int f_unlink(void *ctx, const char *path)
{
    struct fio *f = ctx;
    f->unlinks++;
    if (f->fail_unlink) return f->fail_unlink;
    return unlink(path) < 0 ? -errno : 0;
}

static int f_rename(void *ctx, const char *from, const char *to)
{
    struct fio *f = ctx;
    f->renames++;
    if (f->fail_rename) return f->fail_rename;
    if (rename(from, to) < 0) return -errno;
    size_t n = strlen(to);
    if (n >= 14 && strcmp(to + n - 14, "/xatm-log.next") == 0) f->renamed_unsynced = true;
    return 0;
}

static int f_ftruncate(void *ctx, int fd, off_t len)
{
    struct fio *f = ctx;
    f->ftruncates++;
    if (f->renamed_unsynced) f->early_cuts++;
    return ftruncate(fd, len) < 0 ? -errno : 0;
}

/* An io table over f: open/close/pread stay NULL (= POSIX defaults). */
static xatm_declog_io fio_table(struct fio *f)
{
    xatm_declog_io io = {.pwrite = f_pwrite, .fdatasync = f_fdatasync, .ctx = f,
                         .fsync = f_fsync, .unlink = f_unlink, .rename = f_rename,
                         .ftruncate = f_ftruncate};
    return io;
}

/* ---- what replay delivered ---- */

struct seen {
    uint8_t type;                     /* record type */
    uint64_t lsn;                     /* its lsn */
    uint32_t epoch;                   /* BOOT / CHECKPOINT */
    char gtrid[XATM_GTRID_MAX + 1];   /* decisions, END */
    uint8_t n_branches;               /* COMMIT / PRECOMMIT */
};

#define SET_MAX 4096

struct collect {
    size_t n, cap;                      /* records in v */
    struct seen *v;                     /* every record delivered */
    xatm_declog_record first[8];        /* the first 8 in full */
    char unresolved[SET_MAX][XATM_GTRID_MAX + 1]; /* decisions without END, replay semantics */
    size_t n_unresolved;                /* entries in unresolved */
    uint32_t max_epoch;                 /* highest BOOT / CHECKPOINT epoch */
};

static long set_find(char (*set)[XATM_GTRID_MAX + 1], size_t n, const char *g)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(set[i], g) == 0) return (long)i;
    return -1;
}

static void set_add(char (*set)[XATM_GTRID_MAX + 1], size_t *n, const char *g)
{
    if (set_find(set, *n, g) >= 0 || *n >= SET_MAX) return; /* idempotent */
    strcpy(set[(*n)++], g);
}

static void set_del(char (*set)[XATM_GTRID_MAX + 1], size_t *n, const char *g)
{
    long i = set_find(set, *n, g);
    if (i < 0) return;
    memmove(set[i], set[*n - 1], sizeof set[i]);
    (*n)--;
}

static void on_replay(const xatm_declog_record *rec, void *arg)
{
    struct collect *c = arg;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->v = realloc(c->v, c->cap * sizeof *c->v);
    }
    struct seen *s = &c->v[c->n];
    memset(s, 0, sizeof *s);
    s->type = rec->type;
    s->lsn = rec->lsn;
    s->epoch = rec->epoch;
    strcpy(s->gtrid, rec->gtrid);
    s->n_branches = rec->n_branches;
    if (c->n < 8) c->first[c->n] = *rec;
    c->n++;
    switch (rec->type) {
    case XATM_DL_COMMIT:
    case XATM_DL_PRECOMMIT:
    case XATM_DL_HEURISTIC:
    case XATM_DL_ABORT:
        set_add(c->unresolved, &c->n_unresolved, rec->gtrid);
        break;
    case XATM_DL_END:
        set_del(c->unresolved, &c->n_unresolved, rec->gtrid);
        break;
    case XATM_DL_BOOT:
    case XATM_DL_CHECKPOINT:
        if (rec->epoch > c->max_epoch) c->max_epoch = rec->epoch;
        break;
    }
}

static struct collect *collect_new(void)
{
    return calloc(1, sizeof(struct collect));
}

static void collect_free(struct collect *c)
{
    if (!c) return;
    free(c->v);
    free(c);
}

/* ---- records ---- */

static xatm_declog_record r_boot(uint32_t epoch)
{
    xatm_declog_record r = {.type = XATM_DL_BOOT, .epoch = epoch};
    return r;
}

static xatm_declog_record r_commit(const char *gtrid, unsigned n_branches)
{
    xatm_declog_record r = {.type = XATM_DL_COMMIT, .protocol = 2};
    strcpy(r.gtrid, gtrid);
    r.n_branches = (uint8_t)n_branches;
    for (unsigned i = 0; i < n_branches; i++) {
        if (i == 0) strcpy(r.branches[i].rm, "pg");
        else if (i == 1) strcpy(r.branches[i].rm, "my");
        else snprintf(r.branches[i].rm, sizeof r.branches[i].rm, "rm_with_a_long_name_%02u_xxxxxxxx", i % 100u);
        r.branches[i].session_id = i == 1 ? 42 : 0;
    }
    return r;
}

static xatm_declog_record r_end(const char *gtrid)
{
    xatm_declog_record r = {.type = XATM_DL_END};
    strcpy(r.gtrid, gtrid);
    return r;
}

static xatm_declog_record r_heur(const char *gtrid, uint8_t outcome, const char *who, const char *why)
{
    xatm_declog_record r = {.type = XATM_DL_HEURISTIC, .outcome = outcome};
    strcpy(r.gtrid, gtrid);
    strcpy(r.who, who);
    strcpy(r.why, why);
    return r;
}

static void gt(char *buf, unsigned i)
{
    snprintf(buf, XATM_GTRID_MAX + 1, "tm1.3.%u", i);
}

/* ---- files ---- */

static char *seg_file(const char *dir, uint64_t num)
{
    static char path[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/xatm-log.%016llx", dir, (unsigned long long)num);
    return path[k];
}

/* The next segment while it is being prepared. */
static const char *spare_file(const char *dir)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/xatm-log.next", dir);
    return path;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "xatm-log.", 9) == 0 && strlen(de->d_name) == 25) n++;
    if (d) closedir(d);
    return n;
}

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

/* Reads / writes a whole file. */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc(n ? (size_t)n : 1);
    *len = fread(d, 1, (size_t)n, f);
    fclose(f);
    return d;
}

static void spit(const char *path, const uint8_t *d, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(d, 1, len, f);
    fclose(f);
}

/* Bytes of the FLUSH record that ends every flush (header 24 + payload 20). */
#define FLUSH_REC 44

/* The default segment length: every segment file is zero-filled to it when created. */
#define SEG_FULL (16ll * 1024 * 1024)

/* Where the records of a segment image end: the first zero record length, or the end. */
static size_t log_end(const uint8_t *d, size_t len)
{
    size_t off = 32;
    while (off + 4 <= len) {
        uint32_t total = (uint32_t)d[off] | (uint32_t)d[off + 1] << 8 |
                         (uint32_t)d[off + 2] << 16 | (uint32_t)d[off + 3] << 24;
        if (total == 0 || total > len - off) break;
        off += total;
    }
    return off;
}

/* true when bytes [from, to) of the file at path are all zero (and the file is that long) */
static bool file_zero(const char *path, long long from, long long to)
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    static uint8_t buf[65536];
    bool ok = fseek(f, (long)from, SEEK_SET) == 0;
    while (ok && from < to) {
        size_t want = to - from < (long long)sizeof buf ? (size_t)(to - from) : sizeof buf;
        ok = fread(buf, 1, want, f) == want;
        for (size_t i = 0; ok && i < want; i++) ok = buf[i] == 0;
        from += (long long)want;
    }
    fclose(f);
    return ok;
}

/* Offsets of records via dump. */
struct offs {
    size_t n;          /* records seen */
    uint64_t off[64];  /* their offsets (distinct records only) */
    char file[64][512];/* and files */
};

static void on_dump(const char *file, uint64_t offset, const xatm_declog_record *rec, void *arg)
{
    struct offs *o = arg;
    if (o->n && o->off[o->n - 1] == offset && !strcmp(o->file[o->n - 1], file)) return;
    if (o->n < 64) {
        o->off[o->n] = offset;
        snprintf(o->file[o->n], sizeof o->file[o->n], "%s", file);
    }
    o->n++;
}

/* Opens dir with opts; collects replay into c (may be NULL). */
static int open_log(const char *dir, const xatm_declog_options *opts, struct collect *c,
                    xatm_declog **log, char *err, size_t errlen)
{
    return xatm_declog_open(dir, opts, c ? on_replay : NULL, c, log, err, errlen);
}

/* Writes three records (BOOT, COMMIT, END) into a fresh log, one flush each (so each is
 * followed by its FLUSH record; the END's flush is not synced), and closes it. */
static void make_three(const char *dir)
{
    xatm_declog *log;
    char err[512];
    xatm_declog_record a = r_boot(1), b = r_commit("tm1.1.1", 2), c = r_end("tm1.1.1");
    CHECK_INT(open_log(dir, NULL, NULL, &log, err, sizeof err), 0);
    CHECK_INT(xatm_declog_append(log, &a, true), 0);
    CHECK_INT(xatm_declog_flush(log), 0);
    CHECK_INT(xatm_declog_append(log, &b, true), 0);
    CHECK_INT(xatm_declog_flush(log), 0);
    CHECK_INT(xatm_declog_append(log, &c, false), 0);
    CHECK_INT(xatm_declog_flush(log), 0);
    xatm_declog_close(log);
}

/* The caller's view of unresolved decisions, given to the log's rotation callback. */
struct owner {
    char set[SET_MAX][XATM_GTRID_MAX + 1]; /* gtrids committed and not ended */
    size_t n;                              /* entries */
    unsigned branches;                     /* branches per carried COMMIT */
    bool emit_garbage;                     /* emit an invalid record (caller bug) */
    int calls;                             /* times the callback ran */
};

static void owner_unresolved(void *arg, void (*emit)(const xatm_declog_record *, void *), void *emit_arg)
{
    struct owner *ow = arg;
    ow->calls++;
    for (size_t i = 0; i < ow->n; i++) {
        xatm_declog_record r = r_commit(ow->set[i], ow->branches);
        emit(&r, emit_arg);
    }
    if (ow->emit_garbage) {
        xatm_declog_record r = r_end("tm1.1.1"); /* END is not a decision */
        emit(&r, emit_arg);
    }
}

/* ---- the fixture: one log directory and what opens it ---- */

/* A test's log: its directory, the options it is opened with, a counting and failing file
 * layer (in the options only when the test asks for it), the caller's unresolved set (when
 * the test has one), the open log and what its last replaying open delivered. io and o
 * point into the struct: it stays where fx_init put it (the test's stack). */
struct fx {
    char *tmp;             /* the test's temporary directory (t_tmpdir) */
    char dir[512];         /* the log directory: tmp, unless the test names one below it */
    struct fio f;          /* the file layer's counters and faults */
    xatm_declog_io io;     /* fio_table(&f) */
    xatm_declog_options o; /* what fx_open and fx_replay pass; {0} is the same as NULL */
    struct owner *ow;      /* the unresolved decisions (fx_owner), NULL until then */
    xatm_declog *log;      /* the open log, NULL when closed or when an open failed */
    struct collect *c;     /* what the last fx_replay delivered, NULL before one */
    char err[512];         /* the last open's (or dump's) message */
};

/* A fresh directory; segment_size into the options, and with f (may be NULL: POSIX) that
 * file layer. */
static void fx_init(struct fx *x, uint64_t segment_size, const struct fio *f)
{
    memset(x, 0, sizeof *x);
    x->tmp = t_tmpdir("declog");
    snprintf(x->dir, sizeof x->dir, "%s", x->tmp);
    x->io = fio_table(&x->f);
    x->o.segment_size = segment_size;
    if (f) {
        x->f = *f;
        x->o.io = &x->io;
    }
}

/* Gives the log a caller whose unresolved decisions (COMMITs of `branches` branches) each
 * rotation carries forward. */
static struct owner *fx_owner(struct fx *x, unsigned branches)
{
    x->ow = calloc(1, sizeof *x->ow);
    x->ow->branches = branches;
    x->o.unresolved = owner_unresolved;
    x->o.unresolved_arg = x->ow;
    return x->ow;
}

/* Opens x->dir with x->o, without replay. */
static int fx_open(struct fx *x)
{
    return open_log(x->dir, &x->o, NULL, &x->log, x->err, sizeof x->err);
}

/* Opens x->dir with x->o, collecting what replay delivers into a fresh x->c. */
static int fx_replay(struct fx *x)
{
    collect_free(x->c);
    x->c = collect_new();
    return open_log(x->dir, &x->o, x->c, &x->log, x->err, sizeof x->err);
}

/* Closes the log (which flushes what is buffered, unforced); x->c stays. */
static void fx_close(struct fx *x)
{
    xatm_declog_close(x->log);
    x->log = NULL;
}

/* Closes the log and opens it again with replay (fx_replay). */
static int fx_reopen(struct fx *x)
{
    fx_close(x);
    return fx_replay(x);
}

/* Closes the log and removes the directory; frees everything. */
static void fx_done(struct fx *x)
{
    fx_close(x);
    collect_free(x->c);
    free(x->ow);
    if (strcmp(x->dir, x->tmp) != 0) rm_rf(x->dir);
    rm_rf(x->tmp);
    free(x->tmp);
}

/* ---- tests ---- */

static uint32_t crc_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return ~c;
}

static void test_crc32c(void)
{
    CHECK(xatm_crc32c(0, "123456789", 9) == 0xE3069283u);
    CHECK(xatm_crc32c(0, NULL, 0) == 0);
    uint8_t z[32], f[32], inc[32];
    memset(z, 0, sizeof z);
    memset(f, 0xff, sizeof f);
    for (int i = 0; i < 32; i++) inc[i] = (uint8_t)i;
    /* RFC 3720 (iSCSI) appendix B.4 vectors */
    CHECK(xatm_crc32c(0, z, 32) == 0x8A9136AAu);
    CHECK(xatm_crc32c(0, f, 32) == 0x62A8AB43u);
    CHECK(xatm_crc32c(0, inc, 32) == 0x46DD794Eu);

    uint8_t buf[1000];
    int bad_split = 0, bad_ref = 0;
    for (int it = 0; it < 300; it++) {
        size_t n = rng() % sizeof buf;
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)rng();
        uint32_t whole = xatm_crc32c(0, buf, n);
        size_t cut = n ? rng() % n : 0;
        if (xatm_crc32c(xatm_crc32c(0, buf, cut), buf + cut, n - cut) != whole) bad_split++;
        if (crc_bitwise(buf, n) != whole) bad_ref++;
    }
    CHECK_INT(bad_split, 0);
    CHECK_INT(bad_ref, 0);
}

static void test_fresh_and_roundtrip(void)
{
    struct fx x;
    fx_init(&x, 0, NULL);
    snprintf(x.dir, sizeof x.dir, "%s/log", x.tmp); /* open creates the directory */

    CHECK_INT(fx_open(&x), 0);
    CHECK_STR(x.err, "");
    {
        /* one owner per directory: a second opener is refused while the first holds it */
        xatm_declog *second = NULL;
        char err2[512];
        CHECK_INT(open_log(x.dir, NULL, NULL, &second, err2, sizeof err2), XATM_EBUSY);
        CHECK(second == NULL);
        CHECK_CONTAINS(err2, "in use by another process");
    }
    CHECK_INT(xatm_declog_segments(x.log), 1);
    CHECK_INT(xatm_declog_disk_bytes(x.log), SEG_FULL); /* zero-filled to its full length */
    CHECK_INT(xatm_declog_last_lsn(x.log), 0);
    CHECK_INT(file_size(seg_file(x.dir, 1)), SEG_FULL);
    CHECK(!xatm_declog_pending(x.log));

    xatm_declog_record recs[6];
    recs[0] = r_boot(3);
    recs[1] = r_commit("tm1.3.77", 2);
    recs[2] = r_heur("tm1.2.5", XATM_OUTCOME_ABORT, "alice", "RM \"ledger\" lost");
    recs[3] = r_end("tm1.3.77");
    recs[4] = r_commit("tm1.3.78", XATM_MAX_BRANCHES);
    recs[4].type = XATM_DL_PRECOMMIT;
    recs[4].protocol = 3;
    recs[5] = r_commit("tm1.3.79", 0);
    recs[5].protocol = 3;
    for (int i = 0; i < 6; i++) {
        CHECK_INT(xatm_declog_append(x.log, &recs[i], i % 2 == 0), 0);
        CHECK_INT(xatm_declog_last_lsn(x.log), i + 1);
    }
    CHECK(xatm_declog_pending(x.log));
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK(!xatm_declog_pending(x.log));
    CHECK_STR(xatm_declog_errmsg(x.log), "");
    uint64_t bytes = xatm_declog_disk_bytes(x.log);
    CHECK_INT(bytes, SEG_FULL); /* the records went into the zero-filled file */
    fx_close(&x);
    CHECK_INT(file_size(seg_file(x.dir, 1)), (long long)bytes);

    CHECK_INT(fx_replay(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n, 6);
    for (size_t i = 0; i < x.c->n && i < 6; i++) {
        const xatm_declog_record *g = &x.c->first[i];
        CHECK_INT(g->lsn, i + 1);
        CHECK_INT(g->type, recs[i].type);
        CHECK_STR(g->gtrid, recs[i].gtrid);
        CHECK_INT(g->epoch, recs[i].epoch);
        CHECK_INT(g->protocol, recs[i].protocol);
        CHECK_INT(g->outcome, recs[i].outcome);
        CHECK_STR(g->who, recs[i].who);
        CHECK_STR(g->why, recs[i].why);
        CHECK_INT(g->n_branches, recs[i].n_branches);
        for (unsigned k = 0; k < g->n_branches; k++) {
            CHECK_STR(g->branches[k].rm, recs[i].branches[k].rm);
            CHECK(g->branches[k].session_id == recs[i].branches[k].session_id);
        }
    }
    CHECK_INT(x.c->max_epoch, 3);
    CHECK_INT(xatm_declog_last_lsn(x.log), 6);

    /* appends continue the lsn sequence */
    xatm_declog_record e = r_end("tm1.3.78");
    CHECK_INT(xatm_declog_append(x.log, &e, false), 0);
    CHECK_INT(xatm_declog_last_lsn(x.log), 7);
    CHECK_INT(fx_reopen(&x), 0); /* close writes the unforced record */
    CHECK_INT(x.c->n, 7);
    int gaps = 0;
    for (size_t i = 0; i < x.c->n; i++)
        if (x.c->v[i].lsn != i + 1) gaps++;
    CHECK_INT(gaps, 0);
    CHECK_INT(x.c->v[6].type, XATM_DL_END);
    fx_done(&x);
}

static void test_describe(void)
{
    char buf[512];
    xatm_declog_record r = r_commit("tm1.3.77", 2);
    r.lsn = 12;
    xatm_declog_describe(&r, buf, sizeof buf);
    CHECK_STR(buf, "lsn=12 COMMIT gtrid=tm1.3.77 protocol=2pc branches=[pg,my(session 42)]");
    r.type = XATM_DL_PRECOMMIT;
    r.protocol = 3;
    xatm_declog_describe(&r, buf, sizeof buf);
    CHECK_STR(buf, "lsn=12 PRECOMMIT gtrid=tm1.3.77 protocol=3pc branches=[pg,my(session 42)]");
    r = r_boot(9);
    r.lsn = 1;
    xatm_declog_describe(&r, buf, sizeof buf);
    CHECK_STR(buf, "lsn=1 BOOT epoch=9");
    r = r_end("tm1.3.77");
    r.lsn = 13;
    xatm_declog_describe(&r, buf, sizeof buf);
    CHECK_STR(buf, "lsn=13 END gtrid=tm1.3.77");
    r = r_heur("tm1.3.77", XATM_OUTCOME_COMMIT, "ops", "said \"go\"\n");
    r.lsn = 14;
    xatm_declog_describe(&r, buf, sizeof buf);
    CHECK_STR(buf, "lsn=14 HEURISTIC gtrid=tm1.3.77 outcome=commit who=\"ops\" why=\"said \\\"go\\\"\\x0a\"");
    r = (xatm_declog_record){.type = XATM_DL_CHECKPOINT, .lsn = 15, .epoch = 4};
    xatm_declog_describe(&r, buf, sizeof buf);
    CHECK_STR(buf, "lsn=15 CHECKPOINT epoch=4");
    r = (xatm_declog_record){.type = 99, .lsn = 16};
    xatm_declog_describe(&r, buf, sizeof buf);
    CHECK_STR(buf, "lsn=16 type=99 (unknown)");
    /* truncation is safe */
    r = r_commit("tm1.3.77", 2);
    char small[10];
    xatm_declog_describe(&r, small, sizeof small);
    CHECK_STR(small, "lsn=0 COM");
    xatm_declog_describe(&r, small, 1);
    CHECK_STR(small, "");
    /* a record with garbage strings does not overrun */
    memset(&r, 'A', sizeof r);
    r.type = XATM_DL_HEURISTIC;
    xatm_declog_describe(&r, buf, sizeof buf);
    CHECK_CONTAINS(buf, "HEURISTIC gtrid=AAAA");
}

static void test_append_validation(void)
{
    struct fx x;
    fx_init(&x, 0, NULL);
    CHECK_INT(fx_open(&x), 0);

    xatm_declog_record r;
    r = (xatm_declog_record){.type = XATM_DL_CHECKPOINT, .epoch = 1};
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    r = r_boot(0);
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    r = r_commit("tm1.3.077", 2);
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    r = r_commit("", 2);
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    r = r_commit("tm1.3.77", 2);
    r.protocol = 0;
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    r.protocol = 4;
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    r.type = XATM_DL_PRECOMMIT;
    r.protocol = 2;
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    r = r_commit("tm1.3.77", 2);
    r.n_branches = XATM_MAX_BRANCHES + 1;
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    r = r_commit("tm1.3.77", 2);
    strcpy(r.branches[1].rm, "bad name");
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    r = r_commit("tm1.3.77", 2);
    memset(r.gtrid, '1', sizeof r.gtrid);
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    r = r_heur("tm1.3.77", 0, "a", "b");
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    r = r_heur("tm1.3.77", 1, "a", "b");
    memset(r.why, 'w', sizeof r.why);
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    r = r_end("tm1.3");
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    r = (xatm_declog_record){.type = 0};
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    r = (xatm_declog_record){.type = 7};
    CHECK_INT(xatm_declog_append(x.log, &r, true), XATM_EINVAL);
    CHECK_INT(xatm_declog_append(x.log, NULL, true), XATM_EINVAL);
    CHECK_INT(xatm_declog_append(NULL, &r, true), XATM_EINVAL);
    /* nothing was buffered and no lsn was used */
    CHECK(!xatm_declog_pending(x.log));
    CHECK_INT(xatm_declog_last_lsn(x.log), 0);
    r = r_heur("tm1.3.77", 1, "", ""); /* empty who/why are fine */
    CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
    CHECK_INT(xatm_declog_last_lsn(x.log), 1);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    fx_close(&x);

    CHECK_INT(xatm_declog_open(NULL, NULL, NULL, NULL, &x.log, x.err, sizeof x.err), XATM_EINVAL);
    CHECK_INT(xatm_declog_open("", NULL, NULL, NULL, &x.log, x.err, sizeof x.err), XATM_EINVAL);
    CHECK_INT(xatm_declog_open(x.dir, NULL, NULL, NULL, NULL, x.err, sizeof x.err), XATM_EINVAL);
    xatm_declog_close(NULL);

    /* a plain file where the directory should be */
    char file[600];
    snprintf(file, sizeof file, "%s/plain", x.dir);
    spit(file, (const uint8_t *)"x", 1);
    CHECK_INT(open_log(file, NULL, NULL, &x.log, x.err, sizeof x.err), XATM_EIO);
    CHECK_CONTAINS(x.err, "not a directory");
    unlink(file);
    fx_done(&x);
}

static void test_group_commit(void)
{
    struct fx x;
    char g[XATM_GTRID_MAX + 1];
    fx_init(&x, 0, &(struct fio){0});
    CHECK_INT(fx_open(&x), 0);
    CHECK_INT(x.f.fdatasyncs, 1); /* the new segment */
    CHECK_INT(x.f.fsyncs, 1);     /* its directory entry */

    x.f = (struct fio){0};
    for (unsigned i = 1; i <= 50; i++) {
        gt(g, i);
        xatm_declog_record r = r_commit(g, 2);
        CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
    }
    CHECK_INT(x.f.pwrites + x.f.fdatasyncs + x.f.fsyncs, 0); /* append makes no syscall */
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(x.f.pwrites, 1);
    CHECK_INT(x.f.fdatasyncs, 1);
    CHECK_INT(x.f.fsyncs, 0);

    /* nothing pending: nothing done */
    x.f = (struct fio){0};
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(x.f.pwrites + x.f.fdatasyncs, 0);

    /* unforced records: written, not synced */
    for (unsigned i = 1; i <= 50; i++) {
        gt(g, i);
        xatm_declog_record r = r_end(g);
        CHECK_INT(xatm_declog_append(x.log, &r, false), 0);
    }
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(x.f.pwrites, 1);
    CHECK_INT(x.f.fdatasyncs, 0);

    /* one forced among unforced: one sync */
    x.f = (struct fio){0};
    xatm_declog_record e = r_end("tm1.3.1"), cm = r_commit("tm1.3.900", 3);
    CHECK_INT(xatm_declog_append(x.log, &e, false), 0);
    CHECK_INT(xatm_declog_append(x.log, &cm, true), 0);
    CHECK_INT(xatm_declog_append(x.log, &e, false), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(x.f.pwrites, 1);
    CHECK_INT(x.f.fdatasyncs, 1);
    fx_done(&x);
}

static void spit_zeros(const char *path, const uint8_t *d, size_t len, size_t full);

/* make_three's segment: its image (full bytes), where its records end (len) and the
 * offset of the third record (third). */
static uint8_t *three_image(const char *dir, size_t *full, size_t *len, size_t *third)
{
    char err[512];
    make_three(dir);
    struct offs o = {0};
    CHECK_INT(xatm_declog_dump(dir, on_dump, &o, err, sizeof err), 0);
    CHECK_INT(o.n, 3);
    uint8_t *orig = slurp(seg_file(dir, 1), full);
    *len = log_end(orig, *full);
    *third = (size_t)o.off[2];
    CHECK(*third > 32 && *third < *len);
    return orig;
}

/* For every cut inside the third record of three_image's segment (the file ending there,
 * or zeros after it up to 64 KiB with into_zeros), opening with 64 KiB segments must keep
 * two records and say "torn tail truncated" at an offset, leaving the file zero from the
 * third record to its full 64 KiB. The number of cuts for which it did not. */
static int torn_cut_failures(const char *dir, const uint8_t *orig, size_t third, size_t len,
                             bool into_zeros)
{
    char err[512];
    xatm_declog_options small = {.segment_size = 65536};
    int bad = 0;
    for (size_t cut = third + 1; cut < len; cut++) {
        if (into_zeros)
            spit_zeros(seg_file(dir, 1), orig, cut, 65536);
        else
            spit(seg_file(dir, 1), orig, cut);
        struct collect *c = collect_new();
        xatm_declog *log = NULL;
        int rc = open_log(dir, &small, c, &log, err, sizeof err);
        if (rc != 0 || c->n != 2 || !strstr(err, "torn tail truncated") || !strstr(err, "offset ") ||
            file_size(seg_file(dir, 1)) != 65536 || !file_zero(seg_file(dir, 1), (long long)third, 65536)) {
            fprintf(stderr, "torn cut %zu%s: rc=%d n=%zu err=%s\n", cut,
                    into_zeros ? " into zeros" : "", rc, c->n, err);
            bad++;
        }
        if (rc == 0) xatm_declog_close(log);
        collect_free(c);
    }
    return bad;
}

/* x->log holds make_three's first two records (lsn 2 last): a COMMIT appended gets lsn 3,
 * survives a reopen with x->o, and is replayed third. Closes the log. */
static void append_survives(struct fx *x)
{
    CHECK_INT(xatm_declog_last_lsn(x->log), 2);
    xatm_declog_record r = r_commit("tm1.1.2", 2);
    CHECK_INT(xatm_declog_append(x->log, &r, true), 0);
    CHECK_INT(xatm_declog_last_lsn(x->log), 3);
    CHECK_INT(xatm_declog_flush(x->log), 0);
    CHECK_INT(fx_reopen(x), 0);
    CHECK_STR(x->err, "");
    CHECK_INT(x->c->n, 3);
    CHECK(x->c->n == 3 && x->c->v[2].lsn == 3 && !strcmp(x->c->v[2].gtrid, "tm1.1.2"));
    fx_close(x);
}

/* Writes records, then for every cut length inside the last record checks that open
 * truncates to the first two records and appending continues at lsn 3. The cut files end
 * where they are cut, as a segment written before segments were zero-filled (or one whose
 * zero fill a crash interrupted) does: "truncated" zeroes the torn bytes and extends the file
 * with zeros to its full length. test_zero_fill covers torn records followed by zeros. */
static void test_torn_truncation(void)
{
    struct fx x;
    fx_init(&x, 0, NULL);
    size_t full, len, third;
    uint8_t *orig = three_image(x.dir, &full, &len, &third);
    CHECK_INT(full, SEG_FULL);
    CHECK_INT(torn_cut_failures(x.dir, orig, third, len, false), 0);

    /* after the last truncation, new appends continue the sequence and survive a reopen */
    CHECK_INT(fx_replay(&x), 0);
    CHECK_STR(x.err, ""); /* nothing left to truncate */
    CHECK_INT(x.c->n, 2);
    append_survives(&x);

    /* a cut inside the header of the last record, and a zero-filled tail: the zeros are
     * where the log ends, nothing is torn */
    spit(seg_file(x.dir, 1), orig, (size_t)third + 10);
    CHECK_INT(fx_replay(&x), 0);
    CHECK_CONTAINS(x.err, "incomplete record header");
    CHECK_INT(x.c->n, 2);
    fx_close(&x);
    spit(seg_file(x.dir, 1), orig, len + 4096);
    CHECK_INT(fx_replay(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n, 3);
    CHECK_INT(file_size(seg_file(x.dir, 1)), SEG_FULL); /* extended to its full length */
    free(orig);
    fx_done(&x);
}

/* Every single-byte change in the last record is a torn tail; in the middle record it is
 * corruption reported with that record's offset, and nothing is replayed or changed. The
 * records are followed by zeros, as in a zero-filled segment (4 KiB of them, not 16 MiB, to
 * keep the test fast; opening with 64 KiB segments extends the file to that). */
static void test_garbled_records(void)
{
    struct fx x;
    char want[64];
    fx_init(&x, 65536, NULL);
    make_three(x.dir);
    struct offs o = {0};
    CHECK_INT(xatm_declog_dump(x.dir, on_dump, &o, x.err, sizeof x.err), 0);
    size_t full;
    uint8_t *orig = slurp(seg_file(x.dir, 1), &full);
    size_t data = log_end(orig, full), len = data + 4096;
    uint8_t *work = malloc(len);

    int last_bad = 0;
    for (size_t pos = (size_t)o.off[2]; pos < data; pos++) {
        memcpy(work, orig, len);
        work[pos] ^= (uint8_t)(1u << (pos % 8));
        spit(seg_file(x.dir, 1), work, len);
        int rc = fx_replay(&x);
        if (rc != 0 || x.c->n != 2 || file_size(seg_file(x.dir, 1)) != 65536 ||
            !file_zero(seg_file(x.dir, 1), (long long)o.off[2], 65536)) {
            fprintf(stderr, "last record, byte %zu: rc=%d n=%zu err=%s\n", pos, rc, x.c->n, x.err);
            last_bad++;
        }
        fx_close(&x);
    }
    CHECK_INT(last_bad, 0);

    int mid_bad = 0;
    snprintf(want, sizeof want, "offset %llu:", (unsigned long long)o.off[1]);
    for (size_t pos = (size_t)o.off[1]; pos < o.off[2]; pos++) {
        memcpy(work, orig, len);
        work[pos] ^= (uint8_t)(0x80u >> (pos % 8));
        spit(seg_file(x.dir, 1), work, len);
        int rc = fx_replay(&x);
        if (rc != XATM_ECORRUPT || x.c->n != 0 || !strstr(x.err, want) ||
            !strstr(x.err, "xatm-log.0000000000000001") || file_size(seg_file(x.dir, 1)) != (long long)len ||
            x.log != NULL) {
            fprintf(stderr, "middle record, byte %zu: rc=%d n=%zu err=%s\n", pos, rc, x.c->n,
                    x.err);
            mid_bad++;
        }
    }
    CHECK_INT(mid_bad, 0);
    /* and the message says why */
    memcpy(work, orig, len);
    work[o.off[1] + 30] ^= 1; /* payload byte */
    spit(seg_file(x.dir, 1), work, len);
    x.o.segment_size = 0;
    CHECK_INT(fx_open(&x), XATM_ECORRUPT);
    CHECK_CONTAINS(x.err, "CRC mismatch");
    CHECK_CONTAINS(x.err, "not a torn tail");

    /* dump shows the record before the damage, then reports it */
    struct offs d = {0};
    CHECK_INT(xatm_declog_dump(x.dir, on_dump, &d, x.err, sizeof x.err), XATM_ECORRUPT);
    CHECK_INT(d.n, 1);
    CHECK_CONTAINS(x.err, want);

    free(work);
    free(orig);
    fx_done(&x);
}

/* Builds one raw record with a correct CRC. */
static size_t raw_record(uint8_t *p, uint64_t lsn, uint8_t type, const uint8_t *payload, uint32_t n)
{
    uint32_t total = 24 + n;
    memset(p, 0, 24);
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(total >> (8 * i));
    for (int i = 0; i < 8; i++) p[8 + i] = (uint8_t)(lsn >> (8 * i));
    p[16] = type;
    for (int i = 0; i < 4; i++) p[20 + i] = (uint8_t)(n >> (8 * i));
    memcpy(p + 24, payload, n);
    uint32_t crc = xatm_crc32c(0, p + 8, total - 8);
    for (int i = 0; i < 4; i++) p[4 + i] = (uint8_t)(crc >> (8 * i));
    return total;
}

/* A last record whose CRC matches but whose content is wrong was written that way: it is
 * corruption, not a torn tail. */
static void test_valid_crc_bad_content(void)
{
    struct fx x;
    size_t full;
    fx_init(&x, 0, NULL);
    make_three(x.dir);
    uint8_t *orig = slurp(seg_file(x.dir, 1), &full);
    size_t len = log_end(orig, full); /* the raw record goes right after the records... */
    const size_t zeros = 4096;         /* ...and zeros after it, as in a zero-filled segment */
    uint8_t *work = calloc(1, len + 256 + zeros);
    uint8_t boot[4] = {5, 0, 0, 0};

    struct {
        uint64_t lsn;      /* lsn to write */
        uint8_t type;      /* type to write */
        const uint8_t *pl; /* payload */
        uint32_t n;        /* its length */
        const char *why;   /* expected in the message */
    } cases[] = {
        {7, XATM_DL_BOOT, boot, 4, "lsn 7 does not follow lsn 3"},
        {3, XATM_DL_BOOT, boot, 4, "lsn 3 does not follow lsn 3"},
        {4, 9, boot, 4, "unknown record type 9"},
        {4, XATM_DL_BOOT, boot, 3, "payload does not decode"},
        {4, XATM_DL_END, (const uint8_t *)"\x05tm1.1", 6, "payload does not decode"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(work, 0, len + 256 + zeros);
        memcpy(work, orig, len);
        size_t n = raw_record(work + len, cases[i].lsn, cases[i].type, cases[i].pl, cases[i].n);
        spit(seg_file(x.dir, 1), work, len + n + zeros);
        CHECK_INT(fx_replay(&x), XATM_ECORRUPT);
        CHECK_CONTAINS(x.err, cases[i].why);
        CHECK_CONTAINS(x.err, "its CRC matches, so it was written this way, not torn");
        CHECK_INT(x.c->n, 0);
        CHECK_INT(file_size(seg_file(x.dir, 1)), (long long)(len + n + zeros));
    }
    /* the correct next record by hand is accepted: the layout is what declog.h says */
    memset(work, 0, len + 256 + zeros);
    memcpy(work, orig, len);
    size_t n = raw_record(work + len, 4, XATM_DL_BOOT, boot, 4);
    /* alone it is an incomplete flush (the torn tail); with its FLUSH record it is a flush */
    spit(seg_file(x.dir, 1), work, len + n + zeros);
    CHECK_INT(fx_replay(&x), 0);
    CHECK_CONTAINS(x.err, "torn tail truncated");
    CHECK_CONTAINS(x.err, "incomplete flush");
    CHECK_INT(x.c->n, 3);
    fx_close(&x);
    memset(work, 0, len + 256 + zeros);
    memcpy(work, orig, len);
    n = raw_record(work + len, 4, XATM_DL_BOOT, boot, 4);
    uint8_t fl[20];
    uint32_t fcrc = xatm_crc32c(0, work + len, n);
    for (int i = 0; i < 8; i++) fl[i] = (uint8_t)((uint64_t)4 >> (8 * i)); /* first lsn */
    for (int i = 0; i < 8; i++) fl[8 + i] = (uint8_t)((uint64_t)n >> (8 * i)); /* covered */
    for (int i = 0; i < 4; i++) fl[16 + i] = (uint8_t)(fcrc >> (8 * i));
    n += raw_record(work + len + n, 4, XATM_DL_FLUSH, fl, 20);
    spit(seg_file(x.dir, 1), work, len + n + zeros);
    CHECK_INT(fx_replay(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n, 4);
    CHECK_INT(x.c->max_epoch, 5);
    free(work);
    free(orig);
    fx_done(&x);
}

static void test_segment_headers(void)
{
    struct fx x;
    size_t len;
    fx_init(&x, 0, NULL);
    make_three(x.dir);
    uint8_t *orig = slurp(seg_file(x.dir, 1), &len);

    /* a torn header with nothing valid after it (crash while creating the segment) */
    spit(seg_file(x.dir, 1), orig, 10);
    CHECK_INT(fx_replay(&x), 0);
    CHECK_CONTAINS(x.err, "torn segment header rewritten");
    CHECK_INT(x.c->n, 0);
    CHECK_INT(file_size(seg_file(x.dir, 1)), SEG_FULL); /* header, then zeros to full length */
    CHECK(file_zero(seg_file(x.dir, 1), 32, SEG_FULL));
    xatm_declog_record r = r_boot(2);
    CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(fx_reopen(&x), 0);
    CHECK_INT(x.c->n, 1);
    fx_close(&x);

    /* an empty file */
    spit(seg_file(x.dir, 1), orig, 0);
    CHECK_INT(fx_open(&x), 0);
    CHECK_CONTAINS(x.err, "segment header incomplete");
    fx_close(&x);

    /* a damaged header with valid records after it is corruption */
    uint8_t *work = malloc(len);
    memcpy(work, orig, len);
    work[3] ^= 0x20;
    spit(seg_file(x.dir, 1), work, len);
    CHECK_INT(fx_open(&x), XATM_ECORRUPT);
    CHECK_CONTAINS(x.err, "offset 0: not a segment header");
    /* a header naming another segment number */
    memcpy(work, orig, len);
    work[16] = 2;
    uint32_t crc = xatm_crc32c(0, work, 24);
    for (int i = 0; i < 4; i++) work[24 + i] = (uint8_t)(crc >> (8 * i));
    spit(seg_file(x.dir, 1), work, len);
    CHECK_INT(fx_open(&x), XATM_ECORRUPT);
    CHECK_CONTAINS(x.err, "header says segment 0000000000000002");
    /* an unknown version */
    memcpy(work, orig, len);
    work[8] = 3; /* 1 (no FLUSH records) and 2 are known */
    crc = xatm_crc32c(0, work, 24);
    for (int i = 0; i < 4; i++) work[24 + i] = (uint8_t)(crc >> (8 * i));
    spit(seg_file(x.dir, 1), work, len);
    CHECK_INT(fx_open(&x), XATM_ECORRUPT);
    CHECK_CONTAINS(x.err, "segment version 3");

    /* files that are not segments are ignored */
    spit(seg_file(x.dir, 1), orig, len);
    char other[700];
    snprintf(other, sizeof other, "%s/xatm-log.tmp", x.dir);
    spit(other, (const uint8_t *)"junk", 4);
    snprintf(other, sizeof other, "%s/xatm-log.000000000000000A", x.dir); /* uppercase */
    spit(other, (const uint8_t *)"junk", 4);
    snprintf(other, sizeof other, "%s/README", x.dir);
    spit(other, (const uint8_t *)"junk", 4);
    CHECK_INT(fx_replay(&x), 0);
    CHECK_INT(x.c->n, 3);
    CHECK_INT(xatm_declog_segments(x.log), 1);
    fx_close(&x);

    /* a missing segment in the middle */
    spit(seg_file(x.dir, 3), orig, len);
    CHECK_INT(fx_open(&x), XATM_ECORRUPT);
    CHECK_CONTAINS(x.err, "segment 0000000000000002 is missing");
    struct offs d = {0};
    CHECK_INT(xatm_declog_dump(x.dir, on_dump, &d, x.err, sizeof x.err), XATM_ECORRUPT);
    CHECK_CONTAINS(x.err, "missing");

    free(work);
    free(orig);
    fx_done(&x);
}

static void test_rotation(void)
{
    struct fx x;
    char g[XATM_GTRID_MAX + 1];
    fx_init(&x, 4096, &(struct fio){.no_sync = true});
    struct owner *ow = fx_owner(&x, 2);
    CHECK_INT(fx_open(&x), 0);
    xatm_declog_record boot = r_boot(4);
    CHECK_INT(xatm_declog_append(x.log, &boot, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);

    uint64_t max_disk = 0;
    unsigned max_segs = 0;
    int bad_flush = 0;
    for (unsigned i = 1; i <= 3000; i++) {
        gt(g, i);
        xatm_declog_record r = r_commit(g, 2);
        if (xatm_declog_append(x.log, &r, true) != 0) bad_flush++;
        set_add(ow->set, &ow->n, g);
        if (xatm_declog_flush(x.log) != 0) bad_flush++;
        /* most decisions end soon; every 50th stays unresolved */
        if (i % 50 != 0 && i > 3) {
            gt(g, i - 3);
            xatm_declog_record e = r_end(g);
            if (xatm_declog_append(x.log, &e, false) != 0) bad_flush++;
            set_del(ow->set, &ow->n, g);
        }
        if (xatm_declog_disk_bytes(x.log) > max_disk) max_disk = xatm_declog_disk_bytes(x.log);
        if (xatm_declog_segments(x.log) > max_segs) max_segs = xatm_declog_segments(x.log);
    }
    CHECK_INT(bad_flush, 0);
    CHECK(ow->calls > 20);         /* it rotated many times */
    CHECK_INT(max_segs, 1);        /* old segments go as soon as the new one is durable */
    CHECK(max_disk < 4096 + 4096); /* bounded: threshold + checkpoint + one flush */
    CHECK_INT(count_segments(x.dir), 1);
    CHECK(x.f.unlinks >= ow->calls);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    uint64_t last = xatm_declog_last_lsn(x.log);
    fx_close(&x);

    /* replay rebuilds exactly the caller's unresolved set, and the epoch */
    x.o.io = NULL;
    CHECK_INT(fx_replay(&x), 0);
    CHECK_INT(x.c->n_unresolved, ow->n);
    int missing = 0;
    for (size_t i = 0; i < ow->n; i++)
        if (set_find(x.c->unresolved, x.c->n_unresolved, ow->set[i]) < 0) missing++;
    CHECK_INT(missing, 0);
    CHECK_INT(x.c->max_epoch, 4);
    CHECK(x.c->n > 0 && x.c->v[0].type == XATM_DL_CHECKPOINT);
    CHECK(x.c->n > 0 && x.c->v[0].epoch == 4);
    CHECK_INT(xatm_declog_last_lsn(x.log), last);
    int gaps = 0; /* carried decisions share their checkpoint's lsn; otherwise +1 */
    for (size_t i = 1; i < x.c->n; i++)
        if (x.c->v[i].lsn != x.c->v[i - 1].lsn && x.c->v[i].lsn != x.c->v[i - 1].lsn + 1) gaps++;
    CHECK_INT(gaps, 0);
    fx_close(&x);

    /* a rotating flush: old segment synced even though nothing forced, new one synced,
     * directory synced after create and after delete */
    x.f = (struct fio){0};
    x.o.io = &x.io;
    x.o.segment_size = 1; /* the next flush rotates */
    CHECK_INT(fx_open(&x), 0);
    x.f = (struct fio){0};
    xatm_declog_record e = r_end("tm1.3.1");
    CHECK_INT(xatm_declog_append(x.log, &e, false), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(x.f.fdatasyncs, 2);
    CHECK_INT(x.f.fsyncs, 2);
    CHECK_INT(x.f.unlinks, 1);
    CHECK_INT(xatm_declog_segments(x.log), 1);
    fx_close(&x);

    /* right after a reopen, an empty flush that rotates still syncs the old segment
     * first (a previous process may have left unsynced unforced records in it) */
    x.o.segment_size = 0;
    CHECK_INT(fx_open(&x), 0);
    x.f = (struct fio){0};
    CHECK_INT(xatm_declog_append(x.log, &e, false), 0);
    fx_close(&x); /* written by close, never synced */
    CHECK_INT(x.f.pwrites, 1);
    CHECK_INT(x.f.fdatasyncs, 0);
    x.o.segment_size = 1;
    CHECK_INT(fx_open(&x), 0);
    x.f = (struct fio){0};
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(x.f.pwrites, 1);    /* only the new segment */
    CHECK_INT(x.f.fdatasyncs, 2); /* old, then new */
    fx_done(&x);
}

/* A power loss while a rotation created a small segment (one write: header, CHECKPOINT,
 * FLUSH record, zeros) kept its header and CHECKPOINT but not its FLUSH record: that flush
 * is torn, so the segment starts empty, and its CHECKPOINT must not count as the
 * segment's leading record either (it once did: the rotation threshold was then measured
 * from past the end of the records, an unsigned underflow, and the first flush after the
 * restart rotated at once). */
static void test_torn_checkpoint_flush(void)
{
    struct fx x;
    char g[XATM_GTRID_MAX + 1];
    fx_init(&x, 4096, NULL);
    struct owner *ow = fx_owner(&x, 2);
    CHECK_INT(fx_open(&x), 0);
    unsigned i = 0;
    while (access(seg_file(x.dir, 2), F_OK) != 0) {
        gt(g, ++i);
        xatm_declog_record r = r_commit(g, 2);
        CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
        if (i <= 3) set_add(ow->set, &ow->n, g); /* carried by the CHECKPOINT */
        CHECK_INT(xatm_declog_flush(x.log), 0);
    }
    fx_close(&x);
    CHECK(access(seg_file(x.dir, 1), F_OK) != 0);

    /* segment 2: header, CHECKPOINT (3 decisions), FLUSH record; garble the FLUSH's CRC */
    size_t len;
    uint8_t *d = slurp(seg_file(x.dir, 2), &len);
    CHECK(d != NULL && len == 4096);
    uint32_t ck = (uint32_t)d[32] | (uint32_t)d[33] << 8 | (uint32_t)d[34] << 16 |
                  (uint32_t)d[35] << 24;
    CHECK(d[32 + 16] == XATM_DL_CHECKPOINT && ck > 64);
    CHECK(d[32 + ck + 16] == 8 && log_end(d, len) == 32 + ck + FLUSH_REC);
    d[32 + ck + 4] ^= 0x01;
    spit(seg_file(x.dir, 2), d, len);
    free(d);

    x.o.io = &x.io; /* counted from here */
    CHECK_INT(fx_open(&x), 0);
    CHECK_CONTAINS(x.err, "xatm-log.0000000000000002: offset 32: torn tail truncated");
    CHECK(file_zero(seg_file(x.dir, 2), 32, 4096));
    /* the first flush after it writes one record and syncs once: no rotation */
    int syncs = x.f.fdatasyncs, renames = x.f.renames;
    gt(g, ++i);
    xatm_declog_record r = r_commit(g, 2);
    CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(x.f.fdatasyncs - syncs, 1);
    CHECK_INT(x.f.renames - renames, 0);
    CHECK(access(seg_file(x.dir, 3), F_OK) != 0);
    CHECK_INT(xatm_declog_segments(x.log), 1);
    fx_done(&x);
}

/* More unresolved decisions than one 64 KiB CHECKPOINT holds: the rest follow as records. */
static void test_checkpoint_overflow(void)
{
    struct fx x;
    char g[XATM_GTRID_MAX + 1];
    fx_init(&x, 1, &(struct fio){.no_sync = true});
    struct owner *ow = fx_owner(&x, XATM_MAX_BRANCHES); /* ~1.2 KiB each */
    for (unsigned i = 1; i <= 200; i++) {
        gt(g, i);
        set_add(ow->set, &ow->n, g);
    }
    CHECK_INT(fx_open(&x), 0);
    xatm_declog_record boot = r_boot(7);
    CHECK_INT(xatm_declog_append(x.log, &boot, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0); /* rotates: 200 x 1.2 KiB > 64 KiB */
    CHECK_INT(ow->calls, 1);
    CHECK_INT(xatm_declog_segments(x.log), 1);
    CHECK(xatm_declog_disk_bytes(x.log) > 200 * 1200);
    fx_close(&x);

    x.o.io = NULL;
    x.o.segment_size = 0;
    CHECK_INT(fx_replay(&x), 0);
    CHECK_INT(x.c->n_unresolved, 200);
    CHECK_INT(x.c->max_epoch, 7);
    size_t ckpts = 0, full = 0, plain = 0;
    for (size_t i = 0; i < x.c->n; i++) {
        if (x.c->v[i].type == XATM_DL_CHECKPOINT) ckpts++;
        if (x.c->v[i].type == XATM_DL_COMMIT && x.c->v[i].n_branches == XATM_MAX_BRANCHES) full++;
        if (i && x.c->v[i].lsn != x.c->v[i - 1].lsn) plain++;
    }
    CHECK_INT(ckpts, 1);
    CHECK_INT(full, 200);
    CHECK(plain > 100); /* many carried as records of their own after the checkpoint */
    CHECK_INT(xatm_declog_last_lsn(x.log), x.c->v[x.c->n - 1].lsn);
    fx_done(&x);
}

/* A callback that emits something invalid makes that flush fail with EINVAL, not stickily. */
static void test_bad_callback(void)
{
    struct fx x;
    fx_init(&x, 1, NULL);
    struct owner *ow = fx_owner(&x, 1);
    ow->emit_garbage = true;
    set_add(ow->set, &ow->n, "tm1.1.1");
    CHECK_INT(fx_open(&x), 0);
    xatm_declog_record r = r_commit("tm1.1.1", 1);
    CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), XATM_EINVAL);
    CHECK_INT(xatm_declog_segments(x.log), 1);
    CHECK_STR(xatm_declog_errmsg(x.log), "");
    uint64_t lsn = xatm_declog_last_lsn(x.log);
    CHECK_INT(lsn, 1);
    ow->emit_garbage = false;
    xatm_declog_record e = r_end("tm1.1.2");
    CHECK_INT(xatm_declog_append(x.log, &e, false), 0);
    CHECK_INT(xatm_declog_last_lsn(x.log), 2); /* no lsn was lost to the failed checkpoint */
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(count_segments(x.dir), 1);
    CHECK(access(seg_file(x.dir, 2), F_OK) == 0);
    x.o = (xatm_declog_options){0}; /* the defaults: no callback */
    CHECK_INT(fx_reopen(&x), 0);
    CHECK_INT(x.c->n_unresolved, 1);
    fx_done(&x);
}

/* Three segments in x's new dir, every older one kept: segment_size 1 (32-byte segments,
 * every flush rotates) and an unlink that fails (not fatal). BOOT + COMMIT tm1.1.1, then an
 * END of another gtrid; x->ow carries tm1.1.1 into each CHECKPOINT. x->o (with x's file
 * layer and owner) stays, to reopen with. */
static void make_three_segments(struct fx *x)
{
    fx_owner(x, 2);
    set_add(x->ow->set, &x->ow->n, "tm1.1.1");
    x->f = (struct fio){.fail_unlink = -EACCES};
    x->o.segment_size = 1;
    x->o.io = &x->io;
    CHECK_INT(fx_open(x), 0);
    xatm_declog_record b = r_boot(1), cm = r_commit("tm1.1.1", 2), e = r_end("tm1.1.9");
    CHECK_INT(xatm_declog_append(x->log, &b, true), 0);
    CHECK_INT(xatm_declog_append(x->log, &cm, true), 0);
    CHECK_INT(xatm_declog_flush(x->log), 0); /* rotates; unlink fails: not fatal */
    CHECK_INT(xatm_declog_segments(x->log), 2);
    CHECK_STR(xatm_declog_errmsg(x->log), "");
    CHECK_INT(xatm_declog_append(x->log, &e, false), 0);
    CHECK_INT(xatm_declog_flush(x->log), 0); /* rotates again */
    CHECK_INT(xatm_declog_segments(x->log), 3);
    fx_close(x);
    CHECK_INT(count_segments(x->dir), 3);
}

/* unlink failing keeps old segments (retried next rotation); an older segment is checked
 * strictly: damage there is corruption even at its end. */
static void test_older_segments(void)
{
    struct fx x;
    fx_init(&x, 0, NULL);
    make_three_segments(&x);

    /* replay over all three: the decision appears in each, applied idempotently */
    x.o.segment_size = 0; /* no rotation while we look */
    CHECK_INT(fx_replay(&x), 0);
    CHECK_INT(x.c->n_unresolved, 1);
    size_t ck = 0;
    for (size_t i = 0; i < x.c->n; i++) ck += x.c->v[i].type == XATM_DL_CHECKPOINT;
    CHECK_INT(ck, 2);
    CHECK_INT(xatm_declog_segments(x.log), 3);
    fx_close(&x);

    /* damage at the very end of the oldest segment: corrupt, naming that file */
    size_t len;
    uint8_t *orig = slurp(seg_file(x.dir, 1), &len);
    spit(seg_file(x.dir, 1), orig, len - 1);
    CHECK_INT(fx_open(&x), XATM_ECORRUPT);
    CHECK_CONTAINS(x.err, "xatm-log.0000000000000001: offset ");
    CHECK_CONTAINS(x.err, "only the newest segment may end torn");
    CHECK_INT(file_size(seg_file(x.dir, 1)), (long long)(len - 1)); /* not truncated */
    /* lsn continuity across segments: a record dropped from the end of the middle one */
    spit(seg_file(x.dir, 1), orig, len);
    struct offs d = {0};
    CHECK_INT(xatm_declog_dump(x.dir, on_dump, &d, x.err, sizeof x.err), 0);
    CHECK_STR(x.err, "");
    size_t len2;
    uint8_t *mid = slurp(seg_file(x.dir, 2), &len2);
    uint64_t last_mid = 0;
    for (size_t i = 0; i < d.n && i < 64; i++)
        if (strstr(d.file[i], "0000000000000002")) last_mid = d.off[i];
    CHECK(last_mid > 32);
    spit(seg_file(x.dir, 2), mid, (size_t)last_mid);
    CHECK_INT(fx_open(&x), XATM_ECORRUPT);
    CHECK_CONTAINS(x.err, "xatm-log.0000000000000003: offset 32: lsn ");
    CHECK_CONTAINS(x.err, "does not follow");
    spit(seg_file(x.dir, 2), mid, len2);

    /* once unlink works, the next rotation removes every older segment */
    x.f.fail_unlink = 0;
    x.o.segment_size = 1;
    CHECK_INT(fx_open(&x), 0);
    xatm_declog_record e = r_end("tm1.1.9");
    CHECK_INT(xatm_declog_append(x.log, &e, false), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(xatm_declog_segments(x.log), 1);
    CHECK_INT(count_segments(x.dir), 1);
    CHECK(access(seg_file(x.dir, 4), F_OK) == 0);
    free(mid);
    free(orig);
    fx_done(&x);
}

static void test_sticky_failures(void)
{
    struct fx x;
    fx_init(&x, 0, &(struct fio){0});
    xatm_declog_record cm = r_commit("tm1.1.1", 2), e = r_end("tm1.1.1");

    /* fdatasync fails once: fatal from then on, even after the disk "recovers" */
    CHECK_INT(fx_open(&x), 0);
    x.f.fail_fdatasync = -EIO;
    CHECK_INT(xatm_declog_append(x.log, &cm, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), XATM_ELOG);
    CHECK_CONTAINS(xatm_declog_errmsg(x.log), "fdatasync");
    CHECK_CONTAINS(xatm_declog_errmsg(x.log), "xatm-log.0000000000000001");
    x.f.fail_fdatasync = 0;
    x.f.fdatasyncs = 0;
    CHECK_INT(xatm_declog_append(x.log, &e, false), XATM_ELOG);
    CHECK_INT(xatm_declog_flush(x.log), XATM_ELOG);
    CHECK_INT(xatm_declog_flush(x.log), XATM_ELOG);
    CHECK_INT(x.f.fdatasyncs, 0); /* never retried */
    fx_close(&x);
    rm_rf(x.dir);

    /* write fails with ENOSPC: XATM_ENOSPC, sticky */
    CHECK_INT(fx_open(&x), 0);
    x.f.fail_pwrite = -ENOSPC;
    CHECK_INT(xatm_declog_append(x.log, &cm, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), XATM_ENOSPC);
    CHECK_CONTAINS(xatm_declog_errmsg(x.log), "No space left on device");
    x.f.fail_pwrite = 0;
    CHECK_INT(xatm_declog_append(x.log, &e, false), XATM_ENOSPC);
    CHECK_INT(xatm_declog_flush(x.log), XATM_ENOSPC);
    fx_close(&x);
    rm_rf(x.dir);

    /* fdatasync reporting ENOSPC maps the same way; EDQUOT too */
    CHECK_INT(fx_open(&x), 0);
    x.f.fail_fdatasync = -ENOSPC;
    CHECK_INT(xatm_declog_append(x.log, &cm, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), XATM_ENOSPC);
    x.f.fail_fdatasync = 0;
    CHECK_INT(xatm_declog_flush(x.log), XATM_ENOSPC);
    fx_close(&x);
    rm_rf(x.dir);
    CHECK_INT(fx_open(&x), 0);
    x.f.fail_pwrite = -EDQUOT;
    CHECK_INT(xatm_declog_append(x.log, &cm, false), 0);
    CHECK_INT(xatm_declog_flush(x.log), XATM_ENOSPC);
    x.f.fail_pwrite = 0;
    fx_close(&x);
    rm_rf(x.dir);

    /* a disk full when creating the first segment */
    x.f.fail_pwrite = -ENOSPC;
    CHECK_INT(fx_open(&x), XATM_ENOSPC);
    CHECK_CONTAINS(x.err, "write");
    x.f.fail_pwrite = 0;
    rm_rf(x.dir);

    /* a rotation whose new segment cannot be written, or synced: fatal, and a restart
     * finds the old segment intact and no new one (it was still "xatm-log.next",
     * removed) */
    struct owner *ow = fx_owner(&x, 2);
    set_add(ow->set, &ow->n, "tm1.1.1");
    for (int which = 0; which < 2; which++) {
        x.f = (struct fio){0};
        x.o.segment_size = 1; /* every flush rotates */
        CHECK_INT(fx_open(&x), 0);
        CHECK_INT(xatm_declog_append(x.log, &cm, true), 0);
        if (which == 0) {
            x.f.fail_pwrite = -EIO; /* the data write passes, the new segment's fails */
            x.f.pwrite_ok = x.f.pwrites + 1;
        } else {
            x.f.fail_fdatasync = -EIO; /* the data sync passes, the new segment's fails */
            x.f.fdatasync_ok = x.f.fdatasyncs + 1;
        }
        CHECK_INT(xatm_declog_flush(x.log), XATM_ELOG);
        CHECK_CONTAINS(xatm_declog_errmsg(x.log),
                       which == 0 ? "xatm-log.next: write: " : "xatm-log.next: fdatasync: ");
        CHECK_INT(xatm_declog_append(x.log, &e, false), XATM_ELOG);
        fx_close(&x);
        CHECK_INT(count_segments(x.dir), 1);
        CHECK(access(spare_file(x.dir), F_OK) != 0);

        x.o.segment_size = 0;
        x.o.io = NULL;
        CHECK_INT(fx_replay(&x), 0);
        CHECK_STR(x.err, "");
        CHECK_INT(x.c->n_unresolved, 1); /* the durable COMMIT survived */
        CHECK_INT(xatm_declog_segments(x.log), 1);
        fx_close(&x);
        x.o.io = &x.io;
        rm_rf(x.dir);
    }
    fx_done(&x);
}

static void test_boot_epochs(void)
{
    struct fx x;
    fx_init(&x, 0, NULL);
    for (uint32_t boot = 1; boot <= 3; boot++) {
        CHECK_INT(fx_replay(&x), 0);
        CHECK_INT(x.c->max_epoch, boot - 1); /* the TM takes this + 1 */
        xatm_declog_record b = r_boot(x.c->max_epoch + 1);
        CHECK_INT(xatm_declog_append(x.log, &b, true), 0);
        CHECK_INT(xatm_declog_flush(x.log), 0);
        fx_close(&x);
    }
    CHECK_INT(fx_replay(&x), 0);
    CHECK_INT(x.c->n, 3);
    for (size_t i = 0; i < x.c->n && i < 3; i++) {
        CHECK_INT(x.c->v[i].type, XATM_DL_BOOT);
        CHECK_INT(x.c->v[i].epoch, i + 1);
    }
    fx_close(&x);

    /* after a rotation the BOOT records are gone; the CHECKPOINT keeps the epoch */
    x.o.segment_size = 1;
    CHECK_INT(fx_open(&x), 0);
    xatm_declog_record e = r_end("tm1.3.1");
    CHECK_INT(xatm_declog_append(x.log, &e, false), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    x.o.segment_size = 0;
    CHECK_INT(fx_reopen(&x), 0);
    CHECK_INT(x.c->n, 1);
    CHECK(x.c->n == 1 && x.c->v[0].type == XATM_DL_CHECKPOINT);
    CHECK_INT(x.c->max_epoch, 3);
    CHECK_INT(xatm_declog_last_lsn(x.log), 5); /* 3 BOOT + END + CHECKPOINT */
    fx_done(&x);
}

static void test_dump(void)
{
    struct fx x;
    fx_init(&x, 0, NULL);
    make_three(x.dir);
    struct offs d = {0};
    CHECK_INT(xatm_declog_dump(x.dir, on_dump, &d, x.err, sizeof x.err), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(d.n, 3);
    CHECK_INT(d.off[0], 32);
    CHECK_CONTAINS(d.file[0], "xatm-log.0000000000000001");

    /* a torn tail is reported, not repaired */
    size_t full;
    uint8_t *orig = slurp(seg_file(x.dir, 1), &full);
    size_t len = log_end(orig, full);
    spit(seg_file(x.dir, 1), orig, len - 3);
    struct offs t = {0};
    CHECK_INT(xatm_declog_dump(x.dir, on_dump, &t, x.err, sizeof x.err), 0);
    CHECK_INT(t.n, 2);
    CHECK_CONTAINS(x.err, "torn tail");
    CHECK_INT(file_size(seg_file(x.dir, 1)), (long long)(len - 3));

    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope", x.dir);
    CHECK_INT(xatm_declog_dump(missing, on_dump, &t, x.err, sizeof x.err), XATM_ENOTFOUND);
    CHECK_INT(xatm_declog_dump(x.dir, NULL, NULL, x.err, sizeof x.err), XATM_EINVAL);
    free(orig);
    fx_done(&x);
}


/* ---- 3PC: ABORT (docs/durability.md) ---- */

/* A PRECOMMIT / ABORT record (protocol 3) of gtrid with 2 branches. */
static xatm_declog_record r_3pc(uint8_t type, const char *gtrid)
{
    xatm_declog_record r = r_commit(gtrid, 2);
    r.type = type;
    r.protocol = 3;
    return r;
}

/* Carries every gtrid of ow->set as an ABORT (a 3PC transaction aborted after PreCommit). */
static void abort_unresolved(void *arg, void (*emit)(const xatm_declog_record *, void *),
                             void *emit_arg)
{
    struct owner *ow = arg;
    ow->calls++;
    for (size_t i = 0; i < ow->n; i++) {
        xatm_declog_record r = r_3pc(XATM_DL_ABORT, ow->set[i]);
        emit(&r, emit_arg);
    }
}

static void on_dump_abort(const char *file, uint64_t offset, const xatm_declog_record *rec,
                          void *arg)
{
    (void)file;
    (void)offset;
    int *n = arg;
    if (rec->type == XATM_DL_ABORT) (*n)++;
}

static void test_abort_record(void)
{
    struct fx x;
    fx_init(&x, 0, NULL);

    /* validation: protocol 3 only, a valid gtrid, valid RM names */
    CHECK_INT(fx_open(&x), 0);
    xatm_declog_record bad = r_3pc(XATM_DL_ABORT, "tm1.3.1");
    bad.protocol = 2;
    CHECK_INT(xatm_declog_append(x.log, &bad, true), XATM_EINVAL);
    bad = r_3pc(XATM_DL_ABORT, "not a gtrid");
    CHECK_INT(xatm_declog_append(x.log, &bad, true), XATM_EINVAL);
    bad = r_3pc(XATM_DL_ABORT, "tm1.3.1");
    strcpy(bad.branches[0].rm, "bad name!");
    CHECK_INT(xatm_declog_append(x.log, &bad, true), XATM_EINVAL);
    bad = r_3pc(XATM_DL_ABORT, "tm1.3.1");
    bad.n_branches = XATM_MAX_BRANCHES + 1;
    CHECK_INT(xatm_declog_append(x.log, &bad, true), XATM_EINVAL);

    /* round trip: PRECOMMIT, ABORT (superseding it), PRECOMMIT + COMMIT, an ended ABORT */
    xatm_declog_record recs[] = {
        r_boot(3),
        r_3pc(XATM_DL_PRECOMMIT, "tm1.3.1"),
        r_3pc(XATM_DL_ABORT, "tm1.3.1"),
        r_3pc(XATM_DL_PRECOMMIT, "tm1.3.2"),
        r_3pc(XATM_DL_COMMIT, "tm1.3.2"),
        r_3pc(XATM_DL_PRECOMMIT, "tm1.3.3"),
        r_3pc(XATM_DL_ABORT, "tm1.3.3"),
        r_end("tm1.3.3"),
    };
    for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++)
        CHECK_INT(xatm_declog_append(x.log, &recs[i], recs[i].type != XATM_DL_END), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(fx_reopen(&x), 0);
    CHECK_INT(x.c->n, 8);
    CHECK_INT(x.c->first[2].type, XATM_DL_ABORT);
    CHECK_STR(x.c->first[2].gtrid, "tm1.3.1");
    CHECK_INT(x.c->first[2].protocol, 3);
    CHECK_INT(x.c->first[2].n_branches, 2);
    CHECK_STR(x.c->first[2].branches[1].rm, "my");
    CHECK_INT(x.c->first[2].branches[1].session_id, 42);
    CHECK_INT(x.c->n_unresolved, 2); /* tm1.3.1 (aborted, not ended) and tm1.3.2 */
    CHECK(set_find(x.c->unresolved, x.c->n_unresolved, "tm1.3.3") < 0);

    /* describe and dump */
    char line[256];
    xatm_declog_record d = r_3pc(XATM_DL_ABORT, "tm1.3.1");
    d.lsn = 9;
    xatm_declog_describe(&d, line, sizeof line);
    CHECK_STR(line, "lsn=9 ABORT gtrid=tm1.3.1 protocol=3pc branches=[pg,my(session 42)]");
    fx_close(&x);
    int n_abort = 0;
    CHECK_INT(xatm_declog_dump(x.dir, on_dump_abort, &n_abort, x.err, sizeof x.err), 0);
    CHECK_INT(n_abort, 2);
    fx_done(&x);

    /* a CHECKPOINT carries an unresolved ABORT, and replay delivers it from there */
    fx_init(&x, 1024, NULL);
    struct owner *ow = fx_owner(&x, 0);
    x.o.unresolved = abort_unresolved;
    CHECK_INT(fx_open(&x), 0);
    xatm_declog_record p = r_3pc(XATM_DL_PRECOMMIT, "tm1.4.1");
    xatm_declog_record a = r_3pc(XATM_DL_ABORT, "tm1.4.1");
    CHECK_INT(xatm_declog_append(x.log, &p, true), 0);
    CHECK_INT(xatm_declog_append(x.log, &a, true), 0);
    set_add(ow->set, &ow->n, "tm1.4.1");
    char g[XATM_GTRID_MAX + 1];
    for (unsigned i = 1; i <= 40; i++) { /* enough to rotate more than once */
        gt(g, i);
        xatm_declog_record r = r_commit(g, 2), e = r_end(g);
        CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
        CHECK_INT(xatm_declog_append(x.log, &e, false), 0);
        CHECK_INT(xatm_declog_flush(x.log), 0);
    }
    CHECK(ow->calls >= 2);
    fx_close(&x);
    CHECK_INT(count_segments(x.dir), 1); /* the segment with the original records is gone */
    x.o = (xatm_declog_options){0};
    CHECK_INT(fx_replay(&x), 0);
    CHECK_INT(x.c->n_unresolved, 1);
    CHECK_STR(x.c->unresolved[0], "tm1.4.1");
    bool carried = false;
    for (size_t i = 0; i < x.c->n; i++)
        if (x.c->v[i].type == XATM_DL_ABORT && !strcmp(x.c->v[i].gtrid, "tm1.4.1") &&
            x.c->v[i].n_branches == 2)
            carried = true;
    CHECK(carried);
    fx_done(&x);
}

/* xatm_declog_sync: what an unforced END needs before xatmd acts on it (deleting the 3PC
 * marker rows of an ended transaction): written and fdatasync'd, once, and only when
 * something written is not on disk yet. */
static void test_sync(void)
{
    struct fx x;
    fx_init(&x, 0, &(struct fio){0});
    CHECK_INT(fx_open(&x), 0);

    /* an END flushed as usual is written but not synced; sync then syncs it */
    xatm_declog_record e = r_end("tm1.3.1");
    CHECK_INT(xatm_declog_append(x.log, &e, false), 0);
    x.f = (struct fio){0};
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(x.f.pwrites, 1);
    CHECK_INT(x.f.fdatasyncs, 0);
    CHECK_INT(xatm_declog_sync(x.log), 0);
    CHECK_INT(x.f.pwrites, 1);
    CHECK_INT(x.f.fdatasyncs, 1);
    /* nothing unsynced: nothing done */
    x.f = (struct fio){0};
    CHECK_INT(xatm_declog_sync(x.log), 0);
    CHECK_INT(x.f.pwrites + x.f.fdatasyncs, 0);
    /* a buffered END: one write and one sync */
    CHECK_INT(xatm_declog_append(x.log, &e, false), 0);
    CHECK_INT(xatm_declog_sync(x.log), 0);
    CHECK_INT(x.f.pwrites, 1);
    CHECK_INT(x.f.fdatasyncs, 1);
    /* the next ordinary flush of an END does not sync (sync does not stick) */
    x.f = (struct fio){0};
    CHECK_INT(xatm_declog_append(x.log, &e, false), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(x.f.pwrites, 1);
    CHECK_INT(x.f.fdatasyncs, 0);
    /* a failed sync is sticky, like a failed flush */
    x.f = (struct fio){.fail_fdatasync = -EIO};
    CHECK(xatm_declog_sync(x.log) != 0);
    CHECK(xatm_declog_flush(x.log) != 0);
    fx_close(&x);
    CHECK_INT(xatm_declog_sync(NULL), XATM_EINVAL);
    fx_done(&x);
}

/* ---- zero-filled segments (issue 5) ---- */

/* Writes d[0, len) and then zeros up to `full` bytes in all into path. */
static void spit_zeros(const char *path, const uint8_t *d, size_t len, size_t full)
{
    size_t n = full > len ? full : len;
    uint8_t *w = calloc(1, n);
    memcpy(w, d, len);
    spit(path, w, n);
    free(w);
}

/* true when the file at path holds exactly d[0, len) */
static bool file_is(const char *path, const uint8_t *d, size_t len)
{
    size_t n;
    uint8_t *got = slurp(path, &n);
    bool same = got && n == len && memcmp(got, d, len) == 0;
    free(got);
    return same;
}

/* A new segment is zero-filled to its full length, and reading stops at the zeros: they
 * are where the log ends, not a torn record; opening writes and syncs nothing. */
static void test_zero_tail(void)
{
    struct fx x;
    fx_init(&x, 0, &(struct fio){0});
    make_three(x.dir);
    size_t full;
    uint8_t *orig = slurp(seg_file(x.dir, 1), &full);
    CHECK_INT(full, SEG_FULL);
    size_t len = log_end(orig, full);
    CHECK(len > 32 && len < 4096);
    CHECK(file_zero(seg_file(x.dir, 1), (long long)len, SEG_FULL));

    CHECK_INT(fx_replay(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n, 3);
    CHECK_INT(x.f.pwrites + x.f.fdatasyncs + x.f.fsyncs, 0); /* nothing to repair */
    CHECK_INT(xatm_declog_disk_bytes(x.log), SEG_FULL);
    xatm_declog_record r = r_commit("tm1.1.2", 2);
    CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(x.f.pwrites, 1);
    CHECK_INT(x.f.fdatasyncs, 1);
    fx_close(&x);
    CHECK_INT(file_size(seg_file(x.dir, 1)), SEG_FULL); /* written over the zeros */

    x.o.io = NULL;
    CHECK_INT(fx_replay(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n, 4);
    CHECK(x.c->n == 4 && x.c->v[3].lsn == 4 && !strcmp(x.c->v[3].gtrid, "tm1.1.2"));
    fx_close(&x);
    struct offs d = {0};
    CHECK_INT(xatm_declog_dump(x.dir, on_dump, &d, x.err, sizeof x.err), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(d.n, 4);
    free(orig);
    fx_done(&x);
}

/* A torn write of the last record into the zero-filled area (a prefix of it, then zeros;
 * or its first bytes lost and the rest there) is a torn tail: zeroed, durably, and the log
 * goes on after it. */
static void test_torn_into_zeros(void)
{
    struct fx x;
    fx_init(&x, 65536, NULL);
    size_t full, len, third;
    uint8_t *orig = three_image(x.dir, &full, &len, &third);
    CHECK_INT(torn_cut_failures(x.dir, orig, third, len, true), 0);

    /* the record's first bytes never reached the disk, its last ones did */
    uint8_t *work = calloc(1, 65536);
    memcpy(work, orig, len);
    memset(work + third, 0, 8);
    spit(seg_file(x.dir, 1), work, 65536);
    CHECK_INT(fx_replay(&x), 0);
    CHECK_CONTAINS(x.err, "torn tail truncated");
    CHECK_CONTAINS(x.err, "record length 0 (the end of the log) but non-zero bytes follow");
    CHECK_INT(x.c->n, 2);
    CHECK(file_zero(seg_file(x.dir, 1), (long long)third, 65536));
    append_survives(&x); /* appends land on the zeros */
    free(work);
    free(orig);
    fx_done(&x);
}

/* Non-zero bytes after the zeros that end the log: in the newest segment a torn tail when
 * nothing valid is among them (zeroed), corruption when a valid record is; in an older
 * segment always corruption. */
static void test_garbage_after_zeros(void)
{
    struct fx x;
    fx_init(&x, 65536, NULL);
    make_three(x.dir);
    struct offs o = {0};
    CHECK_INT(xatm_declog_dump(x.dir, on_dump, &o, x.err, sizeof x.err), 0);
    size_t full;
    uint8_t *orig = slurp(seg_file(x.dir, 1), &full);
    size_t len = log_end(orig, full);
    uint8_t *work = calloc(1, 65536);

    /* junk that is no record, 8 KiB into the zeros */
    memcpy(work, orig, len);
    memset(work + len + 8192, 0xa5, 16);
    spit(seg_file(x.dir, 1), work, 65536);
    struct offs d = {0};
    CHECK_INT(xatm_declog_dump(x.dir, on_dump, &d, x.err, sizeof x.err), 0); /* reported, not repaired */
    CHECK_INT(d.n, 3);
    CHECK_CONTAINS(x.err, "torn tail");
    CHECK(file_is(seg_file(x.dir, 1), work, 65536));
    CHECK_INT(fx_replay(&x), 0);
    char want[128];
    snprintf(want, sizeof want, "offset %zu: torn tail truncated (%d bytes dropped)", len, 8192 + 16);
    CHECK_CONTAINS(x.err, want);
    CHECK_CONTAINS(x.err, "non-zero bytes follow");
    CHECK_INT(x.c->n, 3);
    CHECK(file_zero(seg_file(x.dir, 1), (long long)len, 65536));
    fx_close(&x);

    /* a valid record 8 KiB into the zeros: damage in the middle (a lost write), not a tail */
    memset(work, 0, 65536);
    memcpy(work, orig, len);
    memcpy(work + len + 8192, orig + o.off[1], (size_t)(o.off[2] - o.off[1]));
    spit(seg_file(x.dir, 1), work, 65536);
    CHECK_INT(fx_replay(&x), XATM_ECORRUPT);
    snprintf(want, sizeof want, "xatm-log.0000000000000001: offset %zu: record length 0", len);
    CHECK_CONTAINS(x.err, want);
    CHECK_CONTAINS(x.err, "a complete flush (FLUSH record) follows it, so it is not a torn tail");
    CHECK_INT(x.c->n, 0);
    CHECK(x.log == NULL);
    CHECK(file_is(seg_file(x.dir, 1), work, 65536)); /* nothing changed */
    CHECK_INT(xatm_declog_dump(x.dir, on_dump, &d, x.err, sizeof x.err), XATM_ECORRUPT);

    /* an older segment: ending in zeros is complete; junk after its zeros is corruption */
    rm_rf(x.dir);
    x.f = (struct fio){.fail_unlink = -EACCES}; /* keep segment 1 when rotating */
    x.o.io = &x.io;
    CHECK_INT(fx_open(&x), 0);
    xatm_declog_record b = r_boot(1), cm = r_commit("tm1.1.1", 2);
    CHECK_INT(xatm_declog_append(x.log, &b, true), 0);
    CHECK_INT(xatm_declog_append(x.log, &cm, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    fx_close(&x);
    x.o.segment_size = 1; /* the next flush rotates */
    CHECK_INT(fx_open(&x), 0);
    xatm_declog_record e = r_end("tm1.1.1");
    CHECK_INT(xatm_declog_append(x.log, &e, false), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(xatm_declog_segments(x.log), 2);
    fx_close(&x);
    CHECK_INT(file_size(seg_file(x.dir, 1)), 65536);
    x.o = (xatm_declog_options){.segment_size = 65536};
    CHECK_INT(fx_replay(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n, 4); /* BOOT, COMMIT, END, CHECKPOINT */
    fx_close(&x);
    size_t n1;
    uint8_t *seg1 = slurp(seg_file(x.dir, 1), &n1);
    CHECK_INT(n1, 65536);
    size_t end1 = log_end(seg1, n1);
    seg1[end1 + 100] = 0x01;
    spit(seg_file(x.dir, 1), seg1, n1);
    CHECK_INT(fx_open(&x), XATM_ECORRUPT);
    snprintf(want, sizeof want, "xatm-log.0000000000000001: offset %zu: record length 0", end1);
    CHECK_CONTAINS(x.err, want);
    CHECK_CONTAINS(x.err, "only the newest segment may end torn");
    CHECK(file_is(seg_file(x.dir, 1), seg1, n1));
    free(seg1);
    free(work);
    free(orig);
    fx_done(&x);
}

/* A crash while a segment was being zero-filled (the first one, or one a rotation created
 * under its own name): a file shorter than its full length is extended, a torn or missing
 * header is rewritten; a half-prepared next segment ("xatm-log.next") is not part of the
 * log: ignored by dump, removed at open. */
static void test_zero_fill_crash(void)
{
    struct fx x;
    fx_init(&x, 0, NULL);
    make_three(x.dir);
    size_t full;
    uint8_t *orig = slurp(seg_file(x.dir, 1), &full);
    size_t len = log_end(orig, full);

    /* the records made it, the zero fill stopped 100000 bytes in */
    spit_zeros(seg_file(x.dir, 1), orig, len, 100000);
    CHECK_INT(fx_replay(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n, 3);
    CHECK_INT(xatm_declog_disk_bytes(x.log), SEG_FULL);
    fx_close(&x);
    CHECK_INT(file_size(seg_file(x.dir, 1)), SEG_FULL);
    CHECK(file_zero(seg_file(x.dir, 1), (long long)len, SEG_FULL));

    /* a newest segment whose header is torn, or was never written, over zeros of any
     * length: rewritten, and the log is what the older segment holds */
    for (int k = 0; k < 3; k++) {
        uint8_t hdr[32];
        memcpy(hdr, orig, 32);
        hdr[16] = 2; /* segment 2's header... */
        uint32_t crc = xatm_crc32c(0, hdr, 24);
        for (int i = 0; i < 4; i++) hdr[24 + i] = (uint8_t)(crc >> (8 * i));
        size_t keep = k == 0 ? 20 : k == 1 ? 0 : 24; /* ...of which this much made it */
        spit(seg_file(x.dir, 1), orig, len);
        spit_zeros(seg_file(x.dir, 2), hdr, keep, k == 2 ? 5000 : 65536);
        CHECK_INT(fx_replay(&x), 0);
        CHECK_CONTAINS(x.err, "xatm-log.0000000000000002: offset 0: torn segment header rewritten");
        CHECK_INT(x.c->n, 3);
        CHECK_INT(xatm_declog_segments(x.log), 2);
        xatm_declog_record r = r_end("tm1.1.1");
        CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
        CHECK_INT(xatm_declog_flush(x.log), 0);
        fx_close(&x);
        CHECK_INT(file_size(seg_file(x.dir, 2)), SEG_FULL);
        CHECK_INT(fx_replay(&x), 0);
        CHECK_STR(x.err, "");
        CHECK_INT(x.c->n, 4);
        CHECK_INT(xatm_declog_last_lsn(x.log), 4);
        fx_close(&x);
        unlink(seg_file(x.dir, 2));
    }

    /* a leftover next segment, half zero-filled or holding an unrenamed checkpoint */
    spit(seg_file(x.dir, 1), orig, len);
    spit_zeros(spare_file(x.dir), orig, len, 300000);
    struct offs d = {0};
    CHECK_INT(xatm_declog_dump(x.dir, on_dump, &d, x.err, sizeof x.err), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(d.n, 3);
    CHECK_INT(fx_replay(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n, 3);
    CHECK_INT(xatm_declog_segments(x.log), 1);
    CHECK(access(spare_file(x.dir), F_OK) != 0);
    free(orig);
    fx_done(&x);
}

/* A failing write or fdatasync while a segment is zero-filled at open: the open fails with
 * the file, what failed and why (XATM_ENOSPC for a full disk), and a later open works. */
static void test_zero_fill_failures(void)
{
    struct fx x;
    /* the disk is full at the third 256 KiB write */
    fx_init(&x, 0, &(struct fio){.fail_pwrite = -ENOSPC, .pwrite_ok = 2});
    CHECK_INT(fx_open(&x), XATM_ENOSPC);
    CHECK(x.log == NULL);
    CHECK_CONTAINS(x.err, "xatm-log.0000000000000001: creating the segment: ");
    CHECK_CONTAINS(x.err, "xatm-log.next: preparing the next segment: write at offset 524288: "
                        "No space left on device");
    CHECK_INT(count_segments(x.dir), 0);
    CHECK(access(spare_file(x.dir), F_OK) != 0); /* removed: its blocks are given back */
    x.f = (struct fio){.fail_fdatasync = -EIO};
    rm_rf(x.dir);
    CHECK_INT(fx_open(&x), XATM_EIO);
    CHECK_CONTAINS(x.err, "xatm-log.0000000000000001: creating the segment: ");
    CHECK_CONTAINS(x.err, "xatm-log.next: fdatasync: Input/output error");
    CHECK_INT(count_segments(x.dir), 0);
    /* the failed open left no segment: the next one creates it */
    x.f = (struct fio){0};
    CHECK_INT(fx_replay(&x), 0);
    CHECK_INT(x.c->n, 0);
    fx_close(&x);
    rm_rf(x.dir);

    /* extending a short segment, and zeroing a torn tail, on a full or failing disk */
    make_three(x.dir);
    size_t full;
    uint8_t *orig = slurp(seg_file(x.dir, 1), &full);
    size_t len = log_end(orig, full);
    spit(seg_file(x.dir, 1), orig, len);
    x.f = (struct fio){.fail_pwrite = -ENOSPC};
    CHECK_INT(fx_open(&x), XATM_ENOSPC);
    CHECK_CONTAINS(x.err, "extending the segment with zeros to its full length: No space left on device");
    spit(seg_file(x.dir, 1), orig, len - 2);
    x.f = (struct fio){.fail_pwrite = -EIO};
    CHECK_INT(fx_open(&x), XATM_EIO);
    CHECK_CONTAINS(x.err, "zeroing the torn tail: Input/output error");
    x.f = (struct fio){.fail_fdatasync = -EIO};
    CHECK_INT(fx_open(&x), XATM_EIO);
    CHECK_CONTAINS(x.err, "fdatasync after repairing the segment: Input/output error");
    x.o.io = NULL;
    CHECK_INT(fx_replay(&x), 0);
    CHECK_INT(x.c->n, 2);
    free(orig);
    fx_done(&x);
}

#define MIB (1024 * 1024)

/* Segments larger than one zero-fill write are prepared ahead: from the flush that finds the
 * current segment half full, each flush zero-fills 256 KiB of "xatm-log.next" and the one
 * that completes it fdatasyncs it; the rotating flush then only writes the header and the
 * CHECKPOINT over its zeros, renames it into place, and renames the old segment to
 * "xatm-log.next" instead of deleting it (recycled: the next preparation writes zeros over
 * its old records before the next rotation puts it into place). */
static void test_prepare_ahead(void)
{
    struct fx x;
    char g[XATM_GTRID_MAX + 1];
    fx_init(&x, MIB, &(struct fio){.no_sync = true});
    struct owner *ow = fx_owner(&x, 2);
    CHECK_INT(fx_open(&x), 0);
    CHECK_INT(file_size(seg_file(x.dir, 1)), MIB);

    bool rotated = false;
    int bad_before_half = 0, bad_step = 0, bad_disk = 0, steps = 0, completed_syncs = 0;
    long long written = 32, last_spare = 0;
    for (unsigned i = 1; i <= 2000 && !rotated; i++) {
        gt(g, i);
        xatm_declog_record r = r_commit(g, XATM_MAX_BRANCHES); /* ~1.2 KiB */
        if (i % 3 == 0) set_add(ow->set, &ow->n, g);            /* some stay unresolved */
        CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
        size_t rec = xatm_declog_pending_bytes(x.log) + FLUSH_REC; /* the flush adds its FLUSH */
        struct fio before = x.f;
        CHECK_INT(xatm_declog_flush(x.log), 0);
        written += (long long)rec;
        if (access(seg_file(x.dir, 2), F_OK) == 0) {
            rotated = true;
            /* the rotating flush: the records, then only the new segment's header and
             * checkpoint; the old one synced, the new one synced, renamed, the directory
             * synced after the rename and after the old one was renamed to be recycled */
            CHECK_INT(x.f.pwrites - before.pwrites, 2);
            CHECK_INT(x.f.fdatasyncs - before.fdatasyncs, 2);
            CHECK_INT(x.f.fsyncs - before.fsyncs, 2);
            CHECK_INT(x.f.renames - before.renames, 2);
            CHECK_INT(x.f.unlinks - before.unlinks, 0);
            CHECK(written >= MIB + 32);
            break;
        }
        long long spare = file_size(spare_file(x.dir));
        if (written - 32 < MIB / 2) {
            if (spare >= 0) bad_before_half++;
        } else {
            if (spare < 0) spare = 0;
            if (last_spare < MIB && spare != last_spare + 256 * 1024) bad_step++;
            if (last_spare == MIB && spare != MIB) bad_step++;
            if (spare > last_spare) steps++;
            if (spare == MIB && last_spare < MIB)
                completed_syncs += x.f.fdatasyncs - before.fdatasyncs == 2; /* records + spare */
            last_spare = spare;
        }
        if (xatm_declog_disk_bytes(x.log) != (uint64_t)(MIB + (spare > 0 ? spare : 0))) bad_disk++;
    }
    CHECK(rotated);
    CHECK_INT(bad_before_half, 0);
    CHECK_INT(bad_step, 0);
    CHECK_INT(steps, 4);
    CHECK_INT(completed_syncs, 1);
    CHECK_INT(bad_disk, 0);
    /* segment 1 is the next spare, cut back to its full length, its records still in it */
    CHECK(access(seg_file(x.dir, 1), F_OK) != 0);
    CHECK_INT(file_size(spare_file(x.dir)), MIB);
    CHECK(!file_zero(spare_file(x.dir), 32, 4096));
    CHECK_INT(file_size(seg_file(x.dir, 2)), MIB);
    CHECK_INT(xatm_declog_segments(x.log), 1);
    CHECK_INT(xatm_declog_disk_bytes(x.log), 2 * MIB);

    /* the next cycle zero-fills the recycled file (no new file: no create) and puts it into
     * place as segment 3: zeros after its records, nothing of segment 1 left in it */
    rotated = false;
    int recycled_steps = 0;
    for (unsigned i = 2001; i <= 4000 && !rotated; i++) {
        gt(g, i);
        xatm_declog_record r = r_commit(g, XATM_MAX_BRANCHES);
        CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
        struct fio before = x.f;
        CHECK_INT(xatm_declog_flush(x.log), 0);
        if (access(seg_file(x.dir, 3), F_OK) == 0) {
            rotated = true;
            CHECK_INT(x.f.renames - before.renames, 2);
            CHECK_INT(x.f.unlinks - before.unlinks, 0);
            break;
        }
        if (x.f.pwrites - before.pwrites == 2) recycled_steps++; /* records + a zero piece */
        CHECK_INT(file_size(spare_file(x.dir)), MIB);
        /* the last flushes before the rotation extend segment 2 past its full length */
        CHECK(xatm_declog_disk_bytes(x.log) >= 2 * MIB &&
              xatm_declog_disk_bytes(x.log) < 2 * MIB + 16384);
    }
    CHECK(rotated);
    CHECK_INT(recycled_steps, 4);
    CHECK_INT(file_size(seg_file(x.dir, 3)), MIB);
    {
        size_t len;
        uint8_t *d = slurp(seg_file(x.dir, 3), &len);
        size_t end = log_end(d, len);
        CHECK(end > 32 && end < MIB / 2); /* the CHECKPOINT and what overflowed it */
        CHECK(file_zero(seg_file(x.dir, 3), (long long)end, MIB));
        free(d);
    }
    uint64_t last = xatm_declog_last_lsn(x.log);
    fx_close(&x);

    x.o.io = NULL;
    CHECK_INT(fx_replay(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n_unresolved, ow->n);
    CHECK(x.c->n > 0 && x.c->v[0].type == XATM_DL_CHECKPOINT);
    CHECK_INT(xatm_declog_last_lsn(x.log), last);
    CHECK(access(spare_file(x.dir), F_OK) != 0); /* the leftover recycled spare: removed */
    fx_close(&x);
    rm_rf(x.dir);

    /* one flush larger than the segment: the rotation finds no spare and makes the whole
     * next segment itself (and the records past the zero fill simply extend the file) */
    x.f = (struct fio){.no_sync = true};
    x.o.io = &x.io;
    ow->n = 0;
    CHECK_INT(fx_open(&x), 0);
    for (unsigned i = 1; i <= 1000; i++) {
        gt(g, i);
        xatm_declog_record r = r_commit(g, XATM_MAX_BRANCHES);
        CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
    }
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(x.f.renames, 3); /* segment 1 at open, segment 2, segment 1 recycled */
    CHECK(access(seg_file(x.dir, 2), F_OK) == 0);
    CHECK(access(seg_file(x.dir, 1), F_OK) != 0);
    CHECK_INT(file_size(spare_file(x.dir)), MIB); /* segment 1, recycled, cut back */
    CHECK_INT(file_size(seg_file(x.dir, 2)), MIB);
    CHECK_INT(fx_reopen(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n, 1); /* the CHECKPOINT: every decision was resolved (none in ow) */
    CHECK_INT(xatm_declog_last_lsn(x.log), 1001);
    fx_done(&x);
}

/* A recycled segment is cut back to its full length only once the directory fsync has made
 * its rename durable: before, a crash could bring it back under its segment name, cut short
 * (the last flush of a segment extends it past its full length), and an older segment that
 * ends torn makes the next start-up fail as CORRUPT. */
static void test_recycle_cut_after_rename(void)
{
    struct fx x;
    char g[XATM_GTRID_MAX + 1];
    fx_init(&x, MIB, &(struct fio){.no_sync = true});
    CHECK_INT(fx_open(&x), 0);
    for (unsigned i = 1; i <= 2000 && access(seg_file(x.dir, 2), F_OK) != 0; i++) {
        gt(g, i);
        xatm_declog_record r = r_commit(g, XATM_MAX_BRANCHES);
        CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
        CHECK_INT(xatm_declog_flush(x.log), 0);
    }
    CHECK(access(seg_file(x.dir, 2), F_OK) == 0);
    CHECK(access(seg_file(x.dir, 1), F_OK) != 0);
    CHECK_INT(file_size(spare_file(x.dir)), MIB); /* segment 1, recycled and cut back... */
    CHECK_INT(x.f.ftruncates, 1);
    CHECK_INT(x.f.early_cuts, 0);                 /* ...after its rename was made durable */
    fx_done(&x);
}

/* A power loss during the fdatasync that makes a new small segment durable (at most 256 KiB:
 * not prepared ahead; here a CHECKPOINT of several pages) may keep a later page of it and
 * not the first: a valid FLUSH record after a torn header, which the reader takes for
 * corruption. So the new segment is still "xatm-log.next" then (renamed to its name only
 * after that fdatasync), and open drops it: the older segment, synced before, has every
 * decision. Modelled as: the new segment's fdatasync fails (the crash), the unlinks fail
 * (nothing is cleaned up), and the file written has its first page zeroed. */
static void test_small_rotation_torn_first_page(void)
{
    struct fx x;
    char g[XATM_GTRID_MAX + 1];
    fx_init(&x, 65536, &(struct fio){.no_sync = true, .fail_unlink = -EIO});
    struct owner *ow = fx_owner(&x, 2);
    CHECK_INT(fx_open(&x), 0);
    int rc = 0;
    for (unsigned i = 1; i <= 5000 && rc == 0; i++) {
        gt(g, i);
        xatm_declog_record r = r_commit(g, 2);
        set_add(ow->set, &ow->n, g); /* all unresolved: a CHECKPOINT of several pages */
        CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
        x.f.fail_fdatasync = -EIO; /* the flush's own fdatasync passes, a second one fails: */
        x.f.fdatasync_ok = x.f.fdatasyncs + 1; /* the new segment's, at the rotation */
        rc = xatm_declog_flush(x.log);
    }
    CHECK_INT(rc, XATM_ELOG);
    fx_close(&x);
    const char *made = access(seg_file(x.dir, 2), F_OK) == 0 ? seg_file(x.dir, 2) : spare_file(x.dir);
    size_t len;
    uint8_t *d = slurp(made, &len);
    CHECK(d && log_end(d, len) > 8192);
    if (d) {
        memset(d, 0, 4096); /* its first page never reached the disk */
        spit(made, d, len);
    }
    free(d);
    x.o.io = NULL;
    rc = fx_replay(&x);
    CHECK_INT(rc, 0);
    if (rc) fprintf(stderr, "  open: %s\n", x.err);
    else {
        CHECK_STR(x.err, "");
        CHECK_INT(x.c->n_unresolved, ow->n);
        CHECK_INT(xatm_declog_segments(x.log), 1);
        CHECK(access(spare_file(x.dir), F_OK) != 0);
    }
    fx_done(&x);
}

/* Preparing the next segment fails. A full disk (a write that would extend a file fails,
 * one over a file's bytes passes) found by a piece of it is only a warning, once: records
 * keep landing on the current segment's zeros until the flush that runs past its full
 * length, whose write fails (XATM_ENOSPC, sticky; its records are not durable); space freed
 * before that: the preparation resumes (a second warning) and the rotation works. A failing
 * fdatasync of it and a failing rename at the rotation are XATM_ELOG at once (the file
 * removed), and the records of the failing flush are durable. A restart finds every
 * flushed record in the old segment. */
static void test_prepare_failures(void)
{
    struct fx x;
    char g[XATM_GTRID_MAX + 1];
    fx_init(&x, 0, NULL);
    for (int which = 0; which < 4; which++) {
        x.f = (struct fio){.no_sync = true};
        x.o = (xatm_declog_options){.segment_size = MIB, .io = &x.io};
        CHECK_INT(fx_open(&x), 0);
        if (which == 2) x.f.fail_rename = -EIO;
        unsigned flushed = 0, full_at = 0;
        int rc = 0, warnings = 0;
        long long seg_bytes = 32;
        const char *warning = NULL;
        for (unsigned i = 1; i <= 2000 && rc == 0; i++) {
            gt(g, i);
            xatm_declog_record r = r_commit(g, XATM_MAX_BRANCHES);
            CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
            long long spare = file_size(spare_file(x.dir));
            size_t bytes = xatm_declog_pending_bytes(x.log) + FLUSH_REC;
            if ((which == 0 || which == 3) && spare == 256 * 1024 && !full_at) {
                x.f.disk_full = true; /* the records land on zeros, the next piece does not fit */
                full_at = i;
            }
            if (which == 3 && full_at && i == full_at + 50) x.f.disk_full = false; /* freed */
            if (which == 1 && spare == 3 * 256 * 1024) {
                x.f.fail_fdatasync = -EIO; /* the records' sync passes, the spare's fails */
                x.f.fdatasync_ok = x.f.fdatasyncs + 1;
            }
            rc = xatm_declog_flush(x.log);
            const char *w = xatm_declog_take_warning(x.log);
            if (w) {
                warnings++;
                warning = w;
                if (which == 0 || which == 3)
                    CHECK_CONTAINS(w, "xatm-log.next: preparing the next segment: ");
                if (warnings == 1) {
                    CHECK_INT(i, full_at); /* at once, and only once */
                    CHECK_CONTAINS(w, "write at offset 262144: No space left on device; retried by every flush");
                }
            }
            /* durable even when the flush fails after the records' sync; with a full disk
             * the write that fails is that of the records */
            if (rc == 0 || which == 1 || which == 2) flushed = i;
            if (rc == 0) seg_bytes += (long long)bytes;
            if (which == 3 && rc == 0 && access(seg_file(x.dir, 2), F_OK) == 0) break;
        }
        const char *msg = xatm_declog_errmsg(x.log);
        if (which == 0) {
            /* a full disk fails the log only when it needs new space: the flush that runs
             * past the current segment's zero-filled length, where the rotation is due */
            CHECK_INT(rc, XATM_ENOSPC);
            CHECK_INT(warnings, 1);
            CHECK(seg_bytes < MIB && seg_bytes > MIB - 2 * 1300);
            CHECK_CONTAINS(msg, "xatm-log.0000000000000001: write at offset ");
            CHECK_CONTAINS(msg, ": No space left on device");
            CHECK_INT(file_size(spare_file(x.dir)), 256 * 1024); /* kept: the log needs it */
        } else if (which == 1) {
            CHECK_INT(rc, XATM_ELOG);
            CHECK_CONTAINS(msg, "xatm-log.next: preparing the next segment: fdatasync: Input/output error");
        } else if (which == 2) {
            CHECK_INT(rc, XATM_ELOG);
            CHECK_CONTAINS(msg, "xatm-log.next: rename to ");
            CHECK_CONTAINS(msg, "xatm-log.0000000000000002: Input/output error");
        } else {
            /* space freed before the rotation: the preparation resumes, the rotation works */
            CHECK_INT(rc, 0);
            CHECK_INT(warnings, 2);
            CHECK_CONTAINS(warning, "preparing the next segment: resumed at offset 262144");
            CHECK(access(seg_file(x.dir, 2), F_OK) == 0);
            fx_close(&x);
            rm_rf(x.dir);
            continue;
        }
        if (which != 0) CHECK(access(spare_file(x.dir), F_OK) != 0); /* given back */
        CHECK(access(seg_file(x.dir, 2), F_OK) != 0);
        xatm_declog_record e = r_end("tm1.3.1");
        CHECK_INT(xatm_declog_append(x.log, &e, false), rc); /* sticky */
        CHECK_INT(xatm_declog_flush(x.log), rc);
        fx_close(&x);

        x.o = (xatm_declog_options){0};
        CHECK_INT(fx_replay(&x), 0);
        CHECK_STR(x.err, "");
        CHECK_INT(x.c->n, flushed);
        CHECK_INT(x.c->n_unresolved, flushed);
        fx_close(&x);
        rm_rf(x.dir);
    }
    fx_done(&x);
}

/* Rewrites a segment file as one written before FLUSH records (version 1, append-only):
 * the FLUSH records dropped, the header's version set to 1, the file ending right after
 * its last record, minus `cut` bytes. Returns the new length. */
static size_t make_v1(const char *path, size_t cut)
{
    size_t n = 0;
    uint8_t *d = slurp(path, &n);
    size_t end = log_end(d, n), out = 32;
    uint8_t *v1 = malloc(end);
    memcpy(v1, d, 32);
    v1[8] = 1;
    uint32_t crc = xatm_crc32c(0, v1, 24);
    for (int i = 0; i < 4; i++) v1[24 + i] = (uint8_t)(crc >> (8 * i));
    for (size_t off = 32; off < end;) {
        uint32_t total = (uint32_t)d[off] | (uint32_t)d[off + 1] << 8 |
                         (uint32_t)d[off + 2] << 16 | (uint32_t)d[off + 3] << 24;
        if (d[off + 16] != XATM_DL_FLUSH) {
            memcpy(v1 + out, d + off, total);
            out += total;
        }
        off += total;
    }
    out -= cut;
    spit(path, v1, out);
    free(v1);
    free(d);
    return out;
}

/* Segments written before FLUSH records (version 1: append-only, no FLUSH records, files
 * ending at their last record) open and replay by the old rules; the newest one gets no
 * more records: a new version 2 segment follows it, and the log is then old segments
 * followed by new ones until rotation deletes the old ones. */
static void test_old_format(void)
{
    struct fx x;
    fx_init(&x, 0, NULL);
    make_three_segments(&x);
    x.o = (xatm_declog_options){0}; /* opened with the defaults from here on */
    size_t n;
    uint8_t *saved[4];
    size_t saved_len[4];
    for (int i = 1; i <= 3; i++) saved[i] = slurp(seg_file(x.dir, (uint64_t)i), &saved_len[i]);
    long long sizes[4];
    for (int i = 1; i <= 3; i++) sizes[i] = (long long)make_v1(seg_file(x.dir, (uint64_t)i), 0);

    CHECK_INT(fx_replay(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n_unresolved, 1);
    CHECK_INT(x.c->max_epoch, 1);
    CHECK_INT(xatm_declog_segments(x.log), 4); /* a new segment after the old newest one */
    CHECK_INT(file_size(seg_file(x.dir, 1)), sizes[1]); /* old ones untouched */
    CHECK_INT(file_size(seg_file(x.dir, 2)), sizes[2]);
    CHECK_INT(file_size(seg_file(x.dir, 3)), sizes[3]);
    CHECK_INT(file_size(seg_file(x.dir, 4)), SEG_FULL);
    CHECK_INT(xatm_declog_disk_bytes(x.log), (uint64_t)(sizes[1] + sizes[2] + sizes[3] + SEG_FULL));
    uint64_t last = xatm_declog_last_lsn(x.log);
    xatm_declog_record r = r_commit("tm1.1.2", 2);
    CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    fx_close(&x);
    uint8_t *d = slurp(seg_file(x.dir, 4), &n);
    CHECK(n > 40 && d[8] == 2); /* version 2 */
    free(d);
    /* mixed: three old segments, then a new one */
    CHECK_INT(fx_replay(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n_unresolved, 2);
    CHECK_INT(xatm_declog_last_lsn(x.log), last + 1);
    CHECK_INT(xatm_declog_segments(x.log), 4);
    fx_close(&x);
    /* ... whose new segment ends torn (an incomplete flush) */
    d = slurp(seg_file(x.dir, 4), &n);
    size_t end = log_end(d, n);
    spit(seg_file(x.dir, 4), d, end - 5);
    CHECK_INT(fx_replay(&x), 0);
    CHECK_CONTAINS(x.err, "xatm-log.0000000000000004: offset 32: torn tail truncated");
    CHECK_INT(x.c->n_unresolved, 1);
    CHECK_INT(xatm_declog_last_lsn(x.log), last);
    fx_close(&x);
    free(d);
    /* an old segment that is not the newest must be complete */
    d = slurp(seg_file(x.dir, 2), &n);
    spit(seg_file(x.dir, 2), d, n - 3);
    CHECK_INT(fx_open(&x), XATM_ECORRUPT);
    CHECK_CONTAINS(x.err, "xatm-log.0000000000000002");
    CHECK_CONTAINS(x.err, "only the newest segment may end torn");
    free(d);

    /* an old newest segment with a torn tail: truncated by the old rule (its file keeps its
     * length, the torn bytes zeroed), then a new segment follows it */
    unlink(seg_file(x.dir, 4));
    for (int i = 1; i <= 3; i++) spit(seg_file(x.dir, (uint64_t)i), saved[i], saved_len[i]);
    for (int i = 1; i <= 3; i++) sizes[i] = (long long)make_v1(seg_file(x.dir, (uint64_t)i), i == 3 ? 5 : 0);
    CHECK_INT(fx_replay(&x), 0);
    CHECK_CONTAINS(x.err, "torn tail truncated");
    CHECK_INT(x.c->n_unresolved, 1); /* segment 3's checkpoint was torn, not segment 2's */
    CHECK_INT(file_size(seg_file(x.dir, 3)), sizes[3]);
    CHECK(file_zero(seg_file(x.dir, 3), 32, sizes[3]));
    CHECK_INT(xatm_declog_segments(x.log), 4);
    r = r_commit("tm1.1.3", 2);
    CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(fx_reopen(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n_unresolved, 2);
    fx_close(&x);

    /* failures while starting the new segment after an old newest one fail the open,
     * delivering nothing; the next open succeeds */
    unlink(seg_file(x.dir, 4));
    for (int i = 1; i <= 3; i++) spit(seg_file(x.dir, (uint64_t)i), saved[i], saved_len[i]);
    for (int i = 1; i <= 3; i++) make_v1(seg_file(x.dir, (uint64_t)i), 0);
    x.f = (struct fio){.fail_fdatasync = -EIO};
    x.o.io = &x.io;
    CHECK_INT(fx_replay(&x), XATM_EIO);
    CHECK_CONTAINS(x.err, "xatm-log.0000000000000003: fdatasync");
    CHECK_INT(x.c->n, 0);
    CHECK(access(seg_file(x.dir, 4), F_OK) != 0);
    x.f = (struct fio){.fail_pwrite = -ENOSPC};
    CHECK_INT(fx_replay(&x), XATM_ENOSPC);
    CHECK_CONTAINS(x.err, "xatm-log.0000000000000004: creating the segment (a new segment after "
                        "one written before FLUSH records): ");
    CHECK_INT(x.c->n, 0);
    CHECK(access(seg_file(x.dir, 4), F_OK) != 0); /* it never appeared under its name */
    x.o.io = NULL;
    CHECK_INT(fx_replay(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n_unresolved, 1);
    CHECK_INT(xatm_declog_segments(x.log), 4);
    fx_close(&x);
    for (int i = 1; i <= 3; i++) free(saved[i]);
    fx_done(&x);
}

/* Opens x's log and writes flush 1 (a BOOT, forced) and flush 2 (12 COMMITs of ~1.2 KiB,
 * four pages; forced or not); the log stays open. */
static void boot_and_big_flush(struct fx *x, bool forced)
{
    char g[XATM_GTRID_MAX + 1];
    xatm_declog_record boot = r_boot(1);
    CHECK_INT(fx_open(x), 0);
    CHECK_INT(xatm_declog_append(x->log, &boot, true), 0);
    CHECK_INT(xatm_declog_flush(x->log), 0);
    for (unsigned i = 1; i <= 12; i++) {
        gt(g, i);
        xatm_declog_record r = r_commit(g, XATM_MAX_BRANCHES);
        CHECK_INT(xatm_declog_append(x->log, &r, forced), 0);
    }
    CHECK_INT(xatm_declog_flush(x->log), 0);
}

/* FLUSH records: a flush spanning several pages whose middle page did not reach the disk
 * (a power failure during its fdatasync) while its last page, with valid records and its
 * FLUSH record, did: the FLUSH record's CRC over the flush does not match, so the whole
 * flush is the torn tail and the log opens with the flushes before it. The same damage with
 * a later complete flush after it is corruption: that flush's FLUSH record covers every byte
 * since the last completed fdatasync, so the damaged flush had been synced. */
static void test_flush_boundaries(void)
{
    struct fx x;
    char want[160];
    fx_init(&x, 0, NULL);
    size_t f2 = 32 + 28 + FLUSH_REC; /* where flush 2 starts */
    boot_and_big_flush(&x, true);
    fx_close(&x);
    size_t full;
    uint8_t *orig = slurp(seg_file(x.dir, 1), &full);
    size_t end = log_end(orig, full);
    CHECK(end > f2 + 3 * 4096);
    uint8_t *work = malloc(full);

    /* the page at 8 KiB garbage (or never written: zeros), the last page intact */
    for (int zeros = 0; zeros <= 1; zeros++) {
        memcpy(work, orig, full);
        memset(work + 8192, zeros ? 0 : 0xa5, 4096);
        spit(seg_file(x.dir, 1), work, full);
        struct offs dd = {0};
        CHECK_INT(xatm_declog_dump(x.dir, on_dump, &dd, x.err, sizeof x.err), 0);
        CHECK_CONTAINS(x.err, "torn tail (xatmd would truncate it)");
        CHECK_INT(dd.n, 1); /* only the BOOT */
        CHECK_INT(fx_replay(&x), 0);
        snprintf(want, sizeof want, "offset %zu: torn tail truncated (%zu bytes dropped): incomplete flush", f2,
                 end - f2);
        CHECK_CONTAINS(x.err, want);
        CHECK_INT(x.c->n, 1);
        CHECK_INT(xatm_declog_last_lsn(x.log), 1);
        CHECK(file_zero(seg_file(x.dir, 1), (long long)f2, SEG_FULL));
        fx_close(&x);
    }

    /* every record of a flush valid, but its FLUSH record's covered bytes changed (a CRC
     * that still matches per record is beyond a torn write; the FLUSH CRC catches it) */
    memcpy(work, orig, full);
    uint32_t total = (uint32_t)work[f2] | (uint32_t)work[f2 + 1] << 8 | (uint32_t)work[f2 + 2] << 16;
    work[f2 + total - 1] ^= 0x40; /* the first COMMIT's last session id byte... */
    uint32_t crc = xatm_crc32c(0, work + f2 + 8, total - 8); /* ...with a CRC to match */
    for (int i = 0; i < 4; i++) work[f2 + 4 + i] = (uint8_t)(crc >> (8 * i));
    spit(seg_file(x.dir, 1), work, full);
    CHECK_INT(fx_replay(&x), 0);
    snprintf(want, sizeof want, "offset %zu: torn tail truncated", f2);
    CHECK_CONTAINS(x.err, want);
    CHECK_CONTAINS(x.err, "CRC of the");
    CHECK_INT(x.c->n, 1);
    fx_close(&x);

    /* the same damage in a synced flush followed by a later complete flush: CORRUPT */
    rm_rf(x.dir);
    boot_and_big_flush(&x, true); /* flush 2, synced */
    xatm_declog_record r = r_commit("tm1.1.99", 2);
    CHECK_INT(xatm_declog_append(x.log, &r, false), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0); /* flush 3, not synced: covers only itself */
    fx_close(&x);
    uint8_t *three = slurp(seg_file(x.dir, 1), &full);
    memcpy(work, three, full);
    memset(work + 8192, 0, 4096);
    spit(seg_file(x.dir, 1), work, full);
    CHECK_INT(fx_replay(&x), XATM_ECORRUPT);
    snprintf(want, sizeof want, "xatm-log.0000000000000001: offset %zu: incomplete flush: offset ", f2);
    CHECK_CONTAINS(x.err, want);
    CHECK_CONTAINS(x.err, "a complete flush (FLUSH record) follows it, so it is not a torn tail");
    CHECK_INT(x.c->n, 0);
    CHECK(x.log == NULL);
    CHECK(file_is(seg_file(x.dir, 1), work, full)); /* nothing changed */
    struct offs dd = {0};
    CHECK_INT(xatm_declog_dump(x.dir, on_dump, &dd, x.err, sizeof x.err), XATM_ECORRUPT);
    CHECK_INT(dd.n, 1);
    free(three);

    /* ... but when the damaged flush was never synced, a later flush covers it too: the
     * later flush's CRC fails as well, and both are the torn tail */
    rm_rf(x.dir);
    boot_and_big_flush(&x, false); /* flush 2 unforced: no fdatasync */
    CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0); /* forced: its FLUSH covers flush 2 as well */
    fx_close(&x);
    three = slurp(seg_file(x.dir, 1), &full);
    size_t end3 = log_end(three, full);
    memcpy(work, three, full);
    memset(work + 8192, 0, 4096);
    spit(seg_file(x.dir, 1), work, full);
    CHECK_INT(fx_replay(&x), 0);
    snprintf(want, sizeof want, "offset %zu: torn tail truncated (%zu bytes dropped)", f2, end3 - f2);
    CHECK_CONTAINS(x.err, want);
    CHECK_INT(x.c->n, 1);
    /* and the log goes on after it */
    CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(fx_reopen(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n, 2);
    CHECK_INT(xatm_declog_last_lsn(x.log), 2);
    fx_close(&x);
    free(three);

    /* the write that carries a flush and its FLUSH record fails: sticky, and nothing of
     * that flush is on disk; one pwrite and one fdatasync per flush, FLUSH included */
    rm_rf(x.dir);
    x.o.io = &x.io; /* counted from here */
    CHECK_INT(fx_open(&x), 0);
    xatm_declog_record boot = r_boot(1);
    CHECK_INT(xatm_declog_append(x.log, &boot, true), 0);
    struct fio before = x.f;
    CHECK_INT(xatm_declog_flush(x.log), 0);
    CHECK_INT(x.f.pwrites - before.pwrites, 1);
    CHECK_INT(x.f.fdatasyncs - before.fdatasyncs, 1);
    x.f.fail_pwrite = -ENOSPC;
    x.f.pwrite_ok = x.f.pwrites;
    CHECK_INT(xatm_declog_append(x.log, &r, true), 0);
    CHECK_INT(xatm_declog_flush(x.log), XATM_ENOSPC);
    CHECK_CONTAINS(xatm_declog_errmsg(x.log), "write at offset 104");
    x.o.io = NULL;
    CHECK_INT(fx_reopen(&x), 0);
    CHECK_STR(x.err, "");
    CHECK_INT(x.c->n, 1);
    free(work);
    free(orig);
    fx_done(&x);
}

int main(void)
{
    test_crc32c();
    test_abort_record();
    test_describe();
    test_fresh_and_roundtrip();
    test_append_validation();
    test_group_commit();
    test_sync();
    test_torn_truncation();
    test_garbled_records();
    test_valid_crc_bad_content();
    test_segment_headers();
    test_rotation();
    test_torn_checkpoint_flush();
    test_checkpoint_overflow();
    test_bad_callback();
    test_older_segments();
    test_sticky_failures();
    test_boot_epochs();
    test_dump();
    test_zero_tail();
    test_torn_into_zeros();
    test_garbage_after_zeros();
    test_zero_fill_crash();
    test_zero_fill_failures();
    test_prepare_ahead();
    test_recycle_cut_after_rename();
    test_small_rotation_torn_first_page();
    test_prepare_failures();
    test_old_format();
    test_flush_boundaries();
    return t_finish("declog");
}
