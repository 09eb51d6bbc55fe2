/*  cv_frame_pool: Publish frames' buffers lent to libzmq and given back
 *  by whichever thread frees the message, kept for the next frame; the
 *  pool outlives its owner while a buffer is out. Run under the
 *  sanitizer build, a buffer freed twice or used after the pool went is
 *  a failure too. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <zmq.h>

#include "cv_frame_pool.h"

#define BYTES (64 * 1024)

static void test_a_returned_buffer_is_lent_again(void **state)
{
    (void)state;
    cv_frame_pool_t *pool = cv_frame_pool_new(2, BYTES);
    assert_non_null(pool);
    zmq_msg_t a, b;
    assert_int_equal(cv_frame_pool_msg(pool, &a, BYTES), 0);
    void *first = zmq_msg_data(&a);
    assert_int_equal(cv_frame_pool_lent(pool), 1);
    zmq_msg_close(&a); /* libzmq done with it: back in the pool */
    assert_int_equal(cv_frame_pool_lent(pool), 0);
    assert_int_equal(cv_frame_pool_msg(pool, &b, 100), 0);
    assert_ptr_equal(zmq_msg_data(&b), first);
    assert_int_equal(zmq_msg_size(&b), 100);
    assert_int_equal(cv_frame_pool_made(pool), 1);
    zmq_msg_close(&b);
    cv_frame_pool_destroy(&pool);
    assert_null(pool);
}

static void test_past_its_buffers_or_their_size_libzmq_allocates(void **state)
{
    (void)state;
    cv_frame_pool_t *pool = cv_frame_pool_new(2, BYTES);
    zmq_msg_t msgs[3], large;
    for (int i = 0; i < 3; i++)
        assert_int_equal(cv_frame_pool_msg(pool, &msgs[i], BYTES), 0);
    assert_int_equal(cv_frame_pool_made(pool), 2);
    assert_int_equal(cv_frame_pool_lent(pool), 2); /* the third is libzmq's own */
    assert_ptr_not_equal(zmq_msg_data(&msgs[2]), zmq_msg_data(&msgs[0]));
    assert_ptr_not_equal(zmq_msg_data(&msgs[2]), zmq_msg_data(&msgs[1]));
    zmq_msg_close(&msgs[0]);
    assert_int_equal(cv_frame_pool_msg(pool, &large, BYTES + 1), 0);
    assert_int_equal(cv_frame_pool_lent(pool), 1); /* too large for a buffer of the pool */
    assert_int_equal(zmq_msg_size(&large), BYTES + 1);
    zmq_msg_close(&large);
    zmq_msg_close(&msgs[1]);
    zmq_msg_close(&msgs[2]);
    assert_int_equal(cv_frame_pool_lent(pool), 0);
    cv_frame_pool_destroy(&pool);
}

/*  The owner goes first, as a client destroyed while libzmq still holds
 *  its last frames (its linger): the pool stays until they come back. */
static void test_buffers_outlive_the_owner(void **state)
{
    (void)state;
    cv_frame_pool_t *pool = cv_frame_pool_new(2, BYTES);
    zmq_msg_t a, b;
    assert_int_equal(cv_frame_pool_msg(pool, &a, BYTES), 0);
    assert_int_equal(cv_frame_pool_msg(pool, &b, BYTES), 0);
    cv_frame_pool_destroy(&pool);
    memset(zmq_msg_data(&a), 0xa5, BYTES); /* still the message's to use */
    zmq_msg_close(&a);
    zmq_msg_close(&b); /* the last: the pool goes now */
}

/*  Frames sent over inproc to a thread that receives and closes them: the
 *  buffers come back on that thread, while this one lends them again. */
typedef struct {
    void *ctx;
    int frames;
    int bad; /* frames whose bytes were not the ones sent */
} reader_t;

static void *reader(void *arg)
{
    reader_t *r = arg;
    void *sock = zmq_socket(r->ctx, ZMQ_PAIR);
    zmq_connect(sock, "inproc://frames");
    for (int i = 0; i < r->frames; i++) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, sock, 0) < 0)
            break;
        const uint8_t *bytes = zmq_msg_data(&msg);
        size_t size = zmq_msg_size(&msg);
        r->bad += size < 2 || bytes[0] != (uint8_t)i || bytes[size - 1] != (uint8_t)(i >> 8);
        zmq_msg_close(&msg);
    }
    zmq_close(sock);
    return NULL;
}

static void test_buffers_come_back_from_another_thread(void **state)
{
    (void)state;
    enum { FRAMES = 2000 };
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(sock, "inproc://frames"), 0);
    reader_t r = {ctx, FRAMES, 0};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, reader, &r), 0);
    cv_frame_pool_t *pool = cv_frame_pool_new(4, BYTES);
    for (int i = 0; i < FRAMES; i++) {
        size_t size = 1000 + (size_t)(i * 37) % (BYTES - 1000);
        zmq_msg_t msg;
        assert_int_equal(cv_frame_pool_msg(pool, &msg, size), 0);
        uint8_t *bytes = zmq_msg_data(&msg);
        memset(bytes, 0, size);
        bytes[0] = (uint8_t)i;
        bytes[size - 1] = (uint8_t)(i >> 8);
        assert_int_equal(zmq_msg_send(&msg, sock, 0), (int)size);
    }
    assert_true(cv_frame_pool_made(pool) <= 4);
    cv_frame_pool_destroy(&pool);
    pthread_join(thread, NULL);
    assert_int_equal(r.bad, 0);
    zmq_close(sock);
    zmq_ctx_term(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_returned_buffer_is_lent_again),
        cmocka_unit_test(test_past_its_buffers_or_their_size_libzmq_allocates),
        cmocka_unit_test(test_buffers_outlive_the_owner),
        cmocka_unit_test(test_buffers_come_back_from_another_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
