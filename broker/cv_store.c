/*  cv_store.c: the broker's durable store over SQLite in WAL mode.
 *
 *  The broker acknowledges a publish only after the transaction that
 *  stored it has committed; with CV_SYNC_FULL that commit is fsynced. All
 *  statements are prepared once and reused.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cv_alloc.h"
#include "cv_store.h"
#include "cv_syncer.h"
#include "cv_walbuf.h"

#define STORE_FORMAT "caveat-store"
/*  Version 5 is version 4 with SHA-256 checksums and digests in place of
 *  BLAKE2b-256. Stores of versions 2 to 4 keep BLAKE2b: a digest of a
 *  report as its originator sent it cannot be taken again, and a version
 *  of the broker before 5 refuses a store of 5 rather than read every
 *  body in it as corrupt. */
#define STORE_VERSION         5
#define STORE_VERSION_BLAKE2B 4 /* the last whose checksums are BLAKE2b-256 */

/*  Reports are named by (originator, id): one agency's ids say nothing
 *  about another's, so that no agency can learn of, or take, another's.
 *  The unique index leads with id, so that it also finds a report by its
 *  id alone, as feedback names it (stores made before that keep an index
 *  of their own for it: add_report_id_index).
 *  digest is the report as its originator sent it (a retry is the same
 *  report when its digest is), checksum the body as stored (read back, a
 *  body that differs from it is corrupt). AUTOINCREMENT: a rowid is never
 *  given twice, even after retention purged the newest reports, because
 *  queues and pumps name reports by it. */
#define REPORTS_TABLE(name)                                                                        \
    "CREATE TABLE " name "(n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL,"                 \
    "  originator TEXT NOT NULL, category TEXT NOT NULL,"                                          \
    "  created INTEGER NOT NULL, accepted INTEGER NOT NULL,"                                       \
    "  digest BLOB NOT NULL, checksum BLOB NOT NULL, body BLOB NOT NULL,"                          \
    "  UNIQUE(id, originator));"

/*  created: unix seconds, UTC (what retention counts from); accepted: unix
 *  milliseconds, UTC. */
#define REPORTS_AGE_INDEX "CREATE INDEX reports_age ON reports(category, created);"

/*  Reports moved aside (a body that no longer matches its checksum), kept
 *  for whoever looks into it; report is the rowid the report had. */
#define QUARANTINE_TABLE                                                                           \
    "CREATE TABLE quarantine(report INTEGER PRIMARY KEY, id TEXT NOT NULL,"                        \
    "  originator TEXT NOT NULL, category TEXT NOT NULL, body BLOB NOT NULL,"                      \
    "  reason TEXT NOT NULL,"                                                                      \
    "  quarantined TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));"

/*  Format 4: review decisions (MOPI). A reviewed report is kept until
 *  retain_until (unix seconds), whatever its category's period says,
 *  and then purged; a disposal is a review due at once. reviewer is the
 *  administrator's agency, decided unix seconds. */
#define REVIEWS_TABLE                                                                              \
    "CREATE TABLE reviews(report INTEGER PRIMARY KEY, retain_until INTEGER NOT NULL,"              \
    "  reason TEXT NOT NULL, reviewer TEXT NOT NULL, decided INTEGER NOT NULL);"

static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);" REPORTS_TABLE("reports")
        REPORTS_AGE_INDEX QUARANTINE_TABLE REVIEWS_TABLE
    /* what retention removed, kept for oversight after the report is gone */
    "CREATE TABLE purges(report_id TEXT NOT NULL, originator TEXT NOT NULL,"
    "  category TEXT NOT NULL, created INTEGER NOT NULL, rule TEXT NOT NULL,"
    "  purged TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));"
    /* one row per recipient queue: its highest seq given and acknowledged,
     * and per priority the report rowid up to which everything routed to
     * it was delivered and acknowledged, or dropped */
    "CREATE TABLE queues(id INTEGER PRIMARY KEY, agency TEXT NOT NULL, feed TEXT NOT NULL,"
    "  last_seq INTEGER NOT NULL DEFAULT 0, acked_seq INTEGER NOT NULL DEFAULT 0,"
    "  done0 INTEGER NOT NULL DEFAULT 0, done1 INTEGER NOT NULL DEFAULT 0,"
    "  done2 INTEGER NOT NULL DEFAULT 0, UNIQUE(agency, feed));"
    /* where each report was routed when accepted: one row per report,
     * however many recipients (queue ids, 4 bytes little-endian each) */
    "CREATE TABLE routes(report INTEGER PRIMARY KEY, priority INTEGER NOT NULL,"
    "  queues BLOB NOT NULL);"
    /* deliveries given seqs and not yet acknowledged: one row per pump,
     * seqs first..last for the reports listed (rowids, 8 bytes each) */
    "CREATE TABLE sent(queue INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,"
    "  reports BLOB NOT NULL, PRIMARY KEY(queue, first)) WITHOUT ROWID;";

/*  Format 2 to 3: reports named by (originator, id) instead of id alone,
 *  with digest and checksum (the body's, for rows stored before digests
 *  existed), and the quarantine table. SQLite cannot drop a UNIQUE
 *  constraint in place: the table is copied. The highest rowid ever given
 *  is carried over, or the copy would give a purged report's again. */
static const char upgrade_from_2_sql[] = "BEGIN IMMEDIATE;" REPORTS_TABLE(
    "reports_v3") "INSERT INTO reports_v3(n, id, originator,"
                  " category, created, accepted, digest,"
                  " checksum, body)"
                  " SELECT n, id, originator, category, created, accepted, caveat_blake2b(body),"
                  " caveat_blake2b(body), body FROM reports ORDER BY n;"
                  "DELETE FROM sqlite_sequence WHERE name = 'reports_v3';"
                  "INSERT INTO sqlite_sequence(name, seq)"
                  " SELECT 'reports_v3', seq FROM sqlite_sequence WHERE name = 'reports';"
                  "DROP TABLE reports;"
                  "ALTER TABLE reports_v3 RENAME TO reports;" REPORTS_AGE_INDEX QUARANTINE_TABLE
                  "UPDATE meta SET value = '3' WHERE key = 'version';"
                  "COMMIT;";

static const char upgrade_from_3_sql[] =
    "BEGIN IMMEDIATE;" REVIEWS_TABLE "UPDATE meta SET value = '4' WHERE key = 'version';"
    "COMMIT;";

enum {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_UNDO,
    S_PUT,
    S_PUT_BATCH,
    S_NEWEST,
    S_GET,
    S_GET_BODY,
    S_QUEUE_ID,
    S_QUEUE_NEW,
    S_ROUTE,
    S_ROUTE_BATCH,
    S_ROUTE_GET,
    S_ROUTE_SET,
    S_SENT,
    S_SAVE_QUEUE,
    S_FORGET_SENT,
    S_LOAD_QUEUES,
    S_LOAD_SENT,
    S_LOAD_ROUTES,
    S_MAX_REPORT,
    S_CATEGORIES,
    S_EXPIRED,
    S_EXPIRED_REVIEWED,
    S_FIND_REPORT,
    S_REVIEW_SET,
    S_DELETE_REVIEW,
    S_META_GET,
    S_META_SET,
    S_PURGE_RECORD,
    S_DELETE_ROUTE,
    S_DELETE_REPORT,
    S_QUARANTINE,
    S_IN_QUARANTINE,
    S_QUARANTINED,
    S_AGENCY_QUEUES,
    S_ROUTES_OF_ID,
    S_COUNT
};

#define PUT_ROW     "(?, ?, ?, ?, ?, ?, ?, ?)"
#define PUT_ROWS4   PUT_ROW ", " PUT_ROW ", " PUT_ROW ", " PUT_ROW
#define PUT_ROWS    PUT_ROWS4 ", " PUT_ROWS4 ", " PUT_ROWS4 ", " PUT_ROWS4
#define ROUTE_ROW   "(?, ?, ?)"
#define ROUTE_ROWS4 ROUTE_ROW ", " ROUTE_ROW ", " ROUTE_ROW ", " ROUTE_ROW
#define ROUTE_ROWS  ROUTE_ROWS4 ", " ROUTE_ROWS4 ", " ROUTE_ROWS4 ", " ROUTE_ROWS4
_Static_assert(CV_PUT_BATCH == 16, "S_PUT_BATCH and S_ROUTE_BATCH hold 16 rows");

