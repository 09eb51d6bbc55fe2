/*  Originator approval, end to end: the real caveatd with the example
 *  policy (handling code "5" holds a report until its originator approves
 *  each release), driven through libcaveat's cv_client_approve.
 *
 *  A held report reaches nobody; an approval releases it to the agencies
 *  it names, each in its redacted view, and to nobody else, never twice;
 *  approvals outlive a crash and a reload; a refused approval (another
 *  agency's, an unknown report or recipient, one over a limit) releases
 *  nothing while others carry on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <czmq.h>

#include "audit_cli.h"
#include "e2e_checks.h"
#include "harness.h"

/*  The example referral, held for approval (handling code 5), published
 *  by originator under id, in area. */
static void publish_held_by(harness_t *h, const char *originator, const char *area, const char *id,
                            const char *code)
{
    Caveat__Report *report = harness_report("vulnerable_individual");
    assert_non_null(report);
    report->id = strdup(id);
    free(report->originator);
    report->originator = strdup(originator);
    free(report->area);
    report->area = strdup(area);
    free(report->grading->handling_code);
    report->grading->handling_code = strdup(code);
    cv_client_t *police = sender_of(h, originator);
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    assert_int_equal(cv_client_publish_one(police, report, &result, 5000, &err), 0);
    assert_int_equal(result.status, CV_PUBLISH_OK);
    cv_publish_results_clear(&result, 1);
    cv_client_destroy(&police);
    caveat__report__free_unpacked(report, NULL);
}

/*  As publish_held_by, by hum-bcu-hull in Hull. */
static void publish_held(harness_t *h, const char *id, const char *code)
{
    publish_held_by(h, "hum-bcu-hull", "hull", id, code);
}

/*  agency's approval of id to "to": the call's return; the agencies it
 *  released the report to, comma-separated, in released; the broker's
 *  Error code in *code (0: none). */
static int approve_as(harness_t *h, const char *agency, const char *id, const char *to,
                      char *released, size_t size, uint32_t *code)
{
    cv_client_t *c = sender_of(h, agency);
    cv_approval_result_t result;
    cv_error_t err = {0};
    int rc = cv_client_approve(c, id, to, &result, 5000, &err);
    *code = rc < 0 && err.code == CV_ERR_BROKER ? err.broker_code : 0;
    if (rc < 0 && !*code)
        print_error("approve: %s\n", err.msg);
    released[0] = '\0';
    for (size_t i = 0; rc == 0 && i < result.n_recipients; i++)
        snprintf(released + strlen(released), size - strlen(released), "%s%s", i ? "," : "",
                 result.recipients[i]);
    cv_approval_result_clear(&result);
    cv_client_destroy(&c);
    return rc;
}

/*  An approval the broker must take: the agencies it released. */
static const char *approved(harness_t *h, const char *id, const char *to)
{
    static char released[512];
    uint32_t code = 0;
    assert_int_equal(approve_as(h, "hum-bcu-hull", id, to, released, sizeof released, &code), 0);
    return released;
}

/*  An approval the broker must refuse with Error code. */
static void refused(harness_t *h, const char *agency, const char *id, const char *to, uint32_t want)
{
    char released[512];
    uint32_t code = 0;
    assert_int_equal(approve_as(h, agency, id, to, released, sizeof released, &code), -1);
    assert_int_equal(code, want);
}

static void assert_receives(cv_client_t *c, const char *id)
{
    const cv_delivery_t *d = receive(c, 5000);
    assert_non_null(d);
    assert_string_equal(d->report_id, id);
    assert_true(cv_client_ack(c, d->seq, &(cv_error_t){0}));
}

/* ------------------------------------------------------------------------ */

