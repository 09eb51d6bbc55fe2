/*  receipt_check.h: whether a receipt's leaf records the delivery it
 *  came for.
 *
 *  A receipt's proof shows that its leaf is in the broker's signed log
 *  (`caveat audit receipt`); this shows that the leaf is the right one: a
 *  "delivered" leaf of this agency's queue (its feed, or its direct queue)
 *  that lists the receipt's seq once, for the receipt's report, with the
 *  SHA-256 of the view this subscriber received. A broker that answered
 *  with another agency's leaf, or another delivery's, is caught here. */
#ifndef CV_RECEIPT_CHECK_H
#define CV_RECEIPT_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "caveat.h"

/*  feed: the subscriber's ("" or NULL: its direct queue). view_hex: the
 *  received view's SHA-256 in lower-case hex. True when the leaf records
 *  that delivery; false with why (what does not match) otherwise, and
 *  always without an agency or a view to hold it to. */
bool receipt_check(const cv_receipt_t *receipt, const char *agency, const char *feed,
                   const char *view_hex, char *why, size_t why_size);

#endif
