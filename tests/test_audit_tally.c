/*  What `caveat audit summary` and `sample` make of approval leaves
 *  (client/audit_tally.c, audit_leaf_print.c), from leaves written here:
 *
 *  - a release by approval counts under the organisation of each agency
 *    released, once per report and organisation whichever way it went;
 *  - an approval leaf of the earlier form (report, originator, to and
 *    released alone) still counts: under the category and organisations
 *    the report's accepted leaf names, else under the agency, and a
 *    sample shows the agencies it released;
 *  - with --since, a report counts in the period an organisation first
 *    had it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_leaf_print.h"
#include "audit_tally.h"

#define BEFORE 1796083200000 /* 2026-12-01 */
#define AFTER  1796256000000 /* 2026-12-03 */
#define SINCE  1796169600000 /* 2026-12-02 */

/*  A report of hum-bcu-hull accepted at time: delivered to hum-sb
 *  (humberside-police), held for hull-cc (hull-city-council). */
static void accepted(char *leaf, size_t size, const char *id, uint64_t time)
{
    snprintf(leaf, size,
             "{\"event\":\"accepted\",\"time\":%llu,\"report\":\"%s\","
             "\"originator\":\"hum-bcu-hull\",\"category\":\"vulnerable_individual\","
             "\"to\":[{\"agency\":\"hum-sb\",\"organisation\":\"humberside-police\","
             "\"delivered\":true,\"rules\":[\"r\"],\"view\":0},"
             "{\"agency\":\"hull-cc\",\"organisation\":\"hull-city-council\","
             "\"delivered\":false,\"rules\":[],\"reasons\":[\"handling code 5\"]}],"
             "\"views\":[{}]}",
             (unsigned long long)time, id);
}

/*  The earlier form: agencies' ids alone. */
static void old_approval(char *leaf, size_t size, const char *id, const char *agency, uint64_t time)
{
    snprintf(leaf, size,
             "{\"event\":\"approval\",\"time\":%llu,\"report\":\"%s\","
             "\"originator\":\"hum-bcu-hull\",\"to\":\"%s\",\"released\":[\"%s\"]}",
             (unsigned long long)time, id, agency, agency);
}

/*  caveatd's form: category, and each agency with its organisation. */
static void approval(char *leaf, size_t size, const char *id, const char *agency,
                     const char *organisation, uint64_t time)
{
    snprintf(leaf, size,
             "{\"event\":\"approval\",\"time\":%llu,\"report\":\"%s\","
             "\"originator\":\"hum-bcu-hull\",\"to\":\"%s\",\"category\":\"vulnerable_individual\","
             "\"recipients\":[{\"agency\":\"%s\",\"organisation\":\"%s\",\"delivered\":true,"
             "\"rules\":[\"r\"],\"view\":0}],\"released\":[\"%s\"],\"views\":[{}]}",
             (unsigned long long)time, id, agency, agency, organisation, agency);
}

/*  The summary's JSON of leaves[0..n), tallied as the command does. */
static char *summary(char leaves[][1024], size_t n, uint64_t since)
{
    audit_tally_t *t = audit_tally_new(since);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++)
        audit_tally_expect(t, leaves[i], strlen(leaves[i]));
    for (size_t i = 0; i < n; i++)
        audit_tally_add(t, leaves[i], strlen(leaves[i]));
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    audit_tally_json(t, out);
    assert_int_equal(fclose(out), 0);
    audit_tally_destroy(&t);
    return text;
}

static void assert_counts(const char *json, const char *category, const char *organisation,
                          int reports)
{
    char row[512];
    snprintf(row, sizeof row,
             "\"category\": \"%s\",\n      \"organisation\": \"%s\",\n      \"reports\": %d\n",
             category, organisation, reports);
    if (!strstr(json, row))
        fail_msg("no row %s, %s: %d in\n%s", category, organisation, reports, json);
}

