/*  cv_client.c: libcaveat, the client side of docs/protocol.md.
 *
 *  One DEALER socket, CURVE client. Every call that waits goes through
 *  pump(), which reads one frame or one socket-monitor event at a time:
 *  deliveries are queued whenever they arrive (so nothing is lost while a
 *  publish waits for its acknowledgement), Error frames end the wait, and a
 *  reconnect (a second successful CURVE handshake) sends Hello again, since
 *  the broker keeps a session per connection.
 *
 *  Every frame is unpacked into an arena (cv_arena.h), never with malloc:
 *  a Deliver of many reports costs a few block allocations, not some twenty
 *  mallocs and frees per delivery. A Deliver keeps its arena until all its
 *  deliveries are returned and the last one is no longer borrowed; any
 *  other frame is done with before the next is read.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>
#include <sodium.h>

#include "caveat.h"
#include "cv_arena.h"
#include "cv_cert.h"
#include "cv_frame_pool.h"
#include "cv_poller.h"
#include "cv_proto.h"

#define CLIENT_NAME        "libcaveat/" CAVEAT_VERSION_STRING
#define PROTOCOL_VERSION   1
#define DEFAULT_CREDIT     100
#define MAX_CREDIT         10000 /* docs/protocol.md 3.4 */
#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_MAX_FRAME  (1024 * 1024) /* the broker's default, when HelloAck omits it */
/*  Batches in flight: enough to hide the commit's sync and the ack's way
 *  back. The broker reads 8 of them ahead (PEER_RCVHWM); the rest wait,
 *  sent, in the connection, so a batch is there as soon as the broker
 *  takes the last one, not an acknowledgement's round trip later (with
 *  16 against 8, workload 1 rose by a median of 8.9 % over 20 alternating
 *  pairs, higher in 15: docs/performance.md, "The sitting of 3c6d469"). */
#define PUBLISH_WINDOW      16
#define MAX_PUBLISHES       64 /* publishes started and not finished (cv_client_publish_start) */
#define BATCH_BYTES         (256 * 1024) /* a batch's frame at most, below max_frame */
#define DEFAULT_MAX_REPORTS 500          /* HelloAck.max_reports absent or 0 */
#define LINGER_MS           1000         /* destroy sends a last ack, but never hangs */
#define HELLO_AGAIN_MS      1000         /* a reconnect's Hello the broker limited, again */
#define HWM                 1000
#define SPARE_ARENAS        2 /* emptied arenas kept for the next frames */
#define ARENA_BLOCK         (8 * 1024)
/* what an emptied arena keeps for the next frame: about what the largest
 * Deliver the broker sends (256 KB packed) takes unpacked, so that a busy
 * subscriber stops taking blocks from malloc and giving them back */
#define ARENA_KEEP (1024 * 1024)
/* Publish frames' buffers kept for the next frames (cv_frame_pool.h): a
 * frame leaves them once libzmq has sent it, so a few cover a window */
#define FRAME_BUFFERS      4
#define FRAME_BUFFER_BYTES (BATCH_BYTES + 16) /* a full batch with its frame's tag and length */

enum { /* Error codes, docs/protocol.md 7 */
       ERR_NOT_READY = 2,
       ERR_VERSION = 3,
       ERR_REVOKED = 6,
};

/*  A Deliver frame in its own arena, which holds this too. */
typedef struct inbound_t {
    struct inbound_t *next;
    cv_arena_t *arena;
    Caveat__Wire__Delivery **deliveries;
    size_t n, taken; /* deliveries[taken] is the next to return */
} inbound_t;

/*  A receipt received and not yet returned, in memory of its own. */
typedef struct receipt_t {
    struct receipt_t *next;
    cv_receipt_t public;
} receipt_t;

struct cv_client_t {
    zsock_t *sock;
    zsock_t *monitor;                 /* PAIR receiving the DEALER's handshake events */
    cv_inbox_t *sock_in, *monitor_in; /* the two, looked at without a system call */
    cv_poller_t *poller;              /* while quiet, and waited on together */
    char *endpoint;
    char *feed; /* NULL: the direct queue */
    uint32_t credit;
    char *agency; /* from HelloAck */
    uint32_t max_frame;
    uint32_t max_reports; /* reports one Publish may hold (HelloAck) */
    uint64_t next_batch;  /* Publish.batch numbers, unique per client */
    uint64_t highest_seq; /* the highest seq cv_client_receive returned */
    uint64_t acked;       /* the highest seq the application acknowledged */
    uint64_t ack_pending; /* an ack not sent yet (coalesced, or refused by a full send queue):
                             sent at the next chance */
    uint64_t ack_sent;    /* the highest up_to sent */
    int send_errno;       /* why the last send failed */
    cv_arena_t *scratch;  /* the next frame is unpacked here */
    inbound_t *inbox;     /* Deliver frames with deliveries not yet returned */
    inbound_t *inbox_end; /* the last of inbox, when there is one */
    inbound_t *done;      /* all returned: the last may still be borrowed */
    cv_arena_t *spares[SPARE_ARENAS];
    size_t n_spares;
    cv_frame_pool_t *frames;         /* Publish frames are written in its buffers */
    cv_delivery_t current;           /* what cv_client_receive returned last */
    cv_feedback_note_t current_note; /* its feedback, when it is feedback */
    cv_client_state_fn *on_state;
    void *on_state_arg;
    int handshakes;          /* successful CURVE handshakes so far */
    bool tcp_connected;      /* a TCP connection was made at least once */
    bool rehello;            /* a reconnect's Hello is not yet answered */
    uint64_t hellos;         /* Hellos sent: a request sent after the last one needs no resend */
    uint64_t admin_requests; /* AdminRequests sent: each carries its number as its id */
    bool hello_due;          /* a reconnect's Hello, sent once the waiting events are read */
    int64_t hello_again_at;  /* a reconnect's Hello the broker limited: said again then, or 0 */
    bool key_refused;        /* the last handshake failed authentication */
    bool dead;               /* REVOKED or VERSION: nothing more will work */
    cv_error_t fatal;        /* why, when dead */
    struct publish_t *publishes[MAX_PUBLISHES]; /* started and not finished, oldest first */
    size_t n_publishes;
    int64_t next_ticket; /* cv_client_publish_start's numbers */
    bool receipts;       /* Hello.receipts */
    struct {
        receipt_t *first, *last; /* received, not yet returned */
        receipt_t *returned;     /* the one cv_client_receipt returned last */
    } receipts_in;
};

typedef enum { PUMP_FRAME, PUMP_AGAIN, PUMP_TIMEOUT, PUMP_ERROR } pump_t;

/*  Publishes in flight (below): any wait on the network hands them their acks. */
static void publishes_on_ack(cv_client_t *self, const Caveat__Wire__PublishAck *ack);
static bool publishes_resend(cv_client_t *self, cv_error_t *err);
static void publishes_abandon(cv_client_t *self);

/*  The public statuses are the wire's, value for value. */
#define SAME_STATUS(name) ((int)CV_PUBLISH_##name == (int)CAVEAT__WIRE__STATUS__##name)
_Static_assert(SAME_STATUS(OK) && SAME_STATUS(REFUSED_SPOOFED_ORIGINATOR) &&
                   SAME_STATUS(REFUSED_INVALID) && SAME_STATUS(REFUSED_DUPLICATE) &&
                   SAME_STATUS(REFUSED_UNAVAILABLE),
               "cv_publish_status_t follows wire.proto's Status");

/* ------------------------------------------------------------------------ */
/*  Names */

/*  The names wire.proto gives them: one list, read from its descriptors. */
static const char *enum_name(const ProtobufCEnumDescriptor *descriptor, int value)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(descriptor, value);
    return v ? v->name : "UNKNOWN";
}

const char *cv_status_name(int status)
{
    if (status == CV_PUBLISH_PENDING)
        return "PENDING";
    return enum_name(&caveat__wire__status__descriptor, status);
}

const char *cv_error_code_name(uint32_t code)
{
    return code == 0 || code > INT32_MAX
               ? "UNKNOWN"
               : enum_name(&caveat__wire__error_code__descriptor, (int)code);
}

const char *caveat_version(void)
{
    return CAVEAT_VERSION_STRING;
}

const char *cv_code_name(int code)
{
    static const char *const names[] = {
        [CV_OK] = "OK",
        [CV_ERR_FAILED] = "FAILED",
        [CV_ERR_BAD_INPUT] = "BAD_INPUT",
        [CV_ERR_NO_MEMORY] = "NO_MEMORY",
        [CV_ERR_TIMEOUT] = "TIMEOUT",
        [CV_ERR_UNREACHABLE] = "UNREACHABLE",
        [CV_ERR_REFUSED_KEY] = "REFUSED_KEY",
        [CV_ERR_BROKER] = "BROKER",
        [CV_ERR_TRANSPORT] = "TRANSPORT",
        [CV_ERR_CLOSED] = "CLOSED",
        [CV_ERR_INTERRUPTED] = "INTERRUPTED",
    };
    bool known = code >= 0 && (size_t)code < sizeof names / sizeof *names && names[code];
    return known ? names[code] : "UNKNOWN";
}

