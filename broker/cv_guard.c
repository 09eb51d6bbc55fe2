/*  cv_guard.c: the guard of the broker's ROUTER against connections
 *  without a session; see cv_guard.h.
 *
 *  Events come from zmq_socket_monitor on an inproc PAIR that the broker's
 *  loop polls, rather than from czmq's zmonitor: zmonitor is an actor (a
 *  thread of its own) that re-sends each event as strings through its pipe,
 *  one more hop for no gain, and its PAIR keeps the default high-water
 *  mark. libzmq's I/O thread sends monitor events blocking, so ours has
 *  none: a loop busy with a long turn never stalls connections.
 *
 *  What libzmq 4.3 reports (version 1 events, the only ones a build
 *  without draft APIs has): ACCEPTED and DISCONNECTED carry the
 *  connection's descriptor; HANDSHAKE_FAILED_* carry 0 or an errno. No
 *  event says whose handshake succeeded (the address of every event of a
 *  bound socket is the local endpoint), so the guard does not follow
 *  handshakes: it keeps accepted descriptors in accept order with their
 *  peer's address until the broker says one opened a session
 *  (cv_guard_admit), or its DISCONNECTED comes (every failed handshake
 *  ends in one).
 */
#include <assert.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "cv_guard.h"
#include "cv_log.h"
#include "cv_peer.h"

#define DEFAULT_HANDSHAKE_MS 5000
#define MAX_DEFAULT_PENDING  1024
#define EVENTS_PER_CALL      256  /* the loop's other sockets wait meanwhile */
#define DRAIN_MAX            8192 /* events cv_guard_drain reads at most */
#define LOG_INTERVAL_MS      1000 /* evictions are logged at most this often */

#define WATCHED_EVENTS                                                                             \
    (ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |          \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

/*  An accepted connection that has not opened a session. */
typedef struct {
    int fd;
    cv_peer_t peer;
    int64_t since; /* accepted then (zclock_mono) */
} pending_t;

struct cv_guard_t {
    zsock_t *router;       /* watched, not owned */
    cv_log_t *log;         /* not owned */
    zsock_t *events;       /* PAIR receiving the router's monitor events */
    cv_inbox_t *events_in; /* looked at without a system call while quiet */
    bool monitoring;       /* the router's monitor runs: stopped before events goes */
    zlistx_t *pending;     /* pending_t, oldest first */
    void **by_fd;          /* descriptor -> its handle in pending, or NULL */
    size_t by_fd_size;
    cv_guard_gone_fn *gone;
    void *gone_arg;
    size_t max_pending;
    int64_t timeout_ms; /* a connection has this long from acceptance to open a session */
    uint64_t evicted, failed;
    struct {
        int64_t logged_at;
        uint64_t count;
        char last_peer[64];
    } burst; /* evictions not yet logged */
};

static void pending_free(void **item)
{
    free(*item);
    *item = NULL;
}

/*  The handle of fd's record in pending, or NULL: an index, not a walk
 *  of the list, which a flood may make long just when Hellos must be
 *  admitted fast. */
static void *handle_of(const cv_guard_t *self, int fd)
{
    return fd >= 0 && (size_t)fd < self->by_fd_size ? self->by_fd[fd] : NULL;
}

static void forget(cv_guard_t *self, int fd)
{
    void *handle = handle_of(self, fd);
    if (!handle)
        return;
    zlistx_delete(self->pending, handle);
    self->by_fd[fd] = NULL;
}

/*  The soft descriptor limit raised to the hard one: more connections fit
 *  before accept fails. Returns the limit in force. */
static rlim_t raise_descriptor_limit(cv_log_t *log)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
        return 1024;
    rlim_t was = limit.rlim_cur;
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
            limit.rlim_cur = was;
    }
    if (limit.rlim_cur != was)
        cv_log_info(log, "descriptor limit raised from %llu to %llu", (unsigned long long)was,
                    (unsigned long long)limit.rlim_cur);
    return limit.rlim_cur;
}

static size_t default_max_pending(rlim_t descriptors)
{
    rlim_t quarter = descriptors / 4;
    return quarter < 1 ? 1 : quarter > MAX_DEFAULT_PENDING ? MAX_DEFAULT_PENDING : (size_t)quarter;
}

/*  The monitor's PAIR; the endpoint's name only has to be unique in this
 *  process. */
