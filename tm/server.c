/*
 * server.c — xatmd's event loop (server.h has the iteration, the group-commit rule and the
 * connection rules), plus tm.h's message and log helpers.
 *
 * Ownership and lifetime of a connection: created at accept, linked in server.conns;
 * a failed send does not end it: replies are dropped from then on (write_dead), and the
 * frames the peer wrote before it went are still acted on until its end of file;
 * when it dies (EOF, read error, malformed frame, protocol violation, shutdown) its fd is
 * closed at once, its transactions are handed to gtx_conn_lost, and the struct moves to
 * the graveyard, freed only after the whole epoll batch (stale events of the same batch,
 * and parked replies, may still point at it: they check `dead`).
 *
 * Input buffers: every recv reads into server.rbuf, one buffer for the whole loop, and the
 * whole frames in it are decoded and dispatched before the next recv; a decoded request
 * holds copies of its fields (proto.h), so nothing refers to rbuf after its dispatch. A
 * connection owns only the bytes of one incomplete frame (conn.in), freed once it is whole.
 *
 * Parked replies: a decision whose record is forced waits in server.parked until the
 * batch's flush returned 0: DECISION commit (COMMIT), DECISION precommit (3PC PRECOMMIT),
 * and a 3PC abort after PreCommit (ABORT: the DECISION abort when a VOTE asked, nothing to
 * send for an ack timeout, a ROLLBACK or a DONE abort; the transaction then leaves the
 * gtx table for gtx's abort memory and recovery's registry, under log_mu). Its connection
 * may die meanwhile: the reply is then dropped, and the transaction is COMMITTING (or
 * PRECOMMITTED) with owner 0, which recovery finishes (or applies the termination rule
 * to); recovery is woken right after the flush for it (the wake-up at the disconnect came
 * while the transaction was still *_PENDING, which recovery leaves alone as live).
 *
 * Held replies: the BEGIN_OK of a lease (which libxatm asks for behind a VOTE) is
 * encoded into conn.out without a write and the connection put on server.held; the
 * DECISION sent after the batch's flush writes both in one send, and whatever is still
 * held at the end of the pass is written then, before the graveyard is emptied (so the
 * list never points at a freed connection).
 *
 * The fault action "partition" (common/fault.h), armed at tm.after_precommit_sent, cuts
 * the connection the PreCommit was just sent on: from then on xatmd discards what it
 * reads from it, sends it nothing and never closes it (until shutdown); its transaction's
 * ack deadline then passes and it is aborted (ABORT forced), as after a real partition.
 *
 * Deferred admin replies: `recover` waits for a recovery pass (admin.h) across batches, in
 * server.waiting. Each turn of the loop answers those whose pass ended (the recovery thread
 * wakes the loop at the end of every pass) or whose time is up; epoll_wait's timeout
 * includes their deadlines. A connection that dies drops its waiting entries at once
 * (srv_conn_kill), so no entry outlives its connection.
 */
#include "server.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/fault.h"
#include "admin.h"
#include "gtx.h"
#include "recovery.h"
#include "xatm.h"

/* ================================================================== messages and log */

/* Replaces line breaks with spaces and drops trailing spaces, so a message stays one line. */
static void tm_one_line(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ') s[--n] = '\0';
}

/* Appends one prefixed line to out (at *len, capacity cap). */
static void tm_log_line(char *out, size_t cap, size_t *len, const char *ts, const char *tag,
                        const char *text)
{
    if (*len >= cap) return;
    int n = snprintf(out + *len, cap - *len, "%s xatmd: %s%s\n", ts, tag, text);
    if (n < 0) return;
    *len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

void tm_log(const char *detail, const char *hint, const char *fmt, ...)
{
    struct timespec now;
    struct tm tmv;
    char ts[64], msg[2048], d[2048], h[1024], out[6144];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tmv);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tmv.tm_year + 1900,
             tmv.tm_mon + 1, tmv.tm_mday, tmv.tm_hour, tmv.tm_min, tmv.tm_sec,
             (now.tv_nsec / 1000000) % 1000);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tm_one_line(msg);
    size_t len = 0;
    tm_log_line(out, sizeof out, &len, ts, "", msg);
    if (detail) {
        snprintf(d, sizeof d, "%s", detail);
        tm_one_line(d);
        tm_log_line(out, sizeof out, &len, ts, "DETAIL: ", d);
    }
    if (hint) {
        snprintf(h, sizeof h, "%s", hint);
        tm_one_line(h);
        tm_log_line(out, sizeof out, &len, ts, "HINT: ", h);
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(STDERR_FILENO, out + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
}

int tm_log_append(struct tm_ctx *ctx, const xatm_declog_record *rec, bool force)
{
    pthread_mutex_lock(&ctx->log_mu);
    int rc = xatm_declog_append(ctx->log, rec, force);
    pthread_mutex_unlock(&ctx->log_mu);
    return rc;
}

int tm_log_flush(struct tm_ctx *ctx)
{
    pthread_mutex_lock(&ctx->log_mu);
    /* once any thread found the log failed, no flush may rotate (a rotation writes a
     * checkpoint of what the tables hold, which a failure may have left incomplete) */
    int rc = atomic_load(&ctx->fatal) ? XATM_ELOG : xatm_declog_flush(ctx->log);
    if (rc != 0) atomic_store(&ctx->fatal, true);
    const char *warning = xatm_declog_take_warning(ctx->log);
    if (warning)
        tm_log(warning, NULL, "decision log: the disk of the log directory is full or was");
    pthread_mutex_unlock(&ctx->log_mu);
    return rc;
}

/* ================================================================== types */

#define SRV_MAX_EVENTS 128
#define SRV_READ_CHUNK 65536u              /* the loop-wide receive buffer; one recv's size */
#define SRV_READ_BUDGET (1024u * 1024u)    /* bytes read per connection per event */
#define SRV_OUT_LIMIT (64u * 1024u * 1024u) /* a client that stops reading is dropped */
#define SRV_OUT_KEEP 4096u                 /* a drained send buffer larger than this is freed */
#define SRV_LAZY_MS 100u                   /* unforced records wait at most this long... */
#define SRV_LAZY_BYTES (64u * 1024u)       /* ...or until this many bytes are buffered */
#define SRV_LISTEN_BACKLOG 512
#define SRV_LOG_FAILED_TEXT                                                                    \
    "xatmd stopped after a decision log failure; a transaction that voted has an unknown "    \
    "outcome until xatmd restarts and recovery settles it by its log"

/* epoll tags for the fds that are not connections (connections carry their pointer). */
enum { SRV_TAG_AP = 1, SRV_TAG_ADMIN = 2, SRV_TAG_SIGNAL = 3, SRV_TAG_WAKE = 4 };

enum conn_kind { CONN_AP = XATM_ROLE_AP, CONN_ADMIN = XATM_ROLE_ADMIN };

/* One client connection. */
typedef struct conn {
    int fd;                 /* socket, -1 once closed */
    uint64_t id;            /* never reused, never 0: the gtx table's owner id */
    enum conn_kind kind;    /* which socket it came in on */
    bool helloed;           /* HELLO accepted */
    bool dead;              /* closed; waiting in the graveyard */
    bool close_after_write; /* close once out is drained (after an ERROR reply) */
    bool want_out;          /* EPOLLOUT is registered */
    bool cut;               /* fault "partition": input discarded, nothing sent, not closed */
    bool write_dead;        /* a send failed (the peer is gone): replies are dropped, what
                               it sent before is still processed, until its end of file */
    pid_t peer_pid;         /* SO_PEERCRED pid (0 if unavailable) */
    uid_t peer_uid;         /* SO_PEERCRED uid (valid when peer_known) */
    bool peer_known;        /* SO_PEERCRED answered */
    char client_name[XATM_CLIENT_NAME_MAX + 1]; /* from HELLO */
    xatm_buf in;            /* the bytes of one incomplete frame (empty, unallocated, when
                               none); when it holds 12 or more, that header was valid */
    xatm_buf out;           /* encoded replies not yet written */
    bool has_lease;         /* leased gtrids (BEGIN with XATM_BEGIN_RESERVE) not begun: */
    uint64_t lease_lo, lease_hi; /* ... their seqs [lo, hi) in this epoch (gtx_reserve) */
    char lease_begun[XATM_GTRID_MAX + 1]; /* the gtrid last begun from it ("" none): the
                                             messages after its first need no parse */
    uint8_t lease_protocol; /* ... and the protocol and timeout their BEGIN_OK granted */
    uint32_t lease_timeout_ms;
    bool held;              /* on the server's held list: out holds a reply written at the
                               end of this pass, or with the next reply sent sooner */
    struct conn *held_next; /* that list */
    struct conn *prev, *next; /* live list, or graveyard (next only) */
} conn;

/* An admin request whose reply waits for a recovery pass. */
typedef struct waiting {
    conn *c;              /* the admin connection (entries die with it) */
    uint32_t req_id;      /* the ADMIN request's req_id */
    uint64_t ticket;      /* the pass it waits for */
    uint64_t start_ms;    /* when it was asked (monotonic) */
    uint64_t deadline_ms; /* when to give up (monotonic) */
} waiting;

/* A decision waiting for the batch's flush. */
typedef struct parked {
    conn *c;           /* connection to answer (may be dead by then); NULL: no reply */
    uint32_t req_id;   /* the VOTE's / CANCOMMIT's req_id */
    uint64_t seq;      /* the transaction */
    uint8_t kind;      /* the forced record: XATM_DL_COMMIT, _PRECOMMIT or _ABORT */
    char gtrid[XATM_GTRID_MAX + 1]; /* its gtrid, for the reply */
    char reason[XATM_REASON_MAX + 1]; /* ABORT: why (the reply's reason, the log line) */
} parked;

struct server {
    struct tm_ctx *ctx;            /* the daemon */
    int epfd;                      /* epoll instance */
    int ap_fd, admin_fd;           /* listening sockets, -1 when closed */
    int sig_fd;                    /* signalfd for SIGTERM / SIGINT */
    int wake_fd;                   /* eventfd: other threads wake the loop */
    char ap_path[sizeof(((struct sockaddr_un *)0)->sun_path)];    /* tm.socket */
    char admin_path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* tm.admin_socket */
    bool ap_bound, admin_bound;    /* we created the files (unlink them at close) */
    bool listeners_paused;         /* out of fds: listeners off until a connection closes */
    conn *conns;                   /* live connections (doubly linked) */
    conn *graveyard;               /* dead connections of this batch (singly linked) */
    conn *held;                    /* connections with a held reply (srv_send_held) */
    size_t n_conns;                /* live connections */
    uint64_t next_conn_id;         /* id for the next accept */
    parked *parked;                /* DECISIONs waiting for the flush */
    size_t n_parked, cap_parked;   /* used / allocated */
    waiting *waiting;              /* admin replies waiting for a recovery pass */
    size_t n_waiting, cap_waiting; /* used / allocated */
    bool stopping;                 /* a signal asked us to stop */
    bool closing_all;              /* srv_close_conns at work: conn losses are summed up */
    size_t closed_aborted;         /* ...active transactions aborted meanwhile */
    size_t closed_orphaned;        /* ...decided transactions orphaned meanwhile */
    int exit_rc;                   /* 0, or XATM_ELOG after a fatal log failure */
    uint8_t *rbuf;                 /* SRV_READ_CHUNK bytes: every recv lands here */
    uint64_t gtx_deadline_ms;      /* gtx_next_deadline before this batch's epoll_wait */
    bool log_appended;             /* this loop appended records since its last flush check */
    uint64_t lazy_since_ms;        /* when only unforced records were first seen waiting for
                                      a flush (monotonic ms); 0 when none wait */
};

/* ================================================================== sockets */

/* Prepares `path` for bind: absent is fine, a stale socket is removed, a live one (another
 * xatmd answers) or a non-socket is refused. 0 or XATM_EBUSY / XATM_EIO (logged). */
static int srv_check_path(const char *path, const char *what)
{
    struct stat st;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path || !*path || strlen(path) >= sizeof sa.sun_path) {
        tm_log(NULL, "Use a path shorter than 108 bytes.", "%s path \"%s\" is too long", what,
               path ? path : "");
        return XATM_ECONFIG;
    }
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return 0;
        tm_log(strerror(errno), NULL, "cannot use %s %s", what, path);
        return XATM_EIO;
    }
    if (!S_ISSOCK(st.st_mode)) {
        tm_log("The path exists and is not a socket.",
               "Remove the file or configure another path.", "cannot use %s %s", what, path);
        return XATM_EIO;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        tm_log(strerror(errno), NULL, "cannot create a socket");
        return XATM_EIO;
    }
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int err = errno;
    close(fd);
    if (rc == 0) {
        tm_log("Something accepts connections on that socket.",
               "Stop the other xatmd first, or give this one other socket paths.",
               "another xatmd is running on %s %s", what, path);
        return XATM_EBUSY;
    }
    if (err != ECONNREFUSED) {
        tm_log(strerror(err), NULL, "cannot probe %s %s", what, path);
        return XATM_EIO;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        tm_log(strerror(errno), NULL, "cannot remove stale %s %s", what, path);
        return XATM_EIO;
    }
    tm_log(NULL, NULL, "removed stale %s %s (no process answered on it)", what, path);
    return 0;
}

