/*  Faults around the broker: another process reading the store, peers
 *  that go away. The real caveatd, driven through libcaveat.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>
#include <sqlite3.h>

#include "e2e_checks.h"
#include "harness.h"

/*  Publishes n new example reports in one call: one turn routes them all. */
static void publish_batch(harness_t *h, int n)
{
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    Caveat__Report **reports = calloc((size_t)n, sizeof *reports);
    cv_publish_result_t *results = calloc((size_t)n, sizeof *results);
    for (int i = 0; i < n; i++) {
        reports[i] = harness_report("vulnerable_individual");
        free(reports[i]->id);
        reports[i]->id = NULL;
    }
    cv_error_t err = {0};
    assert_int_equal(cv_client_publish(police, (const Caveat__Report *const *)reports, (size_t)n,
                                       results, 10000, &err),
                     0);
    cv_publish_results_clear(results, (size_t)n);
    for (int i = 0; i < n; i++)
        caveat__report__free_unpacked(reports[i], NULL);
    free(reports);
    free(results);
    cv_client_destroy(&police);
}

/*  What an operator does with the documented tables: another process
 *  opens the store read-write, counts the reports and closes it. */
static void count_reports_from_another_process(harness_t *h)
{
    char path[600];
    snprintf(path, sizeof path, "%s/caveat.db", harness_path(h, "data"));
    pid_t pid = fork();
    if (pid == 0) {
        sqlite3 *db = NULL;
        int ok = sqlite3_open(path, &db) == SQLITE_OK &&
                 sqlite3_exec(db, "SELECT count(*) FROM reports", NULL, NULL, NULL) == SQLITE_OK;
        sqlite3_close(db);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*  Closing any descriptor of a file drops every POSIX lock the process
 *  holds on it, SQLite's included; a broker that once did so at start
 *  let a reader delete the WAL under it, and a crash then lost what it
 *  had acknowledged. Now: read the store from another process while the
 *  broker runs, publish, kill the broker: nothing acknowledged is lost. */
static void test_a_reader_of_the_store_loses_nothing(void **state)
{
    (void)state;
    harness_t *h = started();
    publish_examples(h, 5);
    count_reports_from_another_process(h);
    publish_examples(h, 20);
    count_reports_from_another_process(h);
    publish_examples(h, 5);
    harness_kill(h);
    assert_true(harness_start(h, NULL));

    cv_client_t *council = client(h, "hull-cc", NULL, 100);
    int received = 0;
    const cv_delivery_t *d;
    cv_error_t err = {0};
    while ((d = receive(council, 2000)) != NULL) {
        received++;
        assert_true(cv_client_ack(council, d->seq, &err));
    }
    assert_int_equal(received, 30);
    cv_client_destroy(&council);
    finish(&h);
}

/* ------------------------------------------------------------------------ */
/*  Departed peers.                                                         */

enum { COUNCILS = 200 };

/*  COUNCILS subscribers say Hello and stay without reading: 200 reports to
 *  each is about 28 MB of deliveries, which go out over several turns,
 *  never all waiting for their sync at once. Then they go without a word:
 *  their sessions end with their connections (the broker reads libzmq's
 *  monitor), nothing is resent to them once they are gone, and what they
 *  did not acknowledge stays for when they come back. */
static void test_departed_subscribers_end_their_sessions(void **state)
{
    (void)state;
    harness_t *h = harness_new();
    assert_non_null(h);
    assert_true(harness_add_councils(h, COUNCILS));
    /* 3 s: packing and sending 28 MB on a busy 2-core machine takes most
     * of a second, and every delivery's view is hashed for its audit leaf
     * as it is packed */
    const char *const extra[] = {"--ack-timeout", "3", NULL};
    assert_true(harness_start(h, extra));
    zsock_t *councils[COUNCILS];
    for (int i = 0; i < COUNCILS; i++) {
        char agency[32];
        snprintf(agency, sizeof agency, "council-%d", i);
        councils[i] = raw_dealer(h, agency);
        send_hello_with(councils[i], 1, NULL, 200);
        assert_int_equal(error_answer(councils[i]), 0);
    }
    assert_int_equal(stat_of(h, "sessions"), COUNCILS);
    publish_batch(h, 200);
    zclock_sleep(1000);
    assert_true(stat_of(h, "delivered") > 0);
    assert_true(stat_of(h, "out_bytes_peak") <= 16 * 1024 * 1024 + 512 * 1024);
    for (int i = 0; i < COUNCILS; i++)
        zsock_destroy(&councils[i]);
    /* the connections are gone, and their sessions, long before the ack
     * timeout could end them */
    assert_int_equal(stat_awaited(h, "sessions", 0, 1000), 0);
    /* on a busy machine the ack timeout may pass before they go, and what
     * they left unacknowledged be resent to them then; never after */
    long resent = stat_of(h, "resent");
    zclock_sleep(3500); /* past the ack timeout */
    assert_int_equal(stat_of(h, "resent"), resent);

    cv_client_t *back = client(h, "council-7", NULL, 10);
    const cv_delivery_t *d = receive(back, 5000);
    assert_non_null(d); /* kept for it */
    cv_client_destroy(&back);
    finish(&h);
}

/*  Publishes n reports of the police BCU, one a call (one a turn, so one
 *  delivery message each), each with a narrative of narrative bytes. */
static void publish_sized(harness_t *h, int n, size_t narrative)
{
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    Caveat__Report *report = harness_report("vulnerable_individual");
    free(report->narrative);
    report->narrative = malloc(narrative + 1);
    memset(report->narrative, 'x', narrative);
    report->narrative[narrative] = '\0';
    for (int i = 0; i < n; i++) {
        free(report->id);
        report->id = NULL;
        cv_publish_result_t result = {0};
        cv_error_t err = {0};
        assert_int_equal(cv_client_publish_one(police, report, &result, 10000, &err), 0);
        cv_publish_results_clear(&result, 1);
    }
    caveat__report__free_unpacked(report, NULL);
    cv_client_destroy(&police);
}

/*  Receives Deliver frames on a raw dealer until highest reaches want or
 *  timeout_ms pass, as a client does: a seq at or below the highest is
 *  dropped, and the next must be exactly one more (no gap). */
static uint64_t receive_in_order(zsock_t *dealer, uint64_t want, int timeout_ms)
{
    uint64_t highest = 0;
    int64_t until = zclock_mono() + timeout_ms;
    zsock_set_rcvtimeo(dealer, 500);
    while (highest < want && zclock_mono() < until) {
        zframe_t *f = zframe_recv(dealer);
        Caveat__Wire__Frame *frame =
            f ? caveat__wire__frame__unpack(NULL, zframe_size(f), zframe_data(f)) : NULL;
        zframe_destroy(&f);
        for (size_t i = 0; frame && frame->body_case == CAVEAT__WIRE__FRAME__BODY_DELIVER &&
                           i < frame->deliver->n_deliveries;
             i++) {
            uint64_t seq = frame->deliver->deliveries[i]->seq;
            if (seq > highest + 1)
                print_error("seq %llu after %llu: a gap\n", (unsigned long long)seq,
                            (unsigned long long)highest);
            assert_true(seq <= highest + 1);
            highest = seq > highest ? seq : highest;
        }
        caveat__wire__frame__free_unpacked(frame, NULL);
    }
    return highest;
}

/*  A reader that stops reading with a large credit. Its kernel buffer is
 *  small, big deliveries fill the broker's side of the connection, and
 *  then small ones fill the PEER_SNDHWM messages libzmq queues for it:
 *  the broker's next sends fail (counted as dropped). The session pauses
 *  and then sends again all it has in flight, in seq order, so once the
 *  reader reads again it gets every report, with no gap in its seqs,
 *  although some were dropped on the way. */
static void test_a_full_connection_gets_everything_in_order(void **state)
{
    (void)state;
    enum { BIG = 12, SMALL = 200 };
    harness_t *h = started_with(NULL);
    zsock_t *council = deaf_subscriber(h, "hull-cc", 10000);
    assert_int_equal(error_answer(council), 0);
    publish_sized(h, BIG, 400 * 1024); /* past the 4 MB a loopback send buffer grows to */
    publish_sized(h, SMALL, 100);
    for (int waited = 0; stat_of(h, "dropped") == 0 && waited < 10000; waited += 200)
        zclock_sleep(200);
    assert_true(stat_of(h, "dropped") > 0); /* the path under test was taken */
    assert_int_equal(receive_in_order(council, BIG + SMALL, 20000), BIG + SMALL);
    zsock_destroy(&council);
    finish(&h);
}

/*  Publishes one new example report as agency: its status. *reason (may
 *  be NULL) gets a copy of the broker's reason. */
static int publish_one(harness_t *h, const char *agency, char **reason)
{
    cv_client_t *c = sender_of(h, agency);
    Caveat__Report *report = harness_report("vulnerable_individual");
    free(report->id);
    report->id = NULL;
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    int refused = cv_client_publish_one(c, report, &result, 10000, &err);
    if (refused < 0)
        print_error("publish: %s\n", err.msg);
    assert_true(refused >= 0);
    int status = result.status;
    if (reason)
        *reason = strdup(result.reason ? result.reason : "");
    cv_publish_results_clear(&result, 1);
    caveat__report__free_unpacked(report, NULL);
    cv_client_destroy(&c);
    return status;
}

/*  Receives and acknowledges deliveries until none comes for timeout_ms:
 *  how many. */
static int receive_all(cv_client_t *c, int timeout_ms)
{
    int n = 0;
    const cv_delivery_t *d;
    while ((d = receive(c, timeout_ms))) {
        cv_error_t err = {0};
        assert_true(cv_client_ack(c, d->seq, &err));
        n++;
    }
    return n;
}

/*  A connection that never reads, and sends an acknowledgement of nothing
 *  (up_to 0) now and then. Only an acknowledgement of something new shows
 *  that a client reads: the empty ones kept the connection's stall from
 *  ever reaching the ack timeout, so the session never ended, and every
 *  pause's end packed and tried its window again. The session now ends
 *  once full for the ack timeout, and Special Branch is served
 *  throughout. */
static void test_acknowledgements_of_nothing_do_not_keep_a_full_connection(void **state)
{
    (void)state;
    const char *const extra[] = {"--ack-timeout", "1", NULL};
    harness_t *h = started_with(extra);
    zsock_t *deaf = deaf_subscriber(h, "hull-cc", 10000);
    assert_int_equal(error_answer(deaf), 0);
    cv_client_t *other = client(h, "hum-sb", NULL, 100);
    publish_sized(h, 12, 400 * 1024); /* fills it, as in the test above */
    publish_sized(h, 200, 100);
    for (int waited = 0; stat_of(h, "dropped") == 0 && waited < 10000; waited += 200)
        zclock_sleep(200);
    assert_true(stat_of(h, "dropped") > 0); /* its connection is full */
    /* four ack timeouts of acknowledgements of nothing, Special Branch
     * reading meanwhile */
    int got = 0;
    int64_t until = zclock_mono() + 4000, next_ack = 0;
    while (zclock_mono() < until && log_lines_with(h, "takes nothing more") == 0) {
        if (zclock_mono() >= next_ack) {
            send_ack(deaf, 0, -1);
            next_ack = zclock_mono() + 250;
        }
        const cv_delivery_t *d = receive(other, 50);
        if (d && ++got)
            assert_true(cv_client_ack(other, d->seq, &(cv_error_t){0}));
    }
    assert_int_equal(log_lines_with(h, "session of hull-cc ended: its connection takes nothing"),
                     1);
    assert_int_equal(got + receive_all(other, 2000), 12 + 200);
    cv_client_destroy(&other);
    zsock_destroy(&deaf);
    finish(&h);
}

/*  Room for the backlog's WAL beside 2 x reserve + 1 MB to resume at. The
 *  WAL's file keeps the largest size it reached, and how large that is
 *  depends on when the checkpointer thread got to run: its 300 commits of
 *  16 KB pages passed the 16 MB at which a checkpoint is asked for, and
 *  reached 17 to 27 MB on a busy machine. On a 24 MB disk they left too
 *  little free to resume at, or to publish the backlog at all. */
#define SMALL_DISK (64 * 1024 * 1024)
#define BACKLOG    300

/*  The disk under the store fills while a backlog waits for the council.
 *  Publishes are refused, saying why; the council still gets every stored
 *  report, and its acknowledgements hold across a crash; the stats count
 *  what was refused as refused; once there is room again, publishes are
 *  taken again. A 64 MB tmpfs, a 2 MB reserve. */
static void test_a_full_disk_stops_publishes_not_deliveries(void **state)
{
    (void)state;
    harness_t *h = started_on_a_small_disk(SMALL_DISK, "2");
    publish_examples(h, BACKLOG);
    assert_int_equal(stat_of(h, "disk_short"), 0);

    disk_filled(h);
    char *reason = NULL;
    assert_int_equal(publish_one(h, "hum-bcu-hull", &reason),
                     CAVEAT__WIRE__STATUS__REFUSED_UNAVAILABLE);
    assert_non_null(strstr(reason, "disk is full"));
    free(reason);
    assert_int_equal(stat_of(h, "disk_short"), 1);

    cv_client_t *council = client(h, "hull-cc", NULL, 50);
    assert_int_equal(receive_all(council, 2000), BACKLOG);
    cv_client_destroy(&council);
    assert_int_equal(stat_of(h, "published"), BACKLOG);
    assert_true(stat_of(h, "refused_no_space") >= 1);
    zclock_sleep(500); /* the acknowledgements are saved within 100 ms */
    harness_kill(h);

    /* a start on the full disk, and nothing acknowledged comes back */
    const char *const extra[] = {"--disk-reserve", "2", NULL};
    assert_true(harness_start(h, extra));
    council = client(h, "hull-cc", NULL, 50);
    assert_nothing_arrives(council, 1000);
    cv_client_destroy(&council);

    harness_free_disk(h);
    zclock_sleep(300);
    assert_int_equal(publish_one(h, "hum-bcu-hull", NULL), CAVEAT__WIRE__STATUS__OK);
    assert_int_equal(stat_of(h, "disk_short"), 0);
    finish(&h);
}

/*  With no reserve left from an earlier run, a broker cannot start on a
 *  full disk: it says so, rather than blame the store. */
static void test_a_start_on_a_full_disk_says_so(void **state)
{
    (void)state;
    harness_t *h = on_a_small_disk(4 * 1024 * 1024);
    assert_true(harness_fill_disk(h) > 0);
    assert_false(harness_start(h, NULL));
    assert_int_equal(log_lines_with(h, "is full (0 bytes free)"), 1);
    harness_destroy(&h);
}

/*  Reports of a new id each: three, the middle one with id "poison". */
static void publish_three(harness_t *h, int statuses[3])
{
    cv_client_t *c = sender_of(h, "hum-bcu-hull");
    Caveat__Report *reports[3];
    for (int i = 0; i < 3; i++) {
        reports[i] = harness_report("vulnerable_individual");
        free(reports[i]->id);
        reports[i]->id = i == 1 ? strdup("poison") : NULL;
    }
    cv_publish_result_t results[3] = {{0}};
    cv_error_t err = {0};
    assert_true(
        cv_client_publish(c, (const Caveat__Report *const *)reports, 3, results, 10000, &err) >= 0);
    for (int i = 0; i < 3; i++) {
        statuses[i] = results[i].status;
        caveat__report__free_unpacked(reports[i], NULL);
    }
    cv_publish_results_clear(results, 3);
    cv_client_destroy(&c);
}

/*  A write that fails (here a trigger, as a full disk or an I/O error
 *  would) refuses the report that needed it, not the others handled in
 *  the same transaction. */
static void test_a_failed_write_refuses_only_its_report(void **state)
{
    (void)state;
    harness_t *h = started();
    store_sql(h, "CREATE TRIGGER poison BEFORE INSERT ON reports WHEN NEW.id = 'poison'"
                 " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    int statuses[3];
    publish_three(h, statuses);
    assert_int_equal(statuses[0], CAVEAT__WIRE__STATUS__OK);
    assert_int_equal(statuses[1], CAVEAT__WIRE__STATUS__REFUSED_UNAVAILABLE);
    assert_int_equal(statuses[2], CAVEAT__WIRE__STATUS__OK);
    assert_int_equal(stat_of(h, "published"), 2);
    assert_int_equal(stat_of(h, "refused"), 1);
    cv_client_t *council = client(h, "hull-cc", NULL, 10);
    assert_int_equal(receive_all(council, 1000), 2);
    cv_client_destroy(&council);
    finish(&h);
}

/*  A turn that cannot commit refuses its publishes as unavailable, even
 *  those stored before the write that failed (here the council's
 *  delivery, pumped in the same turn), and the stats count them as
 *  refused, not as published; the log (--verbose: a report stored has
 *  its debug line) does not say it was stored. */
static void test_a_failed_turn_counts_its_publishes_refused(void **state)
{
    (void)state;
    const char *const verbose[] = {"--verbose", NULL};
    harness_t *h = started_with(verbose);
    cv_client_t *council = client(h, "hull-cc", NULL, 10);
    store_sql(h, "CREATE TRIGGER fail BEFORE INSERT ON sent"
                 " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    char *reason = NULL;
    assert_int_equal(publish_one(h, "hum-bcu-hull", &reason),
                     CAVEAT__WIRE__STATUS__REFUSED_UNAVAILABLE);
    assert_non_null(strstr(reason, "retry"));
    free(reason);
    assert_int_equal(stat_of(h, "published"), 0);
    assert_int_equal(stat_of(h, "refused"), 1);
    assert_int_equal(log_lines_with(h, " stored"), 0);
    store_sql(h, "DROP TRIGGER fail");
    assert_int_equal(publish_one(h, "hum-bcu-hull", NULL), CAVEAT__WIRE__STATUS__OK);
    assert_int_equal(receive_all(council, 1000), 1); /* the refused one was never stored */
    assert_int_equal(log_lines_with(h, " stored"), 1);
    cv_client_destroy(&council);
    finish(&h);
}

/*  Receives n deliveries, acknowledging each: the last seq. */
static uint64_t receive_n(cv_client_t *c, int n)
{
    uint64_t seq = 0;
    for (int i = 0; i < n; i++) {
        const cv_delivery_t *d = receive(c, 5000);
        assert_non_null(d);
        seq = d->seq;
        cv_error_t err = {0};
        assert_true(cv_client_ack(c, seq, &err));
    }
    return seq;
}

/*  The HTTP status caveatd --monitor answers for path (the port from its
 *  log line), or 0. */
static int monitor_status(harness_t *h, const char *path)
{
    FILE *log = fopen(harness_path(h, "broker.log"), "r");
    assert_non_null(log);
    char line[4096];
    int port = 0;
    while (!port && fgets(line, sizeof line, log)) {
        const char *at = strstr(line, "monitoring on http://127.0.0.1:");
        if (at)
            port = atoi(at + strlen("monitoring on http://127.0.0.1:"));
    }
    fclose(log);
    assert_true(port > 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int status = 0;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
        char request[128], answer[64] = "";
        int len = snprintf(request, sizeof request, "GET %s HTTP/1.0\r\n\r\n", path);
        if (write(fd, request, (size_t)len) == len && read(fd, answer, sizeof answer - 1) > 0)
            sscanf(answer, "HTTP/%*s %d", &status);
    }
    close(fd);
    return status;
}

/*  Whether /healthz comes to answer status within timeout_ms: the monitor
 *  takes a snapshot a second, and remembers a rollback for 3 s. */
static bool monitor_says(harness_t *h, int status, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 200) {
        if (monitor_status(h, "/healthz") == status)
            return true;
        zclock_sleep(200);
    }
    return false;
}

/*  Acknowledgements made while turns fail (saving a queue fails here) are
 *  the client's word all the same: once the store takes writes again they
 *  are saved, and after a crash nothing acknowledged comes back. The log
 *  says why each turn rolled back, in the store's words. Meanwhile
 *  the monitor's /healthz says the broker is unhealthy, and healthy after. */
static void test_acknowledgements_outlive_failed_turns(void **state)
{
    (void)state;
    const char *const monitor[] = {"--monitor", "0", NULL};
    harness_t *h = started_with(monitor);
    publish_examples(h, 40);
    cv_client_t *council = client(h, "hull-cc", NULL, 10);
    assert_int_equal(receive_n(council, 10), 10);
    zclock_sleep(1200); /* saved, and a snapshot of the counts taken since */
    assert_int_equal(monitor_status(h, "/healthz"), 200);
    store_sql(h, "CREATE TRIGGER fail BEFORE UPDATE ON queues"
                 " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    /* the next ten were sent on the strength of saved acknowledgements;
     * their acknowledgements cannot be saved, and every turn fails */
    assert_int_equal(receive_n(council, 10), 20);
    zclock_sleep(1500);
    assert_true(log_lines_with(h, "the turn is rolled back") > 0);
    assert_true(log_lines_with(h, "injected") > 0); /* with SQLite's own message */
    assert_true(monitor_says(h, 503, 5000));        /* the store is failing */
    store_sql(h, "DROP TRIGGER fail");
    assert_true(monitor_says(h, 200, 10000)); /* saved, and 3 s past the last rollback */
    cv_client_destroy(&council);
    harness_kill(h);
    assert_true(harness_start(h, NULL));
    council = client(h, "hull-cc", NULL, 10);
    const cv_delivery_t *d = receive(council, 5000);
    assert_non_null(d);
    assert_int_equal(d->seq, 21);
    cv_client_destroy(&council);
    finish(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_reader_of_the_store_loses_nothing),
        cmocka_unit_test(test_departed_subscribers_end_their_sessions),
        cmocka_unit_test(test_a_full_connection_gets_everything_in_order),
        cmocka_unit_test(test_acknowledgements_of_nothing_do_not_keep_a_full_connection),
        cmocka_unit_test(test_a_full_disk_stops_publishes_not_deliveries),
        cmocka_unit_test(test_a_start_on_a_full_disk_says_so),
        cmocka_unit_test(test_a_failed_write_refuses_only_its_report),
        cmocka_unit_test(test_a_failed_turn_counts_its_publishes_refused),
        cmocka_unit_test(test_acknowledgements_outlive_failed_turns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
