/*  A listed agency attacks the broker with its own valid key.
 *
 *  Each test plays the attacker through a raw CURVE DEALER holding an
 *  example agency's real key, against the real caveatd, and checks three
 *  things: the attacker gets nothing it is not entitled to, the victim
 *  loses nothing, and the other agencies carry on.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>

#include "e2e_checks.h"
#include "harness.h"

/*  Deliveries among the frames dealer receives within timeout_ms. */
static size_t deliveries_within(zsock_t *dealer, int timeout_ms)
{
    size_t n = 0;
    int64_t until = zclock_mono() + timeout_ms;
    Caveat__Wire__Frame *frame;
    while (zclock_mono() < until && (frame = next_frame_within(dealer, 100)) != NULL) {
        if (frame->body_case == CAVEAT__WIRE__FRAME__BODY_DELIVER)
            n += frame->deliver->n_deliveries;
        caveat__wire__frame__free_unpacked(frame, NULL);
    }
    return n;
}

/*  Publishes an example report under a new id (libcaveat assigns it). */
static void publish_new(cv_client_t *c, const char *name, char *id, size_t size)
{
    Caveat__Report *report = harness_report(name);
    assert_non_null(report);
    free(report->id);
    report->id = NULL;
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    int refused = cv_client_publish_one(c, report, &result, 5000, &err);
    if (refused != 0)
        print_error("publish: %s %s\n", err.msg, result.reason ? result.reason : "");
    assert_int_equal(refused, 0);
    snprintf(id, size, "%s", result.report_id);
    cv_publish_results_clear(&result, 1);
    caveat__report__free_unpacked(report, NULL);
}

static void assert_delivered(cv_client_t *c, const char *id)
{
    const cv_delivery_t *d = receive(c, 5000);
    assert_non_null(d);
    assert_string_equal(d->report_id, id);
    cv_error_t err = {0};
    assert_true(cv_client_ack(c, d->seq, &err));
}

/*  Everyone else carries on: the police's next referral reaches the
 *  council, through new connections. */
static void assert_others_carry_on(harness_t *h)
{
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    cv_client_t *council = client(h, "hull-cc", NULL, 10);
    char id[64];
    publish_new(police, "vulnerable_individual", id, sizeof id);
    assert_delivered(council, id);
    cv_client_destroy(&council);
    cv_client_destroy(&police);
}

/* ------------------------------------------------------------------------ */
/*  Sessions belong to a key.                                               */

/*  The council's connection, with a routing id of the form the transport
 *  assigns, holds a delivery it has not acknowledged and goes: its
 *  session serves the queue no more. A college reconnects with the same
 *  routing id and, without a Hello, acknowledges and grants credit: it
 *  finds no session of its own (NOT_READY; the gone one, if it is still
 *  there, ends at the foreign key), gets nothing, and the council
 *  everything. */
static void test_a_reused_routing_id_serves_no_other_agencys_queue(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    static const uint8_t routing[5] = {0, 'c', 'v', '0', '1'};
    zsock_t *victim = raw_dealer_as(h, "hull-cc", routing, sizeof routing, true);
    send_hello_with(victim, 1, NULL, 1); /* credit 1: one delivery at a time */
    assert_int_equal(error_answer(victim), 0);

    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char first[64], second[64];
    publish_new(police, "vulnerable_individual", first, sizeof first);
    publish_new(police, "vulnerable_individual", second, sizeof second);
    assert_int_equal(deliveries_within(victim, 2000), 1);
    long sessions = stat_of(h, "sessions"); /* the council's and the police's */
    zsock_destroy(&victim);                 /* seq 1 unacknowledged, no credit left */
    zclock_sleep(300);
    assert_int_equal(stat_of(h, "sessions"), sessions - 1);

    zsock_t *attacker = raw_dealer_as(h, "hull-college", routing, sizeof routing, true);
    send_ack(attacker, 1, 100);
    assert_int_equal(error_answer(attacker), 2 /* NOT_READY */);
    assert_int_equal(deliveries_within(attacker, 1000), 0);
    zsock_destroy(&attacker);

    cv_client_t *council = client(h, "hull-cc", NULL, 10); /* loses nothing */
    assert_delivered(council, first);
    assert_delivered(council, second);
    assert_nothing_arrives(council, 300);
    cv_client_destroy(&council);
    cv_client_destroy(&police);
    finish(&h);
}

/*  The police publish a referral for the council: other, a connection that
 *  must get nothing, gets nothing within wait_ms (and is closed), and the
 *  council, connecting after, gets it. */
