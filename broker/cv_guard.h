/*  cv_guard.h: bounds the broker's connections that have not opened a
 *  session: those still in their CURVE handshake and those authenticated
 *  that have not said Hello. So neither connections which never
 *  authenticate (idle TCP connections, stalled handshakes) nor a listed
 *  agency's connections that authenticate and stay silent can use up the
 *  broker's descriptors and keep other agencies out.
 *
 *  It raises the descriptor limit, sets the handshake timeout on the
 *  ROUTER, and watches the ROUTER's connection events. A connection is
 *  pending from its acceptance until the broker says it opened a session
 *  (cv_guard_admit). Pending connections older than twice the handshake
 *  timeout (the handshake's own limit, then as long again for Hello) are
 *  ended, and when more are pending than the cap, the oldest are: a
 *  real agency's handshake and Hello take milliseconds, so it is never the
 *  oldest for long, while connections that never get that far age out
 *  first.
 */
#ifndef CV_GUARD_H
#define CV_GUARD_H

#include "cv_log.h"
#include "cv_poller.h"

#include <czmq.h>

#include "cv_policy.h"

typedef struct cv_guard_t cv_guard_t;

/*  Called with the descriptor of every connection that went, when the
 *  guard reads its DISCONNECTED event. */
typedef void(cv_guard_gone_fn)(void *arg, int fd);

/*  Starts guarding router, which must not be bound yet: libzmq copies the
 *  handshake timeout into the listener at bind time, and the first
 *  connection's events must find the monitor running. max_pending 0: a
 *  quarter of the descriptor limit, at most 1024; handshake_timeout_ms 0:
 *  5 s. gone (may be NULL) is told of each connection that went. NULL
 *  with err when the monitor cannot start. */
cv_guard_t *cv_guard_new(zsock_t *router, cv_log_t *log, int max_pending, int handshake_timeout_ms,
                         cv_guard_gone_fn *gone, void *gone_arg, cv_error_t *err);
/*  Stops the monitor; call before the router is destroyed. */
void cv_guard_destroy(cv_guard_t **self_p);

/*  Puts the connection events' socket in the loop's poller. */
int cv_guard_watch(cv_guard_t *self, cv_poller_t *poller);

/*  Handles the events waiting (a bounded number per call), as of the
 *  poller's last wait. Never blocks, and ends nobody: see
 *  cv_guard_enforce. */
void cv_guard_handle(cv_guard_t *self);

/*  Ends the pending connections past the timeout, and the oldest beyond
 *  the cap. Called once the turn has read the ROUTER, so that connections
 *  whose Hello was waiting there are admitted, not ended. */
void cv_guard_enforce(cv_guard_t *self);

/*  Handles every event waiting up to now (not only those the poller has
 *  heard of), up to 8,192; true when none is left. Before a connection
 *  is admitted: its descriptor may be one a connection that went had, and
 *  the end of that one, queued before the new one's acceptance, must be
 *  read first, or it would be taken for the new connection's. Reading an
 *  event is cheap next to making it (a connection costs the transport far
 *  more), so the queue empties unless the loop fell far behind; false
 *  says it did, and nobody should be admitted yet. */
bool cv_guard_drain(cv_guard_t *self);

/*  A session was opened on the connection on fd: it is no longer pending,
 *  and no longer ended by the timeout or the cap. */
void cv_guard_admit(cv_guard_t *self, int fd);

/*  The connection on fd is pending again, from now: the broker ended its
 *  session and left it open (a revoked session, a replaced one at a
 *  policy reload). It must open another within the timeout. */
void cv_guard_pend(cv_guard_t *self, int fd);

/*  Whether the connection on fd is pending: accepted (or pended again)
 *  and not admitted since. */
bool cv_guard_is_pending(const cv_guard_t *self, int fd);

/*  Connections accepted that have not opened a session. */
size_t cv_guard_pending(const cv_guard_t *self);
/*  Connections the guard ended, in total. */
uint64_t cv_guard_evicted(const cv_guard_t *self);
/*  Handshakes libzmq reported failed: refused keys, protocol errors,
 *  timeouts, and connections the guard ended in their handshake. */
uint64_t cv_guard_handshakes_failed(const cv_guard_t *self);
/*  The cap in force. */
size_t cv_guard_max_pending(const cv_guard_t *self);

#endif
