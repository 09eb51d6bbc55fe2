/*  cv_approval_store.h: the originators' approvals of handling-code-5
 *  reports, kept in the broker's store (cv_store.h) and written in its
 *  transactions.
 *
 *  Three tables, made on first use beside the store's own (as the audit
 *  log's are), so a store of an earlier broker takes them without an
 *  upgrade:
 *   - approvals: per report (originator, id), each agency id or type its
 *     originator approved, and when;
 *   - approval_releases: per report, each agency an approval released it
 *     to, so that no later approval routes it to that agency again;
 *   - approval_routes: the rowids approved releases are routed under.
 *     A queue keeps reports in order of acceptance and the store marks
 *     how far each queue is finished by rowid, so a release made now of a
 *     report accepted earlier cannot be routed under the report's own
 *     rowid: it takes a new one from the reports' sequence (never given to
 *     a report), which resolves to the report (cv_approval_store_resolve).
 *  A trigger removes a report's approvals, releases and approved routes
 *  when the report leaves the store (retention, quarantine).
 *
 *  Every write begins the store's transaction (cv_store_writing) and
 *  returns false or -1 with err holding the store's message: the caller's
 *  transaction must then roll back.
 */
#ifndef CV_APPROVAL_STORE_H
#define CV_APPROVAL_STORE_H

#include "cv_policy.h"
#include "cv_store.h"

typedef struct cv_approval_store_t cv_approval_store_t;

/*  The approvals of store (not owned), its tables made when missing. */
cv_approval_store_t *cv_approval_store_new(cv_store_t *store, cv_error_t *err);
void cv_approval_store_destroy(cv_approval_store_t **self_p);

/*  The rowid of originator's report id: 1, 0 when the originator has no
 *  such report, -1 on error. */
int cv_approval_store_report(cv_approval_store_t *self, const char *originator, const char *id,
                             int64_t *rowid, cv_error_t *err);

/*  The report's approvals, into *approvals (its strings borrowed until the
 *  next call): how many, or -1. */
int cv_approval_store_list(cv_approval_store_t *self, const char *originator, const char *id,
                           cv_approvals_t *approvals, cv_error_t *err);

/*  Records the approval of the report to an agency id or type: 1 when new,
 *  0 when it was there already, -1 on error. */
int cv_approval_store_add(cv_approval_store_t *self, const char *originator, const char *id,
                          const char *to, cv_error_t *err);

/*  Whether an approval released the report to agency: 1, 0, or -1. */
int cv_approval_store_released(cv_approval_store_t *self, const char *originator, const char *id,
                               const char *agency, cv_error_t *err);
/*  Records that an approval released the report to agency. */
bool cv_approval_store_release(cv_approval_store_t *self, const char *originator, const char *id,
                               const char *agency, cv_error_t *err);

/*  Whether agency's queues were routed the report (rowid) when it was
 *  accepted: 1, 0, or -1. */
int cv_approval_store_routed(cv_approval_store_t *self, int64_t report, const char *agency,
                             cv_error_t *err);

/*  A new rowid for an approved release of report (its rowid), above every
 *  rowid given so far: > 0, or -1. */
int64_t cv_approval_store_alias(cv_approval_store_t *self, int64_t report, cv_error_t *err);
/*  The report an approved release's rowid stands for: > 0, 0 when rowid is
 *  none, -1 on error. */
int64_t cv_approval_store_resolve(cv_approval_store_t *self, int64_t rowid, cv_error_t *err);

#endif
