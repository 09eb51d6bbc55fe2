/*  test_json.c: the JSON and YAML forms of a report (proto/cv_json.c).
 *
 *  Error messages are compared whole, positions included: they are what a
 *  user sees, and a wrong column is a bug.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "cv_proto.h"

/*  The example report (examples/reports), as docs/protocol.md describes it. */
static const char example[] =
    "{\n"
    "  \"id\": \"assigned by the broker when empty\",\n"
    "  \"originator\": \"hum-bcu-hull\",\n"
    "  \"author\": \"PC 4471 Grant\",\n"
    "  \"created\": \"2026-11-20T09:30:00Z\",\n"
    "  \"category\": \"vulnerable_individual\",\n"
    "  \"handling_level\": \"OFFICIAL-SENSITIVE\",\n"
    "  \"grading\": {\"source\": \"B\", \"intelligence\": \"2\", \"handling_code\": \"2\"},\n"
    "  \"priority\": \"ROUTINE\",\n"
    "  \"area\": \"hull\",\n"
    "  \"subjects\": [{\"name\": \"Jane Doe\", \"date_of_birth\": \"2009-04-01\",\n"
    "                \"address\": \"1 Example Street, Hull\", \"postcode\": \"HU3 2AB\",\n"
    "                \"identifiers\": {\"pnc\": \"09/123456A\"},\n"
    "                \"vulnerability_factors\": [\"isolation\", \"online contact\"]}],\n"
    "  \"location\": {\"name\": \"...\", \"address\": \"...\", \"postcode\": \"HU1 1AA\",\n"
    "               \"latitude\": 53.7443, \"longitude\": -0.3326},\n"
    "  \"summary\": \"short shareable gist\",\n"
    "  \"narrative\": \"full text\",\n"
    "  \"source\": {\"type\": \"patrol\", \"reference\": \"SR/2026/0441\", \"notes\": \"...\"},\n"
    "  \"indicators\": [\"online_radicalisation\"],\n"
    "  \"tension\": {\"level\": 3, \"trend\": \"rising\"},\n"
    "  \"field_markings\": [{\"path\": \"source\", \"level\": \"SECRET\"}],\n"
    "  \"caveats\": [\"POLICE ONLY\"]\n"
    "}\n";

/*  The same report as cv_json_emit writes it: proto field order. */
static const char example_line[] =
    "{\"id\":\"assigned by the broker when empty\",\"originator\":\"hum-bcu-hull\","
    "\"created\":\"2026-11-20T09:30:00Z\",\"category\":\"vulnerable_individual\","
    "\"handling_level\":\"OFFICIAL-SENSITIVE\",\"author\":\"PC 4471 Grant\","
    "\"grading\":{\"source\":\"B\",\"intelligence\":\"2\",\"handling_code\":\"2\"},"
    "\"priority\":\"ROUTINE\",\"area\":\"hull\","
    "\"subjects\":[{\"name\":\"Jane Doe\",\"date_of_birth\":\"2009-04-01\","
    "\"address\":\"1 Example Street, Hull\",\"postcode\":\"HU3 2AB\","
    "\"identifiers\":{\"pnc\":\"09/123456A\"},"
    "\"vulnerability_factors\":[\"isolation\",\"online contact\"]}],"
    "\"location\":{\"name\":\"...\",\"address\":\"...\",\"postcode\":\"HU1 1AA\","
    "\"latitude\":53.7443,\"longitude\":-0.3326},"
    "\"summary\":\"short shareable gist\",\"narrative\":\"full text\","
    "\"source\":{\"type\":\"patrol\",\"reference\":\"SR/2026/0441\",\"notes\":\"...\"},"
    "\"indicators\":[\"online_radicalisation\"],\"tension\":{\"level\":3,\"trend\":\"rising\"},"
    "\"field_markings\":[{\"path\":\"source\",\"level\":\"SECRET\"}],"
    "\"caveats\":[\"POLICE ONLY\"]}";

static Caveat__Report *parse_n(const char *json, size_t len, cv_error_t *err)
{
    return (Caveat__Report *)cv_json_parse(cv_schema_report(), json, len, "r.json", err);
}

static Caveat__Report *parse(const char *json, cv_error_t *err)
{
    return parse_n(json, strlen(json), err);
}

static void report_free(Caveat__Report *report)
{
    if (report)
        protobuf_c_message_free_unpacked(&report->base, NULL);
}

static char *emit(const Caveat__Report *report, int flags)
{
    char *text = cv_json_emit(&report->base, flags);
    assert_non_null(text);
    return text;
}

/*  Parses json, which must be accepted, and returns its one-line form. */
static char *reemit(const char *json)
{
    cv_error_t err = {0};
    Caveat__Report *report = parse(json, &err);
    if (!report)
        fail_msg("refused %s: %s", json, err.msg);
    char *text = emit(report, 0);
    report_free(report);
    return text;
}

static void expect_round_trip(const char *json, const char *expected)
{
    char *text = reemit(json);
    assert_string_equal(text, expected);
    char *again = reemit(text);
    assert_string_equal(again, text);
    free(again);
    free(text);
}

static void expect_error_n(const char *json, size_t len, const char *expected)
{
    cv_error_t err = {0};
    Caveat__Report *report = parse_n(json, len, &err);
    if (report) {
        report_free(report);
        fail_msg("accepted %s", json);
    }
    assert_string_equal(err.msg, expected);
}

static void expect_error(const char *json, const char *expected)
{
    expect_error_n(json, strlen(json), expected);
}

static struct fy_document *yaml_doc(const char *yaml)
{
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET};
    struct fy_document *doc = fy_document_build_from_string(&cfg, yaml, strlen(yaml));
    assert_non_null(doc);
    return doc;
}

/* ------------------------------------------------------------------------ */

