/*  test_view_properties.c: what every view must hold, checked on random
 *  policies and random reports (policy/cv_decision.c against
 *  docs/policy.md).
 *
 *  test_policy_decide.c checks each rule of the semantics on reports
 *  written for it. This file draws policies (rules, screening entries and
 *  restrictions granting, masking and denying random paths, with random
 *  caps) and reports (random fields present, values that fail their
 *  masks, empty parts, random field markings) from a seeded generator,
 *  decides each report for every agency, and checks every delivered view
 *  against properties that do not depend on how the engine works them
 *  out. The view is walked here with protobuf-c's descriptors, not with
 *  the engine's schema:
 *
 *  - the view built and the view packed are the same bytes, and a
 *    decision that says it shares all packs the report's own bytes;
 *  - the envelope goes whole;
 *  - every value in the view is the report's value at the same path, or
 *    that value under the mask the decision names for the path, and no
 *    path the decision withholds holds a value;
 *  - no value is above the recipient's clearance, counting the report's
 *    handling level and every marking on the value's path or a parent;
 *  - no value lies under a path a restriction that applies to the
 *    recipient denies;
 *  - no part goes empty that the report did not hold empty;
 *  - every marking in the view is one of the report's, and names a field
 *    the view holds a value of; when the view may hold markings, every
 *    marking of a field it holds a value of goes;
 *  - two decisions on one report that name their view alike pack the same
 *    bytes;
 *  - a report held for its originator's approval goes only to an agency
 *    an approval names, by id or by type.
 *
 *  The seed is fixed, so a failure is repeatable; CAVEAT_PROPERTY_SEED
 *  picks another and CAVEAT_PROPERTY_ROUNDS runs more policies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cv_policy.h"
#include "policy_internal.h" /* the masks, applied here to what the report held */
#include "seeded_rng.h"

#define ROUNDS             150 /* policies */
#define REPORTS_PER_POLICY 60  /* each decided for every agency */
#define MAX_PATHS          256 /* leaf paths with a value, in one report or view */
#define MAX_VALUES         64  /* values at one path */
#define TEXT_CAP           (16 * 1024)

/* ------------------------------------------------------------------------ */
/*  What is drawn from.                                                     */

static const char *const levels[] = {"OFFICIAL", "OFFICIAL-SENSITIVE", "SECRET"};
#define N_LEVELS 3

static const char *const types[] = {"police", "ctio", "ctu", "local_authority", "education"};
#define N_TYPES 5

static const char *const categories[] = {"vulnerable_individual", "community_tension",
                                         "critical_incident"};
#define N_CATEGORIES 3

/*  The agencies: id, organisation, type, clearance, areas, key. */
typedef struct {
    const char *id, *organisation, *type;
    int clearance;
    const char *areas; /* as YAML */
    const char *key;
} agency_spec_t;

static const agency_spec_t agencies[] = {
    {"hull-police", "humberside-police", "police", 2, "[hull]",
     "kY8[f}w2}*bW5UFN>7fbWOR$QBz=n<qa*v:t*tLN"},
    {"hull-ctio", "humberside-police", "ctio", 2, "[hull]",
     "XSEn)f@J2=]&MH9eu{9=<ITtalLpr[tWw7}B2APp"},
    {"ne-ctu", "ne-ctu", "ctu", 2, "[\"*\"]", "CLfC.xK:.*ZR&AbkJ*pG:Ebz/ngx4P>9I!8PrmR>"},
    {"hull-cc", "hull-city-council", "local_authority", 1, "[hull]",
     "6PtBJ>RC})VCt&o)&*ZTVgivQwNGu*WDw*8}u>[j"},
    {"york-cc", "york-council", "local_authority", 1, "[york]",
     "8jL!$TBw!lL[FF+[=Rje(UkLrS*]6:LYo64>ZMff"},
    {"hull-college", "hull-college", "education", 0, "[hull]",
     "7$JGsMG*G58V5q!a4dLhG(]3CY]u>M9&E.j86fG3"},
    {"york-police", "north-yorkshire-police", "police", 2, "[york]",
     "TWlGDhq0jy=32+Qxlcx{GAq7Y!>@gQI5vr.13Z-j"},
    {"hull-cc-children", "hull-city-council", "local_authority", 1, "[hull]",
     "7{+j5qM^I(oC8O/P0yY6.zZ(V[P0xj]sZc{6eYUE"},
};
#define N_AGENCIES (sizeof agencies / sizeof *agencies)

