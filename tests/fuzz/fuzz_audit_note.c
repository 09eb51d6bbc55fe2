/*  fuzz_audit_note: the audit log's readers of outside text: signed
 *  checkpoints (cv_checkpoint_open: the signed-note reader, then the
 *  tlog-checkpoint body), checkpoint bodies alone (cv_checkpoint_parse)
 *  and verifier keys (cv_note_verifier_parse), on the same bytes, against
 *  the key of the seed corpus (example.com/log, signed by Go's
 *  golang.org/x/mod/sumdb/note). Checks that every refusal has its
 *  reason, that what is accepted is what caveat writes (a checkpoint's
 *  body and a verifier key read back to the same text) and that an
 *  accepted checkpoint is the verifier's. */
#include <stdlib.h>
#include <string.h>

#include "cv_audit.h"
#include "fuzz.h"

static const char verifier_text[] =
    "example.com/log+556406d6+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk";

static cv_note_verifier_t verifier;

/*  body (len bytes) starts with the body caveat writes for checkpoint:
 *  the rest, if any, is extension lines. */
static void check_written_back(const cv_checkpoint_t *checkpoint, const char *body, size_t len)
{
    char *written = cv_checkpoint_body(checkpoint);
    if (!written || strlen(written) > len || memcmp(written, body, strlen(written)) != 0)
        fuzz_fail("a checkpoint read does not write back the same");
    free(written);
}

static void check_signed(const char *text, size_t size)
{
    cv_checkpoint_t checkpoint;
    cv_error_t err = {0};
    if (!cv_checkpoint_open(text, size, &verifier, &checkpoint, &err)) {
        if (!err.msg[0])
            fuzz_fail("a checkpoint refused with no reason");
        return;
    }
    size_t body_len = 0;
    if (strcmp(checkpoint.origin, verifier.name) != 0 ||
        !cv_note_verify(text, size, &verifier, &body_len, &err))
        fuzz_fail("an accepted checkpoint is not the verifier's");
    check_written_back(&checkpoint, text, body_len);
}

static void check_body(const char *text, size_t size)
{
    cv_checkpoint_t checkpoint;
    cv_error_t err = {0};
    if (cv_checkpoint_parse(text, size, &checkpoint, &err))
        check_written_back(&checkpoint, text, size);
    else if (strncmp(err.msg, "checkpoint: ", 12) != 0)
        fuzz_fail("a checkpoint body refused with no reason: '%s'", err.msg);
}

static void check_verifier_key(const char *text)
{
    cv_note_verifier_t parsed;
    cv_error_t err = {0};
    char back[CV_VERIFIER_KEY_MAX];
    if (cv_note_verifier_parse(text, &parsed, &err)) {
        cv_note_verifier_text(&parsed, back);
        if (strcmp(back, text) != 0)
            fuzz_fail("verifier key '%s' reads back as '%s'", text, back);
    } else if (!err.msg[0]) {
        fuzz_fail("a verifier key refused with no reason");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!verifier.name[0]) {
        cv_error_t err = {0};
        if (!cv_note_verifier_parse(verifier_text, &verifier, &err))
            fuzz_fail("%s", err.msg);
    }
    char *text = malloc(size + 1); /* NUL-terminated for the key reader */
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    check_signed((const char *)data, size);
    check_body((const char *)data, size);
    check_verifier_key(text);
    free(text);
    return 0;
}
