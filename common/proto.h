/*
 * proto.h — the wire protocol between libxatm / xatmctl and xatmd: pure bytes <-> structs.
 * No I/O, no globals, no allocation in decode, so it can be fuzzed. docs/protocol.md is the
 * prose version of this header and must agree with it.
 *
 * Transport: a Unix-domain stream socket. Every message is one frame:
 *
 *   offset size field
 *   0      4    body_len   u32 big-endian, bytes after the header
 *   4      1    version    XATM_PROTO_VERSION (6)
 *   5      1    type       enum xatm_msg_type
 *   6      2    flags      u16, must be 0
 *   8      4    req_id     u32, chosen by the client; a reply echoes its request's id
 *   12     ...  body       the type's fields, in order, as below
 *
 * Field encodings (all integers big-endian):
 *   u8/u16/u32/u64/i32   fixed width
 *   str                  u16 length, then that many bytes (no NUL on the wire)
 *   blob                 u32 length, then bytes (admin JSON only)
 *
 * Limits: a client->server frame body is at most XATM_FRAME_MAX_REQUEST bytes, a
 * server->client body at most XATM_FRAME_MAX_REPLY. A frame with a bad version, unknown
 * type, nonzero flags, oversize length, a field running past the body, a string longer
 * than its field's limit, or trailing bytes is malformed: the receiver closes that
 * connection (and only that one).
 *
 * Bodies (-> client to TM, <- TM to client; "one-way" = no reply is sent):
 *   HELLO      -> u8 role (1 AP, 2 admin), u32 pid, str client_name(<=64)
 *   HELLO_OK   <- str tm_id, u32 epoch, u32 format_id, u8 default_protocol, u32 timeout_ms,
 *                 str decision_rm (tm.decision_rm, "" when off; since version 5),
 *                 u32 decision_retention_ms (tm.decision_retention; since version 6)
 *   BEGIN      -> u8 protocol (0 default, 2, 3), u32 timeout_ms (0 default), u8 flags
 *                 (0, or XATM_BEGIN_RESERVE), u16 count (gtrids asked for: 0 without
 *                 XATM_BEGIN_RESERVE, 1..XATM_LEASE_MAX with it; since version 6)
 *   BEGIN_OK   <- str gtrid, u8 protocol, u32 timeout_ms, u16 count (1..XATM_LEASE_MAX:
 *                 gtrid and the count-1 gtrids of the next seqs; 1 for a plain BEGIN;
 *                 since version 6)
 *   ENLIST     -> str gtrid, str rm, u64 session_id                      (one-way)
 *   VOTE       -> str gtrid, u16 n, n x { str rm, u8 vote, u64 session_id }
 *   CANCOMMIT  -> the body of VOTE, decoded into u.vote (3PC's CanCommit answers)
 *   DECISION   <- str gtrid, u8 outcome, str reason(<=512)
 *   DONE       -> str gtrid, u8 outcome, u16 n, n x { str rm, i32 xa_rc } (one-way)
 *   ROLLBACK   -> str gtrid                                               (one-way)
 *   ERROR      <- i32 code (XATM_E*), str message(<=1024)
 *   ADMIN      -> str command(<=64), str arg(<=1024)
 *   ADMIN_REPLY<- i32 code, blob json
 *
 * Session references (the u64 session_id of ENLIST and VOTE; xatmd records it in its
 * transaction table and in COMMIT records). An RM session id alone is ambiguous: MariaDB
 * restarts its connection ids at 1 after every restart, so a recorded id can later name
 * an unrelated connection. The field therefore carries the server incarnation too:
 *
 *   bits 63..40  incarnation tag (24 bits): a hash of the server's start time and
 *                server id (rm.h, xatm_rm_caps.incarnation); 0 = not known
 *   bits 39..0   the session id on that server (MariaDB CONNECTION_ID(), PostgreSQL
 *                backend pid); 0 = no session
 *
 * A session of another incarnation than the server's current one is gone (it cannot be
 * connected any more). PostgreSQL sessions carry tag 0 (xatmd never waits for them). A
 * MariaDB session with tag 0 has no known incarnation: xatmd treats it as an unknown
 * session, never as a live one. xatm_session_ref() and its two accessors below are the
 * only code that packs or unpacks the field.
 *
 * Version 6 (this one) adds BEGIN's and BEGIN_OK's count: a reserving BEGIN leases a block of
 * consecutive gtrids to the connection (docs/protocol.md, "Gtrid leases"); and HELLO_OK's
 * decision_retention_ms, which libxatm's decider commit check uses when it is shorter than
 * its own config's.
 * Version 5 adds the DONE outcome 4, XATM_OUTCOME_COMMIT_DECIDED: the transaction
 * committed by "decision in a branch" (docs/protocols.md): its decider branch committed in
 * one phase with the decision row, nothing is in xatmd's log, and DONE may come while the
 * transaction is ACTIVE at xatmd (no VOTE was sent). Version 4 added BEGIN's flags byte: XATM_BEGIN_RESERVE asks for the gtrid of
 * the connection's NEXT transaction (one gtrid; since version 6 a lease of `count`). Version 3 added
 * three-phase commit (docs/protocols.md): the request CANCOMMIT
 * and the DECISION outcome 3 (precommit). Version 2 changed from version 1: session_id is
 * a session reference (above); VOTE may be answered ERROR XATM_EUNKNOWN.
 *
 * Field rules beyond the above, checked by both encode (XATM_EINVAL) and decode (EPROTO):
 *   - a str holds no NUL byte; limits without a number above are the struct's: gtrid
 *     <= XATM_GTRID_MAX, rm <= XATM_RM_NAME_MAX, tm_id <= XATM_TM_ID_MAX. The codec checks
 *     only lengths; whether a gtrid or RM name is well formed (xid.h) is the receiver's call.
 *   - role 1..2; vote 1..3; DONE outcome 1, 2 or 4, DECISION outcome 1..3; BEGIN protocol 0, 2 or 3; BEGIN flags 0 or 1; BEGIN count 0 with flags 0,
 *     1..XATM_LEASE_MAX with flags 1; BEGIN_OK count 1..XATM_LEASE_MAX; BEGIN_OK protocol and
 *     HELLO_OK default_protocol 2 or 3 (the TM answers with the protocol it resolved);
 *   - VOTE and DONE: n <= XATM_MAX_BRANCHES (0 is well formed);
 *   - ERROR code < 0 (any negative value: codes are append-only); ADMIN_REPLY code <= 0;
 *   - ADMIN_REPLY json is opaque bytes (may be empty; NULL with json_len 0 on encode).
 * The encoding is canonical: a body that decodes re-encodes to the identical bytes.
 */
