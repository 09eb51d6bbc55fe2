/*  cv_views.c: a turn's views, packed once, hashed off the loop; see
 *  cv_views.h. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "cv_alloc.h"
#include "cv_views.h"

/*  A distinct view: its bytes, and the name it is found by. */
typedef struct {
    size_t off, len;     /* in bytes.data */
    int64_t rowid, name; /* name -1: not shared */
} copy_t;

/*  A delivery: its queue and seq, and the copy of its view. */
typedef struct {
    cv_queue_t *queue;
    uint64_t seq;
    size_t copy;
} view_t;

struct cv_views_t {
    cv_hasher_t *hasher; /* borrowed */
    bool hashed;
    struct {
        uint8_t *data; /* the copies, one after another */
        size_t used, cap;
    } bytes;
    copy_t *copies;
    cv_hash_job_t *jobs; /* copies[i]'s is jobs[i], from cv_views_start */
    size_t n_copies, copies_cap;
    view_t *views;
    size_t n, cap;
    /* the named copies by (rowid, name), open addressing: a copy's index
     * plus one, 0 for a free slot; never more than half full */
    uint32_t *slots;
    size_t n_slots, named;
    bool started;
};

cv_views_t *cv_views_new(cv_hasher_t *hasher, bool hashed)
{
    cv_views_t *self = cv_xcalloc(1, sizeof *self);
    self->hasher = hasher;
    self->hashed = hashed;
    return self;
}

void cv_views_destroy(cv_views_t **self_p)
{
    cv_views_t *self = *self_p;
    if (!self)
        return;
    cv_views_discard(self);
    free(self->bytes.data);
    free(self->copies);
    free(self->jobs);
    free(self->views);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

static size_t slot_of(const cv_views_t *self, int64_t rowid, int64_t name)
{
    uint64_t h = (uint64_t)rowid * UINT64_C(0x9E3779B97F4A7C15) ^
                 (uint64_t)name * UINT64_C(0xC2B2AE3D27D4EB4F);
    return (size_t)(h ^ (h >> 29)) & (self->n_slots - 1);
}

/*  The slot holding (rowid, name), or the free one where it would go. */
static size_t probe(const cv_views_t *self, int64_t rowid, int64_t name)
{
    size_t i = slot_of(self, rowid, name);
    for (;;) {
        uint32_t held = self->slots[i];
        if (!held)
            return i;
        const copy_t *c = &self->copies[held - 1];
        if (c->rowid == rowid && c->name == name)
            return i;
        i = (i + 1) & (self->n_slots - 1);
    }
}

/*  The copy held under (rowid, name), or NULL: none, or not to be shared. */
static const copy_t *named_copy(const cv_views_t *self, int64_t rowid, int64_t name)
{
    if (name < 0 || self->named == 0)
        return NULL;
    uint32_t held = self->slots[probe(self, rowid, name)];
    return held ? &self->copies[held - 1] : NULL;
}

const uint8_t *cv_views_find(const cv_views_t *self, int64_t rowid, int64_t name, size_t *len)
{
    assert(!self->started);
    const copy_t *c = named_copy(self, rowid, name);
    if (!c)
        return NULL;
    *len = c->len;
    return self->bytes.data + c->off;
}

/*  Room for one more named copy, the slots rebuilt twice the size. */
static void slots_reserve(cv_views_t *self)
{
    if (2 * (self->named + 1) <= self->n_slots)
        return;
    free(self->slots);
    self->n_slots = self->n_slots ? 2 * self->n_slots : 64;
    self->slots = cv_xcalloc(self->n_slots, sizeof *self->slots);
    for (size_t i = 0; i < self->n_copies; i++)
        if (self->copies[i].name >= 0)
            self->slots[probe(self, self->copies[i].rowid, self->copies[i].name)] = (uint32_t)i + 1;
}

/*  Copies view as a new distinct one; its index. */
static size_t copy_view(cv_views_t *self, int64_t rowid, int64_t name, const void *view, size_t len)
{
    if (self->n_copies == self->copies_cap) {
        self->copies_cap = self->copies_cap ? 2 * self->copies_cap : 256;
        self->copies = cv_xrealloc(self->copies, self->copies_cap * sizeof *self->copies);
        self->jobs = cv_xrealloc(self->jobs, self->copies_cap * sizeof *self->jobs);
    }
    if (self->bytes.cap - self->bytes.used < len) {
        size_t cap = self->bytes.cap ? self->bytes.cap : 64 * 1024;
        while (cap - self->bytes.used < len)
            cap *= 2;
        self->bytes.data = cv_xrealloc(self->bytes.data, cap);
        self->bytes.cap = cap;
    }
    memcpy(self->bytes.data + self->bytes.used, view, len);
    size_t i = self->n_copies++;
    self->copies[i] = (copy_t){self->bytes.used, len, rowid, name};
    self->bytes.used += len;
    if (name >= 0) {
        slots_reserve(self);
        self->slots[probe(self, rowid, name)] = (uint32_t)i + 1;
        self->named++;
    }
    return i;
}

void cv_views_add(cv_views_t *self, cv_queue_t *queue, uint64_t seq, int64_t rowid, int64_t name,
                  const void *view, size_t len)
{
    assert(!self->started);
    if (name < 0 && !self->hashed)
        return; /* neither shared nor hashed */
    const copy_t *held = named_copy(self, rowid, name);
    /* one name, one view: what cv_decision_view_key promises */
    assert(!held || (held->len == len && memcmp(self->bytes.data + held->off, view, len) == 0));
    size_t copy = held ? (size_t)(held - self->copies) : copy_view(self, rowid, name, view, len);
    if (!self->hashed)
        return;
    if (self->n == self->cap) {
        self->cap = self->cap ? 2 * self->cap : 256;
        self->views = cv_xrealloc(self->views, self->cap * sizeof *self->views);
    }
    self->views[self->n++] = (view_t){queue, seq, copy};
}

void cv_views_start(cv_views_t *self)
{
    assert(!self->started);
    if (!self->hashed) { /* the pass is over: nothing to hash */
        cv_views_discard(self);
        return;
    }
    if (self->n_copies == 0)
        return;
    /* the copies no longer move: the jobs may point into them */
    for (size_t i = 0; i < self->n_copies; i++)
        self->jobs[i] = (cv_hash_job_t){.bytes = self->bytes.data + self->copies[i].off,
                                        .len = self->copies[i].len,
                                        .fn = cv_checksum_sha256};
    cv_hasher_start(self->hasher, self->jobs, self->n_copies);
    self->started = true;
}

void cv_views_finish(cv_views_t *self)
{
    if (!self->started)
        cv_views_start(self); /* nothing to start when no view was added */
    /* in the order sent: a delivery sent twice in a turn keeps its last */
    for (size_t i = 0; i < self->n; i++) {
        const uint8_t *hash = cv_hasher_take(self->hasher, self->jobs, self->views[i].copy);
        cv_queue_view_hashed(self->views[i].queue, self->views[i].seq, hash);
    }
    cv_views_discard(self);
}

void cv_views_discard(cv_views_t *self)
{
    if (self->started)
        cv_hasher_end(self->hasher);
    self->started = false;
    self->n = 0;
    self->n_copies = 0;
    self->bytes.used = 0;
    if (self->named)
        memset(self->slots, 0, self->n_slots * sizeof *self->slots);
    self->named = 0;
}
