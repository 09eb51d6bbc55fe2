/*  audit_leaf_print.h: an "accepted" leaf as `caveat audit sample`
 *  shows it to a reviewer: the report, and who was given which fields
 *  under which rule, or why not.
 *
 *  A leaf is read from a store that someone may have edited, so its bytes
 *  are any bytes: every string taken from it is written with
 *  cv_text_write (no control character reaches the terminal, and no line
 *  is added), and the JSON form goes through the JSON writer. */
#ifndef CV_AUDIT_LEAF_PRINT_H
#define CV_AUDIT_LEAF_PRINT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cv_proto.h"

struct fy_document;

/*  audit_leaf_parse (leaf_json.h) of a leaf within the bounds of those
 *  caveatd writes, NULL for any other, as for one that does not parse:
 *  no object of more than AUDIT_LEAF_KEYS_MAX keys, none nested deeper
 *  than AUDIT_LEAF_DEPTH_MAX. caveatd's objects hold a dozen keys at most,
 *  four deep; libfyaml checks an object's keys for duplicates in time
 *  quadratic in their number (40,000 keys: 20 s), and has no option but
 *  to leave duplicates unchecked, which leaf_json.h refuses. */
#define AUDIT_LEAF_KEYS_MAX  64
#define AUDIT_LEAF_DEPTH_MAX 32
struct fy_document *audit_leaf_parse_bounded(const void *data, size_t len);

/*  The leaf at index as text: a blank line, a line "leaf INDEX, TIME:
 *  report ...", then a line indented by two spaces for each recipient and
 *  by four for the fields it was given. */
void audit_leaf_print(FILE *out, uint64_t index, const char *data, size_t len);

/*  The leaf at index as {"index": INDEX, "leaf": {the leaf}} in w; a leaf
 *  that is not a JSON object is written as a string. */
void audit_leaf_write_json(cv_json_writer_t *w, uint64_t index, const char *data, size_t len);

#endif