static const char *const statements[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT whole",
    [S_RELEASE] = "RELEASE whole",
    [S_UNDO] = "ROLLBACK TO whole",
    [S_PUT] = "INSERT INTO reports(id, originator, category, created, accepted, digest, checksum,"
              " body) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    /* CV_PUT_BATCH reports. OR IGNORE: a row the UNIQUE refuses (a retry,
     * an id taken) is left out and the rest go in, with no statement
     * journal (a copy of every page the statement changes, to take them
     * back). Not OR FAIL, which stops there: SQLite writes the table's
     * sqlite_sequence at the statement's end, so the rows kept would be
     * past it, and their rowids given again if they were purged first. */
    [S_PUT_BATCH] = "INSERT OR IGNORE INTO reports(id, originator, category, created, accepted,"
                    " digest, checksum, body) VALUES " PUT_ROWS,
    /* the nth newest report's rowid, from 0 */
    [S_NEWEST] = "SELECT n FROM reports ORDER BY n DESC LIMIT 1 OFFSET ?1",
    [S_GET] = "SELECT digest, n FROM reports WHERE originator = ?1 AND id = ?2",
    [S_GET_BODY] = "SELECT body, checksum, id, originator FROM reports WHERE n = ?1",
    [S_QUEUE_ID] = "SELECT id FROM queues WHERE agency = ?1 AND feed = ?2",
    [S_QUEUE_NEW] =
        "INSERT INTO queues(agency, feed, done0, done1, done2) VALUES(?1, ?2, ?3, ?3, ?3)",
    [S_ROUTE] = "INSERT INTO routes(report, priority, queues) VALUES(?1, ?2, ?3)",
    /* CV_PUT_BATCH routes. OR FAIL: a row refused leaves those before it
     * in, so SQLite keeps no statement journal; the turn rolls back. */
    [S_ROUTE_BATCH] = "INSERT OR FAIL INTO routes(report, priority, queues) VALUES " ROUTE_ROWS,
    [S_ROUTE_GET] = "SELECT queues FROM routes WHERE report = ?1",
    [S_ROUTE_SET] = "UPDATE routes SET queues = ?2 WHERE report = ?1",
    [S_SENT] = "INSERT INTO sent(queue, first, last, reports) VALUES(?1, ?2, ?3, ?4)",
    [S_SAVE_QUEUE] = "UPDATE queues SET last_seq = ?2, acked_seq = ?3, done0 = ?4, done1 = ?5,"
                     " done2 = ?6 WHERE id = ?1",
    [S_FORGET_SENT] = "DELETE FROM sent WHERE queue = ?1 AND last <= ?2",
    [S_LOAD_QUEUES] = "SELECT id, agency, feed, last_seq, acked_seq, done0, done1, done2"
                      " FROM queues ORDER BY id",
    [S_LOAD_SENT] = "SELECT queue, first, reports FROM sent ORDER BY queue, first",
    [S_LOAD_ROUTES] = "SELECT report, priority, queues FROM routes WHERE report > ?1"
                      " ORDER BY report",
    [S_MAX_REPORT] = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'reports'), 0)",
    /* one index seek per category, not a scan of every report (retention
     * runs at start, when the store may not be in the page cache) */
    [S_CATEGORIES] = "WITH RECURSIVE c(category) AS (SELECT min(category) FROM reports"
                     " UNION ALL SELECT (SELECT min(category) FROM reports"
                     " WHERE category > c.category) FROM c WHERE c.category IS NOT NULL)"
                     " SELECT category FROM c WHERE category IS NOT NULL",
    /* past its period counted from its creation and from its acceptance
     * too: a report made long ago but accepted now is not purged before
     * its recipients could fetch it */
    [S_EXPIRED] = "SELECT id, originator, created, n, category FROM reports WHERE category = ?1"
                  " AND created < ?2 AND accepted < ?2 * 1000"
                  " AND n NOT IN (SELECT report FROM reviews) ORDER BY created LIMIT ?3",
    /* a review decides instead of the category's period */
    [S_EXPIRED_REVIEWED] = "SELECT r.id, r.originator, r.created, r.n, r.category"
                           " FROM reviews v JOIN reports r ON r.n = v.report"
                           " WHERE v.retain_until <= ?1 ORDER BY r.n LIMIT ?2",
    /* two rows are enough to say the id is ambiguous */
    [S_FIND_REPORT] = "SELECT id, originator, created, n, category FROM reports"
                      " WHERE id = ?1 AND (?2 IS NULL OR originator = ?2) LIMIT 2",
    [S_REVIEW_SET] = "INSERT OR REPLACE INTO reviews(report, retain_until, reason, reviewer,"
                     " decided) VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_DELETE_REVIEW] = "DELETE FROM reviews WHERE report = ?1",
    [S_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [S_META_SET] = "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
    [S_PURGE_RECORD] = "INSERT INTO purges(report_id, originator, category, created, rule)"
                       " VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_DELETE_ROUTE] = "DELETE FROM routes WHERE report = ?1",
    [S_DELETE_REPORT] = "DELETE FROM reports WHERE n = ?1",
    [S_QUARANTINE] = "INSERT INTO quarantine(report, id, originator, category, body, reason)"
                     " SELECT n, id, originator, category, body, ?2 FROM reports WHERE n = ?1",
    [S_IN_QUARANTINE] = "SELECT 1 FROM quarantine WHERE report = ?1",
    [S_QUARANTINED] = "SELECT report, id, originator, category, reason, quarantined"
                      " FROM quarantine ORDER BY quarantined, report",
    [S_AGENCY_QUEUES] = "SELECT id, feed FROM queues WHERE agency = ?1",
    [S_ROUTES_OF_ID] = "SELECT r.n, r.originator, t.priority, t.queues, r.n FROM reports r"
                       " JOIN routes t ON t.report = r.n WHERE r.id = ?1"
                       " AND (?2 IS NULL OR r.originator = ?2) ORDER BY r.n",
};

struct cv_store_t {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    int lock_fd;   /* DIR/caveat.lock, flocked while the store is open */
    int wal_pages; /* pages in the WAL after the last commit */
    uint8_t *blob; /* routes and sent rows are encoded here */
    /* releases an originator approved (cv_approval_store.c's table, made
     * when the broker starts): prepared when first wanted */
    sqlite3_stmt *approved_routes;
    size_t blob_cap;
    cv_sync_t sync;
    cv_syncer_t *syncer;   /* fdatasync (CV_SYNC_FULL) and checkpoints, off the loop */
    bool wanted;           /* cv_store_begin was called: the next write or read begins */
    bool begun;            /* ...and it did: a transaction is open */
    uint64_t commits;      /* commits that wrote something: their numbers */
    int64_t changes;       /* rows changed by all commits so far */
    uint64_t checkpointed; /* the commit number when a checkpoint was last asked for */
    bool no_space;         /* a write failed for want of disk space since the last begin */
    int page_size;         /* bytes */
    int wal_pages_busy;    /* the WAL is checkpointed in the thread past this many pages */
    cv_hash_fn *checksum;  /* of bodies and digests: BLAKE2b-256 or SHA-256, by the version */
    struct {
        int64_t *rowids; /* sorted: reports SQLite could not read, not read again */
        size_t n, cap;
    } unreadable;
};

static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
    (void)db, (void)name;
    ((cv_store_t *)arg)->wal_pages = pages;
    return SQLITE_OK;
}

/*  SQLite says SQLITE_FULL for a short write, and an I/O error with the
 *  system's errno for a write that wrote nothing. */
static bool for_want_of_space(sqlite3 *db)
{
    int errno_was = sqlite3_system_errno(db);
    return sqlite3_errcode(db) == SQLITE_FULL ||
           ((sqlite3_errcode(db) == SQLITE_IOERR || sqlite3_errcode(db) == SQLITE_CANTOPEN) &&
            (errno_was == ENOSPC || errno_was == EDQUOT || errno_was == EFBIG));
}

static bool db_error(cv_store_t *self, cv_error_t *err, const char *what)
{
    self->no_space = self->no_space || for_want_of_space(self->db);
    cv_error_set(err, NULL, 0, 0, "store: %s: %s", what, sqlite3_errmsg(self->db));
    return false;
}

static bool out_of_memory(cv_error_t *err)
{
    cv_error_set(err, NULL, 0, 0, "store: out of memory");
    return false;
}

