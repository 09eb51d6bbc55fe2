/*  cv_walbuf.h: a SQLite VFS that writes a transaction's WAL frames in
 *  one system call instead of two a page.
 *
 *  SQLite writes each WAL frame as two pwrite calls, its 24-byte header
 *  and its page, and a turn commits tens to hundreds of pages: on the
 *  machines caveatd runs on, where a system call costs microseconds, those
 *  calls were an eighth of the broker loop's time. This VFS wraps the
 *  default one and, for WAL files only, gathers the frames appended to
 *  the log in a buffer (CV_WALBUF_BYTES); a write over frames already
 *  there (SQLite rewrites a page in place, or a header with its new
 *  checksum) goes to the file at once. The buffer goes to the file:
 *
 *  - when a commit frame has been written (its header names the database
 *    size, which only a commit's does; header and page in two calls, as
 *    SQLite 3.40 writes them, or in one), before xWrite returns, so that
 *    SQLite sees any error of the write (a full disk) as the commit's and
 *    rolls it back, and every frame is in the file before SQLite
 *    publishes the commit to other connections in the wal-index;
 *  - before any other operation on the WAL file (a read, sync, truncate,
 *    size, lock, close), and before the database file's shared-memory
 *    barrier or lock calls, with which SQLite publishes or ends a
 *    transaction: should SQLite one day write a commit some other way,
 *    no reader still sees a frame that is not in the file;
 *  - when a write does not append, or would overflow the buffer.
 *
 *  Nothing else changes: the same bytes reach the same offsets in the same
 *  order, only in fewer calls. Durability is still the syncer's
 *  fdatasync after the commit (cv_syncer.h). The buffer belongs to the
 *  connection that opened the file, as SQLite's file objects do; each
 *  database file is linked to its own connection's WAL file. A flush that
 *  fails outside xWrite is reported as SQLITE_IOERR_WRITE, which rolls
 *  the whole transaction back (SQLITE_FULL from a read would cost only
 *  the statement), and an unlock is made whatever the flush did.
 */
#ifndef CV_WALBUF_H
#define CV_WALBUF_H

#include <stdint.h>

/*  31 frames of 4 KB pages. No more: SQLite's unix VFS writes at most
 *  128 KB - 1 bytes a call, and takes a larger write for a full disk. */
#define CV_WALBUF_BYTES (128 * 1024 - 1)

/*  The VFS's name for sqlite3_open_v2, registered on first use (not as
 *  the default); NULL when SQLite would not register it. Any thread.   */
const char *cv_walbuf_vfs(void);

/*  The same VFS, whose WAL files are also read ahead: a read the bytes
 *  read before do not hold reads up to CV_WALBUF_AHEAD from where it
 *  starts. For the checkpointer's connection, which copies the log's
 *  frames in order of page and so mostly in the order they were written:
 *  one call for dozens of frames instead of one a frame. What was read
 *  ahead is let go at every call on the database's shared memory (see
 *  forget_ahead in cv_walbuf.c for why that is enough).                  */
#define CV_WALBUF_AHEAD (256 * 1024)
const char *cv_walbuf_ahead_vfs(void);

/*  How many writes the VFS has made to WAL files since the process began,
 *  and how many it was given: what tests and benchmarks look at.        */
typedef struct {
    uint64_t given;       /* xWrite calls from SQLite on WAL files */
    uint64_t made;        /* writes to the files underneath */
    uint64_t reads_given; /* xRead calls from SQLite on WAL files that read ahead */
    uint64_t reads_made;  /* reads of those files underneath */
} cv_walbuf_counts_t;
cv_walbuf_counts_t cv_walbuf_counts(void);

#endif
