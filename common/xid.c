/*
 * xid.c — gtrid / xid / PostgreSQL gid spelling of xid.h, both ways.
 *
 * Invariants: every parser accepts only the canonical text that the matching formatter
 * produces (so text -> xid -> text is the identity on accepted input, and xid -> text ->
 * xid is the identity on valid xids); no function reads past the terminating NUL of its
 * input or writes past `size` bytes of its output; nothing allocates.
 */
#include "xid.h"

#include <stdio.h>
#include <string.h>

#include "xatm.h"

/* true for the bytes allowed in TM ids and RM names: [A-Za-z0-9_-] (locale-independent) */
static bool name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

/* true when s is 1..max name characters followed by its NUL */
static bool name_valid(const char *s, size_t max)
{
    if (!s) return false;
    size_t i = 0;
    for (; s[i]; i++)
        if (i >= max || !name_char(s[i])) return false;
    return i > 0;
}

bool xatm_tm_id_valid(const char *s)
{
    return name_valid(s, XATM_TM_ID_MAX);
}

bool xatm_rm_name_valid(const char *s)
{
    return name_valid(s, XATM_RM_NAME_MAX);
}

/* Parses the canonical decimal number at *p, before end (no sign, no leading zero, not 0,
 * <= max), advancing *p past it. false on anything else, *p then unspecified. */
static bool parse_decimal(const char **p, const char *end, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    if (s == end || *s < '1' || *s > '9') return false; /* empty, zero, leading zero, sign */
    uint64_t v = 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10) return false; /* v * 10 + d would exceed max */
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return true;
}

size_t xatm_put_decimal(char *p, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) p[i] = digits[n - 1 - i];
    return n;
}

/* Spelled out by hand rather than with snprintf: xatmd formats two gtrids per transaction. */
int xatm_gtrid_format(char *buf, size_t size, const char *tm_id, uint32_t epoch, uint64_t seq)
{
    if (!buf || !xatm_tm_id_valid(tm_id) || epoch == 0 || seq == 0) return XATM_EINVAL;
    char text[XATM_TM_ID_MAX + 1 + 10 + 1 + 20 + 1];
    size_t n = strlen(tm_id); /* <= XATM_TM_ID_MAX: checked above */
    memcpy(text, tm_id, n);
    text[n++] = '.';
    n += xatm_put_decimal(text + n, epoch);
    text[n++] = '.';
    n += xatm_put_decimal(text + n, seq);
    if (n >= size) {
        if (size) buf[0] = '\0';
        return XATM_EINVAL;
    }
    memcpy(buf, text, n);
    buf[n] = '\0';
    return 0;
}

/* Parses the gtrid occupying s[0..len) exactly (s need not be NUL-terminated at len), in
 * one pass without a copy: xatmd parses several gtrids per transaction. A NUL byte
 * inside is refused like any other byte out of place. */
static int gtrid_parse_n(const char *s, size_t len, xatm_gtrid_parts *out)
{
    if (!s || len == 0 || len > XATM_GTRID_MAX) return XATM_EINVAL;
    const char *end = s + len;
    size_t id_len = 0;
    for (; id_len < len && s[id_len] != '.'; id_len++)
        if (!name_char(s[id_len])) return XATM_EINVAL;
    if (id_len == 0 || id_len > XATM_TM_ID_MAX || id_len == len) return XATM_EINVAL;

    const char *p = s + id_len + 1;
    uint64_t epoch, seq;
    if (!parse_decimal(&p, end, UINT32_MAX, &epoch) || p == end || *p != '.')
        return XATM_EINVAL;
    p++;
    if (!parse_decimal(&p, end, UINT64_MAX, &seq) || p != end) return XATM_EINVAL;

    if (out) {
        memcpy(out->tm_id, s, id_len);
        out->tm_id[id_len] = '\0';
        out->epoch = (uint32_t)epoch;
        out->seq = seq;
    }
    return 0;
}

int xatm_gtrid_parse(const char *gtrid, xatm_gtrid_parts *out)
{
    if (!gtrid) return XATM_EINVAL;
    size_t len = strnlen(gtrid, XATM_GTRID_MAX + 1);
    return gtrid_parse_n(gtrid, len, out);
}

