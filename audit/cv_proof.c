/*  cv_proof.c: a c2sp.org/tlog-proof@v1 text read back and checked, as a
 *  receipt's holder does without the log; see cv_audit.h.
 *
 *  The form is the one cv_audit_proof_text writes: the header line, an
 *  optional "extra BASE64" line, "index N", one base64 hash a line, a
 *  blank line, and the signed checkpoint to the end.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "audit_internal.h"

#define HEADER "c2sp.org/tlog-proof@v1\n"

/*  The line at *at (without its '\n'), *at moved past it; NULL at the end
 *  or when the line has no '\n'. */
static const char *next_line(const char *text, size_t len, size_t *at, size_t *line_len)
{
    const char *start = text + *at;
    const char *end = *at < len ? memchr(start, '\n', len - *at) : NULL;
    if (!end)
        return NULL;
    *line_len = (size_t)(end - start);
    *at += *line_len + 1;
    return start;
}

static bool refuse(cv_error_t *err, const char *what)
{
    cv_error_set(err, NULL, 0, 0, "tlog-proof: %s", what);
    return false;
}

/*  The extra data, a leaf: as long as its line says. */
static bool parse_extra(const char *line, size_t n, cv_audit_proof_t *out)
{
    size_t max = n / 4 * 3 + 3;
    out->extra = malloc(max);
    return out->extra && cv_base64_decode(line, n, out->extra, max, &out->extra_len);
}

static bool parse_index(const char *line, size_t n, uint64_t *index)
{
    char digits[24];
    if (n < 7 || n - 6 >= sizeof digits || memcmp(line, "index ", 6) != 0)
        return false;
    memcpy(digits, line + 6, n - 6);
    digits[n - 6] = '\0';
    char *end = NULL;
    if (strspn(digits, "0123456789") != n - 6 || (digits[0] == '0' && n - 6 > 1))
        return false;
    *index = strtoull(digits, &end, 10);
    return *end == '\0' && *index < INT64_MAX;
}

bool cv_audit_proof_parse(const char *text, size_t len, cv_audit_proof_t *out, cv_error_t *err)
{
    memset(out, 0, sizeof *out);
    size_t at = 0, n = 0;
    const char *line;
    if (len < strlen(HEADER) || memcmp(text, HEADER, strlen(HEADER)) != 0)
        return refuse(err, "not a c2sp.org/tlog-proof@v1 file");
    at = strlen(HEADER);
    line = next_line(text, len, &at, &n);
    if (line && n >= 6 && memcmp(line, "extra ", 6) == 0) {
        if (!parse_extra(line + 6, n - 6, out)) {
            cv_audit_proof_clear(out);
            return refuse(err, "its extra line is not base64");
        }
        line = next_line(text, len, &at, &n);
    }
    if (!line || !parse_index(line, n, &out->index)) {
        cv_audit_proof_clear(out);
        return refuse(err, "no index line");
    }
    while ((line = next_line(text, len, &at, &n)) && n > 0) {
        size_t got = 0;
        if (out->n == CV_MERKLE_MAX_PROOF ||
            !cv_base64_decode(line, n, out->proof[out->n].bytes, CV_HASH_BYTES, &got) ||
            got != CV_HASH_BYTES) {
            cv_audit_proof_clear(out);
            return refuse(err, "a proof line is not a base64 hash");
        }
        out->n++;
    }
    if (!line || at >= len) {
        cv_audit_proof_clear(out);
        return refuse(err, "no checkpoint after the proof");
    }
    out->note = text + at;
    out->note_len = len - at;
    return true;
}

void cv_audit_proof_clear(cv_audit_proof_t *self)
{
    free(self->extra);
    self->extra = NULL;
    self->extra_len = 0;
}

bool cv_audit_proof_check(const cv_audit_proof_t *proof, const void *leaf, size_t len,
                          const cv_note_verifier_t *verifier, cv_checkpoint_t *checkpoint,
                          cv_error_t *err)
{
    cv_checkpoint_t opened;
    cv_hash_t hash;
    if (!cv_checkpoint_open(proof->note, proof->note_len, verifier, &opened, err))
        return false;
    if (checkpoint)
        *checkpoint = opened;
    cv_merkle_leaf_hash(leaf, len, &hash);
    if (cv_merkle_verify_inclusion(proof->index, opened.size, &hash, proof->proof, (size_t)proof->n,
                                   &opened.root))
        return true;
    cv_error_set(err, NULL, 0, 0,
                 "tlog-proof: the leaf is not at index %" PRIu64 " of the checkpoint of %" PRIu64
                 " leaves: the proof or the leaf was changed",
                 proof->index, opened.size);
    return false;
}
