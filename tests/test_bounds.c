/*  Bounds on what one listed agency can make the broker hold or spend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>

#include "e2e_checks.h"
#include "harness.h"

/*  AddressSanitizer keeps what is freed in a quarantine (256 MB) before
 *  it is used again: there the broker's growth is not what it holds, and
 *  only the connections it ended (its log) are counted. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED true
#else
#define SANITIZED false
#endif

/*  The broker's resident memory, in kB (/proc/PID/status VmRSS). */
static long broker_rss_kb(harness_t *h)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)harness_pid(h));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    fclose(f);
    return kb;
}

/*  An agency that opens connection after connection and reads none: each
 *  says Hello for its queue, which replaces the last connection's session
 *  and is sent again every delivery in flight. What libzmq holds for a
 *  connection (PEER_SNDHWM messages of up to a frame) stays until the
 *  connection goes. The broker keeps two replaced connections of an
 *  agency open (two running copies of a subscriber take turns) and ends
 *  the oldest beyond: after the first few, more connections make it hold
 *  no more. */
static void test_deaf_connections_one_after_another_hold_three_shares(void **state)
{
    (void)state;
    enum { REPORTS = 20, BYTES = 900 * 1000, CONNECTIONS = 10, KEPT = 2 };
    const long share_kb = REPORTS * BYTES / 1000; /* a connection's: 18 MB */
    harness_t *h = started();
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    for (int i = 0; i < REPORTS; i++)
        publish_big(police, BYTES);
    cv_client_destroy(&police);
    zsock_t *deaf[CONNECTIONS];
    long before = broker_rss_kb(h), settled = 0;
    for (int i = 0; i < CONNECTIONS; i++) {
        deaf[i] = deaf_subscriber(h, "hull-cc", 100);
        /* its Hello taken, which ends the oldest connection beyond KEPT:
         * on a busy machine that took more than the second slept below */
        assert_int_equal(log_lines_awaited(h, "session: hull-cc", i + 1, 10000), i + 1);
        zclock_sleep(1000);                  /* all in flight sent to it, unread */
        int ended = i > KEPT ? i - KEPT : 0; /* the live one and KEPT replaced stay */
        assert_int_equal(log_lines_with(h, "a connection of hull-cc ended"), ended);
        if (i == KEPT + 2)
            settled = broker_rss_kb(h);
    }
    long grown = broker_rss_kb(h) - before, later = broker_rss_kb(h) - settled;
    print_message("%d connections that read nothing: the broker grew by %ld kB, %ld kB of it "
                  "after the first %d\n",
                  CONNECTIONS, grown, later, KEPT + 3);
    assert_true(SANITIZED || later < 2 * share_kb);          /* 5 more shares: 90 MB */
    assert_true(SANITIZED || grown < (KEPT + 3) * share_kb); /* 10 shares: 180 MB */
    for (int i = 0; i < CONNECTIONS; i++)
        zsock_destroy(&deaf[i]);
    zclock_sleep(300);
    cv_client_t *council = client(h, "hull-cc", NULL, REPORTS);
    for (int i = 0; i < REPORTS; i++) { /* the queue lost nothing */
        const cv_delivery_t *d = receive(council, 10000);
        assert_non_null(d);
        assert_true(cv_client_ack(council, d->seq, &(cv_error_t){0}));
    }
    cv_client_destroy(&council);
    finish(&h);
}

/*  Two running copies of one subscriber (a mistake, but a common one):
 *  the second's Hello replaces the first's session, and the first's
 *  connection stays. Were it ended, its client would reconnect and say
 *  Hello, ending the second's, and so on without end. */
static void test_two_copies_of_a_subscriber_do_not_end_each_other(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *first = client(h, "hull-cc", NULL, 0);
    cv_client_t *second = client(h, "hull-cc", NULL, 0);
    zclock_sleep(1500); /* a reconnect would come within libzmq's 100 ms */
    assert_int_equal(log_lines_with(h, "session: hull-cc"), 2);
    assert_int_equal(log_lines_with(h, "a connection of hull-cc ended"), 0);
    cv_client_destroy(&first);
    cv_client_destroy(&second);
    finish(&h);
}

