/*  End to end: feedback on a received report (docs/protocol.md,
 *  "Feedback"), with the real caveatd, the example policy and keys.
 *
 *  The example policy sends hum-bcu-hull's vulnerable_individual report to
 *  hull-cc, hum-sb and ne-ctu directly (and to hum-ctio-hull through its
 *  feed), and never to hull-nhs: hull-nhs is a listed agency that never
 *  received it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <czmq.h>

#include "audit_cli.h"
#include "e2e_checks.h"
#include "harness.h"

#define ORIGINATOR "hum-bcu-hull"

/*  hum-bcu-hull publishes the example vulnerable_individual report; its id. */
static void publish_report(harness_t *h, char *id, size_t size)
{
    cv_client_t *police = sender_of(h, ORIGINATOR);
    Caveat__Report *report = harness_report("vulnerable_individual");
    assert_non_null(report);
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    assert_int_equal(cv_client_publish_one(police, report, &result, 5000, &err), 0);
    snprintf(id, size, "%s", result.report_id);
    cv_publish_results_clear(&result, 1);
    caveat__report__free_unpacked(report, NULL);
    cv_client_destroy(&police);
}

/*  agency's subscriber takes the report (and acknowledges it). */
static cv_client_t *receiver(harness_t *h, const char *agency, const char *id)
{
    cv_client_t *c = client(h, agency, NULL, 0);
    const cv_delivery_t *d = receive(c, 5000);
    assert_non_null(d);
    assert_string_equal(d->report_id, id);
    assert_null(d->feedback);
    assert_true(cv_client_ack(c, d->seq, &(cv_error_t){0}));
    return c;
}

static bool give_feedback(cv_client_t *c, const char *id, const char *value, const char *text,
                          cv_error_t *err)
{
    *err = (cv_error_t){0};
    return cv_client_feedback(c, id, NULL, value, text, 5000, err);
}

/*  The next delivery is feedback on id from agency with value: its seq. */
static uint64_t expect_feedback(cv_client_t *originator, const char *id, const char *from,
                                const char *value, const char *text)
{
    const cv_delivery_t *d = receive(originator, 5000);
    assert_non_null(d);
    assert_non_null(d->feedback);
    assert_null(d->report);
    assert_int_equal(d->n_rules, 0);
    assert_string_equal(d->report_id, id);
    assert_string_equal(d->feedback->report_id, id);
    assert_string_equal(d->feedback->from, from);
    assert_string_equal(d->feedback->value, value);
    assert_string_equal(d->feedback->text, text ? text : "");
    assert_int_equal(strlen(d->feedback->time), 20); /* 2026-12-02T15:04:46Z */
    return d->seq;
}

/* ------------------------------------------------------------------------ */

static void test_feedback_reaches_the_originator_alone(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *police = client(h, ORIGINATOR, NULL, 0);
    cv_client_t *nel = client(h, "hum-bcu-nel", NULL, 0); /* another police agency */
    cv_client_t *nhs = client(h, "hull-nhs", NULL, 0);    /* never receives the report */
    char id[128];
    publish_report(h, id, sizeof id);
    cv_client_t *council = receiver(h, "hull-cc", id);
    cv_client_t *sb = receiver(h, "hum-sb", id); /* another recipient of the report */

    cv_error_t err;
    const char *text = "adopted into Channel; thank you";
    assert_true(give_feedback(council, id, "action_taken", text, &err));
    uint64_t seq = expect_feedback(police, id, "hull-cc", "action_taken", text);
    assert_int_equal(seq, 1); /* the originator's own queue, its own seqs */
    assert_true(cv_client_ack(police, seq, &err));

    assert_nothing_arrives(police, 300);
    assert_nothing_arrives(council, 100);
    assert_nothing_arrives(sb, 100);
    assert_nothing_arrives(nel, 100);
    assert_nothing_arrives(nhs, 100);

    /* the audit log says who said what of which report, never the text */
    cv_client_destroy(&sb);
    cv_client_destroy(&council);
    cv_client_destroy(&nhs);
    cv_client_destroy(&nel);
    cv_client_destroy(&police);
    assert_true(harness_stop(h));
    char args[1024], out[65536];
    snprintf(args, sizeof args, "trace '%s' '%s'", harness_path(h, "data"), id);
    assert_int_equal(audit_cli(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"event\":\"feedback\""));
    assert_non_null(strstr(out, "\"from\":\"hull-cc\",\"value\":\"action_taken\""));
    assert_null(strstr(out, "Channel"));
    snprintf(args, sizeof args, "verify '%s'", harness_path(h, "data"));
    assert_int_equal(audit_cli(args, out, sizeof out), 0);
    harness_destroy(&h);
}