/*  A statement ready to bind: reset from its last use. */
static sqlite3_stmt *stmt(cv_store_t *self, int which)
{
    sqlite3_stmt *s = self->stmt[which];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/*  Steps a statement that returns no rows, bound already. The message is
 *  taken before the reset, which may leave another in its place. */
static bool step_done(cv_store_t *self, sqlite3_stmt *s, cv_error_t *err)
{
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        db_error(self, err, sqlite3_sql(s));
    sqlite3_reset(s);
    return rc == SQLITE_DONE;
}

static bool run(cv_store_t *self, int which, cv_error_t *err)
{
    return step_done(self, stmt(self, which), err);
}

/*  caveat_blake2b(blob) in SQL, for upgrading rows stored without. */
static void sql_blake2b(sqlite3_context *context, int argc, sqlite3_value **argv)
{
    (void)argc;
    uint8_t sum[CV_DIGEST_BYTES];
    cv_checksum(sum, sqlite3_value_blob(argv[0]), (size_t)sqlite3_value_bytes(argv[0]));
    sqlite3_result_blob(context, sum, sizeof sum, SQLITE_TRANSIENT);
}

static bool create_store(cv_store_t *self, const char *path, cv_error_t *err)
{
    char *msg = NULL;
    /* the page size first: it is fixed once the file has a page */
    char *init = sqlite3_mprintf("PRAGMA page_size=%d; BEGIN; %s INSERT INTO meta"
                                 " VALUES('format', '%q'), ('version', '%d'); COMMIT;",
                                 CV_STORE_PAGE_BYTES, schema_sql, STORE_FORMAT, STORE_VERSION);
    int rc = init ? sqlite3_exec(self->db, init, NULL, NULL, &msg) : SQLITE_NOMEM;
    sqlite3_free(init);
    if (rc != SQLITE_OK)
        cv_error_set(err, path, 0, 0, "cannot create the store: %s",
                     msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc == SQLITE_OK;
}

/*  One transaction a step: a store is upgraded from version by sql whole,
 *  or stays as it was. */
static bool upgrade(cv_store_t *self, const char *path, int version, const char *sql,
                    cv_error_t *err)
{
    char *msg = NULL;
    if (sqlite3_create_function(self->db, "caveat_blake2b", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                NULL, sql_blake2b, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(self->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        cv_error_set(err, path, 0, 0, "cannot upgrade the store from format version %d: %s",
                     version, msg ? msg : sqlite3_errmsg(self->db));
        sqlite3_free(msg);
        if (!sqlite3_get_autocommit(self->db))
            sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
        return false;
    }
    return true;
}

/*  A new store, or one of ours of this version or one it upgrades:
 *  anything else is refused, never written to. */
static bool check_format(cv_store_t *self, const char *path, cv_error_t *err)
{
    sqlite3_stmt *s = NULL;
    int tables = 0;
    if (sqlite3_prepare_v2(self->db, "SELECT count(*) FROM sqlite_master", -1, &s, NULL) !=
            SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        /* a file SQLite cannot read is no store; one it cannot get at is
         * a disk or I/O problem, and says so */
        int rc = sqlite3_errcode(self->db);
        bool unreadable = rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT;
        cv_error_set(err, path, 0, 0, "%s (%s)",
                     unreadable ? "not a caveat store" : "cannot read the store",
                     sqlite3_errmsg(self->db));
        return false;
    }
    tables = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    self->checksum = cv_checksum_sha256;
    if (tables == 0)
        return create_store(self, path, err);
    const char *query = "SELECT (SELECT value FROM meta WHERE key = 'format'),"
                        " (SELECT value FROM meta WHERE key = 'version')";
    bool ours = sqlite3_prepare_v2(self->db, query, -1, &s, NULL) == SQLITE_OK &&
                sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) &&
                strcmp((const char *)sqlite3_column_text(s, 0), STORE_FORMAT) == 0;
    int version = ours ? sqlite3_column_int(s, 1) : 0;
    sqlite3_finalize(s);
    if (!ours) {
        cv_error_set(err, path, 0, 0, "not a caveat store; refusing to touch it");
        return false;
    }
    if (version == 2 && !upgrade(self, path, 2, upgrade_from_2_sql, err))
        return false;
    if (version <= 3 && version >= 2 && !upgrade(self, path, 3, upgrade_from_3_sql, err))
        return false;
    if (version <= STORE_VERSION_BLAKE2B)
        self->checksum = cv_checksum;
    if (version < 2 || version > STORE_VERSION)
        cv_error_set(err, path, 0, 0, "store format version %d; this broker reads 2 to %d", version,
                     STORE_VERSION);
    return version >= 2 && version <= STORE_VERSION;
}

/*  Whether the reports' unique index leads with their id, as in stores
 *  made since it does: the index that finds a report by id alone. */
static bool unique_leads_with_id(cv_store_t *self)
{
    sqlite3_stmt *s = NULL;
    bool leads = sqlite3_prepare_v2(self->db,
                                    "SELECT 1 FROM pragma_index_list('reports') l,"
                                    " pragma_index_info(l.name) i"
                                    " WHERE l.\"unique\" AND i.seqno = 0 AND i.name = 'id'",
                                    -1, &s, NULL) == SQLITE_OK &&
                 sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return leads;
}

/*  Feedback names a report by its id alone (the sender may not know its
 *  originator): in a store whose unique index leads with the originator,
 *  the index that finds it without a scan. An index changes no row, so it
 *  comes without a new format: a broker of before ignores it, and SQLite
 *  keeps it up to date whoever writes. */
static bool add_report_id_index(cv_store_t *self, const char *path, cv_error_t *err)
{
    if (unique_leads_with_id(self))
        return true;
    char *msg = NULL;
    if (sqlite3_exec(self->db, "CREATE INDEX IF NOT EXISTS reports_id ON reports(id)", NULL, NULL,
                     &msg) == SQLITE_OK)
        return true;
    cv_error_set(err, path, 0, 0, "cannot index the reports' ids: %s",
                 msg ? msg : sqlite3_errmsg(self->db));
    sqlite3_free(msg);
    return false;
}

/*  CV_SYNC_FULL commits as NORMAL does, without waiting for the disk: the
 *  syncer makes them durable before the broker lets anything depend on
 *  them (cv_store_synced). */
static bool configure(cv_store_t *self, cv_sync_t sync, const char *path, cv_error_t *err)
{
    /* cache_spill: a turn's transaction (up to 2 MB of reports, their
     * index entries and audit leaves) stays in memory until its commit, up
     * to 32 MB of pages; spilling them into the WAL mid-transaction wrote
     * some twice. cache_size: what is kept between transactions, 4 MB,
     * which holds the loop's working set (a few reads of the file a second
     * at the fan-out, about 70 in workload 1). Kept small because every
     * commit that split a B-tree page walks the whole cache (SQLite parks
     * a page under a page number past the end while it renumbers, and
     * pcache1's truncation at the commit then visits every page): with
     * 32 MB, 8,000 pages, that walk was 5-6 % of the loop at the fan-out.
     * Both in KiB, hence the minus signs: SQLite also reads a positive
     * cache_spill as on or off through its low byte, so 8192 pages would
     * turn spilling off and leave a transaction's memory unbounded */
    char pragmas[256];
    static const char *const levels[] = {
        [CV_SYNC_FULL] = "NORMAL", [CV_SYNC_NORMAL] = "NORMAL", [CV_SYNC_OFF] = "OFF"};
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
             " PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=-%d;"
             " PRAGMA cache_spill=-%d;",
             levels[sync], CV_STORE_CACHE_KB, CV_STORE_SPILL_KB);
    char *msg = NULL;
    if (sqlite3_exec(self->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
        cv_error_set(err, path, 0, 0, "cannot configure the store: %s",
                     msg ? msg : sqlite3_errmsg(self->db));
        sqlite3_free(msg);
        return false;
    }
    sqlite3_busy_timeout(self->db, 5000);
    sqlite3_stmt *s = NULL;
    self->page_size = sqlite3_prepare_v2(self->db, "PRAGMA page_size", -1, &s, NULL) == SQLITE_OK &&
                              sqlite3_step(s) == SQLITE_ROW
                          ? sqlite3_column_int(s, 0)
                          : 4096;
    sqlite3_finalize(s);
    cv_store_limit_wal(self, 0);
    /* checkpoints run when the broker asks (cv_store_checkpoint), in a
     * thread, not inside whichever commit crosses SQLite's threshold */
    sqlite3_wal_hook(self->db, on_wal_commit, self);
    self->sync = sync;
    /* the checkpointer syncs the WAL before, the database after, except
     * with OFF: never the WAL reset over frames not safely in the database */
    self->syncer =
        cv_syncer_new(path, sync == CV_SYNC_FULL, sync == CV_SYNC_OFF ? "OFF" : "NORMAL");
    if (!self->syncer) {
        cv_error_set(err, path, 0, 0, "cannot start the store's threads");
        return false;
    }
    return true;
}

/*  The data directory holds every report: the owner's alone. */
static bool check_directory(const char *dir, cv_error_t *err)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        cv_error_set(err, dir, 0, 0, "cannot use as the data directory: %s", strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        cv_error_set(err, dir, 0, 0, "not a directory");
        return false;
    }
    if (st.st_mode & 077) {
        cv_error_set(err, dir, 0, 0,
                     "mode %04o lets group or others in; the data directory must be its"
                     " owner's alone (chmod 700)",
                     (unsigned)(st.st_mode & 07777));
        return false;
    }
    return true;
}

/*  One store a data directory, whichever process: an flock on a file of
 *  its own, never on caveat.db, whose descriptors SQLite alone may close
 *  (closing any descriptor of a file drops the process's POSIX locks on
 *  it, SQLite's included). flock locks belong to the open file: a second
 *  open in this process is refused too. */
static int lock_directory(const char *dir, cv_error_t *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/caveat.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        cv_error_set(err, path, 0, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return fd;
    if (errno == EWOULDBLOCK)
        cv_error_set(err, dir, 0, 0, "another caveatd is using this data directory");
    else
        cv_error_set(err, path, 0, 0, "cannot lock: %s", strerror(errno));
    close(fd);
    return -1;
}

int cv_store_claim(const char *dir, cv_error_t *err)
{
    mode_t old = umask(077);
    int fd = check_directory(dir, err) ? lock_directory(dir, err) : -1;
    umask(old);
    return fd;
}

/*  caveat.db, made 0600 here when new (SQLite gives its WAL and shared
 *  memory files the database's mode), refused when group or others may
 *  use it. */
static bool check_database(const char *path, cv_error_t *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd); /* nothing has it open yet: no lock of SQLite's to lose */
        return true;
    }
    struct stat st;
    if (errno != EEXIST || lstat(path, &st) != 0) {
        cv_error_set(err, path, 0, 0, "cannot create: %s", strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        cv_error_set(err, path, 0, 0, "not a regular file; refusing to touch it");
        return false;
    }
    if (st.st_mode & 077) {
        cv_error_set(err, path, 0, 0,
                     "mode %04o lets group or others use the store; it must be its owner's"
                     " alone (chmod 600)",
                     (unsigned)(st.st_mode & 07777));
        return false;
    }
    return true;
}

/*  Everything before SQLite opens the database, in the claimed directory:
 *  the file, and with CV_SYNC_FULL the sync of what a broker killed before
 *  its last sync left written and unsynced (nothing is served from it
 *  before it is on disk). The sync opens and closes the database and its
 *  WAL, so it must come before SQLite holds locks on them. */
static bool prepare_directory(const char *path, cv_sync_t sync, cv_error_t *err)
{
    if (!check_database(path, err))
        return false;
    if (sync == CV_SYNC_FULL && !cv_syncer_sync_files(path)) {
        cv_error_set(err, path, 0, 0, "cannot sync the store: %s", strerror(errno));
        return false;
    }
    return true;
}

cv_store_t *cv_store_open(const char *dir, cv_sync_t sync, cv_error_t *err)
{
    int claim = cv_store_claim(dir, err);
    return claim >= 0 ? cv_store_open_claimed(claim, dir, sync, err) : NULL;
}

cv_store_t *cv_store_open_claimed(int claim, const char *dir, cv_sync_t sync, cv_error_t *err)
{
    assert(claim >= 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/caveat.db", dir);
    cv_store_t *self = calloc(1, sizeof *self);
    if (!self) {
        close(claim);
        out_of_memory(err);
        return NULL;
    }
    self->lock_fd = claim;
    if (sodium_init() < 0) {
        cv_error_set(err, NULL, 0, 0, "store: libsodium cannot start");
        cv_store_close(&self);
        return NULL;
    }
    mode_t old = umask(077); /* the store holds reports: owner only */
    bool ok = prepare_directory(path, sync, err);
    /* before SQLite's first use: no memory statistics, whose counters take
     * a global mutex on every allocation (a later call changes nothing) */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    /* NOMUTEX: this connection is only ever used by the broker's loop;
     * its WAL frames are written a transaction at a time (cv_walbuf.h) */
    int rc = ok ? sqlite3_open_v2(path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                                  cv_walbuf_vfs())
                : SQLITE_OK;
    umask(old);
    if (ok && rc != SQLITE_OK) {
        cv_error_set(err, path, 0, 0, "cannot open: %s",
                     self->db ? sqlite3_errmsg(self->db) : sqlite3_errstr(rc));
        ok = false;
    }
    ok = ok && check_format(self, path, err) && add_report_id_index(self, path, err) &&
         configure(self, sync, path, err);
    for (int i = 0; ok && i < S_COUNT; i++)
        if (sqlite3_prepare_v3(self->db, statements[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &self->stmt[i], NULL) != SQLITE_OK)
            ok = db_error(self, err, statements[i]);
    if (!ok)
        cv_store_close(&self);
    return self;
}

void cv_store_close(cv_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cv_store_t *self = *self_p;
    /* what was committed is on disk before the broker goes, unless syncing
     * has failed for good */
    if (self->syncer && !cv_syncer_failed(self->syncer))
        cv_syncer_wait(self->syncer, self->commits, 5000);
    cv_syncer_destroy(&self->syncer);
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(self->stmt[i]);
    sqlite3_finalize(self->approved_routes);
    sqlite3_close(self->db);
    /* the last: the directory is free once SQLite is done with it */
    if (self->lock_fd >= 0)
        close(self->lock_fd);
    free(self->blob);
    free(self->unreadable.rowids);
    free(self);
    *self_p = NULL;
}

bool cv_store_in_transaction(const cv_store_t *self)
{
    return self->wanted || self->begun;
}

/*  A transaction is opened by the first write (or report read) after
 *  cv_store_begin: many turns of a busy broker touch no table, and BEGIN
 *  IMMEDIATE and COMMIT take file locks. */
bool cv_store_begin(cv_store_t *self, cv_error_t *err)
{
    (void)err;
    self->wanted = true;
    self->no_space = false;
    return true;
}

/*  Opens the transaction at the first write or report read. SQLite rolls a transaction
 *  back by itself on some errors (a full disk, an I/O error): a transaction
 *  begun and no longer open is an error, never a fresh start. */
static bool writing(cv_store_t *self, cv_error_t *err);

cv_hash_fn *cv_store_checksum_fn(const cv_store_t *self)
{
    return self->checksum;
}

const char *cv_store_checksum_name(const cv_store_t *self)
{
    return self->checksum == cv_checksum_sha256 ? "sha-256" : "blake2b-256";
}

sqlite3 *cv_store_db(cv_store_t *self)
{
    return self->db;
}

bool cv_store_writing(cv_store_t *self, cv_error_t *err)
{
    return writing(self, err);
}

static bool writing(cv_store_t *self, cv_error_t *err)
{
    if (self->begun && sqlite3_get_autocommit(self->db)) {
        cv_error_set(err, NULL, 0, 0, "store: the transaction was rolled back by an error: %s",
                     sqlite3_errmsg(self->db));
        return false;
    }
    if (self->wanted && !self->begun) {
        if (!run(self, S_BEGIN, err))
            return false;
        self->begun = true;
    }
    return true;
}

bool cv_store_commit(cv_store_t *self, cv_error_t *err)
{
    bool begun = self->begun;
    self->wanted = self->begun = false;
    if (!begun)
        return true; /* nothing was written */
    if (sqlite3_get_autocommit(self->db)) {
        cv_error_set(err, NULL, 0, 0, "store: the transaction was rolled back by an error: %s",
                     sqlite3_errmsg(self->db));
        return false;
    }
    if (!run(self, S_COMMIT, err))
        return false;
    /* a transaction that changed nothing wrote nothing: nothing to sync */
    int64_t changes = sqlite3_total_changes64(self->db);
    if (changes != self->changes)
        cv_syncer_request(self->syncer, ++self->commits);
    self->changes = changes;
    return true;
}

uint64_t cv_store_last_commit(const cv_store_t *self)
{
    return self->commits;
}

uint64_t cv_store_synced(cv_store_t *self)
{
    return self->sync == CV_SYNC_FULL ? cv_syncer_synced(self->syncer) : self->commits;
}

int cv_store_watch(cv_store_t *self, cv_poller_t *poller)
{
    return cv_syncer_watch(self->syncer, poller);
}

const char *cv_store_sync_failed(cv_store_t *self)
{
    return cv_syncer_failed(self->syncer);
}

bool cv_store_slow_sync(cv_store_t *self, int64_t *ms)
{
    return cv_syncer_take_slow(self->syncer, ms);
}

cv_sync_counts_t cv_store_sync_counts(const cv_store_t *self)
{
    return cv_syncer_counts(self->syncer);
}

bool cv_store_sync_wait(cv_store_t *self, int timeout_ms)
{
    return self->sync != CV_SYNC_FULL || cv_syncer_wait(self->syncer, self->commits, timeout_ms);
}

void cv_store_rollback(cv_store_t *self)
{
    self->wanted = self->begun = false;
    if (!sqlite3_get_autocommit(self->db))
        run(self, S_ROLLBACK, NULL);
}

/* ------------------------------------------------------------------------ */
/*  Changes made of several statements: whole, or not at all.               */

/*  A savepoint inside the caller's transaction (or a transaction of its
 *  own outside one): a change that fails half way takes back its first
 *  half even if the caller commits. */
static bool whole_begin(cv_store_t *self, cv_error_t *err)
{
    return writing(self, err) && run(self, S_SAVEPOINT, err);
}

static bool whole_end(cv_store_t *self, bool ok, cv_error_t *err)
{
    if (sqlite3_get_autocommit(self->db))
        return ok; /* SQLite rolled everything back by itself */
    if (!ok)
        run(self, S_UNDO, NULL);
    return run(self, S_RELEASE, ok ? err : NULL) && ok;
}

/*  (originator, id) already stored: the same report again (a retried
 *  publish, whatever the broker stamped into it since) or a conflict. */
static cv_put_t compare_stored(cv_store_t *self, const cv_stored_report_t *report,
                               const uint8_t *digest, int64_t *rowid, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_GET);
    sqlite3_bind_text(s, 1, report->originator, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, report->id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_ROW) {
        db_error(self, err, "compare with the stored report");
        sqlite3_reset(s);
        return CV_PUT_FAILED;
    }
    bool same = sqlite3_column_bytes(s, 0) == CV_DIGEST_BYTES &&
                memcmp(sqlite3_column_blob(s, 0), digest, CV_DIGEST_BYTES) == 0;
    *rowid = sqlite3_column_int64(s, 1);
    sqlite3_reset(s);
    return same ? CV_PUT_SAME : CV_PUT_CONFLICT;
}

/*  A failed insert. SQLite checks a row's constraints before it writes
 *  any of it, so an insert a constraint refused left nothing, and the turn
 *  goes on with the report alone refused; so did any failure outside a
 *  transaction, where the statement was one of its own. Any other failure
 *  may have come with part of the row written (SQLite undoes a statement
 *  alone only when it kept a journal for it), so the turn must not commit:
 *  SQLite rolled the transaction back itself, or the caller does. */
static cv_put_t put_failed(cv_store_t *self, int code, cv_error_t *err)
{
    if (!self->begun || code == SQLITE_CONSTRAINT)
        return CV_PUT_UNDONE;
    if (sqlite3_get_autocommit(self->db)) {
        cv_error_t was = *err; /* not formatted into itself */
        cv_error_set(err, NULL, 0, 0, "%s; the transaction was rolled back", was.msg);
    }
    return CV_PUT_FAILED;
}

#ifndef NDEBUG
/*  For an assert: a checksum the caller took is the body's. */
static bool checksum_matches(const cv_store_t *self, const uint8_t *checksum, const uint8_t *body,
                             size_t len)
{
    uint8_t sum[CV_DIGEST_BYTES];
    self->checksum(sum, body, len);
    return memcmp(sum, checksum, CV_DIGEST_BYTES) == 0;
}
#endif

/*  Binds a report's eight columns from parameter at on; its digest (the
 *  checksum when nothing was stamped). A checksum the caller did not take
 *  is taken into own. */
static const uint8_t *bind_report(cv_store_t *self, sqlite3_stmt *s, int at,
                                  const cv_stored_report_t *report, const uint8_t *body, size_t len,
                                  uint8_t own[CV_DIGEST_BYTES])
{
    const uint8_t *checksum = report->checksum;
    if (!checksum) {
        self->checksum(own, body, len);
        checksum = own;
    }
    assert(checksum == own || checksum_matches(self, checksum, body, len));
    const uint8_t *digest = report->digest ? report->digest : checksum;
    sqlite3_bind_text(s, at, report->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, at + 1, report->originator, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, at + 2, report->category, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, at + 3, report->created);
    sqlite3_bind_int64(s, at + 4, report->accepted ? report->accepted : (int64_t)time(NULL) * 1000);
    sqlite3_bind_blob(s, at + 5, digest, CV_DIGEST_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(s, at + 6, checksum, CV_DIGEST_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(s, at + 7, body ? (const void *)body : "", (int)len, SQLITE_STATIC);
    return digest;
}

cv_put_t cv_store_put_report(cv_store_t *self, const cv_stored_report_t *report,
                             const uint8_t *body, size_t len, int64_t *rowid, cv_error_t *err)
{
    if (!writing(self, err))
        return CV_PUT_FAILED;
    uint8_t own[CV_DIGEST_BYTES];
    sqlite3_stmt *s = stmt(self, S_PUT);
    const uint8_t *digest = bind_report(self, s, 1, report, body, len, own);
    int rc = sqlite3_step(s);
    int code = sqlite3_errcode(self->db);
    bool taken = sqlite3_extended_errcode(self->db) == SQLITE_CONSTRAINT_UNIQUE;
    if (rc != SQLITE_DONE && !taken)
        db_error(self, err, "store report");
    sqlite3_reset(s);
    *rowid = sqlite3_last_insert_rowid(self->db);
    cv_put_t put = rc == SQLITE_DONE ? CV_PUT_NEW
                   : taken           ? compare_stored(self, report, digest, rowid, err)
                                     : CV_PUT_FAILED;
    if (put == CV_PUT_FAILED && taken)
        code = sqlite3_errcode(self->db); /* the comparison's failure */
    return put == CV_PUT_FAILED ? put_failed(self, code, err) : put;
}

/*  The rowid of the nth newest report (from 0); -1 on failure. */
static int64_t newest(cv_store_t *self, int n, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_NEWEST);
    sqlite3_bind_int(s, 1, n);
    int64_t rowid = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    if (rowid < 0)
        db_error(self, err, "find the reports just stored");
    sqlite3_reset(s);
    return rowid;
}

/*  After a batch that left some reports out: which were stored now. The
 *  inserted rows are the newest (a rowid is always past every one given
 *  before), so a report whose row is among them is new, unless a report
 *  before it in the batch, of the same originator and id, was that row;
 *  any other is a retry or a conflict, as the single insert would have
 *  found. False when the transaction is lost. */
static bool sort_out_batch(cv_store_t *self, cv_put_item_t *items, const uint8_t *const *digests,
                           int inserted, cv_error_t *err)
{
    int64_t first_new = inserted ? newest(self, inserted - 1, err) : INT64_MAX;
    if (first_new < 0)
        return false;
    int64_t claimed[CV_PUT_BATCH];
    int n_claimed = 0;
    for (int i = 0; i < CV_PUT_BATCH; i++) {
        cv_put_item_t *item = &items[i];
        item->put = compare_stored(self, &item->report, digests[i], &item->rowid, err);
        if (item->put == CV_PUT_FAILED)
            return false;
        bool mine = item->rowid >= first_new;
        for (int j = 0; j < n_claimed && mine; j++)
            mine = claimed[j] != item->rowid;
        if (mine) {
            item->put = CV_PUT_NEW;
            claimed[n_claimed++] = item->rowid;
        }
    }
    assert(n_claimed == inserted);
    return true;
}

/*  Stores CV_PUT_BATCH reports with one statement, setting each item's
 *  put and rowid. */
static void put_batch(cv_store_t *self, cv_put_item_t *items, cv_error_t *err)
{
    uint8_t own[CV_PUT_BATCH][CV_DIGEST_BYTES];
    const uint8_t *digests[CV_PUT_BATCH];
    sqlite3_stmt *s = stmt(self, S_PUT_BATCH);
    for (int i = 0; i < CV_PUT_BATCH; i++)
        digests[i] =
            bind_report(self, s, 8 * i + 1, &items[i].report, items[i].body, items[i].len, own[i]);
    int rc = sqlite3_step(s);
    int code = sqlite3_errcode(self->db);
    if (rc != SQLITE_DONE)
        db_error(self, err, "store reports");
    sqlite3_reset(s);
    int inserted = rc == SQLITE_DONE ? sqlite3_changes(self->db) : 0;
    int64_t last = sqlite3_last_insert_rowid(self->db);
    if (inserted == CV_PUT_BATCH) { /* the usual case: one rowid after another */
        for (int i = 0; i < CV_PUT_BATCH; i++) {
            items[i].put = CV_PUT_NEW;
            items[i].rowid = last - CV_PUT_BATCH + 1 + i;
        }
        return;
    }
    if (rc == SQLITE_DONE && sort_out_batch(self, items, digests, inserted, err))
        return;
    /* Whatever failed, some rows may be in (a trigger's RAISE(FAIL) keeps
     * those before it) and none can be told apart: the transaction must
     * not commit, even for a constraint, which refuses a single insert's
     * report alone. */
    cv_put_t failed = rc == SQLITE_DONE
                          ? CV_PUT_FAILED
                          : put_failed(self, code == SQLITE_CONSTRAINT ? SQLITE_ERROR : code, err);
    for (int i = 0; i < CV_PUT_BATCH; i++)
        items[i].put = failed;
}

void cv_store_put_reports(cv_store_t *self, cv_put_item_t *items, size_t n, cv_error_t *err)
{
    if (n == 0) /* no write, so no transaction begun for it */
        return;
    bool lost = !writing(self, err);
    for (size_t i = 0; i < n;) {
        size_t rows = !lost && n - i >= CV_PUT_BATCH ? CV_PUT_BATCH : 1;
        cv_put_item_t *item = &items[i];
        cv_error_t why = {0};
        if (lost)
            item->put = CV_PUT_FAILED;
        else if (rows > 1)
            put_batch(self, item, &why);
        else
            item->put =
                cv_store_put_report(self, &item->report, item->body, item->len, &item->rowid, &why);
        if (why.msg[0] && !err->msg[0]) /* the first failure's */
            *err = why;
        lost = item->put == CV_PUT_FAILED; /* a batch's items fail alike */
        i += rows;
    }
}

bool cv_store_no_space(const cv_store_t *self)
{
    return self->no_space;
}

int64_t cv_store_queue(cv_store_t *self, const char *agency, const char *feed, int64_t done,
                       cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_QUEUE_ID);
    sqlite3_bind_text(s, 1, agency, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, feed, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        db_error(self, err, "find a queue");
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return id;
    if (!writing(self, err))
        return -1;
    s = stmt(self, S_QUEUE_NEW);
    sqlite3_bind_text(s, 1, agency, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, feed, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, done);
    return step_done(self, s, err) ? sqlite3_last_insert_rowid(self->db) : -1;
}

/*  Integers in blobs are little-endian, so a data directory moves between
 *  machines. */
static void put_le(uint8_t *at, uint64_t value, int bytes)
{
    for (int i = 0; i < bytes; i++)
        at[i] = (uint8_t)(value >> (8 * i));
}

static uint64_t get_le(const uint8_t *at, int bytes)
{
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++)
        value |= (uint64_t)at[i] << (8 * i);
    return value;
}

/*  self->blob with room for bytes; NULL when out of memory. */
static uint8_t *blob_of(cv_store_t *self, size_t bytes)
{
    if (bytes > self->blob_cap) {
        uint8_t *bigger = realloc(self->blob, bytes);
        if (!bigger)
            return NULL;
        self->blob = bigger;
        self->blob_cap = bytes;
    }
    return self->blob;
}

/*  Binds rows[0..n) from parameter 1 on, their queues encoded in the
 *  store's blob; false when out of memory. */
static bool bind_routes(cv_store_t *self, sqlite3_stmt *s, const cv_route_row_t *rows, size_t n,
                        cv_error_t *err)
{
    size_t bytes = 1;
    for (size_t i = 0; i < n; i++)
        bytes += rows[i].n * 4;
    uint8_t *blob = blob_of(self, bytes);
    if (!blob)
        return out_of_memory(err);
    for (size_t i = 0; i < n; i++) {
        for (size_t q = 0; q < rows[i].n; q++)
            put_le(blob + 4 * q, (uint64_t)rows[i].queues[q], 4);
        sqlite3_bind_int64(s, (int)(3 * i + 1), rows[i].report);
        sqlite3_bind_int(s, (int)(3 * i + 2), rows[i].priority);
        sqlite3_bind_blob(s, (int)(3 * i + 3), blob, (int)(rows[i].n * 4), SQLITE_STATIC);
        blob += rows[i].n * 4;
    }
    return true;
}

bool cv_store_route_many(cv_store_t *self, const cv_route_row_t *rows, size_t n, cv_error_t *err)
{
    if (n == 0) /* no write, so no transaction begun for it */
        return true;
    if (!writing(self, err))
        return false;
    for (size_t i = 0; i < n;) {
        size_t batch = n - i >= CV_PUT_BATCH ? CV_PUT_BATCH : 1;
        sqlite3_stmt *s = stmt(self, batch > 1 ? S_ROUTE_BATCH : S_ROUTE);
        if (!bind_routes(self, s, rows + i, batch, err) || !step_done(self, s, err))
            return false;
        i += batch;
    }
    return true;
}

bool cv_store_route(cv_store_t *self, int64_t report, int priority, const int64_t *queues, size_t n,
                    cv_error_t *err)
{
    cv_route_row_t row = {report, priority, queues, n};
    return cv_store_route_many(self, &row, 1, err);
}

/*  An agency's queues: a few (its direct queue and its feeds'). */
typedef struct {
    int64_t *ids;
    char **feeds;
    int n;
} agency_queues_t;

static void agency_queues_free(agency_queues_t *queues)
{
    for (int q = 0; q < queues->n; q++)
        free(queues->feeds[q]);
    free(queues->feeds);
    free(queues->ids);
    *queues = (agency_queues_t){0};
}

static bool agency_queue_add(agency_queues_t *queues, int64_t id, const char *feed)
{
    int64_t *ids = realloc(queues->ids, (size_t)(queues->n + 1) * sizeof *ids);
    if (ids)
        queues->ids = ids;
    char **feeds = ids ? realloc(queues->feeds, (size_t)(queues->n + 1) * sizeof *feeds) : NULL;
    if (feeds)
        queues->feeds = feeds;
    char *copy = feeds ? strdup(feed) : NULL;
    if (!copy)
        return false;
    queues->ids[queues->n] = id;
    queues->feeds[queues->n++] = copy;
    return true;
}

static bool agency_queues(cv_store_t *self, const char *agency, agency_queues_t *queues,
                          cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_AGENCY_QUEUES);
    sqlite3_bind_text(s, 1, agency, -1, SQLITE_STATIC);
    bool ok = true;
    int rc;
    while (ok && (rc = sqlite3_step(s)) == SQLITE_ROW)
        ok = agency_queue_add(queues, sqlite3_column_int64(s, 0),
                              (const char *)sqlite3_column_text(s, 1)) ||
             out_of_memory(err);
    if (ok && rc != SQLITE_DONE)
        ok = db_error(self, err, "reading an agency's queues");
    sqlite3_reset(s);
    if (!ok)
        agency_queues_free(queues);
    return ok;
}

/*  Steps s (bound, its columns report, originator, priority, queues,
 *  routed) and calls each for every route to one of queues; adds the calls
 *  to *calls. False when SQLite failed. */
static bool each_route_to(sqlite3_stmt *s, const agency_queues_t *queues, cv_routed_to_fn *each,
                          void *arg, int *calls)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const uint8_t *blob = sqlite3_column_blob(s, 3);
        size_t routed = (size_t)sqlite3_column_bytes(s, 3) / 4;
        for (size_t i = 0; i < routed; i++)
            for (int q = 0; q < queues->n; q++)
                if ((int64_t)get_le(blob + 4 * i, 4) == queues->ids[q]) {
                    each(arg, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 4),
                         (const char *)sqlite3_column_text(s, 1), sqlite3_column_int(s, 2),
                         queues->feeds[q]);
                    (*calls)++;
                }
    }
    return rc == SQLITE_DONE;
}

