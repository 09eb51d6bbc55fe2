/*  cv_broker_deliver.c: sessions with credit take their queue's next
 *  reports, each decided and redacted with the policy in force, packed
 *  into Delivers that wait for the turn's commit; acknowledgements free
 *  the credit and are saved in bulk. See cv_broker_int.h.
 */
#include "cv_broker_int.h"

/* ------------------------------------------------------------------------ */
/*  Delivering.                                                             */

/*  A delivery packed in self->pack.bytes (an offset: the buffer grows). */
typedef struct {
    size_t off, len;
    uint64_t seq;
} packed_t;

/*  Decides one queued report (read back, or NULL) for the agency of a
 *  queue with the policy in force now; the report, or NULL when it no
 *  longer goes to this queue. */
static const Caveat__Report *decide_for(cv_broker_t *self, const char *agency_id,
                                        const char *queue_feed, const Caveat__Report *report)
{
    int agency = cv_policy_agency_find(self->policy, agency_id);
    cv_approvals_t approvals;
    if (!report || agency < 0 ||
        !cv_policy_decide(self->policy, report, agency,
                          broker_approvals_of(self, report, &approvals), self->decision))
        return NULL;
    const char *feed = cv_decision_feed(self->decision);
    return strcmp(feed ? feed : "", queue_feed) == 0 ? report : NULL;
}

