/*  cv_policy.c: read-only accessors of a loaded policy, and the checks a
 *  report must pass before the broker accepts it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

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
    /* the first byte settles most mismatches without a call */
    for (int i = 0; i < count; i++)
        if (names[i][0] == name[0] && strcmp(names[i], name) == 0)
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
        if (self->codes[i].code[0] == code[0] && strcmp(self->codes[i].code, code) == 0)
            return &self->codes[i];
    return NULL;
}

bool cv_policy_needs_approval(const cv_policy_t *self, const Caveat__Report *report)
{
    const cv_handling_code_t *code =
        cv_policy_code_find(self, report->grading ? report->grading->handling_code : NULL);
    return code && code->originator_approval;
}

bool cv_policy_names_recipient(const cv_policy_t *self, const char *name)
{
    if (!name || !*name)
        return false;
    if (cv_policy_agency_find(self, name) >= 0)
        return true;
    for (int i = 0; i < self->n_agencies; i++)
        if (strcmp(self->agencies[i].pub.type, name) == 0)
            return true;
    return false;
}

bool cv_policy_feed_recipient(const cv_policy_t *self, const char *feed, int agency)
{
    if (agency < 0 || agency >= self->n_agencies)
        return false;
    for (int e = self->n_rules; feed && e < self->n_entries; e++) {
        const cv_entry_t *entry = &self->entries[e];
        if (entry->feed && strcmp(entry->feed, feed) == 0 &&
            cv_agency_set_has(&entry->to, &self->agencies[agency], agency))
            return true;
    }
    return false;
}

int cv_policy_agency_count(const cv_policy_t *self)
{
    return self->n_agencies;
}

int cv_policy_entry_count(const cv_policy_t *self)
{
    return self->n_entries;
}

const char *cv_policy_entry_name(const cv_policy_t *self, int index)
{
    return index >= 0 && index < self->n_entries ? self->entries[index].name : NULL;
}

const char *cv_policy_entry_kind(const cv_policy_t *self, int index)
{
    if (index < 0 || index >= self->n_entries)
        return NULL;
    return self->entries[index].screening ? "screening" : "rule";
}

int cv_policy_restriction_count(const cv_policy_t *self)
{
    return self->n_restrictions;
}

const char *cv_policy_restriction_name(const cv_policy_t *self, int index)
{
    return index >= 0 && index < self->n_restrictions ? self->restrictions[index].name : NULL;
}

const cv_agency_t *cv_policy_agency(const cv_policy_t *self, int index)
{
    return index >= 0 && index < self->n_agencies ? &self->agencies[index].pub : NULL;
}

/* ------------------------------------------------------------------------ */
/*  Agency lookups by id and by key: hash tables, because the broker looks
 *  up the originator of every report for every recipient and the sender of
 *  every message. The loader fills them agency by agency, so they answer
 *  for the agencies loaded so far.                                         */

void cv_table_init(cv_table_t *table, int items)
{
    unsigned size = 16;
    while (size < 2 * (unsigned)items) /* at most half full: short probes */
        size *= 2;
    table->slots = malloc(size * sizeof *table->slots);
    if (!table->slots)
        abort();
    memset(table->slots, 0xff, size * sizeof *table->slots); /* all -1 */
    table->mask = size - 1;
}

void cv_table_free(cv_table_t *table)
{
    free(table->slots);
    table->slots = NULL;
}

unsigned cv_hash(const void *bytes, size_t len)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ ((const uint8_t *)bytes)[i]) * 16777619u;
    return h;
}

static unsigned text_hash(const char *text)
{
    unsigned h = 2166136261u; /* cv_hash of its bytes, in one pass */
    for (; *text; text++)
        h = (h ^ (unsigned char)*text) * 16777619u;
    return h;
}

void cv_table_add(cv_table_t *table, unsigned hash, int index)
{
    unsigned h = hash & table->mask;
    while (table->slots[h] >= 0)
        h = (h + 1) & table->mask;
    table->slots[h] = index;
}