/*  Held for everyone; then only the approved, in their own views, once. */
static void test_only_approved_recipients_get_a_held_report(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    cv_client_t *ctu = client(h, "ne-ctu", NULL, 0);
    cv_client_t *ctio = client(h, "hum-ctio-hull", "ctio", 0);
    publish_held(h, "held-1", "5");
    assert_nothing_arrives(council, 500);
    assert_nothing_arrives(ctu, 50);
    assert_nothing_arrives(ctio, 50);

    assert_string_equal(approved(h, "held-1", "hull-cc"), "hull-cc");
    const cv_delivery_t *d = receive(council, 5000);
    assert_non_null(d);
    assert_string_equal(d->report_id, "held-1");
    assert_string_equal(d->rules[0], "safeguarding-referral");
    const Caveat__Report *view = d->report; /* the council's view, not the whole report */
    assert_string_equal(view->subjects[0]->date_of_birth, "2009");
    assert_string_equal(view->subjects[0]->postcode, "HU3");
    assert_null(view->subjects[0]->address);
    assert_null(view->source);
    assert_null(view->grading);
    assert_true(cv_client_ack(council, d->seq, &(cv_error_t){0}));
    assert_nothing_arrives(ctu, 300);
    assert_nothing_arrives(ctio, 50);

    /* again: nothing is released twice, and nothing new is recorded */
    for (int i = 0; i < 3; i++)
        assert_string_equal(approved(h, "held-1", "hull-cc"), "");
    assert_nothing_arrives(council, 300);

    /* a type: every agency of it the policy releases the report to */
    assert_string_equal(approved(h, "held-1", "ctu"), "ne-ctu");
    d = receive(ctu, 5000);
    assert_non_null(d);
    assert_string_equal(d->report_id, "held-1");
    assert_non_null(d->report->source); /* the CTU's rule shares it */
    assert_nothing_arrives(council, 300);
    assert_nothing_arrives(ctio, 50);
    assert_string_equal(approved(h, "held-1", "hum-ctio-hull"), "hum-ctio-hull");
    d = receive(ctio, 5000);
    assert_non_null(d);
    assert_string_equal(d->feed, "ctio"); /* through its screening feed's queue */
    cv_client_destroy(&ctio);
    cv_client_destroy(&ctu);
    cv_client_destroy(&council);
    assert_true(harness_stop(h));

    /* each approval is in the audit log, naming whom it released */
    char args[1024], out[16384];
    snprintf(args, sizeof args, "trace '%s' held-1", harness_path(h, "data"));
    assert_int_equal(audit_cli(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"event\":\"approval\",\"time\":"));
    assert_non_null(strstr(out, "\"report\":\"held-1\",\"originator\":\"hum-bcu-hull\","
                                "\"to\":\"hull-cc\",\"category\":\"vulnerable_individual\","));
    /* each agency released with its organisation and rules, as an
     * accepted leaf names its recipients */
    assert_non_null(strstr(out, "\"recipients\":[{\"agency\":\"hull-cc\",\"organisation\":"
                                "\"hull-city-council\",\"delivered\":true,\"rules\":"
                                "[\"safeguarding-referral\"],\"view\":0}],"
                                "\"released\":[\"hull-cc\"],\"fields\":["));
    /* the approvals given again released no one: they left no leaf */
    assert_null(strstr(out, "\"released\":[]"));
    assert_int_equal(occurrences(out, "\"event\":\"approval\""), 3);
    assert_non_null(strstr(out, "\"released\":[\"ne-ctu\"]"));
    snprintf(args, sizeof args, "verify '%s'", harness_path(h, "data"));
    assert_int_equal(audit_cli(args, out, sizeof out), 0);
    harness_destroy(&h);
}

/*  An approval given before a crash is delivered after it, and survives a
 *  reload; one given after a restart releases too; nothing comes twice. */
/*  A recipient of an approved release received the report: its feedback
 *  is taken and goes to the originator, as on any delivered report (the
 *  release's route is held under a rowid of its own, which the feedback
 *  check once missed: FORBIDDEN). An agency the approval did not name is
 *  still refused. */
static void test_feedback_on_an_approved_release_reaches_the_originator(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    publish_held(h, "held-feedback", "5");
    assert_string_equal(approved(h, "held-feedback", "hull-cc"), "hull-cc");
    assert_receives(council, "held-feedback");
    cv_error_t err = {0};
    if (!cv_client_feedback(council, "held-feedback", NULL, "useful", NULL, 5000, &err))
        fail_msg("feedback on an approved release: %s", err.msg);
    const cv_delivery_t *d = receive(police, 5000);
    assert_non_null(d);
    assert_non_null(d->feedback);
    assert_string_equal(d->feedback->report_id, "held-feedback");
    assert_string_equal(d->feedback->from, "hull-cc");
    assert_string_equal(d->feedback->value, "useful");

    cv_client_t *college = client(h, "hull-college", NULL, 0);
    assert_false(cv_client_feedback(college, "held-feedback", NULL, "useful", NULL, 5000, &err));
    assert_int_equal(err.broker_code, CAVEAT__WIRE__ERROR_CODE__FORBIDDEN);
    cv_client_destroy(&college);
    cv_client_destroy(&police);
    cv_client_destroy(&council);
    finish(&h);
}