/*  Each path an entry may name, and the grants its type takes. */
typedef struct {
    const char *path;
    const char *const *grants;
} grantable_t;

#define GRANTS(...)                                                                                \
    (const char *const[])                                                                          \
    {                                                                                              \
        __VA_ARGS__, NULL                                                                          \
    }
#define PLAIN GRANTS("share", "deny")
#define TEXT                                                                                       \
    GRANTS("share", "deny", "{mask: initials}", "{mask: postcode_district}", "pseudonymise")

static const grantable_t grantable[] = {
    {"*", PLAIN},
    {"author", TEXT},
    {"grading", PLAIN},
    {"grading.source", PLAIN},
    {"grading.handling_code", PLAIN},
    {"priority", PLAIN},
    {"area", PLAIN},
    {"subjects", PLAIN},
    {"subjects.name", TEXT},
    {"subjects.date_of_birth", GRANTS("share", "deny", "{mask: year}")},
    {"subjects.address", TEXT},
    {"subjects.postcode", TEXT},
    {"subjects.identifiers", GRANTS("share", "deny", "pseudonymise")},
    {"subjects.vulnerability_factors", PLAIN},
    {"location", PLAIN},
    {"location.name", TEXT},
    {"location.postcode", TEXT},
    {"location.latitude", GRANTS("share", "deny", "{mask: round_1km}")},
    {"location.longitude", GRANTS("share", "deny", "{mask: round_1km}")},
    {"summary", PLAIN},
    {"narrative", PLAIN},
    {"source", PLAIN},
    {"source.type", PLAIN},
    {"source.reference", TEXT},
    {"source.notes", PLAIN},
    {"indicators", PLAIN},
    {"tension", PLAIN},
    {"tension.level", PLAIN},
    {"field_markings", PLAIN},
    {"caveats", PLAIN},
};
#define N_GRANTABLE (sizeof grantable / sizeof *grantable)

/*  Paths a report may mark: every field of the body. */
static const char *const markable[] = {
    "author",
    "grading",
    "grading.source",
    "grading.intelligence",
    "priority",
    "area",
    "subjects",
    "subjects.name",
    "subjects.address",
    "subjects.postcode",
    "subjects.identifiers",
    "subjects.date_of_birth",
    "location",
    "location.name",
    "location.latitude",
    "summary",
    "narrative",
    "source",
    "source.notes",
    "indicators",
    "tension",
    "tension.trend",
    "field_markings",
    "caveats",
};
#define N_MARKABLE (sizeof markable / sizeof *markable)

static const char *const names[] = {"Jane Doe", "Émile Zola", "x", "", "Mary Ann Smith"};
static const char *const postcodes[] = {"HU3 2AB", "HU32AB", "no fixed abode", "", "YO1 7HH"};
static const char *const dates[] = {"2009-04-01", "1990-12-31", "2000-02-29"};
static const char *const words[] = {"alpha", "bravo", "radicalisation seen", "", "delta echo"};

/* ------------------------------------------------------------------------ */
/*  Text built a piece at a time.                                           */

typedef struct {
    char buf[TEXT_CAP];
    size_t len;
} text_t;

static void add(text_t *t, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, format, args);
    va_end(args);
    assert_true(n >= 0 && (size_t)n < sizeof t->buf - t->len);
    t->len += (size_t)n;
}

static const char *pick(const char *const *list, size_t n)
{
    return list[rnd((int)n)];
}
#define PICK(list) pick(list, sizeof list / sizeof *list)

/*  A YAML flow list of a random non-empty subset of list. */
static void add_subset(text_t *t, const char *const *list, size_t n)
{
    size_t first = (size_t)rnd((int)n);
    add(t, "[%s", list[first]);
    for (size_t i = 0; i < n; i++)
        if (i != first && chance(50))
            add(t, ", %s", list[i]);
    add(t, "]");
}

/*  The policy and report being checked, printed with a failure. */
static text_t policy_text, report_text;

/* ------------------------------------------------------------------------ */
/*  A random policy.                                                        */

/*  Restrictions drawn for the policy: which types each applies to, and the
 *  paths it denies (checked against every view). */
typedef struct {
    bool to_type[N_TYPES];
    const char *denied[4];
    int n_denied;
} restriction_t;

static restriction_t restrictions[3];
static int n_restrictions;

