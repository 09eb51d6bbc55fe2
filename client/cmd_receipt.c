/*  caveat audit receipt FILE --key VERIFIER-KEY: checks a receipt (a
 *  c2sp.org/tlog-proof@v1 file whose extra data is the leaf, as `caveat
 *  subscribe --receipts` writes them) without the broker's data directory:
 *  the checkpoint is signed by the verifier key, and the leaf is at its
 *  index in that checkpoint's tree. Prints the leaf, as cv_text_write
 *  writes it: the leaf is the file's word until it is checked, and even a
 *  good one is bytes another wrote, which must not write to the terminal
 *  or end at a NUL. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cv_audit.h"

static const char usage[] = "usage: caveat audit receipt FILE --key VERIFIER-KEY";

#define RECEIPT_MAX (64 * 1024) /* far more than any proof of a 2^63-leaf tree */

static void print_good(const cv_audit_proof_t *proof, const cv_checkpoint_t *checkpoint)
{
    printf("receipt good: leaf %" PRIu64 " of %s at size %" PRIu64 "\n", proof->index,
           checkpoint->origin, checkpoint->size);
    cv_text_write(stdout, (const char *)proof->extra, proof->extra_len);
    putchar('\n');
}

int cmd_audit_receipt(int argc, char **argv)
{
    bool missing = false;
    const char *key = cli_take_option(&argc, argv, "--key", &missing);
    if (argc != 2 || missing || !key)
        return cli_error(CLI_USAGE, "%s", usage);
    cv_error_t err = {0};
    cv_note_verifier_t verifier;
    if (!cv_note_verifier_parse(key, &verifier, &err))
        return cli_error(CLI_USAGE, "--key: %s", err.msg);
    size_t len = 0;
    /* a FIFO given for FILE is refused, not waited on */
    char *text = cv_read_regular_file(argv[1], RECEIPT_MAX, &len, NULL, &err);
    if (!text)
        return cli_error(CLI_FAILED, "%s: %s", argv[1], err.msg);
    cv_audit_proof_t proof;
    cv_checkpoint_t checkpoint;
    bool ok = cv_audit_proof_parse(text, len, &proof, &err);
    if (ok && !proof.extra) {
        cv_error_set(&err, NULL, 0, 0, "tlog-proof: no extra line: a receipt carries its leaf");
        ok = false;
    }
    ok = ok &&
         cv_audit_proof_check(&proof, proof.extra, proof.extra_len, &verifier, &checkpoint, &err);
    /* a proof of any leaf holds as well: only one of a delivery is a
     * receipt (the broker writes the event first in every leaf) */
    static const char delivered[] = "{\"event\":\"delivered\",";
    if (ok && (proof.extra_len < sizeof delivered - 1 ||
               memcmp(proof.extra, delivered, sizeof delivered - 1) != 0)) {
        cv_error_set(&err, NULL, 0, 0,
                     "leaf %" PRIu64 " is in the log, but records no delivery: not a receipt",
                     proof.index);
        ok = false;
    }
    int status = CLI_OK;
    if (ok)
        print_good(&proof, &checkpoint);
    else
        status = cli_error(CLI_FAILED, "%s: %s", argv[1], err.msg);
    cv_audit_proof_clear(&proof);
    free(text);
    return status;
}
