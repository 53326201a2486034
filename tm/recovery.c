/*
 * recovery.c — the recovery rule and the unresolved-decision registry (recovery.h says
 * what each owns and the pass; tm.h has the lock order). Two parts:
 *
 *   registry   pure bookkeeping: a chained hash table of tm_decision_info keyed by gtrid,
 *              guarded by its own mutex; unit-tested without any RM;
 *   recovery   the per-RM sessions and scan sets, quarantine with back-off, the pass, the
 *              periodic thread. RM calls are blocking and never made with a mutex held.
 *
 * Per-RM state is touched by the thread running the pass (start-up: main; later: the
 * recovery thread, never both at once); the fields shown by `xatmctl status` are also read
 * by the event loop, so they are guarded by recovery.mu.
 */
#include "recovery.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fault.h"
#include "../rm-adapters/rm.h"
#include "server.h"
#include "xatm.h"

/* ================================================================== registry */

/* One registry entry in a bucket chain. */
typedef struct dec_node {
    tm_decision_info info; /* the decision */
    struct dec_node *next; /* next in the bucket */
} dec_node;

struct tm_decisions {
    pthread_mutex_t mu;   /* guards everything below */
    dec_node **buckets;   /* n_buckets chains (a power of 2) */
    size_t n_buckets;     /* bucket count */
    size_t count;         /* entries */
    char **rm_names;      /* configured RMs (owned), for heuristic-only entries */
    size_t n_rms;         /* entries in rm_names */
};

static size_t dec_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

static dec_node *dec_find(const tm_decisions *d, const char *gtrid)
{
    for (dec_node *e = d->buckets[dec_hash(gtrid) & (d->n_buckets - 1)]; e; e = e->next)
        if (strcmp(e->info.gtrid, gtrid) == 0) return e;
    return NULL;
}

