/*  cv_broker.c: caveatd's core. docs/protocol.md is the contract.
 *
 *  One loop thread. Each turn drains what arrived on the ROUTER socket and
 *  handles it inside one store transaction: reports are checked, stored and
 *  queued (cv_queue, in memory) for every agency the policy releases them
 *  to; acknowledgements free credit; sessions with credit take their next
 *  deliveries, each decided and redacted with the policy in force at that
 *  moment. Then the transaction commits, and the turn's PublishAcks and
 *  Delivers wait until the store's syncer thread reports the commit on
 *  disk (cv_syncer): nothing is acknowledged or delivered that is not
 *  durable, and the loop goes on with the next turn meanwhile (group
 *  commit: one fdatasync for many turns when busy).
 *
 *  Backups run in a thread of their own (cv_backup): the loop starts
 *  one, goes on serving, and answers when the thread says it ended.
 *
 *  Identity comes from the connection: ZAP admitted it with the agency's
 *  key as User-Id, and every message's User-Id is looked up in the policy
 *  in force, so a key removed by a reload is refused from its next message.
 */
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
#include "cv_space.h"
#include "cv_zap.h"

#define DEFAULT_MAX_FRAME  (1024 * 1024)
#define CURVE_OVERHEAD     64 /* libzmq 4.3 counts 33 bytes of CURVE framing; some slack */
#define DEFAULT_CREDIT     100
#define SENDERS_PER_AGENCY 64 /* send-only sessions kept per agency, oldest dropped */
#define MAX_CREDIT         10000
#define DRAIN_PER_TURN     1000              /* messages handled per transaction */
#define DELIVER_BATCH_SIZE (256 * 1024)      /* bytes of deliveries per frame */
#define TURN_BYTES         (2 * 1024 * 1024) /* bytes of frames handled per transaction */
#define PUMP_MAX           256               /* deliveries a session is sent in one turn */
#define SAVE_INTERVAL_MS   100               /* acknowledgements are saved this often */
#define DROPS_PER_PUMP     2048              /* reports a pump may drop (a store write each) */
/* Bounds on what one agency can make the broker do (docs/operations.md, "Limits") */
#define DEFAULT_MAX_REPORTS  500   /* reports one Publish may hold */
#define DEFAULT_CLOCK_SKEW   86400 /* seconds a report's created may be ahead of the clock */
#define REPORTS_PER_TURN     4000  /* reports handled per transaction */
#define UNHEALTHY_FOR_MS     3000  /* /healthz says 503 this long after a rollback */
#define OUT_BYTES_MAX        (16 * 1024 * 1024) /* Delivers packed, waiting for their sync */
#define PEER_SNDHWM          64  /* messages queued toward one connection; past it, it is gone */
#define PEER_RCVHWM          8   /* frames read ahead from one connection (libcaveat sends 8) */
#define HELLOS_PER_SECOND    10  /* on one connection */
#define ERRORS_PER_SECOND    20  /* Error frames to one agency's connections without a session */
#define REFUSALS_PER_SECOND  20  /* refused reports of one agency recorded one leaf each */
#define ZAP_EVERY            64  /* messages handled between two looks at ZAP */
#define FRAMES_PER_AGENCY    128 /* frames one agency may have handled in a turn */
#define APPROVALS_PER_SECOND 10  /* Approvals of one agency handled a second */
#define APPROVALS_PER_REPORT 32  /* agencies and types one report may be approved to */
#define FEEDBACK_PER_SECOND  10  /* Feedback frames one agency may send */
#define FEEDBACK_PER_REPORT  20  /* feedback stored from one agency on one report, ever */
#define CREATED_FLOOR        946684800          /* 2000-01-01T00:00:00Z: no report is older */
#define CLOCK_KEY            "retention_clock"  /* meta: the time retention last trusted */
#define CLOCK_JUMP_SLACK     300                /* seconds the wall clock may drift */
#define CLOCK_DOWNTIME_MAX   (7 * 86400)        /* a restart this much later is believed */
#define DEFAULT_DISK_RESERVE (64 * 1024 * 1024) /* bytes kept for deliveries on a full disk */
#define BACKUP_LOOK_MS       10 /* the disk is looked at this often while a backup runs */

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
static bool rate_allows(rate_t *rate, int limit)
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

/*  What one agency's traffic has caused, against its bounds. */
typedef struct {
    rate_t errors;   /* Errors sent to its connections without a session */
    rate_t refusals; /* its refused reports written one by one into the audit log */
    rate_t feedback; /* its Feedback frames */
    uint64_t turn;   /* the turn frames counts for */
    int frames;      /* its frames handled in that turn */

    rate_t approvals; /* its Approvals */
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
    } out; /* what the credit counts: see in_flight() */
    session_state_t state;
    uint64_t resent_up_to; /* RESENDING: the seq it got to */
    bool dirty;            /* may have something to send: set_dirty() */
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
    int64_t since;         /* when it said Hello (unix seconds) */
} session_t;

/*  An admin request that needs the store to itself (purge, review): it
 *  runs after the turn's commit, never inside the write transaction. */
typedef struct {
    zframe_t *routing;
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
    cv_guard_t *guard;       /* bounds the router's connections still in their handshake */
    zhashx_t *sessions;      /* routing hex -> session_t (owns them) */
    zhashx_t *serving;       /* cv_queue_name() -> the session_t serving that queue */
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
    bool turn_urgent;      /* an IMMEDIATE report was stored in this turn: it drains no more */
    cv_queue_t **route_to; /* one report's queues, reused */
    size_t route_to_cap;
    zlistx_t *senders;          /* send-only sessions, oldest first (not owned) */
    zlistx_t *pending;          /* sessions that may have something to send (not owned) */
    zlistx_t *pending_acks;     /* pending_ack_t */
    zlistx_t *pending_feedback; /* pending_feedback_t */
    cv_feedback_t *feedback;    /* feedback rows in the store, on their way to originators */
    zlistx_t *outbox;           /* held_t: deliveries to send after the commit */
    zlistx_t *held;             /* held_t: messages waiting for their commit's sync */
    zlistx_t *deferred;         /* deferred_t: admin work run outside a transaction */
    cv_cache_t *cache; /* unpacked frames and reports: a report fanned out is unpacked once */
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
    uint64_t next_serial; /* of sessions */
    agency_use_t *use;    /* per agency index: what its traffic may still cause */
    int use_cap;

    cv_approval_store_t *approvals; /* originators' approvals (handling code 5) */
    zlistx_t *approval_answers;     /* approval_answer_t: ApprovalAcks waiting for the commit */

    uint64_t turns;             /* turns begun: agency_use_t.turn counts against it */
    rate_t checkpoint_failures; /* logged at most once a second */
    struct {
        cv_backup_t *run;          /* the backup running (one at a time), or NULL */
        zframe_t *routing;         /* who asked: the reply goes there, */
        uint8_t key[CV_KEY_BYTES]; /* if a session of this key is still there */
        int64_t next_look;         /* at the disk (zclock_mono) */
    } backup;
    zpoller_t *poller; /* the loop's, while it runs: a backup's end wakes it */
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
            purged, limited, foreign, quarantined, refused_no_space, refusals_counted;
    } stats;
};

static volatile sig_atomic_t reload_requested, stop_requested;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
}

/*  Installed before the broker says it is ready: a SIGTERM at any moment
 *  after that is a clean stop. */
static void install_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/*  Grows *buf to at least want bytes. */
static void reserve(void **buf, size_t *cap, size_t want)
{
    if (want <= *cap)
        return;
    size_t grown = *cap ? *cap : 4096;
    while (grown < want)
        grown *= 2;
    *buf = cv_xrealloc(*buf, grown);
    *cap = grown;
}

/* ------------------------------------------------------------------------ */
/*  Set-up.                                                                 */

/*  DATA/pseudonym.key: 32 random bytes made at the first start, 0600. */
static bool load_pseudonym_key(cv_broker_t *self, cv_error_t *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/pseudonym.key", self->config.data_dir);
    int fd = open(path, O_RDONLY);
    if (fd < 0 && errno == ENOENT) {
        randombytes_buf(self->pseudonym_key, CV_KEY_BYTES);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        bool written = fd >= 0 && write(fd, self->pseudonym_key, CV_KEY_BYTES) == CV_KEY_BYTES &&
                       fsync(fd) == 0;
        if (fd >= 0)
            close(fd);
        if (!written) { /* no half a key left for the next start to refuse */
            cv_error_set(err, path, 0, 0, "cannot create: %s", strerror(errno));
            unlink(path);
        }
        return written;
    }
    struct stat st;
    bool ok = fd >= 0 && fstat(fd, &st) == 0 && (st.st_mode & 077) == 0 &&
              read(fd, self->pseudonym_key, CV_KEY_BYTES) == CV_KEY_BYTES;
    if (fd >= 0)
        close(fd);
    if (!ok)
        cv_error_set(err, path, 0, 0, "unreadable, not 32 bytes, or not mode 0600");
    return ok;
}

/*  why: what made the disk short (a free space, a failed write). */
static void log_disk_short(cv_broker_t *self, const char *why)
{
    cv_log_warning(self->log,
                   "disk: %s under %s (reserve %llu bytes): publishes are refused until %llu bytes "
                   "are free; deliveries go on",
                   why, self->config.data_dir, (unsigned long long)cv_space_reserve(self->space),
                   (unsigned long long)cv_space_resume_at(self->space));
}

static void log_disk_space(cv_broker_t *self)
{
    char why[64];
    snprintf(why, sizeof why, "%llu bytes free", (unsigned long long)cv_space_free(self->space));
    if (cv_space_short(self->space))
        log_disk_short(self, why);
    else
        cv_log_info(self->log, "disk: %s under %s: publishes are taken again", why,
                    self->config.data_dir);
}

/*  On a short disk the WAL is kept to a quarter of the reserve: a WAL
 *  checkpointed whole starts again from its beginning, into space it
 *  holds already, where a growing one would need more. */
static void limit_wal(cv_broker_t *self)
{
    bool is_short = cv_space_short(self->space);
    cv_store_limit_wal(self->store, is_short ? cv_space_reserve(self->space) / 4 : 0);
}

static void disk_changed(cv_broker_t *self)
{
    log_disk_space(self);
    limit_wal(self);
}

/*  A write failed for want of space: publishes stop here, and the
 *  reserve goes to what deliveries and acknowledgements write. */
static void disk_exhausted(cv_broker_t *self)
{
    bool was_short = cv_space_short(self->space);
    cv_space_exhausted(self->space);
    if (!was_short) {
        log_disk_short(self, "a write failed for want of space");
        limit_wal(self);
    }
}

static bool open_data(cv_broker_t *self, cv_error_t *err)
{
    const char *dir = self->config.data_dir;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        cv_error_set(err, dir, 0, 0, "cannot create: %s", strerror(errno));
        return false;
    }
    uint64_t reserve = self->config.disk_reserve_mb ? (uint64_t)self->config.disk_reserve_mb << 20
                                                    : DEFAULT_DISK_RESERVE;
    /* first: on a full disk, an earlier run's reserve is what lets the
     * store open */
    self->space = cv_space_new(dir, reserve, err);
    if (!self->space)
        return false;
    if (load_pseudonym_key(self, err))
        self->store = cv_store_open(dir, self->config.sync, err);
    if (!self->store && cv_space_short(self->space)) {
        cv_error_t why = *err;
        cv_error_set(err, NULL, 0, 0, "%s; the disk holding %s is full (%llu bytes free)", why.msg,
                     dir, (unsigned long long)cv_space_free(self->space));
    }
    if (self->store && cv_space_short(self->space))
        disk_changed(self);
    return self->store != NULL;
}

/*  czmq frees a certificate without wiping it: wipe its secret key (bytes
 *  and text) first. */
static void forget_cert(zcert_t **cert)
{
    if (*cert) {
        /* const to callers, but plain arrays inside the certificate */
        sodium_memzero((void *)zcert_secret_key(*cert), CV_KEY_BYTES);
        sodium_memzero((void *)zcert_secret_txt(*cert), 40);
    }
    zcert_destroy(cert);
}

/*  The broker's secret certificate, read by cv_cert_load: the file whose
 *  mode is checked (0600) is the file read, and its keys must be a pair. */
static zcert_t *load_cert(const char *path, cv_error_t *err)
{
    uint8_t public_key[CV_KEY_BYTES], secret_key[CV_KEY_BYTES];
    if (!cv_cert_load(path, public_key, secret_key, err))
        return NULL;
    zcert_t *cert = zcert_new_from(public_key, secret_key);
    sodium_memzero(secret_key, sizeof secret_key);
    if (!cert)
        abort(); /* out of memory: docs/architecture.md, "Memory" */
    return cert;
}

/*  libzmq takes a TCP port modulo 65536 (tcp://host:99999 binds port
 *  34463): a number it would wrap is refused here. "*", "!" and 0 choose one. */
static bool port_in_range(const char *endpoint)
{
    const char *colon = strrchr(endpoint, ':');
    if (strncmp(endpoint, "tcp://", 6) != 0 || !colon || colon < endpoint + 6 ||
        !isdigit((unsigned char)colon[1]))
        return true;
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    return *end == '\0' && port >= 0 && port <= 65535; /* 0: any, as "*" */
}

static bool bind_router(cv_broker_t *self, zcert_t *cert, cv_error_t *err)
{
    self->router = zsock_new(ZMQ_ROUTER);
    if (!self->router)
        return false;
    zcert_apply(cert, self->router);
    zsock_set_curve_server(self->router, 1);
    zsock_set_zap_domain(self->router, "caveat");
    zsock_set_router_mandatory(self->router, 1);
    /* libzmq counts CURVE's own overhead (33 bytes) against the limit: a
     * frame of exactly max_frame, as announced, must still pass */
    zsock_set_maxmsgsize(self->router, self->config.max_frame + CURVE_OVERHEAD);
    /* No ZMTP heartbeat timer: in libzmq 4.3.4 its timer calls out_event()
     * on a connection that already failed (one whose input was stopped
     * because its queue was full, then hung up), which aborts the whole
     * process (stream_engine_base.cpp: assert !_io_error). Any agency could
     * do that at will. TCP keepalive finds dead peers instead, in the
     * kernel; clients' own heartbeats are still answered. */
    zsock_set_tcp_keepalive(self->router, 1);
    zsock_set_tcp_keepalive_idle(self->router, 15);
    zsock_set_tcp_keepalive_intvl(self->router, 5);
    zsock_set_tcp_keepalive_cnt(self->router, 3);
    zsock_set_sndhwm(self->router, PEER_SNDHWM); /* per connection: ROUTER_MANDATORY then fails */
    zsock_set_rcvhwm(self->router, PEER_RCVHWM); /* per connection: then libzmq stops reading it */
    zsock_set_sndtimeo(self->router, 0);
    zsock_set_rcvtimeo(self->router, 0);
    zsock_set_linger(self->router, 1000);
    /* before the bind: libzmq copies the handshake timeout into the listener */
    self->guard = cv_guard_new(self->router, self->log, self->config.max_pending,
                               self->config.handshake_timeout_ms, err);
    if (!self->guard)
        return false;
    if (!port_in_range(self->config.endpoint)) {
        cv_error_set(err, NULL, 0, 0, "cannot bind %s: the port is not from 0 to 65535",
                     self->config.endpoint);
        return false;
    }
    if (zsock_bind(self->router, "%s", self->config.endpoint) < 0) {
        cv_error_set(err, NULL, 0, 0, "cannot bind %s: %s", self->config.endpoint,
                     zmq_strerror(zmq_errno()));
        return false;
    }
    /* what libzmq bound, not what was asked for: the port chosen for "*"
     * or "!", the address a name resolved to */
    char *bound = zsock_last_endpoint(self->router);
    snprintf(self->endpoint, sizeof self->endpoint, "%s",
             bound ? bound : zsock_endpoint(self->router));
    free(bound);
    return true;
}

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

static int session_compare_serial(const void *a, const void *b)
{
    uint64_t x = ((const session_t *)a)->serial, y = ((const session_t *)b)->serial;
    return x < y ? -1 : x > y;
}

static void session_free(void **item)
{
    session_destroy((session_t **)item);
}

/*  Deliveries sent on a session and not acknowledged: what its credit
 *  counts. Not the queue's list of seqs in flight, which also holds seqs
 *  the policy stopped releasing: those are never sent, so they take no
 *  credit, and an acknowledgement that covers them frees none. */
static size_t in_flight(const session_t *s)
{
    return s->out.n - s->out.first;
}

