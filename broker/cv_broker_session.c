/*  cv_broker_session.c: sessions. A Hello opens one for a connection and
 *  the key it came with; it serves one queue (or, send-only, none), holds
 *  the credit the client gave, and counts what is in flight against it.
 *  See cv_broker_int.h for how the broker's files divide its work.
 */
#include "cv_broker_int.h"

static void session_destroy(session_t **self_p)
{
    if (!*self_p)
        return;
    session_t *s = *self_p;
    free(s->out.seqs);
    free(s->routing_hex);
    zframe_destroy(&s->routing);
    free(s->agency);
    free(s->feed);
    free(s->peer);
    free(s);
    *self_p = NULL;
}

int broker_session_compare_serial(const void *a, const void *b)
{
    uint64_t x = ((const session_t *)a)->serial, y = ((const session_t *)b)->serial;
    return x < y ? -1 : x > y;
}

void broker_session_free(void **item)
{
    session_destroy((session_t **)item);
}

void broker_session_sent(session_t *s, uint64_t seq)
{
    if (s->out.first > 0 && s->out.n == s->out.cap) { /* room at the front: move down */
        memmove(s->out.seqs, s->out.seqs + s->out.first, broker_in_flight(s) * sizeof *s->out.seqs);
        s->out.n -= s->out.first;
        s->out.first = 0;
    }
    if (s->out.n == s->out.cap) {
        size_t cap = s->out.cap ? s->out.cap * 2 : 64;
        s->out.seqs = cv_xrealloc(s->out.seqs, cap * sizeof *s->out.seqs);
        s->out.cap = cap;
    }
    s->out.seqs[s->out.n++] = seq;
}

void broker_session_acked(session_t *s, uint64_t up_to)
{
    while (s->out.first < s->out.n && s->out.seqs[s->out.first] <= up_to)
        s->out.first++;
    if (s->out.first == s->out.n)
        s->out.first = s->out.n = 0;
}

/*  Whether the session may have something to send. The loop pumps only
 *  the sessions on self->pending, never the whole table: a national
 *  partnership keeps thousands of sessions open, most of them idle (as
 *  redis keeps its clients with pending writes). A session leaves the
 *  list when a pump finds it has nothing more. */
void broker_set_dirty(cv_broker_t *self, session_t *s, bool dirty)
{
    s->dirty = dirty;
    if (dirty && !s->pending)
        s->pending = zlistx_add_end(self->pending, s);
}

/*  Everything sent counts as not sent: the session is sent again all its
 *  queue has in flight, from the first unacknowledged seq (once its pause
 *  ends, if it is paused). */
void broker_session_resend_all(cv_broker_t *self, session_t *s)
{
    s->out.first = s->out.n = 0;
    if (s->state != SESSION_PAUSED)
        s->state = SESSION_RESENDING;
    s->resent_up_to = 0;
    broker_set_dirty(self, s, true);
}

/* ------------------------------------------------------------------------ */
/*  Sessions.                                                               */

session_t *broker_session_of(cv_broker_t *self, const zframe_t *routing)
{
    char *hex = zframe_strhex((zframe_t *)routing);
    session_t *s = zhashx_lookup(self->sessions, hex);
    free(hex);
    return s;
}

session_t *broker_session_of_queue(cv_broker_t *self, const char *agency, const char *feed)
{
    cv_queue_name_t name;
    const char *key = cv_queue_name(&name, agency, feed);
    session_t *s = key ? zhashx_lookup(self->serving, key) : NULL;
    cv_queue_name_free(&name);
    return s;
}

/*  s serves its queue no more, and counts as a sender no more. */
static void stop_serving(cv_broker_t *self, session_t *s)
{
    cv_queue_name_t name;
    const char *key = cv_queue_name(&name, s->agency, s->feed);
    if (key && zhashx_lookup(self->serving, key) == s)
        zhashx_delete(self->serving, key);
    cv_queue_name_free(&name);
    void *handle = s->publish_only ? zlistx_find(self->senders, s) : NULL;
    if (handle)
        zlistx_delete(self->senders, handle);
}

