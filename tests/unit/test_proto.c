/*
 * test_proto.c — unit tests of the wire codec (common/proto.c): round trip of every
 * message (small and at every limit), the frame header checks, every malformation class
 * on decode and every refusal on encode, and a deterministic garbage loop of 200k random
 * and mutated bodies (each decoded from a buffer of exactly its size, so ASan catches any
 * read past body_len) checking the canonical-encoding property on whatever is accepted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "testutil.h"
#include "xatm.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static const uint8_t all_types[] = {
    XATM_MSG_HELLO,    XATM_MSG_BEGIN,    XATM_MSG_ENLIST,   XATM_MSG_VOTE,
    XATM_MSG_DONE,     XATM_MSG_ROLLBACK, XATM_MSG_ADMIN,    XATM_MSG_HELLO_OK,
    XATM_MSG_BEGIN_OK, XATM_MSG_DECISION, XATM_MSG_ERROR,    XATM_MSG_ADMIN_REPLY,
    XATM_MSG_CANCOMMIT,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* Fills s (an array of max+1) with max copies of c. */
static void fill(char *s, size_t max, char c)
{
    memset(s, c, max);
    s[max] = '\0';
}

static const char json_small[] = "{\"ok\":true}";

/* A valid message of type t; big = every string at its limit and every list full. */
static void sample(xatm_msg *m, uint8_t t, bool big)
{
    memset(m, 0, sizeof *m);
    m->type = t;
    switch (t) {
    case XATM_MSG_HELLO:
        m->u.hello.role = big ? XATM_ROLE_ADMIN : XATM_ROLE_AP;
        m->u.hello.pid = big ? UINT32_MAX : 4242;
        if (big) fill(m->u.hello.client_name, XATM_CLIENT_NAME_MAX, 'c');
        else strcpy(m->u.hello.client_name, "transfer");
        break;
    case XATM_MSG_HELLO_OK:
        if (big) fill(m->u.hello_ok.tm_id, XATM_TM_ID_MAX, 't');
        else strcpy(m->u.hello_ok.tm_id, "tm1");
        m->u.hello_ok.epoch = big ? UINT32_MAX : 7;
        m->u.hello_ok.format_id = 0x78614d31u;
        m->u.hello_ok.default_protocol = big ? 3 : 2;
        m->u.hello_ok.timeout_ms = big ? UINT32_MAX : 60000;
        if (big) fill(m->u.hello_ok.decision_rm, XATM_RM_NAME_MAX, 'd');
        else strcpy(m->u.hello_ok.decision_rm, "");
        m->u.hello_ok.decision_retention_ms = big ? UINT32_MAX : 86400000u;
        break;
    case XATM_MSG_BEGIN:
        m->u.begin.protocol = big ? 3 : 0;
        m->u.begin.timeout_ms = big ? UINT32_MAX : 0;
        m->u.begin.flags = big ? XATM_BEGIN_RESERVE : 0;
        m->u.begin.count = big ? XATM_LEASE_MAX : 0;
        break;
    case XATM_MSG_BEGIN_OK:
        if (big) fill(m->u.begin_ok.gtrid, XATM_GTRID_MAX, 'g');
        else strcpy(m->u.begin_ok.gtrid, "tm1.7.42");
        m->u.begin_ok.protocol = 2;
        m->u.begin_ok.timeout_ms = 5000;
        m->u.begin_ok.count = big ? XATM_LEASE_MAX : 1;
        break;
    case XATM_MSG_ENLIST:
        strcpy(m->u.enlist.gtrid, "tm1.7.42");
        if (big) fill(m->u.enlist.rm, XATM_RM_NAME_MAX, 'r');
        else strcpy(m->u.enlist.rm, "pg");
        m->u.enlist.session_id = big ? UINT64_MAX : 0;
        break;
    case XATM_MSG_VOTE:
    case XATM_MSG_CANCOMMIT: /* the same body (3PC) */
        strcpy(m->u.vote.gtrid, "tm1.7.42");
        m->u.vote.n = big ? XATM_MAX_BRANCHES : 2;
        for (unsigned i = 0; i < m->u.vote.n; i++) {
            if (big) fill(m->u.vote.e[i].rm, XATM_RM_NAME_MAX, (char)('a' + i % 26));
            else snprintf(m->u.vote.e[i].rm, sizeof m->u.vote.e[i].rm, "rm%u", i);
            m->u.vote.e[i].vote = (uint8_t)(1 + i % 3);
            m->u.vote.e[i].session_id = big ? UINT64_MAX - i : i;
        }
        break;
    case XATM_MSG_DECISION:
        strcpy(m->u.decision.gtrid, "tm1.7.42");
        m->u.decision.outcome = big ? XATM_OUTCOME_PRECOMMIT : XATM_OUTCOME_COMMIT;
        if (big) fill(m->u.decision.reason, XATM_REASON_MAX, 'x');
        break;
    case XATM_MSG_DONE:
        strcpy(m->u.done.gtrid, "tm1.7.42");
        m->u.done.outcome = XATM_OUTCOME_COMMIT;
        m->u.done.n = big ? XATM_MAX_BRANCHES : 1;
        for (unsigned i = 0; i < m->u.done.n; i++) {
            if (big) fill(m->u.done.e[i].rm, XATM_RM_NAME_MAX, (char)('A' + i % 26));
            else strcpy(m->u.done.e[i].rm, "my");
            m->u.done.e[i].xa_rc = big ? (i % 2 ? INT32_MIN : INT32_MAX) : -4;
        }
        break;
    case XATM_MSG_ROLLBACK:
        if (big) fill(m->u.rollback.gtrid, XATM_GTRID_MAX, 'z');
        else strcpy(m->u.rollback.gtrid, "tm1.7.42");
        break;
    case XATM_MSG_ERROR:
        m->u.error.code = big ? INT32_MIN : XATM_ESTATE;
        if (big) fill(m->u.error.message, XATM_ERRMSG_MAX, 'e');
        else strcpy(m->u.error.message, "no transaction");
        break;
    case XATM_MSG_ADMIN:
        if (big) fill(m->u.admin.command, XATM_ADMIN_CMD_MAX, 'k');
        else strcpy(m->u.admin.command, "status");
        if (big) fill(m->u.admin.arg, XATM_ADMIN_ARG_MAX, 'q');
        break;
    case XATM_MSG_ADMIN_REPLY:
        m->u.admin_reply.code = big ? XATM_ENOTFOUND : 0;
        m->u.admin_reply.json = big ? NULL : json_small;
        m->u.admin_reply.json_len = big ? 0 : (uint32_t)strlen(json_small);
        break;
    }
}

