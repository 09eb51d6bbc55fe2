/*  cv_walbuf.c: WAL frames written in one call a transaction; see
 *  cv_walbuf.h.
 *
 *  A file object of this VFS is ours (walbuf_file) followed by the default
 *  VFS's own, which does the real work. A database file is linked to its
 *  connection's WAL file when SQLite opens the WAL (link_wal), so that the
 *  database file's shared-memory calls can empty the WAL's buffer.
 */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cv_walbuf.h"

#define VFS_NAME           "caveat-walbuf"
#define VFS_AHEAD_NAME     "caveat-walbuf-ahead"
#define FRAME_HEADER_BYTES 24 /* SQLite's WAL file format */
#define WAL_HEADER_BYTES   32

typedef struct walbuf_file walbuf_file;
struct walbuf_file {
    sqlite3_file base;          /* base.pMethods = &methods */
    sqlite3_io_methods methods; /* forwarding, of the real file's version */
    sqlite3_file *real;         /* the default VFS's file, just after this */
    const char *name;           /* SQLite's, valid while the file is open */
    bool is_main, is_wal;
    walbuf_file *wal;  /* main: its WAL file while open */
    walbuf_file *main; /* WAL: its database file */
    walbuf_file *next; /* the open database files */
    /*  WAL files: the writes not yet made, which cover [start, start + len) */
    unsigned char *buf;
    size_t len;
    sqlite3_int64 start;
    bool commit_page_next; /* the last write was a commit frame's header */
    sqlite3_int64 end;     /* where the log's frames end: the next append */
    bool end_known;        /* end is known (from a write since the open or a truncation) */
    /*  WAL files of the reading-ahead VFS: bytes read at [ahead_start,
     *  ahead_start + ahead_len), until the database's next shared-memory
     *  call (forget_ahead) */
    bool reads_ahead;
    unsigned char *ahead;
    size_t ahead_len;
    sqlite3_int64 ahead_start;
};

static sqlite3_vfs vfs, vfs_ahead;
static sqlite3_vfs *real_vfs;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool registered, registered_ahead;
static pthread_mutex_t files_lock = PTHREAD_MUTEX_INITIALIZER;
static walbuf_file *main_files;
static atomic_uint_fast64_t writes_given, writes_made, reads_given, reads_made;

#define REAL(f)         (((walbuf_file *)(f))->real)
#define REAL_METHODS(f) (REAL(f)->pMethods)

/* ------------------------------------------------------------------------ */
/*  The buffer.                                                              */

static int flush(walbuf_file *f)
{
    if (f->len == 0)
        return SQLITE_OK;
    int rc = REAL_METHODS(f)->xWrite(REAL(f), f->buf, (int)f->len, f->start);
    atomic_fetch_add(&writes_made, 1);
    /* on failure too: SQLite fails the operation that wanted the bytes
     * written and rolls the transaction back, so none of it is kept */
    f->len = 0;
    return rc;
}

/*  Whether a write starts with a frame header that names the database's
 *  size: only a commit's does (bytes 4-7, big-endian, non-zero). */
static bool commit_header(const void *data, int amt, sqlite3_int64 offset)
{
    const unsigned char *b = data;
    return amt >= FRAME_HEADER_BYTES && offset >= WAL_HEADER_BYTES &&
           (b[4] | b[5] | b[6] | b[7]) != 0;
}

/*  A page size SQLite allows: a power of two, 512 to 65536. */
static bool page_size(int amt)
{
    return amt >= 512 && amt <= 65536 && (amt & (amt - 1)) == 0;
}

/*  Only appends are held. A write where the log already has frames (a
 *  page SQLite writes again in place, or a frame header it writes again
 *  with its checksum, which at a commit comes after the commit frame) goes
 *  to the file at once, after what is held: nothing of a commit is left
 *  held, and every error is the caller's. */
