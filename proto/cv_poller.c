/*  cv_poller.c: inboxes that remember that a socket had nothing, and one
 *  poll() that tells which of them may have something now (cv_poller.h).
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "cv_poller.h"

/*  How long a wait trusts a quiet inbox before asking libzmq again. */
#define QUIET_TRUST_MS 250

typedef enum {
    INBOX_ASK,     /* nothing known: the next look asks libzmq */
    INBOX_QUIET,   /* libzmq found nothing, and its descriptor has not spoken since */
    INBOX_WAITING, /* libzmq found a message, not yet read */
} inbox_state_t;

struct cv_inbox_t {
    void *sock; /* a zsock_t or zactor_t, as czmq's calls take */
    int fd;     /* ZMQ_FD: readable when libzmq has news for the socket */
    bool exclusive;
    int watchers; /* pollers holding this inbox: a quiet one needs one to wake it */
    inbox_state_t state;
    int64_t quiet_since; /* zclock_mono when it last became quiet */
};

struct cv_poller_t {
    cv_inbox_t **inboxes;
    struct pollfd *fds;
    size_t count, size;
    uint64_t recovered; /* messages a quiet inbox held that its descriptor never told of */
};

cv_inbox_t *cv_inbox_new(void *sock, bool exclusive)
{
    assert(sock);
    cv_inbox_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->sock = sock;
    self->fd = zsock_fd(sock);
    self->exclusive = exclusive;
    self->state = INBOX_ASK;
    return self;
}

void cv_inbox_destroy(cv_inbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    assert((*self_p)->watchers == 0); /* a poller would point at freed memory */
    free(*self_p);
    *self_p = NULL;
}

void *cv_inbox_socket(const cv_inbox_t *self)
{
    return self->sock;
}

int cv_socket_events(void *sock)
{
    int events = 0;
    size_t size = sizeof events;
    if (zmq_getsockopt(zsock_resolve(sock), ZMQ_EVENTS, &events, &size) != 0)
        return -1;
    return events;
}

bool cv_socket_readable(void *sock)
{
    int events = cv_socket_events(sock);
    return events > 0 && (events & ZMQ_POLLIN);
}

/*  Asks libzmq (the two system calls this module saves elsewhere). A no
 *  leaves the inbox quiet only where that can be trusted: an exclusive
 *  inbox that a poller will wake. */
static bool ask(cv_inbox_t *self)
{
    bool waiting = cv_socket_readable(self->sock);
    self->state = !waiting && self->exclusive && self->watchers > 0 ? INBOX_QUIET : INBOX_ASK;
    if (self->state == INBOX_QUIET)
        self->quiet_since = zclock_mono();
    return waiting;
}

bool cv_inbox_ready(cv_inbox_t *self)
{
    if (self->state == INBOX_WAITING) {
        self->state = INBOX_ASK; /* the caller reads it: what is left is unknown */
        return true;
    }
    return self->state == INBOX_QUIET ? false : ask(self);
}

/*  poll() of one descriptor: 1 readable, 0 timed out, -1 failed. */
static int poll_fd(int fd, int timeout_ms)
{
    struct pollfd item = {fd, POLLIN, 0};
    return poll(&item, 1, timeout_ms);
}

static bool fd_readable(int fd, int timeout_ms)
{
    return poll_fd(fd, timeout_ms) > 0;
}

bool cv_inbox_ready_now(cv_inbox_t *self)
{
    if (self->state == INBOX_QUIET && !fd_readable(self->fd, 0))
        return false;
    if (self->state == INBOX_QUIET)
        self->state = INBOX_ASK;
    return cv_inbox_ready(self);
}

bool cv_inbox_wait(cv_inbox_t *self, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : zclock_mono() + timeout_ms;
    while (!cv_inbox_ready_now(self)) {
        /* the look just taken found nothing: the descriptor speaks of
         * anything that comes after it */
        int left = deadline < 0 ? -1 : (int)(deadline - zclock_mono());
        if (deadline >= 0 && left <= 0)
            return false;
        if (poll_fd(self->fd, left < 0 || left > QUIET_TRUST_MS ? QUIET_TRUST_MS : left) < 0)
            return false;        /* a signal */
        self->state = INBOX_ASK; /* news, or trusted long enough (cv_poller_wait) */
    }
    return true;
}