/* Field-by-field equality of two messages of the same type. */
static bool msg_equal(const xatm_msg *a, const xatm_msg *b)
{
    if (a->type != b->type) return false;
    switch (a->type) {
    case XATM_MSG_HELLO:
        return a->u.hello.role == b->u.hello.role && a->u.hello.pid == b->u.hello.pid &&
               !strcmp(a->u.hello.client_name, b->u.hello.client_name);
    case XATM_MSG_HELLO_OK:
        return !strcmp(a->u.hello_ok.tm_id, b->u.hello_ok.tm_id) &&
               a->u.hello_ok.epoch == b->u.hello_ok.epoch &&
               a->u.hello_ok.format_id == b->u.hello_ok.format_id &&
               a->u.hello_ok.default_protocol == b->u.hello_ok.default_protocol &&
               a->u.hello_ok.timeout_ms == b->u.hello_ok.timeout_ms &&
               !strcmp(a->u.hello_ok.decision_rm, b->u.hello_ok.decision_rm) &&
               a->u.hello_ok.decision_retention_ms == b->u.hello_ok.decision_retention_ms;
    case XATM_MSG_BEGIN:
        return a->u.begin.protocol == b->u.begin.protocol &&
               a->u.begin.timeout_ms == b->u.begin.timeout_ms &&
               a->u.begin.flags == b->u.begin.flags && a->u.begin.count == b->u.begin.count;
    case XATM_MSG_BEGIN_OK:
        return !strcmp(a->u.begin_ok.gtrid, b->u.begin_ok.gtrid) &&
               a->u.begin_ok.protocol == b->u.begin_ok.protocol &&
               a->u.begin_ok.timeout_ms == b->u.begin_ok.timeout_ms &&
               a->u.begin_ok.count == b->u.begin_ok.count;
    case XATM_MSG_ENLIST:
        return !strcmp(a->u.enlist.gtrid, b->u.enlist.gtrid) &&
               !strcmp(a->u.enlist.rm, b->u.enlist.rm) &&
               a->u.enlist.session_id == b->u.enlist.session_id;
    case XATM_MSG_VOTE:
    case XATM_MSG_CANCOMMIT:
        if (strcmp(a->u.vote.gtrid, b->u.vote.gtrid) || a->u.vote.n != b->u.vote.n) return false;
        for (unsigned i = 0; i < a->u.vote.n; i++)
            if (strcmp(a->u.vote.e[i].rm, b->u.vote.e[i].rm) ||
                a->u.vote.e[i].vote != b->u.vote.e[i].vote ||
                a->u.vote.e[i].session_id != b->u.vote.e[i].session_id)
                return false;
        return true;
    case XATM_MSG_DECISION:
        return !strcmp(a->u.decision.gtrid, b->u.decision.gtrid) &&
               a->u.decision.outcome == b->u.decision.outcome &&
               !strcmp(a->u.decision.reason, b->u.decision.reason);
    case XATM_MSG_DONE:
        if (strcmp(a->u.done.gtrid, b->u.done.gtrid) || a->u.done.outcome != b->u.done.outcome ||
            a->u.done.n != b->u.done.n)
            return false;
        for (unsigned i = 0; i < a->u.done.n; i++)
            if (strcmp(a->u.done.e[i].rm, b->u.done.e[i].rm) ||
                a->u.done.e[i].xa_rc != b->u.done.e[i].xa_rc)
                return false;
        return true;
    case XATM_MSG_ROLLBACK:
        return !strcmp(a->u.rollback.gtrid, b->u.rollback.gtrid);
    case XATM_MSG_ERROR:
        return a->u.error.code == b->u.error.code &&
               !strcmp(a->u.error.message, b->u.error.message);
    case XATM_MSG_ADMIN:
        return !strcmp(a->u.admin.command, b->u.admin.command) &&
               !strcmp(a->u.admin.arg, b->u.admin.arg);
    case XATM_MSG_ADMIN_REPLY:
        return a->u.admin_reply.code == b->u.admin_reply.code &&
               a->u.admin_reply.json_len == b->u.admin_reply.json_len &&
               (a->u.admin_reply.json_len == 0 ||
                !memcmp(a->u.admin_reply.json, b->u.admin_reply.json, a->u.admin_reply.json_len));
    }
    return false;
}

static uint32_t max_for(uint8_t type)
{
    return xatm_msg_is_request(type) ? XATM_FRAME_MAX_REQUEST : XATM_FRAME_MAX_REPLY;
}

/* Decodes body[0..len) as type t from a heap copy of exactly len bytes. */
static int decode_exact(uint8_t t, const uint8_t *body, uint32_t len, xatm_msg *out)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (len) memcpy(copy, body, len);
    xatm_frame_header h = {.body_len = len, .version = XATM_PROTO_VERSION, .type = t};
    int rc = xatm_msg_decode(&h, len ? copy : NULL, out);
    /* admin_reply.json points into the copy: callers compare before we free, so copy out */
    if (rc == 0 && t == XATM_MSG_ADMIN_REPLY) {
        static char keep[1 << 16];
        uint32_t n = out->u.admin_reply.json_len;
        if (n <= sizeof keep) {
            if (n) memcpy(keep, out->u.admin_reply.json, n);
            out->u.admin_reply.json = keep;
        }
    }
    free(copy);
    return rc;
}

/* Encodes m; points body at the bytes after the 12-byte header (inside b) and sets len. */
static int encode_body(const xatm_msg *m, xatm_buf *b, const uint8_t **body, uint32_t *len)
{
    b->len = 0;
    int rc = xatm_msg_encode(m, 77, b);
    if (rc) return rc;
    *body = b->data + XATM_FRAME_HEADER_SIZE;
    *len = (uint32_t)(b->len - XATM_FRAME_HEADER_SIZE);
    return 0;
}

