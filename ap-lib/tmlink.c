/*
 * tmlink.c — libxatm's connection to xatmd: connect + HELLO, bounded frame writes and
 * reads, request/reply matching by req_id. See tmlink.h for the invariants; in short,
 * any trouble on the socket closes it, and nothing here ever waits without a deadline.
 */
#include "tmlink.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "xatm.h"

/* Monotonic milliseconds. */
static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Milliseconds left until deadline, as a poll() timeout (0 when passed). */
static int remaining_ms(uint64_t deadline)
{
    uint64_t now = now_ms();
    if (now >= deadline) return 0;
    uint64_t left = deadline - now;
    return left > 60u * 60u * 1000u ? 60 * 60 * 1000 : (int)left;
}

void xatm__tm_init(xatm__tm *t, const xatm_config *cfg)
{
    memset(t, 0, sizeof *t);
    t->fd = -1;
    t->next_req_id = 1;
    t->path = cfg->socket_path;
    t->timeout_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms : 30000;
}

void xatm__tm_close(xatm__tm *t)
{
    if (t->fd >= 0) close(t->fd);
    t->fd = -1;
    t->rx.len = 0;
    t->tx.len = 0;
    t->resv = XATM__RESV_NONE;
    t->resv_req = 0;
}

void xatm__tm_free(xatm__tm *t)
{
    xatm__tm_close(t);
    xatm_buf_free(&t->rx);
    xatm_buf_free(&t->tx);
}

static uint32_t take_req_id(xatm__tm *t)
{
    uint32_t id = t->next_req_id++;
    if (t->next_req_id == 0) t->next_req_id = 1;
    return id;
}

int xatm__tm_connect(xatm__tm *t, const xatm_config *cfg, char *err, size_t errlen)
{
    xatm__tm_close(t);
    t->path = cfg->socket_path;

    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(cfg->socket_path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "xatmd socket path %s is longer than %zu bytes", cfg->socket_path,
                 sizeof sa.sun_path - 1);
        return XATM_ECONFIG;
    }
    memcpy(sa.sun_path, cfg->socket_path, strlen(cfg->socket_path) + 1);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a socket for xatmd: %s", strerror(errno));
        return XATM_ETM;
    }
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        snprintf(err, errlen, "cannot connect to xatmd at %s: %s; is xatmd running?",
                 cfg->socket_path, strerror(errno));
        close(fd);
        return XATM_ETM;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "cannot make the xatmd socket non-blocking: %s", strerror(errno));
        close(fd);
        return XATM_ETM;
    }
    t->fd = fd;

    xatm_msg hello, reply;
    memset(&hello, 0, sizeof hello);
    hello.type = XATM_MSG_HELLO;
    hello.u.hello.role = XATM_ROLE_AP;
    hello.u.hello.pid = (uint32_t)getpid();
    snprintf(hello.u.hello.client_name, sizeof hello.u.hello.client_name, "%s",
             program_invocation_short_name ? program_invocation_short_name : "");
    rc = xatm__tm_call(t, &hello, XATM_MSG_HELLO_OK, &reply, err, errlen);
    if (rc == XATM_ETIMEDOUT) rc = XATM_ETM; /* a hung xatmd is an unreachable one */
    if (rc) goto fail_close;

    if (strcmp(reply.u.hello_ok.tm_id, cfg->tm_id) != 0) {
        snprintf(err, errlen,
                 "xatmd at %s is TM '%s', but %s names tm.id '%s': another TM owns this "
                 "socket, or the config is not the one xatmd runs with",
                 cfg->socket_path, reply.u.hello_ok.tm_id, cfg->path, cfg->tm_id);
        rc = XATM_EPROTO;
        goto fail_close;
    }
    if (reply.u.hello_ok.format_id != cfg->format_id) {
        snprintf(err, errlen,
                 "xatmd at %s uses XA formatID 0x%08x, but %s says tm.format_id 0x%08x: "
                 "xatmd would not recognise this application's branches",
                 cfg->socket_path, (unsigned)reply.u.hello_ok.format_id, cfg->path,
                 (unsigned)cfg->format_id);
        rc = XATM_EPROTO;
        goto fail_close;
    }
    const char *mine = cfg->decision_rm ? cfg->decision_rm : "";
    if (strcmp(reply.u.hello_ok.decision_rm, mine) != 0) {
        /* a transaction decided in a branch that xatmd's recovery does not ask about
         * would be rolled back by its presumed abort (and the other way round) */
        snprintf(err, errlen,
                 "xatmd at %s runs with tm.decision_rm '%s', but %s says '%s': xatmd and "
                 "every application must use the same decider (docs/configuration.md)",
                 cfg->socket_path, reply.u.hello_ok.decision_rm, cfg->path, mine);
        rc = XATM_EPROTO;
        goto fail_close;
    }
    t->epoch = reply.u.hello_ok.epoch;
    t->decision_retention_ms = reply.u.hello_ok.decision_retention_ms;
    t->default_protocol = reply.u.hello_ok.default_protocol;
    return 0;

