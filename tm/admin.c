/*
 * admin.c — answers admin requests (admin.h has the commands, their arguments, the forced
 * outcome's rule and order; docs/protocol.md the JSON). Owns the rendering and the forced
 * outcome: every number and string comes from the gtx table, the decision registry, the
 * recovery state and the log, through their thread-safe accessors. A JSON builder error
 * (out of memory) is sticky in struct jw and reported once at the end.
 *
 * One transaction is rendered the same way by list and show, from a struct txv that each
 * source (a live transaction, a registry decision, prepared branches nothing explains,
 * nothing at all) fills in; its "recovery" text says what recovery will do next.
 */
#include "admin.h"

#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/xid.h"
#include "gtx.h"
#include "recovery.h"
#include "server.h"
#include "xatm.h"

#define ADMIN_RECOVER_WAIT_MS 30000u     /* recover's default wait */
#define ADMIN_RECOVER_WAIT_MAX_MS 600000u /* and its ceiling */
#define ADMIN_REASON_MAX 255             /* a HEURISTIC record's why */

/* A JSON writer over an xatm_buf with a sticky error. */
typedef struct jw {
    xatm_buf *b;     /* output */
    int err;         /* first error (XATM_ENOMEM), 0 while fine */
    uint64_t now_ms; /* one clock reading for every age in the reply */
} jw;

static void jw_raw(jw *w, const char *s)
{
    if (!w->err) w->err = xatm_buf_append(w->b, s, strlen(s));
}

static void jw_fmt(jw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jw_fmt(jw *w, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        if (!w->err) w->err = XATM_EINVAL;
        return;
    }
    jw_raw(w, tmp);
}

static void jw_str(jw *w, const char *s)
{
    if (!w->err) w->err = admin_json_string(w->b, s ? s : "");
}

/* "key": */
static void jw_key(jw *w, const char *key)
{
    jw_str(w, key);
    jw_raw(w, ":");
}

int admin_json_string(xatm_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int rc = xatm_buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; !rc && *p; p++) {
        char esc[7];
        const char *out = esc;
        size_t n = 2;
        esc[0] = '\\';
        switch (*p) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[*p >> 4];
                esc[5] = hex[*p & 15];
                n = 6;
            } else {
                out = (const char *)p;
                n = 1;
            }
        }
        rc = xatm_buf_append(b, out, n);
    }
    if (!rc) rc = xatm_buf_append(b, "\"", 1);
    return rc;
}

/* ,"key": */
static void jw_ckey(jw *w, const char *key)
{
    jw_raw(w, ",");
    jw_key(w, key);
}

/* A signed millisecond difference a - b. */
static long long ms_diff(uint64_t a, uint64_t b)
{
    return a >= b ? (long long)(a - b) : -(long long)(b - a);
}

/* An error reply: code and {"error": ..., "hint": ...}. */
static void admin_error(jw *w, int32_t *code, int c, const char *error, const char *hint)
{
    *code = c;
    jw_raw(w, "{");
    jw_key(w, "error");
    jw_str(w, error);
    jw_ckey(w, "hint");
    jw_str(w, hint ? hint : "");
    jw_raw(w, "}");
}

/* ------------------------------------------------------------------ arguments */

/* The value of `key` in arg ("key=value" lines) into out; false when absent or too long
 * (*too_long says which). */
static bool arg_get(const char *arg, const char *key, char *out, size_t size, bool *too_long)
{
    size_t klen = strlen(key);
    *too_long = false;
    for (const char *p = arg; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > klen && memcmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vlen = len - klen - 1;
            if (vlen >= size) {
                *too_long = true;
                return false;
            }
            memcpy(out, p + klen + 1, vlen);
            out[vlen] = '\0';
            return true;
        }
        p = eol ? eol + 1 : NULL;
    }
    return false;
}

/* true when every line of arg is "k=v" with k in keys (NULL-terminated); else the first
 * offending line goes to bad. */
static bool arg_keys_ok(const char *arg, const char *const *keys, char *bad, size_t size)
{
    for (const char *p = arg; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        bool ok = false;
        for (const char *const *k = keys; eq && *k && !ok; k++)
            ok = strlen(*k) == (size_t)(eq - p) && memcmp(*k, p, (size_t)(eq - p)) == 0;
        if (!ok && len) {
            snprintf(bad, size, "%.*s", (int)(len > 64 ? 64 : len), p);
            return false;
        }
        p = eol ? eol + 1 : NULL;
    }
    return true;
}

/* Checks arg against keys; on a problem writes the error reply and returns false. */
static bool admin_args(jw *w, int32_t *code, const char *command, const char *arg,
                       const char *const *keys)
{
    char bad[80];
    if (arg_keys_ok(arg, keys, bad, sizeof bad)) return true;
    char msg[200];
    snprintf(msg, sizeof msg, "%s: unexpected argument \"%s\"", command, bad);
    admin_error(w, code, XATM_EINVAL, msg, "See docs/protocol.md, ADMIN.");
    return false;
}

/* The gtrid argument of show / commit / rollback, checked to be one of this TM's. */
static bool admin_gtrid_arg(struct tm_ctx *ctx, jw *w, int32_t *code, const char *command,
                            const char *arg, char *gtrid, size_t size)
{
    bool too_long;
    char msg[300];
    xatm_gtrid_parts p;
    if (!arg_get(arg, "gtrid", gtrid, size, &too_long) || !gtrid[0]) {
        snprintf(msg, sizeof msg, "%s needs a gtrid", command);
        admin_error(w, code, XATM_EINVAL, msg, "xatmctl list shows the gtrids");
        return false;
    }
    if (xatm_gtrid_parse(gtrid, &p) != 0) {
        snprintf(msg, sizeof msg, "\"%s\" is not a gtrid (expected <tm_id>.<epoch>.<seq>)",
                 gtrid);
        admin_error(w, code, XATM_EINVAL, msg, "xatmctl list shows the gtrids");
        return false;
    }
    if (strcmp(p.tm_id, ctx->cfg->tm_id) != 0) {
        snprintf(msg, sizeof msg, "gtrid %s belongs to TM \"%s\", not to this TM \"%s\"", gtrid,
                 p.tm_id, ctx->cfg->tm_id);
        admin_error(w, code, XATM_EINVAL, msg,
                    "Run xatmctl with the config file of the TM that issued it.");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ status */

static void jw_report(jw *w, const recovery_report *rep)
{
    jw_fmt(w,
           "{\"pass\":%llu,\"age_ms\":%llu,\"duration_ms\":%u,\"committed\":%u,"
           "\"rolled_back\":%u,\"already_done\":%u,\"left\":%u,\"fenced\":%u,\"resolved\":%u,"
           "\"unreachable_rms\":[",
           (unsigned long long)rep->pass, (unsigned long long)(w->now_ms - rep->ended_ms),
           rep->duration_ms, rep->committed, rep->rolled_back, rep->already_done, rep->left,
           rep->fenced, rep->resolved);
    const char *p = rep->unreachable_rms;
    bool first = true;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char name[XATM_RM_NAME_MAX + 1];
        snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), p);
        if (!first) jw_raw(w, ",");
        jw_str(w, name);
        first = false;
        p += n;
        if (*p == ',') p++;
    }
    jw_raw(w, "]}");
}

