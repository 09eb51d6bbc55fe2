/*  End to end: the real caveatd on a free loopback port, with the example
 *  policy and real CURVE keys, driven through libcaveat (and, for the
 *  frames libcaveat would never send, a raw CURVE DEALER).
 *
 *  Each test starts its own broker in its own directory, so tests share
 *  nothing but the example files.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cmocka.h>
#include <czmq.h>

#include "e2e_checks.h"
#include "harness.h"

/* ------------------------------------------------------------------------ */
/*  Helpers.                                                                */

/*  Publishes one report; returns its status, and its id in id. */
static int publish(cv_client_t *c, Caveat__Report *report, char *id, size_t size)
{
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    int refused = cv_client_publish_one(c, report, &result, 5000, &err);
    if (refused < 0)
        print_error("publish: %s\n", err.msg);
    assert_true(refused >= 0);
    int status = result.status;
    if (id)
        snprintf(id, size, "%s", result.report_id ? result.report_id : "");
    cv_publish_results_clear(&result, 1);
    return status;
}

static void publish_example(cv_client_t *c, const char *name, char *id, size_t size)
{
    Caveat__Report *report = harness_report(name);
    assert_non_null(report);
    assert_int_equal(publish(c, report, id, size), CAVEAT__WIRE__STATUS__OK);
    caveat__report__free_unpacked(report, NULL);
}

static bool packed_contains(const Caveat__Report *report, const char *text)
{
    size_t len = caveat__report__get_packed_size(report);
    uint8_t *buf = malloc(len);
    caveat__report__pack(report, buf);
    bool found = memmem(buf, len, text, strlen(text)) != NULL;
    free(buf);
    return found;
}

/* ------------------------------------------------------------------------ */
/*  Delivery and redaction.                                                 */

static void test_delivery_with_redaction(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    assert_string_equal(cv_client_agency(council), "hull-cc");
    char id[128];
    publish_example(police, "vulnerable_individual", id, sizeof id);

    const cv_delivery_t *d = receive(council, 5000);
    assert_non_null(d);
    assert_int_equal(d->seq, 1);
    assert_string_equal(d->report_id, id);
    assert_int_equal(d->n_rules, 1);
    assert_string_equal(d->rules[0], "safeguarding-referral");
    assert_null(d->feed);
    const Caveat__Report *view = d->report;
    assert_string_equal(view->originator, "hum-bcu-hull");
    assert_string_equal(view->subjects[0]->date_of_birth, "2009");
    assert_string_equal(view->subjects[0]->postcode, "HU3");
    assert_null(view->subjects[0]->address);
    assert_null(view->source);
    assert_false(packed_contains(view, "Example Street"));
    assert_false(packed_contains(view, "2009-04-01"));
    assert_false(packed_contains(view, "SR/2026/0441"));
    assert_true(cv_client_ack(council, d->seq, &(cv_error_t){0}));

    /* the originator never receives its own report */
    assert_nothing_arrives(police, 300);
    cv_client_destroy(&police);
    cv_client_destroy(&council);
    finish(&h);
}

static void test_store_and_forward_and_redelivery(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char id[128];
    publish_example(police, "vulnerable_individual", id, sizeof id); /* council offline */

    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    const cv_delivery_t *d = receive(council, 5000);
    assert_non_null(d);
    assert_string_equal(d->report_id, id);
    uint64_t seq = d->seq;
    cv_client_destroy(&council); /* gone without acknowledging */

    council = client(h, "hull-cc", NULL, 0);
    d = receive(council, 5000);
    assert_non_null(d); /* sent again, with the same seq */
    assert_int_equal(d->seq, seq);
    assert_string_equal(d->report_id, id);
    assert_true(cv_client_ack(council, d->seq, &(cv_error_t){0}));
    cv_client_destroy(&council);

    council = client(h, "hull-cc", NULL, 0);
    assert_nothing_arrives(council, 500); /* acknowledged: never again */
    cv_client_destroy(&council);
    cv_client_destroy(&police);
    finish(&h);
}

static void test_restart_keeps_what_was_acknowledged(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char id[128];
    publish_example(police, "vulnerable_individual", id, sizeof id);
    cv_client_destroy(&police);
    harness_kill(h); /* a crash right after the PublishAck */
    assert_true(harness_start(h, NULL));
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    const cv_delivery_t *d = receive(council, 5000);
    assert_non_null(d);
    assert_string_equal(d->report_id, id);
    cv_client_destroy(&council);
    finish(&h);
}

/* ------------------------------------------------------------------------ */
/*  Identity.                                                               */

static void test_unlisted_key_cannot_connect(void **state)
{
    (void)state;
    harness_t *h = started();
    zcert_t *cert = zcert_new();
    const char *path = harness_path(h, "stranger.cert");
    assert_int_equal(zcert_save(cert, path), 0);
    zcert_destroy(&cert);
    chmod(harness_path(h, "stranger.cert_secret"), 0600);

    char server[600], secret[600];
    snprintf(server, sizeof server, "%s", harness_path(h, "broker.cert"));
    snprintf(secret, sizeof secret, "%s", harness_path(h, "stranger.cert_secret"));
    cv_client_config_t config = {.endpoint = harness_endpoint(h),
                                 .server_cert = server,
                                 .client_cert = secret,
                                 .timeout_ms = 1500};
    cv_error_t err = {0};
    cv_client_t *c = cv_client_new(&config, &err);
    assert_null(c);
    assert_true(err.msg[0] != '\0');
    assert_true(stat_of(h, "zap_refused") >= 1);
    assert_int_equal(stat_of(h, "sessions"), 0); /* the administrator asks send-only */
    finish(&h);
}

