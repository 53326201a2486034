/*
 * tmlink.h — libxatm's connection to xatmd (internal to ap-lib). Owns one Unix-domain
 * stream socket, the request-id counter and the receive buffer; speaks the frames of
 * common/proto.h and nothing else (the transaction logic lives in xatm.c).
 *
 * Invariants:
 *  - fd is -1 exactly when the link is closed; every failure of the socket (EOF, error,
 *    timeout, malformed frame) closes it at once, so a later reply can never be taken for
 *    the answer to a newer request, and the next xatm_begin() knows to reconnect.
 *  - Every message sent, one-way or not, gets a fresh nonzero req_id; 0 is never used by
 *    libxatm and marks a connection-level ERROR from xatmd.
 *  - A request waits for the frame echoing its req_id. An ERROR frame echoing an earlier
 *    (one-way) message's id is skipped: one-way messages have no reply in the protocol,
 *    and an ERROR for one changes nothing the next reply will not also say.
 *  - The socket is non-blocking; every write and read is bounded by a deadline
 *    (tm.request_timeout), so a hung xatmd can never hang the application.
 *  - At most one reservation (a lease of the next transactions' gtrids, xatm__tm_reserve)
 *    exists per link; its answer may arrive while another is awaited and is then kept
 *    aside. Its gtrids are handed out in order, each once. Closing the link forgets it
 *    (xatmd forgets it too when the connection ends).
 *  - Queued one-way frames go out, in order, in the same write as the next frame sent
 *    (or at xatm__tm_flush); closing the link drops them (the connection they were meant
 *    for is gone, and with it whatever xatmd knew of the transaction).
 */
#ifndef XATM_AP_TMLINK_H
#define XATM_AP_TMLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "proto.h"

/* Where the lease of the next transactions' gtrids stands (xatm__tm_reserve):
 *
 *   NONE --xatm__tm_reserve--> DEFERRED --xatm__tm_send writes the BEGIN--> SENT
 *                                       (NONE when the BEGIN cannot be encoded)
 *   SENT --its BEGIN_OK read (by whichever read meets it)--> READY
 *   SENT --its ERROR read--> NONE
 *   READY --take_reservation takes its last gtrid--> NONE    DEFERRED --take--> NONE
 *   NONE, DEFERRED, SENT --xatm__tm_reserve--> DEFERRED (NONE when closed); READY stays
 *   any --close--> NONE */
enum xatm__resv {
    XATM__RESV_NONE = 0, /* none: the next xatm_begin is a call */
    XATM__RESV_DEFERRED, /* asked for: the BEGIN goes right behind the next xatm__tm_send */
    XATM__RESV_SENT,     /* that BEGIN is written (resv_req); its answer is not read yet */
    XATM__RESV_READY,    /* answered: resv_next.. resv_left gtrids, resv_protocol, ... */
};

/* gtrids a reserving BEGIN asks for (docs/protocol.md, "Gtrid leases") */
#define XATM__LEASE_ASK 64u

/* The link. Zero-initialise, then set fd = -1 (xatm__tm_init does both). */
typedef struct xatm__tm {
    int fd;                /* connected socket, -1 when closed */
    uint32_t next_req_id;  /* id for the next message; never 0 */
    xatm_buf rx;           /* bytes received, not yet decoded */
    xatm_buf tx;           /* frames queued (one-way, xatm__tm_queue) and the frame
                              being sent: written together by the next send or flush */
    const char *path;      /* socket path (points into the config) */
    uint32_t timeout_ms;   /* tm.request_timeout: bound on every wait */
    uint32_t epoch;        /* xatmd's boot epoch from HELLO_OK */
    uint32_t decision_retention_ms; /* xatmd's tm.decision_retention from HELLO_OK */
    /* the lease of the next transactions' gtrids (xatm__tm_reserve) */
    enum xatm__resv resv;  /* where it stands (above) */
    uint32_t resv_req;     /* SENT: req_id of the reserving BEGIN; 0 otherwise */
    uint8_t resv_asked_protocol; /* what that BEGIN asks for */
    uint32_t resv_asked_timeout_ms;
    xatm_gtrid_parts resv_next; /* READY: the next gtrid to hand out, */
    uint16_t resv_left;    /* ... with the ones after it, resv_left (>= 1) in all, */
    uint8_t resv_protocol; /* ... and the protocol and timeout BEGIN_OK granted */
    uint32_t resv_timeout_ms;
    uint8_t default_protocol; /* from HELLO_OK */
} xatm__tm;

void xatm__tm_init(xatm__tm *t, const xatm_config *cfg);

