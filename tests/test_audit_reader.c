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
 *  - a store whose log tables are not caveat's, or with a leaf longer than
 *    CV_AUDIT_LEAF_MAX, is refused; large leaves are read a few at a time;
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
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/*  The leaves naming R-1 that db reads, before and after R-1 is accepted
 *  again in the store (a leaf committed by the broker meanwhile); with
 *  end_read, cv_audit_end_read between. */
static void read_around_a_commit(rig_t *rig, bool end_read, int *before, int *after)
{
    cv_error_t err = {0};
    sqlite3 *db = cv_audit_open_readonly(rig->dir, &err);
    assert_non_null(db);
    assert_int_equal(cv_audit_find_report(db, "R-1", NULL, count_leaf, before, &err), 1);
    assert_int_equal(sqlite3_get_autocommit(db), 0);
    if (end_read) {
        cv_audit_end_read(db);
        assert_int_not_equal(sqlite3_get_autocommit(db), 0);
    }
    cv_tlog_t *log = cv_tlog_open(rig->db, rig->signer, &err);
    assert_non_null(log);
    append_leaf(rig, log, 1); /* R-1 again */
    cv_tlog_destroy(&log);
    assert_true(cv_audit_find_report(db, "R-1", NULL, count_leaf, after, &err) >= 1);
    sqlite3_close(db);
}

/*  A command's store, opened read-only, is read as it was at the first
 *  read: a leaf committed after it is not seen half way through. */
static void test_one_moment(void **state)
{
    int before = 0, after = 0;
    read_around_a_commit(*state, false, &before, &after);
    assert_int_equal(after, before);
}

/*  cv_audit_end_read lets the snapshot go (sample and summary call it
 *  before they print): the next read is of the log as it is then. */
static void test_end_read(void **state)
{
    int before = 0, after = 0;
    read_around_a_commit(*state, true, &before, &after);
    assert_int_equal(after, before + 1);
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

typedef struct {
    const char *verb, *options;
} command_t;

/*  Each of n commands fails as expect_said says. */
static void expect_all_said(rig_t *rig, const command_t *commands, size_t n, const char *expected)
{
    for (size_t i = 0; i < n; i++)
        expect_said(rig, commands[i].verb, commands[i].options, expected);
}

/*  The note of the checkpoint at size 8 stored in the row of size 20 (the
 *  last): every command that reads that row refuses it, saying why (a
 *  sample seeded by it would be drawn from the size-8 tree's root). */
static void test_moved_note_refused(void **state)
{
    rig_t *rig = *state;
    exec_sql(rig, "UPDATE tlog_checkpoints SET note = (SELECT note FROM tlog_checkpoints"
                  " WHERE size = 8) WHERE size = 20");
    static const command_t readers[] = {
        {"prove", "--index 12"},     {"prove", "--index 12 --checkpoint 20"},
        {"consistency", "16 20"},    {"checkpoint", ""},
        {"checkpoint", "--size 20"}, {"sample", "--count 3 --seed 20"},
        {"sample", "--count 3"},     {"verify", ""},
    };
    expect_all_said(rig, readers, sizeof readers / sizeof *readers,
                    "checkpoint at size 20: stored under that size, it says size 8");
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

/* ------------------------------------------------------------------------ */
/*  What reading a crafted store may cost.                                  */

/*  The commands that read leaves 0 to 19, and those that read
 *  checkpoints alone. */
static const command_t leaf_readers[] = {
    {"verify", ""},         {"trace", "R-1"},        {"prove", "--report R-1"},
    {"prove", "--index 1"}, {"sample", "--count 3"}, {"summary", ""},
};
static const command_t checkpoint_readers[] = {{"checkpoint", ""}, {"consistency", "8 16"}};

static void expect_every_reader_refuses(rig_t *rig, const char *expected)
{
    expect_all_said(rig, leaf_readers, sizeof leaf_readers / sizeof *leaf_readers, expected);
    expect_all_said(rig, checkpoint_readers, sizeof checkpoint_readers / sizeof *checkpoint_readers,
                    expected);
}

/*  tlog_leaves remade with a leaf's bytes a generated column: each row
 *  would cost what its n says, however small the store. */
static void test_leaves_generated(void **state)
{
    rig_t *rig = *state;
    exec_sql(rig, "DROP TABLE tlog_leaves;"
                  "CREATE TABLE tlog_leaves(idx INTEGER PRIMARY KEY, n INTEGER,"
                  "  data BLOB GENERATED ALWAYS AS (zeroblob(n)) VIRTUAL);"
                  "WITH RECURSIVE i(idx) AS (SELECT 0 UNION ALL SELECT idx + 1 FROM i"
                  "  WHERE idx < 22) INSERT INTO tlog_leaves(idx, n) SELECT idx, 1 << 24 FROM i");
    expect_every_reader_refuses(rig, "tlog_leaves is not the table caveat makes");
}

/*  tlog_checkpoints a view: not the log's table either. */
static void test_checkpoints_view(void **state)
{
    rig_t *rig = *state;
    exec_sql(rig, "DROP TABLE tlog_checkpoints;"
                  "CREATE VIEW tlog_checkpoints AS SELECT 8 AS size, 'x' AS note");
    expect_every_reader_refuses(rig, "tlog_checkpoints is not the table caveat makes");
}

/*  An index on the leaves, with statistics that make SQLite read it in
 *  place of the table: its rows could be other leaves than the table's. */
static void test_leaves_indexed(void **state)
{
    rig_t *rig = *state;
    exec_sql(rig, "CREATE INDEX tlog_shadow ON tlog_leaves(idx, data); ANALYZE;");
    expect_every_reader_refuses(rig, "tlog_shadow is not the table caveat makes");
}

/*  A leaf longer than CV_AUDIT_LEAF_MAX is not read... */
static void test_leaf_too_long_read(void **state)
{
    rig_t *rig = *state;
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE tlog_leaves SET data = zeroblob(%d) WHERE idx = 5",
             CV_AUDIT_LEAF_MAX + 1);
    exec_sql(rig, sql);
    expect_all_said(rig, leaf_readers, sizeof leaf_readers / sizeof *leaf_readers,
                    "string or blob too big");
}

/*  ...nor written: the log would hold a leaf its readers refuse. */
static void test_leaf_too_long_written(void **state)
{
    rig_t *rig = *state;
    size_t len = (size_t)CV_AUDIT_LEAF_MAX + 1;
    char *leaf = calloc(1, len);
    assert_non_null(leaf);
    cv_error_t err = {0};
    cv_tlog_t *log = cv_tlog_open(rig->db, rig->signer, &err);
    assert_non_null(log);
    exec_sql(rig, "BEGIN");
    assert_false(cv_tlog_append(log, leaf, len, NULL, &err));
    assert_non_null(strstr(err.msg, "too large"));
    assert_true(cv_tlog_append(log, leaf, len - 1, NULL, &err));
    exec_sql(rig, "ROLLBACK");
    cv_tlog_destroy(&log);
    free(leaf);
}

/*  A running process's peak memory since it started its program (VmHWM),
 *  in kB; 0 once it has exited. */
static long peak_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *status = fopen(path, "r");
    long kb = 0;
    while (status && fgets(line, sizeof line, status))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (status)
        fclose(status);
    return kb;
}

