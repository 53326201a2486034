/*
 * config.c — loads and validates the xatm YAML configuration (config.h is the contract,
 * docs/configuration.md the reference for every key).
 *
 * Owns: the loaded xatm_config and every string it points to; while loading, a private
 * tree of the YAML document (struct cnode, all nodes kept in one arena list so they are
 * freed in one loop whatever the nesting depth) and the list of errors found.
 *
 * How it works: libyaml's event parser feeds build_tree(), which turns events into the
 * tree, keeping each node's 1-based line and column from the event's start mark, and
 * rejects anchors, aliases, tags and a second document. A YAML syntax error stops the
 * parse (libyaml cannot go on after one) and is the only error reported then. Otherwise
 * the validators walk the tree against the schema and record every mistake they find,
 * going on after each one, so one load reports all of them.
 *
 * Invariants:
 * - every error message reads "<what is wrong>; expected <what was expected>" and is
 *   emitted as "<file>:<line>:<column>: <message>", sorted by position;
 * - values quoted in messages are escaped (no control characters), so every error is
 *   exactly one line;
 * - xatm_config_load*() return a config only when no error was found; on every other
 *   path everything allocated is freed (passwords are wiped before they are freed);
 * - no fixed-size buffer ever truncates user data.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <yaml.h>

#include "xatm.h"
#include "xid.h"

/* Longest Unix socket path that fits sockaddr_un with its terminating NUL. */
#define SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

#define DEFAULT_FORMAT_ID 0x78614d31u /* "xaM1" */
#define DEFAULT_SOCKET_MODE 0660u
#define DEFAULT_SEGMENT_SIZE (16u * 1024u * 1024u)
#define MIN_SEGMENT_SIZE (64u * 1024u)
#define DEFAULT_TX_TIMEOUT_MS 60000u
#define DEFAULT_REQUEST_TIMEOUT_MS 30000u
#define DEFAULT_PRECOMMIT_TIMEOUT_MS 5000u
#define DEFAULT_PARTICIPANT_TIMEOUT_MS 10000u
#define DEFAULT_DECISION_RETENTION_MS (24u * 3600u * 1000u)
#define DEFAULT_RECOVERY_INTERVAL_MS 10000u
#define DEFAULT_CONNECT_TIMEOUT_MS 5000u
#define DEFAULT_ADMIN_SOCKET_NAME "xatmd-admin.sock"

/* ---------------------------------------------------------------------------------- */
/* The document tree                                                                   */

enum cnode_kind { CN_SCALAR, CN_SEQUENCE, CN_MAPPING };

/* One YAML node. Mappings keep their pairs flat: kids[2i] is a key, kids[2i+1] its value. */
struct cnode {
    enum cnode_kind kind; /* scalar, sequence or mapping */
    int line;             /* 1-based line of the node's first character */
    int column;           /* 1-based column (in characters) of the same */
    char *text;           /* scalar: the value, NUL-terminated (may hold NULs before len) */
    size_t len;           /* scalar: bytes in text */
    bool is_null;         /* scalar: a plain empty, "~" or "null" value (YAML's null) */
    struct cnode **kids;  /* sequence items or mapping key/value pairs, not owned */
    size_t n_kids;        /* entries used in kids */
    size_t cap_kids;      /* entries allocated in kids */
    char *shown;          /* scalar: text escaped for messages, made on first use */
};

/* One mistake found in the file. */
struct cfg_error {
    int line;   /* 1-based; 0 when the mistake has no position (file unreadable) */
    int column; /* 1-based; 0 with line */
    size_t seq; /* order of discovery, to keep the sort stable */
    char *msg;  /* "<what is wrong>; expected <what>", owned */
};

/* State of one load. */
struct loader {
    const char *name;           /* file name used in messages */
    const unsigned char *input; /* the YAML text (not owned) */
    size_t input_len;           /* bytes in input */
    struct cnode **nodes;       /* arena: every node made, owned, freed by loader_free */
    size_t n_nodes;             /* nodes used */
    size_t cap_nodes;           /* nodes allocated */
    struct cfg_error *errs;     /* mistakes found, owned */
    size_t n_errs;              /* errors used */
    size_t cap_errs;            /* errors allocated */
    bool oom;                   /* an allocation failed: the load ends with XATM_ENOMEM */
    struct cnode *decision_rm_at; /* tm.decision_rm's value node, checked after rms */
};

/* Storage for at least `need` elements of `size` bytes, grown from p (capacity *cap).
 * Returns the (possibly moved) array, or NULL on failure with p still valid. */
static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap && p) return p;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / size) return NULL;
        ncap *= 2;
    }
    void *np = realloc(p, ncap * size);
    if (!np) return NULL;
    *cap = ncap;
    return np;
}

static char *xstrndup(struct loader *l, const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) {
        l->oom = true;
        return NULL;
    }
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Overwrites then frees a string that may hold a secret. */
static void free_secret(char *s)
{
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* Records a mistake at (line, column). The message must follow the "; expected" form. */
static void report_at(struct loader *l, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report_at(struct loader *l, int line, int column, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0) {
        l->oom = true;
        return;
    }
    struct cfg_error *errs = grow(l->errs, &l->cap_errs, l->n_errs + 1, sizeof *l->errs);
    if (!errs) {
        free(msg);
        l->oom = true;
        return;
    }
    l->errs = errs;
    l->errs[l->n_errs] = (struct cfg_error){ line, column, l->n_errs, msg };
    l->n_errs++;
}

#define report(l, node, ...) report_at((l), (node)->line, (node)->column, __VA_ARGS__)

/* 1-based line / column of a libyaml mark (0-based), clamped to int. */
static int mark_line(const yaml_mark_t *m)
{
    return m->line >= (size_t)INT32_MAX ? INT32_MAX : (int)m->line + 1;
}

static int mark_column(const yaml_mark_t *m)
{
    return m->column >= (size_t)INT32_MAX ? INT32_MAX : (int)m->column + 1;
}

static struct cnode *node_new(struct loader *l, enum cnode_kind kind, const yaml_mark_t *mark)
{
    struct cnode **nodes = grow(l->nodes, &l->cap_nodes, l->n_nodes + 1, sizeof *l->nodes);
    if (!nodes) {
        l->oom = true;
        return NULL;
    }
    l->nodes = nodes;
    struct cnode *n = calloc(1, sizeof *n);
    if (!n) {
        l->oom = true;
        return NULL;
    }
    n->kind = kind;
    n->line = mark_line(mark);
    n->column = mark_column(mark);
    l->nodes[l->n_nodes++] = n;
    return n;
}

static bool node_add_kid(struct loader *l, struct cnode *parent, struct cnode *kid)
{
    struct cnode **kids =
        grow(parent->kids, &parent->cap_kids, parent->n_kids + 1, sizeof *parent->kids);
    if (!kids) {
        l->oom = true;
        return false;
    }
    parent->kids = kids;
    parent->kids[parent->n_kids++] = kid;
    return true;
}

static void loader_free(struct loader *l)
{
    for (size_t i = 0; i < l->n_nodes; i++) {
        struct cnode *n = l->nodes[i];
        if (n->text) {
            explicit_bzero(n->text, n->len); /* may be an inline password */
            free(n->text);
        }
        free(n->shown);
        free(n->kids);
        free(n);
    }
    free(l->nodes);
    for (size_t i = 0; i < l->n_errs; i++) free(l->errs[i].msg);
    free(l->errs);
}

static const char *kind_name(enum cnode_kind k)
{
    switch (k) {
    case CN_SCALAR:
        return "a scalar";
    case CN_SEQUENCE:
        return "a sequence";
    case CN_MAPPING:
        return "a mapping";
    }
    return "a node";
}

/* Appends `s` (n bytes) to *buf escaped for a one-line message. false on OOM. */
static bool escape_into(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[5];
        size_t k;
        if (c == '\n') {
            memcpy(tmp, "\\n", 2);
            k = 2;
        } else if (c == '\t') {
            memcpy(tmp, "\\t", 2);
            k = 2;
        } else if (c == '\\' || c == '\'') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            k = 2;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(tmp, sizeof tmp, "\\x%02x", c);
            k = 4;
        } else {
            tmp[0] = (char)c;
            k = 1;
        }
        char *nb = grow(*buf, cap, *len + k + 1, 1);
        if (!nb) return false;
        *buf = nb;
        memcpy(*buf + *len, tmp, k);
        *len += k;
    }
    char *nb = grow(*buf, cap, *len + 1, 1);
    if (!nb) return false;
    *buf = nb;
    nb[*len] = '\0';
    return true;
}