static const Caveat__Report *decide_entry(cv_broker_t *self, const session_t *s, int64_t rowid)
{
    return decide_for(self, s->agency, s->feed, broker_report_at(self, rowid));
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

/*  The view of the report at rowid under the last decision: the report as
 *  stored when the recipient is given all of it (the view is then the
 *  report itself), the one this pump's pass already packed under the same
 *  name (cv_views.h), or packed now into pack.view; NULL when it cannot be
 *  packed. */
static const uint8_t *view_of(cv_broker_t *self, int64_t rowid, const Caveat__Report *report,
                              int64_t name, size_t *len, const uint8_t **hash)
{
    const uint8_t *view = cv_decision_shares_all(self->decision)
                              ? cv_cache_packed(self->cache, rowid, report, len)
                              : NULL;
    /* the whole report, as stored: its hash was taken as it was stored */
    *hash = view ? cv_cache_view_hash(self->cache, rowid, report) : NULL;
#ifndef NDEBUG
    if (*hash) {
        uint8_t own[CV_VIEW_HASH_BYTES];
        cv_checksum_sha256(own, view, *len);
        assert(memcmp(own, *hash, sizeof own) == 0);
    }
#endif
    if (!view)
        view = cv_views_find(self->views, rowid, name, len);
#ifndef NDEBUG
    /* the policy's promise that the bytes are the same: a name, or all */
    if (view)
        assert(pack_view(self, report) == *len && memcmp(self->pack.view, view, *len) == 0);
#endif
    if (view)
        return view;
    *len = pack_view(self, report);
    return *len ? self->pack.view : NULL;
}

/*  Appends d, packed, to pack.bytes. */
static void append_delivery(cv_broker_t *self, const Caveat__Wire__PackedDelivery *d, packed_t *out)
{
    size_t len = caveat__wire__packed_delivery__get_packed_size(d);
    reserve(&self->pack.bytes, &self->pack.cap, self->pack.used + len);
    out->off = self->pack.used;
    out->len = len;
    out->seq = d->seq;
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
    int64_t rowid;
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
    e->rowid = rowid;
    e->report = decide_entry(self, s, rowid);
    e->feedback = false;
    if (e->report || broker_turn_failing(self))
        return e->report != NULL;
    /* no report has this rowid: feedback may */
    int found = feedback_for(self, s->agency, s->feed, rowid, &e->note, &err);
    if (found < 0) /* the store failed to read: the turn fails, nothing is dropped */
        broker_fail_turn(self, err.msg);
    e->feedback = found > 0;
    return e->feedback;
}

static bool pack_delivery(cv_broker_t *self, cv_queue_t *queue, int64_t rowid,
                          const Caveat__Report *report, uint64_t seq, packed_t *out);

/*  Appends the delivery of entry with seq to pack.bytes. */
static bool pack_entry(cv_broker_t *self, cv_queue_t *queue, const entry_t *e, uint64_t seq,
                       packed_t *out)
{
    if (e->report)
        return pack_delivery(self, queue, e->rowid, e->report, seq, out);
    return pack_feedback(self, queue, &e->note, seq, out);
}

/*  Appends the Delivery of report under the last decision, packed, to
 *  pack.bytes. Strings are borrowed: protobuf-c only reads them here, and
 *  the report may leave the cache before the frame is packed. */
static bool pack_delivery(cv_broker_t *self, cv_queue_t *queue, int64_t rowid,
                          const Caveat__Report *report, uint64_t seq, packed_t *out)
{
    int64_t name = cv_decision_view_key(self->decision);
    size_t len = 0;
    const uint8_t *hash = NULL;
    const uint8_t *view = view_of(self, rowid, report, name, &len, &hash);
    size_t n_rules = (size_t)cv_decision_told_count(self->decision);
    if (!view)
        return false;
    /* the hash of the exact bytes sent, kept with the delivery in flight
     * for its "delivered" leaf (a resend hashes again what it sends): the
     * whole report's was taken as it was stored (cv_cache_view_hash);
     * another view's is taken beside the loop while the turn commits
     * (cv_views.h), and kept too for the recipients given the same view
     * after this one */
    if (!cv_queue_viewed(queue, seq, hash, report->id))
        return false;
    if (!hash)
        cv_views_add(self->views, queue, seq, rowid, name, view, len);
    reserve(&self->pack.rules, &self->pack.rules_cap, (n_rules + 1) * sizeof(char *));
    char **rules = self->pack.rules;
    for (size_t i = 0; i < n_rules; i++)
        rules[i] = (char *)cv_decision_told_name(self->decision, (int)i);
    Caveat__Wire__PackedDelivery d = CAVEAT__WIRE__PACKED_DELIVERY__INIT;
    d.has_seq = d.has_report = true;
    d.seq = seq;
    d.report_id = (char *)report->id;
    d.feed = (char *)cv_decision_feed(self->decision);
    d.n_rules = n_rules;
    d.rules = rules;
    d.report.len = len;
    d.report.data = (uint8_t *)view;
    append_delivery(self, &d, out);
    return true;
}

static void outbox_add(cv_broker_t *self, uint64_t session, zmsg_t *msg, const packed_t *items,
                       size_t n)
{
    held_t *h = cv_xmalloc(sizeof *h);
    *h = (held_t){.session = session,
                  .msg = msg,
                  .delivery = true,
                  .bytes = zmsg_content_size(msg),
                  .seqs = cv_xmalloc(n * sizeof(uint64_t)),
                  .n_seqs = n};
    for (size_t i = 0; i < n; i++)
        h->seqs[i] = items[i].seq;
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
        outbox_add(self, s->serial, broker_message_to(s->routing, &frame.base), items + from,
                   to - from);
        from = to;
    }
}

/*  The session's queue, resolved (and made) on first use. */
static cv_queue_t *session_queue(cv_broker_t *self, session_t *s)
{
    if (!s->queue)
        s->queue = broker_queue_of(self, s->agency, s->feed);
    return s->queue;
}

/*  Whether the deliveries packed in this pump, with what already waits for
 *  its sync, reach OUT_BYTES_MAX, or the reports read back from the store
 *  in this turn READ_BACK_MAX: a pump stops there, however much credit is
 *  left, so that big reports cannot make one pump hold many times the
 *  bound. A delivery is at most a frame, far below it, and a report read
 *  back at most 16 times its size and 64 KiB, so a bound is passed by at
 *  most one. */