/*  `caveat audit verify DIR`'s peak memory, in kB: looked at while it runs
 *  (a child's rusage, and its VmHWM before it runs caveat, count the
 *  memory of the test it was forked from). */
static long verify_peak_kb(const char *dir)
{
    int exec_seen[2]; /* closed by the child's exec: from then on, its peak is its own */
    assert_int_equal(pipe2(exec_seen, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1), dup2(null, 2);
        execl(CAVEAT_CLI, "caveat", "audit", "verify", dir, (char *)NULL);
        _exit(127);
    }
    close(exec_seen[1]);
    char byte;
    assert_int_equal(read(exec_seen[0], &byte, 1), 0);
    close(exec_seen[0]);
    int status;
    long peak = 0, now;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if ((now = peak_kb(pid)) > peak)
            peak = now;
        usleep(1000);
    }
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 127);
    return peak;
}

/*  Large leaves are read a few at a time: 64 of 2 MB take verify to well
 *  under their 128 MB more than an empty run (about 45 MB more with the
 *  sanitizers; 300 MB when all were read at once). */
static void test_large_leaves_bounded(void **state)
{
    (void)state;
    rig_t *rig = rig_new(64, 0, 0);
    exec_sql(rig, "UPDATE tlog_leaves SET data = zeroblob(2 * 1024 * 1024)");
    long small = verify_peak_kb("/dev/null"), large = verify_peak_kb(rig->dir);
    if (large - small > 96 * 1024)
        fail_msg("verify of 128 MB of leaves peaked at %ld kB, %ld kB more than with none", large,
                 large - small);
    rig_destroy(&rig);
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
        cmocka_unit_test_setup_teardown(test_leaves_generated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaves_indexed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf_too_long_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf_too_long_written, setup, teardown),
        cmocka_unit_test(test_large_leaves_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
