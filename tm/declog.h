/*
 * declog.h — xatmd's decision log (presumed abort). Owns the log directory: its segment
 * files, the record codec, replay at start-up, group-commit flushing and rotation.
 * docs/durability.md states the write/fsync/message order this module guarantees.
 *
 * Directory: segment files "xatm-log.<16 hex digits>" (the segment number). Only the newest
 * segment is ever written to, each write right after the previous one. The file "LOCK" is
 * held with flock(LOCK_EX) for as long as the log is open: a second opener gets XATM_EBUSY.
 * "xatm-log.next" is the next segment while it is being prepared (below); it is not part of
 * the log.
 *
 * Zero-filled segments: a segment file is given its full length (segment_size, at least 32
 * bytes, at most 1 GiB) by writing zeros, and fdatasync'd, before records go into it; the
 * records then overwrite zeros, so the fdatasync of a forced flush has no file size or block
 * allocation to commit. (Not fallocate: its unwritten extents still need a metadata update
 * at the first write; not ftruncate: sparse.) The last flush of a segment may run past the
 * full length (rotation is due only once segment_size bytes follow the leading CHECKPOINT)
 * and then simply extends the file. Zero fills are written in pieces of at most 256 KiB,
 * each one pwrite through the io table; the one exception is the first write of a segment
 * made with nothing prepared (below): its header and records padded with zeros to 256 KiB
 * or the segment's length, whichever is less, and longer only by records past that.
 * Every segment (the first, the one after a version 1 segment, each rotation's) is made as
 * "xatm-log.next" and appears under its name only once its header and first records are
 * on disk: zeros to its full length and the header (and CHECKPOINT) at its start are
 * written, it is fdatasync'd, renamed to its segment name, and the directory is fsync'd.
 * A crash before the rename leaves a leftover "xatm-log.next" and no new segment. When
 * nothing was prepared ahead (a new log directory, a segment of at most 256 KiB, a
 * rotation after a restart or a failed preparation), "xatm-log.next" is created at that
 * point and its first pwrite carries the header, CHECKPOINT and the first zeros (a segment
 * of at most 256 KiB: all of it in one pwrite, unless its CHECKPOINT and records are longer).
 * A larger segment is prepared ahead
 * as "xatm-log.next": from the flush that finds the current segment half full on, every
 * flush that wrote records zero-fills another piece of it (256 KiB, or 4x what that flush
 * wrote if more) and starts the kernel's writeback of that piece
 * (sync_file_range(SYNC_FILE_RANGE_WRITE), a hint outside the io table); the flush that
 * completes it fdatasyncs it. Such a flush thus makes one more pwrite per 256 KiB it fills
 * (and the completing one one more fdatasync) after its own, before it returns: whoever waits on it waits for
 * them too. The rotation then writes the header and CHECKPOINT over its
 * first zeros, fdatasyncs it, renames it to its segment name and fsyncs the directory (a
 * rotation that finds it incomplete completes it first). Recycling: the rotation renames
 * the oldest older segment to "xatm-log.next" instead of deleting it (when segments are
 * prepared ahead, none exists yet and the file is at least its zero-filled length long,
 * i.e. segment_size clamped to 1 GiB; cut back to that length), and the preparation zero-fills it like a new file, so its old records are
 * zeros again before it is renamed into place. Opening the log removes a leftover
 * "xatm-log.next" (after making any segment it needs).
 *
 * Segment header (32 bytes): magic "XATMLOG1" (8), u32 version, u32 reserved (0),
 * u64 segment number, u32 crc32c of bytes 0..23, u32 reserved (0). Version 2 (every segment
 * this code creates): every flush ends with a FLUSH record. Version 1: written before FLUSH
 * records (append-only, no FLUSH records); read by the old rules below, never written to:
 * when the newest segment is version 1, open fdatasyncs it (after zeroing a torn tail; it
 * is not extended) and creates an empty version 2 segment after it.
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
 * FLUSH record (type 8, version 2 segments only): the last record of every flush's write
 * (and of a rotation's header + CHECKPOINT write), 44 bytes; its lsn is that of the record
 * before it (it takes no lsn of its own), payload u64 first_lsn, u64 covered, u32 crc32c:
 * it covers the `covered` bytes before it, which start at the first record (lsn first_lsn)
 * after the last flush that was fdatasync'd when it was written (or after the header): its
 * own flush, plus any unsynced flushes before it; crc32c is over those bytes.
 *
 * A record is valid when its total_len is in range, fits in the file, payload_len agrees,
 * reserved bytes are 0, its CRC matches, its lsn follows the previous one and its payload
 * decodes; a FLUSH record when, besides, it follows a record of its flush with that
 * record's lsn, its covered bytes start at or before the end of the previous FLUSH record
 * with the record of lsn first_lsn, and their crc32c matches. The log of a segment ENDS
 * where its file ends, or where a record would start with total_len 0 and every byte from
 * there to the end of the file is zero (the zero-filled rest). A total_len of 0 with any
 * non-zero byte after it is an invalid record like any other.
 *
 * Version 2 segments: the records of a segment are those up to its last valid FLUSH record
 * reached by reading from the header. At start-up, in the NEWEST segment, everything after
 * that FLUSH record (an invalid record, a FLUSH record whose covered bytes do not check out,
 * records no FLUSH record closes, garbage after the zeros) is the TORN TAIL — a flush that
 * did not complete — unless a FLUSH record whose own CRC and covered bytes check out starts
 * anywhere after it: since it covers every byte back to the last completed fdatasync, the
 * damage lies in bytes that had been made durable, and the log is CORRUPT. A record whose
 * CRC matches but whose lsn, type or payload (or a FLUSH record's lsn, first_lsn or range)
 * is wrong is CORRUPT wherever it is.
 * Version 1 segments (the old rule): the first invalid record of the newest segment is a
 * TORN TAIL only when no record with a valid length and CRC starts anywhere after it.
 * Both: a torn tail is "truncated", which means every non-zero byte from it on is
 * overwritten with zeros, a version 2 file is extended with zeros to its full length if
 * shorter, and it is fdatasync'd, so the next records land on zeros. Any invalid record in
 * an older segment (zeros to the end of an older segment are fine, anything after them is
 * not; in version 2 also records after its last FLUSH record), and anything else, makes the
 * log CORRUPT: opening fails with the file, offset and reason, changing nothing on disk. A
 * version 2 newest segment shorter than its full length (cut short by a crash during its
 * zero fill) is extended with zeros and fdatasync'd at open; older ones are read as they are.
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
 * xatm_declog_flush(), which writes everything buffered, ended by its FLUSH record, with
 * one write() and, if any forced record is among it, one fdatasync(). Nothing that depends on a forced record may
 * be sent before the flush that contains it returns 0.
 *
 * A failed write or fdatasync is fatal and sticky: every later call returns XATM_ELOG
 * (or XATM_ENOSPC for a full disk) and the TM must stop deciding commits. A flush that
 * fails while rotating has already written and fdatasync'd its own records (a rotating
 * flush syncs the segment first, forced or not): they are durable, like those of a process
 * that died right after its fdatasync. One that fails while preparing the next segment has
 * written its records, and fdatasync'd them only if one was forced: an unforced (END-only)
 * flush leaves them written and not synced, like a process that died right after its
 * write (they may or may not survive a power failure).
 *
 * Full disk: records overwrite zeros, so the space is needed where a file grows: creating
 * the first segment or extending one at open (open fails with XATM_ENOSPC); preparing the
 * next segment (a piece that does not fit is NOT an error: the flush returns 0, the part
 * zero-filled is kept, xatm_declog_take_warning() returns "<dir>/xatm-log.next: preparing
 * the next segment: write at offset <n>: No space left on device; retried by every
 * flush; ...", and every later flush tries the piece again); the last flush of a segment,
 * which always writes past its zero-filled length (XATM_ENOSPC, sticky, "<file>: write at
 * offset <n>: ..."; its records are not durable); and the rotation completing the next
 * segment (XATM_ENOSPC, sticky, the "preparing" message; the partial file is removed).
 *
 * Rotation: the flush that brings the current segment to segment_size bytes or more
 * after its header and leading CHECKPOINT (below) fdatasyncs it and then, in the same call,
 * starts a new (zero-filled) segment whose first record is a CHECKPOINT of every unresolved decision
 * (supplied by the caller's callback), fsyncs it and the directory, and then deletes older
 * segments (the oldest recycled as "xatm-log.next", above).
 *
 * Details this implementation guarantees (docs/durability.md explains why):
 *   - Segment numbers start at 1 and the segments on disk are always consecutive (older
 *     ones are deleted oldest first); a gap is CORRUPT. Files not named exactly
 *     "xatm-log." + 16 lowercase hex digits are ignored.
 *   - lsn continuity: each record's lsn is the previous record's + 1, across segments
 *     (FLUSH records excepted: they repeat the previous lsn); the oldest record on disk may
 *     start anywhere >= 1.
 *   - After open without a repair, the first flush's FLUSH record covers the newest segment
 *     from its first record (what the previous process wrote may not have been synced).
 *   - A record whose CRC matches but whose lsn, type or payload is wrong was written that
 *     way, not torn: it is CORRUPT wherever it is. Only records failing the length, reserved
 *     or CRC checks (and FLUSH records whose covered bytes fail theirs) can be a torn tail.
 *     The search for "a valid record after it" (version 1) or "a FLUSH record that checks
 *     out after it" (version 2) tries every byte offset after the last good record or flush,
 *     and stops at the last non-zero byte of the file.
 *   - The newest segment's header may itself be torn in a log written by an earlier xatmd
 *     (which created the first segment, and segments of at most 256 KiB, under their own
 *     names) or by a crash while open rewrote it: when nothing valid follows it, the
 *     header is rewritten, every other non-zero byte zeroed, and the segment starts
 *     empty. This xatmd renames a segment into place only once its header and CHECKPOINT
 *     are on disk, so a crash while it makes one never tears a segment's header.
 *   - Before rotating, the current segment is fdatasync'd even when nothing forced is in it,
 *     so every segment but the newest is complete on disk.
 *   - Rotation is due at the end of a flush when the bytes written to the current segment
 *     after its header and its leading CHECKPOINT reach segment_size (so a checkpoint
 *     larger than segment_size cannot make every flush rotate). While running, that base
 *     is the whole rotation's flush (header, CHECKPOINT, the overflow records after it and
 *     its FLUSH record); after a restart it is the header and CHECKPOINT only, so the
 *     first rotation after a restart may come that many bytes (overflow records + 44)
 *     early. A CHECKPOINT leads only when a FLUSH record that checks out closes it: after
 *     a torn one, the segment starts empty and the threshold counts from its header.
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
    XATM_DL_FLUSH = 8, /* framing only (version 2 segments): ends every flush; never
                          appended by callers, never delivered by replay or dump */
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
 * The default (NULL in options) is plain POSIX. Each returns 0 or -errno. ftruncate is
 * called only to cut a recycled segment back to its full length (segments are repaired by
 * writing zeros). */
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
    /* Added with zero-filled segments: the prepared next segment is renamed into place. */
    int (*rename)(void *ctx, const char *from, const char *to);
} xatm_declog_io;