/*  Gives the error just set its code. */
static void set_code(cv_error_t *err, cv_code_t code)
{
    if (err)
        err->code = code;
}

static void out_of_memory(cv_error_t *err)
{
    cv_error_set(err, NULL, 0, 0, "out of memory");
    set_code(err, CV_ERR_NO_MEMORY);
}

/*  Every call after the session ended fails with why it ended. */
static void closed(const cv_client_t *self, cv_error_t *err)
{
    if (err)
        *err = self->fatal;
}

/*  Keeps an error one line: text from the broker goes to a terminal. */
static void one_line(cv_error_t *err)
{
    for (char *c = err ? err->msg : NULL; c && *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = ' ';
}

static double seconds(int ms)
{
    return ms / 1000.0;
}

static bool check_config(const cv_client_config_t *config, cv_error_t *err)
{
    if (!config || !config->endpoint || !*config->endpoint)
        cv_error_set(err, NULL, 0, 0, "no broker endpoint");
    else if (!config->server_cert || !*config->server_cert)
        cv_error_set(err, NULL, 0, 0, "no broker certificate (BROKER.cert)");
    else if (!config->client_cert || !*config->client_cert)
        cv_error_set(err, NULL, 0, 0, "no agency certificate (AGENCY.cert_secret)");
    else if (config->credit > MAX_CREDIT)
        cv_error_set(err, NULL, 0, 0, "credit %" PRIu32 ": at most %d", config->credit, MAX_CREDIT);
    else if (config->timeout_ms < 0)
        cv_error_set(err, NULL, 0, 0, "negative timeout");
    else
        return true;
    set_code(err, CV_ERR_BAD_INPUT);
    return false;
}

/*  A certificate that cannot be read is the caller's bad input. */
static bool load_keys(const cv_client_config_t *config, uint8_t server_key[CV_KEY_BYTES],
                      uint8_t public_key[CV_KEY_BYTES], uint8_t secret_key[CV_KEY_BYTES],
                      cv_error_t *err)
{
    if (cv_cert_load(config->server_cert, server_key, NULL, err) &&
        cv_cert_load(config->client_cert, public_key, secret_key, err))
        return true;
    set_code(err, CV_ERR_BAD_INPUT);
    return false;
}

bool cv_client_check_certs(const cv_client_config_t *config, cv_error_t *err)
{
    uint8_t server_key[CV_KEY_BYTES], public_key[CV_KEY_BYTES], secret_key[CV_KEY_BYTES];
    bool ok =
        check_config(config, err) && load_keys(config, server_key, public_key, secret_key, err);
    sodium_memzero(secret_key, sizeof secret_key);
    return ok;
}

/* ------------------------------------------------------------------------ */
/*  Frames on the wire: one ZeroMQ message of one frame each. */

/*  Sends msg, a packed Frame, and takes it over. */
static bool send_msg(cv_client_t *self, zmq_msg_t *msg, cv_error_t *err)
{
    /* never block: a full send queue means the broker is gone or stuck */
    int sent = zmq_msg_send(msg, zsock_resolve(self->sock), ZMQ_DONTWAIT);
    cv_inbox_touched(self->sock_in); /* a send may read the socket's news of messages */
    if (sent < 0) {
        int code = self->send_errno = zmq_errno();
        zmq_msg_close(msg);
        cv_error_set(err, NULL, 0, 0, "%s: cannot send: %s", self->endpoint,
                     code == EAGAIN ? "the send queue is full (is the broker running?)"
                                    : zmq_strerror(code));
        set_code(err, CV_ERR_TRANSPORT);
        return false;
    }
    return true;
}

static bool send_frame(cv_client_t *self, const Caveat__Wire__Frame *frame, cv_error_t *err)
{
    size_t size = caveat__wire__frame__get_packed_size(frame);
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, size) != 0) {
        out_of_memory(err);
        return false;
    }
    caveat__wire__frame__pack(frame, zmq_msg_data(&msg));
    return send_msg(self, &msg, err);
}

/*  An empty arena: a spare, or a new one. Its blocks are small because a
 *  Deliver keeps at least one while queued, and a publish can queue up to
 *  credit of them (one delivery each, when traffic is light); a full
 *  Deliver still costs one block per few deliveries, not twenty mallocs
 *  per delivery. */
static cv_arena_t *arena_take(cv_client_t *self)
{
    if (self->n_spares)
        return self->spares[--self->n_spares];
    cv_arena_t *arena = cv_arena_new(ARENA_BLOCK);
    if (arena)
        cv_arena_keep(arena, ARENA_KEEP);
    return arena;
}

static void arena_give(cv_client_t *self, cv_arena_t *arena)
{
    if (self->n_spares < SPARE_ARENAS) {
        cv_arena_reset(arena);
        self->spares[self->n_spares++] = arena;
    } else {
        cv_arena_destroy(&arena);
    }
}

/*  Into the scratch arena, emptied first: whoever handled the frame read
 *  before is done with it. NULL when out of memory, like a bad frame. */
static Caveat__Wire__Frame *unpack_frame(cv_client_t *self, size_t size, const uint8_t *data)
{
    if (!self->scratch)
        self->scratch = arena_take(self);
    if (!self->scratch)
        return NULL;
    cv_arena_reset(self->scratch);
    return caveat__wire__frame__unpack(cv_arena_allocator(self->scratch), size, data);
}

/*  Reads one waiting message. NULL for anything that is not exactly one
 *  frame holding a Frame: such a message is dropped, not fatal. */
static Caveat__Wire__Frame *recv_frame(cv_client_t *self)
{
    void *handle = zsock_resolve(self->sock);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, handle, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return NULL;
    }
    bool more = zmq_msg_more(&msg);
    Caveat__Wire__Frame *frame =
        more ? NULL : unpack_frame(self, zmq_msg_size(&msg), zmq_msg_data(&msg));
    while (more) { /* the rest of a multi-frame message */
        zmq_msg_close(&msg);
        zmq_msg_init(&msg);
        more = zmq_msg_recv(&msg, handle, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&msg);
    }
    zmq_msg_close(&msg);
    return frame;
}

static bool send_hello(cv_client_t *self, cv_error_t *err)
{
    Caveat__Wire__Hello hello = CAVEAT__WIRE__HELLO__INIT;
    hello.has_version = true;
    hello.version = PROTOCOL_VERSION;
    hello.client = (char *)CLIENT_NAME;
    hello.feed = self->feed;
    hello.has_credit = true;
    hello.credit = self->credit;
    hello.has_receipts = self->receipts;
    hello.receipts = self->receipts;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_HELLO;
    frame.hello = &hello;
    if (!send_frame(self, &frame, err))
        return false;
    self->hellos++;
    return true;
}

/*  Whether a request last sent when self->hellos was sent_at must go again
 *  on a HelloAck. Frames on one connection arrive in order, so a request
 *  sent after the last Hello reaches the session that Hello opens (and if
 *  the connection drops, the reconnect's Hello is a later one). Two Hellos
 *  can be unanswered at once, a NOT_READY's and a reconnect's: resending
 *  on each HelloAck would store one feedback twice. */
static bool needs_resend(const cv_client_t *self, uint64_t sent_at)
{
    assert(sent_at <= self->hellos);
    return sent_at < self->hellos;
}

/* ------------------------------------------------------------------------ */
/*  What arrives: frames and handshake events. */

/*  The frame's arena (the scratch one) becomes the frame's own. When out
 *  of memory the frame is dropped, as a bad one would be: the broker
 *  resends what is not acknowledged. */
static void queue_deliveries(cv_client_t *self, Caveat__Wire__Deliver *deliver)
{
    ProtobufCAllocator *allocator = cv_arena_allocator(self->scratch);
    inbound_t *in =
        deliver->n_deliveries ? allocator->alloc(allocator->allocator_data, sizeof *in) : NULL;
    if (!in)
        return;
    *in = (inbound_t){
        .arena = self->scratch, .deliveries = deliver->deliveries, .n = deliver->n_deliveries};
    self->scratch = NULL;
    if (self->inbox)
        self->inbox_end->next = in;
    else
        self->inbox = in;
    self->inbox_end = in;
}

/*  The next queued delivery, or NULL. A frame whose deliveries have all
 *  been taken moves to self->done, since the last may still be borrowed. */
static Caveat__Wire__Delivery *take_delivery(cv_client_t *self)
{
    inbound_t *in = self->inbox;
    if (!in)
        return NULL;
    Caveat__Wire__Delivery *delivery = in->deliveries[in->taken++];
    if (in->taken == in->n) {
        self->inbox = in->next;
        in->next = self->done;
        self->done = in;
    }
    return delivery;
}

/*  Every call that may end the borrow of the delivery returned last (as
 *  caveat.h lists them) starts here: the frames all returned give their
 *  arenas back. */
static void end_borrow(cv_client_t *self)
{
    while (self->done) {
        inbound_t *in = self->done;
        self->done = in->next; /* in lives in the arena given back */
        arena_give(self, in->arena);
    }
}

static void receipt_free(receipt_t *r)
{
    free(r); /* one block: the strings and the leaf follow the struct */
}