static void test_approvals_outlive_a_restart_and_a_reload(void **state)
{
    (void)state;
    harness_t *h = started();
    publish_held(h, "held-before", "5");
    publish_held(h, "held-after", "5");
    assert_string_equal(approved(h, "held-before", "local_authority"), "hull-cc");
    harness_kill(h); /* a crash: only the store remains */
    assert_true(harness_start(h, NULL));
    harness_signal(h, SIGHUP); /* queued deliveries are decided again, with approvals */
    zclock_sleep(300);

    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    assert_receives(council, "held-before");
    assert_nothing_arrives(council, 300);
    assert_string_equal(approved(h, "held-after", "hull-cc"), "hull-cc");
    assert_receives(council, "held-after");
    assert_nothing_arrives(council, 300); /* and the broker has read the acknowledgement */
    cv_client_destroy(&council);

    assert_true(harness_stop(h));
    assert_true(harness_start(h, NULL));
    council = client(h, "hull-cc", NULL, 0);
    assert_nothing_arrives(council, 500); /* everything acknowledged stays delivered */
    cv_client_t *ctu = client(h, "ne-ctu", NULL, 0);
    assert_nothing_arrives(ctu, 50);
    cv_client_destroy(&ctu);
    cv_client_destroy(&council);
    finish(&h);
}

/*  A report routed when it was accepted, whose handling code a reload
 *  then holds for approval: an approval never sends it again to an agency
 *  acceptance routed it to, nor grows with how many that was. */
static void test_an_approval_never_resends_what_acceptance_routed(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    publish_held(h, "routine-3", "2"); /* code 2: routed at once */
    assert_receives(council, "routine-3");

    char *text = read_text(harness_path(h, "policy.yaml"));
    char *v8 = text_replace(text, "\nversion: ", "version: 7", "version: 8");
    char *held = text_replace(v8, "\n  \"2\":\n", "    description: law enforcement and statutory",
                              "    originator_approval: true\n    description: law enforcement and"
                              " statutory");
    harness_write_policy(h, held);
    harness_signal(h, SIGHUP);
    zclock_sleep(500);
    assert_int_equal(log_lines_with(h, "version 8"), 1);

    assert_string_equal(approved(h, "routine-3", "hull-cc"), ""); /* it has it already */
    assert_string_equal(approved(h, "routine-3", "local_authority"), "");
    assert_nothing_arrives(council, 500);
    free(held);
    free(v8);
    free(text);
    cv_client_destroy(&council);
    finish(&h);
}

#define E_BAD_REQUEST CAVEAT__WIRE__ERROR_CODE__BAD_REQUEST
#define E_LIMIT       CAVEAT__WIRE__ERROR_CODE__LIMIT

/*  Another agency's approval, an unknown report or recipient, a report
 *  that needs none: each refused with BAD_REQUEST, and nothing released,
 *  while the council's other traffic goes on. */
static void test_refused_approvals_release_nothing(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    publish_held(h, "held-2", "5");
    /* another police agency, with a valid key: the report is not its own,
     * and it is told no more than for an id nobody has */
    refused(h, "hum-bcu-nel", "held-2", "hull-cc", E_BAD_REQUEST);
    refused(h, "hull-cc", "held-2", "hull-cc", E_BAD_REQUEST);
    refused(h, "hum-bcu-hull", "no-such-report", "hull-cc", E_BAD_REQUEST);
    refused(h, "hum-bcu-hull", "held-2", "no-such-agency", E_BAD_REQUEST);
    publish_held(h, "routine-1", "2");
    assert_receives(council, "routine-1"); /* others carry on */
    refused(h, "hum-bcu-hull", "routine-1", "ne-ctu", E_BAD_REQUEST);
    assert_nothing_arrives(council, 500);
    assert_true(log_lines_with(h, "approval from hum-bcu-nel refused: no such report") == 1);
    cv_client_destroy(&council);
    finish(&h);
}

/*  One agency's approvals are bounded a second and a report: past them,
 *  Error LIMIT, and nothing released, while other agencies carry on. */
