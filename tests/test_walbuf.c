/*  WAL frames written a transaction at a time (broker/cv_walbuf.h): a
 *  commit reaches the file in a call or two and before it returns, so that
 *  another connection reads it at once; a write that fails fails the
 *  commit and leaves the store as it was; pages spilled mid-transaction
 *  read back and roll back; the WAL restarts after a checkpoint; a full
 *  disk met anywhere rolls the whole transaction back and never keeps a
 *  lock; a savepoint undone over the WAL's restart; connections to one
 *  database keep their own logs. What other connections read is checked
 *  live and as a crash would leave it (the files copied without their
 *  shared memory, so SQLite recovers the log from its frames' checksums).
 *
 *  Each test writes through the VFS as the broker's connection does (WAL,
 *  synchronous=NORMAL) and reads through SQLite's default VFS, as the
 *  broker's checkpointer, backups and `caveat audit` do.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cv_walbuf.h"

#define ROW_BYTES 2000

static int version; /* the rows' (row_bytes) */

/*  SQLite's default VFS with a switch that makes writes to WAL files fail
 *  as on a full disk. main() makes it the default before the walbuf VFS
 *  is first used, so that the walbuf VFS wraps it. */
static sqlite3_vfs faulty_vfs, *unix_vfs;
static const sqlite3_io_methods *unix_wal_methods;
static sqlite3_io_methods faulty_wal_methods;
static bool disk_full;

static int faulty_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 offset)
{
    return disk_full ? SQLITE_FULL : unix_wal_methods->xWrite(file, data, amt, offset);
}

static int faulty_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                       int *out)
{
    (void)vfs;
    int rc = unix_vfs->xOpen(unix_vfs, name, file, flags, out);
    if (rc == SQLITE_OK && file->pMethods && (flags & SQLITE_OPEN_WAL)) {
        unix_wal_methods = file->pMethods;
        faulty_wal_methods = *file->pMethods;
        faulty_wal_methods.xWrite = faulty_write;
        file->pMethods = &faulty_wal_methods;
    }
    return rc;
}

static void install_faulty_vfs(void)
{
    unix_vfs = sqlite3_vfs_find(NULL);
    faulty_vfs = *unix_vfs;
    faulty_vfs.zName = "caveat-test-faulty";
    faulty_vfs.xOpen = faulty_open;
    if (sqlite3_vfs_register(&faulty_vfs, 1) != SQLITE_OK)
        abort();
}

typedef struct {
    char dir[64];
    char path[96];
    sqlite3 *db;             /* through the VFS */
    struct rlimit file_size; /* the process's, put back after each test */
    void (*on_too_big)(int); /* SIGXFSZ's handler, likewise */
} rig_t;

