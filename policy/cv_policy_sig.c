/*  cv_policy_sig.c: detached signatures of policy files, in minisign's
 *  format, and the signers file (cv_policy_sig.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "cv_policy_sig.h"

#define ALG_PLAIN         "Ed" /* the signature is of the bytes themselves */
#define ALG_PREHASHED     "ED" /* of their BLAKE2b-512 (minisign's default) */
#define UNTRUSTED_PREFIX  "untrusted comment: "
#define TRUSTED_PREFIX    "trusted comment: "
#define TRUSTED_MAX       8192 /* minisign's limit on a trusted comment */
#define SIG_FILE_MAX      16384
#define SIGNERS_FILE_MAX  (1 << 20)
#define SIG_BLOB_BYTES    (2 + CV_SIG_KEY_ID_BYTES + crypto_sign_BYTES)
#define PUBLIC_KEY_BYTES  (2 + CV_SIG_KEY_ID_BYTES + crypto_sign_PUBLICKEYBYTES)
#define SIGNING_CONTEXT   "cvpolsig" /* crypto_kdf context: the policy-signing key */
#define SIGNING_SUBKEY_ID 1

_Static_assert(sizeof SIGNING_CONTEXT - 1 == crypto_kdf_CONTEXTBYTES, "kdf context size");
_Static_assert(CV_KEY_BYTES == crypto_kdf_KEYBYTES, "a CURVE secret is a kdf master key");
_Static_assert(sizeof((cv_sign_key_t *)0)->secret_key == crypto_sign_SECRETKEYBYTES, "sk size");
_Static_assert(CV_SIG_KEY_TEXT ==
                   sodium_base64_ENCODED_LEN(PUBLIC_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL),
               "public key text size");

typedef struct {
    char name[CV_SIG_NAME_MAX];
    uint8_t key_id[CV_SIG_KEY_ID_BYTES];
    uint8_t public_key[crypto_sign_PUBLICKEYBYTES];
    int line;
} signer_entry_t;

struct cv_signers_t {
    signer_entry_t *entries;
    int count;
};

/* ------------------------------------------------------------------------ */
/*  Text helpers.                                                           */

/*  One line of a text at a time, without its "\n" or "\r\n"; number
 *  counts lines, and goes on counting past the end (for "expected ..."
 *  errors on a missing line). */
typedef struct {
    const char *text;
    size_t len, pos;
    int number;
} lines_t;

static bool next_line(lines_t *l, const char **line, size_t *n)
{
    l->number++;
    *line = l->text + l->pos;
    *n = 0;
    if (l->pos >= l->len)
        return false;
    const char *newline = memchr(*line, '\n', l->len - l->pos);
    size_t span = newline ? (size_t)(newline - *line) : l->len - l->pos;
    l->pos += span + (newline ? 1 : 0);
    *n = span > 0 && (*line)[span - 1] == '\r' ? span - 1 : span;
    return true;
}

static bool has_prefix(const char *line, size_t n, const char *prefix)
{
    return n >= strlen(prefix) && memcmp(line, prefix, strlen(prefix)) == 0;
}

/*  Exactly size bytes in standard base64, and nothing else. */
static bool decode_exact(const char *text, size_t len, uint8_t *bin, size_t size)
{
    size_t got = 0;
    const char *end = NULL;
    return sodium_base642bin(bin, size, text, len, NULL, &got, &end,
                             sodium_base64_VARIANT_ORIGINAL) == 0 &&
           got == size && end == text + len;
}

/*  As minisign prints a key ID: the 8 bytes as a little-endian number. */
static void key_id_text(const uint8_t id[CV_SIG_KEY_ID_BYTES],
                        char text[2 * CV_SIG_KEY_ID_BYTES + 1])
{
    for (int i = 0; i < CV_SIG_KEY_ID_BYTES; i++)
        snprintf(text + 2 * i, 3, "%02X", id[CV_SIG_KEY_ID_BYTES - 1 - i]);
}

/*  A small regular file's text (cv_read_regular_file: its kind and size
 *  checked on the file opened, a FIFO never waited on); with shared_ok
 *  false, refused when others may write it. NULL with why (what is wrong,
 *  without the path) when it cannot be read. */
