/*  test_policy_decide.c: deciding who gets a report and which fields
 *  (policy/cv_decision.c), rule by rule of the semantics in docs/policy.md:
 *  1 default deny and the envelope, 2 matching, 3 paths, 4 field levels,
 *  5 union and most protective, 6 masks in a view, 7 handling codes,
 *  8 no echo; then screening, reasons, field explanations, and that no
 *  withheld byte reaches the packed view.
 *
 *  Reports are inline JSON written with single quotes (turned into double
 *  quotes before parsing) so that they stay readable in C.
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
#include "policy_internal.h" /* cv_mask_pseudonymise, to check a pseudonym */

/*  CURVE public keys made once with zmq_curve_keypair. */
#define K1 "kY8[f}w2}*bW5UFN>7fbWOR$QBz=n<qa*v:t*tLN"
#define K2 "XSEn)f@J2=]&MH9eu{9=<ITtalLpr[tWw7}B2APp"
#define K3 "CLfC.xK:.*ZR&AbkJ*pG:Ebz/ngx4P>9I!8PrmR>"
#define K4 "6PtBJ>RC})VCt&o)&*ZTVgivQwNGu*WDw*8}u>[j"
#define K5 "8jL!$TBw!lL[FF+[=Rje(UkLrS*]6:LYo64>ZMff"
#define K6 "7$JGsMG*G58V5q!a4dLhG(]3CY]u>M9&E.j86fG3"
#define K7 "TWlGDhq0jy=32+Qxlcx{GAq7Y!>@gQI5vr.13Z-j"
#define K8 "7{+j5qM^I(oC8O/P0yY6.zZ(V[P0xj]sZc{6eYUE"

/*  The policies below are data, one YAML line per source line: clang-format
 *  is off for them. */
/* clang-format off */
#define AGENCY(id, org, type, clearance, areas, key)                                               \
    "  " id ": {organisation: " org ", type: " type ", clearance: " clearance ", areas: " areas   \
    ", key: \"" key "\"}\n"

#define POLICY_HEAD                                                                                \
    "protocol: humber-test\n"                                                                      \
    "version: 1\n"                                                                                 \
    "levels: [OFFICIAL, OFFICIAL-SENSITIVE, SECRET]\n"                                             \
    "agencies:\n"                                                                                  \
    AGENCY("hull-police", "humberside-police", "police", "SECRET", "[hull]", K1)                   \
    AGENCY("hull-ctio", "humberside-police", "ctio", "SECRET", "[hull]", K2)                       \
    AGENCY("ne-ctu", "ne-ctu", "ctu", "SECRET", "[\"*\"]", K3)                                     \
    AGENCY("hull-cc", "hull-city-council", "local_authority", "OFFICIAL-SENSITIVE", "[hull]", K4)  \
    AGENCY("york-cc", "york-council", "local_authority", "OFFICIAL-SENSITIVE", "[york]", K5)       \
    AGENCY("hull-college", "hull-college", "education", "OFFICIAL", "[hull]", K6)                  \
    AGENCY("york-police", "north-yorkshire-police", "police", "SECRET", "[york]", K7)              \
    AGENCY("hull-cc-children", "hull-city-council", "local_authority", "OFFICIAL-SENSITIVE",       \
           "[hull]", K8)

/*  The main policy: the example of docs/policy.md, grown a little. */
static const char main_policy_yaml[] =
    POLICY_HEAD
    "handling_codes:\n"
    "  \"1\": {to_types: [police, ctio, ctu]}\n"
    "  \"2\": {to_types: [police, ctio, ctu, local_authority, education]}\n"
    "  \"4\": {same_organisation: true}\n"
    "  \"5\": {originator_approval: true}\n"
    "  \"6\": {to_agencies: [hull-cc, ne-ctu]}\n"
    "rules:\n"
    "  - name: safeguarding-referral\n"
    "    categories: [vulnerable_individual]\n"
    "    from_types: [police]\n"
    "    to_types: [local_authority]\n"
    "    same_area: true\n"
    "    max_level: OFFICIAL-SENSITIVE\n"
    "    fields:\n"
    "      summary: share\n"
    "      subjects.name: share\n"
    "      subjects.date_of_birth: {mask: year}\n"
    "      subjects.postcode: {mask: postcode_district}\n"
    "      subjects.identifiers: pseudonymise\n"
    "      subjects.vulnerability_factors: share\n"
    "      narrative: share\n"
    "  - name: tension-to-schools\n"
    "    categories: [community_tension]\n"
    "    from_types: [police]\n"
    "    to_types: [education]\n"
    "    same_area: true\n"
    "    fields:\n"
    "      summary: share\n"
    "      area: share\n"
    "      tension: share\n"
    "      location.latitude: {mask: round_1km}\n"
    "      location.longitude: {mask: round_1km}\n"
    "  - name: partner-referral\n"
    "    categories: [vulnerable_individual, radicalisation_concern]\n"
    "    from_types: [local_authority, education]\n"
    "    to_types: [police, ctio]\n"
    "    same_area: true\n"
    "    fields: {\"*\": share}\n"
    "  - name: ctu-everything\n"
    "    categories: [vulnerable_individual, radicalisation_concern, community_tension,\n"
    "                 critical_incident, venue_of_concern]\n"
    "    to_agencies: [ne-ctu]\n"
    "    fields: {\"*\": share, source: deny, source.reference: share}\n"
    "  - name: police-to-police\n"
    "    categories: [critical_incident]\n"
    "    from_types: [police]\n"
    "    to_types: [police]\n"
    "    fields: {\"*\": share}\n"
    "screening:\n"
    "  - name: prevent-screen\n"
    "    feed: ctio\n"
    "    to_types: [ctio]\n"
    "    same_area: true\n"
    "    match:\n"
    "      categories: [community_tension, venue_of_concern, radicalisation_concern]\n"
    "      indicators: [extremist_literature, online_radicalisation]\n"
    "      keywords: [radicalis, EXTREMIS]\n"
    "    fields: {\"*\": share, source.notes: deny}\n";

/*  A referral from Hull police; every text value is distinct so that a
 *  search of packed bytes finds only the field it came from. */
static const char base_report_json[] =
    "{'id': 'rep-1', 'originator': 'hull-police', 'author': 'PC 4471 Grant',"
    " 'created': '2026-11-20T09:30:00Z', 'category': 'vulnerable_individual',"
    " 'handling_level': 'OFFICIAL-SENSITIVE',"
    " 'grading': {'source': 'B', 'intelligence': '2', 'handling_code': '2'},"
    " 'priority': 'ROUTINE', 'area': 'hull',"
    " 'subjects': [{'name': 'Jane Doe', 'date_of_birth': '2009-04-01',"
    "   'address': '1 Example Street, Hull', 'postcode': 'HU3 2AB',"
    "   'identifiers': {'pnc': '09/123456A'},"
    "   'vulnerability_factors': ['isolation', 'online contact']}],"
    " 'location': {'name': 'Albion Library', 'address': 'Albion Street, Hull',"
    "   'postcode': 'HU1 3TF', 'latitude': 53.7443, 'longitude': -0.3326},"
    " 'summary': 'Girl at risk of online grooming',"
    " 'narrative': 'Jane was seen with an older man near the library.',"
    " 'source': {'type': 'patrol', 'reference': 'SR/2026/0441',"
    "   'notes': 'Told by neighbour Mrs Smith'},"
    " 'tension': {'level': 3, 'trend': 'rising'},"
    " 'caveats': ['POLICE ONLY']}";
/* clang-format on */

static cv_policy_t *main_policy;
static cv_decision_t *decision;

/* ------------------------------------------------------------------------ */
/*  Helpers.                                                                */

static cv_policy_t *load_policy(const char *yaml, const uint8_t *key)
{
    cv_error_t err = {0};
    cv_policy_t *policy = cv_policy_load_buffer(yaml, strlen(yaml), "decide.yaml", key, &err);
    if (!policy)
        fail_msg("%s", err.msg);
    return policy;
}

