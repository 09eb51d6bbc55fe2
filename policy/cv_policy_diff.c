/*  cv_policy_diff.c: what a reviewer must approve between two versions of
 *  a policy, one line per change, section by section (the sections table
 *  at the end; a new part of the language is one more row):
 *
 *    protocol and version; levels; categories; handling codes; retention;
 *    agencies removed or changed (old order), then added (new order);
 *    rules, then screening entries: removed, added, and what the field
 *    lines cannot show (max_level, same_area; a screening entry's feed and
 *    match);
 *    restrictions: removed, added, and changed (categories, from, to,
 *    except_to, fields), by name;
 *    per flow (category or "feed NAME", originator, recipient) the fields
 *    gained (+), lost (-) or masked differently (~), in schema order;
 *    then, when anything changed, "N changes: SECTION COUNT, ...".
 *
 *  A flow's fields are what its matching entries grant to the most
 *  permissive report it admits (the lowest level, no field markings,
 *  same_area holding, a handling code allowing the recipient), capped by
 *  the restrictions that apply to it. What those
 *  assumptions hide is what the agency and entry lines show. Names come in
 *  the old policy's order followed by what the new one adds, so the output
 *  is deterministic.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

/*  A list of distinct names (pointing into the policies), first-added order. */
typedef struct {
    const char **names;
    int count;
} names_t;

/*  Reports of one kind from one originator to one recipient. The
 *  originator is an agency type, or an agency id that some entry names in
 *  from_agencies (such an entry covers that agency, not its whole type). */
typedef struct {
    const char *label; /* a category, or a feed name when feed */
    bool feed;
    const char *from;
    bool from_agency;
    const char *to; /* recipient agency id */
} flow_t;

typedef struct {
    const cv_policy_t *before, *after;
    FILE *out;
    int size;                     /* schema nodes */
    uint8_t *was, *now;           /* a flow's grants per node, before and after */
    uint8_t *type_was, *type_now; /* the same for the originator's type */
    names_t categories, feeds, types, named, recipients;
    int section;    /* the section being compared */
    int counts[16]; /* change lines per section (of the sections table) */
} diff_t;

/*  One change line, counted in the current section. */
static void change(diff_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void change(diff_t *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(d->out, fmt, ap);
    va_end(ap);
    fputc('\n', d->out);
    d->counts[d->section]++;
}

/*  "a, b, c" (malloc'd). */
static char *joined(const char *const *names, int count)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out)
        abort();
    for (int i = 0; i < count; i++)
        fprintf(out, "%s%s", i ? ", " : "", names[i]);
    if (fclose(out) != 0)
        abort();
    return text;
}

static void names_add(names_t *list, const char *name)
{
    for (int i = 0; i < list->count; i++)
        if (strcmp(list->names[i], name) == 0)
            return;
    const char **grown = realloc(list->names, (size_t)(list->count + 1) * sizeof *grown);
    if (!grown)
        abort();
    list->names = grown;
    grown[list->count++] = name;
}

static const cv_agency_t *agency_named(const cv_policy_t *p, const char *id)
{
    return cv_policy_agency(p, cv_policy_agency_find(p, id));
}

static const cv_schema_node_t *node_at(int index)
{
    return cv_schema_node(cv_schema_report(), index);
}