static bool pack_full(const cv_broker_t *self)
{
    return self->out_bytes + self->pack.used >= OUT_BYTES_MAX ||
           cv_cache_turn_reads(self->cache) >= READ_BACK_MAX;
}

/*  Resends what the queue has in flight, with its seqs, from where this
 *  session got to. What the policy no longer releases stays in flight
 *  unsent: a later acknowledgement covers it. Returns the credit used;
 *  *packed, the deliveries in items. */
static size_t pump_resends(cv_broker_t *self, session_t *s, size_t room, packed_t *items,
                           size_t *packed)
{
    size_t n = 0, walked = 0, before = broker_in_flight(s);
    const cv_sent_t *sent;
    bool full = false;
    while (walked < room && !(full = pack_full(self)) &&
           (sent = cv_queue_sent_after(s->queue, s->resent_up_to))) {
        s->resent_up_to = sent->seq;
        walked++;
        entry_t entry;
        if (!entry_for(self, s, sent->item.report, &entry))
            continue; /* not released any more: not sent, takes no credit */
        /* if it could not be packed, the ack timeout resends it */
        if (pack_entry(self, s->queue, &entry, sent->seq, &items[n]))
            n++;
        else
            cv_queue_withdrawn(s->queue, sent->seq);
        broker_session_sent(s, sent->seq);
    }
    if (walked < room && !full) /* nothing more in flight: resent, all of it */
        s->state = SESSION_LIVE;
    *packed = n;
    return broker_in_flight(s) - before;
}

/*  Sends what waits, most urgent first, each given the next seq; one
 *  store row for them all (cv_router.h). What the policy no longer
 *  releases is dropped. Returns the credit used; *packed, the deliveries
 *  in items. */
static size_t pump_new(cv_broker_t *self, session_t *s, size_t room, packed_t *items,
                       size_t *packed, bool *more)
{
    cv_pump_t broker_pump;
    cv_routed_t item;
    cv_error_t err = {0};
    size_t n = 0, dropped = 0;
    cv_router_pump_begin(self->queues, &broker_pump, s->queue);
    /* drops are bounded too (each is a store write): a backlog the policy
     * stopped releasing is dropped over several turns, not in one */
    while (broker_pump.n < room && !(*more = dropped >= DROPS_PER_PUMP || pack_full(self)) &&
           cv_router_pump_take(self->queues, &broker_pump, &item)) {
        /* taken, neither sent nor dropped: it waits in the store until
         * the queues are read from it again */
        if (cv_store_unreadable(self->store, item.report))
            continue;
        entry_t entry;
        if (!entry_for(self, s, item.report,
                       &entry)) { /* dropped for good: no restart queues it again */
            dropped++;
            if (!broker_turn_failing(self) &&
                !cv_router_pump_drop(self->queues, &broker_pump, item, &err))
                broker_fail_turn(self, err.msg);
            continue;
        }
        uint64_t seq = cv_router_pump_give(self->queues, &broker_pump, item);
        if (!seq) {
            broker_fail_turn(self, "out of memory giving a seq");
            break;
        }
        /* a delivery that cannot be packed now counts as sent: the ack
         * timeout sends it again */
        if (pack_entry(self, s->queue, &entry, seq, &items[n]))
            n++;
        else
            cv_queue_withdrawn(s->queue, seq);
        broker_session_sent(s, seq);
    }
    if (!cv_router_pump_end(self->queues, &broker_pump, &err))
        broker_fail_turn(self, err.msg);
    *packed = n;
    return broker_pump.n;
}

/*  Acknowledgements reach the store in bulk, at most every
 *  SAVE_INTERVAL_MS: one row written a queue for many acks. Until then the
 *  store holds the queue as it was, sent rows included, so a crash in
 *  between only means those deliveries are sent again with their seqs. */
