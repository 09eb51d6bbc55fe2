/*  cv_syncer.c: fdatasync and checkpoints in threads; see cv_syncer.h.
 *
 *  Each actor talks over its pipe: "SYNC" + 8 bytes (a commit number) and
 *  "CHECKPOINT" in; "SYNCED" + the commit number synced + the sync's
 *  microseconds, "FAILED" + the error + "0", or "DONE" out. A failed
 *  fdatasync is final: after one, Linux may report a later one as a
 *  success although the pages were lost, so the syncer stops and the
 *  broker must not carry on as if durable.
 */
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>

#include "cv_syncer.h"
#include "cv_walbuf.h"

struct cv_syncer_t {
    char db_path[4096];
    char synchronous[8];
    zactor_t *syncer; /* NULL unless the WAL is synced here */
    zactor_t *checkpointer;
    cv_inbox_t *syncer_in; /* their pipes, looked at without a system call when quiet */
    cv_inbox_t *checkpointer_in;
    uint64_t synced;
    char failed[256];   /* why the syncer stopped; "" while it works */
    int64_t slow_ms;    /* a sync longer than this is slow */
    int64_t slowest_ms; /* the longest slow sync not yet taken; -1: none */
    int64_t stall_us;   /* a sync longer than this is a stall */
    cv_sync_counts_t counts;
    uint64_t wanted;             /* the last commit asked to be synced */
    bool asking;                 /* a sync was asked for and has not been answered */
    bool checkpointing;          /* a checkpoint was asked for and has not ended */
    char checkpoint_failed[512]; /* the last checkpoint's failure, not yet taken; "" */
};

/* ------------------------------------------------------------------------ */
/*  The syncer.                                                              */

/*  fsync of the directory that holds db_path: the names of the files in
 *  it (the WAL's, once SQLite has made it) survive a power loss. */
static bool sync_directory(const char *db_path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", db_path);
    int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok = fd >= 0 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/*  The WAL, opened when it first exists (SQLite makes it at the first
 *  write); its directory is synced once so that the file itself survives a
 *  power loss. */
static int open_wal(const char *db_path)
{
    char path[4200];
    snprintf(path, sizeof path, "%s-wal", db_path);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0)
        sync_directory(db_path);
    return fd;
}

/*  The highest commit number asked for among the waiting requests; false
 *  when told to end. */
static bool take_requests(zsock_t *pipe, uint64_t *wanted)
{
    do {
        char *command = NULL;
        uint64_t commit = 0; /* czmq leaves it 0 for "$TERM", which has one frame */
        bool term =
            zsock_recv(pipe, "s8", &command, &commit) != 0 || !command || streq(command, "$TERM");
        zstr_free(&command);
        if (term)
            return false;
        if (commit > *wanted)
            *wanted = commit;
    } while (cv_socket_readable(pipe));
    return true;
}

static void syncer_actor(zsock_t *pipe, void *args)
{
    const cv_syncer_t *self = args;
    pthread_setname_np(pthread_self(), "cv-sync");
    int fd = -1;
    uint64_t wanted = 0, done = 0;
    bool failed = false;
    zsock_signal(pipe, 0);
    while (take_requests(pipe, &wanted)) {
        if (wanted <= done || failed)
            continue;
        uint64_t covers = wanted; /* everything committed before this sync starts */
        if (fd < 0)
            fd = open_wal(self->db_path);
        int64_t began = zclock_usecs();
        if (fd >= 0 && fdatasync(fd) == 0) {
            done = covers;
            char number[24], took[24]; /* microseconds */
            snprintf(number, sizeof number, "%" PRIu64, done);
            snprintf(took, sizeof took, "%" PRId64, zclock_usecs() - began);
            zsock_send(pipe, "sss", "SYNCED", number, took);
        } else {
            char why[200];
            snprintf(why, sizeof why, "%s the WAL: %s", fd < 0 ? "cannot open" : "fdatasync of",
                     strerror(errno));
            zsock_send(pipe, "sss", "FAILED", why, "0");
            failed = true;
        }
    }
    if (fd >= 0)
        close(fd);
}

/* ------------------------------------------------------------------------ */
/*  The checkpointer.                                                        */

