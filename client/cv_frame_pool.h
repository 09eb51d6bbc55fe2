/*  cv_frame_pool.h: buffers for the large frames a client sends, kept for
 *  the next frame instead of given back to the system.
 *
 *  A frame handed to libzmq is freed by libzmq's I/O thread once sent.
 *  For a Publish frame of 256 KB, glibc then gave the buffer's pages back
 *  to the system, and the next frame faulted every one of them in again:
 *  a third of a busy publisher's page faults, each dear on a virtual
 *  machine. A pool lends a buffer to one message at a time
 *  (zmq_msg_init_data); libzmq's free function, on whichever thread frees
 *  the message, returns it. The pool lives until its owner has destroyed
 *  it and every buffer lent is back, so a message libzmq frees after the
 *  client is gone (its linger, or the context's end) frees nothing twice.
 *
 *  One thread (the client's) lends; any thread returns.
 */
#ifndef CV_FRAME_POOL_H
#define CV_FRAME_POOL_H

#include <stddef.h>
#include <zmq.h>

typedef struct cv_frame_pool_t cv_frame_pool_t;

/*  Up to buffers buffers of bytes each, made as they are first needed;
 *  NULL when out of memory. */
cv_frame_pool_t *cv_frame_pool_new(size_t buffers, size_t bytes);
/*  Gives up the owner's hold: the pool goes now, or when the last buffer
 *  lent comes back. */
void cv_frame_pool_destroy(cv_frame_pool_t **self_p);

/*  Initialises msg with size bytes, in a buffer of the pool when one is
 *  free and size fits it, else as zmq_msg_init_size does. 0, or -1 when
 *  out of memory. */
int cv_frame_pool_msg(cv_frame_pool_t *self, zmq_msg_t *msg, size_t size);

/*  Buffers lent now, and buffers made so far: for tests. */
size_t cv_frame_pool_lent(const cv_frame_pool_t *self);
size_t cv_frame_pool_made(const cv_frame_pool_t *self);

#endif