/*  A receipt copied out of its frame's arena into one block. Dropped when
 *  out of memory or malformed: a receipt is evidence, not a delivery. */
static receipt_t *receipt_copy(const Caveat__Wire__Receipt *in)
{
    const char *id = in->report_id ? in->report_id : "", *proof = in->tlog_proof;
    if (!proof || !in->has_seq || !in->has_index)
        return NULL;
    size_t id_len = strlen(id), proof_len = strlen(proof), leaf_len = in->leaf.len;
    receipt_t *r = malloc(sizeof *r + id_len + 1 + proof_len + 1 + leaf_len);
    if (!r)
        return NULL;
    char *at = (char *)(r + 1);
    r->next = NULL;
    r->public = (cv_receipt_t){in->seq, at, in->index, NULL, leaf_len, NULL, proof_len};
    memcpy(at, id, id_len + 1);
    at += id_len + 1;
    r->public.proof = memcpy(at, proof, proof_len + 1);
    at += proof_len + 1;
    r->public.leaf = leaf_len ? memcpy(at, in->leaf.data, leaf_len) : (const uint8_t *)at;
    return r;
}

static void queue_receipts(cv_client_t *self, const Caveat__Wire__Receipts *receipts)
{
    for (size_t i = 0; self->receipts && i < receipts->n_receipts; i++) {
        receipt_t *r = receipt_copy(receipts->receipts[i]);
        if (!r)
            continue;
        if (self->receipts_in.last)
            self->receipts_in.last->next = r;
        else
            self->receipts_in.first = r;
        self->receipts_in.last = r;
    }
}

const cv_receipt_t *cv_client_receipt(cv_client_t *self)
{
    receipt_free(self->receipts_in.returned);
    receipt_t *r = self->receipts_in.returned = self->receipts_in.first;
    if (!r)
        return NULL;
    self->receipts_in.first = r->next;
    if (!r->next)
        self->receipts_in.last = NULL;
    return &r->public;
}

/*  What a "delivered" leaf hashes: the view's bytes, or for feedback the
 *  FeedbackNote's, packed again as the broker packed them (protobuf-c
 *  writes fields in order, so the bytes are the same). */
bool cv_client_view_hash(const cv_delivery_t *d, uint8_t hash[32])
{
    Caveat__Wire__FeedbackNote note = CAVEAT__WIRE__FEEDBACK_NOTE__INIT;
    const ProtobufCMessage *message = d->report ? &d->report->base : NULL;
    if (!message && d->feedback) {
        note.report_id = (char *)d->feedback->report_id;
        note.from = (char *)d->feedback->from;
        note.value = (char *)d->feedback->value;
        note.text = *d->feedback->text ? (char *)d->feedback->text : NULL;
        note.time = (char *)d->feedback->time;
        message = &note.base;
    }
    if (!message)
        return false;
    size_t len = protobuf_c_message_get_packed_size(message);
    uint8_t *bytes = malloc(len ? len : 1);
    if (!bytes)
        return false;
    protobuf_c_message_pack(message, bytes);
    crypto_hash_sha256(hash, bytes, len);
    free(bytes);
    return true;
}

static pump_t on_error(cv_client_t *self, const Caveat__Wire__Error *error, cv_error_t *err)
{
    uint32_t code = error->has_code ? error->code : 0;
    /* frames queued while the connection was down reach a broker that has
       no session for them before our new Hello does; and a broker may drop
       an old send-only session. Either way: Hello again, and the
       unacknowledged batches are resent when it is answered */
    if (code == ERR_NOT_READY && (self->rehello || send_hello(self, NULL))) {
        self->rehello = true;
        return PUMP_AGAIN;
    }
    /* a reconnect's Hello over the broker's rate (its queue's window sent
       again too often, many reconnects in a second): a second later, not
       the application's error */
    if (code == CAVEAT__WIRE__ERROR_CODE__LIMIT && self->rehello) {
        self->rehello = false;
        self->hello_again_at = zclock_mono() + HELLO_AGAIN_MS;
        return PUMP_AGAIN;
    }
    const char *reason = error->reason ? error->reason : "";
    cv_error_set(err, NULL, 0, 0, "broker: %s%s%s", cv_error_code_name(code), *reason ? ": " : "",
                 reason);
    one_line(err);
    set_code(err, CV_ERR_BROKER);
    if (err)
        err->broker_code = code;
    if (code == ERR_REVOKED || code == ERR_VERSION) {
        self->dead = true;
        cv_error_set(&self->fatal, NULL, 0, 0, "%s", err ? err->msg : "broker: session closed");
        self->fatal.code = CV_ERR_CLOSED;
        self->fatal.broker_code = code;
    }
    return PUMP_ERROR;
}

static bool on_hello_ack(cv_client_t *self, const Caveat__Wire__HelloAck *ack, cv_error_t *err)
{
    if (ack->has_version && ack->version != PROTOCOL_VERSION) {
        cv_error_set(&self->fatal, NULL, 0, 0, "broker speaks protocol version %" PRIu32 ", not %d",
                     ack->version, PROTOCOL_VERSION);
        self->fatal.code = CV_ERR_CLOSED;
        self->dead = true;
        closed(self, err);
        return false;
    }
    char *agency = strdup(ack->agency ? ack->agency : "");
    if (!agency) {
        out_of_memory(err);
        return false;
    }
    free(self->agency);
    self->agency = agency;
    self->max_frame = ack->has_max_frame && ack->max_frame ? ack->max_frame : DEFAULT_MAX_FRAME;
    self->max_reports =
        ack->has_max_reports && ack->max_reports ? ack->max_reports : DEFAULT_MAX_REPORTS;
    self->rehello = false;
    return true;
}

/*  Handles one frame: deliveries are queued, an Error ends the wait, and
 *  HelloAck, PublishAck and AdminReply go to the caller as *out. */
static pump_t on_frame(cv_client_t *self, Caveat__Wire__Frame *frame, Caveat__Wire__Frame **out,
                       cv_error_t *err)
{
    if (!frame)
        return PUMP_AGAIN;
    pump_t result = PUMP_AGAIN;
    switch (frame->body_case) {
    case CAVEAT__WIRE__FRAME__BODY_DELIVER:
        queue_deliveries(self, frame->deliver);
        break;
    case CAVEAT__WIRE__FRAME__BODY_ERROR:
        result = on_error(self, frame->error, err);
        break;
    case CAVEAT__WIRE__FRAME__BODY_RECEIPTS:
        queue_receipts(self, frame->receipts);
        break;
    case CAVEAT__WIRE__FRAME__BODY_HELLO_ACK:
        /* a reconnect: the new session may never have seen what was in flight */
        result = on_hello_ack(self, frame->hello_ack, err) && publishes_resend(self, err)
                     ? PUMP_FRAME
                     : PUMP_ERROR;
        break;
    case CAVEAT__WIRE__FRAME__BODY_PUBLISH_ACK:
        /* whichever call is waiting: acks of started publishes come any time */
        publishes_on_ack(self, frame->publish_ack);
        break;
    case CAVEAT__WIRE__FRAME__BODY_ADMIN_REPLY:
    case CAVEAT__WIRE__FRAME__BODY_APPROVAL_ACK:
    case CAVEAT__WIRE__FRAME__BODY_FEEDBACK_ACK:
        result = PUMP_FRAME;
        break;
    default: /* heartbeats, and frames only a client sends */
        break;
    }
    if (result == PUMP_FRAME)
        *out = frame;
    return result;
}

/*  A second successful handshake is a new connection, which has no
 *  session at the broker: open it again (pump sends the Hello). */
static void on_handshake(cv_client_t *self)
{
    self->key_refused = false;
    if (++self->handshakes > 1)
        self->hello_due = true;
}

/*  One Hello for however many reconnects the events waiting tell of: an
 *  application that did not call in for a while finds several, and the
 *  broker takes only so many Hellos a second on one connection. Sent as
 *  soon as the events are read, since the broker ends a connection that
 *  opens no session within its timeout. */
static void send_due_hello(cv_client_t *self)
{
    if (!self->hello_due || cv_inbox_ready_now(self->monitor_in))
        return;
    self->hello_due = false;
    if (send_hello(self, NULL))
        self->rehello = true;
}

static void tell_state(cv_client_t *self, cv_client_state_t state)
{
    if (self->on_state)
        self->on_state(self, state, self->on_state_arg);
}

static void on_monitor_event(cv_client_t *self)
{
    zmsg_t *msg = zmsg_recv(self->monitor);
    zframe_t *head = msg ? zmsg_first(msg) : NULL;
    if (head && zframe_size(head) == 6) { /* uint16 event, uint32 value */
        uint16_t event;
        uint32_t value;
        memcpy(&event, zframe_data(head), sizeof event);
        memcpy(&value, zframe_data(head) + 2, sizeof value);
        if (event == ZMQ_EVENT_CONNECTED) {
            self->tcp_connected = true;
        } else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            on_handshake(self);
            tell_state(self, CV_STATE_CONNECTED);
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && value != 300) { /* 300: again */
            self->key_refused = true;
            tell_state(self, CV_STATE_REFUSED);
        } else if (event == ZMQ_EVENT_DISCONNECTED && self->handshakes > 0) {
            tell_state(self, CV_STATE_DISCONNECTED); /* only a connection that was up */
        }
    }
    zmsg_destroy(&msg);
}

