/*  cv_proto_drop_unknown: unknown fields at every depth are forgotten and
 *  known ones kept, and a frame with protobuf-c's tag-0 quirk packs again
 *  into bytes that unpack. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cv_arena.h"
#include "cv_proto.h"

/*  Protobuf bytes built by hand: the test must write what no generated
 *  packer would. */
typedef struct {
    uint8_t bytes[512];
    size_t len;
} wire_t;

static void put_byte(wire_t *w, uint8_t byte)
{
    assert_true(w->len < sizeof w->bytes);
    w->bytes[w->len++] = byte;
}

static void put_varint(wire_t *w, uint64_t value)
{
    for (; value >= 0x80; value >>= 7)
        put_byte(w, (uint8_t)(value | 0x80));
    put_byte(w, (uint8_t)value);
}

/*  A length-delimited field: a string, or an embedded message. */
static void put_bytes(wire_t *w, unsigned field, const void *data, size_t len)
{
    put_varint(w, (uint64_t)field << 3 | 2);
    put_varint(w, len);
    assert_true(w->len + len <= sizeof w->bytes);
    memcpy(w->bytes + w->len, data, len);
    w->len += len;
}

static void put_message(wire_t *w, unsigned field, const wire_t *inner)
{
    put_bytes(w, field, inner->bytes, inner->len);
}

/*  Field 99, a varint: no message of the schema has it. */
static void put_unknown(wire_t *w)
{
    put_varint(w, 99 << 3 | 0);
    put_varint(w, 7);
}

/*  A packed message that unpacks again as a Frame. */
static void assert_unpacks(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *bytes = malloc(len ? len : 1);
    assert_non_null(bytes);
    protobuf_c_message_pack(msg, bytes);
    Caveat__Wire__Frame *again = caveat__wire__frame__unpack(NULL, len, bytes);
    assert_non_null(again);
    caveat__wire__frame__free_unpacked(again, NULL);
    free(bytes);
}

/*  Frame{publish{reports[{id, subjects[{name, identifiers{pnc}}],
 *  grading{source}}]}} with field 99 in every one of those messages. */
static void test_drops_at_every_depth(void **state)
{
    (void)state;
    wire_t entry = {0}, subject = {0}, grading = {0}, report = {0}, publish = {0}, frame = {0};
    put_bytes(&entry, 1, "pnc", 3);
    put_bytes(&entry, 2, "09/1", 4);
    put_unknown(&entry);
    put_bytes(&subject, 1, "Jane", 4);
    put_message(&subject, 5, &entry);
    put_unknown(&subject);
    put_bytes(&grading, 1, "B", 1);
    put_unknown(&grading);
    put_bytes(&report, 1, "r-1", 3);
    put_message(&report, 7, &grading);
    put_message(&report, 10, &subject);
    put_unknown(&report);
    put_message(&publish, 2, &report);
    put_unknown(&publish);
    put_message(&frame, 3, &publish);
    put_unknown(&frame);

    cv_arena_t *arena = cv_arena_new(0);
    assert_non_null(arena);
    Caveat__Wire__Frame *f =
        caveat__wire__frame__unpack(cv_arena_allocator(arena), frame.len, frame.bytes);
    assert_non_null(f);
    assert_int_equal(f->body_case, CAVEAT__WIRE__FRAME__BODY_PUBLISH);
    Caveat__Report *r = f->publish->reports[0];
    assert_int_equal(f->base.n_unknown_fields, 1);
    assert_int_equal(r->subjects[0]->identifiers[0]->base.n_unknown_fields, 1);

    cv_proto_drop_unknown(&f->base);
    assert_int_equal(f->base.n_unknown_fields, 0);
    assert_int_equal(f->publish->base.n_unknown_fields, 0);
    assert_int_equal(r->base.n_unknown_fields, 0);
    assert_int_equal(r->grading->base.n_unknown_fields, 0);
    assert_int_equal(r->subjects[0]->base.n_unknown_fields, 0);
    assert_int_equal(r->subjects[0]->identifiers[0]->base.n_unknown_fields, 0);
    assert_null(r->base.unknown_fields);

    /* the known fields stay, and the packed form has nothing else */
    assert_string_equal(r->id, "r-1");
    assert_string_equal(r->grading->source, "B");
    assert_string_equal(r->subjects[0]->name, "Jane");
    assert_string_equal(r->subjects[0]->identifiers[0]->value, "09/1");
    /* six times "98 06 07" less; every length still fits one byte */
    assert_int_equal(protobuf_c_message_get_packed_size(&f->base), frame.len - 6 * 3);
    assert_unpacks(&f->base);
    cv_arena_destroy(&arena);
}

