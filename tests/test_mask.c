/*  test_mask.c: the masks a rule may put on a field (policy/cv_mask.c).
 *
 *  Each string mask returns a new string or NULL when the value lacks the
 *  shape the mask needs; NULL means the caller withholds the value, so the
 *  edge cases below are as much about what must NOT come out as what must.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "policy_internal.h"

/*  Asserts that mask(value) gives expected; expected NULL means withheld.
 *  Frees before failing so that a failure reports no leak of its own. */
static void check_mask(char *(*mask)(const char *), const char *value, const char *expected)
{
    char *got = mask(value);
    char text[80] = "(withheld)";
    if (got)
        snprintf(text, sizeof text, "'%s'", got);
    bool ok = expected ? got && strcmp(got, expected) == 0 : !got;
    free(got);
    if (!ok)
        fail_msg("mask of '%s': expected '%s', got %s", value, expected ? expected : "(withheld)",
                 text);
}

/* ------------------------------------------------------------------------ */

static void test_year(void **state)
{
    (void)state;
    check_mask(cv_mask_year, "2009-04-01", "2009");
    check_mask(cv_mask_year, "2026-11-20T09:30:00Z", "2026");
    check_mask(cv_mask_year, "209", NULL);
    check_mask(cv_mask_year, "", NULL);
    check_mask(cv_mask_year, "April 2009", NULL);
    check_mask(cv_mask_year, "20x9-04-01", NULL);
}

static void test_postcode_district(void **state)
{
    (void)state;
    check_mask(cv_mask_postcode_district, "HU3 2AB", "HU3");
    check_mask(cv_mask_postcode_district, "hu3 2ab", "HU3");
    check_mask(cv_mask_postcode_district, "HU32AB", "HU3");
    check_mask(cv_mask_postcode_district, "SW1A 1AA", "SW1A");
    check_mask(cv_mask_postcode_district, "SW1A1AA", "SW1A");
    check_mask(cv_mask_postcode_district, "M1 1AE", "M1");
    check_mask(cv_mask_postcode_district, " HU3 2AB ", "HU3");
    check_mask(cv_mask_postcode_district, "not a postcode", NULL);
    check_mask(cv_mask_postcode_district, "", NULL);
    check_mask(cv_mask_postcode_district, "   ", NULL);
    check_mask(cv_mask_postcode_district, "HU3", NULL);
    check_mask(cv_mask_postcode_district, "HU3 2AB 7", NULL);
    check_mask(cv_mask_postcode_district, "HU3-2AB", NULL);
}

/*  Semantics 6: "a value not shaped like a UK postcode is withheld". Short
 *  free text must not leak its first letters as a "district". */
static void test_postcode_district_rejects_non_postcodes(void **state)
{
    (void)state;
    check_mask(cv_mask_postcode_district, "Smith", NULL);
    check_mask(cv_mask_postcode_district, "HELLO", NULL);
    check_mask(cv_mask_postcode_district, "12 345", NULL);
    check_mask(cv_mask_postcode_district, "ABC DEF", NULL);
}

static void test_initials(void **state)
{
    (void)state;
    check_mask(cv_mask_initials, "Jane Doe", "J. D.");
    check_mask(cv_mask_initials, "jane  mary doe", "j. m. d.");
    check_mask(cv_mask_initials, "  Jane\tDoe  ", "J. D.");
    check_mask(cv_mask_initials, "Madonna", "M.");
    /* a multi-byte first letter is kept whole, never cut mid-sequence */
    check_mask(cv_mask_initials, "\xc3\x89mile Zola", "\xc3\x89. Z.");
    check_mask(cv_mask_initials, "\xc3\xa9mile \xc5\xbb\xc3\xb3\xc5\x82w", "\xc3\xa9. \xc5\xbb.");
    check_mask(cv_mask_initials, "", NULL);
    check_mask(cv_mask_initials, "   ", NULL);
}

static void assert_near(double got, double expected)
{
    if (fabs(got - expected) > 1e-9)
        fail_msg("expected %.10f, got %.10f", expected, got);
}

