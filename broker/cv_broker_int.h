/*  cv_broker_int.h: what caveatd's core shares between its files; not
 *  part of the broker's API (cv_broker.h is).
 *
 *  The broker is one object, cv_broker_t, driven by one loop thread
 *  (cv_broker.c); its work is kept in files by what it handles:
 *
 *    cv_broker.c           set-up, the loop, the turn, holding for the sync
 *    cv_broker_message.c   one message: who sent it, its bounds, dispatch;
 *                          sending frames and errors
 *    cv_broker_session.c   sessions: Hello, credit, what is in flight
 *    cv_broker_publish.c   Publish: checked, stored, routed; the turn's
 *                          failure and the queues' reload
 *    cv_broker_deliver.c   pumping queues into Delivers, acknowledgements
 *    cv_broker_approval.c  originators' approvals (handling code 5)
 *    cv_broker_feedback.c  recipients' feedback, for originators alone
 *    cv_broker_admin.c     reload, stats, purge, review, backup
 *
 *  Functions one file calls in another are named broker_*; everything
 *  else stays static in its file.
 */
#ifndef CV_BROKER_INT_H
#define CV_BROKER_INT_H

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <signal.h>
#include <sodium.h>
#include <sys/stat.h>

#include "cv_broker.h"
#include "cv_admin.h"
#include "cv_approval_store.h"
#include "cv_backup.h"
#include "cv_policy_sig.h"
#include "cv_cache.h"
#include "cv_alloc.h"
#include "cv_cert.h"
#include "cv_feedback.h"
#include "cv_guard.h"
#include "cv_hasher.h"
#include "cv_views.h"
#include "cv_log.h"
#include "cv_queue.h"
#include "cv_record.h"
#include "cv_receipts.h"
#include "cv_router.h"
#include "cv_selftest.h"
#include "cv_monitor.h"
#include "cv_peer.h"
#include "cv_space.h"
#include "cv_zap.h"

/*  A limit's digits as a string literal, for a message that names it. */
#define TEXT_OF(limit)  TEXT_OF_(limit)
#define TEXT_OF_(limit) #limit

