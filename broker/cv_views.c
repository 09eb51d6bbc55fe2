/*  cv_views.c: views' hashes off the loop; see cv_views.h. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "cv_alloc.h"
#include "cv_audit.h"
#include "cv_views.h"

typedef struct {
    cv_queue_t *queue;
    uint64_t seq;
    size_t off, len; /* the copy, in bytes */
} view_t;

struct cv_views_t {
    cv_hasher_t *hasher; /* borrowed */
    struct {
        uint8_t *data; /* the views' copies, one after another */
        size_t used, cap;
    } bytes;
    view_t *views;
    cv_hash_job_t *jobs; /* views[i]'s is jobs[i], from cv_views_start */
    size_t n, cap;
    bool started;
};

cv_views_t *cv_views_new(cv_hasher_t *hasher)
{
    cv_views_t *self = cv_xcalloc(1, sizeof *self);
    self->hasher = hasher;
    return self;
}

void cv_views_destroy(cv_views_t **self_p)
{
    cv_views_t *self = *self_p;
    if (!self)
        return;
    cv_views_discard(self);
    free(self->bytes.data);
    free(self->views);
    free(self->jobs);
    free(self);
    *self_p = NULL;
}

void cv_views_add(cv_views_t *self, cv_queue_t *queue, uint64_t seq, const void *view, size_t len)
{
    assert(!self->started);
    if (self->n == self->cap) {
        self->cap = self->cap ? 2 * self->cap : 256;
        self->views = cv_xrealloc(self->views, self->cap * sizeof *self->views);
        self->jobs = cv_xrealloc(self->jobs, self->cap * sizeof *self->jobs);
    }
    if (self->bytes.cap - self->bytes.used < len) {
        size_t cap = self->bytes.cap ? self->bytes.cap : 64 * 1024;
        while (cap - self->bytes.used < len)
            cap *= 2;
        self->bytes.data = cv_xrealloc(self->bytes.data, cap);
        self->bytes.cap = cap;
    }
    memcpy(self->bytes.data + self->bytes.used, view, len);
    self->views[self->n++] = (view_t){queue, seq, self->bytes.used, len};
    self->bytes.used += len;
}

/*  SHA-256 in cv_hash_fn's form. */
static void view_sha256(uint8_t sum[CV_CHECKSUM_BYTES], const void *bytes, size_t len)
{
    cv_audit_sha256(bytes, len, sum);
}

void cv_views_start(cv_views_t *self)
{
    assert(!self->started);
    if (self->n == 0)
        return;
    /* the copies no longer move: the jobs may point into them */
    for (size_t i = 0; i < self->n; i++)
        self->jobs[i] = (cv_hash_job_t){.bytes = self->bytes.data + self->views[i].off,
                                        .len = self->views[i].len,
                                        .fn = view_sha256};
    cv_hasher_start(self->hasher, self->jobs, self->n);
    self->started = true;
}

void cv_views_finish(cv_views_t *self)
{
    if (!self->started)
        cv_views_start(self); /* nothing to start when no view was added */
    /* in the order sent: a delivery sent twice in a turn keeps its last */
    for (size_t i = 0; i < self->n; i++) {
        const uint8_t *hash = cv_hasher_take(self->hasher, self->jobs, i);
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
    self->bytes.used = 0;
}