/*  The statement for routes of approved releases; NULL when the store has
 *  no approvals table (a store no broker has started on). */
static sqlite3_stmt *approved_routes(cv_store_t *self)
{
    if (!self->approved_routes)
        sqlite3_prepare_v2(self->db,
                           "SELECT r.n, r.originator, t.priority, t.queues, a.n FROM reports r"
                           " JOIN approval_routes a ON a.report = r.n"
                           " JOIN routes t ON t.report = a.n WHERE r.id = ?1"
                           " AND (?2 IS NULL OR r.originator = ?2) ORDER BY r.n, a.n",
                           -1, &self->approved_routes, NULL);
    return self->approved_routes;
}

int cv_store_routed_to(cv_store_t *self, const char *report_id, const char *originator,
                       const char *agency, cv_routed_to_fn *each, void *arg, cv_error_t *err)
{
    agency_queues_t queues = {0};
    if (!agency_queues(self, agency, &queues, err))
        return -1;
    int calls = 0;
    bool ok = true;
    sqlite3_stmt *lookups[] = {stmt(self, S_ROUTES_OF_ID), approved_routes(self)};
    for (size_t i = 0; ok && queues.n && i < 2; i++) { /* no queue: nothing routed to it */
        sqlite3_stmt *s = lookups[i];
        if (!s)
            continue;
        sqlite3_bind_text(s, 1, report_id, -1, SQLITE_STATIC);
        if (originator)
            sqlite3_bind_text(s, 2, originator, -1, SQLITE_STATIC);
        ok = each_route_to(s, &queues, each, arg, &calls) ||
             db_error(self, err, "finding a report by its id");
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
    agency_queues_free(&queues);
    return ok ? calls : -1;
}

bool cv_store_unroute(cv_store_t *self, int64_t report, int64_t queue, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_ROUTE_GET);
    sqlite3_bind_int64(s, 1, report);
    int rc = sqlite3_step(s);
    size_t n = rc == SQLITE_ROW ? (size_t)sqlite3_column_bytes(s, 0) / 4 : 0, kept = 0;
    uint8_t *blob = n ? blob_of(self, n * 4) : NULL;
    for (size_t i = 0; blob && i < n; i++) {
        const uint8_t *at = (const uint8_t *)sqlite3_column_blob(s, 0) + 4 * i;
        if ((int64_t)get_le(at, 4) != queue)
            memcpy(blob + 4 * kept++, at, 4);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) /* purged: nothing to do */
        return rc == SQLITE_DONE || db_error(self, err, "read a route");
    if (n && !blob) {
        cv_error_set(err, NULL, 0, 0, "store: out of memory");
        return false;
    }
    if (kept == n)
        return true; /* not routed there: nothing to write */
    if (!writing(self, err))
        return false;
    s = stmt(self, S_ROUTE_SET);
    sqlite3_bind_int64(s, 1, report);
    sqlite3_bind_blob(s, 2, blob ? (const void *)blob : "", (int)(kept * 4), SQLITE_STATIC);
    return step_done(self, s, err);
}