#ifndef XATM_PROTO_H
#define XATM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "xid.h"

#define XATM_PROTO_VERSION 6
#define XATM_FRAME_HEADER_SIZE 12
#define XATM_FRAME_MAX_REQUEST (64u * 1024u)
#define XATM_FRAME_MAX_REPLY (16u * 1024u * 1024u)
#define XATM_BEGIN_RESERVE 0x01u /* BEGIN flags: reserve gtrids (a lease), start nothing yet */
#define XATM_LEASE_MAX 1024u     /* gtrids one reserving BEGIN may ask for (its count) */
#define XATM_MAX_BRANCHES 32 /* branches (RMs) per global transaction */
#define XATM_REASON_MAX 512
#define XATM_ERRMSG_MAX 1024
#define XATM_CLIENT_NAME_MAX 64
#define XATM_ADMIN_CMD_MAX 64
#define XATM_ADMIN_ARG_MAX 1024

enum xatm_msg_type {
    XATM_MSG_HELLO = 1,
    XATM_MSG_BEGIN = 2,
    XATM_MSG_ENLIST = 3,
    XATM_MSG_VOTE = 4,
    XATM_MSG_DONE = 5,
    XATM_MSG_ROLLBACK = 6,
    XATM_MSG_CANCOMMIT = 7, /* 3PC: the CanCommit answers; body as VOTE (u.vote) */
    XATM_MSG_ADMIN = 20,
    XATM_MSG_HELLO_OK = 64,
    XATM_MSG_BEGIN_OK = 65,
    XATM_MSG_DECISION = 66,
    XATM_MSG_ERROR = 67,
    XATM_MSG_ADMIN_REPLY = 68,
};

enum xatm_role { XATM_ROLE_AP = 1, XATM_ROLE_ADMIN = 2 };

/* A branch's phase-1 answer. */
enum xatm_vote { XATM_VOTE_YES = 1, XATM_VOTE_NO = 2, XATM_VOTE_READONLY = 3 };

/* A global transaction's outcome as carried by DECISION and DONE. */
enum xatm_outcome {
    XATM_OUTCOME_COMMIT = 1,
    XATM_OUTCOME_ABORT = 2,
    XATM_OUTCOME_PRECOMMIT = 3, /* DECISION only: 3PC PreCommit (PRECOMMIT is durable) */
    XATM_OUTCOME_COMMIT_DECIDED = 4, /* DONE only: committed, decided in the decider branch
                                        (tm.decision_rm); nothing in xatmd's log */
};

/* One entry of VOTE. */
typedef struct xatm_msg_vote_entry {
    char rm[XATM_RM_NAME_MAX + 1]; /* RM name (= bqual) */
    uint8_t vote;                  /* enum xatm_vote */
    uint64_t session_id;           /* RM session reference (see the file comment; 0 if none) */
} xatm_msg_vote_entry;

/* One entry of DONE. */
typedef struct xatm_msg_done_entry {
    char rm[XATM_RM_NAME_MAX + 1]; /* RM name */
    int32_t xa_rc;                 /* enum xatm_xa_rc result of the phase-2 call */
} xatm_msg_done_entry;