/*  The connected session on each descriptor, so that a connection's end
 *  finds its session without walking every session: anyone who can reach
 *  the port can make connections end, and each end is matched. A session
 *  without a descriptor (-1: none known, or offline) is not in it. */
static void unindex_fd(cv_broker_t *self, const session_t *s)
{
    if (s->fd >= 0 && (size_t)s->fd < self->by_fd_size && self->by_fd[s->fd] == s)
        self->by_fd[s->fd] = NULL;
}

static void index_fd(cv_broker_t *self, session_t *s)
{
    if (s->fd < 0)
        return;
    size_t fd = (size_t)s->fd;
    if (fd >= self->by_fd_size) {
        size_t size = self->by_fd_size ? self->by_fd_size : 64;
        while (size <= fd)
            size *= 2;
        self->by_fd = cv_xrealloc(self->by_fd, size * sizeof *self->by_fd);
        memset(self->by_fd + self->by_fd_size, 0, (size - self->by_fd_size) * sizeof *self->by_fd);
        self->by_fd_size = size;
    }
    /* another session on the same descriptor is not ended here: every end
     * read before a connection is admitted (cv_guard_drain), so this one
     * may be a late message of a connection that went, queued before it
     * went, while the other is live. The newest takes the slot and the
     * connection: the other may no longer end it (an agency's late Hello
     * must not let it end whoever holds the descriptor now); if its own
     * connection went, it ends when a send to it fails or its queue's next
     * Hello replaces it. */
    if (!s->conn_known) /* it holds no connection: the slot stays whose it is */
        return;
    session_t *other = self->by_fd[fd];
    if (other && other != s)
        other->conn_known = false;
    self->by_fd[fd] = s;
}

static void remove_session(cv_broker_t *self, session_t *s)
{
    unindex_fd(self, s);
    if (s->gone_at) {
        assert(self->sessions_gone > 0);
        self->sessions_gone--;
    }
    stop_serving(self, s);
    if (s->pending)
        zlistx_delete(self->pending, s->pending);
    s->pending = NULL;
    cv_receipts_forget(self->receipts, s); /* a receipt is for the session that acknowledged */
    zhashx_delete(self->sessions, s->routing_hex);
}

/*  The session a message held for serial was for, if it is still there:
 *  found by the message's routing id (routing, size bytes), not by walking
 *  every session. */
session_t *broker_session_sent_to(cv_broker_t *self, const void *routing, size_t size,
                                  uint64_t serial)
{
    zframe_t *frame = zframe_new(routing, size);
    session_t *s = frame ? broker_session_of(self, frame) : NULL;
    zframe_destroy(&frame);
    return s && s->serial == serial ? s : NULL;
}

void broker_delivery_fate(cv_broker_t *self, session_t *s, held_t *h, bool left)
{
    cv_queue_t *q = s ? s->queue : NULL;
    /* kept pointing at the queue in memory across a reading back of the
     * queues (broker_reload_queues), or the marks would be lost */
    assert(!s || s->publish_only || self->queues_lost ||
           q == cv_router_find(self->queues, s->agency, s->feed));
    (void)self; /* read by the assert alone */
    for (size_t i = 0; q && i < h->n_seqs; i++)
        (left ? cv_queue_left : cv_queue_withdrawn)(q, h->seqs[i]);
    free(h->seqs);
    h->seqs = NULL;
    h->n_seqs = 0;
}

void broker_held_destroy(cv_broker_t *self, held_t *h)
{
    assert(self->out_bytes >= h->bytes);
    self->out_bytes -= h->bytes;
    if (h->n_seqs) {
        zframe_t *routing = zmsg_first(h->msg);
        broker_delivery_fate(
            self,
            broker_session_sent_to(self, zframe_data(routing), zframe_size(routing), h->session), h,
            false);
    }
    zmsg_destroy(&h->msg);
    free(h);
}

/*  Drops whatever waits to be sent for the session with serial: a
 *  PublishAck or FeedbackAck, deliveries held for their sync or in the
 *  outbox, approval answers. */
