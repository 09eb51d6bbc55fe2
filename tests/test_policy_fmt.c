/*  test_policy_fmt.c: the canonical layout of a policy file
 *  (policy/cv_policy_fmt.c): key order, flow and block style, comments
 *  kept where they belong, idempotence, and the refusals.
 *
 *  Each test compares the whole formatted text.
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

/*  Formats text, checks the result is expected, and that formatting it
 *  again changes nothing. */
static void expect_format(const char *text, const char *expected)
{
    cv_error_t err = {0};
    char *once = cv_policy_format(text, strlen(text), "p.yaml", &err);
    if (!once)
        fail_msg("not formatted: %s", err.msg);
    assert_string_equal(once, expected);
    char *twice = cv_policy_format(once, strlen(once), "p.yaml", &err);
    assert_non_null(twice);
    assert_string_equal(twice, once);
    free(once);
    free(twice);
}

static void expect_refused(const char *text, const char *error)
{
    cv_error_t err = {0};
    assert_null(cv_policy_format(text, strlen(text), "p.yaml", &err));
    assert_string_equal(err.msg, error);
}

/*  Keys in the language's order, the rest as written; short lists and
 *  one-pair mappings in flow style, the rest in block style; blank lines
 *  around sections that take more than a line and between rules. */
static void test_layout(void **state)
{
    (void)state;
    expect_format(
        "rules:\n"
        "- fields: {summary: share, narrative: {mask: initials}}\n"
        "  to_types:\n"
        "  - local_authority\n"
        "  name: r1\n"
        "  categories: [feedback]\n"
        "- {name: r2, categories: [feedback], to_types: [police], fields: {\"*\": share}}\n"
        "agencies:\n"
        "  b: {key: \"K\", areas: ['*'], type: police, organisation: o, clearance: S}\n"
        "levels: [S]\n"
        "version: 1\n"
        "protocol: p\n"
        "colour: red\n",
        "protocol: p\n"
        "version: 1\n"
        "levels: [S]\n"
        "\n"
        "agencies:\n"
        "  b:\n"
        "    organisation: o\n"
        "    type: police\n"
        "    clearance: S\n"
        "    areas: ['*']\n"
        "    key: \"K\"\n"
        "\n"
        "rules:\n"
        "  - name: r1\n"
        "    categories: [feedback]\n"
        "    to_types: [local_authority]\n"
        "    fields:\n"
        "      summary: share\n"
        "      narrative: {mask: initials}\n"
        "\n"
        "  - name: r2\n"
        "    categories: [feedback]\n"
        "    to_types: [police]\n"
        "    fields: {\"*\": share}\n"
        "\n"
        "colour: red\n");
}

/*  A restriction's keys in the language's order, except_to_* after to_*;
 *  the section after screening, its entries apart like rules. */
static void test_restrictions(void **state)
{
    (void)state;
    expect_format("restrictions:\n"
                  "- fields: {subjects.identifiers: deny}\n"
                  "  except_to_agencies: [a1]\n"
                  "  except_to_types: [health]\n"
                  "  to_agencies: [a2]\n"
                  "  to_types: [police]\n"
                  "  from_agencies: [a3]\n"
                  "  from_types: [health]\n"
                  "  categories: [feedback]\n"
                  "  description: d\n"
                  "  name: x1\n"
                  "- {fields: {source: deny, grading: deny}, name: x2}\n"
                  "screening: []\n"
                  "protocol: p\n",
                  "protocol: p\n"
                  "screening: []\n"
                  "\n"
                  "restrictions:\n"
                  "  - name: x1\n"
                  "    description: d\n"
                  "    categories: [feedback]\n"
                  "    from_types: [health]\n"
                  "    from_agencies: [a3]\n"
                  "    to_types: [police]\n"
                  "    to_agencies: [a2]\n"
                  "    except_to_types: [health]\n"
                  "    except_to_agencies: [a1]\n"
                  "    fields: {subjects.identifiers: deny}\n"
                  "\n"
                  "  - name: x2\n"
                  "    fields:\n"
                  "      source: deny\n"
                  "      grading: deny\n");
}

