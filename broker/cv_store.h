/*  cv_store.h: the broker's durable store (SQLite, WAL).
 *
 *  Reports are stored once; each recipient queue holds entries that point
 *  at them. An entry has no seq until it is sent; then it keeps its seq
 *  until acknowledged, when it is deleted. A queue is named by (agency id,
 *  feed), feed "" being the agency's direct queue, and has an integer id;
 *  reports are referred to by their rowid.
 */
#ifndef CV_STORE_H
#define CV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cv_proto.h"

typedef struct cv_store_t cv_store_t;

typedef enum {
    CV_SYNC_FULL,   /* fsync at every commit: nothing acknowledged is lost on power loss */
    CV_SYNC_NORMAL, /* WAL without fsync per commit: a power loss may lose the last commits */
    CV_SYNC_OFF,    /* no fsync at all: for measuring what durability costs, never for use */
} cv_sync_t;

/*  Opens DIR/caveat.db, creating it in a new or empty directory. Refuses a
 *  file that is not a caveat store, or a newer format. */
cv_store_t *cv_store_open(const char *dir, cv_sync_t sync, cv_error_t *err);
void cv_store_close(cv_store_t **self_p);

/*  One write transaction around many changes: group commit. */
bool cv_store_begin(cv_store_t *self, cv_error_t *err);
bool cv_store_commit(cv_store_t *self, cv_error_t *err);
void cv_store_rollback(cv_store_t *self);

typedef enum {
    CV_PUT_NEW,      /* stored */
    CV_PUT_SAME,     /* the same report was stored before: nothing to do */
    CV_PUT_CONFLICT, /* the id names another report */
    CV_PUT_FAILED,
} cv_put_t;

typedef struct {
    const char *id;
    const char *originator;
    const char *category;
    int64_t created; /* unix seconds, UTC: what retention counts from */
} cv_stored_report_t;

/*  Sets *rowid to the stored report's (new or, for CV_PUT_SAME, earlier). */
cv_put_t cv_store_put_report(cv_store_t *self, const cv_stored_report_t *report,
                             const uint8_t *body, size_t len, int64_t *rowid, cv_error_t *err);
/*  The id of queue (agency, feed), made when new; -1 on failure. */
int64_t cv_store_queue(cv_store_t *self, const char *agency, const char *feed, cv_error_t *err);
bool cv_store_enqueue(cv_store_t *self, int64_t queue, int64_t report, int priority,
                      cv_error_t *err);

typedef struct {
    int64_t entry;
    int64_t report; /* rowid */
    uint64_t seq;   /* 0 when not sent yet */
} cv_entry_ref_t;

/*  Up to max entries of a queue: when sent is true, those sent and not
 *  acknowledged with seq above after_seq, in seq order; else those never
 *  sent, most urgent first, then in order of acceptance. */
int cv_store_next(cv_store_t *self, int64_t queue, bool sent, uint64_t after_seq,
                  cv_entry_ref_t *out, int max, cv_error_t *err);
bool cv_store_set_seq(cv_store_t *self, int64_t entry, uint64_t seq, cv_error_t *err);
bool cv_store_drop(cv_store_t *self, int64_t entry, cv_error_t *err);
/*  Deletes a queue's entries with seq <= up_to; returns how many, or -1. */
int cv_store_ack(cv_store_t *self, int64_t queue, uint64_t up_to, cv_error_t *err);
/*  The highest seq ever given in a queue (0 for none). Kept in the store so
 *  that a restart never gives a seq twice. */
uint64_t cv_store_last_seq(cv_store_t *self, int64_t queue);
bool cv_store_set_last_seq(cv_store_t *self, int64_t queue, uint64_t seq, cv_error_t *err);

/*  The packed report by rowid; *body is malloc'd. */
bool cv_store_get_report(cv_store_t *self, int64_t report, uint8_t **body, size_t *len,
                         cv_error_t *err);

/*  Checkpointing the WAL into the database, at moments the broker picks:
 *  pages in the WAL since the last checkpoint, and a passive checkpoint. */
int cv_store_wal_pages(const cv_store_t *self);
void cv_store_checkpoint(cv_store_t *self);

/*  Entries waiting in all queues (sent or not). */
int64_t cv_store_queued(cv_store_t *self);

/*  The categories of stored reports (malloc'd strings in a malloc'd array). */
int cv_store_categories(cv_store_t *self, char ***out);

/*  Retention: removes the reports of category created before the cutoff,
 *  with their queue entries, recording each purge (with rule, the
 *  retention that applied) in the purges table. dry_run only lists. each
 *  is called for every report (may be NULL). Returns how many, or -1. */
typedef void(cv_purge_fn)(void *arg, const char *id, const char *category, int64_t created);
int cv_store_purge(cv_store_t *self, const char *category, int64_t created_before, const char *rule,
                   bool dry_run, cv_purge_fn *each, void *arg, cv_error_t *err);

/*  A consistent copy of the store at path (SQLite's online backup), from
 *  which a broker can start. Call outside a write transaction. */
bool cv_store_backup(cv_store_t *self, const char *path, cv_error_t *err);

#endif
