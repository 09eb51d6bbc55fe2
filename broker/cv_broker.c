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
 *
 *  This file holds the set-up and the loop; cv_broker_int.h lists the
 *  files that handle each kind of message.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "cv_broker_int.h"

static atomic_bool reload_requested, stop_requested;

/*  SIGHUP reloads; SIGINT and SIGTERM stop. */
static void signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

/*  The signals are taken by a thread of their own that waits for them,
 *  never by a handler: a handler runs in whichever thread the kernel
 *  picks, and the system call it interrupts there fails with EINTR. One
 *  that failed the loop's request to the syncer left every later
 *  acknowledgement held, the broker idle, after a SIGHUP. So they are
 *  blocked in the first thread before any other starts (threads take
 *  their creator's mask), and taken by cv-signals from the moment the
 *  broker is ready: one that comes before waits for it. The loop looks at
 *  the flags at every turn of its loop, whose waits are at most a quarter
 *  of a second. */
static void block_signals(void)
{
    sigset_t set;
    signal_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void *take_signals(void *arg)
{
    (void)arg;
    sigset_t set;
    signal_set(&set);
    for (int sig; sigwait(&set, &sig) == 0;)
        atomic_store(sig == SIGHUP ? &reload_requested : &stop_requested, true);
    return NULL;
}

static void install_signals(void)
{
    pthread_t taker;
    if (pthread_create(&taker, NULL, take_signals, NULL) == 0) {
        pthread_setname_np(taker, "cv-signals");
        pthread_detach(taker);
    }
}

/* ------------------------------------------------------------------------ */
/*  Set-up.                                                                 */

/*  DATA/pseudonym.key: 32 random bytes made at the first start, 0600.
 *  Only a regular file of exactly 32 bytes, this user's and private, is
 *  taken: not a link (whoever could once write the directory could point
 *  it at a file whose bytes they know), not a FIFO (opened without
 *  blocking). One made by a broker starting beside this one is not
 *  removed. */
static bool load_pseudonym_key(cv_broker_t *self, cv_error_t *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/pseudonym.key", self->config.data_dir);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        randombytes_buf(self->pseudonym_key, CV_KEY_BYTES);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        bool written = fd >= 0 && write(fd, self->pseudonym_key, CV_KEY_BYTES) == CV_KEY_BYTES &&
                       fsync(fd) == 0;
        if (!written)
            cv_error_set(err, path, 0, 0, "cannot create: %s", strerror(errno));
        if (fd >= 0) {
            close(fd);
            if (!written) /* no half a key left for the next start to refuse */
                unlink(path);
        }
        return written;
    }
    struct stat st;
    bool ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == CV_KEY_BYTES &&
              st.st_uid == geteuid() && (st.st_mode & 077) == 0 &&
              read(fd, self->pseudonym_key, CV_KEY_BYTES) == CV_KEY_BYTES;
    if (fd >= 0)
        close(fd);
    if (!ok) {
        sodium_memzero(self->pseudonym_key, CV_KEY_BYTES);
        cv_error_set(err, path, 0, 0,
                     "not a regular file of 32 bytes, this user's, giving group and others no "
                     "access (a link is refused)");
    }
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

void broker_disk_changed(cv_broker_t *self)
{
    log_disk_space(self);
    limit_wal(self);
}

/*  A write failed for want of space: publishes stop here, and the
 *  reserve goes to what deliveries and acknowledgements write. */
void broker_disk_exhausted(cv_broker_t *self)
{
    bool was_short = cv_space_short(self->space);
    cv_space_exhausted(self->space);
    if (!was_short) {
        log_disk_short(self, "a write failed for want of space");
        limit_wal(self);
    }
}

/*  The data directory: checked and locked (cv_store_claim) before its
 *  disk reserve or pseudonymisation key is made or touched, so that a
 *  directory refused, or another broker's, is left as it was (a second
 *  broker once gave up or remade the first one's reserve); then the
 *  reserve, which on a full disk is what lets the store open. */
static bool open_data(cv_broker_t *self, cv_error_t *err)
{
    const char *dir = self->config.data_dir;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        cv_error_set(err, dir, 0, 0, "cannot create: %s", strerror(errno));
        return false;
    }
    int claim = cv_store_claim(dir, err);
    if (claim < 0)
        return false;
    uint64_t reserve = self->config.disk_reserve_mb ? (uint64_t)self->config.disk_reserve_mb << 20
                                                    : DEFAULT_DISK_RESERVE;
    self->space = cv_space_new(dir, reserve, err);
    if (self->space && load_pseudonym_key(self, err))
        self->store = cv_store_open_claimed(claim, dir, self->config.sync, err);
    else
        close(claim);
    if (!self->space)
        return false;
    if (!self->store && cv_space_short(self->space)) {
        cv_error_t why = *err;
        cv_error_set(err, NULL, 0, 0, "%s; the disk holding %s is full (%llu bytes free)", why.msg,
                     dir, (unsigned long long)cv_space_free(self->space));
    }
    if (self->store && cv_space_short(self->space))
        broker_disk_changed(self);
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
    self->guard =
        cv_guard_new(self->router, self->log, self->config.max_pending,
                     self->config.handshake_timeout_ms, broker_connection_gone, self, err);
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

/*  The policy file, at start and at every reload. With signers, its
 *  signature must verify (cv_policy_sig.h): there is no way around it. */
cv_policy_t *broker_load_policy(cv_broker_t *self, cv_error_t *err)
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

/*  The store's meta key for the highest policy version it has had in force. */
#define POLICY_VERSION_KEY "policy_version"

/*  Whether policy may go in force in this store: never a version below
 *  one it has had in force. A signature says who approved a text, not
 *  that it is the newest: an older signed policy put back by whoever can
 *  write its directory would bring back the keys and administrators a
 *  newer one removed. In the transaction that records policy, whose
 *  version it notes as the highest when it is. */
bool broker_policy_not_rolled_back(cv_broker_t *self, const cv_policy_t *policy, cv_error_t *err)
{
    int64_t highest = 0, version = cv_policy_version(policy);
    int found = cv_store_meta_get(self->store, POLICY_VERSION_KEY, &highest, err);
    if (found < 0)
        return false;
    if (found && version < highest) {
        cv_error_set(err, NULL, 0, 0,
                     "%s: error: version %lld is older than version %lld, which this store has "
                     "had in force: a policy is never rolled back (to go back, give the older "
                     "rules a version above %lld)",
                     self->config.policy_path, (long long)version, (long long)highest,
                     (long long)highest);
        return false;
    }
    return (found && version == highest) ||
           cv_store_meta_set(self->store, POLICY_VERSION_KEY, version, err);
}

/*  Ends a transaction begun outside a turn (start, admin work): when ok,
 *  its leaves are written and it commits; otherwise, or when that fails,
 *  both are undone. Whether it committed. */
bool broker_end_recorded(cv_broker_t *self, bool ok, cv_error_t *err)
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
    cv_router_set_saving(self->queues, broker_record_deliveries, self);
    bool recorded = broker_policy_not_rolled_back(self, self->policy, err) &&
                    cv_record_policy(self->record, self->policy, err) &&
                    (!self->config.audit_off || cv_record_turn_off(self->record, err));
    if (!broker_end_recorded(self, recorded, err))
        return false;
    if (self->config.audit_off)
        cv_log_warning(self->log, "the audit log is off (--audit-log off): nothing this "
                                  "broker does is recorded for oversight");
    return true;
}

