/*  cv_broker_message.c: one message from a connection. Who sent it (the
 *  key ZAP admitted, never the routing id alone), what its agency may
 *  still cause this turn, and which handler takes it; and the sending of
 *  frames and errors back. See cv_broker_int.h.
 */
#include "cv_broker_int.h"

/* ------------------------------------------------------------------------ */
/*  Sending.                                                                */

/*  A Frame, or a PackedFrame (the same on the wire), to routing. */
zmsg_t *broker_message_to(const zframe_t *routing, const ProtobufCMessage *frame)
{
    size_t size = protobuf_c_message_get_packed_size(frame);
    zframe_t *body = zframe_new(NULL, size);
    protobuf_c_message_pack(frame, zframe_data(body));
    zmsg_t *msg = zmsg_new();
    zframe_t *to = zframe_dup((zframe_t *)routing);
    zmsg_append(msg, &to);
    zmsg_append(msg, &body);
    return msg;
}

zmsg_t *broker_frame_message(const zframe_t *routing, const Caveat__Wire__Frame *frame)
{
    return broker_message_to(routing, &frame->base);
}

/*  Sends now; a peer that is gone or full loses the message (counted). */
/*  0 when sent; else errno: EHOSTUNREACH for a connection that is gone,
 *  EAGAIN for one PEER_SNDHWM messages behind (ROUTER_MANDATORY). */
int broker_send_now(cv_broker_t *self, zmsg_t **msg)
{
    /* an answer to a frame its connection sent before it went goes
     * nowhere: the routing id may be the next connection's */
    if (self->gone_routing && zframe_eq(zmsg_first(*msg), (zframe_t *)self->gone_routing)) {
        zmsg_destroy(msg);
        return 0;
    }
    if (!self->router) { /* offline (cv_broker_feed): nowhere to send but a test's */
        zframe_t *routing = zmsg_first(*msg), *frame = zmsg_last(*msg);
        uint32_t connection = 0;
        if (self->sent_fn && zframe_size(routing) == 1 + sizeof connection) {
            memcpy(&connection, zframe_data(routing) + 1, sizeof connection);
            self->sent_fn(self->sent_arg, connection, zframe_data(frame), zframe_size(frame));
        }
        zmsg_destroy(msg);
        return 0;
    }
    int sent = zmsg_send(msg, self->router);
    if (self->router_in) /* a send may read the router's news of messages */
        cv_inbox_touched(self->router_in);
    if (sent == 0)
        return 0;
    int failure = errno;
    zmsg_destroy(msg);
    self->stats.dropped++;
    return failure ? failure : EAGAIN;
}

int broker_send_frame(cv_broker_t *self, const zframe_t *routing, const Caveat__Wire__Frame *frame)
{
    zmsg_t *msg = broker_frame_message(routing, frame);
    return broker_send_now(self, &msg);
}

void broker_send_error(cv_broker_t *self, const zframe_t *routing, uint32_t code,
                       const char *reason)
{
    Caveat__Wire__Error error = CAVEAT__WIRE__ERROR__INIT;
    error.has_code = true;
    error.code = code;
    error.reason = (char *)reason;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_ERROR;
    frame.error = &error;
    broker_send_frame(self, routing, &frame);
}

/* ------------------------------------------------------------------------ */
/*  One message.                                                            */

/*  The agency behind a message, from the key ZAP put in User-Id, or -1.
 *  Read from the frame as received: a copy carries no metadata. */
static int sender_of(cv_broker_t *self, zframe_t *frame, uint8_t key[CV_KEY_BYTES])
{
    const char *user_id = frame ? zframe_meta(frame, "User-Id") : NULL;
    if (!user_id || strlen(user_id) != 40 || !zmq_z85_decode(key, user_id))
        return -1;
    return cv_policy_agency_by_key(self->policy, key);
}

/*  The agency's (by index) use, kept across reloads (an index may then be
 *  another agency's: these are only limits). */
agency_use_t *broker_use_of(cv_broker_t *self, int agency)
{
    int n = cv_policy_agency_count(self->policy);
    if (self->use_cap < n) {
        self->use = cv_xrealloc(self->use, (size_t)n * sizeof *self->use);
        memset(self->use + self->use_cap, 0, (size_t)(n - self->use_cap) * sizeof *self->use);
        self->use_cap = n;
    }
    assert(agency >= 0 && agency < n);
    return &self->use[agency];
}