/* Counts the prepared branches no live transaction or decision explains. */
typedef struct admin_unexplained {
    struct tm_ctx *ctx; /* for the lookups */
    size_t n;           /* branches counted */
} admin_unexplained;

static bool admin_explained(struct tm_ctx *ctx, const char *gtrid)
{
    gtx_info g;
    tm_decision_info e;
    if (ctx->gtx && gtx_lookup(ctx->gtx, gtrid, &g) == 0) return true;
    memset(&e, 0, sizeof e);
    tm_decisions_get(ctx->decisions, gtrid, &e);
    return e.gtrid[0] != '\0';
}

static void admin_count_unexplained(const char *gtrid, const char *rm, void *arg)
{
    (void)rm;
    admin_unexplained *u = arg;
    if (!admin_explained(u->ctx, gtrid)) u->n++;
}

static void admin_status(struct tm_ctx *ctx, jw *w)
{
    const xatm_config *cfg = ctx->cfg;
    uint64_t bytes = 0;
    unsigned segments = 0;
    pthread_mutex_lock(&ctx->log_mu);
    if (ctx->log) {
        bytes = xatm_declog_disk_bytes(ctx->log);
        segments = xatm_declog_segments(ctx->log);
    }
    pthread_mutex_unlock(&ctx->log_mu);

    jw_raw(w, "{");
    jw_key(w, "tm_id");
    jw_str(w, cfg->tm_id);
    jw_fmt(w, ",\"epoch\":%u,\"pid\":%ld,\"uptime_s\":%llu", ctx->epoch, (long)ctx->pid,
           (unsigned long long)((w->now_ms - ctx->start_mono_ms) / 1000));
    jw_raw(w, ",\"log\":{");
    jw_key(w, "dir");
    jw_str(w, cfg->log_dir);
    jw_fmt(w, ",\"bytes\":%llu,\"segments\":%u,\"segment_size\":%llu}",
           (unsigned long long)bytes, segments, (unsigned long long)cfg->log_segment_size);

    jw_raw(w, ",\"rms\":[");
    size_t n = cfg->n_rms;
    recovery_rm_status *st = calloc(n ? n : 1, sizeof *st);
    if (!st) {
        w->err = XATM_ENOMEM;
        return;
    }
    if (ctx->rec) {
        recovery_rm_statuses(ctx->rec, st, n);
    } else {
        for (size_t i = 0; i < n; i++) {
            snprintf(st[i].name, sizeof st[i].name, "%s", cfg->rms[i].name);
            st[i].type = xatm_rm_type_name(cfg->rms[i].type);
            st[i].last_scan_age_s = -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        jw_raw(w, i ? ",{" : "{");
        jw_key(w, "name");
        jw_str(w, st[i].name);
        jw_ckey(w, "type");
        jw_str(w, st[i].type);
        jw_ckey(w, "state");
        jw_str(w, st[i].quarantined ? "quarantined" : "ok");
        jw_ckey(w, "last_error");
        jw_str(w, st[i].last_error);
        if (st[i].last_scan_age_s < 0)
            jw_raw(w, ",\"last_scan_age_s\":null");
        else
            jw_fmt(w, ",\"last_scan_age_s\":%lld", (long long)st[i].last_scan_age_s);
        jw_fmt(w, ",\"retry_in_ms\":%u,\"backoff_ms\":%u,\"prepared\":",
               st[i].quarantined ? st[i].retry_in_ms : 0u, st[i].backoff_ms);
        if (st[i].prepared < 0)
            jw_raw(w, "null}");
        else
            jw_fmt(w, "%lld}", (long long)st[i].prepared);
    }
    free(st);
    jw_raw(w, "]");

    gtx_counts c;
    memset(&c, 0, sizeof c);
    if (ctx->gtx) gtx_get_counts(ctx->gtx, &c);
    size_t unresolved = 0, heur = 0, heur_open = 0, mixed = 0;
    if (ctx->decisions) {
        unresolved = tm_decisions_count(ctx->decisions);
        heur = tm_decisions_count_heuristic(ctx->decisions, &heur_open);
        mixed = tm_decisions_count_mixed(ctx->decisions);
    }
    admin_unexplained u = {ctx, 0};
    if (ctx->rec) recovery_foreach_prepared(ctx->rec, admin_count_unexplained, &u);
    jw_fmt(w,
           ",\"counts\":{\"active\":%llu,\"commit_pending\":%llu,\"committing\":%llu,"
           "\"orphaned\":%llu,\"unresolved_decisions\":%zu,\"heuristic\":%zu,"
           "\"heuristic_unfinished\":%zu,\"presumed_abort_branches\":%zu,"
           "\"held_aborts\":%llu,",
           (unsigned long long)c.active, (unsigned long long)c.commit_pending,
           (unsigned long long)c.committing, (unsigned long long)c.orphaned, unresolved, heur,
           heur_open, u.n, (unsigned long long)c.held_aborts);
    jw_fmt(w,
           "\"precommit_pending\":%llu,\"precommitted\":%llu,\"abort_pending\":%llu,"
           "\"heuristic_mixed\":%zu}",
           (unsigned long long)c.precommit_pending, (unsigned long long)c.precommitted,
           (unsigned long long)c.abort_pending, mixed);
    jw_fmt(w,
           ",\"totals\":{\"begun\":%llu,\"committed\":%llu,\"aborted\":%llu,"
           "\"timed_out\":%llu,\"fenced\":%llu}",
           (unsigned long long)c.begun, (unsigned long long)c.committed,
           (unsigned long long)c.aborted, (unsigned long long)c.timed_out,
           (unsigned long long)(ctx->rec ? recovery_fenced_total(ctx->rec) : 0));
    recovery_report rep;
    jw_fmt(w, ",\"recovery\":{\"interval_ms\":%u,\"last_pass\":",
           cfg->recovery_interval_ms ? cfg->recovery_interval_ms : 10000u);
    if (ctx->rec && recovery_last_report(ctx->rec, &rep))
        jw_report(w, &rep);
    else
        jw_raw(w, "null");
    jw_raw(w, "}}");
}

/* ------------------------------------------------------------------ one transaction */

/* One branch as rendered. */
typedef struct txv_branch {
    char rm[XATM_RM_NAME_MAX + 1]; /* RM name */
    const char *vote;              /* "yes"... or NULL (not voted / not known) */
    uint64_t session_id;           /* the AP's session, 0 unknown */
} txv_branch;

/* One transaction as list and show render it, whatever its source. */
typedef struct txv {
    const char *gtrid;             /* the transaction */
    const char *state;             /* active | commit-pending | committing |
                                      precommit-pending | precommitted | abort-pending |
                                      in-doubt | finished | aborted | unknown */
    uint8_t protocol;              /* 2 or 3 */
    bool has_since;                /* since_ms is known */
    uint64_t since_ms;             /* BEGIN, or when this TM learnt of the decision */
    const char *decision;          /* none | commit | precommit | abort | heuristic-... */
    bool heuristic_mixed;          /* (3PC) a branch committed, another rolled back/lost */
    const char *mixed;             /* heuristic_mixed: which committed, which did not */
    bool orphaned;                 /* no application owns it any more (xatmd took it over,
                                      or its AP disconnected) */
    bool from_log;                 /* a decision replayed from the log */
    uint32_t ap_pid;               /* its AP's pid, 0 unknown */
    uint32_t timeout_ms;           /* its timeout, 0 unknown */
    bool has_deadline;             /* deadline_ms is known */
    uint64_t deadline_ms;          /* its (phase-2) deadline, monotonic ms */
    const char *abort_cause;       /* why it was aborted (gtx's memory), NULL */
    const tm_heuristic *heur;      /* its forced outcomes, oldest first */
    unsigned n_heur;               /* entries in heur */
    unsigned n_br;                 /* entries in br */
    txv_branch br[XATM_MAX_BRANCHES]; /* its branches */
    char next[512];                /* what recovery does next */
} txv;

static void txv_add_branch(txv *v, const char *rm, const char *vote, uint64_t session_id)
{
    for (unsigned i = 0; i < v->n_br; i++) {
        if (strcmp(v->br[i].rm, rm) != 0) continue;
        if (!v->br[i].session_id) v->br[i].session_id = session_id;
        if (!v->br[i].vote) v->br[i].vote = vote;
        return;
    }
    if (v->n_br >= XATM_MAX_BRANCHES) return;
    txv_branch *b = &v->br[v->n_br++];
    snprintf(b->rm, sizeof b->rm, "%s", rm);
    b->vote = vote;
    b->session_id = session_id;
}

static const char *admin_vote_name(uint8_t v)
{
    switch (v) {
    case XATM_VOTE_YES:
        return "yes";
    case XATM_VOTE_NO:
        return "no";
    case XATM_VOTE_READONLY:
        return "readonly";
    }
    return NULL;
}

static enum recovery_branch_state txv_state(struct tm_ctx *ctx, const txv *v, unsigned i)
{
    return ctx->rec ? recovery_branch_state(ctx->rec, v->gtrid, v->br[i].rm)
                    : REC_BRANCH_UNKNOWN_UNSCANNED;
}

/* Appends to v->next. */
static void txv_next(txv *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void txv_next(txv *v, const char *fmt, ...)
{
    size_t n = strlen(v->next);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->next + n, sizeof v->next - n, fmt, ap);
    va_end(ap);
}

/* "commit every prepared branch" / "roll back ...", plus what it is waiting for. */
static void txv_finish_text(struct tm_ctx *ctx, txv *v, bool commit, const char *because)
{
    unsigned prepared = 0, unknown = 0;
    for (unsigned i = 0; i < v->n_br; i++) {
        enum recovery_branch_state s = txv_state(ctx, v, i);
        if (s == REC_BRANCH_PREPARED) prepared++;
        if (s == REC_BRANCH_UNKNOWN_UNREACHABLE || s == REC_BRANCH_UNKNOWN_UNSCANNED) unknown++;
    }
    if (prepared || unknown)
        txv_next(v, "%s every prepared branch (%s)", commit ? "commit" : "roll back", because);
    else
        txv_next(v, "nothing left to %s (%s): no branch is prepared; the decision is closed "
                    "(END) after two clean scans of each RM",
                 commit ? "commit" : "roll back", because);
    for (unsigned i = 0; i < v->n_br; i++) {
        enum recovery_branch_state s = txv_state(ctx, v, i);
        if (s == REC_BRANCH_UNKNOWN_UNREACHABLE)
            txv_next(v, "; branch %s waits for RM %s to be reachable", v->br[i].rm, v->br[i].rm);
        recovery_wait wt;
        if (s == REC_BRANCH_PREPARED && ctx->rec &&
            recovery_branch_wait(ctx->rec, v->gtrid, v->br[i].rm, &wt)) {
            unsigned long long sid = (unsigned long long)xatm_session_ref_id(wt.session_id);
            if (wt.owner_unknown)
                txv_next(v, "; branch %s: the session that prepared it is unknown, so it is "
                            "tried only once it has settled (XAER_NOTA then means a session "
                            "still holds it)",
                         v->br[i].rm);
            else if (wt.fenced)
                txv_next(v, "; branch %s: AP session %llu was fenced, finished at the next pass",
                         v->br[i].rm, sid);
            else if (wt.fence_at_ms)
                txv_next(v, "; branch %s waits for AP session %llu to end (fenced at the "
                            "transaction's deadline)",
                         v->br[i].rm, sid);
            else
                txv_next(v, "; branch %s waits for AP session %llu to end", v->br[i].rm, sid);
        }
    }
}

static void jw_txv(jw *w, struct tm_ctx *ctx, const txv *v)
{
    jw_raw(w, "{");
    jw_key(w, "gtrid");
    jw_str(w, v->gtrid);
    jw_ckey(w, "state");
    jw_str(w, v->state);
    jw_fmt(w, ",\"protocol\":%u", v->protocol ? v->protocol : 2u);
    if (v->has_since)
        jw_fmt(w, ",\"age_ms\":%llu",
               (unsigned long long)(w->now_ms > v->since_ms ? w->now_ms - v->since_ms : 0));
    else
        jw_raw(w, ",\"age_ms\":null");
    jw_ckey(w, "decision");
    jw_str(w, v->decision);
    jw_fmt(w, ",\"orphaned\":%s,\"from_log\":%s,\"heuristic_mixed\":%s",
           v->orphaned ? "true" : "false", v->from_log ? "true" : "false",
           v->heuristic_mixed ? "true" : "false");
    jw_ckey(w, "mixed");
    if (v->heuristic_mixed)
        jw_str(w, v->mixed);
    else
        jw_raw(w, "null");
    if (v->ap_pid)
        jw_fmt(w, ",\"ap_pid\":%u", v->ap_pid);
    else
        jw_raw(w, ",\"ap_pid\":null");
    if (v->timeout_ms)
        jw_fmt(w, ",\"timeout_ms\":%u", v->timeout_ms);
    else
        jw_raw(w, ",\"timeout_ms\":null");
    if (v->has_deadline)
        jw_fmt(w, ",\"deadline_in_ms\":%lld", ms_diff(v->deadline_ms, w->now_ms));
    else
        jw_raw(w, ",\"deadline_in_ms\":null");
    jw_ckey(w, "abort_cause");
    if (v->abort_cause)
        jw_str(w, v->abort_cause);
    else
        jw_raw(w, "null");
    jw_raw(w, ",\"heuristics\":[");
    for (unsigned i = 0; i < v->n_heur; i++) {
        jw_raw(w, i ? ",{" : "{");
        jw_key(w, "outcome");
        jw_str(w, v->heur[i].outcome == XATM_OUTCOME_COMMIT ? "commit" : "rollback");
        jw_ckey(w, "who");
        jw_str(w, v->heur[i].who);
        jw_ckey(w, "why");
        jw_str(w, v->heur[i].why);
        jw_fmt(w, ",\"durable\":%s}", v->heur[i].durable ? "true" : "false");
    }
    jw_raw(w, "],\"branches\":[");
    for (unsigned i = 0; i < v->n_br; i++) {
        const txv_branch *b = &v->br[i];
        jw_raw(w, i ? ",{" : "{");
        jw_key(w, "rm");
        jw_str(w, b->rm);
        jw_raw(w, ",\"vote\":");
        if (b->vote)
            jw_str(w, b->vote);
        else
            jw_raw(w, "null");
        jw_fmt(w, ",\"session_id\":%llu", (unsigned long long)xatm_session_ref_id(b->session_id));
        jw_ckey(w, "rm_state");
        jw_str(w, recovery_branch_state_name(txv_state(ctx, v, i)));
        recovery_wait wt;
        if (ctx->rec && recovery_branch_wait(ctx->rec, v->gtrid, b->rm, &wt)) {
            jw_fmt(w, ",\"waiting\":{\"session_id\":%llu,\"fenced\":%s,\"fence_in_ms\":",
                   (unsigned long long)xatm_session_ref_id(wt.session_id),
                   wt.fenced ? "true" : "false");
            if (wt.fence_at_ms && !wt.fenced)
                jw_fmt(w, "%lld", ms_diff(wt.fence_at_ms, w->now_ms));
            else
                jw_raw(w, "null");
            jw_fmt(w, ",\"owner_unknown\":%s,\"settle_in_ms\":",
                   wt.owner_unknown ? "true" : "false");
            if (wt.owner_unknown)
                jw_fmt(w, "%lld}}", ms_diff(wt.settle_at_ms, w->now_ms));
            else
                jw_raw(w, "null}}");
        } else {
            jw_raw(w, ",\"waiting\":null}");
        }
    }
    jw_raw(w, "]");
    jw_ckey(w, "recovery");
    jw_str(w, v->next);
    jw_raw(w, "}");
}

/* A live transaction of the gtx table. */
static void txv_from_gtx(struct tm_ctx *ctx, const gtx_info *g, uint64_t now, txv *v)
{
    memset(v, 0, sizeof *v);
    v->gtrid = g->gtrid;
    v->state = gtx_state_name(g->state);
    v->protocol = g->protocol;
    v->has_since = true;
    v->since_ms = g->begin_ms;
    switch (g->state) {
    case GTX_ACTIVE:
        v->decision = "none";
        break;
    case GTX_PRECOMMIT_PENDING:
    case GTX_PRECOMMITTED:
        v->decision = "precommit";
        break;
    case GTX_ABORT_PENDING:
        v->decision = "abort";
        break;
    case GTX_COMMIT_PENDING:
    case GTX_COMMITTING:
        v->decision = "commit";
        break;
    }
    v->orphaned = g->state != GTX_ACTIVE && g->owner == 0;
    v->ap_pid = g->ap_pid;
    v->timeout_ms = g->timeout_ms;
    v->has_deadline = true;
    v->deadline_ms = g->deadline_ms;
    for (unsigned i = 0; i < g->n_branches; i++)
        txv_add_branch(v, g->branches[i].rm, admin_vote_name(g->branches[i].vote),
                       g->branches[i].session_id);
    switch (g->state) {
    case GTX_ACTIVE:
        if (now < g->deadline_ms)
            txv_next(v, "none yet: its application is working it; xatmd aborts it if it has "
                        "not voted within %lld ms",
                     ms_diff(g->deadline_ms, now));
        else
            txv_next(v, "abort it (timed out) and roll back every prepared branch");
        break;
    case GTX_COMMIT_PENDING:
        txv_next(v, "none: its COMMIT record is being made durable; its application then "
                    "commits the branches");
        break;
    case GTX_PRECOMMIT_PENDING:
        txv_next(v, "none: its PRECOMMIT record is being made durable (3PC); its application "
                    "then prepares the branches");
        break;
    case GTX_PRECOMMITTED:
        if (g->owner == 0)
            txv_next(v, "its application is gone after PreCommit: recovery takes it over and "
                        "applies the termination rule");
        else if (now < g->ack_deadline_ms)
            txv_next(v, "none yet: its application is preparing the branches (3PC PreCommit); "
                        "xatmd aborts it (ABORT record forced) unless they are acknowledged "
                        "within %lld ms",
                     ms_diff(g->ack_deadline_ms, now));
        else
            txv_next(v, "abort it (PreCommit not acknowledged in time): ABORT record forced, "
                        "then roll back every prepared branch");
        break;
    case GTX_ABORT_PENDING:
        txv_next(v, "none: its ABORT record is being made durable (3PC, %s); then every "
                    "prepared branch is rolled back",
                 g->abort_reason);
        break;
    case GTX_COMMITTING:
        if (g->owner != 0 && now < g->deadline_ms)
            txv_next(v, "none yet: its application is committing the branches; recovery "
                        "commits what is still prepared after %lld ms",
                     ms_diff(g->deadline_ms, now));
        else
            txv_finish_text(ctx, v, true, g->owner ? "its application is late" : "its "
                                                                              "application is gone");
        break;
    }
}

/* The termination rule's next step for a PRECOMMIT decision (recovery.h, tm_term_step). */
static void txv_term_text(struct tm_ctx *ctx, const tm_decision_info *e, txv *v)
{
    uint64_t now = tm_now_ms();
    uint64_t deadline = e->deadline_ms;
    if (!deadline) {
        uint32_t t = ctx->cfg->transaction_timeout_ms ? ctx->cfg->transaction_timeout_ms : 60000;
        deadline = e->since_ms + t;
    }
    txv_next(v, "termination rule (3PC PRECOMMIT without an outcome): ");
    if (now < deadline || e->term == TM_TERM_NONE || e->term == TM_TERM_WAIT_DEADLINE)
        txv_next(v, "waits for its deadline (%s %lld ms), then for its AP's MariaDB sessions "
                    "to end (fenced), then for two scans of every RM it names",
                 now < deadline ? "in" : "passed", now < deadline ? ms_diff(deadline, now)
                                                                  : ms_diff(now, deadline));
    else if (e->term == TM_TERM_WAIT_SESSIONS)
        txv_next(v, "waits for its AP's MariaDB sessions to end (fenced: its deadline passed)");
    else if (e->term == TM_TERM_WAIT_SCANS)
        txv_next(v, "waits for two consecutive scans of every RM it names, begun after its "
                    "sessions ended");
    else
        txv_next(v, "waits until its marker rows can be read on every RM it names (an RM is "
                    "unreachable or the lookup failed)");
    txv_next(v, "; then commits (COMMIT forced) if every branch is prepared or has a "
                "committed marker row, else aborts (ABORT forced)");
}

/* A registry decision. */
static void txv_from_decision(struct tm_ctx *ctx, const tm_decision_info *e, txv *v)
{
    memset(v, 0, sizeof *v);
    v->gtrid = e->gtrid;
    v->state = e->finished ? "finished" : "in-doubt";
    v->protocol = e->protocol;
    v->has_since = true;
    v->since_ms = e->since_ms;
    v->decision = tm_decision_kind_name(e->kind);
    v->orphaned = true;
    v->from_log = e->from_log;
    v->ap_pid = e->ap_pid;
    v->heur = e->heur;
    v->n_heur = e->n_heur;
    if (e->deadline_ms) {
        v->has_deadline = true;
        v->deadline_ms = e->deadline_ms;
    }
    v->heuristic_mixed = e->heuristic_mixed;
    v->mixed = e->mixed;
    for (unsigned i = 0; i < e->n_branches; i++)
        txv_add_branch(v, e->branches[i].rm, e->has_commit ? "yes" : NULL,
                       e->branches[i].session_id);
    if (e->finished) {
        txv_next(v, "nothing: every branch is finished; the heuristic decision stays on record");
        return;
    }
    if (e->heuristic_mixed && e->n_heur == 0) {
        bool any = false;
        for (unsigned i = 0; i < v->n_br; i++) any |= txv_state(ctx, v, i) == REC_BRANCH_PREPARED;
        if (any) {
            txv_finish_text(ctx, v, e->kind == TM_DEC_COMMIT, "3PC decision");
            txv_next(v, "; ");
        }
        txv_next(v, "heuristic mixed outcome (%s): it stays listed until an operator records "
                    "its outcome (xatmctl commit|rollback GTRID --reason TEXT)",
                 e->mixed);
        return;
    }
    switch (e->kind) {
    case TM_DEC_HEUR_COMMIT:
        txv_finish_text(ctx, v, true, "heuristic decision");
        break;
    case TM_DEC_HEUR_ROLLBACK:
        txv_finish_text(ctx, v, false, "heuristic decision");
        break;
    case TM_DEC_COMMIT:
        txv_finish_text(ctx, v, true, "commit decision in the log");
        break;
    case TM_DEC_ABORT:
        txv_finish_text(ctx, v, false, "3PC abort decision (ABORT record)");
        if (e->protocol == XATM_PROTOCOL_3PC)
            txv_next(v, "; once no branch is prepared its marker rows are checked (a "
                        "committed one is a heuristic mixed outcome)");
        break;
    case TM_DEC_PRECOMMIT:
        txv_term_text(ctx, e, v);
        break;
    case TM_DEC_NONE:
        txv_next(v, "none yet: its forced outcome is being made durable");
        break;
    }
}

/* Prepared branches that nothing explains (presumed abort), or nothing at all. branches
 * holds the RMs whose scans list it (n of them). */
static void txv_from_scans(struct tm_ctx *ctx, const char *gtrid, const char *const *rms,
                           size_t n, txv *v)
{
    memset(v, 0, sizeof *v);
    v->gtrid = gtrid;
    v->state = n ? "in-doubt" : "unknown";
    v->protocol = XATM_PROTOCOL_2PC;
    v->decision = "none";
    for (size_t i = 0; i < n; i++) txv_add_branch(v, rms[i], NULL, 0);
    gtx_abort_info a;
    if (ctx->gtx && gtx_recent_abort(ctx->gtx, gtrid, &a) == 0) {
        if (!n) v->state = "aborted";
        v->orphaned = a.cause == GTX_ABORT_DISCONNECT;
        v->abort_cause = gtx_abort_cause_name(a.cause);
        v->ap_pid = a.ap_pid;
        v->timeout_ms = a.timeout_ms;
        v->has_deadline = true;
        v->deadline_ms = a.deadline_ms;
        for (unsigned i = 0; i < a.n_branches; i++)
            txv_add_branch(v, a.branches[i].rm, NULL, a.branches[i].session_id);
    }
    /* nothing found: show every RM; else add the unreachable ones, which may hold one too */
    for (size_t i = 0; i < ctx->cfg->n_rms; i++) {
        const char *rm = ctx->cfg->rms[i].name;
        enum recovery_branch_state s = ctx->rec ? recovery_branch_state(ctx->rec, gtrid, rm)
                                                : REC_BRANCH_UNKNOWN_UNSCANNED;
        if (n == 0 || s == REC_BRANCH_UNKNOWN_UNREACHABLE) txv_add_branch(v, rm, NULL, 0);
    }
    if (n)
        txv_finish_text(ctx, v, false, "presumed abort: no COMMIT record and not live");
    else
        txv_next(v, "nothing: not live, no decision, no branch prepared on a reachable RM "
                    "(finished, or aborted: presumed abort)");
}

/* ------------------------------------------------------------------ list */

/* One prepared branch from the scans. */
typedef struct admin_prep {
    char gtrid[XATM_GTRID_MAX + 1]; /* its transaction */
    char rm[XATM_RM_NAME_MAX + 1];  /* its RM */
} admin_prep;

/* The prepared branches of the latest scans, collected (recovery_foreach_prepared). */
typedef struct admin_preps {
    admin_prep *v;  /* entries */
    size_t n, cap;  /* used / allocated */
    bool oom;       /* one was lost */
} admin_preps;

static void admin_collect_prep(const char *gtrid, const char *rm, void *arg)
{
    admin_preps *p = arg;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 32;
        admin_prep *x = realloc(p->v, cap * sizeof *x);
        if (!x) {
            p->oom = true;
            return;
        }
        p->v = x;
        p->cap = cap;
    }
    snprintf(p->v[p->n].gtrid, sizeof p->v[p->n].gtrid, "%s", gtrid);
    snprintf(p->v[p->n].rm, sizeof p->v[p->n].rm, "%s", rm);
    p->n++;
}