static void add_fields(text_t *t, int most)
{
    add(t, "    fields: {");
    int n = rnd(most + 1);
    bool used[N_GRANTABLE] = {false};
    for (int i = 0; i < n; i++) {
        size_t g = (size_t)rnd((int)N_GRANTABLE);
        if (used[g])
            continue;
        used[g] = true;
        const char *const *grants = grantable[g].grants;
        size_t count = 0;
        while (grants[count])
            count++;
        add(t, "%s\"%s\": %s", i ? ", " : "", grantable[g].path, pick(grants, count));
    }
    add(t, "}\n");
}

static void add_entry_scope(text_t *t)
{
    add(t, "    to_types: ");
    add_subset(t, types, N_TYPES);
    add(t, "\n");
    if (chance(30))
        add(t, "    same_area: true\n");
    if (chance(30))
        add(t, "    max_level: %s\n", levels[rnd(N_LEVELS)]);
}

static void add_restriction(text_t *t, int index)
{
    restriction_t *r = &restrictions[index];
    memset(r, 0, sizeof *r);
    add(t, "  - name: restriction-%d\n    to_types: [", index);
    int first = rnd(N_TYPES);
    for (int k = 0, listed = 0; k < N_TYPES; k++)
        if (k == first || chance(25)) {
            add(t, "%s%s", listed++ ? ", " : "", types[k]);
            r->to_type[k] = true;
        }
    add(t, "]\n    fields: {");
    int n = 1 + rnd(3);
    for (int i = 0; i < n; i++) {
        const char *path = grantable[1 + rnd((int)N_GRANTABLE - 1)].path; /* not "*" */
        bool again = false;
        for (int k = 0; k < r->n_denied; k++)
            again |= strcmp(r->denied[k], path) == 0;
        if (again)
            continue;
        add(t, "%s\"%s\": deny", r->n_denied ? ", " : "", path);
        r->denied[r->n_denied++] = path;
    }
    add(t, "}\n");
}

static void random_policy(text_t *t)
{
    t->len = 0;
    add(t, "protocol: properties\nversion: 1\nlevels: [OFFICIAL, OFFICIAL-SENSITIVE, SECRET]\n"
           "agencies:\n");
    for (size_t i = 0; i < N_AGENCIES; i++) {
        const agency_spec_t *a = &agencies[i];
        add(t, "  %s: {organisation: %s, type: %s, clearance: %s, areas: %s, key: \"%s\"}\n", a->id,
            a->organisation, a->type, levels[a->clearance], a->areas, a->key);
    }
    add(t, "handling_codes:\n"
           "  \"1\": {to_types: [police, ctio, ctu]}\n"
           "  \"2\": {to_types: [police, ctio, ctu, local_authority, education]}\n"
           "  \"4\": {same_organisation: true}\n"
           "  \"5\": {originator_approval: true}\n"
           "  \"6\": {to_agencies: [hull-cc, ne-ctu]}\n"
           "rules:\n");
    /* every category in some rule, so that every report drawn is valid */
    int rules = 1 + rnd(4);
    for (int i = 0; i < rules; i++) {
        add(t, "  - name: rule-%d\n    categories: ", i);
        if (i == 0)
            add(t, "[vulnerable_individual, community_tension, critical_incident]");
        else
            add_subset(t, categories, N_CATEGORIES);
        add(t, "\n");
        if (chance(40))
            add(t, "    from_types: [police]\n");
        add_entry_scope(t);
        if (chance(20)) /* everything as it is: the views the broker sends as stored */
            add(t, "    fields: {\"*\": share}\n");
        else
            add_fields(t, 7);
    }
    if (chance(50)) {
        add(t, "screening:\n  - name: screen\n    feed: ctio\n");
        add_entry_scope(t);
        add(t, "    match: {keywords: [radicalis], indicators: [extremist_literature]}\n");
        add_fields(t, 5);
    }
    n_restrictions = rnd(3);
    if (n_restrictions)
        add(t, "restrictions:\n");
    for (int i = 0; i < n_restrictions; i++)
        add_restriction(t, i);
}

/* ------------------------------------------------------------------------ */
/*  A random report, as the JSON form the broker takes.                    */

static void add_string(text_t *t, bool *first, const char *key, const char *value)
{
    add(t, "%s\"%s\": \"%s\"", *first ? "" : ", ", key, value);
    *first = false;
}

