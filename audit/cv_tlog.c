/*  cv_tlog.c: the audit log in SQLite, on the store's own connection.
 *
 *  tlog_leaves holds the leaves by index, tlog_frontier one row: the tree's
 *  right edge after the last leaf (cv_frontier_t), so that an append hashes
 *  O(log N) nodes and reads nothing else, and tlog_checkpoints the signed
 *  checkpoints by tree size, with when they were signed. Every write is in
 *  the caller's transaction; the tables are the only state, so a rolled
 *  back transaction or savepoint leaves the log as it was.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_internal.h"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS " TLOG_LEAVES_TABLE ";"
    "CREATE TABLE IF NOT EXISTS " TLOG_FRONTIER_TABLE ";"
    "INSERT OR IGNORE INTO tlog_frontier(id, size, nodes) VALUES (0, 0, x'');"
    "CREATE TABLE IF NOT EXISTS " TLOG_CHECKPOINTS_TABLE ";";

enum { S_FRONTIER, S_SET_FRONTIER, S_APPEND, S_LAST, S_CHECKPOINT, S_APPEND_BATCH, S_COUNT };

/*  Leaves inserted by one statement when a flush has this many or more: a
 *  statement's run (its cursor opened, its end) costs about as much as
 *  a row, and a turn writes hundreds of leaves. */
#define APPEND_BATCH 16

static const char *const statements[S_COUNT] = {
    [S_FRONTIER] = "SELECT size, nodes FROM tlog_frontier WHERE id = 0",
    [S_SET_FRONTIER] = "UPDATE tlog_frontier SET size = ?1, nodes = ?2 WHERE id = 0",
    [S_APPEND] = "INSERT INTO tlog_leaves(idx, data) VALUES (?1, ?2)",
    [S_LAST] = "SELECT size, signed FROM tlog_checkpoints ORDER BY size DESC LIMIT 1",
    [S_CHECKPOINT] = "INSERT INTO tlog_checkpoints(size, note, signed) VALUES (?1, ?2, ?3)",
    /* APPEND_BATCH leaves at consecutive indexes from ?1. OR FAIL: a row
     * refused leaves those before it in, so SQLite keeps no statement
     * journal (a copy of every page the statement changes, to take them
     * back); whoever appends rolls the transaction back on any error. */
    [S_APPEND_BATCH] = "INSERT OR FAIL INTO tlog_leaves(idx, data) VALUES "
                       "(?1 + 0, ?2), (?1 + 1, ?3), (?1 + 2, ?4), (?1 + 3, ?5), "
                       "(?1 + 4, ?6), (?1 + 5, ?7), (?1 + 6, ?8), (?1 + 7, ?9), "
                       "(?1 + 8, ?10), (?1 + 9, ?11), (?1 + 10, ?12), (?1 + 11, ?13), "
                       "(?1 + 12, ?14), (?1 + 13, ?15), (?1 + 14, ?16), (?1 + 15, ?17)",
};
_Static_assert(APPEND_BATCH == 16, "S_APPEND_BATCH holds 16 rows");

struct cv_tlog_t {
    sqlite3 *db;
    const cv_note_signer_t *signer;
    sqlite3_stmt *stmt[S_COUNT];
};

static bool db_error(cv_tlog_t *self, cv_error_t *err, const char *doing)
{
    cv_error_set(err, NULL, 0, 0, "audit log: %s: %s", doing, sqlite3_errmsg(self->db));
    return false;
}

