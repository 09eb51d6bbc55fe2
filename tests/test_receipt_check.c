/*  The check `caveat subscribe --receipts` makes of each receipt before it
 *  writes it (client/receipt_check.h): the leaf must record this agency's
 *  delivery on this queue, of this seq and report, with the view received,
 *  and the proof (the file written) must be a proof of that leaf at the
 *  receipt's index; with the log's verifier key, a good one. A broker that
 *  answers with any other leaf, however well proven, or pairs the leaf
 *  checked with a proof of another, is refused with what does not match.
 *  (`caveat audit receipt` checks a written file: cli_receipts.sh and
 *  test_receipts.c; what it prints of a leaf is here.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "cv_audit.h"
#include "receipt_check.h"

#define VIEW_A "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
#define VIEW_B "f9e8d7c6b5a4938271605f4e3d2c1b0af9e8d7c6b5a4938271605f4e3d2c1b0a"

/*  A "delivered" leaf as the broker writes it: agency hull-cc, its direct
 *  queue, seqs 7 (r-1, VIEW_A) and 8 (r-2, VIEW_B). */
static const char good_leaf[] =
    "{\"event\":\"delivered\",\"time\":1796224904233,\"agency\":\"hull-cc\",\"feed\":null,"
    "\"deliveries\":[{\"report\":\"r-1\",\"seq\":7,\"view\":\"" VIEW_A "\"},"
    "{\"report\":\"r-2\",\"seq\":8,\"view\":\"" VIEW_B "\"}]}";

/*  Two logs' keys: the broker's, and another log's. */
static char key_dir[] = "/tmp/test_receipt_check.XXXXXX";
static cv_note_signer_t *log_key, *other_key;

/*  The proofs a test made, freed after it. */
static char *kept[64];
static size_t n_kept;

static const char *keep(char *text)
{
    assert_non_null(text);
    assert_true(n_kept < sizeof kept / sizeof *kept);
    return kept[n_kept++] = text;
}

static int free_kept(void **state)
{
    (void)state;
    while (n_kept)
        free(kept[--n_kept]);
    return 0;
}

static bool leaf_hash_of(void *leaves, uint64_t index, cv_hash_t *out)
{
    const char *leaf = ((const char *const *)leaves)[index];
    cv_merkle_leaf_hash(leaf, strlen(leaf), out);
    return true;
}

/*  The tlog-proof of leaf (len bytes) at index by path, in checkpoint
 *  (its origin set here), signed by key. */
static const char *signed_proof(const cv_note_signer_t *key, cv_checkpoint_t *checkpoint,
                                uint64_t index, const char *leaf, size_t len, const cv_hash_t *path,
                                int hashes)
{
    snprintf(checkpoint->origin, sizeof checkpoint->origin, "%s",
             cv_note_signer_verifier(key)->name);
    char *body = cv_checkpoint_body(checkpoint);
    char *note = body ? cv_note_sign(key, body) : NULL;
    char *text = note ? cv_audit_proof_text(index, leaf, len, path, hashes, note) : NULL;
    free(body);
    free(note);
    return keep(text);
}

/*  The tlog-proof of leaves[index] in the tree of those n leaves, its
 *  checkpoint signed by key. */
static const char *proof_in(const cv_note_signer_t *key, const char *const *leaves, uint64_t n,
                            uint64_t index)
{
    cv_checkpoint_t checkpoint = {.size = n};
    cv_hash_t path[CV_MERKLE_MAX_PROOF];
    assert_true(cv_merkle_root(n, leaf_hash_of, (void *)leaves, &checkpoint.root));
    int hashes = cv_merkle_inclusion_proof(index, n, leaf_hash_of, (void *)leaves, path);
    assert_true(hashes >= 0);
    return signed_proof(key, &checkpoint, index, leaves[index], strlen(leaves[index]), path,
                        hashes);
}

/*  The tlog-proof of the only leaf of a log, len bytes of any kind. */
static const char *proof_of_only(const cv_note_signer_t *key, const char *leaf, size_t len)
{
    cv_checkpoint_t checkpoint = {.size = 1};
    cv_merkle_leaf_hash(leaf, len, &checkpoint.root);
    return signed_proof(key, &checkpoint, 0, leaf, len, NULL, 0);
}

