/*
 * gtx.c — the global-transaction table and state machine of gtx.h (diagram, transition
 * table and rules are there). Owns:
 *   - a chained hash table of transactions keyed by seq (buckets double when full);
 *   - two binary min-heaps of (deadline, seq), with lazy deletion: one for ACTIVE
 *     transactions' deadlines, one for PRECOMMITTED ones' ack deadlines (3PC); an entry
 *     whose transaction is gone, no longer in that state or has another deadline is stale
 *     and dropped when it reaches the top (a heap is rebuilt when stale entries dominate);
 *   - a ring of the last GTX_ABORT_MEMORY aborts (gtx.h, "Aborted transactions"), by
 *     value, without branches: a late VOTE hears why it was aborted;
 *   - the held set: a chained hash (keyed by seq) of malloc'd gtx_held entries, one per
 *     abort with a recorded session, holding only those branches, each with its count of
 *     clean scans; recovery reads the sessions to wait for or fence, and releases an entry
 *     through gtx_aborts_scanned once its branches are seen gone;
 *   - per-state counts and totals;
 *   - the leases (gtx_reserve): per connection at most one range [lo, hi) of seqs handed
 *     out and not begun, in an unsorted array searched linearly (one entry per connected
 *     AP that has asked for one);
 *   - a cache of up to GTX_NODE_CACHE freed nodes (singly linked through `next`), reused
 *     by the next transactions, so that a transaction costs no malloc and free (a node is
 *     about 2 KiB); sanitizer builds keep none, so ASan still sees a node used after its
 *     removal.
 * Every transition goes through gtx_set_state() or gtx_remove(), which assert that the
 * transition is in the table of allowed ones. All of it is guarded by one mutex.
 */
#include "gtx.h"

#include <assert.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../rm-adapters/rm.h"
#include "xatm.h"

/* Freed nodes kept for reuse (see the file comment). */
#if defined(__SANITIZE_ADDRESS__)
#define GTX_NODE_CACHE 0u
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GTX_NODE_CACHE 0u
#endif
#endif
#ifndef GTX_NODE_CACHE
#define GTX_NODE_CACHE 128u
#endif

/* One transaction in a bucket chain. */
typedef struct gtx_node {
    gtx_info info;         /* the transaction itself */
    struct gtx_node *next; /* next in the same bucket */
    bool carried;          /* its lease's slot pays for it (gtx_reservation.carried) */
} gtx_node;

/* One abort in the ring (by value). */
typedef struct gtx_aborted {
    uint64_t seq;                  /* the transaction, 0 = empty slot */
    enum gtx_abort_cause cause;    /* why it was aborted */
    uint32_t timeout_ms;           /* its timeout */
    uint64_t deadline_ms;          /* its deadline (monotonic ms) */
    uint32_t ap_pid;               /* its AP's pid, 0 unknown */
} gtx_aborted;

/* One branch of a held abort. */
typedef struct gtx_held_branch {
    char rm[XATM_RM_NAME_MAX + 1]; /* RM name */
    uint64_t session_id;           /* the AP's session reference (never 0) */
    uint8_t clean;                 /* consecutive clean scans of rm since the abort (max 2) */
} gtx_held_branch;

/* One held abort (see gtx.h): its sessions are kept until recovery saw its branches gone. */
typedef struct gtx_held {
    gtx_aborted a;                 /* what the ring keeps too */
    uint64_t abort_no;             /* t->abort_count at the abort (gtx_abort_mark) */
    struct gtx_held *next;         /* next in the same bucket */
    uint8_t n_branches;            /* entries in branches */
    gtx_held_branch branches[];    /* its branches with a recorded session */
} gtx_held;

/* The seqs [lo, hi) leased to a connection for its next transactions (gtx_reserve), none
 * begun yet; lo < hi <= next_seq. */
typedef struct gtx_reservation {
    uint64_t lo, hi;  /* the leased seqs not begun yet */
    uint64_t owner;   /* the connection it belongs to */
    uint64_t carried; /* the live transaction begun from it that its slot pays for, 0 none */
} gtx_reservation;

/* One deadline heap entry. */
typedef struct gtx_deadline {
    uint64_t deadline_ms; /* when the transaction expires */
    uint64_t seq;         /* which transaction */
} gtx_deadline;

/* A binary min-heap of deadlines with lazy deletion (gtx_heap_entry_live). */
typedef struct gtx_heap {
    gtx_deadline *v;  /* entries */
    size_t len, cap;  /* used / allocated */
} gtx_heap;

struct gtx_table {
    pthread_mutex_t mu;                  /* guards everything below */
    char tm_id[XATM_TM_ID_MAX + 1];      /* our TM id, for gtrids */
    uint32_t epoch;                      /* our epoch, for gtrids */
    char **rm_names;                     /* configured RM names (owned), NULL = any */
    size_t n_rms;                        /* entries in rm_names */
    uint64_t next_seq;                   /* seq of the next BEGIN (starts at 1) */
    gtx_node **buckets;                  /* hash buckets, n_buckets (a power of 2) */
    size_t n_buckets;                    /* bucket count */
    size_t count;                        /* transactions in the table */
    gtx_node *spare;                     /* freed nodes kept for reuse, linked by next */
    size_t n_spare;                      /* nodes on spare (<= GTX_NODE_CACHE) */
    uint64_t n_state[GTX_STATE_MAX + 1]; /* transactions per enum gtx_state */
    uint64_t n_orphaned;                 /* decided transactions with owner 0 */
    gtx_heap heap;                       /* ACTIVE transactions by deadline_ms (lazy) */
    gtx_heap ack_heap;                   /* PRECOMMITTED ones by ack_deadline_ms (lazy) */
    gtx_aborted aborted[GTX_ABORT_MEMORY]; /* ring of recent aborts (seq 0 = empty) */
    size_t aborted_pos;                  /* next ring slot to write */
    uint64_t abort_count;                /* aborts so far (gtx_abort_mark) */
    gtx_held **held;                     /* held aborts: n_held_buckets chains (power of 2) */
    size_t n_held_buckets;               /* bucket count */
    size_t n_held;                       /* held aborts */
    gtx_counts totals;                   /* begun/committed/aborted/... (state counts unused) */
    gtx_reservation *resv;               /* leased seqs not begun yet: at most one lease
                                            per owner (gtx_reserve) */
    size_t n_resv, cap_resv;             /* used / allocated */
    size_t n_carried;                    /* leases with a transaction on their slot: the
                                            slots used (GTX_MAX_LIVE) are count - n_carried
                                            + n_resv (gtx_slots) */
};

/* ------------------------------------------------------------------ transitions */

/* The allowed transitions; "0" stands for "removed". */
static bool __attribute__((unused)) gtx_transition_allowed(enum gtx_state from, int to)
{
    switch (from) {
    case GTX_ACTIVE:
        return to == GTX_COMMIT_PENDING || to == GTX_PRECOMMIT_PENDING || to == 0;
    case GTX_PRECOMMIT_PENDING:
        return to == GTX_PRECOMMITTED;
    case GTX_PRECOMMITTED:
        return to == GTX_COMMIT_PENDING || to == GTX_ABORT_PENDING || to == 0;
    case GTX_ABORT_PENDING:
        return to == 0;
    case GTX_COMMIT_PENDING:
        return to == GTX_COMMITTING;
    case GTX_COMMITTING:
        return to == 0;
    }
    return false;
}

static void gtx_set_state(gtx_table *t, gtx_node *g, enum gtx_state to)
{
    assert(gtx_transition_allowed(g->info.state, (int)to));
    t->n_state[g->info.state]--;
    t->n_state[to]++;
    g->info.state = to;
}

/* ------------------------------------------------------------------ hashing */

static size_t gtx_bucket_of(const gtx_table *t, uint64_t seq)
{
    uint64_t h = seq * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (t->n_buckets - 1);
}

static gtx_node *gtx_find_seq(const gtx_table *t, uint64_t seq)
{
    for (gtx_node *g = t->buckets[gtx_bucket_of(t, seq)]; g; g = g->next)
        if (g->info.seq == seq) return g;
    return NULL;
}

