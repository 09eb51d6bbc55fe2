/*  cv_policy_load.c: read a policy file, validate every part of it, and
 *  compile it into the structure that cv_policy_decide.c reads.
 *
 *  Errors are FILE:LINE:COL: error: what, naming the entry they are in
 *  ("rule 'x': ..."). The loader goes on after an error where it safely
 *  can, so that `policy check` lists them all: an entry with an error is
 *  skipped and the others are still checked; only a section the rest
 *  depends on (levels, categories, agencies) stops it. Callers that want
 *  one line get the first. Nothing is half-loaded: the caller gets a
 *  complete policy or NULL. Every name a policy uses (levels, categories,
 *  agency types and ids, field paths, masks) is checked here, once, so the
 *  decision code never meets an unknown one.
 */
#include <errno.h>
#include <libfyaml.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "policy_internal.h"

/*  The categories seen in practice, used when a policy does not list its own. */
static const char *const default_categories[] = {
    "vulnerable_individual", "radicalisation_concern", "venue_of_concern",
    "community_tension",     "critical_incident",      "grievance",
    "intervention_review",   "prison_intelligence",    "feedback",
};

typedef struct {
    cv_policy_t *policy;
    const char *file;
    cv_error_t *err;          /* the first error */
    cv_policy_error_fn *each; /* every error, or NULL */
    void *arg;
    int n_errors;
    char subject[200]; /* "rule 'x'": the entry being loaded, named in its errors */
    cv_table_t names;  /* entry and restriction names, by FNV-1a: no name compared with
                          every other */
    int n_entry_slots; /* the names table's slots for entries; restrictions' follow */
} loader_t;

/* ------------------------------------------------------------------------ */
/*  Small helpers over libfyaml nodes. Each check that fails records the
 *  error at the node and returns false (or NULL), so callers just return.  */