/*  A receipt of leaf as the broker sends it: the leaf, at index 0 of the
 *  log, and the proof of it there. */
static cv_receipt_t receipt_of(const char *leaf, uint64_t seq, const char *report_id)
{
    const char *proof = proof_in(log_key, &leaf, 1, 0);
    return (cv_receipt_t){.seq = seq,
                          .report_id = report_id,
                          .leaf = (const uint8_t *)leaf,
                          .leaf_len = strlen(leaf),
                          .proof = proof,
                          .proof_len = strlen(proof)};
}

/*  The check of leaf for hull-cc's direct queue; why when refused. */
static bool check(const char *leaf, uint64_t seq, const char *report_id, const char *view,
                  char why[120])
{
    cv_receipt_t r = receipt_of(leaf, seq, report_id);
    why[0] = '\0';
    return receipt_check(&r, "hull-cc", NULL, report_id, view, why, 120);
}

/*  A refusal's why, which must say reason. */
static void expect_why(const char *why, const char *reason)
{
    if (!strstr(why, reason))
        print_error("refused for \"%s\", not \"%s\"\n", why, reason);
    assert_non_null(strstr(why, reason));
}

static void expect_refused(const char *leaf, uint64_t seq, const char *report_id, const char *view,
                           const char *reason)
{
    char why[120];
    assert_false(check(leaf, seq, report_id, view, why));
    expect_why(why, reason);
}

static void test_each_delivery_of_the_leaf_is_taken(void **state)
{
    (void)state;
    char why[120];
    assert_true(check(good_leaf, 7, "r-1", VIEW_A, why));
    assert_true(check(good_leaf, 8, "r-2", VIEW_B, why));
    /* the direct queue is "" or NULL alike */
    cv_receipt_t r = receipt_of(good_leaf, 7, "r-1");
    assert_true(receipt_check(&r, "hull-cc", "", "r-1", VIEW_A, why, sizeof why));
}

/*  A "delivered" leaf with the parts given as JSON text, in buf. */
static const char *leaf(char buf[600], const char *event, const char *agency, const char *feed,
                        const char *deliveries)
{
    snprintf(buf, 600, "{\"event\":%s,\"time\":1,\"agency\":%s,\"feed\":%s,\"deliveries\":%s}",
             event, agency, feed, deliveries);
    return buf;
}

/*  hull-cc's direct queue, with deliveries as given. */
static const char *direct(char buf[600], const char *deliveries)
{
    return leaf(buf, "\"delivered\"", "\"hull-cc\"", "null", deliveries);
}

#define R1_SEQ7_A "{\"report\":\"r-1\",\"seq\":7,\"view\":\"" VIEW_A "\"}"

/*  r-1 at seq 7, then r-9 at seq second_seq (as JSON text): refused. */
static void expect_second_refused(const char *second_seq)
{
    char buf[600], deliveries[300];
    snprintf(deliveries, sizeof deliveries,
             "[" R1_SEQ7_A ",{\"report\":\"r-9\",\"seq\":%s,\"view\":\"" VIEW_B "\"}]", second_seq);
    expect_refused(direct(buf, deliveries), 7, "r-1", VIEW_A, "does not list its seq");
}

static void test_another_delivery_is_refused(void **state)
{
    (void)state;
    char buf[600];
    expect_refused(good_leaf, 9, "r-1", VIEW_A, "does not list its seq");
    expect_refused(good_leaf, 7, "r-2", VIEW_A, "another report");
    expect_refused(good_leaf, 7, "r-1", VIEW_B, "a view other than the one received");
    /* seq 7 written as a string, or as another number's text */
    expect_refused(direct(buf, "[{\"report\":\"r-1\",\"seq\":\"7\",\"view\":\"" VIEW_A "\"}]"), 7,
                   "r-1", VIEW_A, "does not list its seq");
    expect_refused(direct(buf, "[{\"report\":\"r-1\",\"seq\":07,\"view\":\"" VIEW_A "\"}]"), 7,
                   "r-1", VIEW_A, "");
    /* listed twice: which one would it be? */
    expect_second_refused("7");
    /* JSON's null is no report, not one whose id is "null" */
    expect_refused(direct(buf, "[{\"report\":null,\"seq\":7,\"view\":\"" VIEW_A "\"}]"), 7, "null",
                   VIEW_A, "another report");
    /* a view not hashed (null) is not the view received */
    expect_refused(direct(buf, "[{\"report\":\"r-1\",\"seq\":7,\"view\":null}]"), 7, "r-1", VIEW_A,
                   "a view other");
}