/*  A sent row's blob: each report's rowid times 4 plus its priority, so a
 *  restart knows both without reading the routes. */
bool cv_store_sent(cv_store_t *self, int64_t queue, uint64_t first_seq, const cv_routed_t *items,
                   size_t n, cv_error_t *err)
{
    uint8_t *blob = n ? blob_of(self, n * 8) : NULL;
    if (!blob) {
        cv_error_set(err, NULL, 0, 0, "store: no deliveries, or out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++)
        put_le(blob + 8 * i, (uint64_t)(items[i].report * 4 + items[i].priority), 8);
    if (!writing(self, err))
        return false;
    sqlite3_stmt *s = stmt(self, S_SENT);
    sqlite3_bind_int64(s, 1, queue);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)first_seq);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)(first_seq + n - 1));
    sqlite3_bind_blob(s, 4, blob, (int)(n * 8), SQLITE_STATIC);
    return step_done(self, s, err);
}

bool cv_store_save_queue(cv_store_t *self, int64_t queue, const cv_queue_state_t *state,
                         cv_error_t *err)
{
    if (!writing(self, err))
        return false;
    sqlite3_stmt *s = stmt(self, S_SAVE_QUEUE);
    sqlite3_bind_int64(s, 1, queue);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)state->last_seq);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)state->acked_seq);
    for (int p = 0; p < CV_PRIORITIES; p++)
        sqlite3_bind_int64(s, 4 + p, state->done[p]);
    if (!step_done(self, s, err))
        return false;
    /* pumps wholly acknowledged; a pump acknowledged in part stays, and
     * loading skips its seqs up to acked_seq */
    s = stmt(self, S_FORGET_SENT);
    sqlite3_bind_int64(s, 1, queue);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)state->acked_seq);
    return step_done(self, s, err);
}