static void test_spoofed_originator_is_refused(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    Caveat__Report *report = harness_report("vulnerable_individual");
    free(report->originator);
    report->originator = strdup("hum-sb"); /* police pretending to be Special Branch */
    assert_int_equal(publish(police, report, NULL, 0),
                     CAVEAT__WIRE__STATUS__REFUSED_SPOOFED_ORIGINATOR);
    caveat__report__free_unpacked(report, NULL);
    assert_nothing_arrives(council, 500);
    assert_int_equal(stat_of(h, "published"), 0);
    assert_int_equal(stat_of(h, "refused"), 1);
    assert_int_equal(stat_of(h, "queued"), 0);
    cv_client_destroy(&police);
    cv_client_destroy(&council);
    finish(&h);
}

static void test_invalid_reports_are_refused(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    Caveat__Report *report = harness_report("vulnerable_individual");
    free(report->category);
    report->category = strdup("gossip");
    assert_int_equal(publish(police, report, NULL, 0), CAVEAT__WIRE__STATUS__REFUSED_INVALID);
    caveat__report__free_unpacked(report, NULL);

    report = harness_report("vulnerable_individual");
    free(report->grading->handling_code);
    report->grading->handling_code = strdup("9");
    assert_int_equal(publish(police, report, NULL, 0), CAVEAT__WIRE__STATUS__REFUSED_INVALID);
    caveat__report__free_unpacked(report, NULL);

    /* Hull police saying North East Lincolnshire: it would reach that
     * council through same_area */
    report = harness_report("vulnerable_individual");
    free(report->area);
    report->area = strdup("ne-lincs");
    assert_int_equal(publish(police, report, NULL, 0), CAVEAT__WIRE__STATUS__REFUSED_INVALID);
    caveat__report__free_unpacked(report, NULL);
    assert_int_equal(stat_of(h, "queued"), 0);
    cv_client_destroy(&police);
    finish(&h);
}

/* ------------------------------------------------------------------------ */
/*  Frames libcaveat would never send.                                      */

/*  A Hello for a feed no screening entry sends to makes no queue (and is
 *  refused as a feed that sends to others is: test_hostile); a send-only
 *  session has nothing to acknowledge. */
static void test_unknown_feed_and_send_only_acks_are_refused(void **state)
{
    (void)state;
    harness_t *h = started();
    zsock_t *ctio = raw_dealer(h, "hum-ctio-hull");
    send_hello_with(ctio, 1, "no-such-feed", -1);
    assert_int_equal(error_answer(ctio), 5 /* FORBIDDEN */);
    send_hello_with(ctio, 1, "ctio", -1); /* the example policy's feed */
    assert_int_equal(error_answer(ctio), 0);

    zsock_t *dealer = raw_dealer(h, "hum-bcu-hull");
    send_hello_with(dealer, 1, NULL, 0); /* credit 0: send-only */
    assert_int_equal(error_answer(dealer), 0);
    Caveat__Wire__DeliveryAck ack = CAVEAT__WIRE__DELIVERY_ACK__INIT;
    ack.has_up_to = true;
    ack.up_to = 0;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_DELIVERY_ACK;
    frame.delivery_ack = &ack;
    send_frame(dealer, &frame);
    assert_int_equal(error_answer(dealer), 4 /* BAD_ACK */);
    assert_int_equal(stat_of(h, "sessions"), 1); /* the ctio feed's only */
    zsock_destroy(&dealer);
    zsock_destroy(&ctio);
    zclock_sleep(200);
    assert_int_equal(stat_of(h, "sessions"), 0); /* each ended with its connection */
    finish(&h);
}

static void test_malformed_frames_get_errors(void **state)
{
    (void)state;
    harness_t *h = started();
    zsock_t *dealer = raw_dealer(h, "hull-cc");

    zstr_send(dealer, "\xff\xff\xff garbage"); /* not a Frame */
    assert_int_equal(error_answer(dealer), 1 /* BAD_FRAME */);
    zstr_sendm(dealer, "two");
    zstr_send(dealer, "frames");
    assert_int_equal(error_answer(dealer), 1 /* BAD_FRAME */);

    Caveat__Wire__Publish publish = CAVEAT__WIRE__PUBLISH__INIT;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_PUBLISH;
    frame.publish = &publish;
    send_frame(dealer, &frame); /* before Hello */
    assert_int_equal(error_answer(dealer), 2 /* NOT_READY */);

    send_hello(dealer, 2);
    assert_int_equal(error_answer(dealer), 3 /* VERSION */);
    send_hello(dealer, 1);
    assert_int_equal(error_answer(dealer), 0); /* HelloAck */

    send_frame(dealer, &frame); /* a publish of nothing */
    assert_int_equal(error_answer(dealer), 8 /* BAD_REQUEST */);
    Caveat__Wire__DeliveryAck ack = CAVEAT__WIRE__DELIVERY_ACK__INIT;
    ack.has_up_to = true;
    ack.up_to = 99;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_DELIVERY_ACK;
    frame.delivery_ack = &ack;
    send_frame(dealer, &frame); /* acknowledges what was never sent */
    assert_int_equal(error_answer(dealer), 4 /* BAD_ACK */);
    zsock_destroy(&dealer);

    /* and the broker still serves */
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    publish_example(police, "vulnerable_individual", NULL, 0);
    cv_client_destroy(&police);
    finish(&h);
}