static int wal_write(walbuf_file *f, const void *data, int amt, sqlite3_int64 offset)
{
    atomic_fetch_add(&writes_given, 1);
    if (offset == 0 || !f->end_known) { /* the log's header: it starts again */
        /* what is held goes where it was first (frames a savepoint undid) */
        int rc = flush(f);
        if (rc != SQLITE_OK)
            return rc;
        f->end = offset;
        f->end_known = true;
    }
    bool append = offset == f->end;
    assert(f->len == 0 || f->start + (sqlite3_int64)f->len == f->end);
    int rc = SQLITE_OK;
    if (f->len > 0 && (!append || (size_t)amt > CV_WALBUF_BYTES - f->len))
        rc = flush(f);
    if (rc == SQLITE_OK && append && !f->buf)
        f->buf = malloc(CV_WALBUF_BYTES);
    if (rc != SQLITE_OK)
        return rc;
    if (!append || (size_t)amt > CV_WALBUF_BYTES || !f->buf) { /* as it comes */
        atomic_fetch_add(&writes_made, 1);
        rc = REAL_METHODS(f)->xWrite(REAL(f), data, amt, offset);
    } else {
        if (f->len == 0)
            f->start = offset;
        memcpy(f->buf + f->len, data, (size_t)amt);
        f->len += (size_t)amt;
    }
    if (offset + amt > f->end)
        f->end = offset + amt;
    /* a commit's frame ends with its page: SQLite 3.40 writes the header
     * and the page in two calls, and a whole frame in one would do too */
    bool commit_ends = (f->commit_page_next && page_size(amt)) ||
                       (page_size(amt - FRAME_HEADER_BYTES) && commit_header(data, amt, offset));
    f->commit_page_next = amt == FRAME_HEADER_BYTES && commit_header(data, amt, offset);
    /* in the file before SQLite goes on to publish the commit, and its
     * error is the commit's */
    if (rc == SQLITE_OK && commit_ends)
        rc = flush(f);
    return rc;
}

/* ------------------------------------------------------------------------ */
/*  The file methods: forwarded, the WAL's buffer emptied first.            */

static int file_close(sqlite3_file *file)
{
    walbuf_file *f = (walbuf_file *)file;
    int rc = f->is_wal ? flush(f) : SQLITE_OK;
    int closed = REAL_METHODS(f)->xClose(REAL(f));
    pthread_mutex_lock(&files_lock);
    if (f->is_wal && f->main)
        f->main->wal = NULL;
    if (f->is_main) {
        walbuf_file **p = &main_files;
        while (*p && *p != f)
            p = &(*p)->next;
        if (*p)
            *p = f->next;
        if (f->wal)
            f->wal->main = NULL;
    }
    pthread_mutex_unlock(&files_lock);
    free(f->buf);
    free(f->ahead);
    return rc != SQLITE_OK ? rc : closed;
}

/*  A flush for a method other than xWrite. Its failure is reported as a
 *  write error: SQLite rolls the whole transaction back for SQLITE_IOERR,
 *  where SQLITE_FULL (a full disk) from a read would cost only the
 *  statement, and the transaction would go on to commit frames that never
 *  reached the file. */
static int flush_for_other(walbuf_file *f)
{
    return flush(f) == SQLITE_OK ? SQLITE_OK : SQLITE_IOERR_WRITE;
}

/*  Empties f's buffer when f is a WAL file: before anything but a write
 *  reaches the file. */
static int settle(sqlite3_file *file)
{
    walbuf_file *f = (walbuf_file *)file;
    return f->is_wal ? flush_for_other(f) : SQLITE_OK;
}

/*  Empties the buffer of a database file's WAL: before its shared memory,
 *  through which other connections learn of frames, is locked or
 *  published. */
static int settle_wal_of(sqlite3_file *file)
{
    walbuf_file *f = (walbuf_file *)file;
    return f->wal ? flush_for_other(f->wal) : SQLITE_OK;
}

/* ------------------------------------------------------------------------ */
/*  Reading ahead (cv_walbuf_ahead_vfs).                                     */

/*  What was read ahead of a WAL file is let go whenever its database's
 *  shared memory is called (a lock of the log taken or dropped, a
 *  barrier, an unmap), and when the file is written or cut. SQLite asks
 *  for frames only under a lock that keeps them as they are (a reader's
 *  mark, the checkpointer's), and a writer starts the log again, over old
 *  frames, only while no such lock is held: so nothing read ahead under
 *  one lock is served under the next. Bytes past the frames SQLite may
 *  ask for (a commit being written, frames of before a restart) are read
 *  too, and never asked for before they are let go. */