static int admin_prep_cmp(const void *a, const void *b)
{
    const admin_prep *x = a, *y = b;
    int c = strcmp(x->gtrid, y->gtrid);
    return c ? c : strcmp(x->rm, y->rm);
}

/* Carries the writer and the separator state through the foreach callbacks. */
typedef struct admin_lister {
    struct tm_ctx *ctx; /* for the lookups */
    jw *w;              /* output */
    bool first;         /* no transaction written yet */
    bool all;           /* also finished heuristic decisions */
    size_t hidden;      /* finished heuristic decisions not shown */
} admin_lister;

static void admin_list_sep(admin_lister *l)
{
    if (!l->first) jw_raw(l->w, ",");
    l->first = false;
}

static void admin_list_gtx(const gtx_info *g, void *arg)
{
    admin_lister *l = arg;
    txv v;
    txv_from_gtx(l->ctx, g, l->w->now_ms, &v);
    admin_list_sep(l);
    jw_txv(l->w, l->ctx, &v);
}

static void admin_list_decision(const tm_decision_info *e, void *arg)
{
    admin_lister *l = arg;
    if (e->finished && !l->all) {
        l->hidden++;
        return;
    }
    txv v;
    txv_from_decision(l->ctx, e, &v);
    admin_list_sep(l);
    jw_txv(l->w, l->ctx, &v);
}

