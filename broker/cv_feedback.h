/*  cv_feedback.h: feedback on reports, kept in the broker's store until
 *  the report's originator has it.
 *
 *  A recipient's feedback on a report (docs/protocol.md, "Feedback") is one
 *  row here and one entry in the originator's direct queue. Queues name
 *  what they hold by rowid (cv_routed_t), and what keeps them durable
 *  (routes rows, sent rows, and the done marks that say everything up to
 *  a rowid is finished) rests on rowids that rise in order of acceptance
 *  and are never given twice. So a feedback row takes its rowid from the
 *  reports' own sequence: a queue entry names a report or a feedback row,
 *  never both, and cv_router, cv_queue and the store's routes carry
 *  feedback unchanged. cv_store_get_report finds no report at a feedback
 *  row's rowid; the broker then looks here.
 *
 *  Writes go into the store's open transaction (cv_store_writing), so a
 *  row commits or rolls back with its route and its audit leaf.
 */
#ifndef CV_FEEDBACK_H
#define CV_FEEDBACK_H

#include "cv_store.h"

typedef struct cv_feedback_t cv_feedback_t;

typedef struct {
    int64_t report;         /* the report's rowid */
    const char *report_id;  /* the report's id and originator (read back only) */
    const char *originator; /* the one agency the feedback goes to */
    const char *from;       /* the agency that sent it */
    const char *value;      /* useful, not_useful, action_taken or seen */
    const char *text;       /* "" when none */
    int64_t time;           /* when stored: unix milliseconds */
} cv_feedback_row_t;

/*  The feedback rows of store (made when the store has none yet). NULL
 *  with err when the store cannot take them. */
cv_feedback_t *cv_feedback_new(cv_store_t *store, cv_error_t *err);
/*  Before the store closes. */
void cv_feedback_destroy(cv_feedback_t **self_p);

/*  Stores row (report, from, value, text, time) in the open transaction:
 *  its rowid, or 0 with err. */
int64_t cv_feedback_put(cv_feedback_t *self, const cv_feedback_row_t *row, cv_error_t *err);
/*  How many rows from agency on report; -1 with err. */
int cv_feedback_count(cv_feedback_t *self, int64_t report, const char *from, cv_error_t *err);
/*  The row at rowid, with its report's id and originator: 1 (its strings
 *  valid until the next call), 0 when there is none or its report is gone
 *  (purged or quarantined: feedback goes with its report), -1 with err. */
int cv_feedback_get(cv_feedback_t *self, int64_t rowid, cv_feedback_row_t *row, cv_error_t *err);
/*  Removes the rows whose report is gone, in the open transaction: after
 *  retention purged reports. How many, or -1 with err. */
int cv_feedback_forget_orphans(cv_feedback_t *self, cv_error_t *err);

#endif