/*  The tables, in the caller's transaction or in one of their own. */
static bool create_tables(sqlite3 *db, cv_error_t *err)
{
    bool own = sqlite3_get_autocommit(db) != 0;
    char *msg = NULL;
    int rc = own ? sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) : SQLITE_OK;
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, schema_sql, NULL, NULL, &msg);
    if (own)
        sqlite3_exec(db, rc == SQLITE_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        cv_error_set(err, NULL, 0, 0, "audit log: cannot create its tables: %s",
                     msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return rc == SQLITE_OK;
}

cv_tlog_t *cv_tlog_open(sqlite3 *db, const cv_note_signer_t *signer, cv_error_t *err)
{
    assert(db && signer);
    if (!create_tables(db, err))
        return NULL;
    cv_audit_summary_t summary;
    if (!cv_audit_verify(db, cv_note_signer_verifier(signer), &summary, err))
        return NULL; /* never sign over leaves that were changed */
    cv_tlog_t *self = calloc(1, sizeof *self);
    if (!self) {
        cv_error_set(err, NULL, 0, 0, "audit log: out of memory");
        return NULL;
    }
    self->db = db;
    self->signer = signer;
    for (int i = 0; i < S_COUNT; i++)
        if (sqlite3_prepare_v3(db, statements[i], -1, SQLITE_PREPARE_PERSISTENT, &self->stmt[i],
                               NULL) != SQLITE_OK) {
            db_error(self, err, statements[i]);
            cv_tlog_destroy(&self);
            break;
        }
    return self;
}

void cv_tlog_destroy(cv_tlog_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize((*self_p)->stmt[i]);
    free(*self_p);
    *self_p = NULL;
}

static bool in_transaction(cv_tlog_t *self, cv_error_t *err)
{
    if (sqlite3_get_autocommit(self->db) == 0)
        return true;
    cv_error_set(err, NULL, 0, 0,
                 "audit log: written only inside the transaction of what it records");
    return false;
}

static bool read_frontier(cv_tlog_t *self, cv_frontier_t *frontier, cv_error_t *err)
{
    sqlite3_stmt *s = self->stmt[S_FRONTIER];
    bool ok = false;
    if (sqlite3_step(s) == SQLITE_ROW) {
        int64_t size = sqlite3_column_int64(s, 0);
        ok = size >= 0 && cv_frontier_unpack(frontier, (uint64_t)size, sqlite3_column_blob(s, 1),
                                             (size_t)sqlite3_column_bytes(s, 1));
        if (!ok)
            cv_error_set(err, NULL, 0, 0, "audit log: the stored frontier is damaged");
    } else {
        db_error(self, err, "reading the frontier");
    }
    sqlite3_reset(s);
    return ok;
}

static bool write_frontier(cv_tlog_t *self, const cv_frontier_t *frontier, cv_error_t *err)
{
    uint8_t nodes[sizeof frontier->nodes];
    cv_frontier_pack(frontier, nodes);
    sqlite3_stmt *s = self->stmt[S_SET_FRONTIER];
    sqlite3_bind_int64(s, 1, (int64_t)frontier->size);
    sqlite3_bind_blob(s, 2, nodes, (int)cv_frontier_packed_size(frontier), SQLITE_STATIC);
    bool ok = sqlite3_step(s) == SQLITE_DONE && sqlite3_changes(self->db) == 1;
    sqlite3_reset(s);
    return ok || db_error(self, err, "saving the frontier");
}

/*  Binds a leaf's bytes to parameter param of s. */
static bool bind_leaf(sqlite3_stmt *s, int param, const void *data, size_t len, cv_error_t *err)
{
    if (len > CV_AUDIT_LEAF_MAX) { /* its readers would refuse it */
        cv_error_set(err, NULL, 0, 0, "audit log: a leaf of %zu bytes is too large", len);
        return false;
    }
    sqlite3_bind_blob(s, param, len ? data : "", (int)len, SQLITE_STATIC);
    return true;
}

/*  Runs s, whose leaves from index at are bound, and clears it. */
static bool run_insert(cv_tlog_t *self, sqlite3_stmt *s, cv_error_t *err)
{
    bool ok = sqlite3_step(s) == SQLITE_DONE;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return ok || db_error(self, err, "appending a leaf");
}

/*  Inserts the n leaves at indexes from at: APPEND_BATCH a statement while
 *  there are that many, then one a statement. */
static bool insert_leaves(cv_tlog_t *self, uint64_t at, const void *const *data, const size_t *lens,
                          size_t n, cv_error_t *err)
{
    for (size_t i = 0; i < n;) {
        int rows = n - i >= APPEND_BATCH ? APPEND_BATCH : 1;
        sqlite3_stmt *s = self->stmt[rows > 1 ? S_APPEND_BATCH : S_APPEND];
        sqlite3_bind_int64(s, 1, (int64_t)(at + i));
        for (int j = 0; j < rows; j++, i++)
            if (!bind_leaf(s, j + 2, data[i], lens[i], err))
                return false;
        if (!run_insert(self, s, err))
            return false;
    }
    return true;
}

/*  Leaf i's hash: the caller's (leaf_hash), or taken here. */
static bool hash_of(const void *const *data, const size_t *lens, size_t i,
                    cv_leaf_hash_fn *leaf_hash, void *arg, cv_hash_t *out, cv_error_t *err)
{
    if (!leaf_hash) {
        cv_merkle_leaf_hash(data[i], lens[i], out);
        return true;
    }
    if (!leaf_hash(arg, i, out)) {
        cv_error_set(err, NULL, 0, 0, "audit log: leaf %zu of a flush has no hash", i);
        return false;
    }
#ifndef NDEBUG /* a hash that is not the leaf's would be signed over: checked where tests run */
    cv_hash_t own;
    cv_merkle_leaf_hash(data[i], lens[i], &own);
    assert(cv_hash_equal(&own, out));
#endif
    return true;
}

/*  Every row first, then every hash: a caller hashing the leaves beside
 *  the loop (cv_tlog_append_many's leaf_hash) has them by then. */
bool cv_tlog_append_many(cv_tlog_t *self, const void *const *data, const size_t *lens, size_t n,
                         cv_leaf_hash_fn *leaf_hash, void *arg, uint64_t *first, cv_error_t *err)
{
    cv_frontier_t frontier;
    if (!in_transaction(self, err) || !read_frontier(self, &frontier, err))
        return false;
    if (first)
        *first = frontier.size;
    if (!insert_leaves(self, frontier.size, data, lens, n, err))
        return false;
    for (size_t i = 0; i < n; i++) {
        cv_hash_t leaf;
        if (!hash_of(data, lens, i, leaf_hash, arg, &leaf, err))
            return false;
        cv_frontier_append(&frontier, &leaf);
    }
    return n == 0 || write_frontier(self, &frontier, err);
}

bool cv_tlog_append(cv_tlog_t *self, const void *data, size_t len, uint64_t *index, cv_error_t *err)
{
    return cv_tlog_append_many(self, &data, &len, 1, NULL, NULL, index, err);
}

int64_t cv_tlog_size(cv_tlog_t *self, cv_error_t *err)
{
    cv_frontier_t frontier;
    return read_frontier(self, &frontier, err) ? (int64_t)frontier.size : -1;
}

/*  The last checkpoint's size and signing time; 0 and 0 when none. */
static bool last_checkpoint(cv_tlog_t *self, int64_t *size, int64_t *signed_at, cv_error_t *err)
{
    sqlite3_stmt *s = self->stmt[S_LAST];
    *size = 0, *signed_at = 0;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *size = sqlite3_column_int64(s, 0);
        *signed_at = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE || db_error(self, err, "reading checkpoints");
}

int64_t cv_tlog_checkpointed(cv_tlog_t *self, cv_error_t *err)
{
    int64_t size, signed_at;
    return last_checkpoint(self, &size, &signed_at, err) ? size : -1;
}

bool cv_tlog_checkpoint_due(cv_tlog_t *self, uint64_t every_leaves, int64_t every_seconds,
                            int64_t now)
{
    int64_t size = cv_tlog_size(self, NULL), last = 0, signed_at = 0;
    if (size <= 0 || !last_checkpoint(self, &last, &signed_at, NULL) || size <= last)
        return false;
    return (every_leaves && (uint64_t)(size - last) >= every_leaves) ||
           (every_seconds && now - signed_at >= every_seconds);
}

static bool store_checkpoint(cv_tlog_t *self, uint64_t size, const char *note, int64_t now,
                             cv_error_t *err)
{
    sqlite3_stmt *s = self->stmt[S_CHECKPOINT];
    sqlite3_bind_int64(s, 1, (int64_t)size);
    sqlite3_bind_text(s, 2, note, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now);
    bool ok = sqlite3_step(s) == SQLITE_DONE;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return ok || db_error(self, err, "storing a checkpoint");
}

int cv_tlog_checkpoint(cv_tlog_t *self, int64_t now, cv_error_t *err)
{
    cv_frontier_t frontier;
    int64_t last, signed_at;
    if (!in_transaction(self, err) || !read_frontier(self, &frontier, err) ||
        !last_checkpoint(self, &last, &signed_at, err))
        return -1;
    if (frontier.size == 0 || frontier.size <= (uint64_t)last)
        return 0;
    cv_checkpoint_t checkpoint = {.size = frontier.size};
    snprintf(checkpoint.origin, sizeof checkpoint.origin, "%s",
             cv_note_signer_verifier(self->signer)->name);
    cv_frontier_root(&frontier, &checkpoint.root);
    char *body = cv_checkpoint_body(&checkpoint);
    char *note = body ? cv_note_sign(self->signer, body) : NULL;
    bool ok = note ? store_checkpoint(self, frontier.size, note, now, err)
                   : (cv_error_set(err, NULL, 0, 0, "audit log: cannot sign a checkpoint"), false);
    free(body);
    free(note);
    return ok ? 1 : -1;
}
