/*  Stored reports' checksums taken beside the loop (broker/cv_hasher.h):
 *  every sum is libsodium's BLAKE2b-256 of its bytes, whoever took it, in
 *  whatever order the loop asks, batch after batch.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "cv_hasher.h"
#include "harness.h"
#include "seeded_rng.h"

#define MAX_JOBS 600

typedef struct {
    uint8_t *bytes;
    cv_hash_job_t jobs[MAX_JOBS];
} batch_t;

/*  n jobs over random bytes of random lengths (0 to 4 KB). */
static void fill(batch_t *b, size_t n)
{
    b->bytes = realloc(b->bytes, n * 4096 + 1);
    assert_non_null(b->bytes);
    for (size_t i = 0; i < n; i++) {
        size_t len = (size_t)rnd(4097);
        uint8_t *at = b->bytes + i * 4096;
        for (size_t k = 0; k < len; k++)
            at[k] = (uint8_t)rnd(256);
        b->jobs[i] = (cv_hash_job_t){.bytes = at, .len = len};
    }
}

static void assert_sum(const cv_hash_job_t *job, const uint8_t *sum)
{
    uint8_t want[CV_CHECKSUM_BYTES];
    crypto_generichash(want, sizeof want, job->bytes, job->len, NULL, 0);
    assert_memory_equal(sum, want, sizeof want);
}

/*  One batch of n, its sums asked for in order (or from the end). */
static void run_batch(cv_hasher_t *hasher, batch_t *b, size_t n, bool backwards)
{
    fill(b, n);
    cv_hasher_start(hasher, b->jobs, n);
    for (size_t k = 0; k < n; k++) {
        size_t i = backwards ? n - 1 - k : k;
        assert_sum(&b->jobs[i], cv_hasher_take(hasher, b->jobs, i));
    }
    cv_hasher_end(hasher);
}

static void sums_are_blake2b_in_any_order(void **state)
{
    (void)state;
    cv_hasher_t *hasher = cv_hasher_new("cv-test-hasher");
    assert_non_null(hasher);
    batch_t b = {0};
    static const size_t sizes[] = {0, 1, 2, 3, 17, 200, MAX_JOBS};
    for (int round = 0; round < 20; round++)
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
            run_batch(hasher, &b, sizes[s], round % 2);
    free(b.bytes);
    cv_hasher_destroy(&hasher);
    assert_null(hasher);
}

/*  A batch ended with sums never asked for: the next batch is unaffected
 *  and nothing of the old one is read after its end. */
static void batch_ended_early(void **state)
{
    (void)state;
    cv_hasher_t *hasher = cv_hasher_new("cv-test-hasher");
    batch_t b = {0};
    for (int round = 0; round < 200; round++) {
        fill(&b, 50);
        cv_hasher_start(hasher, b.jobs, 50);
        assert_sum(&b.jobs[7], cv_hasher_take(hasher, b.jobs, 7));
        cv_hasher_end(hasher);
        memset(b.jobs, 0xa5, sizeof b.jobs); /* the worker must not touch these now */
        usleep(500);
        for (size_t i = 0; i < 50; i++)
            assert_int_equal(b.jobs[i].sum[0], 0xa5);
    }
    run_batch(hasher, &b, 100, false);
    free(b.bytes);
    cv_hasher_destroy(&hasher);
}

/*  The worker is named as asked, so `top -H` tells the broker's threads
 *  apart. */
static void worker_is_named(void **state)
{
    (void)state;
    cv_hasher_t *hasher = cv_hasher_new("cv-test-named");
    assert_non_null(hasher);
    assert_true(harness_has_thread(getpid(), "cv-test-named"));
    assert_false(harness_has_thread(getpid(), "cv-test-unnamed"));
    cv_hasher_destroy(&hasher);
}

/*  Without the worker (it could not start), the loop takes every sum. */
static void no_worker(void **state)
{
    (void)state;
    batch_t b = {0};
    run_batch(NULL, &b, 30, true);
    assert_int_equal(cv_hasher_loop_ns(NULL), 0);
    free(b.bytes);
}