fail_close:
    xatm__tm_close(t);
    return rc;
}

static int encode_behind(xatm__tm *t, const xatm_msg *m, uint32_t *id, char *err,
                         size_t errlen);

/* Keeps the answer m to the reserving BEGIN: SENT -> READY, or NONE for an ERROR. */
static void keep_reservation(xatm__tm *t, const xatm_msg *m)
{
    t->resv_req = 0;
    t->resv = XATM__RESV_NONE;
    if (m->type != XATM_MSG_BEGIN_OK) return;
    /* a gtrid that is not one of xatmd's cannot be counted on from: no lease */
    if (xatm_gtrid_parse(m->u.begin_ok.gtrid, &t->resv_next) != 0) return;
    t->resv = XATM__RESV_READY;
    t->resv_left = m->u.begin_ok.count; /* >= 1 (the codec's rule) */
    t->resv_protocol = m->u.begin_ok.protocol;
    t->resv_timeout_ms = m->u.begin_ok.timeout_ms;
}

/* Waits for the answer to the reserving BEGIN (SENT) and keeps it. 0, or the failure of
 * xatm__tm_recv (the link is then closed). */
static int read_reservation(xatm__tm *t)
{
    xatm_msg m;
    char err[256];
    int rc = xatm__tm_recv(t, t->resv_req, "BEGIN (lease)", &m, err, sizeof err);
    if (rc == 0) keep_reservation(t, &m);
    return rc;
}

void xatm__tm_check_idle(xatm__tm *t)
{
    if (t->fd < 0) return;
    struct pollfd p = {.fd = t->fd, .events = POLLIN};
    int n = poll(&p, 1, 0);
    if (n == 0) return;
    if (t->resv == XATM__RESV_SENT && t->tx.len == 0) {
        /* most likely the lease's answer: read it (a failure closes the link) */
        if (read_reservation(t) != 0) return;
        n = t->rx.len ? 1 : poll(&p, 1, 0);
        if (n == 0) return;
    }
    /* Readable, hung up or in error while no request is outstanding: xatmd is closing
     * (or went away). Whatever it had to say, this link is finished. */
    xatm__tm_close(t);
}

void xatm__tm_reserve(xatm__tm *t, uint8_t protocol, uint32_t timeout_ms)
{
    if (t->resv == XATM__RESV_READY) return; /* the lease has gtrids left */
    t->resv = t->fd >= 0 ? XATM__RESV_DEFERRED : XATM__RESV_NONE;
    t->resv_req = 0;
    t->resv_asked_protocol = protocol;
    t->resv_asked_timeout_ms = timeout_ms;
}

/* Encodes the deferred reserving BEGIN behind the frames in tx (xatm__tm_reserve). A
 * failure to encode leaves no lease: the next xatm_begin is a call. */
static void encode_reservation(xatm__tm *t)
{
    t->resv = XATM__RESV_NONE;
    xatm_msg m;
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_BEGIN;
    m.u.begin.protocol = t->resv_asked_protocol;
    m.u.begin.timeout_ms = t->resv_asked_timeout_ms;
    m.u.begin.flags = XATM_BEGIN_RESERVE;
    m.u.begin.count = XATM__LEASE_ASK;
    uint32_t id;
    char err[256];
    if (encode_behind(t, &m, &id, err, sizeof err) == 0) {
        t->resv = XATM__RESV_SENT;
        t->resv_req = id;
    }
}