static void add_subject(text_t *t)
{
    bool first = true;
    add(t, "{");
    if (chance(60))
        add_string(t, &first, "name", PICK(names));
    if (chance(50))
        add_string(t, &first, "date_of_birth", PICK(dates));
    if (chance(40))
        add_string(t, &first, "address", PICK(words));
    if (chance(50))
        add_string(t, &first, "postcode", PICK(postcodes));
    if (chance(30)) {
        add(t, "%s\"identifiers\": {\"pnc\": \"%s\"%s}", first ? "" : ", ", PICK(words),
            chance(50) ? ", \"nhs\": \"943 476 5919\"" : "");
        first = false;
    }
    if (chance(30)) {
        add(t, "%s\"vulnerability_factors\": [\"isolation\"%s]", first ? "" : ", ",
            chance(50) ? ", \"online contact\"" : "");
        first = false;
    }
    add(t, "}");
}

static void add_markings(text_t *t)
{
    bool marked[N_MARKABLE] = {false};
    int n = rnd(5);
    add(t, ", \"field_markings\": [");
    for (int i = 0, written = 0; i < n; i++) {
        size_t m = (size_t)rnd((int)N_MARKABLE);
        if (marked[m]) /* a field is marked once: the broker refuses two */
            continue;
        marked[m] = true;
        add(t, "%s{\"path\": \"%s\", \"level\": \"%s\"}", written++ ? ", " : "", markable[m],
            levels[rnd(N_LEVELS)]);
    }
    add(t, "]");
}

/*  Handling codes, code 2 (most types) the most often. */
static const char *const codes[] = {"1", "2", "2", "2", "4", "5", "6"};

static void random_report(text_t *t, int n)
{
    const agency_spec_t *from = &agencies[rnd((int)N_AGENCIES)];
    const char *area = strstr(from->areas, "york") ? "york" : "hull";
    t->len = 0;
    add(t,
        "{\"id\": \"r-%d\", \"originator\": \"%s\", \"created\": \"2026-11-20T09:30:00Z\", "
        "\"category\": \"%s\", \"handling_level\": \"%s\", \"area\": \"%s\"",
        n, from->id, categories[rnd(N_CATEGORIES)], levels[rnd(N_LEVELS)], area);
    bool first = false;
    if (chance(60))
        add_string(t, &first, "author", PICK(names));
    /* every report has a handling code: the broker refuses one without */
    add(t, ", \"grading\": {%s%s\"handling_code\": \"%s\"}",
        chance(50) ? "\"source\": \"B\", " : "", chance(50) ? "\"intelligence\": \"2\", " : "",
        PICK(codes));
    if (chance(50))
        add(t, ", \"priority\": \"%s\"", chance(50) ? "IMMEDIATE" : "ROUTINE");
    if (chance(70)) {
        int subjects = rnd(4);
        add(t, ", \"subjects\": [");
        for (int i = 0; i < subjects; i++) {
            add(t, "%s", i ? ", " : "");
            add_subject(t);
        }
        add(t, "]");
    }
    if (chance(50))
        add(t, ", \"location\": {%s\"latitude\": 53.7443, \"longitude\": -0.3326%s}",
            chance(50) ? "\"name\": \"Albion Library\", " : "",
            chance(50) ? ", \"postcode\": \"HU1 3TF\"" : "");
    if (chance(70))
        add_string(t, &first, "summary", PICK(words));
    if (chance(50))
        add_string(t, &first, "narrative", PICK(words));
    if (chance(50))
        add(t, ", \"source\": {%s}",
            chance(50) ? "\"type\": \"patrol\", \"notes\": \"told by a neighbour\"" : "");
    if (chance(40))
        add(t, ", \"indicators\": [\"%s\"]", chance(50) ? "extremist_literature" : "weapons");
    if (chance(40))
        add(t, ", \"tension\": {\"level\": %d, \"trend\": \"rising\"}", 1 + rnd(5));
    if (chance(30))
        add(t, ", \"caveats\": [\"POLICE ONLY\"]");
    if (chance(60))
        add_markings(t);
    add(t, "}");
}

/* ------------------------------------------------------------------------ */
/*  A message's values by path, walked with protobuf-c's descriptors.      */

typedef struct {
    char path[96];
    ProtobufCType type;
    const void *values[MAX_VALUES];
    int n;
} path_values_t;