static void test_feedback_outlives_a_restart_until_acknowledged(void **state)
{
    (void)state;
    harness_t *h = started();
    char id[128];
    publish_report(h, id, sizeof id);
    cv_client_t *council = receiver(h, "hull-cc", id);
    cv_error_t err;
    assert_true(give_feedback(council, id, "useful", NULL, &err)); /* the originator is away */
    cv_client_destroy(&council);
    harness_kill(h); /* a crash: only what was stored before the FeedbackAck remains */
    assert_true(harness_start(h, NULL));

    cv_client_t *police = client(h, ORIGINATOR, NULL, 0);
    uint64_t seq = expect_feedback(police, id, "hull-cc", "useful", NULL);
    cv_client_destroy(&police); /* gone without acknowledging */
    harness_kill(h);
    assert_true(harness_start(h, NULL));

    police = client(h, ORIGINATOR, NULL, 0);
    assert_int_equal(expect_feedback(police, id, "hull-cc", "useful", NULL), seq); /* again */
    assert_true(cv_client_ack(police, seq, &err));
    assert_nothing_arrives(police, 300); /* the acknowledgement reaches the broker */
    cv_client_destroy(&police);
    assert_true(harness_stop(h));
    assert_true(harness_start(h, NULL));
    police = client(h, ORIGINATOR, NULL, 0);
    assert_nothing_arrives(police, 500); /* acknowledged: never again */
    cv_client_destroy(&police);
    finish(&h);
}

static void test_a_dropped_sender_sends_its_feedback_again(void **state)
{
    (void)state;
    harness_t *h = started();
    char id[128];
    publish_report(h, id, sizeof id);
    cv_client_t *council = receiver(h, "hull-cc", id);
    enum { N = 65 }; /* one more send-only session than the broker keeps per agency */
    cv_client_t *senders[N];
    for (int i = 0; i < N; i++)
        senders[i] = sender_of(h, "hull-cc");
    /* the first has no session any more: NOT_READY, Hello, and again */
    cv_error_t err;
    assert_true(give_feedback(senders[0], id, "seen", NULL, &err));
    cv_client_t *police = client(h, ORIGINATOR, NULL, 0);
    expect_feedback(police, id, "hull-cc", "seen", NULL);
    assert_nothing_arrives(police, 300);
    for (int i = 0; i < N; i++)
        cv_client_destroy(&senders[i]);
    cv_client_destroy(&police);
    cv_client_destroy(&council);
    finish(&h);
}

/* ------------------------------------------------------------------------ */
/*  Refusals.                                                               */

static void send_feedback(zsock_t *dealer, const char *id, const char *value, const char *text)
{
    Caveat__Wire__Feedback feedback = CAVEAT__WIRE__FEEDBACK__INIT;
    feedback.report_id = (char *)id;
    feedback.value = (char *)value;
    feedback.text = (char *)text;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_FEEDBACK;
    frame.feedback = &feedback;
    send_frame(dealer, &frame);
}

static void assert_refused(cv_client_t *c, const char *id, const char *value, uint32_t code,
                           char *reason, size_t size)
{
    cv_error_t err;
    assert_false(give_feedback(c, id, value, NULL, &err));
    assert_int_equal(err.code, CV_ERR_BROKER);
    assert_int_equal(err.broker_code, code);
    if (reason)
        snprintf(reason, size, "%s", err.msg);
}

/*  A report disposed of by a review decision takes its feedback with it,
 *  as a purge does: the originator is never sent feedback on a report the
 *  broker no longer holds, before or after a restart, and feedback on it
 *  is refused as on a report never received. */