/* The table `in` (NULL: none) with every NULL member replaced by its POSIX call: what the
 * log runs, and a base for a layer that wraps a few calls (tm/faultio.c). The POSIX calls
 * retry on EINTR (close and unlink/rename excepted) and take no ctx. */
xatm_declog_io xatm_declog_io_complete(const xatm_declog_io *in);

typedef struct xatm_declog_options {
    uint64_t segment_size;       /* rotate after this many bytes (any value; 1 rotates
                                    at every flush), and the length segment files are
                                    zero-filled to (clamped to 32 B..1 GiB); 0 = 16 MiB.
                                    xatmd's config refuses less than 64 KiB */
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
 * replay(rec, arg) for every valid record in order. Truncates (zeroes) a torn tail and
 * extends a newest segment shorter than its full length with zeros; removes a leftover
 * "xatm-log.next". On a corrupt log returns XATM_ECORRUPT and err holds
 * "<file>: offset <n>: <reason>".
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

/* A problem that is not (yet) a failure, once: NULL when nothing new happened since the
 * last call, else a message the caller should log, valid until the next call into the log.
 * Today: the next segment could not be prepared for lack of disk space (and later, that it
 * is being prepared again); see "Full disk" above. */
const char *xatm_declog_take_warning(xatm_declog *log);

/* Writes everything buffered (one write), fdatasyncs if a forced record is in it, and
 * rotates if due (in this call). 0, XATM_ELOG or XATM_ENOSPC (sticky); or, not sticky
 * (the flush's records were written and fdatasync'd, and the next flush retries the
 * rotation): XATM_ENOMEM (no memory to build the rotation's CHECKPOINT) or XATM_EINVAL
 * (the unresolved callback emitted a bad record); XATM_EINVAL for a NULL log. */
int xatm_declog_flush(xatm_declog *log);

/* xatm_declog_flush, and then everything written so far is on disk even when no forced
 * record was among it: one fdatasync when an unforced record (END) was written since the
 * last one, none otherwise. For a caller about to act on an END's durability (xatmd
 * deletes the 3PC marker rows of ended transactions only after this). Returns what
 * xatm_declog_flush returns. */
int xatm_declog_sync(xatm_declog *log);

/* true when appended records are waiting for a flush. */
bool xatm_declog_pending(const xatm_declog *log);

/* Bytes of the appended records waiting for a flush (0 when none), and whether one of
 * them was appended with force. For a caller that defers flushing unforced records. */
size_t xatm_declog_pending_bytes(const xatm_declog *log);
bool xatm_declog_pending_forced(const xatm_declog *log);

/* Bytes of all segment files on disk (each at least its zero-filled full length, whatever
 * it holds; plus "xatm-log.next": the part written so far, or all of a recycled one), and
 * the number of segments ("xatm-log.next" not counted). */
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
