/*  The accepted leaf's views (broker/cv_record.c), written without a
 *  broker: a real store, audit key and policy, and the engine's own
 *  decisions. Recipients given the same fields share a view, whatever
 *  reports came before: a report holding many more fields than the first
 *  one the record saw once wrote its views past the end of their table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "audit_fixture.h"
#include "cv_record.h"

#define K1 "kY8[f}w2}*bW5UFN>7fbWOR$QBz=n<qa*v:t*tLN"
#define K2 "XSEn)f@J2=]&MH9eu{9=<ITtalLpr[tWw7}B2APp"
#define K3 "CLfC.xK:.*ZR&AbkJ*pG:Ebz/ngx4P>9I!8PrmR>"
#define K4 "6PtBJ>RC})VCt&o)&*ZTVgivQwNGu*WDw*8}u>[j"
#define K5 "8jL!$TBw!lL[FF+[=Rje(UkLrS*]6:LYo64>ZMff"

/*  Four recipients of a police report in Hull, three views: everything
 *  (the CTIO), a safeguarding view (two councils), a summary (a college). */
/* clang-format off */
static const char policy_yaml[] =
    "protocol: record-views-test\n"
    "version: 1\n"
    "levels: [OFFICIAL, OFFICIAL-SENSITIVE, SECRET]\n"
    "agencies:\n"
    "  hull-police: {organisation: humberside-police, type: police, clearance: SECRET, areas: [hull], key: \"" K1 "\"}\n"
    "  hull-ctio: {organisation: humberside-police, type: ctio, clearance: SECRET, areas: [hull], key: \"" K2 "\"}\n"
    "  hull-cc: {organisation: hull-city-council, type: local_authority, clearance: OFFICIAL-SENSITIVE, areas: [hull], key: \"" K3 "\"}\n"
    "  hull-cc-children: {organisation: hull-city-council, type: local_authority, clearance: OFFICIAL-SENSITIVE, areas: [hull], key: \"" K4 "\"}\n"
    "  hull-college: {organisation: hull-college, type: education, clearance: OFFICIAL-SENSITIVE, areas: [hull], key: \"" K5 "\"}\n"
    "rules:\n"
    "  - name: to-ctio\n"
    "    categories: [vulnerable_individual]\n"
    "    from_types: [police]\n"
    "    to_types: [ctio]\n"
    "    fields: {\"*\": share}\n"
    "  - name: safeguarding\n"
    "    categories: [vulnerable_individual]\n"
    "    from_types: [police]\n"
    "    to_types: [local_authority]\n"
    "    fields:\n"
    "      summary: share\n"
    "      subjects.name: share\n"
    "      subjects.date_of_birth: {mask: year}\n"
    "      narrative: share\n"
    "  - name: schools\n"
    "    categories: [vulnerable_individual]\n"
    "    from_types: [police]\n"
    "    to_types: [education]\n"
    "    fields: {summary: share}\n";

#define ENVELOPE                                                                                   \
    "'originator': 'hull-police', 'created': '2026-11-20T09:30:00Z',"                              \
    " 'category': 'vulnerable_individual', 'handling_level': 'OFFICIAL',"                          \
    " 'grading': {'source': 'B', 'intelligence': '2', 'handling_code': '2'},"                      \
    " 'priority': 'ROUTINE', 'area': 'hull'"

/*  Few fields besides the envelope (grading, priority, area, summary). */
static const char small_report[] = "{'id': 'small-1', " ENVELOPE ", 'summary': 'A short one'}";

/*  Many. */
static const char large_report[] =
    "{'id': 'large-1', " ENVELOPE ", 'author': 'PC 4471 Grant',"
    " 'subjects': [{'name': 'Jane Doe', 'date_of_birth': '2009-04-01',"
    "   'address': '1 Example Street, Hull', 'postcode': 'HU3 2AB',"
    "   'identifiers': {'pnc': '09/123456A'},"
    "   'vulnerability_factors': ['isolation', 'online contact']}],"
    " 'location': {'name': 'Albion Library', 'address': 'Albion Street, Hull',"
    "   'postcode': 'HU1 3TF', 'latitude': 53.7443, 'longitude': -0.3326},"
    " 'summary': 'Girl at risk of online grooming',"
    " 'narrative': 'Jane was seen with an older man near the library.',"
    " 'source': {'type': 'patrol', 'reference': 'SR/2026/0441', 'notes': 'A neighbour'},"
    " 'tension': {'level': 3, 'trend': 'rising'}, 'caveats': ['POLICE ONLY']}";
