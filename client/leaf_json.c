/*  leaf_json.c: see leaf_json.h. */
#include <libfyaml.h>
#include <stdlib.h>
#include <string.h>

#include "cv_proto.h"
#include "leaf_json.h"

/*  Whether data's objects keep within AUDIT_LEAF_KEYS_MAX keys and
 *  AUDIT_LEAF_DEPTH_MAX levels, and the whole within AUDIT_LEAF_VALUES_MAX
 *  values: its ':' outside strings counted for the object they are in,
 *  its ',', '{' and '[' for the whole, without parsing it. */
static bool within_bounds(const char *data, size_t len)
{
    unsigned keys[AUDIT_LEAF_DEPTH_MAX];
    bool object[AUDIT_LEAF_DEPTH_MAX];
    int depth = 0;
    size_t values = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (in_string) {
            i += c == '\\'; /* the escaped character, whatever it is */
            in_string = c != '"';
        } else if (c == '"') {
            in_string = true;
        } else if (c == ',' && ++values > AUDIT_LEAF_VALUES_MAX) {
            return false;
        } else if (c == '{' || c == '[') {
            if (depth == AUDIT_LEAF_DEPTH_MAX || ++values > AUDIT_LEAF_VALUES_MAX)
                return false;
            object[depth] = c == '{';
            keys[depth++] = 0;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        } else if (c == ':' && depth > 0 && object[depth - 1] &&
                   ++keys[depth - 1] > AUDIT_LEAF_KEYS_MAX) {
            return false;
        }
    }
    return true;
}

struct fy_document *audit_leaf_parse(const void *data, size_t len)
{
    int line, col;
    if (cv_text_check(data, len, &line, &col) /* libfyaml stops at a bad byte */ ||
        !within_bounds(data, len))
        return NULL;
    /* a leaf that does not parse is the caller's to report, not libfyaml's
     * to print: a receipt's leaf is the broker's word, any bytes at all */
    struct fy_diag *diag = cv_diag_collecting();
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG | FYPCF_JSON_FORCE,
                               .diag = diag};
    struct fy_document *doc = fy_document_build_from_string(&cfg, data, len);
    if (diag)
        fy_diag_destroy(diag);
    if (doc && !fy_node_is_mapping(fy_document_root(doc)))
        fy_document_destroy(doc), doc = NULL;
    return doc;
}

struct fy_node *audit_leaf_member(struct fy_node *map, const char *key)
{
    return map && key && fy_node_is_mapping(map)
               ? fy_node_mapping_lookup_value_by_simple_key(map, key, FY_NT)
               : NULL;
}

const char *audit_leaf_text(struct fy_node *map, const char *key)
{
    struct fy_node *value = audit_leaf_member(map, key);
    return value && fy_node_is_scalar(value) ? fy_node_get_scalar0(value) : NULL;
}

bool audit_leaf_true(struct fy_node *map, const char *key)
{
    struct fy_node *value = audit_leaf_member(map, key);
    return value && fy_node_is_scalar(value) && fy_node_get_style(value) == FYNS_PLAIN &&
           strcmp(fy_node_get_scalar0(value), "true") == 0;
}

bool audit_node_null(struct fy_node *node)
{
    return node && fy_node_is_scalar(node) && fy_node_get_style(node) == FYNS_PLAIN &&
           strcmp(fy_node_get_scalar0(node), "null") == 0;
}

/*  Whether data is a leaf of event (its JSON string, quoted); *time_ms
 *  its time. */
static bool leaf_of(const void *data, size_t len, const char *event, uint64_t *time_ms)
{
    static const char head[] = "{\"event\":", tail[] = ",\"time\":";
    const char *text = data;
    size_t at = strlen(head), event_len = strlen(event);
    if (len < at + event_len + strlen(tail) || memcmp(text, head, at) != 0 ||
        memcmp(text + at, event, event_len) != 0 ||
        memcmp(text + at + event_len, tail, strlen(tail)) != 0)
        return false;
    at += event_len + strlen(tail);
    uint64_t ms = 0;
    size_t digits = 0;
    for (; at < len && text[at] >= '0' && text[at] <= '9' && digits < 19; at++, digits++)
        ms = ms * 10 + (uint64_t)(text[at] - '0');
    *time_ms = ms;
    return digits > 0;
}

bool audit_leaf_accepted(const void *data, size_t len, uint64_t *time_ms)
{
    return leaf_of(data, len, "\"accepted\"", time_ms);
}

bool audit_leaf_approval(const void *data, size_t len, uint64_t *time_ms)
{
    return leaf_of(data, len, "\"approval\"", time_ms);
}

char *audit_leaf_report_key(struct fy_node *leaf)
{
    const char *originator = audit_leaf_text(leaf, "originator"),
               *id = audit_leaf_text(leaf, "report");
    char *key = NULL;
    if (originator && id && asprintf(&key, "%zu:%s%s", strlen(originator), originator, id) < 0)
        abort();
    return key;
}

static void scalar_json(cv_json_writer_t *w, struct fy_node *node)
{
    const char *text = fy_node_get_scalar0(node);
    bool plain = fy_node_get_style(node) == FYNS_PLAIN;
    if (plain && strcmp(text, "null") == 0)
        cv_json_string(w, NULL);
    else if (plain && (strcmp(text, "true") == 0 || strcmp(text, "false") == 0))
        cv_json_bool(w, text[0] == 't');
    else if (plain && *text && strspn(text, "0123456789") == strlen(text) && strlen(text) < 20)
        cv_json_uint(w, strtoull(text, NULL, 10));
    else
        cv_json_string(w, text);
}

void audit_node_json(cv_json_writer_t *w, struct fy_node *node)
{
    void *iter = NULL;
    if (fy_node_is_mapping(node)) {
        cv_json_object_begin(w);
        struct fy_node_pair *pair;
        while ((pair = fy_node_mapping_iterate(node, &iter))) {
            cv_json_key(w, fy_node_get_scalar0(fy_node_pair_key(pair)));
            audit_node_json(w, fy_node_pair_value(pair));
        }
        cv_json_object_end(w);
    } else if (fy_node_is_sequence(node)) {
        cv_json_array_begin(w);
        struct fy_node *item;
        while ((item = fy_node_sequence_iterate(node, &iter)))
            audit_node_json(w, item);
        cv_json_array_end(w);
    } else {
        scalar_json(w, node);
    }
}

void audit_text(FILE *out, const char *text)
{
    if (text)
        cv_text_write(out, text, strlen(text));
    else
        fputc('?', out);
}
