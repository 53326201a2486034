/*
 * buf.h — a growable byte buffer, the one place xatm grows memory for bytes to send or
 * write. Owns `data`; invariant: len <= cap, and data is NULL only when cap is 0.
 */
#ifndef XATM_BUF_H
#define XATM_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct xatm_buf {
    uint8_t *data; /* owned storage, cap bytes */
    size_t len;    /* bytes in use */
    size_t cap;    /* bytes allocated */
} xatm_buf;

/* Makes room for `extra` more bytes. 0 or XATM_ENOMEM (buffer unchanged on failure). */
int xatm_buf_reserve(xatm_buf *b, size_t extra);
/* Appends n bytes. 0 or XATM_ENOMEM. */
int xatm_buf_append(xatm_buf *b, const void *p, size_t n);
/* Drops the first n bytes (n <= len), keeping the rest. */
void xatm_buf_consume(xatm_buf *b, size_t n);
/* Frees storage; the buffer is empty and reusable afterwards. */
void xatm_buf_free(xatm_buf *b);

#endif