/*  Publishes of reports with many empty subjects: 2 bytes each on the wire. */
static void send_subjects_publish(zsock_t *dealer, size_t subjects)
{
    Caveat__Subject *all = calloc(subjects, sizeof *all);
    Caveat__Subject **list = calloc(subjects, sizeof *list);
    for (size_t i = 0; i < subjects; i++) {
        caveat__subject__init(&all[i]);
        list[i] = &all[i];
    }
    Caveat__Report report = CAVEAT__REPORT__INIT;
    report.n_subjects = subjects;
    report.subjects = list;
    Caveat__Report *reports[] = {&report};
    send_publish(dealer, reports, 1);
    free(list);
    free(all);
}

/*  A frame of empty subjects, two bytes each on the wire, unpacked to 66
 *  times its size (a Subject struct and a pointer each), and the cache's
 *  generations counted packed bytes: 12 such frames of 1 MB made the
 *  broker hold some 800 MB. A frame may now take 16 times its size and
 *  1 MiB (this one is refused, BAD_FRAME), and what frames take is what
 *  the generations count. */
static void test_frames_that_unpack_many_times_larger_are_bounded(void **state)
{
    (void)state;
    enum { FRAMES = 12, SUBJECTS = 500000 }; /* about 1 MB a frame */
    harness_t *h = started();
    zsock_t *college = raw_dealer(h, "hull-college");
    send_hello_with(college, 1, NULL, 0);
    assert_int_equal(error_answer(college), 0);
    long before = broker_rss_kb(h);
    for (int i = 0; i < FRAMES; i++)
        send_subjects_publish(college, SUBJECTS);
    send_hello_with(college, 1, NULL, 0); /* answered once all before it were read */
    Caveat__Wire__Frame *ack = frame_of(college, CAVEAT__WIRE__FRAME__BODY_HELLO_ACK);
    assert_non_null(ack);
    caveat__wire__frame__free_unpacked(ack, NULL);
    long grown = broker_rss_kb(h) - before;
    print_message("%d frames of %d empty subjects: the broker grew by %ld kB\n", FRAMES, SUBJECTS,
                  grown);
    assert_true(grown < (SANITIZED ? 600 : 300) * 1024); /* 800 MB without the bound */
    assert_int_equal(stat_of(h, "published") + stat_of(h, "refused"), 0); /* none unpacked */
    zsock_destroy(&college);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    cv_client_t *council = client(h, "hull-cc", NULL, 10);
    publish_big(police, 900 * 1000); /* a report near the largest frame still goes */
    const cv_delivery_t *d = receive(council, 10000);
    assert_non_null(d);
    assert_int_equal(strlen(d->report->narrative), 900 * 1000);
    cv_client_destroy(&council);
    cv_client_destroy(&police);
    finish(&h);
}

/*  A valid report with subjects empty subjects added (2 bytes each on the
 *  wire), or with a narrative of narrative bytes. */
static Caveat__Report *report_of(size_t subjects, size_t narrative)
{
    Caveat__Report *report = harness_report("vulnerable_individual");
    assert_non_null(report);
    free(report->id);
    report->id = NULL;
    if (narrative) {
        free(report->narrative);
        report->narrative = malloc(narrative + 1);
        assert_non_null(report->narrative);
        memset(report->narrative, 'x', narrative);
        report->narrative[narrative] = '\0';
    }
    size_t n = report->n_subjects + subjects;
    report->subjects = realloc(report->subjects, n * sizeof *report->subjects);
    assert_non_null(report->subjects);
    for (size_t i = report->n_subjects; i < n; i++) {
        report->subjects[i] = malloc(sizeof *report->subjects[i]);
        assert_non_null(report->subjects[i]);
        caveat__subject__init(report->subjects[i]);
    }
    report->n_subjects = n;
    return report;
}

