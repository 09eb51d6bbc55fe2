/*  The broker without sockets (cv_broker_new_offline, cv_broker_feed):
 *  the real dispatch, store and routing, fed frames as if agencies sent
 *  them. The fuzz target fuzz_broker_frame drives the same entry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <czmq.h>

#include "cv_broker.h"
#include "harness.h"

typedef struct {
    harness_t *files; /* a directory with the example policy */
    cv_broker_t *broker;
} offline_t;

static int setup(void **state)
{
    offline_t *o = calloc(1, sizeof *o);
    o->files = harness_new();
    char policy[600], data[600];
    snprintf(policy, sizeof policy, "%s", harness_path(o->files, "policy.yaml"));
    snprintf(data, sizeof data, "%s", harness_path(o->files, "data"));
    cv_broker_config_t config = {.policy_path = policy, .data_dir = data, .sync = CV_SYNC_OFF};
    cv_error_t err = {0};
    o->broker = cv_broker_new_offline(&config, &err);
    if (!o->broker)
        print_error("offline broker: %s\n", err.msg);
    *state = o;
    return o->broker ? 0 : -1;
}

static int teardown(void **state)
{
    offline_t *o = *state;
    cv_broker_destroy(&o->broker);
    harness_destroy(&o->files);
    free(o);
    return 0;
}

static int agency(offline_t *o, const char *id)
{
    (void)o;
    cv_error_t err = {0};
    cv_policy_t *policy = cv_policy_load_file(harness_path(o->files, "policy.yaml"), NULL, &err);
    assert_non_null(policy);
    int a = cv_policy_agency_find(policy, id);
    cv_policy_destroy(&policy);
    assert_true(a >= 0);
    return a;
}

static void feed(offline_t *o, int from, const Caveat__Wire__Frame *frame)
{
    size_t size = caveat__wire__frame__get_packed_size(frame);
    uint8_t *bytes = malloc(size ? size : 1);
    caveat__wire__frame__pack(frame, bytes);
    cv_broker_feed(o->broker, from, 1, bytes, size);
    free(bytes);
}

static void hello(offline_t *o, int from)
{
    Caveat__Wire__Hello hello = CAVEAT__WIRE__HELLO__INIT;
    hello.has_version = true;
    hello.version = 1;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_HELLO;
    frame.hello = &hello;
    feed(o, from, &frame);
}

/*  protobuf-c 1.4 accepts an unknown field with tag 0 written as the
 *  two-byte varint 82 00, but packs it again as 02 00, which it refuses
 *  to unpack. A report carrying it must not reach the store in that form:
 *  it would fail every turn that reads it, for every agency. */
/*  Appends a varint. */
static size_t put_varint(uint8_t *out, size_t value)
{
    size_t n = 0;
    do {
        out[n++] = (uint8_t)((value & 0x7f) | (value > 0x7f ? 0x80 : 0));
        value >>= 7;
    } while (value);
    return n;
}

/*  Appends a length-delimited field: key, length, bytes. */
static size_t put_field(uint8_t *out, uint8_t key, const uint8_t *bytes, size_t len)
{
    size_t n = 0;
    out[n++] = key;
    n += put_varint(out + n, len);
    memcpy(out + n, bytes, len);
    return n + len;
}

/*  protobuf-c 1.4 accepts an unknown field with tag 0 written as the
 *  two-byte varint 82 00, but packs it again as 02 00, which it refuses
 *  to unpack. A report carrying it must not reach the store in that form:
 *  it would fail every turn that reads it, for every agency. The frame is
 *  written by hand: packing it with protobuf-c would rewrite the field. */
static void test_a_tag_0_field_does_not_poison_the_store(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull");
    hello(o, police);
    Caveat__Report *report = harness_report("vulnerable_individual");
    assert_non_null(report);
    size_t len = caveat__report__get_packed_size(report);
    uint8_t *body = malloc(len + 3), *publish = malloc(len + 32), *frame = malloc(len + 64);
    caveat__report__pack(report, body);
    caveat__report__free_unpacked(report, NULL);
    /* field 0, wire type 2, as a 2-byte varint key, of length 0 */
    memcpy(body + len, "\x82\x00\x00", 3);
    size_t publish_len = put_field(publish, 0x12, body, len + 3);    /* Publish.reports */
    size_t frame_len = put_field(frame, 0x1a, publish, publish_len); /* Frame.publish */
    Caveat__Wire__Frame *check = caveat__wire__frame__unpack(NULL, frame_len, frame);
    assert_non_null(check); /* protobuf-c takes it */
    caveat__wire__frame__free_unpacked(check, NULL);

    cv_broker_feed(o->broker, police, 1, frame, frame_len);
    free(body);
    free(publish);
    free(frame);
    cv_error_t err = {0};
    int64_t stored = cv_broker_check_store(o->broker, &err);
    if (stored < 0)
        print_error("%s\n", err.msg);
    assert_int_equal(stored, 1);
}

/*  A report whose map entry came without its value is refused (no view
 *  could carry the entry as stored); the report beside it in the same
 *  Publish is stored. */