/* A scalar's text made safe to quote in a one-line message; "" for other nodes. */
static const char *shown(struct loader *l, struct cnode *n)
{
    if (n->kind != CN_SCALAR) return "";
    if (n->shown) return n->shown;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (!escape_into(&buf, &len, &cap, n->text, n->len)) {
        free(buf);
        l->oom = true;
        return "?";
    }
    n->shown = buf;
    return buf;
}

/* ---------------------------------------------------------------------------------- */
/* YAML events -> tree                                                                 */

/* Line and column (1-based) of byte `offset` of the input, for libyaml reader errors,
 * which carry an offset but no mark. Columns count UTF-8 characters as libyaml does. */
static void offset_position(const struct loader *l, size_t offset, int *line, int *column)
{
    long ln = 1, col = 1;
    if (offset > l->input_len) offset = l->input_len;
    for (size_t i = 0; i < offset; i++) {
        unsigned char c = l->input[i];
        if (c == '\n') {
            ln++;
            col = 1;
        } else if ((c & 0xc0) != 0x80) {
            col++;
        }
    }
    *line = ln > INT32_MAX ? INT32_MAX : (int)ln;
    *column = col > INT32_MAX ? INT32_MAX : (int)col;
}

static void report_syntax(struct loader *l, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR) {
        l->oom = true;
        return;
    }
    const char *problem = p->problem ? p->problem : "malformed YAML";
    int line, column;
    if (p->error == YAML_READER_ERROR) {
        offset_position(l, p->problem_offset, &line, &column);
        if (p->problem_value != -1)
            report_at(l, line, column, "YAML syntax error: %s (byte 0x%02x); expected UTF-8 text",
                      problem, (unsigned)p->problem_value & 0xffu);
        else
            report_at(l, line, column, "YAML syntax error: %s; expected UTF-8 text", problem);
        return;
    }
    line = mark_line(&p->problem_mark);
    column = mark_column(&p->problem_mark);
    if (p->context)
        report_at(l, line, column,
                  "YAML syntax error: %s (%s that starts at line %d, column %d); "
                  "expected well-formed YAML",
                  problem, p->context, mark_line(&p->context_mark), mark_column(&p->context_mark));
    else
        report_at(l, line, column, "YAML syntax error: %s; expected well-formed YAML", problem);
}

/* A malloc'd copy of NUL-terminated `s` escaped for a message; NULL (and oom) on failure. */
static char *escape_dup(struct loader *l, const char *s)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (!escape_into(&buf, &len, &cap, s, strlen(s))) {
        free(buf);
        l->oom = true;
        return NULL;
    }
    return buf;
}

/* Reports an anchor or tag on a node: xatm configs are written out in full. */
static void reject_decorations(struct loader *l, const yaml_mark_t *mark, const yaml_char_t *anchor,
                               const yaml_char_t *tag)
{
    int line = mark_line(mark), column = mark_column(mark);
    if (anchor) {
        char *s = escape_dup(l, (const char *)anchor);
        if (s)
            report_at(l, line, column,
                      "anchors are not supported (found '&%s'); expected every value written out",
                      s);
        free(s);
    }
    if (tag) {
        char *s = escape_dup(l, (const char *)tag);
        if (s)
            report_at(l, line, column,
                      "tags are not supported (found '%s'); expected an untagged value", s);
        free(s);
    }
}

/* Is this plain scalar YAML's null? */
static bool plain_is_null(const char *s, size_t n)
{
    return n == 0 || (n == 1 && s[0] == '~') || (n == 4 && (!memcmp(s, "null", 4) ||
                                                            !memcmp(s, "Null", 4) ||
                                                            !memcmp(s, "NULL", 4)));
}

/* Stack of open collections while building. */
struct build_stack {
    struct cnode **items; /* open sequences and mappings, innermost last; not owned */
    size_t n;             /* entries used */
    size_t cap;           /* entries allocated */
};

/* Hangs a finished node under the innermost open collection, or makes it the root. */
static void attach(struct loader *l, struct build_stack *st, struct cnode *n, struct cnode **root,
                   bool keep_root)
{
    if (st->n > 0)
        node_add_kid(l, st->items[st->n - 1], n);
    else if (keep_root)
        *root = n;
}

/* Parses the input into a tree. Returns false on a YAML syntax error (reported) or OOM;
 * *root is NULL when the stream held no document. */
static bool build_tree(struct loader *l, struct cnode **root)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    struct build_stack st = { 0 };
    bool ok = false;
    int documents = 0;

    *root = NULL;
    if (!yaml_parser_initialize(&parser)) {
        l->oom = true;
        return false;
    }
    yaml_parser_set_input_string(&parser, l->input, l->input_len);

    for (;;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            report_syntax(l, &parser);
            goto out_parser;
        }
        bool end = false;
        bool keep = documents == 1; /* nodes of a second document are parsed, then dropped */
        struct cnode *n = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            end = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++documents == 2)
                report_at(l, mark_line(&ev.start_mark), mark_column(&ev.start_mark),
                          "a second YAML document in the file; expected exactly one document");
            break;
        case YAML_SCALAR_EVENT:
            reject_decorations(l, &ev.start_mark, ev.data.scalar.anchor, ev.data.scalar.tag);
            n = node_new(l, CN_SCALAR, &ev.start_mark);
            if (!n) break;
            n->text = xstrndup(l, (const char *)ev.data.scalar.value, ev.data.scalar.length);
            n->len = ev.data.scalar.length;
            if (!n->text) n->len = 0;
            n->is_null = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                         plain_is_null(n->text ? n->text : "", n->len);
            attach(l, &st, n, root, keep);
            break;
        case YAML_ALIAS_EVENT: {
            char *s = escape_dup(l, (const char *)ev.data.alias.anchor);
            if (!s) break;
            report_at(l, mark_line(&ev.start_mark), mark_column(&ev.start_mark),
                      "aliases are not supported (found '*%s'); expected every value written out",
                      s);
            free(s);
            /* stands in as an empty value so the rest of the file is still checked */
            n = node_new(l, CN_SCALAR, &ev.start_mark);
            if (!n) break;
            n->text = xstrndup(l, "", 0);
            n->is_null = true;
            attach(l, &st, n, root, keep);
            break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (ev.type == YAML_SEQUENCE_START_EVENT)
                reject_decorations(l, &ev.start_mark, ev.data.sequence_start.anchor,
                                   ev.data.sequence_start.tag);
            else
                reject_decorations(l, &ev.start_mark, ev.data.mapping_start.anchor,
                                   ev.data.mapping_start.tag);
            n = node_new(l, ev.type == YAML_SEQUENCE_START_EVENT ? CN_SEQUENCE : CN_MAPPING,
                         &ev.start_mark);
            if (!n) break;
            attach(l, &st, n, root, keep);
            struct cnode **items = grow(st.items, &st.cap, st.n + 1, sizeof *st.items);
            if (!items) {
                l->oom = true;
                break;
            }
            st.items = items;
            st.items[st.n++] = n;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (st.n > 0) st.n--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (l->oom) goto out_parser;
        if (end) break;
    }
    ok = true;

