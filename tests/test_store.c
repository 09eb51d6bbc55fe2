/*  The broker's queues and their store, without the network.
 *
 *  - cv_queue alone: take order (priority, then acceptance), seqs, acks,
 *    ring growth and wrap-around, the done marks that cv_queue_state saves;
 *  - the router (broker/cv_router.h) through crashes: it keeps the queues
 *    and the store in step (a routes row per report, one sent row per pump,
 *    a drop's route removed, acknowledgements saved); the store is closed,
 *    committed or not, and opened again, and the queues the router reads
 *    back must be the queues from before: same deliveries in flight with
 *    the same seqs, same reports waiting in the same order, no seq ever
 *    given twice, nothing acknowledged back. A randomized run checks all of
 *    that against a reference model of what each queue must still deliver;
 *  - put_report's idempotence and conflicts, and refusal of foreign files;
 *  - retention: purge and its dry run.
 *
 *  Each store lives in a fresh directory under /tmp, removed at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <dirent.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cv_cache.h"
#include "cv_audit.h"
#include "cv_views.h"
#include "cv_queue.h"
#include "cv_router.h"
#include "cv_store.h"
#include "cv_syncer.h"
#include "harness.h"

#define MAX_QUEUES 512  /* store ids of the queues a test makes */
#define VIEW_MAX   8192 /* deliveries or reports one queue holds in a test */
#define PUMP_MAX   64

/*  Runs sql on the store's file, as an intruder or a broken tool would. */
static void sql_file(const char *path, const char *sql);

/* ------------------------------------------------------------------------ */
/*  A view of one queue: what is in flight, by seq, and what waits, in the  */
/*  order it will be taken. Both what a queue holds and what a test or the  */
/*  model expects are views, so that one comparison serves all.             */

typedef struct {
    uint64_t last_seq;
    size_t n_sent, n_waiting;
    cv_sent_t sent[VIEW_MAX];
    cv_routed_t waiting[VIEW_MAX];
} view_t;

static view_t *view_new(uint64_t last_seq)
{
    view_t *v = calloc(1, sizeof *v);
    assert_non_null(v);
    v->last_seq = last_seq;
    return v;
}

static void view_sent(view_t *v, uint64_t seq, int64_t report, int priority)
{
    assert_true(v->n_sent < VIEW_MAX);
    v->sent[v->n_sent++] = (cv_sent_t){.seq = seq, .item = {report, priority}};
}

static void view_wait(view_t *v, int64_t report, int priority)
{
    assert_true(v->n_waiting < VIEW_MAX);
    v->waiting[v->n_waiting++] = (cv_routed_t){report, priority};
}

/*  What q holds. Waiting reports can only be seen by taking them, so they
 *  are taken and pushed back in the same order: each priority's ring gets
 *  its reports again in order of acceptance, which leaves q as it was. */
static view_t *view_of(cv_queue_t *q)
{
    view_t *v = view_new(cv_queue_last_seq(q));
    const cv_sent_t *s;
    for (uint64_t after = 0; (s = cv_queue_sent_after(q, after)); after = s->seq)
        view_sent(v, s->seq, s->item.report, s->item.priority);
    assert_int_equal(v->n_sent, cv_queue_in_flight(q));
    cv_routed_t item;
    while (cv_queue_take(q, &item))
        view_wait(v, item.report, item.priority);
    for (size_t i = 0; i < v->n_waiting; i++)
        assert_true(cv_queue_push(q, v->waiting[i]));
    assert_int_equal(cv_queue_size(q), v->n_sent + v->n_waiting);
    return v;
}

static const char *sent_text(char *buf, size_t size, const cv_sent_t *s)
{
    if (!s)
        return "nothing";
    snprintf(buf, size, "seq %llu report %lld (p%d)", (unsigned long long)s->seq,
             (long long)s->item.report, s->item.priority);
    return buf;
}

static const char *routed_text(char *buf, size_t size, const cv_routed_t *r)
{
    if (!r)
        return "nothing";
    snprintf(buf, size, "report %lld (p%d)", (long long)r->report, r->priority);
    return buf;
}

static bool sent_equal(const cv_sent_t *a, const cv_sent_t *b)
{
    return a && b && a->seq == b->seq && a->item.report == b->item.report &&
           a->item.priority == b->item.priority;
}

static bool routed_equal(const cv_routed_t *a, const cv_routed_t *b)
{
    return a && b && a->report == b->report && a->priority == b->priority;
}

/*  The first difference, printed: a failing round trip says where. */
static bool views_equal(const view_t *got, const view_t *want, const char *what)
{
    char g[64], w[64];
    if (got->last_seq != want->last_seq) {
        print_error("%s: last_seq %llu, want %llu\n", what, (unsigned long long)got->last_seq,
                    (unsigned long long)want->last_seq);
        return false;
    }
    for (size_t i = 0; i < got->n_sent || i < want->n_sent; i++) {
        const cv_sent_t *a = i < got->n_sent ? &got->sent[i] : NULL;
        const cv_sent_t *b = i < want->n_sent ? &want->sent[i] : NULL;
        if (!sent_equal(a, b)) {
            print_error("%s: in flight #%zu: %s, want %s\n", what, i, sent_text(g, sizeof g, a),
                        sent_text(w, sizeof w, b));
            return false;
        }
    }
    for (size_t i = 0; i < got->n_waiting || i < want->n_waiting; i++) {
        const cv_routed_t *a = i < got->n_waiting ? &got->waiting[i] : NULL;
        const cv_routed_t *b = i < want->n_waiting ? &want->waiting[i] : NULL;
        if (!routed_equal(a, b)) {
            print_error("%s: waiting #%zu: %s, want %s\n", what, i, routed_text(g, sizeof g, a),
                        routed_text(w, sizeof w, b));
            return false;
        }
    }
    return true;
}

/*  Checks q against want, and frees want. */
static void assert_queue_is(cv_queue_t *q, view_t *want, const char *what)
{
    view_t *got = view_of(q);
    bool same = views_equal(got, want, what);
    free(got);
    free(want);
    assert_true(same);
}

/* ------------------------------------------------------------------------ */
/*  A reference model of one queue: plain arrays, no rings, no store.       */

typedef struct {
    int64_t wait[CV_PRIORITIES][VIEW_MAX];
    size_t wait_head[CV_PRIORITIES], wait_tail[CV_PRIORITIES];
    cv_sent_t fly[VIEW_MAX];
    size_t fly_head, fly_tail;
    uint64_t last_seq, acked_seq;
} model_t;

static void model_push(model_t *m, int64_t report, int priority)
{
    assert_true(m->wait_tail[priority] < VIEW_MAX);
    m->wait[priority][m->wait_tail[priority]++] = report;
}

/*  Most urgent first, then in order of acceptance (docs/protocol.md 5). */
static bool model_take(model_t *m, cv_routed_t *item)
{
    for (int p = CV_PRIORITIES - 1; p >= 0; p--)
        if (m->wait_head[p] < m->wait_tail[p]) {
            *item = (cv_routed_t){m->wait[p][m->wait_head[p]++], p};
            return true;
        }
    return false;
}

static uint64_t model_give(model_t *m, cv_routed_t item)
{
    assert_true(m->fly_tail < VIEW_MAX);
    m->fly[m->fly_tail++] = (cv_sent_t){.seq = ++m->last_seq, .item = item};
    return m->last_seq;
}

static size_t model_ack(model_t *m, uint64_t up_to)
{
    size_t n = 0;
    while (m->fly_head < m->fly_tail && m->fly[m->fly_head].seq <= up_to)
        m->fly_head++, n++;
    if (up_to > m->acked_seq)
        m->acked_seq = up_to;
    return n;
}

static view_t *model_view(const model_t *m)
{
    view_t *v = view_new(m->last_seq);
    for (size_t i = m->fly_head; i < m->fly_tail; i++)
        view_sent(v, m->fly[i].seq, m->fly[i].item.report, m->fly[i].item.priority);
    for (int p = CV_PRIORITIES - 1; p >= 0; p--)
        for (size_t i = m->wait_head[p]; i < m->wait_tail[p]; i++)
            view_wait(v, m->wait[p][i], p);
    return v;
}

/*  A small deterministic generator: a failure replays with the same seed
 *  (CAVEAT_TEST_SEED picks another). */
static uint64_t rng = 0x9e3779b97f4a7c15u;

static void rng_seed(uint64_t fallback)
{
    const char *env = getenv("CAVEAT_TEST_SEED");
    rng = env && *env ? strtoull(env, NULL, 0) : fallback;
    if (!rng)
        rng = 1;
}

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)((rng >> 16) % n);
}

/* ------------------------------------------------------------------------ */
/*  cv_queue alone.                                                         */

static cv_queue_t *queue_new(void)
{
    cv_queue_t *q = cv_queue_new(1, "agency", "feed");
    assert_non_null(q);
    return q;
}

static void push(cv_queue_t *q, int64_t report, int priority)
{
    assert_true(cv_queue_push(q, (cv_routed_t){report, priority}));
}

static void take_expect(cv_queue_t *q, int64_t report, int priority)
{
    cv_routed_t item;
    assert_true(cv_queue_take(q, &item));
    assert_int_equal(item.report, report);
    assert_int_equal(item.priority, priority);
}

/*  Takes the next report and gives it the next seq, as a pump does. */
static uint64_t send_next(cv_queue_t *q)
{
    cv_routed_t item;
    assert_true(cv_queue_take(q, &item));
    return cv_queue_give_seq(q, item);
}

static void test_queue_take_order(void **state)
{
    (void)state;
    cv_queue_t *q = queue_new();
    cv_routed_t item;
    assert_false(cv_queue_take(q, &item));
    push(q, 1, 0);
    push(q, 2, 2);
    push(q, 3, 1);
    push(q, 4, 0);
    push(q, 5, 2);
    push(q, 6, 1);
    push(q, 7, 9);  /* unknown priorities are routine */
    push(q, 8, -1); /* (the store's encoding has room for 0..2 only) */
    assert_int_equal(cv_queue_size(q), 8);
    take_expect(q, 2, 2);
    take_expect(q, 5, 2);
    take_expect(q, 3, 1);
    /* an IMMEDIATE report accepted now overtakes what waits below it */
    push(q, 9, 2);
    take_expect(q, 9, 2);
    take_expect(q, 6, 1);
    take_expect(q, 1, 0);
    take_expect(q, 4, 0);
    take_expect(q, 7, 0);
    take_expect(q, 8, 0);
    assert_false(cv_queue_take(q, &item));
    assert_int_equal(cv_queue_size(q), 0);
    assert_int_equal(cv_queue_last_seq(q), 0); /* taking alone gives no seq */
    cv_queue_destroy(&q);
    assert_null(q);
}

static void test_queue_names(void **state)
{
    (void)state;
    cv_queue_t *q = cv_queue_new(42, "ministry", "");
    assert_non_null(q);
    assert_int_equal(cv_queue_id(q), 42);
    assert_string_equal(cv_queue_agency(q), "ministry");
    assert_string_equal(cv_queue_feed(q), "");
    cv_queue_destroy(&q);
    cv_queue_destroy(&q); /* harmless twice, and on NULL */
    cv_queue_destroy(NULL);
}

/*  The key the router and the sessions find a queue by: the agency's
 *  length first, so that no agency and feed spell another pair's key;
 *  on the heap past the buffer on the stack. */
static void test_queue_name_keys(void **state)
{
    (void)state;
    cv_queue_name_t a, b;
    assert_string_equal(cv_queue_name(&a, "hull-cc", ""), "7:hull-cc/");
    assert_null(a.heap);
    assert_string_equal(cv_queue_name(&a, "hull-cc", "prevent"), "7:hull-cc/prevent");
    assert_string_not_equal(cv_queue_name(&a, "a/b", "c"), cv_queue_name(&b, "a", "b/c"));
    assert_string_equal(cv_queue_name(&a, "", ""), "0:/");
    char agency[300], want[320 + 16];
    for (size_t len = 249; len <= 252; len++) { /* "250:" + 250 + "/" and NUL fill 256 bytes */
        memset(agency, 'x', len);
        agency[len] = '\0';
        snprintf(want, sizeof want, "%zu:%s/", len, agency);
        assert_string_equal(cv_queue_name(&a, agency, ""), want);
        assert_true((a.heap != NULL) == (strlen(want) + 1 > sizeof a.buf));
        cv_queue_name_free(&a);
        assert_null(a.heap);
    }
    memset(agency, 'x', sizeof agency - 1);
    agency[sizeof agency - 1] = '\0';
    snprintf(want, sizeof want, "%zu:%s/feed", strlen(agency), agency);
    assert_string_equal(cv_queue_name(&a, agency, "feed"), want);
    assert_non_null(a.heap);
    cv_queue_name_free(&a);
}

static void test_queue_give_seq(void **state)
{
    (void)state;
    cv_queue_t *q = queue_new();
    assert_null(cv_queue_sent_after(q, 0));
    for (int i = 1; i <= 5; i++)
        push(q, 10 * i, i == 3 ? 2 : 0);
    /* seqs follow sending order, not acceptance: the IMMEDIATE one is seq 1 */
    for (uint64_t seq = 1; seq <= 5; seq++)
        assert_int_equal(send_next(q), seq);
    assert_int_equal(cv_queue_last_seq(q), 5);
    assert_int_equal(cv_queue_in_flight(q), 5);
    assert_int_equal(cv_queue_size(q), 5); /* in flight still counts as waiting */
    view_t *want = view_new(5);
    view_sent(want, 1, 30, 2);
    view_sent(want, 2, 10, 0);
    view_sent(want, 3, 20, 0);
    view_sent(want, 4, 40, 0);
    view_sent(want, 5, 50, 0);
    assert_queue_is(q, want, "after five sends");
    assert_int_equal(cv_queue_sent_after(q, 3)->seq, 4);
    assert_int_equal(cv_queue_sent_after(q, 3)->item.report, 40);
    assert_null(cv_queue_sent_after(q, 5));
    assert_null(cv_queue_sent_after(q, 1000));
    /* a priority outside the store's encoding is recorded as routine */
    assert_int_equal(cv_queue_give_seq(q, (cv_routed_t){99, 7}), 6);
    assert_int_equal(cv_queue_sent_after(q, 5)->item.priority, 0);
    cv_queue_destroy(&q);
}

static void test_queue_ack(void **state)
{
    (void)state;
    cv_queue_t *q = queue_new();
    for (int i = 1; i <= 5; i++)
        push(q, i, 0);
    for (int i = 0; i < 5; i++)
        send_next(q);
    push(q, 6, 0); /* waiting, not in flight: no ack touches it */
    assert_int_equal(cv_queue_ack(q, 2), 2);
    assert_int_equal(cv_queue_in_flight(q), 3);
    assert_int_equal(cv_queue_size(q), 4);
    /* sent_after below what is left starts at the first left */
    assert_int_equal(cv_queue_sent_after(q, 0)->seq, 3);
    assert_int_equal(cv_queue_sent_after(q, 2)->seq, 3);
    assert_int_equal(cv_queue_sent_after(q, 3)->seq, 4);
    /* acknowledging again what was acknowledged is harmless */
    assert_int_equal(cv_queue_ack(q, 2), 0);
    assert_int_equal(cv_queue_ack(q, 1), 0);
    assert_int_equal(cv_queue_ack(q, 0), 0);
    assert_int_equal(cv_queue_in_flight(q), 3);
    assert_int_equal(cv_queue_ack(q, 5), 3);
    assert_int_equal(cv_queue_in_flight(q), 0);
    assert_null(cv_queue_sent_after(q, 0));
    assert_int_equal(cv_queue_size(q), 1);
    assert_int_equal(cv_queue_ack(q, 5), 0);
    /* seqs go on from where they were */
    assert_int_equal(send_next(q), 6);
    assert_int_equal(cv_queue_sent_after(q, 0)->item.report, 6);
    cv_queue_state_t st;
    cv_queue_state(q, 6, &st);
    assert_int_equal(st.last_seq, 6);
    assert_int_equal(st.acked_seq, 5);
    /* a stale ack lowers nothing: the saved acked_seq decides what comes back */
    assert_int_equal(cv_queue_ack(q, 3), 0);
    cv_queue_state(q, 6, &st);
    assert_int_equal(st.acked_seq, 5);
    assert_int_equal(cv_queue_in_flight(q), 1);
    cv_queue_destroy(&q);
}

/*  Growing while the ring is wrapped must unwrap it in order: 10 in, 8 out
 *  (head at 8 of 16), then 20 more cross the end and the growth. */