static void test_round_trip(void)
{
    xatm_buf b = {0};
    for (size_t i = 0; i < N_TYPES; i++) {
        for (int big = 0; big < 2; big++) {
            xatm_msg m, d;
            sample(&m, all_types[i], big);
            CHECK_INT(xatm_msg_encode(&m, 0xdeadbeefu, &b), 0);
            CHECK(b.len >= XATM_FRAME_HEADER_SIZE);
            xatm_frame_header h;
            CHECK_INT(xatm_frame_header_decode(b.data, max_for(m.type), &h), 0);
            CHECK_INT(h.type, m.type);
            CHECK_INT(h.version, XATM_PROTO_VERSION);
            CHECK_INT(h.flags, 0);
            CHECK(h.req_id == 0xdeadbeefu);
            CHECK(h.body_len == b.len - XATM_FRAME_HEADER_SIZE);
            CHECK_INT(decode_exact(h.type, b.data + XATM_FRAME_HEADER_SIZE, h.body_len, &d), 0);
            if (!msg_equal(&m, &d))
                fprintf(stderr, "round trip mismatch: %s big=%d\n", xatm_msg_type_name(m.type), big);
            CHECK(msg_equal(&m, &d));
            b.len = 0;
        }
    }

    /* two frames appended to one buffer keep the first intact */
    xatm_msg m;
    sample(&m, XATM_MSG_BEGIN, false);
    CHECK_INT(xatm_msg_encode(&m, 1, &b), 0);
    size_t first = b.len;
    sample(&m, XATM_MSG_ROLLBACK, false);
    CHECK_INT(xatm_msg_encode(&m, 2, &b), 0);
    xatm_frame_header h1, h2;
    CHECK_INT(xatm_frame_header_decode(b.data, XATM_FRAME_MAX_REQUEST, &h1), 0);
    CHECK_INT(xatm_frame_header_decode(b.data + first, XATM_FRAME_MAX_REQUEST, &h2), 0);
    CHECK_INT(h1.type, XATM_MSG_BEGIN);
    CHECK_INT(h2.type, XATM_MSG_ROLLBACK);
    CHECK_INT(h2.req_id, 2);

    /* exact bytes of one frame, so the layout in proto.h is pinned down */
    b.len = 0;
    xatm_msg e = {.type = XATM_MSG_ENLIST};
    strcpy(e.u.enlist.gtrid, "t.1.2");
    strcpy(e.u.enlist.rm, "pg");
    e.u.enlist.session_id = 0x0102030405060708ull;
    CHECK_INT(xatm_msg_encode(&e, 0x0a0b0c0du, &b), 0);
    static const uint8_t want[] = {
        0, 0, 0, 19, XATM_PROTO_VERSION, 3, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d, /* header */
        0, 5, 't', '.', '1', '.', '2', 0, 2, 'p', 'g', 1, 2, 3, 4, 5, 6, 7, 8, /* body */
    };
    CHECK_INT(b.len, sizeof want);
    CHECK(b.len == sizeof want && memcmp(b.data, want, sizeof want) == 0);

    /* a negative i32 is two's complement on the wire */
    b.len = 0;
    xatm_msg er = {.type = XATM_MSG_ERROR};
    er.u.error.code = -1;
    CHECK_INT(xatm_msg_encode(&er, 0, &b), 0);
    CHECK(b.len == 18 && b.data[12] == 0xff && b.data[15] == 0xff && b.data[16] == 0 && b.data[17] == 0);

    /* zero-entry VOTE / DONE are well formed */
    sample(&m, XATM_MSG_VOTE, false);
    m.u.vote.n = 0;
    const uint8_t *body = NULL;
    uint32_t len = 0;
    xatm_msg d;
    CHECK_INT(encode_body(&m, &b, &body, &len), 0);
    CHECK_INT(decode_exact(XATM_MSG_VOTE, body, len, &d), 0);
    CHECK_INT(d.u.vote.n, 0);
    xatm_buf_free(&b);
}

/* Protocol 3: CANCOMMIT carries VOTE's body byte for byte (decoded into u.vote), and a
 * DECISION may carry every outcome 1..3 (precommit only there). */
static void test_3pc_messages(void)
{
    xatm_buf bv = {0}, bc = {0};
    xatm_msg m, d;
    sample(&m, XATM_MSG_VOTE, true);
    CHECK_INT(xatm_msg_encode(&m, 5, &bv), 0);
    m.type = XATM_MSG_CANCOMMIT;
    CHECK_INT(xatm_msg_encode(&m, 5, &bc), 0);
    CHECK(bv.len == bc.len);
    CHECK(bc.data[5] == XATM_MSG_CANCOMMIT && bv.data[5] == XATM_MSG_VOTE);
    CHECK(memcmp(bv.data + XATM_FRAME_HEADER_SIZE, bc.data + XATM_FRAME_HEADER_SIZE,
                 bv.len - XATM_FRAME_HEADER_SIZE) == 0);
    CHECK(bc.data[4] == 6); /* version 6 */
    xatm_frame_header h;
    CHECK_INT(xatm_frame_header_decode(bc.data, XATM_FRAME_MAX_REQUEST, &h), 0);
    CHECK_INT(xatm_msg_decode(&h, bc.data + XATM_FRAME_HEADER_SIZE, &d), 0);
    CHECK_INT(d.type, XATM_MSG_CANCOMMIT);
    CHECK(msg_equal(&m, &d));
    xatm_buf_free(&bv);
    xatm_buf_free(&bc);

    for (uint8_t o = XATM_OUTCOME_COMMIT; o <= XATM_OUTCOME_PRECOMMIT; o++) {
        xatm_buf b = {0};
        sample(&m, XATM_MSG_DECISION, false);
        m.u.decision.outcome = o;
        CHECK_INT(xatm_msg_encode(&m, 9, &b), 0);
        CHECK_INT(xatm_frame_header_decode(b.data, XATM_FRAME_MAX_REPLY, &h), 0);
        CHECK_INT(xatm_msg_decode(&h, b.data + XATM_FRAME_HEADER_SIZE, &d), 0);
        CHECK_INT(d.u.decision.outcome, o);
        xatm_buf_free(&b);
    }
    /* version 2, 3 and 4 frames (the previous protocols) are refused */
    uint8_t hdr[12] = {0, 0, 0, 0, 2, XATM_MSG_CANCOMMIT, 0, 0, 0, 0, 0, 1};
    CHECK_INT(xatm_frame_header_decode(hdr, XATM_FRAME_MAX_REQUEST, &h), XATM_EPROTO);
    hdr[4] = 3;
    CHECK_INT(xatm_frame_header_decode(hdr, XATM_FRAME_MAX_REQUEST, &h), XATM_EPROTO);
    hdr[4] = 4;
    CHECK_INT(xatm_frame_header_decode(hdr, XATM_FRAME_MAX_REQUEST, &h), XATM_EPROTO);
    hdr[4] = 5; /* version 5 had no lease counts */
    CHECK_INT(xatm_frame_header_decode(hdr, XATM_FRAME_MAX_REQUEST, &h), XATM_EPROTO);
}