/*  Comments stay with what they describe, wherever it moves. */
static void test_comments(void **state)
{
    (void)state;
    expect_format("# the header\n"
                  "\n"
                  "version: 1 # raise it\n"
                  "protocol: p\n"
                  "levels: [A, B]   # lowest first\n"
                  "# one\n"
                  "\n"
                  "# two\n"
                  "agencies:\n"
                  "  a:\n"
                  "    # where it works\n"
                  "    areas: [x]\n"
                  "    organisation: o  # trailing\n"
                  "# the end\n",
                  "# the header\n"
                  "\n"
                  "protocol: p\n"
                  "version: 1  # raise it\n"
                  "levels: [A, B]  # lowest first\n"
                  "\n"
                  "# one\n"
                  "\n"
                  "# two\n"
                  "agencies:\n"
                  "  a:\n"
                  "    organisation: o  # trailing\n"
                  "    # where it works\n"
                  "    areas: [x]\n"
                  "# the end\n");
}

/*  A long list wraps under its first item; a block scalar is re-indented;
 *  a scalar that spans lines is quoted; a '#' inside a scalar is text; a
 *  null stays a null, not an empty string. A comment after a block
 *  scalar's header stays there: after the content it would be content. */
static void test_scalars(void **state)
{
    (void)state;
    expect_format("protocol: \"p # not a comment\"\n"
                  "description: |  # kept\n"
                  "        line one\n"
                  "          indented\n"
                  "        line three\n"
                  "levels: [aaaaaaaaaaaa, bbbbbbbbbbbb, cccccccccccc, dddddddddddd, eeeeeeeeeeee,\n"
                  "  ffffffffffff, gggggggggggg, hhhhhhhhhhhh]\n"
                  "version: 'two\n"
                  "  lines'\n"
                  "categories:\n"
                  "rules: [null, \"\", ~]\n",
                  "protocol: \"p # not a comment\"\n"
                  "version: \"two lines\"\n"
                  "description: |  # kept\n"
                  "  line one\n"
                  "    indented\n"
                  "  line three\n"
                  "levels: [aaaaaaaaaaaa, bbbbbbbbbbbb, cccccccccccc, dddddddddddd, eeeeeeeeeeee, "
                  "ffffffffffff,\n"
                  "         gggggggggggg, hhhhhhhhhhhh]\n"
                  "categories:\n"
                  "rules: [null, \"\", ~]\n");
}

/*  The example policy: formatted once, it stays as it is. */
static void test_example_idempotent(void **state)
{
    (void)state;
    size_t len = 0;
    char *text = cv_read_file(CAVEAT_SOURCE_DIR "/examples/policy.yaml", &len);
    assert_non_null(text);
    cv_error_t err = {0};
    char *once = cv_policy_format(text, len, "policy.yaml", &err);
    if (!once)
        fail_msg("not formatted: %s", err.msg);
    expect_format(once, once);
    /* every comment is still there */
    int before = 0, after = 0;
    for (const char *c = text; (c = strstr(c, "# ")); c++)
        before++;
    for (const char *c = once; (c = strstr(c, "# ")); c++)
        after++;
    assert_int_equal(after, before);
    free(once);
    free(text);
}

/*  A document of one line stays one line. */
static void test_flow_root(void **state)
{
    (void)state;
    expect_format("{}\n", "{}\n");
    /* no key to go with: the comment goes on top */
    expect_format("{protocol: p}  # all\n", "# all\n{protocol: p}\n");
    expect_format("[a,\n b]\n", "[a, b]\n");
}

static void test_refused(void **state)
{
    (void)state;
    expect_refused("a: [b\n", "p.yaml:2:1: error: flow sequence without a closing bracket");
    expect_refused("just text\n", "p.yaml: error: not a policy: expected a mapping");
    expect_refused("a: &x {b: 1}\nc: *x\n",
                   "p.yaml: error: anchors, aliases and tags are not formatted; write the file "
                   "out in full");
    expect_refused("a: !!str b\n",
                   "p.yaml: error: anchors, aliases and tags are not formatted; write the file "
                   "out in full");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),       cmocka_unit_test(test_comments),
        cmocka_unit_test(test_scalars),      cmocka_unit_test(test_example_idempotent),
        cmocka_unit_test(test_flow_root),    cmocka_unit_test(test_refused),
        cmocka_unit_test(test_restrictions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