static void assert_the_council_alone_gets_a_referral(harness_t *h, zsock_t **other, int wait_ms)
{
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char id[64];
    publish_new(police, "vulnerable_individual", id, sizeof id);
    assert_int_equal(deliveries_within(*other, wait_ms), 0);
    zsock_destroy(other);
    cv_client_t *council = client(h, "hull-cc", NULL, 10);
    assert_delivered(council, id);
    cv_client_destroy(&council);
    cv_client_destroy(&police);
}

/*  The same, with an attacker that sends nothing: a session ends with its
 *  connection, so the routing id the council's connection had (of the
 *  form the transport assigns) carries nothing to the college's, which
 *  takes it and waits. The council then gets the report. */
static void test_a_silent_connection_on_a_gone_routing_id_gets_nothing(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    static const uint8_t routing[5] = {0, 'c', 'v', '0', '2'};
    zsock_t *victim = raw_dealer_as(h, "hull-cc", routing, sizeof routing, true);
    send_hello_with(victim, 1, NULL, 10);
    assert_int_equal(error_answer(victim), 0); /* HelloAck: a session */
    assert_int_equal(stat_of(h, "sessions"), 1);
    zsock_destroy(&victim);
    zclock_sleep(300);
    assert_int_equal(stat_of(h, "sessions"), 0); /* ended with its connection */

    zsock_t *attacker = raw_dealer_as(h, "hull-college", routing, sizeof routing, true);
    zclock_sleep(300); /* connected, on the council's old routing id; it sends nothing */
    assert_the_council_alone_gets_a_referral(h, &attacker, 1500);
    finish(&h);
}

/*  Opens n TCP connections to the broker and closes each at once, without
 *  a byte: anyone who can reach the port can. */
static void connect_and_close(harness_t *h, int n)
{
    const char *colon = strrchr(harness_endpoint(h), ':');
    assert_non_null(colon);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
        close(fd);
    }
}

/*  Connections come and go under a council's session, descriptors are
 *  given out again: each end is matched to its own connection's session
 *  (there is none), so the council's session stays and gets its referral;
 *  when the council's own connection goes, its session ends. The council's
 *  first connection, whose session the second one's Hello replaced, ends
 *  nothing when it goes. */
static void test_connections_that_come_and_go_end_nobody_elses_session(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    zsock_t *replaced = raw_dealer(h, "hull-cc");
    send_hello_with(replaced, 1, NULL, 10);
    assert_int_equal(error_answer(replaced), 0);
    zsock_t *council = raw_dealer(h, "hull-cc");
    send_hello_with(council, 1, NULL, 10);
    assert_int_equal(error_answer(council), 0);
    zsock_destroy(&replaced); /* its session ended at the Hello above */
    for (int round = 0; round < 4; round++) {
        connect_and_close(h, 100);
        zsock_t *college = raw_dealer(h, "hull-college"); /* a session that comes and goes */
        send_hello_with(college, 1, NULL, 10);
        assert_int_equal(error_answer(college), 0);
        zsock_destroy(&college);
    }
    zclock_sleep(300);
    assert_int_equal(stat_of(h, "sessions"), 1); /* the council's alone */

    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char id[64];
    publish_new(police, "vulnerable_individual", id, sizeof id);
    cv_client_destroy(&police);
    assert_int_equal(deliveries_within(council, 2000), 1);
    zsock_destroy(&council);
    zclock_sleep(300);
    assert_int_equal(stat_of(h, "sessions"), 0); /* ended with its connection */
    finish(&h);
}

/*  A routing id the client chose could be chosen again by another agency
 *  once the connection goes: no session lives on one. */
static void test_a_chosen_routing_id_gets_no_session(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    zsock_t *careless = raw_dealer_as(h, "hull-cc", "hull-cc-1", 9, true);
    send_hello_with(careless, 1, NULL, 100);
    assert_int_equal(error_answer(careless), 8 /* BAD_REQUEST */);
    assert_int_equal(stat_of(h, "sessions"), 0);
    assert_the_council_alone_gets_a_referral(h, &careless, 500);
    finish(&h);
}

/*  A screening feed is opened only by the agencies it sends to: a health
 *  trust asking for the CTIO's feed gets FORBIDDEN and no queue, in the
 *  very words a feed the policy does not have gets, so that asking does
 *  not tell it which feeds there are. */