void cv_inbox_touched(cv_inbox_t *self)
{
    if (self->state == INBOX_QUIET)
        self->state = INBOX_ASK;
}

cv_poller_t *cv_poller_new(void)
{
    return calloc(1, sizeof(cv_poller_t));
}

void cv_poller_destroy(cv_poller_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cv_poller_t *self = *self_p;
    while (self->count > 0)
        cv_poller_remove(self, self->inboxes[self->count - 1]);
    free(self->inboxes);
    free(self->fds);
    free(self);
    *self_p = NULL;
}

int cv_poller_add(cv_poller_t *self, cv_inbox_t *inbox)
{
    if (self->count == self->size) {
        size_t size = self->size ? self->size * 2 : 8;
        cv_inbox_t **inboxes = realloc(self->inboxes, size * sizeof *inboxes);
        if (inboxes)
            self->inboxes = inboxes;
        struct pollfd *fds = realloc(self->fds, size * sizeof *fds);
        if (fds)
            self->fds = fds;
        if (!inboxes || !fds)
            return -1;
        self->size = size;
    }
    self->inboxes[self->count++] = inbox;
    inbox->watchers++;
    return 0;
}

void cv_poller_remove(cv_poller_t *self, cv_inbox_t *inbox)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->inboxes[i] == inbox) {
            self->inboxes[i] = self->inboxes[--self->count];
            if (--inbox->watchers == 0)
                cv_inbox_touched(inbox); /* nobody will wake it any more */
            return;
        }
}

/*  Asks libzmq again about each inbox quiet for QUIET_TRUST_MS or longer,
 *  whatever else woke the wait. A quiet inbox is trusted only as far as
 *  every use of its socket was told to it; should some path have read
 *  libzmq's news untold, its message waits at most about QUIET_TRUST_MS
 *  instead of for ever, busy or idle. One whose descriptor is readable
 *  now had its wakeup (news that came after the wait's poll), so only a
 *  message behind a silent descriptor counts as recovered. */
static bool ask_the_quiet(cv_poller_t *self)
{
    bool any = false;
    int64_t now = zclock_mono();
    for (size_t i = 0; i < self->count; i++) {
        cv_inbox_t *inbox = self->inboxes[i];
        if (inbox->state != INBOX_QUIET || now - inbox->quiet_since < QUIET_TRUST_MS)
            continue;
        bool told = fd_readable(inbox->fd, 0);
        if (ask(inbox)) {
            inbox->state = INBOX_WAITING;
            self->recovered += !told;
            any = true;
        }
    }
    return any;
}

int cv_poller_wait(cv_poller_t *self, int timeout_ms)
{
    bool any = false;
    int64_t oldest = -1; /* the longest-quiet inbox's quiet_since */
    for (size_t i = 0; i < self->count; i++) {
        cv_inbox_t *inbox = self->inboxes[i];
        if (inbox->state == INBOX_ASK && ask(inbox))
            inbox->state = INBOX_WAITING;
        any = any || inbox->state == INBOX_WAITING;
        if (inbox->state == INBOX_QUIET && (oldest < 0 || inbox->quiet_since < oldest))
            oldest = inbox->quiet_since;
        self->fds[i] = (struct pollfd){inbox->fd, POLLIN, 0};
    }
    int wait = any ? 0 : timeout_ms;
    if (oldest >= 0) { /* no longer than its trust lasts: the caller may see an early timeout */
        int64_t trust = oldest + QUIET_TRUST_MS - zclock_mono();
        trust = trust < 0 ? 0 : trust;
        if (wait < 0 || wait > trust)
            wait = (int)trust;
    }
    /* polled even when a message waits, so that a busy socket does not
     * keep the quiet ones from ever hearing their news */
    int rc = poll(self->fds, self->count, wait);
    if (rc < 0 && !any)
        return -1;
    for (size_t i = 0; rc > 0 && i < self->count; i++)
        if (self->fds[i].revents) {
            cv_inbox_touched(self->inboxes[i]);
            any = true;
        }
    if (oldest >= 0 && ask_the_quiet(self))
        any = true;
    return any ? 1 : 0;
}

uint64_t cv_poller_recovered(const cv_poller_t *self)
{
    return self->recovered;
}