static char *read_small_file(const char *path, size_t max, bool shared_ok, size_t *len,
                             char why[256])
{
    cv_error_t err = {0};
    unsigned mode = 0;
    char *text = cv_read_regular_file(path, max, len, &mode, &err);
    if (!text)
        snprintf(why, 256, "%.200s", err.msg);
    else if (!shared_ok && (mode & S_IWOTH)) {
        snprintf(why, 256, "anyone may write it (mode %04o): chmod o-w", mode);
        free(text);
        text = NULL;
    }
    return text;
}

/* ------------------------------------------------------------------------ */
/*  The signers file.                                                       */

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("._@-", c));
}

/*  The next whitespace-separated word of line from *at; its length. */
static size_t next_word(const char *line, size_t n, size_t *at)
{
    while (*at < n && (line[*at] == ' ' || line[*at] == '\t'))
        (*at)++;
    size_t end = *at;
    while (end < n && line[end] != ' ' && line[end] != '\t')
        end++;
    return *at < n && line[*at] == '#' ? 0 : end - *at;
}

/*  Reads "NAME PUBLIC-KEY [# comment]": 1, a blank or comment line: 0,
 *  else -1 with err at the word that is wrong. */
static int parse_signer(const char *line, size_t n, const char *file, int number,
                        signer_entry_t *entry, cv_error_t *err)
{
    size_t at = 0, len = next_word(line, n, &at);
    if (len == 0)
        return 0;
    bool name_ok = len < CV_SIG_NAME_MAX;
    for (size_t i = 0; i < len && name_ok; i++)
        name_ok = name_char(line[at + i]);
    if (!name_ok) {
        cv_error_set(err, file, number, (int)at + 1,
                     "a signer's name is up to %d letters, digits and ._@-", CV_SIG_NAME_MAX - 1);
        return -1;
    }
    memcpy(entry->name, line + at, len);
    entry->name[len] = '\0';
    at += len;
    len = next_word(line, n, &at);
    uint8_t key[PUBLIC_KEY_BYTES];
    if (!decode_exact(line + at, len, key, sizeof key) || memcmp(key, ALG_PLAIN, 2) != 0) {
        cv_error_set(err, file, number, (int)at + 1,
                     "expected 'NAME PUBLIC-KEY', the key an Ed25519 public key in minisign's "
                     "form (caveat policy signer-key)");
        return -1;
    }
    memcpy(entry->key_id, key + 2, CV_SIG_KEY_ID_BYTES);
    memcpy(entry->public_key, key + 2 + CV_SIG_KEY_ID_BYTES, sizeof entry->public_key);
    at += len;
    if (next_word(line, n, &at) != 0) {
        cv_error_set(err, file, number, (int)at + 1, "unexpected text after the key");
        return -1;
    }
    entry->line = number;
    return 1;
}

/*  A key or name listed twice would make "who signed" ambiguous. */
static bool listed_once(const cv_signers_t *self, const signer_entry_t *entry, const char *file,
                        cv_error_t *err)
{
    for (int i = 0; i < self->count; i++) {
        const signer_entry_t *old = &self->entries[i];
        if (memcmp(old->key_id, entry->key_id, CV_SIG_KEY_ID_BYTES) == 0 ||
            memcmp(old->public_key, entry->public_key, sizeof old->public_key) == 0) {
            char id[2 * CV_SIG_KEY_ID_BYTES + 1];
            key_id_text(entry->key_id, id);
            cv_error_set(err, file, entry->line, 1, "key ID %s is listed already, on line %d", id,
                         old->line);
            return false;
        }
        if (strcmp(old->name, entry->name) == 0) {
            cv_error_set(err, file, entry->line, 1, "signer '%s' is listed already, on line %d",
                         entry->name, old->line);
            return false;
        }
    }
    return true;
}

static bool add_entry(cv_signers_t *self, const signer_entry_t *entry, const char *file,
                      cv_error_t *err)
{
    if (!listed_once(self, entry, file, err))
        return false;
    signer_entry_t *grown = realloc(self->entries, (size_t)(self->count + 1) * sizeof *entry);
    if (!grown) {
        cv_error_set(err, file, 0, 0, "out of memory");
        return false;
    }
    self->entries = grown;
    self->entries[self->count++] = *entry;
    return true;
}