static void test_a_feed_is_opened_only_by_its_recipients(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    zsock_t *trust = raw_dealer(h, "hull-nhs");
    send_hello_with(trust, 1, "ctio", 100);
    char *forbidden = error_text_answer(trust);
    send_hello_with(trust, 1, "no-such-feed", 100);
    char *unknown = error_text_answer(trust);
    assert_int_equal(atoi(forbidden), 5 /* FORBIDDEN */);
    assert_string_equal(forbidden, unknown);
    assert_int_equal(stat_of(h, "sessions"), 0);
    zstr_free(&forbidden);
    zstr_free(&unknown);
    zsock_destroy(&trust);

    zsock_t *ctio = raw_dealer(h, "hum-ctio-hull");
    send_hello_with(ctio, 1, "ctio", 100);
    assert_int_equal(error_answer(ctio), 0);
    assert_int_equal(stat_of(h, "sessions"), 1);
    zsock_destroy(&ctio);
    finish(&h);
}

/* ------------------------------------------------------------------------ */
/*  Work one agency can cause is bounded.                                   */

static void send_publish_of(zsock_t *dealer, size_t n)
{
    Caveat__Report *reports = calloc(n, sizeof *reports);
    Caveat__Report **list = calloc(n, sizeof *list);
    assert_non_null(reports);
    assert_non_null(list);
    for (size_t i = 0; i < n; i++) {
        caveat__report__init(&reports[i]);
        list[i] = &reports[i];
    }
    send_publish(dealer, list, n);
    free(list);
    free(reports);
}

/*  A Publish of more reports than HelloAck.max_reports is refused whole
 *  with LIMIT, nothing of it stored or acknowledged, and the others'
 *  traffic flows. */
static void test_a_publish_over_the_report_limit_is_refused(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    zsock_t *college = raw_dealer(h, "hull-college");
    send_hello_with(college, 1, NULL, 0);
    Caveat__Wire__Frame *ack = next_frame_within(college, 5000);
    assert_non_null(ack);
    assert_int_equal(ack->body_case, CAVEAT__WIRE__FRAME__BODY_HELLO_ACK);
    assert_int_equal(ack->hello_ack->max_reports, 500);
    caveat__wire__frame__free_unpacked(ack, NULL);

    send_publish_of(college, 501);
    assert_int_equal(error_answer(college), 9 /* LIMIT */);
    assert_int_equal(stat_of(h, "published"), 0);
    assert_int_equal(stat_of(h, "refused"), 0);
    assert_true(stat_of(h, "limited") >= 1);
    zsock_destroy(&college);

    assert_others_carry_on(h);
    finish(&h);
}

/*  libcaveat keeps to the limit the broker announces: 25 reports go as
 *  batches of at most 10 when the broker takes 10. */
static void test_libcaveat_keeps_to_the_announced_report_limit(void **state)
{
    (void)state;
    const char *const extra[] = {"--max-reports", "10", NULL};
    harness_t *h = started_with(extra);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    enum { N = 25 };
    Caveat__Report *reports[N];
    for (int i = 0; i < N; i++) {
        reports[i] = harness_report("community_tension");
        free(reports[i]->id);
        reports[i]->id = NULL;
    }
    cv_publish_result_t results[N] = {0};
    cv_error_t err = {0};
    assert_int_equal(
        cv_client_publish(police, (const Caveat__Report *const *)reports, N, results, 5000, &err),
        0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(results[i].status, CAVEAT__WIRE__STATUS__OK);
        caveat__report__free_unpacked(reports[i], NULL);
    }
    cv_publish_results_clear(results, N);
    assert_int_equal(stat_of(h, "published"), N);
    assert_int_equal(stat_of(h, "limited"), 0);
    cv_client_destroy(&police);
    finish(&h);
}

/*  A Hello again on a connection that never reads keeps its session: what
 *  is in flight is not sent again for each Hello, and past
 *  HELLOS_PER_SECOND a second they are refused with LIMIT. */
static void test_a_hello_loop_does_not_multiply_what_is_sent(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    zsock_t *council = raw_dealer(h, "hull-cc");
    send_hello_with(council, 1, NULL, 100);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char id[64];
    for (int i = 0; i < 3; i++)
        publish_new(police, "vulnerable_individual", id, sizeof id);
    zclock_sleep(300);
    assert_int_equal(stat_of(h, "delivered"), 3);
    for (int i = 0; i < 200; i++)
        send_hello_with(council, 1, NULL, 100);
    zclock_sleep(500);
    assert_int_equal(stat_of(h, "delivered"), 3);
    assert_true(stat_of(h, "limited") > 0);
    assert_int_equal(deliveries_within(council, 1000), 3);
    zsock_destroy(&council);
    cv_client_destroy(&police);
    finish(&h);
}

/*  While two connections of one agency flood the broker with frames, a
 *  new connection of another agency still completes its handshake: ZAP
 *  is answered before client traffic. (A correctness check with a
 *  generous deadline; bench/flood_bench.c measures the latency.) */
typedef struct {
    zsock_t *dealer;
    volatile bool stop;
} flooder_t;

