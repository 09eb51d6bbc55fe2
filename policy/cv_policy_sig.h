/*  cv_policy_sig.h: signed policies. A policy file FILE may carry a
 *  detached Ed25519 signature in FILE.minisig, in minisign's format (so
 *  `minisign -V` checks it too):
 *
 *      untrusted comment: <free text, not signed>
 *      base64("Ed" | key ID (8 bytes) | signature of FILE's bytes (64))
 *      trusted comment: <one line, signed by the global signature>
 *      base64(signature of (the 64 signature bytes | the trusted comment))
 *
 *  ("ED" instead of "Ed": the signature is of BLAKE2b-512 of the bytes,
 *  minisign's default; both are accepted.) A signers file lists the trusted
 *  public keys, one "NAME PUBLIC-KEY" a line, the key in minisign's form
 *  (base64 of "Ed" | key ID | 32-byte Ed25519 key); "#" starts a comment.
 *
 *  An administrator's signing key is derived from the secret CURVE key of
 *  a czmq certificate (libsodium's crypto_kdf under a fixed context), so
 *  `caveat keygen` is the only key tool. docs/operations.md has it all.
 *
 *  Verification works on bytes in memory: the bytes verified are the
 *  bytes then parsed. cv_policy_load_signed reads the file once.
 */
#ifndef CV_POLICY_SIG_H
#define CV_POLICY_SIG_H

#include "cv_policy.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CV_SIG_SUFFIX       ".minisig"
#define CV_SIG_KEY_ID_BYTES 8
#define CV_SIG_KEY_TEXT     57 /* a public key in base64, with its NUL */
#define CV_SIG_NAME_MAX     64 /* a signer's name, with its NUL */

/*  Who signed: the key ID (16 hex digits, as minisign prints it; "" when
 *  the signature named none) and the signer's name in the signers file (""
 *  when the key is not listed there). */
typedef struct {
    char key_id[2 * CV_SIG_KEY_ID_BYTES + 1];
    char name[CV_SIG_NAME_MAX];
} cv_signer_t;

/* ------------------------------------------------------------------------ */
/*  The trusted signers.                                                    */

typedef struct cv_signers_t cv_signers_t;

/*  Parses a signers file's text (name is the file's, for errors). Refuses
 *  with "NAME:LINE:COL: error: ..." a malformed line, a key or a name
 *  listed twice, and a file that lists no signer at all: an empty list
 *  never means "trust any signature". */
cv_signers_t *cv_signers_parse(const char *text, size_t len, const char *name, cv_error_t *err);
/*  Reads and parses a signers file; also refuses one that others than its
 *  owner may write (anyone could add a signer). */
cv_signers_t *cv_signers_load(const char *path, cv_error_t *err);
void cv_signers_destroy(cv_signers_t **self_p);
int cv_signers_count(const cv_signers_t *self);

/* ------------------------------------------------------------------------ */
/*  Verifying.                                                              */

/*  Whether sig (the text of a .minisig file) is a valid signature of the
 *  len bytes by a key in signers, its trusted comment intact. On failure
 *  err says why, "NAME: error: ..." (NAME.minisig:LINE:COL for a malformed
 *  signature); by is filled as far as known either way. */
bool cv_sig_verify(const void *bytes, size_t len, const char *name, const char *sig, size_t sig_len,
                   const cv_signers_t *signers, cv_signer_t *by, cv_error_t *err);

/*  Whether path.minisig is a valid signature of bytes, the len bytes read
 *  from path, by a key in signers; err and by as cv_sig_verify's. */
bool cv_sig_verify_file(const char *path, const void *bytes, size_t len,
                        const cv_signers_t *signers, cv_signer_t *by, cv_error_t *err);

/*  Loads the policy file path only when path.minisig verifies against
 *  signers: the file is read once and the verified bytes are parsed. NULL
 *  with err, and by as far as known, when it does not or does not load. */
cv_policy_t *cv_policy_load_signed(const char *path, const cv_signers_t *signers,
                                   const uint8_t *pseudonym_key, cv_signer_t *by, cv_error_t *err);

/* ------------------------------------------------------------------------ */
/*  Signing.                                                                */

typedef struct {
    uint8_t public_key[32];
    uint8_t secret_key[64];
    uint8_t key_id[CV_SIG_KEY_ID_BYTES];
} cv_sign_key_t;

/*  The Ed25519 key derived from a secret CURVE key. Wipe it after use. */
bool cv_sign_key_derive(const uint8_t curve_secret[CV_KEY_BYTES], cv_sign_key_t *key);
void cv_sign_key_wipe(cv_sign_key_t *key);
/*  The public key in the signers file's form. */
void cv_sign_key_text(const cv_sign_key_t *key, char text[CV_SIG_KEY_TEXT]);
/*  The key ID as minisign prints it. */
void cv_sign_key_id(const cv_sign_key_t *key, char id[2 * CV_SIG_KEY_ID_BYTES + 1]);

/*  The text of a .minisig file signing the len bytes; trusted_comment is
 *  one line. NULL when it is not (or out of memory). Free it. */
char *cv_sig_sign(const void *bytes, size_t len, const cv_sign_key_t *key,
                  const char *trusted_comment);

#ifdef __cplusplus
}
#endif

#endif
