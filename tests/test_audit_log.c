/*  The audit log in SQLite (audit/cv_tlog.c) and its verification
 *  (cv_tlog_reader.c), through the library and through `caveat audit`.
 *
 *  - a log made by audit_fixture verifies, in the library and the CLI;
 *  - each kind of tampering (a leaf changed, deleted, inserted, two
 *    swapped, the log truncated, a leaf after the last checkpoint changed,
 *    leaves added behind the log's back, the frontier edited, the last
 *    checkpoint edited, forged or moved) makes `caveat audit verify` exit
 *    1 naming what is wrong, and cv_tlog_open refuse the log, signing
 *    nothing more;
 *  - appending outside a transaction is refused, and a rolled-back
 *    transaction or savepoint leaves nothing behind;
 *  - checkpoints: when due, nothing signed twice;
 *  - prove and consistency refuse what they cannot prove.
 *
 *  Each log lives in a fresh directory under /tmp, removed at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit_cli.h"
#include "audit_rig.h"

/*  20 leaves, checkpoints at 8, 16 and 20, and 3 leaves after them. */
#define LEAVES 20
#define EVERY  8
#define TAIL   3

static int setup(void **state)
{
    *state = rig_new(LEAVES, EVERY, TAIL);
    return 0;
}

static int teardown(void **state)
{
    rig_destroy((rig_t **)state);
    return 0;
}