/*  An unknown field with tag 0, as the two-byte varint 82 00 and an empty
 *  value, in a report in a publish. protobuf-c unpacks it and keeps it, and
 *  re-packs it as 02 00, which it then refuses: dropped, the frame packs
 *  into bytes that unpack. */
static void test_tag_zero(void **state)
{
    (void)state;
    static const uint8_t frame[] = {0x1a, 0x05, 0x12, 0x03, 0x82, 0x00, 0x00};
    cv_arena_t *arena = cv_arena_new(0);
    assert_non_null(arena);
    Caveat__Wire__Frame *f =
        caveat__wire__frame__unpack(cv_arena_allocator(arena), sizeof frame, frame);
    assert_non_null(f);
    assert_int_equal(f->publish->reports[0]->base.n_unknown_fields, 1);

    cv_proto_drop_unknown(&f->base);
    uint8_t packed[16];
    size_t len = protobuf_c_message_get_packed_size(&f->base);
    assert_true(len <= sizeof packed);
    protobuf_c_message_pack(&f->base, packed);
    static const uint8_t known_only[] = {0x1a, 0x02, 0x12, 0x00};
    assert_int_equal(len, sizeof known_only);
    assert_memory_equal(packed, known_only, len);
    assert_unpacks(&f->base);
    cv_arena_destroy(&arena);
}

/*  A oneof member that is not set is not followed: its slot is shared
 *  with the one that is (here a heartbeat, which has no fields). */
static void test_oneof_and_null(void **state)
{
    (void)state;
    static const uint8_t frame[] = {0x42, 0x03, 0x98, 0x06, 0x07}; /* heartbeat{99: 7} */
    cv_arena_t *arena = cv_arena_new(0);
    assert_non_null(arena);
    Caveat__Wire__Frame *f =
        caveat__wire__frame__unpack(cv_arena_allocator(arena), sizeof frame, frame);
    assert_non_null(f);
    assert_int_equal(f->body_case, CAVEAT__WIRE__FRAME__BODY_HEARTBEAT);
    assert_int_equal(f->heartbeat->base.n_unknown_fields, 1);
    cv_proto_drop_unknown(&f->base);
    assert_int_equal(f->heartbeat->base.n_unknown_fields, 0);
    assert_int_equal(protobuf_c_message_get_packed_size(&f->base), 2);
    cv_proto_drop_unknown(NULL);
    cv_arena_destroy(&arena);
}

/*  A packed Frame holding a Publish of n empty reports, malloc'd. */
static uint8_t *publish_frame(size_t n, size_t *len)
{
    Caveat__Report *reports = calloc(n ? n : 1, sizeof *reports);
    Caveat__Report **list = calloc(n ? n : 1, sizeof *list);
    for (size_t i = 0; i < n; i++) {
        caveat__report__init(&reports[i]);
        list[i] = &reports[i];
    }
    Caveat__Wire__Publish publish = CAVEAT__WIRE__PUBLISH__INIT;
    publish.n_reports = n;
    publish.reports = list;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_PUBLISH;
    frame.publish = &publish;
    *len = caveat__wire__frame__get_packed_size(&frame);
    uint8_t *bytes = malloc(*len);
    caveat__wire__frame__pack(&frame, bytes);
    free(list);
    free(reports);
    return bytes;
}

/*  The scan counts what protobuf-c would unpack, without unpacking. */
static void test_publish_reports_are_counted_without_unpacking(void **state)
{
    (void)state;
    size_t sizes[] = {0, 1, 2, 500, 501, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t len;
        uint8_t *bytes = publish_frame(sizes[i], &len);
        assert_int_equal(cv_wire_publish_reports(bytes, len), sizes[i]);
        /* cut short: not well formed */
        if (len > 2)
            assert_int_equal(cv_wire_publish_reports(bytes, len - 1), SIZE_MAX);
        free(bytes);
    }
    /* Frame.hello: no publish */
    static const uint8_t hello[] = {0x0a, 0x02, 0x08, 0x01};
    assert_int_equal(cv_wire_publish_reports(hello, sizeof hello), 0);
    /* Frame.publish twice, 2 and 1 reports: protobuf-c merges, so both count */
    static const uint8_t twice[] = {0x1a, 0x04, 0x12, 0x00, 0x12, 0x00, 0x1a, 0x02, 0x12, 0x00};
    assert_int_equal(cv_wire_publish_reports(twice, sizeof twice), 3);
    /* a group (wire type 3) is not read: not well formed here */
    static const uint8_t group[] = {0x0b, 0x0c};
    assert_int_equal(cv_wire_publish_reports(group, sizeof group), SIZE_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drops_at_every_depth),
        cmocka_unit_test(test_tag_zero),
        cmocka_unit_test(test_publish_reports_are_counted_without_unpacking),
        cmocka_unit_test(test_oneof_and_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
