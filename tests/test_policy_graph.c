/*  test_policy_graph.c: the Graphviz DOT of who may receive what
 *  (policy/cv_policy_graph.c).
 *
 *  The main policy's whole graph is compared: the text is what a reviewer
 *  reads and renders, and it must be the same for the same policy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_policy.h"
#include "cv_proto.h"
#include "policy_internal.h" /* the policy's categories, areas and codes, to generate reports */

/*  Distinct, valid Z85 public keys. */
#define KEY(c) "\"000000000000000000000000000000000000000" c "\""

#define HEADER                                                                                     \
    "protocol: humber-prevent\n"                                                                   \
    "version: 7\n"                                                                                 \
    "levels: [OFFICIAL, OFFICIAL-SENSITIVE, SECRET]\n"

#define AGENCIES                                                                                   \
    "agencies:\n"                                                                                  \
    "  hum-bcu-hull: {organisation: humberside-police, type: police, clearance: SECRET,\n"         \
    "                 areas: [hull], key: " KEY(                                                   \
        "1") "}\n"                                                                                 \
             "  hum-ctio-hull: {organisation: humberside-police, type: ctio, clearance: SECRET,\n" \
             "                  areas: [hull], key: " KEY(                                         \
                 "2") "}\n"                                                                        \
                      "  hull-cc: {organisation: hull-city-council, type: local_authority,\n"      \
                      "            clearance: OFFICIAL-SENSITIVE, areas: [hull], key: " KEY(       \
                          "3") "}\n"                                                               \
                               "  york-cc: {organisation: city-of-york-council, type: "            \
                               "local_authority,\n"                                                \
                               "            clearance: OFFICIAL-SENSITIVE, areas: [york], "        \
                               "key: " KEY("4") "}\n"                                              \
                                                "  hull-college: {organisation: hull-college, "    \
                                                "type: education, clearance: OFFICIAL,\n"          \
                                                "                 areas: [hull], key: " KEY(       \
                                                    "5") "}\n"

/*  Categories listed out of policy order on purpose: labels follow the
 *  policy's order. Two screening entries share one feed: one edge. */
static const char policy_text[] =
    HEADER AGENCIES "rules:\n"
                    "  - name: safeguarding-referral\n"
                    "    categories: [radicalisation_concern, vulnerable_individual]\n"
                    "    from_types: [police]\n"
                    "    to_types: [local_authority]\n"
                    "    same_area: true\n"
                    "    max_level: OFFICIAL-SENSITIVE\n"
                    "    fields: {summary: share, subjects.date_of_birth: {mask: year}}\n"
                    "  - name: partner-referral\n"
                    "    categories: [vulnerable_individual]\n"
                    "    from_types: [local_authority, education]\n"
                    "    to_types: [police]\n"
                    "    same_area: true\n"
                    "    fields: {\"*\": share, source: deny}\n"
                    "  - name: tension-to-schools\n"
                    "    categories: [community_tension]\n"
                    "    from_types: [police]\n"
                    "    to_types: [education]\n"
                    "    max_level: SECRET\n"
                    "    fields: {summary: share, tension: share}\n"
                    "screening:\n"
                    "  - name: prevent-screen\n"
                    "    feed: ctio\n"
                    "    to_types: [ctio]\n"
                    "    same_area: true\n"
                    "    match: {categories: [radicalisation_concern]}\n"
                    "    fields: {\"*\": share}\n"
                    "  - name: prevent-keywords\n"
                    "    feed: ctio\n"
                    "    to_types: [ctio]\n"
                    "    match: {keywords: [extremis]}\n"
                    "    fields: {summary: share}\n";

