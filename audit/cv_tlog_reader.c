/*  cv_tlog_reader.c: the audit log read back: checked whole, and proofs
 *  drawn from it. Works on any connection, a read-only one included, and
 *  writes nothing.
 *
 *  Verifying hashes every leaf once, in index order, into a frontier, and
 *  compares the root with each checkpoint when the frontier reaches its
 *  size: the first checkpoint that differs bounds the leaf that changed to
 *  the leaves after the checkpoint before it. Proofs hash the leaves up to
 *  the checkpoint's size (cv_merkle.c), and each proof is checked against
 *  the checkpoint's root before it is given out.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_internal.h"

#define ROOT_TEXT_MAX sodium_base64_ENCODED_LEN(CV_HASH_BYTES, sodium_base64_VARIANT_ORIGINAL)

static bool db_error(sqlite3 *db, cv_error_t *err, const char *doing)
{
    cv_error_set(err, NULL, 0, 0, "audit log: %s: %s", doing, sqlite3_errmsg(db));
    return false;
}

/*  A percent-encoded file: URI, so that no character of dir is taken for
 *  a URI's '?' or '#'. */
static char *readonly_uri(const char *dir)
{
    size_t len = strlen(dir);
    char *uri = malloc(3 * len + 64);
    if (!uri)
        return NULL;
    char *out = uri + sprintf(uri, "file:");
    for (const unsigned char *c = (const unsigned char *)dir; *c; c++)
        out += strchr("?#%", *c) || *c < 0x21 || *c > 0x7e ? sprintf(out, "%%%02X", *c)
                                                           : sprintf(out, "%c", *c);
    sprintf(out, "/caveat.db?mode=ro");
    return uri;
}

/*  Whether DIR/caveat.db is a regular file, looked at without waiting:
 *  SQLite opens without O_NONBLOCK, and would wait for ever for a writer
 *  to a FIFO put in its place. */
static bool store_is_file(const char *dir, cv_error_t *err)
{
    char *path = NULL;
    if (asprintf(&path, "%s/caveat.db", dir) < 0) {
        cv_error_set(err, NULL, 0, 0, "%s/caveat.db: cannot open: out of memory", dir);
        return false;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    const char *why = fd < 0 ? strerror(errno) : "not a regular file";
    struct stat st;
    bool regular = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    if (!regular)
        cv_error_set(err, NULL, 0, 0, "%s: cannot open: %s", path, why);
    if (fd >= 0)
        close(fd);
    free(path);
    return regular;
}

/*  The store may be anyone's: what reading it may cost is bounded, and
 *  its schema is not trusted (cv_audit_has_log checks the log's tables
 *  too). Then a read transaction, held until closed: what a command reads
 *  is of one moment, its first read's, whatever caveatd commits
 *  meanwhile. */
static int bound_reader(sqlite3 *db)
{
    sqlite3_busy_timeout(db, 5000);
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, CV_AUDIT_LEAF_MAX);
    int rc = sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    if (rc == SQLITE_OK) /* functions in the schema: only those with no side effects */
        rc = sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    return rc == SQLITE_OK ? sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) : rc;
}

sqlite3 *cv_audit_open_readonly(const char *dir, cv_error_t *err)
{
    if (!store_is_file(dir, err))
        return NULL;
    char *uri = readonly_uri(dir);
    sqlite3 *db = NULL;
    int rc = uri ? sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL)
                 : SQLITE_NOMEM;
    free(uri);
    if (rc == SQLITE_OK)
        rc = bound_reader(db);
    if (rc != SQLITE_OK) {
        cv_error_set(err, NULL, 0, 0, "%s/caveat.db: cannot open: %s", dir,
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        db = NULL;
    }
    return db;
}

void cv_audit_end_read(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
}

/*  The log's tables, and each one's text as SQLite keeps it. */
static const char *const tables[][2] = {
    {"tlog_leaves", "CREATE TABLE " TLOG_LEAVES_TABLE},
    {"tlog_frontier", "CREATE TABLE " TLOG_FRONTIER_TABLE},
    {"tlog_checkpoints", "CREATE TABLE " TLOG_CHECKPOINTS_TABLE},
};

