/*  cv_policy_diff.c: what a reviewer must approve between two versions of
 *  a policy, one line per change, in this order:
 *
 *    agencies removed or changed (old order), then added (new order);
 *    rules and screening entries whose max_level or same_area changed;
 *    per flow (category or "feed NAME", originator, recipient) the fields
 *    gained (+), lost (-) or masked differently (~), in schema order.
 *
 *  A flow's fields are what its matching entries grant to the most
 *  permissive report it admits: the lowest level, no field markings,
 *  same_area holding, a handling code allowing the recipient. What those
 *  assumptions hide is what the agency and entry lines show. Names come in
 *  the old policy's order followed by what the new one adds, so the output
 *  is deterministic.
 */
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
} diff_t;

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

static const cv_entry_t *entry_named(const cv_policy_t *p, const char *name)
{
    for (int i = 0; i < p->n_entries; i++)
        if (strcmp(p->entries[i].name, name) == 0)
            return &p->entries[i];
    return NULL;
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

static void put_areas(FILE *out, const cv_agency_t *agency)
{
    for (int i = 0; i < agency->n_areas; i++)
        fprintf(out, "%s%s", i ? ", " : "", agency->areas[i]);
}

static void diff_agency(diff_t *d, const cv_agency_t *a, const cv_agency_t *b)
{
    const char *was = d->before->levels[a->clearance], *now = d->after->levels[b->clearance];
    if (strcmp(a->organisation, b->organisation) != 0)
        fprintf(d->out, "~ agency %s: organisation %s -> %s\n", a->id, a->organisation,
                b->organisation);
    if (strcmp(a->type, b->type) != 0)
        fprintf(d->out, "~ agency %s: type %s -> %s\n", a->id, a->type, b->type);
    if (strcmp(was, now) != 0)
        fprintf(d->out, "~ agency %s: clearance %s -> %s\n", a->id, was, now);
    if (!same_areas(a, b)) {
        fprintf(d->out, "~ agency %s: areas ", a->id);
        put_areas(d->out, a);
        fputs(" -> ", d->out);
        put_areas(d->out, b);
        fputc('\n', d->out);
    }
    if (memcmp(a->key, b->key, CV_KEY_BYTES) != 0 || a->has_next_key != b->has_next_key ||
        (a->has_next_key && memcmp(a->next_key, b->next_key, CV_KEY_BYTES) != 0))
        fprintf(d->out, "~ agency %s: key changed\n", a->id);
    if (a->admin != b->admin)
        fprintf(d->out, "~ agency %s: admin %s\n", a->id, b->admin ? "granted" : "revoked");
}

static void diff_agencies(diff_t *d)
{
    for (int i = 0; i < d->before->n_agencies; i++) {
        const cv_agency_t *a = &d->before->agencies[i].pub;
        const cv_agency_t *b = agency_named(d->after, a->id);
        if (b)
            diff_agency(d, a, b);
        else
            fprintf(d->out, "- agency %s\n", a->id);
    }
    for (int i = 0; i < d->after->n_agencies; i++) {
        const cv_agency_t *b = &d->after->agencies[i].pub;
        if (!agency_named(d->before, b->id))
            fprintf(d->out, "+ agency %s (%s, %s)\n", b->id, b->type,
                    d->after->levels[b->clearance]);
    }
}

/*  What the flow lines cannot show, as they assume the lowest level and
 *  a report in the recipient's area. */
static void diff_entries(diff_t *d)
{
    for (int i = 0; i < d->before->n_entries; i++) {
        const cv_entry_t *e = &d->before->entries[i];
        const cv_entry_t *f = entry_named(d->after, e->name);
        if (!f)
            continue;
        const char *kind = e->screening ? "screening" : "rule";
        const char *was = d->before->levels[e->max_level], *now = d->after->levels[f->max_level];
        if (strcmp(was, now) != 0)
            fprintf(d->out, "~ %s %s: max_level %s -> %s\n", kind, e->name, was, now);
        if (e->same_area != f->same_area)
            fprintf(d->out, "~ %s %s: same_area %s -> %s\n", kind, e->name,
                    e->same_area ? "true" : "false", f->same_area ? "true" : "false");
    }
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

/*  A type stands for any agency of it: entries open to every originator or
 *  listing the type. An agency id also matches entries naming it. */
static bool covers_from(const cv_policy_t *p, const cv_entry_t *e, const flow_t *f)
{
    if (f->from_agency) {
        int a = cv_policy_agency_find(p, f->from);
        return a >= 0 && cv_agency_set_has(&e->from, &p->agencies[a], a);
    }
    int type = cv_policy_type_find(p, f->from);
    return e->from.any || (type >= 0 && (e->from.types >> type & 1));
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
        if (!covers_label(p, e, f) || !covers_from(p, e, f) ||
            !cv_agency_set_has(&e->to, &p->agencies[to], to))
            continue;
        for (int n = 0; n < d->size; n++)
            if (e->grants[n] > grants[n])
                grants[n] = e->grants[n];
    }
    /* deny and no grant both withhold (cv_grant_name calls both so): compare
     * what the recipient would see */
    for (int n = 0; n < d->size; n++)
        if (grants[n] == CV_GRANT_DENY)
            grants[n] = CV_GRANT_NONE;
}

/* ------------------------------------------------------------------------ */
/*  Field lines.                                                            */

static const cv_schema_node_t *node_at(int index)
{
    return cv_schema_node(cv_schema_report(), index);
}

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

static void put_change(FILE *out, const flow_t *f, const char *path, int was, int now)
{
    fprintf(out, "%s%s %s -> %s: ", f->feed ? "feed " : "", f->label, f->from, f->to);
    if (was == CV_GRANT_NONE)
        fprintf(out, "+ %s (%s)\n", path, cv_grant_name(now));
    else if (now == CV_GRANT_NONE)
        fprintf(out, "- %s (was %s)\n", path, cv_grant_name(was));
    else
        fprintf(out, "~ %s (%s -> %s)\n", path, cv_grant_name(was), cv_grant_name(now));
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
        put_change(d->out, f, node->path, d->was[leaf], d->now[leaf]);
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

    diff_agencies(&d);
    diff_entries(&d);
    for (int c = 0; c < d.categories.count; c++)
        diff_label(&d, d.categories.names[c], false);
    for (int i = 0; i < d.feeds.count; i++)
        diff_label(&d, d.feeds.names[i], true);
    diff_free(&d);
    if (fclose(d.out) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