out_parser:
    free(st.items);
    yaml_parser_delete(&parser);
    return ok;
}

/* ---------------------------------------------------------------------------------- */
/* Mapping keys: lookup, unknown keys with a suggestion, duplicates                    */

/* Optimal-string-alignment distance (edits, with adjacent swaps counting one), capped:
 * returns 3 for anything farther than 2. `b` is one of our own short key names. */
static int edit_distance(const char *a, size_t na, const char *b)
{
    enum { MAXK = 40 };
    size_t nb = strlen(b);
    if (nb >= MAXK || (na > nb ? na - nb : nb - na) > 2) return 3;
    int d[MAXK + 3][MAXK + 1];
    for (size_t i = 0; i <= na; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= nb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        for (size_t j = 1; j <= nb; j++) {
            int cost = a[i - 1] == b[j - 1] ? 0 : 1;
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[na][nb] > 2 ? 3 : d[na][nb];
}

/* The known name closest to `s` within distance 2, or NULL. A suggestion must keep part
 * of what was typed (distance below its length), so "~" does not suggest "id". */
static const char *closest(const char *s, size_t n, const char *const *names, size_t count)
{
    const char *best = NULL;
    int best_d = 3;
    for (size_t i = 0; i < count; i++) {
        int d = edit_distance(s, n, names[i]);
        if (d < best_d && (size_t)d < n) {
            best_d = d;
            best = names[i];
        }
    }
    return best;
}

/* "a, b or c" of the names, malloc'd; NULL on OOM. */
static char *name_list(const char *const *names, size_t count)
{
    size_t total = 1;
    for (size_t i = 0; i < count; i++) total += strlen(names[i]) + 4;
    char *s = malloc(total);
    if (!s) return NULL;
    s[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        if (i > 0) strcat(s, i + 1 == count ? " or " : ", ");
        strcat(s, names[i]);
    }
    return s;
}

/* Sorts the pairs of `map` into keys[]/vals[] by the known `names` (both arrays of
 * `count`, zeroed by the caller). Reports keys that are not scalars, unknown keys (with
 * the closest known one) and repeated keys; the first occurrence of a key wins. */
static void map_collect(struct loader *l, struct cnode *map, const char *where,
                        const char *const *names, size_t count, struct cnode **keys,
                        struct cnode **vals)
{
    for (size_t p = 0; p + 1 < map->n_kids; p += 2) {
        struct cnode *k = map->kids[p], *v = map->kids[p + 1];
        if (k->kind != CN_SCALAR) {
            report(l, k, "%s used as a key in %s; expected a key name", kind_name(k->kind),
                   where);
            continue;
        }
        size_t idx = count;
        for (size_t i = 0; i < count; i++) {
            if (strlen(names[i]) == k->len && !memcmp(names[i], k->text, k->len)) {
                idx = i;
                break;
            }
        }
        if (idx == count) {
            const char *hint = closest(k->text, k->len, names, count);
            char *list = name_list(names, count);
            if (!list) {
                l->oom = true;
                return;
            }
            if (hint)
                report(l, k, "unknown key '%s' in %s (did you mean '%s'?); expected one of %s",
                       shown(l, k), where, hint, list);
            else
                report(l, k, "unknown key '%s' in %s; expected one of %s", shown(l, k), where,
                       list);
            free(list);
            continue;
        }
        if (keys[idx]) {
            report(l, k, "duplicate key '%s' in %s (first given at line %d); expected each key "
                         "at most once",
                   names[idx], where, keys[idx]->line);
            continue;
        }
        keys[idx] = k;
        vals[idx] = v;
    }
}

/* ---------------------------------------------------------------------------------- */
/* Scalar values                                                                       */

/* One field being validated: its place for messages and its value node. */
struct fld {
    const char *where; /* enclosing section: "tm", "rms[2]", or "" at the top */
    const char *key;   /* the key */
    struct cnode *v;   /* the value node */
};

#define PATH_FMT "%s%s%s"
#define PATH_ARGS(f) (f)->where, (f)->where[0] ? "." : "", (f)->key

/* The value as a non-null scalar, or NULL after reporting why it is not one. */
static struct cnode *want_scalar(struct loader *l, const struct fld *f, const char *expect)
{
    if (f->v->kind != CN_SCALAR) {
        report(l, f->v, PATH_FMT " is %s; expected %s", PATH_ARGS(f), kind_name(f->v->kind),
               expect);
        return NULL;
    }
    if (f->v->is_null || !f->v->text) {
        report(l, f->v, PATH_FMT " has no value; expected %s", PATH_ARGS(f), expect);
        return NULL;
    }
    return f->v;
}

/* The value as a non-empty string without NUL bytes, or NULL after reporting. */
static const char *want_text(struct loader *l, const struct fld *f, const char *expect)
{
    struct cnode *n = want_scalar(l, f, expect);
    if (!n) return NULL;
    if (n->len == 0) {
        report(l, n, PATH_FMT " is empty; expected %s", PATH_ARGS(f), expect);
        return NULL;
    }
    if (strlen(n->text) != n->len) {
        report(l, n, PATH_FMT " contains a NUL character; expected %s", PATH_ARGS(f), expect);
        return NULL;
    }
    return n->text;
}

/* *out = copy of the text value; false after reporting (or on OOM). */
static bool get_string(struct loader *l, const struct fld *f, const char *expect, char **out)
{
    const char *s = want_text(l, f, expect);
    if (!s) return false;
    *out = xstrndup(l, s, f->v->len);
    return *out != NULL;
}

/* A Unix socket path that fits sockaddr_un. */
static bool get_socket_path(struct loader *l, const struct fld *f, char **out)
{
    char expect[96];
    snprintf(expect, sizeof expect, "a Unix socket path of at most %zu bytes", SOCKET_PATH_MAX);
    const char *s = want_text(l, f, expect);
    if (!s) return false;
    if (f->v->len > SOCKET_PATH_MAX) {
        report(l, f->v, PATH_FMT " is %zu bytes long, too long for a Unix socket; expected %s",
               PATH_ARGS(f), f->v->len, expect);
        return false;
    }
    *out = xstrndup(l, s, f->v->len);
    return *out != NULL;
}

/* Outcome of parsing a number-like value. */
enum val_rc {
    V_OK,       /* parsed */
    V_SYNTAX,   /* not of the expected form */
    V_RANGE,    /* of the form but too large */
    V_FRACTION, /* a duration that is not a whole number of milliseconds */
};

/* Unsigned integer of `base` (8, 10 or 16) digits, at least one, no sign, <= max. */
static enum val_rc parse_uint(const char *s, size_t n, unsigned base, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    bool big = false;
    if (n == 0) return V_SYNTAX;
    for (size_t i = 0; i < n; i++) {
        unsigned d;
        char c = s[i];
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return V_SYNTAX;
        if (d >= base) return V_SYNTAX;
        if (v > (UINT64_MAX - d) / base)
            big = true;
        else
            v = v * base + d;
    }
    if (big || v > max) return V_RANGE;
    *out = v;
    return V_OK;
}

/* Skips blanks between a number and its unit. */
static size_t skip_blanks(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    return i;
}

/* Duration: "<digits>[.<digits>][ ]<unit>" with unit ms, s, m or h; no unit means ms.
 * Result in ms, <= UINT32_MAX; it must be a whole number of milliseconds. */
static enum val_rc parse_duration(const char *s, size_t n, uint32_t *out)
{
    size_t i = 0, int_start, int_end, frac_start = 0, frac_end = 0;
    uint64_t ip = 0, unit;
    bool big = false;

    int_start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (ip <= UINT32_MAX) ip = ip * 10 + (uint64_t)(s[i] - '0');
        if (ip > UINT32_MAX) big = true;
        i++;
    }
    int_end = i;
    if (int_end == int_start) return V_SYNTAX;
    if (i < n && s[i] == '.') {
        i++;
        frac_start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        frac_end = i;
        if (frac_end == frac_start) return V_SYNTAX;
    }
    i = skip_blanks(s, i, n);
    const char *u = s + i;
    size_t un = n - i;
    if (un == 0 || (un == 2 && !memcmp(u, "ms", 2)))
        unit = 1;
    else if (un == 1 && u[0] == 's')
        unit = 1000;
    else if (un == 1 && u[0] == 'm')
        unit = 60000;
    else if (un == 1 && u[0] == 'h')
        unit = 3600000;
    else
        return V_SYNTAX;

    /* fraction: exact rational arithmetic; more than 7 significant fraction digits can
     * never make whole milliseconds (unit has at most 2^7 and 5^5 as factors). */
    uint64_t frac_ms = 0;
    while (frac_end > frac_start && s[frac_end - 1] == '0') frac_end--;
    size_t k = frac_end - frac_start;
    if (k > 7) return V_FRACTION;
    if (k > 0) {
        uint64_t f = 0, den = 1;
        for (size_t j = frac_start; j < frac_end; j++) {
            f = f * 10 + (uint64_t)(s[j] - '0');
            den *= 10;
        }
        if ((f * unit) % den != 0) return V_FRACTION;
        frac_ms = f * unit / den;
    }
    if (big) return V_RANGE;
    uint64_t total = ip * unit + frac_ms;
    if (total > UINT32_MAX) return V_RANGE;
    *out = (uint32_t)total;
    return V_OK;
}

/* Size: "<digits>[ ][KiB|MiB|GiB]" in bytes, <= INT64_MAX (it must fit off_t). */
static enum val_rc parse_size(const char *s, size_t n, uint64_t *out)
{
    size_t i = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    size_t digits = i;
    if (digits == 0) return V_SYNTAX;
    i = skip_blanks(s, i, n);
    const char *u = s + i;
    size_t un = n - i;
    uint64_t mult;
    if (un == 0)
        mult = 1;
    else if (un == 3 && !memcmp(u, "KiB", 3))
        mult = UINT64_C(1) << 10;
    else if (un == 3 && !memcmp(u, "MiB", 3))
        mult = UINT64_C(1) << 20;
    else if (un == 3 && !memcmp(u, "GiB", 3))
        mult = UINT64_C(1) << 30;
    else
        return V_SYNTAX;
    uint64_t v;
    enum val_rc rc = parse_uint(s, digits, 10, INT64_MAX, &v);
    if (rc != V_OK) return rc;
    if (v > (uint64_t)INT64_MAX / mult) return V_RANGE;
    *out = v * mult;
    return V_OK;
}

static const char EXPECT_DURATION[] =
    "a duration greater than 0: milliseconds, or a number with unit ms, s, m or h (e.g. 30s), "
    "at most 4294967295 ms";

static bool get_duration(struct loader *l, const struct fld *f, uint32_t *out)
{
    const char *s = want_text(l, f, EXPECT_DURATION);
    if (!s) return false;
    uint32_t v = 0;
    switch (parse_duration(s, f->v->len, &v)) {
    case V_OK:
        if (v == 0) {
            report(l, f->v, PATH_FMT " '%s' is zero; expected %s", PATH_ARGS(f), shown(l, f->v),
                   EXPECT_DURATION);
            return false;
        }
        *out = v;
        return true;
    case V_SYNTAX:
        report(l, f->v, PATH_FMT " '%s' is not a duration; expected %s", PATH_ARGS(f),
               shown(l, f->v), EXPECT_DURATION);
        return false;
    case V_RANGE:
        report(l, f->v, PATH_FMT " '%s' is too long; expected %s", PATH_ARGS(f), shown(l, f->v),
               EXPECT_DURATION);
        return false;
    case V_FRACTION:
        report(l, f->v, PATH_FMT " '%s' is not a whole number of milliseconds; expected %s",
               PATH_ARGS(f), shown(l, f->v), EXPECT_DURATION);
        return false;
    }
    return false;
}

/* ---------------------------------------------------------------------------------- */
/* tm:                                                                                 */

enum tm_key {
    TK_ID,
    TK_SOCKET,
    TK_ADMIN_SOCKET,
    TK_SOCKET_MODE,
    TK_LOG_DIR,
    TK_LOG_SEGMENT_SIZE,
    TK_FORMAT_ID,
    TK_PROTOCOL,
    TK_TRANSACTION_TIMEOUT,
    TK_REQUEST_TIMEOUT,
    TK_RECOVERY_INTERVAL,
    TK_PRECOMMIT_TIMEOUT,
    TK_PARTICIPANT_TIMEOUT,
    TK_PARTICIPANT_TIMEOUT_ACTION,
    TK_DECISION_RM,
    TK_DECISION_RETENTION,
    TK_COUNT
};

static const char *const tm_keys[TK_COUNT] = {
    [TK_ID] = "id",
    [TK_SOCKET] = "socket",
    [TK_ADMIN_SOCKET] = "admin_socket",
    [TK_SOCKET_MODE] = "socket_mode",
    [TK_LOG_DIR] = "log_dir",
    [TK_LOG_SEGMENT_SIZE] = "log_segment_size",
    [TK_FORMAT_ID] = "format_id",
    [TK_PROTOCOL] = "protocol",
    [TK_TRANSACTION_TIMEOUT] = "transaction_timeout",
    [TK_REQUEST_TIMEOUT] = "request_timeout",
    [TK_RECOVERY_INTERVAL] = "recovery_interval",
    [TK_PRECOMMIT_TIMEOUT] = "precommit_timeout",
    [TK_PARTICIPANT_TIMEOUT] = "participant_timeout",
    [TK_PARTICIPANT_TIMEOUT_ACTION] = "participant_timeout_action",
    [TK_DECISION_RM] = "decision_rm",
    [TK_DECISION_RETENTION] = "decision_retention",
};

static void load_tm_id(struct loader *l, const struct fld *f, xatm_config *cfg)
{
    char expect[96];
    snprintf(expect, sizeof expect, "a TM id: 1 to %d characters from A-Z a-z 0-9 _ -",
             XATM_TM_ID_MAX);
    const char *s = want_text(l, f, expect);
    if (!s) return;
    if (!xatm_tm_id_valid(s)) {
        report(l, f->v, PATH_FMT " '%s' is not a valid TM id; expected %s", PATH_ARGS(f),
               shown(l, f->v), expect);
        return;
    }
    cfg->tm_id = xstrndup(l, s, f->v->len);
}

static void load_socket_mode(struct loader *l, const struct fld *f, xatm_config *cfg)
{
    static const char expect[] = "octal permission bits such as 0660, at most 0777";
    const char *s = want_text(l, f, expect);
    if (!s) return;
    size_t n = f->v->len;
    if (n > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'O')) {
        s += 2;
        n -= 2;
    }
    uint64_t v;
    switch (parse_uint(s, n, 8, 0777, &v)) {
    case V_OK:
        cfg->socket_mode = (uint32_t)v;
        return;
    case V_RANGE:
        report(l, f->v, PATH_FMT " '%s' has bits beyond 0777; expected %s", PATH_ARGS(f),
               shown(l, f->v), expect);
        return;
    default:
        report(l, f->v, PATH_FMT " '%s' is not an octal number; expected %s", PATH_ARGS(f),
               shown(l, f->v), expect);
        return;
    }
}

