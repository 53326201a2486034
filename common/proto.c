/*
 * proto.c — the wire codec of proto.h: frame headers and message bodies, bytes <-> structs.
 *
 * One walker per message type (walk_body) serves both directions: a `codec` either reads
 * each field from the body into the struct or writes it from the struct to the buffer, and
 * the same range check runs on the struct's value afterwards in both directions. So encode
 * and decode cannot disagree on field order or limits, and encode refuses exactly what
 * decode would reject (which makes the encoding canonical: decoded bytes re-encode
 * identically).
 *
 * Invariants: decode reads only body[0 .. h->body_len), never allocates and keeps no
 * pointer into the body except admin_reply.json; encode leaves `out` exactly as it was
 * when it fails; no state outside the arguments.
 */
#include "proto.h"

#include <string.h>

#include "xatm.h"

/* One row per message type: the type table of the protocol. */
static const struct msg_type_row {
    uint8_t type;     /* enum xatm_msg_type */
    const char *name; /* for logs and xatmctl */
    bool request;     /* sent client -> TM (else TM -> client) */
} msg_types[] = {
    {XATM_MSG_HELLO, "HELLO", true},
    {XATM_MSG_BEGIN, "BEGIN", true},
    {XATM_MSG_ENLIST, "ENLIST", true},
    {XATM_MSG_VOTE, "VOTE", true},
    {XATM_MSG_DONE, "DONE", true},
    {XATM_MSG_ROLLBACK, "ROLLBACK", true},
    {XATM_MSG_CANCOMMIT, "CANCOMMIT", true},
    {XATM_MSG_ADMIN, "ADMIN", true},
    {XATM_MSG_HELLO_OK, "HELLO_OK", false},
    {XATM_MSG_BEGIN_OK, "BEGIN_OK", false},
    {XATM_MSG_DECISION, "DECISION", false},
    {XATM_MSG_ERROR, "ERROR", false},
    {XATM_MSG_ADMIN_REPLY, "ADMIN_REPLY", false},
};

static const struct msg_type_row *msg_type_find(uint8_t type)
{
    for (size_t i = 0; i < sizeof msg_types / sizeof msg_types[0]; i++)
        if (msg_types[i].type == type) return &msg_types[i];
    return NULL;
}

const char *xatm_msg_type_name(uint8_t type)
{
    const struct msg_type_row *row = msg_type_find(type);
    return row ? row->name : "UNKNOWN";
}

bool xatm_msg_is_request(uint8_t type)
{
    const struct msg_type_row *row = msg_type_find(type);
    return row && row->request;
}

/* Largest body allowed for a type, by direction. */
static uint32_t max_body_for(const struct msg_type_row *row)
{
    return row->request ? XATM_FRAME_MAX_REQUEST : XATM_FRAME_MAX_REPLY;
}

/* ---- big-endian helpers ---- */

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Two's-complement reinterpretation without implementation-defined conversions. */
static int32_t i32_from_u32(uint32_t v)
{
    return v <= INT32_MAX ? (int32_t)v : -(int32_t)(~v) - 1;
}

static uint32_t u32_from_i32(int32_t v)
{
    return v >= 0 ? (uint32_t)v : ~(uint32_t)(-(v + 1));
}

/* ---- frame header ---- */

int xatm_frame_header_decode(const uint8_t *p, uint32_t max_body, xatm_frame_header *out)
{
    xatm_frame_header h;
    h.body_len = get_be32(p);
    h.version = p[4];
    h.type = p[5];
    h.flags = get_be16(p + 6);
    h.req_id = get_be32(p + 8);
    if (h.version != XATM_PROTO_VERSION || h.flags != 0 || !msg_type_find(h.type) ||
        h.body_len > max_body)
        return XATM_EPROTO;
    *out = h;
    return 0;
}

/* ---- the two-way field codec ---- */