static void rate_free(void **item)
{
    free(*item);
    *item = NULL;
}

/*  The policy and the store; offline, nothing more. */
static bool start(cv_broker_t *self, bool offline, cv_error_t *err)
{
    if (self->config.policy_signers &&
        !(self->signers = cv_signers_load(self->config.policy_signers, err)))
        return false;
    if (!open_data(self, err) || !(self->feedback = cv_feedback_new(self->store, err)))
        return false;
    self->policy = broker_load_policy(self, err);
    if (!self->policy || !broker_load_queues(self, err) || !open_record(self, err) ||
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
    if (ok) { /* after the self-test, which reads the ZAP socket its own way */
        self->router_in = cv_inbox_new(self->router, true);
        self->zap_in = cv_inbox_new(cv_zap_socket(self->zap), true);
        ok = self->router_in && self->zap_in;
        if (!ok)
            cv_error_set(err, NULL, 0, 0, "out of memory for the router's inboxes");
    }
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

static cv_broker_t *new_broker(const cv_broker_config_t *config, bool offline, cv_error_t *err);

cv_broker_t *cv_broker_new(const cv_broker_config_t *config, cv_error_t *err)
{
    return new_broker(config, false, err);
}

cv_broker_t *cv_broker_new_offline(const cv_broker_config_t *config, cv_error_t *err)
{
    return new_broker(config, true, err);
}

/*  The config's strings, the broker's own: a caller's buffers need not
 *  outlive it. */
static const char **config_string(cv_broker_config_t *c, int i)
{
    const char **all[] = {&c->policy_path, &c->endpoint, &c->cert_path,     &c->data_dir,
                          &c->monitor,     &c->pid_file, &c->policy_signers};
    return i < (int)(sizeof all / sizeof *all) ? all[i] : NULL;
}

static void own_config_strings(cv_broker_config_t *c)
{
    const char **field;
    for (int i = 0; (field = config_string(c, i)) != NULL; i++)
        if (*field)
            *field = cv_xstrdup(*field);
}

static void free_config_strings(cv_broker_config_t *c)
{
    const char **field;
    for (int i = 0; (field = config_string(c, i)) != NULL; i++)
        free((char *)*field);
}

static cv_broker_t *new_broker(const cv_broker_config_t *config, bool offline, cv_error_t *err)
{
    if (sodium_init() < 0)
        return NULL;
    zsys_handler_set(NULL); /* our own signal handling, below */
    if (!offline)
        block_signals(); /* before any thread starts */
    cv_broker_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    own_config_strings(&self->config);
    self->peer_fd = -1;
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
    zhashx_set_destructor(self->sessions, broker_session_free);
    self->serving = zhashx_new();
    self->resends = zhashx_new(); /* rate_t each, freed with it */
    zhashx_set_destructor(self->resends, rate_free);
    self->pending_acks = zlistx_new();
    self->approval_answers = zlistx_new();
    self->pending_feedback = zlistx_new();
    self->outbox = zlistx_new();
    self->held = zlistx_new();
    self->deferred = zlistx_new();
    self->purging.waiting = zlistx_new();
    self->senders = zlistx_new();
    self->pending = zlistx_new();
    self->decision = cv_decision_new();
    self->candidates = cv_candidates_new();
    self->cache = cv_cache_new();
    self->hasher = cv_hasher_new("cv-checksums"); /* NULL: the loop takes the sums itself */
    self->view_hasher = cv_hasher_new("cv-view-hashes");
    self->views = cv_views_new(self->view_hasher, !config->audit_off);
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
    broker_purge_forget(self);
    cv_inbox_destroy(&self->backup_in);   /* a broker fed offline, never run: */
    cv_backup_destroy(&self->backup.run); /* no poller holds the inbox */
    zframe_destroy(&self->backup.routing);
    zlistx_destroy(&self->senders);
    zlistx_destroy(&self->pending);
    cv_cache_destroy(&self->cache);
    zhashx_destroy(&self->serving);
    zhashx_destroy(&self->resends);
    zhashx_destroy(&self->sessions);
    free(self->by_fd);
    cv_receipts_destroy(&self->receipts);
    cv_record_destroy(&self->record); /* before the store it writes in */
    cv_approval_store_destroy(&self->approvals);
    cv_router_destroy(&self->queues);
    free(self->route_to);
    cv_guard_destroy(&self->guard); /* its monitor first */
    cv_inbox_destroy(&self->router_in);
    cv_inbox_destroy(&self->zap_in);
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
    free_config_strings(&self->config);
    free(self);
    *self_p = NULL;
}

const char *cv_broker_endpoint(const cv_broker_t *self)
{
    return self->endpoint;
}

/* ------------------------------------------------------------------------ */
/*  The loop.                                                               */

void broker_free_pending(pending_ack_t *p)
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

void broker_pending_feedback_free(pending_feedback_t *p)
{
    zframe_destroy(&p->routing);
    free(p->report_id);
    free(p);
}

/*  The turn's FeedbackAcks, held for its commit's sync like PublishAcks. */
static void hold_feedback_acks(cv_broker_t *self)
{
    pending_feedback_t *p;
    while ((p = zlistx_detach(self->pending_feedback, NULL))) {
        const char *why = p->lost ? "the store could not commit; retry" : NULL;
        held_t *h = cv_xmalloc(sizeof *h);
        *h = (held_t){.session = p->session,
                      .msg = broker_feedback_ack(p->routing, p->report_id, why)};
        broker_hold(self, h);
        broker_pending_feedback_free(p);
    }
}

static void held_list_clear(cv_broker_t *self, zlistx_t *list)
{
    held_t *h;
    while (list && (h = zlistx_detach(list, NULL)))
        broker_held_destroy(self, h);
}

static void clear_outgoing(cv_broker_t *self)
{
    pending_ack_t *p;
    while (self->pending_acks && (p = zlistx_detach(self->pending_acks, NULL)))
        broker_free_pending(p);
    broker_forget_approval_answers_of(self, 0);
    pending_feedback_t *f;
    while (self->pending_feedback && (f = zlistx_detach(self->pending_feedback, NULL)))
        broker_pending_feedback_free(f);
    /* never synced: not sent (a client resends a publish, the broker a delivery) */
    held_list_clear(self, self->outbox);
    held_list_clear(self, self->held);
}

/*  The queues in memory as the store has them; until that succeeds (a
 *  store that fails to read), nothing is delivered. Sessions keep their
 *  place in what is in flight (its seqs are in the store too), and point
 *  at once at their queue read back: a Deliver held for its sync when the
 *  queues went marks its seqs on it (broker_delivery_fate). */
void broker_reload_queues(cv_broker_t *self)
{
    cv_views_discard(self->views); /* they name the queues about to go */
    for (session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        s->queue = NULL;
    cv_error_t err;
    self->queues_lost = !broker_load_queues(self, &err);
    if (self->queues_lost) {
        cv_log_error(self->log, "%s; trying again", err.msg);
        return;
    }
    /* found, not made (outside a transaction nothing is written): a queue
     * not in the store yet is made by the session's next pump */
    for (session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        if (!s->publish_only)
            s->queue = cv_router_find(self->queues, s->agency, s->feed);
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
    cv_log_error(self->log, "%s; the turn is rolled back", why);
    if (cv_store_no_space(self->store))
        broker_disk_exhausted(self);
    cv_record_discard(self->record);
    cv_store_rollback(self->store);
    /* a store that keeps failing must not make the loop spin: wait a
     * little longer after each failure in a row (100, 200, 400 ms, then a
     * second), with the store's lock released; offline there is no loop,
     * only the caller's turns, and a fuzzer's failing turns must not
     * cost it a second each */
    self->failures = self->failures < 10 ? self->failures + 1 : 10;
    self->last_failure = zclock_mono();
    if (self->router)
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
    broker_approvals_unavailable(self);
    broker_drop_deferred(self);
    broker_unstart_backup(self);
    for (session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        broker_session_resend_all(self, s);
    /* rows made in the rolled-back turn are gone: so must be their mirrors */
    cv_cache_forget(self->cache);
    broker_reload_queues(self);
    reapply_acks(self);
}

/*  Deliveries of a session still to go out: dropped, they stay in flight. */
static void forget_deliveries_of(cv_broker_t *self, uint64_t serial)
{
    zlistx_t *lists[] = {self->outbox, self->held};
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++)
        for (held_t *h = zlistx_first(lists[i]); h; h = zlistx_next(lists[i]))
            if (h->session == serial && h->delivery) {
                zlistx_detach_cur(lists[i]); /* the cursor stays valid for next */
                broker_held_destroy(self, h);
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
static void send_failed(cv_broker_t *self, session_t *s, bool delivery, int failure)
{
    uint64_t serial = s->serial;
    int64_t now = zclock_mono();
    if (failure == EAGAIN && delivery &&
        (!s->stalled || now - s->stalled < self->config.ack_timeout_ms)) {
        if (!s->stalled)
            s->stalled = now;
        forget_deliveries_of(self, serial);
        broker_session_resend_all(self, s);
        broker_set_dirty(self, s, false);
        s->state = SESSION_PAUSED;
        s->paused_until = now + STALL_PAUSE_MS;
        return;
    }
    cv_log_agency(self->log, s->agency, false,
                  "session of %s ended: its connection takes nothing more", s->agency);
    broker_end_connection(self, s);
}

/*  Sends what waited for commits now on disk, in order. */
static void release_synced(cv_broker_t *self)
{
    if (self->guard) /* a gone connection's routing id must not be sent to */
        cv_guard_handle(self->guard);
    uint64_t synced = cv_store_synced(self->store);
    held_t *h;
    while ((h = zlistx_first(self->held)) && h->commit <= synced) {
        zlistx_detach_cur(self->held);
        uint64_t session = h->session;
        bool delivery = h->delivery;
        self->out_bytes -= h->bytes;
        uint8_t routing[256]; /* a routing id is at most 255 bytes */
        size_t routing_size = zframe_size(zmsg_first(h->msg));
        assert(routing_size <= sizeof routing);
        memcpy(routing, zframe_data(zmsg_first(h->msg)), routing_size);
        int failure = broker_send_now(self, &h->msg);
        session_t *s = (failure || h->n_seqs) && session
                           ? broker_session_sent_to(self, routing, routing_size, session)
                           : NULL;
        broker_delivery_fate(self, s, h, !failure);
        free(h);
        if (s && failure)
            send_failed(self, s, delivery, failure);
    }
}

void broker_hold(cv_broker_t *self, held_t *h)
{
    if (h->session && broker_session_gone(self, zmsg_first(h->msg), h->session)) {
        broker_held_destroy(self, h); /* its routing id may be another connection's soon */
        return;
    }
    h->commit = cv_store_last_commit(self->store);
    zlistx_add_end(self->held, h);
}

/*  A reload may revoke or tighten: deliveries decided before it and still
 *  waiting for their sync must not leave. They are in flight in their
 *  queues, so every session resends from its first unacknowledged seq,
 *  decided again under the new policy. */
void broker_forget_held_deliveries(cv_broker_t *self)
{
    for (held_t *h = zlistx_first(self->held); h; h = zlistx_next(self->held))
        if (h->delivery) {
            zlistx_detach_cur(self->held); /* the cursor stays valid for next */
            broker_held_destroy(self, h);
        }
    /* every session, held deliveries or not: what was skipped under the
     * old policy may be released by the new one */
    for (session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        broker_session_resend_all(self, s);
}

/*  The turn's ApprovalAcks, held for its commit's sync like PublishAcks. */
static void hold_approval_answers(cv_broker_t *self)
{
    approval_answer_t *a;
    while ((a = zlistx_detach(self->approval_answers, NULL))) {
        const char *not_stored = a->unavailable ? "the store could not commit; retry" : NULL;
        zmsg_t *msg = broker_approval_ack(a->routing, a->report_id, a->to, not_stored,
                                          a->recipients, a->n_recipients);
        held_t *h = cv_xmalloc(sizeof *h);
        *h = (held_t){.session = a->session, .msg = msg};
        broker_hold(self, h);
        broker_approval_answer_free(a);
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
        *h = (held_t){.session = p->session, .msg = broker_frame_message(p->routing, &frame)};
        broker_hold(self, h);
        broker_free_pending(p);
    }
    hold_approval_answers(self);
    hold_feedback_acks(self);
    held_t *h;
    while ((h = zlistx_detach(self->outbox, NULL)))
        broker_hold(self, h);
    release_synced(self);
}

/*  Pumps the sessions on the pending list; those left with nothing to
 *  send leave it. */
static void pump_sessions(cv_broker_t *self)
{
    for (session_t *s = zlistx_first(self->pending); s; s = zlistx_next(self->pending)) {
        if (s->dirty)
            broker_pump(self, s);
        if (!s->dirty) {
            zlistx_detach_cur(self->pending); /* the cursor stays valid for next */
            s->pending = NULL;
        }
    }
}

/*  Every handshake waiting for ZAP, answered now: new connections are not
 *  kept waiting behind client traffic, however much of it there is. now:
 *  requests up to this moment (mid-turn, a system call), not only those
 *  the poller's last wait heard of. */
static void serve_zap(cv_broker_t *self, bool now)
{
    /* connections that went first, every one: their sessions end before a
     * new connection, which may take a gone one's routing id or
     * descriptor, is admitted */
    if (!(now ? cv_inbox_ready_now(self->zap_in) : cv_inbox_ready(self->zap_in))) {
        cv_guard_handle(self->guard);
        return;
    }
    /* before each answer: a request that came during the last one comes
     * after ends that must be read first (cv_guard_drain reads up to now,
     * not up to the poller's last wait); a backlog too long to read now
     * leaves the requests waiting (the handshake timeout bounds them) */
    do {
        if (!cv_guard_drain(self->guard))
            break;
        cv_zap_handle(self->zap, self->policy);
        cv_inbox_touched(self->zap_in); /* its answer was a send */
    } while (cv_inbox_ready(self->zap_in));
}

/*  One turn: drain, store, route, pump, commit, then send. */
static bool begin_turn(cv_broker_t *self)
{
    cv_error_t err;
    if (self->queues_lost)
        broker_reload_queues(self);
    if (self->queues_lost || !cv_store_begin(self->store, &err)) {
        if (!self->queues_lost)
            cv_log_error(self->log, "%s", err.msg);
        if (self->router) /* the store is failing: the loop must not spin (offline: no loop) */
            zclock_sleep(100);
        return false;
    }
    if (cv_space_check(self->space, false))
        broker_disk_changed(self);
    cv_cache_next_turn(self->cache);
    self->turn_reports = 0;
    self->turn_stored = 0;
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
    *h = (held_t){.session = s->serial, .msg = broker_frame_message(s->routing, &frame)};
    broker_hold(self, h);
    /* fewer of its receipts wait: deliveries its receipts held back go on */
    broker_set_dirty(self, (session_t *)s, true);
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
    broker_save_queues(self, false);
    bool prompt = cv_receipts_want_checkpoint(self->receipts, zclock_mono());
    if (!broker_turn_failing(self) && !cv_record_flush(self->record, prompt, &err))
        broker_fail_turn(self, err.msg);
    if (!broker_turn_failing(self) && cv_store_commit(self->store, &err))
        self->failures = 0;
    else
        turn_failed(self, broker_turn_failing(self) ? self->turn_error.msg : err.msg);
    cv_receipts_settle(self->receipts, self->failures == 0);
    cv_log_settle(self->log, self->failures == 0); /* before the answers they come with */
    send_receipts(self);
    send_outgoing(self);
    broker_run_all_deferred(self);
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
            serve_zap(self, true);
        zmsg_t *msg = zmsg_recv(self->router); /* receive timeout 0: NULL when drained */
        if (!msg)
            break;
        broker_handle_message(self, msg);
        zmsg_destroy(&msg);
    }
    end_turn(self);
}

#define OVERDUE_EVERY_MS 20 /* how often the whole session table is walked for timeouts */

/*  A session that holds deliveries without acknowledging them for the ack
 *  timeout gets them again, with their seq: the client drops what it had.
 *  A paused session's pause ends. A session whose connection went ends
 *  GONE_LINGER_MS after (up to 64 a walk, ended after it). All are timers,
 *  so the table is walked every OVERDUE_EVERY_MS, not at every turn. */
static void resend_overdue(cv_broker_t *self, int64_t *next)
{
    int64_t now = zclock_mono();
    if (now < *next)
        return;
    *next = now + OVERDUE_EVERY_MS;
    session_t *ended[64];
    size_t n = 0;
    for (session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        if (s->gone_at) {
            if (now - s->gone_at >= GONE_LINGER_MS && n < 64)
                ended[n++] = s;
        } else if (s->state == SESSION_PAUSED && now >= s->paused_until) {
            s->state = SESSION_RESENDING; /* what it has in flight, from the first */
            broker_set_dirty(self, s, true);
        } else if (s->state != SESSION_PAUSED && broker_in_flight(s) > 0 &&
                   now - s->progress > self->config.ack_timeout_ms) {
            self->stats.resent += broker_in_flight(s);
            broker_session_resend_all(self, s);
            s->progress = now;
        }
    for (size_t i = 0; i < n; i++)
        broker_end_session(self, ended[i]);
}

static bool any_dirty(cv_broker_t *self)
{
    if (self->out_bytes >= OUT_BYTES_MAX)
        return false; /* the sync socket wakes the loop when some leaves */
    for (session_t *s = zlistx_first(self->pending); s; s = zlistx_next(self->pending))
        if (s->dirty && broker_in_flight(s) < s->credit)
            return true;
    return false;
}

/*  Retention runs at start and then every hour, unless a purge is going
 *  (it purges what retention would); its steps go on each time round. */
static void purge_when_due(cv_broker_t *self, int64_t *next)
{
    int64_t now = zclock_mono();
    if (now >= *next && !self->purging.going) {
        *next = now + 3600 * 1000;
        static const cv_purge_how_t hourly = {0};
        broker_purge_begin(self, &hourly, NULL);
    }
    broker_purge_step(self);
}

/*  Offline: connection's routing id, as the transport assigns them: 0,
 *  then 4 bytes. */
static zframe_t *offline_routing(uint32_t connection)
{
    uint8_t id[5] = {0};
    memcpy(id + 1, &connection, sizeof connection);
    return zframe_new(id, sizeof id);
}

int cv_broker_feed_all(cv_broker_t *self, const cv_broker_frame_t *frames, size_t n)
{
    assert(!self->router);
    int turns = 0;
    /* a purge going takes a step before each turn, as between the loop's */
    for (size_t next = 0; next < n && (broker_purge_step(self), begin_turn(self)); turns++) {
        for (int i = 0; next < n && turn_takes_more(self, i); i++, next++) {
            const cv_broker_frame_t *f = &frames[next];
            const cv_agency_t *a = cv_policy_agency(self->policy, f->agency);
            assert(a);
            zframe_t *routing = offline_routing(f->connection);
            broker_handle_frame(self, routing, f->agency, a->key, f->bytes, f->size);
            zframe_destroy(&routing);
        }
        end_turn(self);
    }
    return turns;
}

void cv_broker_on_sent(cv_broker_t *self, cv_broker_sent_fn *fn, void *arg)
{
    assert(!self->router);
    self->sent_fn = fn;
    self->sent_arg = arg;
}

void cv_broker_went(cv_broker_t *self, uint32_t connection)
{
    assert(!self->router);
    zframe_t *routing = offline_routing(connection);
    broker_routing_went(self, routing);
    zframe_destroy(&routing);
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
    if (any_dirty(self) || self->purging.going)
        return 0;
    int timeout = cv_router_unsaved(self->queues) || receipts ? SAVE_INTERVAL_MS : 200;
    return self->backup.run && timeout > BACKUP_LOOK_MS ? BACKUP_LOOK_MS : timeout;
}

/*  A message the poller found only by its periodic look at idle sockets
 *  waited up to a quarter of a second for a wakeup that some use of its
 *  socket took: said at the first and at each doubling. */
static void report_recovered(cv_broker_t *self, const cv_poller_t *poller)
{
    uint64_t n = cv_poller_recovered(poller);
    if (n == 0 || n == self->recovered_reported || (n & (n - 1)) != 0)
        return;
    self->recovered_reported = n;
    cv_log_warning(self->log,
                   "%llu messages found late by the look at idle sockets (a missed wakeup in "
                   "caveatd: please report)",
                   (unsigned long long)n);
}

static void stop(cv_broker_t *self, bool clean);

int cv_broker_run(cv_broker_t *self)
{
    int64_t next_purge = 0, next_monitor = 0, next_overdue = 0;
    cv_poller_t *poller = cv_poller_new();
    /* the store's threads wake the loop when a sync or a checkpoint ends */
    if (!poller || cv_poller_add(poller, self->router_in) != 0 ||
        cv_poller_add(poller, self->zap_in) != 0 || cv_store_watch(self->store, poller) != 0 ||
        cv_guard_watch(self->guard, poller) != 0) {
        cv_log_error(self->log, "out of memory");
        cv_poller_destroy(&poller);
        return 1;
    }
    self->poller = poller;
    cv_log_info(self->log, "serving %s, policy %s version %lld, %d agencies", self->endpoint,
                cv_policy_protocol(self->policy), (long long)cv_policy_version(self->policy),
                cv_policy_agency_count(self->policy));
    int status = 0;
    while (!atomic_load(&stop_requested)) {
        const char *failed = cv_store_sync_failed(self->store);
        if (failed) { /* nothing more can be made durable: stop, do not pretend */
            cv_log_error(self->log, "store: %s; stopping", failed);
            status = 1;
            break;
        }
        int64_t slow_ms;
        if (cv_store_slow_sync(self->store, &slow_ms))
            cv_log_warning(self->log,
                           "store: a sync of the WAL took %lld ms, and what it covered waited "
                           "for it: a slow or overloaded disk",
                           (long long)slow_ms);
        if (atomic_load(&reload_requested)) { /* between turns: it commits on its own */
            atomic_store(&reload_requested, false);
            cv_error_t err;
            broker_reload(self, NULL, NULL, &err);
        }
        release_synced(self);
        resend_overdue(self, &next_overdue);
        purge_when_due(self, &next_purge);
        broker_publish_monitor(self, &next_monitor);
        broker_watch_backup(self);
        bool receipts = cv_receipts_pending(self->receipts);
        bool woken = cv_poller_wait(poller, poll_timeout(self, receipts)) > 0;
        report_recovered(self, poller);
        /* the guard and handshakes first (serve_zap reads the guard),
         * whichever socket woke the poller: neither blocks, and a flood of
         * messages must not starve them */
        serve_zap(self, false);
        bool readable = cv_inbox_ready(self->router_in);
        if (readable || any_dirty(self) || cv_router_unsaved(self->queues) || receipts)
            turn(self, readable);
        else if (!woken && cv_store_wal_pages(self->store) > 0)
            cv_store_checkpoint(self->store); /* idle for a whole poll */
        /* after the turn: a connection whose Hello it read is admitted,
         * not ended for want of a session */
        cv_guard_enforce(self->guard);
    }
    self->poller = NULL;
    cv_poller_destroy(&poller);
    stop(self, status == 0);
    return status;
}

/*  The loop's end: what runs in the background is stopped, and on a clean
 *  stop what was acknowledged is saved and what waits for its sync goes. */
static void stop(cv_broker_t *self, bool clean)
{
    broker_stop_backup(self, "the broker is stopping");
    broker_purge_stop(self, "the broker is stopping; retention purges the rest when it starts");
    if (clean) {
        broker_commit_saves(self, true); /* a clean stop resends nothing acknowledged, and
                                          * signs what the audit log holds */
        /* what waits for a sync leaves once synced, within a second */
        cv_store_sync_wait(self->store, 1000);
        release_synced(self);
    }
    cv_log_info(self->log, "stopped");
}

void cv_broker_stop_offline(cv_broker_t *self)
{
    assert(!self->router);
    stop(self, true);
}