static void load_segment_size(struct loader *l, const struct fld *f, xatm_config *cfg)
{
    static const char expect[] =
        "a size of at least 64KiB: bytes, or a whole number with unit KiB, MiB or GiB (e.g. 16MiB)";
    const char *s = want_text(l, f, expect);
    if (!s) return;
    uint64_t v = 0;
    switch (parse_size(s, f->v->len, &v)) {
    case V_OK:
        if (v < MIN_SEGMENT_SIZE) {
            report(l, f->v, PATH_FMT " '%s' is smaller than 64KiB; expected %s", PATH_ARGS(f),
                   shown(l, f->v), expect);
            return;
        }
        cfg->log_segment_size = v;
        return;
    case V_RANGE:
        report(l, f->v, PATH_FMT " '%s' is too large; expected %s", PATH_ARGS(f),
               shown(l, f->v), expect);
        return;
    default:
        report(l, f->v, PATH_FMT " '%s' is not a size; expected %s", PATH_ARGS(f),
               shown(l, f->v), expect);
        return;
    }
}

static void load_format_id(struct loader *l, const struct fld *f, xatm_config *cfg)
{
    static const char expect[] =
        "an XA formatID from 2 to 2147483647 (0x7fffffff), decimal or 0x hex";
    const char *s = want_text(l, f, expect);
    if (!s) return;
    size_t n = f->v->len;
    uint64_t v = 0;
    enum val_rc rc;
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        rc = parse_uint(s + 2, n - 2, 16, 0x7fffffff, &v);
    else
        rc = parse_uint(s, n, 10, 0x7fffffff, &v);
    if (rc == V_RANGE) {
        report(l, f->v, PATH_FMT " '%s' does not fit in 31 bits (MySQL's formatID is signed); "
                        "expected %s",
               PATH_ARGS(f), shown(l, f->v), expect);
        return;
    }
    if (rc != V_OK) {
        report(l, f->v, PATH_FMT " '%s' is not a number; expected %s", PATH_ARGS(f),
               shown(l, f->v), expect);
        return;
    }
    if (v <= 1) {
        report(l, f->v, PATH_FMT " '%s' is reserved (%s); expected %s", PATH_ARGS(f),
               shown(l, f->v), v == 0 ? "0 marks a null XID" : "1 is MySQL's default formatID",
               expect);
        return;
    }
    cfg->format_id = (uint32_t)v;
}

