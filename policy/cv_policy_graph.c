/*  cv_policy_graph.c: the Graphviz DOT picture of who may receive what.
 *
 *  One cluster per organisation holds its agencies. A solid edge A -> B
 *  means some rule could release a report of A's to B; its label lists the
 *  categories that may flow and the highest level that may. A dashed edge
 *  is a screening feed. Everything is written in policy order, so one
 *  policy always gives the same text and two versions can be diffed.
 *
 *  Restrictions are drawn exactly: whether one applies depends only on the
 *  category, the originator and the recipient, all known here. A category
 *  whose every field the rules grant from A to B is removed by
 *  restrictions is left off the edge, and an edge left with no category
 *  is not drawn; a feed likewise, over the categories its entry may match.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

/*  The inside of a DOT quoted string: '"' and '\' escaped (a backslash
 *  starts DOT escapes such as \n), a newline written as \n. */
static void put_escaped(FILE *out, const char *text)
{
    for (const char *c = text; *c; c++) {
        if (*c == '\n') {
            fputs("\\n", out);
            continue;
        }
        if (*c == '"' || *c == '\\')
            fputc('\\', out);
        fputc(*c, out);
    }
}

/*  A DOT identifier, always quoted: agency ids contain '-'. */
static void put_id(FILE *out, const char *text)
{
    fputc('"', out);
    put_escaped(out, text);
    fputc('"', out);
}

/* ------------------------------------------------------------------------ */
/*  Which entries could carry a report from agency a to agency b.          */

static bool shares_area(const cv_agency_t *a, const cv_agency_t *b)
{
    for (int i = 0; i < a->n_areas; i++)
        for (int j = 0; j < b->n_areas; j++)
            if (strcmp(a->areas[i], b->areas[j]) == 0)
                return true;
    return false;
}

/*  same_area depends on the report's area. Approximation: that area is one
 *  of the originator's areas (an originator reports on where it serves). So
 *  a same_area entry can carry a report from a to b when either serves
 *  every area ("*") or they serve an area in common. */
static bool area_possible(const cv_agency_t *a, const cv_agency_t *b)
{
    return a->all_areas || b->all_areas || shares_area(a, b);
}

/*  Each report carries one handling code, chosen by its originator; the
 *  edge needs some code that could let b receive from a. An
 *  originator_approval code can always be approved. */
static bool some_code_allows(const cv_policy_t *p, int a, int b)
{
    if (p->n_codes == 0)
        return true;
    const cv_agency_internal_t *to = &p->agencies[b];
    for (int i = 0; i < p->n_codes; i++) {
        const cv_handling_code_t *code = &p->codes[i];
        if ((!code->has_to || cv_agency_set_has(&code->to, to, b)) &&
            (!code->same_organisation || p->agencies[a].org_id == to->org_id))
            return true;
    }
    return false;
}

/*  Scratch for working out restrictions on one (a, b) pair. */
typedef struct {
    uint64_t restricted; /* categories some restriction applies to */
    int *applying;       /* room for n_restrictions */
    uint8_t *grants;     /* one row */
} pair_t;

static void pair_start(const cv_policy_t *p, pair_t *pair, int a, int b)
{
    pair->restricted = 0;
    int group = p->agency_hot[b].restriction_group;
    for (int c = 0; c < p->n_categories; c++) {
        const int *bucket = p->restriction_buckets + group * p->n_categories + c;
        for (int i = bucket[0]; i < bucket[1]; i++)
            if (cv_restriction_from(p, p->restriction_pool[i], a))
                pair->restricted |= UINT64_C(1) << c;
    }
}

/*  True when e still delivers something in category c from a to b once
 *  the restrictions that apply there have capped its grants. */
static bool survives(const cv_policy_t *p, pair_t *pair, const cv_entry_t *e, int c, int a, int b)
{
    if (e->notice || !(pair->restricted >> c & 1))
        return true;
    size_t size = (size_t)cv_schema_size(p->schema);
    memcpy(pair->grants, e->grants, size);
    int n = cv_restrictions_for(p, c, a, b, pair->applying);
    for (int i = 0; i < n; i++)
        cv_restriction_cap(p, pair->applying[i], pair->grants, size);
    for (size_t i = 0; i < size; i++) {
        const cv_schema_node_t *node = cv_schema_node(p->schema, (int)i);
        if (node->is_leaf && !node->envelope && pair->grants[i] != CV_GRANT_NONE &&
            pair->grants[i] != CV_GRANT_DENY)
            return true;
    }
    return false;
}

/*  The categories of `categories` in which e still delivers from a to b. */
static uint64_t surviving(const cv_policy_t *p, pair_t *pair, const cv_entry_t *e,
                          uint64_t categories, int a, int b)
{
    uint64_t kept = 0;
    for (uint64_t c = categories; c; c &= c - 1)
        if (survives(p, pair, e, __builtin_ctzll(c), a, b))
            kept |= c & -c;
    return kept;
}

/*  The categories a screening entry may release: its match categories, or
 *  any when indicators or keywords may match a report of any category. */
static uint64_t screen_categories(const cv_policy_t *p, const cv_entry_t *e)
{
    if (e->n_match_indicators || e->n_match_keywords)
        return p->n_categories == 64 ? UINT64_MAX : (UINT64_C(1) << p->n_categories) - 1;
    return e->match_categories;
}

/*  An entry that only denies delivers nothing, so it draws no edge. */
static bool entry_reaches(const cv_policy_t *p, const cv_entry_t *e, int a, int b)
{
    const cv_agency_internal_t *from = &p->agencies[a], *to = &p->agencies[b];
    return (e->notice || e->grants_any) && cv_agency_set_has(&e->from, from, a) &&
           cv_agency_set_has(&e->to, to, b) &&
           (!e->same_area || area_possible(&from->pub, &to->pub));
}