static void forget_ahead(walbuf_file *wal)
{
    if (wal)
        wal->ahead_len = 0;
}

/*  A read of a WAL file that reads ahead: from the bytes read ahead when
 *  they hold it all, else read now with what follows it, up to
 *  CV_WALBUF_AHEAD and the file's end. */
static int read_ahead(walbuf_file *f, void *data, int amt, sqlite3_int64 offset)
{
    atomic_fetch_add(&reads_given, 1);
    sqlite3_int64 held_end = f->ahead_start + (sqlite3_int64)f->ahead_len;
    if (f->ahead_len && offset >= f->ahead_start && offset + amt <= held_end) {
        memcpy(data, f->ahead + (offset - f->ahead_start), (size_t)amt);
        return SQLITE_OK;
    }
    f->ahead_len = 0;
    atomic_fetch_add(&reads_made, 1);
    sqlite3_int64 size = 0;
    if (amt <= 0 || amt > CV_WALBUF_AHEAD / 2 ||
        (!f->ahead && !(f->ahead = malloc(CV_WALBUF_AHEAD))) ||
        REAL_METHODS(f)->xFileSize(REAL(f), &size) != SQLITE_OK || size - offset < amt)
        return REAL_METHODS(f)->xRead(REAL(f), data, amt, offset); /* as asked: a short read
                                                                    * is SQLite's to see */
    int n = size - offset < CV_WALBUF_AHEAD ? (int)(size - offset) : CV_WALBUF_AHEAD;
    int rc = REAL_METHODS(f)->xRead(REAL(f), f->ahead, n, offset);
    if (rc != SQLITE_OK) /* the file changed size meanwhile, or failed: as asked */
        return REAL_METHODS(f)->xRead(REAL(f), data, amt, offset);
    f->ahead_start = offset;
    f->ahead_len = (size_t)n;
    memcpy(data, f->ahead, (size_t)amt);
    return SQLITE_OK;
}

static int file_read(sqlite3_file *file, void *data, int amt, sqlite3_int64 offset)
{
    walbuf_file *f = (walbuf_file *)file;
    int rc = settle(file);
    if (rc == SQLITE_OK && f->reads_ahead && f->main && f->len == 0)
        return read_ahead(f, data, amt, offset);
    return rc != SQLITE_OK ? rc : REAL_METHODS(file)->xRead(REAL(file), data, amt, offset);
}

static int file_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 offset)
{
    walbuf_file *f = (walbuf_file *)file;
    forget_ahead(f);
    if (f->is_wal)
        return wal_write(f, data, amt, offset);
    return REAL_METHODS(f)->xWrite(REAL(f), data, amt, offset);
}

static int file_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    ((walbuf_file *)file)->end_known = false; /* the next write says where it ends */
    forget_ahead((walbuf_file *)file);
    int rc = settle(file);
    return rc != SQLITE_OK ? rc : REAL_METHODS(file)->xTruncate(REAL(file), size);
}

static int file_sync(sqlite3_file *file, int flags)
{
    int rc = settle(file);
    return rc != SQLITE_OK ? rc : REAL_METHODS(file)->xSync(REAL(file), flags);
}

static int file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    int rc = settle(file);
    return rc != SQLITE_OK ? rc : REAL_METHODS(file)->xFileSize(REAL(file), size);
}

static int file_lock(sqlite3_file *file, int level)
{
    int rc = settle(file);
    return rc != SQLITE_OK ? rc : REAL_METHODS(file)->xLock(REAL(file), level);
}

static int file_unlock(sqlite3_file *file, int level)
{
    int rc = settle(file);
    int unlocked = REAL_METHODS(file)->xUnlock(REAL(file), level); /* whatever the flush did */
    return rc != SQLITE_OK ? rc : unlocked;
}

static int file_check_reserved(sqlite3_file *file, int *out)
{
    return REAL_METHODS(file)->xCheckReservedLock(REAL(file), out);
}

static int file_control(sqlite3_file *file, int op, void *arg)
{
    int rc = settle(file);
    return rc != SQLITE_OK ? rc : REAL_METHODS(file)->xFileControl(REAL(file), op, arg);
}

