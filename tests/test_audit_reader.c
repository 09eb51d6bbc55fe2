/*  The audit log read back (audit/cv_tlog_reader.c, `caveat audit`) from
 *  a data directory a broker is writing, or one an attacker crafted.
 *
 *  - verify passes however often the broker commits while it reads, and a
 *    command reads the log as it was at its first read;
 *  - a page SQLite cannot read is an error, named as SQLite names it, in
 *    every command that reads the leaves, not the log's end;
 *  - a checkpoint stored under another size than its own is refused,
 *    saying so, by every command that reads it;
 *  - a FIFO in place of the key or the store is refused, not waited on;
 *
 *  Each log lives in a fresh directory under /tmp, removed at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_cli.h"
#include "audit_rig.h"

static int setup(void **state)
{
    *state = rig_new(20, 8, 3);
    return 0;
}

static int teardown(void **state)
{
    rig_destroy((rig_t **)state);
    return 0;
}

/*  Leaf index appended as the broker appends one: in its own transaction,
 *  the frontier with it. */
static void append_leaf(rig_t *rig, cv_tlog_t *log, uint64_t index)
{
    char *leaf = audit_fixture_leaf(index);
    cv_error_t err = {0};
    exec_sql(rig, "BEGIN IMMEDIATE");
    if (!cv_tlog_append(log, leaf, strlen(leaf), NULL, &err))
        fail_msg("%s", err.msg);
    exec_sql(rig, "COMMIT");
    free(leaf);
}

/* ------------------------------------------------------------------------ */
/*  A log the broker writes while it is read.                               */

typedef struct {
    rig_t *rig;
    atomic_bool stop;
    uint64_t appended;
    cv_error_t err; /* why it stopped before it was told to */
} appender_t;

/*  Appends a leaf at a time, as a broker at work does, until stopped (on
 *  its own thread: errors are kept for the test's, cmocka's fail_msg is
 *  not for other threads). */
static void *append_until_stopped(void *arg)
{
    appender_t *a = arg;
    sqlite3 *db = a->rig->db;
    cv_tlog_t *log = cv_tlog_open(db, a->rig->signer, &a->err);
    for (uint64_t index = 2000; log && !atomic_load(&a->stop); index++, a->appended++) {
        char *leaf = audit_fixture_leaf(index);
        bool ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
                  cv_tlog_append(log, leaf, strlen(leaf), NULL, &a->err) &&
                  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
        free(leaf);
        if (!ok)
            break;
    }
    cv_tlog_destroy(&log);
    return NULL;
}

/*  Verify, on a connection of its own as `caveat audit verify` has, while
 *  the log grows: the checkpoints, leaves and frontier it reads are of one
 *  moment, so the log is good every time. */
static void test_verify_while_appended(void **state)
{
    (void)state;
    rig_t *rig = rig_new(2000, 500, 0);
    exec_sql(rig, "PRAGMA synchronous=OFF");
    appender_t appender = {.rig = rig};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, append_until_stopped, &appender), 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/caveat.db", rig->dir);
    int failed = 0;
    cv_error_t err = {0};
    for (int run = 0; run < 30; run++) {
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        cv_audit_summary_t summary;
        if (!cv_audit_verify(db, cv_note_signer_verifier(rig->signer), &summary, &err))
            failed++;
        sqlite3_close(db);
    }
    atomic_store(&appender.stop, true);
    pthread_join(thread, NULL);
    assert_string_equal(appender.err.msg, "");
    assert_true(appender.appended > 0);
    if (failed)
        fail_msg("verify failed %d of 30 times while %llu leaves were appended, last: %s", failed,
                 (unsigned long long)appender.appended, err.msg);
    rig_destroy(&rig);
}

static void count_leaf(void *arg, uint64_t index, const void *data, size_t len)
{
    (void)index, (void)data, (void)len;
    ++*(int *)arg;
}

/*  A command's store, opened read-only, is read as it was at the first
 *  read: a leaf committed after it is not seen half way through. */
