/*
 * xid.h — transaction identifiers: how xatm names global transactions and their branches,
 * and how those names are spelled for each RM. Pure functions, no I/O, no globals.
 *
 * A global transaction id (gtrid) is text issued by xatmd:
 *
 *     <tm_id>.<epoch>.<seq>        e.g.  "tm1.7.42"
 *
 *   tm_id  the TM's configured id: 1..16 chars of [A-Za-z0-9_-]
 *   epoch  decimal u32, the TM's boot counter (incremented and logged at every start)
 *   seq    decimal u64, per-boot sequence starting at 1
 *
 * A branch qualifier (bqual) is the RM's configured name: 1..32 chars of [A-Za-z0-9_-].
 * Both always fit MySQL's 64-byte gtrid/bqual limits. The XA formatID is the TM's
 * configured format_id (never 1, MySQL's default, and never 0).
 *
 * PostgreSQL has one text gid per prepared transaction; xatm spells it
 *
 *     xatm:<format_id as 8 lowercase hex>:<gtrid>:<bqual>     e.g. "xatm:78614d31:tm1.7.42:ledger_pg"
 *
 * which is printable, under 200 bytes, and filterable with `gid LIKE 'xatm:%'`.
 * Invariant: xatm_xid_from_pg_gid(xatm_xid_to_pg_gid(x)) == x for every valid x.
 *
 * Only the canonical spelling is accepted, so one xid has exactly one text form:
 *   - epoch and seq are >= 1 (0 is never issued: epoch 0 would be "never booted"), in
 *     decimal without sign, spaces or leading zeros, and within u32 / u64;
 *   - the format_id in a gid is exactly 8 lowercase hex digits;
 *   - format_id 0 and 1 are rejected everywhere (0 is "null xid", 1 is MySQL's default);
 *   - anything else (other prefix, missing or extra ':' or '.', a character outside the
 *     alphabets, a part too long, a gid of XATM_PG_GID_MAX bytes or more) is XATM_EINVAL.
 * Output buffers too small for the result are XATM_EINVAL (never a truncated id).
 */
#ifndef XATM_XID_H
#define XATM_XID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define XATM_TM_ID_MAX 16
#define XATM_RM_NAME_MAX 32
#define XATM_GTRID_MAX 64 /* MySQL's limit; ours is at most 16+1+10+1+20 = 48 */
#define XATM_BQUAL_MAX 64
#define XATM_PG_GID_MAX 200 /* PostgreSQL's GIDSIZE, including the terminator */
#define XATM_PG_GID_PREFIX "xatm:"

/* One branch's XA identifier. Strings are NUL-terminated. */
typedef struct xatm_xid {
    uint32_t format_id;                 /* the TM's configured XA formatID */
    char gtrid[XATM_GTRID_MAX + 1];     /* "<tm_id>.<epoch>.<seq>" */
    char bqual[XATM_BQUAL_MAX + 1];     /* the RM's name */
} xatm_xid;

/* The parts of a gtrid. */
typedef struct xatm_gtrid_parts {
    char tm_id[XATM_TM_ID_MAX + 1]; /* issuing TM's id */
    uint32_t epoch;                 /* issuing TM's boot epoch */
    uint64_t seq;                   /* sequence within that boot */
} xatm_gtrid_parts;

/* true when s is a valid TM id / RM name (length and alphabet as above). */
bool xatm_tm_id_valid(const char *s);
bool xatm_rm_name_valid(const char *s);

/* Formats a gtrid into buf (size >= XATM_GTRID_MAX+1). 0 or XATM_EINVAL. */
int xatm_gtrid_format(char *buf, size_t size, const char *tm_id, uint32_t epoch, uint64_t seq);
/* Parses a gtrid; XATM_EINVAL if it is not one of ours (any TM id). */
int xatm_gtrid_parse(const char *gtrid, xatm_gtrid_parts *out);

/* Writes v in decimal at p (no sign, no terminator) and returns the number of digits
 * (1..20): snprintf's "%llu" for the identifiers and statements of every transaction. */
size_t xatm_put_decimal(char *p, uint64_t v);

/* Copies the string src into dst (size >= 1 bytes), cut to size - 1 bytes and always
 * terminated: snprintf(dst, size, "%s", src) without the formatter, for the gtrids, RM
 * names and reasons xatmd copies on every transaction. Returns dst. */
static inline char *xatm_str_copy(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return dst;
}

/* Builds a branch xid. XATM_EINVAL on invalid parts. */
int xatm_xid_make(xatm_xid *out, uint32_t format_id, const char *gtrid, const char *bqual);

/* PostgreSQL gid spelling, both ways. buf size >= XATM_PG_GID_MAX. */
int xatm_xid_to_pg_gid(const xatm_xid *xid, char *buf, size_t size);
int xatm_xid_from_pg_gid(const char *gid, xatm_xid *out);

#endif