/*  Routes rows that are no report's, nor an approved release's: the
 *  feedback's. */
#define ORPHAN_ROUTES                                                                              \
    "SELECT count(*) FROM routes WHERE report NOT IN (SELECT n FROM reports)"                      \
    " AND report NOT IN (SELECT n FROM approval_routes)"

static void test_feedback_goes_with_its_report_when_disposed(void **state)
{
    (void)state;
    harness_t *h = started();
    char id[128], report_arg[160];
    publish_report(h, id, sizeof id);
    cv_client_t *council = receiver(h, "hull-cc", id);
    cv_error_t err;
    assert_true(give_feedback(council, id, "useful", NULL, &err)); /* the originator is away */
    assert_true(give_feedback(council, id, "seen", NULL, &err));
    assert_int_equal(store_count(h, "SELECT count(*) FROM feedback"), 2);
    assert_int_equal(store_count(h, ORPHAN_ROUTES), 2); /* the feedback's queue entries */

    snprintf(report_arg, sizeof report_arg, "report=%s", id);
    const char *dispose[] = {report_arg, "dispose", "reason=MOPI review: not needed"};
    cv_client_t *admin = admin_client_of(h);
    bool ok = false;
    char *text = cv_client_admin_args(admin, "review", dispose, 3, &ok, 5000, &err);
    if (!ok)
        print_error("review: %s\n", text ? text : err.msg);
    assert_true(ok);
    free(text);
    cv_client_destroy(&admin);
    assert_int_equal(store_count(h, "SELECT count(*) FROM feedback"), 0); /* not kept, unseen */
    assert_int_equal(store_count(h, ORPHAN_ROUTES), 0); /* nor their queue entries */

    cv_client_t *police = client(h, ORIGINATOR, NULL, 0);
    assert_nothing_arrives(police, 500);
    cv_client_destroy(&police);
    assert_refused(council, id, "action_taken", CAVEAT__WIRE__ERROR_CODE__FORBIDDEN, NULL, 0);
    cv_client_destroy(&council);
    assert_true(harness_stop(h));
    assert_true(harness_start(h, NULL));
    police = client(h, ORIGINATOR, NULL, 0);
    assert_nothing_arrives(police, 500); /* nor from the store, after a restart */
    cv_client_destroy(&police);
    finish(&h);
}

static void test_feedback_on_a_report_not_received_is_refused_alike(void **state)
{
    (void)state;
    harness_t *h = started();
    char id[128];
    publish_report(h, id, sizeof id);
    cv_client_t *nhs = sender_of(h, "hull-nhs"); /* listed, never sent the report */
    char never[sizeof((cv_error_t){0}.msg)], unknown[sizeof never];
    assert_refused(nhs, id, "useful", CAVEAT__WIRE__ERROR_CODE__FORBIDDEN, never, sizeof never);
    assert_refused(nhs, "r-000000000000000000000000", "useful", CAVEAT__WIRE__ERROR_CODE__FORBIDDEN,
                   unknown, sizeof unknown);
    /* nothing tells a report that exists from one that does not */
    assert_string_equal(never, unknown);
    /* each refusal has its log line, which names no report */
    assert_int_equal(log_lines_with(h, "feedback from hull-nhs refused: no report of that id was "
                                       "delivered to you"),
                     2);
    assert_int_equal(log_lines_with(h, "r-000000000000000000000000"), 0);
    /* routed to ne-ctu, but not yet sent to it: not received either */
    cv_client_t *ctu = sender_of(h, "ne-ctu");
    assert_refused(ctu, id, "seen", CAVEAT__WIRE__ERROR_CODE__FORBIDDEN, NULL, 0);
    /* the originator never received its own report */
    cv_client_t *self = sender_of(h, ORIGINATOR);
    assert_refused(self, id, "useful", CAVEAT__WIRE__ERROR_CODE__FORBIDDEN, NULL, 0);

    /* nothing reached the originator; a recipient's feedback still does */
    cv_client_t *police = client(h, ORIGINATOR, NULL, 0);
    assert_nothing_arrives(police, 300);
    cv_client_t *council = receiver(h, "hull-cc", id);
    cv_error_t err;
    assert_true(give_feedback(council, id, "seen", NULL, &err));
    expect_feedback(police, id, "hull-cc", "seen", NULL);
    assert_nothing_arrives(police, 200);
    cv_client_destroy(&council);
    cv_client_destroy(&police);
    cv_client_destroy(&self);
    cv_client_destroy(&ctu);
    cv_client_destroy(&nhs);
    finish(&h);
}

