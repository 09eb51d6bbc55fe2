/*  cv_broker_admin.c: what administrators ask for (stats, sessions,
 *  reload, purge, review, backup), and the policy reload that SIGHUP asks
 *  for too. Work that needs the store to itself runs after the turn's
 *  commit; a backup runs in its own thread. See cv_broker_int.h.
 */
#include "cv_broker_int.h"

/* ------------------------------------------------------------------------ */
/*  Policy reload and administration.                                       */

/*  The answer to an administrator's request whose turn rolled back. */
#define DROPPED_WITH_THE_TURN                                                                      \
    "the store could not commit the turn that took this request, so nothing was done; retry"

/*  Whether the session's key is still one of its agency's in the policy. */
static bool key_still_listed(cv_broker_t *self, const session_t *s)
{
    int a = cv_policy_agency_find(self->policy, s->agency);
    return a >= 0 && cv_agency_has_key(cv_policy_agency(self->policy, a), s->key);
}

/*  Whether the session's screening feed, if it has one, still sends to
 *  its agency (the feed may be gone, or sent to others only). */
static bool feed_still_sent(cv_broker_t *self, const session_t *s)
{
    return !*s->feed || cv_policy_feed_recipient(self->policy, s->feed,
                                                 cv_policy_agency_find(self->policy, s->agency));
}

/*  Ends the sessions of keys the policy no longer lists (Error REVOKED)
 *  and on screening feeds that no longer send to their agency (Error
 *  FORBIDDEN, as a Hello for such a feed gets): they get nothing more. */
static void revoke_removed(cv_broker_t *self)
{
    zlistx_t *revoked = zlistx_new(); /* not deleted while the table is walked */
    for (session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions)) {
        if (!key_still_listed(self, s) || !feed_still_sent(self, s))
            zlistx_add_end(revoked, s);
        else
            broker_set_dirty(self, s, true); /* the new policy may send more, or less */
    }
    for (session_t *s = zlistx_first(revoked); s; s = zlistx_next(revoked)) {
        bool key_gone = !key_still_listed(self, s);
        broker_send_error(self, s->routing, key_gone ? E_REVOKED : E_FORBIDDEN,
                          key_gone
                              ? "this agency's key is no longer in the policy"
                              : "no screening feed of that name sends to this agency any more");
        cv_log_info(self->log, "revoked: %s%s%s", s->agency, key_gone ? "" : " feed ",
                    key_gone ? "" : s->feed);
        self->stats.revoked++;
        /* nothing more, not even what waits for a sync; its connection,
         * which a client may use for a new Hello, is bounded as a new one */
        broker_release_connection(self, s);
    }
    zlistx_destroy(&revoked);
}

/*  Loads the policy file again, in a transaction of its own, with its
 *  leaf and, when an administrator asked (admin), theirs. The new policy
 *  is put in force only once they have committed: a reload in a turn that
 *  then rolled back left the new policy deciding with no leaf to say so,
 *  and the log's decisions must each follow the leaf of the policy they
 *  were made under. On any error, the file's or the store's, or a version
 *  below one in force before (broker_policy_not_rolled_back), the old
 *  policy stays. A file unchanged (the same hash) writes no policy leaf
 *  and sends no delivery again (an administrator's reloads would each
 *  make every session resend all it has in flight); *unchanged, when not
 *  NULL, says so. Never in a turn. */