static void load_protocol(struct loader *l, const struct fld *f, xatm_config *cfg)
{
    static const char expect[] = "2pc or 3pc";
    const char *s = want_text(l, f, expect);
    if (!s) return;
    if (!strcasecmp(s, "2pc"))
        cfg->default_protocol = XATM_PROTOCOL_2PC;
    else if (!strcasecmp(s, "3pc"))
        cfg->default_protocol = XATM_PROTOCOL_3PC;
    else
        report(l, f->v, PATH_FMT " '%s' is not a commit protocol; expected %s", PATH_ARGS(f),
               shown(l, f->v), expect);
}

static void load_participant_action(struct loader *l, const struct fld *f, xatm_config *cfg)
{
    static const char expect[] = "commit or wait";
    const char *s = want_text(l, f, expect);
    if (!s) return;
    if (!strcasecmp(s, "commit"))
        cfg->participant_timeout_action = XATM_PARTICIPANT_COMMIT;
    else if (!strcasecmp(s, "wait"))
        cfg->participant_timeout_action = XATM_PARTICIPANT_WAIT;
    else
        report(l, f->v, PATH_FMT " '%s' is not a participant timeout action; expected %s",
               PATH_ARGS(f), shown(l, f->v), expect);
}

/* The default admin socket: "xatmd-admin.sock" next to the AP socket. */
static char *default_admin_socket(struct loader *l, const char *socket_path)
{
    const char *slash = strrchr(socket_path, '/');
    size_t dir_len = slash ? (size_t)(slash - socket_path) + 1 : 0; /* keeps the '/' */
    size_t n = dir_len + strlen(DEFAULT_ADMIN_SOCKET_NAME);
    char *s = malloc(n + 1);
    if (!s) {
        l->oom = true;
        return NULL;
    }
    memcpy(s, socket_path, dir_len);
    memcpy(s + dir_len, DEFAULT_ADMIN_SOCKET_NAME, strlen(DEFAULT_ADMIN_SOCKET_NAME) + 1);
    return s;
}

static void load_tm(struct loader *l, struct cnode *map, xatm_config *cfg)
{
    struct cnode *keys[TK_COUNT] = { 0 }, *vals[TK_COUNT] = { 0 };
    static const char *const required_expect[TK_COUNT] = {
        [TK_ID] = "the TM's id, e.g. 'id: tm1'",
        [TK_SOCKET] = "the path of the AP socket, e.g. 'socket: /run/xatm/xatmd.sock'",
        [TK_LOG_DIR] = "the decision log directory, e.g. 'log_dir: /var/lib/xatm/log'",
    };

    map_collect(l, map, "tm", tm_keys, TK_COUNT, keys, vals);
    for (size_t k = 0; k < TK_COUNT; k++) {
        if (required_expect[k] && !vals[k])
            report(l, map, "missing required key '%s' in tm; expected %s", tm_keys[k],
                   required_expect[k]);
    }
    for (size_t k = 0; k < TK_COUNT; k++) {
        if (!vals[k]) continue;
        struct fld f = { "tm", tm_keys[k], vals[k] };
        switch ((enum tm_key)k) {
        case TK_ID:
            load_tm_id(l, &f, cfg);
            break;
        case TK_SOCKET:
            get_socket_path(l, &f, &cfg->socket_path);
            break;
        case TK_ADMIN_SOCKET:
            get_socket_path(l, &f, &cfg->admin_socket_path);
            break;
        case TK_SOCKET_MODE:
            load_socket_mode(l, &f, cfg);
            break;
        case TK_LOG_DIR:
            get_string(l, &f, "a directory path", &cfg->log_dir);
            break;
        case TK_LOG_SEGMENT_SIZE:
            load_segment_size(l, &f, cfg);
            break;
        case TK_FORMAT_ID:
            load_format_id(l, &f, cfg);
            break;
        case TK_PROTOCOL:
            load_protocol(l, &f, cfg);
            break;
        case TK_TRANSACTION_TIMEOUT:
            get_duration(l, &f, &cfg->transaction_timeout_ms);
            break;
        case TK_REQUEST_TIMEOUT:
            get_duration(l, &f, &cfg->request_timeout_ms);
            break;
        case TK_RECOVERY_INTERVAL:
            get_duration(l, &f, &cfg->recovery_interval_ms);
            break;
        case TK_PRECOMMIT_TIMEOUT:
            get_duration(l, &f, &cfg->precommit_timeout_ms);
            break;
        case TK_PARTICIPANT_TIMEOUT:
            get_duration(l, &f, &cfg->participant_timeout_ms);
            break;
        case TK_PARTICIPANT_TIMEOUT_ACTION:
            load_participant_action(l, &f, cfg);
            break;
        case TK_DECISION_RM:
            /* checked against the RM names once rms is loaded (load_root) */
            if (get_string(l, &f, "the name of a configured RM", &cfg->decision_rm))
                l->decision_rm_at = vals[k];
            break;
        case TK_DECISION_RETENTION:
            get_duration(l, &f, &cfg->decision_retention_ms);
            break;
        case TK_COUNT:
            break;
        }
    }

    /* the admin socket: default next to the AP socket, and never the same path */
    if (!cfg->socket_path) return;
    if (!cfg->admin_socket_path && !vals[TK_ADMIN_SOCKET]) {
        cfg->admin_socket_path = default_admin_socket(l, cfg->socket_path);
        if (!cfg->admin_socket_path) return;
        if (strlen(cfg->admin_socket_path) > SOCKET_PATH_MAX) {
            report(l, vals[TK_SOCKET],
                   "tm.socket gives a default admin socket path of %zu bytes ('%s' in its "
                   "directory), too long for a Unix socket; expected a shorter directory or an "
                   "explicit tm.admin_socket of at most %zu bytes",
                   strlen(cfg->admin_socket_path), DEFAULT_ADMIN_SOCKET_NAME, SOCKET_PATH_MAX);
            return;
        }
    }
    if (cfg->admin_socket_path && !strcmp(cfg->admin_socket_path, cfg->socket_path)) {
        struct cnode *at = vals[TK_ADMIN_SOCKET] ? vals[TK_ADMIN_SOCKET] : vals[TK_SOCKET];
        report(l, at, "tm.admin_socket and tm.socket are the same path '%s'; expected two "
                      "different sockets",
               shown(l, at));
    }
}