static void test_one_moment(void **state)
{
    rig_t *rig = *state;
    cv_error_t err = {0};
    sqlite3 *db = cv_audit_open_readonly(rig->dir, &err);
    assert_non_null(db);
    int before = 0, after = 0;
    assert_int_equal(cv_audit_find_report(db, "R-1", NULL, count_leaf, &before, &err), 1);
    cv_tlog_t *log = cv_tlog_open(rig->db, rig->signer, &err);
    assert_non_null(log);
    append_leaf(rig, log, 1); /* R-1 again */
    cv_tlog_destroy(&log);
    assert_int_equal(cv_audit_find_report(db, "R-1", NULL, count_leaf, &after, &err), 1);
    sqlite3_close(db);
}

/* ------------------------------------------------------------------------ */
/*  A store with a page that cannot be read.                                */

/*  The last leaf page of table's b-tree (its last rows, in key order)
 *  made one SQLite cannot read: its page type is not one. */
static void damage_last_leaf_page(rig_t *rig, const char *table)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(rig->db,
                                        "SELECT max(pageno), (SELECT page_size FROM"
                                        " pragma_page_size) FROM dbstat WHERE name = ?1"
                                        " AND pagetype = 'leaf'",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t page = sqlite3_column_int64(s, 0), size = sqlite3_column_int64(s, 1);
    sqlite3_finalize(s);
    assert_true(page > 1);
    char path[4096];
    snprintf(path, sizeof path, "%s/caveat.db", rig->dir);
    FILE *db = fopen(path, "r+b");
    assert_non_null(db);
    assert_int_equal(fseek(db, (long)((page - 1) * size), SEEK_SET), 0);
    assert_int_equal(fputc(0x00, db), 0x00);
    assert_int_equal(fclose(db), 0);
}

/*  Reading stops at the damaged page with SQLite's word for it: not taken
 *  for the end of the log (trace, prove --report: "no leaf names"), nor
 *  for a leaf missing. */
static void test_damaged_page(void **state)
{
    (void)state;
    rig_t *rig = rig_new(2 * CV_PROVER_TILE, 0, 0); /* two tiles: the last page in one */
    damage_last_leaf_page(rig, "tlog_leaves");
    static const char *const commands[][2] = {
        {"trace", "R-1"}, {"prove", "--report R-1"}, {"prove", "--index 1"}};
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        char args[256], out[4096];
        snprintf(args, sizeof args, "%s %s %s", commands[i][0], rig->dir, commands[i][1]);
        assert_int_equal(audit_cli(args, out, sizeof out), 1);
        if (!strstr(out, "database disk image is malformed"))
            fail_msg("caveat audit %s said '%s'", args, out);
    }
    cv_error_t err = {0};
    sqlite3 *db = cv_audit_open_readonly(rig->dir, &err);
    assert_non_null(db);
    int found = 0;
    assert_int_equal(cv_audit_find_report(db, "R-1", NULL, count_leaf, &found, &err), -1);
    assert_non_null(strstr(err.msg, "malformed"));
    cv_prover_t *prover = cv_prover_new(db);
    memset(&err, 0, sizeof err);
    assert_int_equal(cv_prover_learn(prover, 2 * CV_PROVER_TILE, 2, &err), -1);
    if (!strstr(err.msg, "malformed"))
        fail_msg("the prover said '%s'", err.msg);
    cv_prover_destroy(&prover);
    sqlite3_close(db);
    rig_destroy(&rig);
}

/*  A checkpoint that cannot be read is not one that is not there. */
static void test_damaged_checkpoints(void **state)
{
    rig_t *rig = *state;
    damage_last_leaf_page(rig, "tlog_checkpoints");
    char args[256], out[4096];
    snprintf(args, sizeof args, "checkpoint %s", rig->dir);
    assert_int_equal(audit_cli(args, out, sizeof out), 1);
    if (!strstr(out, "database disk image is malformed"))
        fail_msg("caveat audit %s said '%s'", args, out);
}

/* ------------------------------------------------------------------------ */
/*  Checkpoints stored under another size than their own.                  */

/*  `caveat audit ARGS` on the rig's directory fails (exit 1) saying what
 *  is wrong: more than "caveat: DIR: ". */
static void expect_said(rig_t *rig, const char *verb, const char *options, const char *expected)
{
    char args[512], out[4096], bare[128];
    snprintf(args, sizeof args, "%s %s %s", verb, rig->dir, options);
    snprintf(bare, sizeof bare, "caveat: %s: \n", rig->dir);
    int status = audit_cli(args, out, sizeof out);
    if (status != 1 || strcmp(out, bare) == 0 || !strstr(out, expected))
        fail_msg("caveat audit %s: exit %d, '%s', not '%s'", args, status, out, expected);
}

