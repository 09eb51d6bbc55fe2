/*  cv_note.c: C2SP signed notes, the verifying side: key names, key IDs,
 *  verifier keys, and checking a note's signature.
 *
 *  A note is read as Go's golang.org/x/mod/sumdb/note reads it: valid
 *  UTF-8 with no control character but '\n'; the body ends at the last
 *  blank line; every signature line is "— NAME BASE64\n", BASE64 holding
 *  the 4-byte key ID and the signature. Lines by other keys are allowed
 *  (witnesses may cosign) and not checked.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "audit_internal.h"

#define SIG_PREFIX     "\xe2\x80\x94 " /* U+2014 EM DASH, a space */
#define MAX_SIGNATURES 100             /* as Go's reader allows */

/*  libsodium's decoder takes some bytes outside the alphabet for letters of
 *  it (0xa7 decodes as '/'), and ignores the unused bits of the last
 *  letter: only text that the bytes encode back to exactly is accepted, so
 *  that one value has one text, as in Go's reader. The bytes are encoded
 *  again 48 at a time (64 letters, no padding but in the last), so a text
 *  of any length (a receipt's leaf) is checked without a buffer its size. */
static bool encodes_exactly(const char *text, size_t len, const uint8_t *bytes, size_t n)
{
    char back[64 + 1];
    if (len != sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL) - 1)
        return false;
    for (size_t at = 0; at < n; at += 48) {
        cv_base64_encode(bytes + at, n - at < 48 ? n - at : 48, back, sizeof back);
        if (memcmp(back, text + at / 3 * 4, strlen(back)) != 0)
            return false;
    }
    return true;
}

bool cv_base64_decode(const char *text, size_t len, uint8_t *out, size_t max, size_t *got)
{
    *got = 0;
    return len > 0 && len <= 4 * ((max + 2) / 3) &&
           sodium_base642bin(out, max, text, len, NULL, got, NULL,
                             sodium_base64_VARIANT_ORIGINAL) == 0 &&
           encodes_exactly(text, len, out, *got);
}

void cv_base64_encode(const void *bytes, size_t len, char *out, size_t size)
{
    sodium_bin2base64(out, size, bytes, len, sodium_base64_VARIANT_ORIGINAL);
}

bool cv_note_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= CV_NOTE_NAME_MAX)
        return false;
    for (const char *c = name; *c; c++)
        if (*c <= ' ' || *c > '~' || *c == '+')
            return false;
    return true;
}

void cv_note_key_id(const char *name, const uint8_t public_key[CV_NOTE_KEY_BYTES],
                    uint8_t key_id[CV_NOTE_KEY_ID_BYTES])
{
    static const uint8_t between[2] = {'\n', CV_NOTE_ALG_ED25519};
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init(&state);
    crypto_hash_sha256_update(&state, (const uint8_t *)name, strlen(name));
    crypto_hash_sha256_update(&state, between, sizeof between);
    crypto_hash_sha256_update(&state, public_key, CV_NOTE_KEY_BYTES);
    crypto_hash_sha256_final(&state, digest);
    memcpy(key_id, digest, CV_NOTE_KEY_ID_BYTES);
}

/*  "NAME+" then 8 hex digits then "+": the name and the key ID's digits. */
static bool split_verifier(const char *text, cv_note_verifier_t *out, const char **hex,
                           const char **key)
{
    const char *plus = strchr(text, '+');
    if (!plus || (size_t)(plus - text) >= CV_NOTE_NAME_MAX)
        return false;
    memcpy(out->name, text, (size_t)(plus - text));
    out->name[plus - text] = '\0';
    *hex = plus + 1;
    *key = strchr(*hex, '+');
    return *key && *key - *hex == 2 * CV_NOTE_KEY_ID_BYTES && cv_note_name_valid(out->name) &&
           (*key)++;
}

static bool lowercase_hex(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f')))
            return false;
    return true;
}

bool cv_note_verifier_parse(const char *text, cv_note_verifier_t *out, cv_error_t *err)
{
    memset(out, 0, sizeof *out);
    const char *hex = NULL, *key = NULL;
    uint8_t id[CV_NOTE_KEY_ID_BYTES], raw[1 + CV_NOTE_KEY_BYTES];
    size_t got = 0;
    if (!split_verifier(text, out, &hex, &key) || !lowercase_hex(hex, 2 * CV_NOTE_KEY_ID_BYTES) ||
        sodium_hex2bin(id, sizeof id, hex, 2 * CV_NOTE_KEY_ID_BYTES, NULL, NULL, NULL) != 0) {
        cv_error_set(err, NULL, 0, 0, "not a verifier key (NAME+KEYID+BASE64): '%.64s'", text);
        return false;
    }
    if (!cv_base64_decode(key, strlen(key), raw, sizeof raw, &got) || got != sizeof raw ||
        raw[0] != CV_NOTE_ALG_ED25519) {
        cv_error_set(err, NULL, 0, 0, "verifier key %s: not an Ed25519 key", out->name);
        return false;
    }
    memcpy(out->public_key, raw + 1, CV_NOTE_KEY_BYTES);
    cv_note_key_id(out->name, out->public_key, out->key_id);
    if (memcmp(id, out->key_id, sizeof id) != 0) {
        cv_error_set(err, NULL, 0, 0, "verifier key %s: key ID %.8s is not the key's", out->name,
                     hex);
        return false;
    }
    return true;
}