static void *flood(void *arg)
{
    flooder_t *f = arg;
    Caveat__Wire__Heartbeat beat = CAVEAT__WIRE__HEARTBEAT__INIT;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_HEARTBEAT;
    frame.heartbeat = &beat;
    zsock_set_sndtimeo(f->dealer, 100);
    for (int i = 0; i < 2000000 && !f->stop; i++)
        send_frame(f->dealer, &frame);
    return NULL;
}

static void test_handshakes_are_served_while_an_agency_floods(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    flooder_t flooders[2];
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        flooders[i] = (flooder_t){raw_dealer(h, "hull-college"), false};
        assert_int_equal(pthread_create(&threads[i], NULL, flood, &flooders[i]), 0);
    }
    zclock_sleep(500); /* the flood is under way */
    int64_t start = zclock_mono();
    cv_client_t *council = client(h, "hull-cc", NULL, 10);
    int64_t took = zclock_mono() - start;
    for (int i = 0; i < 2; i++) {
        flooders[i].stop = true;
        pthread_join(threads[i], NULL);
        zsock_destroy(&flooders[i].dealer);
    }
    print_message("handshake and Hello during the flood: %lld ms\n", (long long)took);
    assert_true(took < 10000);
    cv_client_destroy(&council);
    finish(&h);
}

/*  One agency with many connections cannot fill a turn: past
 *  FRAMES_PER_AGENCY frames in a turn its frames are refused unread
 *  (counted in limited), and another agency's report still flows. */
static void test_an_agencys_frames_per_turn_are_bounded(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    enum { CONNECTIONS = 40, FRAMES = 400 };
    zsock_t *college[CONNECTIONS];
    for (int i = 0; i < CONNECTIONS; i++) {
        college[i] = raw_dealer(h, "hull-college");
        send_hello_with(college[i], 1, NULL, 0);
        assert_int_equal(error_answer(college[i]), 0);
        zsock_set_sndtimeo(college[i], 100);
    }
    Caveat__Wire__Heartbeat beat = CAVEAT__WIRE__HEARTBEAT__INIT;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_HEARTBEAT;
    frame.heartbeat = &beat;
    for (int n = 0; n < FRAMES; n++)
        for (int i = 0; i < CONNECTIONS; i++)
            send_frame(college[i], &frame);
    zclock_sleep(500);
    assert_true(stat_of(h, "limited") > 0);
    for (int i = 0; i < CONNECTIONS; i++)
        zsock_destroy(&college[i]);

    assert_others_carry_on(h);
    finish(&h);
}

/*  Reports near the largest frame, 40 of them waiting for a council that
 *  then connects with credit for all: one pump would have packed 36 MB,
 *  twice what the broker lets wait for a sync (16 MiB). The pump stops at
 *  that bound and the rest follow in later turns: the council still gets
 *  every one, in order. */
static void test_big_reports_keep_one_pump_to_the_bytes_bound(void **state)
{
    (void)state;
    enum { REPORTS = 40, BYTES = 900 * 1000 };
    harness_t *h = started_with(NULL);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    for (int i = 0; i < REPORTS; i++)
        publish_big(police, BYTES);
    cv_client_t *council = client(h, "hull-cc", NULL, REPORTS);
    cv_error_t err = {0};
    uint64_t last = 0;
    for (int i = 0; i < REPORTS; i++) {
        const cv_delivery_t *d = receive(council, 20000);
        assert_non_null(d);
        assert_true(d->seq > last);
        last = d->seq;
        assert_int_equal(strlen(d->report->narrative), BYTES);
        assert_true(cv_client_ack(council, d->seq, &err));
    }
    long peak = stat_of(h, "out_bytes_peak");
    print_message("out_bytes_peak %ld bytes for %d reports of %d bytes\n", peak, REPORTS, BYTES);
    assert_true(peak <= 16 * 1024 * 1024 + 2 * BYTES); /* the bound, passed by one at most */
    cv_client_destroy(&council);
    cv_client_destroy(&police);
    assert_others_carry_on(h);
    finish(&h);
}

/*  An agency fills its connection's inbound queue (the broker stops
 *  reading it) and hangs up. libzmq 4.3.4 then marks the connection
 *  failed, and a ZMTP heartbeat timer that fires on it after that aborts
 *  the whole process (stream_engine_base.cpp, timer_event -> out_event,
 *  assert !_io_error): the broker must use no heartbeat timer of its own,
 *  and must still be serving afterwards. */
