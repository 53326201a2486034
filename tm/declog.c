/*
 * declog.c — xatmd's decision log of declog.h: segment files, the record codec, replay,
 * group-commit flushing and rotation. docs/durability.md is the prose version.
 *
 * Byte layouts (declog.h is authoritative; all little-endian):
 *   segment header  "XATMLOG1" | u32 version=1 | u32 0 | u64 segment no | u32 crc32c(0..23) | u32 0
 *   record          u32 total_len | u32 crc32c[8,total) | u64 lsn | u8 type | 3 x 0 |
 *                   u32 payload_len | payload
 *
 * State and invariants of an open log:
 *   - segs[] lists the segment files on disk, oldest first, consecutive numbers; the last
 *     one is the current segment, open as fd, holding seg_off bytes (the next write's
 *     offset); every other one is complete and fdatasync'd.
 *   - buf holds the records appended since the last flush, lsns next_lsn - k .. next_lsn - 1;
 *     `force` is set when one of them was appended with force.
 *   - fatal != 0 makes every later append/flush return it (sticky); errmsg says why.
 *   - append makes no syscall; a flush makes one pwrite (more only if the kernel writes
 *     short) and at most one fdatasync, plus the rotation's own when one is due.
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
#define SEG_VERSION 1u
#define SEG_HDR 32u                          /* segment header bytes */
#define REC_HDR 24u                          /* record header bytes */
#define REC_MAX (64u * 1024u)                /* largest total_len */
#define SEG_PREFIX "xatm-log."
#define SEG_NAME_LEN (sizeof SEG_PREFIX - 1 + 16)
#define DEFAULT_SEGMENT_SIZE (16ull * 1024 * 1024)
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
    uint64_t size; /* bytes in the file */
};

