/*  leaf_json.h: an audit leaf (a JSON object, as the broker writes it)
 *  read back with libfyaml, for the `caveat audit` commands and for the
 *  receipts `caveat subscribe` checks. */
#ifndef CV_LEAF_JSON_H
#define CV_LEAF_JSON_H

#include <stdbool.h>
#include <stddef.h>

struct fy_document;
struct fy_node;

/*  A leaf parsed: NULL when it does not begin with a JSON object (or that
 *  has a key twice); what follows the object is not read. Free with
 *  fy_document_destroy. */
struct fy_document *audit_leaf_parse(const void *data, size_t len);
/*  The text of key in mapping map, NUL-terminated and owned by its
 *  document; NULL when absent or not a scalar. */
const char *audit_leaf_text(struct fy_node *map, const char *key);
/*  Whether key in map is true. */
bool audit_leaf_true(struct fy_node *map, const char *key);
/*  Whether node is JSON's null (not the string "null"). */
bool audit_node_null(struct fy_node *node);

#endif