static int rig_setup(void **state)
{
    rig_t *r = calloc(1, sizeof *r);
    assert_non_null(r);
    snprintf(r->dir, sizeof r->dir, "/tmp/caveat-walbuf-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    snprintf(r->path, sizeof r->path, "%s/t.db", r->dir);
    version = 0;
    disk_full = false;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &r->file_size), 0);
    r->on_too_big = signal(SIGXFSZ, SIG_IGN);
    signal(SIGXFSZ, r->on_too_big);
    assert_non_null(cv_walbuf_vfs());
    assert_int_equal(sqlite3_open_v2(r->path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     cv_walbuf_vfs()),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(r->db,
                                  "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                  " PRAGMA wal_autocheckpoint=0;"
                                  " CREATE TABLE t(n INTEGER PRIMARY KEY, b BLOB NOT NULL);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    *state = r;
    return 0;
}

static int rig_teardown(void **state)
{
    rig_t *r = *state;
    setrlimit(RLIMIT_FSIZE, &r->file_size); /* a failed test may have left it low */
    signal(SIGXFSZ, r->on_too_big);
    sqlite3_close(r->db);
    const char *names[] = {"t.db",          "t.db-wal",      "t.db-shm",
                           "direct.db",     "direct.db-wal", "copy/t.db",
                           "copy/t.db-wal", "copy/t.db-shm", "copy"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char file[128];
        snprintf(file, sizeof file, "%s/%s", r->dir, names[i]);
        if (unlink(file) != 0)
            rmdir(file);
    }
    rmdir(r->dir);
    free(r);
    return 0;
}

/*  Row n's bytes: they say which row they are, and which version (0:
 *  as inserted; update_rows writes others). */
static void row_bytes(int n, unsigned char *out)
{
    for (int i = 0; i < ROW_BYTES; i++)
        out[i] = (unsigned char)(n * 31 + i * 7 + version * 13);
}

static int write_rows(sqlite3 *db, const char *sql, int first, int count)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    unsigned char bytes[ROW_BYTES];
    for (int n = first; rc == SQLITE_OK && n < first + count; n++) {
        row_bytes(n, bytes);
        sqlite3_bind_int(s, 1, n);
        sqlite3_bind_blob(s, 2, bytes, ROW_BYTES, SQLITE_TRANSIENT);
        rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    return rc;
}

static int insert_rows(sqlite3 *db, int first, int count)
{
    return write_rows(db, "INSERT INTO t(n, b) VALUES (?, ?)", first, count);
}

/*  Rows [0, count) in the next version. */
static int update_rows(sqlite3 *db, int count)
{
    version++;
    return write_rows(db, "UPDATE t SET n = ?1, b = ?2 WHERE n = ?1", 0, count);
}

/*  Opens a transaction on db that adds rows 5 to 44: 20 pages against a
 *  cache of 10, so that some are spilled into the log and still held in
 *  the buffer. */
static void begin_with_spilled_frames(sqlite3 *db)
{
    assert_int_equal(sqlite3_exec(db, "PRAGMA cache_size=10; BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(insert_rows(db, 5, 40), SQLITE_OK);
}

/*  Rows [first, first + count) are there with their bytes, and nothing
 *  else, read through db. */
static void assert_rows(sqlite3 *db, int first, int count)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT n, b FROM t ORDER BY n", -1, &s, NULL),
                     SQLITE_OK);
    unsigned char bytes[ROW_BYTES];
    int seen = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        int n = sqlite3_column_int(s, 0);
        assert_int_equal(n, first + seen);
        row_bytes(n, bytes);
        assert_int_equal(sqlite3_column_bytes(s, 1), ROW_BYTES);
        assert_memory_equal(sqlite3_column_blob(s, 1), bytes, ROW_BYTES);
        seen++;
    }
    assert_int_equal(sqlite3_errcode(db), SQLITE_DONE);
    sqlite3_finalize(s);
    assert_int_equal(seen, count);
}