struct xatm_declog {
    char *dir;                   /* the log directory */
    xatm_declog_io io;           /* file layer, every member set */
    uint64_t segment_size;       /* rotation threshold (bytes after header + checkpoint) */
    void (*unresolved)(void *arg, void (*emit)(const xatm_declog_record *rec, void *emit_arg),
                       void *emit_arg); /* lists decisions to carry forward at rotation */
    void *unresolved_arg;        /* its argument */
    int lock_fd;                 /* dir/LOCK, flock'ed exclusively while the log is open */
    int fd;                      /* current (newest) segment, open read-write */
    uint64_t seg_off;            /* bytes in the current segment = offset of the next write */
    uint64_t seg_base;           /* its header + leading checkpoint, not counted for rotation */
    bool dirty;                  /* bytes written to the current segment since its fdatasync */
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

/* The io table with every NULL member replaced by its POSIX default. */
static xatm_declog_io io_complete(const xatm_declog_io *in)
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

/* Appends a valid non-CHECKPOINT record to log->buf with the next lsn. 0 or XATM_ENOMEM. */
static int buffer_record(xatm_declog *log, const xatm_declog_record *rec)
{
    if (xatm_buf_reserve(&log->buf, REC_HDR + DECISION_PAYLOAD_MAX) != 0) return XATM_ENOMEM;
    uint8_t *p = log->buf.data + log->buf.len;
    wr w = {p + REC_HDR, 0};
    encode_payload(&w, rec);
    seal_record(p, rec->type, log->next_lsn, (uint32_t)w.len);
    log->buf.len += REC_HDR + w.len;
    log->next_lsn++;
    return 0;
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

/* Checks the framing and CRC of the record at off. */
static enum rec_status frame_at(const uint8_t *data, uint64_t len, uint64_t off,
                                struct rec_view *v, char *why, size_t whylen)
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
    uint32_t stored = get_le32(p + 4), computed = xatm_crc32c(0, p + 8, v->total - 8);
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
    uint64_t end;       /* offset just past the last valid record (= the bad one's offset) */
    uint64_t last_lsn;  /* in: previous segment's last lsn (0 = none); out: this one's */
    uint32_t max_epoch; /* in/out: highest BOOT / CHECKPOINT epoch */
    uint64_t first_len; /* length of the first record when it is a CHECKPOINT, else 0 */
    bool bad;           /* stopped at an invalid record */
    bool certain;       /* its CRC matched: corrupt wherever it is */
    char why[200];      /* what is wrong with it */
};

/* Walks records from SEG_HDR to len, stopping at the first invalid one. */
static void scan_records(const uint8_t *data, uint64_t len, struct scan *s, deliver_fn fn,
                         void *ctx)
{
    uint64_t off = SEG_HDR;
    while (off < len) {
        struct rec_view v;
        uint32_t epoch = 0;
        enum rec_status st = frame_at(data, len, off, &v, s->why, sizeof s->why);
        if (st == REC_OK && s->last_lsn && v.lsn != s->last_lsn + 1) {
            msg(s->why, sizeof s->why, "lsn %llu does not follow lsn %llu",
                (unsigned long long)v.lsn, (unsigned long long)s->last_lsn);
            st = REC_BAD;
        }
        if (st == REC_OK && !payload_walk(&v, NULL, NULL, off, &epoch, s->why, sizeof s->why))
            st = REC_BAD;
        if (st != REC_OK) {
            s->bad = true;
            s->certain = st == REC_BAD;
            s->end = off;
            return;
        }
        if (fn) payload_walk(&v, fn, ctx, off, &epoch, s->why, sizeof s->why);
        if (epoch > s->max_epoch) s->max_epoch = epoch;
        if (off == SEG_HDR && v.type == XATM_DL_CHECKPOINT) s->first_len = v.total;
        s->last_lsn = v.lsn;
        off += v.total;
    }
    s->end = off;
}

/* true when a record whose framing and CRC check out starts anywhere after offset `from`:
 * then the invalid data at `from` is not a torn tail but damage in the middle. */
static bool valid_record_after(const uint8_t *data, uint64_t len, uint64_t from)
{
    char why[8];
    for (uint64_t o = from + 1; o + REC_HDR <= len; o++) {
        const uint8_t *p = data + o;
        uint32_t total = get_le32(p);
        /* cheap filters before the CRC */
        if (total < REC_HDR || total > REC_MAX || total > len - o) continue;
        if (get_le32(p + 20) != total - REC_HDR || p[17] || p[18] || p[19]) continue;
        struct rec_view v;
        if (frame_at(data, len, o, &v, why, sizeof why) != REC_TORN) return true;
    }
    return false;
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

static bool seg_header_check(const uint8_t *data, uint64_t len, uint64_t num, char *why,
                             size_t whylen)
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
    if (get_le32(data + 8) != SEG_VERSION) {
        msg(why, whylen, "segment version %lu (this xatmd reads version %u)",
            (unsigned long)get_le32(data + 8), SEG_VERSION);
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

/* Reads a whole file through io->pread. 0, XATM_EIO (err set) or XATM_ENOMEM. */
static int read_file(const xatm_declog_io *io, int fd, const char *path, uint8_t **data_out,
                     uint64_t *len_out, char *err, size_t errlen)
{
    size_t cap = 64 * 1024, len = 0;
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

/* Creates segment `num` holding `image` (header + records), makes it and its directory
 * entry durable, and returns its fd. -errno on failure (what failed goes to what). */
static int create_segment(const xatm_declog *log, uint64_t num, const uint8_t *image,
                          size_t len, const char **what)
{
    char path[PATH_MAX];
    seg_path(path, sizeof path, log->dir, num);
    int fd = log->io.open(log->io.ctx, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        *what = "create";
        return fd;
    }
    int rc = write_all(&log->io, fd, image, len, 0);
    if (rc < 0) {
        *what = "write";
        goto fail_close;
    }
    rc = log->io.fdatasync(log->io.ctx, fd);
    if (rc < 0) {
        *what = "fdatasync";
        goto fail_close;
    }
    rc = fsync_dir(&log->io, log->dir);
    if (rc < 0) {
        *what = "fsync of the directory";
        goto fail_close;
    }
    return fd;
fail_close:
    log->io.close(log->io.ctx, fd);
    return rc;
}

/* ---- open and replay ---- */

/* One segment file read at open. */
struct seg_image {
    uint64_t num;  /* segment number */
    uint8_t *data; /* whole file */
    uint64_t len;  /* its length */
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
    uint32_t epoch = 0;
    bool header_torn = false, tail_torn = false;
    char why[200];
    for (size_t i = 0; i < n; i++) {
        bool newest = i == n - 1;
        seg_path(path, sizeof path, log->dir, nums[i]);
        if (!seg_header_check(img[i].data, img[i].len, nums[i], why, sizeof why)) {
            if (newest && !valid_record_after(img[i].data, img[i].len, 0)) {
                header_torn = true;
                keep = 0;
                msg(err, errlen, "%s: offset 0: torn segment header rewritten (%llu bytes dropped): %s",
                    path, (unsigned long long)img[i].len, why);
                break;
            }
            msg(err, errlen, "%s: offset 0: %s", path, why);
            rc = XATM_ECORRUPT;
            goto out_free_images;
        }
        struct scan s = {.last_lsn = last_lsn, .max_epoch = epoch};
        scan_records(img[i].data, img[i].len, &s, NULL, NULL);
        if (s.bad) {
            if (newest && !s.certain && !valid_record_after(img[i].data, img[i].len, s.end)) {
                tail_torn = true;
                msg(err, errlen, "%s: offset %llu: torn tail truncated (%llu bytes dropped): %s",
                    path, (unsigned long long)s.end, (unsigned long long)(img[i].len - s.end),
                    s.why);
            } else {
                msg(err, errlen, "%s: offset %llu: %s%s", path, (unsigned long long)s.end, s.why,
                    s.certain ? "; its CRC matches, so it was written this way, not torn"
                    : newest  ? "; valid records follow it, so it is not a torn tail"
                              : "; only the newest segment may end torn");
                rc = XATM_ECORRUPT;
                goto out_free_images;
            }
        }
        last_lsn = s.last_lsn;
        epoch = s.max_epoch;
        keep = s.end;
        if (newest) log->seg_base = SEG_HDR + s.first_len;
    }

    /* Repair: make the newest segment end at its last valid record, durably. */
    seg_path(path, sizeof path, log->dir, nums[n - 1]);
    if (header_torn) {
        uint8_t hdr[SEG_HDR];
        seg_header_build(hdr, nums[n - 1]);
        int e = log->io.ftruncate(log->io.ctx, log->fd, 0);
        if (e == 0) e = write_all(&log->io, log->fd, hdr, sizeof hdr, 0);
        if (e == 0) e = log->io.fdatasync(log->io.ctx, log->fd);
        if (e < 0) {
            msg(err, errlen, "%s: rewriting the torn segment header: %s", path, strerror(-e));
            rc = write_error_code(e) == XATM_ENOSPC ? XATM_ENOSPC : XATM_EIO;
            goto out_free_images;
        }
        keep = SEG_HDR;
        log->seg_base = SEG_HDR;
    } else if (tail_torn) {
        int e = log->io.ftruncate(log->io.ctx, log->fd, (off_t)keep);
        if (e == 0) e = log->io.fdatasync(log->io.ctx, log->fd);
        if (e < 0) {
            msg(err, errlen, "%s: truncating the torn tail at offset %llu: %s", path,
                (unsigned long long)keep, strerror(-e));
            rc = XATM_EIO;
            goto out_free_images;
        }
    }

    for (size_t i = 0; i < n; i++) {
        rc = segs_push(log, nums[i], i == n - 1 ? keep : img[i].len);
        if (rc) goto out_free_images;
    }

    /* Pass 2: deliver, now that nothing can fail any more. */
    if (replay) {
        struct replay_ctx rctx = {replay, arg};
        for (size_t i = 0; i < n; i++) {
            if (header_torn && i == n - 1) break;
            struct scan s = {.last_lsn = 0};
            scan_records(img[i].data, i == n - 1 ? keep : img[i].len, &s, deliver_replay, &rctx);
        }
    }
    log->seg_off = keep;
    /* A previous process may have written unforced records it never synced: unless the
     * repair just synced the file, the next rotation must sync it before it is "older". */
    log->dirty = !(header_torn || tail_torn);
    log->next_lsn = last_lsn + 1;
    log->epoch = epoch;
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
    log->dir = strdup(dir);
    if (!log->dir) {
        rc = XATM_ENOMEM;
        goto fail_log;
    }
    log->io = io_complete(opts ? opts->io : NULL);
    log->segment_size = opts && opts->segment_size ? opts->segment_size : DEFAULT_SEGMENT_SIZE;
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
        uint8_t hdr[SEG_HDR];
        const char *what = "";
        seg_header_build(hdr, 1);
        int fd = create_segment(log, 1, hdr, sizeof hdr, &what);
        if (fd < 0) {
            char path[PATH_MAX];
            seg_path(path, sizeof path, dir, 1);
            msg(err, errlen, "%s: %s: %s", path, what, strerror(-fd));
            rc = write_error_code(fd) == XATM_ENOSPC ? XATM_ENOSPC : XATM_EIO;
            goto fail_nums;
        }
        log->fd = fd;
        log->seg_off = log->seg_base = SEG_HDR;
        log->next_lsn = 1;
        rc = segs_push(log, 1, SEG_HDR);
        if (rc) goto fail_nums;
    } else {
        rc = open_existing(log, nums, n, replay, arg, err, errlen);
        if (rc) goto fail_nums;
    }
    free(nums);
    *out = log;
    return 0;

fail_nums:
    free(nums);
fail_log:
    if (log->fd >= 0) log->io.close(log->io.ctx, log->fd);
    if (log->lock_fd >= 0) close(log->lock_fd);
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

/* Starts the next segment: header + CHECKPOINT of the caller's unresolved decisions, made
 * durable with its directory entry, then deletes every older segment. The current segment
 * has been fdatasync'd by the caller. */
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
    if (b.err) {
        log->buf.len = 0;
        log->next_lsn = lsn_before;
        return b.err;
    }

    const char *what = "";
    int fd = create_segment(log, num, log->buf.data, log->buf.len, &what);
    if (fd < 0) {
        seg_path(path, sizeof path, log->dir, num);
        log->buf.len = 0;
        return set_fatal(log, write_error_code(fd), "%s: %s: %s", path, what, strerror(-fd));
    }
    log->io.close(log->io.ctx, log->fd);
    log->fd = fd;
    log->seg_off = log->seg_base = log->buf.len;
    log->dirty = false;
    log->buf.len = 0;
    segs_push(log, num, log->seg_off); /* cannot fail: reserved above */

    /* The new segment is durable: older ones are no longer needed. Oldest first, so the
     * survivors of a crash or a failed unlink stay consecutive; a failed unlink is retried
     * by the next rotation. */
    size_t deleted = 0;
    while (deleted < log->n_segs - 1) {
        seg_path(path, sizeof path, log->dir, log->segs[deleted].num);
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

    if (wrote) {
        xatm_fault_hit("tm.before_log_write");
        int e = write_all(&log->io, log->fd, log->buf.data, log->buf.len, log->seg_off);
        if (e < 0) {
            seg_path(path, sizeof path, log->dir, cur->num);
            return set_fatal(log, write_error_code(e), "%s: write at offset %llu: %s", path,
                             (unsigned long long)log->seg_off, strerror(-e));
        }
        log->seg_off += log->buf.len;
        cur->size = log->seg_off;
        log->buf.len = 0;
        log->dirty = true;
    }
    bool rotate_due = log->seg_off - log->seg_base >= log->segment_size;
    if (log->dirty && (log->force || rotate_due)) {
        int e = log->io.fdatasync(log->io.ctx, log->fd);
        if (e < 0) {
            seg_path(path, sizeof path, log->dir, cur->num);
            return set_fatal(log, write_error_code(e), "%s: fdatasync: %s", path, strerror(-e));
        }
        log->dirty = false;
    }
    log->force = false;
    return rotate_due ? rotate(log) : 0;
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
    uint64_t total = 0;
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

void xatm_declog_close(xatm_declog *log)
{
    if (!log) return;
    if (!log->fatal && log->buf.len) {
        /* Unforced: nothing that depends on these records can have been sent yet. */
        (void)write_all(&log->io, log->fd, log->buf.data, log->buf.len, log->seg_off);
    }
    if (log->fd >= 0) log->io.close(log->io.ctx, log->fd);
    if (log->lock_fd >= 0) close(log->lock_fd); /* releases the directory */
    xatm_buf_free(&log->buf);
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

    xatm_declog_io io = io_complete(NULL);
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

        if (!seg_header_check(data, len, nums[i], why, sizeof why)) {
            if (newest && !valid_record_after(data, len, 0)) {
                msg(err, errlen, "%s: offset 0: torn segment header (xatmd would rewrite it): %s",
                    path, why);
            } else {
                msg(err, errlen, "%s: offset 0: %s", path, why);
                rc = XATM_ECORRUPT;
            }
            free(data);
            break;
        }
        struct dump_ctx d = {fn, arg, path};
        struct scan s = {.last_lsn = last_lsn};
        scan_records(data, len, &s, deliver_dump, &d);
        if (s.bad) {
            if (newest && !s.certain && !valid_record_after(data, len, s.end)) {
                msg(err, errlen, "%s: offset %llu: torn tail (xatmd would truncate it): %s", path,
                    (unsigned long long)s.end, s.why);
            } else {
                msg(err, errlen, "%s: offset %llu: %s", path, (unsigned long long)s.end, s.why);
                rc = XATM_ECORRUPT;
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