/* seq of gtrid when it names this TM and epoch, else 0. */
static uint64_t gtx_seq_of(const gtx_table *t, const char *gtrid)
{
    xatm_gtrid_parts p;
    if (!gtrid || xatm_gtrid_parse(gtrid, &p) != 0) return 0;
    if (strcmp(p.tm_id, t->tm_id) != 0 || p.epoch != t->epoch) return 0;
    return p.seq;
}

static gtx_node *gtx_find(const gtx_table *t, const char *gtrid)
{
    uint64_t seq = gtx_seq_of(t, gtrid);
    return seq ? gtx_find_seq(t, seq) : NULL;
}

static int gtx_grow(gtx_table *t)
{
    size_t n = t->n_buckets * 2;
    gtx_node **nb = calloc(n, sizeof *nb);
    if (!nb) return XATM_ENOMEM;
    gtx_node **old = t->buckets;
    size_t old_n = t->n_buckets;
    t->buckets = nb;
    t->n_buckets = n;
    for (size_t i = 0; i < old_n; i++) {
        gtx_node *g = old[i];
        while (g) {
            gtx_node *next = g->next;
            size_t b = gtx_bucket_of(t, g->info.seq);
            g->next = nb[b];
            nb[b] = g;
            g = next;
        }
    }
    free(old);
    return 0;
}

/* A node for a new transaction: a spare one, or a new one. Everything before its branch
 * array is zeroed (n_branches is 0, so no branch is read before it is written). */
static gtx_node *gtx_node_new(gtx_table *t)
{
    gtx_node *g = t->spare;
    if (!g) return calloc(1, sizeof *g);
    t->spare = g->next;
    t->n_spare--;
    memset(&g->info, 0, offsetof(gtx_info, branches));
    g->next = NULL;
    g->carried = false;
    return g;
}

/* Frees g, or keeps it for the next transaction. */
static void gtx_node_free(gtx_table *t, gtx_node *g)
{
    if (t->n_spare == GTX_NODE_CACHE) { /* never above it */
        free(g);
        return;
    }
    g->next = t->spare;
    t->spare = g;
    t->n_spare++;
}

/* Unlinks and frees g. `aborted` counts it as an aborted transaction. */
static void gtx_uncarry_lease(gtx_table *t, gtx_node *g);

static void gtx_remove(gtx_table *t, gtx_node *g, bool aborted)
{
    assert(gtx_transition_allowed(g->info.state, 0));
    if (g->carried) gtx_uncarry_lease(t, g);
    gtx_node **pp = &t->buckets[gtx_bucket_of(t, g->info.seq)];
    while (*pp != g) pp = &(*pp)->next;
    *pp = g->next;
    t->n_state[g->info.state]--;
    if (g->info.owner == 0 && g->info.state != GTX_ACTIVE) t->n_orphaned--;
    t->count--;
    if (aborted) t->totals.aborted++;
    gtx_node_free(t, g);
}

/* ------------------------------------------------------------------ deadline heaps */

static void gtx_heap_swap(gtx_deadline *a, gtx_deadline *b)
{
    gtx_deadline x = *a;
    *a = *b;
    *b = x;
}

static void gtx_heap_up(gtx_heap *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->v[p].deadline_ms <= h->v[i].deadline_ms) break;
        gtx_heap_swap(&h->v[p], &h->v[i]);
        i = p;
    }
}

static void gtx_heap_down(gtx_heap *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->len && h->v[l].deadline_ms < h->v[m].deadline_ms) m = l;
        if (r < h->len && h->v[r].deadline_ms < h->v[m].deadline_ms) m = r;
        if (m == i) return;
        gtx_heap_swap(&h->v[m], &h->v[i]);
        i = m;
    }
}

static int gtx_heap_push(gtx_heap *h, uint64_t deadline_ms, uint64_t seq)
{
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        gtx_deadline *v = realloc(h->v, cap * sizeof *v);
        if (!v) return XATM_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    h->v[h->len] = (gtx_deadline){deadline_ms, seq};
    gtx_heap_up(h, h->len++);
    return 0;
}

static void gtx_heap_pop(gtx_heap *h)
{
    h->v[0] = h->v[--h->len];
    if (h->len) gtx_heap_down(h, 0);
}

/* The live transaction an entry of heap h stands for, or NULL when the entry is stale:
 * the ACTIVE heap's entries stand for ACTIVE transactions with that deadline, the ack
 * heap's for PRECOMMITTED ones with that ack deadline and an owner (an orphaned one is
 * recovery's, never expired here). */
static gtx_node *gtx_heap_entry_live(const gtx_table *t, const gtx_heap *h,
                                     const gtx_deadline *d)
{
    gtx_node *g = gtx_find_seq(t, d->seq);
    if (!g) return NULL;
    if (h == &t->ack_heap)
        return g->info.state == GTX_PRECOMMITTED && g->info.owner != 0 &&
                       g->info.ack_deadline_ms == d->deadline_ms
                   ? g
                   : NULL;
    if (g->info.state != GTX_ACTIVE || g->info.deadline_ms != d->deadline_ms) return NULL;
    return g;
}

/* Rebuilds heap h from the table when stale entries outnumber live ones (`live` of them). */
static void gtx_heap_compact(gtx_table *t, gtx_heap *h, uint64_t live)
{
    if (h->len <= 2 * live + 1024) return;
    size_t n = 0;
    for (size_t i = 0; i < h->len; i++)
        if (gtx_heap_entry_live(t, h, &h->v[i])) h->v[n++] = h->v[i];
    h->len = n;
    for (size_t i = n / 2; i-- > 0;) gtx_heap_down(h, i);
}

/* The earliest live deadline of h, dropping stale entries on top; UINT64_MAX if none. */
static uint64_t gtx_heap_first(gtx_table *t, gtx_heap *h)
{
    while (h->len && !gtx_heap_entry_live(t, h, &h->v[0])) gtx_heap_pop(h);
    return h->len ? h->v[0].deadline_ms : UINT64_MAX;
}

/* ------------------------------------------------------------------ helpers */

static size_t gtx_held_bucket(const gtx_table *t, uint64_t seq)
{
    uint64_t h = seq * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (t->n_held_buckets - 1);
}

static gtx_held *gtx_held_find(const gtx_table *t, uint64_t seq)
{
    if (!t->held) return NULL;
    for (gtx_held *h = t->held[gtx_held_bucket(t, seq)]; h; h = h->next)
        if (h->a.seq == seq) return h;
    return NULL;
}

/* Makes room for one more held abort. 0 or XATM_ENOMEM. */
static int gtx_held_reserve(gtx_table *t)
{
    if (t->held && t->n_held < t->n_held_buckets) return 0;
    size_t n = t->n_held_buckets ? t->n_held_buckets * 2 : 256;
    gtx_held **nb = calloc(n, sizeof *nb);
    if (!nb) return XATM_ENOMEM;
    gtx_held **old = t->held;
    size_t old_n = t->n_held_buckets;
    t->held = nb;
    t->n_held_buckets = n;
    for (size_t i = 0; i < old_n; i++) {
        gtx_held *h = old[i];
        while (h) {
            gtx_held *next = h->next;
            size_t b = gtx_held_bucket(t, h->a.seq);
            h->next = nb[b];
            nb[b] = h;
            h = next;
        }
    }
    free(old);
    return 0;
}

/* Remembers the abort of g (see gtx.h): always in the ring; held when a branch has a
 * recorded session. */