/* Cursor of one walk over a body, in either direction. */
typedef struct codec {
    bool decoding;     /* true: body -> struct; false: struct -> out */
    const uint8_t *in; /* decoding: the body */
    uint32_t in_len;   /* decoding: its length (h->body_len) */
    uint32_t off;      /* decoding: next unread byte, <= in_len */
    xatm_buf *out;     /* encoding: bytes are appended here */
    int err;           /* first failure: 0, XATM_EPROTO / XATM_EINVAL / XATM_ENOMEM */
} codec;

/* Records a malformation: EPROTO when reading, EINVAL (caller's bad field) when writing. */
static void bad(codec *c)
{
    if (!c->err) c->err = c->decoding ? XATM_EPROTO : XATM_EINVAL;
}

static void check(codec *c, bool ok)
{
    if (!ok) bad(c);
}

/* Reading: returns the next n bytes, or NULL (and marks the body bad) if fewer remain. */
static const uint8_t *take(codec *c, uint32_t n)
{
    if (c->err) return NULL;
    if (c->in_len - c->off < n) {
        bad(c);
        return NULL;
    }
    const uint8_t *p = c->in + c->off;
    c->off += n;
    return p;
}

/* Writing: appends n bytes. */
static void emit(codec *c, const void *p, size_t n)
{
    if (c->err) return;
    if (xatm_buf_append(c->out, p, n) != 0) c->err = XATM_ENOMEM;
}

static void f_u8(codec *c, uint8_t *v)
{
    if (c->decoding) {
        const uint8_t *p = take(c, 1);
        *v = p ? p[0] : 0;
    } else {
        emit(c, v, 1);
    }
}

static void f_u16(codec *c, uint16_t *v)
{
    uint8_t b[2];
    if (c->decoding) {
        const uint8_t *p = take(c, 2);
        *v = p ? get_be16(p) : 0;
    } else {
        put_be16(b, *v);
        emit(c, b, 2);
    }
}

static void f_u32(codec *c, uint32_t *v)
{
    uint8_t b[4];
    if (c->decoding) {
        const uint8_t *p = take(c, 4);
        *v = p ? get_be32(p) : 0;
    } else {
        put_be32(b, *v);
        emit(c, b, 4);
    }
}

static void f_i32(codec *c, int32_t *v)
{
    uint32_t u = c->decoding ? 0 : u32_from_i32(*v);
    f_u32(c, &u);
    if (c->decoding) *v = i32_from_u32(u);
}

static void f_u64(codec *c, uint64_t *v)
{
    uint32_t hi = (uint32_t)(*v >> 32), lo = (uint32_t)*v;
    f_u32(c, &hi);
    f_u32(c, &lo);
    if (c->decoding) *v = (uint64_t)hi << 32 | lo;
}

/* A str field into/from s, an array of max + 1 bytes: u16 length, bytes, no NUL inside. */
static void f_str(codec *c, char *s, size_t max)
{
    uint16_t n;
    if (c->decoding) {
        s[0] = '\0';
        f_u16(c, &n);
        if (c->err) return;
        if (n > max) {
            bad(c);
            return;
        }
        const uint8_t *p = take(c, n);
        if (!p) return;
        if (memchr(p, '\0', n)) {
            bad(c);
            return;
        }
        memcpy(s, p, n);
        s[n] = '\0';
    } else {
        size_t len = strnlen(s, max + 1);
        if (len > max) {
            bad(c);
            return;
        }
        n = (uint16_t)len;
        f_u16(c, &n);
        emit(c, s, n);
    }
}

/* The ADMIN_REPLY blob: u32 length, bytes; decoding points *p into the body. */
static void f_blob(codec *c, const char **p, uint32_t *len, uint32_t max)
{
    f_u32(c, len);
    if (c->err) return;
    if (*len > max) {
        bad(c);
        return;
    }
    if (c->decoding) {
        const uint8_t *b = take(c, *len);
        *p = b ? (const char *)b : NULL;
    } else {
        if (*len && !*p) {
            bad(c);
            return;
        }
        emit(c, *p, *len);
    }
}

/* ---- enum ranges ---- */