/*  Whether the schema row s holds (type, name, sql) is one of the log's
 *  tables as cv_tlog_open makes it; counts it in *found. */
static bool table_as_made(sqlite3_stmt *s, int *found, cv_error_t *err)
{
    const char *type = (const char *)sqlite3_column_text(s, 0),
               *name = (const char *)sqlite3_column_text(s, 1),
               *sql = (const char *)sqlite3_column_text(s, 2);
    for (size_t i = 0; name && i < sizeof tables / sizeof *tables; i++)
        if (strcmp(name, tables[i][0]) == 0 && type && strcmp(type, "table") == 0 && sql &&
            strcmp(sql, tables[i][1]) == 0) {
            ++*found;
            return true;
        }
    cv_error_set(err, NULL, 0, 0,
                 "audit log: %s is not the table caveat makes: the store's schema was changed",
                 name ? name : "a table");
    return false;
}

/*  The log's tables as caveat makes them, and nothing else on them: an
 *  index (with statistics to make SQLite prefer it) would be read instead
 *  of the table it indexes, and could hold other leaves than the table. */
bool cv_audit_has_log(sqlite3 *db, cv_error_t *err)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT type, name, sql FROM sqlite_master WHERE name"
                           " IN ('tlog_leaves', 'tlog_frontier', 'tlog_checkpoints') OR tbl_name"
                           " IN ('tlog_leaves', 'tlog_frontier', 'tlog_checkpoints')",
                           -1, &s, NULL) != SQLITE_OK) {
        sqlite3_finalize(s);
        return db_error(db, err, "reading the schema");
    }
    int rc, found = 0;
    bool ok = true;
    while (ok && (rc = sqlite3_step(s)) == SQLITE_ROW)
        ok = table_as_made(s, &found, err);
    if (ok && rc != SQLITE_DONE)
        ok = db_error(db, err, "reading the schema");
    else if (ok && found != 3) {
        cv_error_set(err, NULL, 0, 0, "audit log: this store has none (no tlog tables)");
        ok = false;
    }
    sqlite3_finalize(s);
    return ok;
}

/* ------------------------------------------------------------------------ */
/*  Verifying.                                                              */

/*  One stored checkpoint, its signature checked. */
typedef struct {
    int64_t size;
    cv_checkpoint_t checkpoint;
    bool kept; /* the reader's own (cv_audit_verify_kept), not the store's */
} stored_t;

typedef struct {
    stored_t *items;
    size_t count;
} checkpoints_t;

/*  Whether a checkpoint is stored under its own size. */
static bool size_stored(int64_t size, const cv_checkpoint_t *checkpoint, cv_error_t *err)
{
    if (size > 0 && checkpoint->size == (uint64_t)size)
        return true;
    cv_error_set(err, NULL, 0, 0,
                 "checkpoint at size %" PRId64 ": stored under that size, it says size %" PRIu64,
                 size, checkpoint->size);
    return false;
}

static bool check_one(sqlite3_stmt *s, const cv_note_verifier_t *verifier, stored_t *item,
                      cv_error_t *err)
{
    item->size = sqlite3_column_int64(s, 0);
    item->kept = false;
    const char *note = (const char *)sqlite3_column_text(s, 1);
    cv_error_t why;
    if (!note || !cv_checkpoint_open(note, (size_t)sqlite3_column_bytes(s, 1), verifier,
                                     &item->checkpoint, &why)) {
        cv_error_set(err, NULL, 0, 0, "checkpoint at size %" PRId64 ": %s", item->size,
                     note ? why.msg : "no note");
        return false;
    }
    return size_stored(item->size, &item->checkpoint, err);
}

/*  Every stored checkpoint, ascending, its signature checked. */
static bool load_checkpoints(sqlite3 *db, const cv_note_verifier_t *verifier, checkpoints_t *out,
                             cv_error_t *err)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT size, note FROM tlog_checkpoints ORDER BY size", -1, &s,
                           NULL) != SQLITE_OK)
        return db_error(db, err, "reading checkpoints");
    bool ok = true;
    int rc;
    while (ok && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        stored_t *grown = realloc(out->items, (out->count + 1) * sizeof *grown);
        ok = grown != NULL;
        if (ok) {
            out->items = grown;
            ok = check_one(s, verifier, &out->items[out->count++], err);
        } else {
            cv_error_set(err, NULL, 0, 0, "audit log: out of memory");
        }
    }
    if (ok && rc != SQLITE_DONE)
        ok = db_error(db, err, "reading checkpoints");
    sqlite3_finalize(s);
    return ok;
}

