/*  cv_broker_publish.c: a Publish's reports checked, stored and routed to
 *  the queues the policy releases them to, inside the turn's transaction;
 *  and the turn's failure, which rolls all of it back. See cv_broker_int.h.
 */
#include "cv_broker_int.h"

/* ------------------------------------------------------------------------ */
/*  Publishing.                                                             */

/*  A reason as one line of UTF-8 (docs/protocol.md, "Publishing"): one
 *  may quote the value at fault as the sender gave it (an unknown
 *  category, a claimed originator), which may hold a line feed, a control
 *  character or bytes that are not UTF-8, or be cut inside a character
 *  at the reason's bound. Each byte that is not part of a readable
 *  character becomes '?'. */
static char *one_line(const char *reason)
{
    size_t len = strlen(reason), n = 0;
    if (cv_text_readable(reason, len, ""))
        return cv_xstrdup(reason);
    char *out = cv_xmalloc(len + 1);
    for (size_t i = 0; i < len;) {
        size_t width = 0;
        for (size_t k = 1; k <= 4 && i + k <= len && !width; k++)
            if (cv_text_readable(reason + i, k, ""))
                width = k;
        if (width)
            memcpy(out + n, reason + i, width);
        else
            out[n] = '?';
        n += width ? width : 1;
        i += width ? width : 1;
    }
    out[n] = '\0';
    return out;
}

/*  A result names its report by the id it came with, if that is an id at
 *  all: one of a megabyte echoed in each result of a frame of 500 would
 *  make an answer far bigger than what the sender sent, held in libzmq's
 *  queue for a sender that never reads. A stored report's id passed the
 *  same check (or is the broker's), so only a refusal's is looked at. */
static void set_result(Caveat__Wire__PublishResult *result, Caveat__Wire__Status status,
                       const char *id, const char *reason)
{
    cv_error_t err;
    bool named = id && (status == CAVEAT__WIRE__STATUS__OK || cv_policy_report_id_ok(id, &err));
    result->has_status = true;
    result->status = status;
    result->report_id = cv_xstrdup(named ? id : "");
    result->reason = reason ? one_line(reason) : NULL;
}

/* ------------------------------------------------------------------------ */
/*  Queues and the report cache. Both mirror rows of the store, so a
 *  rolled-back turn forgets them (turn_failed).                            */

/*  The first failure of a turn, kept with the store's own message: the
 *  turn rolls back and says why. */
void broker_fail_turn(cv_broker_t *self, const char *why)
{
    if (!self->turn_error.msg[0])
        cv_error_set(&self->turn_error, NULL, 0, 0, "%s", why && *why ? why : "a write failed");
}

bool broker_turn_failing(const cv_broker_t *self)
{
    return self->turn_error.msg[0] != '\0';
}

/*  The queue (agency, feed), made (in the store too) on first use. */
cv_queue_t *broker_queue_of(cv_broker_t *self, const char *agency, const char *feed)
{
    cv_error_t err = {0};
    cv_queue_t *q = cv_router_queue(self->queues, agency, feed, &err);
    if (!q)
        broker_fail_turn(self, err.msg);
    return q;
}

/*  Every queue as the store has it: at start, and after a turn that failed
 *  to commit, whose changes to the queues in memory are thrown away. */
bool broker_load_queues(cv_broker_t *self, cv_error_t *err)
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
        broker_fail_turn(self, err.msg);
        return;
    }
    self->stats.quarantined++;
    cv_log_warning(self->log, "store: report %lld quarantined: %s", (long long)rowid, why);
}

static const Caveat__Report *report_at(cv_broker_t *self, int64_t rowid, bool keep);

/*  A rowid that names no stored report may be an approved release's
 *  (cv_approval_store.h): the report it stands for, else NULL. */
static const Caveat__Report *approved_release_at(cv_broker_t *self, int64_t rowid, bool keep)
{
    cv_error_t err = {0};
    int64_t report = cv_approval_store_resolve(self->approvals, rowid, &err);
    if (report < 0)
        broker_fail_turn(self, err.msg); /* not read: nothing is dropped for it */
    return report > 0 && report != rowid ? report_at(self, report, keep) : NULL;
}

