/*  cv_store.h: the broker's durable store (SQLite, WAL).
 *
 *  Reports are stored once, with one row saying which queues they were
 *  routed to. The broker keeps its queues in memory (cv_queue.h) and the
 *  store only what it needs to build them again: per queue its seqs and
 *  how far it got (cv_queue_state_t), and one row per pump of deliveries
 *  sent and not yet acknowledged, so that a restart resends them with the
 *  seqs they had. Nothing is written per delivery. A queue is named by
 *  (agency id, feed), feed "" being the agency's direct queue, and has an
 *  integer id; reports are referred to by their rowid.
 */
#ifndef CV_STORE_H
#define CV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cv_hasher.h"
#include "cv_poller.h"
#include "cv_proto.h"
#include "cv_syncer.h"

typedef struct cv_store_t cv_store_t;

#define CV_PRIORITIES 3 /* caveat.Priority: ROUTINE, PRIORITY, IMMEDIATE */

typedef enum {
    CV_SYNC_FULL,   /* fsync after every commit: nothing acknowledged is lost on power loss */
    CV_SYNC_NORMAL, /* WAL without fsync per commit: a power loss may lose the last commits */
    CV_SYNC_OFF,    /* no fsync at all: for measuring what durability costs, never for use */
} cv_sync_t;

/*  The page size of a store made new; a store keeps the size it was made
 *  with. 16 KiB rather than SQLite's 4: the checkpointer copies the WAL
 *  into the database a page a write, and a 1 KB report row with its index
 *  entries dirties about the same few pages at either size, so larger
 *  pages copy the same reports in fewer writes (the checkpointer's CPU a
 *  report fell by about 40 %: docs/performance.md). */
#define CV_STORE_PAGE_BYTES 16384

/*  The store's page cache: CV_STORE_CACHE_KB of pages kept between
 *  transactions, and a transaction's changed pages held in memory until
 *  its commit up to CV_STORE_SPILL_KB (past that SQLite writes them into
 *  the WAL early). */
#define CV_STORE_CACHE_KB 4096
#define CV_STORE_SPILL_KB 32768

/*  Opens DIR/caveat.db, creating it (mode 0600) in a new or empty
 *  directory, and upgrades a store of an earlier format in place. Refuses a
 *  file that is not a caveat store, or a newer format; a directory or a
 *  caveat.db that group or others may use; and a directory that another
 *  store holds: DIR/caveat.lock is locked (flock) while the store is open,
 *  so that one broker only works on a data directory. */
cv_store_t *cv_store_open(const char *dir, cv_sync_t sync, cv_error_t *err);

/*  The directory's checks and lock alone, taken before anything else is
 *  made or changed in DIR (a broker's disk reserve, its pseudonymisation
 *  key): the descriptor of DIR/caveat.lock, locked, or -1 with err.
 *  cv_store_open_claimed takes it over, closing it when it fails.       */
int cv_store_claim(const char *dir, cv_error_t *err);
cv_store_t *cv_store_open_claimed(int claim, const char *dir, cv_sync_t sync, cv_error_t *err);
void cv_store_close(cv_store_t **self_p);
/*  Whether a transaction is open: cv_store_begin called, and neither
 *  cv_store_commit nor cv_store_rollback since. */
bool cv_store_in_transaction(const cv_store_t *self);

/*  One write transaction around many changes: group commit. The
 *  transaction opens at the first write or report read after begin (the
 *  turn's reads then share it); a turn that changes nothing has nothing
 *  to sync. */
bool cv_store_begin(cv_store_t *self, cv_error_t *err);
bool cv_store_commit(cv_store_t *self, cv_error_t *err);
void cv_store_rollback(cv_store_t *self);