static void session_sent(session_t *s, uint64_t seq)
{
    if (s->out.first > 0 && s->out.n == s->out.cap) { /* room at the front: move down */
        memmove(s->out.seqs, s->out.seqs + s->out.first, in_flight(s) * sizeof *s->out.seqs);
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

static void session_acked(session_t *s, uint64_t up_to)
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
static void set_dirty(cv_broker_t *self, session_t *s, bool dirty)
{
    s->dirty = dirty;
    if (dirty && !s->pending)
        s->pending = zlistx_add_end(self->pending, s);
}

/*  Everything sent counts as not sent: the session is sent again all its
 *  queue has in flight, from the first unacknowledged seq (once its pause
 *  ends, if it is paused). */
static void session_resend_all(cv_broker_t *self, session_t *s)
{
    s->out.first = s->out.n = 0;
    if (s->state != SESSION_PAUSED)
        s->state = SESSION_RESENDING;
    s->resent_up_to = 0;
    set_dirty(self, s, true);
}

static bool load_queues(cv_broker_t *self, cv_error_t *err);
static void reload_queues(cv_broker_t *self);
static void forget_held_deliveries(cv_broker_t *self);

/*  The policy file, at start and at every reload. With signers, its
 *  signature must verify (cv_policy_sig.h): there is no way around it. */
static cv_policy_t *load_policy(cv_broker_t *self, cv_error_t *err)
{
    if (!self->signers)
        return cv_policy_load_file(self->config.policy_path, self->pseudonym_key, err);
    cv_signer_t by;
    cv_policy_t *policy = cv_policy_load_signed(self->config.policy_path, self->signers,
                                                self->pseudonym_key, &by, err);
    if (policy)
        cv_log_info(self->log, "policy signed by %s (key ID %s)", by.name, by.key_id);
    return policy;
}

static bool record_deliveries(void *arg, cv_queue_t *queue, cv_error_t *err);

/*  Ends a transaction begun outside a turn (start, admin work): when ok,
 *  its leaves are written and it commits; otherwise, or when that fails,
 *  both are undone. Whether it committed. */
static bool end_recorded(cv_broker_t *self, bool ok, cv_error_t *err)
{
    if (ok && cv_record_flush(self->record, false, err) && cv_store_commit(self->store, err))
        return true;
    cv_record_discard(self->record);
    cv_store_rollback(self->store);
    return false;
}

/*  The audit log, checked, and the policy in force recorded in it. */
static bool open_record(cv_broker_t *self, cv_error_t *err)
{
    self->record = cv_record_new(self->store, self->config.data_dir, err);
    if (!self->record || !cv_store_begin(self->store, err))
        return false;
    self->receipts = cv_receipts_new(self->record);
    cv_router_set_saving(self->queues, record_deliveries, self);
    bool recorded = cv_record_policy(self->record, self->policy, err) &&
                    (!self->config.audit_off || cv_record_turn_off(self->record, err));
    if (!end_recorded(self, recorded, err))
        return false;
    if (self->config.audit_off)
        cv_log_warning(self->log, "the audit log is off (--audit-log off): nothing this "
                                  "broker does is recorded for oversight");
    return true;
}

/*  The policy and the store; offline, nothing more. */
static bool start(cv_broker_t *self, bool offline, cv_error_t *err)
{
    if (self->config.policy_signers &&
        !(self->signers = cv_signers_load(self->config.policy_signers, err)))
        return false;
    if (!open_data(self, err) || !(self->feedback = cv_feedback_new(self->store, err)))
        return false;
    self->policy = load_policy(self, err);
    if (!self->policy || !load_queues(self, err) || !open_record(self, err) ||
        !(self->approvals = cv_approval_store_new(self->store, err)))
        return false;
    if (offline)
        return true;
    zcert_t *cert = load_cert(self->config.cert_path, err);
    if (!cert)
        return false;
    uint8_t public_key[CV_KEY_BYTES];
    memcpy(public_key, zcert_public_key(cert), CV_KEY_BYTES);
    /* ZAP first: a CURVE socket bound with no handler admits any key */
    self->zap = cv_zap_new(self->log, err);
    bool ok = self->zap && bind_router(self, cert, err);
    forget_cert(&cert);
    ok = ok && cv_selftest_unlisted_key(self->endpoint, public_key, self->zap, self->policy, err);
    if (ok)
        cv_zap_log_refusals(self->zap);
    if (ok && self->config.monitor) {
        self->monitor = cv_monitor_new(self->config.monitor, err);
        ok = self->monitor != NULL;
        if (ok)
            cv_log_info(self->log, "monitoring on http://%s (/metrics, /healthz)",
                        cv_monitor_address(self->monitor));
    }
    return ok;
}

static cv_broker_t *broker_new(const cv_broker_config_t *config, bool offline, cv_error_t *err);

cv_broker_t *cv_broker_new(const cv_broker_config_t *config, cv_error_t *err)
{
    return broker_new(config, false, err);
}

cv_broker_t *cv_broker_new_offline(const cv_broker_config_t *config, cv_error_t *err)
{
    return broker_new(config, true, err);
}

static cv_broker_t *broker_new(const cv_broker_config_t *config, bool offline, cv_error_t *err)
{
    if (sodium_init() < 0)
        return NULL;
    zsys_handler_set(NULL); /* our own signal handling, below */
    cv_broker_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    if (!self->config.max_frame)
        self->config.max_frame = DEFAULT_MAX_FRAME;
    if (!self->config.ack_timeout_ms)
        self->config.ack_timeout_ms = 30000;
    if (!self->config.max_reports)
        self->config.max_reports = DEFAULT_MAX_REPORTS;
    if (!self->config.clock_skew_s)
        self->config.clock_skew_s = DEFAULT_CLOCK_SKEW;
    self->log =
        cv_log_new(config->log_json ? CV_LOG_JSON : CV_LOG_TEXT, config->verbose, config->quiet);
    self->sessions = zhashx_new();
    zhashx_set_destructor(self->sessions, session_free);
    self->serving = zhashx_new();
    self->pending_acks = zlistx_new();
    self->approval_answers = zlistx_new();
    self->pending_feedback = zlistx_new();
    self->outbox = zlistx_new();
    self->held = zlistx_new();
    self->deferred = zlistx_new();
    self->senders = zlistx_new();
    self->pending = zlistx_new();
    self->decision = cv_decision_new();
    self->candidates = cv_candidates_new();
    self->cache = cv_cache_new();
    self->hasher = cv_hasher_new(); /* NULL: the loop takes the sums itself */
    self->view_hasher = cv_hasher_new();
    self->views = cv_views_new(self->view_hasher);
    if (!self->cache || !start(self, offline, err))
        cv_broker_destroy(&self);
    else if (!offline)
        install_signals();
    return self;
}

static void clear_outgoing(cv_broker_t *self);

void cv_broker_destroy(cv_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cv_broker_t *self = *self_p;
    clear_outgoing(self);
    zlistx_destroy(&self->pending_acks);
    zlistx_destroy(&self->approval_answers);
    zlistx_destroy(&self->pending_feedback);
    zlistx_destroy(&self->outbox);
    zlistx_destroy(&self->held);
    zlistx_destroy(&self->deferred);
    cv_backup_destroy(&self->backup.run); /* a broker fed offline, never run */
    zframe_destroy(&self->backup.routing);
    zlistx_destroy(&self->senders);
    zlistx_destroy(&self->pending);
    cv_cache_destroy(&self->cache);
    zhashx_destroy(&self->serving);
    zhashx_destroy(&self->sessions);
    cv_receipts_destroy(&self->receipts);
    cv_record_destroy(&self->record); /* before the store it writes in */
    cv_approval_store_destroy(&self->approvals);
    cv_router_destroy(&self->queues);
    free(self->route_to);
    cv_guard_destroy(&self->guard); /* its monitor first */
    zsock_destroy(&self->router);
    cv_zap_destroy(&self->zap);
    cv_feedback_destroy(&self->feedback); /* its statements, before the store closes */
    cv_store_close(&self->store);
    cv_space_destroy(&self->space);
    cv_monitor_destroy(&self->monitor);
    cv_policy_destroy(&self->policy);
    cv_signers_destroy(&self->signers);
    cv_decision_destroy(&self->decision);
    cv_candidates_destroy(&self->candidates);
    cv_views_destroy(&self->views);
    cv_hasher_destroy(&self->view_hasher);
    cv_hasher_destroy(&self->hasher);
    free(self->bodies.bytes);
    free(self->jobs.all);
    cv_log_destroy(&self->log);
    free(self->use);
    free(self->pack.view);
    free(self->pack.bytes);
    free(self->pack.rules);
    sodium_memzero(self->pseudonym_key, sizeof self->pseudonym_key);
    free(self);
    *self_p = NULL;
}

const char *cv_broker_endpoint(const cv_broker_t *self)
{
    return self->endpoint;
}

/* ------------------------------------------------------------------------ */
/*  Sending.                                                                */

/*  A Frame, or a PackedFrame (the same on the wire), to routing. */
static zmsg_t *message_to(const zframe_t *routing, const ProtobufCMessage *frame)
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

static zmsg_t *frame_message(const zframe_t *routing, const Caveat__Wire__Frame *frame)
{
    return message_to(routing, &frame->base);
}

/*  Sends now; a peer that is gone or full loses the message (counted). */
/*  0 when sent; else errno: EHOSTUNREACH for a connection that is gone,
 *  EAGAIN for one PEER_SNDHWM messages behind (ROUTER_MANDATORY). */
static int send_now(cv_broker_t *self, zmsg_t **msg)
{
    if (!self->router) { /* offline (cv_broker_feed): nowhere to send */
        zmsg_destroy(msg);
        return 0;
    }
    if (zmsg_send(msg, self->router) == 0)
        return 0;
    int failure = errno;
    zmsg_destroy(msg);
    self->stats.dropped++;
    return failure ? failure : EAGAIN;
}

static void send_frame(cv_broker_t *self, const zframe_t *routing, const Caveat__Wire__Frame *frame)
{
    zmsg_t *msg = frame_message(routing, frame);
    send_now(self, &msg);
}

static void send_error(cv_broker_t *self, const zframe_t *routing, uint32_t code,
                       const char *reason)
{
    Caveat__Wire__Error error = CAVEAT__WIRE__ERROR__INIT;
    error.has_code = true;
    error.code = code;
    error.reason = (char *)reason;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_ERROR;
    frame.error = &error;
    send_frame(self, routing, &frame);
}

static void send_error_limited(cv_broker_t *self, const zframe_t *routing, int agency,
                               uint32_t code, const char *reason);

/* ------------------------------------------------------------------------ */
/*  Sessions.                                                               */

static session_t *session_of(cv_broker_t *self, const zframe_t *routing)
{
    char *hex = zframe_strhex((zframe_t *)routing);
    session_t *s = zhashx_lookup(self->sessions, hex);
    free(hex);
    return s;
}

static session_t *session_of_queue(cv_broker_t *self, const char *agency, const char *feed)
{
    cv_queue_name_t name;
    const char *key = cv_queue_name(&name, agency, feed);
    session_t *s = key ? zhashx_lookup(self->serving, key) : NULL;
    cv_queue_name_free(&name);
    return s;
}

static void remove_session(cv_broker_t *self, session_t *s)
{
    cv_queue_name_t name;
    const char *key = cv_queue_name(&name, s->agency, s->feed);
    if (key && zhashx_lookup(self->serving, key) == s)
        zhashx_delete(self->serving, key);
    cv_queue_name_free(&name);
    void *handle = s->publish_only ? zlistx_find(self->senders, s) : NULL;
    if (handle)
        zlistx_delete(self->senders, handle);
    if (s->pending)
        zlistx_delete(self->pending, s->pending);
    s->pending = NULL;
    cv_receipts_forget(self->receipts, s); /* a receipt is for the session that acknowledged */
    zhashx_delete(self->sessions, s->routing_hex);
}

static void free_pending(pending_ack_t *p);
static void forget_approval_answers_of(cv_broker_t *self, uint64_t serial);

static void held_destroy(cv_broker_t *self, held_t *h)
{
    assert(self->out_bytes >= h->bytes);
    self->out_bytes -= h->bytes;
    zmsg_destroy(&h->msg);
    free(h);
}

/*  Drops whatever waits to be sent for the session with serial: a
 *  PublishAck, deliveries held for their sync or in the outbox. */
static void forget_messages_of(cv_broker_t *self, uint64_t serial)
{
    for (pending_ack_t *p = zlistx_first(self->pending_acks); p;
         p = zlistx_next(self->pending_acks))
        if (p->session == serial) {
            zlistx_detach_cur(self->pending_acks); /* the cursor stays valid for next */
            free_pending(p);
        }
    zlistx_t *lists[] = {self->outbox, self->held};
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++)
        for (held_t *h = zlistx_first(lists[i]); h; h = zlistx_next(lists[i]))
            if (h->session == serial) {
                zlistx_detach_cur(lists[i]);
                held_destroy(self, h);
            }
    forget_approval_answers_of(self, serial);
}

/*  Ends a session now: nothing more is sent for it, not even what waits
 *  for a sync. Its deliveries stay in flight in its queue, for the next
 *  session of that queue. */
static void end_session(cv_broker_t *self, session_t *s)
{
    forget_messages_of(self, s->serial);
    remove_session(self, s);
}

/*  libzmq 4.3 tells a ROUTER nothing when a peer goes, and send-only
 *  sessions replace no one: keep the newest SENDERS_PER_AGENCY of each
 *  agency. A dropped one that sends again gets NOT_READY and says Hello. */
static void limit_senders(cv_broker_t *self, const char *agency)
{
    int count = 0;
    session_t *oldest = NULL;
    for (session_t *s = zlistx_first(self->senders); s; s = zlistx_next(self->senders))
        if (strcmp(s->agency, agency) == 0 && count++ == 0)
            oldest = s;
    if (count > SENDERS_PER_AGENCY)
        end_session(self, oldest); /* nothing more for it, not even a held PublishAck */
}

static void add_session(cv_broker_t *self, session_t *s)
{
    session_t *old = session_of(self, s->routing);
    if (old)
        remove_session(self, old);
    zhashx_insert(self->sessions, s->routing_hex, s);
    if (s->publish_only) { /* it serves no queue, so it replaces nobody's */
        zlistx_add_end(self->senders, s);
        limit_senders(self, s->agency);
        return;
    }
    /* a queue has one session: a new Hello replaces the old one, which is
     * sent nothing more (its deliveries are in flight in the queue, and
     * the new session resends them) */
    if ((old = session_of_queue(self, s->agency, s->feed)))
        end_session(self, old);
    cv_queue_name_t name;
    const char *key = cv_queue_name(&name, s->agency, s->feed);
    if (key)
        zhashx_insert(self->serving, key, s);
    cv_queue_name_free(&name);
}

/*  libzmq's ROUTER names a connection that gives no routing id of its own
 *  with 5 bytes, the first 0. A routing id a client chose could be chosen
 *  again by another agency once the first connection is gone, and libzmq
 *  4.3 does not tell the broker it went: sessions live only on routing ids
 *  the transport assigned, which no peer learns. */
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
    /* a queue is made for what a session asks: only for feeds that exist,
     * and only by their recipients */
    if (*feed && !cv_policy_has_feed(self->policy, feed)) {
        *reason = "no screening entry sends to that feed";
        return E_BAD_REQUEST;
    }
    if (*feed && !cv_policy_feed_recipient(self->policy, feed, agency)) {
        *reason = "this agency is not a recipient of that feed";
        return E_FORBIDDEN;
    }
    return 0;
}

static session_t *session_new(cv_broker_t *self, const zframe_t *routing, const cv_agency_t *a,
                              const uint8_t key[CV_KEY_BYTES], const char *feed)
{
    session_t *s = cv_xcalloc(1, sizeof *s);
    s->serial = ++self->next_serial;
    s->routing_hex = zframe_strhex((zframe_t *)routing);
    s->routing = zframe_dup((zframe_t *)routing);
    s->agency = cv_xstrdup(a->id);
    memcpy(s->key, key, CV_KEY_BYTES); /* the one it came with: an agency may have two */
    s->feed = cv_xstrdup(feed);
    s->peer = cv_xstrdup(self->peer ? self->peer : "");
    s->since = (int64_t)time(NULL);
    if (!s->routing_hex || !s->routing)
        abort();                  /* czmq's own allocations */
    s->state = SESSION_RESENDING; /* first whatever an earlier session left unacknowledged */
    return s;
}

static void send_hello_ack(cv_broker_t *self, const zframe_t *routing, const cv_agency_t *a)
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
    send_frame(self, routing, &frame);
}

/*  s is the connection's session with this key, or NULL. A Hello again for
 *  the same queue keeps the session: what it was sent is still on its way
 *  down this connection and is not sent twice (a Hello loop on a
 *  connection that never reads must not multiply what waits for it). */
static void on_hello(cv_broker_t *self, const zframe_t *routing, int agency,
                     const uint8_t key[CV_KEY_BYTES], session_t *s,
                     const Caveat__Wire__Hello *hello)
{
    const cv_agency_t *a = cv_policy_agency(self->policy, agency);
    const char *feed = hello->feed ? hello->feed : "", *reason = NULL;
    uint32_t refused = hello_refusal(self, routing, agency, hello, &reason);
    rate_t hellos = s ? s->hellos : (rate_t){0};
    if (!refused && !rate_allows(&hellos, HELLOS_PER_SECOND)) {
        self->stats.limited++;
        refused = E_LIMIT;
        reason = "too many Hellos on this connection; wait a second";
    }
    if (refused) {
        if (s)
            send_error(self, routing, refused, reason);
        else /* no session: answers to it are rate-limited per agency */
            send_error_limited(self, routing, agency, refused, reason);
        cv_log_agency(self->log, a->id, false, "hello from %s refused: %s", a->id, reason);
        return;
    }
    bool publish_only = hello->has_credit && hello->credit == 0;
    if (!s || strcmp(s->feed, feed) != 0 || s->publish_only != publish_only) {
        s = session_new(self, routing, a, key, feed);
        s->publish_only = publish_only;
        add_session(self, s); /* replaces the connection's earlier session */
    }
    s->hellos = hellos;
    s->receipts = !publish_only && hello->has_receipts && hello->receipts;
    s->credit = hello->has_credit && hello->credit ? hello->credit : DEFAULT_CREDIT;
    if (s->credit > MAX_CREDIT)
        s->credit = MAX_CREDIT;
    set_dirty(self, s, !s->publish_only);
    send_hello_ack(self, routing, a);
    cv_log_agency(self->log, a->id, false, "session: %s%s%s", a->id, *feed ? " feed " : "", feed);
}

static void mark_dirty(cv_broker_t *self, const char *agency, const char *feed)
{
    session_t *s = session_of_queue(self, agency, feed);
    if (s)
        set_dirty(self, s, true);
}

/* ------------------------------------------------------------------------ */
/*  Publishing.                                                             */

static void set_result(Caveat__Wire__PublishResult *result, Caveat__Wire__Status status,
                       const char *id, const char *reason)
{
    result->has_status = true;
    result->status = status;
    result->report_id = cv_xstrdup(id ? id : "");
    result->reason = reason ? cv_xstrdup(reason) : NULL;
}

/* ------------------------------------------------------------------------ */
/*  Queues and the report cache. Both mirror rows of the store, so a
 *  rolled-back turn forgets them (turn_failed).                            */

/*  The first failure of a turn, kept with the store's own message: the
 *  turn rolls back and says why. */