static bool role_ok(uint8_t v) { return v == XATM_ROLE_AP || v == XATM_ROLE_ADMIN; }
static bool vote_ok(uint8_t v) { return v >= XATM_VOTE_YES && v <= XATM_VOTE_READONLY; }
static bool outcome_ok(uint8_t v) { return v == XATM_OUTCOME_COMMIT || v == XATM_OUTCOME_ABORT; }
static bool decision_outcome_ok(uint8_t v) { return outcome_ok(v) || v == XATM_OUTCOME_PRECOMMIT; }
static bool done_outcome_ok(uint8_t v) { return outcome_ok(v) || v == XATM_OUTCOME_COMMIT_DECIDED; }
/* A protocol the client may ask for (0 = the TM's default). */
static bool protocol_req_ok(uint8_t v) { return v == 0 || v == 2 || v == 3; }
/* A protocol the TM resolved. */
static bool protocol_ok(uint8_t v) { return v == 2 || v == 3; }

/* ---- bodies ---- */

/* Walks every field of m's body in order (see the table in proto.h). */
static void walk_body(codec *c, xatm_msg *m)
{
    switch (m->type) {
    case XATM_MSG_HELLO:
        f_u8(c, &m->u.hello.role);
        check(c, role_ok(m->u.hello.role));
        f_u32(c, &m->u.hello.pid);
        f_str(c, m->u.hello.client_name, XATM_CLIENT_NAME_MAX);
        break;
    case XATM_MSG_HELLO_OK:
        f_str(c, m->u.hello_ok.tm_id, XATM_TM_ID_MAX);
        f_u32(c, &m->u.hello_ok.epoch);
        f_u32(c, &m->u.hello_ok.format_id);
        f_u8(c, &m->u.hello_ok.default_protocol);
        check(c, protocol_ok(m->u.hello_ok.default_protocol));
        f_u32(c, &m->u.hello_ok.timeout_ms);
        f_str(c, m->u.hello_ok.decision_rm, XATM_RM_NAME_MAX);
        f_u32(c, &m->u.hello_ok.decision_retention_ms);
        break;
    case XATM_MSG_BEGIN:
        f_u8(c, &m->u.begin.protocol);
        check(c, protocol_req_ok(m->u.begin.protocol));
        f_u32(c, &m->u.begin.timeout_ms);
        f_u8(c, &m->u.begin.flags);
        check(c, (m->u.begin.flags & ~XATM_BEGIN_RESERVE) == 0);
        f_u16(c, &m->u.begin.count);
        check(c, m->u.begin.flags & XATM_BEGIN_RESERVE
                     ? m->u.begin.count >= 1 && m->u.begin.count <= XATM_LEASE_MAX
                     : m->u.begin.count == 0);
        break;
    case XATM_MSG_BEGIN_OK:
        f_str(c, m->u.begin_ok.gtrid, XATM_GTRID_MAX);
        f_u8(c, &m->u.begin_ok.protocol);
        check(c, protocol_ok(m->u.begin_ok.protocol));
        f_u32(c, &m->u.begin_ok.timeout_ms);
        f_u16(c, &m->u.begin_ok.count);
        check(c, m->u.begin_ok.count >= 1 && m->u.begin_ok.count <= XATM_LEASE_MAX);
        break;
    case XATM_MSG_ENLIST:
        f_str(c, m->u.enlist.gtrid, XATM_GTRID_MAX);
        f_str(c, m->u.enlist.rm, XATM_RM_NAME_MAX);
        f_u64(c, &m->u.enlist.session_id);
        break;
    case XATM_MSG_VOTE:
    case XATM_MSG_CANCOMMIT: /* the same body, decoded into u.vote */
        f_str(c, m->u.vote.gtrid, XATM_GTRID_MAX);
        f_u16(c, &m->u.vote.n);
        check(c, m->u.vote.n <= XATM_MAX_BRANCHES);
        for (unsigned i = 0; !c->err && i < m->u.vote.n; i++) {
            xatm_msg_vote_entry *e = &m->u.vote.e[i];
            f_str(c, e->rm, XATM_RM_NAME_MAX);
            f_u8(c, &e->vote);
            check(c, vote_ok(e->vote));
            f_u64(c, &e->session_id);
        }
        break;
    case XATM_MSG_DECISION:
        f_str(c, m->u.decision.gtrid, XATM_GTRID_MAX);
        f_u8(c, &m->u.decision.outcome);
        check(c, decision_outcome_ok(m->u.decision.outcome));
        f_str(c, m->u.decision.reason, XATM_REASON_MAX);
        break;
    case XATM_MSG_DONE:
        f_str(c, m->u.done.gtrid, XATM_GTRID_MAX);
        f_u8(c, &m->u.done.outcome);
        check(c, done_outcome_ok(m->u.done.outcome));
        f_u16(c, &m->u.done.n);
        check(c, m->u.done.n <= XATM_MAX_BRANCHES);
        for (unsigned i = 0; !c->err && i < m->u.done.n; i++) {
            f_str(c, m->u.done.e[i].rm, XATM_RM_NAME_MAX);
            f_i32(c, &m->u.done.e[i].xa_rc);
        }
        break;
    case XATM_MSG_ROLLBACK:
        f_str(c, m->u.rollback.gtrid, XATM_GTRID_MAX);
        break;
    case XATM_MSG_ERROR:
        f_i32(c, &m->u.error.code);
        check(c, m->u.error.code < 0);
        f_str(c, m->u.error.message, XATM_ERRMSG_MAX);
        break;
    case XATM_MSG_ADMIN:
        f_str(c, m->u.admin.command, XATM_ADMIN_CMD_MAX);
        f_str(c, m->u.admin.arg, XATM_ADMIN_ARG_MAX);
        break;
    case XATM_MSG_ADMIN_REPLY:
        f_i32(c, &m->u.admin_reply.code);
        check(c, m->u.admin_reply.code <= 0);
        f_blob(c, &m->u.admin_reply.json, &m->u.admin_reply.json_len,
               XATM_FRAME_MAX_REPLY - 8);
        break;
    default:
        bad(c);
        break;
    }
}

