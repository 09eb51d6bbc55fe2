/*  test_schema.c: the report's field paths (proto/cv_schema.c) and the
 *  date and timestamp formats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cv_proto.h"

static const cv_schema_t *schema(void)
{
    return cv_schema_report();
}

static const cv_schema_node_t *at(const char *path)
{
    int index = cv_schema_find(schema(), path);
    if (index < 0)
        fail_msg("no schema node %s", path);
    return cv_schema_node(schema(), index);
}

/*  The expected table, written out from report.proto: pre-order, so each
 *  message is followed by its fields. */
static const char *const expected_paths[] = {
    "id",
    "originator",
    "created",
    "category",
    "handling_level",
    "author",
    "grading",
    "grading.source",
    "grading.intelligence",
    "grading.handling_code",
    "priority",
    "area",
    "subjects",
    "subjects.name",
    "subjects.date_of_birth",
    "subjects.address",
    "subjects.postcode",
    "subjects.identifiers",
    "subjects.vulnerability_factors",
    "location",
    "location.name",
    "location.address",
    "location.postcode",
    "location.latitude",
    "location.longitude",
    "summary",
    "narrative",
    "source",
    "source.type",
    "source.reference",
    "source.notes",
    "indicators",
    "tension",
    "tension.level",
    "tension.trend",
    "field_markings",
    "field_markings.path",
    "field_markings.level",
    "caveats",
};

static void test_paths_in_preorder(void **state)
{
    (void)state;
    int n = (int)(sizeof expected_paths / sizeof *expected_paths);
    assert_int_equal(cv_schema_size(schema()), n);
    for (int i = 0; i < n; i++) {
        const cv_schema_node_t *node = cv_schema_node(schema(), i);
        assert_non_null(node);
        assert_string_equal(node->path, expected_paths[i]);
        assert_int_equal(cv_schema_find(schema(), expected_paths[i]), i);
    }
    assert_null(cv_schema_node(schema(), -1));
    assert_null(cv_schema_node(schema(), n));
    assert_ptr_equal(cv_schema_descriptor(schema()), &caveat__report__descriptor);
    assert_ptr_equal(cv_schema_report(), cv_schema_report()); /* built once */
}

/*  Every node's subtree is exactly [i+1, end): each node in it has an
 *  ancestor chain reaching i, and no node outside does. */
static void test_ranges_and_parents(void **state)
{
    (void)state;
    int size = cv_schema_size(schema());
    for (int i = 0; i < size; i++) {
        const cv_schema_node_t *node = cv_schema_node(schema(), i);
        assert_true(node->end > i && node->end <= size);
        assert_int_equal(node->is_leaf, node->end == i + 1);
        for (int j = 0; j < size; j++) {
            bool below = false;
            for (int a = cv_schema_node(schema(), j)->parent; a >= 0;
                 a = cv_schema_node(schema(), a)->parent)
                below = below || a == i;
            assert_int_equal(below, j > i && j < node->end);
        }
        if (node->parent < 0) {
            assert_int_equal(node->depth, 0);
            assert_string_equal(node->path, node->name);
        } else {
            const cv_schema_node_t *parent = cv_schema_node(schema(), node->parent);
            char joined[200];
            snprintf(joined, sizeof joined, "%s.%s", parent->path, node->name);
            assert_string_equal(node->path, joined);
            assert_int_equal(node->depth, parent->depth + 1);
        }
        assert_string_equal(node->name, node->field->name);
    }
}

static void test_known_ranges(void **state)
{
    (void)state;
    int subjects = cv_schema_find(schema(), "subjects");
    assert_int_equal(at("subjects")->end, subjects + 7);
    assert_int_equal(at("location")->end, cv_schema_find(schema(), "summary"));
    assert_int_equal(at("grading")->end, cv_schema_find(schema(), "priority"));
    assert_int_equal(at("source")->end, cv_schema_find(schema(), "indicators"));
    assert_int_equal(at("caveats")->end, cv_schema_size(schema()));
    assert_int_equal(at("subjects.postcode")->parent, subjects);
    assert_int_equal(at("subjects.postcode")->depth, 1);
    assert_int_equal(at("summary")->parent, -1);
}

static void test_map_is_a_leaf(void **state)
{
    (void)state;
    const cv_schema_node_t *ids = at("subjects.identifiers");
    assert_true(ids->is_map);
    assert_true(ids->is_leaf);
    assert_int_equal(ids->field->type, PROTOBUF_C_TYPE_MESSAGE);
    assert_int_equal(ids->end, cv_schema_find(schema(), "subjects.identifiers") + 1);
    /* the entry's key and value are no paths of their own */
    assert_int_equal(cv_schema_find(schema(), "subjects.identifiers.key"), -1);
    assert_int_equal(cv_schema_find(schema(), "subjects.identifiers.value"), -1);
    /* messages are neither maps nor leaves */
    assert_false(at("subjects")->is_map);
    assert_false(at("subjects")->is_leaf);
    assert_false(at("tension")->is_leaf);
    for (int i = 0; i < cv_schema_size(schema()); i++)
        if (cv_schema_node(schema(), i)->is_map)
            assert_string_equal(cv_schema_node(schema(), i)->path, "subjects.identifiers");
}

