/*  cv_receipts.c: receipts for subscribers; see cv_receipts.h.
 *
 *  Each session that waits for receipts has a list of its deliveries'
 *  leaves, by index (rising: leaves are appended in order), in a table
 *  keyed by the session's address. The open transaction's notes wait in
 *  fresh until it commits. Proofs come from one cv_prover (audit/), which
 *  keeps complete subtrees' hashes, so a receipt costs O(log N).
 */
#include <assert.h>
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#include "cv_alloc.h"
#include "cv_receipts.h"

typedef struct {
    const void *session;
    size_t position; /* fresh: among the transaction's leaves; else unused */
    uint64_t index, seq;
    char *report_id;
} due_t;

typedef struct {
    const void *session;
    due_t *items; /* rising index, from first */
    size_t first, n, cap;
    int64_t since; /* when the oldest waiting was settled (ms, monotonic) */
} waiting_t;

struct cv_receipts_t {
    cv_record_t *record;
    cv_prover_t *prover;
    zhashx_t *sessions; /* session -> waiting_t */
    struct {
        due_t *items;
        size_t n, cap;
    } fresh;
};

static size_t session_hash(const void *key)
{
    uintptr_t p = (uintptr_t)key;
    return (size_t)(p ^ (p >> 17));
}

static int session_compare(const void *a, const void *b)
{
    return a == b ? 0 : (uintptr_t)a < (uintptr_t)b ? -1 : 1;
}

static void waiting_free(void **item)
{
    waiting_t *w = *item;
    for (size_t i = w->first; i < w->n; i++)
        free(w->items[i].report_id);
    free(w->items);
    free(w);
    *item = NULL;
}

cv_receipts_t *cv_receipts_new(cv_record_t *record)
{
    cv_receipts_t *self = cv_xcalloc(1, sizeof *self);
    self->record = record;
    self->prover = cv_prover_new(cv_record_db(record));
    self->sessions = zhashx_new();
    if (!self->prover || !self->sessions)
        abort(); /* as cv_xcalloc: out of memory at start */
    zhashx_set_key_hasher(self->sessions, session_hash);
    zhashx_set_key_comparator(self->sessions, session_compare);
    zhashx_set_key_duplicator(self->sessions, NULL);
    zhashx_set_key_destructor(self->sessions, NULL);
    zhashx_set_destructor(self->sessions, waiting_free);
    return self;
}

static void fresh_clear(cv_receipts_t *self)
{
    for (size_t i = 0; i < self->fresh.n; i++)
        free(self->fresh.items[i].report_id);
    self->fresh.n = 0;
}

void cv_receipts_destroy(cv_receipts_t **self_p)
{
    cv_receipts_t *self = *self_p;
    if (!self)
        return;
    fresh_clear(self);
    free(self->fresh.items);
    zhashx_destroy(&self->sessions);
    cv_prover_destroy(&self->prover);
    free(self);
    *self_p = NULL;
}

void cv_receipts_note(cv_receipts_t *self, const void *session, size_t position, uint64_t seq,
                      const char *report_id)
{
    if (self->fresh.n == self->fresh.cap) {
        self->fresh.cap = self->fresh.cap ? self->fresh.cap * 2 : 64;
        self->fresh.items =
            cv_xrealloc(self->fresh.items, self->fresh.cap * sizeof *self->fresh.items);
    }
    self->fresh.items[self->fresh.n++] =
        (due_t){session, position, 0, seq, cv_xstrdup(report_id ? report_id : "")};
}

static void waiting_push(cv_receipts_t *self, due_t *due)
{
    waiting_t *w = zhashx_lookup(self->sessions, due->session);
    if (!w) {
        w = cv_xcalloc(1, sizeof *w);
        w->session = due->session;
        zhashx_insert(self->sessions, due->session, w);
    }
    if (w->first == w->n) {
        w->first = w->n = 0;
        w->since = zclock_mono();
    }
    if (w->n == w->cap && w->first > 0) { /* the sent ones' room, taken back */
        memmove(w->items, w->items + w->first, (w->n - w->first) * sizeof *w->items);
        w->n -= w->first;
        w->first = 0;
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        w->items = cv_xrealloc(w->items, w->cap * sizeof *w->items);
    }
    w->items[w->n++] = *due;
}

void cv_receipts_settle(cv_receipts_t *self, bool committed)
{
    if (!committed) {
        fresh_clear(self);
        return;
    }
    uint64_t first = cv_record_flushed_first(self->record);
    for (size_t i = 0; i < self->fresh.n; i++) {
        self->fresh.items[i].index = first + self->fresh.items[i].position;
        waiting_push(self, &self->fresh.items[i]); /* the id is the list's now */
    }
    self->fresh.n = 0;
}

