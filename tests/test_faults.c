/*  Faults around the broker: another process reading the store, peers
 *  that go away. The real caveatd, driven through libcaveat.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>
#include <sqlite3.h>

#include "e2e_checks.h"
#include "harness.h"

/*  Publishes n example reports under new ids; each is acknowledged. */
static void publish_many(harness_t *h, int n)
{
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    for (int i = 0; i < n; i++) {
        Caveat__Report *report = harness_report("vulnerable_individual");
        free(report->id);
        report->id = NULL;
        cv_publish_result_t result = {0};
        cv_error_t err = {""};
        assert_int_equal(cv_client_publish(police, &report, 1, &result, 5000, &err), 0);
        cv_publish_results_clear(&result, 1);
        caveat__report__free_unpacked(report, NULL);
    }
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
    publish_many(h, 5);
    count_reports_from_another_process(h);
    publish_many(h, 20);
    count_reports_from_another_process(h);
    publish_many(h, 5);
    harness_kill(h);
    assert_true(harness_start(h, NULL));

    cv_client_t *council = client(h, "hull-cc", NULL, 100);
    int received = 0;
    const Caveat__Wire__Delivery *d;
    cv_error_t err = {""};
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

/*  The example policy with COUNCILS more councils in Hull, council-N, each
 *  with a new key whose secret certificate is DIR/council-N.cert_secret. */
static void write_policy_with_councils(harness_t *h)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    FILE *in = fopen(harness_path(h, "policy.yaml"), "r");
    assert_non_null(in);
    char line[4096];
    while (fgets(line, sizeof line, in)) {
        fputs(line, out);
        if (strcmp(line, "agencies:\n") != 0)
            continue;
        for (int i = 0; i < COUNCILS; i++) {
            zcert_t *cert = zcert_new();
            char path[700];
            snprintf(path, sizeof path, "%s/council-%d.cert", harness_path(h, ""), i);
            assert_int_equal(zcert_save(cert, path), 0);
            snprintf(path, sizeof path, "%s/council-%d.cert_secret", harness_path(h, ""), i);
            assert_int_equal(chmod(path, 0600), 0);
            fprintf(out,
                    "  council-%d:\n    organisation: council-%d\n    type: local_authority\n"
                    "    clearance: OFFICIAL-SENSITIVE\n    areas: [hull]\n    key: \"%s\"\n",
                    i, i, zcert_public_txt(cert));
            zcert_destroy(&cert);
        }
    }
    fclose(in);
    fclose(out);
    harness_write_policy(h, text);
    free(text);
}

/*  COUNCILS subscribers say Hello and go without a word (libzmq tells a
 *  ROUTER nothing). The next report goes to every one of them: the sends
 *  fail, each session ends there, and nothing is resent to them after the
 *  ack timeout; their deliveries stay queued for when they come back. */
static void test_departed_subscribers_end_their_sessions(void **state)
{
    (void)state;
    harness_t *h = harness_new();
    assert_non_null(h);
    write_policy_with_councils(h);
    const char *const extra[] = {"--ack-timeout", "1", NULL};
    assert_true(harness_start(h, extra));
    for (int i = 0; i < COUNCILS; i++) {
        char agency[32];
        snprintf(agency, sizeof agency, "council-%d", i);
        zsock_t *council = raw_dealer(h, agency);
        send_hello_with(council, 1, NULL, 100);
        assert_int_equal(error_answer(council), 0);
        zsock_destroy(&council);
    }
    assert_int_equal(stat_of(h, "sessions"), COUNCILS);
    zclock_sleep(300); /* the connections are gone */
    publish_many(h, 1);
    zclock_sleep(2500); /* past the ack timeout */
    /* left: the publisher's own session, which was sent nothing to find
     * out that it went (one session a queue bounds such leftovers) */
    assert_int_equal(stat_of(h, "sessions"), 1);
    assert_int_equal(stat_of(h, "resent"), 0);

    cv_client_t *back = client(h, "council-7", NULL, 10);
    const Caveat__Wire__Delivery *d = receive(back, 5000);
    assert_non_null(d); /* kept for it */
    cv_client_destroy(&back);
    finish(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_reader_of_the_store_loses_nothing),
        cmocka_unit_test(test_departed_subscribers_end_their_sessions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