/* true when the XA formatID is one xatm may use */
static bool format_id_valid(uint32_t format_id)
{
    return format_id != 0 && format_id != 1;
}

int xatm_xid_make(xatm_xid *out, uint32_t format_id, const char *gtrid, const char *bqual)
{
    if (!out || !format_id_valid(format_id) || xatm_gtrid_parse(gtrid, NULL) != 0 ||
        !xatm_rm_name_valid(bqual))
        return XATM_EINVAL;
    memset(out, 0, sizeof *out);
    out->format_id = format_id;
    strcpy(out->gtrid, gtrid); /* lengths checked by the validators above */
    strcpy(out->bqual, bqual);
    return 0;
}

/* true when x is a valid xid (every field NUL-terminated within its array and valid) */
static bool xid_valid(const xatm_xid *x)
{
    return x && format_id_valid(x->format_id) &&
           memchr(x->gtrid, '\0', sizeof x->gtrid) && xatm_gtrid_parse(x->gtrid, NULL) == 0 &&
           memchr(x->bqual, '\0', sizeof x->bqual) && xatm_rm_name_valid(x->bqual);
}

int xatm_xid_to_pg_gid(const xatm_xid *xid, char *buf, size_t size)
{
    if (!buf || !xid_valid(xid)) return XATM_EINVAL;
    /* "<prefix><format_id as 8 lowercase hex>:<gtrid>:<bqual>", spelled by hand: the
     * PostgreSQL adapter spells one per branch of every transaction */
    char text[sizeof XATM_PG_GID_PREFIX + 8 + 1 + XATM_GTRID_MAX + 1 + XATM_BQUAL_MAX + 1];
    size_t n = sizeof XATM_PG_GID_PREFIX - 1;
    memcpy(text, XATM_PG_GID_PREFIX, n);
    for (int shift = 28; shift >= 0; shift -= 4)
        text[n++] = "0123456789abcdef"[(xid->format_id >> shift) & 0xfu];
    text[n++] = ':';
    size_t len = strlen(xid->gtrid); /* xid_valid checked both lengths */
    memcpy(text + n, xid->gtrid, len);
    n += len;
    text[n++] = ':';
    len = strlen(xid->bqual);
    memcpy(text + n, xid->bqual, len);
    n += len;
    if (n >= size || n >= XATM_PG_GID_MAX) {
        if (size) buf[0] = '\0';
        return XATM_EINVAL;
    }
    memcpy(buf, text, n);
    buf[n] = '\0';
    return 0;
}

/* Value of a lowercase hex digit, -1 for anything else (uppercase is not canonical). */
static int hex_lower(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int xatm_xid_from_pg_gid(const char *gid, xatm_xid *out)
{
    const size_t plen = sizeof XATM_PG_GID_PREFIX - 1;
    if (!gid || !out) return XATM_EINVAL;
    size_t len = strnlen(gid, XATM_PG_GID_MAX);
    if (len >= XATM_PG_GID_MAX) return XATM_EINVAL;
    if (len < plen || memcmp(gid, XATM_PG_GID_PREFIX, plen) != 0) return XATM_EINVAL;

    const char *p = gid + plen;
    uint32_t format_id = 0;
    for (int i = 0; i < 8; i++) {
        int v = hex_lower(p[i]); /* stops at the NUL: hex_lower('\0') is -1 */
        if (v < 0) return XATM_EINVAL;
        format_id = format_id << 4 | (uint32_t)v;
    }
    p += 8;
    if (*p++ != ':') return XATM_EINVAL;

    const char *colon = strchr(p, ':');
    if (!colon) return XATM_EINVAL;
    xatm_gtrid_parts parts;
    if (gtrid_parse_n(p, (size_t)(colon - p), &parts) != 0) return XATM_EINVAL;

    const char *bqual = colon + 1; /* a second ':' fails the RM name alphabet */
    char gtrid[XATM_GTRID_MAX + 1];
    memcpy(gtrid, p, (size_t)(colon - p));
    gtrid[colon - p] = '\0';
    return xatm_xid_make(out, format_id, gtrid, bqual);
}
