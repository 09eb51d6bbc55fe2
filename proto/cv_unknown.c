/*  cv_unknown.c: what is taken out of, or refused in, a message read from
 *  the wire before it is kept: unknown fields, map entries missing their
 *  key or value or given a key twice, enum values their enum does not
 *  define, and (cv_proto_unpack_bound) what reading it back could take.
 *
 *  protobuf-c keeps every field it does not know, to pack it again. It
 *  accepts an unknown field with tag 0 written as a two-byte varint
 *  ("82 00") but packs it back as "02 00", which it refuses to unpack: a
 *  message it read could not be read again once stored. The broker forwards
 *  nothing it does not know, so it drops them all.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/*  The messages under message field f of msg: *n of them (NULL ones
 *  among them), a singular one held in *one. */
static ProtobufCMessage *const *messages_of(const ProtobufCMessage *msg,
                                            const ProtobufCFieldDescriptor *f,
                                            ProtobufCMessage **one, size_t *n)
{
    const char *base = (const char *)msg;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        *n = *(const size_t *)(base + f->quantifier_offset);
        return *(ProtobufCMessage *const *const *)(base + f->offset);
    }
    *one = submessage((ProtobufCMessage *)msg, f);
    *n = 1;
    return one;
}

static void drop_in_field(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
        return;
    ProtobufCMessage *one;
    size_t n;
    ProtobufCMessage *const *items = messages_of(msg, f, &one, &n);
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

/*  Whether field f of entry (a map entry) is there: a string or message
 *  set; an optional field of another type by its has_ flag; a required
 *  one, or proto3's without presence, always. */
static bool entry_field_present(const ProtobufCMessage *entry, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)entry;
    if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(void *const *)(base + f->offset) != NULL;
    return f->label != PROTOBUF_C_LABEL_OPTIONAL ||
           *(const protobuf_c_boolean *)(base + f->quantifier_offset);
}

static const char *const PART_MISSING = "an entry without its key or its value";
static const char *const KEY_TWICE = "a key given twice";
static const char *const ENUM_UNKNOWN = "a value its enum does not define";
static const char *const NOT_UTF8 = "not UTF-8 text";

static const char *form_in(const ProtobufCMessage *msg, char *path, size_t size, size_t at);

/*  The values of enum field f of msg: *n of them. Those of an optional
 *  field not set, or of a oneof member not chosen, are none; proto3's
 *  enums are open (a value they do not define is a value), so none. */
static const int *enum_values(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                              size_t *n)
{
    const char *base = (const char *)msg;
    *n = 0;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        *n = *(const size_t *)(base + f->quantifier_offset);
        return *(const int *const *)(base + f->offset);
    }
    if (f->label == PROTOBUF_C_LABEL_NONE)
        return NULL;
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            ? *(const uint32_t *)(base + f->quantifier_offset) != f->id
            : f->label == PROTOBUF_C_LABEL_OPTIONAL &&
                  !*(const protobuf_c_boolean *)(base + f->quantifier_offset))
        return NULL;
    *n = 1;
    return (const int *)(base + f->offset);
}

static bool enums_defined(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    size_t n;
    const int *values = enum_values(msg, f, &n);
    for (size_t i = 0; values && i < n; i++)
        if (!protobuf_c_enum_descriptor_get_value(f->descriptor, values[i]))
            return false;
    return true;
}

/*  Whether each string of string field f of msg is UTF-8. */
static bool strings_utf8(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)msg;
    const char *const *texts;
    size_t n = 1;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        n = *(const size_t *)(base + f->quantifier_offset);
        texts = *(const char *const *const *)(base + f->offset);
    } else if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
               *(const uint32_t *)(base + f->quantifier_offset) != f->id) {
        return true;
    } else {
        texts = (const char *const *)(base + f->offset);
    }
    for (size_t i = 0; texts && i < n; i++)
        if (texts[i] && !cv_utf8_valid(texts[i], strlen(texts[i])))
            return false;
    return true;
}

/*  A map entry's key, to sort: text for a string key, else the number. */
typedef struct {
    const char *text;
    uint64_t number;
} map_key_t;

static map_key_t key_of(const ProtobufCMessage *entry)
{
    const ProtobufCFieldDescriptor *key = &entry->descriptor->fields[0];
    const char *at = (const char *)entry + key->offset;
    map_key_t k = {NULL, 0};
    if (key->type == PROTOBUF_C_TYPE_STRING)
        k.text = *(const char *const *)at;
    else /* an integer or a bool: equal keys have equal bytes */
        memcpy(&k.number, at, cv_slot_size(key->type));
    return k;
}

static int key_compare(const void *a, const void *b)
{
    const map_key_t *x = a, *y = b;
    if (x->text || y->text)
        return strcmp(x->text, y->text);
    return (x->number > y->number) - (x->number < y->number);
}

/*  Whether the n entries (each with its key) have n different keys:
 *  sorted, so that a map of thousands costs n log n, not n squared. */
