/*  `admin backup` runs in a thread of its own: the broker goes on serving
 *  while it copies; one backup at a time; a requester that leaves, a stop
 *  and a disk too small for the copy each end it cleanly. The real
 *  caveatd, driven through libcaveat, on a store of some tens of MB so
 *  that a backup lasts long enough to overlap other traffic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>
#include <sqlite3.h>

#include "e2e_checks.h"
#include "harness.h"

#define STORE_MB       96
#define NARRATIVE      (200 * 1024) /* bytes: a few hundred reports make the store */
#define BATCH          4            /* reports a publish */
#define ROUND_TRIPS    3            /* at least this many while a backup runs */
#define BACKUP_WAIT_MS 120000
#define STORE_PAGE     (16 * 1024) /* bytes: a new store's pages */

/*  One big report under a new id. */
static Caveat__Report *big_report(void)
{
    Caveat__Report *report = harness_report("vulnerable_individual");
    free(report->id);
    report->id = NULL;
    free(report->narrative);
    report->narrative = malloc(NARRATIVE + 1);
    for (size_t i = 0; i < NARRATIVE; i++)
        report->narrative[i] = (char)('a' + (i * 7 + i / 26) % 26);
    report->narrative[NARRATIVE] = '\0';
    return report;
}

/*  Publishes big reports (each acknowledged) until the store holds about
 *  mb MB; how many. */
static int fill_store(harness_t *h, int mb)
{
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    int n = 0;
    while ((int64_t)n * NARRATIVE < (int64_t)mb * 1024 * 1024) {
        Caveat__Report *reports[BATCH];
        cv_publish_result_t results[BATCH] = {0};
        for (int i = 0; i < BATCH; i++)
            reports[i] = big_report();
        cv_error_t err = {0};
        assert_int_equal(cv_client_publish(police, (const Caveat__Report *const *)reports, BATCH,
                                           results, 30000, &err),
                         0);
        for (int i = 0; i < BATCH; i++) {
            assert_int_equal(results[i].status, CAVEAT__WIRE__STATUS__OK);
            caveat__report__free_unpacked(reports[i], NULL);
        }
        cv_publish_results_clear(results, BATCH);
        n += BATCH;
    }
    cv_client_destroy(&police);
    return n;
}

/*  A backup asked for in a thread of the test: its admin call waits for
 *  the reply while the test does other things. */
typedef struct {
    harness_t *h;
    char dir[600];
    pthread_t thread;
    int64_t asked, answered; /* zclock_mono */
    volatile bool done;
    bool ok;
    char *text;
} backup_call_t;

static void *backup_thread(void *arg)
{
    backup_call_t *call = arg;
    cv_error_t err = {0};
    cv_client_t *c = admin_client_of(call->h);
    const char *args[] = {call->dir};
    call->asked = zclock_mono();
    call->text = cv_client_admin_args(c, "backup", args, 1, &call->ok, BACKUP_WAIT_MS, &err);
    call->answered = zclock_mono();
    if (!call->text)
        print_error("backup: %s\n", err.msg);
    cv_client_destroy(&c);
    call->done = true;
    return NULL;
}

static void backup_begin(backup_call_t *call, harness_t *h, const char *name)
{
    *call = (backup_call_t){.h = h};
    snprintf(call->dir, sizeof call->dir, "%s", harness_path(h, name));
    assert_int_equal(pthread_create(&call->thread, NULL, backup_thread, call), 0);
}

static void backup_end(backup_call_t *call)
{
    pthread_join(call->thread, NULL);
    assert_non_null(call->text);
}