static void test_another_agency_or_queue_is_refused(void **state)
{
    (void)state;
    char buf[600];
    expect_refused(leaf(buf, "\"delivered\"", "\"hull-xx\"", "null", "[" R1_SEQ7_A "]"), 7, "r-1",
                   VIEW_A, "another agency's");
    expect_refused(leaf(buf, "\"delivered\"", "\"hull-cc\"", "\"prevent\"", "[" R1_SEQ7_A "]"), 7,
                   "r-1", VIEW_A, "another queue's");
    /* the string "null" is a feed's name, not the direct queue */
    expect_refused(leaf(buf, "\"delivered\"", "\"hull-cc\"", "\"null\"", "[" R1_SEQ7_A "]"), 7,
                   "r-1", VIEW_A, "another queue's");
    /* a NUL inside a string does not end it */
    expect_refused(leaf(buf, "\"delivered\"", "\"hull-cc\\u0000x\"", "null", "[" R1_SEQ7_A "]"), 7,
                   "r-1", VIEW_A, "another agency's");
    cv_receipt_t fed = receipt_of(
        leaf(buf, "\"delivered\"", "\"hull-cc\"", "\"prevent\\u0000x\"", "[" R1_SEQ7_A "]"), 7,
        "r-1");
    char why_fed[120];
    assert_false(receipt_check(&fed, "hull-cc", "prevent", "r-1", VIEW_A, why_fed, sizeof why_fed));
    /* no agency or view to hold it to: nothing matches */
    cv_receipt_t none = receipt_of(good_leaf, 7, "r-1");
    char why_none[120];
    assert_false(receipt_check(&none, NULL, NULL, "r-1", VIEW_A, why_none, sizeof why_none));
    assert_false(receipt_check(&none, "hull-cc", NULL, "r-1", NULL, why_none, sizeof why_none));
    /* and a feed's subscriber refuses the direct queue's leaf */
    cv_receipt_t r = receipt_of(good_leaf, 7, "r-1");
    char why[120];
    assert_false(receipt_check(&r, "hull-cc", "prevent", "r-1", VIEW_A, why, sizeof why));
    expect_why(why, "another queue's");
}

static void test_other_leaves_are_refused(void **state)
{
    (void)state;
    char buf[600];
    expect_refused(leaf(buf, "\"accepted\"", "\"hull-cc\"", "null", "[" R1_SEQ7_A "]"), 7, "r-1",
                   VIEW_A, "not a \"delivered\" leaf");
    expect_refused(direct(buf, R1_SEQ7_A), 7, "r-1", VIEW_A, "does not list its seq");
    /* a key given twice could say two things */
    expect_refused(
        leaf(buf, "\"delivered\"", "\"hull-xx\",\"agency\":\"hull-cc\"", "null", "[" R1_SEQ7_A "]"),
        7, "r-1", VIEW_A, "not a JSON object");
    expect_refused("[]", 7, "r-1", VIEW_A, "not written as the broker writes");
    expect_refused("{\"event\":\"delivered\"", 7, "r-1", VIEW_A, "not a JSON object");
    expect_refused("", 7, "r-1", VIEW_A, "not written as the broker writes");
    static const char bad_byte[] = "{\"event\":\"delivered\xff\"}";
    expect_refused(bad_byte, 7, "r-1", VIEW_A, "not a JSON object");
}

/*  What another JSON reader might read otherwise is refused: the leaf is
 *  held to the form the broker writes. */