/* Renders the gtrids of the scans that nothing else explains. */
static void admin_list_unexplained(admin_lister *l)
{
    struct tm_ctx *ctx = l->ctx;
    admin_preps p = {0};
    if (!ctx->rec || recovery_foreach_prepared(ctx->rec, admin_collect_prep, &p) != 0 || p.oom) {
        if (ctx->rec) l->w->err = XATM_ENOMEM;
        free(p.v);
        return;
    }
    if (p.n) qsort(p.v, p.n, sizeof *p.v, admin_prep_cmp);
    for (size_t k = 0; k < p.n;) {
        size_t end = k + 1;
        while (end < p.n && strcmp(p.v[end].gtrid, p.v[k].gtrid) == 0) end++;
        if (!admin_explained(ctx, p.v[k].gtrid)) {
            const char *rms[XATM_MAX_BRANCHES];
            size_t n = 0;
            for (size_t j = k; j < end && n < XATM_MAX_BRANCHES; j++)
                if (!n || strcmp(rms[n - 1], p.v[j].rm) != 0) rms[n++] = p.v[j].rm;
            txv v;
            txv_from_scans(ctx, p.v[k].gtrid, rms, n, &v);
            admin_list_sep(l);
            jw_txv(l->w, ctx, &v);
        }
        k = end;
    }
    free(p.v);
}

