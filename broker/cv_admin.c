/*  cv_admin.c: the admin commands' replies; see cv_admin.h.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cv_admin.h"
#include "cv_alloc.h"
#include "cv_policy.h"

#define PURGED_LISTED 1000 /* a reply, not an export: the count says the rest */

/*  The writer's text, copied, and the writer gone. */
static char *text_of(cv_json_writer_t **w)
{
    const char *text = cv_json_writer_text(*w);
    char *copy = text ? cv_xstrdup(text) : NULL;
    cv_json_writer_destroy(w);
    return copy;
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
        char since[CV_TIMESTAMP_MAX];
        cv_timestamp_format(s->since, since);
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
        else if (strncmp(arg, "at=", 3) == 0 && cv_timestamp_parse(arg + 3, &asked.at))
            asked.at_given = true;
        else
            return false;
    }
    if (asked.at_given && !asked.dry_run) /* a time given is a question, never a purge */
        return false;
    *how = asked;
    return true;
}

/*  Text an administrator typed, stored and logged: one line of readable
 *  UTF-8, not empty. */
static bool plain_text(const char *text, size_t max)
{
    size_t len = strlen(text);
    return len > 0 && len <= max && cv_text_readable(text, len, "");
}

/*  The value of "name=value" in arg, or NULL. */
static const char *value_of(const char *arg, const char *name)
{
    size_t len = strlen(name);
    return strncmp(arg, name, len) == 0 && arg[len] == '=' ? arg + len + 1 : NULL;
}

static bool review_arg(const char *arg, cv_review_args_t *out)
{
    const char *value;
    if (strcmp(arg, "dispose") == 0)
        return !out->dispose && (out->dispose = true);
    if ((value = value_of(arg, "report")))
        return !out->id && (out->id = value);
    if ((value = value_of(arg, "originator")))
        return !out->originator && (out->originator = value);
    if ((value = value_of(arg, "reason")))
        return !out->reason && (out->reason = value);
    if ((value = value_of(arg, "retain-until")))
        return !out->retain_until && cv_timestamp_parse(value, &out->retain_until) &&
               out->retain_until != 0;
    return false;
}

bool cv_admin_review_args(const char *const *args, size_t n, int64_t now, cv_review_args_t *out,
                          const char **why)
{
    cv_review_args_t asked = {0};
    for (size_t i = 0; i < n; i++)
        if (!review_arg(args[i], &asked)) {
            *why = "review takes report=ID, originator=AGENCY, retain-until=TIME or dispose, "
                   "and reason=TEXT, each once";
            return false;
        }
    if (!cv_policy_report_id_ok(asked.id, &(cv_error_t){0}))
        *why = "review: report=ID names the report";
    else if (asked.originator && !plain_text(asked.originator, 255))
        *why = "review: originator=AGENCY is not an agency id";
    else if (!asked.reason || !plain_text(asked.reason, CV_REVIEW_REASON_MAX))
        *why = "review: reason=TEXT is required: one line, at most 500 bytes";
    else if (asked.dispose == (asked.retain_until != 0))
        *why = "review: give retain-until=TIME or dispose";
    else if (!asked.dispose && asked.retain_until <= now)
        *why = "review: retain-until is not in the future (dispose of the report instead)";
    else {
        *out = asked;
        return true;
    }
    return false;
}

char *cv_admin_review_reply(const cv_review_args_t *args, int found, const char *error)
{
    if (found == 0)
        return cv_xstrdup("review: no such report");
    if (found == 2)
        return cv_xstrdup("review: more than one agency used that report id: name the "
                          "originator");
    if (found < 0)
        return cv_xstrdup(error && *error ? error : "review: the store refused it");
    cv_json_writer_t *w = cv_json_writer_new(0);
    cv_json_object_begin(w);
    cv_json_key(w, "report");
    cv_json_string(w, args->id);
    if (args->dispose) {
        cv_json_key(w, "disposed");
        cv_json_bool(w, true);
    } else {
        char until[CV_TIMESTAMP_MAX];
        cv_json_key(w, "retain_until");
        cv_json_string(w, cv_timestamp_format(args->retain_until, until));
    }
    cv_json_object_end(w);
    return text_of(&w);
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
    char when[CV_TIMESTAMP_MAX];
    cv_timestamp_format(created, when);
    cv_json_object_begin(self->out);
    cv_json_key(self->out, "id");
    cv_json_string(self->out, id);
    cv_json_key(self->out, "category");
    cv_json_string(self->out, category);
    cv_json_key(self->out, "created");
    cv_json_string(self->out, when);
    cv_json_object_end(self->out);
}

void cv_admin_purged_destroy(cv_admin_purged_t **list_p)
{
    if (!list_p || !*list_p)
        return;
    cv_json_writer_destroy(&(*list_p)->out);
    free(*list_p);
    *list_p = NULL;
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