/*  True while the agency has handled fewer than FRAMES_PER_AGENCY frames
 *  in this turn. Past that its frames are refused unread, so that one
 *  agency (however many connections it opens) cannot fill a turn that
 *  every other agency's traffic waits for. */
static bool frame_allowed(cv_broker_t *self, int agency)
{
    agency_use_t *use = broker_use_of(self, agency);
    if (use->turn != self->turns) {
        use->turn = self->turns;
        use->frames = 0;
    }
    return ++use->frames <= FRAMES_PER_AGENCY;
}

/*  An Error to a frame the broker need not answer one by one (one
 *  without a session, one over a rate): at most ERRORS_PER_SECOND a
 *  second to each agency, so that such frames cannot make the broker
 *  queue answers without bound. */
void broker_send_error_limited(cv_broker_t *self, const zframe_t *routing, int agency,
                               uint32_t code, const char *reason)
{
    if (rate_allows(&broker_use_of(self, agency)->errors, ERRORS_PER_SECOND))
        broker_send_error(self, routing, code, reason);
    else
        self->stats.limited++;
}

void broker_refuse(cv_broker_t *self, const zframe_t *routing, const char *sender, const char *what,
                   uint32_t code, const char *why)
{
    cv_log_agency(self->log, sender, false, "%s from %s refused: %s", what, sender, why);
    broker_send_error(self, routing, code, why);
}

/*  Every rate on what an agency asks refuses here: past it, the frames
 *  are answered within the agency's ERRORS_PER_SECOND, so that a flood
 *  over one rate makes the broker send no more than over another. */
bool broker_over_rate(cv_broker_t *self, const zframe_t *routing, int agency, rate_t *rate,
                      int limit, const char *reason)
{
    if (rate_allows(rate, limit))
        return false;
    self->stats.limited++;
    broker_send_error_limited(self, routing, agency, E_LIMIT, reason);
    return true;
}

/*  The connection's session, if it is this key's. A session found by
 *  routing id under another key means the connection behind that routing
 *  id changed: that session ends here, and nothing of it is sent on. The
 *  log line counts against the sender (agency), who caused it. */
static session_t *session_of_key(cv_broker_t *self, const zframe_t *routing, int agency,
                                 const uint8_t key[CV_KEY_BYTES])
{
    session_t *s = broker_session_of(self, routing);
    if (s && sodium_memcmp(s->key, key, CV_KEY_BYTES) != 0) {
        self->stats.foreign++;
        cv_log_agency(self->log, cv_policy_agency(self->policy, agency)->id, false,
                      "session of %s ended: its routing id came with another key", s->agency);
        broker_end_session(self, s);
        s = NULL;
    } else if (s && s->gone_at && self->peer_fd != s->fd) {
        broker_end_session(self, s); /* another connection on a gone one's routing id */
        s = NULL;
    }
    return s;
}

static void dispatch_to(cv_broker_t *self, const zframe_t *routing, int agency,
                        const uint8_t key[CV_KEY_BYTES], session_t *s, Caveat__Wire__Frame *frame)
{
    if (frame->body_case == CAVEAT__WIRE__FRAME__BODY_HELLO) {
        broker_on_hello(self, routing, agency, key, s, frame->hello);
        return;
    }
    if (frame->body_case == CAVEAT__WIRE__FRAME__BODY_HEARTBEAT)
        return;
    if (!s) {
        broker_send_error_limited(self, routing, agency, E_NOT_READY, "send Hello first");
        return;
    }
    const char *sender = cv_policy_agency(self->policy, agency)->id;
    switch (frame->body_case) {
    case CAVEAT__WIRE__FRAME__BODY_PUBLISH:
        broker_on_publish(self, routing, s->serial, agency, sender, frame->publish);
        break;
    case CAVEAT__WIRE__FRAME__BODY_DELIVERY_ACK:
        broker_on_ack(self, s, frame->delivery_ack);
        break;
    case CAVEAT__WIRE__FRAME__BODY_ADMIN_REQUEST:
        broker_on_admin(self, routing, agency, key, frame->admin_request);
        break;
    case CAVEAT__WIRE__FRAME__BODY_APPROVAL:
        broker_on_approval(self, s, agency, sender, frame->approval);
        break;
    case CAVEAT__WIRE__FRAME__BODY_FEEDBACK:
        broker_on_feedback(self, s, agency, sender, frame->feedback);
        break;
    default:
        broker_send_error(self, routing, E_BAD_FRAME, "not a frame a client sends");
        break;
    }
}

