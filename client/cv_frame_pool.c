/*  cv_frame_pool.c: see cv_frame_pool.h. */
#include "cv_frame_pool.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct {
    cv_frame_pool_t *pool;
    atomic_bool lent; /* set by the lender; cleared by whoever frees the message */
    void *bytes;
} frame_buffer_t;

struct cv_frame_pool_t {
    atomic_size_t
        holds;        /* the owner's, while it has not destroyed the pool, and one a buffer lent */
    size_t bytes;     /* of each buffer */
    size_t cap, made; /* buffers: room for, and made (the lender's alone) */
    frame_buffer_t buffers[];
};

cv_frame_pool_t *cv_frame_pool_new(size_t buffers, size_t bytes)
{
    cv_frame_pool_t *self = calloc(1, sizeof *self + buffers * sizeof(frame_buffer_t));
    if (!self)
        return NULL;
    atomic_init(&self->holds, 1);
    self->bytes = bytes;
    self->cap = buffers;
    return self;
}

static void pool_free(cv_frame_pool_t *self)
{
    for (size_t i = 0; i < self->made; i++)
        free(self->buffers[i].bytes);
    free(self);
}

/*  Drops one hold; the last frees the pool. acq_rel: every buffer's last
 *  use happens before the free. */
static void release_hold(cv_frame_pool_t *self)
{
    if (atomic_fetch_sub_explicit(&self->holds, 1, memory_order_acq_rel) == 1)
        pool_free(self);
}

void cv_frame_pool_destroy(cv_frame_pool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    release_hold(*self_p);
    *self_p = NULL;
}

/*  libzmq's free function for a lent buffer, on the thread that frees the
 *  message. */
static void frame_returned(void *data, void *hint)
{
    (void)data;
    frame_buffer_t *buffer = hint;
    cv_frame_pool_t *pool = buffer->pool;
    atomic_store_explicit(&buffer->lent, false, memory_order_release);
    release_hold(pool);
}

/*  A buffer not lent now, made if need be; NULL when all are lent. */
static frame_buffer_t *free_buffer(cv_frame_pool_t *self)
{
    for (size_t i = 0; i < self->made; i++)
        if (!atomic_load_explicit(&self->buffers[i].lent, memory_order_acquire))
            return &self->buffers[i];
    if (self->made == self->cap)
        return NULL;
    frame_buffer_t *buffer = &self->buffers[self->made];
    if (!(buffer->bytes = malloc(self->bytes)))
        return NULL;
    buffer->pool = self;
    atomic_init(&buffer->lent, false);
    self->made++;
    return buffer;
}

int cv_frame_pool_msg(cv_frame_pool_t *self, zmq_msg_t *msg, size_t size)
{
    frame_buffer_t *buffer = size <= self->bytes ? free_buffer(self) : NULL;
    if (!buffer)
        return zmq_msg_init_size(msg, size) == 0 ? 0 : -1;
    atomic_store_explicit(&buffer->lent, true, memory_order_relaxed);
    atomic_fetch_add_explicit(&self->holds, 1, memory_order_relaxed);
    if (zmq_msg_init_data(msg, buffer->bytes, size, frame_returned, buffer) != 0) {
        atomic_store_explicit(&buffer->lent, false, memory_order_relaxed);
        atomic_fetch_sub_explicit(&self->holds, 1, memory_order_relaxed);
        return -1;
    }
    return 0;
}

size_t cv_frame_pool_lent(const cv_frame_pool_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->made; i++)
        n += atomic_load(&self->buffers[i].lent);
    return n;
}

size_t cv_frame_pool_made(const cv_frame_pool_t *self)
{
    return self->made;
}