static void gtx_remember_abort(gtx_table *t, const gtx_node *g, enum gtx_abort_cause cause)
{
    /* after PRECOMMIT the ack deadline may lie beyond the transaction's deadline: the
     * later of the two, so no session is fenced while its AP may still be acting */
    uint64_t deadline = g->info.deadline_ms > g->info.ack_deadline_ms ? g->info.deadline_ms
                                                                       : g->info.ack_deadline_ms;
    gtx_aborted a = {g->info.seq, cause, g->info.timeout_ms, deadline, g->info.ap_pid};
    t->aborted[t->aborted_pos] = a;
    t->aborted_pos = (t->aborted_pos + 1) % GTX_ABORT_MEMORY;
    t->abort_count++;
    unsigned n = 0;
    for (unsigned i = 0; i < g->info.n_branches; i++)
        if (g->info.branches[i].session_id) n++;
    if (n == 0) return;
    gtx_held *h = NULL;
    if (gtx_held_reserve(t) == 0) h = calloc(1, sizeof *h + n * sizeof h->branches[0]);
    if (!h) return; /* out of memory: recovery then treats the sessions as unknown and
                       waits for the branch to settle (recovery.h) */
    h->a = a;
    h->abort_no = t->abort_count;
    for (unsigned i = 0; i < g->info.n_branches; i++) {
        const gtx_branch *b = &g->info.branches[i];
        if (!b->session_id) continue;
        gtx_held_branch *x = &h->branches[h->n_branches++];
        snprintf(x->rm, sizeof x->rm, "%s", b->rm);
        x->session_id = b->session_id;
    }
    size_t b = gtx_held_bucket(t, a.seq);
    h->next = t->held[b];
    t->held[b] = h;
    t->n_held++;
}

static const gtx_aborted *gtx_find_abort(const gtx_table *t, uint64_t seq)
{
    const gtx_held *h = gtx_held_find(t, seq);
    if (h) return &h->a;
    /* newest first: a seq is never reused, so the first match is the only one */
    for (size_t k = 0; k < GTX_ABORT_MEMORY; k++) {
        const gtx_aborted *a =
            &t->aborted[(t->aborted_pos + GTX_ABORT_MEMORY - 1 - k) % GTX_ABORT_MEMORY];
        if (a->seq == 0) return NULL; /* the ring fills in order: nothing older */
        if (a->seq == seq) return a;
    }
    return NULL;
}

/* Aborts g for `cause`: remembered (see gtx.h), then removed and counted as aborted. */
static void gtx_abort(gtx_table *t, gtx_node *g, enum gtx_abort_cause cause)
{
    gtx_remember_abort(t, g, cause);
    gtx_remove(t, g, true);
}

static bool gtx_rm_known(const gtx_table *t, const char *rm)
{
    if (!xatm_rm_name_valid(rm)) return false;
    if (!t->rm_names) return true;
    for (size_t i = 0; i < t->n_rms; i++)
        if (strcmp(t->rm_names[i], rm) == 0) return true;
    return false;
}

static gtx_branch *gtx_branch_find(gtx_info *g, const char *rm)
{
    for (unsigned i = 0; i < g->n_branches; i++)
        if (strcmp(g->branches[i].rm, rm) == 0) return &g->branches[i];
    return NULL;
}

/* The branch named rm, added when absent; NULL when the list is full. */
static gtx_branch *gtx_branch_get(gtx_info *g, const char *rm)
{
    gtx_branch *b = gtx_branch_find(g, rm);
    if (b) return b;
    if (g->n_branches >= XATM_MAX_BRANCHES) return NULL;
    b = &g->branches[g->n_branches++];
    memset(b, 0, sizeof *b);
    xatm_str_copy(b->rm, sizeof b->rm, rm);
    return b;
}

static void gtx_orphan(gtx_table *t, gtx_node *g)
{
    assert(g->info.state != GTX_ACTIVE);
    if (g->info.owner != 0) {
        g->info.owner = 0;
        t->n_orphaned++;
    }
}

/* ------------------------------------------------------------------ public */

gtx_table *gtx_table_new(const char *tm_id, uint32_t epoch, const char *const *rm_names,
                         size_t n_rms)
{
    if (!tm_id || !xatm_tm_id_valid(tm_id) || epoch == 0) return NULL;
    gtx_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    snprintf(t->tm_id, sizeof t->tm_id, "%s", tm_id);
    t->epoch = epoch;
    t->next_seq = 1;
    t->n_buckets = 256;
    t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
    if (!t->buckets) goto fail_free_table;
    if (rm_names) {
        t->rm_names = calloc(n_rms ? n_rms : 1, sizeof *t->rm_names);
        if (!t->rm_names) goto fail_free_buckets;
        for (size_t i = 0; i < n_rms; i++) {
            t->rm_names[i] = strdup(rm_names[i]);
            if (!t->rm_names[i]) goto fail_free_names;
            t->n_rms = i + 1;
        }
    }
    if (pthread_mutex_init(&t->mu, NULL) != 0) goto fail_free_names;
    return t;

fail_free_names:
    for (size_t i = 0; i < t->n_rms; i++) free(t->rm_names[i]);
    free(t->rm_names);
fail_free_buckets:
    free(t->buckets);
fail_free_table:
    free(t);
    return NULL;
}