/*  The loop's share is counted: a sum it took itself costs it time. */
static void loop_time_counted(void **state)
{
    (void)state;
    cv_hasher_t *hasher = cv_hasher_new("cv-test-hasher");
    batch_t b = {0};
    run_batch(hasher, &b, 1, false); /* one job: never the worker's */
    assert_true(cv_hasher_loop_ns(hasher) > 0);
    free(b.bytes);
    cv_hasher_destroy(&hasher);
    cv_hasher_destroy(&hasher); /* twice: a no-op */
}

/*  n jobs of len bytes each. */
static void fill_even(batch_t *b, size_t n, size_t len)
{
    b->bytes = realloc(b->bytes, n * len + 1);
    assert_non_null(b->bytes);
    for (size_t i = 0; i < n; i++) {
        memset(b->bytes + i * len, (int)i, len);
        b->jobs[i] = (cv_hash_job_t){.bytes = b->bytes + i * len, .len = len};
    }
}

static void take_all(cv_hasher_t *hasher, batch_t *b, size_t n)
{
    cv_hasher_start(hasher, b->jobs, n);
    for (size_t i = 0; i < n; i++)
        assert_sum(&b->jobs[i], cv_hasher_take(hasher, b->jobs, i));
    cv_hasher_end(hasher);
}

/*  How many times the thread of this process named name has blocked: a
 *  worker asleep on its condition blocks again only after a wakeup. */
static long blocked_count(const char *name)
{
    DIR *tasks = opendir("/proc/self/task");
    assert_non_null(tasks);
    long count = -1;
    char path[300], line[128];
    for (struct dirent *task; count < 0 && (task = readdir(tasks));) {
        snprintf(path, sizeof path, "/proc/self/task/%.32s/comm", task->d_name);
        FILE *f = fopen(path, "r");
        bool named = f && fgets(line, sizeof line, f) && strncmp(line, name, strlen(name)) == 0;
        if (f)
            fclose(f);
        snprintf(path, sizeof path, "/proc/self/task/%.32s/status", task->d_name);
        f = named ? fopen(path, "r") : NULL;
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &count) == 1)
                break;
        if (f)
            fclose(f);
    }
    closedir(tasks);
    assert_true(count >= 0);
    return count;
}

/*  A batch under CV_HASHER_HAND_OVER_BYTES is hashed on the loop, the
 *  worker left asleep (it never wakes, so never blocks again); one of that
 *  size or more is handed over, and a single job never is, however long. */
static void small_batches_stay_on_the_loop(void **state)
{
    (void)state;
    cv_hasher_t *hasher = cv_hasher_new("cv-test-asleep");
    batch_t b = {0};
    usleep(20000); /* the worker reaches its first wait */
    long asleep = blocked_count("cv-test-asleep");
    size_t under = CV_HASHER_HAND_OVER_BYTES / 8 - 1;
    for (int round = 0; round < 20; round++) {
        fill_even(&b, 8, under);
        assert_false(cv_hasher_hands_over(b.jobs, 8)); /* what callers plan by */
        take_all(hasher, &b, 8);
    }
    fill_even(&b, 1, CV_HASHER_HAND_OVER_BYTES * 2);
    assert_false(cv_hasher_hands_over(b.jobs, 1));
    take_all(hasher, &b, 1);
    assert_int_equal(cv_hasher_handed(hasher), 0);
    assert_int_equal(blocked_count("cv-test-asleep"), asleep);
    fill_even(&b, 8, CV_HASHER_HAND_OVER_BYTES / 8);
    assert_true(cv_hasher_hands_over(b.jobs, 8));
    take_all(hasher, &b, 8);
    assert_int_equal(cv_hasher_handed(hasher), 1);
    for (int waited = 0; blocked_count("cv-test-asleep") == asleep && waited < 1000; waited++)
        usleep(1000); /* woken, it blocks again once done */
    assert_true(blocked_count("cv-test-asleep") > asleep);
    assert_int_equal(cv_hasher_handed(NULL), 0);
    free(b.bytes);
    cv_hasher_destroy(&hasher);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sums_are_blake2b_in_any_order),
        cmocka_unit_test(batch_ended_early),
        cmocka_unit_test(worker_is_named),
        cmocka_unit_test(no_worker),
        cmocka_unit_test(loop_time_counted),
        cmocka_unit_test(small_batches_stay_on_the_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