static Caveat__Report *parse_report(const char *single_quoted)
{
    char *json = strdup(single_quoted);
    assert_non_null(json);
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

static Caveat__Report *base_report(void)
{
    return parse_report(base_report_json);
}

static void report_free(Caveat__Report *report)
{
    if (report)
        protobuf_c_message_free_unpacked(&report->base, NULL);
}

/*  Replaces a string field of a parsed report (NULL clears it). */
static void set_text(char **field, const char *value)
{
    free(*field);
    *field = value ? strdup(value) : NULL;
}

static void add_text(size_t *count, char ***list, const char *value)
{
    char **grown = realloc(*list, (*count + 1) * sizeof *grown);
    assert_non_null(grown);
    grown[(*count)++] = strdup(value);
    *list = grown;
}

static void add_marking(Caveat__Report *report, const char *path, const char *level)
{
    Caveat__FieldMarking *marking = malloc(sizeof *marking);
    assert_non_null(marking);
    caveat__field_marking__init(marking);
    marking->path = strdup(path);
    marking->level = strdup(level);
    Caveat__FieldMarking **grown =
        realloc(report->field_markings, (report->n_field_markings + 1) * sizeof *grown);
    assert_non_null(grown);
    grown[report->n_field_markings++] = marking;
    report->field_markings = grown;
}

static int agency(const cv_policy_t *policy, const char *id)
{
    int index = cv_policy_agency_find(policy, id);
    if (index < 0)
        fail_msg("no agency %s", id);
    return index;
}

/*  Decides for recipient `to` and builds the view (NULL when not
 *  delivered), checking that the two agree. */
static Caveat__Report *view_for(const cv_policy_t *policy, const Caveat__Report *report,
                                const char *to, const cv_approvals_t *approvals)
{
    bool delivered = cv_policy_decide(policy, report, agency(policy, to), approvals, decision);
    assert_int_equal(delivered, cv_decision_delivered(decision));
    Caveat__Report *view = cv_decision_view(decision, report);
    assert_int_equal(view != NULL, delivered);
    if (!delivered) /* one delivered may name none: a view of the envelope alone */
        assert_int_equal(cv_decision_entry_count(decision), 0);
    return view;
}

static bool delivered_to(const cv_policy_t *policy, const Caveat__Report *report, const char *to,
                         const cv_approvals_t *approvals)
{
    Caveat__Report *view = view_for(policy, report, to, approvals);
    report_free(view);
    return view != NULL;
}

static void view_free(Caveat__Report *view)
{
    report_free(view);
}

static bool has_reason(const char *text)
{
    for (int i = 0; i < cv_decision_reason_count(decision); i++)
        if (strcmp(cv_decision_reason(decision, i), text) == 0)
            return true;
    return false;
}

static void assert_reason(const char *text)
{
    if (has_reason(text))
        return;
    fprintf(stderr, "reasons given:\n");
    for (int i = 0; i < cv_decision_reason_count(decision); i++)
        fprintf(stderr, "  %s\n", cv_decision_reason(decision, i));
    fail_msg("missing reason: %s", text);
}

static void assert_entries(const char *const *names, int count)
{
    assert_int_equal(cv_decision_entry_count(decision), count);
    for (int i = 0; i < count; i++)
        assert_string_equal(cv_decision_entry_name(decision, i), names[i]);
}

static const cv_field_decision_t *field(const char *path)
{
    const cv_field_decision_t *found = NULL;
    for (int i = 0; i < cv_decision_field_count(decision); i++) {
        const cv_field_decision_t *f = cv_decision_field(decision, i);
        if (strcmp(f->path, path) == 0) {
            if (found)
                fail_msg("two field decisions for %s", path);
            found = f;
        }
    }
    if (!found)
        fail_msg("no field decision for %s", path);
    return found;
}

/*  why NULL: any explanation. */
static void assert_field(const char *path, const char *decided, const char *why)
{
    const cv_field_decision_t *f = field(path);
    if (strcmp(f->decision, decided) != 0 || (why && strcmp(f->why, why) != 0))
        fail_msg("%s: got %s (%s), expected %s (%s)", path, f->decision, f->why, decided,
                 why ? why : "any reason");
}

/* ------------------------------------------------------------------------ */
/*  1. Default deny; the envelope always travels.                           */

static void test_default_deny(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    set_text(&report->category, "feedback");
    assert_null(view_for(main_policy, report, "hull-cc", NULL));
    assert_int_equal(cv_decision_reason_count(decision), 1);
    assert_reason("no rule releases category feedback from hull-police (police) to hull-cc "
                  "(local_authority)");
    assert_null(cv_decision_feed(decision));
    assert_null(cv_decision_entry_name(decision, 0));
    /* not delivered: every present field is withheld, the envelope too */
    assert_true(cv_decision_field_count(decision) > 0);
    for (int i = 0; i < cv_decision_field_count(decision); i++) {
        assert_string_equal(cv_decision_field(decision, i)->decision, "withheld");
        assert_string_equal(cv_decision_field(decision, i)->why, "not delivered");
    }
    /* nobody has a rule for feedback */
    for (int i = 0; i < cv_policy_agency_count(main_policy); i++) {
        const char *id = cv_policy_agency(main_policy, i)->id;
        assert_false(delivered_to(main_policy, report, id, NULL));
    }
    report_free(report);
}

/* clang-format off */
static const char summary_only_yaml[] =
    POLICY_HEAD
    "rules:\n"
    "  - name: summary-only\n"
    "    categories: [vulnerable_individual]\n"
    "    to_types: [local_authority]\n"
    "    fields: {summary: share}\n"
    "  - name: deny-only\n"
    "    categories: [critical_incident]\n"
    "    to_types: [local_authority]\n"
    "    fields: {\"*\": deny}\n"
    "  - name: notice\n"
    "    categories: [community_tension]\n"
    "    to_types: [local_authority]\n"
    "    fields: {}\n"
    "  - name: grants-what-is-denied\n"
    "    categories: [grievance]\n"
    "    to_types: [local_authority]\n"
    "    fields: {summary: share}\n"
    "  - name: denies-the-summary\n"
    "    categories: [grievance]\n"
    "    to_types: [local_authority]\n"
    "    fields: {summary: deny}\n"
    "  - name: envelope-only\n"
    "    categories: [venue_of_concern]\n"
    "    to_types: [local_authority]\n"
    "    fields: {id: share}\n"
    "  - name: shares-a-message-denies-its-fields\n"
    "    categories: [intervention_review]\n"
    "    to_types: [local_authority]\n"
    "    fields: {source: share, source.type: deny, source.reference: deny, source.notes: deny}\n";
/* clang-format on */

static void assert_envelope(const Caveat__Report *view)
{
    assert_string_equal(view->id, "rep-1");
    assert_string_equal(view->originator, "hull-police");
    assert_string_equal(view->created, "2026-11-20T09:30:00Z");
    assert_non_null(view->category);
    assert_string_equal(view->handling_level, "OFFICIAL-SENSITIVE");
}

static void assert_no_body(const Caveat__Report *view)
{
    assert_null(view->author);
    assert_null(view->grading);
    assert_false(view->has_priority);
    assert_null(view->area);
    assert_int_equal(view->n_subjects, 0);
    assert_null(view->location);
    assert_null(view->narrative);
    assert_null(view->source);
    assert_int_equal(view->n_indicators, 0);
    assert_null(view->tension);
    assert_int_equal(view->n_field_markings, 0);
    assert_int_equal(view->n_caveats, 0);
}

static void test_envelope_always_travels(void **state)
{
    (void)state;
    cv_policy_t *policy = load_policy(summary_only_yaml, NULL);
    Caveat__Report *report = base_report();
    Caveat__Report *view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_envelope(view);
    assert_string_equal(view->category, "vulnerable_individual");
    assert_string_equal(view->summary, "Girl at risk of online grooming");
    assert_no_body(view);
    assert_field("id", "share", "envelope: always travels with a delivered report");
    assert_field("handling_level", "share", "envelope: always travels with a delivered report");
    assert_field("summary", "share", "rule summary-only");
    assert_field("author", "withheld", "no matching rule or screening entry grants it");
    view_free(view);

    /* fields: {} is a notice on purpose: the envelope alone */
    set_text(&report->category, "community_tension");
    view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_envelope(view);
    assert_null(view->summary);
    assert_no_body(view);
    assert_field("created", "share", "envelope: always travels with a delivered report");
    view_free(view);
    report_free(report);
    cv_policy_destroy(&policy);
}

/*  Deny never delivers: an entry that only denies, or whose grants
 *  another matching entry denies, tells the recipient nothing, not even
 *  that the report exists. */
static void test_deny_never_delivers(void **state)
{
    (void)state;
    cv_policy_t *policy = load_policy(summary_only_yaml, NULL);
    Caveat__Report *report = base_report();
    /* venue_of_concern: an entry that grants only the envelope, which
     * goes with any delivery and delivers nothing by itself (only {} asks
     * for a notice). With no marking and no restriction the decision took
     * a shorter path, which counted the envelope and sent a notice.
     * intervention_review: an entry that shares a message (source) and
     * denies each of its fields, so shares no field; the same shorter path
     * counted the message's own node and sent a notice. */
    const char *categories[] = {"critical_incident", "grievance", "venue_of_concern",
                                "intervention_review"};
    for (int i = 0; i < 4; i++) {
        set_text(&report->category, categories[i]);
        assert_false(delivered_to(policy, report, "hull-cc", NULL));
        assert_reason("the matching rules and screening entries share or mask no field here: "
                      "deny never delivers (fields: {} sends a notice on purpose)");
    }
    /* a marking that raises the only granted field past the recipient's
     * clearance leaves nothing either */
    set_text(&report->category, "vulnerable_individual");
    add_marking(report, "summary", "SECRET");
    assert_false(delivered_to(policy, report, "hull-cc", NULL));
    report_free(report);
    cv_policy_destroy(&policy);
}

/* ------------------------------------------------------------------------ */
/*  2. Matching: category, originator, recipient, area, levels.             */

static void test_category_and_types(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    assert_true(delivered_to(main_policy, report, "hull-cc", NULL));
    assert_entries((const char *const[]){"safeguarding-referral"}, 1);
    assert_null(cv_decision_feed(decision));

    /* a category the rule does not cover */
    set_text(&report->category, "radicalisation_concern");
    assert_false(delivered_to(main_policy, report, "hull-cc", NULL));
    assert_reason("no rule releases category radicalisation_concern from hull-police (police) "
                  "to hull-cc (local_authority)");

    /* an originator type the rule does not cover */
    set_text(&report->category, "vulnerable_individual");
    set_text(&report->originator, "hull-college");
    set_text(&report->handling_level, "OFFICIAL");
    assert_false(delivered_to(main_policy, report, "hull-cc", NULL));
    assert_reason("rule safeguarding-referral: does not cover originator hull-college "
                  "(type education)");
    /* ... but partner-referral runs the other way */
    assert_true(delivered_to(main_policy, report, "hull-police", NULL));
    assert_entries((const char *const[]){"partner-referral"}, 1);
    report_free(report);
}

/* clang-format off */
static const char agencies_yaml[] =
    POLICY_HEAD
    "rules:\n"
    "  - name: from-york\n"
    "    categories: [critical_incident]\n"
    "    from_agencies: [york-police]\n"
    "    to_agencies: [hull-cc, ne-ctu]\n"
    "    fields: {summary: share}\n"
    "  - name: anyone-to-college\n"
    "    categories: [feedback]\n"
    "    to_agencies: [hull-college]\n"
    "    fields: {summary: share}\n";
/* clang-format on */

static void test_from_and_to_agencies(void **state)
{
    (void)state;
    cv_policy_t *policy = load_policy(agencies_yaml, NULL);
    Caveat__Report *report = base_report();
    set_text(&report->category, "critical_incident");
    set_text(&report->originator, "york-police");
    set_text(&report->area, "york");
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_true(delivered_to(policy, report, "ne-ctu", NULL));
    assert_false(delivered_to(policy, report, "york-cc", NULL));
    assert_reason("no rule releases category critical_incident from york-police (police) to "
                  "york-cc (local_authority)");
    assert_false(delivered_to(policy, report, "hull-cc-children", NULL));

    set_text(&report->originator, "hull-police");
    assert_false(delivered_to(policy, report, "hull-cc", NULL));
    assert_reason("rule from-york: does not cover originator hull-police (type police)");

    /* no from_*: any originator */
    set_text(&report->category, "feedback");
    set_text(&report->handling_level, "OFFICIAL");
    static const char *const originators[] = {"hull-police", "york-cc", "ne-ctu", "hull-cc"};
    for (size_t i = 0; i < sizeof originators / sizeof *originators; i++) {
        set_text(&report->originator, originators[i]);
        assert_true(delivered_to(policy, report, "hull-college", NULL));
    }
    report_free(report);
    cv_policy_destroy(&policy);
}

/* clang-format off */
static const char area_yaml[] =
    POLICY_HEAD
    "rules:\n"
    "  - name: local-only\n"
    "    categories: [feedback]\n"
    "    to_types: [ctu, local_authority]\n"
    "    same_area: true\n"
    "    fields: {summary: share}\n"
    "  - name: anywhere\n"
    "    categories: [grievance]\n"
    "    to_types: [local_authority]\n"
    "    same_area: false\n"
    "    fields: {summary: share}\n";
/* clang-format on */

static void test_same_area(void **state)
{
    (void)state;
    /* the main policy's safeguarding-referral is same_area */
    Caveat__Report *report = base_report();
    assert_true(delivered_to(main_policy, report, "hull-cc", NULL));
    assert_false(delivered_to(main_policy, report, "york-cc", NULL));
    assert_reason("rule safeguarding-referral: area 'hull' is not among the recipient's areas");
    set_text(&report->area, "york");
    assert_true(delivered_to(main_policy, report, "york-cc", NULL));
    assert_false(delivered_to(main_policy, report, "hull-cc", NULL));
    assert_reason("rule safeguarding-referral: area 'york' is not among the recipient's areas");

    cv_policy_t *policy = load_policy(area_yaml, NULL);
    set_text(&report->category, "feedback");
    set_text(&report->area, "leeds");
    assert_true(delivered_to(policy, report, "ne-ctu", NULL)); /* areas: ["*"] */
    assert_false(delivered_to(policy, report, "hull-cc", NULL));
    /* a report with no area is in no one's area but "*"'s */
    set_text(&report->area, NULL);
    assert_true(delivered_to(policy, report, "ne-ctu", NULL));
    assert_false(delivered_to(policy, report, "hull-cc", NULL));
    assert_reason("rule local-only: area '' is not among the recipient's areas");
    /* same_area: false is no area check */
    set_text(&report->category, "grievance");
    set_text(&report->area, "hull");
    assert_true(delivered_to(policy, report, "york-cc", NULL));
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    report_free(report);
    cv_policy_destroy(&policy);
}

/* clang-format off */
static const char every_category_yaml[] =
    POLICY_HEAD
    "rules:\n"
    "  - name: everything-to-ctu\n"
    "    categories: [\"*\"]\n"
    "    to_types: [ctu]\n"
    "    fields: {summary: share}\n"
    "screening:\n"
    "  - name: all-to-ctio\n"
    "    feed: ctio\n"
    "    to_types: [ctio]\n"
    "    match: {categories: [\"*\"]}\n"
    "    fields: {summary: share}\n";
/* clang-format on */

/*  "*" means every category, in rules and in a screening entry's match,
 *  as it means every field and every area. */
static void test_every_category(void **state)
{
    (void)state;
    cv_policy_t *policy = load_policy(every_category_yaml, NULL);
    const char *categories[] = {"vulnerable_individual", "feedback", "critical_incident"};
    for (size_t i = 0; i < sizeof categories / sizeof *categories; i++) {
        Caveat__Report *report = base_report();
        set_text(&report->category, categories[i]);
        assert_true(delivered_to(policy, report, "ne-ctu", NULL));
        assert_true(delivered_to(policy, report, "hull-ctio", NULL));
        assert_false(delivered_to(policy, report, "hull-cc", NULL));
        report_free(report);
    }
    cv_policy_destroy(&policy);
}

/* clang-format off */
static const char levels_yaml[] =
    POLICY_HEAD
    "rules:\n"
    "  - name: capped\n"
    "    categories: [feedback]\n"
    "    to_types: [ctu]\n"
    "    max_level: OFFICIAL-SENSITIVE\n"
    "    fields: {summary: share}\n"
    "  - name: uncapped\n"
    "    categories: [grievance]\n"
    "    to_types: [ctu]\n"
    "    fields: {summary: share}\n";
/* clang-format on */

static void test_clearance_and_max_level(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    set_text(&report->handling_level, "SECRET");
    assert_false(delivered_to(main_policy, report, "hull-cc", NULL));
    assert_int_equal(cv_decision_reason_count(decision), 1);
    assert_reason("handling level SECRET is above the recipient's clearance OFFICIAL-SENSITIVE");
    assert_true(delivered_to(main_policy, report, "ne-ctu", NULL));
    set_text(&report->handling_level, "OFFICIAL-SENSITIVE");
    assert_false(delivered_to(main_policy, report, "hull-college", NULL));
    assert_reason("handling level OFFICIAL-SENSITIVE is above the recipient's clearance "
                  "OFFICIAL");

    cv_policy_t *policy = load_policy(levels_yaml, NULL);
    set_text(&report->category, "feedback");
    assert_true(delivered_to(policy, report, "ne-ctu", NULL));
    set_text(&report->handling_level, "SECRET");
    assert_false(delivered_to(policy, report, "ne-ctu", NULL));
    assert_reason("rule capped: handling level SECRET is above its max_level OFFICIAL-SENSITIVE");
    /* without max_level a rule carries up to the highest level */
    set_text(&report->category, "grievance");
    assert_true(delivered_to(policy, report, "ne-ctu", NULL));
    report_free(report);
    cv_policy_destroy(&policy);
}

static void test_unknown_names(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    set_text(&report->handling_level, "TOP");
    assert_false(delivered_to(main_policy, report, "ne-ctu", NULL));
    assert_reason("unknown handling level 'TOP'");
    set_text(&report->handling_level, "OFFICIAL");
    set_text(&report->category, "gossip");
    assert_false(delivered_to(main_policy, report, "ne-ctu", NULL));
    assert_reason("unknown category 'gossip'");
    set_text(&report->category, "vulnerable_individual");
    set_text(&report->originator, "nobody");
    assert_false(delivered_to(main_policy, report, "ne-ctu", NULL));
    assert_reason("originator 'nobody' is not an agency of this protocol");
    set_text(&report->originator, "hull-police");
    int count = cv_policy_agency_count(main_policy);
    assert_false(cv_policy_decide(main_policy, report, count, NULL, decision));
    assert_reason("recipient is not an agency of this protocol");
    assert_false(cv_policy_decide(main_policy, report, -1, NULL, decision));
    assert_null(cv_decision_view(decision, report));
    report_free(report);
}

/* ------------------------------------------------------------------------ */
/*  4. Field levels and markings.                                           */

static void test_marking_on_parent(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    add_marking(report, "subjects", "SECRET");
    Caveat__Report *view = view_for(main_policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_int_equal(view->n_subjects, 0); /* nothing of a SECRET subject goes */
    assert_string_equal(view->summary, "Girl at risk of online grooming");
    assert_field("subjects.name", "withheld", "marked SECRET, above the recipient's clearance");
    assert_field("subjects.date_of_birth", "withheld",
                 "marked SECRET, above the recipient's clearance");
    assert_field("summary", "share", "rule safeguarding-referral");
    assert_reason("subjects.name: marked SECRET, above the recipient's clearance");
    view_free(view);

    /* a SECRET recipient whose rule carries SECRET gets the subject */
    view = view_for(main_policy, report, "ne-ctu", NULL);
    assert_non_null(view);
    assert_int_equal(view->n_subjects, 1);
    assert_string_equal(view->subjects[0]->name, "Jane Doe");
    view_free(view);
    report_free(report);
}

/*  The view packed for the last decision is the built view packed. */
static void assert_packed_as_built(const Caveat__Report *report, const Caveat__Report *view)
{
    size_t size = protobuf_c_message_get_packed_size(&view->base);
    uint8_t *built = malloc(size ? size : 1), *packed = malloc(size ? size : 1);
    assert_non_null(built);
    assert_non_null(packed);
    protobuf_c_message_pack(&view->base, built);
    assert_int_equal(cv_decision_pack(decision, report, packed, size), size);
    assert_memory_equal(built, packed, size);
    free(built);
    free(packed);
}

/* clang-format off */
static const char everything_yaml[] =
    POLICY_HEAD
    "rules:\n"
    "  - name: everything\n"
    "    categories: [vulnerable_individual]\n"
    "    to_types: [local_authority, police]\n"
    "    fields: {\"*\": share}\n";
/* clang-format on */

/*  field_markings is a field like any other, and "*" shares it: a marking
 *  naming a field withheld from the recipient told it that the field
 *  exists and how it is marked. Such markings are now left out, in the
 *  view built and in the one packed; a recipient given the field gets its
 *  marking. */
static void test_markings_of_withheld_fields_stay_behind(void **state)
{
    (void)state;
    cv_policy_t *policy = load_policy(everything_yaml, NULL);
    Caveat__Report *report = base_report();
    add_marking(report, "source", "SECRET");
    add_marking(report, "summary", "OFFICIAL-SENSITIVE");
    const char *to[] = {"hull-cc", "york-police"};
    for (int i = 0; i < 2; i++) {
        Caveat__Report *view = view_for(policy, report, to[i], NULL);
        assert_non_null(view);
        bool cleared = i == 1; /* york-police holds SECRET */
        assert_int_equal(view->source != NULL, cleared);
        assert_int_equal(view->n_field_markings, cleared ? 2 : 1);
        assert_string_equal(view->field_markings[cleared ? 1 : 0]->path, "summary");
        assert_packed_as_built(report, view);
        view_free(view);
    }
    report_free(report);
    cv_policy_destroy(&policy);
}

/* clang-format off */
static const char markings_yaml[] =
    POLICY_HEAD
    "rules:\n"
    "  - name: districts-and-markings\n"
    "    categories: [vulnerable_individual]\n"
    "    to_types: [local_authority]\n"
    "    fields: {summary: share, subjects.name: share, location.name: share,\n"
    "             subjects.postcode: {mask: postcode_district}, field_markings: share}\n";
/* clang-format on */

/*  A marking goes only with a field the recipient is given something of
 *  (docs/policy.md, rule 4), and a field granted is not always given: a
 *  postcode that is no postcode fails its mask and is withheld, a subject
 *  left with nothing is left out, a field the report lacks is not there
 *  to give. Their markings went all the same, as the grants alone were
 *  looked at, telling the recipient that a subject with a postcode, or a
 *  second one, exists and how it is marked. */
static bool assert_shares_all_is_the_report(const cv_policy_t *policy, const Caveat__Report *report,
                                            int agency);

static void test_markings_of_fields_not_given_stay_behind(void **state)
{
    (void)state;
    cv_policy_t *policy = load_policy(markings_yaml, NULL);
    Caveat__Report *report = parse_report(
        "{'id': 'rep-3', 'originator': 'hull-police', 'created': '2026-11-20T09:30:00Z',"
        " 'category': 'vulnerable_individual', 'handling_level': 'OFFICIAL-SENSITIVE',"
        " 'area': 'hull', 'summary': 'One subject, address unknown',"
        " 'subjects': [{'postcode': 'no fixed abode', 'address': 'unknown'}],"
        " 'field_markings': [{'path': 'subjects.postcode', 'level': 'OFFICIAL'},"
        "   {'path': 'subjects', 'level': 'OFFICIAL'}, {'path': 'location.name', 'level': "
        "'OFFICIAL'},"
        "   {'path': 'summary', 'level': 'OFFICIAL'}]}");
    Caveat__Report *view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_string_equal(view->summary, "One subject, address unknown");
    assert_int_equal(view->n_subjects, 0);
    assert_null(view->location);
    assert_int_equal(view->n_field_markings, 1);
    assert_string_equal(view->field_markings[0]->path, "summary");
    assert_packed_as_built(report, view);
    view_free(view);

    /* a postcode given, masked: its marking and its subject's go */
    set_text(&report->subjects[0]->postcode, "HU3 2AB");
    view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_int_equal(view->n_subjects, 1);
    assert_string_equal(view->subjects[0]->postcode, "HU3");
    assert_int_equal(view->n_field_markings, 3);
    assert_string_equal(view->field_markings[0]->path, "subjects.postcode");
    assert_string_equal(view->field_markings[1]->path, "subjects");
    assert_string_equal(view->field_markings[2]->path, "summary");
    assert_packed_as_built(report, view);
    view_free(view);

    /* the marking of a field under a sub-message not marked itself: the
     * walk for what is given goes down to it through the sub-message */
    size_t markings = report->n_field_markings;
    report->n_field_markings = 1; /* subjects.postcode alone */
    view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_int_equal(view->n_field_markings, 1);
    assert_string_equal(view->field_markings[0]->path, "subjects.postcode");
    assert_packed_as_built(report, view);
    view_free(view);
    report->n_field_markings = markings;

    /* given every field as it is, but not the marking of location.name,
     * which the report lacks: the view is not the report, so the broker
     * must not send the report's own bytes */
    cv_policy_t *everything = load_policy(everything_yaml, NULL);
    int hull_cc = cv_policy_agency_find(everything, "hull-cc");
    assert_true(cv_policy_decide(everything, report, hull_cc, NULL, decision));
    assert_false(cv_decision_shares_all(decision));
    assert_false(assert_shares_all_is_the_report(everything, report, hull_cc));
    view = view_for(everything, report, "hull-cc", NULL);
    assert_int_equal(view->n_field_markings, 3);
    view_free(view);
    report_free(report);
    cv_policy_destroy(&everything);
    cv_policy_destroy(&policy);
}

/*  A sub-message whose every field is withheld went as an empty one: two
 *  subjects that held only an address reached the council as {} {},
 *  telling it there were two more subjects; a location holding only a
 *  name marked SECRET went as location {}. Such a sub-message is now
 *  left out, in the view built and in the one packed. One that is empty
 *  in the report goes as it is, as the report given whole would. */
static void test_emptied_sub_messages_stay_behind(void **state)
{
    (void)state;
    Caveat__Report *report = parse_report(
        "{'id': 'rep-2', 'originator': 'hull-police', 'created': '2026-11-20T09:30:00Z',"
        " 'category': 'vulnerable_individual', 'handling_level': 'OFFICIAL-SENSITIVE',"
        " 'grading': {'source': 'B', 'intelligence': '2', 'handling_code': '2'},"
        " 'area': 'hull', 'summary': 'Three people at one address',"
        " 'subjects': [{'name': 'Jane Doe'}, {'address': '2 Example Street, Hull'}, {},"
        "   {'address': '3 Example Street, Hull'}],"
        " 'location': {'name': 'Albion Library'}}");
    Caveat__Report *view = view_for(main_policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_int_equal(view->n_subjects, 2); /* Jane, and the one empty as published */
    assert_string_equal(view->subjects[0]->name, "Jane Doe");
    assert_null(view->subjects[1]->name);
    assert_packed_as_built(report, view);
    view_free(view);

    cv_policy_t *policy = load_policy(everything_yaml, NULL);
    add_marking(report, "location.name", "SECRET");
    const char *to[] = {"hull-cc", "york-police"};
    for (int i = 0; i < 2; i++) {
        view = view_for(policy, report, to[i], NULL);
        assert_non_null(view);
        assert_int_equal(view->location != NULL, i == 1); /* york-police holds SECRET */
        assert_int_equal(view->n_subjects, 4);
        assert_packed_as_built(report, view);
        view_free(view);
    }
    report_free(report);
    cv_policy_destroy(&policy);
}

static void test_marking_on_field(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    add_marking(report, "subjects.name", "SECRET");
    Caveat__Report *view = view_for(main_policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_int_equal(view->n_subjects, 1);
    assert_null(view->subjects[0]->name);
    assert_string_equal(view->subjects[0]->date_of_birth, "2009");
    assert_field("subjects.name", "withheld", "marked SECRET, above the recipient's clearance");
    assert_field("subjects.date_of_birth", "mask:year", "rule safeguarding-referral");
    view_free(view);

    /* a marking never lowers a field below the report's level */
    report_free(report);
    report = base_report();
    set_text(&report->category, "community_tension");
    set_text(&report->handling_level, "OFFICIAL");
    add_marking(report, "summary", "OFFICIAL-SENSITIVE");
    add_marking(report, "tension", "OFFICIAL");
    view = view_for(main_policy, report, "hull-college", NULL);
    assert_non_null(view);
    assert_null(view->summary);
    assert_non_null(view->tension);
    assert_int_equal(view->tension->level, 3);
    assert_field("summary", "withheld",
                 "marked OFFICIAL-SENSITIVE, above the recipient's clearance");
    view_free(view);
    report_free(report);
}

/*  A marking whose level the policy does not know counts as the highest. */
static void test_unknown_marking_fails_closed(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    add_marking(report, "summary", "ULTRA");
    Caveat__Report *view = view_for(main_policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_null(view->summary);
    assert_string_equal(view->narrative, "Jane was seen with an older man near the library.");
    assert_field("summary", "withheld", "marked SECRET, above the recipient's clearance");
    view_free(view);
    view = view_for(main_policy, report, "ne-ctu", NULL);
    assert_non_null(view);
    assert_string_equal(view->summary, "Girl at risk of online grooming");
    view_free(view);
    cv_error_t err = {0};
    assert_false(cv_policy_validate_report(main_policy, report, &err));
    assert_string_equal(err.msg, "field_markings[0].level: unknown level 'ULTRA'");
    report_free(report);
}

/* ------------------------------------------------------------------------ */
/*  5. Several entries: the union, the most protective outcome per field.   */

/* clang-format off */
static const char union_yaml[] =
    POLICY_HEAD
    "rules:\n"
    "  - name: r-summary\n"
    "    categories: [feedback]\n"
    "    to_types: [local_authority]\n"
    "    fields: {summary: share}\n"
    "  - name: r-narrative\n"
    "    categories: [feedback]\n"
    "    to_agencies: [hull-cc]\n"
    "    fields: {narrative: share}\n";
/* clang-format on */

static void test_union_of_grants(void **state)
{
    (void)state;
    cv_policy_t *policy = load_policy(union_yaml, NULL);
    Caveat__Report *report = base_report();
    set_text(&report->category, "feedback");
    Caveat__Report *view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_entries((const char *const[]){"r-summary", "r-narrative"}, 2);
    assert_string_equal(view->summary, "Girl at risk of online grooming");
    assert_string_equal(view->narrative, "Jane was seen with an older man near the library.");
    assert_field("summary", "share", "rule r-summary");
    assert_field("narrative", "share", "rule r-narrative");
    view_free(view);
    view = view_for(policy, report, "york-cc", NULL);
    assert_non_null(view);
    assert_entries((const char *const[]){"r-summary"}, 1);
    assert_non_null(view->summary);
    assert_null(view->narrative);
    view_free(view);
    report_free(report);
    cv_policy_destroy(&policy);
}

/* clang-format off */
#define OPEN_RULE                                                                                  \
    "  - name: open\n"                                                                             \
    "    categories: [feedback]\n"                                                                 \
    "    to_types: [local_authority]\n"                                                            \
    "    fields:\n"                                                                                \
    "      summary: share\n"                                                                       \
    "      narrative: share\n"                                                                     \
    "      subjects.name: {mask: initials}\n"                                                      \
    "      subjects.date_of_birth: share\n"                                                        \
    "      subjects.postcode: share\n"                                                             \
    "      subjects.address: share\n"                                                              \
    "      location.postcode: {mask: postcode_district}\n"                                         \
    "      location.latitude: share\n"                                                             \
    "      location.longitude: share\n"

#define CAREFUL_RULE                                                                               \
    "  - name: careful\n"                                                                          \
    "    categories: [feedback]\n"                                                                 \
    "    to_agencies: [hull-cc]\n"                                                                 \
    "    fields:\n"                                                                                \
    "      summary: deny\n"                                                                        \
    "      narrative: pseudonymise\n"                                                              \
    "      subjects.name: pseudonymise\n"                                                          \
    "      subjects.date_of_birth: {mask: year}\n"                                                 \
    "      subjects.postcode: {mask: postcode_district}\n"                                         \
    "      subjects.address: {mask: initials}\n"                                                   \
    "      location.postcode: {mask: initials}\n"                                                  \
    "      location.latitude: {mask: round_1km}\n"

static const char protective_yaml[] = POLICY_HEAD "rules:\n" OPEN_RULE CAREFUL_RULE;
static const char protective_swapped_yaml[] = POLICY_HEAD "rules:\n" CAREFUL_RULE OPEN_RULE;
/* clang-format on */

static void check_most_protective(const char *yaml)
{
    cv_policy_t *policy = load_policy(yaml, NULL);
    Caveat__Report *report = base_report();
    set_text(&report->category, "feedback");
    Caveat__Report *view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_null(view->summary);                                     /* deny > share */
    assert_memory_equal(view->narrative, "PSN-", 4);                /* pseudonymise > share */
    assert_memory_equal(view->subjects[0]->name, "PSN-", 4);        /* pseudonymise > initials */
    assert_string_equal(view->subjects[0]->date_of_birth, "2009");  /* year > share */
    assert_string_equal(view->subjects[0]->postcode, "HU3");        /* district > share */
    assert_string_equal(view->subjects[0]->address, "1. E. S. H."); /* initials > share */
    assert_string_equal(view->location->postcode, "H. 3.");         /* initials > district */
    assert_true(view->location->has_latitude);
    assert_true(view->location->latitude == 53.74);    /* round_1km > share */
    assert_true(view->location->longitude == -0.3326); /* only open grants it */
    assert_field("summary", "withheld", "denied by rule careful");
    assert_field("narrative", "mask:pseudonymise", "rule careful");
    assert_field("subjects.name", "mask:pseudonymise", "rule careful");
    assert_field("subjects.date_of_birth", "mask:year", "rule careful");
    assert_field("subjects.postcode", "mask:postcode_district", "rule careful");
    assert_field("location.postcode", "mask:initials", "rule careful");
    assert_field("location.latitude", "mask:round_1km", "rule careful");
    assert_field("location.longitude", "share", "rule open");
    view_free(view);

    /* york-cc matches only open */
    view = view_for(policy, report, "york-cc", NULL);
    assert_non_null(view);
    assert_string_equal(view->summary, "Girl at risk of online grooming");
    assert_string_equal(view->subjects[0]->name, "J. D.");
    assert_string_equal(view->subjects[0]->date_of_birth, "2009-04-01");
    assert_string_equal(view->location->postcode, "HU1");
    view_free(view);
    report_free(report);
    cv_policy_destroy(&policy);
}

static void test_most_protective_wins(void **state)
{
    (void)state;
    check_most_protective(protective_yaml);
    check_most_protective(protective_swapped_yaml); /* rule order does not matter */
}

/*  Semantics 4 per entry: an entry whose max_level is below a field's level
 *  grants nothing for it, but another entry may; a deny always counts. */
/* clang-format off */
#define CAP_HEAD                                                                                   \
    POLICY_HEAD "rules:\n"                                                                         \
    "  - name: low\n"                                                                              \
    "    categories: [feedback]\n"                                                                 \
    "    to_agencies: [ne-ctu]\n"                                                                  \
    "    max_level: OFFICIAL\n"

static const char cap_low_only_yaml[] = CAP_HEAD "    fields: {source: share, summary: share}\n";
static const char cap_both_yaml[] = CAP_HEAD
    "    fields: {source: share, summary: share}\n"
    "  - name: high\n"
    "    categories: [feedback]\n"
    "    to_agencies: [ne-ctu]\n"
    "    fields: {source: share}\n";
static const char cap_deny_yaml[] = CAP_HEAD
    "    fields: {source: deny, summary: share}\n"
    "  - name: high\n"
    "    categories: [feedback]\n"
    "    to_agencies: [ne-ctu]\n"
    "    fields: {source: share}\n";
/* clang-format on */

static void test_capped_entry(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    set_text(&report->category, "feedback");
    set_text(&report->handling_level, "OFFICIAL");
    add_marking(report, "source", "OFFICIAL-SENSITIVE");

    cv_policy_t *policy = load_policy(cap_low_only_yaml, NULL);
    Caveat__Report *view = view_for(policy, report, "ne-ctu", NULL);
    assert_non_null(view);
    assert_null(view->source);
    assert_non_null(view->summary);
    assert_field("source.notes", "withheld",
                 "marked OFFICIAL-SENSITIVE, above max_level OFFICIAL of rule low");
    assert_reason("source.notes: marked OFFICIAL-SENSITIVE, above the max_level of the rules "
                  "that grant it");
    view_free(view);
    cv_policy_destroy(&policy);

    policy = load_policy(cap_both_yaml, NULL);
    view = view_for(policy, report, "ne-ctu", NULL);
    assert_non_null(view);
    assert_non_null(view->source);
    assert_string_equal(view->source->notes, "Told by neighbour Mrs Smith");
    assert_field("source.notes", "share", "rule high");
    view_free(view);
    cv_policy_destroy(&policy);

    policy = load_policy(cap_deny_yaml, NULL);
    view = view_for(policy, report, "ne-ctu", NULL);
    assert_non_null(view);
    assert_null(view->source);
    assert_field("source.notes", "withheld", "denied by rule low");
    view_free(view);
    cv_policy_destroy(&policy);
    report_free(report);
}

/* ------------------------------------------------------------------------ */
/*  3. Paths: within one entry the most specific path wins.                 */

/* clang-format off */
static const char specific_yaml[] =
    POLICY_HEAD
    "rules:\n"
    "  - name: specific\n"
    "    categories: [feedback]\n"
    "    to_types: [local_authority]\n"
    "    fields:\n"
    "      \"*\": share\n"
    "      source: deny\n"
    "      source.reference: share\n"
    "      subjects: deny\n"
    "      subjects.name: {mask: initials}\n"
    "  - name: specific-reversed\n"
    "    categories: [grievance]\n"
    "    to_types: [local_authority]\n"
    "    fields:\n"
    "      subjects.name: {mask: initials}\n"
    "      subjects: deny\n"
    "      source.reference: share\n"
    "      source: deny\n"
    "      \"*\": share\n"
    "  - name: only-summary\n"
    "    categories: [critical_incident]\n"
    "    to_types: [local_authority]\n"
    "    fields: {summary: share, \"*\": deny}\n";
/* clang-format on */

static void test_most_specific_path(void **state)
{
    (void)state;
    cv_policy_t *policy = load_policy(specific_yaml, NULL);
    Caveat__Report *report = base_report();
    static const char *const categories[] = {"feedback", "grievance"};
    for (size_t i = 0; i < 2; i++) {
        set_text(&report->category, categories[i]);
        Caveat__Report *view = view_for(policy, report, "hull-cc", NULL);
        assert_non_null(view);
        assert_string_equal(view->summary, "Girl at risk of online grooming");
        assert_string_equal(view->author, "PC 4471 Grant");
        assert_non_null(view->source);
        assert_string_equal(view->source->reference, "SR/2026/0441");
        assert_null(view->source->type);
        assert_null(view->source->notes);
        assert_int_equal(view->n_subjects, 1);
        assert_string_equal(view->subjects[0]->name, "J. D.");
        assert_null(view->subjects[0]->address);
        assert_null(view->subjects[0]->date_of_birth);
        assert_int_equal(view->subjects[0]->n_identifiers, 0);
        assert_field("source.notes", "withheld", NULL);
        assert_field("source.reference", "share", NULL);
        view_free(view);
    }
    set_text(&report->category, "critical_incident");
    Caveat__Report *view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_non_null(view->summary);
    assert_no_body(view);
    view_free(view);
    report_free(report);
    cv_policy_destroy(&policy);
}

/* ------------------------------------------------------------------------ */
/*  7. Handling codes.                                                      */

static void test_handling_code_types(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    set_text(&report->grading->handling_code, "1");
    assert_false(delivered_to(main_policy, report, "hull-cc", NULL));
    assert_int_equal(cv_decision_reason_count(decision), 1);
    assert_reason("handling code 1 does not allow hull-cc (type local_authority)");
    assert_true(delivered_to(main_policy, report, "ne-ctu", NULL));
    set_text(&report->grading->handling_code, "2");
    assert_true(delivered_to(main_policy, report, "hull-cc", NULL));

    /* by agency id: hull-cc yes, another council of the same type no */
    set_text(&report->grading->handling_code, "6");
    assert_true(delivered_to(main_policy, report, "hull-cc", NULL));
    assert_false(delivered_to(main_policy, report, "hull-cc-children", NULL));
    assert_int_equal(cv_decision_reason_count(decision), 1);
    assert_memory_equal(cv_decision_reason(decision, 0), "handling code 6", 15);
    report_free(report);
}

/* clang-format off */
static const char council_yaml[] =
    POLICY_HEAD
    "handling_codes:\n"
    "  \"4\": {same_organisation: true}\n"
    "rules:\n"
    "  - name: council-internal\n"
    "    categories: [critical_incident]\n"
    "    to_types: [local_authority, police]\n"
    "    fields: {summary: share}\n";
/* clang-format on */

static void test_handling_code_same_organisation(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    set_text(&report->category, "radicalisation_concern");
    set_text(&report->grading->handling_code, "4");
    /* hull-ctio is in the originator's organisation; ne-ctu is not */
    assert_true(delivered_to(main_policy, report, "hull-ctio", NULL));
    assert_false(delivered_to(main_policy, report, "ne-ctu", NULL));
    assert_reason("handling code 4: only agencies of the originator's organisation "
                  "(humberside-police)");
    /* the council's own report under code 4 stays in the council */
    set_text(&report->originator, "hull-cc");
    set_text(&report->category, "critical_incident");
    cv_policy_t *policy = load_policy(council_yaml, NULL);
    assert_true(delivered_to(policy, report, "hull-cc-children", NULL));
    assert_false(delivered_to(policy, report, "york-cc", NULL));
    assert_false(delivered_to(policy, report, "hull-police", NULL));
    report_free(report);
    cv_policy_destroy(&policy);
}

static void test_handling_code_approval(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    set_text(&report->grading->handling_code, "5");
    assert_false(delivered_to(main_policy, report, "hull-cc", NULL));
    assert_reason("handling code 5: held until the originator approves a release to hull-cc");

    static const char *const by_id[] = {"hull-cc"};
    cv_approvals_t approvals = {by_id, 1};
    assert_true(delivered_to(main_policy, report, "hull-cc", &approvals));
    assert_false(delivered_to(main_policy, report, "hull-cc-children", &approvals));
    assert_false(delivered_to(main_policy, report, "ne-ctu", &approvals));

    static const char *const by_type[] = {"education", "local_authority"};
    approvals = (cv_approvals_t){by_type, 2};
    assert_true(delivered_to(main_policy, report, "hull-cc", &approvals));
    assert_true(delivered_to(main_policy, report, "hull-cc-children", &approvals));
    assert_false(delivered_to(main_policy, report, "ne-ctu", &approvals));

    static const char *const others[] = {"hull-college", "ctu"};
    approvals = (cv_approvals_t){others, 2};
    assert_false(delivered_to(main_policy, report, "hull-cc", &approvals));
    assert_true(delivered_to(main_policy, report, "ne-ctu", &approvals));
    /* an approval releases only what a rule would: york-cc is out of area */
    static const char *const york[] = {"york-cc"};
    approvals = (cv_approvals_t){york, 1};
    assert_false(delivered_to(main_policy, report, "york-cc", &approvals));
    report_free(report);
}

static void test_handling_code_unknown_or_missing(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    cv_error_t err = {0};
    assert_true(cv_policy_validate_report(main_policy, report, &err));

    set_text(&report->grading->handling_code, "9");
    assert_false(delivered_to(main_policy, report, "ne-ctu", NULL));
    assert_reason("handling code '9' is not defined by this protocol");
    assert_false(cv_policy_validate_report(main_policy, report, &err));
    assert_string_equal(err.msg, "grading.handling_code: not a handling code of this protocol "
                                 "'9'");

    protobuf_c_message_free_unpacked(&report->grading->base, NULL);
    report->grading = NULL;
    assert_false(delivered_to(main_policy, report, "ne-ctu", NULL));
    assert_false(cv_policy_validate_report(main_policy, report, &err));
    assert_memory_equal(err.msg, "grading.handling_code: missing", 30);

    /* a protocol without handling codes needs none */
    cv_policy_t *policy = load_policy(union_yaml, NULL);
    set_text(&report->category, "feedback");
    assert_true(cv_policy_validate_report(policy, report, &err));
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    report_free(report);
    cv_policy_destroy(&policy);
}

/*  report packed and read back, as a publisher's bytes would be. */
static Caveat__Report *through_the_wire(const Caveat__Report *report)
{
    size_t size = caveat__report__get_packed_size(report);
    uint8_t *bytes = malloc(size);
    assert_non_null(bytes);
    caveat__report__pack(report, bytes);
    Caveat__Report *read = caveat__report__unpack(NULL, size, bytes);
    free(bytes);
    assert_non_null(read);
    return read;
}

/*  A map entry read from the wire without its value (or key) has it NULL:
 *  no view could carry it as stored, so the report is refused, naming the
 *  map. Packed and read back, as a publisher's bytes would be. */
static void test_a_map_entry_without_its_value_is_refused(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    cv_error_t err = {0};
    assert_true(cv_policy_validate_report(main_policy, report, &err));
    Caveat__Subject__IdentifiersEntry *entry = report->subjects[0]->identifiers[0];
    for (int missing = 0; missing < 2; missing++) {
        char **member = missing == 0 ? &entry->value : &entry->key;
        char *kept = *member;
        *member = NULL;
        Caveat__Report *read = through_the_wire(report);
        *member = kept;
        assert_int_equal(read->subjects[0]->n_identifiers, 1);
        assert_false(cv_policy_validate_report(main_policy, read, &err));
        assert_string_equal(err.msg, "subjects.identifiers: an entry without its key or its value");
        caveat__report__free_unpacked(read, NULL);
    }
    report_free(report);
}

/*  A map with a key given twice: the JSON form and every view hold one
 *  value a key, so what was stored could not be what a recipient reads
 *  (which of the two a JSON reader keeps differs; libfyaml refuses the
 *  line). Refused, naming the map, never the key. */
static void test_a_map_key_given_twice_is_refused(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    Caveat__Subject *subject = report->subjects[0];
    Caveat__Subject__IdentifiersEntry *again = malloc(sizeof *again);
    assert_non_null(again);
    caveat__subject__identifiers_entry__init(again);
    again->key = strdup(subject->identifiers[0]->key);
    again->value = strdup("another value");
    Caveat__Subject__IdentifiersEntry **grown =
        realloc(subject->identifiers, (subject->n_identifiers + 1) * sizeof *grown);
    assert_non_null(grown);
    grown[subject->n_identifiers++] = again;
    subject->identifiers = grown;
    Caveat__Report *read = through_the_wire(report);
    assert_int_equal(read->subjects[0]->n_identifiers, 2);
    cv_error_t err = {0};
    assert_false(cv_policy_validate_report(main_policy, read, &err));
    assert_string_equal(err.msg, "subjects.identifiers: a key given twice");
    free(read->subjects[0]->identifiers[1]->key); /* another key: taken */
    read->subjects[0]->identifiers[1]->key = strdup("warrant");
    assert_true(cv_policy_validate_report(main_policy, read, &err));
    report_free(read);
    report_free(report);
}

/*  A protobuf string is UTF-8, which protobuf-c does not check; the JSON
 *  form writes each byte that is not as U+FFFD, so the keys "pnc\xff" and
 *  "pnc\xfe" would be one key there, and a summary would read otherwise
 *  than stored. Refused, naming the field. */
static void test_a_string_not_utf8_is_refused(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    cv_error_t err = {0};
    set_text(&report->summary, "caf\xe9"); /* Latin-1 */
    Caveat__Report *read = through_the_wire(report);
    assert_false(cv_policy_validate_report(main_policy, read, &err));
    assert_string_equal(err.msg, "summary: not UTF-8 text");
    report_free(read);
    set_text(&report->summary, "caf\xc3\xa9");
    set_text(&report->subjects[0]->identifiers[0]->key, "pnc\xff");
    read = through_the_wire(report);
    assert_false(cv_policy_validate_report(main_policy, read, &err));
    assert_string_equal(err.msg, "subjects.identifiers.key: not UTF-8 text");
    report_free(read);
    set_text(&report->subjects[0]->identifiers[0]->key, "pnc");
    set_text(&report->subjects[0]->identifiers[0]->value, "\xed\xa0\x80"); /* a surrogate */
    read = through_the_wire(report);
    assert_false(cv_policy_validate_report(main_policy, read, &err));
    assert_string_equal(err.msg, "subjects.identifiers.value: not UTF-8 text");
    report_free(read);
    set_text(&report->subjects[0]->identifiers[0]->value, "09/123456A");
    read = through_the_wire(report);
    assert_true(cv_policy_validate_report(main_policy, read, &err));
    report_free(read);
    report_free(report);
}

/*  protobuf-c keeps any number in a proto2 enum; the JSON form names the
 *  value, and a reader takes only the names it knows. Refused. */
static void test_an_enum_value_not_defined_is_refused(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    report->has_priority = true;
    report->priority = 7;
    Caveat__Report *read = through_the_wire(report);
    assert_int_equal(read->priority, 7);
    cv_error_t err = {0};
    assert_false(cv_policy_validate_report(main_policy, read, &err));
    assert_string_equal(err.msg, "priority: a value its enum does not define");
    read->priority = CAVEAT__PRIORITY__IMMEDIATE;
    assert_true(cv_policy_validate_report(main_policy, read, &err));
    report_free(read);
    report_free(report);
}

/*  Every decision looks at every marking of the report: a field is marked
 *  once, so a report carries no more markings than it has fields, however
 *  many its bytes would hold. */
static void test_a_field_is_marked_once(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    cv_error_t err = {0};
    add_marking(report, "summary", "SECRET");
    add_marking(report, "source", "SECRET");
    assert_true(cv_policy_validate_report(main_policy, report, &err));
    add_marking(report, "summary", "OFFICIAL");
    assert_false(cv_policy_validate_report(main_policy, report, &err));
    assert_string_equal(err.msg, "field_markings[2].path: marked twice 'summary'");
    report_free(report);

    report = base_report();
    int fields = cv_schema_size(cv_schema_report());
    for (int i = 0; i <= fields; i++) /* one more than there are fields */
        add_marking(report, "summary", "SECRET");
    assert_false(cv_policy_validate_report(main_policy, report, &err));
    char want[80];
    snprintf(want, sizeof want, "field_markings: more than the %d fields a report has", fields);
    assert_string_equal(err.msg, want);
    report_free(report);
}

/* ------------------------------------------------------------------------ */
/*  8. The originator never receives its own report.                        */

static void test_no_echo(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    set_text(&report->category, "critical_incident");
    assert_true(delivered_to(main_policy, report, "york-police", NULL));
    assert_false(delivered_to(main_policy, report, "hull-police", NULL));
    assert_int_equal(cv_decision_reason_count(decision), 1);
    assert_reason("the originator never receives its own report back");
    /* not even when the originator approved a release to itself */
    set_text(&report->grading->handling_code, "5");
    static const char *const self[] = {"hull-police", "police"};
    cv_approvals_t approvals = {self, 2};
    assert_false(delivered_to(main_policy, report, "hull-police", &approvals));
    assert_true(delivered_to(main_policy, report, "york-police", &approvals));
    report_free(report);
}

/* ------------------------------------------------------------------------ */
/*  Screening.                                                              */

static void test_screening_by_category(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    set_text(&report->category, "community_tension");
    Caveat__Report *view = view_for(main_policy, report, "hull-ctio", NULL);
    assert_non_null(view);
    assert_string_equal(cv_decision_feed(decision), "ctio");
    assert_entries((const char *const[]){"prevent-screen"}, 1);
    assert_non_null(view->source);
    assert_null(view->source->notes);
    assert_string_equal(view->subjects[0]->name, "Jane Doe");
    assert_field("summary", "share", "screening prevent-screen");
    assert_field("source.notes", "withheld", "denied by screening prevent-screen");
    view_free(view);
    report_free(report);
}

static void test_screening_by_indicator(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    assert_false(delivered_to(main_policy, report, "hull-ctio", NULL));
    add_text(&report->n_indicators, &report->indicators, "weapons");
    assert_false(delivered_to(main_policy, report, "hull-ctio", NULL));
    add_text(&report->n_indicators, &report->indicators, "extremist_literature");
    assert_true(delivered_to(main_policy, report, "hull-ctio", NULL));
    assert_string_equal(cv_decision_feed(decision), "ctio");
    report_free(report);
}

static void test_screening_by_keyword(void **state)
{
    (void)state;
    static const struct {
        const char *summary, *narrative;
        bool matches;
    } cases[] = {
        {"Girl at risk", "Talk of RADICALISATION at home", true},
        {"Radicalised youth", "Nothing else", true},
        {"Girl at risk", "Seen on an extremist forum", true}, /* policy says EXTREMIS */
        {"Girl at risk", "rAdIcAlIs", true},
        {"Girl at risk", "radical views", false},
        {"Girl at risk", "Nothing of note", false},
    };
    Caveat__Report *report = base_report();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        set_text(&report->summary, cases[i].summary);
        set_text(&report->narrative, cases[i].narrative);
        if (delivered_to(main_policy, report, "hull-ctio", NULL) != cases[i].matches)
            fail_msg("summary '%s', narrative '%s': expected %s", cases[i].summary,
                     cases[i].narrative, cases[i].matches ? "a match" : "no match");
    }
    /* only summary and narrative are searched */
    set_text(&report->narrative, "Nothing of note");
    set_text(&report->source->notes, "radicalised by a relative");
    set_text(&report->author, "extremism unit");
    assert_false(delivered_to(main_policy, report, "hull-ctio", NULL));
    assert_reason("screening prevent-screen: the report matches none of its categories, "
                  "indicators or keywords");
    report_free(report);
}

static void test_screening_conditions(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    set_text(&report->category, "community_tension");
    set_text(&report->area, "york");
    assert_false(delivered_to(main_policy, report, "hull-ctio", NULL));
    assert_reason("screening prevent-screen: area 'york' is not among the recipient's areas");
    set_text(&report->area, "hull");
    set_text(&report->grading->handling_code, "4");
    set_text(&report->originator, "ne-ctu");
    assert_false(delivered_to(main_policy, report, "hull-ctio", NULL));
    assert_reason("handling code 4: only agencies of the originator's organisation (ne-ctu)");
    report_free(report);
}

/*  Rules and screening together: one delivery, the union of grants, the
 *  feed of the screening entry. */
static void test_rules_and_screening(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    set_text(&report->originator, "hull-cc");
    set_text(&report->narrative, "Worried about radicalisation");
    Caveat__Report *view = view_for(main_policy, report, "hull-ctio", NULL);
    assert_non_null(view);
    assert_entries((const char *const[]){"partner-referral", "prevent-screen"}, 2);
    assert_string_equal(cv_decision_feed(decision), "ctio");
    /* partner-referral shares everything, the screen denies source.notes */
    assert_null(view->source->notes);
    assert_string_equal(view->source->type, "patrol");
    view_free(view);
    /* police get it by the rule alone: no feed */
    view = view_for(main_policy, report, "hull-police", NULL);
    assert_non_null(view);
    assert_null(cv_decision_feed(decision));
    assert_string_equal(view->source->notes, "Told by neighbour Mrs Smith");
    view_free(view);
    report_free(report);
}

/* clang-format off */
static const char two_feeds_yaml[] =
    POLICY_HEAD
    "screening:\n"
    "  - name: s-first\n"
    "    feed: alpha\n"
    "    to_types: [ctu]\n"
    "    match: {keywords: [knife]}\n"
    "    fields: {summary: share}\n"
    "  - name: s-second\n"
    "    feed: beta\n"
    "    to_types: [ctu]\n"
    "    match: {keywords: [knife, gun]}\n"
    "    fields: {narrative: share}\n";
/* clang-format on */

static void test_feed_is_first_screening_entry(void **state)
{
    (void)state;
    cv_policy_t *policy = load_policy(two_feeds_yaml, NULL);
    Caveat__Report *report = base_report();
    set_text(&report->narrative, "a gun was seen");
    Caveat__Report *view = view_for(policy, report, "ne-ctu", NULL);
    assert_non_null(view);
    assert_string_equal(cv_decision_feed(decision), "beta");
    assert_entries((const char *const[]){"s-second"}, 1);
    assert_null(view->summary);
    view_free(view);
    set_text(&report->narrative, "a knife and a gun");
    view = view_for(policy, report, "ne-ctu", NULL);
    assert_non_null(view);
    assert_string_equal(cv_decision_feed(decision), "alpha");
    assert_entries((const char *const[]){"s-first", "s-second"}, 2);
    assert_non_null(view->summary);
    assert_non_null(view->narrative);
    view_free(view);
    set_text(&report->narrative, "nothing");
    assert_false(delivered_to(policy, report, "ne-ctu", NULL));
    assert_false(delivered_to(policy, report, "hull-cc", NULL));
    assert_reason("no rule releases category vulnerable_individual from hull-police (police) "
                  "to hull-cc (local_authority)");
    cv_policy_destroy(&policy);

    /* a screening entry that only denies releases nothing (rule 1), so it
     * names no feed: the report went to the session of its feed, and not
     * to the one of the entry that released it (or, released by a rule
     * alone, to none) */
    policy =
        load_policy(POLICY_HEAD "rules:\n"
                                "  - {name: to-ctu, categories: [\"*\"], to_types: [ctu],\n"
                                "     fields: {summary: share}}\n"
                                "screening:\n"
                                "  - {name: s-quiet, feed: quiet, to_types: [ctu],\n"
                                "     match: {keywords: [gun]}, fields: {source: deny}}\n"
                                "  - {name: s-beta, feed: beta, to_types: [ctu],\n"
                                "     match: {keywords: [knife]}, fields: {narrative: share}}\n",
                    NULL);
    set_text(&report->narrative, "a knife and a gun");
    assert_true(delivered_to(policy, report, "ne-ctu", NULL));
    assert_string_equal(cv_decision_feed(decision), "beta");
    set_text(&report->narrative, "a gun");
    assert_true(delivered_to(policy, report, "ne-ctu", NULL));
    assert_null(cv_decision_feed(decision));
    report_free(report);
    cv_policy_destroy(&policy);
}

/*  The entries a recipient is told of (Delivery.rules) and the feed are
 *  those that released the report (rule 1). An entry that only denies, or
 *  whose every grant is capped by a field's level or denied by another
 *  entry, released nothing; yet it matched on what the recipient is not
 *  given (a screening entry's keywords, a rule's area), and naming it, or
 *  its feed, said so: "he is building a bomb" told the council that much
 *  of a narrative it was denied. */
static void test_only_entries_that_released_are_named(void **state)
{
    (void)state;
    cv_policy_t *policy = load_policy(
        POLICY_HEAD "rules:\n"
                    "  - {name: summary-to-councils, categories: [\"*\"], from_types: [police],\n"
                    "     to_types: [local_authority], fields: {summary: share}}\n"
                    "  - {name: narrative-to-councils, categories: [\"*\"], from_types: [police],\n"
                    "     to_types: [local_authority], fields: {narrative: share}}\n"
                    "  - {name: in-your-area, categories: [\"*\"], from_types: [police],\n"
                    "     to_types: [local_authority], same_area: true, fields: {area: deny}}\n"
                    "screening:\n"
                    "  - {name: s-deny, feed: hidden, to_types: [local_authority],\n"
                    "     match: {keywords: [bomb]}, fields: {narrative: deny}}\n"
                    "  - {name: s-capped, feed: capped, to_types: [local_authority],\n"
                    "     match: {keywords: [knife]}, fields: {source: share}}\n",
        NULL);
    Caveat__Report *report = base_report();

    /* in the council's area, nothing to screen: the area rule only denies */
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_entries((const char *const[]){"summary-to-councils", "narrative-to-councils"}, 2);
    assert_null(cv_decision_feed(decision));

    /* the deny-only screening entry matched, and denied the narrative,
     * so the narrative's rule released nothing either */
    set_text(&report->narrative, "He is building a bomb.");
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_entries((const char *const[]){"summary-to-councils"}, 1);
    assert_null(cv_decision_feed(decision));

    /* a screening entry whose one field is marked above the council's
     * clearance grants nothing: it names neither itself nor its feed */
    set_text(&report->narrative, "A knife was found.");
    add_marking(report, "source", "SECRET");
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_entries((const char *const[]){"summary-to-councils", "narrative-to-councils"}, 2);
    assert_null(cv_decision_feed(decision));
    report_free(report);

    /* unmarked, it releases the source: named, and its feed with it */
    report = base_report();
    set_text(&report->narrative, "A knife was found.");
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_entries(
        (const char *const[]){"summary-to-councils", "narrative-to-councils", "s-capped"}, 3);
    assert_string_equal(cv_decision_feed(decision), "capped");

    /* a field the report lacks is not given: the entry granting it, or
     * granting it alone of what the report has, is not named either, so
     * a report without a narrative names what one whose narrative was
     * denied names (their views are the same) */
    set_text(&report->source->notes, NULL);
    set_text(&report->source->type, NULL);
    set_text(&report->source->reference, NULL);
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_entries((const char *const[]){"summary-to-councils", "narrative-to-councils"}, 2);
    assert_null(cv_decision_feed(decision));
    set_text(&report->narrative, NULL);
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_entries((const char *const[]){"summary-to-councils"}, 1);
    report_free(report);
    cv_policy_destroy(&policy);

    /* a restriction that removes a screening entry's only field leaves it
     * nothing released: not named, no feed */
    policy = load_policy(
        POLICY_HEAD "rules:\n"
                    "  - {name: summary-to-councils, categories: [\"*\"], from_types: [police],\n"
                    "     to_types: [local_authority], fields: {summary: share}}\n"
                    "screening:\n"
                    "  - {name: s-bomb, feed: bombs, to_types: [local_authority],\n"
                    "     match: {keywords: [bomb]}, fields: {narrative: share}}\n"
                    "restrictions:\n"
                    "  - {name: no-narratives, to_types: [local_authority],\n"
                    "     fields: {narrative: deny}}\n",
        NULL);
    report = base_report();
    set_text(&report->narrative, "He is building a bomb.");
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_entries((const char *const[]){"summary-to-councils"}, 1);
    assert_null(cv_decision_feed(decision));
    report_free(report);
    cv_policy_destroy(&policy);
}

static void assert_told(const char *const *names, int count)
{
    assert_int_equal(cv_decision_told_count(decision), count);
    for (int i = 0; i < count; i++)
        assert_string_equal(cv_decision_told_name(decision, i), names[i]);
    assert_null(cv_decision_told_name(decision, count));
}

/*  Of the entries that released a delivery, the recipient is told those
 *  whose match and release its view shows, so that two reports with the
 *  same view name the same entries whatever was withheld: a same_area
 *  rule beside another giving the same field, where the view lacks the
 *  area; a screening entry whose keyword is in a narrative the recipient
 *  is denied; an entry capped by a marking the recipient is not shown.
 *  The audit log's names (cv_decision_entry_*) stay those that released. */
static void test_the_recipient_is_told_only_what_its_view_shows(void **state)
{
    (void)state;
#define TO_COUNCILS "categories: [\"*\"], from_types: [police, ctu], to_types: [local_authority]"
    cv_policy_t *policy = load_policy(POLICY_HEAD "rules:\n"
                                                  "  - {name: narrative-to-councils, " TO_COUNCILS
                                                  ", fields: {narrative: share}}\n"
                                                  "  - {name: narrative-in-your-area, " TO_COUNCILS
                                                  ", same_area: true,\n"
                                                  "     fields: {narrative: share}}\n",
                                      NULL);
    /* in the council's area, and outside it (ne-ctu may report on any):
     * the same view, the same names */
    Caveat__Report *report = base_report();
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_entries((const char *const[]){"narrative-to-councils", "narrative-in-your-area"}, 2);
    assert_told((const char *const[]){"narrative-to-councils"}, 1);
    set_text(&report->originator, "ne-ctu");
    set_text(&report->area, "york");
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_entries((const char *const[]){"narrative-to-councils"}, 1);
    assert_told((const char *const[]){"narrative-to-councils"}, 1);
    /* and York's council, whose area it is, is told the same */
    assert_true(delivered_to(policy, report, "york-cc", NULL));
    assert_entries((const char *const[]){"narrative-to-councils", "narrative-in-your-area"}, 2);
    assert_told((const char *const[]){"narrative-to-councils"}, 1);
    report_free(report);
    cv_policy_destroy(&policy);

    /* where the view holds the area, the area rule is told; where no
     * entry's match is shown, the delivery itself says that one matched,
     * and it is told those that released it */
    policy = load_policy(POLICY_HEAD
                         "rules:\n"
                         "  - {name: narrative-in-your-area, " TO_COUNCILS ", same_area: true,\n"
                         "     fields: {narrative: share}}\n"
                         "  - {name: area-to-councils, " TO_COUNCILS ", fields: {area: share}}\n",
                         NULL);
    report = base_report();
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_told((const char *const[]){"narrative-in-your-area", "area-to-councils"}, 2);
    report_free(report);
    cv_policy_destroy(&policy);
    policy = load_policy(POLICY_HEAD "rules:\n"
                                     "  - {name: narrative-in-your-area, " TO_COUNCILS
                                     ", same_area: true,\n"
                                     "     fields: {narrative: share}}\n",
                         NULL);
    report = base_report();
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_told((const char *const[]){"narrative-in-your-area"}, 1);
    report_free(report);
    cv_policy_destroy(&policy);

    /* a screening entry is told only when the view holds what it found */
    policy = load_policy(
        POLICY_HEAD "rules:\n"
                    "  - {name: summary-to-councils, " TO_COUNCILS ", fields: {summary: share}}\n"
                    "screening:\n"
                    "  - {name: s-bomb, feed: bombs, to_types: [local_authority],\n"
                    "     match: {keywords: [bomb]}, fields: {summary: share}}\n",
        NULL);
    report = base_report();
    set_text(&report->narrative, "He is building a bomb.");
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_entries((const char *const[]){"summary-to-councils", "s-bomb"}, 2);
    assert_told((const char *const[]){"summary-to-councils"}, 1);
    set_text(&report->narrative, "He is building a shed.");
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_told((const char *const[]){"summary-to-councils"}, 1);
    set_text(&report->summary, "A bomb threat");
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_told((const char *const[]){"summary-to-councils", "s-bomb"}, 2);
    report_free(report);
    cv_policy_destroy(&policy);

    /* when no entry's match is shown and two could have released the view,
     * naming those that did would tell which matched: none is named. The
     * referral rule is not shown the area; beside it, a screening entry
     * not shown its keyword or indicator, or a notice not shown the area
     * beside a rule granting a narrative the report lacks */
    static const char *const hidden[] = {
        "  - {name: referral, " TO_COUNCILS ", same_area: true, fields: {summary: share}}\n"
        "screening:\n  - {name: s-hidden, feed: f, to_types: [local_authority],\n"
        "     match: {keywords: [bomb]}, fields: {summary: share}}\n",
        "  - {name: referral, " TO_COUNCILS ", same_area: true, fields: {summary: share}}\n"
        "screening:\n  - {name: s-hidden, feed: f, to_types: [local_authority],\n"
        "     match: {indicators: [ind-a]}, fields: {summary: share}}\n",
        "  - {name: narrative-any, " TO_COUNCILS ", fields: {narrative: share}}\n"
        "  - {name: notice-in-area, " TO_COUNCILS ", same_area: true, fields: {}}\n"};
    for (int i = 0; i < 3; i++) {
        char yaml[4096];
        snprintf(yaml, sizeof yaml, "%srules:\n%s", POLICY_HEAD, hidden[i]);
        policy = load_policy(yaml, NULL);
        report = base_report();
        set_text(&report->narrative, i < 2 ? "He is building a bomb." : NULL);
        add_text(&report->n_indicators, &report->indicators, "ind-a");
        set_text(&report->originator, "ne-ctu");
        for (int in_area = 1; in_area >= 0; in_area--) {
            set_text(&report->area, in_area ? "hull" : "york");
            assert_true(delivered_to(policy, report, "hull-cc", NULL));
            assert_int_equal(cv_decision_entry_count(decision), in_area + (i < 2));
            assert_told(NULL, 0);
        }
        report_free(report);
        cv_policy_destroy(&policy);
    }

    /* an entry that gives nothing the view holds did not release it: the
     * referral rule is the one possible, and named */
    policy = load_policy(
        POLICY_HEAD
        "rules:\n"
        "  - {name: r1, " TO_COUNCILS ", same_area: true, fields: {summary: share}}\n"
        "  - {name: r2, " TO_COUNCILS ", fields: {narrative: share}}\n"
        "restrictions:\n"
        "  - {name: no-narratives, to_types: [local_authority], fields: {narrative: deny}}\n",
        NULL);
    report = base_report();
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_told((const char *const[]){"r1"}, 1);
    report_free(report);
    cv_policy_destroy(&policy);

    /* a value shared as it is may be the same bytes as another's masked
     * ("b. t." is "bomb threat"'s initials): a field some entry masks
     * shows no match, so the two views name the same */
    policy = load_policy(
        POLICY_HEAD
        "rules:\n"
        "  - {name: r1, " TO_COUNCILS ", same_area: true,\n"
        "     fields: {summary: share, narrative: share}}\n"
        "screening:\n"
        "  - {name: s1, feed: f, to_types: [local_authority], match: {keywords: [bomb]},\n"
        "     fields: {narrative: {mask: initials}}}\n",
        NULL);
    report = base_report();
    set_text(&report->narrative, "b. t.");
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_entries((const char *const[]){"r1"}, 1);
    assert_told(NULL, 0);
    set_text(&report->narrative, "bomb threat");
    assert_true(delivered_to(policy, report, "hull-cc", NULL));
    assert_entries((const char *const[]){"r1", "s1"}, 2);
    assert_told(NULL, 0);
    report_free(report);
    cv_policy_destroy(&policy);

    /* a marking the council is not shown caps nothing in what it is told;
     * shown, it caps as it does the release */
#define CAPPED(markings)                                                                           \
    POLICY_HEAD "rules:\n"                                                                         \
                "  - {name: low-narrative, " TO_COUNCILS ", max_level: OFFICIAL,\n"                \
                "     fields: {narrative: share}}\n"                                               \
                "  - {name: narrative-to-councils, " TO_COUNCILS ",\n"                             \
                "     fields: {narrative: share, field_markings: " markings "}}\n"
    const char *capped[] = {CAPPED("deny"), CAPPED("share")};
#undef CAPPED
    for (int shown = 0; shown < 2; shown++) {
        policy = load_policy(capped[shown], NULL);
        report = base_report();
        set_text(&report->handling_level, "OFFICIAL");
        assert_true(delivered_to(policy, report, "hull-cc", NULL));
        assert_told((const char *const[]){"low-narrative", "narrative-to-councils"}, 2);
        add_marking(report, "narrative", "OFFICIAL-SENSITIVE");
        assert_true(delivered_to(policy, report, "hull-cc", NULL));
        assert_entries((const char *const[]){"narrative-to-councils"}, 1);
        if (shown)
            assert_told((const char *const[]){"narrative-to-councils"}, 1);
        else
            assert_told((const char *const[]){"low-narrative", "narrative-to-councils"}, 2);
        report_free(report);
        cv_policy_destroy(&policy);
    }
#undef TO_COUNCILS
}

/*  A small deterministic generator (xorshift64) for the property below. */
static uint64_t told_seed;

static unsigned told_pick(unsigned n)
{
    told_seed ^= told_seed << 13;
    told_seed ^= told_seed >> 7;
    told_seed ^= told_seed << 17;
    return (unsigned)(told_seed % n);
}

/*  One entry's fields: a notice now and then, else one to three of the
 *  fields entries match on and their neighbours, each shared, denied or
 *  masked. */
static void told_fields(char *out, size_t size)
{
    static const char *const paths[] = {
        "area",           "summary",           "narrative",
        "indicators",     "subjects.name",     "subjects",
        "field_markings", "caveats",           "field_markings.path",
        "location",       "subjects.postcode", "field_markings.level"};
    static const char *const grants[] = {"share",        "share",       "deny", "{mask: initials}",
                                         "pseudonymise", "{mask: year}"};
    if (told_pick(10) == 0) {
        snprintf(out, size, "{}");
        return;
    }
    size_t used = (size_t)snprintf(out, size, "{");
    for (unsigned i = 0, n = 1 + told_pick(3); i < n && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s: %s", i ? ", " : "",
                                 paths[told_pick(12)], grants[told_pick(6)]);
    snprintf(out + used, size > used ? size - used : 0, "}");
}

/*  A policy of one to three rules and up to two screening entries, each to
 *  several types, with or without same_area, at any max_level. Duplicate
 *  paths in one entry make a policy that does not load: it is skipped. */
static cv_policy_t *told_policy(void)
{
    static const char *const levels[] = {"OFFICIAL", "OFFICIAL-SENSITIVE", "SECRET"};
    static const char *const matches[] = {"{keywords: [bomb]}", "{indicators: [ind-a]}",
                                          "{keywords: [bomb], indicators: [ind-a]}",
                                          "{categories: [community_tension], keywords: [knife]}"};
    char yaml[8192], fields[512];
    size_t used = (size_t)snprintf(yaml, sizeof yaml, "%s", POLICY_HEAD "rules:\n");
    for (unsigned i = 0, n = 1 + told_pick(3); i < n; i++) {
        told_fields(fields, sizeof fields);
        used +=
            (size_t)snprintf(yaml + used, sizeof yaml - used,
                             "  - {name: r%u, categories: [\"*\"], from_types: [police, ctu],\n"
                             "     to_types: [local_authority, police, education], same_area: %s,\n"
                             "     max_level: %s, fields: %s}\n",
                             i, told_pick(2) ? "true" : "false", levels[told_pick(3)], fields);
    }
    unsigned screens = told_pick(3);
    if (screens)
        used += (size_t)snprintf(yaml + used, sizeof yaml - used, "screening:\n");
    for (unsigned i = 0; i < screens; i++) {
        told_fields(fields, sizeof fields);
        used += (size_t)snprintf(
            yaml + used, sizeof yaml - used,
            "  - {name: s%u, feed: f%u, to_types: [local_authority, police], same_area: %s,\n"
            "     max_level: %s, match: %s, fields: %s}\n",
            i, i, told_pick(2) ? "true" : "false", levels[told_pick(3)], matches[told_pick(4)],
            fields);
    }
    if (told_pick(3) == 0)
        snprintf(yaml + used, sizeof yaml - used,
                 "restrictions:\n  - {name: x, to_types: [local_authority], fields: {%s: deny}}\n",
                 told_pick(2) ? "area" : "narrative");
    cv_error_t err = {0};
    return cv_policy_load_buffer(yaml, strlen(yaml), "told.yaml", NULL, &err);
}

/*  A report from Hull police or the regional CTU (any area), whose area,
 *  texts, indicators, parts and markings come and go. */
static Caveat__Report *told_report(void)
{
    static const char *const levels[] = {"OFFICIAL", "OFFICIAL-SENSITIVE", "SECRET"};
    /* "A. b. t." and "i." are the initials of a text and an indicator: a
     * value shared may be the same bytes as another's masked */
    static const char *const texts[] = {NULL, "A bomb threat", "Routine", "a knife", "A. b. t."};
    static const char *const marked[] = {"narrative",           "summary",  "area",
                                         "indicators",          "subjects", "caveats",
                                         "field_markings.level"};
    bool ctu = told_pick(2);
    Caveat__Report *report = base_report();
    set_text(&report->originator, ctu ? "ne-ctu" : "hull-police");
    set_text(&report->category, told_pick(3) ? "vulnerable_individual" : "community_tension");
    set_text(&report->handling_level, levels[told_pick(3)]);
    set_text(&report->area, ctu ? (const char *[]){NULL, "hull", "york"}[told_pick(3)]
                                : (const char *[]){NULL, "hull"}[told_pick(2)]);
    set_text(&report->summary, texts[told_pick(5)]);
    set_text(&report->narrative, texts[told_pick(5)]);
    if (told_pick(2))
        add_text(&report->n_indicators, &report->indicators,
                 (const char *[]){"ind-a", "ind-b", "i."}[told_pick(3)]);
    if (told_pick(3) == 0) {
        protobuf_c_message_free_unpacked(&report->location->base, NULL);
        report->location = NULL;
    }
    for (unsigned i = 0, n = told_pick(3); i < n; i++)
        add_marking(report, marked[told_pick(7)], levels[told_pick(3)]);
    return report;
}

/*  What one recipient was given: the view's bytes and the names told. */
typedef struct {
    int recipient;
    uint8_t *view;
    size_t size;
    char told[256];
} told_seen_t;

/*  The names a recipient is told depend on its view alone: over random
 *  policies and reports, every two deliveries to one recipient whose
 *  views are the same bytes (the envelope included) name the same
 *  entries. The released entries differ between many such pairs (what
 *  the names told before): counted, so that the test is seen to try. */
static void test_told_names_depend_on_the_view_alone(void **state)
{
    (void)state;
    static const char *const recipients[] = {"hull-cc", "york-cc", "hull-police", "hull-college"};
    enum { REPORTS = 150, SEEN = REPORTS * 4 };
    told_seed = 0x9E3779B97F4A7C15u;
    told_seen_t *seen = calloc(SEEN, sizeof *seen);
    assert_non_null(seen);
    int policies = 0, differently_released = 0;
    for (int p = 0; p < 400; p++) {
        cv_policy_t *policy = told_policy();
        if (!policy)
            continue;
        policies++;
        int n = 0;
        char released[SEEN][64];
        for (int r = 0; r < REPORTS; r++) {
            Caveat__Report *report = told_report();
            cv_error_t err = {0};
            for (int t = 0; t < 4 && cv_policy_validate_report(policy, report, &err); t++) {
                int to = agency(policy, recipients[t]);
                if (!cv_policy_decide(policy, report, to, NULL, decision))
                    continue;
                told_seen_t *d = &seen[n];
                d->recipient = to;
                d->size = cv_decision_pack(decision, report, NULL, 0);
                d->view = malloc(d->size + 1);
                assert_non_null(d->view);
                assert_int_equal(cv_decision_pack(decision, report, d->view, d->size), d->size);
                d->told[0] = released[n][0] = '\0';
                for (int i = 0; i < cv_decision_told_count(decision); i++)
                    strcat(strcat(d->told, cv_decision_told_name(decision, i)), " ");
                for (int i = 0; i < cv_decision_entry_count(decision); i++)
                    strcat(strcat(released[n], cv_decision_entry_name(decision, i)), " ");
                n++;
            }
            report_free(report);
        }
        for (int i = 0; i < n; i++) {
            for (int j = i + 1; j < n; j++) {
                if (seen[i].recipient != seen[j].recipient || seen[i].size != seen[j].size ||
                    memcmp(seen[i].view, seen[j].view, seen[i].size) != 0)
                    continue;
                if (strcmp(seen[i].told, seen[j].told) != 0)
                    fail_msg("policy %d: one view told \"%s\" and \"%s\"", p, seen[i].told,
                             seen[j].told);
                differently_released += strcmp(released[i], released[j]) != 0;
            }
        }
        for (int i = 0; i < n; i++)
            free(seen[i].view);
        cv_policy_destroy(&policy);
    }
    free(seen);
    assert_true(policies > 100);
    assert_true(differently_released > 100);
}

/* ------------------------------------------------------------------------ */
/*  Views: masks applied, failures withheld, explanations.                  */

static void test_view_and_explanations(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    Caveat__Report *view = view_for(main_policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_int_equal(view->n_subjects, 1);
    Caveat__Subject *s = view->subjects[0];
    assert_string_equal(s->name, "Jane Doe");
    assert_string_equal(s->date_of_birth, "2009");
    assert_string_equal(s->postcode, "HU3");
    assert_null(s->address);
    assert_int_equal(s->n_identifiers, 1);
    assert_string_equal(s->identifiers[0]->key, "pnc");
    assert_memory_equal(s->identifiers[0]->value, "PSN-", 4);
    assert_int_equal(s->n_vulnerability_factors, 2);
    assert_string_equal(s->vulnerability_factors[1], "online contact");
    assert_null(view->location);
    assert_null(view->source);
    assert_null(view->author);

    /* one explanation per present leaf, each path once */
    assert_int_equal(cv_decision_field_count(decision), 30);
    assert_field("id", "share", "envelope: always travels with a delivered report");
    assert_field("summary", "share", "rule safeguarding-referral");
    assert_field("subjects.name", "share", "rule safeguarding-referral");
    assert_field("subjects.date_of_birth", "mask:year", "rule safeguarding-referral");
    assert_field("subjects.postcode", "mask:postcode_district", "rule safeguarding-referral");
    assert_field("subjects.identifiers", "mask:pseudonymise", "rule safeguarding-referral");
    assert_field("subjects.address", "withheld", "no matching rule or screening entry grants it");
    assert_field("source.notes", "withheld", "no matching rule or screening entry grants it");
    assert_field("location.latitude", "withheld", NULL);
    assert_field("priority", "withheld", NULL);
    assert_null(cv_decision_field(decision, 30));
    assert_null(cv_decision_field(decision, -1));
    /* nothing capped the view: no reasons */
    assert_int_equal(cv_decision_reason_count(decision), 0);
    view_free(view);
    report_free(report);
}

static void test_mask_failure_withholds(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    set_text(&report->subjects[0]->postcode, "not a postcode");
    set_text(&report->subjects[0]->date_of_birth, "c. 2009");
    Caveat__Report *view = view_for(main_policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_null(view->subjects[0]->postcode);
    assert_null(view->subjects[0]->date_of_birth);
    assert_string_equal(view->subjects[0]->name, "Jane Doe");
    assert_field("subjects.postcode", "withheld",
                 "a value does not have the shape mask:postcode_district needs; withheld");
    assert_field("subjects.date_of_birth", "withheld",
                 "a value does not have the shape mask:year needs; withheld");
    view_free(view);
    report_free(report);
}

/* clang-format off */
static const char factors_yaml[] =
    POLICY_HEAD
    "rules:\n"
    "  - name: factors\n"
    "    categories: [vulnerable_individual]\n"
    "    to_types: [local_authority]\n"
    "    fields: {subjects.vulnerability_factors: {mask: initials}}\n";
/* clang-format on */

/*  Two subjects, one masks and one does not: each value on its own. */
static void test_mask_failure_per_value(void **state)
{
    (void)state;
    Caveat__Report *report = parse_report(
        "{'id': 'rep-2', 'originator': 'hull-police', 'created': '2026-11-20T09:30:00Z',"
        " 'category': 'vulnerable_individual', 'handling_level': 'OFFICIAL',"
        " 'grading': {'handling_code': '2'}, 'area': 'hull',"
        " 'subjects': [{'name': 'A', 'postcode': 'n/a'},"
        "              {'name': 'B', 'postcode': 'HU3 2AB'}]}");
    Caveat__Report *view = view_for(main_policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_int_equal(view->n_subjects, 2);
    assert_null(view->subjects[0]->postcode);
    assert_string_equal(view->subjects[1]->postcode, "HU3");
    view_free(view);
    report_free(report);

    /* in a repeated string, a value that cannot be masked drops out alone */
    cv_policy_t *policy = load_policy(factors_yaml, NULL);
    report = parse_report("{'id': 'rep-3', 'originator': 'hull-police',"
                          " 'category': 'vulnerable_individual', 'handling_level': 'OFFICIAL',"
                          " 'subjects': [{'vulnerability_factors': ['', 'online contact', ' ',"
                          " 'isolation']}]}");
    view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_int_equal(view->n_subjects, 1);
    assert_int_equal(view->subjects[0]->n_vulnerability_factors, 2);
    assert_string_equal(view->subjects[0]->vulnerability_factors[0], "o. c.");
    assert_string_equal(view->subjects[0]->vulnerability_factors[1], "i.");
    view_free(view);
    report_free(report);
    cv_policy_destroy(&policy);
}

/* ------------------------------------------------------------------------ */
/*  Pseudonyms in a view.                                                   */

/* clang-format off */
static const char pseudonym_yaml[] =
    POLICY_HEAD
    "rules:\n"
    "  - name: pseudo\n"
    "    categories: [vulnerable_individual]\n"
    "    to_types: [local_authority, ctu]\n"
    "    fields: {subjects.identifiers: pseudonymise, subjects.name: pseudonymise}\n";
/* clang-format on */

static char *pseudonym_of_name(const cv_policy_t *policy, const Caveat__Report *report,
                               const char *to)
{
    Caveat__Report *view = view_for(policy, report, to, NULL);
    assert_non_null(view);
    char *name = strdup(view->subjects[0]->name);
    assert_string_equal(view->subjects[0]->identifiers[0]->key, "pnc");
    assert_string_not_equal(view->subjects[0]->identifiers[0]->value, name);
    view_free(view);
    return name;
}

static void test_pseudonyms(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    cv_policy_t *policy = load_policy(pseudonym_yaml, NULL);
    char *hull = pseudonym_of_name(policy, report, "hull-cc");
    char *hull_children = pseudonym_of_name(policy, report, "hull-cc-children");
    char *york = pseudonym_of_name(policy, report, "york-cc");
    char *ctu = pseudonym_of_name(policy, report, "ne-ctu");
    assert_memory_equal(hull, "PSN-", 4);
    assert_int_equal(strlen(hull), 28);
    assert_string_equal(hull, hull_children); /* one organisation links its records */
    assert_string_not_equal(hull, york);      /* two cannot join theirs */
    assert_string_not_equal(hull, ctu);

    /* without a key, one derived from the protocol: repeatable */
    cv_policy_t *again = load_policy(pseudonym_yaml, NULL);
    char *hull_again = pseudonym_of_name(again, report, "hull-cc");
    assert_string_equal(hull, hull_again);

    /* with the broker's key: exactly the keyed hash of that key */
    static const uint8_t key[CV_KEY_BYTES] = {42, 1, 2, 3};
    cv_policy_t *keyed = load_policy(pseudonym_yaml, key);
    char *hull_keyed = pseudonym_of_name(keyed, report, "hull-cc");
    char *expected = cv_mask_pseudonymise(key, "hull-city-council", "Jane Doe");
    assert_string_equal(hull_keyed, expected);
    assert_string_not_equal(hull_keyed, hull);

    char *all[] = {hull, hull_children, york, ctu, hull_again, hull_keyed, expected};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
    cv_policy_destroy(&policy);
    cv_policy_destroy(&again);
    cv_policy_destroy(&keyed);
    report_free(report);
}

/* ------------------------------------------------------------------------ */
/*  No withheld or masked-away value reaches the packed view.               */

typedef struct {
    const char *path;
    const void *bytes;
    size_t len;
} secret_t;

/*  A double as protobuf packs it (fixed64, little-endian). */
static void double_bytes(double value, uint8_t out[8])
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(bits >> (8 * i));
}

#define TEXT(path, value)                                                                          \
    {                                                                                              \
        path, value, sizeof value - 1                                                              \
    }

static void check_packed_view(const Caveat__Report *report, const char *to)
{
    static uint8_t latitude[8], longitude[8];
    double_bytes(53.7443, latitude);
    double_bytes(-0.3326, longitude);
    const secret_t secrets[] = {
        TEXT("author", "PC 4471 Grant"),
        TEXT("subjects.name", "Jane Doe"),
        TEXT("subjects.date_of_birth", "2009-04-01"),
        TEXT("subjects.address", "1 Example Street, Hull"),
        TEXT("subjects.postcode", "HU3 2AB"),
        TEXT("subjects.identifiers", "09/123456A"),
        TEXT("subjects.vulnerability_factors", "online contact"),
        TEXT("location.name", "Albion Library"),
        TEXT("location.address", "Albion Street, Hull"),
        TEXT("location.postcode", "HU1 3TF"),
        {"location.latitude", latitude, 8},
        {"location.longitude", longitude, 8},
        TEXT("summary", "Girl at risk of online grooming"),
        TEXT("narrative", "Jane was seen with an older man near the library."),
        TEXT("source.type", "patrol"),
        TEXT("source.reference", "SR/2026/0441"),
        TEXT("source.notes", "Told by neighbour Mrs Smith"),
        TEXT("tension.trend", "rising"),
        TEXT("caveats", "POLICE ONLY"),
    };
    Caveat__Report *view = view_for(main_policy, report, to, NULL);
    if (!view)
        fail_msg("%s: not delivered", to);
    size_t len = protobuf_c_message_get_packed_size(&view->base);
    uint8_t *packed = malloc(len + 1);
    assert_non_null(packed);
    assert_int_equal(protobuf_c_message_pack(&view->base, packed), len);
    int shared = 0, hidden = 0;
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++) {
        const cv_field_decision_t *f = field(secrets[i].path);
        bool found = memmem(packed, len, secrets[i].bytes, secrets[i].len) != NULL;
        if (strcmp(f->decision, "share") == 0) {
            /* the search works: what is shared is found */
            if (!found)
                fail_msg("%s: %s is shared but not in the packed view", to, secrets[i].path);
            shared++;
        } else {
            /* withheld or masked: the original must be nowhere */
            if (found)
                fail_msg("%s: %s is %s but its value is in the packed view", to, secrets[i].path,
                         f->decision);
            hidden++;
        }
    }
    free(packed);
    view_free(view);
    assert_true(shared > 0 || hidden > 0);
}

static void test_no_withheld_bytes(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    check_packed_view(report, "hull-cc");
    check_packed_view(report, "hull-cc-children");
    check_packed_view(report, "ne-ctu");

    add_marking(report, "subjects", "SECRET");
    check_packed_view(report, "hull-cc");
    add_marking(report, "summary", "ULTRA");
    check_packed_view(report, "hull-cc");
    report_free(report);

    report = base_report();
    set_text(&report->category, "community_tension");
    check_packed_view(report, "hull-ctio");
    set_text(&report->handling_level, "OFFICIAL");
    check_packed_view(report, "hull-college");
    check_packed_view(report, "ne-ctu");
    report_free(report);
}

/* ------------------------------------------------------------------------ */
/*  Borrowed and packed views: the same bytes and explanations as
 *  cv_decision_view and protobuf_c_message_pack.                           */

/*  Every field explanation and reason of the last decision, one line each. */
static char *explanations(void)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    assert_non_null(out);
    for (int i = 0; i < cv_decision_field_count(decision); i++) {
        const cv_field_decision_t *f = cv_decision_field(decision, i);
        fprintf(out, "%s %s %s\n", f->path, f->decision, f->why);
    }
    for (int i = 0; i < cv_decision_reason_count(decision); i++)
        fprintf(out, "%s\n", cv_decision_reason(decision, i));
    fclose(out);
    return text;
}

static void assert_explanations(const char *expected)
{
    char *got = explanations();
    assert_string_equal(got, expected);
    free(got);
}

static void check_packed(const cv_policy_t *policy, const Caveat__Report *report, int to,
                         const uint8_t *expected, size_t len, const char *explained)
{
    uint8_t *got = malloc(len + 1);
    assert_non_null(got);
    memset(got, 0xA5, len + 1);
    assert_true(cv_policy_decide(policy, report, to, NULL, decision));
    /* too small a buffer: the size, and nothing written */
    assert_int_equal(cv_decision_pack(decision, report, got, len - 1), len);
    for (size_t i = 0; i <= len; i++)
        assert_int_equal(got[i], 0xA5);
    assert_int_equal(cv_decision_pack(decision, report, got, len + 1), len);
    assert_memory_equal(got, expected, len);
    assert_int_equal(got[len], 0xA5);
    assert_explanations(explained);
    free(got);
}

/*  The two ways to a view of report for recipient `to` agree. Returns
 *  whether it was delivered. */
static bool check_same_views(const cv_policy_t *policy, const Caveat__Report *report,
                             const char *to)
{
    int recipient = agency(policy, to);
    bool delivered = cv_policy_decide(policy, report, recipient, NULL, decision);
    Caveat__Report *view = cv_decision_view(decision, report);
    char *explained = explanations();
    if (!delivered) {
        assert_null(view);
        assert_false(cv_policy_decide(policy, report, recipient, NULL, decision));
        assert_int_equal(cv_decision_pack(decision, report, NULL, 0), 0);
        assert_explanations(explained);
        free(explained);
        return false;
    }
    size_t len = protobuf_c_message_get_packed_size(&view->base);
    uint8_t *expected = malloc(len);
    assert_non_null(expected);
    assert_int_equal(protobuf_c_message_pack(&view->base, expected), len);
    check_packed(policy, report, recipient, expected, len, explained);
    free(expected);
    free(explained);
    view_free(view);
    return true;
}

static void check_main_recipients(const Caveat__Report *report)
{
    static const char *const recipients[] = {"hull-cc",    "hull-cc-children", "ne-ctu",
                                             "hull-ctio",  "york-cc",          "hull-college",
                                             "hull-police"};
    int delivered = 0;
    for (size_t i = 0; i < sizeof recipients / sizeof *recipients; i++)
        delivered += check_same_views(main_policy, report, recipients[i]);
    assert_true(delivered >= 2); /* and some are not: the originator */
}

static void test_packed_views_match(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    check_main_recipients(report);
    /* capped fields, and a marking with an unknown level */
    add_marking(report, "subjects.name", "SECRET");
    add_marking(report, "source", "ULTRA");
    check_main_recipients(report);
    /* masks that fail, empty strings, an unset double */
    set_text(&report->subjects[0]->postcode, "not a postcode");
    set_text(&report->subjects[0]->date_of_birth, "c. 2009");
    set_text(&report->summary, "");
    set_text(&report->caveats[0], "");
    report->location->has_latitude = false;
    check_main_recipients(report);
    set_text(&report->category, "community_tension");
    check_main_recipients(report);
    report_free(report);

    /* every mask, and pseudonyms per organisation */
    report = base_report();
    cv_policy_t *pseudo = load_policy(pseudonym_yaml, NULL);
    assert_true(check_same_views(pseudo, report, "hull-cc"));
    assert_true(check_same_views(pseudo, report, "ne-ctu"));
    set_text(&report->category, "feedback");
    cv_policy_t *protective = load_policy(protective_yaml, NULL);
    assert_true(check_same_views(protective, report, "hull-cc"));
    cv_policy_destroy(&pseudo);
    cv_policy_destroy(&protective);
    report_free(report);
}

/*  A view shares nothing with the report: it outlives it (ASan would see). */
static void test_view_outlives_report(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    assert_true(
        cv_policy_decide(main_policy, report, agency(main_policy, "hull-cc"), NULL, decision));
    size_t len = cv_decision_pack(decision, report, NULL, 0);
    uint8_t *packed = malloc(len), *after = malloc(len);
    assert_non_null(packed);
    assert_non_null(after);
    assert_int_equal(cv_decision_pack(decision, report, packed, len), len);
    Caveat__Report *kept = cv_decision_view(decision, report);
    report_free(report);
    assert_int_equal(protobuf_c_message_get_packed_size(&kept->base), len);
    protobuf_c_message_pack(&kept->base, after);
    assert_memory_equal(packed, after, len);
    free(packed);
    free(after);
    view_free(kept);
}

/* ------------------------------------------------------------------------ */
/*  A decision is reusable scratch space.                                   */

static void test_decision_reuse(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    assert_false(delivered_to(main_policy, report, "york-cc", NULL));
    assert_true(cv_decision_reason_count(decision) > 0);
    assert_true(delivered_to(main_policy, report, "hull-cc", NULL));
    assert_int_equal(cv_decision_reason_count(decision), 0);
    assert_entries((const char *const[]){"safeguarding-referral"}, 1);
    /* a fresh decision gives the same answer as a reused one */
    cv_decision_t *fresh = cv_decision_new();
    assert_true(cv_policy_decide(main_policy, report, agency(main_policy, "hull-cc"), NULL, fresh));
    assert_int_equal(cv_decision_entry_count(fresh), 1);
    cv_decision_destroy(&fresh);
    assert_null(fresh);
    cv_decision_destroy(&fresh);
    report_free(report);
}

static void test_validate_report(void **state)
{
    (void)state;
    cv_error_t err = {0};
    Caveat__Report *report = base_report();
    set_text(&report->category, "gossip");
    assert_false(cv_policy_validate_report(main_policy, report, &err));
    assert_string_equal(err.msg, "category: unknown category 'gossip'");
    report_free(report);

    report = base_report();
    set_text(&report->handling_level, "TOP");
    assert_false(cv_policy_validate_report(main_policy, report, &err));
    assert_string_equal(err.msg, "handling_level: unknown level 'TOP'");
    report_free(report);

    report = base_report();
    add_marking(report, "subjects.nmae", "SECRET");
    assert_false(cv_policy_validate_report(main_policy, report, &err));
    assert_string_equal(err.msg, "field_markings[0].path: unknown field path 'subjects.nmae'");
    report_free(report);

    report = base_report();
    add_marking(report, "subjects.name", "SECRET");
    assert_true(cv_policy_validate_report(main_policy, report, &err));
    report_free(report);

    /* same_area trusts the report's area: Hull police may not say York,
     * or it would reach York's council; a CTU covering "*" may */
    report = base_report();
    set_text(&report->area, "york");
    assert_false(cv_policy_validate_report(main_policy, report, &err));
    assert_string_equal(err.msg, "area: not one of the originator's areas 'york'");
    set_text(&report->originator, "ne-ctu");
    assert_true(cv_policy_validate_report(main_policy, report, &err));
    report_free(report);
}

/*  The broker logs report ids: one with a newline could forge log lines.
 *  The reason names the byte, never quotes the id. */
static void test_validate_report_id(void **state)
{
    (void)state;
    cv_error_t err = {0};
    Caveat__Report *report = base_report();
    static const char *const refused[] = {"r-1\ncaveatd: session: hum-sb", "r-1\r", "\tr-1",
                                          "r-\x1b[2J", "r-1\x7f"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        set_text(&report->id, refused[i]);
        assert_false(cv_policy_validate_report(main_policy, report, &err));
        assert_non_null(strstr(err.msg, "id: control character 0x"));
        assert_null(strchr(err.msg, '\n'));
    }
    set_text(&report->id, "r-1\n");
    assert_false(cv_policy_validate_report(main_policy, report, &err));
    assert_string_equal(err.msg, "id: control character 0x0a at byte 4");
    /* not UTF-8 (the audit log could not hold it as it is), a C1 control
     * (U+009B, the 8-bit CSI, in UTF-8 and as the byte alone), a line
     * separator, or a bidirectional override that would show the id as
     * another ("r-\u202e1-x" reads "r-x-1") */
    static const char *const unreadable[] = {"r-\xff",
                                             "r-\xc2\x9b"
                                             "2J",
                                             "r-\x9b"
                                             "2J",
                                             "r-\xc3",
                                             "r-\xe2\x80\xa8x",
                                             "r-\xe2\x80\xae"
                                             "1-x",
                                             "r-\xe2\x81\xa7"
                                             "1-x\xe2\x81\xa9"};
    for (size_t i = 0; i < sizeof unreadable / sizeof *unreadable; i++) {
        set_text(&report->id, unreadable[i]);
        assert_false(cv_policy_validate_report(main_policy, report, &err));
        assert_string_equal(err.msg, "id: not UTF-8 text, or a C1 control, line separator or "
                                     "bidirectional control character");
    }
    set_text(&report->id, "r-\xc3\xa9t\xc3\xa9"); /* é: text */
    assert_true(cv_policy_validate_report(main_policy, report, &err));

    char id[CV_REPORT_ID_MAX + 2];
    memset(id, 'a', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    set_text(&report->id, id);
    assert_false(cv_policy_validate_report(main_policy, report, &err));
    assert_string_equal(err.msg, "id: longer than 128 bytes");
    id[CV_REPORT_ID_MAX] = '\0';
    set_text(&report->id, id);
    assert_true(cv_policy_validate_report(main_policy, report, &err));

    /* UTF-8 is text, not control; no id at all is the broker's to assign */
    set_text(&report->id, "r-\xc3\xa9t\xc3\xa9");
    assert_true(cv_policy_validate_report(main_policy, report, &err));
    set_text(&report->id, NULL);
    assert_true(cv_policy_validate_report(main_policy, report, &err));
    report_free(report);
}

/* ------------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    cv_error_t err = {0};
    main_policy =
        cv_policy_load_buffer(main_policy_yaml, strlen(main_policy_yaml), "main.yaml", NULL, &err);
    if (!main_policy) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    decision = cv_decision_new();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cv_decision_destroy(&decision);
    cv_policy_destroy(&main_policy);
    return 0;
}

/* ------------------------------------------------------------------------ */
/*  10. Restrictions: after every rule and screening entry, whatever they
 *  grant, the most protective outcome per field.                          */

/* clang-format off */
static const char restricted_yaml[] =
    POLICY_HEAD
    "rules:\n"
    "  - name: referral\n"
    "    categories: [vulnerable_individual, grievance]\n"
    "    from_types: [police]\n"
    "    to_types: [local_authority, ctu]\n"
    "    fields: {summary: share, narrative: share, subjects.name: share,\n"
    "             subjects.identifiers: share, subjects.postcode: {mask: postcode_district}}\n"
    "  - name: notice\n"
    "    categories: [community_tension]\n"
    "    to_types: [local_authority]\n"
    "    fields: {}\n"
    "  - name: tension-summary\n"
    "    categories: [community_tension]\n"
    "    to_types: [local_authority]\n"
    "    fields: {summary: share}\n"
    "  - name: summary-only\n"
    "    categories: [critical_incident]\n"
    "    to_types: [local_authority]\n"
    "    fields: {summary: share}\n"
    "screening:\n"
    "  - name: screen\n"
    "    feed: ctio\n"
    "    to_types: [ctio]\n"
    "    match: {categories: [vulnerable_individual]}\n"
    "    fields: {\"*\": share}\n"
    "restrictions:\n"
    "  - name: no-identifiers\n"
    "    from_types: [police]\n"
    "    except_to_types: [ctu]\n"
    "    fields: {subjects.identifiers: deny}\n"
    "  - name: initials-only\n"
    "    categories: [vulnerable_individual]\n"
    "    to_agencies: [hull-cc, hull-ctio]\n"
    "    fields: {subjects.name: {mask: initials}, subjects.postcode: deny}\n"
    "  - name: no-summary\n"
    "    categories: [critical_incident, community_tension]\n"
    "    fields: {summary: deny}\n"
    "  - name: year-of-birth\n"
    "    categories: [critical_incident]\n"
    "    fields: {subjects.date_of_birth: {mask: year}}\n"
    "  - name: not-york\n"
    "    from_agencies: [york-police]\n"
    "    fields: {narrative: deny}\n"
    "  - name: feedback-never\n"
    "    categories: [feedback]\n"
    "    fields: {\"*\": deny}\n";
/* clang-format on */

static cv_policy_t *restricted_policy(void)
{
    return load_policy(restricted_yaml, NULL);
}

static const char *restriction_of(const char *path)
{
    return field(path)->restriction;
}

/*  Two rules match; a restriction denies one of their fields and masks
 *  another. A field no restriction ever denies settles the delivery
 *  without looking the restrictions up; the view must still be capped by
 *  them, the same built or packed. With every granted field denied, the
 *  delivery is not made. */
static const char two_rules_yaml[] = POLICY_HEAD
    "rules:\n"
    "  - {name: first, categories: [vulnerable_individual], to_types: [local_authority],\n"
    "     fields: {summary: share, narrative: share}}\n"
    "  - {name: second, categories: [vulnerable_individual], to_types: [local_authority],\n"
    "     fields: {narrative: share, subjects.name: share}}\n"
    "restrictions:\n"
    "  - {name: no-narrative, fields: {narrative: deny, subjects.name: {mask: initials}}}\n";

static void test_restrictions_cap_a_delivery_decided_without_them(void **state)
{
    (void)state;
    cv_policy_t *policy = load_policy(two_rules_yaml, NULL);
    Caveat__Report *report = base_report();
    Caveat__Report *view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    const char *released[] = {"first", "second"};
    assert_entries(released, 2);
    assert_string_equal(view->summary, "Girl at risk of online grooming");
    assert_null(view->narrative);
    assert_string_equal(view->subjects[0]->name, "J. D.");
    assert_field("narrative", "withheld", "denied by restriction no-narrative");
    assert_true(check_same_views(policy, report, "hull-cc"));
    view_free(view);
    cv_policy_destroy(&policy);

    char *everything = strdup(two_rules_yaml);
    char *at = strstr(everything, "{narrative: deny, subjects.name: {mask: initials}}");
    assert_non_null(at);
    const char *all = "{\"*\": deny}";
    memcpy(at, all, strlen(all));
    memset(at + strlen(all), ' ',
           strlen("{narrative: deny, subjects.name: {mask: initials}}") - strlen(all));
    policy = load_policy(everything, NULL);
    assert_null(view_for(policy, report, "hull-cc", NULL));
    report_free(report);
    cv_policy_destroy(&policy);
    free(everything);
}

/*  A restriction's deny beats a rule's share; its mask beats a share, and
 *  its deny a rule's mask. The explanation names it. */
static void test_restriction_beats_rule(void **state)
{
    (void)state;
    cv_policy_t *policy = restricted_policy();
    Caveat__Report *report = base_report();
    Caveat__Report *view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    const char *released[] = {"referral"};
    assert_entries(released, 1);
    assert_string_equal(view->summary, "Girl at risk of online grooming");
    assert_string_equal(view->narrative, "Jane was seen with an older man near the library.");
    assert_int_equal(view->n_subjects, 1);
    assert_int_equal(view->subjects[0]->n_identifiers, 0);
    assert_string_equal(view->subjects[0]->name, "J. D.");
    assert_null(view->subjects[0]->postcode);
    assert_field("subjects.identifiers", "withheld", "denied by restriction no-identifiers");
    assert_string_equal(restriction_of("subjects.identifiers"), "no-identifiers");
    assert_field("subjects.name", "mask:initials", "mask:initials by restriction initials-only");
    assert_field("subjects.postcode", "withheld", "denied by restriction initials-only");
    assert_field("summary", "share", "rule referral");
    assert_null(restriction_of("summary"));
    assert_reason("subjects.identifiers: denied by restriction no-identifiers");
    assert_reason("subjects.name: mask:initials by restriction initials-only");
    assert_reason("subjects.postcode: denied by restriction initials-only");
    assert_true(check_same_views(policy, report, "hull-cc"));
    view_free(view);
    report_free(report);
    cv_policy_destroy(&policy);
}

/*  Over a screening entry's "*": share too. */
static void test_restriction_beats_screening(void **state)
{
    (void)state;
    cv_policy_t *policy = restricted_policy();
    Caveat__Report *report = base_report();
    Caveat__Report *view = view_for(policy, report, "hull-ctio", NULL);
    assert_non_null(view);
    assert_string_equal(cv_decision_feed(decision), "ctio");
    assert_int_equal(view->subjects[0]->n_identifiers, 0);
    assert_string_equal(view->subjects[0]->name, "J. D.");
    assert_string_equal(view->subjects[0]->address, "1 Example Street, Hull");
    assert_field("subjects.identifiers", "withheld", "denied by restriction no-identifiers");
    assert_field("subjects.address", "share", "screening screen");
    assert_true(check_same_views(policy, report, "hull-ctio"));
    view_free(view);
    report_free(report);
    cv_policy_destroy(&policy);
}

/*  except_to exempts a recipient the restriction would otherwise reach;
 *  to_agencies reaches only those listed; from_agencies only reports of
 *  those listed. */
static void test_restriction_scope(void **state)
{
    (void)state;
    cv_policy_t *policy = restricted_policy();
    Caveat__Report *report = base_report();
    Caveat__Report *view = view_for(policy, report, "ne-ctu", NULL);
    assert_non_null(view);
    assert_int_equal(view->subjects[0]->n_identifiers, 1);
    assert_string_equal(view->subjects[0]->identifiers[0]->value, "09/123456A");
    assert_string_equal(view->subjects[0]->name, "Jane Doe");
    assert_field("subjects.identifiers", "share", "rule referral");
    assert_null(restriction_of("subjects.identifiers"));
    view_free(view);

    /* the same referral from York police: not-york applies to it alone */
    assert_non_null(view = view_for(policy, report, "hull-cc", NULL));
    assert_non_null(view->narrative);
    view_free(view);
    set_text(&report->originator, "york-police");
    set_text(&report->area, "york");
    assert_non_null(view = view_for(policy, report, "york-cc", NULL));
    assert_null(view->narrative);
    assert_string_equal(view->subjects[0]->name, "Jane Doe"); /* initials-only: not york-cc */
    assert_field("narrative", "withheld", "denied by restriction not-york");
    view_free(view);
    report_free(report);
    cv_policy_destroy(&policy);
}

/*  A restriction without categories applies to every category. */
static void test_restriction_every_category(void **state)
{
    (void)state;
    cv_policy_t *policy = restricted_policy();
    Caveat__Report *report = base_report();
    set_text(&report->category, "grievance");
    Caveat__Report *view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_int_equal(view->subjects[0]->n_identifiers, 0);
    assert_field("subjects.identifiers", "withheld", "denied by restriction no-identifiers");
    assert_string_equal(view->subjects[0]->name, "Jane Doe"); /* initials-only: another category */
    view_free(view);
    report_free(report);
    cv_policy_destroy(&policy);
}

/*  A delivery whose every granted field restrictions remove is not made,
 *  and a restriction's mask grants nothing (year-of-birth would otherwise
 *  leave a date of birth). The reason names only the restriction that
 *  removed something. A notice still delivers its envelope. */
static void test_restriction_removes_everything(void **state)
{
    (void)state;
    cv_policy_t *policy = restricted_policy();
    Caveat__Report *report = base_report();
    set_text(&report->category, "critical_incident");
    assert_false(delivered_to(policy, report, "hull-cc", NULL));
    assert_int_equal(cv_decision_entry_count(decision), 0);
    assert_int_equal(cv_decision_reason_count(decision), 1);
    assert_reason("restriction no-summary removes every field the matching rules and screening "
                  "entries grant here");
    assert_int_equal(cv_decision_pack(decision, report, NULL, 0), 0);

    set_text(&report->category, "feedback"); /* no rule: default deny, not the restriction */
    assert_false(delivered_to(policy, report, "hull-cc", NULL));
    assert_reason("no rule releases category feedback from hull-police (police) to hull-cc "
                  "(local_authority)");

    set_text(&report->category, "community_tension");
    Caveat__Report *view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_envelope(view);
    assert_no_body(view);
    assert_null(view->summary);
    assert_field("summary", "withheld", "denied by restriction no-summary");
    /* the rule whose summary the restriction removed gave nothing: the
     * notice alone released the report */
    const char *released[] = {"notice"};
    assert_entries(released, 1);
    view_free(view);
    report_free(report);
    cv_policy_destroy(&policy);
}

/*  For one field the most protective outcome wins between a rule and a
 *  restriction too: a restriction's year leaves a rule's pseudonym as it is
 *  (the rule is named), and turns a rule's share into a year. */
static void test_restriction_most_protective(void **state)
{
    (void)state;
    /* clang-format off */
    static const char yaml[] =
        POLICY_HEAD
        "rules:\n"
        "  - name: pseudonyms\n"
        "    categories: [grievance]\n"
        "    to_types: [local_authority]\n"
        "    fields: {summary: share, subjects.date_of_birth: pseudonymise}\n"
        "  - name: dates\n"
        "    categories: [feedback]\n"
        "    to_types: [local_authority]\n"
        "    fields: {summary: share, subjects.date_of_birth: share}\n"
        "restrictions:\n"
        "  - name: years-only\n"
        "    fields: {subjects.date_of_birth: {mask: year}}\n";
    /* clang-format on */
    cv_policy_t *policy = load_policy(yaml, NULL);
    Caveat__Report *report = base_report();
    set_text(&report->category, "grievance");
    Caveat__Report *view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_field("subjects.date_of_birth", "mask:pseudonymise", "rule pseudonyms");
    assert_memory_equal(view->subjects[0]->date_of_birth, CV_PSEUDONYM_PREFIX,
                        strlen(CV_PSEUDONYM_PREFIX));
    view_free(view);
    set_text(&report->category, "feedback");
    view = view_for(policy, report, "hull-cc", NULL);
    assert_non_null(view);
    assert_field("subjects.date_of_birth", "mask:year", "mask:year by restriction years-only");
    assert_string_equal(view->subjects[0]->date_of_birth, "2009");
    assert_true(check_same_views(policy, report, "hull-cc"));
    view_free(view);
    report_free(report);
    cv_policy_destroy(&policy);
}

/*  Several restrictions that together remove everything are all named. */
static void test_restrictions_named_together(void **state)
{
    (void)state;
    /* clang-format off */
    static const char yaml[] =
        POLICY_HEAD
        "rules:\n"
        "  - name: two-fields\n"
        "    categories: [grievance]\n"
        "    to_types: [local_authority]\n"
        "    fields: {summary: share, narrative: share}\n"
        "restrictions:\n"
        "  - name: no-summary\n"
        "    fields: {summary: deny}\n"
        "  - name: masks-only\n"
        "    fields: {subjects.name: {mask: initials}}\n"
        "  - name: no-narrative\n"
        "    categories: [grievance]\n"
        "    fields: {narrative: deny}\n";
    /* clang-format on */
    cv_policy_t *policy = load_policy(yaml, NULL);
    Caveat__Report *report = base_report();
    set_text(&report->category, "grievance");
    assert_false(delivered_to(policy, report, "hull-cc", NULL));
    assert_reason("restrictions no-summary, no-narrative remove every field the matching rules "
                  "and screening entries grant here");
    report_free(report);
    cv_policy_destroy(&policy);
}

/*  cv_decision_shares_all, asked right after deciding as the audit record
 *  asks it: when it says so, the view is the report itself, byte for byte.
 *  Returns what it said. */
static bool assert_shares_all_is_the_report(const cv_policy_t *policy, const Caveat__Report *report,
                                            int agency)
{
    cv_policy_decide(policy, report, agency, NULL, decision);
    if (!cv_decision_shares_all(decision))
        return false;
    Caveat__Report *view = cv_decision_view(decision, report);
    assert_non_null(view);
    size_t size = protobuf_c_message_get_packed_size(&report->base);
    assert_int_equal(protobuf_c_message_get_packed_size(&view->base), size);
    uint8_t *want = malloc(size + 1), *got = malloc(size + 1);
    protobuf_c_message_pack(&report->base, want);
    protobuf_c_message_pack(&view->base, got);
    if (memcmp(want, got, size) != 0)
        fail_msg("shares all with %s, but the view is not the report",
                 cv_policy_agency(policy, agency)->id);
    free(want);
    free(got);
    view_free(view);
    return true;
}

/*  cv_decision_outcomes, asked right after deciding (as the audit record
 *  asks it, before any view), says what the view's explanations say of
 *  every field but the envelope's: for every agency of policy. Returns
 *  how many agencies cv_decision_shares_all said were given everything;
 *  every outcome of theirs is "share". */
static int assert_outcomes_agree(const cv_policy_t *policy, const Caveat__Report *report)
{
    const char *paths[64], *outcomes[64];
    int all = 0;
    for (int a = 0; a < cv_policy_agency_count(policy); a++) {
        bool shares_all = assert_shares_all_is_the_report(policy, report, a);
        all += shares_all;
        bool delivered = cv_policy_decide(policy, report, a, NULL, decision);
        assert_true(delivered || !shares_all);
        int n = cv_decision_outcomes(decision, paths, outcomes, 64);
        for (int i = 0; shares_all && i < n; i++)
            assert_string_equal(outcomes[i], "share");
        assert_true(n > 0 && n <= 64);
        assert_int_equal(cv_decision_outcomes(decision, paths, outcomes, 1), n);
        n = cv_decision_outcomes(decision, paths, outcomes, 64);
        Caveat__Report *view = cv_decision_view(decision, report);
        assert_int_equal(view != NULL, delivered);
        int others = 0;
        for (int i = 0; i < cv_decision_field_count(decision); i++)
            others += strncmp(cv_decision_field(decision, i)->why, "envelope", 8) != 0;
        if (delivered)
            assert_int_equal(n, others);
        for (int i = 0; i < n; i++) {
            const cv_field_decision_t *f = field(paths[i]);
            if (strcmp(f->decision, outcomes[i]) != 0)
                fail_msg("%s to %s: outcome %s, the view says %s (%s)", paths[i],
                         cv_policy_agency(policy, a)->id, outcomes[i], f->decision, f->why);
        }
        view_free(view);
    }
    return all;
}

static void test_outcomes_agree_with_the_view(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    assert_outcomes_agree(main_policy, report);
    cv_policy_t *policy = restricted_policy();
    assert_outcomes_agree(policy, report);
    /* two entries: the delivery is settled before the restrictions cap it */
    cv_policy_t *two_rules = load_policy(two_rules_yaml, NULL);
    assert_outcomes_agree(two_rules, report);
    add_marking(report, "narrative", "SECRET"); /* above some entries' max_level */
    assert_outcomes_agree(main_policy, report);
    assert_outcomes_agree(policy, report);
    assert_outcomes_agree(two_rules, report);
    report_free(report);
    /* police to police: all of it, unless a field is marked above a
     * recipient's clearance */
    report = base_report();
    set_text(&report->category, "critical_incident");
    assert_true(assert_outcomes_agree(main_policy, report) > 0);
    add_marking(report, "narrative", "SECRET");
    assert_outcomes_agree(main_policy, report);
    /* everything given, but one field masked: not all of it as it is */
    cv_policy_t *masked = load_policy(
        POLICY_HEAD "rules:\n"
                    "  - {name: all-but-a-year, categories: [\"*\"], to_types: [police],\n"
                    "     fields: {\"*\": share,"
                    " subjects.date_of_birth: {mask: year}}}\n",
        NULL);
    assert_int_equal(assert_outcomes_agree(masked, report), 0);
    /* one rule of everything, capped below a marked field: that field is
     * withheld, so not all of it */
    cv_policy_t *capped = load_policy(
        POLICY_HEAD "rules:\n"
                    "  - {name: all-to-police, categories: [\"*\"], to_types: [police],\n"
                    "     max_level: OFFICIAL-SENSITIVE, fields: {\"*\": share}}\n",
        NULL);
    assert_int_equal(assert_outcomes_agree(capped, report), 0); /* narrative is SECRET */
    Caveat__Report *unmarked = base_report();
    set_text(&unmarked->category, "critical_incident");
    assert_true(assert_outcomes_agree(capped, unmarked) > 0);
    /* everything from one rule, a field denied by another that matches
     * too: the most protective wins, so not all of it */
    cv_policy_t *two_entries = load_policy(
        POLICY_HEAD "rules:\n"
                    "  - {name: all-to-police, categories: [\"*\"], to_types: [police],\n"
                    "     fields: {\"*\": share}}\n"
                    "  - {name: no-narrative, categories: [\"*\"], to_types: [police],\n"
                    "     fields: {narrative: deny}}\n",
        NULL);
    assert_int_equal(assert_outcomes_agree(two_entries, unmarked), 0);
    cv_policy_destroy(&two_entries);
    report_free(unmarked);
    cv_policy_destroy(&capped);
    report_free(report);
    cv_policy_destroy(&masked);
    cv_policy_destroy(&policy);
    cv_policy_destroy(&two_rules);
}

/*  The view of report packed for agency, or NULL when it is not
 *  delivered; *key, cv_decision_view_key's name for it. */
static uint8_t *packed_view_for(const cv_policy_t *policy, const Caveat__Report *report, int agency,
                                size_t *len, int64_t *key)
{
    *key = -1;
    if (!cv_policy_decide(policy, report, agency, NULL, decision))
        return NULL;
    *key = cv_decision_view_key(decision);
    *len = cv_decision_pack(decision, report, NULL, 0);
    uint8_t *bytes = malloc(*len + 1);
    assert_non_null(bytes);
    assert_int_equal(cv_decision_pack(decision, report, bytes, *len), *len);
    return bytes;
}

/*  Every two agencies whose views of report cv_decision_view_key names
 *  alike are given the same bytes. Returns how many agencies share their
 *  view's name with an agency before them. */
static int assert_named_views_agree(const cv_policy_t *policy, const Caveat__Report *report)
{
    int n = cv_policy_agency_count(policy), shared = 0;
    uint8_t **views = calloc((size_t)n, sizeof *views);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    int64_t *keys = calloc((size_t)n, sizeof *keys);
    for (int a = 0; a < n; a++) {
        views[a] = packed_view_for(policy, report, a, &lens[a], &keys[a]);
        assert_true(views[a] || keys[a] == -1);
        for (int b = 0; b < a && keys[a] >= 0; b++) {
            if (keys[b] != keys[a])
                continue;
            if (lens[a] != lens[b] || memcmp(views[a], views[b], lens[a]) != 0)
                fail_msg("%s and %s: one view name, two views", cv_policy_agency(policy, a)->id,
                         cv_policy_agency(policy, b)->id);
            shared++;
            break;
        }
    }
    for (int a = 0; a < n; a++)
        free(views[a]);
    free(views);
    free(lens);
    free(keys);
    return shared;
}

/*  cv_decision_view_key: a view packed once may be copied to every
 *  recipient its name covers, across rules, markings, restrictions and
 *  pseudonyms. */
static void test_view_names(void **state)
{
    (void)state;
    Caveat__Report *report = base_report();
    cv_policy_t *restricted = restricted_policy();
    cv_policy_t *two_rules = load_policy(two_rules_yaml, NULL);
    cv_policy_t *pseudonyms = load_policy(pseudonym_yaml, NULL);
    assert_true(assert_named_views_agree(main_policy, report) > 0);
    assert_named_views_agree(restricted, report);
    assert_named_views_agree(two_rules, report);
    /* one organisation links its pseudonyms, two cannot: hull-cc and
     * hull-cc-children share a name, york-cc has its own */
    assert_true(assert_named_views_agree(pseudonyms, report) > 0);
    int64_t hull, hull_children, york;
    size_t len;
    free(packed_view_for(pseudonyms, report, cv_policy_agency_find(pseudonyms, "hull-cc"), &len,
                         &hull));
    free(packed_view_for(pseudonyms, report, cv_policy_agency_find(pseudonyms, "hull-cc-children"),
                         &len, &hull_children));
    free(packed_view_for(pseudonyms, report, cv_policy_agency_find(pseudonyms, "york-cc"), &len,
                         &york));
    assert_true(hull >= 0);
    assert_true(hull == hull_children);
    assert_true(york >= 0 && york != hull);
    /* a marked field: every decision on the report is worked out anew */
    add_marking(report, "narrative", "SECRET");
    assert_int_equal(assert_named_views_agree(main_policy, report), 0);
    assert_int_equal(assert_named_views_agree(pseudonyms, report), 0);
    report_free(report);
    cv_policy_destroy(&restricted);
    cv_policy_destroy(&two_rules);
    cv_policy_destroy(&pseudonyms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_category),
        cmocka_unit_test(test_deny_never_delivers),
        cmocka_unit_test(test_default_deny),
        cmocka_unit_test(test_envelope_always_travels),
        cmocka_unit_test(test_category_and_types),
        cmocka_unit_test(test_from_and_to_agencies),
        cmocka_unit_test(test_same_area),
        cmocka_unit_test(test_clearance_and_max_level),
        cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_marking_on_parent),
        cmocka_unit_test(test_marking_on_field),
        cmocka_unit_test(test_markings_of_withheld_fields_stay_behind),
        cmocka_unit_test(test_markings_of_fields_not_given_stay_behind),
        cmocka_unit_test(test_emptied_sub_messages_stay_behind),
        cmocka_unit_test(test_unknown_marking_fails_closed),
        cmocka_unit_test(test_union_of_grants),
        cmocka_unit_test(test_most_protective_wins),
        cmocka_unit_test(test_capped_entry),
        cmocka_unit_test(test_most_specific_path),
        cmocka_unit_test(test_handling_code_types),
        cmocka_unit_test(test_handling_code_same_organisation),
        cmocka_unit_test(test_handling_code_approval),
        cmocka_unit_test(test_handling_code_unknown_or_missing),
        cmocka_unit_test(test_a_map_entry_without_its_value_is_refused),
        cmocka_unit_test(test_a_map_key_given_twice_is_refused),
        cmocka_unit_test(test_an_enum_value_not_defined_is_refused),
        cmocka_unit_test(test_a_string_not_utf8_is_refused),
        cmocka_unit_test(test_a_field_is_marked_once),
        cmocka_unit_test(test_no_echo),
        cmocka_unit_test(test_screening_by_category),
        cmocka_unit_test(test_screening_by_indicator),
        cmocka_unit_test(test_screening_by_keyword),
        cmocka_unit_test(test_screening_conditions),
        cmocka_unit_test(test_rules_and_screening),
        cmocka_unit_test(test_feed_is_first_screening_entry),
        cmocka_unit_test(test_only_entries_that_released_are_named),
        cmocka_unit_test(test_the_recipient_is_told_only_what_its_view_shows),
        cmocka_unit_test(test_told_names_depend_on_the_view_alone),
        cmocka_unit_test(test_view_and_explanations),
        cmocka_unit_test(test_mask_failure_withholds),
        cmocka_unit_test(test_mask_failure_per_value),
        cmocka_unit_test(test_pseudonyms),
        cmocka_unit_test(test_no_withheld_bytes),
        cmocka_unit_test(test_packed_views_match),
        cmocka_unit_test(test_view_outlives_report),
        cmocka_unit_test(test_decision_reuse),
        cmocka_unit_test(test_view_names),
        cmocka_unit_test(test_validate_report),
        cmocka_unit_test(test_validate_report_id),
        cmocka_unit_test(test_restriction_beats_rule),
        cmocka_unit_test(test_restrictions_cap_a_delivery_decided_without_them),
        cmocka_unit_test(test_restriction_beats_screening),
        cmocka_unit_test(test_restriction_scope),
        cmocka_unit_test(test_restriction_every_category),
        cmocka_unit_test(test_restriction_removes_everything),
        cmocka_unit_test(test_restriction_most_protective),
        cmocka_unit_test(test_restrictions_named_together),
        cmocka_unit_test(test_outcomes_agree_with_the_view),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