static void test_header(void)
{
    uint8_t p[12] = {0, 0, 0, 5, XATM_PROTO_VERSION, XATM_MSG_BEGIN, 0, 0, 0, 0, 0, 9};
    xatm_frame_header h;
    memset(&h, 0x77, sizeof h);
    CHECK_INT(xatm_frame_header_decode(p, XATM_FRAME_MAX_REQUEST, &h), 0);
    CHECK_INT(h.body_len, 5);
    CHECK_INT(h.req_id, 9);

    uint8_t q[12];
    xatm_frame_header untouched;
    memset(&untouched, 0x77, sizeof untouched);
    /* bad version */
    int versions_accepted = 0, touched = 0;
    for (int v = 0; v < 256; v++) {
        if (v == XATM_PROTO_VERSION) continue;
        memcpy(q, p, 12);
        q[4] = (uint8_t)v;
        memset(&h, 0x77, sizeof h);
        if (xatm_frame_header_decode(q, XATM_FRAME_MAX_REQUEST, &h) != XATM_EPROTO)
            versions_accepted++;
        if (memcmp(&h, &untouched, sizeof h) != 0) touched++; /* out untouched on failure */
    }
    CHECK_INT(versions_accepted, 0);
    CHECK_INT(touched, 0);
    /* nonzero flags, each bit */
    for (int bit = 0; bit < 16; bit++) {
        memcpy(q, p, 12);
        q[6] = (uint8_t)((1u << bit) >> 8);
        q[7] = (uint8_t)(1u << bit);
        CHECK_INT(xatm_frame_header_decode(q, XATM_FRAME_MAX_REQUEST, &h), XATM_EPROTO);
    }
    /* every unknown type */
    int known = 0, type_wrong = 0;
    for (int t = 0; t < 256; t++) {
        memcpy(q, p, 12);
        q[5] = (uint8_t)t;
        int rc = xatm_frame_header_decode(q, XATM_FRAME_MAX_REQUEST, &h);
        bool is_known = strcmp(xatm_msg_type_name((uint8_t)t), "UNKNOWN") != 0;
        known += is_known;
        if (rc != (is_known ? 0 : XATM_EPROTO)) type_wrong++;
    }
    CHECK_INT(known, (int)N_TYPES);
    CHECK_INT(type_wrong, 0);
    /* oversize, and the exact limit */
    memcpy(q, p, 12);
    q[0] = 0;
    q[1] = 1;
    q[2] = 0;
    q[3] = 0; /* 65536 */
    CHECK_INT(xatm_frame_header_decode(q, XATM_FRAME_MAX_REQUEST, &h), 0);
    q[3] = 1; /* 65537 */
    CHECK_INT(xatm_frame_header_decode(q, XATM_FRAME_MAX_REQUEST, &h), XATM_EPROTO);
    CHECK_INT(xatm_frame_header_decode(q, XATM_FRAME_MAX_REPLY, &h), 0);
    q[0] = 0xff; /* ~4 GiB */
    CHECK_INT(xatm_frame_header_decode(q, XATM_FRAME_MAX_REPLY, &h), XATM_EPROTO);

    /* decode re-checks what it is given */
    xatm_msg m;
    uint8_t body[8] = {0};
    xatm_frame_header bh = {.body_len = 8, .version = XATM_PROTO_VERSION, .type = 99};
    CHECK_INT(xatm_msg_decode(&bh, body, &m), XATM_EPROTO);
    bh.type = XATM_MSG_BEGIN;
    bh.version = 1; /* version 1 peers are refused: session ids changed meaning in 2 */
    CHECK_INT(xatm_msg_decode(&bh, body, &m), XATM_EPROTO);
    bh.version = XATM_PROTO_VERSION;
    bh.flags = 1;
    CHECK_INT(xatm_msg_decode(&bh, body, &m), XATM_EPROTO);
    bh.flags = 0;
    bh.body_len = XATM_FRAME_MAX_REQUEST + 1; /* request over its direction's limit */
    CHECK_INT(xatm_msg_decode(&bh, body, &m), XATM_EPROTO);
    bh.body_len = 8;
    CHECK_INT(xatm_msg_decode(&bh, body, &m), 0);
    CHECK_INT(xatm_msg_decode(NULL, body, &m), XATM_EPROTO);
    CHECK_INT(xatm_msg_decode(&bh, NULL, &m), XATM_EPROTO);
}

static void test_names(void)
{
    CHECK_STR(xatm_msg_type_name(XATM_MSG_HELLO), "HELLO");
    CHECK_STR(xatm_msg_type_name(XATM_MSG_BEGIN), "BEGIN");
    CHECK_STR(xatm_msg_type_name(XATM_MSG_ENLIST), "ENLIST");
    CHECK_STR(xatm_msg_type_name(XATM_MSG_VOTE), "VOTE");
    CHECK_STR(xatm_msg_type_name(XATM_MSG_DONE), "DONE");
    CHECK_STR(xatm_msg_type_name(XATM_MSG_ROLLBACK), "ROLLBACK");
    CHECK_STR(xatm_msg_type_name(XATM_MSG_CANCOMMIT), "CANCOMMIT");
    CHECK(xatm_msg_is_request(XATM_MSG_CANCOMMIT));
    CHECK_STR(xatm_msg_type_name(XATM_MSG_ADMIN), "ADMIN");
    CHECK_STR(xatm_msg_type_name(XATM_MSG_HELLO_OK), "HELLO_OK");
    CHECK_STR(xatm_msg_type_name(XATM_MSG_BEGIN_OK), "BEGIN_OK");
    CHECK_STR(xatm_msg_type_name(XATM_MSG_DECISION), "DECISION");
    CHECK_STR(xatm_msg_type_name(XATM_MSG_ERROR), "ERROR");
    CHECK_STR(xatm_msg_type_name(XATM_MSG_ADMIN_REPLY), "ADMIN_REPLY");
    CHECK_STR(xatm_msg_type_name(0), "UNKNOWN");
    CHECK_STR(xatm_msg_type_name(255), "UNKNOWN");
    CHECK(xatm_msg_is_request(XATM_MSG_VOTE));
    CHECK(xatm_msg_is_request(XATM_MSG_ADMIN));
    CHECK(!xatm_msg_is_request(XATM_MSG_DECISION));
    CHECK(!xatm_msg_is_request(XATM_MSG_ADMIN_REPLY));
    CHECK(!xatm_msg_is_request(0));
}

/* Encodes m, which must be refused with XATM_EINVAL, leaving the buffer as it was. */
static void expect_encode_refused(const xatm_msg *m, const char *what)
{
    xatm_buf b = {0};
    xatm_buf_append(&b, "prefix", 6);
    int rc = xatm_msg_encode(m, 1, &b);
    if (rc != XATM_EINVAL) fprintf(stderr, "encode accepted: %s\n", what);
    CHECK_INT(rc, XATM_EINVAL);
    CHECK(b.len == 6 && memcmp(b.data, "prefix", 6) == 0);
    xatm_buf_free(&b);
}