static void forget_messages_of(cv_broker_t *self, uint64_t serial)
{
    for (pending_ack_t *p = zlistx_first(self->pending_acks); p;
         p = zlistx_next(self->pending_acks))
        if (p->session == serial) {
            zlistx_detach_cur(self->pending_acks); /* the cursor stays valid for next */
            broker_free_pending(p);
        }
    for (pending_feedback_t *f = zlistx_first(self->pending_feedback); f;
         f = zlistx_next(self->pending_feedback))
        if (f->session == serial) {
            zlistx_detach_cur(self->pending_feedback);
            broker_pending_feedback_free(f);
        }
    zlistx_t *lists[] = {self->outbox, self->held};
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++)
        for (held_t *h = zlistx_first(lists[i]); h; h = zlistx_next(lists[i]))
            if (h->session == serial) {
                zlistx_detach_cur(lists[i]);
                broker_held_destroy(self, h);
            }
    broker_forget_approval_answers_of(self, serial);
}

/*  Ends a session now: nothing more is sent for it, not even what waits
 *  for a sync. Its deliveries stay in flight in its queue, for the next
 *  session of that queue. */
void broker_end_session(cv_broker_t *self, session_t *s)
{
    forget_messages_of(self, s->serial);
    remove_session(self, s);
}

/*  Ends the connection on fd if it is still the one peer was on: shutdown,
 *  never close, as the descriptor is libzmq's, which reads the end and
 *  drops the connection with what it held for it (as cv_guard ends
 *  handshakes); a descriptor given to another connection meanwhile is not
 *  touched (cv_peer_is). */
static void end_connection(cv_broker_t *self, int fd, const cv_peer_t *peer, const char *agency)
{
    if (cv_peer_is(fd, peer) && shutdown(fd, SHUT_RDWR) == 0)
        cv_log_agency(self->log, agency, false, "a connection of %s ended", agency);
}

/*  Ends s, and its connection if it is still there: what libzmq holds for
 *  a connection (up to PEER_SNDHWM messages, a Deliver of up to a frame or
 *  a PublishAck of max_reports results each) stays until the connection
 *  goes. For a session that ends while its connection stays (the oldest of
 *  an agency's send-only sessions, a connection that takes nothing more),
 *  an agency that opens connection after connection and reads none could
 *  otherwise make the broker hold all that for each. */
void broker_end_connection(cv_broker_t *self, session_t *s)
{
    if (!s->gone_at && s->conn_known)
        end_connection(self, s->fd, &s->conn, s->agency);
    broker_end_session(self, s);
}

/*  old's session was replaced by another connection's Hello for its
 *  queue. Its connection stays: two running copies of one subscriber (a
 *  mistake, but a common one) take turns as each says Hello again, where
 *  ending the other's connection would have them reconnect and replace
 *  each other without end. The agency keeps DISPLACED_PER_AGENCY such
 *  connections, and the oldest beyond is ended. */
static void displace(cv_broker_t *self, const session_t *old, int agency)
{
    if (old->gone_at || !old->conn_known)
        return;
    agency_use_t *use = broker_use_of(self, agency);
    if (use->n_displaced == DISPLACED_PER_AGENCY) {
        end_connection(self, use->displaced[0].fd, &use->displaced[0].peer, old->agency);
        memmove(use->displaced, use->displaced + 1,
                (DISPLACED_PER_AGENCY - 1) * sizeof *use->displaced);
        use->n_displaced--;
    }
    use->displaced[use->n_displaced++] = (displaced_t){old->fd, old->conn};
}

static bool same_peer(const cv_peer_t *a, const cv_peer_t *b)
{
    return a->len == b->len && memcmp(&a->addr, &b->addr, a->len) == 0;
}