/*  A backup's request and reply on the test's thread. */
static char *backup_now(harness_t *h, const char *dir, bool *ok)
{
    cv_client_t *c = admin_client_of(h);
    const char *args[] = {dir};
    cv_error_t err = {0};
    char *text = cv_client_admin_args(c, "backup", args, 1, ok, BACKUP_WAIT_MS, &err);
    assert_non_null(text);
    cv_client_destroy(&c);
    return text;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int first_column(void *arg, int columns, char **values, char **names)
{
    (void)names;
    *(int *)arg = columns > 0 && values[0] ? atoi(values[0]) : -1;
    return 0;
}

/*  Reports in DIR/caveat.db, read as an operator would; -1 when unreadable. */
static int reports_in(const char *dir)
{
    char path[700];
    snprintf(path, sizeof path, "%s/caveat.db", dir);
    sqlite3 *db = NULL;
    int n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "SELECT count(*) FROM reports", first_column, &n, NULL) != SQLITE_OK)
        n = -1;
    sqlite3_close(db);
    return n;
}

/*  The group's broker, with a store of STORE_MB. */
typedef struct {
    harness_t *h;
    int stored;   /* reports in the store, every one acknowledged */
    bool stopped; /* a test stopped the broker */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->h = started();
    int64_t began = zclock_mono();
    f->stored = fill_store(f->h, STORE_MB);
    print_message("a store of %d reports in %lld ms\n", f->stored,
                  (long long)(zclock_mono() - began));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->stopped)
        harness_destroy(&f->h);
    else
        finish(&f->h);
    free(f);
    return 0;
}

/*  Waits for path to exist; false after timeout_ms. */
static bool appears(const char *path, int timeout_ms)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    while (!exists(path)) {
        if (zclock_mono() > deadline)
            return false;
        zclock_sleep(1);
    }
    return true;
}

/*  DIR/NAME, in a buffer of the caller's. */
static const char *in(char *buf, size_t size, const char *dir, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
    return buf;
}

/*  An administrator's backup request over a raw connection that goes as
 *  soon as the broker has taken it (logged it), so mid-backup: nobody
 *  waits for the reply. */
static void backup_and_leave(harness_t *h, const char *dir)
{
    zsock_t *dealer = raw_dealer_as(h, "caveat-admin", NULL, 0, false);
    send_hello_with(dealer, 1, NULL, 0); /* send-only, as `caveat admin` */
    assert_int_equal(error_answer(dealer), 0);
    const char *args[] = {dir};
    send_admin_request(dealer, "backup", args, 1, 0);
    char taken[700];
    snprintf(taken, sizeof taken, "backup: to %s, in the background", dir);
    for (int i = 0; i < 1000 && log_lines_with(h, taken) == 0; i++)
        zclock_sleep(5);
    assert_int_equal(log_lines_with(h, taken), 1);
    zsock_destroy(&dealer);
}

/*  One report from police to the college, until the college has it:
 *  the publish's acknowledgement and the delivery's arrival (zclock_mono). */
typedef struct {
    int64_t acked, delivered;
} round_trip_t;

static round_trip_t round_trip(cv_client_t *police, cv_client_t *college)
{
    Caveat__Report *report = harness_report("community_tension");
    free(report->id);
    report->id = NULL;
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    round_trip_t t = {0};
    assert_int_equal(cv_client_publish_one(police, report, &result, 10000, &err), 0);
    assert_int_equal(result.status, CAVEAT__WIRE__STATUS__OK);
    t.acked = zclock_mono();
    cv_publish_results_clear(&result, 1);
    caveat__report__free_unpacked(report, NULL);
    const cv_delivery_t *d = receive(college, 10000);
    assert_non_null(d);
    t.delivered = zclock_mono();
    assert_true(cv_client_ack(college, d->seq, &err));
    return t;
}

/*  Another agency publishes and subscribes while a backup of the store
 *  runs: its reports keep being acknowledged and delivered meanwhile. The
 *  copy is the store as it was when the backup began, and a broker starts
 *  from it. */