static int64_t count(rig_t *rig, const char *sql)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(rig->db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

/*  `caveat audit ARGS` on the rig's directory (audit_cli.h). */
static int run_cli(rig_t *rig, const char *args, char *out, size_t size)
{
    (void)rig;
    return audit_cli(args, out, size);
}

static int verify_cli(rig_t *rig, char *out, size_t size)
{
    char args[256];
    snprintf(args, sizeof args, "verify %s", rig->dir);
    return run_cli(rig, args, out, size);
}

static void test_fixture_verifies(void **state)
{
    rig_t *rig = *state;
    cv_audit_summary_t summary;
    cv_error_t err = {0};
    if (!cv_audit_verify(rig->db, cv_note_signer_verifier(rig->signer), &summary, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(summary.leaves, LEAVES + TAIL);
    assert_int_equal(summary.checkpoints, 3);
    assert_int_equal(summary.checkpointed, LEAVES);
    assert_string_equal(summary.last.origin, AUDIT_FIXTURE_ORIGIN);
    char out[4096];
    assert_int_equal(verify_cli(rig, out, sizeof out), 0);
    assert_non_null(strstr(out, "audit log good: 23 leaves"));
    assert_non_null(strstr(out, "3 leaves not yet checkpointed"));
}

/*  After sql, verify fails naming why (expected, in the library's message
 *  and the CLI's), and the broker's open refuses the log without signing
 *  anything more. */
static void expect_tampered(rig_t *rig, const char *sql, const char *expected)
{
    exec_sql(rig, sql);
    int64_t checkpoints = count(rig, "SELECT count(*) FROM tlog_checkpoints");
    cv_audit_summary_t summary;
    cv_error_t err = {0};
    assert_false(cv_audit_verify(rig->db, cv_note_signer_verifier(rig->signer), &summary, &err));
    if (!strstr(err.msg, expected))
        fail_msg("'%s' does not say '%s'", err.msg, expected);
    char out[4096];
    assert_int_equal(verify_cli(rig, out, sizeof out), 1);
    if (strncmp(out, "caveat: ", 8) != 0 || !strstr(out, expected))
        fail_msg("caveat audit verify said '%s', not '%s'", out, expected);
    cv_tlog_t *log = cv_tlog_open(rig->db, rig->signer, &err);
    assert_null(log);
    assert_non_null(strstr(err.msg, expected));
    assert_int_equal(count(rig, "SELECT count(*) FROM tlog_checkpoints"), checkpoints);
}

static void test_leaf_changed(void **state)
{
    expect_tampered(*state,
                    "UPDATE tlog_leaves SET data = CAST(replace(CAST(data AS TEXT),"
                    " 'agency-1', 'agency-4') AS BLOB) WHERE idx = 11",
                    "checkpoint at size 16: the leaves do not hash to its root: one of leaves 8 "
                    "to 15 was changed");
}

static void test_leaf_deleted(void **state)
{
    expect_tampered(*state, "DELETE FROM tlog_leaves WHERE idx = 5",
                    "leaf 5 is missing: the leaves go from 4 to 6");
}

/*  An insertion in the middle: the leaves after it renumbered. */
static void test_leaf_inserted(void **state)
{
    expect_tampered(*state,
                    "UPDATE tlog_leaves SET idx = -idx - 1000 WHERE idx >= 3;"
                    "UPDATE tlog_leaves SET idx = -idx - 1000 + 1 WHERE idx < 0;"
                    "INSERT INTO tlog_leaves(idx, data) VALUES (3, CAST('{}' AS BLOB));",
                    "checkpoint at size 8: the leaves do not hash to its root: one of leaves 0 "
                    "to 7");
}

static void test_leaves_swapped(void **state)
{
    expect_tampered(*state,
                    "UPDATE tlog_leaves SET idx = -1 WHERE idx = 17;"
                    "UPDATE tlog_leaves SET idx = 17 WHERE idx = 18;"
                    "UPDATE tlog_leaves SET idx = 18 WHERE idx = -1;",
                    "checkpoint at size 20: the leaves do not hash to its root: one of leaves 16 "
                    "to 19");
}

/*  The leaves cut back, frontier and all, past the last checkpoint. */
static void test_truncated(void **state)
{
    expect_tampered(*state, "DELETE FROM tlog_leaves WHERE idx >= 18",
                    "checkpoint at size 20 covers leaves the log no longer has: it has 18");
}

static void test_tail_leaf_changed(void **state)
{
    expect_tampered(*state,
                    "UPDATE tlog_leaves SET data = CAST('{\"event\":\"none\"}' AS BLOB)"
                    " WHERE idx = 21",
                    "the leaves do not hash to the stored frontier: one of leaves 20 to 22");
}

static void test_leaf_added_behind_back(void **state)
{
    expect_tampered(*state, "INSERT INTO tlog_leaves(idx, data) VALUES (23, CAST('{}' AS BLOB))",
                    "the log has 24 leaves, its frontier says 23");
}

static void test_tail_deleted(void **state)
{
    expect_tampered(*state, "DELETE FROM tlog_leaves WHERE idx = 22",
                    "the log has 22 leaves, its frontier says 23");
}

/*  23 leaves: 16 + 4 + 2 + 1, four nodes. */
static void test_frontier_edited(void **state)
{
    expect_tampered(*state, "UPDATE tlog_frontier SET nodes = zeroblob(128)",
                    "the leaves do not hash to the stored frontier");
}

static void test_frontier_damaged(void **state)
{
    expect_tampered(*state, "UPDATE tlog_frontier SET nodes = zeroblob(64)",
                    "the stored frontier is missing or damaged");
}

/*  The root in the last checkpoint's body changed, its signature kept. */
static void test_checkpoint_edited(void **state)
{
    rig_t *rig = *state;
    char *note = cv_audit_checkpoint(rig->db, LEAVES, NULL);
    assert_non_null(note);
    char *root = strchr(strchr(note, '\n') + 1, '\n') + 1;
    root[3] = root[3] == 'A' ? 'B' : 'A';
    char *sql =
        sqlite3_mprintf("UPDATE tlog_checkpoints SET note = %Q WHERE size = %d", note, LEAVES);
    expect_tampered(rig, sql, "checkpoint at size 20: note: the signature by caveat.test/audit");
    sqlite3_free(sql);
    free(note);
}

/*  The last checkpoint replaced by one of another key with the log's name
 *  over a root of other leaves. */
static void test_checkpoint_forged(void **state)
{
    rig_t *rig = *state;
    char path[4096];
    snprintf(path, sizeof path, "%s/forger.key", rig->dir);
    cv_error_t err = {0};
    cv_note_signer_t *forger = cv_note_signer_create(path, AUDIT_FIXTURE_ORIGIN, &err);
    assert_non_null(forger);
    cv_checkpoint_t forged = {.origin = AUDIT_FIXTURE_ORIGIN, .size = LEAVES};
    cv_merkle_leaf_hash("forged", 6, &forged.root);
    char *body = cv_checkpoint_body(&forged);
    char *note = cv_note_sign(forger, body);
    char *sql =
        sqlite3_mprintf("UPDATE tlog_checkpoints SET note = %Q WHERE size = %d", note, LEAVES);
    expect_tampered(rig, sql, "checkpoint at size 20: note: not signed by caveat.test/audit");
    sqlite3_free(sql);
    free(note);
    free(body);
    cv_note_signer_destroy(&forger);
}

static void test_checkpoint_moved(void **state)
{
    expect_tampered(*state, "UPDATE tlog_checkpoints SET size = 19 WHERE size = 20",
                    "checkpoint at size 19: stored under that size, it says size 20");
}

/*  A store without the tables is no log. */
static void test_no_log(void **state)
{
    rig_t *rig = *state;
    exec_sql(rig, "DROP TABLE tlog_frontier");
    cv_audit_summary_t summary;
    cv_error_t err = {0};
    assert_false(cv_audit_verify(rig->db, cv_note_signer_verifier(rig->signer), &summary, &err));
    assert_non_null(strstr(err.msg, "this store has none"));
    assert_null(cv_audit_prove(rig->db, 0, 0, NULL, 0, &err));
    assert_non_null(strstr(err.msg, "this store has none"));
}

static void test_append_outside_transaction(void **state)
{
    rig_t *rig = *state;
    cv_error_t err = {0};
    cv_tlog_t *log = cv_tlog_open(rig->db, rig->signer, &err);
    assert_non_null(log);
    assert_false(cv_tlog_append(log, "x", 1, NULL, &err));
    assert_non_null(strstr(err.msg, "written only inside the transaction"));
    assert_int_equal(cv_tlog_checkpoint(log, 0, &err), -1);
    assert_non_null(strstr(err.msg, "written only inside the transaction"));
    assert_int_equal(cv_tlog_size(log, &err), LEAVES + TAIL);
    assert_int_equal(count(rig, "SELECT count(*) FROM tlog_leaves"), LEAVES + TAIL);
    cv_tlog_destroy(&log);
}

/*  A rolled-back transaction and a rolled-back savepoint leave nothing:
 *  the next leaf takes the index the lost one had, and the log verifies. */
static void test_rollback(void **state)
{
    rig_t *rig = *state;
    cv_error_t err = {0};
    cv_tlog_t *log = cv_tlog_open(rig->db, rig->signer, &err);
    assert_non_null(log);
    uint64_t index = 0;
    exec_sql(rig, "BEGIN");
    assert_true(cv_tlog_append(log, "lost", 4, &index, &err));
    assert_int_equal(index, LEAVES + TAIL);
    assert_int_equal(cv_tlog_checkpoint(log, 100, &err), 1);
    exec_sql(rig, "ROLLBACK");
    exec_sql(rig, "BEGIN; SAVEPOINT one");
    assert_true(cv_tlog_append(log, "kept", 4, &index, &err));
    exec_sql(rig, "SAVEPOINT two");
    assert_true(cv_tlog_append(log, "undone", 6, &index, &err));
    assert_int_equal(index, LEAVES + TAIL + 1);
    exec_sql(rig, "ROLLBACK TO two; RELEASE one");
    assert_true(cv_tlog_append(log, "after", 5, &index, &err));
    assert_int_equal(index, LEAVES + TAIL + 1);
    assert_int_equal(cv_tlog_checkpoint(log, 100, &err), 1);
    exec_sql(rig, "COMMIT");
    cv_tlog_destroy(&log);
    cv_audit_summary_t summary;
    if (!cv_audit_verify(rig->db, cv_note_signer_verifier(rig->signer), &summary, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(summary.leaves, LEAVES + TAIL + 2);
    assert_int_equal(summary.checkpointed, LEAVES + TAIL + 2);
    assert_int_equal(count(rig, "SELECT count(*) FROM tlog_leaves WHERE data = CAST('lost' AS BLOB)"
                                " OR data = CAST('undone' AS BLOB)"),
                     0);
}

/*  Flushes of many leaves go in by batches of statements (16 rows each,
 *  then one at a time): every leaf lands at its index, empty ones too, and
 *  the tree signed over them is the tree of the rows read back. */
static void test_append_many_in_batches(void **state)
{
    rig_t *rig = *state;
    cv_error_t err = {0};
    cv_tlog_t *log = cv_tlog_open(rig->db, rig->signer, &err);
    assert_non_null(log);
    static const size_t flushes[] = {1, 16, 37, 0, 17, 48};
    char text[128][32];
    const void *data[128];
    size_t lens[128], total = 0;
    exec_sql(rig, "BEGIN");
    for (size_t f = 0; f < sizeof flushes / sizeof *flushes; f++) {
        for (size_t i = 0; i < flushes[f]; i++, total++) {
            /* every fifth leaf empty, the others of different lengths */
            snprintf(text[i], sizeof text[i], "%.*s%zu", (int)(total % 4), "abc", total);
            data[i] = text[i];
            lens[i] = total % 5 == 3 ? 0 : strlen(text[i]);
        }
        uint64_t first = 0;
        assert_true(cv_tlog_append_many(log, data, lens, flushes[f], NULL, NULL, &first, &err));
        assert_int_equal(first, LEAVES + TAIL + total - flushes[f]);
    }
    assert_int_equal(cv_tlog_checkpoint(log, 100, &err), 1);
    exec_sql(rig, "COMMIT");
    cv_tlog_destroy(&log);
    for (size_t n = 0; n < total; n++) {
        char want[32], sql[128];
        snprintf(want, sizeof want, "%.*s%zu", (int)(n % 4), "abc", n);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM tlog_leaves WHERE idx = %zu AND data = %s",
                 LEAVES + TAIL + n, n % 5 == 3 ? "x''" : "CAST(? AS BLOB)");
        sqlite3_stmt *s = NULL;
        assert_int_equal(sqlite3_prepare_v2(rig->db, sql, -1, &s, NULL), SQLITE_OK);
        sqlite3_bind_text(s, 1, want, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        if (sqlite3_column_int(s, 0) != 1)
            fail_msg("leaf %zu is not where it was appended", n);
        sqlite3_finalize(s);
    }
    cv_audit_summary_t summary;
    if (!cv_audit_verify(rig->db, cv_note_signer_verifier(rig->signer), &summary, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(summary.leaves, LEAVES + TAIL + total);
    assert_int_equal(summary.checkpointed, LEAVES + TAIL + total);
}

static void test_checkpoint_due(void **state)
{
    rig_t *rig = *state;
    cv_error_t err = {0};
    exec_sql(rig, "UPDATE tlog_checkpoints SET signed = 1000 WHERE size = 20");
    cv_tlog_t *log = cv_tlog_open(rig->db, rig->signer, &err);
    assert_non_null(log);
    assert_int_equal(cv_tlog_checkpointed(log, &err), LEAVES);
    /* 3 leaves since the checkpoint signed at 1000 */
    assert_true(cv_tlog_checkpoint_due(log, 3, 0, 1000));
    assert_false(cv_tlog_checkpoint_due(log, 4, 0, 1000));
    assert_false(cv_tlog_checkpoint_due(log, 4, 60, 1059));
    assert_true(cv_tlog_checkpoint_due(log, 4, 60, 1060));
    assert_false(cv_tlog_checkpoint_due(log, 0, 0, 5000));
    exec_sql(rig, "BEGIN");
    assert_int_equal(cv_tlog_checkpoint(log, 2000, &err), 1);
    /* nothing new: nothing signed, and nothing due */
    assert_int_equal(cv_tlog_checkpoint(log, 2001, &err), 0);
    exec_sql(rig, "COMMIT");
    assert_false(cv_tlog_checkpoint_due(log, 1, 1, 9000));
    assert_int_equal(cv_tlog_checkpointed(log, &err), LEAVES + TAIL);
    assert_int_equal(count(rig, "SELECT count(*) FROM tlog_checkpoints"), 4);
    cv_tlog_destroy(&log);
}

/*  A fresh database gets the tables; an empty log has nothing to sign. */
static void test_new_log(void **state)
{
    rig_t *rig = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    cv_error_t err = {0};
    cv_tlog_t *log = cv_tlog_open(db, rig->signer, &err);
    assert_non_null(log);
    assert_int_equal(cv_tlog_size(log, &err), 0);
    assert_false(cv_tlog_checkpoint_due(log, 1, 1, 1000));
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    assert_int_equal(cv_tlog_checkpoint(log, 1000, &err), 0);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    cv_tlog_destroy(&log);
    sqlite3_close(db);
}

static void test_prove_refusals(void **state)
{
    rig_t *rig = *state;
    cv_error_t err = {0};
    /* leaves 20..22 are in no checkpoint yet */
    assert_null(cv_audit_prove(rig->db, LEAVES, 0, NULL, 0, &err));
    assert_non_null(strstr(err.msg, "no checkpoint covers leaf 20 yet"));
    assert_null(cv_audit_prove(rig->db, 3, 12, NULL, 0, &err));
    assert_non_null(strstr(err.msg, "no checkpoint of size 12"));
    assert_null(cv_audit_prove(rig->db, 8, 8, NULL, 0, &err));
    assert_non_null(strstr(err.msg, "a tree of 8 leaves has no leaf 8"));
    assert_null(cv_audit_consistency(rig->db, 8, 12, &err));
    assert_non_null(strstr(err.msg, "no checkpoint of size 12"));
    assert_null(cv_audit_consistency(rig->db, 16, 8, &err));
    assert_non_null(strstr(err.msg, "the old size must be at least 1 and at most the new"));
    assert_null(cv_audit_checkpoint(rig->db, 12, &err));
    assert_non_null(strstr(err.msg, "no checkpoint of size 12"));
    /* a proof from changed leaves is refused, not given out */
    exec_sql(rig, "UPDATE tlog_leaves SET data = CAST('x' AS BLOB) WHERE idx = 10");
    assert_null(cv_audit_prove(rig->db, 5, 0, NULL, 0, &err));
    assert_non_null(strstr(err.msg, "checkpoint at size 20: the leaves do not hash to its root"));
    assert_null(cv_audit_consistency(rig->db, 8, 16, &err));
    assert_non_null(strstr(err.msg, "not consistent with the leaves"));
}

/*  The proof file's form; extra data in base64; the CLI's is the same. */
static void test_proof_text(void **state)
{
    rig_t *rig = *state;
    cv_error_t err = {0};
    char *text = cv_audit_prove(rig->db, 5, 8, "hi", 2, &err);
    assert_non_null(text);
    char *checkpoint = cv_audit_checkpoint(rig->db, 8, &err);
    assert_non_null(checkpoint);
    /* 8 leaves: three hashes */
    assert_int_equal(strncmp(text, "c2sp.org/tlog-proof@v1\nextra aGk=\nindex 5\n", 42), 0);
    const char *blank = strstr(text, "\n\n");
    assert_non_null(blank);
    assert_int_equal(blank - (text + 42), 3 * 45 - 1);
    assert_string_equal(blank + 2, checkpoint);
    char out[8192], args[256];
    snprintf(args, sizeof args, "prove %s --index 5 --checkpoint 8", rig->dir);
    assert_int_equal(run_cli(rig, args, out, sizeof out), 0);
    char *plain = cv_audit_prove(rig->db, 5, 8, NULL, 0, &err); /* no extra line */
    assert_non_null(plain);
    assert_string_equal(out, plain);
    assert_string_equal(plain + strlen("c2sp.org/tlog-proof@v1\n"),
                        text + 42 - strlen("index 5\n"));
    free(plain);
    free(checkpoint);
    free(text);
}

/*  The frontier rewritten to the leaves as they now are: what whoever can
 *  write the store can do after any edit. */
static void frontier_rewritten(rig_t *rig)
{
    cv_frontier_t frontier;
    cv_frontier_init(&frontier);
    sqlite3_stmt *s = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(rig->db, "SELECT data FROM tlog_leaves ORDER BY idx", -1, &s, NULL),
        SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
        cv_hash_t hash;
        cv_merkle_leaf_hash(sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0), &hash);
        cv_frontier_append(&frontier, &hash);
    }
    sqlite3_finalize(s);
    uint8_t nodes[64 * CV_HASH_BYTES];
    cv_frontier_pack(&frontier, nodes);
    assert_int_equal(
        sqlite3_prepare_v2(rig->db, "UPDATE tlog_frontier SET size = ?1, nodes = ?2 WHERE id = 0",
                           -1, &s, NULL),
        SQLITE_OK);
    sqlite3_bind_int64(s, 1, (int64_t)frontier.size);
    sqlite3_bind_blob(s, 2, nodes, (int)cv_frontier_packed_size(&frontier), SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
}

/*  The note stored at size, written to DIR/kept. */
static void keep_checkpoint(rig_t *rig, int size, cv_checkpoint_t *kept)
{
    char sql[128], path[128];
    snprintf(sql, sizeof sql, "SELECT note FROM tlog_checkpoints WHERE size = %d", size);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(rig->db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    const char *note = (const char *)sqlite3_column_text(s, 0);
    size_t len = (size_t)sqlite3_column_bytes(s, 0);
    cv_error_t err = {0};
    assert_true(cv_checkpoint_open(note, len, cv_note_signer_verifier(rig->signer), kept, &err));
    snprintf(path, sizeof path, "%s/kept", rig->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(note, 1, len, f), len);
    fclose(f);
    sqlite3_finalize(s);
}

/*  After sql and the frontier rewritten, the stored checkpoints alone find
 *  nothing wrong, and a checkpoint kept from before finds what expected
 *  says, in the library and in `verify --checkpoint`. */
static void expect_only_kept_finds(rig_t *rig, const char *sql, const char *expected)
{
    cv_checkpoint_t kept;
    keep_checkpoint(rig, 20, &kept);
    exec_sql(rig, sql);
    frontier_rewritten(rig);
    const cv_note_verifier_t *verifier = cv_note_signer_verifier(rig->signer);
    cv_audit_summary_t summary;
    cv_error_t err = {0};
    assert_true(cv_audit_verify(rig->db, verifier, &summary, &err));
    assert_false(cv_audit_verify_kept(rig->db, verifier, &kept, &summary, &err));
    if (!strstr(err.msg, expected))
        fail_msg("'%s' does not say '%s'", err.msg, expected);
    char args[256], out[4096];
    snprintf(args, sizeof args, "verify %s --checkpoint %s/kept", rig->dir, rig->dir);
    assert_int_equal(run_cli(rig, args, out, sizeof out), 1);
    if (!strstr(out, expected))
        fail_msg("caveat audit verify said '%s', not '%s'", out, expected);
}

/*  Every checkpoint deleted and a leaf changed; the log cut back with the
 *  checkpoints past the cut. A kept checkpoint tells; with nothing
 *  changed it holds. */
static void test_a_kept_checkpoint_holds_the_log(void **state)
{
    rig_t *rig = *state;
    cv_checkpoint_t kept;
    keep_checkpoint(rig, 20, &kept);
    cv_audit_summary_t summary;
    cv_error_t err = {0};
    assert_true(
        cv_audit_verify_kept(rig->db, cv_note_signer_verifier(rig->signer), &kept, &summary, &err));
    assert_int_equal(summary.checkpoints, 3);
    expect_only_kept_finds(rig,
                           "DELETE FROM tlog_checkpoints;"
                           " UPDATE tlog_leaves SET data = CAST('{\"event\":\"none\"}' AS BLOB)"
                           " WHERE idx = 3",
                           "the kept checkpoint, at size 20: the leaves do not hash to its root");
}

static void test_a_kept_checkpoint_finds_the_log_cut_back(void **state)
{
    expect_only_kept_finds(*state,
                           "DELETE FROM tlog_leaves WHERE idx >= 15;"
                           " DELETE FROM tlog_checkpoints WHERE size > 15",
                           "the kept checkpoint, at size 20 covers leaves the log no longer has: "
                           "it has 15 (truncated)");
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fixture_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf_inserted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaves_swapped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_leaf_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf_added_behind_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frontier_edited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frontier_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_edited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_forged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_moved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_outside_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_many_in_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_due, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prove_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proof_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_kept_checkpoint_holds_the_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_kept_checkpoint_finds_the_log_cut_back, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