/*  The report's approvals, for deciding it: NULL when its handling code
 *  needs none. A store that cannot read them fails the turn, so that no
 *  delivery is dropped for want of them. */
const cv_approvals_t *broker_approvals_of(cv_broker_t *self, const Caveat__Report *report,
                                          cv_approvals_t *approvals)
{
    if (!cv_policy_needs_approval(self->policy, report))
        return NULL;
    cv_error_t err = {0};
    if (cv_approval_store_list(self->approvals, report->originator, report->id, approvals, &err) <
        0)
        broker_fail_turn(self, err.msg);
    return approvals;
}

/*  What every stored report was given before it was stored (an id and an
 *  originator, stamped; a category, checked): one read back without them
 *  was edited on disk, checksum and all, and is not delivered. */
static bool stored_form(const Caveat__Report *report)
{
    return report->id && *report->id && report->originator && *report->originator &&
           report->category && *report->category;
}

/*  A row SQLite cannot read (a damaged page of the file) fails the turn
 *  that finds it, as any failed read does; the store then sets it aside
 *  (cv_store_get_report), so that no later turn fails on it: read again,
 *  it would fail every turn that reads it, and every agency's publishes
 *  with them, for as long as a recipient it waits for is connected. One
 *  line a row (docs/operations.md, "The data directory"). */
static void found_unreadable(cv_broker_t *self, int64_t rowid, const char *why)
{
    cv_log_error(self->log,
                 "store: report %lld set aside until the broker starts again, SQLite cannot "
                 "read it (%s): restore the store or repair it",
                 (long long)rowid, why);
    broker_fail_turn(self, why);
}

/*  The report at rowid, from the cache or read back; kept in the cache
 *  for the rest of the turn and later ones, or (keep false) only until
 *  the next report read so. */
static const Caveat__Report *report_at(cv_broker_t *self, int64_t rowid, bool keep)
{
    const Caveat__Report *cached = cv_cache_get(self->cache, rowid);
    if (cached || cv_store_unreadable(self->store, rowid))
        return cached;
    uint8_t *body = NULL;
    size_t len = 0;
    cv_error_t err = {0};
    int found = cv_store_get_report(self->store, rowid, &body, &len, &err);
    self->stats.read_back += found > 0 || found == CV_GET_CORRUPT;
    if (found == 0)
        return approved_release_at(self, rowid, keep);
    Caveat__Report *report = found <= 0 ? NULL
                             : keep     ? cv_cache_unpack_report(self->cache, body, len)
                                        : cv_cache_unpack_passing(self->cache, body, len);
    bool formed = !report || stored_form(report);
    if (!formed)
        report = NULL; /* in the cache's arena: freed with it */
    /* kept without its bytes: a body stored by an earlier version may hold
     * what the broker no longer sends (fields it does not know), so a
     * recipient of the whole report is given it packed again */
    if (report && keep)
        cv_cache_put(self->cache, rowid, report, NULL, 0);
    free(body);
    if (found == CV_GET_CORRUPT)
        quarantine(self, rowid, err.msg);
    else if (!formed)
        quarantine(self, rowid, "its stored report has no id, originator or category");
    else if (found > 0 && !report)
        quarantine(self, rowid,
                   "its stored bytes do not unpack, or would take over 16 times their size");
    else if (found == CV_GET_UNREADABLE)
        found_unreadable(self, rowid, err.msg);
    else if (found < 0) /* the store failed to read: the turn fails, nothing is dropped */
        broker_fail_turn(self, err.msg);
    return report;
}

const Caveat__Report *broker_report_at(cv_broker_t *self, int64_t rowid)
{
    return report_at(self, rowid, true);
}

/*  Past what a turn may read back and keep (READ_BACK_MAX), a report is
 *  read for the moment only. */
const Caveat__Report *broker_report_passing(cv_broker_t *self, int64_t rowid)
{
    return report_at(self, rowid, cv_cache_turn_reads(self->cache) < READ_BACK_MAX);
}

/*  Queues the report for every agency the policy releases it to, and
 *  stores where it went in one row. Only the policy's candidates for the
 *  report are decided: agencies it cannot go to cost next to nothing. */