typedef struct {
    path_values_t paths[MAX_PATHS];
    int n;
    int empty_parts;           /* sub-messages present with no field set */
    char parts[MAX_PATHS][96]; /* the paths of the sub-messages present */
    int n_parts;
} walked_t;

static path_values_t *at_path(walked_t *w, const char *path, ProtobufCType type)
{
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->paths[i].path, path) == 0)
            return &w->paths[i];
    assert_true(w->n < MAX_PATHS);
    path_values_t *p = &w->paths[w->n++];
    snprintf(p->path, sizeof p->path, "%s", path);
    p->type = type;
    p->n = 0;
    return p;
}

static bool walk(walked_t *w, const ProtobufCMessage *msg, const char *prefix);

/*  One value of field f (a pointer to its slot). Returns whether it is or
 *  holds a value. */
static bool walk_value(walked_t *w, const ProtobufCFieldDescriptor *f, const char *path,
                       const void *slot)
{
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)slot;
        if (!sub)
            return false;
        assert_true(w->n_parts < MAX_PATHS);
        snprintf(w->parts[w->n_parts++], sizeof w->parts[0], "%s", path);
        if (!walk(w, sub, path))
            w->empty_parts++;
        return true;
    }
    if (f->type == PROTOBUF_C_TYPE_STRING && !*(char *const *)slot)
        return false;
    path_values_t *p = at_path(w, path, f->type);
    assert_true(p->n < MAX_VALUES);
    p->values[p->n++] = slot;
    return true;
}

static size_t slot_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    default:
        return sizeof(int32_t); /* int32 and enums, the report's other types */
    }
}

/*  Returns whether msg holds any field. */
static bool walk(walked_t *w, const ProtobufCMessage *msg, const char *prefix)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    bool holds = false;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char path[96];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", f->name);
        const char *base = (const char *)msg;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *values = *(const char *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                holds |= walk_value(w, f, path, values + k * slot_size(f->type));
        } else if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
            holds |= walk_value(w, f, path, base + f->offset);
        } else if (*(const protobuf_c_boolean *)(base + f->quantifier_offset)) {
            holds |= walk_value(w, f, path, base + f->offset);
        }
    }
    return holds;
}

static bool same_value(ProtobufCType type, const void *a, const void *b)
{
    switch (type) {
    case PROTOBUF_C_TYPE_STRING:
        return strcmp(*(char *const *)a, *(char *const *)b) == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)a == *(const double *)b;
    default:
        return *(const int32_t *)a == *(const int32_t *)b;
    }
}

/*  path is path or under it ("subjects.name" is under "subjects"). */
static bool under(const char *path, const char *parent)
{
    size_t n = strlen(parent);
    return strncmp(path, parent, n) == 0 && (path[n] == '\0' || path[n] == '.');
}

/*  Whether w holds a value at or under parent: a part present but empty,
 *  as the report was published, is one. */