/* Creates, binds (permissions `mode`) and listens on path. 0 or a negative code (logged). */
static int srv_listen(const char *path, unsigned mode, const char *what, int *out_fd)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int rc = srv_check_path(path, what);
    if (rc) return rc;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        tm_log(strerror(errno), NULL, "cannot create %s", what);
        return XATM_EIO;
    }
    /* created owner-only, widened to `mode` after bind: never wider than asked */
    mode_t old = umask(0177);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    int err = errno;
    umask(old);
    if (rc != 0) {
        tm_log(strerror(err),
               err == ENOENT || err == EACCES ? "Check that the directory exists and is writable "
                                                "by xatmd's user."
                                              : NULL,
               "cannot bind %s %s", what, path);
        goto fail_close_fd;
    }
    if (chmod(path, mode) != 0) {
        err = errno;
        tm_log(strerror(err), NULL, "cannot set the permissions of %s %s", what, path);
        goto fail_unlink;
    }
    if (listen(fd, SRV_LISTEN_BACKLOG) != 0) {
        err = errno;
        tm_log(strerror(err), NULL, "cannot listen on %s %s", what, path);
        goto fail_unlink;
    }
    *out_fd = fd;
    return 0;

fail_unlink:
    unlink(path);
fail_close_fd:
    close(fd);
    return XATM_EIO;
}

int server_preflight(const xatm_config *cfg)
{
    int rc = srv_check_path(cfg->socket_path, "AP socket");
    if (rc == 0) rc = srv_check_path(cfg->admin_socket_path, "admin socket");
    return rc;
}

static int srv_epoll_add(struct server *s, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : XATM_EIO;
}

int server_open(struct tm_ctx *ctx, struct server **out)
{
    const xatm_config *cfg = ctx->cfg;
    int rc = XATM_ENOMEM;
    struct server *s = calloc(1, sizeof *s);
    if (!s) return XATM_ENOMEM;
    s->ctx = ctx;
    s->ap_fd = s->admin_fd = s->sig_fd = s->wake_fd = -1;
    s->next_conn_id = 1;
    s->rbuf = malloc(SRV_READ_CHUNK);
    if (!s->rbuf) {
        tm_log(NULL, NULL, "cannot create the event loop: out of memory");
        goto fail_free_server;
    }
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        tm_log(strerror(errno), NULL, "cannot create the event loop (epoll)");
        rc = XATM_EIO;
        goto fail_free_server;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    s->sig_fd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->sig_fd < 0 || s->wake_fd < 0) {
        tm_log(strerror(errno), NULL, "cannot create the signal and wake-up descriptors");
        rc = XATM_EIO;
        goto fail_close_fds;
    }
    if ((rc = srv_listen(cfg->socket_path, cfg->socket_mode & 0777, "AP socket", &s->ap_fd)) != 0)
        goto fail_close_fds;
    snprintf(s->ap_path, sizeof s->ap_path, "%s", cfg->socket_path);
    s->ap_bound = true;
    if ((rc = srv_listen(cfg->admin_socket_path, 0600, "admin socket", &s->admin_fd)) != 0)
        goto fail_close_fds;
    snprintf(s->admin_path, sizeof s->admin_path, "%s", cfg->admin_socket_path);
    s->admin_bound = true;
    if (srv_epoll_add(s, s->ap_fd, EPOLLIN, SRV_TAG_AP) ||
        srv_epoll_add(s, s->admin_fd, EPOLLIN, SRV_TAG_ADMIN) ||
        srv_epoll_add(s, s->sig_fd, EPOLLIN, SRV_TAG_SIGNAL) ||
        srv_epoll_add(s, s->wake_fd, EPOLLIN, SRV_TAG_WAKE)) {
        tm_log(strerror(errno), NULL, "cannot register descriptors with epoll");
        rc = XATM_EIO;
        goto fail_close_fds;
    }
    *out = s;
    return 0;

