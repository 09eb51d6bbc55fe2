/*  Bounds on what one listed agency can make the broker hold or spend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>
#include <czmq.h>

#include "e2e_checks.h"
#include "harness.h"

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

static void publish_big(cv_client_t *c, size_t bytes)
{
    Caveat__Report *report = harness_report("vulnerable_individual");
    assert_non_null(report);
    free(report->id);
    report->id = NULL;
    free(report->narrative);
    report->narrative = malloc(bytes + 1);
    memset(report->narrative, 'x', bytes);
    report->narrative[bytes] = '\0';
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    if (cv_client_publish_one(c, report, &result, 20000, &err) != 0)
        fail_msg("publish: %s %s", err.msg, result.reason ? result.reason : "");
    cv_publish_results_clear(&result, 1);
    caveat__report__free_unpacked(report, NULL);
}

/*  A connection of agency that says Hello and never reads. */
static zsock_t *deaf_subscriber(harness_t *h, const char *agency, int credit)
{
    zsock_t *dealer = raw_dealer_new(h, agency, NULL, 0, true);
    zsock_set_rcvhwm(dealer, 1);
    zsock_set_rcvbuf(dealer, 4096);
    raw_dealer_connect(h, dealer);
    send_hello_with(dealer, 1, NULL, credit);
    return dealer;
}

/*  An agency that opens connection after connection and reads none: each
 *  says Hello for its queue, which replaces the last connection's session
 *  and is sent again every delivery in flight. What libzmq holds for a
 *  connection (PEER_SNDHWM messages of up to a frame) stays until the
 *  connection goes, so the broker ends the connection of a session
 *  another connection's Hello replaced: its memory stays about one
 *  connection's worth (18 MB here), however many connections come. */
static void test_deaf_connections_one_after_another_hold_one_share(void **state)
{
    (void)state;
    enum { REPORTS = 20, BYTES = 900 * 1000, CONNECTIONS = 8 };
    harness_t *h = started();
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    for (int i = 0; i < REPORTS; i++)
        publish_big(police, BYTES);
    cv_client_destroy(&police);
    zsock_t *deaf[CONNECTIONS];
    long before = broker_rss_kb(h);
    for (int i = 0; i < CONNECTIONS; i++) {
        deaf[i] = deaf_subscriber(h, "hull-cc", 100);
        zclock_sleep(1000); /* all in flight sent to it, unread */
    }
    long grown = broker_rss_kb(h) - before;
    print_message("%d connections that read nothing: the broker grew by %ld kB\n", CONNECTIONS,
                  grown);
    assert_true(grown < 4 * REPORTS * BYTES / 1000); /* 8 shares would be 144 MB */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deaf_connections_one_after_another_hold_one_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
