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

/* The kind an entry's records add up to: an operator's word (the latest durable one)
 * beats the log's decision. */
static enum tm_decision_kind dec_kind_of(const tm_decision_info *i)
{
    for (unsigned k = i->n_heur; k-- > 0;)
        if (i->heur[k].durable)
            return i->heur[k].outcome == XATM_OUTCOME_COMMIT ? TM_DEC_HEUR_COMMIT
                                                             : TM_DEC_HEUR_ROLLBACK;
    if (i->has_commit) return TM_DEC_COMMIT;
    if (i->has_abort) return TM_DEC_ABORT;
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

/* Every configured RM as the entry's branches (a heuristic with no COMMIT to name them). */
static void dec_all_rms(const tm_decisions *d, tm_decision_info *i)
{
    i->n_branches = 0;
    for (size_t k = 0; k < d->n_rms && k < XATM_MAX_BRANCHES; k++) {
        tm_decision_branch *x = &i->branches[i->n_branches++];
        memset(x, 0, sizeof *x);
        snprintf(x->rm, sizeof x->rm, "%s", d->rm_names[k]);
    }
}

/* Adds a heuristic record to i unless an identical one is there (replay is idempotent).
 * 0, or XATM_ELIMIT when TM_HEUR_MAX are recorded. */
static int dec_heur_add(tm_decision_info *i, uint8_t outcome, const char *who, const char *why,
                        bool durable)
{
    for (unsigned k = 0; k < i->n_heur; k++) {
        const tm_heuristic *h = &i->heur[k];
        if (h->outcome == outcome && strcmp(h->who, who) == 0 && strcmp(h->why, why) == 0)
            return 0;
    }
    if (i->n_heur >= TM_HEUR_MAX) return XATM_ELIMIT;
    tm_heuristic *h = &i->heur[i->n_heur++];
    memset(h, 0, sizeof *h);
    h->outcome = outcome;
    h->durable = durable;
    snprintf(h->who, sizeof h->who, "%s", who);
    snprintf(h->why, sizeof h->why, "%s", why);
    return 0;
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
    case XATM_DL_ABORT:
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
            /* ABORT supersedes PRECOMMIT (dec_kind_of); both name every branch */
            if (rec->type == XATM_DL_ABORT)
                e->info.has_abort = true;
            else
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
        e->info.finished = false;
        /* a record beyond TM_HEUR_MAX was never appended by this xatmd: keep the first */
        (void)dec_heur_add(&e->info, rec->outcome, rec->who, rec->why, true);
        if (e->info.n_branches == 0) dec_all_rms(d, &e->info); /* look on every RM */
        if (!e->info.protocol) e->info.protocol = XATM_PROTOCOL_2PC;
        e->info.kind = dec_kind_of(&e->info);
        break;
    case XATM_DL_END:
        if (!(e = dec_find(d, rec->gtrid))) break;
        if (e->info.n_heur)
            e->info.finished = true; /* an operator's decision is never forgotten */
        else
            dec_unlink(d, e);
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
    bool precommit = g->state == GTX_PRECOMMITTED;
    if (precommit)
        gtx_decision_record(g, XATM_DL_PRECOMMIT, &rec);
    else
        gtx_commit_record(g, &rec);
    pthread_mutex_lock(&d->mu);
    dec_node *e = dec_get(d, g->gtrid, now_ms, &created);
    if (!e) {
        rc = XATM_ENOMEM;
    } else {
        e->info.protocol = g->protocol;
        if (precommit)
            e->info.has_precommit = true;
        else
            e->info.has_commit = true;
        e->info.ap_pid = g->ap_pid;
        /* an orphaned PRECOMMIT waits for its ack deadline (termination rule) */
        e->info.deadline_ms = precommit ? g->ack_deadline_ms : g->deadline_ms;
        /* keep sessions a forced outcome already recorded for a branch without one */
        tm_decision_info old = e->info;
        dec_set_branches(&e->info, rec.branches, rec.n_branches);
        for (unsigned k = 0; k < e->info.n_branches; k++) {
            tm_decision_branch *b = &e->info.branches[k];
            for (unsigned j = 0; j < old.n_branches && !b->session_id; j++)
                if (strcmp(old.branches[j].rm, b->rm) == 0) b->session_id = old.branches[j].session_id;
        }
        e->info.kind = dec_kind_of(&e->info);
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int tm_decisions_adopt_abort(tm_decisions *d, const gtx_info *g, uint64_t now_ms)
{
    int rc = 0;
    bool created;
    xatm_declog_record rec;
    gtx_decision_record(g, XATM_DL_ABORT, &rec);
    pthread_mutex_lock(&d->mu);
    dec_node *e = dec_get(d, g->gtrid, now_ms, &created);
    if (!e) {
        rc = XATM_ENOMEM;
    } else {
        e->info.protocol = XATM_PROTOCOL_3PC;
        e->info.has_precommit = true;
        e->info.has_abort = true;
        e->info.ap_pid = g->ap_pid;
        e->info.deadline_ms =
            g->deadline_ms > g->ack_deadline_ms ? g->deadline_ms : g->ack_deadline_ms;
        if (!e->info.has_commit && e->info.n_heur == 0)
            dec_set_branches(&e->info, rec.branches, rec.n_branches);
        e->info.kind = dec_kind_of(&e->info);
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int tm_decisions_decide(tm_decisions *d, const char *gtrid, uint8_t type, const char *mixed)
{
    int rc = XATM_ENOTFOUND;
    pthread_mutex_lock(&d->mu);
    dec_node *e = dec_find(d, gtrid);
    if (e) {
        if (type == XATM_DL_COMMIT)
            e->info.has_commit = true;
        else
            e->info.has_abort = true;
        e->info.term = TM_TERM_NONE;
        e->info.term_gone_pass = 0;
        if (mixed) {
            e->info.heuristic_mixed = true;
            snprintf(e->info.mixed, sizeof e->info.mixed, "%s", mixed);
        }
        e->info.kind = dec_kind_of(&e->info);
        rc = 0;
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

bool tm_decisions_set_mixed(tm_decisions *d, const char *gtrid, const char *text)
{
    bool first = false;
    pthread_mutex_lock(&d->mu);
    dec_node *e = dec_find(d, gtrid);
    if (e && !e->info.heuristic_mixed) {
        e->info.heuristic_mixed = true;
        snprintf(e->info.mixed, sizeof e->info.mixed, "%s", text);
        first = true;
    }
    pthread_mutex_unlock(&d->mu);
    return first;
}

uint64_t tm_decisions_term_step(tm_decisions *d, const char *gtrid, enum tm_term_step step,
                                uint64_t pass)
{
    uint64_t gone = 0;
    pthread_mutex_lock(&d->mu);
    dec_node *e = dec_find(d, gtrid);
    if (e) {
        e->info.term = step;
        if (step == TM_TERM_WAIT_DEADLINE || step == TM_TERM_WAIT_SESSIONS)
            e->info.term_gone_pass = 0;
        else if (step == TM_TERM_WAIT_SCANS && e->info.term_gone_pass == 0)
            e->info.term_gone_pass = pass;
        gone = e->info.term_gone_pass;
    }
    pthread_mutex_unlock(&d->mu);
    return gone;
}

int tm_decisions_force(tm_decisions *d, const char *gtrid, uint8_t outcome, const char *who,
                       const char *why, const tm_force_origin *origin, uint64_t now_ms)
{
    int rc = 0;
    bool created;
    pthread_mutex_lock(&d->mu);
    dec_node *e = dec_get(d, gtrid, now_ms, &created);
    if (!e) {
        rc = XATM_ENOMEM;
        goto out_unlock;
    }
    if ((rc = dec_heur_add(&e->info, outcome, who, why, false)) != 0) {
        if (created) dec_unlink(d, e);
        goto out_unlock;
    }
    e->info.finished = false;
    if (!e->info.protocol) e->info.protocol = XATM_PROTOCOL_2PC;
    if (origin && !e->info.ap_pid) e->info.ap_pid = origin->ap_pid;
    if (origin && !e->info.deadline_ms) e->info.deadline_ms = origin->deadline_ms;
    if (e->info.n_branches == 0) {
        if (origin && origin->exact && origin->n_branches)
            dec_set_branches(&e->info, origin->branches, origin->n_branches);
        else
            dec_all_rms(d, &e->info);
    }
    /* sessions the origin knows for branches the entry has without one */
    for (unsigned k = 0; origin && k < e->info.n_branches; k++) {
        tm_decision_branch *b = &e->info.branches[k];
        for (unsigned j = 0; j < origin->n_branches && !b->session_id; j++)
            if (strcmp(origin->branches[j].rm, b->rm) == 0)
                b->session_id = origin->branches[j].session_id;
    }
    e->info.kind = dec_kind_of(&e->info);
out_unlock:
    pthread_mutex_unlock(&d->mu);
    return rc;
}

void tm_decisions_force_durable(tm_decisions *d, const char *gtrid)
{
    pthread_mutex_lock(&d->mu);
    dec_node *e = dec_find(d, gtrid);
    if (e) {
        for (unsigned k = 0; k < e->info.n_heur; k++) e->info.heur[k].durable = true;
        e->info.kind = dec_kind_of(&e->info);
    }
    pthread_mutex_unlock(&d->mu);
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
                if (present(e->info.gtrid, rm, arg)) {
                    b->clean_scans = 0;
                    e->info.finished = false; /* a branch came back (e.g. an RM restart) */
                } else if (b->clean_scans < 1000000)
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

int tm_decisions_resolve(tm_decisions *d, const char *gtrid)
{
    int rc = XATM_ENOTFOUND;
    pthread_mutex_lock(&d->mu);
    dec_node *e = dec_find(d, gtrid);
    if (e) {
        if (e->info.n_heur)
            e->info.finished = true;
        else
            dec_unlink(d, e);
        rc = 0;
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
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
    size_t n = 0;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n_buckets; i++)
        for (dec_node *e = d->buckets[i]; e; e = e->next)
            if (!e->info.finished) n++;
    pthread_mutex_unlock(&d->mu);
    return n;
}

size_t tm_decisions_count_heuristic(tm_decisions *d, size_t *unfinished)
{
    size_t n = 0, u = 0;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n_buckets; i++) {
        for (dec_node *e = d->buckets[i]; e; e = e->next) {
            if (!e->info.n_heur) continue;
            n++;
            if (!e->info.finished) u++;
        }
    }
    pthread_mutex_unlock(&d->mu);
    if (unfinished) *unfinished = u;
    return n;
}

size_t tm_decisions_count_mixed(tm_decisions *d)
{
    size_t n = 0;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n_buckets; i++)
        for (dec_node *e = d->buckets[i]; e; e = e->next)
            if (e->info.heuristic_mixed && e->info.n_heur == 0) n++;
    pthread_mutex_unlock(&d->mu);
    return n;
}

const char *tm_decision_kind_name(enum tm_decision_kind k)
{
    switch (k) {
    case TM_DEC_ABORT:
        return "abort";
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

void tm_decisions_answer_vote(tm_decisions *d, const char *gtrid, gtx_vote_result *v)
{
    switch (tm_decisions_kind(d, gtrid)) {
    case TM_DEC_COMMIT:
    case TM_DEC_HEUR_COMMIT:
        v->outcome = XATM_OUTCOME_COMMIT;
        v->error = 0;
        v->reason[0] = '\0';
        break;
    case TM_DEC_HEUR_ROLLBACK:
        v->outcome = XATM_OUTCOME_ABORT;
        v->error = 0;
        snprintf(v->reason, sizeof v->reason, "rolled back by an operator's heuristic decision");
        break;
    case TM_DEC_ABORT:
        v->outcome = XATM_OUTCOME_ABORT;
        v->error = 0;
        snprintf(v->reason, sizeof v->reason, "transaction aborted after PreCommit (ABORT record)");
        break;
    case TM_DEC_PRECOMMIT:
    case TM_DEC_NONE:
        break; /* gtx_vote's answer stands */
    }
}

/* ================================================================== recovery */

#define REC_BACKOFF_MIN_MS 1000u
#define REC_BACKOFF_MAX_MS 60000u
#define REC_WAITS_MAX 1024u /* branches waiting for an AP session remembered for `show` */
#define REC_CALL_TIMEOUT_MS 10000u /* every RM call of recovery's sessions: a server that
                                      does not answer within it is quarantined like a dead
                                      one, so a hung RM never holds up the others */
#define REC_SETTLE_MS 1000u /* a MariaDB branch whose session is unknown is tried only once
                               it has been listed by scans spanning this long */
#define REC_NOTES_MAX 1024u /* log lines remembered from one pass to the next, so a branch's
                               lasting condition is logged once, not at every pass */
#define REC_ENDED_MAX 100000u /* 3PC gtrids waiting for their markers' deletion; beyond,
                                 the markers stay (best effort, docs/protocols.md) */
#define REC_POOL_SESSIONS 16u /* phase-2 sessions per RM at most (its scan session
                                 included): the calls of up to this many transactions are
                                 in flight at once, so each RM group-commits them instead of
                                 one fsync per call (docs/performance.md, "Recovery time") */
#define REC_POOL_PER_SESSION 16u /* a pass opens one extra session on an RM per this many of
                                    its branches to act on (none below it) */
#define REC_DECIDER_LOCK_MS 500u /* how long a decider resolve waits for an uncommitted
                                    decision row before it answers busy */
#define REC_SWEEP_MS 60000u /* decision rows are swept at most this often */
#define REC_SWEEP_BATCH 1000u /* old commit rows looked at per sweep */
#define REC_BATCH_CALLS (XATM_MAX_BRANCHES * 4u) /* phase-2 calls of one batch, at most */

/* One configured RM as recovery sees it. */
typedef struct rec_rm {
    const xatm_rm_config *cfg; /* its config entry */
    xatm_rm_conn *conn;        /* recovery's own session; NULL when closed */
    xatm_rm_conn *extra[REC_POOL_SESSIONS - 1]; /* more phase-2 sessions (rec_pool_open),
                                  open only during a busy rec_act and never without conn;
                                  the first n_extra are open */
    size_t n_extra;            /* open entries of extra */
    bool pool_warned;          /* a failed open of an extra session was logged (once until
                                  the pool is complete again) */
    /* guarded by recovery.mu (read by the event loop for status and list): */
    bool quarantined;          /* unreachable: in back-off */
    char last_error[512];      /* the failure that quarantined it, "" when healthy */
    uint64_t last_scan_ms;     /* monotonic ms of the last successful scan, 0 never */
    uint32_t backoff_ms;       /* current back-off (0 when healthy) */
    uint64_t retry_at_ms;      /* no reconnect before this (monotonic ms) */
    xatm_xid *shown;           /* copy of the latest successful scan, sorted */
    unsigned char *shown_gone; /* per shown entry: finished since (rec_unshow,
                                  recovery_forget_finished); kept in place, so that
                                  dropping a branch costs a lookup, not a memmove */
    size_t n_shown;            /* entries in shown (finished ones included) */
    size_t n_shown_gone;       /* entries marked in shown_gone */
    bool shown_valid;          /* shown is a scan of this RM (false before one, or on OOM) */
    /* pass-thread only: */
    xatm_xid *prev;            /* the previous successful scan, sorted */
    uint64_t *prev_first;      /* per prev entry: when it was first listed (see cur_first) */
    size_t n_prev;             /* entries in prev */
    bool have_prev;            /* prev is a scan of the current session */
    xatm_xid *cur;             /* the scan being made / just made, sorted */
    uint64_t *cur_first;       /* per cur entry: monotonic ms of the start of the first of
                                  the consecutive successful scans that list it */
    size_t n_cur, cap_cur;     /* entries / allocated */
    bool scan_oom;             /* the scan lost a branch to out of memory: it failed */
    uint32_t format_id;        /* our XA formatID (cfg), for rec_collect's check */
    const char *tm_id;         /* our TM id (cfg), for rec_collect's check */
    bool scanned;              /* this pass scanned it successfully */
    uint64_t cur_pass;         /* the pass that made cur (0: none) */
    uint64_t prev_pass;        /* the pass that made prev; 0 when prev is not a scan of the
                                  current session (the termination rule's "two scans") */
    bool markers_ready;        /* xatm_rm_markers_ensure succeeded on this RM */
    bool markers_warned;       /* its failure was logged (once until it succeeds) */
    bool marker_del_warned;    /* a failed marker deletion was logged (once until one works) */
    bool decisions_ready;      /* (the decider's RM) xatm_rm_decisions_ensure succeeded */
    bool decisions_warned;     /* its failure was logged (once until it succeeds) */
    uint64_t swept_ms;         /* (the decider's RM) monotonic ms of the last abort-row sweep */
} rec_rm;

/* A condition logged by a pass (rec_note): logged again only if the previous pass did not
 * log it too. */
typedef struct rec_note_entry {
    char gtrid[XATM_GTRID_MAX + 1]; /* the transaction */
    char rm[XATM_RM_NAME_MAX + 1];  /* the branch */
    int kind;                       /* enum rec_note_kind */
} rec_note_entry;

/* What a note is about. */
enum rec_note_kind {
    REC_NOTE_HELD = 1, /* XAER_NOTA on a branch whose session is unknown: still held */
    REC_NOTE_UNNAMED,  /* a prepared branch on an RM its commit decision does not name */
    REC_NOTE_MARKERS,  /* the marker lookup of a 3PC transaction failed on an RM */
    REC_NOTE_DECIDER,  /* a gtrid could not be resolved at the decider (unreachable, busy) */
};

/* A branch left waiting for its AP's session (what `xatmctl show` reports). */
typedef struct rec_wait_entry {
    char gtrid[XATM_GTRID_MAX + 1]; /* the transaction */
    char rm[XATM_RM_NAME_MAX + 1];  /* the branch */
    recovery_wait w;                /* the session and the fence */
} rec_wait_entry;

struct recovery {
    struct tm_ctx *ctx;       /* the daemon */
    rec_rm *rms;              /* one per cfg->rms entry, same order */
    size_t n_rms;             /* cfg->n_rms */
    pthread_mutex_t mu;       /* rec_rm status fields, the thread controls, the reports and
                                 waits below; a leaf lock (see recovery.h) */
    pthread_cond_t cond;      /* signalled by wake and stop */
    pthread_t thread;         /* the periodic thread */
    bool running;             /* thread started and not joined */
    bool wake;                /* a pass was requested */
    bool retry_now;           /* an operator asked for the pass: reconnect quarantined RMs
                                 without waiting for their back-off */
    atomic_bool stop;         /* the thread must stop (checked inside a pass too) */
    uint64_t passes_started;  /* passes begun since start */
    uint64_t passes_done;     /* passes ended since start */
    recovery_report last;     /* the report of pass passes_done */
    uint64_t fenced_total;    /* AP sessions fenced since start */
    long decider;             /* index of tm.decision_rm's RM, -1 when the option is off */
    rec_wait_entry *waits;    /* branches the last pass left waiting for a session */
    size_t n_waits;           /* entries in waits */
    /* pass-thread only: */
    recovery_report cur_rep;  /* the report being built */
    rec_wait_entry *new_waits; /* waits being collected by the running pass */
    size_t n_new_waits, cap_new_waits; /* used / allocated */
    rec_note_entry *notes;    /* what the previous pass logged (rec_note) */
    size_t n_notes;           /* entries in notes */
    rec_note_entry *new_notes; /* what the running pass logs */
    size_t n_new_notes, cap_new_notes; /* used / allocated */
    bool follow_up;           /* the running pass adopted a decision: run another at once,
                                 so its branches get their second scan without waiting for
                                 the interval */
    /* guarded by mu: gtrids of 3PC transactions that ended (END appended), whose marker
     * rows the next pass deletes (recovery_markers_ended) */
    char (*ended)[XATM_GTRID_MAX + 1]; /* the queue */
    size_t n_ended, cap_ended;         /* used / allocated */
    bool ended_dropped_logged;         /* "queue full" was logged */
};

/* One branch to act on. */
typedef struct rec_work {
    xatm_xid xid;      /* the prepared branch as the RM reported it */
    size_t rm;         /* index of the RM whose scans showed it */
    uint64_t first_ms; /* when the scans began listing it (rec_rm.cur_first) */
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
    r->decider = ctx->cfg->decision_rm ? xatm_config_rm_index(ctx->cfg, ctx->cfg->decision_rm) : -1;
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

/* Closes RM m's extra phase-2 sessions. */
static void rec_pool_close(rec_rm *m)
{
    for (size_t k = 0; k < m->n_extra; k++) xatm_rm_close(m->extra[k]);
    m->n_extra = 0;
}

/* Quarantines RM i after a failure described by msg: closes its sessions, forgets its
 * scans, schedules the reconnect. Logged once per outage. */
static void rec_rm_fail(struct recovery *r, size_t i, const char *msg)
{
    rec_rm *m = &r->rms[i];
    rec_pool_close(m);
    if (m->conn) {
        xatm_rm_close(m->conn);
        m->conn = NULL;
    }
    m->have_prev = false;
    m->scanned = false;
    pthread_mutex_lock(&r->mu);
    bool first = !m->quarantined;
    m->quarantined = true;
    m->shown_valid = false;
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

/* One table xatmd creates on an RM at its first connection (once per run of xatmd): a
 * failure is a warning, logged once until it works; recovery retries at each reconnect. */
typedef struct rec_table {
    const char *what;         /* "the 3PC marker table" */
    const char *name;         /* its SQL name */
    const char *consequence;  /* what goes wrong while it is missing, for the DETAIL */
    int (*ensure)(xatm_rm_conn *c); /* the adapter call that creates it */
} rec_table;

static void rec_table_ensure(rec_rm *m, const rec_table *t, bool *ready, bool *warned)
{
    if (*ready || !m->conn) return;
    int rc = t->ensure(m->conn);
    if (rc == XATM_XA_OK) {
        *ready = true;
        if (*warned)
            tm_log(NULL, NULL, "RM %s: %s %s is now in place", m->cfg->name, t->what, t->name);
        *warned = false;
        return;
    }
    if (*warned) return;
    *warned = true;
    char detail[800];
    snprintf(detail, sizeof detail, "%s (%s). %s", xatm_rm_errmsg(m->conn), xatm_xa_rc_name(rc),
             t->consequence);
    tm_log(detail,
           "Give xatm's RM user the right to create tables in its database, or create the "
           "table by hand (rm-adapters/rm.h shows its layout); xatmd tries again when it "
           "reconnects.",
           "warning: RM %s: cannot create %s %s", m->cfg->name, t->what, t->name);
}

/* The 3PC marker table on RM i. */
static void rec_markers_ensure(struct recovery *r, size_t i)
{
    static const rec_table t = {
        "the 3PC marker table", XATM_MARKER_TABLE,
        "3PC branches on this RM vote no at CanCommit while the table is missing; 2PC is not "
        "affected.",
        xatm_rm_markers_ensure};
    rec_rm *m = &r->rms[i];
    rec_table_ensure(m, &t, &m->markers_ready, &m->markers_warned);
}

/* The decision table on RM i when it is tm.decision_rm's. */
static void rec_decisions_ensure(struct recovery *r, size_t i)
{
    static const rec_table t = {
        "the decision table (tm.decision_rm)", XATM_DECISION_TABLE,
        "Transactions with a branch on this RM fail their decider commit while the table is "
        "missing (they roll back).",
        xatm_rm_decisions_ensure};
    rec_rm *m = &r->rms[i];
    if ((long)i != r->decider) return;
    rec_table_ensure(m, &t, &m->decisions_ready, &m->decisions_warned);
}

/* Makes sure RM i has a session. false when it is in back-off (unless `now`) or the
 * connect failed. */
static bool rec_rm_connect(struct recovery *r, size_t i, bool now)
{
    rec_rm *m = &r->rms[i];
    if (m->conn) return true;
    pthread_mutex_lock(&r->mu);
    bool wait = !now && m->quarantined && tm_now_ms() < m->retry_at_ms;
    bool was_quarantined = m->quarantined;
    pthread_mutex_unlock(&r->mu);
    if (wait) return false;
    char err[1024] = "";
    xatm_rm_open_options opts = {.call_timeout_ms = REC_CALL_TIMEOUT_MS};
    int rc = xatm_rm_open_ex(m->cfg, &opts, &m->conn, err, sizeof err);
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
    rec_markers_ensure(r, i);
    rec_decisions_ensure(r, i);
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

/* Publishes the scan just made for the admin commands (under recovery.mu). */
static void rec_publish_scan(struct recovery *r, rec_rm *m)
{
    pthread_mutex_lock(&r->mu);
    m->last_scan_ms = tm_now_ms();
    xatm_xid *copy = m->n_cur ? malloc(m->n_cur * sizeof *copy) : NULL;
    unsigned char *gone = m->n_cur ? calloc(m->n_cur, 1) : NULL;
    if (m->n_cur && (!copy || !gone)) {
        free(copy);
        free(gone);
        m->shown_valid = false; /* shown as "unknown" rather than wrong */
    } else {
        if (m->n_cur) memcpy(copy, m->cur, m->n_cur * sizeof *copy);
        free(m->shown);
        free(m->shown_gone);
        m->shown = copy;
        m->shown_gone = gone;
        m->n_shown = m->n_cur;
        m->n_shown_gone = 0;
        m->shown_valid = true;
    }
    pthread_mutex_unlock(&r->mu);
}

/* Marks entry k of RM m's published scan finished (recovery.mu held). */
static void rec_shown_drop(rec_rm *m, size_t k)
{
    if (m->shown_gone[k]) return;
    m->shown_gone[k] = 1;
    m->n_shown_gone++;
}

/* Branch x of RM m is finished: drop it from the published scan, which would otherwise
 * show it "prepared" until the next scan. */
static void rec_unshow(struct recovery *r, rec_rm *m, const xatm_xid *x)
{
    pthread_mutex_lock(&r->mu);
    xatm_xid *hit = m->n_shown ? bsearch(x, m->shown, m->n_shown, sizeof *x, xid_cmp) : NULL;
    if (hit) rec_shown_drop(m, (size_t)(hit - m->shown));
    pthread_mutex_unlock(&r->mu);
}

/* Scans RM i (reconnecting it now, back-off or not, when `now`). true on success (m->cur
 * holds the sorted scan, m->prev the one before). */
static bool rec_scan(struct recovery *r, size_t i, bool now)
{
    rec_rm *m = &r->rms[i];
    struct tm_ctx *ctx = r->ctx;
    m->scanned = false;
    if (!rec_rm_connect(r, i, now)) return false;
    /* the last scan becomes the previous one */
    free(m->prev);
    free(m->prev_first);
    m->prev = m->cur;
    m->prev_first = m->cur_first;
    m->n_prev = m->n_cur;
    m->cur = NULL;
    m->cur_first = NULL;
    m->n_cur = m->cap_cur = 0;
    bool had_prev = m->have_prev;
    m->scan_oom = false;
    uint64_t started = tm_now_ms();
    uint64_t mark = ctx->gtx ? gtx_abort_mark(ctx->gtx) : 0;
    int rc = xatm_rm_recover(m->conn, ctx->cfg->format_id, ctx->cfg->tm_id, rec_collect, m);
    if (rc == XATM_XA_OK && m->n_cur && !m->scan_oom) {
        qsort(m->cur, m->n_cur, sizeof *m->cur, xid_cmp);
        m->cur_first = malloc(m->n_cur * sizeof *m->cur_first);
        if (!m->cur_first) m->scan_oom = true;
    }
    for (size_t k = 0; rc == XATM_XA_OK && m->cur_first && k < m->n_cur; k++) {
        const xatm_xid *hit = had_prev && m->n_prev
                                  ? bsearch(&m->cur[k], m->prev, m->n_prev, sizeof *m->prev,
                                            xid_cmp)
                                  : NULL;
        m->cur_first[k] = hit ? m->prev_first[hit - m->prev] : started;
    }
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
    m->have_prev = true;
    if (!had_prev) m->n_prev = 0; /* an old scan from before an outage does not count */
    m->prev_pass = had_prev ? m->cur_pass : 0;
    m->cur_pass = r->cur_rep.pass;
    m->scanned = true;
    rec_publish_scan(r, m);
    tm_decisions_scanned(ctx->decisions, m->cfg->name, rec_present, m);
    if (ctx->gtx)
        gtx_aborts_scanned(ctx->gtx, m->cfg->name, mark, tm_now_ms(), rec_present, m);
    return true;
}

static int rec_adopt_cb(const gtx_info *g, void *arg)
{
    struct tm_ctx *ctx = arg;
    if (g->owner != 0)
        tm_log("Recovery commits its prepared branches; a DONE its application sends later is "
               "ignored.",
               NULL,
               "transaction %s of AP pid %u: commit decided, phase 2 not finished within its "
               "timeout of %u ms; taken over by recovery",
               g->gtrid, g->ap_pid, g->timeout_ms);
    return tm_decisions_adopt(ctx->decisions, g, tm_now_ms());
}

/* Moves COMMITTING transactions whose AP is gone or past its deadline into the registry
 * (under log_mu: see recovery.h). */
static void rec_adopt_orphans(struct recovery *r)
{
    struct tm_ctx *ctx = r->ctx;
    if (!ctx->gtx) return;
    pthread_mutex_lock(&ctx->log_mu);
    size_t n = gtx_take_overdue(ctx->gtx, tm_now_ms(), rec_adopt_cb, ctx);
    pthread_mutex_unlock(&ctx->log_mu);
    if (n) r->follow_up = true; /* their branches are usually seen for the first time now */
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

/* Recovery's plan for one gtrid: the action, and what it knows of the AP that worked it
 * (to wait for, or fence, a MariaDB session still holding a branch). */
typedef struct rec_plan {
    enum rec_action act;                              /* what to do */
    const char *why;                                  /* for the log ("presumed abort"...) */
    unsigned n;                                       /* entries in rm / id */
    char rm[XATM_MAX_BRANCHES][XATM_RM_NAME_MAX + 1]; /* branch RM name */
    uint64_t id[XATM_MAX_BRANCHES];                   /* its AP session id (never 0) */
    uint32_t ap_pid;                                  /* the AP's pid, 0 unknown */
    uint64_t fence_at_ms;                             /* fence a live session from this
                                                         monotonic ms on; 0 = never */
    char fence_why[200];                              /* for the fence's log line */
    bool named_only;                                  /* a commit: only branches on the RMs
                                                         in named may be committed */
    unsigned n_named;                                 /* entries in named */
    char named[XATM_MAX_BRANCHES][XATM_RM_NAME_MAX + 1]; /* the RMs the decision names */
} rec_plan;

static void rec_plan_name(rec_plan *p, const char *rm)
{
    if (p->n_named >= XATM_MAX_BRANCHES) return;
    for (unsigned i = 0; i < p->n_named; i++)
        if (strcmp(p->named[i], rm) == 0) return;
    snprintf(p->named[p->n_named], sizeof p->named[p->n_named], "%s", rm);
    p->n_named++;
}

static bool rec_plan_names(const rec_plan *p, const char *rm)
{
    for (unsigned i = 0; i < p->n_named; i++)
        if (strcmp(p->named[i], rm) == 0) return true;
    return false;
}

static void rec_plan_session(rec_plan *p, const char *rm, uint64_t id)
{
    if (p->n >= XATM_MAX_BRANCHES || id == 0) return;
    for (unsigned i = 0; i < p->n; i++)
        if (strcmp(p->rm[i], rm) == 0) return; /* the first source wins */
    snprintf(p->rm[p->n], sizeof p->rm[p->n], "%s", rm);
    p->id[p->n++] = id;
}

static uint64_t rec_plan_session_of(const rec_plan *p, const char *rm)
{
    for (unsigned i = 0; i < p->n; i++)
        if (strcmp(p->rm[i], rm) == 0) return p->id[i];
    return 0;
}

/* The fence deadline of a registry entry (see tm_decision_info.deadline_ms). */
static uint64_t rec_entry_deadline(const struct recovery *r, const tm_decision_info *e)
{
    if (e->deadline_ms) return e->deadline_ms;
    uint32_t t = r->ctx->cfg->transaction_timeout_ms ? r->ctx->cfg->transaction_timeout_ms : 60000;
    return e->since_ms + t;
}

static bool rec_note(struct recovery *r, enum rec_note_kind kind, const char *gtrid,
                     const char *rm);

/* The decider committed gtrid (its commit row): the COMMIT record naming every configured
 * RM but the decider (the branches were enlisted there; an RM without one simply never
 * lists it) is appended and flushed under log_mu and enters the registry, so the rest of
 * recovery commits the branches as for any COMMIT record. false when it could not be
 * recorded (another decision came meanwhile, or the log failed): leave the gtrid. */
static bool rec_adopt_decided(struct recovery *r, const char *gtrid, const rec_plan *p)
{
    struct tm_ctx *ctx = r->ctx;
    xatm_declog_record rec;
    memset(&rec, 0, sizeof rec);
    rec.type = XATM_DL_COMMIT;
    rec.protocol = XATM_PROTOCOL_2PC;
    snprintf(rec.gtrid, sizeof rec.gtrid, "%s", gtrid);
    for (size_t i = 0; i < r->n_rms && rec.n_branches < XATM_MAX_BRANCHES; i++) {
        if ((long)i == r->decider) continue;
        xatm_declog_branch *b = &rec.branches[rec.n_branches++];
        snprintf(b->rm, sizeof b->rm, "%s", r->rms[i].cfg->name);
        b->session_id = rec_plan_session_of(p, b->rm);
    }
    xatm_fault_hit("tm.recovery_after_resolve");
    pthread_mutex_lock(&ctx->log_mu);
    int rc = 0;
    bool still = tm_decisions_kind(ctx->decisions, gtrid) == TM_DEC_NONE;
    if (still && !atomic_load(&ctx->fatal)) {
        rc = xatm_declog_append(ctx->log, &rec, true);
        if (rc == 0) rc = tm_decisions_replay(ctx->decisions, &rec, tm_now_ms());
        if (rc == 0) rc = xatm_declog_flush(ctx->log);
        if (rc != 0) atomic_store(&ctx->fatal, true);
    }
    pthread_mutex_unlock(&ctx->log_mu);
    if (rc != 0) {
        rec_fatal(r, rc);
        return false;
    }
    return still;
}

/* With tm.decision_rm, before a presumed abort (or a timeout's rollback) of gtrid: asks the
 * decider's RM what its branch decided, making sure it can no longer commit
 * (xatm_rm_decision_resolve: an abort row, unless a row is there):
 *   committed -> a forced COMMIT record (rec_adopt_decided) and p says commit;
 *   aborted   -> p stays as it is (roll back);
 *   busy      -> an open transaction holds the decision row: leave the gtrid; once its
 *                deadline has passed, fence the decider session recorded at ENLIST
 *                (PostgreSQL: pg_terminate_backend), so the next pass sees it rolled back;
 *   an error (RM unreachable) -> leave the gtrid in doubt, logged once, retried.
 * docs/protocols.md, "Decision in a branch", is the rule in prose. */
static void rec_decider_gate(struct recovery *r, const char *gtrid, rec_plan *p)
{
    if (r->decider < 0) return;
    rec_rm *m = &r->rms[r->decider];
    const char *dname = m->cfg->name;
    char msg[800];
    enum xatm_decision d = 0;
    int rc = m->conn ? xatm_rm_decision_resolve(m->conn, gtrid, REC_DECIDER_LOCK_MS, &d)
                     : XATM_XAER_RMFAIL;
    if (rc != XATM_XA_OK) {
        snprintf(msg, sizeof msg, "%s (%s)", m->conn ? xatm_rm_errmsg(m->conn) : "not connected",
                 xatm_xa_rc_name(rc));
        if (m->conn && (rc == XATM_XAER_RMFAIL || !xatm_rm_alive(m->conn)))
            rec_rm_fail(r, (size_t)r->decider, msg);
        if (rec_note(r, REC_NOTE_DECIDER, gtrid, dname))
            tm_log(msg,
                   "The transaction stays in doubt (its prepared branches are neither committed "
                   "nor rolled back) until the decider's RM answers; recovery retries at every "
                   "pass.",
                   "cannot resolve %s at decider RM %s: its outcome is decided there", gtrid,
                   dname);
        p->act = REC_LEAVE;
        return;
    }
    if (d == XATM_DECISION_ABORTED) return;
    if (d == XATM_DECISION_COMMITTED) {
        if (!rec_adopt_decided(r, gtrid, p)) {
            p->act = REC_LEAVE;
            return;
        }
        p->act = REC_COMMIT;
        p->why = "committed by its decider branch (commit row)";
        p->named_only = true;
        p->n_named = 0;
        for (size_t i = 0; i < r->n_rms; i++)
            if ((long)i != r->decider) rec_plan_name(p, r->rms[i].cfg->name);
        snprintf(p->fence_why, sizeof p->fence_why,
                 "committed by its decider branch, phase 2 not finished");
        tm_log(NULL, NULL, "transaction %s: decider RM %s committed it (commit row); COMMIT "
               "record forced, committing its prepared branches", gtrid, dname);
        r->follow_up = true;
        return;
    }
    /* busy: the AP's decider transaction holds the row */
    p->act = REC_LEAVE;
    uint64_t sid = rec_plan_session_of(p, dname);
    uint64_t now = tm_now_ms();
    if (sid == 0 || p->fence_at_ms == 0 || now < p->fence_at_ms) {
        if (rec_note(r, REC_NOTE_DECIDER, gtrid, dname))
            tm_log(sid ? "Recovery waits for it to end, and fences it once the transaction's "
                         "deadline has passed."
                       : "No session of the decider branch is known (xatmd restarted?): "
                         "recovery waits for it to end.",
                   NULL, "transaction %s: its decision row at decider RM %s is held by an "
                   "open transaction (session %llu); left in doubt", gtrid, dname,
                   (unsigned long long)xatm_session_ref_id(sid));
        return;
    }
    char pid[32] = "unknown";
    if (p->ap_pid) snprintf(pid, sizeof pid, "%u", p->ap_pid);
    rc = xatm_rm_fence(m->conn, sid);
    if (rc != XATM_XA_OK) {
        snprintf(msg, sizeof msg, "%s (%s)", xatm_rm_errmsg(m->conn), xatm_xa_rc_name(rc));
        if (rc == XATM_XAER_RMFAIL || !xatm_rm_alive(m->conn))
            rec_rm_fail(r, (size_t)r->decider, msg);
        else
            tm_log(msg, "Recovery tries again at its next pass.",
                   "could not fence session %llu of AP pid %s holding the decision row of %s",
                   (unsigned long long)xatm_session_ref_id(sid), pid, gtrid);
        return;
    }
    tm_log("Its uncommitted decision row is rolled back with it; the next pass decides the "
           "transaction (abort).",
           NULL, "fenced session %llu of AP pid %s on decider RM %s holding the decision row of "
           "%s: %s", (unsigned long long)xatm_session_ref_id(sid), pid, dname, gtrid,
           p->fence_why[0] ? p->fence_why : "its deadline passed");
    r->cur_rep.fenced++;
    r->follow_up = true;
}

static void rec_decide(struct recovery *r, const char *gtrid, rec_plan *p)
{
    struct tm_ctx *ctx = r->ctx;
    uint64_t now = tm_now_ms();
    memset(p, 0, sizeof *p);
    tm_decision_info e;
    enum tm_decision_kind kind = tm_decisions_get(ctx->decisions, gtrid, &e);
    if (kind != TM_DEC_NONE) {
        for (unsigned i = 0; i < e.n_branches; i++)
            rec_plan_session(p, e.branches[i].rm, e.branches[i].session_id);
        p->ap_pid = e.ap_pid;
    }
    if (kind == TM_DEC_HEUR_COMMIT || kind == TM_DEC_HEUR_ROLLBACK) {
        /* the operator's word: the transaction was not live when it was given */
        bool commit = kind == TM_DEC_HEUR_COMMIT;
        p->act = commit ? REC_COMMIT : REC_ROLLBACK;
        p->named_only = commit; /* the COMMIT's branches, else every configured RM */
        for (unsigned i = 0; commit && i < e.n_branches; i++) rec_plan_name(p, e.branches[i].rm);
        p->why = commit ? "heuristic commit" : "heuristic rollback";
        p->fence_at_ms = now;
        const char *who = "";
        for (unsigned k = e.n_heur; k-- > 0 && !*who;)
            if (e.heur[k].durable) who = e.heur[k].who;
        snprintf(p->fence_why, sizeof p->fence_why, "an operator forced its %s (%s)",
                 commit ? "commit" : "rollback", who);
        return;
    }

    gtx_info g;
    memset(&g, 0, sizeof g);
    enum gtx_verdict v = ctx->gtx ? gtx_recovery_verdict(ctx->gtx, gtrid, now, &g) : GTX_V_UNKNOWN;
    if (v != GTX_V_UNKNOWN) {
        for (unsigned i = 0; i < g.n_branches; i++)
            rec_plan_session(p, g.branches[i].rm, g.branches[i].session_id);
        p->ap_pid = g.ap_pid;
        p->fence_at_ms = g.deadline_ms;
    }
    switch (v) {
    case GTX_V_LIVE:
        p->act = REC_LEAVE;
        return;
    case GTX_V_ABORTED_NOW:
        p->act = REC_ROLLBACK;
        p->why = "transaction timed out";
        snprintf(p->fence_why, sizeof p->fence_why, "transaction timed out after %u ms",
                 g.timeout_ms);
        rec_decider_gate(r, gtrid, p);
        if (p->act == REC_ROLLBACK)
            tm_log(NULL, NULL, "transaction %s timed out after %u ms; rolling back its prepared "
                   "branches", gtrid, g.timeout_ms);
        return;
    case GTX_V_COMMIT:
        p->act = REC_COMMIT;
        p->why = "commit decided, its application is gone";
        p->named_only = true;
        for (unsigned i = 0; i < g.n_branches; i++)
            if (g.branches[i].vote == XATM_VOTE_YES) rec_plan_name(p, g.branches[i].rm);
        snprintf(p->fence_why, sizeof p->fence_why,
                 "commit decided, phase 2 not finished within %u ms", g.timeout_ms);
        return;
    case GTX_V_UNKNOWN:
        break;
    }
    switch (kind) {
    case TM_DEC_COMMIT:
        p->act = REC_COMMIT;
        p->why = "commit decision in the log";
        p->named_only = true;
        for (unsigned i = 0; i < e.n_branches; i++) rec_plan_name(p, e.branches[i].rm);
        p->fence_at_ms = rec_entry_deadline(r, &e);
        snprintf(p->fence_why, sizeof p->fence_why,
                 "commit decided, phase 2 not finished within its deadline");
        return;
    case TM_DEC_PRECOMMIT:
        p->act = REC_LEAVE; /* the termination rule (rec_terminate) decides it first */
        return;
    case TM_DEC_ABORT:
        p->act = REC_ROLLBACK;
        p->why = "3PC abort decision (ABORT record)";
        p->fence_at_ms = rec_entry_deadline(r, &e);
        snprintf(p->fence_why, sizeof p->fence_why,
                 "3PC transaction aborted after PreCommit; its deadline passed");
        return;
    default:
        break;
    }
    /* presumed abort; gtx may remember the aborted transaction's sessions */
    p->act = REC_ROLLBACK;
    p->why = "presumed abort";
    gtx_abort_info a;
    if (ctx->gtx && gtx_recent_abort(ctx->gtx, gtrid, &a) == 0) {
        for (unsigned i = 0; i < a.n_branches; i++)
            rec_plan_session(p, a.branches[i].rm, a.branches[i].session_id);
        p->ap_pid = a.ap_pid;
        p->fence_at_ms = a.deadline_ms;
        if (a.cause == GTX_ABORT_TIMEOUT)
            snprintf(p->fence_why, sizeof p->fence_why, "transaction timed out after %u ms",
                     a.timeout_ms);
        else
            snprintf(p->fence_why, sizeof p->fence_why,
                     "transaction %s and its AP did not roll the branch back within its "
                     "timeout of %u ms",
                     gtx_abort_cause_name(a.cause), a.timeout_ms);
    } else if (r->decider >= 0) {
        /* nothing known of it here (xatmd restarted): the decider session cannot be
         * fenced; recovery waits for it */
        p->fence_at_ms = 0;
    }
    rec_decider_gate(r, gtrid, p);
}

/* Remembers that (gtrid, rm) waits for a session (for `show`), pass-thread only. */
static void rec_note_wait(struct recovery *r, const char *gtrid, const char *rm,
                          const recovery_wait *w)
{
    if (r->n_new_waits == r->cap_new_waits) {
        if (r->cap_new_waits >= REC_WAITS_MAX) return;
        size_t cap = r->cap_new_waits ? r->cap_new_waits * 2 : 16;
        rec_wait_entry *x = realloc(r->new_waits, cap * sizeof *x);
        if (!x) return;
        r->new_waits = x;
        r->cap_new_waits = cap;
    }
    rec_wait_entry *e = &r->new_waits[r->n_new_waits++];
    snprintf(e->gtrid, sizeof e->gtrid, "%s", gtrid);
    snprintf(e->rm, sizeof e->rm, "%s", rm);
    e->w = *w;
}

/* Notes that this pass reports (kind, gtrid, rm); true when the previous pass did not, so
 * the caller logs it (a lasting condition is logged once, not at every pass). */
static bool rec_note(struct recovery *r, enum rec_note_kind kind, const char *gtrid,
                     const char *rm)
{
    bool logged_before = false;
    for (size_t i = 0; i < r->n_notes && !logged_before; i++)
        logged_before = r->notes[i].kind == (int)kind && strcmp(r->notes[i].gtrid, gtrid) == 0 &&
                        strcmp(r->notes[i].rm, rm) == 0;
    if (r->n_new_notes == r->cap_new_notes && r->cap_new_notes < REC_NOTES_MAX) {
        size_t cap = r->cap_new_notes ? r->cap_new_notes * 2 : 16;
        rec_note_entry *x = realloc(r->new_notes, cap * sizeof *x);
        if (x) {
            r->new_notes = x;
            r->cap_new_notes = cap;
        }
    }
    if (r->n_new_notes < r->cap_new_notes) {
        rec_note_entry *e = &r->new_notes[r->n_new_notes++];
        snprintf(e->gtrid, sizeof e->gtrid, "%s", gtrid);
        snprintf(e->rm, sizeof e->rm, "%s", rm);
        e->kind = (int)kind;
    }
    return !logged_before;
}

/* Who may still hold a branch, as far as recovery can tell (rec_owner). */
enum rec_owner {
    REC_OWNER_GONE,    /* no session holds it: a phase-2 call from ours is sound */
    REC_OWNER_WAIT,    /* its AP session may hold it, or it has not settled: leave it */
    REC_OWNER_UNKNOWN, /* MariaDB, no session known, settled: try; XAER_NOTA = still held */
};

/* When a MariaDB branch whose session is unknown may be tried: once the scans have listed
 * it for REC_SETTLE_MS, and, for a gtrid of an earlier incarnation, not before start-up +
 * the transaction timeout (an AP of that incarnation may still be attached to it). */
static uint64_t rec_settle_at(const struct recovery *r, const rec_work *w)
{
    const struct tm_ctx *ctx = r->ctx;
    uint64_t at = w->first_ms + REC_SETTLE_MS;
    xatm_gtrid_parts parts;
    if (xatm_gtrid_parse(w->xid.gtrid, &parts) != 0 || parts.epoch < ctx->epoch) {
        uint32_t t = ctx->cfg->transaction_timeout_ms ? ctx->cfg->transaction_timeout_ms : 60000;
        if (ctx->start_mono_ms + t > at) at = ctx->start_mono_ms + t;
    }
    return at;
}

/* May recovery's session run the phase-2 call on this branch now? MariaDB 10.11 answers
 * XAER_NOTA to another session while the owner is connected, and can answer OK and do
 * nothing while it is detaching (docs/rm-facts.md, facts 1-2), so a MariaDB branch waits
 * until the AP session recorded for it is gone (xatm_rm_session_alive == 0: left the
 * process list, InnoDB detached; a session of an earlier run of mariadbd is gone), and
 * that session is fenced when the plan says its transaction is past its deadline. A
 * branch with no known session (none recorded, or one without its server's incarnation)
 * waits for rec_settle_at and is then tried as REC_OWNER_UNKNOWN. */
static enum rec_owner rec_owner(struct recovery *r, const rec_work *w, const rec_plan *p)
{
    rec_rm *m = &r->rms[w->rm];
    if (m->cfg->type != XATM_RM_MYSQL) return REC_OWNER_GONE;
    uint64_t sid = rec_plan_session_of(p, w->xid.bqual);
    if (sid == 0 || xatm_session_ref_tag(sid) == 0) {
        recovery_wait wt = {.ap_pid = p->ap_pid, .owner_unknown = true,
                            .settle_at_ms = rec_settle_at(r, w)};
        if (tm_now_ms() < wt.settle_at_ms) {
            rec_note_wait(r, w->xid.gtrid, w->xid.bqual, &wt);
            return REC_OWNER_WAIT;
        }
        return REC_OWNER_UNKNOWN;
    }
    unsigned long long shown = (unsigned long long)xatm_session_ref_id(sid);
    int alive = xatm_rm_session_alive(m->conn, sid);
    if (alive == 0) return REC_OWNER_GONE;
    char msg[700];
    if (alive < 0) {
        snprintf(msg, sizeof msg, "session check failed (%s): %s", xatm_xa_rc_name(alive),
                 xatm_rm_errmsg(m->conn));
        if (alive == XATM_XAER_RMFAIL || !xatm_rm_alive(m->conn)) rec_rm_fail(r, w->rm, msg);
        return REC_OWNER_WAIT;
    }
    recovery_wait wt = {.session_id = sid, .ap_pid = p->ap_pid, .fenced = false,
                        .fence_at_ms = p->fence_at_ms};
    if (p->fence_at_ms == 0 || tm_now_ms() < p->fence_at_ms) {
        rec_note_wait(r, w->xid.gtrid, w->xid.bqual, &wt);
        return REC_OWNER_WAIT; /* its AP may still finish it */
    }
    char pid[32] = "unknown";
    if (p->ap_pid) snprintf(pid, sizeof pid, "%u", p->ap_pid);
    int rc = xatm_rm_fence(m->conn, sid);
    if (rc != XATM_XA_OK) {
        snprintf(msg, sizeof msg, "%s (%s)", xatm_rm_errmsg(m->conn), xatm_xa_rc_name(rc));
        if (rc == XATM_XAER_RMFAIL || !xatm_rm_alive(m->conn)) {
            rec_rm_fail(r, w->rm, msg);
        } else {
            tm_log(msg, "Recovery tries again at its next pass.",
                   "could not fence MariaDB session %llu of AP pid %s holding branch %s of %s",
                   shown, pid, w->xid.bqual, w->xid.gtrid);
        }
        rec_note_wait(r, w->xid.gtrid, w->xid.bqual, &wt);
        return REC_OWNER_WAIT;
    }
    tm_log("KILL CONNECTION ended the session; its prepared branch is finished at the next "
           "recovery pass.",
           NULL, "fenced MariaDB session %llu of AP pid %s holding branch %s of %s: %s", shown,
           pid, w->xid.bqual, w->xid.gtrid, p->fence_why);
    r->cur_rep.fenced++;
    wt.fenced = true;
    rec_note_wait(r, w->xid.gtrid, w->xid.bqual, &wt);
    return REC_OWNER_WAIT; /* finished at a later pass, once the session is seen gone */
}

/* A commit of a branch on an RM its decision does not name: never committed (see
 * recovery.h), reported once. */
static void rec_unnamed_branch(struct recovery *r, const rec_work *w, const rec_plan *p)
{
    if (!rec_note(r, REC_NOTE_UNNAMED, w->xid.gtrid, w->xid.bqual)) return;
    char names[XATM_MAX_BRANCHES * (XATM_RM_NAME_MAX + 2) + 1] = "";
    size_t off = 0;
    for (unsigned i = 0; i < p->n_named && off < sizeof names; i++) {
        int n = snprintf(names + off, sizeof names - off, "%s%s", i ? ", " : "", p->named[i]);
        if (n > 0) off += (size_t)n;
    }
    char detail[1200];
    snprintf(detail, sizeof detail,
             "The commit decision names only RM%s %s. A branch of the same gtrid on another "
             "RM is not part of that transaction: it comes from an xatmd that issued the same "
             "gtrid again (its decision log was lost or replaced, or another xatmd runs with "
             "the same tm.id). Recovery leaves it prepared and holding its locks, and keeps "
             "the decision until it is finished.",
             p->n_named == 1 ? "" : "s", names[0] ? names : "(none)");
    tm_log(detail,
           "Find the application that wrote it, then finish it by hand on that RM (XA COMMIT "
           "or XA ROLLBACK; COMMIT PREPARED or ROLLBACK PREPARED on PostgreSQL).",
           "anomaly: prepared branch %s of %s not committed: the commit decision does not "
           "name RM %s",
           w->xid.bqual, w->xid.gtrid, w->xid.bqual);
}

/* Step 3a for one branch: may its phase-2 call run now? Sets *owner (rec_owner). */
static bool rec_branch_ready(struct recovery *r, const rec_work *w, const rec_plan *p,
                             enum rec_owner *owner)
{
    rec_rm *m = &r->rms[w->rm];
    if (!m->conn) return false; /* quarantined earlier in this pass */
    if (p->act == REC_COMMIT && p->named_only && !rec_plan_names(p, w->xid.bqual)) {
        rec_unnamed_branch(r, w, p);
        return false;
    }
    *owner = rec_owner(r, w, p);
    if (*owner == REC_OWNER_WAIT) return false;
    return m->conn != NULL;
}

/* Step 3b for one branch: what its phase-2 call, made on session c, answered (rc). true
 * when it is finished. c is NULL when the branch's RM was quarantined after the call
 * answered (by an earlier result of the same batch): a failure is then not reported. */
static bool rec_branch_result(struct recovery *r, const rec_work *w, const rec_plan *p,
                              enum rec_owner owner, int rc, xatm_rm_conn *c)
{
    rec_rm *m = &r->rms[w->rm];
    bool commit = p->act == REC_COMMIT;
    if (rc == XATM_XA_OK) {
        if (commit) xatm_fault_hit("tm.recovery_after_commit");
        tm_log(NULL, NULL, "recovery: %s prepared branch %s of %s (%s)",
               commit ? "committed" : "rolled back", w->xid.bqual, w->xid.gtrid, p->why);
        if (commit)
            r->cur_rep.committed++;
        else
            r->cur_rep.rolled_back++;
        rec_unshow(r, m, &w->xid);
        return true;
    }
    if (rc == XATM_XAER_NOTA && owner == REC_OWNER_UNKNOWN) {
        /* listed by XA RECOVER, "unknown" to us: the session that prepared it is
         * (most likely) still attached to it; it is not finished */
        if (rec_note(r, REC_NOTE_HELD, w->xid.gtrid, w->xid.bqual))
            tm_log("XA RECOVER lists it, and MariaDB answers XAER_NOTA to other sessions "
                   "while the session that prepared it is connected. That session is not "
                   "known to this xatmd (an application of an earlier xatmd incarnation, or "
                   "one whose session id was not recorded), so it cannot be waited for or "
                   "fenced. Recovery tries again at every pass.",
                   "If it stays prepared, find the session (information_schema.PROCESSLIST) "
                   "and end its application, or KILL CONNECTION it.",
                   "recovery: branch %s of %s not finished yet: its session may still hold it "
                   "(%s answered XAER_NOTA)",
                   w->xid.bqual, w->xid.gtrid, commit ? "XA COMMIT" : "XA ROLLBACK");
        recovery_wait wt = {.ap_pid = p->ap_pid, .owner_unknown = true,
                            .settle_at_ms = tm_now_ms()};
        rec_note_wait(r, w->xid.gtrid, w->xid.bqual, &wt);
        return false;
    }
    if (rc == XATM_XAER_NOTA) {
        if (!commit || tm_decisions_note_nota(r->ctx->decisions, w->xid.gtrid, w->xid.bqual))
            tm_log(NULL, NULL, "recovery: branch %s of %s was already %s (XAER_NOTA)",
                   w->xid.bqual, w->xid.gtrid, commit ? "committed" : "rolled back");
        r->cur_rep.already_done++;
        rec_unshow(r, m, &w->xid);
        return true;
    }
    if (!c) return false; /* its RM is quarantined: retried once it is reachable again */
    char msg[900];
    snprintf(msg, sizeof msg, "%s failed (%s): %s", commit ? "XA COMMIT" : "XA ROLLBACK",
             xatm_xa_rc_name(rc), xatm_rm_errmsg(c));
    if (rc == XATM_XAER_RMFAIL || !xatm_rm_alive(c)) {
        rec_rm_fail(r, w->rm, msg);
    } else {
        tm_log("The branch stays prepared; recovery retries it at its next pass.", NULL,
               "recovery: could not %s branch %s of %s: %s", commit ? "commit" : "roll back",
               w->xid.bqual, w->xid.gtrid, msg);
    }
    return false;
}

/* Opens extra phase-2 sessions on RM i until it has `want` (at most REC_POOL_SESSIONS - 1),
 * bounded like its scan session. A failure is no outage (the scan session has just
 * answered): recovery goes on with the sessions it has, logs it once, and tries again at
 * the next busy pass. */
static void rec_pool_open(struct recovery *r, size_t i, size_t want)
{
    rec_rm *m = &r->rms[i];
    if (want > REC_POOL_SESSIONS - 1) want = REC_POOL_SESSIONS - 1;
    while (m->conn && m->n_extra < want) {
        char err[1024] = "";
        xatm_rm_open_options opts = {.call_timeout_ms = REC_CALL_TIMEOUT_MS};
        xatm_rm_conn *c = NULL;
        int rc = xatm_rm_open_ex(m->cfg, &opts, &c, err, sizeof err);
        if (rc != XATM_XA_OK || !c) {
            if (!err[0]) snprintf(err, sizeof err, "connect failed (%s)", xatm_xa_rc_name(rc));
            if (!m->pool_warned)
                tm_log("Recovery finishes the branches on the sessions it has, more slowly.",
                       "Check the server's connection limit (PostgreSQL, MariaDB: "
                       "max_connections).",
                       "recovery: RM %s: cannot open another phase-2 session (%zu open): %s",
                       m->cfg->name, m->n_extra + 1, err);
            m->pool_warned = true;
            return;
        }
        m->extra[m->n_extra++] = c;
    }
    if (m->conn) m->pool_warned = false;
}

/* Phase-2 session k of RM m: 0 is its scan session, then the extra ones; NULL beyond. */
static xatm_rm_conn *rec_session(const rec_rm *m, size_t k)
{
    if (k == 0) return m->conn;
    return m->conn && k - 1 < m->n_extra ? m->extra[k - 1] : NULL;
}

/* One transaction of a batch (rec_finish_batch). */
typedef struct rec_group {
    const rec_work *w; /* its branches (consecutive in rec_act's sorted list) */
    size_t n;          /* how many */
    const rec_plan *p; /* what to do with them */
} rec_group;

/* Finishes the branches of ng transactions (each with its plan; REC_BATCH_CALLS branches
 * at most in all) whose phase-2 calls may run now. The calls run at once
 * (xatm_rm_run_parallel, bounded like every recovery call), each on its own session of its
 * RM (rec_session: the scan session, then the pool's), so a batch costs about one RM
 * round trip and the RMs group-commit it; a branch whose RM has no free session left in
 * a round goes in the next round. An RM quarantined by a session check loses the calls
 * given out on it in that round (retried at a later pass); one quarantined by a result
 * keeps the results of the calls already made on it. The fault points keep their meaning
 * per branch: before_commit/before_rollback before each call is issued, between_branches
 * once per transaction with more than one call in the round, once the calls have answered
 * and before their results are recorded, after_commit after each successful commit.
 * Returns how many branches it finished. */
static size_t rec_finish_batch(struct recovery *r, const rec_group *g, size_t ng)
{
    const rec_work *w[REC_BATCH_CALLS];
    size_t grp[REC_BATCH_CALLS];
    bool todo[REC_BATCH_CALLS];
    size_t n = 0, done = 0;
    if (ng > REC_POOL_SESSIONS) ng = REC_POOL_SESSIONS; /* rec_act's batches are never larger */
    for (size_t k = 0; k < ng; k++)
        for (size_t j = 0; j < g[k].n && n < REC_BATCH_CALLS; j++) {
            w[n] = &g[k].w[j];
            grp[n] = k;
            todo[n++] = true;
        }
    for (;;) {
        xatm_rm_conn *conns[REC_BATCH_CALLS];
        enum xatm_rm_op ops[REC_BATCH_CALLS];
        xatm_xid xids[REC_BATCH_CALLS];
        enum rec_owner owners[REC_BATCH_CALLS];
        int rc[REC_BATCH_CALLS];
        size_t ready = 0;
        for (size_t j = 0; j < n; j++) {
            conns[j] = NULL;
            if (!todo[j]) continue;
            size_t taken = 0; /* sessions of its RM given out in this round */
            for (size_t i = 0; i < j; i++) taken += conns[i] && w[i]->rm == w[j]->rm;
            if (r->rms[w[j]->rm].conn && !rec_session(&r->rms[w[j]->rm], taken))
                continue; /* every session of its RM is taken in this round: the next one */
            todo[j] = false;
            if (atomic_load(&r->stop) || atomic_load(&r->ctx->fatal)) continue;
            if (!rec_branch_ready(r, w[j], g[grp[j]].p, &owners[j])) continue;
            conns[j] = rec_session(&r->rms[w[j]->rm], taken);
            ops[j] = g[grp[j]].p->act == REC_COMMIT ? XATM_RM_OP_COMMIT : XATM_RM_OP_ROLLBACK;
            xids[j] = w[j]->xid;
            rc[j] = XATM_XAER_RMFAIL;
        }
        /* a session check that quarantined an RM closed the sessions given out before it */
        size_t calls[REC_POOL_SESSIONS] = {0};
        for (size_t j = 0; j < n; j++) {
            if (!conns[j]) continue;
            if (!r->rms[w[j]->rm].conn) {
                conns[j] = NULL;
                continue;
            }
            calls[grp[j]]++;
            ready++;
        }
        if (ready) {
            for (size_t j = 0; j < n; j++)
                if (conns[j])
                    xatm_fault_hit(ops[j] == XATM_RM_OP_COMMIT ? "tm.recovery_before_commit"
                                                               : "tm.recovery_before_rollback");
            xatm_rm_run_parallel(conns, ops, xids, rc, n, REC_CALL_TIMEOUT_MS);
            for (size_t k = 0; k < ng; k++)
                if (calls[k] > 1) xatm_fault_hit("tm.recovery_between_branches");
            for (size_t j = 0; j < n; j++) {
                if (!conns[j]) continue;
                /* an earlier result may have quarantined the RM, closing this session */
                xatm_rm_conn *c = r->rms[w[j]->rm].conn ? conns[j] : NULL;
                if (rec_branch_result(r, w[j], g[grp[j]].p, owners[j], rc[j], c)) done++;
            }
        }
        bool more = false;
        for (size_t j = 0; j < n; j++) more = more || todo[j];
        if (!more) break;
    }
    return done;
}

/* Step 3: act on the branches seen by two consecutive scans, in batches of up to
 * REC_POOL_SESSIONS transactions (rec_finish_batch). An RM gets one extra phase-2 session
 * per REC_POOL_PER_SESSION of them it lists (up to REC_POOL_SESSIONS - 1), for this step
 * only: they are closed at its end, so no server connection is held between passes. On
 * an RM with fewer, the calls go in turn on its scan session. */
static size_t rec_act(struct recovery *r)
{
    size_t n = 0, cap = 0, done = 0, seen = 0;
    rec_work *w = NULL;
    rec_plan *plans = NULL;
    for (size_t i = 0; i < r->n_rms; i++) {
        rec_rm *m = &r->rms[i];
        if (!m->scanned) continue;
        seen += m->n_cur;
        size_t mine = 0;
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
            w[n].first_ms = m->cur_first ? m->cur_first[k] : tm_now_ms();
            n++;
            mine++;
        }
        if (mine >= REC_POOL_PER_SESSION) rec_pool_open(r, i, mine / REC_POOL_PER_SESSION);
    }
    if (!n) goto out_free;
    plans = malloc(REC_POOL_SESSIONS * sizeof *plans);
    if (!plans) goto out_free; /* retried at the next pass */
    qsort(w, n, sizeof *w, work_cmp);
    for (size_t k = 0; k < n && !atomic_load(&r->stop) && !atomic_load(&r->ctx->fatal);) {
        rec_group g[REC_POOL_SESSIONS];
        size_t ng = 0, calls = 0;
        while (k < n && ng < REC_POOL_SESSIONS && !atomic_load(&r->stop)) {
            size_t end = k + 1;
            while (end < n && strcmp(w[end].xid.gtrid, w[k].xid.gtrid) == 0) end++;
            /* a transaction's branches beyond REC_BATCH_CALLS: the next pass */
            size_t cnt = end - k < REC_BATCH_CALLS ? end - k : REC_BATCH_CALLS;
            if (ng && calls + cnt > REC_BATCH_CALLS) break; /* it opens the next batch */
            rec_decide(r, w[k].xid.gtrid, &plans[ng]);
            if (plans[ng].act != REC_LEAVE) {
                g[ng] = (rec_group){.w = &w[k], .n = cnt, .p = &plans[ng]};
                ng++;
                calls += cnt;
            }
            k = end;
        }
        if (ng) done += rec_finish_batch(r, g, ng);
    }
out_free:
    for (size_t i = 0; i < r->n_rms; i++) rec_pool_close(&r->rms[i]);
    free(plans);
    free(w);
    r->cur_rep.left = seen > done ? (unsigned)(seen - done) : 0;
    return done;
}

/* A resolution candidate: a decision whose branches all had two clean scans. */
typedef struct rec_candidates {
    struct recovery *r;     /* for RM lookups */
    tm_decision_info *v;    /* candidates */
    size_t n, cap;          /* used / allocated */
} rec_candidates;

/* A heuristic mixed outcome stays unresolved (and visible) until an operator records an
 * outcome for it (a heuristic record). */
static bool rec_mixed_open(const tm_decision_info *e)
{
    return e->heuristic_mixed && e->n_heur == 0;
}

static void rec_collect_candidate(const tm_decision_info *e, void *arg)
{
    rec_candidates *c = arg;
    if (e->kind == TM_DEC_PRECOMMIT || e->kind == TM_DEC_NONE || e->finished) return;
    if (rec_mixed_open(e)) return;
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
        /* no session, or one without its server's incarnation (which could name an
         * unrelated connection of a later run): nothing to wait for */
        if (b->session_id == 0 || xatm_session_ref_tag(b->session_id) == 0) continue;
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

/* Is gtrid still a resolution candidate (rec_collect_candidate's test, re-made under
 * log_mu right before its END is appended)? */
static bool rec_still_resolvable(tm_decisions *d, const char *gtrid)
{
    tm_decision_info e;
    if (tm_decisions_get(d, gtrid, &e) == TM_DEC_NONE) return false;
    if (e.kind == TM_DEC_PRECOMMIT || e.finished || rec_mixed_open(&e)) return false;
    for (unsigned k = 0; k < e.n_branches; k++)
        if (e.branches[k].clean_scans < 2) return false;
    return true;
}

/* Collects the RMs whose committed marker rows xatm_rm_markers_find reports. */
typedef struct rec_marked {
    const tm_decision_info *e;        /* the decision */
    bool marked[XATM_MAX_BRANCHES];   /* per branch of e: a committed marker exists */
} rec_marked;

static void rec_marker_cb(const char *rm, void *arg)
{
    rec_marked *mk = arg;
    for (unsigned k = 0; k < mk->e->n_branches; k++)
        if (strcmp(mk->e->branches[k].rm, rm) == 0) mk->marked[k] = true;
}

/* Looks up the committed marker rows of e's gtrid on the RM of every branch of e (3PC:
 * docs/protocols.md, "Marker rows"). 0 and mk filled, or an XA error (an RM unreachable
 * or the lookup failed: logged once; the caller retries at a later pass). */
static int rec_markers(struct recovery *r, const tm_decision_info *e, rec_marked *mk)
{
    memset(mk, 0, sizeof *mk);
    mk->e = e;
    for (unsigned k = 0; k < e->n_branches; k++) {
        int i = xatm_config_rm_index(r->ctx->cfg, e->branches[k].rm);
        if (i < 0) return XATM_XAER_INVAL;
        rec_rm *m = &r->rms[i];
        if (!m->conn) return XATM_XAER_RMFAIL;
        int rc = xatm_rm_markers_find(m->conn, e->gtrid, rec_marker_cb, mk);
        if (rc == XATM_XA_OK) continue;
        char msg[700];
        snprintf(msg, sizeof msg, "marker lookup failed (%s): %s", xatm_xa_rc_name(rc),
                 xatm_rm_errmsg(m->conn));
        if (rc == XATM_XAER_RMFAIL || !xatm_rm_alive(m->conn)) {
            rec_rm_fail(r, (size_t)i, msg);
        } else if (rec_note(r, REC_NOTE_MARKERS, e->gtrid, m->cfg->name)) {
            tm_log("Recovery cannot tell whether that branch committed; it tries again at "
                   "every pass.",
                   "Check that the table " XATM_MARKER_TABLE " exists on that RM and that "
                   "xatm's RM user may read it.",
                   "recovery: 3PC transaction %s: cannot read its marker rows on RM %s: %s",
                   e->gtrid, m->cfg->name, msg);
        }
        return rc;
    }
    return 0;
}

/* "committed: a, b; <other>c" for e's branches by mk ("none" for an empty list). */
static void rec_mixed_text(const tm_decision_info *e, const rec_marked *mk, const char *other,
                           char *out, size_t size)
{
    char yes[XATM_MAX_BRANCHES * (XATM_RM_NAME_MAX + 2) + 1] = "";
    char no[sizeof yes] = "";
    for (unsigned k = 0; k < e->n_branches; k++) {
        char *l = mk->marked[k] ? yes : no;
        size_t len = strlen(l);
        snprintf(l + len, sizeof yes - len, "%s%s", len ? ", " : "", e->branches[k].rm);
    }
    snprintf(out, size, "committed: %s; %s%s", yes[0] ? yes : "none", other,
             no[0] ? no : "none");
}

/* Before the END of a resolved 3PC decision: its marker rows must agree with it (a
 * COMMIT: every branch it names committed; an ABORT: none). A disagreement is a heuristic
 * mixed outcome: logged once, kept unresolved and shown (docs/protocols.md). true when
 * the END may be written. */
static bool rec_markers_agree(struct recovery *r, const tm_decision_info *e)
{
    if (e->protocol != XATM_PROTOCOL_3PC || e->n_heur) return true;
    if (e->kind != TM_DEC_COMMIT && e->kind != TM_DEC_ABORT) return true;
    rec_marked mk;
    if (rec_markers(r, e, &mk) != 0) return false;
    bool commit = e->kind == TM_DEC_COMMIT;
    bool agree = true;
    for (unsigned k = 0; k < e->n_branches; k++)
        if (mk.marked[k] != commit) agree = false;
    if (agree) return true;
    char text[256];
    rec_mixed_text(e, &mk, commit ? "lost (neither prepared nor committed): "
                                  : "rolled back: ",
                   text, sizeof text);
    if (tm_decisions_set_mixed(r->ctx->decisions, e->gtrid, text)) {
        char detail[700];
        snprintf(detail, sizeof detail,
                 "xatmd's decision was %s (%s record), but the marker rows say %s. %s The "
                 "transaction stays listed (xatmctl list: \"heuristic_mixed\": true) until "
                 "an operator records its outcome.",
                 commit ? "commit" : "abort", commit ? "COMMIT" : "ABORT", text,
                 commit ? "A branch was lost before it prepared."
                        : "A participant committed on its own at its participant timeout "
                          "(tm.participant_timeout_action: commit) although xatmd aborted.");
        tm_log(detail,
               "Repair the data by hand on the RMs, then record the outcome: xatmctl "
               "rollback|commit GTRID --reason TEXT (docs/operations.md, \"Heuristic mixed\").",
               "heuristic mixed outcome of 3PC transaction %s: %s", e->gtrid, text);
    }
    return false;
}

/* true when the latest scan of an RM scanned this pass lists a branch of gtrid, whatever
 * its RM name: a commit decision is not closed while a branch on an RM it does not name
 * is prepared (rec_unnamed_branch), or that branch would then be taken for a presumed
 * abort and rolled back, and the anomaly would no longer be reported. */
static bool rec_gtrid_listed(const struct recovery *r, const char *gtrid)
{
    for (size_t i = 0; i < r->n_rms; i++) {
        const rec_rm *m = &r->rms[i];
        if (!m->scanned) continue;
        size_t lo = 0, hi = m->n_cur; /* first entry whose gtrid is >= gtrid */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(m->cur[mid].gtrid, gtrid) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < m->n_cur && strcmp(m->cur[lo].gtrid, gtrid) == 0) return true;
    }
    return false;
}

/* Step 4: appends END for every decision that is finished everywhere. */
static void rec_resolve(struct recovery *r)
{
    struct tm_ctx *ctx = r->ctx;
    rec_candidates c = {.r = r};
    tm_decisions_foreach(ctx->decisions, rec_collect_candidate, &c);
    size_t ended = 0;
    for (size_t k = 0; k < c.n && !atomic_load(&ctx->fatal); k++) {
        if (rec_gtrid_listed(r, c.v[k].gtrid)) continue;
        if (!rec_sessions_gone(r, &c.v[k])) continue;
        if (!rec_markers_agree(r, &c.v[k])) continue;
        xatm_declog_record rec;
        memset(&rec, 0, sizeof rec);
        rec.type = XATM_DL_END;
        snprintf(rec.gtrid, sizeof rec.gtrid, "%s", c.v[k].gtrid);
        xatm_fault_hit("tm.before_end");
        /* under log_mu, so a rotation (inside a flush) sees the decision either still in
         * the registry or with its END appended: append first, and forget the decision
         * only once the END is in the log's buffer; a failed append leaves the decision
         * where it was and stops the daemon before anyone can flush (tm_log_flush refuses
         * once ctx->fatal is set, and it is set before log_mu is released) */
        pthread_mutex_lock(&ctx->log_mu);
        int rc = 0;
        bool still = rec_still_resolvable(ctx->decisions, rec.gtrid);
        if (still) rc = xatm_declog_append(ctx->log, &rec, false);
        if (still && rc == 0) (void)tm_decisions_resolve(ctx->decisions, rec.gtrid);
        if (rc != 0) atomic_store(&ctx->fatal, true);
        pthread_mutex_unlock(&ctx->log_mu);
        if (rc != 0) {
            rec_fatal(r, rc);
            break;
        }
        if (!still) continue; /* changed since it was collected (an operator's outcome) */
        ended++;
        if (c.v[k].protocol == XATM_PROTOCOL_3PC) recovery_markers_ended(r, rec.gtrid);
        if (c.v[k].n_heur)
            tm_log("The heuristic decision stays on record (xatmctl list --all, show).", NULL,
                   "recovery: heuristic decision %s finished: every branch is finished",
                   rec.gtrid);
        else
            tm_log(NULL, NULL, "recovery: decision %s resolved: every branch is finished",
                   rec.gtrid);
    }
    free(c.v);
    r->cur_rep.resolved = (unsigned)ended;
    if (ended && !atomic_load(&ctx->fatal)) {
        int rc = tm_log_flush(ctx);
        if (rc != 0) rec_fatal(r, rc);
    }
}

/* ------------------------------------------------------------------ termination rule */

/* Collects the PRECOMMIT decisions (copies) for rec_terminate. */
static void rec_collect_precommit(const tm_decision_info *e, void *arg)
{
    rec_candidates *c = arg;
    if (e->kind != TM_DEC_PRECOMMIT) return;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 8;
        tm_decision_info *x = realloc(c->v, nc * sizeof *x);
        if (!x) return; /* retried at the next pass */
        c->v = x;
        c->cap = nc;
    }
    c->v[c->n++] = *e;
}

/* The termination rule's session step: true when no recorded MariaDB session of e is
 * connected any more; a live one is fenced (its deadline has passed), and then a pass
 * follows at once to see it gone. */
static bool rec_term_sessions(struct recovery *r, const tm_decision_info *e)
{
    bool gone = true;
    for (unsigned k = 0; k < e->n_branches; k++) {
        const tm_decision_branch *b = &e->branches[k];
        if (b->session_id == 0 || xatm_session_ref_tag(b->session_id) == 0) continue;
        int i = xatm_config_rm_index(r->ctx->cfg, b->rm);
        if (i < 0) return false;
        rec_rm *m = &r->rms[i];
        if (m->cfg->type != XATM_RM_MYSQL) continue;
        if (!m->conn) {
            gone = false;
            continue;
        }
        int alive = xatm_rm_session_alive(m->conn, b->session_id);
        if (alive == 0) continue;
        gone = false;
        char msg[700];
        if (alive < 0) {
            snprintf(msg, sizeof msg, "session check failed (%s): %s", xatm_xa_rc_name(alive),
                     xatm_rm_errmsg(m->conn));
            if (alive == XATM_XAER_RMFAIL || !xatm_rm_alive(m->conn))
                rec_rm_fail(r, (size_t)i, msg);
            continue;
        }
        unsigned long long shown = (unsigned long long)xatm_session_ref_id(b->session_id);
        char pid[32] = "unknown";
        if (e->ap_pid) snprintf(pid, sizeof pid, "%u", e->ap_pid);
        int rc = xatm_rm_fence(m->conn, b->session_id);
        if (rc != XATM_XA_OK) {
            snprintf(msg, sizeof msg, "%s (%s)", xatm_rm_errmsg(m->conn), xatm_xa_rc_name(rc));
            if (rc == XATM_XAER_RMFAIL || !xatm_rm_alive(m->conn))
                rec_rm_fail(r, (size_t)i, msg);
            else
                tm_log(msg, "Recovery tries again at its next pass.",
                       "could not fence MariaDB session %llu of AP pid %s (branch %s of %s)",
                       shown, pid, b->rm, e->gtrid);
            continue;
        }
        tm_log("The termination rule decides the transaction once its sessions are gone and "
               "two scans agree.",
               NULL,
               "fenced MariaDB session %llu of AP pid %s (branch %s of %s): 3PC PRECOMMIT "
               "without an outcome, its deadline passed",
               shown, pid, b->rm, e->gtrid);
        r->cur_rep.fenced++;
        r->follow_up = true;
    }
    return gone;
}

/* The termination rule for one PRECOMMIT decision (docs/protocols.md): deadline, sessions
 * gone (fenced), two consecutive scans begun after that agreeing on every branch, the
 * marker rows; then COMMIT or ABORT is forced and it is an ordinary decision. */
static void rec_terminate_one(struct recovery *r, const tm_decision_info *e)
{
    struct tm_ctx *ctx = r->ctx;
    tm_decisions *d = ctx->decisions;
    uint64_t pass = r->cur_rep.pass;
    if (tm_now_ms() < rec_entry_deadline(r, e)) {
        tm_decisions_term_step(d, e->gtrid, TM_TERM_WAIT_DEADLINE, pass);
        return;
    }
    if (!rec_term_sessions(r, e)) {
        tm_decisions_term_step(d, e->gtrid, TM_TERM_WAIT_SESSIONS, pass);
        return;
    }
    uint64_t gone_pass = tm_decisions_term_step(d, e->gtrid, TM_TERM_WAIT_SCANS, pass);
    bool prepared[XATM_MAX_BRANCHES] = {false};
    for (unsigned k = 0; k < e->n_branches; k++) {
        int i = xatm_config_rm_index(ctx->cfg, e->branches[k].rm);
        if (i < 0) return; /* reported at start-up (rec_check_names) */
        const rec_rm *m = &r->rms[i];
        if (!m->scanned || m->prev_pass == 0 || m->prev_pass <= gone_pass) {
            if (m->scanned) r->follow_up = true; /* the next pass brings the second scan */
            return;
        }
        xatm_xid x;
        memset(&x, 0, sizeof x);
        snprintf(x.gtrid, sizeof x.gtrid, "%s", e->gtrid);
        snprintf(x.bqual, sizeof x.bqual, "%s", e->branches[k].rm);
        bool in_cur = xid_in(m->cur, m->n_cur, &x), in_prev = xid_in(m->prev, m->n_prev, &x);
        if (in_cur != in_prev) {
            r->follow_up = true; /* the scans disagree: wait until two agree */
            return;
        }
        prepared[k] = in_cur;
    }
    rec_marked mk;
    if (rec_markers(r, e, &mk) != 0) {
        tm_decisions_term_step(d, e->gtrid, TM_TERM_WAIT_MARKERS, pass);
        return;
    }
    unsigned marked = 0, lost = 0;
    for (unsigned k = 0; k < e->n_branches; k++) {
        if (mk.marked[k])
            marked++;
        else if (!prepared[k])
            lost++;
    }
    bool commit = lost == 0 || marked > 0;
    char mixed[256] = "";
    if (lost && marked)
        rec_mixed_text(e, &mk, "lost (neither prepared nor committed): ", mixed, sizeof mixed);

    xatm_declog_record rec;
    memset(&rec, 0, sizeof rec);
    rec.type = commit ? XATM_DL_COMMIT : XATM_DL_ABORT;
    snprintf(rec.gtrid, sizeof rec.gtrid, "%s", e->gtrid);
    rec.protocol = XATM_PROTOCOL_3PC;
    for (unsigned k = 0; k < e->n_branches; k++) {
        snprintf(rec.branches[k].rm, sizeof rec.branches[k].rm, "%s", e->branches[k].rm);
        rec.branches[k].session_id = e->branches[k].session_id;
    }
    rec.n_branches = e->n_branches;
    /* under log_mu: re-checked (an operator may have forced an outcome meanwhile),
     * appended, the registry updated, flushed; it steers recovery from the next pass on */
    pthread_mutex_lock(&ctx->log_mu);
    int rc = 0;
    bool still = tm_decisions_kind(d, e->gtrid) == TM_DEC_PRECOMMIT;
    if (still && !atomic_load(&ctx->fatal)) {
        rc = xatm_declog_append(ctx->log, &rec, true);
        if (rc == 0) (void)tm_decisions_decide(d, e->gtrid, rec.type, mixed[0] ? mixed : NULL);
        if (rc == 0) rc = xatm_declog_flush(ctx->log);
        if (rc != 0) atomic_store(&ctx->fatal, true);
    }
    pthread_mutex_unlock(&ctx->log_mu);
    if (rc != 0) {
        rec_fatal(r, rc);
        return;
    }
    if (!still) return;
    r->follow_up = true; /* act on the decision at once */
    unsigned n_prep = 0;
    for (unsigned k = 0; k < e->n_branches; k++) n_prep += prepared[k];
    char detail[400];
    snprintf(detail, sizeof detail,
             "%u branch%s prepared, %u with a committed marker row, %u neither, of %u.",
             n_prep, n_prep == 1 ? "" : "es", marked, lost, (unsigned)e->n_branches);
    if (mixed[0])
        tm_log(detail,
               "Repair the data of the lost branch by hand, then record the outcome: xatmctl "
               "commit GTRID --reason TEXT (docs/operations.md, \"Heuristic mixed\").",
               "heuristic mixed outcome of 3PC transaction %s: %s; termination rule: commit "
               "(COMMIT record forced)",
               e->gtrid, mixed);
    else
        tm_log(detail, NULL,
               "termination rule: 3PC transaction %s: %s (%s record forced)", e->gtrid,
               commit ? "commit: every branch is prepared or committed"
                      : "abort: a branch is neither prepared nor committed",
               commit ? "COMMIT" : "ABORT");
}

/* Step 3b: the termination rule for every PRECOMMIT decision. */
static void rec_terminate(struct recovery *r)
{
    rec_candidates c = {.r = r};
    tm_decisions_foreach(r->ctx->decisions, rec_collect_precommit, &c);
    for (size_t k = 0; k < c.n && !atomic_load(&r->stop) && !atomic_load(&r->ctx->fatal); k++)
        rec_terminate_one(r, &c.v[k]);
    free(c.v);
}

void recovery_forget_finished(struct recovery *r, const char *gtrid)
{
    if (!r || !gtrid) return;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_rms; i++) {
        rec_rm *m = &r->rms[i];
        size_t lo = 0, hi = m->n_shown; /* shown is sorted by gtrid, then bqual */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(m->shown[mid].gtrid, gtrid) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t k = lo; k < m->n_shown && strcmp(m->shown[k].gtrid, gtrid) == 0; k++)
            rec_shown_drop(m, k);
    }
    pthread_mutex_unlock(&r->mu);
}

void recovery_markers_ended(struct recovery *r, const char *gtrid)
{
    if (!r || !gtrid) return;
    pthread_mutex_lock(&r->mu);
    if (r->n_ended == r->cap_ended) {
        size_t cap = r->cap_ended ? r->cap_ended * 2 : 256;
        void *x = cap <= REC_ENDED_MAX ? realloc(r->ended, cap * sizeof *r->ended) : NULL;
        if (!x) {
            bool log = !r->ended_dropped_logged;
            r->ended_dropped_logged = true;
            pthread_mutex_unlock(&r->mu);
            if (log)
                tm_log("Their marker rows stay in " XATM_MARKER_TABLE " (harmless: a gtrid is "
                       "never reused); they can be deleted by hand.",
                       NULL, "recovery: too many ended 3PC transactions waiting for their "
                             "marker rows to be deleted; some are skipped");
            return;
        }
        r->ended = x;
        r->cap_ended = cap;
    }
    snprintf(r->ended[r->n_ended++], sizeof r->ended[0], "%s", gtrid);
    pthread_mutex_unlock(&r->mu);
}

/* Step 5: deletes the marker rows of the 3PC transactions that ended since the last pass,
 * on every reachable RM whose marker table exists (best effort: a failure is logged once
 * per RM until a deletion works again, and those rows stay). */
static void rec_markers_cleanup(struct recovery *r)
{
    pthread_mutex_lock(&r->mu);
    char (*batch)[XATM_GTRID_MAX + 1] = r->ended;
    size_t n = r->n_ended;
    r->ended = NULL;
    r->n_ended = r->cap_ended = 0;
    r->ended_dropped_logged = false;
    pthread_mutex_unlock(&r->mu);
    if (!n) {
        free(batch);
        return;
    }
    /* An END is not forced, and the marker rows are the only evidence that a 3PC branch
     * committed once it left the RM's prepared list: deleted before the END is on disk, a
     * crash would bring the COMMIT back (no END) without them, and recovery would take it
     * for a heuristic mixed outcome. So the ENDs of this batch are made durable first. */
    struct tm_ctx *ctx = r->ctx;
    pthread_mutex_lock(&ctx->log_mu);
    bool was_fatal = atomic_load(&ctx->fatal);
    int src = was_fatal ? XATM_ELOG : ctx->log ? xatm_declog_sync(ctx->log) : 0;
    if (src != 0) atomic_store(&ctx->fatal, true);
    pthread_mutex_unlock(&ctx->log_mu);
    if (src != 0) {
        free(batch);
        if (!was_fatal) rec_fatal(r, src);
        return;
    }
    const char **v = malloc(n * sizeof *v);
    if (!v) {
        free(batch);
        return;
    }
    for (size_t k = 0; k < n; k++) v[k] = batch[k];
    for (size_t i = 0; i < r->n_rms && !atomic_load(&r->stop); i++) {
        rec_rm *m = &r->rms[i];
        if (!m->conn || !m->markers_ready) continue;
        int rc = xatm_rm_markers_delete(m->conn, v, n);
        if (rc == XATM_XA_OK) {
            m->marker_del_warned = false;
            continue;
        }
        char msg[700];
        snprintf(msg, sizeof msg, "%s (%s)", xatm_rm_errmsg(m->conn), xatm_xa_rc_name(rc));
        if (!m->marker_del_warned)
            tm_log("Those marker rows stay (harmless: a gtrid is never reused).", NULL,
                   "recovery: RM %s: cannot delete the marker rows of %zu ended 3PC "
                   "transaction%s: %s",
                   m->cfg->name, n, n == 1 ? "" : "s", msg);
        m->marker_del_warned = true;
        if (rc == XATM_XAER_RMFAIL || !xatm_rm_alive(m->conn)) rec_rm_fail(r, i, msg);
    }
    free(v);
    free(batch);
}

/* Ends the report of the running pass and publishes it with the waits it collected. */
static void rec_pass_end(struct recovery *r, uint64_t started_ms)
{
    recovery_report *rep = &r->cur_rep;
    size_t off = 0;
    for (size_t i = 0; i < r->n_rms; i++) {
        if (r->rms[i].scanned) continue;
        rep->unreachable++;
        int n = snprintf(rep->unreachable_rms + off, sizeof rep->unreachable_rms - off, "%s%s",
                         off ? "," : "", r->rms[i].cfg->name);
        if (n > 0) off = (size_t)n >= sizeof rep->unreachable_rms - off
                             ? sizeof rep->unreachable_rms - 1
                             : off + (size_t)n;
    }
    rep->ended_ms = tm_now_ms();
    rep->duration_ms = (uint32_t)(rep->ended_ms - started_ms);
    pthread_mutex_lock(&r->mu);
    r->last = *rep;
    r->passes_done = rep->pass;
    r->fenced_total += rep->fenced;
    rec_wait_entry *old = r->waits;
    r->waits = r->new_waits;
    r->n_waits = r->n_new_waits;
    if (rep->fenced) r->wake = true; /* the fenced branches are finished right away */
    if (r->follow_up) r->wake = true; /* adopted decisions: their second scan right away */
    pthread_mutex_unlock(&r->mu);
    free(old);
    r->new_waits = NULL;
    r->n_new_waits = r->cap_new_waits = 0;
    free(r->notes);
    r->notes = r->new_notes;
    r->n_notes = r->n_new_notes;
    r->new_notes = NULL;
    r->n_new_notes = r->cap_new_notes = 0;
    if (r->ctx->srv) server_wake(r->ctx->srv); /* an `xatmctl recover` may be waiting */
}

/* Old commit rows collected by rec_sweep_old_commits. */
typedef struct rec_old_rows {
    char (*g)[XATM_GTRID_MAX + 1]; /* the gtrids */
    size_t n, cap;                 /* used / allocated */
} rec_old_rows;

static void rec_old_row(const char *gtrid, void *arg)
{
    rec_old_rows *o = arg;
    if (o->n < o->cap) snprintf(o->g[o->n++], sizeof o->g[0], "%s", gtrid);
}

/* true when the scan of this pass lists a branch of gtrid on any RM. */
static bool rec_gtrid_prepared(const struct recovery *r, const char *gtrid)
{
    for (size_t i = 0; i < r->n_rms; i++)
        for (size_t k = 0; k < r->rms[i].n_cur; k++)
            if (strcmp(r->rms[i].cur[k].gtrid, gtrid) == 0) return true;
    return false;
}

/* The commit rows of this TM (gtrids starting with prefix) an AP left when it died after
 * its decider's commit (its batch delete never ran): those older than secs (the retention
 * plus the pass's age, so old already at the pass's scan) whose gtrid no RM lists as
 * prepared, in a pass that scanned every RM, are deleted (at most REC_SWEEP_BATCH per sweep). A row of
 * a gtrid that still has a prepared branch stays: recovery needs it to commit that branch. */
static void rec_sweep_old_commits(struct recovery *r, const char *prefix, uint32_t secs)
{
    rec_rm *m = &r->rms[r->decider];
    for (size_t i = 0; i < r->n_rms; i++)
        if (!r->rms[i].scanned) return; /* not a complete scan: next time */
    rec_old_rows o = {.cap = REC_SWEEP_BATCH};
    o.g = malloc(o.cap * sizeof *o.g);
    if (!o.g) return;
    int rc = xatm_rm_decisions_old_commits(m->conn, prefix, secs, REC_SWEEP_BATCH, rec_old_row,
                                           &o);
    const char **del = rc == XATM_XA_OK && o.n ? malloc(o.n * sizeof *del) : NULL;
    size_t nd = 0;
    for (size_t i = 0; del && i < o.n; i++)
        if (!rec_gtrid_prepared(r, o.g[i])) del[nd++] = o.g[i];
    if (nd) rc = xatm_rm_decisions_delete(m->conn, del, nd);
    if (rc != XATM_XA_OK)
        tm_log(xatm_rm_errmsg(m->conn), NULL, "RM %s: sweeping old commit rows of %s failed (%s)",
               m->cfg->name, XATM_DECISION_TABLE, xatm_xa_rc_name(rc));
    else if (nd)
        tm_log(NULL, NULL, "RM %s: %zu commit row%s older than tm.decision_retention, of "
               "transactions with no prepared branch left, deleted from %s", m->cfg->name, nd,
               nd == 1 ? "" : "s", XATM_DECISION_TABLE);
    free(del);
    free(o.g);
}

/* Deletes the decider's abort rows older than tm.decision_retention, and its orphaned old
 * commit rows (rec_sweep_old_commits), at most once per REC_SWEEP_MS (best effort: a
 * failure is retried at the next sweep). An abort row must
 * outlive every session that could still insert the commit row of its gtrid; the
 * retention is chosen far beyond any transaction's life. */
static void rec_decisions_sweep(struct recovery *r, uint64_t pass_started_ms)
{
    if (r->decider < 0) return;
    rec_rm *m = &r->rms[r->decider];
    uint64_t now = tm_now_ms();
    if (!m->conn || !m->decisions_ready || (m->swept_ms && now - m->swept_ms < REC_SWEEP_MS))
        return;
    m->swept_ms = now;
    uint64_t n = 0;
    uint32_t secs = (r->ctx->cfg->decision_retention_ms + 999u) / 1000u;
    char prefix[XATM_TM_ID_MAX + 2];
    snprintf(prefix, sizeof prefix, "%s.", r->ctx->cfg->tm_id); /* this TM's rows only */
    int rc = xatm_rm_decisions_sweep(m->conn, prefix, secs, &n);
    if (rc != XATM_XA_OK)
        tm_log(xatm_rm_errmsg(m->conn), NULL, "RM %s: sweeping old abort rows of %s failed (%s)",
               m->cfg->name, XATM_DECISION_TABLE, xatm_xa_rc_name(rc));
    else if (n)
        tm_log(NULL, NULL, "RM %s: %llu abort row%s older than tm.decision_retention deleted "
               "from %s", m->cfg->name, (unsigned long long)n, n == 1 ? "" : "s",
               XATM_DECISION_TABLE);
    /* a commit row must have been old already when this pass scanned the RMs: a row that
     * aged past the retention during the pass may have a branch prepared after its scan */
    uint64_t pass_s = (now - pass_started_ms + 999u) / 1000u;
    rec_sweep_old_commits(r, prefix, pass_s >= UINT32_MAX - secs ? UINT32_MAX : secs + (uint32_t)pass_s);
}

size_t recovery_pass(struct recovery *r)
{
    uint64_t started = tm_now_ms();
    memset(&r->cur_rep, 0, sizeof r->cur_rep);
    pthread_mutex_lock(&r->mu);
    r->cur_rep.pass = ++r->passes_started;
    bool retry_now = r->retry_now;
    r->retry_now = false;
    pthread_mutex_unlock(&r->mu);
    r->follow_up = false;
    size_t done = 0;
    if (atomic_load(&r->ctx->fatal)) goto out_report;
    rec_adopt_orphans(r);
    for (size_t i = 0; i < r->n_rms && !atomic_load(&r->stop); i++) rec_scan(r, i, retry_now);
    if (atomic_load(&r->stop)) goto out_report;
    done = rec_act(r);
    if (!atomic_load(&r->stop)) rec_terminate(r);
    if (!atomic_load(&r->stop)) rec_resolve(r);
    if (!atomic_load(&r->stop)) rec_markers_cleanup(r);
    if (!atomic_load(&r->stop)) rec_decisions_sweep(r, started);
out_report:
    rec_pass_end(r, started);
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

/* Where start-up found gtrids of this TM that the log may not know (rec_raise_epoch). */
enum rec_epoch_kind {
    REC_EPOCH_BRANCH,    /* a prepared branch on an RM */
    REC_EPOCH_DECISIONS, /* a row of the decider's decision table (tm.decision_rm) */
    REC_EPOCH_MARKERS,   /* a row of an RM's 3PC marker table */
};

/* What rec_raise_epoch says about each kind, and how it reads the tables. */
static const struct rec_epoch_text {
    const char *holds;  /* the log line's cause, before "from epoch N" */
    const char *reuse;  /* the DETAIL's "Reusing epoch N would issue gtrids that ..." */
    const char *hint;   /* the HINT of a raise (NULL: none) */
    const char *fix;    /* the HINT when the epoch is UINT32_MAX and cannot move past it */
    /* the table kinds only: */
    const char *table;  /* its SQL name */
    const char *noun;   /* "decision table" / "marker table" */
    const char *holder; /* the RM's role in messages: "decider RM" / "RM" */
    const char *needed; /* which RMs a start on a lost log must wait for */
    const char *row;    /* what a reissued gtrid would meet */
    int (*lookup)(xatm_rm_conn *c, const char *tm_id, uint32_t *max_epoch);
} rec_epoch_texts[] = {
    [REC_EPOCH_BRANCH] = {
        .holds = "the RMs hold prepared branches of this TM",
        .reuse = "still have prepared branches",
        .hint = "If the log directory was lost, see docs/operations.md (\"decision log is "
                "corrupt\"): branches of the old incarnations are settled by presumed abort.",
        .fix = "Finish that branch by hand, or give this TM a new tm.id.",
    },
    [REC_EPOCH_DECISIONS] = {
        .holds = "the decision table holds rows of this TM",
        .reuse = "already have a decision row (a stale commit row would decide a new "
                 "transaction)",
        .fix = "Delete the old rows of this tm.id from the decision table, or give this TM a "
               "new tm.id.",
        .table = XATM_DECISION_TABLE,
        .noun = "decision table",
        .holder = "decider RM",
        .needed = "the decider's RM",
        .row = "decision row",
        .lookup = xatm_rm_decisions_max_epoch,
    },
    [REC_EPOCH_MARKERS] = {
        .holds = "the marker table holds rows of this TM",
        .reuse = "already have a marker row (a stale one would prove to recovery that a "
                 "branch of a new transaction committed)",
        .fix = "Delete the old rows of this tm.id from the marker table on that RM, or give "
               "this TM a new tm.id.",
        .table = XATM_MARKER_TABLE,
        .noun = "marker table",
        .holder = "RM",
        .needed = "every RM",
        .row = "marker row",
        .lookup = xatm_rm_markers_max_epoch,
    },
};

/* The highest epoch of this TM found outside the log, and what holds it. */
typedef struct rec_epoch_max {
    uint32_t epoch;         /* the highest epoch found (0: none) */
    int kind;               /* enum rec_epoch_kind: where */
    const char *rm;         /* the RM that holds it */
    const xatm_xid *branch; /* REC_EPOCH_BRANCH: the prepared branch */
} rec_epoch_max;

/* Keeps epoch in hi when it is higher (on a tie the source offered first stays). */
static void rec_epoch_offer(rec_epoch_max *hi, uint32_t epoch, int kind, const char *rm,
                            const xatm_xid *branch)
{
    if (epoch <= hi->epoch) return;
    *hi = (rec_epoch_max){.epoch = epoch, .kind = kind, .rm = rm, .branch = branch};
}

/* Offers the highest epoch of this TM in RM m's table of `kind` (ready: the table is in
 * place). A failure is a warning: xatmd starts all the same. */
static void rec_epoch_rows(struct recovery *r, rec_rm *m, bool ready, int kind,
                           rec_epoch_max *hi)
{
    const struct rec_epoch_text *t = &rec_epoch_texts[kind];
    uint32_t max = 0;
    int rc = m->conn && ready ? t->lookup(m->conn, r->ctx->cfg->tm_id, &max) : XATM_XAER_RMFAIL;
    if (rc == XATM_XA_OK) {
        rec_epoch_offer(hi, max, kind, m->cfg->name, NULL);
        return;
    }
    char hint[300];
    snprintf(hint, sizeof hint,
             "If the decision log was lost or replaced, start xatmd only once %s is reachable: "
             "a gtrid of an earlier incarnation could be issued again and meet its old %s.",
             t->needed, t->row);
    tm_log(m->conn ? xatm_rm_errmsg(m->conn) : "not connected", hint,
           "warning: start-up: cannot read the epochs in %s on %s %s (%s)", t->table, t->holder,
           m->cfg->name, xatm_xa_rc_name(rc));
}

/* Start-up, after the first scans: a gtrid of this TM whose epoch is not below ours, on
 * a prepared branch, in the decider's decision table or in a marker table, means the log
 * does not know every earlier incarnation (lost, replaced, or another xatmd with the same
 * tm.id). Issuing gtrids of that epoch again would mix new transactions with those
 * branches, or let a stale decision or marker row speak for them, so the epoch moves past
 * the highest one seen: a new BOOT record (forced), and the (still unused) gtx table
 * follows. 0, or the log's error (ctx->fatal is then set). */
static int rec_raise_epoch(struct recovery *r)
{
    struct tm_ctx *ctx = r->ctx;
    rec_epoch_max hi = {0};
    for (size_t i = 0; i < r->n_rms; i++) {
        const rec_rm *m = &r->rms[i];
        if (!m->scanned) continue;
        for (size_t k = 0; k < m->n_cur; k++) {
            xatm_gtrid_parts parts;
            if (xatm_gtrid_parse(m->cur[k].gtrid, &parts) != 0) continue;
            rec_epoch_offer(&hi, parts.epoch, REC_EPOCH_BRANCH, m->cfg->name, &m->cur[k]);
        }
    }
    if (r->decider >= 0) {
        rec_rm *m = &r->rms[r->decider];
        rec_epoch_rows(r, m, m->decisions_ready, REC_EPOCH_DECISIONS, &hi);
    }
    for (size_t i = 0; i < r->n_rms; i++) {
        rec_rm *m = &r->rms[i];
        if (m->conn && m->markers_ready) rec_epoch_rows(r, m, true, REC_EPOCH_MARKERS, &hi);
    }
    if (hi.epoch < ctx->epoch) return 0; /* ctx->epoch >= 1: also when nothing was found */
    const struct rec_epoch_text *t = &rec_epoch_texts[hi.kind];
    char where[300];
    if (hi.branch)
        snprintf(where, sizeof where, "Branch %s of %s is prepared on RM %s", hi.branch->bqual,
                 hi.branch->gtrid, hi.rm);
    else
        snprintf(where, sizeof where, "The %s %s on %s %s holds rows of this TM from epoch %u",
                 t->noun, t->table, t->holder, hi.rm, hi.epoch);
    char detail[800];
    if (hi.epoch == UINT32_MAX) {
        snprintf(detail, sizeof detail, "%s; epoch %u is the highest possible, the epoch "
                 "counter cannot move past it.", where, hi.epoch);
        tm_log(detail, t->fix, "start-up: cannot choose an epoch: %s from epoch %u", t->holds,
               hi.epoch);
        atomic_store(&ctx->fatal, true);
        return XATM_ELIMIT;
    }
    uint32_t old = ctx->epoch, epoch = hi.epoch + 1;
    xatm_declog_record boot;
    memset(&boot, 0, sizeof boot);
    boot.type = XATM_DL_BOOT;
    boot.epoch = epoch;
    int rc = tm_log_append(ctx, &boot, true);
    if (rc == 0) rc = tm_log_flush(ctx);
    if (rc != 0) {
        rec_fatal(r, rc);
        return rc;
    }
    if (ctx->gtx) {
        rc = gtx_table_set_epoch(ctx->gtx, epoch);
        assert(rc == 0); /* nothing has begun before start-up recovery ends */
    }
    ctx->epoch = epoch;
    char logged[64] = "no epoch (it is new or empty)";
    if (ctx->max_epoch_seen)
        snprintf(logged, sizeof logged, "epochs up to %u", ctx->max_epoch_seen);
    snprintf(detail, sizeof detail,
             "%s, but the decision log holds %s: the log was lost or replaced, or another "
             "xatmd runs with the same tm.id. Reusing epoch %u would issue gtrids that %s. "
             "Epoch %u is forced to the log (BOOT).",
             where, logged, hi.epoch, t->reuse, epoch);
    tm_log(detail, t->hint, "start-up: epoch raised from %u to %u: %s from epoch %u", old,
           epoch, t->holds, hi.epoch);
    return 0;
}

void recovery_startup(struct recovery *r)
{
    tm_decisions_foreach(r->ctx->decisions, rec_check_names, r);
    recovery_pass(r);
    if (rec_raise_epoch(r) != 0) return;
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

uint64_t recovery_request_pass(struct recovery *r)
{
    pthread_mutex_lock(&r->mu);
    uint64_t ticket = r->passes_started + 1;
    r->wake = true;
    r->retry_now = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
    return ticket;
}

bool recovery_report_for(struct recovery *r, uint64_t ticket, recovery_report *out)
{
    pthread_mutex_lock(&r->mu);
    bool done = r->passes_done >= ticket;
    if (done && out) *out = r->last;
    pthread_mutex_unlock(&r->mu);
    return done;
}

bool recovery_last_report(struct recovery *r, recovery_report *out)
{
    return recovery_report_for(r, 1, out);
}

uint64_t recovery_fenced_total(struct recovery *r)
{
    pthread_mutex_lock(&r->mu);
    uint64_t n = r->fenced_total;
    pthread_mutex_unlock(&r->mu);
    return n;
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
        rec_pool_close(&r->rms[i]);
        if (r->rms[i].conn) xatm_rm_close(r->rms[i].conn);
        free(r->rms[i].prev);
        free(r->rms[i].prev_first);
        free(r->rms[i].cur);
        free(r->rms[i].cur_first);
        free(r->rms[i].shown);
        free(r->rms[i].shown_gone);
    }
    free(r->rms);
    free(r->waits);
    free(r->new_waits);
    free(r->notes);
    free(r->new_notes);
    free(r->ended);
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
        s->retry_in_ms = m->quarantined && m->retry_at_ms > now
                             ? (uint32_t)(m->retry_at_ms - now)
                             : 0;
        s->prepared =
            m->shown_valid && !m->quarantined ? (int64_t)(m->n_shown - m->n_shown_gone) : -1;
    }
    pthread_mutex_unlock(&r->mu);
}

enum recovery_branch_state recovery_branch_state(struct recovery *r, const char *gtrid,
                                                 const char *rm)
{
    int i = xatm_config_rm_index(r->ctx->cfg, rm);
    if (i < 0) return REC_BRANCH_UNKNOWN_UNSCANNED;
    xatm_xid x;
    memset(&x, 0, sizeof x);
    snprintf(x.gtrid, sizeof x.gtrid, "%s", gtrid);
    snprintf(x.bqual, sizeof x.bqual, "%s", rm);
    enum recovery_branch_state st;
    pthread_mutex_lock(&r->mu);
    const rec_rm *m = &r->rms[i];
    if (m->quarantined)
        st = REC_BRANCH_UNKNOWN_UNREACHABLE;
    else if (!m->shown_valid)
        st = REC_BRANCH_UNKNOWN_UNSCANNED;
    else {
        const xatm_xid *hit =
            m->n_shown ? bsearch(&x, m->shown, m->n_shown, sizeof x, xid_cmp) : NULL;
        st = hit && !m->shown_gone[hit - m->shown] ? REC_BRANCH_PREPARED
                                                   : REC_BRANCH_NOT_PREPARED;
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}

const char *recovery_branch_state_name(enum recovery_branch_state s)
{
    switch (s) {
    case REC_BRANCH_PREPARED:
        return "prepared";
    case REC_BRANCH_NOT_PREPARED:
        return "not prepared";
    case REC_BRANCH_UNKNOWN_UNREACHABLE:
        return "unknown (RM unreachable)";
    case REC_BRANCH_UNKNOWN_UNSCANNED:
        break;
    }
    return "unknown (not scanned yet)";
}

bool recovery_branch_wait(struct recovery *r, const char *gtrid, const char *rm,
                          recovery_wait *out)
{
    bool found = false;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_waits && !found; i++) {
        if (strcmp(r->waits[i].gtrid, gtrid) || strcmp(r->waits[i].rm, rm)) continue;
        if (out) *out = r->waits[i].w;
        found = true;
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

int recovery_foreach_prepared(struct recovery *r,
                              void (*cb)(const char *gtrid, const char *rm, void *arg), void *arg)
{
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_rms; i++)
        if (!r->rms[i].quarantined && r->rms[i].shown_valid)
            n += r->rms[i].n_shown - r->rms[i].n_shown_gone;
    xatm_xid *all = n ? malloc(n * sizeof *all) : NULL;
    if (n && !all) {
        pthread_mutex_unlock(&r->mu);
        return XATM_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < r->n_rms; i++) {
        const rec_rm *m = &r->rms[i];
        if (m->quarantined || !m->shown_valid) continue;
        for (size_t j = 0; j < m->n_shown; j++)
            if (!m->shown_gone[j]) all[k++] = m->shown[j];
    }
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < k; i++) cb(all[i].gtrid, all[i].bqual, arg);
    free(all);
    return 0;
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
    if (e->has_commit || e->has_abort || e->has_precommit) {
        memset(&rec, 0, sizeof rec);
        /* the latest decision of the gtrid is enough (declog.h) */
        rec.type = e->has_commit ? XATM_DL_COMMIT
                   : e->has_abort ? XATM_DL_ABORT
                                  : XATM_DL_PRECOMMIT;
        snprintf(rec.gtrid, sizeof rec.gtrid, "%s", e->gtrid);
        rec.protocol = rec.type != XATM_DL_COMMIT ? XATM_PROTOCOL_3PC
                       : e->protocol              ? e->protocol
                                                  : XATM_PROTOCOL_2PC;
        for (unsigned k = 0; k < e->n_branches; k++) {
            snprintf(rec.branches[k].rm, sizeof rec.branches[k].rm, "%s", e->branches[k].rm);
            rec.branches[k].session_id = e->branches[k].session_id;
        }
        rec.n_branches = e->n_branches;
        em->emit(&rec, em->emit_arg);
    }
    /* every heuristic record, oldest first (replay keeps the last as the outcome) */
    for (unsigned k = 0; k < e->n_heur; k++) {
        memset(&rec, 0, sizeof rec);
        rec.type = XATM_DL_HEURISTIC;
        snprintf(rec.gtrid, sizeof rec.gtrid, "%s", e->gtrid);
        rec.outcome = e->heur[k].outcome;
        snprintf(rec.who, sizeof rec.who, "%s", e->heur[k].who);
        snprintf(rec.why, sizeof rec.why, "%s", e->heur[k].why);
        em->emit(&rec, em->emit_arg);
    }
}

static void rec_emit_gtx(const gtx_info *g, void *arg)
{
    const rec_emitter *em = arg;
    xatm_declog_record rec;
    if (gtx_unresolved_record(g, &rec)) em->emit(&rec, em->emit_arg);
}

void recovery_emit_unresolved(void *arg, void (*emit)(const xatm_declog_record *rec, void *ea),
                              void *emit_arg)
{
    struct tm_ctx *ctx = arg;
    rec_emitter em = {emit, emit_arg};
    if (ctx->decisions) tm_decisions_foreach(ctx->decisions, rec_emit_decision, &em);
    if (ctx->gtx) gtx_foreach(ctx->gtx, rec_emit_gtx, &em);
}