static void test_a_map_entry_without_its_value_is_not_stored(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull");
    hello(o, police);
    Caveat__Report *bad = harness_report("vulnerable_individual");
    Caveat__Report *good = harness_report("vulnerable_individual");
    assert_non_null(bad);
    assert_non_null(good);
    assert_true(bad->n_subjects > 0 && bad->subjects[0]->n_identifiers > 0);
    char *value = bad->subjects[0]->identifiers[0]->value;
    bad->subjects[0]->identifiers[0]->value = NULL; /* packed without it */
    Caveat__Report *reports[] = {bad, good};
    Caveat__Wire__Publish publish = CAVEAT__WIRE__PUBLISH__INIT;
    publish.n_reports = 2;
    publish.reports = reports;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_PUBLISH;
    frame.publish = &publish;
    feed(o, police, &frame);
    bad->subjects[0]->identifiers[0]->value = value;
    caveat__report__free_unpacked(bad, NULL);
    caveat__report__free_unpacked(good, NULL);
    cv_error_t err = {0};
    assert_int_equal(cv_broker_check_store(o->broker, &err), 1);
}

/*  The same field in an admin request the broker keeps a copy of (purge
 *  and backup run after the turn): the copy must read back, or the broker
 *  refuses the request; it never stops. */
static void test_a_tag_0_field_in_an_admin_request_stops_nothing(void **state)
{
    offline_t *o = *state;
    int admin = agency(o, "caveat-admin");
    hello(o, admin);
    uint8_t request[64], frame[80];
    size_t n = put_field(request, 0x0a, (const uint8_t *)"purge", 5); /* command */
    n += put_field(request + n, 0x12, (const uint8_t *)"dry-run", 7); /* args */
    memcpy(request + n, "\x82\x00\x00", 3);                           /* tag 0, length 0 */
    size_t frame_len = put_field(frame, 0x4a, request, n + 3);        /* Frame.admin_request */
    cv_broker_feed(o->broker, admin, 1, frame, frame_len);
    cv_error_t err = {0};
    assert_int_equal(cv_broker_check_store(o->broker, &err), 0);
}

/*  A backup asked of a broker fed offline starts and is never reaped by a
 *  loop: destroying the broker stops it and frees all of it (the
 *  sanitizer build's leak check fails this test otherwise). */
static void test_a_backup_asked_offline_is_freed_with_the_broker(void **state)
{
    offline_t *o = *state;
    int admin = agency(o, "caveat-admin");
    hello(o, admin);
    char *args[] = {(char *)harness_path(o->files, "backup")};
    Caveat__Wire__AdminRequest request = CAVEAT__WIRE__ADMIN_REQUEST__INIT;
    request.command = "backup";
    request.n_args = 1;
    request.args = args;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_ADMIN_REQUEST;
    frame.admin_request = &request;
    feed(o, admin, &frame);
    cv_error_t err = {0};
    assert_int_equal(cv_broker_check_store(o->broker, &err), 0);
    cv_broker_destroy(&o->broker);
    assert_null(o->broker);
}

/*  A Publish of one example report (a new id each), packed: malloc'd. */
static cv_broker_frame_t publish_frame(int from, const char *name)
{
    Caveat__Report *report = harness_report(name);
    assert_non_null(report);
    free(report->id);
    report->id = NULL;
    Caveat__Wire__Publish publish = CAVEAT__WIRE__PUBLISH__INIT;
    publish.n_reports = 1;
    publish.reports = &report;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_PUBLISH;
    frame.publish = &publish;
    size_t size = caveat__wire__frame__get_packed_size(&frame);
    uint8_t *bytes = malloc(size);
    caveat__wire__frame__pack(&frame, bytes);
    caveat__report__free_unpacked(report, NULL);
    return (cv_broker_frame_t){from, 1, bytes, size};
}

/*  Turns the frames take, in order: routine ones, and an IMMEDIATE one at
 *  immediate (or none, -1). */
static int turns_for(offline_t *o, int from, int n, int immediate)
{
    cv_broker_frame_t frames[16];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++)
        frames[i] = publish_frame(from, i == immediate ? "critical_incident" : "community_tension");
    int turns = cv_broker_feed_all(o->broker, frames, (size_t)n);
    for (int i = 0; i < n; i++)
        free((void *)frames[i].bytes);
    return turns;
}

/*  A turn's messages wait for its commit: one that stored an IMMEDIATE
 *  report takes no more, so the critical incident does not wait for the
 *  routine traffic that came in after it. Routine frames share a turn. */
static void test_an_immediate_report_ends_its_turn(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull");
    hello(o, police);
    assert_int_equal(turns_for(o, police, 11, -1), 1);
    assert_int_equal(turns_for(o, police, 11, 5), 2);
    assert_int_equal(turns_for(o, police, 11, 10), 1); /* the last: nothing waits behind it */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_an_immediate_report_ends_its_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_map_entry_without_its_value_is_not_stored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_tag_0_field_does_not_poison_the_store, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_backup_asked_offline_is_freed_with_the_broker, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_tag_0_field_in_an_admin_request_stops_nothing, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
