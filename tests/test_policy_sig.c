/*  test_policy_sig.c: signed policies (policy/cv_policy_sig.c).
 *
 *  A signature is accepted only when it is well formed, by a listed key,
 *  over exactly the bytes given, its trusted comment intact; every refusal
 *  is checked with its text, since that line is what an operator sees.
 *  Signatures made by minisign itself pin the format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "cv_policy.h"
#include "cv_policy_sig.h"

static const char policy_text[] = "protocol: signed-test\n"
                                  "version: 1\n"
                                  "levels: [OFFICIAL]\n"
                                  "agencies:\n"
                                  "  hull-police:\n"
                                  "    organisation: humberside-police\n"
                                  "    type: police\n"
                                  "    clearance: OFFICIAL\n"
                                  "    areas: [hull]\n"
                                  "    key: \"kY8[f}w2}*bW5UFN>7fbWOR$QBz=n<qa*v:t*tLN\"\n"
                                  "rules: []\n";

/*  The signing key of a CURVE secret whose bytes are all seed. */
static void key_of(uint8_t seed, cv_sign_key_t *key)
{
    uint8_t curve_secret[CV_KEY_BYTES];
    memset(curve_secret, seed, sizeof curve_secret);
    assert_true(cv_sign_key_derive(curve_secret, key));
}

/*  A signers file listing "name" with the key of seed. */
static void signer_line(char *out, size_t size, const char *name, uint8_t seed)
{
    cv_sign_key_t key;
    key_of(seed, &key);
    char text[CV_SIG_KEY_TEXT];
    cv_sign_key_text(&key, text);
    snprintf(out, size, "%s %s\n", name, text);
    cv_sign_key_wipe(&key);
}

static cv_signers_t *signers_of(const char *text)
{
    cv_error_t err = {0};
    cv_signers_t *signers = cv_signers_parse(text, strlen(text), "signers", &err);
    if (!signers)
        print_error("%s\n", err.msg);
    assert_non_null(signers);
    return signers;
}

/*  alice (seed 1) and bob (seed 2), with comments and blank lines. */
static cv_signers_t *alice_and_bob(void)
{
    char text[512], alice[128], bob[128];
    signer_line(alice, sizeof alice, "alice", 1);
    signer_line(bob, sizeof bob, "bob", 2);
    snprintf(text, sizeof text, "# trusted policy signers\n\n%s   \t\n%s", alice, bob);
    return signers_of(text);
}

static char *sign_with(uint8_t seed, const char *bytes, size_t len)
{
    cv_sign_key_t key;
    key_of(seed, &key);
    char *sig = cv_sig_sign(bytes, len, &key, "file:p.yaml");
    cv_sign_key_wipe(&key);
    assert_non_null(sig);
    return sig;
}

/*  Verifies; returns the error ("" when it verified). */
static const char *verify(const char *bytes, size_t len, const char *sig,
                          const cv_signers_t *signers, cv_signer_t *by)
{
    static cv_error_t err;
    err.msg[0] = '\0';
    bool ok = cv_sig_verify(bytes, len, "p.yaml", sig, strlen(sig), signers, by, &err);
    assert_true(ok == (err.msg[0] == '\0'));
    return err.msg;
}

/* ------------------------------------------------------------------------ */

static void test_good_signature_verifies(void **state)
{
    (void)state;
    cv_signers_t *signers = alice_and_bob();
    char *sig = sign_with(2, policy_text, strlen(policy_text));
    cv_signer_t by;
    assert_string_equal(verify(policy_text, strlen(policy_text), sig, signers, &by), "");
    assert_string_equal(by.name, "bob");
    cv_sign_key_t key;
    char id[17];
    key_of(2, &key);
    cv_sign_key_id(&key, id);
    cv_sign_key_wipe(&key);
    assert_string_equal(by.key_id, id);
    assert_int_equal(cv_signers_count(signers), 2);
    free(sig);
    cv_signers_destroy(&signers);
}

/*  The key is derived, not stored: the same certificate must give the same
 *  key in every release, or every deployed signers file breaks. */
