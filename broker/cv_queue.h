/*  cv_queue.h: one recipient queue of caveatd, in memory.
 *
 *  What has been routed to one (agency, feed) and is not finished with:
 *  reports not yet sent, most urgent first and then in order of acceptance,
 *  and deliveries sent and not yet acknowledged, in seq order. Seqs are
 *  given at sending, 1, 2, 3... with no gaps, so the unacknowledged ones
 *  always run from acked_seq + 1 to last_seq.
 *
 *  cv_router (cv_router.h) keeps each queue and the store in step inside
 *  a turn's transaction: the store holds where reports were routed, one
 *  row per pump, and cv_queue_state() saved after acknowledgements, from
 *  which cv_store_load builds the queues again after a restart. No store
 *  write is needed per delivery. The saved state may lag behind the queue
 *  as long as nothing above its done marks is finished.
 */
#ifndef CV_QUEUE_H
#define CV_QUEUE_H

#include "cv_store.h"

typedef struct cv_queue_t cv_queue_t;

#define CV_VIEW_HASH_BYTES 32 /* SHA-256 */

/*  A delivery in flight, and once acknowledged until its state is saved.
 *  viewed: sent by this process, which knows the SHA-256 of the exact view
 *  it sent last (cv_queue_viewed) and the report's id (owned). A delivery
 *  read back from the store after a restart is not viewed until resent.
 *  left: a Deliver naming its seq was handed to the transport
 *  (cv_queue_left), or, read back from the store, may have been before.
 *  withdrawn: the last Deliver packed for it was dropped unsent (a reload
 *  that withdrew it while it waited for its sync, a connection full or
 *  gone), and none has been packed since (cv_queue_viewed). A cumulative
 *  acknowledgement covers a seq that never left all the same, but what
 *  was never sent was never received. */
typedef struct {
    uint64_t seq;
    cv_routed_t item;
    bool viewed;
    bool left, withdrawn;
    uint8_t view[CV_VIEW_HASH_BYTES];
    char *report_id;
} cv_sent_t;

/*  The key of the queue (agency, feed), for tables of queues and of the
 *  sessions serving them: the agency's length first, so that no agency id
 *  and feed name spell another's. On the stack when short (always, in
 *  practice), else on the heap; NULL only when out of memory. */
typedef struct {
    char buf[256];
    char *heap;
} cv_queue_name_t;
const char *cv_queue_name(cv_queue_name_t *name, const char *agency, const char *feed);
void cv_queue_name_free(cv_queue_name_t *name);

cv_queue_t *cv_queue_new(int64_t id, const char *agency, const char *feed);
void cv_queue_destroy(cv_queue_t **self_p);

int64_t cv_queue_id(const cv_queue_t *self);
const char *cv_queue_agency(const cv_queue_t *self);
const char *cv_queue_feed(const cv_queue_t *self);

/*  Routing: the report waits to be sent. false: out of memory. */
bool cv_queue_push(cv_queue_t *self, cv_routed_t item);
/*  The most urgent report not yet sent, taken out; false when none. It is
 *  then either given a seq (cv_queue_give_seq) or dropped (nothing more). */
bool cv_queue_take(cv_queue_t *self, cv_routed_t *item);
/*  Records a delivery of item with the next seq, and returns the seq (0:
 *  out of memory, nothing recorded). */
uint64_t cv_queue_give_seq(cv_queue_t *self, cv_routed_t item);

/*  Whether item is routed here and still waits to be sent (given no seq
 *  yet). O(log n): what waits is in order of acceptance. */
bool cv_queue_waits(const cv_queue_t *self, cv_routed_t item);

/*  Unacknowledged deliveries: how many, and the first with seq > after
 *  (NULL when none). */
size_t cv_queue_in_flight(const cv_queue_t *self);
const cv_sent_t *cv_queue_sent_after(const cv_queue_t *self, uint64_t after);
/*  A cumulative acknowledgement; returns how many deliveries it finished.
 *  The caller checks up_to <= last_seq first. */
