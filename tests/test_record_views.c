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
        cv_record_recipient(rig->record, agency, rig->decision);
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

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(views_grow_with_the_reports_fields, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