/*  Durability without waiting: commits are numbered 1, 2, 3...; with
 *  CV_SYNC_FULL a thread fdatasyncs the WAL after each and cv_store_synced
 *  says up to which commit that is done (the others say every commit at
 *  once). Whatever depends on a commit being on disk (a PublishAck, a
 *  delivery with a new seq) waits for it. cv_store_watch puts the store's
 *  threads' pipes in the broker's poller, which then wakes when
 *  cv_store_synced may have risen or a checkpoint ended. Opening a CV_SYNC_FULL store syncs what an
 * earlier process may have left unsynced; closing waits for the last commit's sync. */
uint64_t cv_store_last_commit(const cv_store_t *self);
uint64_t cv_store_synced(cv_store_t *self);
int cv_store_watch(cv_store_t *self, cv_poller_t *poller);
/*  Why syncing stopped for good (a failed fdatasync), or NULL. */
const char *cv_store_sync_failed(cv_store_t *self);
/*  Whether a sync took over CV_SYNC_SLOW_MS since the last call (*ms: the
 *  longest): a disk that stalls publishers, for the operator. */
bool cv_store_slow_sync(cv_store_t *self, int64_t *ms);
/*  The WAL's syncs so far, and their stalls (cv_syncer.h): all 0 unless
 *  CV_SYNC_FULL. */
cv_sync_counts_t cv_store_sync_counts(const cv_store_t *self);
/*  Waits at most timeout_ms for the last commit to be synced. */
bool cv_store_sync_wait(cv_store_t *self, int timeout_ms);

typedef enum {
    CV_PUT_NEW,      /* stored */
    CV_PUT_SAME,     /* the same report was stored before: nothing to do */
    CV_PUT_CONFLICT, /* the originator's id names another of its reports */
    CV_PUT_UNDONE,   /* not stored, and nothing else lost: the transaction goes on */
    CV_PUT_FAILED,   /* not stored, and the transaction is lost: it must roll back */
} cv_put_t;

#define CV_DIGEST_BYTES CV_CHECKSUM_BYTES /* cv_store_checksum_fn's */

/*  The sum the store keeps of each body as stored (its checksum) and of
 *  each report as sent (its digest), which a caller that takes them
 *  itself (cv_stored_report_t) must take: SHA-256 (cv_checksum_sha256) in
 *  a store made by this version, BLAKE2b-256 (cv_checksum) in one of
 *  format 4 or before. Its name as the audit log writes it: "sha-256" or
 *  "blake2b-256". */
cv_hash_fn *cv_store_checksum_fn(const cv_store_t *self);
const char *cv_store_checksum_name(const cv_store_t *self);

/*  A report is named by (originator, id): an id names one report of its
 *  originator, and means nothing to another agency's. */
typedef struct {
    const char *id;
    const char *originator;
    const char *category;
    int64_t created;  /* unix seconds, UTC: what retention counts from */
    int64_t accepted; /* unix milliseconds, UTC; 0: now */
    /*  CV_DIGEST_BYTES of the report as its originator sent it, before the
     *  broker stamped anything into it: a retry is the same report when its
     *  digest is. NULL: the digest of the body stored. */
    const uint8_t *digest;
    /*  CV_DIGEST_BYTES: the body's checksum, taken by the caller (off the
     *  loop: cv_hasher.h). NULL: taken here. */
    const uint8_t *checksum;
} cv_stored_report_t;

/*  The store's SQLite connection, for the audit log (cv_record.h), which
 *  writes its tables in the store's transactions. */
struct sqlite3 *cv_store_db(cv_store_t *self);
/*  Begins the transaction cv_store_begin asked for, if no write has yet:
 *  for a caller that writes through cv_store_db. */
bool cv_store_writing(cv_store_t *self, cv_error_t *err);

/*  Sets *rowid to the stored report's (new or, for CV_PUT_SAME, earlier). */
cv_put_t cv_store_put_report(cv_store_t *self, const cv_stored_report_t *report,
                             const uint8_t *body, size_t len, int64_t *rowid, cv_error_t *err);