static void test_an_approval_of_the_earlier_form_counts(void **state)
{
    (void)state;
    char leaves[4][1024];
    accepted(leaves[0], sizeof leaves[0], "R-1", BEFORE);
    old_approval(leaves[1], sizeof leaves[1], "R-1", "hull-cc", BEFORE);
    /* an agency the accepted leaf does not name: under its id */
    old_approval(leaves[2], sizeof leaves[2], "R-1", "ne-ctu", BEFORE);
    /* a report whose accepted leaf is not in the log */
    old_approval(leaves[3], sizeof leaves[3], "R-2", "hull-cc", BEFORE);
    char *json = summary(leaves, 4, 0);
    assert_counts(json, "vulnerable_individual", "humberside-police", 1);
    assert_counts(json, "vulnerable_individual", "hull-city-council", 1);
    assert_counts(json, "vulnerable_individual", "ne-ctu", 1);
    assert_counts(json, AUDIT_TALLY_UNRECORDED, "hull-cc", 1);
    assert_non_null(strstr(json, "\"accepted\": 1,\n  \"shared\": 2,"));
    free(json);
}

/*  An organisation given the report at acceptance and again by approval
 *  (another of its agencies), or by two approvals, counts once. */
static void test_an_organisation_counts_once_however_it_had_the_report(void **state)
{
    (void)state;
    char leaves[4][1024];
    accepted(leaves[0], sizeof leaves[0], "R-1", BEFORE);
    approval(leaves[1], sizeof leaves[1], "R-1", "hum-ctio-hull", "humberside-police", BEFORE);
    approval(leaves[2], sizeof leaves[2], "R-1", "hull-cc", "hull-city-council", BEFORE);
    old_approval(leaves[3], sizeof leaves[3], "R-1", "hull-cc", BEFORE);
    char *json = summary(leaves, 4, 0);
    assert_counts(json, "vulnerable_individual", "humberside-police", 1);
    assert_counts(json, "vulnerable_individual", "hull-city-council", 1);
    assert_null(strstr(json, "\"hull-cc\""));
    assert_non_null(strstr(json, "\"accepted\": 1,\n  \"shared\": 1,"));
    free(json);
}

/*  Accepted before the period, released by approval in it: the new
 *  organisation counts in the period, the one it had before does not. */
static void test_a_release_counts_in_the_period_it_was_made(void **state)
{
    (void)state;
    char leaves[3][1024];
    accepted(leaves[0], sizeof leaves[0], "R-1", BEFORE);
    approval(leaves[1], sizeof leaves[1], "R-1", "hum-ctio-hull", "humberside-police", AFTER);
    approval(leaves[2], sizeof leaves[2], "R-1", "hull-cc", "hull-city-council", AFTER);
    char *json = summary(leaves, 3, SINCE);
    assert_counts(json, "vulnerable_individual", "hull-city-council", 1);
    assert_null(strstr(json, "humberside-police"));
    assert_non_null(strstr(json, "\"accepted\": 0,\n  \"shared\": 1,"));
    free(json);
    /* and the period before: the acceptance alone */
    json = summary(leaves, 1, 0);
    assert_counts(json, "vulnerable_individual", "humberside-police", 1);
    assert_null(strstr(json, "hull-city-council"));
    free(json);
}

/*  A sample shows the agencies an approval of the earlier form released,
 *  and says that its leaf names no fields. */
static void test_a_sample_shows_an_approval_of_the_earlier_form(void **state)
{
    (void)state;
    char leaf[1024], *text = NULL;
    size_t len = 0;
    old_approval(leaf, sizeof leaf, "R-1", "hull-cc", BEFORE);
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    audit_leaf_print_approval(out, 7, leaf, strlen(leaf));
    assert_int_equal(fclose(out), 0);
    assert_string_equal(text,
                        "  approval at leaf 7, 2026-12-01T00:00:00Z, to hull-cc, released it "
                        "to:\n  hull-cc: delivered (its leaf, of an earlier caveatd, names no "
                        "rules and no fields)\n");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_approval_of_the_earlier_form_counts),
        cmocka_unit_test(test_an_organisation_counts_once_however_it_had_the_report),
        cmocka_unit_test(test_a_release_counts_in_the_period_it_was_made),
        cmocka_unit_test(test_a_sample_shows_an_approval_of_the_earlier_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