static sqlite3 *open_checkpointer(const cv_syncer_t *self)
{
    sqlite3 *db = NULL;
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA synchronous=%s;", self->synchronous);
    /* the log read ahead: a checkpoint copies its frames mostly in order */
    if (sqlite3_open_v2(self->db_path, &db, SQLITE_OPEN_READWRITE, cv_walbuf_ahead_vfs()) !=
            SQLITE_OK ||
        sqlite3_exec(db, pragma, NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 1000);
    return db;
}

static void checkpointer_actor(zsock_t *pipe, void *args)
{
    const cv_syncer_t *self = args;
    pthread_setname_np(pthread_self(), "cv-checkpoint");
    sqlite3 *db = open_checkpointer(self);
    zsock_signal(pipe, 0);
    while (true) {
        char *command = zstr_recv(pipe);
        bool term = !command || streq(command, "$TERM");
        zstr_free(&command);
        if (term)
            break;
        if (!db)
            db = open_checkpointer(self);
        /* PASSIVE: copies what no reader needs, never blocks the writer */
        int rc = db ? sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL)
                    : SQLITE_CANTOPEN;
        /* busy: the loop is checkpointing itself (a WAL that grew too fast) */
        if (!db)
            zstr_sendf(pipe, "FAILED cannot open %s for checkpoints", self->db_path);
        else if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            zstr_sendf(pipe, "FAILED checkpoint of %s: %s", self->db_path, sqlite3_errmsg(db));
        else
            zstr_send(pipe, "DONE");
    }
    sqlite3_close(db);
}

/* ------------------------------------------------------------------------ */

cv_syncer_t *cv_syncer_new(const char *db_path, bool sync_wal, const char *synchronous)
{
    cv_syncer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->db_path, sizeof self->db_path, "%s", db_path);
    snprintf(self->synchronous, sizeof self->synchronous, "%s", synchronous);
    self->slow_ms = CV_SYNC_SLOW_MS;
    self->slowest_ms = -1;
    self->stall_us = CV_SYNC_STALL_US;
    /* the threads inherit a mask that leaves signals to the broker's loop:
     * an interrupted receive in an actor would read as the end */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    self->checkpointer = zactor_new(checkpointer_actor, self);
    if (sync_wal)
        self->syncer = zactor_new(syncer_actor, self);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!self->checkpointer || (sync_wal && !self->syncer)) {
        cv_syncer_destroy(&self);
        return NULL;
    }
    /* the loop only ever reads what is there: a receive that would wait
     * (a signal, a readiness that is gone) returns at once instead of
     * stopping the broker */
    zsock_set_rcvtimeo(self->checkpointer, 0);
    if (self->syncer)
        zsock_set_rcvtimeo(self->syncer, 0);
    self->checkpointer_in = cv_inbox_new(zactor_sock(self->checkpointer), true);
    self->syncer_in = self->syncer ? cv_inbox_new(zactor_sock(self->syncer), true) : NULL;
    if (!self->checkpointer_in || (self->syncer && !self->syncer_in))
        cv_syncer_destroy(&self);
    return self;
}

void cv_syncer_destroy(cv_syncer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cv_syncer_t *self = *self_p;
    cv_inbox_destroy(&self->syncer_in);
    cv_inbox_destroy(&self->checkpointer_in);
    /* zactor_destroy waits for the actor's last word: let it wait */
    if (self->syncer)
        zsock_set_rcvtimeo(self->syncer, -1);
    if (self->checkpointer)
        zsock_set_rcvtimeo(self->checkpointer, -1);
    zactor_destroy(&self->syncer);
    zactor_destroy(&self->checkpointer);
    free(self);
    *self_p = NULL;
}

/*  One request at a time: commits made while a sync runs are covered by
 *  the one asked for when it ends, so a busy loop costs one message and one
 *  fdatasync per sync, not per commit. */
static void ask(cv_syncer_t *self)
{
    if (self->syncer && !self->asking && self->wanted > self->synced) {
        /* asking only once sent: a send that failed (a signal's EINTR, once)
         * is made again at the next look at the syncer (read_news), not
         * waited for forever, with everything that waits for the sync */
        self->asking = zsock_send(self->syncer, "s8", "SYNC", self->wanted) == 0;
        cv_inbox_touched(self->syncer_in); /* a send may read the pipe's news */
    }
}

void cv_syncer_request(cv_syncer_t *self, uint64_t commit)
{
    if (commit > self->wanted)
        self->wanted = commit;
    ask(self);
}

/*  A sync that ended, after us microseconds: a slow one is kept to be
 *  told, a stall counted. */
