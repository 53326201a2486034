/*
 * xatmctl.c — the operator's tool: a client of xatmd's admin socket.
 *
 *   xatmctl [-c CONFIG] [--json] status|list
 *
 * The config is -c, else $XATM_CONFIG, else /etc/xatm/xatm.yaml; only tm.admin_socket and
 * tm.request_timeout are used. The tool says HELLO with role admin, sends one ADMIN
 * request and prints the reply: with --json the daemon's JSON verbatim (one line), else a
 * human rendering with aligned columns, built by a small JSON reader below (the daemon's
 * JSON is the contract; the tables are for people).
 *
 * Exit status: 0 success; 1 anything else (usage, config, daemon not running, an error
 * reply). Errors go to stderr as "xatmctl: <what>" plus a "hint:" line where one helps.
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
            "usage: xatmctl [-c CONFIG] [--json] COMMAND\n"
            "\n"
            "commands:\n"
            "  status   the daemon, its decision log, its RMs and transaction counts\n"
            "  list     live transactions and unresolved (in-doubt) decisions\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   config file (default: $XATM_CONFIG, else " DEFAULT_CONFIG ")\n"
            "  --json              print the daemon's JSON reply as is\n"
            "  -h, --help          this text\n"
            "  --version           print the version\n");
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
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
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
        die(NULL, "xatmd refused the request: %s (%s)", m->u.error.message,
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
    printf("decision log:  %s (%s bytes in %lld segment%s)\n", jv_text(jv_get(log, "dir")),
           jv_text(jv_get(log, "bytes")), segs, segs == 1 ? "" : "s");
    printf("transactions:  %s active, %s commit-pending, %s committing (%s orphaned), "
           "%s unresolved decision%s\n",
           jv_text(jv_get(counts, "active")), jv_text(jv_get(counts, "commit_pending")),
           jv_text(jv_get(counts, "committing")), jv_text(jv_get(counts, "orphaned")),
           jv_text(jv_get(counts, "unresolved_decisions")),
           jv_int(jv_get(counts, "unresolved_decisions")) == 1 ? "" : "s");
    printf("since start:   %s begun, %s committed, %s aborted (%s timed out)\n",
           jv_text(jv_get(totals, "begun")), jv_text(jv_get(totals, "committed")),
           jv_text(jv_get(totals, "aborted")), jv_text(jv_get(totals, "timed_out")));
    printf("\n");
    table t = {.cols = 5};
    const char *head[] = {"RM", "TYPE", "STATE", "LAST SCAN", "LAST ERROR"};
    tbl_row(&t, head);
    const jv *rms = jv_get(v, "rms");
    for (size_t i = 0; rms->t == J_ARR && i < rms->len; i++) {
        const jv *rm = &rms->items[i];
        const jv *age = jv_get(rm, "last_scan_age_s");
        char scan[32];
        if (age->t == J_NUM)
            snprintf(scan, sizeof scan, "%lld s ago", jv_int(age));
        else
            snprintf(scan, sizeof scan, "never");
        const char *row[] = {jv_text(jv_get(rm, "name")), jv_text(jv_get(rm, "type")),
                             jv_text(jv_get(rm, "state")), scan,
                             jv_text(jv_get(rm, "last_error"))};
        tbl_row(&t, row);
    }
    tbl_print(&t);
}

static void show_list(const jv *v)
{
    const jv *txs = jv_get(v, "transactions");
    if (txs->t != J_ARR || txs->len == 0) {
        printf("no transactions\n");
        return;
    }
    table t = {.cols = 6};
    const char *head[] = {"GTRID", "STATE", "PROTOCOL", "AGE", "DECISION", "BRANCHES"};
    tbl_row(&t, head);
    for (size_t i = 0; i < txs->len; i++) {
        const jv *tx = &txs->items[i];
        char proto[16], age[32], branches[2048] = "";
        snprintf(proto, sizeof proto, "%lldPC", jv_int(jv_get(tx, "protocol")));
        fmt_age_ms(age, sizeof age, jv_int(jv_get(tx, "age_ms")));
        const jv *bs = jv_get(tx, "branches");
        size_t off = 0;
        for (size_t k = 0; bs->t == J_ARR && k < bs->len && off < sizeof branches; k++) {
            const jv *b = &bs->items[k];
            long long sid = jv_int(jv_get(b, "session_id"));
            int n;
            if (sid)
                n = snprintf(branches + off, sizeof branches - off, "%s%s:%s(session %lld)",
                             k ? " " : "", jv_text(jv_get(b, "rm")), jv_text(jv_get(b, "vote")),
                             sid);
            else
                n = snprintf(branches + off, sizeof branches - off, "%s%s:%s", k ? " " : "",
                             jv_text(jv_get(b, "rm")), jv_text(jv_get(b, "vote")));
            if (n < 0) break;
            off += (size_t)n;
        }
        char state[64];
        snprintf(state, sizeof state, "%s%s", jv_text(jv_get(tx, "state")),
                 jv_get(tx, "orphaned")->b && strcmp(jv_text(jv_get(tx, "state")), "in-doubt")
                     ? " (orphaned)"
                     : "");
        const char *row[] = {jv_text(jv_get(tx, "gtrid")), state, proto, age,
                             jv_text(jv_get(tx, "decision")), branches};
        tbl_row(&t, row);
    }
    tbl_print(&t);
}

/* ================================================================== main */

int main(int argc, char **argv)
{
    enum { OPT_JSON = 256, OPT_VERSION };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    bool json = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case OPT_JSON:
            json = true;
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
    if (optind + 1 != argc) {
        if (optind >= argc)
            fprintf(stderr, "xatmctl: no command given\n");
        else
            fprintf(stderr, "xatmctl: one command expected, got %d arguments\n", argc - optind);
        usage(stderr);
        return 1;
    }
    const char *command = argv[optind];
    if (strcmp(command, "status") != 0 && strcmp(command, "list") != 0) {
        fprintf(stderr, "xatmctl: unknown command \"%s\"\n", command);
        usage(stderr);
        return 1;
    }
    if (!config) config = getenv("XATM_CONFIG");
    if (!config || !*config) config = DEFAULT_CONFIG;

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
    uint32_t timeout = cfg->request_timeout_ms ? cfg->request_timeout_ms : 30000;
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
    ctl_send(fd, &m, 2);
    ctl_recv(fd, 2, &m, &body);
    close(fd);
    if (m.type != XATM_MSG_ADMIN_REPLY)
        die(NULL, "unexpected %s from xatmd", xatm_msg_type_name(m.type));

    int status = m.u.admin_reply.code == 0 ? 0 : 1;
    jp p = {m.u.admin_reply.json, m.u.admin_reply.json + m.u.admin_reply.json_len, 0};
    if (json) {
        fwrite(m.u.admin_reply.json, 1, m.u.admin_reply.json_len, stdout);
        fputc('\n', stdout);
    } else {
        jv v;
        if (!jp_value(&p, &v)) {
            jv_free(&v);
            die(NULL, "xatmd sent a reply that is not valid JSON");
        }
        if (status != 0)
            fprintf(stderr, "xatmctl: %s: %s\n", command, jv_text(jv_get(&v, "error")));
        else if (strcmp(command, "status") == 0)
            show_status(&v);
        else
            show_list(&v);
        jv_free(&v);
    }
    xatm_buf_free(&body);
    xatm_config_free(cfg);
    return status;
}
