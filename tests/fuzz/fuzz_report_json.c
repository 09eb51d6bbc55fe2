/*  fuzz_report_json: the JSON report reader (cv_json_parse).
 *
 *  Whatever parses must survive the trip a report makes through caveat:
 *  packed to protobuf and unpacked (publish, store), written as JSON
 *  (subscribe, explain) and read again (received, policy test). Checks
 *  that the written JSON reads back, compact and pretty, and that reading
 *  and writing it again changes nothing: the round trip is stable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_proto.h"
#include "fuzz.h"

static ProtobufCMessage *parse(const char *text, size_t len, const char *name)
{
    cv_error_t err;
    return cv_json_parse(cv_schema_report(), text, len, name, &err);
}

static char *emit(const ProtobufCMessage *msg, int flags)
{
    char *json = cv_json_emit(msg, flags);
    if (!json)
        fuzz_fail("cv_json_emit failed");
    return json;
}

/*  Packs and unpacks msg: the broker stores and forwards the packed form. */
static ProtobufCMessage *through_protobuf(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *packed = malloc(len ? len : 1);
    if (!packed)
        abort();
    if (protobuf_c_message_pack(msg, packed) != len)
        fuzz_fail("packed size differs from get_packed_size");
    Caveat__Report *report = caveat__report__unpack(NULL, len, packed);
    free(packed);
    if (!report)
        fuzz_fail("a packed report does not unpack");
    return &report->base;
}

/*  The JSON text must read back as a report that writes the same text. */
static void check_reads_back(const char *first, const char *name)
{
    cv_error_t err;
    ProtobufCMessage *again = cv_json_parse(cv_schema_report(), first, strlen(first), name, &err);
    if (!again)
        fuzz_fail("our own JSON does not read back: %s\n%s", err.msg, first);
    char *second = emit(again, 0);
    protobuf_c_message_free_unpacked(again, NULL);
    if (strcmp(first, second) != 0)
        fuzz_fail("round trip changed the JSON:\n%s\n%s", first, second);
    free(second);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ProtobufCMessage *msg = parse((const char *)data, size, "fuzz.json");
    if (!msg)
        return 0;
    ProtobufCMessage *unpacked = through_protobuf(msg);
    protobuf_c_message_free_unpacked(msg, NULL);
    char *first = emit(unpacked, 0);
    check_reads_back(first, "first.json");

    /* the pretty form is the same report */
    char *pretty = emit(unpacked, CV_JSON_PRETTY);
    ProtobufCMessage *from_pretty = parse(pretty, strlen(pretty), "pretty.json");
    if (!from_pretty)
        fuzz_fail("our own pretty JSON does not read back:\n%s", pretty);
    char *compact = emit(from_pretty, 0);
    if (strcmp(first, compact) != 0)
        fuzz_fail("pretty and compact JSON differ:\n%s\n%s", first, compact);
    free(compact);
    protobuf_c_message_free_unpacked(from_pretty, NULL);
    free(pretty);
    free(first);
    protobuf_c_message_free_unpacked(unpacked, NULL);
    return 0;
}