void gtx_table_free(gtx_table *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n_buckets; i++) {
        gtx_node *g = t->buckets[i];
        while (g) {
            gtx_node *next = g->next;
            free(g);
            g = next;
        }
    }
    while (t->spare) {
        gtx_node *next = t->spare->next;
        free(t->spare);
        t->spare = next;
    }
    for (size_t i = 0; i < t->n_rms; i++) free(t->rm_names[i]);
    for (size_t i = 0; i < t->n_held_buckets; i++) {
        gtx_held *h = t->held[i];
        while (h) {
            gtx_held *next = h->next;
            free(h);
            h = next;
        }
    }
    free(t->held);
    free(t->rm_names);
    free(t->buckets);
    free(t->heap.v);
    free(t->ack_heap.v);
    free(t->resv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* The index of owner's lease, or n_resv. */
static size_t gtx_resv_of_owner(const gtx_table *t, uint64_t owner)
{
    size_t i = 0;
    while (i < t->n_resv && t->resv[i].owner != owner) i++;
    return i;
}

/* The index of the lease holding seq, or n_resv. */
static size_t gtx_resv_of_seq(const gtx_table *t, uint64_t seq)
{
    size_t i = 0;
    while (i < t->n_resv && !(t->resv[i].lo <= seq && seq < t->resv[i].hi)) i++;
    return i;
}

/* Slots used against GTX_MAX_LIVE: every live transaction and every lease, a lease and
 * the transaction on its slot (gtx_begin_reserved) counting once (mutex held). */
static size_t gtx_slots(const gtx_table *t)
{
    return t->count - t->n_carried + t->n_resv;
}

/* Lease i no longer pays for its carried transaction g (NULL: looked up), which is then
 * counted on its own. */
static void gtx_resv_uncarry(gtx_table *t, size_t i, gtx_node *g)
{
    if (!t->resv[i].carried) return;
    if (!g) g = gtx_find_seq(t, t->resv[i].carried);
    if (g) g->carried = false;
    t->resv[i].carried = 0;
    t->n_carried--;
}

/* gtx_remove's: carried transaction g ends; its lease's slot is free for the next one. */
static void gtx_uncarry_lease(gtx_table *t, gtx_node *g)
{
    size_t i = gtx_resv_of_owner(t, g->info.owner);
    if (i < t->n_resv && t->resv[i].carried == g->info.seq) gtx_resv_uncarry(t, i, g);
}

static void gtx_resv_drop(gtx_table *t, size_t i)
{
    gtx_resv_uncarry(t, i, NULL);
    t->resv[i] = t->resv[--t->n_resv];
}

int gtx_reserve(gtx_table *t, uint64_t owner, unsigned count, char *gtrid, size_t gtrid_size,
                uint64_t *first_seq)
{
    if (owner == 0 || count == 0 || count > GTX_LEASE_MAX) return XATM_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    size_t i = gtx_resv_of_owner(t, owner); /* n_resv: none yet */
    /* the new lease takes the old one's slot; a transaction the old one carried counts on
     * its own from then on */
    size_t mine = i < t->n_resv ? 1 : 0;
    size_t carried = mine && t->resv[i].carried ? 1 : 0;
    if (gtx_slots(t) - mine + carried + 1 > GTX_MAX_LIVE) {
        /* counted with the live ones, so that beginning a transaction of the lease never
         * meets the limit: the application hears ELIMIT at xatm_begin, before any work */
        rc = XATM_ELIMIT;
        goto out_unlock;
    }
    if (xatm_gtrid_format(gtrid, gtrid_size, t->tm_id, t->epoch, t->next_seq) != 0) {
        rc = XATM_EINVAL;
        goto out_unlock;
    }
    if (i == t->n_resv) {
        if (t->n_resv == t->cap_resv) {
            size_t cap = t->cap_resv ? t->cap_resv * 2 : 16;
            gtx_reservation *v = realloc(t->resv, cap * sizeof *v);
            if (!v) {
                rc = XATM_ENOMEM;
                goto out_unlock;
            }
            t->resv = v;
            t->cap_resv = cap;
        }
        t->n_resv++;
    }
    /* what is left of an earlier lease of this owner is simply replaced: nothing of it can
     * exist, since a leased transaction begins with the first message naming it, and the
     * owner's messages are read in order */
    if (mine) gtx_resv_uncarry(t, i, NULL);
    t->resv[i].carried = 0;
    t->resv[i].lo = t->next_seq;
    t->resv[i].hi = t->next_seq + count;
    t->resv[i].owner = owner;
    if (first_seq) *first_seq = t->next_seq;
    t->next_seq += count;
out_unlock:
    pthread_mutex_unlock(&t->mu);
    return rc;
}

/* The lease holding gtrid (its seq in *seq), or n_resv when it is none (mutex held). */
static size_t gtx_resv_of_gtrid(gtx_table *t, const char *gtrid, uint64_t *seq)
{
    *seq = gtx_seq_of(t, gtrid);
    return *seq ? gtx_resv_of_seq(t, *seq) : t->n_resv;
}

bool gtx_is_reserved(gtx_table *t, uint64_t owner, const char *gtrid)
{
    pthread_mutex_lock(&t->mu);
    uint64_t seq;
    size_t i = gtx_resv_of_gtrid(t, gtrid, &seq);
    bool yes = i < t->n_resv && t->resv[i].owner == owner;
    pthread_mutex_unlock(&t->mu);
    return yes;
}

/* Creates ACTIVE transaction seq (mutex held); *made (if not NULL) is its node.
 * on_lease_slot: it takes a lease's slot, so GTX_MAX_LIVE is not checked
 * (gtx_begin_reserved). */
static int gtx_create(gtx_table *t, uint64_t seq, uint64_t owner, uint32_t ap_pid,
                      uint8_t protocol, uint32_t timeout_ms, uint64_t now_ms, gtx_info *out,
                      bool on_lease_slot, gtx_node **made);

int gtx_begin(gtx_table *t, uint64_t owner, uint32_t ap_pid, uint8_t protocol,
              uint32_t timeout_ms, uint64_t now_ms, gtx_info *out)
{
    if (owner == 0 || (protocol != XATM_PROTOCOL_2PC && protocol != XATM_PROTOCOL_3PC) ||
        timeout_ms == 0)
        return XATM_EINVAL;
    pthread_mutex_lock(&t->mu);
    int rc = gtx_create(t, t->next_seq, owner, ap_pid, protocol, timeout_ms, now_ms, out, false,
                        NULL);
    if (rc == 0) t->next_seq++;
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int gtx_begin_reserved(gtx_table *t, uint64_t owner, uint32_t ap_pid, const char *gtrid,
                       uint8_t protocol, uint32_t timeout_ms, uint64_t now_ms, gtx_info *out)
{
    if (owner == 0 || (protocol != XATM_PROTOCOL_2PC && protocol != XATM_PROTOCOL_3PC) ||
        timeout_ms == 0)
        return XATM_EINVAL;
    pthread_mutex_lock(&t->mu);
    uint64_t seq;
    size_t i = gtx_resv_of_gtrid(t, gtrid, &seq);
    int rc = XATM_ENOTFOUND;
    if (i < t->n_resv && t->resv[i].owner == owner) {
        /* begun, or (out of memory, limit) never: either way used, and so are the seqs
         * before it, which the owner skipped. The transaction takes the lease's slot:
         * for good when this was its last seq (the lease ends), else while it lives
         * (carried). Only a second transaction on a lease whose first still lives (one
         * connection running two at once: not libxatm) needs a slot of its own. */
        t->resv[i].lo = seq + 1;
        bool last = t->resv[i].lo == t->resv[i].hi;
        bool busy = t->resv[i].carried != 0;
        if (last) gtx_resv_drop(t, i);
        gtx_node *g = NULL;
        rc = gtx_create(t, seq, owner, ap_pid, protocol, timeout_ms, now_ms, out, !busy, &g);
        if (rc == 0 && !last && !busy) {
            t->resv[i].carried = seq;
            t->n_carried++;
            g->carried = true;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static int gtx_create(gtx_table *t, uint64_t seq, uint64_t owner, uint32_t ap_pid,
                      uint8_t protocol, uint32_t timeout_ms, uint64_t now_ms, gtx_info *out,
                      bool on_lease_slot, gtx_node **made)
{
    int rc = 0;
    if (!on_lease_slot && gtx_slots(t) >= GTX_MAX_LIVE) { /* leases count (gtx_reserve) */
        rc = XATM_ELIMIT;
        goto out;
    }
    if (t->count >= t->n_buckets && (rc = gtx_grow(t)) != 0) goto out;
    gtx_node *g = gtx_node_new(t);
    if (!g) {
        rc = XATM_ENOMEM;
        goto out;
    }
    if (xatm_gtrid_format(g->info.gtrid, sizeof g->info.gtrid, t->tm_id, t->epoch, seq) != 0) {
        rc = XATM_EINVAL;
        goto fail_free_node;
    }
    g->info.seq = seq;
    g->info.protocol = protocol;
    g->info.state = GTX_ACTIVE;
    g->info.begin_ms = now_ms;
    g->info.deadline_ms = now_ms + timeout_ms;
    g->info.timeout_ms = timeout_ms;
    g->info.owner = owner;
    g->info.ap_pid = ap_pid;
    gtx_heap_compact(t, &t->heap, t->n_state[GTX_ACTIVE]);
    if ((rc = gtx_heap_push(&t->heap, g->info.deadline_ms, seq)) != 0) goto fail_free_node;
    size_t b = gtx_bucket_of(t, seq);
    g->next = t->buckets[b];
    t->buckets[b] = g;
    t->count++;
    t->n_state[GTX_ACTIVE]++;
    t->totals.begun++;
    if (out) *out = g->info;
    if (made) *made = g;
    return 0;

fail_free_node:
    gtx_node_free(t, g);
out:
    return rc;
}

int gtx_enlist(gtx_table *t, uint64_t owner, const char *gtrid, const char *rm,
               uint64_t session_id)
{
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    gtx_node *g = gtx_find(t, gtrid);
    if (!g) {
        t->totals.unknown_msgs++;
        rc = XATM_ENOTFOUND;
    } else if (g->info.owner != owner || g->info.state != GTX_ACTIVE) {
        t->totals.rejected_msgs++;
        rc = XATM_ESTATE;
    } else if (!gtx_rm_known(t, rm)) {
        t->totals.rejected_msgs++;
        rc = XATM_EINVAL;
    } else {
        gtx_branch *b = gtx_branch_get(&g->info, rm);
        if (!b) {
            g->info.overflow = true;
            t->totals.rejected_msgs++;
            rc = XATM_ELIMIT;
        } else {
            b->session_id = session_id;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

void gtx_commit_record(const gtx_info *g, xatm_declog_record *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->type = XATM_DL_COMMIT;
    xatm_str_copy(rec->gtrid, sizeof rec->gtrid, g->gtrid);
    rec->protocol = g->protocol;
    for (unsigned i = 0; i < g->n_branches; i++) {
        const gtx_branch *b = &g->branches[i];
        if (b->vote != XATM_VOTE_YES) continue; /* read-only branches already committed */
        xatm_declog_branch *d = &rec->branches[rec->n_branches++];
        xatm_str_copy(d->rm, sizeof d->rm, b->rm);
        d->session_id = b->session_id;
    }
}

void gtx_decision_record(const gtx_info *g, uint8_t type, xatm_declog_record *rec)
{
    if (type == XATM_DL_COMMIT) {
        gtx_commit_record(g, rec);
        return;
    }
    memset(rec, 0, sizeof *rec);
    rec->type = type;
    xatm_str_copy(rec->gtrid, sizeof rec->gtrid, g->gtrid);
    rec->protocol = XATM_PROTOCOL_3PC;
    for (unsigned i = 0; i < g->n_branches; i++) {
        xatm_declog_branch *d = &rec->branches[rec->n_branches++];
        xatm_str_copy(d->rm, sizeof d->rm, g->branches[i].rm);
        d->session_id = g->branches[i].session_id;
    }
}

bool gtx_unresolved_record(const gtx_info *g, xatm_declog_record *rec)
{
    switch (g->state) {
    case GTX_ACTIVE:
        return false;
    case GTX_PRECOMMIT_PENDING:
    case GTX_PRECOMMITTED:
        gtx_decision_record(g, XATM_DL_PRECOMMIT, rec);
        return true;
    case GTX_ABORT_PENDING:
        gtx_decision_record(g, XATM_DL_ABORT, rec);
        return true;
    case GTX_COMMIT_PENDING:
    case GTX_COMMITTING:
        gtx_commit_record(g, rec);
        return true;
    }
    return false;
}

/* PRECOMMITTED g is aborted (cause, reason): ABORT_PENDING, its ABORT record in *rec. */
static void gtx_to_abort_pending(gtx_table *t, gtx_node *g, enum gtx_abort_cause cause,
                                 const char *reason, xatm_declog_record *rec)
{
    gtx_set_state(t, g, GTX_ABORT_PENDING);
    g->info.abort_cause = (uint8_t)cause;
    snprintf(g->info.abort_reason, sizeof g->info.abort_reason, "%s", reason);
    gtx_decision_record(&g->info, XATM_DL_ABORT, rec);
}

/* Decides an abort of g because branch `rm` `what` (removes it). */
static void gtx_vote_abort(gtx_table *t, gtx_node *g, gtx_vote_result *out, const char *rm,
                           const char *what)
{
    out->outcome = XATM_OUTCOME_ABORT;
    if (rm)
        snprintf(out->reason, sizeof out->reason, "branch %s %s", rm, what);
    else
        snprintf(out->reason, sizeof out->reason, "%s", what);
    gtx_abort(t, g, GTX_ABORT_VOTE);
}

/* The provisional answer to a VOTE for a gtrid that is not live (gtx.h, gtx_vote). */
static void gtx_vote_unknown(const gtx_table *t, const char *gtrid, gtx_vote_result *out)
{
    xatm_gtrid_parts p;
    const gtx_aborted *a;
    if (!gtrid || xatm_gtrid_parse(gtrid, &p) != 0 || strcmp(p.tm_id, t->tm_id) != 0 ||
        p.epoch > t->epoch) {
        out->unknown = GTX_UNK_FOREIGN;
        out->outcome = XATM_OUTCOME_ABORT;
        snprintf(out->reason, sizeof out->reason,
                 "unknown transaction: not issued by this xatmd");
    } else if (p.epoch < t->epoch) {
        out->unknown = GTX_UNK_EARLIER_EPOCH;
        out->error = XATM_EUNKNOWN;
        snprintf(out->reason, sizeof out->reason,
                 "transaction of an earlier xatmd incarnation (epoch %u); outcome not "
                 "remembered",
                 p.epoch);
    } else if (p.seq >= t->next_seq) {
        out->unknown = GTX_UNK_NEVER_ISSUED;
        out->outcome = XATM_OUTCOME_ABORT;
        snprintf(out->reason, sizeof out->reason, "unknown transaction: never issued");
    } else if ((a = gtx_find_abort(t, p.seq)) != NULL) {
        out->unknown = GTX_UNK_ABORTED;
        out->outcome = XATM_OUTCOME_ABORT;
        const char *why = "transaction aborted";
        switch (a->cause) {
        case GTX_ABORT_TIMEOUT:
            why = "transaction timed out";
            break;
        case GTX_ABORT_VOTE:
            why = "transaction already aborted at its vote";
            break;
        case GTX_ABORT_ROLLBACK:
            why = "transaction rolled back by its AP";
            break;
        case GTX_ABORT_DISCONNECT:
            why = "transaction aborted: its AP disconnected";
            break;
        case GTX_ABORT_ACK_TIMEOUT:
            why = "transaction aborted: PreCommit not acknowledged in time";
            break;
        }
        snprintf(out->reason, sizeof out->reason, "%s", why);
    } else {
        out->unknown = GTX_UNK_FINISHED;
        out->error = XATM_EUNKNOWN;
        snprintf(out->reason, sizeof out->reason,
                 "transaction already finished; outcome not remembered");
    }
}

/* Records the entries' votes and sessions on ACTIVE g's branches. false when it aborted g
 * (too many branches, an unknown RM: *out says why). */
static bool gtx_apply_votes(gtx_table *t, gtx_node *g, const xatm_msg_vote_entry *e, size_t n,
                            gtx_vote_result *out)
{
    if (g->info.overflow) {
        gtx_vote_abort(t, g, out, NULL, "more than 32 branches enlisted");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!gtx_rm_known(t, e[i].rm)) {
            gtx_vote_abort(t, g, out, e[i].rm, "names an RM that is not configured");
            return false;
        }
        gtx_branch *b = gtx_branch_get(&g->info, e[i].rm);
        if (!b) {
            gtx_vote_abort(t, g, out, NULL, "more than 32 branches enlisted");
            return false;
        }
        b->vote = e[i].vote;
        b->session_id = e[i].session_id;
    }
    return true;
}

/* The PreCommit acknowledgement (a VOTE on PRECOMMITTED g): see the transition table. */
static void gtx_vote_ack(gtx_table *t, gtx_node *g, const xatm_msg_vote_entry *e, size_t n,
                         gtx_vote_result *out)
{
    uint8_t ack[XATM_MAX_BRANCHES] = {0};
    char why[XATM_REASON_MAX + 1] = "";
    for (size_t i = 0; i < n && !why[0]; i++) {
        gtx_branch *b = gtx_branch_find(&g->info, e[i].rm);
        if (!b)
            snprintf(why, sizeof why, "branch %s was not part of the PreCommit", e[i].rm);
        else
            ack[b - g->info.branches] = e[i].vote;
    }
    unsigned yes = 0;
    for (unsigned i = 0; i < g->info.n_branches && !why[0]; i++) {
        const char *rm = g->info.branches[i].rm;
        switch (ack[i]) {
        case XATM_VOTE_YES:
            yes++;
            break;
        case XATM_VOTE_READONLY:
            break;
        case 0:
            snprintf(why, sizeof why, "branch %s did not acknowledge PreCommit", rm);
            break;
        case XATM_VOTE_NO:
            snprintf(why, sizeof why, "branch %s could not prepare after PreCommit", rm);
            break;
        default:
            snprintf(why, sizeof why, "branch %s sent an invalid PreCommit acknowledgement", rm);
            break;
        }
    }
    if (why[0]) {
        out->outcome = XATM_OUTCOME_ABORT;
        snprintf(out->reason, sizeof out->reason, "%s", why);
        out->must_log = true;
        gtx_to_abort_pending(t, g, GTX_ABORT_VOTE, why, &out->rec);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        gtx_branch *b = gtx_branch_find(&g->info, e[i].rm);
        b->vote = e[i].vote;
        if (e[i].session_id) b->session_id = e[i].session_id;
    }
    out->outcome = XATM_OUTCOME_COMMIT;
    t->totals.committed++;
    if (yes == 0) {
        /* every branch committed at its prepare: nothing left to commit, the PRECOMMIT
         * record is closed by the END the caller appends */
        out->must_end = true;
        gtx_remove(t, g, false);
        return;
    }
    gtx_set_state(t, g, GTX_COMMIT_PENDING);
    out->must_log = true;
    gtx_commit_record(&g->info, &out->rec);
}

int gtx_vote(gtx_table *t, uint64_t owner, const char *gtrid, const xatm_msg_vote_entry *e,
             size_t n, gtx_vote_result *out)
{
    memset(out, 0, sizeof *out);
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    uint64_t seq = gtx_seq_of(t, gtrid);
    gtx_node *g = seq ? gtx_find_seq(t, seq) : NULL;
    if (!g) {
        gtx_vote_unknown(t, gtrid, out);
        goto out_unlock;
    }
    if (g->info.owner != owner ||
        (g->info.state != GTX_ACTIVE && g->info.state != GTX_PRECOMMITTED)) {
        rc = XATM_ESTATE;
        goto out_unlock;
    }
    out->seq = seq;
    out->protocol = g->info.protocol;
    if (g->info.state == GTX_PRECOMMITTED) {
        gtx_vote_ack(t, g, e, n, out);
        goto out_unlock;
    }
    if (g->info.protocol == XATM_PROTOCOL_3PC) {
        gtx_vote_abort(t, g, out, NULL,
                       "VOTE without CanCommit: a 3PC transaction answers CANCOMMIT first");
        goto out_unlock;
    }
    if (!gtx_apply_votes(t, g, e, n, out)) goto out_unlock;
    unsigned yes = 0;
    for (unsigned i = 0; i < g->info.n_branches; i++) {
        const gtx_branch *b = &g->info.branches[i];
        switch (b->vote) {
        case XATM_VOTE_YES:
            yes++;
            break;
        case XATM_VOTE_READONLY:
            break;
        case 0:
            gtx_vote_abort(t, g, out, b->rm, "did not vote");
            goto out_unlock;
        case XATM_VOTE_NO:
            gtx_vote_abort(t, g, out, b->rm, "voted no");
            goto out_unlock;
        default:
            gtx_vote_abort(t, g, out, b->rm, "sent an invalid vote");
            goto out_unlock;
        }
    }
    out->outcome = XATM_OUTCOME_COMMIT;
    t->totals.committed++;
    if (yes == 0) {
        /* nothing prepared: every branch already committed at its prepare */
        gtx_remove(t, g, false);
        goto out_unlock;
    }
    gtx_set_state(t, g, GTX_COMMIT_PENDING);
    out->must_log = true;
    gtx_commit_record(&g->info, &out->rec);

out_unlock:
    pthread_mutex_unlock(&t->mu);
    return rc;
}

/* Room in the ack heap for every transaction on its way to PRECOMMITTED, plus one, so
 * gtx_precommit_durable (after the flush: it must not fail) never allocates. */
static int gtx_ack_heap_reserve(gtx_table *t)
{
    gtx_heap *h = &t->ack_heap;
    size_t need = h->len + (size_t)t->n_state[GTX_PRECOMMIT_PENDING] + 1;
    if (h->cap >= need) return 0;
    size_t cap = h->cap ? h->cap : 64;
    while (cap < need) cap *= 2;
    gtx_deadline *v = realloc(h->v, cap * sizeof *v);
    if (!v) return XATM_ENOMEM;
    h->v = v;
    h->cap = cap;
    return 0;
}

int gtx_cancommit(gtx_table *t, uint64_t owner, const char *gtrid,
                  const xatm_msg_vote_entry *e, size_t n, gtx_vote_result *out)
{
    memset(out, 0, sizeof *out);
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    uint64_t seq = gtx_seq_of(t, gtrid);
    gtx_node *g = seq ? gtx_find_seq(t, seq) : NULL;
    if (!g) {
        gtx_vote_unknown(t, gtrid, out);
        goto out_unlock;
    }
    if (g->info.owner != owner || g->info.state != GTX_ACTIVE) {
        rc = XATM_ESTATE;
        goto out_unlock;
    }
    out->seq = seq;
    out->protocol = g->info.protocol;
    if (g->info.protocol != XATM_PROTOCOL_3PC) {
        gtx_vote_abort(t, g, out, NULL, "CANCOMMIT on a 2PC transaction");
        goto out_unlock;
    }
    if (!gtx_apply_votes(t, g, e, n, out)) goto out_unlock;
    for (unsigned i = 0; i < g->info.n_branches; i++) {
        const gtx_branch *b = &g->info.branches[i];
        switch (b->vote) {
        case XATM_VOTE_YES:
            break;
        case 0:
            gtx_vote_abort(t, g, out, b->rm, "did not answer CanCommit");
            goto out_unlock;
        case XATM_VOTE_NO:
            gtx_vote_abort(t, g, out, b->rm, "answered no to CanCommit");
            goto out_unlock;
        default: /* READONLY too: a 3PC branch writes its marker row, it is never read-only */
            gtx_vote_abort(t, g, out, b->rm, "sent an invalid CanCommit answer");
            goto out_unlock;
        }
    }
    if (g->info.n_branches == 0) {
        out->outcome = XATM_OUTCOME_COMMIT; /* nothing to commit */
        t->totals.committed++;
        gtx_remove(t, g, false);
        goto out_unlock;
    }
    if (gtx_ack_heap_reserve(t) != 0) {
        gtx_vote_abort(t, g, out, NULL, "xatmd is out of memory");
        goto out_unlock;
    }
    gtx_set_state(t, g, GTX_PRECOMMIT_PENDING);
    out->outcome = XATM_OUTCOME_PRECOMMIT;
    out->must_log = true;
    gtx_decision_record(&g->info, XATM_DL_PRECOMMIT, &out->rec);

out_unlock:
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int gtx_precommit_durable(gtx_table *t, uint64_t seq, uint64_t now_ms, uint32_t ack_timeout_ms)
{
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    gtx_node *g = gtx_find_seq(t, seq);
    if (!g) {
        rc = XATM_ENOTFOUND;
    } else if (g->info.state != GTX_PRECOMMIT_PENDING) {
        rc = XATM_ESTATE;
    } else {
        gtx_heap_compact(t, &t->ack_heap, t->n_state[GTX_PRECOMMITTED]);
        gtx_set_state(t, g, GTX_PRECOMMITTED);
        g->info.ack_deadline_ms = now_ms + ack_timeout_ms;
        /* cannot fail: gtx_cancommit reserved the room */
        rc = gtx_heap_push(&t->ack_heap, g->info.ack_deadline_ms, seq);
        assert(rc == 0);
        rc = 0;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int gtx_abort_durable(gtx_table *t, uint64_t seq, void (*cb)(const gtx_info *g, void *arg),
                      void *arg)
{
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    gtx_node *g = gtx_find_seq(t, seq);
    if (!g) {
        rc = XATM_ENOTFOUND;
    } else if (g->info.state != GTX_ABORT_PENDING) {
        rc = XATM_ESTATE;
    } else {
        if (cb) cb(&g->info, arg);
        gtx_abort(t, g, (enum gtx_abort_cause)g->info.abort_cause);
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int gtx_commit_durable(gtx_table *t, uint64_t seq, uint64_t now_ms)
{
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    gtx_node *g = gtx_find_seq(t, seq);
    if (!g) {
        rc = XATM_ENOTFOUND;
    } else if (g->info.state != GTX_COMMIT_PENDING) {
        rc = XATM_ESTATE;
    } else {
        gtx_set_state(t, g, GTX_COMMITTING);
        g->info.deadline_ms = now_ms + g->info.timeout_ms;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static bool gtx_xa_rc_done(int32_t rc)
{
    return rc == XATM_XA_OK || rc == XATM_XAER_NOTA;
}

int gtx_done(gtx_table *t, uint64_t owner, const char *gtrid, uint8_t outcome,
             const xatm_msg_done_entry *e, size_t n, gtx_done_result *out)
{
    memset(out, 0, sizeof *out);
    out->action = GTX_DONE_IGNORED;
    out->note = "";
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    gtx_node *g = gtx_find(t, gtrid);
    if (!g) {
        /* a DONE(abort) after an abort decision is the normal end of an aborted
         * transaction that xatmd already forgot: not worth counting */
        if (outcome != XATM_OUTCOME_ABORT) t->totals.unknown_msgs++;
        rc = XATM_ENOTFOUND;
        goto out_unlock;
    }
    if (g->info.owner != owner) {
        t->totals.rejected_msgs++;
        rc = XATM_ESTATE;
        goto out_unlock;
    }
    out->protocol = g->info.protocol;
    out->seq = g->info.seq;
    if (outcome == XATM_OUTCOME_COMMIT_DECIDED &&
        (g->info.state != GTX_ACTIVE || g->info.protocol != XATM_PROTOCOL_2PC)) {
        t->totals.rejected_msgs++;
        out->note = "DONE commit-decided (decision in a branch) for a transaction that is not "
                    "an active 2PC one: ignored";
        goto out_unlock;
    }
    switch (g->info.state) {
    case GTX_ACTIVE:
        if (outcome == XATM_OUTCOME_COMMIT_DECIDED) {
            /* the decider committed with its decision row: the decision is in that RM,
             * nothing is logged here; a branch whose phase 2 did not finish stays
             * prepared, and recovery finds the commit row when it resolves the gtrid */
            t->totals.committed++;
            for (size_t i = 0; i < n; i++)
                if (!gtx_xa_rc_done(e[i].xa_rc) && e[i].xa_rc != XATM_XA_RDONLY) {
                    out->note = "committed by its decider branch, and a branch's phase-2 commit "
                                "did not finish: recovery will complete it (the decider's "
                                "commit row is the decision)";
                    out->wake_recovery = true;
                }
            gtx_remove(t, g, false);
            out->action = GTX_DONE_REMOVED;
            break;
        }
        if (outcome == XATM_OUTCOME_COMMIT && g->info.n_branches <= 1) {
            t->totals.committed++;
            gtx_remove(t, g, false);
        } else {
            if (outcome == XATM_OUTCOME_COMMIT)
                out->note = "DONE commit of several branches without a commit decision: "
                            "treated as an abort";
            gtx_abort(t, g, GTX_ABORT_ROLLBACK);
        }
        out->action = GTX_DONE_REMOVED;
        break;
    case GTX_COMMIT_PENDING:
    case GTX_PRECOMMIT_PENDING:
    case GTX_ABORT_PENDING:
        t->totals.rejected_msgs++;
        out->note = "DONE before the decision was sent: ignored";
        break;
    case GTX_PRECOMMITTED:
        if (outcome == XATM_OUTCOME_COMMIT) {
            t->totals.rejected_msgs++;
            out->note = "DONE commit before DoCommit was sent: ignored (the transaction is "
                        "aborted unless PreCommit is acknowledged in time)";
            break;
        }
        gtx_to_abort_pending(t, g, GTX_ABORT_ROLLBACK,
                             "transaction rolled back by its AP after PreCommit", &out->rec);
        out->action = GTX_DONE_ABORT_LOG;
        break;
    case GTX_COMMITTING:
        if (outcome != XATM_OUTCOME_COMMIT) {
            out->note = "DONE abort contradicts the durable commit decision: recovery will "
                        "commit the branches";
            gtx_orphan(t, g);
            out->action = GTX_DONE_ORPHANED;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            gtx_branch *b = gtx_branch_find(&g->info, e[i].rm);
            if (b && gtx_xa_rc_done(e[i].xa_rc)) b->acked = true;
        }
        bool all = true;
        for (unsigned i = 0; i < g->info.n_branches; i++)
            if (g->info.branches[i].vote == XATM_VOTE_YES && !g->info.branches[i].acked)
                all = false;
        if (all) {
            gtx_remove(t, g, false);
            out->action = GTX_DONE_ENDED;
        } else {
            out->note = "a branch's phase-2 commit did not finish: recovery will complete it";
            gtx_orphan(t, g);
            out->action = GTX_DONE_ORPHANED;
        }
        break;
    }

out_unlock:
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int gtx_rollback(gtx_table *t, uint64_t owner, const char *gtrid, xatm_declog_record *abort_rec)
{
    int rc = 0;
    if (abort_rec) abort_rec->type = 0;
    pthread_mutex_lock(&t->mu);
    gtx_node *g = gtx_find(t, gtrid);
    if (!g) {
        t->totals.unknown_msgs++;
        rc = XATM_ENOTFOUND;
    } else if (g->info.owner == owner && g->info.state == GTX_ACTIVE) {
        gtx_abort(t, g, GTX_ABORT_ROLLBACK);
    } else if (g->info.owner == owner && g->info.state == GTX_PRECOMMITTED && abort_rec) {
        gtx_to_abort_pending(t, g, GTX_ABORT_ROLLBACK,
                             "transaction rolled back by its AP after PreCommit", abort_rec);
    } else {
        t->totals.rejected_msgs++;
        rc = XATM_ESTATE;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

size_t gtx_conn_lost(gtx_table *t, uint64_t owner, size_t *orphaned)
{
    size_t aborted = 0, orph = 0;
    if (owner == 0) goto out;
    pthread_mutex_lock(&t->mu);
    size_t r = gtx_resv_of_owner(t, owner);
    if (r < t->n_resv) gtx_resv_drop(t, r); /* its seqs never begun: nothing of them exists */
    for (size_t i = 0; i < t->n_buckets; i++) {
        gtx_node *g = t->buckets[i];
        while (g) {
            gtx_node *next = g->next;
            if (g->info.owner == owner) {
                if (g->info.state == GTX_ACTIVE) {
                    gtx_abort(t, g, GTX_ABORT_DISCONNECT);
                    aborted++;
                } else {
                    gtx_orphan(t, g);
                    orph++;
                }
            }
            g = next;
        }
    }
    pthread_mutex_unlock(&t->mu);
out:
    if (orphaned) *orphaned = orph;
    return aborted;
}

size_t gtx_expire(gtx_table *t, uint64_t now_ms, void (*cb)(const gtx_info *g, void *arg),
                  void *arg)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    while (t->heap.len && t->heap.v[0].deadline_ms <= now_ms) {
        gtx_node *g = gtx_heap_entry_live(t, &t->heap, &t->heap.v[0]);
        gtx_heap_pop(&t->heap);
        if (!g) continue;
        if (cb) cb(&g->info, arg);
        t->totals.timed_out++;
        gtx_abort(t, g, GTX_ABORT_TIMEOUT);
        n++;
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

size_t gtx_expire_precommits(gtx_table *t, uint64_t now_ms,
                             void (*cb)(const gtx_info *g, const xatm_declog_record *rec,
                                        void *arg),
                             void *arg)
{
    size_t n = 0;
    xatm_declog_record rec;
    pthread_mutex_lock(&t->mu);
    while (t->ack_heap.len && t->ack_heap.v[0].deadline_ms <= now_ms) {
        gtx_node *g = gtx_heap_entry_live(t, &t->ack_heap, &t->ack_heap.v[0]);
        gtx_heap_pop(&t->ack_heap);
        if (!g) continue;
        gtx_to_abort_pending(t, g, GTX_ABORT_ACK_TIMEOUT,
                             "transaction aborted: PreCommit not acknowledged within "
                             "tm.precommit_timeout",
                             &rec);
        if (cb) cb(&g->info, &rec, arg);
        n++;
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

uint64_t gtx_next_deadline(gtx_table *t)
{
    uint64_t d = UINT64_MAX;
    pthread_mutex_lock(&t->mu);
    d = gtx_heap_first(t, &t->heap);
    uint64_t a = gtx_heap_first(t, &t->ack_heap);
    if (a < d) d = a;
    pthread_mutex_unlock(&t->mu);
    return d;
}

enum gtx_verdict gtx_recovery_verdict(gtx_table *t, const char *gtrid, uint64_t now_ms,
                                      gtx_info *out)
{
    enum gtx_verdict v = GTX_V_UNKNOWN;
    pthread_mutex_lock(&t->mu);
    gtx_node *g = gtx_find(t, gtrid);
    if (!g) {
        /* an unused seq of a connected AP's lease as far as xatmd has read: the AP may
         * have written the ENLIST that begins it, and prepared, before xatmd read it */
        uint64_t seq;
        if (gtx_resv_of_gtrid(t, gtrid, &seq) < t->n_resv) {
            v = GTX_V_LIVE;
            if (out) {
                /* nothing is known of it yet: no branch, no session, no deadline */
                memset(out, 0, sizeof *out);
                snprintf(out->gtrid, sizeof out->gtrid, "%s", gtrid);
                out->seq = seq;
                out->state = GTX_ACTIVE;
            }
        }
        goto out_unlock;
    }
    if (out) *out = g->info;
    switch (g->info.state) {
    case GTX_ACTIVE:
        if (now_ms < g->info.deadline_ms) {
            v = GTX_V_LIVE;
        } else {
            /* abort it here, under the mutex: its VOTE can no longer commit it */
            t->totals.timed_out++;
            gtx_abort(t, g, GTX_ABORT_TIMEOUT);
            v = GTX_V_ABORTED_NOW;
        }
        break;
    case GTX_COMMIT_PENDING:
    case GTX_PRECOMMIT_PENDING:
    case GTX_PRECOMMITTED: /* past its ack deadline: the event loop aborts it (forced) */
    case GTX_ABORT_PENDING: /* nothing is rolled back before its ABORT is durable */
        v = GTX_V_LIVE;
        break;
    case GTX_COMMITTING:
        v = g->info.owner != 0 && now_ms < g->info.deadline_ms ? GTX_V_LIVE : GTX_V_COMMIT;
        break;
    }
out_unlock:
    pthread_mutex_unlock(&t->mu);
    return v;
}

/* Hands COMMITTING and PRECOMMITTED transactions with owner 0 (and, with `overdue`,
 * COMMITTING ones past their deadline at now_ms) to cb, removing each it accepts. */
static size_t gtx_take(gtx_table *t, bool overdue, uint64_t now_ms,
                       int (*cb)(const gtx_info *g, void *arg), void *arg)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    if (t->n_orphaned == 0 && (!overdue || t->n_state[GTX_COMMITTING] == 0)) goto out_unlock;
    for (size_t i = 0; i < t->n_buckets; i++) {
        gtx_node *g = t->buckets[i];
        while (g) {
            gtx_node *next = g->next;
            bool take = (g->info.state == GTX_COMMITTING &&
                         (g->info.owner == 0 || (overdue && now_ms >= g->info.deadline_ms))) ||
                        (g->info.state == GTX_PRECOMMITTED && g->info.owner == 0);
            if (take && cb(&g->info, arg) == 0) {
                gtx_remove(t, g, false);
                n++;
            }
            g = next;
        }
    }
out_unlock:
    pthread_mutex_unlock(&t->mu);
    return n;
}

size_t gtx_take_orphans(gtx_table *t, int (*cb)(const gtx_info *g, void *arg), void *arg)
{
    return gtx_take(t, false, 0, cb, arg);
}

size_t gtx_take_overdue(gtx_table *t, uint64_t now_ms, int (*cb)(const gtx_info *g, void *arg),
                        void *arg)
{
    return gtx_take(t, true, now_ms, cb, arg);
}

int gtx_recent_abort(gtx_table *t, const char *gtrid, gtx_abort_info *out)
{
    int rc = XATM_ENOTFOUND;
    pthread_mutex_lock(&t->mu);
    uint64_t seq = gtx_seq_of(t, gtrid);
    const gtx_aborted *a = seq ? gtx_find_abort(t, seq) : NULL;
    if (a) {
        memset(out, 0, sizeof *out);
        snprintf(out->gtrid, sizeof out->gtrid, "%s", gtrid);
        out->cause = a->cause;
        out->timeout_ms = a->timeout_ms;
        out->deadline_ms = a->deadline_ms;
        out->ap_pid = a->ap_pid;
        const gtx_held *h = gtx_held_find(t, seq);
        for (unsigned i = 0; h && i < h->n_branches; i++) {
            gtx_branch *b = &out->branches[out->n_branches++];
            snprintf(b->rm, sizeof b->rm, "%s", h->branches[i].rm);
            b->session_id = h->branches[i].session_id;
        }
        rc = 0;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

uint64_t gtx_abort_mark(gtx_table *t)
{
    pthread_mutex_lock(&t->mu);
    uint64_t m = t->abort_count;
    pthread_mutex_unlock(&t->mu);
    return m;
}

size_t gtx_aborts_scanned(gtx_table *t, const char *rm, uint64_t mark, uint64_t now_ms,
                          bool (*present)(const char *gtrid, const char *rm, void *arg),
                          void *arg)
{
    size_t released = 0;
    char gtrid[XATM_GTRID_MAX + 1];
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n_held_buckets; i++) {
        gtx_held **pp = &t->held[i];
        while (*pp) {
            gtx_held *h = *pp;
            if (h->abort_no <= mark) {
                bool named = false;
                for (unsigned k = 0; k < h->n_branches; k++) {
                    gtx_held_branch *b = &h->branches[k];
                    if (strcmp(b->rm, rm) != 0) continue;
                    if (!named &&
                        xatm_gtrid_format(gtrid, sizeof gtrid, t->tm_id, t->epoch, h->a.seq) != 0)
                        break;
                    named = true;
                    if (present(gtrid, rm, arg))
                        b->clean = 0;
                    else if (b->clean < 2)
                        b->clean++;
                }
            }
            bool gone = true;
            for (unsigned k = 0; k < h->n_branches && gone; k++)
                if (h->branches[k].clean < 2) gone = false;
            if (gone &&
                (h->a.cause == GTX_ABORT_DISCONNECT || h->a.cause == GTX_ABORT_ACK_TIMEOUT) &&
                now_ms < h->a.deadline_ms)
                gone = false; /* its AP may still prepare before its deadline */
            if (gone) {
                *pp = h->next;
                free(h);
                t->n_held--;
                released++;
            } else {
                pp = &h->next;
            }
        }
    }
    pthread_mutex_unlock(&t->mu);
    return released;
}

int gtx_table_set_epoch(gtx_table *t, uint32_t epoch)
{
    if (epoch == 0) return XATM_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    if (t->next_seq != 1 || t->count != 0)
        rc = XATM_ESTATE;
    else
        t->epoch = epoch;
    pthread_mutex_unlock(&t->mu);
    return rc;
}

uint32_t gtx_table_epoch(gtx_table *t)
{
    pthread_mutex_lock(&t->mu);
    uint32_t e = t->epoch;
    pthread_mutex_unlock(&t->mu);
    return e;
}

const char *gtx_abort_cause_name(enum gtx_abort_cause c)
{
    switch (c) {
    case GTX_ABORT_TIMEOUT:
        return "timed out";
    case GTX_ABORT_VOTE:
        return "aborted at its vote";
    case GTX_ABORT_ROLLBACK:
        return "rolled back by its AP";
    case GTX_ABORT_DISCONNECT:
        return "its AP disconnected";
    case GTX_ABORT_ACK_TIMEOUT:
        return "PreCommit not acknowledged in time";
    }
    return "aborted";
}

int gtx_lookup(gtx_table *t, const char *gtrid, gtx_info *out)
{
    int rc = XATM_ENOTFOUND;
    pthread_mutex_lock(&t->mu);
    gtx_node *g = gtx_find(t, gtrid);
    if (g) {
        *out = g->info;
        rc = 0;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

void gtx_foreach(gtx_table *t, void (*cb)(const gtx_info *g, void *arg), void *arg)
{
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n_buckets; i++)
        for (gtx_node *g = t->buckets[i]; g; g = g->next) cb(&g->info, arg);
    pthread_mutex_unlock(&t->mu);
}

void gtx_get_counts(gtx_table *t, gtx_counts *out)
{
    pthread_mutex_lock(&t->mu);
    *out = t->totals;
    out->active = t->n_state[GTX_ACTIVE];
    out->commit_pending = t->n_state[GTX_COMMIT_PENDING];
    out->committing = t->n_state[GTX_COMMITTING];
    out->precommit_pending = t->n_state[GTX_PRECOMMIT_PENDING];
    out->precommitted = t->n_state[GTX_PRECOMMITTED];
    out->abort_pending = t->n_state[GTX_ABORT_PENDING];
    out->orphaned = t->n_orphaned;
    out->held_aborts = t->n_held;
    pthread_mutex_unlock(&t->mu);
}

const char *gtx_state_name(enum gtx_state s)
{
    switch (s) {
    case GTX_ACTIVE:
        return "active";
    case GTX_COMMIT_PENDING:
        return "commit-pending";
    case GTX_COMMITTING:
        return "committing";
    case GTX_PRECOMMIT_PENDING:
        return "precommit-pending";
    case GTX_PRECOMMITTED:
        return "precommitted";
    case GTX_ABORT_PENDING:
        return "abort-pending";
    }
    return "?";
}
