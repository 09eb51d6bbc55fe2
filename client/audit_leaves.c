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

bool audit_leaf_accepted(const void *data, size_t len, uint64_t *time_ms)
{
    static const char prefix[] = "{\"event\":\"accepted\",\"time\":";
    const char *text = data;
    size_t at = sizeof prefix - 1;
    if (len < at || memcmp(text, prefix, at) != 0)
        return false;
    uint64_t ms = 0;
    size_t digits = 0;
    for (; at < len && text[at] >= '0' && text[at] <= '9' && digits < 19; at++, digits++)
        ms = ms * 10 + (uint64_t)(text[at] - '0');
    *time_ms = ms;
    return digits > 0;
}

static void scalar_json(cv_json_writer_t *w, struct fy_node *node)
{
    const char *text = fy_node_get_scalar0(node);
    bool plain = fy_node_get_style(node) == FYNS_PLAIN;
    if (plain && strcmp(text, "null") == 0)
        cv_json_string(w, NULL);
    else if (plain && (strcmp(text, "true") == 0 || strcmp(text, "false") == 0))
        cv_json_bool(w, text[0] == 't');
    else if (plain && *text && strspn(text, "0123456789") == strlen(text) && strlen(text) < 20)
        cv_json_uint(w, strtoull(text, NULL, 10));
    else
        cv_json_string(w, text);
}

void audit_node_json(cv_json_writer_t *w, struct fy_node *node)
{
    void *iter = NULL;
    if (fy_node_is_mapping(node)) {
        cv_json_object_begin(w);
        struct fy_node_pair *pair;
        while ((pair = fy_node_mapping_iterate(node, &iter))) {
            cv_json_key(w, fy_node_get_scalar0(fy_node_pair_key(pair)));
            audit_node_json(w, fy_node_pair_value(pair));
        }
        cv_json_object_end(w);
    } else if (fy_node_is_sequence(node)) {
        cv_json_array_begin(w);
        struct fy_node *item;
        while ((item = fy_node_sequence_iterate(node, &iter)))
            audit_node_json(w, item);
        cv_json_array_end(w);
    } else {
        scalar_json(w, node);
    }
}

bool audit_leaves_each(sqlite3 *db, uint64_t upto, audit_leaf_each_fn *each, void *arg,
                       cv_error_t *err)
{
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