/*  Waits until deadline (zclock_mono ms) for one thing to happen. Returns
 *  PUMP_FRAME with *out set for a frame the caller must handle before it
 *  pumps again (the next frame takes its arena),
 *  PUMP_AGAIN when something else was handled (deliveries queued, an event),
 *  PUMP_TIMEOUT, or PUMP_ERROR with err. */
static bool send_ack(cv_client_t *self, uint64_t up_to, cv_error_t *err);

static pump_t pump(cv_client_t *self, int64_t deadline, Caveat__Wire__Frame **out, cv_error_t *err)
{
    if (self->dead) {
        closed(self, err);
        return PUMP_ERROR;
    }
    cv_error_t ignored;
    if (self->ack_pending && send_ack(self, self->ack_pending, &ignored))
        self->ack_pending = 0;
    int64_t wake =
        self->hello_again_at && self->hello_again_at < deadline ? self->hello_again_at : deadline;
    int64_t wait = wake - zclock_mono();
    if (cv_poller_wait(self->poller, wait > 0 ? (int)wait : 0) < 0) {
        int code = errno; /* before anything else may set it */
        if (code == EINTR && !zsys_interrupted)
            return PUMP_AGAIN; /* a signal the application handles */
        cv_error_set(err, NULL, 0, 0, "%s", code == EINTR ? "interrupted" : strerror(code));
        set_code(err, code == EINTR ? CV_ERR_INTERRUPTED : CV_ERR_FAILED);
        return PUMP_ERROR;
    }
    bool event = cv_inbox_ready(self->monitor_in);
    if (event) {
        on_monitor_event(self);
        send_due_hello(self);
    }
    if (self->hello_again_at && zclock_mono() >= self->hello_again_at) {
        self->hello_again_at = 0;
        if (send_hello(self, NULL))
            self->rehello = true;
    }
    if (self->key_refused) {
        cv_error_set(err, NULL, 0, 0,
                     "%s: the broker refused this agency's key (is this agency's key in the "
                     "policy?)",
                     self->endpoint);
        set_code(err, CV_ERR_REFUSED_KEY);
        return PUMP_ERROR;
    }
    if (cv_inbox_ready(self->sock_in))
        return on_frame(self, recv_frame(self), out, err);
    if (event)
        return PUMP_AGAIN;
    return zclock_mono() >= deadline ? PUMP_TIMEOUT : PUMP_AGAIN;
}

/* ------------------------------------------------------------------------ */
/*  Life cycle */

static zsock_t *make_socket(const uint8_t server_key[CV_KEY_BYTES],
                            const uint8_t public_key[CV_KEY_BYTES],
                            const uint8_t secret_key[CV_KEY_BYTES])
{
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    if (!sock)
        return NULL;
    zsock_set_linger(sock, LINGER_MS);
    zsock_set_sndhwm(sock, HWM);
    zsock_set_rcvhwm(sock, HWM);
    zsock_set_heartbeat_ivl(sock, 5000);
    zsock_set_heartbeat_timeout(sock, 15000);
    /* the keys go straight to libzmq: no zcert holding another copy */
    zsock_set_curve_serverkey_bin(sock, server_key);
    zsock_set_curve_publickey_bin(sock, public_key);
    zsock_set_curve_secretkey_bin(sock, secret_key);
    return sock;
}

/*  Handshake events come on an inproc PAIR; the name only has to be unique
 *  in this process. */
static bool start_monitor(cv_client_t *self)
{
    static atomic_uint counter;
    char endpoint[96];
    snprintf(endpoint, sizeof endpoint, "inproc://libcaveat-monitor-%u-%p",
             atomic_fetch_add(&counter, 1), (void *)self);
    int events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor(zsock_resolve(self->sock), endpoint, events) != 0)
        return false;
    self->monitor = zsock_new(ZMQ_PAIR);
    if (!self->monitor)
        return false;
    /* libzmq's I/O thread sends events blocking: an unlimited queue means
       an application that calls nothing for a while never stalls it */
    zsock_set_rcvhwm(self->monitor, 0);
    return zsock_connect(self->monitor, "%s", endpoint) == 0;
}

static bool watch(cv_client_t *self)
{
    self->sock_in = cv_inbox_new(self->sock, true);
    self->monitor_in = cv_inbox_new(self->monitor, true);
    self->poller = cv_poller_new();
    return self->sock_in && self->monitor_in && self->poller &&
           cv_poller_add(self->poller, self->sock_in) == 0 &&
           cv_poller_add(self->poller, self->monitor_in) == 0;
}

static bool open_socket(cv_client_t *self, const uint8_t server_key[CV_KEY_BYTES],
                        const uint8_t public_key[CV_KEY_BYTES],
                        const uint8_t secret_key[CV_KEY_BYTES], cv_error_t *err)
{
    self->sock = make_socket(server_key, public_key, secret_key);
    if (!self->sock || !start_monitor(self) || !watch(self)) {
        cv_error_set(err, NULL, 0, 0, "cannot make a ZeroMQ socket: %s", zmq_strerror(errno));
        return false;
    }
    if (zsock_connect(self->sock, "%s", self->endpoint) != 0) {
        cv_error_set(err, NULL, 0, 0, "%s: %s", self->endpoint, zmq_strerror(errno));
        set_code(err, CV_ERR_BAD_INPUT); /* libzmq checks the endpoint's form only */
        return false;
    }
    return true;
}

/*  How far the connection got tells why no HelloAck came: a refused key
 *  is an event of its own (pump). */
static void no_hello_ack(const cv_client_t *self, int timeout_ms, cv_error_t *err)
{
    if (!self->tcp_connected) {
        cv_error_set(err, NULL, 0, 0, "no answer from %s within %gs (is caveatd running there?)",
                     self->endpoint, seconds(timeout_ms));
        set_code(err, CV_ERR_UNREACHABLE);
    } else if (self->handshakes == 0) {
        cv_error_set(err, NULL, 0, 0,
                     "%s took the connection but no CURVE handshake completed within %gs "
                     "(is the broker certificate this broker's?)",
                     self->endpoint, seconds(timeout_ms));
        set_code(err, CV_ERR_UNREACHABLE);
    } else {
        cv_error_set(err, NULL, 0, 0, "no HelloAck from %s within %gs", self->endpoint,
                     seconds(timeout_ms));
        set_code(err, CV_ERR_TIMEOUT);
    }
}

/*  Waits for the first CURVE handshake, then sends Hello and waits for
 *  HelloAck. A key the broker's ZAP handler refuses shows up as a
 *  handshake event; a wrong server key or a broker that is not there, as
 *  silence. The Hello waits for the handshake because libzmq drops a
 *  refused connection's pipe: a Hello sent once the refusal is in would
 *  find no pipe and fail as "the send queue is full", hiding why. */
static bool open_session(cv_client_t *self, int timeout_ms, cv_error_t *err)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    bool hello_sent = false;
    while (true) {
        if (!hello_sent && self->handshakes > 0) {
            hello_sent = true; /* after a second handshake, on_handshake sent it */
            if (self->handshakes == 1 && !send_hello(self, err))
                return false;
        }
        Caveat__Wire__Frame *frame = NULL;
        pump_t result = pump(self, deadline, &frame, err);
        if (result == PUMP_FRAME) {
            if (frame->body_case == CAVEAT__WIRE__FRAME__BODY_HELLO_ACK)
                return true;
        } else if (result == PUMP_TIMEOUT) {
            no_hello_ack(self, timeout_ms, err);
            return false;
        } else if (result == PUMP_ERROR) {
            return false;
        }
    }
}

/*  Frees the arenas of a list of Deliver frames (each in its arena). */
static void arenas_free(inbound_t *in)
{
    while (in) {
        cv_arena_t *arena = in->arena;
        in = in->next;
        cv_arena_destroy(&arena);
    }
}

static cv_client_t *client_alloc(const cv_client_config_t *config)
{
    cv_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->endpoint = strdup(config->endpoint);
    self->feed = config->feed && *config->feed ? strdup(config->feed) : NULL;
    /* credit 0 on the wire: a publish-only session (docs/protocol.md 3) */
    self->credit = config->publish_only ? 0 : config->credit ? config->credit : DEFAULT_CREDIT;
    self->max_frame = DEFAULT_MAX_FRAME;
    self->max_reports = DEFAULT_MAX_REPORTS;
    self->next_batch = 1;
    self->receipts = config->receipts && !config->publish_only;
    self->frames = cv_frame_pool_new(FRAME_BUFFERS, FRAME_BUFFER_BYTES);
    cv_client_set_state_callback(self, config->on_state, config->on_state_arg);
    if (!self->endpoint || !self->frames || (config->feed && *config->feed && !self->feed))
        cv_client_destroy(&self);
    return self;
}

