/*  cv_approval_store.c: approvals in the broker's store; see
 *  cv_approval_store.h. Statements are prepared once, on the store's own
 *  connection, and used only by the broker's loop.
 */
#include <sqlite3.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "cv_alloc.h"
#include "cv_approval_store.h"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS approvals(originator TEXT NOT NULL, report_id TEXT NOT NULL,"
    "  recipient TEXT NOT NULL, approved INTEGER NOT NULL,"
    "  PRIMARY KEY(originator, report_id, recipient)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS approval_releases(originator TEXT NOT NULL,"
    "  report_id TEXT NOT NULL, agency TEXT NOT NULL,"
    "  PRIMARY KEY(originator, report_id, agency)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS approval_routes(n INTEGER PRIMARY KEY, report INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS approval_routes_report ON approval_routes(report);"
    /* a report that leaves the store takes its approvals, and the routes
     * of its approved releases, with it */
    "CREATE TRIGGER IF NOT EXISTS approvals_of_removed AFTER DELETE ON reports BEGIN"
    "  DELETE FROM approvals WHERE originator = OLD.originator AND report_id = OLD.id;"
    "  DELETE FROM approval_releases WHERE originator = OLD.originator AND report_id = OLD.id;"
    "  DELETE FROM routes WHERE report IN (SELECT n FROM approval_routes WHERE report = OLD.n);"
    "  DELETE FROM approval_routes WHERE report = OLD.n;"
    " END;";

enum {
    S_REPORT,
    S_LIST,
    S_ADD,
    S_RELEASED,
    S_RELEASE,
    S_ROUTES,
    S_AGENCY_QUEUES,
    S_NEXT_ROWID,
    S_ALIAS,
    S_RESOLVE,
    S_COUNT
};

static const char *const statements[S_COUNT] = {
    [S_REPORT] = "SELECT n FROM reports WHERE originator = ?1 AND id = ?2",
    [S_LIST] = "SELECT recipient FROM approvals WHERE originator = ?1 AND report_id = ?2"
               " ORDER BY recipient",
    [S_ADD] = "INSERT OR IGNORE INTO approvals(originator, report_id, recipient, approved)"
              " VALUES(?1, ?2, ?3, ?4)",
    [S_RELEASED] = "SELECT 1 FROM approval_releases WHERE originator = ?1 AND report_id = ?2"
                   " AND agency = ?3",
    [S_RELEASE] = "INSERT OR IGNORE INTO approval_releases(originator, report_id, agency)"
                  " VALUES(?1, ?2, ?3)",
    [S_ROUTES] = "SELECT queues FROM routes WHERE report = ?1",
    [S_AGENCY_QUEUES] = "SELECT id FROM queues WHERE agency = ?1",
    /* the reports' AUTOINCREMENT sequence, taken one further: a rowid no
     * report will ever be given (SQLite lets sqlite_sequence be updated) */
    [S_NEXT_ROWID] = "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'reports'"
                     " RETURNING seq",
    [S_ALIAS] = "INSERT INTO approval_routes(n, report) VALUES(?1, ?2)",
    [S_RESOLVE] = "SELECT report FROM approval_routes WHERE n = ?1",
};

struct cv_approval_store_t {
    cv_store_t *store;
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    struct {
        char **names; /* the last list's, owned */
        size_t n, cap;
    } list;
};

static bool db_error(cv_approval_store_t *self, cv_error_t *err, const char *what)
{
    cv_error_set(err, NULL, 0, 0, "store: approvals: %s: %s", what, sqlite3_errmsg(self->db));
    return false;
}