/*  Loading: the queues, then what each has sent and not had acknowledged,
 *  then the routes that some queue has not finished with. */
static bool load_queues(cv_store_t *self, const cv_store_loader_t *loader, void *arg,
                        int64_t *oldest, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_LOAD_QUEUES);
    int rc;
    *oldest = INT64_MAX;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        cv_queue_state_t state = {
            (uint64_t)sqlite3_column_int64(s, 3), (uint64_t)sqlite3_column_int64(s, 4), {0}};
        for (int p = 0; p < CV_PRIORITIES; p++) {
            state.done[p] = sqlite3_column_int64(s, 5 + p);
            if (state.done[p] < *oldest)
                *oldest = state.done[p];
        }
        loader->queue(arg, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
                      (const char *)sqlite3_column_text(s, 2), &state);
    }
    sqlite3_reset(s);
    if (*oldest == INT64_MAX)
        *oldest = 0;
    return rc == SQLITE_DONE || db_error(self, err, "load queues");
}

static bool load_sent(cv_store_t *self, const cv_store_loader_t *loader, void *arg, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_LOAD_SENT);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t queue = sqlite3_column_int64(s, 0);
        uint64_t first = (uint64_t)sqlite3_column_int64(s, 1);
        const uint8_t *blob = sqlite3_column_blob(s, 2);
        size_t n = (size_t)sqlite3_column_bytes(s, 2) / 8;
        for (size_t i = 0; i < n; i++) {
            int64_t packed = (int64_t)get_le(blob + 8 * i, 8);
            loader->sent(arg, queue, first + i, (cv_routed_t){packed / 4, (int)(packed % 4)});
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE || db_error(self, err, "load sent");
}