#define DEFAULT_MAX_FRAME  (1024 * 1024)
#define CURVE_OVERHEAD     64 /* libzmq 4.3 counts 33 bytes of CURVE framing; some slack */
#define DEFAULT_CREDIT     100
#define SENDERS_PER_AGENCY 64 /* send-only sessions kept per agency, oldest dropped */
#define MAX_CREDIT         10000
#define DRAIN_PER_TURN     1000                     /* messages handled per transaction */
#define DELIVER_BATCH_SIZE (256 * 1024)             /* bytes of deliveries per frame */
#define PACK_KEPT          (4 * DELIVER_BATCH_SIZE) /* a pump's packing room kept between pumps */
#define TURN_BYTES         (2 * 1024 * 1024)        /* bytes of frames handled per transaction */
#define PUMP_MAX           256                      /* deliveries a session is sent in one turn */
#define GONE_LINGER_MS     500  /* a gone connection's frames are read within this */
#define SAVE_INTERVAL_MS   100  /* acknowledgements are saved this often */
#define DROPS_PER_PUMP     2048 /* reports a pump may drop (a store write each) */
#define BACKUP_RATE_MB     256  /* MB a second a backup copies at most, unless told */
/* Bounds on what one agency can make the broker do (docs/operations.md, "Limits") */
#define DEFAULT_MAX_REPORTS     500   /* reports one Publish may hold */
#define DEFAULT_CLOCK_SKEW      86400 /* seconds a report's created may be ahead of the clock */
#define REPORTS_PER_TURN        4000  /* reports handled per transaction */
#define UNHEALTHY_FOR_MS        3000  /* /healthz says 503 this long after a rollback */
#define OUT_BYTES_MAX           (16 * 1024 * 1024) /* Delivers packed, waiting for their sync */
#define READ_BACK_MAX           (8 * 1024 * 1024) /* stored reports read back in a turn, unpacked */
#define PEER_SNDHWM             64  /* messages queued toward one connection; past it, it is gone */
#define PEER_RCVHWM             8   /* frames read ahead from one connection (libcaveat sends 16) */
#define HELLOS_PER_SECOND       10  /* on one connection */
#define REPLACED_PER_SECOND     10  /* a queue's delivery sessions that resend its window */
#define ERRORS_PER_SECOND       20  /* Errors a second to one agency: no session, over a rate */
#define REFUSALS_PER_SECOND     20  /* refused reports of one agency recorded one leaf each */
#define ZAP_EVERY               64  /* messages handled between two looks at ZAP */
#define FRAMES_PER_AGENCY       128 /* frames one agency may have handled in a turn */
#define APPROVALS_PER_SECOND    10  /* Approvals of one agency handled a second */
#define APPROVALS_PER_REPORT    32  /* agencies and types one report may be approved to */
#define FEEDBACK_PER_SECOND     10  /* Feedback frames one agency may send */
#define ADMIN_PER_SECOND        10  /* reloads, purges, reviews, backups one agency may ask */
#define FEEDBACK_PER_REPORT     20  /* feedback stored from one agency on one report, ever */
#define URGENT_TURNS_PER_SECOND 20  /* turns one agency's IMMEDIATE reports may end early */
#define CREATED_FLOOR           946684800          /* 2000-01-01T00:00:00Z: no report is older */
#define CLOCK_KEY               "retention_clock"  /* meta: the time retention last trusted */
#define CLOCK_JUMP_SLACK        300                /* seconds the wall clock may drift */
#define CLOCK_DOWNTIME_MAX      (7 * 86400)        /* a restart this much later is believed */
#define DEFAULT_DISK_RESERVE    (64 * 1024 * 1024) /* bytes kept for deliveries on a full disk */
#define BACKUP_LOOK_MS          10 /* the disk is looked at this often while a backup runs */
#define PURGE_STEP              64 /* reports a purge removes in one transaction, a turn apart */

/* wire.proto's ErrorCode */
#define E_BAD_FRAME   CAVEAT__WIRE__ERROR_CODE__BAD_FRAME
#define E_NOT_READY   CAVEAT__WIRE__ERROR_CODE__NOT_READY
#define E_VERSION     CAVEAT__WIRE__ERROR_CODE__VERSION
#define E_BAD_ACK     CAVEAT__WIRE__ERROR_CODE__BAD_ACK
#define E_FORBIDDEN   CAVEAT__WIRE__ERROR_CODE__FORBIDDEN
#define E_REVOKED     CAVEAT__WIRE__ERROR_CODE__REVOKED
#define E_BAD_REQUEST CAVEAT__WIRE__ERROR_CODE__BAD_REQUEST
#define E_LIMIT       CAVEAT__WIRE__ERROR_CODE__LIMIT

/*  A count per second: how often something may happen. */
typedef struct {
    int64_t second;
    int count;
} rate_t;

/*  True, and counted, while fewer than limit happened this second. */
static inline bool rate_allows(rate_t *rate, int limit)
{
    int64_t second = zclock_mono() / 1000;
    if (second != rate->second) {
        rate->second = second;
        rate->count = 0;
    }
    if (rate->count >= limit)
        return false;
    rate->count++;
    return true;
}

/*  Connections whose session another connection's Hello replaced, kept
 *  per agency (two running copies of one subscriber take turns, each
 *  reconnecting when ended); the oldest beyond is ended, as what libzmq
 *  holds for a connection stays until it goes. */
#define DISPLACED_PER_AGENCY 2

/*  A connection replaced, by its descriptor and the peer on it then. */
typedef struct {
    int fd;
    cv_peer_t peer;
} displaced_t;