static void test_round_1km(void **state)
{
    (void)state;
    assert_near(cv_mask_round_1km(53.7443), 53.74);
    assert_near(cv_mask_round_1km(-0.3326), -0.33);
    /* a half rounds away from zero, as people round the decimal they read */
    assert_near(cv_mask_round_1km(53.745), 53.75);
    assert_near(cv_mask_round_1km(-0.335), -0.34);
    assert_near(cv_mask_round_1km(53.7449), 53.74);
    assert_near(cv_mask_round_1km(0.0), 0.0);
    assert_near(cv_mask_round_1km(-179.999), -180.0);
    /* never further than half a unit of the second decimal from the original */
    for (double v = -2.0; v < 2.0; v += 0.0037) {
        double r = cv_mask_round_1km(v);
        assert_true(fabs(r - v) <= 0.005 + 1e-12);
        assert_true(fabs(r * 100.0 - round(r * 100.0)) < 1e-6);
    }
}

/* ------------------------------------------------------------------------ */

static const uint8_t key_a[CV_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8};
static const uint8_t key_b[CV_KEY_BYTES] = {8, 7, 6, 5, 4, 3, 2, 1};

static void assert_pseudonym_shape(const char *p)
{
    assert_non_null(p);
    assert_int_equal(strlen(p), strlen(CV_PSEUDONYM_PREFIX) + 24);
    assert_memory_equal(p, "PSN-", 4);
    for (const char *c = p + 4; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            fail_msg("'%s' is not PSN- and lowercase hex", p);
}

static void test_pseudonymise_format_and_stability(void **state)
{
    (void)state;
    char *first = cv_mask_pseudonymise(key_a, "hull-city-council", "Jane Doe");
    char *again = cv_mask_pseudonymise(key_a, "hull-city-council", "Jane Doe");
    assert_pseudonym_shape(first);
    assert_string_equal(first, again);
    assert_null(strstr(first, "Jane"));
    free(first);
    free(again);
}

static void test_pseudonymise_differs(void **state)
{
    (void)state;
    char *base = cv_mask_pseudonymise(key_a, "hull-city-council", "Jane Doe");
    char *other_org = cv_mask_pseudonymise(key_a, "hull-college", "Jane Doe");
    char *other_key = cv_mask_pseudonymise(key_b, "hull-city-council", "Jane Doe");
    char *other_value = cv_mask_pseudonymise(key_a, "hull-city-council", "John Doe");
    /* organisation and value are separated: "ab"+"c" is not "a"+"bc" */
    char *shifted_a = cv_mask_pseudonymise(key_a, "ab", "c");
    char *shifted_b = cv_mask_pseudonymise(key_a, "a", "bc");
    assert_string_not_equal(base, other_org);
    assert_string_not_equal(base, other_key);
    assert_string_not_equal(base, other_value);
    assert_string_not_equal(shifted_a, shifted_b);
    char *all[] = {base, other_org, other_key, other_value, shifted_a, shifted_b};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        assert_pseudonym_shape(all[i]);
        free(all[i]);
    }
}

/*  The construction of semantics 6, computed independently: keyed BLAKE2b
 *  (12 bytes) of organisation, NUL, value. */
static void test_pseudonymise_construction(void **state)
{
    (void)state;
    assert_true(sodium_init() >= 0);
    const char org[] = "hull-city-council";
    const char value[] = "09/123456A";
    uint8_t input[sizeof org + sizeof value];
    memcpy(input, org, sizeof org); /* with its NUL */
    memcpy(input + sizeof org, value, sizeof value - 1);
    uint8_t digest[12];
    crypto_generichash(digest, sizeof digest, input, sizeof org + sizeof value - 1, key_a,
                       CV_KEY_BYTES);
    char expected[4 + 24 + 1] = "PSN-";
    sodium_bin2hex(expected + 4, 25, digest, sizeof digest);
    char *got = cv_mask_pseudonymise(key_a, org, value);
    assert_string_equal(got, expected);
    free(got);
}

/* ------------------------------------------------------------------------ */
/*  Where masks may go (checked at load) and how decisions name them.       */

static int node(const char *path)
{
    int index = cv_schema_find(cv_schema_report(), path);
    if (index < 0)
        fail_msg("no schema path %s", path);
    return index;
}