/* Connects and greets: HELLO(role AP) -> HELLO_OK, checking that xatmd's tm id and XA
 * formatID are the config's. 0; XATM_ETM (xatmd not reachable, with a hint), XATM_EPROTO
 * (not our TM / bad answer), an ERROR reply's code, or XATM_ENOMEM. Message in err. */
int xatm__tm_connect(xatm__tm *t, const xatm_config *cfg, char *err, size_t errlen);

/* Closes the socket (idempotent) and forgets any partial input. */
void xatm__tm_close(xatm__tm *t);

/* Frees the buffers after closing. */
void xatm__tm_free(xatm__tm *t);

/* For an idle link (no request outstanding): closes it when xatmd has hung up or sent
 * anything unsolicited (a connection-level ERROR before closing). What is waiting may be
 * the answer to a reservation: it is read (the only case that waits, for the rest of
 * that answer's frame, bounded like every read). */
void xatm__tm_check_idle(xatm__tm *t);

/* Unless a lease still has gtrids (READY), asks xatmd for the gtrids of the connection's
 * next XATM__LEASE_ASK transactions: BEGIN(protocol, timeout_ms, XATM_BEGIN_RESERVE, count)
 * is encoded right behind the next frame written with xatm__tm_send (not behind queued
 * one-way frames, nor at xatm__tm_flush). That frame is the transaction's VOTE,
 * CANCOMMIT, DONE or ROLLBACK: it reaches xatmd before the new lease can replace one the
 * current transaction runs on, and xatmd answers it in the same write as the DECISION that
 * VOTE waits for (docs/protocol.md, "Gtrid leases"). The BEGIN_OK is read whenever it
 * arrives while another answer is awaited, or by xatm__tm_take_reservation. A lease lives
 * as long as the link or until its last gtrid is taken. */
void xatm__tm_reserve(xatm__tm *t, uint8_t protocol, uint32_t timeout_ms);

/* Hands out the lease's next gtrid when there is a lease asked for with exactly protocol
 * and timeout_ms (waiting for its answer if that is still on its way). true with gtrid
 * (XATM_GTRID_MAX + 1 bytes), the granted protocol and timeout; false when there is none
 * (a lease for other options is kept), or the link failed meanwhile (it is then closed). */
bool xatm__tm_take_reservation(xatm__tm *t, uint8_t protocol, uint32_t timeout_ms,
                               char *gtrid, uint8_t *granted_protocol,
                               uint32_t *granted_timeout_ms);

/* Writes one whole frame for m, after the queued ones (in the same write). On success 0
 * and *req_id (if not NULL) is its id.
 * XATM_ETM when the link is (or became) closed or the write did not complete in time
 * (the link is then closed), XATM_EINVAL / XATM_ENOMEM from the encoder. */
int xatm__tm_send(xatm__tm *t, const xatm_msg *m, uint32_t *req_id, char *err, size_t errlen);

/* Encodes m (a one-way message) behind the frames already queued, without writing it:
 * it goes out with the next xatm__tm_send or xatm__tm_flush, so several one-way frames
 * cost one write. 0; XATM_ETM when the link is closed; XATM_EINVAL / XATM_ENOMEM. */
int xatm__tm_queue(xatm__tm *t, const xatm_msg *m, char *err, size_t errlen);

/* Writes the queued frames, if any. 0, or XATM_ETM with the link closed (as send). */
int xatm__tm_flush(xatm__tm *t, char *err, size_t errlen);

/* Waits for the frame answering req_id and decodes it into out (which may be an ERROR).
 * 0; XATM_ETM (link lost), XATM_ETIMEDOUT (no answer in time), XATM_EPROTO (malformed or
 * unexpected frame), or the code of a connection-level ERROR; on all of those the link is
 * closed and err says what happened, naming `what` (the request, e.g. "VOTE"). */
int xatm__tm_recv(xatm__tm *t, uint32_t req_id, const char *what, xatm_msg *out, char *err,
                  size_t errlen);

/* Same, waiting at most limit_ms instead of tm.request_timeout; limit_name names that
 * limit in the timeout message (e.g. "tm.participant_timeout"). A timeout closes the link
 * like any other failure. */
int xatm__tm_recv_within(xatm__tm *t, uint32_t req_id, const char *what, uint32_t limit_ms,
                         const char *limit_name, xatm_msg *out, char *err, size_t errlen);

/* send + recv, then: a reply of type `expect` -> 0; an ERROR reply -> its code (an
 * unknown code becomes XATM_EPROTO) with its message in err; any other type -> EPROTO. */
int xatm__tm_call(xatm__tm *t, const xatm_msg *m, uint8_t expect, xatm_msg *reply, char *err,
                  size_t errlen);

#endif
