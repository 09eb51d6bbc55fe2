/*  test_policy_lint.c: warnings about policies that load but probably do
 *  not say what their author meant (policy/cv_policy_lint.c).
 *
 *  Each test compares the whole list of warnings, positions included: a
 *  missing warning and an extra one are both failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_policy.h"

/*  Distinct, valid Z85 public keys. */
#define KEY(c) "\"000000000000000000000000000000000000000" c "\""

/* clang-format off */
/*  Lines 1-8. */
#define AGENCIES                                                                                   \
    "protocol: p\n"                                                            /* 1 */             \
    "version: 1\n"                                                             /* 2 */             \
    "levels: [OFFICIAL, OFFICIAL-SENSITIVE, SECRET]\n"                         /* 3 */             \
    "agencies:\n"                                                              /* 4 */             \
    "  police: {organisation: o1, type: police, clearance: SECRET, areas: [hull], key: " KEY("1") "}\n" \
    "  ctio: {organisation: o1, type: ctio, clearance: SECRET, areas: [hull], key: " KEY("2") "}\n" \
    "  council: {organisation: o2, type: local_authority, clearance: OFFICIAL, areas: [hull], key: " KEY("3") "}\n" \
    "  college: {organisation: o3, type: education, clearance: OFFICIAL, areas: [hull], key: " KEY("4") "}\n"

/*  Lines 9-14: one broad rule. */
#define BROAD                                                                                      \
    "rules:\n"                                                                 /* 9 */             \
    "  - name: broad\n"                                                        /* 10 */            \
    "    categories: [vulnerable_individual, feedback]\n"                      /* 11 */            \
    "    from_types: [police]\n"                                               /* 12 */            \
    "    to_types: [local_authority, education]\n"                             /* 13 */            \
    "    fields: {summary: share, narrative: share, subjects.name: {mask: initials}}\n" /* 14 */
/* clang-format on */

typedef struct {
    char text[4096];
} lines_t;

static void collect(const char *warning, void *arg)
{
    lines_t *lines = arg;
    size_t used = strlen(lines->text);
    snprintf(lines->text + used, sizeof lines->text - used, "%s\n", warning);
}

/*  Loads text and compares its warnings, one per line, with expected. */
static void expect_warnings(const char *text, const char *expected)
{
    cv_error_t err = {0};
    cv_policy_t *policy = cv_policy_load_buffer(text, strlen(text), "p.yaml", NULL, &err);
    if (!policy)
        fail_msg("policy did not load: %s", err.msg);
    lines_t lines = {""};
    int count = cv_policy_lint(policy, text, strlen(text), collect, &lines);
    assert_string_equal(lines.text, expected);
    int expected_count = 0;
    for (const char *c = expected; *c; c++)
        expected_count += *c == '\n';
    assert_int_equal(count, expected_count);
    cv_policy_destroy(&policy);
}

static void test_clean_policy(void **state)
{
    (void)state;
    expect_warnings(AGENCIES BROAD, "");
}

/*  An entry that only denies never delivers; a notice (fields: {}) does,
 *  on purpose, and one deny among shares is an ordinary restriction. */
static void test_all_deny(void **state)
{
    (void)state;
    expect_warnings(AGENCIES BROAD "  - name: only-denies\n"       /* 15 */
                                   "    categories: [grievance]\n" /* 16 */
                                   "    to_types: [police]\n"      /* 17 */
                                   "    fields: {summary: deny, subjects: deny}\n"
                                   "  - name: notice\n"
                                   "    categories: [grievance]\n"
                                   "    to_types: [ctio]\n"
                                   "    fields: {}\n"
                                   "  - name: mixed\n"
                                   "    categories: [grievance]\n"
                                   "    to_types: [local_authority]\n"
                                   "    fields: {summary: share, subjects: deny}\n",
                    "p.yaml:15:5: warning: rule 'only-denies': every field is deny: it can never "
                    "deliver a report, only withhold fields that other entries grant\n");
}

/*  A restriction whose recipients are all excepted, or whose only
 *  originator is its only recipient, can never apply; one that names
 *  deliveries does not warn. */
static void test_restriction_never_applies(void **state)
{
    (void)state;
    expect_warnings(AGENCIES BROAD "restrictions:\n"                            /* 15 */
                                   "  - name: applies\n"                        /* 16 */
                                   "    to_types: [education]\n"                /* 17 */
                                   "    fields: {narrative: deny}\n"            /* 18 */
                                   "  - name: all-excepted\n"                   /* 19 */
                                   "    to_types: [education, police]\n"        /* 20 */
                                   "    except_to_types: [police, education]\n" /* 21 */
                                   "    fields: {narrative: deny}\n"            /* 22 */
                                   "  - name: to-itself\n"                      /* 23 */
                                   "    from_agencies: [college]\n"             /* 24 */
                                   "    to_agencies: [college]\n"               /* 25 */
                                   "    fields: {narrative: deny}\n",           /* 26 */
                    "p.yaml:19:5: warning: restriction 'all-excepted' can never apply: its to_* "
                    "and except_to_* leave no recipient\n"
                    "p.yaml:23:5: warning: restriction 'to-itself' can never apply: its from_* "
                    "name no agency that could send to a recipient it names\n");
}