void broker_save_queues(cv_broker_t *self, bool now)
{
    int64_t time = zclock_mono();
    if (!now && time < self->next_save)
        return;
    self->next_save = time + SAVE_INTERVAL_MS;
    cv_error_t err = {0};
    if (!cv_router_save_all(self->queues, &err))
        broker_fail_turn(self, err.msg);
}

void broker_pump(cv_broker_t *self, session_t *s)
{
    /* what waits for its sync is bounded in bytes: a fan-out to thousands
     * of sessions (gone or not) goes out over several turns, not all
     * packed at once; the session stays dirty for a later one */
    if (self->out_bytes >= OUT_BYTES_MAX)
        return;
    if (s->gone_at) { /* its connection went: nothing more is sent on its routing id */
        broker_set_dirty(self, s, false);
        return;
    }
    if (s->state == SESSION_PAUSED) {
        broker_set_dirty(self, s, false); /* resend_overdue marks it when the pause ends */
        return;
    }
    size_t room = s->credit > broker_in_flight(s) ? s->credit - broker_in_flight(s) : 0;
    if (room > PUMP_MAX)
        room = PUMP_MAX;
    /* receipts not yet sent hold back deliveries: what one subscriber's
     * receipts can make the broker keep is bounded. The session waits off
     * the pending list until some of them are sent (post_receipts marks it
     * again): dirty with credit, it would make the loop turn without
     * pause, for nothing, until a checkpoint lets them go */
    if (s->receipts && cv_receipts_waiting(self->receipts, s) >= CV_RECEIPTS_WAITING) {
        broker_set_dirty(self, s, false);
        return;
    }
    if (s->publish_only || !session_queue(self, s) || room == 0) {
        broker_set_dirty(self, s, room == 0 && !s->publish_only); /* nothing more until credit */
        return;
    }
    packed_t items[PUMP_MAX];
    self->pack.used = 0;
    if (broker_in_flight(s) == 0)
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
    broker_set_dirty(self, s, used == room || s->state == SESSION_RESENDING || more);
    if (sent)
        post_deliveries(self, s, items, sent);
    if (self->pack.cap > PACK_KEPT) { /* big reports' room, not kept for the life of the process */
        free(self->pack.bytes);
        self->pack.bytes = NULL;
        self->pack.cap = 0;
    }
    if (!sent)
        return;
    /* a seq past the saved acknowledgements plus the credit was sent on the
     * strength of acknowledgements not yet saved: they are saved in this
     * turn, before it leaves, so a delivery whose acknowledgement has had an
     * effect never comes back after a crash */
    cv_error_t err = {0};
    if (cv_queue_unsaved(s->queue) &&
        cv_queue_last_seq(s->queue) > cv_queue_saved_acked(s->queue) + s->credit &&
        !cv_router_save(self->queues, s->queue, &err))
        broker_fail_turn(self, err.msg);
    self->stats.delivered += sent;
}

void broker_on_ack(cv_broker_t *self, session_t *s, const Caveat__Wire__DeliveryAck *ack)
{
    if (ack->has_credit && ack->credit)
        s->credit = ack->credit > MAX_CREDIT ? MAX_CREDIT : ack->credit;
    broker_set_dirty(self, s, true);
    if (!ack->has_up_to)
        return;
    if (s->publish_only) {
        broker_send_error(self, s->routing, E_BAD_ACK, "a send-only session has no deliveries");
        return;
    }
    cv_queue_t *q = session_queue(self, s);
    if (!q || ack->up_to > cv_queue_last_seq(q)) {
        broker_send_error(self, s->routing, E_BAD_ACK, "acknowledges a seq never sent");
        return;
    }
    /* only an acknowledgement of something new shows that the client
     * reads: one of nothing (up_to 0, or repeated) would keep a connection
     * that never reads from ever ending, each pause's resend packed again */
    if (cv_router_ack(self->queues, q, ack->up_to) > 0) {
        s->progress = zclock_mono();
        s->stalled = 0;
    }
    if (ack->up_to > s->acked)
        s->acked = ack->up_to;
    broker_session_acked(s, ack->up_to);
}