fail_close_fds:
    server_close(s);
    return rc;
fail_free_server:
    free(s->rbuf);
    free(s);
    return rc;
}

void server_wake(struct server *s)
{
    if (!s || s->wake_fd < 0) return;
    uint64_t one = 1;
    ssize_t w = write(s->wake_fd, &one, sizeof one);
    (void)w; /* EAGAIN: the counter is already nonzero, the loop wakes anyway */
}

/* Stops accepting: closes the listening sockets and removes their files. */
static void srv_close_listeners(struct server *s)
{
    if (s->ap_fd >= 0) close(s->ap_fd);
    if (s->admin_fd >= 0) close(s->admin_fd);
    s->ap_fd = s->admin_fd = -1;
    if (s->ap_bound) unlink(s->ap_path);
    if (s->admin_bound) unlink(s->admin_path);
    s->ap_bound = s->admin_bound = false;
}

/* ================================================================== connections */

static const char *srv_kind_name(enum conn_kind k)
{
    return k == CONN_AP ? "AP" : "admin";
}

static void srv_free_conn(conn *c)
{
    xatm_buf_free(&c->in);
    xatm_buf_free(&c->out);
    free(c);
}

/* Closes c now (fd, transactions) and moves it to the graveyard. `why` (may be NULL) is
 * logged naming the peer. */
static void srv_conn_kill(struct server *s, conn *c, const char *why)
{
    if (c->dead) return;
    if (why)
        tm_log(NULL, NULL, "closing %s connection from pid %ld: %s", srv_kind_name(c->kind),
               (long)c->peer_pid, why);
    c->dead = true;
    for (size_t i = 0; i < s->n_waiting;) {
        if (s->waiting[i].c == c)
            s->waiting[i] = s->waiting[--s->n_waiting];
        else
            i++;
    }
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = NULL;
    c->next = s->graveyard;
    s->graveyard = c;
    s->n_conns--;
    if (c->kind == CONN_AP && s->ctx->gtx) {
        size_t orphaned = 0, aborted = gtx_conn_lost(s->ctx->gtx, c->id, &orphaned);
        if (s->closing_all) {
            s->closed_aborted += aborted;
            s->closed_orphaned += orphaned;
        } else if (aborted || orphaned) {
            char what[160];
            if (aborted && orphaned)
                snprintf(what, sizeof what,
                         "%zu active transaction%s rolled back, %zu decided one%s left to recovery",
                         aborted, aborted == 1 ? "" : "s", orphaned, orphaned == 1 ? "" : "s");
            else if (aborted)
                snprintf(what, sizeof what, "%zu active transaction%s rolled back", aborted,
                         aborted == 1 ? "" : "s");
            else
                snprintf(what, sizeof what, "%zu decided transaction%s left to recovery",
                         orphaned, orphaned == 1 ? "" : "s");
            tm_log(orphaned ? "Recovery commits the prepared branches of a decided transaction "
                              "whose application is gone."
                            : NULL,
                   NULL, "AP connection from pid %ld closed: %s", (long)c->peer_pid, what);
        }
        if (orphaned && !s->closing_all) recovery_wake(s->ctx->rec);
    }
    if (s->listeners_paused) {
        s->listeners_paused = false;
        if (s->ap_fd >= 0) srv_epoll_add(s, s->ap_fd, EPOLLIN, SRV_TAG_AP);
        if (s->admin_fd >= 0) srv_epoll_add(s, s->admin_fd, EPOLLIN, SRV_TAG_ADMIN);
    }
}

static void srv_bury(struct server *s)
{
    while (s->graveyard) {
        conn *c = s->graveyard;
        s->graveyard = c->next;
        srv_free_conn(c);
    }
}

static void srv_set_want_out(struct server *s, conn *c, bool want)
{
    if (c->dead || c->want_out == want) return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0u), .data.ptr = c};
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->want_out = want;
}

/* Writes as much of c->out as the socket takes. */
static void srv_conn_write(struct server *s, conn *c)
{
    if (c->cut) return;
    if (c->write_dead) {
        xatm_buf_consume(&c->out, c->out.len);
        return;
    }
    while (!c->dead && c->out.len) {
        ssize_t w = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
        if (w > 0) {
            xatm_buf_consume(&c->out, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            srv_set_want_out(s, c, true);
            return;
        }
        /* the peer went away (EPIPE, ECONNRESET): nothing more can be sent, but what it
         * wrote before it went is still read and acted on, e.g. the ROLLBACK or DONE that
         * followed a frame whose reply failed here; its end of file ends the connection */
        c->write_dead = true;
        xatm_buf_consume(&c->out, c->out.len);
        srv_set_want_out(s, c, false);
        if (c->close_after_write) srv_conn_kill(s, c, NULL);
        return;
    }
    if (c->dead) return;
    if (c->out.cap > SRV_OUT_KEEP) xatm_buf_free(&c->out); /* e.g. after a large admin reply */
    srv_set_want_out(s, c, false);
    if (c->close_after_write) srv_conn_kill(s, c, NULL);
}

/* Queues one message to c and, with `now`, writes it at once (so a fault point after it
 * sees it sent); otherwise it is held: it goes out with the next reply written to c in
 * this pass (a DECISION after the batch's flush), or at the end of the pass
 * (srv_write_held). Held: the answers nobody waits for at once (a lease's BEGIN_OK). */
static void srv_queue_reply(struct server *s, conn *c, const xatm_msg *m, uint32_t req_id,
                            bool now)
{
    if (c->dead || c->cut) return;
    int rc = xatm_msg_encode(m, req_id, &c->out);
    if (rc != 0) {
        char why[128];
        snprintf(why, sizeof why, "cannot encode %s reply: %s", xatm_msg_type_name(m->type),
                 xatm_strerror(rc));
        srv_conn_kill(s, c, why);
        return;
    }
    if (c->out.len > SRV_OUT_LIMIT) {
        srv_conn_kill(s, c, "it does not read its replies");
        return;
    }
    if (now) {
        srv_conn_write(s, c);
    } else if (!c->held) {
        c->held = true;
        c->held_next = s->held;
        s->held = c;
    }
}

static void srv_send(struct server *s, conn *c, const xatm_msg *m, uint32_t req_id)
{
    srv_queue_reply(s, c, m, req_id, true);
}

/* Writes the held replies (end of a pass, before the graveyard is emptied). */
static void srv_write_held(struct server *s)
{
    while (s->held) {
        conn *c = s->held;
        s->held = c->held_next;
        c->held = false;
        c->held_next = NULL;
        if (!c->dead) srv_conn_write(s, c);
    }
}

static void srv_send_error(struct server *s, conn *c, uint32_t req_id, int code,
                           const char *text)
{
    xatm_msg m;
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_ERROR;
    m.u.error.code = code;
    snprintf(m.u.error.message, sizeof m.u.error.message, "%s", text);
    srv_send(s, c, &m, req_id);
}

/* A well-formed message the connection may not send: ERROR, then close. */
static void srv_violation(struct server *s, conn *c, uint32_t req_id, const char *why)
{
    tm_log(NULL, NULL, "closing %s connection from pid %ld: protocol violation: %s",
           srv_kind_name(c->kind), (long)c->peer_pid, why);
    c->close_after_write = true;
    srv_send_error(s, c, req_id, XATM_EPROTO, why);
    if (!c->dead && c->out.len == 0) srv_conn_kill(s, c, NULL);
}

static void srv_send_decision(struct server *s, conn *c, uint32_t req_id, const char *gtrid,
                              uint8_t outcome, const char *reason)
{
    xatm_msg m;
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_DECISION;
    xatm_str_copy(m.u.decision.gtrid, sizeof m.u.decision.gtrid, gtrid);
    m.u.decision.outcome = outcome;
    xatm_str_copy(m.u.decision.reason, sizeof m.u.decision.reason, reason ? reason : "");
    srv_send(s, c, &m, req_id);
}

static void srv_accept(struct server *s, int lfd, enum conn_kind kind)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                tm_log("New connections wait until a connection closes.",
                       "Raise the open-files limit (ulimit -n) of xatmd.",
                       "cannot accept a connection: %s", strerror(errno));
                if (s->ap_fd >= 0) epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->ap_fd, NULL);
                if (s->admin_fd >= 0) epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->admin_fd, NULL);
                s->listeners_paused = true;
                return;
            }
            tm_log(NULL, NULL, "accept failed: %s", strerror(errno));
            return;
        }
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            tm_log(NULL, NULL, "cannot accept a connection: out of memory");
            return;
        }
        c->fd = fd;
        c->id = s->next_conn_id++;
        c->kind = kind;
        struct ucred cred;
        socklen_t len = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            c->peer_pid = cred.pid;
            c->peer_uid = cred.uid;
            c->peer_known = true;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            tm_log(NULL, NULL, "cannot register a connection: %s", strerror(errno));
            close(fd);
            free(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns) s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
    }
}

