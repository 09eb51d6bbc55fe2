/*  cv_space.c: the disk reserve and the free space under the store.
 *  cv_space.h says why.
 */
#include "cv_space.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <czmq.h>

#include "cv_alloc.h"

#define RESERVE_FILE      "caveat.reserve"
#define RESERVE_SLACK     (1024 * 1024) /* bytes: going back to short at once would flap */
#define CHECK_INTERVAL_MS 100

struct cv_space_t {
    char *dir;
    char *path;       /* of the reserve file */
    uint64_t reserve; /* bytes */
    uint64_t free;    /* at the last look, the reserve not counted */
    bool held;        /* the reserve file is there, allocated whole */
    bool is_short;
    int64_t next_check; /* zclock_mono */
};

/*  Bytes the broker's user may still write on the disk under dir. */
static bool free_bytes(const char *dir, uint64_t *out)
{
    struct statvfs st;
    if (statvfs(dir, &st) != 0)
        return false;
    *out = (uint64_t)st.f_bavail * st.f_frsize;
    return true;
}

/*  The reserve file, allocated in full (posix_fallocate: blocks, not a
 *  hole), or no file at all. */
static bool make_reserve(cv_space_t *self)
{
    int fd = open(self->path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    bool ok = posix_fallocate(fd, 0, (off_t)self->reserve) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok)
        unlink(self->path);
    return ok;
}

static void give_up_reserve(cv_space_t *self)
{
    if (unlink(self->path) != 0 && errno != ENOENT)
        return; /* still there: still counted as held */
    self->held = false;
}

/*  A reserve file left by an earlier run counts when it is whole. */
static bool reserve_there(const cv_space_t *self)
{
    struct stat st;
    return lstat(self->path, &st) == 0 && S_ISREG(st.st_mode) &&
           (uint64_t)st.st_size >= self->reserve && (uint64_t)st.st_blocks * 512 >= self->reserve;
}

cv_space_t *cv_space_new(const char *dir, uint64_t reserve, cv_error_t *err)
{
    assert(reserve > 0);
    uint64_t free;
    if (!free_bytes(dir, &free)) {
        cv_error_set(err, dir, 0, 0, "cannot see its free space: %s", strerror(errno));
        return NULL;
    }
    cv_space_t *self = cv_xcalloc(1, sizeof *self);
    self->dir = cv_xstrdup(dir);
    self->path = cv_xmalloc(strlen(dir) + sizeof "/" RESERVE_FILE);
    sprintf(self->path, "%s/%s", dir, RESERVE_FILE);
    self->reserve = reserve;
    self->free = free;
    self->held = reserve_there(self);
    self->is_short = true; /* until the reserve is held with room besides */
    cv_space_check(self, true);
    return self;
}

void cv_space_destroy(cv_space_t **self_p)
{
    cv_space_t *self = *self_p;
    if (!self)
        return;
    free(self->dir);
    free(self->path);
    free(self);
    *self_p = NULL;
}

bool cv_space_check(cv_space_t *self, bool now)
{
    int64_t mono = zclock_mono();
    if (!now && mono < self->next_check)
        return false;
    self->next_check = mono + CHECK_INTERVAL_MS;
    bool was_short = self->is_short;
    if (!free_bytes(self->dir, &self->free))
        return false; /* nothing learnt: nothing changes */
    if (self->held && !reserve_there(self))
        self->held = false; /* deleted under the broker (operations.md says it may be): made again
                               below once there is room, not counted on meanwhile */
    if (self->held && self->free < self->reserve) {
        give_up_reserve(self);
        self->is_short = true;
    } else if (!self->held && self->free >= cv_space_resume_at(self)) {
        self->held = make_reserve(self);
        free_bytes(self->dir, &self->free);
    }
    if (self->held)
        self->is_short = self->free < self->reserve;
    return self->is_short != was_short;
}

void cv_space_exhausted(cv_space_t *self)
{
    give_up_reserve(self);
    self->is_short = true;
    self->next_check = zclock_mono() + CHECK_INTERVAL_MS;
}

bool cv_space_short(const cv_space_t *self)
{
    return self->is_short;
}

uint64_t cv_space_free(const cv_space_t *self)
{
    return self->free;
}

uint64_t cv_space_reserve(const cv_space_t *self)
{
    return self->reserve;
}

uint64_t cv_space_resume_at(const cv_space_t *self)
{
    return 2 * self->reserve + RESERVE_SLACK;
}
