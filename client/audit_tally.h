/*  audit_tally.h: how many reports were shared, per category and
 *  recipient organisation, counted from the audit log's "accepted" and
 *  "approval" leaves (`caveat audit summary`), and written as a table, as
 *  JSON or as an SVG bar chart.
 *
 *  A report counts once for each organisation it was delivered to (two
 *  agencies of one organisation count once, and so does an organisation
 *  given it at acceptance and again by an approval), under the
 *  organisation the leaf names for the agency; a leaf that names none
 *  (written before leaves named organisations) counts under the agency
 *  itself, or, for an approval, under the organisation the report's
 *  accepted leaf names for it. It counts in the period of the leaf that
 *  first gave it to the organisation: an approval after since of a report
 *  accepted before counts for each organisation it was new to.
 *
 *  Leaves are any bytes (a store may have been edited): what they name
 *  reaches the table through cv_text_write, the JSON through the writer
 *  and the SVG through cv_xml_text. */
#ifndef CV_AUDIT_TALLY_H
#define CV_AUDIT_TALLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct audit_tally_t audit_tally_t;

/*  A tally of the leaves written at since_ms (unix milliseconds) or later. */
audit_tally_t *audit_tally_new(uint64_t since_ms);
void audit_tally_destroy(audit_tally_t **self_p);

/*  An approval leaf's category when neither it nor the report's accepted
 *  leaf names one. */
#define AUDIT_TALLY_UNRECORDED "(not recorded)"

/*  First, each leaf of the log: the reports approval leaves name, whose
 *  accepted leaf add is then to keep what it gave whom. Any other leaf is
 *  passed over. */
void audit_tally_expect(audit_tally_t *self, const void *data, size_t len);
/*  Then, each leaf in the log's order; any leaf but an "accepted" or an
 *  "approval" one is passed over. An approval of a report expect did not
 *  see counts the organisations it names that earlier approvals did not. */
void audit_tally_add(audit_tally_t *self, const void *data, size_t len);
/*  Reports accepted in the period, and those first delivered to at least
 *  one organisation in the period. */
uint64_t audit_tally_accepted(const audit_tally_t *self);
uint64_t audit_tally_shared(const audit_tally_t *self);

/*  The counts, by category then organisation. since (NULL: none) is only
 *  said, as the caller gave it. */
void audit_tally_print(audit_tally_t *self, FILE *out, const char *since);
void audit_tally_json(audit_tally_t *self, FILE *out);
/*  False when out could not be written. */
bool audit_tally_svg(audit_tally_t *self, FILE *out, const char *since);

#endif