static void test_derivation_is_fixed(void **state)
{
    (void)state;
    char line[128];
    signer_line(line, sizeof line, "alice", 1);
    assert_string_equal(line, "alice RWRJNTvzqG5/yog7xTQU4Lf6KQDUrZtMWHomn130wZd9/9Zw+0FqKC/w\n");
    char other[128];
    signer_line(other, sizeof other, "alice", 2);
    assert_string_not_equal(line, other);
}

static void test_every_altered_byte_is_refused(void **state)
{
    (void)state;
    cv_signers_t *signers = alice_and_bob();
    size_t len = strlen(policy_text);
    char *sig = sign_with(1, policy_text, len);
    char altered[sizeof policy_text];
    for (size_t i = 0; i < len; i++) {
        memcpy(altered, policy_text, sizeof altered);
        altered[i] ^= 0x01;
        cv_signer_t by;
        assert_string_equal(verify(altered, len, sig, signers, &by),
                            "p.yaml: error: the signature by alice (key ID CA7F6EA8F33B3549) does "
                            "not match: the file was changed after it was signed, or the "
                            "signature is another file's");
        assert_string_equal(by.name, "alice");
    }
    cv_signer_t by;
    assert_string_not_equal(verify(policy_text, len - 1, sig, signers, &by), ""); /* cut */
    free(sig);
    cv_signers_destroy(&signers);
}

static void test_unlisted_key_is_refused(void **state)
{
    (void)state;
    cv_signers_t *signers = alice_and_bob();
    char *sig = sign_with(3, policy_text, strlen(policy_text));
    cv_signer_t by;
    assert_string_equal(verify(policy_text, strlen(policy_text), sig, signers, &by),
                        "p.yaml: error: signed by key ID 40CB0220AEA0FD9E, which is not a "
                        "trusted signer");
    assert_string_equal(by.key_id, "40CB0220AEA0FD9E");
    assert_string_equal(by.name, "");
    free(sig);
    cv_signers_destroy(&signers);
}

/*  A listed key ID in front of another key's signature: the key ID only
 *  picks the key, the signature must still be that key's. */
static void test_key_id_of_a_listed_signer_on_a_foreign_signature(void **state)
{
    (void)state;
    cv_signers_t *signers = alice_and_bob();
    size_t len = strlen(policy_text);
    char *alice = sign_with(1, policy_text, len);
    char *mallory = sign_with(3, policy_text, len);
    /* line 2 is base64 of "Ed" | key ID | signature: its first 16
     * characters hold 12 bytes, alice's key ID and 2 bytes of her signature */
    char *line2 = strchr(mallory, '\n') + 1;
    memcpy(line2, strchr(alice, '\n') + 1, 16);
    cv_signer_t by;
    assert_non_null(strstr(verify(policy_text, len, mallory, signers, &by),
                           "the signature by alice (key ID CA7F6EA8F33B3549) does not match"));
    free(alice);
    free(mallory);
    cv_signers_destroy(&signers);
}

static void test_altered_trusted_comment_is_refused(void **state)
{
    (void)state;
    cv_signers_t *signers = alice_and_bob();
    char *sig = sign_with(1, policy_text, strlen(policy_text));
    char *comment = strstr(sig, "file:p.yaml");
    assert_non_null(comment);
    comment[5] = 'q';
    cv_signer_t by;
    assert_string_equal(verify(policy_text, strlen(policy_text), sig, signers, &by),
                        "p.yaml.minisig:3:1: error: the trusted comment was changed after alice "
                        "(key ID CA7F6EA8F33B3549) signed");
    free(sig);
    cv_signers_destroy(&signers);
}