static void fail_turn(cv_broker_t *self, const char *why)
{
    if (!self->turn_error.msg[0])
        cv_error_set(&self->turn_error, NULL, 0, 0, "%s", why && *why ? why : "a write failed");
}

static bool turn_failing(const cv_broker_t *self)
{
    return self->turn_error.msg[0] != '\0';
}

/*  The queue (agency, feed), made (in the store too) on first use. */
static cv_queue_t *queue_of(cv_broker_t *self, const char *agency, const char *feed)
{
    cv_error_t err = {0};
    cv_queue_t *q = cv_router_queue(self->queues, agency, feed, &err);
    if (!q)
        fail_turn(self, err.msg);
    return q;
}

/*  Every queue as the store has it: at start, and after a turn that failed
 *  to commit, whose changes to the queues in memory are thrown away. */
static bool load_queues(cv_broker_t *self, cv_error_t *err)
{
    if (!self->queues && !(self->queues = cv_router_new(self->store))) {
        cv_error_set(err, NULL, 0, 0, "out of memory");
        return false;
    }
    return cv_router_load(self->queues, err);
}

/*  The stored report by rowid, unpacked; owned by the cache. NULL when
 *  purged, and also when it cannot be read: then the turn fails, so that
 *  nothing is dropped for a read error. */
/*  A stored report that cannot be read as it was stored is set aside
 *  (cv_store_quarantine): no queue waits for it, it is never sent, and it
 *  stops nothing else. An administrator lists them (admin quarantined). */
static void quarantine(cv_broker_t *self, int64_t rowid, const char *why)
{
    cv_error_t err = {0};
    if (!cv_store_quarantine(self->store, rowid, why, &err)) {
        cv_log_error(self->log, "store: cannot quarantine report %lld: %s", (long long)rowid,
                     err.msg);
        fail_turn(self, err.msg);
        return;
    }
    self->stats.quarantined++;
    cv_log_warning(self->log, "store: report %lld quarantined: %s", (long long)rowid, why);
}

static const Caveat__Report *report_at(cv_broker_t *self, int64_t rowid);

/*  A rowid that names no stored report may be an approved release's
 *  (cv_approval_store.h): the report it stands for, else NULL. */
static const Caveat__Report *approved_release_at(cv_broker_t *self, int64_t rowid)
{
    cv_error_t err = {0};
    int64_t report = cv_approval_store_resolve(self->approvals, rowid, &err);
    if (report < 0)
        fail_turn(self, err.msg); /* not read: nothing is dropped for it */
    return report > 0 && report != rowid ? report_at(self, report) : NULL;
}

/*  The report's approvals, for deciding it: NULL when its handling code
 *  needs none. A store that cannot read them fails the turn, so that no
 *  delivery is dropped for want of them. */
static const cv_approvals_t *approvals_of(cv_broker_t *self, const Caveat__Report *report,
                                          cv_approvals_t *approvals)
{
    if (!cv_policy_needs_approval(self->policy, report))
        return NULL;
    cv_error_t err = {0};
    if (cv_approval_store_list(self->approvals, report->originator, report->id, approvals, &err) <
        0)
        fail_turn(self, err.msg);
    return approvals;
}

static const Caveat__Report *report_at(cv_broker_t *self, int64_t rowid)
{
    const Caveat__Report *cached = cv_cache_get(self->cache, rowid);
    if (cached)
        return cached;
    uint8_t *body = NULL;
    size_t len = 0;
    cv_error_t err = {0};
    int found = cv_store_get_report(self->store, rowid, &body, &len, &err);
    if (found == 0)
        return approved_release_at(self, rowid);
    Caveat__Report *report = found > 0 ? cv_cache_unpack_report(self->cache, body, len) : NULL;
    free(body);
    if (found == CV_GET_CORRUPT)
        quarantine(self, rowid, err.msg);
    else if (found > 0 && !report)
        quarantine(self, rowid, "its stored bytes do not unpack");
    else if (found < 0) /* the store failed to read: the turn fails, nothing is dropped */
        fail_turn(self, err.msg);
    if (report)
        cv_cache_put(self->cache, rowid, report);
    return report;
}

/*  Queues the report for every agency the policy releases it to, and
 *  stores where it went in one row. Only the policy's candidates for the
 *  report are decided: agencies it cannot go to cost next to nothing. */
static bool route(cv_broker_t *self, const Caveat__Report *report, int64_t rowid,
                  const uint8_t *stored, cv_error_t *err)
{
    const int *candidates;
    int agencies = cv_policy_candidates(self->policy, report, self->candidates, &candidates);
    /* one queue an agency at most */
    reserve((void **)&self->route_to, &self->route_to_cap, (size_t)agencies * sizeof(cv_queue_t *));
    size_t n = 0;
    bool queued = true;
    cv_record_accepted_begin(self->record, report, stored, self->policy);
    for (int i = 0; i < agencies && queued; i++) {
        int a = candidates[i];
        const cv_agency_t *to = cv_policy_agency(self->policy, a);
        const char *agency = to->id;
        bool delivered = cv_policy_decide(self->policy, report, a, NULL, self->decision);
        cv_record_recipient(self->record, to, self->decision);
        if (!delivered)
            continue;
        const char *feed = cv_decision_feed(self->decision);
        cv_queue_t *q = cv_router_queue(self->queues, agency, feed ? feed : "", err);
        if (!(queued = q != NULL))
            break;
        self->route_to[n++] = q;
        mark_dirty(self, agency, feed ? feed : "");
    }
    /* the leaf is ended whatever happened: a failure rolls the turn back
     * with it */
    cv_error_t ended = {0};
    bool recorded = cv_record_accepted_end(self->record, queued ? err : &ended);
    int priority = report->has_priority ? (int)report->priority : 0;
    return queued && recorded &&
           cv_router_route(self->queues, rowid, priority, self->route_to, n, err);
}

/*  A report's `created`, when given, is neither ahead of the broker's
 *  clock by more than --clock-skew nor before 2000: a date far ahead would
 *  evade retention, one far back would be purged before anyone saw it. */
static bool created_plausible(cv_broker_t *self, const char *created, cv_error_t *err)
{
    int64_t when;
    if (!cv_timestamp_parse(created, &when))
        return true; /* absent: the broker stamps it */
    int64_t now = (int64_t)time(NULL);
    if (when > now + self->config.clock_skew_s)
        cv_error_set(err, NULL, 0, 0, "created: %lld s ahead of the broker's clock (at most %d)",
                     (long long)(when - now), self->config.clock_skew_s);
    else if (when < CREATED_FLOOR)
        cv_error_set(err, NULL, 0, 0, "created: before 2000-01-01");
    else
        return true;
    return false;
}

/*  A report of a Publish between its checks and its store. Its body (and,
 *  when the broker stamps it, the report as sent) is packed in
 *  self->bodies; their sums are taken off the loop (cv_hasher.h). */
typedef struct {
    Caveat__Report *report;
    cv_stored_report_t stored;
    size_t body, body_len;  /* in self->bodies */
    size_t sent, sent_len;  /* the report as sent: its digest names a retry */
    int body_job, sent_job; /* in self->jobs; sent_job -1: nothing stamped */
} prepared_t;

static void refuse_no_space(cv_broker_t *self, const Caveat__Report *report,
                            Caveat__Wire__PublishResult *result)
{
    self->stats.refused_no_space++;
    set_result(result, CAVEAT__WIRE__STATUS__REFUSED_UNAVAILABLE, report->id,
               "the broker's disk is full; retry later");
}

/*  Appends report, packed, to self->bodies; its offset. */
static size_t pack_body(cv_broker_t *self, const Caveat__Report *report, size_t *len)
{
    *len = caveat__report__get_packed_size(report);
    reserve(&self->bodies.bytes, &self->bodies.cap, self->bodies.used + *len);
    size_t at = self->bodies.used;
    caveat__report__pack(report, (uint8_t *)self->bodies.bytes + at);
    self->bodies.used += *len;
    return at;
}

/*  The checks a report passes before it is stored, and the broker's
 *  stamps (originator, id, created); false with the result set when
 *  refused. The report was unpacked into the cache's arena: what is set in
 *  it is allocated there too. */
static bool check_report(cv_broker_t *self, const char *sender, Caveat__Report *report,
                         Caveat__Wire__PublishResult *result)
{
    cv_error_t err = {0};
    if (report->originator && *report->originator && strcmp(report->originator, sender) != 0) {
        snprintf(err.msg, sizeof err.msg, "originator '%.100s' is not the sender %s",
                 report->originator, sender);
        set_result(result, CAVEAT__WIRE__STATUS__REFUSED_SPOOFED_ORIGINATOR, report->id, err.msg);
        return false;
    }
    report->originator = cv_cache_strdup(self->cache, sender);
    if (!cv_policy_validate_report(self->policy, report, &err)) {
        set_result(result, CAVEAT__WIRE__STATUS__REFUSED_INVALID, report->id, err.msg);
        return false;
    }
    if (!report->id || !*report->id) {
        char *id = cv_report_id_new();
        report->id = id ? cv_cache_strdup(self->cache, id) : NULL;
        free(id);
    }
    if (!created_plausible(self, report->created, &err)) {
        set_result(result, CAVEAT__WIRE__STATUS__REFUSED_INVALID, report->id, err.msg);
        return false;
    }
    if (cv_space_short(self->space)) {
        refuse_no_space(self, report, result);
        return false;
    }
    return true;
}

/*  Packs a report that passed its checks. Without a creation time the
 *  broker's acceptance time stands in; a retry of the report must still be
 *  the same report, so it is known by its digest as sent, before the
 *  stamp. */
static void prepare_report(cv_broker_t *self, const char *sender, Caveat__Report *report,
                           prepared_t *p)
{
    p->report = report;
    p->stored =
        (cv_stored_report_t){report->id, sender, report->category, 0, zclock_time(), NULL, NULL};
    p->sent_job = -1;
    if (!cv_timestamp_parse(report->created, &p->stored.created)) {
        p->sent = pack_body(self, report, &p->sent_len);
        p->sent_job = 0;
        char text[CV_TIMESTAMP_MAX];
        p->stored.created = (int64_t)time(NULL);
        report->created =
            cv_cache_strdup(self->cache, cv_timestamp_format(p->stored.created, text));
    }
    p->body = pack_body(self, report, &p->body_len);
}

/*  The sums to take for the prepared reports, once every body is packed
 *  (self->bodies no longer moves); how many. */
static size_t hash_jobs(cv_broker_t *self, prepared_t *prepared, size_t n)
{
    const uint8_t *bytes = self->bodies.bytes;
    size_t jobs = 0;
    reserve((void **)&self->jobs.all, &self->jobs.cap, 2 * n * sizeof *self->jobs.all);
    for (size_t i = 0; i < n; i++) {
        prepared_t *p = &prepared[i];
        if (!p->report)
            continue;
        self->jobs.all[jobs] = (cv_hash_job_t){.bytes = bytes + p->body, .len = p->body_len};
        p->body_job = (int)jobs++;
        if (p->sent_job < 0)
            continue;
        self->jobs.all[jobs] = (cv_hash_job_t){.bytes = bytes + p->sent, .len = p->sent_len};
        p->sent_job = (int)jobs++;
    }
    return jobs;
}

/*  Stores and routes one prepared report; fills its result. Returns the
 *  rowid of a report stored now, else 0. */
static int64_t store_report(cv_broker_t *self, prepared_t *p, Caveat__Wire__PublishResult *result)
{
    if (cv_space_short(self->space)) { /* an earlier report of this Publish filled it */
        refuse_no_space(self, p->report, result);
        return 0;
    }
    cv_error_t err = {0};
    p->stored.checksum = cv_hasher_take(self->hasher, self->jobs.all, (size_t)p->body_job);
    if (p->sent_job >= 0)
        p->stored.digest = cv_hasher_take(self->hasher, self->jobs.all, (size_t)p->sent_job);
    int64_t rowid = 0;
    const uint8_t *body = (const uint8_t *)self->bodies.bytes + p->body;
    cv_put_t put = cv_store_put_report(self->store, &p->stored, body, p->body_len, &rowid, &err);
    if (put == CV_PUT_NEW && !route(self, p->report, rowid, p->stored.checksum, &err))
        put = CV_PUT_FAILED;
    if (put == CV_PUT_NEW && p->report->has_priority &&
        p->report->priority == CAVEAT__PRIORITY__IMMEDIATE)
        self->turn_urgent = true;
    if ((put == CV_PUT_UNDONE || put == CV_PUT_FAILED) && cv_store_no_space(self->store))
        disk_exhausted(self);
    /* a failed write that took the whole transaction with it (SQLite rolls
     * back by itself on some errors), or one after the report's queues
     * were touched: the turn must not commit or acknowledge. A report
     * undone alone is refused alone. */
    if (put == CV_PUT_FAILED)
        fail_turn(self, err.msg);
    if (put == CV_PUT_CONFLICT)
        set_result(result, CAVEAT__WIRE__STATUS__REFUSED_DUPLICATE, p->report->id,
                   "the id names another of this agency's reports");
    else if (put == CV_PUT_FAILED || put == CV_PUT_UNDONE)
        set_result(result, CAVEAT__WIRE__STATUS__REFUSED_UNAVAILABLE, p->report->id, err.msg);
    else
        set_result(result, CAVEAT__WIRE__STATUS__OK, p->report->id, NULL);
    return put == CV_PUT_NEW ? rowid : 0;
}

/*  A refusal is logged with its status; the reason may quote the report
 *  (a claimed originator, an unknown category), so only at debug level. */
static void log_result(const cv_broker_t *self, const char *sender,
                       const Caveat__Wire__PublishResult *result)
{
    const ProtobufCEnumValue *status =
        protobuf_c_enum_descriptor_get_value(&caveat__wire__status__descriptor, result->status);
    bool ok = result->status == CAVEAT__WIRE__STATUS__OK;
    cv_log_agency(self->log, sender, ok, "publish from %s: %s %s", sender, result->report_id,
                  ok       ? "stored"
                  : status ? status->name
                           : "refused");
    if (!ok && result->reason)
        cv_log_agency(self->log, sender, true, "publish from %s: %s: %s", sender, result->report_id,
                      result->reason);
}

/*  A Publish of more reports than the limit is refused whole, with LIMIT
 *  (answers rate-limited per agency). */
static bool over_report_limit(cv_broker_t *self, const zframe_t *routing, int agency,
                              size_t reports)
{
    const char *sender = cv_policy_agency(self->policy, agency)->id;
    if (reports <= (size_t)self->config.max_reports)
        return false;
    char reason[96];
    snprintf(reason, sizeof reason, "a publish may hold at most %d reports",
             self->config.max_reports);
    self->stats.limited++;
    send_error_limited(self, routing, agency, E_LIMIT, reason);
    cv_log_agency(self->log, sender, false, "publish from %s refused: %zu reports", sender,
                  reports);
    return true;
}

static agency_use_t *use_of(cv_broker_t *self, int agency);

/*  A report the policy or the originator's own record refused goes into
 *  the audit log; one refused for want of disk or store (UNAVAILABLE) does
 *  not: that refusal says nothing about the report, and writing it would
 *  spend what the disk has left. An agency's refusals are written one by
 *  one up to REFUSALS_PER_SECOND; past that they are counted (*unrecorded)
 *  for one leaf a Publish, so that an agency sending reports to be refused
 *  cannot grow the log faster than it sends. */
static void record_refusal(cv_broker_t *self, int agency, const char *sender,
                           const Caveat__Wire__PublishResult *result, size_t *unrecorded)
{
    if (result->status == CAVEAT__WIRE__STATUS__OK ||
        result->status == CAVEAT__WIRE__STATUS__REFUSED_UNAVAILABLE)
        return;
    if (!rate_allows(&use_of(self, agency)->refusals, REFUSALS_PER_SECOND)) {
        (*unrecorded)++;
        return;
    }
    const ProtobufCEnumValue *status =
        protobuf_c_enum_descriptor_get_value(&caveat__wire__status__descriptor, result->status);
    cv_error_t err = {0};
    if (!cv_record_refused(self->record, sender, result->report_id,
                           status ? status->name : "refused", &err))
        fail_turn(self, err.msg);
}

/*  The refusals of a Publish past the sender's rate, as one leaf with their
 *  count. */
static void record_refusal_count(cv_broker_t *self, const char *sender, size_t unrecorded)
{
    cv_error_t err = {0};
    self->stats.refusals_counted += unrecorded;
    if (unrecorded && !cv_record_refusals(self->record, sender, unrecorded, &err))
        fail_turn(self, err.msg);
}

/*  Checks and packs every report of a Publish, then stores them in order
 *  while their checksums are taken beside the loop (cv_hasher.h). */
static void accept_reports(cv_broker_t *self, int agency, const char *sender,
                           Caveat__Wire__Publish *publish, Caveat__Wire__PublishResult **results)
{
    size_t n = publish->n_reports, unrecorded = 0;
    prepared_t *prepared = cv_xcalloc(n, sizeof *prepared);
    self->bodies.used = 0;
    for (size_t i = 0; i < n; i++) {
        results[i] = cv_xcalloc(1, sizeof *results[i]);
        caveat__wire__publish_result__init(results[i]);
        if (check_report(self, sender, publish->reports[i], results[i]))
            prepare_report(self, sender, publish->reports[i], &prepared[i]);
    }
    size_t jobs = hash_jobs(self, prepared, n); /* first: it may move self->jobs.all */
    cv_hasher_start(self->hasher, self->jobs.all, jobs);
    for (size_t i = 0; i < n; i++) {
        int64_t stored = prepared[i].report ? store_report(self, &prepared[i], results[i]) : 0;
        if (stored) /* its first deliveries are made from it, as it came */
            cv_cache_put(self->cache, stored, publish->reports[i]);
        if (results[i]->status == CAVEAT__WIRE__STATUS__OK)
            self->stats.published++;
        else
            self->stats.refused++;
        log_result(self, sender, results[i]);
        record_refusal(self, agency, sender, results[i], &unrecorded);
    }
    record_refusal_count(self, sender, unrecorded);
    cv_hasher_end(self->hasher);
    free(prepared);
}