static void test_example_parses(void **state)
{
    (void)state;
    cv_error_t err = {0};
    Caveat__Report *r = parse(example, &err);
    if (!r)
        fail_msg("%s", err.msg);
    assert_string_equal(r->originator, "hum-bcu-hull");
    assert_string_equal(r->grading->handling_code, "2");
    assert_true(r->has_priority);
    assert_int_equal(r->priority, CAVEAT__PRIORITY__ROUTINE);
    assert_int_equal(r->n_subjects, 1);
    assert_string_equal(r->subjects[0]->date_of_birth, "2009-04-01");
    assert_int_equal(r->subjects[0]->n_identifiers, 1);
    assert_string_equal(r->subjects[0]->identifiers[0]->key, "pnc");
    assert_string_equal(r->subjects[0]->identifiers[0]->value, "09/123456A");
    assert_int_equal(r->subjects[0]->n_vulnerability_factors, 2);
    assert_true(r->location->has_latitude);
    assert_true(r->location->latitude == 53.7443);
    assert_true(r->location->longitude == -0.3326);
    assert_true(r->tension->has_level);
    assert_int_equal(r->tension->level, 3);
    assert_int_equal(r->n_caveats, 1);
    report_free(r);
}

static void test_example_round_trip(void **state)
{
    (void)state;
    expect_round_trip(example, example_line);
}

static void test_pretty(void **state)
{
    (void)state;
    cv_error_t err = {0};
    Caveat__Report *r = parse("{\"tension\": {\"level\": 3}, \"indicators\": [\"a\", \"b\"],"
                              " \"subjects\": [{\"identifiers\": {\"pnc\": \"1\"}}],"
                              " \"grading\": {\"source\": \"B\"}}",
                              &err);
    assert_non_null(r);
    char *text = emit(r, CV_JSON_PRETTY);
    assert_string_equal(text, "{\n"
                              "  \"grading\": {\n"
                              "    \"source\": \"B\"\n"
                              "  },\n"
                              "  \"subjects\": [\n"
                              "    {\n"
                              "      \"identifiers\": {\n"
                              "        \"pnc\": \"1\"\n"
                              "      }\n"
                              "    }\n"
                              "  ],\n"
                              "  \"indicators\": [\n"
                              "    \"a\",\n"
                              "    \"b\"\n"
                              "  ],\n"
                              "  \"tension\": {\n"
                              "    \"level\": 3\n"
                              "  }\n"
                              "}");
    free(text);
    report_free(r);

    /* the pretty form of the example reads back to the same report */
    r = parse(example, &err);
    assert_non_null(r);
    text = emit(r, CV_JSON_PRETTY);
    report_free(r);
    char *line = reemit(text);
    assert_string_equal(line, example_line);
    free(line);
    free(text);
}

static void test_empty_object(void **state)
{
    (void)state;
    cv_error_t err = {0};
    Caveat__Report *r = parse(" { } ", &err);
    assert_non_null(r);
    assert_null(r->id);
    assert_false(r->has_priority);
    char *text = emit(r, 0);
    assert_string_equal(text, "{}");
    free(text);
    text = emit(r, CV_JSON_PRETTY);
    assert_string_equal(text, "{}");
    free(text);
    report_free(r);
    expect_round_trip("{\"grading\": {}, \"subjects\": [{}], \"indicators\": []}",
                      "{\"grading\":{},\"subjects\":[{}]}");
}

static void test_unknown_key(void **state)
{
    (void)state;
    expect_error("{\n  \"grading\": {\n    \"sourse\": \"B\"\n  }\n}",
                 "r.json:3:5: error: grading.sourse: unknown field");
    expect_error("{\"nmae\": 1}", "r.json:1:2: error: nmae: unknown field");
    expect_error("{\"subjects\": [{}, {\"nmae\": \"x\"}]}",
                 "r.json:1:20: error: subjects[1].nmae: unknown field");
    /* control characters in a key do not break the one-line message */
    expect_error("{\"a\\nb\": 1}", "r.json:1:2: error: a?b: unknown field");
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_error("{\"tension\": {\"level\": \"3\"}}",
                 "r.json:1:23: error: tension.level: expected an integer");
    expect_error("{\"tension\": {\"level\": 3.5}}",
                 "r.json:1:23: error: tension.level: expected an integer");
    expect_error("{\"tension\": {\"level\": true}}",
                 "r.json:1:23: error: tension.level: expected an integer");
    expect_error("{\"summary\": 3}", "r.json:1:13: error: summary: expected a string");
    expect_error("{\"summary\": true}", "r.json:1:13: error: summary: expected a string");
    expect_error("{\"summary\": {\"a\": \"b\"}}", "r.json:1:14: error: summary: expected a string");
    expect_error("{\"summary\": [\"b\"]}", "r.json:1:14: error: summary: expected a string");
    expect_error("{\"grading\": [\"B\"]}", "r.json:1:14: error: grading: expected an object");
    expect_error("{\"grading\": \"B\"}", "r.json:1:13: error: grading: expected an object");
    /* an empty array has no position of its own: the key's is used */
    expect_error("{\"grading\": []}", "r.json:1:2: error: grading: expected an object");
    expect_error("{\"indicators\": \"x\"}", "r.json:1:16: error: indicators: expected an array");
    expect_error("{\"indicators\": [\"a\", 1]}",
                 "r.json:1:22: error: indicators[1]: expected a string");
    expect_error("{\"location\": {\"latitude\": \"53.1\"}}",
                 "r.json:1:27: error: location.latitude: expected a number");
    expect_error("{\"priority\": 1}", "r.json:1:14: error: priority: expected a string");
    expect_error("{\"subjects\": [{\"identifiers\": {\"pnc\": 5}}]}",
                 "r.json:1:39: error: subjects[0].identifiers.pnc: expected a string");
    expect_error("{\"subjects\": [{\"identifiers\": [\"pnc\"]}]}",
                 "r.json:1:32: error: subjects[0].identifiers: expected an object");
    expect_error("{\"subjects\": {\"name\": \"x\"}}",
                 "r.json:1:15: error: subjects: expected an array");
}