static void test_queue_ring_grows_wrapped(void **state)
{
    (void)state;
    cv_queue_t *q = queue_new();
    int64_t next_in = 1, next_out = 1;
    for (; next_in <= 10; next_in++)
        push(q, next_in, 1);
    for (; next_out <= 8; next_out++)
        take_expect(q, next_out, 1);
    for (; next_in <= 30; next_in++)
        push(q, next_in, 1);
    for (; next_out < next_in; next_out++)
        take_expect(q, next_out, 1);
    /* the same for what is in flight: 10 sent, 8 acked, 20 more sent */
    for (int i = 0; i < 30; i++)
        push(q, 100 + i, 0);
    for (int i = 0; i < 10; i++)
        send_next(q);
    assert_int_equal(cv_queue_ack(q, 8), 8);
    for (int i = 0; i < 20; i++)
        send_next(q);
    view_t *want = view_new(30);
    for (uint64_t seq = 9; seq <= 30; seq++)
        view_sent(want, seq, 100 + (int64_t)seq - 1, 0);
    assert_queue_is(q, want, "in flight across growth");
    cv_queue_destroy(&q);
}

/*  Thousands of interleaved pushes, takes, sends and acks keep both kinds
 *  of ring wrapping round and growing; the model says what must be there. */
static void queue_random_step(cv_queue_t *q, model_t *m, int64_t *report)
{
    for (uint32_t k = rnd(4); k > 0; k--) {
        int p = (int)rnd(CV_PRIORITIES);
        push(q, ++*report, p);
        model_push(m, *report, p);
    }
    for (uint32_t k = rnd(4); k > 0; k--) {
        cv_routed_t want, got;
        bool some = model_take(m, &want);
        assert_int_equal(cv_queue_take(q, &got), some);
        if (!some)
            break;
        assert_int_equal(got.report, want.report);
        assert_int_equal(got.priority, want.priority);
        if (rnd(8)) /* mostly sent; sometimes dropped */
            assert_int_equal(cv_queue_give_seq(q, got), model_give(m, want));
    }
    if (rnd(3) == 0) {
        uint64_t up_to = m->last_seq - rnd((uint32_t)(m->last_seq - m->acked_seq) + 2) / 2;
        assert_int_equal(cv_queue_ack(q, up_to), model_ack(m, up_to));
    }
    assert_int_equal(cv_queue_in_flight(q), m->fly_tail - m->fly_head);
}

static void test_queue_random_rings(void **state)
{
    (void)state;
    rng_seed(12345);
    cv_queue_t *q = queue_new();
    model_t *m = calloc(1, sizeof *m);
    assert_non_null(m);
    int64_t report = 0;
    for (int i = 0; i < 4000 && report < VIEW_MAX - 8; i++) {
        queue_random_step(q, m, &report);
        if (i % 500 == 0)
            assert_queue_is(q, model_view(m), "random rings");
    }
    assert_queue_is(q, model_view(m), "random rings, at the end");
    free(m);
    cv_queue_destroy(&q);
}

static void assert_done(const cv_queue_state_t *st, int64_t d0, int64_t d1, int64_t d2)
{
    assert_int_equal(st->done[0], d0);
    assert_int_equal(st->done[1], d1);
    assert_int_equal(st->done[2], d2);
}

/*  done[p]: everything of priority p below it is finished. Nothing left ->
 *  max_report; otherwise one below the first report waiting or in flight. */
static void test_queue_state_done_marks(void **state)
{
    (void)state;
    cv_queue_t *q = queue_new();
    cv_queue_state_t st;
    cv_queue_state(q, 50, &st);
    assert_int_equal(st.last_seq, 0);
    assert_int_equal(st.acked_seq, 0);
    assert_done(&st, 50, 50, 50);
    push(q, 5, 0);
    push(q, 7, 0);
    cv_queue_state(q, 50, &st);
    assert_done(&st, 4, 50, 50); /* the waiting front */
    send_next(q);                /* 5 in flight (seq 1), 7 waits */
    cv_queue_state(q, 50, &st);
    assert_done(&st, 4, 50, 50);
    assert_int_equal(st.last_seq, 1);
    cv_queue_ack(q, 1);
    cv_queue_state(q, 50, &st);
    assert_done(&st, 6, 50, 50);
    assert_int_equal(st.acked_seq, 1);
    send_next(q); /* 7 in flight (seq 2): the first in flight of priority 0 */
    cv_queue_state(q, 50, &st);
    assert_done(&st, 6, 50, 50);
    cv_queue_ack(q, 2);
    cv_queue_state(q, 60, &st);
    assert_done(&st, 60, 60, 60);
    cv_queue_destroy(&q);
}

static void test_queue_state_mixed_priorities(void **state)
{
    (void)state;
    cv_queue_t *q = queue_new();
    cv_queue_state_t st;
    push(q, 1, 0);
    push(q, 2, 0);
    push(q, 3, 1);
    push(q, 4, 2);
    push(q, 5, 1);
    push(q, 6, 0);
    send_next(q); /* seq 1: 4 (p2) */
    send_next(q); /* seq 2: 3 (p1) */
    send_next(q); /* seq 3: 5 (p1) */
    send_next(q); /* seq 4: 1 (p0); 2 and 6 wait */
    cv_queue_state(q, 9, &st);
    assert_done(&st, 0, 2, 3);
    /* acks finish seqs in order, whatever their priorities */
    cv_queue_ack(q, 2);
    cv_queue_state(q, 9, &st);
    assert_done(&st, 0, 4, 9);
    cv_queue_ack(q, 4);
    cv_queue_state(q, 9, &st);
    assert_done(&st, 1, 9, 9);
    assert_int_equal(st.last_seq, 4);
    assert_int_equal(st.acked_seq, 4);
    cv_queue_destroy(&q);
}

/*  Restoring as cv_store_load drives it: state, then sends, then routes.
 *  The history: seqs 3..6 went in one pump, (25 p2, 11 p0, 12 p0, 21 p1),
 *  acknowledged up to 4 and saved then; seq 7 (31 p2) went in a pump after
 *  the save. 13, 22 and 40 wait; the rest finished before. */
static void test_queue_restore(void **state)
{
    (void)state;
    cv_queue_t *q = queue_new();
    cv_queue_state_t st = {.last_seq = 6, .acked_seq = 4, .done = {11, 20, 30}};
    cv_queue_restore_state(q, &st);
    assert_true(cv_queue_restore_sent(q, 3, (cv_routed_t){25, 2})); /* acknowledged: skipped */
    assert_true(cv_queue_restore_sent(q, 4, (cv_routed_t){11, 0}));
    assert_true(cv_queue_restore_sent(q, 5, (cv_routed_t){12, 0}));
    assert_true(cv_queue_restore_sent(q, 6, (cv_routed_t){21, 1}));
    assert_true(cv_queue_restore_sent(q, 7, (cv_routed_t){31, 2})); /* raises last_seq */
    static const cv_routed_t routes[] = {{9, 0},  {11, 0}, {12, 0}, {13, 0}, {15, 1},
                                         {21, 1}, {22, 1}, {25, 2}, {31, 2}, {40, 0}};
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        assert_true(cv_queue_restore_route(q, routes[i]));
    view_t *want = view_new(7);
    view_sent(want, 5, 12, 0);
    view_sent(want, 6, 21, 1);
    view_sent(want, 7, 31, 2);
    view_wait(want, 22, 1);
    view_wait(want, 13, 0);
    view_wait(want, 40, 0);
    assert_queue_is(q, want, "restored");
    assert_int_equal(send_next(q), 8);
    cv_queue_state(q, 40, &st);
    assert_int_equal(st.acked_seq, 4);
    assert_done(&st, 11, 20, 30);
    cv_queue_destroy(&q);
}

/* ------------------------------------------------------------------------ */
/*  A store and the queues built from it, kept in step as the broker does.  */

typedef struct {
    char dir[64];
    cv_store_t *store;
    cv_router_t *router;
    struct {
        char agency[32], feed[32];
    } names[MAX_QUEUES]; /* of the queues, by store id */
    int64_t max_report;  /* the router's */
    int reports;         /* ids made so far */
    bool full_sync;      /* CV_SYNC_FULL, as caveatd runs; otherwise OFF, for speed */
    int64_t *routed;     /* reports the store's routes rows listed at the last load, in order */
    size_t n_routed, routed_cap;
} rig_t;