/*  The scan's state: the frontier so far and the next checkpoint to meet. */
typedef struct {
    cv_frontier_t frontier;
    const checkpoints_t *checkpoints;
    size_t next; /* the first checkpoint not yet met */
} scan_t;

/*  "checkpoint at size S", or the reader's own "kept checkpoint ...". */
static const char *which(const stored_t *checkpoint)
{
    return checkpoint->kept ? "the kept checkpoint, at size" : "checkpoint at size";
}

/*  When the leaves reach a checkpoint's size, its root must be theirs (a
 *  kept checkpoint's and a stored one's of the same size both). */
static bool meet_checkpoint(scan_t *scan, cv_error_t *err)
{
    while (scan->next < scan->checkpoints->count &&
           (uint64_t)scan->checkpoints->items[scan->next].size == scan->frontier.size) {
        cv_hash_t root;
        cv_frontier_root(&scan->frontier, &root);
        const stored_t *met = &scan->checkpoints->items[scan->next];
        if (!cv_hash_equal(&root, &met->checkpoint.root)) {
            uint64_t from =
                scan->next ? (uint64_t)scan->checkpoints->items[scan->next - 1].size : 0;
            cv_error_set(err, NULL, 0, 0,
                         "%s %" PRId64
                         ": the leaves do not hash to its root: one of leaves %" PRIu64
                         " to %" PRId64 " was changed, inserted, removed or moved",
                         which(met), met->size, from, met->size - 1);
            return false;
        }
        scan->next++;
    }
    return true;
}

/*  Leaf idx, hashed, joins the frontier. */
static bool scan_leaf(scan_t *scan, int64_t idx, const cv_hash_t *hash, cv_error_t *err)
{
    if (idx < 0 || (uint64_t)idx != scan->frontier.size) {
        if (idx < 0 || (uint64_t)idx < scan->frontier.size)
            cv_error_set(err, NULL, 0, 0, "leaf %" PRId64 ": not an index the log gives", idx);
        else
            cv_error_set(err, NULL, 0, 0,
                         "leaf %" PRIu64 " is missing: the leaves go from %" PRId64 " to %" PRId64,
                         scan->frontier.size, (int64_t)scan->frontier.size - 1, idx);
        return false;
    }
    cv_frontier_append(&scan->frontier, hash);
    return meet_checkpoint(scan, err);
}

/*  Leaves read in batches: while a thread hashes one batch and takes it
 *  into the frontier (in index order, as one leaf at a time would be), the
 *  reader reads the next, so that SQLite's reading and SHA-256 share the
 *  machine's cores. One batch is worked on at a time. */
#define BATCH_LEAVES 4096
/*  A batch ends at its first leaf past this many bytes: large leaves (a
 *  partnership's accepted ones, a crafted store's) take no more memory
 *  than small ones. */
#define BATCH_BYTES (8u << 20)

typedef struct {
    uint8_t *bytes; /* the leaves, one after another */
    size_t used, cap;
    size_t n;
    int64_t idx[BATCH_LEAVES];
    size_t off[BATCH_LEAVES], len[BATCH_LEAVES];
    cv_hash_t hash[BATCH_LEAVES];
} batch_t;

/*  A batch's work, away from the reader: hash its leaves and take them
 *  into the scan. The reader joins it before the next batch starts. */
typedef struct {
    scan_t *scan;
    batch_t *batch;
    bool ok;
    cv_error_t err;
} batch_work_t;

static bool take_batch(scan_t *scan, const batch_t *b, cv_error_t *err);

static void *work_batch(void *arg)
{
    batch_work_t *w = arg;
    batch_t *b = w->batch;
    for (size_t i = 0; i < b->n; i++)
        cv_merkle_leaf_hash(b->bytes + b->off[i], b->len[i], &b->hash[i]);
    w->ok = take_batch(w->scan, b, &w->err);
    return NULL;
}