void cv_receipts_forget(cv_receipts_t *self, const void *session)
{
    zhashx_delete(self->sessions, session);
    size_t kept = 0;
    for (size_t i = 0; i < self->fresh.n; i++) {
        if (self->fresh.items[i].session == session)
            free(self->fresh.items[i].report_id);
        else
            self->fresh.items[kept++] = self->fresh.items[i];
    }
    self->fresh.n = kept;
}

size_t cv_receipts_waiting(cv_receipts_t *self, const void *session)
{
    waiting_t *w = zhashx_lookup(self->sessions, session);
    return w ? w->n - w->first : 0;
}

size_t cv_receipts_room(cv_receipts_t *self, const void *session)
{
    waiting_t *w = zhashx_lookup(self->sessions, session);
    return w ? w->cap : 0;
}

bool cv_receipts_pending(cv_receipts_t *self)
{
    for (waiting_t *w = zhashx_first(self->sessions); w; w = zhashx_next(self->sessions))
        if (w->first < w->n)
            return true;
    return false;
}

bool cv_receipts_want_checkpoint(cv_receipts_t *self, int64_t now_ms)
{
    uint64_t newest = 0;
    bool due = false;
    for (waiting_t *w = zhashx_first(self->sessions); w; w = zhashx_next(self->sessions))
        if (w->first < w->n && now_ms - w->since >= CV_RECEIPTS_PROMPT_MS) {
            due = true;
            if (w->items[w->n - 1].index > newest)
                newest = w->items[w->n - 1].index;
        }
    cv_error_t err;
    return due && cv_record_checkpointed(self->record, &err) <= (int64_t)newest;
}

/*  One Receipts frame of w's receipts below the checkpoint, at most max;
 *  how many it holds, or -1 with err. */
static int prove_some(cv_receipts_t *self, waiting_t *w, const char *note,
                      const cv_checkpoint_t *checkpoint, size_t max, cv_receipts_send_fn *send,
                      void *arg, cv_error_t *err)
{
    Caveat__Wire__Receipt items[CV_RECEIPTS_PER_FRAME], *ptrs[CV_RECEIPTS_PER_FRAME];
    size_t n = 0;
    bool ok = true;
    while (n < max && n < CV_RECEIPTS_PER_FRAME && w->first + n < w->n &&
           w->items[w->first + n].index < checkpoint->size) {
        const due_t *due = &w->items[w->first + n];
        Caveat__Wire__Receipt *r = &items[n];
        caveat__wire__receipt__init(r);
        uint8_t *leaf = NULL;
        size_t len = 0;
        if (!(r->tlog_proof =
                  cv_prover_prove(self->prover, due->index, note, checkpoint, &leaf, &len, err))) {
            ok = false;
            break;
        }
        r->has_seq = r->has_index = r->has_leaf = true;
        r->seq = due->seq;
        r->index = due->index;
        r->report_id = due->report_id;
        r->leaf = (ProtobufCBinaryData){len, leaf};
        ptrs[n++] = r;
    }
    if (ok && n) {
        Caveat__Wire__Receipts frame = CAVEAT__WIRE__RECEIPTS__INIT;
        frame.n_receipts = n;
        frame.receipts = ptrs;
        send(arg, w->session, &frame);
        for (size_t i = 0; i < n; i++)
            free(w->items[w->first + i].report_id);
        w->first += n;
        w->since = zclock_mono();
    }
    for (size_t i = 0; i < n; i++) {
        free(items[i].tlog_proof);
        free(items[i].leaf.data);
    }
    return ok ? (int)n : -1;
}

bool cv_receipts_take(cv_receipts_t *self, cv_receipts_send_fn *send, void *arg, cv_error_t *err)
{
    if (!cv_receipts_pending(self))
        return true;
    int64_t covered = cv_record_checkpointed(self->record, err);
    if (covered <= 0)
        return covered == 0; /* no checkpoint yet: one is signed soon */
    char *note = cv_audit_checkpoint(cv_record_db(self->record), 0, err);
    cv_checkpoint_t checkpoint;
    size_t body = 0, budget = CV_RECEIPTS_PER_TURN;
    bool ok = note && cv_note_body(note, strlen(note), &body, err) &&
              cv_checkpoint_parse(note, body, &checkpoint, err);
    int learned = ok ? cv_prover_learn(self->prover, checkpoint.size, CV_RECEIPTS_TILES, err) : -1;
    for (waiting_t *w = learned == 1 ? zhashx_first(self->sessions) : NULL; w && budget;
         w = zhashx_next(self->sessions)) {
        int n = 0;
        while (budget && (n = prove_some(self, w, note, &checkpoint, budget, send, arg, err)) > 0)
            budget -= (size_t)n;
        if (n < 0) {
            ok = false;
            break;
        }
    }
    free(note);
    return learned >= 0 && ok;
}