static void admin_list(struct tm_ctx *ctx, jw *w, bool all)
{
    admin_lister l = {ctx, w, true, all, 0};
    jw_raw(w, "{\"transactions\":[");
    if (ctx->gtx) gtx_foreach(ctx->gtx, admin_list_gtx, &l);
    if (ctx->decisions) tm_decisions_foreach(ctx->decisions, admin_list_decision, &l);
    admin_list_unexplained(&l);
    jw_fmt(w, "],\"finished_heuristics_hidden\":%zu}", l.hidden);
}

/* ------------------------------------------------------------------ show */

static void admin_show(struct tm_ctx *ctx, jw *w, const char *gtrid)
{
    txv v;
    gtx_info g;
    tm_decision_info e;
    memset(&e, 0, sizeof e);
    bool live = ctx->gtx && gtx_lookup(ctx->gtx, gtrid, &g) == 0;
    tm_decisions_get(ctx->decisions, gtrid, &e);
    jw_raw(w, "{\"transaction\":");
    if (live) {
        txv_from_gtx(ctx, &g, w->now_ms, &v);
        /* a forced outcome recorded while it is still in the table (adopted later) */
        if (e.gtrid[0] && e.n_heur) {
            v.heur = e.heur;
            v.n_heur = e.n_heur;
            v.decision = tm_decision_kind_name(e.kind);
            v.next[0] = '\0';
            txv_finish_text(ctx, &v, e.kind == TM_DEC_HEUR_COMMIT, "heuristic decision");
        }
        jw_txv(w, ctx, &v);
    } else if (e.gtrid[0]) {
        txv_from_decision(ctx, &e, &v);
        jw_txv(w, ctx, &v);
    } else {
        admin_preps p = {0};
        if (ctx->rec && (recovery_foreach_prepared(ctx->rec, admin_collect_prep, &p) != 0 ||
                         p.oom)) {
            w->err = XATM_ENOMEM;
            free(p.v);
            return;
        }
        const char *rms[XATM_MAX_BRANCHES];
        size_t n = 0;
        for (size_t k = 0; k < p.n && n < XATM_MAX_BRANCHES; k++)
            if (strcmp(p.v[k].gtrid, gtrid) == 0) rms[n++] = p.v[k].rm;
        txv_from_scans(ctx, gtrid, rms, n, &v);
        jw_txv(w, ctx, &v);
        free(p.v);
    }
    jw_raw(w, "}");
}