static bool holds_under(const walked_t *w, const char *parent)
{
    for (int i = 0; i < w->n; i++)
        if (under(w->paths[i].path, parent))
            return true;
    for (int i = 0; i < w->n_parts; i++)
        if (under(w->parts[i], parent))
            return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/*  The properties.                                                         */

typedef struct {
    const cv_policy_t *policy;
    cv_decision_t *decision;
    const Caveat__Report *report;
    walked_t report_values;
    const char *outcome_paths[MAX_PATHS];
    const char *outcomes[MAX_PATHS];
    int n_outcomes;
    const cv_agency_t *recipient;
    int type;
    cv_approvals_t approvals;
    char where[200]; /* the policy round, report and recipient, for a failure */
} check_t;

/*  Fails, naming the policy round, report and recipient, and printing
 *  the policy and the report, so that a failure can be replayed alone. */
#define fail_view(c, ...)                                                                          \
    do {                                                                                           \
        fprintf(stderr, "%s\n%s\n%s: ", policy_text.buf, report_text.buf, (c)->where);             \
        fail_msg(__VA_ARGS__);                                                                     \
    } while (0)

static const char *outcome_of(const check_t *c, const char *path)
{
    char p[96];
    snprintf(p, sizeof p, "%s", path);
    for (;;) { /* a map's key and value take the map's outcome */
        for (int i = 0; i < c->n_outcomes; i++)
            if (strcmp(c->outcome_paths[i], p) == 0)
                return c->outcomes[i];
        char *dot = strrchr(p, '.');
        if (!dot)
            return NULL;
        *dot = '\0';
    }
}

static int level_index(const char *name)
{
    for (int i = 0; i < N_LEVELS; i++)
        if (strcmp(levels[i], name) == 0)
            return i;
    return N_LEVELS; /* unknown: above every level */
}

/*  The report's handling level raised by its markings on path or a parent. */
static int level_of(const Caveat__Report *report, const char *path)
{
    int level = level_index(report->handling_level);
    for (size_t i = 0; i < report->n_field_markings; i++) {
        const Caveat__FieldMarking *m = report->field_markings[i];
        if (m->path && m->level && under(path, m->path) && level_index(m->level) > level)
            level = level_index(m->level);
    }
    return level;
}

static bool is_envelope(const char *path)
{
    static const char *const envelope[] = {"id", "originator", "created", "category",
                                           "handling_level"};
    for (size_t i = 0; i < sizeof envelope / sizeof *envelope; i++)
        if (strcmp(path, envelope[i]) == 0)
            return true;
    return false;
}

/*  Whether value is what the report holds at the path, masked as the
 *  outcome says. */
static bool masked_from(const check_t *c, const path_values_t *original, const char *outcome,
                        const void *value)
{
    for (int k = 0; original && k < original->n; k++) {
        const void *from = original->values[k];
        if (strcmp(outcome, "share") == 0) {
            if (same_value(original->type, from, value))
                return true;
            continue;
        }
        if (strcmp(outcome, "mask:round_1km") == 0) {
            if (cv_mask_round_1km(*(const double *)from) == *(const double *)value)
                return true;
            continue;
        }
        const char *text = *(char *const *)from, *given = *(char *const *)value;
        char *masked = NULL;
        if (strcmp(outcome, "mask:year") == 0)
            masked = cv_mask_year(text);
        else if (strcmp(outcome, "mask:postcode_district") == 0)
            masked = cv_mask_postcode_district(text);
        else if (strcmp(outcome, "mask:initials") == 0)
            masked = cv_mask_initials(text);
        else if (strcmp(outcome, "mask:pseudonymise") == 0)
            return strncmp(given, CV_PSEUDONYM_PREFIX, strlen(CV_PSEUDONYM_PREFIX)) == 0;
        else
            fail_view(c, "unknown outcome %s", outcome);
        bool same = masked && strcmp(masked, given) == 0;
        free(masked);
        if (same)
            return true;
    }
    return false;
}

static const path_values_t *find_path(const walked_t *w, const char *path)
{
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->paths[i].path, path) == 0)
            return &w->paths[i];
    return NULL;
}

static bool restricted(const check_t *c, const char *path)
{
    for (int r = 0; r < n_restrictions; r++)
        if (restrictions[r].to_type[c->type])
            for (int k = 0; k < restrictions[r].n_denied; k++)
                if (under(path, restrictions[r].denied[k]))
                    return true;
    return false;
}

static void check_values(const check_t *c, const walked_t *view)
{
    for (int i = 0; i < view->n; i++) {
        const path_values_t *p = &view->paths[i];
        if (is_envelope(p->path) || under(p->path, "field_markings"))
            continue;
        const char *outcome = outcome_of(c, p->path);
        if (!outcome || strcmp(outcome, "withheld") == 0)
            fail_view(c, "%s is in the view, decided %s", p->path, outcome ? outcome : "nothing");
        if (level_of(c->report, p->path) > c->recipient->clearance)
            fail_view(c, "%s is above the recipient's clearance", p->path);
        if (restricted(c, p->path))
            fail_view(c, "%s is in the view, though a restriction denies it", p->path);
        /* a map's keys go as they are, its values as granted (the only
         * field named "key" in the schema is a map's) */
        size_t len = strlen(p->path);
        if (len > 4 && strcmp(p->path + len - 4, ".key") == 0)
            outcome = "share";
        const path_values_t *original = find_path(&c->report_values, p->path);
        for (int k = 0; k < p->n; k++)
            if (!masked_from(c, original, outcome, p->values[k]))
                fail_view(c, "%s holds a value the report does not hold as %s", p->path, outcome);
    }
    if (view->empty_parts > c->report_values.empty_parts)
        fail_view(c, "%d empty parts in the view, %d in the report", view->empty_parts,
                  c->report_values.empty_parts);
}