static void test_oversize_frame_is_refused_and_broker_serves(void **state)
{
    (void)state;
    harness_t *h = harness_new();
    const char *const small[] = {"--max-frame", "65536", NULL};
    assert_true(harness_start(h, small));
    zsock_t *dealer = raw_dealer(h, "hum-bcu-hull");
    send_hello(dealer, 1);
    assert_int_equal(error_answer(dealer), 0);
    zframe_t *big = zframe_new(NULL, 200000); /* over --max-frame: libzmq drops the link */
    memset(zframe_data(big), 'x', 200000);
    if (zframe_send(&big, dealer, 0) != 0)
        zframe_destroy(&big);
    zsock_set_rcvtimeo(dealer, 500);
    zframe_t *answer = zframe_recv(dealer);
    assert_null(answer); /* no answer can come: the connection was refused */
    zsock_destroy(&dealer);

    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    assert_int_equal(cv_client_max_frame(police), 65536);
    Caveat__Report *report = harness_report("vulnerable_individual");
    free(report->narrative);
    report->narrative = malloc(100001);
    memset(report->narrative, 'n', 100000);
    report->narrative[100000] = '\0';
    /* libcaveat refuses it locally, with a reason, and sends nothing */
    assert_int_equal(publish(police, report, NULL, 0), CAVEAT__WIRE__STATUS__REFUSED_INVALID);
    caveat__report__free_unpacked(report, NULL);
    publish_example(police, "vulnerable_individual", NULL, 0);
    assert_int_equal(stat_of(h, "published"), 1);
    cv_client_destroy(&police);
    finish(&h);
}

/*  A frame as large as the broker announced must pass, though libzmq
 *  counts CURVE's overhead against ZMQ_MAXMSGSIZE. */
static void test_a_frame_of_exactly_max_frame_is_accepted(void **state)
{
    (void)state;
    harness_t *h = harness_new();
    const char *const small[] = {"--max-frame", "65536", NULL};
    assert_true(harness_start(h, small));
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    Caveat__Report *report = harness_report("vulnerable_individual");
    free(report->id);
    report->id = strdup("r-000000000000000000000001"); /* as libcaveat would give it */
    Caveat__Wire__Publish batch = CAVEAT__WIRE__PUBLISH__INIT;
    batch.has_batch = true;
    batch.batch = 1;
    batch.n_reports = 1;
    batch.reports = &report;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_PUBLISH;
    frame.publish = &batch;
    /* grow the narrative until the frame is within CURVE's 33 bytes of the
     * limit; libcaveat reserves 9 more for the largest batch number */
    size_t n = 60000;
    for (;; n++) {
        free(report->narrative);
        report->narrative = malloc(n + 1);
        memset(report->narrative, 'n', n);
        report->narrative[n] = '\0';
        if (caveat__wire__frame__get_packed_size(&frame) >= 65536 - 12)
            break;
    }
    assert_true(caveat__wire__frame__get_packed_size(&frame) <= 65536 - 9);
    assert_int_equal(publish(police, report, NULL, 0), CAVEAT__WIRE__STATUS__OK);
    caveat__report__free_unpacked(report, NULL);
    cv_client_destroy(&police);
    finish(&h);
}

/* ------------------------------------------------------------------------ */
/*  Flow control and feeds.                                                 */

static void test_slow_subscriber_does_not_stop_a_fast_one(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *slow = client(h, "hull-cc", NULL, 1); /* takes one, never acknowledges */
    cv_client_t *fast = client(h, "ne-ctu", NULL, 0);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    enum { N = 60 };
    for (int i = 0; i < N; i++)
        publish_example(police, "vulnerable_individual", NULL, 0);
    int got = 0;
    const cv_delivery_t *d;
    while (got < N && (d = receive(fast, 5000))) {
        got++;
        assert_true(cv_client_ack(fast, d->seq, &(cv_error_t){0}));
    }
    assert_int_equal(got, N);
    d = receive(slow, 2000);
    assert_non_null(d);
    assert_nothing_arrives(slow, 300); /* its credit of one is spent */
    cv_client_destroy(&police);
    cv_client_destroy(&fast);
    cv_client_destroy(&slow);
    finish(&h);
}

static void test_ctio_feed_gets_screened_reports_only(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *feed = client(h, "hum-ctio-hull", "ctio", 0);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char screened[128], plain[128];
    publish_example(police, "critical_incident", plain, sizeof plain);
    publish_example(police, "radicalisation_concern", screened, sizeof screened);
    const cv_delivery_t *d = receive(feed, 5000);
    assert_non_null(d);
    assert_string_equal(d->report_id, screened);
    assert_string_equal(d->feed, "ctio");
    assert_nothing_arrives(feed, 500);
    cv_client_destroy(&police);
    cv_client_destroy(&feed);
    finish(&h);
}

/* ------------------------------------------------------------------------ */
/*  Administration and reload.                                              */

static void test_admin_is_for_administrators(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    bool ok = true;
    cv_error_t err = {0};
    char *text = cv_client_admin(police, "stats", &ok, 3000, &err);
    assert_null(text);
    assert_non_null(strstr(err.msg, "FORBIDDEN"));
    cv_client_destroy(&police);
    finish(&h);
}

/*  An AdminRequest's id comes back in its AdminReply, whether the reply
 *  goes at once (stats, a dry-run purge), after the commit of what it did
 *  (a review's disposal, run at the end of the turn) or when a background
 *  job ends (backup); a request without one gets a reply without one. */
static Caveat__Wire__AdminReply *admin_reply_to(zsock_t *dealer, const char *command,
                                                const char *const *args, size_t n_args, uint64_t id)
{
    send_admin_request(dealer, command, args, n_args, id);
    Caveat__Wire__Frame *answer = frame_of(dealer, CAVEAT__WIRE__FRAME__BODY_ADMIN_REPLY);
    assert_non_null(answer);
    Caveat__Wire__AdminReply *reply = answer->admin_reply;
    answer->admin_reply = NULL; /* the caller's now */
    answer->body_case = CAVEAT__WIRE__FRAME__BODY__NOT_SET;
    caveat__wire__frame__free_unpacked(answer, NULL);
    return reply;
}