static const cv_entry_t *entry_named(const cv_policy_t *p, const char *name)
{
    for (int i = 0; i < p->n_entries; i++)
        if (strcmp(p->entries[i].name, name) == 0)
            return &p->entries[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/*  The header, levels, categories, handling codes and retention.           */

static void diff_header(diff_t *d)
{
    const char *was = d->before->protocol, *now = d->after->protocol;
    if (strcmp(was, now) != 0)
        change(d, "~ protocol %s -> %s", was, now);
    if (d->before->version != d->after->version)
        change(d, "~ version %lld -> %lld", (long long)d->before->version,
               (long long)d->after->version);
}

/*  Levels are ordered: one line for the whole list when it differs. */
static void diff_levels(diff_t *d)
{
    char *was = joined((const char *const *)d->before->levels, d->before->n_levels);
    char *now = joined((const char *const *)d->after->levels, d->after->n_levels);
    if (strcmp(was, now) != 0)
        change(d, "~ levels [%s] -> [%s]", was, now);
    free(was);
    free(now);
}

static void diff_categories(diff_t *d)
{
    for (int c = 0; c < d->before->n_categories; c++)
        if (cv_policy_category_find(d->after, d->before->categories[c]) < 0)
            change(d, "- category %s", d->before->categories[c]);
    for (int c = 0; c < d->after->n_categories; c++)
        if (cv_policy_category_find(d->before, d->after->categories[c]) < 0)
            change(d, "+ category %s", d->after->categories[c]);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*  A set of agencies as sorted type and id names, "SIDE_types [..]
 *  SIDE_agencies [..]", so that two policies that intern types in another
 *  order still compare equal (malloc'd). */
static char *set_text(const cv_policy_t *p, const cv_agency_set_t *set, const char *side)
{
    const char **names = calloc((size_t)(p->n_types + p->n_agencies) + 1, sizeof *names);
    if (!names)
        abort();
    int n_types = 0, n_ids = 0;
    for (int t = 0; t < p->n_types; t++)
        if (set->types >> t & 1)
            names[n_types++] = p->types[t];
    for (int a = 0; set->agencies && a < p->n_agencies; a++)
        if (set->agencies[a])
            names[n_types + n_ids++] = p->agencies[a].pub.id;
    qsort(names, (size_t)n_types, sizeof *names, compare_names);
    qsort(names + n_types, (size_t)n_ids, sizeof *names, compare_names);
    char *types = joined(names, n_types), *ids = joined(names + n_types, n_ids), *text = NULL;
    if (asprintf(&text, "%s_types [%s] %s_agencies [%s]", side, types, side, ids) < 0)
        abort();
    free(types);
    free(ids);
    free(names);
    return text;
}

/*  What a handling code allows, as text (malloc'd). */
static char *code_text(const cv_policy_t *p, const cv_handling_code_t *code)
{
    char *to = code->has_to ? set_text(p, &code->to, "to") : NULL, *text = NULL;
    if (asprintf(&text, "%s%s%s%s", to ? to : "",
                 code->same_organisation ? (to ? ", same_organisation" : "same_organisation") : "",
                 code->originator_approval && (to || code->same_organisation) ? ", " : "",
                 code->originator_approval ? "originator_approval" : "") < 0)
        abort();
    free(to);
    return text;
}

static void diff_codes(diff_t *d)
{
    for (int i = 0; i < d->before->n_codes; i++) {
        const cv_handling_code_t *a = &d->before->codes[i];
        const cv_handling_code_t *b = cv_policy_code_find(d->after, a->code);
        if (!b) {
            change(d, "- handling code %s", a->code);
            continue;
        }
        char *was = code_text(d->before, a), *now = code_text(d->after, b);
        if (strcmp(was, now) != 0)
            change(d, "~ handling code %s: %s -> %s", a->code, was, now);
        free(was);
        free(now);
    }
    for (int i = 0; i < d->after->n_codes; i++) {
        const cv_handling_code_t *b = &d->after->codes[i];
        if (!cv_policy_code_find(d->before, b->code)) {
            char *now = code_text(d->after, b);
            change(d, "+ handling code %s: %s", b->code, now);
            free(now);
        }
    }
}

/*  The period of category ("default" for the default) as written ("6y"),
 *  or NULL when the policy gives none. */
static const char *period_of(const cv_policy_t *p, const char *category)
{
    int slot =
        strcmp(category, "default") == 0 ? p->n_categories : cv_policy_category_find(p, category);
    if (!p->retention_text || slot < 0 || !p->retention_text[slot])
        return NULL;
    return strrchr(p->retention_text[slot], ' ') + 1; /* "retention.NAME: PERIOD" */
}

static void diff_retention_of(diff_t *d, const char *category)
{
    const char *was = period_of(d->before, category), *now = period_of(d->after, category);
    if (was && !now)
        change(d, "- retention %s (was %s)", category, was);
    else if (!was && now)
        change(d, "+ retention %s: %s", category, now);
    else if (was && strcmp(was, now) != 0)
        change(d, "~ retention %s: %s -> %s", category, was, now);
}

static void diff_retention(diff_t *d)
{
    for (int c = 0; c < d->categories.count; c++)
        diff_retention_of(d, d->categories.names[c]);
    diff_retention_of(d, "default");
}

/* ------------------------------------------------------------------------ */
/*  Agencies and entries.                                                   */

static bool has_area(const cv_agency_t *agency, const char *area)
{
    for (int i = 0; i < agency->n_areas; i++)
        if (strcmp(agency->areas[i], area) == 0)
            return true;
    return false;
}

/*  Areas are sets (the loader refuses duplicates): order does not matter. */
static bool same_areas(const cv_agency_t *a, const cv_agency_t *b)
{
    for (int i = 0; i < a->n_areas; i++)
        if (!has_area(b, a->areas[i]))
            return false;
    return a->n_areas == b->n_areas;
}

static void diff_agency(diff_t *d, const cv_agency_t *a, const cv_agency_t *b)
{
    const char *was = d->before->levels[a->clearance], *now = d->after->levels[b->clearance];
    if (strcmp(a->organisation, b->organisation) != 0)
        change(d, "~ agency %s: organisation %s -> %s", a->id, a->organisation, b->organisation);
    if (strcmp(a->type, b->type) != 0)
        change(d, "~ agency %s: type %s -> %s", a->id, a->type, b->type);
    if (strcmp(was, now) != 0)
        change(d, "~ agency %s: clearance %s -> %s", a->id, was, now);
    if (!same_areas(a, b)) {
        char *areas_was = joined(a->areas, a->n_areas), *areas_now = joined(b->areas, b->n_areas);
        change(d, "~ agency %s: areas %s -> %s", a->id, areas_was, areas_now);
        free(areas_was);
        free(areas_now);
    }
    if (memcmp(a->key, b->key, CV_KEY_BYTES) != 0 || a->has_next_key != b->has_next_key ||
        (a->has_next_key && memcmp(a->next_key, b->next_key, CV_KEY_BYTES) != 0))
        change(d, "~ agency %s: key changed", a->id);
    if (a->admin != b->admin)
        change(d, "~ agency %s: admin %s", a->id, b->admin ? "granted" : "revoked");
}

static void diff_agencies(diff_t *d)
{
    for (int i = 0; i < d->before->n_agencies; i++) {
        const cv_agency_t *a = &d->before->agencies[i].pub;
        const cv_agency_t *b = agency_named(d->after, a->id);
        if (b)
            diff_agency(d, a, b);
        else
            change(d, "- agency %s", a->id);
    }
    for (int i = 0; i < d->after->n_agencies; i++) {
        const cv_agency_t *b = &d->after->agencies[i].pub;
        if (!agency_named(d->before, b->id))
            change(d, "+ agency %s (%s, %s)", b->id, b->type, d->after->levels[b->clearance]);
    }
}

/*  A screening entry's match, as text: "categories [..] indicators [..]
 *  keywords [..]" (malloc'd). */
static char *match_text(const cv_policy_t *p, const cv_entry_t *e)
{
    const char *categories[CV_MAX_CATEGORIES];
    int n = 0;
    for (int c = 0; c < p->n_categories; c++)
        if (e->match_categories >> c & 1)
            categories[n++] = p->categories[c];
    char *lists[3] = {joined(categories, n),
                      joined((const char *const *)e->match_indicators, e->n_match_indicators),
                      joined((const char *const *)e->match_keywords, e->n_match_keywords)};
    char *text = NULL;
    if (asprintf(&text, "categories [%s] indicators [%s] keywords [%s]", lists[0], lists[1],
                 lists[2]) < 0)
        abort();
    for (int i = 0; i < 3; i++)
        free(lists[i]);
    return text;
}

static void diff_match(diff_t *d, const cv_entry_t *e, const cv_entry_t *f)
{
    if (strcmp(e->feed, f->feed) != 0)
        change(d, "~ screening %s: feed %s -> %s", e->name, e->feed, f->feed);
    char *was = match_text(d->before, e), *now = match_text(d->after, f);
    if (strcmp(was, now) != 0)
        change(d, "~ screening %s: match %s -> %s", e->name, was, now);
    free(was);
    free(now);
}

/*  Entries of one kind removed, added, and what the flow lines cannot show,
 *  as they assume the lowest level, a report in the recipient's area and a
 *  report that a screening entry matches. */
static void diff_entries(diff_t *d, bool screening)
{
    const char *kind = screening ? "screening" : "rule";
    for (int i = 0; i < d->before->n_entries; i++) {
        const cv_entry_t *e = &d->before->entries[i];
        const cv_entry_t *f = entry_named(d->after, e->name);
        if (e->screening != screening)
            continue;
        if (!f || f->screening != screening) {
            change(d, "- %s %s", kind, e->name);
            continue;
        }
        const char *was = d->before->levels[e->max_level], *now = d->after->levels[f->max_level];
        if (strcmp(was, now) != 0)
            change(d, "~ %s %s: max_level %s -> %s", kind, e->name, was, now);
        if (e->same_area != f->same_area)
            change(d, "~ %s %s: same_area %s -> %s", kind, e->name, e->same_area ? "true" : "false",
                   f->same_area ? "true" : "false");
        if (screening)
            diff_match(d, e, f);
    }
    for (int i = 0; i < d->after->n_entries; i++) {
        const cv_entry_t *f = &d->after->entries[i];
        const cv_entry_t *e = entry_named(d->before, f->name);
        if (f->screening == screening && (!e || e->screening != screening))
            change(d, "+ %s %s", kind, f->name);
    }
}

static void diff_rules(diff_t *d)
{
    diff_entries(d, false);
}

static void diff_screening(diff_t *d)
{
    diff_entries(d, true);
}

/* ------------------------------------------------------------------------ */
/*  Restrictions, by name.                                                  */

static const cv_restriction_t *restriction_named(const cv_policy_t *p, const char *name)
{
    for (int r = 0; r < p->n_restrictions; r++)
        if (strcmp(p->restrictions[r].name, name) == 0)
            return &p->restrictions[r];
    return NULL;
}

/*  "categories [a, b]" of the categories in mask (malloc'd). */
static char *categories_text(const cv_policy_t *p, uint64_t mask)
{
    const char *names[CV_MAX_CATEGORIES];
    int n = 0;
    for (int c = 0; c < p->n_categories; c++)
        if (mask >> c & 1)
            names[n++] = p->categories[c];
    qsort(names, (size_t)n, sizeof *names, compare_names);
    char *list = joined(names, n), *text = NULL;
    if (asprintf(&text, "categories [%s]", list) < 0)
        abort();
    free(list);
    return text;
}

/*  The first leaf of nodes from..to when every leaf there has the same
 *  grant; to when there is none, -1 when they differ. */
static int uniform_leaf(const uint8_t *grants, int from, int to)
{
    int first = from;
    while (first < to && !node_at(first)->is_leaf)
        first++;
    for (int n = first; n < to; n++)
        if (node_at(n)->is_leaf && grants[n] != grants[first])
            return -1;
    return first;
}

static void put_grant(FILE *out, const char **sep, const char *path, uint8_t grant)
{
    fprintf(out, "%s%s: %s", *sep, path, grant == CV_GRANT_DENY ? "deny" : cv_grant_name(grant));
    *sep = ", ";
}

/*  What a restriction does to fields, "fields {PATH: deny, PATH: mask:M}",
 *  naming the shallowest node under which every field fares the same, or
 *  "*" for all (malloc'd). */
static char *fields_text(const diff_t *d, const uint8_t *grants)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out)
        abort();
    const char *sep = "";
    fputs("fields {", out);
    int all = uniform_leaf(grants, 0, d->size);
    for (int i = 0; all < 0 && i < d->size;) {
        const cv_schema_node_t *node = node_at(i);
        int first = uniform_leaf(grants, i, node->end);
        if (first < 0) {
            i++;
            continue;
        }
        if (first < node->end && grants[first] != CV_GRANT_NONE)
            put_grant(out, &sep, node->path, grants[first]);
        i = node->end;
    }
    if (all >= 0 && all < d->size && grants[all] != CV_GRANT_NONE)
        put_grant(out, &sep, "*", grants[all]);
    fputc('}', out);
    if (fclose(out) != 0)
        abort();
    return text;
}

/*  One "~ restriction NAME: WAS -> NOW" line when the texts differ; takes
 *  both. */
static void restriction_change(diff_t *d, const char *name, char *was, char *now)
{
    if (strcmp(was, now) != 0)
        change(d, "~ restriction %s: %s -> %s", name, was, now);
    free(was);
    free(now);
}

static void diff_restriction(diff_t *d, const cv_restriction_t *r, const cv_restriction_t *s)
{
    const cv_policy_t *a = d->before, *b = d->after;
    restriction_change(d, r->name, categories_text(a, r->categories),
                       categories_text(b, s->categories));
    restriction_change(d, r->name, set_text(a, &r->from, "from"), set_text(b, &s->from, "from"));
    restriction_change(d, r->name, set_text(a, &r->to, "to"), set_text(b, &s->to, "to"));
    restriction_change(d, r->name, set_text(a, &r->except_to, "except_to"),
                       set_text(b, &s->except_to, "except_to"));
    restriction_change(d, r->name, fields_text(d, r->grants), fields_text(d, s->grants));
}

static void diff_restrictions(diff_t *d)
{
    for (int i = 0; i < d->before->n_restrictions; i++) {
        const cv_restriction_t *r = &d->before->restrictions[i];
        const cv_restriction_t *s = restriction_named(d->after, r->name);
        if (s)
            diff_restriction(d, r, s);
        else
            change(d, "- restriction %s", r->name);
    }
    for (int i = 0; i < d->after->n_restrictions; i++)
        if (!restriction_named(d->before, d->after->restrictions[i].name))
            change(d, "+ restriction %s", d->after->restrictions[i].name);
}

/* ------------------------------------------------------------------------ */
/*  Rule matching per flow: cv_policy_decide needs a report and an
 *  originating agency, a flow has neither, so matching is redone here on
 *  the compiled entries.                                                   */

static bool covers_label(const cv_policy_t *p, const cv_entry_t *e, const flow_t *f)
{
    if (f->feed)
        return e->screening && strcmp(e->feed, f->label) == 0;
    int category = cv_policy_category_find(p, f->label);
    return !e->screening && category >= 0 && (e->categories >> category & 1);
}

/*  A type stands for any agency of it: entries (or restrictions) open to
 *  every originator or listing the type. An agency id also matches those
 *  naming it. */
static bool covers_from(const cv_policy_t *p, const cv_agency_set_t *from, const flow_t *f)
{
    if (f->from_agency) {
        int a = cv_policy_agency_find(p, f->from);
        return a >= 0 && cv_agency_set_has(from, &p->agencies[a], a);
    }
    int type = cv_policy_type_find(p, f->from);
    return from->any || (type >= 0 && (from->types >> type & 1));
}

/*  A restriction caps a category flow of its categories, and a feed's flow
 *  whatever category the report has (erring, like the feed's entries,
 *  towards the more protective grant). */
static bool restriction_covers(const cv_policy_t *p, int r, const flow_t *f, int to)
{
    const cv_restriction_t *restriction = &p->restrictions[r];
    int category = f->feed ? -1 : cv_policy_category_find(p, f->label);
    if (!f->feed && (category < 0 || !(restriction->categories >> category & 1)))
        return false;
    return covers_from(p, &restriction->from, f) && cv_restriction_to(p, r, to);
}

/*  Nothing flows unless some agency other than the recipient could send. */
static bool has_originator(const cv_policy_t *p, const flow_t *f, int to)
{
    for (int a = 0; a < p->n_agencies; a++) {
        const cv_agency_t *agency = &p->agencies[a].pub;
        if (a != to && strcmp(f->from_agency ? agency->id : agency->type, f->from) == 0)
            return true;
    }
    return false;
}

/*  The grant per schema node of the entries of p matching flow f, combined
 *  with max() as cv_decision.c's leaf_outcome does. No level cap bites: at
 *  the lowest level with no markings every field is within every clearance
 *  and max_level. (A feed's entries may match different reports; combining
 *  them all errs towards the more protective grant.) */
static void flow_grants(const diff_t *d, const cv_policy_t *p, const flow_t *f, uint8_t *grants)
{
    memset(grants, CV_GRANT_NONE, (size_t)d->size);
    int to = cv_policy_agency_find(p, f->to);
    if (to < 0 || !has_originator(p, f, to))
        return;
    for (int i = 0; i < p->n_entries; i++) {
        const cv_entry_t *e = &p->entries[i];
        if (!covers_label(p, e, f) || !covers_from(p, &e->from, f) ||
            !cv_agency_set_has(&e->to, &p->agencies[to], to))
            continue;
        for (int n = 0; n < d->size; n++)
            if (e->grants[n] > grants[n])
                grants[n] = e->grants[n];
    }
    for (int r = 0; r < p->n_restrictions; r++)
        if (restriction_covers(p, r, f, to))
            cv_restriction_cap(p, r, grants, (size_t)d->size);
    /* deny and no grant both withhold (cv_grant_name calls both so): compare
     * what the recipient would see */
    for (int n = 0; n < d->size; n++)
        if (grants[n] == CV_GRANT_DENY)
            grants[n] = CV_GRANT_NONE;
}

/* ------------------------------------------------------------------------ */
/*  Field lines.                                                            */

/*  A leaf's change is shown unless the originator is an agency id that
 *  fares exactly as its type does: the type's line already says it. */
static bool shown(const diff_t *d, int leaf, bool typed)
{
    return d->was[leaf] != d->now[leaf] &&
           !(typed && d->type_was[leaf] == d->was[leaf] && d->type_now[leaf] == d->now[leaf]);
}

/*  When every leaf under node shows the same change, one line for the node
 *  says it all ("- source (was share)"): returns such a leaf, else -1. */
static int uniform_change(const diff_t *d, int node, bool typed)
{
    int first = -1;
    for (int n = node; n < node_at(node)->end; n++) {
        if (!node_at(n)->is_leaf)
            continue;
        if (!shown(d, n, typed))
            return -1;
        if (first < 0)
            first = n;
        else if (d->was[n] != d->was[first] || d->now[n] != d->now[first])
            return -1;
    }
    return first;
}

static void put_change(diff_t *d, const flow_t *f, const char *path, int was, int now)
{
    const char *feed = f->feed ? "feed " : "";
    if (was == CV_GRANT_NONE)
        change(d, "%s%s %s -> %s: + %s (%s)", feed, f->label, f->from, f->to, path,
               cv_grant_name(now));
    else if (now == CV_GRANT_NONE)
        change(d, "%s%s %s -> %s: - %s (was %s)", feed, f->label, f->from, f->to, path,
               cv_grant_name(was));
    else
        change(d, "%s%s %s -> %s: ~ %s (%s -> %s)", feed, f->label, f->from, f->to, path,
               cv_grant_name(was), cv_grant_name(now));
}

/*  Pre-order walk: a node that changed uniformly is one line and its
 *  subtree is skipped; otherwise look at its children. The envelope always
 *  travels, so it is never listed. */
static void put_fields(diff_t *d, const flow_t *f, bool typed)
{
    for (int i = 0; i < d->size;) {
        const cv_schema_node_t *node = node_at(i);
        int leaf = node->envelope ? -1 : uniform_change(d, i, typed);
        if (leaf < 0) {
            i++;
            continue;
        }
        put_change(d, f, node->path, d->was[leaf], d->now[leaf]);
        i = node->end;
    }
}

/*  The flow of the agency's type, when the agency has one type in both. */
static bool type_flow(const diff_t *d, const flow_t *f, flow_t *by_type)
{
    const cv_agency_t *a = agency_named(d->before, f->from);
    const cv_agency_t *b = agency_named(d->after, f->from);
    if (!a || !b || strcmp(a->type, b->type) != 0)
        return false;
    *by_type = *f;
    by_type->from = a->type;
    by_type->from_agency = false;
    return true;
}

static void diff_flow(diff_t *d, const flow_t *f)
{
    flow_grants(d, d->before, f, d->was);
    flow_grants(d, d->after, f, d->now);
    if (memcmp(d->was, d->now, (size_t)d->size) == 0)
        return;
    flow_t by_type;
    bool typed = f->from_agency && type_flow(d, f, &by_type);
    if (typed) {
        flow_grants(d, d->before, &by_type, d->type_was);
        flow_grants(d, d->after, &by_type, d->type_now);
    }
    put_fields(d, f, typed);
}

static void diff_label(diff_t *d, const char *label, bool feed)
{
    int origins = d->types.count + d->named.count;
    for (int o = 0; o < origins; o++) {
        bool named = o >= d->types.count;
        flow_t f = {label, feed, named ? d->named.names[o - d->types.count] : d->types.names[o],
                    named, NULL};
        for (int r = 0; r < d->recipients.count; r++) {
            f.to = d->recipients.names[r];
            diff_flow(d, &f);
        }
    }
}

/* ------------------------------------------------------------------------ */

/*  The names flows range over: both policies' categories, feeds, agency
 *  types, agencies named as originators, and recipients. */
static void collect_names(diff_t *d, const cv_policy_t *p)
{
    for (int c = 0; c < p->n_categories; c++)
        names_add(&d->categories, p->categories[c]);
    for (int t = 0; t < p->n_types; t++)
        names_add(&d->types, p->types[t]);
    for (int a = 0; a < p->n_agencies; a++)
        names_add(&d->recipients, p->agencies[a].pub.id);
    for (int i = 0; i < p->n_entries; i++) {
        const cv_entry_t *e = &p->entries[i];
        if (e->screening)
            names_add(&d->feeds, e->feed);
        for (int a = 0; e->from.agencies && a < p->n_agencies; a++)
            if (e->from.agencies[a])
                names_add(&d->named, p->agencies[a].pub.id);
    }
    for (int r = 0; r < p->n_restrictions; r++)
        for (int a = 0; p->restrictions[r].from.agencies && a < p->n_agencies; a++)
            if (p->restrictions[r].from.agencies[a])
                names_add(&d->named, p->agencies[a].pub.id);
}

static void diff_flows(diff_t *d)
{
    for (int c = 0; c < d->categories.count; c++)
        diff_label(d, d->categories.names[c], false);
    for (int i = 0; i < d->feeds.count; i++)
        diff_label(d, d->feeds.names[i], true);
}

/*  The sections in the order they are shown; the summary names them. */
static const struct {
    const char *name;
    void (*run)(diff_t *d);
} sections[] = {
    {"protocol", diff_header},
    {"levels", diff_levels},
    {"categories", diff_categories},
    {"handling codes", diff_codes},
    {"retention", diff_retention},
    {"agencies", diff_agencies},
    {"rules", diff_rules},
    {"screening", diff_screening},
    {"restrictions", diff_restrictions},
    {"fields", diff_flows},
};

#define N_SECTIONS (int)(sizeof sections / sizeof *sections)
_Static_assert(sizeof sections / sizeof *sections <=
                   sizeof((diff_t *)0)->counts / sizeof *((diff_t *)0)->counts,
               "a count per section");

/*  "N changes: SECTION COUNT, ...", when anything changed. */
static void put_summary(diff_t *d)
{
    int total = 0;
    for (int i = 0; i < N_SECTIONS; i++)
        total += d->counts[i];
    if (!total)
        return;
    fprintf(d->out, "%d change%s:", total, total == 1 ? "" : "s");
    for (int i = 0, shown = 0; i < N_SECTIONS; i++)
        if (d->counts[i])
            fprintf(d->out, "%s %s %d", shown++ ? "," : "", sections[i].name, d->counts[i]);
    fputc('\n', d->out);
}

static void diff_free(diff_t *d)
{
    free(d->was);
    free(d->categories.names);
    free(d->feeds.names);
    free(d->types.names);
    free(d->named.names);
    free(d->recipients.names);
}

char *cv_policy_diff(const cv_policy_t *old_policy, const cv_policy_t *new_policy)
{
    char *text = NULL;
    size_t length = 0;
    diff_t d = {.before = old_policy, .after = new_policy};
    d.out = open_memstream(&text, &length);
    if (!d.out)
        return NULL;
    d.size = cv_schema_size(cv_schema_report());
    d.was = calloc(4, (size_t)d.size);
    if (!d.was)
        abort();
    d.now = d.was + d.size;
    d.type_was = d.now + d.size;
    d.type_now = d.type_was + d.size;
    collect_names(&d, old_policy);
    collect_names(&d, new_policy);

    for (d.section = 0; d.section < N_SECTIONS; d.section++)
        sections[d.section].run(&d);
    put_summary(&d);
    diff_free(&d);
    if (fclose(d.out) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