/*  The note of the checkpoint at size 8 stored in the row of size 20 (the
 *  last): every command that reads that row refuses it, saying why (a
 *  sample seeded by it would be drawn from the size-8 tree's root). */
static void test_moved_note_refused(void **state)
{
    rig_t *rig = *state;
    exec_sql(rig, "UPDATE tlog_checkpoints SET note = (SELECT note FROM tlog_checkpoints"
                  " WHERE size = 8) WHERE size = 20");
    static const char moved[] = "checkpoint at size 20: stored under that size, it says size 8";
    expect_said(rig, "prove", "--index 12", moved);
    expect_said(rig, "prove", "--index 12 --checkpoint 20", moved);
    expect_said(rig, "consistency", "16 20", moved);
    expect_said(rig, "checkpoint", "", moved);
    expect_said(rig, "checkpoint", "--size 20", moved);
    expect_said(rig, "sample", "--count 3 --seed 20", moved);
    expect_said(rig, "sample", "--count 3", moved);
    expect_said(rig, "verify", "", moved);
}

/* ------------------------------------------------------------------------ */
/*  FIFOs where the key and the store should be.                           */

/*  `caveat audit ARGS` given at most 10 s: a command that waits on a FIFO
 *  for ever fails the test (124) rather than hanging it. */
static int audit_cli_in_time(const char *args, char *out, size_t size)
{
    char command[8192];
    snprintf(command, sizeof command, "timeout 10 '%s' audit %s 2>&1", CAVEAT_CLI, args);
    return command_output(command, out, size);
}

/*  name in the rig's directory replaced by a FIFO nothing writes to. */
static void make_fifo(rig_t *rig, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", rig->dir, name);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0600), 0);
}

static void expect_refused_in_time(rig_t *rig, const char *verb, const char *options,
                                   const char *expected)
{
    char args[512], out[4096];
    snprintf(args, sizeof args, "%s %s %s", verb, rig->dir, options);
    int status = audit_cli_in_time(args, out, sizeof out);
    if (status != 2 || !strstr(out, expected))
        fail_msg("caveat audit %s: exit %d, '%s', not '%s'", args, status, out, expected);
}

/*  A FIFO for audit.key is refused at once, not waited on. */
static void test_key_fifo(void **state)
{
    rig_t *rig = *state;
    make_fifo(rig, CV_AUDIT_KEY_FILE);
    alarm(10); /* a library call that waits is killed, failing the test */
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", rig->dir, CV_AUDIT_KEY_FILE);
    cv_error_t err = {0};
    assert_null(cv_note_signer_load(path, &err));
    assert_non_null(strstr(err.msg, "not a regular file"));
    alarm(0);
    expect_refused_in_time(rig, "key", "", "audit.key: not a regular file");
    expect_refused_in_time(rig, "verify", "", "audit.key: not a regular file");
    expect_refused_in_time(rig, "sample", "--count 1", "audit.key: not a regular file");
}

/*  A FIFO for caveat.db is refused at once, not waited on by SQLite. */
static void test_store_fifo(void **state)
{
    rig_t *rig = *state;
    char key[CV_VERIFIER_KEY_MAX];
    cv_note_verifier_text(cv_note_signer_verifier(rig->signer), key);
    sqlite3_close(rig->db);
    rig->db = NULL;
    make_fifo(rig, "caveat.db");
    alarm(10);
    cv_error_t err = {0};
    assert_null(cv_audit_open_readonly(rig->dir, &err));
    assert_non_null(strstr(err.msg, "caveat.db: cannot open: not a regular file"));
    alarm(0);
    char options[256];
    snprintf(options, sizeof options, "--key %s", key);
    static const char refused[] = "caveat.db: cannot open: not a regular file";
    expect_refused_in_time(rig, "verify", options, refused);
    expect_refused_in_time(rig, "trace", "R-1", refused);
    expect_refused_in_time(rig, "summary", "", refused);
    expect_refused_in_time(rig, "checkpoint", "", refused);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_while_appended),
        cmocka_unit_test_setup_teardown(test_one_moment, setup, teardown),
        cmocka_unit_test(test_damaged_page),
        cmocka_unit_test_setup_teardown(test_damaged_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_note_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_fifo, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