size_t cv_queue_ack(cv_queue_t *self, uint64_t up_to);

/*  The delivery seq (in flight) was sent as the view whose SHA-256 is
 *  view, of the report report_id. view NULL: its hash is being taken and
 *  comes with cv_queue_view_hashed (until then the delivery is not
 *  viewed). false: seq is not in flight, or out of memory. */
bool cv_queue_viewed(cv_queue_t *self, uint64_t seq, const uint8_t view[CV_VIEW_HASH_BYTES],
                     const char *report_id);
/*  The Deliver packed last for seq was dropped unsent: in flight, or
 *  acknowledged and not yet saved (a client that acknowledged ahead of
 *  what it had). Nothing when the queue no longer holds seq. */
void cv_queue_withdrawn(cv_queue_t *self, uint64_t seq);
/*  A Deliver naming seq was handed to the transport: the same places. */
void cv_queue_left(cv_queue_t *self, uint64_t seq);
/*  Whether a delivery may have been received: a Deliver of it left, or
 *  one packed is still to go (acknowledged ahead of it). */
bool cv_sent_may_be_received(const cv_sent_t *sent);
/*  Whether item was given a seq that the queue still holds (in flight, or
 *  acknowledged and not yet saved) and no Deliver of it ever left: a
 *  delivery withdrawn unsent, which its recipient never received. O(n) in
 *  what the queue holds. */
bool cv_queue_holds_unsent(const cv_queue_t *self, cv_routed_t item);
/*  The hash of the view last sent as seq, which cv_queue_viewed named
 *  without it: in flight, or acknowledged and not yet saved. false: the
 *  queue no longer holds seq. */
bool cv_queue_view_hashed(cv_queue_t *self, uint64_t seq, const uint8_t view[CV_VIEW_HASH_BYTES]);
/*  The deliveries acknowledged since the state was last saved, in seq
 *  order: what the save's "delivered" audit leaves describe. Forgotten
 *  when it is marked saved. */
size_t cv_queue_acked_count(const cv_queue_t *self);
const cv_sent_t *cv_queue_acked_at(const cv_queue_t *self, size_t i);

uint64_t cv_queue_last_seq(const cv_queue_t *self);
/*  Reports waiting, sent or not. */
size_t cv_queue_size(const cv_queue_t *self);

/*  Whether an acknowledgement changed the queue since its state was last
 *  saved (cv_queue_state), the acked_seq saved then, and marking it saved. */
bool cv_queue_unsaved(const cv_queue_t *self);
uint64_t cv_queue_saved_acked(const cv_queue_t *self);
void cv_queue_mark_saved(cv_queue_t *self);

/*  What the store keeps: seqs, and per priority the rowid below which
 *  nothing is left (max_report when nothing of that priority is left: the
 *  highest rowid routed so far). */
void cv_queue_state(const cv_queue_t *self, int64_t max_report, cv_queue_state_t *state);

/*  Building the queue again from the store (cv_store_load): the saved
 *  state, then the unacknowledged deliveries in seq order, then every route
 *  to this queue in order of acceptance, of which restore_route keeps those
 *  neither finished nor in flight. */
void cv_queue_restore_state(cv_queue_t *self, const cv_queue_state_t *state);
bool cv_queue_restore_sent(cv_queue_t *self, uint64_t seq, cv_routed_t item);
bool cv_queue_restore_route(cv_queue_t *self, cv_routed_t item);
/*  After the last restore_route: frees what loading needed. */
void cv_queue_restore_end(cv_queue_t *self);
/*  A queue read back again while the process runs (cv_router_load): each
 *  delivery in flight takes what the store does not keep from was, the
 *  same queue before: its left and withdrawn marks, its report's id and
 *  the hash of the view it was sent as. */
void cv_queue_carry_marks(cv_queue_t *self, cv_queue_t *was);

#endif