static void test_admin_replies_carry_their_requests_id(void **state)
{
    (void)state;
    harness_t *h = started();
    char id[64], report_arg[96];
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    publish_example(police, "vulnerable_individual", id, sizeof id);
    cv_client_destroy(&police);
    assert_true(stat_of(h, "wal_syncs") >= 1); /* its commit's, --sync full being the default */
    snprintf(report_arg, sizeof report_arg, "report=%s", id);
    zsock_t *dealer = raw_dealer(h, "caveat-admin");
    zsock_set_rcvtimeo(dealer, 10000);
    send_hello_asking(dealer, 1, NULL, -1, false);
    Caveat__Wire__Frame *ack = frame_of(dealer, CAVEAT__WIRE__FRAME__BODY_HELLO_ACK);
    assert_non_null(ack);
    caveat__wire__frame__free_unpacked(ack, NULL);
    const char *dry_run[] = {"dry-run"};
    const char *dispose[] = {report_arg, "dispose", "reason=the id comes back"};
    const char *backup[] = {harness_path(h, "copy")};
    struct {
        const char *command;
        const char *const *args;
        size_t n_args;
        uint64_t id; /* 0: none */
    } asked[] = {
        {"stats", NULL, 0, 7},    {"stats", NULL, 0, 0},
        {"purge", dry_run, 1, 8}, {"review", dispose, 3, UINT64_MAX},
        {"backup", backup, 1, 1},
    };
    for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
        Caveat__Wire__AdminReply *reply =
            admin_reply_to(dealer, asked[i].command, asked[i].args, asked[i].n_args, asked[i].id);
        if (!reply->ok)
            print_error("%s: %s\n", asked[i].command, reply->text);
        assert_true(reply->ok);
        assert_int_equal(reply->has_id, asked[i].id != 0);
        assert_true(reply->id == asked[i].id);
        caveat__wire__admin_reply__free_unpacked(reply, NULL);
    }
    zsock_destroy(&dealer);
    finish(&h);
}

static void test_bad_reload_keeps_the_old_policy(void **state)
{
    (void)state;
    harness_t *h = started();
    char *good = read_text(harness_path(h, "policy.yaml"));
    char *bad = strdup(good);
    char *level = strstr(bad, "clearance: OFFICIAL-SENSITIVE");
    assert_non_null(level);
    memcpy(level, "clearance: OFFICIAL-SENSATIVE", 29);
    harness_write_policy(h, bad);

    bool ok = true;
    char *text = admin(h, "reload", &ok);
    assert_false(ok);
    assert_non_null(strstr(text, "policy.yaml:"));
    assert_non_null(strstr(text, ": error: "));
    assert_non_null(strstr(text, "unknown level 'OFFICIAL-SENSATIVE'"));
    free(text);
    harness_signal(h, SIGHUP); /* the same through the signal */
    usleep(300 * 1000);
    assert_int_equal(stat_of(h, "reload_failures"), 2);

    /* the old policy still routes */
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    publish_example(police, "vulnerable_individual", NULL, 0);
    const cv_delivery_t *d = receive(council, 5000);
    assert_non_null(d);
    cv_client_destroy(&police);
    cv_client_destroy(&council);
    free(good);
    free(bad);
    finish(&h);
}

/*  SIGHUP every few tens of microseconds from another thread while reports are
 *  published one at a time. */
typedef struct {
    harness_t *h;
    atomic_bool done;
} storm_t;

static void *signal_storm(void *arg)
{
    storm_t *storm = arg;
    while (!atomic_load(&storm->done)) {
        harness_signal(storm->h, SIGHUP);
        usleep(20);
    }
    return NULL;
}

/*  Signals at any moment hold nothing back: under a storm of SIGHUPs
 *  (each a reload of the same policy) every one of 300 publishes is
 *  acknowledged within its 5 s. Signals were once taken by a handler in
 *  whichever thread the kernel picked; one that interrupted the loop's
 *  request to its syncer (EINTR) left every later acknowledgement held,
 *  the broker idle. */
static void test_signals_while_publishing_hold_nothing_back(void **state)
{
    (void)state;
    harness_t *h = started();
    storm_t storm = {h, false};
    pthread_t stormer;
    assert_int_equal(pthread_create(&stormer, NULL, signal_storm, &storm), 0);
    publish_examples(h, 300);
    atomic_store(&storm.done, true);
    assert_int_equal(pthread_join(stormer, NULL), 0);
    assert_true(stat_of(h, "reloads") > 0);
    assert_int_equal(stat_of(h, "published"), 300);
    finish(&h);
}

static void test_reload_removing_an_agency_revokes_it(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char *policy = read_text(harness_path(h, "policy.yaml"));
    char *reduced = without_agency(policy, "hull-cc");
    harness_write_policy(h, reduced);
    bool ok = false;
    char *text = admin(h, "reload", &ok);
    if (!ok)
        print_error("reload: %s\n", text);
    assert_true(ok);
    free(text);

    cv_error_t err = {0};
    const cv_delivery_t *d = cv_client_receive(council, 3000, &err);
    assert_null(d);
    assert_non_null(strstr(err.msg, "REVOKED"));
    publish_example(police, "vulnerable_individual", NULL, 0);
    assert_nothing_arrives(council, 500);
    cv_client_destroy(&council);
    council = harness_client(h, "hull-cc", NULL, 0, &err);
    assert_null(council); /* and cannot come back */
    assert_int_equal(stat_of(h, "revoked"), 1);
    cv_client_destroy(&police);
    free(policy);
    free(reduced);
    finish(&h);
}

