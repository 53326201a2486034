/*
 * declog.c — xatmd's decision log of declog.h: segment files, the record codec, replay,
 * group-commit flushing and rotation. docs/durability.md is the prose version.
 *
 * Byte layouts (declog.h is authoritative; all little-endian):
 *   segment header  "XATMLOG1" | u32 version=2 (1: no FLUSH records) | u32 0 | u64 segment no | u32 crc32c(0..23) | u32 0
 *   record          u32 total_len | u32 crc32c[8,total) | u64 lsn | u8 type | 3 x 0 |
 *                   u32 payload_len | payload
 *   FLUSH record    a record of type FLUSH whose lsn is the previous record's, payload
 *                   u64 first_lsn | u64 covered | u32 crc32c of the covered bytes
 *
 * State and invariants of an open log:
 *   - segs[] lists the segment files on disk, oldest first, consecutive numbers; the last
 *     one is the current segment, open as fd, whose records end at seg_off (the next
 *     write's offset); every byte of it from seg_off to its size (at least seg_full) is
 *     zero, durably, except for records written since the last fdatasync (dirty); every
 *     other segment is complete and fdatasync'd.
 *   - spare_fd, when >= 0, is SPARE_NAME, zero-filled over [0, spare_len) (durably once
 *     spare_ready); nothing of the log is in it until spare_install renames it into place.
 *     It may be a recycled older segment (renamed, not unlinked, by a rotation): its bytes
 *     from spare_len on are old records until the zero fill reaches them.
 *   - buf holds the records appended since the last flush, lsns next_lsn - k .. next_lsn - 1;
 *     `force` is set when one of them was appended with force.
 *   - fatal != 0 makes every later append/flush return it (sticky); errmsg says why.
 *   - append makes no syscall; a flush makes one pwrite (more only if the kernel writes
 *     short) and at most one fdatasync, plus the rotation's own when one is due, or the
 *     zero fill of one piece of the spare (and its fdatasync once complete).
 *
 * Open validates every segment completely before delivering the first record, so a log that
 * turns out corrupt never feeds the caller half a history.
 */
#include "declog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "fault.h"
#include "xatm.h"

#define SEG_MAGIC "XATMLOG1"
#define SEG_VERSION_OLD 1u                   /* records only, no FLUSH records */
#define SEG_VERSION 2u                       /* every flush ends with a FLUSH record */
#define FLUSH_PAYLOAD 20u                    /* u64 first_lsn | u64 covered | u32 crc32c */
#define FLUSH_LEN (REC_HDR + FLUSH_PAYLOAD)  /* a whole FLUSH record */
#define SEG_HDR 32u                          /* segment header bytes */
#define REC_HDR 24u                          /* record header bytes */
#define REC_MAX (64u * 1024u)                /* largest total_len */
#define SEG_PREFIX "xatm-log."
#define SEG_NAME_LEN (sizeof SEG_PREFIX - 1 + 16)
#define DEFAULT_SEGMENT_SIZE (16ull * 1024 * 1024)
#define ZERO_CHUNK (256u * 1024u)            /* largest single write of a zero fill */
#define PREALLOC_MAX (1ull << 30)            /* segment files are zero-filled to at most this */
#define SPARE_NAME "xatm-log.next"           /* the next segment while it is being prepared */
#define MEMBER_SIZE(type, member) sizeof(((type *)0)->member)
#define WHO_MAX (MEMBER_SIZE(xatm_declog_record, who) - 1)
#define WHY_MAX (MEMBER_SIZE(xatm_declog_record, why) - 1)
/* Largest payload of one decision: a COMMIT naming every branch (HEURISTIC is smaller). */
#define DECISION_PAYLOAD_MAX                                                                  \
    (1 + XATM_GTRID_MAX + 1 + 1 + XATM_MAX_BRANCHES * (1 + XATM_RM_NAME_MAX + 8))

_Static_assert(WHY_MAX <= 255 && WHO_MAX <= 255, "who/why are u8-length strings");
_Static_assert(1 + XATM_GTRID_MAX + 1 + 1 + WHO_MAX + 1 + WHY_MAX <= DECISION_PAYLOAD_MAX,
               "a HEURISTIC payload fits the decision bound");
_Static_assert(REC_HDR + 8 + 1 + DECISION_PAYLOAD_MAX <= REC_MAX,
               "a CHECKPOINT can always carry at least one decision");

/* One segment file on disk. */
struct seg {
    uint64_t num;  /* segment number (file name) */
    uint64_t size; /* bytes in the file (its zero-filled length, or more) */
};

struct xatm_declog {
    char *dir;                   /* the log directory */
    xatm_declog_io io;           /* file layer, every member set */
    uint64_t segment_size;       /* rotation threshold (bytes after header + checkpoint) */
    uint64_t seg_full;           /* length new segments are zero-filled to (segment_size,
                                    at least SEG_HDR, at most PREALLOC_MAX) */
    void (*unresolved)(void *arg, void (*emit)(const xatm_declog_record *rec, void *emit_arg),
                       void *emit_arg); /* lists decisions to carry forward at rotation */
    void *unresolved_arg;        /* its argument */
    int lock_fd;                 /* dir/LOCK, flock'ed exclusively while the log is open */
    int fd;                      /* current (newest) segment, open read-write */
    uint64_t seg_off;            /* bytes in the current segment = offset of the next write */
    uint64_t seg_base;           /* its header + leading checkpoint, not counted for rotation */
    bool dirty;                  /* bytes written to the current segment since its fdatasync */
    uint64_t sync_off;           /* where the next FLUSH record's coverage starts: the end of
                                    the last flush known durable (SEG_HDR at worst) */
    uint32_t sync_crc;           /* crc32c of [sync_off, seg_off) */
    uint64_t sync_first_lsn;     /* lsn of the first record at sync_off, 0 if none yet */
    int spare_fd;                /* SPARE_NAME, the next segment being zero-filled, or -1 */
    uint64_t spare_len;          /* bytes of it zero-filled so far */
    uint64_t spare_size;         /* bytes its file holds (a recycled segment: seg_full from
                                    the start, old records not yet zeroed included) */
    bool spare_ready;            /* zero-filled to seg_full and fdatasync'd */
    bool spare_short;            /* preparing it ran out of disk space: retried by every
                                    flush, fatal only at the rotation that needs it */
    bool warn_new;               /* warn holds a warning not yet taken by the caller */
    char warn[PATH_MAX + 200];   /* the last non-fatal problem, "" if none */
    uint8_t *zeros;              /* ZERO_CHUNK zero bytes, never written to */
    struct seg *segs;            /* segments on disk, oldest first; last = current */
    size_t n_segs;               /* entries in segs */
    size_t cap_segs;             /* allocated entries */
    uint64_t next_lsn;           /* lsn of the next record appended */
    uint32_t epoch;              /* highest BOOT / CHECKPOINT epoch seen or appended */
    xatm_buf buf;                /* appended, not yet written records (reused) */
    bool force;                  /* buf holds a record appended with force */
    int fatal;                   /* 0, or the sticky XATM_ELOG / XATM_ENOSPC */
    char errmsg[PATH_MAX + 128]; /* detail of fatal */
};

/* ---- POSIX defaults of the io table ---- */

static int px_open(void *ctx, const char *path, int flags, int mode)
{
    int fd;
    do fd = open(path, flags, (mode_t)mode);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static ssize_t px_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off)
{
    ssize_t w;
    do w = pwrite(fd, buf, n, off);
    while (w < 0 && errno == EINTR);
    return w < 0 ? -errno : w;
}

