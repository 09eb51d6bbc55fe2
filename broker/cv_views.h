/*  cv_views.h: the SHA-256 of every view a turn sends, taken beside the
 *  loop.
 *
 *  A "delivered" audit leaf names the hash of the exact view sent, but it
 *  is written only when the recipient's acknowledgement is saved, a turn
 *  or more later. So the loop does not hash a view as it packs it: it
 *  keeps a copy here, starts the turn's hashes on a hasher of their own
 *  (cv_hasher.h) once it has pumped, and gives each queue its hashes at
 *  the start of the next turn's end, before that turn saves
 *  acknowledgements (cv_queue_view_hashed: the delivery may have been
 *  acknowledged meanwhile). The worker has the whole of the next turn's
 *  handling to take them. Until then the deliveries are not "viewed"; a
 *  save that comes first names their views by packing them again, as
 *  after a restart, so nothing is recorded wrong, only later.
 *
 *  What one turn copies here is bounded by what it may send (the broker's
 *  OUT_BYTES_MAX of deliveries waiting for their sync).
 */
#ifndef CV_VIEWS_H
#define CV_VIEWS_H

#include "cv_hasher.h"
#include "cv_queue.h"

typedef struct cv_views_t cv_views_t;

/*  hasher may be NULL: the hashes are then taken on the loop. */
cv_views_t *cv_views_new(cv_hasher_t *hasher);
void cv_views_destroy(cv_views_t **self_p);

/*  The view of len bytes packed for queue as seq, which cv_queue_viewed
 *  has named without its hash. */
void cv_views_add(cv_views_t *self, cv_queue_t *queue, uint64_t seq, const void *view, size_t len);
/*  Starts hashing the views added; the hasher is theirs until
 *  cv_views_finish or cv_views_discard. */
void cv_views_start(cv_views_t *self);
/*  Gives each view's queue its hash, then forgets them all. The queues
 *  must still be those they were added with: before queues are read back
 *  from the store, cv_views_discard. */
void cv_views_finish(cv_views_t *self);
/*  Forgets them (the turn rolled back, taking its deliveries, or the
 *  queues are read back). */
void cv_views_discard(cv_views_t *self);

#endif