static const char expected_graph[] =
    "digraph \"humber-prevent\" {\n"
    "  label=\"humber-prevent version 7\";\n"
    "  labelloc=t;\n"
    "  rankdir=LR;\n"
    "  ranksep=1.2;\n"
    "  node [shape=box];\n"
    "  edge [fontsize=10];\n"
    "  subgraph cluster_0 {\n"
    "    label=\"humberside-police\";\n"
    "    \"hum-bcu-hull\" [label=\"hum-bcu-hull\\npolice, SECRET\"];\n"
    "    \"hum-ctio-hull\" [label=\"hum-ctio-hull\\nctio, SECRET\"];\n"
    "  }\n"
    "  subgraph cluster_1 {\n"
    "    label=\"hull-city-council\";\n"
    "    \"hull-cc\" [label=\"hull-cc\\nlocal_authority, OFFICIAL-SENSITIVE\"];\n"
    "  }\n"
    "  subgraph cluster_2 {\n"
    "    label=\"city-of-york-council\";\n"
    "    \"york-cc\" [label=\"york-cc\\nlocal_authority, OFFICIAL-SENSITIVE\"];\n"
    "  }\n"
    "  subgraph cluster_3 {\n"
    "    label=\"hull-college\";\n"
    "    \"hull-college\" [label=\"hull-college\\neducation, OFFICIAL\"];\n"
    "  }\n"
    "  \"hum-bcu-hull\" -> \"hum-ctio-hull\" [label=\"feed ctio\", style=dashed];\n"
    "  \"hum-bcu-hull\" -> \"hull-cc\" [label=\"vulnerable_individual, "
    "radicalisation_concern\\n≤ OFFICIAL-SENSITIVE\"];\n"
    "  \"hum-bcu-hull\" -> \"hull-college\" [label=\"community_tension\\n≤ OFFICIAL\"];\n"
    "  \"hull-cc\" -> \"hum-bcu-hull\" [constraint=false, label=\"vulnerable_individual\\n≤ "
    "SECRET\"];\n"
    "  \"hull-cc\" -> \"hum-ctio-hull\" [constraint=false, label=\"feed ctio\", style=dashed];\n"
    "  \"york-cc\" -> \"hum-ctio-hull\" [constraint=false, label=\"feed ctio\", style=dashed];\n"
    "  \"hull-college\" -> \"hum-bcu-hull\" [constraint=false, label=\"vulnerable_individual\\n≤ "
    "SECRET\"];\n"
    "  \"hull-college\" -> \"hum-ctio-hull\" [constraint=false, label=\"feed ctio\", "
    "style=dashed];\n"
    "}\n";

static cv_policy_t *load(const char *text)
{
    cv_error_t err = {0};
    cv_policy_t *policy = cv_policy_load_buffer(text, strlen(text), "test.yaml", NULL, &err);
    if (!policy)
        fail_msg("policy did not load: %s", err.msg);
    return policy;
}

/*  The graph of a policy, freed at the end of the test by the caller. */
static char *graph_of(const char *text)
{
    cv_policy_t *policy = load(text);
    char *graph = cv_policy_graph(policy);
    cv_policy_destroy(&policy);
    assert_non_null(graph);
    return graph;
}

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *at = strstr(text, needle); at; at = strstr(at + 1, needle))
        n++;
    return n;
}

static void test_whole_graph(void **state)
{
    (void)state;
    char *graph = graph_of(policy_text);
    assert_string_equal(graph, expected_graph);
    free(graph);
}

static void test_one_cluster_per_organisation(void **state)
{
    (void)state;
    char *graph = graph_of(policy_text);
    assert_int_equal(count(graph, "subgraph cluster_"), 4);
    assert_non_null(strstr(graph, "  subgraph cluster_0 {\n    label=\"humberside-police\";\n"
                                  "    \"hum-bcu-hull\" "));
    free(graph);
}

/*  york-cc and hull police share no area; every rule between them is
 *  same_area, so no edge either way. The keyword screen has no same_area. */
static void test_same_area_with_disjoint_areas_gives_no_edge(void **state)
{
    (void)state;
    char *graph = graph_of(policy_text);
    assert_null(strstr(graph, "\"hum-bcu-hull\" -> \"york-cc\""));
    assert_null(strstr(graph, "\"york-cc\" -> \"hum-bcu-hull\""));
    assert_non_null(strstr(graph, "\"york-cc\" -> \"hum-ctio-hull\""));
    free(graph);
}

/*  A copy of text with its only occurrence of from replaced by to. */
static char *replace_once(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    assert_non_null(at);
    assert_null(strstr(at + 1, from));
    size_t head = (size_t)(at - text), size = strlen(text) - strlen(from) + strlen(to) + 1;
    char *copy = malloc(size);
    assert_non_null(copy);
    snprintf(copy, size, "%.*s%s%s", (int)head, text, to, at + strlen(from));
    return copy;
}

