/*  cv_space.h: free space on the disk that holds the store.
 *
 *  What a delivery writes is small (one row per pump, a queue's
 *  acknowledgements now and then); what a publish writes is the report.
 *  When the disk fills, publishes must stop before deliveries do, or the
 *  stored backlog stops with them. So the broker keeps a reserve: a file,
 *  DIR/caveat.reserve, of `reserve` bytes, allocated when there is room.
 *
 *  The disk is short when, with the reserve held, less than `reserve`
 *  bytes are free besides it; or when a write has failed for want of space
 *  (cv_space_exhausted). While short, publishes are refused before they
 *  reach the store, and the reserve file is removed: its space is what
 *  deliveries and acknowledgements commit into. The disk stops being short
 *  when at least 2 x reserve + RESERVE_SLACK bytes are free, so that after
 *  the reserve is made again a reserve's worth is still free: going back
 *  to short at once would only flap.
 */
#ifndef CV_SPACE_H
#define CV_SPACE_H

#include <stdbool.h>
#include <stdint.h>

#include "cv_proto.h"

typedef struct cv_space_t cv_space_t;

/*  Watches the disk under dir, keeping a reserve of `reserve` bytes
 *  there. A disk short already at start is no error: the broker starts
 *  short (cv_space_short) and says so. NULL when dir cannot be examined. */
cv_space_t *cv_space_new(const char *dir, uint64_t reserve, cv_error_t *err);
void cv_space_destroy(cv_space_t **self_p);

/*  Looks at the disk again (statvfs), at most every CHECK_INTERVAL_MS
 *  unless now: gives up or makes the reserve as the free space says.
 *  True when that changed whether the disk is short. */
bool cv_space_check(cv_space_t *self, bool now);

/*  A write failed for want of space: short from now, whatever statvfs
 *  says (the reserve is given up). */
void cv_space_exhausted(cv_space_t *self);

bool cv_space_short(const cv_space_t *self);
/*  Bytes free for the broker's user at the last look, reserve excluded. */
uint64_t cv_space_free(const cv_space_t *self);
uint64_t cv_space_reserve(const cv_space_t *self);
/*  The free bytes at which a short disk stops being short. */
uint64_t cv_space_resume_at(const cv_space_t *self);

#endif
