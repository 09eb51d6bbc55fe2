/*  cv_syncer.h: the store's disk work, off the broker's loop.
 *
 *  Two threads of their own (czmq actors), so that the loop never waits
 *  for the disk:
 *  - the syncer fdatasyncs the WAL on request. The store commits with
 *    SQLite's synchronous=NORMAL (the WAL is written, not synced) and asks
 *    for a sync after each commit; a sync that starts after a commit has
 *    returned makes that commit durable, as synchronous=FULL would have
 *    before returning. Requests that wait while a sync runs are served by
 *    the next one: many commits, one fdatasync.
 *  - the checkpointer copies the WAL into the database from a second
 *    connection (SQLite allows a checkpoint beside a writer), so the WAL's
 *    pages are written back without stopping the loop.
 */
#ifndef CV_SYNCER_H
#define CV_SYNCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cv_poller.h"

typedef struct cv_syncer_t cv_syncer_t;

/*  db_path: the store's database file (its WAL is db_path + "-wal").
 *  sync_wal: run the syncer (CV_SYNC_FULL); the checkpointer runs always,
 *  with synchronous as given ("NORMAL" or "OFF") on its connection. */
cv_syncer_t *cv_syncer_new(const char *db_path, bool sync_wal, const char *synchronous);
void cv_syncer_destroy(cv_syncer_t **self_p);

/*  Asks for commit number commit to be made durable. */
void cv_syncer_request(cv_syncer_t *self, uint64_t commit);
/*  The highest commit number known durable; reads what the syncer said
 *  without waiting. */
uint64_t cv_syncer_synced(cv_syncer_t *self);
/*  Waits at most timeout_ms for commit to be durable. */
bool cv_syncer_wait(cv_syncer_t *self, uint64_t commit, int timeout_ms);
/*  Puts the actors' pipes in the broker's poller, which then wakes the
 *  loop when a sync or a checkpoint ends; their news is read at the
 *  loop's next look without a system call while there is none. */
int cv_syncer_watch(cv_syncer_t *self, cv_poller_t *poller);

/*  A sync that takes longer than this (by default) is worth an operator's
 *  look: every PublishAck and delivery of the commits it covers waited. */
#define CV_SYNC_SLOW_MS 1000
void cv_syncer_set_slow_ms(cv_syncer_t *self, int64_t ms);
/*  Whether a sync was slow since the last call, among the answers read
 *  (cv_syncer_synced, cv_syncer_wait and cv_syncer_failed read them); *ms:
 *  the longest one's milliseconds. Each is told once. */
bool cv_syncer_take_slow(cv_syncer_t *self, int64_t *ms);
/*  What the syncs have cost the broker's deliveries: how many, how many
 *  took longer than the stall threshold (CV_SYNC_STALL_US by default),
 *  and the microseconds they took beyond it. With --sync full every
 *  message of the commits a sync covers waits for it, so a stall holds
 *  up everything due while it lasts: stall_us over a span of time is the
 *  share of that time in which a report waited longer than the threshold
 *  for the disk alone. Counted as the answers are read.                */
#define CV_SYNC_STALL_US 5000
typedef struct {
    uint64_t syncs, stalls, stall_us;
} cv_sync_counts_t;
cv_sync_counts_t cv_syncer_counts(const cv_syncer_t *self);
void cv_syncer_set_stall_us(cv_syncer_t *self, int64_t us);
/*  Why the syncer stopped (a failed fdatasync: nothing more can be made
 *  durable), or NULL while it works. */
const char *cv_syncer_failed(cv_syncer_t *self);
/*  fdatasync of the database db_path, its WAL and their directory, here
 *  and now: at start, so that nothing a crashed broker wrote and never
 *  synced is served as durable. Call it before SQLite opens db_path: it
 *  opens and closes the files, and on Linux closing any descriptor of a
 *  file drops every POSIX lock the process holds on it, SQLite's too (then
 *  another process may take the database for unused, checkpoint it and
 *  delete the WAL under the broker). */
bool cv_syncer_sync_files(const char *db_path);

/*  Asks for a checkpoint; false (nothing asked) while one runs. */
bool cv_syncer_checkpoint(cv_syncer_t *self);
/*  True, with why (SQLite's message), when a checkpoint failed since the
 *  last call; each failure is told once. */
bool cv_syncer_checkpoint_failure(cv_syncer_t *self, char *why, size_t size);

#endif
