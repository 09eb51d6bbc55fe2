/*  fuzz_audit_proof: the reader of c2sp.org/tlog-proof@v1 files
 *  (cv_audit_proof_parse) and their check (cv_audit_proof_check), which
 *  `caveat audit receipt` runs on a file an agency or anyone hands over,
 *  without the broker's log. The seed corpus (fuzz_audit_proof_seeds)
 *  holds receipts of trees whose leaves are all "fuzz leaf N" at index N,
 *  signed by the key in fuzz_audit_proof/verifier_key. Checks that every
 *  refusal has its reason, that a proof read writes back as the same text,
 *  and that a receipt the check accepts carries the leaf that really is
 *  at its index: no edit of a signed receipt moves a leaf or brings in
 *  another. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_audit.h"
#include "fuzz.h"

static cv_note_verifier_t verifier;

static void load_verifier(void)
{
    size_t len = 0;
    char *text = fuzz_source_file("tests/fuzz/fuzz_audit_proof/verifier_key", &len);
    text[strcspn(text, "\n")] = '\0';
    cv_error_t err = {0};
    if (!cv_note_verifier_parse(text, &verifier, &err))
        fuzz_fail("fuzz_audit_proof/verifier_key: %s", err.msg);
    free(text);
}

static void check_written_back(const cv_audit_proof_t *proof, const char *text, size_t size)
{
    char *note = strndup(proof->note, proof->note_len);
    if (!note)
        abort();
    if (strlen(note) == proof->note_len) { /* else a NUL: no text the writer is given */
        char *back = cv_audit_proof_text(proof->index, proof->extra, proof->extra_len, proof->proof,
                                         proof->n, note);
        if (!back || strlen(back) != size || memcmp(back, text, size) != 0)
            fuzz_fail("a proof read does not write back the same");
        free(back);
    }
    free(note);
}

static void check_receipt(const cv_audit_proof_t *proof)
{
    cv_error_t err = {0};
    cv_checkpoint_t checkpoint;
    if (!proof->extra)
        return;
    if (!cv_audit_proof_check(proof, proof->extra, proof->extra_len, &verifier, &checkpoint,
                              &err)) {
        if (!err.msg[0])
            fuzz_fail("a receipt refused with no reason");
        return;
    }
    char expected[64];
    int n = snprintf(expected, sizeof expected, "fuzz leaf %" PRIu64, proof->index);
    if (proof->index >= checkpoint.size || (size_t)n != proof->extra_len ||
        memcmp(expected, proof->extra, proof->extra_len) != 0)
        fuzz_fail("a receipt for a leaf that is not at index %" PRIu64 " was accepted",
                  proof->index);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!verifier.name[0])
        load_verifier();
    cv_audit_proof_t proof;
    cv_error_t err = {0};
    if (!cv_audit_proof_parse((const char *)data, size, &proof, &err)) {
        if (strncmp(err.msg, "tlog-proof: ", 12) != 0)
            fuzz_fail("a proof refused with no reason: '%s'", err.msg);
        if (proof.extra)
            fuzz_fail("a refused proof kept its extra data");
        return 0;
    }
    if (proof.n < 0 || proof.n > CV_MERKLE_MAX_PROOF || proof.note < (const char *)data ||
        proof.note + proof.note_len != (const char *)data + size)
        fuzz_fail("a proof read points outside its text");
    check_written_back(&proof, (const char *)data, size);
    check_receipt(&proof);
    cv_audit_proof_clear(&proof);
    return 0;
}