bool xatm__tm_take_reservation(xatm__tm *t, uint8_t protocol, uint32_t timeout_ms,
                               char *gtrid, uint8_t *granted_protocol,
                               uint32_t *granted_timeout_ms)
{
    if (t->fd < 0) return false;
    if (t->resv == XATM__RESV_DEFERRED) {
        /* asked for, never sent (the transaction ended without writing to xatmd): none;
         * the next lease replaces whatever xatmd holds for this connection */
        t->resv = XATM__RESV_NONE;
        return false;
    }
    if (t->resv == XATM__RESV_SENT) {
        char err[256];
        if (xatm__tm_flush(t, err, sizeof err) != 0 || read_reservation(t) != 0) return false;
    }
    if (t->resv != XATM__RESV_READY || t->resv_asked_protocol != protocol ||
        t->resv_asked_timeout_ms != timeout_ms || t->resv_protocol != protocol)
        return false;
    xatm_gtrid_parts *p = &t->resv_next;
    if (xatm_gtrid_format(gtrid, XATM_GTRID_MAX + 1, p->tm_id, p->epoch, p->seq) != 0) {
        t->resv = XATM__RESV_NONE;
        return false;
    }
    *granted_protocol = t->resv_protocol;
    *granted_timeout_ms = t->resv_timeout_ms;
    p->seq++;
    if (--t->resv_left == 0) t->resv = XATM__RESV_NONE;
    return true;
}

/* Writes len bytes before the deadline. 0 or -1 with err set. */
static int write_all(xatm__tm *t, const uint8_t *p, size_t len, uint64_t deadline, char *err,
                     size_t errlen)
{
    while (len > 0) {
        ssize_t w = send(t->fd, p, len, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {.fd = t->fd, .events = POLLOUT};
            int n = poll(&pf, 1, remaining_ms(deadline));
            if (n < 0 && errno == EINTR) continue;
            if (n == 0) {
                snprintf(err, errlen, "xatmd at %s did not accept data within %u ms", t->path,
                         (unsigned)t->timeout_ms);
                return -1;
            }
            continue;
        }
        snprintf(err, errlen, "lost the connection to xatmd at %s: %s", t->path,
                 w < 0 ? strerror(errno) : "write returned 0");
        return -1;
    }
    return 0;
}

/* Appends m's frame to tx (behind the queued ones); its id in *id. */
static int encode_behind(xatm__tm *t, const xatm_msg *m, uint32_t *id, char *err,
                         size_t errlen)
{
    if (t->fd < 0) {
        snprintf(err, errlen, "not connected to xatmd at %s (the connection was lost)", t->path);
        return XATM_ETM;
    }
    size_t queued = t->tx.len;
    *id = take_req_id(t);
    int rc = xatm_msg_encode(m, *id, &t->tx);
    if (rc) {
        t->tx.len = queued; /* the queued frames stay as they were */
        snprintf(err, errlen, "cannot encode %s: %s", xatm_msg_type_name(m->type),
                 xatm_strerror(rc));
        return rc;
    }
    return 0;
}

int xatm__tm_queue(xatm__tm *t, const xatm_msg *m, char *err, size_t errlen)
{
    uint32_t id;
    return encode_behind(t, m, &id, err, errlen);
}

int xatm__tm_flush(xatm__tm *t, char *err, size_t errlen)
{
    if (t->tx.len == 0) return 0;
    if (t->fd < 0) {
        snprintf(err, errlen, "not connected to xatmd at %s (the connection was lost)", t->path);
        return XATM_ETM;
    }
    if (write_all(t, t->tx.data, t->tx.len, now_ms() + t->timeout_ms, err, errlen) < 0) {
        xatm__tm_close(t);
        return XATM_ETM;
    }
    t->tx.len = 0;
    return 0;
}

int xatm__tm_send(xatm__tm *t, const xatm_msg *m, uint32_t *req_id, char *err, size_t errlen)
{
    uint32_t id;
    int rc = encode_behind(t, m, &id, err, errlen);
    if (rc) return rc;
    if (t->resv == XATM__RESV_DEFERRED) encode_reservation(t);
    rc = xatm__tm_flush(t, err, errlen);
    if (rc) return rc;
    if (req_id) *req_id = id;
    return 0;
}

/* Reads whatever is available into rx, waiting until the deadline for at least one byte.
 * 0, XATM_ETM (EOF / error) or XATM_ETIMEDOUT, with err set on failure. */
static int fill(xatm__tm *t, uint64_t deadline, uint32_t limit_ms, const char *limit_name,
                const char *what, char *err, size_t errlen)
{
    for (;;) {
        if (xatm_buf_reserve(&t->rx, 4096)) {
            snprintf(err, errlen, "out of memory reading from xatmd");
            return XATM_ENOMEM;
        }
        ssize_t r = recv(t->fd, t->rx.data + t->rx.len, t->rx.cap - t->rx.len, 0);
        if (r > 0) {
            t->rx.len += (size_t)r;
            return 0;
        }
        if (r == 0) {
            snprintf(err, errlen, "xatmd at %s closed the connection while %s was outstanding",
                     t->path, what);
            return XATM_ETM;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            snprintf(err, errlen, "lost the connection to xatmd at %s while %s was outstanding: %s",
                     t->path, what, strerror(errno));
            return XATM_ETM;
        }
        struct pollfd pf = {.fd = t->fd, .events = POLLIN};
        int n = poll(&pf, 1, remaining_ms(deadline));
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) {
            snprintf(err, errlen, "xatmd at %s did not answer %s within %u ms (%s)", t->path,
                     what, (unsigned)limit_ms, limit_name);
            return XATM_ETIMEDOUT;
        }
    }
}

