/*  The broker without sockets (cv_broker_new_offline, cv_broker_feed):
 *  the real dispatch, store and routing, fed frames as if agencies sent
 *  them. The fuzz target fuzz_broker_frame drives the same entry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <czmq.h>
#include <sodium.h>
#include <sqlite3.h>

#include "cv_backup.h"
#include "cv_broker.h"
#include "cv_hasher.h"
#include "harness.h"

typedef struct {
    harness_t *files; /* a directory with the example policy */
    cv_broker_t *broker;
} offline_t;

/*  The offline broker on o's files: its store as the last one left it;
 *  purge_step 0 for the broker's own. */
static cv_broker_t *open_broker_stepping(offline_t *o, cv_sync_t sync, int purge_step)
{
    /* the broker keeps copies: these go when this returns */
    char policy[600], data[600];
    snprintf(policy, sizeof policy, "%s", harness_path(o->files, "policy.yaml"));
    snprintf(data, sizeof data, "%s", harness_path(o->files, "data"));
    cv_broker_config_t config = {
        .policy_path = policy, .data_dir = data, .sync = sync, .purge_step = purge_step};
    cv_error_t err = {0};
    cv_broker_t *broker = cv_broker_new_offline(&config, &err);
    if (!broker)
        print_error("offline broker: %s\n", err.msg);
    return broker;
}

static cv_broker_t *open_broker_syncing(offline_t *o, cv_sync_t sync)
{
    return open_broker_stepping(o, sync, 0);
}

/*  Without syncs: what a turn holds for its commit goes at its end. */
static cv_broker_t *open_broker(offline_t *o)
{
    return open_broker_syncing(o, CV_SYNC_OFF);
}

static int setup(void **state)
{
    offline_t *o = calloc(1, sizeof *o);
    o->files = harness_new();
    o->broker = open_broker(o);
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

/*  frame, packed (malloc'd), as agency from sends it on connection. */
static cv_broker_frame_t packed(int from, uint32_t connection, const Caveat__Wire__Frame *frame)
{
    size_t size = caveat__wire__frame__get_packed_size(frame);
    uint8_t *bytes = malloc(size ? size : 1);
    assert_non_null(bytes);
    caveat__wire__frame__pack(frame, bytes);
    return (cv_broker_frame_t){from, connection, bytes, size};
}

static void feed(offline_t *o, int from, const Caveat__Wire__Frame *frame)
{
    cv_broker_frame_t one = packed(from, 1, frame);
    cv_broker_feed_all(o->broker, &one, 1);
    free((void *)one.bytes);
}

/*  A Publish of reports[0..n), fed as from sends it; the reports stay
 *  the caller's. */
static void feed_publish(offline_t *o, int from, Caveat__Report **reports, size_t n)
{
    Caveat__Wire__Publish publish = CAVEAT__WIRE__PUBLISH__INIT;
    publish.n_reports = n;
    publish.reports = reports;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_PUBLISH;
    frame.publish = &publish;
    feed(o, from, &frame);
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

/*  Example report name as a client sends it: id NULL, a new one (the
 *  broker's); no originator (the broker stamps the sender's). */
static Caveat__Report *example_to_send(const char *name, const char *id)
{
    Caveat__Report *report = harness_report(name);
    assert_non_null(report);
    free(report->id);
    report->id = id ? strdup(id) : NULL;
    free(report->originator);
    report->originator = NULL;
    return report;
}

/*  A Publish of report, packed (malloc'd), as agency from sends it on
 *  connection; report is freed. */
static cv_broker_frame_t publish_of(int from, uint32_t connection, Caveat__Report *report)
{
    Caveat__Wire__Publish publish = CAVEAT__WIRE__PUBLISH__INIT;
    publish.n_reports = 1;
    publish.reports = &report;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_PUBLISH;
    frame.publish = &publish;
    cv_broker_frame_t packed_frame = packed(from, connection, &frame);
    caveat__report__free_unpacked(report, NULL);
    return packed_frame;
}

/*  A Publish of one example report, packed (malloc'd), as agency from
 *  sends it on connection; id NULL: a new one, the broker's. */
static cv_broker_frame_t publish_frame_as(int from, uint32_t connection, const char *name,
                                          const char *id)
{
    return publish_of(from, connection, example_to_send(name, id));
}

static cv_broker_frame_t publish_frame(int from, const char *name)
{
    return publish_frame_as(from, 1, name, NULL);
}

/*  An AdminRequest, packed (malloc'd), as agency from sends it on
 *  connection. */
static cv_broker_frame_t admin_frame(int from, uint32_t connection, const char *command,
                                     char **args, size_t n_args)
{
    Caveat__Wire__AdminRequest request = CAVEAT__WIRE__ADMIN_REQUEST__INIT;
    request.command = (char *)command;
    request.n_args = n_args;
    request.args = args;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_ADMIN_REQUEST;
    frame.admin_request = &request;
    return packed(from, connection, &frame);
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
    feed_publish(o, police, reports, 2);
    bad->subjects[0]->identifiers[0]->value = value;
    caveat__report__free_unpacked(bad, NULL);
    caveat__report__free_unpacked(good, NULL);
    cv_error_t err = {0};
    assert_int_equal(cv_broker_check_store(o->broker, &err), 1);
}

/*  The statuses of the last PublishAck sent. */
#define SEEN_MAX 64
typedef struct {
    size_t n;
    Caveat__Wire__Status status[SEEN_MAX];
    bool one_line[SEEN_MAX]; /* its reason, if any, is one line of readable UTF-8 */
} results_seen_t;

static void on_sent_results(void *arg, uint32_t connection, const uint8_t *bytes, size_t size)
{
    (void)connection;
    results_seen_t *seen = arg;
    Caveat__Wire__Frame *frame = caveat__wire__frame__unpack(NULL, size, bytes);
    assert_non_null(frame);
    if (frame->body_case == CAVEAT__WIRE__FRAME__BODY_PUBLISH_ACK) {
        seen->n = 0;
        for (size_t i = 0; i < frame->publish_ack->n_results && i < SEEN_MAX; i++, seen->n++) {
            const char *reason = frame->publish_ack->results[i]->reason;
            seen->status[seen->n] = frame->publish_ack->results[i]->status;
            seen->one_line[seen->n] = !reason || cv_text_readable(reason, strlen(reason), "");
        }
    }
    caveat__wire__frame__free_unpacked(frame, NULL);
}

/*  Publishes from hum-bcu-hull, in one frame, one example report for each
 *  value, with the string at offset (a field of Caveat__Report) set to
 *  it; the PublishAck's results go into seen. */
static void publish_each(offline_t *o, size_t offset, const char *const *values, size_t n,
                         results_seen_t *seen)
{
    int police = agency(o, "hum-bcu-hull");
    hello(o, police);
    cv_broker_on_sent(o->broker, on_sent_results, seen);
    Caveat__Report *reports[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        reports[i] = example_to_send("vulnerable_individual", NULL);
        char **field = (char **)((char *)reports[i] + offset);
        free(*field);
        *field = strdup(values[i]);
    }
    feed_publish(o, police, reports, n);
    for (size_t i = 0; i < n; i++)
        caveat__report__free_unpacked(reports[i], NULL);
    assert_int_equal(seen->n, n);
}

/*  A Publish of 40 reports, stored 16 to a statement where it can be
 *  (docs/operations.md, "Durability, step by step"), answers each report
 *  as if stored alone: a report refused at its checks in the first 16
 *  (which are then stored one by one), a retry of a report stored before
 *  and of one earlier in the same Publish (OK: the same report), and an
 *  id given twice with different content (REFUSED_DUPLICATE), in the two
 *  16-report statements; every other report is stored once. */
static void test_a_publish_of_batches_answers_each_report_as_alone(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull");
    hello(o, police);
    Caveat__Report *earlier = example_to_send("vulnerable_individual", "r-earlier");
    feed_publish(o, police, &earlier, 1);
    results_seen_t seen = {0};
    cv_broker_on_sent(o->broker, on_sent_results, &seen);
    Caveat__Report *reports[40];
    char id[32];
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof id, "r-batch-%02d", i == 21 ? 17 : i == 22 ? 18 : i);
        reports[i] = example_to_send("vulnerable_individual", i == 20 ? "r-earlier" : id);
    }
    free(reports[3]->created); /* refused at its checks */
    reports[3]->created = strdup("not a time");
    free(reports[22]->summary); /* r-batch-18 again, another report */
    reports[22]->summary = strdup("another report under the same id");
    feed_publish(o, police, reports, 40);
    for (int i = 0; i < 40; i++)
        caveat__report__free_unpacked(reports[i], NULL);
    caveat__report__free_unpacked(earlier, NULL);
    assert_int_equal(seen.n, 40);
    for (int i = 0; i < 40; i++) {
        Caveat__Wire__Status want = i == 3    ? CAVEAT__WIRE__STATUS__REFUSED_INVALID
                                    : i == 22 ? CAVEAT__WIRE__STATUS__REFUSED_DUPLICATE
                                              : CAVEAT__WIRE__STATUS__OK;
        if (seen.status[i] != want)
            print_error("report %d: status %d, not %d\n", i, (int)seen.status[i], (int)want);
        assert_int_equal(seen.status[i], want);
    }
    /* the earlier report, and the 36 of the 40 new: not the refused
     * two, nor the two retries */
    cv_error_t err = {0};
    assert_int_equal(cv_broker_check_store(o->broker, &err), 37);
}

/*  A report's created, when given, is an RFC 3339 time (docs/protocol.md,
 *  "Publishing"): one that is no time at all is refused REFUSED_INVALID,
 *  not stamped over with the broker's clock as if absent; an empty one is
 *  absent, and stamped. */
static void test_a_created_that_is_no_time_is_refused(void **state)
{
    offline_t *o = *state;
    results_seen_t seen = {0};
    const char *created[] = {"yesterday", "2026-02-30T10:00:00Z", "", "2026-11-20T09:30:00Z"};
    publish_each(o, offsetof(Caveat__Report, created), created, 4, &seen);
    assert_int_equal(seen.status[0], CAVEAT__WIRE__STATUS__REFUSED_INVALID);
    assert_int_equal(seen.status[1], CAVEAT__WIRE__STATUS__REFUSED_INVALID);
    assert_int_equal(seen.status[2], CAVEAT__WIRE__STATUS__OK);
    assert_int_equal(seen.status[3], CAVEAT__WIRE__STATUS__OK);
    cv_error_t err = {0};
    assert_int_equal(cv_broker_check_store(o->broker, &err), 2);
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
    cv_broker_frame_t backup = admin_frame(admin, 1, "backup", args, 1);
    cv_broker_feed_all(o->broker, &backup, 1);
    free((void *)backup.bytes);
    cv_error_t err = {0};
    assert_int_equal(cv_broker_check_store(o->broker, &err), 0);
    cv_broker_destroy(&o->broker);
    assert_null(o->broker);
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

/*  What the broker sent, in order: to which connection, which frame. */
typedef struct {
    size_t n;
    uint32_t connection[256];
    Caveat__Wire__Frame__BodyCase body[256];
} sent_t;

static void on_sent(void *arg, uint32_t connection, const uint8_t *bytes, size_t size)
{
    sent_t *sent = arg;
    Caveat__Wire__Frame *frame = caveat__wire__frame__unpack(NULL, size, bytes);
    assert_non_null(frame);
    if (sent->n < 256) {
        sent->connection[sent->n] = connection;
        sent->body[sent->n++] = frame->body_case;
    }
    caveat__wire__frame__free_unpacked(frame, NULL);
}

/*  How many of the frames sent from index from on went to connection with
 *  body. */
static int sent_to(const sent_t *sent, size_t from, uint32_t connection,
                   Caveat__Wire__Frame__BodyCase body)
{
    int n = 0;
    for (size_t i = from; i < sent->n; i++)
        n += sent->connection[i] == connection && sent->body[i] == body;
    return n;
}

/*  A Hello with credit, for the direct queue or (feed not NULL) a feed's. */
static cv_broker_frame_t hello_of(int from, uint32_t connection, uint32_t credit, const char *feed)
{
    Caveat__Wire__Hello hello = CAVEAT__WIRE__HELLO__INIT;
    hello.has_version = hello.has_credit = true;
    hello.version = 1;
    hello.credit = credit;
    hello.feed = (char *)feed;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_HELLO;
    frame.hello = &hello;
    return packed(from, connection, &frame);
}

static cv_broker_frame_t hello_with(int from, uint32_t connection, uint32_t credit)
{
    return hello_of(from, connection, credit, NULL);
}

/*  One agency's IMMEDIATE reports end at most 20 turns a second
 *  (URGENT_TURNS_PER_SECOND): a stream of small IMMEDIATE frames cannot
 *  have a commit made for each. Past that its frames share turns as
 *  routine ones do, while another agency's IMMEDIATE report still ends
 *  its turn. */
static void test_an_agency_ends_few_turns_early(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull"), council = agency(o, "hull-cc");
    hello(o, police); /* on connection 1 */
    cv_broker_frame_t council_hello = hello_with(council, 2, 10);
    cv_broker_feed_all(o->broker, &council_hello, 1);
    free((void *)council_hello.bytes);
    enum { FRAMES = 100 };
    cv_broker_frame_t frames[FRAMES];
    for (int i = 0; i < FRAMES; i++)
        frames[i] = publish_frame(police, "critical_incident");
    int turns = cv_broker_feed_all(o->broker, frames, FRAMES);
    for (int i = 0; i < FRAMES; i++) {
        free((void *)frames[i].bytes);
        frames[i] =
            publish_frame_as(council, 2, i == 5 ? "critical_incident" : "community_tension", NULL);
    }
    assert_true(turns >= 21);     /* each of the first 20 ended one, and more followed */
    assert_true(turns <= 2 * 21); /* then shared, however the seconds fall */
    assert_int_equal(cv_broker_feed_all(o->broker, frames, 11), 2); /* the council's ends */
    for (int i = 0; i < FRAMES; i++)
        free((void *)frames[i].bytes);
}

/*  A refusal's reason is one line of UTF-8 (docs/protocol.md,
 *  "Publishing") even when it quotes what the sender gave: a category
 *  with a line feed and a byte that is not UTF-8, and one of two-byte
 *  characters long enough that the reason's bound cuts one in two. */
static void test_a_reason_is_one_line_of_utf8(void **state)
{
    offline_t *o = *state;
    results_seen_t seen = {0};
    char long_category[1001];
    for (size_t i = 0; i < 500; i++)
        memcpy(long_category + 2 * i, "\xc3\xa9", 2); /* é */
    long_category[1000] = '\0';
    const char *category[] = {"unknown\nforged line \xff", long_category + 1, long_category};
    enum { N = sizeof category / sizeof *category };
    publish_each(o, offsetof(Caveat__Report, category), category, N, &seen);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(seen.status[i], CAVEAT__WIRE__STATUS__REFUSED_INVALID);
        assert_true(seen.one_line[i]);
    }
}

