/*  fuzz_receipt_leaf: receipt_check (client/receipt_check.h), which
 *  `caveat subscribe --receipts` runs on the leaf of every receipt the
 *  broker sends, before it writes the receipt. The leaf is the broker's
 *  word: any bytes. Checked for hull-cc's direct queue and for its feed
 *  "prevent", seq 7 of report r-1 with VIEW: every refusal has its reason,
 *  a leaf is taken for one queue at most, and one taken does name that
 *  agency, report and view (its bytes hold each as a JSON string, when it
 *  has no escapes, which could spell them otherwise). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "receipt_check.h"

#define VIEW "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"

static bool holds(const uint8_t *data, size_t size, const char *text)
{
    return memmem(data, size, text, strlen(text)) != NULL;
}

static bool taken(const uint8_t *data, size_t size, const char *feed)
{
    cv_receipt_t receipt = {.seq = 7, .report_id = "r-1", .leaf = data, .leaf_len = size};
    char why[120] = "";
    if (receipt_check(&receipt, "hull-cc", feed, VIEW, why, sizeof why))
        return true;
    if (!why[0])
        fuzz_fail("a receipt refused with no reason");
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool direct = taken(data, size, NULL), feed = taken(data, size, "prevent");
    if (direct && feed)
        fuzz_fail("one leaf taken for two queues");
    if ((direct || feed) && !memchr(data, '\\', size) &&
        (!holds(data, size, "\"hull-cc\"") || !holds(data, size, "\"r-1\"") ||
         !holds(data, size, "\"" VIEW "\"") || !holds(data, size, "\"delivered\"")))
        fuzz_fail("a leaf taken that does not name the delivery");
    return 0;
}
