/*
 * admin.c — answers admin requests with JSON (admin.h lists the shapes). Owns only the
 * rendering: every number and string comes from the gtx table, the decision registry, the
 * recovery state and the log, through their thread-safe accessors. A JSON builder error
 * (out of memory) is sticky in struct jw and reported once at the end.
 */
#include "admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gtx.h"
#include "recovery.h"
#include "xatm.h"

/* A JSON writer over an xatm_buf with a sticky error. */
typedef struct jw {
    xatm_buf *b; /* output */
    int err;     /* first error (XATM_ENOMEM), 0 while fine */
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

/* ------------------------------------------------------------------ status */

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
    jw_fmt(w, ",\"bytes\":%llu,\"segments\":%u}", (unsigned long long)bytes, segments);

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
        jw_raw(w, ",");
        jw_key(w, "type");
        jw_str(w, st[i].type);
        jw_raw(w, ",");
        jw_key(w, "state");
        jw_str(w, st[i].quarantined ? "quarantined" : "ok");
        jw_raw(w, ",");
        jw_key(w, "last_error");
        jw_str(w, st[i].last_error);
        if (st[i].last_scan_age_s < 0)
            jw_raw(w, ",\"last_scan_age_s\":null");
        else
            jw_fmt(w, ",\"last_scan_age_s\":%lld", (long long)st[i].last_scan_age_s);
        jw_fmt(w, ",\"retry_in_ms\":%u}", st[i].quarantined ? st[i].backoff_ms : 0u);
    }
    free(st);
    jw_raw(w, "]");

    gtx_counts c;
    memset(&c, 0, sizeof c);
    if (ctx->gtx) gtx_get_counts(ctx->gtx, &c);
    size_t unresolved = ctx->decisions ? tm_decisions_count(ctx->decisions) : 0;
    jw_fmt(w,
           ",\"counts\":{\"active\":%llu,\"commit_pending\":%llu,\"committing\":%llu,"
           "\"orphaned\":%llu,\"unresolved_decisions\":%zu}",
           (unsigned long long)c.active, (unsigned long long)c.commit_pending,
           (unsigned long long)c.committing, (unsigned long long)c.orphaned, unresolved);
    jw_fmt(w,
           ",\"totals\":{\"begun\":%llu,\"committed\":%llu,\"aborted\":%llu,"
           "\"timed_out\":%llu}}",
           (unsigned long long)c.begun, (unsigned long long)c.committed,
           (unsigned long long)c.aborted, (unsigned long long)c.timed_out);
}

/* ------------------------------------------------------------------ list */

/* Carries the writer and the separator state through the foreach callbacks. */
typedef struct admin_lister {
    jw *w;      /* output */
    bool first; /* no transaction written yet */
} admin_lister;

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

static void admin_list_head(admin_lister *l, const char *gtrid, const char *state,
                            uint8_t protocol, uint64_t since_ms, const char *decision)
{
    jw *w = l->w;
    jw_raw(w, l->first ? "{" : ",{");
    l->first = false;
    jw_key(w, "gtrid");
    jw_str(w, gtrid);
    jw_raw(w, ",");
    jw_key(w, "state");
    jw_str(w, state);
    jw_fmt(w, ",\"protocol\":%u,\"age_ms\":%llu,", protocol,
           (unsigned long long)(w->now_ms > since_ms ? w->now_ms - since_ms : 0));
    jw_key(w, "decision");
    jw_str(w, decision);
}

static void admin_list_branch(jw *w, bool first, const char *rm, const char *vote,
                              uint64_t session_id)
{
    jw_raw(w, first ? "{" : ",{");
    jw_key(w, "rm");
    jw_str(w, rm);
    jw_raw(w, ",\"vote\":");
    if (vote)
        jw_str(w, vote);
    else
        jw_raw(w, "null");
    jw_fmt(w, ",\"session_id\":%llu}", (unsigned long long)session_id);
}

static void admin_list_gtx(const gtx_info *g, void *arg)
{
    admin_lister *l = arg;
    jw *w = l->w;
    admin_list_head(l, g->gtrid, gtx_state_name(g->state), g->protocol, g->begin_ms,
                    g->state == GTX_ACTIVE ? "none" : "commit");
    jw_fmt(w, ",\"orphaned\":%s,\"branches\":[",
           g->state != GTX_ACTIVE && g->owner == 0 ? "true" : "false");
    for (unsigned i = 0; i < g->n_branches; i++)
        admin_list_branch(w, i == 0, g->branches[i].rm, admin_vote_name(g->branches[i].vote),
                          g->branches[i].session_id);
    jw_raw(w, "]}");
}

static void admin_list_decision(const tm_decision_info *e, void *arg)
{
    admin_lister *l = arg;
    jw *w = l->w;
    admin_list_head(l, e->gtrid, "in-doubt", e->protocol, e->since_ms,
                    tm_decision_kind_name(e->kind));
    jw_fmt(w, ",\"orphaned\":true,\"from_log\":%s,\"branches\":[", e->from_log ? "true" : "false");
    for (unsigned i = 0; i < e->n_branches; i++)
        admin_list_branch(w, i == 0, e->branches[i].rm, e->has_commit ? "yes" : NULL,
                          e->branches[i].session_id);
    jw_raw(w, "]}");
}

static void admin_list(struct tm_ctx *ctx, jw *w)
{
    admin_lister l = {w, true};
    jw_raw(w, "{\"transactions\":[");
    if (ctx->gtx) gtx_foreach(ctx->gtx, admin_list_gtx, &l);
    if (ctx->decisions) tm_decisions_foreach(ctx->decisions, admin_list_decision, &l);
    jw_raw(w, "]}");
}

/* ------------------------------------------------------------------ entry */

int admin_handle(struct tm_ctx *ctx, const char *command, const char *arg, xatm_buf *json,
                 int32_t *code)
{
    (void)arg;
    jw w = {json, 0, tm_now_ms()};
    *code = 0;
    if (strcmp(command, "status") == 0) {
        admin_status(ctx, &w);
    } else if (strcmp(command, "list") == 0) {
        admin_list(ctx, &w);
    } else {
        *code = XATM_EINVAL;
        jw_raw(&w, "{");
        jw_key(&w, "error");
        char msg[XATM_ADMIN_CMD_MAX + 40];
        snprintf(msg, sizeof msg, "unknown command \"%s\"", command);
        jw_str(&w, msg);
        jw_raw(&w, ",\"commands\":[\"status\",\"list\"]}");
    }
    return w.err ? XATM_ENOMEM : 0;
}