/*  Each line of a signature, cut short or garbled, refused at its line. */
static void test_truncated_or_garbled_signature_is_refused(void **state)
{
    (void)state;
    cv_signers_t *signers = alice_and_bob();
    size_t len = strlen(policy_text);
    char *sig = sign_with(1, policy_text, len);
    const char *line2 = strchr(sig, '\n') + 1;
    const char *line3 = strchr(line2, '\n') + 1;
    const char *line4 = strchr(line3, '\n') + 1;
    struct {
        size_t cut; /* bytes of sig kept */
        const char *error;
    } cuts[] = {
        {0, "p.yaml.minisig:1:1: error: expected 'untrusted comment: ...'"},
        {10, "p.yaml.minisig:1:1: error: expected 'untrusted comment: ...'"},
        {(size_t)(line2 - sig), "p.yaml.minisig:2:1: error: expected the signature (base64 of 74 "
                                "bytes)"},
        {(size_t)(line2 - sig) + 40, "p.yaml.minisig:2:1: error: expected the signature (base64 "
                                     "of 74 bytes)"},
        {(size_t)(line3 - sig), "p.yaml.minisig:3:1: error: expected 'trusted comment: ...'"},
        {(size_t)(line4 - sig), "p.yaml.minisig:4:1: error: expected the comment's signature "
                                "(base64 of 64 bytes)"},
        {strlen(sig) - 3, "p.yaml.minisig:4:1: error: expected the comment's signature (base64 "
                          "of 64 bytes)"},
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char *cut = strndup(sig, cuts[i].cut);
        cv_signer_t by;
        assert_string_equal(verify(policy_text, len, cut, signers, &by), cuts[i].error);
        free(cut);
    }
    char *garbled = strdup(sig);
    garbled[line2 - sig + 20] = '*';
    cv_signer_t by;
    cv_error_t err = {0};
    assert_string_equal(verify(policy_text, len, garbled, signers, &by),
                        "p.yaml.minisig:2:1: error: expected the signature (base64 of 74 bytes)");
    free(garbled);
    /* "Ed" turned into "Et": base64 "RW" starts "Ed", "RX" "Et" */
    garbled = strdup(sig);
    assert_memory_equal(garbled + (line2 - sig), "RW", 2);
    garbled[line2 - sig + 1] = 'X';
    assert_string_equal(verify(policy_text, len, garbled, signers, &by),
                        "p.yaml.minisig:2:1: error: not an Ed25519 signature ('Ed' or 'ED')");
    free(garbled);
    /* the comment lines' prefixes are the format's, not free text */
    const char *prefixes[][2] = {{"untrusted comment:", "untrusted_comment:"},
                                 {"\ntrusted comment:", "\ntrusted_comment:"}};
    for (int i = 0; i < 2; i++) {
        garbled = strdup(sig);
        memcpy(strstr(garbled, prefixes[i][0]), prefixes[i][1], strlen(prefixes[i][1]));
        assert_string_equal(verify(policy_text, len, garbled, signers, &by),
                            i == 0 ? "p.yaml.minisig:1:1: error: expected 'untrusted comment: ...'"
                                   : "p.yaml.minisig:3:1: error: expected 'trusted comment: ...'");
        free(garbled);
    }
    /* a NUL byte, even in the comment no signature covers */
    garbled = strdup(sig);
    garbled[strlen("untrusted comment: ") + 2] = '\0';
    assert_false(
        cv_sig_verify(policy_text, len, "p.yaml", garbled, strlen(sig), signers, &by, &err));
    assert_string_equal(err.msg, "p.yaml.minisig:1:1: error: not a signature: holds a NUL byte");
    free(garbled);
    char *longer = NULL;
    assert_true(asprintf(&longer, "%s\nmore\n", sig) > 0);
    assert_string_equal(verify(policy_text, len, longer, signers, &by),
                        "p.yaml.minisig:6:1: error: unexpected text after the signature");
    free(longer);
    free(sig);
    cv_signers_destroy(&signers);
}

static void test_sign_refuses_a_multi_line_comment(void **state)
{
    (void)state;
    cv_sign_key_t key;
    key_of(1, &key);
    assert_null(cv_sig_sign("x", 1, &key, "two\nlines"));
    cv_sign_key_wipe(&key);
}

/* ------------------------------------------------------------------------ */
/*  minisign's own signatures: made with minisign 0.11 (minisign -G -W;
 *  -S -l for the "Ed" one, -S for the prehashed "ED" one) of "hello\n".   */

#define MINISIGN_KEY "RWRoWLCV+t7IcWlnfczxaVEs4MHHMPLFdH6aaecaLvRVt3GVMc81X2fq"

static const char minisign_legacy[] =
    "untrusted comment: signature from minisign secret key\n"
    "RWRoWLCV+t7IcXRIxGx4i7m7b0jqlCRRjk81NKcy5MGXqU4if/yiar0Rmos1u9sdS3NyNddZMpRNwRWY1Q0miK4MkgoSa7"
    "WjVAo=\n"
    "trusted comment: timestamp:1796201160\tfile:f\n"
    "iubys0tsDUoOD8CEUH+3s+kklGoUjNCgzAn6lYa1aPndip1JbyjZAEbnLFWz8v582/35zjFtjn6U8NwITuH5CQ==\n";