static void test_wrong_top_level(void **state)
{
    (void)state;
    expect_error("[\"x\"]", "r.json:1:2: error: expected an object");
    expect_error("\"x\"", "r.json:1:1: error: expected an object");
    expect_error("  42", "r.json:1:3: error: expected an object");
    expect_error("[]", "r.json: error: expected an object");
    expect_error("null", "r.json:1:1: error: expected an object");
}

static void test_bad_enum(void **state)
{
    (void)state;
    expect_error("{\"priority\": \"URGENT\"}",
                 "r.json:1:14: error: priority: unknown value \"URGENT\" "
                 "(expected ROUTINE, PRIORITY, IMMEDIATE)");
    expect_error("{\"priority\": \"routine\"}",
                 "r.json:1:14: error: priority: unknown value \"routine\" "
                 "(expected ROUTINE, PRIORITY, IMMEDIATE)");
    expect_round_trip("{\"priority\": \"IMMEDIATE\"}", "{\"priority\":\"IMMEDIATE\"}");
}

static void test_dates(void **state)
{
    (void)state;
    expect_error("{\"subjects\": [{\"date_of_birth\": \"2026-02-30\"}]}",
                 "r.json:1:33: error: subjects[0].date_of_birth: not a date (YYYY-MM-DD)");
    expect_error("{\"subjects\": [{\"date_of_birth\": \"2026-2-3\"}]}",
                 "r.json:1:33: error: subjects[0].date_of_birth: not a date (YYYY-MM-DD)");
    expect_error("{\"subjects\": [{\"date_of_birth\": \"2026-02-03T00:00:00Z\"}]}",
                 "r.json:1:33: error: subjects[0].date_of_birth: not a date (YYYY-MM-DD)");
    expect_error("{\"created\": \"2026-11-20 09:30:00\"}",
                 "r.json:1:13: error: created: not a timestamp (RFC 3339, e.g. "
                 "2026-11-20T09:30:00Z)");
    expect_error("{\"created\": \"2026-11-20T25:00:00Z\"}",
                 "r.json:1:13: error: created: not a timestamp (RFC 3339, e.g. "
                 "2026-11-20T09:30:00Z)");
    expect_round_trip("{\"created\": \"2026-11-20T09:30:00.25+01:00\","
                      " \"subjects\": [{\"date_of_birth\": \"2024-02-29\"}]}",
                      "{\"created\":\"2026-11-20T09:30:00.25+01:00\","
                      "\"subjects\":[{\"date_of_birth\":\"2024-02-29\"}]}");
}

static void test_nested_path(void **state)
{
    (void)state;
    expect_error("{\"subjects\": [\n"
                 "  {\"name\": \"A\", \"date_of_birth\": \"2001-01-01\"},\n"
                 "  {\"name\": \"B\", \"date_of_birth\": \"2026-02-30\"}\n"
                 "]}",
                 "r.json:3:34: error: subjects[1].date_of_birth: not a date (YYYY-MM-DD)");
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_error("{\"a\": 1,\n \"b\": }",
                 "r.json:2:7: error: JSON does not allow empty values in a mapping");
    expect_error("{\"summary\": \"x}", "r.json:1:14: error: double-quoted scalar without "
                                       "closing quote");
    expect_error("{} {}", "r.json:1:4: error: unexpected content after the JSON value");
    expect_error("{}\n[]", "r.json:2:1: error: unexpected content after the JSON value");
    expect_error("", "r.json:1:1: error: JSON does not allow empty root content");
    expect_error("{summary: 1}", "r.json:1:2: error: Invalid JSON plain scalar");
    expect_error("{\"tension\": {\"level\": 01}}", "r.json:1:23: error: Invalid JSON plain scalar");
    expect_error("[1, 2,]",
                 "r.json:1:6: error: JSON disallows trailing comma before closing bracket");
}

static void test_duplicate_key(void **state)
{
    (void)state;
    /* libfyaml refuses duplicate keys itself; its column is past the quote */
    expect_error("{\"summary\": \"a\",\n \"summary\": \"b\"}", "r.json:2:3: error: duplicate key");
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    expect_error("{\"summary\": \"a\xff"
                 "b\"}",
                 "r.json:1:15: error: invalid UTF-8");
    expect_error("{\"summary\": \"\xc3\xa9\xc0\x80\"}", "r.json:1:15: error: invalid UTF-8");
    expect_error("{\"summary\": \"\xed\xa0\x80\"}", "r.json:1:14: error: invalid UTF-8");
    expect_error("{\"summary\": \"\xf4\x90\x80\x80\"}", "r.json:1:14: error: invalid UTF-8");
    expect_error("{\"summary\": \"\xe2\x82\"}", "r.json:1:14: error: invalid UTF-8");
    /* libfyaml would stop at these bytes and return a truncated document */
    expect_error("{\"summary\": \"a\"}\n\xff", "r.json:2:1: error: invalid UTF-8");
    expect_error("{\"a\":1,\xff\"b\":2}", "r.json:1:8: error: invalid UTF-8");
    expect_error_n("{}\0{\"x\": 1}", 11, "r.json:1:3: error: NUL byte in input");
    expect_error("{\"summary\": \"a\\u0000b\"}",
                 "r.json:1:13: error: summary: contains a NUL character");
    cv_error_t err = {0};
    assert_null(parse("{\"summary\": \"\\ud800\"}", &err));
    assert_non_null(strstr(err.msg, "r.json:1:"));
    /* a valid pair of surrogate escapes is one character */
    Caveat__Report *r = parse("{\"summary\": \"\\ud83d\\ude00\"}", &err);
    assert_non_null(r);
    assert_string_equal(r->summary, "\xf0\x9f\x98\x80");
    report_free(r);
}