static const Caveat__FieldMarking *marking_of(const Caveat__Report *report, const char *path)
{
    for (size_t i = 0; i < report->n_field_markings; i++)
        if (strcmp(report->field_markings[i]->path, path) == 0)
            return report->field_markings[i];
    return NULL;
}

static void check_markings(const check_t *c, const Caveat__Report *view, const walked_t *held)
{
    for (size_t i = 0; i < view->n_field_markings; i++) {
        const Caveat__FieldMarking *m = view->field_markings[i];
        const Caveat__FieldMarking *own = marking_of(c->report, m->path);
        if (!own || strcmp(own->level, m->level) != 0)
            fail_view(c, "marking %s is not the report's", m->path);
        if (!holds_under(held, m->path))
            fail_view(c, "marking %s goes, though the view holds no value of it", m->path);
    }
    const char *outcome = outcome_of(c, "field_markings.path");
    if (!outcome || strcmp(outcome, "share") != 0)
        return;
    for (size_t i = 0; i < c->report->n_field_markings; i++) {
        const char *path = c->report->field_markings[i]->path;
        if (holds_under(held, path) && !marking_of(view, path))
            fail_view(c, "the view holds %s but not its marking", path);
    }
}

static uint8_t *pack(const ProtobufCMessage *msg, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *bytes = malloc(*len + 1);
    assert_non_null(bytes);
    assert_int_equal(protobuf_c_message_pack(msg, bytes), *len);
    return bytes;
}

/*  A view's packed bytes, kept for the view-key property. */
typedef struct {
    int64_t key;
    uint8_t *bytes;
    size_t len;
} packed_t;

static void check_view(check_t *c, packed_t *out)
{
    Caveat__Report *view = cv_decision_view(c->decision, c->report);
    assert_non_null(view);
    size_t len;
    uint8_t *built = pack(&view->base, &len);
    uint8_t buf[TEXT_CAP];
    size_t packed = cv_decision_pack(c->decision, c->report, buf, sizeof buf);
    if (packed != len || memcmp(buf, built, len) != 0)
        fail_view(c, "the view packed is not the view built");
    const char *const envelope[][2] = {{view->id, c->report->id},
                                       {view->originator, c->report->originator},
                                       {view->created, c->report->created},
                                       {view->category, c->report->category},
                                       {view->handling_level, c->report->handling_level}};
    for (size_t i = 0; i < 5; i++)
        if (!envelope[i][0] || strcmp(envelope[i][0], envelope[i][1]) != 0)
            fail_view(c, "the envelope does not go whole");

    walked_t *held = calloc(1, sizeof *held);
    assert_non_null(held);
    walk(held, &view->base, "");
    check_values(c, held);
    check_markings(c, view, held);
    free(held);
    out->key = cv_decision_view_key(c->decision);
    out->bytes = built;
    out->len = len;
    protobuf_c_message_free_unpacked(&view->base, NULL);
}

/*  shares_all, asked before the view is built, as the broker asks it. */
static void check_shares_all(check_t *c)
{
    if (!cv_decision_shares_all(c->decision))
        return;
    size_t len;
    uint8_t *own = pack(&c->report->base, &len);
    uint8_t buf[TEXT_CAP];
    size_t packed = cv_decision_pack(c->decision, c->report, buf, sizeof buf);
    if (packed != len || memcmp(buf, own, len) != 0)
        fail_view(c, "shares all, but the view is not the report");
    free(own);
}

static int type_index(const char *type)
{
    for (int i = 0; i < N_TYPES; i++)
        if (strcmp(types[i], type) == 0)
            return i;
    fail_msg("unknown type %s", type);
    return -1;
}

/*  Whether an approval names the recipient, by id or by type. */
static bool approved(const check_t *c)
{
    for (size_t i = 0; i < c->approvals.count; i++)
        if (strcmp(c->approvals.to[i], c->recipient->id) == 0 ||
            strcmp(c->approvals.to[i], c->recipient->type) == 0)
            return true;
    return false;
}

/*  The originator's approvals of a report: none, or a few agencies and
 *  types. Given to every decision; only handling code 5 reads them. */
static void draw_approvals(check_t *c)
{
    static const char *to[4];
    c->approvals = (cv_approvals_t){to, 0};
    int n = rnd(4);
    for (int i = 0; i < n; i++)
        to[c->approvals.count++] =
            chance(50) ? agencies[rnd((int)N_AGENCIES)].id : types[rnd(N_TYPES)];
}