static void test_feedback_of_a_bad_form_is_refused(void **state)
{
    (void)state;
    harness_t *h = started();
    char id[128];
    publish_report(h, id, sizeof id);
    cv_client_t *council = receiver(h, "hull-cc", id);
    cv_client_t *police = client(h, ORIGINATOR, NULL, 0);

    /* libcaveat says so before sending */
    cv_error_t err;
    assert_false(give_feedback(council, id, "excellent", NULL, &err));
    assert_int_equal(err.code, CV_ERR_BAD_INPUT);
    char text[1002];
    memset(text, 't', sizeof text - 1);
    text[sizeof text - 1] = '\0'; /* 1,001 bytes */
    assert_false(give_feedback(council, id, "useful", text, &err));
    assert_int_equal(err.code, CV_ERR_BAD_INPUT);

    /* and the broker, to a client that sends them anyway */
    zsock_t *raw = raw_session(h, "hull-cc");
    send_feedback(raw, id, "excellent", NULL);
    assert_int_equal(error_answer(raw), CAVEAT__WIRE__ERROR_CODE__BAD_REQUEST);
    send_feedback(raw, id, NULL, NULL);
    assert_int_equal(error_answer(raw), CAVEAT__WIRE__ERROR_CODE__BAD_REQUEST);
    send_feedback(raw, id, "useful", text);
    assert_int_equal(error_answer(raw), CAVEAT__WIRE__ERROR_CODE__BAD_REQUEST);
    send_feedback(raw, "", "useful", NULL);
    assert_int_equal(error_answer(raw), CAVEAT__WIRE__ERROR_CODE__BAD_REQUEST);
    send_feedback(raw, "r-1\nforged log line", "useful", NULL);
    assert_int_equal(error_answer(raw), CAVEAT__WIRE__ERROR_CODE__BAD_REQUEST);
    assert_nothing_arrives(police, 300);
    /* text the originator's terminal would take for commands, or that is
     * not UTF-8, from either (a second on: within the agency's rate) */
    zclock_sleep(1100);
    static const char *const unreadable[] = {"seen\x1b[2J",        "bell\a",
                                             "nul-free but \x7f",  "c1 \xc2\x9b 2J",
                                             "not utf-8 \xff\xfe", "cut \xe2\x82"};
    for (size_t i = 0; i < sizeof unreadable / sizeof *unreadable; i++) {
        assert_false(give_feedback(council, id, "useful", unreadable[i], &err));
        assert_int_equal(err.code, CV_ERR_BAD_INPUT);
        send_feedback(raw, id, "useful", unreadable[i]);
        assert_int_equal(error_answer(raw), CAVEAT__WIRE__ERROR_CODE__BAD_REQUEST);
    }
    assert_nothing_arrives(police, 300);
    /* lines, tabs and any language are text */
    const char *lines = "Seen at 14:02.\n\tAction: visit booked \xe2\x80\x94 caf\xc3\xa9 \xc2\xa3";
    assert_true(give_feedback(council, id, "action_taken", lines, &err));
    expect_feedback(police, id, "hull-cc", "action_taken", lines);

    /* 1,000 bytes is the limit, not over it */
    text[1000] = '\0';
    assert_true(give_feedback(council, id, "useful", text, &err));
    expect_feedback(police, id, "hull-cc", "useful", text);
    zsock_destroy(&raw);
    cv_client_destroy(&police);
    cv_client_destroy(&council);
    finish(&h);
}