/* ------------------------------------------------------------------ recover */

int admin_recover_reply(struct tm_ctx *ctx, uint64_t ticket, uint32_t waited_ms, xatm_buf *json,
                        int32_t *code)
{
    jw w = {json, 0, tm_now_ms()};
    recovery_report rep;
    *code = 0;
    if (!ctx->rec || !recovery_report_for(ctx->rec, ticket, &rep)) {
        char msg[160];
        snprintf(msg, sizeof msg, "the recovery pass did not finish within %u ms", waited_ms);
        admin_error(&w, code, XATM_ETIMEDOUT, msg,
                    "A slow RM delays a pass by up to its connect_timeout; xatmctl status and "
                    "xatmd's log show which. The pass still runs: ask again, or wait for it.");
        return w.err ? XATM_ENOMEM : 0;
    }
    jw_raw(&w, "{\"report\":");
    jw_report(&w, &rep);
    jw_fmt(&w, ",\"waited_ms\":%u,\"unresolved_decisions\":%zu}", waited_ms,
           tm_decisions_count(ctx->decisions));
    return w.err ? XATM_ENOMEM : 0;
}

static int admin_recover(struct tm_ctx *ctx, jw *w, int32_t *code, const char *arg,
                         admin_deferred *defer)
{
    static const char *const keys[] = {"timeout_ms", NULL};
    if (!admin_args(w, code, "recover", arg, keys)) return 0;
    char buf[32];
    bool too_long;
    uint32_t wait = ADMIN_RECOVER_WAIT_MS;
    if (arg_get(arg, "timeout_ms", buf, sizeof buf, &too_long)) {
        char *end;
        unsigned long v = strtoul(buf, &end, 10);
        if (*end || !buf[0] || v == 0 || v > ADMIN_RECOVER_WAIT_MAX_MS) {
            admin_error(w, code, XATM_EINVAL, "recover: timeout_ms must be 1..600000", NULL);
            return 0;
        }
        wait = (uint32_t)v;
    }
    if (!ctx->rec) {
        admin_error(w, code, XATM_ESTATE, "recovery is not running", NULL);
        return 0;
    }
    defer->ticket = recovery_request_pass(ctx->rec);
    defer->wait_ms = wait;
    return ADMIN_DEFERRED;
}

/* ------------------------------------------------------------------ forced outcome */

/* "<user> (uid U), pid P" of the peer. */
static void admin_who(const admin_peer *peer, char *who, size_t size)
{
    if (!peer || !peer->known) {
        snprintf(who, size, "unknown peer");
        return;
    }
    struct passwd pw, *res = NULL;
    char buf[1024];
    if (getpwuid_r(peer->uid, &pw, buf, sizeof buf, &res) == 0 && res)
        snprintf(who, size, "%.32s (uid %u), pid %ld", res->pw_name, (unsigned)peer->uid,
                 (long)peer->pid);
    else
        snprintf(who, size, "uid %u, pid %ld", (unsigned)peer->uid, (long)peer->pid);
}

/* true when every RM's latest scan is valid and lists no branch of gtrid. */
static bool admin_nothing_prepared(struct tm_ctx *ctx, const char *gtrid)
{
    if (!ctx->rec) return false;
    for (size_t i = 0; i < ctx->cfg->n_rms; i++)
        if (recovery_branch_state(ctx->rec, gtrid, ctx->cfg->rms[i].name) !=
            REC_BRANCH_NOT_PREPARED)
            return false;
    return true;
}

/* What a gtrid's durable decision is, for the forced outcome's check. */
enum admin_effective { EFF_ABORT, EFF_COMMIT, EFF_NONE };