static void count_sync(cv_syncer_t *self, int64_t us)
{
    int64_t ms = us / 1000;
    if (ms > self->slow_ms && ms > self->slowest_ms)
        self->slowest_ms = ms;
    self->counts.syncs++;
    if (us > self->stall_us) {
        self->counts.stalls++;
        self->counts.stall_us += (uint64_t)(us - self->stall_us);
    }
}

/*  What the actors said so far, without waiting. Each answers a request
 *  and says nothing unasked, so a pipe with no request out is not looked
 *  at; one with a request out is looked at through its inbox, which costs
 *  nothing until the loop's poller hears from the pipe, since the loop
 *  asks for news several times a turn. */
static void read_news(cv_syncer_t *self)
{
    while (self->syncer && self->asking && cv_inbox_ready(self->syncer_in)) {
        char *what = NULL, *value = NULL, *took = NULL;
        if (zsock_recv(self->syncer, "sss", &what, &value, &took) != 0)
            break; /* nothing after all: never wait here */
        if (what && value && took && streq(what, "SYNCED")) {
            uint64_t synced = strtoull(value, NULL, 10);
            if (synced > self->synced)
                self->synced = synced;
            count_sync(self, strtoll(took, NULL, 10));
        } else if (what && value && streq(what, "FAILED")) {
            snprintf(self->failed, sizeof self->failed, "%s", value);
        }
        zstr_free(&what);
        zstr_free(&value);
        zstr_free(&took);
        self->asking = false;
    }
    ask(self);
    while (self->checkpointing && cv_inbox_ready(self->checkpointer_in)) {
        char *done = zstr_recv(self->checkpointer);
        if (!done)
            break;
        if (done && strncmp(done, "FAILED ", 7) == 0)
            snprintf(self->checkpoint_failed, sizeof self->checkpoint_failed, "%s", done + 7);
        zstr_free(&done);
        self->checkpointing = false;
    }
}

uint64_t cv_syncer_synced(cv_syncer_t *self)
{
    read_news(self);
    return self->synced;
}

bool cv_syncer_wait(cv_syncer_t *self, uint64_t commit, int timeout_ms)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    while (self->syncer && cv_syncer_synced(self) < commit) {
        int64_t left = deadline - zclock_mono();
        if (left <= 0)
            return false;
        cv_inbox_wait(self->syncer_in, (int)left);
    }
    return true;
}

int cv_syncer_watch(cv_syncer_t *self, cv_poller_t *poller)
{
    if (self->syncer_in && cv_poller_add(poller, self->syncer_in) != 0)
        return -1;
    return cv_poller_add(poller, self->checkpointer_in);
}

void cv_syncer_set_slow_ms(cv_syncer_t *self, int64_t ms)
{
    self->slow_ms = ms;
}

/*  What read_news recorded: the loop reads the syncer's news at every
 *  iteration already (cv_syncer_synced, cv_syncer_failed), and a look is
 *  two system calls. */
bool cv_syncer_take_slow(cv_syncer_t *self, int64_t *ms)
{
    *ms = self->slowest_ms;
    self->slowest_ms = -1;
    return *ms >= 0;
}

cv_sync_counts_t cv_syncer_counts(const cv_syncer_t *self)
{
    return self->counts;
}

void cv_syncer_set_stall_us(cv_syncer_t *self, int64_t us)
{
    self->stall_us = us;
}

const char *cv_syncer_failed(cv_syncer_t *self)
{
    read_news(self);
    return self->failed[0] ? self->failed : NULL;
}

/*  fdatasync of path, when it exists. */
static bool sync_path(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT;
    bool ok = fdatasync(fd) == 0;
    close(fd);
    return ok;
}

/*  Opens and closes the database and its WAL: only ever before SQLite has
 *  them open, since closing a descriptor of a file drops every POSIX lock
 *  the process holds on it, SQLite's included (cv_syncer.h). */
bool cv_syncer_sync_files(const char *db_path)
{
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    return sync_directory(db_path) && sync_path(db_path) && sync_path(wal);
}

bool cv_syncer_checkpoint_failure(cv_syncer_t *self, char *why, size_t size)
{
    read_news(self);
    if (!self->checkpoint_failed[0])
        return false;
    snprintf(why, size, "%s", self->checkpoint_failed);
    self->checkpoint_failed[0] = '\0';
    return true;
}

bool cv_syncer_checkpoint(cv_syncer_t *self)
{
    read_news(self);
    if (self->checkpointing)
        return false;
    self->checkpointing = zstr_send(self->checkpointer, "CHECKPOINT") == 0;
    cv_inbox_touched(self->checkpointer_in);
    return self->checkpointing;
}