/*  s's connection is no longer a replaced one, if it was. */
static void undisplace(cv_broker_t *self, const session_t *s, int agency)
{
    if (!s->conn_known)
        return;
    agency_use_t *use = broker_use_of(self, agency);
    for (int i = 0; i < use->n_displaced; i++)
        if (use->displaced[i].fd == s->fd && same_peer(&use->displaced[i].peer, &s->conn)) {
            memmove(use->displaced + i, use->displaced + i + 1,
                    (size_t)(use->n_displaced - i - 1) * sizeof *use->displaced);
            use->n_displaced--;
            return;
        }
}

/*  The connection on fd, if it is still the one peer was on, is pending
 *  again: it opens another session within the guard's timeout, or ends. */
static void repend(cv_broker_t *self, int fd, const cv_peer_t *peer)
{
    if (self->guard && cv_peer_is(fd, peer))
        cv_guard_pend(self->guard, fd);
}

/*  At a policy reload agencies are numbered anew, and the replaced
 *  connections kept per agency are no longer held by any count: each is
 *  pending again, as a connection that has yet to open a session. */
void broker_repend_displaced(cv_broker_t *self)
{
    for (int i = 0; i < self->use_cap; i++) {
        agency_use_t *use = &self->use[i];
        for (int j = 0; j < use->n_displaced; j++)
            repend(self, use->displaced[j].fd, &use->displaced[j].peer);
        use->n_displaced = 0;
    }
}

void broker_release_connection(cv_broker_t *self, session_t *s)
{
    if (!s->gone_at && s->conn_known)
        repend(self, s->fd, &s->conn);
    broker_end_session(self, s);
}

/*  The session's connection went: it is sent nothing more. */
static void connection_went(cv_broker_t *self, session_t *s)
{
    assert(!s->gone_at);
    unindex_fd(self, s);
    s->gone_at = zclock_mono();
    self->sessions_gone++;
    forget_messages_of(self, s->serial);
    stop_serving(self, s); /* a Hello for its queue replaces nobody */
    cv_log_agency(self->log, s->agency, true, "session of %s: its connection went", s->agency);
}

/*  A routing id lives as long as its connection: once that is gone libzmq
 *  may give it to the next connection that asks for it (a client may set
 *  its own, shaped as an assigned one: see assigned_routing_id). So the
 *  session on it is sent nothing more from the moment the broker reads
 *  that the connection went (every guard event waiting is read before a ZAP
 *  answer, cv_guard_drain, so before another connection is admitted; and
 *  some before every send), while the frames the connection sent before going, still
 *  queued (a last acknowledgement, a request), are handled; it ends
 *  GONE_LINGER_MS later, or at once when another connection shows up on
 *  its routing id. */
void broker_connection_gone(void *arg, int fd)
{
    cv_broker_t *self = arg;
    if (fd >= 0 && (size_t)fd < self->by_fd_size && self->by_fd[fd])
        connection_went(self, self->by_fd[fd]);
}

/*  Offline, where no descriptor names a connection: the one on routing went. */
void broker_routing_went(cv_broker_t *self, const zframe_t *routing)
{
    session_t *s = broker_session_of(self, routing);
    if (s && !s->gone_at)
        connection_went(self, s);
}

bool broker_session_gone(cv_broker_t *self, const zframe_t *routing, uint64_t serial)
{
    if (self->sessions_gone == 0) /* the common case, at every message held: no lookup */
        return false;
    session_t *s = broker_session_of(self, routing);
    return s && s->serial == serial && s->gone_at;
}

/*  Send-only sessions replace no one, and a connection may open one and
 *  stay: keep the newest SENDERS_PER_AGENCY of each agency. A dropped one
 *  that sends again gets NOT_READY and says Hello. */
static void limit_senders(cv_broker_t *self, const char *agency)
{
    int count = 0;
    session_t *oldest = NULL;
    for (session_t *s = zlistx_first(self->senders); s; s = zlistx_next(self->senders))
        if (strcmp(s->agency, agency) == 0 && count++ == 0)
            oldest = s;
    if (count > SENDERS_PER_AGENCY)
        broker_end_connection(self, oldest); /* nothing more for it, not even a held PublishAck */
}

