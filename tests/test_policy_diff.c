/*  test_policy_diff.c: what a reviewer must approve between two versions
 *  of a policy (policy/cv_policy_diff.c).
 *
 *  Each test edits the base policy in one place and compares the whole
 *  diff: a missing line and an extra line are both failures.
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

/*  Distinct, valid Z85 public keys. */
#define KEY(c) "\"000000000000000000000000000000000000000" c "\""

static const char base[] =
    "protocol: humber-prevent\n"
    "version: 7\n"
    "levels: [OFFICIAL, OFFICIAL-SENSITIVE, SECRET]\n"
    "agencies:\n"
    "  hum-bcu-hull: {organisation: humberside-police, type: police, clearance: SECRET,\n"
    "                 areas: [hull], key: " KEY(
        "1") "}\n"
             "  hum-ctio-hull: {organisation: humberside-police, type: ctio, clearance: SECRET,\n"
             "                  areas: [hull], key: " KEY(
                 "2") "}\n"
                      "  hull-cc: {organisation: hull-city-council, type: local_authority,\n"
                      "            clearance: OFFICIAL-SENSITIVE, areas: [hull], key: " KEY(
                          "3") "}\n"
                               "  york-cc: {organisation: city-of-york-council, type: "
                               "local_authority,\n"
                               "            clearance: OFFICIAL-SENSITIVE, areas: [york], "
                               "key: " KEY(
                                   "4") "}\n"
                                        "  hull-college: {organisation: hull-college, type: "
                                        "education, clearance: OFFICIAL,\n"
                                        "                 areas: [hull], key: " KEY(
                                            "5") "}\n"
                                                 "rules:\n"
                                                 "  - name: safeguarding-referral\n"
                                                 "    categories: [vulnerable_individual, "
                                                 "radicalisation_concern]\n"
                                                 "    from_types: [police]\n"
                                                 "    to_types: [local_authority]\n"
                                                 "    same_area: true\n"
                                                 "    max_level: OFFICIAL-SENSITIVE\n"
                                                 "    fields:\n"
                                                 "      summary: share\n"
                                                 "      subjects.name: share\n"
                                                 "      subjects.date_of_birth: {mask: year}\n"
                                                 "      narrative: share\n"
                                                 "  - name: partner-referral\n"
                                                 "    categories: [vulnerable_individual]\n"
                                                 "    from_types: [local_authority, education]\n"
                                                 "    to_types: [police]\n"
                                                 "    same_area: true\n"
                                                 "    fields: {\"*\": share, source: deny}\n"
                                                 "  - name: bcu-feedback\n"
                                                 "    categories: [feedback]\n"
                                                 "    from_agencies: [hum-bcu-hull]\n"
                                                 "    to_types: [local_authority]\n"
                                                 "    fields: {summary: share}\n"
                                                 "screening:\n"
                                                 "  - name: prevent-screen\n"
                                                 "    feed: ctio\n"
                                                 "    to_types: [ctio]\n"
                                                 "    match: {categories: "
                                                 "[radicalisation_concern]}\n"
                                                 "    fields: {summary: share, indicators: "
                                                 "share}\n";

