/*
 * xatmctl.c — the operator's tool: a client of xatmd's admin socket, plus a reader of the
 * decision log that needs no daemon.
 *
 *   xatmctl [-c CONFIG] [--json] status
 *   xatmctl [-c CONFIG] [--json] list [--all]
 *   xatmctl [-c CONFIG] [--json] show GTRID
 *   xatmctl [-c CONFIG] [--json] recover [--timeout SECONDS]
 *   xatmctl [-c CONFIG] [--json] commit|rollback GTRID [--force] [--reason TEXT]
 *   xatmctl [-c CONFIG] [--json] log dump [--dir DIR]
 *
 * The config is -c, else $XATM_CONFIG, else /etc/xatm/xatm.yaml; tm.admin_socket,
 * tm.request_timeout and (log dump) tm.log_dir are used. For the daemon's commands the tool
 * says HELLO with role admin, sends one ADMIN request (command + "key=value" lines, see
 * admin.h) and prints the reply: with --json the daemon's JSON verbatim (one line), else a
 * human rendering with aligned columns, built by a small JSON reader below (the daemon's
 * JSON is the contract; the tables are for people). `log dump` reads the log directory
 * itself (xatm_declog_dump: read-only, never repairs) and works while xatmd is down.
 *
 * Permissions: the admin socket is mode 0600, owned by xatmd's user; only that user (and
 * root) can connect, and that is the whole permission check.
 *
 * Exit status: 0 success; 1 anything else (usage, config, daemon not running, an error
 * or refusal reply, a corrupt log). Errors go to stderr as "xatmctl: <what>" plus a
 * "hint:" line where one helps; with --json an error reply's JSON is printed on stdout too.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/proto.h"
#include "../config/config.h"
#include "declog.h"
#include "xatm.h"

#ifndef XATM_VERSION
#define XATM_VERSION "unknown"
#endif

#define DEFAULT_CONFIG "/etc/xatm/xatm.yaml"

static void die(const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
static void die(const char *hint, const char *fmt, ...)
{
    va_list ap;
    fputs("xatmctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (hint) fprintf(stderr, "hint: %s\n", hint);
    exit(1);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xatmctl [-c CONFIG] [--json] COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  status                      the daemon, its decision log, its RMs, counts\n"
            "  list [--all]                live and in-doubt global transactions, with each\n"
            "                              branch's state as its RM reports it (--all: also\n"
            "                              heuristic decisions whose branches are finished)\n"
            "  show GTRID                  one transaction in detail, and what recovery does next\n"
            "  recover [--timeout SECONDS] run a recovery pass now and report what it did\n"
            "                              (waits for the pass, 30 s by default)\n"
            "  commit GTRID [--force] [--reason TEXT]\n"
            "  rollback GTRID [--force] [--reason TEXT]\n"
            "                              force the outcome of a transaction that is not live\n"
            "                              (a heuristic decision, recorded in the log); --force\n"
            "                              is needed when it contradicts a durable decision\n"
            "  log dump [--dir DIR]        print the decision log's records; reads tm.log_dir\n"
            "                              (or DIR) directly, works without xatmd\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   config file (default: $XATM_CONFIG, else " DEFAULT_CONFIG ")\n"
            "  --json              print JSON for scripts (the daemon's reply as is)\n"
            "  -h, --help          this text\n"
            "  --version           print the version\n"
            "\n"
            "The admin socket is owner-only (mode 0600): run xatmctl as the user xatmd runs as.\n");
}

/* ================================================================== wire */

