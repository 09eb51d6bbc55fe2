/*  fuzz_receipt_leaf: receipt_check (client/receipt_check.h), which
 *  `caveat subscribe --receipts` runs on the leaf of every receipt the
 *  broker sends, before it writes the receipt. The leaf is the broker's
 *  word: any bytes. Checked for hull-cc's direct queue and for its feed
 *  "prevent", seq 7 of report r-1 with VIEW: every refusal has its reason,
 *  a leaf is taken for one queue at most, and one taken does name that
 *  agency, report and view, and seq 7 only once (its bytes hold each as
 *  JSON, when it has no escapes, which could spell them otherwise). Each
 *  leaf comes with a proof of it, as the broker's receipts do (unsigned:
 *  receipt_check holds the proof to the leaf, not to a key). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_audit.h"
#include "fuzz.h"
#include "receipt_check.h"

#define VIEW "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"

static bool holds(const uint8_t *data, size_t size, const char *text)
{
    return memmem(data, size, text, strlen(text)) != NULL;
}

/*  How many times seq 7 is written in data ("seq":7 not followed by a
 *  digit, so also 7.0 or 7e0). */
static int sevens(const uint8_t *data, size_t size)
{
    static const char seven[] = "\"seq\":7";
    int n = 0;
    for (const uint8_t *at = data, *end = data + size;
         (at = memmem(at, (size_t)(end - at), seven, sizeof seven - 1)) != NULL;
         at += sizeof seven - 1) {
        const uint8_t *after = at + sizeof seven - 1;
        n += after == end || *after < '0' || *after > '9';
    }
    return n;
}

static bool taken(const uint8_t *data, size_t size, const char *proof, const char *feed)
{
    cv_receipt_t receipt = {.seq = 7,
                            .report_id = "r-1",
                            .leaf = data,
                            .leaf_len = size,
                            .proof = proof,
                            .proof_len = strlen(proof)};
    char why[120] = "";
    if (receipt_check(&receipt, "hull-cc", feed, "r-1", VIEW, why, sizeof why))
        return true;
    if (!why[0])
        fuzz_fail("a receipt refused with no reason");
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *proof = cv_audit_proof_text(0, data, size, NULL, 0, "checkpoint\n");
    if (!proof)
        fuzz_fail("out of memory");
    bool direct = taken(data, size, proof, NULL), feed = taken(data, size, proof, "prevent");
    free(proof);
    if (direct && feed)
        fuzz_fail("one leaf taken for two queues");
    if ((direct || feed) && !memchr(data, '\\', size) &&
        (!holds(data, size, "\"hull-cc\"") || !holds(data, size, "\"r-1\"") ||
         !holds(data, size, "\"" VIEW "\"") || !holds(data, size, "\"delivered\"")))
        fuzz_fail("a leaf taken that does not name the delivery");
    if ((direct || feed) && !memchr(data, '\\', size) && sevens(data, size) != 1)
        fuzz_fail("a leaf taken that writes seq 7 more than once");
    return 0;
}