static void test_envelope_and_formats(void **state)
{
    (void)state;
    static const char *const envelope[] = {"id", "originator", "created", "category",
                                           "handling_level"};
    int count = 0;
    for (int i = 0; i < cv_schema_size(schema()); i++)
        count += cv_schema_node(schema(), i)->envelope;
    assert_int_equal(count, 5);
    for (size_t i = 0; i < sizeof envelope / sizeof *envelope; i++)
        assert_true(at(envelope[i])->envelope);
    assert_false(at("author")->envelope);
    assert_false(at("grading.handling_code")->envelope);
    assert_false(at("area")->envelope);
    assert_int_equal(at("created")->format, CV_FORMAT_TIMESTAMP);
    assert_int_equal(at("subjects.date_of_birth")->format, CV_FORMAT_DATE);
    assert_int_equal(at("summary")->format, CV_FORMAT_TEXT);
    assert_int_equal(at("subjects.postcode")->format, CV_FORMAT_TEXT);
}

static void test_find_unknown(void **state)
{
    (void)state;
    assert_int_equal(cv_schema_find(schema(), "nope"), -1);
    assert_int_equal(cv_schema_find(schema(), ""), -1);
    assert_int_equal(cv_schema_find(schema(), "*"), -1);
    assert_int_equal(cv_schema_find(schema(), "subjects."), -1);
    assert_int_equal(cv_schema_find(schema(), "subjects.nope"), -1);
    assert_int_equal(cv_schema_find(schema(), "name"), -1); /* only under a message */
    assert_int_equal(cv_schema_find(schema(), "Subjects.Name"), -1);
    assert_int_equal(cv_schema_find(schema(), "subjects[0].name"), -1);
}

static void test_child(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *report = &caveat__report__descriptor;
    const ProtobufCMessageDescriptor *subject = &caveat__subject__descriptor;
    int subjects = cv_schema_find(schema(), "subjects");
    const ProtobufCFieldDescriptor *f_subjects =
        protobuf_c_message_descriptor_get_field_by_name(report, "subjects");
    const ProtobufCFieldDescriptor *f_postcode =
        protobuf_c_message_descriptor_get_field_by_name(subject, "postcode");
    const ProtobufCFieldDescriptor *f_summary =
        protobuf_c_message_descriptor_get_field_by_name(report, "summary");
    assert_int_equal(cv_schema_child(schema(), -1, f_subjects), subjects);
    assert_int_equal(cv_schema_child(schema(), -1, f_summary), cv_schema_find(schema(), "summary"));
    assert_int_equal(cv_schema_child(schema(), subjects, f_postcode),
                     cv_schema_find(schema(), "subjects.postcode"));
    /* a field of another message is no child: Location.postcode under
     * subjects, and Subject.postcode at the top */
    const ProtobufCFieldDescriptor *f_loc_postcode =
        protobuf_c_message_descriptor_get_field_by_name(&caveat__location__descriptor, "postcode");
    assert_int_equal(cv_schema_child(schema(), subjects, f_loc_postcode), -1);
    assert_int_equal(cv_schema_child(schema(), -1, f_postcode), -1);
    assert_int_equal(
        cv_schema_child(schema(), cv_schema_find(schema(), "location"), f_loc_postcode),
        cv_schema_find(schema(), "location.postcode"));
    /* every node is the child of its parent for its own field */
    for (int i = 0; i < cv_schema_size(schema()); i++) {
        const cv_schema_node_t *node = cv_schema_node(schema(), i);
        assert_int_equal(cv_schema_child(schema(), node->parent, node->field), i);
    }
}

/* ------------------------------------------------------------------------ */