static void test_a_connection_that_floods_and_hangs_up_kills_nothing(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    for (int round = 0; round < 3; round++) {
        zsock_t *college = raw_dealer(h, "hull-college");
        send_hello_with(college, 1, NULL, 0);
        assert_int_equal(error_answer(college), 0);
        zsock_set_sndtimeo(college, 200);
        for (int i = 0; i < 100; i++) /* 200 KB frames, each unpacked, then refused: LIMIT */
            send_publish_of(college, 100000);
        zsock_destroy(&college); /* hangs up with its queue full */
    }
    zclock_sleep(7000); /* past a heartbeat interval of 5 s */
    assert_others_carry_on(h);
    finish(&h);
}

/* ------------------------------------------------------------------------ */
/*  The log.                                                                */

static int log_lines_starting(harness_t *h, const char *text)
{
    FILE *f = fopen(harness_path(h, "broker.log"), "r");
    assert_non_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strncmp(line, text, strlen(text)) == 0;
    fclose(f);
    return n;
}

/*  A refused publish of a report with that id, logged at info. */
static void publish_refused_with_id(cv_client_t *c, const char *id)
{
    Caveat__Report *report = harness_report("community_tension");
    free(report->id);
    report->id = strdup(id);
    free(report->category);
    report->category = strdup("no_such_category"); /* refused: logged at info */
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    assert_int_equal(cv_client_publish_one(c, report, &result, 5000, &err), 1);
    cv_publish_results_clear(&result, 1);
    caveat__report__free_unpacked(report, NULL);
}

/*  A reconnect's Hello that the broker limits (its queue's window sent
 *  again ten times already in that second, here by ten connections of
 *  the agency taking the queue in turn) is said again a second later by
 *  libcaveat: the subscriber gets what was in flight, with no error. */
static void test_a_limited_reconnect_says_hello_again(void **state)
{
    (void)state;
    enum { TAKERS = 10 };
    harness_t *h = started_with(NULL);
    cv_client_t *council = client(h, "hull-cc", NULL, 10);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char id[64], next[64];
    publish_new(police, "vulnerable_individual", id, sizeof id);
    const cv_delivery_t *d = receive(council, 5000); /* read, not acknowledged: in flight */
    assert_non_null(d);
    assert_string_equal(d->report_id, id);
    zsock_t *takers[TAKERS];
    for (int i = 0; i < TAKERS; i++)
        takers[i] = raw_dealer(h, "hull-cc");
    while (zclock_mono() % 1000 > 100) /* the broker counts by the same clock's seconds */
        zclock_sleep(5);
    for (int i = 0; i < TAKERS; i++) {
        send_hello_with(takers[i], 1, NULL, 10);
        assert_int_equal(error_answer(takers[i]), 0); /* each sent the window again */
    }
    publish_new(police, "vulnerable_individual", next, sizeof next); /* to the last taker */
    /* the council's connection, replaced and then ended (two kept), comes
     * back within the second: its Hello is the eleventh */
    cv_error_t err = {0};
    d = cv_client_receive(council, 5000, &err);
    if (!d)
        print_error("receive: %s\n", err.msg);
    assert_non_null(d);
    assert_string_equal(d->report_id, next);
    assert_true(stat_of(h, "limited") >= 1); /* it was limited, and came back */
    for (int i = 0; i < TAKERS; i++)
        zsock_destroy(&takers[i]);
    cv_client_destroy(&police);
    cv_client_destroy(&council);
    finish(&h);
}

/*  A result names its report by an id only when it is one: a refused
 *  report's megabyte "id", echoed in each of a frame's results, would make
 *  the answer many times what the sender sent, and a sender that never
 *  reads has libzmq hold it. */
static void test_a_refusal_does_not_echo_what_is_no_id(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    zsock_t *raw = raw_dealer(h, "hull-college");
    send_hello_with(raw, 1, NULL, 0);
    assert_int_equal(error_answer(raw), 0);
    enum { REPORTS = 8, ID_BYTES = 100000 };
    Caveat__Report *reports[REPORTS];
    for (int i = 0; i < REPORTS; i++) {
        reports[i] = harness_report("community_tension");
        free(reports[i]->id);
        reports[i]->id = malloc(ID_BYTES + 1);
        memset(reports[i]->id, 'a' + i, ID_BYTES);
        reports[i]->id[ID_BYTES] = '\0';
        free(reports[i]->originator); /* the broker's to set */
        reports[i]->originator = NULL;
    }
    free(reports[1]->originator); /* refused on another check first */
    reports[1]->originator = strdup("hum-sb");
    send_publish(raw, reports, REPORTS);
    zframe_t *answer = zframe_recv(raw);
    assert_non_null(answer);
    assert_true(zframe_size(answer) < 4096); /* not 800 KB */
    Caveat__Wire__Frame *ack =
        caveat__wire__frame__unpack(NULL, zframe_size(answer), zframe_data(answer));
    zframe_destroy(&answer);
    assert_non_null(ack);
    assert_int_equal(ack->body_case, CAVEAT__WIRE__FRAME__BODY_PUBLISH_ACK);
    assert_int_equal(ack->publish_ack->n_results, REPORTS);
    for (int i = 0; i < REPORTS; i++) {
        const Caveat__Wire__PublishResult *r = ack->publish_ack->results[i];
        assert_string_equal(r->report_id, "");
        assert_int_equal(r->status, i == 1 ? CAVEAT__WIRE__STATUS__REFUSED_SPOOFED_ORIGINATOR
                                           : CAVEAT__WIRE__STATUS__REFUSED_INVALID);
        if (i != 1)
            assert_string_equal(r->reason, "id: longer than 128 bytes");
        caveat__report__free_unpacked(reports[i], NULL);
    }
    caveat__wire__frame__free_unpacked(ack, NULL);
    assert_int_equal(stat_of(h, "published"), 0);
    assert_the_council_alone_gets_a_referral(h, &raw, 200);
    finish(&h);
}

