/*  cv_backup.c: a backup of the store in a thread; see cv_backup.h.
 *
 *  The actor waits for "GO" (or $TERM, which ends it with only its
 *  directory made and removed again) before it copies anything. It says
 *  one thing over its pipe when the backup ends, "OK" or
 *  "FAILED" with the reply's text, then waits for $TERM. A $TERM that
 *  comes first (cv_backup_destroy while it runs) stops the copy between
 *  two steps; what was written is removed.
 */
#include <czmq.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cv_alloc.h"
#include "cv_backup.h"
#include "cv_poller.h"

/*  A step copies about 1 MB, whatever the store's page size (256 pages
 *  of 4 KB, 64 of 16 KB): a stop waits for one step at most, and the step
 *  is the copy's thread's, at nice 10: on a busy machine one of 16 KB
 *  pages, 4 MB, kept the loop waiting for a second. */
#define STEP_BYTES    (1024 * 1024)
#define BUSY_PAUSE_MS 10
#define BACKUP_NICE   10 /* the copy's thread, behind the loop's */

struct cv_backup_t {
    char db_path[4096];
    char dir[2100];
    dev_t dir_dev; /* the directory made (make_dir): no other is written in */
    ino_t dir_ino;
    int dir_fd; /* it, open: every file is made, renamed and removed through it */
    uint8_t key[CV_KEY_BYTES];
    uint64_t keep_free;
    zactor_t *actor;
    bool ended, ok;
    char text[CV_BACKUP_TEXT];
    atomic_int copied, pages; /* the copy's progress, written by its thread */
    int rate_mb;              /* MB a second at most; 0: no limit */
};

/*  The files of a backup, in its directory. */
#define KEY_NAME       "pseudonym.key"
#define AUDIT_KEY_NAME "audit.key"
#define PARTIAL_NAME   "caveat.db.partial"
#define JOURNAL_NAME   "caveat.db.partial-journal"
#define DONE_NAME      "caveat.db"

/*  What the thread works on; every path under dir. */
typedef struct {
    cv_backup_t *backup;
    zsock_t *pipe;
    sqlite3 *source, *copy;
    int copy_fd; /* the copy's file, open from before SQLite opens it to after it closes it */
    int step;    /* pages a step */
    char key_path[2200], audit_key[2200], partial[2200]; /* for messages */
    char copy_path[64]; /* the copy as SQLite opens it: through dir_fd */
    /* which of them this backup made: a failed one removes those alone,
     * never a file of the same name it found (a directory swapped for a
     * link to the data directory would otherwise lose the live store) */
    bool made_key, made_audit_key, made_partial, made_done;
    char text[CV_BACKUP_TEXT]; /* the reply */
} work_t;

/*  Bytes the broker's user may still write on dir's disk. */
static uint64_t free_bytes(const char *dir)
{
    struct statvfs st;
    return statvfs(dir, &st) == 0 ? (uint64_t)st.f_bavail * st.f_frsize : 0;
}

/*  Whether the backup's directory is still the one it made, not a link
 *  or another directory put in its place (or in a parent's) since. */