static void assert_intact(const char *path, int first, int count)
{
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open_v2(path, &other, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_rows(other, first, count);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(other, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    sqlite3_close(other);
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/*  What another connection, through the default VFS, finds; and what a
 *  crash now would leave: the database and its log copied without their
 *  shared memory, which SQLite then rebuilds from the log's frames. */
static void assert_rows_elsewhere(const rig_t *r, int first, int count)
{
    assert_intact(r->path, first, count);
    char dir[96], db[128], wal[160], shm[160];
    snprintf(dir, sizeof dir, "%s/copy", r->dir);
    snprintf(db, sizeof db, "%s/t.db", dir);
    snprintf(wal, sizeof wal, "%s-wal", db);
    snprintf(shm, sizeof shm, "%s-shm", db);
    mkdir(dir, 0700);
    unlink(shm);
    copy_file(r->path, db);
    char from[160];
    snprintf(from, sizeof from, "%s-wal", r->path);
    copy_file(from, wal);
    assert_intact(db, first, count);
}

static void test_a_commit_is_one_write_and_read_at_once_elsewhere(void **state)
{
    rig_t *r = *state;
    for (int round = 0; round < 3; round++) {
        cv_walbuf_counts_t before = cv_walbuf_counts();
        assert_int_equal(sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(insert_rows(r->db, round * 40, 40), SQLITE_OK); /* 80 KB: ~22 pages */
        assert_int_equal(sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
        cv_walbuf_counts_t after = cv_walbuf_counts();
        /* two calls a page from SQLite; one or two writes made (the first
         * round also writes the WAL's header) */
        assert_true(after.given - before.given >= 40);
        assert_in_range(after.made - before.made, 1, 2);
        assert_rows_elsewhere(r, 0, (round + 1) * 40);
    }
}

static void test_a_big_commit_is_written_in_buffers(void **state)
{
    rig_t *r = *state;
    cv_walbuf_counts_t before = cv_walbuf_counts();
    assert_int_equal(sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(insert_rows(r->db, 0, 1000), SQLITE_OK); /* 2 MB */
    assert_int_equal(sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    cv_walbuf_counts_t after = cv_walbuf_counts();
    uint64_t given = after.given - before.given, made = after.made - before.made;
    assert_true(given >= 1000);
    assert_true(made >= 2000 * 1000 / CV_WALBUF_BYTES && made <= given / 20);
    assert_rows_elsewhere(r, 0, 1000);
}

/*  A write the file refuses (here: over the process's file size limit,
 *  as a full disk would) fails the COMMIT that made it, not a later call,
 *  and the store keeps what it had; once the file takes writes again, the
 *  connection goes on. */
static void test_a_failed_write_fails_its_commit_and_keeps_the_store(void **state)
{
    rig_t *r = *state;
    assert_int_equal(insert_rows(r->db, 0, 10), SQLITE_OK);
    char wal[128];
    snprintf(wal, sizeof wal, "%s-wal", r->path);
    struct stat st;
    assert_int_equal(stat(wal, &st), 0);
    signal(SIGXFSZ, SIG_IGN); /* the write fails with EFBIG */
    struct rlimit low = {(rlim_t)st.st_size + 8192, r->file_size.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &low), 0);

    assert_int_equal(sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    int rc = insert_rows(r->db, 10, 30); /* 60 KB, all in the buffer until the commit */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
    assert_int_not_equal(rc, SQLITE_OK);
    sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);

    assert_int_equal(setrlimit(RLIMIT_FSIZE, &r->file_size), 0);
    signal(SIGXFSZ, r->on_too_big);
    assert_rows_elsewhere(r, 0, 10);
    assert_rows(r->db, 0, 10);
    assert_int_equal(insert_rows(r->db, 10, 30), SQLITE_OK);
    assert_rows_elsewhere(r, 0, 40);
}

/*  A transaction bigger than the page cache spills pages into the WAL
 *  before its commit: the connection reads them back from there, and a
 *  rollback abandons them. */
static void test_spilled_pages_read_back_and_roll_back(void **state)
{
    rig_t *r = *state;
    assert_int_equal(insert_rows(r->db, 0, 5), SQLITE_OK);
    begin_with_spilled_frames(r->db);
    assert_rows(r->db, 0, 45); /* in the transaction, its spilled pages included */
    assert_int_equal(insert_rows(r->db, 45, 260), SQLITE_OK); /* and past the buffer */
    assert_rows(r->db, 0, 305);
    assert_int_equal(sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_rows(r->db, 0, 5);
    assert_rows_elsewhere(r, 0, 5);
    /* pages spilled and changed again are written again over their
     * frames, behind the buffer's end */
    assert_int_equal(sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(insert_rows(r->db, 5, 20), SQLITE_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(update_rows(r->db, 25), SQLITE_OK);
    assert_rows(r->db, 0, 25);
    assert_int_equal(sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_rows_elsewhere(r, 0, 25);
    version = 0;
}

/*  Another connection checkpoints and truncates the WAL (as the broker's
 *  checkpointer does); the next commit starts the WAL again from its
 *  header, at offset 0. */
static void test_the_wal_starts_again_after_a_checkpoint(void **state)
{
    rig_t *r = *state;
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open_v2(r->path, &other, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    for (int round = 0; round < 4; round++) {
        assert_int_equal(insert_rows(r->db, round * 20, 20), SQLITE_OK);
        assert_rows(other, 0, (round + 1) * 20); /* other now knows the WAL */
        int log = -1, done = -1;
        assert_int_equal(
            sqlite3_wal_checkpoint_v2(other, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done),
            SQLITE_OK);
        assert_int_equal(log, 0); /* truncated: the next write starts it again */
        assert_rows(other, 0, (round + 1) * 20);
    }
    sqlite3_close(other);
    assert_rows_elsewhere(r, 0, 80);
}

/*  A WAL file of the VFS, written directly: a frame whose header names
 *  the database's size (a commit's) reaches the file once its page has
 *  been given, whether header and page come in two calls (as SQLite 3.40
 *  writes them) or in one; other frames wait in the buffer. */
static void test_a_commit_frame_in_one_call_or_two_is_written_at_once(void **state)
{
    rig_t *r = *state;
    sqlite3_vfs *vfs = sqlite3_vfs_find(cv_walbuf_vfs());
    assert_non_null(vfs);
    sqlite3_file *file = calloc(1, (size_t)vfs->szOsFile);
    assert_non_null(file);
    char db[128], path[136];
    snprintf(db, sizeof db, "%s/direct.db", r->dir); /* a WAL takes its database's mode */
    snprintf(path, sizeof path, "%s-wal", db);
    FILE *made = fopen(db, "w");
    assert_non_null(made);
    fclose(made);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_WAL;
    assert_int_equal(vfs->xOpen(vfs, path, file, flags, &flags), SQLITE_OK);
    unsigned char frame[24 + 4096] = {0}, commit[24 + 4096] = {0};
    commit[7] = 9; /* the database's size in pages after the commit */
    sqlite3_int64 at = 32;
    cv_walbuf_counts_t before = cv_walbuf_counts();
    for (int i = 0; i < 3; i++, at += sizeof frame) /* other frames: held */
        assert_int_equal(file->pMethods->xWrite(file, frame, sizeof frame, at), SQLITE_OK);
    assert_int_equal(cv_walbuf_counts().made, before.made);
    assert_int_equal(file->pMethods->xWrite(file, commit, 24, at), SQLITE_OK);
    assert_int_equal(cv_walbuf_counts().made, before.made); /* its page is to come */
    assert_int_equal(file->pMethods->xWrite(file, commit + 24, 4096, at + 24), SQLITE_OK);
    assert_int_equal(cv_walbuf_counts().made, before.made + 1);
    at += sizeof commit;
    assert_int_equal(file->pMethods->xWrite(file, commit, sizeof commit, at), SQLITE_OK);
    assert_int_equal(cv_walbuf_counts().made, before.made + 2);
    at += sizeof commit;
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, at); /* all of it in the file */
    assert_int_equal(file->pMethods->xClose(file), SQLITE_OK);
    free(file);
    unlink(path);
    unlink(db);
}

/*  A full disk met when a read empties the buffer of spilled frames:
 *  SQLite would take SQLITE_FULL from a read as the statement's failure
 *  alone and commit the rest, frames lost with it; the whole transaction
 *  is rolled back instead. */
static void test_a_full_disk_met_on_a_read_rolls_the_transaction_back(void **state)
{
    rig_t *r = *state;
    assert_int_equal(insert_rows(r->db, 0, 5), SQLITE_OK);
    begin_with_spilled_frames(r->db); /* spilled frames held */
    disk_full = true;
    int rc = sqlite3_exec(r->db, "INSERT INTO t(n, b) SELECT n + 100000, b FROM t WHERE n < 3",
                          NULL, NULL, NULL);
    disk_full = false;
    assert_int_not_equal(rc, SQLITE_OK);
    sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL); /* nothing to commit, or refused */
    sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    assert_rows(r->db, 0, 5);
    assert_rows_elsewhere(r, 0, 5);
    assert_int_equal(insert_rows(r->db, 5, 40), SQLITE_OK);
    assert_rows_elsewhere(r, 0, 45);
}

/*  A transaction rolled back while the disk is full: the write lock it
 *  held is let go, so other connections write on. */
static void test_a_rollback_on_a_full_disk_lets_go_of_the_lock(void **state)
{
    rig_t *r = *state;
    assert_int_equal(insert_rows(r->db, 0, 5), SQLITE_OK);
    /* an empty log: the rollback reads no page back from it */
    assert_int_equal(sqlite3_wal_checkpoint_v2(r->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL),
                     SQLITE_OK);
    begin_with_spilled_frames(r->db);
    disk_full = true;
    sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    disk_full = false;
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open_v2(r->path, &other, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(insert_rows(other, 5, 1), SQLITE_OK); /* SQLITE_BUSY if the lock stayed */
    sqlite3_close(other);
    assert_int_equal(insert_rows(r->db, 6, 10), SQLITE_OK);
    assert_rows_elsewhere(r, 0, 16);
}

/*  A savepoint taken before another connection's checkpoint let the log
 *  start again: undoing it while spilled frames are held makes the next
 *  frames start the log again from its header. With synchronous=OFF (the
 *  broker's --sync off) no sync empties the buffer in between. */
static void test_a_savepoint_undone_over_the_log_starting_again(void **state)
{
    rig_t *r = *state;
    assert_int_equal(sqlite3_exec(r->db, "PRAGMA synchronous=OFF", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(insert_rows(r->db, 0, 5), SQLITE_OK);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open_v2(r->path, &other, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_rows(other, 0, 5);
    assert_int_equal(sqlite3_wal_checkpoint_v2(other, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(sqlite3_exec(r->db, "PRAGMA cache_size=10", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(insert_rows(r->db, 5, 1), SQLITE_OK);
    assert_int_equal(sqlite3_exec(r->db, "SAVEPOINT sp", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(insert_rows(r->db, 6, 40), SQLITE_OK); /* the first spill starts the log */
    assert_int_equal(sqlite3_exec(r->db, "ROLLBACK TO sp; RELEASE sp", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(insert_rows(r->db, 6, 40), SQLITE_OK);
    assert_int_equal(sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_rows(r->db, 0, 46);
    assert_rows_elsewhere(r, 0, 46);
}

/*  Three connections to one database through the VFS: each WAL buffer is
 *  emptied by its own connection's calls. One rolls back frames it had
 *  spilled; another commits over the same place in the log; the first
 *  then reads. */
static void test_connections_to_one_database_keep_their_own_logs(void **state)
{
    rig_t *r = *state;
    assert_int_equal(insert_rows(r->db, 0, 5), SQLITE_OK);
    sqlite3 *b = NULL, *c = NULL;
    assert_int_equal(sqlite3_open_v2(r->path, &b, SQLITE_OPEN_READWRITE, cv_walbuf_vfs()),
                     SQLITE_OK);
    assert_int_equal(sqlite3_open_v2(r->path, &c, SQLITE_OPEN_READWRITE, cv_walbuf_vfs()),
                     SQLITE_OK);
    /* an empty log: b's rollback reads no page back from it */
    assert_int_equal(sqlite3_wal_checkpoint_v2(r->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL),
                     SQLITE_OK);
    assert_rows(b, 0, 5); /* the logs opened after both databases, b's first */
    assert_rows(c, 0, 5);
    begin_with_spilled_frames(b);
    assert_int_equal(sqlite3_exec(b, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(insert_rows(r->db, 5, 100), SQLITE_OK);
    assert_int_equal(sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_rows(b, 0, 105);
    sqlite3_close(b);
    sqlite3_close(c);
    assert_rows_elsewhere(r, 0, 105);
}

/*  The writer's side of the test below: commits of every size, the log
 *  started again whenever a checkpoint let it. */
typedef struct {
    sqlite3 *db;
    int rows;
    atomic_bool done;
} writer_t;

static void *writer_commits(void *arg)
{
    writer_t *w = arg;
    for (int i = 0; i < 120; i++) {
        /* now and then every page again: a long commit, then short ones,
         * so that a log started again leaves old frames past its end */
        if (i % 10 == 0 && update_rows(w->db, w->rows) != SQLITE_OK)
            break;
        if (insert_rows(w->db, w->rows, 1 + i % 5) != SQLITE_OK)
            break;
        w->rows += 1 + i % 5;
    }
    atomic_store(&w->done, true);
    return NULL;
}

/*  A checkpointer reading the log ahead (cv_walbuf_ahead_vfs) copies what
 *  was committed, and only that, while a writer commits beside it in
 *  another thread and starts the log again over its old frames whenever
 *  a checkpoint has copied them all: what was read ahead before must not
 *  be taken for the frames now there. The reads ahead serve most of what
 *  the checkpoints ask for. */
static void test_a_checkpointer_reading_ahead_copies_what_was_committed(void **state)
{
    rig_t *r = *state;
    sqlite3 *checkpointer = NULL;
    assert_non_null(cv_walbuf_ahead_vfs());
    assert_int_equal(
        sqlite3_open_v2(r->path, &checkpointer, SQLITE_OPEN_READWRITE, cv_walbuf_ahead_vfs()),
        SQLITE_OK);
    /* as the broker's checkpointer does (cv_syncer.c); a statement run
     * also opens the connection's log, which a checkpoint alone does not */
    assert_int_equal(sqlite3_exec(checkpointer, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_busy_timeout(r->db, 5000);
    cv_walbuf_counts_t before = cv_walbuf_counts();
    writer_t w = {r->db, 0, false};
    pthread_t writer;
    assert_int_equal(pthread_create(&writer, NULL, writer_commits, &w), 0);
    for (int i = 0; !atomic_load(&w.done); i++) {
        /* RESTART: copied whole, the next commit writes the log from its
         * start, and the frames after it stay in the file */
        int mode = i % 4 == 3 ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE;
        int rc = sqlite3_wal_checkpoint_v2(checkpointer, NULL, mode, NULL, NULL);
        assert_true(rc == SQLITE_OK || rc == SQLITE_BUSY);
        usleep(100);
    }
    assert_int_equal(pthread_join(writer, NULL), 0);
    assert_int_equal(
        sqlite3_wal_checkpoint_v2(checkpointer, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL),
        SQLITE_OK);
    cv_walbuf_counts_t after = cv_walbuf_counts();
    sqlite3_close(checkpointer);
    assert_true(after.reads_given - before.reads_given > 100);
    assert_true(4 * (after.reads_made - before.reads_made) <
                after.reads_given - before.reads_given);
    /* the database file alone, its log empty: every row as last written */
    assert_rows_elsewhere(r, 0, w.rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_commit_is_one_write_and_read_at_once_elsewhere,
                                        rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_a_big_commit_is_written_in_buffers, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_write_fails_its_commit_and_keeps_the_store,
                                        rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_spilled_pages_read_back_and_roll_back, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_the_wal_starts_again_after_a_checkpoint, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_a_commit_frame_in_one_call_or_two_is_written_at_once,
                                        rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_a_full_disk_met_on_a_read_rolls_the_transaction_back,
                                        rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_a_rollback_on_a_full_disk_lets_go_of_the_lock,
                                        rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_a_savepoint_undone_over_the_log_starting_again,
                                        rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_connections_to_one_database_keep_their_own_logs,
                                        rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_a_checkpointer_reading_ahead_copies_what_was_committed,
                                        rig_setup, rig_teardown),
    };
    install_faulty_vfs(); /* before the walbuf VFS is first used: it wraps the default */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
