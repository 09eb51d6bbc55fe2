/*  Signed notes, the audit key and checkpoints (audit/cv_note.c,
 *  cv_note_signer.c, cv_checkpoint.c) and the leaves' form
 *  (cv_audit_leaf.c).
 *
 *  - the key ID and verifier key of a fixed key are those the C2SP
 *    formats define (computed here from their definition, with libsodium);
 *  - the key file: made 0600, read back the same key, refused when group
 *    or others may read it, when malformed, or when its key ID is not its
 *    key's; a name that cannot name a key is refused and nothing written;
 *  - notes: signed and verified; refused when not signed by the key, when
 *    the body or the signature changed, and when malformed; a cosignature
 *    by another key is allowed;
 *  - checkpoints: the body's form, and every malformed body refused;
 *  - Go's golang.org/x/mod/sumdb/note wrote the same key's verifier key
 *    and signed checkpoints (tests/fuzz/fuzz_audit_note/corpus): caveat
 *    reads them, and signing the same body gives the same bytes (Ed25519
 *    signatures are deterministic).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cv_audit.h"
#include "cv_proto.h"

typedef struct {
    char dir[64];
    char key_path[128];
} rig_t;

static int setup(void **state)
{
    rig_t *rig = calloc(1, sizeof *rig);
    snprintf(rig->dir, sizeof rig->dir, "/tmp/cv-test-note.XXXXXX");
    assert_non_null(mkdtemp(rig->dir));
    snprintf(rig->key_path, sizeof rig->key_path, "%s/%s", rig->dir, CV_AUDIT_KEY_FILE);
    *state = rig;
    return 0;
}

static int teardown(void **state)
{
    rig_t *rig = *state;
    unlink(rig->key_path);
    rmdir(rig->dir);
    free(rig);
    return 0;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    chmod(path, mode);
}

/*  The seed 0x01 0x02 ... 0x20, named "example.com/log", written as Go's
 *  note.NewSigner reads it. */
static void write_fixed_key(const char *path, mode_t mode)
{
    uint8_t raw[33] = {0x01}, pk[32], sk[64], id[4];
    for (int i = 0; i < 32; i++)
        raw[1 + i] = (uint8_t)(i + 1);
    crypto_sign_seed_keypair(pk, sk, raw + 1);
    /* key ID: SHA-256("example.com/log" || 0x0a || 0x01 || key)[0:4] */
    uint8_t material[15 + 2 + 32], digest[32];
    memcpy(material, "example.com/log\n\x01", 17);
    memcpy(material + 17, pk, 32);
    crypto_hash_sha256(digest, material, sizeof material);
    memcpy(id, digest, 4);
    char hex[9], b64[64], text[256];
    sodium_bin2hex(hex, sizeof hex, id, 4);
    sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
    snprintf(text, sizeof text, "PRIVATE+KEY+example.com/log+%s+%s\n", hex, b64);
    write_file(path, text, mode);
}