static bool has_edge_after(const char *from, const char *to, const char *edge)
{
    char *text = replace_once(policy_text, from, to);
    char *graph = graph_of(text);
    bool found = strstr(graph, edge) != NULL;
    free(graph);
    free(text);
    return found;
}

/*  Dropping same_area opens the flow to York; so does York serving "*". */
static void test_same_area_false_or_star_gives_edge(void **state)
{
    (void)state;
    const char *edge = "  \"hum-bcu-hull\" -> \"york-cc\" [label=\"vulnerable_individual, "
                       "radicalisation_concern\\n≤ OFFICIAL-SENSITIVE\"];\n";
    assert_true(has_edge_after("    same_area: true\n    max_level: OFFICIAL-SENSITIVE\n",
                               "    max_level: OFFICIAL-SENSITIVE\n", edge));
    assert_true(has_edge_after("areas: [york]", "areas: [\"*\"]", edge));
    assert_false(has_edge_after("areas: [york]", "areas: [york, beverley]", edge));
}

/*  A rule that only denies delivers nothing (deny never delivers), so it
 *  draws no edge; "fields: {}", an explicit notice, does. */
static void test_a_deny_only_rule_draws_no_edge(void **state)
{
    (void)state;
    const char *edge = "  \"hum-bcu-hull\" -> \"hull-college\"";
    const char *grants = "    fields: {summary: share, tension: share}\n";
    assert_true(has_edge_after(grants, grants, edge));
    assert_false(has_edge_after(grants, "    fields: {summary: deny, tension: deny}\n", edge));
    assert_true(has_edge_after(grants, "    fields: {}\n", edge));
}

static void test_no_edge_without_rule(void **state)
{
    (void)state;
    char *graph = graph_of(policy_text);
    /* the ctio sends nothing; councils and college do not exchange */
    assert_null(strstr(graph, "\"hum-ctio-hull\" ->"));
    assert_null(strstr(graph, "\"hull-cc\" -> \"hull-college\""));
    assert_null(strstr(graph, "\"hull-college\" -> \"hull-cc\""));
    assert_int_equal(count(graph, " -> "), 8);
    assert_int_equal(count(graph, "style=dashed"), 4);
    free(graph);
}

/*  No rules at all: nodes, no edges. */
static void test_no_rules_no_edges(void **state)
{
    (void)state;
    char *graph = graph_of(HEADER AGENCIES);
    assert_int_equal(count(graph, " -> "), 0);
    assert_int_equal(count(graph, " [label="), 5);
    free(graph);
}

/*  Every handling code keeps reports in the organisation: the only edge
 *  left is inside humberside-police. */
static void test_handling_codes_limit_edges(void **state)
{
    (void)state;
    char *graph = graph_of(HEADER "handling_codes:\n"
                                  "  \"4\": {same_organisation: true}\n" AGENCIES "rules:\n"
                                  "  - name: everything\n"
                                  "    categories: [feedback]\n"
                                  "    to_types: [police, ctio, local_authority]\n"
                                  "    fields: {summary: share}\n");
    assert_int_equal(count(graph, " -> "), 2);
    assert_non_null(strstr(graph, "\"hum-bcu-hull\" -> \"hum-ctio-hull\" [label=\"feedback"));
    assert_non_null(
        strstr(graph, "\"hum-ctio-hull\" -> \"hum-bcu-hull\" [constraint=false, label=\"feedback"));
    free(graph);
}

/*  The graph of policy_text with restrictions appended. */
static char *graph_with(const char *restrictions)
{
    size_t size = strlen(policy_text) + strlen(restrictions) + 1;
    char *text = malloc(size);
    assert_non_null(text);
    snprintf(text, size, "%s%s", policy_text, restrictions);
    char *graph = graph_of(text);
    free(text);
    return graph;
}

/*  Restrictions depend only on category, originator and recipient, so the
 *  graph draws them exactly: an edge whose every granted field they remove
 *  goes, one that keeps a field stays, and an exempted recipient keeps its
 *  edge. */