static void test_numbers(void **state)
{
    (void)state;
    expect_round_trip("{\"tension\": {\"level\": 2147483647}}",
                      "{\"tension\":{\"level\":2147483647}}");
    expect_round_trip("{\"tension\": {\"level\": -2147483648}}",
                      "{\"tension\":{\"level\":-2147483648}}");
    expect_error("{\"tension\": {\"level\": 2147483648}}",
                 "r.json:1:23: error: tension.level: out of range for int32");
    expect_error("{\"tension\": {\"level\": -2147483649}}",
                 "r.json:1:23: error: tension.level: out of range for int32");
    expect_error("{\"tension\": {\"level\": 99999999999999999999999}}",
                 "r.json:1:23: error: tension.level: out of range for int32");
    expect_error("{\"tension\": {\"level\": 1e2}}",
                 "r.json:1:23: error: tension.level: expected an integer");
    expect_error("{\"location\": {\"latitude\": 1e400}}",
                 "r.json:1:27: error: location.latitude: out of range for double");
    expect_error("{\"location\": {\"latitude\": -1e400}}",
                 "r.json:1:27: error: location.latitude: out of range for double");
    expect_round_trip("{\"location\": {\"latitude\": 1e-400, \"longitude\": -0}}",
                      "{\"location\":{\"latitude\":0,\"longitude\":-0}}");
    expect_round_trip("{\"location\": {\"latitude\": 0.1, \"longitude\": 1E+2}}",
                      "{\"location\":{\"latitude\":0.1,\"longitude\":100}}");
}

/*  Doubles are written with as few digits as read back exactly. */
static void test_doubles(void **state)
{
    (void)state;
    static const double values[] = {
        0.1,     1.0 / 3, -1e-7, 1e21, 123456789012345678.0, 5e-324, 1.7976931348623157e308,
        53.7443, 2.0 / 3, 100};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        Caveat__Location location = CAVEAT__LOCATION__INIT;
        Caveat__Report report = CAVEAT__REPORT__INIT;
        location.has_latitude = 1;
        location.latitude = values[i];
        report.location = &location;
        char *text = emit(&report, 0);
        cv_error_t err = {0};
        Caveat__Report *back = parse(text, &err);
        if (!back)
            fail_msg("%s: %s", text, err.msg);
        assert_true(back->location->latitude == values[i]);
        /* no trailing noise such as 0.10000000000000001 */
        assert_true(strlen(text) <= strlen("{\"location\":{\"latitude\":}}") + 24);
        report_free(back);
        free(text);
    }
    Caveat__Location location = CAVEAT__LOCATION__INIT;
    Caveat__Report report = CAVEAT__REPORT__INIT;
    location.has_latitude = 1;
    location.latitude = 0.1;
    report.location = &location;
    char *text = emit(&report, 0);
    assert_string_equal(text, "{\"location\":{\"latitude\":0.1}}");
    free(text);
    /* JSON has no NaN: written as null, which reads back as absent */
    location.latitude = NAN;
    text = emit(&report, 0);
    assert_string_equal(text, "{\"location\":{\"latitude\":null}}");
    free(text);
}

static void test_map_round_trip(void **state)
{
    (void)state;
    const char *json = "{\"subjects\": [{\"identifiers\": {\"pnc\": \"09/123456A\","
                       " \"nino\": \"AB123456C\", \"\": \"empty key\"}}]}";
    cv_error_t err = {0};
    Caveat__Report *r = parse(json, &err);
    assert_non_null(r);
    assert_int_equal(r->subjects[0]->n_identifiers, 3);
    assert_string_equal(r->subjects[0]->identifiers[1]->key, "nino");
    assert_string_equal(r->subjects[0]->identifiers[1]->value, "AB123456C");
    report_free(r);
    expect_round_trip(json, "{\"subjects\":[{\"identifiers\":{\"pnc\":\"09/123456A\","
                            "\"nino\":\"AB123456C\",\"\":\"empty key\"}}]}");
    expect_round_trip("{\"subjects\": [{\"identifiers\": {}}]}", "{\"subjects\":[{}]}");
    expect_error("{\"subjects\": [{\"identifiers\": {\"pnc\": null}}]}",
                 "r.json:1:39: error: subjects[0].identifiers.pnc: null map value");
    expect_error("{\"subjects\": [{\"identifiers\": {\"pnc\": {\"a\": \"b\"}}}]}",
                 "r.json:1:40: error: subjects[0].identifiers.pnc: expected a string");
}

static void test_null_is_absent(void **state)
{
    (void)state;
    cv_error_t err = {0};
    Caveat__Report *r = parse("{\"summary\": null, \"grading\": null, \"indicators\": null,"
                              " \"priority\": null, \"tension\": {\"level\": null},"
                              " \"subjects\": [{\"identifiers\": null}]}",
                              &err);
    assert_non_null(r);
    assert_null(r->summary);
    assert_null(r->grading);
    assert_int_equal(r->n_indicators, 0);
    assert_false(r->has_priority);
    assert_non_null(r->tension);
    assert_false(r->tension->has_level);
    char *text = emit(r, 0);
    assert_string_equal(text, "{\"subjects\":[{}],\"tension\":{}}");
    free(text);
    report_free(r);
    /* null stands for a field, not for an element */
    expect_error("{\"indicators\": [\"a\", null]}",
                 "r.json:1:22: error: indicators[1]: null in an array");
    expect_error("{\"subjects\": [null]}", "r.json:1:15: error: subjects[0]: null in an array");
    /* only the JSON literal is null; the string "null" is text */
    expect_round_trip("{\"summary\": \"null\"}", "{\"summary\":\"null\"}");
}