static void test_publishes_and_deliveries_go_on_during_a_backup(void **state)
{
    fixture_t *f = *state;
    cv_client_t *police = client(f->h, "hum-bcu-hull", NULL, 0);
    cv_client_t *college = client(f->h, "hull-college", NULL, 10);
    round_trip(police, college); /* connected, and the college's queue made */

    backup_call_t call;
    backup_begin(&call, f->h, "backup-a");
    int acked_during = 0, delivered_during = 0, published = 0;
    int64_t last = 0, longest = 0; /* the longest wait for a delivery while it ran */
    while (!call.done && published < 100000) {
        round_trip_t t = round_trip(police, college);
        published++;
        bool running = !call.done; /* answered is set before done */
        acked_during += running && t.acked > call.asked;
        delivered_during += running && t.delivered > call.asked;
        if (running && call.asked && t.delivered > call.asked) {
            int64_t since = t.delivered - (last > call.asked ? last : call.asked);
            longest = since > longest ? since : longest;
            last = t.delivered;
        }
    }
    backup_end(&call);
    int64_t took = call.answered - call.asked;
    print_message("%s in %lld ms; %d round trips during it, %lld ms the longest wait\n", call.text,
                  (long long)took, delivered_during, (long long)longest);
    assert_true(call.ok);
    assert_non_null(strstr(call.text, "backed up to"));
    assert_true(acked_during >= ROUND_TRIPS);
    assert_true(delivered_during >= ROUND_TRIPS);
    /* the loop never stood still for the copy: no wait as long as half of it */
    assert_true(longest * 2 < took);
    free(call.text);
    cv_client_destroy(&police);
    cv_client_destroy(&college);

    int copied = reports_in(call.dir);
    assert_true(copied >= f->stored + 1 && copied <= f->stored + 1 + published);
    char path[700];
    assert_false(exists(in(path, sizeof path, call.dir, "caveat.db.partial")));
    struct stat st;
    assert_int_equal(stat(in(path, sizeof path, call.dir, "pseudonym.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* a broker of its own on the copy: the college's first report is there */
    harness_t *restored = harness_new();
    assert_non_null(restored);
    assert_int_equal(rename(call.dir, harness_path(restored, "data")), 0);
    assert_true(harness_start(restored, NULL));
    cv_client_t *again = client(restored, "hull-college", NULL, 10);
    assert_non_null(receive(again, 5000));
    cv_client_destroy(&again);
    finish(&restored);
}

/*  One backup at a time: a second request while one runs is answered
 *  at once, saying so, and makes nothing. */
static void test_a_second_backup_while_one_runs_is_refused(void **state)
{
    fixture_t *f = *state;
    backup_call_t first;
    backup_begin(&first, f->h, "backup-b1");
    char path[700];
    assert_true(appears(in(path, sizeof path, first.dir, "caveat.db.partial"), 10000));
    bool ok = true;
    char second[600];
    snprintf(second, sizeof second, "%s", harness_path(f->h, "backup-b2"));
    char *text = backup_now(f->h, second, &ok);
    assert_false(ok);
    assert_non_null(strstr(text, "a backup is already running"));
    free(text);
    assert_false(exists(second));
    backup_end(&first);
    assert_true(first.ok);
    free(first.text);

    text = backup_now(f->h, second, &ok); /* and once it ended, the next runs */
    assert_true(ok);
    free(text);
    assert_int_equal(reports_in(second), reports_in(first.dir));
}

/*  Refused at once, nothing made: a directory that exists (a backup never
 *  overwrites), a relative path (it would be the broker's), a path too
 *  long to hold the copy's names, no path at all. */
static void test_a_backup_never_overwrites_nor_takes_a_relative_path(void **state)
{
    fixture_t *f = *state;
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s", harness_path(f->h, "backup-c"));
    assert_int_equal(mkdir(dir, 0700), 0);
    bool ok = true;
    char *text = backup_now(f->h, dir, &ok);
    assert_false(ok);
    assert_non_null(strstr(text, "cannot create"));
    free(text);
    assert_false(exists(in(path, sizeof path, dir, "pseudonym.key")));

    text = backup_now(f->h, "backup-c-relative", &ok);
    assert_false(ok);
    assert_non_null(strstr(text, "not an absolute path"));
    free(text);
    assert_false(exists("backup-c-relative")); /* the broker runs in the test's directory */

    char long_dir[12 * 201 + 1]; /* each name well within NAME_MAX, the whole past 2048 */
    for (int i = 0; i < 12; i++)
        snprintf(long_dir + i * 201, sizeof long_dir - (size_t)i * 201, "/%0200d", i);
    text = backup_now(f->h, long_dir, &ok);
    assert_false(ok);
    assert_string_equal(text, "the directory's path is too long");
    free(text);

    cv_client_t *c = admin_client_of(f->h); /* no directory at all */
    cv_error_t err = {0};
    text = cv_client_admin_args(c, "backup", NULL, 0, &ok, 5000, &err);
    assert_non_null(text);
    assert_false(ok);
    assert_non_null(strstr(text, "backup needs one argument: a new directory"));
    free(text);
    cv_client_destroy(&c);
}

/*  The administrator who asked goes before the backup ends: it ends all
 *  the same, the broker answers nobody and serves on (and, under the
 *  sanitizers, leaks nothing: finish checks). */
static void test_a_requester_that_leaves_mid_backup_stops_nothing(void **state)
{
    fixture_t *f = *state;
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s", harness_path(f->h, "backup-d"));
    backup_and_leave(f->h, dir);
    assert_true(appears(in(path, sizeof path, dir, "caveat.db"), BACKUP_WAIT_MS));
    char said[700];
    snprintf(said, sizeof said, "backup: backed up to %s", dir);
    for (int i = 0; i < 500 && log_lines_with(f->h, said) == 0; i++)
        zclock_sleep(10);
    assert_int_equal(log_lines_with(f->h, said), 1);
    assert_true(stat_of(f->h, "senders") >= 0); /* it serves */
}

/*  SIGTERM while a backup copies: the broker stops promptly and cleanly,
 *  and nothing of the copy is left to pass for a backup. */
static void test_a_stop_during_a_backup_leaves_no_copy(void **state)
{
    fixture_t *f = *state;
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s", harness_path(f->h, "backup-e"));
    backup_and_leave(f->h, dir);
    assert_true(appears(in(path, sizeof path, dir, "caveat.db.partial"), 10000));
    int64_t began = zclock_mono();
    f->stopped = true;
    assert_true(harness_stop(f->h));
    int64_t took = zclock_mono() - began;
    print_message("stopped in %lld ms\n", (long long)took);
    assert_true(took < 2000);
    assert_false(exists(dir));
    assert_int_equal(
        log_lines_with(f->h, "backup stopped, its copy removed: the broker is stopping"), 1);
}

/*  A copy that would leave less than the store's reserve free on its
 *  disk is refused, nothing kept; the broker's disk is not short for it.
 *  A 64 MB tmpfs, a 4 MB reserve (kept free: 2 x 4 + 1 MB). */
static void test_a_backup_that_would_fill_the_disk_is_refused(void **state)
{
    (void)state;
    harness_t *h = started_on_a_small_disk(64 * 1024 * 1024, "4");
    fill_store(h, 12);
    assert_true(harness_fill_disk(h) > 0);
    harness_shrink_filler(h, 20 * 1024 * 1024); /* room for the copy, not for it and 9 MB */
    zclock_sleep(300);                          /* the broker looks every 100 ms */
    assert_int_equal(stat_of(h, "disk_short"), 0);

    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s", harness_path(h, "data/backup"));
    bool ok = true;
    char *text = backup_now(h, dir, &ok);
    assert_false(ok);
    assert_non_null(strstr(text, "not enough room"));
    free(text);
    assert_false(exists(dir));
    assert_int_equal(stat_of(h, "disk_short"), 0);

    harness_free_disk(h); /* with room, the same backup is made */
    text = backup_now(h, dir, &ok);
    assert_true(ok);
    free(text);
    assert_true(exists(in(path, sizeof path, dir, "caveat.db")));
    finish(&h);
}

/*  The store's disk goes short while a backup runs: the backup holds
 *  the WAL from being reused, so it is stopped, saying why, and what it
 *  copied removed; while the disk is short no backup starts. The store
 *  on a 192 MB tmpfs filled to 12 MB of it while the backup begins, then
 *  to the full, the copy beside the harness (another disk). */
static void test_a_short_disk_stops_a_backup(void **state)
{
    (void)state;
    harness_t *h = started_on_a_small_disk(192 * 1024 * 1024, "4");
    fill_store(h, STORE_MB);
    zclock_sleep(1000); /* idle: the WAL is checkpointed, the database grown to hold it */
    /* 12 MB free, the reserve held: not short, and a few MB to fill */
    assert_true(harness_fill_disk(h) > 0);
    harness_shrink_filler(h, 12 * 1024 * 1024);
    zclock_sleep(300); /* the broker looks every 100 ms */
    assert_int_equal(stat_of(h, "disk_short"), 0);
    backup_call_t call;
    backup_begin(&call, h, "backup-short");
    char path[700];
    assert_true(appears(in(path, sizeof path, call.dir, "caveat.db.partial"), 10000));
    /* nothing else happens: an idle broker looks at its disk every 10 ms
     * while a backup runs (it once waited up to 200 ms for a message
     * between looks), and a stop waits for one step of the copy, about
     * 1 MB. Counted in what the copy did after the disk filled, not in
     * ms: the copy's thread runs at nice 10, and beside other tests its
     * one step took up to half a second (a second when steps were 4 MB),
     * where a prompt look lets it copy a step or two. A stop that waited
     * for the copy's end copies all 96 MB; on a quiet machine a look every
     * 200 ms lets it copy more than 16 */
    struct stat partial;
    assert_int_equal(stat(path, &partial), 0);
    int64_t filled = zclock_mono();
    assert_true(harness_fill_disk(h) > 0);
    backup_end(&call);
    int64_t took = zclock_mono() - filled;
    assert_false(call.ok);
    assert_non_null(
        strstr(call.text, "backup stopped, its copy removed: the store's disk is short"));
    int copied = 0, pages = 0;
    const char *progress = strrchr(call.text, ';');
    assert_non_null(progress);
    assert_int_equal(sscanf(progress, ";%d of %d pages had been copied", &copied, &pages), 2);
    long before = (long)(partial.st_size / STORE_PAGE), after = copied - before;
    print_message("stopped %lld ms after the disk filled, %ld pages of %d copied before, %ld "
                  "after\n",
                  (long long)took, before, pages, after);
    assert_true(after * STORE_PAGE <= 16 * 1024 * 1024); /* of 96 MB: all of it, when it waited */
    free(call.text);
    assert_false(exists(call.dir));

    bool ok = true;
    char *text = backup_now(h, call.dir, &ok);
    assert_false(ok);
    assert_ptr_equal(strstr(text, "the store's disk is short"), text); /* refused, never begun */
    free(text);
    assert_false(exists(call.dir));
    harness_free_disk(h);
    finish(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publishes_and_deliveries_go_on_during_a_backup),
        cmocka_unit_test(test_a_second_backup_while_one_runs_is_refused),
        cmocka_unit_test(test_a_backup_never_overwrites_nor_takes_a_relative_path),
        cmocka_unit_test(test_a_requester_that_leaves_mid_backup_stops_nothing),
        cmocka_unit_test(test_a_backup_that_would_fill_the_disk_is_refused),
        cmocka_unit_test(test_a_short_disk_stops_a_backup),
        cmocka_unit_test(test_a_stop_during_a_backup_leaves_no_copy), /* the broker stops */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
