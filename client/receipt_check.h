/*  receipt_check.h: whether a receipt's leaf records the delivery it
 *  came for.
 *
 *  A receipt's proof shows that its leaf is in the broker's signed log
 *  (`caveat audit receipt`); this shows that the leaf is the right one: a
 *  "delivered" leaf of this agency's queue (its feed, or its direct queue)
 *  that lists the receipt's seq once, for the report received at that
 *  seq, with the SHA-256 of the view this subscriber received. A broker
 *  that answered with another agency's leaf, or another delivery's, is
 *  caught here. The agency is the one the broker named when the session
 *  began: a broker that lies about whose session it is cannot be caught
 *  by the subscriber alone. */
#ifndef CV_RECEIPT_CHECK_H
#define CV_RECEIPT_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "caveat.h"

/*  agency: the one the broker named at Hello (cv_client_agency); feed:
 *  the subscriber's ("" or NULL: its direct queue); report_id and
 *  view_hex: of the delivery received with the receipt's seq (its id, and
 *  its view's SHA-256 in lower-case hex), not the receipt's own word. True
 *  when the leaf records that delivery; false with why (what does not
 *  match) otherwise, and always without an agency, report or view to hold
 *  it to. */
bool receipt_check(const cv_receipt_t *receipt, const char *agency, const char *feed,
                   const char *report_id, const char *view_hex, char *why, size_t why_size);

#endif
