/*  cv_checkpoint.c: C2SP tlog-checkpoint bodies: the origin, the tree size
 *  in decimal (no leading zero, no sign), the root hash in base64, each on
 *  a line of its own; extension lines after them are allowed and ignored.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_internal.h"

#define ROOT_TEXT_MAX sodium_base64_ENCODED_LEN(CV_HASH_BYTES, sodium_base64_VARIANT_ORIGINAL)

char *cv_checkpoint_body(const cv_checkpoint_t *self)
{
    char root[ROOT_TEXT_MAX];
    cv_base64_encode(self->root.bytes, CV_HASH_BYTES, root, sizeof root);
    char *body = NULL;
    if (asprintf(&body, "%s\n%llu\n%s\n", self->origin, (unsigned long long)self->size, root) < 0)
        return NULL;
    return body;
}

/*  The next line of [*at, end) without its '\n'; false when there is no
 *  complete line left. */
static bool next_line(const char **at, const char *end, const char **line, size_t *len)
{
    const char *nl = *at < end ? memchr(*at, '\n', (size_t)(end - *at)) : NULL;
    if (!nl)
        return false;
    *line = *at;
    *len = (size_t)(nl - *at);
    *at = nl + 1;
    return true;
}

static bool parse_size(const char *text, size_t len, uint64_t *size)
{
    if (len == 0 || len > 19 || (text[0] == '0' && len > 1))
        return false;
    uint64_t value = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        value = value * 10 + (uint64_t)(text[i] - '0');
    }
    *size = value;
    return value <= INT64_MAX; /* SQLite's integers, and Go's */
}

static bool refuse(cv_error_t *err, const char *what)
{
    cv_error_set(err, NULL, 0, 0, "checkpoint: %s", what);
    return false;
}

bool cv_checkpoint_parse(const char *body, size_t len, cv_checkpoint_t *out, cv_error_t *err)
{
    memset(out, 0, sizeof *out);
    const char *at = body, *end = body + len, *line;
    size_t n = 0, got = 0;
    if (!next_line(&at, end, &line, &n) || n == 0 || n >= CV_NOTE_NAME_MAX)
        return refuse(err, "no origin line");
    memcpy(out->origin, line, n);
    if (memchr(line, '\0', n))
        return refuse(err, "no origin line");
    if (!next_line(&at, end, &line, &n) || !parse_size(line, n, &out->size))
        return refuse(err, "the second line is not a tree size in decimal");
    if (!next_line(&at, end, &line, &n) ||
        !cv_base64_decode(line, n, out->root.bytes, CV_HASH_BYTES, &got) || got != CV_HASH_BYTES)
        return refuse(err, "the third line is not a root hash (32 bytes in base64)");
    while (next_line(&at, end, &line, &n))
        if (n == 0)
            return refuse(err, "an empty extension line");
    if (at != end)
        return refuse(err, "the last line does not end in a newline");
    return true;
}

bool cv_checkpoint_open(const char *note, size_t len, const cv_note_verifier_t *verifier,
                        cv_checkpoint_t *out, cv_error_t *err)
{
    size_t body_len = 0;
    if (!cv_note_verify(note, len, verifier, &body_len, err) ||
        !cv_checkpoint_parse(note, body_len, out, err))
        return false;
    if (strcmp(out->origin, verifier->name) != 0) {
        cv_error_set(err, NULL, 0, 0, "checkpoint: origin '%s' is not the log's (%s)", out->origin,
                     verifier->name);
        return false;
    }
    return true;
}
