/*  cv_queue.c: one recipient queue in memory; see cv_queue.h.
 *
 *  Two kinds of ring buffer: one of report rowids per priority for what
 *  waits, and one of (seq, report, priority) for what is in flight. Both
 *  only ever take from the front and add at the back.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "cv_queue.h"

/*  Written out by hand, not with snprintf: the routing of every delivery
 *  and every save of a queue's acknowledgements looks a queue up by it, and
 *  snprintf's format parsing cost more than the hash lookup it is for. */
const char *cv_queue_name(cv_queue_name_t *name, const char *agency, const char *feed)
{
    size_t agency_len = strlen(agency), feed_len = strlen(feed);
    char digits[24], *digit = digits + sizeof digits;
    size_t value = agency_len;
    do
        *--digit = (char)('0' + value % 10);
    while ((value /= 10) != 0);
    size_t digits_len = (size_t)(digits + sizeof digits - digit);
    size_t len = digits_len + 1 + agency_len + 1 + feed_len;
    name->heap = NULL;
    char *out = name->buf;
    if (len >= sizeof name->buf && !(out = name->heap = malloc(len + 1)))
        return NULL;
    memcpy(out, digit, digits_len);
    out[digits_len] = ':';
    memcpy(out + digits_len + 1, agency, agency_len);
    out[digits_len + 1 + agency_len] = '/';
    memcpy(out + digits_len + 2 + agency_len, feed, feed_len + 1);
    return out;
}

void cv_queue_name_free(cv_queue_name_t *name)
{
    free(name->heap);
    name->heap = NULL;
}

typedef struct {
    char *items;
    size_t size; /* bytes an item */
    size_t head, count, cap;
} ring_t;

static void *ring_at(const ring_t *r, size_t i)
{
    return r->items + ((r->head + i) % r->cap) * r->size;
}

static bool ring_push(ring_t *r, const void *item)
{
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        char *grown = malloc(cap * r->size);
        if (!grown)
            return false;
        for (size_t i = 0; i < r->count; i++) /* unwrapped into the new buffer */
            memcpy(grown + i * r->size, ring_at(r, i), r->size);
        free(r->items);
        r->items = grown;
        r->cap = cap;
        r->head = 0;
    }
    memcpy(ring_at(r, r->count), item, r->size);
    r->count++;
    return true;
}

static void ring_drop(ring_t *r, size_t n)
{
    r->head = r->count > n ? (r->head + n) % r->cap : 0;
    r->count = r->count > n ? r->count - n : 0;
}

struct cv_queue_t {
    int64_t id;
    char *agency, *feed;
    uint64_t last_seq, acked_seq;
    ring_t waiting[CV_PRIORITIES]; /* int64_t rowids, in order of acceptance */
    ring_t in_flight;              /* cv_sent_t, seqs acked_seq + 1 .. last_seq */
    ring_t acked;                  /* cv_sent_t, acknowledged since the last save */
    int64_t done[CV_PRIORITIES];   /* as loaded: routes up to here are finished */
    int64_t *in_flight_sorted;     /* while loading: the reports in flight, sorted */
    size_t in_flight_sorted_n;
    bool unsaved;         /* acknowledged since the last save */
    uint64_t saved_acked; /* acked_seq at the last save */
};

cv_queue_t *cv_queue_new(int64_t id, const char *agency, const char *feed)
{
    cv_queue_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->id = id;
    self->agency = strdup(agency);
    self->feed = strdup(feed);
    for (int p = 0; p < CV_PRIORITIES; p++)
        self->waiting[p].size = sizeof(int64_t);
    self->in_flight.size = self->acked.size = sizeof(cv_sent_t);
    if (!self->agency || !self->feed)
        cv_queue_destroy(&self);
    return self;
}

/*  Drops the first n of r, cv_sent_t, freeing what they own. */
static void sent_drop(ring_t *r, size_t n)
{
    for (size_t i = 0; i < n && i < r->count; i++)
        free(((cv_sent_t *)ring_at(r, i))->report_id);
    ring_drop(r, n);
}

