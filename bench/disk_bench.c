/*  disk_bench: what this machine's disk makes a durable broker wait, with
 *  no broker at all.
 *
 *  With --sync full nothing caveatd sends leaves before the fdatasync of
 *  the WAL that holds it, so a report due while a sync runs waits for the
 *  rest of that sync (and then for its own). This program makes the same
 *  pattern of writes as caveatd's store at workload 2's fan-out, without
 *  SQLite, sockets or any of caveatd's threads: --rate times a second
 *  (default 250, what caveatd's syncer does at the fan-out) a turn
 *  appends --bytes (default 96 KB, 24 pages: one turn's WAL frames) to a
 *  preallocated 18 MB file that it wraps round, as a WAL reused after
 *  checkpoints is, and a sync covers what was appended before it: as
 *  caveatd's syncer does, one fdatasync at a time, so the turns due while
 *  one runs are written after it and covered by the next one together. With --checkpoint a second
 * thread copies --checkpoint-share (default 0.4) of those bytes a second into a growing "database"
 * file and fdatasyncs it every 450 ms, as caveatd's checkpointer does (at the fan-out it writes
 * about 2,400 pages a second against the WAL's 6,000 frames: many frames are new versions of the
 *  same page).
 *
 *  It prints the syncs' p50, p99 and worst, and the share of the run's
 *  time during which a report arriving would wait more than --over ms
 *  (default 5) for the sync in progress alone: the sum over syncs of
 *  max(0, duration - over), over the run's length. Reports arrive at
 *  every moment, so at least that share of them would see more than
 *  --over ms of latency before any turn, transport or sync of their own;
 *  a 99th percentile under --over needs it below 1 %.
 *
 *    disk_bench [--seconds S] [--rate N] [--bytes B] [--checkpoint]
 *               [--checkpoint-share F] [--over MS] [--dir DIR]
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"

#define WAL_BYTES        (18u << 20) /* the WAL's size at the fan-out, once it wraps */
#define PAGE             4096
#define CHECKPOINT_EVERY 450 /* ms between the checkpointer's database syncs */

typedef struct {
    double seconds, rate, over_ms, checkpoint_share;
    size_t bytes;
    bool checkpoint;
    const char *dir;
} options_t;

typedef struct {
    int fd;
    size_t bytes_per_s;
    atomic_bool stop;
    unsigned syncs;
    int error; /* errno of its first failure, which ends it */
} checkpointer_t;

/*  What the run did, and the first failure's step and errno. */
typedef struct {
    size_t syncs;
    uint64_t span;
    const char *failed;
    int error;
} run_t;

static bool write_all(int fd, const uint8_t *data, size_t size, off_t at)
{
    while (size > 0) {
        ssize_t n = pwrite(fd, data, size, at);
        if (n <= 0)
            return false;
        data += n, size -= (size_t)n, at += n;
    }
    return true;
}

/*  Copies bytes_per_s into the database file a page at a time, as SQLite's
 *  checkpoint does, and syncs it every CHECKPOINT_EVERY ms. */
static void *checkpointer_run(void *arg)
{
    checkpointer_t *c = arg;
    uint8_t page[PAGE];
    memset(page, 0xc5, sizeof page);
    size_t pages = c->bytes_per_s * CHECKPOINT_EVERY / 1000 / PAGE;
    off_t at = 0;
    for (uint64_t next = bench_now_ns(); !atomic_load(&c->stop);) {
        for (size_t i = 0; i < pages; i++, at += PAGE)
            if (!write_all(c->fd, page, PAGE, at)) {
                c->error = errno;
                return NULL;
            }
        if (fdatasync(c->fd) != 0) {
            c->error = errno;
            return NULL;
        }
        c->syncs++;
        bench_sleep_until(next += CHECKPOINT_EVERY * 1000000ull);
    }
    return NULL;
}

static int open_file(const char *dir, const char *name)
{
    char path[600]; /* dir is at most 511 bytes */
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
}