static void test_encode_refusals(void)
{
    xatm_msg m;
    sample(&m, XATM_MSG_BEGIN, false);
    m.type = 0;
    expect_encode_refused(&m, "type 0");
    m.type = 8;
    expect_encode_refused(&m, "type 8");

    /* every string field one byte over its limit (the array full, no NUL inside it) */
    sample(&m, XATM_MSG_HELLO, false);
    memset(m.u.hello.client_name, 'a', sizeof m.u.hello.client_name);
    expect_encode_refused(&m, "client_name");
    sample(&m, XATM_MSG_HELLO_OK, false);
    memset(m.u.hello_ok.tm_id, 'a', sizeof m.u.hello_ok.tm_id);
    expect_encode_refused(&m, "tm_id");
    sample(&m, XATM_MSG_BEGIN_OK, false);
    memset(m.u.begin_ok.gtrid, 'a', sizeof m.u.begin_ok.gtrid);
    expect_encode_refused(&m, "begin_ok gtrid");
    sample(&m, XATM_MSG_ENLIST, false);
    memset(m.u.enlist.rm, 'a', sizeof m.u.enlist.rm);
    expect_encode_refused(&m, "enlist rm");
    sample(&m, XATM_MSG_VOTE, false);
    memset(m.u.vote.e[1].rm, 'a', sizeof m.u.vote.e[1].rm);
    expect_encode_refused(&m, "vote rm");
    sample(&m, XATM_MSG_DECISION, false);
    memset(m.u.decision.reason, 'a', sizeof m.u.decision.reason);
    expect_encode_refused(&m, "reason");
    sample(&m, XATM_MSG_DONE, false);
    memset(m.u.done.gtrid, 'a', sizeof m.u.done.gtrid);
    expect_encode_refused(&m, "done gtrid");
    sample(&m, XATM_MSG_ERROR, false);
    memset(m.u.error.message, 'a', sizeof m.u.error.message);
    expect_encode_refused(&m, "error message");
    sample(&m, XATM_MSG_ADMIN, false);
    memset(m.u.admin.command, 'a', sizeof m.u.admin.command);
    expect_encode_refused(&m, "admin command");
    sample(&m, XATM_MSG_ADMIN, false);
    memset(m.u.admin.arg, 'a', sizeof m.u.admin.arg);
    expect_encode_refused(&m, "admin arg");

    /* enums */
    sample(&m, XATM_MSG_HELLO, false);
    m.u.hello.role = 0;
    expect_encode_refused(&m, "role 0");
    m.u.hello.role = 3;
    expect_encode_refused(&m, "role 3");
    sample(&m, XATM_MSG_BEGIN, false);
    m.u.begin.protocol = 1;
    expect_encode_refused(&m, "begin protocol 1");
    m.u.begin.protocol = 4;
    expect_encode_refused(&m, "begin protocol 4");
    sample(&m, XATM_MSG_BEGIN_OK, false);
    m.u.begin_ok.protocol = 0;
    expect_encode_refused(&m, "begin_ok protocol 0");
    /* lease counts: 0 without XATM_BEGIN_RESERVE, 1..XATM_LEASE_MAX with it */
    sample(&m, XATM_MSG_BEGIN, false);
    m.u.begin.count = 1;
    expect_encode_refused(&m, "begin count 1 without reserve");
    m.u.begin.flags = XATM_BEGIN_RESERVE;
    m.u.begin.count = 0;
    expect_encode_refused(&m, "begin reserve count 0");
    m.u.begin.count = XATM_LEASE_MAX + 1;
    expect_encode_refused(&m, "begin reserve count over the maximum");
    sample(&m, XATM_MSG_BEGIN_OK, false);
    m.u.begin_ok.count = 0;
    expect_encode_refused(&m, "begin_ok count 0");
    m.u.begin_ok.count = XATM_LEASE_MAX + 1;
    expect_encode_refused(&m, "begin_ok count over the maximum");
    sample(&m, XATM_MSG_HELLO_OK, false);
    m.u.hello_ok.default_protocol = 1;
    expect_encode_refused(&m, "default_protocol 1");
    sample(&m, XATM_MSG_VOTE, false);
    m.u.vote.e[0].vote = 0;
    expect_encode_refused(&m, "vote 0");
    m.u.vote.e[0].vote = 4;
    expect_encode_refused(&m, "vote 4");
    sample(&m, XATM_MSG_DECISION, false);
    m.u.decision.outcome = 4;
    expect_encode_refused(&m, "outcome 4");
    m.u.decision.outcome = 0;
    expect_encode_refused(&m, "outcome 0");
    sample(&m, XATM_MSG_DONE, false);
    m.u.done.outcome = 0;
    expect_encode_refused(&m, "done outcome 0");
    m.u.done.outcome = XATM_OUTCOME_PRECOMMIT; /* DECISION only */
    expect_encode_refused(&m, "done outcome 3");
    m.u.done.outcome = 5;
    expect_encode_refused(&m, "done outcome 5");
    {
        /* version 5: DONE may say "committed, decided in the decider branch" */
        xatm_buf b = {0};
        xatm_frame_header dh;
        xatm_msg dd;
        m.u.done.outcome = XATM_OUTCOME_COMMIT_DECIDED;
        CHECK_INT(xatm_msg_encode(&m, 3, &b), 0);
        CHECK_INT(xatm_frame_header_decode(b.data, XATM_FRAME_MAX_REQUEST, &dh), 0);
        CHECK_INT(xatm_msg_decode(&dh, b.data + XATM_FRAME_HEADER_SIZE, &dd), 0);
        CHECK_INT(dd.u.done.outcome, XATM_OUTCOME_COMMIT_DECIDED);
        xatm_buf_free(&b);
    }
    sample(&m, XATM_MSG_CANCOMMIT, false);
    m.u.vote.e[1].vote = 4;
    expect_encode_refused(&m, "cancommit vote 4");
    sample(&m, XATM_MSG_CANCOMMIT, true);
    m.u.vote.n = XATM_MAX_BRANCHES + 1;
    expect_encode_refused(&m, "cancommit n 33");

    /* counts */
    sample(&m, XATM_MSG_VOTE, true);
    m.u.vote.n = XATM_MAX_BRANCHES + 1;
    expect_encode_refused(&m, "vote n 33");
    sample(&m, XATM_MSG_DONE, true);
    m.u.done.n = 0xffff;
    expect_encode_refused(&m, "done n 65535");

    /* codes */
    sample(&m, XATM_MSG_ERROR, false);
    m.u.error.code = 0;
    expect_encode_refused(&m, "error code 0");
    m.u.error.code = 5;
    expect_encode_refused(&m, "error code 5");
    sample(&m, XATM_MSG_ADMIN_REPLY, false);
    m.u.admin_reply.code = 1;
    expect_encode_refused(&m, "admin_reply code 1");

    /* the blob */
    sample(&m, XATM_MSG_ADMIN_REPLY, false);
    m.u.admin_reply.json = NULL;
    m.u.admin_reply.json_len = 3;
    expect_encode_refused(&m, "json NULL");
    m.u.admin_reply.json = json_small;
    m.u.admin_reply.json_len = XATM_FRAME_MAX_REPLY; /* body would be 8 over; never read */
    expect_encode_refused(&m, "json too long");

    /* the largest reply fits exactly */
    char *big = malloc(XATM_FRAME_MAX_REPLY - 8);
    memset(big, '{', XATM_FRAME_MAX_REPLY - 8);
    m.u.admin_reply.json = big;
    m.u.admin_reply.json_len = XATM_FRAME_MAX_REPLY - 8;
    xatm_buf b = {0};
    CHECK_INT(xatm_msg_encode(&m, 1, &b), 0);
    CHECK(b.len == XATM_FRAME_HEADER_SIZE + XATM_FRAME_MAX_REPLY);
    xatm_frame_header h;
    CHECK_INT(xatm_frame_header_decode(b.data, XATM_FRAME_MAX_REPLY, &h), 0);
    xatm_msg d;
    CHECK_INT(xatm_msg_decode(&h, b.data + XATM_FRAME_HEADER_SIZE, &d), 0);
    CHECK(d.u.admin_reply.json == (const char *)b.data + XATM_FRAME_HEADER_SIZE + 8);
    xatm_buf_free(&b);
    free(big);

    CHECK_INT(xatm_msg_encode(NULL, 1, &b), XATM_EINVAL);
}