static void test_only_the_broker_s_form_is_taken(void **state)
{
    (void)state;
    char buf[600], two[1300];
    /* a second value after the object: two leaves to another reader */
    snprintf(two, sizeof two, "%s{\"event\":\"delivered\",\"agency\":\"hull-xx\"}", good_leaf);
    expect_refused(two, 7, "r-1", VIEW_A, "not written as the broker writes");
    snprintf(two, sizeof two, "%s\"x\"", good_leaf);
    expect_refused(two, 7, "r-1", VIEW_A, "not written as the broker writes");
    /* seq 7 again, as 7.0 or 7e0: the same number to another reader */
    expect_second_refused("7.0");
    expect_second_refused("7e0");
    /* seqs not ascending, as the broker lists them */
    expect_second_refused("6");
    /* a key the broker does not write: seq 7 again, beside the
     * deliveries or in its own entry, to a reader that looks there */
    expect_refused(leaf(buf, "\"delivered\"", "\"hull-cc\",\"seq\":7", "null", "[" R1_SEQ7_A "]"),
                   7, "r-1", VIEW_A, "a key a \"delivered\" leaf does not");
    expect_refused(
        direct(buf, "[{\"report\":\"r-1\",\"seq\":7,\"view\":\"" VIEW_A "\",\"at\":{\"seq\":7}}]"),
        7, "r-1", VIEW_A, "does not list its seq");
    /* a number, or true, is not a string */
    expect_refused(direct(buf, "[{\"report\":123,\"seq\":7,\"view\":\"" VIEW_A "\"}]"), 7, "123",
                   VIEW_A, "another report");
    expect_refused(leaf(buf, "\"delivered\"", "true", "null", "[" R1_SEQ7_A "]"), 7, "r-1", VIEW_A,
                   "another agency's");
    /* space or a comment outside the strings: not the broker's writing */
    expect_refused(leaf(buf, "\"delivered\"", "\"hull-cc\" #c\n", "null", "[" R1_SEQ7_A "]"), 7,
                   "r-1", VIEW_A, "not written as the broker writes");
    expect_refused(" {}", 7, "r-1", VIEW_A, "not written as the broker writes");
    expect_refused("\xef\xbb\xbf{}", 7, "r-1", VIEW_A, "not written as the broker writes");
    /* longer than any leaf the broker writes: refused before it is read */
    static char long_leaf[40 * 1024];
    size_t at = (size_t)snprintf(long_leaf, sizeof long_leaf, "%.*s", (int)strlen(good_leaf) - 1,
                                 good_leaf);
    for (int k = 0; at + 16 < sizeof long_leaf; k++)
        at += (size_t)snprintf(long_leaf + at, sizeof long_leaf - at, ",\"k%d\":1", k);
    snprintf(long_leaf + at, sizeof long_leaf - at, "}");
    expect_refused(long_leaf, 7, "r-1", VIEW_A, "too long");
}

/*  The receipt's report is held to the delivery received at its seq, not
 *  to the receipt's own word; an agency of "" matches nothing. */
static void test_the_delivery_received_decides(void **state)
{
    (void)state;
    char buf[600], why[120];
    cv_receipt_t r = receipt_of(
        direct(buf, "[{\"report\":\"r-9\",\"seq\":7,\"view\":\"" VIEW_A "\"}]"), 7, "r-9");
    assert_false(receipt_check(&r, "hull-cc", NULL, "r-1", VIEW_A, why, sizeof why));
    expect_why(why, "another report than the one received");
    assert_true(receipt_check(&r, "hull-cc", NULL, "r-9", VIEW_A, why, sizeof why));
    cv_receipt_t nobody =
        receipt_of(leaf(buf, "\"delivered\"", "\"\"", "null", "[" R1_SEQ7_A "]"), 7, "r-1");
    assert_false(receipt_check(&nobody, "", NULL, "r-1", VIEW_A, why, sizeof why));
}

/*  Another agency's delivery: the leaf after good_leaf in the log. */
static const char other_leaf[] =
    "{\"event\":\"delivered\",\"time\":1796224904234,\"agency\":\"hull-xx\",\"feed\":null,"
    "\"deliveries\":[{\"report\":\"r-1\",\"seq\":7,\"view\":\"" VIEW_B "\"}]}";
static const char *const two_leaves[] = {good_leaf, other_leaf};

