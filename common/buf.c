/*
 * buf.c — the growable byte buffer of buf.h.
 */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include "xatm.h"

int xatm_buf_reserve(xatm_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    if (extra > SIZE_MAX / 2 - b->len) return XATM_ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) return XATM_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int xatm_buf_append(xatm_buf *b, const void *p, size_t n)
{
    if (n == 0) return 0;
    int rc = xatm_buf_reserve(b, n);
    if (rc) return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void xatm_buf_consume(xatm_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void xatm_buf_free(xatm_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
