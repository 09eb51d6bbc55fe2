/*  durability_bench.c: what durability costs caveatd, and how it holds a
 *  large backlog. Not a test: it prints figures next to their targets and
 *  exits 0 whatever they are (timings belong here, never in ctest). All
 *  traffic is on 127.0.0.1; every file lives in a temporary directory under
 *  /tmp that is removed at the end.
 *
 *  Phase 1, durable publish throughput: one publisher, no subscriber. The
 *  policy (bench/data/throughput.yaml) releases every report to one agency
 *  that never connects, so each report is stored and queued for it: the
 *  whole durable path (check, store, route, enqueue, commit) and nothing of
 *  the delivery path. cv_client_publish with --batch ~1 KB reports a call;
 *  a call returns at the PublishAck, so the publisher has one batch in
 *  flight at a time. caveatd runs with --sync full, normal and off (off
 *  only shows what the fsync costs). The same client pattern against NATS
 *  JetStream (file storage, TLS): --batch js_PublishAsync calls carrying the
 *  same bytes, each with its report id as Nats-Msg-Id (deduplication, as
 *  caveatd's ids), then js_PublishAsyncComplete for every PubAck.
 *
 *  Phase 2, a backlog for an offline recipient: --reports reports published
 *  as fast as possible (calls of --fill-batch reports; libcaveat splits a
 *  call into frames of at most 256 KB, up to eight in flight) to the agency
 *  that is not connected; then caveatd's memory (/proc/PID/status) and the
 *  store on disk; two restarts (SIGTERM, start again; the second with the
 *  store evicted from the page cache), each timed from fork+exec to
 *  "caveatd: ready on"; then the recipient connects with credit 1000 and
 *  receives and acknowledges the whole backlog, every report id checked
 *  once.
 *
 *  Usage: durability_bench [--seconds S] [--batch N] [--reports N]
 *                          [--fill-batch N] [--fill-sync full|normal|off]
 *                          [--limit S]
 *                          [--only throughput|full|normal|off|jetstream|backlog]
 */
#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#ifdef HAVE_LIBNATS
#include <nats/nats.h>
#endif

#include "caveat.h"
#include "cv_proto.h" /* internals: the schema, JSON, the wire protocol */
#include "cv_policy.h"
#include "bench_common.h"
#include "harness.h"

#define REPORT_BYTES       1024   /* target packed size of a report */
#define PUBLISH_TIMEOUT_MS 30000  /* a publish call that takes longer ends the phase */
#define DRAIN_CREDIT       1000   /* Hello.credit of the recipient that drains */
#define ACK_EVERY          100    /* the recipient acknowledges at least this often */
#define SAMPLE_US          100000 /* RSS sampling period */
#define RSS_TARGET_KB      (200 * 1024)
#define RESTART_TARGET_S   2.0
#define RATIO_TARGET       0.5 /* --sync full >= half of --sync off */
#define NATS_SUBJECT       "durabench.reports"
#define NATS_STREAM        "DURABENCH"

/* ------------------------------------------------------------------------ */
/*  Small utilities.                                                        */

