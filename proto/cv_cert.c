/*  cv_cert.c: czmq certificate files, read safely (cv_cert.h).
 *
 *  Read with zconfig, not zcert_load: zcert_load("X") reads "X_secret"
 *  first when it exists (so a public certificate next to its secret one
 *  would pull the secret into memory, and the file whose mode was checked
 *  would not be the file read) and cuts paths at 255 bytes. The mode is
 *  checked on the open descriptor, so the file checked is the file read.
 */
#include <czmq.h>
#include <sodium.h>
#include <sys/stat.h>

#include "cv_cert.h"

#define CERT_MAX_BYTES 65536 /* a czmq certificate is a few hundred bytes */

static bool decode_key(const char *text, uint8_t key[CV_KEY_BYTES])
{
    return text && strlen(text) == 40 && zmq_z85_decode(key, text) != NULL;
}

static char *read_fd(int fd, size_t size, const char *path, cv_error_t *err)
{
    char *text = malloc(size + 1);
    size_t got = 0;
    ssize_t n = 1;
    while (text && got < size && (n = read(fd, text + got, size - got)) > 0)
        got += (size_t)n;
    if (!text || n < 0 || got != size || memchr(text, 0, size)) {
        cv_error_set(err, NULL, 0, 0, "%s: cannot read a certificate", path);
        if (text)
            sodium_memzero(text, size);
        free(text);
        return NULL;
    }
    text[size] = '\0';
    return text;
}

/*  The file's text, and its mode: a secret file's is checked by the
 *  caller, after it has said whether the file is a secret certificate at
 *  all (a more useful error). */
static char *read_cert_file(const char *path, mode_t *mode, size_t *len, cv_error_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cv_error_set(err, NULL, 0, 0, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st = {0};
    char *text = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        cv_error_set(err, NULL, 0, 0, "%s: not a regular file", path);
    else if (st.st_size > CERT_MAX_BYTES)
        cv_error_set(err, NULL, 0, 0, "%s: not a czmq certificate (too large)", path);
    else
        text = read_fd(fd, (size_t)st.st_size, path, err);
    close(fd);
    *mode = st.st_mode & 07777;
    *len = text ? strlen(text) : 0;
    return text;
}

/*  zconfig prints its syntax errors straight to stderr, so a file that is
 *  plainly not a certificate (no "curve" section) is refused before it. */
static bool looks_like_cert(const char *text)
{
    return strncmp(text, "curve\n", 6) == 0 || strstr(text, "\ncurve\n") != NULL;
}

/*  The key pair of a secret certificate must be one: a damaged or edited
 *  file would otherwise fail later as an unexplained handshake timeout. */
static bool keys_match(const uint8_t public_key[CV_KEY_BYTES],
                       const uint8_t secret_key[CV_KEY_BYTES])
{
    uint8_t derived[CV_KEY_BYTES];
    bool ok = crypto_scalarmult_base(derived, secret_key) == 0 &&
              sodium_memcmp(derived, public_key, CV_KEY_BYTES) == 0;
    sodium_memzero(derived, sizeof derived);
    return ok;
}

/*  Takes the keys out of a parsed certificate, wiping the secret's text in
 *  the tree (zconfig_destroy would free it as it is). */
static bool cert_keys(zconfig_t *root, uint8_t public_key[CV_KEY_BYTES], uint8_t *secret_key,
                      bool *has_secret)
{
    bool ok = decode_key(zconfig_get(root, "/curve/public-key", NULL), public_key);
    char *secret = zconfig_get(root, "/curve/secret-key", NULL);
    *has_secret = secret && *secret;
    if (secret_key)
        ok = ok && decode_key(secret, secret_key);
    if (secret)
        sodium_memzero(secret, strlen(secret));
    return ok;
}

/*  Loads a certificate file: the public key, and the secret one when
 *  secret_key is not NULL (then group and others must have no access to
 *  the file: 0600 and 0400 are taken, 0640 and 0604 are not). */
bool cv_cert_load(const char *path, uint8_t public_key[CV_KEY_BYTES], uint8_t *secret_key,
                  cv_error_t *err)
{
    bool has_secret = false;
    mode_t mode = 0;
    size_t len = 0;
    char *text = read_cert_file(path, &mode, &len, err);
    if (!text)
        return false;
    zconfig_t *root = looks_like_cert(text) ? zconfig_str_load(text) : NULL;
    sodium_memzero(text, len);
    free(text);
    bool ok = root && cert_keys(root, public_key, secret_key, &has_secret);
    zconfig_destroy(&root);
    if (!ok && secret_key && !has_secret)
        cv_error_set(err, NULL, 0, 0, "%s: not a secret certificate (NAME.cert_secret)", path);
    else if (!ok)
        cv_error_set(err, NULL, 0, 0, "%s: not a czmq certificate with a valid CURVE key", path);
    else if (secret_key && (mode & 077))
        cv_error_set(err, NULL, 0, 0,
                     "%s: secret key file must give group and others no access (0600 and 0400 "
                     "do; it is %04o)",
                     path, (unsigned)mode);
    else if (secret_key && !keys_match(public_key, secret_key))
        cv_error_set(err, NULL, 0, 0, "%s: the secret key does not match the public key", path);
    else
        return true;
    if (secret_key)
        sodium_memzero(secret_key, CV_KEY_BYTES);
    return false;
}