cv_approval_store_t *cv_approval_store_new(cv_store_t *store, cv_error_t *err)
{
    cv_approval_store_t *self = cv_xcalloc(1, sizeof *self);
    self->store = store;
    self->db = cv_store_db(store);
    char *msg = NULL;
    bool ok = sqlite3_exec(self->db, schema_sql, NULL, NULL, &msg) == SQLITE_OK;
    if (!ok)
        cv_error_set(err, NULL, 0, 0, "store: cannot make the approvals' tables: %s",
                     msg ? msg : sqlite3_errmsg(self->db));
    sqlite3_free(msg);
    for (int i = 0; ok && i < S_COUNT; i++)
        if (sqlite3_prepare_v3(self->db, statements[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &self->stmt[i], NULL) != SQLITE_OK)
            ok = db_error(self, err, statements[i]);
    if (!ok)
        cv_approval_store_destroy(&self);
    return self;
}

static void forget_list(cv_approval_store_t *self)
{
    for (size_t i = 0; i < self->list.n; i++)
        free(self->list.names[i]);
    self->list.n = 0;
}

void cv_approval_store_destroy(cv_approval_store_t **self_p)
{
    cv_approval_store_t *self = *self_p;
    if (!self)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(self->stmt[i]);
    forget_list(self);
    free(self->list.names);
    free(self);
    *self_p = NULL;
}

/*  A statement reset and bound with up to three texts (NULL: not bound). */
static sqlite3_stmt *bound(cv_approval_store_t *self, int which, const char *a, const char *b,
                           const char *c)
{
    sqlite3_stmt *s = self->stmt[which];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    const char *texts[] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (texts[i])
            sqlite3_bind_text(s, i + 1, texts[i], -1, SQLITE_STATIC);
    return s;
}

/*  Steps s once: 1 with a row, 0 without, -1 on error (err set). */
static int step(cv_approval_store_t *self, sqlite3_stmt *s, cv_error_t *err)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    db_error(self, err, sqlite3_sql(s));
    sqlite3_reset(s);
    return -1;
}

/*  Steps a write: 1 when it changed a row, 0 when not, -1 on error. */
static int write_step(cv_approval_store_t *self, sqlite3_stmt *s, cv_error_t *err)
{
    if (!cv_store_writing(self->store, err))
        return -1;
    int rc = step(self, s, err);
    if (rc < 0)
        return -1;
    sqlite3_reset(s);
    return sqlite3_changes(self->db) > 0;
}

int cv_approval_store_report(cv_approval_store_t *self, const char *originator, const char *id,
                             int64_t *rowid, cv_error_t *err)
{
    sqlite3_stmt *s = bound(self, S_REPORT, originator, id, NULL);
    int found = step(self, s, err);
    if (found > 0)
        *rowid = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return found;
}

int cv_approval_store_list(cv_approval_store_t *self, const char *originator, const char *id,
                           cv_approvals_t *approvals, cv_error_t *err)
{
    forget_list(self);
    sqlite3_stmt *s = bound(self, S_LIST, originator, id, NULL);
    int rc;
    while ((rc = step(self, s, err)) > 0) {
        if (self->list.n == self->list.cap) {
            self->list.cap = self->list.cap ? self->list.cap * 2 : 8;
            self->list.names =
                cv_xrealloc(self->list.names, self->list.cap * sizeof *self->list.names);
        }
        self->list.names[self->list.n++] = cv_xstrdup((const char *)sqlite3_column_text(s, 0));
    }
    sqlite3_reset(s);
    approvals->to = (const char *const *)self->list.names;
    approvals->count = rc < 0 ? 0 : self->list.n;
    return rc < 0 ? -1 : (int)self->list.n;
}

int cv_approval_store_add(cv_approval_store_t *self, const char *originator, const char *id,
                          const char *to, cv_error_t *err)
{
    sqlite3_stmt *s = bound(self, S_ADD, originator, id, to);
    sqlite3_bind_int64(s, 4, (int64_t)time(NULL) * 1000);
    return write_step(self, s, err);
}