/* ------------------------------------------------------------------------ */
/*  Writing.                                                                */

static void put_header(FILE *out, const cv_policy_t *p)
{
    fputs("digraph ", out);
    put_id(out, p->protocol);
    fputs(" {\n  label=\"", out);
    put_escaped(out, p->protocol);
    fprintf(out, " version %lld\";\n", (long long)p->version);
    fputs("  labelloc=t;\n  rankdir=LR;\n  ranksep=1.2;\n", out);
    fputs("  node [shape=box];\n  edge [fontsize=10];\n", out);
}

static void put_agency(FILE *out, const cv_policy_t *p, const cv_agency_t *agency)
{
    fputs("    ", out);
    put_id(out, agency->id);
    fputs(" [label=\"", out);
    put_escaped(out, agency->id);
    fputs("\\n", out);
    put_escaped(out, agency->type);
    fputs(", ", out);
    put_escaped(out, p->levels[agency->clearance]);
    fputs("\"];\n", out);
}

static void put_clusters(FILE *out, const cv_policy_t *p)
{
    for (int o = 0; o < p->n_organisations; o++) {
        fprintf(out, "  subgraph cluster_%d {\n    label=", o);
        put_id(out, p->organisations[o]);
        fputs(";\n", out);
        for (int a = 0; a < p->n_agencies; a++)
            if (p->agencies[a].org_id == o)
                put_agency(out, p, &p->agencies[a].pub);
        fputs("  }\n", out);
    }
}

/*  Only edges forward in policy order rank the nodes: a two-way flow is
 *  then drawn as two edges with their own labels, not one path with two
 *  labels on top of each other. */
static void put_edge_start(FILE *out, const cv_policy_t *p, int a, int b)
{
    fputs("  ", out);
    put_id(out, p->agencies[a].pub.id);
    fputs(" -> ", out);
    put_id(out, p->agencies[b].pub.id);
    fputs(a < b ? " [label=\"" : " [constraint=false, label=\"", out);
}

/*  Comma-separated in policy order, three to a line: labels stay narrow
 *  enough to read when many categories flow. */
static void put_categories(FILE *out, const cv_policy_t *p, uint64_t categories)
{
    int written = 0;
    for (int c = 0; c < p->n_categories; c++) {
        if (!(categories >> c & 1))
            continue;
        if (written > 0)
            fputs(written % 3 == 0 ? ",\\n" : ", ", out);
        put_escaped(out, p->categories[c]);
        written++;
    }
}

/*  One edge for all the rules from a to b: the union of the categories
 *  restrictions leave them, capped at the highest max_level among them and
 *  at b's clearance. */
static void put_rule_edge(FILE *out, const cv_policy_t *p, pair_t *pair, int a, int b)
{
    uint64_t categories = 0;
    int level = 0;
    for (int e = 0; e < p->n_rules; e++) {
        const cv_entry_t *entry = &p->entries[e];
        uint64_t kept =
            entry_reaches(p, entry, a, b) ? surviving(p, pair, entry, entry->categories, a, b) : 0;
        if (!kept)
            continue;
        categories |= kept;
        if (entry->max_level > level)
            level = entry->max_level;
    }
    if (!categories)
        return;
    if (level > p->agencies[b].pub.clearance)
        level = p->agencies[b].pub.clearance;
    put_edge_start(out, p, a, b);
    put_categories(out, p, categories);
    fputs("\\n≤ ", out);
    put_escaped(out, p->levels[level]);
    fputs("\"];\n", out);
}

/*  A screening entry that, restrictions applied, may release something
 *  from a to b. */
static bool feed_reaches(const cv_policy_t *p, pair_t *pair, int e, int a, int b)
{
    const cv_entry_t *entry = &p->entries[e];
    return entry_reaches(p, entry, a, b) &&
           surviving(p, pair, entry, screen_categories(p, entry), a, b) != 0;
}

/*  True when a screening entry before e already drew e's feed from a to b. */
static bool feed_drawn(const cv_policy_t *p, pair_t *pair, int e, int a, int b)
{
    for (int f = p->n_rules; f < e; f++)
        if (strcmp(p->entries[f].feed, p->entries[e].feed) == 0 && feed_reaches(p, pair, f, a, b))
            return true;
    return false;
}

static void put_feed_edges(FILE *out, const cv_policy_t *p, pair_t *pair, int a, int b)
{
    for (int e = p->n_rules; e < p->n_entries; e++) {
        if (!feed_reaches(p, pair, e, a, b) || feed_drawn(p, pair, e, a, b))
            continue;
        put_edge_start(out, p, a, b);
        fputs("feed ", out);
        put_escaped(out, p->entries[e].feed);
        fputs("\", style=dashed];\n", out);
    }
}

static void put_edges(FILE *out, const cv_policy_t *p)
{
    pair_t pair = {.applying = calloc((size_t)p->n_restrictions + 1, sizeof *pair.applying),
                   .grants = malloc((size_t)cv_schema_size(p->schema))};
    if (!pair.applying || !pair.grants)
        abort();
    for (int a = 0; a < p->n_agencies; a++)
        for (int b = 0; b < p->n_agencies; b++)
            if (a != b && some_code_allows(p, a, b)) {
                pair_start(p, &pair, a, b);
                put_rule_edge(out, p, &pair, a, b);
                put_feed_edges(out, p, &pair, a, b);
            }
    free(pair.applying);
    free(pair.grants);
}

char *cv_policy_graph(const cv_policy_t *self)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out)
        return NULL;
    put_header(out, self);
    put_clusters(out, self);
    put_edges(out, self);
    fputs("}\n", out);
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
