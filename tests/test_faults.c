/*  Faults around the broker: another process reading the store, peers
 *  that go away. The real caveatd, driven through libcaveat.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>
#include <sqlite3.h>

#include "e2e_checks.h"
#include "harness.h"

static harness_t *started(void)
{
    harness_t *h = harness_new();
    assert_non_null(h);
    assert_true(harness_start(h, NULL));
    return h;
}

static void finish(harness_t **h)
{
    assert_true(harness_stop(*h));
    harness_destroy(h);
}

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_reader_of_the_store_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