/*  What one agency's traffic has caused, against its bounds. */
typedef struct {
    rate_t errors;   /* Errors sent to its connections without a session */
    rate_t refusals; /* its refused reports written one by one into the audit log */
    rate_t feedback; /* its Feedback frames */
    uint64_t turn;   /* the turn frames counts for */
    int frames;      /* its frames handled in that turn */

    rate_t urgent;                               /* turns its IMMEDIATE reports ended */
    rate_t approvals;                            /* its Approvals */
    rate_t admin;                                /* its AdminRequests */
    displaced_t displaced[DISPLACED_PER_AGENCY]; /* oldest first */
    int n_displaced;
} agency_use_t;

/*  Where a delivery session is in sending (a send-only session never
 *  sends, and stays RESENDING with nothing in flight):
 *
 *    Hello -> RESENDING -- sent again all the queue has in flight --> LIVE
 *    LIVE -- the ack timeout, or a reload --> RESENDING
 *    any -- its connection full (EAGAIN) --> PAUSED -- STALL_PAUSE_MS --> RESENDING
 *
 *  A session ends from any state (a connection gone, full for the ack
 *  timeout, replaced by another Hello, revoked): it is then removed, and
 *  its deliveries stay in flight in its queue for the next session. */
typedef enum {
    SESSION_RESENDING, /* sending again, with their seqs, what the queue has in flight */
    SESSION_LIVE,      /* sending what waits in the queue, each with the next seq */
    SESSION_PAUSED,    /* sending nothing until paused_until */
} session_state_t;

/*  A session belongs to one connection (its routing id) and one key: a
 *  message is served from a session only when it came with that key. */
typedef struct {
    uint64_t serial;   /* never reused: what it is sent is tagged with it */
    char *routing_hex; /* key in the session table */
    zframe_t *routing; /* ROUTER routing id */
    char *agency;      /* agency id */
    uint8_t key[CV_KEY_BYTES];
    rate_t hellos; /* Hellos on this connection */
    char *feed;    /* "" for the direct queue */
    uint32_t credit;
    struct {
        uint64_t *seqs; /* sent on this session and not acknowledged, rising */
        size_t first, n, cap;
    } out; /* what the credit counts: see broker_in_flight() */
    session_state_t state;
    uint64_t resent_up_to; /* RESENDING: the seq it got to */
    bool dirty;            /* may have something to send: broker_set_dirty() */
    void *pending;         /* its handle in the broker's pending list, or NULL */
    bool publish_only;     /* Hello.credit 0: no queue, no deliveries */
    bool receipts;         /* Hello.receipts: a Receipt for each acknowledged delivery */
    int64_t progress;      /* when it last acknowledged, or was first sent to (ms) */
    int64_t stalled;       /* when a delivery first found its connection full, since it last
                              acknowledged (ms); 0: not */
    int64_t paused_until;  /* PAUSED: until when (ms) */
    uint64_t acked;        /* the highest seq it acknowledged: kept across a rolled-back turn */
    cv_queue_t *queue;     /* the queue it serves (owned by the broker); NULL until resolved */
    char *peer;            /* the connection's address (admin sessions), "" offline */
    int fd;                /* the connection's descriptor (libzmq's); -1: not known */
    cv_peer_t conn;        /* the kernel's peer of fd at Hello, */
    bool conn_known;       /* if it said, on the address the Hello came from: the connection
                              this session holds, which broker_end_connection may end */
    int64_t gone_at;       /* when its connection went (ms, monotonic), 0: connected */
    int64_t since;         /* when it said Hello (unix seconds) */
} session_t;

/*  An admin request that needs the store to itself (purge, review,
 *  reload): it runs after the turn's commit, never inside the write
 *  transaction, and not at all when the turn rolls back. */
typedef struct {
    zframe_t *routing;
    uint8_t key[CV_KEY_BYTES]; /* of the session that asked: only it is answered */
    Caveat__Wire__AdminRequest *request;
    char admin[256]; /* the administrator's agency: a reload may free the policy's */
} deferred_t;

/*  A message that may leave once commit is on disk (cv_store_synced). */
typedef struct {
    uint64_t commit;
    uint64_t session; /* the serial of the session it is for: it ends with it */
    zmsg_t *msg;
    bool delivery; /* a Deliver, decided under the policy of its turn */
    size_t bytes;  /* a Deliver's, counted in out_bytes until it leaves */
    /* a Deliver's seqs (owned): dropped unsent, they are withdrawn */
    uint64_t *seqs;
    size_t n_seqs;
} held_t;

