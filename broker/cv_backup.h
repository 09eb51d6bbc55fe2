/*  cv_backup.h: `admin backup`, in a thread of its own.
 *
 *  A copy of the store can take minutes; the broker's loop must go on
 *  serving meanwhile. So a backup runs in a czmq actor with its own
 *  read-only SQLite connection to the store: it holds one read transaction
 *  from start to end, so the copy is the store as it was when the backup
 *  began (WAL mode: a reader sees one snapshot and never blocks the
 *  writer), and copies it about 1 MB at a time, looking between steps for
 *  the word to stop.
 *
 *  The thread touches only its own connection, the new directory and the
 *  copy of the pseudonym key it was given; never the broker's state, and
 *  never the store's files but through SQLite (closing any descriptor of
 *  a file drops every POSIX lock the process holds on it, SQLite's
 *  included: cv_syncer.h).
 *
 *  DIR ends up holding pseudonym.key and audit.key (0600, written first)
 *  and caveat.db,
 *  a data directory a broker starts from. The copy is written as
 *  caveat.db.partial and renamed to caveat.db only once whole and synced:
 *  a directory without caveat.db is not a backup. A backup that fails or
 *  is stopped removes what it wrote, DIR included.
 */
#ifndef CV_BACKUP_H
#define CV_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cv_proto.h"

typedef struct cv_backup_t cv_backup_t;

#define CV_BACKUP_TEXT 8192 /* bytes: room for what a backup says */

/*  Readies a backup of the store db_path (its caveat.db) into dir, which
 *  must be an absolute path that does not exist yet: it is made here
 *  (0700), before the thread starts, so that a refusal is immediate. The
 *  thread copies nothing until cv_backup_go: the broker lets it go once
 *  the turn that recorded the request has committed, and a backup
 *  destroyed before that removes dir and has copied nothing. The copy
 *  leaves at least keep_free bytes free on dir's disk, or fails: a backup
 *  never takes the space the store's reserve counts on. It copies at
 *  most rate_mb MB a second (0: as fast as it can): a copy at the disk's
 *  full speed queues the broker's own syncs behind its writes, and every
 *  PublishAck and delivery waits for those. NULL with why when refused. */
cv_backup_t *cv_backup_new(const char *db_path, const char *dir, const uint8_t key[CV_KEY_BYTES],
                           uint64_t keep_free, int rate_mb, char *why, size_t size);
/*  The copy begins: its snapshot is the store as it is now. Once.       */
void cv_backup_go(cv_backup_t *self);
/*  Stops a backup still running (it removes what it wrote) and waits for
 *  its thread, for one step of the copy at most; nothing when it has
 *  ended. */
void cv_backup_stop(cv_backup_t *self);
/*  Stops it (cv_backup_stop), and frees it. */
void cv_backup_destroy(cv_backup_t **self_p);

/*  Readable (a zsock_t *, for the loop's poller) when the backup ended. */
void *cv_backup_socket(cv_backup_t *self);
/*  True once the backup ended, with *ok and text saying how ("backed up
 *  to DIR ...", or why it failed); false while it runs. Never waits. */
bool cv_backup_ended(cv_backup_t *self, bool *ok, char *text, size_t size);
/*  The directory it writes. */
const char *cv_backup_dir(const cv_backup_t *self);
/*  Pages of the store copied so far, and *pages of how many: both 0
 *  until the first step. Once stopped (cv_backup_stop), how far it got. */
int cv_backup_copied(cv_backup_t *self, int *pages);

#endif
