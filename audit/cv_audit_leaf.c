/*  cv_audit_leaf.c: the leaves' form, one compact JSON object an event.
 *
 *  Every leaf starts {"event":NAME,"time":MILLISECONDS, so that a reader
 *  can tell events apart without knowing them all; the keys after those
 *  are the event's own (docs/architecture.md lists them). The project's
 *  JSON writer writes them: strings escaped one way everywhere, numbers
 *  never quoted.
 */
#include <stdlib.h>
#include <string.h>

#include "audit_internal.h"

void cv_audit_leaf_open(cv_json_writer_t *writer, const char *event, uint64_t time_ms)
{
    cv_json_object_begin(writer);
    cv_json_key(writer, "event");
    cv_json_string(writer, event);
    cv_json_key(writer, "time");
    cv_json_uint(writer, time_ms);
}

cv_json_writer_t *cv_audit_leaf_begin(const char *event, uint64_t time_ms)
{
    cv_json_writer_t *writer = cv_json_writer_new(0);
    if (writer)
        cv_audit_leaf_open(writer, event, time_ms);
    return writer;
}

char *cv_audit_leaf_end(cv_json_writer_t **writer_p)
{
    if (!writer_p || !*writer_p)
        return NULL;
    cv_json_object_end(*writer_p);
    size_t len;
    return cv_json_writer_take(writer_p, &len);
}

/*  The JSON text of a key and string value, as the leaves write it:
 *  "key":"value" with the writer's escaping, so that it is found byte for
 *  byte. */
static char *key_value(const char *key, const char *value)
{
    cv_json_writer_t *w = cv_json_writer_new(0);
    if (!w)
        return NULL;
    cv_json_object_begin(w);
    cv_json_key(w, key);
    cv_json_string(w, value);
    cv_json_object_end(w);
    const char *text = cv_json_writer_text(w);
    size_t len = text ? strlen(text) : 0;
    char *pair = len >= 2 ? strndup(text + 1, len - 2) : NULL; /* without the braces */
    cv_json_writer_destroy(&w);
    return pair;
}

static bool holds(const void *data, size_t len, const char *pair)
{
    return pair && memmem(data, len, pair, strlen(pair)) != NULL;
}

int cv_audit_find_report(sqlite3 *db, const char *report_id, const char *agency,
                         cv_audit_leaf_fn *each, void *arg, cv_error_t *err)
{
    char *report = key_value("report", report_id),
         *to = agency ? key_value("agency", agency) : NULL;
    sqlite3_stmt *s = NULL;
    int found = -1;
    if (!report || (agency && !to))
        cv_error_set(err, NULL, 0, 0, "audit log: out of memory");
    else if (!cv_audit_has_log(db, err))
        ;
    else if (sqlite3_prepare_v2(db, "SELECT idx, data FROM tlog_leaves ORDER BY idx", -1, &s,
                                NULL) != SQLITE_OK)
        cv_error_set(err, NULL, 0, 0, "audit log: cannot read the leaves: %s", sqlite3_errmsg(db));
    else
        found = 0;
    int rc = SQLITE_DONE;
    while (found >= 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const void *data = sqlite3_column_blob(s, 1);
        size_t len = (size_t)sqlite3_column_bytes(s, 1);
        if (holds(data, len, report) && (!to || holds(data, len, to))) {
            found++;
            each(arg, (uint64_t)sqlite3_column_int64(s, 0), data, len);
        }
    }
    /* a page that cannot be read is not the end of the log */
    if (found >= 0 && rc != SQLITE_DONE) {
        cv_error_set(err, NULL, 0, 0, "audit log: cannot read the leaves: %s", sqlite3_errmsg(db));
        found = -1;
    }
    sqlite3_finalize(s);
    free(report);
    free(to);
    return found;
}
