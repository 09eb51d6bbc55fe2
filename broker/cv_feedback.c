/*  cv_feedback.c: feedback rows in the broker's store; see cv_feedback.h.
 *
 *  The table is made when a broker that knows feedback first opens a
 *  store: a table a broker of before does not read changes nothing it
 *  does (it finds no report at a feedback row's rowid, and drops the entry
 *  from its queue as it drops a purged report's).
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "cv_feedback.h"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS feedback(n INTEGER PRIMARY KEY, report INTEGER NOT NULL,"
    "  from_agency TEXT NOT NULL, value TEXT NOT NULL, text TEXT NOT NULL,"
    "  time INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS feedback_of ON feedback(report, from_agency);"
    /* a report's feedback goes with it, however it goes (retention, a
     * disposal, quarantine), and a feedback row's entry in the queues (its
     * routes row) with the feedback: what a recipient's feedback adds to
     * the store lives no longer than the report */
    "CREATE TRIGGER IF NOT EXISTS feedback_of_removed AFTER DELETE ON reports BEGIN"
    "  DELETE FROM feedback WHERE report = OLD.n;"
    "END;"
    "CREATE TRIGGER IF NOT EXISTS routes_of_feedback AFTER DELETE ON feedback BEGIN"
    "  DELETE FROM routes WHERE report = OLD.n;"
    "END;";

enum { F_NEXT_ROWID, F_PUT, F_COUNT, F_GET, F_FORGET, F_STATEMENTS };

static const char *const statements[F_STATEMENTS] = {
    /* the reports' sequence (AUTOINCREMENT): a report exists, so its row does */
    [F_NEXT_ROWID] = "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'reports'"
                     " RETURNING seq",
    [F_PUT] = "INSERT INTO feedback(n, report, from_agency, value, text, time)"
              " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [F_COUNT] = "SELECT count(*) FROM feedback WHERE report = ?1 AND from_agency = ?2",
    [F_GET] = "SELECT f.report, r.id, r.originator, f.from_agency, f.value, f.text, f.time"
              " FROM feedback f JOIN reports r ON r.n = f.report WHERE f.n = ?1",
    [F_FORGET] = "DELETE FROM feedback WHERE report NOT IN (SELECT n FROM reports)",
};

struct cv_feedback_t {
    cv_store_t *store;
    sqlite3_stmt *stmt[F_STATEMENTS];
};

static bool db_error(cv_feedback_t *self, cv_error_t *err, const char *what)
{
    cv_error_set(err, NULL, 0, 0, "store: %s: %s", what, sqlite3_errmsg(cv_store_db(self->store)));
    return false;
}

cv_feedback_t *cv_feedback_new(cv_store_t *store, cv_error_t *err)
{
    cv_feedback_t *self = calloc(1, sizeof *self);
    if (!self) {
        cv_error_set(err, NULL, 0, 0, "out of memory");
        return NULL;
    }
    self->store = store;
    sqlite3 *db = cv_store_db(store);
    bool ok = sqlite3_exec(db, schema_sql, NULL, NULL, NULL) == SQLITE_OK ||
              db_error(self, err, "cannot make the feedback table");
    for (int i = 0; ok && i < F_STATEMENTS; i++)
        ok = sqlite3_prepare_v3(db, statements[i], -1, SQLITE_PREPARE_PERSISTENT, &self->stmt[i],
                                NULL) == SQLITE_OK ||
             db_error(self, err, statements[i]);
    if (!ok)
        cv_feedback_destroy(&self);
    return self;
}

void cv_feedback_destroy(cv_feedback_t **self_p)
{
    cv_feedback_t *self = *self_p;
    if (!self)
        return;
    for (int i = 0; i < F_STATEMENTS; i++)
        sqlite3_finalize(self->stmt[i]);
    free(self);
    *self_p = NULL;
}

static sqlite3_stmt *stmt(cv_feedback_t *self, int which)
{
    sqlite3_stmt *s = self->stmt[which];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

int64_t cv_feedback_put(cv_feedback_t *self, const cv_feedback_row_t *row, cv_error_t *err)
{
    if (!cv_store_writing(self->store, err))
        return 0;
    sqlite3_stmt *s = stmt(self, F_NEXT_ROWID);
    int64_t rowid = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    /* RETURNING gives its row before the statement is done: step to the end */
    bool ok = rowid > 0 && sqlite3_step(s) == SQLITE_DONE;
    sqlite3_reset(s);
    if (!ok) {
        db_error(self, err, "giving feedback a rowid");
        return 0;
    }
    s = stmt(self, F_PUT);
    sqlite3_bind_int64(s, 1, rowid);
    sqlite3_bind_int64(s, 2, row->report);
    sqlite3_bind_text(s, 3, row->from, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, row->value, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, row->text ? row->text : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, row->time);
    ok = sqlite3_step(s) == SQLITE_DONE || db_error(self, err, "storing feedback");
    sqlite3_reset(s);
    return ok ? rowid : 0;
}

int cv_feedback_count(cv_feedback_t *self, int64_t report, const char *from, cv_error_t *err)
{
    sqlite3_stmt *s = stmt(self, F_COUNT);
    sqlite3_bind_int64(s, 1, report);
    sqlite3_bind_text(s, 2, from, -1, SQLITE_STATIC);
    int n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0)
                                          : (db_error(self, err, "counting feedback"), -1);
    sqlite3_reset(s);
    return n;
}

static const char *text_at(sqlite3_stmt *s, int column)
{
    const char *text = (const char *)sqlite3_column_text(s, column);
    return text ? text : "";
}

int cv_feedback_get(cv_feedback_t *self, int64_t rowid, cv_feedback_row_t *row, cv_error_t *err)
{
    /* the row stays readable until the statement is next reset: the next call */
    sqlite3_stmt *s = stmt(self, F_GET);
    sqlite3_bind_int64(s, 1, rowid);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW) {
        db_error(self, err, "reading feedback");
        return -1;
    }
    *row = (cv_feedback_row_t){
        .report = sqlite3_column_int64(s, 0),
        .report_id = text_at(s, 1),
        .originator = text_at(s, 2),
        .from = text_at(s, 3),
        .value = text_at(s, 4),
        .text = text_at(s, 5),
        .time = sqlite3_column_int64(s, 6),
    };
    return 1;
}

int cv_feedback_forget_orphans(cv_feedback_t *self, cv_error_t *err)
{
    if (!cv_store_writing(self->store, err))
        return -1;
    sqlite3_stmt *s = stmt(self, F_FORGET);
    bool ok = sqlite3_step(s) == SQLITE_DONE || db_error(self, err, "forgetting feedback");
    sqlite3_reset(s);
    return ok ? sqlite3_changes(cv_store_db(self->store)) : -1;
}