static void test_grant_fits(void **state)
{
    (void)state;
    const cv_schema_t *s = cv_schema_report();
    assert_true(cv_grant_fits(s, node("subjects.date_of_birth"), CV_GRANT_YEAR));
    assert_true(cv_grant_fits(s, node("created"), CV_GRANT_YEAR));
    assert_false(cv_grant_fits(s, node("summary"), CV_GRANT_YEAR));
    assert_true(cv_grant_fits(s, node("subjects.postcode"), CV_GRANT_POSTCODE_DISTRICT));
    assert_false(cv_grant_fits(s, node("subjects.date_of_birth"), CV_GRANT_POSTCODE_DISTRICT));
    assert_false(cv_grant_fits(s, node("location.latitude"), CV_GRANT_POSTCODE_DISTRICT));
    assert_true(cv_grant_fits(s, node("subjects.name"), CV_GRANT_INITIALS));
    assert_false(cv_grant_fits(s, node("subjects.identifiers"), CV_GRANT_INITIALS));
    assert_true(cv_grant_fits(s, node("location.latitude"), CV_GRANT_ROUND_1KM));
    assert_false(cv_grant_fits(s, node("location.name"), CV_GRANT_ROUND_1KM));
    assert_false(cv_grant_fits(s, node("tension.level"), CV_GRANT_ROUND_1KM));
    assert_true(cv_grant_fits(s, node("subjects.identifiers"), CV_GRANT_PSEUDONYMISE));
    assert_true(cv_grant_fits(s, node("subjects.name"), CV_GRANT_PSEUDONYMISE));
    assert_false(cv_grant_fits(s, node("tension.level"), CV_GRANT_PSEUDONYMISE));
    /* a message fits only when every leaf under it does */
    assert_false(cv_grant_fits(s, node("location"), CV_GRANT_ROUND_1KM));
    assert_true(cv_grant_fits(s, node("source"), CV_GRANT_INITIALS));
    assert_true(cv_grant_fits(s, node("location"), CV_GRANT_SHARE));
    assert_true(cv_grant_fits(s, node("location"), CV_GRANT_DENY));
}

static void test_grant_names(void **state)
{
    (void)state;
    assert_string_equal(cv_grant_name(CV_GRANT_SHARE), "share");
    assert_string_equal(cv_grant_name(CV_GRANT_YEAR), "mask:year");
    assert_string_equal(cv_grant_name(CV_GRANT_POSTCODE_DISTRICT), "mask:postcode_district");
    assert_string_equal(cv_grant_name(CV_GRANT_INITIALS), "mask:initials");
    assert_string_equal(cv_grant_name(CV_GRANT_ROUND_1KM), "mask:round_1km");
    assert_string_equal(cv_grant_name(CV_GRANT_PSEUDONYMISE), "mask:pseudonymise");
    assert_string_equal(cv_grant_name(CV_GRANT_DENY), "withheld");
    assert_string_equal(cv_grant_name(CV_GRANT_NONE), "withheld");
}

/*  Semantics 5: the order that makes "most protective wins" a max(). */
static void test_grant_order(void **state)
{
    (void)state;
    assert_true(CV_GRANT_NONE < CV_GRANT_SHARE);
    assert_true(CV_GRANT_SHARE < CV_GRANT_YEAR);
    assert_true(CV_GRANT_YEAR < CV_GRANT_POSTCODE_DISTRICT);
    assert_true(CV_GRANT_POSTCODE_DISTRICT < CV_GRANT_INITIALS);
    assert_true(CV_GRANT_INITIALS < CV_GRANT_ROUND_1KM);
    assert_true(CV_GRANT_ROUND_1KM < CV_GRANT_PSEUDONYMISE);
    assert_true(CV_GRANT_PSEUDONYMISE < CV_GRANT_DENY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_year),
        cmocka_unit_test(test_postcode_district),
        cmocka_unit_test(test_postcode_district_rejects_non_postcodes),
        cmocka_unit_test(test_initials),
        cmocka_unit_test(test_round_1km),
        cmocka_unit_test(test_pseudonymise_format_and_stability),
        cmocka_unit_test(test_pseudonymise_differs),
        cmocka_unit_test(test_pseudonymise_construction),
        cmocka_unit_test(test_grant_fits),
        cmocka_unit_test(test_grant_names),
        cmocka_unit_test(test_grant_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
