/*  cv_arena: alignment, large requests, reuse after reset, and protobuf-c
 *  unpacking into it (the client unpacks every frame it receives so). */
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cv_arena.h"
#include "cv_proto.h"
#include "harness.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifdef UNDER_ASAN
#include <sanitizer/asan_interface.h>
#endif

static void *arena_alloc(cv_arena_t *arena, size_t size)
{
    ProtobufCAllocator *allocator = cv_arena_allocator(arena);
    return allocator->alloc(allocator->allocator_data, size);
}

static bool aligned(const void *p)
{
    return (uintptr_t)p % alignof(max_align_t) == 0;
}

/*  Every allocation is aligned, and none overlaps another: each is filled
 *  with its own byte, and all are checked once the last is made. */
static void test_alignment(void **state)
{
    (void)state;
    cv_arena_t *arena = cv_arena_new(1000); /* not a multiple of the alignment */
    assert_non_null(arena);
    enum { N = 300 };
    unsigned char *p[N];
    for (size_t i = 0; i < N; i++) {
        size_t size = i % 37 + (i % 5 == 0 ? 0 : 1); /* 0 too: protobuf-c may ask */
        p[i] = arena_alloc(arena, size);
        assert_non_null(p[i]);
        assert_true(aligned(p[i]));
        memset(p[i], (int)(i % 251), size);
    }
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < i % 37 + (i % 5 == 0 ? 0 : 1); j++)
            assert_int_equal(p[i][j], i % 251);
    cv_arena_destroy(&arena);
    assert_null(arena);
    cv_arena_destroy(&arena); /* twice is harmless */
}

/*  A request larger than a block gets its own block and does not end the
 *  block in use; an impossible one fails. */
static void test_large_allocations(void **state)
{
    (void)state;
    cv_arena_t *arena = cv_arena_new(1024);
    char *small = arena_alloc(arena, 40);
    char *large = arena_alloc(arena, 100000);
    char *after = arena_alloc(arena, 40);
    char *whole = arena_alloc(arena, 1024); /* exactly a block */
    assert_non_null(small);
    assert_non_null(large);
    assert_non_null(after);
    assert_non_null(whole);
    assert_true(aligned(large) && aligned(whole));
    uintptr_t gap = (uintptr_t)after - (uintptr_t)small;
    assert_true(gap > 0 && gap < 1024); /* the same block */
    memset(large, 'L', 100000);
    memset(whole, 'W', 1024);
    memset(small, 'S', 40);
    memset(after, 'A', 40);
    assert_int_equal(large[0], 'L');
    assert_int_equal(large[99999], 'L');
    assert_int_equal(whole[1023], 'W');
    assert_int_equal(small[39], 'S');
    assert_null(arena_alloc(arena, SIZE_MAX));
    assert_null(arena_alloc(arena, SIZE_MAX / 2 + 1));
    cv_arena_reset(arena);
    char *again = arena_alloc(arena, 200000); /* large blocks went at the reset */
    assert_non_null(again);
    memset(again, 'x', 200000);
    cv_arena_destroy(&arena);
}

/*  After a reset the arena hands out memory it already had: the first
 *  block when there was one, the kept one when there were many. */
static void test_reset_reuses_memory(void **state)
{
    (void)state;
    cv_arena_t *arena = cv_arena_new(4096);
    void *first = arena_alloc(arena, 100);
    cv_arena_reset(arena);
    assert_ptr_equal(arena_alloc(arena, 100), first);

    enum { N = 100 };
    void *seen[N];
    for (size_t i = 0; i < N; i++)
        seen[i] = arena_alloc(arena, 1000); /* ~25 blocks */
    cv_arena_reset(arena);
    void *reused = arena_alloc(arena, 1000);
    bool found = false;
    for (size_t i = 0; i < N; i++)
        found |= reused == seen[i];
    assert_true(found);
#ifdef UNDER_ASAN
    /* what was handed out before the reset is poisoned, what is handed out
       now is not: a borrowed message used too late is caught */
    for (size_t i = 0; i < N; i++)
        if (seen[i] != reused)
            assert_true(__asan_address_is_poisoned(seen[i]));
    assert_false(__asan_address_is_poisoned(reused));
    assert_true(__asan_address_is_poisoned((char *)reused + 1000)); /* the gap after it */
#endif
    cv_arena_destroy(&arena);
}