static bool route(cv_broker_t *self, const Caveat__Report *report, int64_t rowid,
                  const uint8_t *stored, bool *whole, cv_error_t *err)
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
        cv_record_recipient(self->record, a, self->decision);
        if (!delivered)
            continue;
        *whole |= cv_decision_shares_all(self->decision);
        const char *feed = cv_decision_feed(self->decision);
        cv_queue_t *q = cv_router_queue(self->queues, agency, feed ? feed : "", err);
        if (!(queued = q != NULL))
            break;
        self->route_to[n++] = q;
        broker_mark_dirty(self, agency, feed ? feed : "");
    }
    /* the leaf is ended whatever happened: a failure rolls the turn back
     * with it */
    cv_error_t ended = {0};
    bool recorded = cv_record_accepted_end(self->record, queued ? err : &ended);
    int priority = report->has_priority ? (int)report->priority : 0;
    return queued && recorded &&
           cv_router_route(self->queues, rowid, priority, self->route_to, n, err);
}

/*  A report's `created`, when given, is an RFC 3339 time, neither ahead
 *  of the broker's clock by more than --clock-skew nor before 2000: a date
 *  far ahead would evade retention, one far back would be purged before
 *  anyone saw it. One that is no time at all is refused too: stamped over,
 *  the originator's word would be replaced by the broker's without a
 *  word, and the JSON form refuses it. *when is it in unix seconds, or -1
 *  when absent or empty (the broker stamps it). */