/*  Up to BATCH_LEAVES rows of s into b; false with err on a read error. */
static bool read_batch(sqlite3 *db, sqlite3_stmt *s, batch_t *b, bool *done, cv_error_t *err)
{
    b->n = b->used = 0;
    int rc = SQLITE_ROW;
    while (b->n < BATCH_LEAVES && b->used < BATCH_BYTES && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        size_t len = (size_t)sqlite3_column_bytes(s, 1);
        if (b->cap - b->used < len) {
            size_t cap = b->cap ? b->cap : 1 << 20;
            while (cap - b->used < len)
                cap *= 2;
            uint8_t *grown = realloc(b->bytes, cap);
            if (!grown) {
                cv_error_set(err, NULL, 0, 0, "audit log: out of memory reading leaves");
                return false;
            }
            b->bytes = grown, b->cap = cap;
        }
        if (len)
            memcpy(b->bytes + b->used, sqlite3_column_blob(s, 1), len);
        b->idx[b->n] = sqlite3_column_int64(s, 0);
        b->off[b->n] = b->used, b->len[b->n] = len;
        b->used += len;
        b->n++;
    }
    *done = rc != SQLITE_ROW;
    return rc == SQLITE_ROW || rc == SQLITE_DONE || db_error(db, err, "reading leaves");
}

static bool take_batch(scan_t *scan, const batch_t *b, cv_error_t *err)
{
    bool ok = true;
    for (size_t i = 0; ok && i < b->n; i++)
        ok = scan_leaf(scan, b->idx[i], &b->hash[i], err);
    return ok;
}

static bool scan_leaves(sqlite3 *db, scan_t *scan, cv_error_t *err)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT idx, data FROM tlog_leaves ORDER BY idx", -1, &s, NULL) !=
        SQLITE_OK)
        return db_error(db, err, "reading leaves");
    batch_t *batches = calloc(2, sizeof *batches);
    bool done = false, ok = batches && read_batch(db, s, &batches[0], &done, err);
    if (!batches)
        cv_error_set(err, NULL, 0, 0, "audit log: out of memory reading leaves");
    for (int cur = 0; ok && batches[cur].n > 0; cur = !cur) {
        batch_work_t work = {.scan = scan, .batch = &batches[cur]};
        pthread_t worker;
        bool threaded = pthread_create(&worker, NULL, work_batch, &work) == 0;
        if (!threaded) /* no thread to be had: do it here */
            work_batch(&work);
        batches[!cur].n = 0;
        bool read = done || read_batch(db, s, &batches[!cur], &done, err);
        if (threaded)
            pthread_join(worker, NULL);
        /* the leaves before a read error are checked first: a changed leaf
         * is named, whatever follows it */
        if (!work.ok)
            *err = work.err;
        ok = work.ok && read;
    }
    for (int i = 0; batches && i < 2; i++)
        free(batches[i].bytes);
    free(batches);
    sqlite3_finalize(s);
    return ok;
}

static bool read_stored_frontier(sqlite3 *db, cv_frontier_t *stored, cv_error_t *err)
{
    sqlite3_stmt *s = NULL;
    int rc =
        sqlite3_prepare_v2(db, "SELECT size, nodes FROM tlog_frontier WHERE id = 0", -1, &s, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    bool read = rc == SQLITE_ROW && sqlite3_column_int64(s, 0) >= 0 &&
                cv_frontier_unpack(stored, (uint64_t)sqlite3_column_int64(s, 0),
                                   sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1));
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        db_error(db, err, "reading the frontier");
    else if (!read)
        cv_error_set(err, NULL, 0, 0, "audit log: the stored frontier is missing or damaged");
    sqlite3_finalize(s);
    return read;
}

/*  The stored frontier is what appending the leaves gave: a leaf after the
 *  last checkpoint changed, or one added or removed behind the log's back,
 *  shows here. */