#define SHADOWED(name, by)                                                                         \
    "p.yaml:15:5: warning: rule '" name "' is shadowed by rule '" by "': that one matches every "  \
    "delivery this one matches and already gives each field as much protection\n"

/*  Narrower on every side and granting nothing the broad rule does not:
 *  the broad rule decides every delivery it would. */
static void test_shadowed(void **state)
{
    (void)state;
    expect_warnings(AGENCIES BROAD "  - name: narrow\n" /* 15 */
                                   "    categories: [feedback]\n"
                                   "    from_types: [police]\n"
                                   "    to_agencies: [council]\n"
                                   "    same_area: true\n"
                                   "    max_level: OFFICIAL\n"
                                   "    fields: {summary: share, subjects.name: share}\n",
                    SHADOWED("narrow", "broad"));
}

/*  What makes an entry matter: one more field, a wider side, a higher cap. */
static void test_not_shadowed(void **state)
{
    (void)state;
    static const char *const tails[] = {
        "    categories: [feedback]\n    from_types: [police]\n    to_types: [local_authority]\n"
        "    fields: {summary: share, location: share}\n",
        "    categories: [feedback, grievance]\n    from_types: [police]\n"
        "    to_types: [local_authority]\n    fields: {summary: share}\n",
        "    categories: [feedback]\n    to_types: [local_authority]\n"
        "    fields: {summary: share}\n",
        "    categories: [feedback]\n    from_types: [police]\n    to_types: [ctio]\n"
        "    fields: {summary: share}\n",
    };
    for (size_t i = 0; i < sizeof tails / sizeof *tails; i++) {
        char text[4096];
        snprintf(text, sizeof text, "%s  - name: other\n%s", AGENCIES BROAD, tails[i]);
        expect_warnings(text, "");
    }
    /* a lower max_level shadows nothing with a higher one, but is shadowed */
    expect_warnings(AGENCIES "rules:\n"
                             "  - name: capped\n" /* 10 */
                             "    categories: [feedback]\n"
                             "    to_types: [local_authority]\n"
                             "    max_level: OFFICIAL\n"
                             "    fields: {summary: share}\n"
                             "  - name: uncapped\n"
                             "    categories: [feedback]\n"
                             "    to_types: [local_authority]\n"
                             "    fields: {summary: share}\n",
                    "p.yaml:10:5: warning: rule 'capped' is shadowed by rule 'uncapped': that one "
                    "matches every delivery this one matches and already gives each field as much "
                    "protection\n");
    /* nor does a rule limited to the same area shadow one that is not */
    expect_warnings(AGENCIES "rules:\n"
                             "  - name: local\n" /* 10 */
                             "    categories: [feedback]\n"
                             "    to_types: [local_authority]\n"
                             "    same_area: true\n"
                             "    fields: {summary: share}\n"
                             "  - name: anywhere\n"
                             "    categories: [feedback]\n"
                             "    to_types: [local_authority]\n"
                             "    fields: {summary: share}\n",
                    "p.yaml:10:5: warning: rule 'local' is shadowed by rule 'anywhere': that one "
                    "matches every delivery this one matches and already gives each field as much "
                    "protection\n");
    /* narrower by same_area alone: still shadowed */
    expect_warnings(AGENCIES BROAD "  - name: other\n"
                                   "    categories: [feedback]\n"
                                   "    from_types: [police]\n"
                                   "    to_types: [local_authority]\n"
                                   "    same_area: true\n"
                                   "    fields: {summary: share}\n",
                    SHADOWED("other", "broad"));
}

/*  Two identical entries: only the later one is reported. */
static void test_duplicate_entry(void **state)
{
    (void)state;
    expect_warnings(AGENCIES BROAD "  - name: copy\n"
                                   "    categories: [vulnerable_individual, feedback]\n"
                                   "    from_types: [police]\n"
                                   "    to_types: [local_authority, education]\n"
                                   "    fields: {summary: share, narrative: share, "
                                   "subjects.name: {mask: initials}}\n",
                    SHADOWED("copy", "broad"));
}

