/*
 * fuzz_proto.c — libFuzzer entry point for the wire codec (common/proto.c).
 *
 * The first input byte picks the mode; the rest is the data:
 *   bit 7 set    the data is a frame as a socket delivers it: header (checked against the
 *                reply limit, the larger one), then the body it announces;
 *   bit 7 clear  the data is a body of the message type (byte % 12) of the type table.
 * Every body is decoded from a heap copy of exactly its length, so ASan reports any read
 * past body_len. Whatever decodes must re-encode to the identical bytes (the codec's
 * canonical-encoding invariant); a difference traps, and so does any decode result other
 * than 0 or XATM_EPROTO.
 *
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true; ninja -C build-fuzz
 * Run:   ./build-fuzz/tests/fuzz/fuzz_proto -max_total_time=60 [corpus-dir]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "xatm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_types[] = {
    XATM_MSG_HELLO,    XATM_MSG_BEGIN,    XATM_MSG_ENLIST,   XATM_MSG_VOTE,
    XATM_MSG_DONE,     XATM_MSG_ROLLBACK, XATM_MSG_ADMIN,    XATM_MSG_HELLO_OK,
    XATM_MSG_BEGIN_OK, XATM_MSG_DECISION, XATM_MSG_ERROR,    XATM_MSG_ADMIN_REPLY,
};

/* Decodes one body of h's type; checks the round trip. */
static void one_body(const xatm_frame_header *h, const uint8_t *body)
{
    uint8_t *copy = malloc(h->body_len ? h->body_len : 1);
    if (!copy) return;
    if (h->body_len) memcpy(copy, body, h->body_len);

    xatm_msg m;
    int rc = xatm_msg_decode(h, h->body_len ? copy : NULL, &m);
    if (rc != 0 && rc != XATM_EPROTO) __builtin_trap();
    if (rc == 0) {
        xatm_buf out = {0};
        rc = xatm_msg_encode(&m, h->req_id, &out);
        if (rc == XATM_ENOMEM) goto out_free;
        if (rc != 0 || out.len != XATM_FRAME_HEADER_SIZE + (size_t)h->body_len ||
            memcmp(out.data + XATM_FRAME_HEADER_SIZE, copy, h->body_len) != 0)
            __builtin_trap();
        xatm_frame_header back;
        if (xatm_frame_header_decode(out.data, XATM_FRAME_MAX_REPLY, &back) != 0 ||
            back.type != h->type || back.body_len != h->body_len || back.req_id != h->req_id)
            __builtin_trap();
    out_free:
        xatm_buf_free(&out);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    data++;
    size--;

    if (mode & 0x80) {
        if (size < XATM_FRAME_HEADER_SIZE) return 0;
        xatm_frame_header h;
        if (xatm_frame_header_decode(data, XATM_FRAME_MAX_REPLY, &h) != 0) return 0;
        if (h.body_len > size - XATM_FRAME_HEADER_SIZE) return 0; /* a short read: wait */
        one_body(&h, data + XATM_FRAME_HEADER_SIZE);
        return 0;
    }

    if (size > XATM_FRAME_MAX_REQUEST) return 0;
    xatm_frame_header h = {
        .body_len = (uint32_t)size,
        .version = XATM_PROTO_VERSION,
        .type = fuzz_types[mode % (sizeof fuzz_types / sizeof fuzz_types[0])],
        .req_id = 1,
    };
    one_body(&h, data);
    return 0;
}