/*  The WAL, written whole and synced before the run: a WAL that wraps
 *  round is overwritten in place, with no blocks to allocate. */
static int make_wal(const char *dir)
{
    int fd = open_file(dir, "wal");
    uint8_t *zeros = calloc(1, 1u << 20);
    bool ok = fd >= 0 && zeros;
    for (size_t at = 0; ok && at < WAL_BYTES; at += 1u << 20)
        ok = write_all(fd, zeros, 1u << 20, (off_t)at);
    free(zeros);
    if (ok && fdatasync(fd) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

/*  Appends turns to the WAL, wrapping round at its end. */
static bool append(int wal, const uint8_t *frames, size_t bytes, size_t turns, size_t *at)
{
    for (size_t i = 0; i < turns; i++) {
        if (*at + bytes > WAL_BYTES)
            *at = 0;
        if (!write_all(wal, frames, bytes, (off_t)*at))
            return false;
        *at += bytes;
    }
    return true;
}

/*  The turns, due o->rate times a second, and the syncs that cover them,
 *  one at a time; each sync's duration in took (ns). */
static run_t run_syncs(const options_t *o, int wal, uint64_t *took, size_t most)
{
    run_t run = {0};
    uint8_t *frames = malloc(o->bytes);
    if (!frames) {
        run = (run_t){.failed = "malloc", .error = ENOMEM};
        return run;
    }
    memset(frames, 0x5c, o->bytes);
    uint64_t interval = (uint64_t)(1e9 / o->rate), t0 = bench_now_ns();
    uint64_t end = t0 + (uint64_t)(o->seconds * 1e9), turns = 0;
    size_t at = 0, wrap = WAL_BYTES / 2 / o->bytes; /* at most half the WAL a sync */
    while (run.syncs < most && bench_now_ns() < end) {
        bench_sleep_until(t0 + turns * interval);
        uint64_t due = (bench_now_ns() - t0) / interval + 1; /* turns due by now */
        size_t n = (size_t)(due - turns < wrap ? due - turns : wrap);
        turns = due;
        if (!append(wal, frames, o->bytes, n, &at)) {
            run.failed = "write to the WAL", run.error = errno;
            break;
        }
        uint64_t began = bench_now_ns();
        if (fdatasync(wal) != 0) {
            run.failed = "fdatasync of the WAL", run.error = errno;
            break;
        }
        took[run.syncs++] = bench_now_ns() - began;
    }
    run.span = bench_now_ns() - t0;
    free(frames);
    return run;
}

static void report(const options_t *o, uint64_t *took, size_t n, uint64_t span)
{
    double waiting = 0, over_ns = o->over_ms * 1e6;
    size_t slow = 0;
    for (size_t i = 0; i < n; i++)
        if ((double)took[i] > over_ns) {
            waiting += (double)took[i] - over_ns;
            slow++;
        }
    bench_sort_ns(took, n);
    printf("  syncs                                   %zu (%.0f/s)\n", n, n / (span / 1e9));
    printf("  fdatasync p50 / p99 / worst             %.2f / %.2f / %.2f ms\n",
           bench_quantile_ms(took, n, 0.50), bench_quantile_ms(took, n, 0.99),
           bench_quantile_ms(took, n, 1.0));
    printf("  syncs over %.0f ms                        %zu\n", o->over_ms, slow);
    printf("  time a report would wait over %.0f ms     %.2f %% of the run (a p99 under %.0f ms "
           "needs < 1 %%)\n",
           o->over_ms, 100.0 * waiting / (double)span, o->over_ms);
}

/*  A number in [low, high], all of text. */
static bool number(const char *text, double low, double high, double *out)
{
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || end == text || *end || !(value >= low && value <= high))
        return false;
    *out = value;
    return true;
}

static bool parse(int argc, char **argv, options_t *o)
{
    *o = (options_t){.seconds = 8,
                     .rate = 250,
                     .over_ms = 5,
                     .checkpoint_share = 0.4,
                     .bytes = 24 * PAGE,
                     .dir = "/tmp"};
    double bytes = (double)o->bytes;
    bool ok = true;
    for (int i = 1; ok && i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--checkpoint") == 0)
            o->checkpoint = true;
        else if (!value)
            ok = false;
        else if (strcmp(argv[i], "--seconds") == 0)
            ok = number(value, 0.001, 86400, &o->seconds), i++;
        else if (strcmp(argv[i], "--rate") == 0)
            ok = number(value, 1, 10000, &o->rate), i++;
        else if (strcmp(argv[i], "--bytes") == 0)
            ok = number(value, 1, WAL_BYTES / 4, &bytes), i++;
        else if (strcmp(argv[i], "--over") == 0)
            ok = number(value, 0, 10000, &o->over_ms), i++;
        else if (strcmp(argv[i], "--checkpoint-share") == 0)
            ok = number(value, 0, 4, &o->checkpoint_share), i++;
        else if (strcmp(argv[i], "--dir") == 0)
            o->dir = value, i++;
        else
            ok = false;
    }
    o->bytes = (size_t)bytes;
    return ok && strlen(o->dir) < 400;
}

int main(int argc, char **argv)
{
    options_t o;
    if (!parse(argc, argv, &o)) {
        fprintf(stderr, "usage: disk_bench [--seconds S] [--rate N] [--bytes B] [--checkpoint] "
                        "[--checkpoint-share F] [--over MS] [--dir DIR]\n");
        return 2;
    }
    double load = bench_load_average();
    char dir[512];
    snprintf(dir, sizeof dir, "%s/caveat-disk-XXXXXX", o.dir);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "disk_bench: cannot make a directory in %s: %s\n", o.dir, strerror(errno));
        return 1;
    }
    run_t run = {0};
    int wal = make_wal(dir);
    if (wal < 0)
        run = (run_t){.failed = "writing the WAL beforehand", .error = errno};
    size_t most = (size_t)(o.seconds * o.rate) + 1;
    uint64_t *took = calloc(most, sizeof *took);
    if (!took && !run.failed)
        run = (run_t){.failed = "calloc", .error = ENOMEM};
    checkpointer_t c = {.fd = o.checkpoint ? open_file(dir, "db") : -1,
                        .bytes_per_s = (size_t)((double)o.bytes * o.rate * o.checkpoint_share)};
    if (o.checkpoint && c.fd < 0 && !run.failed)
        run = (run_t){.failed = "opening the database file", .error = errno};
    pthread_t thread;
    int created = c.fd >= 0 ? pthread_create(&thread, NULL, checkpointer_run, &c) : -1;
    if (o.checkpoint && created != 0 && !run.failed)
        run = (run_t){.failed = "starting the checkpointer", .error = created};
    if (!run.failed)
        run = run_syncs(&o, wal, took, most);
    atomic_store(&c.stop, true);
    if (created == 0)
        pthread_join(thread, NULL);
    if (c.error && !run.failed)
        run = (run_t){.failed = "the checkpointer's write or sync", .error = c.error};
    printf("disk_bench: %zu bytes a turn, %.0f turns a second, for %.0f s in %s\n", o.bytes, o.rate,
           o.seconds, o.dir);
    if (o.checkpoint)
        printf("  beside a checkpointer copying %.2f of those bytes into a database file\n",
               o.checkpoint_share);
    if (run.failed)
        fprintf(stderr, "disk_bench: %s failed: %s\n", run.failed, strerror(run.error));
    else
        report(&o, took, run.syncs, run.span);
    if (created == 0)
        printf("  checkpointer's database syncs           %u\n", c.syncs);
    free(took);
    if (wal >= 0)
        close(wal);
    if (c.fd >= 0)
        close(c.fd);
    bench_remove_tree(dir);
    bench_print_load(load);
    return run.failed ? 1 : 0;
}