/* A body built by hand: bytes appended in order. */
typedef struct body {
    uint8_t b[4096]; /* bytes */
    uint32_t n;      /* used */
} body;

static void b_u8(body *x, uint8_t v) { x->b[x->n++] = v; }
static void b_u16(body *x, uint16_t v) { b_u8(x, (uint8_t)(v >> 8)); b_u8(x, (uint8_t)v); }
static void b_u32(body *x, uint32_t v) { b_u16(x, (uint16_t)(v >> 16)); b_u16(x, (uint16_t)v); }
static void b_u64(body *x, uint64_t v) { b_u32(x, (uint32_t)(v >> 32)); b_u32(x, (uint32_t)v); }
static void b_strn(body *x, const char *s, uint16_t n) { b_u16(x, n); memcpy(x->b + x->n, s, n); x->n += n; }
static void b_str(body *x, const char *s) { b_strn(x, s, (uint16_t)strlen(s)); }
static void b_rep(body *x, char c, uint16_t n) { b_u16(x, n); memset(x->b + x->n, c, n); x->n += n; }

static void expect_decode(uint8_t t, const body *x, int want, const char *what)
{
    xatm_msg m;
    int rc = decode_exact(t, x->b, x->n, &m);
    if (rc != want) fprintf(stderr, "decode %s: %s -> %d, want %d\n", xatm_msg_type_name(t), what, rc, want);
    CHECK_INT(rc, want);
}

