/*  What a leaf someone crafted costs `caveat audit summary` and `sample`
 *  (client/audit_tally.c, audit_leaf_print.c): time linear in its length,
 *  however many organisations, fields or keys it names.
 *
 *  - a leaf delivered to 40,000 organisations is tallied, and charted, in
 *    about a second (half a minute, before);
 *  - a leaf of 100,000 fields, all withheld, is printed as fast;
 *  - a leaf whose object has 40,000 keys is not parsed (libfyaml's check
 *    for duplicate keys took 20 s), one of AUDIT_LEAF_KEYS_MAX is;
 *  - the tally counts as before: a report once per organisation.
 *
 *  The times allowed, of the process's CPU, are ten times or more what the
 *  work takes in a sanitizer build, and a tenth or less of what the old
 *  loops took.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_leaf_print.h"
#include "audit_tally.h"
#include "leaf_json.h"

#define SECONDS_ALLOWED 8.0

/*  A leaf's text, written piece by piece. */
typedef struct {
    char *text;
    size_t len;
    FILE *out;
} leaf_t;

static void leaf_begin(leaf_t *leaf)
{
    leaf->out = open_memstream(&leaf->text, &leaf->len);
    assert_non_null(leaf->out);
    fputs("{\"event\":\"accepted\",\"time\":1796083200000,\"report\":\"R-1\","
          "\"originator\":\"a\",\"category\":\"c\"",
          leaf->out);
}

static void leaf_end(leaf_t *leaf)
{
    fputc('}', leaf->out);
    assert_int_equal(fclose(leaf->out), 0);
}

/*  "to": n recipients, each of its own organisation, delivered. */
static void write_recipients(leaf_t *leaf, int n)
{
    fputs(",\"to\":[", leaf->out);
    for (int i = 0; i < n; i++)
        fprintf(leaf->out,
                "%s{\"agency\":\"a%d\",\"organisation\":\"org%d\",\"delivered\":true,"
                "\"rules\":[\"r\"],\"view\":0}",
                i ? "," : "", i, i);
    fputs("]", leaf->out);
}

/*  The process's CPU time, not the wall clock's: beside other tests on a
 *  busy machine the wall clock stretched what took a second past the
 *  bound, where the CPU the work takes stays what it is. The old loops
 *  took half a minute of CPU. */
static void start_clock(struct timespec *start)
{
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, start);
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void expect_in_time(const struct timespec *start, const char *what)
{
    double took = seconds_since(start);
    if (took > SECONDS_ALLOWED)
        fail_msg("%s took %.1f s of CPU", what, took);
}

static FILE *null_file(void)
{
    FILE *out = fopen("/dev/null", "w");
    assert_non_null(out);
    return out;
}

static void test_many_organisations(void **state)
{
    (void)state;
    leaf_t leaf;
    leaf_begin(&leaf);
    write_recipients(&leaf, 40000);
    fputs(",\"views\":[{}]", leaf.out);
    leaf_end(&leaf);
    struct timespec start;
    start_clock(&start);
    audit_tally_t *tally = audit_tally_new(0);
    assert_non_null(tally);
    audit_tally_add(tally, leaf.text, leaf.len);
    FILE *out = null_file();
    audit_tally_print(tally, out, NULL);
    assert_true(audit_tally_svg(tally, out, NULL));
    fclose(out);
    expect_in_time(&start, "a tally of 40,000 organisations, as a table and a chart");
    assert_int_equal(audit_tally_accepted(tally), 1);
    assert_int_equal(audit_tally_shared(tally), 1);
    audit_tally_destroy(&tally);
    free(leaf.text);
}

static void test_many_fields(void **state)
{
    (void)state;
    enum { FIELDS = 100000 };
    leaf_t leaf;
    leaf_begin(&leaf);
    write_recipients(&leaf, 1);
    fputs(",\"fields\":[", leaf.out);
    for (int i = 0; i < FIELDS; i++)
        fprintf(leaf.out, "%s\"f%d\"", i ? "," : "", i);
    fputs("],\"views\":[{\"withheld\":[", leaf.out);
    for (int i = 0; i < FIELDS; i++)
        fprintf(leaf.out, "%s%d", i ? "," : "", i);
    fputs("]}]", leaf.out);
    leaf_end(&leaf);
    struct timespec start;
    start_clock(&start);
    FILE *out = null_file();
    audit_leaf_print(out, 0, leaf.text, leaf.len);
    fclose(out);
    expect_in_time(&start, "a leaf of 100,000 fields, printed");
    free(leaf.text);
}

/*  A recipient with keys keys, "k0":0 and on, as well as its own. */
static leaf_t leaf_of_keys(int keys)
{
    leaf_t leaf;
    leaf_begin(&leaf);
    fputs(",\"to\":[{\"agency\":\"a\",\"organisation\":\"o\",\"delivered\":true", leaf.out);
    for (int i = 3; i < keys; i++)
        fprintf(leaf.out, ",\"k%d\":%d", i, i);
    fputs("}]", leaf.out);
    leaf_end(&leaf);
    return leaf;
}