/* A decoded (or to-be-encoded) message. Only the member matching `type` is meaningful.
 * All strings are NUL-terminated copies, except admin_reply.json, which on decode points
 * into the frame body (valid while the body is) and on encode is read from the caller. */
typedef struct xatm_msg {
    uint8_t type; /* enum xatm_msg_type */
    union {
        struct { uint8_t role; uint32_t pid; char client_name[XATM_CLIENT_NAME_MAX + 1]; } hello;
        struct {
            char tm_id[XATM_TM_ID_MAX + 1];
            uint32_t epoch, format_id;
            uint8_t default_protocol;
            uint32_t timeout_ms;
            char decision_rm[XATM_RM_NAME_MAX + 1]; /* tm.decision_rm, "" when off */
            uint32_t decision_retention_ms;         /* tm.decision_retention */
        } hello_ok;
        struct { uint8_t protocol; uint32_t timeout_ms; uint8_t flags; uint16_t count; } begin;
        struct {
            char gtrid[XATM_GTRID_MAX + 1];
            uint8_t protocol;
            uint32_t timeout_ms;
            uint16_t count; /* gtrids leased from gtrid on (1: gtrid only) */
        } begin_ok;
        struct {
            char gtrid[XATM_GTRID_MAX + 1];
            char rm[XATM_RM_NAME_MAX + 1];
            uint64_t session_id; /* session reference (see the file comment) */
        } enlist;
        struct {
            char gtrid[XATM_GTRID_MAX + 1];
            uint16_t n;
            xatm_msg_vote_entry e[XATM_MAX_BRANCHES];
        } vote;
        struct {
            char gtrid[XATM_GTRID_MAX + 1];
            uint8_t outcome;
            char reason[XATM_REASON_MAX + 1];
        } decision;
        struct {
            char gtrid[XATM_GTRID_MAX + 1];
            uint8_t outcome;
            uint16_t n;
            xatm_msg_done_entry e[XATM_MAX_BRANCHES];
        } done;
        struct { char gtrid[XATM_GTRID_MAX + 1]; } rollback;
        struct { int32_t code; char message[XATM_ERRMSG_MAX + 1]; } error;
        struct { char command[XATM_ADMIN_CMD_MAX + 1]; char arg[XATM_ADMIN_ARG_MAX + 1]; } admin;
        struct { int32_t code; const char *json; uint32_t json_len; } admin_reply;
    } u;
} xatm_msg;

/* Session references (see the file comment). */
#define XATM_SESSION_ID_BITS 40
#define XATM_SESSION_ID_MASK ((UINT64_C(1) << XATM_SESSION_ID_BITS) - 1)
#define XATM_SESSION_TAG_MASK 0xFFFFFFu

/* The reference of session `id` of the server incarnation `tag` (24 bits used): 0 when
 * id is 0 or does not fit in 40 bits (then the session is unknown). */
static inline uint64_t xatm_session_ref(uint32_t tag, uint64_t id)
{
    if (id == 0 || id > XATM_SESSION_ID_MASK) return 0;
    return (uint64_t)(tag & XATM_SESSION_TAG_MASK) << XATM_SESSION_ID_BITS | id;
}

/* The session id part of a reference (what PROCESSLIST / pg_stat_activity show). */
static inline uint64_t xatm_session_ref_id(uint64_t ref)
{
    return ref & XATM_SESSION_ID_MASK;
}

/* The incarnation tag of a reference, 0 when not known. */
static inline uint32_t xatm_session_ref_tag(uint64_t ref)
{
    return (uint32_t)(ref >> XATM_SESSION_ID_BITS);
}

/* A decoded frame header. */
typedef struct xatm_frame_header {
    uint32_t body_len; /* bytes after the header */
    uint8_t version;   /* XATM_PROTO_VERSION */
    uint8_t type;      /* enum xatm_msg_type */
    uint16_t flags;    /* 0 */
    uint32_t req_id;   /* echoed by replies */
} xatm_frame_header;

/* Decodes the 12 header bytes at p (caller guarantees 12 are there). Checks version,
 * flags, a known type and body_len <= max_body. 0 or XATM_EPROTO. */
int xatm_frame_header_decode(const uint8_t *p, uint32_t max_body, xatm_frame_header *out);

/* Appends one whole frame (header + body) for m to out. 0, XATM_EINVAL (a field violates
 * its limit or an unknown type) or XATM_ENOMEM. */
int xatm_msg_encode(const xatm_msg *m, uint32_t req_id, xatm_buf *out);

/* Decodes a body of the type in h. 0 or XATM_EPROTO (any malformation, see above). */
int xatm_msg_decode(const xatm_frame_header *h, const uint8_t *body, xatm_msg *out);

/* "BEGIN", "VOTE"... or "UNKNOWN". */
const char *xatm_msg_type_name(uint8_t type);

/* true for the types a client sends (HELLO..ADMIN), false for replies and unknown types.
 * A server closes a connection that sends it a reply type, and vice versa. */
bool xatm_msg_is_request(uint8_t type);

#endif
