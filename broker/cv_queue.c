/*  cv_queue.c: one recipient queue in memory; see cv_queue.h.
 *
 *  Two kinds of ring buffer: one of report rowids per priority for what
 *  waits, and one of (seq, report, priority) for what is in flight. Both
 *  only ever take from the front and add at the back.
 */
#include <stdlib.h>
#include <string.h>

#include "cv_queue.h"

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
    int64_t done[CV_PRIORITIES];   /* as loaded: routes up to here are finished */
    size_t restore_cursor[CV_PRIORITIES];
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
    self->in_flight.size = sizeof(cv_sent_t);
    if (!self->agency || !self->feed)
        cv_queue_destroy(&self);
    return self;
}

void cv_queue_destroy(cv_queue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cv_queue_t *self = *self_p;
    for (int p = 0; p < CV_PRIORITIES; p++)
        free(self->waiting[p].items);
    free(self->in_flight.items);
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

uint64_t cv_queue_give_seq(cv_queue_t *self, cv_routed_t item)
{
    cv_sent_t sent = {self->last_seq + 1, {item.report, clamp_priority(item.priority)}};
    if (!ring_push(&self->in_flight, &sent))
        return 0;
    return ++self->last_seq;
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
    ring_drop(r, n);
    if (up_to > self->acked_seq)
        self->acked_seq = up_to;
    return n;
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

/*  Within a priority, reports are taken in order of acceptance and
 *  acknowledged in that order too (seqs rise with taking), so what is
 *  finished is everything before the first report still in flight or
 *  waiting. */
void cv_queue_state(const cv_queue_t *self, int64_t max_report, cv_queue_state_t *state)
{
    state->last_seq = self->last_seq;
    state->acked_seq = self->acked_seq;
    for (int p = 0; p < CV_PRIORITIES; p++) {
        int64_t first = max_report + 1;
        if (self->waiting[p].count)
            first = *(int64_t *)ring_at(&self->waiting[p], 0);
        for (size_t i = 0; i < self->in_flight.count; i++) {
            const cv_sent_t *s = ring_at(&self->in_flight, i);
            if (s->item.priority == p) {
                if (s->item.report < first)
                    first = s->item.report;
                break;
            }
        }
        state->done[p] = first - 1;
    }
}

void cv_queue_restore_state(cv_queue_t *self, const cv_queue_state_t *state)
{
    self->last_seq = state->last_seq;
    self->acked_seq = state->acked_seq;
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
    cv_sent_t sent = {seq, {item.report, clamp_priority(item.priority)}};
    return ring_push(&self->in_flight, &sent);
}

/*  Routes come in order of acceptance, and the in-flight deliveries of one
 *  priority are in that order too: one cursor per priority walks them
 *  alongside, so each route is checked against them in constant time. */
bool cv_queue_restore_route(cv_queue_t *self, cv_routed_t item)
{
    int p = clamp_priority(item.priority);
    if (item.report <= self->done[p])
        return true;
    size_t *at = &self->restore_cursor[p];
    const ring_t *r = &self->in_flight;
    while (*at < r->count) {
        const cv_sent_t *s = ring_at(r, *at);
        if (s->item.priority == p && s->item.report >= item.report)
            break;
        (*at)++;
    }
    if (*at < r->count && ((const cv_sent_t *)ring_at(r, *at))->item.report == item.report)
        return true; /* in flight: resent from there, with its seq */
    item.priority = p;
    return cv_queue_push(self, item);
}
