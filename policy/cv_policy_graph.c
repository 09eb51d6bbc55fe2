/*  cv_policy_graph.c: the Graphviz DOT picture of who may receive what.
 *
 *  One cluster per organisation holds its agencies. A solid edge A -> B
 *  means some rule could release a report of A's to B; its label lists the
 *  categories that may flow and the highest level that may. A dashed edge
 *  is a screening feed. Everything is written in policy order, so one
 *  policy always gives the same text and two versions can be diffed.
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

/*  One edge for all the rules from a to b: the union of their categories,
 *  capped at the highest max_level among them and at b's clearance. */
static void put_rule_edge(FILE *out, const cv_policy_t *p, int a, int b)
{
    uint64_t categories = 0;
    int level = 0;
    for (int e = 0; e < p->n_rules; e++)
        if (entry_reaches(p, &p->entries[e], a, b)) {
            categories |= p->entries[e].categories;
            if (p->entries[e].max_level > level)
                level = p->entries[e].max_level;
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

/*  True when a screening entry before e already drew e's feed from a to b. */
static bool feed_drawn(const cv_policy_t *p, int e, int a, int b)
{
    for (int f = p->n_rules; f < e; f++)
        if (strcmp(p->entries[f].feed, p->entries[e].feed) == 0 &&
            entry_reaches(p, &p->entries[f], a, b))
            return true;
    return false;
}

static void put_feed_edges(FILE *out, const cv_policy_t *p, int a, int b)
{
    for (int e = p->n_rules; e < p->n_entries; e++) {
        if (!entry_reaches(p, &p->entries[e], a, b) || feed_drawn(p, e, a, b))
            continue;
        put_edge_start(out, p, a, b);
        fputs("feed ", out);
        put_escaped(out, p->entries[e].feed);
        fputs("\", style=dashed];\n", out);
    }
}

static void put_edges(FILE *out, const cv_policy_t *p)
{
    for (int a = 0; a < p->n_agencies; a++)
        for (int b = 0; b < p->n_agencies; b++)
            if (a != b && some_code_allows(p, a, b)) {
                put_rule_edge(out, p, a, b);
                put_feed_edges(out, p, a, b);
            }
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