/*  The report ids of the deliveries sent, in the order of their seqs. */
typedef struct {
    size_t n;
    char ids[8][32];
    uint64_t seqs[8];
} order_seen_t;

static void on_sent_order(void *arg, uint32_t connection, const uint8_t *bytes, size_t size)
{
    (void)connection;
    order_seen_t *seen = arg;
    Caveat__Wire__Frame *frame = caveat__wire__frame__unpack(NULL, size, bytes);
    assert_non_null(frame);
    for (size_t i = 0; frame->body_case == CAVEAT__WIRE__FRAME__BODY_DELIVER &&
                       i < frame->deliver->n_deliveries && seen->n < 8;
         i++, seen->n++) {
        snprintf(seen->ids[seen->n], sizeof seen->ids[seen->n], "%s",
                 frame->deliver->deliveries[i]->report_id);
        seen->seqs[seen->n] = frame->deliver->deliveries[i]->seq;
    }
    caveat__wire__frame__free_unpacked(frame, NULL);
}

/*  What waits for a recipient is given its seqs most urgent first
 *  (docs/protocol.md, "Delivering"): IMMEDIATE, then PRIORITY, then
 *  ROUTINE (no priority at all is ROUTINE), each in order of acceptance. */
static void test_waiting_reports_go_most_urgent_first(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull"), council = agency(o, "hull-cc");
    order_seen_t seen = {0};
    cv_broker_on_sent(o->broker, on_sent_order, &seen);
    cv_broker_frame_t start = hello_with(police, 1, 0);
    cv_broker_feed_all(o->broker, &start, 1);
    free((void *)start.bytes);
    static const struct {
        const char *id;
        int priority; /* -1: none */
    } sent[] = {{"r-none", -1},
                {"r-routine", CAVEAT__PRIORITY__ROUTINE},
                {"r-priority", CAVEAT__PRIORITY__PRIORITY},
                {"r-immediate", CAVEAT__PRIORITY__IMMEDIATE},
                {"r-priority-2", CAVEAT__PRIORITY__PRIORITY}};
    for (size_t i = 0; i < sizeof sent / sizeof *sent; i++) {
        Caveat__Report *report = example_to_send("vulnerable_individual", sent[i].id);
        report->has_priority = sent[i].priority >= 0;
        report->priority = sent[i].priority >= 0 ? (Caveat__Priority)sent[i].priority : 0;
        cv_broker_frame_t one = publish_of(police, 1, report);
        cv_broker_feed_all(o->broker, &one, 1);
        free((void *)one.bytes);
    }
    assert_int_equal(seen.n, 0); /* nobody to send to yet */
    cv_broker_frame_t comes = hello_with(council, 2, 10);
    cv_broker_feed_all(o->broker, &comes, 1);
    free((void *)comes.bytes);
    static const char *const expected[] = {"r-immediate", "r-priority", "r-priority-2", "r-none",
                                           "r-routine"};
    assert_int_equal(seen.n, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(seen.ids[i], expected[i]);
        assert_int_equal(seen.seqs[i], i + 1);
    }
}

static cv_broker_frame_t feedback_on(int from, uint32_t connection, const char *report_id,
                                     const char *value)
{
    Caveat__Wire__Feedback feedback = CAVEAT__WIRE__FEEDBACK__INIT;
    feedback.report_id = (char *)report_id;
    feedback.value = (char *)value;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_FEEDBACK;
    frame.feedback = &feedback;
    return packed(from, connection, &frame);
}

/*  Feeds the frames, all in one turn, and frees them. */
static void one_turn(offline_t *o, cv_broker_frame_t *frames, size_t n)
{
    assert_int_equal(cv_broker_feed_all(o->broker, frames, n), 1);
    for (size_t i = 0; i < n; i++)
        free((void *)frames[i].bytes);
}

/*  An Approval of report_id (NULL: none) to "to", as agency from sends it
 *  on connection. */
static cv_broker_frame_t approval_of(int from, uint32_t connection, const char *report_id,
                                     const char *to)
{
    Caveat__Wire__Approval approval = CAVEAT__WIRE__APPROVAL__INIT;
    approval.report_id = (char *)report_id;
    approval.to = (char *)to;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_APPROVAL;
    frame.approval = &approval;
    return packed(from, connection, &frame);
}

/*  The example referral with handling code 5 (held until its originator
 *  approves), published by from on connection under id. */
static cv_broker_frame_t held_publish(int from, uint32_t connection, const char *id)
{
    Caveat__Report *report = example_to_send("vulnerable_individual", id);
    free(report->grading->handling_code);
    report->grading->handling_code = strdup("5");
    return publish_of(from, connection, report);
}