static void on_publish(cv_broker_t *self, const zframe_t *routing, uint64_t session, int agency,
                       const char *sender, Caveat__Wire__Publish *publish)
{
    if (publish->n_reports == 0) {
        send_error(self, routing, E_BAD_REQUEST, "a publish needs at least one report");
        return;
    }
    if (over_report_limit(self, routing, agency, publish->n_reports))
        return;
    pending_ack_t *pending = cv_xcalloc(1, sizeof *pending);
    pending->session = session;
    pending->routing = zframe_dup((zframe_t *)routing);
    caveat__wire__publish_ack__init(&pending->ack);
    pending->ack.has_batch = publish->has_batch;
    pending->ack.batch = publish->batch;
    pending->ack.n_results = publish->n_reports;
    pending->ack.results = cv_xcalloc(publish->n_reports, sizeof *pending->ack.results);
    accept_reports(self, agency, sender, publish, pending->ack.results);
    zlistx_add_end(self->pending_acks, pending);
    self->turn_reports += publish->n_reports;
}

/* ------------------------------------------------------------------------ */
/*  Delivering.                                                             */

/*  A delivery packed in self->pack.bytes (an offset: the buffer grows). */
typedef struct {
    size_t off, len;
} packed_t;

/*  Decides one queued report for the session's agency with the policy in
 *  force now; the report, or NULL when it no longer goes to this queue. */
static const Caveat__Report *decide_for(cv_broker_t *self, const char *agency_id,
                                        const char *queue_feed, int64_t rowid)
{
    const Caveat__Report *report = report_at(self, rowid);
    int agency = cv_policy_agency_find(self->policy, agency_id);
    cv_approvals_t approvals;
    if (!report || agency < 0 ||
        !cv_policy_decide(self->policy, report, agency, approvals_of(self, report, &approvals),
                          self->decision))
        return NULL;
    const char *feed = cv_decision_feed(self->decision);
    return strcmp(feed ? feed : "", queue_feed) == 0 ? report : NULL;
}

static const Caveat__Report *decide_entry(cv_broker_t *self, const session_t *s, int64_t rowid)
{
    return decide_for(self, s->agency, s->feed, rowid);
}

/*  Packs the view of report under the last decision into pack.view,
 *  without building it; its size. */
static size_t pack_view(cv_broker_t *self, const Caveat__Report *report)
{
    size_t size = cv_decision_pack(self->decision, report, self->pack.view, self->pack.view_cap);
    if (size <= self->pack.view_cap)
        return size;
    reserve(&self->pack.view, &self->pack.view_cap, size);
    return cv_decision_pack(self->decision, report, self->pack.view, self->pack.view_cap);
}

/*  Appends d, packed, to pack.bytes. */
static void append_delivery(cv_broker_t *self, const Caveat__Wire__PackedDelivery *d, packed_t *out)
{
    size_t len = caveat__wire__packed_delivery__get_packed_size(d);
    reserve(&self->pack.bytes, &self->pack.cap, self->pack.used + len);
    out->off = self->pack.used;
    out->len = len;
    caveat__wire__packed_delivery__pack(d, (uint8_t *)self->pack.bytes + self->pack.used);
    self->pack.used += len;
}

/*  The note of a feedback row, its strings borrowed; time is its room. */
static Caveat__Wire__FeedbackNote feedback_note(const cv_feedback_row_t *row,
                                                char time[CV_TIMESTAMP_MAX])
{
    Caveat__Wire__FeedbackNote note = CAVEAT__WIRE__FEEDBACK_NOTE__INIT;
    note.report_id = (char *)row->report_id;
    note.from = (char *)row->from;
    note.value = (char *)row->value;
    note.text = *row->text ? (char *)row->text : NULL;
    note.time = (char *)cv_timestamp_format(row->time / 1000, time);
    return note;
}

/*  The SHA-256 of the FeedbackNote's bytes: what a "delivered" leaf says
 *  of a feedback delivery, as the view's hash for a report. */
static void feedback_hash(cv_broker_t *self, const Caveat__Wire__FeedbackNote *note,
                          uint8_t hash[CV_VIEW_HASH_BYTES])
{
    size_t size = caveat__wire__feedback_note__get_packed_size(note);
    reserve(&self->pack.view, &self->pack.view_cap, size);
    caveat__wire__feedback_note__pack(note, self->pack.view);
    cv_audit_sha256(self->pack.view, size, hash);
}

/*  Appends the Delivery of a feedback note: no report, no rules. */
static bool pack_feedback(cv_broker_t *self, cv_queue_t *queue, const cv_feedback_row_t *row,
                          uint64_t seq, packed_t *out)
{
    char time[CV_TIMESTAMP_MAX];
    Caveat__Wire__FeedbackNote note = feedback_note(row, time);
    uint8_t hash[CV_VIEW_HASH_BYTES];
    feedback_hash(self, &note, hash);
    if (!cv_queue_viewed(queue, seq, hash, row->report_id))
        return false;
    Caveat__Wire__PackedDelivery d = CAVEAT__WIRE__PACKED_DELIVERY__INIT;
    d.has_seq = true;
    d.seq = seq;
    d.report_id = (char *)row->report_id;
    d.feedback = &note;
    append_delivery(self, &d, out);
    return true;
}

/*  What a queue entry is to a session now: a report decided for it, or
 *  feedback for its agency (the report's originator) on its direct queue;
 *  neither when the policy no longer releases the report here, or what the
 *  entry named is gone (purged, quarantined). */
typedef struct {
    const Caveat__Report *report;
    bool feedback;
    cv_feedback_row_t note; /* valid until the next entry is looked at */
} entry_t;

/*  The feedback row at rowid when it goes to the queue (agency, feed):
 *  feedback goes to its report's originator's direct queue alone. 1, 0
 *  when it is not this queue's (or there is none), -1 with err. row's
 *  strings are the feedback module's, until its next call. */
static int feedback_for(cv_broker_t *self, const char *agency, const char *feed, int64_t rowid,
                        cv_feedback_row_t *row, cv_error_t *err)
{
    int found = cv_feedback_get(self->feedback, rowid, row, err);
    return found <= 0 ? found : !*feed && strcmp(row->originator, agency) == 0;
}

static bool entry_for(cv_broker_t *self, const session_t *s, int64_t rowid, entry_t *e)
{
    cv_error_t err = {0};
    e->report = decide_entry(self, s, rowid);
    e->feedback = false;
    if (e->report || turn_failing(self))
        return e->report != NULL;
    /* no report has this rowid: feedback may */
    int found = feedback_for(self, s->agency, s->feed, rowid, &e->note, &err);
    if (found < 0) /* the store failed to read: the turn fails, nothing is dropped */
        fail_turn(self, err.msg);
    e->feedback = found > 0;
    return e->feedback;
}

static bool pack_delivery(cv_broker_t *self, cv_queue_t *queue, const Caveat__Report *report,
                          uint64_t seq, packed_t *out);

/*  Appends the delivery of entry with seq to pack.bytes. */
static bool pack_entry(cv_broker_t *self, cv_queue_t *queue, const entry_t *e, uint64_t seq,
                       packed_t *out)
{
    if (e->report)
        return pack_delivery(self, queue, e->report, seq, out);
    return pack_feedback(self, queue, &e->note, seq, out);
}

/*  Appends the Delivery of report under the last decision, packed, to
 *  pack.bytes. Strings are borrowed: protobuf-c only reads them here, and
 *  the report may leave the cache before the frame is packed. */
static bool pack_delivery(cv_broker_t *self, cv_queue_t *queue, const Caveat__Report *report,
                          uint64_t seq, packed_t *out)
{
    size_t view = pack_view(self, report);
    size_t n_rules = (size_t)cv_decision_entry_count(self->decision);
    if (!view)
        return false;
    /* the hash of the exact bytes sent, kept with the delivery in flight
     * for its "delivered" leaf (a resend hashes again what it sends),
     * taken beside the loop while the turn commits (cv_views.h) */
    if (!cv_queue_viewed(queue, seq, NULL, report->id))
        return false;
    if (!self->config.audit_off) /* off: no leaf will name it */
        cv_views_add(self->views, queue, seq, self->pack.view, view);
    reserve(&self->pack.rules, &self->pack.rules_cap, (n_rules + 1) * sizeof(char *));
    char **rules = self->pack.rules;
    for (size_t i = 0; i < n_rules; i++)
        rules[i] = (char *)cv_decision_entry_name(self->decision, (int)i);
    Caveat__Wire__PackedDelivery d = CAVEAT__WIRE__PACKED_DELIVERY__INIT;
    d.has_seq = d.has_report = true;
    d.seq = seq;
    d.report_id = (char *)report->id;
    d.feed = (char *)cv_decision_feed(self->decision);
    d.n_rules = n_rules;
    d.rules = rules;
    d.report.len = view;
    d.report.data = self->pack.view;
    append_delivery(self, &d, out);
    return true;
}

static void outbox_add(cv_broker_t *self, uint64_t session, zmsg_t *msg)
{
    held_t *h = cv_xmalloc(sizeof *h);
    *h = (held_t){0, session, msg, true, zmsg_content_size(msg)};
    self->out_bytes += h->bytes;
    if (self->out_bytes > self->out_bytes_peak)
        self->out_bytes_peak = self->out_bytes;
    zlistx_add_end(self->outbox, h);
}

/*  Adds the packed deliveries to the outbox, as frames of at most
 *  DELIVER_BATCH_SIZE bytes. */
static void post_deliveries(cv_broker_t *self, const session_t *s, const packed_t *items, size_t n)
{
    ProtobufCBinaryData all[PUMP_MAX];
    for (size_t i = 0; i < n; i++) {
        all[i].data = (uint8_t *)self->pack.bytes + items[i].off;
        all[i].len = items[i].len;
    }
    size_t from = 0;
    while (from < n) {
        size_t to = from, bytes = 0;
        while (to < n && (to == from || bytes < DELIVER_BATCH_SIZE))
            bytes += all[to++].len;
        Caveat__Wire__PackedDeliver deliver = CAVEAT__WIRE__PACKED_DELIVER__INIT;
        deliver.n_deliveries = to - from;
        deliver.deliveries = all + from;
        Caveat__Wire__PackedFrame frame = CAVEAT__WIRE__PACKED_FRAME__INIT;
        frame.body_case = CAVEAT__WIRE__PACKED_FRAME__BODY_DELIVER;
        frame.deliver = &deliver;
        outbox_add(self, s->serial, message_to(s->routing, &frame.base));
        from = to;
    }
}

/*  The session's queue, resolved (and made) on first use. */
static cv_queue_t *session_queue(cv_broker_t *self, session_t *s)
{
    if (!s->queue)
        s->queue = queue_of(self, s->agency, s->feed);
    return s->queue;
}

/*  Resends what the queue has in flight, with its seqs, from where this
 *  session got to. What the policy no longer releases stays in flight
 *  unsent: a later acknowledgement covers it. Returns the credit used;
 *  *packed, the deliveries in items. */
static size_t pump_resends(cv_broker_t *self, session_t *s, size_t room, packed_t *items,
                           size_t *packed)
{
    size_t n = 0, walked = 0, before = in_flight(s);
    const cv_sent_t *sent;
    while (walked < room && (sent = cv_queue_sent_after(s->queue, s->resent_up_to))) {
        s->resent_up_to = sent->seq;
        walked++;
        entry_t entry;
        if (!entry_for(self, s, sent->item.report, &entry))
            continue; /* not released any more: not sent, takes no credit */
        if (pack_entry(self, s->queue, &entry, sent->seq, &items[n]))
            n++;
        session_sent(s, sent->seq); /* if it could not be packed, the ack timeout resends it */
    }
    if (walked < room)
        s->state = SESSION_LIVE;
    *packed = n;
    return in_flight(s) - before;
}

/*  Sends what waits, most urgent first, each given the next seq; one
 *  store row for them all (cv_router.h). What the policy no longer
 *  releases is dropped. Returns the credit used; *packed, the deliveries
 *  in items. */
static size_t pump_new(cv_broker_t *self, session_t *s, size_t room, packed_t *items,
                       size_t *packed, bool *more)
{
    cv_pump_t pump;
    cv_routed_t item;
    cv_error_t err = {0};
    size_t n = 0, dropped = 0;
    cv_router_pump_begin(self->queues, &pump, s->queue);
    /* drops are bounded too (each is a store write): a backlog the policy
     * stopped releasing is dropped over several turns, not in one */
    while (pump.n < room && !(*more = dropped >= DROPS_PER_PUMP) &&
           cv_router_pump_take(self->queues, &pump, &item)) {
        entry_t entry;
        if (!entry_for(self, s, item.report,
                       &entry)) { /* dropped for good: no restart queues it again */
            dropped++;
            if (!turn_failing(self) && !cv_router_pump_drop(self->queues, &pump, item, &err))
                fail_turn(self, err.msg);
            continue;
        }
        uint64_t seq = cv_router_pump_give(self->queues, &pump, item);
        if (!seq) {
            fail_turn(self, "out of memory giving a seq");
            break;
        }
        /* a delivery that cannot be packed now counts as sent: the ack
         * timeout sends it again */
        if (pack_entry(self, s->queue, &entry, seq, &items[n]))
            n++;
        session_sent(s, seq);
    }
    if (!cv_router_pump_end(self->queues, &pump, &err))
        fail_turn(self, err.msg);
    *packed = n;
    return pump.n;
}

/*  Acknowledgements reach the store in bulk, at most every
 *  SAVE_INTERVAL_MS: one row written a queue for many acks. Until then the
 *  store holds the queue as it was, sent rows included, so a crash in
 *  between only means those deliveries are sent again with their seqs. */
static void save_queues(cv_broker_t *self, bool now)
{
    int64_t time = zclock_mono();
    if (!now && time < self->next_save)
        return;
    self->next_save = time + SAVE_INTERVAL_MS;
    cv_error_t err = {0};
    if (!cv_router_save_all(self->queues, &err))
        fail_turn(self, err.msg);
}

static void pump(cv_broker_t *self, session_t *s)
{
    /* what waits for its sync is bounded in bytes: a fan-out to thousands
     * of sessions (gone or not) goes out over several turns, not all
     * packed at once; the session stays dirty for a later one */
    if (self->out_bytes >= OUT_BYTES_MAX)
        return;
    if (s->state == SESSION_PAUSED) {
        set_dirty(self, s, false); /* resend_overdue marks it when the pause ends */
        return;
    }
    size_t room = s->credit > in_flight(s) ? s->credit - in_flight(s) : 0;
    if (room > PUMP_MAX)
        room = PUMP_MAX;
    /* receipts not yet sent hold back deliveries: what one subscriber's
     * receipts can make the broker keep is bounded */
    if (s->receipts && cv_receipts_waiting(self->receipts, s) >= CV_RECEIPTS_WAITING)
        room = 0;
    if (s->publish_only || !session_queue(self, s) || room == 0) {
        set_dirty(self, s, room == 0 && !s->publish_only); /* nothing more until credit */
        return;
    }
    packed_t items[PUMP_MAX];
    self->pack.used = 0;
    if (in_flight(s) == 0)
        s->progress = zclock_mono(); /* the ack clock starts with the first in flight */
    size_t sent = 0,
           used = s->state == SESSION_RESENDING ? pump_resends(self, s, room, items, &sent) : 0;
    bool more = false;
    if (used < room && s->state == SESSION_LIVE) {
        size_t packed = 0;
        used += pump_new(self, s, room - used, items + sent, &packed, &more);
        sent += packed;
    }
    /* else the queue is empty: routing marks it again */
    set_dirty(self, s, used == room || s->state == SESSION_RESENDING || more);
    if (!sent)
        return;
    post_deliveries(self, s, items, sent);
    /* a seq past the saved acknowledgements plus the credit was sent on the
     * strength of acknowledgements not yet saved: they are saved in this
     * turn, before it leaves, so a delivery whose acknowledgement has had an
     * effect never comes back after a crash */
    cv_error_t err = {0};
    if (cv_queue_unsaved(s->queue) &&
        cv_queue_last_seq(s->queue) > cv_queue_saved_acked(s->queue) + s->credit &&
        !cv_router_save(self->queues, s->queue, &err))
        fail_turn(self, err.msg);
    self->stats.delivered += sent;
}

static void on_ack(cv_broker_t *self, session_t *s, const Caveat__Wire__DeliveryAck *ack)
{
    if (ack->has_credit && ack->credit)
        s->credit = ack->credit > MAX_CREDIT ? MAX_CREDIT : ack->credit;
    set_dirty(self, s, true);
    if (!ack->has_up_to)
        return;
    if (s->publish_only) {
        send_error(self, s->routing, E_BAD_ACK, "a send-only session has no deliveries");
        return;
    }
    cv_queue_t *q = session_queue(self, s);
    if (!q || ack->up_to > cv_queue_last_seq(q)) {
        send_error(self, s->routing, E_BAD_ACK, "acknowledges a seq never sent");
        return;
    }
    cv_router_ack(self->queues, q, ack->up_to);
    if (ack->up_to > s->acked)
        s->acked = ack->up_to;
    s->progress = zclock_mono();
    s->stalled = 0; /* it reads */
    session_acked(s, ack->up_to);
}

/*  The hash of the view the broker would send now for a delivery it did
 *  not send in this process (read back after a restart, and acknowledged
 *  before it was resent): views are deterministic, so under the same
 *  policy it is the one sent. false: the policy no longer releases it. */