static bool load_routes(cv_store_t *self, const cv_store_loader_t *loader, void *arg, int64_t after,
                        cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_LOAD_ROUTES);
    sqlite3_bind_int64(s, 1, after);
    int64_t queues[256];
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const uint8_t *blob = sqlite3_column_blob(s, 2);
        size_t n = (size_t)sqlite3_column_bytes(s, 2) / 4;
        int64_t report = sqlite3_column_int64(s, 0);
        int priority = sqlite3_column_int(s, 1);
        for (size_t from = 0; from < n; from += 256) { /* any number of recipients */
            size_t k = n - from < 256 ? n - from : 256;
            for (size_t i = 0; i < k; i++)
                queues[i] = (int64_t)get_le(blob + 4 * (from + i), 4);
            loader->route(arg, report, priority, queues, k);
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE || db_error(self, err, "load routes");
}

bool cv_store_load(cv_store_t *self, const cv_store_loader_t *loader, void *arg,
                   int64_t *max_report, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_MAX_REPORT);
    bool found = sqlite3_step(s) == SQLITE_ROW;
    *max_report = found ? sqlite3_column_int64(s, 0) : 0;
    if (!found)
        db_error(self, err, "read the highest report");
    sqlite3_reset(s);
    if (!found)
        return false;
    int64_t oldest = 0;
    return load_queues(self, loader, arg, &oldest, err) && load_sent(self, loader, arg, err) &&
           load_routes(self, loader, arg, oldest, err);
}

int cv_store_meta_get(cv_store_t *self, const char *key, int64_t *value, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_META_GET);
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *value = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        db_error(self, err, "read the store's meta");
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

bool cv_store_meta_set(cv_store_t *self, const char *key, int64_t value, cv_error_t *err)
{
    if (!writing(self, err))
        return false;
    sqlite3_stmt *s = stmt(self, S_META_SET);
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, value);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE || db_error(self, err, "write the store's meta");
}

/* ------------------------------------------------------------------------ */
/*  Rows SQLite cannot read. A damaged page of the file makes SQLite answer
 *  SQLITE_CORRUPT for the rows on it, and no retry mends that: such a row
 *  read again would fail every transaction that reads it. So the store
 *  remembers it, and neither reads nor purges it again while it is open.
 *  Its row stays as it is (the damage may reach further than one row) for
 *  an administrator to restore or repair. Disks damage rows, not agencies:
 *  the set grows only with the damage.                                     */

/*  Where rowid is, or would go, in the sorted set. */
static size_t unreadable_slot(const cv_store_t *self, int64_t rowid)
{
    size_t low = 0, high = self->unreadable.n;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (self->unreadable.rowids[mid] < rowid)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
}

bool cv_store_unreadable(const cv_store_t *self, int64_t report)
{
    size_t at = self->unreadable.n ? unreadable_slot(self, report) : 0;
    return at < self->unreadable.n && self->unreadable.rowids[at] == report;
}

size_t cv_store_unreadable_count(const cv_store_t *self)
{
    return self->unreadable.n;
}

/*  Whether the last error was SQLite's SQLITE_CORRUPT, on report: if so,
 *  the report is set aside. */
static bool found_unreadable(cv_store_t *self, int64_t report)
{
    if ((sqlite3_errcode(self->db) & 0xff) != SQLITE_CORRUPT)
        return false;
    size_t at = unreadable_slot(self, report);
    if (at < self->unreadable.n && self->unreadable.rowids[at] == report)
        return true;
    if (self->unreadable.n == self->unreadable.cap) {
        self->unreadable.cap = self->unreadable.cap ? 2 * self->unreadable.cap : 16;
        self->unreadable.rowids = cv_xrealloc(
            self->unreadable.rowids, self->unreadable.cap * sizeof *self->unreadable.rowids);
    }
    memmove(self->unreadable.rowids + at + 1, self->unreadable.rowids + at,
            (self->unreadable.n - at) * sizeof *self->unreadable.rowids);
    self->unreadable.rowids[at] = report;
    self->unreadable.n++;
    return true;
}

/*  The body read back must be the body stored: a changed byte (a disk, a
 *  hand) makes the report CV_GET_CORRUPT, never a delivery. */
static int check_body(const cv_store_t *self, sqlite3_stmt *s, int64_t report, const uint8_t *body,
                      size_t len, cv_error_t *err)
{
    uint8_t sum[CV_DIGEST_BYTES];
    self->checksum(sum, body, len);
    if (sqlite3_column_bytes(s, 1) == CV_DIGEST_BYTES &&
        memcmp(sqlite3_column_blob(s, 1), sum, CV_DIGEST_BYTES) == 0)
        return 1;
    cv_error_set(err, NULL, 0, 0,
                 "store: report '%s' of %s (rowid %lld) is corrupt: its body does not match"
                 " its checksum",
                 (const char *)sqlite3_column_text(s, 2), (const char *)sqlite3_column_text(s, 3),
                 (long long)report);
    return CV_GET_CORRUPT;
}

int cv_store_get_report(cv_store_t *self, int64_t report, uint8_t **body, size_t *len,
                        cv_error_t *err)
{
    /* in a turn, inside its transaction: a read on its own begins and ends
     * a read transaction of its own (locks on the WAL's index), which cost
     * a pump reading back a backlog more than the reads themselves */
    if (cv_store_unreadable(self, report)) {
        cv_error_set(err, NULL, 0, 0, "store: report %lld is set aside: SQLite cannot read it",
                     (long long)report);
        return CV_GET_UNREADABLE;
    }
    if (!writing(self, err))
        return -1;
    sqlite3_stmt *s = stmt(self, S_GET_BODY);
    sqlite3_bind_int64(s, 1, report);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE)
            cv_error_set(err, NULL, 0, 0, "store: no report %lld", (long long)report);
        else
            db_error(self, err, "read a report");
        sqlite3_reset(s);
        return rc == SQLITE_DONE ? 0 : found_unreadable(self, report) ? CV_GET_UNREADABLE : -1;
    }
    *len = (size_t)sqlite3_column_bytes(s, 0);
    const uint8_t *stored = sqlite3_column_blob(s, 0);
    int found = check_body(self, s, report, stored, *len, err);
    *body = found > 0 ? malloc(*len ? *len : 1) : NULL;
    if (*body)
        memcpy(*body, stored, *len);
    else if (found > 0 && !out_of_memory(err))
        found = -1;
    sqlite3_reset(s);
    return found;
}

/*  A report's row and its route, gone: no queue is built with it again. */
static bool delete_report(cv_store_t *self, int64_t report, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_DELETE_ROUTE);
    sqlite3_bind_int64(s, 1, report);
    if (!step_done(self, s, err))
        return false;
    s = stmt(self, S_DELETE_REVIEW);
    sqlite3_bind_int64(s, 1, report);
    if (!step_done(self, s, err))
        return false;
    s = stmt(self, S_DELETE_REPORT);
    sqlite3_bind_int64(s, 1, report);
    if (step_done(self, s, err))
        return true;
    found_unreadable(self, report); /* freeing its pages reads them: the next purge passes it */
    return false;
}

/* ------------------------------------------------------------------------ */
/*  Quarantine.                                                             */

static bool in_quarantine(cv_store_t *self, int64_t report, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_IN_QUARANTINE);
    sqlite3_bind_int64(s, 1, report);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        cv_error_set(err, NULL, 0, 0, "store: no report %lld to quarantine", (long long)report);
    else if (rc != SQLITE_ROW)
        db_error(self, err, "look in the quarantine");
    sqlite3_reset(s);
    return rc == SQLITE_ROW;
}

static bool move_to_quarantine(cv_store_t *self, int64_t report, const char *reason,
                               cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_QUARANTINE);
    sqlite3_bind_int64(s, 1, report);
    sqlite3_bind_text(s, 2, reason ? reason : "", -1, SQLITE_STATIC);
    if (!step_done(self, s, err))
        return false;
    if (sqlite3_changes(self->db) == 0) /* moved before, or never there */
        return in_quarantine(self, report, err);
    return delete_report(self, report, err);
}

bool cv_store_quarantine(cv_store_t *self, int64_t report, const char *reason, cv_error_t *err)
{
    if (!whole_begin(self, err))
        return false;
    return whole_end(self, move_to_quarantine(self, report, reason, err), err);
}

int cv_store_quarantined(cv_store_t *self, cv_quarantine_fn *each, void *arg, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_QUARANTINED);
    int n = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (each)
            each(arg, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
                 (const char *)sqlite3_column_text(s, 2), (const char *)sqlite3_column_text(s, 3),
                 (const char *)sqlite3_column_text(s, 4), (const char *)sqlite3_column_text(s, 5));
        n++;
    }
    if (rc != SQLITE_DONE)
        db_error(self, err, "list the quarantine");
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? n : -1;
}

int cv_store_wal_pages(const cv_store_t *self)
{
    return self->wal_pages;
}

void cv_store_checkpoint(cv_store_t *self)
{
    if (self->checkpointed == self->commits)
        return;                             /* nothing new since the last one */
    if (cv_syncer_checkpoint(self->syncer)) /* not while one runs */
        self->checkpointed = self->commits;
}

bool cv_store_checkpoint_now(cv_store_t *self, cv_error_t *err)
{
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(self->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc == SQLITE_BUSY) /* the checkpointer thread is at it: not a failure */
        return true;
    if (rc != SQLITE_OK) {
        db_error(self, err, "checkpoint");
        return false;
    }
    self->wal_pages = log - done;
    return true;
}

/*  The WAL is emptied in the checkpointer's thread past WAL_PAGES_BUSY,
 *  and here and now past WAL_PAGES_MAX: a WAL that grows faster than the
 *  thread empties it would otherwise grow without bound. */
#define WAL_BYTES_BUSY (16 * 1024 * 1024)
#define WAL_PAGES_MAX  65536 /* ~256 MB */