static void test_many_keys(void **state)
{
    (void)state;
    leaf_t leaf = leaf_of_keys(40000);
    struct timespec start;
    start_clock(&start);
    assert_null(audit_leaf_parse(leaf.text, leaf.len));
    audit_tally_t *tally = audit_tally_new(0);
    audit_tally_add(tally, leaf.text, leaf.len);
    FILE *out = null_file();
    audit_leaf_print(out, 0, leaf.text, leaf.len);
    fclose(out);
    expect_in_time(&start, "a leaf of 40,000 keys, tallied and printed");
    assert_int_equal(audit_tally_accepted(tally), 0); /* passed over, as one not JSON */
    audit_tally_destroy(&tally);
    free(leaf.text);
    leaf = leaf_of_keys(AUDIT_LEAF_KEYS_MAX);
    struct fy_document *doc = audit_leaf_parse(leaf.text, leaf.len);
    assert_non_null(doc);
    fy_document_destroy(doc);
    free(leaf.text);
}

/*  {"event":"accepted","to":[0,0,...]} of n zeros. */
static leaf_t leaf_of_values(int n)
{
    leaf_t leaf;
    leaf_begin(&leaf);
    fputs(",\"to\":[0", leaf.out);
    for (int i = 1; i < n; i++)
        fputs(",0", leaf.out);
    fputc(']', leaf.out);
    leaf_end(&leaf);
    return leaf;
}

/*  A leaf of more values than AUDIT_LEAF_VALUES_MAX (about 1 MB of
 *  zeros) is not parsed, tallied or printed: one of 8 MB took libfyaml
 *  2.2 GB, and the 64 MB a leaf may be, some 17 GB, enough to have the
 *  auditor's process killed. Its recipients counted as commas, a leaf of
 *  a fifth of them parses. */
static void test_many_values(void **state)
{
    (void)state;
    leaf_t leaf = leaf_of_values(AUDIT_LEAF_VALUES_MAX + 1);
    struct timespec start;
    start_clock(&start);
    assert_null(audit_leaf_parse(leaf.text, leaf.len));
    audit_tally_t *tally = audit_tally_new(0);
    audit_tally_add(tally, leaf.text, leaf.len);
    assert_int_equal(audit_tally_accepted(tally), 0);
    audit_tally_destroy(&tally);
    expect_in_time(&start, "a leaf of too many values, not parsed");
    free(leaf.text);
    leaf = leaf_of_values(AUDIT_LEAF_VALUES_MAX / 5);
    struct fy_document *doc = audit_leaf_parse(leaf.text, leaf.len);
    assert_non_null(doc);
    fy_document_destroy(doc);
    free(leaf.text);
}

/*  {"event":"x","s":"\":0\":1...","deep":[[...]]}: a string of 200 escaped
 *  quotes and colons, and arrays nested depth deep in all. */
static int strange_leaf(char *text, size_t size, int depth)
{
    int len = snprintf(text, size, "{\"event\":\"x\",\"s\":\"");
    for (int i = 0; i < 200; i++)
        len += snprintf(text + len, size - (size_t)len, "\\\":%d", i);
    len += snprintf(text + len, size - (size_t)len, "\",\"deep\":");
    for (int i = 1; i < depth; i++)
        text[len++] = '[';
    for (int i = 1; i < depth; i++)
        text[len++] = ']';
    text[len++] = '}';
    return len;
}

/*  What a string holds is not counted, and leaves may nest as deep as
 *  AUDIT_LEAF_DEPTH_MAX, no deeper. */
static void test_bounds_read_as_json(void **state)
{
    (void)state;
    char text[4096];
    int len = strange_leaf(text, sizeof text, AUDIT_LEAF_DEPTH_MAX);
    struct fy_document *doc = audit_leaf_parse(text, (size_t)len);
    assert_non_null(doc);
    fy_document_destroy(doc);
    len = strange_leaf(text, sizeof text, AUDIT_LEAF_DEPTH_MAX + 1);
    assert_null(audit_leaf_parse(text, (size_t)len));
}

/*  Two agencies of one organisation count once; organisations are counted
 *  per report, across leaves. */
static void test_tally_counts(void **state)
{
    (void)state;
    static const char one[] = "{\"event\":\"accepted\",\"time\":1,\"category\":\"c\",\"to\":["
                              "{\"agency\":\"a1\",\"organisation\":\"x\",\"delivered\":true},"
                              "{\"agency\":\"a2\",\"organisation\":\"x\",\"delivered\":true},"
                              "{\"agency\":\"a3\",\"organisation\":\"y\",\"delivered\":false},"
                              "{\"agency\":\"z\",\"delivered\":true}]}";
    audit_tally_t *tally = audit_tally_new(0);
    audit_tally_add(tally, one, strlen(one));
    audit_tally_add(tally, one, strlen(one));
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    audit_tally_json(tally, out);
    fclose(out);
    const char *x = strstr(text, "\"organisation\": \"x\""),
               *z = strstr(text, "\"organisation\": \"z\"");
    assert_non_null(x);
    assert_non_null(z);
    assert_null(strstr(text, "\"organisation\": \"y\""));
    assert_non_null(strstr(x, "\"reports\": 2"));
    assert_non_null(strstr(z, "\"reports\": 2"));
    assert_int_equal(audit_tally_accepted(tally), 2);
    assert_int_equal(audit_tally_shared(tally), 2);
    free(text);
    audit_tally_destroy(&tally);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_organisations), cmocka_unit_test(test_many_fields),
        cmocka_unit_test(test_many_keys),          cmocka_unit_test(test_bounds_read_as_json),
        cmocka_unit_test(test_tally_counts),       cmocka_unit_test(test_many_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
