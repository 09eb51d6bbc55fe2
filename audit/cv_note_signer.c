/*  cv_note_signer.c: the log's signing key, and the file that holds it.
 *
 *  The file is one line in the form Go's note.NewSigner reads,
 *  "PRIVATE+KEY+NAME+hex(key ID)+base64(0x01 || Ed25519 seed)", so that
 *  standard tools can use the key too. It is made 0600 and refused when
 *  group or others may read it, as the project's other secret files are;
 *  the mode is checked on the descriptor read. Every copy of the secret is
 *  wiped after use.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_internal.h"

#define KEY_PREFIX   "PRIVATE+KEY+"
#define KEY_FILE_MAX 512 /* a name and two short fields */
#define SEED_TEXT_MAX                                                                              \
    sodium_base64_ENCODED_LEN(1 + crypto_sign_SEEDBYTES, sodium_base64_VARIANT_ORIGINAL)
#define KEY_TEXT_MAX                                                                               \
    (sizeof KEY_PREFIX + CV_NOTE_NAME_MAX + 2 * CV_NOTE_KEY_ID_BYTES + SEED_TEXT_MAX + 4)

struct cv_note_signer_t {
    cv_note_verifier_t verifier;
    uint8_t secret_key[crypto_sign_SECRETKEYBYTES];
};

void cv_note_signer_destroy(cv_note_signer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sodium_memzero((*self_p)->secret_key, crypto_sign_SECRETKEYBYTES);
    free(*self_p);
    *self_p = NULL;
}

const cv_note_verifier_t *cv_note_signer_verifier(const cv_note_signer_t *self)
{
    return &self->verifier;
}

static cv_note_signer_t *from_seed(const char *name, const uint8_t seed[crypto_sign_SEEDBYTES])
{
    cv_note_signer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->verifier.name, CV_NOTE_NAME_MAX, "%s", name);
    crypto_sign_seed_keypair(self->verifier.public_key, self->secret_key, seed);
    cv_note_key_id(name, self->verifier.public_key, self->verifier.key_id);
    return self;
}

/*  "PRIVATE+KEY+NAME+KEYID+": the name and key ID into named; *seed_text
 *  is what follows. */
static bool split_key(const char *text, cv_note_verifier_t *named, const char **seed_text)
{
    size_t prefix = strlen(KEY_PREFIX);
    if (strncmp(text, KEY_PREFIX, prefix) != 0)
        return false;
    const char *name = text + prefix, *hex = strchr(name, '+');
    const char *seed = hex ? strchr(hex + 1, '+') : NULL;
    if (!seed || seed - hex != 1 + 2 * CV_NOTE_KEY_ID_BYTES || hex - name >= CV_NOTE_NAME_MAX)
        return false;
    memcpy(named->name, name, (size_t)(hex - name));
    named->name[hex - name] = '\0';
    *seed_text = seed + 1;
    return cv_note_name_valid(named->name) &&
           sodium_hex2bin(named->key_id, CV_NOTE_KEY_ID_BYTES, hex + 1, 2 * CV_NOTE_KEY_ID_BYTES,
                          NULL, NULL, NULL) == 0;
}

/*  The key file's text (without its '\n'): the seed into a signer, the key
 *  ID checked against the key it gives. */
static cv_note_signer_t *parse_key(const char *text, const char *path, cv_error_t *err)
{
    cv_note_verifier_t named; /* name and key ID as written; the key is the seed's */
    uint8_t seed[1 + crypto_sign_SEEDBYTES];
    size_t got = 0;
    const char *seed_text = NULL;
    bool ok = split_key(text, &named, &seed_text) &&
              cv_base64_decode(seed_text, strlen(seed_text), seed, sizeof seed, &got) &&
              got == sizeof seed && seed[0] == CV_NOTE_ALG_ED25519;
    cv_note_signer_t *self = ok ? from_seed(named.name, seed + 1) : NULL;
    sodium_memzero(seed, sizeof seed);
    if (!ok)
        cv_error_set(err, NULL, 0, 0, "%s: not an audit key (PRIVATE+KEY+NAME+KEYID+BASE64)", path);
    else if (self && memcmp(self->verifier.key_id, named.key_id, CV_NOTE_KEY_ID_BYTES) != 0) {
        cv_error_set(err, NULL, 0, 0, "%s: the key ID is not the key's", path);
        cv_note_signer_destroy(&self);
    }
    return self;
}