/*  A frame its connection sent before it went (read after the broker
 *  learnt it went) still counts: an acknowledgement, a publish, a
 *  request. But nothing is answered on its routing id, which may be the
 *  next connection's; a Hello is taken as that next connection's. */
static void dispatch(cv_broker_t *self, const zframe_t *routing, int agency,
                     const uint8_t key[CV_KEY_BYTES], Caveat__Wire__Frame *frame)
{
    session_t *s = session_of_key(self, routing, agency, key);
    bool hello = frame->body_case == CAVEAT__WIRE__FRAME__BODY_HELLO;
    self->gone_routing = s && s->gone_at && !hello ? routing : NULL;
    dispatch_to(self, routing, agency, key, s, frame);
    self->gone_routing = NULL;
}

/*  One frame's bytes, from agency (its key) on the connection routing. */
void broker_handle_frame(cv_broker_t *self, const zframe_t *routing, int agency,
                         const uint8_t key[CV_KEY_BYTES], const uint8_t *data, size_t size)
{
    /* counted before unpacking: an oversized Publish costs a scan, not an
     * allocation per report (the count covers a Publish with or without a
     * session: either way it is refused) */
    size_t reports = cv_wire_publish_reports(data, size);
    if (reports != SIZE_MAX && broker_over_report_limit(self, routing, agency, reports))
        return;
    /* into the cache's arena: freed with its generation, never here */
    Caveat__Wire__Frame *frame = cv_cache_unpack_frame(self->cache, data, size);
    if (!frame) {
        broker_send_error_limited(self, routing, agency, E_BAD_FRAME, "not a caveat.wire.Frame");
        return;
    }
    /* only known fields go on: protobuf-c packs an unknown field with tag
     * 0 in a form it refuses to unpack, which would poison the store (a
     * report) or an admin request's copy */
    cv_proto_drop_unknown(&frame->base);
    dispatch(self, routing, agency, key, frame);
}

/*  The descriptor of the connection data came on: libzmq 4.3 keeps it in
 *  every message's metadata as "__fd", what its (deprecated) ZMQ_SRCFD
 *  reads; czmq's frames reach it only by name. -1 when absent. */
static int connection_fd(zframe_t *data)
{
    const char *text = zframe_meta(data, "__fd");
    char *end = NULL;
    long fd = text ? strtol(text, &end, 10) : -1;
    return text && end != text && *end == '\0' && fd >= 0 && fd <= INT_MAX ? (int)fd : -1;
}

void broker_handle_message(cv_broker_t *self, zmsg_t *msg)
{
    zframe_t *routing = zmsg_pop(msg);
    zframe_t *data = zmsg_first(msg);
    uint8_t key[CV_KEY_BYTES];
    int agency = sender_of(self, data, key);
    if (agency < 0) {
        /* no User-Id, or a key the policy no longer lists: never routed */
        self->stats.dropped++;
        /* rate-limited: a revoked key's open connection may send as fast
         * as it can */
        cv_log_debug_limited(self->log, "unknown keys",
                             "dropped a message from an unknown or revoked key");
    } else if (!frame_allowed(self, agency)) {
        self->stats.limited++;
        broker_send_error_limited(self, routing, agency, E_LIMIT,
                                  "this agency sent more than its share of a turn; slow down");
    } else if (zmsg_size(msg) != 1) {
        broker_send_error_limited(self, routing, agency, E_BAD_FRAME,
                                  "a message must be exactly one frame");
    } else {
        self->peer = zframe_meta(data, "Peer-Address");
        self->peer_fd = connection_fd(data);
        broker_handle_frame(self, routing, agency, key, zframe_data(data), zframe_size(data));
        self->peer = NULL;
        self->peer_fd = -1;
    }
    zframe_destroy(&routing);
}