/*  A report of 60,000 empty subjects (120 KB on the wire, some 7 MB
 *  unpacked) beside one with a narrative of 850 KB passes the frame's bound,
 *  which covers both together. Stored, it took 7 MB each time it was read
 *  back (an approval naming it, 10 a second, or its delivery to a
 *  subscriber back from a day away) and was counted 120 KB: the cache's
 *  generations held a gigabyte. It is now refused as invalid, the report
 *  beside it stored and delivered, and the sender's session goes on. */
static void test_a_report_that_would_read_back_large_is_refused(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_client_t *council = client(h, "hull-cc", NULL, 10);
    zsock_t *police = raw_dealer(h, "hum-bcu-hull");
    send_hello_with(police, 1, NULL, 0);
    assert_int_equal(error_answer(police), 0);
    Caveat__Report *reports[] = {report_of(60000, 0), report_of(0, 850 * 1000)};
    send_publish(police, reports, 2);
    Caveat__Wire__Frame *ack = frame_of(police, CAVEAT__WIRE__FRAME__BODY_PUBLISH_ACK);
    assert_non_null(ack);
    assert_int_equal(ack->publish_ack->n_results, 2);
    assert_int_equal(ack->publish_ack->results[0]->status, CAVEAT__WIRE__STATUS__REFUSED_INVALID);
    assert_non_null(strstr(ack->publish_ack->results[0]->reason, "16 times its size"));
    assert_int_equal(ack->publish_ack->results[1]->status, CAVEAT__WIRE__STATUS__OK);
    caveat__wire__frame__free_unpacked(ack, NULL);
    assert_int_equal(stat_of(h, "published"), 1);
    const cv_delivery_t *d = receive(council, 10000);
    assert_non_null(d);
    assert_int_equal(strlen(d->report->narrative), 850 * 1000);
    assert_int_equal(d->report->n_subjects, reports[1]->n_subjects);
    assert_null(receive(council, 500)); /* and nothing of the other */
    for (size_t i = 0; i < 2; i++)
        caveat__report__free_unpacked(reports[i], NULL);
    send_hello_with(police, 1, NULL, 0); /* the sender carries on */
    assert_int_equal(error_answer(police), 0);
    zsock_destroy(&police);
    cv_client_destroy(&council);
    finish(&h);
}

/*  Publishes n reports of the police BCU, one a call, each of subjects
 *  empty subjects more and a narrative of narrative bytes. */
static void publish_dense(harness_t *h, int n, size_t subjects, size_t narrative)
{
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    Caveat__Report *report = report_of(subjects, narrative);
    for (int i = 0; i < n; i++) {
        cv_publish_result_t result = {0};
        cv_error_t err = {0};
        assert_int_equal(cv_client_publish_one(police, report, &result, 10000, &err), 0);
        assert_int_equal(result.status, CAVEAT__WIRE__STATUS__OK);
        cv_publish_results_clear(&result, 1);
        free(report->id);
        report->id = NULL;
    }
    caveat__report__free_unpacked(report, NULL);
    cv_client_destroy(&police);
}

/*  A backlog of 200 reports for a subscriber away, each of 7,000 empty
 *  subjects and a narrative of 100 KB: 114 KB on the wire and some 1.2 MB
 *  unpacked, within what a report may take read back. When the subscriber
 *  comes back after a restart each is read back from the store, and the
 *  turn's sends stopped only at 16 MB of deliveries: some 140 reports, 170
 *  MB unpacked in one turn, in one generation of the cache. They now stop
 *  at 8 MiB read back, and the backlog goes over more turns. */