/*  czmq's first use sets up process-wide state, and two threads doing it
 *  at once abort in zsys: do it once, first. It also catches SIGINT and
 *  SIGTERM, which are the application's to handle: whatever handlers were
 *  there before are put back (czmq's zsys_handler_set(NULL) would also
 *  undo an application's own czmq handler). */
static void czmq_init(void)
{
    struct sigaction sigint_before, sigterm_before;
    sigaction(SIGINT, NULL, &sigint_before);
    sigaction(SIGTERM, NULL, &sigterm_before);
    zsys_init();
    sigaction(SIGINT, &sigint_before, NULL);
    sigaction(SIGTERM, &sigterm_before, NULL);
}

cv_client_t *cv_client_new(const cv_client_config_t *config, cv_error_t *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, czmq_init);
    if (!check_config(config, err))
        return NULL;
    if (sodium_init() < 0) {
        cv_error_set(err, NULL, 0, 0, "libsodium cannot start");
        return NULL;
    }
    uint8_t server_key[CV_KEY_BYTES], public_key[CV_KEY_BYTES], secret_key[CV_KEY_BYTES];
    bool keys = load_keys(config, server_key, public_key, secret_key, err);
    cv_client_t *self = keys ? client_alloc(config) : NULL;
    if (keys && !self)
        out_of_memory(err);
    bool ok = self && open_socket(self, server_key, public_key, secret_key, err);
    sodium_memzero(secret_key, sizeof secret_key);
    int timeout_ms = config->timeout_ms ? config->timeout_ms : DEFAULT_TIMEOUT_MS;
    ok = ok && open_session(self, timeout_ms, err);
    if (!ok && self) {
        if (self->sock) /* an unanswered Hello is not worth waiting for */
            zsock_set_linger(self->sock, 0);
        cv_client_destroy(&self);
    }
    return self;
}

void cv_client_destroy(cv_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cv_client_t *self = *self_p;
    cv_error_t ignored;
    if (self->ack_pending && self->sock && !self->dead) /* best effort, as any ack */
        send_ack(self, self->ack_pending, &ignored);
    publishes_abandon(self);
    if (self->sock && self->monitor)
        zmq_socket_monitor(zsock_resolve(self->sock), NULL, 0);
    cv_poller_destroy(&self->poller);
    cv_inbox_destroy(&self->sock_in);
    cv_inbox_destroy(&self->monitor_in);
    zsock_destroy(&self->monitor);
    zsock_destroy(&self->sock);
    arenas_free(self->inbox);
    arenas_free(self->done);
    receipt_free(self->receipts_in.returned);
    while (self->receipts_in.first) {
        receipt_t *r = self->receipts_in.first;
        self->receipts_in.first = r->next;
        receipt_free(r);
    }
    while (self->n_spares)
        cv_arena_destroy(&self->spares[--self->n_spares]);
    cv_arena_destroy(&self->scratch);
    cv_frame_pool_destroy(&self->frames); /* its buffers still in libzmq come back later */
    free(self->endpoint);
    free(self->feed);
    free(self->agency);
    free(self);
    *self_p = NULL;
}

const char *cv_client_agency(const cv_client_t *self)
{
    return self->agency ? self->agency : "";
}

uint32_t cv_client_max_frame(const cv_client_t *self)
{
    return self->max_frame;
}

int cv_client_fd(cv_client_t *self)
{
    return self && self->sock ? zsock_fd(self->sock) : -1;
}

void cv_client_set_state_callback(cv_client_t *self, cv_client_state_fn *fn, void *arg)
{
    self->on_state = fn;
    self->on_state_arg = fn ? arg : NULL;
}

/* ------------------------------------------------------------------------ */
/*  Publishing */

typedef struct {
    size_t first;   /* into publish_t.order */
    size_t count;   /* reports in the batch */
    uint64_t id;    /* Publish.batch, once sent */
    uint64_t hello; /* cv_client_t.hellos when last sent */
    bool acked;
} batch_t;

typedef struct publish_t {
    int64_t ticket; /* cv_client_publish_start's */
    size_t n;       /* reports */
    bool failed;    /* a PublishAck that did not fit: error says why */
    cv_error_t error;
    const Caveat__Report *const *reports; /* the caller's, never changed */
    char **ids;                           /* the ids given to reports without one (else NULL) */
    cv_publish_result_t *results;
    size_t *sizes; /* each report's packed size, computed once */
    size_t *order; /* the indices of the reports sent, batch after batch */
    batch_t *batches;
    size_t n_batches;
    size_t sent;  /* batches sent: batches[0 .. sent-1] */
    size_t acked; /* of those, acknowledged */
} publish_t;

/*  Publish frames are written here, around caveat__report__pack, not by
 *  caveat__wire__frame__pack: that would size every report again at each
 *  level (Frame, Publish), and protobuf-c's sizing strlen()s every string.
 *  The bytes are the same: Frame.publish, then Publish.batch and one
 *  Publish.reports field per report, in field order as protobuf-c packs. */
enum {
    TAG_FRAME_PUBLISH = 3 << 3 | 2,  /* field 3, length-delimited */
    TAG_PUBLISH_BATCH = 1 << 3 | 0,  /* field 1, varint */
    TAG_PUBLISH_REPORT = 2 << 3 | 2, /* field 2, length-delimited */
};

static size_t varint_size(uint64_t value)
{
    size_t n = 1;
    while (value >= 0x80) {
        value >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *out, uint64_t value)
{
    while (value >= 0x80) {
        *out++ = (uint8_t)(value | 0x80);
        value >>= 7;
    }
    *out++ = (uint8_t)value;
    return out;
}

/*  A report's bytes inside Publish: tag, length, body. */
static size_t report_field_size(size_t size)
{
    return 1 + varint_size(size) + size;
}

/*  The Frame around a Publish whose reports take body bytes: Publish.batch
 *  at its largest (tag and a 10-byte varint), then Frame's tag and length. */
static size_t publish_frame_size(size_t body)
{
    size_t publish = 11 + body;
    return 1 + varint_size(publish) + publish;
}

/*  Report i's id: its own, or the one it was given. */
static const char *report_id(const publish_t *p, size_t i)
{
    return p->ids[i] ? p->ids[i] : p->reports[i]->id;
}

/*  Report i as it is sent: a shallow copy that carries its id, so the
 *  caller's report is only read. */
static Caveat__Report as_sent(const publish_t *p, size_t i)
{
    Caveat__Report report = *p->reports[i];
    report.id = (char *)report_id(p, i);
    return report;
}

/*  What goes into a cv_publish_result_t is malloc'd (caveat.h). */
static bool set_result(cv_publish_result_t *result, const char *id, int status, const char *reason)
{
    char *new_id = strdup(id ? id : ""), *new_reason = strdup(reason ? reason : "");
    free(result->report_id);
    free(result->reason);
    result->report_id = new_id;
    result->reason = new_reason;
    result->status = status;
    return new_id && new_reason;
}

/*  Splits the reports, in order, into batches whose Frame fits max_frame;
 *  a report too large on its own is refused here and never sent. */
static bool plan_batches(publish_t *p, size_t n, size_t max_frame, size_t max_reports,
                         cv_error_t *err)
{
    size_t body = 0, used = 0;
    for (size_t i = 0; i < n; i++) {
        Caveat__Report report = as_sent(p, i);
        p->sizes[i] = caveat__report__get_packed_size(&report);
        size_t size = report_field_size(p->sizes[i]);
        if (publish_frame_size(size) > max_frame) {
            char reason[160];
            snprintf(reason, sizeof reason,
                     "too large: %zu bytes in a frame, the broker takes at most %zu",
                     publish_frame_size(size), max_frame);
            if (!set_result(&p->results[i], report_id(p, i), CAVEAT__WIRE__STATUS__REFUSED_INVALID,
                            reason)) {
                out_of_memory(err);
                return false;
            }
            continue;
        }
        /* a batch ends at BATCH_BYTES even when the broker takes more: a few
         * batches in flight keep the broker busy while the next is sent */
        size_t limit = max_frame < BATCH_BYTES ? max_frame : BATCH_BYTES;
        if (p->n_batches == 0 || publish_frame_size(body + size) > limit ||
            p->batches[p->n_batches - 1].count >= max_reports) {
            p->batches[p->n_batches++] = (batch_t){.first = used};
            body = 0;
        }
        body += size;
        p->order[used++] = i;
        p->batches[p->n_batches - 1].count++;
    }
    return true;
}

/*  An empty id becomes a new id (cv_report_id_new) before anything is
 *  sent, and the results give it back: publishing the same report again
 *  with that id is idempotent. */
static bool assign_id(publish_t *p, size_t i)
{
    const char *own = p->reports[i]->id;
    if (own && *own)
        return true;
    p->ids[i] = cv_report_id_new(); /* the broker's form: ids that rise with time */
    return p->ids[i] != NULL;
}

/*  Publish's bytes: Publish.batch and the batch's reports. */
static size_t publish_body_size(const publish_t *p, const batch_t *batch)
{
    size_t body = 1 + varint_size(batch->id);
    for (size_t j = 0; j < batch->count; j++)
        body += report_field_size(p->sizes[p->order[batch->first + j]]);
    return body;
}

/*  Writes the Frame of a batch whose Publish takes body bytes. */
static void write_publish(const publish_t *p, const batch_t *batch, size_t body, uint8_t *out)
{
    *out++ = TAG_FRAME_PUBLISH;
    out = put_varint(out, body);
    *out++ = TAG_PUBLISH_BATCH;
    out = put_varint(out, batch->id);
    for (size_t j = 0; j < batch->count; j++) {
        size_t i = p->order[batch->first + j];
        *out++ = TAG_PUBLISH_REPORT;
        out = put_varint(out, p->sizes[i]);
        Caveat__Report report = as_sent(p, i);
        out += caveat__report__pack(&report, out);
    }
}

#ifndef NDEBUG
/*  Debug builds (the sanitizer tests among them) check each frame written
 *  against protobuf-c's own packing of the same Publish. */
static bool packs_as_protobuf_c(const publish_t *p, const batch_t *batch, const uint8_t *data,
                                size_t size)
{
    Caveat__Report *copies = malloc(batch->count * sizeof *copies);
    Caveat__Report **list = malloc(batch->count * sizeof *list);
    for (size_t j = 0; copies && list && j < batch->count; j++) {
        copies[j] = as_sent(p, p->order[batch->first + j]);
        list[j] = &copies[j];
    }
    Caveat__Wire__Publish publish = CAVEAT__WIRE__PUBLISH__INIT;
    publish.has_batch = true;
    publish.batch = batch->id;
    publish.n_reports = batch->count;
    publish.reports = list;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_PUBLISH;
    frame.publish = &publish;
    uint8_t *expected = copies && list ? malloc(size) : NULL;
    bool same = !expected || (caveat__wire__frame__get_packed_size(&frame) == size &&
                              caveat__wire__frame__pack(&frame, expected) == size &&
                              memcmp(expected, data, size) == 0);
    free(expected);
    free(list);
    free(copies);
    return same;
}
#endif

static bool send_batch(cv_client_t *self, const publish_t *p, batch_t *batch, cv_error_t *err)
{
    size_t body = publish_body_size(p, batch);
    size_t size = 1 + varint_size(body) + body;
    /* planned against max_frame; a broker restarted with a smaller limit
       would drop the connection on this frame */
    if (size > self->max_frame) {
        cv_error_set(err, NULL, 0, 0,
                     "a batch of %zu bytes exceeds the broker's new limit of %" PRIu32, size,
                     self->max_frame);
        return false;
    }
    zmq_msg_t msg;
    if (cv_frame_pool_msg(self->frames, &msg, size) != 0) {
        out_of_memory(err);
        return false;
    }
    write_publish(p, batch, body, zmq_msg_data(&msg));
    assert(packs_as_protobuf_c(p, batch, zmq_msg_data(&msg), size));
    batch->hello = self->hellos;
    return send_msg(self, &msg, err);
}

/*  Batches sent and not acknowledged, over every publish in flight. */
static size_t batches_in_flight(const cv_client_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_publishes; i++)
        n += self->publishes[i]->sent - self->publishes[i]->acked;
    return n;
}