/*  An approval waiting for the commit before its ApprovalAck goes out;
 *  unavailable when the turn rolled back (nothing of it was stored). */
typedef struct {
    uint64_t session;
    zframe_t *routing;
    char *report_id, *to;
    char **recipients; /* the agencies it released the report to */
    size_t n_recipients;
    bool unavailable;
} approval_answer_t;
/*  A Feedback stored in this turn: its FeedbackAck waits for the commit. */
typedef struct {
    uint64_t session;
    zframe_t *routing;
    char *report_id;
    bool lost; /* the turn rolled back: not stored */
} pending_feedback_t;
void broker_pending_feedback_free(pending_feedback_t *p);

/*  A publish waiting for the commit before its PublishAck goes out. */
typedef struct {
    uint64_t session;
    zframe_t *routing;
    Caveat__Wire__PublishAck ack;
} pending_ack_t;

struct cv_broker_t {
    cv_broker_config_t config;
    char endpoint[512];
    cv_policy_t *policy;
    cv_signers_t *signers; /* --policy-signers: only a policy they signed loads */
    uint8_t pseudonym_key[CV_KEY_BYTES];
    cv_store_t *store;
    cv_space_t *space;     /* the disk under the store: publishes stop before deliveries do */
    cv_monitor_t *monitor; /* --monitor's listener, or NULL */
    cv_zap_t *zap;
    zsock_t *router;
    cv_guard_t *guard;  /* bounds the router's connections without a session */
    zhashx_t *sessions; /* routing hex -> session_t (owns them) */
    session_t **by_fd;  /* descriptor -> the connected session on it, or NULL */
    size_t by_fd_size;
    zhashx_t *serving;       /* cv_queue_name() -> the session_t serving that queue */
    zhashx_t *resends;       /* cv_queue_name() -> rate_t: its window sent again to new sessions */
    cv_router_t *queues;     /* the queues, kept in step with the store (cv_router.h) */
    cv_record_t *record;     /* the audit log: a leaf per event, in the same transactions */
    cv_receipts_t *receipts; /* proofs of sessions' deliveries in the log (Hello.receipts) */
    cv_error_t turn_error;   /* the first failure of this turn ("": none): it rolls back */
    size_t out_bytes;        /* of Delivers packed and not yet handed to libzmq: OUT_BYTES_MAX */
    size_t out_bytes_peak;
    bool queues_lost;      /* the queues could not be read back after a rollback */
    int64_t next_save;     /* when acknowledgements are next saved (ms) */
    int failures;          /* turns failed in a row: the back-off */
    int64_t last_failure;  /* when a turn last rolled back (zclock_mono), 0: never */
    size_t turn_reports;   /* reports handled in this turn */
    size_t turn_stored;    /* of them, stored (new): what a purge's step keeps pace with */
    bool turn_urgent;      /* an IMMEDIATE report was stored in this turn: it drains no more */
    cv_queue_t **route_to; /* one report's queues, reused */
    size_t route_to_cap;
    zlistx_t *senders;          /* send-only sessions, oldest first (not owned) */
    zlistx_t *pending;          /* sessions that may have something to send (not owned) */
    zlistx_t *pending_acks;     /* pending_ack_t */
    zlistx_t *pending_feedback; /* pending_feedback_t */
    cv_broker_sent_fn *sent_fn; /* offline: what would be sent (cv_broker_on_sent) */
    void *sent_arg;
    cv_feedback_t *feedback; /* feedback rows in the store, on their way to originators */
    zlistx_t *outbox;        /* held_t: deliveries to send after the commit */
    zlistx_t *held;          /* held_t: messages waiting for their commit's sync */
    zlistx_t *deferred;      /* deferred_t: admin work run outside a transaction */
    cv_cache_t *cache;       /* unpacked frames and reports: a report fanned out is unpacked once */
    cv_decision_t *decision;
    cv_candidates_t *candidates; /* who route() decides a report for */
    cv_hasher_t *hasher;         /* stored reports' checksums, beside the loop */
    cv_hasher_t *view_hasher;    /* the views': a batch lasts a turn, across the checksums' */
    cv_views_t *views;           /* the hashes of the views a turn sends, beside the loop */
    struct {
        void *bytes; /* one Publish's reports, packed */
        size_t cap, used;
    } bodies;
    struct {
        cv_hash_job_t *all; /* their checksums (and digests) */
        size_t cap;         /* bytes */
    } jobs;
    cv_log_t *log;
    const char *peer;     /* the address of the message being handled (its metadata), or NULL */
    int peer_fd;          /* the descriptor it came on, or -1 */
    uint64_t next_serial; /* of sessions */
    size_t sessions_gone; /* sessions whose connection went, not yet ended */
    agency_use_t *use;    /* per agency index: what its traffic may still cause */
    int use_cap;
    /* the routing id of the message being handled when its connection
     * went: nothing is answered on it (dispatch) */
    const zframe_t *gone_routing;