static void test_restrictions_remove_edges(void **state)
{
    (void)state;
    const char *college = "  \"hum-bcu-hull\" -> \"hull-college\"";
    char *graph = graph_with("restrictions:\n"
                             "  - name: nothing-for-colleges\n"
                             "    from_types: [police]\n"
                             "    to_types: [education]\n"
                             "    fields: {summary: deny, tension: deny}\n");
    assert_null(strstr(graph, college));
    assert_int_equal(count(graph, " -> "), 7);
    free(graph);
    graph = graph_with("restrictions:\n"
                       "  - name: no-summary-for-colleges\n"
                       "    to_types: [education]\n"
                       "    fields: {summary: deny}\n"); /* tension still goes */
    assert_non_null(strstr(graph, college));
    free(graph);
    graph = graph_with("restrictions:\n"
                       "  - name: nothing-for-education\n"
                       "    to_types: [education]\n"
                       "    except_to_agencies: [hull-college]\n"
                       "    fields: {\"*\": deny}\n");
    assert_string_equal(graph, expected_graph);
    free(graph);
    /* a notice is sent whatever restrictions say: its edge stays */
    graph = graph_of(HEADER AGENCIES "rules:\n"
                                     "  - name: tension-notice\n"
                                     "    categories: [community_tension]\n"
                                     "    from_types: [police]\n"
                                     "    to_types: [education]\n"
                                     "    fields: {}\n"
                                     "restrictions:\n"
                                     "  - name: nothing-for-anyone\n"
                                     "    fields: {\"*\": deny}\n");
    assert_non_null(strstr(graph, college));
    assert_int_equal(count(graph, " -> "), 1);
    free(graph);
}

/*  One category removed leaves the others on the edge's label. */
static void test_restrictions_remove_categories(void **state)
{
    (void)state;
    char *graph = graph_with("restrictions:\n"
                             "  - name: concerns-stay-with-police\n"
                             "    categories: [radicalisation_concern]\n"
                             "    to_types: [local_authority]\n"
                             "    fields: {summary: deny, subjects: deny}\n");
    assert_non_null(strstr(graph, "  \"hum-bcu-hull\" -> \"hull-cc\" [label=\"vulnerable_individual"
                                  "\\n≤ OFFICIAL-SENSITIVE\"];\n"));
    free(graph);
}

/*  A feed goes when restrictions remove everything its entries may carry
 *  in every category they may match; the keyword screen may match any. */
static void test_restrictions_remove_feeds(void **state)
{
    (void)state;
    char *graph = graph_with("restrictions:\n"
                             "  - name: councils-feed-nothing\n"
                             "    from_types: [local_authority]\n"
                             "    to_types: [ctio]\n"
                             "    fields: {\"*\": deny}\n");
    assert_null(strstr(graph, "\"hull-cc\" -> \"hum-ctio-hull\""));
    assert_null(strstr(graph, "\"york-cc\" -> \"hum-ctio-hull\""));
    assert_non_null(strstr(graph, "\"hull-college\" -> \"hum-ctio-hull\""));
    free(graph);
    /* the keyword screen may match a feedback report: not every category is
     * restricted, so the feed stays */
    graph = graph_with("restrictions:\n"
                       "  - name: councils-feed-no-concerns\n"
                       "    categories: [radicalisation_concern, vulnerable_individual]\n"
                       "    from_types: [local_authority]\n"
                       "    fields: {\"*\": deny}\n");
    assert_non_null(strstr(graph, "\"york-cc\" -> \"hum-ctio-hull\""));
    assert_null(strstr(graph, "\"hull-cc\" -> \"hum-bcu-hull\""));
    free(graph);
}

/*  Quotes and backslashes in names cannot break out of a DOT string. */
static void test_names_are_escaped(void **state)
{
    (void)state;
    char *graph =
        graph_of(HEADER "agencies:\n"
                        "  'odd\"id': {organisation: 'back\\slash \"org\"', type: police,\n"
                        "              clearance: OFFICIAL, areas: [hull], key: " KEY("1") "}\n");
    assert_non_null(strstr(graph, "    label=\"back\\\\slash \\\"org\\\"\";\n"));
    assert_non_null(strstr(graph, "    \"odd\\\"id\" [label=\"odd\\\"id\\npolice, OFFICIAL\"];\n"));
    free(graph);
}

/* ------------------------------------------------------------------------ */
/*  The picture and the engine agree: over every report the example policy
 *  accepts (each originator, category, area, level, handling code, with
 *  and without screening indicators, as the broker validates them), every
 *  delivery is an edge
 *  of the graph with its category and a level within the edge's, or a
 *  feed edge; and every category of every edge, and every feed edge, has a
 *  delivery behind it.                                                     */