/*  good_leaf, seq 7 of r-1, said to be at index, with proof. */
static cv_receipt_t with_proof(uint64_t index, const char *proof)
{
    return (cv_receipt_t){.seq = 7,
                          .report_id = "r-1",
                          .index = index,
                          .leaf = (const uint8_t *)good_leaf,
                          .leaf_len = strlen(good_leaf),
                          .proof = proof,
                          .proof_len = proof ? strlen(proof) : 0};
}

static void expect_proof_refused(cv_receipt_t receipt, const char *reason)
{
    char why[120] = "";
    assert_false(receipt_check(&receipt, "hull-cc", NULL, "r-1", VIEW_A, why, sizeof why));
    expect_why(why, reason);
}

/*  The proof is what is written: it must prove the leaf checked, not
 *  another agency's beside it, however good that proof is. */
static void test_the_proof_is_of_the_leaf_checked(void **state)
{
    (void)state;
    char why[120];
    cv_receipt_t good = with_proof(0, proof_in(log_key, two_leaves, 2, 0));
    assert_true(receipt_check(&good, "hull-cc", NULL, "r-1", VIEW_A, why, sizeof why));
    expect_proof_refused(with_proof(1, proof_in(log_key, two_leaves, 2, 1)),
                         "its proof is of another leaf");
    expect_proof_refused(with_proof(0, proof_in(log_key, two_leaves, 2, 1)),
                         "its proof is of another leaf");
    /* the leaf with a byte more is another leaf */
    char spaced[sizeof good_leaf + 1];
    snprintf(spaced, sizeof spaced, "%s ", good_leaf);
    const char *const longer[] = {spaced, other_leaf};
    expect_proof_refused(with_proof(0, proof_in(log_key, longer, 2, 0)),
                         "its proof is of another leaf");
    expect_proof_refused(with_proof(0, "c2sp.org/tlog-proof@v1\nindex 0\n\nnote\n"),
                         "its proof is of another leaf");
    expect_proof_refused(with_proof(0, NULL), "its proof is not a c2sp.org/tlog-proof@v1 text");
    expect_proof_refused(with_proof(0, "receipt"), "its proof is not a c2sp.org/tlog-proof@v1");
}

static void test_the_proof_is_at_the_receipt_s_index(void **state)
{
    (void)state;
    expect_proof_refused(with_proof(1, proof_in(log_key, two_leaves, 2, 0)),
                         "its proof puts its leaf at another index");
    expect_proof_refused(
        with_proof(0, proof_in(log_key, (const char *const[]){other_leaf, good_leaf}, 2, 1)),
        "its proof puts its leaf at another index");
}

/*  text with its index line made index, in buf. */
static const char *reindexed(char *buf, size_t size, const char *text, const char *index)
{
    const char *line = strstr(text, "\nindex 0\n");
    assert_non_null(line);
    snprintf(buf, size, "%.*s\nindex %s\n%s", (int)(line - text), text, index,
             line + strlen("\nindex 0\n"));
    return buf;
}

/*  With the log's verifier key the proof is checked as `caveat audit
 *  receipt` checks it: its checkpoint signed by the key, the leaf at its
 *  index in that checkpoint's tree. */
static void test_with_the_log_s_key_the_proof_is_checked(void **state)
{
    (void)state;
    const cv_note_verifier_t *key = cv_note_signer_verifier(log_key);
    char why[160] = "", buf[2048];
    cv_receipt_t good = with_proof(0, proof_in(log_key, two_leaves, 2, 0));
    assert_true(receipt_verify(&good, key, why, sizeof why));
    assert_false(receipt_verify(&good, cv_note_signer_verifier(other_key), why, sizeof why));
    expect_why(why, "its proof does not hold: ");
    cv_receipt_t forged = with_proof(0, proof_in(other_key, two_leaves, 2, 0));
    assert_false(receipt_verify(&forged, key, why, sizeof why));
    /* the leaf and the index agree with the receipt, the hashes do not */
    cv_receipt_t moved =
        with_proof(1, reindexed(buf, sizeof buf, proof_in(log_key, two_leaves, 2, 0), "1"));
    assert_true(receipt_check(&moved, "hull-cc", NULL, "r-1", VIEW_A, why, sizeof why));
    assert_false(receipt_verify(&moved, key, why, sizeof why));
    expect_why(why, "not at index 1");
    /* and the proof must be the leaf's, key or not */
    cv_receipt_t other = with_proof(1, proof_in(log_key, two_leaves, 2, 1));
    assert_false(receipt_verify(&other, key, why, sizeof why));
    expect_why(why, "its proof is of another leaf");
}