static void test_dates(void **state)
{
    (void)state;
    assert_true(cv_format_valid(CV_FORMAT_DATE, "2009-04-01"));
    assert_true(cv_format_valid(CV_FORMAT_DATE, "2024-02-29")); /* leap year */
    assert_true(cv_format_valid(CV_FORMAT_DATE, "2000-02-29")); /* 400-year leap */
    assert_true(cv_format_valid(CV_FORMAT_DATE, "2026-12-31"));
    assert_true(cv_format_valid(CV_FORMAT_DATE, "1900-01-01"));
    assert_false(cv_format_valid(CV_FORMAT_DATE, "2026-02-29"));
    assert_false(cv_format_valid(CV_FORMAT_DATE, "1900-02-29")); /* century, no leap */
    assert_false(cv_format_valid(CV_FORMAT_DATE, "2026-04-31"));
    assert_false(cv_format_valid(CV_FORMAT_DATE, "2026-13-01"));
    assert_false(cv_format_valid(CV_FORMAT_DATE, "2026-00-10"));
    assert_false(cv_format_valid(CV_FORMAT_DATE, "2026-01-00"));
    assert_false(cv_format_valid(CV_FORMAT_DATE, "2026-01-32"));
    assert_false(cv_format_valid(CV_FORMAT_DATE, "2026-2-3"));
    assert_false(cv_format_valid(CV_FORMAT_DATE, "26-02-03"));
    assert_false(cv_format_valid(CV_FORMAT_DATE, "2026/02/03"));
    assert_false(cv_format_valid(CV_FORMAT_DATE, "2026-02-03x"));
    assert_false(cv_format_valid(CV_FORMAT_DATE, "2026-02-03 "));
    assert_false(cv_format_valid(CV_FORMAT_DATE, " 2026-02-03"));
    assert_false(cv_format_valid(CV_FORMAT_DATE, "2026-02-03T00:00:00Z"));
    assert_false(cv_format_valid(CV_FORMAT_DATE, "+026-02-03"));
    assert_false(cv_format_valid(CV_FORMAT_DATE, ""));
    assert_false(cv_format_valid(CV_FORMAT_DATE, "yesterday"));
}

/*  Every day of four centuries and some, against libc's calendar: a date
 *  is valid when timegm keeps it as it is (2026-02-30 becomes March). */
static void test_dates_agree_with_timegm(void **state)
{
    (void)state;
    for (int year = 1899; year <= 2301; year++)
        for (int month = 0; month <= 13; month++)
            for (int day = 0; day <= 32; day++) {
                char text[16];
                snprintf(text, sizeof text, "%04d-%02d-%02d", year, month, day);
                struct tm tm = {
                    .tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day, .tm_hour = 12};
                struct tm check = tm;
                bool kept = timegm(&check) != (time_t)-1 && check.tm_mon == tm.tm_mon &&
                            check.tm_mday == tm.tm_mday && month >= 1 && month <= 12;
                if (cv_format_valid(CV_FORMAT_DATE, text) != kept)
                    fail_msg("%s: caveat says %s, timegm %s", text, kept ? "invalid" : "valid",
                             kept ? "valid" : "invalid");
            }
}

static void test_timestamps(void **state)
{
    (void)state;
    assert_true(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00Z"));
    assert_true(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00+01:00"));
    assert_true(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00-05:30"));
    assert_true(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00.5Z"));
    assert_true(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00.123456789+00:00"));
    assert_true(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20t09:30:00z"));
    assert_true(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T23:59:59Z"));
    assert_true(cv_format_valid(CV_FORMAT_TIMESTAMP, "2016-12-31T23:59:60Z"));  /* leap second */
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20 09:30:00Z")); /* missing T */
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-2009:30:00Z"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T24:00:00Z")); /* hour 24 */
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:60:00Z"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:61Z"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00")); /* no zone */
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30Z"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T9:30:00Z"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00.Z"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00+0100"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00+01"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00Z "));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00ZZ"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00+01:00x"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-02-30T09:30:00Z"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, ""));
}

/*  RFC 3339 time-numoffset is time-hour ":" time-minute: 00-23 and 00-59. */
static void test_timestamp_offset_range(void **state)
{
    (void)state;
    assert_true(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00+23:59"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00+24:00"));
    assert_false(cv_format_valid(CV_FORMAT_TIMESTAMP, "2026-11-20T09:30:00+01:60"));
}

static void test_text_is_anything(void **state)
{
    (void)state;
    assert_true(cv_format_valid(CV_FORMAT_TEXT, ""));
    assert_true(cv_format_valid(CV_FORMAT_TEXT, "2026-13-45"));
}

/*  Retention counts from created: offsets must move the instant. */
static void test_timestamp_parse(void **state)
{
    (void)state;
    int64_t t = 0;
    assert_true(cv_timestamp_parse("1970-01-01T00:00:00Z", &t));
    assert_int_equal(t, 0);
    assert_true(cv_timestamp_parse("2026-11-20T09:30:00Z", &t));
    assert_int_equal(t, 1795167000);
    assert_true(cv_timestamp_parse("2026-11-20T10:30:00.250+01:00", &t));
    assert_int_equal(t, 1795167000);
    assert_true(cv_timestamp_parse("2026-11-20T04:30:00-05:00", &t));
    assert_int_equal(t, 1795167000);
    assert_false(cv_timestamp_parse("2026-11-20", &t));
    assert_false(cv_timestamp_parse(NULL, &t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_in_preorder),
        cmocka_unit_test(test_ranges_and_parents),
        cmocka_unit_test(test_known_ranges),
        cmocka_unit_test(test_map_is_a_leaf),
        cmocka_unit_test(test_envelope_and_formats),
        cmocka_unit_test(test_find_unknown),
        cmocka_unit_test(test_child),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_dates_agree_with_timegm),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_timestamp_offset_range),
        cmocka_unit_test(test_text_is_anything),
        cmocka_unit_test(test_timestamp_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