static void add_session(cv_broker_t *self, session_t *s, int agency)
{
    /* the connection's earlier session (another queue, or publish-only
     * and back) ends as a replaced one does: nothing more is sent for it,
     * not even what waits for a sync, or its Delivers would reach the new
     * session with another queue's seqs */
    session_t *old = broker_session_of(self, s->routing);
    if (old)
        broker_end_session(self, old);
    zhashx_insert(self->sessions, s->routing_hex, s);
    index_fd(self, s);
    if (self->guard && s->conn_known) /* no longer ended for want of a session */
        cv_guard_admit(self->guard, s->fd);
    undisplace(self, s, agency);
    if (s->publish_only) { /* it serves no queue, so it replaces nobody's */
        zlistx_add_end(self->senders, s);
        limit_senders(self, s->agency);
        return;
    }
    /* a queue has one session: a new Hello replaces the old one, which is
     * sent nothing more (its deliveries are in flight in the queue, and
     * the new session resends them) */
    if ((old = broker_session_of_queue(self, s->agency, s->feed))) {
        displace(self, old, agency);
        broker_end_session(self, old);
    }
    cv_queue_name_t name;
    const char *key = cv_queue_name(&name, s->agency, s->feed);
    if (key)
        zhashx_insert(self->serving, key, s);
    cv_queue_name_free(&name);
}

/*  libzmq's ROUTER names a connection that gives no routing id of its own
 *  with 5 bytes, the first 0. A routing id a client chose could be chosen
 *  again by another agency once the first connection is gone: sessions
 *  live only on routing ids shaped as the transport assigns them, which no
 *  peer learns, and end with their connection (broker_connection_gone).
 *  The shape is all the broker can see (the handshake's Identity property
 *  reaches it as a C string, empty for an id that starts with 0), so a
 *  client that imitates it is not told apart: docs/protocol.md, section 1. */
static bool assigned_routing_id(const zframe_t *routing)
{
    return zframe_size((zframe_t *)routing) == 5 && zframe_data((zframe_t *)routing)[0] == 0;
}

/*  Why a Hello opens no session, as an Error code and reason; 0 if it may. */
static uint32_t hello_refusal(cv_broker_t *self, const zframe_t *routing, int agency,
                              const Caveat__Wire__Hello *hello, const char **reason)
{
    const char *feed = hello->feed ? hello->feed : "";
    if (!hello->has_version || hello->version != 1) {
        *reason = "this broker speaks protocol version 1";
        return E_VERSION;
    }
    if (!assigned_routing_id(routing)) {
        *reason = "a client must not set its own routing id";
        return E_BAD_REQUEST;
    }
    /* a queue is made for what a session asks: only for feeds that send
     * to its agency. A feed that exists and one that does not are refused
     * alike, so that no agency learns the names of feeds it is not sent */
    if (*feed && !cv_policy_feed_recipient(self->policy, feed, agency)) {
        *reason = "no screening feed of that name sends to this agency";
        return E_FORBIDDEN;
    }
    return 0;
}

/*  The connection a Hello came on, as far as the kernel can confirm it. */
typedef struct {
    int fd;         /* the descriptor its message named, or -1 */
    cv_peer_t peer; /* the peer on fd now */
    bool held;      /* the new session may hold it: end it, admit it */
} hello_conn_t;

/*  Whether the connection on fd (peer) is one of agency's replaced ones. */
static bool is_displaced(cv_broker_t *self, int agency, int fd, const cv_peer_t *peer)
{
    agency_use_t *use = broker_use_of(self, agency);
    for (int i = 0; i < use->n_displaced; i++)
        if (use->displaced[i].fd == fd && same_peer(&use->displaced[i].peer, peer))
            return true;
    return false;
}

/*  False when the Hello's connection certainly went: the descriptor its
 *  message names holds a peer on another address now (its end and
 *  another's acceptance were read while the Hello waited). The new session
 *  may hold the connection only if it is still pending, or is the one the
 *  connection's earlier session held, or one of the agency's replaced
 *  connections (which says Hello again). A Hello that waited while its
 *  connection went and another from the same address took the descriptor
 *  is not told apart this way; it takes at most a connection that has not
 *  opened a session yet, whose client reconnects if it is ended. */