void cv_note_verifier_text(const cv_note_verifier_t *self, char out[CV_VERIFIER_KEY_MAX])
{
    uint8_t raw[1 + CV_NOTE_KEY_BYTES] = {CV_NOTE_ALG_ED25519};
    memcpy(raw + 1, self->public_key, CV_NOTE_KEY_BYTES);
    char hex[2 * CV_NOTE_KEY_ID_BYTES + 1];
    char key[sodium_base64_ENCODED_LEN(sizeof raw, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2hex(hex, sizeof hex, self->key_id, CV_NOTE_KEY_ID_BYTES);
    cv_base64_encode(raw, sizeof raw, key, sizeof key);
    snprintf(out, CV_VERIFIER_KEY_MAX, "%s+%s+%s", self->name, hex, key);
}

/*  UTF-8 (cv_text_check: no NUL either) and no control character but
 *  '\n': neither C0 nor DEL nor C1 (U+0080 to U+009F, of which U+009B
 *  starts a terminal's escape sequences as ESC [ does), so that a note
 *  printed as it is cannot drive the terminal that shows it. */
static bool note_text_ok(const char *note, size_t len, cv_error_t *err)
{
    int line = 0, col = 0;
    const char *bad = cv_text_check(note, len, &line, &col);
    if (bad) {
        cv_error_set(err, NULL, 0, 0, "note: line %d: %s", line, bad);
        return false;
    }
    if (!cv_text_readable(note, len, "\n")) {
        cv_error_set(err, NULL, 0, 0, "note: a control character");
        return false;
    }
    return true;
}

bool cv_note_body(const char *note, size_t len, size_t *body_len, cv_error_t *err)
{
    if (!note_text_ok(note, len, err))
        return false;
    const char *split = NULL;
    for (const char *p = note; (p = memmem(p, len - (size_t)(p - note), "\n\n", 2)); p++)
        split = p;
    if (!split || note[len - 1] != '\n' || split + 2 == note + len) {
        cv_error_set(err, NULL, 0, 0, "note: no signature after a blank line");
        return false;
    }
    *body_len = (size_t)(split - note) + 1;
    return true;
}

/*  One signature line (without its '\n'): its name and decoded bytes, key
 *  ID first. */
typedef struct {
    char name[CV_NOTE_NAME_MAX];
    uint8_t bytes[CV_NOTE_KEY_ID_BYTES + crypto_sign_BYTES + 1];
    size_t len;
} signature_t;

static bool parse_signature(const char *line, size_t len, signature_t *sig)
{
    size_t prefix = strlen(SIG_PREFIX);
    if (len < prefix || memcmp(line, SIG_PREFIX, prefix) != 0)
        return false;
    line += prefix, len -= prefix;
    const char *space = memchr(line, ' ', len);
    if (!space || (size_t)(space - line) >= CV_NOTE_NAME_MAX)
        return false;
    memcpy(sig->name, line, (size_t)(space - line));
    sig->name[space - line] = '\0';
    const char *b64 = space + 1;
    return cv_note_name_valid(sig->name) &&
           cv_base64_decode(b64, len - (size_t)(b64 - line), sig->bytes, sizeof sig->bytes,
                            &sig->len) &&
           sig->len > CV_NOTE_KEY_ID_BYTES;
}

static bool by_verifier(const signature_t *sig, const cv_note_verifier_t *verifier)
{
    return strcmp(sig->name, verifier->name) == 0 &&
           memcmp(sig->bytes, verifier->key_id, CV_NOTE_KEY_ID_BYTES) == 0;
}

static bool signature_valid(const signature_t *sig, const char *body, size_t body_len,
                            const cv_note_verifier_t *verifier)
{
    return sig->len == CV_NOTE_KEY_ID_BYTES + crypto_sign_BYTES &&
           crypto_sign_verify_detached(sig->bytes + CV_NOTE_KEY_ID_BYTES, (const uint8_t *)body,
                                       body_len, verifier->public_key) == 0;
}

/*  Reads the signature lines from *at to end; whether one by verifier is
 *  valid (*signed_by says whether there was one at all). */
static bool check_signatures(const char *note, size_t body_len, size_t len,
                             const cv_note_verifier_t *verifier, bool *signed_by, cv_error_t *err)
{
    bool valid = false;
    int count = 0;
    for (size_t at = body_len + 1; at < len; count++) {
        const char *end = memchr(note + at, '\n', len - at);
        signature_t sig;
        if (count == MAX_SIGNATURES ||
            !parse_signature(note + at, (size_t)(end - note) - at, &sig)) {
            cv_error_set(err, NULL, 0, 0, "note: signature line %d is malformed", count + 1);
            return false;
        }
        if (by_verifier(&sig, verifier)) {
            *signed_by = true;
            valid = valid || signature_valid(&sig, note, body_len, verifier);
        }
        at = (size_t)(end - note) + 1;
    }
    return valid;
}

bool cv_note_verify(const char *note, size_t len, const cv_note_verifier_t *verifier,
                    size_t *body_len, cv_error_t *err)
{
    cv_error_t local;
    if (!err)
        err = &local;
    err->msg[0] = '\0';
    if (!cv_note_body(note, len, body_len, err))
        return false;
    bool signed_by = false;
    if (check_signatures(note, *body_len, len, verifier, &signed_by, err))
        return true;
    char hex[2 * CV_NOTE_KEY_ID_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, verifier->key_id, CV_NOTE_KEY_ID_BYTES);
    if (err->msg[0])
        return false;
    if (signed_by)
        cv_error_set(err, NULL, 0, 0, "note: the signature by %s (key ID %s) is not valid",
                     verifier->name, hex);
    else
        cv_error_set(err, NULL, 0, 0, "note: not signed by %s (key ID %s)", verifier->name, hex);
    return false;
}