bool broker_reload(cv_broker_t *self, const char *admin, bool *unchanged, cv_error_t *err)
{
    /* in a turn, its commit would commit the turn's work half done */
    assert(!cv_store_in_transaction(self->store));
    cv_policy_t *fresh = broker_load_policy(self, err);
    cv_error_t recorded = {0};
    bool begun = cv_store_begin(self->store, &recorded);
    if (begun && fresh && !broker_policy_not_rolled_back(self, fresh, err))
        cv_policy_destroy(&fresh);
    bool same = fresh && strcmp(cv_policy_hash(fresh), cv_policy_hash(self->policy)) == 0;
    if (unchanged)
        *unchanged = same;
    bool ok = begun && (same    ? true
                        : fresh ? cv_record_policy(self->record, fresh, &recorded)
                                : cv_record_policy_refused(self->record, err->msg, &recorded));
    if (ok && admin)
        ok = cv_record_admin(self->record, admin, "reload", fresh != NULL, &recorded);
    bool committed = begun && broker_end_recorded(self, ok, &recorded);
    if (!fresh) {
        self->stats.reload_failures++;
        cv_log_warning(self->log, "reload refused, the old policy stays: %s", err->msg);
        if (!committed)
            cv_log_error(self->log, "store: the refused reload is not recorded: %s", recorded.msg);
        return false;
    }
    if (!committed) {
        cv_policy_destroy(&fresh);
        self->stats.reload_failures++;
        cv_error_set(err, NULL, 0, 0,
                     "the store could not record the new policy, so it is not in force; the old "
                     "policy stays (%s)",
                     recorded.msg);
        cv_log_error(self->log, "reload: %s", err->msg);
        return false;
    }
    self->stats.reloads++;
    if (same) {
        cv_policy_destroy(&fresh);
    } else {
        cv_policy_destroy(&self->policy);
        self->policy = fresh;
        broker_forget_held_deliveries(self); /* decided again under the new one */
    }
    cv_log_info(self->log, "policy %s version %lld %s (%s)", cv_policy_protocol(self->policy),
                (long long)cv_policy_version(self->policy), same ? "unchanged" : "loaded",
                cv_policy_hash(self->policy));
    broker_repend_displaced(self);
    revoke_removed(self);
    return true;
}

enum { COUNTS = 36 };

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
    COUNT("unreadable", false, "stored reports SQLite cannot read, set aside until a restart",
          cv_store_unreadable_count(self->store));
    COUNT("read_back", true,
          "stored reports read back, not found in the report cache (a subscriber far behind, a "
          "restart, a purge)",
          self->stats.read_back);
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
    COUNT("zap_admitted", true, "handshakes admitted", self->zap ? cv_zap_admitted(self->zap) : 0);
    COUNT("zap_refused", true, "handshakes refused", self->zap ? cv_zap_refused(self->zap) : 0);
    COUNT("handshakes_pending", false, "connections without a session (handshake or Hello due)",
          self->guard ? cv_guard_pending(self->guard) : 0);
    COUNT("handshakes_evicted", true,
          "connections ended without a session (too many, or past the handshake timeout)",
          self->guard ? cv_guard_evicted(self->guard) : 0);
    COUNT("handshakes_failed", true, "handshakes that failed",
          self->guard ? cv_guard_handshakes_failed(self->guard) : 0);
    COUNT("reloads", true, "policy reloads", self->stats.reloads);
    COUNT("reload_failures", true, "policy reloads refused", self->stats.reload_failures);
    cv_sync_counts_t syncs = cv_store_sync_counts(self->store);
    COUNT("wal_syncs", true, "fdatasyncs of the WAL (--sync full)", syncs.syncs);
    COUNT("wal_sync_stalls", true, "fdatasyncs of the WAL that took over 5 ms", syncs.stalls);
    COUNT("wal_sync_stall_us", true,
          "microseconds WAL fdatasyncs took beyond their first 5 ms: what was due meanwhile "
          "waited longer",
          syncs.stall_us);
    COUNT("turns", true, "turns of the broker's loop (a busy one turns without waiting)",
          self->turns);
    COUNT("wakeups_recovered", true,
          "messages the loop found only by its periodic look at idle sockets (a bug to report)",
          self->poller ? cv_poller_recovered(self->poller) : 0);
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
void broker_publish_monitor(cv_broker_t *self, int64_t *next)
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
    zlistx_set_comparator(all, broker_session_compare_serial);
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
            .in_flight = broker_in_flight(s),
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

/*  The request's id goes back with its reply, so that a client whose call
 *  gave up does not take this reply as the next call's answer. */
static zmsg_t *admin_reply(const zframe_t *routing, uint64_t id, bool ok, const char *text)
{
    Caveat__Wire__AdminReply reply = CAVEAT__WIRE__ADMIN_REPLY__INIT;
    reply.has_ok = true;
    reply.ok = ok;
    reply.text = (char *)text;
    reply.has_id = id != 0;
    reply.id = id;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_ADMIN_REPLY;
    frame.admin_reply = &reply;
    return broker_frame_message(routing, &frame);
}

