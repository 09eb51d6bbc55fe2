/*  cv_values.c: the values a message holds at one field path, as text.
 *  Used wherever a person or a test looks at one field across a report
 *  (the side-by-side view, the administrator's test cases). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_proto.h"

typedef struct {
    char **items;
    int count;
} values_t;

static void add(values_t *v, char *text)
{
    char **grown = realloc(v->items, (size_t)(v->count + 1) * sizeof *grown);
    if (!grown || !text)
        abort();
    v->items = grown;
    grown[v->count++] = text;
}

static char *text_of(const ProtobufCFieldDescriptor *f, const void *value)
{
    char *out = NULL;
    int rc = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return strdup(*(char *const *)value);
    case PROTOBUF_C_TYPE_DOUBLE:
        rc = asprintf(&out, "%.15g", *(const double *)value);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        rc = asprintf(&out, "%.7g", (double)*(const float *)value);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        return strdup(*(const protobuf_c_boolean *)value ? "true" : "false");
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *e =
            protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)value);
        return strdup(e ? e->name : "?");
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        rc = asprintf(&out, "%" PRId64, *(const int64_t *)value);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        rc = asprintf(&out, "%" PRIu64, *(const uint64_t *)value);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        rc = asprintf(&out, "%" PRIu32, *(const uint32_t *)value);
        break;
    case PROTOBUF_C_TYPE_MESSAGE: { /* a map entry: key=value */
        const ProtobufCMessage *entry = *(ProtobufCMessage *const *)value;
        const ProtobufCMessageDescriptor *d = entry->descriptor;
        const char *k = *(char *const *)((const char *)entry + d->fields[0].offset);
        const char *v = *(char *const *)((const char *)entry + d->fields[1].offset);
        rc = asprintf(&out, "%s=%s", k ? k : "", v ? v : "");
        break;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return strdup("<bytes>");
    default:
        rc = asprintf(&out, "%" PRId32, *(const int32_t *)value);
        break;
    }
    return rc < 0 ? NULL : out;
}

/*  chain[0..depth] are the nodes from the top-level field down to the
 *  wanted one; walk msg along it, visiting every repeated element. */
static void collect(const cv_schema_t *schema, const ProtobufCMessage *msg, const int *chain,
                    int depth, int last, values_t *out)
{
    const cv_schema_node_t *node = cv_schema_node(schema, chain[depth]);
    const ProtobufCFieldDescriptor *f = node->field;
    const char *base = (const char *)msg + f->offset;
    size_t count = 1;
    const char *items = base;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        count = *(const size_t *)((const char *)msg + f->quantifier_offset);
        items = *(const char *const *)base;
    } else if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
        count = *(void *const *)base != NULL;
    } else {
        count = *(const protobuf_c_boolean *)((const char *)msg + f->quantifier_offset) != 0;
    }
    for (size_t i = 0; i < count; i++) {
        const void *value = items + i * cv_slot_size(f->type);
        if (depth == last)
            add(out, text_of(f, value));
        else
            collect(schema, *(ProtobufCMessage *const *)value, chain, depth + 1, last, out);
    }
}

int cv_message_values(const cv_schema_t *schema, const ProtobufCMessage *msg, int node,
                      char ***values)
{
    values_t out = {NULL, 0};
    const cv_schema_node_t *n = cv_schema_node(schema, node);
    if (!n || n->depth >= 16) {
        *values = NULL;
        return 0;
    }
    int chain[16];
    for (int i = n->depth, at = node; i >= 0; i--, at = cv_schema_node(schema, at)->parent)
        chain[i] = at;
    if (n->is_leaf)
        collect(schema, msg, chain, 0, n->depth, &out);
    *values = out.items;
    return out.count;
}

void cv_values_free(char **values, int count)
{
    for (int i = 0; i < count; i++)
        free(values[i]);
    free(values);
}