static void test_yaml_mode(void **state)
{
    (void)state;
    struct fy_document *doc = yaml_doc("grading:\n"
                                       "  handling_code: 2\n"
                                       "priority: IMMEDIATE\n"
                                       "summary: 2026-01-01\n"
                                       "narrative: ~\n"
                                       "area:\n"
                                       "indicators: [a, 'b', \"c\"]\n"
                                       "tension: {level: 3}\n");
    cv_error_t err = {0};
    Caveat__Report *r = (Caveat__Report *)cv_json_from_node(
        cv_schema_report(), fy_document_root(doc), 0, "t.yaml", &err);
    if (!r)
        fail_msg("%s", err.msg);
    assert_string_equal(r->grading->handling_code, "2");
    assert_int_equal(r->priority, CAVEAT__PRIORITY__IMMEDIATE);
    assert_string_equal(r->summary, "2026-01-01");
    assert_null(r->narrative);
    assert_null(r->area);
    assert_int_equal(r->n_indicators, 3);
    assert_int_equal(r->tension->level, 3);
    report_free(r);

    /* the same node under JSON rules: 2 is a number, not text */
    assert_null(cv_json_from_node(cv_schema_report(), fy_document_root(doc), CV_JSON_TYPED,
                                  "t.yaml", &err));
    assert_string_equal(err.msg, "t.yaml:2:18: error: grading.handling_code: expected a string");
    fy_document_destroy(doc);

    /* a quoted number is text in YAML too */
    doc = yaml_doc("tension:\n  level: '3'\n");
    assert_null(cv_json_from_node(cv_schema_report(), fy_document_root(doc), 0, "t.yaml", &err));
    assert_string_equal(err.msg, "t.yaml:2:10: error: tension.level: expected an integer");
    fy_document_destroy(doc);

    doc = yaml_doc("caveats: &x [a]\nindicators: *x\n");
    assert_null(cv_json_from_node(cv_schema_report(), fy_document_root(doc), 0, "t.yaml", &err));
    assert_string_equal(err.msg, "t.yaml:2:13: error: indicators: aliases are not supported");
    fy_document_destroy(doc);

    doc = yaml_doc("caveats: [a]\n[k]: v\n");
    assert_null(cv_json_from_node(cv_schema_report(), fy_document_root(doc), 0, "t.yaml", &err));
    assert_string_equal(err.msg, "t.yaml:2:2: error: expected a field name");
    fy_document_destroy(doc);

    assert_null(cv_json_from_node(cv_schema_report(), NULL, false, "t.yaml", &err));
    assert_string_equal(err.msg, "t.yaml: error: expected an object");
}

/*  Text in an SVG chart: markup escaped, and what XML cannot hold or a
 *  viewer would act on rather than show (a right-to-left override that
 *  shows a name reversed, an isolate) as "?"; right-to-left letters and
 *  the right-to-left mark as they are. */
static void test_xml_text(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    cv_xml_text(out, "<a href=\"x\">&'\x01 \xe2\x80\xae"
                     "ecilop \xe2\x81\xa7"
                     "x \xd7\xa9\xe2\x80\x8f");
    fclose(out);
    assert_string_equal(text,
                        "&lt;a href=&quot;x&quot;&gt;&amp;&apos;? ?ecilop ?x \xd7\xa9\xe2\x80\x8f");
    free(text);
}

static void test_escaping_round_trip(void **state)
{
    (void)state;
    Caveat__Report report = CAVEAT__REPORT__INIT;
    char summary[] = "q\"b\\s/\n\t\r\b\f\x01\x1f \xc3\xa9 \xf0\x9f\x98\x80 \x7f"
                     " \xc2\x85 \xe2\x80\xa8 \xef\xbb\xbf \xe2\x80\xae \xe2\x81\xa7"
                     " \xd7\xa9\xe2\x80\x8f end"; /* RLO, RLI; a Hebrew letter and RLM stay */
    char narrative[] = "a\xff"
                       "b\xc3";
    char handling[] = "2";
    Caveat__Grading grading = CAVEAT__GRADING__INIT;
    grading.handling_code = handling;
    report.summary = summary;
    report.narrative = narrative;
    report.grading = &grading;
    char *text = emit(&report, 0);
    assert_string_equal(text,
                        "{\"grading\":{\"handling_code\":\"2\"},"
                        "\"summary\":\"q\\\"b\\\\s/\\n\\t\\r\\b\\f\\u0001\\u001f "
                        "\xc3\xa9 \xf0\x9f\x98\x80 \\u007f \\u0085 \\u2028 \\ufeff \\u202e \\u2067 "
                        "\xd7\xa9\xe2\x80\x8f end\","
                        "\"narrative\":\"a\xef\xbf\xbd"
                        "b\xef\xbf\xbd\"}");
    cv_error_t err = {0};
    Caveat__Report *back = parse(text, &err);
    if (!back)
        fail_msg("%s", err.msg);
    assert_string_equal(back->summary, summary);
    assert_string_equal(back->narrative, "a\xef\xbf\xbd"
                                         "b\xef\xbf\xbd");
    assert_string_equal(back->grading->handling_code, "2");
    char *again = emit(back, 0);
    assert_string_equal(again, text);
    char *pretty = emit(back, CV_JSON_PRETTY);
    char *line = reemit(pretty);
    assert_string_equal(line, text);
    free(line);
    free(pretty);
    free(again);
    free(text);
    report_free(back);
}