/*  Reports one statement of cv_store_put_reports inserts: a statement's
 *  run costs SQLite about as much again as a row. */
#define CV_PUT_BATCH 16

/*  One report for cv_store_put_reports: what cv_store_put_report takes,
 *  and then what it gave. */
typedef struct {
    cv_stored_report_t report;
    const uint8_t *body;
    size_t len;
    cv_put_t put;  /* set by cv_store_put_reports */
    int64_t rowid; /* as cv_store_put_report's *rowid */
} cv_put_item_t;

/*  Stores n reports in order with what cv_store_put_report would give each
 *  put one after the other (a later report of the same originator and id
 *  is a retry of the earlier or a conflict with it), CV_PUT_BATCH to a
 *  statement while that many are left, the rest one a statement. A
 *  statement of CV_PUT_BATCH that fails, whatever the cause, fails its
 *  reports and every one after (CV_PUT_FAILED: the transaction must roll
 *  back); one stored alone fails as cv_store_put_report's does. err: the
 *  first failure's message. Rowids of reports left out of a statement
 *  (retries, conflicts) are used up: rowids may have gaps, never repeats. */
void cv_store_put_reports(cv_store_t *self, cv_put_item_t *items, size_t n, cv_error_t *err);
/*  A write since cv_store_begin failed for want of disk space (SQLite's
 *  SQLITE_FULL, or a write error ENOSPC, EDQUOT or EFBIG). */
bool cv_store_no_space(const cv_store_t *self);

/*  The id of queue (agency, feed), made when new with everything up to
 *  report rowid done already finished for it; -1 on failure. */
int64_t cv_store_queue(cv_store_t *self, const char *agency, const char *feed, int64_t done,
                       cv_error_t *err);

/*  Where a report was routed when accepted: the queues, one row for all. */
bool cv_store_route(cv_store_t *self, int64_t report, int priority, const int64_t *queues, size_t n,
                    cv_error_t *err);
/*  One report's route, for cv_store_route_many. */
typedef struct {
    int64_t report;
    int priority;
    const int64_t *queues; /* their ids */
    size_t n;
} cv_route_row_t;

/*  The routes of several reports, as cv_store_route writes each, in
 *  statements of CV_PUT_BATCH rows while that many are left. */
bool cv_store_route_many(cv_store_t *self, const cv_route_row_t *rows, size_t n, cv_error_t *err);
/*  A report dropped from a queue (the policy no longer releases it there):
 *  its route to that queue is removed, so no restart queues it again. */
bool cv_store_unroute(cv_store_t *self, int64_t report, int64_t queue, cv_error_t *err);

/*  A report in a queue, with its priority (caveat.Priority). */
typedef struct {
    int64_t report;
    int priority;
} cv_routed_t;

/*  Where the reports of id report_id (of originator, or any when NULL)
 *  were routed among agency's queues: each(arg, rowid, routed, originator,
 *  priority, feed) once for every such queue, routed being the rowid the
 *  queue holds it under (the report's own, or the rowid of a release its
 *  originator approved: cv_approval_store.h). A route the pump dropped is
 *  not there. Returns how many calls, or -1. */
typedef void(cv_routed_to_fn)(void *arg, int64_t report, int64_t routed, const char *originator,
                              int priority, const char *feed);
int cv_store_routed_to(cv_store_t *self, const char *report_id, const char *originator,
                       const char *agency, cv_routed_to_fn *each, void *arg, cv_error_t *err);

/*  One pump: items[i] was sent with seq first_seq + i. */
bool cv_store_sent(cv_store_t *self, int64_t queue, uint64_t first_seq, const cv_routed_t *items,
                   size_t n, cv_error_t *err);

/*  What the store keeps of a queue besides its routes and pumps. done[p]
 *  is the rowid up to which every report of priority p routed to the
 *  queue was delivered and acknowledged, or dropped: loading skips them. */