int cv_approval_store_released(cv_approval_store_t *self, const char *originator, const char *id,
                               const char *agency, cv_error_t *err)
{
    sqlite3_stmt *s = bound(self, S_RELEASED, originator, id, agency);
    int found = step(self, s, err);
    sqlite3_reset(s);
    return found;
}

bool cv_approval_store_release(cv_approval_store_t *self, const char *originator, const char *id,
                               const char *agency, cv_error_t *err)
{
    return write_step(self, bound(self, S_RELEASE, originator, id, agency), err) >= 0;
}

/*  agency's queue ids (its direct queue and its feeds'), in *ids (the
 *  caller frees): how many, -1 on a store error. */
static int agency_queues(cv_approval_store_t *self, const char *agency, int64_t **ids,
                         cv_error_t *err)
{
    sqlite3_stmt *s = bound(self, S_AGENCY_QUEUES, agency, NULL, NULL);
    int n = 0, cap = 0, found;
    *ids = NULL;
    while ((found = step(self, s, err)) > 0) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4;
            *ids = cv_xrealloc(*ids, (size_t)cap * sizeof **ids);
        }
        (*ids)[n++] = sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    return found < 0 ? -1 : n;
}

/*  The routes row lists the report's queues as 4-byte little-endian ids
 *  (cv_store.c). The agency's few queues are read once and looked for in
 *  it, so an approval's cost does not grow with how widely the report
 *  went before. */
int cv_approval_store_routed(cv_approval_store_t *self, int64_t report, const char *agency,
                             cv_error_t *err)
{
    int64_t *ids;
    int n = agency_queues(self, agency, &ids, err);
    if (n <= 0)
        return n; /* no queue: never routed to */
    sqlite3_stmt *s = bound(self, S_ROUTES, NULL, NULL, NULL);
    sqlite3_bind_int64(s, 1, report);
    int found = step(self, s, err);
    const uint8_t *queues = found > 0 ? sqlite3_column_blob(s, 0) : NULL;
    size_t len = queues ? (size_t)sqlite3_column_bytes(s, 0) : 0;
    int routed = found < 0 ? -1 : 0;
    for (size_t i = 0; i + 4 <= len && routed == 0; i += 4) {
        int64_t queue = (int64_t)queues[i] | (int64_t)queues[i + 1] << 8 |
                        (int64_t)queues[i + 2] << 16 | (int64_t)queues[i + 3] << 24;
        for (int k = 0; k < n && routed == 0; k++)
            routed = queue == ids[k];
    }
    sqlite3_reset(s);
    free(ids);
    return routed;
}

int64_t cv_approval_store_alias(cv_approval_store_t *self, int64_t report, cv_error_t *err)
{
    if (!cv_store_writing(self->store, err))
        return -1;
    sqlite3_stmt *s = bound(self, S_NEXT_ROWID, NULL, NULL, NULL);
    int found = step(self, s, err);
    int64_t rowid = found > 0 ? sqlite3_column_int64(s, 0) : -1;
    if (found >= 0) /* a RETURNING statement's change is made when it ends */
        found = step(self, s, err);
    sqlite3_reset(s);
    if (found < 0)
        return -1;
    if (rowid <= 0) {
        cv_error_set(err, NULL, 0, 0, "store: approvals: no report was ever stored");
        return -1;
    }
    s = bound(self, S_ALIAS, NULL, NULL, NULL);
    sqlite3_bind_int64(s, 1, rowid);
    sqlite3_bind_int64(s, 2, report);
    return write_step(self, s, err) > 0 ? rowid : -1;
}

int64_t cv_approval_store_resolve(cv_approval_store_t *self, int64_t rowid, cv_error_t *err)
{
    sqlite3_stmt *s = bound(self, S_RESOLVE, NULL, NULL, NULL);
    sqlite3_bind_int64(s, 1, rowid);
    int found = step(self, s, err);
    int64_t report = found > 0 ? sqlite3_column_int64(s, 0) : found;
    sqlite3_reset(s);
    return report;
}
