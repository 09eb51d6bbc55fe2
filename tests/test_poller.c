/*  test_poller.c: an inbox that found nothing costs nothing to look at
 *  until its descriptor speaks, and never misses a message for it
 *  (proto/cv_poller.h). The broker's loop and libcaveat wait on these, so
 *  a lost wakeup here is a report that sits unread.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <czmq.h>

#include "cv_poller.h"

typedef struct {
    zsock_t *peer; /* sends to sock */
    zsock_t *sock; /* the inbox's */
    cv_inbox_t *inbox;
    cv_poller_t *poller;
} pair_t;

static void pair_open(pair_t *pair, bool exclusive, bool watched)
{
    static int counter;
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://test-poller-%d", counter++);
    pair->sock = zsock_new(ZMQ_PAIR);
    assert_non_null(pair->sock);
    assert_int_equal(zsock_bind(pair->sock, "%s", endpoint), 0);
    pair->peer = zsock_new(ZMQ_PAIR);
    assert_int_equal(zsock_connect(pair->peer, "%s", endpoint), 0);
    zsock_set_rcvtimeo(pair->sock, 0);
    pair->inbox = cv_inbox_new(pair->sock, exclusive);
    pair->poller = cv_poller_new();
    assert_non_null(pair->inbox);
    assert_non_null(pair->poller);
    if (watched)
        assert_int_equal(cv_poller_add(pair->poller, pair->inbox), 0);
}

/*  poll() as cv_poller.c sees it (linked with --wrap=poll): a message can
 *  be made to arrive just after a poll of several descriptors timed out. */
static zsock_t *send_after_timeout;
int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    int rc = __real_poll(fds, n, timeout);
    if (rc == 0 && n > 1 && send_after_timeout) {
        zstr_send(send_after_timeout, "just now");
        send_after_timeout = NULL;
    }
    return rc;
}

static void pair_close(pair_t *pair)
{
    cv_poller_destroy(&pair->poller);
    cv_inbox_destroy(&pair->inbox);
    zsock_destroy(&pair->peer);
    zsock_destroy(&pair->sock);
}

static void receive(pair_t *pair, const char *expected)
{
    char *got = zstr_recv(pair->sock);
    assert_non_null(got);
    assert_string_equal(got, expected);
    zstr_free(&got);
}

/*  Found empty, the inbox answers "nothing" without asking libzmq, even
 *  with a message there: that is the saving. The poller's wait hears of
 *  the message, and the next look finds it. */
static void test_a_quiet_inbox_is_woken_by_the_wait(void **state)
{
    (void)state;
    pair_t pair;
    pair_open(&pair, true, true);
    assert_int_equal(cv_poller_wait(pair.poller, 0), 0);
    assert_false(cv_inbox_ready(pair.inbox));
    zstr_send(pair.peer, "one");
    assert_false(cv_inbox_ready(pair.inbox)); /* quiet: libzmq was not asked */
    assert_int_equal(cv_poller_wait(pair.poller, 1000), 1);
    assert_true(cv_inbox_ready(pair.inbox));
    receive(&pair, "one");
    assert_false(cv_inbox_ready(pair.inbox));
    pair_close(&pair);
}

/*  A look "now" takes in what came after the last wait. */
static void test_ready_now_sees_what_came_after_the_wait(void **state)
{
    (void)state;
    pair_t pair;
    pair_open(&pair, true, true);
    assert_int_equal(cv_poller_wait(pair.poller, 0), 0);
    zstr_send(pair.peer, "one");
    assert_true(cv_inbox_ready_now(pair.inbox));
    receive(&pair, "one");
    assert_false(cv_inbox_ready_now(pair.inbox));
    pair_close(&pair);
}

/*  The hazard the owner's cv_inbox_touched answers: a send on the
 *  socket reads libzmq's news of a message (once a millisecond or so), so
 *  the descriptor goes quiet with the message waiting. */
static void test_a_send_that_read_the_news_is_told(void **state)
{
    (void)state;
    pair_t pair;
    pair_open(&pair, true, true);
    assert_int_equal(cv_poller_wait(pair.poller, 0), 0);
    zstr_send(pair.peer, "one");
    zclock_sleep(20); /* past libzmq's throttle on reading news at a send */
    zstr_send(pair.sock, "reply");
    struct pollfd fd = {zsock_fd(pair.sock), POLLIN, 0};
    assert_int_equal(poll(&fd, 1, 0), 0); /* the news was read by the send */
    cv_inbox_touched(pair.inbox);
    assert_int_equal(cv_poller_wait(pair.poller, 1000), 1);
    assert_true(cv_inbox_ready(pair.inbox));
    receive(&pair, "one");
    pair_close(&pair);
}

/*  A socket with a message always waiting does not keep the poller from
 *  hearing a quiet one. */