static void test_node_position(void **state)
{
    (void)state;
    struct fy_document *doc = yaml_doc("a:\n  - {}\n  - [x, y]\n  - 'q'\nb: {}\n");
    struct fy_node *root = fy_document_root(doc);
    int line, col;
    cv_node_position(root, &line, &col);
    assert_int_equal(line, 1);
    assert_int_equal(col, 1);
    cv_node_position(fy_node_by_path(root, "/a/1", FY_NT, FYNWF_DONT_FOLLOW), &line, &col);
    assert_int_equal(line, 3);
    assert_int_equal(col, 6);
    cv_node_position(fy_node_by_path(root, "/a/2", FY_NT, FYNWF_DONT_FOLLOW), &line, &col);
    assert_int_equal(line, 4);
    assert_int_equal(col, 5);
    /* an empty mapping has no scalar: the key that holds it */
    cv_node_position(fy_node_by_path(root, "/b", FY_NT, FYNWF_DONT_FOLLOW), &line, &col);
    assert_int_equal(line, 5);
    assert_int_equal(col, 1);
    /* and an empty mapping in a list: its parent's position */
    cv_node_position(fy_node_by_path(root, "/a/0", FY_NT, FYNWF_DONT_FOLLOW), &line, &col);
    assert_int_equal(line, 1);
    assert_int_equal(col, 1);
    cv_node_position(NULL, &line, &col);
    assert_int_equal(line, 0);
    fy_document_destroy(doc);
}

/*  Every prefix and many mutations of the example: never a crash or leak,
 *  and whatever is accepted writes out and reads back the same. */
static void check_any(const char *buf, size_t len)
{
    cv_error_t err = {0};
    Caveat__Report *r = parse_n(buf, len, &err);
    if (!r) {
        assert_true(strncmp(err.msg, "r.json", 6) == 0);
        return;
    }
    char *text = emit(r, 0);
    report_free(r);
    char *again = reemit(text);
    assert_string_equal(again, text);
    free(again);
    free(text);
}

/*  The writer's numbers and strings: every digit of a uint64, and strings
 *  of plain ASCII, escapes and UTF-8 in one, as JSON has them. */
static void test_writer_numbers_and_strings(void **state)
{
    (void)state;
    cv_json_writer_t *w = cv_json_writer_new(0);
    cv_json_array_begin(w);
    cv_json_uint(w, 0);
    cv_json_uint(w, 7);
    cv_json_uint(w, 10);
    cv_json_uint(w, 1796224904233u);
    cv_json_uint(w, UINT64_MAX);
    cv_json_string(w, "plain");
    cv_json_string(w, "a\"b\\c\nd\x01"
                      "e\xc3\xa9"
                      "f");
    cv_json_string(w, "");
    cv_json_array_end(w);
    assert_string_equal(cv_json_writer_text(w),
                        "[0,7,10,1796224904233,18446744073709551615,\"plain\","
                        "\"a\\\"b\\\\c\\nd\\u0001e\xc3\xa9"
                        "f\",\"\"]");
    cv_json_writer_destroy(&w);
}

/*  Hashes as hex: every nibble's digit, lowercase, as a value after a key
 *  and in an array, null for none; and past the writer's first buffer. */
static void test_writer_hex(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x00, 0xff};
    cv_json_writer_t *w = cv_json_writer_new(0);
    cv_json_object_begin(w);
    cv_json_key(w, "h");
    cv_json_hex(w, bytes, sizeof bytes);
    cv_json_key(w, "none");
    cv_json_hex(w, NULL, 32);
    cv_json_key(w, "list");
    cv_json_array_begin(w);
    cv_json_hex(w, bytes, 1);
    cv_json_hex(w, bytes, 0);
    cv_json_array_end(w);
    cv_json_object_end(w);
    assert_string_equal(cv_json_writer_text(w),
                        "{\"h\":\"0123456789abcdef00ff\",\"none\":null,\"list\":[\"01\",\"\"]}");
    cv_json_writer_destroy(&w);

    uint8_t big[1000];
    char want[2 * sizeof big + 3] = "\"";
    for (size_t i = 0; i < sizeof big; i++) {
        big[i] = (uint8_t)(i * 7);
        snprintf(want + 1 + 2 * i, 3, "%02x", big[i]);
    }
    strcat(want, "\"");
    w = cv_json_writer_new(0);
    cv_json_hex(w, big, sizeof big);
    assert_string_equal(cv_json_writer_text(w), want);
    cv_json_writer_destroy(&w);
}

/*  What the writer must make of a string of 'a's with the one byte c in
 *  it: c itself when plain ASCII, else its escape, or U+FFFD for a byte
 *  that cannot begin UTF-8 alone. */
static void expected_one_special(char *out, const unsigned char *s, size_t len)
{
    static const char shorts[] = "\"\\\b\f\n\r\t", written[] = "\"\\bfnrt";
    char *at = out;
    *at++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        const char *in = c ? strchr(shorts, c) : NULL;
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            *at++ = (char)c;
        else if (in)
            at += sprintf(at, "\\%c", written[in - shorts]);
        else if (c < 0x80)
            at += sprintf(at, "\\u%04x", c);
        else
            at += sprintf(at, "\xef\xbf\xbd");
    }
    *at++ = '"';
    *at = '\0';
}

/*  Every byte value, at every place in a string (or a key) of plain ASCII (the
 *  first, the last, and each place of the first three 8-byte words), is
 *  written as JSON has it: itself, its escape, or U+FFFD. */