static void test_a_backlog_read_back_is_bounded_per_turn(void **state)
{
    (void)state;
    enum { REPORTS = 200, SUBJECTS = 7000, NARRATIVE = 100 * 1000 };
    harness_t *h = started();
    publish_dense(h, REPORTS, SUBJECTS, NARRATIVE);
    assert_true(harness_stop(h)); /* nothing cached: every report is read back */
    assert_true(harness_start(h, NULL));
    long before = broker_rss_kb(h);
    cv_client_t *council = client(h, "hull-cc", NULL, 256);
    for (int i = 0; i < REPORTS; i++) {
        const cv_delivery_t *d = receive(council, 10000);
        assert_non_null(d);
        assert_int_equal(d->report->n_subjects, SUBJECTS + 1);
        assert_true(cv_client_ack(council, d->seq, &(cv_error_t){0}));
    }
    long grown = broker_rss_kb(h) - before;
    print_message("a backlog of %d reports read back: the broker grew by %ld kB\n", REPORTS, grown);
    assert_true(SANITIZED || grown < 180 * 1024); /* 260 MB without the bound */
    cv_client_destroy(&council);
    finish(&h);
}

/*  A subscriber with 200 such reports received and not acknowledged when
 *  the broker stops says Hello after the restart and acknowledges them all
 *  at once, before any is sent again. Their "delivered" leaves name the
 *  view each was sent, so the save that stores the acknowledgement decides
 *  and hashes each view again: all 200 were read back in that one turn and
 *  kept in one generation of the cache (some 250 MB). Past the turn's
 *  read-back bound each is now read, hashed and let go; the receipts show
 *  every view still named. */
static void test_a_save_after_a_restart_reads_back_within_the_bound(void **state)
{
    (void)state;
    enum { REPORTS = 200, SUBJECTS = 7000, NARRATIVE = 100 * 1000 };
    harness_t *h = started();
    publish_dense(h, REPORTS, SUBJECTS, NARRATIVE);
    zsock_t *council = raw_subscriber(h, "hull-cc", 256, false);
    uint64_t top = 0;
    while (top < REPORTS) { /* received, never acknowledged */
        Caveat__Wire__Frame *got = frame_of(council, CAVEAT__WIRE__FRAME__BODY_DELIVER);
        assert_non_null(got);
        for (size_t i = 0; i < got->deliver->n_deliveries; i++)
            if (got->deliver->deliveries[i]->seq > top)
                top = got->deliver->deliveries[i]->seq;
        caveat__wire__frame__free_unpacked(got, NULL);
    }
    zsock_destroy(&council);
    assert_true(harness_stop(h));
    assert_true(harness_start(h, NULL));

    long before = broker_rss_kb(h);
    council = raw_subscriber(h, "hull-cc", 256, true);
    send_ack(council, REPORTS, -1); /* in the Hello's turn, before any resend */
    int receipts = 0, viewed = 0;
    zsock_set_rcvtimeo(council, 10000);
    Caveat__Wire__Frame *answer;
    while (receipts < REPORTS && (answer = frame_of(council, CAVEAT__WIRE__FRAME__BODY_RECEIPTS))) {
        for (size_t i = 0; i < answer->receipts->n_receipts; i++, receipts++) {
            const ProtobufCBinaryData *leaf = &answer->receipts->receipts[i]->leaf;
            char *text = strndup((const char *)leaf->data, leaf->len);
            viewed += strstr(text, "\"view\"") != NULL;
            free(text);
        }
        caveat__wire__frame__free_unpacked(answer, NULL);
    }
    long grown = broker_rss_kb(h) - before;
    print_message("%d deliveries acknowledged after a restart: the broker grew by %ld kB\n",
                  REPORTS, grown);
    assert_int_equal(receipts, REPORTS);
    assert_int_equal(viewed, REPORTS);
    assert_true(SANITIZED || grown < 120 * 1024);
    zsock_destroy(&council);
    finish(&h);
}

/*  CPU time the broker's loop (its main thread) has used, in ms. */
static long loop_cpu_ms(harness_t *h)
{
    char path[96], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)harness_pid(h), (int)harness_pid(h));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    long utime = 0, stime = 0;
    const char *after = strrchr(buf, ')'); /* the name may hold spaces */
    assert_non_null(after);
    assert_int_equal(
        sscanf(after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime),
        2);
    return (utime + stime) * 1000 / sysconf(_SC_CLK_TCK);
}