/*  Sends batches, oldest publish first, until PUBLISH_WINDOW are waiting
 *  for their ack. A batch that cannot be sent fails its publish. */
static void fill_window(cv_client_t *self)
{
    size_t in_flight = batches_in_flight(self);
    for (size_t i = 0; i < self->n_publishes && in_flight < PUBLISH_WINDOW; i++) {
        publish_t *p = self->publishes[i];
        while (!p->failed && p->sent < p->n_batches && in_flight < PUBLISH_WINDOW) {
            batch_t *batch = &p->batches[p->sent];
            batch->id = self->next_batch++;
            if (!send_batch(self, p, batch, &p->error)) {
                p->failed = true;
                break;
            }
            p->sent++;
            in_flight++;
        }
    }
}

/*  After a reconnect's HelloAck: the broker may never have seen what was in
 *  flight. Resending is safe, every report has its id, but not needed for
 *  a batch sent after the last Hello (see needs_resend). */
static bool publishes_resend(cv_client_t *self, cv_error_t *err)
{
    for (size_t i = 0; i < self->n_publishes; i++) {
        publish_t *p = self->publishes[i];
        for (size_t b = 0; b < p->sent; b++)
            if (!p->batches[b].acked && needs_resend(self, p->batches[b].hello) &&
                !send_batch(self, p, &p->batches[b], err))
                return false;
    }
    return true;
}

static bool on_publish_ack(publish_t *p, batch_t *batch, const Caveat__Wire__PublishAck *ack,
                           cv_error_t *err)
{
    if (ack->n_results != batch->count) {
        cv_error_set(err, NULL, 0, 0, "broker: PublishAck has %zu results for %zu reports",
                     ack->n_results, batch->count);
        return false;
    }
    for (size_t j = 0; j < batch->count; j++) {
        const Caveat__Wire__PublishResult *r = ack->results[j];
        size_t i = p->order[batch->first + j];
        const char *id = r->report_id && *r->report_id ? r->report_id : report_id(p, i);
        int status = r->has_status ? (int)r->status : CAVEAT__WIRE__STATUS__OK;
        if (!set_result(&p->results[i], id, status, r->reason)) {
            out_of_memory(err);
            return false;
        }
    }
    batch->acked = true;
    p->acked++;
    return true;
}

/*  An ack goes to the publish whose batch it names; an ack of a publish no
 *  longer in flight (it timed out), or a duplicate after a resend, to none. */
static void publishes_on_ack(cv_client_t *self, const Caveat__Wire__PublishAck *ack)
{
    for (size_t i = 0; i < self->n_publishes; i++) {
        publish_t *p = self->publishes[i];
        for (size_t b = 0; b < p->sent; b++)
            if (p->batches[b].id == ack->batch && !p->batches[b].acked) {
                if (!on_publish_ack(p, &p->batches[b], ack, &p->error))
                    p->failed = true;
                fill_window(self);
                return;
            }
    }
}

/*  Waits until every batch of p is acknowledged. */
static bool run_publish(cv_client_t *self, publish_t *p, int timeout_ms, cv_error_t *err)
{
    int64_t deadline = zclock_mono() + (timeout_ms > 0 ? timeout_ms : 0);
    while (p->acked < p->n_batches && !p->failed) {
        fill_window(self);
        Caveat__Wire__Frame *frame = NULL; /* a HelloAck or a stray AdminReply: handled */
        pump_t result = p->failed ? PUMP_AGAIN : pump(self, deadline, &frame, err);
        if (result == PUMP_TIMEOUT) {
            cv_error_set(err, NULL, 0, 0,
                         "no PublishAck from %s within %gs (%zu of %zu batches acknowledged)",
                         self->endpoint, seconds(timeout_ms), p->acked, p->n_batches);
            set_code(err, CV_ERR_TIMEOUT);
        }
        if (result == PUMP_TIMEOUT || result == PUMP_ERROR)
            return false;
    }
    if (p->failed && err)
        *err = p->error;
    return !p->failed;
}

/*  Gives every report its id. Results are filled as the acks come, and
 *  at the end for those no ack answered. */
static bool prepare_reports(publish_t *p, size_t n, cv_error_t *err)
{
    for (size_t i = 0; i < n; i++)
        if (!assign_id(p, i)) {
            out_of_memory(err);
            return false;
        }
    return true;
}

/*  What no PublishAck answered is pending, with its id. */
static bool fill_pending(const publish_t *p, size_t n)
{
    bool ok = true;
    for (size_t i = 0; i < n; i++)
        if (!p->results[i].report_id)
            ok = set_result(&p->results[i], report_id(p, i), CV_PUBLISH_PENDING,
                            "not acknowledged") &&
                 ok;
    return ok;
}

static void publish_destroy(publish_t **p_p)
{
    publish_t *p = *p_p;
    if (!p)
        return;
    for (size_t i = 0; p->ids && i < p->n; i++)
        free(p->ids[i]);
    free(p->ids);
    free(p->sizes);
    free(p->order);
    free(p->batches);
    free(p);
    *p_p = NULL;
}

/*  A publish of n reports, with ids and planned in batches; NULL with err. */
static publish_t *publish_new(cv_client_t *self, const Caveat__Report *const *reports, size_t n,
                              cv_publish_result_t *results, cv_error_t *err)
{
    for (size_t i = 0; i < n; i++)
        results[i] = (cv_publish_result_t){.status = CV_PUBLISH_PENDING};
    size_t slots = n ? n : 1;
    publish_t *p = calloc(1, sizeof *p);
    if (p)
        *p = (publish_t){.n = n,
                         .reports = reports,
                         .results = results,
                         .ids = calloc(slots, sizeof *p->ids),
                         .sizes = calloc(slots, sizeof *p->sizes),
                         .order = calloc(slots, sizeof *p->order),
                         .batches = calloc(slots, sizeof *p->batches)};
    if (!p || !p->ids || !p->sizes || !p->order || !p->batches) {
        out_of_memory(err);
        publish_destroy(&p);
        return NULL;
    }
    if (!prepare_reports(p, n, err) ||
        !plan_batches(p, n, self->max_frame, self->max_reports, err)) {
        fill_pending(p, n);
        publish_destroy(&p);
    }
    return p;
}