cv_signers_t *cv_signers_parse(const char *text, size_t len, const char *name, cv_error_t *err)
{
    int bad_line, bad_col;
    const char *bad = cv_text_check(text, len, &bad_line, &bad_col);
    if (bad) {
        cv_error_set(err, name, bad_line, bad_col, "%s", bad);
        return NULL;
    }
    cv_signers_t *self = calloc(1, sizeof *self);
    if (!self) {
        cv_error_set(err, name, 0, 0, "out of memory");
        return NULL;
    }
    lines_t l = {text, len, 0, 0};
    const char *line;
    size_t n;
    signer_entry_t entry;
    bool ok = true;
    while (ok && next_line(&l, &line, &n)) {
        int got = parse_signer(line, n, name, l.number, &entry, err);
        ok = got == 0 || (got == 1 && add_entry(self, &entry, name, err));
    }
    if (ok && self->count == 0) {
        cv_error_set(err, name, 0, 0,
                     "lists no signer: with signers configured only a policy signed by one of "
                     "them loads, so an empty list is refused (add 'NAME PUBLIC-KEY')");
        ok = false;
    }
    if (!ok)
        cv_signers_destroy(&self);
    return self;
}

cv_signers_t *cv_signers_load(const char *path, cv_error_t *err)
{
    size_t len = 0;
    char why[256];
    char *text = read_small_file(path, SIGNERS_FILE_MAX, false, &len, why);
    if (!text)
        cv_error_set(err, path, 0, 0, "%s", why);
    cv_signers_t *self = text ? cv_signers_parse(text, len, path, err) : NULL;
    free(text);
    return self;
}

void cv_signers_destroy(cv_signers_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->entries);
    free(*self_p);
    *self_p = NULL;
}

int cv_signers_count(const cv_signers_t *self)
{
    return self->count;
}