/* clang-format on */

typedef struct {
    char dir[64];
    cv_store_t *store;
    cv_record_t *record;
    cv_policy_t *policy;
    cv_decision_t *decision;
} rig_t;

#define MUST(call)                                                                                 \
    do {                                                                                           \
        if (!(call))                                                                               \
            fail_msg("%s: %s", #call, err.msg);                                                    \
    } while (0)

static int setup(void **state)
{
    rig_t *rig = calloc(1, sizeof *rig);
    snprintf(rig->dir, sizeof rig->dir, "/tmp/cv-test-record-views.XXXXXX");
    assert_non_null(mkdtemp(rig->dir));
    cv_error_t err = {0};
    uint8_t key[32] = {0};
    MUST((rig->store = cv_store_open(rig->dir, CV_SYNC_OFF, &err)));
    MUST((rig->record = cv_record_new(rig->store, rig->dir, &err)));
    MUST((rig->policy =
              cv_policy_load_buffer(policy_yaml, strlen(policy_yaml), "views.yaml", key, &err)));
    rig->decision = cv_decision_new();
    *state = rig;
    return 0;
}

static int teardown(void **state)
{
    rig_t *rig = *state;
    cv_decision_destroy(&rig->decision);
    cv_policy_destroy(&rig->policy);
    cv_record_destroy(&rig->record);
    cv_store_close(&rig->store);
    audit_fixture_remove(rig->dir);
    free(rig);
    return 0;
}

static Caveat__Report *parse_report(const char *single_quoted)
{
    char *json = strdup(single_quoted);
    for (char *c = json; *c; c++)
        if (*c == '\'')
            *c = '"';
    cv_error_t err = {0};
    ProtobufCMessage *msg =
        cv_json_parse(cv_schema_report(), json, strlen(json), "report.json", &err);
    free(json);
    if (!msg)
        fail_msg("%s", err.msg);
    return (Caveat__Report *)msg;
}

/*  The accepted leaf of report, every agency but its originator decided,
 *  as the broker writes it; returned as text (the caller frees it). */
static char *accepted_leaf(rig_t *rig, const char *json)
{
    Caveat__Report *report = parse_report(json);
    cv_error_t err = {0};
    uint8_t stored[CV_DIGEST_BYTES] = {1};
    MUST(cv_store_begin(rig->store, &err));
    cv_record_accepted_begin(rig->record, report, stored, rig->policy);
    for (int i = 0; i < cv_policy_agency_count(rig->policy); i++) {
        const cv_agency_t *agency = cv_policy_agency(rig->policy, i);
        if (strcmp(agency->id, report->originator) == 0)
            continue;
        cv_policy_decide(rig->policy, report, i, NULL, rig->decision);
        cv_record_recipient(rig->record, i, rig->decision);
    }
    MUST(cv_record_accepted_end(rig->record, &err));
    MUST(cv_record_flush(rig->record, false, &err));
    MUST(cv_store_commit(rig->store, &err));
    protobuf_c_message_free_unpacked(&report->base, NULL);

    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(cv_record_db(rig->record),
                                        "SELECT CAST(data AS TEXT) FROM tlog_leaves"
                                        " ORDER BY idx DESC LIMIT 1",
                                        -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    char *leaf = strdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return leaf;
}

static void assert_has(const char *text, const char *what)
{
    if (!strstr(text, what))
        fail_msg("'%s' not in %s", what, text);
}

/*  A leaf's recipient entry for agency names view v. */
static void assert_view(const char *leaf, const char *agency, int v)
{
    char want[128];
    snprintf(want, sizeof want, "\"agency\":\"%s\"", agency);
    const char *at = strstr(leaf, want);
    assert_non_null(at);
    snprintf(want, sizeof want, "\"view\":%d}", v);
    const char *view = strstr(at, "\"view\":");
    assert_non_null(view);
    assert_memory_equal(view, want, strlen(want));
}

static void views_grow_with_the_reports_fields(void **state)
{
    rig_t *rig = *state;
    for (int round = 0; round < 3; round++) {
        char *small = accepted_leaf(rig, small_report);
        /* summary alone of the fields besides the envelope goes to all */
        assert_view(small, "hull-ctio", 0);
        assert_view(small, "hull-cc", 1);
        assert_view(small, "hull-college", 1);
        assert_has(small, "\"views\":[{},{\"withheld\":[0,1,2,3,4]}]");
        free(small);

        char *large = accepted_leaf(rig, large_report);
        assert_view(large, "hull-ctio", 0);
        assert_view(large, "hull-cc", 1);
        assert_view(large, "hull-cc-children", 1);
        assert_view(large, "hull-college", 2);
        assert_has(large, "\"views\":[{},{\"masked\":{\"year\":[");
        assert_has(large, "\"fields\":[");
        free(large);
    }
}

/*  text with every from replaced by to; text is freed. */
static char *replaced(char *text, const char *from, const char *to)
{
    size_t from_len = strlen(from), to_len = strlen(to), n = 0;
    for (const char *at = text; (at = strstr(at, from)); at += from_len)
        n++;
    char *out = malloc(strlen(text) + n * to_len + 1), *end = out;
    const char *rest = text;
    for (const char *at; (at = strstr(rest, from)); rest = at + from_len) {
        memcpy(end, rest, (size_t)(at - rest));
        end += at - rest;
        memcpy(end, to, to_len);
        end += to_len;
    }
    strcpy(end, rest);
    free(text);
    return out;
}

/*  The policy's text with each of edits (from, to) made wherever from is,
 *  and the CTIO and the college swapped when swap: the same agency ids at
 *  other indexes. */
static cv_policy_t *edited_policy(const char *const edits[][2], size_t n_edits, bool swap)
{
    char *text = strdup(policy_yaml);
    for (size_t i = 0; i < n_edits; i++)
        text = replaced(text, edits[i][0], edits[i][1]);
    if (swap) {
        char *ctio = strstr(text, "  hull-ctio:"), *college = strstr(text, "  hull-college:");
        char *ctio_end = strchr(ctio, '\n') + 1, *college_end = strchr(college, '\n') + 1;
        size_t ctio_len = (size_t)(ctio_end - ctio), college_len = (size_t)(college_end - college);
        char *swapped = malloc(strlen(text) + 1);
        size_t at = (size_t)(ctio - text), middle = (size_t)(college - ctio_end);
        memcpy(swapped, text, at);
        memcpy(swapped + at, college, college_len);
        memcpy(swapped + at + college_len, ctio_end, middle);
        memcpy(swapped + at + college_len + middle, ctio, ctio_len);
        strcpy(swapped + at + college_len + middle + ctio_len, college_end);
        free(text);
        text = swapped;
    }
    cv_error_t err = {0};
    uint8_t key[32] = {0};
    cv_policy_t *policy = cv_policy_load_buffer(text, strlen(text), "other.yaml", key, &err);
    if (!policy)
        fail_msg("%s", err.msg);
    free(text);
    return policy;
}

/*  Renamed organisations, another version, two agencies swapped. */
static cv_policy_t *reordered_policy(void)
{
    static const char *const renames[][2] = {{"version: 1", "version: 2"},
                                             {"humberside-police", "police-force-xyzw"},
                                             {"hull-city-council", "city-council-xyzw"}};
    return edited_policy(renames, sizeof renames / sizeof *renames, true);
}

/*  The parts of a leaf the record writes once per policy follow the policy
 *  in force: after a reload each recipient is named as the new policy
 *  names it, whatever index it now has, and back again. */
static void a_new_policy_names_its_own_agencies(void **state)
{
    rig_t *rig = *state;
    cv_policy_t *first = rig->policy, *other = reordered_policy();
    assert_string_not_equal(cv_policy_agency(first, 1)->id, cv_policy_agency(other, 1)->id);
    for (int round = 0; round < 2; round++) {
        rig->policy = first;
        char *leaf = accepted_leaf(rig, small_report);
        assert_has(leaf, "\"version\":1,");
        assert_has(leaf, "{\"agency\":\"hull-ctio\",\"organisation\":\"humberside-police\"");
        assert_has(leaf, "{\"agency\":\"hull-college\",\"organisation\":\"hull-college\"");
        assert_has(leaf, "{\"agency\":\"hull-cc\",\"organisation\":\"hull-city-council\"");
        assert_view(leaf, "hull-ctio", 0);
        free(leaf);

        rig->policy = other;
        leaf = accepted_leaf(rig, small_report);
        char digest[128];
        snprintf(digest, sizeof digest, "\"digest\":\"%s\"}", cv_policy_hash(other));
        assert_has(leaf, "\"version\":2,");
        assert_has(leaf, digest);
        assert_has(leaf, "{\"agency\":\"hull-ctio\",\"organisation\":\"police-force-xyzw\"");
        assert_has(leaf, "{\"agency\":\"hull-college\",\"organisation\":\"hull-college\"");
        assert_has(leaf, "{\"agency\":\"hull-cc\",\"organisation\":\"city-council-xyzw\"");
        free(leaf);
    }
    rig->policy = first;
    cv_policy_destroy(&other);
}

/*  A recipient given everything as it is (the CTIO) and one whose rule
 *  gives exactly the fields the report holds (the college, here) were
 *  given the same view, and share it whichever is decided first. */
static void the_whole_report_is_one_view(void **state)
{
    rig_t *rig = *state;
    static const char *const college_sees_all_of_small[][2] = {
        {"    fields: {summary: share}\n",
         "    fields: {summary: share, grading: share, priority: share, area: share}\n"}};
    cv_policy_t *first = rig->policy;
    for (int swap = 0; swap < 2; swap++) {
        rig->policy = edited_policy(college_sees_all_of_small, 1, swap);
        char *leaf = accepted_leaf(rig, small_report);
        assert_view(leaf, "hull-ctio", 0);
        assert_view(leaf, "hull-college", 0);
        assert_view(leaf, "hull-cc", 1);
        assert_view(leaf, "hull-cc-children", 1);
        assert_has(leaf, "\"views\":[{},{\"withheld\":[0,1,2,3,4]}]");
        free(leaf);
        /* the large report: three views, the CTIO's the whole report, its
         * place in the leaf where the CTIO comes in the policy */
        leaf = accepted_leaf(rig, large_report);
        assert_view(leaf, "hull-ctio", swap ? 2 : 0);
        assert_view(leaf, "hull-college", swap ? 0 : 2);
        free(leaf);
        cv_policy_destroy(&rig->policy);
    }
    rig->policy = first;
}

/*  Recipients under one rule share a view without their outcomes being
 *  taken again only when the rule alone decides what they are given: a
 *  restriction on one of them, a field marked above one's clearance, or a
 *  second rule for one, gives it a view of its own, as its outcomes say. */
static void one_rule_gives_two_views(void **state)
{
    rig_t *rig = *state;
    cv_policy_t *first = rig->policy;
    static const char *const restricted[][2] = {{"rules:\n", "restrictions:\n"
                                                             "  - name: no-names-for-children\n"
                                                             "    to_agencies: [hull-cc-children]\n"
                                                             "    fields: {subjects.name: deny}\n"
                                                             "rules:\n"}};
    rig->policy = edited_policy(restricted, 1, false);
    char *leaf = accepted_leaf(rig, large_report);
    assert_view(leaf, "hull-ctio", 0);
    assert_view(leaf, "hull-cc", 1);
    assert_view(leaf, "hull-cc-children", 2);
    assert_view(leaf, "hull-college", 3);
    free(leaf);
    cv_policy_destroy(&rig->policy);

    static const char *const cleared[][2] = {
        {"hull-cc-children: {organisation: hull-city-council, type: local_authority,"
         " clearance: OFFICIAL-SENSITIVE",
         "hull-cc-children: {organisation: hull-city-council, type: local_authority,"
         " clearance: SECRET"}};
    rig->policy = edited_policy(cleared, 1, false);
    char *marked = strdup(large_report);
    marked = replaced(marked, " 'caveats':",
                      " 'field_markings': [{'path': 'narrative', 'level': 'SECRET'}], 'caveats':");
    for (int round = 0; round < 2; round++) { /* then unmarked: one view for both */
        leaf = accepted_leaf(rig, round ? large_report : marked);
        assert_view(leaf, "hull-cc", 1);
        assert_view(leaf, "hull-cc-children", round ? 1 : 2);
        free(leaf);
    }
    free(marked);
    cv_policy_destroy(&rig->policy);

    static const char *const two_rules[][2] = {
        {"    to_types: [education]\n    fields: {summary: share}\n",
         "    to_types: [education]\n    fields: {summary: share}\n"
         "  - name: children-addresses\n" /* after safeguarding: its second entry */
         "    categories: [vulnerable_individual]\n"
         "    from_types: [police]\n"
         "    to_agencies: [hull-cc-children]\n"
         "    fields: {subjects.address: share}\n"}};
    rig->policy = edited_policy(two_rules, 1, false);
    leaf = accepted_leaf(rig, large_report);
    assert_view(leaf, "hull-cc", 1);
    assert_view(leaf, "hull-cc-children", 2);
    free(leaf);
    cv_policy_destroy(&rig->policy);
    rig->policy = first;
}

/*  The rules named for a recipient are those of its own decision: an
 *  agency given one report under one rule and the next under another has
 *  each leaf name the rule that released that report, and then the first
 *  again. */
static void each_report_names_its_own_rule(void **state)
{
    rig_t *rig = *state;
    cv_policy_t *first = rig->policy;
    static const char *const tension_for_schools[][2] = {
        {"    to_types: [education]\n    fields: {summary: share}\n",
         "    to_types: [education]\n    fields: {summary: share}\n"
         "  - name: schools-tension\n"
         "    categories: [community_tension]\n"
         "    from_types: [police]\n"
         "    to_types: [education]\n"
         "    fields: {summary: share}\n"}};
    rig->policy = edited_policy(tension_for_schools, 1, false);
    char *tension = replaced(strdup(small_report), "vulnerable_individual", "community_tension");
    static const char college[] = "{\"agency\":\"hull-college\",\"organisation\":\"hull-college\","
                                  "\"delivered\":true,\"rules\":[\"%s\"],\"view\":";
    char want[256];
    for (int round = 0; round < 2; round++) {
        char *leaf = accepted_leaf(rig, small_report);
        snprintf(want, sizeof want, college, "schools");
        assert_has(leaf, want);
        free(leaf);
        leaf = accepted_leaf(rig, tension);
        snprintf(want, sizeof want, college, "schools-tension");
        assert_has(leaf, want);
        assert_has(leaf, "{\"agency\":\"hull-ctio\",\"organisation\":\"humberside-police\","
                         "\"delivered\":false,\"rules\":[],\"reasons\":[");
        free(leaf);
    }
    free(tension);
    cv_policy_destroy(&rig->policy);
    rig->policy = first;
}

/*  A recipient under two entries is named with both, and under one of
 *  them alone with that one, in either order (what is written once for an
 *  agency and its one entry is never taken for two); and one given the
 *  report by a screening entry names its feed. */
static void two_rules_and_a_feed_are_named(void **state)
{
    rig_t *rig = *state;
    cv_policy_t *first = rig->policy;
    static const char *const edits[][2] = {
        {"  - name: safeguarding\n    categories: [vulnerable_individual]\n",
         "  - name: safeguarding\n    categories: [vulnerable_individual, community_tension]\n"},
        {"    to_types: [education]\n    fields: {summary: share}\n",
         "    to_types: [education]\n    fields: {summary: share}\n"
         "  - name: children-addresses\n"
         "    categories: [vulnerable_individual]\n"
         "    from_types: [police]\n"
         "    to_agencies: [hull-cc-children]\n"
         "    fields: {subjects.address: share}\n"
         "screening:\n"
         "  - name: tension-screen\n"
         "    feed: ctio\n"
         "    to_types: [ctio]\n"
         "    match: {categories: [community_tension]}\n"
         "    fields: {summary: share}\n"}};
    rig->policy = edited_policy(edits, 2, false);
    char *tension = replaced(strdup(small_report), "vulnerable_individual", "community_tension");
    static const char children[] =
        "{\"agency\":\"hull-cc-children\",\"organisation\":\"hull-city-council\","
        "\"delivered\":true,\"rules\":[%s],\"view\":";
    char want[256];
    for (int round = 0; round < 4; round++) {
        bool both = round % 2 == 0; /* two entries, one, two, one */
        char *leaf = accepted_leaf(rig, both ? large_report : tension);
        snprintf(want, sizeof want, children,
                 both ? "\"safeguarding\",\"children-addresses\"" : "\"safeguarding\"");
        assert_has(leaf, want);
        if (!both)
            assert_has(leaf, "{\"agency\":\"hull-ctio\",\"organisation\":\"humberside-police\","
                             "\"delivered\":true,\"feed\":\"ctio\",\"rules\":[\"tension-screen\"],"
                             "\"view\":");
        free(leaf);
    }
    free(tension);
    cv_policy_destroy(&rig->policy);
    rig->policy = first;
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(views_grow_with_the_reports_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(a_new_policy_names_its_own_agencies, setup, teardown),
        cmocka_unit_test_setup_teardown(the_whole_report_is_one_view, setup, teardown),
        cmocka_unit_test_setup_teardown(one_rule_gives_two_views, setup, teardown),
        cmocka_unit_test_setup_teardown(each_report_names_its_own_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(two_rules_and_a_feed_are_named, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