    cv_approval_store_t *approvals; /* originators' approvals (handling code 5) */
    zlistx_t *approval_answers;     /* approval_answer_t: ApprovalAcks waiting for the commit */

    uint64_t turns;             /* turns begun: agency_use_t.turn counts against it */
    rate_t checkpoint_failures; /* logged at most once a second */
    struct {
        cv_backup_t *run;          /* the backup running (one at a time), or NULL */
        zframe_t *routing;         /* who asked: the reply goes there, */
        uint8_t key[CV_KEY_BYTES]; /* if a session of this key is still there */
        uint64_t request_id;       /* its AdminRequest's id, for the reply */
        bool going;                /* let go: the turn that recorded it committed */
        int64_t next_look;         /* at the disk (zclock_mono) */
    } backup;
    cv_poller_t *poller;         /* the loop's, while it runs: a backup's end wakes it */
    uint64_t recovered_reported; /* cv_poller_recovered when last logged */
    cv_inbox_t *router_in;       /* the router's messages and the ZAP handler's requests, */
    cv_inbox_t *zap_in;          /* looked at without a system call while quiet */
    cv_inbox_t *backup_in;       /* a backup's end, while one runs */
    struct {
        bool going;              /* a purge has steps left (broker_purge_step) */
        cv_purge_how_t how;      /* its */
        deferred_t *asked;       /* the administrator's request it answers; NULL: retention's */
        cv_admin_purged_t *list; /* that request's reply, so far */
        int total;               /* reports it purged so far */
        int steps;
        zlistx_t *waiting; /* deferred_t: administrators' purges asked while it went */
    } purging;
    struct {
        int64_t wall, mono; /* the time retention last trusted, and the monotonic clock then */
        bool known;         /* wall and mono were set in this process */
        bool suspect;       /* the clock jumped: no retention until an administrator says */
    } clock;
    struct {
        void *view; /* one packed view */
        size_t view_cap;
        void *bytes; /* the pump's packed deliveries */
        size_t cap, used;
        void *rules; /* char *: one delivery's rule names, borrowed from the policy */
        size_t rules_cap;
    } pack; /* reused, so delivering mallocs nothing once warm */
    struct {
        uint64_t published, refused, delivered, resent, dropped, revoked, reloads, reload_failures,
            purged, limited, foreign, quarantined, refused_no_space, refusals_counted, read_back;
    } stats;
};

/*  Grows *buf to at least want bytes. */
static inline void reserve(void **buf, size_t *cap, size_t want)
{
    if (want <= *cap)
        return;
    size_t grown = *cap ? *cap : 4096;
    while (grown < want)
        grown *= 2;
    *buf = cv_xrealloc(*buf, grown);
    *cap = grown;
}

/*  Deliveries sent on a session and not acknowledged: what its credit
 *  counts against. */
static inline size_t broker_in_flight(const session_t *s)
{
    return s->out.n - s->out.first;
}