/* ---------------------------------------------------------------------------------- */
/* rms:                                                                                */

enum rm_key {
    RK_NAME,
    RK_TYPE,
    RK_HOST,
    RK_PORT,
    RK_SOCKET,
    RK_USER,
    RK_DATABASE,
    RK_PASSWORD,
    RK_PASSWORD_ENV,
    RK_PASSWORD_FILE,
    RK_CONNECT_TIMEOUT,
    RK_COUNT
};

static const char *const rm_keys[RK_COUNT] = {
    [RK_NAME] = "name",
    [RK_TYPE] = "type",
    [RK_HOST] = "host",
    [RK_PORT] = "port",
    [RK_SOCKET] = "socket",
    [RK_USER] = "user",
    [RK_DATABASE] = "database",
    [RK_PASSWORD] = "password",
    [RK_PASSWORD_ENV] = "password_env",
    [RK_PASSWORD_FILE] = "password_file",
    [RK_CONNECT_TIMEOUT] = "connect_timeout",
};

/* Accepted spellings of the RM types; "mariadb" is another name for mysql. */
static const char *const rm_type_names[] = { "postgresql", "mysql", "mariadb" };

/* Reads a whole file into a malloc'd NUL-terminated buffer. 0, or an errno value. */
static int read_file(const char *path, char **out, size_t *out_len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int err = 0;

    if (!fp) return errno ? errno : EIO;
    for (;;) {
        char *nb = grow(buf, &cap, len + 4096 + 1, 1);
        if (!nb) {
            err = ENOMEM;
            goto out_buf;
        }
        buf = nb;
        size_t got = fread(buf + len, 1, cap - len - 1, fp);
        len += got;
        if (got == 0) {
            if (ferror(fp)) {
                err = errno ? errno : EIO;
                goto out_buf;
            }
            break;
        }
    }
    buf[len] = '\0';
    fclose(fp);
    *out = buf;
    *out_len = len;
    return 0;

out_buf:
    if (buf) explicit_bzero(buf, len);
    free(buf);
    fclose(fp);
    return err;
}

static void load_rm_type(struct loader *l, const struct fld *f, xatm_rm_config *rm)
{
    static const char expect[] = "postgresql, mysql or mariadb (an alias of mysql)";
    const char *s = want_text(l, f, expect);
    if (!s) return;
    if (!strcasecmp(s, "postgresql")) {
        rm->type = XATM_RM_POSTGRESQL;
    } else if (!strcasecmp(s, "mysql") || !strcasecmp(s, "mariadb")) {
        rm->type = XATM_RM_MYSQL;
    } else {
        const char *hint = closest(s, f->v->len, rm_type_names,
                                   sizeof rm_type_names / sizeof rm_type_names[0]);
        if (hint)
            report(l, f->v, PATH_FMT ": unknown RM type '%s' (did you mean '%s'?); expected %s",
                   PATH_ARGS(f), shown(l, f->v), hint, expect);
        else
            report(l, f->v, PATH_FMT ": unknown RM type '%s'; expected %s", PATH_ARGS(f),
                   shown(l, f->v), expect);
    }
}

static void load_port(struct loader *l, const struct fld *f, xatm_rm_config *rm)
{
    static const char expect[] = "a TCP port from 1 to 65535";
    const char *s = want_text(l, f, expect);
    if (!s) return;
    uint64_t v = 0;
    enum val_rc rc = parse_uint(s, f->v->len, 10, 65535, &v);
    if (rc == V_OK && v == 0) rc = V_RANGE;
    if (rc == V_OK)
        rm->port = (uint16_t)v;
    else if (rc == V_RANGE)
        report(l, f->v, PATH_FMT " '%s' is out of range; expected %s", PATH_ARGS(f),
               shown(l, f->v), expect);
    else
        report(l, f->v, PATH_FMT " '%s' is not a number; expected %s", PATH_ARGS(f),
               shown(l, f->v), expect);
}

static void load_password(struct loader *l, enum rm_key which, const struct fld *f,
                          xatm_rm_config *rm)
{
    if (which == RK_PASSWORD) {
        static const char expect[] = "the password as a string";
        struct cnode *n = want_scalar(l, f, expect);
        if (!n) return;
        if (strlen(n->text) != n->len) {
            report(l, n, PATH_FMT " contains a NUL character; expected %s", PATH_ARGS(f), expect);
            return;
        }
        rm->password = xstrndup(l, n->text, n->len); /* "" is a valid (empty) password */
        return;
    }
    if (which == RK_PASSWORD_ENV) {
        static const char expect[] =
            "the name of an environment variable that is set when the configuration is loaded";
        const char *name = want_text(l, f, expect);
        if (!name) return;
        const char *v = getenv(name);
        if (!v) {
            report(l, f->v, PATH_FMT ": environment variable '%s' is not set; expected %s",
                   PATH_ARGS(f), shown(l, f->v), expect);
            return;
        }
        rm->password = xstrndup(l, v, strlen(v));
        return;
    }
    /* RK_PASSWORD_FILE */
    static const char expect[] = "a readable file holding the password (mode 0600)";
    const char *path = want_text(l, f, expect);
    if (!path) return;
    char *buf = NULL;
    size_t len = 0;
    int err = read_file(path, &buf, &len);
    if (err == ENOMEM) {
        l->oom = true;
        return;
    }
    if (err) {
        char ebuf[128];
        report(l, f->v, PATH_FMT ": cannot read '%s': %s; expected %s", PATH_ARGS(f),
               shown(l, f->v), strerror_r(err, ebuf, sizeof ebuf), expect);
        return;
    }
    /* one line terminator ("\n" or "\r\n") is not part of the password */
    if (len > 0 && buf[len - 1] == '\n') {
        buf[--len] = '\0';
        if (len > 0 && buf[len - 1] == '\r') buf[--len] = '\0';
    }
    if (strlen(buf) != len) {
        report(l, f->v, PATH_FMT ": '%s' contains a NUL byte; expected %s", PATH_ARGS(f),
               shown(l, f->v), expect);
        free_secret(buf);
        return;
    }
    rm->password = buf;
}

/* Validates one rms entry into *rm; *name_node is set to its name value when valid. */
static void load_rm(struct loader *l, struct cnode *map, size_t index, xatm_rm_config *rm,
                    struct cnode **name_node)
{
    struct cnode *keys[RK_COUNT] = { 0 }, *vals[RK_COUNT] = { 0 };
    char *where = NULL;
    char name_expect[96];

    snprintf(name_expect, sizeof name_expect,
             "an RM name: 1 to %d characters from A-Z a-z 0-9 _ -", XATM_RM_NAME_MAX);
    if (asprintf(&where, "rms[%zu]", index) < 0) {
        l->oom = true;
        return;
    }
    rm->line = map->line;
    rm->column = map->column;
    rm->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;

