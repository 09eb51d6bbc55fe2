/*  cv_admin.c: the admin commands' replies; see cv_admin.h.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cv_admin.h"
#include "cv_alloc.h"

#define PURGED_LISTED 1000 /* a reply, not an export: the count says the rest */

/*  The writer's text, copied, and the writer gone. */
static char *text_of(cv_json_writer_t **w)
{
    const char *text = cv_json_writer_text(*w);
    char *copy = text ? cv_xstrdup(text) : NULL;
    cv_json_writer_destroy(w);
    return copy;
}

static void utc_text(int64_t unix_seconds, char text[32])
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(text, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

char *cv_admin_stats_json(const cv_count_t *counts, size_t n, cv_admin_policy_t policy)
{
    cv_json_writer_t *w = cv_json_writer_new(0);
    cv_json_object_begin(w);
    for (size_t i = 0; i < n; i++) {
        cv_json_key(w, counts[i].name);
        cv_json_uint(w, counts[i].value);
    }
    cv_json_key(w, "policy");
    cv_json_string(w, policy.protocol);
    cv_json_key(w, "policy_hash");
    cv_json_string(w, policy.hash);
    cv_json_object_end(w);
    return text_of(&w);
}

/*  A label's value as the text format quotes it: \\, \" and \\n escaped. */
static void label_value(FILE *out, const char *text)
{
    for (const char *c = text ? text : ""; *c; c++) {
        if (*c == '\\' || *c == '"')
            fputc('\\', out);
        if (*c == '\n')
            fputs("\\n", out);
        else
            fputc(*c, out);
    }
}

char *cv_admin_metrics_text(const cv_count_t *counts, size_t n, cv_admin_policy_t policy)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        abort();
    for (size_t i = 0; i < n; i++) {
        const char *suffix = counts[i].counter ? "_total" : "";
        fprintf(out, "# HELP caveat_%s%s %s\n# TYPE caveat_%s%s %s\ncaveat_%s%s %llu\n",
                counts[i].name, suffix, counts[i].help, counts[i].name, suffix,
                counts[i].counter ? "counter" : "gauge", counts[i].name, suffix,
                (unsigned long long)counts[i].value);
    }
    fputs("# HELP caveat_policy_info the policy in force\n# TYPE caveat_policy_info gauge\n"
          "caveat_policy_info{protocol=\"",
          out);
    label_value(out, policy.protocol);
    fputs("\",hash=\"", out);
    label_value(out, policy.hash);
    fputs("\"} 1\n", out);
    fclose(out);
    return text;
}

char *cv_admin_sessions_json(const cv_admin_session_t *sessions, size_t n)
{
    cv_json_writer_t *w = cv_json_writer_new(0);
    cv_json_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        const cv_admin_session_t *s = &sessions[i];
        char since[32];
        utc_text(s->since, since);
        cv_json_object_begin(w);
        cv_json_key(w, "agency");
        cv_json_string(w, s->agency);
        cv_json_key(w, "feed");
        cv_json_string(w, s->feed);
        cv_json_key(w, "kind");
        cv_json_string(w, s->send_only ? "send-only" : "delivery");
        cv_json_key(w, "peer");
        cv_json_string(w, s->peer);
        cv_json_key(w, "since");
        cv_json_string(w, since);
        cv_json_key(w, "in_flight");
        cv_json_uint(w, s->in_flight);
        cv_json_key(w, "queued");
        cv_json_uint(w, s->queued);
        cv_json_object_end(w);
    }
    cv_json_array_end(w);
    return text_of(&w);
}

static void list_quarantined(void *arg, int64_t report, const char *id, const char *originator,
                             const char *category, const char *reason, const char *when)
{
    cv_json_writer_t *w = arg;
    cv_json_object_begin(w);
    cv_json_key(w, "report");
    cv_json_uint(w, (uint64_t)report);
    cv_json_key(w, "id");
    cv_json_string(w, id);
    cv_json_key(w, "originator");
    cv_json_string(w, originator);
    cv_json_key(w, "category");
    cv_json_string(w, category);
    cv_json_key(w, "reason");
    cv_json_string(w, reason);
    cv_json_key(w, "quarantined");
    cv_json_string(w, when);
    cv_json_object_end(w);
}

char *cv_admin_quarantined_json(cv_store_t *store, cv_error_t *err)
{
    cv_json_writer_t *w = cv_json_writer_new(0);
    cv_json_array_begin(w);
    int n = cv_store_quarantined(store, list_quarantined, w, err);
    cv_json_array_end(w);
    char *text = text_of(&w);
    if (n < 0) {
        free(text);
        return NULL;
    }
    return text;
}

const char *const cv_admin_purge_usage = "purge takes dry-run, trust-clock and, with dry-run, "
                                         "at=TIME";

bool cv_admin_purge_args(const char *const *args, size_t n, cv_purge_how_t *how)
{
    cv_purge_how_t asked = {0};
    for (size_t i = 0; i < n; i++) {
        const char *arg = args[i];
        if (strcmp(arg, "dry-run") == 0)
            asked.dry_run = true;
        else if (strcmp(arg, "trust-clock") == 0)
            asked.trust = true;
        else if (strncmp(arg, "at=", 3) != 0 || !cv_timestamp_parse(arg + 3, &asked.at))
            return false;
    }
    if (asked.at && !asked.dry_run) /* a time given is a question, never a purge */
        return false;
    *how = asked;
    return true;
}

struct cv_admin_purged_t {
    cv_json_writer_t *out; /* {"reports":[ so far */
    int listed;
};

cv_admin_purged_t *cv_admin_purged_new(void)
{
    cv_admin_purged_t *self = cv_xcalloc(1, sizeof *self);
    self->out = cv_json_writer_new(0);
    cv_json_object_begin(self->out);
    cv_json_key(self->out, "reports");
    cv_json_array_begin(self->out);
    return self;
}

void cv_admin_purged_add(void *list, const char *id, const char *category, int64_t created)
{
    cv_admin_purged_t *self = list;
    if (self->listed++ >= PURGED_LISTED)
        return;
    char when[32];
    utc_text(created, when);
    cv_json_object_begin(self->out);
    cv_json_key(self->out, "id");
    cv_json_string(self->out, id);
    cv_json_key(self->out, "category");
    cv_json_string(self->out, category);
    cv_json_key(self->out, "created");
    cv_json_string(self->out, when);
    cv_json_object_end(self->out);
}

char *cv_admin_purged_reply(cv_admin_purged_t **list_p, bool dry_run, int total, const char *error)
{
    cv_admin_purged_t *self = *list_p;
    assert(self);
    cv_json_array_end(self->out);
    cv_json_key(self->out, dry_run ? "would_purge" : "purged");
    cv_json_uint(self->out, total < 0 ? 0 : (uint64_t)total);
    cv_json_object_end(self->out);
    char *text = text_of(&self->out);
    free(self);
    *list_p = NULL;
    if (total >= 0 && text)
        return text;
    free(text);
    return cv_xstrdup(error ? error : "");
}