static double seconds_since(uint64_t from)
{
    uint64_t to = bench_now_ns();
    return to > from ? (double)(to - from) * 1e-9 : 0.0;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {.tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static uint64_t tree_bytes; /* nftw has no closure */

static int add_size(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)path, (void)ftw;
    if (type == FTW_F)
        tree_bytes += (uint64_t)st->st_blocks * 512u; /* what the disk holds, not the length */
    return 0;
}

/*  Disk space used by the files under dir. */
static uint64_t disk_usage(const char *dir)
{
    tree_bytes = 0;
    nftw(dir, add_size, 16, FTW_PHYS);
    return tree_bytes;
}

static double mb(uint64_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

static double kb_to_mb(long kb)
{
    return kb < 0 ? -1 : (double)kb / 1024.0;
}

/*  Samples a process's VmRSS in a thread, keeping the highest. */
typedef struct {
    pid_t pid;
    atomic_bool stop;
    atomic_long peak_kb;
    pthread_t thread;
} sampler_t;

static void *sampler_run(void *arg)
{
    sampler_t *s = arg;
    while (!atomic_load(&s->stop)) {
        long kb = bench_status_kb(s->pid, "VmRSS");
        if (kb > atomic_load(&s->peak_kb))
            atomic_store(&s->peak_kb, kb);
        sleep_us(SAMPLE_US);
    }
    return NULL;
}

static void sampler_start(sampler_t *s, pid_t pid)
{
    s->pid = pid;
    atomic_store(&s->stop, false);
    atomic_store(&s->peak_kb, -1);
    pthread_create(&s->thread, NULL, sampler_run, s);
}

static long sampler_stop(sampler_t *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    return atomic_load(&s->peak_kb);
}

/* ------------------------------------------------------------------------ */
/*  Reports: bench_make_report (bench_common.c), padded to ~1 KB.          */

/*  A report whose packed form is ~REPORT_BYTES once the broker has set its
 *  originator and its id has the run's length. */
static Caveat__Report *make_report(void)
{
    return bench_make_report("durability_bench", "db-000000000000", "vulnerable_individual", "hull",
                             "durability_bench", REPORT_BYTES);
}

static size_t report_size(void)
{
    Caveat__Report *r = make_report();
    size_t size = caveat__report__get_packed_size(r);
    caveat__report__free_unpacked(r, NULL);
    return size;
}

/*  Report ids name one report each: "db-RUN-SERIAL". */
static void stamp(Caveat__Report *r, const char *run, uint64_t serial)
{
    char id[64];
    snprintf(id, sizeof id, "db-%s-%012" PRIu64, run, serial);
    free(r->id);
    r->id = strdup(id);
}

typedef struct {
    Caveat__Report **reports;
    cv_publish_result_t *results;
    size_t n;
} pool_t;

static void pool_init(pool_t *p, size_t n)
{
    p->n = n;
    p->reports = calloc(n, sizeof *p->reports);
    p->results = calloc(n, sizeof *p->results);
    for (size_t i = 0; i < n; i++)
        p->reports[i] = make_report();
}

static void pool_free(pool_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        caveat__report__free_unpacked(p->reports[i], NULL);
    free(p->reports);
    free(p->results);
}

/*  Publishes the pool's first n reports as serials from..from+n-1; false
 *  with why on a failed call or any refusal. */
static bool publish_pool(cv_client_t *c, pool_t *p, size_t n, const char *run, uint64_t from,
                         char *why, size_t size)
{
    for (size_t i = 0; i < n; i++)
        stamp(p->reports[i], run, from + i);
    cv_error_t err = {0};
    int refused = cv_client_publish(c, (const Caveat__Report *const *)p->reports, n, p->results,
                                    PUBLISH_TIMEOUT_MS, &err);
    if (refused < 0)
        snprintf(why, size, "publish: %.150s", err.msg);
    for (size_t i = 0; refused > 0 && i < n; i++)
        if (p->results[i].status != CAVEAT__WIRE__STATUS__OK) {
            snprintf(why, size, "refused: %s", p->results[i].reason);
            break;
        }
    cv_publish_results_clear(p->results, n);
    return refused == 0;
}

/* ------------------------------------------------------------------------ */
/*  Keys, policy and broker.                                                */

/*  When a phase went wrong: the end of caveatd's log, before the harness
 *  removes its directory. */
static void show_broker_log(harness_t *h)
{
    char command[700];
    snprintf(command, sizeof command, "tail -n 20 %s >&2", harness_path(h, "broker.log"));
    fprintf(stderr, "durability_bench: the end of caveatd's log:\n");
    if (system(command) != 0)
        fprintf(stderr, "durability_bench: no log\n");
}

/* ------------------------------------------------------------------------ */
/*  Options and results.                                                    */

typedef struct {
    double seconds;   /* phase 1: publishing time per path */
    int batch;        /* phase 1: reports per publish call */
    uint64_t reports; /* phase 2: the backlog */
    int fill_batch;   /* phase 2: reports per publish call while filling */
    double limit;     /* phase 2: filling, and then the drain, stop after this */
    const char *fill_sync;
    const char *only;
} options_t;

enum { P_FULL, P_NORMAL, P_OFF, P_JETSTREAM, N_PATHS };

typedef struct {
    const char *name;
    bool ran;
    char note[320];     /* why it did not run, or what went wrong */
    uint64_t published; /* acknowledged: stored, as the server defines it */
    double seconds;     /* first publish .. last acknowledgement */
    double server_cpu_s, client_cpu_s;
    uint64_t disk; /* the server's files after the run */
} path_result_t;

typedef struct {
    bool ran;
    char note[320];
    uint64_t wanted, filled;
    double fill_s, fill_cpu_s;
    long fill_peak_kb, fill_rss_kb, fill_hwm_kb; /* sampled peak; after filling */
    uint64_t disk;                               /* the data directory after the first stop */
    double stop_s, warm_s, cold_s;               /* SIGTERM..exit; fork+exec..ready */
    double cached;                               /* % of caveat.db cached at the cold start */
    long restart_rss_kb;                         /* after the second restart */
    double first_s;                              /* Hello..first delivery */
    uint64_t received, duplicates, foreign;
    double drain_s, drain_cpu_s;
    long drain_peak_kb, drain_rss_kb, drain_hwm_kb;
    uint64_t disk_after;
} backlog_result_t;

/* ------------------------------------------------------------------------ */
/*  Phase 1a: caveatd.                                                      */

static void caveat_publish_loop(const options_t *opt, cv_client_t *c, const char *run,
                                path_result_t *r)
{
    pool_t pool;
    pool_init(&pool, (size_t)opt->batch);
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(opt->seconds * 1e9);
    while (bench_now_ns() < end && !r->note[0])
        if (publish_pool(c, &pool, pool.n, run, r->published, r->note, sizeof r->note))
            r->published += pool.n;
    r->seconds = seconds_since(t0);
    pool_free(&pool);
}

static void measure_caveatd(const options_t *opt, const char *sync, path_result_t *r)
{
    harness_t *h = bench_throughput_harness(r->note, sizeof r->note);
    if (!h)
        return;
    cv_error_t err = {0};
    cv_client_t *c = NULL;
    if (!bench_start_broker(h, sync)) {
        snprintf(r->note, sizeof r->note, "caveatd did not start");
    } else if (!(c = harness_client(h, "bench-publisher", NULL, 0, &err))) {
        snprintf(r->note, sizeof r->note, "client: %.300s", err.msg);
    } else {
        pid_t pid = harness_pid(h);
        double cpu0 = bench_process_cpu(pid), self0 = bench_process_cpu(getpid());
        r->ran = true;
        caveat_publish_loop(opt, c, sync, r);
        r->server_cpu_s = bench_process_cpu(pid) - cpu0;
        r->client_cpu_s = bench_process_cpu(getpid()) - self0;
    }
    cv_client_destroy(&c);
    if (r->note[0])
        show_broker_log(h);
    harness_stop(h); /* closing checkpoints the WAL: the size at rest */
    r->disk = disk_usage(harness_path(h, "data"));
    harness_destroy(&h);
}

/* ------------------------------------------------------------------------ */
/*  Phase 1b: NATS JetStream, file storage, TLS.                            */

#ifdef HAVE_LIBNATS

/*  TLS, one user, JetStream storing under the temporary directory. */
static bool write_nats_config(const nats_server_t *n, int port)
{
    char path[128];
    snprintf(path, sizeof path, "%s/nats.conf", n->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    fprintf(f,
            "listen: \"127.0.0.1:%d\"\n"
            "tls {\n  cert_file: \"%s/server.pem\"\n  key_file: \"%s/server.key\"\n}\n"
            "authorization {\n  users: [{user: publisher, password: pub-secret}]\n}\n"
            "jetstream {\n  store_dir: \"%s/jetstream\"\n}\n",
            port, n->dir, n->dir, n->dir);
    return fclose(f) == 0;
}

static void nats_server_stop(nats_server_t *n)
{
    if (n->pid > 0) {
        kill(n->pid, SIGTERM);
        waitpid(n->pid, NULL, 0);
        n->pid = 0;
    }
}

/*  A TLS connection that checks the server's certificate and name; tries
 *  for up to 5 s while the server starts. */
static natsConnection *nats_connect(const nats_server_t *n)
{
    char ca[128];
    snprintf(ca, sizeof ca, "%s/server.pem", n->dir);
    natsConnection *nc = NULL;
    for (int waited = 0; !nc && waited <= 5000; waited += 50) {
        natsOptions *o = NULL;
        natsStatus s = natsOptions_Create(&o);
        s = s ? s : natsOptions_SetURL(o, n->url);
        s = s ? s : natsOptions_SetSecure(o, true);
        s = s ? s : natsOptions_LoadCATrustedCertificates(o, ca);
        s = s ? s : natsOptions_SetExpectedHostname(o, "localhost");
        s = s ? s : natsOptions_SetUserInfo(o, "publisher", "pub-secret");
        s = s ? s : natsConnection_Connect(&nc, o);
        natsOptions_Destroy(o);
        if (s != NATS_OK) {
            nc = NULL;
            sleep_us(50000);
        }
    }
    return nc;
}

typedef struct {
    atomic_uint_fast64_t acked, failed;
    char error[200];
} js_acks_t;

/*  Every PubAck (or its failure) of an asynchronous publish. */
static void on_js_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    js_acks_t *acks = closure;
    if (pa && !pa->Duplicate) {
        atomic_fetch_add(&acks->acked, 1);
    } else if (atomic_fetch_add(&acks->failed, 1) == 0) {
        snprintf(acks->error, sizeof acks->error, "%s",
                 pae ? (pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err))
                     : "a duplicate");
    }
    natsMsg_Destroy(msg);
}

static natsStatus add_stream(jsCtx *js)
{
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    const char *subjects[] = {NATS_SUBJECT};
    config.Name = NATS_STREAM;
    config.Subjects = subjects;
    config.SubjectsLen = 1;
    config.Storage = js_FileStorage;
    jsErrCode code = 0;
    return js_AddStream(NULL, js, &config, NULL, &code);
}

/*  One batch: each message with its id (deduplicated as caveatd's report
 *  ids are), then wait for every PubAck. */
static natsStatus js_batch(jsCtx *js, const uint8_t *payload, int len, int batch, uint64_t from)
{
    natsStatus s = NATS_OK;
    for (int i = 0; i < batch && s == NATS_OK; i++) {
        char id[64];
        snprintf(id, sizeof id, "db-jetstream-%012" PRIu64, from + (uint64_t)i);
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = id;
        s = js_PublishAsync(js, NATS_SUBJECT, payload, len, &po);
    }
    jsPubOptions done;
    jsPubOptions_Init(&done);
    done.MaxWait = PUBLISH_TIMEOUT_MS;
    return s != NATS_OK ? s : js_PublishAsyncComplete(js, &done);
}

static void js_publish_loop(const options_t *opt, jsCtx *js, js_acks_t *acks, path_result_t *r)
{
    Caveat__Report *report = make_report();
    stamp(report, "jetstream", 0);
    int len = (int)caveat__report__get_packed_size(report);
    uint8_t *payload = malloc((size_t)len);
    caveat__report__pack(report, payload);
    caveat__report__free_unpacked(report, NULL);
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(opt->seconds * 1e9), sent = 0;
    while (bench_now_ns() < end && !r->note[0]) {
        natsStatus s = js_batch(js, payload, len, opt->batch, sent);
        sent += (uint64_t)opt->batch;
        if (s != NATS_OK)
            snprintf(r->note, sizeof r->note, "jetstream publish: %s", natsStatus_GetText(s));
        else if (atomic_load(&acks->failed))
            snprintf(r->note, sizeof r->note, "jetstream refused: %s", acks->error);
    }
    r->seconds = seconds_since(t0);
    r->published = atomic_load(&acks->acked);
    free(payload);
}

static void js_session(const options_t *opt, nats_server_t *srv, path_result_t *r)
{
    js_acks_t acks = {0};
    natsConnection *nc = nats_connect(srv);
    jsCtx *js = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = opt->batch; /* one batch in flight, as the caveat client */
    jo.PublishAsync.AckHandler = on_js_ack;
    jo.PublishAsync.AckHandlerClosure = &acks;
    natsStatus s = nc ? natsConnection_JetStream(&js, nc, &jo) : NATS_CONNECTION_CLOSED;
    s = s ? s : add_stream(js);
    if (s != NATS_OK) {
        snprintf(r->note, sizeof r->note, "jetstream: cannot connect or add the stream (%s)",
                 natsStatus_GetText(s));
    } else {
        double cpu0 = bench_process_cpu(srv->pid), self0 = bench_process_cpu(getpid());
        r->ran = true;
        js_publish_loop(opt, js, &acks, r);
        r->server_cpu_s = bench_process_cpu(srv->pid) - cpu0;
        r->client_cpu_s = bench_process_cpu(getpid()) - self0;
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

static void measure_jetstream(const options_t *opt, path_result_t *r)
{
    char *program = bench_find_program("nats-server"), *openssl = bench_find_program("openssl");
    nats_server_t srv = {.pid = 0};
    snprintf(srv.dir, sizeof srv.dir, "/tmp/durabench-nats-XXXXXX");
    bool made = false;
    if (!program)
        snprintf(r->note, sizeof r->note, "nats-server: not installed, skipped");
    else if (!openssl)
        snprintf(r->note, sizeof r->note, "openssl CLI missing: no TLS certificate, skipped");
    else if (!(made = mkdtemp(srv.dir) != NULL))
        snprintf(r->note, sizeof r->note, "cannot make a temporary directory");
    else if (!bench_nats_certificate(&srv))
        snprintf(r->note, sizeof r->note, "openssl could not make a certificate");
    else if (!bench_nats_start(&srv, program, write_nats_config))
        snprintf(r->note, sizeof r->note, "nats-server did not start");
    else
        js_session(opt, &srv, r);
    if (made) {
        nats_server_stop(&srv);
        char store[128];
        snprintf(store, sizeof store, "%s/jetstream", srv.dir);
        r->disk = disk_usage(store);
        bench_remove_tree(srv.dir);
    }
    free(program);
    free(openssl);
}

#else

static void measure_jetstream(const options_t *opt, path_result_t *r)
{
    (void)opt;
    char *program = bench_find_program("nats-server");
    snprintf(r->note, sizeof r->note, "%s",
             program ? "nats-server: built without libnats (libnats-dev), skipped"
                     : "nats-server: not installed, skipped");
    free(program);
}

#endif

/* ------------------------------------------------------------------------ */
/*  Phase 2: a backlog for an offline recipient.                            */

/*  Publishes up to r->wanted reports in calls of --fill-batch, stopping
 *  after --limit seconds. */
static void fill(const options_t *opt, harness_t *h, cv_client_t *c, backlog_result_t *r)
{
    pool_t pool;
    pool_init(&pool, (size_t)opt->fill_batch);
    sampler_t sampler;
    pid_t pid = harness_pid(h);
    double cpu0 = bench_process_cpu(pid);
    sampler_start(&sampler, pid);
    uint64_t t0 = bench_now_ns();
    while (r->filled < r->wanted && seconds_since(t0) < opt->limit && !r->note[0]) {
        size_t n = r->wanted - r->filled < pool.n ? (size_t)(r->wanted - r->filled) : pool.n;
        if (publish_pool(c, &pool, n, "backlog", r->filled, r->note, sizeof r->note))
            r->filled += n;
    }
    r->fill_s = seconds_since(t0);
    r->fill_peak_kb = sampler_stop(&sampler);
    r->fill_cpu_s = bench_process_cpu(pid) - cpu0;
    r->fill_rss_kb = bench_status_kb(pid, "VmRSS");
    r->fill_hwm_kb = bench_status_kb(pid, "VmHWM");
    pool_free(&pool);
}

/*  The share of a file's pages in the page cache (mincore), in percent;
 *  -1 when it cannot tell. */
static double cached_percent(const char *path)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = ((size_t)st.st_size + page - 1) / page;
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    unsigned char *vec = malloc(pages);
    size_t resident = 0;
    bool ok = map != MAP_FAILED && vec && mincore(map, (size_t)st.st_size, vec) == 0;
    for (size_t i = 0; ok && i < pages; i++)
        resident += vec[i] & 1;
    if (map != MAP_FAILED)
        munmap(map, (size_t)st.st_size);
    free(vec);
    close(fd);
    return ok ? 100.0 * (double)resident / (double)pages : -1;
}

/*  Drops the store's pages from the page cache (no root needed for clean
 *  pages), so that a restart reads what it needs from the disk; returns
 *  the share of caveat.db still cached. */
static double evict_store(harness_t *h)
{
    static const char *const files[] = {"data/caveat.db", "data/caveat.db-wal"};
    for (int i = 0; i < 2; i++) {
        int fd = open(harness_path(h, files[i]), O_RDONLY);
        if (fd < 0)
            continue;
        fdatasync(fd); /* dirty pages are not dropped */
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    return cached_percent(harness_path(h, files[0]));
}

/*  SIGTERM, then start again with --sync full (the production default);
 *  returns fork+exec..ready in seconds, or -1. */
static double restart(harness_t *h, double *cached, double *stop_s)
{
    uint64_t t0 = bench_now_ns();
    harness_stop(h);
    if (stop_s)
        *stop_s = seconds_since(t0);
    if (cached)
        *cached = evict_store(h);
    t0 = bench_now_ns();
    return bench_start_broker(h, "full") ? seconds_since(t0) : -1;
}

/*  Each report id once, all of them ours. */
typedef struct {
    uint8_t *seen; /* one bit per serial */
    uint64_t n;
} idset_t;

static void check_id(idset_t *ids, const char *id, backlog_result_t *r)
{
    uint64_t serial = 0;
    if (!id || sscanf(id, "db-backlog-%" SCNu64, &serial) != 1 || serial >= ids->n) {
        r->foreign++;
        return;
    }
    uint8_t bit = (uint8_t)(1u << (serial % 8));
    if (ids->seen[serial / 8] & bit)
        r->duplicates++;
    else
        r->received++;
    ids->seen[serial / 8] |= bit;
}

/*  Receives until every filled report has come, acknowledging cumulatively
 *  every ACK_EVERY deliveries and whenever the stream pauses. */
static void drain_loop(cv_client_t *c, idset_t *ids, uint64_t t0, double limit, backlog_result_t *r)
{
    uint64_t highest = 0, acked = 0;
    while (r->received < r->filled && seconds_since(t0) < limit) {
        cv_error_t err = {0};
        const cv_delivery_t *d = cv_client_receive(c, 100, &err);
        if (d) {
            if (r->received + r->duplicates + r->foreign == 0)
                r->first_s = seconds_since(t0);
            highest = d->seq;
            check_id(ids, d->report_id, r);
        } else if (err.msg[0]) {
            snprintf(r->note, sizeof r->note, "receive: %.300s", err.msg);
            break;
        }
        if (highest > acked && (!d || highest - acked >= ACK_EVERY || r->received == r->filled)) {
            if (!cv_client_ack(c, highest, &err)) {
                snprintf(r->note, sizeof r->note, "ack: %.300s", err.msg);
                break;
            }
            acked = highest;
        }
    }
}

static void drain(harness_t *h, double limit, backlog_result_t *r)
{
    idset_t ids = {.seen = calloc(r->filled / 8 + 1, 1), .n = r->filled};
    pid_t pid = harness_pid(h);
    sampler_t sampler;
    double cpu0 = bench_process_cpu(pid);
    sampler_start(&sampler, pid);
    uint64_t t0 = bench_now_ns();
    cv_error_t err = {0};
    cv_client_t *c = harness_client(h, "bench-subscriber", NULL, DRAIN_CREDIT, &err);
    if (c)
        drain_loop(c, &ids, t0, limit, r);
    else
        snprintf(r->note, sizeof r->note, "recipient: %.300s", err.msg);
    r->drain_s = seconds_since(t0);
    r->drain_peak_kb = sampler_stop(&sampler);
    r->drain_cpu_s = bench_process_cpu(pid) - cpu0;
    sleep_us(300000); /* the last ack's turn */
    r->drain_rss_kb = bench_status_kb(pid, "VmRSS");
    r->drain_hwm_kb = bench_status_kb(pid, "VmHWM");
    cv_client_destroy(&c);
    free(ids.seen);
}

static void backlog_run(const options_t *opt, harness_t *h, cv_client_t **publisher,
                        backlog_result_t *r)
{
    r->ran = true;
    fill(opt, h, *publisher, r);
    /* gone before the restarts: the new broker listens on another port */
    cv_client_destroy(publisher);
    if (r->note[0] || !r->filled)
        return;
    r->warm_s = restart(h, NULL, &r->stop_s);
    r->disk = disk_usage(harness_path(h, "data")); /* measured while stopped: at rest */
    r->cold_s = r->warm_s < 0 ? -1 : restart(h, &r->cached, NULL);
    if (r->cold_s < 0) {
        snprintf(r->note, sizeof r->note, "caveatd did not start again");
        return;
    }
    r->restart_rss_kb = bench_status_kb(harness_pid(h), "VmRSS");
    drain(h, opt->limit, r);
    harness_stop(h);
    r->disk_after = disk_usage(harness_path(h, "data"));
}

static void measure_backlog(const options_t *opt, backlog_result_t *r)
{
    r->wanted = opt->reports;
    harness_t *h = bench_throughput_harness(r->note, sizeof r->note);
    if (!h)
        return;
    cv_error_t err = {0};
    cv_client_t *publisher = NULL;
    if (!bench_start_broker(h, opt->fill_sync))
        snprintf(r->note, sizeof r->note, "caveatd did not start");
    else if (!(publisher = harness_client(h, "bench-publisher", NULL, 0, &err)))
        snprintf(r->note, sizeof r->note, "client: %.300s", err.msg);
    else
        backlog_run(opt, h, &publisher, r);
    cv_client_destroy(&publisher);
    if (r->note[0])
        show_broker_log(h);
    harness_destroy(&h);
}

/* ------------------------------------------------------------------------ */
/*  Output.                                                                 */

static double rate_of(const path_result_t *r)
{
    return r->ran && !r->note[0] && r->seconds > 0 ? (double)r->published / r->seconds : 0;
}

static void print_path(const path_result_t *r)
{
    if (!r->ran && !r->note[0])
        return;
    if (!r->ran) {
        printf("  %-36s %s\n", r->name, r->note);
        return;
    }
    double s = r->seconds > 0 ? r->seconds : 1;
    printf("  %-36s %9" PRIu64 " %7.2f %10.0f %7.1f %7.0f %% %7.0f %% %8.0f\n", r->name,
           r->published, r->seconds, (double)r->published / s,
           (double)r->published * (double)report_size() / s / 1e6, 100 * r->server_cpu_s / s,
           100 * r->client_cpu_s / s, r->published ? (double)r->disk / (double)r->published : 0);
    if (r->note[0])
        printf("  %-36s   ^ %s\n", "", r->note);
}

static void print_ratio(const char *what, const path_result_t *a, const path_result_t *b,
                        bool target)
{
    if (rate_of(a) <= 0 || rate_of(b) <= 0) {
        printf("  %-36s %-8s\n", what, "n/a");
        return;
    }
    double ratio = rate_of(a) / rate_of(b);
    if (target)
        printf("  %-36s %-8.3f >= %.2f   %s\n", what, ratio, RATIO_TARGET,
               bench_verdict(ratio >= RATIO_TARGET));
    else
        printf("  %-36s %.3f\n", what, ratio);
}

static void print_throughput(const options_t *opt, const path_result_t p[N_PATHS])
{
    printf("\n1. durable publish throughput: 1 publisher, no subscriber (every report is "
           "stored\n   and queued for an agency that is not connected; JetStream: a stream "
           "with no consumer)\n");
    printf("  %zu-byte packed reports, %.1f s per path, %d reports per publish call, one call "
           "in flight\n\n",
           report_size(), opt->seconds, opt->batch);
    printf("  %-36s %9s %7s %10s %7s %9s %9s %8s\n", "path", "acked", "seconds", "reports/s",
           "MB/s", "server", "client", "disk B/r");
    for (int i = 0; i < N_PATHS; i++)
        print_path(&p[i]);
    printf("\n  (server, client: CPU as %% of one core; disk B/r: the server's files at rest "
           "per report)\n");
    printf("  JetStream here (nats-server 2.9) acknowledges before any fsync: its file store "
           "syncs\n  every 2 minutes, like caveatd --sync normal/off, not --sync full.\n");
    printf("\nratios (reports/s)\n");
    print_ratio("caveatd --sync full / --sync off", &p[P_FULL], &p[P_OFF], true);
    print_ratio("caveatd --sync normal / --sync off", &p[P_NORMAL], &p[P_OFF], false);
    print_ratio("caveatd --sync full / JetStream", &p[P_FULL], &p[P_JETSTREAM], false);
    print_ratio("caveatd --sync normal / JetStream", &p[P_NORMAL], &p[P_JETSTREAM], false);
    print_ratio("caveatd --sync off / JetStream", &p[P_OFF], &p[P_JETSTREAM], false);
}

static void row(const char *metric, const char *value, const char *target, const char *result)
{
    printf("  %-48s %-22s %-9s %s\n", metric, value, target, result);
}

static void row_mb(const char *metric, long kb, bool target)
{
    char value[48];
    snprintf(value, sizeof value, kb < 0 ? "-" : "%.1f MB", kb_to_mb(kb));
    row(metric, value, target ? "< 200 MB" : "",
        target ? bench_verdict(kb >= 0 && kb < RSS_TARGET_KB) : "");
}

static void row_restart(const char *metric, double s)
{
    char value[48];
    snprintf(value, sizeof value, s < 0 ? "did not start" : "%.3f s", s);
    row(metric, value, "< 2 s", bench_verdict(s >= 0 && s < RESTART_TARGET_S));
}

static void print_fill(const options_t *opt, const backlog_result_t *r)
{
    char value[64];
    printf("  filled with caveatd --sync %s, publish calls of %d reports (libcaveat splits "
           "a call\n  into frames of at most 256 KB), at most %.0f s; restarted and drained "
           "with --sync full;\n  the recipient drains with credit %d, at most %.0f s\n\n",
           opt->fill_sync, opt->fill_batch, opt->limit, DRAIN_CREDIT, opt->limit);
    printf("  %-48s %-22s %-9s %s\n", "metric", "value", "target", "result");
    snprintf(value, sizeof value, "%" PRIu64 " of %" PRIu64, r->filled, r->wanted);
    row("reports in the backlog", value, "", r->filled == r->wanted ? "" : "(time limit)");
    snprintf(value, sizeof value, "%.1f s, %.0f/s", r->fill_s,
             r->fill_s > 0 ? (double)r->filled / r->fill_s : 0);
    row("fill: time, reports/s", value, "", "");
    snprintf(value, sizeof value, "%.0f %%", r->fill_s > 0 ? 100 * r->fill_cpu_s / r->fill_s : 0);
    row("fill: caveatd CPU, % of one core", value, "", "");
    row_mb("fill: caveatd VmRSS, highest sampled", r->fill_peak_kb, true);
    row_mb("backlog in place: caveatd VmRSS", r->fill_rss_kb, true);
    row_mb("backlog in place: caveatd VmHWM (peak)", r->fill_hwm_kb, true);
    snprintf(value, sizeof value, "%.0f MB (%.0f B/report)", mb(r->disk),
             r->filled ? (double)r->disk / (double)r->filled : 0);
    row("store on disk at rest (caveat.db + wal + shm)", value, "", "");
}

static void print_restart_drain(const backlog_result_t *r)
{
    char value[64];
    snprintf(value, sizeof value, "%.3f s", r->stop_s);
    row("stop: SIGTERM to exit", value, "", "");
    row_restart("restart: fork+exec to ready (page cache warm)", r->warm_s);
    snprintf(value, sizeof value, "%.1f %%", r->cached);
    row("caveat.db in the page cache after eviction", value, "", "");
    row_restart("restart: fork+exec to ready (store evicted)", r->cold_s);
    row_mb("after restart: caveatd VmRSS", r->restart_rss_kb, true);
    if (r->cold_s < 0)
        return;
    snprintf(value, sizeof value, "%.3f s", r->first_s);
    row("drain: Hello to first delivery", value, "", "");
    snprintf(value, sizeof value, "%" PRIu64 " of %" PRIu64, r->received, r->filled);
    row("drain: distinct reports received", value, "all",
        bench_verdict(r->received == r->filled && !r->duplicates && !r->foreign));
    snprintf(value, sizeof value, "%" PRIu64 " / %" PRIu64, r->duplicates, r->foreign);
    row("drain: duplicates / ids not ours", value, "0 / 0", "");
    snprintf(value, sizeof value, "%.1f s, %.0f/s", r->drain_s,
             r->drain_s > 0 ? (double)r->received / r->drain_s : 0);
    row("drain: time, deliveries/s", value, "", "");
    snprintf(value, sizeof value, "%.0f %%",
             r->drain_s > 0 ? 100 * r->drain_cpu_s / r->drain_s : 0);
    row("drain: caveatd CPU, % of one core", value, "", "");
    row_mb("drain: caveatd VmRSS, highest sampled", r->drain_peak_kb, true);
    row_mb("after drain: caveatd VmRSS", r->drain_rss_kb, false);
    row_mb("after drain: caveatd VmHWM since restart", r->drain_hwm_kb, true);
    snprintf(value, sizeof value, "%.0f MB", mb(r->disk_after));
    row("store on disk after the drain (reports stay)", value, "", "");
}

static void print_backlog(const options_t *opt, const backlog_result_t *r)
{
    printf("\n2. backlog for an offline recipient: %" PRIu64 " reports\n", r->wanted);
    if (!r->ran) {
        printf("  %s\n", r->note);
        return;
    }
    print_fill(opt, r);
    if (r->filled && r->warm_s != 0)
        print_restart_drain(r);
    if (r->note[0])
        printf("  ^ %s\n", r->note);
}

/* ------------------------------------------------------------------------ */
/*  Main.                                                                   */

static void usage(void)
{
    fprintf(stderr, "usage: durability_bench [--seconds S] [--batch N] [--reports N]\n"
                    "                        [--fill-batch N] [--fill-sync full|normal|off]\n"
                    "                        [--limit S]\n"
                    "                        [--only throughput|full|normal|off|jetstream|"
                    "backlog]\n");
    exit(2);
}

static bool one_of(const char *value, const char *const *list, int n)
{
    for (int i = 0; value && i < n; i++)
        if (strcmp(value, list[i]) == 0)
            return true;
    return false;
}

static void parse_args(options_t *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        bool value = i + 1 < argc;
        if (value && strcmp(argv[i], "--seconds") == 0)
            o->seconds = atof(argv[++i]);
        else if (value && strcmp(argv[i], "--batch") == 0)
            o->batch = atoi(argv[++i]);
        else if (value && strcmp(argv[i], "--reports") == 0)
            o->reports = strtoull(argv[++i], NULL, 10);
        else if (value && strcmp(argv[i], "--fill-batch") == 0)
            o->fill_batch = atoi(argv[++i]);
        else if (value && strcmp(argv[i], "--limit") == 0)
            o->limit = atof(argv[++i]);
        else if (value && strcmp(argv[i], "--fill-sync") == 0)
            o->fill_sync = argv[++i];
        else if (value && strcmp(argv[i], "--only") == 0)
            o->only = argv[++i];
        else
            usage();
    }
    static const char *const phases[] = {"throughput", "full",      "normal",
                                         "off",        "jetstream", "backlog"};
    static const char *const syncs[] = {"full", "normal", "off"};
    if ((o->only && !one_of(o->only, phases, 6)) || !one_of(o->fill_sync, syncs, 3) ||
        o->seconds <= 0 || o->seconds > 60 || o->batch < 1 || o->batch > 5000 || o->reports < 1 ||
        o->reports > 100000000)
        usage();
}

/*  --only NAME runs one phase; "throughput" names the four of phase 1. */
static bool phase(const options_t *o, const char *name)
{
    if (!o->only || strcmp(o->only, name) == 0)
        return true;
    return strcmp(o->only, "throughput") == 0 && strcmp(name, "backlog") != 0;
}

int main(int argc, char **argv)
{
    options_t opt = {.seconds = 5,
                     .batch = 200,
                     .reports = 1000000,
                     .fill_batch = 1000,
                     .limit = 70,
                     .fill_sync = "normal"};
    parse_args(&opt, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    double load[3] = {0};
    if (getloadavg(load, 3) < 0)
        load[0] = -1;
    printf("durability_bench: %ld cores, load average %.2f before the run; all traffic on "
           "127.0.0.1, files under /tmp\n",
           sysconf(_SC_NPROCESSORS_ONLN), load[0]);
    fflush(stdout);
    path_result_t paths[N_PATHS] = {{.name = "caveatd --sync full"},
                                    {.name = "caveatd --sync normal"},
                                    {.name = "caveatd --sync off (no fsync)"},
                                    {.name = "nats-server JetStream (file, TLS)"}};
    static const char *const syncs[] = {"full", "normal", "off"};
    for (int i = P_FULL; i <= P_OFF; i++)
        if (phase(&opt, syncs[i]))
            measure_caveatd(&opt, syncs[i], &paths[i]);
    if (phase(&opt, "jetstream"))
        measure_jetstream(&opt, &paths[P_JETSTREAM]);
    backlog_result_t backlog = {0};
    if (phase(&opt, "backlog"))
        measure_backlog(&opt, &backlog);
    if (!opt.only || strcmp(opt.only, "backlog") != 0)
        print_throughput(&opt, paths);
    if (phase(&opt, "backlog"))
        print_backlog(&opt, &backlog);
    bench_print_load(load[0]);
    return 0;
}