static bool check_frontier(sqlite3 *db, const scan_t *scan, uint64_t checkpointed, cv_error_t *err)
{
    cv_frontier_t stored;
    if (!read_stored_frontier(db, &stored, err))
        return false;
    if (stored.size != scan->frontier.size)
        cv_error_set(err, NULL, 0, 0,
                     "the log has %" PRIu64 " leaves, its frontier says %" PRIu64
                     ": leaves were added or removed behind its back",
                     scan->frontier.size, stored.size);
    else if (!cv_frontier_equal(&stored, &scan->frontier))
        cv_error_set(err, NULL, 0, 0,
                     "the leaves do not hash to the stored frontier: one of leaves %" PRIu64
                     " to %" PRIu64 " (not yet checkpointed) was changed or moved",
                     checkpointed, scan->frontier.size - 1);
    return cv_frontier_equal(&stored, &scan->frontier);
}

static bool check_tail(const scan_t *scan, cv_error_t *err)
{
    if (scan->next == scan->checkpoints->count)
        return true;
    const stored_t *beyond = &scan->checkpoints->items[scan->next];
    cv_error_set(err, NULL, 0, 0,
                 "%s %" PRId64 " covers leaves the log no longer has: it has %" PRIu64
                 " (truncated)",
                 which(beyond), beyond->size, scan->frontier.size);
    return false;
}

/*  The reader's kept checkpoint among the stored ones, in order of size
 *  (before a stored one of its size: it is met first). */
static bool add_kept(checkpoints_t *checkpoints, const cv_checkpoint_t *kept, cv_error_t *err)
{
    if (kept->size == 0 || kept->size > INT64_MAX) {
        cv_error_set(err, NULL, 0, 0, "the kept checkpoint is of no leaves: nothing to hold to");
        return false;
    }
    stored_t *grown = realloc(checkpoints->items, (checkpoints->count + 1) * sizeof *grown);
    if (!grown) {
        cv_error_set(err, NULL, 0, 0, "audit log: out of memory");
        return false;
    }
    checkpoints->items = grown;
    size_t at = 0;
    while (at < checkpoints->count && (uint64_t)grown[at].size < kept->size)
        at++;
    memmove(&grown[at + 1], &grown[at], (checkpoints->count - at) * sizeof *grown);
    grown[at] = (stored_t){(int64_t)kept->size, *kept, true};
    checkpoints->count++;
    return true;
}

static bool verify_log(sqlite3 *db, const cv_note_verifier_t *verifier, const cv_checkpoint_t *kept,
                       cv_audit_summary_t *summary, cv_error_t *err)
{
    checkpoints_t checkpoints = {0};
    scan_t scan = {.checkpoints = &checkpoints};
    cv_frontier_init(&scan.frontier);
    bool ok = cv_audit_has_log(db, err) && load_checkpoints(db, verifier, &checkpoints, err);
    size_t stored = checkpoints.count;
    ok = ok && (!kept || add_kept(&checkpoints, kept, err)) && scan_leaves(db, &scan, err) &&
         check_tail(&scan, err);
    /* the last of the store's own */
    for (size_t i = checkpoints.count; ok && i-- > 0;)
        if (!checkpoints.items[i].kept) {
            summary->last = checkpoints.items[i].checkpoint;
            summary->checkpointed = summary->last.size;
            break;
        }
    ok = ok && check_frontier(db, &scan, summary->checkpointed, err);
    summary->leaves = scan.frontier.size;
    summary->checkpoints = stored;
    cv_frontier_root(&scan.frontier, &summary->root);
    free(checkpoints.items);
    return ok;
}

/*  The checkpoints, the leaves and the frontier are read in one read
 *  transaction (the caller's, when one is open): read one statement at a
 *  time, a leaf the broker committed between them would look added behind
 *  the log's back. */
bool cv_audit_verify(sqlite3 *db, const cv_note_verifier_t *verifier, cv_audit_summary_t *summary,
                     cv_error_t *err)
{
    return cv_audit_verify_kept(db, verifier, NULL, summary, err);
}