    map_collect(l, map, where, rm_keys, RK_COUNT, keys, vals);
    if (!vals[RK_NAME])
        report(l, map, "missing required key 'name' in %s; expected %s", where, name_expect);
    if (!vals[RK_TYPE])
        report(l, map, "missing required key 'type' in %s; expected postgresql or mysql", where);
    if (!vals[RK_USER])
        report(l, map, "missing required key 'user' in %s; expected the user to log in as", where);
    if (!vals[RK_DATABASE])
        report(l, map, "missing required key 'database' in %s; expected the database name",
               where);
    if (!vals[RK_HOST] && !vals[RK_SOCKET])
        report(l, map, "missing key 'host' or 'socket' in %s; expected one of them", where);

    for (size_t k = 0; k < RK_COUNT; k++) {
        if (!vals[k]) continue;
        struct fld f = { where, rm_keys[k], vals[k] };
        switch ((enum rm_key)k) {
        case RK_NAME: {
            const char *s = want_text(l, &f, name_expect);
            if (!s) break;
            if (!xatm_rm_name_valid(s)) {
                report(l, f.v, "%s.name '%s' is not a valid RM name; expected %s", where,
                       shown(l, f.v), name_expect);
                break;
            }
            rm->name = xstrndup(l, s, f.v->len);
            if (rm->name) *name_node = f.v;
            break;
        }
        case RK_TYPE:
            load_rm_type(l, &f, rm);
            break;
        case RK_HOST:
            get_string(l, &f, "a host name or address", &rm->host);
            break;
        case RK_PORT:
            load_port(l, &f, rm);
            break;
        case RK_SOCKET:
            get_string(l, &f, "a Unix socket path (PostgreSQL: its directory)", &rm->socket);
            break;
        case RK_USER:
            get_string(l, &f, "the user to log in as", &rm->user);
            break;
        case RK_DATABASE:
            get_string(l, &f, "the database name", &rm->database);
            break;
        case RK_PASSWORD:
        case RK_PASSWORD_ENV:
        case RK_PASSWORD_FILE:
            break; /* below, once we know which one is used */
        case RK_CONNECT_TIMEOUT:
            get_duration(l, &f, &rm->connect_timeout_ms);
            break;
        case RK_COUNT:
            break;
        }
    }

    /* host and socket exclude each other: report the later one */
    if (keys[RK_HOST] && keys[RK_SOCKET]) {
        bool host_first = keys[RK_HOST]->line < keys[RK_SOCKET]->line ||
                          (keys[RK_HOST]->line == keys[RK_SOCKET]->line &&
                           keys[RK_HOST]->column < keys[RK_SOCKET]->column);
        struct cnode *later = host_first ? keys[RK_SOCKET] : keys[RK_HOST];
        struct cnode *first = host_first ? keys[RK_HOST] : keys[RK_SOCKET];
        report(l, later, "%s has both 'host' and 'socket' ('%s' given at line %d); expected "
                         "exactly one of them",
               where, host_first ? "host" : "socket", first->line);
    }

    /* the password: at most one source; the first one given is used */
    enum rm_key pw_first = RK_COUNT;
    for (enum rm_key k = RK_PASSWORD; k <= RK_PASSWORD_FILE; k++) {
        if (!keys[k]) continue;
        if (pw_first == RK_COUNT || keys[k]->line < keys[pw_first]->line ||
            (keys[k]->line == keys[pw_first]->line && keys[k]->column < keys[pw_first]->column))
            pw_first = k;
    }
    for (enum rm_key k = RK_PASSWORD; k <= RK_PASSWORD_FILE; k++) {
        if (!keys[k] || k == pw_first) continue;
        report(l, keys[k], "%s has both '%s' (line %d) and '%s'; expected at most one of "
                           "password, password_env or password_file",
               where, rm_keys[pw_first], keys[pw_first]->line, rm_keys[k]);
    }
    if (pw_first != RK_COUNT) {
        struct fld f = { where, rm_keys[pw_first], vals[pw_first] };
        load_password(l, pw_first, &f, rm);
    }

    /* defaults and cross-checks that need the type */
    if (rm->type == XATM_RM_POSTGRESQL && !rm->port) rm->port = 5432;
    if (rm->type == XATM_RM_MYSQL && !rm->port) rm->port = 3306;
    if (rm->socket && rm->type) {
        /* PostgreSQL's socket is "<dir>/.s.PGSQL.<port>"; MySQL's is the path itself */
        size_t n = strlen(rm->socket);
        if (rm->type == XATM_RM_POSTGRESQL)
            n += strlen("/.s.PGSQL.") + (size_t)snprintf(NULL, 0, "%u", (unsigned)rm->port);
        if (n > SOCKET_PATH_MAX)
            report(l, vals[RK_SOCKET],
                   "%s.socket makes a socket path of %zu bytes, too long for a Unix socket; "
                   "expected at most %zu bytes%s",
                   where, n, SOCKET_PATH_MAX,
                   rm->type == XATM_RM_POSTGRESQL ? " including '/.s.PGSQL.<port>'" : "");
    }
    free(where);
}

static void load_rms(struct loader *l, struct cnode *seq, xatm_config *cfg)
{
    struct cnode **name_nodes = NULL;

    if (seq->n_kids == 0) {
        report(l, seq, "rms is empty; expected at least one RM entry");
        return;
    }
    cfg->rms = calloc(seq->n_kids, sizeof *cfg->rms);
    name_nodes = calloc(seq->n_kids, sizeof *name_nodes);
    if (!cfg->rms || !name_nodes) {
        l->oom = true;
        goto out_names;
    }
    cfg->n_rms = seq->n_kids;
    for (size_t i = 0; i < seq->n_kids; i++) {
        struct cnode *e = seq->kids[i];
        if (e->kind != CN_MAPPING) {
            if (e->kind == CN_SCALAR && e->is_null)
                report(l, e, "rms[%zu] is empty; expected a mapping describing one RM", i);
            else
                report(l, e, "rms[%zu] is %s; expected a mapping describing one RM", i,
                       kind_name(e->kind));
            continue;
        }
        load_rm(l, e, i, &cfg->rms[i], &name_nodes[i]);
        if (l->oom) goto out_names;
    }
    /* names are unique: report each repeat at the repeat, naming the first */
    for (size_t j = 0; j < cfg->n_rms; j++) {
        if (!cfg->rms[j].name) continue;
        for (size_t i = 0; i < j; i++) {
            if (cfg->rms[i].name && !strcmp(cfg->rms[i].name, cfg->rms[j].name)) {
                report(l, name_nodes[j], "duplicate RM name '%s' in rms[%zu] (already used by "
                                         "rms[%zu] at line %d); expected unique RM names",
                       shown(l, name_nodes[j]), j, i, name_nodes[i]->line);
                break;
            }
        }
    }

out_names:
    free(name_nodes);
}

/* ---------------------------------------------------------------------------------- */
/* The whole file                                                                      */

enum top_key { TOP_TM, TOP_RMS, TOP_COUNT };
static const char *const top_keys[TOP_COUNT] = { [TOP_TM] = "tm", [TOP_RMS] = "rms" };