static int dec_grow(tm_decisions *d)
{
    size_t n = d->n_buckets * 2;
    dec_node **nb = calloc(n, sizeof *nb);
    if (!nb) return XATM_ENOMEM;
    for (size_t i = 0; i < d->n_buckets; i++) {
        dec_node *e = d->buckets[i];
        while (e) {
            dec_node *next = e->next;
            size_t b = dec_hash(e->info.gtrid) & (n - 1);
            e->next = nb[b];
            nb[b] = e;
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = nb;
    d->n_buckets = n;
    return 0;
}

/* The entry for gtrid, created (empty, kind NONE) when absent; NULL on out of memory. */
static dec_node *dec_get(tm_decisions *d, const char *gtrid, uint64_t now_ms, bool *created)
{
    dec_node *e = dec_find(d, gtrid);
    *created = false;
    if (e) return e;
    if (d->count >= d->n_buckets && dec_grow(d) != 0) return NULL;
    e = calloc(1, sizeof *e);
    if (!e) return NULL;
    snprintf(e->info.gtrid, sizeof e->info.gtrid, "%s", gtrid);
    e->info.since_ms = now_ms;
    size_t b = dec_hash(gtrid) & (d->n_buckets - 1);
    e->next = d->buckets[b];
    d->buckets[b] = e;
    d->count++;
    *created = true;
    return e;
}

static void dec_unlink(tm_decisions *d, dec_node *e)
{
    dec_node **pp = &d->buckets[dec_hash(e->info.gtrid) & (d->n_buckets - 1)];
    while (*pp != e) pp = &(*pp)->next;
    *pp = e->next;
    d->count--;
    free(e);
}

/* The kind an entry's records add up to: an operator's word beats the log's decision. */
static enum tm_decision_kind dec_kind_of(const tm_decision_info *i)
{
    if (i->has_heuristic)
        return i->heur_outcome == XATM_OUTCOME_COMMIT ? TM_DEC_HEUR_COMMIT : TM_DEC_HEUR_ROLLBACK;
    if (i->has_commit) return TM_DEC_COMMIT;
    if (i->has_precommit) return TM_DEC_PRECOMMIT;
    return TM_DEC_NONE;
}

static void dec_set_branches(tm_decision_info *i, const xatm_declog_branch *b, unsigned n)
{
    i->n_branches = 0;
    for (unsigned k = 0; k < n && k < XATM_MAX_BRANCHES; k++) {
        tm_decision_branch *x = &i->branches[i->n_branches++];
        memset(x, 0, sizeof *x);
        snprintf(x->rm, sizeof x->rm, "%s", b[k].rm);
        x->session_id = b[k].session_id;
    }
}

tm_decisions *tm_decisions_new(const char *const *rm_names, size_t n_rms)
{
    tm_decisions *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->n_buckets = 64;
    d->buckets = calloc(d->n_buckets, sizeof *d->buckets);
    if (!d->buckets) goto fail_free_registry;
    d->rm_names = calloc(n_rms ? n_rms : 1, sizeof *d->rm_names);
    if (!d->rm_names) goto fail_free_buckets;
    for (size_t i = 0; i < n_rms; i++) {
        d->rm_names[i] = strdup(rm_names[i]);
        if (!d->rm_names[i]) goto fail_free_names;
        d->n_rms = i + 1;
    }
    if (pthread_mutex_init(&d->mu, NULL) != 0) goto fail_free_names;
    return d;

fail_free_names:
    for (size_t i = 0; i < d->n_rms; i++) free(d->rm_names[i]);
    free(d->rm_names);
fail_free_buckets:
    free(d->buckets);
fail_free_registry:
    free(d);
    return NULL;
}

void tm_decisions_free(tm_decisions *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n_buckets; i++) {
        dec_node *e = d->buckets[i];
        while (e) {
            dec_node *next = e->next;
            free(e);
            e = next;
        }
    }
    for (size_t i = 0; i < d->n_rms; i++) free(d->rm_names[i]);
    free(d->rm_names);
    free(d->buckets);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

int tm_decisions_replay(tm_decisions *d, const xatm_declog_record *rec, uint64_t now_ms)
{
    int rc = 0;
    bool created;
    dec_node *e;
    pthread_mutex_lock(&d->mu);
    switch (rec->type) {
    case XATM_DL_COMMIT:
    case XATM_DL_PRECOMMIT:
        if (!(e = dec_get(d, rec->gtrid, now_ms, &created))) {
            rc = XATM_ENOMEM;
            break;
        }
        e->info.from_log = true;
        e->info.protocol = rec->protocol;
        if (rec->type == XATM_DL_COMMIT) {
            e->info.has_commit = true;
            dec_set_branches(&e->info, rec->branches, rec->n_branches);
        } else {
            e->info.has_precommit = true;
            if (!e->info.has_commit) dec_set_branches(&e->info, rec->branches, rec->n_branches);
        }
        e->info.kind = dec_kind_of(&e->info);
        break;
    case XATM_DL_HEURISTIC:
        if (!(e = dec_get(d, rec->gtrid, now_ms, &created))) {
            rc = XATM_ENOMEM;
            break;
        }
        e->info.from_log = true;
        e->info.has_heuristic = true;
        e->info.heur_outcome = rec->outcome;
        snprintf(e->info.who, sizeof e->info.who, "%s", rec->who);
        snprintf(e->info.why, sizeof e->info.why, "%s", rec->why);
        if (e->info.n_branches == 0) {
            /* no COMMIT tells which RMs: look on every configured one */
            for (size_t i = 0; i < d->n_rms && i < XATM_MAX_BRANCHES; i++) {
                tm_decision_branch *x = &e->info.branches[e->info.n_branches++];
                memset(x, 0, sizeof *x);
                snprintf(x->rm, sizeof x->rm, "%s", d->rm_names[i]);
            }
        }
        if (!e->info.protocol) e->info.protocol = XATM_PROTOCOL_2PC;
        e->info.kind = dec_kind_of(&e->info);
        break;
    case XATM_DL_END:
        if ((e = dec_find(d, rec->gtrid))) dec_unlink(d, e);
        break;
    default:
        break; /* BOOT, CHECKPOINT: nothing to record */
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int tm_decisions_adopt(tm_decisions *d, const gtx_info *g, uint64_t now_ms)
{
    int rc = 0;
    bool created;
    xatm_declog_record rec;
    gtx_commit_record(g, &rec);
    pthread_mutex_lock(&d->mu);
    dec_node *e = dec_get(d, g->gtrid, now_ms, &created);
    if (!e) {
        rc = XATM_ENOMEM;
    } else {
        e->info.protocol = g->protocol;
        e->info.has_commit = true;
        dec_set_branches(&e->info, rec.branches, rec.n_branches);
        e->info.kind = dec_kind_of(&e->info);
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

enum tm_decision_kind tm_decisions_get(tm_decisions *d, const char *gtrid, tm_decision_info *out)
{
    pthread_mutex_lock(&d->mu);
    dec_node *e = dec_find(d, gtrid);
    enum tm_decision_kind k = e ? e->info.kind : TM_DEC_NONE;
    if (e && out) *out = e->info;
    pthread_mutex_unlock(&d->mu);
    return k;
}

enum tm_decision_kind tm_decisions_kind(tm_decisions *d, const char *gtrid)
{
    return tm_decisions_get(d, gtrid, NULL);
}

void tm_decisions_scanned(tm_decisions *d, const char *rm,
                          bool (*present)(const char *gtrid, const char *rm, void *arg),
                          void *arg)
{
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n_buckets; i++) {
        for (dec_node *e = d->buckets[i]; e; e = e->next) {
            for (unsigned k = 0; k < e->info.n_branches; k++) {
                tm_decision_branch *b = &e->info.branches[k];
                if (strcmp(b->rm, rm) != 0) continue;
                if (present(e->info.gtrid, rm, arg))
                    b->clean_scans = 0;
                else if (b->clean_scans < 1000000)
                    b->clean_scans++;
            }
        }
    }
    pthread_mutex_unlock(&d->mu);
}

bool tm_decisions_note_nota(tm_decisions *d, const char *gtrid, const char *rm)
{
    bool first = true;
    pthread_mutex_lock(&d->mu);
    dec_node *e = dec_find(d, gtrid);
    if (e) {
        for (unsigned k = 0; k < e->info.n_branches; k++) {
            tm_decision_branch *b = &e->info.branches[k];
            if (strcmp(b->rm, rm) != 0) continue;
            first = !b->nota_logged;
            b->nota_logged = true;
        }
    }
    pthread_mutex_unlock(&d->mu);
    return first;
}

int tm_decisions_remove(tm_decisions *d, const char *gtrid)
{
    int rc = XATM_ENOTFOUND;
    pthread_mutex_lock(&d->mu);
    dec_node *e = dec_find(d, gtrid);
    if (e) {
        dec_unlink(d, e);
        rc = 0;
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

void tm_decisions_foreach(tm_decisions *d, void (*cb)(const tm_decision_info *e, void *arg),
                          void *arg)
{
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n_buckets; i++)
        for (dec_node *e = d->buckets[i]; e; e = e->next) cb(&e->info, arg);
    pthread_mutex_unlock(&d->mu);
}

size_t tm_decisions_count(tm_decisions *d)
{
    pthread_mutex_lock(&d->mu);
    size_t n = d->count;
    pthread_mutex_unlock(&d->mu);
    return n;
}

const char *tm_decision_kind_name(enum tm_decision_kind k)
{
    switch (k) {
    case TM_DEC_COMMIT:
        return "commit";
    case TM_DEC_PRECOMMIT:
        return "precommit";
    case TM_DEC_HEUR_COMMIT:
        return "heuristic-commit";
    case TM_DEC_HEUR_ROLLBACK:
        return "heuristic-rollback";
    case TM_DEC_NONE:
        break;
    }
    return "none";
}

/* ================================================================== recovery */

#define REC_BACKOFF_MIN_MS 1000u
#define REC_BACKOFF_MAX_MS 60000u

/* One configured RM as recovery sees it. */
typedef struct rec_rm {
    const xatm_rm_config *cfg; /* its config entry */
    xatm_rm_conn *conn;        /* recovery's own session; NULL when closed */
    /* guarded by recovery.mu (read by the event loop for status): */
    bool quarantined;          /* unreachable: in back-off */
    char last_error[512];      /* the failure that quarantined it, "" when healthy */
    uint64_t last_scan_ms;     /* monotonic ms of the last successful scan, 0 never */
    uint32_t backoff_ms;       /* current back-off (0 when healthy) */
    uint64_t retry_at_ms;      /* no reconnect before this (monotonic ms) */
    /* pass-thread only: */
    xatm_xid *prev;            /* the previous successful scan, sorted */
    size_t n_prev;             /* entries in prev */
    bool have_prev;            /* prev is a scan of the current session */
    xatm_xid *cur;             /* the scan being made / just made, sorted */
    size_t n_cur, cap_cur;     /* entries / allocated */
    bool scan_oom;             /* the scan lost a branch to out of memory: it failed */
    uint32_t format_id;        /* our XA formatID (cfg), for rec_collect's check */
    const char *tm_id;         /* our TM id (cfg), for rec_collect's check */
    bool scanned;              /* this pass scanned it successfully */
} rec_rm;

struct recovery {
    struct tm_ctx *ctx;       /* the daemon */
    rec_rm *rms;              /* one per cfg->rms entry, same order */
    size_t n_rms;             /* cfg->n_rms */
    pthread_mutex_t mu;       /* rec_rm status fields and the thread controls below */
    pthread_cond_t cond;      /* signalled by wake and stop */
    pthread_t thread;         /* the periodic thread */
    bool running;             /* thread started and not joined */
    bool wake;                /* a pass was requested */
    atomic_bool stop;         /* the thread must stop (checked inside a pass too) */
};

/* One branch to act on. */
typedef struct rec_work {
    xatm_xid xid; /* the prepared branch as the RM reported it */
    size_t rm;    /* index of the RM whose scans showed it */
} rec_work;

static int xid_cmp(const void *a, const void *b)
{
    const xatm_xid *x = a, *y = b;
    int c = strcmp(x->gtrid, y->gtrid);
    return c ? c : strcmp(x->bqual, y->bqual);
}

static int work_cmp(const void *a, const void *b)
{
    const rec_work *x = a, *y = b;
    int c = xid_cmp(&x->xid, &y->xid);
    if (c) return c;
    return x->rm < y->rm ? -1 : x->rm > y->rm;
}

static bool xid_in(const xatm_xid *set, size_t n, const xatm_xid *x)
{
    return n && bsearch(x, set, n, sizeof *set, xid_cmp) != NULL;
}

struct recovery *recovery_new(struct tm_ctx *ctx)
{
    struct recovery *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->ctx = ctx;
    r->n_rms = ctx->cfg->n_rms;
    r->rms = calloc(r->n_rms ? r->n_rms : 1, sizeof *r->rms);
    if (!r->rms) goto fail_free_recovery;
    for (size_t i = 0; i < r->n_rms; i++) {
        r->rms[i].cfg = &ctx->cfg->rms[i];
        r->rms[i].format_id = ctx->cfg->format_id;
        r->rms[i].tm_id = ctx->cfg->tm_id;
    }
    if (pthread_mutex_init(&r->mu, NULL) != 0) goto fail_free_rms;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) goto fail_destroy_mutex;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int crc = pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (crc != 0) goto fail_destroy_mutex;
    atomic_init(&r->stop, false);
    return r;

fail_destroy_mutex:
    pthread_mutex_destroy(&r->mu);
fail_free_rms:
    free(r->rms);
fail_free_recovery:
    free(r);
    return NULL;
}

/* Quarantines RM i after a failure described by msg: closes its session, forgets its
 * scans, schedules the reconnect. Logged once per outage. */
static void rec_rm_fail(struct recovery *r, size_t i, const char *msg)
{
    rec_rm *m = &r->rms[i];
    if (m->conn) {
        xatm_rm_close(m->conn);
        m->conn = NULL;
    }
    m->have_prev = false;
    m->scanned = false;
    pthread_mutex_lock(&r->mu);
    bool first = !m->quarantined;
    m->quarantined = true;
    m->backoff_ms = first ? REC_BACKOFF_MIN_MS
                          : (m->backoff_ms >= REC_BACKOFF_MAX_MS / 2 ? REC_BACKOFF_MAX_MS
                                                                     : m->backoff_ms * 2);
    m->retry_at_ms = tm_now_ms() + m->backoff_ms;
    snprintf(m->last_error, sizeof m->last_error, "%s", msg);
    uint32_t secs = m->backoff_ms / 1000;
    pthread_mutex_unlock(&r->mu);
    if (first)
        tm_log("Recovery serves the other RMs meanwhile and retries with a back-off of up to "
               "60 s.",
               "Check that the server is running and reachable with the configured address "
               "and credentials.",
               "RM %s unreachable: %s; retrying in %u s", m->cfg->name, msg, secs);
}

/* Makes sure RM i has a session. false when it is in back-off or the connect failed. */
static bool rec_rm_connect(struct recovery *r, size_t i)
{
    rec_rm *m = &r->rms[i];
    if (m->conn) return true;
    pthread_mutex_lock(&r->mu);
    bool wait = m->quarantined && tm_now_ms() < m->retry_at_ms;
    bool was_quarantined = m->quarantined;
    pthread_mutex_unlock(&r->mu);
    if (wait) return false;
    char err[1024] = "";
    int rc = xatm_rm_open(m->cfg, &m->conn, err, sizeof err);
    if (rc != XATM_XA_OK || !m->conn) {
        m->conn = NULL;
        if (!err[0]) snprintf(err, sizeof err, "connect failed (%s)", xatm_xa_rc_name(rc));
        rec_rm_fail(r, i, err);
        return false;
    }
    m->have_prev = false;
    pthread_mutex_lock(&r->mu);
    m->quarantined = false;
    m->backoff_ms = 0;
    m->last_error[0] = '\0';
    pthread_mutex_unlock(&r->mu);
    if (was_quarantined) tm_log(NULL, NULL, "RM %s reachable again", m->cfg->name);
    return true;
}

/* xatm_rm_recover callback: collects one branch into the current scan. */
static void rec_collect(const xatm_rm_prepared *p, void *arg)
{
    rec_rm *m = arg;
    xatm_gtrid_parts parts;
    if (p->xid.format_id != m->format_id || xatm_gtrid_parse(p->xid.gtrid, &parts) != 0 ||
        strcmp(parts.tm_id, m->tm_id) != 0)
        return; /* not ours: the adapter filters, this is a second check */
    if (m->n_cur == m->cap_cur) {
        size_t cap = m->cap_cur ? m->cap_cur * 2 : 16;
        xatm_xid *x = realloc(m->cur, cap * sizeof *x);
        if (!x) {
            m->scan_oom = true; /* an incomplete scan must not count as one */
            return;
        }
        m->cur = x;
        m->cap_cur = cap;
    }
    m->cur[m->n_cur++] = p->xid;
}

/* tm_decisions_scanned's question: is (gtrid, rm) in the scan just made? */
static bool rec_present(const char *gtrid, const char *rm, void *arg)
{
    const rec_rm *m = arg;
    xatm_xid x;
    memset(&x, 0, sizeof x);
    snprintf(x.gtrid, sizeof x.gtrid, "%s", gtrid);
    snprintf(x.bqual, sizeof x.bqual, "%s", rm);
    return xid_in(m->cur, m->n_cur, &x);
}

/* Scans RM i. true on success (m->cur holds the sorted scan, m->prev the one before). */
static bool rec_scan(struct recovery *r, size_t i)
{
    rec_rm *m = &r->rms[i];
    struct tm_ctx *ctx = r->ctx;
    m->scanned = false;
    if (!rec_rm_connect(r, i)) return false;
    /* the last scan becomes the previous one */
    free(m->prev);
    m->prev = m->cur;
    m->n_prev = m->n_cur;
    m->cur = NULL;
    m->n_cur = m->cap_cur = 0;
    bool had_prev = m->have_prev;
    m->scan_oom = false;
    int rc = xatm_rm_recover(m->conn, ctx->cfg->format_id, ctx->cfg->tm_id, rec_collect, m);
    if (rc == XATM_XA_OK && m->scan_oom) {
        tm_log(NULL, NULL, "recovery: scan of RM %s failed: out of memory", m->cfg->name);
        m->have_prev = false;
        return false;
    }
    if (rc != XATM_XA_OK) {
        char msg[700];
        snprintf(msg, sizeof msg, "XA RECOVER failed (%s): %s", xatm_xa_rc_name(rc),
                 xatm_rm_errmsg(m->conn));
        if (rc == XATM_XAER_RMFAIL || !xatm_rm_alive(m->conn)) {
            rec_rm_fail(r, i, msg);
        } else {
            tm_log(NULL, NULL, "recovery: scan of RM %s failed: %s", m->cfg->name, msg);
            m->have_prev = false;
        }
        return false;
    }
    if (m->n_cur) qsort(m->cur, m->n_cur, sizeof *m->cur, xid_cmp);
    m->have_prev = true;
    if (!had_prev) m->n_prev = 0; /* an old scan from before an outage does not count */
    m->scanned = true;
    pthread_mutex_lock(&r->mu);
    m->last_scan_ms = tm_now_ms();
    pthread_mutex_unlock(&r->mu);
    tm_decisions_scanned(ctx->decisions, m->cfg->name, rec_present, m);
    return true;
}

static int rec_adopt_cb(const gtx_info *g, void *arg)
{
    struct tm_ctx *ctx = arg;
    return tm_decisions_adopt(ctx->decisions, g, tm_now_ms());
}

/* Moves orphaned COMMITTING transactions into the registry (under log_mu: see recovery.h). */
static void rec_adopt_orphans(struct recovery *r)
{
    struct tm_ctx *ctx = r->ctx;
    if (!ctx->gtx) return;
    pthread_mutex_lock(&ctx->log_mu);
    gtx_take_orphans(ctx->gtx, rec_adopt_cb, ctx);
    pthread_mutex_unlock(&ctx->log_mu);
}

static void rec_fatal(struct recovery *r, int rc)
{
    atomic_store(&r->ctx->fatal, true);
    tm_log("Decisions can no longer be made durable; xatmd stops. Restart it once the log "
           "directory is writable: recovery then finishes every transaction by what the "
           "log holds.",
           NULL, "recovery: decision log write failed: %s", xatm_strerror(rc));
    if (r->ctx->srv) server_wake(r->ctx->srv);
}

/* What recovery does with the branches of one gtrid. */
enum rec_action { REC_LEAVE, REC_COMMIT, REC_ROLLBACK };

/* The AP sessions recorded for the branches of one gtrid (from the gtx table or the
 * registry); a branch not listed has no known session. */
typedef struct rec_sessions {
    unsigned n;                                     /* entries */
    char rm[XATM_MAX_BRANCHES][XATM_RM_NAME_MAX + 1]; /* branch RM name */
    uint64_t id[XATM_MAX_BRANCHES];                 /* its AP session id (0: none) */
} rec_sessions;

static void rec_sessions_add(rec_sessions *s, const char *rm, uint64_t id)
{
    if (s->n >= XATM_MAX_BRANCHES || id == 0) return;
    snprintf(s->rm[s->n], sizeof s->rm[s->n], "%s", rm);
    s->id[s->n++] = id;
}

static uint64_t rec_session_of(const rec_sessions *s, const char *rm)
{
    for (unsigned i = 0; i < s->n; i++)
        if (strcmp(s->rm[i], rm) == 0) return s->id[i];
    return 0;
}

static enum rec_action rec_decide(struct recovery *r, const char *gtrid, const char **why,
                                  rec_sessions *sess)
{
    struct tm_ctx *ctx = r->ctx;
    gtx_info g;
    memset(sess, 0, sizeof *sess);
    enum gtx_verdict v = ctx->gtx ? gtx_recovery_verdict(ctx->gtx, gtrid, tm_now_ms(), &g)
                                  : GTX_V_UNKNOWN;
    if (v != GTX_V_UNKNOWN)
        for (unsigned i = 0; i < g.n_branches; i++)
            rec_sessions_add(sess, g.branches[i].rm, g.branches[i].session_id);
    switch (v) {
    case GTX_V_LIVE:
        return REC_LEAVE;
    case GTX_V_ABORTED_NOW:
        *why = "transaction timed out";
        tm_log(NULL, NULL, "transaction %s timed out; rolling back its prepared branches",
               gtrid);
        return REC_ROLLBACK;
    case GTX_V_COMMIT:
        *why = "commit decided, its application is gone";
        return REC_COMMIT;
    case GTX_V_UNKNOWN:
        break;
    }
    tm_decision_info e;
    enum tm_decision_kind kind = tm_decisions_get(ctx->decisions, gtrid, &e);
    if (kind != TM_DEC_NONE)
        for (unsigned i = 0; i < e.n_branches; i++)
            rec_sessions_add(sess, e.branches[i].rm, e.branches[i].session_id);
    switch (kind) {
    case TM_DEC_COMMIT:
        *why = "commit decision in the log";
        return REC_COMMIT;
    case TM_DEC_HEUR_COMMIT:
        *why = "heuristic commit";
        return REC_COMMIT;
    case TM_DEC_HEUR_ROLLBACK:
        *why = "heuristic rollback";
        return REC_ROLLBACK;
    case TM_DEC_PRECOMMIT:
        return REC_LEAVE; /* no 3PC termination rule in this TM: listed as in-doubt */
    case TM_DEC_NONE:
        break;
    }
    *why = "presumed abort";
    return REC_ROLLBACK;
}

/* false while the AP session recorded for a MariaDB branch may still hold it (see
 * recovery.h): a phase-2 call from our session could then answer OK and do nothing. */
static bool rec_owner_gone(struct recovery *r, const rec_work *w, uint64_t session_id)
{
    rec_rm *m = &r->rms[w->rm];
    if (session_id == 0 || m->cfg->type != XATM_RM_MYSQL) return true;
    int alive = xatm_rm_session_alive(m->conn, session_id);
    if (alive == 0) return true;
    if (alive < 0) {
        char msg[700];
        snprintf(msg, sizeof msg, "session check failed (%s): %s", xatm_xa_rc_name(alive),
                 xatm_rm_errmsg(m->conn));
        if (alive == XATM_XAER_RMFAIL || !xatm_rm_alive(m->conn)) rec_rm_fail(r, w->rm, msg);
    }
    return false;
}

/* Runs the phase-2 call on one branch. Returns true when the branch is finished. */
static bool rec_finish_branch(struct recovery *r, const rec_work *w, enum rec_action act,
                              const char *why, const rec_sessions *sess)
{
    rec_rm *m = &r->rms[w->rm];
    if (!m->conn) return false; /* quarantined earlier in this pass */
    if (!rec_owner_gone(r, w, rec_session_of(sess, w->xid.bqual))) return false;
    bool commit = act == REC_COMMIT;
    xatm_fault_hit(commit ? "tm.recovery_before_commit" : "tm.recovery_before_rollback");
    int rc = xatm_rm_run(m->conn, commit ? XATM_RM_OP_COMMIT : XATM_RM_OP_ROLLBACK, &w->xid);
    if (rc == XATM_XA_OK) {
        if (commit) xatm_fault_hit("tm.recovery_after_commit");
        tm_log(NULL, NULL, "recovery: %s prepared branch %s of %s (%s)",
               commit ? "committed" : "rolled back", w->xid.bqual, w->xid.gtrid, why);
        return true;
    }
    if (rc == XATM_XAER_NOTA) {
        if (!commit || tm_decisions_note_nota(r->ctx->decisions, w->xid.gtrid, w->xid.bqual))
            tm_log(NULL, NULL, "recovery: branch %s of %s was already %s (XAER_NOTA)",
                   w->xid.bqual, w->xid.gtrid, commit ? "committed" : "rolled back");
        return true;
    }
    char msg[900];
    snprintf(msg, sizeof msg, "%s failed (%s): %s", commit ? "XA COMMIT" : "XA ROLLBACK",
             xatm_xa_rc_name(rc), xatm_rm_errmsg(m->conn));
    if (rc == XATM_XAER_RMFAIL || !xatm_rm_alive(m->conn)) {
        rec_rm_fail(r, w->rm, msg);
    } else {
        tm_log("The branch stays prepared; recovery retries it at its next pass.", NULL,
               "recovery: could not %s branch %s of %s: %s", commit ? "commit" : "roll back",
               w->xid.bqual, w->xid.gtrid, msg);
    }
    return false;
}

/* Step 3: act on the branches seen by two consecutive scans. */
static size_t rec_act(struct recovery *r)
{
    size_t n = 0, cap = 0, done = 0;
    rec_work *w = NULL;
    for (size_t i = 0; i < r->n_rms; i++) {
        rec_rm *m = &r->rms[i];
        if (!m->scanned) continue;
        for (size_t k = 0; k < m->n_cur; k++) {
            if (!xid_in(m->prev, m->n_prev, &m->cur[k])) continue;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 16;
                rec_work *x = realloc(w, nc * sizeof *x);
                if (!x) goto out_free; /* retried at the next pass */
                w = x;
                cap = nc;
            }
            w[n].xid = m->cur[k];
            w[n].rm = i;
            n++;
        }
    }
    if (n) qsort(w, n, sizeof *w, work_cmp);
    for (size_t k = 0; k < n && !atomic_load(&r->stop) && !atomic_load(&r->ctx->fatal);) {
        size_t end = k + 1;
        while (end < n && strcmp(w[end].xid.gtrid, w[k].xid.gtrid) == 0) end++;
        const char *why = "";
        rec_sessions sess;
        enum rec_action act = rec_decide(r, w[k].xid.gtrid, &why, &sess);
        if (act != REC_LEAVE) {
            for (size_t j = k; j < end; j++) {
                if (j > k) xatm_fault_hit("tm.recovery_between_branches");
                if (rec_finish_branch(r, &w[j], act, why, &sess)) done++;
            }
        }
        k = end;
    }
out_free:
    free(w);
    return done;
}

/* A resolution candidate: a decision whose branches all had two clean scans. */
typedef struct rec_candidates {
    struct recovery *r;     /* for RM lookups */
    tm_decision_info *v;    /* candidates */
    size_t n, cap;          /* used / allocated */
} rec_candidates;

static void rec_collect_candidate(const tm_decision_info *e, void *arg)
{
    rec_candidates *c = arg;
    if (e->kind == TM_DEC_PRECOMMIT || e->kind == TM_DEC_NONE) return;
    for (unsigned k = 0; k < e->n_branches; k++)
        if (e->branches[k].clean_scans < 2) return;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 8;
        tm_decision_info *x = realloc(c->v, nc * sizeof *x);
        if (!x) return;
        c->v = x;
        c->cap = nc;
    }
    c->v[c->n++] = *e;
}

/* true when no recorded MariaDB session of e can still hold an attached branch. */
static bool rec_sessions_gone(struct recovery *r, const tm_decision_info *e)
{
    for (unsigned k = 0; k < e->n_branches; k++) {
        const tm_decision_branch *b = &e->branches[k];
        if (b->session_id == 0) continue;
        int i = xatm_config_rm_index(r->ctx->cfg, b->rm);
        if (i < 0) return false;
        if (r->rms[i].cfg->type != XATM_RM_MYSQL) continue;
        if (!r->rms[i].conn) return false;
        int alive = xatm_rm_session_alive(r->rms[i].conn, b->session_id);
        if (alive == 0) continue;
        if (alive < 0 && (alive == XATM_XAER_RMFAIL || !xatm_rm_alive(r->rms[i].conn))) {
            char msg[700];
            snprintf(msg, sizeof msg, "session check failed (%s): %s", xatm_xa_rc_name(alive),
                     xatm_rm_errmsg(r->rms[i].conn));
            rec_rm_fail(r, (size_t)i, msg);
        }
        return false;
    }
    return true;
}

/* Step 4: appends END for every decision that is finished everywhere. */
static void rec_resolve(struct recovery *r)
{
    struct tm_ctx *ctx = r->ctx;
    rec_candidates c = {.r = r};
    tm_decisions_foreach(ctx->decisions, rec_collect_candidate, &c);
    size_t ended = 0;
    for (size_t k = 0; k < c.n && !atomic_load(&ctx->fatal); k++) {
        if (!rec_sessions_gone(r, &c.v[k])) continue;
        xatm_declog_record rec;
        memset(&rec, 0, sizeof rec);
        rec.type = XATM_DL_END;
        snprintf(rec.gtrid, sizeof rec.gtrid, "%s", c.v[k].gtrid);
        xatm_fault_hit("tm.before_end");
        pthread_mutex_lock(&ctx->log_mu);
        int rc = 0;
        if (tm_decisions_remove(ctx->decisions, rec.gtrid) == 0)
            rc = xatm_declog_append(ctx->log, &rec, false);
        pthread_mutex_unlock(&ctx->log_mu);
        if (rc != 0) {
            rec_fatal(r, rc);
            break;
        }
        ended++;
        tm_log(NULL, NULL, "recovery: decision %s resolved: every branch is finished",
               rec.gtrid);
    }
    free(c.v);
    if (ended && !atomic_load(&ctx->fatal)) {
        int rc = tm_log_flush(ctx);
        if (rc != 0) rec_fatal(r, rc);
    }
}

size_t recovery_pass(struct recovery *r)
{
    if (atomic_load(&r->ctx->fatal)) return 0;
    rec_adopt_orphans(r);
    for (size_t i = 0; i < r->n_rms && !atomic_load(&r->stop); i++) rec_scan(r, i);
    if (atomic_load(&r->stop)) return 0;
    size_t done = rec_act(r);
    if (!atomic_load(&r->stop)) rec_resolve(r);
    return done;
}

/* Warns about decisions that name RMs the config no longer has. */
static void rec_check_names(const tm_decision_info *e, void *arg)
{
    struct recovery *r = arg;
    for (unsigned k = 0; k < e->n_branches; k++) {
        if (xatm_config_rm_index(r->ctx->cfg, e->branches[k].rm) >= 0) continue;
        tm_log("It stays unresolved until that RM is configured again.",
               "Add the RM back to the config file, or resolve the branch by hand.",
               "decision %s names RM %s, which is not in the configuration", e->gtrid,
               e->branches[k].rm);
    }
}

void recovery_startup(struct recovery *r)
{
    tm_decisions_foreach(r->ctx->decisions, rec_check_names, r);
    recovery_pass(r);
    size_t done = recovery_pass(r);
    size_t left = tm_decisions_count(r->ctx->decisions);
    tm_log(NULL, NULL, "start-up recovery: %zu branch%s finished, %zu decision%s unresolved",
           done, done == 1 ? "" : "es", left, left == 1 ? "" : "s");
}

/* Milliseconds until the next pass is due (interval, or an RM's back-off end if sooner). */
static uint64_t rec_wait_ms(struct recovery *r, uint64_t now)
{
    uint64_t wait = r->ctx->cfg->recovery_interval_ms ? r->ctx->cfg->recovery_interval_ms : 10000;
    for (size_t i = 0; i < r->n_rms; i++) {
        const rec_rm *m = &r->rms[i];
        if (!m->quarantined) continue;
        uint64_t d = m->retry_at_ms > now ? m->retry_at_ms - now : 0;
        if (d < wait) wait = d;
    }
    return wait;
}

static void *rec_thread_main(void *arg)
{
    struct recovery *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!atomic_load(&r->stop)) {
        if (!r->wake) {
            uint64_t now = tm_now_ms(), wait = rec_wait_ms(r, now);
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + (wait % 1000) * 1000000u;
            ts.tv_sec += (time_t)(wait / 1000 + ns / 1000000000u);
            ts.tv_nsec = (long)(ns % 1000000000u);
            int rc = 0;
            while (!r->wake && !atomic_load(&r->stop) && rc != ETIMEDOUT)
                rc = pthread_cond_timedwait(&r->cond, &r->mu, &ts);
        }
        if (atomic_load(&r->stop)) break;
        r->wake = false;
        pthread_mutex_unlock(&r->mu);
        recovery_pass(r);
        pthread_mutex_lock(&r->mu);
        if (atomic_load(&r->ctx->fatal)) break;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int recovery_start(struct recovery *r)
{
    if (r->running) return 0;
    atomic_store(&r->stop, false);
    if (pthread_create(&r->thread, NULL, rec_thread_main, r) != 0) return XATM_ENOMEM;
    r->running = true;
    return 0;
}

void recovery_wake(struct recovery *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->wake = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

void recovery_stop(struct recovery *r)
{
    if (!r || !r->running) return;
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->stop, true);
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    r->running = false;
}

void recovery_free(struct recovery *r)
{
    if (!r) return;
    recovery_stop(r);
    for (size_t i = 0; i < r->n_rms; i++) {
        if (r->rms[i].conn) xatm_rm_close(r->rms[i].conn);
        free(r->rms[i].prev);
        free(r->rms[i].cur);
    }
    free(r->rms);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void recovery_rm_statuses(struct recovery *r, recovery_rm_status *out, size_t n)
{
    uint64_t now = tm_now_ms();
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < n && i < r->n_rms; i++) {
        const rec_rm *m = &r->rms[i];
        recovery_rm_status *s = &out[i];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s", m->cfg->name);
        s->type = xatm_rm_type_name(m->cfg->type);
        s->quarantined = m->quarantined;
        snprintf(s->last_error, sizeof s->last_error, "%s", m->last_error);
        s->last_scan_age_s = m->last_scan_ms ? (int64_t)((now - m->last_scan_ms) / 1000) : -1;
        s->backoff_ms = m->backoff_ms;
    }
    pthread_mutex_unlock(&r->mu);
}

/* ------------------------------------------------------------------ rotation callback */

/* Carries the emit function through the foreach callbacks. */
typedef struct rec_emitter {
    void (*emit)(const xatm_declog_record *rec, void *ea); /* the declog's sink */
    void *emit_arg;                                         /* its argument */
} rec_emitter;

static void rec_emit_decision(const tm_decision_info *e, void *arg)
{
    const rec_emitter *em = arg;
    xatm_declog_record rec;
    if (e->has_commit || e->has_precommit) {
        memset(&rec, 0, sizeof rec);
        rec.type = e->has_commit ? XATM_DL_COMMIT : XATM_DL_PRECOMMIT;
        snprintf(rec.gtrid, sizeof rec.gtrid, "%s", e->gtrid);
        rec.protocol = e->protocol ? e->protocol : XATM_PROTOCOL_2PC;
        for (unsigned k = 0; k < e->n_branches; k++) {
            snprintf(rec.branches[k].rm, sizeof rec.branches[k].rm, "%s", e->branches[k].rm);
            rec.branches[k].session_id = e->branches[k].session_id;
        }
        rec.n_branches = e->n_branches;
        em->emit(&rec, em->emit_arg);
    }
    if (e->has_heuristic) {
        memset(&rec, 0, sizeof rec);
        rec.type = XATM_DL_HEURISTIC;
        snprintf(rec.gtrid, sizeof rec.gtrid, "%s", e->gtrid);
        rec.outcome = e->heur_outcome;
        snprintf(rec.who, sizeof rec.who, "%s", e->who);
        snprintf(rec.why, sizeof rec.why, "%s", e->why);
        em->emit(&rec, em->emit_arg);
    }
}

static void rec_emit_gtx(const gtx_info *g, void *arg)
{
    const rec_emitter *em = arg;
    if (g->state == GTX_ACTIVE) return;
    xatm_declog_record rec;
    gtx_commit_record(g, &rec);
    em->emit(&rec, em->emit_arg);
}

void recovery_emit_unresolved(void *arg, void (*emit)(const xatm_declog_record *rec, void *ea),
                              void *emit_arg)
{
    struct tm_ctx *ctx = arg;
    rec_emitter em = {emit, emit_arg};
    if (ctx->decisions) tm_decisions_foreach(ctx->decisions, rec_emit_decision, &em);
    if (ctx->gtx) gtx_foreach(ctx->gtx, rec_emit_gtx, &em);
}