static void test_decode_malformed(void)
{
    xatm_buf b = {0};

    /* truncation at every length and one trailing byte, for every sample */
    int trunc_bad = 0, trail_bad = 0;
    for (size_t i = 0; i < N_TYPES; i++) {
        for (int big = 0; big < 2; big++) {
            xatm_msg m, d;
            const uint8_t *bd = NULL;
            uint32_t len = 0;
            sample(&m, all_types[i], big);
            CHECK_INT(encode_body(&m, &b, &bd, &len), 0);
            for (uint32_t cut = 0; cut < len; cut++)
                if (decode_exact(m.type, bd, cut, &d) != XATM_EPROTO) trunc_bad++;
            uint8_t *longer = malloc(len + 1);
            memcpy(longer, bd, len);
            longer[len] = 0;
            if (decode_exact(m.type, longer, len + 1, &d) != XATM_EPROTO) trail_bad++;
            free(longer);
        }
    }
    CHECK_INT(trunc_bad, 0);
    CHECK_INT(trail_bad, 0);
    xatm_buf_free(&b);

    body x;
    /* strings over their limits */
    x.n = 0; b_u8(&x, 1); b_u32(&x, 1); b_rep(&x, 'a', 64);
    expect_decode(XATM_MSG_HELLO, &x, 0, "client_name 64");
    x.n = 0; b_u8(&x, 1); b_u32(&x, 1); b_rep(&x, 'a', 65);
    expect_decode(XATM_MSG_HELLO, &x, XATM_EPROTO, "client_name 65");
    x.n = 0; b_rep(&x, 't', 17); b_u32(&x, 1); b_u32(&x, 2); b_u8(&x, 2); b_u32(&x, 0);
    expect_decode(XATM_MSG_HELLO_OK, &x, XATM_EPROTO, "tm_id 17");
    x.n = 0; b_str(&x, "tm1"); b_u32(&x, 1); b_u32(&x, 2); b_u8(&x, 2); b_u32(&x, 0);
    b_rep(&x, 'd', 32); b_u32(&x, 1000);
    expect_decode(XATM_MSG_HELLO_OK, &x, 0, "decision_rm 32");
    x.n = 0; b_str(&x, "tm1"); b_u32(&x, 1); b_u32(&x, 2); b_u8(&x, 2); b_u32(&x, 0);
    b_rep(&x, 'd', 33); b_u32(&x, 1000);
    expect_decode(XATM_MSG_HELLO_OK, &x, XATM_EPROTO, "decision_rm 33");
    x.n = 0; b_str(&x, "tm1"); b_u32(&x, 1); b_u32(&x, 2); b_u8(&x, 2); b_u32(&x, 0);
    b_str(&x, "pg");
    expect_decode(XATM_MSG_HELLO_OK, &x, XATM_EPROTO, "HELLO_OK of version 5 (no retention)");
    x.n = 0; b_str(&x, "tm1"); b_u32(&x, 1); b_u32(&x, 2); b_u8(&x, 2); b_u32(&x, 0);
    expect_decode(XATM_MSG_HELLO_OK, &x, XATM_EPROTO, "HELLO_OK of version 4 (no decision_rm)");
    x.n = 0; b_rep(&x, 'g', 65); b_u8(&x, 2); b_u32(&x, 0); b_u16(&x, 1);
    expect_decode(XATM_MSG_BEGIN_OK, &x, XATM_EPROTO, "gtrid 65");
    x.n = 0; b_str(&x, "tm1.1.1"); b_rep(&x, 'r', 33); b_u64(&x, 0);
    expect_decode(XATM_MSG_ENLIST, &x, XATM_EPROTO, "rm 33");
    x.n = 0; b_str(&x, "tm1.1.1"); b_u8(&x, 1); b_rep(&x, 'r', 512);
    expect_decode(XATM_MSG_DECISION, &x, 0, "reason 512");
    x.n = 0; b_str(&x, "tm1.1.1"); b_u8(&x, 1); b_rep(&x, 'r', 513);
    expect_decode(XATM_MSG_DECISION, &x, XATM_EPROTO, "reason 513");
    x.n = 0; b_u32(&x, (uint32_t)-3); b_rep(&x, 'm', 1025);
    expect_decode(XATM_MSG_ERROR, &x, XATM_EPROTO, "message 1025");
    x.n = 0; b_rep(&x, 'c', 65); b_str(&x, "");
    expect_decode(XATM_MSG_ADMIN, &x, XATM_EPROTO, "command 65");
    x.n = 0; b_str(&x, "status"); b_rep(&x, 'a', 1025);
    expect_decode(XATM_MSG_ADMIN, &x, XATM_EPROTO, "arg 1025");
    x.n = 0; b_str(&x, "status"); b_rep(&x, 'a', 1024);
    expect_decode(XATM_MSG_ADMIN, &x, 0, "arg 1024");
    /* lease counts (version 6): BEGIN's and BEGIN_OK's u16 count, each value's fate */
    {
        int begin_bad = 0, begin_ok_bad = 0;
        for (uint32_t v = 0; v <= 0xffff; v++) {
            xatm_msg d;
            for (int reserve = 0; reserve < 2; reserve++) {
                x.n = 0; b_u8(&x, 2); b_u32(&x, 0); b_u8(&x, (uint8_t)reserve);
                b_u16(&x, (uint16_t)v);
                bool ok = reserve ? v >= 1 && v <= XATM_LEASE_MAX : v == 0;
                int rc = decode_exact(XATM_MSG_BEGIN, x.b, x.n, &d);
                if (rc != (ok ? 0 : XATM_EPROTO) || (ok && d.u.begin.count != v)) begin_bad++;
            }
            x.n = 0; b_str(&x, "tm1.1.1"); b_u8(&x, 2); b_u32(&x, 0); b_u16(&x, (uint16_t)v);
            bool ok = v >= 1 && v <= XATM_LEASE_MAX;
            int rc = decode_exact(XATM_MSG_BEGIN_OK, x.b, x.n, &d);
            if (rc != (ok ? 0 : XATM_EPROTO) || (ok && d.u.begin_ok.count != v)) begin_ok_bad++;
        }
        CHECK_INT(begin_bad, 0);
        CHECK_INT(begin_ok_bad, 0);
    }
    /* a version 5 BEGIN (no count) is short */
    x.n = 0; b_u8(&x, 2); b_u32(&x, 0); b_u8(&x, 1);
    expect_decode(XATM_MSG_BEGIN, &x, XATM_EPROTO, "BEGIN of version 5 (no count)");
    /* string length running past the body */
    x.n = 0; b_u16(&x, 10); memcpy(x.b + x.n, "tm1.1", 5); x.n += 5;
    expect_decode(XATM_MSG_ROLLBACK, &x, XATM_EPROTO, "string past body");
    /* NUL inside a string */
    x.n = 0; b_strn(&x, "tm1\0.1.1", 8);
    expect_decode(XATM_MSG_ROLLBACK, &x, XATM_EPROTO, "NUL in gtrid");
    x.n = 0; b_str(&x, "");
    expect_decode(XATM_MSG_ROLLBACK, &x, 0, "empty gtrid is well formed");

    /* enums */
    for (int v = 0; v < 256; v++) {
        x.n = 0; b_u8(&x, (uint8_t)v); b_u32(&x, 1); b_str(&x, "c");
        expect_decode(XATM_MSG_HELLO, &x, v == 1 || v == 2 ? 0 : XATM_EPROTO, "role");
        x.n = 0; b_u8(&x, (uint8_t)v); b_u32(&x, 0); b_u8(&x, 0); b_u16(&x, 0);
        expect_decode(XATM_MSG_BEGIN, &x, v == 0 || v == 2 || v == 3 ? 0 : XATM_EPROTO, "begin protocol");
        x.n = 0; b_u8(&x, 2); b_u32(&x, 0); b_u8(&x, (uint8_t)v); b_u16(&x, v == 1 ? 1 : 0);
        expect_decode(XATM_MSG_BEGIN, &x, v == 0 || v == 1 ? 0 : XATM_EPROTO, "begin flags");
        x.n = 0; b_str(&x, "tm1.1.1"); b_u8(&x, (uint8_t)v); b_u32(&x, 0); b_u16(&x, 1);
        expect_decode(XATM_MSG_BEGIN_OK, &x, v == 2 || v == 3 ? 0 : XATM_EPROTO, "begin_ok protocol");
        x.n = 0; b_str(&x, "tm1"); b_u32(&x, 1); b_u32(&x, 2); b_u8(&x, (uint8_t)v); b_u32(&x, 0);
        b_str(&x, ""); b_u32(&x, 0);
        expect_decode(XATM_MSG_HELLO_OK, &x, v == 2 || v == 3 ? 0 : XATM_EPROTO, "default protocol");
        x.n = 0; b_str(&x, "tm1.1.1"); b_u16(&x, 1); b_str(&x, "pg"); b_u8(&x, (uint8_t)v); b_u64(&x, 0);
        expect_decode(XATM_MSG_VOTE, &x, v >= 1 && v <= 3 ? 0 : XATM_EPROTO, "vote");
        expect_decode(XATM_MSG_CANCOMMIT, &x, v >= 1 && v <= 3 ? 0 : XATM_EPROTO, "cancommit vote");
        x.n = 0; b_str(&x, "tm1.1.1"); b_u8(&x, (uint8_t)v); b_str(&x, "");
        expect_decode(XATM_MSG_DECISION, &x, v >= 1 && v <= 3 ? 0 : XATM_EPROTO,
                      "decision outcome");
        x.n = 0; b_str(&x, "tm1.1.1"); b_u8(&x, (uint8_t)v); b_u16(&x, 0);
        expect_decode(XATM_MSG_DONE, &x, v == 1 || v == 2 || v == 4 ? 0 : XATM_EPROTO,
                      "done outcome");
    }

    /* counts: 32 entries fine, 33 refused even when all 33 are present and valid */
    for (uint16_t n = 32; n <= 33; n++) {
        x.n = 0; b_str(&x, "tm1.1.1"); b_u16(&x, n);
        for (uint16_t i = 0; i < n; i++) { b_str(&x, "pg"); b_u8(&x, 1); b_u64(&x, i); }
        expect_decode(XATM_MSG_VOTE, &x, n == 32 ? 0 : XATM_EPROTO, "vote n");
        expect_decode(XATM_MSG_CANCOMMIT, &x, n == 32 ? 0 : XATM_EPROTO, "cancommit n");
        x.n = 0; b_str(&x, "tm1.1.1"); b_u8(&x, 1); b_u16(&x, n);
        for (uint16_t i = 0; i < n; i++) { b_str(&x, "pg"); b_u32(&x, 0); }
        expect_decode(XATM_MSG_DONE, &x, n == 32 ? 0 : XATM_EPROTO, "done n");
    }
    x.n = 0; b_str(&x, "tm1.1.1"); b_u16(&x, 0xffff);
    expect_decode(XATM_MSG_VOTE, &x, XATM_EPROTO, "vote n 65535");
    x.n = 0; b_str(&x, "tm1.1.1"); b_u16(&x, 3); b_str(&x, "pg"); b_u8(&x, 1); b_u64(&x, 0);
    expect_decode(XATM_MSG_VOTE, &x, XATM_EPROTO, "vote n larger than entries present");

    /* codes */
    x.n = 0; b_u32(&x, 0); b_str(&x, "");
    expect_decode(XATM_MSG_ERROR, &x, XATM_EPROTO, "error code 0");
    x.n = 0; b_u32(&x, 0x7fffffffu); b_str(&x, "");
    expect_decode(XATM_MSG_ERROR, &x, XATM_EPROTO, "error code INT32_MAX");
    x.n = 0; b_u32(&x, 0x80000000u); b_str(&x, "");
    expect_decode(XATM_MSG_ERROR, &x, 0, "error code INT32_MIN");
    x.n = 0; b_u32(&x, 1); b_u32(&x, 0);
    expect_decode(XATM_MSG_ADMIN_REPLY, &x, XATM_EPROTO, "admin_reply code 1");
    x.n = 0; b_u32(&x, 0); b_u32(&x, 0);
    expect_decode(XATM_MSG_ADMIN_REPLY, &x, 0, "admin_reply empty json");
    x.n = 0; b_u32(&x, 0); b_u32(&x, 5); memcpy(x.b + x.n, "{}", 2); x.n += 2;
    expect_decode(XATM_MSG_ADMIN_REPLY, &x, XATM_EPROTO, "blob past body");
    x.n = 0; b_u32(&x, 0); b_u32(&x, 0xffffffffu);
    expect_decode(XATM_MSG_ADMIN_REPLY, &x, XATM_EPROTO, "blob length 4G");

    /* DONE's xa_rc keeps its sign */
    xatm_msg d;
    x.n = 0; b_str(&x, "tm1.1.1"); b_u8(&x, 2); b_u16(&x, 1); b_str(&x, "my"); b_u32(&x, 0xfffffffcu);
    CHECK_INT(decode_exact(XATM_MSG_DONE, x.b, x.n, &d), 0);
    CHECK_INT(d.u.done.e[0].xa_rc, -4);
}