static void store_sql(offline_t *o, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(harness_path(o->files, "data/caveat.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/*  The police (connection 1, sending) and the council (connection 2, with
 *  credit) in session, and the police's held report r-held stored: what
 *  on_sent records goes into *sent. */
static void held_report_start(offline_t *o, sent_t *sent)
{
    int police = agency(o, "hum-bcu-hull"), council = agency(o, "hull-cc");
    cv_broker_on_sent(o->broker, on_sent, sent);
    cv_broker_frame_t start[] = {hello_with(police, 1, 0), hello_with(council, 2, 10),
                                 held_publish(police, 1, "r-held")};
    one_turn(o, start, 3);
}

/*  Approvals without an id, or with an empty one, in a turn an earlier
 *  write has already failed: refused BAD_REQUEST as in any turn, and the
 *  broker goes on. In a failing turn the check that the id names a
 *  report was skipped, and the absent id was copied into the answer: a
 *  NULL dereference, and every agency lost the broker. */
static void test_an_approval_without_an_id_in_a_failing_turn(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull");
    sent_t sent = {0};
    held_report_start(o, &sent);
    assert_int_equal(sent_to(&sent, 0, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 0);
    store_sql(o, "CREATE TRIGGER fail BEFORE INSERT ON approval_releases"
                 " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    size_t mark = sent.n;
    cv_broker_frame_t approvals[] = {approval_of(police, 1, "r-held", "hull-cc"),
                                     approval_of(police, 1, NULL, "hull-cc"),
                                     approval_of(police, 1, "", "hull-cc")};
    one_turn(o, approvals, 3);
    assert_int_equal(sent_to(&sent, mark, 1, CAVEAT__WIRE__FRAME__BODY_APPROVAL_ACK), 1);
    assert_int_equal(sent_to(&sent, mark, 1, CAVEAT__WIRE__FRAME__BODY_ERROR), 2);
    assert_int_equal(sent_to(&sent, mark, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 0);

    /* the store takes writes again: the approval releases the report */
    store_sql(o, "DROP TRIGGER fail");
    mark = sent.n;
    cv_broker_frame_t again[] = {approval_of(police, 1, "r-held", "hull-cc")};
    one_turn(o, again, 1);
    assert_int_equal(sent_to(&sent, mark, 1, CAVEAT__WIRE__FRAME__BODY_APPROVAL_ACK), 1);
    assert_int_equal(sent_to(&sent, mark, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 1);
}

/*  Statements of the broker's own connections that ask whether an approval
 *  released a report to an agency, counted through a trace every new
 *  connection is given (an auto extension: the broker's handle is its
 *  own). */
static int releases_read;

static int count_release_reads(unsigned type, void *ctx, void *statement, void *sql)
{
    (void)type, (void)ctx, (void)sql;
    const char *text = sqlite3_sql(statement);
    releases_read += text && strstr(text, "SELECT 1 FROM approval_releases") != NULL;
    return 0;
}

static int trace_releases(sqlite3 *db, char **message, const void *api)
{
    (void)message, (void)api;
    sqlite3_trace_v2(db, SQLITE_TRACE_STMT, count_release_reads, NULL);
    return SQLITE_OK;
}

/*  An approval of a report that could reach many agencies reads the store
 *  for the agencies it releases, not for each of them: an originator may
 *  send ten a second, each changing nothing (approved before), and every
 *  other agency's traffic waits for the loop that does that work. Before,
 *  each approval read the store three times for every agency the report
 *  could reach (with 2,000 agencies, some 10 ms an approval). */
static void test_an_approval_reads_only_for_whom_it_releases(void **state)
{
    offline_t *o = *state;
    cv_broker_destroy(&o->broker);
    /* councils of Hull: agencies the report could reach */
    assert_true(harness_add_councils(o->files, 200));
    assert_int_equal(sqlite3_auto_extension((void (*)(void))trace_releases), SQLITE_OK);
    o->broker = open_broker(o);
    assert_non_null(o->broker);
    int police = agency(o, "hum-bcu-hull");
    sent_t sent = {0};
    held_report_start(o, &sent);
    size_t mark = sent.n;
    releases_read = 0;
    cv_broker_frame_t approvals[10];
    for (size_t i = 0; i < 10; i++) /* within the rate: the first releases, the rest repeat it */
        approvals[i] = approval_of(police, 1, "r-held", "hull-cc");
    one_turn(o, approvals, 10);
    int reads = releases_read;
    assert_true(sqlite3_cancel_auto_extension((void (*)(void))trace_releases));
    assert_int_equal(sent_to(&sent, mark, 1, CAVEAT__WIRE__FRAME__BODY_APPROVAL_ACK), 10);
    assert_int_equal(sent_to(&sent, mark, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 1);
    assert_int_equal(sent_to(&sent, mark, 1, CAVEAT__WIRE__FRAME__BODY_ERROR), 0);
    assert_true(reads <= 10); /* one an approval: the council's, whom it names */
}

/*  Sets the body of the stored report id to report, packed, with the
 *  checksum it would have (a new store's: SHA-256): an edit by someone
 *  with the file, which the checksum alone cannot tell. */
static void store_body(offline_t *o, const char *id, const Caveat__Report *report)
{
    size_t len = caveat__report__get_packed_size(report);
    uint8_t *body = malloc(len ? len : 1), sum[CV_CHECKSUM_BYTES];
    assert_non_null(body);
    caveat__report__pack(report, body);
    cv_checksum_sha256(sum, body, len);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open(harness_path(o->files, "data/caveat.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "UPDATE reports SET body = ?1, checksum = ?2 WHERE id = ?3",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_blob(s, 1, body, (int)len, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, sum, sizeof sum, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, id, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    assert_int_equal(sqlite3_changes(db), 1);
    sqlite3_finalize(s);
    sqlite3_close(db);
    free(body);
}

static int store_count(offline_t *o, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open(harness_path(o->files, "data/caveat.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/*  A stored report edited on disk, its checksum made to match, that has
 *  lost its id (field 0), originator (1) or category (2): read back for
 *  its recipient, it is quarantined and the queue goes on. An absent id
 *  was copied into the queue's record of what it sent: a NULL dereference
 *  at every restart, once that recipient said Hello. */
static void edited_without(offline_t *o, int field)
{
    int police = agency(o, "hum-bcu-hull"), council = agency(o, "hull-cc");
    cv_broker_frame_t published[] = {
        hello_with(police, 1, 0), publish_frame_as(police, 1, "vulnerable_individual", "r-edited")};
    one_turn(o, published, 2); /* the council is not here: it waits in its queue */
    cv_broker_destroy(&o->broker);
    Caveat__Report *edited = harness_report("vulnerable_individual");
    assert_non_null(edited);
    free(edited->originator);
    edited->originator = strdup("hum-bcu-hull");
    char **gone = field == 0 ? &edited->id : field == 1 ? &edited->originator : &edited->category;
    free(*gone);
    *gone = NULL;
    store_body(o, "r-edited", edited);
    caveat__report__free_unpacked(edited, NULL);

    o->broker = open_broker(o);
    assert_non_null(o->broker);
    sent_t sent = {0};
    cv_broker_on_sent(o->broker, on_sent, &sent);
    cv_broker_frame_t council_comes[] = {hello_with(council, 2, 10)};
    one_turn(o, council_comes, 1);
    assert_int_equal(sent_to(&sent, 0, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 0);
    /* for what it lost, not for its checksum: store_body made that match */
    assert_int_equal(store_count(o, "SELECT count(*) FROM quarantine WHERE id = 'r-edited' AND"
                                    " reason LIKE '%no id, originator or category%'"),
                     1);
    /* the council's queue goes on */
    cv_broker_frame_t next[] = {hello_with(police, 1, 0),
                                publish_frame_as(police, 1, "vulnerable_individual", NULL)};
    one_turn(o, next, 2);
    assert_int_equal(sent_to(&sent, 0, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 1);
}

static void test_a_stored_report_edited_without_its_id_is_quarantined(void **state)
{
    edited_without(*state, 0);
}

static void test_a_stored_report_edited_without_its_originator_is_quarantined(void **state)
{
    edited_without(*state, 1);
}

static void test_a_stored_report_edited_without_its_category_is_quarantined(void **state)
{
    edited_without(*state, 2);
}

/*  What one report's delivery carried, from the Deliver frames sent. */
typedef struct {
    const char *report_id;
    int deliveries;
    size_t unknown_fields; /* in the views of those deliveries */
} view_seen_t;

static void on_sent_view(void *arg, uint32_t connection, const uint8_t *bytes, size_t size)
{
    (void)connection;
    view_seen_t *seen = arg;
    Caveat__Wire__Frame *frame = caveat__wire__frame__unpack(NULL, size, bytes);
    assert_non_null(frame);
    for (size_t i = 0;
         frame->body_case == CAVEAT__WIRE__FRAME__BODY_DELIVER && i < frame->deliver->n_deliveries;
         i++) {
        const Caveat__Wire__Delivery *d = frame->deliver->deliveries[i];
        if (d->report_id && strcmp(d->report_id, seen->report_id) == 0 && d->report) {
            seen->deliveries++;
            seen->unknown_fields += d->report->base.n_unknown_fields;
        }
    }
    caveat__wire__frame__free_unpacked(frame, NULL);
}

/*  A body stored by an earlier version may hold a field this one does not
 *  know (before unknown fields were dropped at publish). Read back and
 *  delivered to a recipient given the whole report, it goes as the views
 *  always went: without that field, never as the bytes it was stored as. */
static void test_a_whole_view_read_back_carries_no_unknown_field(void **state)
{
    offline_t *o = *state;
    int council = agency(o, "hull-cc"), police = agency(o, "hum-bcu-hull");
    cv_broker_frame_t published[] = {
        hello_with(council, 1, 0), publish_frame_as(council, 1, "vulnerable_individual", "r-old")};
    one_turn(o, published, 2);
    cv_broker_destroy(&o->broker);
    /* the body as an earlier version would have kept it: field 1000, a
     * varint, after the rest, and its checksum to match */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(harness_path(o->files, "data/caveat.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "UPDATE reports SET body = body || x'c03e07' WHERE id = 'r-old';"
                                  "SELECT 1",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT body FROM reports WHERE id = 'r-old'", -1, &s, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    uint8_t sum[CV_CHECKSUM_BYTES];
    cv_checksum_sha256(sum, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
    Caveat__Report *stored =
        caveat__report__unpack(NULL, (size_t)sqlite3_column_bytes(s, 0), sqlite3_column_blob(s, 0));
    assert_non_null(stored);
    assert_int_equal(stored->base.n_unknown_fields, 1); /* what the test is about */
    caveat__report__free_unpacked(stored, NULL);
    sqlite3_finalize(s);
    assert_int_equal(
        sqlite3_prepare_v2(db, "UPDATE reports SET checksum = ?1 WHERE id = 'r-old'", -1, &s, NULL),
        SQLITE_OK);
    sqlite3_bind_blob(s, 1, sum, sizeof sum, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    sqlite3_close(db);

    o->broker = open_broker(o);
    assert_non_null(o->broker);
    view_seen_t seen = {"r-old", 0, 0};
    cv_broker_on_sent(o->broker, on_sent_view, &seen);
    cv_broker_frame_t police_comes[] = {hello_with(police, 2, 10)};
    one_turn(o, police_comes, 1);
    assert_int_equal(seen.deliveries, 1);
    assert_int_equal(seen.unknown_fields, 0);
}

/*  Answers that wait for their turn's commit (a FeedbackAck, the reply to a
 *  purge, which runs after it) go to the session that asked alone. When
 *  another agency's key shows up on the same routing id in the same turn
 *  (a connection that went, its routing id taken by another that chose
 *  one of the transport's form), the asking session ends there, and its
 *  answers with it: the newcomer gets its own HelloAck and nothing else. */
static void test_answers_after_the_commit_go_to_the_asker_alone(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull"), council = agency(o, "hull-cc"),
        admin = agency(o, "caveat-admin"), college = agency(o, "hull-college");
    sent_t sent = {0};
    cv_broker_on_sent(o->broker, on_sent, &sent);
    cv_broker_frame_t start[] = {hello_with(police, 1, 0), hello_with(council, 2, 10),
                                 hello_with(admin, 3, 0)};
    one_turn(o, start, 3);
    cv_broker_frame_t publishing[] = {
        publish_frame_as(police, 1, "vulnerable_individual", "r-answers")};
    one_turn(o, publishing, 1);
    assert_int_equal(sent_to(&sent, 0, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 1);

    /* asked alone, each is answered */
    size_t mark = sent.n;
    cv_broker_frame_t asked[] = {feedback_on(council, 2, "r-answers", "seen"),
                                 admin_frame(admin, 3, "purge", (char *[]){"dry-run"}, 1)};
    one_turn(o, asked, 2);
    assert_int_equal(sent_to(&sent, mark, 2, CAVEAT__WIRE__FRAME__BODY_FEEDBACK_ACK), 1);
    assert_int_equal(sent_to(&sent, mark, 3, CAVEAT__WIRE__FRAME__BODY_ADMIN_REPLY), 1);

    /* asked, then the routing ids come with the college's key */
    mark = sent.n;
    cv_broker_frame_t taken[] = {feedback_on(council, 2, "r-answers", "useful"),
                                 admin_frame(admin, 3, "purge", (char *[]){"dry-run"}, 1),
                                 hello_with(college, 2, 0), hello_with(college, 3, 0)};
    one_turn(o, taken, 4);
    for (uint32_t c = 2; c <= 3; c++) {
        assert_int_equal(sent_to(&sent, mark, c, CAVEAT__WIRE__FRAME__BODY_HELLO_ACK), 1);
        assert_int_equal(sent_to(&sent, mark, c, CAVEAT__WIRE__FRAME__BODY_FEEDBACK_ACK), 0);
        assert_int_equal(sent_to(&sent, mark, c, CAVEAT__WIRE__FRAME__BODY_ADMIN_REPLY), 0);
    }
}

/*  Deliveries sent on one connection, by the queue they are of, and
 *  PublishAcks sent anywhere. */
typedef struct {
    uint32_t connection;
    int of_feed, direct, publish_acks;
} feeds_seen_t;

static void on_sent_feed(void *arg, uint32_t connection, const uint8_t *bytes, size_t size)
{
    feeds_seen_t *seen = arg;
    Caveat__Wire__Frame *frame = caveat__wire__frame__unpack(NULL, size, bytes);
    assert_non_null(frame);
    seen->publish_acks += frame->body_case == CAVEAT__WIRE__FRAME__BODY_PUBLISH_ACK;
    if (connection == seen->connection && frame->body_case == CAVEAT__WIRE__FRAME__BODY_DELIVER)
        for (size_t i = 0; i < frame->deliver->n_deliveries; i++) {
            const char *feed = frame->deliver->deliveries[i]->feed;
            if (feed && *feed)
                seen->of_feed++;
            else
                seen->direct++;
        }
    caveat__wire__frame__free_unpacked(frame, NULL);
}

/*  Turns of a Heartbeat from agency until *count reaches n, or 10 s: each
 *  turn's end sends what the syncs done by then allow. */
static void turns_until(offline_t *o, int from, const int *count, int n)
{
    Caveat__Wire__Heartbeat heartbeat = CAVEAT__WIRE__HEARTBEAT__INIT;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_HEARTBEAT;
    frame.heartbeat = &heartbeat;
    for (int i = 0; i < 1000 && *count < n; i++) {
        usleep(10 * 1000);
        cv_broker_frame_t beat[] = {packed(from, 1, &frame)};
        one_turn(o, beat, 1);
    }
}

/*  A Hello on the same connection for another queue ends the session it
 *  had, as any replacement does: nothing more is sent for it. Its
 *  Delivers still waiting for their sync went out after the new
 *  session's HelloAck, with the feed's seqs, on a connection that now
 *  acknowledges the direct queue's: a cumulative ack of those seqs would
 *  have covered direct deliveries the client never had. (With syncs, so
 *  that the Delivers are still held when the second Hello comes.) */
static void test_a_hello_for_another_queue_ends_the_connections_session(void **state)
{
    offline_t *o = *state;
    cv_broker_destroy(&o->broker);
    o->broker = open_broker_syncing(o, CV_SYNC_FULL);
    assert_non_null(o->broker);
    int police = agency(o, "hum-bcu-hull"), ctio = agency(o, "hum-ctio-hull");
    feeds_seen_t seen = {.connection = 3};
    cv_broker_on_sent(o->broker, on_sent_feed, &seen);
    cv_broker_frame_t start[] = {hello_with(police, 1, 0), hello_of(ctio, 3, 10, "ctio")};
    one_turn(o, start, 2);
    cv_broker_frame_t publishing[] = {
        publish_frame_as(police, 1, "vulnerable_individual", "r-queue-1"),
        publish_frame_as(police, 1, "vulnerable_individual", "r-queue-2")};
    one_turn(o, publishing, 2);
    if (seen.publish_acks > 0) /* synced before the turn could end: nothing was held */
        skip();
    cv_broker_frame_t direct[] = {hello_with(ctio, 3, 10)};
    one_turn(o, direct, 1);
    turns_until(o, police, &seen.publish_acks, 2); /* the publishes' commit is synced */
    assert_int_equal(seen.publish_acks, 2);
    assert_int_equal(seen.of_feed, 0);

    /* the feed's own next session gets them, from its queue */
    seen.connection = 4;
    cv_broker_frame_t back[] = {hello_of(ctio, 4, 10, "ctio")};
    one_turn(o, back, 1);
    turns_until(o, police, &seen.of_feed, 2);
    assert_int_equal(seen.of_feed, 2);
}

/*  What the last AdminReply said. */
typedef struct {
    int replies;
    bool ok;
    char text[4096];
    int reloaded;       /* replies "reloaded" */
    int policy_version; /* as the last "stats" said */
} admin_seen_t;

static void on_sent_admin(void *arg, uint32_t connection, const uint8_t *bytes, size_t size)
{
    (void)connection;
    admin_seen_t *seen = arg;
    Caveat__Wire__Frame *frame = caveat__wire__frame__unpack(NULL, size, bytes);
    assert_non_null(frame);
    if (frame->body_case == CAVEAT__WIRE__FRAME__BODY_ADMIN_REPLY) {
        seen->replies++;
        seen->ok = frame->admin_reply->ok;
        snprintf(seen->text, sizeof seen->text, "%s",
                 frame->admin_reply->text ? frame->admin_reply->text : "");
        seen->reloaded += seen->ok && strcmp(seen->text, "reloaded") == 0;
        const char *version = strstr(seen->text, "\"policy_version\":");
        if (version)
            seen->policy_version = atoi(version + strlen("\"policy_version\":"));
    }
    caveat__wire__frame__free_unpacked(frame, NULL);
}

/*  The police and the administrator in session (connections 1 and 3),
 *  the administrator's answers in seen. */
static void police_and_admin_in_session(offline_t *o, int police, int admin, admin_seen_t *seen)
{
    cv_broker_on_sent(o->broker, on_sent_admin, seen);
    cv_broker_frame_t start[] = {hello_with(police, 1, 0), hello_with(admin, 3, 0)};
    one_turn(o, start, 2);
}

/*  The police and the administrator in session (connections 1 and 3),
 *  the administrator's answers in seen, and "r-old", a report of the
 *  police's long past retention, as if accepted in 1970. */
static void with_a_report_past_retention(offline_t *o, int police, int admin, admin_seen_t *seen)
{
    cv_broker_on_sent(o->broker, on_sent_admin, seen);
    cv_broker_frame_t start[] = {hello_with(police, 1, 0), hello_with(admin, 3, 0),
                                 publish_frame_as(police, 1, "vulnerable_individual", "r-old")};
    one_turn(o, start, 3);
    store_sql(o, "UPDATE reports SET created = 1, accepted = 1000 WHERE id = 'r-old'");
}

/*  `purge at=TIME` is a question, only ever with dry-run; the first second
 *  of 1970 is a time like any other. It was taken for "no time given", so
 *  `purge trust-clock at=1970-01-01T00:00:00Z` purged for real on the
 *  broker's clock, and with dry-run answered for that clock instead. */
static void test_a_purge_at_the_epoch_is_a_question(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull"), admin = agency(o, "caveat-admin");
    admin_seen_t seen = {0};
    with_a_report_past_retention(o, police, admin, &seen);

    cv_broker_frame_t purge[] = {
        admin_frame(admin, 3, "purge", (char *[]){"trust-clock", "at=1970-01-01T00:00:00Z"}, 2)};
    one_turn(o, purge, 1);
    assert_int_equal(seen.replies, 1);
    assert_false(seen.ok);
    assert_non_null(strstr(seen.text, "at=TIME"));
    assert_int_equal(store_count(o, "SELECT count(*) FROM reports WHERE id = 'r-old'"), 1);

    cv_broker_frame_t dry[] = {
        admin_frame(admin, 3, "purge", (char *[]){"dry-run", "at=1970-01-01T00:00:00Z"}, 2)};
    one_turn(o, dry, 1);
    assert_int_equal(seen.replies, 2);
    assert_true(seen.ok);
    assert_non_null(strstr(seen.text, "\"would_purge\":0"));

    /* on the broker's own clock the report is due */
    cv_broker_frame_t now[] = {
        admin_frame(admin, 3, "purge", (char *[]){"dry-run", "trust-clock"}, 2)};
    one_turn(o, now, 1);
    assert_true(seen.ok);
    assert_non_null(strstr(seen.text, "\"would_purge\":1"));
    assert_int_equal(store_count(o, "SELECT count(*) FROM reports WHERE id = 'r-old'"), 1);
}

/*  A purge of many reports goes in steps (here of 2), each a transaction
 *  of its own, with the broker's turns between them: others' publishes
 *  are taken while it goes, and the administrator is answered once, after
 *  the last step, for all of them. A purge asked meanwhile waits for it. */
static void test_a_purge_goes_in_steps_with_turns_between(void **state)
{
    offline_t *o = *state;
    cv_broker_destroy(&o->broker);
    o->broker = open_broker_stepping(o, CV_SYNC_OFF, 2);
    int police = agency(o, "hum-bcu-hull"), admin = agency(o, "caveat-admin");
    admin_seen_t seen = {0};
    police_and_admin_in_session(o, police, admin, &seen);
    cv_broker_frame_t old[5];
    for (int i = 0; i < 5; i++) {
        char id[24];
        snprintf(id, sizeof id, "r-old-%d", i);
        old[i] = publish_frame_as(police, 1, "vulnerable_individual", id);
    }
    one_turn(o, old, 5);
    store_sql(o, "UPDATE reports SET created = 1, accepted = 1000 WHERE id LIKE 'r-old-%'");
    const char *left = "SELECT count(*) FROM reports WHERE id LIKE 'r-old-%'";
    const char *leaves = "SELECT count(*) FROM tlog_leaves"
                         " WHERE CAST(data AS TEXT) LIKE '{\"event\":\"purged\"%'";

    cv_broker_frame_t purge[] = {admin_frame(admin, 3, "purge", (char *[]){"trust-clock"}, 1)};
    one_turn(o, purge, 1); /* its first step, after the turn that took it */
    assert_int_equal(store_count(o, left), 3);
    assert_int_equal(seen.replies, 0);
    cv_broker_frame_t again[] = {admin_frame(admin, 3, "purge", NULL, 0),
                                 publish_frame_as(police, 1, "vulnerable_individual", "r-new")};
    one_turn(o, again, 2); /* a step, then the turn */
    assert_int_equal(store_count(o, left), 1);
    assert_int_equal(store_count(o, "SELECT count(*) FROM reports WHERE id = 'r-new'"), 1);
    assert_int_equal(seen.replies, 0);

    cv_broker_frame_t next[] = {publish_frame_as(police, 1, "vulnerable_individual", "r-new-2")};
    one_turn(o, next, 1); /* the last step: one report, fewer than a step's */
    assert_int_equal(store_count(o, left), 0);
    assert_int_equal(seen.replies, 1);
    assert_true(seen.ok);
    assert_non_null(strstr(seen.text, "\"purged\":5"));
    for (int i = 0; i < 5; i++) {
        char listed[32];
        snprintf(listed, sizeof listed, "\"id\":\"r-old-%d\"", i);
        assert_non_null(strstr(seen.text, listed));
    }
    assert_int_equal(store_count(o, leaves), 5);
    assert_int_equal(store_count(o, "SELECT count(*) FROM purges"), 5);

    /* the purge asked meanwhile, in the next step: nothing left */
    cv_broker_frame_t last[] = {publish_frame_as(police, 1, "vulnerable_individual", "r-new-3")};
    one_turn(o, last, 1);
    assert_int_equal(seen.replies, 2);
    assert_true(seen.ok);
    assert_non_null(strstr(seen.text, "\"purged\":0"));
    assert_int_equal(store_count(o, "SELECT count(*) FROM reports WHERE id LIKE 'r-new%'"), 3);
}

/*  The audit log's `admin` leaf says whether a backup was taken: it said
 *  ok for one refused at once (no directory, one already running), which
 *  a reviewer reading the log would count as a copy made. */
static void test_a_backup_refused_at_once_is_recorded_as_not_taken(void **state)
{
    offline_t *o = *state;
    int admin = agency(o, "caveat-admin");
    const char *taken = "SELECT count(*) FROM tlog_leaves WHERE CAST(data AS TEXT)"
                        " LIKE '%\"action\":\"backup\",\"ok\":true%'",
               *refused = "SELECT count(*) FROM tlog_leaves WHERE CAST(data AS TEXT)"
                          " LIKE '%\"action\":\"backup\",\"ok\":false%'";
    admin_seen_t seen = {0};
    cv_broker_on_sent(o->broker, on_sent_admin, &seen);
    cv_broker_frame_t start[] = {hello_with(admin, 3, 0)};
    one_turn(o, start, 1);
    cv_broker_frame_t no_dir[] = {admin_frame(admin, 3, "backup", NULL, 0)};
    one_turn(o, no_dir, 1);
    assert_false(seen.ok);
    assert_int_equal(store_count(o, refused), 1);
    assert_int_equal(store_count(o, taken), 0);

    char *dir[] = {(char *)harness_path(o->files, "backup")};
    cv_broker_frame_t first[] = {admin_frame(admin, 3, "backup", dir, 1)};
    one_turn(o, first, 1);
    assert_int_equal(store_count(o, taken), 1);
    /* offline nothing hears the copy end: it is still running */
    char *other[] = {(char *)harness_path(o->files, "backup-2")};
    cv_broker_frame_t second[] = {admin_frame(admin, 3, "backup", other, 1)};
    one_turn(o, second, 1);
    assert_false(seen.ok);
    assert_non_null(strstr(seen.text, "already running"));
    assert_int_equal(store_count(o, refused), 2);
    assert_int_equal(store_count(o, taken), 1);
}

/*  DIR/policy.yaml as version 8 (the example is version 7). */
/*  The policy file made version 8, with the text was (NULL: none)
 *  replaced by now. */
static void policy_made_version_8_with(offline_t *o, const char *was, const char *now)
{
    FILE *f = fopen(harness_path(o->files, "policy.yaml"), "r");
    assert_non_null(f);
    static char text[1 << 16], rest[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *at = strstr(text, "\nversion: 7\n");
    assert_non_null(at);
    at[10] = '8';
    if (was) {
        assert_non_null(at = strstr(text, was));
        snprintf(rest, sizeof rest, "%s%s", now, at + strlen(was));
        snprintf(at, sizeof text - (size_t)(at - text), "%s", rest);
    }
    harness_write_policy(o->files, text);
}

static void policy_made_version_8(offline_t *o)
{
    policy_made_version_8_with(o, NULL, NULL);
}

/*  Version 8 of the policy: caveat-admin's key is another, so the key
 *  that asked is no administrator's. */
static void policy_made_version_8_without_the_admin_key(offline_t *o)
{
    policy_made_version_8_with(o, "key: \"@6w&qXhbygbBNN&<Q8Vt2mG?*DREYkzlZ2wE9VCi\"",
                               "key: \"0000000000000000000000000000000000000000\"");
}

/*  A backup asked in the same turn as a reload that took the asker's key
 *  out of the administrators is let go at the turn's end, as any, and
 *  stopped as soon as that reload is in force: its copy, of the store and
 *  both keys, is removed, and the administrator told why. */
static void test_a_backup_is_stopped_by_a_reload_that_took_the_key_away(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull"), admin = agency(o, "caveat-admin");
    admin_seen_t seen = {0};
    with_a_report_past_retention(o, police, admin, &seen);
    policy_made_version_8_without_the_admin_key(o);
    char dir[600];
    snprintf(dir, sizeof dir, "%s", harness_path(o->files, "taken"));
    cv_broker_frame_t both[] = {admin_frame(admin, 3, "backup", (char *[]){dir}, 1),
                                admin_frame(admin, 3, "reload", NULL, 0)};
    one_turn(o, both, 2);
    assert_int_not_equal(access(dir, F_OK), 0);
}

/*  Admin work waits for the end of its turn, after a reload asked before
 *  it; it runs under the policy then in force. A purge asked by an
 *  administrator whose key the reload took away is not run, and says so:
 *  it ran, as whoever it had been asked by. */
static void test_admin_work_after_a_reload_that_took_the_key_away_is_not_run(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull"), admin = agency(o, "caveat-admin");
    admin_seen_t seen = {0};
    with_a_report_past_retention(o, police, admin, &seen);
    policy_made_version_8_without_the_admin_key(o);
    cv_broker_frame_t both[] = {admin_frame(admin, 3, "reload", NULL, 0),
                                admin_frame(admin, 3, "purge", (char *[]){"trust-clock"}, 1)};
    one_turn(o, both, 2);
    assert_int_equal(store_count(o, "SELECT count(*) FROM reports WHERE id = 'r-old'"), 1);
    assert_int_equal(store_count(o, "SELECT count(*) FROM purges"), 0);
}

/*  The version of the policy in force, as "stats" says it. */
static int version_in_force(offline_t *o, int admin, admin_seen_t *seen)
{
    seen->policy_version = -1;
    cv_broker_frame_t stats[] = {admin_frame(admin, 3, "stats", NULL, 0)};
    one_turn(o, stats, 1);
    return seen->policy_version;
}

#define POLICY_8_LEAVES                                                                            \
    "SELECT count(*) FROM tlog_leaves WHERE CAST(data AS TEXT) LIKE '{\"event\":\"policy\",%'"     \
    " AND CAST(data AS TEXT) LIKE '%\"version\":8,%'"
#define RELOAD_LEAVES                                                                              \
    "SELECT count(*) FROM tlog_leaves WHERE CAST(data AS TEXT)"                                    \
    " LIKE '%\"action\":\"reload\",\"ok\":true%'"

/*  A turn of a reload asked by admin, on connection 3. */
static void reload_turn(offline_t *o, int admin)
{
    cv_broker_frame_t reload[] = {admin_frame(admin, 3, "reload", NULL, 0)};
    one_turn(o, reload, 1);
}

/*  A new policy is in force only once its leaf has committed. A reload
 *  asked in a turn that then rolled back (here its leaves' rows fail) was
 *  made all the same: version 8 decided with no leaf to say so, and the
 *  administrator's leaf was lost too. Now that turn does nothing of it
 *  and says so; a reload whose own transaction fails (here every leaf's
 *  row) is not made either; once the store takes writes, it is. */
static void test_a_reload_is_in_force_only_once_recorded(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull"), admin = agency(o, "caveat-admin");
    admin_seen_t seen = {0};
    police_and_admin_in_session(o, police, admin, &seen);
    policy_made_version_8(o);

    /* the report's leaf fails its turn; a reload run all the same would
     * record its own leaves */
    store_sql(o, "CREATE TRIGGER fail BEFORE INSERT ON tlog_leaves"
                 " WHEN CAST(NEW.data AS TEXT) LIKE '{\"event\":\"accepted\"%'"
                 " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    cv_broker_frame_t failing[] = {publish_frame(police, "vulnerable_individual"),
                                   admin_frame(admin, 3, "reload", NULL, 0)};
    one_turn(o, failing, 2);
    assert_int_equal(seen.replies, 1);
    assert_false(seen.ok);
    assert_non_null(strstr(seen.text, "nothing was done"));
    store_sql(o, "DROP TRIGGER fail");
    assert_int_equal(version_in_force(o, admin, &seen), 7);

    /* a turn with no leaf commits; the reload's own leaves fail */
    store_sql(o, "CREATE TRIGGER fail BEFORE INSERT ON tlog_leaves"
                 " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    cv_broker_frame_t unrecorded[] = {admin_frame(admin, 3, "reload", NULL, 0)};
    one_turn(o, unrecorded, 1);
    assert_false(seen.ok);
    assert_non_null(strstr(seen.text, "could not record the new policy"));
    store_sql(o, "DROP TRIGGER fail");
    assert_int_equal(version_in_force(o, admin, &seen), 7);
    assert_int_equal(store_count(o, POLICY_8_LEAVES), 0);
    assert_int_equal(store_count(o, RELOAD_LEAVES), 0);

    reload_turn(o, admin);
    /* the answer waits for the sync of the reload's commit: a turn's end */
    assert_int_equal(version_in_force(o, admin, &seen), 8);
    assert_int_equal(seen.reloaded, 1);
    assert_int_equal(store_count(o, POLICY_8_LEAVES), 1);
    assert_int_equal(store_count(o, RELOAD_LEAVES), 1);
}

#define POLICY_LEAVES                                                                              \
    "SELECT count(*) FROM tlog_leaves WHERE CAST(data AS TEXT) LIKE '{\"event\":\"policy\",%'"

/*  A policy is never rolled back: version 7 put back after 8 (an older
 *  signed policy with its own good signature, copied back by whoever can
 *  write the policy's directory, would bring back the keys and
 *  administrators 8 removed) is refused at a reload, 8 stays in force,
 *  and the refusal is recorded; a broker started on it does not start.
 *  The store keeps the highest version across restarts. */
static void test_a_policy_is_never_rolled_back(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull"), admin = agency(o, "caveat-admin");
    admin_seen_t seen = {0};
    police_and_admin_in_session(o, police, admin, &seen);
    size_t len;
    char *seven = cv_read_file(harness_path(o->files, "policy.yaml"), &len);
    assert_non_null(seven);
    policy_made_version_8(o);
    reload_turn(o, admin);
    assert_int_equal(version_in_force(o, admin, &seen), 8);

    harness_write_policy(o->files, seven);
    reload_turn(o, admin);
    assert_false(seen.ok);
    assert_non_null(strstr(seen.text, "error: version 7 is older than version 8, which this "
                                      "store has had in force"));
    assert_int_equal(version_in_force(o, admin, &seen), 8);
    assert_int_equal(store_count(o, "SELECT count(*) FROM tlog_leaves WHERE CAST(data AS TEXT)"
                                    " LIKE '{\"event\":\"policy refused\",%version 7 is older%'"),
                     1);

    cv_broker_destroy(&o->broker);
    o->broker = open_broker(o);
    assert_null(o->broker); /* version 7 does not start it either */
    policy_made_version_8(o);
    o->broker = open_broker(o);
    assert_non_null(o->broker);
    free(seven);
}

/*  A DeliveryAck of every seq up to up_to. */
static cv_broker_frame_t ack_frame(int from, uint32_t connection, uint64_t up_to)
{
    Caveat__Wire__DeliveryAck ack = CAVEAT__WIRE__DELIVERY_ACK__INIT;
    ack.has_up_to = true;
    ack.up_to = up_to;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_DELIVERY_ACK;
    frame.delivery_ack = &ack;
    return packed(from, connection, &frame);
}

/*  Version 8 of the policy: the council's safeguarding referrals from the
 *  police are for grievances, no longer for vulnerable individuals. */
static void policy_withholding_referrals(offline_t *o)
{
    policy_made_version_8_with(o,
                               "categories: [vulnerable_individual]\n    from_types: [police]\n"
                               "    to_types: [local_authority]\n",
                               "categories: [grievance]\n    from_types: [police]\n"
                               "    to_types: [local_authority]\n");
}

/*  10 ms, then a turn of a Heartbeat from agency from on connection. */
static void heartbeat_turn(offline_t *o, int from, uint32_t connection)
{
    Caveat__Wire__Heartbeat heartbeat = CAVEAT__WIRE__HEARTBEAT__INIT;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_HEARTBEAT;
    frame.heartbeat = &heartbeat;
    usleep(10 * 1000);
    cv_broker_frame_t beat[] = {packed(from, connection, &frame)};
    one_turn(o, beat, 1);
}

/*  Heartbeat turns of agency from until n frames with body have gone to
 *  connection (counted from the start of sent), or 10 s. */
static void turns_until_sent(offline_t *o, int from, const sent_t *sent, uint32_t connection,
                             Caveat__Wire__Frame__BodyCase body, int n)
{
    for (int i = 0; i < 1000 && sent_to(sent, 0, connection, body) < n; i++)
        heartbeat_turn(o, from, 1);
}

#define DELIVERED_LEAVES_NAMING(id)                                                                \
    "SELECT count(*) FROM tlog_leaves WHERE CAST(data AS TEXT) LIKE '{\"event\":\"delivered\",%'"  \
    " AND CAST(data AS TEXT) LIKE '%\"report\":\"" id "\"%'"

/*  The police, the council and the administrator connected on
 *  connections 1, 2 and 3 (the council with credit) to a broker that
 *  syncs, what it sends counted in sent; report id published and
 *  delivered to the council; then version 8 of the policy written, for a
 *  reload to come. */
static void received_before_a_reload(offline_t *o, sent_t *sent, const char *id, int *police,
                                     int *council, int *admin)
{
    cv_broker_destroy(&o->broker);
    o->broker = open_broker_syncing(o, CV_SYNC_FULL);
    assert_non_null(o->broker);
    *police = agency(o, "hum-bcu-hull"), *council = agency(o, "hull-cc"),
    *admin = agency(o, "caveat-admin");
    cv_broker_on_sent(o->broker, on_sent, sent);
    cv_broker_frame_t start[] = {hello_with(*police, 1, 0), hello_with(*council, 2, 10),
                                 hello_with(*admin, 3, 0)};
    one_turn(o, start, 3);
    cv_broker_frame_t first[] = {publish_frame_as(*police, 1, "vulnerable_individual", id)};
    one_turn(o, first, 1);
    turns_until_sent(o, *police, sent, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER, 1);
    assert_int_equal(sent_to(sent, 0, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 1);
    policy_withholding_referrals(o);
}

/*  received_before_a_reload's "r-left", then "r-withdrawn" published and
 *  given seq 2 in the turn of a reload that stops releasing it to the
 *  council: its Deliver, waiting for the turn's sync, never leaves. */
static void withdrawn_by_a_reload(offline_t *o, sent_t *sent, int *police, int *council, int *admin)
{
    received_before_a_reload(o, sent, "r-left", police, council, admin);
    cv_broker_frame_t withdrawn[] = {
        publish_frame_as(*police, 1, "vulnerable_individual", "r-withdrawn"),
        admin_frame(*admin, 3, "reload", NULL, 0)};
    one_turn(o, withdrawn, 2);
    if (sent_to(sent, 0, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER) > 1)
        skip(); /* synced before the turn ended: its Deliver left before the reload */
    turns_until_sent(o, *police, sent, 1, CAVEAT__WIRE__FRAME__BODY_PUBLISH_ACK, 2);
}

/*  Feedback on a report whose delivery was withdrawn unsent (a reload
 *  stopped releasing it while it waited for its sync) is refused as on an
 *  id never sent to the agency: accepting it told the agency the report
 *  existed, and the originator that the agency had it. */
static void test_feedback_on_a_delivery_that_never_left_is_refused(void **state)
{
    offline_t *o = *state;
    sent_t sent = {0};
    int police, council, admin;
    withdrawn_by_a_reload(o, &sent, &police, &council, &admin);

    size_t mark = sent.n;
    cv_broker_frame_t feedback[] = {feedback_on(council, 2, "r-withdrawn", "useful"),
                                    feedback_on(council, 2, "r-nobody-has", "useful"),
                                    feedback_on(council, 2, "r-left", "useful")};
    one_turn(o, feedback, 3);
    turns_until_sent(o, police, &sent, 2, CAVEAT__WIRE__FRAME__BODY_FEEDBACK_ACK, 1);
    assert_int_equal(sent_to(&sent, mark, 2, CAVEAT__WIRE__FRAME__BODY_FEEDBACK_ACK), 1);
    assert_int_equal(sent_to(&sent, mark, 2, CAVEAT__WIRE__FRAME__BODY_ERROR), 2);
    assert_int_equal(store_count(o, "SELECT count(*) FROM feedback"), 1);
    assert_int_equal(sent_to(&sent, 0, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 1);

    /* acknowledged past it (a client may), and the acknowledgement saved:
     * the queue forgets the seq, and the route it never left by goes */
    cv_broker_frame_t ack[] = {ack_frame(council, 2, 2)};
    one_turn(o, ack, 1);
    for (int i = 0; i < 500 && store_count(o, DELIVERED_LEAVES_NAMING("r-left")) == 0; i++)
        heartbeat_turn(o, admin, 3);
    assert_int_equal(store_count(o, DELIVERED_LEAVES_NAMING("r-left")), 1);
    mark = sent.n;
    cv_broker_frame_t again[] = {feedback_on(council, 2, "r-withdrawn", "useful")};
    one_turn(o, again, 1);
    assert_int_equal(sent_to(&sent, mark, 2, CAVEAT__WIRE__FRAME__BODY_ERROR), 1);
    assert_int_equal(store_count(o, "SELECT count(*) FROM feedback"), 1);
}

/*  A reload of the policy in force, unchanged, writes no policy leaf and
 *  sends nothing again: an administrator asking for one reload after
 *  another made every session resend all it had in flight each time. */
static void test_an_unchanged_reload_changes_nothing(void **state)
{
    offline_t *o = *state;
    sent_t sent = {0};
    int police = agency(o, "hum-bcu-hull"), council = agency(o, "hull-cc"),
        admin = agency(o, "caveat-admin");
    cv_broker_on_sent(o->broker, on_sent, &sent);
    cv_broker_frame_t start[] = {hello_with(police, 1, 0), hello_with(council, 2, 10),
                                 hello_with(admin, 3, 0),
                                 publish_frame_as(police, 1, "vulnerable_individual", "r-once")};
    one_turn(o, start, 4);
    assert_int_equal(sent_to(&sent, 0, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 1);
    int leaves = store_count(o, POLICY_LEAVES);
    size_t mark = sent.n;
    for (int i = 0; i < 5; i++)
        reload_turn(o, admin);
    /* each answer goes with the sync of the turn after its reload */
    turns_until_sent(o, police, &sent, 3, CAVEAT__WIRE__FRAME__BODY_ADMIN_REPLY, 5);
    assert_int_equal(sent_to(&sent, mark, 3, CAVEAT__WIRE__FRAME__BODY_ADMIN_REPLY), 5);
    assert_int_equal(store_count(o, POLICY_LEAVES), leaves);
    assert_int_equal(store_count(o, RELOAD_LEAVES), 5); /* each administrator's act is */
    assert_int_equal(sent_to(&sent, mark, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 0);
    /* a changed one is put in force, and what is in flight decided again */
    policy_made_version_8(o);
    reload_turn(o, admin);
    assert_int_equal(store_count(o, POLICY_LEAVES), leaves + 1);
    turns_until_sent(o, police, &sent, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER, 2);
    assert_int_equal(sent_to(&sent, mark, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 1);
}

/*  A delivery withdrawn before it left the broker was never received: its
 *  Deliver waited for the sync of its turn, and a reload in the same turn
 *  stopped releasing it, so it stayed in flight unsent. The recipient's
 *  cumulative acknowledgement covers its seq all the same, but no
 *  "delivered" leaf may name it, nor so any receipt: those would tell the
 *  recipient the id (and the view's hash) of a report it was refused, and
 *  record a delivery that never happened, even after the queues were
 *  read back from the store in between (a failed turn). What did leave
 *  before it is recorded as ever. */
static void test_an_acknowledged_delivery_that_never_left_is_not_recorded(void **state)
{
    offline_t *o = *state;
    sent_t sent = {0};
    int police, council, admin;
    withdrawn_by_a_reload(o, &sent, &police, &council, &admin);
    assert_int_equal(sent_to(&sent, 0, 1, CAVEAT__WIRE__FRAME__BODY_PUBLISH_ACK), 2);
    assert_int_equal(sent_to(&sent, 0, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 1);

    /* a turn that fails reads the queues back from the store, which does
     * not know what left: what the broker knew is carried over */
    store_sql(o, "CREATE TRIGGER fail BEFORE INSERT ON tlog_leaves"
                 " WHEN CAST(NEW.data AS TEXT) LIKE '{\"event\":\"accepted\"%'"
                 " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    cv_broker_frame_t failing[] = {publish_frame_as(police, 1, "vulnerable_individual", "r-no")};
    one_turn(o, failing, 1);
    store_sql(o, "DROP TRIGGER fail");
    assert_int_equal(store_count(o, "SELECT count(*) FROM reports WHERE id = 'r-no'"), 0);

    /* seq 2 was given to r-withdrawn: the acknowledgement is taken */
    size_t mark = sent.n;
    cv_broker_frame_t ack[] = {ack_frame(council, 2, 2)};
    one_turn(o, ack, 1);
    assert_int_equal(sent_to(&sent, mark, 2, CAVEAT__WIRE__FRAME__BODY_ERROR), 0);
    /* the acknowledgement is saved, with its leaves, within 100 ms */
    for (int i = 0; i < 500 && store_count(o, DELIVERED_LEAVES_NAMING("r-left")) == 0; i++)
        heartbeat_turn(o, admin, 3);
    assert_int_equal(store_count(o, DELIVERED_LEAVES_NAMING("r-left")), 1);
    assert_int_equal(store_count(o, DELIVERED_LEAVES_NAMING("r-withdrawn")), 0);
    assert_int_equal(store_count(o, "SELECT count(*) FROM tlog_leaves WHERE CAST(data AS TEXT)"
                                    " LIKE '%\"seq\":2,\"view\":%'"),
                     0); /* nor any leaf its seq */
    assert_int_equal(sent_to(&sent, 0, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 1);
}

/*  The rules one Delivery to connection carried, from the Deliver frames
 *  sent (the last seen). */
typedef struct {
    uint32_t connection;
    int deliveries;
    char rules[256];
} rules_seen_t;

static void on_sent_rules(void *arg, uint32_t connection, const uint8_t *bytes, size_t size)
{
    rules_seen_t *seen = arg;
    Caveat__Wire__Frame *frame = caveat__wire__frame__unpack(NULL, size, bytes);
    assert_non_null(frame);
    for (size_t i = 0;
         connection == seen->connection && frame->body_case == CAVEAT__WIRE__FRAME__BODY_DELIVER &&
         i < frame->deliver->n_deliveries;
         i++) {
        const Caveat__Wire__Delivery *d = frame->deliver->deliveries[i];
        seen->deliveries++;
        seen->rules[0] = '\0';
        for (size_t r = 0; r < d->n_rules; r++)
            snprintf(seen->rules + strlen(seen->rules), sizeof seen->rules - strlen(seen->rules),
                     "%s%s", r ? "," : "", d->rules[r]);
    }
    caveat__wire__frame__free_unpacked(frame, NULL);
}

/*  A Delivery names the entries its view shows released it; the audit
 *  log all those that did. In version 8 of the policy the referral rule
 *  (same_area) no longer gives the council the area, and another rule
 *  gives it the summary: a report in its area is released by both, one
 *  elsewhere would be by the second alone, and the names the council is
 *  sent must not tell the two apart. */
static void test_a_delivery_names_what_its_view_shows(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull"), council = agency(o, "hull-cc"),
        admin = agency(o, "caveat-admin");
    rules_seen_t seen = {.connection = 2};
    cv_broker_on_sent(o->broker, on_sent_rules, &seen);
    const char *fields =
        "      summary: share\n      narrative: share\n      subjects.name: share\n"
        "      subjects.date_of_birth: {mask: year}\n"
        "      subjects.postcode: {mask: postcode_district}\n"
        "      subjects.vulnerability_factors: share\n";
    char was[512], now[1024];
    snprintf(was, sizeof was, "      area: share\n%s", fields);
    snprintf(now, sizeof now,
             "%s\n  - name: summary-to-councils\n    categories: [vulnerable_individual]\n"
             "    from_types: [police]\n    to_types: [local_authority]\n"
             "    fields: {summary: share}\n",
             fields);
    policy_made_version_8_with(o, was, now);
    cv_broker_frame_t start[] = {hello_with(police, 1, 0), hello_with(council, 2, 10),
                                 hello_with(admin, 3, 0)};
    one_turn(o, start, 3);
    reload_turn(o, admin);
    cv_broker_frame_t publish[] = {publish_frame_as(police, 1, "vulnerable_individual", "r-told")};
    one_turn(o, publish, 1);
    turns_until(o, police, &seen.deliveries, 1);
    assert_int_equal(seen.deliveries, 1);
    assert_string_equal(seen.rules, "summary-to-councils");
    assert_int_equal(
        store_count(o, "SELECT count(*) FROM tlog_leaves WHERE CAST(data AS TEXT) LIKE "
                       "'{\"event\":\"accepted\",%\"report\":\"r-told\"%\"agency\":\"hull-cc\","
                       "%\"rules\":[\"safeguarding-referral\",\"summary-to-councils\"]%'"),
        1);
}

/*  A Deliver whose fate is settled after the queues were read back from
 *  the store (a turn that failed while it waited for its sync) marks its
 *  seq on the queue read back: its session points at that queue from the
 *  reading on, which broker_delivery_fate asserts (the sanitizer build
 *  runs with assertions). Here the Deliver either left before the
 *  council came back on a new connection, and its acknowledgement is
 *  recorded, or it was dropped with the old session, and nothing is.
 *  The new session's resend waits only for commits made before its turn:
 *  when they are on disk as the turn ends, it leaves under the policy in
 *  force until the reload's turn commits, and the view it carried is the
 *  one recorded; else the reload withdraws it. The syncer decides which,
 *  so each outcome is checked as it happens. */
static void test_a_deliver_settled_after_the_queues_were_read_back_marks_them(void **state)
{
    offline_t *o = *state;
    sent_t sent = {0};
    int police, council, admin;
    received_before_a_reload(o, &sent, "r-first", &police, &council, &admin);
    store_sql(o, "CREATE TRIGGER fail BEFORE INSERT ON tlog_leaves"
                 " WHEN CAST(NEW.data AS TEXT) LIKE '%\"report\":\"r-no\"%'"
                 " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    /* three turns back to back: the Deliver of the first waits for its
     * sync, most often through the second, which fails, and the third, in
     * which the council comes back on a new connection (its old session
     * ends, and the Deliver with it if still held) and a reload stops
     * releasing the report */
    cv_broker_frame_t publish[] = {
        publish_frame_as(police, 1, "vulnerable_individual", "r-settled")};
    one_turn(o, publish, 1);
    cv_broker_frame_t failing[] = {publish_frame_as(police, 1, "vulnerable_individual", "r-no")};
    one_turn(o, failing, 1);
    cv_broker_frame_t back[] = {hello_with(council, 4, 10),
                                admin_frame(admin, 3, "reload", NULL, 0)};
    one_turn(o, back, 2);
    bool left = sent_to(&sent, 0, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER) == 2;
    int resent = sent_to(&sent, 0, 4, CAVEAT__WIRE__FRAME__BODY_DELIVER);
    assert_in_range(resent, 0, 1);
    store_sql(o, "DROP TRIGGER fail");
    assert_int_equal(store_count(o, "SELECT count(*) FROM reports WHERE id = 'r-no'"), 0);
    assert_int_equal(store_count(o, "SELECT count(*) FROM reports WHERE id = 'r-settled'"), 1);

    size_t mark = sent.n;
    cv_broker_frame_t ack[] = {ack_frame(council, 4, 2)};
    one_turn(o, ack, 1);
    assert_int_equal(sent_to(&sent, mark, 4, CAVEAT__WIRE__FRAME__BODY_ERROR), 0);
    for (int i = 0; i < 500 && store_count(o, DELIVERED_LEAVES_NAMING("r-first")) == 0; i++)
        heartbeat_turn(o, admin, 3);
    assert_int_equal(store_count(o, DELIVERED_LEAVES_NAMING("r-first")), 1);
    /* received, or never sent; when the last Deliver packed for it was
     * withdrawn, which view arrived is not known */
    assert_int_equal(store_count(o, DELIVERED_LEAVES_NAMING("r-settled")), left || resent ? 1 : 0);
    assert_int_equal(store_count(o, "SELECT count(*) FROM tlog_leaves WHERE CAST(data AS TEXT)"
                                    " LIKE '%\"report\":\"r-settled\",\"seq\":2,\"view\":null%'"),
                     left && !resent ? 1 : 0);
    assert_int_equal(store_count(o, "SELECT count(*) FROM tlog_leaves WHERE CAST(data AS TEXT)"
                                    " LIKE '%\"report\":\"r-settled\",\"seq\":2,\"view\":\"%'"),
                     resent);
    /* nothing after the reload */
    assert_int_equal(sent_to(&sent, 0, 4, CAVEAT__WIRE__FRAME__BODY_DELIVER), resent);
}

/*  A delivery that left, and whose resend was then withdrawn (the
 *  recipient came back on a new connection, and a reload in that turn
 *  stopped releasing the report before the resend's sync), was received
 *  all the same: its acknowledgement is recorded, without a view (the
 *  one packed last never left, and which was received is not known). */
static void test_a_delivery_received_before_it_was_withdrawn_is_recorded(void **state)
{
    offline_t *o = *state;
    sent_t sent = {0};
    int police, council, admin;
    received_before_a_reload(o, &sent, "r-had", &police, &council, &admin);
    /* the publish's commit holds the resend for its sync, as the reload runs */
    cv_broker_frame_t back[] = {hello_with(council, 4, 10),
                                publish_frame_as(police, 1, "vulnerable_individual", "r-other"),
                                admin_frame(admin, 3, "reload", NULL, 0)};
    one_turn(o, back, 3);
    if (sent_to(&sent, 0, 4, CAVEAT__WIRE__FRAME__BODY_DELIVER) > 0)
        skip(); /* synced before the turn ended: the resend left before the reload */
    cv_broker_frame_t ack[] = {ack_frame(council, 4, 1)};
    one_turn(o, ack, 1);
    for (int i = 0; i < 500 && store_count(o, DELIVERED_LEAVES_NAMING("r-had")) == 0; i++)
        heartbeat_turn(o, admin, 3);
    assert_int_equal(store_count(o, DELIVERED_LEAVES_NAMING("r-had")), 1);
    assert_int_equal(sent_to(&sent, 0, 4, CAVEAT__WIRE__FRAME__BODY_DELIVER), 0);
    /* the view packed last never left: which one was received is not known */
    assert_int_equal(store_count(o, "SELECT count(*) FROM tlog_leaves WHERE CAST(data AS TEXT)"
                                    " LIKE '%\"report\":\"r-had\",\"seq\":1,\"view\":null%'"),
                     1);
}

/*  A backup copies nothing until it is let go (cv_backup_go), however
 *  long it waits; destroyed before, it leaves no directory. Let go, it
 *  makes a whole copy. The broker lets a backup go once the turn that
 *  recorded it has committed. */
static void test_a_backup_copies_nothing_until_let_go(void **state)
{
    offline_t *o = *state;
    char db[600], dir[600], inside[700], why[CV_BACKUP_TEXT];
    snprintf(db, sizeof db, "%s", harness_path(o->files, "data/caveat.db"));
    snprintf(dir, sizeof dir, "%s", harness_path(o->files, "held"));
    const uint8_t key[CV_KEY_BYTES] = {0};
    cv_backup_t *held = cv_backup_new(db, dir, key, 0, 0, why, sizeof why);
    assert_non_null(held);
    zclock_sleep(300); /* a store this small is copied in a few ms */
    const char *names[] = {"pseudonym.key", "audit.key", "caveat.db.partial", "caveat.db"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(inside, sizeof inside, "%s/%s", dir, names[i]);
        assert_int_not_equal(access(inside, F_OK), 0);
    }
    cv_backup_destroy(&held);
    assert_int_not_equal(access(dir, F_OK), 0);

    cv_backup_t *going = cv_backup_new(db, dir, key, 0, 0, why, sizeof why);
    assert_non_null(going);
    cv_backup_go(going);
    bool ok = false;
    for (int i = 0; i < 1000 && !cv_backup_ended(going, &ok, why, sizeof why); i++)
        zclock_sleep(10);
    assert_true(ok);
    snprintf(inside, sizeof inside, "%s/caveat.db", dir);
    assert_int_equal(access(inside, F_OK), 0);
    cv_backup_destroy(&going);
}

/*  A backup let go; its outcome, and its text in why. */
static bool backup_outcome(cv_backup_t *backup, char *why, size_t size)
{
    cv_backup_go(backup);
    bool ok = false;
    for (int i = 0; i < 1000 && !cv_backup_ended(backup, &ok, why, size); i++)
        zclock_sleep(10);
    return ok;
}

/*  A file named path with text in it. */
static void planted(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static bool holds_text(const char *path, const char *text)
{
    size_t len = 0;
    char *got = cv_read_file(path, &len);
    bool same = got && strcmp(got, text) == 0;
    free(got);
    return same;
}

/*  The paths of a backup whose directory is swapped: the store (db), the
 *  parent of the backup's directory (dir, "copy" in it), where the parent
 *  is moved, and "live", whose own "copy" holds files of the backup's
 *  names, each saying "live", for the swap to point the parent at. */
typedef struct {
    char db[600], parent[600], dir[700], moved[600], live[600];
} swap_t;

static void swap_set_up(offline_t *o, swap_t *p, const char *const *names, size_t n)
{
    char file[800];
    snprintf(p->db, sizeof p->db, "%s", harness_path(o->files, "data/caveat.db"));
    snprintf(p->parent, sizeof p->parent, "%s", harness_path(o->files, "backups"));
    snprintf(p->moved, sizeof p->moved, "%s", harness_path(o->files, "backups-moved"));
    snprintf(p->live, sizeof p->live, "%s", harness_path(o->files, "live"));
    snprintf(p->dir, sizeof p->dir, "%s/copy", p->parent);
    assert_int_equal(mkdir(p->parent, 0700), 0);
    assert_int_equal(mkdir(p->live, 0700), 0);
    snprintf(file, sizeof file, "%s/copy", p->live);
    assert_int_equal(mkdir(file, 0700), 0);
    for (size_t i = 0; i < n; i++) {
        snprintf(file, sizeof file, "%s/copy/%s", p->live, names[i]);
        planted(file, "live");
    }
}

/*  The parent swapped for a link to "live". */
static void swap_now(const swap_t *p)
{
    assert_int_equal(rename(p->parent, p->moved), 0);
    assert_int_equal(symlink(p->live, p->parent), 0);
}

/*  Every file of "live" still says "live". */
static void swap_left_live_alone(const swap_t *p, const char *const *names, size_t n)
{
    char file[800];
    for (size_t i = 0; i < n; i++) {
        snprintf(file, sizeof file, "%s/copy/%s", p->live, names[i]);
        assert_true(holds_text(file, "live"));
    }
}

/*  A backup writes only in the directory it made, and removes only what
 *  it wrote. Its directory's parent swapped, between the request and the
 *  copy, for a link to where the data directory's files are (whoever can
 *  write that parent can), the backup wrote nothing there; it had taken
 *  the files of the same names it found there for its own, and removed
 *  them when its own writes failed: the live store and keys. A key file
 *  put in the directory it did make is left as it is, too. */
static void test_a_backup_removes_nothing_it_did_not_write(void **state)
{
    offline_t *o = *state;
    char file[800], why[CV_BACKUP_TEXT];
    const char *names[] = {"caveat.db", "pseudonym.key", "audit.key"};
    swap_t p;
    swap_set_up(o, &p, names, 3);
    const uint8_t key[CV_KEY_BYTES] = {0};
    cv_backup_t *swapped = cv_backup_new(p.db, p.dir, key, 0, 0, why, sizeof why);
    assert_non_null(swapped);
    swap_now(&p);
    assert_false(backup_outcome(swapped, why, sizeof why));
    assert_non_null(strstr(why, "no longer the directory the backup made"));
    cv_backup_destroy(&swapped);
    swap_left_live_alone(&p, names, 3);

    assert_int_equal(unlink(p.parent), 0);
    assert_int_equal(rename(p.moved, p.parent), 0);
    assert_int_equal(rmdir(p.dir), 0); /* the one the swapped backup made, left empty */
    cv_backup_t *planted_in = cv_backup_new(p.db, p.dir, key, 0, 0, why, sizeof why);
    assert_non_null(planted_in);
    snprintf(file, sizeof file, "%s/pseudonym.key", p.dir);
    planted(file, "planted");
    assert_false(backup_outcome(planted_in, why, sizeof why));
    assert_non_null(strstr(why, "pseudonym.key: cannot write"));
    cv_backup_destroy(&planted_in);
    assert_true(holds_text(file, "planted"));
}

/*  The same when the swap comes in the middle of the copy (the copy kept
 *  to 2 MB a second, the store padded to 6 MB): the backup writes and
 *  removes its files through its directory as opened, never by path, so
 *  it stops when it finds its path leads elsewhere, removing its own
 *  files, and the files of the same names the path now leads to stay. */
static void test_a_backup_swapped_mid_copy_removes_nothing_elsewhere(void **state)
{
    offline_t *o = *state;
    char file[800], why[CV_BACKUP_TEXT];
    store_sql(o, "CREATE TABLE pad(x); INSERT INTO pad VALUES(zeroblob(6000000));");
    const char *names[] = {"caveat.db", "pseudonym.key", "audit.key", "caveat.db.partial"};
    swap_t p;
    swap_set_up(o, &p, names, 4);
    const uint8_t key[CV_KEY_BYTES] = {0};
    cv_backup_t *backup = cv_backup_new(p.db, p.dir, key, 0, 2, why, sizeof why);
    assert_non_null(backup);
    cv_backup_go(backup);
    snprintf(file, sizeof file, "%s/caveat.db.partial", p.dir);
    for (int i = 0; i < 500 && access(file, F_OK) != 0; i++)
        zclock_sleep(10);
    assert_int_equal(access(file, F_OK), 0); /* the keys are written, the copy begun */
    swap_now(&p);
    bool ok = true;
    for (int i = 0; i < 3000 && !cv_backup_ended(backup, &ok, why, sizeof why); i++)
        zclock_sleep(10);
    assert_false(ok);
    assert_non_null(strstr(why, "no longer the directory the backup made"));
    cv_backup_destroy(&backup);
    swap_left_live_alone(&p, names, 4);
    snprintf(file, sizeof file, "%s/copy", p.moved); /* its own, emptied */
    assert_int_equal(rmdir(file), 0);
}

/*  A backup copies no faster than its rate: at the disk's full speed its
 *  writes queued the broker's WAL syncs, and with them every PublishAck
 *  and delivery (docs/performance.md, "A backup while publishing"). A
 *  store of some 8 MB at 2 MB a second takes at least 3.5 s: a bound
 *  below, which a busy machine only makes easier to meet. */
static void test_a_backup_keeps_to_its_rate(void **state)
{
    offline_t *o = *state;
    store_sql(o, "CREATE TABLE filler(b BLOB);"
                 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 8)"
                 " INSERT INTO filler SELECT zeroblob(1048576) FROM n");
    char db[600], dir[600], why[CV_BACKUP_TEXT];
    snprintf(db, sizeof db, "%s", harness_path(o->files, "data/caveat.db"));
    snprintf(dir, sizeof dir, "%s", harness_path(o->files, "paced"));
    const uint8_t key[CV_KEY_BYTES] = {0};
    cv_backup_t *paced = cv_backup_new(db, dir, key, 0, 2, why, sizeof why);
    assert_non_null(paced);
    int64_t began = zclock_mono();
    cv_backup_go(paced);
    bool ok = false;
    for (int i = 0; i < 3000 && !cv_backup_ended(paced, &ok, why, sizeof why); i++)
        zclock_sleep(10);
    int64_t took = zclock_mono() - began;
    assert_true(ok);
    assert_true(took >= 3500);
    cv_backup_destroy(&paced);
}

/*  An administrator's work (reload, purge, review, backup) is bounded as
 *  any agency's traffic is: each is a transaction and a reload reads up to
 *  64 MB of policy, and one leaked admin key sent a thousand a turn. Past
 *  ADMIN_PER_SECOND (10) a second it is refused LIMIT; questions such as
 *  stats are not counted, and the work taken is done. */
static void test_admin_work_is_bounded_by_a_rate(void **state)
{
    offline_t *o = *state;
    int admin = agency(o, "caveat-admin");
    sent_t sent = {0};
    cv_broker_on_sent(o->broker, on_sent, &sent);
    enum { RELOADS = 25 };
    cv_broker_frame_t frames[RELOADS + 2];
    frames[0] = hello_with(admin, 3, 0);
    for (int i = 1; i <= RELOADS; i++)
        frames[i] = admin_frame(admin, 3, "reload", NULL, 0);
    frames[RELOADS + 1] = admin_frame(admin, 3, "stats", NULL, 0);
    one_turn(o, frames, RELOADS + 2);
    /* the rate counts by the clock's seconds: a turn that spans the turn
     * of a second lets through up to twice the rate */
    int refused = sent_to(&sent, 0, 3, CAVEAT__WIRE__FRAME__BODY_ERROR);
    assert_in_range(refused, RELOADS - 2 * 10, RELOADS - 10);
    cv_broker_frame_t again[] = {admin_frame(admin, 3, "stats", NULL, 0)};
    one_turn(o, again, 1); /* the reloads' answers wait for a sync: a turn's end */
    assert_int_equal(sent_to(&sent, 0, 3, CAVEAT__WIRE__FRAME__BODY_ADMIN_REPLY),
                     RELOADS - refused + 2);
}

/*  A backup asked in a turn that then rolls back copies nothing, and its
 *  directory is removed, as the leaf that recorded it went with the turn;
 *  a purge asked there is not run. Both are answered; the next backup
 *  goes. (A backup used to begin copying at once, and one of a small store
 *  could end, answered ok, before its turn failed.) */
static void test_admin_work_of_a_turn_rolled_back_is_not_done(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull"), admin = agency(o, "caveat-admin");
    admin_seen_t seen = {0};
    with_a_report_past_retention(o, police, admin, &seen);

    /* the requests' own leaves fail their turn; a purge run all the same
     * would record its "purged" leaf */
    store_sql(o, "CREATE TRIGGER fail BEFORE INSERT ON tlog_leaves"
                 " WHEN CAST(NEW.data AS TEXT) LIKE '{\"event\":\"admin\"%'"
                 " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    char dir[600];
    snprintf(dir, sizeof dir, "%s", harness_path(o->files, "backup"));
    cv_broker_frame_t failing[] = {admin_frame(admin, 3, "backup", (char *[]){dir}, 1),
                                   admin_frame(admin, 3, "purge", (char *[]){"trust-clock"}, 1)};
    one_turn(o, failing, 2);
    assert_int_equal(seen.replies, 2);
    assert_false(seen.ok);
    assert_non_null(strstr(seen.text, "could not commit"));
    assert_int_not_equal(access(dir, F_OK), 0);
    assert_int_equal(store_count(o, "SELECT count(*) FROM reports WHERE id = 'r-old'"), 1);
    assert_int_equal(store_count(o, "SELECT count(*) FROM tlog_leaves WHERE CAST(data AS TEXT)"
                                    " LIKE '%\"event\":\"admin\"%'"),
                     0);

    store_sql(o, "DROP TRIGGER fail");
    cv_broker_frame_t again[] = {admin_frame(admin, 3, "backup", (char *[]){dir}, 1)};
    one_turn(o, again, 1);
    assert_int_equal(store_count(o, "SELECT count(*) FROM tlog_leaves WHERE CAST(data AS TEXT)"
                                    " LIKE '%\"action\":\"backup\",\"ok\":true%'"),
                     1);
}

/*  Opens the offline broker and says why it would not, in err. */
static cv_broker_t *broker_or_why(offline_t *o, cv_error_t *err)
{
    char policy[600], data[600];
    snprintf(policy, sizeof policy, "%s", harness_path(o->files, "policy.yaml"));
    snprintf(data, sizeof data, "%s", harness_path(o->files, "data"));
    cv_broker_config_t config = {.policy_path = policy, .data_dir = data, .sync = CV_SYNC_OFF};
    return cv_broker_new_offline(&config, err);
}

static void write_bytes(const char *path, size_t n, mode_t mode)
{
    uint8_t bytes[64] = {0};
    assert_true(n <= sizeof bytes);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
    chmod(path, mode);
}

/*  A data directory is checked and locked before anything is made in it.
 *  A second broker on a directory in use gave up or remade the first
 *  one's disk reserve (here: made it again, where the first had let it
 *  go), and a directory refused for its mode was given a reserve and a
 *  pseudonymisation key before the refusal. */
static void test_a_data_directory_refused_is_left_as_it_was(void **state)
{
    offline_t *o = *state;
    char reserve[600], key[600], data[600];
    snprintf(reserve, sizeof reserve, "%s", harness_path(o->files, "data/caveat.reserve"));
    snprintf(key, sizeof key, "%s", harness_path(o->files, "data/pseudonym.key"));
    snprintf(data, sizeof data, "%s", harness_path(o->files, "data"));
    unlink(reserve);
    cv_error_t err = {0};
    cv_broker_t *second = broker_or_why(o, &err);
    assert_null(second);
    assert_non_null(strstr(err.msg, "another caveatd is using this data directory"));
    assert_int_not_equal(access(reserve, F_OK), 0);

    cv_broker_destroy(&o->broker);
    unlink(key);
    assert_int_equal(chmod(data, 0750), 0);
    err = (cv_error_t){0};
    assert_null(broker_or_why(o, &err));
    assert_non_null(strstr(err.msg, "lets group or others in"));
    assert_int_not_equal(access(reserve, F_OK), 0);
    assert_int_not_equal(access(key, F_OK), 0);

    assert_int_equal(chmod(data, 0700), 0);
    o->broker = broker_or_why(o, &err);
    assert_non_null(o->broker);
    assert_int_equal(access(key, F_OK), 0);
}

/*  pseudonym.key is taken only as a regular file of 32 bytes, this user's
 *  and private. A link was followed: planted while the data directory
 *  was open to others (the broker refuses such a directory, but read the
 *  key first), it pointed at bytes someone knew, and every pseudonym
 *  could be reversed. A FIFO in its place is refused, not waited on. */
static void test_a_pseudonym_key_that_is_not_a_private_file_is_refused(void **state)
{
    offline_t *o = *state;
    cv_broker_destroy(&o->broker); /* its data directory and key stay */
    char key[600], known[600], saved[600];
    snprintf(key, sizeof key, "%s", harness_path(o->files, "data/pseudonym.key"));
    snprintf(known, sizeof known, "%s", harness_path(o->files, "known.key"));
    snprintf(saved, sizeof saved, "%s", harness_path(o->files, "saved.key"));
    assert_int_equal(rename(key, saved), 0);
    write_bytes(known, 32, 0600);
    cv_error_t err = {0};

    assert_int_equal(symlink(known, key), 0);
    assert_null(broker_or_why(o, &err));
    assert_non_null(strstr(err.msg, "pseudonym.key: error: not a regular file of 32 bytes"));
    unlink(key);
    write_bytes(key, 33, 0600);
    assert_null(broker_or_why(o, &err));
    assert_non_null(strstr(err.msg, "pseudonym.key"));
    unlink(key);
    write_bytes(key, 32, 0640);
    assert_null(broker_or_why(o, &err));
    unlink(key);
    assert_int_equal(mkfifo(key, 0600), 0);
    alarm(20); /* a wait at the open is a failure */
    assert_null(broker_or_why(o, &err));
    alarm(0);
    assert_non_null(strstr(err.msg, "pseudonym.key"));
    unlink(key);

    assert_int_equal(rename(saved, key), 0); /* its own key back: it starts */
    o->broker = broker_or_why(o, &err);
    assert_non_null(o->broker);
}

/*  Two connections of one agency taking turns at Hello for its queue:
 *  each replaces the other's session, and the replaced connection has no
 *  session left to count its Hellos, so the per-connection rate started
 *  again at every Hello and every replacement resent the queue's whole
 *  window. The agency's replacements are now counted: past
 *  REPLACED_PER_SECOND in a second (twice that if the turn straddles
 *  one) a Hello is refused with LIMIT; the others carry on. */
static void test_connections_taking_turns_replace_at_the_agency_rate(void **state)
{
    offline_t *o = *state;
    enum { HELLOS = 60, ALLOWED = 2 * 10 + 1 };
    int police = agency(o, "hum-bcu-hull"), council = agency(o, "hull-cc");
    sent_t sent = {0};
    cv_broker_on_sent(o->broker, on_sent, &sent);
    cv_broker_frame_t start[] = {hello_with(police, 1, 0), hello_with(council, 2, 10)};
    one_turn(o, start, 2);
    size_t mark = sent.n;
    cv_broker_frame_t turns[HELLOS];
    for (int i = 0; i < HELLOS; i++)
        turns[i] = hello_with(council, 2 + (uint32_t)i % 2, 10);
    one_turn(o, turns, HELLOS);
    int answered = 0, limited = 0;
    for (uint32_t c = 2; c <= 3; c++) {
        answered += sent_to(&sent, mark, c, CAVEAT__WIRE__FRAME__BODY_HELLO_ACK);
        limited += sent_to(&sent, mark, c, CAVEAT__WIRE__FRAME__BODY_ERROR);
    }
    /* refusals to a connection without a session go at the agency's
     * rate of Errors: some are not answered at all */
    assert_true(answered >= 2 && answered <= ALLOWED);
    assert_true(limited > 0 && answered + limited <= HELLOS);

    /* the police publish, and the council's session that is left gets it */
    mark = sent.n;
    cv_broker_frame_t publishing[] = {
        publish_frame_as(police, 1, "vulnerable_individual", "r-turns")};
    one_turn(o, publishing, 1);
    assert_int_equal(sent_to(&sent, mark, 1, CAVEAT__WIRE__FRAME__BODY_PUBLISH_ACK), 1);
    assert_int_equal(sent_to(&sent, mark, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER) +
                         sent_to(&sent, mark, 3, CAVEAT__WIRE__FRAME__BODY_DELIVER),
                     1);
}

/*  Connections of one agency each going to send-only and back: every
 *  delivery session opened anew sent the queue's window again, and none
 *  replaced a live session, so none was counted. Now a delivery session
 *  opened on a queue with deliveries in flight counts too: past
 *  REPLACED_PER_SECOND (twice that if the turns straddle a second) the
 *  Hello gets LIMIT. The police's report, in flight, is resent no more
 *  often than that. */
static void test_going_send_only_and_back_resends_at_the_agency_rate(void **state)
{
    offline_t *o = *state;
    enum { CONNECTIONS = 6, ROUNDS = 5, ALLOWED = 2 * 10 + 1 };
    int police = agency(o, "hum-bcu-hull"), council = agency(o, "hull-cc");
    sent_t sent = {0};
    cv_broker_on_sent(o->broker, on_sent, &sent);
    cv_broker_frame_t start[] = {hello_with(police, 1, 0), hello_with(council, 2, 10)};
    one_turn(o, start, 2);
    cv_broker_frame_t publishing[] = {
        publish_frame_as(police, 1, "vulnerable_individual", "r-switching")};
    one_turn(o, publishing, 1);
    assert_int_equal(sent_to(&sent, 0, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 1); /* in flight */
    size_t mark = sent.n;
    for (int r = 0; r < ROUNDS; r++)
        for (uint32_t c = 2; c < 2 + CONNECTIONS; c++) {
            cv_broker_frame_t delivery[] = {hello_with(council, c, 10)};
            one_turn(o, delivery, 1);
            cv_broker_frame_t send_only[] = {hello_with(council, c, 0)};
            one_turn(o, send_only, 1);
        }
    int resent = 0, limited = 0;
    for (uint32_t c = 2; c < 2 + CONNECTIONS; c++) {
        resent += sent_to(&sent, mark, c, CAVEAT__WIRE__FRAME__BODY_DELIVER);
        limited += sent_to(&sent, mark, c, CAVEAT__WIRE__FRAME__BODY_ERROR);
    }
    assert_true(resent >= 1 && resent <= ALLOWED); /* of 30 delivery sessions asked for */
    assert_true(limited > 0);
}

/*  Frames a connection sent before it went, read after the broker learnt
 *  that it went, are still handled, but nothing is answered at once on
 *  its routing id, which the transport may give the next connection:
 *  neither the refusal of an acknowledgement, of feedback or of an
 *  approval, nor an admin reply. Connections still there are answered
 *  as ever. */
static void test_nothing_is_answered_to_a_connection_that_went(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull"), council = agency(o, "hull-cc"),
        admin = agency(o, "caveat-admin");
    sent_t sent = {0};
    cv_broker_on_sent(o->broker, on_sent, &sent);
    cv_broker_frame_t start[] = {hello_with(police, 1, 0), hello_with(council, 2, 10),
                                 hello_with(admin, 3, 0)};
    one_turn(o, start, 3);
    cv_broker_frame_t publishing[] = {
        publish_frame_as(police, 1, "vulnerable_individual", "r-went")};
    one_turn(o, publishing, 1);
    assert_int_equal(sent_to(&sent, 0, 2, CAVEAT__WIRE__FRAME__BODY_DELIVER), 1);

    cv_broker_frame_t asked[] = {
        ack_frame(council, 2, 99), feedback_on(council, 2, "r-never-sent", "seen"),
        approval_of(council, 2, "r-went", "hull-college"), admin_frame(admin, 3, "stats", NULL, 0)};
    size_t mark = sent.n;
    one_turn(o, asked, 4);
    assert_int_equal(sent_to(&sent, mark, 2, CAVEAT__WIRE__FRAME__BODY_ERROR), 3);
    assert_int_equal(sent_to(&sent, mark, 3, CAVEAT__WIRE__FRAME__BODY_ADMIN_REPLY), 1);

    cv_broker_went(o->broker, 2);
    cv_broker_went(o->broker, 3);
    cv_broker_frame_t again[] = {
        ack_frame(council, 2, 99), feedback_on(council, 2, "r-never-sent", "seen"),
        approval_of(council, 2, "r-went", "hull-college"), admin_frame(admin, 3, "stats", NULL, 0),
        publish_frame_as(police, 1, "vulnerable_individual", "r-went-2")};
    mark = sent.n;
    one_turn(o, again, 5);
    for (size_t i = mark; i < sent.n; i++)
        assert_int_equal(sent.connection[i], 1);
    assert_int_equal(sent_to(&sent, mark, 1, CAVEAT__WIRE__FRAME__BODY_PUBLISH_ACK), 1);
}

/*  A report's body long enough to spill over several overflow pages of
 *  the store, made of marked pieces that can be found in the file. */
#define DAMAGE_MARK "damaged-page-"
static char *long_narrative(void)
{
    enum { PIECES = 3000 }; /* 16 bytes each: 48,000 */
    char *text = malloc(PIECES * 16 + 1);
    assert_non_null(text);
    for (int i = 0; i < PIECES; i++)
        snprintf(text + i * 16, 17, DAMAGE_MARK "%02d ", i % 100);
    return text;
}

/*  Damages the store as a failing disk would: an overflow page holding
 *  part of the long narrative, and followed by another, is made to point
 *  past the end of the file. SQLite then reads that report's body as
 *  "database disk image is malformed" (SQLITE_CORRUPT); every other row
 *  reads as before. */
static void damage_overflow_page(offline_t *o)
{
    const char *path = harness_path(o->files, "data/caveat.db");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    uint8_t header[100];
    assert_int_equal(fread(header, 1, sizeof header, f), sizeof header);
    size_t page_size = header[16] << 8 | header[17];
    page_size = page_size == 1 ? 65536 : page_size;
    uint32_t pages = (uint32_t)header[28] << 24 | header[29] << 16 | header[30] << 8 | header[31];
    uint8_t *page = malloc(page_size + 1);
    assert_non_null(page);
    bool damaged = false;
    for (uint32_t n = 2; n <= pages && !damaged; n++) {
        assert_int_equal(fseek(f, (long)((n - 1) * page_size), SEEK_SET), 0);
        assert_int_equal(fread(page, 1, page_size, f), page_size);
        page[page_size] = '\0';
        uint32_t next = (uint32_t)page[0] << 24 | page[1] << 16 | page[2] << 8 | page[3];
        /* an overflow page: the next page's number, then the text itself */
        if (next < 2 || next > pages || !memmem(page + 4, 64, DAMAGE_MARK, strlen(DAMAGE_MARK)))
            continue;
        static const uint8_t past_the_end[4] = {0x7f, 0xff, 0xff, 0xff};
        assert_int_equal(fseek(f, (long)((n - 1) * page_size), SEEK_SET), 0);
        assert_int_equal(fwrite(past_the_end, 1, 4, f), 4);
        damaged = true;
    }
    assert_true(damaged);
    free(page);
    assert_int_equal(fclose(f), 0);
}

typedef struct {
    order_seen_t delivered;
    results_seen_t results;
    admin_seen_t admin;
} turn_seen_t;

static void on_sent_turn(void *arg, uint32_t connection, const uint8_t *bytes, size_t size)
{
    turn_seen_t *seen = arg;
    on_sent_order(&seen->delivered, connection, bytes, size);
    on_sent_results(&seen->results, connection, bytes, size);
    on_sent_admin(&seen->admin, connection, bytes, size);
}

static bool delivered(const turn_seen_t *seen, const char *id)
{
    for (size_t i = 0; i < seen->delivered.n; i++)
        if (strcmp(seen->delivered.ids[i], id) == 0)
            return true;
    return false;
}

/*  Reports for the council, which is away, published as the police
 *  (connection 1) and made due for retention (accepted in 1970). */
static void due_for_the_council(offline_t *o, int police, int n)
{
    cv_broker_frame_t *published = calloc((size_t)n, sizeof *published);
    assert_non_null(published);
    for (int i = 0; i < n; i++) {
        char id[24];
        snprintf(id, sizeof id, "r-due-%d", i);
        published[i] = publish_frame_as(police, 1, "vulnerable_individual", id);
    }
    one_turn(o, published, (size_t)n);
    free(published);
    store_sql(o, "UPDATE reports SET created = 1, accepted = 1000 WHERE id LIKE 'r-due-%'");
}

/*  Between a purge's steps the queues still name reports purged in the
 *  steps before (they are read back once, at its end): the council
 *  coming back then is sent the due reports not purged yet, and none of
 *  those purged. And a step purges at least as many reports as the turn
 *  before it took, so that a purge keeps pace with what arrives. */
static void test_between_a_purges_steps_nothing_purged_is_sent(void **state)
{
    offline_t *o = *state;
    cv_broker_destroy(&o->broker);
    o->broker = open_broker_stepping(o, CV_SYNC_OFF, 1);
    int police = agency(o, "hum-bcu-hull"), council = agency(o, "hull-cc"),
        admin = agency(o, "caveat-admin");
    turn_seen_t seen = {0};
    cv_broker_on_sent(o->broker, on_sent_turn, &seen);
    cv_broker_frame_t start[] = {hello_with(police, 1, 0), hello_with(admin, 3, 0)};
    one_turn(o, start, 2);
    due_for_the_council(o, police, 8);
    const char *left = "SELECT count(*) FROM reports WHERE id LIKE 'r-due-%'";

    cv_broker_frame_t purge[] = {admin_frame(admin, 3, "purge", (char *[]){"trust-clock"}, 1)};
    one_turn(o, purge, 1);
    assert_int_equal(store_count(o, left), 7);
    cv_broker_frame_t back[] = {hello_with(council, 2, 100)};
    one_turn(o, back, 1); /* a step of one before it */
    assert_int_equal(store_count(o, left), 6);
    assert_int_equal(seen.delivered.n, 6);
    for (size_t i = 0; i < seen.delivered.n; i++) {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM purges WHERE report_id = '%s'",
                 seen.delivered.ids[i]);
        assert_int_equal(store_count(o, sql), 0);
    }

    /* a turn of four publishes: the step after it purges four */
    cv_broker_frame_t four[4];
    for (int i = 0; i < 4; i++)
        four[i] = publish_frame_as(police, 1, "vulnerable_individual", NULL);
    one_turn(o, four, 4); /* a step of one before it */
    assert_int_equal(store_count(o, left), 5);
    cv_broker_frame_t stats[] = {admin_frame(admin, 3, "stats", NULL, 0)};
    one_turn(o, stats, 1);
    assert_int_equal(store_count(o, left), 1);

    /* the council acknowledges what it got and the broker stops with the
     * purge still going: the end of the purge reads the queues back, after
     * saving the acknowledgement, which was lost with them */
    cv_broker_frame_t ack[] = {ack_frame(council, 2, 6)};
    one_turn(o, ack, 1); /* the step before it purges the last: a step more ends it */
    due_for_the_council(o, police, 4);
    cv_broker_frame_t again[] = {admin_frame(admin, 3, "purge", NULL, 0)};
    one_turn(o, again, 1); /* its first step saves what was acknowledged before it */
    assert_int_equal(store_count(o, left), 3);
    /* reports refused count for nothing: a step after a turn of them is
     * one report, not as many as an agency's junk */
    cv_broker_frame_t junk[4];
    for (int i = 0; i < 4; i++) {
        Caveat__Report *refused = example_to_send("vulnerable_individual", NULL);
        free(refused->category);
        refused->category = strdup("no-such-category");
        junk[i] = publish_of(police, 1, refused);
    }
    one_turn(o, junk, 4);
    assert_int_equal(store_count(o, left), 2);
    cv_broker_frame_t acked[] = {ack_frame(council, 2, 8)};
    one_turn(o, acked, 1); /* a step before it; the acknowledgement waits for its save */
    assert_int_equal(store_count(o, left), 1);
    cv_broker_stop_offline(o->broker);
    assert_int_equal(store_count(o, "SELECT acked_seq FROM queues WHERE agency = 'hull-cc'"
                                    " AND feed = ''"),
                     8);
}

/*  A disposal removes its report from the queues at once: no purge ends
 *  for it to read them back, and stats counted it as queued still. */
static void test_a_disposal_leaves_no_queue_naming_it(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull"), admin = agency(o, "caveat-admin");
    admin_seen_t seen = {0};
    police_and_admin_in_session(o, police, admin, &seen);
    cv_broker_frame_t published[] = {
        publish_frame_as(police, 1, "vulnerable_individual", "r-disposed")};
    one_turn(o, published, 1); /* for the council, away */
    cv_broker_frame_t stats[] = {admin_frame(admin, 3, "stats", NULL, 0)};
    one_turn(o, stats, 1);
    assert_null(strstr(seen.text, "\"queued\":0,"));
    cv_broker_frame_t dispose[] = {
        admin_frame(admin, 3, "review",
                    (char *[]){"report=r-disposed", "dispose", "reason=entered in error"}, 3)};
    one_turn(o, dispose, 1);
    assert_int_equal(store_count(o, "SELECT count(*) FROM reports WHERE id = 'r-disposed'"), 0);
    for (int i = 0; i < 2; i++) { /* the disposal's answer waits for a turn after it */
        stats[0] = admin_frame(admin, 3, "stats", NULL, 0);
        one_turn(o, stats, 1);
    }
    assert_int_equal(seen.replies, 4);
    assert_non_null(strstr(seen.text, "\"queued\":0,"));
}

/*  A report whose row SQLite cannot read (a damaged page) failed every
 *  turn that read it: while its recipient was connected with credit,
 *  every agency's publishes were refused, turn after turn. It now fails
 *  the turn that first reads it and is set aside until the broker starts
 *  again: its recipient gets what waits behind it, other publishes are
 *  taken, retention purges the rest, and its row and route stay as they
 *  were, for an administrator to restore or repair (docs/operations.md,
 *  "The data directory"). */
static void test_a_row_sqlite_cannot_read_stops_only_itself(void **state)
{
    offline_t *o = *state;
    int police = agency(o, "hum-bcu-hull"), council = agency(o, "hull-cc"),
        admin = agency(o, "caveat-admin");
    Caveat__Report *long_one = example_to_send("vulnerable_individual", "r-damaged");
    free(long_one->narrative);
    long_one->narrative = long_narrative();
    cv_broker_frame_t published[] = {
        hello_with(police, 1, 0), publish_of(police, 1, long_one),
        publish_frame_as(police, 1, "vulnerable_individual", "r-behind"),
        publish_frame_as(police, 1, "vulnerable_individual", "r-old")};
    one_turn(o, published, 4); /* the council is not here: they wait in its queue */
    cv_broker_destroy(&o->broker);
    /* r-damaged the older: the first a purge lists */
    store_sql(o, "UPDATE reports SET created = 1 + (id = 'r-old'), accepted = 1000"
                 " WHERE id IN ('r-damaged', 'r-old')");
    static const char route_of_damaged[] =
        "SELECT length(queues) FROM routes WHERE report = (SELECT n FROM reports"
        " WHERE id = 'r-damaged')";
    int route = store_count(o, route_of_damaged);
    assert_true(route > 0);
    damage_overflow_page(o);

    /* purges of one report a step: one that listed only r-damaged (the
     * oldest) would end with r-old left */
    o->broker = open_broker_stepping(o, CV_SYNC_OFF, 1);
    assert_non_null(o->broker);
    turn_seen_t seen = {0};
    cv_broker_on_sent(o->broker, on_sent_turn, &seen);
    cv_broker_frame_t council_comes[] = {hello_with(council, 2, 10)};
    cv_broker_feed_all(o->broker, council_comes, 1); /* the turn that finds it fails */
    free((void *)council_comes[0].bytes);
    for (int turn = 0; turn < 3; turn++) {
        cv_broker_frame_t next[] = {hello_with(police, 1, 0),
                                    publish_frame_as(police, 1, "vulnerable_individual", NULL)};
        one_turn(o, next, 2);
        assert_int_equal(seen.results.n, 1);
        assert_int_equal(seen.results.status[0], CAVEAT__WIRE__STATUS__OK);
    }
    assert_true(delivered(&seen, "r-behind"));
    assert_false(delivered(&seen, "r-damaged"));
    assert_int_equal(seen.delivered.n, 5); /* r-behind, r-old and the three published since */
    cv_broker_frame_t stats[] = {hello_with(admin, 3, 0), admin_frame(admin, 3, "stats", NULL, 0)};
    one_turn(o, stats, 2);
    assert_non_null(strstr(seen.admin.text, "\"unreadable\":1,"));

    /* retention, which could not delete it (freeing its pages reads
     * them), passes over it: the rest is purged */
    cv_broker_frame_t purge[] = {admin_frame(admin, 3, "purge", (char *[]){"trust-clock"}, 1),
                                 publish_frame_as(police, 1, "vulnerable_individual", NULL)};
    one_turn(o, purge, 1);
    one_turn(o, purge + 1, 1); /* a step before it: the last, which finds none */
    assert_true(seen.admin.ok);
    assert_non_null(strstr(seen.admin.text, "\"purged\":1"));
    cv_broker_destroy(&o->broker);
    assert_int_equal(store_count(o, "SELECT count(*) FROM reports WHERE id = 'r-old'"), 0);
    assert_int_equal(store_count(o, "SELECT count(*) FROM reports WHERE id = 'r-damaged'"), 1);
    assert_int_equal(store_count(o, route_of_damaged), route);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_purge_goes_in_steps_with_turns_between, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_between_a_purges_steps_nothing_purged_is_sent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_disposal_leaves_no_queue_naming_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_immediate_report_ends_its_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_agency_ends_few_turns_early, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answers_after_the_commit_go_to_the_asker_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connections_taking_turns_replace_at_the_agency_rate,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_going_send_only_and_back_resends_at_the_agency_rate,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_is_answered_to_a_connection_that_went, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_stored_report_edited_without_its_id_is_quarantined,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_stored_report_edited_without_its_originator_is_quarantined, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_stored_report_edited_without_its_category_is_quarantined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_backup_keeps_to_its_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_row_sqlite_cannot_read_stops_only_itself, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_approval_reads_only_for_whom_it_releases, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_approval_without_an_id_in_a_failing_turn, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_whole_view_read_back_carries_no_unknown_field, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_map_entry_without_its_value_is_not_stored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_publish_of_batches_answers_each_report_as_alone,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_created_that_is_no_time_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_reports_go_most_urgent_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_reason_is_one_line_of_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_tag_0_field_does_not_poison_the_store, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_backup_asked_offline_is_freed_with_the_broker, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_tag_0_field_in_an_admin_request_stops_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_hello_for_another_queue_ends_the_connections_session,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_purge_at_the_epoch_is_a_question, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_admin_work_after_a_reload_that_took_the_key_away_is_not_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_backup_is_stopped_by_a_reload_that_took_the_key_away,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_pseudonym_key_that_is_not_a_private_file_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_data_directory_refused_is_left_as_it_was, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_admin_work_is_bounded_by_a_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_backup_copies_nothing_until_let_go, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_backup_removes_nothing_it_did_not_write, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_backup_swapped_mid_copy_removes_nothing_elsewhere,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_an_acknowledged_delivery_that_never_left_is_not_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_deliver_settled_after_the_queues_were_read_back_marks_them, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feedback_on_a_delivery_that_never_left_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_delivery_received_before_it_was_withdrawn_is_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_policy_is_never_rolled_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_delivery_names_what_its_view_shows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_unchanged_reload_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_reload_is_in_force_only_once_recorded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_admin_work_of_a_turn_rolled_back_is_not_done, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_backup_refused_at_once_is_recorded_as_not_taken,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