static void test_feedback_waits_while_the_disk_is_short(void **state)
{
    (void)state;
    harness_t *h = started_on_a_small_disk(24 * 1024 * 1024, "2");
    char id[128];
    publish_report(h, id, sizeof id);
    cv_client_t *council = receiver(h, "hull-cc", id);
    disk_filled(h);
    cv_error_t err;
    assert_false(give_feedback(council, id, "useful", NULL, &err));
    assert_int_equal(err.code, CV_ERR_FAILED);
    assert_non_null(strstr(err.msg, "disk is full"));
    cv_client_t *police = client(h, ORIGINATOR, NULL, 0);
    assert_nothing_arrives(police, 300);

    harness_free_disk(h);
    zclock_sleep(300);
    assert_true(give_feedback(council, id, "useful", NULL, &err));
    expect_feedback(police, id, "hull-cc", "useful", NULL);
    cv_client_destroy(&police);
    cv_client_destroy(&council);
    finish(&h);
}

/*  A feedback whose store write fails (here a trigger, as a full disk or
 *  an I/O error would) rolls its turn back: the sender is told to send it
 *  again, the originator is sent nothing, and the log does not say it was
 *  given. Sent again once the store takes it, it is given, and logged
 *  once. */
static void test_feedback_the_store_cannot_take_is_not_logged(void **state)
{
    (void)state;
    harness_t *h = started();
    char id[128];
    publish_report(h, id, sizeof id);
    cv_client_t *council = receiver(h, "hull-cc", id);
    store_sql(h, "CREATE TRIGGER fail BEFORE INSERT ON feedback"
                 " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    cv_error_t err;
    assert_false(give_feedback(council, id, "useful", NULL, &err));
    assert_int_equal(err.code, CV_ERR_FAILED);
    assert_non_null(strstr(err.msg, "retry"));
    cv_client_t *police = client(h, ORIGINATOR, NULL, 0);
    assert_nothing_arrives(police, 300);
    assert_true(log_lines_with(h, "the turn is rolled back") > 0);
    assert_int_equal(log_lines_with(h, "feedback from hull-cc on"), 0);

    store_sql(h, "DROP TRIGGER fail");
    assert_true(give_feedback(council, id, "useful", NULL, &err));
    expect_feedback(police, id, "hull-cc", "useful", NULL);
    assert_int_equal(log_lines_with(h, "feedback from hull-cc on"), 1);
    cv_client_destroy(&police);
    cv_client_destroy(&council);
    finish(&h);
}

/*  The answers to n frames just sent: how many were FeedbackAcks and how
 *  many Errors of code. */
static void count_answers(zsock_t *dealer, int n, uint32_t code, int *acks, int *errors)
{
    *acks = *errors = 0;
    for (int i = 0; i < n; i++) {
        Caveat__Wire__Frame *frame = next_frame(dealer);
        assert_non_null(frame);
        if (frame->body_case == CAVEAT__WIRE__FRAME__BODY_FEEDBACK_ACK)
            *acks += frame->feedback_ack->status == CAVEAT__WIRE__STATUS__OK;
        else if (frame->body_case == CAVEAT__WIRE__FRAME__BODY_ERROR)
            *errors += frame->error->code == code;
        caveat__wire__frame__free_unpacked(frame, NULL);
    }
}

static void test_feedback_over_its_limits_is_refused(void **state)
{
    (void)state;
    harness_t *h = started();
    char id[128];
    publish_report(h, id, sizeof id);
    cv_client_t *council = receiver(h, "hull-cc", id);
    zsock_t *raw = raw_session(h, "hull-cc");

    /* per second: 25 at once cannot all be taken, whatever second they
     * fall in (at most 10 a second, in at most two seconds) */
    for (int i = 0; i < 25; i++)
        send_feedback(raw, id, "wrong", NULL); /* refused anyway: nothing is stored */
    int acks, limited;
    count_answers(raw, 25, CAVEAT__WIRE__ERROR_CODE__LIMIT, &acks, &limited);
    assert_int_equal(acks, 0);
    assert_true(limited >= 5);

    /* per report: 20 from one agency, then no more, at any pace */
    zclock_sleep(1100);
    int stored = 0;
    for (int i = 0; i < 21; i++) {
        send_feedback(raw, id, "seen", NULL);
        int ok, refused;
        count_answers(raw, 1, CAVEAT__WIRE__ERROR_CODE__LIMIT, &ok, &refused);
        stored += ok;
        assert_int_equal(ok + refused, 1);
        assert_int_equal(refused, i == 20);
        zclock_sleep(110); /* below the rate */
    }
    assert_int_equal(stored, 20);

    /* the originator has what was stored, and nothing else */
    cv_client_t *police = client(h, ORIGINATOR, NULL, 100);
    for (int i = 0; i < 20; i++)
        expect_feedback(police, id, "hull-cc", "seen", NULL);
    assert_nothing_arrives(police, 300);
    /* another recipient carries on */
    cv_client_t *sb = receiver(h, "hum-sb", id);
    cv_error_t err;
    assert_true(give_feedback(sb, id, "useful", NULL, &err));
    expect_feedback(police, id, "hum-sb", "useful", NULL);
    cv_client_destroy(&sb);
    cv_client_destroy(&police);
    zsock_destroy(&raw);
    cv_client_destroy(&council);
    finish(&h);
}

/* ------------------------------------------------------------------------ */
/*  The command line.                                                       */

/*  `caveat ARGS --broker ... --cert AGENCY` run as an agency would: exit
 *  status, and stdout (stderr too) in out. */
static int caveat_as(harness_t *h, const char *agency, const char *args, char *out, size_t size)
{
    char command[4096], dir[1024];
    snprintf(dir, sizeof dir, "%s", harness_path(h, ""));
    snprintf(command, sizeof command,
             "%s --broker '%s' --server-key '%s/broker.cert' --cert '%s/%s.cert_secret'", args,
             harness_endpoint(h), dir, dir, agency);
    return caveat_cli(command, out, size);
}

static void test_the_command_line_gives_and_prints_feedback(void **state)
{
    (void)state;
    harness_t *h = started();
    char id[128];
    publish_report(h, id, sizeof id);
    cv_client_t *council = receiver(h, "hull-cc", id);
    char args[1024], out[8192];

    snprintf(args, sizeof args, "feedback '%s' --value excellent", id);
    assert_int_equal(caveat_as(h, "hull-cc", args, out, sizeof out), 2);
    assert_non_null(strstr(out, "feedback value must be useful"));
    snprintf(args, sizeof args, "feedback '%s' --value seen", id);
    assert_int_equal(caveat_as(h, "hull-nhs", args, out, sizeof out), 1);
    assert_non_null(strstr(out, "FORBIDDEN"));
    snprintf(args, sizeof args, "feedback '%s' --value useful --text 'seen at the panel'", id);
    assert_int_equal(caveat_as(h, "hull-cc", args, out, sizeof out), 0);

    assert_int_equal(caveat_as(h, ORIGINATOR, "subscribe --count 1 --timeout 5", out, sizeof out),
                     0);
    char expected[512];
    snprintf(expected, sizeof expected,
             "\"report\":null,\"feedback\":{\"report_id\":\"%s\",\"from\":\"hull-cc\","
             "\"value\":\"useful\",\"text\":\"seen at the panel\",\"time\":\"",
             id);
    if (!strstr(out, expected))
        print_error("subscribe printed %s\n", out);
    assert_non_null(strstr(out, expected));
    cv_client_destroy(&council);
    finish(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feedback_reaches_the_originator_alone),
        cmocka_unit_test(test_feedback_outlives_a_restart_until_acknowledged),
        cmocka_unit_test(test_feedback_goes_with_its_report_when_disposed),
        cmocka_unit_test(test_a_dropped_sender_sends_its_feedback_again),
        cmocka_unit_test(test_feedback_on_a_report_not_received_is_refused_alike),
        cmocka_unit_test(test_feedback_of_a_bad_form_is_refused),
        cmocka_unit_test(test_feedback_over_its_limits_is_refused),
        cmocka_unit_test(test_feedback_waits_while_the_disk_is_short),
        cmocka_unit_test(test_feedback_the_store_cannot_take_is_not_logged),
        cmocka_unit_test(test_the_command_line_gives_and_prints_feedback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
