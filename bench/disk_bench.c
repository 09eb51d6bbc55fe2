/*  disk_bench: what this machine's disk makes a durable broker wait, with
 *  no broker at all.
 *
 *  With --sync full nothing caveatd sends leaves before the fdatasync of
 *  the WAL that holds it, so a report due while a sync runs waits for the
 *  rest of that sync (and then for its own). This program makes the same
 *  pattern of writes as caveatd's store at workload 2's fan-out, without
 *  SQLite, sockets or any of caveatd's threads: --rate times a second
 *  (default 250, what caveatd's syncer does at the fan-out) it appends
 *  --bytes (default 96 KB, 24 pages: one turn's WAL frames) to a
 *  preallocated 18 MB file that it wraps round, as a WAL reused after
 *  checkpoints is, and fdatasyncs it. With --checkpoint a second thread
 *  copies --checkpoint-share (default 0.4) of those bytes a second into a
 *  growing "database" file and fdatasyncs it every 450 ms, as caveatd's
 *  checkpointer does (at the fan-out it writes about 2,400 pages a second
 *  against the WAL's 6,000 frames: many frames are new versions of the
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
} checkpointer_t;

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
        for (size_t i = 0; i < pages && write_all(c->fd, page, PAGE, at); i++)
            at += PAGE;
        fdatasync(c->fd);
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

/*  The syncs, paced at o->rate; each one's duration in ns. */
static size_t run_syncs(const options_t *o, int wal, uint64_t *took, size_t most, uint64_t *span)
{
    uint8_t *frames = malloc(o->bytes);
    if (!frames)
        return 0;
    memset(frames, 0x5c, o->bytes);
    uint64_t interval = (uint64_t)(1e9 / o->rate), t0 = bench_now_ns();
    uint64_t end = t0 + (uint64_t)(o->seconds * 1e9);
    size_t n = 0, at = 0;
    while (n < most && bench_now_ns() < end) {
        bench_sleep_until(t0 + n * interval);
        if (at + o->bytes > WAL_BYTES)
            at = 0;
        if (!write_all(wal, frames, o->bytes, (off_t)at))
            break;
        at += o->bytes;
        uint64_t began = bench_now_ns();
        if (fdatasync(wal) != 0)
            break;
        took[n++] = bench_now_ns() - began;
    }
    *span = bench_now_ns() - t0;
    free(frames);
    return n;
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

static bool parse(int argc, char **argv, options_t *o)
{
    *o = (options_t){.seconds = 8,
                     .rate = 250,
                     .over_ms = 5,
                     .checkpoint_share = 0.4,
                     .bytes = 24 * PAGE,
                     .dir = "/tmp"};
    for (int i = 1; i < argc; i++) {
        bool value = i + 1 < argc;
        if (value && strcmp(argv[i], "--seconds") == 0)
            o->seconds = atof(argv[++i]);
        else if (value && strcmp(argv[i], "--rate") == 0)
            o->rate = atof(argv[++i]);
        else if (value && strcmp(argv[i], "--bytes") == 0)
            o->bytes = (size_t)strtoul(argv[++i], NULL, 10);
        else if (value && strcmp(argv[i], "--over") == 0)
            o->over_ms = atof(argv[++i]);
        else if (value && strcmp(argv[i], "--dir") == 0)
            o->dir = argv[++i];
        else if (value && strcmp(argv[i], "--checkpoint-share") == 0)
            o->checkpoint_share = atof(argv[++i]);
        else if (strcmp(argv[i], "--checkpoint") == 0)
            o->checkpoint = true;
        else
            return false;
    }
    return o->seconds > 0 && o->rate > 0 && o->rate <= 10000 && o->bytes > 0 &&
           o->bytes <= WAL_BYTES / 4 && o->over_ms >= 0 && o->checkpoint_share >= 0 &&
           o->checkpoint_share <= 4;
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
    int wal = make_wal(dir);
    size_t most = (size_t)(o.seconds * o.rate) + 1;
    uint64_t *took = calloc(most, sizeof *took), span = 0;
    checkpointer_t c = {.fd = o.checkpoint ? open_file(dir, "db") : -1,
                        .bytes_per_s = (size_t)((double)o.bytes * o.rate * o.checkpoint_share)};
    pthread_t thread;
    bool threaded = c.fd >= 0 && pthread_create(&thread, NULL, checkpointer_run, &c) == 0;
    size_t n =
        wal >= 0 && took && (threaded || !o.checkpoint) ? run_syncs(&o, wal, took, most, &span) : 0;
    atomic_store(&c.stop, true);
    if (threaded)
        pthread_join(thread, NULL);
    printf("disk_bench: %zu bytes fdatasync'd %.0f times a second for %.0f s in %s\n", o.bytes,
           o.rate, o.seconds, o.dir);
    if (o.checkpoint)
        printf("  beside a checkpointer copying %.2f of those bytes into a database file\n",
               o.checkpoint_share);
    if (n > 0)
        report(&o, took, n, span);
    else
        fprintf(stderr, "disk_bench: the run failed: %s\n", strerror(errno));
    if (threaded)
        printf("  checkpointer's database syncs           %u\n", c.syncs);
    free(took);
    if (wal >= 0)
        close(wal);
    if (c.fd >= 0)
        close(c.fd);
    bench_remove_tree(dir);
    bench_print_load(load);
    return n > 0 ? 0 : 1;
}