static const char minisign_prehashed[] =
    "untrusted comment: signature from minisign secret key\n"
    "RURoWLCV+t7IcUJymW9zPBIem8OaL6/UngKdEcPBu8otYjSSyuX8O0asM5b/3EVwuF1TAKmsZhtctUYTyLWzmGlH9xd06r"
    "3ZEAI=\n"
    "trusted comment: caveat test vector\n"
    "Y3PQFYXYRu8sj+BPiU0F1mskU6a3ssoS6rKEP5uNnQo+cJXK2FdHjuSRyzBKhVPgHAGbabxLf7KlcOILjwvMBQ==\n";

static void test_minisign_signatures_verify(void **state)
{
    (void)state;
    cv_signers_t *signers = signers_of("release-key " MINISIGN_KEY "  # made by minisign -G\n");
    cv_signer_t by;
    assert_string_equal(verify("hello\n", 6, minisign_legacy, signers, &by), "");
    assert_string_equal(by.name, "release-key");
    assert_string_equal(by.key_id, "71C8DEFA95B05868"); /* as minisign printed it */
    assert_string_equal(verify("hello\n", 6, minisign_prehashed, signers, &by), "");
    assert_string_not_equal(verify("hellO\n", 6, minisign_legacy, signers, &by), "");
    assert_string_not_equal(verify("hellO\n", 6, minisign_prehashed, signers, &by), "");
    cv_signers_destroy(&signers);
}

/* ------------------------------------------------------------------------ */
/*  The signers file.                                                       */

static void test_empty_signers_file_is_refused(void **state)
{
    (void)state;
    const char *empties[] = {"", "\n\n", "# no one yet\n   \n# still no one\n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        cv_error_t err = {0};
        assert_null(cv_signers_parse(empties[i], strlen(empties[i]), "signers", &err));
        assert_string_equal(err.msg, "signers: error: lists no signer: with signers configured "
                                     "only a policy signed by one of them loads, so an empty list "
                                     "is refused (add 'NAME PUBLIC-KEY')");
    }
}

