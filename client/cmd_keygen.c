/*  caveat keygen NAME: a CURVE keypair as czmq certificate files.
 *  NAME.cert holds the public key (share it: it goes in the policy),
 *  NAME.cert_secret both keys (mode 0600: it never leaves the agency). */
#include <stdio.h>
#include <sys/stat.h>

#include <czmq.h>
#include <sodium.h>

#include "cli.h"

/*  czmq frees a certificate without wiping it: wipe the secret first. */
static void forget_cert(zcert_t **cert)
{
    /* const to callers, but plain arrays inside the certificate */
    sodium_memzero((void *)zcert_secret_key(*cert), 32);
    sodium_memzero((void *)zcert_secret_txt(*cert), 40);
    zcert_destroy(cert);
}

int cmd_keygen(int argc, char **argv)
{
    if (argc != 2)
        return cli_error(CLI_USAGE, "usage: caveat keygen NAME");
    const char *name = argv[1];
    if (name[0] == '-' || name[0] == '\0')
        return cli_error(CLI_USAGE, "keygen: NAME '%s' must not be empty or start with '-'", name);
    char path[4096], secret_path[4200];
    snprintf(path, sizeof path, "%s.cert", name);
    snprintf(secret_path, sizeof secret_path, "%s.cert_secret", name);
    struct stat st;
    if (stat(path, &st) == 0 || stat(secret_path, &st) == 0)
        return cli_error(CLI_USAGE, "%s: exists; not overwriting a key", path);

    zcert_t *cert = zcert_new();
    if (!cert)
        return cli_error(CLI_FAILED, "cannot make a key pair");
    zcert_set_meta(cert, "name", "%s", name);
    /* umask first: the secret file must never exist with wider access */
    mode_t old = umask(077);
    int rc = zcert_save(cert, path);
    umask(old);
    if (rc == 0)
        rc = chmod(path, 0644);
    if (rc != 0) {
        forget_cert(&cert);
        return cli_error(CLI_FAILED, "%s: cannot write the key files", path);
    }
    printf("%s\n", zcert_public_txt(cert));
    forget_cert(&cert);
    return CLI_OK;
}