int xatm_msg_encode(const xatm_msg *m, uint32_t req_id, xatm_buf *out)
{
    if (!m || !out) return XATM_EINVAL;
    const struct msg_type_row *row = msg_type_find(m->type);
    if (!row) return XATM_EINVAL;

    /* The walker takes a mutable message (it fills it when decoding); encode gives it a
     * copy so the caller's stays const. */
    xatm_msg copy = *m;
    size_t start = out->len;
    uint8_t hdr[XATM_FRAME_HEADER_SIZE] = {0};
    codec c = {.decoding = false, .out = out};

    if (xatm_buf_reserve(out, 256) != 0) return XATM_ENOMEM;
    emit(&c, hdr, sizeof hdr);
    walk_body(&c, &copy);
    if (!c.err && out->len - start - XATM_FRAME_HEADER_SIZE > max_body_for(row))
        c.err = XATM_EINVAL;
    if (c.err) {
        out->len = start;
        return c.err;
    }
    uint8_t *h = out->data + start;
    put_be32(h, (uint32_t)(out->len - start - XATM_FRAME_HEADER_SIZE));
    h[4] = XATM_PROTO_VERSION;
    h[5] = m->type;
    put_be16(h + 6, 0);
    put_be32(h + 8, req_id);
    return 0;
}

int xatm_msg_decode(const xatm_frame_header *h, const uint8_t *body, xatm_msg *out)
{
    if (!h || !out || (!body && h->body_len)) return XATM_EPROTO;
    const struct msg_type_row *row = msg_type_find(h->type);
    if (!row || h->version != XATM_PROTO_VERSION || h->flags != 0 ||
        h->body_len > max_body_for(row))
        return XATM_EPROTO;

    static const uint8_t no_body[1]; /* stands in for a NULL body of length 0 */
    memset(out, 0, sizeof *out);
    out->type = h->type;
    codec c = {.decoding = true, .in = body ? body : no_body, .in_len = h->body_len};
    walk_body(&c, out);
    if (!c.err && c.off != c.in_len) c.err = XATM_EPROTO; /* trailing bytes */
    return c.err;
}