static void admin_force(struct tm_ctx *ctx, const admin_peer *peer, uint8_t outcome,
                        const char *command, const char *arg, jw *w, int32_t *code)
{
    static const char *const keys[] = {"gtrid", "force", "reason", NULL};
    char gtrid[XATM_GTRID_MAX + 1], forcebuf[8] = "", why[ADMIN_REASON_MAX + 1] = "";
    char who[64], msg[700], hint[400];
    bool too_long;
    if (!admin_args(w, code, command, arg, keys)) return;
    if (!admin_gtrid_arg(ctx, w, code, command, arg, gtrid, sizeof gtrid)) return;
    if (!arg_get(arg, "reason", why, sizeof why, &too_long) && too_long) {
        admin_error(w, code, XATM_EINVAL, "the reason is longer than 255 bytes", NULL);
        return;
    }
    arg_get(arg, "force", forcebuf, sizeof forcebuf, &too_long);
    bool force = strcmp(forcebuf, "1") == 0;
    if (!why[0]) snprintf(why, sizeof why, "(no reason given)");
    admin_who(peer, who, sizeof who);
    const bool commit = outcome == XATM_OUTCOME_COMMIT;
    const char *verb = commit ? "commit" : "rollback";
    uint64_t now = tm_now_ms();
    tm_force_origin origin;
    memset(&origin, 0, sizeof origin);

    pthread_mutex_lock(&ctx->log_mu);
    gtx_info g;
    bool committing = false;
    if (ctx->gtx && gtx_lookup(ctx->gtx, gtrid, &g) == 0) {
        bool live = (g.state == GTX_ACTIVE && now < g.deadline_ms) ||
                    g.state == GTX_COMMIT_PENDING || g.state == GTX_PRECOMMIT_PENDING ||
                    g.state == GTX_PRECOMMITTED || g.state == GTX_ABORT_PENDING ||
                    (g.state == GTX_COMMITTING && g.owner != 0 && now < g.deadline_ms);
        if (live) {
            pthread_mutex_unlock(&ctx->log_mu);
            snprintf(msg, sizeof msg,
                     "%s of %s refused: the transaction is live (%s, its application %s; its "
                     "deadline is in %lld ms)",
                     verb, gtrid, gtx_state_name(g.state),
                     g.state == GTX_COMMITTING ? "is committing its branches"
                     : g.state == GTX_PRECOMMITTED && g.owner == 0
                         ? "is gone: recovery takes it over at its next pass"
                         : "is working it",
                     ms_diff(g.state == GTX_PRECOMMITTED ? g.ack_deadline_ms : g.deadline_ms,
                             now));
            admin_error(w, code, XATM_EREFUSED, msg,
                        "Wait for it to finish or to pass its deadline (xatmctl show GTRID), "
                        "then look again: xatmd finishes it by itself in either case.");
            return;
        }
        if (g.state == GTX_ACTIVE) {
            /* past its deadline: abort it now, so its VOTE can never commit it */
            gtx_recovery_verdict(ctx->gtx, gtrid, now, NULL);
        } else {
            committing = true; /* COMMITTING, its AP gone or late */
            xatm_declog_record cr;
            gtx_commit_record(&g, &cr);
            origin.exact = true;
            origin.n_branches = cr.n_branches;
            memcpy(origin.branches, cr.branches, sizeof cr.branches);
            origin.ap_pid = g.ap_pid;
            origin.deadline_ms = g.deadline_ms;
        }
    }
    tm_decision_info e;
    memset(&e, 0, sizeof e);
    tm_decisions_get(ctx->decisions, gtrid, &e);
    if (!committing && !e.gtrid[0] && ctx->gtx) {
        gtx_abort_info a;
        if (gtx_recent_abort(ctx->gtx, gtrid, &a) == 0) {
            origin.n_branches = a.n_branches;
            for (unsigned i = 0; i < a.n_branches; i++) {
                snprintf(origin.branches[i].rm, sizeof origin.branches[i].rm, "%s",
                         a.branches[i].rm);
                origin.branches[i].session_id = a.branches[i].session_id;
            }
            origin.ap_pid = a.ap_pid;
            origin.deadline_ms = a.deadline_ms;
        }
    }

    /* the durable decision it would contradict */
    enum admin_effective eff = EFF_ABORT;
    const tm_heuristic *last = NULL;
    for (unsigned k = e.n_heur; k-- > 0 && !last;)
        if (e.heur[k].durable) last = &e.heur[k];
    char what[300];
    bool at_decider = false; /* the outcome is the decider's row, unread (tm.decision_rm) */
    if (last) {
        eff = last->outcome == XATM_OUTCOME_COMMIT ? EFF_COMMIT : EFF_ABORT;
        snprintf(what, sizeof what, "the heuristic %s forced by %s",
                 eff == EFF_COMMIT ? "commit" : "rollback", last->who);
    } else if (committing || e.has_commit) {
        eff = EFF_COMMIT;
        snprintf(what, sizeof what, "xatmd's COMMIT decision (a COMMIT record is in the "
                                    "decision log; some branches may already be committed)");
    } else if (e.has_abort) {
        snprintf(what, sizeof what, "xatmd's 3PC abort decision (an ABORT record is in the "
                                    "decision log; some branches may already be rolled back)");
    } else if (e.has_precommit) {
        eff = EFF_NONE;
        snprintf(what, sizeof what, "nothing (a 3PC PRECOMMIT without COMMIT)");
    } else if (ctx->cfg->decision_rm) {
        /* with tm.decision_rm, a gtrid without a decision in the log may have been decided
         * at the decider (its commit row): xatmd cannot say which without reading that row,
         * and recovery reads it at every pass, so this is a question for the operator */
        eff = EFF_NONE;
        at_decider = true;
        snprintf(what, sizeof what,
                 "the decision at decider RM %s (tm.decision_rm), which recovery has not been "
                 "able to read (a commit row there means the decider branch committed)",
                 ctx->cfg->decision_rm);
    } else {
        snprintf(what, sizeof what,
                 "xatmd's abort: a gtrid of this TM with no COMMIT record that is not live is "
                 "presumed aborted (some branches may already be rolled back)");
    }
    /* forced over the decider's unread row: it may contradict it (docs/operations.md) */
    const bool over_decider = at_decider && !admin_nothing_prepared(ctx, gtrid);
    if (over_decider && !force) {
        pthread_mutex_unlock(&ctx->log_mu);
        snprintf(msg, sizeof msg,
                 "%s of %s refused: its outcome is decided at decider RM %s (tm.decision_rm), "
                 "not in xatmd's log, and recovery has not resolved it there yet",
                 verb, gtrid, ctx->cfg->decision_rm);
        snprintf(hint, sizeof hint,
                 "Recovery resolves it by itself once the decider answers. To decide now, look "
                 "at the row on the decider: SELECT outcome FROM xatm_decisions WHERE gtrid = "
                 "'%s' ('C': only commit is consistent); then xatmctl %s %s --force --reason "
                 "TEXT",
                 gtrid, verb, gtrid);
        admin_error(w, code, XATM_EREFUSED, msg, hint);
        return;
    }
    if (last && (last->outcome == outcome)) {
        pthread_mutex_unlock(&ctx->log_mu);
        jw_raw(w, "{");
        jw_key(w, "gtrid");
        jw_str(w, gtrid);
        jw_ckey(w, "outcome");
        jw_str(w, verb);
        jw_raw(w, ",\"recorded\":false,\"overrides\":null");
        jw_ckey(w, "message");
        snprintf(msg, sizeof msg, "a heuristic %s of %s is already recorded (by %s); nothing "
                                  "changed", verb, gtrid, last->who);
        jw_str(w, msg);
        jw_raw(w, "}");
        return;
    }
    bool contradicts = eff != EFF_NONE && (eff == EFF_COMMIT) != commit;
    if (contradicts && !force) {
        pthread_mutex_unlock(&ctx->log_mu);
        snprintf(msg, sizeof msg, "%s of %s refused: it contradicts %s", verb, gtrid, what);
        snprintf(hint, sizeof hint,
                 "Forcing it makes the outcome heuristic (branches may end differently). If "
                 "that is what you want: xatmctl %s %s --force --reason TEXT",
                 verb, gtrid);
        admin_error(w, code, XATM_EREFUSED, msg, hint);
        return;
    }
    if (!committing && !e.gtrid[0] && admin_nothing_prepared(ctx, gtrid)) {
        pthread_mutex_unlock(&ctx->log_mu);
        snprintf(msg, sizeof msg,
                 "%s of %s: nothing to decide: xatmd holds no decision for it and no RM "
                 "reports a prepared branch of it (it finished, or never prepared)",
                 verb, gtrid);
        admin_error(w, code, XATM_ENOTFOUND, msg, "xatmctl show GTRID shows what is known.");
        return;
    }
    if (e.n_heur >= TM_HEUR_MAX) {
        pthread_mutex_unlock(&ctx->log_mu);
        snprintf(msg, sizeof msg, "%s of %s refused: %d forced outcomes are already recorded",
                 verb, gtrid, TM_HEUR_MAX);
        admin_error(w, code, XATM_ELIMIT, msg, NULL);
        return;
    }

    /* record it: registry (pending), append, flush; only then does it steer recovery */
    xatm_declog_record rec;
    memset(&rec, 0, sizeof rec);
    rec.type = XATM_DL_HEURISTIC;
    snprintf(rec.gtrid, sizeof rec.gtrid, "%s", gtrid);
    rec.outcome = outcome;
    snprintf(rec.who, sizeof rec.who, "%s", who);
    snprintf(rec.why, sizeof rec.why, "%s", why);
    int rc = tm_decisions_force(ctx->decisions, gtrid, outcome, who, why, &origin, now);
    if (rc != 0) {
        pthread_mutex_unlock(&ctx->log_mu);
        admin_error(w, code, rc, "cannot record the forced outcome: out of memory", NULL);
        return;
    }
    rc = xatm_declog_append(ctx->log, &rec, true);
    if (rc == 0) rc = xatm_declog_flush(ctx->log);
    if (rc != 0) {
        atomic_store(&ctx->fatal, true); /* before log_mu is released: no flush after it */
        pthread_mutex_unlock(&ctx->log_mu);
        if (ctx->srv) server_wake(ctx->srv);
        tm_log(xatm_declog_errmsg(ctx->log), "Check the disk of the log directory, then "
                                             "restart xatmd.",
               "decision log failure while recording a forced %s of %s: %s; xatmd stops",
               verb, gtrid, xatm_strerror(rc));
        admin_error(w, code, XATM_ELOG, "the HEURISTIC record could not be made durable; "
                                        "xatmd stops",
                    "No branch was touched for it. Fix the log disk, restart xatmd, and force "
                    "the outcome again.");
        return;
    }
    tm_decisions_force_durable(ctx->decisions, gtrid);
    pthread_mutex_unlock(&ctx->log_mu);

    char detail[900];
    snprintf(detail, sizeof detail, "Reason: %s. It %s %s.", why,
             contradicts ? "overrides" : over_decider ? "is forced over" : "agrees with", what);
    tm_log(detail, contradicts || over_decider ? "Branches may end differently: see "
                                                 "docs/operations.md, \"Heuristic outcomes\"."
                                               : NULL,
           "operator %s forced %s of %s (HEURISTIC record written)", who,
           commit ? "a commit" : "a rollback", gtrid);
    if (ctx->rec) recovery_wake(ctx->rec);

    jw_raw(w, "{");
    jw_key(w, "gtrid");
    jw_str(w, gtrid);
    jw_ckey(w, "outcome");
    jw_str(w, verb);
    jw_raw(w, ",\"recorded\":true,\"overrides\":");
    if (contradicts)
        jw_str(w, eff == EFF_COMMIT ? "commit" : "abort");
    else if (over_decider)
        jw_str(w, "decider");
    else
        jw_raw(w, "null");
    jw_ckey(w, "who");
    jw_str(w, who);
    jw_ckey(w, "why");
    jw_str(w, why);
    jw_ckey(w, "message");
    snprintf(msg, sizeof msg,
             "heuristic %s of %s recorded (forced to disk); recovery drives every prepared "
             "branch to it",
             verb, gtrid);
    jw_str(w, msg);
    jw_raw(w, "}");
}