/*  A store call that must succeed, with err in scope: says why when not. */
#define MUST(call)                                                                                 \
    do {                                                                                           \
        if (!(call)) {                                                                             \
            print_error("%s: %s\n", #call, err.msg);                                               \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

static void make_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/cv-test-store.XXXXXX");
    assert_non_null(mkdtemp(dir));
}

/*  The store's directory holds files only (caveat.db, -wal, -shm). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    assert_int_equal(rmdir(dir), 0);
}

static void rig_open(rig_t *r)
{
    cv_error_t err = {0};
    r->store = cv_store_open(r->dir, r->full_sync ? CV_SYNC_FULL : CV_SYNC_OFF, &err);
    if (!r->store)
        print_error("open %s: %s\n", r->dir, err.msg);
    assert_non_null(r->store);
    cv_router_destroy(&r->router); /* a test may have closed the store by hand */
    r->router = cv_router_new(r->store);
    assert_non_null(r->router);
}

/*  What a test has open, so that teardown cleans up after a failed
 *  assertion too: no store left running, no directory left in /tmp. */
static rig_t *live_rig;
static char scratch[64];

static rig_t *rig_new(void)
{
    rig_t *r = calloc(1, sizeof *r);
    assert_non_null(r);
    live_rig = r;
    make_dir(r->dir, sizeof r->dir);
    rig_open(r);
    return r;
}

/*  The store closed, as by a crash: what was not committed is lost. */
static void rig_close(rig_t *r)
{
    cv_router_destroy(&r->router);
    cv_store_close(&r->store);
}

static void rig_free(rig_t *r)
{
    rig_close(r);
    remove_dir(r->dir);
    free(r->routed);
    free(r);
    live_rig = NULL;
}

/*  A directory for a test without a rig. */
static const char *scratch_dir(void)
{
    make_dir(scratch, sizeof scratch);
    return scratch;
}

static void scratch_done(void)
{
    remove_dir(scratch);
    scratch[0] = '\0';
}

/*  The queue with store id, or NULL when the router has none. */
static cv_queue_t *rig_find(rig_t *r, int64_t id)
{
    return r->names[id].agency[0]
               ? cv_router_find(r->router, r->names[id].agency, r->names[id].feed)
               : NULL;
}

static cv_queue_t *rig_queue(rig_t *r, int64_t id)
{
    assert_true(id > 0 && id < MAX_QUEUES);
    cv_queue_t *q = cv_router_find(r->router, r->names[id].agency, r->names[id].feed);
    assert_non_null(q);
    assert_int_equal(cv_queue_id(q), id);
    return q;
}

static void begin(rig_t *r)
{
    cv_error_t err = {0};
    MUST(cv_store_begin(r->store, &err));
}

static void commit(rig_t *r)
{
    cv_error_t err = {0};
    MUST(cv_store_commit(r->store, &err));
}

/*  The queue (agency, feed), made in the store and in memory when new. */
static int64_t queue_of(rig_t *r, const char *agency, const char *feed)
{
    cv_error_t err = {0};
    cv_queue_t *q = cv_router_queue(r->router, agency, feed, &err);
    if (!q)
        print_error("queue %s/%s: %s\n", agency, feed, err.msg);
    assert_non_null(q);
    int64_t id = cv_queue_id(q);
    assert_true(id > 0 && id < MAX_QUEUES);
    snprintf(r->names[id].agency, sizeof r->names[id].agency, "%s", agency);
    snprintf(r->names[id].feed, sizeof r->names[id].feed, "%s", feed);
    return id;
}

static int64_t put_report(rig_t *r, const char *id, const char *category, int64_t created)
{
    cv_error_t err = {0};
    char body[64];
    int len = snprintf(body, sizeof body, "body of %s", id);
    /* accepted when it was created: retention counts from both */
    cv_stored_report_t report = {id, "originator", category, created, created * 1000, NULL, NULL};
    int64_t rowid = -1;
    cv_put_t put =
        cv_store_put_report(r->store, &report, (const uint8_t *)body, (size_t)len, &rowid, &err);
    if (put != CV_PUT_NEW)
        print_error("put %s: %d %s\n", id, (int)put, err.msg);
    assert_int_equal(put, CV_PUT_NEW);
    assert_true(rowid > 0);
    return rowid;
}

/*  A report stored and routed to queues (by id) by the router. */
static int64_t publish_in(rig_t *r, const char *category, int64_t created, int priority,
                          const int64_t *queues, size_t n)
{
    cv_error_t err = {0};
    char id[32];
    snprintf(id, sizeof id, "report-%d", ++r->reports);
    int64_t rowid = put_report(r, id, category, created);
    cv_queue_t *to[MAX_QUEUES];
    assert_true(n <= MAX_QUEUES);
    for (size_t i = 0; i < n; i++)
        to[i] = rig_queue(r, queues[i]);
    MUST(cv_router_route(r->router, rowid, priority, to, n, &err));
    r->max_report = cv_router_max_report(r->router);
    return rowid;
}

static int64_t publish(rig_t *r, int priority, const int64_t *queues, size_t n)
{
    return publish_in(r, "general", 1000 + r->reports, priority, queues, n);
}

static int64_t publish1(rig_t *r, int priority, int64_t queue)
{
    return publish(r, priority, &queue, 1);
}

/*  One pump by the router, nothing dropped: up to k taken, each given the
 *  next seq. Returns how many (into out). */
static size_t pump(rig_t *r, int64_t queue, size_t k, cv_sent_t *out)
{
    cv_error_t err = {0};
    cv_pump_t p;
    cv_routed_t item;
    assert_true(k <= PUMP_MAX);
    cv_router_pump_begin(r->router, &p, rig_queue(r, queue));
    uint64_t first = cv_queue_last_seq(p.queue) + 1;
    while (p.n < k && cv_router_pump_take(r->router, &p, &item)) {
        uint64_t seq = cv_router_pump_give(r->router, &p, item);
        assert_int_equal(seq, first + p.n - 1);
        if (out)
            out[p.n - 1] = (cv_sent_t){.seq = seq, .item = item};
    }
    MUST(cv_router_pump_end(r->router, &p, &err));
    return p.n;
}

/*  The next report of queue taken and dropped by a pump (the policy no
 *  longer releases it there); its report. */
static int64_t drop(rig_t *r, int64_t queue)
{
    cv_error_t err = {0};
    cv_pump_t p;
    cv_routed_t item;
    cv_router_pump_begin(r->router, &p, rig_queue(r, queue));
    assert_true(cv_router_pump_take(r->router, &p, &item));
    MUST(cv_router_pump_drop(r->router, &p, item, &err));
    MUST(cv_router_pump_end(r->router, &p, &err));
    return item.report;
}

/*  An acknowledgement, saved at once (the broker saves in bulk). */
static size_t ack(rig_t *r, int64_t queue, uint64_t up_to)
{
    cv_error_t err = {0};
    cv_queue_t *q = rig_queue(r, queue);
    assert_true(up_to <= cv_queue_last_seq(q)); /* broker_on_ack refuses anything above */
    size_t n = cv_router_ack(r->router, q, up_to);
    MUST(cv_router_save_all(r->router, &err));
    return n;
}

/*  What the store's routes rows list, recorded for was_routed: read from
 *  the store, not rebuilt (the router does that). */
static void note_routed(rig_t *r, int64_t report)
{
    if (r->n_routed && r->routed[r->n_routed - 1] == report)
        return; /* a report with many recipients comes in several calls */
    if (r->n_routed == r->routed_cap) {
        r->routed_cap = r->routed_cap ? r->routed_cap * 2 : 64;
        r->routed = realloc(r->routed, r->routed_cap * sizeof *r->routed);
        assert_non_null(r->routed);
    }
    r->routed[r->n_routed++] = report;
}

static void on_queue(void *arg, int64_t id, const char *agency, const char *feed,
                     const cv_queue_state_t *st)
{
    rig_t *r = arg;
    (void)st;
    assert_true(id > 0 && id < MAX_QUEUES);
    snprintf(r->names[id].agency, sizeof r->names[id].agency, "%s", agency);
    snprintf(r->names[id].feed, sizeof r->names[id].feed, "%s", feed);
}

static void on_sent(void *arg, int64_t queue, uint64_t seq, cv_routed_t item)
{
    (void)arg, (void)queue, (void)seq, (void)item;
}

static void on_route(void *arg, int64_t report, int priority, const int64_t *queues, size_t n)
{
    (void)priority, (void)queues, (void)n;
    note_routed(arg, report);
}

/*  The router reads its queues back; the rig notes what the store lists. */
static void rig_load(rig_t *r)
{
    static const cv_store_loader_t loader = {on_queue, on_sent, on_route};
    cv_error_t err = {0};
    int64_t listed = 0;
    r->n_routed = 0;
    MUST(cv_router_load(r->router, &err));
    MUST(cv_store_load(r->store, &loader, r, &listed, &err));
    r->max_report = cv_router_max_report(r->router);
    assert_int_equal(listed, r->max_report);
}

/*  A restart: whatever is not committed is lost, the queues are read back. */
static void restart(rig_t *r)
{
    rig_close(r);
    rig_open(r);
    rig_load(r);
}

static bool was_routed(const rig_t *r, int64_t report)
{
    for (size_t i = 0; i < r->n_routed; i++)
        if (r->routed[i] == report)
            return true;
    return false;
}

static bool states_equal(const cv_queue_state_t *got, const cv_queue_state_t *want,
                         const char *what)
{
    bool same = got->last_seq == want->last_seq && got->acked_seq == want->acked_seq;
    for (int p = 0; p < CV_PRIORITIES; p++)
        same = same && got->done[p] == want->done[p];
    if (!same)
        print_error("%s: state %llu/%llu done %lld %lld %lld, want %llu/%llu done %lld %lld %lld\n",
                    what, (unsigned long long)got->last_seq, (unsigned long long)got->acked_seq,
                    (long long)got->done[0], (long long)got->done[1], (long long)got->done[2],
                    (unsigned long long)want->last_seq, (unsigned long long)want->acked_seq,
                    (long long)want->done[0], (long long)want->done[1], (long long)want->done[2]);
    return same;
}

/*  Every queue must come back as it was, its saved state included. */
static void restart_expect_same(rig_t *r)
{
    view_t *before[MAX_QUEUES] = {NULL};
    cv_queue_state_t states[MAX_QUEUES];
    int64_t max_report = r->max_report;
    for (int id = 0; id < MAX_QUEUES; id++)
        if (rig_find(r, id)) {
            before[id] = view_of(rig_find(r, id));
            cv_queue_state(rig_find(r, id), max_report, &states[id]);
        }
    restart(r);
    bool same = r->max_report == max_report;
    for (int id = 0; id < MAX_QUEUES; id++) {
        char what[64];
        snprintf(what, sizeof what, "queue %d after restart", id);
        if (!before[id] || !rig_find(r, id)) {
            if (!before[id] != !rig_find(r, id))
                print_error("%s: %s\n", what, before[id] ? "gone" : "new");
            same = same && !before[id] == !rig_find(r, id);
            free(before[id]);
            continue;
        }
        cv_queue_state_t st;
        cv_queue_state(rig_find(r, id), max_report, &st);
        view_t *after = view_of(rig_find(r, id));
        same = states_equal(&st, &states[id], what) && views_equal(after, before[id], what) && same;
        free(after);
        free(before[id]);
    }
    assert_true(same);
}

/* ------------------------------------------------------------------------ */
/*  Round trips.                                                            */

static void test_store_empty_round_trip(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    restart(r);
    assert_int_equal(r->max_report, 0);
    begin(r);
    int64_t q = queue_of(r, "a", "");
    assert_int_equal(queue_of(r, "a", ""), q); /* the same queue again */
    assert_true(queue_of(r, "a", "feed") != q);
    commit(r);
    restart_expect_same(r);
    assert_int_equal(cv_queue_last_seq(rig_queue(r, q)), 0);
    assert_string_equal(cv_queue_agency(rig_queue(r, q)), "a");
    assert_string_equal(cv_queue_feed(rig_queue(r, q)), "");
    rig_free(r);
}

static void test_store_waiting_round_trip(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t q = queue_of(r, "a", "");
    int64_t id[6];
    static const int prio[6] = {0, 2, 1, 0, 2, 1};
    for (int i = 0; i < 6; i++)
        id[i] = publish1(r, prio[i], q);
    commit(r);
    restart(r);
    view_t *want = view_new(0);
    view_wait(want, id[1], 2);
    view_wait(want, id[4], 2);
    view_wait(want, id[2], 1);
    view_wait(want, id[5], 1);
    view_wait(want, id[0], 0);
    view_wait(want, id[3], 0);
    assert_queue_is(rig_queue(r, q), want, "priorities survive");
    rig_free(r);
}

/*  Pumps leave the queue's saved state behind: their rows alone must say
 *  how far seqs went, or a restart would give a seq twice. */
static void test_store_last_seq_without_save(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t q = queue_of(r, "a", "");
    int64_t id[6];
    for (int i = 0; i < 6; i++)
        id[i] = publish1(r, 0, q);
    assert_int_equal(pump(r, q, 2, NULL), 2);
    assert_int_equal(ack(r, q, 2), 2); /* saved: last_seq 2 */
    commit(r);
    begin(r);
    assert_int_equal(pump(r, q, 3, NULL), 3); /* seqs 3..5, not saved */
    commit(r);
    restart(r);
    view_t *want = view_new(5);
    view_sent(want, 3, id[2], 0);
    view_sent(want, 4, id[3], 0);
    view_sent(want, 5, id[4], 0);
    view_wait(want, id[5], 0);
    assert_queue_is(rig_queue(r, q), want, "pump not saved");
    begin(r);
    assert_int_equal(pump(r, q, 1, NULL), 1); /* seq 6, never 3 again */
    commit(r);
    restart_expect_same(r);
    assert_int_equal(cv_queue_last_seq(rig_queue(r, q)), 6);
    rig_free(r);
}

/*  A pump acknowledged in part keeps its row; only the rest is resent. */
static void test_store_partly_acked_pump(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t q = queue_of(r, "a", "");
    int64_t id[5];
    for (int i = 0; i < 5; i++)
        id[i] = publish1(r, 0, q);
    assert_int_equal(pump(r, q, 5, NULL), 5);
    commit(r);
    begin(r);
    assert_int_equal(ack(r, q, 3), 3);
    commit(r);
    restart(r);
    view_t *want = view_new(5);
    view_sent(want, 4, id[3], 0);
    view_sent(want, 5, id[4], 0);
    assert_queue_is(rig_queue(r, q), want, "acked up to 3 of 5");
    begin(r);
    assert_int_equal(ack(r, q, 5), 2);
    commit(r);
    restart(r);
    assert_queue_is(rig_queue(r, q), view_new(5), "acked in whole");
    cv_queue_state_t st;
    cv_queue_state(rig_queue(r, q), r->max_report, &st);
    assert_int_equal(st.acked_seq, 5);
    rig_free(r);
}

/*  Nothing acknowledged comes back, whatever order priorities went in. */
static void test_store_acked_stay_gone(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t q = queue_of(r, "a", "");
    int64_t id[9];
    for (int i = 0; i < 9; i++)
        id[i] = publish1(r, i % 3, q);
    cv_sent_t out[PUMP_MAX];
    assert_int_equal(pump(r, q, 4, out), 4); /* 2, 5, 8 (p2); 1 (p1) */
    assert_int_equal(out[0].item.report, id[2]);
    assert_int_equal(out[2].item.report, id[8]);
    assert_int_equal(out[3].item.report, id[1]);
    assert_int_equal(ack(r, q, 3), 3);
    commit(r);
    restart_expect_same(r);
    view_t *want = view_new(4);
    view_sent(want, 4, id[1], 1);
    view_wait(want, id[4], 1);
    view_wait(want, id[7], 1);
    view_wait(want, id[0], 0);
    view_wait(want, id[3], 0);
    view_wait(want, id[6], 0);
    assert_queue_is(rig_queue(r, q), want, "after acking 3");
    begin(r);
    assert_int_equal(pump(r, q, 10, NULL), 5);
    assert_int_equal(ack(r, q, 9), 6);
    commit(r);
    restart_expect_same(r);
    assert_queue_is(rig_queue(r, q), view_new(9), "everything acked");
    cv_queue_state_t st;
    cv_queue_state(rig_queue(r, q), r->max_report, &st);
    assert_done(&st, r->max_report, r->max_report, r->max_report);
    rig_free(r);
}

/*  Reports shared by queues at different points of them. */
static void test_store_shared_reports(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t q[3] = {queue_of(r, "a", ""), queue_of(r, "b", ""), queue_of(r, "b", "screened")};
    for (int i = 0; i < 12; i++) {
        int64_t to[3];
        size_t n = 0;
        for (int k = 0; k < 3; k++)
            if ((i + k) % 4 != 0) /* each queue misses some */
                to[n++] = q[k];
        publish(r, i % 5 == 0 ? 2 : 0, to, n);
    }
    commit(r);
    begin(r);
    pump(r, q[0], 5, NULL);
    ack(r, q[0], 4);
    pump(r, q[1], 2, NULL);
    pump(r, q[1], 3, NULL);
    ack(r, q[1], 1);
    commit(r);
    restart_expect_same(r);
    begin(r);
    pump(r, q[0], 10, NULL);
    pump(r, q[2], 1, NULL);
    ack(r, q[1], 5);
    commit(r);
    restart_expect_same(r);
    rig_free(r);
}

/*  One routes row for 300 recipients: more than one load_routes chunk. */
static void test_store_route_to_300_queues(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t q[300];
    char name[16];
    begin(r);
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "agency-%03d", i);
        q[i] = queue_of(r, name, "");
    }
    int64_t wide = publish(r, 1, q, 300);
    int64_t narrow = publish(r, 2, q + 250, 50);
    commit(r);
    begin(r);
    for (int i = 0; i < 300; i += 3) {
        pump(r, q[i], 1, NULL);
        if (i % 2)
            ack(r, q[i], 1);
    }
    commit(r);
    restart_expect_same(r);
    for (int i = 0; i < 300; i++) {
        bool sent = i % 3 == 0, acked = sent && i % 2;
        int64_t first = i >= 250 ? narrow : wide; /* IMMEDIATE first */
        view_t *want = view_new(sent ? 1 : 0);
        if (sent && !acked)
            view_sent(want, 1, first, first == narrow ? 2 : 1);
        if (i >= 250 && !sent)
            view_wait(want, narrow, 2);
        if (i >= 250 || !sent)
            view_wait(want, wide, 1);
        snprintf(name, sizeof name, "queue %d", i);
        assert_queue_is(rig_queue(r, q[i]), want, name);
    }
    rig_free(r);
}

/*  Routes written together (cv_router_batch_begin/_end) are what routes
 *  written one by one would be: 37 reports (two whole statements and five
 *  alone), to one, two, three or 70 queues each, at three priorities,
 *  read back after a restart as the queues had them. */
static void test_store_routes_in_a_batch(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t q[80];
    char name[16];
    begin(r);
    for (int i = 0; i < 80; i++) {
        snprintf(name, sizeof name, "agency-%02d", i);
        q[i] = queue_of(r, name, "");
    }
    cv_router_batch_begin(r->router);
    for (int k = 0; k < 37; k++)
        publish(r, k % 3, q + k % 10, (size_t)(k % 4 == 3 ? 70 : 1 + k % 4));
    cv_error_t err = {0};
    MUST(cv_router_batch_end(r->router, &err));
    commit(r);
    restart_expect_same(r);
    rig_free(r);
}

/*  A batch of routes the store refuses (a trigger's error on the tenth)
 *  fails at its end with SQLite's message, and the turn rolled back
 *  leaves no report routed. */
static void test_store_routes_batch_failure(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    rig_close(r);
    char path[sizeof r->dir + 16];
    snprintf(path, sizeof path, "%s/caveat.db", r->dir);
    sql_file(path, "CREATE TRIGGER fails AFTER INSERT ON routes WHEN new.report = 10"
                   " BEGIN SELECT json('{'); END;");
    rig_open(r);
    rig_load(r);
    begin(r);
    int64_t q = queue_of(r, "agency", "");
    commit(r);
    begin(r);
    cv_router_batch_begin(r->router);
    for (int k = 0; k < 20; k++)
        publish1(r, 0, q);
    cv_error_t err = {0};
    assert_false(cv_router_batch_end(r->router, &err));
    assert_non_null(strstr(err.msg, "JSON"));
    cv_store_rollback(r->store);
    restart(r);
    assert_int_equal(cv_router_queued(r->router), 0);
    rig_free(r);
}

/*  An uncommitted turn is lost whole: its reports, routes, pumps and acks. */
static void test_store_uncommitted_turn_lost(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t q = queue_of(r, "a", "");
    int64_t kept = publish1(r, 0, q);
    pump(r, q, 1, NULL);
    commit(r);
    begin(r);
    ack(r, q, 1);
    int64_t lost = publish1(r, 2, q);
    pump(r, q, 1, NULL);
    restart(r); /* without commit */
    view_t *want = view_new(1);
    view_sent(want, 1, kept, 0);
    assert_queue_is(rig_queue(r, q), want, "after the lost turn");
    assert_false(was_routed(r, lost));
    rig_free(r);
}

/*  A report a pump dropped (the policy no longer releases it there) loses
 *  its route to that queue in the pump's transaction: no restart queues
 *  it again, whatever the queue's saved state says. */
static void test_store_dropped_report_stays_dropped(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t q = queue_of(r, "a", "");
    int64_t other = queue_of(r, "b", "");
    int64_t a = publish(r, 0, (int64_t[]){q, other}, 2);
    int64_t b = publish1(r, 0, q);
    commit(r);
    begin(r);
    assert_int_equal(drop(r, q), a);
    assert_int_equal(pump(r, q, 1, NULL), 1); /* b: seq 1 */
    commit(r);
    restart(r);
    view_t *want = view_new(1);
    view_sent(want, 1, b, 0);
    assert_queue_is(rig_queue(r, q), want, "dropped, not saved");
    want = view_new(0);
    view_wait(want, a, 0); /* dropped from one queue only */
    assert_queue_is(rig_queue(r, other), want, "the other queue");
    restart_expect_same(r);
    rig_free(r);
}

/*  A drop is lost with its turn: after the crash the report waits again,
 *  in its place, and is sent once, with the next seq. */
static void test_store_drop_lost_with_its_turn(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t q = queue_of(r, "a", "");
    int64_t a = publish1(r, 0, q);
    int64_t b = publish1(r, 0, q);
    commit(r);
    begin(r);
    assert_int_equal(drop(r, q), a);
    pump(r, q, 1, NULL);
    restart(r); /* without commit */
    view_t *want = view_new(0);
    view_wait(want, a, 0);
    view_wait(want, b, 0);
    assert_queue_is(rig_queue(r, q), want, "after the lost turn");
    begin(r);
    cv_sent_t out[2];
    assert_int_equal(pump(r, q, 2, out), 2);
    assert_int_equal(out[0].item.report, a);
    assert_int_equal(out[0].seq, 1);
    commit(r);
    restart_expect_same(r);
    rig_free(r);
}

/*  The report bodies come back as stored. */
static void test_store_get_report(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t q = queue_of(r, "a", "");
    int64_t id = publish1(r, 0, q);
    commit(r);
    restart(r);
    cv_error_t err = {0};
    uint8_t *body = NULL;
    size_t len = 0;
    MUST(cv_store_get_report(r->store, id, &body, &len, &err));
    assert_int_equal(len, strlen("body of report-1"));
    assert_memory_equal(body, "body of report-1", len);
    free(body);
    assert_false(cv_store_get_report(r->store, id + 100, &body, &len, &err));
    assert_non_null(strstr(err.msg, "no report"));
    rig_free(r);
}

/*  Reports read back in a turn are read inside its transaction, one for
 *  them all: a read on its own begins and ends a transaction of its own,
 *  which cost a pump reading back a backlog more than the reads did. A
 *  turn that only read has nothing to sync; outside a turn a read leaves
 *  no transaction open. */
static void test_store_reads_in_a_turn_share_its_transaction(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t id = publish1(r, 0, queue_of(r, "a", ""));
    commit(r);
    sqlite3 *db = cv_store_db(r->store);
    uint64_t commits = cv_store_last_commit(r->store);
    cv_error_t err = {0};
    uint8_t *body = NULL;
    size_t len = 0;
    MUST(cv_store_get_report(r->store, id, &body, &len, &err) == 1);
    free(body);
    assert_true(sqlite3_get_autocommit(db));
    begin(r);
    assert_true(sqlite3_get_autocommit(db)); /* opened by the first use */
    for (int i = 0; i < 3; i++) {
        MUST(cv_store_get_report(r->store, id, &body, &len, &err) == 1);
        free(body);
        assert_false(sqlite3_get_autocommit(db));
    }
    commit(r);
    assert_true(sqlite3_get_autocommit(db));
    assert_int_equal(cv_store_last_commit(r->store), commits);
    rig_free(r);
}