static bool hello_connection(cv_broker_t *self, int agency, const session_t *earlier,
                             hello_conn_t *conn)
{
    conn->fd = self->peer_fd;
    conn->held = false;
    if (conn->fd < 0 || !cv_peer_of(conn->fd, &conn->peer))
        return true; /* not known: a session without a connection to end */
    if (!cv_peer_host_is(&conn->peer, self->peer))
        return false;
    conn->held = (self->guard && cv_guard_is_pending(self->guard, conn->fd)) ||
                 (earlier && earlier->conn_known && earlier->fd == conn->fd &&
                  same_peer(&earlier->conn, &conn->peer)) ||
                 is_displaced(self, agency, conn->fd, &conn->peer);
    return true;
}

static session_t *session_new(cv_broker_t *self, const zframe_t *routing, const cv_agency_t *a,
                              const uint8_t key[CV_KEY_BYTES], const char *feed,
                              const hello_conn_t *conn)
{
    session_t *s = cv_xcalloc(1, sizeof *s);
    s->serial = ++self->next_serial;
    s->routing_hex = zframe_strhex((zframe_t *)routing);
    s->routing = zframe_dup((zframe_t *)routing);
    s->agency = cv_xstrdup(a->id);
    memcpy(s->key, key, CV_KEY_BYTES); /* the one it came with: an agency may have two */
    s->feed = cv_xstrdup(feed);
    s->peer = cv_xstrdup(self->peer ? self->peer : "");
    s->fd = conn->fd;
    s->conn = conn->peer;
    s->conn_known = conn->held;
    s->since = (int64_t)time(NULL);
    if (!s->routing_hex || !s->routing)
        abort();                  /* czmq's own allocations */
    s->state = SESSION_RESENDING; /* first whatever an earlier session left unacknowledged */
    return s;
}

/*  0 when sent, else an errno (broker_send_now). */
static int send_hello_ack(cv_broker_t *self, const zframe_t *routing, const cv_agency_t *a)
{
    Caveat__Wire__HelloAck ack = CAVEAT__WIRE__HELLO_ACK__INIT;
    ack.has_version = ack.has_protocol_version = ack.has_max_frame = ack.has_max_reports = true;
    ack.version = 1;
    ack.agency = (char *)a->id;
    ack.protocol = (char *)cv_policy_protocol(self->policy);
    ack.protocol_version = cv_policy_version(self->policy);
    ack.max_frame = (uint32_t)self->config.max_frame;
    ack.max_reports = (uint32_t)self->config.max_reports;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_HELLO_ACK;
    frame.hello_ack = &ack;
    return broker_send_frame(self, routing, &frame);
}

/*  The rate of new sessions sent the window of queue (agency, feed) again. */
static rate_t *resends_of(cv_broker_t *self, const char *agency, const char *feed)
{
    cv_queue_name_t name;
    const char *key = cv_queue_name(&name, agency, feed);
    rate_t *rate = key ? zhashx_lookup(self->resends, key) : NULL;
    if (key && !rate && (rate = calloc(1, sizeof *rate)))
        zhashx_insert(self->resends, key, rate); /* one per queue: as many as the policy makes */
    cv_queue_name_free(&name);
    return rate;
}

/*  Whether a Hello that opens a delivery session on a queue that costs a
 *  resend (one another connection's live session serves, or whose
 *  deliveries are in flight) comes past that queue's REPLACED_PER_SECOND
 *  (counted if not). Every such session sends the queue's whole window
 *  again, and the Hello rate is a connection's: two connections taking
 *  turns, or going to send-only and back, would each start a resend with
 *  nobody counting. Counted per queue, so that an agency's subscribers
 *  all coming back at once after a network fault (each queue once) are
 *  never refused; a queue with nothing in flight that nobody serves costs
 *  nothing, and is not counted. */