static bool keys_distinct(ProtobufCMessage *const *entries, size_t n)
{
    if (n < 2)
        return true;
    map_key_t *keys = malloc(n * sizeof *keys);
    if (!keys)
        abort(); /* as everywhere in the broker: out of memory is the end */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (entries[i]) /* NULL ones are passed over, as by the walk */
            keys[k++] = key_of(entries[i]);
    qsort(keys, k, sizeof *keys, key_compare);
    bool distinct = true;
    for (size_t i = 1; distinct && i < k; i++)
        distinct = key_compare(&keys[i - 1], &keys[i]) != 0;
    free(keys);
    return distinct;
}

/*  Both halves there, each of good form itself (a string key or value
 *  UTF-8, an enum value defined, a message value whole). */
static const char *entry_form(const ProtobufCMessage *entry, char *path, size_t size, size_t at)
{
    const ProtobufCFieldDescriptor *key = &entry->descriptor->fields[0];
    const ProtobufCFieldDescriptor *value = &entry->descriptor->fields[1];
    if (!entry_field_present(entry, key) || !entry_field_present(entry, value))
        return PART_MISSING;
    return form_in(entry, path, size, at);
}

/*  The fault under field f of msg, or NULL; path (NULL: not kept) names f
 *  meanwhile. */
static const char *field_form(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                              char *path, size_t size, size_t at)
{
    size_t len = at;
    if (path) { /* only on the second walk, to name what failed: snprintf costs */
        snprintf(path + at, size - at, "%s%s", at ? "." : "", f->name);
        len = strlen(path);
    }
    const char *fault = NULL;
    if (f->type == PROTOBUF_C_TYPE_ENUM) {
        fault = enums_defined(msg, f) ? NULL : ENUM_UNKNOWN;
    } else if (f->type == PROTOBUF_C_TYPE_STRING) {
        fault = strings_utf8(msg, f) ? NULL : NOT_UTF8;
    } else {
        ProtobufCMessage *one;
        size_t n;
        ProtobufCMessage *const *items = messages_of(msg, f, &one, &n);
        bool map = cv_proto_is_map_entry(f->descriptor);
        for (size_t i = 0; items && !fault && i < n; i++)
            if (items[i])
                fault = map ? entry_form(items[i], path, size, len)
                            : form_in(items[i], path, size, len);
        if (!fault && map && items && !keys_distinct(items, n))
            fault = KEY_TWICE;
    }
    if (path && !fault)
        path[at] = '\0';
    return fault;
}

static const char *form_in(const ProtobufCMessage *msg, char *path, size_t size, size_t at)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const char *fault = NULL;
    for (unsigned i = 0; !fault && i < d->n_fields; i++) {
        ProtobufCType type = d->fields[i].type;
        if (type == PROTOBUF_C_TYPE_STRING || type == PROTOBUF_C_TYPE_MESSAGE ||
            type == PROTOBUF_C_TYPE_ENUM) /* the others hold nothing to check */
            fault = field_form(msg, &d->fields[i], path, size, at);
    }
    return fault;
}

const char *cv_proto_form_fault(const ProtobufCMessage *msg, char *path, size_t size)
{
    assert(size > 0);
    path[0] = '\0';
    if (!msg || !form_in(msg, NULL, 0, 0)) /* every report, once: no names */
        return NULL;
    return form_in(msg, path, size, 0); /* a refusal: again, naming the field */
}

/*  protobuf-c notes each field it meets in slabs of 32-byte records that
 *  double in size, so at most twice 32 bytes a field met; 96, to spare. */
#define SCAN_BYTES 96

static size_t element_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return cv_slot_size(f->type);
    }
}

/*  What the value at p (of field f) takes beyond its slot. */
static size_t value_bound(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *text = *(const char *const *)p;
        return text ? strlen(text) + 1 : 0;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len;
    case PROTOBUF_C_TYPE_MESSAGE:
        return cv_proto_unpack_bound(*(const ProtobufCMessage *const *)p);
    default:
        return 0;
    }
}

size_t cv_proto_unpack_bound(const ProtobufCMessage *msg)
{
    if (!msg)
        return 0;
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const char *base = (const char *)msg;
    size_t bound = d->sizeof_message, met = msg->n_unknown_fields;
    for (unsigned i = 0; i < msg->n_unknown_fields; i++)
        bound += sizeof *msg->unknown_fields + msg->unknown_fields[i].len;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                *(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
            bound += value_bound(f, base + f->offset);
            met++;
            continue;
        }
        size_t n = *(const size_t *)(base + f->quantifier_offset), size = element_size(f);
        const char *items = *(const char *const *)(base + f->offset);
        bound += n * size;
        met += n;
        for (size_t j = 0; items && j < n; j++)
            bound += value_bound(f, items + j * size);
    }
    return bound + met * SCAN_BYTES;
}