/*  A transaction bigger than the page cache kept between transactions
 *  stays in memory until its commit (no page spilled into the WAL early),
 *  and after it the cache is back to CV_STORE_CACHE_KB: a big cache costs
 *  every commit a walk of it (cv_store.c, configure). */
static void test_store_turn_held_until_commit_cache_kept_small(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    sqlite3 *db = cv_store_db(r->store);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE scratch(b BLOB)", NULL, NULL, NULL), SQLITE_OK);
    int spilled = 0, used = 0, highest = 0;
    sqlite3_db_status(db, SQLITE_DBSTATUS_CACHE_SPILL, &spilled, &highest, 1);
    /* four times the cache kept, half the spill threshold */
    int rows = CV_STORE_CACHE_KB;
    assert_true(rows * 4 < CV_STORE_SPILL_KB);
    char sql[128];
    snprintf(sql, sizeof sql,
             "BEGIN; WITH n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
             " INSERT INTO scratch SELECT randomblob(4000) FROM n;",
             rows);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_db_status(db, SQLITE_DBSTATUS_CACHE_SPILL, &spilled, &highest, 0);
    assert_int_equal(spilled, 0);
    sqlite3_db_status(db, SQLITE_DBSTATUS_CACHE_USED, &used, &highest, 0);
    assert_true(used > 3 * CV_STORE_CACHE_KB * 1024); /* all of it held */
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_db_status(db, SQLITE_DBSTATUS_CACHE_USED, &used, &highest, 0);
    assert_true(used < 2 * CV_STORE_CACHE_KB * 1024);
    rig_free(r);
}

/* ------------------------------------------------------------------------ */
/*  A store altered outside caveat: ids caveat never writes are refused.    */

/*  A store with two queues, two reports routed to both and one delivery
 *  of the first pending on "a"; then sql run on its file, as an intruder
 *  or a broken tool would. Loading it must fail, naming the damage, with
 *  no queue half-loaded (and, under ASan, no write outside the router). */

static void assert_damage_refused(const char *sql)
{
    rig_t *r = rig_new();
    begin(r);
    int64_t qs[2] = {queue_of(r, "a", ""), queue_of(r, "b", "")};
    publish(r, 0, qs, 2);
    publish(r, 0, qs, 2);
    assert_int_equal(pump(r, qs[0], 1, NULL), 1);
    commit(r);
    rig_close(r);
    char path[sizeof r->dir + 16];
    snprintf(path, sizeof path, "%s/caveat.db", r->dir);
    sql_file(path, sql);
    rig_open(r);
    cv_error_t err = {0};
    bool loaded = cv_router_load(r->router, &err);
    if (loaded)
        print_error("%s: loaded\n", sql);
    assert_false(loaded);
    if (!strstr(err.msg, "damaged"))
        print_error("%s: refused with \"%s\"\n", sql, err.msg);
    assert_non_null(strstr(err.msg, "damaged"));
    assert_null(cv_router_find(r->router, "a", ""));
    assert_null(cv_router_find(r->router, "b", ""));
    rig_free(r);
}

static void test_router_refuses_damaged_ids(void **state)
{
    (void)state;
    assert_damage_refused("UPDATE queues SET id = -7 WHERE agency = 'a'");
    assert_damage_refused("UPDATE queues SET id = 0 WHERE agency = 'b'");
    assert_damage_refused("UPDATE queues SET id = 4294967296 WHERE agency = 'b'");
    assert_damage_refused("UPDATE queues SET id = 9223372036854775807 WHERE agency = 'b'");
    /* (routes are read from the oldest report still waiting up: one below 1 is never read) */
    assert_damage_refused("UPDATE sent SET reports = x'ffffffffffffffff'");
    assert_damage_refused("UPDATE sent SET reports = x'0000000000000000'");
}

/*  The broker's report cache is found by rowid: a rowid below 1 (from a
 *  damaged store) still names one of its slots, the one its unsigned
 *  value names, and nothing before the table. */
static void test_cache_rowids_below_one(void **state)
{
    (void)state;
    cv_cache_t *cache = cv_cache_new();
    assert_non_null(cache);
    static const Caveat__Report first = CAVEAT__REPORT__INIT, second = CAVEAT__REPORT__INIT;
    cv_cache_put(cache, -1, &first, NULL, 0);
    assert_ptr_equal(cv_cache_get(cache, -1), &first);
    assert_null(cv_cache_get(cache, 1));
    /* 2^64 - 1 is 16383 modulo the table's 16384 slots: the same slot */
    cv_cache_put(cache, 16383, &second, NULL, 0);
    assert_null(cv_cache_get(cache, -1));
    assert_ptr_equal(cv_cache_get(cache, 16383), &second);
    cv_cache_put(cache, INT64_MIN, &first, NULL, 0);
    assert_ptr_equal(cv_cache_get(cache, INT64_MIN), &first);
    cv_cache_destroy(&cache);
}

/*  A report with subjects subjects, named when named, else empty (2 bytes
 *  each on the wire), packed into *len bytes of a buffer of the caller's. */
static uint8_t *packed_report(size_t subjects, bool named, size_t *len)
{
    Caveat__Report report = CAVEAT__REPORT__INIT;
    report.category = "vulnerable_individual";
    report.narrative = "seen near the station";
    Caveat__Subject *all = calloc(subjects + 1, sizeof *all);
    Caveat__Subject **list = calloc(subjects + 1, sizeof *list);
    assert_true(all && list);
    for (size_t i = 0; i < subjects; i++) {
        caveat__subject__init(&all[i]);
        all[i].name = named ? "Jane Doe" : "";
        list[i] = &all[i];
    }
    report.n_subjects = subjects;
    report.subjects = list;
    *len = caveat__report__get_packed_size(&report);
    uint8_t *bytes = malloc(*len + 1);
    assert_non_null(bytes);
    caveat__report__pack(&report, bytes);
    free(list);
    free(all);
    return bytes;
}

/*  The bytes a report is kept with are a copy, counted against the turn,
 *  given back for that report at that rowid only, and gone with its
 *  generation. */
static void test_cache_keeps_reports_as_stored(void **state)
{
    (void)state;
    cv_cache_t *cache = cv_cache_new();
    assert_non_null(cache);
    size_t len, got;
    uint8_t *bytes = packed_report(3, true, &len);
    Caveat__Report *report = cv_cache_unpack_report(cache, bytes, len);
    assert_non_null(report);
    static const Caveat__Report other = CAVEAT__REPORT__INIT;
    size_t before = cv_cache_turn_bytes(cache);
    cv_cache_put(cache, 7, report, bytes, len);
    assert_int_equal(cv_cache_turn_bytes(cache) - before, len);
    memset(bytes, 0, len); /* the caller's buffer goes, as a frame's does */
    const uint8_t *kept = cv_cache_packed(cache, 7, report, &got);
    assert_non_null(kept);
    assert_int_equal(got, len);
    assert_ptr_not_equal(kept, bytes);
    Caveat__Report *again = caveat__report__unpack(NULL, got, kept);
    assert_non_null(again);
    assert_string_equal(again->narrative, report->narrative);
    caveat__report__free_unpacked(again, NULL);
    assert_null(cv_cache_packed(cache, 7, &other, &got)); /* another report */
    assert_null(cv_cache_packed(cache, 8, report, &got));
    cv_cache_put(cache, 8, report, NULL, 0); /* kept without its bytes */
    assert_null(cv_cache_packed(cache, 8, report, &got));
    assert_int_equal(got, 0);
    free(bytes);
    /* its generation ends once every other one has been filled */
    uint8_t *big = packed_report(20000, true, &len);
    int turns = 0;
    for (; turns < 64 && cv_cache_get(cache, 7); turns++) {
        assert_non_null(cv_cache_packed(cache, 7, report, &got));
        assert_non_null(cv_cache_unpack_report(cache, big, len));
        cv_cache_next_turn(cache);
    }
    assert_true(turns >= 7 && turns < 64);
    assert_null(cv_cache_packed(cache, 7, report, &got));
    free(big);
    cv_cache_destroy(&cache);
}

/*  The hash of a report's kept bytes (what a delivery of the whole report
 *  names) is a copy, given back for that report at that rowid only, never
 *  for one kept without its bytes or put back at the rowid since, and gone
 *  with its generation. */
static void test_cache_keeps_the_hash_of_what_it_keeps(void **state)
{
    (void)state;
    cv_cache_t *cache = cv_cache_new();
    assert_non_null(cache);
    size_t len;
    uint8_t *bytes = packed_report(3, true, &len);
    Caveat__Report *report = cv_cache_unpack_report(cache, bytes, len);
    assert_non_null(report);
    static const Caveat__Report other = CAVEAT__REPORT__INIT;
    uint8_t hash[CV_CHECKSUM_BYTES], want[CV_CHECKSUM_BYTES];
    cv_checksum_sha256(hash, bytes, len);
    memcpy(want, hash, sizeof want);
    cv_cache_put(cache, 7, report, bytes, len);
    assert_null(cv_cache_view_hash(cache, 7, report)); /* not given yet */
    cv_cache_put_view_hash(cache, 7, report, hash);
    memset(hash, 0, sizeof hash); /* the caller's goes, as a hasher job's does */
    const uint8_t *kept = cv_cache_view_hash(cache, 7, report);
    assert_non_null(kept);
    assert_memory_equal(kept, want, sizeof want);
    assert_null(cv_cache_view_hash(cache, 7, &other)); /* another report */
    assert_null(cv_cache_view_hash(cache, 8, report));
    cv_cache_put(cache, 8, report, NULL, 0); /* kept without its bytes: no hash of them */
    cv_cache_put_view_hash(cache, 8, report, want);
    assert_null(cv_cache_view_hash(cache, 8, report));
    cv_cache_put_view_hash(cache, 9, report, want); /* nothing kept at 9 */
    assert_null(cv_cache_view_hash(cache, 9, report));
    cv_cache_put(cache, 7, report, bytes, len); /* put back: the old hash is not its */
    assert_null(cv_cache_view_hash(cache, 7, report));
    cv_cache_put_view_hash(cache, 7, report, want);
    uint8_t *big = packed_report(20000, true, &len);
    int turns = 0;
    for (; turns < 64 && cv_cache_get(cache, 7); turns++) {
        assert_memory_equal(cv_cache_view_hash(cache, 7, report), want, sizeof want);
        assert_non_null(cv_cache_unpack_report(cache, big, len));
        cv_cache_next_turn(cache);
    }
    assert_true(turns >= 7 && turns < 64);
    assert_null(cv_cache_view_hash(cache, 7, report));
    free(big);
    free(bytes);
    cv_cache_destroy(&cache);
}

/*  The cache holds the most credit a session may ask (MAX_CREDIT, 10,000
 *  deliveries) of typical reports (the vulnerable_individual example,
 *  about 2 KB kept, as workload 1's), each kept with its packed bytes as a
 *  Publish's are: a subscriber that far behind the publisher is sent them
 *  from memory, not each read back from the store. In steady state: the
 *  cache already full, and turns small (a turn ends a generation only
 *  once it is full, so large turns would let generations hold more). */
static void test_cache_holds_a_whole_credit(void **state)
{
    (void)state;
    Caveat__Report *example = harness_report("vulnerable_individual");
    assert_non_null(example);
    size_t len = caveat__report__get_packed_size(example);
    uint8_t *bytes = malloc(len);
    assert_non_null(bytes);
    caveat__report__pack(example, bytes);
    caveat__report__free_unpacked(example, NULL);
    cv_cache_t *cache = cv_cache_new();
    assert_non_null(cache);
    enum { CREDIT = 10000, TURN = 20, FIRST = 3 * CREDIT };
    for (int64_t rowid = 1; rowid < FIRST + CREDIT; rowid++) { /* 3 credits first */
        Caveat__Report *report = cv_cache_unpack_report(cache, bytes, len);
        assert_non_null(report);
        cv_cache_put(cache, rowid, report, bytes, len);
        if (rowid % TURN == 0)
            cv_cache_next_turn(cache);
    }
    for (int64_t rowid = FIRST; rowid < FIRST + CREDIT; rowid++)
        assert_non_null(cv_cache_get(cache, rowid));
    free(bytes);
    cv_cache_destroy(&cache);
}

/*  A report read back from the store is counted as what it takes unpacked,
 *  never more than cv_proto_unpack_bound says (which lets the broker skip
 *  unpacking a report again to check it), and one that would take more
 *  than 16 times its size and 64 KiB is neither stored (cv_cache_report_fits)
 *  nor read back: one of empty subjects, 2 bytes each on the wire, would. */
static void test_cache_counts_reports_as_unpacked(void **state)
{
    (void)state;
    cv_cache_t *cache = cv_cache_new();
    assert_non_null(cache);
    static const size_t counts[] = {0, 1, 15, 16, 17, 100, 1000, 3000};
    for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
        for (int named = 0; named < 2; named++) {
            size_t len;
            uint8_t *bytes = packed_report(counts[c], named, &len);
            size_t before = cv_cache_turn_reads(cache);
            Caveat__Report *report = cv_cache_unpack_report(cache, bytes, len);
            size_t took = cv_cache_turn_reads(cache) - before;
            bool large = !named && counts[c] >= 3000;
            assert_true(took >= len);
            if (large) { /* refused when stored, and when read back */
                assert_null(report);
                assert_true(took > 16 * len);
            } else {
                assert_non_null(report);
                assert_true(took <= cv_proto_unpack_bound(&report->base));
                assert_true(cv_cache_report_fits(cache, report, bytes, len));
            }
            free(bytes);
        }
    }
    /* the check unpacks again only past the bound, and then decides alone */
    size_t len;
    uint8_t *bytes = packed_report(3000, false, &len);
    Caveat__Report *whole = caveat__report__unpack(NULL, len, bytes);
    assert_non_null(whole);
    assert_true(cv_proto_unpack_bound(&whole->base) > 16 * len + 64 * 1024);
    assert_false(cv_cache_report_fits(cache, whole, bytes, len));
    caveat__report__free_unpacked(whole, NULL);
    free(bytes);
    cv_cache_next_turn(cache);
    assert_int_equal(cv_cache_turn_reads(cache), 0);
    cv_cache_destroy(&cache);
}

/* ------------------------------------------------------------------------ */
/*  The randomized model test: five queues, thousands of operations.       */

#define MODEL_QUEUES 5

typedef struct {
    rig_t *rig;
    int64_t ids[MODEL_QUEUES];
    model_t *now[MODEL_QUEUES];       /* what the turn so far has done */
    model_t *committed[MODEL_QUEUES]; /* what the store holds */
    int restarts, crashes;
} world_t;

static void world_publish(world_t *w)
{
    int priority = (int)rnd(CV_PRIORITIES);
    uint32_t mask = rnd(1u << MODEL_QUEUES); /* sometimes nobody */
    int64_t to[MODEL_QUEUES];
    size_t n = 0;
    for (int i = 0; i < MODEL_QUEUES; i++)
        if (mask & (1u << i))
            to[n++] = w->ids[i];
    int64_t report = publish(w->rig, priority, to, n);
    for (int i = 0; i < MODEL_QUEUES; i++)
        if (mask & (1u << i))
            model_push(w->now[i], report, priority);
}

static void world_pump(world_t *w)
{
    int i = (int)rnd(MODEL_QUEUES);
    cv_sent_t out[PUMP_MAX];
    size_t k = 1 + rnd(8);
    size_t n = pump(w->rig, w->ids[i], k, out);
    for (size_t j = 0; j < n; j++) {
        cv_routed_t want;
        assert_true(model_take(w->now[i], &want));
        assert_int_equal(out[j].item.report, want.report);
        assert_int_equal(out[j].item.priority, want.priority);
        assert_int_equal(out[j].seq, model_give(w->now[i], want));
    }
    cv_routed_t none;
    if (n < k) /* the queue ran dry: so must the model */
        assert_false(model_take(w->now[i], &none));
}

static void world_ack(world_t *w)
{
    int i = (int)rnd(MODEL_QUEUES);
    model_t *m = w->now[i];
    /* mostly near the end, sometimes stale, never above last_seq */
    uint64_t up_to = rnd(4) ? m->last_seq - rnd((uint32_t)(m->last_seq - m->acked_seq) + 1)
                            : rnd((uint32_t)m->last_seq + 1);
    assert_int_equal(ack(w->rig, w->ids[i], up_to), model_ack(m, up_to));
}

static void world_copy(model_t **to, model_t *const *from)
{
    for (int i = 0; i < MODEL_QUEUES; i++)
        memcpy(to[i], from[i], sizeof *to[i]);
}