/*  text with the first occurrence of from replaced by to (malloc'd). */
static char *replaced(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    assert_non_null(at);
    size_t len = strlen(text) - strlen(from) + strlen(to) + 1;
    char *out = malloc(len);
    snprintf(out, len, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return out;
}

static void reload_with(harness_t *h, const char *policy)
{
    harness_write_policy(h, policy);
    bool ok = false;
    char *text = admin(h, "reload", &ok);
    if (!ok)
        print_error("reload: %s\n", text);
    assert_true(ok);
    free(text);
}

/*  An agency rotates its key: with key: [old, new] both connect as the
 *  agency; once the old key leaves the policy its session is revoked and
 *  it cannot connect again, while the new key's goes on. The new key is
 *  DIR/hull-cc-next.cert_secret. */
static void test_an_agency_rotates_its_key_with_an_overlap(void **state)
{
    (void)state;
    harness_t *h = started();
    zcert_t *next = zcert_new();
    assert_int_equal(zcert_save(next, harness_path(h, "hull-cc-next.cert")), 0);
    assert_int_equal(chmod(harness_path(h, "hull-cc-next.cert_secret"), 0600), 0);
    zcert_t *old = zcert_load(harness_path(h, "hull-cc.cert"));
    assert_non_null(old);
    char old_key[64], both[160], new_key[64];
    snprintf(old_key, sizeof old_key, "key: \"%s\"", zcert_public_txt(old));
    snprintf(both, sizeof both, "key: [\"%s\", \"%s\"]", zcert_public_txt(old),
             zcert_public_txt(next));
    snprintf(new_key, sizeof new_key, "key: \"%s\"", zcert_public_txt(next));
    char *policy = read_text(harness_path(h, "policy.yaml"));
    char *overlap = replaced(policy, old_key, both);
    char *rotated = replaced(policy, old_key, new_key);

    cv_client_t *council_old = client(h, "hull-cc", NULL, 10);
    cv_error_t err = {0};
    assert_null(harness_client(h, "hull-cc-next", NULL, 10, &err)); /* not yet */
    reload_with(h, overlap);
    cv_client_t *council_new = client(h, "hull-cc-next", NULL, 10);
    assert_string_equal(cv_client_agency(council_new), "hull-cc");
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    publish_example(police, "vulnerable_individual", NULL, 0);
    assert_non_null(receive(council_new, 5000)); /* the newer session serves the queue */

    cv_client_t *sender_old = sender_of(h, "hull-cc"); /* a session under the old key */
    reload_with(h, rotated);
    assert_int_equal(stat_of(h, "revoked"), 1);                /* that session, not the new key's */
    assert_null(harness_client(h, "hull-cc", NULL, 10, &err)); /* the old key is out */
    publish_example(police, "vulnerable_individual", NULL, 0);
    assert_non_null(receive(council_new, 5000));
    cv_client_destroy(&sender_old);

    cv_client_destroy(&police);
    cv_client_destroy(&council_new);
    cv_client_destroy(&council_old);
    zcert_destroy(&old);
    zcert_destroy(&next);
    free(policy);
    free(overlap);
    free(rotated);
    finish(&h);
}

/*  A reload that takes an agency off a screening feed's recipients (the
 *  feed stays, for others) ends its session on the feed with FORBIDDEN,
 *  as a Hello for it now gets: nothing more comes on the feed, and its
 *  direct queue carries on. */
static void test_reload_taking_an_agency_off_a_feed_ends_its_session(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *feed = client(h, "hum-ctio-hull", "ctio", 0);
    cv_client_t *direct = client(h, "hum-ctio-hull", NULL, 0);
    char *policy = read_text(harness_path(h, "policy.yaml"));
    char *others = replaced(policy, "feed: ctio\n    to_types: [ctio]",
                            "feed: ctio\n    to_types: [special_branch]");
    reload_with(h, others);

    cv_error_t err = {0};
    assert_null(cv_client_receive(feed, 3000, &err));
    assert_non_null(strstr(err.msg, "FORBIDDEN"));
    assert_int_equal(stat_of(h, "revoked"), 1); /* the feed's session, not the direct one */
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    Caveat__Report *concern = harness_report("radicalisation_concern"); /* screened, and */
    free(concern->originator); /* a partner's referral to the police and CTIO */
    concern->originator = strdup("hull-cc");
    assert_int_equal(publish(council, concern, NULL, 0), CAVEAT__WIRE__STATUS__OK);
    caveat__report__free_unpacked(concern, NULL);
    const cv_delivery_t *d = receive(direct, 5000);
    assert_non_null(d);
    assert_null(d->feed);                                             /* the direct queue's */
    assert_null(harness_client(h, "hum-ctio-hull", "ctio", 0, &err)); /* nor back on the feed */
    assert_non_null(strstr(err.msg, "FORBIDDEN"));
    cv_client_destroy(&council);
    cv_client_destroy(&direct);
    cv_client_destroy(&feed);
    free(policy);
    free(others);
    finish(&h);
}

static void test_unacknowledged_deliveries_are_resent_after_the_timeout(void **state)
{
    (void)state;
    harness_t *h = harness_new();
    const char *const quick[] = {"--ack-timeout", "0.5", NULL};
    assert_true(harness_start(h, quick));
    zsock_t *dealer = raw_dealer(h, "hull-cc"); /* raw: libcaveat would hide the copy */
    send_hello(dealer, 1);
    assert_int_equal(error_answer(dealer), 0);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    publish_example(police, "vulnerable_individual", NULL, 0);
    cv_client_destroy(&police);
    uint64_t seqs[2] = {0, 0};
    for (int i = 0; i < 2; i++) { /* the delivery, then the same again */
        zframe_t *f = zframe_recv(dealer);
        assert_non_null(f);
        Caveat__Wire__Frame *frame =
            caveat__wire__frame__unpack(NULL, zframe_size(f), zframe_data(f));
        zframe_destroy(&f);
        assert_int_equal(frame->body_case, CAVEAT__WIRE__FRAME__BODY_DELIVER);
        seqs[i] = frame->deliver->deliveries[0]->seq;
        caveat__wire__frame__free_unpacked(frame, NULL);
    }
    assert_int_equal(seqs[0], 1);
    assert_int_equal(seqs[1], 1);
    assert_true(stat_of(h, "resent") >= 1);
    zsock_destroy(&dealer);
    finish(&h);
}

/*  A system that only publishes, as its agency, must not take over the
 *  agency's subscriber's queue. */
static void test_a_publisher_does_not_starve_its_agencys_subscriber(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *subscriber = client(h, "hull-cc", NULL, 0);
    cv_client_t *publisher = sender_of(h, "hull-cc");
    Caveat__Report *report = harness_report("intervention_review");
    assert_int_equal(publish(publisher, report, NULL, 0), CAVEAT__WIRE__STATUS__OK);
    caveat__report__free_unpacked(report, NULL);
    cv_client_destroy(&publisher);

    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char id[128];
    publish_example(police, "vulnerable_individual", id, sizeof id);
    const cv_delivery_t *d = receive(subscriber, 3000);
    assert_non_null(d); /* still the council's subscriber */
    assert_string_equal(d->report_id, id);
    cv_client_destroy(&police);
    cv_client_destroy(&subscriber);
    finish(&h);
}

/*  Send-only sessions are bounded per agency (the broker hears nothing
 *  when a peer goes); the oldest, dropped, says Hello again and its
 *  publish still goes through. */
static void test_a_dropped_sender_says_hello_again(void **state)
{
    (void)state;
    harness_t *h = started();
    enum { N = 65 }; /* one more than the broker keeps per agency */
    cv_client_t *senders[N];
    for (int i = 0; i < N; i++)
        senders[i] = sender_of(h, "hum-bcu-hull");
    assert_int_equal(stat_of(h, "senders"), 64 + 1); /* the police's, and the one asking */
    publish_example(senders[0], "vulnerable_individual", NULL, 0); /* the dropped one */
    for (int i = 0; i < N; i++)
        cv_client_destroy(&senders[i]);
    assert_int_equal(stat_of(h, "published"), 1);
    finish(&h);
}

/* ------------------------------------------------------------------------ */
/*  Retention.                                                              */

static void publish_created(cv_client_t *c, const char *name, const char *created, char *id,
                            size_t size)
{
    Caveat__Report *report = harness_report(name);
    free(report->created);
    report->created = strdup(created);
    assert_int_equal(publish(c, report, id, size), CAVEAT__WIRE__STATUS__OK);
    caveat__report__free_unpacked(report, NULL);
}

/*  The example policy keeps community tension 1 year and referrals 6,
 *  counted from creation and from acceptance. */
static void test_retention_purges_exactly_what_is_past_its_period(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char old_tension[128], new_tension[128], referral[128];
    publish_created(police, "community_tension", "2020-01-01T00:00:00Z", old_tension,
                    sizeof old_tension);
    publish_created(police, "community_tension", "2026-11-01T00:00:00Z", new_tension,
                    sizeof new_tension);
    publish_created(police, "vulnerable_individual", "2022-06-01T00:00:00Z", referral,
                    sizeof referral);
    cv_client_destroy(&police);
    long queued = stat_of(h, "queued");

    /* accepted now: none is past its period counted from its acceptance */
    cv_client_t *admin_client = admin_client_of(h);
    const char *dry[] = {"dry-run"};
    bool ok = false;
    cv_error_t err = {0};
    char *text = cv_client_admin_args(admin_client, "purge", dry, 1, &ok, 5000, &err);
    assert_true(ok);
    assert_non_null(strstr(text, "\"would_purge\":0"));
    free(text);
    /* as if each had been accepted when it was created */
    store_sql(h, "UPDATE reports SET accepted = created * 1000");

    /* what a clock showing 2028 would purge: the newer tension report too,
     * not yet the referral (six years); asked of the CLI as an operator
     * would */
    char command[2048];
    snprintf(command, sizeof command,
             "%s admin purge --dry-run --at 2028-01-01T00:00:00Z --broker %s "
             "--server-key %s/broker.cert --cert %s/caveat-admin.cert_secret "
             "| grep -q '\"would_purge\":2'",
             CAVEAT_CLI, harness_endpoint(h), harness_path(h, ""), harness_path(h, ""));
    assert_int_equal(system(command), 0);
    const char *at[] = {"dry-run", "at=2028-01-01T00:00:00Z"};
    text = cv_client_admin_args(admin_client, "purge", at, 2, &ok, 5000, &err);
    assert_true(ok);
    assert_non_null(strstr(text, new_tension));
    assert_null(strstr(text, referral));
    free(text);

    text = cv_client_admin_args(admin_client, "purge", dry, 1, &ok, 5000, &err);
    if (!ok)
        print_error("purge --dry-run: %s\n", text ? text : err.msg);
    assert_true(ok);
    assert_non_null(strstr(text, old_tension));
    assert_null(strstr(text, new_tension));
    assert_null(strstr(text, referral));
    assert_non_null(strstr(text, "\"would_purge\":1"));
    free(text);
    assert_int_equal(stat_of(h, "queued"), queued); /* a dry run removes nothing */

    text = cv_client_admin_args(admin_client, "purge", NULL, 0, &ok, 5000, &err);
    if (!ok)
        print_error("purge: %s\n", text ? text : err.msg);
    assert_true(ok);
    assert_non_null(strstr(text, "\"purged\":1"));
    free(text);
    cv_client_destroy(&admin_client);
    assert_int_equal(stat_of(h, "purged"), 1);
    assert_true(stat_of(h, "queued") < queued);

    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    const cv_delivery_t *d;
    bool saw_new = false, saw_referral = false;
    while ((d = receive(council, 1000))) {
        assert_string_not_equal(d->report_id, old_tension);
        saw_new |= strcmp(d->report_id, new_tension) == 0;
        saw_referral |= strcmp(d->report_id, referral) == 0;
        assert_true(cv_client_ack(council, d->seq, &err));
    }
    assert_true(saw_new);
    assert_true(saw_referral);
    cv_client_destroy(&council);
    finish(&h);
}

/*  The admin purge's reply (arg: NULL or "trust-clock") and whether it
 *  succeeded. */
static char *purge_now(harness_t *h, const char *arg, bool *ok)
{
    cv_client_t *admin_client = admin_client_of(h);
    cv_error_t err = {0};
    const char *args[] = {arg};
    char *text = cv_client_admin_args(admin_client, "purge", args, arg ? 1 : 0, ok, 5000, &err);
    assert_non_null(text);
    cv_client_destroy(&admin_client);
    return text;
}

/*  Restarts the broker as if its clock had moved by seconds since
 *  retention last trusted it. */
static void restart_with_clock_moved(harness_t *h, const char *seconds)
{
    assert_true(harness_stop(h));
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE meta SET value = CAST(strftime('%%s', 'now') AS INTEGER) - (%s)"
             " WHERE key = 'retention_clock'",
             seconds);
    store_sql(h, sql);
    assert_true(harness_start(h, NULL));
}