bool cv_audit_verify_kept(sqlite3 *db, const cv_note_verifier_t *verifier,
                          const cv_checkpoint_t *kept, cv_audit_summary_t *summary, cv_error_t *err)
{
    memset(summary, 0, sizeof *summary);
    bool own = sqlite3_get_autocommit(db) != 0;
    if (own && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return db_error(db, err, "starting to read");
    bool ok = verify_log(db, verifier, kept, summary, err);
    if (own)
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return ok;
}

/* ------------------------------------------------------------------------ */
/*  Proving.                                                                */

/*  Leaf hashes read by index, for cv_merkle's proofs. */
typedef struct {
    sqlite3 *db;
    sqlite3_stmt *stmt;
    cv_error_t *err;
} leaf_reader_t;

static bool read_leaf_hash(void *arg, uint64_t index, cv_hash_t *out)
{
    leaf_reader_t *reader = arg;
    sqlite3_bind_int64(reader->stmt, 1, (int64_t)index);
    int rc = sqlite3_step(reader->stmt);
    if (rc == SQLITE_ROW)
        cv_merkle_leaf_hash(sqlite3_column_blob(reader->stmt, 0),
                            (size_t)sqlite3_column_bytes(reader->stmt, 0), out);
    else if (rc == SQLITE_DONE)
        cv_error_set(reader->err, NULL, 0, 0, "leaf %" PRIu64 " is missing", index);
    else
        db_error(reader->db, reader->err, "reading leaves");
    sqlite3_reset(reader->stmt);
    return rc == SQLITE_ROW;
}

static bool open_reader(sqlite3 *db, leaf_reader_t *reader, cv_error_t *err)
{
    *reader = (leaf_reader_t){db, NULL, err};
    return cv_audit_has_log(db, err) &&
           (sqlite3_prepare_v2(db, "SELECT data FROM tlog_leaves WHERE idx = ?1", -1, &reader->stmt,
                               NULL) == SQLITE_OK ||
            db_error(db, err, "reading leaves"));
}

static const char checkpoint_of_size[] = "SELECT size, note FROM tlog_checkpoints WHERE size = ?1";

/*  The note (malloc'd) and size of the row sql selects, "SELECT size, note
 *  FROM tlog_checkpoints ..." with bound bound to ?1. NULL with err; "no
 *  checkpoint " and missing when there is none. */
static char *read_note(sqlite3 *db, const char *sql, int64_t bound, const char *missing,
                       int64_t *size, cv_error_t *err)
{
    sqlite3_stmt *s = NULL;
    char *note = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        db_error(db, err, "reading checkpoints");
        return NULL;
    }
    sqlite3_bind_int64(s, 1, bound);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_text(s, 1)) {
        *size = sqlite3_column_int64(s, 0);
        if (!(note = strdup((const char *)sqlite3_column_text(s, 1))))
            cv_error_set(err, NULL, 0, 0, "audit log: out of memory");
    } else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        cv_error_set(err, NULL, 0, 0, "audit log: no checkpoint %s", missing);
    else
        db_error(db, err, "reading checkpoints");
    sqlite3_finalize(s);
    return note;
}

/*  A stored checkpoint's note (malloc'd) and its parsed body, signature
 *  not checked (that is for whoever reads the proof): the one sql selects
 *  (read_note). Refused when the note's size is not the row's: rows are
 *  chosen by size, and a note moved to another's row would be taken for
 *  that size's. NULL with err. */
static char *stored_checkpoint(sqlite3 *db, const char *sql, int64_t bound, cv_checkpoint_t *out,
                               const char *missing, cv_error_t *err)
{
    int64_t size = 0;
    size_t body_len = 0;
    char *note = read_note(db, sql, bound, missing, &size, err);
    if (note && !(cv_note_body(note, strlen(note), &body_len, err) &&
                  cv_checkpoint_parse(note, body_len, out, err) && size_stored(size, out, err))) {
        free(note);
        note = NULL;
    }
    return note;
}

/*  Appends text to a malloc'd string; *out is freed and NULL on failure. */
static void append(char **out, const char *text)
{
    if (!*out)
        return;
    size_t had = strlen(*out), len = strlen(text);
    char *grown = realloc(*out, had + len + 1);
    if (!grown) {
        free(*out);
        *out = NULL;
        return;
    }
    memcpy(grown + had, text, len + 1);
    *out = grown;
}

static void append_hashes(char **out, const cv_hash_t *hashes, int n)
{
    for (int i = 0; i < n; i++) {
        char line[ROOT_TEXT_MAX + 1];
        cv_base64_encode(hashes[i].bytes, CV_HASH_BYTES, line, ROOT_TEXT_MAX);
        strcat(line, "\n");
        append(out, line);
    }
}