void cv_policy_index_agency(cv_policy_t *self, int index)
{
    const cv_agency_t *a = &self->agencies[index].pub;
    cv_table_add(&self->by_id, text_hash(a->id), index);
    cv_table_add(&self->by_key, cv_hash(a->key, CV_KEY_BYTES), index);
    if (a->has_next_key)
        cv_table_add(&self->by_key, cv_hash(a->next_key, CV_KEY_BYTES), index);
}

bool cv_agency_has_key(const cv_agency_t *agency, const uint8_t key[CV_KEY_BYTES])
{
    return sodium_memcmp(agency->key, key, CV_KEY_BYTES) == 0 ||
           (agency->has_next_key && sodium_memcmp(agency->next_key, key, CV_KEY_BYTES) == 0);
}

int cv_policy_agency_find(const cv_policy_t *self, const char *id)
{
    if (!id || !self->by_id.slots)
        return -1;
    const cv_table_t *t = &self->by_id;
    for (unsigned h = text_hash(id) & t->mask; t->slots[h] >= 0; h = (h + 1) & t->mask)
        if (strcmp(self->agencies[t->slots[h]].pub.id, id) == 0)
            return t->slots[h];
    return -1;
}

/*  Areas are interned when the policy is indexed: deciding compares ids. */
int cv_policy_area_find(const cv_policy_t *self, const char *area)
{
    const cv_table_t *t = &self->by_area;
    if (!area || !t->slots)
        return -1;
    for (unsigned h = text_hash(area) & t->mask; t->slots[h] >= 0; h = (h + 1) & t->mask)
        if (strcmp(self->area_names[t->slots[h]], area) == 0)
            return t->slots[h];
    return -1;
}