/*  Retention trusts the clock only while it agrees with the time
 *  retention last trusted: a restart with the clock years ahead of it, or
 *  behind it, purges nothing, however many reports arrive, until an
 *  administrator has checked the clock (admin purge --trust-clock). A
 *  report's created ahead of the clock, or before 2000, is refused. */
static void test_retention_waits_for_a_plausible_clock(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    Caveat__Report *report = harness_report("community_tension");
    free(report->created);
    report->created = strdup("9999-12-31T00:00:00Z"); /* would never be purged */
    assert_int_equal(publish(police, report, NULL, 0), CAVEAT__WIRE__STATUS__REFUSED_INVALID);
    free(report->created);
    report->created = strdup("1970-01-01T00:00:00Z"); /* would be purged at once */
    assert_int_equal(publish(police, report, NULL, 0), CAVEAT__WIRE__STATUS__REFUSED_INVALID);
    caveat__report__free_unpacked(report, NULL);
    char ids[2][128];
    for (int i = 0; i < 2; i++)
        publish_created(police, "community_tension", "2020-01-01T00:00:00Z", ids[i], sizeof ids[i]);
    cv_client_destroy(&police);
    /* past their year, counted from creation and acceptance */
    store_sql(h, "UPDATE reports SET accepted = created * 1000");

    restart_with_clock_moved(h, "10 * 365 * 86400"); /* ten years ahead */
    bool ok = true;
    char *text = purge_now(h, NULL, &ok);
    assert_false(ok);
    assert_non_null(strstr(text, "retention stops until the clock is checked"));
    free(text);
    police = client(h, "hum-bcu-hull", NULL, 0); /* traffic does not make it trusted */
    char fresh[128];
    publish_created(police, "community_tension", "2026-11-01T00:00:00Z", fresh, sizeof fresh);
    cv_client_destroy(&police);
    text = purge_now(h, NULL, &ok);
    assert_false(ok);
    free(text);

    restart_with_clock_moved(h, "-86400"); /* a day behind */
    text = purge_now(h, NULL, &ok);
    assert_false(ok);
    free(text);
    assert_int_equal(stat_of(h, "purged"), 0);

    text = purge_now(h, "trust-clock", &ok); /* an administrator checked it */
    assert_true(ok);
    assert_non_null(strstr(text, "\"purged\":2"));
    free(text);
    text = purge_now(h, NULL, &ok); /* and it stays trusted */
    assert_true(ok);
    free(text);
    finish(&h);
}