static const signer_entry_t *find_signer(const cv_signers_t *self,
                                         const uint8_t key_id[CV_SIG_KEY_ID_BYTES])
{
    for (int i = 0; i < self->count; i++)
        if (memcmp(self->entries[i].key_id, key_id, CV_SIG_KEY_ID_BYTES) == 0)
            return &self->entries[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/*  Signatures.                                                             */

typedef struct {
    uint8_t blob[SIG_BLOB_BYTES]; /* algorithm | key ID | signature */
    const char *trusted;          /* the trusted comment, in the text */
    size_t trusted_len;
    uint8_t global[crypto_sign_BYTES];
} parsed_sig_t;

#define SIG_ALG(s)       ((s)->blob)
#define SIG_KEY_ID(s)    ((s)->blob + 2)
#define SIG_SIGNATURE(s) ((s)->blob + 2 + CV_SIG_KEY_ID_BYTES)

static bool sig_error(cv_error_t *err, const char *file, int line, const char *what)
{
    cv_error_set(err, file, line, 1, "%s", what);
    return false;
}

/*  The four lines of a .minisig file; nothing but blank lines after. */
static bool parse_sig(const char *text, size_t len, const char *file, parsed_sig_t *s,
                      cv_error_t *err)
{
    if (memchr(text, '\0', len))
        return sig_error(err, file, 1, "not a signature: holds a NUL byte");
    lines_t l = {text, len, 0, 0};
    const char *line;
    size_t n;
    if (!next_line(&l, &line, &n) || !has_prefix(line, n, UNTRUSTED_PREFIX))
        return sig_error(err, file, l.number, "expected 'untrusted comment: ...'");
    next_line(&l, &line, &n);
    if (!decode_exact(line, n, s->blob, sizeof s->blob))
        return sig_error(err, file, l.number, "expected the signature (base64 of 74 bytes)");
    if (memcmp(SIG_ALG(s), ALG_PLAIN, 2) != 0 && memcmp(SIG_ALG(s), ALG_PREHASHED, 2) != 0)
        return sig_error(err, file, l.number, "not an Ed25519 signature ('Ed' or 'ED')");
    if (!next_line(&l, &line, &n) || !has_prefix(line, n, TRUSTED_PREFIX))
        return sig_error(err, file, l.number, "expected 'trusted comment: ...'");
    s->trusted = line + strlen(TRUSTED_PREFIX);
    s->trusted_len = n - strlen(TRUSTED_PREFIX);
    next_line(&l, &line, &n);
    if (!decode_exact(line, n, s->global, sizeof s->global))
        return sig_error(err, file, l.number,
                         "expected the comment's signature (base64 of 64 bytes)");
    while (next_line(&l, &line, &n))
        if (n > 0)
            return sig_error(err, file, l.number, "unexpected text after the signature");
    return true;
}

/*  The global signature covers the file's signature and the trusted
 *  comment: signature | comment. NULL when out of memory. */
static uint8_t *global_message(const uint8_t *signature, const char *comment, size_t comment_len)
{
    uint8_t *message = malloc(crypto_sign_BYTES + comment_len);
    if (message) {
        memcpy(message, signature, crypto_sign_BYTES);
        memcpy(message + crypto_sign_BYTES, comment, comment_len);
    }
    return message;
}

static bool signature_matches(const parsed_sig_t *s, const void *bytes, size_t len,
                              const uint8_t *public_key)
{
    if (memcmp(SIG_ALG(s), ALG_PLAIN, 2) == 0)
        return crypto_sign_verify_detached(SIG_SIGNATURE(s), bytes, len, public_key) == 0;
    uint8_t digest[crypto_generichash_BYTES_MAX];
    crypto_generichash(digest, sizeof digest, bytes, len, NULL, 0);
    return crypto_sign_verify_detached(SIG_SIGNATURE(s), digest, sizeof digest, public_key) == 0;
}

static bool comment_matches(const parsed_sig_t *s, const uint8_t *public_key)
{
    uint8_t *message = global_message(SIG_SIGNATURE(s), s->trusted, s->trusted_len);
    bool ok =
        message && crypto_sign_verify_detached(s->global, message,
                                               crypto_sign_BYTES + s->trusted_len, public_key) == 0;
    free(message);
    return ok;
}

bool cv_sig_verify(const void *bytes, size_t len, const char *name, const char *sig, size_t sig_len,
                   const cv_signers_t *signers, cv_signer_t *by, cv_error_t *err)
{
    memset(by, 0, sizeof *by);
    if (sodium_init() < 0)
        return sig_error(err, name, 0, "libsodium failed to initialise");
    char sig_name[4096];
    snprintf(sig_name, sizeof sig_name, "%s%s", name, CV_SIG_SUFFIX);
    parsed_sig_t s;
    if (!parse_sig(sig, sig_len, sig_name, &s, err))
        return false;
    key_id_text(SIG_KEY_ID(&s), by->key_id);
    const signer_entry_t *signer = find_signer(signers, SIG_KEY_ID(&s));
    if (!signer) {
        cv_error_set(err, name, 0, 0, "signed by key ID %s, which is not a trusted signer",
                     by->key_id);
        return false;
    }
    snprintf(by->name, sizeof by->name, "%s", signer->name);
    if (!signature_matches(&s, bytes, len, signer->public_key))
        cv_error_set(err, name, 0, 0,
                     "the signature by %s (key ID %s) does not match: the file was changed "
                     "after it was signed, or the signature is another file's",
                     by->name, by->key_id);
    else if (!comment_matches(&s, signer->public_key))
        cv_error_set(err, sig_name, 3, 1,
                     "the trusted comment was changed after %s (key ID %s) signed", by->name,
                     by->key_id);
    else
        return true;
    return false;
}

bool cv_sig_verify_file(const char *path, const void *bytes, size_t len,
                        const cv_signers_t *signers, cv_signer_t *by, cv_error_t *err)
{
    memset(by, 0, sizeof *by);
    char sig_path[4096];
    snprintf(sig_path, sizeof sig_path, "%s%s", path, CV_SIG_SUFFIX);
    char why[256];
    size_t sig_len = 0;
    char *sig = read_small_file(sig_path, SIG_FILE_MAX, true, &sig_len, why);
    bool ok = false;
    if (!sig)
        cv_error_set(err, path, 0, 0,
                     "not signed (%s%s: %s), and with signers configured only a signed policy "
                     "loads",
                     path, CV_SIG_SUFFIX, why);
    else
        ok = cv_sig_verify(bytes, len, path, sig, sig_len, signers, by, err);
    free(sig);
    return ok;
}

cv_policy_t *cv_policy_load_signed(const char *path, const cv_signers_t *signers,
                                   const uint8_t *pseudonym_key, cv_signer_t *by, cv_error_t *err)
{
    memset(by, 0, sizeof *by);
    size_t len = 0;
    cv_error_t why = {0};
    char *bytes = cv_read_regular_file(path, CV_POLICY_FILE_MAX, &len, NULL, &why);
    if (!bytes) {
        cv_error_set(err, path, 0, 0, "%s", why.msg);
        return NULL;
    }
    cv_policy_t *policy = NULL;
    if (cv_sig_verify_file(path, bytes, len, signers, by, err))
        policy = cv_policy_load_buffer(bytes, len, path, pseudonym_key, err);
    free(bytes);
    return policy;
}

/* ------------------------------------------------------------------------ */
/*  Signing.                                                                */

bool cv_sign_key_derive(const uint8_t curve_secret[CV_KEY_BYTES], cv_sign_key_t *key)
{
    if (sodium_init() < 0)
        return false;
    uint8_t seed[crypto_sign_SEEDBYTES];
    crypto_kdf_derive_from_key(seed, sizeof seed, SIGNING_SUBKEY_ID, SIGNING_CONTEXT, curve_secret);
    int rc = crypto_sign_seed_keypair(key->public_key, key->secret_key, seed);
    sodium_memzero(seed, sizeof seed);
    /* the key ID names the public key: the first bytes of its hash */
    uint8_t digest[crypto_generichash_BYTES_MIN];
    crypto_generichash(digest, sizeof digest, key->public_key, sizeof key->public_key, NULL, 0);
    memcpy(key->key_id, digest, sizeof key->key_id);
    if (rc != 0)
        cv_sign_key_wipe(key);
    return rc == 0;
}

void cv_sign_key_wipe(cv_sign_key_t *key)
{
    sodium_memzero(key, sizeof *key);
}

void cv_sign_key_text(const cv_sign_key_t *key, char text[CV_SIG_KEY_TEXT])
{
    uint8_t bin[PUBLIC_KEY_BYTES];
    memcpy(bin, ALG_PLAIN, 2);
    memcpy(bin + 2, key->key_id, CV_SIG_KEY_ID_BYTES);
    memcpy(bin + 2 + CV_SIG_KEY_ID_BYTES, key->public_key, sizeof key->public_key);
    sodium_bin2base64(text, CV_SIG_KEY_TEXT, bin, sizeof bin, sodium_base64_VARIANT_ORIGINAL);
}

void cv_sign_key_id(const cv_sign_key_t *key, char id[2 * CV_SIG_KEY_ID_BYTES + 1])
{
    key_id_text(key->key_id, id);
}

char *cv_sig_sign(const void *bytes, size_t len, const cv_sign_key_t *key,
                  const char *trusted_comment)
{
    size_t comment_len = strlen(trusted_comment);
    if (comment_len > TRUSTED_MAX || strpbrk(trusted_comment, "\r\n"))
        return NULL;
    uint8_t blob[SIG_BLOB_BYTES], global[crypto_sign_BYTES];
    memcpy(blob, ALG_PLAIN, 2);
    memcpy(blob + 2, key->key_id, CV_SIG_KEY_ID_BYTES);
    crypto_sign_detached(blob + 2 + CV_SIG_KEY_ID_BYTES, NULL, bytes, len, key->secret_key);
    uint8_t *message = global_message(blob + 2 + CV_SIG_KEY_ID_BYTES, trusted_comment, comment_len);
    if (!message)
        return NULL;
    crypto_sign_detached(global, NULL, message, crypto_sign_BYTES + comment_len, key->secret_key);
    free(message);
    char blob_text[sodium_base64_ENCODED_LEN(SIG_BLOB_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    char global_text[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(blob_text, sizeof blob_text, blob, sizeof blob,
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(global_text, sizeof global_text, global, sizeof global,
                      sodium_base64_VARIANT_ORIGINAL);
    char id[2 * CV_SIG_KEY_ID_BYTES + 1], *text = NULL;
    key_id_text(key->key_id, id);
    if (asprintf(&text,
                 UNTRUSTED_PREFIX "caveat policy signature, key ID %s\n%s\n" TRUSTED_PREFIX
                                  "%s\n%s\n",
                 id, blob_text, trusted_comment, global_text) < 0)
        return NULL;
    return text;
}