static bool dir_is_ours(const cv_backup_t *backup)
{
    struct stat st;
    return lstat(backup->dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_dev == backup->dir_dev &&
           st.st_ino == backup->dir_ino;
}

/*  Files are made through dir_fd wherever its path leads now, but a
 *  directory moved or swapped under the backup is one the administrator
 *  would not find: the backup stops. */
static bool same_directory(work_t *w)
{
    if (dir_is_ours(w->backup))
        return true;
    snprintf(w->text, sizeof w->text,
             "%s: no longer the directory the backup made (moved, or a link put in its place or "
             "in a parent's): nothing more written",
             w->backup->dir);
    return false;
}

/*  A new file name in the directory, of len bytes, 0600, synced; *made
 *  once it exists. path names it in messages. */
static bool write_secret(work_t *w, const char *name, const char *path, const void *bytes,
                         size_t len, bool *made)
{
    int fd =
        openat(w->backup->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    *made = fd >= 0;
    bool ok = fd >= 0 && write(fd, bytes, len) == (ssize_t)len && fsync(fd) == 0;
    if (!ok)
        snprintf(w->text, sizeof w->text, "%s: cannot write: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return ok;
}

/*  The audit log's signing key (DATA/audit.key, beside the store), copied:
 *  a store restored without it could not go on signing its log. A store
 *  without one (none made yet) is copied without. */
static bool copy_audit_key(work_t *w)
{
    char from[4200], key[4096];
    const char *db = w->backup->db_path, *slash = strrchr(db, '/');
    snprintf(from, sizeof from, "%.*saudit.key", slash ? (int)(slash - db + 1) : 0, db);
    int fd = open(from, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT;
    ssize_t len = read(fd, key, sizeof key);
    close(fd);
    bool ok = len > 0 &&
              write_secret(w, AUDIT_KEY_NAME, w->audit_key, key, (size_t)len, &w->made_audit_key);
    sodium_memzero(key, sizeof key);
    if (len <= 0)
        snprintf(w->text, sizeof w->text, "%s: cannot read", from);
    return ok;
}

/*  The keys before the copy, so that no caveat.db is ever there without
 *  them. */
static bool write_key(work_t *w)
{
    return same_directory(w) &&
           write_secret(w, KEY_NAME, w->key_path, w->backup->key, CV_KEY_BYTES, &w->made_key) &&
           copy_audit_key(w);
}

static int64_t pragma_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    int64_t value = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        value = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return value;
}

/*  A read-only connection holding one read transaction: the snapshot the
 *  copy is of, kept from the first step to the last, so that the broker's
 *  commits meanwhile neither restart the copy nor appear in it. */
static bool open_source(work_t *w)
{
    const char *path = w->backup->db_path;
    if (sqlite3_open_v2(path, &w->source, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(w->source, 1000);
        if (sqlite3_exec(w->source, "BEGIN; SELECT count(*) FROM sqlite_master;", NULL, NULL,
                         NULL) == SQLITE_OK)
            return true;
    }
    snprintf(w->text, sizeof w->text, "%s: cannot read the store: %s", path,
             w->source ? sqlite3_errmsg(w->source) : "out of memory");
    return false;
}

/*  Whether the copy's size fits on dir's disk with keep_free to spare. */
static bool room_for(work_t *w, uint64_t bytes)
{
    uint64_t available = free_bytes(w->backup->dir), keep = w->backup->keep_free;
    if (available >= bytes && available - bytes >= keep)
        return true;
    snprintf(w->text, sizeof w->text,
             "%s: not enough room: %llu bytes free, the copy needs %llu more and %llu are kept "
             "free for the store",
             w->backup->dir, (unsigned long long)available, (unsigned long long)bytes,
             (unsigned long long)keep);
    return false;
}

/*  caveat.db.partial, made here (0600: SQLite gives its journal the same
 *  mode) and opened by SQLite. The descriptor made here stays open until
 *  SQLite has closed the file: closing it before would drop SQLite's
 *  locks on it (cv_syncer.h). It syncs the copy as it grows, so that the
 *  disk takes the copy a few MB at a time rather than all at once at the
 *  end, when the broker's own syncs would wait behind it. */
static bool open_copy(work_t *w)
{
    if (!same_directory(w))
        return false;
    w->copy_fd = openat(w->backup->dir_fd, PARTIAL_NAME,
                        O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    w->made_partial = w->copy_fd >= 0;
    if (w->copy_fd < 0) {
        snprintf(w->text, sizeof w->text, "%s: cannot create: %s", w->partial, strerror(errno));
        return false;
    }
    /* no journal: a copy that fails is removed whole, and SQLite would
     * look its journal up by path at every transaction of the copy */
    if (sqlite3_open_v2(w->copy_path, &w->copy, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_exec(w->copy, "PRAGMA journal_mode=OFF", NULL, NULL, NULL) == SQLITE_OK)
        return true;
    snprintf(w->text, sizeof w->text, "%s: cannot open: %s", w->partial,
             w->copy ? sqlite3_errmsg(w->copy) : "out of memory");
    return false;
}

/*  After each step: the copy's new pages go to the disk as they are
 *  written, a megabyte at a time, not all at once when it is synced. On
 *  Linux the writeback is only started (sync_file_range), which neither
 *  waits nor flushes the disk's cache: the broker's own WAL syncs then
 *  never queue behind megabytes of the copy, nor behind its flushes. The
 *  copy is made durable once, when it is complete (close_copy), whose
 *  sync reports any write that failed. Elsewhere the copy is synced every
 *  8 steps. */
static void start_writeback(int fd, int step)
{
#ifdef __linux__
    (void)step;
    (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
    if (step % 8 == 0)
        (void)fdatasync(fd);
#endif
}

/*  Waits, after step steps of about STEP_BYTES since began, until the
 *  copy is no faster than its rate: the disk's full speed (several
 *  hundred MB a second) queued the broker's WAL syncs behind the copy's
 *  writes, and the p99 of a publish's round trip went from under 2 ms to
 *  10-80 ms while a 1 GB store was copied (docs/performance.md, "A backup
 *  while publishing"). A stop asked for ends the wait. */
static void keep_to_rate(const work_t *w, int step, int64_t began)
{
    if (w->backup->rate_mb <= 0)
        return;
    int64_t due = (int64_t)step * 1000 * STEP_BYTES / ((int64_t)w->backup->rate_mb << 20);
    int64_t ahead = due - (zclock_mono() - began);
    /* on the pipe, not asleep: a stop ends the wait (at 1 MB a second a
     * step's wait is a second, which the loop would spend in a stop) */
    zmq_pollitem_t pipe = {zsock_resolve(w->pipe), 0, ZMQ_POLLIN, 0};
    if (ahead > 0)
        zmq_poll(&pipe, 1, (long)ahead);
}

/*  The copy, a step at a time: stopped by a message on the pipe ($TERM),
 *  or by the disk getting too full for keep_free. *stopped says which. */
static bool copy_pages(work_t *w, bool *stopped)
{
    sqlite3_backup *b = sqlite3_backup_init(w->copy, "main", w->source, "main");
    if (!b) {
        snprintf(w->text, sizeof w->text, "backup failed: %s", sqlite3_errmsg(w->copy));
        return false;
    }
    int rc = SQLITE_OK;
    bool room = true;
    int64_t began = zclock_mono();
    for (int step = 1; rc == SQLITE_OK && !*stopped && room; step++) {
        rc = sqlite3_backup_step(b, w->step);
        start_writeback(w->copy_fd, step);
        keep_to_rate(w, step, began);
        atomic_store(&w->backup->pages, sqlite3_backup_pagecount(b));
        atomic_store(&w->backup->copied, sqlite3_backup_pagecount(b) - sqlite3_backup_remaining(b));
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
            zclock_sleep(BUSY_PAUSE_MS);
            rc = SQLITE_OK;
        }
        int events = cv_socket_events(w->pipe); /* an ended context stops the copy too */
        *stopped = events < 0 || (events & ZMQ_POLLIN);
        room = room_for(w, 0);
    }
    int pages = sqlite3_backup_pagecount(b);
    int finished = sqlite3_backup_finish(b);
    if (*stopped) /* even when whole: a stop asked for removes it */
        return false;
    if (rc == SQLITE_DONE && finished == SQLITE_OK) {
        snprintf(w->text, sizeof w->text, "backed up to %s: %d pages", w->backup->dir, pages);
        return true;
    }
    if (room)
        snprintf(w->text, sizeof w->text, "%s: backup failed: %s", w->backup->dir,
                 rc == SQLITE_FULL ? "the disk is full" : sqlite3_errstr(rc));
    return false;
}

/*  The copy closed by SQLite, then synced (when sync) and its
 *  descriptor closed. */
static bool close_copy(work_t *w, bool sync)
{
    bool ok = sqlite3_close_v2(w->copy) == SQLITE_OK;
    w->copy = NULL;
    if (w->copy_fd >= 0) {
        ok = ok && (!sync || fdatasync(w->copy_fd) == 0);
        ok = close(w->copy_fd) == 0 && ok;
        w->copy_fd = -1;
    }
    return ok;
}

/*  The copy, closed and synced, under its final name, and the name synced. */
static bool complete(work_t *w)
{
    bool closed = close_copy(w, true);
    if (closed && !same_directory(w))
        return false;
    int dir = w->backup->dir_fd;
    w->made_done = closed && renameat(dir, PARTIAL_NAME, dir, DONE_NAME) == 0;
    if (w->made_done)
        w->made_partial = false;         /* it is the copy now */
    if (w->made_done && fsync(dir) == 0) /* the names survive a power loss */
        return true;
    snprintf(w->text, sizeof w->text, "%s: cannot complete the copy: %s", w->backup->dir,
             closed ? strerror(errno) : "the copy does not close or sync");
    return false;
}

/*  Everything the backup wrote, and its directory, gone; nothing else. */
static void remove_all(work_t *w)
{
    close_copy(w, false);
    int dir = w->backup->dir_fd; /* never by path: it may lead elsewhere by now */
    if (w->made_partial) {
        unlinkat(dir, PARTIAL_NAME, 0);
        unlinkat(dir, JOURNAL_NAME, 0); /* none (journal_mode OFF), or SQLite's beside it */
    }
    if (w->made_done)
        unlinkat(dir, DONE_NAME, 0);
    if (w->made_key)
        unlinkat(dir, KEY_NAME, 0);
    if (w->made_audit_key)
        unlinkat(dir, AUDIT_KEY_NAME, 0);
    if (dir_is_ours(w->backup))
        rmdir(w->backup->dir); /* only ever an empty one */
}

static bool run(work_t *w, bool *stopped)
{
    bool ok = write_key(w) && open_source(w);
    if (ok) {
        int64_t pages = pragma_int(w->source, "PRAGMA page_count"),
                page_size = pragma_int(w->source, "PRAGMA page_size");
        ok = pages >= 0 && page_size > 0 && room_for(w, (uint64_t)(pages * page_size));
        w->step = page_size > 0 && page_size < STEP_BYTES ? (int)(STEP_BYTES / page_size) : 1;
    }
    ok = ok && open_copy(w) && copy_pages(w, stopped) && complete(w);
    sqlite3_exec(w->source, "COMMIT", NULL, NULL, NULL); /* the snapshot goes */
    sqlite3_close(w->source);
    w->source = NULL;
    if (!ok)
        remove_all(w);
    return ok;
}

/*  The copy is not urgent; the loop is: on a machine with few cores, the
 *  scheduler gives the loop's thread the CPU first. (On Linux a nice
 *  value is a thread's own.) */
static void yield_to_the_loop(void)
{
#ifdef __linux__
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), BACKUP_NICE);
#endif
}

static void backup_actor(zsock_t *pipe, void *args)
{
    cv_backup_t *self = args;
    pthread_setname_np(pthread_self(), "cv-backup");
    yield_to_the_loop();
    work_t w = {.backup = self, .pipe = pipe, .copy_fd = -1};
    snprintf(w.key_path, sizeof w.key_path, "%s/pseudonym.key", self->dir);
    snprintf(w.audit_key, sizeof w.audit_key, "%s/audit.key", self->dir);
    snprintf(w.partial, sizeof w.partial, "%s/caveat.db.partial", self->dir);
#ifdef __linux__
    snprintf(w.copy_path, sizeof w.copy_path, "/proc/self/fd/%d/" PARTIAL_NAME, self->dir_fd);
#else
    snprintf(w.copy_path, sizeof w.copy_path, "%s", w.partial); /* by path: a race left */
#endif
    zsock_signal(pipe, 0);
    char *word = zstr_recv(pipe);
    bool go = word && streq(word, "GO");
    zstr_free(&word);
    if (!go) { /* stopped before it began ($TERM): only the directory was made */
        if (dir_is_ours(self))
            rmdir(self->dir);
        return;
    }
    bool stopped = false;
    bool ok = run(&w, &stopped);
    if (stopped)
        return; /* the $TERM that stopped it is the last word */
    zsock_send(pipe, "ss", ok ? "OK" : "FAILED", w.text);
    char *command;
    while ((command = zstr_recv(pipe)) && !streq(command, "$TERM"))
        zstr_free(&command);
    zstr_free(&command);
}

/*  A new directory for the backup, or why not. */
static bool make_dir(const char *dir, struct stat *made, char *why, size_t size)
{
    /* a relative path would be the broker's working directory's, which
     * the administrator typing it does not see */
    if (dir[0] != '/') {
        snprintf(why, size,
                 "%s: not an absolute path (the broker resolves paths in its own "
                 "working directory)",
                 dir);
        return false;
    }
    if (strlen(dir) > 2048) {
        snprintf(why, size, "the directory's path is too long");
        return false;
    }
    if (mkdir(dir, 0700) != 0) {
        snprintf(why, size, "%s: cannot create: %s", dir, strerror(errno));
        return false;
    }
    if (lstat(dir, made) != 0 || !S_ISDIR(made->st_mode)) {
        snprintf(why, size, "%s: made, then not a directory", dir);
        return false;
    }
    return true;
}

cv_backup_t *cv_backup_new(const char *db_path, const char *dir, const uint8_t key[CV_KEY_BYTES],
                           uint64_t keep_free, int rate_mb, char *why, size_t size)
{
    struct stat made, opened;
    if (!make_dir(dir, &made, why, size))
        return NULL;
    /* the directory made, open: no later swap of its path reaches the files */
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir_fd < 0 || fstat(dir_fd, &opened) != 0 || opened.st_dev != made.st_dev ||
        opened.st_ino != made.st_ino) {
        snprintf(why, size, "%s: made, then not the directory made", dir);
        if (dir_fd >= 0)
            close(dir_fd);
        return NULL;
    }
    cv_backup_t *self = cv_xcalloc(1, sizeof *self);
    self->dir_fd = dir_fd;
    self->dir_dev = made.st_dev;
    self->dir_ino = made.st_ino;
    snprintf(self->db_path, sizeof self->db_path, "%s", db_path);
    snprintf(self->dir, sizeof self->dir, "%s", dir);
    memcpy(self->key, key, CV_KEY_BYTES);
    self->keep_free = keep_free;
    self->rate_mb = rate_mb;
    /* signals are the loop's: an interrupted call in the thread would
     * read as a failure */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    self->actor = zactor_new(backup_actor, self);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!self->actor) {
        snprintf(why, size, "cannot start the backup's thread");
        if (dir_is_ours(self))
            rmdir(dir);
        cv_backup_destroy(&self);
        return NULL;
    }
    zsock_set_rcvtimeo(self->actor, 0); /* the loop never waits here */
    return self;
}

void cv_backup_stop(cv_backup_t *self)
{
    if (self->actor)
        zsock_set_rcvtimeo(self->actor, -1); /* zactor_destroy waits for the actor's end */
    zactor_destroy(&self->actor);
}

void cv_backup_destroy(cv_backup_t **self_p)
{
    cv_backup_t *self = *self_p;
    if (!self)
        return;
    cv_backup_stop(self);
    close(self->dir_fd);
    sodium_memzero(self->key, sizeof self->key);
    free(self);
    *self_p = NULL;
}

void cv_backup_go(cv_backup_t *self)
{
    zstr_send(self->actor, "GO");
}

void *cv_backup_socket(cv_backup_t *self)
{
    return self->actor;
}

bool cv_backup_ended(cv_backup_t *self, bool *ok, char *text, size_t size)
{
    if (!self->ended && cv_socket_readable(self->actor)) {
        char *status = NULL, *said = NULL;
        if (zsock_recv(self->actor, "ss", &status, &said) == 0 && status && said) {
            self->ended = true;
            self->ok = streq(status, "OK");
            snprintf(self->text, sizeof self->text, "%s", said);
        }
        zstr_free(&status);
        zstr_free(&said);
    }
    if (self->ended) {
        *ok = self->ok;
        snprintf(text, size, "%s", self->text);
    }
    return self->ended;
}

const char *cv_backup_dir(const cv_backup_t *self)
{
    return self->dir;
}

int cv_backup_copied(cv_backup_t *self, int *pages)
{
    *pages = atomic_load(&self->pages);
    return atomic_load(&self->copied);
}