static void test_malformed_signers_line_is_refused_at_its_position(void **state)
{
    (void)state;
    char alice[128], bob[128];
    signer_line(alice, sizeof alice, "alice", 1);
    signer_line(bob, sizeof bob, "bob", 2);
    char alice_key[CV_SIG_KEY_TEXT];
    snprintf(alice_key, sizeof alice_key, "%s", strchr(alice, ' ') + 1);
    struct {
        const char *line2;
        const char *error;
    } cases[] = {
        {"carol\n", "signers:2:6: error: expected 'NAME PUBLIC-KEY', the key an Ed25519 public "
                    "key in minisign's form (caveat policy signer-key)"},
        {"carol RWQnotakey\n", "signers:2:7: error: expected 'NAME PUBLIC-KEY', the key an "
                               "Ed25519 public key in minisign's form (caveat policy "
                               "signer-key)"},
        {"car/ol KEY\n", "signers:2:1: error: a signer's name is up to 63 letters, digits and "
                         "._@-"},
        {"  carol KEY extra\n", "signers:2:66: error: unexpected text after the key"},
        {"carol KEY\n", "signers:2:1: error: key ID CA7F6EA8F33B3549 is listed already, on line "
                        "1"},
        {"bob2 KEY\n", "signers:2:1: error: key ID CA7F6EA8F33B3549 is listed already, on line 1"},
        {"alice BOB\n", "signers:2:1: error: signer 'alice' is listed already, on line 1"},
        {"a123456789b123456789c123456789d123456789e123456789f123456789abcd KEY\n",
         "signers:2:1: error: a signer's name is up to 63 letters, digits and ._@-"},
        {"carol \xff KEY\n", "signers:2:7: error: invalid UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* KEY: alice's key, BOB: bob's */
        char line2[256], text[512];
        snprintf(line2, sizeof line2, "%s", cases[i].line2);
        char *at = strstr(line2, "KEY");
        if (at) {
            char rest[128];
            snprintf(rest, sizeof rest, "%s", at + 3);
            snprintf(at, sizeof line2 - (size_t)(at - line2), "%s%s", alice_key, rest);
        }
        if ((at = strstr(line2, "BOB"))) {
            char *bob_key = strchr(bob, ' ') + 1;
            snprintf(at, sizeof line2 - (size_t)(at - line2), "%s", bob_key);
        }
        snprintf(text, sizeof text, "%s%s", alice, line2);
        cv_error_t err = {0};
        cv_signers_t *signers = cv_signers_parse(text, strlen(text), "signers", &err);
        if (signers || strcmp(err.msg, cases[i].error) != 0)
            print_error("case %zu: %s\n", i, err.msg);
        assert_null(signers);
        assert_string_equal(err.msg, cases[i].error);
    }
}

/* ------------------------------------------------------------------------ */
/*  Files: cv_signers_load and cv_policy_load_signed.                       */

typedef struct {
    char dir[64];
    char path[128];
} files_t;

static const char *file_at(files_t *f, const char *name)
{
    snprintf(f->path, sizeof f->path, "%s/%s", f->dir, name);
    return f->path;
}

static void write_file(files_t *f, const char *name, const char *text, mode_t mode)
{
    FILE *file = fopen(file_at(f, name), "w");
    assert_non_null(file);
    fputs(text, file);
    fclose(file);
    chmod(f->path, mode);
}

static void test_policy_files(void **state)
{
    (void)state;
    files_t f;
    snprintf(f.dir, sizeof f.dir, "/tmp/caveat-sig-XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    char alice[128];
    signer_line(alice, sizeof alice, "alice", 1);
    write_file(&f, "signers", alice, 0644);
    cv_error_t err = {0};
    cv_signers_t *signers = cv_signers_load(file_at(&f, "signers"), &err);
    assert_non_null(signers);

    /* unsigned */
    write_file(&f, "p.yaml", policy_text, 0644);
    char p_path[128];
    snprintf(p_path, sizeof p_path, "%s", file_at(&f, "p.yaml"));
    cv_signer_t by;
    assert_null(cv_policy_load_signed(p_path, signers, NULL, &by, &err));
    char expected[512];
    snprintf(expected, sizeof expected,
             "%s: error: not signed (%s.minisig: cannot open: No such file or directory), and "
             "with signers configured only a signed policy loads",
             p_path, p_path);
    assert_string_equal(err.msg, expected);

    /* signed: loads, and is the policy signed */
    char *sig = sign_with(1, policy_text, strlen(policy_text));
    write_file(&f, "p.yaml.minisig", sig, 0644);
    cv_policy_t *policy = cv_policy_load_signed(p_path, signers, NULL, &by, &err);
    if (!policy)
        print_error("%s\n", err.msg);
    assert_non_null(policy);
    assert_string_equal(cv_policy_protocol(policy), "signed-test");
    assert_string_equal(by.name, "alice");
    cv_policy_destroy(&policy);

    /* signed, but no policy: the policy's own error */
    free(sig);
    sig = sign_with(1, "protocol: [\n", 12);
    write_file(&f, "p.yaml.minisig", sig, 0644);
    write_file(&f, "p.yaml", "protocol: [\n", 0644);
    assert_null(cv_policy_load_signed(p_path, signers, NULL, &by, &err));
    assert_non_null(strstr(err.msg, "p.yaml:"));
    assert_null(strstr(err.msg, "sign"));
    free(sig);
    cv_signers_destroy(&signers);

    /* a signers file anyone may write: anyone could add a signer */
    write_file(&f, "signers", alice, 0666);
    assert_null(cv_signers_load(file_at(&f, "signers"), &err));
    snprintf(expected, sizeof expected, "%s: error: anyone may write it (mode 0666): chmod o-w",
             file_at(&f, "signers"));
    assert_string_equal(err.msg, expected);
    assert_null(cv_signers_load(file_at(&f, "none"), &err));
    assert_non_null(strstr(err.msg, "none: error: cannot open: No such file or directory"));

    char command[128];
    snprintf(command, sizeof command, "rm -rf %s", f.dir);
    assert_int_equal(system(command), 0);
}

/*  A policy, or its signature, that is not a regular file: a FIFO put in
 *  its place stopped the broker's loop at the next reload, waiting at the
 *  open for a writer (every agency stalled, and SIGTERM with them), and a
 *  link to /dev/zero was read until memory ran out, before any signature
 *  was looked at. Each is refused at once now; alarm() turns a wait into
 *  a failure of this test. A link to a regular policy still loads. */
static void test_a_policy_that_is_no_regular_file_is_refused_at_once(void **state)
{
    (void)state;
    files_t f;
    snprintf(f.dir, sizeof f.dir, "/tmp/caveat-sig-XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    char alice[128], fifo[128], zero[128], large[128], linked[128], regular[128];
    signer_line(alice, sizeof alice, "alice", 1);
    write_file(&f, "signers", alice, 0644);
    cv_error_t err = {0};
    cv_signers_t *signers = cv_signers_load(file_at(&f, "signers"), &err);
    assert_non_null(signers);
    snprintf(fifo, sizeof fifo, "%s", file_at(&f, "fifo.yaml"));
    assert_int_equal(mkfifo(fifo, 0600), 0);
    snprintf(zero, sizeof zero, "%s", file_at(&f, "zero.yaml"));
    assert_int_equal(symlink("/dev/zero", zero), 0);
    snprintf(large, sizeof large, "%s", file_at(&f, "large.yaml"));
    FILE *file = fopen(large, "w");
    assert_non_null(file);
    assert_int_equal(ftruncate(fileno(file), (off_t)CV_POLICY_FILE_MAX + 1), 0); /* sparse */
    fclose(file);

    alarm(20);
    cv_signer_t by;
    const char *const refused[] = {fifo, zero, large};
    for (size_t i = 0; i < 3; i++) {
        assert_null(cv_policy_load_file(refused[i], NULL, &err));
        assert_non_null(strstr(err.msg, i < 2 ? "cannot read: not a regular file"
                                              : "cannot read: larger than"));
        assert_null(cv_policy_load_signed(refused[i], signers, NULL, &by, &err));
        assert_non_null(strstr(err.msg, "cannot read: "));
        assert_null(strstr(err.msg, "sign")); /* refused before any signature is read */
    }
    /* a signature that is a FIFO */
    write_file(&f, "p.yaml", policy_text, 0644);
    snprintf(regular, sizeof regular, "%s", f.path);
    char *sig_fifo = malloc(strlen(regular) + sizeof ".minisig");
    sprintf(sig_fifo, "%s.minisig", regular);
    assert_int_equal(mkfifo(sig_fifo, 0600), 0);
    assert_null(cv_policy_load_signed(regular, signers, NULL, &by, &err));
    assert_non_null(strstr(err.msg, ".minisig: cannot read: not a regular file)"));
    alarm(0);
    free(sig_fifo);

    /* a link to a regular policy is a regular file */
    snprintf(linked, sizeof linked, "%s", file_at(&f, "linked.yaml"));
    assert_int_equal(symlink(regular, linked), 0);
    cv_policy_t *policy = cv_policy_load_file(linked, NULL, &err);
    assert_non_null(policy);
    cv_policy_destroy(&policy);
    cv_signers_destroy(&signers);
    char command[128];
    snprintf(command, sizeof command, "rm -rf %s", f.dir);
    assert_int_equal(system(command), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_signature_verifies),
        cmocka_unit_test(test_derivation_is_fixed),
        cmocka_unit_test(test_every_altered_byte_is_refused),
        cmocka_unit_test(test_unlisted_key_is_refused),
        cmocka_unit_test(test_key_id_of_a_listed_signer_on_a_foreign_signature),
        cmocka_unit_test(test_altered_trusted_comment_is_refused),
        cmocka_unit_test(test_truncated_or_garbled_signature_is_refused),
        cmocka_unit_test(test_sign_refuses_a_multi_line_comment),
        cmocka_unit_test(test_minisign_signatures_verify),
        cmocka_unit_test(test_empty_signers_file_is_refused),
        cmocka_unit_test(test_malformed_signers_line_is_refused_at_its_position),
        cmocka_unit_test(test_policy_files),
        cmocka_unit_test(test_a_policy_that_is_no_regular_file_is_refused_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