/* ------------------------------------------------------------------ entry */

int admin_handle(struct tm_ctx *ctx, const admin_peer *peer, const char *command,
                 const char *arg, xatm_buf *json, int32_t *code, admin_deferred *defer)
{
    static const char *const no_keys[] = {NULL};
    static const char *const list_keys[] = {"all", NULL};
    static const char *const show_keys[] = {"gtrid", NULL};
    jw w = {json, 0, tm_now_ms()};
    char gtrid[XATM_GTRID_MAX + 1];
    bool too_long;
    int ret = 0;
    *code = 0;
    if (!arg) arg = "";
    if (strcmp(command, "status") == 0) {
        if (admin_args(&w, code, command, arg, no_keys)) admin_status(ctx, &w);
    } else if (strcmp(command, "list") == 0) {
        char all[8] = "";
        if (admin_args(&w, code, command, arg, list_keys)) {
            arg_get(arg, "all", all, sizeof all, &too_long);
            admin_list(ctx, &w, strcmp(all, "1") == 0);
        }
    } else if (strcmp(command, "show") == 0) {
        if (admin_args(&w, code, command, arg, show_keys) &&
            admin_gtrid_arg(ctx, &w, code, command, arg, gtrid, sizeof gtrid))
            admin_show(ctx, &w, gtrid);
    } else if (strcmp(command, "recover") == 0) {
        ret = admin_recover(ctx, &w, code, arg, defer);
    } else if (strcmp(command, "commit") == 0 || strcmp(command, "rollback") == 0) {
        admin_force(ctx, peer,
                    command[0] == 'c' ? XATM_OUTCOME_COMMIT : XATM_OUTCOME_ABORT, command, arg,
                    &w, code);
    } else {
        *code = XATM_EINVAL;
        jw_raw(&w, "{");
        jw_key(&w, "error");
        char msg[XATM_ADMIN_CMD_MAX + 40];
        snprintf(msg, sizeof msg, "unknown command \"%s\"", command);
        jw_str(&w, msg);
        jw_raw(&w, ",\"hint\":\"\",\"commands\":[\"status\",\"list\",\"show\",\"recover\","
                   "\"commit\",\"rollback\"]}");
    }
    if (w.err) return XATM_ENOMEM;
    return ret;
}