static void test_writer_every_byte_everywhere(void **state)
{
    (void)state;
    unsigned char s[32];
    char want[64];
    for (size_t len = 1; len <= 25; len++)
        for (size_t at = 0; at < len; at++)
            for (int c = 1; c < 256; c++) {
                memset(s, 'a', len);
                s[at] = (unsigned char)c;
                s[len] = '\0';
                expected_one_special(want, s, len);
                cv_json_writer_t *w = cv_json_writer_new(0);
                cv_json_string(w, (const char *)s);
                if (strcmp(cv_json_writer_text(w), want) != 0)
                    fail_msg("byte 0x%02x at %zu of %zu: %s, not %s", c, at, len,
                             cv_json_writer_text(w), want);
                cv_json_writer_destroy(&w);
                /* and as the second key of an object */
                char object[96];
                snprintf(object, sizeof object, "{\"k\":0,%s:1}", want);
                w = cv_json_writer_new(0);
                cv_json_object_begin(w);
                cv_json_key(w, "k");
                cv_json_uint(w, 0);
                cv_json_key(w, (const char *)s);
                cv_json_uint(w, 1);
                cv_json_object_end(w);
                if (strcmp(cv_json_writer_text(w), object) != 0)
                    fail_msg("key, byte 0x%02x at %zu of %zu: %s, not %s", c, at, len,
                             cv_json_writer_text(w), object);
                cv_json_writer_destroy(&w);
            }
}

/*  The text taken from a writer is the caller's, with its length: past
 *  the writer's first buffer, and for a writer that wrote nothing. */
static void test_writer_take(void **state)
{
    (void)state;
    cv_json_writer_t *w = cv_json_writer_new(0);
    cv_json_array_begin(w);
    char want[4096] = "[";
    for (int i = 0; i < 300; i++) {
        cv_json_string(w, "abc");
        strcat(want, i ? ",\"abc\"" : "\"abc\"");
    }
    cv_json_array_end(w);
    strcat(want, "]");
    size_t len = 0;
    char *text = cv_json_writer_take(&w, &len);
    assert_null(w);
    assert_string_equal(text, want);
    assert_int_equal(len, strlen(want));
    free(text);

    w = cv_json_writer_new(0);
    text = cv_json_writer_take(&w, &len);
    assert_string_equal(text, "");
    assert_int_equal(len, 0);
    free(text);
}

/*  Documents written one after another in one writer: no separator
 *  between them, and a rewind drops what came after the length kept. */
static void test_writer_rewind(void **state)
{
    (void)state;
    cv_json_writer_t *w = cv_json_writer_new(0);
    cv_json_object_begin(w);
    cv_json_key(w, "a");
    cv_json_uint(w, 1);
    cv_json_object_end(w);
    size_t first = cv_json_writer_length(w);
    assert_int_equal(first, strlen("{\"a\":1}"));
    cv_json_writer_rewind(w, first);
    cv_json_object_begin(w);
    cv_json_key(w, "b");
    cv_json_array_begin(w);
    cv_json_string(w, "x");
    assert_int_equal(cv_json_writer_length(w), strlen("{\"a\":1}{\"b\":[\"x\""));
    /* a document dropped half-written: the writer is back at its top level */
    cv_json_writer_rewind(w, first);
    assert_string_equal(cv_json_writer_text(w), "{\"a\":1}");
    cv_json_string(w, "c");
    assert_string_equal(cv_json_writer_text(w), "{\"a\":1}\"c\"");
    cv_json_writer_rewind(w, 0);
    assert_string_equal(cv_json_writer_text(w), "");
    assert_int_equal(cv_json_writer_length(w), 0);
    cv_json_array_begin(w);
    cv_json_array_end(w);
    assert_string_equal(cv_json_writer_text(w), "[]");
    /* a write that fails (here a hex string no buffer could hold) leaves
     * no text; a rewind to a length read before it gives back what came
     * before and clears the failure */
    size_t before = cv_json_writer_length(w);
    cv_json_writer_rewind(w, before);
    cv_json_object_begin(w);
    cv_json_key(w, "h");
    cv_json_hex(w, (const uint8_t *)"", SIZE_MAX / 2);
    assert_null(cv_json_writer_text(w));
    assert_int_equal(cv_json_writer_length(w), 0);
    cv_json_writer_rewind(w, before);
    assert_string_equal(cv_json_writer_text(w), "[]");
    cv_json_string(w, "after");
    assert_string_equal(cv_json_writer_text(w), "[]\"after\"");
    cv_json_writer_destroy(&w);
}

static void test_robustness(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]\",:\\0123456789-.eE aZnul\xff\xc3\x80\n\t";
    size_t len = strlen(example);
    char *buf = malloc(len);
    assert_non_null(buf);
    for (size_t n = 0; n <= len; n++) {
        memcpy(buf, example, n);
        check_any(buf, n);
    }
    srand(1);
    for (int i = 0; i < 4000; i++) {
        memcpy(buf, example, len);
        for (int k = rand() % 3; k >= 0; k--) {
            size_t at = (size_t)rand() % len;
            buf[at] = rand() % 4 ? alphabet[rand() % (int)(sizeof alphabet - 1)] : (char)rand();
        }
        check_any(buf, len);
    }
    free(buf);

    /* deep nesting: refused by libfyaml's depth limit or by the schema,
     * without recursion running away */
    enum { DEEP = 100000 };
    char *deep = malloc(2 * DEEP + 32);
    assert_non_null(deep);
    size_t n = (size_t)sprintf(deep, "{\"summary\": ");
    memset(deep + n, '[', DEEP);
    memset(deep + n + DEEP, ']', DEEP);
    strcpy(deep + n + 2 * DEEP, "}");
    check_any(deep, strlen(deep));
    memset(deep, '[', DEEP);
    memset(deep + DEEP, ']', DEEP);
    check_any(deep, 2 * DEEP);
    free(deep);
}

/*  A recipient's view is not a report: a date of birth masked to its year
 *  is no longer a date. View mode reads it; report mode refuses it. */
