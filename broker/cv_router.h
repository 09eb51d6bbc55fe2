/*  cv_router.h: caveatd's queues, and the one protocol that keeps them and
 *  the store in step.
 *
 *  One queue per (agency, feed) (cv_queue.h). Every change to a queue is
 *  written in the caller's open store transaction (cv_store_begin), so
 *  that what the store holds after any crash is a state the queues were
 *  in at some commit:
 *   - a report routed is pushed to its queues with one routes row;
 *   - a pump gives seqs to what it takes and writes them in one sent row;
 *     what it drops (the policy no longer releases it) loses its route to
 *     that queue in the same transaction, so no restart queues it again;
 *   - acknowledgements change the queue at once and reach the store in
 *     bulk (cv_router_save_all): until saved, a crash only means those
 *     deliveries are sent again, with their seqs.
 *  Hence the invariants the broker rests on: no seq is given twice (the
 *  sent rows say how far seqs went, whatever the saved state), and nothing
 *  acknowledged and saved comes back. After a failed commit the queues in
 *  memory are wrong: cv_router_load reads them back from the store.
 *
 *  Every function that writes returns false with err set to the store's
 *  own message; the caller's transaction must then roll back.
 */
#ifndef CV_ROUTER_H
#define CV_ROUTER_H

#include "cv_queue.h"
#include "cv_store.h"

#define CV_PUMP_MAX 256 /* deliveries one pump may take */

typedef struct cv_router_t cv_router_t;

/*  The router of store's queues (not owned); none loaded yet. */
cv_router_t *cv_router_new(cv_store_t *store);
void cv_router_destroy(cv_router_t **self_p);

/*  Every queue as the store has it: at start, and after a rolled-back
 *  turn. On failure no queue is left. */
bool cv_router_load(cv_router_t *self, cv_error_t *err);

/*  The queue (agency, feed), or NULL when there is none. */
cv_queue_t *cv_router_find(cv_router_t *self, const char *agency, const char *feed);
/*  The queue (agency, feed), made (in the store too) on first use: it
 *  holds nothing routed before it was made. */
cv_queue_t *cv_router_queue(cv_router_t *self, const char *agency, const char *feed,
                            cv_error_t *err);
/*  Reports waiting in every queue, sent or not. */
size_t cv_router_queued(const cv_router_t *self);
/*  The highest report rowid routed (or read back routed). */
int64_t cv_router_max_report(const cv_router_t *self);

/*  Routes report (its priority) to queues[0..n), one row for all. */
bool cv_router_route(cv_router_t *self, int64_t report, int priority, cv_queue_t *const *queues,
                     size_t n, cv_error_t *err);

/*  Routes written together: from begin to end cv_router_route pushes to
 *  the queues at once and keeps each report's row, and end writes them
 *  all (cv_store_route_many: a statement costs SQLite about as much as its
 *  row). In between, nothing may read or change the store's routes or
 *  pump a queue (cv_router_queue, which makes queues, may be used); a
 *  turn whose end fails rolls back. */
void cv_router_batch_begin(cv_router_t *self);
bool cv_router_batch_end(cv_router_t *self, cv_error_t *err);

/*  One pump of one queue: take what waits, one at a time, and give each
 *  a seq or drop it; end writes the row for the seqs given. */
typedef struct {
    cv_queue_t *queue;
    uint64_t first_seq;
    cv_routed_t given[CV_PUMP_MAX];
    size_t n;
} cv_pump_t;

void cv_router_pump_begin(cv_router_t *self, cv_pump_t *pump, cv_queue_t *queue);
/*  The most urgent report waiting, taken out; false when none is left or
 *  the pump is full. */
bool cv_router_pump_take(cv_router_t *self, cv_pump_t *pump, cv_routed_t *item);
/*  The taken item is sent: its seq (0 when out of memory: the turn must
 *  roll back). */
uint64_t cv_router_pump_give(cv_router_t *self, cv_pump_t *pump, cv_routed_t item);
/*  The taken item is not sent, and never will be to this queue. */
bool cv_router_pump_drop(cv_router_t *self, cv_pump_t *pump, cv_routed_t item, cv_error_t *err);
bool cv_router_pump_end(cv_router_t *self, cv_pump_t *pump, cv_error_t *err);

/*  A cumulative acknowledgement of queue, up_to <= its last seq: what it
 *  finished (saved later). */
size_t cv_router_ack(cv_router_t *self, cv_queue_t *queue, uint64_t up_to);
/*  Whether acknowledgements wait to be saved. */
bool cv_router_unsaved(const cv_router_t *self);
/*  Called by every save of a queue with acknowledgements, in the save's
 *  transaction, before they are forgotten (cv_queue_acked_at): the audit
 *  log's "delivered" leaves. false (err set) fails the save. */
typedef bool(cv_router_saving_fn)(void *arg, cv_queue_t *queue, cv_error_t *err);
void cv_router_set_saving(cv_router_t *self, cv_router_saving_fn *fn, void *arg);
/*  Saves queue's state now. */
bool cv_router_save(cv_router_t *self, cv_queue_t *queue, cv_error_t *err);
/*  Saves every queue an acknowledgement changed since its last save. */
bool cv_router_save_all(cv_router_t *self, cv_error_t *err);

#endif