static cv_policy_t *load(const char *text)
{
    cv_error_t err = {0};
    cv_policy_t *policy = cv_policy_load_buffer(text, strlen(text), "test.yaml", NULL, &err);
    if (!policy)
        fail_msg("policy did not load: %s", err.msg);
    return policy;
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

static void expect_diff(const char *old_text, const char *new_text, const char *expected)
{
    cv_policy_t *old_policy = load(old_text);
    cv_policy_t *new_policy = load(new_text);
    char *diff = cv_policy_diff(old_policy, new_policy);
    assert_non_null(diff);
    assert_string_equal(diff, expected);
    free(diff);
    cv_policy_destroy(&old_policy);
    cv_policy_destroy(&new_policy);
}

/*  The diff from base to base with one edit. */
static void expect_edit(const char *from, const char *to, const char *expected)
{
    char *edited = replace_once(base, from, to);
    expect_diff(base, edited, expected);
    free(edited);
}

static void test_identical_policies(void **state)
{
    (void)state;
    expect_diff(base, base, "");
}

/*  Only the description and the file's bytes change: nothing to approve. */
static void test_cosmetic_change(void **state)
{
    (void)state;
    expect_edit("  - name: bcu-feedback\n",
                "  - name: bcu-feedback\n    description: thanks for the referral\n", "");
}

/*  hum-bcu-hull is named as an originator (bcu-feedback) but fares like any
 *  police agency here, so only the police lines appear. */
static void test_changed_mask(void **state)
{
    (void)state;
    expect_edit("subjects.date_of_birth: {mask: year}", "subjects.date_of_birth: share",
                "vulnerable_individual police -> hull-cc: "
                "~ subjects.date_of_birth (mask:year -> share)\n"
                "vulnerable_individual police -> york-cc: "
                "~ subjects.date_of_birth (mask:year -> share)\n"
                "radicalisation_concern police -> hull-cc: "
                "~ subjects.date_of_birth (mask:year -> share)\n"
                "radicalisation_concern police -> york-cc: "
                "~ subjects.date_of_birth (mask:year -> share)\n"
                "4 changes: fields 4\n");
}

static void test_removed_field(void **state)
{
    (void)state;
    expect_edit("      narrative: share\n", "",
                "vulnerable_individual police -> hull-cc: - narrative (was share)\n"
                "vulnerable_individual police -> york-cc: - narrative (was share)\n"
                "radicalisation_concern police -> hull-cc: - narrative (was share)\n"
                "radicalisation_concern police -> york-cc: - narrative (was share)\n"
                "4 changes: fields 4\n");
}

/*  Every field of source changes alike: one line names the message. */
static void test_message_reported_once(void **state)
{
    (void)state;
    const char *from = "fields: {\"*\": share, source: deny}";
    const char *to = "fields: {\"*\": share}";
    expect_edit(from, to,
                "vulnerable_individual local_authority -> hum-bcu-hull: + source (share)\n"
                "vulnerable_individual education -> hum-bcu-hull: + source (share)\n"
                "2 changes: fields 2\n");

    char *edited = replace_once(base, from, to);
    expect_diff(edited, base,
                "vulnerable_individual local_authority -> hum-bcu-hull: - source (was share)\n"
                "vulnerable_individual education -> hum-bcu-hull: - source (was share)\n"
                "2 changes: fields 2\n");
    free(edited);
}

static void test_added_rule(void **state)
{
    (void)state;
    expect_edit("screening:\n",
                "  - name: tension-to-schools\n"
                "    categories: [community_tension]\n"
                "    from_types: [police]\n"
                "    to_types: [education]\n"
                "    fields: {summary: share, tension: share, subjects.name: {mask: initials}}\n"
                "screening:\n",
                "+ rule tension-to-schools\n"
                "community_tension police -> hull-college: + subjects.name (mask:initials)\n"
                "community_tension police -> hull-college: + summary (share)\n"
                "community_tension police -> hull-college: + tension (share)\n"
                "4 changes: rules 1, fields 3\n");
}

/*  A deny added by a second rule overrides the share of the first; where
 *  nothing was shared it changes nothing a recipient sees. */
static void test_added_deny(void **state)
{
    (void)state;
    expect_edit("screening:\n",
                "  - name: no-names-to-york\n"
                "    categories: [vulnerable_individual]\n"
                "    to_agencies: [york-cc]\n"
                "    fields: {subjects.name: deny, source: deny}\n"
                "screening:\n",
                "+ rule no-names-to-york\n"
                "vulnerable_individual police -> york-cc: - subjects.name (was share)\n"
                "2 changes: rules 1, fields 1\n");
}

/*  The only ctio is the recipient, and never receives its own reports:
 *  nothing flows from ctio to it. */
static void test_no_flow_to_the_only_originator(void **state)
{
    (void)state;
    expect_edit("screening:\n",
                "  - name: to-ctio\n"
                "    categories: [feedback]\n"
                "    from_types: [ctio, police]\n"
                "    to_types: [ctio]\n"
                "    fields: {summary: share}\n"
                "screening:\n",
                "+ rule to-ctio\n"
                "feedback police -> hum-ctio-hull: + summary (share)\n"
                "2 changes: rules 1, fields 1\n");
}

/*  The field lines assume the lowest level, so a clearance or max_level
 *  change shows only as its own line. */
static void test_changed_clearance(void **state)
{
    (void)state;
    expect_edit("type: local_authority,\n            clearance: OFFICIAL-SENSITIVE, areas: [hull]",
                "type: local_authority,\n            clearance: OFFICIAL, areas: [hull]",
                "~ agency hull-cc: clearance OFFICIAL-SENSITIVE -> OFFICIAL\n"
                "1 change: agencies 1\n");
}

static void test_changed_max_level_and_same_area(void **state)
{
    (void)state;
    expect_edit("    same_area: true\n    max_level: OFFICIAL-SENSITIVE\n",
                "    max_level: SECRET\n",
                "~ rule safeguarding-referral: max_level OFFICIAL-SENSITIVE -> SECRET\n"
                "~ rule safeguarding-referral: same_area true -> false\n"
                "2 changes: rules 2\n");
}

/*  York's flows go; so does what hum-bcu-hull alone could send it. */
static void test_removed_agency(void **state)
{
    (void)state;
    expect_edit("  york-cc: {organisation: city-of-york-council, type: local_authority,\n"
                "            clearance: OFFICIAL-SENSITIVE, areas: [york], key: " KEY("4") "}\n",
                "",
                "- agency york-cc\n"
                "vulnerable_individual police -> york-cc: - subjects.name (was share)\n"
                "vulnerable_individual police -> york-cc: - subjects.date_of_birth (was "
                "mask:year)\n"
                "vulnerable_individual police -> york-cc: - summary (was share)\n"
                "vulnerable_individual police -> york-cc: - narrative (was share)\n"
                "radicalisation_concern police -> york-cc: - subjects.name (was share)\n"
                "radicalisation_concern police -> york-cc: - subjects.date_of_birth (was "
                "mask:year)\n"
                "radicalisation_concern police -> york-cc: - summary (was share)\n"
                "radicalisation_concern police -> york-cc: - narrative (was share)\n"
                "feedback hum-bcu-hull -> york-cc: - summary (was share)\n"
                "10 changes: agencies 1, fields 9\n");
}

/*  A new agency of a new type: the screening feed takes any originator. */
static void test_added_agency(void **state)
{
    (void)state;
    expect_edit("rules:\n",
                "  hmp-hull: {organisation: hmpps, type: prison, clearance: SECRET,\n"
                "             areas: [hull], key: " KEY("6") "}\n"
                                                             "rules:\n",
                "+ agency hmp-hull (prison, SECRET)\n"
                "feed ctio prison -> hum-ctio-hull: + summary (share)\n"
                "feed ctio prison -> hum-ctio-hull: + indicators (share)\n"
                "3 changes: agencies 1, fields 2\n");
}

static void test_changed_agency(void **state)
{
    (void)state;
    expect_edit("clearance: OFFICIAL-SENSITIVE, areas: [york], key: " KEY("4"),
                "clearance: OFFICIAL-SENSITIVE, areas: [york, selby], key: " KEY("7"),
                "~ agency york-cc: areas york -> york, selby\n"
                "~ agency york-cc: key changed\n"
                "2 changes: agencies 2\n");
}

/*  Areas are a set: reordering them changes nothing. */
static void test_reordered_areas(void **state)
{
    (void)state;
    char *before = replace_once(base, "areas: [york]", "areas: [york, selby]");
    char *after = replace_once(base, "areas: [york]", "areas: [selby, york]");
    expect_diff(before, after, "");
    free(before);
    free(after);
}

/*  A rule naming one originator: lines under its id, not its type. */
static void test_named_originator(void **state)
{
    (void)state;
    expect_edit("fields: {summary: share}\nscreening",
                "fields: {summary: share, narrative: share}\nscreening",
                "feedback hum-bcu-hull -> hull-cc: + narrative (share)\n"
                "feedback hum-bcu-hull -> york-cc: + narrative (share)\n"
                "2 changes: fields 2\n");
}

static void test_changed_version(void **state)
{
    (void)state;
    expect_edit("version: 7", "version: 8", "~ version 7 -> 8\n1 change: protocol 1\n");
}

/*  Levels are ordered: the whole list, once. An entry without max_level
 *  goes up to the highest level, so it now carries more. */
static void test_changed_levels(void **state)
{
    (void)state;
    expect_edit("levels: [OFFICIAL, OFFICIAL-SENSITIVE, SECRET]",
                "levels: [OFFICIAL, OFFICIAL-SENSITIVE, SECRET, TOP-SECRET]",
                "~ levels [OFFICIAL, OFFICIAL-SENSITIVE, SECRET] -> [OFFICIAL, "
                "OFFICIAL-SENSITIVE, SECRET, TOP-SECRET]\n"
                "~ rule partner-referral: max_level SECRET -> TOP-SECRET\n"
                "~ rule bcu-feedback: max_level SECRET -> TOP-SECRET\n"
                "~ screening prevent-screen: max_level SECRET -> TOP-SECRET\n"
                "4 changes: levels 1, rules 2, screening 1\n");
}

static void test_added_category(void **state)
{
    (void)state;
    expect_edit("agencies:\n",
                "categories: [vulnerable_individual, radicalisation_concern, venue_of_concern,\n"
                "  community_tension, critical_incident, grievance, intervention_review,\n"
                "  prison_intelligence, feedback, hate_crime]\n"
                "agencies:\n",
                "+ category hate_crime\n1 change: categories 1\n");
}

/*  A retention period alone is a change, like any other. */
static void test_changed_retention(void **state)
{
    (void)state;
    char *before = NULL, *after = NULL;
    assert_true(asprintf(&before, "%sretention: {feedback: 1y, grievance: 2y}\n", base) > 0);
    assert_true(asprintf(&after, "%sretention: {feedback: 2y, default: 90d}\n", base) > 0);
    expect_diff(before, after,
                "- retention grievance (was 2y)\n"
                "~ retention feedback: 1y -> 2y\n"
                "+ retention default: 90d\n"
                "3 changes: retention 3\n");
    free(before);
    free(after);
}

/*  Types are a set: their order changes nothing. */
static void test_changed_handling_codes(void **state)
{
    (void)state;
    char *before = NULL, *after = NULL;
    assert_true(asprintf(&before,
                         "%shandling_codes:\n"
                         "  \"1\": {to_types: [police, ctio]}\n"
                         "  \"2\": {to_types: [police], to_agencies: [hull-cc]}\n"
                         "  \"5\": {originator_approval: true}\n",
                         base) > 0);
    assert_true(asprintf(&after,
                         "%shandling_codes:\n"
                         "  \"1\": {to_types: [ctio, police]}\n"
                         "  \"2\": {to_types: [police], same_organisation: true}\n"
                         "  \"4\": {same_organisation: true}\n",
                         base) > 0);
    expect_diff(before, after,
                "~ handling code 2: to_types [police] to_agencies [hull-cc] -> to_types [police] "
                "to_agencies [], same_organisation\n"
                "- handling code 5\n"
                "+ handling code 4: same_organisation\n"
                "3 changes: handling codes 3\n");
    free(before);
    free(after);
}

/*  Agencies in another order intern their types in another order: the
 *  codes naming them are still the same. */
static void test_reordered_agencies(void **state)
{
    (void)state;
    static const char codes[] = "handling_codes:\n"
                                "  \"1\": {to_types: [police, local_authority, education]}\n";
    static const char college[] = "  hull-college: {organisation: hull-college, type: education, "
                                  "clearance: OFFICIAL,\n"
                                  "                 areas: [hull], key: " KEY("5") "}\n";
    char *moved = replace_once(base, college, "");
    char *first = replace_once(moved, "agencies:\n",
                               "agencies:\n  hull-college: {organisation: "
                               "hull-college, type: education, clearance: "
                               "OFFICIAL, areas: [hull], key: " KEY("5") "}\n");
    char *before = NULL, *after = NULL;
    assert_true(asprintf(&before, "%s%s", base, codes) > 0);
    assert_true(asprintf(&after, "%s%s", first, codes) > 0);
    expect_diff(before, after, "");
    free(moved);
    free(first);
    free(before);
    free(after);
}

static void test_removed_rule(void **state)
{
    (void)state;
    expect_edit("  - name: bcu-feedback\n"
                "    categories: [feedback]\n"
                "    from_agencies: [hum-bcu-hull]\n"
                "    to_types: [local_authority]\n"
                "    fields: {summary: share}\n",
                "",
                "- rule bcu-feedback\n"
                "feedback hum-bcu-hull -> hull-cc: - summary (was share)\n"
                "feedback hum-bcu-hull -> york-cc: - summary (was share)\n"
                "3 changes: rules 1, fields 2\n");
}

/*  The field lines assume a report the entry matches: what it matches is
 *  a line of its own. */
static void test_changed_screening(void **state)
{
    (void)state;
    expect_edit("    feed: ctio\n    to_types: [ctio]\n    match: {categories: "
                "[radicalisation_concern]}\n",
                "    feed: ctio\n    to_types: [ctio]\n    match: {categories: "
                "[radicalisation_concern], keywords: [knife]}\n",
                "~ screening prevent-screen: match categories [radicalisation_concern] "
                "indicators [] keywords [] -> categories [radicalisation_concern] indicators [] "
                "keywords [knife]\n"
                "1 change: screening 1\n");
}

/* ------------------------------------------------------------------------ */
/*  Restrictions.                                                           */

static const char restriction[] = "restrictions:\n"
                                  "  - name: narrative-stays-with-police\n"
                                  "    categories: [vulnerable_individual]\n"
                                  "    from_types: [police]\n"
                                  "    except_to_types: [police, ctio]\n"
                                  "    fields: {narrative: deny}\n";

static char *with_restriction(const char *from, const char *to)
{
    char *text = malloc(sizeof base + sizeof restriction);
    assert_non_null(text);
    snprintf(text, sizeof base + sizeof restriction, "%s%s", base, restriction);
    if (!from)
        return text;
    char *edited = replace_once(text, from, to);
    free(text);
    return edited;
}

/*  A new restriction is a line of its own, and the fields it caps show in
 *  the flows it applies to (the councils', not the CTIO's). */
static void test_added_restriction(void **state)
{
    (void)state;
    char *after = with_restriction(NULL, NULL);
    expect_diff(base, after,
                "+ restriction narrative-stays-with-police\n"
                "vulnerable_individual police -> hull-cc: - narrative (was share)\n"
                "vulnerable_individual police -> york-cc: - narrative (was share)\n"
                "3 changes: restrictions 1, fields 2\n");
    free(after);
}

static void test_removed_restriction(void **state)
{
    (void)state;
    char *before = with_restriction(NULL, NULL);
    expect_diff(before, base,
                "- restriction narrative-stays-with-police\n"
                "vulnerable_individual police -> hull-cc: + narrative (share)\n"
                "vulnerable_individual police -> york-cc: + narrative (share)\n"
                "3 changes: restrictions 1, fields 2\n");
    free(before);
}

/*  Each part that changed is a line, named by the restriction. */
static void test_changed_restriction(void **state)
{
    (void)state;
    char *before = with_restriction(NULL, NULL);
    char *after =
        with_restriction("    categories: [vulnerable_individual]\n"
                         "    from_types: [police]\n"
                         "    except_to_types: [police, ctio]\n"
                         "    fields: {narrative: deny}\n",
                         "    categories: [radicalisation_concern, vulnerable_individual]\n"
                         "    from_types: [police]\n"
                         "    except_to_types: [police]\n"
                         "    fields: {narrative: deny, subjects.date_of_birth: deny}\n");
    expect_diff(
        before, after,
        "~ restriction narrative-stays-with-police: categories [vulnerable_individual] -> "
        "categories [radicalisation_concern, vulnerable_individual]\n"
        "~ restriction narrative-stays-with-police: except_to_types [ctio, police] "
        "except_to_agencies [] -> except_to_types [police] except_to_agencies []\n"
        "~ restriction narrative-stays-with-police: fields {narrative: deny} -> fields "
        "{subjects.date_of_birth: deny, narrative: deny}\n"
        "vulnerable_individual police -> hull-cc: - subjects.date_of_birth (was mask:year)\n"
        "vulnerable_individual police -> york-cc: - subjects.date_of_birth (was mask:year)\n"
        "radicalisation_concern police -> hull-cc: - subjects.date_of_birth (was "
        "mask:year)\n"
        "radicalisation_concern police -> hull-cc: - narrative (was share)\n"
        "radicalisation_concern police -> york-cc: - subjects.date_of_birth (was "
        "mask:year)\n"
        "radicalisation_concern police -> york-cc: - narrative (was share)\n"
        "9 changes: restrictions 3, fields 6\n");
    free(before);
    free(after);
}

/*  Every field alike is "*", as written. */
static void test_restriction_of_every_field(void **state)
{
    (void)state;
    char *before = with_restriction(NULL, NULL);
    char *after =
        with_restriction("    fields: {narrative: deny}\n", "    fields: {\"*\": deny}\n");
    expect_diff(
        before, after,
        "~ restriction narrative-stays-with-police: fields {narrative: deny} -> fields "
        "{*: deny}\n"
        "vulnerable_individual police -> hull-cc: - subjects.name (was share)\n"
        "vulnerable_individual police -> hull-cc: - subjects.date_of_birth (was mask:year)\n"
        "vulnerable_individual police -> hull-cc: - summary (was share)\n"
        "vulnerable_individual police -> york-cc: - subjects.name (was share)\n"
        "vulnerable_individual police -> york-cc: - subjects.date_of_birth (was mask:year)\n"
        "vulnerable_individual police -> york-cc: - summary (was share)\n"
        "7 changes: restrictions 1, fields 6\n");
    free(before);
    free(after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_policies),
        cmocka_unit_test(test_cosmetic_change),
        cmocka_unit_test(test_changed_mask),
        cmocka_unit_test(test_removed_field),
        cmocka_unit_test(test_message_reported_once),
        cmocka_unit_test(test_added_rule),
        cmocka_unit_test(test_added_deny),
        cmocka_unit_test(test_no_flow_to_the_only_originator),
        cmocka_unit_test(test_changed_clearance),
        cmocka_unit_test(test_changed_max_level_and_same_area),
        cmocka_unit_test(test_removed_agency),
        cmocka_unit_test(test_added_agency),
        cmocka_unit_test(test_changed_agency),
        cmocka_unit_test(test_reordered_areas),
        cmocka_unit_test(test_named_originator),
        cmocka_unit_test(test_changed_version),
        cmocka_unit_test(test_changed_levels),
        cmocka_unit_test(test_added_category),
        cmocka_unit_test(test_changed_retention),
        cmocka_unit_test(test_changed_handling_codes),
        cmocka_unit_test(test_reordered_agencies),
        cmocka_unit_test(test_removed_rule),
        cmocka_unit_test(test_changed_screening),
        cmocka_unit_test(test_added_restriction),
        cmocka_unit_test(test_removed_restriction),
        cmocka_unit_test(test_changed_restriction),
        cmocka_unit_test(test_restriction_of_every_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