static void test_approvals_are_limited(void **state)
{
    (void)state;
    harness_t *h = harness_new();
    assert_non_null(h);
    assert_true(harness_add_councils(h, 40)); /* names enough to pass a report's limit */
    assert_true(harness_start(h, NULL));
    publish_held(h, "held-3", "5");
    cv_client_t *police = sender_of(h, "hum-bcu-hull");
    int limited = 0;
    for (int i = 0; i < 25; i++) {
        cv_approval_result_t result;
        cv_error_t err = {0};
        if (cv_client_approve(police, "no-such-report", "hull-cc", &result, 5000, &err) < 0 &&
            err.broker_code == E_LIMIT)
            limited++;
        cv_approval_result_clear(&result);
    }
    assert_true(limited >= 5); /* 25 in well under a second: at most 20 taken */
    /* meanwhile the rest of the police's traffic, and everyone else's, goes on */
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    publish_held(h, "routine-2", "2");
    assert_receives(council, "routine-2");
    zclock_sleep(1000);

    /* a report may be approved to 32 agencies or types, no more */
    char name[32];
    for (int i = 0; i < 33; i++) {
        if (i % 10 == 9)
            zclock_sleep(1000); /* within the rate */
        snprintf(name, sizeof name, "council-%d", i);
        if (i < 32) {
            approved(h, "held-3", name);
            continue;
        }
        refused(h, "hum-bcu-hull", "held-3", name, E_LIMIT);
    }
    /* a refusal, logged as every other */
    assert_int_equal(log_lines_with(h, "approval from hum-bcu-hull refused: a report may be "
                                       "approved to at most 32 agencies or types"),
                     1);
    /* the council was never approved: it never gets the report */
    assert_nothing_arrives(council, 300);
    zclock_sleep(1000);
    assert_string_equal(approved(h, "held-3", "council-0"), ""); /* known: not over the limit */
    cv_client_destroy(&council);
    cv_client_destroy(&police);
    finish(&h);
}

static void send_approval(zsock_t *dealer, const char *id, const char *to)
{
    Caveat__Wire__Approval approval = CAVEAT__WIRE__APPROVAL__INIT;
    approval.report_id = (char *)id;
    approval.to = (char *)to;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_APPROVAL;
    frame.approval = &approval;
    send_frame(dealer, &frame);
}

/*  The frames the broker sends dealer until it is quiet for a second. */
static int answers_until_quiet(zsock_t *dealer)
{
    int answers = 0;
    Caveat__Wire__Frame *frame;
    while ((frame = next_frame_within(dealer, 1000))) {
        answers++;
        caveat__wire__frame__free_unpacked(frame, NULL);
    }
    return answers;
}

/*  An originator that floods approvals is answered within the broker's
 *  cap on Errors to one agency, as a flood of feedback is, not once a
 *  frame: a second's answers are its 10 approvals taken (each refused
 *  here, with its log line) and at most 20 LIMITs. Meanwhile another
 *  police agency's approval is taken and releases its report. */
static void test_a_flood_of_approvals_is_answered_within_the_error_cap(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *council = client(h, "nel-council", NULL, 0);
    publish_held_by(h, "hum-bcu-nel", "ne-lincs", "held-nel", "5");
    zsock_t *raw = raw_session(h, "hum-bcu-hull");
    enum { FLOOD = 400 };
    int64_t start = zclock_mono();
    for (int i = 0; i < FLOOD; i++)
        send_approval(raw, "no-such-report", "hull-cc");

    char released[512];
    uint32_t code = 0;
    assert_int_equal(
        approve_as(h, "hum-bcu-nel", "held-nel", "nel-council", released, sizeof released, &code),
        0);
    assert_string_equal(released, "nel-council");
    assert_receives(council, "held-nel");

    int answers = answers_until_quiet(raw);
    /* the seconds the answers could fall in: the flood's, and one more */
    int64_t seconds = (zclock_mono() - start) / 1000 + 1;
    if (answers > seconds * (10 + 20))
        print_error("%d answers to %d approvals in %lld seconds\n", answers, FLOOD,
                    (long long)seconds);
    assert_true(answers <= seconds * (10 + 20));
    assert_true(answers >= 10); /* the first second's are answered */
    assert_true(log_lines_with(h, "approval from hum-bcu-hull") <= seconds * 20);
    assert_true(stat_of(h, "limited") >= FLOOD - seconds * 10);
    zsock_destroy(&raw);
    cv_client_destroy(&council);
    finish(&h);
}