void cv_queue_destroy(cv_queue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cv_queue_t *self = *self_p;
    sent_drop(&self->in_flight, self->in_flight.count);
    sent_drop(&self->acked, self->acked.count);
    free(self->acked.items);
    for (int p = 0; p < CV_PRIORITIES; p++)
        free(self->waiting[p].items);
    free(self->in_flight.items);
    free(self->in_flight_sorted);
    free(self->agency);
    free(self->feed);
    free(self);
    *self_p = NULL;
}

int64_t cv_queue_id(const cv_queue_t *self)
{
    return self->id;
}

const char *cv_queue_agency(const cv_queue_t *self)
{
    return self->agency;
}

const char *cv_queue_feed(const cv_queue_t *self)
{
    return self->feed;
}

/*  An unknown priority is routine: the store's encoding has room for
 *  CV_PRIORITIES only. */
static int clamp_priority(int priority)
{
    return priority >= 0 && priority < CV_PRIORITIES ? priority : 0;
}

bool cv_queue_push(cv_queue_t *self, cv_routed_t item)
{
    return ring_push(&self->waiting[clamp_priority(item.priority)], &item.report);
}

bool cv_queue_take(cv_queue_t *self, cv_routed_t *item)
{
    for (int p = CV_PRIORITIES - 1; p >= 0; p--) {
        ring_t *r = &self->waiting[p];
        if (r->count) {
            item->report = *(int64_t *)ring_at(r, 0);
            item->priority = p;
            ring_drop(r, 1);
            return true;
        }
    }
    return false;
}

bool cv_queue_waits(const cv_queue_t *self, cv_routed_t item)
{
    const ring_t *r = &self->waiting[clamp_priority(item.priority)];
    size_t low = 0, high = r->count; /* rising rowids: routed, and restored, in that order */
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        int64_t at = *(const int64_t *)ring_at(r, mid);
        if (at == item.report)
            return true;
        if (at < item.report)
            low = mid + 1;
        else
            high = mid;
    }
    return false;
}

uint64_t cv_queue_give_seq(cv_queue_t *self, cv_routed_t item)
{
    cv_sent_t sent = {.seq = self->last_seq + 1,
                      .item = {item.report, clamp_priority(item.priority)}};
    if (!ring_push(&self->in_flight, &sent))
        return 0;
    return ++self->last_seq;
}

/*  The delivery seq in flight, or NULL. */
static cv_sent_t *in_flight_at(cv_queue_t *self, uint64_t seq)
{
    ring_t *r = &self->in_flight;
    if (r->count == 0)
        return NULL;
    uint64_t first = ((const cv_sent_t *)ring_at(r, 0))->seq;
    if (seq < first || seq - first >= r->count)
        return NULL;
    cv_sent_t *sent = ring_at(r, (size_t)(seq - first));
    assert(sent->seq == seq); /* seqs in flight run without gaps */
    return sent;
}

bool cv_queue_viewed(cv_queue_t *self, uint64_t seq, const uint8_t view[CV_VIEW_HASH_BYTES],
                     const char *report_id)
{
    cv_sent_t *sent = in_flight_at(self, seq);
    if (!sent)
        return false;
    if (!sent->report_id || strcmp(sent->report_id, report_id) != 0) {
        char *id = strdup(report_id);
        if (!id)
            return false;
        free(sent->report_id);
        sent->report_id = id;
    }
    sent->viewed = false; /* until its hash is known: the view sent may differ from the last */
    sent->withdrawn = false;
    return !view || cv_queue_view_hashed(self, seq, view);
}

/*  The delivery seq acknowledged since the last save, or NULL. They run
 *  in seq order, without gaps unless memory ran out as they were kept. */
static cv_sent_t *acked_at(cv_queue_t *self, uint64_t seq)
{
    ring_t *r = &self->acked;
    if (r->count == 0)
        return NULL;
    uint64_t first = ((const cv_sent_t *)ring_at(r, 0))->seq;
    if (seq >= first && seq - first < r->count) {
        cv_sent_t *sent = ring_at(r, (size_t)(seq - first));
        if (sent->seq == seq)
            return sent;
    }
    for (size_t i = 0; i < r->count; i++) {
        cv_sent_t *sent = ring_at(r, i);
        if (sent->seq == seq)
            return sent;
    }
    return NULL;
}

