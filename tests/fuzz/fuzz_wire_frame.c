/*  fuzz_wire_frame: unpacking bytes as caveat.wire.Frame the way the broker
 *  does (into an arena; broker/cv_cache.c), then the broker's treatment of
 *  a stored report: unknown fields dropped (cv_proto_drop_unknown), packed
 *  again. That packed form must unpack, and pack to the same bytes: what
 *  the broker stores it must be able to read back. Without the drop,
 *  protobuf-c's tag-0 quirk breaks this (crashes/tag0-in-report-in-publish:
 *  82 00 re-packs as 02 00, which it refuses). And the broker's count of a
 *  Publish's reports from the wire bytes (cv_wire_publish_reports), which
 *  decides the report limit before unpacking, must never count fewer than
 *  protobuf-c unpacks. A Feedback's form is checked as the broker checks
 *  it. */
#include <stdlib.h>
#include <string.h>

#include "cv_arena.h"
#include "cv_proto.h"
#include "fuzz.h"

static uint8_t *pack(const ProtobufCMessage *msg, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *bytes = malloc(*len ? *len : 1);
    if (!bytes)
        abort();
    if (protobuf_c_message_pack(msg, bytes) != *len)
        fuzz_fail("packed size differs from get_packed_size");
    return bytes;
}

static void check_repacks(const Caveat__Wire__Frame *frame)
{
    size_t len, len_again;
    uint8_t *bytes = pack(&frame->base, &len);
    Caveat__Wire__Frame *again = caveat__wire__frame__unpack(NULL, len, bytes);
    if (!again)
        fuzz_fail("a re-packed frame of %zu bytes does not unpack", len);
    uint8_t *bytes_again = pack(&again->base, &len_again);
    if (len != len_again || memcmp(bytes, bytes_again, len) != 0)
        fuzz_fail("packing an unpacked frame changed its bytes");
    free(bytes_again);
    caveat__wire__frame__free_unpacked(again, NULL);
    free(bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cv_arena_t *arena;
    if (!arena && !(arena = cv_arena_new(0)))
        abort();
    Caveat__Wire__Frame *frame = caveat__wire__frame__unpack(cv_arena_allocator(arena), size, data);
    size_t counted = cv_wire_publish_reports(data, size);
    if (frame && frame->body_case == CAVEAT__WIRE__FRAME__BODY_PUBLISH &&
        (counted == SIZE_MAX || counted < frame->publish->n_reports))
        fuzz_fail("the scan counted %zu reports, protobuf-c unpacked %zu", counted,
                  frame->publish->n_reports);
    if (frame && frame->body_case == CAVEAT__WIRE__FRAME__BODY_FEEDBACK) {
        /* what the broker and libcaveat refuse of a Feedback's form; text
         * taken is UTF-8 (the broker stores and sends it on) */
        const char *text = frame->feedback->text;
        if (!cv_feedback_form_refusal(frame->feedback->value, text) && text) {
            int line, col;
            if (cv_text_check(text, strlen(text), &line, &col))
                fuzz_fail("feedback text taken that is not UTF-8");
        }
    }
    if (frame) {
        cv_proto_drop_unknown(&frame->base);
        check_repacks(frame);
    }
    cv_arena_reset(arena);
    return 0;
}