/* ================================================================== handlers */

static void srv_on_hello(struct server *s, conn *c, uint32_t req_id, const xatm_msg *m)
{
    const xatm_config *cfg = s->ctx->cfg;
    if (c->helloed) {
        srv_violation(s, c, req_id, "HELLO sent twice");
        return;
    }
    if (m->u.hello.role != (uint8_t)c->kind) {
        char why[160];
        snprintf(why, sizeof why, "HELLO with role %s on the %s socket",
                 m->u.hello.role == XATM_ROLE_AP ? "AP" : "admin", srv_kind_name(c->kind));
        srv_violation(s, c, req_id, why);
        return;
    }
    c->helloed = true;
    snprintf(c->client_name, sizeof c->client_name, "%s", m->u.hello.client_name);
    xatm_msg r;
    memset(&r, 0, sizeof r);
    r.type = XATM_MSG_HELLO_OK;
    snprintf(r.u.hello_ok.tm_id, sizeof r.u.hello_ok.tm_id, "%s", cfg->tm_id);
    r.u.hello_ok.epoch = s->ctx->epoch;
    r.u.hello_ok.format_id = cfg->format_id;
    r.u.hello_ok.default_protocol = cfg->default_protocol == XATM_PROTOCOL_3PC
                                        ? XATM_PROTOCOL_3PC
                                        : XATM_PROTOCOL_2PC;
    r.u.hello_ok.timeout_ms = cfg->transaction_timeout_ms;
    snprintf(r.u.hello_ok.decision_rm, sizeof r.u.hello_ok.decision_rm, "%s",
             cfg->decision_rm ? cfg->decision_rm : "");
    r.u.hello_ok.decision_retention_ms = cfg->decision_retention_ms;
    srv_send(s, c, &r, req_id);
}

static void srv_on_begin(struct server *s, conn *c, uint32_t req_id, const xatm_msg *m)
{
    const xatm_config *cfg = s->ctx->cfg;
    if (s->stopping) {
        srv_send_error(s, c, req_id, XATM_ESHUTDOWN, "xatmd is shutting down");
        return;
    }
    uint8_t protocol = m->u.begin.protocol ? m->u.begin.protocol : cfg->default_protocol;
    if (protocol != XATM_PROTOCOL_3PC) protocol = XATM_PROTOCOL_2PC;
    uint32_t timeout = m->u.begin.timeout_ms ? m->u.begin.timeout_ms : cfg->transaction_timeout_ms;
    if (timeout == 0) timeout = 60000;
    gtx_info g;
    int rc;
    unsigned count = 1;
    if (m->u.begin.flags & XATM_BEGIN_RESERVE) {
        /* the gtrids of this connection's next transactions; each begins with the first
         * message that names it (srv_begin_reserved) */
        count = m->u.begin.count; /* 1..XATM_LEASE_MAX (the codec's rule) */
        uint64_t first = 0;
        rc = gtx_reserve(s->ctx->gtx, c->id, count, g.gtrid, sizeof g.gtrid, &first);
        if (rc == 0) {
            c->has_lease = true;
            c->lease_lo = first;
            c->lease_hi = first + count;
            c->lease_protocol = protocol;
            c->lease_timeout_ms = timeout;
        }
    } else {
        rc = gtx_begin(s->ctx->gtx, c->id, (uint32_t)c->peer_pid, protocol, timeout,
                       tm_now_ms(), &g);
    }
    if (rc != 0) {
        char text[160];
        snprintf(text, sizeof text, "cannot begin a transaction: %s", xatm_strerror(rc));
        srv_send_error(s, c, req_id, rc, text);
        return;
    }
    xatm_msg r;
    memset(&r, 0, sizeof r);
    r.type = XATM_MSG_BEGIN_OK;
    xatm_str_copy(r.u.begin_ok.gtrid, sizeof r.u.begin_ok.gtrid, g.gtrid);
    r.u.begin_ok.protocol = protocol;
    r.u.begin_ok.timeout_ms = timeout;
    r.u.begin_ok.count = (uint16_t)count;
    xatm_fault_hit("tm.after_begin");
    /* a lease's answer rides with the DECISION of the VOTE before it */
    srv_queue_reply(s, c, &r, req_id, !(m->u.begin.flags & XATM_BEGIN_RESERVE));
}

/* Begins the transaction of gtrid when it is an unused seq of the connection's lease: the
 * first ENLIST, VOTE, CANCOMMIT, DONE or ROLLBACK of a transaction on a leased gtrid. Its
 * deadline counts from here; the lease's seqs before it are used up (libxatm takes them in
 * order, so a skipped one belongs to a transaction that never wrote to xatmd). Failing that
 * (out of memory: leases already count against the live limit), the message finds the
 * transaction unknown, which aborts it (presumed abort). */
static void srv_begin_reserved(struct server *s, conn *c, const char *gtrid)
{
    if (!c->has_lease || strcmp(gtrid, c->lease_begun) == 0) return;
    xatm_gtrid_parts p;
    if (xatm_gtrid_parse(gtrid, &p) != 0 || p.epoch != s->ctx->epoch ||
        p.seq < c->lease_lo || p.seq >= c->lease_hi || strcmp(p.tm_id, s->ctx->cfg->tm_id) != 0)
        return;
    c->lease_lo = p.seq + 1;
    c->has_lease = c->lease_lo < c->lease_hi;
    xatm_str_copy(c->lease_begun, sizeof c->lease_begun, gtrid);
    int rc = gtx_begin_reserved(s->ctx->gtx, c->id, (uint32_t)c->peer_pid, gtrid,
                                c->lease_protocol, c->lease_timeout_ms, tm_now_ms(), NULL);
    if (rc != 0)
        tm_log("Its messages are refused as those of an unknown transaction: it aborts.",
               NULL, "cannot begin leased transaction %s of pid %ld: %s", gtrid,
               (long)c->peer_pid, xatm_strerror(rc));
}

static void srv_on_enlist(struct server *s, conn *c, const xatm_msg *m)
{
    int rc = gtx_enlist(s->ctx->gtx, c->id, m->u.enlist.gtrid, m->u.enlist.rm,
                        m->u.enlist.session_id);
    if (rc == XATM_EINVAL)
        tm_log("The branch is not recorded; a VOTE naming it aborts the transaction.", NULL,
               "ENLIST from pid %ld for %s names RM \"%s\", which is not configured",
               (long)c->peer_pid, m->u.enlist.gtrid, m->u.enlist.rm);
    else if (rc == XATM_ELIMIT)
        tm_log("The transaction aborts at its vote.", NULL,
               "ENLIST from pid %ld: %s has more than %d branches", (long)c->peer_pid,
               m->u.enlist.gtrid, XATM_MAX_BRANCHES);
    xatm_fault_hit("tm.after_enlist");
}

static int srv_park(struct server *s, conn *c, uint32_t req_id, uint64_t seq, const char *gtrid,
                    uint8_t kind, const char *reason)
{
    if (s->n_parked == s->cap_parked) {
        size_t cap = s->cap_parked ? s->cap_parked * 2 : 64;
        parked *p = realloc(s->parked, cap * sizeof *p);
        if (!p) return XATM_ENOMEM;
        s->parked = p;
        s->cap_parked = cap;
    }
    parked *p = &s->parked[s->n_parked++];
    p->c = c;
    p->req_id = req_id;
    p->seq = seq;
    p->kind = kind;
    xatm_str_copy(p->gtrid, sizeof p->gtrid, gtrid);
    xatm_str_copy(p->reason, sizeof p->reason, reason ? reason : "");
    return 0;
}

/* The fault point just after a forced record of `kind` was appended. */
static void srv_fault_before_force(uint8_t kind)
{
    xatm_fault_hit(kind == XATM_DL_PRECOMMIT ? "tm.before_precommit_force"
                   : kind == XATM_DL_ABORT   ? "tm.before_abort_force"
                                             : "tm.before_commit_force");
}

static const char *srv_record_name(uint8_t kind)
{
    return kind == XATM_DL_PRECOMMIT ? "PRECOMMIT" : kind == XATM_DL_ABORT ? "ABORT" : "COMMIT";
}

