/*  The check `caveat subscribe --receipts` makes of each receipt before it
 *  writes it (client/receipt_check.h): the leaf must record this agency's
 *  delivery on this queue, of this seq and report, with the view received.
 *  A broker that answers with any other leaf, however well proven, is
 *  refused with what does not match. (The proof itself is checked by
 *  `caveat audit receipt`: cli_receipts.sh and test_receipts.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "receipt_check.h"

#define VIEW_A "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
#define VIEW_B "f9e8d7c6b5a4938271605f4e3d2c1b0af9e8d7c6b5a4938271605f4e3d2c1b0a"

/*  A "delivered" leaf as the broker writes it: agency hull-cc, its direct
 *  queue, seqs 7 (r-1, VIEW_A) and 8 (r-2, VIEW_B). */
static const char good_leaf[] =
    "{\"event\":\"delivered\",\"time\":1796224904233,\"agency\":\"hull-cc\",\"feed\":null,"
    "\"deliveries\":[{\"report\":\"r-1\",\"seq\":7,\"view\":\"" VIEW_A "\"},"
    "{\"report\":\"r-2\",\"seq\":8,\"view\":\"" VIEW_B "\"}]}";

static cv_receipt_t receipt_of(const char *leaf, uint64_t seq, const char *report_id)
{
    return (cv_receipt_t){.seq = seq,
                          .report_id = report_id,
                          .leaf = (const uint8_t *)leaf,
                          .leaf_len = strlen(leaf)};
}

/*  The check of leaf for hull-cc's direct queue; why when refused. */
static bool check(const char *leaf, uint64_t seq, const char *report_id, const char *view,
                  char why[120])
{
    cv_receipt_t r = receipt_of(leaf, seq, report_id);
    why[0] = '\0';
    return receipt_check(&r, "hull-cc", NULL, report_id, view, why, 120);
}

static void expect_refused(const char *leaf, uint64_t seq, const char *report_id, const char *view,
                           const char *reason)
{
    char why[120];
    assert_false(check(leaf, seq, report_id, view, why));
    if (!strstr(why, reason))
        print_error("refused for \"%s\", not \"%s\"\n", why, reason);
    assert_non_null(strstr(why, reason));
}

static void test_each_delivery_of_the_leaf_is_taken(void **state)
{
    (void)state;
    char why[120];
    assert_true(check(good_leaf, 7, "r-1", VIEW_A, why));
    assert_true(check(good_leaf, 8, "r-2", VIEW_B, why));
    /* the direct queue is "" or NULL alike */
    cv_receipt_t r = receipt_of(good_leaf, 7, "r-1");
    assert_true(receipt_check(&r, "hull-cc", "", "r-1", VIEW_A, why, sizeof why));
}

/*  A "delivered" leaf with the parts given as JSON text, in buf. */
static const char *leaf(char buf[600], const char *event, const char *agency, const char *feed,
                        const char *deliveries)
{
    snprintf(buf, 600, "{\"event\":%s,\"time\":1,\"agency\":%s,\"feed\":%s,\"deliveries\":%s}",
             event, agency, feed, deliveries);
    return buf;
}

/*  hull-cc's direct queue, with deliveries as given. */
static const char *direct(char buf[600], const char *deliveries)
{
    return leaf(buf, "\"delivered\"", "\"hull-cc\"", "null", deliveries);
}

#define R1_SEQ7_A "{\"report\":\"r-1\",\"seq\":7,\"view\":\"" VIEW_A "\"}"

/*  r-1 at seq 7, then r-9 at seq second_seq (as JSON text): refused. */
static void expect_second_refused(const char *second_seq)
{
    char buf[600], deliveries[300];
    snprintf(deliveries, sizeof deliveries,
             "[" R1_SEQ7_A ",{\"report\":\"r-9\",\"seq\":%s,\"view\":\"" VIEW_B "\"}]", second_seq);
    expect_refused(direct(buf, deliveries), 7, "r-1", VIEW_A, "does not list its seq");
}