typedef struct {
    char from[64], to[64];
    char label[1024];    /* categories, ", " and "\n" between, then "\n<= LEVEL"; or "feed NAME" */
    bool witnessed[64];  /* per category index: a delivery behind it */
    bool feed_witnessed; /* a feed edge: a delivery through the feed */
    int top_level;       /* the highest level delivered on it, or -1 */
} edge_t;

static int parse_edges(const char *graph, edge_t *edges, int max)
{
    int n = 0;
    for (const char *line = graph; line && *line && n < max; line = strchr(line, '\n')) {
        line += *line == '\n';
        edge_t *e = &edges[n];
        memset(e, 0, sizeof *e);
        e->top_level = -1;
        const char *end = strchr(line, '\n');
        const char *label = strstr(line, "label=\"");
        if (sscanf(line, " \"%63[^\"]\" -> \"%63[^\"]\"", e->from, e->to) == 2 && label &&
            (!end || label < end) && sscanf(label, "label=\"%1023[^\"]\"", e->label) == 1)
            n++;
    }
    return n;
}

static edge_t *edge_of(edge_t *edges, int n, const char *from, const char *to, bool feed)
{
    for (int i = 0; i < n; i++)
        if (strcmp(edges[i].from, from) == 0 && strcmp(edges[i].to, to) == 0 &&
            (strncmp(edges[i].label, "feed ", 5) == 0) == feed)
            return &edges[i];
    return NULL;
}

/*  Whether the label lists category, as a whole word between separators. */
static bool label_has(const char *label, const char *category)
{
    size_t len = strlen(category);
    for (const char *at = strstr(label, category); at; at = strstr(at + 1, category)) {
        bool starts = at == label || at[-1] == ' ' || at[-1] == 'n';
        bool ends = at[len] == ',' || at[len] == '\\' || at[len] == '\0';
        if (starts && ends)
            return true;
    }
    return false;
}

/*  The level after the label's "<= ", as an index, or -1. */
static int label_level(const cv_policy_t *p, const char *label)
{
    const char *at = strstr(label, "\xe2\x89\xa4 ");
    return at ? cv_policy_level_find(p, at + 4) : -1;
}

static Caveat__Report *generated_report(const char *originator, const char *category,
                                        const char *area, const char *level, const char *code,
                                        bool screened)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"id\": \"g\", \"originator\": \"%s\", \"category\": \"%s\", \"area\": \"%s\","
             " \"handling_level\": \"%s\", \"grading\": {\"handling_code\": \"%s\"},"
             " \"summary\": \"%s\", \"narrative\": \"seen\"%s}",
             originator, category, area, level, code, screened ? "signs of radicalisation" : "seen",
             screened ? ", \"indicators\": [\"extremist_literature\", \"online_radicalisation\","
                        " \"travel_to_conflict\"]"
                      : "");
    cv_error_t err = {0};
    Caveat__Report *report =
        (Caveat__Report *)cv_json_parse(cv_schema_report(), json, strlen(json), "report", &err);
    if (!report)
        fail_msg("%s", err.msg);
    return report;
}

/*  Whether a rule, not only a screening entry, released the delivery. */
static bool rule_matched(const cv_policy_t *p, const cv_decision_t *d)
{
    for (int i = 0; i < cv_decision_entry_count(d); i++)
        for (int e = 0; e < p->n_entries; e++)
            if (!p->entries[e].screening &&
                strcmp(p->entries[e].name, cv_decision_entry_name(d, i)) == 0)
                return true;
    return false;
}