/* ------------------------------------------------------------------------ */
/*  Unpacking a real frame */

static const char *const examples[] = {
    "vulnerable_individual",  "community_tension", "critical_incident",
    "radicalisation_concern", "venue_of_concern",  "prison_intelligence",
};
enum { N_DELIVERIES = sizeof examples / sizeof *examples };

/*  A packed Frame holding a Deliver of the example reports, each with
 *  rules, a feed and a seq: strings, maps, doubles, nested and repeated
 *  messages all appear. */
static uint8_t *packed_deliver(size_t *len)
{
    Caveat__Wire__Delivery items[N_DELIVERIES], *list[N_DELIVERIES];
    Caveat__Report *reports[N_DELIVERIES];
    static char *rules[] = {"safeguarding-referral", "screen-prevent"};
    for (size_t i = 0; i < N_DELIVERIES; i++) {
        reports[i] = harness_report(examples[i]);
        assert_non_null(reports[i]);
        caveat__wire__delivery__init(&items[i]);
        items[i].has_seq = true;
        items[i].seq = 1000 + i;
        items[i].report_id = reports[i]->id ? reports[i]->id : "none";
        items[i].n_rules = 1 + i % 2;
        items[i].rules = rules;
        items[i].feed = i % 3 ? NULL : "ctio";
        items[i].report = reports[i];
        list[i] = &items[i];
    }
    Caveat__Wire__Deliver deliver = CAVEAT__WIRE__DELIVER__INIT;
    deliver.n_deliveries = N_DELIVERIES;
    deliver.deliveries = list;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_DELIVER;
    frame.deliver = &deliver;
    *len = caveat__wire__frame__get_packed_size(&frame);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    caveat__wire__frame__pack(&frame, buf);
    for (size_t i = 0; i < N_DELIVERIES; i++)
        caveat__report__free_unpacked(reports[i], NULL);
    return buf;
}

/*  Packing the message again gives back exactly the bytes it came from. */
static void assert_repacks_to(const Caveat__Wire__Frame *frame, const uint8_t *buf, size_t len)
{
    assert_int_equal(caveat__wire__frame__get_packed_size(frame), len);
    uint8_t *again = malloc(len);
    assert_non_null(again);
    caveat__wire__frame__pack(frame, again);
    assert_memory_equal(again, buf, len);
    free(again);
}

static void assert_same_delivery(const Caveat__Wire__Delivery *a, const Caveat__Wire__Delivery *b)
{
    assert_int_equal(a->seq, b->seq);
    assert_string_equal(a->report_id, b->report_id);
    assert_int_equal(a->n_rules, b->n_rules);
    for (size_t r = 0; r < a->n_rules; r++)
        assert_string_equal(a->rules[r], b->rules[r]);
    assert_true((a->feed == NULL) == (b->feed == NULL));
    if (a->feed)
        assert_string_equal(a->feed, b->feed);
    char *json_a = cv_json_emit(&a->report->base, 0), *json_b = cv_json_emit(&b->report->base, 0);
    assert_non_null(json_a);
    assert_string_equal(json_a, json_b);
    free(json_a);
    free(json_b);
}