/*  After a restart every queue must be what the committed model says. */
static void world_check(world_t *w)
{
    for (int i = 0; i < MODEL_QUEUES; i++) {
        char what[64];
        snprintf(what, sizeof what, "queue %d after %d restarts", i, w->restarts);
        cv_queue_t *q = rig_queue(w->rig, w->ids[i]);
        cv_queue_state_t st;
        cv_queue_state(q, w->rig->max_report, &st);
        assert_int_equal(st.acked_seq, w->now[i]->acked_seq);
        assert_queue_is(q, model_view(w->now[i]), what);
    }
}

/*  One turn: a few operations, then commit, or a crash that loses it. */
static void world_turn(world_t *w)
{
    begin(w->rig);
    for (uint32_t k = 1 + rnd(4); k > 0; k--) {
        uint32_t op = rnd(100);
        if (op < 45)
            world_publish(w);
        else if (op < 75)
            world_pump(w);
        else
            world_ack(w);
    }
    uint32_t end = rnd(100);
    if (end < 3) {
        restart(w->rig); /* the turn never committed */
        world_copy(w->now, w->committed);
        w->crashes++;
        world_check(w);
        return;
    }
    commit(w->rig);
    world_copy(w->committed, w->now);
    if (end < 7) {
        restart(w->rig);
        w->restarts++;
        world_check(w);
    }
}

static world_t world; /* freed by teardown, also after a failure */

static void world_free(void)
{
    for (int i = 0; i < MODEL_QUEUES; i++) {
        free(world.now[i]);
        free(world.committed[i]);
    }
    memset(&world, 0, sizeof world);
}

static void test_store_random_model(void **state)
{
    (void)state;
    rng_seed(20261124);
    print_message("seed %llu (CAVEAT_TEST_SEED)\n", (unsigned long long)rng);
    world_t w = {rig_new(), {0}, {NULL}, {NULL}, 0, 0};
    world = w;
    for (int i = 0; i < MODEL_QUEUES; i++) {
        world.now[i] = w.now[i] = calloc(1, sizeof(model_t));
        world.committed[i] = w.committed[i] = calloc(1, sizeof(model_t));
        assert_true(w.now[i] && w.committed[i]);
    }
    begin(w.rig);
    for (int i = 0; i < MODEL_QUEUES; i++) {
        char name[16];
        snprintf(name, sizeof name, "agency-%d", i);
        w.ids[i] = queue_of(w.rig, name, i % 2 ? "feed" : "");
    }
    commit(w.rig);
    for (int turn = 0; turn < 1500; turn++)
        world_turn(&w);
    restart(w.rig);
    world_check(&w);
    assert_true(w.restarts > 10 && w.crashes > 10); /* the run did what it claims */
    world_free();
    rig_free(w.rig);
}

/* ------------------------------------------------------------------------ */
/*  put_report.                                                             */

static cv_put_t put_raw(rig_t *r, const char *id, const char *originator, const char *body,
                        int64_t *rowid)
{
    cv_error_t err = {0};
    cv_stored_report_t report = {id, originator, "general", 1000, 1000 * 1000, NULL, NULL};
    return cv_store_put_report(r->store, &report, (const uint8_t *)body, strlen(body), rowid, &err);
}

/*  The report is stored already, as rowid. */
static void expect_same(rig_t *r, const char *id, const char *originator, const char *body,
                        int64_t rowid)
{
    int64_t again = 0;
    assert_int_equal(put_raw(r, id, originator, body, &again), CV_PUT_SAME);
    assert_int_equal(again, rowid);
}

static void test_put_same_and_conflict(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t first = 0, second = 0, again = 0;
    begin(r);
    assert_int_equal(put_raw(r, "x", "org-a", "body", &first), CV_PUT_NEW);
    assert_int_equal(put_raw(r, "y", "org-a", "other", &second), CV_PUT_NEW);
    assert_true(second > first);
    assert_int_equal(put_raw(r, "x", "org-a", "body", &again), CV_PUT_SAME);
    assert_int_equal(again, first); /* the earlier rowid, not the last insert's */
    commit(r);
    restart(r);
    expect_same(r, "x", "org-a", "body", first);
    assert_int_equal(put_raw(r, "x", "org-a", "bodY", &again), CV_PUT_CONFLICT);
    assert_int_equal(put_raw(r, "x", "org-a", "body!", &again), CV_PUT_CONFLICT);
    assert_int_equal(put_raw(r, "x", "org-a", "", &again), CV_PUT_CONFLICT);
    /* a conflict stores nothing: the first body is still there */
    cv_error_t err = {0};
    uint8_t *body = NULL;
    size_t len = 0;
    MUST(cv_store_get_report(r->store, first, &body, &len, &err));
    assert_int_equal(len, 4);
    assert_memory_equal(body, "body", 4);
    free(body);
    rig_free(r);
}

/*  An insert that fails inside a turn takes back that report alone: the
 *  turn's other reports stay, and the failed one left no row, no index
 *  entry and no rowid behind. */
static void test_put_failure_undoes_the_report_alone(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t first = 0, failed = 0, last = 0, again = 0;
    begin(r);
    assert_int_equal(put_raw(r, "x", "org-a", "body", &first), CV_PUT_NEW);
    cv_error_t err = {0};
    cv_stored_report_t bad = {"y", "org-a", NULL, 1000, 1000 * 1000, NULL, NULL}; /* NOT NULL */
    assert_int_equal(cv_store_put_report(r->store, &bad, (const uint8_t *)"b", 1, &failed, &err),
                     CV_PUT_UNDONE);
    assert_non_null(strstr(err.msg, "NOT NULL"));
    assert_int_equal(put_raw(r, "z", "org-a", "last", &last), CV_PUT_NEW);
    assert_int_equal(last, first + 1); /* the failed insert gave no rowid away */
    commit(r);
    restart(r);
    expect_same(r, "x", "org-a", "body", first);
    expect_same(r, "z", "org-a", "last", last);
    assert_int_equal(put_raw(r, "y", "org-a", "b", &again), CV_PUT_NEW); /* no trace of it */
    rig_free(r);
}

/*  A rig whose store has a trigger of the test's own, to fail writes. */
static rig_t *rig_with_trigger(const char *trigger)
{
    rig_t *r = rig_new();
    rig_close(r);
    char path[sizeof r->dir + 16];
    snprintf(path, sizeof path, "%s/caveat.db", r->dir);
    sql_file(path, trigger);
    rig_open(r);
    rig_load(r);
    return r;
}

/*  A rig whose store fails an insert of the id "bad" after the row is in
 *  (a function's error). */
static rig_t *rig_failing_on_bad(void)
{
    return rig_with_trigger("CREATE TRIGGER fails AFTER INSERT ON reports WHEN new.id = 'bad'"
                            " BEGIN SELECT json('{'); END;");
}

/*  An insert that fails for any reason but a constraint may have written
 *  part of its row before it failed: the turn must not commit it, so the
 *  put says the turn failed, and rolled back the turn holds neither
 *  report. */
static void test_put_other_failure_fails_the_turn(void **state)
{
    (void)state;
    rig_t *r = rig_failing_on_bad();
    int64_t first = 0, failed = 0;
    begin(r);
    assert_int_equal(put_raw(r, "x", "org-a", "body", &first), CV_PUT_NEW);
    cv_error_t err = {0};
    cv_stored_report_t bad = {"bad", "org-a", "general", 1000, 1000 * 1000, NULL, NULL};
    assert_int_equal(cv_store_put_report(r->store, &bad, (const uint8_t *)"b", 1, &failed, &err),
                     CV_PUT_FAILED);
    assert_non_null(strstr(err.msg, "JSON"));
    cv_store_rollback(r->store);
    restart(r);
    begin(r);
    assert_int_equal(put_raw(r, "x", "org-a", "body", &first), CV_PUT_NEW); /* nothing kept */
    commit(r);
    rig_free(r);
}

/*  Ids are the originator's: another agency's use of one takes nothing
 *  from it, nor tells it that the id exists. */
static void test_put_ids_scoped_by_originator(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t b_first = 0, a_own = 0, again = 0;
    begin(r);
    /* org-b publishes org-a's id before org-a does */
    assert_int_equal(put_raw(r, "x", "org-b", "b's report", &b_first), CV_PUT_NEW);
    assert_int_equal(put_raw(r, "x", "org-a", "a's report", &a_own), CV_PUT_NEW);
    assert_true(a_own != b_first);
    commit(r);
    restart(r);
    expect_same(r, "x", "org-a", "a's report", a_own);
    expect_same(r, "x", "org-b", "b's report", b_first);
    /* a conflict is within one originator only */
    assert_int_equal(put_raw(r, "x", "org-a", "b's report", &again), CV_PUT_CONFLICT);
    assert_int_equal(again, a_own);
    cv_error_t err = {0};
    uint8_t *body = NULL;
    size_t len = 0;
    MUST(cv_store_get_report(r->store, a_own, &body, &len, &err) == 1);
    assert_int_equal(len, strlen("a's report"));
    assert_memory_equal(body, "a's report", len);
    free(body);
    rig_free(r);
}

static cv_put_t put_digest(rig_t *r, const char *id, const char *body, const char *submitted,
                           int64_t *rowid)
{
    cv_error_t err = {0};
    uint8_t digest[CV_DIGEST_BYTES];
    cv_store_checksum_fn(r->store)(digest, submitted, strlen(submitted));
    cv_stored_report_t report = {id, "org-a", "general", 1000, 0, digest, NULL};
    return cv_store_put_report(r->store, &report, (const uint8_t *)body, strlen(body), rowid, &err);
}

/*  The checksum column of report rowid, as written. */
static void stored_checksum(rig_t *r, int64_t rowid, uint8_t sum[CV_DIGEST_BYTES])
{
    char path[128], sql[96];
    snprintf(path, sizeof path, "%s/caveat.db", r->dir);
    snprintf(sql, sizeof sql, "SELECT checksum FROM reports WHERE n = %lld", (long long)rowid);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_bytes(s, 0), CV_DIGEST_BYTES);
    memcpy(sum, sqlite3_column_blob(s, 0), CV_DIGEST_BYTES);
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/*  A store made now keeps SHA-256 checksums; one of format 4, made by a
 *  broker before, keeps BLAKE2b-256, so that what it holds still reads
 *  back, and a body whose checksum is the other sum is corrupt. Worked
 *  out here with each library's own function, not the store's. */
static void test_the_checksum_follows_the_format(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t rowid = 0;
    uint8_t want[CV_DIGEST_BYTES], got[CV_DIGEST_BYTES];
    assert_string_equal(cv_store_checksum_name(r->store), "sha-256");
    begin(r);
    assert_int_equal(put_raw(r, "new", "org-a", "a body", &rowid), CV_PUT_NEW);
    commit(r);
    rig_close(r);
    cv_audit_sha256("a body", strlen("a body"), want);
    stored_checksum(r, rowid, got);
    assert_memory_equal(got, want, sizeof want);
    rig_open(r); /* and so it stays */
    assert_string_equal(cv_store_checksum_name(r->store), "sha-256");
    cv_error_t err = {0};
    uint8_t *body = NULL;
    size_t len = 0;
    MUST(cv_store_get_report(r->store, rowid, &body, &len, &err) == 1);
    free(body);
    rig_close(r);

    char path[128];
    snprintf(path, sizeof path, "%s/caveat.db", r->dir);
    sql_file(path, "UPDATE meta SET value = '4' WHERE key = 'version'");
    rig_open(r);
    assert_string_equal(cv_store_checksum_name(r->store), "blake2b-256");
    assert_int_equal(cv_store_get_report(r->store, rowid, &body, &len, &err), CV_GET_CORRUPT);
    begin(r);
    assert_int_equal(put_raw(r, "old", "org-a", "a body too", &rowid), CV_PUT_NEW);
    commit(r);
    MUST(cv_store_get_report(r->store, rowid, &body, &len, &err) == 1);
    free(body);
    rig_close(r);
    crypto_generichash(want, sizeof want, (const uint8_t *)"a body too", strlen("a body too"), NULL,
                       0);
    stored_checksum(r, rowid, got);
    assert_memory_equal(got, want, sizeof want);
    rig_open(r);
    rig_free(r);
}

/*  A retry is the same report when what the originator sent is, although
 *  the broker stamped another time into the body it stores. */
static void test_put_retry_same_by_digest(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t first = 0, again = 0;
    begin(r);
    assert_int_equal(put_digest(r, "x", "sent, stamped 10:00:00", "sent", &first), CV_PUT_NEW);
    commit(r);
    restart(r);
    assert_int_equal(put_digest(r, "x", "sent, stamped 10:00:01", "sent", &again), CV_PUT_SAME);
    assert_int_equal(again, first);
    assert_int_equal(put_digest(r, "x", "sent, stamped 10:00:00", "other", &again),
                     CV_PUT_CONFLICT);
    /* the body stored is the first one */
    cv_error_t err = {0};
    uint8_t *body = NULL;
    size_t len = 0;
    MUST(cv_store_get_report(r->store, first, &body, &len, &err) == 1);
    assert_int_equal(len, strlen("sent, stamped 10:00:00"));
    assert_memory_equal(body, "sent, stamped 10:00:00", len);
    free(body);
    rig_free(r);
}

/* ------------------------------------------------------------------------ */
/*  Foreign files are refused, and left as they were.                       */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static void sql_file(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        print_error("%s: %s\n", sql, msg);
    assert_null(msg);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_int_equal(chmod(path, 0600), 0); /* as a store's is: refused for its content */
}

/*  The body stored as rowid, or "" when there is none. */
static void body_of(rig_t *r, int64_t rowid, char *out, size_t size)
{
    cv_error_t err = {0};
    uint8_t *body = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (cv_store_get_report(r->store, rowid, &body, &len, &err) == 1)
        snprintf(out, size, "%.*s", (int)len, (const char *)body);
    free(body);
}

/*  Reports put in batches (cv_store_put_reports) come out as they do put
 *  one by one, in another store: in rounds of 0 to 40 reports, most of
 *  them new, a quarter drawn from a few ids, two originators and three
 *  bodies, so that a round holds whole batches of new reports and
 *  batches with retries and conflicts, with earlier rounds and within the
 *  batch, at any place in it. Each rowid names the body the one-by-one
 *  store's names (a body names its report), a new report's is past every
 *  earlier one's (nothing given twice), and it all reads back after a
 *  restart. */
static void test_put_reports_as_one_by_one(void **state)
{
    (void)state;
    static const char *const ids[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"};
    static const char *const originators[] = {"org-a", "org-b"};
    rig_t *batched = rig_new(), *single = rig_new();
    uint32_t seed = 7;
    int64_t highest = 0;
    size_t kinds[5] = {0}, fresh = 0;
    for (int round = 0; round < 40; round++) {
        size_t n = (size_t)(round * 7 % 41);
        cv_put_item_t items[40];
        char names[40][16], bodies[40][32];
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245 + 12345;
            /* one in four of the few ids, which come back; the rest new */
            if ((seed >> 4) % 4 == 0)
                snprintf(names[i], sizeof names[i], "%s", ids[(seed >> 8) % 12]);
            else
                snprintf(names[i], sizeof names[i], "new-%zu", fresh++);
            cv_stored_report_t report = {
                names[i], originators[(seed >> 16) % 2], "general", 1000, 1000 * 1000, NULL, NULL};
            /* a body names its report, so that a rowid's body tells whose */
            snprintf(bodies[i], sizeof bodies[i], "%s %s %u", names[i], report.originator,
                     (seed >> 20) % 3);
            items[i] = (cv_put_item_t){
                .report = report, .body = (const uint8_t *)bodies[i], .len = strlen(bodies[i])};
        }
        cv_error_t err = {0};
        begin(batched);
        begin(single);
        cv_store_put_reports(batched->store, items, n, &err);
        assert_string_equal(err.msg, "");
        int64_t round_highest = highest;
        for (size_t i = 0; i < n; i++) {
            int64_t rowid = 0;
            cv_put_t put = cv_store_put_report(single->store, &items[i].report, items[i].body,
                                               items[i].len, &rowid, &err);
            assert_int_equal(items[i].put, put);
            kinds[put]++;
            char got[64], want[64];
            body_of(batched, items[i].rowid, got, sizeof got);
            body_of(single, rowid, want, sizeof want);
            assert_string_equal(got, want);
            if (put == CV_PUT_NEW) {
                assert_true(items[i].rowid > highest);
                round_highest = items[i].rowid > round_highest ? items[i].rowid : round_highest;
            } else {
                assert_true(items[i].rowid > 0);
            }
        }
        highest = round_highest;
        commit(batched);
        commit(single);
    }
    /* every kind came up, and a batch had its duplicates */
    assert_true(kinds[CV_PUT_NEW] >= 200 && kinds[CV_PUT_SAME] >= 20 &&
                kinds[CV_PUT_CONFLICT] >= 20);
    restart(batched);
    for (size_t i = 0; i < 12; i++)
        for (size_t o = 0; o < 2; o++) {
            int64_t rowid = 0;
            char body[64];
            cv_error_t err = {0};
            cv_stored_report_t report = {ids[i], originators[o], "general", 1000, 0, NULL, NULL};
            cv_put_t put =
                cv_store_put_report(batched->store, &report, (const uint8_t *)"x", 1, &rowid, &err);
            if (put == CV_PUT_NEW) { /* never drawn: the next rowid is past all */
                assert_true(rowid > highest);
                continue;
            }
            assert_int_equal(put, CV_PUT_CONFLICT);
            body_of(batched, rowid, body, sizeof body);
            assert_true(strncmp(body, ids[i], 1) == 0 && strstr(body, originators[o]));
        }
    rig_free(batched);
    rig_free(single);
}