/* Connects to the admin socket; exits with a clear message when the daemon is not there. */
static int ctl_connect(const char *path, const char *config, uint32_t timeout_ms)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) die(NULL, "admin socket path is too long: %s", path);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die(NULL, "cannot create a socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int err = errno;
        char hint[700];
        if (err == EACCES || err == EPERM)
            snprintf(hint, sizeof hint,
                     "the admin socket is owner-only (mode 0600): run xatmctl as the user "
                     "xatmd runs as");
        else
            snprintf(hint, sizeof hint, "is xatmd running? start it with: xatmd -c %s", config);
        die(hint, "cannot connect to xatmd at %s: %s", path, strerror(err));
    }
    struct timeval tv = {.tv_sec = (time_t)(timeout_ms / 1000),
                         .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static void ctl_send(int fd, const xatm_msg *m, uint32_t req_id)
{
    xatm_buf b = {0};
    int rc = xatm_msg_encode(m, req_id, &b);
    if (rc != 0) die(NULL, "cannot encode %s: %s", xatm_msg_type_name(m->type), xatm_strerror(rc));
    size_t off = 0;
    while (off < b.len) {
        ssize_t w = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die(NULL, "cannot send to xatmd: %s", w < 0 ? strerror(errno) : "closed");
        off += (size_t)w;
    }
    xatm_buf_free(&b);
}

static void ctl_read_full(int fd, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = read(fd, p + off, n - off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            die("the daemon may be overloaded or stopped", "xatmd did not answer in time");
        if (r < 0) die(NULL, "cannot read from xatmd: %s", strerror(errno));
        if (r == 0) die("see xatmd's log for the reason", "xatmd closed the connection");
        off += (size_t)r;
    }
}

/* Reads one reply into *m; the body stays in *body (admin_reply.json points into it). */
static void ctl_recv(int fd, uint32_t req_id, xatm_msg *m, xatm_buf *body)
{
    uint8_t hdr[XATM_FRAME_HEADER_SIZE];
    ctl_read_full(fd, hdr, sizeof hdr);
    xatm_frame_header h;
    if (xatm_frame_header_decode(hdr, XATM_FRAME_MAX_REPLY, &h) != 0)
        die(NULL, "malformed reply from xatmd");
    body->len = 0;
    if (xatm_buf_reserve(body, h.body_len + 1) != 0) die(NULL, "out of memory");
    ctl_read_full(fd, body->data, h.body_len);
    body->len = h.body_len;
    if (xatm_msg_decode(&h, body->data, m) != 0)
        die(NULL, "malformed %s reply from xatmd", xatm_msg_type_name(h.type));
    if (h.req_id != req_id) die(NULL, "reply to another request from xatmd");
    if (m->type == XATM_MSG_ERROR)
        die(m->u.error.code == XATM_ESHUTDOWN ? "xatmd is stopping; run the command again once "
                                                "it is back"
                                              : NULL,
            "xatmd refused the request: %s (%s)", m->u.error.message,
            xatm_errname(m->u.error.code));
}

/* ================================================================== a small JSON reader */

enum jt { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

/* One JSON value. Arrays and objects own their items (objects also their keys). */
typedef struct jv {
    enum jt t;          /* kind */
    bool b;             /* J_BOOL */
    double n;           /* J_NUM */
    char *s;            /* J_STR (decoded), J_NUM (source text) */
    size_t len;         /* items / keys */
    struct jv *items;   /* J_ARR, J_OBJ values */
    char **keys;        /* J_OBJ keys */
} jv;

/* Parser position. */
typedef struct jp {
    const char *p, *end; /* remaining input */
    int depth;           /* nesting, bounded */
} jp;

static void jv_free(jv *v)
{
    free(v->s);
    for (size_t i = 0; i < v->len; i++) {
        jv_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
}

static void jp_ws(jp *p)
{
    while (p->p < p->end && (*p->p == ' ' || *p->p == '\t' || *p->p == '\n' || *p->p == '\r'))
        p->p++;
}

static void utf8_put(xatm_buf *b, unsigned cp)
{
    uint8_t o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (uint8_t)(0xc0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else {
        o[0] = (uint8_t)(0xe0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    }
    xatm_buf_append(b, o, n);
}

/* A string literal at p->p (the opening quote); malloc'd result or NULL. */
static char *jp_string(jp *p)
{
    if (p->p >= p->end || *p->p != '"') return NULL;
    p->p++;
    xatm_buf b = {0};
    while (p->p < p->end && *p->p != '"') {
        char c = *p->p++;
        if (c != '\\') {
            xatm_buf_append(&b, &c, 1);
            continue;
        }
        if (p->p >= p->end) goto fail;
        c = *p->p++;
        switch (c) {
        case 'n': c = '\n'; break;
        case 't': c = '\t'; break;
        case 'r': c = '\r'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'u': {
            if (p->end - p->p < 4) goto fail;
            char hex[5] = {p->p[0], p->p[1], p->p[2], p->p[3], 0};
            char *e;
            unsigned long cp = strtoul(hex, &e, 16);
            if (*e) goto fail;
            p->p += 4;
            utf8_put(&b, (unsigned)cp);
            continue;
        }
        default: break; /* '"', '\\', '/' stand for themselves */
        }
        xatm_buf_append(&b, &c, 1);
    }
    if (p->p >= p->end) goto fail;
    p->p++;
    xatm_buf_append(&b, "", 1);
    return (char *)b.data;
fail:
    xatm_buf_free(&b);
    return NULL;
}

static bool jp_value(jp *p, jv *out);

static bool jp_push(jv *v, size_t *cap)
{
    if (v->len < *cap) return true;
    size_t nc = *cap ? *cap * 2 : 8;
    jv *items = realloc(v->items, nc * sizeof *items);
    if (!items) return false;
    v->items = items;
    if (v->t == J_OBJ) {
        char **keys = realloc(v->keys, nc * sizeof *keys);
        if (!keys) return false;
        v->keys = keys;
    }
    *cap = nc;
    return true;
}

static bool jp_container(jp *p, jv *out, bool obj)
{
    size_t cap = 0;
    out->t = obj ? J_OBJ : J_ARR;
    p->p++;
    jp_ws(p);
    if (p->p < p->end && *p->p == (obj ? '}' : ']')) {
        p->p++;
        return true;
    }
    for (;;) {
        if (!jp_push(out, &cap)) return false;
        char *key = NULL;
        if (obj) {
            jp_ws(p);
            if (!(key = jp_string(p))) return false;
            jp_ws(p);
            if (p->p >= p->end || *p->p != ':') {
                free(key);
                return false;
            }
            p->p++;
        }
        memset(&out->items[out->len], 0, sizeof out->items[0]);
        if (obj) out->keys[out->len] = key;
        out->len++;
        if (!jp_value(p, &out->items[out->len - 1])) return false;
        jp_ws(p);
        if (p->p < p->end && *p->p == ',') {
            p->p++;
            continue;
        }
        if (p->p < p->end && *p->p == (obj ? '}' : ']')) {
            p->p++;
            return true;
        }
        return false;
    }
}

static bool jp_value(jp *p, jv *out)
{
    memset(out, 0, sizeof *out);
    jp_ws(p);
    if (p->p >= p->end || ++p->depth > 64) return false;
    bool ok = false;
    char c = *p->p;
    if (c == '{' || c == '[') {
        ok = jp_container(p, out, c == '{');
    } else if (c == '"') {
        out->t = J_STR;
        ok = (out->s = jp_string(p)) != NULL;
    } else if (p->end - p->p >= 4 && memcmp(p->p, "null", 4) == 0) {
        p->p += 4;
        ok = true;
    } else if (p->end - p->p >= 4 && memcmp(p->p, "true", 4) == 0) {
        out->t = J_BOOL;
        out->b = true;
        p->p += 4;
        ok = true;
    } else if (p->end - p->p >= 5 && memcmp(p->p, "false", 5) == 0) {
        out->t = J_BOOL;
        p->p += 5;
        ok = true;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        const char *s = p->p;
        while (p->p < p->end && strchr("+-0123456789.eE", *p->p)) p->p++;
        out->t = J_NUM;
        out->s = strndup(s, (size_t)(p->p - s));
        ok = out->s != NULL;
        if (ok) out->n = strtod(out->s, NULL);
    }
    p->depth--;
    return ok;
}

static const jv *jv_get(const jv *o, const char *key)
{
    static const jv null_value = {.t = J_NULL};
    if (o && o->t == J_OBJ)
        for (size_t i = 0; i < o->len; i++)
            if (strcmp(o->keys[i], key) == 0) return &o->items[i];
    return &null_value;
}

/* The value as display text: strings as is, numbers as sent, null as "-". */
static const char *jv_text(const jv *v)
{
    switch (v->t) {
    case J_STR:
    case J_NUM:
        return v->s;
    case J_BOOL:
        return v->b ? "true" : "false";
    default:
        return "-";
    }
}

static long long jv_int(const jv *v)
{
    return v->t == J_NUM ? (long long)v->n : 0;
}

/* ================================================================== tables */

#define TBL_MAX_COLS 8

/* A text table printed with aligned columns. Owns its cells. */
typedef struct table {
    size_t cols;      /* columns */
    char **cells;     /* rows x cols, row-major; row 0 is the header */
    size_t rows, cap; /* rows used / allocated */
} table;

static void tbl_row(table *t, const char *const *vals)
{
    if (t->rows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = realloc(t->cells, t->cap * t->cols * sizeof *t->cells);
        if (!t->cells) die(NULL, "out of memory");
    }
    for (size_t c = 0; c < t->cols; c++) {
        t->cells[t->rows * t->cols + c] = strdup(vals[c] && *vals[c] ? vals[c] : "-");
        if (!t->cells[t->rows * t->cols + c]) die(NULL, "out of memory");
    }
    t->rows++;
}

static void tbl_print(table *t)
{
    size_t w[TBL_MAX_COLS] = {0};
    for (size_t r = 0; r < t->rows; r++)
        for (size_t c = 0; c < t->cols; c++) {
            size_t n = strlen(t->cells[r * t->cols + c]);
            if (n > w[c]) w[c] = n;
        }
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->cols; c++) {
            const char *cell = t->cells[r * t->cols + c];
            if (c + 1 == t->cols)
                printf("%s\n", cell);
            else
                printf("%-*s  ", (int)w[c], cell);
        }
    }
    for (size_t i = 0; i < t->rows * t->cols; i++) free(t->cells[i]);
    free(t->cells);
}

static void fmt_age_ms(char *buf, size_t size, long long ms)
{
    if (ms < 10000)
        snprintf(buf, size, "%lld ms", ms);
    else if (ms < 600000)
        snprintf(buf, size, "%lld s", ms / 1000);
    else if (ms < 86400000)
        snprintf(buf, size, "%lld min", ms / 60000);
    else
        snprintf(buf, size, "%lld d", ms / 86400000);
}


/* A signed millisecond count as "in 3 s" / "3 s ago". */
static void fmt_due(char *buf, size_t size, long long ms)
{
    char t[32];
    fmt_age_ms(t, sizeof t, ms < 0 ? -ms : ms);
    snprintf(buf, size, ms < 0 ? "%s ago" : "in %s", t);
}

static void show_status(const jv *v)
{
    const jv *log = jv_get(v, "log"), *counts = jv_get(v, "counts"), *totals = jv_get(v, "totals");
    long long segs = jv_int(jv_get(log, "segments"));
    char up[32];
    long long secs = jv_int(jv_get(v, "uptime_s"));
    if (secs < 600)
        snprintf(up, sizeof up, "%lld s", secs);
    else
        fmt_age_ms(up, sizeof up, secs * 1000);
    printf("xatmd:         tm %s, epoch %s, pid %s, up %s\n", jv_text(jv_get(v, "tm_id")),
           jv_text(jv_get(v, "epoch")), jv_text(jv_get(v, "pid")), up);
    printf("decision log:  %s (%s bytes in %lld segment%s; rotates at %s bytes)\n",
           jv_text(jv_get(log, "dir")), jv_text(jv_get(log, "bytes")), segs,
           segs == 1 ? "" : "s", jv_text(jv_get(log, "segment_size")));
    printf("transactions:  %s active, %s commit-pending, %s committing (%s orphaned)\n",
           jv_text(jv_get(counts, "active")), jv_text(jv_get(counts, "commit_pending")),
           jv_text(jv_get(counts, "committing")), jv_text(jv_get(counts, "orphaned")));
    if (jv_int(jv_get(counts, "precommit_pending")) || jv_int(jv_get(counts, "precommitted")) ||
        jv_int(jv_get(counts, "abort_pending")))
        printf("3PC:           %s precommit-pending, %s precommitted, %s abort-pending\n",
               jv_text(jv_get(counts, "precommit_pending")),
               jv_text(jv_get(counts, "precommitted")), jv_text(jv_get(counts, "abort_pending")));
    printf("in doubt:      %s unresolved decision%s, %s prepared branch%s to roll back "
           "(presumed abort)\n",
           jv_text(jv_get(counts, "unresolved_decisions")),
           jv_int(jv_get(counts, "unresolved_decisions")) == 1 ? "" : "s",
           jv_text(jv_get(counts, "presumed_abort_branches")),
           jv_int(jv_get(counts, "presumed_abort_branches")) == 1 ? "" : "es");
    printf("heuristic:     %s decision%s (%s not finished)\n",
           jv_text(jv_get(counts, "heuristic")),
           jv_int(jv_get(counts, "heuristic")) == 1 ? "" : "s",
           jv_text(jv_get(counts, "heuristic_unfinished")));
    if (jv_int(jv_get(counts, "heuristic_mixed")))
        printf("MIXED:         %s 3PC transaction%s with a heuristic mixed outcome (some branch "
               "committed, another did not): xatmctl list\n",
               jv_text(jv_get(counts, "heuristic_mixed")),
               jv_int(jv_get(counts, "heuristic_mixed")) == 1 ? "" : "s");
    printf("since start:   %s begun, %s committed, %s aborted (%s timed out), %s AP session%s "
           "fenced\n",
           jv_text(jv_get(totals, "begun")), jv_text(jv_get(totals, "committed")),
           jv_text(jv_get(totals, "aborted")), jv_text(jv_get(totals, "timed_out")),
           jv_text(jv_get(totals, "fenced")), jv_int(jv_get(totals, "fenced")) == 1 ? "" : "s");
    const jv *rec = jv_get(v, "recovery"), *last = jv_get(rec, "last_pass");
    if (last->t == J_OBJ) {
        char age[32];
        fmt_age_ms(age, sizeof age, jv_int(jv_get(last, "age_ms")));
        printf("recovery:      every %s ms; last pass #%s %s ago: %s committed, %s rolled back, "
               "%s left, %s fenced\n",
               jv_text(jv_get(rec, "interval_ms")), jv_text(jv_get(last, "pass")), age,
               jv_text(jv_get(last, "committed")), jv_text(jv_get(last, "rolled_back")),
               jv_text(jv_get(last, "left")), jv_text(jv_get(last, "fenced")));
    }
    printf("\n");
    table t = {.cols = 6};
    const char *head[] = {"RM", "TYPE", "STATE", "LAST SCAN", "PREPARED", "LAST ERROR"};
    tbl_row(&t, head);
    const jv *rms = jv_get(v, "rms");
    for (size_t i = 0; rms->t == J_ARR && i < rms->len; i++) {
        const jv *rm = &rms->items[i];
        const jv *age = jv_get(rm, "last_scan_age_s");
        char scan[32], state[64];
        if (age->t == J_NUM)
            snprintf(scan, sizeof scan, "%lld s ago", jv_int(age));
        else
            snprintf(scan, sizeof scan, "never");
        if (strcmp(jv_text(jv_get(rm, "state")), "quarantined") == 0)
            snprintf(state, sizeof state, "quarantined (retry in %lld ms)",
                     jv_int(jv_get(rm, "retry_in_ms")));
        else
            snprintf(state, sizeof state, "%s", jv_text(jv_get(rm, "state")));
        const char *row[] = {jv_text(jv_get(rm, "name")), jv_text(jv_get(rm, "type")), state,
                             scan, jv_text(jv_get(rm, "prepared")),
                             jv_text(jv_get(rm, "last_error"))};
        tbl_row(&t, row);
    }
    tbl_print(&t);
}

/* "pg: prepared, my: prepared (session 42)" */
static void fmt_branches(const jv *tx, char *out, size_t size)
{
    const jv *bs = jv_get(tx, "branches");
    size_t off = 0;
    out[0] = '\0';
    for (size_t k = 0; bs->t == J_ARR && k < bs->len && off < size; k++) {
        const jv *b = &bs->items[k];
        long long sid = jv_int(jv_get(b, "session_id"));
        char sess[48] = "";
        if (sid) snprintf(sess, sizeof sess, " (session %lld)", sid);
        int n = snprintf(out + off, size - off, "%s%s: %s%s", k ? ", " : "",
                         jv_text(jv_get(b, "rm")), jv_text(jv_get(b, "rm_state")), sess);
        if (n < 0) break;
        off += (size_t)n;
    }
}

/* One heuristic record as a sentence. */
static void print_heuristic(const char *indent, const char *gtrid, const jv *h)
{
    printf("%s%s%sheuristic %s by %s: \"%s\"%s\n", indent, gtrid ? gtrid : "", gtrid ? ": " : "",
           jv_text(jv_get(h, "outcome")), jv_text(jv_get(h, "who")), jv_text(jv_get(h, "why")),
           jv_get(h, "durable")->b ? "" : " (being written)");
}

static void show_list(const jv *v)
{
    const jv *txs = jv_get(v, "transactions");
    long long hidden = jv_int(jv_get(v, "finished_heuristics_hidden"));
    if (txs->t != J_ARR || txs->len == 0) {
        printf("no live or in-doubt transactions\n");
    } else {
        table t = {.cols = 5};
        const char *head[] = {"GTRID", "STATE", "AGE", "DECISION",
                              "BRANCHES (state as the RM reports it)"};
        tbl_row(&t, head);
        for (size_t i = 0; i < txs->len; i++) {
            const jv *tx = &txs->items[i];
            char age[32] = "-", branches[2048], state[64];
            if (jv_get(tx, "age_ms")->t == J_NUM)
                fmt_age_ms(age, sizeof age, jv_int(jv_get(tx, "age_ms")));
            fmt_branches(tx, branches, sizeof branches);
            snprintf(state, sizeof state, "%s%s%s", jv_text(jv_get(tx, "state")),
                     jv_get(tx, "orphaned")->b &&
                             strcmp(jv_text(jv_get(tx, "state")), "committing") == 0
                         ? " (orphaned)"
                         : "",
                     jv_get(tx, "heuristic_mixed")->b ? " MIXED" : "");
            const char *row[] = {jv_text(jv_get(tx, "gtrid")), state, age,
                                 jv_text(jv_get(tx, "decision")), branches};
            tbl_row(&t, row);
        }
        tbl_print(&t);
        bool any = false;
        for (size_t i = 0; i < txs->len; i++) {
            const jv *hs = jv_get(&txs->items[i], "heuristics");
            for (size_t k = 0; hs->t == J_ARR && k < hs->len; k++) {
                if (!any) printf("\nheuristic decisions (operators' forced outcomes):\n");
                any = true;
                print_heuristic("  ", jv_text(jv_get(&txs->items[i], "gtrid")), &hs->items[k]);
            }
        }
    }
    if (hidden)
        printf("\n%lld finished heuristic decision%s not shown: xatmctl list --all\n", hidden,
               hidden == 1 ? "" : "s");
}

static void show_tx(const jv *v)
{
    const jv *tx = jv_get(v, "transaction");
    char buf[128];
    printf("gtrid:       %s\n", jv_text(jv_get(tx, "gtrid")));
    printf("state:       %s%s\n", jv_text(jv_get(tx, "state")),
           jv_get(tx, "from_log")->b ? " (decision replayed from the decision log)" : "");
    printf("decision:    %s\n", jv_text(jv_get(tx, "decision")));
    if (jv_get(tx, "heuristic_mixed")->b)
        printf("MIXED:       heuristic mixed outcome: %s\n", jv_text(jv_get(tx, "mixed")));
    if (jv_get(tx, "abort_cause")->t == J_STR)
        printf("aborted:     %s\n", jv_text(jv_get(tx, "abort_cause")));
    printf("protocol:    %sPC\n", jv_text(jv_get(tx, "protocol")));
    if (jv_get(tx, "age_ms")->t == J_NUM) {
        fmt_age_ms(buf, sizeof buf, jv_int(jv_get(tx, "age_ms")));
        printf("age:         %s\n", buf);
    }
    if (jv_get(tx, "ap_pid")->t == J_NUM)
        printf("application: pid %s%s\n", jv_text(jv_get(tx, "ap_pid")),
               jv_get(tx, "orphaned")->b ? " (no longer its owner: xatmd finishes it)" : "");
    if (jv_get(tx, "timeout_ms")->t == J_NUM)
        printf("timeout:     %s ms\n", jv_text(jv_get(tx, "timeout_ms")));
    if (jv_get(tx, "deadline_in_ms")->t == J_NUM) {
        fmt_due(buf, sizeof buf, jv_int(jv_get(tx, "deadline_in_ms")));
        printf("deadline:    %s\n", buf);
    }
    const jv *hs = jv_get(tx, "heuristics");
    for (size_t k = 0; hs->t == J_ARR && k < hs->len; k++)
        print_heuristic("heuristic:   ", NULL, &hs->items[k]);
    printf("recovery:    %s\n\n", jv_text(jv_get(tx, "recovery")));
    table t = {.cols = 5};
    const char *head[] = {"RM", "VOTE", "AP SESSION", "STATE AS THE RM REPORTS IT",
                          "RECOVERY WAITS FOR"};
    tbl_row(&t, head);
    const jv *bs = jv_get(tx, "branches");
    for (size_t k = 0; bs->t == J_ARR && k < bs->len; k++) {
        const jv *b = &bs->items[k], *wt = jv_get(b, "waiting");
        char sess[32] = "-", waits[160] = "-";
        if (jv_int(jv_get(b, "session_id"))) snprintf(sess, sizeof sess, "%s",
                                                     jv_text(jv_get(b, "session_id")));
        if (wt->t == J_OBJ) {
            if (jv_get(wt, "owner_unknown")->b) {
                char due[48];
                fmt_due(due, sizeof due, jv_int(jv_get(wt, "settle_in_ms")));
                if (jv_int(jv_get(wt, "settle_in_ms")) > 0)
                    snprintf(waits, sizeof waits, "unknown session: tried %s", due);
                else
                    snprintf(waits, sizeof waits, "unknown session (XAER_NOTA: still held)");
            } else if (jv_get(wt, "fenced")->b) {
                snprintf(waits, sizeof waits, "session %s to end (fenced)",
                         jv_text(jv_get(wt, "session_id")));
            } else if (jv_get(wt, "fence_in_ms")->t == J_NUM) {
                char due[48];
                fmt_due(due, sizeof due, jv_int(jv_get(wt, "fence_in_ms")));
                snprintf(waits, sizeof waits, "session %s to end (fenced %s)",
                         jv_text(jv_get(wt, "session_id")), due);
            } else {
                snprintf(waits, sizeof waits, "session %s to end",
                         jv_text(jv_get(wt, "session_id")));
            }
        }
        const char *row[] = {jv_text(jv_get(b, "rm")), jv_text(jv_get(b, "vote")), sess,
                             jv_text(jv_get(b, "rm_state")), waits};
        tbl_row(&t, row);
    }
    tbl_print(&t);
}

static void show_recover(const jv *v)
{
    const jv *r = jv_get(v, "report"), *un = jv_get(r, "unreachable_rms");
    long long fenced = jv_int(jv_get(r, "fenced")), resolved = jv_int(jv_get(r, "resolved"));
    printf("recovery pass #%s finished in %s ms (waited %s ms)\n", jv_text(jv_get(r, "pass")),
           jv_text(jv_get(r, "duration_ms")), jv_text(jv_get(v, "waited_ms")));
    printf("  branches:  %s committed, %s rolled back, %s already finished, %s left prepared\n",
           jv_text(jv_get(r, "committed")), jv_text(jv_get(r, "rolled_back")),
           jv_text(jv_get(r, "already_done")), jv_text(jv_get(r, "left")));
    printf("  fenced:    %lld AP session%s\n", fenced, fenced == 1 ? "" : "s");
    printf("  resolved:  %lld decision%s (END written); %s still unresolved\n", resolved,
           resolved == 1 ? "" : "s", jv_text(jv_get(v, "unresolved_decisions")));
    printf("  RMs unreachable: ");
    if (un->t != J_ARR || un->len == 0) printf("none");
    for (size_t i = 0; un->t == J_ARR && i < un->len; i++)
        printf("%s%s", i ? ", " : "", jv_text(&un->items[i]));
    printf("\n");
}

static void show_force(const jv *v)
{
    printf("%s\n", jv_text(jv_get(v, "message")));
    if (jv_get(v, "overrides")->t == J_STR)
        printf("warning: this overrides xatmd's %s decision: branches may end differently "
               "(docs/operations.md, \"Heuristic outcomes\")\n",
               jv_text(jv_get(v, "overrides")));
}

/* ================================================================== log dump */

/* Carries the output mode through xatm_declog_dump. */
typedef struct dumper {
    bool json;      /* JSON array items instead of lines */
    bool first;     /* no item printed yet */
    unsigned long n; /* records printed */
} dumper;

static const char *dl_type_name(uint8_t t)
{
    switch (t) {
    case XATM_DL_BOOT: return "BOOT";
    case XATM_DL_COMMIT: return "COMMIT";
    case XATM_DL_PRECOMMIT: return "PRECOMMIT";
    case XATM_DL_END: return "END";
    case XATM_DL_HEURISTIC: return "HEURISTIC";
    case XATM_DL_CHECKPOINT: return "CHECKPOINT";
    }
    return "UNKNOWN";
}

/* Prints s as a JSON string (the dump runs without admin.c). */
static void json_put_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void dump_record(const char *file, uint64_t offset, const xatm_declog_record *rec,
                        void *arg)
{
    dumper *d = arg;
    char text[1024];
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    xatm_declog_describe(rec, text, sizeof text);
    d->n++;
    if (!d->json) {
        printf("%s  offset %-8llu  %s\n", base, (unsigned long long)offset, text);
        return;
    }
    printf("%s{\"file\":", d->first ? "" : ",");
    d->first = false;
    json_put_string(base);
    printf(",\"offset\":%llu,\"lsn\":%llu,\"type\":\"%s\",\"gtrid\":", (unsigned long long)offset,
           (unsigned long long)rec->lsn, dl_type_name(rec->type));
    json_put_string(rec->gtrid);
    printf(",\"text\":");
    json_put_string(text);
    printf("}");
}

/* `log dump`: 0 or 1 (a corrupt or unreadable log). */
static int log_dump(const char *dir, bool json)
{
    dumper d = {json, true, 0};
    char err[1024] = "";
    if (json) {
        printf("{\"dir\":");
        json_put_string(dir);
        printf(",\"records\":[");
    } else {
        printf("decision log %s\n", dir);
    }
    int rc = xatm_declog_dump(dir, dump_record, &d, err, sizeof err);
    if (json) {
        printf("],\"count\":%lu,\"code\":%d,\"note\":", d.n, rc);
        json_put_string(err);
        printf("}\n");
    } else {
        printf("%lu record%s\n", d.n, d.n == 1 ? "" : "s");
    }
    if (rc == 0 && err[0]) fprintf(stderr, "xatmctl: note: %s\n", err);
    if (rc != 0) {
        fprintf(stderr, "xatmctl: cannot dump the decision log in %s: %s%s%s\n", dir,
                xatm_strerror(rc), err[0] ? ": " : "", err);
        if (rc == XATM_ECORRUPT)
            fprintf(stderr, "hint: the records before the damage are printed above; xatmd "
                            "refuses to start on this log (docs/operations.md, \"decision log "
                            "is corrupt\")\n");
        return 1;
    }
    return 0;
}

/* ================================================================== main */

/* Appends "key=value\n" to an ADMIN arg; exits when it does not fit. */
static void arg_add(char *arg, size_t size, const char *key, const char *value)
{
    size_t n = strlen(arg);
    int w = snprintf(arg + n, size - n, "%s%s=%s", n ? "\n" : "", key, value);
    if (w < 0 || (size_t)w >= size - n) die(NULL, "the arguments are too long");
}

int main(int argc, char **argv)
{
    enum { OPT_JSON = 256, OPT_VERSION, OPT_ALL, OPT_FORCE, OPT_REASON, OPT_DIR, OPT_TIMEOUT };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"all", no_argument, NULL, OPT_ALL},
        {"force", no_argument, NULL, OPT_FORCE},
        {"reason", required_argument, NULL, OPT_REASON},
        {"dir", required_argument, NULL, OPT_DIR},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *reason = NULL, *dir = NULL, *timeout_arg = NULL;
    bool json = false, all = false, force = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case OPT_JSON:
            json = true;
            break;
        case OPT_ALL:
            all = true;
            break;
        case OPT_FORCE:
            force = true;
            break;
        case OPT_REASON:
            reason = optarg;
            break;
        case OPT_DIR:
            dir = optarg;
            break;
        case OPT_TIMEOUT:
            timeout_arg = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf("xatmctl (xatm) %s\n", XATM_VERSION);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "xatmctl: no command given\n");
        usage(stderr);
        return 1;
    }
    const char *command = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    bool needs_gtrid = strcmp(command, "show") == 0 || strcmp(command, "commit") == 0 ||
                       strcmp(command, "rollback") == 0;
    bool is_log = strcmp(command, "log") == 0;
    bool known = needs_gtrid || is_log || strcmp(command, "status") == 0 ||
                 strcmp(command, "list") == 0 || strcmp(command, "recover") == 0;
    const char *bad = NULL;
    if (!known)
        bad = "unknown command";
    else if (is_log && (nargs != 1 || strcmp(args[0], "dump") != 0))
        bad = "expected: log dump [--dir DIR]";
    else if (needs_gtrid && nargs != 1)
        bad = "expected exactly one GTRID";
    else if (!is_log && !needs_gtrid && nargs != 0)
        bad = "unexpected argument";
    else if (all && strcmp(command, "list") != 0)
        bad = "--all applies to list only";
    else if ((force || reason) && strcmp(command, "commit") && strcmp(command, "rollback"))
        bad = "--force and --reason apply to commit and rollback only";
    else if (dir && !is_log)
        bad = "--dir applies to log dump only";
    else if (timeout_arg && strcmp(command, "recover") != 0)
        bad = "--timeout applies to recover only";
    if (bad) {
        fprintf(stderr, "xatmctl: %s: %s\n", command, bad);
        usage(stderr);
        return 1;
    }
    if (!config) config = getenv("XATM_CONFIG");
    if (!config || !*config) config = DEFAULT_CONFIG;
    if (is_log && dir) return log_dump(dir, json);

    xatm_config *cfg = NULL;
    char *errors = NULL;
    int rc = xatm_config_load(config, &cfg, &errors);
    if (rc != 0) {
        fprintf(stderr, "xatmctl: cannot use config file %s: %s\n", config, xatm_strerror(rc));
        if (errors) fputs(errors, stderr);
        free(errors);
        return 1;
    }
    free(errors);
    if (is_log) {
        int st = log_dump(cfg->log_dir, json);
        xatm_config_free(cfg);
        return st;
    }

    /* the ADMIN request */
    char arg[XATM_ADMIN_ARG_MAX + 1] = "";
    uint32_t timeout = cfg->request_timeout_ms ? cfg->request_timeout_ms : 30000;
    if (needs_gtrid) arg_add(arg, sizeof arg, "gtrid", args[0]);
    if (all) arg_add(arg, sizeof arg, "all", "1");
    if (force) arg_add(arg, sizeof arg, "force", "1");
    if (reason) {
        if (strlen(reason) > 255) die(NULL, "--reason is longer than 255 bytes");
        char one[256];
        snprintf(one, sizeof one, "%s", reason);
        for (char *p = one; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
        arg_add(arg, sizeof arg, "reason", one);
    }
    if (strcmp(command, "recover") == 0) {
        unsigned long secs = 30;
        if (timeout_arg) {
            char *end;
            secs = strtoul(timeout_arg, &end, 10);
            if (*end || !*timeout_arg || secs == 0 || secs > 600)
                die(NULL, "--timeout takes 1..600 seconds");
        }
        char ms[32];
        snprintf(ms, sizeof ms, "%lu", secs * 1000);
        arg_add(arg, sizeof arg, "timeout_ms", ms);
        timeout = (uint32_t)(secs * 1000 + 10000); /* the daemon answers first */
    }
    int fd = ctl_connect(cfg->admin_socket_path, config, timeout);

    xatm_msg m;
    xatm_buf body = {0};
    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_HELLO;
    m.u.hello.role = XATM_ROLE_ADMIN;
    m.u.hello.pid = (uint32_t)getpid();
    snprintf(m.u.hello.client_name, sizeof m.u.hello.client_name, "xatmctl");
    ctl_send(fd, &m, 1);
    ctl_recv(fd, 1, &m, &body);
    if (m.type != XATM_MSG_HELLO_OK)
        die(NULL, "unexpected %s from xatmd", xatm_msg_type_name(m.type));

    memset(&m, 0, sizeof m);
    m.type = XATM_MSG_ADMIN;
    snprintf(m.u.admin.command, sizeof m.u.admin.command, "%s", command);
    snprintf(m.u.admin.arg, sizeof m.u.admin.arg, "%s", arg);
    ctl_send(fd, &m, 2);
    ctl_recv(fd, 2, &m, &body);
    close(fd);
    if (m.type != XATM_MSG_ADMIN_REPLY)
        die(NULL, "unexpected %s from xatmd", xatm_msg_type_name(m.type));

    int status = m.u.admin_reply.code == 0 ? 0 : 1;
    jp p = {m.u.admin_reply.json, m.u.admin_reply.json + m.u.admin_reply.json_len, 0};
    jv v;
    bool parsed = jp_value(&p, &v);
    if (json) {
        fwrite(m.u.admin_reply.json, 1, m.u.admin_reply.json_len, stdout);
        fputc('\n', stdout);
    }
    if (!parsed) {
        jv_free(&v);
        die(NULL, "xatmd sent a reply that is not valid JSON");
    }
    if (status != 0) {
        fprintf(stderr, "xatmctl: %s (%s)\n", jv_text(jv_get(&v, "error")),
                xatm_errname(m.u.admin_reply.code));
        const char *hint = jv_text(jv_get(&v, "hint"));
        if (*hint && strcmp(hint, "-") != 0) fprintf(stderr, "hint: %s\n", hint);
    } else if (!json) {
        if (strcmp(command, "status") == 0)
            show_status(&v);
        else if (strcmp(command, "list") == 0)
            show_list(&v);
        else if (strcmp(command, "show") == 0)
            show_tx(&v);
        else if (strcmp(command, "recover") == 0)
            show_recover(&v);
        else
            show_force(&v);
    }
    jv_free(&v);
    xatm_buf_free(&body);
    xatm_config_free(cfg);
    return status;
}