/*  A session with receipts that has acknowledged more deliveries than
 *  CV_RECEIPTS_WAITING (4,096) before a checkpoint lets their receipts go
 *  is sent nothing more meanwhile, with its queue not empty. It stayed
 *  on the pending list, dirty with credit, and the loop turned without
 *  pause until the receipts went (some 300 ms at 100% of a core, each
 *  time): the loop now waits for them idle. */
static void test_a_subscriber_held_back_by_its_receipts_costs_no_spin(void **state)
{
    (void)state;
    enum { N = 6000, HELD = 4096 };
    harness_t *h = started();
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    Caveat__Report **reports = calloc(N, sizeof *reports);
    cv_publish_result_t *results = calloc(N, sizeof *results);
    assert_non_null(reports);
    assert_non_null(results);
    for (int i = 0; i < N; i++) {
        reports[i] = harness_report("vulnerable_individual");
        free(reports[i]->id);
        reports[i]->id = NULL;
    }
    cv_error_t err = {0};
    assert_int_equal(
        cv_client_publish(police, (const Caveat__Report *const *)reports, N, results, 60000, &err),
        0);
    cv_publish_results_clear(results, N);
    for (int i = 0; i < N; i++)
        caveat__report__free_unpacked(reports[i], NULL);
    free(reports);
    free(results);
    cv_client_destroy(&police);
    zclock_sleep(1500); /* the store settles */

    zsock_t *council = raw_subscriber(h, "hull-cc", 500, true);
    uint64_t top = 0;
    long held_from = -1, held_cpu = 0, held_ms = 0, held_turns = 0;
    for (;;) { /* acknowledges each Deliver as it comes, until receipts come */
        Caveat__Wire__Frame *got = next_frame_within(council, 5000);
        assert_non_null(got);
        bool receipts = got->body_case == CAVEAT__WIRE__FRAME__BODY_RECEIPTS;
        if (got->body_case == CAVEAT__WIRE__FRAME__BODY_DELIVER) {
            for (size_t i = 0; i < got->deliver->n_deliveries; i++)
                if (got->deliver->deliveries[i]->seq > top)
                    top = got->deliver->deliveries[i]->seq;
            send_ack(council, top, -1);
            if (held_from < 0 && top >= HELD) { /* its receipts hold it from about here */
                held_from = (long)zclock_mono();
                held_cpu = loop_cpu_ms(h);
                held_turns = stat_of(h, "turns");
            }
        }
        caveat__wire__frame__free_unpacked(got, NULL);
        if (receipts && held_from >= 0) /* earlier ones: a checkpoint came first */
            break;
    }
    held_ms = (long)zclock_mono() - held_from;
    held_cpu = loop_cpu_ms(h) - held_cpu;
    held_turns = stat_of(h, "turns") - held_turns;
    print_message("held back by its receipts for %ld ms: the loop used %ld ms of CPU in %ld "
                  "turns\n",
                  held_ms, held_cpu, held_turns);
    /* the checkpoint for them comes 200 ms after the first acknowledgement:
     * a machine that took most of that to acknowledge HELD deliveries (a
     * sanitizer build beside other tests), or that kept up with N, held
     * it too briefly to tell a spin from a turn's work */
    if (top >= N || held_ms < 100) {
        zsock_destroy(&council);
        finish(&h);
        skip();
    }
    /* counted in turns, not CPU: a build with sanitizers takes the proofs'
     * CPU for a spin. A spin turns thousands of times; the work, tens */
    assert_true(held_turns < held_ms / 4);
    zsock_destroy(&council);
    finish(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deaf_connections_one_after_another_hold_three_shares),
        cmocka_unit_test(test_two_copies_of_a_subscriber_do_not_end_each_other),
        cmocka_unit_test(test_frames_that_unpack_many_times_larger_are_bounded),
        cmocka_unit_test(test_a_report_that_would_read_back_large_is_refused),
        cmocka_unit_test(test_a_backlog_read_back_is_bounded_per_turn),
        cmocka_unit_test(test_a_save_after_a_restart_reads_back_within_the_bound),
        cmocka_unit_test(test_a_subscriber_held_back_by_its_receipts_costs_no_spin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