static bool start_monitor(cv_guard_t *self, cv_error_t *err)
{
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://caveatd-guard-%p", (void *)self);
    if (zmq_socket_monitor(zsock_resolve(self->router), endpoint, WATCHED_EVENTS) != 0) {
        cv_error_set(err, NULL, 0, 0, "cannot monitor the router: %s", zmq_strerror(zmq_errno()));
        return false;
    }
    self->monitoring = true;
    self->events = zsock_new(ZMQ_PAIR);
    if (!self->events) {
        cv_error_set(err, NULL, 0, 0, "cannot make the router's monitor socket: %s",
                     zmq_strerror(zmq_errno()));
        return false;
    }
    zsock_set_rcvhwm(self->events, 0);
    zsock_set_rcvtimeo(self->events, 0);
    self->events_in = cv_inbox_new(self->events, true);
    if (!self->events_in) {
        cv_error_set(err, NULL, 0, 0, "out of memory for the router's monitor");
        return false;
    }
    if (zsock_connect(self->events, "%s", endpoint) != 0) {
        cv_error_set(err, NULL, 0, 0, "cannot connect to the router's monitor: %s",
                     zmq_strerror(zmq_errno()));
        return false;
    }
    return true;
}

cv_guard_t *cv_guard_new(zsock_t *router, cv_log_t *log, int max_pending, int handshake_timeout_ms,
                         cv_guard_gone_fn *gone, void *gone_arg, cv_error_t *err)
{
    cv_guard_t *self = calloc(1, sizeof *self);
    if (!self) {
        cv_error_set(err, NULL, 0, 0, "out of memory for the connection guard");
        return NULL;
    }
    self->router = router;
    self->log = log;
    self->gone = gone;
    self->gone_arg = gone_arg;
    self->pending = zlistx_new();
    zlistx_set_destructor(self->pending, pending_free);
    rlim_t descriptors = raise_descriptor_limit(log);
    self->max_pending = max_pending > 0 ? (size_t)max_pending : default_max_pending(descriptors);
    int timeout_ms = handshake_timeout_ms > 0 ? handshake_timeout_ms : DEFAULT_HANDSHAKE_MS;
    zsock_set_handshake_ivl(router, timeout_ms);
    /* the handshake's own limit, then as long again for Hello: a client
     * whose handshake ends at the last moment still has time to say it */
    self->timeout_ms = 2 * (int64_t)timeout_ms;
    if (!start_monitor(self, err)) {
        cv_guard_destroy(&self);
        return NULL;
    }
    cv_log_info(log,
                "connections: descriptor limit %llu, at most %zu without a session, "
                "handshake timeout %.1f s, Hello within %.1f s of acceptance",
                (unsigned long long)descriptors, self->max_pending, timeout_ms / 1000.0,
                (double)self->timeout_ms / 1000.0);
    return self;
}

static void log_evictions(cv_guard_t *self, bool now)
{
    if (self->burst.count == 0) /* the common case: no clock read */
        return;
    int64_t time = zclock_mono();
    if (!now && time - self->burst.logged_at < LOG_INTERVAL_MS)
        return;
    cv_log_warning(self->log,
                   "ended %llu connections without a session (more than %zu, oldest first, "
                   "or none within %.1f s), the last from %s",
                   (unsigned long long)self->burst.count, self->max_pending,
                   (double)self->timeout_ms / 1000.0, self->burst.last_peer);
    self->burst.count = 0;
    self->burst.logged_at = time;
}

void cv_guard_destroy(cv_guard_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cv_guard_t *self = *self_p;
    log_evictions(self, true);
    /* stopped before its PAIR goes: libzmq would block sending to nobody */
    if (self->monitoring)
        zmq_socket_monitor(zsock_resolve(self->router), NULL, 0);
    cv_inbox_destroy(&self->events_in);
    zsock_destroy(&self->events);
    zlistx_destroy(&self->pending);
    free(self->by_fd);
    free(self);
    *self_p = NULL;
}

int cv_guard_watch(cv_guard_t *self, cv_poller_t *poller)
{
    return cv_poller_add(poller, self->events_in);
}

/*  fd's connection is pending from now (at its end of the list, the
 *  newest: the list stays in order of since). */
static void add_pending(cv_guard_t *self, int fd)
{
    pending_t *p = calloc(1, sizeof *p);
    if (!p)
        return;
    p->fd = fd;
    p->since = zclock_mono();
    if (fd < 0 || !cv_peer_of(fd, &p->peer)) { /* fails when the peer already left */
        free(p);
        return;
    }
    forget(self, fd); /* one record per descriptor, the newest */
    if ((size_t)fd >= self->by_fd_size) {
        size_t size = self->by_fd_size ? self->by_fd_size : 64;
        while (size <= (size_t)fd)
            size *= 2;
        void **grown = realloc(self->by_fd, size * sizeof *grown);
        if (!grown) {
            free(p);
            return;
        }
        memset(grown + self->by_fd_size, 0, (size - self->by_fd_size) * sizeof *grown);
        self->by_fd = grown;
        self->by_fd_size = size;
    }
    self->by_fd[fd] = zlistx_add_end(self->pending, p);
}