/* cv_broker.c */
void broker_disk_changed(cv_broker_t *self);
void broker_disk_exhausted(cv_broker_t *self);
cv_policy_t *broker_load_policy(cv_broker_t *self, cv_error_t *err);
bool broker_policy_not_rolled_back(cv_broker_t *self, const cv_policy_t *policy, cv_error_t *err);
bool broker_end_recorded(cv_broker_t *self, bool ok, cv_error_t *err);
void broker_free_pending(pending_ack_t *p);
void broker_reload_queues(cv_broker_t *self);
void broker_hold(cv_broker_t *self, held_t *h);
void broker_forget_held_deliveries(cv_broker_t *self);

/* cv_broker_admin.c */
bool broker_reload(cv_broker_t *self, const char *admin, bool *unchanged, cv_error_t *err);
void broker_publish_monitor(cv_broker_t *self, int64_t *next);
void broker_commit_saves(cv_broker_t *self, bool checkpoint);
void broker_purge_begin(cv_broker_t *self, const cv_purge_how_t *how, deferred_t *asked);
void broker_purge_step(cv_broker_t *self);
void broker_purge_stop(cv_broker_t *self, const char *why);
void broker_purge_forget(cv_broker_t *self);
void broker_run_all_deferred(cv_broker_t *self);
void broker_drop_deferred(cv_broker_t *self);
void broker_stop_backup(cv_broker_t *self, const char *why);
void broker_unstart_backup(cv_broker_t *self);
void broker_watch_backup(cv_broker_t *self);
void broker_on_admin(cv_broker_t *self, const zframe_t *routing, int agency,
                     const uint8_t key[CV_KEY_BYTES], const Caveat__Wire__AdminRequest *request);

/* cv_broker_approval.c */
void broker_approval_answer_free(approval_answer_t *a);
zmsg_t *broker_approval_ack(const zframe_t *routing, const char *report_id, const char *to,
                            const char *not_stored, char **recipients, size_t n_recipients);
void broker_forget_approval_answers_of(cv_broker_t *self, uint64_t serial);
void broker_approvals_unavailable(cv_broker_t *self);
void broker_on_approval(cv_broker_t *self, session_t *s, int agency, const char *sender,
                        const Caveat__Wire__Approval *approval);

/* cv_broker_deliver.c */
void broker_save_queues(cv_broker_t *self, bool now);
void broker_pump(cv_broker_t *self, session_t *s);
void broker_on_ack(cv_broker_t *self, session_t *s, const Caveat__Wire__DeliveryAck *ack);
bool broker_record_deliveries(void *arg, cv_queue_t *queue, cv_error_t *err);

/* cv_broker_feedback.c */
zmsg_t *broker_feedback_ack(const zframe_t *routing, const char *report_id, const char *not_stored);
void broker_on_feedback(cv_broker_t *self, const session_t *s, int agency, const char *sender,
                        const Caveat__Wire__Feedback *feedback);

/* cv_broker_message.c */
zmsg_t *broker_message_to(const zframe_t *routing, const ProtobufCMessage *frame);
zmsg_t *broker_frame_message(const zframe_t *routing, const Caveat__Wire__Frame *frame);
int broker_send_now(cv_broker_t *self, zmsg_t **msg);
int broker_send_frame(cv_broker_t *self, const zframe_t *routing, const Caveat__Wire__Frame *frame);
void broker_send_error(cv_broker_t *self, const zframe_t *routing, uint32_t code,
                       const char *reason);
agency_use_t *broker_use_of(cv_broker_t *self, int agency);
void broker_send_error_limited(cv_broker_t *self, const zframe_t *routing, int agency,
                               uint32_t code, const char *reason);
/*  Logs why sender's request (what: "approval", "feedback") is refused,
 *  never what it sent, then answers it with an Error: each refusal has its
 *  line, within the agency's, written before the sender can read the
 *  answer. */
void broker_refuse(cv_broker_t *self, const zframe_t *routing, const char *sender, const char *what,
                   uint32_t code, const char *why);