static bool fail(loader_t *l, struct fy_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*  Counts an error: the first goes to err, each (up to the limit) to the
 *  error sink, then one line saying that there are more. */
static void record(loader_t *l, const cv_error_t *error)
{
    if (l->n_errors++ == 0 && l->err)
        *l->err = *error;
    if (!l->each || l->n_errors > CV_POLICY_ERRORS_MAX + 1)
        return;
    if (l->n_errors <= CV_POLICY_ERRORS_MAX) {
        l->each(error->msg, l->arg);
        return;
    }
    cv_error_t more;
    cv_error_set(&more, l->file, 0, 0, "too many errors (more than %d); not listing the rest",
                 CV_POLICY_ERRORS_MAX);
    l->each(more.msg, l->arg);
}

static bool fail(loader_t *l, struct fy_node *at, const char *fmt, ...)
{
    char what[sizeof l->err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    /* Within an entry the subject names it, so the entry's own label is
     * "": its "%s: " or "%s." leaves a ": " or "." to drop. */
    const char *text = what;
    if (*l->subject)
        text += strncmp(text, ": ", 2) == 0 ? 2 : *text == '.';
    cv_error_t error;
    if (*l->subject)
        cv_error_at(&error, l->file, at, "%s: %s", l->subject, text);
    else
        cv_error_at(&error, l->file, at, "%s", text);
    record(l, &error);
    return false;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        abort();
    return p;
}

static char *xstrdup(const char *s)
{
    char *copy = strdup(s);
    if (!copy)
        abort();
    return copy;
}

/*  The text of a scalar, NUL-terminated (libfyaml 0.7 keeps it so). A
 *  NULL node is a value required() found missing: its error stands.
 *  Every scalar the loader reads is a name, a key or a word (descriptions
 *  are never read): one with a control character, a line separator or a
 *  bidirectional control would reach the log, the audit log's leaves and
 *  `caveat policy` output looking like another, so it is refused as a
 *  report id with them is (cv_text_readable). */
static const char *scalar(loader_t *l, struct fy_node *node, const char *what)
{
    if (!node)
        return NULL;
    if (!fy_node_is_scalar(node)) {
        fail(l, node, "%s: expected a single value", what);
        return NULL;
    }
    size_t len;
    const char *text = fy_node_get_scalar(node, &len);
    if (text && !cv_text_readable(text, len, "")) {
        fail(l, node,
             "%s: a control character, line separator or bidirectional control character "
             "(written as a YAML escape, perhaps), which would show as something else",
             what);
        return NULL;
    }
    return fy_node_get_scalar0(node);
}

static bool expect(loader_t *l, struct fy_node *node, enum fy_node_type type, const char *what)
{
    static const char *const names[] = {"a single value", "a list", "a mapping"};
    if (node && fy_node_get_type(node) == type)
        return true;
    return fail(l, node, "%s: expected %s", what, names[type]);
}

/*  Refuses keys of a mapping that are not in allowed (NULL-terminated). */
static bool known_keys(loader_t *l, struct fy_node *map, const char *const *allowed,
                       const char *what)
{
    void *iter = NULL;
    struct fy_node_pair *pair;
    bool ok = true;
    while ((pair = fy_node_mapping_iterate(map, &iter))) {
        struct fy_node *key = fy_node_pair_key(pair);
        const char *name = scalar(l, key, what);
        const char *const *a = allowed;
        while (name && *a && strcmp(*a, name) != 0)
            a++;
        if (!name || !*a)
            ok = name ? fail(l, key, "%s: unknown key '%s'", what, name) : false;
    }
    return ok;
}

static struct fy_node *lookup(struct fy_node *map, const char *key)
{
    return fy_node_mapping_lookup_value_by_simple_key(map, key, FY_NT);
}

static struct fy_node *required(loader_t *l, struct fy_node *map, const char *key, const char *what)
{
    struct fy_node *value = lookup(map, key);
    if (!value)
        fail(l, map, "%s: missing '%s'", what, key);
    return value;
}

static bool boolean(loader_t *l, struct fy_node *node, bool *out, const char *what)
{
    const char *text = scalar(l, node, what);
    if (!text)
        return false;
    if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0) {
        *out = text[0] == 't';
        return true;
    }
    return fail(l, node, "%s: expected true or false, not '%s'", what, text);
}

static int find_name(char *const *names, int count, const char *name)
{
    for (int i = 0; i < count; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

static void free_strings(char **list, int count)
{
    for (int i = 0; i < count; i++)
        free(list[i]);
    free(list);
}

/*  Reads a list of distinct scalars into a new array of copies. */
static bool string_list(loader_t *l, struct fy_node *seq, char ***out, int *count, const char *what)
{
    if (!expect(l, seq, FYNT_SEQUENCE, what))
        return false;
    int n = fy_node_sequence_item_count(seq);
    char **list = xcalloc((size_t)n, sizeof *list);
    int filled = 0;
    void *iter = NULL;
    struct fy_node *item;
    bool ok = true;
    while (ok && (item = fy_node_sequence_iterate(seq, &iter))) {
        const char *text = scalar(l, item, what);
        if (!text)
            ok = false;
        else if (!*text)
            ok = fail(l, item, "%s: empty name", what);
        else if (find_name(list, filled, text) >= 0)
            ok = fail(l, item, "%s: '%s' is listed twice", what, text);
        else
            list[filled++] = xstrdup(text);
    }
    if (!ok) {
        free_strings(list, filled);
        return false;
    }
    *out = list;
    *count = filled;
    return true;
}

static int level_of(loader_t *l, struct fy_node *node, const char *what)
{
    const char *text = scalar(l, node, what);
    if (!text)
        return -1;
    int level = find_name(l->policy->levels, l->policy->n_levels, text);
    if (level < 0)
        fail(l, node, "%s: unknown level '%s'", what, text);
    return level;
}

/* ------------------------------------------------------------------------ */
/*  Header: protocol, version, levels, categories.                          */

/*  Protocol and version: nothing else depends on them, so an error here
 *  does not stop the load. */
static void load_name(loader_t *l, struct fy_node *root)
{
    cv_policy_t *p = l->policy;
    const char *protocol = scalar(l, required(l, root, "protocol", "policy"), "protocol");
    if (protocol && !*protocol)
        fail(l, lookup(root, "protocol"), "protocol: empty name");
    else if (protocol)
        p->protocol = xstrdup(protocol);

    struct fy_node *version = required(l, root, "version", "policy");
    const char *text = scalar(l, version, "version");
    char *end;
    if (text && ((p->version = strtoll(text, &end, 10)) < 0 || *end || end == text))
        fail(l, version, "version: expected a whole number, not '%s'", text);
}

/*  Levels and categories: every entry names them, so an error here stops
 *  the load. */
static bool load_header(loader_t *l, struct fy_node *root)
{
    cv_policy_t *p = l->policy;
    load_name(l, root);
    struct fy_node *levels = required(l, root, "levels", "policy");
    if (!levels || !string_list(l, levels, &p->levels, &p->n_levels, "levels"))
        return false;
    if (p->n_levels == 0)
        return fail(l, levels, "levels: at least one level is needed");
    /* the engine holds a level in a byte: a 257th would wrap to the lowest */
    if (p->n_levels > CV_LEVELS_MAX)
        return fail(l, levels, "levels: at most %d levels, not %d", CV_LEVELS_MAX, p->n_levels);

    struct fy_node *categories = lookup(root, "categories");
    if (categories)
        return string_list(l, categories, &p->categories, &p->n_categories, "categories") &&
               (p->n_categories <= CV_MAX_CATEGORIES ||
                fail(l, categories, "categories: at most %d", CV_MAX_CATEGORIES));
    p->n_categories = (int)(sizeof default_categories / sizeof *default_categories);
    p->categories = xcalloc((size_t)p->n_categories, sizeof *p->categories);
    for (int i = 0; i < p->n_categories; i++)
        p->categories[i] = xstrdup(default_categories[i]);
    return true;
}

/* ------------------------------------------------------------------------ */
/*  Agencies.                                                               */

static int intern(char ***names, int *count, const char *name)
{
    int index = find_name(*names, *count, name);
    if (index >= 0)
        return index;
    char **grown = realloc(*names, (size_t)(*count + 1) * sizeof **names);
    if (!grown)
        abort();
    *names = grown;
    grown[*count] = xstrdup(name);
    return (*count)++;
}

/*  One Z85 public key into key and z85, not another agency's. */
static bool load_one_key(loader_t *l, struct fy_node *node, uint8_t key[CV_KEY_BYTES], char z85[41],
                         const char *what)
{
    const char *text = scalar(l, node, what);
    if (!text)
        return false;
    if (strlen(text) != 40 || !zmq_z85_decode(key, text))
        return fail(l, node, "%s: not a Z85 CURVE public key (40 characters)", what);
    memcpy(z85, text, 41);
    int same = cv_policy_agency_by_key(l->policy, key);
    if (same >= 0)
        return fail(l, node, "%s: the same key as agency '%s'", what,
                    l->policy->agencies[same].pub.id);
    return true;
}

/*  key: "KEY", or [CURRENT, NEXT] while the agency rotates its key. */
static bool load_key(loader_t *l, cv_agency_t *agency, struct fy_node *node, const char *what)
{
    if (!fy_node_is_sequence(node))
        return load_one_key(l, node, agency->key, agency->key_z85, what);
    int n = fy_node_sequence_item_count(node);
    if (n < 1 || n > 2)
        return fail(l, node, "%s: one key, or two while it is rotated ([current, next]), not %d",
                    what, n);
    if (!load_one_key(l, fy_node_sequence_get_by_index(node, 0), agency->key, agency->key_z85,
                      what))
        return false;
    if (n == 1)
        return true;
    struct fy_node *next = fy_node_sequence_get_by_index(node, 1);
    if (!load_one_key(l, next, agency->next_key, agency->next_key_z85, what))
        return false;
    if (memcmp(agency->key, agency->next_key, CV_KEY_BYTES) == 0)
        return fail(l, next, "%s: the same key twice", what);
    agency->has_next_key = true;
    return true;
}

static bool load_areas(loader_t *l, cv_agency_t *agency, struct fy_node *node, const char *what)
{
    char **areas;
    int n;
    if (!string_list(l, node, &areas, &n, what))
        return false;
    agency->areas = (const char *const *)areas;
    agency->n_areas = n;
    agency->all_areas = find_name(areas, n, "*") >= 0;
    if (n == 0)
        return fail(l, node, "%s: at least one area (or \"*\") is needed", what);
    return true;
}

/*  The agency's properties; what is "" (the subject names the agency). */
static bool agency_fields(loader_t *l, cv_agency_internal_t *agency, struct fy_node *value,
                          const char *what)
{
    cv_policy_t *p = l->policy;
    char label[200];
#define LABEL(key) (snprintf(label, sizeof label, "%s.%s", what, key), label)
    const char *org = scalar(l, required(l, value, "organisation", what), LABEL("organisation"));
    const char *type = org ? scalar(l, required(l, value, "type", what), LABEL("type")) : NULL;
    if (!type)
        return false;
    agency->org_id = intern(&p->organisations, &p->n_organisations, org);
    agency->pub.organisation = p->organisations[agency->org_id];
    agency->type_id = intern(&p->types, &p->n_types, type);
    agency->pub.type = p->types[agency->type_id];
    agency->pub.admin = strcmp(type, "admin") == 0;
    if (p->n_types > CV_MAX_TYPES)
        return fail(l, lookup(value, "type"), "%s: more than %d agency types", what, CV_MAX_TYPES);
    struct fy_node *clearance = required(l, value, "clearance", what);
    if (!clearance || (agency->pub.clearance = level_of(l, clearance, LABEL("clearance"))) < 0)
        return false;
    struct fy_node *areas = required(l, value, "areas", what);
    if (!areas || !load_areas(l, &agency->pub, areas, LABEL("areas")))
        return false;
    struct fy_node *pubkey = required(l, value, "key", what);
    if (!pubkey || !load_key(l, &agency->pub, pubkey, LABEL("key")))
        return false;
#undef LABEL
    return true;
}

/*  An agency with an error in its properties still takes its id, so that
 *  the entries naming it are checked without an error of their own. */
static bool load_agency(loader_t *l, struct fy_node *key, struct fy_node *value)
{
    static const char *const keys[] = {"organisation", "type",        "clearance", "areas",
                                       "key",          "description", NULL};
    cv_policy_t *p = l->policy;
    const char *id = scalar(l, key, "agencies");
    if (!id)
        return false;
    if (!*id)
        return fail(l, key, "agencies: empty agency id");
    if (cv_policy_agency_find(p, id) >= 0)
        return fail(l, key, "agencies: '%s' is listed twice", id);
    snprintf(l->subject, sizeof l->subject, "agency '%s'", id);
    bool ok = expect(l, value, FYNT_MAPPING, "") && known_keys(l, value, keys, "");
    cv_agency_internal_t *agency = &p->agencies[p->n_agencies];
    agency->pub.id = xstrdup(id);
    ok = ok && agency_fields(l, agency, value, "");
    l->subject[0] = '\0';
    cv_policy_index_agency(p, p->n_agencies++);
    return ok;
}

static bool load_agencies(loader_t *l, struct fy_node *root)
{
    struct fy_node *agencies = required(l, root, "agencies", "policy");
    if (!agencies || !expect(l, agencies, FYNT_MAPPING, "agencies"))
        return false;
    int n = fy_node_mapping_item_count(agencies);
    if (n == 0)
        return fail(l, agencies, "agencies: at least one agency is needed");
    /* one spare slot: an agency that fails half-way is freed from there */
    l->policy->agencies = xcalloc((size_t)n + 1, sizeof *l->policy->agencies);
    cv_table_init(&l->policy->by_id, n);
    cv_table_init(&l->policy->by_key, 2 * n); /* a current and a next key each, at most */
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(agencies, &iter)))
        load_agency(l, fy_node_pair_key(pair), fy_node_pair_value(pair));
    return true;
}

static bool load_administrators(loader_t *l, struct fy_node *root)
{
    struct fy_node *admins = lookup(root, "administrators");
    if (!admins)
        return true;
    if (!expect(l, admins, FYNT_SEQUENCE, "administrators"))
        return false;
    void *iter = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(admins, &iter))) {
        const char *id = scalar(l, item, "administrators");
        int index = id ? cv_policy_agency_find(l->policy, id) : -1;
        if (index >= 0)
            l->policy->agencies[index].pub.admin = true;
        else if (id)
            fail(l, item, "administrators: unknown agency '%s'", id);
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/*  Agency sets: from_types/from_agencies, to_types/to_agencies.            */

static bool load_agency_set(loader_t *l, struct fy_node *map, const char *side,
                            cv_agency_set_t *set, bool needed, const char *what)
{
    cv_policy_t *p = l->policy;
    char key_types[32], key_agencies[32], label[200];
    snprintf(key_types, sizeof key_types, "%s_types", side);
    snprintf(key_agencies, sizeof key_agencies, "%s_agencies", side);
    struct fy_node *types = lookup(map, key_types);
    struct fy_node *agencies = lookup(map, key_agencies);
    set->any = !types && !agencies;
    if (set->any && needed)
        return fail(l, map, "%s: needs %s or %s", what, key_types, key_agencies);
    void *iter = NULL;
    struct fy_node *item;
    snprintf(label, sizeof label, "%s.%s", what, key_types);
    if (types && !expect(l, types, FYNT_SEQUENCE, label))
        return false;
    while (types && (item = fy_node_sequence_iterate(types, &iter))) {
        const char *type = scalar(l, item, label);
        if (!type)
            return false;
        int id = cv_policy_type_find(p, type);
        if (id < 0)
            return fail(l, item, "%s: no agency has type '%s'", label, type);
        /* a type past the limit is an agency's error already; the load goes
         * on after it, but a set has no bit for it */
        if (id < CV_MAX_TYPES)
            set->types |= UINT64_C(1) << id;
    }
    snprintf(label, sizeof label, "%s.%s", what, key_agencies);
    if (agencies && !expect(l, agencies, FYNT_SEQUENCE, label))
        return false;
    if (agencies)
        set->agencies = xcalloc((size_t)p->n_agencies, 1);
    iter = NULL;
    while (agencies && (item = fy_node_sequence_iterate(agencies, &iter))) {
        const char *id = scalar(l, item, label);
        if (!id)
            return false;
        int index = cv_policy_agency_find(p, id);
        if (index < 0)
            return fail(l, item, "%s: unknown agency '%s'", label, id);
        set->agencies[index] = 1;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/*  Handling codes.                                                         */

static bool load_code(loader_t *l, struct fy_node *key, struct fy_node *value)
{
    static const char *const keys[] = {
        "to_types", "to_agencies", "same_organisation", "originator_approval", "description", NULL};
    cv_policy_t *p = l->policy;
    cv_handling_code_t *code = &p->codes[p->n_codes];
    const char *name = scalar(l, key, "handling_codes");
    if (!name)
        return false;
    const char *what = ""; /* the subject names the code */
    if (cv_policy_code_find(p, name))
        return fail(l, key, "listed twice");
    code->code = xstrdup(name);
    p->n_codes++;
    if (!expect(l, value, FYNT_MAPPING, what) || !known_keys(l, value, keys, what))
        return false;
    if (!load_agency_set(l, value, "to", &code->to, false, what))
        return false;
    code->has_to = !code->to.any;
    struct fy_node *same_org = lookup(value, "same_organisation");
    struct fy_node *approval = lookup(value, "originator_approval");
    if (same_org && !boolean(l, same_org, &code->same_organisation, "same_organisation"))
        return false;
    if (approval && !boolean(l, approval, &code->originator_approval, "originator_approval"))
        return false;
    if (!code->has_to && !code->same_organisation && !code->originator_approval)
        return fail(l, value,
                    "%s: says nothing: give to_types, to_agencies, "
                    "same_organisation or originator_approval",
                    what);
    return true;
}

static bool load_codes(loader_t *l, struct fy_node *root)
{
    struct fy_node *codes = lookup(root, "handling_codes");
    if (!codes)
        return true;
    if (!expect(l, codes, FYNT_MAPPING, "handling_codes"))
        return false;
    l->policy->codes = xcalloc((size_t)fy_node_mapping_item_count(codes), sizeof *l->policy->codes);
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(codes, &iter))) {
        struct fy_node *key = fy_node_pair_key(pair);
        const char *name = fy_node_is_scalar(key) ? fy_node_get_scalar0(key) : NULL;
        if (name)
            snprintf(l->subject, sizeof l->subject, "handling code '%s'", name);
        load_code(l, key, fy_node_pair_value(pair));
        l->subject[0] = '\0';
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/*  Field grants: "path: share | deny | pseudonymise | {mask: NAME}".       */

static const struct {
    const char *name;
    cv_grant_t grant;
} grant_names[] = {
    {"share", CV_GRANT_SHARE},
    {"deny", CV_GRANT_DENY},
    {"pseudonymise", CV_GRANT_PSEUDONYMISE},
};

static const struct {
    const char *name;
    cv_grant_t grant;
} mask_names[] = {
    {"year", CV_GRANT_YEAR},
    {"postcode_district", CV_GRANT_POSTCODE_DISTRICT},
    {"initials", CV_GRANT_INITIALS},
    {"round_1km", CV_GRANT_ROUND_1KM},
    {"pseudonymise", CV_GRANT_PSEUDONYMISE},
};

static bool parse_grant(loader_t *l, struct fy_node *value, cv_grant_t *grant, const char *what)
{
    static const char *const keys[] = {"mask", NULL};
    if (fy_node_is_mapping(value)) {
        if (!known_keys(l, value, keys, what))
            return false;
        struct fy_node *mask = required(l, value, "mask", what);
        const char *name = scalar(l, mask, what);
        if (!name)
            return false;
        for (size_t i = 0; i < sizeof mask_names / sizeof *mask_names; i++)
            if (strcmp(name, mask_names[i].name) == 0) {
                *grant = mask_names[i].grant;
                return true;
            }
        return fail(l, mask,
                    "%s: unknown mask '%s' (year, postcode_district, initials, "
                    "round_1km, pseudonymise)",
                    what, name);
    }
    const char *name = scalar(l, value, what);
    if (!name)
        return false;
    for (size_t i = 0; i < sizeof grant_names / sizeof *grant_names; i++)
        if (strcmp(name, grant_names[i].name) == 0) {
            *grant = grant_names[i].grant;
            return true;
        }
    return fail(l, value, "%s: expected share, deny, pseudonymise or {mask: NAME}, not '%s'", what,
                name);
}

/*  A more specific path overrides a more general one within an entry:
 *  "*: share" with "source: deny" shares all but the source. So apply the
 *  entry's paths from the shallowest to the deepest. A restriction only
 *  denies or masks. */
static bool load_grants(loader_t *l, struct fy_node *fields, uint8_t *grants, const char *what,
                        bool restriction)
{
    const cv_schema_t *schema = l->policy->schema;
    int size = cv_schema_size(schema);
    if (!expect(l, fields, FYNT_MAPPING, what))
        return false;
    /* each field is checked once, in the pass for its depth; a bad one is
     * reported and the others still checked */
    bool ok = true;
    for (int depth = -1; depth < 8; depth++) {
        void *iter = NULL;
        struct fy_node_pair *pair;
        while ((pair = fy_node_mapping_iterate(fields, &iter))) {
            struct fy_node *key = fy_node_pair_key(pair);
            const char *path = depth < 0 ? scalar(l, key, what) : fy_node_get_scalar0(key);
            if (!path) {
                ok = false;
                continue;
            }
            int from = 0, to = size, node_depth = -1;
            if (strcmp(path, "*") != 0) {
                from = cv_schema_find(schema, path);
                if (from < 0) {
                    ok = depth < 0 ? fail(l, key, "%s: unknown field path '%s'", what, path) : ok;
                    continue;
                }
                to = cv_schema_node(schema, from)->end;
                node_depth = cv_schema_node(schema, from)->depth;
            }
            if (node_depth != depth)
                continue;
            cv_grant_t grant = CV_GRANT_NONE;
            if (!parse_grant(l, fy_node_pair_value(pair), &grant, path))
                ok = false;
            else if (restriction && grant == CV_GRANT_SHARE)
                ok = fail(l, fy_node_pair_value(pair),
                          "%s: share is not allowed in a restriction: it only denies or masks",
                          path);
            else if (!cv_grant_fits(schema, from, grant) && strcmp(path, "*") != 0)
                ok = fail(l, fy_node_pair_value(pair),
                          "%s: %s does not apply to every field under it", path,
                          cv_grant_name(grant));
            else if (strcmp(path, "*") == 0 && grant > CV_GRANT_SHARE && grant < CV_GRANT_DENY)
                ok = fail(l, fy_node_pair_value(pair),
                          "*: a mask cannot apply to every field; name the fields");
            else if (strcmp(path, "*") != 0 && cv_schema_node(schema, from)->envelope &&
                     grant > CV_GRANT_SHARE && grant < CV_GRANT_DENY)
                /* accepted, it would promise what no delivery keeps */
                ok = fail(l, fy_node_pair_value(pair),
                          "%s: the envelope (id, originator, created, category, handling_level) "
                          "goes whole with every delivered report; it cannot be masked",
                          path);
            else
                for (int i = from; i < to; i++)
                    grants[i] = (uint8_t)grant;
        }
    }
    return ok;
}

static bool load_fields(loader_t *l, struct fy_node *fields, cv_entry_t *entry, const char *what)
{
    size_t size = (size_t)cv_schema_size(l->policy->schema);
    entry->grants = l->policy->grants + (size_t)(entry - l->policy->entries) * size;
    if (!load_grants(l, fields, entry->grants, what, false))
        return false;
    entry->notice = fy_node_mapping_item_count(fields) == 0;
    entry->shares_all = true;
    for (size_t i = 0; i < size; i++) {
        const cv_schema_node_t *node = cv_schema_node(l->policy->schema, (int)i);
        /* the envelope goes with any delivery, and delivers nothing by
         * itself: only {} asks for a notice (docs/policy.md, rule 1). Only
         * leaves count: a message's own node keeps what its path granted
         * ({source: share, source.type: deny, ...}) when every field under
         * it is denied, and a view copies fields, never that node */
        entry->grants_any = entry->grants_any || (node->is_leaf && !node->envelope &&
                                                  entry->grants[i] != CV_GRANT_NONE &&
                                                  entry->grants[i] != CV_GRANT_DENY);
        if (node->is_leaf && !node->envelope && entry->grants[i] != CV_GRANT_SHARE)
            entry->shares_all = false;
        if (entry->grants[i] == CV_GRANT_PSEUDONYMISE)
            entry->pseudonymises = true;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/*  Rules and screening entries.                                            */

static void every_category(const cv_policy_t *p, uint64_t *mask)
{
    *mask |= p->n_categories == 64 ? UINT64_MAX : (UINT64_C(1) << p->n_categories) - 1;
}

static bool load_categories(loader_t *l, struct fy_node *seq, uint64_t *mask, const char *what)
{
    if (!expect(l, seq, FYNT_SEQUENCE, what))
        return false;
    void *iter = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(seq, &iter))) {
        const char *name = scalar(l, item, what);
        if (!name)
            return false;
        if (strcmp(name, "*") == 0) { /* every category, as "*" means every field or area */
            every_category(l->policy, mask);
            continue;
        }
        int id = cv_policy_category_find(l->policy, name);
        if (id < 0)
            return fail(l, item, "%s: unknown category '%s'", what, name);
        *mask |= UINT64_C(1) << id;
    }
    return true;
}

static bool load_match(loader_t *l, struct fy_node *match, cv_entry_t *entry, const char *what)
{
    static const char *const keys[] = {"categories", "indicators", "keywords", NULL};
    if (!expect(l, match, FYNT_MAPPING, what) || !known_keys(l, match, keys, what))
        return false;
    struct fy_node *categories = lookup(match, "categories");
    struct fy_node *indicators = lookup(match, "indicators");
    struct fy_node *keywords = lookup(match, "keywords");
    if (categories && !load_categories(l, categories, &entry->match_categories, what))
        return false;
    if (indicators &&
        !string_list(l, indicators, &entry->match_indicators, &entry->n_match_indicators, what))
        return false;
    if (keywords &&
        !string_list(l, keywords, &entry->match_keywords, &entry->n_match_keywords, what))
        return false;
    for (int i = 0; i < entry->n_match_keywords; i++)
        for (char *c = entry->match_keywords[i]; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
    if (!entry->match_categories && !entry->n_match_indicators && !entry->n_match_keywords)
        return fail(l, match, "%s: matches nothing: give categories, indicators or keywords", what);
    return true;
}

/*  The name in slot of the names table: an entry's, or past the entries a
 *  restriction's. */
static const char *name_in_slot(const loader_t *l, int slot)
{
    return slot < l->n_entry_slots ? l->policy->entries[slot].name
                                   : l->policy->restrictions[slot - l->n_entry_slots].name;
}

/*  True when an earlier entry or restriction has the name (one namespace,
 *  so that a name in an explanation or a review means one thing);
 *  otherwise records it for slot, which the caller fills next. */
static bool name_taken(loader_t *l, const char *name, int slot)
{
    cv_table_t *t = &l->names;
    unsigned h = cv_hash(name, strlen(name)) & t->mask;
    for (; t->slots[h] >= 0; h = (h + 1) & t->mask)
        if (strcmp(name_in_slot(l, t->slots[h]), name) == 0)
            return true;
    t->slots[h] = slot;
    return false;
}

/*  A name for an entry or restriction, taken for slot; NULL after the
 *  error when it is missing, empty or not unique. */
static const char *unique_name(loader_t *l, struct fy_node *node, int slot, const char *what)
{
    const char *name = scalar(l, required(l, node, "name", what), "name");
    if (!name)
        return NULL;
    if (!*name || name_taken(l, name, slot)) {
        fail(l, lookup(node, "name"), "name: '%s' is %s", name,
             *name ? "the name of another entry" : "empty");
        return NULL;
    }
    return name;
}

static bool load_entry(loader_t *l, struct fy_node *node, bool screening)
{
    static const char *const rule_keys[] = {
        "name",          "description", "categories",  "from_types",
        "from_agencies", "to_types",    "to_agencies", "same_area",
        "max_level",     "fields",      NULL};
    static const char *const screen_keys[] = {
        "name",     "description", "feed",      "match",     "from_types", "from_agencies",
        "to_types", "to_agencies", "same_area", "max_level", "fields",     NULL};
    cv_policy_t *p = l->policy;
    const char *what = ""; /* the subject names the entry */
    if (!expect(l, node, FYNT_MAPPING, what) ||
        !known_keys(l, node, screening ? screen_keys : rule_keys, what))
        return false;
    cv_entry_t *entry = &p->entries[p->n_entries];
    const char *name = unique_name(l, node, p->n_entries, what);
    if (!name)
        return false;
    entry->name = xstrdup(name);
    entry->screening = screening;
    entry->max_level = p->n_levels - 1;
    p->n_entries++;

    /* the parts are independent: each is checked whatever the others hold */
    bool ok = true;
    if (screening) {
        const char *feed = scalar(l, required(l, node, "feed", what), "feed");
        if (feed)
            entry->feed = xstrdup(feed);
        struct fy_node *match = required(l, node, "match", what);
        ok = feed && match && load_match(l, match, entry, "match");
    } else {
        struct fy_node *categories = required(l, node, "categories", what);
        ok = categories && load_categories(l, categories, &entry->categories, "categories");
        if (ok && !entry->categories)
            ok = fail(l, categories, "categories: at least one category is needed");
    }
    ok = load_agency_set(l, node, "from", &entry->from, false, what) && ok;
    ok = load_agency_set(l, node, "to", &entry->to, true, what) && ok;
    struct fy_node *same_area = lookup(node, "same_area");
    if (same_area && !boolean(l, same_area, &entry->same_area, "same_area"))
        ok = false;
    struct fy_node *max_level = lookup(node, "max_level");
    if (max_level && (entry->max_level = level_of(l, max_level, "max_level")) < 0)
        ok = false;
    struct fy_node *fields = required(l, node, "fields", what);
    return (fields && load_fields(l, fields, entry, "fields")) && ok;
}

/*  "rule 'x'" (kind "rule"), or "rules[2]" (section "rules") for an entry
 *  without a usable name. */
static void name_subject(loader_t *l, struct fy_node *node, const char *kind, const char *section,
                         int index)
{
    struct fy_node *name = fy_node_is_mapping(node) ? lookup(node, "name") : NULL;
    const char *text = name && fy_node_is_scalar(name) ? fy_node_get_scalar0(name) : NULL;
    if (text && *text)
        snprintf(l->subject, sizeof l->subject, "%s '%s'", kind, text);
    else
        snprintf(l->subject, sizeof l->subject, "%s[%d]", section, index);
}

static bool load_entries(loader_t *l, struct fy_node *root)
{
    struct fy_node *rules = lookup(root, "rules");
    struct fy_node *screening = lookup(root, "screening");
    if (rules && !expect(l, rules, FYNT_SEQUENCE, "rules"))
        rules = NULL;
    if (screening && !expect(l, screening, FYNT_SEQUENCE, "screening"))
        screening = NULL;
    int n_rules = rules ? fy_node_sequence_item_count(rules) : 0;
    int n_screens = screening ? fy_node_sequence_item_count(screening) : 0;
    l->policy->entries = xcalloc((size_t)(n_rules + n_screens), sizeof *l->policy->entries);
    l->policy->grants =
        xcalloc((size_t)(n_rules + n_screens) * (size_t)cv_schema_size(l->policy->schema), 1);
    /* the restrictions share the entries' names, and are loaded next */
    struct fy_node *restrictions = lookup(root, "restrictions");
    l->n_entry_slots = n_rules + n_screens;
    cv_table_init(&l->names, n_rules + n_screens +
                                 (restrictions && fy_node_is_sequence(restrictions)
                                      ? fy_node_sequence_item_count(restrictions)
                                      : 0));
    /* iterate: fy_node_sequence_get_by_index walks from the start each time */
    void *iter = NULL;
    struct fy_node *item;
    for (int i = 0; rules && (item = fy_node_sequence_iterate(rules, &iter)); i++) {
        name_subject(l, item, "rule", "rules", i);
        load_entry(l, item, false);
    }
    l->policy->n_rules = n_rules;
    iter = NULL;
    for (int i = 0; screening && (item = fy_node_sequence_iterate(screening, &iter)); i++) {
        name_subject(l, item, "screening", "screening", i);
        load_entry(l, item, true);
    }
    l->subject[0] = '\0';
    return true;
}

/* ------------------------------------------------------------------------ */
/*  Restrictions: the deliveries each names, and the fields it denies or
 *  masks in them.                                                          */

static bool load_restriction(loader_t *l, struct fy_node *node)
{
    static const char *const keys[] = {
        "name",     "description", "categories",      "from_types",         "from_agencies",
        "to_types", "to_agencies", "except_to_types", "except_to_agencies", "fields",
        NULL};
    cv_policy_t *p = l->policy;
    const char *what = ""; /* the subject names the restriction */
    if (!expect(l, node, FYNT_MAPPING, what) || !known_keys(l, node, keys, what))
        return false;
    cv_restriction_t *r = &p->restrictions[p->n_restrictions];
    const char *name = unique_name(l, node, l->n_entry_slots + p->n_restrictions, what);
    if (!name)
        return false;
    *r = (cv_restriction_t){.name = xstrdup(name)};
    cv_node_position(lookup(node, "name"), &r->line, &r->column);
    r->grants =
        p->restriction_grants + (size_t)p->n_restrictions * (size_t)cv_schema_size(p->schema);
    p->n_restrictions++;

    /* the parts are independent: each is checked whatever the others hold */
    struct fy_node *categories = lookup(node, "categories");
    bool ok = !categories || load_categories(l, categories, &r->categories, "categories");
    if (!categories) /* every category */
        every_category(p, &r->categories);
    else if (ok && !r->categories) /* []: it would apply to none, and load promising nothing */
        ok = fail(l, categories,
                  "categories: at least one category is needed (leave categories out for every "
                  "category)");
    ok = load_agency_set(l, node, "from", &r->from, false, what) && ok;
    ok = load_agency_set(l, node, "to", &r->to, false, what) && ok;
    ok = load_agency_set(l, node, "except_to", &r->except_to, false, what) && ok;
    struct fy_node *fields = required(l, node, "fields", what);
    if (!fields || !load_grants(l, fields, r->grants, "fields", true))
        return false;
    if (fy_node_mapping_item_count(fields) == 0)
        return fail(l, fields, "fields: a restriction must deny or mask at least one field");
    return ok;
}

static bool load_restrictions(loader_t *l, struct fy_node *root)
{
    struct fy_node *restrictions = lookup(root, "restrictions");
    if (!restrictions)
        return true;
    if (!expect(l, restrictions, FYNT_SEQUENCE, "restrictions"))
        return false;
    cv_policy_t *p = l->policy;
    int n = fy_node_sequence_item_count(restrictions);
    p->restrictions = xcalloc((size_t)n, sizeof *p->restrictions);
    p->restriction_grants = xcalloc((size_t)n * (size_t)cv_schema_size(p->schema), 1);
    void *iter = NULL;
    struct fy_node *item;
    for (int i = 0; (item = fy_node_sequence_iterate(restrictions, &iter)); i++) {
        name_subject(l, item, "restriction", "restrictions", i);
        load_restriction(l, item);
    }
    l->subject[0] = '\0';
    return true;
}

/* ------------------------------------------------------------------------ */
/*  Indexes for fast decisions: per agency type, the rules that may send to
 *  it, in buckets (cv_rule_index_t); per agency, what deciding reads of it
 *  (cv_agency_hot_t); per entry, its originators (cv_entry_hot_t).         */

/*  Rule e's bucket within its category: see cv_rule_index_t. */
static int bucket_of(const cv_policy_t *p, const cv_entry_t *e)
{
    return (e->same_area ? p->n_levels : 0) + p->n_levels - 1 - e->max_level;
}

static bool type_receives(const cv_entry_t *e, int type)
{
    return e->to.any || (e->to.types >> type & 1);
}

/*  The rules whose to_types include type: a counting sort into (category,
 *  bucket); next is scratch, a count per bucket. */
static void index_type(cv_policy_t *p, int type, int *next)
{
    int per_category = 2 * p->n_levels, n_buckets = p->n_categories * per_category;
    int *start = xcalloc((size_t)n_buckets + 1, sizeof *start);
    for (int e = 0; e < p->n_rules; e++)
        for (uint64_t c = type_receives(&p->entries[e], type) ? p->entries[e].categories : 0; c;
             c &= c - 1)
            start[__builtin_ctzll(c) * per_category + bucket_of(p, &p->entries[e]) + 1]++;
    for (int b = 0; b < n_buckets; b++)
        start[b + 1] += start[b];
    cv_rule_index_t *index = &p->type_rules[type];
    index->buckets = start;
    index->rules = xcalloc((size_t)start[n_buckets], sizeof *index->rules);
    memcpy(next, start, (size_t)n_buckets * sizeof *next);
    for (int e = 0; e < p->n_rules; e++) /* ascending: each bucket in policy order */
        for (uint64_t c = type_receives(&p->entries[e], type) ? p->entries[e].categories : 0; c;
             c &= c - 1)
            index->rules[next[__builtin_ctzll(c) * per_category + bucket_of(p, &p->entries[e])]++] =
                e;
}

/*  Rule e names agency a in to_agencies, and a's type alone would not
 *  reach it: a listed rule of a. */
static bool listed_for(const cv_policy_t *p, int e, int a)
{
    const cv_entry_t *entry = &p->entries[e];
    return entry->to.agencies && entry->to.agencies[a] &&
           !type_receives(entry, p->agencies[a].type_id);
}

/*  Each agency's listed rules in listed_pool (a few each): counted, then
 *  placed rule by rule, so each agency's are ascending. */
static void index_listed(cv_policy_t *p)
{
    int total = 0;
    for (int e = 0; e < p->n_rules; e++)
        for (int a = 0; p->entries[e].to.agencies && a < p->n_agencies; a++)
            if (listed_for(p, e, a)) {
                p->agency_hot[a].n_listed++;
                total++;
            }
    p->listed_pool = xcalloc((size_t)total, sizeof *p->listed_pool);
    for (int a = 0, first = 0; a < p->n_agencies; first += p->agency_hot[a++].n_listed)
        p->agency_hot[a].listed_first = first;
    int *next = xcalloc((size_t)p->n_agencies, sizeof *next);
    for (int e = 0; e < p->n_rules; e++) {
        const cv_entry_t *entry = &p->entries[e];
        for (int a = 0; entry->to.agencies && a < p->n_agencies; a++)
            if (listed_for(p, e, a))
                p->listed_pool[p->agency_hot[a].listed_first + next[a]++] =
                    (cv_listed_t){entry->categories, e, entry->max_level, entry->same_area};
    }
    free(next);
}

/*  Each agency's screening entries, in order, in screen_pool: counted,
 *  then placed. */
static void index_screens(cv_policy_t *p)
{
    int total = 0;
    for (int a = 0; a < p->n_agencies; a++)
        for (int e = p->n_rules; e < p->n_entries; e++)
            total += cv_agency_set_has(&p->entries[e].to, &p->agencies[a], a);
    p->screen_pool = xcalloc((size_t)total, sizeof *p->screen_pool);
    int next = 0;
    for (int a = 0; a < p->n_agencies; a++) {
        p->agency_hot[a].screen_first = next;
        for (int e = p->n_rules; e < p->n_entries; e++)
            if (cv_agency_set_has(&p->entries[e].to, &p->agencies[a], a))
                p->screen_pool[next++] = e;
        p->agency_hot[a].n_screens = next - p->agency_hot[a].screen_first;
    }
}

static int intern_area(cv_policy_t *p, const char *area)
{
    int id = cv_policy_area_find(p, area);
    if (id >= 0)
        return id;
    p->area_names[p->n_area_names] = area;
    cv_table_add(&p->by_area, cv_hash(area, strlen(area)), p->n_area_names);
    return p->n_area_names++;
}

/*  Each agency's areas as interned ids, in area_pool: deciding compares
 *  ids, in cache, not the agency's strings. */
static void index_areas(cv_policy_t *p)
{
    int total = 0;
    for (int a = 0; a < p->n_agencies; a++)
        total += p->agencies[a].pub.n_areas;
    p->area_names = xcalloc((size_t)total, sizeof *p->area_names);
    p->area_pool = xcalloc((size_t)total, sizeof *p->area_pool);
    cv_table_init(&p->by_area, total);
    int next = 0;
    for (int a = 0; a < p->n_agencies; a++) {
        const cv_agency_t *agency = &p->agencies[a].pub;
        p->agency_hot[a].area_first = next;
        p->agency_hot[a].n_areas = agency->n_areas;
        for (int i = 0; i < agency->n_areas; i++)
            p->area_pool[next++] = intern_area(p, agency->areas[i]);
    }
}

/*  cv_agency_hot_t: what deciding reads of each agency. */
static void index_agencies(cv_policy_t *p)
{
    p->agency_hot = xcalloc((size_t)p->n_agencies, sizeof *p->agency_hot);
    for (int a = 0; a < p->n_agencies; a++) {
        const cv_agency_internal_t *agency = &p->agencies[a];
        p->agency_hot[a] = (cv_agency_hot_t){.type_id = agency->type_id,
                                             .org_id = agency->org_id,
                                             .clearance = agency->pub.clearance,
                                             .all_areas = agency->pub.all_areas};
    }
    index_areas(p);
    index_listed(p);
    index_screens(p);
}

static int listed_count(const cv_policy_t *p, const cv_agency_set_t *from)
{
    int count = 0;
    for (int a = 0; from->agencies && a < p->n_agencies; a++)
        count += from->agencies[a];
    return count;
}

/*  One packed originator set, its agencies appended to from_pool at *pool. */
static cv_entry_hot_t pack_from(cv_policy_t *p, const cv_agency_set_t *from, int *pool)
{
    cv_entry_hot_t hot = {.from_types = from->any ? UINT64_MAX : from->types, .from_first = *pool};
    for (int a = 0; from->agencies && a < p->n_agencies; a++)
        if (from->agencies[a])
            p->from_pool[(*pool)++] = a; /* ascending */
    hot.from_count = *pool - hot.from_first;
    return hot;
}

/*  The packed form of each entry's and restriction's originators
 *  (cv_entry_hot_t), their listed agencies in one from_pool. */
static void index_hot(cv_policy_t *p)
{
    int pool = 0;
    for (int e = 0; e < p->n_entries; e++)
        pool += listed_count(p, &p->entries[e].from);
    for (int r = 0; r < p->n_restrictions; r++)
        pool += listed_count(p, &p->restrictions[r].from);
    p->hot = xcalloc((size_t)p->n_entries, sizeof *p->hot);
    p->restriction_hot = xcalloc((size_t)p->n_restrictions, sizeof *p->restriction_hot);
    p->from_pool = xcalloc((size_t)pool, sizeof *p->from_pool);
    pool = 0;
    for (int e = 0; e < p->n_entries; e++)
        p->hot[e] = pack_from(p, &p->entries[e].from, &pool);
    for (int r = 0; r < p->n_restrictions; r++)
        p->restriction_hot[r] = pack_from(p, &p->restrictions[r].from, &pool);
}

/*  masked_somewhere: the fields a mask of some entry or restriction may
 *  change, in any delivery. */
static void index_masks(cv_policy_t *p)
{
    size_t size = (size_t)cv_schema_size(p->schema);
    p->masked_somewhere = xcalloc(size, 1);
    const uint8_t *rows[] = {p->grants, p->restriction_grants};
    size_t counts[] = {(size_t)p->n_entries, (size_t)p->n_restrictions};
    for (size_t k = 0; k < 2; k++)
        for (size_t row = 0; rows[k] && row < counts[k]; row++)
            for (size_t i = 0; i < size; i++) {
                uint8_t grant = rows[k][row * size + i];
                p->masked_somewhere[i] |=
                    grant != CV_GRANT_NONE && grant != CV_GRANT_SHARE && grant != CV_GRANT_DENY;
            }
}

static void index_policy(cv_policy_t *p)
{
    int *next = xcalloc((size_t)(p->n_categories * 2 * p->n_levels), sizeof *next);
    p->type_rules = xcalloc((size_t)p->n_types, sizeof *p->type_rules);
    for (int t = 0; t < p->n_types; t++)
        index_type(p, t, next);
    free(next);
    index_agencies(p);
    index_hot(p);
    cv_restrictions_index(p);
    cv_route_index(p);
    index_masks(p);
}

/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/*  Retention: MOPI-style review periods per category.                      */

/*  "6y", "90d", "2w": a whole number and a unit, as seconds. */
static bool period(loader_t *l, struct fy_node *node, int64_t *seconds, const char *what)
{
    const char *text = scalar(l, node, what);
    if (!text)
        return false;
    char *end;
    long n = strtol(text, &end, 10);
    static const struct {
        char unit;
        int64_t seconds;
    } units[] = {{'d', 86400}, {'w', 7 * 86400}, {'y', 365 * 86400}};
    /* exactly one unit letter after the number: end[1] is looked at only
     * when end[0] is a character, not the string's end */
    bool one_letter = end != text && end[0] != '\0' && end[1] == '\0';
    for (size_t i = 0; one_letter && n > 0 && n <= 1000 && i < sizeof units / sizeof *units; i++)
        if (*end == units[i].unit) {
            *seconds = n * units[i].seconds;
            return true;
        }
    return fail(l, node, "%s: expected a period such as 90d, 2w or 6y (1 to 1000), not '%s'", what,
                text);
}

static bool load_retention(loader_t *l, struct fy_node *root)
{
    cv_policy_t *p = l->policy;
    struct fy_node *retention = lookup(root, "retention");
    if (!retention)
        return true;
    if (!expect(l, retention, FYNT_MAPPING, "retention"))
        return false;
    p->retention = xcalloc((size_t)p->n_categories + 1, sizeof *p->retention);
    p->retention_text = xcalloc((size_t)p->n_categories + 1, sizeof *p->retention_text);
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(retention, &iter))) {
        const char *name = scalar(l, fy_node_pair_key(pair), "retention");
        if (!name)
            continue;
        /* slot n_categories holds the default */
        int slot =
            strcmp(name, "default") == 0 ? p->n_categories : cv_policy_category_find(p, name);
        char what[160];
        snprintf(what, sizeof what, "retention.%s", name);
        if (slot < 0) {
            fail(l, fy_node_pair_key(pair), "retention: unknown category '%s'", name);
            continue;
        }
        if (!period(l, fy_node_pair_value(pair), &p->retention[slot], what))
            continue;
        char text[200];
        snprintf(text, sizeof text, "%s: %s", what, fy_node_get_scalar0(fy_node_pair_value(pair)));
        p->retention_text[slot] = xstrdup(text);
    }
    return true;
}

static bool load_root(loader_t *l, struct fy_node *root)
{
    static const char *const keys[] = {
        "protocol", "version",        "description", "levels",    "categories",   "handling_codes",
        "agencies", "administrators", "rules",       "screening", "restrictions", "retention",
        NULL};
    if (!root)
        return fail(l, NULL, "empty policy");
    if (!expect(l, root, FYNT_MAPPING, "policy"))
        return false;
    known_keys(l, root, keys, "policy");
    /* the sections after the agencies name levels, categories and agencies:
     * without those they would only repeat the error */
    if (!load_header(l, root) || !load_agencies(l, root))
        return false;
    load_administrators(l, root);
    load_codes(l, root);
    load_entries(l, root);
    load_restrictions(l, root);
    load_retention(l, root);
    if (l->n_errors)
        return false;
    index_policy(l->policy);
    return true;
}

/*  The key that starts at line:col of buf (1-based), as written: up to
 *  its closing quote, or to the ':' or flow punctuation after a plain key. */
static void key_at(const char *buf, size_t len, int line, int col, char *out, size_t size)
{
    const char *p = buf, *end = buf + len;
    for (int l = 1; l < line && p < end; p++)
        l += *p == '\n';
    p += col > 0 ? col - 1 : 0;
    const char *stop = p;
    if (p < end && (*p == '"' || *p == '\''))
        for (stop = p + 1; stop < end && *stop != *p && *stop != '\n'; stop++)
            ;
    else
        while (stop < end && !strchr(":,{}[]\n", *stop))
            stop++;
    if (p < end && (*p == '"' || *p == '\''))
        p++;
    while (stop > p && stop[-1] == ' ')
        stop--;
    snprintf(out, size, "%.*s", p < end ? (int)(stop - p) : 0, p);
}

/*  libfyaml reports syntax errors through its diagnostic object. Its
 *  "duplicate key" says where, not which: the key is read from the text. */
static void syntax_error(loader_t *l, const char *buf, size_t len, struct fy_diag *diag)
{
    void *iter = NULL;
    struct fy_diag_error *e = diag ? fy_diag_errors_iterate(diag, &iter) : NULL;
    cv_error_t error;
    char key[120];
    if (e && strcmp(e->msg, "duplicate key") == 0) {
        key_at(buf, len, e->line, e->column, key, sizeof key);
        cv_error_set(&error, l->file, e->line, e->column, "duplicate key '%s'", key);
    } else if (e) {
        cv_error_set(&error, l->file, e->line, e->column, "%s", e->msg); /* already 1-based */
    } else {
        cv_error_set(&error, l->file, 0, 0, "not a YAML document");
    }
    record(l, &error);
}

/*  True when node or anything under it is an alias or a merge key ("<<"). */
static bool has_references(struct fy_node *node)
{
    void *iter = NULL;
    if (fy_node_get_style(node) == FYNS_ALIAS)
        return true;
    if (fy_node_is_sequence(node)) {
        struct fy_node *item;
        while ((item = fy_node_sequence_iterate(node, &iter)))
            if (has_references(item))
                return true;
    } else if (fy_node_is_mapping(node)) {
        struct fy_node_pair *pair;
        while ((pair = fy_node_mapping_iterate(node, &iter))) {
            struct fy_node *key = fy_node_pair_key(pair), *value = fy_node_pair_value(pair);
            size_t len = 0;
            const char *text = key && fy_node_is_scalar(key) ? fy_node_get_scalar(key, &len) : NULL;
            if ((text && len == 2 && memcmp(text, "<<", 2) == 0) || (key && has_references(key)) ||
                (value && has_references(value)))
                return true;
        }
    }
    return false;
}

/*  Anchors, aliases and merge keys read as what they stand for. But
 *  fy_document_resolve checks every mapping for duplicate keys again
 *  (the builder did), which is quadratic in the 2,000-key agencies mapping:
 *  half of a large policy's load time. So resolve only a document that has
 *  something to resolve. Returns false, the error in diag, if it fails. */
static bool resolve(struct fy_document *doc)
{
    void *iter = NULL;
    struct fy_node *root = fy_document_root(doc);
    bool needed = fy_document_anchor_iterate(doc, &iter) || (root && has_references(root));
    return !needed || fy_document_resolve(doc) == 0;
}

static void derive_key(cv_policy_t *p, const uint8_t *pseudonym_key)
{
    if (pseudonym_key) {
        memcpy(p->pseudonym_key, pseudonym_key, CV_KEY_BYTES);
        return;
    }
    static const char context[] = "caveat pseudonymise test key";
    crypto_generichash(p->pseudonym_key, CV_KEY_BYTES, (const uint8_t *)p->protocol,
                       strlen(p->protocol), (const uint8_t *)context, sizeof context - 1);
}

/*  An error found before the loader runs: it too goes to the sink. */
static void early_error(const char *name, int line, int col, const char *what,
                        cv_policy_error_fn *each, void *arg, cv_error_t *err)
{
    loader_t l = {.file = name, .err = err, .each = each, .arg = arg};
    cv_error_t error;
    cv_error_set(&error, name, line, col, "%s", what);
    record(&l, &error);
}

cv_policy_t *cv_policy_load_buffer(const char *buf, size_t len, const char *name,
                                   const uint8_t *pseudonym_key, cv_error_t *err)
{
    return cv_policy_load_buffer_each(buf, len, name, pseudonym_key, NULL, NULL, err);
}

cv_policy_t *cv_policy_load_buffer_each(const char *buf, size_t len, const char *name,
                                        const uint8_t *pseudonym_key, cv_policy_error_fn *each,
                                        void *arg, cv_error_t *err)
{
    if (sodium_init() < 0) {
        early_error(name, 0, 0, "libsodium failed to initialise", each, arg, err);
        return NULL;
    }
    int line, col;
    const char *bad = cv_text_check(buf, len, &line, &col);
    if (bad) {
        early_error(name, line, col, bad, each, arg, err);
        return NULL;
    }
    cv_policy_t *policy = xcalloc(1, sizeof *policy);
    policy->name = xstrdup(name);
    policy->schema = cv_schema_report();
    loader_t l = {.policy = policy, .file = name, .err = err, .each = each, .arg = arg};

    struct fy_diag *diag = cv_diag_collecting();
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG, .diag = diag};
    struct fy_document *doc = fy_document_build_from_string(&cfg, buf, len);
    bool ok = false;
    if (!doc || !resolve(doc))
        syntax_error(&l, buf, len, diag);
    else
        ok = load_root(&l, fy_document_root(doc));
    fy_document_destroy(doc);
    fy_diag_destroy(diag);
    cv_table_free(&l.names);
    if (!ok) {
        cv_policy_destroy(&policy);
        return NULL;
    }
    uint8_t digest[32];
    crypto_generichash(digest, sizeof digest, (const uint8_t *)buf, len, NULL, 0);
    sodium_bin2hex(policy->hash, sizeof policy->hash, digest, sizeof digest);
    derive_key(policy, pseudonym_key);
    return policy;
}

cv_policy_t *cv_policy_load_file(const char *path, const uint8_t *pseudonym_key, cv_error_t *err)
{
    return cv_policy_load_file_each(path, pseudonym_key, NULL, NULL, err);
}

cv_policy_t *cv_policy_load_file_each(const char *path, const uint8_t *pseudonym_key,
                                      cv_policy_error_fn *each, void *arg, cv_error_t *err)
{
    size_t size = 0;
    cv_error_t why = {0};
    char *buf = cv_read_regular_file(path, CV_POLICY_FILE_MAX, &size, NULL, &why);
    if (!buf) {
        early_error(path, 0, 0, why.msg, each, arg, err);
        return NULL;
    }
    cv_policy_t *policy =
        cv_policy_load_buffer_each(buf, size, path, pseudonym_key, each, arg, err);
    free(buf);
    return policy;
}

/* ------------------------------------------------------------------------ */

static void agency_set_free(cv_agency_set_t *set)
{
    free(set->agencies);
}

void cv_policy_destroy(cv_policy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cv_policy_t *p = *self_p;
    if (p->retention_text)
        for (int i = 0; i <= p->n_categories; i++)
            free(p->retention_text[i]);
    free(p->retention_text);
    free(p->retention);
    for (int i = 0; i < p->n_agencies; i++) {
        cv_agency_internal_t *a = &p->agencies[i];
        free((char *)a->pub.id);
        free_strings((char **)a->pub.areas, a->pub.n_areas);
    }
    /* an agency that failed half-way still owns what it had */
    if (p->agencies && p->agencies[p->n_agencies].pub.id) {
        cv_agency_internal_t *a = &p->agencies[p->n_agencies];
        free((char *)a->pub.id);
        free_strings((char **)a->pub.areas, a->pub.n_areas);
    }
    free(p->agencies);
    for (int t = 0; p->type_rules && t < p->n_types; t++) {
        free(p->type_rules[t].buckets);
        free(p->type_rules[t].rules);
    }
    free(p->type_rules);
    cv_table_free(&p->by_id);
    cv_table_free(&p->by_key);
    cv_table_free(&p->by_area);
    free(p->agency_hot);
    free(p->area_names);
    free(p->area_pool);
    free(p->listed_pool);
    free(p->screen_pool);
    free(p->hot);
    free(p->from_pool);
    for (int i = 0; i < p->n_codes; i++) {
        free(p->codes[i].code);
        agency_set_free(&p->codes[i].to);
    }
    free(p->codes);
    for (int i = 0; i < p->n_entries; i++) {
        cv_entry_t *e = &p->entries[i];
        free(e->name);
        free(e->feed);
        agency_set_free(&e->from);
        agency_set_free(&e->to);
        free_strings(e->match_indicators, e->n_match_indicators);
        free_strings(e->match_keywords, e->n_match_keywords);
    }
    free(p->entries);
    free(p->grants);
    for (int i = 0; i < p->n_restrictions; i++) {
        cv_restriction_t *r = &p->restrictions[i];
        free(r->name);
        agency_set_free(&r->from);
        agency_set_free(&r->to);
        agency_set_free(&r->except_to);
    }
    free(p->restrictions);
    free(p->restriction_grants);
    free(p->restriction_buckets);
    free(p->restriction_pool);
    free(p->restriction_denies);
    free(p->masked_somewhere);
    free(p->restriction_hot);
    cv_route_index_free(p);
    free_strings(p->levels, p->n_levels);
    free_strings(p->categories, p->n_categories);
    free_strings(p->types, p->n_types);
    free_strings(p->organisations, p->n_organisations);
    sodium_memzero(p->pseudonym_key, sizeof p->pseudonym_key);
    free(p->protocol);
    free(p->name);
    free(p);
    *self_p = NULL;
}