/*  Takes p out of the publishes in flight. */
static void publishes_remove(cv_client_t *self, const publish_t *p)
{
    for (size_t i = 0; i < self->n_publishes; i++)
        if (self->publishes[i] == p) {
            memmove(&self->publishes[i], &self->publishes[i + 1],
                    (self->n_publishes - i - 1) * sizeof self->publishes[0]);
            self->n_publishes--;
            return;
        }
}

/*  The client goes: what no ack answered is pending, with its id. */
static void publishes_abandon(cv_client_t *self)
{
    while (self->n_publishes) {
        publish_t *p = self->publishes[--self->n_publishes];
        fill_pending(p, p->n);
        publish_destroy(&p);
    }
}

int64_t cv_client_publish_start(cv_client_t *self, const Caveat__Report *const *reports, size_t n,
                                cv_publish_result_t *results, cv_error_t *err)
{
    end_borrow(self);
    if (self->n_publishes == MAX_PUBLISHES) {
        for (size_t i = 0; i < n; i++)
            results[i] = (cv_publish_result_t){.status = CV_PUBLISH_PENDING};
        cv_error_set(err, NULL, 0, 0, "%d publishes are in flight: finish one first",
                     MAX_PUBLISHES);
        set_code(err, CV_ERR_BAD_INPUT);
        return -1;
    }
    publish_t *p = publish_new(self, reports, n, results, err);
    if (!p)
        return -1;
    p->ticket = ++self->next_ticket;
    self->publishes[self->n_publishes++] = p;
    fill_window(self);
    return p->ticket;
}

static publish_t *publish_of(cv_client_t *self, int64_t ticket)
{
    for (size_t i = 0; i < self->n_publishes; i++)
        if (self->publishes[i]->ticket == ticket)
            return self->publishes[i];
    return NULL;
}

int cv_client_publish_finish(cv_client_t *self, int64_t ticket, int timeout_ms, cv_error_t *err)
{
    end_borrow(self);
    publish_t *p = publish_of(self, ticket);
    if (!p) {
        cv_error_set(err, NULL, 0, 0, "no publish %" PRId64 " in flight", ticket);
        set_code(err, CV_ERR_BAD_INPUT);
        return -1;
    }
    bool ok = run_publish(self, p, timeout_ms, err);
    publishes_remove(self, p);
    if (!fill_pending(p, p->n) && ok) {
        out_of_memory(err);
        ok = false;
    }
    int refused = 0;
    for (size_t i = 0; i < p->n; i++)
        refused += p->results[i].status != CAVEAT__WIRE__STATUS__OK;
    publish_destroy(&p);
    fill_window(self); /* its room in the window goes to the next */
    return ok ? refused : -1;
}

/*  Reads what has arrived, without waiting (a bounded number of frames:
 *  a busy connection must not keep the caller here). */
bool cv_client_publish_done(cv_client_t *self, int64_t ticket)
{
    end_borrow(self);
    publish_t *p = publish_of(self, ticket);
    cv_error_t ignored;
    for (int i = 0; i < 64 && p && p->acked < p->n_batches && !p->failed; i++) {
        Caveat__Wire__Frame *frame = NULL;
        pump_t result = pump(self, zclock_mono(), &frame, &ignored);
        if (result == PUMP_TIMEOUT || result == PUMP_ERROR)
            break;
    }
    return !p || p->acked == p->n_batches || p->failed;
}

int cv_client_publish(cv_client_t *self, const Caveat__Report *const *reports, size_t n,
                      cv_publish_result_t *results, int timeout_ms, cv_error_t *err)
{
    int64_t ticket = cv_client_publish_start(self, reports, n, results, err);
    return ticket < 0 ? -1 : cv_client_publish_finish(self, ticket, timeout_ms, err);
}

int cv_client_publish_one(cv_client_t *self, const Caveat__Report *report,
                          cv_publish_result_t *result, int timeout_ms, cv_error_t *err)
{
    return cv_client_publish(self, &report, 1, result, timeout_ms, err);
}

void cv_publish_results_clear(cv_publish_result_t *results, size_t n)
{
    for (size_t i = 0; results && i < n; i++) {
        free(results[i].report_id);
        free(results[i].reason);
        results[i] = (cv_publish_result_t){.status = CV_PUBLISH_PENDING};
    }
}

/* ------------------------------------------------------------------------ */
/*  Receiving */

static bool send_ack(cv_client_t *self, uint64_t up_to, cv_error_t *err)
{
    if (up_to > self->ack_sent)
        self->ack_sent = up_to;
    Caveat__Wire__DeliveryAck ack = CAVEAT__WIRE__DELIVERY_ACK__INIT;
    ack.has_up_to = true;
    ack.up_to = up_to;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_DELIVERY_ACK;
    frame.delivery_ack = &ack;
    return send_frame(self, &frame, err);
}

/*  The first queued delivery above the highest seq returned; the others are
 *  resends of deliveries already returned (docs/protocol.md 5) and are
 *  dropped. A resend of one the application already acknowledged means the
 *  broker lost that ack (a reconnect): acknowledge it again, or it would
 *  hold the delivery, and the credit it takes, until a later ack. */
static const Caveat__Wire__Delivery *pop_new(cv_client_t *self)
{
    Caveat__Wire__Delivery *delivery;
    uint64_t reack = 0;
    while ((delivery = take_delivery(self))) {
        if (delivery->has_seq && delivery->seq > self->highest_seq) {
            self->highest_seq = delivery->seq;
            break;
        }
        if (delivery->seq <= self->acked && delivery->seq > reack)
            reack = delivery->seq;
    }
    if (reack)
        send_ack(self, reack, NULL); /* best effort: the next ack covers it too */
    return delivery;
}

/*  The public form of a delivery, pointing into its frame's arena. */
static const cv_delivery_t *as_public(cv_client_t *self, const Caveat__Wire__Delivery *delivery)
{
    self->current = (cv_delivery_t){
        .seq = delivery->seq,
        .report_id = delivery->report_id,
        .rules = (const char *const *)delivery->rules,
        .n_rules = delivery->n_rules,
        .feed = delivery->feed,
        .report = delivery->report,
    };
    const Caveat__Wire__FeedbackNote *note = delivery->feedback;
    if (note) {
        self->current_note = (cv_feedback_note_t){
            .report_id = note->report_id ? note->report_id : "",
            .from = note->from ? note->from : "",
            .value = note->value ? note->value : "",
            .text = note->text ? note->text : "",
            .time = note->time ? note->time : "",
        };
        self->current.feedback = &self->current_note;
    }
    return &self->current;
}

const cv_delivery_t *cv_client_receive(cv_client_t *self, int timeout_ms, cv_error_t *err)
{
    end_borrow(self);
    const Caveat__Wire__Delivery *delivery = pop_new(self);
    /* the clock only when there is a wait: most calls find one queued */
    int64_t deadline = delivery ? 0 : zclock_mono() + (timeout_ms > 0 ? timeout_ms : 0);
    while (!delivery) {
        /* any frame returned is a late PublishAck, FeedbackAck or
           AdminReply, or a reconnect's HelloAck: nothing to do */
        Caveat__Wire__Frame *frame = NULL;
        pump_t result = pump(self, deadline, &frame, err);
        if (result == PUMP_TIMEOUT && err)
            *err = (cv_error_t){.code = CV_ERR_TIMEOUT};
        if (result == PUMP_TIMEOUT || result == PUMP_ERROR)
            return NULL;
        delivery = pop_new(self);
    }
    return as_public(self, delivery);
}

bool cv_client_ack(cv_client_t *self, uint64_t up_to, cv_error_t *err)
{
    end_borrow(self);
    if (self->dead) {
        closed(self, err);
        return false;
    }
    /* the broker answers a larger value with Error BAD_ACK */
    if (up_to > self->highest_seq) {
        cv_error_set(err, NULL, 0, 0,
                     "cannot acknowledge seq %" PRIu64 ": the highest received is %" PRIu64, up_to,
                     self->highest_seq);
        set_code(err, CV_ERR_BAD_INPUT);
        return false;
    }
    /* acks are cumulative: while deliveries received are still to be
     * returned, one ack later covers this one, and the broker limits the
     * frames an agency may send in a turn. The ack waits for the last of
     * them, for the next wait on the network, or for half the credit */
    bool coalesce = self->inbox && up_to - self->ack_sent < self->credit / 2;
    if (coalesce || !send_ack(self, up_to, err)) {
        if (!coalesce && self->send_errno != EAGAIN)
            return false;
        /* keep the highest and send it when there is room */
        if (up_to > self->ack_pending)
            self->ack_pending = up_to;
    } else {
        self->ack_pending = 0;
    }
    if (up_to > self->acked)
        self->acked = up_to;
    return true;
}

/*  A request waiting for its answer. */
typedef struct {
    Caveat__Wire__Frame__BodyCase answer; /* the body of the frame that answers it */
    const char *name;                     /* that frame's name, for errors */
    const Caveat__Wire__Frame *again;     /* what a new session is sent again, or NULL */
    const char *report_id;                /* what the answer names, or NULL */
    const char *to;                       /* an approval's agency or type */
    uint64_t admin_id;                    /* an admin request's id */
} request_t;

