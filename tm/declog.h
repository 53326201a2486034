/*
 * declog.h — xatmd's decision log (presumed abort). Owns the log directory: its segment
 * files, the record codec, replay at start-up, group-commit flushing and rotation.
 * docs/durability.md states the write/fsync/message order this module guarantees.
 *
 * Directory: segment files "xatm-log.<16 hex digits>" (the segment number), written
 * append-only. Only the newest segment is ever appended to. The file "LOCK" is held with
 * flock(LOCK_EX) for as long as the log is open: a second opener gets XATM_EBUSY.
 *
 * Segment header (32 bytes): magic "XATMLOG1" (8), u32 version (1), u32 reserved (0),
 * u64 segment number, u32 crc32c of bytes 0..23, u32 reserved (0).
 *
 * Record (all integers little-endian):
 *   offset size field
 *   0      4    total_len   header + payload, 24 <= total_len <= 64 KiB
 *   4      4    crc32c      Castagnoli CRC of bytes [8, total_len)
 *   8      8    lsn         strictly increasing across the whole log, starting at 1
 *   16     1    type        enum xatm_declog_type
 *   17     3    reserved    0
 *   20     4    payload_len total_len - 24
 *   24     ...  payload     per type, see below
 *
 * A record is valid when its total_len is in range, fits in the file, payload_len agrees,
 * reserved bytes are 0, its CRC matches, its lsn follows the previous one and its payload
 * decodes. At start-up the first invalid record of the newest segment is a TORN TAIL, and
 * the file is truncated there (fsync'd), only when no valid record can be found anywhere
 * after it; otherwise, and for any invalid record in an older segment, the log is CORRUPT
 * and opening fails with the file, offset and reason.
 *
 * Payloads (strings are u8 length + bytes):
 *   BOOT        u32 epoch                              forced at every start
 *   COMMIT      str gtrid, u8 protocol, u8 n, n x { str rm, u64 session_id }   forced
 *   PRECOMMIT   same as COMMIT (3PC)                   forced
 *   ABORT       same as COMMIT, protocol 3 (3PC: aborted after its PRECOMMIT; supersedes
 *               it; names every branch of the PRECOMMIT with its session, so it stands on
 *               its own once a checkpoint carries it without the PRECOMMIT)   forced
 *   END         str gtrid                              not forced
 *   HEURISTIC   str gtrid, u8 outcome (1 commit, 2 rollback), str who, str why   forced
 *   CHECKPOINT  u32 epoch, u32 n, n x (a COMMIT/PRECOMMIT/ABORT/HEURISTIC payload with its
 *               u8 type first): the unresolved decisions carried into a new segment   forced
 *
 * Group commit: callers append records (buffered in memory, no syscall) and then call
 * xatm_declog_flush(), which writes everything buffered with one write() and, if any
 * forced record is among it, one fdatasync(). Nothing that depends on a forced record may
 * be sent before the flush that contains it returns 0.
 *
 * A failed write or fdatasync is fatal and sticky: every later call returns XATM_ELOG
 * (or XATM_ENOSPC for a full disk) and the TM must stop deciding commits.
 *
 * Rotation: when the current segment exceeds segment_size, the next flush starts a new
 * segment whose first record is a CHECKPOINT of every unresolved decision (supplied by the
 * caller's callback), fsyncs it and the directory, and then deletes older segments.
 *
 * Details this implementation guarantees (docs/durability.md explains why):
 *   - Segment numbers start at 1 and the segments on disk are always consecutive (older
 *     ones are deleted oldest first); a gap is CORRUPT. Files not named exactly
 *     "xatm-log." + 16 lowercase hex digits are ignored.
 *   - lsn continuity: each record's lsn is the previous record's + 1, across segments; the
 *     oldest record on disk may start anywhere >= 1.
 *   - A record whose CRC matches but whose lsn, type or payload is wrong was written that
 *     way, not torn: it is CORRUPT wherever it is. Only records failing the length, reserved
 *     or CRC checks can be a torn tail. The search for "a valid record after it" tries every
 *     byte offset after the bad record.
 *   - The newest segment's header may itself be torn (a crash while rotating): when nothing
 *     valid follows it, the header is rewritten and the segment starts empty.
 *   - Before rotating, the current segment is fdatasync'd even when nothing forced is in it,
 *     so every segment but the newest is complete on disk.
 *   - Rotation is due at the end of a flush when the bytes written to the current segment
 *     after its header and its leading CHECKPOINT reach segment_size (so a checkpoint
 *     larger than segment_size cannot make every flush rotate).
 *   - A CHECKPOINT holds as many carried decisions as fit in one 64 KiB record; the rest
 *     follow it as ordinary COMMIT / PRECOMMIT / ABORT / HEURISTIC records in the new
 *     segment.
 *   - Replay semantics for callers: a decision (COMMIT, PRECOMMIT, ABORT, HEURISTIC) is
 *     unresolved until an END for its gtrid follows it. For one gtrid, an ABORT supersedes a
 *     PRECOMMIT (xatmd aborted it after PreCommit: no termination rule), and a COMMIT after a
 *     PRECOMMIT makes a commit decision (3PC's DoCommit). A decision may be delivered
 *     twice (from an older segment not yet deleted, and again from a CHECKPOINT):
 *     applying it must be idempotent. Every decision delivered before a CHECKPOINT and not carried by it was
 *     resolved. The highest epoch of BOOT and CHECKPOINT records is the last boot's.
 *   - The log is not thread-safe: callers serialise every call (including the unresolved
 *     callback, which runs inside flush).
 *   - flush calls the fault point "tm.before_log_write" just before its write.
 */
