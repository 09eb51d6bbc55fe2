/*  leaf_json.h: an audit leaf (a JSON object, as the broker writes it)
 *  read back with libfyaml, for the `caveat audit` commands and for the
 *  receipts `caveat subscribe` checks. */
#ifndef CV_LEAF_JSON_H
#define CV_LEAF_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cv_proto.h"

struct fy_document;
struct fy_node;

/*  A leaf parsed: NULL when it does not begin with a JSON object (or that
 *  has a key twice), or when it is beyond the bounds of every leaf caveatd
 *  writes: an object of more than AUDIT_LEAF_KEYS_MAX keys, one nested
 *  deeper than AUDIT_LEAF_DEPTH_MAX, or more than AUDIT_LEAF_VALUES_MAX
 *  values in all. caveatd's objects hold a dozen keys
 *  at most, four deep; libfyaml checks an object's keys for duplicates in
 *  time quadratic in their number (40,000 keys: 20 s), and has no option
 *  but to leave duplicates unchecked. Every leaf is a stranger's bytes
 *  (an edited store, a receipt from the broker), so every reader gets the
 *  bounds. What follows the object is not read. Free with
 *  fy_document_destroy. */
#define AUDIT_LEAF_KEYS_MAX  64
#define AUDIT_LEAF_DEPTH_MAX 32
/*  Values in a leaf in all (about the commas and brackets in it): libfyaml
 *  takes some 500 bytes a value, so an 8 MB leaf of one array of four
 *  million zeros took 2.2 GB. An accepted leaf takes about five values a
 *  recipient: this is a partnership of 100,000 agencies, in about 250 MB. */
#define AUDIT_LEAF_VALUES_MAX 500000
struct fy_document *audit_leaf_parse(const void *data, size_t len);
/*  The value of key in map; NULL when map is not a mapping or has no such
 *  key. The key is compared as a string: libfyaml's lookup by string
 *  would parse it as YAML, and a key may come from the leaf itself. */
struct fy_node *audit_leaf_member(struct fy_node *map, const char *key);
/*  The text of key in mapping map, NUL-terminated and owned by its
 *  document; NULL when absent or not a scalar. */
const char *audit_leaf_text(struct fy_node *map, const char *key);
/*  Whether key in map is true. */
bool audit_leaf_true(struct fy_node *map, const char *key);
/*  Whether node is JSON's null (not the string "null"). */
bool audit_node_null(struct fy_node *node);

/*  The report a leaf names, its originator and its id together, as one
 *  key ("LENGTH:ORIGINATOR" then the id: no two reports have one),
 *  malloc'd; NULL when the leaf lacks either. A report's id is its
 *  originator's own: two originators may use one. */
char *audit_leaf_report_key(struct fy_node *leaf);

/*  Whether data is an "accepted" leaf; *time_ms its time. Read from the
 *  leaf's first bytes, as the broker writes them, without parsing it. */
bool audit_leaf_accepted(const void *data, size_t len, uint64_t *time_ms);
/*  The same for an "approval" leaf. */
bool audit_leaf_approval(const void *data, size_t len, uint64_t *time_ms);

/*  Writes node (a leaf, or part of one) to w as it is: mappings as
 *  objects, sequences as arrays, true, false, null and digits as
 *  themselves, other scalars as strings. Keys it does not know are kept. */
void audit_node_json(cv_json_writer_t *w, struct fy_node *node);

/*  text (a leaf's string, or NULL for one it lacks: "?") written with
 *  cv_text_write, so that an edited leaf cannot write to the terminal. */
void audit_text(FILE *out, const char *text);

#endif
