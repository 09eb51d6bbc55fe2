/*  audit_fixture.c: see audit_fixture.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_fixture.h"
#include "cv_audit.h"
#include "cv_proto.h"

/*  A fixed time, so that the same index gives the same leaf. */
#define FIXTURE_TIME_MS 1796083200000ULL

char *audit_fixture_leaf(uint64_t index)
{
    char report[32], from[32], to[32];
    snprintf(report, sizeof report, "R-%llu", (unsigned long long)index);
    snprintf(from, sizeof from, "agency-%llu", (unsigned long long)(index % 5));
    snprintf(to, sizeof to, "agency-%llu", (unsigned long long)((index + 1) % 5));
    cv_json_writer_t *w = cv_audit_leaf_begin("accepted", FIXTURE_TIME_MS + index);
    cv_json_key(w, "report");
    cv_json_string(w, report);
    cv_json_key(w, "originator");
    cv_json_string(w, from);
    cv_json_key(w, "to");
    cv_json_array_begin(w);
    cv_json_object_begin(w);
    cv_json_key(w, "agency");
    cv_json_string(w, to);
    cv_json_key(w, "decision");
    cv_json_string(w, "share");
    cv_json_object_end(w);
    cv_json_array_end(w);
    return cv_audit_leaf_end(&w);
}

static bool exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return true;
    fprintf(stderr, "audit_fixture: %s: %s\n", sql, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return false;
}

/*  WAL as the broker's store; no fsync: a test's data needs no power-loss
 *  safety. */
static sqlite3 *open_store(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/caveat.db", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "audit_fixture: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    close(fd);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        !exec(db, "PRAGMA journal_mode=WAL") || !exec(db, "PRAGMA synchronous=OFF")) {
        fprintf(stderr, "audit_fixture: %s: cannot open\n", path);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

/*  count leaves from index first, in one transaction, then a checkpoint
 *  when sign is set. */
static bool append_batch(cv_tlog_t *log, sqlite3 *db, uint64_t first, uint64_t count, bool sign,
                         FILE *out)
{
    cv_error_t err = {0};
    bool ok = exec(db, "BEGIN IMMEDIATE");
    for (uint64_t i = first; ok && i < first + count; i++) {
        char *leaf = audit_fixture_leaf(i);
        uint64_t index = 0;
        ok = leaf && cv_tlog_append(log, leaf, strlen(leaf), &index, &err) && index == i;
        if (ok && out)
            fprintf(out, "%s\n", leaf);
        free(leaf);
    }
    if (ok && sign)
        ok = cv_tlog_checkpoint(log, 1796083200 + (int64_t)first, &err) >= 0;
    if (!ok)
        fprintf(stderr, "audit_fixture: %s\n", err.msg);
    return exec(db, ok ? "COMMIT" : "ROLLBACK") && ok;
}

/*  After the leaves the log has already. */
static bool fill(cv_tlog_t *log, sqlite3 *db, uint64_t leaves, uint64_t every, uint64_t tail,
                 FILE *out)
{
    cv_error_t err = {0};
    int64_t had = cv_tlog_size(log, &err);
    if (had < 0) {
        fprintf(stderr, "audit_fixture: %s\n", err.msg);
        return false;
    }
    uint64_t start = (uint64_t)had, end = start + leaves;
    uint64_t step = every ? every : (leaves ? leaves : 1);
    bool ok = true;
    for (uint64_t at = start; ok && at < end; at += step)
        ok = append_batch(log, db, at, at + step <= end ? step : end - at, true, out);
    return ok && (tail == 0 || append_batch(log, db, end, tail, false, out));
}

bool audit_fixture_make(const char *dir, uint64_t leaves, uint64_t every, uint64_t tail, FILE *out)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "audit_fixture: %s: %s\n", dir, strerror(errno));
        return false;
    }
    cv_error_t err = {0};
    cv_note_signer_t *signer = cv_audit_key_open(dir, AUDIT_FIXTURE_ORIGIN, &err);
    sqlite3 *db = signer ? open_store(dir) : NULL;
    cv_tlog_t *log = db ? cv_tlog_open(db, signer, &err) : NULL;
    if (!log && err.msg[0])
        fprintf(stderr, "audit_fixture: %s\n", err.msg);
    bool ok = log && fill(log, db, leaves, every, tail, out);
    cv_tlog_destroy(&log);
    sqlite3_close(db);
    cv_note_signer_destroy(&signer);
    return ok;
}

void audit_fixture_remove(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}