/*  Screening entries shadow only entries of the same feed. */
static void test_screening(void **state)
{
    (void)state;
    static const char screens[] = AGENCIES BROAD "screening:\n"   /* 15 */
                                                 "  - name: s1\n" /* 16 */
                                                 "    feed: ctio\n"
                                                 "    to_types: [ctio]\n"
                                                 "    match: {categories: [grievance], keywords: "
                                                 "[knife, gun]}\n"
                                                 "    fields: {\"*\": share}\n"
                                                 "  - name: s2\n" /* 21 */
                                                 "    feed: ctio\n"
                                                 "    to_types: [ctio]\n"
                                                 "    match: {keywords: [knife]}\n"
                                                 "    fields: {summary: share}\n"
                                                 "  - name: s3\n"
                                                 "    feed: other\n"
                                                 "    to_types: [ctio]\n"
                                                 "    match: {keywords: [knife]}\n"
                                                 "    fields: {summary: share}\n";
    expect_warnings(screens, "p.yaml:21:5: warning: screening 's2' is shadowed by screening "
                             "'s1': that one matches every delivery this one matches and "
                             "already gives each field as much protection\n");
}

/*  Levels are lowest first: a well-known higher marking before a lower one
 *  is probably a reversed list. */
static void test_reversed_levels(void **state)
{
    (void)state;
    static const struct {
        const char *levels;
        const char *warning;
    } cases[] = {
        {"[SECRET, OFFICIAL-SENSITIVE, OFFICIAL]",
         "p.yaml:3:10: warning: levels: 'SECRET' is listed before 'OFFICIAL-SENSITIVE', but "
         "levels are listed lowest first\n"},
        {"[OFFICIAL, TOP SECRET, SECRET]",
         "p.yaml:3:20: warning: levels: 'TOP SECRET' is listed before 'SECRET', but levels are "
         "listed lowest first\n"},
        {"[official, official_sensitive, secret]", ""},
        {"[UK TOP SECRET STRAP1, UK OFFICIAL]",
         "p.yaml:3:10: warning: levels: 'UK TOP SECRET STRAP1' is listed before 'UK OFFICIAL', "
         "but levels are listed lowest first\n"},
        {"[OFFICIAL-SENSITIVE, OFFICIAL]",
         "p.yaml:3:10: warning: levels: 'OFFICIAL-SENSITIVE' is listed before 'OFFICIAL', but "
         "levels are listed lowest first\n"},
        {"[NOTSECRET, OFFICIAL]", ""},
        {"[GREEN, AMBER, RED]", ""},
        {"[HIGH, LOW]", "p.yaml:3:10: warning: levels: 'HIGH' is listed before 'LOW', but "
                        "levels are listed lowest first\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[1024];
        /* the last level is everyone's clearance */
        const char *last = strrchr(cases[i].levels, ',') + 2;
        snprintf(
            text, sizeof text,
            "protocol: p\nversion: 1\nlevels: %s\nagencies:\n"
            "  a: {organisation: o, type: t, clearance: \"%.*s\", areas: [x], key: " KEY("1") "}\n",
            cases[i].levels, (int)strlen(last) - 1, last);
        expect_warnings(text, cases[i].warning);
    }
}

/*  With a handling code that waits for the originator's approval, an
 *  agency named as a type (police, here) is ambiguous to an approval: one
 *  to "police" would approve every police agency. Without such a code the
 *  name is harmless and not warned of (test_clean_policy). */
static void test_an_approval_name_shared_with_a_type(void **state)
{
    (void)state;
    expect_warnings(AGENCIES BROAD "handling_codes:\n"                       /* 15 */
                                   "  \"5\": {originator_approval: true}\n", /* 16 */
                    "p.yaml:5:3: warning: agency 'police' has the name of an agency type: an "
                    "approval of a held report to 'police' releases it to every agency of that "
                    "type too\n"
                    "p.yaml:6:3: warning: agency 'ctio' has the name of an agency type: an "
                    "approval of a held report to 'ctio' releases it to every agency of that "
                    "type too\n");
}

/*  Without the text there are no positions, but the same warnings. */
static void test_without_text(void **state)
{
    (void)state;
    static const char text[] = AGENCIES BROAD "  - name: d\n"
                                              "    categories: [grievance]\n"
                                              "    to_types: [police]\n"
                                              "    fields: {summary: deny}\n";
    cv_policy_t *policy = cv_policy_load_buffer(text, strlen(text), "p.yaml", NULL, NULL);
    assert_non_null(policy);
    lines_t lines = {""};
    assert_int_equal(cv_policy_lint(policy, NULL, 0, collect, &lines), 1);
    assert_string_equal(lines.text, "p.yaml: warning: rule 'd': every field is deny: it can never "
                                    "deliver a report, only withhold fields that other entries "
                                    "grant\n");
    cv_policy_destroy(&policy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_policy),
        cmocka_unit_test(test_restriction_never_applies),
        cmocka_unit_test(test_all_deny),
        cmocka_unit_test(test_shadowed),
        cmocka_unit_test(test_not_shadowed),
        cmocka_unit_test(test_duplicate_entry),
        cmocka_unit_test(test_screening),
        cmocka_unit_test(test_reversed_levels),
        cmocka_unit_test(test_without_text),
        cmocka_unit_test(test_an_approval_name_shared_with_a_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