/*  The verifier key of the fixed key, built from the format's definition. */
static void fixed_verifier_text(char *out, size_t size)
{
    uint8_t seed[32], pk[33] = {0x01}, sk[64], digest[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(i + 1);
    crypto_sign_seed_keypair(pk + 1, sk, seed);
    uint8_t material[15 + 1 + 33];
    memcpy(material, "example.com/log\n", 16);
    memcpy(material + 16, pk, 33);
    crypto_hash_sha256(digest, material, sizeof material);
    char hex[9], b64[64];
    sodium_bin2hex(hex, sizeof hex, digest, 4);
    sodium_bin2base64(b64, sizeof b64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
    snprintf(out, size, "example.com/log+%s+%s", hex, b64);
}

static cv_note_signer_t *fixed_signer(rig_t *rig)
{
    write_fixed_key(rig->key_path, 0600);
    cv_error_t err = {0};
    cv_note_signer_t *signer = cv_note_signer_load(rig->key_path, &err);
    if (!signer)
        fail_msg("%s", err.msg);
    return signer;
}

static void test_verifier_key(void **state)
{
    cv_note_signer_t *signer = fixed_signer(*state);
    char text[CV_VERIFIER_KEY_MAX], expected[256];
    cv_note_verifier_text(cv_note_signer_verifier(signer), text);
    fixed_verifier_text(expected, sizeof expected);
    assert_string_equal(text, expected);
    cv_note_verifier_t parsed;
    cv_error_t err = {0};
    assert_true(cv_note_verifier_parse(text, &parsed, &err));
    assert_memory_equal(&parsed, cv_note_signer_verifier(signer), sizeof parsed);
    cv_note_signer_destroy(&signer);
}

static void expect_verifier_refused(const char *text, const char *expected)
{
    cv_note_verifier_t parsed;
    cv_error_t err = {0};
    assert_false(cv_note_verifier_parse(text, &parsed, &err));
    if (!strstr(err.msg, expected))
        fail_msg("'%s': '%s' does not say '%s'", text, err.msg, expected);
}

static void test_verifier_refusals(void **state)
{
    (void)state;
    char good[256], bad[256];
    fixed_verifier_text(good, sizeof good);
    const char *hex = strchr(good, '+') + 1;
    expect_verifier_refused("", "not a verifier key");
    expect_verifier_refused("example.com/log", "not a verifier key");
    snprintf(bad, sizeof bad, "bad name+%s", hex); /* a space */
    expect_verifier_refused(bad, "not a verifier key");
    snprintf(bad, sizeof bad, "example.com/log+0000000+%s", hex + 9); /* 7 digits */
    expect_verifier_refused(bad, "not a verifier key");
    snprintf(bad, sizeof bad, "%s", good);
    bad[hex - good] = 'A'; /* upper-case hex */
    expect_verifier_refused(bad, "not a verifier key");
    snprintf(bad, sizeof bad, "%s", good);
    bad[hex - good] = bad[hex - good] == '0' ? '1' : '0';
    expect_verifier_refused(bad, "key ID");
    snprintf(bad, sizeof bad, "other.log+%s", hex);
    expect_verifier_refused(bad, "key ID");
    snprintf(bad, sizeof bad, "%.*sAg%s", (int)(hex - good + 9), good, hex + 11); /* algorithm 2 */
    expect_verifier_refused(bad, "not an Ed25519 key");
    snprintf(bad, sizeof bad, "%.*s", (int)strlen(good) - 4, good); /* key cut short */
    expect_verifier_refused(bad, "not an Ed25519 key");
}

/*  A new key: 0600, and the same key when loaded again. */
static void test_key_file(void **state)
{
    rig_t *rig = *state;
    cv_error_t err = {0};
    cv_note_signer_t *made = cv_audit_key_open(rig->dir, NULL, &err);
    assert_non_null(made);
    struct stat st;
    assert_int_equal(stat(rig->key_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    const char *name = cv_note_signer_verifier(made)->name;
    assert_int_equal(strncmp(name, "caveat/", 7), 0);
    assert_int_equal(strlen(name), 15);
    cv_note_signer_t *again = cv_audit_key_open(rig->dir, "ignored/when/the/key/exists", &err);
    assert_non_null(again);
    assert_memory_equal(cv_note_signer_verifier(made), cv_note_signer_verifier(again),
                        sizeof(cv_note_verifier_t));
    /* made ahead of time, it is refused to be made again over itself */
    cv_note_signer_t *over = cv_note_signer_create(rig->key_path, "caveat/x", &err);
    assert_null(over);
    assert_non_null(strstr(err.msg, "cannot create"));
    cv_note_signer_destroy(&again);
    cv_note_signer_destroy(&made);
}

static void expect_key_refused(rig_t *rig, const char *expected)
{
    cv_error_t err = {0};
    cv_note_signer_t *signer = cv_note_signer_load(rig->key_path, &err);
    assert_null(signer);
    if (!strstr(err.msg, expected))
        fail_msg("'%s' does not say '%s'", err.msg, expected);
}

static void test_key_file_refusals(void **state)
{
    rig_t *rig = *state;
    expect_key_refused(rig, "No such file");
    write_fixed_key(rig->key_path, 0640);
    expect_key_refused(rig, "audit key file must give group and others no access (0600 and 0400 "
                            "do; it is 0640)");
    write_fixed_key(rig->key_path, 0604);
    expect_key_refused(rig, "(0600 and 0400 do; it is 0604)");
    write_file(rig->key_path, "not a key\n", 0600);
    expect_key_refused(rig, "not an audit key");
    write_file(rig->key_path, "PRIVATE+KEY+name+00000000+AQ==\n", 0600);
    expect_key_refused(rig, "not an audit key");
    /* a well-formed key whose key ID is another's */
    write_fixed_key(rig->key_path, 0600);
    char text[512];
    FILE *file = fopen(rig->key_path, "r");
    assert_non_null(fgets(text, sizeof text, file));
    fclose(file);
    char *id = strchr(text + strlen("PRIVATE+KEY+"), '+') + 1;
    id[0] = id[0] == '0' ? '1' : '0';
    write_file(rig->key_path, text, 0600);
    expect_key_refused(rig, "the key ID is not the key's");
    /* the name is part of the key ID: another name, the same ID, refused */
    write_fixed_key(rig->key_path, 0600);
    file = fopen(rig->key_path, "r");
    assert_non_null(fgets(text, sizeof text, file));
    fclose(file);
    memcpy(text + strlen("PRIVATE+KEY+"), "EXAMPLE", 7);
    write_file(rig->key_path, text, 0600);
    expect_key_refused(rig, "the key ID is not the key's");
    /* a name no note can carry is no key's, whatever its ID */
    memcpy(text + strlen("PRIVATE+KEY+"), "exa ple", 7);
    write_file(rig->key_path, text, 0600);
    expect_key_refused(rig, "not an audit key");
}

static void test_bad_name(void **state)
{
    rig_t *rig = *state;
    cv_error_t err = {0};
    const char *names[] = {"", "a b", "a+b", "tab\there", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        assert_null(cv_audit_key_open(rig->dir, names[i], &err));
        assert_non_null(strstr(err.msg, "cannot name an audit key"));
        assert_int_equal(access(rig->key_path, F_OK), -1); /* nothing written */
    }
}

static void test_note(void **state)
{
    rig_t *rig = *state;
    cv_note_signer_t *signer = fixed_signer(rig);
    const cv_note_verifier_t *verifier = cv_note_signer_verifier(signer);
    char *note = cv_note_sign(signer, "line one\nline two\n");
    assert_non_null(note);
    /* Ed25519 is deterministic: the signature is the one libsodium gives */
    assert_int_equal(strncmp(note, "line one\nline two\n\n\xe2\x80\x94 example.com/log ", 37), 0);
    size_t body_len = 0;
    cv_error_t err = {0};
    assert_true(cv_note_verify(note, strlen(note), verifier, &body_len, &err));
    assert_int_equal(body_len, 18);
    /* cosigned by another key after the log's signature: still good */
    char path[256];
    snprintf(path, sizeof path, "%s/witness.key", rig->dir);
    cv_note_signer_t *witness = cv_note_signer_create(path, "witness.example", &err);
    assert_non_null(witness);
    char *cosigned = cv_note_sign(witness, "line one\nline two\n");
    char *both = NULL;
    assert_true(asprintf(&both, "%s%s", note, strstr(cosigned, "\n\n") + 2) > 0);
    assert_true(cv_note_verify(both, strlen(both), verifier, &body_len, &err));
    /* only the witness: not the log's */
    assert_false(cv_note_verify(cosigned, strlen(cosigned), verifier, &body_len, &err));
    assert_non_null(strstr(err.msg, "not signed by example.com/log (key ID "));
    unlink(path);
    free(both);
    free(cosigned);
    cv_note_signer_destroy(&witness);
    /* bodies a note cannot carry */
    assert_null(cv_note_sign(signer, ""));
    assert_null(cv_note_sign(signer, "no newline"));
    assert_null(cv_note_sign(signer, "a\n\nblank line\n"));
    assert_null(cv_note_sign(signer, "\nleading\n"));
    assert_null(cv_note_sign(signer, "a tab\there\n"));
    free(note);
    cv_note_signer_destroy(&signer);
}

static void expect_note_refused(const char *note, const cv_note_verifier_t *verifier,
                                const char *expected)
{
    size_t body_len = 0;
    cv_error_t err = {0};
    assert_false(cv_note_verify(note, strlen(note), verifier, &body_len, &err));
    if (!strstr(err.msg, expected))
        fail_msg("'%s' does not say '%s'", err.msg, expected);
}

static void test_note_refusals(void **state)
{
    cv_note_signer_t *signer = fixed_signer(*state);
    const cv_note_verifier_t *verifier = cv_note_signer_verifier(signer);
    char *note = cv_note_sign(signer, "body\n");
    char *edited = strdup(note);
    edited[0] = 'B';
    expect_note_refused(edited, verifier, "the signature by example.com/log (key ID ");
    strcpy(edited, note);
    char *sig = strrchr(edited, ' ') + 12;
    *sig = *sig == 'A' ? 'B' : 'A';
    expect_note_refused(edited, verifier, "is not valid");
    expect_note_refused("body\n", verifier, "no signature after a blank line");
    expect_note_refused("body\n\n", verifier, "no signature after a blank line");
    strcpy(edited, note);
    edited[strlen(edited) - 1] = '\0'; /* no final newline */
    expect_note_refused(edited, verifier, "no signature after a blank line");
    expect_note_refused("body\n\n- example.com/log AAAA\n", verifier,
                        "signature line 1 is malformed");
    expect_note_refused("body\n\n\xe2\x80\x94 example.com/log !!!!\n", verifier,
                        "signature line 1 is malformed");
    expect_note_refused("body\n\n\xe2\x80\x94 example.com/log AAAA\n", verifier,
                        "signature line 1 is malformed"); /* 3 bytes: no room for a key ID */
    expect_note_refused("bo\rdy\n\n\xe2\x80\x94 x AAAAAAAA\n", verifier, "a control character");
    expect_note_refused("bo\xffy\n\n\xe2\x80\x94 x AAAAAAAA\n", verifier, "note: line 1");
    /* a signature by the right name and key ID, the wrong length */
    char line[128], id[9];
    sodium_bin2hex(id, sizeof id, verifier->key_id, 4);
    uint8_t raw[5];
    memcpy(raw, verifier->key_id, 4);
    raw[4] = 0;
    char b64[16];
    sodium_bin2base64(b64, sizeof b64, raw, 5, sodium_base64_VARIANT_ORIGINAL);
    snprintf(line, sizeof line, "body\n\n\xe2\x80\x94 example.com/log %s\n", b64);
    expect_note_refused(line, verifier, "is not valid");
    free(edited);
    free(note);
    cv_note_signer_destroy(&signer);
}

static void expect_checkpoint_refused(const char *body, const char *expected)
{
    cv_checkpoint_t checkpoint;
    cv_error_t err = {0};
    assert_false(cv_checkpoint_parse(body, strlen(body), &checkpoint, &err));
    if (!strstr(err.msg, expected))
        fail_msg("'%s': '%s' does not say '%s'", body, err.msg, expected);
}

static void test_checkpoint(void **state)
{
    cv_note_signer_t *signer = fixed_signer(*state);
    cv_checkpoint_t checkpoint = {.origin = "example.com/log", .size = 20852163}, parsed;
    memset(checkpoint.root.bytes, 0x0a, CV_HASH_BYTES);
    char *body = cv_checkpoint_body(&checkpoint);
    assert_string_equal(
        body, "example.com/log\n20852163\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=\n");
    char *note = cv_note_sign(signer, body);
    cv_error_t err = {0};
    assert_true(
        cv_checkpoint_open(note, strlen(note), cv_note_signer_verifier(signer), &parsed, &err));
    assert_memory_equal(&parsed, &checkpoint, sizeof parsed);
    /* extension lines are read past */
    const char *extended = "o\n1\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=\next\n";
    assert_true(cv_checkpoint_parse(extended, strlen(extended), &parsed, &err));
    /* a checkpoint of another origin, signed by the log's key */
    char *other =
        cv_note_sign(signer, "other.log\n1\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=\n");
    assert_false(
        cv_checkpoint_open(other, strlen(other), cv_note_signer_verifier(signer), &parsed, &err));
    assert_non_null(strstr(err.msg, "origin 'other.log' is not the log's (example.com/log)"));
    free(other);
    free(note);
    free(body);
    cv_note_signer_destroy(&signer);
}

static void test_checkpoint_refusals(void **state)
{
    (void)state;
    const char *root = "CgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=";
    char body[256];
    expect_checkpoint_refused("", "no origin line");
    expect_checkpoint_refused("\n1\n", "no origin line");
    const char *sizes[] = {
        "", "01", "-1", "+1", "1 ", "x", "18446744073709551616", "9223372036854775808"};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        snprintf(body, sizeof body, "o\n%s\n%s\n", sizes[i], root);
        expect_checkpoint_refused(body, "not a tree size in decimal");
    }
    const char *roots[] = {"", "CgoK", "CgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo",
                           "CgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCg==",
                           "CgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo= ",
                           /* libsodium alone reads 0xa7 as '/' (fuzz_audit_note found it) */
                           ("AAcOFRwjKjE4P0ZN\xa7"
                            "FtiaXB3fMk5oWqhqK+2vcTL0tk="),
                           /* the unused bits of the last letter set: not canonical */
                           "CgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgp="};
    for (size_t i = 0; i < sizeof roots / sizeof *roots; i++) {
        snprintf(body, sizeof body, "o\n1\n%s\n", roots[i]);
        expect_checkpoint_refused(body, "not a root hash");
    }
    snprintf(body, sizeof body, "o\n1\n%s", root);
    expect_checkpoint_refused(body, "not a root hash"); /* no final newline */
    snprintf(body, sizeof body, "o\n1\n%s\n\n", root);
    expect_checkpoint_refused(body, "an empty extension line");
    snprintf(body, sizeof body, "o\n1\n%s\next", root);
    expect_checkpoint_refused(body, "the last line does not end in a newline");
}

static char *corpus_file(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fuzz/fuzz_audit_note/corpus/%s", CAVEAT_SOURCE_DIR, name);
    size_t len = 0;
    char *text = cv_read_file(path, &len);
    assert_non_null(text);
    return text;
}

static void test_go_interop(void **state)
{
    cv_note_signer_t *signer = fixed_signer(*state);
    char text[CV_VERIFIER_KEY_MAX];
    cv_note_verifier_text(cv_note_signer_verifier(signer), text);
    char *go_key = corpus_file("verifier_key");
    assert_string_equal(text, go_key);
    const char *names[] = {"checkpoint", "checkpoint_extension"};
    for (int i = 0; i < 2; i++) {
        char *go_note = corpus_file(names[i]);
        cv_checkpoint_t checkpoint;
        cv_error_t err = {0};
        if (!cv_checkpoint_open(go_note, strlen(go_note), cv_note_signer_verifier(signer),
                                &checkpoint, &err))
            fail_msg("%s: %s", names[i], err.msg);
        assert_int_equal(checkpoint.size, 20852163);
        char *body = strndup(go_note, (size_t)(strstr(go_note, "\n\n") + 1 - go_note));
        char *note = cv_note_sign(signer, body);
        assert_string_equal(note, go_note);
        free(note);
        free(body);
        free(go_note);
    }
    free(go_key);
    cv_note_signer_destroy(&signer);
}

/*  A leaf is one compact JSON object, "event" and "time" first. */
static void test_leaf(void **state)
{
    (void)state;
    cv_json_writer_t *w = cv_audit_leaf_begin("accepted", 1796083200123);
    cv_json_key(w, "report");
    cv_json_string(w, "R \"1\"");
    cv_json_key(w, "to");
    cv_json_array_begin(w);
    cv_json_string(w, "police");
    cv_json_array_end(w);
    char *leaf = cv_audit_leaf_end(&w);
    assert_null(w);
    assert_string_equal(
        leaf, "{\"event\":\"accepted\",\"time\":1796083200123,\"report\":\"R \\\"1\\\"\",\"to\":"
              "[\"police\"]}");
    free(leaf);
    assert_null(cv_audit_leaf_end(&w));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_verifier_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verifier_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_note, setup, teardown),
        cmocka_unit_test_setup_teardown(test_note_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_go_interop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
