/*  The hashes of the views a turn sends, taken beside the loop
 *  (broker/cv_views.h): after the finish every delivery added is viewed
 *  with the SHA-256 (libsodium's, not the code under test) of the bytes
 *  last added for it, acknowledged meanwhile or not; before it, and after
 *  a discard, none is; one the queue no longer holds is passed over.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "cv_views.h"
#include "seeded_rng.h"

#define VIEW_MAX 3000 /* bytes: past the views' first 64 KB within a turn */

/*  A queue with n deliveries in flight, seqs 1..n. */
static cv_queue_t *queue_in_flight(size_t n)
{
    cv_queue_t *q = cv_queue_new(1, "council-a", "");
    assert_non_null(q);
    for (size_t i = 0; i < n; i++)
        assert_true(cv_queue_push(q, (cv_routed_t){(int64_t)i + 1, 1}));
    cv_routed_t item;
    for (size_t i = 0; i < n; i++) {
        assert_true(cv_queue_take(q, &item));
        assert_int_equal(cv_queue_give_seq(q, item), i + 1);
    }
    return q;
}

/*  Random bytes of a random length, 0 to VIEW_MAX. */
static size_t random_view(uint8_t *view)
{
    size_t len = (size_t)rnd(VIEW_MAX + 1);
    for (size_t k = 0; k < len; k++)
        view[k] = (uint8_t)rnd(256);
    return len;
}

/*  Packs seq's view as the broker does: named, then added. */
static void send_view(cv_views_t *views, cv_queue_t *q, uint64_t seq, uint8_t want[32])
{
    static uint8_t view[VIEW_MAX];
    size_t len = random_view(view);
    assert_true(cv_queue_viewed(q, seq, NULL, "report-x"));
    cv_views_add(views, q, seq, (int64_t)seq, -1, view, len);
    crypto_hash_sha256(want, view, len);
}

static const cv_sent_t *sent_at(const cv_queue_t *q, uint64_t seq)
{
    const cv_sent_t *sent = cv_queue_sent_after(q, seq - 1);
    assert_non_null(sent);
    assert_int_equal(sent->seq, seq);
    return sent;
}

/*  n views in each of several turns, some deliveries sent twice in one
 *  turn: each ends with the hash of the view sent last. */
static void turns_of(cv_hasher_t *hasher, size_t n)
{
    cv_views_t *views = cv_views_new(hasher, true);
    cv_queue_t *q = queue_in_flight(n);
    uint8_t(*want)[32] = calloc(n, 32);
    for (int turn = 0; turn < 5; turn++) {
        for (size_t i = 0; i < n; i++)
            send_view(views, q, i + 1, want[i]);
        for (size_t i = 0; i < n; i += 7) /* resent: the second view is the one sent last */
            send_view(views, q, i + 1, want[i]);
        for (size_t i = 0; i < n; i++)
            assert_false(sent_at(q, i + 1)->viewed);
        cv_views_start(views);
        cv_views_finish(views);
        for (size_t i = 0; i < n; i++) {
            assert_true(sent_at(q, i + 1)->viewed);
            assert_memory_equal(sent_at(q, i + 1)->view, want[i], 32);
        }
    }
    free(want);
    cv_queue_destroy(&q);
    cv_views_destroy(&views);
    assert_null(views);
}

static void views_are_sha256_of_what_was_sent(void **state)
{
    (void)state;
    cv_hasher_t *hasher = cv_hasher_new("cv-test-hasher");
    assert_non_null(hasher);
    static const size_t sizes[] = {1, 2, 50, 300};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        turns_of(hasher, sizes[s]);
    cv_hasher_destroy(&hasher);
}

/*  Without the worker (it could not start) the loop hashes them all. */
static void no_worker(void **state)
{
    (void)state;
    turns_of(NULL, 40);
}

/*  A turn that rolled back: nothing is viewed, and the hasher is free for
 *  the next batch (a report's checksums). */
static void a_discarded_turn_views_nothing(void **state)
{
    (void)state;
    cv_hasher_t *hasher = cv_hasher_new("cv-test-hasher");
    cv_views_t *views = cv_views_new(hasher, true);
    cv_queue_t *q = queue_in_flight(20);
    uint8_t want[32];
    for (uint64_t seq = 1; seq <= 20; seq++)
        send_view(views, q, seq, want);
    cv_views_start(views);
    cv_views_discard(views);
    for (uint64_t seq = 1; seq <= 20; seq++)
        assert_false(sent_at(q, seq)->viewed);
    cv_views_finish(views); /* nothing left to give */
    assert_false(sent_at(q, 1)->viewed);

    cv_hash_job_t job = {.bytes = (const uint8_t *)"abc", .len = 3};
    cv_hasher_start(hasher, &job, 1);
    uint8_t sum[CV_CHECKSUM_BYTES];
    crypto_generichash(sum, sizeof sum, job.bytes, job.len, NULL, 0);
    assert_memory_equal(cv_hasher_take(hasher, &job, 0), sum, sizeof sum);
    cv_hasher_end(hasher);
    cv_queue_destroy(&q);
    cv_views_destroy(&views);
    cv_hasher_destroy(&hasher);
}

/*  Deliveries acknowledged before the finish (the next turn's) are given
 *  their hashes all the same, for the save's leaves; those whose
 *  acknowledgement was saved meanwhile are gone, and passed over. */
