/*  received.h: the reader behind `caveat received`: the JSON lines that
 *  `caveat subscribe` writes, one delivery each, gathered into one table
 *  per report (a report is named by its id and originator together), a
 *  view per line. Feedback lines ("report": null and a "feedback" object)
 *  are passed over. What the lines carry is other agencies' text: it is
 *  checked as UTF-8 and read through the report's schema, never trusted.
 */
#ifndef RECEIVED_H
#define RECEIVED_H

#include <stdbool.h>
#include <stddef.h>

#include "cv_proto.h"

/*  A view of one report, as read under label (the caller's string). */
typedef struct {
    const char *label;
    Caveat__Report *view;
    char *feed; /* the screening feed it came on, or NULL */
} received_view_t;

/*  The views of one report, in the order read. */
typedef struct {
    char *report_id;
    char *originator;
    received_view_t *views;
    int n;
} received_report_t;

typedef struct received_t received_t;

received_t *received_new(void);
void received_destroy(received_t **self_p);

/*  One line (len bytes, no line end) of file, read under label: a
 *  delivery is added to its report's table, a feedback line passed over.
 *  false with err for anything else (not UTF-8, not JSON, not a delivery,
 *  a view that does not fit the schema); err does not name file, its
 *  positions in the line do. */
bool received_read_line(received_t *self, const char *label, const char *line, size_t len,
                        const char *file, cv_error_t *err);

/*  The reports read, in the order their first line came. */
int received_count(const received_t *self);
const received_report_t *received_at(const received_t *self, int index);

#endif