static bool same(const char *answered, const char *asked)
{
    return answered && strcmp(answered, asked) == 0;
}

/*  Whether frame is the answer to request, by what it names: an answer
 *  that names another report, agency or admin request is one a request
 *  that timed out is given late. A broker that does not send an
 *  AdminReply's id back is taken at its word. */
static bool answers(const request_t *request, const Caveat__Wire__Frame *frame)
{
    if (frame->body_case != request->answer)
        return false;
    switch (frame->body_case) {
    case CAVEAT__WIRE__FRAME__BODY_FEEDBACK_ACK:
        return same(frame->feedback_ack->report_id, request->report_id);
    case CAVEAT__WIRE__FRAME__BODY_APPROVAL_ACK:
        return same(frame->approval_ack->report_id, request->report_id) &&
               same(frame->approval_ack->to, request->to);
    case CAVEAT__WIRE__FRAME__BODY_ADMIN_REPLY:
        return !frame->admin_reply->has_id || frame->admin_reply->id == request->admin_id;
    default:
        return true;
    }
}

/*  Waits (timeout_ms) for the broker's answer to a request just sent,
 *  handling whatever else comes meanwhile. A new session (a reconnect's
 *  HelloAck) never saw the request: it is sent again when the request says
 *  so and it went before the last Hello. The frame lives until the next
 *  pump; NULL with err. */
static Caveat__Wire__Frame *answer_to(cv_client_t *self, const request_t *request, int timeout_ms,
                                      cv_error_t *err)
{
    int64_t deadline = zclock_mono() + (timeout_ms > 0 ? timeout_ms : 0);
    uint64_t sent_at = self->hellos; /* the caller has just sent the request */
    while (true) {
        Caveat__Wire__Frame *frame = NULL;
        pump_t result = pump(self, deadline, &frame, err);
        if (result == PUMP_TIMEOUT) {
            cv_error_set(err, NULL, 0, 0, "no %s from %s within %gs", request->name, self->endpoint,
                         seconds(timeout_ms));
            set_code(err, CV_ERR_TIMEOUT);
        }
        if (result == PUMP_TIMEOUT || result == PUMP_ERROR)
            return NULL;
        if (frame && answers(request, frame))
            return frame;
        if (frame && frame->body_case == CAVEAT__WIRE__FRAME__BODY_HELLO_ACK && request->again &&
            needs_resend(self, sent_at)) {
            if (!send_frame(self, request->again, err))
                return NULL;
            sent_at = self->hellos;
        }
    }
}

/* ------------------------------------------------------------------------ */
/*  Feedback */

/*  What the broker would refuse for its form, said before anything is
 *  sent. */
static bool feedback_checked(const char *report_id, const char *value, const char *text,
                             cv_error_t *err)
{
    const char *why = report_id && *report_id ? cv_feedback_form_refusal(value, text)
                                              : "feedback needs a report id";
    if (!why)
        return true;
    cv_error_set(err, NULL, 0, 0, "%s", why);
    set_code(err, CV_ERR_BAD_INPUT);
    return false;
}

static bool feedback_stored(const Caveat__Wire__FeedbackAck *ack, cv_error_t *err)
{
    if (ack->has_status && ack->status == CAVEAT__WIRE__STATUS__OK)
        return true;
    cv_error_set(err, NULL, 0, 0, "feedback not stored: %s",
                 ack->reason ? ack->reason : "the broker did not say why");
    one_line(err);
    set_code(err, CV_ERR_FAILED);
    return false;
}

bool cv_client_feedback(cv_client_t *self, const char *report_id, const char *originator,
                        const char *value, const char *text, int timeout_ms, cv_error_t *err)
{
    end_borrow(self);
    if (!feedback_checked(report_id, value, text, err))
        return false;
    Caveat__Wire__Feedback feedback = CAVEAT__WIRE__FEEDBACK__INIT;
    feedback.report_id = (char *)report_id;
    feedback.originator = (char *)originator;
    feedback.value = (char *)value;
    feedback.text = (char *)text;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_FEEDBACK;
    frame.feedback = &feedback;
    if (!send_frame(self, &frame, err))
        return false;
    request_t request = {.answer = CAVEAT__WIRE__FRAME__BODY_FEEDBACK_ACK,
                         .name = "FeedbackAck",
                         .again = &frame,
                         .report_id = report_id};
    Caveat__Wire__Frame *answer = answer_to(self, &request, timeout_ms, err);
    return answer && feedback_stored(answer->feedback_ack, err);
}

/* ------------------------------------------------------------------------ */
/*  Administration */

static bool send_admin(cv_client_t *self, const char *command, const char *const *args,
                       size_t n_args, cv_error_t *err)
{
    Caveat__Wire__AdminRequest request = CAVEAT__WIRE__ADMIN_REQUEST__INIT;
    request.command = (char *)command;
    request.args = (char **)args;
    request.n_args = n_args;
    request.has_id = true;
    request.id = ++self->admin_requests;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_ADMIN_REQUEST;
    frame.admin_request = &request;
    return send_frame(self, &frame, err);
}

/*  A copy of the reply's text: the frame's arena is reused. */
static char *admin_text(const Caveat__Wire__AdminReply *reply, bool *ok, cv_error_t *err)
{
    char *text = strdup(reply->text ? reply->text : "");
    if (!text)
        out_of_memory(err);
    *ok = reply->has_ok && reply->ok;
    return text;
}

char *cv_client_admin(cv_client_t *self, const char *command, bool *ok, int timeout_ms,
                      cv_error_t *err)
{
    return cv_client_admin_args(self, command, NULL, 0, ok, timeout_ms, err);
}

char *cv_client_admin_args(cv_client_t *self, const char *command, const char *const *args,
                           size_t n_args, bool *ok, int timeout_ms, cv_error_t *err)
{
    end_borrow(self);
    *ok = false;
    if (!command || !*command) {
        cv_error_set(err, NULL, 0, 0, "no admin command");
        set_code(err, CV_ERR_BAD_INPUT);
        return NULL;
    }
    if (!send_admin(self, command, args, n_args, err))
        return NULL;
    request_t request = {.answer = CAVEAT__WIRE__FRAME__BODY_ADMIN_REPLY,
                         .name = "AdminReply",
                         .admin_id = self->admin_requests};
    Caveat__Wire__Frame *frame = answer_to(self, &request, timeout_ms, err);
    return frame ? admin_text(frame->admin_reply, ok, err) : NULL;
}

/* ------------------------------------------------------------------------ */
/*  Approval */

static bool send_approval(cv_client_t *self, const char *report_id, const char *to, cv_error_t *err)
{
    Caveat__Wire__Approval approval = CAVEAT__WIRE__APPROVAL__INIT;
    approval.report_id = (char *)report_id;
    approval.to = (char *)to;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_APPROVAL;
    frame.approval = &approval;
    return send_frame(self, &frame, err);
}

/*  The ApprovalAck copied out of its frame's arena, which is reused. */
static int approval_result(const Caveat__Wire__ApprovalAck *ack, cv_approval_result_t *result,
                           cv_error_t *err)
{
    result->status = ack->has_status ? (int)ack->status : CV_PUBLISH_OK;
    result->reason = strdup(ack->reason ? ack->reason : "");
    result->recipients = calloc(ack->n_recipients + 1, sizeof *result->recipients);
    bool copied = result->reason && result->recipients;
    for (size_t i = 0; copied && i < ack->n_recipients; i++) {
        copied = (result->recipients[i] = strdup(ack->recipients[i])) != NULL;
        result->n_recipients += copied;
    }
    if (!copied) {
        cv_approval_result_clear(result);
        out_of_memory(err);
        return -1;
    }
    return result->status != CV_PUBLISH_OK;
}

int cv_client_approve(cv_client_t *self, const char *report_id, const char *to,
                      cv_approval_result_t *result, int timeout_ms, cv_error_t *err)
{
    end_borrow(self);
    *result = (cv_approval_result_t){0};
    if (!report_id || !*report_id || !to || !*to) {
        cv_error_set(err, NULL, 0, 0, "an approval needs a report id and an agency or type");
        set_code(err, CV_ERR_BAD_INPUT);
        return -1;
    }
    if (!send_approval(self, report_id, to, err))
        return -1;
    request_t request = {.answer = CAVEAT__WIRE__FRAME__BODY_APPROVAL_ACK,
                         .name = "ApprovalAck",
                         .report_id = report_id,
                         .to = to};
    Caveat__Wire__Frame *frame = answer_to(self, &request, timeout_ms, err);
    return frame ? approval_result(frame->approval_ack, result, err) : -1;
}

void cv_approval_result_clear(cv_approval_result_t *result)
{
    if (!result)
        return;
    for (size_t i = 0; result->recipients && i < result->n_recipients; i++)
        free(result->recipients[i]);
    free(result->recipients);
    free(result->reason);
    *result = (cv_approval_result_t){0};
}
