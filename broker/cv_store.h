/*  cv_store.h: the broker's durable store (SQLite, WAL).
 *
 *  Reports are stored once; each recipient queue holds entries that point
 *  at them. An entry has no seq until it is sent; then it keeps its seq
 *  until acknowledged, when it is deleted. Queues are named by (agency id,
 *  feed), feed "" being the agency's direct queue.
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

cv_put_t cv_store_put_report(cv_store_t *self, const char *id, const char *originator,
                             const uint8_t *body, size_t len, cv_error_t *err);
bool cv_store_enqueue(cv_store_t *self, const char *agency, const char *feed, const char *report_id,
                      int priority, cv_error_t *err);

typedef struct {
    int64_t entry;
    char report_id[128];
    uint64_t seq; /* 0 when not sent yet */
} cv_entry_ref_t;

/*  Up to max entries of a queue: when sent is true, those sent and not
 *  acknowledged with seq above after_seq, in seq order; else those never
 *  sent, most urgent first, then in order of acceptance. */
int cv_store_next(cv_store_t *self, const char *agency, const char *feed, bool sent,
                  uint64_t after_seq, cv_entry_ref_t *out, int max, cv_error_t *err);
bool cv_store_set_seq(cv_store_t *self, int64_t entry, uint64_t seq, cv_error_t *err);
bool cv_store_drop(cv_store_t *self, int64_t entry, cv_error_t *err);
/*  Deletes a queue's entries with seq <= up_to; returns how many, or -1. */
int cv_store_ack(cv_store_t *self, const char *agency, const char *feed, uint64_t up_to,
                 cv_error_t *err);
/*  The highest seq ever given in a queue (0 for none). Kept in the store so
 *  that a restart never gives a seq twice. */
uint64_t cv_store_last_seq(cv_store_t *self, const char *agency, const char *feed);
bool cv_store_set_last_seq(cv_store_t *self, const char *agency, const char *feed, uint64_t seq,
                           cv_error_t *err);

/*  The packed report; *body is malloc'd. */
bool cv_store_get_report(cv_store_t *self, const char *id, uint8_t **body, size_t *len,
                         cv_error_t *err);

/*  Entries waiting in all queues (sent or not). */
int64_t cv_store_queued(cv_store_t *self);

#endif