static void test_a_busy_inbox_does_not_starve_a_quiet_one(void **state)
{
    (void)state;
    pair_t busy, quiet;
    pair_open(&busy, true, true);
    pair_open(&quiet, true, false);
    assert_int_equal(cv_poller_add(busy.poller, quiet.inbox), 0);
    zstr_send(busy.peer, "always there");
    assert_int_equal(cv_poller_wait(busy.poller, 0), 1);
    assert_false(cv_inbox_ready(quiet.inbox));
    zstr_send(quiet.peer, "one");
    assert_int_equal(cv_poller_wait(busy.poller, 0), 1);
    assert_true(cv_inbox_ready(quiet.inbox));
    receive(&quiet, "one");
    cv_poller_remove(busy.poller, quiet.inbox);
    pair_close(&quiet);
    pair_close(&busy);
}

/*  Inboxes that cannot trust the descriptor's silence ask at every look:
 *  a shared one (someone else uses the socket), and one no poller wakes. */
static void test_shared_and_unwatched_inboxes_always_ask(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) {
        pair_t pair;
        bool exclusive = i != 0, watched = i != 1;
        pair_open(&pair, exclusive, watched);
        assert_int_equal(cv_poller_wait(pair.poller, 0), 0);
        assert_false(cv_inbox_ready(pair.inbox));
        if (i == 2) /* removed from its poller: nobody will wake it */
            cv_poller_remove(pair.poller, pair.inbox);
        zstr_send(pair.peer, "one");
        assert_true(cv_inbox_ready(pair.inbox));
        receive(&pair, "one");
        pair_close(&pair);
    }
}

/*  A use of the socket its owner did not tell (here a ZMQ_EVENTS look,
 *  which reads libzmq's news as a send can) leaves a quiet inbox with a
 *  message its descriptor will never tell of. The waits ask libzmq again
 *  after 250 ms without news, so the message is late, not lost, and the
 *  poller counts it for the owner to report. */
static void test_an_untold_use_delays_and_never_loses(void **state)
{
    (void)state;
    pair_t pair;
    pair_open(&pair, true, true);
    assert_int_equal(cv_poller_wait(pair.poller, 0), 0);
    zstr_send(pair.peer, "one");
    assert_true(zsock_events(pair.sock) & ZMQ_POLLIN); /* untold */
    struct pollfd fd = {zsock_fd(pair.sock), POLLIN, 0};
    assert_int_equal(poll(&fd, 1, 0), 0); /* the descriptor will not speak */
    assert_false(cv_inbox_ready(pair.inbox));
    int64_t start = zclock_mono();
    assert_int_equal(cv_poller_wait(pair.poller, 5000), 1);
    int64_t waited = zclock_mono() - start;
    assert_true(waited >= 240 && waited < 2000);
    assert_int_equal(cv_poller_recovered(pair.poller), 1);
    assert_true(cv_inbox_ready(pair.inbox));
    receive(&pair, "one");

    /* a wait with nothing to find is cut at 250 ms too: the caller's
     * deadline is its own to keep */
    assert_int_equal(cv_poller_wait(pair.poller, 0), 0);
    start = zclock_mono();
    assert_int_equal(cv_poller_wait(pair.poller, 5000), 0);
    assert_true(zclock_mono() - start < 2000);
    assert_int_equal(cv_poller_recovered(pair.poller), 1);

    /* and a wait on the inbox alone */
    zstr_send(pair.peer, "two");
    assert_true(zsock_events(pair.sock) & ZMQ_POLLIN); /* untold again */
    start = zclock_mono();
    assert_true(cv_inbox_wait(pair.inbox, 5000));
    assert_true(zclock_mono() - start < 2000);
    receive(&pair, "two");
    pair_close(&pair);
}

/*  The second look does not wait for an idle moment: a loop kept busy
 *  by another socket asks the quiet inbox again all the same. */
static void test_an_untold_message_is_found_while_busy(void **state)
{
    (void)state;
    pair_t busy, quiet;
    pair_open(&busy, true, true);
    pair_open(&quiet, true, false);
    assert_int_equal(cv_poller_add(busy.poller, quiet.inbox), 0);
    assert_int_equal(cv_poller_wait(busy.poller, 0), 0); /* both quiet */
    zstr_send(quiet.peer, "lost");
    assert_true(zsock_events(quiet.sock) & ZMQ_POLLIN); /* untold */
    bool found = false;
    int64_t start = zclock_mono();
    while (!found && zclock_mono() - start < 2000) {
        zstr_send(busy.peer, "traffic");
        assert_int_equal(cv_poller_wait(busy.poller, 200), 1);
        while (cv_inbox_ready(busy.inbox))
            receive(&busy, "traffic");
        found = cv_inbox_ready(quiet.inbox);
        zclock_sleep(20);
    }
    assert_true(found);
    assert_true(zclock_mono() - start < 1000);
    assert_int_equal(cv_poller_recovered(busy.poller), 1);
    receive(&quiet, "lost");
    cv_poller_remove(busy.poller, quiet.inbox);
    pair_close(&quiet);
    pair_close(&busy);
}