/*  A batch whose first report retries the newest stored before it: the
 *  rows it inserted are told from that one, the retry is the same report
 *  and the rest are new. */
static void test_put_reports_retry_of_the_newest(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t newest = 0;
    begin(r);
    assert_int_equal(put_raw(r, "old", "org-a", "old body", &newest), CV_PUT_NEW);
    char ids[CV_PUT_BATCH][8];
    cv_put_item_t items[CV_PUT_BATCH];
    for (int i = 0; i < CV_PUT_BATCH; i++) {
        snprintf(ids[i], sizeof ids[i], i == 0 ? "old" : "r%d", i);
        cv_stored_report_t report = {ids[i], "org-a", "general", 1000, 1000 * 1000, NULL, NULL};
        const char *body = i == 0 ? "old body" : "new body";
        items[i] =
            (cv_put_item_t){.report = report, .body = (const uint8_t *)body, .len = strlen(body)};
    }
    cv_error_t err = {0};
    cv_store_put_reports(r->store, items, CV_PUT_BATCH, &err);
    assert_int_equal(items[0].put, CV_PUT_SAME);
    assert_int_equal(items[0].rowid, newest);
    for (int i = 1; i < CV_PUT_BATCH; i++) {
        assert_int_equal(items[i].put, CV_PUT_NEW);
        assert_true(items[i].rowid > newest);
        expect_same(r, ids[i], "org-a", "new body", items[i].rowid);
    }
    commit(r);
    rig_free(r);
}

/*  A batch that fails (a trigger's error on its fifth report) fails every
 *  report of it and every one after it, with SQLite's message, and leaves
 *  nothing once the turn rolls back. */
static void put_reports_failing(rig_t *r, const char *message);

static void test_put_reports_failure_fails_the_rest(void **state)
{
    (void)state;
    put_reports_failing(rig_failing_on_bad(), "JSON");
    /* a constraint's refusal (RAISE(FAIL) keeps the statement's rows before
     * it) fails them too: a single insert's would refuse its report alone */
    put_reports_failing(rig_with_trigger("CREATE TRIGGER refuses BEFORE INSERT ON reports"
                                         " WHEN new.id = 'bad' BEGIN"
                                         " SELECT RAISE(FAIL, 'refused by the test'); END;"),
                        "refused by the test");
}

/*  A batch of CV_PUT_BATCH + 3 reports whose fifth is "bad", in r's store
 *  that fails it with message: every report fails, and after the rollback
 *  nothing is kept. Frees r. */
static void put_reports_failing(rig_t *r, const char *message)
{
    char ids[CV_PUT_BATCH + 3][8];
    cv_put_item_t items[CV_PUT_BATCH + 3];
    for (int i = 0; i < CV_PUT_BATCH + 3; i++) {
        snprintf(ids[i], sizeof ids[i], i == 4 ? "bad" : "r%d", i);
        cv_stored_report_t report = {ids[i], "org-a", "general", 1000, 1000 * 1000, NULL, NULL};
        items[i] = (cv_put_item_t){.report = report, .body = (const uint8_t *)"body", .len = 4};
    }
    cv_error_t err = {0};
    begin(r);
    cv_store_put_reports(r->store, items, CV_PUT_BATCH + 3, &err);
    for (int i = 0; i < CV_PUT_BATCH + 3; i++)
        assert_int_equal(items[i].put, CV_PUT_FAILED);
    assert_non_null(strstr(err.msg, message));
    cv_store_rollback(r->store);
    restart(r);
    begin(r);
    int64_t rowid = 0;
    assert_int_equal(put_raw(r, "r0", "org-a", "other", &rowid), CV_PUT_NEW); /* nothing kept */
    commit(r);
    rig_free(r);
}

/*  Opens dir, which must be refused with a message containing why, and
 *  checks that nothing in it was written. */
static void assert_refused(const char *dir, const char *why)
{
    char path[256], side[sizeof path + 8];
    snprintf(path, sizeof path, "%s/caveat.db", dir);
    size_t before_len, after_len;
    char *before = slurp(path, &before_len);
    cv_error_t err = {0};
    cv_store_t *s = cv_store_open(dir, CV_SYNC_OFF, &err);
    assert_null(s);
    if (!strstr(err.msg, why))
        print_error("refused with \"%s\", want \"%s\"\n", err.msg, why);
    assert_non_null(strstr(err.msg, why));
    assert_non_null(strstr(err.msg, path)); /* which file */
    char *after = slurp(path, &after_len);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    free(before);
    free(after);
    snprintf(side, sizeof side, "%s-wal", path);
    assert_int_not_equal(access(side, F_OK), 0); /* not even switched to WAL */
}

static void test_refuses_foreign_sqlite(void **state)
{
    (void)state;
    const char *dir = scratch_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/caveat.db", dir);
    sql_file(path, "CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT);"
                   "INSERT INTO accounts(name) VALUES('keep me');");
    assert_refused(dir, "not a caveat store");
    /* a meta table alone, of someone else's format, is not enough */
    sql_file(path, "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                   "INSERT INTO meta VALUES('format', 'other-store'), ('version', '2');");
    assert_refused(dir, "not a caveat store");
    scratch_done();
}

static void test_refuses_garbage_file(void **state)
{
    (void)state;
    const char *dir = scratch_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/caveat.db", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not a database at all\n", f);
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);
    assert_refused(dir, "not a caveat store");
    scratch_done();
}

/*  Format version 1 (a queue table of entries) and a future version 4. */
static void test_refuses_other_versions(void **state)
{
    (void)state;
    static const char *const versions[] = {"1", "6"};
    for (size_t i = 0; i < 2; i++) {
        const char *dir = scratch_dir();
        char path[128], sql[512], why[64];
        snprintf(path, sizeof path, "%s/caveat.db", dir);
        snprintf(sql, sizeof sql,
                 "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                 "INSERT INTO meta VALUES('format', 'caveat-store'), ('version', '%s');"
                 "CREATE TABLE queue(entry INTEGER PRIMARY KEY AUTOINCREMENT, queue INTEGER,"
                 " report INTEGER, priority INTEGER, seq INTEGER);",
                 versions[i]);
        sql_file(path, sql);
        snprintf(why, sizeof why, "version %s", versions[i]);
        assert_refused(dir, why);
        scratch_done();
    }
}

/* ------------------------------------------------------------------------ */
/*  The data directory: one store in it, the owner's alone.                 */

static const char *path_in(const char *dir, const char *name)
{
    static char path[2][256];
    static int which;
    which = !which; /* two at a time */
    snprintf(path[which], sizeof path[which], "%s/%s", dir, name);
    return path[which];
}

static int mode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

/*  Opens dir, which must be refused with a message containing each of
 *  why and also. */
static void assert_open_refused(const char *dir, const char *why, const char *also)
{
    cv_error_t err = {0};
    cv_store_t *s = cv_store_open(dir, CV_SYNC_OFF, &err);
    cv_store_close(&s);
    if (!strstr(err.msg, why) || !strstr(err.msg, also))
        print_error("refused with \"%s\", want \"%s\" and \"%s\"\n", err.msg, why, also);
    assert_non_null(strstr(err.msg, why));
    assert_non_null(strstr(err.msg, also));
}