static void test_another_delivery_is_refused(void **state)
{
    (void)state;
    char buf[600];
    expect_refused(good_leaf, 9, "r-1", VIEW_A, "does not list its seq");
    expect_refused(good_leaf, 7, "r-2", VIEW_A, "another report");
    expect_refused(good_leaf, 7, "r-1", VIEW_B, "a view other than the one received");
    /* seq 7 written as a string, or as another number's text */
    expect_refused(direct(buf, "[{\"report\":\"r-1\",\"seq\":\"7\",\"view\":\"" VIEW_A "\"}]"), 7,
                   "r-1", VIEW_A, "does not list its seq");
    expect_refused(direct(buf, "[{\"report\":\"r-1\",\"seq\":07,\"view\":\"" VIEW_A "\"}]"), 7,
                   "r-1", VIEW_A, "");
    /* listed twice: which one would it be? */
    expect_second_refused("7");
    /* JSON's null is no report, not one whose id is "null" */
    expect_refused(direct(buf, "[{\"report\":null,\"seq\":7,\"view\":\"" VIEW_A "\"}]"), 7, "null",
                   VIEW_A, "another report");
    /* a view not hashed (null) is not the view received */
    expect_refused(direct(buf, "[{\"report\":\"r-1\",\"seq\":7,\"view\":null}]"), 7, "r-1", VIEW_A,
                   "a view other");
}

static void test_another_agency_or_queue_is_refused(void **state)
{
    (void)state;
    char buf[600];
    expect_refused(leaf(buf, "\"delivered\"", "\"hull-xx\"", "null", "[" R1_SEQ7_A "]"), 7, "r-1",
                   VIEW_A, "another agency's");
    expect_refused(leaf(buf, "\"delivered\"", "\"hull-cc\"", "\"prevent\"", "[" R1_SEQ7_A "]"), 7,
                   "r-1", VIEW_A, "another queue's");
    /* the string "null" is a feed's name, not the direct queue */
    expect_refused(leaf(buf, "\"delivered\"", "\"hull-cc\"", "\"null\"", "[" R1_SEQ7_A "]"), 7,
                   "r-1", VIEW_A, "another queue's");
    /* a NUL inside a string does not end it */
    expect_refused(leaf(buf, "\"delivered\"", "\"hull-cc\\u0000x\"", "null", "[" R1_SEQ7_A "]"), 7,
                   "r-1", VIEW_A, "another agency's");
    cv_receipt_t fed = receipt_of(
        leaf(buf, "\"delivered\"", "\"hull-cc\"", "\"prevent\\u0000x\"", "[" R1_SEQ7_A "]"), 7,
        "r-1");
    char why_fed[120];
    assert_false(receipt_check(&fed, "hull-cc", "prevent", "r-1", VIEW_A, why_fed, sizeof why_fed));
    /* no agency or view to hold it to: nothing matches */
    cv_receipt_t none = receipt_of(good_leaf, 7, "r-1");
    char why_none[120];
    assert_false(receipt_check(&none, NULL, NULL, "r-1", VIEW_A, why_none, sizeof why_none));
    assert_false(receipt_check(&none, "hull-cc", NULL, "r-1", NULL, why_none, sizeof why_none));
    /* and a feed's subscriber refuses the direct queue's leaf */
    cv_receipt_t r = receipt_of(good_leaf, 7, "r-1");
    char why[120];
    assert_false(receipt_check(&r, "hull-cc", "prevent", "r-1", VIEW_A, why, sizeof why));
    assert_non_null(strstr(why, "another queue's"));
}

static void test_other_leaves_are_refused(void **state)
{
    (void)state;
    char buf[600];
    expect_refused(leaf(buf, "\"accepted\"", "\"hull-cc\"", "null", "[" R1_SEQ7_A "]"), 7, "r-1",
                   VIEW_A, "not a \"delivered\" leaf");
    expect_refused(direct(buf, R1_SEQ7_A), 7, "r-1", VIEW_A, "does not list its seq");
    /* a key given twice could say two things */
    expect_refused(
        leaf(buf, "\"delivered\"", "\"hull-xx\",\"agency\":\"hull-cc\"", "null", "[" R1_SEQ7_A "]"),
        7, "r-1", VIEW_A, "not a JSON object");
    expect_refused("[]", 7, "r-1", VIEW_A, "not written as the broker writes");
    expect_refused("{\"event\":\"delivered\"", 7, "r-1", VIEW_A, "not a JSON object");
    expect_refused("", 7, "r-1", VIEW_A, "not written as the broker writes");
    static const char bad_byte[] = "{\"event\":\"delivered\xff\"}";
    expect_refused(bad_byte, 7, "r-1", VIEW_A, "not a JSON object");
}