/* ------------------------------------------------------------------------ */
/*  Backup.                                                                 */

static void test_backup_is_a_data_directory_a_broker_starts_from(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char ids[3][128];
    for (int i = 0; i < 3; i++)
        publish_example(police, "vulnerable_individual", ids[i], sizeof ids[i]);

    char dir[600];
    snprintf(dir, sizeof dir, "%s", harness_path(h, "backup"));
    cv_client_t *admin_client = admin_client_of(h);
    const char *args[] = {dir};
    bool ok = false;
    cv_error_t err = {0};
    char *text = cv_client_admin_args(admin_client, "backup", args, 1, &ok, 5000, &err);
    assert_non_null(text);
    assert_true(ok);
    free(text);
    /* never over an existing directory */
    text = cv_client_admin_args(admin_client, "backup", args, 1, &ok, 5000, &err);
    assert_false(ok);
    assert_non_null(strstr(text, "cannot create"));
    free(text);
    cv_client_destroy(&admin_client);
    publish_example(police, "vulnerable_individual", NULL, 0); /* after the backup */
    cv_client_destroy(&police);

    assert_true(harness_stop(h));
    char swap[2048];
    snprintf(swap, sizeof swap, "mv %s/data %s/data.live && mv %s %s/data", harness_path(h, ""),
             harness_path(h, ""), dir, harness_path(h, ""));
    assert_int_equal(system(swap), 0);
    assert_true(harness_start(h, NULL));
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    for (int i = 0; i < 3; i++) {
        const cv_delivery_t *d = receive(council, 5000);
        assert_non_null(d);
        assert_string_equal(d->report_id, ids[i]);
        assert_true(cv_client_ack(council, d->seq, &err));
    }
    assert_nothing_arrives(council, 500); /* the fourth came after the backup */
    cv_client_destroy(&council);
    finish(&h);
}

/*  Pipelined publishing: publishes started one after another without
 *  waiting are acknowledged each to its own ticket, finished in any order;
 *  a ticket finishes once; the publishes in flight are bounded, and a
 *  client destroyed with some in flight leaves their results pending
 *  with the ids to publish them again under. */