/*  The hash of the view the broker would send now for a delivery it did
 *  not send in this process (read back after a restart, and acknowledged
 *  before it was resent): views are deterministic, so under the same
 *  policy it is the one sent. false: the policy no longer releases it. */
static bool view_now(cv_broker_t *self, cv_queue_t *queue, const cv_sent_t *sent,
                     uint8_t hash[CV_VIEW_HASH_BYTES], const char **report_id)
{
    const char *agency = cv_queue_agency(queue), *feed = cv_queue_feed(queue);
    /* a save may hash thousands of them in one turn: beyond the turn's
     * read-back bound each is read, hashed and let go */
    const Caveat__Report *report =
        decide_for(self, agency, feed, broker_report_passing(self, sent->item.report));
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

/*  The acknowledged deliveries the queue's save stores that never left (a
 *  client may acknowledge past a seq it was never sent) lose their route
 *  to the queue, as one the pump dropped: once saved, the queue forgets
 *  they never left, and the route alone would tell feedback that the
 *  agency had the report (broker_on_feedback). */
static bool unroute_never_sent(cv_broker_t *self, cv_queue_t *queue, cv_error_t *err)
{
    size_t acked = cv_queue_acked_count(queue);
    for (size_t i = 0; i < acked; i++) {
        const cv_sent_t *sent = cv_queue_acked_at(queue, i);
        if (!cv_sent_may_be_received(sent) &&
            !cv_store_unroute(self->store, sent->item.report, cv_queue_id(queue), err))
            return false;
    }
    return true;
}

/*  A "delivered" leaf for every CV_RECORD_DELIVERIES_PER_LEAF deliveries
 *  whose acknowledgement the queue's save stores, in the same transaction
 *  (cv_router_set_saving), and a receipt to come for each if the session
 *  serving the queue asked. */
bool broker_record_deliveries(void *arg, cv_queue_t *queue, cv_error_t *err)
{
    cv_broker_t *self = arg;
    if (!unroute_never_sent(self, queue, err))
        return false;
    if (self->config.audit_off)
        return true; /* --audit-log off: no leaf, so no view to hash again */
    const char *agency = cv_queue_agency(queue), *feed = cv_queue_feed(queue);
    session_t *s = broker_session_of_queue(self, agency, feed);
    cv_delivered_t leaf[CV_RECORD_DELIVERIES_PER_LEAF];
    uint8_t hashes[CV_RECORD_DELIVERIES_PER_LEAF][CV_VIEW_HASH_BYTES];
    /* ids decided again: view_now's last only lives until its next call */
    char ids[CV_RECORD_DELIVERIES_PER_LEAF][CV_REPORT_ID_MAX + 1];
    size_t acked = cv_queue_acked_count(queue), n = 0;
    for (size_t i = 0; i < acked; i++) {
        const cv_sent_t *sent = cv_queue_acked_at(queue, i);
        /* one never received is named in no leaf, so in no receipt */
        if (cv_sent_may_be_received(sent)) {
            cv_delivered_t *d = &leaf[n];
            *d = (cv_delivered_t){sent->seq, sent->report_id, sent->viewed ? sent->view : NULL};
            const char *id = sent->report_id;
            if (!sent->viewed && view_now(self, queue, sent, hashes[n], &id))
                d->view = hashes[n];
            if (id != sent->report_id) { /* ids are at most CV_REPORT_ID_MAX: never cut */
                snprintf(ids[n], sizeof ids[n], "%s", id);
                d->report_id = ids[n];
            }
            /* a Deliver of it left, and the last one packed did not: which
             * of the views packed for it was received is not known */
            if (sent->left && sent->withdrawn)
                d->view = NULL;
            n++;
        }
        if (n == 0 || (n < CV_RECORD_DELIVERIES_PER_LEAF && i + 1 < acked))
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