static void srv_log_failed(struct server *s, int rc, const char *during)
{
    atomic_store(&s->ctx->fatal, true);
    if (s->exit_rc == 0) s->exit_rc = XATM_ELOG;
    tm_log("No commit decision of this batch is sent: each may or may not be durable. Every "
           "application connection is closed (their transactions end with outcome unknown); "
           "after a restart, recovery resolves every transaction by what the log holds.",
           "Check the disk of the log directory (space, permissions, I/O errors), then "
           "restart xatmd.",
           "decision log failure during %s: %s; xatmd stops", during, xatm_strerror(rc));
}

/* VOTE (2PC, or 3PC's PreCommit acknowledgement) and CANCOMMIT (3PC): gtx decides; a
 * decision that needs a forced record is appended here and answered after the flush. */
static void srv_on_vote(struct server *s, conn *c, uint32_t req_id, const xatm_msg *m,
                        bool cancommit)
{
    struct tm_ctx *ctx = s->ctx;
    const char *what = cancommit ? "CANCOMMIT" : "VOTE";
    gtx_vote_result v;
    int rc;
    /* under log_mu: a transaction that leaves the table here (all read-only after
     * PRECOMMIT) gets its END before a rotation can look */
    pthread_mutex_lock(&ctx->log_mu);
    if (cancommit)
        rc = gtx_cancommit(ctx->gtx, c->id, m->u.vote.gtrid, m->u.vote.e, m->u.vote.n, &v);
    else
        rc = gtx_vote(ctx->gtx, c->id, m->u.vote.gtrid, m->u.vote.e, m->u.vote.n, &v);
    int lrc = 0;
    if (rc == 0 && (v.must_log || v.must_end)) s->log_appended = true;
    if (rc == 0 && v.must_log) lrc = xatm_declog_append(ctx->log, &v.rec, true);
    if (rc == 0 && v.must_end) {
        xatm_declog_record end;
        memset(&end, 0, sizeof end);
        end.type = XATM_DL_END;
        xatm_str_copy(end.gtrid, sizeof end.gtrid, m->u.vote.gtrid);
        lrc = xatm_declog_append(ctx->log, &end, false);
    }
    if (lrc != 0) atomic_store(&ctx->fatal, true); /* before unlocking: no flush after it */
    pthread_mutex_unlock(&ctx->log_mu);
    if (rc != 0) {
        char text[200];
        snprintf(text, sizeof text,
                 "%s for %s refused: the transaction is not %s or belongs to another "
                 "connection",
                 what, m->u.vote.gtrid, cancommit ? "active" : "active or precommitted");
        srv_send_error(s, c, req_id, rc, text);
        return;
    }
    if (lrc != 0) {
        char during[64];
        snprintf(during, sizeof during, "append of %s record",
                 v.must_end ? "an END" : srv_record_name(v.rec.type));
        srv_log_failed(s, lrc, during);
        return;
    }
    /* not live here: a decision recovery holds (adopted, replayed, forced) is the answer;
     * the gtx table hands a decision over to the registry before it forgets it, so asking
     * the table first and the registry second never misses one */
    if (v.unknown != GTX_UNK_NONE) tm_decisions_answer_vote(ctx->decisions, m->u.vote.gtrid, &v);
    if (v.error) {
        srv_send_error(s, c, req_id, v.error, v.reason);
        return;
    }
    if (v.must_end && v.protocol == XATM_PROTOCOL_3PC)
        recovery_markers_ended(ctx->rec, m->u.vote.gtrid);
    if (!v.must_log) {
        srv_send_decision(s, c, req_id, m->u.vote.gtrid, v.outcome, v.reason);
        return;
    }
    srv_fault_before_force(v.rec.type);
    if (srv_park(s, c, req_id, v.seq, m->u.vote.gtrid, v.rec.type, v.reason) != 0)
        srv_log_failed(s, XATM_ENOMEM, "parking a decision");
}

/* Appends the ABORT record of a PRECOMMITTED transaction a ROLLBACK, DONE abort or its ack
 * deadline has just moved to ABORT_PENDING (log_mu held) and parks it without a reply.
 * 0, or the log's error (ctx->fatal is set; the caller reports it once log_mu is free). */
static int srv_append_abort(struct server *s, uint64_t seq, const char *gtrid,
                            const xatm_declog_record *rec, const char *reason)
{
    s->log_appended = true;
    int rc = xatm_declog_append(s->ctx->log, rec, true);
    if (rc == 0 && srv_park(s, NULL, 0, seq, gtrid, XATM_DL_ABORT, reason) != 0) rc = XATM_ENOMEM;
    if (rc != 0) atomic_store(&s->ctx->fatal, true);
    return rc;
}

static void srv_on_done(struct server *s, conn *c, const xatm_msg *m)
{
    struct tm_ctx *ctx = s->ctx;
    gtx_done_result d;
    int rc = 0;
    pthread_mutex_lock(&ctx->log_mu);
    int grc = gtx_done(ctx->gtx, c->id, m->u.done.gtrid, m->u.done.outcome, m->u.done.e,
                       m->u.done.n, &d);
    if (grc == 0 && d.action == GTX_DONE_ABORT_LOG)
        rc = srv_append_abort(s, d.seq, m->u.done.gtrid, &d.rec,
                              "transaction rolled back by its AP after PreCommit (DONE abort)");
    if (grc == 0 && d.action == GTX_DONE_ENDED) {
        xatm_declog_record rec;
        memset(&rec, 0, sizeof rec);
        rec.type = XATM_DL_END;
        xatm_str_copy(rec.gtrid, sizeof rec.gtrid, m->u.done.gtrid);
        xatm_fault_hit("tm.before_end");
        s->log_appended = true;
        rc = xatm_declog_append(ctx->log, &rec, false);
        if (rc != 0) atomic_store(&ctx->fatal, true); /* before unlocking, as above */
    }
    pthread_mutex_unlock(&ctx->log_mu);
    if (rc != 0) {
        srv_log_failed(s, rc, d.action == GTX_DONE_ENDED ? "append of an END record"
                                                         : "append of an ABORT record");
        return;
    }
    if (grc == 0 && d.action == GTX_DONE_ABORT_LOG) srv_fault_before_force(XATM_DL_ABORT);
    if (grc == 0 && d.action == GTX_DONE_ENDED) recovery_forget_finished(ctx->rec, m->u.done.gtrid);
    if (grc == 0 && d.action == GTX_DONE_ENDED && d.protocol == XATM_PROTOCOL_3PC)
        recovery_markers_ended(ctx->rec, m->u.done.gtrid);
    if (grc == XATM_ESTATE)
        tm_log(NULL, NULL, "DONE from pid %ld for %s ignored: another connection owns it",
               (long)c->peer_pid, m->u.done.gtrid);
    if (grc == 0 && d.note[0])
        tm_log(NULL, NULL, "DONE from pid %ld for %s: %s", (long)c->peer_pid, m->u.done.gtrid,
               d.note);
    if (grc == 0 && (d.action == GTX_DONE_ORPHANED || d.wake_recovery)) recovery_wake(ctx->rec);
}

static void srv_on_rollback(struct server *s, conn *c, const xatm_msg *m)
{
    struct tm_ctx *ctx = s->ctx;
    gtx_info g;
    xatm_declog_record rec;
    int lrc = 0;
    pthread_mutex_lock(&ctx->log_mu);
    int rc = gtx_rollback(ctx->gtx, c->id, m->u.rollback.gtrid, &rec);
    if (rc == 0 && rec.type == XATM_DL_ABORT) {
        gtx_info a;
        if (gtx_lookup(ctx->gtx, m->u.rollback.gtrid, &a) == 0)
            lrc = srv_append_abort(s, a.seq, m->u.rollback.gtrid, &rec,
                                   "transaction rolled back by its AP after PreCommit");
    }
    pthread_mutex_unlock(&ctx->log_mu);
    if (lrc != 0) {
        srv_log_failed(s, lrc, "append of an ABORT record");
        return;
    }
    if (rc == 0 && rec.type == XATM_DL_ABORT) srv_fault_before_force(XATM_DL_ABORT);
    if (rc == XATM_ESTATE && gtx_lookup(ctx->gtx, m->u.rollback.gtrid, &g) == 0)
        tm_log(NULL, NULL, "ROLLBACK from pid %ld for %s ignored: %s", (long)c->peer_pid,
               m->u.rollback.gtrid,
               g.owner != c->id                   ? "another connection owns it"
               : g.state == GTX_PRECOMMIT_PENDING ? "its PRECOMMIT is being made durable"
               : g.state == GTX_ABORT_PENDING     ? "it is already being aborted"
                                                  : "commit was already decided");
}