/*  Every agency's decision on one report. Returns how many views went. */
static int check_report(check_t *c, int round, int n)
{
    c->report_values.n = c->report_values.empty_parts = c->report_values.n_parts = 0;
    walk(&c->report_values, &c->report->base, "");
    draw_approvals(c);
    packed_t views[N_AGENCIES];
    int delivered = 0;
    for (size_t a = 0; a < N_AGENCIES; a++) {
        c->recipient = cv_policy_agency(c->policy, (int)a);
        c->type = type_index(c->recipient->type);
        snprintf(c->where, sizeof c->where, "policy %d, report %d, to %s", round, n,
                 c->recipient->id);
        if (!cv_policy_decide(c->policy, c->report, (int)a, &c->approvals, c->decision))
            continue;
        if (cv_policy_needs_approval(c->policy, c->report) && !approved(c))
            fail_view(c, "goes without its originator's approval");
        c->n_outcomes = cv_decision_outcomes(c->decision, c->outcome_paths, c->outcomes, MAX_PATHS);
        assert_true(c->n_outcomes <= MAX_PATHS);
        check_shares_all(c);
        check_view(c, &views[delivered]);
        for (int k = 0; k < delivered; k++)
            if (views[k].key >= 0 && views[k].key == views[delivered].key &&
                (views[k].len != views[delivered].len ||
                 memcmp(views[k].bytes, views[delivered].bytes, views[k].len) != 0))
                fail_view(c, "named as another view, packed otherwise");
        delivered++;
    }
    for (int k = 0; k < delivered; k++)
        free(views[k].bytes);
    return delivered;
}

/*  The JSON form takes only dates, but a Publish's protobuf may carry any
 *  text in a date's field: one that the year mask cannot take. */
static void spoil_a_date(Caveat__Report *report)
{
    if (!report->n_subjects || !chance(20))
        return;
    Caveat__Subject *subject = report->subjects[rnd((int)report->n_subjects)];
    free(subject->date_of_birth);
    subject->date_of_birth = strdup(chance(50) ? "unknown" : "2009");
    assert_non_null(subject->date_of_birth);
}

static unsigned env_number(const char *name, unsigned otherwise)
{
    const char *value = getenv(name);
    return value && *value ? (unsigned)strtoul(value, NULL, 0) : otherwise;
}

static void test_every_view_holds_its_properties(void **state)
{
    (void)state;
    rng_state = env_number("CAVEAT_PROPERTY_SEED", 0x5eed) * 2 + 1; /* never 0 */
    unsigned rounds = env_number("CAVEAT_PROPERTY_ROUNDS", ROUNDS);
    static check_t c;
    c.decision = cv_decision_new();
    assert_non_null(c.decision);
    long decided = 0, views = 0, refused = 0;
    for (unsigned round = 0; round < rounds; round++) {
        random_policy(&policy_text);
        cv_error_t err = {0};
        cv_policy_t *policy =
            cv_policy_load_buffer(policy_text.buf, policy_text.len, "random.yaml", NULL, &err);
        if (!policy)
            fail_msg("policy %u: %s\n%s", round, err.msg, policy_text.buf);
        c.policy = policy;
        for (int n = 0; n < REPORTS_PER_POLICY; n++) {
            random_report(&report_text, n);
            ProtobufCMessage *msg = cv_json_parse(cv_schema_report(), report_text.buf,
                                                  report_text.len, "random.json", &err);
            if (!msg)
                fail_msg("report %d: %s\n%s", n, err.msg, report_text.buf);
            c.report = (Caveat__Report *)msg;
            spoil_a_date((Caveat__Report *)msg);
            if (!cv_policy_validate_report(policy, c.report, &err)) {
                refused++; /* the broker would not have taken it */
            } else {
                views += check_report(&c, (int)round, n);
                decided += (long)N_AGENCIES;
            }
            protobuf_c_message_free_unpacked(msg, NULL);
        }
        cv_policy_destroy(&policy);
    }
    cv_decision_destroy(&c.decision);
    print_message("%ld decisions, %ld views checked, %ld reports refused\n", decided, views,
                  refused);
    /* the draw must reach the properties: most reports valid, many views */
    assert_true(refused * 4 < (long)rounds * REPORTS_PER_POLICY);
    assert_true(views * 5 > decided);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_view_holds_its_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