static ssize_t px_pread(void *ctx, int fd, void *buf, size_t n, off_t off)
{
    ssize_t r;
    do r = pread(fd, buf, n, off);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

static int px_fdatasync(void *ctx, int fd)
{
    int rc;
    do rc = fdatasync(fd);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

static int px_fsync(void *ctx, int fd)
{
    int rc;
    do rc = fsync(fd);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

static int px_ftruncate(void *ctx, int fd, off_t len)
{
    int rc;
    do rc = ftruncate(fd, len);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

static int px_close(void *ctx, int fd)
{
    return close(fd) < 0 ? -errno : 0; /* never retried: the fd is gone either way */
}

static int px_unlink(void *ctx, const char *path)
{
    return unlink(path) < 0 ? -errno : 0;
}

static int px_rename(void *ctx, const char *from, const char *to)
{
    return rename(from, to) < 0 ? -errno : 0;
}

xatm_declog_io xatm_declog_io_complete(const xatm_declog_io *in)
{
    xatm_declog_io io = {0};
    if (in) io = *in;
    if (!io.open) io.open = px_open;
    if (!io.pwrite) io.pwrite = px_pwrite;
    if (!io.fdatasync) io.fdatasync = px_fdatasync;
    if (!io.ftruncate) io.ftruncate = px_ftruncate;
    if (!io.close) io.close = px_close;
    if (!io.pread) io.pread = px_pread;
    if (!io.fsync) io.fsync = px_fsync;
    if (!io.unlink) io.unlink = px_unlink;
    if (!io.rename) io.rename = px_rename;
    return io;
}

/* ---- small helpers ---- */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void __attribute__((format(printf, 3, 4))) msg(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    if (!buf || !size) return;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* errno (as -errno) -> the XATM code for a write-side failure */
static int write_error_code(int neg_errno)
{
    return neg_errno == -ENOSPC || neg_errno == -EDQUOT ? XATM_ENOSPC : XATM_ELOG;
}

static void seg_path(char *out, size_t size, const char *dir, uint64_t num)
{
    snprintf(out, size, "%s/" SEG_PREFIX "%016llx", dir, (unsigned long long)num);
}

static void spare_path(char *out, size_t size, const char *dir)
{
    snprintf(out, size, "%s/" SPARE_NAME, dir);
}

/* Makes the log fail for good: every later append/flush returns rc. */
static int __attribute__((format(printf, 3, 4))) set_fatal(xatm_declog *log, int rc, const char *fmt, ...)
{
    va_list ap;
    if (log->fatal) return log->fatal;
    log->fatal = rc;
    va_start(ap, fmt);
    vsnprintf(log->errmsg, sizeof log->errmsg, fmt, ap);
    va_end(ap);
    return rc;
}

/* fsyncs a directory (after a file in it was created or deleted). 0 or -errno. */
static int fsync_dir(const xatm_declog_io *io, const char *dir)
{
    int fd = io->open(io->ctx, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0) return fd;
    int rc = io->fsync(io->ctx, fd);
    io->close(io->ctx, fd);
    return rc;
}

/* Writes all n bytes at off, looping only on short writes. 0 or -errno (-EIO for 0). */
static int write_all(const xatm_declog_io *io, int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t w = io->pwrite(io->ctx, fd, p, n, (off_t)off);
        if (w < 0) return (int)w;
        if (w == 0 || (size_t)w > n) return -EIO;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Writes zeros over [from, to) of fd, in writes of at most ZERO_CHUNK bytes. 0 or -errno,
 * and then *at is the offset of the write that failed. */
static int zero_range(const xatm_declog *log, int fd, uint64_t from, uint64_t to, uint64_t *at)
{
    while (from < to) {
        size_t n = to - from < ZERO_CHUNK ? (size_t)(to - from) : ZERO_CHUNK;
        int e = write_all(&log->io, fd, log->zeros, n, from);
        if (e < 0) {
            *at = from;
            return e;
        }
        from += n;
    }
    return 0;
}

/* true when the n bytes at p are all zero */
static bool all_zero(const uint8_t *p, uint64_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, (size_t)(n - 1)) == 0);
}

/* The offset just past the last non-zero byte in [from, len), or from when there is none. */
static uint64_t nonzero_end(const uint8_t *data, uint64_t from, uint64_t len)
{
    uint64_t end = len;
    while (end > from) {
        uint64_t blk = end - from < 4096 ? end - from : 4096;
        if (!all_zero(data + end - blk, blk)) break;
        end -= blk;
    }
    while (end > from && data[end - 1] == 0) end--;
    return end;
}

/* ---- record codec ---- */

/* Payload writer; the caller has reserved room for the largest payload. */
typedef struct wr {
    uint8_t *p; /* start of the payload */
    size_t len; /* bytes written */
} wr;

static void w_u8(wr *w, uint8_t v) { w->p[w->len++] = v; }
static void w_u32(wr *w, uint32_t v) { put_le32(w->p + w->len, v); w->len += 4; }
static void w_u64(wr *w, uint64_t v) { put_le64(w->p + w->len, v); w->len += 8; }

/* A u8-length string; its length was validated (<= 255). */
static void w_str(wr *w, const char *s)
{
    size_t n = strlen(s);
    w_u8(w, (uint8_t)n);
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

/* Bounds-checked payload reader: a failed read sets bad and yields zeros. */
typedef struct rd {
    const uint8_t *p; /* the payload */
    size_t len;       /* its length */
    size_t off;       /* next unread byte */
    bool bad;         /* a read ran past len or a string was invalid */
} rd;

static const uint8_t *r_take(rd *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

static uint8_t r_u8(rd *r)
{
    const uint8_t *p = r_take(r, 1);
    return p ? p[0] : 0;
}

static uint32_t r_u32(rd *r)
{
    const uint8_t *p = r_take(r, 4);
    return p ? get_le32(p) : 0;
}

static uint64_t r_u64(rd *r)
{
    const uint8_t *p = r_take(r, 8);
    return p ? get_le64(p) : 0;
}

/* A u8-length string into dst (max + 1 bytes); no NUL allowed inside. */
static void r_str(rd *r, char *dst, size_t max)
{
    dst[0] = '\0';
    uint8_t n = r_u8(r);
    if (r->bad) return;
    if (n > max) {
        r->bad = true;
        return;
    }
    const uint8_t *p = r_take(r, n);
    if (!p) return;
    if (memchr(p, '\0', n)) {
        r->bad = true;
        return;
    }
    memcpy(dst, p, n);
    dst[n] = '\0';
}

static bool str_in(const char *s, size_t array_size)
{
    return memchr(s, '\0', array_size) != NULL;
}

static bool gtrid_ok(const char *g, size_t array_size)
{
    return str_in(g, array_size) && xatm_gtrid_parse(g, NULL) == 0;
}

static bool decision_type(uint8_t t)
{
    return t == XATM_DL_COMMIT || t == XATM_DL_PRECOMMIT || t == XATM_DL_HEURISTIC ||
           t == XATM_DL_ABORT;
}

/* true when rec (any type but CHECKPOINT) may be written / was read correctly */
static bool record_valid(const xatm_declog_record *r)
{
    switch (r->type) {
    case XATM_DL_BOOT:
        return r->epoch != 0;
    case XATM_DL_COMMIT:
    case XATM_DL_PRECOMMIT:
    case XATM_DL_ABORT:
        if (!gtrid_ok(r->gtrid, sizeof r->gtrid)) return false;
        if (r->type == XATM_DL_COMMIT ? r->protocol != 2 && r->protocol != 3 : r->protocol != 3)
            return false;
        if (r->n_branches > XATM_MAX_BRANCHES) return false;
        for (unsigned i = 0; i < r->n_branches; i++)
            if (!str_in(r->branches[i].rm, sizeof r->branches[i].rm) ||
                !xatm_rm_name_valid(r->branches[i].rm))
                return false;
        return true;
    case XATM_DL_END:
        return gtrid_ok(r->gtrid, sizeof r->gtrid);
    case XATM_DL_HEURISTIC:
        return gtrid_ok(r->gtrid, sizeof r->gtrid) &&
               (r->outcome == XATM_OUTCOME_COMMIT || r->outcome == XATM_OUTCOME_ABORT) &&
               str_in(r->who, sizeof r->who) && str_in(r->why, sizeof r->why);
    default:
        return false;
    }
}

/* Encodes a valid non-CHECKPOINT record's payload. */
static void encode_payload(wr *w, const xatm_declog_record *r)
{
    switch (r->type) {
    case XATM_DL_BOOT:
        w_u32(w, r->epoch);
        break;
    case XATM_DL_COMMIT:
    case XATM_DL_PRECOMMIT:
    case XATM_DL_ABORT:
        w_str(w, r->gtrid);
        w_u8(w, r->protocol);
        w_u8(w, r->n_branches);
        for (unsigned i = 0; i < r->n_branches; i++) {
            w_str(w, r->branches[i].rm);
            w_u64(w, r->branches[i].session_id);
        }
        break;
    case XATM_DL_END:
        w_str(w, r->gtrid);
        break;
    case XATM_DL_HEURISTIC:
        w_str(w, r->gtrid);
        w_u8(w, r->outcome);
        w_str(w, r->who);
        w_str(w, r->why);
        break;
    default:
        break;
    }
}

/* Decodes a payload of rec->type (not CHECKPOINT) from r into rec; false if malformed. */
static bool decode_payload(rd *r, xatm_declog_record *rec)
{
    switch (rec->type) {
    case XATM_DL_BOOT:
        rec->epoch = r_u32(r);
        break;
    case XATM_DL_COMMIT:
    case XATM_DL_PRECOMMIT:
    case XATM_DL_ABORT:
        r_str(r, rec->gtrid, XATM_GTRID_MAX);
        rec->protocol = r_u8(r);
        rec->n_branches = r_u8(r);
        if (rec->n_branches > XATM_MAX_BRANCHES) return false;
        for (unsigned i = 0; !r->bad && i < rec->n_branches; i++) {
            r_str(r, rec->branches[i].rm, XATM_RM_NAME_MAX);
            rec->branches[i].session_id = r_u64(r);
        }
        break;
    case XATM_DL_END:
        r_str(r, rec->gtrid, XATM_GTRID_MAX);
        break;
    case XATM_DL_HEURISTIC:
        r_str(r, rec->gtrid, XATM_GTRID_MAX);
        rec->outcome = r_u8(r);
        r_str(r, rec->who, WHO_MAX);
        r_str(r, rec->why, WHY_MAX);
        break;
    default:
        return false;
    }
    return !r->bad && record_valid(rec);
}

/* Fills in the header of the record whose payload (payload_len bytes) is at p + REC_HDR. */
static void seal_record(uint8_t *p, uint8_t type, uint64_t lsn, uint32_t payload_len)
{
    uint32_t total = REC_HDR + payload_len;
    put_le32(p, total);
    put_le64(p + 8, lsn);
    p[16] = type;
    p[17] = p[18] = p[19] = 0;
    put_le32(p + 20, payload_len);
    put_le32(p + 4, xatm_crc32c(0, p + 8, total - 8));
}

/* Appends a valid non-CHECKPOINT record to log->buf with the next lsn, leaving room for the
 * FLUSH record the flush adds. 0 or XATM_ENOMEM. */
static int buffer_record(xatm_declog *log, const xatm_declog_record *rec)
{
    if (xatm_buf_reserve(&log->buf, REC_HDR + DECISION_PAYLOAD_MAX + FLUSH_LEN) != 0)
        return XATM_ENOMEM;
    uint8_t *p = log->buf.data + log->buf.len;
    wr w = {p + REC_HDR, 0};
    encode_payload(&w, rec);
    seal_record(p, rec->type, log->next_lsn, (uint32_t)w.len);
    log->buf.len += REC_HDR + w.len;
    log->next_lsn++;
    return 0;
}

/* Ends the bytes buf[from, buf->len), about to be written at file offset `at`, with a FLUSH
 * record (buf has room for it: FLUSH_LEN bytes reserved). It covers every byte from
 * sync_off (the end of the last flush known durable; sync_crc is the crc32c of
 * [sync_off, at), first_lsn the lsn of the record at sync_off or 0 when that is the first
 * record in buf) up to itself, and carries the lsn of the last record before it.
 * *crc_out: the crc32c of [sync_off, end of the FLUSH record), *first_out: first_lsn used. */
static void put_flush(xatm_buf *buf, size_t from, uint64_t at, uint64_t sync_off,
                      uint32_t sync_crc, uint64_t first_lsn, uint64_t last_lsn,
                      uint32_t *crc_out, uint64_t *first_out)
{
    uint8_t *p = buf->data + buf->len;
    if (!first_lsn) first_lsn = get_le64(buf->data + from + 8);
    uint32_t crc = xatm_crc32c(sync_crc, buf->data + from, buf->len - from);
    put_le64(p + REC_HDR, first_lsn);
    put_le64(p + REC_HDR + 8, at + (buf->len - from) - sync_off);
    put_le32(p + REC_HDR + 16, crc);
    seal_record(p, XATM_DL_FLUSH, last_lsn, FLUSH_PAYLOAD);
    buf->len += FLUSH_LEN;
    *crc_out = xatm_crc32c(crc, p, FLUSH_LEN);
    *first_out = first_lsn;
}

/* ---- parsing records out of a segment image ---- */

/* A record's framing as found in a file. */
struct rec_view {
    uint32_t total;         /* total_len */
    uint64_t lsn;           /* its lsn */
    uint8_t type;           /* enum xatm_declog_type */
    const uint8_t *payload; /* payload bytes (inside the image) */
    uint32_t payload_len;   /* their count */
};

enum rec_status {
    REC_OK,   /* framing and CRC check out */
    REC_TORN, /* length, reserved bytes or CRC wrong: what a torn write leaves */
    REC_BAD,  /* CRC matches but the content is wrong: written that way, never torn */
};

/* Checks the framing and CRC of the record at off (the CRC only with check_crc). */
static enum rec_status frame_at(const uint8_t *data, uint64_t len, uint64_t off,
                                struct rec_view *v, bool check_crc, char *why, size_t whylen)
{
    uint64_t left = len - off;
    if (left < REC_HDR) {
        msg(why, whylen, "incomplete record header (%llu bytes left)", (unsigned long long)left);
        return REC_TORN;
    }
    const uint8_t *p = data + off;
    v->total = get_le32(p);
    if (v->total < REC_HDR || v->total > REC_MAX) {
        msg(why, whylen, "record length %lu out of range", (unsigned long)v->total);
        return REC_TORN;
    }
    if (v->total > left) {
        msg(why, whylen, "record of %lu bytes runs past the end of the file (%llu left)",
            (unsigned long)v->total, (unsigned long long)left);
        return REC_TORN;
    }
    v->payload_len = get_le32(p + 20);
    if (v->payload_len != v->total - REC_HDR) {
        msg(why, whylen, "payload length %lu disagrees with record length %lu",
            (unsigned long)v->payload_len, (unsigned long)v->total);
        return REC_TORN;
    }
    if (p[17] || p[18] || p[19]) {
        msg(why, whylen, "reserved bytes are not zero");
        return REC_TORN;
    }
    uint32_t stored = get_le32(p + 4), computed = check_crc ? xatm_crc32c(0, p + 8, v->total - 8) : stored;
    if (stored != computed) {
        msg(why, whylen, "CRC mismatch (stored %08lx, computed %08lx)", (unsigned long)stored,
            (unsigned long)computed);
        return REC_TORN;
    }
    v->lsn = get_le64(p + 8);
    v->type = p[16];
    v->payload = p + REC_HDR;
    if (v->lsn == 0) {
        msg(why, whylen, "lsn 0 (lsns start at 1)");
        return REC_BAD;
    }
    return REC_OK;
}

/* Receives each decoded record during a scan (off = the record's offset in its file). */
typedef void (*deliver_fn)(void *ctx, uint64_t off, const xatm_declog_record *rec);

/* Decodes a framed record's payload; with fn, delivers it (a CHECKPOINT as itself, then
 * each decision it carries with its lsn). Sets *epoch for BOOT/CHECKPOINT. false and why
 * when the payload is malformed (nothing is delivered unless fn is given and the payload
 * has already been validated by a call without fn). */
static bool payload_walk(const struct rec_view *v, deliver_fn fn, void *ctx, uint64_t off,
                         uint32_t *epoch, char *why, size_t whylen)
{
    xatm_declog_record rec;
    rd r = {v->payload, v->payload_len, 0, false};
    memset(&rec, 0, sizeof rec);
    rec.type = v->type;
    rec.lsn = v->lsn;

    if (v->type != XATM_DL_CHECKPOINT) {
        if (!decode_payload(&r, &rec) || r.off != r.len) {
            if (v->type < XATM_DL_BOOT || v->type > XATM_DL_ABORT)
                msg(why, whylen, "unknown record type %u", (unsigned)v->type);
            else
                msg(why, whylen, "lsn %llu: type %u payload does not decode",
                    (unsigned long long)v->lsn, (unsigned)v->type);
            return false;
        }
        if (v->type == XATM_DL_BOOT) *epoch = rec.epoch;
        if (fn) fn(ctx, off, &rec);
        return true;
    }

    rec.epoch = r_u32(&r);
    uint32_t n = r_u32(&r);
    if (r.bad) {
        msg(why, whylen, "lsn %llu: checkpoint header truncated", (unsigned long long)v->lsn);
        return false;
    }
    *epoch = rec.epoch;
    if (fn) fn(ctx, off, &rec);
    for (uint32_t i = 0; i < n; i++) {
        memset(&rec, 0, sizeof rec);
        rec.type = r_u8(&r);
        rec.lsn = v->lsn;
        if (r.bad || !decision_type(rec.type) || !decode_payload(&r, &rec)) {
            msg(why, whylen, "lsn %llu: checkpoint entry %lu of %lu does not decode",
                (unsigned long long)v->lsn, (unsigned long)i, (unsigned long)n);
            return false;
        }
        if (fn) fn(ctx, off, &rec);
    }
    if (r.off != r.len) {
        msg(why, whylen, "lsn %llu: %lu bytes after the last checkpoint entry",
            (unsigned long long)v->lsn, (unsigned long)(r.len - r.off));
        return false;
    }
    return true;
}

/* Result of scanning the records of one segment image. */
struct scan {
    bool v2;            /* in: a version 2 segment (every flush ends with a FLUSH record) */
    bool trusted;       /* in: the bytes scanned were found valid by an earlier scan of the
                           same image: no CRC is computed again (the delivering scans) */
    uint64_t end;       /* offset just past the last valid record (= the bad one's offset,
                           or where the zero-filled rest of the segment starts); in a
                           version 2 segment, unless the stop is certain, just past the last
                           FLUSH record that checks out */
    uint64_t last_lsn;  /* in: previous segment's last lsn (0 = none); out: this one's */
    uint32_t max_epoch; /* in/out: highest BOOT / CHECKPOINT epoch */
    uint64_t first_len; /* length of the first record when it is a CHECKPOINT, else 0; in
                           a version 2 segment only once a FLUSH record that checks out
                           closes it (a CHECKPOINT whose flush is torn is not kept) */
    bool bad;           /* stopped at an invalid record */
    bool certain;       /* its CRC matched: corrupt wherever it is */
    char why[300];      /* what is wrong with it */
    /* the crc32c of bytes [crc_from, crc_to) of this segment, as the last FLUSH record
     * checked computed it (crc_to 0: none yet): the next FLUSH record covering from the
     * same boundary (no fdatasync between them) continues it, so each byte is summed once
     * per synced flush instead of once per FLUSH record after it */
    uint64_t crc_from, crc_to;
    uint32_t crc;
};

/* Checks the FLUSH record v at off (framing and CRC already good) of a version 2 segment:
 * it must close a flush (the lsn of the record before it, at least one record since the
 * last FLUSH, which ended at flush_start), cover bytes from a flush boundary at or before
 * flush_start up to itself (the record there has first_lsn), and the crc32c of the covered
 * bytes must match. REC_TORN only for that last check: the covered bytes are not what was
 * written. */
static enum rec_status flush_check(const uint8_t *data, uint64_t off, const struct rec_view *v,
                                   uint64_t prev_lsn, uint64_t flush_start, struct scan *s,
                                   char *why, size_t whylen)
{
    if (v->payload_len != FLUSH_PAYLOAD) {
        msg(why, whylen, "FLUSH record with a payload of %lu bytes", (unsigned long)v->payload_len);
        return REC_BAD;
    }
    uint64_t first = get_le64(v->payload), covered = get_le64(v->payload + 8);
    uint32_t stored = get_le32(v->payload + 16);
    if (off == flush_start || v->lsn != prev_lsn) {
        msg(why, whylen, "FLUSH record (lsn %llu) does not close a flush", (unsigned long long)v->lsn);
        return REC_BAD;
    }
    if (covered < off - flush_start || covered > off - SEG_HDR ||
        get_le64(data + off - covered + 8) != first) {
        msg(why, whylen, "FLUSH record (lsn %llu) covers %llu bytes from lsn %llu: not a flush boundary",
            (unsigned long long)v->lsn, (unsigned long long)covered, (unsigned long long)first);
        return REC_BAD;
    }
    if (s->trusted) return REC_OK;
    uint64_t from = off - covered;
    uint32_t computed;
    if (s->crc_to && s->crc_from == from && s->crc_to <= off)
        computed = xatm_crc32c(s->crc, data + s->crc_to, (size_t)(off - s->crc_to));
    else
        computed = xatm_crc32c(0, data + from, (size_t)covered);
    s->crc_from = from;
    s->crc_to = off;
    s->crc = computed;
    if (computed != stored) {
        msg(why, whylen,
            "FLUSH record at offset %llu: CRC of the %llu bytes it covers mismatch (stored %08lx, computed %08lx)",
            (unsigned long long)off, (unsigned long long)covered, (unsigned long)stored,
            (unsigned long)computed);
        return REC_TORN;
    }
    return REC_OK;
}

/* Walks records from SEG_HDR to len, stopping at the first invalid one, or where only
 * zeros are left (the end of the log: a segment is zero-filled ahead of its records).
 * In a version 2 segment the records accepted end with the last FLUSH record that checks
 * out: an invalid record that is not certain, a FLUSH whose covered bytes do not check out,
 * or records without a FLUSH after them make s->end the end of the last good flush (the
 * reason names where the flush after it went wrong); fn sees records as they are read, so
 * callers give it only [0, end) of a scan without fn. */
static void scan_records(const uint8_t *data, uint64_t len, struct scan *s, deliver_fn fn,
                         void *ctx)
{
    uint64_t off = SEG_HDR, good = SEG_HDR, good_lsn = s->last_lsn, first_len = 0;
    uint32_t good_epoch = s->max_epoch;
    char why[sizeof s->why - 48];
    while (off < len) {
        struct rec_view v;
        uint32_t epoch = 0;
        uint64_t left = len - off;
        enum rec_status st;
        if (all_zero(data + off, left < 4 ? left : 4)) {
            /* total_len 0: the end of the log, if nothing but zeros follows */
            uint64_t nz = nonzero_end(data, off, len);
            if (nz == off) break;
            msg(why, sizeof why,
                "record length 0 (the end of the log) but non-zero bytes follow, up to offset %llu",
                (unsigned long long)nz);
            st = REC_TORN;
        } else {
            st = frame_at(data, len, off, &v, !s->trusted, why, sizeof why);
        }
        if (st == REC_OK && s->v2 && v.type == XATM_DL_FLUSH) {
            st = flush_check(data, off, &v, s->last_lsn, good, s, why, sizeof why);
            if (st == REC_OK) {
                off += v.total;
                good = off;
                good_lsn = s->last_lsn;
                good_epoch = s->max_epoch;
                s->first_len = first_len;
                continue;
            }
        } else {
            if (st == REC_OK && s->last_lsn && v.lsn != s->last_lsn + 1) {
                msg(why, sizeof why, "lsn %llu does not follow lsn %llu",
                    (unsigned long long)v.lsn, (unsigned long long)s->last_lsn);
                st = REC_BAD;
            }
            if (st == REC_OK && !payload_walk(&v, NULL, NULL, off, &epoch, why, sizeof why))
                st = REC_BAD;
        }
        if (st != REC_OK) {
            s->bad = true;
            s->certain = st == REC_BAD;
            s->end = off;
            if (s->v2 && !s->certain && off != good) {
                msg(s->why, sizeof s->why, "incomplete flush: offset %llu: %s",
                    (unsigned long long)off, why);
                s->end = good;
            } else {
                msg(s->why, sizeof s->why, "%s", why);
            }
            if (s->v2 && !s->certain) {
                s->last_lsn = good_lsn;
                s->max_epoch = good_epoch;
            }
            return;
        }
        if (fn) payload_walk(&v, fn, ctx, off, &epoch, why, sizeof why);
        if (epoch > s->max_epoch) s->max_epoch = epoch;
        if (off == SEG_HDR && v.type == XATM_DL_CHECKPOINT) {
            first_len = v.total;
            if (!s->v2) s->first_len = first_len;
        }
        s->last_lsn = v.lsn;
        off += v.total;
    }
    s->end = off;
    if (s->v2 && off != good) {
        /* records that no FLUSH record closes: a flush cut short */
        msg(s->why, sizeof s->why, "incomplete flush: no FLUSH record after the records at offsets %llu..%llu",
            (unsigned long long)good, (unsigned long long)off);
        s->bad = true;
        s->certain = false;
        s->end = good;
        s->last_lsn = good_lsn;
        s->max_epoch = good_epoch;
    }
}

/* true when a FLUSH record that checks out (framing, CRC, and the crc32c of the bytes it
 * says it covers) starts anywhere at or after offset `from` of a version 2 segment: a flush
 * after `from` was complete, and since a FLUSH record covers every byte back to the last
 * completed fdatasync, whatever is wrong before what it covers had been made durable. */
static bool flush_after(const uint8_t *data, uint64_t len, uint64_t from)
{
    char why[8];
    uint64_t nz = nonzero_end(data, from, len);
    for (uint64_t o = from > SEG_HDR ? from : SEG_HDR; o < nz && o + FLUSH_LEN <= len; o++) {
        const uint8_t *p = data + o;
        /* cheap filters before the CRCs */
        if (get_le32(p) != FLUSH_LEN || p[16] != XATM_DL_FLUSH || get_le32(p + 20) != FLUSH_PAYLOAD ||
            p[17] || p[18] || p[19])
            continue;
        struct rec_view v;
        if (frame_at(data, len, o, &v, true, why, sizeof why) != REC_OK) continue;
        uint64_t covered = get_le64(v.payload + 8);
        if (covered == 0 || covered > o - SEG_HDR) continue;
        if (xatm_crc32c(0, data + o - covered, (size_t)covered) == get_le32(v.payload + 16))
            return true;
    }
    return false;
}

/* true when a record whose framing and CRC check out starts anywhere after offset `from`:
 * then the invalid data at `from` is not a torn tail but damage in the middle. (None can
 * start in the zeros after the last non-zero byte: its length would be 0.) */
static bool valid_record_after(const uint8_t *data, uint64_t len, uint64_t from)
{
    char why[8];
    uint64_t nz = nonzero_end(data, from, len);
    for (uint64_t o = from + 1; o < nz && o + REC_HDR <= len; o++) {
        const uint8_t *p = data + o;
        uint32_t total = get_le32(p);
        /* cheap filters before the CRC */
        if (total < REC_HDR || total > REC_MAX || total > len - o) continue;
        if (get_le32(p + 20) != total - REC_HDR || p[17] || p[18] || p[19]) continue;
        struct rec_view v;
        if (frame_at(data, len, o, &v, true, why, sizeof why) != REC_TORN) return true;
    }
    return false;
}

/* The rule that tells a crash's leftovers from damage, shared by open (which repairs the
 * former) and dump (which reports it). A segment header that fails its check is torn only
 * in the newest segment and only when no valid record follows it. */
static bool header_torn(const uint8_t *data, uint64_t len, bool newest)
{
    return newest && !valid_record_after(data, len, 0);
}

/* A scan that stopped at bad data (s->bad): NULL when that is a torn tail, else why it is
 * not, for the message: data whose CRC matches was written that way (s->certain), only the
 * newest segment may end torn, and a complete flush (version 2: a FLUSH record) or a valid
 * record (version 1) after it puts it in the middle of the log. */
static const char *not_torn_because(const uint8_t *data, uint64_t len, const struct scan *s,
                                    bool newest)
{
    if (s->certain) return "its CRC matches, so it was written this way, not torn";
    if (!newest) return "only the newest segment may end torn";
    if (s->v2 && flush_after(data, len, s->end))
        return "a complete flush (FLUSH record) follows it, so it is not a torn tail";
    if (!s->v2 && valid_record_after(data, len, s->end))
        return "valid records follow it, so it is not a torn tail";
    return NULL;
}

/* ---- segment headers ---- */

static void seg_header_build(uint8_t p[SEG_HDR], uint64_t num)
{
    memset(p, 0, SEG_HDR);
    memcpy(p, SEG_MAGIC, 8);
    put_le32(p + 8, SEG_VERSION);
    put_le64(p + 16, num);
    put_le32(p + 24, xatm_crc32c(0, p, 24));
}

/* Checks a segment header; *version gets its version (SEG_VERSION_OLD or SEG_VERSION). */
static bool seg_header_check(const uint8_t *data, uint64_t len, uint64_t num, uint32_t *version,
                             char *why, size_t whylen)
{
    if (len < SEG_HDR) {
        msg(why, whylen, "segment header incomplete (%llu of %u bytes)",
            (unsigned long long)len, SEG_HDR);
        return false;
    }
    if (memcmp(data, SEG_MAGIC, 8) != 0) {
        msg(why, whylen, "not a segment header (bad magic)");
        return false;
    }
    uint32_t stored = get_le32(data + 24), computed = xatm_crc32c(0, data, 24);
    if (stored != computed) {
        msg(why, whylen, "segment header CRC mismatch (stored %08lx, computed %08lx)",
            (unsigned long)stored, (unsigned long)computed);
        return false;
    }
    *version = get_le32(data + 8);
    if (*version != SEG_VERSION_OLD && *version != SEG_VERSION) {
        msg(why, whylen, "segment version %lu (this xatmd reads versions %u and %u)",
            (unsigned long)*version, SEG_VERSION_OLD, SEG_VERSION);
        return false;
    }
    if (get_le32(data + 12) || get_le32(data + 28)) {
        msg(why, whylen, "segment header reserved fields are not zero");
        return false;
    }
    if (get_le64(data + 16) != num) {
        msg(why, whylen, "segment header says segment %016llx",
            (unsigned long long)get_le64(data + 16));
        return false;
    }
    return true;
}

/* ---- directory and files ---- */

/* Segment number from a file name, or false when the name is not exactly a segment's. */
static bool seg_name_parse(const char *name, uint64_t *num)
{
    if (strlen(name) != SEG_NAME_LEN || memcmp(name, SEG_PREFIX, sizeof SEG_PREFIX - 1) != 0)
        return false;
    uint64_t v = 0;
    for (const char *p = name + sizeof SEG_PREFIX - 1; *p; p++) {
        int d = (*p >= '0' && *p <= '9') ? *p - '0' : (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10 : -1;
        if (d < 0) return false;
        v = v << 4 | (uint64_t)d;
    }
    *num = v;
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the segment numbers in dir, sorted. 0, XATM_ENOTFOUND, XATM_EIO or XATM_ENOMEM. */
static int list_segments(const char *dir, uint64_t **nums_out, size_t *n_out, char *err,
                         size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        msg(err, errlen, "%s: cannot open the log directory: %s", dir, strerror(e));
        return e == ENOENT ? XATM_ENOTFOUND : XATM_EIO;
    }
    uint64_t *nums = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        uint64_t num;
        if (!seg_name_parse(de->d_name, &num)) continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            uint64_t *p = realloc(nums, ncap * sizeof *nums);
            if (!p) {
                rc = XATM_ENOMEM;
                goto out_close_dir;
            }
            nums = p;
            cap = ncap;
        }
        nums[n++] = num;
        errno = 0;
    }
    if (errno) {
        msg(err, errlen, "%s: cannot list the log directory: %s", dir, strerror(errno));
        rc = XATM_EIO;
        goto out_close_dir;
    }
    if (n) qsort(nums, n, sizeof *nums, cmp_u64);
    *nums_out = nums;
    *n_out = n;
    nums = NULL;
out_close_dir:
    free(nums);
    closedir(d);
    return rc;
}

/* Reads a whole file through io->pread into one buffer sized by fstat (one byte more, so
 * that the read that finds the end needs no growth; a file that grew meanwhile, which only
 * a dump reading a live log can see, makes the buffer double). 0, XATM_EIO (err set) or
 * XATM_ENOMEM. */
static int read_file(const xatm_declog_io *io, int fd, const char *path, uint8_t **data_out,
                     uint64_t *len_out, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        msg(err, errlen, "%s: fstat: %s", path, strerror(errno));
        return XATM_EIO;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size >= SIZE_MAX / 2) {
        msg(err, errlen, "%s: file too large to read", path);
        return XATM_EIO;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    uint8_t *data = malloc(cap);
    if (!data) return XATM_ENOMEM;
    for (;;) {
        if (len == cap) {
            if (cap > SIZE_MAX / 2) {
                msg(err, errlen, "%s: file too large to read", path);
                goto fail_free;
            }
            uint8_t *p = realloc(data, cap * 2);
            if (!p) {
                free(data);
                return XATM_ENOMEM;
            }
            data = p;
            cap *= 2;
        }
        ssize_t r = io->pread(io->ctx, fd, data + len, cap - len, (off_t)len);
        if (r < 0) {
            msg(err, errlen, "%s: read: %s", path, strerror((int)-r));
            goto fail_free;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    *data_out = data;
    *len_out = len;
    return 0;
fail_free:
    free(data);
    return XATM_EIO;
}

/* Creates dir if missing (and fsyncs its parent so the new entry is durable). */
static int ensure_dir(const xatm_declog_io *io, const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return 0;
        msg(err, errlen, "%s: exists and is not a directory", dir);
        return XATM_EIO;
    }
    if (errno != ENOENT || mkdir(dir, 0700) != 0) {
        int e = errno;
        msg(err, errlen, "%s: cannot create the log directory: %s", dir, strerror(e));
        return e == ENOSPC ? XATM_ENOSPC : XATM_EIO;
    }
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (!slash)
        snprintf(parent, sizeof parent, ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    int rc = fsync_dir(io, parent);
    if (rc < 0) {
        msg(err, errlen, "%s: fsync after creating %s: %s", parent, dir, strerror(-rc));
        return XATM_EIO;
    }
    return 0;
}

/* Makes room for one more entry in log->segs. 0 or XATM_ENOMEM. */
static int segs_reserve(xatm_declog *log)
{
    if (log->n_segs < log->cap_segs) return 0;
    size_t ncap = log->cap_segs ? log->cap_segs * 2 : 4;
    struct seg *p = realloc(log->segs, ncap * sizeof *p);
    if (!p) return XATM_ENOMEM;
    log->segs = p;
    log->cap_segs = ncap;
    return 0;
}

/* Records one more segment on disk in log->segs. 0 or XATM_ENOMEM. */
static int segs_push(xatm_declog *log, uint64_t num, uint64_t size)
{
    int rc = segs_reserve(log);
    if (rc) return rc;
    log->segs[log->n_segs].num = num;
    log->segs[log->n_segs].size = size;
    log->n_segs++;
    return 0;
}

/* ---- the next segment, prepared ahead ---- */

/* The first write of a segment made with no spare prepared: its image (log->buf) padded
 * with zeros to the full segment length or ZERO_CHUNK bytes, whichever is less (never
 * shorter than the image). */
static size_t first_piece(const xatm_declog *log)
{
    size_t piece = log->seg_full < ZERO_CHUNK ? (size_t)log->seg_full : ZERO_CHUNK;
    return piece > log->buf.len ? piece : log->buf.len;
}

/* Gives the spare up after a failure: closes it and removes its file (best effort: it holds
 * nothing yet, and its blocks may be what a full disk is missing). */
static void spare_drop(xatm_declog *log)
{
    char path[PATH_MAX];
    if (log->spare_fd >= 0) log->io.close(log->io.ctx, log->spare_fd);
    log->spare_fd = -1;
    log->spare_len = log->spare_size = 0;
    log->spare_ready = log->spare_short = false;
    spare_path(path, sizeof path, log->dir);
    (void)log->io.unlink(log->io.ctx, path);
}

/* Asks the kernel to start writing [off, off + len) of fd back now, so that the fdatasync
 * that completes the spare finds little left to write. A hint: it changes no data, is not
 * part of the io table and its failure is ignored. */
static void start_writeback(int fd, uint64_t off, uint64_t len)
{
#ifdef SYNC_FILE_RANGE_WRITE
    (void)sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd;
    (void)off;
    (void)len;
#endif
}

/* A piece of the spare did not fit on the disk while it was prepared ahead: remembered,
 * warned about once (until it fits again), retried by the next flush. Returns 0. */
static int spare_out_of_space(xatm_declog *log, const char *path, const char *what,
                              uint64_t at, int neg_errno)
{
    if (!log->spare_short) {
        log->spare_short = true;
        msg(log->warn, sizeof log->warn,
            "%s: preparing the next segment: %s at offset %llu: %s; retried by every flush; "
            "the log fails with it at the rotation that needs the segment, after about %llu "
            "more bytes of records, unless space is freed on its disk before",
            path, what, (unsigned long long)at, strerror(-neg_errno),
            (unsigned long long)(log->seg_base + log->segment_size > log->seg_off
                                     ? log->seg_base + log->segment_size - log->seg_off
                                     : 0));
        log->warn_new = true;
    }
    return 0;
}

/* Zero-fills the spare (creating it first when there is none) up to `to` (at most
 * seg_full). 0, or the sticky error: a full disk is found here. With ahead (a flush
 * preparing the next segment before it is needed), writeback of each piece starts at once,
 * the spare is fdatasync'd once it is complete, and running out of space (ENOSPC, EDQUOT)
 * is not an error yet: the spare keeps what it has, spare_short is set, a warning is left
 * for the caller, 0 is returned, and the next flush tries again. Without (the rotation,
 * which syncs what it writes itself), a full disk is sticky. */
static int spare_fill(xatm_declog *log, uint64_t to, bool ahead)
{
    char path[PATH_MAX];
    uint64_t at = 0;
    spare_path(path, sizeof path, log->dir);
    if (log->spare_fd < 0) {
        int fd = log->io.open(log->io.ctx, path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 && ahead && write_error_code(fd) == XATM_ENOSPC)
            return spare_out_of_space(log, path, "create", 0, fd);
        if (fd < 0)
            return set_fatal(log, write_error_code(fd), "%s: preparing the next segment: create: %s",
                             path, strerror(-fd));
        log->spare_fd = fd;
        log->spare_len = log->spare_size = 0;
    }
    if (to > log->seg_full) to = log->seg_full;
    if (to > log->spare_len) {
        uint64_t from = log->spare_len;
        int e = zero_range(log, log->spare_fd, from, to, &at);
        if (e < 0 && ahead && write_error_code(e) == XATM_ENOSPC) {
            log->spare_len = at; /* [0, at) is zero; the failed piece is written again */
            if (at > log->spare_size) log->spare_size = at;
            return spare_out_of_space(log, path, "write", at, e);
        }
        if (e < 0) {
            spare_drop(log);
            return set_fatal(log, write_error_code(e),
                             "%s: preparing the next segment: write at offset %llu: %s", path,
                             (unsigned long long)at, strerror(-e));
        }
        if (ahead) start_writeback(log->spare_fd, from, to - from); /* else synced now */
        log->spare_len = to;
        if (to > log->spare_size) log->spare_size = to;
        if (log->spare_short) {
            log->spare_short = false;
            msg(log->warn, sizeof log->warn,
                "%s: preparing the next segment: resumed at offset %llu (there is space again)",
                path, (unsigned long long)from);
            log->warn_new = true;
        }
    }
    if (ahead && !log->spare_ready && log->spare_len == log->seg_full) {
        int e = log->io.fdatasync(log->io.ctx, log->spare_fd);
        if (e < 0) {
            spare_drop(log);
            return set_fatal(log, write_error_code(e),
                             "%s: preparing the next segment: fdatasync: %s", path, strerror(-e));
        }
        log->spare_ready = true;
    }
    return 0;
}

/* After a flush that wrote n bytes to the current segment: once that segment is half full,
 * zero-fill the next one a piece at a time (at least ZERO_CHUNK bytes, and 4 n, so that it
 * is complete well before the rotation even when flushes are large). Segments of at most
 * ZERO_CHUNK bytes are not prepared ahead: the rotation writes them in one go. */
static int spare_step(xatm_declog *log, uint64_t n)
{
    if (log->seg_full <= ZERO_CHUNK || log->spare_ready) return 0;
    if (log->seg_off - log->seg_base < log->segment_size / 2) return 0;
    uint64_t budget = n > ZERO_CHUNK / 4 ? 4 * n : ZERO_CHUNK;
    return spare_fill(log, log->spare_len + budget, true);
}

/* Creates segment `num` holding the image in log->buf (header, and the records of its first
 * flush) over zeros up to seg_full; the one way every segment comes into being (the first
 * one, the one after a version 1 segment, each rotation's): the spare (created here when
 * there is none; segments of at most ZERO_CHUNK bytes are never prepared ahead) is
 * zero-filled to seg_full if it is not yet, the image is written at its start, it is
 * fdatasync'd, renamed to the segment's name, and the directory is fsync'd. So a segment
 * appears under its name only once its header and first records are on disk: a crash
 * before leaves a leftover SPARE_NAME (removed at open), never a torn new segment.
 * A spare created here gets the image and its first zeros in one write (first_piece():
 * the caller has reserved that many bytes in log->buf), so a segment of at most
 * ZERO_CHUNK bytes takes one write, as many as its zero fill otherwise.
 * 0 with its fd in *fd_out, or the sticky error (the spare removed, unless only the
 * directory fsync failed). */
static int spare_install(xatm_declog *log, uint64_t num, int *fd_out)
{
    char spare[PATH_MAX], path[PATH_MAX];
    spare_path(spare, sizeof spare, log->dir);
    seg_path(path, sizeof path, log->dir, num);
    bool fresh = log->spare_fd < 0;
    int rc = fresh ? spare_fill(log, 0, false) : 0; /* creates it, writes nothing */
    if (rc) return rc;
    const char *what = "write";
    int e = 0;
    if (fresh) {
        size_t len = log->buf.len, piece = first_piece(log);
        memset(log->buf.data + len, 0, piece - len);
        e = write_all(&log->io, log->spare_fd, log->buf.data, piece, 0);
        log->spare_len = log->spare_size = piece;
    }
    if (e == 0) {
        rc = spare_fill(log, log->seg_full, false);
        if (rc) return rc;
    }
    if (e == 0 && !fresh) e = write_all(&log->io, log->spare_fd, log->buf.data, log->buf.len, 0);
    if (e == 0) {
        what = "fdatasync";
        e = log->io.fdatasync(log->io.ctx, log->spare_fd);
    }
    if (e < 0) {
        spare_drop(log);
        return set_fatal(log, write_error_code(e), "%s: %s: %s", spare, what, strerror(-e));
    }
    e = log->io.rename(log->io.ctx, spare, path);
    if (e < 0) {
        spare_drop(log);
        return set_fatal(log, write_error_code(e), "%s: rename to %s: %s", spare, path,
                         strerror(-e));
    }
    int fd = log->spare_fd;
    log->spare_fd = -1;
    log->spare_len = log->spare_size = 0;
    log->spare_ready = false;
    e = fsync_dir(&log->io, log->dir);
    if (e < 0) {
        log->io.close(log->io.ctx, fd);
        return set_fatal(log, write_error_code(e), "%s: fsync of the directory: %s", path,
                         strerror(-e));
    }
    *fd_out = fd;
    return 0;
}

/* At open: creates segment `num`, empty (its header only), with spare_install, and makes it
 * the current one (log->fd). On failure fails the open: err says which segment, `note`
 * (appended to its name) and what failed; XATM_ENOSPC for a full disk, XATM_ENOMEM, else
 * XATM_EIO. */
static int open_new_segment(xatm_declog *log, uint64_t num, const char *note, char *err,
                            size_t errlen)
{
    char path[PATH_MAX];
    int fd = -1;
    log->buf.len = 0;
    if (xatm_buf_reserve(&log->buf, SEG_HDR) != 0) return XATM_ENOMEM;
    seg_header_build(log->buf.data, num);
    log->buf.len = SEG_HDR;
    if (xatm_buf_reserve(&log->buf, first_piece(log) - SEG_HDR) != 0) return XATM_ENOMEM;
    int rc = spare_install(log, num, &fd);
    log->buf.len = 0;
    if (rc) {
        seg_path(path, sizeof path, log->dir, num);
        msg(err, errlen, "%s: creating the segment%s: %s", path, note, log->errmsg);
        return rc == XATM_ENOSPC ? XATM_ENOSPC : XATM_EIO;
    }
    if (log->fd >= 0) log->io.close(log->io.ctx, log->fd);
    log->fd = fd;
    return 0;
}

/* ---- open and replay ---- */

/* One segment file read at open. */
struct seg_image {
    uint64_t num;  /* segment number */
    uint8_t *data; /* whole file */
    uint64_t len;  /* its length */
    bool v2;       /* a version 2 segment (with FLUSH records) */
};

/* Adapter from deliver_fn to the caller's replay callback. */
struct replay_ctx {
    void (*fn)(const xatm_declog_record *rec, void *arg); /* the caller's callback */
    void *arg;                                            /* its argument */
};

static void deliver_replay(void *ctx, uint64_t off, const xatm_declog_record *rec)
{
    const struct replay_ctx *rc = ctx;
    rc->fn(rec, rc->arg);
}

static void free_images(struct seg_image *img, size_t n)
{
    for (size_t i = 0; i < n; i++) free(img[i].data);
    free(img);
}

/* Validates every segment, repairs a torn tail of the newest, replays, and sets up the log
 * for appending to the newest segment. */
static int open_existing(xatm_declog *log, const uint64_t *nums, size_t n,
                         void (*replay)(const xatm_declog_record *, void *), void *arg,
                         char *err, size_t errlen)
{
    char path[PATH_MAX];
    int rc = 0;
    struct seg_image *img = calloc(n, sizeof *img);
    if (!img) return XATM_ENOMEM;

    for (size_t i = 0; i < n; i++) {
        if (i && nums[i] != nums[i - 1] + 1) {
            msg(err, errlen, "%s: segment %016llx is missing (found %016llx and %016llx)",
                log->dir, (unsigned long long)(nums[i - 1] + 1), (unsigned long long)nums[i - 1],
                (unsigned long long)nums[i]);
            rc = XATM_ECORRUPT;
            goto out_free_images;
        }
    }

    /* Read every file; keep the newest open for repair and appends. */
    for (size_t i = 0; i < n; i++) {
        bool newest = i == n - 1;
        img[i].num = nums[i];
        seg_path(path, sizeof path, log->dir, nums[i]);
        int fd = log->io.open(log->io.ctx, path, (newest ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
        if (fd < 0) {
            msg(err, errlen, "%s: open: %s", path, strerror(-fd));
            rc = XATM_EIO;
            goto out_free_images;
        }
        rc = read_file(&log->io, fd, path, &img[i].data, &img[i].len, err, errlen);
        if (newest)
            log->fd = fd;
        else
            log->io.close(log->io.ctx, fd);
        if (rc) goto out_free_images;
    }

    /* Pass 1: validate everything and find where the newest segment really ends. */
    uint64_t last_lsn = 0, keep = 0;
    uint32_t epoch = 0, version = SEG_VERSION;
    bool torn_header = false, tail_torn = false;
    char why[200];
    for (size_t i = 0; i < n; i++) {
        bool newest = i == n - 1;
        seg_path(path, sizeof path, log->dir, nums[i]);
        if (!seg_header_check(img[i].data, img[i].len, nums[i], &version, why, sizeof why)) {
            if (header_torn(img[i].data, img[i].len, newest)) {
                torn_header = true;
                version = SEG_VERSION; /* rewritten as an empty segment of this version */
                keep = 0;
                msg(err, errlen, "%s: offset 0: torn segment header rewritten (%llu bytes dropped): %s",
                    path, (unsigned long long)nonzero_end(img[i].data, 0, img[i].len), why);
                break;
            }
            msg(err, errlen, "%s: offset 0: %s", path, why);
            rc = XATM_ECORRUPT;
            goto out_free_images;
        }
        img[i].v2 = version == SEG_VERSION;
        struct scan s = {.v2 = img[i].v2, .last_lsn = last_lsn, .max_epoch = epoch};
        scan_records(img[i].data, img[i].len, &s, NULL, NULL);
        if (s.bad) {
            const char *corrupt = not_torn_because(img[i].data, img[i].len, &s, newest);
            if (corrupt) {
                msg(err, errlen, "%s: offset %llu: %s; %s", path, (unsigned long long)s.end,
                    s.why, corrupt);
                rc = XATM_ECORRUPT;
                goto out_free_images;
            }
            tail_torn = true;
            msg(err, errlen, "%s: offset %llu: torn tail truncated (%llu bytes dropped): %s",
                path, (unsigned long long)s.end,
                (unsigned long long)(nonzero_end(img[i].data, s.end, img[i].len) - s.end),
                s.why);
        }
        last_lsn = s.last_lsn;
        epoch = s.max_epoch;
        keep = s.end;
        if (newest) log->seg_base = SEG_HDR + s.first_len;
    }

    /* Repair the newest segment: it must end at its last valid record with only zeros after
     * it, up to at least the full segment length, durably. A torn header is rewritten and a
     * torn tail zeroed (that is what "truncated" means here: the next writes land on zeros);
     * a file shorter than seg_full (cut short by a crash while it was being zero-filled) is
     * extended with zeros. A version 1 newest segment (written before FLUSH records) gets
     * no more records: its torn tail is zeroed, it is fdatasync'd as it is (it becomes an
     * older segment) and an empty version 2 segment is created after it. */
    bool old_newest = version == SEG_VERSION_OLD;
    seg_path(path, sizeof path, log->dir, nums[n - 1]);
    const uint8_t *data = img[n - 1].data;
    uint64_t len = img[n - 1].len, size = len, at = 0;
    const char *doing = "";
    int e = 0;
    if (torn_header) {
        uint8_t hdr[SEG_HDR];
        seg_header_build(hdr, nums[n - 1]);
        doing = "rewriting the torn segment header";
        e = write_all(&log->io, log->fd, hdr, sizeof hdr, 0);
        keep = SEG_HDR;
        log->seg_base = SEG_HDR;
        if (size < SEG_HDR) size = SEG_HDR;
    }
    if (e == 0 && (torn_header || tail_torn) && len > keep) {
        if (tail_torn) doing = "zeroing the torn tail";
        e = zero_range(log, log->fd, keep, nonzero_end(data, keep, len), &at);
    }
    if (e == 0 && size < log->seg_full && !old_newest) {
        doing = "extending the segment with zeros to its full length";
        e = zero_range(log, log->fd, size, log->seg_full, &at);
        size = log->seg_full;
    }
    bool repaired = torn_header || tail_torn || size != len;
    if (e == 0 && (repaired || old_newest)) {
        doing = "fdatasync after repairing the segment";
        e = log->io.fdatasync(log->io.ctx, log->fd);
    }
    if (e < 0) {
        msg(err, errlen, "%s: %s: %s", path, doing, strerror(-e));
        rc = write_error_code(e) == XATM_ENOSPC ? XATM_ENOSPC : XATM_EIO;
        goto out_free_images;
    }
    if (old_newest) {
        /* one segment more: reserve its entry now, so nothing fails after it exists */
        for (size_t i = 0; i <= n; i++) {
            rc = segs_reserve(log);
            if (rc) goto out_free_images;
            log->n_segs++;
        }
        log->n_segs = 0;
        rc = open_new_segment(log, nums[n - 1] + 1,
                              " (a new segment after one written before FLUSH records)", err,
                              errlen);
        if (rc) goto out_free_images;
    }

    for (size_t i = 0; i < n; i++) {
        rc = segs_push(log, nums[i], i == n - 1 ? size : img[i].len);
        if (rc) goto out_free_images;
    }
    if (old_newest) (void)segs_push(log, nums[n - 1] + 1, log->seg_full); /* reserved above */

    /* Pass 2: deliver, now that nothing can fail any more. */
    if (replay) {
        struct replay_ctx rctx = {replay, arg};
        for (size_t i = 0; i < n; i++) {
            if (torn_header && i == n - 1) break;
            struct scan s = {.v2 = img[i].v2, .trusted = true}; /* validated by pass 1 */
            scan_records(img[i].data, i == n - 1 ? keep : img[i].len, &s, deliver_replay, &rctx);
        }
    }
    log->next_lsn = last_lsn + 1;
    log->epoch = epoch;
    if (old_newest) {
        log->seg_off = log->seg_base = log->sync_off = SEG_HDR;
        log->dirty = false;
    } else {
        log->seg_off = keep;
        /* A previous process may have written unforced records it never synced: unless the
         * repair just synced the file, the next rotation must sync it before it is "older",
         * and the next FLUSH record covers the segment from its first record (a power loss
         * before the next fdatasync may lose any of it). */
        log->dirty = !repaired;
        log->sync_off = repaired ? keep : SEG_HDR;
        if (!repaired && keep > SEG_HDR) {
            log->sync_crc = xatm_crc32c(0, data + SEG_HDR, (size_t)(keep - SEG_HDR));
            log->sync_first_lsn = get_le64(data + SEG_HDR + 8);
        }
    }
out_free_images:
    free_images(img, n);
    return rc;
}

/* Takes the directory's lock file: one process at a time may own a log directory (two
 * writers would overwrite each other's records, and the second's start-up recovery would
 * roll back the first's live transactions). Returns the locked fd or an XATM_E* code. */
static int lock_dir(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int fd;
    do fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        msg(err, errlen, "%s: cannot open the log directory's lock file: %s", path, strerror(errno));
        return XATM_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) {
            msg(err, errlen, "%s: the log directory is in use by another process (another xatmd?)",
                dir);
            return XATM_EBUSY;
        }
        msg(err, errlen, "%s: cannot lock: %s", path, strerror(e));
        return XATM_EIO;
    }
    return fd;
}

int xatm_declog_open(const char *dir, const xatm_declog_options *opts,
                     void (*replay)(const xatm_declog_record *rec, void *arg), void *arg,
                     xatm_declog **out, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (!out) return XATM_EINVAL;
    *out = NULL;
    if (!dir || !*dir || strlen(dir) > PATH_MAX - SEG_NAME_LEN - 2) {
        msg(err, errlen, "log directory path is empty or too long");
        return XATM_EINVAL;
    }

    int rc;
    uint64_t *nums = NULL;
    size_t n = 0;
    xatm_declog *log = calloc(1, sizeof *log);
    if (!log) return XATM_ENOMEM;
    log->fd = -1;
    log->lock_fd = -1;
    log->spare_fd = -1;
    log->dir = strdup(dir);
    log->zeros = calloc(1, ZERO_CHUNK);
    if (!log->dir || !log->zeros) {
        rc = XATM_ENOMEM;
        goto fail_log;
    }
    log->io = xatm_declog_io_complete(opts ? opts->io : NULL);
    log->segment_size = opts && opts->segment_size ? opts->segment_size : DEFAULT_SEGMENT_SIZE;
    log->seg_full = log->segment_size < SEG_HDR       ? SEG_HDR
                    : log->segment_size > PREALLOC_MAX ? PREALLOC_MAX
                                                       : log->segment_size;
    log->unresolved = opts ? opts->unresolved : NULL;
    log->unresolved_arg = opts ? opts->unresolved_arg : NULL;

    rc = ensure_dir(&log->io, dir, err, errlen);
    if (rc) goto fail_log;
    rc = lock_dir(dir, err, errlen);
    if (rc < 0) goto fail_log;
    log->lock_fd = rc;
    rc = list_segments(dir, &nums, &n, err, errlen);
    if (rc) goto fail_log;

    if (n == 0) {
        rc = open_new_segment(log, 1, "", err, errlen);
        if (rc) goto fail_nums;
        log->seg_off = log->seg_base = log->sync_off = SEG_HDR;
        log->next_lsn = 1;
        rc = segs_push(log, 1, log->seg_full);
        if (rc) goto fail_nums;
    } else {
        rc = open_existing(log, nums, n, replay, arg, err, errlen);
        if (rc) goto fail_nums;
    }
    free(nums);
    /* A next segment left half prepared (or prepared and never used) by an earlier process
     * holds nothing of the log: remove it; it is prepared again when needed. */
    char spare[PATH_MAX];
    spare_path(spare, sizeof spare, dir);
    (void)log->io.unlink(log->io.ctx, spare);
    *out = log;
    return 0;

fail_nums:
    free(nums);
fail_log:
    if (log->fd >= 0) log->io.close(log->io.ctx, log->fd);
    if (log->lock_fd >= 0) close(log->lock_fd);
    xatm_buf_free(&log->buf);
    free(log->zeros);
    free(log->segs);
    free(log->dir);
    free(log);
    return rc;
}

/* ---- append, flush, rotation ---- */

int xatm_declog_append(xatm_declog *log, const xatm_declog_record *rec, bool force)
{
    if (!log || !rec) return XATM_EINVAL;
    if (log->fatal) return log->fatal;
    if (rec->type == XATM_DL_CHECKPOINT || !record_valid(rec)) return XATM_EINVAL;
    int rc = buffer_record(log, rec);
    if (rc) return rc;
    if (force) log->force = true;
    if (rec->type == XATM_DL_BOOT && rec->epoch > log->epoch) log->epoch = rec->epoch;
    return 0;
}

/* Builds the CHECKPOINT (and overflow records) of a rotation in log->buf. */
struct ckpt_build {
    xatm_declog *log;  /* the log being rotated */
    size_t rec_start;  /* offset in buf of the open CHECKPOINT record */
    uint32_t n;        /* decisions in it so far */
    bool sealed;       /* the CHECKPOINT is full and sealed: further ones are plain records */
    int err;           /* first failure: XATM_EINVAL (bad record) or XATM_ENOMEM */
};

static void ckpt_seal(struct ckpt_build *b)
{
    xatm_declog *log = b->log;
    uint8_t *p = log->buf.data + b->rec_start;
    put_le32(p + REC_HDR + 4, b->n);
    seal_record(p, XATM_DL_CHECKPOINT, log->next_lsn++,
                (uint32_t)(log->buf.len - b->rec_start - REC_HDR));
    b->sealed = true;
}

static void ckpt_emit(const xatm_declog_record *rec, void *arg)
{
    struct ckpt_build *b = arg;
    xatm_declog *log = b->log;
    if (b->err) return;
    if (!rec || !decision_type(rec->type) || !record_valid(rec)) {
        b->err = XATM_EINVAL;
        return;
    }
    if (!b->sealed) {
        uint8_t entry[1 + DECISION_PAYLOAD_MAX];
        wr w = {entry, 0};
        w_u8(&w, rec->type);
        encode_payload(&w, rec);
        if (log->buf.len - b->rec_start + w.len <= REC_MAX) {
            if (xatm_buf_append(&log->buf, entry, w.len) != 0) {
                b->err = XATM_ENOMEM;
                return;
            }
            b->n++;
            return;
        }
        ckpt_seal(b);
    }
    if (buffer_record(log, rec) != 0) b->err = XATM_ENOMEM;
}

/* Instead of unlinking an older segment of `size` bytes at path (unlinking a 16 MiB file
 * costs ms: its blocks are freed), renames it to SPARE_NAME to be the next spare: its
 * blocks are reused, and the zero fill overwrites its old records before anything of the
 * log goes in (the rotation renames a spare into place only once it is zero-filled to
 * seg_full and fdatasync'd, as for a new one). Only for segments prepared ahead (seg_full
 * > ZERO_CHUNK), when there is no spare and the file is at least seg_full long (cut back
 * to it by spare_cut, once the rename is durable). true when the file is gone from its
 * segment name: recycled, or (a failure after the rename) removed. A crash at any point
 * leaves either the segment under its name, unchanged (an older segment, as after a failed
 * unlink) or a leftover SPARE_NAME (removed at open). */
static bool spare_recycle(xatm_declog *log, const char *path, uint64_t size)
{
    char spare[PATH_MAX];
    if (log->seg_full <= ZERO_CHUNK || log->spare_fd >= 0 || size < log->seg_full) return false;
    spare_path(spare, sizeof spare, log->dir);
    if (log->io.rename(log->io.ctx, path, spare) < 0) return false;
    int fd = log->io.open(log->io.ctx, spare, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        (void)log->io.unlink(log->io.ctx, spare); /* what the unlink would have done */
        return true;
    }
    log->spare_fd = fd;
    log->spare_len = 0;
    log->spare_size = size;
    log->spare_ready = log->spare_short = false;
    return true;
}

/* Cuts a spare recycled by this rotation back to seg_full. Called only after the directory
 * fsync that made its rename durable: cut before, a crash could bring the file back under
 * its segment name, shorter than it was (an older segment ending torn: CORRUPT). A failure
 * gives the spare up (removed, as the unlink would have). */
static void spare_cut(xatm_declog *log)
{
    if (log->spare_fd < 0 || log->spare_size <= log->seg_full) return;
    if (log->io.ftruncate(log->io.ctx, log->spare_fd, (off_t)log->seg_full) < 0) {
        spare_drop(log);
        return;
    }
    log->spare_size = log->seg_full;
}

/* Starts the next segment: header + CHECKPOINT of the caller's unresolved decisions over a
 * zero-filled file (spare_install: the spare prepared ahead, or for segments of at most
 * ZERO_CHUNK bytes one created and zero-filled now), renamed into place once durable,
 * then deletes every older segment. The current segment has been
 * fdatasync'd by the caller. */
static int rotate(xatm_declog *log)
{
    uint64_t num = log->segs[log->n_segs - 1].num + 1;
    uint64_t lsn_before = log->next_lsn;
    char path[PATH_MAX];

    /* Nothing after the new segment exists may fail for lack of memory. */
    if (segs_reserve(log) != 0) return XATM_ENOMEM;

    /* Build header + checkpoint in the (empty) record buffer: the CHECKPOINT's header and
     * its u32 epoch + u32 n are filled in, the entries appended, and the record sealed. */
    log->buf.len = 0;
    if (xatm_buf_reserve(&log->buf, SEG_HDR + REC_HDR + 8) != 0) return XATM_ENOMEM;
    seg_header_build(log->buf.data, num);
    memset(log->buf.data + SEG_HDR, 0, REC_HDR + 8);
    put_le32(log->buf.data + SEG_HDR + REC_HDR, log->epoch);
    log->buf.len = SEG_HDR + REC_HDR + 8;
    struct ckpt_build b = {.log = log, .rec_start = SEG_HDR};
    if (log->unresolved) log->unresolved(log->unresolved_arg, ckpt_emit, &b);
    if (!b.err && !b.sealed) ckpt_seal(&b);
    if (!b.err && xatm_buf_reserve(&log->buf, FLUSH_LEN) != 0) b.err = XATM_ENOMEM;
    if (!b.err) {
        /* the new segment's first flush: everything after its header */
        uint32_t crc;
        uint64_t first;
        put_flush(&log->buf, SEG_HDR, SEG_HDR, SEG_HDR, 0, 0, log->next_lsn - 1, &crc, &first);
    }
    if (!b.err && log->spare_fd < 0 &&
        xatm_buf_reserve(&log->buf, first_piece(log) - log->buf.len) != 0)
        b.err = XATM_ENOMEM; /* room for spare_install's first write */
    if (b.err) {
        log->buf.len = 0;
        log->next_lsn = lsn_before;
        return b.err;
    }

    int fd = -1;
    int rc = spare_install(log, num, &fd);
    if (rc) {
        log->buf.len = 0;
        return rc;
    }
    log->io.close(log->io.ctx, log->fd);
    log->fd = fd;
    log->seg_off = log->seg_base = log->sync_off = log->buf.len;
    log->sync_crc = 0;
    log->sync_first_lsn = 0;
    log->dirty = false;
    log->buf.len = 0;
    /* cannot fail: reserved above */
    segs_push(log, num, log->seg_off > log->seg_full ? log->seg_off : log->seg_full);

    /* The new segment is durable: older ones are no longer needed. Oldest first, so the
     * survivors of a crash or a failed unlink stay consecutive; a failed unlink is retried
     * by the next rotation. The oldest becomes the next spare when it can (recycled). */
    size_t deleted = 0;
    while (deleted < log->n_segs - 1) {
        seg_path(path, sizeof path, log->dir, log->segs[deleted].num);
        if (deleted == 0 && spare_recycle(log, path, log->segs[0].size)) {
            deleted++;
            continue;
        }
        int e = log->io.unlink(log->io.ctx, path);
        if (e < 0 && e != -ENOENT) break;
        deleted++;
    }
    if (deleted) {
        memmove(log->segs, log->segs + deleted, (log->n_segs - deleted) * sizeof *log->segs);
        log->n_segs -= deleted;
        int e = fsync_dir(&log->io, log->dir);
        if (e < 0)
            return set_fatal(log, XATM_ELOG, "%s: fsync of the directory after deleting segments: %s",
                             log->dir, strerror(-e));
        spare_cut(log);
    }
    return 0;
}

int xatm_declog_flush(xatm_declog *log)
{
    if (!log) return XATM_EINVAL;
    if (log->fatal) return log->fatal;
    char path[PATH_MAX];
    struct seg *cur = &log->segs[log->n_segs - 1];
    bool wrote = log->buf.len > 0;
    uint32_t crc = 0;
    uint64_t first = 0;

    if (wrote) {
        /* room reserved by buffer_record */
        put_flush(&log->buf, 0, log->seg_off, log->sync_off, log->sync_crc, log->sync_first_lsn,
                  log->next_lsn - 1, &crc, &first);
    }
    uint64_t written = log->buf.len;
    if (wrote) {
        xatm_fault_hit("tm.before_log_write");
        int e = write_all(&log->io, log->fd, log->buf.data, log->buf.len, log->seg_off);
        if (e < 0) {
            seg_path(path, sizeof path, log->dir, cur->num);
            return set_fatal(log, write_error_code(e), "%s: write at offset %llu: %s", path,
                             (unsigned long long)log->seg_off, strerror(-e));
        }
        log->seg_off += log->buf.len;
        if (cur->size < log->seg_off) cur->size = log->seg_off; /* past the zero fill */
        log->buf.len = 0;
        log->dirty = true;
        log->sync_crc = crc;
        log->sync_first_lsn = first;
    }
    bool rotate_due = log->seg_off - log->seg_base >= log->segment_size;
    if (log->dirty && (log->force || rotate_due)) {
        int e = log->io.fdatasync(log->io.ctx, log->fd);
        if (e < 0) {
            seg_path(path, sizeof path, log->dir, cur->num);
            return set_fatal(log, write_error_code(e), "%s: fdatasync: %s", path, strerror(-e));
        }
        log->dirty = false;
        log->sync_off = log->seg_off; /* the next FLUSH record covers from here */
        log->sync_crc = 0;
        log->sync_first_lsn = 0;
    }
    log->force = false;
    if (rotate_due) return rotate(log);
    return wrote ? spare_step(log, written) : 0;
}

int xatm_declog_sync(xatm_declog *log)
{
    if (!log) return XATM_EINVAL;
    if (log->fatal) return log->fatal;
    log->force = true; /* flush syncs when anything it or an earlier flush wrote is unsynced */
    return xatm_declog_flush(log);
}

bool xatm_declog_pending(const xatm_declog *log)
{
    return log && log->buf.len > 0;
}

size_t xatm_declog_pending_bytes(const xatm_declog *log)
{
    return log ? log->buf.len : 0;
}

bool xatm_declog_pending_forced(const xatm_declog *log)
{
    return log && log->buf.len > 0 && log->force;
}

uint64_t xatm_declog_disk_bytes(const xatm_declog *log)
{
    uint64_t total = log ? log->spare_size : 0;
    for (size_t i = 0; log && i < log->n_segs; i++) total += log->segs[i].size;
    return total;
}

unsigned xatm_declog_segments(const xatm_declog *log)
{
    return log ? (unsigned)log->n_segs : 0;
}

uint64_t xatm_declog_last_lsn(const xatm_declog *log)
{
    return log ? log->next_lsn - 1 : 0;
}

const char *xatm_declog_errmsg(const xatm_declog *log)
{
    return log ? log->errmsg : "";
}

const char *xatm_declog_take_warning(xatm_declog *log)
{
    if (!log || !log->warn_new) return NULL;
    log->warn_new = false;
    return log->warn;
}

void xatm_declog_close(xatm_declog *log)
{
    if (!log) return;
    if (!log->fatal && log->buf.len) {
        /* Unforced: nothing that depends on these records can have been sent yet. */
        uint32_t crc;
        uint64_t first;
        put_flush(&log->buf, 0, log->seg_off, log->sync_off, log->sync_crc, log->sync_first_lsn,
                  log->next_lsn - 1, &crc, &first);
        (void)write_all(&log->io, log->fd, log->buf.data, log->buf.len, log->seg_off);
    }
    if (log->fd >= 0) log->io.close(log->io.ctx, log->fd);
    if (log->spare_fd >= 0) log->io.close(log->io.ctx, log->spare_fd); /* the next open removes it */
    if (log->lock_fd >= 0) close(log->lock_fd); /* releases the directory */
    xatm_buf_free(&log->buf);
    free(log->zeros);
    free(log->segs);
    free(log->dir);
    free(log);
}

/* ---- dump ---- */

/* Adapter from deliver_fn to the dump callback. */
struct dump_ctx {
    void (*fn)(const char *file, uint64_t offset, const xatm_declog_record *rec, void *arg);
    void *arg;        /* its argument */
    const char *file; /* path of the segment being read */
};

static void deliver_dump(void *ctx, uint64_t off, const xatm_declog_record *rec)
{
    const struct dump_ctx *d = ctx;
    d->fn(d->file, off, rec, d->arg);
}

int xatm_declog_dump(const char *dir, void (*fn)(const char *file, uint64_t offset,
                                                 const xatm_declog_record *rec, void *arg),
                     void *arg, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (!dir || !fn || strlen(dir) > PATH_MAX - SEG_NAME_LEN - 2) return XATM_EINVAL;

    xatm_declog_io io = xatm_declog_io_complete(NULL);
    uint64_t *nums = NULL, last_lsn = 0;
    size_t n = 0;
    int rc = list_segments(dir, &nums, &n, err, errlen);
    if (rc) return rc;

    char path[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        bool newest = i == n - 1;
        uint8_t *data = NULL;
        uint64_t len = 0;
        char why[200];
        seg_path(path, sizeof path, dir, nums[i]);
        if (i && nums[i] != nums[i - 1] + 1) {
            msg(err, errlen, "%s: segment %016llx is missing", dir,
                (unsigned long long)(nums[i - 1] + 1));
            rc = XATM_ECORRUPT;
            break;
        }
        int fd = io.open(io.ctx, path, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0) {
            msg(err, errlen, "%s: open: %s", path, strerror(-fd));
            rc = XATM_EIO;
            break;
        }
        rc = read_file(&io, fd, path, &data, &len, err, errlen);
        io.close(io.ctx, fd);
        if (rc) break;

        uint32_t version = 0;
        if (!seg_header_check(data, len, nums[i], &version, why, sizeof why)) {
            if (header_torn(data, len, newest)) {
                msg(err, errlen, "%s: offset 0: torn segment header (xatmd would rewrite it): %s",
                    path, why);
            } else {
                msg(err, errlen, "%s: offset 0: %s", path, why);
                rc = XATM_ECORRUPT;
            }
            free(data);
            break;
        }
        /* find where the records end first, then show those (in a version 2 segment the
         * records of an incomplete flush are not shown) */
        struct dump_ctx d = {fn, arg, path};
        struct scan s = {.v2 = version == SEG_VERSION, .last_lsn = last_lsn};
        scan_records(data, len, &s, NULL, NULL);
        struct scan shown = {.v2 = s.v2, .trusted = true}; /* [0, s.end) checked above */
        scan_records(data, s.end, &shown, deliver_dump, &d);
        if (s.bad) {
            const char *corrupt = not_torn_because(data, len, &s, newest);
            if (corrupt) {
                msg(err, errlen, "%s: offset %llu: %s; %s", path, (unsigned long long)s.end,
                    s.why, corrupt);
                rc = XATM_ECORRUPT;
            } else {
                msg(err, errlen, "%s: offset %llu: torn tail (xatmd would truncate it): %s", path,
                    (unsigned long long)s.end, s.why);
            }
        }
        last_lsn = s.last_lsn;
        free(data);
        if (rc) break;
    }
    free(nums);
    return rc;
}

/* ---- describe ---- */

/* Appends to a fixed buffer, truncating safely. */
struct out {
    char *buf;   /* destination */
    size_t size; /* its size (> 0) */
    size_t len;  /* characters written (<= size - 1) */
};

static void __attribute__((format(printf, 2, 3))) out_printf(struct out *o, const char *fmt, ...)
{
    if (o->len + 1 >= o->size) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    o->len = (size_t)n >= o->size - o->len ? o->size - 1 : o->len + (size_t)n;
}

/* A quoted string with ", \ and non-printable bytes escaped. */
static void out_quoted(struct out *o, const char *s, size_t max)
{
    out_printf(o, "\"");
    for (size_t i = 0; i < max && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            out_printf(o, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            out_printf(o, "\\x%02x", c);
        else
            out_printf(o, "%c", c);
    }
    out_printf(o, "\"");
}

static const char *type_name(uint8_t type)
{
    switch (type) {
    case XATM_DL_BOOT: return "BOOT";
    case XATM_DL_COMMIT: return "COMMIT";
    case XATM_DL_PRECOMMIT: return "PRECOMMIT";
    case XATM_DL_END: return "END";
    case XATM_DL_HEURISTIC: return "HEURISTIC";
    case XATM_DL_CHECKPOINT: return "CHECKPOINT";
    case XATM_DL_ABORT: return "ABORT";
    default: return NULL;
    }
}

void xatm_declog_describe(const xatm_declog_record *rec, char *buf, size_t size)
{
    if (!buf || !size) return;
    buf[0] = '\0';
    if (!rec) return;
    struct out o = {buf, size, 0};
    const char *name = type_name(rec->type);
    out_printf(&o, "lsn=%llu ", (unsigned long long)rec->lsn);
    if (!name) {
        out_printf(&o, "type=%u (unknown)", (unsigned)rec->type);
        return;
    }
    out_printf(&o, "%s", name);
    /* gtrid is printed bounded: describe may be handed a record that failed validation */
    int glen = (int)strnlen(rec->gtrid, sizeof rec->gtrid);
    switch (rec->type) {
    case XATM_DL_BOOT:
    case XATM_DL_CHECKPOINT:
        out_printf(&o, " epoch=%lu", (unsigned long)rec->epoch);
        break;
    case XATM_DL_COMMIT:
    case XATM_DL_PRECOMMIT:
    case XATM_DL_ABORT:
        out_printf(&o, " gtrid=%.*s protocol=", glen, rec->gtrid);
        if (rec->protocol == 2 || rec->protocol == 3)
            out_printf(&o, "%upc", (unsigned)rec->protocol);
        else
            out_printf(&o, "?%u", (unsigned)rec->protocol);
        out_printf(&o, " branches=[");
        for (unsigned i = 0; i < rec->n_branches && i < XATM_MAX_BRANCHES; i++) {
            const xatm_declog_branch *b = &rec->branches[i];
            out_printf(&o, "%s%.*s", i ? "," : "", (int)strnlen(b->rm, sizeof b->rm), b->rm);
            /* a session reference (common/proto.h): the server's id, then its incarnation */
            if (b->session_id && xatm_session_ref_tag(b->session_id))
                out_printf(&o, "(session %llu@%06x)",
                           (unsigned long long)xatm_session_ref_id(b->session_id),
                           (unsigned)xatm_session_ref_tag(b->session_id));
            else if (b->session_id)
                out_printf(&o, "(session %llu)", (unsigned long long)b->session_id);
        }
        out_printf(&o, "]");
        break;
    case XATM_DL_END:
        out_printf(&o, " gtrid=%.*s", glen, rec->gtrid);
        break;
    case XATM_DL_HEURISTIC:
        out_printf(&o, " gtrid=%.*s outcome=%s who=", glen, rec->gtrid,
                   rec->outcome == XATM_OUTCOME_COMMIT   ? "commit"
                   : rec->outcome == XATM_OUTCOME_ABORT ? "rollback"
                                                        : "?");
        out_quoted(&o, rec->who, sizeof rec->who);
        out_printf(&o, " why=");
        out_quoted(&o, rec->why, sizeof rec->why);
        break;
    default:
        break;
    }
}