/* Sends an ADMIN_REPLY carrying json (or an ERROR when it is too large). */
static void srv_send_admin_reply(struct server *s, conn *c, uint32_t req_id, int32_t code,
                                 const xatm_buf *json)
{
    if (json->len > XATM_FRAME_MAX_REPLY - 64) {
        srv_send_error(s, c, req_id, XATM_ELIMIT, "the reply exceeds the frame size limit");
        return;
    }
    xatm_msg r;
    memset(&r, 0, sizeof r);
    r.type = XATM_MSG_ADMIN_REPLY;
    r.u.admin_reply.code = code;
    r.u.admin_reply.json = (const char *)json->data;
    r.u.admin_reply.json_len = (uint32_t)json->len;
    srv_send(s, c, &r, req_id);
}

static void srv_on_admin(struct server *s, conn *c, uint32_t req_id, const xatm_msg *m)
{
    xatm_buf json = {0};
    int32_t code = 0;
    admin_peer peer = {c->peer_known, c->peer_pid, c->peer_uid};
    admin_deferred defer = {0, 0};
    int rc = admin_handle(s->ctx, &peer, m->u.admin.command, m->u.admin.arg, &json, &code,
                          &defer);
    if (rc == ADMIN_DEFERRED) {
        xatm_buf_free(&json);
        if (s->n_waiting == s->cap_waiting) {
            size_t cap = s->cap_waiting ? s->cap_waiting * 2 : 8;
            waiting *x = realloc(s->waiting, cap * sizeof *x);
            if (!x) {
                srv_send_error(s, c, req_id, XATM_ENOMEM, "out of memory");
                return;
            }
            s->waiting = x;
            s->cap_waiting = cap;
        }
        uint64_t now = tm_now_ms();
        s->waiting[s->n_waiting++] =
            (waiting){c, req_id, defer.ticket, now, now + defer.wait_ms};
        return;
    }
    if (rc != 0) {
        xatm_buf_free(&json);
        srv_send_error(s, c, req_id, XATM_ENOMEM, "out of memory building the reply");
        return;
    }
    srv_send_admin_reply(s, c, req_id, code, &json);
    xatm_buf_free(&json);
}

/* Answers the deferred admin requests whose pass ended or whose time is up. */
static void srv_answer_waiting(struct server *s)
{
    if (s->n_waiting == 0) return;
    uint64_t now = tm_now_ms();
    for (size_t i = 0; i < s->n_waiting;) {
        waiting wt = s->waiting[i];
        bool ended = s->ctx->rec && recovery_report_for(s->ctx->rec, wt.ticket, NULL);
        if (!ended && now < wt.deadline_ms) {
            i++;
            continue;
        }
        s->waiting[i] = s->waiting[--s->n_waiting];
        xatm_buf json = {0};
        int32_t code = 0;
        if (admin_recover_reply(s->ctx, wt.ticket, (uint32_t)(now - wt.start_ms), &json,
                                &code) != 0)
            srv_send_error(s, wt.c, wt.req_id, XATM_ENOMEM, "out of memory building the reply");
        else
            srv_send_admin_reply(s, wt.c, wt.req_id, code, &json);
        xatm_buf_free(&json);
        i = 0; /* a send may kill a connection and reorder the array: start over */
    }
}

/* Routes one decoded request. */
static void srv_dispatch(struct server *s, conn *c, uint32_t req_id, const xatm_msg *m)
{
    char why[160];
    if (m->type == XATM_MSG_HELLO) {
        srv_on_hello(s, c, req_id, m);
        return;
    }
    if (!c->helloed) {
        snprintf(why, sizeof why, "%s before HELLO", xatm_msg_type_name(m->type));
        srv_violation(s, c, req_id, why);
        return;
    }
    if (c->kind == CONN_ADMIN) {
        if (m->type == XATM_MSG_ADMIN) {
            srv_on_admin(s, c, req_id, m);
            return;
        }
    } else {
        switch (m->type) {
        case XATM_MSG_BEGIN:
            srv_on_begin(s, c, req_id, m);
            return;
        case XATM_MSG_ENLIST:
            srv_begin_reserved(s, c, m->u.enlist.gtrid);
            srv_on_enlist(s, c, m);
            return;
        case XATM_MSG_VOTE:
            srv_begin_reserved(s, c, m->u.vote.gtrid);
            srv_on_vote(s, c, req_id, m, false);
            return;
        case XATM_MSG_CANCOMMIT:
            srv_begin_reserved(s, c, m->u.vote.gtrid);
            srv_on_vote(s, c, req_id, m, true);
            return;
        case XATM_MSG_DONE:
            srv_begin_reserved(s, c, m->u.done.gtrid);
            srv_on_done(s, c, m);
            return;
        case XATM_MSG_ROLLBACK:
            srv_begin_reserved(s, c, m->u.rollback.gtrid);
            srv_on_rollback(s, c, m);
            return;
        default:
            break;
        }
    }
    snprintf(why, sizeof why, "%s is not accepted on the %s socket", xatm_msg_type_name(m->type),
             srv_kind_name(c->kind));
    srv_violation(s, c, req_id, why);
}

/* Explains why a 12-byte header was refused. */
static void srv_header_problem(const uint8_t *p, char *why, size_t size)
{
    uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    uint16_t flags = (uint16_t)(p[6] << 8 | p[7]);
    if (p[4] != XATM_PROTO_VERSION)
        snprintf(why, size, "malformed frame: protocol version %u (expected %u)", p[4],
                 XATM_PROTO_VERSION);
    else if (len > XATM_FRAME_MAX_REQUEST)
        snprintf(why, size, "malformed frame: body of %u bytes exceeds the limit of %u", len,
                 XATM_FRAME_MAX_REQUEST);
    else if (flags != 0)
        snprintf(why, size, "malformed frame: nonzero flags 0x%04x", flags);
    else
        snprintf(why, size, "malformed frame: unknown message type %u", p[5]);
}

/* Decodes and dispatches the whole frames at the start of p[0, len) and returns the bytes
 * they took. Stops at an incomplete frame, or once c died (a malformed frame: logged,
 * closed), was cut or is closing. A header is checked as soon as its 12 bytes are there,
 * before its body has arrived. */
static size_t srv_process_frames(struct server *s, conn *c, const uint8_t *p, size_t len)
{
    size_t off = 0;
    char why[200];
    while (!c->dead && !c->cut && !c->close_after_write &&
           len - off >= XATM_FRAME_HEADER_SIZE) {
        xatm_frame_header h;
        if (xatm_frame_header_decode(p + off, XATM_FRAME_MAX_REQUEST, &h) != 0) {
            srv_header_problem(p + off, why, sizeof why);
            srv_conn_kill(s, c, why);
            return off;
        }
        if (!xatm_msg_is_request(h.type)) {
            snprintf(why, sizeof why, "malformed frame: %s is not a request",
                     xatm_msg_type_name(h.type));
            srv_conn_kill(s, c, why);
            return off;
        }
        if (len - off - XATM_FRAME_HEADER_SIZE < h.body_len) break;
        xatm_msg m;
        if (xatm_msg_decode(&h, p + off + XATM_FRAME_HEADER_SIZE, &m) != 0) {
            snprintf(why, sizeof why, "malformed frame: %s body of %u bytes does not decode",
                     xatm_msg_type_name(h.type), h.body_len);
            srv_conn_kill(s, c, why);
            return off;
        }
        off += XATM_FRAME_HEADER_SIZE + h.body_len;
        srv_dispatch(s, c, h.req_id, &m);
    }
    return off;
}

/* The bytes that complete the frame c->in holds (its header first, then its body). */
static size_t srv_held_need(const conn *c)
{
    if (c->in.len < XATM_FRAME_HEADER_SIZE) return XATM_FRAME_HEADER_SIZE - c->in.len;
    xatm_frame_header h;
    /* checked when it arrived (conn.in); 0 makes the caller check it again, and close */
    if (xatm_frame_header_decode(c->in.data, XATM_FRAME_MAX_REQUEST, &h) != 0) return 0;
    size_t total = XATM_FRAME_HEADER_SIZE + (size_t)h.body_len;
    return total > c->in.len ? total - c->in.len : 0;
}