typedef struct {
    uint64_t last_seq;  /* the highest seq given: a restart never gives one twice */
    uint64_t acked_seq; /* the highest acknowledged */
    int64_t done[CV_PRIORITIES];
} cv_queue_state_t;

/*  Saves a queue's state and forgets its pumps acknowledged in whole. */
bool cv_store_save_queue(cv_store_t *self, int64_t queue, const cv_queue_state_t *state,
                         cv_error_t *err);

/*  Reads back every queue: queue() once per queue (first), sent() for
 *  every seq of a pump not acknowledged in whole, in seq order, then
 *  route() for every report that some queue may still be waiting for, in
 *  order of acceptance (a report with many recipients may come in several
 *  calls). The callee filters by its queues' done and acked_seq.
 *  *max_report is the highest report rowid in the store. */
typedef struct {
    void (*queue)(void *arg, int64_t id, const char *agency, const char *feed,
                  const cv_queue_state_t *state);
    void (*sent)(void *arg, int64_t queue, uint64_t seq, cv_routed_t item);
    void (*route)(void *arg, int64_t report, int priority, const int64_t *queues, size_t n);
} cv_store_loader_t;
bool cv_store_load(cv_store_t *self, const cv_store_loader_t *loader, void *arg,
                   int64_t *max_report, cv_error_t *err);

#define CV_GET_CORRUPT    (-2)
#define CV_GET_UNREADABLE (-3)

/*  The packed report by rowid, *body malloc'd: 1; 0 when there is no such
 *  report (purged, quarantined); -1 on an error (err says which: the
 *  read, or the turn's transaction it opens after cv_store_begin);
 *  CV_GET_CORRUPT when the stored body is not what was stored (its
 *  checksum differs; err names the report): the caller may quarantine it
 *  and carry on; CV_GET_UNREADABLE when SQLite itself cannot read the row
 *  (SQLITE_CORRUPT: a damaged page of the file), which no retry mends. The
 *  read that finds such a row fails as -1 does (the transaction must roll
 *  back); from then on the store sets the row aside (cv_store_unreadable):
 *  reading it answers CV_GET_UNREADABLE at once, and purges pass over it,
 *  as they do a row whose delete found it. Its row and routes stay. */
int cv_store_get_report(cv_store_t *self, int64_t report, uint8_t **body, size_t *len,
                        cv_error_t *err);
bool cv_store_unreadable(const cv_store_t *self, int64_t report);
size_t cv_store_unreadable_count(const cv_store_t *self);

/*  Moves a report aside, in the current transaction: its row goes to the
 *  quarantine table with reason, its routes go, and from then on no load
 *  routes it and cv_store_get_report says 0, as for a purged report. A
 *  delivery of it already in flight keeps its seq (seqs stay contiguous)
 *  and, like a purged report's, resolves to nothing. Quarantining a report
 *  already in quarantine does nothing. */
bool cv_store_quarantine(cv_store_t *self, int64_t report, const char *reason, cv_error_t *err);

/*  Lists the reports in quarantine, oldest first: the rowid they had, id,
 *  originator, category, reason and when (UTC, ISO 8601). Returns how many,
 *  or -1. */
typedef void(cv_quarantine_fn)(void *arg, int64_t report, const char *id, const char *originator,
                               const char *category, const char *reason, const char *when);
int cv_store_quarantined(cv_store_t *self, cv_quarantine_fn *each, void *arg, cv_error_t *err);

/*  Checkpointing the WAL into the database, at moments the broker picks:
 *  pages in the WAL, a passive checkpoint in a thread (nothing if nothing
 *  was committed since the last), and one here and now, for a WAL that
 *  grows faster than the thread empties it. */