static void test_unpack_deliver_as_with_malloc(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = packed_deliver(&len);
    cv_arena_t *arena = cv_arena_new(2048); /* smaller than a report: several blocks */
    Caveat__Wire__Frame *heap = caveat__wire__frame__unpack(NULL, len, buf);
    Caveat__Wire__Frame *in_arena =
        caveat__wire__frame__unpack(cv_arena_allocator(arena), len, buf);
    assert_non_null(heap);
    assert_non_null(in_arena);
    assert_int_equal(in_arena->body_case, CAVEAT__WIRE__FRAME__BODY_DELIVER);
    assert_int_equal(in_arena->deliver->n_deliveries, N_DELIVERIES);
    for (size_t i = 0; i < N_DELIVERIES; i++)
        assert_same_delivery(in_arena->deliver->deliveries[i], heap->deliver->deliveries[i]);
    assert_string_equal(in_arena->deliver->deliveries[0]->report->subjects[0]->postcode,
                        heap->deliver->deliveries[0]->report->subjects[0]->postcode);
    assert_repacks_to(heap, buf, len);
    assert_repacks_to(in_arena, buf, len);
    caveat__wire__frame__free_unpacked(heap, NULL);
    cv_arena_destroy(&arena); /* frees in_arena */
    free(buf);
}

/*  Unpack, read, reset, many times over, with blocks small enough that
 *  large requests come up too; under ASan any use of freed or poisoned
 *  memory stops the test. A truncated frame fails cleanly. */
static void test_many_resets(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = packed_deliver(&len);
    cv_arena_t *arena = cv_arena_new(512);
    for (int round = 0; round < 2000; round++) {
        ProtobufCAllocator *allocator = cv_arena_allocator(arena);
        size_t cut = round % 10 == 9 ? len / 2 : len;
        Caveat__Wire__Frame *frame = caveat__wire__frame__unpack(allocator, cut, buf);
        if (cut < len) {
            assert_null(frame);
        } else {
            assert_non_null(frame);
            Caveat__Wire__Delivery *d = frame->deliver->deliveries[round % N_DELIVERIES];
            assert_int_equal(d->seq, 1000 + round % N_DELIVERIES);
            assert_non_null(d->report->originator);
            if (round % 100 == 0)
                assert_repacks_to(frame, buf, len);
        }
        cv_arena_reset(arena);
    }
    cv_arena_destroy(&arena);
    free(buf);
}

/*  Filled to about the same size again and again, an arena told to keep
 *  enough takes no more blocks from malloc after the first fill; one that
 *  keeps its one block takes all but one again at every fill. Large
 *  requests are never kept. */
static size_t blocks_over_fills(size_t keep)
{
    cv_arena_t *arena = cv_arena_new(4096);
    if (keep)
        cv_arena_keep(arena, keep);
    for (int fill = 0; fill < 5; fill++) {
        for (size_t i = 0; i < 100; i++) /* about 25 blocks */
            memset(arena_alloc(arena, 1000), 'x', 1000);
        memset(arena_alloc(arena, 10000), 'L', 10000); /* a block of its own */
        cv_arena_reset(arena);
    }
    size_t n = cv_arena_mallocs(arena);
    cv_arena_destroy(&arena);
    return n;
}

static void test_reset_keeps_blocks(void **state)
{
    (void)state;
    /* a fill is 25 blocks (four requests of 1,000 bytes a block, with or
     * without AddressSanitizer's gaps) and the large request's */
    enum { FILL = 25, FILLS = 5 };
    /* room for all of them: the first fill's, and a large one a fill */
    assert_int_equal(blocks_over_fills(64 * 4096), FILL + FILLS);
    /* the default keeps one block */
    assert_int_equal(blocks_over_fills(0), FILLS * FILL - (FILLS - 1) + FILLS);
    assert_int_equal(blocks_over_fills(4095), FILLS * FILL - (FILLS - 1) + FILLS);
    assert_int_equal(blocks_over_fills(10 * 4096), FILLS * FILL - 10 * (FILLS - 1) + FILLS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_large_allocations),
        cmocka_unit_test(test_reset_reuses_memory),
        cmocka_unit_test(test_reset_keeps_blocks),
        cmocka_unit_test(test_unpack_deliver_as_with_malloc),
        cmocka_unit_test(test_many_resets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
