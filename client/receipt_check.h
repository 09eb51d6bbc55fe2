/*  receipt_check.h: whether a receipt records the delivery it came for.
 *
 *  A receipt's proof shows that its leaf is in the broker's signed log
 *  (`caveat audit receipt`); this shows that the leaf is the right one: a
 *  "delivered" leaf of this agency's queue (its feed, or its direct queue)
 *  that lists the receipt's seq once, for the report received at that
 *  seq, with the SHA-256 of the view this subscriber received. A broker
 *  that answered with another agency's leaf, or another delivery's, is
 *  caught here. The agency is the one the broker named when the session
 *  began: a broker that lies about whose session it is cannot be caught
 *  by the subscriber alone.
 *
 *  The leaf and the proof come as two fields, and the proof is what a
 *  subscriber keeps: so the proof must be a proof of that very leaf (its
 *  extra data the leaf byte for byte, at the receipt's index), else a good
 *  leaf could be paired with a proof of another agency's. With the log's
 *  verifier key, receipt_verify checks the proof itself too. */
#ifndef CV_RECEIPT_CHECK_H
#define CV_RECEIPT_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "caveat.h"
#include "cv_audit.h"

/*  agency: the one the broker named at Hello (cv_client_agency); feed:
 *  the subscriber's ("" or NULL: its direct queue); report_id and
 *  view_hex: of the delivery received with the receipt's seq (its id, and
 *  its view's SHA-256 in lower-case hex), not the receipt's own word. True
 *  when the leaf records that delivery and the proof is of that leaf at
 *  the receipt's index; false with why (what does not match) otherwise,
 *  and always without a proof, or an agency, report or view to hold it
 *  to. The proof's checkpoint and hashes are not checked here. */
bool receipt_check(const cv_receipt_t *receipt, const char *agency, const char *feed,
                   const char *report_id, const char *view_hex, char *why, size_t why_size);

/*  Whether the receipt's proof is of its leaf at its index (as in
 *  receipt_check), its checkpoint signed by verifier, and the leaf at that
 *  index of the checkpoint's tree; false with why otherwise. */
bool receipt_verify(const cv_receipt_t *receipt, const cv_note_verifier_t *verifier, char *why,
                    size_t why_size);

#endif