static void test_pipelined_publishes_finish_in_any_order(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *police = sender_of(h, "hum-bcu-hull");
    Caveat__Report *good[3], *bad = harness_report("vulnerable_individual");
    for (int i = 0; i < 3; i++)
        good[i] = harness_report("vulnerable_individual");
    free(bad->category);
    bad->category = strdup("no-such-category");
    cv_publish_result_t a[2] = {{0}}, b[1] = {{0}}, c[1] = {{0}};
    cv_error_t err = {0};
    int64_t ta = cv_client_publish_start(police, (const Caveat__Report *const *)good, 2, a, &err);
    int64_t tb = cv_client_publish_start(police, (const Caveat__Report *const *)&bad, 1, b, &err);
    int64_t tc =
        cv_client_publish_start(police, (const Caveat__Report *const *)&good[2], 1, c, &err);
    assert_true(ta > 0 && tb > ta && tc > tb);
    assert_int_equal(cv_client_publish_finish(police, tc, 5000, &err), 0);
    assert_int_equal(c[0].status, CV_PUBLISH_OK);
    while (!cv_client_publish_done(police, ta))
        usleep(1000);
    assert_int_equal(cv_client_publish_finish(police, ta, 0, &err), 0);
    assert_int_equal(cv_client_publish_finish(police, tb, 5000, &err), 1);
    assert_int_equal(b[0].status, CV_PUBLISH_REFUSED_INVALID);
    assert_int_equal(cv_client_publish_finish(police, ta, 5000, &err), -1);
    assert_int_equal(err.code, CV_ERR_BAD_INPUT);

    cv_publish_result_t many[65];
    memset(many, 0, sizeof many);
    for (int i = 0; i < 64; i++)
        assert_true(cv_client_publish_start(police, (const Caveat__Report *const *)&good[0], 1,
                                            &many[i], &err) > 0);
    assert_int_equal(cv_client_publish_start(police, (const Caveat__Report *const *)&good[0], 1,
                                             &many[64], &err),
                     -1);
    assert_int_equal(err.code, CV_ERR_BAD_INPUT);
    cv_client_destroy(&police);
    for (int i = 0; i < 64; i++) { /* acknowledged before the end, or pending with its id */
        assert_non_null(many[i].report_id);
        assert_true(many[i].status == CV_PUBLISH_OK || many[i].status == CV_PUBLISH_PENDING);
        assert_true(strncmp(many[i].report_id, "r-", 2) == 0);
    }
    cv_publish_results_clear(many, 65);

    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    int seen = 0;
    const cv_delivery_t *d;
    while ((d = receive(council, 1000))) {
        seen += strcmp(d->report_id, a[0].report_id) == 0 ||
                strcmp(d->report_id, a[1].report_id) == 0 ||
                strcmp(d->report_id, c[0].report_id) == 0;
        assert_true(cv_client_ack(council, d->seq, &err));
    }
    assert_int_equal(seen, 3);
    cv_client_destroy(&council);
    cv_publish_results_clear(a, 2);
    cv_publish_results_clear(b, 1);
    cv_publish_results_clear(c, 1);
    for (int i = 0; i < 3; i++)
        caveat__report__free_unpacked(good[i], NULL);
    caveat__report__free_unpacked(bad, NULL);
    finish(&h);
}

/*  An operator's `top -H` tells the broker's threads apart: each says what
 *  it does (docs/operations.md). */
static void test_the_brokers_threads_are_named(void **state)
{
    (void)state;
    harness_t *h = started();
    static const char *const names[] = {"cv-sync", "cv-checkpoint", "cv-checksums",
                                        "cv-view-hashes", "cv-leaf-hashes"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!harness_has_thread(harness_pid(h), names[i]))
            fail_msg("caveatd has no thread called %s", names[i]);
    finish(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_brokers_threads_are_named),
        cmocka_unit_test(test_delivery_with_redaction),
        cmocka_unit_test(test_store_and_forward_and_redelivery),
        cmocka_unit_test(test_restart_keeps_what_was_acknowledged),
        cmocka_unit_test(test_unlisted_key_cannot_connect),
        cmocka_unit_test(test_spoofed_originator_is_refused),
        cmocka_unit_test(test_invalid_reports_are_refused),
        cmocka_unit_test(test_malformed_frames_get_errors),
        cmocka_unit_test(test_unknown_feed_and_send_only_acks_are_refused),
        cmocka_unit_test(test_oversize_frame_is_refused_and_broker_serves),
        cmocka_unit_test(test_a_frame_of_exactly_max_frame_is_accepted),
        cmocka_unit_test(test_slow_subscriber_does_not_stop_a_fast_one),
        cmocka_unit_test(test_ctio_feed_gets_screened_reports_only),
        cmocka_unit_test(test_admin_is_for_administrators),
        cmocka_unit_test(test_admin_replies_carry_their_requests_id),
        cmocka_unit_test(test_bad_reload_keeps_the_old_policy),
        cmocka_unit_test(test_signals_while_publishing_hold_nothing_back),
        cmocka_unit_test(test_reload_removing_an_agency_revokes_it),
        cmocka_unit_test(test_reload_taking_an_agency_off_a_feed_ends_its_session),
        cmocka_unit_test(test_an_agency_rotates_its_key_with_an_overlap),
        cmocka_unit_test(test_a_publisher_does_not_starve_its_agencys_subscriber),
        cmocka_unit_test(test_a_dropped_sender_says_hello_again),
        cmocka_unit_test(test_retention_purges_exactly_what_is_past_its_period),
        cmocka_unit_test(test_retention_waits_for_a_plausible_clock),
        cmocka_unit_test(test_backup_is_a_data_directory_a_broker_starts_from),
        cmocka_unit_test(test_pipelined_publishes_finish_in_any_order),
        cmocka_unit_test(test_unacknowledged_deliveries_are_resent_after_the_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