static bool replaces_too_often(cv_broker_t *self, const char *agency_id, const char *feed,
                               bool publish_only, const session_t *s)
{
    if (publish_only)
        return false; /* a send-only session replaces nobody's */
    if (s && !s->publish_only && strcmp(s->feed, feed) == 0)
        return false; /* a Hello again: the session stays, nothing is resent */
    const session_t *serving = broker_session_of_queue(self, agency_id, feed);
    bool replaces = serving && serving != s && !serving->gone_at;
    const cv_queue_t *queue = cv_router_find(self->queues, agency_id, feed);
    if (!replaces && !(queue && cv_queue_in_flight(queue) > 0))
        return false;
    rate_t *rate = resends_of(self, agency_id, feed);
    return !rate || !rate_allows(rate, REPLACED_PER_SECOND);
}

/*  s is the connection's session with this key, or NULL. A Hello again for
 *  the same queue keeps the session: what it was sent is still on its way
 *  down this connection and is not sent twice (a Hello loop on a
 *  connection that never reads must not multiply what waits for it). */
void broker_on_hello(cv_broker_t *self, const zframe_t *routing, int agency,
                     const uint8_t key[CV_KEY_BYTES], session_t *s,
                     const Caveat__Wire__Hello *hello)
{
    const cv_agency_t *a = cv_policy_agency(self->policy, agency);
    const char *feed = hello->feed ? hello->feed : "", *reason = NULL;
    if (s && s->gone_at) { /* a Hello is a connection's first word: not the gone one's */
        broker_end_session(self, s);
        s = NULL;
    }
    uint32_t refused = hello_refusal(self, routing, agency, hello, &reason);
    rate_t hellos = s ? s->hellos : (rate_t){0};
    bool publish_only = hello->has_credit && hello->credit == 0;
    if (!refused && !rate_allows(&hellos, HELLOS_PER_SECOND)) {
        self->stats.limited++;
        refused = E_LIMIT;
        reason = "too many Hellos on this connection; wait a second";
    } else if (!refused && replaces_too_often(self, a->id, feed, publish_only, s)) {
        self->stats.limited++;
        refused = E_LIMIT;
        reason = "this queue's window was sent again too often; wait a second";
    }
    if (refused) {
        cv_log_agency(self->log, a->id, false, "hello from %s refused: %s", a->id, reason);
        if (s)
            broker_send_error(self, routing, refused, reason);
        else /* no session: answers to it are rate-limited per agency */
            broker_send_error_limited(self, routing, agency, refused, reason);
        return;
    }
    bool answered = false;
    if (!s || strcmp(s->feed, feed) != 0 || s->publish_only != publish_only) {
        /* answered first: a Hello read after its connection went (queued
         * before) finds no routing id, and opens no session that would
         * hold the descriptor the connection had, now maybe another's; nor
         * does one the connection cannot take (EAGAIN) */
        hello_conn_t conn;
        if (!hello_connection(self, agency, s, &conn) || send_hello_ack(self, routing, a) != 0) {
            cv_log_agency(self->log, a->id, true,
                          "hello from %s opens nothing: its connection went, or takes nothing",
                          a->id);
            return;
        }
        answered = true;
        s = session_new(self, routing, a, key, feed, &conn);
        s->publish_only = publish_only;
        add_session(self, s, agency); /* replaces the connection's earlier session */
    }
    s->hellos = hellos;
    s->receipts = !publish_only && hello->has_receipts && hello->receipts;
    s->credit = hello->has_credit && hello->credit ? hello->credit : DEFAULT_CREDIT;
    if (s->credit > MAX_CREDIT)
        s->credit = MAX_CREDIT;
    broker_set_dirty(self, s, !s->publish_only);
    if (!answered)
        send_hello_ack(self, routing, a);
    cv_log_agency(self->log, a->id, false, "session: %s%s%s", a->id, *feed ? " feed " : "", feed);
}

void broker_mark_dirty(cv_broker_t *self, const char *agency, const char *feed)
{
    session_t *s = broker_session_of_queue(self, agency, feed);
    if (s)
        broker_set_dirty(self, s, true);
}