/*  "c2sp.org/tlog-proof@v1", the extra line, the index. */
static char *proof_header(uint64_t index, const void *extra, size_t extra_len)
{
    char *text = strdup("c2sp.org/tlog-proof@v1\n");
    if (extra) {
        size_t size = sodium_base64_ENCODED_LEN(extra_len, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(size);
        if (b64) {
            cv_base64_encode(extra, extra_len, b64, size);
            append(&text, "extra ");
            append(&text, b64);
            append(&text, "\n");
        }
        free(b64);
        if (!b64) {
            free(text);
            return NULL;
        }
    }
    char line[64];
    snprintf(line, sizeof line, "index %" PRIu64 "\n", index);
    append(&text, line);
    return text;
}

char *cv_audit_proof_text(uint64_t index, const void *extra, size_t extra_len,
                          const cv_hash_t *proof, int n, const char *note)
{
    char *text = proof_header(index, extra, extra_len);
    append_hashes(&text, proof, n);
    append(&text, "\n");
    append(&text, note);
    return text;
}

/*  The inclusion proof of index in checkpoint, checked against its root. */
static int prove_inclusion(leaf_reader_t *reader, uint64_t index, const cv_checkpoint_t *checkpoint,
                           cv_hash_t proof[CV_MERKLE_MAX_PROOF], cv_error_t *err)
{
    if (index >= checkpoint->size) { /* cv_merkle would fail without a word */
        cv_error_set(err, NULL, 0, 0,
                     "audit log: the checkpoint says a tree of %" PRIu64
                     " leaves, which has no leaf %" PRIu64,
                     checkpoint->size, index);
        return -1;
    }
    cv_hash_t leaf;
    int n = read_leaf_hash(reader, index, &leaf)
                ? cv_merkle_inclusion_proof(index, checkpoint->size, read_leaf_hash, reader, proof)
                : -1;
    if (n >= 0 && !cv_merkle_verify_inclusion(index, checkpoint->size, &leaf, proof, (size_t)n,
                                              &checkpoint->root)) {
        cv_error_set(err, NULL, 0, 0,
                     "checkpoint at size %" PRIu64 ": the leaves do not hash to its root"
                     " (caveat audit verify says which)",
                     checkpoint->size);
        return -1;
    }
    return n;
}

/*  The checkpoint a proof of index is in: of size tree_size, or the
 *  latest. */
static char *proving_checkpoint(sqlite3 *db, uint64_t index, uint64_t tree_size,
                                cv_checkpoint_t *checkpoint, cv_error_t *err)
{
    char missing[64];
    if (tree_size && tree_size <= index) {
        cv_error_set(err, NULL, 0, 0,
                     "audit log: a tree of %" PRIu64 " leaves has no leaf %" PRIu64, tree_size,
                     index);
        return NULL;
    }
    if (tree_size) {
        snprintf(missing, sizeof missing, "of size %" PRIu64, tree_size);
        return stored_checkpoint(db, checkpoint_of_size, (int64_t)tree_size, checkpoint, missing,
                                 err);
    }
    snprintf(missing, sizeof missing, "covers leaf %" PRIu64 " yet", index);
    return stored_checkpoint(db,
                             "SELECT size, note FROM tlog_checkpoints WHERE size > ?1"
                             " ORDER BY size DESC LIMIT 1",
                             (int64_t)index, checkpoint, missing, err);
}

char *cv_audit_prove(sqlite3 *db, uint64_t index, uint64_t tree_size, const void *extra,
                     size_t extra_len, cv_error_t *err)
{
    leaf_reader_t reader = {0};
    cv_checkpoint_t checkpoint;
    cv_hash_t proof[CV_MERKLE_MAX_PROOF];
    char *note = NULL, *text = NULL;
    int n = -1;
    if (index >= INT64_MAX || tree_size > INT64_MAX)
        cv_error_set(err, NULL, 0, 0, "audit log: no leaf %" PRIu64, index);
    else if (open_reader(db, &reader, err) &&
             (note = proving_checkpoint(db, index, tree_size, &checkpoint, err)))
        n = prove_inclusion(&reader, index, &checkpoint, proof, err);
    if (n >= 0)
        text = cv_audit_proof_text(index, extra, extra_len, proof, n, note);
    if (n >= 0 && !text)
        cv_error_set(err, NULL, 0, 0, "audit log: out of memory");
    sqlite3_finalize(reader.stmt);
    free(note);
    return text;
}

char *cv_audit_checkpoint(sqlite3 *db, uint64_t size, cv_error_t *err)
{
    cv_checkpoint_t checkpoint;
    char missing[64];
    snprintf(missing, sizeof missing, size ? "of size %" PRIu64 : "yet", size);
    if (size > INT64_MAX) {
        cv_error_set(err, NULL, 0, 0, "audit log: no checkpoint %s", missing);
        return NULL;
    }
    if (!cv_audit_has_log(db, err))
        return NULL;
    return stored_checkpoint(
        db,
        size ? checkpoint_of_size
             : "SELECT size, note FROM tlog_checkpoints ORDER BY size DESC LIMIT 1",
        (int64_t)size, &checkpoint, missing, err);
}

static int prove_consistency(leaf_reader_t *reader, const cv_checkpoint_t *old,
                             const cv_checkpoint_t *new, cv_hash_t proof[CV_MERKLE_MAX_PROOF],
                             cv_error_t *err)
{
    if (old->size > new->size) { /* cv_merkle would fail without a word */
        cv_error_set(err, NULL, 0, 0,
                     "audit log: the old checkpoint says %" PRIu64
                     " leaves, more than the new one's %" PRIu64,
                     old->size, new->size);
        return -1;
    }
    int n = cv_merkle_consistency_proof(old->size, new->size, read_leaf_hash, reader, proof);
    if (n >= 0 && !cv_merkle_verify_consistency(old->size, new->size, &old->root, &new->root, proof,
                                                (size_t)n)) {
        cv_error_set(err, NULL, 0, 0,
                     "checkpoints at sizes %" PRIu64 " and %" PRIu64
                     " are not consistent with the leaves (caveat audit verify says which)",
                     old->size, new->size);
        return -1;
    }
    return n;
}

/*  The proof's text: its header line, then the hashes. */
static char *consistency_text(uint64_t old_size, uint64_t new_size, const cv_hash_t *proof, int n)
{
    char header[96];
    snprintf(header, sizeof header, "caveat/tlog-consistency@v1 %" PRIu64 " %" PRIu64 "\n",
             old_size, new_size);
    char *text = strdup(header);
    append_hashes(&text, proof, n);
    return text;
}

char *cv_audit_consistency(sqlite3 *db, uint64_t old_size, uint64_t new_size, cv_error_t *err)
{
    if (old_size == 0 || old_size > new_size || new_size > INT64_MAX) {
        cv_error_set(err, NULL, 0, 0,
                     "audit log: no consistency proof from size %" PRIu64 " to %" PRIu64
                     ": the old size must be at least 1 and at most the new",
                     old_size, new_size);
        return NULL;
    }
    leaf_reader_t reader = {0};
    cv_checkpoint_t old, new;
    cv_hash_t proof[CV_MERKLE_MAX_PROOF];
    char *old_note = NULL, *new_note = NULL, *text = NULL, old_missing[64], new_missing[64];
    snprintf(old_missing, sizeof old_missing, "of size %" PRIu64, old_size);
    snprintf(new_missing, sizeof new_missing, "of size %" PRIu64, new_size);
    int n = -1;
    if (open_reader(db, &reader, err) &&
        (old_note = stored_checkpoint(db, checkpoint_of_size, (int64_t)old_size, &old, old_missing,
                                      err)) &&
        (new_note =
             stored_checkpoint(db, checkpoint_of_size, (int64_t)new_size, &new, new_missing, err)))
        n = prove_consistency(&reader, &old, &new, proof, err);
    if (n >= 0 && !(text = consistency_text(old_size, new_size, proof, n)))
        cv_error_set(err, NULL, 0, 0, "audit log: out of memory");
    sqlite3_finalize(reader.stmt);
    free(old_note);
    free(new_note);
    return text;
}