#ifndef XATM_DECLOG_H
#define XATM_DECLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/proto.h"
#include "../common/xid.h"

enum xatm_declog_type {
    XATM_DL_BOOT = 1,
    XATM_DL_COMMIT = 2,
    XATM_DL_PRECOMMIT = 3,
    XATM_DL_END = 4,
    XATM_DL_HEURISTIC = 5,
    XATM_DL_CHECKPOINT = 6,
    XATM_DL_ABORT = 7, /* 3PC: a PRECOMMIT'd transaction was aborted (docs/protocols.md) */
};

/* One branch named in a decision. */
typedef struct xatm_declog_branch {
    char rm[XATM_RM_NAME_MAX + 1]; /* RM name */
    uint64_t session_id;           /* AP's RM session at prepare (MariaDB connection id), 0 if none */
} xatm_declog_branch;

/* One decoded record. Replay delivers a CHECKPOINT as one record of type CHECKPOINT
 * carrying only its epoch, followed by each decision it carries as a record of its own
 * type (COMMIT / PRECOMMIT / ABORT / HEURISTIC) with the checkpoint's lsn. */
typedef struct xatm_declog_record {
    uint8_t type;                   /* enum xatm_declog_type */
    uint64_t lsn;                   /* assigned by append; ignored on input */
    uint32_t epoch;                 /* BOOT, CHECKPOINT */
    char gtrid[XATM_GTRID_MAX + 1]; /* COMMIT, PRECOMMIT, ABORT, END, HEURISTIC */
    uint8_t protocol;               /* COMMIT: 2 or 3; PRECOMMIT, ABORT: 3 */
    uint8_t outcome;                /* HEURISTIC: enum xatm_outcome */
    char who[64];                   /* HEURISTIC: operator / tool that forced it */
    char why[256];                  /* HEURISTIC: reason text */
    uint8_t n_branches;             /* COMMIT, PRECOMMIT, ABORT */
    xatm_declog_branch branches[XATM_MAX_BRANCHES];
} xatm_declog_record;

/* The file layer, so tests can drop or garble unsynced writes and fill the disk.
 * The default (NULL in options) is plain POSIX. Each returns 0 or -errno. */
typedef struct xatm_declog_io {
    int (*open)(void *ctx, const char *path, int flags, int mode);   /* returns fd or -errno */
    ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t n, off_t off);
    int (*fdatasync)(void *ctx, int fd);
    int (*ftruncate)(void *ctx, int fd, off_t len);
    int (*close)(void *ctx, int fd);
    void *ctx;
    /* Added after the first five; like them, a NULL member means the POSIX call. */
    ssize_t (*pread)(void *ctx, int fd, void *buf, size_t n, off_t off); /* replay reads */
    int (*fsync)(void *ctx, int fd);                  /* the directory, after create/delete */
    int (*unlink)(void *ctx, const char *path);       /* deleting old segments */
} xatm_declog_io;

typedef struct xatm_declog_options {
    uint64_t segment_size;       /* rotate after this many bytes; 0 = 16 MiB */
    const xatm_declog_io *io;    /* NULL = POSIX; in a table, NULL members = POSIX */
    /* Called during rotation to list the unresolved decisions to carry forward: calls
     * emit(rec, emit_arg) once per decision. May be NULL (nothing carried). It must emit
     * every COMMIT / PRECOMMIT / ABORT / HEURISTIC appended so far whose END has not been
     * appended (for one gtrid, the latest of COMMIT / ABORT / PRECOMMIT is enough),
     * and must not call into the log. Emitting any other type or an invalid record makes
     * that flush return XATM_EINVAL (not sticky; its records are durable; the rotation is
     * retried by the next flush). */
    void (*unresolved)(void *arg, void (*emit)(const xatm_declog_record *rec, void *emit_arg),
                       void *emit_arg);
    void *unresolved_arg;
} xatm_declog_options;

