/*  audit_leaf_print.h: an "accepted" leaf as `caveat audit sample`
 *  shows it to a reviewer: the report, and who was given which fields
 *  under which rule, or why not; and each "approval" leaf that released
 *  the report later, the same way.
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

/*  The leaf at index as text: a blank line, a line "leaf INDEX, TIME:
 *  report ...", then a line indented by two spaces for each recipient and
 *  by four for the fields it was given. */
void audit_leaf_print(FILE *out, uint64_t index, const char *data, size_t len);

/*  An "approval" leaf at index, after its report's accepted leaf: a line
 *  "  approval at leaf INDEX, TIME, to TO..., released it to:", then each
 *  agency it released the report to as audit_leaf_print writes a
 *  recipient, with the fields it was given; for a leaf of the earlier
 *  form, which names the agencies alone, a line each saying so. */
void audit_leaf_print_approval(FILE *out, uint64_t index, const char *data, size_t len);

/*  The leaf at index as {"index": INDEX, "leaf": {the leaf}} in w; a leaf
 *  that is not a JSON object is written as a string. */
void audit_leaf_write_json(cv_json_writer_t *w, uint64_t index, const char *data, size_t len);
/*  Its "index" and "leaf" members alone, in an object the caller opened. */
void audit_leaf_json_members(cv_json_writer_t *w, uint64_t index, const char *data, size_t len);

#endif