int xatm__tm_recv(xatm__tm *t, uint32_t req_id, const char *what, xatm_msg *out, char *err,
                  size_t errlen)
{
    return xatm__tm_recv_within(t, req_id, what, t->timeout_ms, "tm.request_timeout", out, err,
                                errlen);
}

int xatm__tm_recv_within(xatm__tm *t, uint32_t req_id, const char *what, uint32_t limit_ms,
                         const char *limit_name, xatm_msg *out, char *err, size_t errlen)
{
    if (t->fd < 0) {
        snprintf(err, errlen, "not connected to xatmd at %s (the connection was lost)", t->path);
        return XATM_ETM;
    }
    uint64_t deadline = now_ms() + limit_ms;
    int rc;
    for (;;) {
        while (t->rx.len < XATM_FRAME_HEADER_SIZE) {
            rc = fill(t, deadline, limit_ms, limit_name, what, err, errlen);
            if (rc) goto fail_close;
        }
        xatm_frame_header h;
        if (xatm_frame_header_decode(t->rx.data, XATM_FRAME_MAX_REPLY, &h)) {
            snprintf(err, errlen, "malformed frame header from xatmd at %s", t->path);
            rc = XATM_EPROTO;
            goto fail_close;
        }
        while (t->rx.len < XATM_FRAME_HEADER_SIZE + (size_t)h.body_len) {
            rc = fill(t, deadline, limit_ms, limit_name, what, err, errlen);
            if (rc) goto fail_close;
        }
        if (xatm_msg_decode(&h, t->rx.data + XATM_FRAME_HEADER_SIZE, out)) {
            snprintf(err, errlen, "malformed %s frame from xatmd at %s",
                     xatm_msg_type_name(h.type), t->path);
            rc = XATM_EPROTO;
            goto fail_close;
        }
        xatm_buf_consume(&t->rx, XATM_FRAME_HEADER_SIZE + (size_t)h.body_len);

        if (h.req_id == req_id) return 0;
        if (t->resv == XATM__RESV_SENT && h.req_id == t->resv_req) {
            keep_reservation(t, out); /* the next transaction's gtrid, kept aside */
            continue;
        }
        if (h.req_id == 0 && out->type == XATM_MSG_ERROR) {
            snprintf(err, errlen,
                     "xatmd at %s ended the connection while %s was outstanding: %s: %s", t->path,
                     what, xatm_errname(out->u.error.code), out->u.error.message);
            rc = XATM_ETM;
            goto fail_close;
        }
        if (out->type == XATM_MSG_ERROR && h.req_id < req_id)
            continue; /* about an earlier one-way message: see tmlink.h */
        snprintf(err, errlen, "xatmd at %s sent %s for request %u while waiting for the answer "
                 "to %s (request %u)", t->path, xatm_msg_type_name(out->type),
                 (unsigned)h.req_id, what, (unsigned)req_id);
        rc = XATM_EPROTO;
        goto fail_close;
    }

fail_close:
    xatm__tm_close(t);
    return rc;
}

int xatm__tm_call(xatm__tm *t, const xatm_msg *m, uint8_t expect, xatm_msg *reply, char *err,
                  size_t errlen)
{
    uint32_t id;
    int rc = xatm__tm_send(t, m, &id, err, errlen);
    if (rc) return rc;
    rc = xatm__tm_recv(t, id, xatm_msg_type_name(m->type), reply, err, errlen);
    if (rc) return rc;
    if (reply->type == expect) return 0;
    if (reply->type == XATM_MSG_ERROR) {
        int code = reply->u.error.code;
        snprintf(err, errlen, "%s", reply->u.error.message);
        if (code >= 0 || strcmp(xatm_errname(code), "EUNKNOWNCODE") == 0) return XATM_EPROTO;
        return code;
    }
    snprintf(err, errlen, "xatmd at %s answered %s with %s (expected %s)", t->path,
             xatm_msg_type_name(m->type), xatm_msg_type_name(reply->type),
             xatm_msg_type_name(expect));
    xatm__tm_close(t);
    return XATM_EPROTO;
}