static void on_disconnected(cv_guard_t *self, int fd)
{
    forget(self, fd);
    if (self->gone)
        self->gone(self->gone_arg, fd);
}

static void on_event(cv_guard_t *self, uint16_t event, uint32_t value)
{
    if (event == ZMQ_EVENT_ACCEPTED)
        add_pending(self, (int)value);
    else if (event == ZMQ_EVENT_DISCONNECTED)
        on_disconnected(self, (int)value);
    else
        self->failed++;
}

/*  One event: a frame of uint16 event and uint32 value, then the address. */
static bool receive_event(cv_guard_t *self)
{
    zmsg_t *msg = zmsg_recv(self->events);
    if (!msg)
        return false;
    zframe_t *head = zmsg_first(msg);
    if (head && zframe_size(head) == 6) {
        uint16_t event;
        uint32_t value;
        memcpy(&event, zframe_data(head), sizeof event);
        memcpy(&value, zframe_data(head) + 2, sizeof value);
        on_event(self, event, value);
    }
    zmsg_destroy(&msg);
    return true;
}

/*  Ends one connection: shutdown, never close, as the descriptor is
 *  libzmq's; libzmq reads the end of the stream and drops the connection
 *  itself. */
static void evict(cv_guard_t *self, const pending_t *p)
{
    if (shutdown(p->fd, SHUT_RDWR) != 0)
        return;
    self->evicted++;
    self->burst.count++;
    cv_peer_format(&p->peer, self->burst.last_peer, sizeof self->burst.last_peer);
}

/*  The oldest beyond the cap, and those past the timeout: ended, unless
 *  the descriptor now belongs to another connection (its events are still
 *  queued); either way no longer pending. A session is opened within
 *  milliseconds of acceptance (the handshake, then Hello), so under a
 *  flood it is never the oldest for long, while connections that never
 *  authenticate, or authenticate and never say Hello, age out first. */
static void evict_oldest(cv_guard_t *self)
{
    if (zlistx_size(self->pending) == 0) /* the common case: no clock read on every turn */
        return;
    int64_t expired = zclock_mono() - self->timeout_ms;
    pending_t *p;
    while ((p = zlistx_first(self->pending)) &&
           (zlistx_size(self->pending) > self->max_pending || p->since <= expired)) {
        assert(handle_of(self, p->fd) == zlistx_cursor(self->pending)); /* indexed */
        if (cv_peer_is(p->fd, &p->peer))
            evict(self, p);
        forget(self, p->fd);
    }
}

/*  Up to EVENTS_PER_CALL events; how many were read. Nobody is ended
 *  here: the Hellos of connections accepted in a burst may be waiting on
 *  the ROUTER, unread, and they are read before the cap is applied
 *  (cv_guard_enforce). The list holds open descriptors only, so the
 *  descriptor limit bounds it meanwhile. */
/*  now: events up to this moment, not only those the loop's poller has
 *  heard of (a look that may cost a system call). */
static int handle_some(cv_guard_t *self, bool now)
{
    int n = 0;
    while (n < EVENTS_PER_CALL &&
           (now ? cv_inbox_ready_now(self->events_in) : cv_inbox_ready(self->events_in)) &&
           receive_event(self))
        n++;
    return n;
}

void cv_guard_handle(cv_guard_t *self)
{
    handle_some(self, false);
}

bool cv_guard_drain(cv_guard_t *self)
{
    bool empty = false;
    for (int n = 0; n < DRAIN_MAX && !empty; n += EVENTS_PER_CALL)
        empty = handle_some(self, true) < EVENTS_PER_CALL;
    return empty || !cv_inbox_ready_now(self->events_in);
}

void cv_guard_enforce(cv_guard_t *self)
{
    evict_oldest(self);
    log_evictions(self, false);
}

void cv_guard_admit(cv_guard_t *self, int fd)
{
    forget(self, fd);
}

void cv_guard_pend(cv_guard_t *self, int fd)
{
    add_pending(self, fd);
}

bool cv_guard_is_pending(const cv_guard_t *self, int fd)
{
    return handle_of(self, fd) != NULL;
}

size_t cv_guard_pending(const cv_guard_t *self)
{
    return zlistx_size(self->pending);
}

uint64_t cv_guard_evicted(const cv_guard_t *self)
{
    return self->evicted;
}

uint64_t cv_guard_handshakes_failed(const cv_guard_t *self)
{
    return self->failed;
}

size_t cv_guard_max_pending(const cv_guard_t *self)
{
    return self->max_pending;
}