/*  A report id carrying a newline cannot write a line of its own, nor
 *  one carrying a C1 control (the 8-bit CSI, in UTF-8 or as a byte), a
 *  bidirectional override or bytes that are not UTF-8 reach an
 *  operator's terminal: such an id is
 *  no id, refused and logged as none (the log's escaping of whatever
 *  else reaches it: test_log). */
static void test_a_report_id_cannot_forge_log_lines(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    cv_client_t *college = client(h, "hull-college", NULL, 0);
    publish_refused_with_id(college, "x\ncaveatd: revoked: hum-sb");
    publish_refused_with_id(college, "y\xc2\x9b"
                                     "2J");
    publish_refused_with_id(college, "z\x9b"
                                     "2J\xff");
    publish_refused_with_id(college, "w\xe2\x80\xae"
                                     "2J"); /* U+202E: shown as "wJ2" */
    cv_client_destroy(&college);
    assert_int_equal(log_lines_starting(h, "caveatd: revoked"), 0);
    assert_int_equal(log_lines_with(h, "publish from hull-college:  REFUSED_"), 4);
    assert_int_equal(log_lines_with(h, "revoked"), 0);
    assert_int_equal(log_lines_with(h, "2J"), 0);
    finish(&h);
}

/*  One agency's refused Hellos write at most CV_LOG_AGENCY_LINES lines a
 *  second, then one line saying how many were not written. */
static void test_an_agencys_log_lines_are_rate_limited(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    zsock_t *college = raw_dealer(h, "hull-college");
    for (int i = 0; i < 500; i++)
        send_hello_with(college, 99, NULL, 0); /* a version the broker does not speak */
    /* nor are answers queued for each: no session, so at most 20 a second */
    size_t answers = 0;
    Caveat__Wire__Frame *answer;
    while ((answer = next_frame_within(college, 300)) != NULL) {
        answers++;
        caveat__wire__frame__free_unpacked(answer, NULL);
    }
    print_message("%zu answers to 500 refused Hellos\n", answers);
    assert_true(answers >= 1 && answers <= 2 * 20);
    zclock_sleep(1500);
    send_hello_with(college, 99, NULL, 0); /* a new second: the summary line */
    zclock_sleep(300);
    zsock_destroy(&college);
    int lines = log_lines_with(h, "hello from hull-college refused");
    print_message("%d lines logged for 501 refused Hellos\n", lines);
    assert_true(lines >= 1 && lines <= 3 * 20);
    assert_true(log_lines_with(h, "more lines not logged") >= 1);
    finish(&h);
}

/* ------------------------------------------------------------------------ */
/*  Start-up refusals.                                                      */

/*  caveatd refuses to start, and its log says why. */
static void assert_refuses_to_start(harness_t *h, const char *const *extra, const char *why)
{
    assert_false(harness_start(h, extra));
    assert_true(log_lines_with(h, why) >= 1);
}

/*  The secret certificate whose mode is checked is the file read: naming
 *  the public certificate (next to a world-readable secret one, which a
 *  czmq zcert_load would read instead) or the secret one itself, when
 *  others may read it, are both refused. */
static void test_a_secret_key_others_can_read_is_refused(void **state)
{
    (void)state;
    harness_t *h = harness_new();
    assert_non_null(h);
    char public_cert[600];
    snprintf(public_cert, sizeof public_cert, "%s", harness_path(h, "broker.cert"));
    assert_int_equal(chmod(harness_path(h, "broker.cert_secret"), 0644), 0);
    const char *const by_public[] = {"--cert", public_cert, NULL};
    assert_refuses_to_start(h, by_public, "not a secret certificate");
    assert_refuses_to_start(h, NULL,
                            "secret key file must give group and others no access (0600 and "
                            "0400 do; it is 0644)");
    /* the rule is no access for group and others: read-only is taken */
    assert_int_equal(chmod(harness_path(h, "broker.cert_secret"), 0400), 0);
    assert_true(harness_start(h, NULL));
    finish(&h);
}