static bool view_now(cv_broker_t *self, cv_queue_t *queue, const cv_sent_t *sent,
                     uint8_t hash[CV_VIEW_HASH_BYTES], const char **report_id)
{
    const char *agency = cv_queue_agency(queue), *feed = cv_queue_feed(queue);
    const Caveat__Report *report = decide_for(self, agency, feed, sent->item.report);
    if (!report) { /* feedback for the originator, or nothing now */
        cv_error_t err = {0};
        cv_feedback_row_t row;
        if (feedback_for(self, agency, feed, sent->item.report, &row, &err) <= 0)
            return false;
        char time[CV_TIMESTAMP_MAX];
        Caveat__Wire__FeedbackNote note = feedback_note(&row, time);
        feedback_hash(self, &note, hash);
        *report_id = row.report_id;
        return true;
    }
    size_t view = pack_view(self, report);
    *report_id = report->id;
    if (!view)
        return false;
    cv_audit_sha256(self->pack.view, view, hash);
    return true;
}

/*  A "delivered" leaf for every CV_RECORD_DELIVERIES_PER_LEAF deliveries
 *  whose acknowledgement the queue's save stores, in the same transaction
 *  (cv_router_set_saving), and a receipt to come for each if the session
 *  serving the queue asked. */
static bool record_deliveries(void *arg, cv_queue_t *queue, cv_error_t *err)
{
    cv_broker_t *self = arg;
    if (self->config.audit_off)
        return true; /* --audit-log off: no leaf, so no view to hash again */
    const char *agency = cv_queue_agency(queue), *feed = cv_queue_feed(queue);
    session_t *s = session_of_queue(self, agency, feed);
    cv_delivered_t leaf[CV_RECORD_DELIVERIES_PER_LEAF];
    uint8_t hashes[CV_RECORD_DELIVERIES_PER_LEAF][CV_VIEW_HASH_BYTES];
    /* ids decided again: view_now's last only lives until its next call */
    char ids[CV_RECORD_DELIVERIES_PER_LEAF][CV_REPORT_ID_MAX + 1];
    size_t acked = cv_queue_acked_count(queue), n = 0;
    for (size_t i = 0; i < acked; i++) {
        const cv_sent_t *sent = cv_queue_acked_at(queue, i);
        cv_delivered_t *d = &leaf[n];
        *d = (cv_delivered_t){sent->seq, sent->report_id, sent->viewed ? sent->view : NULL};
        const char *id = sent->report_id;
        if (!sent->viewed && view_now(self, queue, sent, hashes[n], &id))
            d->view = hashes[n];
        if (id != sent->report_id) { /* ids are at most CV_REPORT_ID_MAX: never cut */
            snprintf(ids[n], sizeof ids[n], "%s", id);
            d->report_id = ids[n];
        }
        if (++n < CV_RECORD_DELIVERIES_PER_LEAF && i + 1 < acked)
            continue;
        size_t position = 0;
        if (!cv_record_delivered(self->record, agency, feed, leaf, n, &position, err))
            return false;
        for (size_t k = 0; s && s->receipts && k < n; k++)
            cv_receipts_note(self->receipts, s, position, leaf[k].seq, leaf[k].report_id);
        n = 0;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/*  Approvals: an originator releases its handling-code-5 report.           */

static void approval_answer_free(approval_answer_t *a)
{
    zframe_destroy(&a->routing);
    free(a->report_id);
    free(a->to);
    for (size_t i = 0; i < a->n_recipients; i++)
        free(a->recipients[i]);
    free(a->recipients);
    free(a);
}

/*  Drops the ApprovalAcks waiting for the session with serial (0: every
 *  one). */
static void forget_approval_answers_of(cv_broker_t *self, uint64_t serial)
{
    zlistx_t *list = self->approval_answers;
    for (approval_answer_t *a = list ? zlistx_first(list) : NULL; a; a = zlistx_next(list))
        if (!serial || a->session == serial) {
            zlistx_detach_cur(list); /* the cursor stays valid for next */
            approval_answer_free(a);
        }
}

/*  The turn rolled back: nothing its approvals did was stored. */
static void approvals_unavailable(cv_broker_t *self)
{
    for (approval_answer_t *a = zlistx_first(self->approval_answers); a;
         a = zlistx_next(self->approval_answers)) {
        a->unavailable = true;
        for (size_t i = 0; i < a->n_recipients; i++)
            free(a->recipients[i]);
        a->n_recipients = 0;
    }
}

static approval_answer_t *approval_answer_new(cv_broker_t *self, const session_t *s,
                                              const char *report_id, const char *to)
{
    approval_answer_t *a = cv_xcalloc(1, sizeof *a);
    a->session = s->serial;
    a->routing = zframe_dup(s->routing);
    a->report_id = cv_xstrdup(report_id);
    a->to = cv_xstrdup(to);
    zlistx_add_end(self->approval_answers, a);
    return a;
}

static void approval_released_to(approval_answer_t *a, const char *agency)
{
    a->recipients = cv_xrealloc(a->recipients, (a->n_recipients + 1) * sizeof *a->recipients);
    a->recipients[a->n_recipients++] = cv_xstrdup(agency);
}

/*  Whether agency already has the report (rowid) or is to: routed to it
 *  when it was accepted, or released to it by an earlier approval. -1 on
 *  a store error. Nothing goes twice to one agency's queues. */
static int already_released(cv_broker_t *self, int64_t rowid, const Caveat__Report *report,
                            const char *agency, cv_error_t *err)
{
    int released =
        cv_approval_store_released(self->approvals, report->originator, report->id, agency, err);
    return released ? released : cv_approval_store_routed(self->approvals, rowid, agency, err);
}

/*  Decides the report again, with its approvals, for every candidate it
 *  has not gone to, and routes it to those now released, under one new
 *  rowid (cv_approval_store.h). The answer lists them. */
static bool release_approved(cv_broker_t *self, int64_t rowid, const Caveat__Report *report,
                             approval_answer_t *answer, cv_error_t *err)
{
    cv_approvals_t approvals;
    if (cv_approval_store_list(self->approvals, report->originator, report->id, &approvals, err) <
        0)
        return false;
    const int *candidates;
    int agencies = cv_policy_candidates(self->policy, report, self->candidates, &candidates);
    reserve((void **)&self->route_to, &self->route_to_cap, (size_t)agencies * sizeof(cv_queue_t *));
    size_t n = 0;
    for (int i = 0; i < agencies; i++) {
        const char *agency = cv_policy_agency(self->policy, candidates[i])->id;
        int released = already_released(self, rowid, report, agency, err);
        if (released < 0)
            return false;
        if (released ||
            !cv_policy_decide(self->policy, report, candidates[i], &approvals, self->decision))
            continue;
        const char *feed = cv_decision_feed(self->decision);
        cv_queue_t *q = cv_router_queue(self->queues, agency, feed ? feed : "", err);
        if (!q || !cv_approval_store_release(self->approvals, report->originator, report->id,
                                             agency, err))
            return false;
        self->route_to[n++] = q;
        approval_released_to(answer, agency);
        mark_dirty(self, agency, feed ? feed : "");
    }
    if (n == 0)
        return true;
    int64_t release = cv_approval_store_alias(self->approvals, rowid, err);
    int priority = report->has_priority ? (int)report->priority : 0;
    return release > 0 && cv_router_route(self->queues, release, priority, self->route_to, n, err);
}

/*  Why an approval is refused (its Error code and reason), or 0 with the
 *  report found. An id that names none of the sender's reports is answered
 *  the same whether or not another agency has a report of that id: ids are
 *  the originator's own, and the answer must not tell who has which. */
static uint32_t approval_refusal(cv_broker_t *self, const char *sender,
                                 const Caveat__Wire__Approval *approval, int64_t *rowid,
                                 const Caveat__Report **report, const char **reason)
{
    const char *id = approval->report_id ? approval->report_id : "";
    cv_error_t err = {0};
    int found = *id && strlen(id) <= CV_REPORT_ID_MAX
                    ? cv_approval_store_report(self->approvals, sender, id, rowid, &err)
                    : 0;
    if (found < 0)
        fail_turn(self, err.msg); /* answered REFUSED_UNAVAILABLE with the turn */
    *report = found > 0 ? report_at(self, *rowid) : NULL;
    if (found >= 0 && !*report && !turn_failing(self)) {
        *reason = "no such report of this agency";
        return E_BAD_REQUEST;
    }
    if (!cv_policy_names_recipient(self->policy, approval->to)) {
        *reason = "'to' names no agency and no agency type of the policy";
        return E_BAD_REQUEST;
    }
    if (*report && !cv_policy_needs_approval(self->policy, *report)) {
        *reason = "this report's handling code needs no approval";
        return E_BAD_REQUEST;
    }
    return 0;
}

/*  Records the approval, unless the report has APPROVALS_PER_REPORT
 *  already: 1, 0 over the limit, -1 on a store error. */
static int add_approval(cv_broker_t *self, const Caveat__Report *report, const char *to,
                        cv_error_t *err)
{
    cv_approvals_t approvals;
    int count =
        cv_approval_store_list(self->approvals, report->originator, report->id, &approvals, err);
    bool known = false;
    for (int i = 0; i < count; i++)
        known = known || strcmp(approvals.to[i], to) == 0;
    if (count < 0)
        return -1;
    if (!known && count >= APPROVALS_PER_REPORT)
        return 0;
    return cv_approval_store_add(self->approvals, report->originator, report->id, to, err) < 0 ? -1
                                                                                               : 1;
}

/*  An originator's approval: stored, the report routed to the agencies it
 *  releases, and the audit leaf, all in the turn's transaction; answered
 *  once that is on disk. Answered with an Error, and nothing changed, when
 *  refused. An approval already given is decided again: a reload may have
 *  added agencies of its type. */
static void on_approval(cv_broker_t *self, session_t *s, int agency, const char *sender,
                        const Caveat__Wire__Approval *approval)
{
    char reason[96];
    if (!rate_allows(&use_of(self, agency)->approvals, APPROVALS_PER_SECOND)) {
        self->stats.limited++;
        snprintf(reason, sizeof reason, "at most %d approvals a second; wait a second",
                 APPROVALS_PER_SECOND);
        send_error(self, s->routing, E_LIMIT, reason);
        return;
    }
    const Caveat__Report *report = NULL;
    const char *why = NULL;
    int64_t rowid = 0;
    uint32_t refused = approval_refusal(self, sender, approval, &rowid, &report, &why);
    if (refused) {
        send_error(self, s->routing, refused, why);
        cv_log_agency(self->log, sender, false, "approval from %s refused: %s", sender, why);
        return;
    }
    cv_error_t err = {0};
    int added = turn_failing(self) ? -1 : add_approval(self, report, approval->to, &err);
    if (added == 0) {
        snprintf(reason, sizeof reason, "a report may be approved to at most %d agencies or types",
                 APPROVALS_PER_REPORT);
        send_error(self, s->routing, E_LIMIT, reason);
        return;
    }
    /* from here it is answered: ApprovalAck, or REFUSED_UNAVAILABLE if the
     * turn rolls back */
    approval_answer_t *answer = approval_answer_new(self, s, approval->report_id, approval->to);
    if (turn_failing(self))
        return;
    if (added < 0 || !release_approved(self, rowid, report, answer, &err) ||
        !cv_record_approval(self->record, sender, report->id, approval->to,
                            (const char *const *)answer->recipients, answer->n_recipients, &err)) {
        fail_turn(self, err.msg);
        return;
    }
    cv_log_agency(self->log, sender, false, "approval from %s: %s released to %zu agencies", sender,
                  report->id, answer->n_recipients);
}

/* ------------------------------------------------------------------------ */
/*  Policy reload and administration.                                       */

/*  Ends the sessions of keys the policy no longer lists (Error REVOKED)
 *  and of screening feeds it no longer has (Error BAD_REQUEST): they get
 *  nothing more. */
static void revoke_removed(cv_broker_t *self)
{
    zlistx_t *revoked = zlistx_new(); /* not deleted while the table is walked */
    for (session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions)) {
        int a = cv_policy_agency_find(self->policy, s->agency);
        if (a < 0 || !cv_agency_has_key(cv_policy_agency(self->policy, a), s->key) ||
            (*s->feed && !cv_policy_has_feed(self->policy, s->feed)))
            zlistx_add_end(revoked, s);
        else
            set_dirty(self, s, true); /* the new policy may send more, or less */
    }
    for (session_t *s = zlistx_first(revoked); s; s = zlistx_next(revoked)) {
        int a = cv_policy_agency_find(self->policy, s->agency);
        bool key_gone = a < 0 || !cv_agency_has_key(cv_policy_agency(self->policy, a), s->key);
        send_error(self, s->routing, key_gone ? E_REVOKED : E_BAD_REQUEST,
                   key_gone ? "this agency's key is no longer in the policy"
                            : "no screening entry sends to that feed any more");
        cv_log_info(self->log, "revoked: %s%s%s", s->agency, key_gone ? "" : " feed ",
                    key_gone ? "" : s->feed);
        self->stats.revoked++;
        end_session(self, s); /* nothing more, not even what waits for a sync */
    }
    zlistx_destroy(&revoked);
}

/*  Loads the policy file again; on any error the old policy stays. */
static bool reload(cv_broker_t *self, cv_error_t *err)
{
    cv_policy_t *fresh = load_policy(self, err);
    cv_error_t recorded = {0};
    if (!fresh) {
        self->stats.reload_failures++;
        cv_log_warning(self->log, "reload refused, the old policy stays: %s", err->msg);
        if (!cv_record_policy_refused(self->record, err->msg, &recorded))
            fail_turn(self, recorded.msg);
        return false;
    }
    if (!cv_record_policy(self->record, fresh, &recorded))
        fail_turn(self, recorded.msg);
    cv_policy_destroy(&self->policy);
    self->policy = fresh;
    self->stats.reloads++;
    cv_log_info(self->log, "policy %s version %lld loaded (%s)", cv_policy_protocol(fresh),
                (long long)cv_policy_version(fresh), cv_policy_hash(fresh));
    forget_held_deliveries(self);
    revoke_removed(self);
    return true;
}

enum { COUNTS = 29 };

static size_t counts_of(cv_broker_t *self, cv_count_t out[COUNTS])
{
    size_t n = 0;
#define COUNT(name, counter, help, value)                                                          \
    out[n++] = (cv_count_t){name, counter, help, (uint64_t)(value)}
    COUNT("sessions", false, "delivery sessions open", zhashx_size(self->serving));
    COUNT("senders", false, "send-only sessions open", zlistx_size(self->senders));
    COUNT("queued", false, "deliveries waiting in queues", cv_router_queued(self->queues));
    COUNT("published", true, "reports accepted and stored", self->stats.published);
    COUNT("refused", true, "reports refused", self->stats.refused);
    COUNT("delivered", true, "deliveries sent", self->stats.delivered);
    COUNT("resent", true, "deliveries sent again after the ack timeout", self->stats.resent);
    COUNT("purged", true, "reports purged by retention", self->stats.purged);
    COUNT("dropped", true, "messages dropped: unknown keys, sends that failed",
          self->stats.dropped);
    COUNT("revoked", true, "sessions ended by a reload", self->stats.revoked);
    COUNT("limited", true, "frames refused over a limit", self->stats.limited);
    COUNT("foreign", true, "frames on a session under another key", self->stats.foreign);
    COUNT("quarantined", true, "stored reports set aside as unreadable", self->stats.quarantined);
    COUNT("refused_no_space", true, "reports refused for a short disk",
          self->stats.refused_no_space);
    COUNT("refusals_counted", true,
          "refused reports the audit log counts in one leaf a Publish (over an agency's rate)",
          self->stats.refusals_counted);
    COUNT("checksum_loop_us", true, "microseconds the loop spent on stored reports' checksums",
          cv_hasher_loop_ns(self->hasher) / 1000);
    COUNT("view_hash_loop_us", true, "microseconds the loop spent on the hashes of views sent",
          cv_hasher_loop_ns(self->view_hasher) / 1000);
    COUNT("out_bytes_peak", false, "most bytes of deliveries waiting for their sync at once",
          self->out_bytes_peak);
    COUNT("disk_short", false, "1 while the disk is short: publishes refused",
          cv_space_short(self->space));
    COUNT("disk_free", false, "bytes free on the store's disk, the reserve not counted",
          cv_space_free(self->space));
    COUNT("log_suppressed", true, "log lines not written (rate limit)",
          cv_log_suppressed(self->log));
    COUNT("zap_admitted", true, "handshakes admitted", cv_zap_admitted(self->zap));
    COUNT("zap_refused", true, "handshakes refused", cv_zap_refused(self->zap));
    COUNT("handshakes_pending", false, "connections in their handshake",
          cv_guard_pending(self->guard));
    COUNT("handshakes_evicted", true, "connections ended in their handshake (too many pending)",
          cv_guard_evicted(self->guard));
    COUNT("handshakes_failed", true, "handshakes that failed",
          cv_guard_handshakes_failed(self->guard));
    COUNT("reloads", true, "policy reloads", self->stats.reloads);
    COUNT("reload_failures", true, "policy reloads refused", self->stats.reload_failures);
    COUNT("policy_version", false, "version of the policy in force",
          cv_policy_version(self->policy));
#undef COUNT
    assert(n == COUNTS);
    return n;
}

static cv_admin_policy_t policy_named(const cv_broker_t *self)
{
    return (cv_admin_policy_t){cv_policy_protocol(self->policy), cv_policy_hash(self->policy)};
}

static char *stats_json(cv_broker_t *self)
{
    cv_count_t counts[COUNTS];
    size_t n = counts_of(self, counts);
    return cv_admin_stats_json(counts, n, policy_named(self));
}

static char *metrics_text(cv_broker_t *self)
{
    cv_count_t counts[COUNTS];
    size_t n = counts_of(self, counts);
    return cv_admin_metrics_text(counts, n, policy_named(self));
}

/*  Every second: the monitor's snapshot, and whether the broker is
 *  healthy (its loop turns, since it publishes this; its store works). */
static void publish_monitor(cv_broker_t *self, int64_t *next)
{
    int64_t now = zclock_mono();
    if (!self->monitor || now < *next)
        return;
    *next = now + 1000;
    char *metrics = metrics_text(self), why[128];
    const char *unhealthy = NULL;
    /* a store that fails now and then (a turn that writes fails, the next
     * that writes nothing succeeds) is failing all the same */
    int64_t since = self->last_failure ? now - self->last_failure : -1;
    if (self->queues_lost || (since >= 0 && since < UNHEALTHY_FOR_MS)) {
        snprintf(why, sizeof why, "the store is failing: a turn rolled back %lld ms ago",
                 (long long)since);
        unhealthy = why;
    }
    cv_monitor_publish(self->monitor, metrics, unhealthy);
    free(metrics);
}

/*  Who is connected: every session, oldest first, as a JSON array. */
static char *sessions_json(cv_broker_t *self)
{
    zlistx_t *all = zlistx_new();
    for (session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        zlistx_add_end(all, s);
    zlistx_set_comparator(all, session_compare_serial);
    zlistx_sort(all);
    size_t n = 0;
    cv_admin_session_t *views = cv_xcalloc(zlistx_size(all) + 1, sizeof *views);
    for (session_t *s = zlistx_first(all); s; s = zlistx_next(all))
        views[n++] = (cv_admin_session_t){
            .agency = s->agency,
            .feed = s->feed,
            .peer = s->peer,
            .send_only = s->publish_only,
            .since = s->since,
            .in_flight = in_flight(s),
            .queued = s->publish_only || !s->queue ? 0 : cv_queue_size(s->queue),
        };
    zlistx_destroy(&all);
    char *text = cv_admin_sessions_json(views, n);
    free(views);
    return text;
}

/*  The reports set aside as unreadable, as a JSON array; NULL on error. */
static char *quarantined_json(cv_broker_t *self)
{
    cv_error_t err = {0};
    char *text = cv_admin_quarantined_json(self->store, &err);
    if (!text)
        cv_log_error(self->log, "store: %s", err.msg);
    return text;
}

static zmsg_t *admin_reply(const zframe_t *routing, bool ok, const char *text)
{
    Caveat__Wire__AdminReply reply = CAVEAT__WIRE__ADMIN_REPLY__INIT;
    reply.has_ok = true;
    reply.ok = ok;
    reply.text = (char *)text;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_ADMIN_REPLY;
    frame.admin_reply = &reply;
    return frame_message(routing, &frame);
}

static void send_admin_reply(cv_broker_t *self, const zframe_t *routing, bool ok, const char *text)
{
    zmsg_t *msg = admin_reply(routing, ok, text);
    send_now(self, &msg);
}

static void hold(cv_broker_t *self, held_t *h);

/*  A reply that says something was done: it leaves once the commit that
 *  did it is on disk, as a PublishAck does. */
static void send_admin_reply_synced(cv_broker_t *self, const zframe_t *routing, bool ok,
                                    const char *text)
{
    held_t *h = cv_xcalloc(1, sizeof *h);
    h->msg = admin_reply(routing, ok, text);
    hold(self, h);
}

/*  Retention: for every category in the store, the policy's period (or
 *  its default); reports created longer ago than that are purged, and each
 *  purge is recorded in the store. The reply lists them (cv_admin). */

/*  Whether the wall clock can be trusted to purge, which cannot be
 *  undone. Retention remembers the time it last trusted (in the store's
 *  meta table, and with the monotonic clock beside it in this process).
 *  In this process the wall clock must have moved as the monotonic one
 *  did, give or take CLOCK_JUMP_SLACK; after a restart it must be no
 *  earlier than that time and at most CLOCK_DOWNTIME_MAX later. Otherwise
 *  retention stops, saying why, until an administrator has checked the
 *  clock and says so (caveat admin purge --trust-clock): a clock that
 *  jumped is not believed again just because reports keep arriving. */
static bool clock_trusted(cv_broker_t *self, int64_t now, bool trust, cv_error_t *err)
{
    if (trust) {
        self->clock.suspect = false;
        return true;
    }
    int64_t seen = self->clock.wall, low, high;
    if (self->clock.known) {
        seen += (zclock_mono() - self->clock.mono) / 1000;
        low = seen - CLOCK_JUMP_SLACK;
        high = seen + CLOCK_JUMP_SLACK;
    } else {
        int found = cv_store_meta_get(self->store, CLOCK_KEY, &seen, err);
        if (found <= 0)
            return found == 0; /* a new store: nothing to hold the clock to */
        low = seen - CLOCK_JUMP_SLACK;
        high = seen + CLOCK_DOWNTIME_MAX;
    }
    if (!self->clock.suspect && now >= low && now <= high)
        return true;
    self->clock.suspect = true;
    char said[CV_TIMESTAMP_MAX], expected[CV_TIMESTAMP_MAX];
    cv_error_set(err, NULL, 0, 0,
                 "the clock says %s, %lld s from the %s retention expects; retention stops until "
                 "the clock is checked and 'caveat admin purge --trust-clock' is run",
                 cv_timestamp_format(now, said), (long long)(now - seen),
                 cv_timestamp_format(seen, expected));
    return false;
}

/*  The clock retention trusts now: remembered here and in the store (in
 *  the purge's transaction). */
static bool trust_clock(cv_broker_t *self, int64_t now, cv_error_t *err)
{
    self->clock.wall = now;
    self->clock.mono = zclock_mono();
    self->clock.known = true;
    return cv_store_meta_set(self->store, CLOCK_KEY, now, err);
}

/*  list: a cv_admin_purged_t the purged reports are added to, or NULL. */
/*  What a purge does with each report it removes: lists it for the reply
 *  (when asked), and records it in the audit log (unless a dry run). */
typedef struct {
    cv_broker_t *broker;
    cv_admin_purged_t *list;
    const char *rule;
    bool dry_run;
    cv_error_t err; /* the first failure to record one */
} purge_each_t;

static void on_purged(void *arg, const char *originator, const char *id, const char *category,
                      int64_t created)
{
    purge_each_t *each = arg;
    if (each->list)
        cv_admin_purged_add(each->list, id, category, created);
    if (!each->dry_run && !each->err.msg[0])
        cv_record_purged(each->broker->record, originator, id, category, each->rule, &each->err);
}

/*  The reports whose review said to keep them until now: total and
 *  these, or -1. */
static int purge_reviewed(cv_broker_t *self, int64_t now, bool dry_run, cv_admin_purged_t *list,
                          int total, cv_error_t *err)
{
    purge_each_t each = {
        .broker = self, .list = list, .dry_run = dry_run, .rule = CV_STORE_REVIEW_RULE};
    int purged = cv_store_purge_reviewed(self->store, now, dry_run, on_purged, &each, err);
    if (each.err.msg[0]) {
        *err = each.err;
        purged = -1;
    }
    return purged < 0 ? -1 : total + purged;
}

static int purge_categories(cv_broker_t *self, const cv_purge_how_t *how, cv_admin_purged_t *list,
                            cv_error_t *err)
{
    bool dry_run = how->dry_run;
    int64_t now = how->at ? how->at : (int64_t)time(NULL), period;
    /* a time given is a question about that clock, not about this one */
    if (!how->at &&
        (!clock_trusted(self, now, how->trust, err) || (!dry_run && !trust_clock(self, now, err))))
        return -1;
    char **categories = NULL;
    int n = cv_store_categories(self->store, &categories, err), total = n < 0 ? -1 : 0;
    for (int i = 0; i < n; i++) {
        const char *rule;
        int purged = 0;
        purge_each_t each = {.broker = self, .list = list, .dry_run = dry_run};
        if (total >= 0 && cv_policy_retention(self->policy, categories[i], &period, &rule)) {
            each.rule = rule;
            purged = cv_store_purge_reports(self->store, categories[i], now - period, rule, dry_run,
                                            on_purged, &each, err);
        }
        if (each.err.msg[0]) { /* not recorded: nothing may be purged */
            *err = each.err;
            purged = -1;
        }
        total = purged < 0 || total < 0 ? -1 : total + purged;
        free(categories[i]);
    }
    free(categories);
    return total < 0 ? -1 : purge_reviewed(self, now, dry_run, list, total, err);
}

/*  Reports were removed from the store in the open transaction (by
 *  retention or a disposal): the feedback on them goes too. */
static bool forget_removed(cv_broker_t *self, cv_error_t *err)
{
    return cv_feedback_forget_orphans(self->feedback, err) >= 0;
}

/*  ...and that committed: n more purged, and nothing removed is sent
 *  again, not even from memory; the queues are read back without it. */
static void removed(cv_broker_t *self, int n)
{
    self->stats.purged += (uint64_t)n;
    if (n == 0)
        return;
    cv_cache_forget(self->cache);
    reload_queues(self);
}

/*  Saves every queue's acknowledgements now, in a transaction of their
 *  own; if that fails the queues are read back as the store has them. */
static void commit_saves(cv_broker_t *self, bool checkpoint)
{
    cv_error_t err = {0};
    if (!cv_store_begin(self->store, &err))
        return;
    cv_views_finish(self->views); /* the last turn's, for the leaves the save writes */
    save_queues(self, true);
    if (!turn_failing(self) && !cv_record_flush(self->record, checkpoint, &err))
        fail_turn(self, err.msg);
    if (turn_failing(self) || !cv_store_commit(self->store, &err)) {
        cv_record_discard(self->record);
        cv_store_rollback(self->store);
        cv_receipts_settle(self->receipts, false);
        self->turn_error.msg[0] = '\0';
        reload_queues(self);
    } else
        cv_receipts_settle(self->receipts, true);
}

/*  One transaction: a purge is all or nothing. */
static int purge(cv_broker_t *self, const cv_purge_how_t *how, cv_admin_purged_t *list,
                 cv_error_t *err)
{
    bool dry_run = how->dry_run;
    if (!dry_run)
        commit_saves(self, false); /* the queues are read back after a purge */
    if (!cv_store_begin(self->store, err))
        return -1;
    int total = purge_categories(self, how, list, err);
    if (total > 0 && !dry_run && !forget_removed(self, err))
        total = -1;
    if (!end_recorded(self, total >= 0 && !dry_run, err))
        return dry_run && total >= 0 ? total : -1;
    if (total > 0)
        cv_log_info(self->log, "retention: purged %d reports", total);
    removed(self, total);
    return total;
}

static void run_purge(cv_broker_t *self, const zframe_t *routing,
                      const Caveat__Wire__AdminRequest *request)
{
    cv_purge_how_t how;
    if (!cv_admin_purge_args((const char *const *)request->args, request->n_args, &how)) {
        send_admin_reply(self, routing, false, cv_admin_purge_usage);
        return;
    }
    cv_admin_purged_t *list = cv_admin_purged_new();
    cv_error_t err = {0};
    int total = purge(self, &how, list, &err);
    char *reply = cv_admin_purged_reply(&list, how.dry_run, total, err.msg);
    if (total > 0 && !how.dry_run)
        send_admin_reply_synced(self, routing, true, reply);
    else
        send_admin_reply(self, routing, total >= 0, reply);
    free(reply);
}

/*  Review decisions (MOPI): an administrator keeps one report past its
 *  category's period, or shortens it, or disposes of it now. The review,
 *  its leaf and a disposal's purge commit together, and the reply leaves
 *  once that commit is on disk. */
typedef struct {
    cv_broker_t *broker;
    const cv_review_t *review;
    cv_error_t err; /* the first failure to record it */
} review_each_t;

static void on_reviewed(void *arg, const char *originator, const char *id, const char *category,
                        int64_t created)
{
    (void)created;
    review_each_t *each = arg;
    cv_record_t *record = each->broker->record;
    const cv_review_t *review = each->review;
    if (cv_record_review(record, originator, id, review, &each->err) && review->dispose)
        cv_record_purged(record, originator, id, category, CV_STORE_REVIEW_RULE, &each->err);
}

/*  1 reviewed, 0 no such report, 2 ambiguous id, -1 an error (err). */
static int review(cv_broker_t *self, const cv_review_args_t *args, const cv_review_t *decision,
                  cv_error_t *err)
{
    if (decision->dispose)
        commit_saves(self, false); /* the queues are read back after a disposal */
    if (!cv_store_begin(self->store, err))
        return -1;
    review_each_t each = {.broker = self, .review = decision};
    int found =
        cv_store_review(self->store, args->id, args->originator, decision, on_reviewed, &each, err);
    if (found == 1 && each.err.msg[0]) {
        *err = each.err;
        found = -1;
    }
    if (found == 1 && decision->dispose && !forget_removed(self, err))
        found = -1;
    if (!end_recorded(self, found == 1, err))
        return found == 1 ? -1 : found;
    if (decision->dispose)
        removed(self, 1);
    return 1;
}

static void send_admin_reply_synced(cv_broker_t *self, const zframe_t *routing, bool ok,
                                    const char *text);

static void run_review(cv_broker_t *self, const deferred_t *d)
{
    const Caveat__Wire__AdminRequest *request = d->request;
    int64_t now = (int64_t)time(NULL);
    cv_review_args_t args;
    const char *why = NULL;
    if (!cv_admin_review_args((const char *const *)request->args, request->n_args, now, &args,
                              &why)) {
        send_admin_reply(self, d->routing, false, why);
        return;
    }
    cv_review_t decision = {.retain_until = args.retain_until,
                            .dispose = args.dispose,
                            .reason = args.reason,
                            .reviewer = d->admin,
                            .decided = now};
    cv_error_t err = {0};
    int found = review(self, &args, &decision, &err);
    char *text = cv_admin_review_reply(&args, found, err.msg);
    if (found == 1)
        send_admin_reply_synced(self, d->routing, true, text);
    else
        send_admin_reply(self, d->routing, false, text);
    free(text);
}

static void run_all_deferred(cv_broker_t *self)
{
    deferred_t *d;
    while ((d = zlistx_detach(self->deferred, NULL))) {
        if (strcmp(d->request->command, "review") == 0)
            run_review(self, d);
        else
            run_purge(self, d->routing, d->request);
        zframe_destroy(&d->routing);
        caveat__wire__admin_request__free_unpacked(d->request, NULL);
        free(d);
    }
}

/*  Keeps a copy of the request (the frame it came in is freed); false
 *  when the copy does not unpack. */
static bool defer(cv_broker_t *self, const zframe_t *routing, const char *admin,
                  const Caveat__Wire__AdminRequest *request)
{
    size_t len = caveat__wire__admin_request__get_packed_size(request);
    uint8_t *buf = cv_xmalloc(len);
    caveat__wire__admin_request__pack(request, buf);
    Caveat__Wire__AdminRequest *copy = caveat__wire__admin_request__unpack(NULL, len, buf);
    free(buf);
    if (!copy)
        return false;
    deferred_t *d = cv_xcalloc(1, sizeof *d);
    d->routing = zframe_dup((zframe_t *)routing);
    d->request = copy;
    snprintf(d->admin, sizeof d->admin, "%s", admin);
    zlistx_add_end(self->deferred, d);
    return true;
}

/* ------------------------------------------------------------------------ */
/*  Backup: in its own thread (cv_backup); the loop only starts it, hears  */
/*  its end and answers.                                                    */

/*  A backup holds the WAL from starting again at its beginning (its
 *  snapshot is in it): on a short disk the space left is for deliveries,
 *  not for a WAL growing behind a backup. */
#define SHORT_DISK_STOPS_BACKUPS                                                                   \
    "the store's disk is short: no backup until there is room again (a backup holds the WAL "      \
    "from being reused)"

static void start_backup(cv_broker_t *self, const zframe_t *routing,
                         const uint8_t key[CV_KEY_BYTES], const Caveat__Wire__AdminRequest *request)
{
    char text[4096], db_path[4200];
    if (request->n_args != 1) {
        send_admin_reply(self, routing, false, "backup needs one argument: a new directory");
        return;
    }
    if (self->backup.run) {
        snprintf(text, sizeof text, "a backup is already running (to %s); ask again once it ends",
                 cv_backup_dir(self->backup.run));
        send_admin_reply(self, routing, false, text);
        return;
    }
    if (cv_space_short(self->space)) {
        send_admin_reply(self, routing, false, SHORT_DISK_STOPS_BACKUPS);
        return;
    }
    snprintf(db_path, sizeof db_path, "%s/caveat.db", self->config.data_dir);
    /* a copy on the store's disk must not take what the reserve counts on */
    self->backup.run = cv_backup_new(db_path, request->args[0], self->pseudonym_key,
                                     cv_space_resume_at(self->space), text, sizeof text);
    if (!self->backup.run) {
        cv_log_info(self->log, "backup: %s", text);
        send_admin_reply(self, routing, false, text);
        return;
    }
    self->backup.routing = zframe_dup((zframe_t *)routing);
    memcpy(self->backup.key, key, CV_KEY_BYTES);
    if (self->poller)
        zpoller_add(self->poller, cv_backup_socket(self->backup.run));
    cv_log_info(self->log, "backup: to %s, in the background", request->args[0]);
}

/*  Ends the backup (stopping it if it runs: its thread removes what it
 *  wrote) and answers the session that asked, when it is still there
 *  under the same key: a routing id alone may have been reused. */
static void end_backup(cv_broker_t *self, bool ok, const char *text)
{
    assert(self->backup.run);
    if (self->poller)
        zpoller_remove(self->poller, cv_backup_socket(self->backup.run));
    cv_backup_destroy(&self->backup.run); /* a stop waits for one step of the copy at most */
    cv_log_info(self->log, "backup: %s", text);
    session_t *s = session_of(self, self->backup.routing);
    if (s && sodium_memcmp(s->key, self->backup.key, CV_KEY_BYTES) == 0)
        send_admin_reply(self, self->backup.routing, ok, text);
    else
        cv_log_info(self->log, "backup: the administrator who asked has gone: no reply");
    zframe_destroy(&self->backup.routing);
    sodium_memzero(self->backup.key, CV_KEY_BYTES);
}

/*  A backup that ended is answered. */
static void reap_backup(cv_broker_t *self)
{
    char text[CV_BACKUP_TEXT];
    bool ok = false;
    if (self->backup.run && cv_backup_ended(self->backup.run, &ok, text, sizeof text))
        end_backup(self, ok, text);
}

/*  Stops a running backup, saying why. */
static void stop_backup(cv_broker_t *self, const char *why)
{
    reap_backup(self); /* it may have ended already */
    if (!self->backup.run)
        return;
    char text[CV_BACKUP_TEXT];
    snprintf(text, sizeof text, "%s: backup stopped, its copy removed: %s",
             cv_backup_dir(self->backup.run), why);
    end_backup(self, false, text);
}

/*  Every time round the loop: a backup that ended is answered, and one
 *  that runs is stopped when the disk goes short. While a backup runs the
 *  disk is looked at every BACKUP_LOOK_MS (a statvfs), idle or not, and
 *  not only every 100 ms of turns: the WAL grows behind it. */
static void watch_backup(cv_broker_t *self)
{
    reap_backup(self);
    if (!self->backup.run)
        return;
    int64_t now = zclock_mono();
    if (now >= self->backup.next_look) {
        self->backup.next_look = now + BACKUP_LOOK_MS;
        if (cv_space_check(self->space, true))
            disk_changed(self);
    }
    if (cv_space_short(self->space))
        stop_backup(self, SHORT_DISK_STOPS_BACKUPS);
}

/*  An administrator's action that changes something (reload, backup,
 *  purge) goes into the audit log as it is asked for; ok says whether it
 *  was taken (a reload's outcome; a backup's and a purge's come later, in
 *  the reply and the broker's log). */
static void record_admin(cv_broker_t *self, const char *agency, const char *action, bool ok)
{
    cv_error_t err = {0};
    if (!cv_record_admin(self->record, agency, action, ok, &err))
        fail_turn(self, err.msg);
}

static void on_admin(cv_broker_t *self, const zframe_t *routing, int agency,
                     const uint8_t key[CV_KEY_BYTES], const Caveat__Wire__AdminRequest *request)
{
    if (!cv_policy_agency(self->policy, agency)->admin) {
        send_error(self, routing, E_FORBIDDEN, "not an administrator");
        return;
    }
    const char *command = request->command ? request->command : "";
    char admin[256]; /* a reload frees the policy that names it */
    snprintf(admin, sizeof admin, "%s", cv_policy_agency(self->policy, agency)->id);
    if (strcmp(command, "stats") == 0) {
        char *text = stats_json(self);
        send_admin_reply(self, routing, text != NULL, text);
        free(text);
    } else if (strcmp(command, "reload") == 0) {
        cv_error_t err = {0};
        bool ok = reload(self, &err);
        record_admin(self, admin, command, ok);
        send_admin_reply(self, routing, ok, ok ? "reloaded" : err.msg);
    } else if (strcmp(command, "sessions") == 0) {
        char *text = sessions_json(self);
        send_admin_reply(self, routing, true, text);
        free(text);
    } else if (strcmp(command, "quarantined") == 0) {
        char *text = quarantined_json(self);
        send_admin_reply(self, routing, text != NULL, text ? text : "the store cannot list them");
        free(text);
    } else if (strcmp(command, "backup") == 0) {
        record_admin(self, admin, command, true);
        start_backup(self, routing, key, request);
    } else if (strcmp(command, "purge") == 0 || strcmp(command, "review") == 0) {
        bool taken = defer(self, routing, admin, request);
        record_admin(self, admin, command, taken);
        if (!taken)
            send_error(self, routing, E_BAD_REQUEST, "an admin request that does not read back");
    } else {
        send_error(self, routing, E_BAD_REQUEST, "unknown admin command");
    }
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

/*  An Error to a connection that has no session: at most
 *  ERRORS_PER_SECOND a second to each agency, so that frames without a
 *  session cannot make the broker queue answers without bound. */
/*  The agency's (by index) use, kept across reloads (an index may then be
 *  another agency's: these are only limits). */
static agency_use_t *use_of(cv_broker_t *self, int agency)
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
    agency_use_t *use = use_of(self, agency);
    if (use->turn != self->turns) {
        use->turn = self->turns;
        use->frames = 0;
    }
    return ++use->frames <= FRAMES_PER_AGENCY;
}

static void send_error_limited(cv_broker_t *self, const zframe_t *routing, int agency,
                               uint32_t code, const char *reason)
{
    if (rate_allows(&use_of(self, agency)->errors, ERRORS_PER_SECOND))
        send_error(self, routing, code, reason);
    else
        self->stats.limited++;
}

/*  The connection's session, if it is this key's. A session found by
 *  routing id under another key means the connection behind that routing
 *  id changed: that session ends here, and nothing of it is sent on. */
static session_t *session_of_key(cv_broker_t *self, const zframe_t *routing,
                                 const uint8_t key[CV_KEY_BYTES])
{
    session_t *s = session_of(self, routing);
    if (s && sodium_memcmp(s->key, key, CV_KEY_BYTES) != 0) {
        self->stats.foreign++;
        cv_log_info(self->log, "session of %s ended: its routing id came with another key",
                    s->agency);
        end_session(self, s);
        s = NULL;
    }
    return s;
}

/* ------------------------------------------------------------------------ */
/*  Feedback: a recipient's word on a report, for its originator alone.     */

/*  What a Feedback may say, whoever sends it: why not, or NULL. */
static const char *feedback_form_refusal(const Caveat__Wire__Feedback *feedback)
{
    cv_error_t err = {0};
    const char *why = cv_feedback_form_refusal(feedback->value, feedback->text);
    if (why)
        return why;
    if (!cv_policy_report_id_ok(feedback->report_id, &err))
        return "feedback needs the id of a report";
    if (feedback->originator && !cv_policy_report_id_ok(feedback->originator, &err))
        return "feedback names no agency as the originator";
    return NULL;
}

/*  The report a Feedback names, among those delivered to the sender. */
typedef struct {
    cv_broker_t *broker;
    const char *agency; /* the sender's */
    int64_t report;     /* the first found, 0: none */
    char *originator;   /* its originator */
    int reports;        /* how many different reports */
    int64_t last;       /* the last counted */
} delivered_t;

/*  A route of the report to one of the sender's queues: it was delivered
 *  there when that queue has given it a seq (it no longer waits). Routes
 *  come in rowid order, so a report delivered on two queues (direct and a
 *  feed) comes twice in a row. */
static void on_routed_to(void *arg, int64_t report, const char *originator, int priority,
                         const char *feed)
{
    delivered_t *d = arg;
    cv_queue_t *q = cv_router_find(d->broker->queues, d->agency, feed);
    if (!q || cv_queue_waits(q, (cv_routed_t){report, priority}) || report == d->last)
        return;
    d->last = report;
    if (d->reports++ == 0) {
        d->report = report;
        d->originator = cv_xstrdup(originator);
    }
}

/*  A FeedbackAck to routing: stored, or not (why). */
static zmsg_t *feedback_ack(const zframe_t *routing, const char *report_id, const char *not_stored)
{
    Caveat__Wire__FeedbackAck ack = CAVEAT__WIRE__FEEDBACK_ACK__INIT;
    ack.report_id = (char *)report_id;
    ack.has_status = true;
    ack.status = not_stored ? CAVEAT__WIRE__STATUS__REFUSED_UNAVAILABLE : CAVEAT__WIRE__STATUS__OK;
    ack.reason = (char *)not_stored;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_FEEDBACK_ACK;
    frame.feedback_ack = &ack;
    return frame_message(routing, &frame);
}

/*  Nothing is stored, through no fault of the sender's: it may send again. */
static void feedback_unavailable(cv_broker_t *self, const session_t *s, const char *report_id,
                                 const char *why)
{
    zmsg_t *msg = feedback_ack(s->routing, report_id, why);
    send_now(self, &msg);
}

/*  Stores the feedback, queues it for the originator's direct queue and
 *  records it, all in the turn's transaction; its FeedbackAck waits for
 *  the commit. */
static void store_feedback(cv_broker_t *self, const session_t *s, const char *sender,
                           const Caveat__Wire__Feedback *feedback, const delivered_t *d)
{
    cv_error_t err = {0};
    cv_feedback_row_t row = {.report = d->report,
                             .from = sender,
                             .value = feedback->value,
                             .text = feedback->text,
                             .time = (int64_t)zclock_time()};
    int64_t rowid = cv_feedback_put(self->feedback, &row, &err);
    cv_queue_t *q = rowid ? cv_router_queue(self->queues, d->originator, "", &err) : NULL;
    if (!q || !cv_router_route(self->queues, rowid, 0, &q, 1, &err) ||
        !cv_record_feedback(self->record, feedback->report_id, d->originator, sender,
                            feedback->value, &err))
        fail_turn(self, err.msg);
    mark_dirty(self, d->originator, "");
    pending_feedback_t *p = cv_xcalloc(1, sizeof *p);
    *p = (pending_feedback_t){s->serial, zframe_dup(s->routing), cv_xstrdup(feedback->report_id),
                              false};
    zlistx_add_end(self->pending_feedback, p);
    cv_log_agency(self->log, sender, false, "feedback from %s on %s of %s: %s", sender,
                  feedback->report_id, d->originator, feedback->value);
}

/*  A Feedback from the agency of session s. Refused, with nothing stored:
 *  over the agency's rate (LIMIT), a bad form (BAD_REQUEST), a report not
 *  delivered to the agency, whether or not one of that id exists
 *  (FORBIDDEN, in the same words), too much feedback on one report
 *  (LIMIT). */
static void on_feedback(cv_broker_t *self, const session_t *s, int agency, const char *sender,
                        const Caveat__Wire__Feedback *feedback)
{
    if (!rate_allows(&use_of(self, agency)->feedback, FEEDBACK_PER_SECOND)) {
        self->stats.limited++;
        send_error_limited(self, s->routing, agency, E_LIMIT,
                           "more feedback a second than the broker takes from one agency");
        return;
    }
    const char *why = feedback_form_refusal(feedback);
    if (why) {
        send_error(self, s->routing, E_BAD_REQUEST, why);
        return;
    }
    if (cv_space_short(self->space)) { /* as a publish is: deliveries go first */
        feedback_unavailable(self, s, feedback->report_id,
                             "the broker's disk is full; retry later");
        return;
    }
    cv_error_t err = {0};
    delivered_t d = {self, sender, 0, NULL, 0, 0};
    int routes = cv_store_routed_to(self->store, feedback->report_id, feedback->originator, sender,
                                    on_routed_to, &d, &err);
    int given = d.reports == 1 ? cv_feedback_count(self->feedback, d.report, sender, &err) : 0;
    if (routes < 0 || given < 0) {
        cv_log_error(self->log, "feedback from %s: %s", sender, err.msg);
        feedback_unavailable(self, s, feedback->report_id, "the store could not be read; retry");
    } else if (d.reports == 0) {
        send_error(self, s->routing, E_FORBIDDEN, "no report of that id was delivered to you");
    } else if (d.reports > 1) {
        send_error(self, s->routing, E_BAD_REQUEST,
                   "reports of different originators have that id: name the originator");
    } else if (given >= FEEDBACK_PER_REPORT) {
        send_error(self, s->routing, E_LIMIT, "no more feedback on this report is taken from you");
    } else {
        store_feedback(self, s, sender, feedback, &d);
    }
    free(d.originator);
}

static void dispatch(cv_broker_t *self, const zframe_t *routing, int agency,
                     const uint8_t key[CV_KEY_BYTES], Caveat__Wire__Frame *frame)
{
    session_t *s = session_of_key(self, routing, key);
    if (frame->body_case == CAVEAT__WIRE__FRAME__BODY_HELLO) {
        on_hello(self, routing, agency, key, s, frame->hello);
        return;
    }
    if (frame->body_case == CAVEAT__WIRE__FRAME__BODY_HEARTBEAT)
        return;
    if (!s) {
        send_error_limited(self, routing, agency, E_NOT_READY, "send Hello first");
        return;
    }
    const char *sender = cv_policy_agency(self->policy, agency)->id;
    switch (frame->body_case) {
    case CAVEAT__WIRE__FRAME__BODY_PUBLISH:
        on_publish(self, routing, s->serial, agency, sender, frame->publish);
        break;
    case CAVEAT__WIRE__FRAME__BODY_DELIVERY_ACK:
        on_ack(self, s, frame->delivery_ack);
        break;
    case CAVEAT__WIRE__FRAME__BODY_ADMIN_REQUEST:
        on_admin(self, routing, agency, key, frame->admin_request);
        break;
    case CAVEAT__WIRE__FRAME__BODY_APPROVAL:
        on_approval(self, s, agency, sender, frame->approval);
        break;
    case CAVEAT__WIRE__FRAME__BODY_FEEDBACK:
        on_feedback(self, s, agency, sender, frame->feedback);
        break;
    default:
        send_error(self, routing, E_BAD_FRAME, "not a frame a client sends");
        break;
    }
}

/*  One frame's bytes, from agency (its key) on the connection routing. */
static void handle_frame(cv_broker_t *self, const zframe_t *routing, int agency,
                         const uint8_t key[CV_KEY_BYTES], const uint8_t *data, size_t size)
{
    /* counted before unpacking: an oversized Publish costs a scan, not an
     * allocation per report (the count covers a Publish with or without a
     * session: either way it is refused) */
    size_t reports = cv_wire_publish_reports(data, size);
    if (reports != SIZE_MAX && over_report_limit(self, routing, agency, reports))
        return;
    /* into the cache's arena: freed with its generation, never here */
    Caveat__Wire__Frame *frame = cv_cache_unpack_frame(self->cache, data, size);
    if (!frame) {
        send_error_limited(self, routing, agency, E_BAD_FRAME, "not a caveat.wire.Frame");
        return;
    }
    /* only known fields go on: protobuf-c packs an unknown field with tag
     * 0 in a form it refuses to unpack, which would poison the store (a
     * report) or an admin request's copy */
    cv_proto_drop_unknown(&frame->base);
    dispatch(self, routing, agency, key, frame);
}

static void handle_message(cv_broker_t *self, zmsg_t *msg)
{
    zframe_t *routing = zmsg_pop(msg);
    zframe_t *data = zmsg_first(msg);
    uint8_t key[CV_KEY_BYTES];
    int agency = sender_of(self, data, key);
    if (agency < 0) {
        /* no User-Id, or a key the policy no longer lists: never routed */
        self->stats.dropped++;
        cv_log_debug(self->log, "dropped a message from an unknown or revoked key");
    } else if (!frame_allowed(self, agency)) {
        self->stats.limited++;
        send_error_limited(self, routing, agency, E_LIMIT,
                           "this agency sent more than its share of a turn; slow down");
    } else if (zmsg_size(msg) != 1) {
        send_error_limited(self, routing, agency, E_BAD_FRAME,
                           "a message must be exactly one frame");
    } else {
        self->peer = zframe_meta(data, "Peer-Address");
        handle_frame(self, routing, agency, key, zframe_data(data), zframe_size(data));
        self->peer = NULL;
    }
    zframe_destroy(&routing);
}

/* ------------------------------------------------------------------------ */
/*  The loop.                                                               */

static void free_pending(pending_ack_t *p)
{
    zframe_destroy(&p->routing);
    for (size_t i = 0; i < p->ack.n_results; i++) {
        free(p->ack.results[i]->report_id);
        free(p->ack.results[i]->reason);
        free(p->ack.results[i]);
    }
    free(p->ack.results);
    free(p);
}

static void free_pending_feedback(pending_feedback_t *p)
{
    zframe_destroy(&p->routing);
    free(p->report_id);
    free(p);
}

static void hold(cv_broker_t *self, held_t *h);

/*  The turn's FeedbackAcks, held for its commit's sync like PublishAcks. */
static void hold_feedback_acks(cv_broker_t *self)
{
    pending_feedback_t *p;
    while ((p = zlistx_detach(self->pending_feedback, NULL))) {
        const char *why = p->lost ? "the store could not commit; retry" : NULL;
        held_t *h = cv_xmalloc(sizeof *h);
        *h = (held_t){0, p->session, feedback_ack(p->routing, p->report_id, why), false, 0};
        hold(self, h);
        free_pending_feedback(p);
    }
}

static void held_list_clear(cv_broker_t *self, zlistx_t *list)
{
    held_t *h;
    while (list && (h = zlistx_detach(list, NULL)))
        held_destroy(self, h);
}

static void clear_outgoing(cv_broker_t *self)
{
    pending_ack_t *p;
    while (self->pending_acks && (p = zlistx_detach(self->pending_acks, NULL)))
        free_pending(p);
    forget_approval_answers_of(self, 0);
    pending_feedback_t *f;
    while (self->pending_feedback && (f = zlistx_detach(self->pending_feedback, NULL)))
        free_pending_feedback(f);
    /* never synced: not sent (a client resends a publish, the broker a delivery) */
    held_list_clear(self, self->outbox);
    held_list_clear(self, self->held);
}

/*  The queues in memory as the store has them; until that succeeds (a
 *  store that fails to read), nothing is delivered. Sessions keep their
 *  place in what is in flight (its seqs are in the store too). */
static void reload_queues(cv_broker_t *self)
{
    cv_views_discard(self->views); /* they name the queues about to go */
    for (session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        s->queue = NULL;
    cv_error_t err;
    self->queues_lost = !load_queues(self, &err);
    if (self->queues_lost)
        cv_log_error(self->log, "%s; trying again", err.msg);
}

/*  An acknowledgement is the client's word that it has a delivery: it
 *  stands whatever the store lost, and a queue read back from the store
 *  (which saves acknowledgements every SAVE_INTERVAL_MS) takes it again,
 *  or the outage would send again what was acknowledged during it. */
static void reapply_acks(cv_broker_t *self)
{
    for (session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions)) {
        /* found, not made: outside the transaction nothing is written */
        cv_queue_t *q = s->acked ? cv_router_find(self->queues, s->agency, s->feed) : NULL;
        if (q && s->acked <= cv_queue_last_seq(q))
            cv_router_ack(self->queues, q, s->acked);
    }
}

/*  After a failed commit nothing of the turn happened: publishes are
 *  refused as unavailable, deliveries are not sent, and every session
 *  starts again from what the store holds. */
static void turn_failed(cv_broker_t *self, const char *why)
{
    cv_log_error(self->log, "store: %s; the turn is rolled back", why);
    if (cv_store_no_space(self->store))
        disk_exhausted(self);
    cv_record_discard(self->record);
    cv_store_rollback(self->store);
    /* a store that keeps failing must not make the loop spin: wait a
     * little longer after each failure in a row (100, 200, 400 ms, then a
     * second), with the store's lock released */
    self->failures = self->failures < 10 ? self->failures + 1 : 10;
    self->last_failure = zclock_mono();
    zclock_sleep(self->failures < 4 ? 100 << (self->failures - 1) : 1000);
    self->turn_error.msg[0] = '\0';
    for (pending_ack_t *p = zlistx_first(self->pending_acks); p;
         p = zlistx_next(self->pending_acks))
        for (size_t i = 0; i < p->ack.n_results; i++)
            if (p->ack.results[i]->status == CAVEAT__WIRE__STATUS__OK) {
                self->stats.published--; /* counted when it was taken */
                self->stats.refused++;
                p->ack.results[i]->status = CAVEAT__WIRE__STATUS__REFUSED_UNAVAILABLE;
                free(p->ack.results[i]->reason);
                p->ack.results[i]->reason = cv_xstrdup("the store could not commit; retry");
            }
    for (pending_feedback_t *f = zlistx_first(self->pending_feedback); f;
         f = zlistx_next(self->pending_feedback))
        f->lost = true;
    held_list_clear(self, self->outbox);
    approvals_unavailable(self);
    for (session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        session_resend_all(self, s);
    /* rows made in the rolled-back turn are gone: so must be their mirrors */
    cv_cache_forget(self->cache);
    reload_queues(self);
    reapply_acks(self);
}

static session_t *session_by_serial(cv_broker_t *self, uint64_t serial)
{
    for (session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        if (s->serial == serial)
            return s;
    return NULL;
}

/*  Deliveries of a session still to go out: dropped, they stay in flight. */
static void forget_deliveries_of(cv_broker_t *self, uint64_t serial)
{
    zlistx_t *lists[] = {self->outbox, self->held};
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++)
        for (held_t *h = zlistx_first(lists[i]); h; h = zlistx_next(lists[i]))
            if (h->session == serial && h->delivery) {
                zlistx_detach_cur(lists[i]); /* the cursor stays valid for next */
                held_destroy(self, h);
            }
}

#define STALL_PAUSE_MS 100 /* a full connection is sent nothing more for this long */

/*  A message for a session that its connection did not take. A delivery
 *  that found the connection full (a reader that is slow, now) must not
 *  leave a gap in what the client gets, or its next cumulative
 *  acknowledgement would cover a delivery it never had: the session's
 *  later deliveries are dropped too, it pauses, and then sends again all
 *  it has in flight, in seq order (the client drops what it has). A
 *  connection that is gone, that stays full for the ack timeout, or that
 *  missed anything else (a PublishAck) loses its session: nothing more is
 *  queued for it, and its deliveries stay in flight for the queue's next
 *  session. */
static void send_failed(cv_broker_t *self, uint64_t serial, bool delivery, int failure)
{
    session_t *s = session_by_serial(self, serial);
    if (!s)
        return;
    int64_t now = zclock_mono();
    if (failure == EAGAIN && delivery &&
        (!s->stalled || now - s->stalled < self->config.ack_timeout_ms)) {
        if (!s->stalled)
            s->stalled = now;
        forget_deliveries_of(self, serial);
        session_resend_all(self, s);
        set_dirty(self, s, false);
        s->state = SESSION_PAUSED;
        s->paused_until = now + STALL_PAUSE_MS;
        return;
    }
    cv_log_agency(self->log, s->agency, false,
                  "session of %s ended: its connection takes nothing more", s->agency);
    end_session(self, s);
}

/*  Sends what waited for commits now on disk, in order. */
static void release_synced(cv_broker_t *self)
{
    uint64_t synced = cv_store_synced(self->store);
    held_t *h;
    while ((h = zlistx_first(self->held)) && h->commit <= synced) {
        zlistx_detach_cur(self->held);
        uint64_t session = h->session;
        bool delivery = h->delivery;
        self->out_bytes -= h->bytes;
        int failure = send_now(self, &h->msg);
        free(h);
        if (failure && session)
            send_failed(self, session, delivery, failure);
    }
}

static void hold(cv_broker_t *self, held_t *h)
{
    h->commit = cv_store_last_commit(self->store);
    zlistx_add_end(self->held, h);
}

/*  A reload may revoke or tighten: deliveries decided before it and still
 *  waiting for their sync must not leave. They are in flight in their
 *  queues, so every session resends from its first unacknowledged seq,
 *  decided again under the new policy. */
static void forget_held_deliveries(cv_broker_t *self)
{
    for (held_t *h = zlistx_first(self->held); h; h = zlistx_next(self->held))
        if (h->delivery) {
            zlistx_detach_cur(self->held); /* the cursor stays valid for next */
            held_destroy(self, h);
        }
    /* every session, held deliveries or not: what was skipped under the
     * old policy may be released by the new one */
    for (session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        session_resend_all(self, s);
}

/*  The turn's ApprovalAcks, held for its commit's sync like PublishAcks. */
static void hold_approval_answers(cv_broker_t *self)
{
    approval_answer_t *a;
    while ((a = zlistx_detach(self->approval_answers, NULL))) {
        Caveat__Wire__ApprovalAck ack = CAVEAT__WIRE__APPROVAL_ACK__INIT;
        ack.report_id = a->report_id;
        ack.to = a->to;
        ack.has_status = ack.has_released = true;
        ack.status =
            a->unavailable ? CAVEAT__WIRE__STATUS__REFUSED_UNAVAILABLE : CAVEAT__WIRE__STATUS__OK;
        ack.reason = a->unavailable ? "the store could not commit; retry" : NULL;
        ack.released = (uint32_t)a->n_recipients;
        ack.n_recipients = a->n_recipients;
        ack.recipients = a->recipients;
        Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
        frame.body_case = CAVEAT__WIRE__FRAME__BODY_APPROVAL_ACK;
        frame.approval_ack = &ack;
        held_t *h = cv_xmalloc(sizeof *h);
        *h = (held_t){0, a->session, frame_message(a->routing, &frame), false, 0};
        hold(self, h);
        approval_answer_free(a);
    }
}

/*  The turn's PublishAcks and deliveries wait for its commit to be synced. */
static void send_outgoing(cv_broker_t *self)
{
    pending_ack_t *p;
    while ((p = zlistx_detach(self->pending_acks, NULL))) {
        Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
        frame.body_case = CAVEAT__WIRE__FRAME__BODY_PUBLISH_ACK;
        frame.publish_ack = &p->ack;
        held_t *h = cv_xmalloc(sizeof *h);
        *h = (held_t){0, p->session, frame_message(p->routing, &frame), false, 0};
        hold(self, h);
        free_pending(p);
    }
    hold_approval_answers(self);
    hold_feedback_acks(self);
    held_t *h;
    while ((h = zlistx_detach(self->outbox, NULL)))
        hold(self, h);
    release_synced(self);
}

/*  Pumps the sessions on the pending list; those left with nothing to
 *  send leave it. */
static void pump_sessions(cv_broker_t *self)
{
    for (session_t *s = zlistx_first(self->pending); s; s = zlistx_next(self->pending)) {
        if (s->dirty)
            pump(self, s);
        if (!s->dirty) {
            zlistx_detach_cur(self->pending); /* the cursor stays valid for next */
            s->pending = NULL;
        }
    }
}

/*  Every handshake waiting for ZAP, answered now: new connections are not
 *  kept waiting behind client traffic, however much of it there is. */
static void serve_zap(cv_broker_t *self)
{
    zsock_t *zap = cv_zap_socket(self->zap);
    while (zsock_events(zap) & ZMQ_POLLIN)
        cv_zap_handle(self->zap, self->policy);
}

/*  One turn: drain, store, route, pump, commit, then send. */
static bool begin_turn(cv_broker_t *self)
{
    cv_error_t err;
    if (self->queues_lost)
        reload_queues(self);
    if (self->queues_lost || !cv_store_begin(self->store, &err)) {
        if (!self->queues_lost)
            cv_log_error(self->log, "%s", err.msg);
        zclock_sleep(100); /* the store is failing: do not spin */
        return false;
    }
    if (cv_space_check(self->space, false))
        disk_changed(self);
    cv_cache_next_turn(self->cache);
    self->turn_reports = 0;
    self->turn_urgent = false;
    self->turns++;
    return true;
}

/*  A Receipts frame for session, held for the sync of the commit that
 *  stored the checkpoint it proves against. */
static void post_receipts(void *arg, const void *session, const Caveat__Wire__Receipts *receipts)
{
    cv_broker_t *self = arg;
    const session_t *s = session;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_RECEIPTS;
    frame.receipts = (Caveat__Wire__Receipts *)receipts;
    held_t *h = cv_xmalloc(sizeof *h);
    *h = (held_t){0, s->serial, frame_message(s->routing, &frame), false, 0};
    hold(self, h);
}

static void send_receipts(cv_broker_t *self)
{
    cv_error_t err = {0};
    if (!cv_receipts_take(self->receipts, post_receipts, self, &err) &&
        rate_allows(&self->checkpoint_failures, 1))
        cv_log_error(self->log, "receipts: %s", err.msg);
}

/*  The turn's end: pump, commit (or roll back), and send what the commit
 *  allows once it is synced. */
static void end_turn(cv_broker_t *self)
{
    cv_error_t err = {0};
    /* the last turn's views, hashed beside the loop meanwhile: before the
     * save's "delivered" leaves name them, and before this turn's pump */
    cv_views_finish(self->views);
    pump_sessions(self);
    cv_views_start(self->views);
    save_queues(self, false);
    bool prompt = cv_receipts_want_checkpoint(self->receipts, zclock_mono());
    if (!turn_failing(self) && !cv_record_flush(self->record, prompt, &err))
        fail_turn(self, err.msg);
    if (!turn_failing(self) && cv_store_commit(self->store, &err))
        self->failures = 0;
    else
        turn_failed(self, turn_failing(self) ? self->turn_error.msg : err.msg);
    cv_receipts_settle(self->receipts, self->failures == 0);
    send_receipts(self);
    send_outgoing(self);
    run_all_deferred(self);
    if (!cv_store_checkpoint_when_due(self->store, &err) &&
        rate_allows(&self->checkpoint_failures, 1))
        cv_log_error(self->log, "store: %s", err.msg);
}

/*  Whether a turn that has handled taken messages takes another. It stops
 *  at its bounds, and after an IMMEDIATE report: what a turn has taken
 *  waits for its commit, so a critical incident is not made to wait for
 *  the routine traffic that came in after it. */
static bool turn_takes_more(const cv_broker_t *self, int taken)
{
    return taken < DRAIN_PER_TURN && self->turn_reports < REPORTS_PER_TURN &&
           cv_cache_turn_bytes(self->cache) < TURN_BYTES && !self->turn_urgent;
}

static void turn(cv_broker_t *self, bool readable)
{
    if (!begin_turn(self))
        return;
    for (int i = 0; readable && turn_takes_more(self, i); i++) {
        if (i % ZAP_EVERY == ZAP_EVERY - 1)
            serve_zap(self);
        zmsg_t *msg = zmsg_recv(self->router); /* receive timeout 0: NULL when drained */
        if (!msg)
            break;
        handle_message(self, msg);
        zmsg_destroy(&msg);
    }
    end_turn(self);
}

#define OVERDUE_EVERY_MS 20 /* how often the whole session table is walked for timeouts */

/*  A session that holds deliveries without acknowledging them for the ack
 *  timeout gets them again, with their seq: the client drops what it had.
 *  A paused session's pause ends. Both are timers, so the table is walked
 *  every OVERDUE_EVERY_MS, not at every turn. */
static void resend_overdue(cv_broker_t *self, int64_t *next)
{
    int64_t now = zclock_mono();
    if (now < *next)
        return;
    *next = now + OVERDUE_EVERY_MS;
    for (session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        if (s->state == SESSION_PAUSED && now >= s->paused_until) {
            s->state = SESSION_RESENDING; /* what it has in flight, from the first */
            set_dirty(self, s, true);
        } else if (s->state != SESSION_PAUSED && in_flight(s) > 0 &&
                   now - s->progress > self->config.ack_timeout_ms) {
            self->stats.resent += in_flight(s);
            session_resend_all(self, s);
            s->progress = now;
        }
}

static bool any_dirty(cv_broker_t *self)
{
    if (self->out_bytes >= OUT_BYTES_MAX)
        return false; /* the sync socket wakes the loop when some leaves */
    for (session_t *s = zlistx_first(self->pending); s; s = zlistx_next(self->pending))
        if (s->dirty && in_flight(s) < s->credit)
            return true;
    return false;
}

/*  Retention runs at start and then every hour. */
static void purge_when_due(cv_broker_t *self, int64_t *next)
{
    int64_t now = zclock_mono();
    if (now < *next)
        return;
    *next = now + 3600 * 1000;
    cv_error_t err = {0};
    static const cv_purge_how_t hourly = {0};
    if (purge(self, &hourly, NULL, &err) < 0)
        cv_log_warning(self->log, "retention: %s", err.msg);
}

int cv_broker_feed_all(cv_broker_t *self, const cv_broker_frame_t *frames, size_t n)
{
    assert(!self->router);
    int turns = 0;
    for (size_t next = 0; next < n && begin_turn(self); turns++) {
        for (int i = 0; next < n && turn_takes_more(self, i); i++, next++) {
            const cv_broker_frame_t *f = &frames[next];
            const cv_agency_t *a = cv_policy_agency(self->policy, f->agency);
            assert(a);
            uint8_t id[5] = {0}; /* as the transport assigns them: 0, then 4 bytes */
            memcpy(id + 1, &f->connection, sizeof f->connection);
            zframe_t *routing = zframe_new(id, sizeof id);
            handle_frame(self, routing, f->agency, a->key, f->bytes, f->size);
            zframe_destroy(&routing);
        }
        end_turn(self);
    }
    return turns;
}

void cv_broker_feed(cv_broker_t *self, int agency, uint32_t connection, const void *frame,
                    size_t size)
{
    cv_broker_frame_t one = {agency, connection, frame, size};
    cv_broker_feed_all(self, &one, 1);
}

int64_t cv_broker_check_store(cv_broker_t *self, cv_error_t *err)
{
    int64_t stored = 0;
    for (int64_t rowid = 1; rowid <= cv_router_max_report(self->queues); rowid++) {
        uint8_t *body = NULL;
        size_t len = 0;
        int found = cv_store_get_report(self->store, rowid, &body, &len, err);
        Caveat__Report *report = found > 0 ? caveat__report__unpack(NULL, len, body) : NULL;
        free(body);
        if (found < 0)
            return -1;
        if (found > 0 && !report) {
            cv_error_set(err, NULL, 0, 0, "stored report %lld does not unpack", (long long)rowid);
            return -1;
        }
        stored += found > 0;
        caveat__report__free_unpacked(report, NULL);
    }
    return stored;
}

/*  How long the loop may wait for a message: not at all when a session
 *  has work; until acknowledgements or receipts are due to be saved; and
 *  while a backup runs, no longer than watch_backup's look at the disk. */
static int poll_timeout(cv_broker_t *self, bool receipts)
{
    if (any_dirty(self))
        return 0;
    int timeout = cv_router_unsaved(self->queues) || receipts ? SAVE_INTERVAL_MS : 200;
    return self->backup.run && timeout > BACKUP_LOOK_MS ? BACKUP_LOOK_MS : timeout;
}

int cv_broker_run(cv_broker_t *self)
{
    int64_t next_purge = 0, next_monitor = 0, next_overdue = 0;
    zpoller_t *poller = zpoller_new(self->router, cv_zap_socket(self->zap), NULL);
    if (cv_store_sync_socket(self->store)) /* wakes the loop when a sync ends */
        zpoller_add(poller, cv_store_sync_socket(self->store));
    zpoller_add(poller, cv_guard_socket(self->guard));
    self->poller = poller;
    cv_log_info(self->log, "serving %s, policy %s version %lld, %d agencies", self->endpoint,
                cv_policy_protocol(self->policy), (long long)cv_policy_version(self->policy),
                cv_policy_agency_count(self->policy));
    int status = 0;
    while (!stop_requested) {
        const char *failed = cv_store_sync_failed(self->store);
        if (failed) { /* nothing more can be made durable: stop, do not pretend */
            cv_log_error(self->log, "store: %s; stopping", failed);
            status = 1;
            break;
        }
        if (reload_requested && begin_turn(self)) { /* in a turn: its leaf is written with it */
            reload_requested = 0;
            cv_error_t err;
            reload(self, &err);
            end_turn(self);
        }
        release_synced(self);
        resend_overdue(self, &next_overdue);
        purge_when_due(self, &next_purge);
        publish_monitor(self, &next_monitor);
        watch_backup(self);
        bool receipts = cv_receipts_pending(self->receipts);
        void *ready = zpoller_wait(poller, poll_timeout(self, receipts));
        /* handshakes and the guard first, whichever socket woke the poller
         * (zpoller names only the first ready): neither blocks, and a flood
         * of messages must not starve them */
        serve_zap(self);
        cv_guard_handle(self->guard);
        bool readable = zsock_events(self->router) & ZMQ_POLLIN;
        if (readable || any_dirty(self) || cv_router_unsaved(self->queues) || receipts)
            turn(self, readable);
        else if (!ready && cv_store_wal_pages(self->store) > 0)
            cv_store_checkpoint(self->store); /* idle for a whole poll */
    }
    stop_backup(self, "the broker is stopping");
    self->poller = NULL;
    zpoller_destroy(&poller);
    if (status == 0) {
        commit_saves(self, true); /* a clean stop resends nothing acknowledged, and
                                   * signs what the audit log holds */
        /* what waits for a sync leaves once synced, within a second */
        cv_store_sync_wait(self->store, 1000);
        release_synced(self);
    }
    cv_log_info(self->log, "stopped");
    return status;
}