int cv_store_wal_pages(const cv_store_t *self);
void cv_store_checkpoint(cv_store_t *self);
bool cv_store_checkpoint_now(cv_store_t *self, cv_error_t *err);
/*  After a commit: a checkpoint in the thread when the WAL is large, here
 *  and now when it is very large. False, with SQLite's message in err,
 *  when that failed, or when a checkpoint in the thread failed since the
 *  last call (each failure is told once): the WAL is not being emptied. */
bool cv_store_checkpoint_when_due(cv_store_t *self, cv_error_t *err);
/*  How large the WAL may grow before cv_store_checkpoint_when_due empties
 *  it in the thread; 0: the default, about 16 MB. A WAL checkpointed whole
 *  starts again from its beginning, in space it holds already. */
void cv_store_limit_wal(cv_store_t *self, uint64_t bytes);

/*  The categories of stored reports (malloc'd strings in a malloc'd
 *  array): how many, or -1 (nothing to free) on an error. */
int cv_store_categories(cv_store_t *self, char ***out, cv_error_t *err);

/*  A number the broker keeps in the store's meta table under key (the
 *  clock it last trusted, for retention): get gives 1, or 0 when there is
 *  none, -1 on error; set writes it in the current transaction. */
int cv_store_meta_get(cv_store_t *self, const char *key, int64_t *value, cv_error_t *err);
bool cv_store_meta_set(cv_store_t *self, const char *key, int64_t value, cv_error_t *err);

/*  Retention: removes the reports of category created, and accepted,
 *  before the cutoff (unix seconds),
 *  with their queue entries, recording each purge (with rule, the
 *  retention that applied) in the purges table. dry_run only lists. All or
 *  nothing: on an error nothing is purged, -1. Otherwise each is called
 *  for every report (may be NULL), and the count is returned. */
typedef void(cv_purge_fn)(void *arg, const char *id, const char *category, int64_t created);
int cv_store_purge(cv_store_t *self, const char *category, int64_t created_before, const char *rule,
                   bool dry_run, cv_purge_fn *each, void *arg, cv_error_t *err);
/*  The same, telling each report's originator too: an id alone does not
 *  say which report it was. */
typedef void(cv_purged_fn)(void *arg, const char *originator, const char *id, const char *category,
                           int64_t created);
/*  At most limit reports (> 0; 0: all), the oldest first, when not a dry
 *  run, and as many more as the store has set aside as unreadable: a
 *  purge of many goes in steps, each a transaction of its own, so that no
 *  one step holds the broker's loop for long. Fewer than limit purged:
 *  none left. */
int cv_store_purge_reports(cv_store_t *self, const char *category, int64_t created_before,
                           const char *rule, bool dry_run, int limit, cv_purged_fn *each, void *arg,
                           cv_error_t *err);

/*  Review decisions (MOPI): an administrator's decision on one report
 *  overrides its category's retention period. A reviewed report is kept
 *  until retain_until, then purged under the rule CV_STORE_REVIEW_RULE;
 *  a disposal purges it at once. cv_store_purge_reports leaves reviewed
 *  reports alone; cv_store_purge_reviewed purges those due at now. */
#define CV_STORE_REVIEW_RULE "review"

typedef struct {
    int64_t retain_until; /* unix seconds, after decided; ignored when dispose */
    bool dispose;
    const char *reason;
    const char *reviewer; /* the administrator's agency */
    int64_t decided;      /* unix seconds */
} cv_review_t;

/*  Records review of the report id (of originator; NULL: whichever
 *  agency's, when only one used the id), in the current transaction, and
 *  when it disposes, purges the report. each is told of the report.
 *  Returns 1; 0 when there is no such report; 2 when several originators
 *  used id (name one); -1 on an error, nothing changed. */
int cv_store_review(cv_store_t *self, const char *id, const char *originator,
                    const cv_review_t *review, cv_purged_fn *each, void *arg, cv_error_t *err);
int cv_store_purge_reviewed(cv_store_t *self, int64_t now, bool dry_run, int limit,
                            cv_purged_fn *each, void *arg, cv_error_t *err);

#endif