int cv_policy_agency_by_key(const cv_policy_t *self, const uint8_t key[CV_KEY_BYTES])
{
    if (!self->by_key.slots)
        return -1;
    const cv_table_t *t = &self->by_key;
    for (unsigned h = cv_hash(key, CV_KEY_BYTES) & t->mask; t->slots[h] >= 0; h = (h + 1) & t->mask)
        if (cv_agency_has_key(&self->agencies[t->slots[h]].pub, key))
            return t->slots[h];
    return -1;
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

/*  Each field marking names a field of the schema, once, and a level of
 *  the policy. Once: two levels for one field say nothing a reader could
 *  trust, and every decision looks at each marking of the report for
 *  every recipient, so their number is bounded by the schema's fields,
 *  not by the frame's bytes. */
static bool markings_valid(const cv_policy_t *self, const Caveat__Report *report, cv_error_t *err)
{
    if (report->n_field_markings == 0) /* most reports: no allocation */
        return true;
    int fields = cv_schema_size(self->schema);
    if (report->n_field_markings > (size_t)fields) {
        cv_error_set(err, NULL, 0, 0, "field_markings: more than the %d fields a report has",
                     fields);
        return false;
    }
    uint8_t *marked = calloc((size_t)fields + 1, 1);
    if (!marked) {
        cv_error_set(err, NULL, 0, 0, "field_markings: out of memory");
        return false;
    }
    bool valid = true;
    char path[64];
    for (size_t i = 0; valid && i < report->n_field_markings; i++) {
        const Caveat__FieldMarking *m = report->field_markings[i];
        int node = m->path ? cv_schema_find(self->schema, m->path) : -1;
        if (node < 0 || marked[node]) {
            snprintf(path, sizeof path, "field_markings[%zu].path", i);
            valid = node < 0 ? refuse(err, path, "unknown field path", m->path)
                             : refuse(err, path, "marked twice", m->path);
        } else if (cv_policy_level_find(self, m->level) < 0) {
            snprintf(path, sizeof path, "field_markings[%zu].level", i);
            valid = refuse(err, path, "unknown level", m->level);
        }
        if (node >= 0)
            marked[node] = 1;
    }
    free(marked);
    return valid;
}

/*  An id goes into the broker's log lines: a newline or an escape sequence
 *  in it would let an agency forge or hide them (C1 controls, the 8-bit
 *  CSI among them, as well), and a bidirectional override would show it
 *  as another id (cv_text_readable). It must be UTF-8 too: the audit log holds
 *  it as JSON text, where bytes that are not UTF-8 would be replaced, and
 *  two ids would read alike there, or a receipt name another report than
 *  its delivery. UTF-8 beyond ASCII is text and stays allowed. */
static bool valid_id(const char *id, cv_error_t *err)
{
    size_t len = id ? strnlen(id, CV_REPORT_ID_MAX + 1) : 0;
    if (len > CV_REPORT_ID_MAX) {
        cv_error_set(err, NULL, 0, 0, "id: longer than %d bytes", CV_REPORT_ID_MAX);
        return false;
    }
    if (cv_text_readable(id, len, "")) /* one pass for every good id */
        return true;
    for (size_t i = 0; i < len; i++) { /* a refusal: which byte, when it is a C0 or DEL */
        unsigned char c = (unsigned char)id[i];
        if (c < 0x20 || c == 0x7f) {
            cv_error_set(err, NULL, 0, 0, "id: control character 0x%02x at byte %zu", c, i + 1);
            return false;
        }
    }
    cv_error_set(err, NULL, 0, 0,
                 "id: not UTF-8 text, or a C1 control, line separator or bidirectional "
                 "control character");
    return false;
}

bool cv_policy_report_id_ok(const char *id, cv_error_t *err)
{
    return id && *id ? valid_id(id, err) : (cv_error_set(err, NULL, 0, 0, "id: missing"), false);
}

bool cv_agency_serves(const cv_policy_t *p, const cv_agency_hot_t *agency, int area)
{
    if (agency->all_areas)
        return true;
    const int *areas = p->area_pool + agency->area_first;
    for (int i = 0; area >= 0 && i < agency->n_areas; i++)
        if (areas[i] == area)
            return true;
    return false;
}

bool cv_agency_covers(const cv_policy_t *p, const cv_agency_hot_t *agency, const char *area)
{
    return agency->all_areas ||
           cv_agency_serves(p, agency, agency->n_areas ? cv_policy_area_find(p, area) : -1);
}

bool cv_policy_validate_report(const cv_policy_t *self, const Caveat__Report *report,
                               cv_error_t *err)
{
    if (!valid_id(report->id, err))
        return false;
    if (cv_policy_category_find(self, report->category) < 0)
        return refuse(err, "category", "unknown category", report->category);
    if (cv_policy_level_find(self, report->handling_level) < 0)
        return refuse(err, "handling_level", "unknown level", report->handling_level);
    /* a protocol with handling codes wants one on every report */
    const char *code = report->grading ? report->grading->handling_code : NULL;
    if (self->n_codes > 0 && !cv_policy_code_find(self, code))
        return refuse(err, "grading.handling_code", "not a handling code of this protocol", code);
    /* same_area trusts the report's area: an originator may only say one
     * of its own, or it could reach another area's partners */
    int originator = cv_policy_agency_find(self, report->originator);
    if (originator >= 0 && !cv_agency_covers(self, &self->agency_hot[originator], report->area))
        return refuse(err, "area", "not one of the originator's areas", report->area);
    if (!markings_valid(self, report, err))
        return false;
    /* a view or the JSON form would carry it otherwise than it is stored:
     * what the audit log says was shared would not be what was sent */
    char path[128];
    const char *fault = cv_proto_form_fault(&report->base, path, sizeof path);
    if (fault) {
        cv_error_set(err, NULL, 0, 0, "%s: %s", path, fault);
        return false;
    }
    return true;
}

bool cv_policy_retention(const cv_policy_t *self, const char *category, int64_t *seconds,
                         const char **rule)
{
    if (!self->retention)
        return false;
    int slot = cv_policy_category_find(self, category);
    if (slot < 0 || !self->retention[slot])
        slot = self->n_categories; /* the default, or a category the policy no longer knows */
    if (!self->retention[slot])
        return false;
    *seconds = self->retention[slot];
    if (rule)
        *rule = self->retention_text[slot];
    return true;
}
