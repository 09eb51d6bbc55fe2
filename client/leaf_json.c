/*  leaf_json.c: see leaf_json.h. */
#include <libfyaml.h>
#include <string.h>

#include "cv_proto.h"
#include "leaf_json.h"

struct fy_document *audit_leaf_parse(const void *data, size_t len)
{
    int line, col;
    if (cv_text_check(data, len, &line, &col)) /* libfyaml stops at a bad byte */
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

const char *audit_leaf_text(struct fy_node *map, const char *key)
{
    struct fy_node *value = map ? fy_node_mapping_lookup_by_string(map, key, FY_NT) : NULL;
    return value && fy_node_is_scalar(value) ? fy_node_get_scalar0(value) : NULL;
}

bool audit_leaf_true(struct fy_node *map, const char *key)
{
    struct fy_node *value = map ? fy_node_mapping_lookup_by_string(map, key, FY_NT) : NULL;
    return value && fy_node_is_scalar(value) && fy_node_get_style(value) == FYNS_PLAIN &&
           strcmp(fy_node_get_scalar0(value), "true") == 0;
}

bool audit_node_null(struct fy_node *node)
{
    return node && fy_node_is_scalar(node) && fy_node_get_style(node) == FYNS_PLAIN &&
           strcmp(fy_node_get_scalar0(node), "null") == 0;
}
