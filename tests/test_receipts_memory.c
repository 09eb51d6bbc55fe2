/*  What a session's receipts cost in memory (broker/cv_receipts.c),
 *  without a broker: a real store, audit key and log. A subscriber whose
 *  receipts always have a few waiting (it acknowledges as fast as the
 *  broker proves, 512 a turn) once made its list keep every receipt it
 *  was ever owed: the sent ones' room was taken back only when none
 *  waited. The list must stay the size of what waits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit_fixture.h"
#include "cv_receipts.h"
#include "cv_record.h"

#define MUST(call)                                                                                 \
    do {                                                                                           \
        if (!(call))                                                                               \
            fail_msg("%s: %s", #call, err.msg);                                                    \
    } while (0)

typedef struct {
    char dir[64];
    cv_store_t *store;
    cv_record_t *record;
    cv_receipts_t *receipts;
    uint64_t seq;
    size_t sent;
} rig_t;

static void count_sent(void *arg, const void *session, const Caveat__Wire__Receipts *receipts)
{
    (void)session;
    ((rig_t *)arg)->sent += receipts->n_receipts;
}

/*  One turn: leaves "delivered" leaves of 16 deliveries for session, a
 *  checkpoint over them, the commit, and the turn's proofs. */
static void turn(rig_t *rig, const void *session, int leaves)
{
    cv_error_t err = {0};
    static const uint8_t view[32] = {1};
    MUST(cv_store_begin(rig->store, &err));
    for (int l = 0; l < leaves; l++) {
        cv_delivered_t d[CV_RECORD_DELIVERIES_PER_LEAF];
        for (int k = 0; k < CV_RECORD_DELIVERIES_PER_LEAF; k++)
            d[k] = (cv_delivered_t){++rig->seq, "r-0123456789abcdef01234567", view};
        size_t position = 0;
        MUST(cv_record_delivered(rig->record, "hull-cc", "", d, CV_RECORD_DELIVERIES_PER_LEAF,
                                 &position, &err));
        for (int k = 0; k < CV_RECORD_DELIVERIES_PER_LEAF; k++)
            cv_receipts_note(rig->receipts, session, position, d[k].seq, d[k].report_id);
    }
    MUST(cv_record_flush(rig->record, true, &err));
    MUST(cv_store_commit(rig->store, &err));
    cv_receipts_settle(rig->receipts, true);
    MUST(cv_receipts_take(rig->receipts, count_sent, rig, &err));
}

/*  A backlog of 32 over what a turn proves, then 512 new receipts a turn,
 *  as many as a turn proves: 32 always wait, 51,000 are sent. */
static void test_a_sessions_receipts_take_the_room_of_what_waits(void **state)
{
    rig_t *rig = *state;
    static const int session = 0; /* its address names the session */
    turn(rig, &session, CV_RECEIPTS_PER_TURN / CV_RECORD_DELIVERIES_PER_LEAF + 2);
    for (int t = 0; t < 100; t++)
        turn(rig, &session, CV_RECEIPTS_PER_TURN / CV_RECORD_DELIVERIES_PER_LEAF);
    size_t waiting = cv_receipts_waiting(rig->receipts, &session);
    size_t room = cv_receipts_room(rig->receipts, &session);
    print_message("owed %llu, sent %zu, waiting %zu, room for %zu\n", (unsigned long long)rig->seq,
                  rig->sent, waiting, room);
    assert_int_equal(waiting, 32);
    assert_int_equal(rig->sent + waiting, rig->seq); /* every one proved or waiting */
    assert_true(room <= 4 * (CV_RECEIPTS_PER_TURN + 32));
}

static int setup(void **state)
{
    rig_t *rig = calloc(1, sizeof *rig);
    assert_non_null(rig);
    snprintf(rig->dir, sizeof rig->dir, "/tmp/cv-test-receipts-memory.XXXXXX");
    assert_non_null(mkdtemp(rig->dir));
    cv_error_t err = {0};
    MUST((rig->store = cv_store_open(rig->dir, CV_SYNC_OFF, &err)));
    MUST((rig->record = cv_record_new(rig->store, rig->dir, &err)));
    rig->receipts = cv_receipts_new(rig->record);
    assert_non_null(rig->receipts);
    *state = rig;
    return 0;
}

static int teardown(void **state)
{
    rig_t *rig = *state;
    cv_receipts_destroy(&rig->receipts);
    cv_record_destroy(&rig->record);
    cv_store_close(&rig->store);
    audit_fixture_remove(rig->dir);
    free(rig);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_sessions_receipts_take_the_room_of_what_waits, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