void cv_store_limit_wal(cv_store_t *self, uint64_t bytes)
{
    uint64_t pages = (bytes ? bytes : WAL_BYTES_BUSY) / (uint64_t)self->page_size;
    self->wal_pages_busy = pages < 1 ? 1 : pages > WAL_PAGES_MAX ? WAL_PAGES_MAX : (int)pages;
}

bool cv_store_checkpoint_when_due(cv_store_t *self, cv_error_t *err)
{
    char why[512];
    if (cv_syncer_checkpoint_failure(self->syncer, why, sizeof why)) {
        cv_error_set(err, NULL, 0, 0, "%s", why);
        return false;
    }
    if (self->wal_pages > WAL_PAGES_MAX)
        return cv_store_checkpoint_now(self, err);
    if (self->wal_pages > self->wal_pages_busy)
        cv_store_checkpoint(self);
    return true;
}

/* ------------------------------------------------------------------------ */
/*  Retention.                                                              */

static void free_strings(char **list, int n)
{
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

int cv_store_categories(cv_store_t *self, char ***out, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_CATEGORIES);
    char **list = NULL;
    int n = 0, rc;
    bool fits = true;
    while (fits && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        char **grown = realloc(list, (size_t)(n + 1) * sizeof *list);
        list = grown ? grown : list;
        char *category = grown ? strdup((const char *)sqlite3_column_text(s, 0)) : NULL;
        if (category)
            list[n++] = category;
        fits = category != NULL;
    }
    if (fits && rc != SQLITE_DONE)
        db_error(self, err, "list the categories");
    else if (!fits)
        out_of_memory(err);
    sqlite3_reset(s);
    if (!fits || rc != SQLITE_DONE) {
        free_strings(list, n);
        list = NULL, n = -1;
    }
    *out = list;
    return n;
}

typedef struct {
    char *id, *originator, *category;
    int64_t created, rowid;
} expired_t;

static void free_expired(expired_t *rows, int n)
{
    for (int i = 0; i < n; i++) {
        free(rows[i].id);
        free(rows[i].originator);
        free(rows[i].category);
    }
    free(rows);
}

static char *column_dup(sqlite3_stmt *s, int column)
{
    const unsigned char *text = sqlite3_column_text(s, column);
    return text ? strdup((const char *)text) : NULL;
}

/*  The rows of s, bound and selecting (id, originator, created, rowid,
 *  category), collected first: rows are deleted while the select would
 *  still run. -1 on an error. */
static int list_reports(cv_store_t *self, sqlite3_stmt *s, expired_t **out, cv_error_t *err)
{
    expired_t *rows = NULL;
    int n = 0, rc;
    bool fits = true;
    while (fits && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        expired_t *grown = realloc(rows, (size_t)(n + 1) * sizeof *rows);
        rows = grown ? grown : rows;
        fits = grown != NULL;
        if (!fits)
            break;
        rows[n] = (expired_t){column_dup(s, 0), column_dup(s, 1), column_dup(s, 4),
                              sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3)};
        fits = rows[n].id && rows[n].originator && rows[n].category;
        n++;
    }
    if (fits && rc != SQLITE_DONE)
        db_error(self, err, "list reports");
    else if (!fits)
        out_of_memory(err);
    sqlite3_reset(s);
    if (!fits || rc != SQLITE_DONE) {
        free_expired(rows, n);
        rows = NULL, n = -1;
    }
    *out = rows;
    return n;
}

static bool purge_one(cv_store_t *self, const expired_t *row, const char *rule, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_PURGE_RECORD);
    sqlite3_bind_text(s, 1, row->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, row->originator, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, row->category, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, row->created);
    sqlite3_bind_text(s, 5, rule, -1, SQLITE_STATIC);
    return step_done(self, s, err) && delete_report(self, row->rowid, err);
}

static bool purge_all(cv_store_t *self, const expired_t *rows, int n, const char *rule,
                      cv_error_t *err)
{
    if (!whole_begin(self, err))
        return false;
    bool ok = true;
    for (int i = 0; ok && i < n; i++)
        ok = purge_one(self, &rows[i], rule, err);
    return whole_end(self, ok, err);
}

/*  rows[0..n) less those set aside as unreadable, which no purge could
 *  delete; their new count (n when n < 0). */
static int pass_unreadable(const cv_store_t *self, expired_t *rows, int n)
{
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (!cv_store_unreadable(self, rows[i].rowid)) {
            rows[kept++] = rows[i];
            continue;
        }
        free(rows[i].id);
        free(rows[i].originator);
        free(rows[i].category);
    }
    return n < 0 ? n : kept;
}

static const char *column_text(sqlite3_stmt *s, int column)
{
    const unsigned char *text = sqlite3_column_text(s, column);
    return text ? (const char *)text : "";
}

/*  A dry run: each told of every row s lists but the unreadable, as it is
 *  read; nothing is kept, so that a question about a million reports (an
 *  administrator's `purge --dry-run at=` a far date) costs no memory for
 *  them. Their count, or -1. */
static int list_dry(cv_store_t *self, sqlite3_stmt *s, cv_purged_fn *each, void *arg,
                    cv_error_t *err)
{
    int n = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (cv_store_unreadable(self, sqlite3_column_int64(s, 3)))
            continue;
        n += n < INT_MAX;
        if (each)
            each(arg, column_text(s, 1), column_text(s, 0), column_text(s, 4),
                 sqlite3_column_int64(s, 2));
    }
    if (rc != SQLITE_DONE) {
        db_error(self, err, "list reports");
        n = -1; /* what was told stands for nothing: the caller answers the error */
    }
    sqlite3_reset(s);
    return n;
}

/*  Purges the reports s lists under rule, all or none; each is told of
 *  every one once all is done. */
static int purge_listed(cv_store_t *self, sqlite3_stmt *s, const char *rule, bool dry_run,
                        cv_purged_fn *each, void *arg, cv_error_t *err)
{
    if (dry_run)
        return list_dry(self, s, each, arg, err);
    expired_t *rows = NULL;
    int n = list_reports(self, s, &rows, err);
    n = pass_unreadable(self, rows, n);
    bool ok = n >= 0 && (n == 0 || purge_all(self, rows, n, rule, err));
    /* listed once all is done: a listing never names what an error kept */
    for (int i = 0; ok && each && i < n; i++)
        each(arg, rows[i].originator, rows[i].id, rows[i].category, rows[i].created);
    free_expired(rows, n);
    return ok ? n : -1;
}

/*  The LIMIT of a purge's listing that holds limit reports a purge can
 *  remove: those set aside as unreadable are listed and passed over, so
 *  they are counted in, or a step could list only them, again and again.
 *  -1 (none) for a dry run or no limit. */
static int64_t listing_limit(const cv_store_t *self, bool dry_run, int limit)
{
    return dry_run || limit <= 0 ? -1 : (int64_t)limit + (int64_t)cv_store_unreadable_count(self);
}

int cv_store_purge_reports(cv_store_t *self, const char *category, int64_t created_before,
                           const char *rule, bool dry_run, int limit, cv_purged_fn *each, void *arg,
                           cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_EXPIRED);
    sqlite3_bind_text(s, 1, category, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, created_before);
    sqlite3_bind_int64(s, 3, listing_limit(self, dry_run, limit));
    return purge_listed(self, s, rule, dry_run, each, arg, err);
}

int cv_store_purge_reviewed(cv_store_t *self, int64_t now, bool dry_run, int limit,
                            cv_purged_fn *each, void *arg, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_EXPIRED_REVIEWED);
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, listing_limit(self, dry_run, limit));
    return purge_listed(self, s, CV_STORE_REVIEW_RULE, dry_run, each, arg, err);
}

static bool set_review(cv_store_t *self, int64_t report, const cv_review_t *review, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, S_REVIEW_SET);
    sqlite3_bind_int64(s, 1, report);
    sqlite3_bind_int64(s, 2, review->dispose ? review->decided : review->retain_until);
    sqlite3_bind_text(s, 3, review->reason, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, review->reviewer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, review->decided);
    return step_done(self, s, err);
}

int cv_store_review(cv_store_t *self, const char *id, const char *originator,
                    const cv_review_t *review, cv_purged_fn *each, void *arg, cv_error_t *err)
{
    assert(review->dispose || review->retain_until > review->decided);
    sqlite3_stmt *s = stmt(self, S_FIND_REPORT);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    if (originator)
        sqlite3_bind_text(s, 2, originator, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 2);
    expired_t *rows = NULL;
    int listed = list_reports(self, s, &rows, err), n = listed;
    if (n == 1 &&
        !(whole_begin(self, err) &&
          whole_end(self,
                    set_review(self, rows[0].rowid, review, err) &&
                        (!review->dispose || purge_one(self, &rows[0], CV_STORE_REVIEW_RULE, err)),
                    err)))
        n = -1;
    if (n == 1 && each)
        each(arg, rows[0].originator, rows[0].id, rows[0].category, rows[0].created);
    free_expired(rows, listed);
    return n;
}

typedef struct {
    cv_purge_fn *each;
    void *arg;
} purge_each_t;

static void purged_by_id(void *arg, const char *originator, const char *id, const char *category,
                         int64_t created)
{
    (void)originator;
    const purge_each_t *caller = arg;
    caller->each(caller->arg, id, category, created);
}

int cv_store_purge(cv_store_t *self, const char *category, int64_t created_before, const char *rule,
                   bool dry_run, cv_purge_fn *each, void *arg, cv_error_t *err)
{
    purge_each_t caller = {each, arg};
    return cv_store_purge_reports(self, category, created_before, rule, dry_run, 0,
                                  each ? purged_by_id : NULL, &caller, err);
}
