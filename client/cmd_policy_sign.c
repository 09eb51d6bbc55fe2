/*  caveat policy sign|signer-key: an administrator signs a policy with the
 *  Ed25519 key derived from their certificate's secret CURVE key, and
 *  gives caveatd's signers file the matching public key
 *  (policy/cv_policy_sig.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "cv_cert.h"
#include "cv_policy_sig.h"

/*  The signing key of a secret certificate; the CURVE secret is wiped. */
static bool load_sign_key(const char *path, cv_sign_key_t *key)
{
    uint8_t public_key[CV_KEY_BYTES], secret_key[CV_KEY_BYTES];
    cv_error_t err = {""};
    bool ok = cv_cert_load(path, public_key, secret_key, &err);
    if (!ok)
        cli_error(CLI_USAGE, "%s", err.msg);
    else if (!(ok = cv_sign_key_derive(secret_key, key)))
        cli_error(CLI_FAILED, "%s: cannot derive a signing key", path);
    sodium_memzero(secret_key, sizeof secret_key);
    return ok;
}

/*  Writes text to path through a file beside it renamed over it: caveatd
 *  reloading meanwhile reads the old signature or the new, never half. */
static bool write_beside(const char *path, const char *text)
{
    char tmp[4300];
    int fd = snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) < (int)sizeof tmp ? mkstemp(tmp) : -1;
    if (fd < 0)
        return false;
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len && fchmod(fd, 0644) == 0 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok && rename(tmp, path) == 0;
    if (!ok)
        unlink(tmp);
    return ok;
}

/*  What the signature itself vouches for, besides the bytes: when, which
 *  file, which protocol and version (minisign's trusted comment). */
static void trusted_comment(char *out, size_t size, const char *path, const cv_policy_t *policy)
{
    const char *base = strrchr(path, '/');
    snprintf(out, size, "timestamp:%lld\tfile:%s\tprotocol:%s\tversion:%lld", (long long)time(NULL),
             base ? base + 1 : path, cv_policy_protocol(policy),
             (long long)cv_policy_version(policy));
}

/*  Signs bytes that load as a policy: a signature on a broken policy would
 *  only be refused later, by caveatd. */
static int sign_bytes(const char *path, const char *bytes, size_t len, const cv_sign_key_t *key)
{
    cv_error_t err = {""};
    cv_policy_t *policy = cv_policy_load_buffer(bytes, len, path, NULL, &err);
    if (!policy) {
        fprintf(stderr, "%s\n", err.msg);
        return CLI_FAILED;
    }
    char comment[1024], sig_path[4200], id[2 * CV_SIG_KEY_ID_BYTES + 1];
    trusted_comment(comment, sizeof comment, path, policy);
    snprintf(sig_path, sizeof sig_path, "%s%s", path, CV_SIG_SUFFIX);
    cv_sign_key_id(key, id);
    char *sig = cv_sig_sign(bytes, len, key, comment);
    int status = CLI_OK;
    if (!sig)
        status = cli_error(CLI_FAILED, "%s: cannot sign (a line break in the file name?)", path);
    else if (!write_beside(sig_path, sig))
        status = cli_error(CLI_FAILED, "%s: cannot write: %s", sig_path, strerror(errno));
    else
        printf("%s: signed protocol %s version %lld with key ID %s\n", sig_path,
               cv_policy_protocol(policy), (long long)cv_policy_version(policy), id);
    free(sig);
    cv_policy_destroy(&policy);
    return status;
}

int cmd_policy_sign(int argc, char **argv)
{
    bool missing = false;
    const char *key_path = cli_take_option(&argc, argv, "--key", &missing);
    if (argc != 2 || !key_path || missing)
        return cli_error(CLI_USAGE, "usage: caveat policy sign FILE --key ADMIN.cert_secret");
    size_t len = 0;
    char *bytes = cv_read_file(argv[1], &len);
    if (!bytes)
        return cli_error(CLI_USAGE, "%s: cannot read: %s", argv[1], strerror(errno));
    cv_sign_key_t key;
    int status = CLI_USAGE;
    if (load_sign_key(key_path, &key)) {
        status = sign_bytes(argv[1], bytes, len, &key);
        cv_sign_key_wipe(&key);
    }
    free(bytes);
    return status;
}

/*  The signer's name: --name, or the certificate's file name without
 *  ".cert_secret". */
static void signer_name(const char *key_path, const char *name, char out[CV_SIG_NAME_MAX])
{
    if (!name) {
        const char *base = strrchr(key_path, '/');
        name = base ? base + 1 : key_path;
    }
    snprintf(out, CV_SIG_NAME_MAX, "%s", name);
    char *suffix = strstr(out, ".cert_secret");
    if (suffix && suffix[strlen(".cert_secret")] == '\0')
        *suffix = '\0';
}

int cmd_policy_signer_key(int argc, char **argv)
{
    bool missing = false;
    const char *key_path = cli_take_option(&argc, argv, "--key", &missing);
    const char *name = cli_take_option(&argc, argv, "--name", &missing);
    if (argc != 1 || !key_path || missing)
        return cli_error(CLI_USAGE,
                         "usage: caveat policy signer-key --key ADMIN.cert_secret [--name NAME]");
    cv_sign_key_t key;
    if (!load_sign_key(key_path, &key))
        return CLI_USAGE;
    char text[CV_SIG_KEY_TEXT], line_name[CV_SIG_NAME_MAX];
    cv_sign_key_text(&key, text);
    cv_sign_key_wipe(&key);
    signer_name(key_path, name, line_name);
    char line[CV_SIG_NAME_MAX + CV_SIG_KEY_TEXT + 2];
    snprintf(line, sizeof line, "%s %s\n", line_name, text);
    /* a line the signers file would refuse is no use */
    cv_error_t err = {""};
    cv_signers_t *check = cv_signers_parse(line, strlen(line), "signer-key", &err);
    if (!check)
        return cli_error(CLI_USAGE, "'%s' is not a signer's name: give one with --name", line_name);
    cv_signers_destroy(&check);
    fputs(line, stdout);
    return CLI_OK;
}