/*  Whether agency is over limit a second of what rate counts: then
 *  counted in stats.limited and answered Error LIMIT with reason, as
 *  broker_send_error_limited does. */
bool broker_over_rate(cv_broker_t *self, const zframe_t *routing, int agency, rate_t *rate,
                      int limit, const char *reason);
void broker_handle_frame(cv_broker_t *self, const zframe_t *routing, int agency,
                         const uint8_t key[CV_KEY_BYTES], const uint8_t *data, size_t size);
void broker_handle_message(cv_broker_t *self, zmsg_t *msg);

/* cv_broker_publish.c */
void broker_fail_turn(cv_broker_t *self, const char *why);
bool broker_turn_failing(const cv_broker_t *self);
cv_queue_t *broker_queue_of(cv_broker_t *self, const char *agency, const char *feed);
bool broker_load_queues(cv_broker_t *self, cv_error_t *err);
const cv_approvals_t *broker_approvals_of(cv_broker_t *self, const Caveat__Report *report,
                                          cv_approvals_t *approvals);
const Caveat__Report *broker_report_at(cv_broker_t *self, int64_t rowid);
const Caveat__Report *broker_report_passing(cv_broker_t *self, int64_t rowid);
bool broker_over_report_limit(cv_broker_t *self, const zframe_t *routing, int agency,
                              size_t reports);
void broker_on_publish(cv_broker_t *self, const zframe_t *routing, uint64_t session, int agency,
                       const char *sender, Caveat__Wire__Publish *publish);

/* cv_broker_session.c */
int broker_session_compare_serial(const void *a, const void *b);
void broker_session_free(void **item);
void broker_session_sent(session_t *s, uint64_t seq);
void broker_session_acked(session_t *s, uint64_t up_to);
void broker_set_dirty(cv_broker_t *self, session_t *s, bool dirty);
void broker_session_resend_all(cv_broker_t *self, session_t *s);
session_t *broker_session_of(cv_broker_t *self, const zframe_t *routing);
/*  The session a message held for serial was for, if it is still there:
 *  found by the message's routing id (routing, size bytes). */
session_t *broker_session_sent_to(cv_broker_t *self, const void *routing, size_t size,
                                  uint64_t serial);
/*  A Deliver h of session s (NULL: gone) left (handed to the transport) or
 *  was dropped unsent: its seqs are marked so in the session's queue, for
 *  the "delivered" leaves (cv_queue.h), and h's seqs freed. */
void broker_delivery_fate(cv_broker_t *self, session_t *s, held_t *h, bool left);
/*  The connection on descriptor fd went: its session is sent nothing more,
 *  and ends once what it sent before going has been read. */
void broker_connection_gone(void *self, int fd);
void broker_routing_went(cv_broker_t *self, const zframe_t *routing);
/*  Whether the session with serial is one whose connection went. */
bool broker_session_gone(cv_broker_t *self, const zframe_t *routing, uint64_t serial);
session_t *broker_session_of_queue(cv_broker_t *self, const char *agency, const char *feed);
void broker_held_destroy(cv_broker_t *self, held_t *h);
void broker_end_session(cv_broker_t *self, session_t *s);
/*  Ends s and the connection it is on, if that is still there. */
void broker_end_connection(cv_broker_t *self, session_t *s);
/*  A reload may number the agencies anew: the replaced connections kept
 *  are charged to no agency any more, but pending again (cv_guard_pend). */
void broker_repend_displaced(cv_broker_t *self);
/*  Ends s but not its connection, which is pending again (cv_guard_pend):
 *  it opens another session within the guard's timeout, or is ended. */
void broker_release_connection(cv_broker_t *self, session_t *s);
void broker_on_hello(cv_broker_t *self, const zframe_t *routing, int agency,
                     const uint8_t key[CV_KEY_BYTES], session_t *s,
                     const Caveat__Wire__Hello *hello);
void broker_mark_dirty(cv_broker_t *self, const char *agency, const char *feed);

#endif