/*  The delivery seq, in flight or acknowledged and not yet saved. */
static cv_sent_t *kept_at(cv_queue_t *self, uint64_t seq)
{
    cv_sent_t *sent = in_flight_at(self, seq);
    return sent ? sent : acked_at(self, seq);
}

void cv_queue_withdrawn(cv_queue_t *self, uint64_t seq)
{
    cv_sent_t *sent = kept_at(self, seq);
    if (sent)
        sent->withdrawn = true;
}

void cv_queue_left(cv_queue_t *self, uint64_t seq)
{
    cv_sent_t *sent = kept_at(self, seq);
    if (sent)
        sent->left = true;
}

void cv_queue_carry_marks(cv_queue_t *self, cv_queue_t *was)
{
    ring_t *r = &self->in_flight;
    for (size_t i = 0; i < r->count; i++) {
        cv_sent_t *sent = ring_at(r, i);
        const cv_sent_t *before = kept_at(was, sent->seq);
        if (!before)
            continue;
        sent->left = before->left;
        sent->withdrawn = before->withdrawn;
        if (before->report_id && (sent->report_id = strdup(before->report_id))) {
            sent->viewed = before->viewed;
            memcpy(sent->view, before->view, sizeof sent->view);
        }
    }
}

bool cv_sent_may_be_received(const cv_sent_t *sent)
{
    return sent->left || !sent->withdrawn;
}

/*  Whether r holds a delivery of item that was never sent. */
static bool ring_holds_unsent(const ring_t *r, cv_routed_t item)
{
    for (size_t i = 0; i < r->count; i++) {
        const cv_sent_t *sent = ring_at(r, i);
        if (sent->item.report == item.report && !cv_sent_may_be_received(sent))
            return true;
    }
    return false;
}

bool cv_queue_holds_unsent(const cv_queue_t *self, cv_routed_t item)
{
    return ring_holds_unsent(&self->in_flight, item) || ring_holds_unsent(&self->acked, item);
}

bool cv_queue_view_hashed(cv_queue_t *self, uint64_t seq, const uint8_t view[CV_VIEW_HASH_BYTES])
{
    cv_sent_t *sent = kept_at(self, seq);
    if (!sent || !sent->report_id)
        return false;
    memcpy(sent->view, view, CV_VIEW_HASH_BYTES);
    sent->viewed = true;
    return true;
}

size_t cv_queue_acked_count(const cv_queue_t *self)
{
    return self->acked.count;
}

const cv_sent_t *cv_queue_acked_at(const cv_queue_t *self, size_t i)
{
    return i < self->acked.count ? ring_at(&self->acked, i) : NULL;
}

size_t cv_queue_in_flight(const cv_queue_t *self)
{
    return self->in_flight.count;
}

const cv_sent_t *cv_queue_sent_after(const cv_queue_t *self, uint64_t after)
{
    const ring_t *r = &self->in_flight;
    if (r->count == 0)
        return NULL;
    uint64_t first = ((const cv_sent_t *)ring_at(r, 0))->seq;
    size_t i = after < first ? 0 : (size_t)(after - first + 1);
    return i < r->count ? ring_at(r, i) : NULL;
}

size_t cv_queue_ack(cv_queue_t *self, uint64_t up_to)
{
    ring_t *r = &self->in_flight;
    size_t n = 0;
    while (n < r->count && ((cv_sent_t *)ring_at(r, n))->seq <= up_to)
        n++;
    /* kept until saved, for the save's audit leaves; out of memory, a
     * delivery goes unrecorded rather than unacknowledged */
    size_t kept = 0;
    while (kept < n && ring_push(&self->acked, ring_at(r, kept)))
        kept++;
    ring_drop(r, kept); /* theirs now */
    sent_drop(r, n - kept);
    if (up_to > self->acked_seq)
        self->acked_seq = up_to;
    self->unsaved = self->unsaved || n > 0;
    return n;
}