static int file_sector_size(sqlite3_file *file)
{
    return REAL_METHODS(file)->xSectorSize(REAL(file));
}

static int file_device(sqlite3_file *file)
{
    return REAL_METHODS(file)->xDeviceCharacteristics(REAL(file));
}

static int file_shm_map(sqlite3_file *file, int page, int size, int extend, void volatile **p)
{
    return REAL_METHODS(file)->xShmMap(REAL(file), page, size, extend, p);
}

/*  SQLite takes and drops the WAL's locks here, and publishes a commit
 *  (the wal-index header) around xShmBarrier: the frames go first. */
static int file_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    forget_ahead(((walbuf_file *)file)->wal);
    int rc = settle_wal_of(file);
    if (rc != SQLITE_OK && !(flags & SQLITE_SHM_UNLOCK))
        return rc; /* not taken */
    /* an unlock is made whatever the flush did: SQLite does not look at
     * what an unlock returns, and a lock kept would stop every writer */
    int locked = REAL_METHODS(file)->xShmLock(REAL(file), offset, n, flags);
    return rc != SQLITE_OK ? rc : locked;
}

static void file_shm_barrier(sqlite3_file *file)
{
    /* SQLite publishes a commit here: its frames went with its commit
     * frame, so a frame still held means the commit was not recognised */
    assert(!((walbuf_file *)file)->wal || ((walbuf_file *)file)->wal->len == 0);
    (void)settle_wal_of(file); /* already empty after a commit frame; no error to return */
    forget_ahead(((walbuf_file *)file)->wal);
    REAL_METHODS(file)->xShmBarrier(REAL(file));
}

static int file_shm_unmap(sqlite3_file *file, int delete_flag)
{
    forget_ahead(((walbuf_file *)file)->wal);
    return REAL_METHODS(file)->xShmUnmap(REAL(file), delete_flag);
}

static int file_fetch(sqlite3_file *file, sqlite3_int64 offset, int amt, void **p)
{
    int rc = settle(file);
    return rc != SQLITE_OK ? rc : REAL_METHODS(file)->xFetch(REAL(file), offset, amt, p);
}

static int file_unfetch(sqlite3_file *file, sqlite3_int64 offset, void *p)
{
    return REAL_METHODS(file)->xUnfetch(REAL(file), offset, p);
}

static const sqlite3_io_methods forwarding = {
    .iVersion = 3,
    .xClose = file_close,
    .xRead = file_read,
    .xWrite = file_write,
    .xTruncate = file_truncate,
    .xSync = file_sync,
    .xFileSize = file_size,
    .xLock = file_lock,
    .xUnlock = file_unlock,
    .xCheckReservedLock = file_check_reserved,
    .xFileControl = file_control,
    .xSectorSize = file_sector_size,
    .xDeviceCharacteristics = file_device,
    .xShmMap = file_shm_map,
    .xShmLock = file_shm_lock,
    .xShmBarrier = file_shm_barrier,
    .xShmUnmap = file_shm_unmap,
    .xFetch = file_fetch,
    .xUnfetch = file_unfetch,
};

/* ------------------------------------------------------------------------ */
/*  The VFS: xOpen wraps, the rest is the default VFS's.                    */

static size_t ours_size(void)
{
    return (sizeof(walbuf_file) + 7) & ~(size_t)7;
}

/*  A WAL file's database file: the one whose connection names it. SQLite
 *  opens the WAL with the very string sqlite3_filename_wal gives for the
 *  database's name, one per connection, so two connections to the same
 *  database are never linked across. */
static void link_wal(walbuf_file *wal)
{
    pthread_mutex_lock(&files_lock);
    for (walbuf_file *m = main_files; m; m = m->next)
        if (sqlite3_filename_wal(m->name) == wal->name) {
            assert(!m->wal);
            m->wal = wal;
            wal->main = m;
            break;
        }
    pthread_mutex_unlock(&files_lock);
}