/*  The police's approval of id to the council, answered
 *  REFUSED_UNAVAILABLE with a reason that says why, releasing nobody. */
static void approval_unavailable(cv_client_t *police, const char *id, const char *why)
{
    cv_approval_result_t result;
    cv_error_t err = {0};
    assert_int_equal(cv_client_approve(police, id, "hull-cc", &result, 5000, &err), 1);
    assert_int_equal(result.status, CV_PUBLISH_REFUSED_UNAVAILABLE);
    assert_non_null(strstr(result.reason, why));
    assert_int_equal(result.n_recipients, 0);
    cv_approval_result_clear(&result);
}

/*  The same approval sent again is taken: the council, and it alone, gets
 *  the report. Both clients are destroyed. */
static void approval_released_to_council(cv_client_t *police, cv_client_t *council, const char *id)
{
    cv_approval_result_t result;
    cv_error_t err = {0};
    assert_int_equal(cv_client_approve(police, id, "hull-cc", &result, 5000, &err), 0);
    assert_int_equal(result.n_recipients, 1);
    cv_approval_result_clear(&result);
    assert_receives(council, id);
    cv_client_destroy(&police);
    cv_client_destroy(&council);
}

/*  An approval of id whose turn cannot commit, the store failing as
 *  trigger_on (a table) makes it: the answer says so (send it again),
 *  nobody gets the report, and the log does not say it released anyone;
 *  sent again once the store takes writes, it releases the report and is
 *  logged once. */
static void approval_rolled_back(const char *trigger_on, const char *id)
{
    harness_t *h = started();
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    publish_held(h, id, "5");
    char sql[256], line[128];
    snprintf(sql, sizeof sql,
             "CREATE TRIGGER fail BEFORE INSERT ON %s BEGIN SELECT RAISE(ABORT, 'injected'); END",
             trigger_on);
    store_sql(h, sql);
    cv_client_t *police = sender_of(h, "hum-bcu-hull");
    approval_unavailable(police, id, "retry");
    assert_nothing_arrives(council, 500);
    assert_true(log_lines_with(h, "the turn is rolled back") > 0);
    snprintf(line, sizeof line, "approval from hum-bcu-hull: %s released", id);
    assert_int_equal(log_lines_with(h, line), 0);
    store_sql(h, "DROP TRIGGER fail");
    approval_released_to_council(police, council, id);
    assert_int_equal(log_lines_with(h, line), 1);
    finish(&h);
}

/*  A write of the approval itself fails. */
static void test_an_approval_the_store_cannot_take_is_answered_unavailable(void **state)
{
    (void)state;
    approval_rolled_back("approval_releases", "held-5");
}

/*  The turn fails after the approval was handled: its audit leaf, written
 *  at the turn's end, cannot be. */
static void test_an_approval_rolled_back_is_not_logged(void **state)
{
    (void)state;
    approval_rolled_back("tlog_leaves", "held-8");
}

/*  While the disk is short an approval is not taken (it would write rows
 *  and a leaf into the reserve kept for deliveries): answered
 *  REFUSED_UNAVAILABLE at once, nothing released; sent again once there
 *  is room, it releases the report. */
static void test_an_approval_waits_while_the_disk_is_short(void **state)
{
    (void)state;
    harness_t *h = started_on_a_small_disk(24 * 1024 * 1024, "2");
    publish_held(h, "held-6", "5");
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    disk_filled(h);
    cv_client_t *police = sender_of(h, "hum-bcu-hull");
    approval_unavailable(police, "held-6", "disk is full");
    assert_nothing_arrives(council, 300);

    harness_free_disk(h);
    zclock_sleep(300);
    approval_released_to_council(police, council, "held-6");
    finish(&h);
}

/*  `caveat approve ID --to WHO` as agency, its exit status; stdout and
 *  stderr together in out. */
static int approve_cli(harness_t *h, const char *agency, const char *id, const char *to, char *out,
                       size_t size)
{
    char cert[1024], command[4096];
    snprintf(cert, sizeof cert, "%s.cert_secret", agency);
    snprintf(cert, sizeof cert, "%s", harness_path(h, cert));
    snprintf(command, sizeof command,
             "'%s' approve '%s' --to '%s' --broker '%s' --server-key '%s' --cert '%s' 2>&1",
             CAVEAT_CLI, id, to, harness_endpoint(h), harness_path(h, "broker.cert"), cert);
    return command_output(command, out, size);
}

