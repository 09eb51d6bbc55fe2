/*  cv_policy.c: read-only accessors of a loaded policy, and the checks a
 *  report must pass before the broker accepts it. */
#include <stdio.h>
#include <string.h>

#include "policy_internal.h"

const char *cv_policy_protocol(const cv_policy_t *self)
{
    return self->protocol;
}

int64_t cv_policy_version(const cv_policy_t *self)
{
    return self->version;
}

const char *cv_policy_hash(const cv_policy_t *self)
{
    return self->hash;
}

int cv_policy_level_count(const cv_policy_t *self)
{
    return self->n_levels;
}

const char *cv_policy_level_name(const cv_policy_t *self, int level)
{
    return level >= 0 && level < self->n_levels ? self->levels[level] : NULL;
}

static int find(char *const *names, int count, const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < count; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

int cv_policy_level_find(const cv_policy_t *self, const char *name)
{
    return find(self->levels, self->n_levels, name);
}

int cv_policy_category_find(const cv_policy_t *self, const char *name)
{
    return find(self->categories, self->n_categories, name);
}

int cv_policy_type_find(const cv_policy_t *self, const char *name)
{
    return find(self->types, self->n_types, name);
}

const cv_handling_code_t *cv_policy_code_find(const cv_policy_t *self, const char *code)
{
    for (int i = 0; code && i < self->n_codes; i++)
        if (strcmp(self->codes[i].code, code) == 0)
            return &self->codes[i];
    return NULL;
}

int cv_policy_agency_count(const cv_policy_t *self)
{
    return self->n_agencies;
}

const cv_agency_t *cv_policy_agency(const cv_policy_t *self, int index)
{
    return index >= 0 && index < self->n_agencies ? &self->agencies[index].pub : NULL;
}

/*  The broker looks up the originator of every report for every recipient:
 *  binary search over the sorted index once loading has built it, a scan
 *  while the loader is still adding agencies. */
int cv_policy_agency_find(const cv_policy_t *self, const char *id)
{
    if (!id)
        return -1;
    if (!self->agencies_by_id) {
        for (int i = 0; i < self->n_agencies; i++)
            if (strcmp(self->agencies[i].pub.id, id) == 0)
                return i;
        return -1;
    }
    int low = 0, high = self->n_agencies - 1;
    while (low <= high) {
        int mid = low + (high - low) / 2;
        int index = self->agencies_by_id[mid];
        int order = strcmp(self->agencies[index].pub.id, id);
        if (order == 0)
            return index;
        if (order < 0)
            low = mid + 1;
        else
            high = mid - 1;
    }
    return -1;
}

int cv_policy_agency_by_key(const cv_policy_t *self, const uint8_t key[CV_KEY_BYTES])
{
    for (int i = 0; i < self->n_agencies; i++)
        if (memcmp(self->agencies[i].pub.key, key, CV_KEY_BYTES) == 0)
            return i;
    return -1;
}

bool cv_agency_set_has(const cv_agency_set_t *set, const cv_agency_internal_t *agency, int index)
{
    return set->any || (set->types >> agency->type_id & 1) ||
           (set->agencies && set->agencies[index]);
}

/*  "PATH: missing" or "PATH: WHAT 'VALUE'". */
static bool refuse(cv_error_t *err, const char *path, const char *what, const char *value)
{
    if (value)
        cv_error_set(err, NULL, 0, 0, "%s: %s '%s'", path, what, value);
    else
        cv_error_set(err, NULL, 0, 0, "%s: missing", path);
    return false;
}

bool cv_policy_validate_report(const cv_policy_t *self, const Caveat__Report *report,
                               cv_error_t *err)
{
    if (cv_policy_category_find(self, report->category) < 0)
        return refuse(err, "category", "unknown category", report->category);
    if (cv_policy_level_find(self, report->handling_level) < 0)
        return refuse(err, "handling_level", "unknown level", report->handling_level);
    /* a protocol with handling codes wants one on every report */
    const char *code = report->grading ? report->grading->handling_code : NULL;
    if (self->n_codes > 0 && !cv_policy_code_find(self, code))
        return refuse(err, "grading.handling_code", "not a handling code of this protocol", code);
    for (size_t i = 0; i < report->n_field_markings; i++) {
        const Caveat__FieldMarking *m = report->field_markings[i];
        char path[64];
        snprintf(path, sizeof path, "field_markings[%zu].path", i);
        if (!m->path || cv_schema_find(self->schema, m->path) < 0)
            return refuse(err, path, "unknown field path", m->path);
        snprintf(path, sizeof path, "field_markings[%zu].level", i);
        if (cv_policy_level_find(self, m->level) < 0)
            return refuse(err, path, "unknown level", m->level);
    }
    return true;
}