/*  What another JSON reader might read otherwise is refused: the leaf is
 *  held to the form the broker writes. */
static void test_only_the_broker_s_form_is_taken(void **state)
{
    (void)state;
    char buf[600], two[1300];
    /* a second value after the object: two leaves to another reader */
    snprintf(two, sizeof two, "%s{\"event\":\"delivered\",\"agency\":\"hull-xx\"}", good_leaf);
    expect_refused(two, 7, "r-1", VIEW_A, "not written as the broker writes");
    snprintf(two, sizeof two, "%s\"x\"", good_leaf);
    expect_refused(two, 7, "r-1", VIEW_A, "not written as the broker writes");
    /* seq 7 again, as 7.0 or 7e0: the same number to another reader */
    expect_second_refused("7.0");
    expect_second_refused("7e0");
    /* seqs not ascending, as the broker lists them */
    expect_second_refused("6");
    /* a key the broker does not write: seq 7 again, beside the
     * deliveries or in its own entry, to a reader that looks there */
    expect_refused(leaf(buf, "\"delivered\"", "\"hull-cc\",\"seq\":7", "null", "[" R1_SEQ7_A "]"),
                   7, "r-1", VIEW_A, "a key a \"delivered\" leaf does not");
    expect_refused(
        direct(buf, "[{\"report\":\"r-1\",\"seq\":7,\"view\":\"" VIEW_A "\",\"at\":{\"seq\":7}}]"),
        7, "r-1", VIEW_A, "does not list its seq");
    /* a number, or true, is not a string */
    expect_refused(direct(buf, "[{\"report\":123,\"seq\":7,\"view\":\"" VIEW_A "\"}]"), 7, "123",
                   VIEW_A, "another report");
    expect_refused(leaf(buf, "\"delivered\"", "true", "null", "[" R1_SEQ7_A "]"), 7, "r-1", VIEW_A,
                   "another agency's");
    /* space or a comment outside the strings: not the broker's writing */
    expect_refused(leaf(buf, "\"delivered\"", "\"hull-cc\" #c\n", "null", "[" R1_SEQ7_A "]"), 7,
                   "r-1", VIEW_A, "not written as the broker writes");
    expect_refused(" {}", 7, "r-1", VIEW_A, "not written as the broker writes");
    expect_refused("\xef\xbb\xbf{}", 7, "r-1", VIEW_A, "not written as the broker writes");
    /* longer than any leaf the broker writes: refused before it is read */
    static char long_leaf[40 * 1024];
    size_t at = (size_t)snprintf(long_leaf, sizeof long_leaf, "%.*s", (int)strlen(good_leaf) - 1,
                                 good_leaf);
    for (int k = 0; at + 16 < sizeof long_leaf; k++)
        at += (size_t)snprintf(long_leaf + at, sizeof long_leaf - at, ",\"k%d\":1", k);
    snprintf(long_leaf + at, sizeof long_leaf - at, "}");
    expect_refused(long_leaf, 7, "r-1", VIEW_A, "too long");
}

/*  The receipt's report is held to the delivery received at its seq, not
 *  to the receipt's own word; an agency of "" matches nothing. */
static void test_the_delivery_received_decides(void **state)
{
    (void)state;
    char buf[600], why[120];
    cv_receipt_t r = receipt_of(
        direct(buf, "[{\"report\":\"r-9\",\"seq\":7,\"view\":\"" VIEW_A "\"}]"), 7, "r-9");
    assert_false(receipt_check(&r, "hull-cc", NULL, "r-1", VIEW_A, why, sizeof why));
    assert_non_null(strstr(why, "another report than the one received"));
    assert_true(receipt_check(&r, "hull-cc", NULL, "r-9", VIEW_A, why, sizeof why));
    cv_receipt_t nobody =
        receipt_of(leaf(buf, "\"delivered\"", "\"\"", "null", "[" R1_SEQ7_A "]"), 7, "r-1");
    assert_false(receipt_check(&nobody, "", NULL, "r-1", VIEW_A, why, sizeof why));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_delivery_of_the_leaf_is_taken),
        cmocka_unit_test(test_another_delivery_is_refused),
        cmocka_unit_test(test_another_agency_or_queue_is_refused),
        cmocka_unit_test(test_other_leaves_are_refused),
        cmocka_unit_test(test_only_the_broker_s_form_is_taken),
        cmocka_unit_test(test_the_delivery_received_decides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