static void acknowledged_ones_are_given_theirs(void **state)
{
    (void)state;
    cv_hasher_t *hasher = cv_hasher_new("cv-test-hasher");
    cv_views_t *views = cv_views_new(hasher, true);
    cv_queue_t *q = queue_in_flight(10);
    uint8_t want[11][32];
    for (uint64_t seq = 1; seq <= 10; seq++)
        send_view(views, q, seq, want[seq]);
    cv_views_start(views);
    assert_int_equal(cv_queue_ack(q, 2), 2);
    cv_queue_mark_saved(q); /* 1 and 2: saved, forgotten */
    assert_int_equal(cv_queue_ack(q, 6), 4);
    cv_views_finish(views);
    assert_int_equal(cv_queue_acked_count(q), 4);
    for (size_t i = 0; i < 4; i++) {
        const cv_sent_t *sent = cv_queue_acked_at(q, i);
        assert_int_equal(sent->seq, i + 3);
        assert_true(sent->viewed);
        assert_memory_equal(sent->view, want[i + 3], 32);
    }
    for (uint64_t seq = 7; seq <= 10; seq++)
        assert_memory_equal(sent_at(q, seq)->view, want[seq], 32);
    cv_queue_destroy(&q);
    cv_views_destroy(&views);
    cv_hasher_destroy(&hasher);
}

/*  A view for (rowid, name) that no other pair has: its bytes spell both. */
static size_t named_view(int64_t rowid, int64_t name, uint8_t *view)
{
    size_t len = 16 + (size_t)((rowid * 7 + name) % 200);
    uint64_t r = (uint64_t)rowid, n = (uint64_t)name;
    for (size_t k = 0; k < len; k++)
        view[k] = (uint8_t)(k < 8 ? r >> (8 * k) : k < 16 ? n >> (8 * (k - 8)) : k);
    return len;
}

/*  A pass of the pump that gives 600 reports' views to four queues, each
 *  report's under names 0..2 (past the slots' first sizes): each view is
 *  found under its report and name alone, from the first delivery that
 *  added it, and every delivery that shared it is given its hash. */
static void pass_shares_named_views(bool hashed)
{
    enum { REPORTS = 600, NAMES = 3, QUEUES = 4 };
    cv_hasher_t *hasher = cv_hasher_new("cv-test-hasher");
    cv_views_t *views = cv_views_new(hasher, hashed);
    cv_queue_t *queues[QUEUES];
    for (int q = 0; q < QUEUES; q++)
        queues[q] = queue_in_flight(REPORTS);
    static uint8_t view[512];
    size_t len;
    for (int q = 0; q < QUEUES; q++) {
        for (int64_t r = 1; r <= REPORTS; r++) {
            int64_t name = (r + q) % NAMES;
            const uint8_t *found = cv_views_find(views, r, name, &len);
            /* the first three queues add a name each; the fourth finds
             * the first's */
            size_t want_len = named_view(r, name, view);
            assert_int_equal(found != NULL, q >= NAMES);
            if (found) {
                assert_int_equal(len, want_len);
                assert_memory_equal(found, view, len);
            }
            assert_true(cv_queue_viewed(queues[q], (uint64_t)r, NULL, "report-x"));
            cv_views_add(views, queues[q], (uint64_t)r, r, name, found ? found : view,
                         found ? len : want_len);
            assert_non_null(cv_views_find(views, r, name, &len));
            assert_null(cv_views_find(views, r, -1, &len));
            assert_null(cv_views_find(views, r + REPORTS, name, &len));
        }
    }
    /* every (report, name) pair was added: found, with its own bytes */
    for (int64_t r = 1; r <= REPORTS; r++)
        for (int64_t name = 0; name < NAMES; name++) {
            size_t want_len = named_view(r, name, view);
            const uint8_t *found = cv_views_find(views, r, name, &len);
            assert_non_null(found);
            assert_int_equal(len, want_len);
            assert_memory_equal(found, view, len);
        }
    cv_views_start(views);
    cv_views_finish(views);
    for (int q = 0; q < QUEUES; q++)
        for (int64_t r = 1; r <= REPORTS; r++) {
            const cv_sent_t *sent = sent_at(queues[q], (uint64_t)r);
            assert_int_equal(sent->viewed, hashed);
            if (!hashed)
                continue;
            uint8_t want[32];
            crypto_hash_sha256(want, view, named_view(r, (r + q) % NAMES, view));
            assert_memory_equal(sent->view, want, 32);
        }
    /* a new pass starts empty */
    assert_null(cv_views_find(views, 1, 1, &len));
    for (int q = 0; q < QUEUES; q++)
        cv_queue_destroy(&queues[q]);
    cv_views_destroy(&views);
    cv_hasher_destroy(&hasher);
}

static void named_views_are_shared_within_a_pass(void **state)
{
    (void)state;
    pass_shares_named_views(true);
}

/*  With the audit log off nothing is hashed, and views are still shared. */
static void without_hashes_named_views_are_shared(void **state)
{
    (void)state;
    pass_shares_named_views(false);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(views_are_sha256_of_what_was_sent),
        cmocka_unit_test(no_worker),
        cmocka_unit_test(a_discarded_turn_views_nothing),
        cmocka_unit_test(acknowledged_ones_are_given_theirs),
        cmocka_unit_test(named_views_are_shared_within_a_pass),
        cmocka_unit_test(without_hashes_named_views_are_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
