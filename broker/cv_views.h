/*  cv_views.h: the views a turn sends, each packed once and hashed once,
 *  the hashes taken beside the loop.
 *
 *  At a fan-out most of a report's recipients are given one of a few
 *  views: every recipient a rule alone decides gets that rule's fields
 *  (cv_decision_view_key names such a view). So the turn keeps each view
 *  it packs under its report and name, and a delivery whose view the turn
 *  already holds is given those bytes instead of packing them again. The
 *  views live for one pass of the pump (cv_views_start ends it), in which
 *  the policy and the reports cannot change.
 *
 *  A "delivered" audit leaf names the hash of the exact view sent, but it
 *  is written only when the recipient's acknowledgement is saved, a turn
 *  or more later. So the loop does not hash a view as it packs it: it
 *  keeps the copy here, starts the turn's hashes on a hasher of their own
 *  (cv_hasher.h) once it has pumped, one a distinct view, and gives each
 *  queue its hashes at the start of the next turn's end, before that turn
 *  saves acknowledgements (cv_queue_view_hashed: the delivery may have
 *  been acknowledged meanwhile). The worker has the whole of the next
 *  turn's handling to take them. Until then the deliveries are not
 *  "viewed"; a save that comes first names their views by packing them
 *  again, as after a restart, so nothing is recorded wrong, only later.
 *
 *  A view that is the whole report as stored is not kept here: its hash
 *  was taken beside the loop as the report was stored, after its
 *  checksum (cv_cache_view_hash), and the delivery is viewed at once.
 *
 *  What one turn copies here is bounded by what it may send (the broker's
 *  OUT_BYTES_MAX of deliveries waiting for their sync).
 */
#ifndef CV_VIEWS_H
#define CV_VIEWS_H

#include <stdbool.h>

#include "cv_hasher.h"
#include "cv_queue.h"

typedef struct cv_views_t cv_views_t;

/*  hasher may be NULL: the hashes are then taken on the loop. hashed
 *  false (the audit log is off): no hash is taken or given, and only
 *  named views are kept, to be shared.                                  */
cv_views_t *cv_views_new(cv_hasher_t *hasher, bool hashed);
void cv_views_destroy(cv_views_t **self_p);

/*  The view this pass holds of the report at rowid named name
 *  (cv_decision_view_key, >= 0), or NULL; *len, its length. The bytes
 *  stay where they are until the next cv_views_add of a view not held.  */
const uint8_t *cv_views_find(const cv_views_t *self, int64_t rowid, int64_t name, size_t *len);
/*  The view of len bytes packed for queue as seq, which cv_queue_viewed
 *  has named without its hash: the report at rowid's view named name, or
 *  -1 for a view not to be shared. A view cv_views_find gave is not
 *  copied again.                                                          */
void cv_views_add(cv_views_t *self, cv_queue_t *queue, uint64_t seq, int64_t rowid, int64_t name,
                  const void *view, size_t len);
/*  Ends the pass: starts hashing the views added; the hasher is theirs
 *  until cv_views_finish or cv_views_discard.                           */
void cv_views_start(cv_views_t *self);
/*  Gives each view's queue its hash, then forgets them all. The queues
 *  must still be those they were added with: before queues are read back
 *  from the store, cv_views_discard. */
void cv_views_finish(cv_views_t *self);
/*  Forgets them (the turn rolled back, taking its deliveries, or the
 *  queues are read back). */
void cv_views_discard(cv_views_t *self);

#endif