static void test_view_mode_allows_masked_formats(void **state)
{
    (void)state;
    const char *text = "{\"subjects\": [{\"date_of_birth\": \"2009\"}]}";
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET | FYPCF_JSON_FORCE};
    struct fy_document *doc = fy_document_build_from_string(&cfg, text, strlen(text));
    assert_non_null(doc);
    cv_error_t err = {0};
    assert_null(
        cv_json_from_node(cv_schema_report(), fy_document_root(doc), CV_JSON_TYPED, "v", &err));
    assert_string_equal(err.msg,
                        "v:1:33: error: subjects[0].date_of_birth: not a date (YYYY-MM-DD)");
    Caveat__Report *view = (Caveat__Report *)cv_json_from_node(
        cv_schema_report(), fy_document_root(doc), CV_JSON_TYPED | CV_JSON_VIEW, "v", &err);
    assert_non_null(view);
    assert_string_equal(view->subjects[0]->date_of_birth, "2009");
    caveat__report__free_unpacked(view, NULL);
    fy_document_destroy(doc);
}

/*  cv_utf8_valid reads ASCII eight bytes at a time: a byte that is not
 *  UTF-8 is found at every position, in strings of every length around
 *  the word's, and a character split across a word's end is whole. */
static void test_utf8_valid_at_every_position(void **state)
{
    (void)state;
    char text[40];
    for (size_t len = 1; len < sizeof text; len++)
        for (size_t at = 0; at < len; at++) {
            memset(text, 'a', len);
            text[at] = (char)0xff;
            assert_false(cv_utf8_valid(text, len));
            text[at] = 'a';
            assert_true(cv_utf8_valid(text, len));
            if (at + 1 < len) { /* é across whatever boundary */
                memcpy(text + at, "\xc3\xa9", 2);
                assert_true(cv_utf8_valid(text, len));
                assert_false(cv_utf8_valid(text, at + 1)); /* cut after its first byte */
            }
        }
}

/*  Readable text: UTF-8 without NUL and without C0 (but the controls
 *  allowed), DEL or C1 controls, whatever their encoding's length. */
static void test_text_readable(void **state)
{
    (void)state;
    const char *fine = "Caf\xc3\xa9, \xe2\x80\x94 \xf0\x9f\x99\x82 ok";
    assert_true(cv_text_readable(fine, strlen(fine), ""));
    assert_true(cv_text_readable("", 0, ""));
    assert_true(cv_text_readable("a\nb\tc", 5, "\n\t"));
    assert_false(cv_text_readable("a\nb", 3, ""));
    assert_false(cv_text_readable("a\tb", 3, "\n"));
    assert_false(cv_text_readable("a\rb", 3, "\n\t"));
    assert_false(cv_text_readable("a\x1b[2Jb", 6, "\n\t")); /* a terminal's command */
    assert_false(cv_text_readable("a\x7f", 2, "\n\t"));     /* DEL */
    assert_false(cv_text_readable("a\xc2\x85", 3, "\n\t")); /* NEL, a C1 control */
    assert_false(cv_text_readable("a\xc2\x9f", 3, "\n\t"));
    assert_true(cv_text_readable("a\xc2\xa0", 3, ""));      /* NBSP, past C1 */
    assert_false(cv_text_readable("a\xff", 2, "\n\t"));     /* not UTF-8 */
    assert_false(cv_text_readable("a\xc0\x80", 3, "\n\t")); /* an overlong NUL */
    assert_false(cv_text_readable("a\0b", 3, "\n\t"));
    /* shown otherwise than stored: separators, bidirectional controls */
    assert_false(cv_text_readable("a\xe2\x80\xa8", 4, "\n\t"));               /* U+2028 */
    assert_false(cv_text_readable("a\xe2\x80\xa9", 4, "\n\t"));               /* U+2029 */
    assert_false(cv_text_readable("a\xe2\x80\xaa", 4, ""));                   /* U+202A, LRE */
    assert_false(cv_text_readable("a\xe2\x80\xae", 4, ""));                   /* U+202E, RLO */
    assert_false(cv_text_readable("a\xe2\x81\xa6", 4, ""));                   /* U+2066, LRI */
    assert_false(cv_text_readable("a\xe2\x81\xa9", 4, ""));                   /* U+2069, PDI */
    assert_true(cv_text_readable("a\xe2\x80\xa7", 4, ""));                    /* U+2027, before */
    assert_true(cv_text_readable("a\xe2\x80\xaf", 4, ""));                    /* U+202F, NNBSP */
    assert_true(cv_text_readable("a\xe2\x81\xa5", 4, ""));                    /* U+2065, before */
    assert_true(cv_text_readable("a\xe2\x81\xaa", 4, ""));                    /* U+206A, after */
    assert_true(cv_text_readable("\xd8\xb3\xd9\x84\xd8\xa7\xd9\x85", 8, "")); /* Arabic */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_readable),
        cmocka_unit_test(test_utf8_valid_at_every_position),
        cmocka_unit_test(test_example_parses),
        cmocka_unit_test(test_example_round_trip),
        cmocka_unit_test(test_pretty),
        cmocka_unit_test(test_empty_object),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_wrong_top_level),
        cmocka_unit_test(test_bad_enum),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_nested_path),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_doubles),
        cmocka_unit_test(test_map_round_trip),
        cmocka_unit_test(test_null_is_absent),
        cmocka_unit_test(test_yaml_mode),
        cmocka_unit_test(test_escaping_round_trip),
        cmocka_unit_test(test_xml_text),
        cmocka_unit_test(test_node_position),
        cmocka_unit_test(test_robustness),
        cmocka_unit_test(test_writer_numbers_and_strings),
        cmocka_unit_test(test_writer_hex),
        cmocka_unit_test(test_writer_every_byte_everywhere),
        cmocka_unit_test(test_writer_take),
        cmocka_unit_test(test_writer_rewind),
        cmocka_unit_test(test_view_mode_allows_masked_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
