/*  cv_record.h: what caveatd writes into its audit log (audit/cv_audit.h).
 *
 *  Each event is one leaf, written in the store's open transaction (by
 *  cv_record_flush, before it commits), so it commits or rolls back with
 *  the state it describes: a report stored has
 *  its "accepted" leaf, a turn rolled back takes its leaves with it.
 *  Leaves name reports and agencies and say what was decided, never a
 *  report's content. docs/operations.md, "The audit log", lists the events.
 *
 *  The log is checked when the record opens (a log whose leaves do not hash
 *  to its signed checkpoints is refused, and nothing is signed over it),
 *  and a checkpoint is signed every CV_RECORD_EVERY_LEAVES leaves or
 *  CV_RECORD_EVERY_SECONDS seconds, and when the broker stops.
 */
#ifndef CV_RECORD_H
#define CV_RECORD_H

#include "cv_audit.h"
#include "cv_policy.h"
#include "cv_store.h"

#define CV_RECORD_EVERY_LEAVES  1000
#define CV_RECORD_EVERY_SECONDS 10

typedef struct cv_record_t cv_record_t;

/*  The record of the store in data_dir: its key (DATA/audit.key, made at
 *  the first start) and its log, checked. NULL with err when either is
 *  refused. */
cv_record_t *cv_record_new(cv_store_t *store, const char *data_dir, cv_error_t *err);

/*  caveatd --audit-log off, for measuring what the log costs: one leaf,
 *  "audit off", says that nothing more is recorded by this process, and
 *  nothing more is (every other call writes nothing and succeeds). The
 *  log is still checked at start and signed at the stop, so the gap is
 *  in the signed record. */
bool cv_record_turn_off(cv_record_t *self, cv_error_t *err);
void cv_record_destroy(cv_record_t **self_p);

/*  A report accepted and stored: begin, with the checksum of the bytes
 *  stored (the store's: cv_store_checksum_fn) and the policy that decided, then
 *  one recipient for each agency the report was decided for (the decision
 *  just made), then end. Agencies not among the report's routing
 *  candidates are not listed: no entry of the policy could release the
 *  report to them. Each recipient given the report names a view, the
 *  fields it was given (shared, masked by which mask, withheld), written
 *  once for all the recipients given the same. */
void cv_record_accepted_begin(cv_record_t *self, const Caveat__Report *report,
                              const uint8_t stored[CV_DIGEST_BYTES], const cv_policy_t *policy);
/*  agency: its index in the policy given to cv_record_accepted_begin (or
 *  cv_record_approval_begin). */
void cv_record_recipient(cv_record_t *self, int agency, cv_decision_t *decision);
bool cv_record_accepted_end(cv_record_t *self, cv_error_t *err);

/*  A report refused, with its status name (caveat.wire.Status); an id
 *  longer than CV_REPORT_ID_MAX is written null. */
bool cv_record_refused(cv_record_t *self, const char *sender, const char *report_id,
                       const char *status, cv_error_t *err);
/*  count refusals of one Publish from sender, in one leaf: those past the
 *  sender's rate of refusals written one by one. */
bool cv_record_refusals(cv_record_t *self, const char *sender, size_t count, cv_error_t *err);
/*  A policy loaded (at start or by a reload). */
bool cv_record_policy(cv_record_t *self, const cv_policy_t *policy, cv_error_t *err);
/*  A policy refused (a reload that failed: the old policy stays), why. */
bool cv_record_policy_refused(cv_record_t *self, const char *why, cv_error_t *err);
/*  An administrator's action (reload, purge, backup), with its outcome. */
bool cv_record_admin(cv_record_t *self, const char *agency, const char *action, bool ok,
                     cv_error_t *err);
/*  A report purged by retention, under rule. */
bool cv_record_purged(cv_record_t *self, const char *originator, const char *report_id,
                      const char *category, const char *rule, cv_error_t *err);

/*  An administrator's review decision on a report (cv_store_review): its
 *  new retention, or its disposal, and the reviewer's reason. */
bool cv_record_review(cv_record_t *self, const char *originator, const char *report_id,
                      const cv_review_t *review, cv_error_t *err);
/*  An originator's approval of its report to an agency id or type: begin
 *  (with the policy that decides), then cv_record_recipient for each
 *  agency the approval released the report to (the decision that released
 *  it), then end with their ids (none: nothing new was released); or drop,
 *  for an approval that leaves no leaf (one that changed nothing, or a
 *  turn that fails). The leaf names the report's category, and each
 *  recipient's organisation, rules and view, as an accepted leaf does. */
void cv_record_approval_begin(cv_record_t *self, const Caveat__Report *report, const char *to,
                              const cv_policy_t *policy);
bool cv_record_approval_end(cv_record_t *self, const char *const *released, size_t n_released,
                            cv_error_t *err);
void cv_record_approval_drop(cv_record_t *self);
/*  Feedback stored from agency from on report (report_id of originator),
 *  with its value; never its text. */
bool cv_record_feedback(cv_record_t *self, const char *report_id, const char *originator,
                        const char *from, const char *value, cv_error_t *err);
/*  Every leaf the broker writes carries this many random bytes, as the
 *  hex member "salt" after its time: its hash, which other agencies'
 *  receipts carry, cannot be matched against a guess of what it says. */
#define CV_RECORD_SALT_BYTES 16

/*  One delivery acknowledged: its seq, its report, and the SHA-256 of the
 *  exact view sent (NULL: the broker no longer knows it). */
typedef struct {
    uint64_t seq;
    const char *report_id;
    const uint8_t *view;
} cv_delivered_t;

/*  Deliveries acknowledged, as their queue's state is saved: one leaf
 *  names the recipient agency and its queue (feed "" for the direct one)
 *  once, then up to CV_RECORD_DELIVERIES_PER_LEAF deliveries, in seq
 *  order. One leaf per acknowledged delivery would be the same record at
 *  many times the cost (a row, two hashes and the agency's name each),
 *  where a subscriber acknowledges by the hundred; the bound keeps a
 *  receipt, which carries its whole leaf, small. *position (may be NULL)
 *  is the leaf's place among the transaction's leaves: after the flush,
 *  its index is cv_record_flushed_first() + position. */
#define CV_RECORD_DELIVERIES_PER_LEAF 16
bool cv_record_delivered(cv_record_t *self, const char *agency, const char *feed,
                         const cv_delivered_t *deliveries, size_t n, size_t *position,
                         cv_error_t *err);
/*  The index of the first leaf the last cv_record_flush wrote. */
uint64_t cv_record_flushed_first(const cv_record_t *self);
/*  The size of the last checkpoint stored (0: none); -1 with err. */
int64_t cv_record_checkpointed(cv_record_t *self, cv_error_t *err);
/*  The log's store connection, for proofs (cv_audit_prove) after commit. */
sqlite3 *cv_record_db(const cv_record_t *self);

/*  Before the transaction commits: writes its leaves into the log (all at
 *  once: the log's frontier is read and written once), then signs a
 *  checkpoint when one is due, or whenever leaves were added since the
 *  last with checkpoint. */
bool cv_record_flush(cv_record_t *self, bool checkpoint, cv_error_t *err);
/*  The transaction rolled back: its leaves are forgotten. */
void cv_record_discard(cv_record_t *self);

#endif