/* ------------------------------------------------------------------------ */
/*  The store.                                                              */

/*  A stored report whose bytes were changed underneath (a disk fault, or
 *  what a hostile report once did) is set aside: the queue goes on past
 *  it, the others are delivered, new publishes are stored, and an
 *  administrator sees it listed. */
static void test_an_unreadable_stored_report_is_quarantined(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char ids[3][64];
    for (int i = 0; i < 3; i++)
        publish_new(police, "vulnerable_individual", ids[i], sizeof ids[i]);
    cv_client_destroy(&police);
    assert_true(harness_stop(h));
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE reports SET body = X'ff' || substr(body, 2) WHERE id = '%s'",
             ids[1]);
    store_sql(h, sql);
    assert_true(harness_start(h, NULL));

    cv_client_t *council = client(h, "hull-cc", NULL, 10);
    assert_delivered(council, ids[0]);
    assert_delivered(council, ids[2]);
    assert_nothing_arrives(council, 300);
    assert_int_equal(stat_of(h, "quarantined"), 1);
    bool ok = false;
    char *listed = admin(h, "quarantined", &ok);
    assert_true(ok);
    assert_non_null(strstr(listed, ids[1]));
    free(listed);

    police = client(h, "hum-bcu-hull", NULL, 0);
    char later[64];
    publish_new(police, "vulnerable_individual", later, sizeof later);
    assert_delivered(council, later);
    cv_client_destroy(&police);
    cv_client_destroy(&council);
    finish(&h);
}

/*  Ids belong to their originator: a college that publishes the police's
 *  report id first neither learns that it exists nor stops the police's
 *  report. */
static void test_report_ids_are_scoped_by_originator(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    cv_client_t *college = client(h, "hull-college", NULL, 0);
    Caveat__Report *squat = harness_report("radicalisation_concern");
    free(squat->id);
    squat->id = strdup("r-police-0001");
    free(squat->originator);
    squat->originator = NULL; /* the broker sets it: the college */
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    assert_int_equal(cv_client_publish_one(college, squat, &result, 5000, &err), 0);
    cv_publish_results_clear(&result, 1);

    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    Caveat__Report *report = harness_report("vulnerable_individual");
    free(report->id);
    report->id = strdup("r-police-0001");
    assert_int_equal(cv_client_publish_one(police, report, &result, 5000, &err), 0);
    assert_int_equal(result.status, CAVEAT__WIRE__STATUS__OK);
    cv_publish_results_clear(&result, 1);
    /* the college publishing it again learns nothing new: its own report */
    assert_int_equal(cv_client_publish_one(college, squat, &result, 5000, &err), 0);
    assert_int_equal(result.status, CAVEAT__WIRE__STATUS__OK);
    cv_publish_results_clear(&result, 1);

    cv_client_t *council = client(h, "hull-cc", NULL, 10);
    const cv_delivery_t *d = receive(council, 5000);
    assert_non_null(d);
    assert_string_equal(d->report->originator, "hum-bcu-hull");
    caveat__report__free_unpacked(squat, NULL);
    caveat__report__free_unpacked(report, NULL);
    cv_client_destroy(&council);
    cv_client_destroy(&police);
    cv_client_destroy(&college);
    finish(&h);
}

/*  A report sent without `created` is stamped by the broker; retried after
 *  a lost PublishAck, later, it is still the same report: accepted, and
 *  stored and delivered once. Through libcaveat and through the CLI. */