bool cv_queue_unsaved(const cv_queue_t *self)
{
    return self->unsaved;
}

uint64_t cv_queue_saved_acked(const cv_queue_t *self)
{
    return self->saved_acked;
}

void cv_queue_mark_saved(cv_queue_t *self)
{
    sent_drop(&self->acked, self->acked.count);
    self->unsaved = false;
    self->saved_acked = self->acked_seq;
}

uint64_t cv_queue_last_seq(const cv_queue_t *self)
{
    return self->last_seq;
}

size_t cv_queue_size(const cv_queue_t *self)
{
    size_t n = self->in_flight.count;
    for (int p = 0; p < CV_PRIORITIES; p++)
        n += self->waiting[p].count;
    return n;
}

/*  What is finished is everything before the first report still waiting
 *  or in flight. Waiting reports are in order of acceptance; those in
 *  flight almost always are too, but not a report dropped and released
 *  again after a restart (it is sent after later ones), so all are looked
 *  at. */
void cv_queue_state(const cv_queue_t *self, int64_t max_report, cv_queue_state_t *state)
{
    state->last_seq = self->last_seq;
    state->acked_seq = self->acked_seq;
    int64_t first[CV_PRIORITIES];
    for (int p = 0; p < CV_PRIORITIES; p++)
        first[p] =
            self->waiting[p].count ? *(int64_t *)ring_at(&self->waiting[p], 0) : max_report + 1;
    for (size_t i = 0; i < self->in_flight.count; i++) {
        const cv_sent_t *s = ring_at(&self->in_flight, i);
        if (s->item.report < first[s->item.priority])
            first[s->item.priority] = s->item.report;
    }
    for (int p = 0; p < CV_PRIORITIES; p++)
        state->done[p] = first[p] - 1;
}

void cv_queue_restore_end(cv_queue_t *self)
{
    free(self->in_flight_sorted);
    self->in_flight_sorted = NULL;
    self->in_flight_sorted_n = 0;
}

void cv_queue_restore_state(cv_queue_t *self, const cv_queue_state_t *state)
{
    self->last_seq = state->last_seq;
    self->acked_seq = self->saved_acked = state->acked_seq;
    memcpy(self->done, state->done, sizeof self->done);
}

bool cv_queue_restore_sent(cv_queue_t *self, uint64_t seq, cv_routed_t item)
{
    /* pumps do not save the queue's state: their rows say how far seqs went */
    if (seq > self->last_seq)
        self->last_seq = seq;
    /* a pump acknowledged in part: its acknowledged seqs are finished */
    if (seq <= self->acked_seq)
        return true;
    /* sent before the restart, perhaps */
    cv_sent_t sent = {
        .seq = seq, .item = {item.report, clamp_priority(item.priority)}, .left = true};
    return ring_push(&self->in_flight, &sent);
}

static int compare_rowids(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/*  The reports in flight, sorted once for the routes to be checked
 *  against; NULL when none (or out of memory: then nothing is skipped,
 *  and the caller fails the load). */
static bool sort_in_flight(cv_queue_t *self)
{
    size_t n = self->in_flight.count;
    if (self->in_flight_sorted || n == 0)
        return true;
    self->in_flight_sorted = malloc(n * sizeof(int64_t));
    if (!self->in_flight_sorted)
        return false;
    for (size_t i = 0; i < n; i++)
        self->in_flight_sorted[i] = ((const cv_sent_t *)ring_at(&self->in_flight, i))->item.report;
    qsort(self->in_flight_sorted, n, sizeof(int64_t), compare_rowids);
    self->in_flight_sorted_n = n;
    return true;
}

bool cv_queue_restore_route(cv_queue_t *self, cv_routed_t item)
{
    int p = clamp_priority(item.priority);
    if (item.report <= self->done[p])
        return true;
    if (!sort_in_flight(self))
        return false;
    if (self->in_flight_sorted_n &&
        bsearch(&item.report, self->in_flight_sorted, self->in_flight_sorted_n, sizeof(int64_t),
                compare_rowids))
        return true; /* in flight: resent from there, with its seq */
    item.priority = p;
    return cv_queue_push(self, item);
}