typedef struct xatm_declog xatm_declog; /* opaque */

/* Opens (creating dir and first segment if absent) and replays the whole log, calling
 * replay(rec, arg) for every valid record in order. Truncates a torn tail. On a corrupt
 * log returns XATM_ECORRUPT and err holds "<file>: offset <n>: <reason>".
 * replay may be NULL; it is called only once the whole log has been validated (and a torn
 * tail truncated), so a failed open never delivered anything. On success err is "" or a
 * warning the caller must log (a torn tail or header was truncated: which file, offset,
 * bytes dropped, why). Other errors: XATM_EINVAL (arguments), XATM_EIO (cannot create,
 * list, read or repair), XATM_ENOSPC, XATM_ENOMEM; err says which file and why. */
int xatm_declog_open(const char *dir, const xatm_declog_options *opts,
                     void (*replay)(const xatm_declog_record *rec, void *arg), void *arg,
                     xatm_declog **out, char *err, size_t errlen);

/* Buffers one record (assigns its lsn). force=true makes the next flush fdatasync.
 * XATM_EINVAL for a CHECKPOINT (only rotation writes those) or an invalid record: gtrid
 * not a valid gtrid, BOOT epoch 0, COMMIT protocol not 2/3, PRECOMMIT or ABORT protocol
 * not 3, n_branches > XATM_MAX_BRANCHES, an invalid RM name, HEURISTIC outcome not 1/2,
 * who/why not NUL-terminated in their arrays. The sticky error if the log has failed. */
int xatm_declog_append(xatm_declog *log, const xatm_declog_record *rec, bool force);

/* The lsn of the last record appended (or replayed), 0 when the log is empty. */
uint64_t xatm_declog_last_lsn(const xatm_declog *log);

/* The detail of the sticky failure ("<file>: fdatasync: Input/output error"), "" if none. */
const char *xatm_declog_errmsg(const xatm_declog *log);

/* Writes everything buffered (one write), fdatasyncs if a forced record is in it, and
 * rotates if due. 0, XATM_ELOG or XATM_ENOSPC (sticky). */
int xatm_declog_flush(xatm_declog *log);

/* xatm_declog_flush, and then everything written so far is on disk even when no forced
 * record was among it: one fdatasync when an unforced record (END) was written since the
 * last one, none otherwise. For a caller about to act on an END's durability (xatmd
 * deletes the 3PC marker rows of ended transactions only after this). 0, XATM_ELOG or
 * XATM_ENOSPC (sticky). */
int xatm_declog_sync(xatm_declog *log);

/* true when appended records are waiting for a flush. */
bool xatm_declog_pending(const xatm_declog *log);

/* Bytes of the appended records waiting for a flush (0 when none), and whether one of
 * them was appended with force. For a caller that defers flushing unforced records. */
size_t xatm_declog_pending_bytes(const xatm_declog *log);
bool xatm_declog_pending_forced(const xatm_declog *log);

/* Bytes of all segment files on disk, and the number of segments. */
uint64_t xatm_declog_disk_bytes(const xatm_declog *log);
unsigned xatm_declog_segments(const xatm_declog *log);

/* Flushes (without forcing) and closes. NULL accepted. */
void xatm_declog_close(xatm_declog *log);

/* Reads a log directory without modifying it (no truncation) and calls fn for every raw
 * record, for `xatmctl log dump`. Returns 0 or XATM_ECORRUPT with err set.
 * Records are delivered as they are read (those before a corruption are shown), a
 * CHECKPOINT as in replay (itself, then what it carries, all at its offset). A torn tail
 * ends the dump with 0 and a note in err (otherwise err is ""). Also XATM_ENOTFOUND (no
 * such directory), XATM_EIO, XATM_ENOMEM. */
int xatm_declog_dump(const char *dir, void (*fn)(const char *file, uint64_t offset,
                                                 const xatm_declog_record *rec, void *arg),
                     void *arg, char *err, size_t errlen);

/* One-line human description of a record into buf (always NUL-terminated, truncated to
 * size), e.g. `lsn=12 COMMIT gtrid=tm1.3.77 protocol=2pc branches=[pg,my(session 42)]`. */
void xatm_declog_describe(const xatm_declog_record *rec, char *buf, size_t size);

#endif