static void test_a_retried_publish_is_idempotent(void **state)
{
    (void)state;
    harness_t *h = started_with(NULL);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    Caveat__Report *report = harness_report("vulnerable_individual");
    free(report->id);
    report->id = strdup("r-retry-0001");
    free(report->created);
    report->created = NULL;
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt)
            zclock_sleep(1100); /* the stamp would differ by a second */
        assert_int_equal(cv_client_publish_one(police, report, &result, 5000, &err), 0);
        assert_int_equal(result.status, CAVEAT__WIRE__STATUS__OK);
        cv_publish_results_clear(&result, 1);
    }
    cv_client_destroy(&police);
    assert_int_equal(stat_of(h, "published"), 2);

    /* a client that does not stamp `created` itself: the broker's stamp
     * must not make the retry a different report */
    zsock_t *raw = raw_dealer(h, "hum-bcu-hull");
    send_hello_with(raw, 1, NULL, 0);
    assert_int_equal(error_answer(raw), 0);
    free(report->id);
    report->id = strdup("r-retry-raw");
    Caveat__Wire__Publish publish = CAVEAT__WIRE__PUBLISH__INIT;
    publish.n_reports = 1;
    publish.reports = &report;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_PUBLISH;
    frame.publish = &publish;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt)
            zclock_sleep(1100);
        send_frame(raw, &frame);
        Caveat__Wire__Frame *ack = next_frame_within(raw, 5000);
        assert_non_null(ack);
        assert_int_equal(ack->body_case, CAVEAT__WIRE__FRAME__BODY_PUBLISH_ACK);
        assert_int_equal(ack->publish_ack->results[0]->status, CAVEAT__WIRE__STATUS__OK);
        caveat__wire__frame__free_unpacked(ack, NULL);
    }
    zsock_destroy(&raw);
    caveat__report__free_unpacked(report, NULL);

    char command[2048];
    snprintf(
        command, sizeof command,
        "printf '%%s' '{\"id\": \"r-retry-cli\", \"category\": \"community_tension\", "
        "\"handling_level\": \"OFFICIAL\", \"grading\": {\"handling_code\": \"1\"}, "
        "\"area\": \"hull\", \"summary\": \"x\"}' "
        "> %s/retry.json && for i in 1 2; do %s publish --broker %s --server-key %s/broker.cert "
        "--cert %s/hum-bcu-hull.cert_secret %s/retry.json >/dev/null || exit 1; sleep 1.1; done",
        harness_path(h, ""), CAVEAT_CLI, harness_endpoint(h), harness_path(h, ""),
        harness_path(h, ""), harness_path(h, ""));
    assert_int_equal(system(command), 0);

    cv_client_t *council = client(h, "hull-cc", NULL, 10);
    assert_delivered(council, "r-retry-0001");
    assert_delivered(council, "r-retry-raw");
    assert_nothing_arrives(council, 500); /* each once, not twice */
    cv_client_destroy(&council);
    finish(&h);
}

/*  A second caveatd on the same data directory refuses to start; so does
 *  one on a directory others may enter. */
static void test_one_broker_per_private_data_directory(void **state)
{
    (void)state;
    harness_t *first = started_with(NULL);
    harness_t *second = harness_new();
    assert_non_null(second);
    char data[600];
    snprintf(data, sizeof data, "%s", harness_path(first, "data"));
    const char *const same_data[] = {"--data", data, NULL};
    assert_refuses_to_start(second, same_data, "another caveatd is using this data directory");
    harness_destroy(&second);
    assert_true(harness_stop(first));

    assert_int_equal(chmod(data, 0777), 0);
    assert_refuses_to_start(first, NULL, "lets group or others in");
    assert_int_equal(chmod(data, 0700), 0);
    assert_true(harness_start(first, NULL));
    finish(&first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_reused_routing_id_serves_no_other_agencys_queue),
        cmocka_unit_test(test_a_silent_connection_on_a_gone_routing_id_gets_nothing),
        cmocka_unit_test(test_a_chosen_routing_id_gets_no_session),
        cmocka_unit_test(test_connections_that_come_and_go_end_nobody_elses_session),
        cmocka_unit_test(test_a_feed_is_opened_only_by_its_recipients),
        cmocka_unit_test(test_a_publish_over_the_report_limit_is_refused),
        cmocka_unit_test(test_libcaveat_keeps_to_the_announced_report_limit),
        cmocka_unit_test(test_a_hello_loop_does_not_multiply_what_is_sent),
        cmocka_unit_test(test_handshakes_are_served_while_an_agency_floods),
        cmocka_unit_test(test_a_connection_that_floods_and_hangs_up_kills_nothing),
        cmocka_unit_test(test_an_agencys_frames_per_turn_are_bounded),
        cmocka_unit_test(test_big_reports_keep_one_pump_to_the_bytes_bound),
        cmocka_unit_test(test_a_report_id_cannot_forge_log_lines),
        cmocka_unit_test(test_a_refusal_does_not_echo_what_is_no_id),
        cmocka_unit_test(test_a_limited_reconnect_says_hello_again),
        cmocka_unit_test(test_an_agencys_log_lines_are_rate_limited),
        cmocka_unit_test(test_a_secret_key_others_can_read_is_refused),
        cmocka_unit_test(test_an_unreadable_stored_report_is_quarantined),
        cmocka_unit_test(test_report_ids_are_scoped_by_originator),
        cmocka_unit_test(test_a_retried_publish_is_idempotent),
        cmocka_unit_test(test_one_broker_per_private_data_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