/*  What `caveat audit receipt FILE --key KEY` prints; its exit status. */
static int audit_receipt(const char *file, const cv_note_signer_t *key, char *out, size_t size)
{
    char verifier[CV_VERIFIER_KEY_MAX], command[4096];
    cv_note_verifier_text(cv_note_signer_verifier(key), verifier);
    snprintf(command, sizeof command, "'%s' audit receipt '%s' --key '%s'", CAVEAT_CLI, file,
             verifier);
    FILE *pipe = popen(command, "r");
    assert_non_null(pipe);
    size_t n = fread(out, 1, size - 1, pipe);
    out[n] = '\0';
    return pclose(pipe);
}

/*  The leaf of a good receipt is printed as cv_text_write writes it: its
 *  bytes cannot write to the terminal, and a NUL does not end it. */
static void test_audit_receipt_prints_the_leaf_escaped(void **state)
{
    (void)state;
    static const char leaf[] = "{\"event\":\"delivered\",\"agency\":\"\x1b[2J\x1b]0;x\x07\"}"
                               "\0after a NUL";
    const char *proof = proof_of_only(log_key, leaf, sizeof leaf - 1);
    char file[64], printed[4096];
    snprintf(file, sizeof file, "%s/escapes.tlog-proof", key_dir);
    FILE *out = fopen(file, "w");
    assert_non_null(out);
    assert_true(fputs(proof, out) >= 0 && fclose(out) == 0);
    assert_int_equal(audit_receipt(file, log_key, printed, sizeof printed), 0);
    assert_non_null(strstr(printed, "receipt good: leaf 0 of caveat.test/receipts at size 1\n"));
    assert_null(strchr(printed, '\x1b'));
    assert_null(strchr(printed, '\x07'));
    assert_non_null(strstr(printed, "\"agency\":\"\\x1b[2J\\x1b]0;x\\x07\"}\\x00after a NUL\n"));
}

static int make_keys(void **state)
{
    (void)state;
    char path[64];
    cv_error_t err = {0};
    if (sodium_init() < 0 || !mkdtemp(key_dir))
        return -1;
    snprintf(path, sizeof path, "%s/log.key", key_dir);
    log_key = cv_note_signer_create(path, "caveat.test/receipts", &err);
    snprintf(path, sizeof path, "%s/other.key", key_dir);
    other_key = cv_note_signer_create(path, "caveat.test/receipts", &err);
    return log_key && other_key ? 0 : -1;
}

static int remove_keys(void **state)
{
    (void)state;
    char path[64];
    cv_note_signer_destroy(&log_key);
    cv_note_signer_destroy(&other_key);
    for (const char *const *name =
             (const char *const[]){"log.key", "other.key", "escapes.tlog-proof", NULL};
         *name; name++) {
        snprintf(path, sizeof path, "%s/%s", key_dir, *name);
        unlink(path);
    }
    rmdir(key_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_each_delivery_of_the_leaf_is_taken, free_kept),
        cmocka_unit_test_teardown(test_another_delivery_is_refused, free_kept),
        cmocka_unit_test_teardown(test_another_agency_or_queue_is_refused, free_kept),
        cmocka_unit_test_teardown(test_other_leaves_are_refused, free_kept),
        cmocka_unit_test_teardown(test_only_the_broker_s_form_is_taken, free_kept),
        cmocka_unit_test_teardown(test_the_delivery_received_decides, free_kept),
        cmocka_unit_test_teardown(test_the_proof_is_of_the_leaf_checked, free_kept),
        cmocka_unit_test_teardown(test_the_proof_is_at_the_receipt_s_index, free_kept),
        cmocka_unit_test_teardown(test_with_the_log_s_key_the_proof_is_checked, free_kept),
        cmocka_unit_test_teardown(test_audit_receipt_prints_the_leaf_escaped, free_kept),
    };
    return cmocka_run_group_tests(tests, make_keys, remove_keys);
}