static void send_admin_reply(cv_broker_t *self, const zframe_t *routing, uint64_t id, bool ok,
                             const char *text)
{
    zmsg_t *msg = admin_reply(routing, id, ok, text);
    broker_send_now(self, &msg);
}

/*  A reply that says something was done: it leaves once the commit that
 *  did it is on disk, as a PublishAck does. */
static void send_admin_reply_synced(cv_broker_t *self, const zframe_t *routing, uint64_t session,
                                    uint64_t id, bool ok, const char *text)
{
    held_t *h = cv_xcalloc(1, sizeof *h);
    h->msg = admin_reply(routing, id, ok, text);
    h->session = session; /* dropped if the session ends before the sync */
    broker_hold(self, h);
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

/*  The reports whose review said to keep them until now, at most limit
 *  (0: all): total and these, or -1. */
static int purge_reviewed(cv_broker_t *self, int64_t now, bool dry_run, int limit,
                          cv_admin_purged_t *list, int total, cv_error_t *err)
{
    purge_each_t each = {
        .broker = self, .list = list, .dry_run = dry_run, .rule = CV_STORE_REVIEW_RULE};
    int purged = cv_store_purge_reviewed(self->store, now, dry_run, limit, on_purged, &each, err);
    if (each.err.msg[0]) {
        *err = each.err;
        purged = -1;
    }
    return purged < 0 ? -1 : total + purged;
}

/*  What is left of limit (0: no limit) once total are purged: 0 when none
 *  is, -1 when there is no limit. */
static int left_of(int limit, int total)
{
    return limit <= 0 ? -1 : total < limit ? limit - total : 0;
}

/*  Every category's reports past its period, then the reviewed ones due,
 *  at most limit in all (0: all): how many, or -1. */
static int purge_categories(cv_broker_t *self, const cv_purge_how_t *how, int limit,
                            cv_admin_purged_t *list, cv_error_t *err)
{
    bool dry_run = how->dry_run;
    int64_t now = how->at_given ? how->at : (int64_t)time(NULL), period;
    /* a time given is a question about that clock, not about this one */
    if (!how->at_given &&
        (!clock_trusted(self, now, how->trust, err) || (!dry_run && !trust_clock(self, now, err))))
        return -1;
    char **categories = NULL;
    int n = cv_store_categories(self->store, &categories, err), total = n < 0 ? -1 : 0;
    for (int i = 0; i < n; i++) {
        const char *rule;
        int purged = 0, left = left_of(limit, total);
        purge_each_t each = {.broker = self, .list = list, .dry_run = dry_run};
        if (total >= 0 && left != 0 &&
            cv_policy_retention(self->policy, categories[i], &period, &rule)) {
            each.rule = rule;
            purged = cv_store_purge_reports(self->store, categories[i], now - period, rule, dry_run,
                                            left < 0 ? 0 : left, on_purged, &each, err);
        }
        if (each.err.msg[0]) { /* not recorded: nothing may be purged */
            *err = each.err;
            purged = -1;
        }
        total = purged < 0 || total < 0 ? -1 : total + purged;
        free(categories[i]);
    }
    free(categories);
    int left = total < 0 ? 0 : left_of(limit, total);
    if (total < 0 || left == 0)
        return total;
    return purge_reviewed(self, now, dry_run, left < 0 ? 0 : left, list, total, err);
}

/*  Reports were removed from the store in the open transaction (by
 *  retention or a disposal): the feedback on them goes too. */
static bool forget_removed(cv_broker_t *self, cv_error_t *err)
{
    return cv_feedback_forget_orphans(self->feedback, err) >= 0;
}

/*  ...and that committed: n more purged, and nothing removed is sent
 *  again, not even from memory. The queues still name them: the pump
 *  drops an entry whose report is gone, and a resend passes over one
 *  (entry_for), so they are read back without them once, when the purge
 *  ends (purge_end), not after every step: reading every queue back costs
 *  in proportion to what waits in them all. */
static void removed(cv_broker_t *self, int n)
{
    self->stats.purged += (uint64_t)n;
    if (n > 0)
        cv_cache_forget(self->cache);
}

/*  Saves every queue's acknowledgements now, in a transaction of their
 *  own; if that fails the queues are read back as the store has them. */
void broker_commit_saves(cv_broker_t *self, bool checkpoint)
{
    cv_error_t err = {0};
    if (!cv_store_begin(self->store, &err))
        return;
    cv_views_finish(self->views); /* the last turn's, for the leaves the save writes */
    broker_save_queues(self, true);
    if (!broker_turn_failing(self) && !cv_record_flush(self->record, checkpoint, &err))
        broker_fail_turn(self, err.msg);
    if (broker_turn_failing(self) || !cv_store_commit(self->store, &err)) {
        cv_record_discard(self->record);
        cv_store_rollback(self->store);
        cv_receipts_settle(self->receipts, false);
        self->turn_error.msg[0] = '\0';
        broker_reload_queues(self);
    } else
        cv_receipts_settle(self->receipts, true);
}

/*  One transaction, all or nothing: at most limit reports (0: all) purged,
 *  or every one a dry run would purge listed. How many, or -1. */
static int purge_once(cv_broker_t *self, const cv_purge_how_t *how, int limit,
                      cv_admin_purged_t *list, cv_error_t *err)
{
    bool dry_run = how->dry_run;
    if (!dry_run)
        broker_commit_saves(self, false); /* a step's transaction is its own */
    if (!cv_store_begin(self->store, err))
        return -1;
    int total = purge_categories(self, how, dry_run ? 0 : limit, list, err);
    if (total > 0 && !dry_run && !forget_removed(self, err))
        total = -1;
    if (!broker_end_recorded(self, total >= 0 && !dry_run, err))
        return dry_run && total >= 0 ? total : -1;
    removed(self, total);
    return total;
}

/*  The session that asked on routing under key, if it is still there: a
 *  routing id alone may be another connection's by the time the answer
 *  goes. NULL otherwise. */
static session_t *asker_of(cv_broker_t *self, const zframe_t *routing,
                           const uint8_t key[CV_KEY_BYTES])
{
    session_t *s = broker_session_of(self, routing);
    return s && !s->gone_at && sodium_memcmp(s->key, key, CV_KEY_BYTES) == 0 ? s : NULL;
}

/*  The answer to a deferred request, to the session that asked (asker),
 *  if it is still there; synced: once the commit that did it is on disk. */
static void answer_deferred(cv_broker_t *self, const deferred_t *d, uint64_t asker, bool synced,
                            bool ok, const char *text)
{
    if (!asker)
        cv_log_info(self->log, "%s: the administrator who asked has gone: no reply",
                    d->request->command);
    else if (synced)
        send_admin_reply_synced(self, d->routing, asker, d->request->id, ok, text);
    else
        send_admin_reply(self, d->routing, d->request->id, ok, text);
}

/*  A purge goes in steps: each removes at most purge_step reports in a
 *  transaction of its own, and the loop runs a turn between two (one step
 *  each time round, cv_broker_run), so that retention catching up on a
 *  million reports, after a policy shortened a period or a long stop,
 *  holds every agency's traffic for one step at a time, not for minutes.
 *  One purge goes at a time: retention's own, hourly, or an
 *  administrator's, whose reply waits for its last step; administrators'
 *  purges asked meanwhile wait their turn. A dry run only reads: it is
 *  answered at once. */

static int purge_step_size(const cv_broker_t *self)
{
    return self->config.purge_step > 0 ? self->config.purge_step : PURGE_STEP;
}

static deferred_t *take_waiting_purge(cv_broker_t *self);
static void deferred_free(deferred_t *d);

/*  The purge going ends, ok or with error: the administrator who asked is
 *  answered (once its last commit is on disk), retention says what it
 *  did; the next administrator's purge waiting begins. */
static void purge_end(cv_broker_t *self, const char *error)
{
    assert(self->purging.going);
    deferred_t *d = self->purging.asked;
    int total = self->purging.total;
    if (d) {
        session_t *s = asker_of(self, d->routing, d->key);
        char failed[sizeof((cv_error_t *)0)->msg + 64] = "";
        if (error)
            snprintf(failed, sizeof failed, total ? "%s (%d purged before it)" : "%s", error,
                     total);
        char *reply = cv_admin_purged_reply(&self->purging.list, false, error ? -1 : total, failed);
        answer_deferred(self, d, s ? s->serial : 0, total > 0, !error, reply);
        free(reply);
        deferred_free(d);
    } else if (error && total) {
        cv_log_warning(self->log, "retention: %s (%d purged before it)", error, total);
    } else if (error) {
        cv_log_warning(self->log, "retention: %s", error);
    }
    if (total > 0) {
        cv_log_info(self->log, "retention: purged %d reports (%d steps)", total,
                    self->purging.steps);
        /* acknowledgements taken since the last step are saved first: the
         * queues read back are the store's (a stop ends a purge here) */
        broker_commit_saves(self, false);
        broker_reload_queues(self);
    }
    self->purging.going = false;
    self->purging.asked = NULL;
    if ((d = take_waiting_purge(self))) {
        cv_purge_how_t how;
        bool parsed =
            cv_admin_purge_args((const char *const *)d->request->args, d->request->n_args, &how);
        assert(parsed); /* checked before it waited */
        (void)parsed;
        broker_purge_begin(self, &how, d);
    }
}

void broker_purge_begin(cv_broker_t *self, const cv_purge_how_t *how, deferred_t *asked)
{
    assert(!self->purging.going && !how->dry_run);
    self->purging.going = true;
    self->purging.how = *how;
    self->purging.asked = asked;
    self->purging.list = asked ? cv_admin_purged_new() : NULL;
    self->purging.total = 0;
    self->purging.steps = 0;
}

/*  A step purges purge_step reports, or as many as the last turn stored
 *  if more: reports fall due at the rate they were stored a period ago, so
 *  a step a turn that took no more than a fixed number would fall behind
 *  a broker storing more than that a turn, and never end. Stored, not
 *  published: reports refused, or sent again, would let an agency make
 *  every step as long as a turn of its junk. A turn stores at most
 *  REPORTS_PER_TURN and one Publish more. */
void broker_purge_step(cv_broker_t *self)
{
    if (!self->purging.going)
        return;
    cv_error_t err = {0};
    int limit = purge_step_size(self);
    if (self->turn_stored > (size_t)limit)
        limit = (int)self->turn_stored;
    int n = purge_once(self, &self->purging.how, limit, self->purging.list, &err);
    self->purging.steps++;
    if (n >= 0)
        self->purging.total += n;
    if (n < 0 || n < limit) /* fewer than a step's worth: none left */
        purge_end(self, n < 0 ? err.msg : NULL);
}

/*  The broker stops with purges going or waiting: each administrator who
 *  asked is told why they end there. */
void broker_purge_stop(cv_broker_t *self, const char *why)
{
    while (self->purging.going)
        purge_end(self, why);
}

/*  The broker is destroyed: what is left goes unanswered (an offline
 *  broker's; a running one stopped them, broker_purge_stop). */
void broker_purge_forget(cv_broker_t *self)
{
    if (self->purging.asked)
        deferred_free(self->purging.asked);
    cv_admin_purged_destroy(&self->purging.list);
    deferred_t *d;
    while ((d = zlistx_detach(self->purging.waiting, NULL)))
        deferred_free(d);
    zlistx_destroy(&self->purging.waiting);
    self->purging.going = false;
}

static void run_purge(cv_broker_t *self, deferred_t **d_p, uint64_t asker)
{
    deferred_t *d = *d_p;
    const Caveat__Wire__AdminRequest *request = d->request;
    cv_purge_how_t how;
    if (!cv_admin_purge_args((const char *const *)request->args, request->n_args, &how)) {
        answer_deferred(self, d, asker, false, false, cv_admin_purge_usage);
        return;
    }
    if (!how.dry_run) { /* the purge takes the request over */
        *d_p = NULL;
        if (self->purging.going)
            zlistx_add_end(self->purging.waiting, d);
        else {
            broker_purge_begin(self, &how, d);
            broker_purge_step(self); /* a purge of one step answers in this turn */
        }
        return;
    }
    cv_admin_purged_t *list = cv_admin_purged_new();
    cv_error_t err = {0};
    int total = purge_once(self, &how, 0, list, &err);
    char *reply = cv_admin_purged_reply(&list, true, total, err.msg);
    answer_deferred(self, d, asker, false, total >= 0, reply);
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
        broker_commit_saves(self, false); /* the queues are read back after a disposal */
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
    if (!broker_end_recorded(self, found == 1, err))
        return found == 1 ? -1 : found;
    if (decision->dispose) { /* the queues are read back at once, as no purge ends for it */
        removed(self, 1);
        broker_reload_queues(self);
    }
    return 1;
}

static void run_review(cv_broker_t *self, const deferred_t *d, uint64_t asker)
{
    const Caveat__Wire__AdminRequest *request = d->request;
    int64_t now = (int64_t)time(NULL);
    cv_review_args_t args;
    const char *why = NULL;
    if (!cv_admin_review_args((const char *const *)request->args, request->n_args, now, &args,
                              &why)) {
        answer_deferred(self, d, asker, false, false, why);
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
    answer_deferred(self, d, asker, found == 1, found == 1, text);
    free(text);
}

static void run_reload(cv_broker_t *self, const deferred_t *d, uint64_t asker)
{
    cv_error_t err = {0};
    bool unchanged = false;
    bool ok = broker_reload(self, d->admin, &unchanged, &err);
    answer_deferred(self, d, asker, ok, ok,
                    !ok         ? err.msg
                    : unchanged ? "reloaded: the policy is unchanged"
                                : "reloaded");
}

static void deferred_free(deferred_t *d)
{
    zframe_destroy(&d->routing);
    caveat__wire__admin_request__free_unpacked(d->request, NULL);
    free(d);
}

/*  After the turn's commit: the backup it readied begins (broker_unstart_
 *  backup stopped one whose turn rolled back), and the requests it took
 *  run, each in a transaction of its own. */
/*  Whether key is an administrator's under the policy in force. */
static bool still_administrator(const cv_broker_t *self, const uint8_t key[CV_KEY_BYTES])
{
    int agency = cv_policy_agency_by_key(self->policy, key);
    return agency >= 0 && cv_policy_agency(self->policy, agency)->admin;
}

void broker_run_all_deferred(cv_broker_t *self)
{
    if (self->backup.run && !self->backup.going) {
        cv_backup_go(self->backup.run);
        self->backup.going = true;
    }
    deferred_t *d;
    while ((d = zlistx_detach(self->deferred, NULL))) {
        /* the work stands whoever is there; the answer goes to the session
         * that asked alone: its routing id may be another connection's now */
        session_t *s = asker_of(self, d->routing, d->key);
        uint64_t asker = s ? s->serial : 0;
        /* under the policy in force now: a reload run before it in this
         * batch may have taken the key's administration away */
        if (!still_administrator(self, d->key)) {
            cv_log_warning(self->log, "%s asked by %s not run: no longer an administrator",
                           d->request->command, d->admin);
            answer_deferred(self, d, asker, false, false,
                            "not run: no longer an administrator under the policy now in force");
        } else if (strcmp(d->request->command, "review") == 0)
            run_review(self, d, asker);
        else if (strcmp(d->request->command, "reload") == 0) {
            run_reload(self, d, asker);
            /* let go above, it has copied a step at most: a copy of the
             * store and its keys is for an administrator alone */
            if (self->backup.run && !still_administrator(self, self->backup.key))
                broker_stop_backup(self, "the administrator who asked is no longer one under the "
                                         "policy now in force");
        } else
            run_purge(self, &d, asker);
        if (d)
            deferred_free(d);
    }
}

/*  The first administrator's purge waiting whose key is still an
 *  administrator's; those that are no longer are answered so. */
static deferred_t *take_waiting_purge(cv_broker_t *self)
{
    deferred_t *d;
    while ((d = zlistx_detach(self->purging.waiting, NULL))) {
        if (still_administrator(self, d->key))
            return d;
        session_t *s = asker_of(self, d->routing, d->key);
        answer_deferred(self, d, s ? s->serial : 0, false, false,
                        "not run: no longer an administrator under the policy now in force");
        deferred_free(d);
    }
    return NULL;
}

/*  The turn that took these requests rolled back, their leaves with it:
 *  none is done, and each asker is told so, as a publisher is. */
void broker_drop_deferred(cv_broker_t *self)
{
    deferred_t *d;
    while ((d = zlistx_detach(self->deferred, NULL))) {
        if (asker_of(self, d->routing, d->key))
            send_admin_reply(self, d->routing, d->request->id, false, DROPPED_WITH_THE_TURN);
        deferred_free(d);
    }
}

/*  Keeps a copy of the request (the frame it came in is freed); false
 *  when the copy does not unpack. */
static bool defer(cv_broker_t *self, const zframe_t *routing, const uint8_t key[CV_KEY_BYTES],
                  const char *admin, const Caveat__Wire__AdminRequest *request)
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
    memcpy(d->key, key, CV_KEY_BYTES);
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

/*  Starts the backup request asks for, or answers why not: whether it
 *  started. */
static bool start_backup(cv_broker_t *self, const zframe_t *routing,
                         const uint8_t key[CV_KEY_BYTES], const Caveat__Wire__AdminRequest *request)
{
    char text[4096], db_path[4200];
    if (request->n_args != 1) {
        send_admin_reply(self, routing, request->id, false,
                         "backup needs one argument: a new directory");
        return false;
    }
    if (self->backup.run) {
        snprintf(text, sizeof text, "a backup is already running (to %s); ask again once it ends",
                 cv_backup_dir(self->backup.run));
        send_admin_reply(self, routing, request->id, false, text);
        return false;
    }
    if (cv_space_short(self->space)) {
        send_admin_reply(self, routing, request->id, false, SHORT_DISK_STOPS_BACKUPS);
        return false;
    }
    snprintf(db_path, sizeof db_path, "%s/caveat.db", self->config.data_dir);
    /* a copy on the store's disk must not take what the reserve counts on */
    int rate = self->config.backup_rate_mb ? self->config.backup_rate_mb : BACKUP_RATE_MB;
    self->backup.run =
        cv_backup_new(db_path, request->args[0], self->pseudonym_key,
                      cv_space_resume_at(self->space), rate > 0 ? rate : 0, text, sizeof text);
    if (!self->backup.run) {
        cv_log_info(self->log, "backup: %s", text);
        send_admin_reply(self, routing, request->id, false, text);
        return false;
    }
    self->backup.routing = zframe_dup((zframe_t *)routing);
    self->backup.request_id = request->id;
    self->backup.going = false; /* until its turn commits (broker_run_all_deferred) */
    memcpy(self->backup.key, key, CV_KEY_BYTES);
    /* shared: the backup's own code looks at its socket too */
    self->backup_in = cv_inbox_new(cv_backup_socket(self->backup.run), false);
    if (self->poller && self->backup_in)
        cv_poller_add(self->poller, self->backup_in);
    cv_log_info(self->log, "backup: to %s, in the background", request->args[0]);
    return true;
}

/*  Ends the backup (stopping it if it runs: its thread removes what it
 *  wrote) and answers the session that asked, when it is still there
 *  under the same key: a routing id alone may have been reused. */
static void end_backup(cv_broker_t *self, bool ok, const char *text)
{
    assert(self->backup.run);
    if (self->poller && self->backup_in)
        cv_poller_remove(self->poller, self->backup_in);
    cv_inbox_destroy(&self->backup_in);
    cv_backup_destroy(&self->backup.run); /* a stop waits for one step of the copy at most */
    cv_log_info(self->log, "backup: %s", text);
    if (asker_of(self, self->backup.routing, self->backup.key))
        send_admin_reply(self, self->backup.routing, self->backup.request_id, ok, text);
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
void broker_stop_backup(cv_broker_t *self, const char *why)
{
    reap_backup(self); /* it may have ended already */
    if (!self->backup.run)
        return;
    cv_backup_stop(self->backup.run);
    int pages = 0, copied = cv_backup_copied(self->backup.run, &pages);
    char text[CV_BACKUP_TEXT], progress[64] = "";
    if (pages > 0) /* how far it got: a stop waits for one step of the copy */
        snprintf(progress, sizeof progress, "; %d of %d pages had been copied", copied, pages);
    snprintf(text, sizeof text, "%s: backup stopped, its copy removed: %s%s",
             cv_backup_dir(self->backup.run), why, progress);
    end_backup(self, false, text);
}

/*  The turn that readied the backup rolled back, and the leaf that
 *  recorded it with it: the backup, which has copied nothing yet, is
 *  stopped, as a purge asked in that turn is not run. */
void broker_unstart_backup(cv_broker_t *self)
{
    if (self->backup.run && !self->backup.going)
        broker_stop_backup(self, DROPPED_WITH_THE_TURN);
}

/*  Every time round the loop: a backup that ended is answered, and one
 *  that runs is stopped when the disk goes short. While a backup runs the
 *  disk is looked at every BACKUP_LOOK_MS (a statvfs), idle or not, and
 *  not only every 100 ms of turns: the WAL grows behind it. */
void broker_watch_backup(cv_broker_t *self)
{
    reap_backup(self);
    if (!self->backup.run)
        return;
    int64_t now = zclock_mono();
    if (now >= self->backup.next_look) {
        self->backup.next_look = now + BACKUP_LOOK_MS;
        if (cv_space_check(self->space, true))
            broker_disk_changed(self);
    }
    if (cv_space_short(self->space))
        broker_stop_backup(self, SHORT_DISK_STOPS_BACKUPS);
}

/*  An administrator's action that changes something (reload, backup,
 *  purge) goes into the audit log as it is asked for; ok says whether it
 *  was taken (a reload's outcome; a backup's, started or refused at once,
 *  and a purge's come later, in the reply and the broker's log). */
static void record_admin(cv_broker_t *self, const char *agency, const char *action, bool ok)
{
    cv_error_t err = {0};
    if (!cv_record_admin(self->record, agency, action, ok, &err))
        broker_fail_turn(self, err.msg);
}

void broker_on_admin(cv_broker_t *self, const zframe_t *routing, int agency,
                     const uint8_t key[CV_KEY_BYTES], const Caveat__Wire__AdminRequest *request)
{
    if (!cv_policy_agency(self->policy, agency)->admin) {
        /* logged before the answer: whoever reads the answer finds the line */
        const char *id = cv_policy_agency(self->policy, agency)->id;
        cv_log_agency(self->log, id, false, "admin request from %s refused: not an administrator",
                      id);
        /* as every refusal a listed agency can repeat: at most so many a second */
        broker_send_error_limited(self, routing, agency, E_FORBIDDEN, "not an administrator");
        return;
    }
    const char *command = request->command ? request->command : "";
    /* an administrator's key is one more key that may leak: each reload,
     * purge or review is a transaction of its own, a reload reads a policy
     * of up to 64 MB, a backup copies the store (the questions, stats and
     * the like, are not counted: monitoring asks them often) */
    bool work = strcmp(command, "reload") == 0 || strcmp(command, "purge") == 0 ||
                strcmp(command, "review") == 0 || strcmp(command, "backup") == 0;
    if (work && broker_over_rate(self, routing, agency, &broker_use_of(self, agency)->admin,
                                 ADMIN_PER_SECOND,
                                 "more admin work a second than the broker takes from one agency"))
        return;
    char admin[256]; /* a reload frees the policy that names it */
    snprintf(admin, sizeof admin, "%s", cv_policy_agency(self->policy, agency)->id);
    if (strcmp(command, "stats") == 0) {
        char *text = stats_json(self);
        send_admin_reply(self, routing, request->id, text != NULL, text);
        free(text);
    } else if (strcmp(command, "reload") == 0) {
        /* after the commit, with its leaves (broker_reload) */
        if (!defer(self, routing, key, admin, request))
            broker_send_error(self, routing, E_BAD_REQUEST,
                              "an admin request that does not read back");
    } else if (strcmp(command, "sessions") == 0) {
        char *text = sessions_json(self);
        send_admin_reply(self, routing, request->id, true, text);
        free(text);
    } else if (strcmp(command, "quarantined") == 0) {
        char *text = quarantined_json(self);
        send_admin_reply(self, routing, request->id, text != NULL,
                         text ? text : "the store cannot list them");
        free(text);
    } else if (strcmp(command, "backup") == 0) {
        record_admin(self, admin, command, start_backup(self, routing, key, request));
    } else if (strcmp(command, "purge") == 0 || strcmp(command, "review") == 0) {
        bool taken = defer(self, routing, key, admin, request);
        record_admin(self, admin, command, taken);
        if (!taken)
            broker_send_error(self, routing, E_BAD_REQUEST,
                              "an admin request that does not read back");
    } else {
        broker_send_error(self, routing, E_BAD_REQUEST, "unknown admin command");
    }
}