/*  The command line: the agencies released on stdout; a refusal in one
 *  line on stderr, exit 1. */
static void test_the_command_line_approves(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    publish_held(h, "held-4", "5");
    char out[4096];
    assert_int_equal(approve_cli(h, "hum-bcu-hull", "held-4", "local_authority", out, sizeof out),
                     0);
    assert_string_equal(out, "hull-cc\n");
    assert_receives(council, "held-4");
    assert_int_equal(approve_cli(h, "hum-bcu-nel", "held-4", "hull-cc", out, sizeof out), 1);
    assert_string_equal(out, "caveat: broker: BAD_REQUEST: no such report of this agency\n");
    assert_nothing_arrives(council, 300);
    cv_client_destroy(&council);
    finish(&h);
}

/*  `caveat audit VERB DATA REST` on h's data directory, into out. */
static int audit_of(harness_t *h, const char *verb, const char *rest, char *out, size_t size)
{
    char args[2048];
    snprintf(args, sizeof args, "%s '%s' %s", verb, harness_path(h, "data"), rest);
    return audit_cli(args, out, size);
}

/*  Oversight counts what an approval shared: the summary counts a held
 *  report under the organisation of each agency an approval released it
 *  to, and a sample shows each release with the fields it gave. */
static void test_oversight_sees_releases_by_approval(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    publish_held(h, "held-5", "5");
    assert_string_equal(approved(h, "held-5", "hull-cc"), "hull-cc");
    assert_receives(council, "held-5");
    cv_client_destroy(&council);
    assert_true(harness_stop(h));

    static char out[65536];
    assert_int_equal(audit_of(h, "summary", "", out, sizeof out), 0);
    assert_non_null(strstr(out, "\nvulnerable_individual  hull-city-council  1\n"));
    assert_non_null(strstr(out, "1 reports accepted, 1 shared with at least one organisation"));
    assert_int_equal(audit_of(h, "summary", "--format json", out, sizeof out), 0);
    assert_non_null(strstr(out, "\"category\": \"vulnerable_individual\",\n"
                                "      \"organisation\": \"hull-city-council\",\n"
                                "      \"reports\": 1"));
    /* the report was accepted before the period: it was shared in it */
    assert_int_equal(audit_of(h, "summary", "--since 2999-01-01", out, sizeof out), 0);
    assert_non_null(strstr(out, "0 reports accepted, 0 shared"));

    assert_int_equal(audit_of(h, "sample", "--count 1", out, sizeof out), 0);
    const char *approval = strstr(out, "\n  approval at leaf ");
    if (!approval)
        print_error("%s\n", out);
    assert_non_null(approval);
    assert_non_null(strstr(approval, ", to hull-cc, policy humber-prevent version 7, released it "
                                     "to:\n  hull-cc (hull-city-council): delivered under "
                                     "safeguarding-referral\n"));
    assert_non_null(strstr(approval, "\n    masked (year): subjects.date_of_birth\n"));
    assert_non_null(strstr(approval, "\n    withheld: author, "));
    assert_int_equal(audit_of(h, "sample", "--count 1 --format json", out, sizeof out), 0);
    assert_non_null(strstr(out, "\"approvals\": [\n"));
    assert_non_null(strstr(out, "\"event\": \"approval\""));
    harness_destroy(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_only_approved_recipients_get_a_held_report),
        cmocka_unit_test(test_feedback_on_an_approved_release_reaches_the_originator),
        cmocka_unit_test(test_approvals_outlive_a_restart_and_a_reload),
        cmocka_unit_test(test_an_approval_never_resends_what_acceptance_routed),
        cmocka_unit_test(test_refused_approvals_release_nothing),
        cmocka_unit_test(test_approvals_are_limited),
        cmocka_unit_test(test_a_flood_of_approvals_is_answered_within_the_error_cap),
        cmocka_unit_test(test_the_command_line_approves),
        cmocka_unit_test(test_an_approval_the_store_cannot_take_is_answered_unavailable),
        cmocka_unit_test(test_an_approval_rolled_back_is_not_logged),
        cmocka_unit_test(test_an_approval_waits_while_the_disk_is_short),
        cmocka_unit_test(test_oversight_sees_releases_by_approval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