/* Decodes garbage; when accepted, re-encoding must reproduce the body byte for byte.
 * Returns true when accepted. */
static bool garbage_one(uint8_t t, const uint8_t *bytes, uint32_t len, xatm_buf *b,
                        int *noncanonical)
{
    xatm_msg m;
    uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees any overread */
    if (len) memcpy(copy, bytes, len);
    xatm_frame_header h = {.body_len = len, .version = XATM_PROTO_VERSION, .type = t};
    int rc = xatm_msg_decode(&h, len ? copy : NULL, &m);
    bool ok = rc == 0;
    if (ok) {
        b->len = 0;
        if (xatm_msg_encode(&m, 0, b) != 0 || b->len != XATM_FRAME_HEADER_SIZE + len ||
            memcmp(b->data + XATM_FRAME_HEADER_SIZE, bytes, len) != 0)
            (*noncanonical)++;
    } else if (rc != XATM_EPROTO) {
        (*noncanonical)++;
    }
    free(copy);
    return ok;
}

static void test_garbage(void)
{
    xatm_buf b = {0}, enc = {0};
    int noncanonical = 0;
    long accepted = 0, mutated_accepted = 0;
    uint8_t bytes[2048];
    const long iterations = 200000;

    for (long it = 0; it < iterations; it++) {
        uint8_t t = all_types[rng() % N_TYPES];
        if (rng() % 50 == 0) t = (uint8_t)rng(); /* sometimes an unknown type */
        uint32_t len;
        bool mutated = it % 2 == 1;
        if (!mutated) {
            /* random bytes with small length prefixes, so strings often parse */
            len = (uint32_t)(rng() % 200);
            for (uint32_t i = 0; i < len; i++) {
                uint64_t r = rng();
                bytes[i] = r % 4 == 0 ? (uint8_t)(r >> 8) % 8 : (uint8_t)(r >> 16);
            }
        } else {
            /* a valid sample with a few bytes changed, cut, extended or shifted */
            xatm_msg m;
            const uint8_t *bd = NULL;
            sample(&m, all_types[rng() % N_TYPES], rng() % 4 == 0);
            t = m.type;
            if (encode_body(&m, &enc, &bd, &len) != 0 || len > sizeof bytes - 16) continue;
            memcpy(bytes, bd, len);
            int edits = 1 + (int)(rng() % 4);
            for (int e = 0; e < edits; e++) {
                switch (rng() % 5) {
                case 0:
                case 1:
                    if (len) bytes[rng() % len] = (uint8_t)rng();
                    break;
                case 2:
                    if (len) bytes[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
                    break;
                case 3:
                    if (len) len = (uint32_t)(rng() % len);
                    break;
                case 4:
                    if (len < sizeof bytes - 8) bytes[len++] = (uint8_t)rng();
                    break;
                }
            }
            if (rng() % 8 == 0) t = all_types[rng() % N_TYPES]; /* right bytes, wrong type */
        }
        if (garbage_one(t, bytes, len, &b, &noncanonical)) {
            accepted++;
            if (mutated) mutated_accepted++;
        }
    }
    printf("garbage: %ld bodies, %ld accepted (%ld mutated)\n", iterations, accepted,
           mutated_accepted);
    CHECK_INT(noncanonical, 0);
    CHECK(accepted > 0);
    CHECK(accepted < iterations);
    xatm_buf_free(&b);
    xatm_buf_free(&enc);
}

/* Session references: incarnation tag in the high 24 bits, session id in the low 40. */
static void test_session_refs(void)
{
    uint64_t r = xatm_session_ref(0xabcdef, 42);
    CHECK_INT(r, (0xabcdefull << 40) | 42);
    CHECK_INT(xatm_session_ref_id(r), 42);
    CHECK_INT(xatm_session_ref_tag(r), 0xabcdef);
    CHECK_INT(xatm_session_ref_tag(xatm_session_ref(0x1abcdef, 1)), 0xabcdef); /* 24 bits */
    CHECK_INT(xatm_session_ref(5, 0), 0);                         /* no session */
    CHECK_INT(xatm_session_ref(5, XATM_SESSION_ID_MASK + 1), 0);  /* does not fit */
    CHECK_INT(xatm_session_ref_id(xatm_session_ref(5, XATM_SESSION_ID_MASK)),
              XATM_SESSION_ID_MASK);
    /* a plain id (tag 0, e.g. a PostgreSQL backend pid) reads back unchanged */
    CHECK_INT(xatm_session_ref(0, 4242), 4242);
    CHECK_INT(xatm_session_ref_tag(4242), 0);
}

int main(void)
{
    test_names();
    test_session_refs();
    test_3pc_messages();
    test_header();
    test_round_trip();
    test_encode_refusals();
    test_decode_malformed();
    test_garbage();
    return t_finish("proto");
}