/* Feeds c the n bytes just read (into the loop's buffer): completes and dispatches the
 * frame c->in holds, if any, dispatches the whole frames that follow straight from data,
 * and keeps only the bytes of an incomplete last frame, in c->in. A connection that was cut
 * or is closing after an ERROR discards its input. */
static void srv_conn_input(struct server *s, conn *c, const uint8_t *data, size_t n)
{
    while (c->in.len && n) {
        size_t take = srv_held_need(c);
        if (take > n) take = n;
        if (xatm_buf_append(&c->in, data, take) != 0) {
            srv_conn_kill(s, c, "out of memory");
            return;
        }
        data += take;
        n -= take;
        size_t used = srv_process_frames(s, c, c->in.data, c->in.len);
        if (c->dead) return;
        if (c->cut || c->close_after_write) {
            xatm_buf_free(&c->in);
            return;
        }
        xatm_buf_consume(&c->in, used);
        if (c->in.len == 0) xatm_buf_free(&c->in); /* idle connections hold no buffer */
    }
    if (n == 0) return;
    size_t used = srv_process_frames(s, c, data, n);
    if (c->dead) return;
    if (c->cut || c->close_after_write) {
        xatm_buf_free(&c->in);
        return;
    }
    if (used < n && xatm_buf_append(&c->in, data + used, n - used) != 0)
        srv_conn_kill(s, c, "out of memory");
}

/* A cut connection (fault "partition"): what arrives is read and dropped; at EOF or an
 * error it is only taken off epoll (it stays open, its transactions untouched). */
static void srv_cut_readable(struct server *s, conn *c)
{
    char scratch[4096];
    for (;;) {
        ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        return;
    }
}

/* Carries out the fault action "partition" on c (see the file comment). */
static void srv_cut(struct server *s, conn *c, const char *gtrid)
{
    srv_conn_write(s, c); /* what was sent before the cut (normally already written) */
    if (c->dead) return;
    c->cut = true;
    xatm_buf_free(&c->in);
    xatm_buf_consume(&c->out, c->out.len);
    srv_set_want_out(s, c, false);
    tm_log("xatmd discards what the AP sends on it and sends it nothing; the connection "
           "stays open, the AP alive. Every other connection is served normally.",
           NULL,
           "fault injection: connection from pid %ld cut after the PreCommit of %s "
           "(partition)",
           (long)c->peer_pid, gtrid);
}

/* Reads what c sent (at most SRV_READ_BUDGET bytes per event, so one busy connection
 * cannot starve the others) and processes it chunk by chunk. Connections are registered
 * level-triggered (no EPOLLET): a recv that returned fewer bytes than asked has emptied
 * the socket, and anything that arrives later, or is left over the budget, or an EOF
 * behind the data, makes the next epoll_wait report c again. So no recv is made only to
 * hear EAGAIN. */