static bool created_plausible(cv_broker_t *self, const char *created, int64_t *when,
                              cv_error_t *err)
{
    *when = -1;
    if (!created || !*created)
        return true;
    if (!cv_timestamp_parse(created, when)) {
        cv_error_set(err, NULL, 0, 0, "created: not an RFC 3339 time");
        return false;
    }
    int64_t now = (int64_t)time(NULL);
    if (*when > now + self->config.clock_skew_s)
        cv_error_set(err, NULL, 0, 0, "created: %lld s ahead of the broker's clock (at most %d)",
                     (long long)(*when - now), self->config.clock_skew_s);
    else if (*when < CREATED_FLOOR)
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
    int view_job;           /* the body's SHA-256 when not its checksum; -1: none */
    bool whole;             /* a recipient is given the whole report: view_job is wanted */
    int64_t rowid;          /* stored now (store_reports); 0: not */
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
 *  stamps (originator, id); false with the result set when refused.
 *  *created is its creation time, -1 when it has none. The report was
 *  unpacked into the cache's arena: what is set in it is allocated there
 *  too. */
static bool check_report(cv_broker_t *self, const char *sender, Caveat__Report *report,
                         int64_t *created, Caveat__Wire__PublishResult *result)
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
    if (!created_plausible(self, report->created, created, &err)) {
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
                           int64_t created, prepared_t *p)
{
    p->report = report;
    p->stored = (cv_stored_report_t){.id = report->id,
                                     .originator = sender,
                                     .category = report->category,
                                     .created = created,
                                     .accepted = zclock_time()};
    p->sent_job = -1;
    if (created < 0) {
        p->sent = pack_body(self, report, &p->sent_len);
        p->sent_job = 0;
        char text[CV_TIMESTAMP_MAX];
        p->stored.created = (int64_t)time(NULL);
        report->created =
            cv_cache_strdup(self->cache, cv_timestamp_format(p->stored.created, text));
    }
    p->body = pack_body(self, report, &p->body_len);
}

/*  A report is stored only if it can be read back within its bound
 *  (cv_cache_report_fits): one of thousands of empty repeated entries
 *  passes the bound of the frame it came in, beside bigger reports, and
 *  would take far more when read back alone. Refused, as invalid. */
static bool fits_when_read_back(cv_broker_t *self, prepared_t *p,
                                Caveat__Wire__PublishResult *result)
{
    const uint8_t *body = (const uint8_t *)self->bodies.bytes + p->body;
    if (cv_cache_report_fits(self->cache, p->report, body, p->body_len))
        return true;
    set_result(result, CAVEAT__WIRE__STATUS__REFUSED_INVALID, p->report->id,
               "the report would take more than 16 times its size to read back "
               "(thousands of empty repeated entries?)");
    p->report = NULL;
    return false;
}

/*  The sums to take for the prepared reports, once every body is packed
 *  (self->bodies no longer moves); how many. Each report's checksum (and
 *  digest as sent) first, in order, as the loop stores them, in the
 *  store's sum. A delivery of the whole report names its body's SHA-256,
 *  so no view of the whole report is copied or hashed again at its
 *  deliveries: in a store whose checksum is SHA-256, that is the
 *  checksum. In an older store (BLAKE2b-256), with the audit log on and a
 *  batch the worker is handed anyway, each body's SHA-256 is a job of its
 *  own, which the loop takes only once every report is stored, so it is
 *  the worker's; a batch the loop would hash itself (a Publish of a
 *  report or two, as at the fan-out) is left as it was there: its views
 *  are hashed as any other, and only those delivered. */
static size_t hash_jobs(cv_broker_t *self, prepared_t *prepared, size_t n)
{
    const uint8_t *bytes = self->bodies.bytes;
    cv_hash_fn *sum = cv_store_checksum_fn(self->store);
    size_t jobs = 0;
    reserve((void **)&self->jobs.all, &self->jobs.cap, 3 * n * sizeof *self->jobs.all);
    for (size_t i = 0; i < n; i++) {
        prepared_t *p = &prepared[i];
        p->view_job = -1;
        if (!p->report)
            continue;
        self->jobs.all[jobs] =
            (cv_hash_job_t){.bytes = bytes + p->body, .len = p->body_len, .fn = sum};
        p->body_job = (int)jobs++;
        if (p->sent_job < 0)
            continue;
        self->jobs.all[jobs] =
            (cv_hash_job_t){.bytes = bytes + p->sent, .len = p->sent_len, .fn = sum};
        p->sent_job = (int)jobs++;
    }
    bool view_jobs = !self->config.audit_off && sum != cv_checksum_sha256 &&
                     cv_hasher_hands_over(self->jobs.all, jobs);
    for (size_t i = 0; i < n && view_jobs; i++) {
        prepared_t *p = &prepared[i];
        if (!p->report)
            continue;
        self->jobs.all[jobs] =
            (cv_hash_job_t){.bytes = bytes + p->body, .len = p->body_len, .fn = cv_checksum_sha256};
        p->view_job = (int)jobs++;
    }
    return jobs;
}

/*  The SHA-256 of a stored report's body, which a delivery of the whole
 *  report names, when it was taken at publish: its checksum, in a store
 *  whose checksum is SHA-256, or its view job's; else NULL. */
static const uint8_t *whole_view_hash(cv_broker_t *self, prepared_t *p)
{
    if (self->config.audit_off)
        return NULL;
    if (cv_store_checksum_fn(self->store) == cv_checksum_sha256)
        return p->stored.checksum;
    return p->view_job >= 0 ? cv_hasher_take(self->hasher, self->jobs.all, (size_t)p->view_job)
                            : NULL;
}

/*  Routes a report the store took (put) and fills its result. Returns the
 *  rowid of a report stored now, else 0. */
static int64_t settle_report(cv_broker_t *self, prepared_t *p, const cv_put_item_t *item,
                             const cv_error_t *put_err, Caveat__Wire__PublishResult *result)
{
    cv_error_t err = *put_err;
    cv_put_t put = item->put;
    if (put == CV_PUT_NEW &&
        !route(self, p->report, item->rowid, p->stored.checksum, &p->whole, &err))
        put = CV_PUT_FAILED;
    if ((put == CV_PUT_UNDONE || put == CV_PUT_FAILED) && cv_store_no_space(self->store))
        broker_disk_exhausted(self);
    /* a failed write that took the whole transaction with it (SQLite rolls
     * back by itself on some errors), or one after the report's queues
     * were touched: the turn must not commit or acknowledge. A report
     * undone alone is refused alone. */
    if (put == CV_PUT_FAILED)
        broker_fail_turn(self, err.msg);
    if (put == CV_PUT_CONFLICT)
        set_result(result, CAVEAT__WIRE__STATUS__REFUSED_DUPLICATE, p->report->id,
                   "the id names another of this agency's reports");
    else if (put == CV_PUT_FAILED || put == CV_PUT_UNDONE)
        set_result(result, CAVEAT__WIRE__STATUS__REFUSED_UNAVAILABLE, p->report->id, err.msg);
    else
        set_result(result, CAVEAT__WIRE__STATUS__OK, p->report->id, NULL);
    return put == CV_PUT_NEW ? item->rowid : 0;
}

/*  Stores and routes up to CV_PUT_BATCH prepared reports, one statement
 *  for them all when none was refused before (cv_store_put_reports) and
 *  one for their routes, and fills their results; sets each one's rowid
 *  when stored now. A failure of the routes' statement fails the turn,
 *  which answers every report of it as unavailable. */
static void store_reports(cv_broker_t *self, prepared_t *prepared, size_t n,
                          Caveat__Wire__PublishResult **results)
{
    assert(n <= CV_PUT_BATCH);
    cv_put_item_t items[CV_PUT_BATCH];
    size_t of[CV_PUT_BATCH], k = 0;
    bool short_of_space = cv_space_short(self->space); /* an earlier batch filled it */
    for (size_t i = 0; i < n; i++) {
        prepared_t *p = &prepared[i];
        p->rowid = 0;
        if (!p->report)
            continue;
        if (short_of_space) {
            refuse_no_space(self, p->report, results[i]);
            continue;
        }
        p->stored.checksum = cv_hasher_take(self->hasher, self->jobs.all, (size_t)p->body_job);
        if (p->sent_job >= 0)
            p->stored.digest = cv_hasher_take(self->hasher, self->jobs.all, (size_t)p->sent_job);
        items[k] = (cv_put_item_t){.report = p->stored,
                                   .body = (const uint8_t *)self->bodies.bytes + p->body,
                                   .len = p->body_len};
        of[k++] = i;
    }
    cv_error_t err = {0};
    cv_store_put_reports(self->store, items, k, &err);
    cv_router_batch_begin(self->queues); /* their routes, one statement too */
    for (size_t j = 0; j < k; j++)
        prepared[of[j]].rowid =
            settle_report(self, &prepared[of[j]], &items[j], &err, results[of[j]]);
    cv_error_t routes_err = {0};
    if (!cv_router_batch_end(self->queues, &routes_err)) {
        if (cv_store_no_space(self->store)) /* later Publishes are refused at once */
            broker_disk_exhausted(self);
        broker_fail_turn(self, routes_err.msg);
    }
}

/*  A refusal is logged with its status; the reason may quote the report
 *  (a claimed originator, an unknown category), so only at debug level.
 *  A report stored is logged once its turn commits: a turn that rolls
 *  back refuses it as unavailable. */
static void log_result(const cv_broker_t *self, const char *sender,
                       const Caveat__Wire__PublishResult *result)
{
    const ProtobufCEnumValue *status =
        protobuf_c_enum_descriptor_get_value(&caveat__wire__status__descriptor, result->status);
    bool ok = result->status == CAVEAT__WIRE__STATUS__OK;
    if (ok) {
        cv_log_agency_on_commit(self->log, sender, true, "publish from %s: %s stored", sender,
                                result->report_id);
        return;
    }
    cv_log_agency(self->log, sender, false, "publish from %s: %s %s", sender, result->report_id,
                  status ? status->name : "refused");
    if (result->reason)
        cv_log_agency(self->log, sender, true, "publish from %s: %s: %s", sender, result->report_id,
                      result->reason);
}

/*  A Publish of more reports than the limit is refused whole, with LIMIT
 *  (answers rate-limited per agency). */
bool broker_over_report_limit(cv_broker_t *self, const zframe_t *routing, int agency,
                              size_t reports)
{
    const char *sender = cv_policy_agency(self->policy, agency)->id;
    if (reports <= (size_t)self->config.max_reports)
        return false;
    char reason[96];
    snprintf(reason, sizeof reason, "a publish may hold at most %d reports",
             self->config.max_reports);
    self->stats.limited++;
    cv_log_agency(self->log, sender, false, "publish from %s refused: %zu reports", sender,
                  reports);
    broker_send_error_limited(self, routing, agency, E_LIMIT, reason);
    return true;
}

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
    if (!rate_allows(&broker_use_of(self, agency)->refusals, REFUSALS_PER_SECOND)) {
        (*unrecorded)++;
        return;
    }
    const ProtobufCEnumValue *status =
        protobuf_c_enum_descriptor_get_value(&caveat__wire__status__descriptor, result->status);
    cv_error_t err = {0};
    if (!cv_record_refused(self->record, sender, result->report_id,
                           status ? status->name : "refused", &err))
        broker_fail_turn(self, err.msg);
}