static void test_one_store_per_directory(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    /* in this process: flock locks belong to the open file */
    assert_open_refused(r->dir, "another caveatd is using this data directory", r->dir);
    /* in another: the child only tries to open, it never runs a store */
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        cv_error_t err = {0};
        cv_store_t *s = cv_store_open(r->dir, CV_SYNC_OFF, &err);
        _exit(!s && strstr(err.msg, "another caveatd is using this data directory") ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* the lock goes with the store */
    restart(r);
    rig_free(r);
}

static void test_refuses_loose_modes(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    cv_store_close(&r->store);
    static const int loose_dirs[] = {0750, 0705, 0701, 0770};
    char mode[8];
    for (size_t i = 0; i < sizeof loose_dirs / sizeof *loose_dirs; i++) {
        assert_int_equal(chmod(r->dir, (mode_t)loose_dirs[i]), 0);
        snprintf(mode, sizeof mode, "%04o", loose_dirs[i]);
        assert_open_refused(r->dir, mode, r->dir);
    }
    assert_int_equal(chmod(r->dir, 0700), 0);
    const char *db = path_in(r->dir, "caveat.db");
    static const int loose_files[] = {0640, 0604, 0660, 0610};
    for (size_t i = 0; i < sizeof loose_files / sizeof *loose_files; i++) {
        assert_int_equal(chmod(db, (mode_t)loose_files[i]), 0);
        snprintf(mode, sizeof mode, "%04o", loose_files[i]);
        assert_open_refused(r->dir, mode, db);
    }
    assert_int_equal(chmod(db, 0600), 0);
    rig_open(r);
    rig_free(r);
}

/*  caveat.db is made 0600 whatever the umask, and SQLite gives its WAL and
 *  shared-memory files the database's mode. */
static void test_store_files_are_owner_only(void **state)
{
    (void)state;
    mode_t old = umask(022);
    rig_t *r = calloc(1, sizeof *r);
    assert_non_null(r);
    live_rig = r;
    r->full_sync = true;
    make_dir(r->dir, sizeof r->dir);
    rig_open(r);
    umask(old);
    begin(r);
    int64_t q = queue_of(r, "a", "");
    for (int i = 0; i < 20; i++)
        publish1(r, 0, q);
    commit(r);
    static const char *const files[] = {"caveat.db", "caveat.db-wal", "caveat.db-shm",
                                        "caveat.lock"};
    for (size_t i = 0; i < 4; i++) {
        int mode = mode_of(path_in(r->dir, files[i]));
        if (mode != 0600)
            print_error("%s: mode %04o\n", files[i], mode);
        assert_int_equal(mode, 0600);
    }
    rig_free(r);
}

/*  What an operator's sqlite3 does: open, read, close. Run as a process of
 *  its own (this program, --count-reports), as the sqlite3 shell would be. */
static int count_reports(const char *path, int flags)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int n = -1;
    if (sqlite3_open_v2(path, &db, flags, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM reports", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static int count_reports_elsewhere(const char *path)
{
    extern char **environ;
    char *argv[] = {"test_store", "--count-reports", (char *)path, NULL};
    pid_t child;
    int status = 0;
    assert_int_equal(posix_spawn(&child, "/proc/self/exe", NULL, NULL, argv, environ), 0);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void publish_and_commit(rig_t *r, int64_t q, int n)
{
    begin(r);
    for (int i = 0; i < n; i++)
        publish1(r, 0, q);
    commit(r);
}

/*  A reader beside the broker, in its process or another, must not take
 *  the store for unused: the start-up sync once closed a descriptor of
 *  caveat.db under SQLite, which dropped SQLite's locks on it, and the
 *  reader's close then checkpointed and deleted the WAL the broker was
 *  still writing to. */
static void test_store_reader_leaves_wal(void **state)
{
    (void)state;
    rig_t *r = calloc(1, sizeof *r);
    assert_non_null(r);
    live_rig = r;
    r->full_sync = true;
    make_dir(r->dir, sizeof r->dir);
    rig_open(r);
    char db[256];
    snprintf(db, sizeof db, "%s", path_in(r->dir, "caveat.db"));
    begin(r);
    int64_t q = queue_of(r, "a", "");
    commit(r);
    publish_and_commit(r, q, 5);
    assert_int_equal(count_reports(db, SQLITE_OPEN_READONLY), 5);
    publish_and_commit(r, q, 5);
    assert_int_equal(access(path_in(r->dir, "caveat.db-wal"), F_OK), 0);
    assert_int_equal(count_reports_elsewhere(db), 10);
    publish_and_commit(r, q, 5);
    assert_int_equal(access(path_in(r->dir, "caveat.db-wal"), F_OK), 0);
    assert_int_equal(count_reports_elsewhere(db), 15);
    cv_store_sync_wait(r->store, 5000);
    cv_store_close(&r->store);
    assert_int_equal(count_reports(db, SQLITE_OPEN_READONLY), 15);
    rig_open(r);
    rig_load(r);
    for (int64_t report = 1; report <= 15; report++)
        assert_true(was_routed(r, report));
    rig_free(r);
}

/* ------------------------------------------------------------------------ */
/*  Corrupt bodies and the quarantine.                                      */

/*  Changes one byte of a stored body behind the store's back (closed). */
static void flip_body_byte(const char *dir, int64_t report)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open(path_in(dir, "caveat.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT body FROM reports WHERE n = ?1", -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(s, 1, report);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int len = sqlite3_column_bytes(s, 0);
    assert_true(len > 3);
    uint8_t *body = malloc((size_t)len);
    assert_non_null(body);
    memcpy(body, sqlite3_column_blob(s, 0), (size_t)len);
    sqlite3_finalize(s);
    body[3] ^= 0x20;
    assert_int_equal(
        sqlite3_prepare_v2(db, "UPDATE reports SET body = ?2 WHERE n = ?1", -1, &s, NULL),
        SQLITE_OK);
    sqlite3_bind_int64(s, 1, report);
    sqlite3_bind_blob(s, 2, body, len, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    free(body);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static int get_result(rig_t *r, int64_t report, cv_error_t *err)
{
    uint8_t *body = NULL;
    size_t len = 0;
    int found = cv_store_get_report(r->store, report, &body, &len, err);
    free(body);
    return found;
}

static void test_store_corrupt_body(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t q = queue_of(r, "a", "");
    int64_t good = publish1(r, 0, q);
    int64_t bad = publish1(r, 0, q);
    commit(r);
    cv_store_close(&r->store);
    flip_body_byte(r->dir, bad);
    rig_open(r);
    cv_error_t err = {0};
    assert_int_equal(get_result(r, bad, &err), CV_GET_CORRUPT);
    assert_non_null(strstr(err.msg, "report-2")); /* which report */
    assert_non_null(strstr(err.msg, "corrupt"));
    assert_int_equal(get_result(r, good, &err), 1);
    rig_free(r);
}

typedef struct {
    int calls;
    int64_t report;
    char id[32], originator[32], category[32], reason[64], when[32];
} quarantine_seen_t;

static void on_quarantined(void *arg, int64_t report, const char *id, const char *originator,
                           const char *category, const char *reason, const char *when)
{
    quarantine_seen_t *seen = arg;
    seen->calls++;
    seen->report = report;
    snprintf(seen->id, sizeof seen->id, "%s", id);
    snprintf(seen->originator, sizeof seen->originator, "%s", originator);
    snprintf(seen->category, sizeof seen->category, "%s", category);
    snprintf(seen->reason, sizeof seen->reason, "%s", reason);
    snprintf(seen->when, sizeof seen->when, "%s", when);
}

static void assert_quarantined(rig_t *r, int64_t report)
{
    cv_error_t err = {0};
    quarantine_seen_t seen = {0};
    assert_int_equal(cv_store_quarantined(r->store, on_quarantined, &seen, &err), 1);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.report, report);
    assert_string_equal(seen.id, "report-2");
    assert_string_equal(seen.originator, "originator");
    assert_string_equal(seen.category, "general");
    assert_string_equal(seen.reason, "checksum mismatch");
    assert_true(strlen(seen.when) >= 20 && seen.when[4] == '-' && seen.when[10] == 'T');
}

/*  A corrupt report moved aside: no queue holds it again, reads say it is
 *  gone, and the rest goes on. One in flight keeps its seq. */
static void test_store_quarantine(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t q = queue_of(r, "a", "");
    int64_t first = publish1(r, 0, q);
    int64_t bad = publish1(r, 0, q);
    int64_t last = publish1(r, 0, q);
    int64_t flying = publish1(r, 2, queue_of(r, "b", "")); /* report-4, sent below */
    assert_int_equal(pump(r, queue_of(r, "b", ""), 1, NULL), 1);
    commit(r);
    cv_store_close(&r->store);
    flip_body_byte(r->dir, bad);
    rig_open(r);
    cv_error_t err = {0};
    assert_int_equal(get_result(r, bad, &err), CV_GET_CORRUPT);
    begin(r);
    MUST(cv_store_quarantine(r->store, bad, "checksum mismatch", &err));
    MUST(cv_store_quarantine(r->store, flying, "checksum mismatch", &err));
    MUST(cv_store_quarantine(r->store, bad, "again", &err)); /* nothing more */
    commit(r);
    assert_int_equal(get_result(r, bad, &err), 0);
    rig_load(r);
    assert_false(was_routed(r, bad));
    view_t *want = view_new(0);
    view_wait(want, first, 0);
    view_wait(want, last, 0);
    assert_queue_is(rig_queue(r, q), want, "after the quarantine");
    /* in flight: its seq stays given, and it reads as gone */
    want = view_new(1);
    view_sent(want, 1, flying, 2);
    assert_queue_is(rig_queue(r, queue_of(r, "b", "")), want, "in flight");
    assert_int_equal(get_result(r, flying, &err), 0);
    restart(r);
    assert_false(was_routed(r, bad));
    assert_int_equal(get_result(r, bad, &err), 0);
    quarantine_seen_t seen = {0};
    assert_int_equal(cv_store_quarantined(r->store, on_quarantined, &seen, &err), 2);
    /* no such report */
    begin(r);
    assert_false(cv_store_quarantine(r->store, 999, "none", &err));
    assert_non_null(strstr(err.msg, "999"));
    commit(r);
    rig_free(r);
}

/*  The quarantine is kept: it survives a restart, with the reason. */
static void test_store_quarantine_survives_reopen(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t q = queue_of(r, "a", "");
    publish1(r, 0, q);
    int64_t bad = publish1(r, 1, q);
    commit(r);
    cv_error_t err = {0};
    assert_int_equal(cv_store_quarantined(r->store, NULL, NULL, &err), 0);
    begin(r);
    MUST(cv_store_quarantine(r->store, bad, "checksum mismatch", &err));
    commit(r);
    restart(r);
    assert_quarantined(r, bad);
    assert_false(was_routed(r, bad));
    rig_free(r);
}

/* ------------------------------------------------------------------------ */
/*  A store of format version 2 is upgraded at open.                        */

/*  Format 2's schema, as that version made it. */
static const char format_2_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE reports(n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  originator TEXT NOT NULL,"
    "  category TEXT NOT NULL, created INTEGER NOT NULL,"
    "  accepted INTEGER NOT NULL,"
    "  body BLOB NOT NULL);"
    "CREATE INDEX reports_age ON reports(category, created);"
    "CREATE TABLE purges(report_id TEXT NOT NULL, originator TEXT NOT NULL,"
    "  category TEXT NOT NULL, created INTEGER NOT NULL, rule TEXT NOT NULL,"
    "  purged TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));"
    "CREATE TABLE queues(id INTEGER PRIMARY KEY, agency TEXT NOT NULL, feed TEXT NOT NULL,"
    "  last_seq INTEGER NOT NULL DEFAULT 0, acked_seq INTEGER NOT NULL DEFAULT 0,"
    "  done0 INTEGER NOT NULL DEFAULT 0, done1 INTEGER NOT NULL DEFAULT 0,"
    "  done2 INTEGER NOT NULL DEFAULT 0, UNIQUE(agency, feed));"
    "CREATE TABLE routes(report INTEGER PRIMARY KEY, priority INTEGER NOT NULL,"
    "  queues BLOB NOT NULL);"
    "CREATE TABLE sent(queue INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,"
    "  reports BLOB NOT NULL, PRIMARY KEY(queue, first)) WITHOUT ROWID;"
    "INSERT INTO meta VALUES('format', 'caveat-store'), ('version', '2');"
    "PRAGMA journal_mode=WAL;";

/*  Queue 1 ("a"), reports 1, 2 and 5 routed to it (3, 4 and the newest,
 *  7, purged: the next rowid is 8), report 1 sent with seq 1. */
static const char format_2_rows_sql[] =
    "INSERT INTO queues(id, agency, feed) VALUES(1, 'a', '');"
    "INSERT INTO reports VALUES(1, 'r1', 'org-a', 'general', 1000, 1000000, 'body of r1');"
    "INSERT INTO reports VALUES(2, 'r2', 'org-a', 'general', 1001, 1001000, 'body of r2');"
    "INSERT INTO reports VALUES(5, 'r5', 'org-b', 'other', 1002, 1002000, 'body of r5');"
    "UPDATE sqlite_sequence SET seq = 7 WHERE name = 'reports';"
    "INSERT INTO routes VALUES(1, 0, x'01000000'), (2, 0, x'01000000'), (5, 1, x'01000000');"
    "INSERT INTO sent VALUES(1, 1, 1, x'0400000000000000');"
    "UPDATE queues SET last_seq = 1 WHERE id = 1;";

static int store_version(const char *dir)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int version = -1;
    if (sqlite3_open_v2(path_in(dir, "caveat.db"), &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'version'", -1, &s, NULL) ==
            SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return version;
}

/*  The page size of the store's database, by its own connection. */
static int page_bytes(rig_t *r)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(cv_store_db(r->store), "PRAGMA page_size", -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int bytes = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return bytes;
}

/*  A store made new has pages of CV_STORE_PAGE_BYTES, and keeps them when
 *  opened again: the checkpointer copies a page a write (cv_store.h). */
static void test_store_made_with_large_pages(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    assert_int_equal(page_bytes(r), CV_STORE_PAGE_BYTES);
    begin(r);
    int64_t id = publish1(r, 0, queue_of(r, "a", ""));
    commit(r);
    restart(r);
    assert_int_equal(page_bytes(r), CV_STORE_PAGE_BYTES);
    cv_error_t err = {0};
    uint8_t *body = NULL;
    size_t len = 0;
    MUST(cv_store_get_report(r->store, id, &body, &len, &err) == 1);
    free(body);
    rig_free(r);
}

static void test_store_upgrades_format_2(void **state)
{
    (void)state;
    rig_t *r = calloc(1, sizeof *r);
    assert_non_null(r);
    live_rig = r;
    make_dir(r->dir, sizeof r->dir);
    sql_file(path_in(r->dir, "caveat.db"), format_2_sql);
    sql_file(path_in(r->dir, "caveat.db"), format_2_rows_sql);
    rig_open(r);
    rig_load(r);
    assert_int_equal(store_version(r->dir), 4);
    assert_int_equal(r->max_report, 7);
    view_t *want = view_new(1);
    view_sent(want, 1, 1, 0);
    view_wait(want, 5, 1);
    view_wait(want, 2, 0);
    assert_queue_is(rig_queue(r, 1), want, "upgraded from format 2");
    /* the bodies got their checksums, and their digests */
    cv_error_t err = {0};
    uint8_t *body = NULL;
    size_t len = 0;
    MUST(cv_store_get_report(r->store, 5, &body, &len, &err) == 1);
    assert_int_equal(len, strlen("body of r5"));
    assert_memory_equal(body, "body of r5", len);
    free(body);
    int64_t rowid = 0;
    begin(r);
    assert_int_equal(put_raw(r, "r2", "org-a", "body of r2", &rowid), CV_PUT_SAME);
    assert_int_equal(rowid, 2);
    assert_int_equal(put_raw(r, "r2", "org-a", "changed", &rowid), CV_PUT_CONFLICT);
    /* ids are the originator's now, and purged rowids are never given again */
    assert_int_equal(put_raw(r, "r2", "org-b", "b's r2", &rowid), CV_PUT_NEW);
    assert_int_equal(rowid, 8);
    commit(r);
    restart(r);
    assert_int_equal(store_version(r->dir), 4);
    assert_int_equal(cv_store_quarantined(r->store, NULL, NULL, &err), 0);
    assert_int_equal(page_bytes(r), 4096); /* as it was made: a page size stays */
    rig_free(r);
}

/*  How SQLite finds a report by id alone in dir's store, as feedback and
 *  reviews do, and whether an index named reports_id exists. */
static void id_lookup(const char *dir, char *plan, size_t size, bool *own_index)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(path_in(dir, "caveat.db"), &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "EXPLAIN QUERY PLAN SELECT n FROM reports WHERE id = ?1",
                                        -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    snprintf(plan, size, "%s", (const char *)sqlite3_column_text(s, 3));
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                                        " AND name = 'reports_id'",
                                        -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    *own_index = sqlite3_column_int(s, 0) == 1;
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/*  A report is found by its id alone without a scan: in a new store by its
 *  unique index, which leads with the id (no index more to keep up at
 *  every insert); in a store made when it led with the originator, by an
 *  index of its own, made at open. Either way (originator, id) is unique. */
static void test_store_finds_ids_in_either_layout(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t rowid = 0;
    begin(r);
    assert_int_equal(put_raw(r, "x", "org-a", "a's", &rowid), CV_PUT_NEW);
    commit(r);
    char plan[256];
    bool own_index = true;
    id_lookup(r->dir, plan, sizeof plan, &own_index);
    assert_non_null(strstr(plan, "sqlite_autoindex_reports_1 (id=?)"));
    assert_false(own_index);
    rig_close(r);
    /* the layout before: the unique index led with the originator */
    sql_file(path_in(r->dir, "caveat.db"),
             "BEGIN; CREATE TABLE old(n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL,"
             " originator TEXT NOT NULL, category TEXT NOT NULL, created INTEGER NOT NULL,"
             " accepted INTEGER NOT NULL, digest BLOB NOT NULL, checksum BLOB NOT NULL,"
             " body BLOB NOT NULL, UNIQUE(originator, id));"
             "INSERT INTO old SELECT * FROM reports; DROP TABLE reports;"
             "ALTER TABLE old RENAME TO reports;"
             "CREATE INDEX reports_age ON reports(category, created); COMMIT;");
    id_lookup(r->dir, plan, sizeof plan, &own_index);
    assert_non_null(strstr(plan, "SCAN")); /* what opening must put right */
    rig_open(r);
    rig_load(r);
    id_lookup(r->dir, plan, sizeof plan, &own_index);
    assert_non_null(strstr(plan, "reports_id (id=?)"));
    assert_true(own_index);
    begin(r);
    expect_same(r, "x", "org-a", "a's", rowid);
    assert_int_equal(put_raw(r, "x", "org-a", "changed", &rowid), CV_PUT_CONFLICT);
    assert_int_equal(put_raw(r, "x", "org-b", "b's", &rowid), CV_PUT_NEW);
    commit(r);
    rig_free(r);
}

/* ------------------------------------------------------------------------ */
/*  Retention.                                                              */

typedef struct {
    int calls;
    char ids[8][32];
} listed_t;

static void on_purged(void *arg, const char *id, const char *category, int64_t created)
{
    listed_t *l = arg;
    assert_string_equal(category, "old");
    assert_true(created < 2000);
    if (l->calls < 8)
        snprintf(l->ids[l->calls], sizeof l->ids[0], "%s", id);
    l->calls++;
}

/*  Purges recorded under rule in dir's store. */
static int purges_under(const char *dir, const char *rule)
{
    char path[128];
    snprintf(path, sizeof path, "%s/caveat.db", dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT count(*) FROM purges WHERE rule = ?1", -1, &s, NULL),
        SQLITE_OK);
    sqlite3_bind_text(s, 1, rule, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/*  Two old reports and a recent one of category "old", one of another
 *  category, all waiting in q. */
static void purge_setup(rig_t *r, int64_t *q, int64_t ids[4])
{
    begin(r);
    *q = queue_of(r, "a", "");
    ids[0] = publish_in(r, "old", 1000, 0, q, 1);
    ids[1] = publish_in(r, "other", 1000, 0, q, 1);
    ids[2] = publish_in(r, "old", 1500, 2, q, 1);
    ids[3] = publish_in(r, "old", 5000, 0, q, 1);
    commit(r);
}

/*  Purges (or lists) the two reports of "old" created before 2000, in a
 *  committed transaction. */
static void purge_old(rig_t *r, bool dry_run, listed_t *listed)
{
    cv_error_t err = {0};
    begin(r);
    assert_int_equal(
        cv_store_purge(r->store, "old", 2000, "rule-1", dry_run, on_purged, listed, &err), 2);
    commit(r); /* even committed, a dry run changes nothing */
    assert_int_equal(listed->calls, 2);
}

static void test_purge_dry_run_removes_nothing(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t q, ids[4];
    purge_setup(r, &q, ids);
    cv_error_t err = {0};
    listed_t listed = {0};
    purge_old(r, true, &listed);
    assert_string_equal(listed.ids[0], "report-1");
    assert_string_equal(listed.ids[1], "report-3");
    restart_expect_same(r);
    for (int i = 0; i < 4; i++)
        assert_true(was_routed(r, ids[i]));
    uint8_t *body = NULL;
    size_t len = 0;
    MUST(cv_store_get_report(r->store, ids[0], &body, &len, &err));
    free(body);
    cv_store_close(&r->store);
    assert_int_equal(purges_under(r->dir, "rule-1"), 0);
    rig_open(r);
    rig_free(r);
}

static void on_reviewed(void *arg, const char *originator, const char *id, const char *category,
                        int64_t created)
{
    (void)originator, (void)category, (void)created;
    listed_t *l = arg;
    if (l->calls < 8)
        snprintf(l->ids[l->calls], sizeof l->ids[0], "%s", id);
    l->calls++;
}

static int review(rig_t *r, const char *id, const char *originator, int64_t until, bool dispose,
                  listed_t *listed)
{
    cv_error_t err = {0};
    cv_review_t decision = {until, dispose, "reviewed", "an-admin", 1000};
    return cv_store_review(r->store, id, originator, &decision, on_reviewed, listed, &err);
}

/*  A review decides a report's retention instead of its category's
 *  period: kept past it, or disposed of at once. */
static void test_review_overrides_retention(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t q, ids[4];
    purge_setup(r, &q, ids);
    cv_error_t err = {0};
    listed_t listed = {0};
    begin(r);
    assert_int_equal(review(r, "report-1", NULL, 3000, false, &listed), 1);     /* kept to 3000 */
    assert_int_equal(review(r, "report-3", "originator", 0, true, &listed), 1); /* disposed */
    assert_int_equal(review(r, "report-9", NULL, 3000, false, &listed), 0);
    assert_int_equal(review(r, "report-4", "someone-else", 3000, false, &listed), 0);
    commit(r);
    assert_int_equal(listed.calls, 2);
    assert_string_equal(listed.ids[1], "report-3");
    assert_false(was_routed(r, ids[2])); /* gone at once */

    /* the category's period no longer purges report-1 */
    begin(r);
    assert_int_equal(cv_store_purge(r->store, "old", 2000, "rule-1", false, NULL, NULL, &err), 0);
    assert_int_equal(cv_store_purge_reviewed(r->store, 2999, false, 0, NULL, NULL, &err), 0);
    commit(r);
    restart(r);
    assert_true(was_routed(r, ids[0]));
    begin(r);
    assert_int_equal(cv_store_purge_reviewed(r->store, 3000, false, 0, NULL, NULL, &err), 1);
    commit(r);
    restart(r);
    assert_false(was_routed(r, ids[0]));
    assert_true(was_routed(r, ids[1]));
    assert_true(was_routed(r, ids[3]));
    cv_store_close(&r->store);
    assert_int_equal(purges_under(r->dir, CV_STORE_REVIEW_RULE), 2);
    rig_open(r);
    rig_free(r);
}

/*  Ids are their originator's: an id two agencies used names no report
 *  until the originator is given. */
static void test_review_of_an_ambiguous_id(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t a = 0, b = 0;
    listed_t listed = {0};
    begin(r);
    assert_int_equal(put_raw(r, "same", "org-a", "a's", &a), CV_PUT_NEW);
    assert_int_equal(put_raw(r, "same", "org-b", "b's", &b), CV_PUT_NEW);
    assert_int_equal(review(r, "same", NULL, 0, true, &listed), 2);
    assert_int_equal(listed.calls, 0);
    assert_int_equal(review(r, "same", "org-b", 0, true, &listed), 1);
    assert_int_equal(review(r, "same", NULL, 0, true, &listed), 1); /* a's, the one left */
    commit(r);
    assert_int_equal(listed.calls, 2);
    cv_error_t err = {0};
    uint8_t *body = NULL;
    size_t len = 0;
    assert_int_equal(cv_store_get_report(r->store, a, &body, &len, &err), 0);
    assert_int_equal(cv_store_get_report(r->store, b, &body, &len, &err), 0);
    rig_free(r);
}

static void test_purge_removes_report_and_route(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t q, ids[4];
    purge_setup(r, &q, ids);
    cv_error_t err = {0};
    listed_t listed = {0};
    purge_old(r, false, &listed);
    restart(r);
    assert_false(was_routed(r, ids[0]));
    assert_false(was_routed(r, ids[2]));
    view_t *want = view_new(0);
    view_wait(want, ids[1], 0);
    view_wait(want, ids[3], 0);
    assert_queue_is(rig_queue(r, q), want, "after the purge");
    uint8_t *body = NULL;
    size_t len = 0;
    assert_false(cv_store_get_report(r->store, ids[0], &body, &len, &err));
    MUST(cv_store_get_report(r->store, ids[3], &body, &len, &err));
    free(body);
    /* nothing more to purge; NULL callback allowed */
    begin(r);
    assert_int_equal(cv_store_purge(r->store, "old", 2000, "rule-1", false, NULL, NULL, &err), 0);
    commit(r);
    cv_store_close(&r->store);
    assert_int_equal(purges_under(r->dir, "rule-1"), 2);
    rig_open(r);
    rig_free(r);
}

/*  Retention empties an idle store: every queue's done marks stand at the
 *  highest rowid. A report accepted afterwards must not be taken for one
 *  of those finished: it is delivered after a restart. */
static void test_purge_then_publish_survives_restart(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t q = queue_of(r, "a", "");
    publish_in(r, "old", 1000, 0, &q, 1);
    publish_in(r, "old", 1000, 0, &q, 1);
    pump(r, q, 2, NULL);
    ack(r, q, 2);
    commit(r);
    cv_error_t err = {0};
    begin(r);
    assert_int_equal(cv_store_purge(r->store, "old", 2000, "rule-1", false, NULL, NULL, &err), 2);
    commit(r);
    restart(r); /* the broker reloads its queues after a purge */
    begin(r);
    int64_t fresh = publish_in(r, "new", 9000, 0, &q, 1);
    commit(r);
    restart(r);
    view_t *want = view_new(2);
    view_wait(want, fresh, 0);
    assert_queue_is(rig_queue(r, q), want, "published after the purge");
    rig_free(r);
}

/*  The same with the purged report still in flight: the new report must
 *  not be taken for the delivery already sent under its seq. */
static void test_purge_in_flight_then_publish(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    begin(r);
    int64_t q = queue_of(r, "a", "");
    int64_t old = publish_in(r, "old", 1000, 0, &q, 1);
    pump(r, q, 1, NULL); /* seq 1, never acknowledged */
    commit(r);
    cv_error_t err = {0};
    begin(r);
    assert_int_equal(cv_store_purge(r->store, "old", 2000, "rule-1", false, NULL, NULL, &err), 1);
    commit(r);
    restart(r);
    begin(r);
    int64_t fresh = publish_in(r, "new", 9000, 0, &q, 1);
    commit(r);
    restart(r);
    view_t *want = view_new(1);
    view_sent(want, 1, old, 0); /* stays in flight until acknowledged */
    view_wait(want, fresh, 0);
    bool reused = fresh == old;
    if (reused)
        print_error("the new report got rowid %lld, the purged one's\n", (long long)fresh);
    assert_queue_is(rig_queue(r, q), want, "published after purging what was in flight");
    assert_false(reused);
    rig_free(r);
}

/*  SQL through a connection of the test's own, beside the open store. */
static void sql_beside(rig_t *r, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(
        sqlite3_open_v2(path_in(r->dir, "caveat.db"), &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        print_error("%s: %s\n", sql, msg);
    assert_null(msg);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/*  A read that stops on an error is an error, with SQLite's reason, never a
 *  short list: here the store's statements no longer prepare. */
static void test_retention_reads_report_errors(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t q, ids[4];
    purge_setup(r, &q, ids);
    cv_error_t err = {0};
    char **categories = NULL;
    assert_int_equal(cv_store_categories(r->store, &categories, &err), 2);
    for (int i = 0; i < 2; i++)
        free(categories[i]);
    free(categories);
    sql_beside(r, "ALTER TABLE reports RENAME COLUMN category TO kind");
    categories = NULL;
    assert_int_equal(cv_store_categories(r->store, &categories, &err), -1);
    assert_null(categories);
    assert_non_null(strstr(err.msg, "no such column: category"));
    err.msg[0] = '\0';
    listed_t listed = {0};
    begin(r);
    assert_int_equal(
        cv_store_purge(r->store, "old", 2000, "rule-1", false, on_purged, &listed, &err), -1);
    assert_non_null(strstr(err.msg, "no such column: category"));
    assert_int_equal(listed.calls, 0);
    cv_store_rollback(r->store);
    rig_free(r);
}

/*  A purge that fails half way purges nothing, even for a caller that
 *  commits anyway, and lists nothing. */
static void test_purge_all_or_nothing(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t q, ids[4];
    purge_setup(r, &q, ids);
    sql_beside(r, "CREATE TRIGGER refuse BEFORE INSERT ON purges WHEN NEW.report_id = 'report-3'"
                  " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    cv_error_t err = {0};
    listed_t listed = {0};
    begin(r);
    assert_int_equal(
        cv_store_purge(r->store, "old", 2000, "rule-1", false, on_purged, &listed, &err), -1);
    assert_non_null(strstr(err.msg, "refused by the test"));
    assert_int_equal(listed.calls, 0);
    commit(r);
    restart(r);
    for (int i = 0; i < 4; i++)
        assert_true(was_routed(r, ids[i]));
    assert_int_equal(get_result(r, ids[0], &err), 1);
    cv_store_close(&r->store);
    assert_int_equal(purges_under(r->dir, "rule-1"), 0);
    rig_open(r);
    rig_free(r);
}

typedef struct {
    int calls;
    char originators[2][16];
} originators_t;

static void on_purged_report(void *arg, const char *originator, const char *id,
                             const char *category, int64_t created)
{
    (void)category, (void)created;
    originators_t *seen = arg;
    assert_string_equal(id, "same-id");
    if (seen->calls < 2)
        snprintf(seen->originators[seen->calls], sizeof seen->originators[0], "%s", originator);
    seen->calls++;
}

/*  Two agencies' reports of one id: the listing says whose each was. */
static void test_purge_lists_originators(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    int64_t rowid = 0;
    begin(r);
    assert_int_equal(put_raw(r, "same-id", "org-a", "a's", &rowid), CV_PUT_NEW);
    assert_int_equal(put_raw(r, "same-id", "org-b", "b's", &rowid), CV_PUT_NEW);
    commit(r);
    cv_error_t err = {0};
    originators_t seen = {0};
    begin(r);
    assert_int_equal(cv_store_purge_reports(r->store, "general", 2000, "rule-1", false, 0,
                                            on_purged_report, &seen, &err),
                     2);
    commit(r);
    assert_int_equal(seen.calls, 2);
    assert_true(strcmp(seen.originators[0], seen.originators[1]) != 0);
    rig_free(r);
}

/*  A queue made after reports were routed elsewhere starts past them, so
 *  that loading never reads routes from the beginning for it. */
typedef struct {
    int64_t id;
    cv_queue_state_t state;
    bool seen;
} state_probe_t;

static void probe_queue(void *arg, int64_t id, const char *agency, const char *feed,
                        const cv_queue_state_t *st)
{
    (void)agency, (void)feed;
    state_probe_t *p = arg;
    if (id == p->id) {
        p->state = *st;
        p->seen = true;
    }
}

static void probe_sent(void *arg, int64_t queue, uint64_t seq, cv_routed_t item)
{
    (void)arg, (void)queue, (void)seq, (void)item;
}

static void probe_route(void *arg, int64_t report, int priority, const int64_t *queues, size_t n)
{
    (void)arg, (void)report, (void)priority, (void)queues, (void)n;
}

static void test_store_late_queue_starts_past_earlier_reports(void **state)
{
    (void)state;
    rig_t *r = rig_new();
    cv_error_t err = {0};
    begin(r);
    int64_t a = queue_of(r, "a", "");
    for (int i = 0; i < 3; i++)
        publish1(r, i % CV_PRIORITIES, a);
    int64_t late = cv_store_queue(r->store, "late", "", r->max_report, &err);
    assert_true(late > 0);
    commit(r);
    cv_store_close(&r->store);
    rig_open(r);
    static const cv_store_loader_t loader = {probe_queue, probe_sent, probe_route};
    state_probe_t probe = {late, {0}, false};
    int64_t max_report = 0;
    MUST(cv_store_load(r->store, &loader, &probe, &max_report, &err));
    assert_true(probe.seen);
    assert_int_equal(max_report, r->max_report);
    assert_done(&probe.state, r->max_report, r->max_report, r->max_report);
    rig_free(r);
}

static int cleanup(void **state)
{
    (void)state;
    if (live_rig)
        rig_free(live_rig);
    if (scratch[0])
        scratch_done();
    world_free();
    return 0;
}

#define TEST(f) cmocka_unit_test_teardown(f, cleanup)

/*  A checkpoint that fails is told, with why, once: the broker logs it
 *  (a WAL that is not emptied grows until the disk is full). */
static void test_checkpoint_failures_are_told(void **state)
{
    (void)state;
    cv_syncer_t *syncer = cv_syncer_new("/nonexistent/caveat.db", false, "NORMAL");
    assert_non_null(syncer);
    assert_true(cv_syncer_checkpoint(syncer));
    char why[512] = "";
    bool failed = false;
    for (int i = 0; i < 200 && !failed; i++) {
        usleep(10 * 1000);
        failed = cv_syncer_checkpoint_failure(syncer, why, sizeof why);
    }
    assert_true(failed);
    assert_non_null(strstr(why, "/nonexistent/caveat.db"));
    assert_false(cv_syncer_checkpoint_failure(syncer, why, sizeof why)); /* told once */
    cv_syncer_destroy(&syncer);
}

/*  A sync over the threshold is told, with its milliseconds, once: the
 *  broker logs it, as every PublishAck and delivery waited for it. A
 *  threshold of -1 makes every sync slow; the default, a quick one not. */
/*  A syncer of a WAL with something in it, in a directory of its own. */
typedef struct {
    char dir[32], db[64], wal[64];
    cv_syncer_t *syncer;
} wal_syncer_t;

static void wal_append(const wal_syncer_t *w, const char *text)
{
    FILE *f = fopen(w->wal, "a");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void wal_syncer_open(wal_syncer_t *w)
{
    snprintf(w->dir, sizeof w->dir, "/tmp/caveat-syncer-XXXXXX");
    assert_non_null(mkdtemp(w->dir));
    snprintf(w->db, sizeof w->db, "%s/caveat.db", w->dir);
    snprintf(w->wal, sizeof w->wal, "%s/caveat.db-wal", w->dir);
    wal_append(w, "pages");
    w->syncer = cv_syncer_new(w->db, true, "NORMAL");
    assert_non_null(w->syncer);
}

static void wal_syncer_close(wal_syncer_t *w)
{
    cv_syncer_destroy(&w->syncer);
    unlink(w->wal);
    rmdir(w->dir);
}

static void test_slow_syncs_are_told(void **state)
{
    (void)state;
    wal_syncer_t w;
    wal_syncer_open(&w);
    cv_syncer_t *syncer = w.syncer;
    int64_t ms = 0;
    cv_syncer_request(syncer, 1);
    assert_true(cv_syncer_wait(syncer, 1, 5000));
    assert_false(cv_syncer_take_slow(syncer, &ms)); /* under a second */
    cv_syncer_set_slow_ms(syncer, -1);
    cv_syncer_request(syncer, 2);
    assert_true(cv_syncer_wait(syncer, 2, 5000));
    assert_true(cv_syncer_take_slow(syncer, &ms));
    assert_true(ms >= 0 && ms < 5000);
    assert_false(cv_syncer_take_slow(syncer, &ms)); /* told once */
    wal_syncer_close(&w);
}

/*  Every sync is counted, and a stall's time beyond the threshold: with a
 *  threshold of 0 every sync is a stall, its whole duration counted; with
 *  a threshold no sync reaches, none is. */
static void test_sync_stalls_are_counted(void **state)
{
    (void)state;
    wal_syncer_t w;
    wal_syncer_open(&w);
    cv_syncer_t *syncer = w.syncer;
    cv_syncer_set_stall_us(syncer, 3600 * 1000000ll);
    cv_syncer_request(syncer, 1);
    assert_true(cv_syncer_wait(syncer, 1, 5000));
    cv_sync_counts_t counts = cv_syncer_counts(syncer);
    assert_true(counts.syncs == 1 && counts.stalls == 0 && counts.stall_us == 0);
    cv_syncer_set_stall_us(syncer, 0);
    wal_append(&w, "more pages"); /* something to sync: the sync takes time */
    uint64_t before = zclock_usecs();
    cv_syncer_request(syncer, 2);
    assert_true(cv_syncer_wait(syncer, 2, 5000));
    uint64_t took = zclock_usecs() - before;
    counts = cv_syncer_counts(syncer);
    assert_true(counts.syncs == 2 && counts.stalls == 1);
    assert_true(counts.stall_us > 0 && counts.stall_us <= took); /* within the wait for it */
    wal_syncer_close(&w);
}

int main(int argc, char **argv)
{
    /* test_store_reader_leaves_wal's reader in a process of its own */
    if (argc == 3 && strcmp(argv[1], "--count-reports") == 0)
        return count_reports(argv[2], SQLITE_OPEN_READWRITE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_failures_are_told),
        cmocka_unit_test(test_slow_syncs_are_told),
        cmocka_unit_test(test_sync_stalls_are_counted),
        TEST(test_queue_take_order),
        TEST(test_queue_names),
        TEST(test_queue_name_keys),
        TEST(test_queue_give_seq),
        TEST(test_queue_ack),
        TEST(test_queue_ring_grows_wrapped),
        TEST(test_queue_random_rings),
        TEST(test_queue_state_done_marks),
        TEST(test_queue_state_mixed_priorities),
        TEST(test_queue_restore),
        TEST(test_store_empty_round_trip),
        TEST(test_store_waiting_round_trip),
        TEST(test_store_last_seq_without_save),
        TEST(test_store_partly_acked_pump),
        TEST(test_store_acked_stay_gone),
        TEST(test_store_shared_reports),
        TEST(test_store_route_to_300_queues),
        TEST(test_store_routes_in_a_batch),
        TEST(test_store_routes_batch_failure),
        TEST(test_store_uncommitted_turn_lost),
        TEST(test_store_dropped_report_stays_dropped),
        TEST(test_store_drop_lost_with_its_turn),
        TEST(test_store_get_report),
        TEST(test_store_reads_in_a_turn_share_its_transaction),
        TEST(test_store_turn_held_until_commit_cache_kept_small),
        TEST(test_router_refuses_damaged_ids),
        TEST(test_cache_rowids_below_one),
        TEST(test_cache_counts_reports_as_unpacked),
        TEST(test_cache_holds_a_whole_credit),
        TEST(test_cache_keeps_reports_as_stored),
        TEST(test_cache_keeps_the_hash_of_what_it_keeps),
        TEST(test_store_late_queue_starts_past_earlier_reports),
        TEST(test_store_random_model),
        TEST(test_put_same_and_conflict),
        TEST(test_put_failure_undoes_the_report_alone),
        TEST(test_put_other_failure_fails_the_turn),
        TEST(test_store_finds_ids_in_either_layout),
        TEST(test_put_ids_scoped_by_originator),
        TEST(test_put_retry_same_by_digest),
        TEST(test_put_reports_as_one_by_one),
        TEST(test_put_reports_retry_of_the_newest),
        TEST(test_put_reports_failure_fails_the_rest),
        TEST(test_the_checksum_follows_the_format),
        TEST(test_refuses_foreign_sqlite),
        TEST(test_refuses_garbage_file),
        TEST(test_refuses_other_versions),
        TEST(test_one_store_per_directory),
        TEST(test_refuses_loose_modes),
        TEST(test_store_files_are_owner_only),
        TEST(test_store_reader_leaves_wal),
        TEST(test_store_corrupt_body),
        TEST(test_store_quarantine),
        TEST(test_store_quarantine_survives_reopen),
        TEST(test_store_made_with_large_pages),
        TEST(test_store_upgrades_format_2),
        TEST(test_purge_dry_run_removes_nothing),
        TEST(test_purge_removes_report_and_route),
        TEST(test_review_overrides_retention),
        TEST(test_review_of_an_ambiguous_id),
        TEST(test_purge_then_publish_survives_restart),
        TEST(test_purge_in_flight_then_publish),
        TEST(test_retention_reads_report_errors),
        TEST(test_purge_all_or_nothing),
        TEST(test_purge_lists_originators),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