static void load_root(struct loader *l, struct cnode *root, xatm_config *cfg)
{
    static const char expect_top[] = "a mapping with the keys 'tm' and 'rms'";
    struct cnode *keys[TOP_COUNT] = { 0 }, *vals[TOP_COUNT] = { 0 };

    if (root->kind != CN_MAPPING) {
        if (root->kind == CN_SCALAR && root->is_null)
            report(l, root, "the document is empty; expected %s", expect_top);
        else
            report(l, root, "the document is %s; expected %s", kind_name(root->kind), expect_top);
        return;
    }
    map_collect(l, root, "the top-level mapping", top_keys, TOP_COUNT, keys, vals);
    if (!vals[TOP_TM])
        report(l, root, "missing required key 'tm' at the top level; expected a mapping of the "
                        "TM's settings");
    if (!vals[TOP_RMS])
        report(l, root, "missing required key 'rms' at the top level; expected a sequence of "
                        "RM entries");

    if (vals[TOP_TM]) {
        struct cnode *tm = vals[TOP_TM];
        if (tm->kind == CN_MAPPING)
            load_tm(l, tm, cfg);
        else if (tm->kind == CN_SCALAR && tm->is_null)
            report(l, tm, "tm has no value; expected a mapping of the TM's settings");
        else
            report(l, tm, "tm is %s; expected a mapping of the TM's settings",
                   kind_name(tm->kind));
    }
    if (vals[TOP_RMS]) {
        struct cnode *rms = vals[TOP_RMS];
        if (rms->kind == CN_SEQUENCE)
            load_rms(l, rms, cfg);
        else if (rms->kind == CN_SCALAR && rms->is_null)
            report(l, rms, "rms has no value; expected a sequence of RM entries");
        else
            report(l, rms, "rms is %s; expected a sequence of RM entries", kind_name(rms->kind));
    }
    if (l->decision_rm_at && cfg->decision_rm && vals[TOP_RMS] &&
        vals[TOP_RMS]->kind == CN_SEQUENCE && xatm_config_rm_index(cfg, cfg->decision_rm) < 0)
        report(l, l->decision_rm_at,
               "tm.decision_rm '%s' names no RM of rms; expected the name of a configured RM",
               shown(l, l->decision_rm_at));
}

static int cmp_errors(const void *a, const void *b)
{
    const struct cfg_error *x = a, *y = b;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    if (x->column != y->column) return x->column < y->column ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The errors as one malloc'd text, one "file:line:column: message" line each. */
static char *format_errors(struct loader *l)
{
    char *text = NULL;
    size_t len = 0, cap = 0;

    qsort(l->errs, l->n_errs, sizeof *l->errs, cmp_errors);
    text = grow(NULL, &cap, 1, 1);
    if (!text) return NULL;
    text[0] = '\0';
    for (size_t i = 0; i < l->n_errs; i++) {
        const struct cfg_error *e = &l->errs[i];
        char *line = NULL;
        int n;
        if (e->line > 0)
            n = asprintf(&line, "%s:%d:%d: %s\n", l->name, e->line, e->column, e->msg);
        else
            n = asprintf(&line, "%s: %s\n", l->name, e->msg);
        if (n < 0) {
            free(text);
            return NULL;
        }
        char *nt = grow(text, &cap, len + (size_t)n + 1, 1);
        if (!nt) {
            free(line);
            free(text);
            return NULL;
        }
        text = nt;
        memcpy(text + len, line, (size_t)n + 1);
        len += (size_t)n;
        free(line);
    }
    return text;
}

/* Hands the outcome of a load to the caller: 0 with *out, or an error with *errors. */
static int finish(struct loader *l, xatm_config *cfg, int rc, xatm_config **out, char **errors)
{
    if (l->oom) rc = XATM_ENOMEM;
    else if (rc == 0 && l->n_errs > 0) rc = XATM_ECONFIG;

    if (rc == 0) {
        *out = cfg;
    } else {
        xatm_config_free(cfg);
        if (errors && rc != XATM_ENOMEM) *errors = format_errors(l);
        if (errors && !*errors && rc != XATM_ENOMEM) rc = XATM_ENOMEM;
    }
    loader_free(l);
    return rc;
}

/* Validates YAML text; `path` is the file it came from (NULL when loaded from a string). */
static int load_text(const char *name, const char *path, const char *yaml, size_t len,
                     xatm_config **out, char **errors)
{
    struct loader l = { 0 };
    struct cnode *root = NULL;
    xatm_config *cfg = NULL;

    l.name = name;
    l.input = (const unsigned char *)(yaml ? yaml : "");
    l.input_len = yaml ? len : 0;

    cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        l.oom = true;
        return finish(&l, NULL, XATM_ENOMEM, out, errors);
    }
    cfg->format_id = DEFAULT_FORMAT_ID;
    cfg->socket_mode = DEFAULT_SOCKET_MODE;
    cfg->log_segment_size = DEFAULT_SEGMENT_SIZE;
    cfg->transaction_timeout_ms = DEFAULT_TX_TIMEOUT_MS;
    cfg->request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_MS;
    cfg->recovery_interval_ms = DEFAULT_RECOVERY_INTERVAL_MS;
    cfg->default_protocol = XATM_PROTOCOL_2PC;
    cfg->precommit_timeout_ms = DEFAULT_PRECOMMIT_TIMEOUT_MS;
    cfg->participant_timeout_ms = DEFAULT_PARTICIPANT_TIMEOUT_MS;
    cfg->participant_timeout_action = XATM_PARTICIPANT_COMMIT;
    cfg->decision_retention_ms = DEFAULT_DECISION_RETENTION_MS;
    cfg->path = xstrndup(&l, path ? path : name, strlen(path ? path : name));

    if (!build_tree(&l, &root)) return finish(&l, cfg, XATM_ECONFIG, out, errors);
    if (!root) {
        report_at(&l, 1, 1, "no YAML document (the file is empty or holds only comments); "
                            "expected a mapping with the keys 'tm' and 'rms'");
        return finish(&l, cfg, XATM_ECONFIG, out, errors);
    }
    load_root(&l, root, cfg);
    return finish(&l, cfg, 0, out, errors);
}

/* ---------------------------------------------------------------------------------- */
/* Public API                                                                          */

int xatm_config_load_string(const char *name, const char *yaml, size_t len, xatm_config **out,
                            char **errors)
{
    if (errors) *errors = NULL;
    if (!out || (!yaml && len > 0)) return XATM_EINVAL;
    *out = NULL;
    return load_text(name ? name : "<string>", NULL, yaml, len, out, errors);
}

int xatm_config_load(const char *path, xatm_config **out, char **errors)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (errors) *errors = NULL;
    if (!path || !out) return XATM_EINVAL;
    *out = NULL;
    int err = read_file(path, &text, &len);
    if (err == ENOMEM) return XATM_ENOMEM;
    if (err) {
        char ebuf[128];
        if (errors &&
            asprintf(errors, "%s: cannot read the configuration file: %s; expected a readable "
                             "YAML file\n",
                     path, strerror_r(err, ebuf, sizeof ebuf)) < 0) {
            *errors = NULL;
            return XATM_ENOMEM;
        }
        return XATM_EIO;
    }
    rc = load_text(path, path, text, len, out, errors);
    explicit_bzero(text, len); /* it may hold inline passwords */
    free(text);
    return rc;
}

void xatm_config_free(xatm_config *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < cfg->n_rms; i++) {
        xatm_rm_config *rm = &cfg->rms[i];
        free(rm->name);
        free(rm->host);
        free(rm->socket);
        free(rm->user);
        free_secret(rm->password);
        free(rm->database);
    }
    free(cfg->rms);
    free(cfg->path);
    free(cfg->tm_id);
    free(cfg->socket_path);
    free(cfg->admin_socket_path);
    free(cfg->log_dir);
    free(cfg->decision_rm);
    free(cfg);
}

const xatm_rm_config *xatm_config_rm(const xatm_config *cfg, const char *name)
{
    int i = xatm_config_rm_index(cfg, name);
    return i < 0 ? NULL : &cfg->rms[i];
}

int xatm_config_rm_index(const xatm_config *cfg, const char *name)
{
    if (!cfg || !name) return -1;
    for (size_t i = 0; i < cfg->n_rms && i < (size_t)INT32_MAX; i++) {
        if (cfg->rms[i].name && !strcmp(cfg->rms[i].name, name)) return (int)i;
    }
    return -1;
}

const char *xatm_rm_type_name(enum xatm_rm_type t)
{
    switch (t) {
    case XATM_RM_POSTGRESQL:
        return "postgresql";
    case XATM_RM_MYSQL:
        return "mysql";
    }
    return "unknown";
}