static void srv_conn_readable(struct server *s, conn *c)
{
    if (c->cut) {
        srv_cut_readable(s, c);
        return;
    }
    size_t budget = SRV_READ_BUDGET;
    while (!c->dead && budget) {
        ssize_t n = recv(c->fd, s->rbuf, SRV_READ_CHUNK, 0);
        if (n > 0) {
            srv_conn_input(s, c, s->rbuf, (size_t)n);
            if ((size_t)n < SRV_READ_CHUNK) return;
            budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        /* EOF or error: every whole frame before it was dispatched; an incomplete one is
         * dropped with the connection */
        srv_conn_kill(s, c, NULL);
        return;
    }
}

/* ================================================================== loop */

static void srv_on_signal(struct server *s)
{
    struct signalfd_siginfo si;
    while (read(s->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (s->stopping) continue;
        s->stopping = true;
        tm_log(NULL, NULL, "received %s; shutting down",
               si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
        srv_close_listeners(s);
    }
}

static void srv_log_timeout(const gtx_info *g, void *arg)
{
    (void)arg;
    if (g->n_branches <= 1)
        tm_log("libxatm commits a transaction of one branch in one phase on its own session "
               "and only reports it (DONE), so xatmd's timeout cannot stop that commit.",
               NULL,
               "transaction %s timed out after %u ms in state %s with %u enlisted branch%s: "
               "timed out at xatmd; a one-branch transaction commits in one phase at the "
               "application and may still commit",
               g->gtrid, g->timeout_ms, gtx_state_name(g->state), (unsigned)g->n_branches,
               g->n_branches == 1 ? "" : "es");
    else
        tm_log(NULL, NULL, "transaction %s timed out after %u ms in state %s; rolled back",
               g->gtrid, g->timeout_ms, gtx_state_name(g->state));
}

/* gtx_abort_durable's callback: the registry takes the ABORT decision over (log_mu held),
 * so recovery rolls back its branches and checks their marker rows. */
static void srv_abort_adopt(const gtx_info *g, void *arg)
{
    struct tm_ctx *ctx = arg;
    if (tm_decisions_adopt_abort(ctx->decisions, g, tm_now_ms()) != 0)
        tm_log("Recovery still rolls its branches back (presumed abort), but cannot check "
               "them for a heuristic mixed outcome.",
               NULL, "out of memory recording the ABORT decision of %s", g->gtrid);
}

/* The group-commit point: one flush, then the parked decisions (only if it succeeded).
 * Records that are all unforced (END) are not written on their own at once: they wait for
 * the next flush of a forced record, for SRV_LAZY_MS after they were first seen waiting
 * (srv_timeout_ms wakes the loop for that), for SRV_LAZY_BYTES to be buffered, or for
 * the shutdown (server.h). now: this turn's clock. */
static void srv_group_commit(struct server *s, uint64_t now)
{
    struct tm_ctx *ctx = s->ctx;
    if (atomic_load(&ctx->fatal)) return;
    /* the records other threads append they flush themselves: look at the log only when
     * this loop appended, or holds back unforced records */
    if (!s->log_appended && s->lazy_since_ms == 0 && s->n_parked == 0) return;
    s->log_appended = false;
    pthread_mutex_lock(&ctx->log_mu);
    size_t bytes = xatm_declog_pending_bytes(ctx->log);
    bool forced = xatm_declog_pending_forced(ctx->log);
    pthread_mutex_unlock(&ctx->log_mu);
    if (bytes == 0 && s->n_parked == 0) {
        s->lazy_since_ms = 0; /* someone else's flush wrote them */
        return;
    }
    if (s->n_parked == 0 && !forced && bytes < SRV_LAZY_BYTES && !s->stopping) {
        if (s->lazy_since_ms == 0) s->lazy_since_ms = now ? now : 1; /* 0 means none */
        if (now - s->lazy_since_ms < SRV_LAZY_MS) return;
    }
    s->lazy_since_ms = 0;
    int rc = tm_log_flush(ctx);
    if (rc != 0) {
        srv_log_failed(s, rc, "flush");
        return;
    }
    now = tm_now_ms(); /* the ack deadlines below count from the end of the flush */
    bool wake = false;
    uint32_t ack_ms = ctx->cfg->precommit_timeout_ms ? ctx->cfg->precommit_timeout_ms : 5000;
    for (size_t i = 0; i < s->n_parked; i++) {
        parked *p = &s->parked[i];
        bool gone = !p->c || p->c->dead;
        int drc;
        switch (p->kind) {
        case XATM_DL_PRECOMMIT:
            drc = gtx_precommit_durable(ctx->gtx, p->seq, now, ack_ms);
            /* only this loop moves a parked transaction on, and nothing removes one in
             * a *_PENDING state: anything else is a bug */
            assert(drc == 0);
            if (drc != 0)
                tm_log(NULL, NULL, "internal error: transaction %s was not precommit-pending "
                       "at its flush (%s)", p->gtrid, xatm_strerror(drc));
            xatm_fault_hit("tm.after_precommit_force");
            if (gone) {
                wake = true; /* PRECOMMITTED with no owner: recovery's termination rule */
                continue;
            }
            srv_send_decision(s, p->c, p->req_id, p->gtrid, XATM_OUTCOME_PRECOMMIT, "");
            if (xatm_fault_hit_cut("tm.after_precommit_sent") && !p->c->dead)
                srv_cut(s, p->c, p->gtrid);
            break;
        case XATM_DL_ABORT:
            /* the transaction leaves the table for the abort memory and the registry under
             * log_mu, so a rotation sees its ABORT in one holder or the other */
            pthread_mutex_lock(&ctx->log_mu);
            drc = gtx_abort_durable(ctx->gtx, p->seq, srv_abort_adopt, ctx);
            pthread_mutex_unlock(&ctx->log_mu);
            assert(drc == 0);
            if (drc != 0)
                tm_log(NULL, NULL, "internal error: transaction %s was not abort-pending at "
                       "its flush (%s)", p->gtrid, xatm_strerror(drc));
            xatm_fault_hit("tm.after_abort_force");
            tm_log("Recovery rolls back its prepared branches, and reports a heuristic mixed "
                   "outcome if a branch committed all the same.",
                   NULL, "3PC transaction %s aborted after PreCommit (ABORT record forced): %s",
                   p->gtrid, p->reason);
            wake = true;
            if (!gone && p->c)
                srv_send_decision(s, p->c, p->req_id, p->gtrid, XATM_OUTCOME_ABORT, p->reason);
            break;
        default:
            drc = gtx_commit_durable(ctx->gtx, p->seq, now);
            assert(drc == 0);
            if (drc != 0)
                tm_log("Its COMMIT record is durable, so the decision is commit all the same.",
                       NULL,
                       "internal error: transaction %s was not commit-pending at its flush (%s)",
                       p->gtrid, xatm_strerror(drc));
            xatm_fault_hit("tm.after_commit_force");
            if (gone) {
                /* its AP left while the COMMIT was being flushed: the transaction is
                 * COMMITTING with no owner only now, so the wake-up its disconnect gave
                 * recovery (then it was still commit-pending, hence live) did not hand it
                 * over */
                wake = true;
                continue;
            }
            srv_send_decision(s, p->c, p->req_id, p->gtrid, XATM_OUTCOME_COMMIT, "");
            xatm_fault_hit("tm.after_decision_sent");
            break;
        }
    }
    s->n_parked = 0;
    if (wake) recovery_wake(ctx->rec);
}

/* expire's callback for PRECOMMITTED transactions past their ack deadline (log_mu held):
 * the ABORT record is appended, forced, and parked (there is no request to answer). */
static void srv_expire_precommit(const gtx_info *g, const xatm_declog_record *rec, void *arg)
{
    struct server *s = arg;
    if (atomic_load(&s->ctx->fatal)) return;
    if (srv_append_abort(s, g->seq, g->gtrid, rec, g->abort_reason) != 0) return;
    tm_log(NULL, NULL, "3PC transaction %s of AP pid %u: PreCommit not acknowledged within "
           "%u ms; aborting it (ABORT record)",
           g->gtrid, g->ap_pid,
           s->ctx->cfg->precommit_timeout_ms ? s->ctx->cfg->precommit_timeout_ms : 5000u);
}

/* Aborts the PRECOMMITTED transactions whose acknowledgement is late. */
static void srv_expire_precommits(struct server *s, uint64_t now)
{
    struct tm_ctx *ctx = s->ctx;
    pthread_mutex_lock(&ctx->log_mu);
    size_t n = gtx_expire_precommits(ctx->gtx, now, srv_expire_precommit, s);
    pthread_mutex_unlock(&ctx->log_mu);
    if (atomic_load(&ctx->fatal)) {
        srv_log_failed(s, XATM_ELOG, "append of an ABORT record");
        return;
    }
    for (size_t i = 0; i < n; i++) xatm_fault_hit("tm.before_abort_force");
}

/* epoll_wait's timeout: until the nearest transaction deadline (kept in
 * s->gtx_deadline_ms: the loop runs the expiry only once it has come), deferred admin
 * reply deadline, or the write of held-back unforced records; -1 when there is none. */
static int srv_timeout_ms(struct server *s)
{
    uint64_t d = gtx_next_deadline(s->ctx->gtx);
    s->gtx_deadline_ms = d;
    for (size_t i = 0; i < s->n_waiting; i++)
        if (s->waiting[i].deadline_ms < d) d = s->waiting[i].deadline_ms;
    if (s->lazy_since_ms && s->lazy_since_ms + SRV_LAZY_MS < d) d = s->lazy_since_ms + SRV_LAZY_MS;
    if (d == UINT64_MAX) return -1;
    uint64_t now = tm_now_ms();
    if (d <= now) return 0;
    uint64_t w = d - now;
    return w > 60000 ? 60000 : (int)w;
}

/* Closes every connection (only the AP ones with only_ap), each after a connection-level
 * ERROR (req_id 0) carrying code and why, written together with any pending replies in one
 * last non-blocking attempt. One summary line instead of one per connection. */
static void srv_close_conns(struct server *s, bool only_ap, int code, const char *why)
{
    size_t n = 0;
    s->closing_all = true;
    s->closed_aborted = s->closed_orphaned = 0;
    conn *c = s->conns;
    while (c) {
        conn *next = c->next;
        if (!only_ap || c->kind == CONN_AP) {
            c->close_after_write = false; /* this is the close */
            srv_send_error(s, c, 0, code, why);
            if (c->kind == CONN_AP) n++;
            srv_conn_kill(s, c, NULL);
        }
        c = next;
    }
    s->closing_all = false;
    if (s->closed_aborted || s->closed_orphaned)
        tm_log("Their prepared branches are finished by recovery at the next start, by what "
               "the decision log holds (no COMMIT record: rolled back).",
               NULL,
               "closed %zu AP connection%s: %zu active transaction%s aborted, %zu decided "
               "transaction%s not finished",
               n, n == 1 ? "" : "s", s->closed_aborted, s->closed_aborted == 1 ? "" : "s",
               s->closed_orphaned, s->closed_orphaned == 1 ? "" : "s");
}

int server_run(struct server *s)
{
    struct tm_ctx *ctx = s->ctx;
    struct epoll_event evs[SRV_MAX_EVENTS];
    while (!s->stopping && !atomic_load(&ctx->fatal)) {
        int n = epoll_wait(s->epfd, evs, SRV_MAX_EVENTS, srv_timeout_ms(s));
        if (n < 0) {
            if (errno == EINTR) continue;
            tm_log(strerror(errno), NULL, "event loop failed (epoll_wait)");
            s->exit_rc = XATM_EIO;
            break;
        }
        for (int i = 0; i < n && !atomic_load(&ctx->fatal); i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == SRV_TAG_AP) {
                if (s->ap_fd >= 0) srv_accept(s, s->ap_fd, CONN_AP);
            } else if (tag == SRV_TAG_ADMIN) {
                if (s->admin_fd >= 0) srv_accept(s, s->admin_fd, CONN_ADMIN);
            } else if (tag == SRV_TAG_SIGNAL) {
                srv_on_signal(s);
            } else if (tag == SRV_TAG_WAKE) {
                uint64_t v;
                ssize_t r = read(s->wake_fd, &v, sizeof v);
                (void)r;
            } else {
                conn *c = evs[i].data.ptr;
                if (c->dead) continue; /* closed earlier in this batch */
                if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) srv_conn_readable(s, c);
                if (!c->dead && (evs[i].events & EPOLLOUT)) srv_conn_write(s, c);
            }
        }
        uint64_t now = tm_now_ms();
        /* nothing can expire before gtx_deadline_ms, except a deadline set during this
         * batch that is even nearer: srv_timeout_ms sees that one before the loop blocks
         * again (timeout 0 once it has passed), so it expires one turn later at most */
        if (now >= s->gtx_deadline_ms && !atomic_load(&ctx->fatal)) {
            gtx_expire(ctx->gtx, now, srv_log_timeout, NULL);
            if (!atomic_load(&ctx->fatal)) srv_expire_precommits(s, now);
        }
        srv_group_commit(s, now);
        srv_answer_waiting(s);
        if (atomic_load(&ctx->fatal)) {
            if (s->exit_rc == 0) s->exit_rc = XATM_ELOG;
            s->n_parked = 0; /* never sent: the outcome is for recovery to settle */
            srv_close_conns(s, true, XATM_ELOG, SRV_LOG_FAILED_TEXT);
        }
        srv_write_held(s);
        srv_bury(s);
    }
    if (s->exit_rc == 0)
        srv_close_conns(s, false, XATM_ESHUTDOWN, "xatmd is shutting down");
    else
        srv_close_conns(s, true, XATM_ELOG, SRV_LOG_FAILED_TEXT);
    srv_bury(s);
    return s->exit_rc;
}

void server_close(struct server *s)
{
    if (!s) return;
    srv_close_listeners(s);
    conn *c = s->conns;
    while (c) {
        conn *next = c->next;
        srv_conn_kill(s, c, NULL);
        c = next;
    }
    srv_bury(s);
    if (s->sig_fd >= 0) close(s->sig_fd);
    if (s->wake_fd >= 0) close(s->wake_fd);
    if (s->epfd >= 0) close(s->epfd);
    free(s->parked);
    free(s->waiting);
    free(s->rbuf);
    free(s);
}
