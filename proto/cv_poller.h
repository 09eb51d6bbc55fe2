/*  cv_poller.h: waiting for messages on czmq sockets, and looking for
 *  them, without asking libzmq again what a socket's descriptor says has
 *  not changed.
 *
 *  libzmq answers a look at an idle socket (ZMQ_EVENTS, and zmq_poll,
 *  which takes that look at every socket it is given) with two system
 *  calls: a getpid and a poll of the socket's mailbox. A loop that looks
 *  at several sockets a few times a turn makes tens of thousands a
 *  second, and on a virtual machine a system call costs microseconds.
 *
 *  A socket's descriptor (ZMQ_FD) becomes readable when libzmq has news
 *  for it, and libzmq sends news of a message only to a reader that has
 *  seen its queue empty. So once a look has found nothing, the socket
 *  stays without messages until its descriptor is readable, provided
 *  nothing else on the socket reads the news first: only this inbox's
 *  looks may, and a send may (libzmq reads its news when it sends), which
 *  is why the owner tells the inbox after each send. An inbox that found
 *  nothing is "quiet" and looking at it costs nothing; one poll() over
 *  every inbox's descriptor, in cv_poller_wait, wakes the ones with news.
 */
#ifndef CV_POLLER_H
#define CV_POLLER_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct cv_inbox_t cv_inbox_t;
typedef struct cv_poller_t cv_poller_t;

/*  An inbox for sock (a zsock_t or a zactor_t), which it does not own.
 *  exclusive: every read of
 *  sock follows a cv_inbox_ready that said yes, and every other use of it
 *  that may read libzmq's news (a send, zmq_poll, ZMQ_EVENTS) is followed
 *  by cv_inbox_touched. Only then may the inbox be quiet; a shared one
 *  asks libzmq at every look. NULL when out of memory. */
cv_inbox_t *cv_inbox_new(void *sock, bool exclusive);
void cv_inbox_destroy(cv_inbox_t **self_p);

/*  Whether a message waits to be read, as of the last cv_poller_wait of
 *  a poller that watches this inbox (or later): costs no system call when
 *  the inbox is quiet. A yes means the caller reads; the next look asks
 *  again. */
bool cv_inbox_ready(cv_inbox_t *self);

/*  The same, as of now: a quiet inbox costs one poll() of its descriptor.
 *  For a look whose answer must include whatever came before some other
 *  socket's message that was just seen. */
bool cv_inbox_ready_now(cv_inbox_t *self);

/*  Waits up to timeout_ms (-1: without end) for a message in this inbox
 *  alone, asking libzmq again at least every 250 ms (cv_poller_wait). */
bool cv_inbox_wait(cv_inbox_t *self, int timeout_ms);

/*  The owner used the socket in a way that may have read libzmq's news
 *  (a send): the next look asks libzmq. */
void cv_inbox_touched(cv_inbox_t *self);

void *cv_inbox_socket(const cv_inbox_t *self);

/*  A socket's ZMQ_EVENTS (a zsock_t, an actor or a libzmq socket), or -1
 *  when libzmq cannot tell (ETERM once its context ends): czmq's
 *  zsock_events returns an uninitialised int then. cv_socket_readable:
 *  a message waits (false on an error).                                */
int cv_socket_events(void *sock);
bool cv_socket_readable(void *sock);

/*  A set of inboxes to wait on. It does not own them; each must outlive
 *  its place in the poller. NULL when out of memory. */
cv_poller_t *cv_poller_new(void);
void cv_poller_destroy(cv_poller_t **self_p);
int cv_poller_add(cv_poller_t *self, cv_inbox_t *inbox);
void cv_poller_remove(cv_poller_t *self, cv_inbox_t *inbox);

/*  Waits up to timeout_ms (0: not at all, -1: without end) until an inbox
 *  has a message or news, or poll() fails (a signal: errno EINTR). Every
 *  inbox with news is looked at again by its next cv_inbox_ready. Returns
 *  1 when an inbox was ready or had news, 0 after the timeout, -1 when
 *  poll() failed. A quiet inbox is trusted for 250 ms: the wait that
 *  ends after that, whatever ended it, asks libzmq about it again, and no
 *  wait lasts past it (so 0 may come sooner than timeout_ms). A use of a
 *  socket its owner failed to tell costs a delay, never a message left
 *  unread. */
int cv_poller_wait(cv_poller_t *self, int timeout_ms);

/*  Messages those second looks found behind a descriptor that had said
 *  nothing: each is a wakeup the inboxes' rules missed, a bug to report. */
uint64_t cv_poller_recovered(const cv_poller_t *self);

#endif