static int vfs_open(sqlite3_vfs *self, sqlite3_filename name, sqlite3_file *file, int flags,
                    int *out_flags)
{
    walbuf_file *f = (walbuf_file *)file;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)((char *)f + ours_size());
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK || !f->real->pMethods) {
        f->base.pMethods = NULL; /* SQLite calls no method, xClose included */
        return rc;
    }
    f->methods = forwarding;
    f->methods.iVersion =
        f->real->pMethods->iVersion < forwarding.iVersion ? f->real->pMethods->iVersion : 3;
    f->base.pMethods = &f->methods;
    f->name = name;
    f->is_main = name && (flags & SQLITE_OPEN_MAIN_DB);
    f->is_wal = name && (flags & SQLITE_OPEN_WAL);
    f->reads_ahead = f->is_wal && self == &vfs_ahead;
    if (f->is_main) {
        pthread_mutex_lock(&files_lock);
        f->next = main_files;
        main_files = f;
        pthread_mutex_unlock(&files_lock);
    } else if (f->is_wal) {
        link_wal(f);
    }
    return SQLITE_OK;
}

static int vfs_delete(sqlite3_vfs *self, const char *name, int sync_dir)
{
    (void)self;
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int vfs_access(sqlite3_vfs *self, const char *name, int flags, int *out)
{
    (void)self;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int vfs_full_pathname(sqlite3_vfs *self, const char *name, int n, char *out)
{
    (void)self;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *vfs_dl_open(sqlite3_vfs *self, const char *name)
{
    (void)self;
    return real_vfs->xDlOpen(real_vfs, name);
}

static void vfs_dl_error(sqlite3_vfs *self, int n, char *out)
{
    (void)self;
    real_vfs->xDlError(real_vfs, n, out);
}

static void (*vfs_dl_sym(sqlite3_vfs *self, void *handle, const char *symbol))(void)
{
    (void)self;
    return real_vfs->xDlSym(real_vfs, handle, symbol);
}

static void vfs_dl_close(sqlite3_vfs *self, void *handle)
{
    (void)self;
    real_vfs->xDlClose(real_vfs, handle);
}

static int vfs_randomness(sqlite3_vfs *self, int n, char *out)
{
    (void)self;
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int vfs_sleep(sqlite3_vfs *self, int microseconds)
{
    (void)self;
    return real_vfs->xSleep(real_vfs, microseconds);
}

static int vfs_current_time(sqlite3_vfs *self, double *out)
{
    (void)self;
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int vfs_last_error(sqlite3_vfs *self, int n, char *out)
{
    (void)self;
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int vfs_current_time_int64(sqlite3_vfs *self, sqlite3_int64 *out)
{
    (void)self;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static void register_vfs(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs || real_vfs->iVersion < 2)
        return;
    vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)ours_size() + real_vfs->szOsFile,
        .mxPathname = real_vfs->mxPathname,
        .zName = VFS_NAME,
        .xOpen = vfs_open,
        .xDelete = vfs_delete,
        .xAccess = vfs_access,
        .xFullPathname = vfs_full_pathname,
        .xDlOpen = vfs_dl_open,
        .xDlError = vfs_dl_error,
        .xDlSym = vfs_dl_sym,
        .xDlClose = vfs_dl_close,
        .xRandomness = vfs_randomness,
        .xSleep = vfs_sleep,
        .xCurrentTime = vfs_current_time,
        .xGetLastError = vfs_last_error,
        .xCurrentTimeInt64 = vfs_current_time_int64,
    };
    vfs_ahead = vfs;
    vfs_ahead.zName = VFS_AHEAD_NAME;
    registered = sqlite3_vfs_register(&vfs, 0) == SQLITE_OK;
    registered_ahead = registered && sqlite3_vfs_register(&vfs_ahead, 0) == SQLITE_OK;
}

const char *cv_walbuf_vfs(void)
{
    pthread_once(&once, register_vfs);
    return registered ? VFS_NAME : NULL;
}

const char *cv_walbuf_ahead_vfs(void)
{
    pthread_once(&once, register_vfs);
    return registered_ahead ? VFS_AHEAD_NAME : NULL;
}

cv_walbuf_counts_t cv_walbuf_counts(void)
{
    return (cv_walbuf_counts_t){atomic_load(&writes_given), atomic_load(&writes_made),
                                atomic_load(&reads_given), atomic_load(&reads_made)};
}
