/*  cv_unknown.c: forgetting the unknown fields protobuf-c keeps.
 *
 *  protobuf-c keeps every field it does not know, to pack it again. It
 *  accepts an unknown field with tag 0 written as a two-byte varint
 *  ("82 00") but packs it back as "02 00", which it refuses to unpack: a
 *  message it read could not be read again once stored. The broker forwards
 *  nothing it does not know, so it drops them all.
 */
#include "cv_proto.h"

/*  The message under field f of msg, for a singular message field; a oneof
 *  member counts only when it is the one set. */
static ProtobufCMessage *submessage(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    char *base = (char *)msg;
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(const uint32_t *)(base + f->quantifier_offset) != f->id)
        return NULL;
    return *(ProtobufCMessage **)(base + f->offset);
}

static void drop_in_field(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
        return;
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
        cv_proto_drop_unknown(submessage(msg, f));
        return;
    }
    char *base = (char *)msg;
    size_t n = *(const size_t *)(base + f->quantifier_offset);
    ProtobufCMessage **items = *(ProtobufCMessage ***)(base + f->offset);
    for (size_t i = 0; items && i < n; i++)
        cv_proto_drop_unknown(items[i]);
}

void cv_proto_drop_unknown(ProtobufCMessage *msg)
{
    if (!msg)
        return;
    msg->n_unknown_fields = 0;
    msg->unknown_fields = NULL;
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++)
        drop_in_field(msg, &d->fields[i]);
}