/*  The file's text, its mode checked on the descriptor read. */
static bool read_key_file(const char *path, char text[KEY_FILE_MAX], cv_error_t *err)
{
    /* O_NONBLOCK: a FIFO is refused below, not waited on here for ever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        cv_error_set(err, NULL, 0, 0, "%s: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    ssize_t n = -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        cv_error_set(err, NULL, 0, 0, "%s: not a regular file", path);
    else if (st.st_mode & 077)
        cv_error_set(err, NULL, 0, 0,
                     "%s: audit key file must give group and others no access (0600 and 0400 do; "
                     "it is %04o)",
                     path, (unsigned)(st.st_mode & 07777));
    else if ((n = read(fd, text, KEY_FILE_MAX - 1)) < 0 || n == KEY_FILE_MAX - 1)
        cv_error_set(err, NULL, 0, 0, "%s: not an audit key (unreadable or too long)", path);
    close(fd);
    if (n < 0 || n == KEY_FILE_MAX - 1)
        return false;
    text[n] = '\0';
    if (n > 0 && text[n - 1] == '\n')
        text[n - 1] = '\0';
    return true;
}

cv_note_signer_t *cv_note_signer_load(const char *path, cv_error_t *err)
{
    char text[KEY_FILE_MAX];
    cv_note_signer_t *self = read_key_file(path, text, err) ? parse_key(text, path, err) : NULL;
    sodium_memzero(text, sizeof text);
    return self;
}

static bool write_key_file(const char *path, const char *text, cv_error_t *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t len = strlen(text);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok) {
        cv_error_set(err, NULL, 0, 0, "%s: cannot create: %s", path, strerror(saved));
        if (fd >= 0) /* no half a key left for the next start to refuse */
            unlink(path);
    }
    return ok;
}

static void key_text(const cv_note_signer_t *self, char out[KEY_TEXT_MAX])
{
    uint8_t seed[1 + crypto_sign_SEEDBYTES] = {CV_NOTE_ALG_ED25519};
    crypto_sign_ed25519_sk_to_seed(seed + 1, self->secret_key);
    char hex[2 * CV_NOTE_KEY_ID_BYTES + 1], b64[SEED_TEXT_MAX];
    sodium_bin2hex(hex, sizeof hex, self->verifier.key_id, CV_NOTE_KEY_ID_BYTES);
    cv_base64_encode(seed, sizeof seed, b64, sizeof b64);
    snprintf(out, KEY_TEXT_MAX, "%s%s+%s+%s\n", KEY_PREFIX, self->verifier.name, hex, b64);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(b64, sizeof b64);
}

cv_note_signer_t *cv_note_signer_create(const char *path, const char *name, cv_error_t *err)
{
    if (!cv_note_name_valid(name)) {
        cv_error_set(err, NULL, 0, 0,
                     "'%.64s' cannot name an audit key: printable ASCII, no space, no '+'", name);
        return NULL;
    }
    uint8_t seed[crypto_sign_SEEDBYTES];
    randombytes_buf(seed, sizeof seed);
    cv_note_signer_t *self = from_seed(name, seed);
    sodium_memzero(seed, sizeof seed);
    char text[KEY_TEXT_MAX];
    if (self)
        key_text(self, text);
    if (self && !write_key_file(path, text, err))
        cv_note_signer_destroy(&self);
    sodium_memzero(text, sizeof text);
    return self;
}

cv_note_signer_t *cv_audit_key_open(const char *dir, const char *origin, cv_error_t *err)
{
    char path[4096], name[CV_NOTE_NAME_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, CV_AUDIT_KEY_FILE);
    if (access(path, F_OK) == 0 || errno != ENOENT)
        return cv_note_signer_load(path, err);
    if (sodium_init() < 0) { /* randombytes wants it; a no-op once done */
        cv_error_set(err, NULL, 0, 0, "%s: libsodium cannot start", path);
        return NULL;
    }
    if (!origin) {
        uint8_t unique[4];
        char hex[2 * sizeof unique + 1];
        randombytes_buf(unique, sizeof unique);
        sodium_bin2hex(hex, sizeof hex, unique, sizeof unique);
        snprintf(name, sizeof name, "caveat/%s", hex);
        origin = name;
    }
    return cv_note_signer_create(path, origin, err);
}

/*  A body a note can carry: lines, each ending in '\n', none empty, no
 *  control character but '\n'. */
static bool note_body_ok(const char *body)
{
    size_t len = strlen(body);
    if (len == 0 || body[len - 1] != '\n' || body[0] == '\n' || strstr(body, "\n\n"))
        return false;
    for (const char *c = body; *c; c++)
        if ((unsigned char)*c < 0x20 && *c != '\n')
            return false;
    return true;
}

char *cv_note_sign(const cv_note_signer_t *self, const char *body)
{
    if (!note_body_ok(body))
        return NULL;
    uint8_t sig[CV_NOTE_KEY_ID_BYTES + crypto_sign_BYTES];
    memcpy(sig, self->verifier.key_id, CV_NOTE_KEY_ID_BYTES);
    crypto_sign_detached(sig + CV_NOTE_KEY_ID_BYTES, NULL, (const uint8_t *)body, strlen(body),
                         self->secret_key);
    char b64[sodium_base64_ENCODED_LEN(sizeof sig, sodium_base64_VARIANT_ORIGINAL)];
    cv_base64_encode(sig, sizeof sig, b64, sizeof b64);
    char *note = NULL;
    if (asprintf(&note, "%s\n\xe2\x80\x94 %s %s\n", body, self->verifier.name, b64) < 0)
        return NULL;
    return note;
}