/*  Every delivery of one report is in the graph; marks what it witnesses. */
static int check_deliveries(const cv_policy_t *p, const Caveat__Report *report, int category,
                            edge_t *edges, int n_edges, cv_decision_t *d)
{
    int delivered = 0;
    for (int to = 0; to < cv_policy_agency_count(p); to++) {
        if (!cv_policy_decide(p, report, to, NULL, d))
            continue;
        delivered++;
        const char *recipient = cv_policy_agency(p, to)->id;
        bool feed = cv_decision_feed(d) != NULL;
        edge_t *e = edge_of(edges, n_edges, report->originator, recipient, feed);
        if (!e)
            fail_msg("%s -> %s (%s, %s%s): delivered, but no such edge", report->originator,
                     recipient, report->category, report->handling_level, feed ? ", feed" : "");
        if (feed) {
            e->feed_witnessed = true;
            /* a rule that matched too goes out on the feed with it: it is
             * drawn as a direct edge, and this delivery is behind it */
            if (!rule_matched(p, d))
                continue;
            e = edge_of(edges, n_edges, report->originator, recipient, false);
            if (!e)
                fail_msg("%s -> %s (%s): a rule released it, but no direct edge",
                         report->originator, recipient, report->category);
        }
        if (!label_has(e->label, report->category) ||
            cv_policy_level_find(p, report->handling_level) > label_level(p, e->label))
            fail_msg("%s -> %s: delivered %s at %s, the edge says '%s'", report->originator,
                     recipient, report->category, report->handling_level, e->label);
        e->witnessed[category] = true;
        int level = cv_policy_level_find(p, report->handling_level);
        if (level > e->top_level)
            e->top_level = level;
    }
    return delivered;
}

static void test_graph_edges_are_the_engines_deliveries(void **state)
{
    (void)state;
    cv_error_t err = {0};
    cv_policy_t *p = cv_policy_load_file(CAVEAT_SOURCE_DIR "/examples/policy.yaml", NULL, &err);
    assert_non_null(p);
    char *graph = cv_policy_graph(p);
    static edge_t edges[1024];
    int n_edges = parse_edges(graph, edges, 1024);
    assert_true(n_edges > 10);
    cv_decision_t *d = cv_decision_new();
    int delivered = 0;
    for (int o = 0; o < cv_policy_agency_count(p); o++) {
        const cv_agency_t *a = cv_policy_agency(p, o);
        for (int c = 0; c < p->n_categories; c++)
            for (int area = 0; area < p->n_area_names; area++)
                for (int level = 0; level < cv_policy_level_count(p); level++)
                    for (int code = 0; code < p->n_codes; code++)
                        for (int screened = 0; screened < 2; screened++) {
                            Caveat__Report *report = generated_report(
                                a->id, p->categories[c], p->area_names[area],
                                cv_policy_level_name(p, level), p->codes[code].code, screened);
                            cv_error_t refused = {0}; /* an area it does not serve, say */
                            if (cv_policy_validate_report(p, report, &refused))
                                delivered += check_deliveries(p, report, c, edges, n_edges, d);
                            caveat__report__free_unpacked(report, NULL);
                        }
    }
    assert_true(delivered > 1000);
    for (int i = 0; i < n_edges; i++) {
        const edge_t *e = &edges[i];
        if (strncmp(e->label, "feed ", 5) == 0) {
            if (!e->feed_witnessed)
                fail_msg("%s -> %s [%s]: no delivery behind it", e->from, e->to, e->label);
            continue;
        }
        if (label_level(p, e->label) != e->top_level)
            fail_msg("%s -> %s: the edge says up to %s, deliveries went up to %s", e->from, e->to,
                     cv_policy_level_name(p, label_level(p, e->label)),
                     e->top_level >= 0 ? cv_policy_level_name(p, e->top_level) : "none");
        for (int c = 0; c < p->n_categories; c++)
            if (label_has(e->label, p->categories[c]) && !e->witnessed[c])
                fail_msg("%s -> %s: %s is on the edge, but no report of it went", e->from, e->to,
                         p->categories[c]);
    }
    cv_decision_destroy(&d);
    free(graph);
    cv_policy_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_deny_only_rule_draws_no_edge),
        cmocka_unit_test(test_whole_graph),
        cmocka_unit_test(test_one_cluster_per_organisation),
        cmocka_unit_test(test_same_area_with_disjoint_areas_gives_no_edge),
        cmocka_unit_test(test_same_area_false_or_star_gives_edge),
        cmocka_unit_test(test_no_edge_without_rule),
        cmocka_unit_test(test_no_rules_no_edges),
        cmocka_unit_test(test_handling_codes_limit_edges),
        cmocka_unit_test(test_names_are_escaped),
        cmocka_unit_test(test_restrictions_remove_edges),
        cmocka_unit_test(test_restrictions_remove_categories),
        cmocka_unit_test(test_restrictions_remove_feeds),
        cmocka_unit_test(test_graph_edges_are_the_engines_deliveries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