/*  The refusals of a Publish past the sender's rate, as one leaf with their
 *  count. */
static void record_refusal_count(cv_broker_t *self, const char *sender, size_t unrecorded)
{
    cv_error_t err = {0};
    self->stats.refusals_counted += unrecorded;
    if (unrecorded && !cv_record_refusals(self->record, sender, unrecorded, &err))
        broker_fail_turn(self, err.msg);
}

/*  Checks and packs every report of a Publish, then stores them in order
 *  while their checksums are taken beside the loop (cv_hasher.h). */
static void accept_reports(cv_broker_t *self, int agency, const char *sender,
                           Caveat__Wire__Publish *publish, Caveat__Wire__PublishResult **results)
{
    size_t n = publish->n_reports, unrecorded = 0;
    bool urgent = false;
    prepared_t *prepared = cv_xcalloc(n, sizeof *prepared);
    self->bodies.used = 0;
    for (size_t i = 0; i < n; i++) {
        results[i] = cv_xcalloc(1, sizeof *results[i]);
        caveat__wire__publish_result__init(results[i]);
        int64_t created;
        if (check_report(self, sender, publish->reports[i], &created, results[i])) {
            prepare_report(self, sender, publish->reports[i], created, &prepared[i]);
            fits_when_read_back(self, &prepared[i], results[i]);
        }
    }
    size_t jobs = hash_jobs(self, prepared, n); /* first: it may move self->jobs.all */
    cv_hasher_start(self->hasher, self->jobs.all, jobs);
    for (size_t i = 0; i < n; i++) {
        prepared_t *p = &prepared[i];
        if (i % CV_PUT_BATCH == 0)
            store_reports(self, p, n - i < CV_PUT_BATCH ? n - i : CV_PUT_BATCH, results + i);
        self->turn_stored += p->rowid != 0;
        if (p->rowid) /* its first deliveries are made from it, as it came */
            cv_cache_put(self->cache, p->rowid, publish->reports[i],
                         (const uint8_t *)self->bodies.bytes + p->body, p->body_len);
        urgent |= p->rowid && publish->reports[i]->has_priority &&
                  publish->reports[i]->priority == CAVEAT__PRIORITY__IMMEDIATE;
        if (results[i]->status == CAVEAT__WIRE__STATUS__OK)
            self->stats.published++;
        else
            self->stats.refused++;
        log_result(self, sender, results[i]);
        record_refusal(self, agency, sender, results[i], &unrecorded);
    }
    record_refusal_count(self, sender, unrecorded);
    /* last, when the worker has long taken them: the loop waits for none.
     * Kept only for reports routing gave some recipient whole (a reload
     * before the delivery may yet give the whole report; it is then
     * hashed as any other view) */
    for (size_t i = 0; i < n; i++) {
        const uint8_t *hash =
            prepared[i].rowid && prepared[i].whole ? whole_view_hash(self, &prepared[i]) : NULL;
        if (hash)
            cv_cache_put_view_hash(self->cache, prepared[i].rowid, publish->reports[i], hash);
    }
    cv_hasher_end(self->hasher);
    free(prepared);
    /* an IMMEDIATE report ends the turn, to be committed and sent at once:
     * that many times a second for each agency, or one that sent nothing
     * but small IMMEDIATE frames would have a commit made for each */
    if (urgent && rate_allows(&broker_use_of(self, agency)->urgent, URGENT_TURNS_PER_SECOND))
        self->turn_urgent = true;
}

void broker_on_publish(cv_broker_t *self, const zframe_t *routing, uint64_t session, int agency,
                       const char *sender, Caveat__Wire__Publish *publish)
{
    if (publish->n_reports == 0) {
        broker_send_error(self, routing, E_BAD_REQUEST, "a publish needs at least one report");
        return;
    }
    if (broker_over_report_limit(self, routing, agency, publish->n_reports))
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