/*  A message that comes between the wait's poll and the second look had
 *  its wakeup: it is read, and not counted as a missed one. */
static void test_a_late_arrival_is_not_a_missed_wakeup(void **state)
{
    (void)state;
    pair_t a, b;
    pair_open(&a, true, true);
    pair_open(&b, true, false);
    assert_int_equal(cv_poller_add(a.poller, b.inbox), 0);
    assert_int_equal(cv_poller_wait(a.poller, 0), 0);
    zclock_sleep(300); /* quiet for longer than the trust */
    send_after_timeout = a.peer;
    assert_int_equal(cv_poller_wait(a.poller, 50), 1);
    assert_null(send_after_timeout); /* it did come after the poll */
    assert_true(cv_inbox_ready(a.inbox));
    receive(&a, "just now");
    assert_int_equal(cv_poller_recovered(a.poller), 0);
    cv_poller_remove(a.poller, b.inbox);
    pair_close(&b);
    pair_close(&a);
}

static void test_waits_time_out(void **state)
{
    (void)state;
    pair_t pair;
    pair_open(&pair, true, true);
    int64_t start = zclock_mono();
    assert_int_equal(cv_poller_wait(pair.poller, 50), 0);
    assert_true(zclock_mono() - start >= 45);
    start = zclock_mono();
    assert_false(cv_inbox_wait(pair.inbox, 50));
    assert_true(zclock_mono() - start >= 45);
    zstr_send(pair.peer, "one");
    assert_true(cv_inbox_wait(pair.inbox, 1000));
    receive(&pair, "one");
    pair_close(&pair);
}

/*  Messages sent by another thread while the owner waits. */
static void sender(zsock_t *pipe, void *arg)
{
    zsock_t *peer = arg;
    zsock_signal(pipe, 0);
    for (int i = 0; i < 1000; i++) {
        if (i % 100 == 0)
            zclock_sleep(1);
        zstr_sendf(peer, "%d", i);
    }
}

static void test_every_message_from_another_thread_is_read(void **state)
{
    (void)state;
    pair_t pair;
    pair_open(&pair, true, true);
    zactor_t *actor = zactor_new(sender, pair.peer);
    int next = 0;
    int64_t deadline = zclock_mono() + 10000;
    while (next < 1000 && zclock_mono() < deadline) {
        if (cv_poller_wait(pair.poller, 100) < 0)
            continue;
        while (cv_inbox_ready(pair.inbox)) {
            char expected[16];
            snprintf(expected, sizeof expected, "%d", next++);
            receive(&pair, expected);
        }
    }
    assert_int_equal(next, 1000);
    zactor_destroy(&actor);
    pair_close(&pair);
}

/*  A socket's events: POLLIN when a message waits, and -1 (not readable),
 *  not whatever the stack held, once its context has ended and libzmq
 *  answers ETERM, as the actors' pipes do at shutdown. It ends czmq's own
 *  context, which the broker's sockets live in: the last test of all. */
static void test_events_of_a_socket_whose_context_ended(void **state)
{
    (void)state;
    pair_t pair;
    pair_open(&pair, true, false);
    zstr_send(pair.peer, "x");
    assert_true(cv_inbox_wait(pair.inbox, 1000));
    assert_true(cv_socket_events(pair.sock) & ZMQ_POLLIN);
    assert_true(cv_socket_readable(pair.sock));
    assert_int_equal(zmq_ctx_shutdown(zsys_init()), 0);
    int events = 0x5a5a;
    size_t size = sizeof events;
    assert_int_equal(zmq_getsockopt(zsock_resolve(pair.sock), ZMQ_EVENTS, &events, &size), -1);
    assert_int_equal(zmq_errno(), ETERM);
    assert_int_equal(cv_socket_events(pair.sock), -1);
    assert_false(cv_socket_readable(pair.sock));
    pair_close(&pair);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_quiet_inbox_is_woken_by_the_wait),
        cmocka_unit_test(test_ready_now_sees_what_came_after_the_wait),
        cmocka_unit_test(test_a_send_that_read_the_news_is_told),
        cmocka_unit_test(test_a_busy_inbox_does_not_starve_a_quiet_one),
        cmocka_unit_test(test_shared_and_unwatched_inboxes_always_ask),
        cmocka_unit_test(test_an_untold_use_delays_and_never_loses),
        cmocka_unit_test(test_an_untold_message_is_found_while_busy),
        cmocka_unit_test(test_a_late_arrival_is_not_a_missed_wakeup),
        cmocka_unit_test(test_waits_time_out),
        cmocka_unit_test(test_every_message_from_another_thread_is_read),
        cmocka_unit_test(test_events_of_a_socket_whose_context_ended), /* last: ends czmq's */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
