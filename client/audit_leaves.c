/*  audit_leaves.c: see audit_leaves.h. */
#include <inttypes.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_leaves.h"
#include "cli.h"

bool audit_parse_count(const char *text, uint64_t *value)
{
    if (!*text || strspn(text, "0123456789") != strlen(text) || strlen(text) > 18)
        return false;
    *value = strtoull(text, NULL, 10);
    return true;
}

bool audit_load_verifier(const char *dir, const char *text, cv_note_verifier_t *out)
{
    cv_error_t err = {0};
    if (text) {
        if (!cv_note_verifier_parse(text, out, &err))
            return cli_error(CLI_USAGE, "--key: %s", err.msg), false;
        return true;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, CV_AUDIT_KEY_FILE);
    cv_note_signer_t *signer = cv_note_signer_load(path, &err);
    if (!signer)
        return cli_error(CLI_USAGE, "%s", err.msg), false;
    *out = *cv_note_signer_verifier(signer);
    cv_note_signer_destroy(&signer);
    return true;
}

int audit_seed_checkpoint(sqlite3 *db, const char *dir, uint64_t size,
                          const cv_note_verifier_t *verifier, cv_checkpoint_t *out)
{
    cv_error_t err = {0};
    char *note = cv_audit_checkpoint(db, size, &err);
    bool good = note && cv_checkpoint_open(note, strlen(note), verifier, out, &err);
    free(note);
    if (!good)
        return cli_error(CLI_FAILED, "%s: %s", dir, err.msg);
    return CLI_OK;
}

bool audit_leaves_each(sqlite3 *db, uint64_t upto, audit_leaf_each_fn *each, void *arg,
                       cv_error_t *err)
{
    if (!cv_audit_has_log(db, err))
        return false;
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT idx, data FROM tlog_leaves WHERE idx < ?1 ORDER BY idx",
                                -1, &s, NULL);
    if (rc == SQLITE_OK)
        sqlite3_bind_int64(s, 1, upto > INT64_MAX ? INT64_MAX : (int64_t)upto);
    while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW)
        if (!each(arg, (uint64_t)sqlite3_column_int64(s, 0), sqlite3_column_blob(s, 1),
                  (size_t)sqlite3_column_bytes(s, 1)))
            rc = SQLITE_DONE;
        else
            rc = SQLITE_OK;
    if (rc != SQLITE_DONE)
        cv_error_set(err, NULL, 0, 0, "audit log: reading leaves: %s", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return rc == SQLITE_DONE;
}

bool audit_parse_since(const char *text, uint64_t *ms)
{
    char stamp[64];
    int64_t seconds;
    bool date = strlen(text) == 10;
    snprintf(stamp, sizeof stamp, date ? "%sT00:00:00Z" : "%s", text);
    if (!cv_timestamp_parse(stamp, &seconds) || seconds < 0)
        return false;
    *ms = (uint64_t)seconds * 1000;
    return true;
}
