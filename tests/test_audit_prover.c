/*  cv_prover (the broker's receipts) against cv_audit_prove (`caveat audit
 *  prove`), which hashes every leaf it needs: the same proof text for
 *  every leaf of every checkpointed size, across partial tiles and the
 *  levels above them, whether the prover has learned the tiles or not;
 *  and the texts read back (cv_audit_proof_parse) and checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "audit_fixture.h"
#include "cv_audit.h"
#include "cv_proto.h"

#define LEAVES 700 /* past two tiles of 256, and a partial third */
#define EVERY  50  /* a checkpoint every 50 leaves */

typedef struct {
    char dir[64];
    sqlite3 *db;
    cv_note_verifier_t verifier;
} rig_t;

static int setup(void **state)
{
    rig_t *rig = calloc(1, sizeof *rig);
    cv_error_t err = {0};
    snprintf(rig->dir, sizeof rig->dir, "/tmp/cv-test-prover.XXXXXX");
    assert_non_null(mkdtemp(rig->dir));
    assert_true(audit_fixture_make(rig->dir, LEAVES, EVERY, 0, NULL));
    rig->db = cv_audit_open_readonly(rig->dir, &err);
    assert_non_null(rig->db);
    cv_note_signer_t *signer = cv_audit_key_open(rig->dir, NULL, &err);
    assert_non_null(signer);
    rig->verifier = *cv_note_signer_verifier(signer);
    cv_note_signer_destroy(&signer);
    *state = rig;
    return 0;
}

static int teardown(void **state)
{
    rig_t *rig = *state;
    sqlite3_close(rig->db);
    audit_fixture_remove(rig->dir);
    free(rig);
    return 0;
}

/*  Leaves below size (the first and last ten, those at and beside tile
 *  edges, and every 13th: cv_audit_prove reads every leaf of the tree
 *  for each) proven by prover as cv_audit_prove proves them. */
static void prove_all(rig_t *rig, cv_prover_t *prover, uint64_t size)
{
    cv_error_t err = {0};
    char *note = cv_audit_checkpoint(rig->db, size, &err);
    assert_non_null(note);
    cv_checkpoint_t checkpoint;
    size_t body = 0;
    assert_true(cv_note_body(note, strlen(note), &body, &err));
    assert_true(cv_checkpoint_parse(note, body, &checkpoint, &err));
    assert_int_equal(checkpoint.size, size);
    for (uint64_t i = 0; i < size; i++) {
        uint64_t in_tile = i % CV_PROVER_TILE;
        if (i >= 10 && size - i > 10 && in_tile > 1 && in_tile < CV_PROVER_TILE - 2 && i % 13)
            continue;
        uint8_t *leaf = NULL;
        size_t len = 0;
        char *got = cv_prover_prove(prover, i, note, &checkpoint, &leaf, &len, &err);
        if (!got)
            print_error("leaf %llu of %llu: %s\n", (unsigned long long)i, (unsigned long long)size,
                        err.msg);
        assert_non_null(got);
        char *want = cv_audit_prove(rig->db, i, size, leaf, len, &err);
        assert_non_null(want);
        assert_string_equal(got, want);
        cv_audit_proof_t proof;
        assert_true(cv_audit_proof_parse(got, strlen(got), &proof, &err));
        assert_int_equal(proof.index, i);
        assert_int_equal(proof.extra_len, len);
        assert_true(cv_audit_proof_check(&proof, leaf, len, &rig->verifier, NULL, &err));
        cv_audit_proof_clear(&proof);
        free(want);
        free(got);
        free(leaf);
    }
    free(note);
}

static void test_learned_prover_proves_as_the_reader(void **state)
{
    rig_t *rig = *state;
    cv_error_t err = {0};
    cv_prover_t *prover = cv_prover_new(rig->db);
    /* a bounded number of tiles a call: 0 until all are known */
    assert_int_equal(cv_prover_learn(prover, LEAVES, 1, &err), 0);
    assert_int_equal(cv_prover_learn(prover, LEAVES, 1, &err), 1);
    const uint64_t sizes[] = {50, 250, 300, 500, 550, 650, 700};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        prove_all(rig, prover, sizes[i]);
    cv_prover_destroy(&prover);
}

static void test_unlearned_prover_proves_the_same(void **state)
{
    rig_t *rig = *state;
    cv_prover_t *prover = cv_prover_new(rig->db);
    prove_all(rig, prover, LEAVES);
    cv_prover_destroy(&prover);
}

static void test_prover_refusals(void **state)
{
    rig_t *rig = *state;
    cv_error_t err = {0};
    cv_prover_t *prover = cv_prover_new(rig->db);
    char *note = cv_audit_checkpoint(rig->db, 100, &err);
    cv_checkpoint_t checkpoint;
    size_t body = 0;
    assert_true(cv_note_body(note, strlen(note), &body, &err));
    assert_true(cv_checkpoint_parse(note, body, &checkpoint, &err));
    uint8_t *leaf = NULL;
    size_t len = 0;
    assert_null(cv_prover_prove(prover, 100, note, &checkpoint, &leaf, &len, &err));
    assert_non_null(strstr(err.msg, "a tree of 100 leaves has no leaf 100"));
    assert_null(leaf);
    /* more tiles than the log has leaves: refused, not guessed */
    assert_int_equal(cv_prover_learn(prover, LEAVES + 512, 10, &err), -1);
    assert_non_null(strstr(err.msg, "is missing"));
    free(note);
    cv_prover_destroy(&prover);
}

static void test_proof_text_refusals(void **state)
{
    (void)state;
    cv_audit_proof_t proof;
    cv_error_t err = {0};
    const char *bad[] = {
        "",
        "c2sp.org/tlog-proof@v2\nindex 1\n\nnote\n",
        "c2sp.org/tlog-proof@v1\nindex x\n\nnote\n",
        "c2sp.org/tlog-proof@v1\nindex 01\n\nnote\n",
        "c2sp.org/tlog-proof@v1\nextra !!!!\nindex 1\n\nnote\n",
        /* libsodium alone reads 0xc8 as a letter (fuzz_audit_proof found it):
         * the same leaf would have a second text */
        "c2sp.org/tlog-proof@v1\nextra ZnV6e\xc8\x42sZWFmIDA=\nindex 1\n\nnote\n",
        /* the unused bits of the last letter set */
        "c2sp.org/tlog-proof@v1\nextra ZnV6eiBsZWFmIDB=\nindex 1\n\nnote\n",
        "c2sp.org/tlog-proof@v1\nindex 1\nnot-a-hash\n\nnote\n",
        "c2sp.org/tlog-proof@v1\nindex 1\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_false(cv_audit_proof_parse(bad[i], strlen(bad[i]), &proof, &err));
        assert_non_null(strstr(err.msg, "tlog-proof: "));
        assert_null(proof.extra);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_learned_prover_proves_as_the_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlearned_prover_proves_the_same, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prover_refusals, setup, teardown),
        cmocka_unit_test(test_proof_text_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
