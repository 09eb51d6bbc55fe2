/*  cv_receipts.h: receipts for subscribers that ask for them (Hello
 *  receipts): for each of their acknowledged deliveries, a proof that its
 *  "delivered" leaf is in the signed audit log.
 *
 *  A leaf's index is known once its transaction is flushed, and its proof
 *  once a checkpoint covers it: cv_receipts_note keeps what the open
 *  transaction wrote, cv_receipts_settle turns it into indexes (or forgets
 *  it, on a rollback), and cv_receipts_take proves what the last
 *  checkpoint covers, a bounded number a turn, for the broker to send.
 *  Sessions are opaque keys; the broker forgets each one as it ends.
 */
#ifndef CV_RECEIPTS_H
#define CV_RECEIPTS_H

#include "cv_record.h"

#define CV_RECEIPTS_PER_FRAME 64   /* receipts in one Receipts frame */
#define CV_RECEIPTS_PER_TURN  512  /* proofs made in one turn, all sessions */
#define CV_RECEIPTS_WAITING   4096 /* a session's receipts not yet sent: past it, no deliveries */
#define CV_RECEIPTS_TILES     64   /* tiles of leaves the prover learns in one turn */
#define CV_RECEIPTS_PROMPT_MS 200  /* a checkpoint is signed this soon for waiting receipts */

typedef struct cv_receipts_t cv_receipts_t;

cv_receipts_t *cv_receipts_new(cv_record_t *record);
void cv_receipts_destroy(cv_receipts_t **self_p);

/*  The "delivered" leaf at position in the open transaction (see
 *  cv_record_delivered) is session's delivery seq of report_id. */
void cv_receipts_note(cv_receipts_t *self, const void *session, size_t position, uint64_t seq,
                      const char *report_id);
/*  The open transaction committed (after its flush) or rolled back. */
void cv_receipts_settle(cv_receipts_t *self, bool committed);
/*  session ended: its receipts are forgotten. */
void cv_receipts_forget(cv_receipts_t *self, const void *session);
/*  Receipts waiting for session (its deliveries stop at CV_RECEIPTS_WAITING). */
size_t cv_receipts_waiting(cv_receipts_t *self, const void *session);
/*  How many receipts session's list has room for: its memory. Sent ones'
 *  room is taken back before the list grows, so it stays within twice the
 *  most that waited at once, however many the session was ever owed. */
size_t cv_receipts_room(cv_receipts_t *self, const void *session);
/*  Whether any receipts wait to be sent: the loop turns for them. */
bool cv_receipts_pending(cv_receipts_t *self);
/*  Whether receipts wait for a checkpoint, the oldest for
 *  CV_RECEIPTS_PROMPT_MS or more (now_ms monotonic). */
bool cv_receipts_want_checkpoint(cv_receipts_t *self, int64_t now_ms);

/*  Proves the receipts the last checkpoint covers, at most
 *  CV_RECEIPTS_PER_TURN, calling send(arg, session, frame) with each
 *  Receipts frame (borrowed for the call). false with err when the log
 *  cannot be read: the receipts stay and are tried again. */
typedef void(cv_receipts_send_fn)(void *arg, const void *session,
                                  const Caveat__Wire__Receipts *receipts);
bool cv_receipts_take(cv_receipts_t *self, cv_receipts_send_fn *send, void *arg, cv_error_t *err);

#endif
